"""Physics: arrays in, arrays out (Pylians-like). Cosmology and the 21 cm brightness
temperature, CIC painting and smoothing, halo mass channels, power spectra and PDFs."""

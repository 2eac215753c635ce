"""LODI: HALOgen + latent overlap diffusion for 21 cm intensity maps (Mishra, Trotta & Viel 2025).

The package is layered; each layer imports only from those below it (checked by the import
contracts in pyproject.toml):

- ``cli``                      ``python -m lodi_core generate`` (bring your own dark matter)
- ``figures``                  style, builders from arrays, loaders from files (never a model)
- ``analysis``                 metrics, seams, HALOgen evaluation, posterior statistics
- ``generation`` | ``training`` (independent of each other)
    generation: HALOgen over a whole box, latent overlap (Sec. 2.4), the jobs' file I/O
    training: the generic loop; HALOgen, LODI and baseline set-ups (Sec. 2.3)
- ``models``                   HALOgen (Sec. 2.1), VDM + U-Net + box sampler (Sec. 2.2), baselines
- ``data``                     CAMELS and synthetic snapshots -> grids; transforms, symmetries, windows, boxes
- ``physics``                  cosmology, CIC, smoothing, T_b (Eq. 12), halo channels (Eq. 1), spectra
- ``config``, ``io``, ``runtime``  config sections, HDF5/checkpoint I/O, devices, logging, signals
"""

__version__ = "0.1.0"

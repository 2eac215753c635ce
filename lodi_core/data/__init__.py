"""Data: CAMELS snapshots and catalogues (read, download, or made synthetically) turned into
HDF5 grids, and what the networks see of them: normalisations, cube symmetries, HALOgen
windows and the LODI box grid."""

"""LODI: HALOgen + latent overlap diffusion for 21 cm intensity maps.

Mishra, Trotta & Viel (2025). The modules follow the paper's sections:

- ``fields``     CIC assignment, Gaussian smoothing, HI density and T_b (Sec. 2.1.2, 2.2.2)
- ``halos``      halo mass channels (Eq. 1)
- ``spectra``    P(k), cross spectra, r(k), one-point PDFs
- ``camels``     CAMELS snapshot / SUBFIND catalogue reader and downloader
- ``grids``      snapshot -> HDF5 grids (dm, halos, tb)
- ``synthetic``  CAMELS-format synthetic simulations (2LPT + particle mesh + FoF)
- ``halogen``    the HALOgen network and its masked loss (Sec. 2.1, Eqs. 2-7)
- ``vdm``        variational diffusion model: schedule, loss, reverse step (Sec. 2.2)
- ``unet``       the LODI denoiser (Fig. 4)
- ``overlap``    box grid, stage schedule and latent overlap (Sec. 2.4, Algorithm 1)
"""

__version__ = "0.1.0"

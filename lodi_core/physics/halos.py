"""Halo mass density in the four mass channels of Eq. 1 (Sec. 2.1.2)."""

from __future__ import annotations

import numpy as np
import torch

from .fields import cell_volume, cic

#: Eq. 1 bin edges in Msun; the last channel is open-ended (>= 1e12 Msun up to max M_halo)
HALO_MASS_EDGES = (3e10, 1e11, 5e11, 1e12)


def channel_index(mass_msun, edges=HALO_MASS_EDGES) -> np.ndarray:
    """Channel (0..len(edges)-1) of each halo; -1 below the first edge (not painted)."""
    m = np.asarray(mass_msun, dtype=float)
    return np.searchsorted(np.asarray(edges, dtype=float), m, side="right") - 1


def halo_channels(
    positions,
    mass_msun,
    box_size: float,
    n_grid: int,
    edges=HALO_MASS_EDGES,
    device=None,
) -> torch.Tensor:
    """CIC of halo masses, one grid per mass bin: (n_channels, n, n, n) in Msun (Mpc/h)^-3.

    ``positions`` in Mpc/h, ``mass_msun`` in Msun (catalogue masses are 1e10 Msun/h: convert
    with :func:`catalogue_mass_to_msun` first). Halos below ``edges[0]`` are left out.
    """
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    mass = np.asarray(mass_msun, dtype=np.float64).reshape(-1)
    channel = channel_index(mass, edges)
    out = torch.zeros((len(edges), n_grid, n_grid, n_grid), dtype=torch.float32, device=device)
    vol = cell_volume(box_size, n_grid)
    for c in range(len(edges)):
        sel = channel == c
        if sel.any():
            grid = cic(pos[sel], box_size, n_grid, weights=mass[sel], dtype=torch.float64, device=device)
            out[c] = (grid / vol).float()
    return out


def catalogue_mass_to_msun(mass_1e10_msun_h, h: float) -> np.ndarray:
    """SUBFIND/FoF masses (1e10 Msun/h) to Msun, as Eq. 1's bin edges are in Msun."""
    return np.asarray(mass_1e10_msun_h, dtype=np.float64) * 1e10 / h


def halo_counts(mass_msun, edges=HALO_MASS_EDGES) -> list[int]:
    """Number of halos per channel."""
    idx = channel_index(mass_msun, edges)
    return [int((idx == c).sum()) for c in range(len(edges))]

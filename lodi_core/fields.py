"""Particles to grids: cloud-in-cell assignment, Gaussian smoothing, HI density and T_b.

Conventions follow Pylians (``MAS_library.MA``): a grid of ``n_grid`` cells per side over a
periodic box of side ``box_size``; grid point ``i`` sits at ``i * box_size / n_grid``; a
particle at ``x`` gives weight ``1 - u`` to point ``floor(x / dx)`` and ``u`` to the next one.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from .cosmology import RHO_CRIT_H2, Cosmology

#: 1e10 Msun/h, the mass unit of Gadget/AREPO snapshots and SUBFIND catalogues
GADGET_MASS_UNIT = 1e10


def _as_tensor(x, device=None, dtype=None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(device=device if device is not None else x.device, dtype=dtype or x.dtype)
    return torch.as_tensor(np.asarray(x), device=device, dtype=dtype)


def _corner_offsets(m: int) -> list[int]:
    return [ox * m * m + oy * m + oz for ox in (0, 1) for oy in (0, 1) for oz in (0, 1)]


def _cic_indices(x: torch.Tensor, box_size: float, n_grid: int, m: int):
    """Base flat index in an (n_grid + 2)^3 padded grid and the per-axis weights (d, u)."""
    x = torch.remainder(x, box_size).mul_(n_grid / box_size)
    # remainder can round up to exactly box_size; the padded grid absorbs index n_grid
    i = x.to(torch.int32)  # truncation == floor for x >= 0
    u = x - i
    d = 1.0 - u
    base = (i[:, 0] * m + i[:, 1]) * m + i[:, 2]
    return base, d, u


def cic(
    positions,
    box_size: float,
    n_grid: int,
    weights=None,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    chunk_size: int = 1 << 21,
) -> torch.Tensor:
    """Cloud-in-cell assignment (periodic) of particles to an ``n_grid^3`` grid.

    Returns the weight (mass, or particle count when ``weights`` is None) per cell, as Pylians'
    ``MA(pos, grid, BoxSize, 'CIC', W=weights)`` does. ``positions``: (N, 3) in the units of
    ``box_size``. Vectorised and chunked (``chunk_size`` particles at a time), so 256^3
    particles fit in a few GB; on the CPU the eight corners are deposited by parallel threads
    into private grids, on a GPU with atomic adds into one grid.
    """
    pos = _as_tensor(positions, device=device)
    device = pos.device
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"positions must have shape (N, 3), got {tuple(pos.shape)}")
    w_all = None if weights is None else _as_tensor(weights, device=device, dtype=dtype).reshape(-1)
    if w_all is not None and w_all.shape[0] != pos.shape[0]:
        raise ValueError(f"weights has {w_all.shape[0]} entries for {pos.shape[0]} particles")
    m = n_grid + 2
    offsets = _corner_offsets(m)
    n_workers = 1 if device.type != "cpu" else max(1, min(8, torch.get_num_threads()))
    grids = [torch.zeros(m**3, dtype=dtype, device=device) for _ in range(n_workers)]

    for start in range(0, pos.shape[0], chunk_size):
        x = pos[start : start + chunk_size].to(dtype)
        base, d, u = _cic_indices(x, box_size, n_grid, m)
        if w_all is not None:
            wc = w_all[start : start + chunk_size]
            d0, u0 = d[:, 0] * wc, u[:, 0] * wc
        else:
            d0, u0 = d[:, 0], u[:, 0]
        wyz = (d[:, 1] * d[:, 2], d[:, 1] * u[:, 2], u[:, 1] * d[:, 2], u[:, 1] * u[:, 2])
        corners = [(offsets[4 * cx + c], (d0, u0)[cx], wyz[c]) for cx in (0, 1) for c in range(4)]

        def deposit(worker: int) -> None:
            for off, wx, w in corners[worker::n_workers]:
                grids[worker].scatter_add_(0, (base + off).long(), wx * w)

        if n_workers == 1:
            deposit(0)
        else:  # torch releases the GIL inside scatter_add_, so the threads run in parallel
            threads = [threading.Thread(target=deposit, args=(k,)) for k in range(n_workers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

    grid = grids[0]
    for g in grids[1:]:
        grid += g
    g = grid.view(m, m, m)
    g[:2] += g[n_grid:]
    g[:, :2] += g[:, n_grid:]
    g[:, :, :2] += g[:, :, n_grid:]
    return g[:n_grid, :n_grid, :n_grid].contiguous()


def cic_readout(field: torch.Tensor, positions: torch.Tensor, box_size: float) -> torch.Tensor:
    """Interpolate a periodic grid (n, n, n) or (C, n, n, n) at particle positions (CIC, the
    adjoint of :func:`cic`); returns (N,) or (C, N). Differentiable in both the field and the
    positions. The C values of a cell are gathered together (cell-major layout)."""
    squeeze = field.ndim == 3
    f = field.unsqueeze(0) if squeeze else field
    n = f.shape[-1]
    cells = f.reshape(f.shape[0], -1).T.contiguous()  # (n^3, C)
    x = torch.remainder(positions.to(f.dtype), box_size) * (n / box_size)
    i0f = torch.floor(x)
    u = x - i0f
    i0 = i0f.long() % n
    i1 = (i0 + 1) % n
    out = 0.0
    for cx in (0, 1):
        ix, wx = (i1[:, 0], u[:, 0]) if cx else (i0[:, 0], 1 - u[:, 0])
        for cy in (0, 1):
            iy, wy = (i1[:, 1], u[:, 1]) if cy else (i0[:, 1], 1 - u[:, 1])
            for cz in (0, 1):
                iz, wz = (i1[:, 2], u[:, 2]) if cz else (i0[:, 2], 1 - u[:, 2])
                out = out + cells[(ix * n + iy) * n + iz] * (wx * wy * wz)[:, None]
    out = out.T
    return out[0] if squeeze else out


def fourier_wavenumbers(n: int, box_size: float, device=None, dtype=torch.float64):
    """kx, ky (full axes) and kz (rfft half axis) in h/Mpc for an n^3 grid of side box_size."""
    kf = 2 * np.pi / box_size
    k_full = torch.fft.fftfreq(n, d=1.0 / n, device=device, dtype=dtype) * kf
    k_half = torch.fft.rfftfreq(n, d=1.0 / n, device=device, dtype=dtype) * kf
    return k_full.view(n, 1, 1), k_full.view(1, n, 1), k_half.view(1, 1, -1)


def gaussian_kernel_1d(box_size: float, n_grid: int, radius: float, truncate: float = 4.0) -> torch.Tensor:
    """Sampled Gaussian exp(-x^2 / 2R^2) on the cell centres within ``truncate`` R (at least
    one cell each side), normalised to sum 1."""
    dx = box_size / n_grid
    half = min(max(1, int(np.ceil(truncate * radius / dx))), (n_grid - 1) // 2)
    x = torch.arange(-half, half + 1, dtype=torch.float64) * dx
    g = torch.exp(-0.5 * (x / radius) ** 2)
    return g / g.sum()


def gaussian_smooth(field: torch.Tensor, box_size: float, radius: float) -> torch.Tensor:
    """Periodic Gaussian smoothing of radius R (Sec. 2.1.2: R = 0.2 Mpc/h), as three
    separable real-space convolutions with the sampled, normalised kernel of
    :func:`gaussian_kernel_1d`. Unlike exp(-k^2 R^2 / 2) applied to the FFT, it cannot ring
    when R is close to the cell size: a non-negative field stays non-negative and its total
    is conserved exactly. Accepts (n, n, n) or (..., n, n, n); returns the input dtype."""
    if radius <= 0:
        return field.clone()
    n = field.shape[-1]
    work = torch.float64 if field.dtype == torch.float64 else torch.float32
    kernel = gaussian_kernel_1d(box_size, n, radius).to(device=field.device, dtype=work)
    half = (len(kernel) - 1) // 2
    lead = field.shape[:-3]
    out = field.to(work).reshape(-1, n, n, n)
    for axis in (1, 2, 3):
        moved = out.movedim(axis, -1)
        shape = moved.shape
        rows = torch.nn.functional.pad(moved.reshape(-1, 1, n), (half, half), mode="circular")
        moved = torch.nn.functional.conv1d(rows, kernel.view(1, 1, -1)).reshape(shape)
        out = moved.movedim(-1, axis)
    return out.reshape(*lead, n, n, n).contiguous().to(field.dtype)


def cell_volume(box_size: float, n_grid: int) -> float:
    """Comoving cell volume in (Mpc/h)^3."""
    return (box_size / n_grid) ** 3


def hi_mass(gas_mass, x_hi, star_formation_rate, hydrogen_mass_fraction: float = 0.76):
    """HI mass per gas cell, m_g X_H x_HI, with x_HI = 1 where SFR > 0 (Sec. 2.2.2).

    The paper's Eq. 11 writes m_g x_HI; CAMELS' NeutralHydrogenAbundance is the neutral
    fraction of *hydrogen*, so the hydrogen mass fraction X_H (0.76) is applied here; pass
    ``hydrogen_mass_fraction=1`` to follow Eq. 11 to the letter.
    """
    x = torch.where(_as_tensor(star_formation_rate) > 0, torch.ones_like(_as_tensor(x_hi)), _as_tensor(x_hi))
    return _as_tensor(gas_mass) * hydrogen_mass_fraction * x


def brightness_temperature(rho_hi: torch.Tensor, cosmology: Cosmology, redshift: float) -> torch.Tensor:
    """Eq. 12: T_b = 189 h H0 (1+z)^2 / H(z) rho_HI / rho_c  [mK].

    ``rho_hi`` in h^2 Msun / Mpc^3 (comoving), i.e. (Msun/h) / (Mpc/h)^3; rho_c is the
    critical density today in the same units.
    """
    factor = 189.0 * cosmology.h * (1 + redshift) ** 2 / cosmology.E(redshift)
    return rho_hi * (factor / RHO_CRIT_H2)

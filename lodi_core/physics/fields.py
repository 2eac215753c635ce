"""Particles to grids: cloud-in-cell assignment, Gaussian smoothing, HI density and T_b.

Two CIC painters, for two jobs: :func:`cic` grids whole snapshots (256^3 particles and more) fast
(chunked, threaded private grids), :class:`Stencil` paints and reads out differentiably in
the positions (a custom adjoint, for the Lagrangian Deep Learning baseline); a test pins them
equal. Every CIC read-out (:func:`cic_readout`) goes through :class:`Stencil`.

Conventions follow Pylians (``MAS_library.MA``): a grid of ``n_grid`` cells per side over a
periodic box of side ``box_size``; grid point ``i`` sits at ``i * box_size / n_grid``; a
particle at ``x`` gives weight ``1 - u`` to point ``floor(x / dx)`` and ``u`` to the next one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

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
    adjoint of :func:`cic`, as Pylians' ``CIC_interp``); returns (N,) or (C, N).
    Differentiable in both the field and the positions (:class:`Stencil`)."""
    squeeze = field.ndim == 3
    f = field.unsqueeze(0) if squeeze else field
    n = f.shape[-1]
    out = Stencil.at(positions.to(f.dtype) * (n / box_size), n).read(f).T
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


# ----------------------------------------------------------------------------- differentiable CIC
def _trilinear(cells: torch.Tensor, idx: torch.Tensor, u: torch.Tensor, derivative: bool):
    """Values of a padded flat grid (m^3,) at the 8 cells ``idx`` (N, 8) around each particle
    combined with the CIC weights of the offsets ``u`` (N, 3): (N,), and with
    ``derivative`` also d/du (N, 3). Nested lerps, z first: no (N, 8) weight array."""
    v = cells.index_select(0, idx.reshape(-1)).view(-1, 2, 2, 2)
    uy, uz = u[:, 1, None], u[:, 2, None, None]
    dz = v[..., 1] - v[..., 0]  # (N, 2, 2)
    vz = v[..., 0] + uz * dz
    dy = vz[..., 1] - vz[..., 0]  # (N, 2)
    vy = vz[..., 0] + uy * dy
    value = vy[:, 0] + u[:, 0] * (vy[:, 1] - vy[:, 0])
    if not derivative:
        return value, None
    dzy = dz[..., 0] + uy * (dz[..., 1] - dz[..., 0])  # (N, 2)
    grad = torch.stack(
        (
            vy[:, 1] - vy[:, 0],
            dy[:, 0] + u[:, 0] * (dy[:, 1] - dy[:, 0]),
            dzy[:, 0] + u[:, 0] * (dzy[:, 1] - dzy[:, 0]),
        ),
        dim=1,
    )
    return value, grad


def _weights8(u: torch.Tensor) -> torch.Tensor:
    w = torch.stack((1.0 - u, u), dim=-1)  # (N, 3, 2)
    return (w[:, 0, :, None, None] * w[:, 1, None, :, None] * w[:, 2, None, None, :]).reshape(-1, 8)


class _Paint(torch.autograd.Function):
    """CIC paint into the padded flat grid (m^3,); gradients for the offsets and masses are
    read-outs of the incoming gradient (paint and read-out are adjoint)."""

    @staticmethod
    def forward(ctx, u, mass, idx, size):
        w = _weights8(u)
        if mass is not None:
            w = w * mass[:, None]
        ctx.save_for_backward(u, mass, idx)
        return torch.zeros(size, dtype=u.dtype, device=u.device).index_add_(0, idx.reshape(-1), w.reshape(-1))

    @staticmethod
    def backward(ctx, grad):
        u, mass, idx = ctx.saved_tensors
        value, d = _trilinear(grad.contiguous(), idx, u, ctx.needs_input_grad[0])
        grad_u = None if d is None else (d if mass is None else d * mass[:, None])
        grad_mass = value if mass is not None and ctx.needs_input_grad[1] else None
        return grad_u, grad_mass, None, None


class _Read(torch.autograd.Function):
    """CIC read-out of padded flat grids (C, m^3) at the particles, (N, C)."""

    @staticmethod
    def forward(ctx, cells, u, idx):
        ctx.save_for_backward(cells, u, idx)
        return torch.stack([_trilinear(c, idx, u, False)[0] for c in cells], dim=1)

    @staticmethod
    def backward(ctx, grad):
        cells, u, idx = ctx.saved_tensors
        grad_cells = grad_u = None
        if ctx.needs_input_grad[0]:
            w = _weights8(u)
            flat = idx.reshape(-1)
            grad_cells = torch.stack(
                [
                    torch.zeros_like(cells[0]).index_add_(0, flat, (w * grad[:, c, None]).reshape(-1))
                    for c in range(len(cells))
                ]
            )
        if ctx.needs_input_grad[1]:
            grad_u = sum(_trilinear(cells[c], idx, u, True)[1] * grad[:, c, None] for c in range(len(cells)))
        return grad_cells, grad_u, None


@dataclass
class Stencil:
    """CIC stencil of N particles on a periodic n^3 grid: flat indices of the 8 cells
    around each particle in the grid padded by one cell, (N, 8) int32, and the offsets
    u in [0, 1)^3 from the lower cell (differentiable in the positions). A displacement
    layer paints and reads out at the same positions, so it builds the stencil once
    (the convention of :func:`cic`: grid point i at i * cell)."""

    idx: torch.Tensor
    u: torch.Tensor
    n: int

    @classmethod
    def at(cls, x: torch.Tensor, n: int) -> Stencil:
        """``x`` (N, 3) in grid units, any real values (wrapped periodically)."""
        x = torch.remainder(x, n)
        x = torch.where(x >= n, x - n, x)  # remainder can round up to exactly n
        base = torch.floor(x.detach())
        b = base.to(torch.int32)
        m = n + 1
        offsets = torch.tensor(
            [(i * m + j) * m + k for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=torch.int32, device=x.device
        )
        idx = ((b[:, 0] * m + b[:, 1]) * m + b[:, 2])[:, None] + offsets
        return cls(idx, x - base, n)

    def paint(self, mass: torch.Tensor | None = None) -> torch.Tensor:
        """Sum of the (unit or ``mass``) CIC weights per cell, (n, n, n); the padding planes
        are folded back onto planes 0. Differentiable in the positions and ``mass``."""
        n, m = self.n, self.n + 1
        g = _Paint.apply(self.u, mass, self.idx, m**3).view(m, m, m)
        g = torch.cat((g[:1] + g[n:], g[1:n]), 0)
        g = torch.cat((g[:, :1] + g[:, n:], g[:, 1:n]), 1)
        return torch.cat((g[:, :, :1] + g[:, :, n:], g[:, :, 1:n]), 2)

    def read(self, field: torch.Tensor) -> torch.Tensor:
        """A (C, n, n, n) field interpolated at the particles, (N, C): the adjoint of
        :meth:`paint`. Differentiable in the field and the positions."""
        padded = torch.nn.functional.pad(field[None], (0, 1, 0, 1, 0, 1), mode="circular")[0]
        return _Read.apply(padded.reshape(field.shape[0], -1), self.u, self.idx)

    def density(self) -> torch.Tensor:
        """1 + delta of equal-mass particles."""
        return self.paint() * (self.n**3 / self.u.shape[0])

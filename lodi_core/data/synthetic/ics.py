"""Gaussian initial conditions with second-order Lagrangian perturbation theory (2LPT).

Conventions
-----------
* Lengths in Mpc/h, the box ``[0, L)^3`` periodic; ``n`` particles per side on the lattice
  ``q = (i, j, k) * L / n`` (grid point i at i * dx, as ``fields.cic``); particles are stored in
  Lagrangian (C) order, index ``(i * n + j) * n + k``.
* Time ``tau = H0 t``; momenta ``p = a^2 dx/dtau`` in Mpc/h (the FastPM variable); the peculiar
  velocity is ``v = 100 p / a`` km/s.
* Growth factors from :class:`lodi_core.cosmology.Cosmology`, normalised to ``D(a=1) = 1``.

The linear density at z = 0 is drawn as white noise in real space (``numpy.random.default_rng
(seed).standard_normal((n, n, n))``), Fourier transformed and coloured with
``sqrt(P_L(k) n^3 / V)`` (so the same seed gives the same field for a given ``n``; the DC mode
is zero). With the DFT convention of :mod:`lodi_core.spectra` (P = <|delta_k|^2> V / n^6) this
has the power ``P_L(k)`` of ``Cosmology.linear_power``.

2LPT (Scoccimarro 1998)::

    x = q - D1 grad phi1 + D2 grad phi2,    lap phi1 = delta_L,
    lap phi2 = sum_{i>j} (phi1_ii phi1_jj - phi1_ij^2),   D2 = -3/7 D1^2,

with ``delta_L`` the z = 0 linear density and D1 = D(a). The momenta follow from
``dD/dtau = a E dD/da``: ``p = a^3 E (dD1/da (-grad phi1) + dD2/da grad phi2)`` with
``dD2/da = -6/7 D1 dD1/da`` (the derivative of the same D2 approximation), i.e.
``p = G_f(a) (psi1 - 6/7 D1 psi2)`` where ``G_f = a^3 E dD/da``, ``psi1 = -grad phi1`` and
``psi2 = grad phi2``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...physics.cosmology import Cosmology
from ...physics.fields import fourier_wavenumbers


@dataclass
class InitialConditions:
    """2LPT particles at ``a_start`` (torch tensors on the generating device, float64).

    ``positions`` (N, 3) Mpc/h wrapped to [0, L); ``momenta`` (N, 3) = a^2 dx/dtau [Mpc/h];
    ``psi1`` / ``psi2`` (N, 3): the z = 0 first-order displacement ``-grad phi1`` and the
    second-order ``grad phi2`` per particle (the displacement is D1 psi1 + D2 psi2);
    ``delta_k``: the rfft of the z = 0 linear density on the n^3 lattice (DFT convention of
    :mod:`lodi_core.spectra`).
    """

    positions: torch.Tensor
    momenta: torch.Tensor
    psi1: torch.Tensor
    psi2: torch.Tensor
    delta_k: torch.Tensor
    a_start: float
    box_size: float
    n_particles: int
    seed: int


def lattice(n: int, box_size: float, device=None, dtype=torch.float64) -> torch.Tensor:
    """Lagrangian positions q of an n^3 lattice, (n^3, 3), C order, q = index * L / n."""
    g = torch.arange(n, device=device, dtype=dtype) * (box_size / n)
    qx, qy, qz = torch.meshgrid(g, g, g, indexing="ij")
    return torch.stack([qx.reshape(-1), qy.reshape(-1), qz.reshape(-1)], dim=1)


def white_noise(n: int, seed: int) -> np.ndarray:
    """Unit-variance real-space white noise, (n, n, n) float64, from ``default_rng(seed)``."""
    return np.random.default_rng(seed).standard_normal((n, n, n))


def _k_squared_and_power(n: int, box_size: float, cosmology: Cosmology, device):
    """k^2 on the rfft grid and P_L(|k|) at z = 0, P evaluated once per distinct |k|."""
    kx, ky, kz = fourier_wavenumbers(n, box_size, device=device)
    k2 = kx**2 + ky**2 + kz**2
    # integer |k|^2 / k_F^2 indexes the distinct |k| values
    kf = 2 * np.pi / box_size
    ik2 = torch.round(k2 / kf**2).long()
    n_distinct = int(ik2.max().item()) + 1
    k_table = kf * np.sqrt(np.arange(n_distinct, dtype=float))
    p_table = torch.as_tensor(cosmology.linear_power(k_table), dtype=torch.float64, device=device)
    return k2, p_table[ik2]


def linear_density_k(n: int, box_size: float, cosmology: Cosmology, seed: int, device=None) -> torch.Tensor:
    """rfft (n, n, n//2+1) complex128 of the z = 0 linear density field of a seed."""
    noise = torch.as_tensor(white_noise(n, seed), device=device)
    wk = torch.fft.rfftn(noise)
    del noise
    _, pk = _k_squared_and_power(n, box_size, cosmology, device)
    amp = torch.sqrt(pk * (n**3 / box_size**3))
    amp[0, 0, 0] = 0.0
    return wk * amp


def _ifft_real(fk: torch.Tensor, n: int) -> torch.Tensor:
    return torch.fft.irfftn(fk, s=(n, n, n))


def lpt_displacements(delta_k: torch.Tensor, n: int, box_size: float) -> tuple[torch.Tensor, torch.Tensor]:
    """First- and second-order displacement fields (each (n^3, 3), z = 0 normalisation).

    ``psi1 = -grad phi1`` (Zel'dovich, ``-div psi1 = delta_L``) and ``psi2 = grad phi2`` with
    ``lap phi2 = sum_{i>j} (phi1_ii phi1_jj - phi1_ij^2)``; derivatives are spectral.
    """
    device = delta_k.device
    kx, ky, kz = fourier_wavenumbers(n, box_size, device=device)
    k2 = kx**2 + ky**2 + kz**2
    inv_k2 = torch.where(k2 > 0, 1.0 / torch.where(k2 > 0, k2, torch.ones_like(k2)), torch.zeros_like(k2))
    ks = (kx, ky, kz)
    # phi1_k = -delta_k / k^2; psi1 = -grad phi1 -> i k delta_k / k^2
    phi1_k = -delta_k * inv_k2
    psi1 = torch.stack([_ifft_real(-1j * ks[i] * phi1_k, n).reshape(-1) for i in range(3)], dim=1)
    # second derivatives phi1_ij -> -k_i k_j phi1_k; source accumulated term by term
    diag = [_ifft_real(-(ks[i] ** 2) * phi1_k, n) for i in range(3)]
    source = diag[0] * diag[1] + diag[0] * diag[2] + diag[1] * diag[2]
    del diag
    for i, j in ((0, 1), (0, 2), (1, 2)):
        off = _ifft_real(-ks[i] * ks[j] * phi1_k, n)
        source -= off * off
        del off
    src_k = torch.fft.rfftn(source)
    del source
    phi2_k = -src_k * inv_k2
    psi2 = torch.stack([_ifft_real(1j * ks[i] * phi2_k, n).reshape(-1) for i in range(3)], dim=1)
    return psi1, psi2


def initial_conditions(
    n_particles: int,
    box_size: float,
    seed: int,
    cosmology: Cosmology = Cosmology(),
    a_start: float = 0.1,
    device=None,
) -> InitialConditions:
    """2LPT initial conditions at ``a_start`` for an ``n_particles^3`` lattice in a box of
    ``box_size`` Mpc/h, drawn from ``cosmology.linear_power`` with integer ``seed``."""
    n = int(n_particles)
    device = torch.device(device) if device is not None else torch.device("cpu")
    delta_k = linear_density_k(n, box_size, cosmology, seed, device)
    psi1, psi2 = lpt_displacements(delta_k, n, box_size)
    d1 = float(cosmology.growth_factor(a_start))
    d2 = -3.0 / 7.0 * d1**2
    gf = float(cosmology.kick_factor_Gf(a_start))
    q = lattice(n, box_size, device=device)
    positions = torch.remainder(q + d1 * psi1 + d2 * psi2, box_size)
    positions = torch.where(positions >= box_size, positions - box_size, positions)
    momenta = gf * (psi1 - (6.0 / 7.0) * d1 * psi2)
    return InitialConditions(positions, momenta, psi1, psi2, delta_k, float(a_start), float(box_size), n, int(seed))

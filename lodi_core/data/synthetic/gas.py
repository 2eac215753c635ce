"""Hydrodynamic gas on top of the N-body particles, with HI painted from a published HI-halo
mass relation.

* **Cells.** One gas cell per dark-matter particle, at the particle's position plus a Gaussian
  offset of ``offset_fraction`` (default 0.1) times the mean inter-particle separation per
  axis, drawn from ``SeedSequence([seed, 1])``; it moves with its particle's velocity and
  belongs to its particle's FoF group. Masses: ``m_p Omega_b / Omega_m`` per cell (the DM
  particle of the hydro run then carries ``m_p (Omega_m - Omega_b) / Omega_m``).
* **HI in halos** (Villaescusa-Navarro et al. 2018, ApJ 866, 135, IllustrisTNG FoF halos at
  z = 0)::

      M_HI(M) = M0 (M / Mmin)^alpha exp(-(Mmin / M)^0.35),
      alpha = 0.24, M0 = 4.3e10 Msun/h, Mmin = 2.0e12 Msun/h,

  with M the FoF mass (all matter); the fit is the *mean* M_HI at fixed M, so each halo draws a
  mean-preserving log-normal scatter of ``scatter_dex`` (0.25 dex, ``SeedSequence([seed, 2])``)
  and the HI map is stochastic given the halos (capped at the halo's hydrogen mass). ``hi_draw``
  k > 0 draws that scatter again from ``SeedSequence([seed, 2, k])``, all else unchanged: another
  exact sample of the HI given the same particles, halos and gas cells. With the
  Sheth-Tormen FoF mass function this integrates to Omega_HI ~ 8e-4 at z = 0. The parameters
  are the z = 0 ones; other redshifts use them unchanged. The ``star_forming_share`` (0.5) of a halo's HI sits
  in its innermost gas cells (nearest ``GroupPos``): ``n_sf = floor(share M_HI / (X_H m_gas))``
  cells get ``StarFormationRate = m_gas / depletion_time`` (> 0) and x_HI = 1; the other
  member cells share the rest with one uniform x_HI, so that the halo's HI computed the CAMELS
  way, ``sum Masses X_H x_HI`` with x_HI := 1 where SFR > 0 and X_H = 0.76, equals the drawn
  M_HI (to float32 rounding).
* **HI outside halos** (cells of particles in no FoF group of 20+ members): photo-ionised
  gas, ``x_HI = igm_neutral_fraction (rho / rho_mean)^0.58`` (ionisation equilibrium, x_HI
  proportional to n T^-0.7 with T proportional to (rho / rho_mean)^0.6), capped at
  ``igm_max_neutral_fraction`` (1e-3); about 1e-5 at the mean density, a fraction of a per cent
  of the total HI.
* **Other fields** (plausible, unused by LODI): ``Density`` the comoving gas density from the
  CIC matter field on the particle lattice (Omega_b rho_crit (1 + delta), 1e10 (Msun/h) /
  (ckpc/h)^3); ``InternalEnergy`` (km/s)^2: 1e4 K neutral gas in star-forming cells, the
  photo-heated IGM ``T = 1e4 K (rho / rho_mean)^0.6`` (capped at 1e6 K) outside halos, and the
  larger of that and the virial ``u = 3/4 V_c^2`` (``V_c^2 = G M / R_200c(M)``) for the other
  halo gas; ``ElectronAbundance`` n_e / n_H = ``(1 - x_HI)(1 + 2 y_He)``, y_He = Y / (4 X);
  ``GFM_Metallicity`` 0.01 in star-forming cells, 0.002 in other halo gas, 1e-4 in the IGM;
  ``Velocities`` those of the dark-matter partner.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ...physics.cosmology import RHO_CRIT_H2, Cosmology
from ...physics.fields import GADGET_MASS_UNIT, cic, cic_readout
from .fof import Halos

#: hydrogen mass fraction used for the HI mass, M_HI = Masses X_H x_HI (CAMELS convention)
X_H = 0.76
#: helium to hydrogen number ratio for Y = 1 - X_H
Y_HE = (1.0 - X_H) / (4.0 * X_H)
#: Newton's constant in Mpc (km/s)^2 / Msun
G_MPC_KMS2_MSUN = 4.30091e-9
#: (3/2) k_B / m_p in (km/s)^2 per K
_U_PER_K = 1.5 * 1.380649e-23 / 1.67262192e-27 / 1e6
MU_NEUTRAL, MU_IONISED = 1.22, 0.59


@dataclass(frozen=True)
class HIModel:
    """Parameters of the HI painting (see the module docstring)."""

    alpha: float = 0.24
    m0: float = 4.3e10  # Msun/h
    m_min: float = 2.0e12  # Msun/h
    scatter_dex: float = 0.25
    star_forming_share: float = 0.5
    depletion_time_yr: float = 2.0e9
    igm_neutral_fraction: float = 1e-5
    igm_max_neutral_fraction: float = 1e-3
    offset_fraction: float = 0.1

    def mean_hi_mass(self, m_halo):
        """Mean M_HI(M) in Msun/h of Villaescusa-Navarro et al. (2018) for FoF mass M [Msun/h]."""
        m = np.asarray(m_halo, dtype=np.float64)
        return self.m0 * (m / self.m_min) ** self.alpha * np.exp(-((self.m_min / m) ** 0.35))


def gas_positions(
    dm_positions: np.ndarray, box_size: float, n_side: int, seed: int, offset_fraction: float = 0.1
) -> np.ndarray:
    """Gas cell positions (Mpc/h, float64, in [0, L)): DM positions plus a seeded Gaussian
    offset of ``offset_fraction`` mean separations per axis."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1]))
    offset = rng.standard_normal(np.shape(dm_positions)) * (offset_fraction * box_size / n_side)
    out = np.mod(np.asarray(dm_positions, dtype=np.float64) + offset, box_size)
    out[out >= box_size] = 0.0
    return out


def halo_hi_masses(halos: Halos, seed: int, model: HIModel, draw: int = 0) -> np.ndarray:
    """Drawn M_HI per halo (Msun/h): the mean relation times a mean-preserving log-normal,
    ``10^(sigma N(0, 1)) exp(-(sigma ln 10)^2 / 2)`` with sigma = ``scatter_dex``; ``draw`` 0 is
    the simulation's own draw, k > 0 another one (module docstring)."""
    if draw < 0:
        raise ValueError(f"the HI scatter draw must be >= 0, got {draw}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 2] + ([int(draw)] if draw else [])))
    sigma = model.scatter_dex
    scatter = 10.0 ** (sigma * rng.standard_normal(len(halos))) * np.exp(-0.5 * (sigma * np.log(10.0)) ** 2)
    if len(halos) == 0:
        return np.zeros(0)
    return model.mean_hi_mass(halos.mass) * scatter


def paint_hi(gas_pos: np.ndarray, gas_mass: float, halos: Halos, m_hi: np.ndarray, box_size: float, model: HIModel):
    """x_HI and star formation of the gas in halos.

    Returns ``(x_hi, sfr, in_halo, m_hi_used)``: x_HI per cell (NaN outside halos, to be
    filled by the IGM model), SFR in Msun/yr, a boolean of halo membership, and the HI mass
    per halo actually painted (the drawn one, capped at the halo's hydrogen mass).
    ``gas_mass`` in Msun/h; the HI per cell is ``gas_mass X_H x_HI``.
    """
    n = len(gas_pos)
    x_hi = np.full(n, np.nan)
    sfr = np.zeros(n)
    h_cell = X_H * gas_mass
    sfr_cell = gas_mass / (model.depletion_time_yr * 1.0)  # Msun/h per yr; converted below
    m_used = np.minimum(np.asarray(m_hi, dtype=np.float64), h_cell * halos.n_members)
    for g in range(len(halos)):
        members = halos.members(g)
        d = gas_pos[members] - halos.pos[g]
        d -= box_size * np.round(d / box_size)
        inner = members[np.argsort(np.einsum("ij,ij->i", d, d), kind="stable")]
        n_sf = min(int(np.floor(model.star_forming_share * m_used[g] / h_cell)), len(inner))
        sf, rest = inner[:n_sf], inner[n_sf:]
        x_hi[sf] = 1.0
        sfr[sf] = sfr_cell
        if len(rest):
            x_hi[rest] = np.clip((m_used[g] - n_sf * h_cell) / (h_cell * len(rest)), 0.0, 1.0)
    in_halo = halos.labels >= 0
    return x_hi, sfr, in_halo, m_used


def make_gas(
    dm_positions: np.ndarray,
    dm_velocities: np.ndarray,
    halos: Halos,
    cosmology: Cosmology,
    box_size: float,
    n_side: int,
    seed: int,
    model: HIModel = HIModel(),
    redshift: float = 0.0,
    device=None,
    hi_draw: int = 0,
) -> dict:
    """All gas fields of the hydro snapshot (see the module docstring; ``hi_draw`` selects the
    draw of the per-halo HI scatter).

    ``dm_positions`` (N, 3) Mpc/h, ``dm_velocities`` (N, 3) in the snapshot's velocity units
    (copied). Returns a dict with ``Coordinates`` (Mpc/h, float64), ``Masses`` (Msun/h,
    scalar), ``NeutralHydrogenAbundance``, ``StarFormationRate`` (Msun/yr), ``Velocities``,
    ``Density`` (1e10 (Msun/h) / (ckpc/h)^3), ``InternalEnergy`` ((km/s)^2),
    ``ElectronAbundance``, ``GFM_Metallicity``, and ``halo_hi`` (M_HI per halo, Msun/h).
    """
    n = len(dm_positions)
    m_p = cosmology.omega_m * RHO_CRIT_H2 * box_size**3 / n
    gas_mass = m_p * cosmology.omega_b / cosmology.omega_m
    pos = gas_positions(dm_positions, box_size, n_side, seed, model.offset_fraction)

    # matter overdensity (CIC on the particle lattice) at the gas cells
    dm_t = torch.as_tensor(np.asarray(dm_positions), device=device)
    counts = cic(dm_t, box_size, n_side, dtype=torch.float32, device=device)
    counts /= counts.mean()
    rho_ratio = cic_readout(counts, torch.as_tensor(pos, device=device), box_size).double().cpu().numpy()
    del counts, dm_t
    rho_ratio = np.maximum(rho_ratio, 1e-3)

    m_hi = halo_hi_masses(halos, seed, model, hi_draw)
    x_hi, sfr, in_halo, m_used = paint_hi(pos, gas_mass, halos, m_hi, box_size, model)
    igm = np.isnan(x_hi)
    x_hi[igm] = np.minimum(model.igm_neutral_fraction * rho_ratio[igm] ** 0.58, model.igm_max_neutral_fraction)
    sfr /= cosmology.h  # Msun/h per yr -> Msun/yr
    star_forming = sfr > 0

    a = 1.0 / (1.0 + redshift)
    t_igm = np.minimum(1e4 * rho_ratio**0.6, 1e6)
    u = _U_PER_K * t_igm / MU_IONISED
    if len(halos):
        rho_200 = 200.0 * RHO_CRIT_H2 * float(cosmology.E(redshift)) ** 2
        r_phys = a * (3 * halos.mass / (4 * np.pi * rho_200 * a**3)) ** (1 / 3)  # Mpc/h
        u_vir = 0.75 * G_MPC_KMS2_MSUN * halos.mass / r_phys  # (km/s)^2, h cancels
        u[in_halo] = np.maximum(u[in_halo], u_vir[halos.labels[in_halo]])
    u[star_forming] = _U_PER_K * 1e4 / MU_NEUTRAL
    metallicity = np.where(star_forming, 0.01, np.where(in_halo, 0.002, 1e-4))
    density = cosmology.omega_b * RHO_CRIT_H2 * rho_ratio / GADGET_MASS_UNIT / 1e9  # 1e10 Msun/h / (ckpc/h)^3
    return {
        "Coordinates": pos,
        "Masses": gas_mass,
        "NeutralHydrogenAbundance": x_hi.astype(np.float32),
        "StarFormationRate": sfr.astype(np.float32),
        "Velocities": np.asarray(dm_velocities, dtype=np.float32).copy(),
        "Density": density.astype(np.float32),
        "InternalEnergy": u.astype(np.float32),
        "ElectronAbundance": ((1.0 - x_hi) * (1.0 + 2.0 * Y_HE)).astype(np.float32),
        "GFM_Metallicity": metallicity.astype(np.float32),
        "halo_hi": m_used,
    }


def hi_mass_per_cell(masses, x_hi, sfr) -> np.ndarray:
    """M_HI per cell the CAMELS way: Masses X_H x_HI with x_HI := 1 where SFR > 0."""
    return (
        np.asarray(masses, dtype=np.float64)
        * X_H
        * np.where(np.asarray(sfr) > 0, 1.0, np.asarray(x_hi, dtype=np.float64))
    )


def omega_hi(masses, x_hi, sfr, box_size: float) -> float:
    """Omega_HI = rho_HI / rho_crit of a box; ``masses`` in Msun/h, ``box_size`` Mpc/h."""
    return float(hi_mass_per_cell(masses, x_hi, sfr).sum() / (RHO_CRIT_H2 * box_size**3))

"""Flat LambdaCDM background, linear growth and the linear matter power spectrum.

The linear P(k) comes from colossus (Diemer 2018, Eisenstein & Hu transfer function);
the growth factors are integrated here because the particle-mesh integrator needs
D(a), dD/da and the FastPM kick factor consistently on its own time grid.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

#: critical density today, h^2 Msun / Mpc^3
RHO_CRIT_H2 = 2.77536627e11


@dataclass(frozen=True)
class Cosmology:
    """Flat LambdaCDM parameters (defaults: the CAMELS CV set)."""

    omega_m: float = 0.3
    omega_b: float = 0.049
    h: float = 0.6711
    n_s: float = 0.9624
    sigma8: float = 0.8

    @property
    def omega_l(self) -> float:
        return 1.0 - self.omega_m

    def E(self, z):
        """H(z)/H0."""
        return np.sqrt(self.omega_m * (1 + np.asarray(z, dtype=float)) ** 3 + self.omega_l)

    def E_a(self, a):
        a = np.asarray(a, dtype=float)
        return np.sqrt(self.omega_m / a**3 + self.omega_l)

    @property
    def mean_matter_density(self) -> float:
        """Comoving mean matter density, h^2 Msun / Mpc^3."""
        return self.omega_m * RHO_CRIT_H2

    def as_dict(self) -> dict:
        return asdict(self)

    # ----- linear growth (flat LambdaCDM, no radiation) -----
    def growth_factor(self, a):
        """D(a) = 5/2 Om E(a) int_0^a da' / (a' E(a'))^3, normalised to D(1) = 1."""
        return _growth(self)(np.asarray(a, dtype=float))[0]

    def growth_derivative(self, a):
        """dD/da for the normalised growth factor."""
        return _growth(self)(np.asarray(a, dtype=float))[1]

    def kick_factor_Gf(self, a):
        """G_f(a) = a^3 E(a) dD/da: the momentum p = a^2 dx/dtau of linear theory per unit
        displacement (tau = H0 t); FastPM's kick integrates F with (G_f(a1) - G_f(a0)) /
        (3/2 Om D(a_r))."""
        a = np.asarray(a, dtype=float)
        return a**3 * self.E_a(a) * self.growth_derivative(a)

    # ----- linear power spectrum -----
    def linear_power(self, k, z: float = 0.0):
        """Linear matter P(k) [(Mpc/h)^3] at wavenumbers k [h/Mpc], from colossus."""
        k = np.asarray(k, dtype=float)
        out = np.zeros_like(k)
        pos = k > 0
        out[pos] = _colossus(self).matterPowerSpectrum(k[pos], z=z)
        return out


def _colossus(c: Cosmology):
    """The colossus cosmology of ``c``, made colossus' current one (its other modules, e.g.
    mass_function, use the current cosmology)."""
    from colossus.cosmology import cosmology as ccosmo

    cosmo = _colossus_cosmology(c)
    ccosmo.setCurrent(cosmo)
    return cosmo


@lru_cache(maxsize=8)
def _colossus_cosmology(c: Cosmology):
    from colossus.cosmology import cosmology as ccosmo

    name = f"lodi_{c.omega_m}_{c.omega_b}_{c.h}_{c.n_s}_{c.sigma8}"
    params = dict(flat=True, H0=100 * c.h, Om0=c.omega_m, Ob0=c.omega_b, sigma8=c.sigma8, ns=c.n_s, relspecies=False)
    return ccosmo.setCosmology(name, params=params, persistence="")


@lru_cache(maxsize=8)
def _growth(c: Cosmology):
    """Tabulated D(a), dD/da on a fine log grid, interpolated."""
    from scipy import integrate  # here: only the simulations need it, and it costs every job ~0.5 s to import

    a_grid = np.logspace(-4, 0.3, 4000)

    def integrand(a):
        return 1.0 / (a * np.sqrt(c.omega_m / a**3 + c.omega_l)) ** 3

    integral = np.empty_like(a_grid)
    integral[0] = integrate.quad(integrand, 0.0, a_grid[0])[0]
    steps = [integrate.quad(integrand, a0, a1)[0] for a0, a1 in zip(a_grid[:-1], a_grid[1:])]
    integral[1:] = integral[0] + np.cumsum(steps)
    E = np.sqrt(c.omega_m / a_grid**3 + c.omega_l)
    D = 2.5 * c.omega_m * E * integral
    dE = -1.5 * c.omega_m / a_grid**4 / E
    dD = 2.5 * c.omega_m * (dE * integral + E * integrand(a_grid))
    D1 = np.interp(1.0, a_grid, D)
    logA = np.log(a_grid)

    def evaluate(a):
        la = np.log(a)
        return np.interp(la, logA, D) / D1, np.interp(la, logA, dD) / D1

    return evaluate


CAMELS_CV = Cosmology()

"""The halo-model baseline: T_b painted deterministically on the halo channels.

Each halo of channel c holds M_HI = r_c M_h; since CIC and the Gaussian smoothing are linear,
painting the catalogue and smoothing equals T_b = sum_c f_c rho_h^(c) on the smoothed channel
grids, f_c = K h r_c with K the Eq. 12 factor. The f_c >= 0 are a least-squares fit on the
training simulations' grids; they are applied to HALOgen's halos (``halo_model``, the
pipeline's comparison) and to the true halos (``halo_model_true``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from scipy.optimize import nnls

from ..io import InputError, code_version, read_grids
from ..physics.cosmology import Cosmology
from ..physics.fields import brightness_temperature, cell_volume, cic
from ..physics.halos import channel_index

log = logging.getLogger(__name__)


def tb_per_hi_density(cosmology: Cosmology, redshift: float) -> float:
    """K of Eq. 12, T_b = K rho_HI: mK per (Msun/h) (Mpc/h)^-3."""
    return float(brightness_temperature(torch.ones((), dtype=torch.float64), cosmology, redshift))


def hi_ratio_to_coefficient(ratio, cosmology: Cosmology, redshift: float) -> np.ndarray:
    """M_HI / M_h per channel -> f_c in mK per Msun (Mpc/h)^-3 (halo channels are in Msun
    per (Mpc/h)^3, rho_HI in (Msun/h) per (Mpc/h)^3, hence the factor h)."""
    return np.asarray(ratio, dtype=np.float64) * cosmology.h * tb_per_hi_density(cosmology, redshift)


def coefficient_to_hi_ratio(coefficients, cosmology: Cosmology, redshift: float) -> np.ndarray:
    """Inverse of :func:`hi_ratio_to_coefficient`."""
    return np.asarray(coefficients, dtype=np.float64) / (cosmology.h * tb_per_hi_density(cosmology, redshift))


def paint_halo_catalogue(
    positions,
    mass_msun,
    hi_ratio,
    box_size: float,
    n_grid: int,
    mass_edges,
    cosmology: Cosmology,
    redshift: float = 0.0,
    device=None,
) -> torch.Tensor:
    """The halo model on a catalogue: each halo of channel c (Eq. 1 edges, Msun) holds
    M_HI = r_c M_h, CIC-painted and turned into T_b (Eq. 12) [mK], before smoothing.
    Halos below the first edge hold no HI. ``positions`` in Mpc/h, ``mass_msun`` in Msun."""
    mass = np.asarray(mass_msun, dtype=np.float64).reshape(-1)
    channel = channel_index(mass, mass_edges)
    ratio = np.append(np.asarray(hi_ratio, dtype=np.float64), 0.0)  # index -1: below the first edge
    m_hi = ratio[channel] * mass * cosmology.h  # Msun/h
    rho_hi = cic(
        np.asarray(positions, dtype=np.float64).reshape(-1, 3),
        box_size,
        n_grid,
        weights=m_hi,
        dtype=torch.float64,
        device=device,
    )
    return brightness_temperature(rho_hi / cell_volume(box_size, n_grid), cosmology, redshift)


def paint_halo_channels(halos, coefficients) -> torch.Tensor:
    """T_b = sum_c f_c rho_h^(c) [mK] on halo channel grids (C, n, n, n) in Msun (Mpc/h)^-3;
    equal to :func:`paint_halo_catalogue` followed by the channels' smoothing."""
    h = torch.as_tensor(np.asarray(halos), dtype=torch.float64)
    f = torch.as_tensor(np.asarray(coefficients, dtype=np.float64))
    if h.ndim != 4 or h.shape[0] != f.numel():
        raise ValueError(f"halos of shape {tuple(h.shape)} do not match {f.numel()} coefficients")
    return torch.einsum("c,cxyz->xyz", f, h)


def with_halo_model_channel(halos: torch.Tensor, weights, channel_dim: int) -> torch.Tensor:
    """``halos`` with one channel more: sum_c w_c rho_h^(c), the halo model's T_b
    (:func:`paint_halo_channels`) over its largest coefficient (w = f / max f), a mass density in
    Msun (Mpc/h)^-3 like the channels it sums. LODI's extra condition
    (``lodi.train.halo_model_channel``; beyond the paper): the network sees the log of this sum,
    which log-normalised inputs of each channel do not give it directly."""
    w = torch.as_tensor(np.asarray(weights, dtype=np.float64), dtype=halos.dtype, device=halos.device)
    if halos.shape[channel_dim] != w.numel():
        raise ValueError(f"halos of shape {tuple(halos.shape)} do not match {w.numel()} halo-model weights")
    shape = [1] * halos.ndim
    shape[channel_dim] = -1
    return torch.cat([halos, (halos * w.view(shape)).sum(dim=channel_dim, keepdim=True)], dim=channel_dim)


def fit_coefficients(halos_list, tb_list, chunk: int = 16) -> tuple[np.ndarray, float]:
    """Non-negative least squares for f_c in tb ~ sum_c f_c halos_c over every voxel of
    every training grid; returns f (mK per Msun (Mpc/h)^-3) and the fraction of the T_b
    variance explained. The C x C normal equations are summed over slabs of ``chunk`` planes
    (memory O(C^2) beyond one slab, not a copy of every voxel: 256^3 grids fit), and the NNLS
    is solved on their square root, whose residual equals the design matrix's up to a constant."""
    gram, rhs, col_sum = 0.0, 0.0, 0.0
    n, tb_sum, tb_sq = 0, 0.0, 0.0
    for h, t in zip(halos_list, tb_list):
        if np.shape(t) != np.shape(h)[1:]:
            raise ValueError(f"T_b of shape {np.shape(t)} does not match halo channels {np.shape(h)}")
        for i in range(0, np.shape(t)[0], chunk):
            a = np.asarray(h[:, i : i + chunk], dtype=np.float64).reshape(np.shape(h)[0], -1)
            b = np.asarray(t[i : i + chunk], dtype=np.float64).ravel()
            gram, rhs, col_sum = gram + a @ a.T, rhs + a @ b, col_sum + a.sum(axis=1)
            n, tb_sum, tb_sq = n + b.size, tb_sum + b.sum(), tb_sq + b @ b
    var = np.diag(gram) / n - (col_sum / n) ** 2
    scale = np.where(var > 0, np.sqrt(np.maximum(var, 0.0)), 1.0)  # column scaling: channels differ by decades
    gram_s, rhs_s = gram / np.outer(scale, scale), rhs / scale
    # gram_s = R^T R with R = sqrt(L) V^T; ||R x - d||^2 = x^T gram_s x - 2 x^T rhs_s + const
    lam, vec = np.linalg.eigh(gram_s)
    keep = lam > lam.max() * 1e-12
    r = np.sqrt(lam[keep])[:, None] * vec[:, keep].T
    x, _ = nnls(r, (vec[:, keep].T @ rhs_s) / np.sqrt(lam[keep]))
    f = x / scale
    resid_mean = (tb_sum - f @ col_sum) / n
    resid_var = (tb_sq - 2 * f @ rhs + f @ gram @ f) / n - resid_mean**2
    tb_var = tb_sq / n - (tb_sum / n) ** 2
    explained = 1.0 - float(resid_var / tb_var) if tb_var > 0 else float("nan")
    return f, explained


@dataclass(frozen=True)
class HaloModel:
    """The fitted halo model: f_c [mK per Msun (Mpc/h)^-3] and r_c = M_HI / M_h per channel."""

    coefficients: tuple
    hi_ratio: tuple
    mass_edges: tuple
    explained_variance: float
    training: tuple
    grid: dict

    def to_json(self) -> dict:
        d = asdict(self)
        d.update(
            kind="halo_model",
            units={"coefficients": "mK / (Msun (Mpc/h)^-3)", "hi_ratio": "M_HI / M_h", "mass_edges": "Msun"},
            code_version=code_version(),
        )
        return d

    @classmethod
    def load(cls, path) -> HaloModel:
        p = Path(path)
        if not p.exists():
            raise InputError(p, "missing halo-model file: the file does not exist")
        try:
            d = json.loads(p.read_text())
        except json.JSONDecodeError as err:
            raise InputError(p, f"not a JSON halo-model file ({err})") from err
        if d.get("kind") != "halo_model":
            raise InputError(p, f"file is of kind '{d.get('kind')}', expected 'halo_model'")
        return cls(
            **{
                k: (tuple(d[k]) if isinstance(d[k], list) else d[k])
                for k in ("coefficients", "hi_ratio", "mass_edges", "explained_variance", "training", "grid")
            }
        )


def _grid_cosmology(attrs: dict) -> Cosmology:
    c = attrs.get("cosmology")
    return Cosmology(**c) if isinstance(c, dict) else Cosmology()


def fit_halo_model(grid_paths, expect: dict | None = None) -> HaloModel:
    """Fit f_c on the training simulations' (smoothed) halo channels and T_b."""
    halos, tbs, attrs = [], [], {}
    for p in grid_paths:
        data, attrs = read_grids(p, ("halos", "tb"), expect)
        halos.append(data["halos"])
        tbs.append(data["tb"])
    f, explained = fit_coefficients(halos, tbs)
    cosmology, z = _grid_cosmology(attrs), float(attrs.get("redshift", 0.0))
    ratio = coefficient_to_hi_ratio(f, cosmology, z)
    edges = tuple(float(e) for e in attrs.get("halo_mass_edges", [])) or tuple([float("nan")] * len(f))
    log.info(
        "halo model: M_HI/M_h per channel %s (f_c %s mK per Msun (Mpc/h)^-3), T_b variance explained %.3f",
        np.array2string(ratio, precision=4),
        np.array2string(f, precision=4),
        explained,
    )
    grid = {k: attrs.get(k) for k in ("box_size", "n_grid", "smoothing_radius", "redshift", "cosmology")}
    return HaloModel(
        tuple(map(float, f)), tuple(map(float, ratio)), edges, explained, tuple(str(p) for p in grid_paths), grid
    )

"""Calibration of a model's output field (beyond the paper): per channel, a non-decreasing map
from the model's value to a true value, fitted on simulations whose truth is known and applied
at inference. HALOgen's mass calibration
(``halogen.mass_calibration``, ``generation.halos.calibrate_halogen``) and LODI's T_b
calibration (``lodi.tb_calibration``, ``generation.jobs.calibrate_lodi``) are both one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

CALIBRATION_METHODS = ("mean", "quantile")


def _log10_value(x: np.ndarray) -> np.ndarray:
    """log10 of a non-negative field in float64, zero (and an inverse transform's rounding below
    it) read as 1e-30: below any knot, so it takes the lowest bin's value."""
    return np.log10(np.maximum(np.asarray(x, np.float64), 1e-30))


@dataclass(frozen=True)
class Calibration:
    """Per channel, a non-decreasing map from a model's value to a true one, tabulated at knots
    in log10 of the model's value and interpolated between them (constant beyond the end
    knots); ``log_pred[c]`` and ``rho[c]`` are channel c's knots (the key names of the model
    files, which HALOgen's mass calibration wrote first)."""

    log_pred: tuple
    rho: tuple

    def apply(self, rho: torch.Tensor) -> torch.Tensor:
        """The calibrated (C, ...) channels of a model's (C, ...) output ``rho``."""
        if rho.shape[0] != len(self.rho):
            raise ValueError(f"calibration has {len(self.rho)} channels, prediction {rho.shape[0]}")
        out = np.empty(rho.shape, np.float32)
        lp = _log10_value(rho.detach().cpu().numpy())
        for c, (x, y) in enumerate(zip(self.log_pred, self.rho)):
            out[c] = np.interp(lp[c], x, y)
        return torch.from_numpy(out).to(rho.device)

    def to_dict(self) -> dict:
        knots = {"log_pred": self.log_pred, "rho": self.rho}
        return {name: [[float(v) for v in c] for c in per_channel] for name, per_channel in knots.items()}

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        return cls(tuple(tuple(x) for x in d["log_pred"]), tuple(tuple(y) for y in d["rho"]))


def calibration_methods(method: str | list, n_channels: int) -> list[str]:
    """One calibration method per channel from a config value (one name for every channel or a
    list of one per channel), checked."""
    methods = [method] * n_channels if isinstance(method, str) else list(method)
    if len(methods) != n_channels:
        raise ValueError(f"calibration methods {methods}: expected one per channel ({n_channels})")
    for m in methods:
        if m not in CALIBRATION_METHODS:
            raise ValueError(f"calibration method {m!r}: expected one of {', '.join(CALIBRATION_METHODS)}")
    return methods


def rank_levels(n_voxels: int, bins: int, top_voxels: int, lower_levels: int = 1) -> np.ndarray:
    """The rank levels of the knots: ``lower_levels`` evenly spaced from 0 below the median,
    the median, then a tail whose voxel counts shrink geometrically down to ``top_voxels``
    above its last level (``bins`` - 1 levels), and 1."""
    tail = np.logspace(np.log10(0.5), np.log10(min(0.5, top_voxels / n_voxels)), bins - 1)
    return np.concatenate([np.arange(lower_levels) * 0.5 / lower_levels, 1.0 - tail, [1.0]])


def fit_calibration(
    predicted: list[np.ndarray],
    target: list[np.ndarray],
    method: str | list = "mean",
    bins: int = 32,
    top_voxels: int = 20,
    lower_levels: int = 1,
) -> Calibration:
    """:class:`Calibration` from a model's (C, N, N, N) outputs (uncalibrated) on simulations
    whose truth is known (HALOgen: its training simulations) and their true (C, N, N, N)
    fields, per channel over the pooled voxels. Both
    methods use the knots' :func:`rank_levels` (``bins``, ``top_voxels``, ``lower_levels``).

    - ``mean``: E[true | predicted]. Bins of log10 of the prediction between those levels
      (empty bins dropped); a knot is a bin's mean log10 prediction and mean true value, made
      non-decreasing by weighted isotonic regression (scipy). A prediction's expected value is
      the true one, so every channel keeps its total; but it lands spread over every voxel of
      an uncertain prediction (little power at small scales).
    - ``quantile``: the true value of the same rank (quantile mapping). A knot is the log10
      prediction and the true value at a level, so the calibrated channels have the true
      one-point distribution (how many voxels hold how much, hence their small-scale power),
      the brightest predictions taking the brightest true values.

    ``method`` is one name for every channel or a list of one per channel."""
    if len(predicted) != len(target) or not predicted:
        raise ValueError("calibration needs one prediction per target, at least one")
    n_ch = target[0].shape[0]
    methods = calibration_methods(method, n_ch)
    from scipy.optimize import isotonic_regression  # here: every inference job would pay its import

    knots_x, knots_y = [], []
    for c in range(n_ch):
        p = _log10_value(np.concatenate([np.asarray(a[c]).ravel() for a in predicted]))
        t = np.concatenate([np.asarray(a[c], np.float64).ravel() for a in target])
        levels = rank_levels(p.size, bins, top_voxels, lower_levels)
        if methods[c] == "quantile":
            x, first = np.unique(np.quantile(p, levels), return_index=True)
            knots_x.append(tuple(x))
            knots_y.append(tuple(np.quantile(t, levels)[first]))
            continue
        edges = np.unique(np.quantile(p, levels))
        idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
        count = np.bincount(idx)
        used = count > 0
        mean_t = np.bincount(idx, t)[used] / count[used]
        mean_p = np.bincount(idx, p)[used] / count[used]
        knots_x.append(tuple(mean_p))
        knots_y.append(tuple(isotonic_regression(mean_t, weights=count[used].astype(np.float64)).x))
    return Calibration(tuple(knots_x), tuple(knots_y))


def normalised_to_tb(x0: torch.Tensor, tb_transform, calibration: Calibration | None) -> torch.Tensor:
    """LODI's normalised x_0 -> T_b in mK: the inverse of ``tb_transform`` (a
    :class:`.transforms.LogTransform`), then the T_b ``calibration`` where there is one."""
    tb = tb_transform.inverse(x0)
    if calibration is not None:
        tb = calibration.apply(tb.reshape(1, -1)).reshape(tb.shape)
    return tb


def tb_calibration(meta: dict) -> Calibration | None:
    """The T_b calibration of a LODI model file's content (``lodi.tb_calibration``), if any."""
    return Calibration.from_dict(meta["tb_calibration"]) if meta.get("tb_calibration") else None


TB_CALIBRATION_BINS = 64  # knots of LODI's T_b map above and below the median


TB_CALIBRATION_LEVELS = ("lodi", "calibration")


def fit_tb_calibration(generated: list[np.ndarray], true: list[np.ndarray], level: str = "lodi") -> Calibration:
    """LODI's T_b calibration (``lodi.tb_calibration: quantile``) from its T_b volumes of the
    calibration simulations and their true T_b (one true volume per generated one): the
    quantile map (:func:`fit_calibration`, ``TB_CALIBRATION_BINS`` knots above and below the
    median), scaled so that the calibrated volumes' total T_b is the generated volumes' total
    (``level="lodi"``: the shape of the one-point distribution, which P(k) of T_b/<T_b> depends
    on, is corrected and the level <T_b> left to LODI) or the true volumes' total
    (``"calibration"``: LODI's mean bias on the calibration simulations is divided out too).
    The scale multiplies every voxel, so P(k) of T_b/<T_b> is the same with either. A level from
    two 12.5 Mpc/h fields serves on the true halos as far as their HI content is that of the
    fields it is applied to, and can fail on HALOgen's halos, whose errors differ from field to
    field (docs/convergence.md, "Calibrating T_b")."""
    if level not in TB_CALIBRATION_LEVELS:
        raise ValueError(f"T_b calibration level {level!r}: expected one of {', '.join(TB_CALIBRATION_LEVELS)}")
    bins = TB_CALIBRATION_BINS
    cal = fit_calibration(
        [g[None] for g in generated], [t[None] for t in true], "quantile", bins=bins, lower_levels=bins
    )
    g = np.concatenate([np.asarray(x, np.float64).ravel() for x in generated])
    total = g.sum() if level == "lodi" else sum(np.asarray(t, np.float64).sum() for t in true)
    scale = total / cal.apply(torch.from_numpy(g[None])).double().sum().item()
    return Calibration(cal.log_pred, (tuple(float(y) * scale for y in cal.rho[0]),))

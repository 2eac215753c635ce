"""HALOgen on a whole box (Sec. 2.1.1): sliding windows of the training size, overlaps
averaged, inverted to physical units, mass-calibrated (beyond the paper) and post-thresholded
(Sec. 3.1)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.transforms import LogTransform
from ..data.windows import sliding_window_apply
from ..io import InputError, read_grids
from ..models.halogen import HALOgen
from ..runtime import autocast, memory_format


@torch.no_grad()
def predict_halos(
    model: HALOgen,
    meta: dict,
    dm: np.ndarray,
    stride: int,
    periodic: bool,
    post_threshold: float | None,
    batch_size: int,
    bf16: bool,
    channels_last: bool,
    progress: bool = False,
    calibrate: bool = True,
) -> torch.Tensor:
    """HALOgen on a whole box: windows of the training size every ``stride`` cells,
    overlaps averaged (Sec. 2.1.1), inverted to Msun (Mpc/h)^-3, mapped through the model
    file's :class:`MassCalibration` where it has one (and ``calibrate``), and voxels with
    log10 rho_h < ``post_threshold`` set to 0 (Sec. 3.1); ``bf16`` autocast and the
    ``channels_last`` layout for speed (config ``halogen.inference``)."""
    device = next(model.parameters()).device
    fmt = memory_format(channels_last)
    model = model.to(memory_format=fmt)
    window = int(meta["window"])
    if min(dm.shape) < window:
        raise InputError("dm", f"box of {dm.shape[0]}^3 cells is smaller than the HALOgen window {window}^3")
    dm_t = LogTransform.from_dict(meta["dm_transform"])
    halo_t = LogTransform.from_dict(meta["halo_transform"])
    x = dm_t.forward(torch.as_tensor(dm, dtype=torch.float32, device=device)).unsqueeze(0)

    def fn(batch):
        with autocast(device, bf16):
            return model(batch.contiguous(memory_format=fmt)).float()

    y = sliding_window_apply(
        x, fn, window, stride, periodic, batch_size, out_channels=model.cfg.out_channels, progress=progress
    )
    rho = halo_t.inverse(y, channel_dim=0)
    if calibrate and meta.get("mass_calibration"):
        rho = MassCalibration.from_dict(meta["mass_calibration"]).apply(rho)
    if post_threshold is not None:
        rho[rho < 10.0**post_threshold] = 0.0
    return rho


def _log10_density(rho: np.ndarray) -> np.ndarray:
    """log10 of a density in float64, zero (and the inverse transform's rounding below it)
    read as 1e-30: below any knot, so it takes the lowest bin's value."""
    return np.log10(np.maximum(np.asarray(rho, np.float64), 1e-30))


@dataclass(frozen=True)
class MassCalibration:
    """Per halo channel, a non-decreasing map from HALOgen's rho_h to a true rho_h, fitted on
    the training simulations (beyond the paper; :func:`fit_mass_calibration`).

    HALOgen regresses log rho_h (Eq. 5), so where a halo's position or mass channel is
    uncertain it predicts a mean of the logarithm, orders of magnitude below the mean density:
    the mass of the channel is lost, and the post-threshold then removes most of what is left.
    The map is tabulated at knots in log10 rho_pred and interpolated between them (constant
    beyond the end knots); ``log_pred[c]`` and ``rho[c]`` are channel c's knots."""

    log_pred: tuple
    rho: tuple

    def apply(self, rho: torch.Tensor) -> torch.Tensor:
        """The calibrated (C, N, N, N) channels of HALOgen's (C, N, N, N) ``rho``."""
        if rho.shape[0] != len(self.rho):
            raise ValueError(f"mass calibration has {len(self.rho)} channels, prediction {rho.shape[0]}")
        out = np.empty(rho.shape, np.float32)
        lp = _log10_density(rho.detach().cpu().numpy())
        for c, (x, y) in enumerate(zip(self.log_pred, self.rho)):
            out[c] = np.interp(lp[c], x, y)
        return torch.from_numpy(out).to(rho.device)

    def to_dict(self) -> dict:
        knots = {"log_pred": self.log_pred, "rho": self.rho}
        return {name: [[float(v) for v in c] for c in per_channel] for name, per_channel in knots.items()}

    @classmethod
    def from_dict(cls, d: dict) -> MassCalibration:
        return cls(tuple(tuple(x) for x in d["log_pred"]), tuple(tuple(y) for y in d["rho"]))


CALIBRATION_METHODS = ("mean", "quantile")


def calibration_methods(method: str | list, n_channels: int) -> list[str]:
    """One calibration method per channel from ``halogen.mass_calibration`` (one name for
    every channel or a list of one per channel), checked."""
    methods = [method] * n_channels if isinstance(method, str) else list(method)
    if len(methods) != n_channels:
        raise ValueError(f"mass calibration methods {methods}: expected one per channel ({n_channels})")
    for m in methods:
        if m not in CALIBRATION_METHODS:
            raise ValueError(f"mass calibration method {m!r}: expected one of {', '.join(CALIBRATION_METHODS)}")
    return methods


def fit_mass_calibration(
    predicted: list[np.ndarray],
    target: list[np.ndarray],
    method: str | list = "mean",
    bins: int = 32,
    top_voxels: int = 20,
) -> MassCalibration:
    """:class:`MassCalibration` from HALOgen's (C, N, N, N) predictions of the training
    simulations (uncalibrated, not thresholded) and their true halo channels, per channel over
    the pooled voxels. Both methods use the same ``bins`` levels of the voxels' rank: 0, the
    median, then a tail whose voxel counts shrink geometrically down to ``top_voxels`` above
    the last level.

    - ``mean``: E[rho_true | rho_pred]. Bins of log10 rho_pred between those levels (empty
      bins dropped); a knot is a bin's mean log10 rho_pred and mean true rho, made
      non-decreasing by weighted isotonic regression (scipy). A prediction's expected mass is
      the true one, so every channel keeps its total; but the mass lands spread over every
      voxel of an uncertain prediction (little power at small scales).
    - ``quantile``: the true rho of the same rank (quantile mapping). A knot is the
      log10 rho_pred and the true rho at a level, so the calibrated channels have the true
      one-point distribution (how many voxels hold how much mass, hence their small-scale
      power), the brightest predictions taking the brightest true values.

    ``method`` is one name for every channel or a list of one per channel."""
    if len(predicted) != len(target) or not predicted:
        raise ValueError("mass calibration needs one prediction per target, at least one")
    n_ch = target[0].shape[0]
    methods = calibration_methods(method, n_ch)
    from scipy.optimize import isotonic_regression  # here: every predict_halos job would pay its import

    knots_x, knots_y = [], []
    for c in range(n_ch):
        p = _log10_density(np.concatenate([np.asarray(a[c]).ravel() for a in predicted]))
        t = np.concatenate([np.asarray(a[c], np.float64).ravel() for a in target])
        tail = np.logspace(np.log10(0.5), np.log10(min(0.5, top_voxels / p.size)), bins - 1)
        levels = np.concatenate([[0.0], 1.0 - tail, [1.0]])
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
    return MassCalibration(tuple(knots_x), tuple(knots_y))


def calibrate_halogen(
    model: HALOgen, meta: dict, grid_files: list, inference: dict, method: str | list = "mean"
) -> dict:
    """The model file's content with the :class:`MassCalibration` (``method``, see
    :func:`fit_mass_calibration`) fitted on the training simulations' grid files (their ``dm``
    and ``halos``), predicted as at inference (config ``halogen.inference``, without
    calibration or post-threshold)."""
    raw = {**inference, "post_threshold": None}
    grids = [read_grids(path, ("dm", "halos"))[0] for path in grid_files]
    predicted = [predict_halos(model, meta, g["dm"], **raw, calibrate=False).cpu().numpy() for g in grids]
    calibration = fit_mass_calibration(predicted, [g["halos"] for g in grids], method)
    return {**meta, "mass_calibration": calibration.to_dict(), "mass_calibration_method": method}

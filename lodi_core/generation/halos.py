"""HALOgen on a whole box (Sec. 2.1.1): sliding windows of the training size, overlaps
averaged, inverted to physical units, mass-calibrated (beyond the paper) and post-thresholded
(Sec. 3.1)."""

from __future__ import annotations

import numpy as np
import torch

from ..data.calibration import Calibration, fit_calibration
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
    file's mass :class:`..data.calibration.Calibration` where it has one (and ``calibrate``), and
    voxels with log10 rho_h < ``post_threshold`` set to 0 (Sec. 3.1); ``bf16`` autocast and the
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
        rho = Calibration.from_dict(meta["mass_calibration"]).apply(rho)
    if post_threshold is not None:
        rho[rho < 10.0**post_threshold] = 0.0
    return rho


def calibrate_halogen(
    model: HALOgen, meta: dict, grid_files: list, inference: dict, method: str | list = "mean"
) -> dict:
    """The model file's content with its mass calibration (``method``, see
    :func:`..data.calibration.fit_calibration`): HALOgen regresses log rho_h (Eq. 5), so where a
    halo's position or mass channel is uncertain it predicts a mean of the logarithm, orders of
    magnitude below the mean density, and the channel's mass is lost. The map is fitted on the
    training simulations' grid files (their ``dm`` and ``halos``), predicted as at inference
    (config ``halogen.inference``, without calibration or post-threshold)."""
    raw = {**inference, "post_threshold": None}
    grids = [read_grids(path, ("dm", "halos"))[0] for path in grid_files]
    predicted = [predict_halos(model, meta, g["dm"], **raw, calibrate=False).cpu().numpy() for g in grids]
    calibration = fit_calibration(predicted, [g["halos"] for g in grids], method)
    return {**meta, "mass_calibration": calibration.to_dict(), "mass_calibration_method": method}

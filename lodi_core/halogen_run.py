"""HALOgen data, training (Sec. 2.3.1), full-box inference (Sec. 2.1.1) and evaluation."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .augment import CUBE_SYMMETRIES, apply_symmetry
from .configs import ConfigSection
from .halogen import HALOgen, HalogenConfig, LossConfig, channel_thresholds, halogen_loss, loss_mask
from .io import InputError, load_checkpoint, read_training_grids
from .spectra import correlation_coefficient, overdensity, power_spectrum
from .runtime import autocast
from .training import LoopSpec, train
from .transforms import LogTransform
from .windows import extract, sliding_window_apply, window_origins

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HalogenTrainConfig(ConfigSection):
    """Config ``halogen`` (training part); paper values in config/paper.yaml."""

    window: int = 64
    train_stride: int = 64
    augment_copies: int = 1
    val_fraction: float = 0.25
    batch_size: int = 16
    epochs: int = 260
    lr_warm: float = 2e-4
    warm_epochs: int = 10
    lr_max: float = 1e-4
    lr_min: float = 3e-5
    cycle_epochs: int = 50
    dm_floor_fraction: float = 1e-3  # floor of log10(rho_DM + floor), as a fraction of <rho_DM>
    halo_floor: float = 1e8  # Msun (Mpc/h)^-3
    seed: int = 0
    bf16: bool = True


def lr_at_epoch(epoch: float, cfg: HalogenTrainConfig) -> float:
    """Sec. 2.3.1: lr_warm for the first warm_epochs, then cosine annealing with warm
    restarts between lr_max and lr_min every cycle_epochs (fractional epochs)."""
    if epoch < cfg.warm_epochs:
        return cfg.lr_warm
    t = (epoch - cfg.warm_epochs) % cfg.cycle_epochs
    return cfg.lr_min + 0.5 * (cfg.lr_max - cfg.lr_min) * (1 + math.cos(math.pi * t / cfg.cycle_epochs))


class HalogenData:
    """Transformed inputs, targets and masks of the training simulations, and the 64^3
    windows drawn from them: window origins on a ``train_stride`` lattice (periodic),
    shuffled and split 75/25; every epoch visits each training window ``augment_copies``
    times, each time under one of the 48 cube symmetries. All draws come from ``seed``."""

    def __init__(self, grid_files: list, cfg: HalogenTrainConfig, loss_cfg: LossConfig, expect: dict | None = None, device="cpu"):
        self.cfg = cfg
        grids, attrs = read_training_grids(grid_files, ("dm", "halos"), cfg.window, "HALOgen window", expect)
        self.grid = {k: attrs.get(k) for k in ("box_size", "n_grid", "smoothing_radius", "redshift", "cosmology", "dm_source")}
        dms, halos = [g["dm"] for g in grids], [g["halos"] for g in grids]
        dm_floor = cfg.dm_floor_fraction * float(np.mean([d.mean() for d in dms]))
        self.dm_transform = LogTransform.fit(dms, dm_floor)
        self.halo_transform = LogTransform.fit(halos, cfg.halo_floor, channel_axis=0)
        self.x = [self.dm_transform.forward(torch.from_numpy(d)).unsqueeze(0).to(device) for d in dms]
        self.y = [self.halo_transform.forward(torch.from_numpy(h), channel_dim=0).to(device) for h in halos]
        self.thresholds = channel_thresholds([y.cpu() for y in self.y], loss_cfg.percentile)
        self.masks = [loss_mask(y, self.thresholds, cfg.window, loss_cfg.neighbour_mask) for y in self.y]
        windows = []
        for s, x in enumerate(self.x):
            axis = window_origins(x.shape[-1], cfg.window, cfg.train_stride, periodic=True)
            windows += [(s, (i, j, k)) for i in axis for j in axis for k in axis]
        order = np.random.default_rng(cfg.seed).permutation(len(windows))
        n_val = max(1, int(round(cfg.val_fraction * len(windows)))) if len(windows) > 1 else 0
        self.val = [windows[i] for i in order[:n_val]]
        self.train = [windows[i] for i in order[n_val:]]
        self.samples_per_epoch = len(self.train) * cfg.augment_copies
        self.steps_per_epoch = max(1, math.ceil(self.samples_per_epoch / cfg.batch_size))
        log.info("HALOgen data: %d training and %d validation windows of %d^3; %d steps per epoch", len(self.train), len(self.val), cfg.window, self.steps_per_epoch)

    def window(self, item, symmetry: int = 0):
        s, origin = item
        w = self.cfg.window
        x, y, m = (extract(t, origin, w) for t in (self.x[s], self.y[s], self.masks[s]))
        return apply_symmetry(x, symmetry), apply_symmetry(y, symmetry), apply_symmetry(m, symmetry)

    def batch(self, step: int):
        """The batch of global step ``step``: a pure function of (seed, step)."""
        epoch, b = divmod(step, self.steps_per_epoch)
        rng = np.random.default_rng([self.cfg.seed, epoch])
        order = rng.permutation(self.samples_per_epoch)
        symmetries = rng.integers(0, len(CUBE_SYMMETRIES), size=self.samples_per_epoch)
        idx = order[b * self.cfg.batch_size : (b + 1) * self.cfg.batch_size]
        parts = [self.window(self.train[i % len(self.train)], int(symmetries[i])) for i in idx]
        return tuple(torch.stack(t) for t in zip(*parts))


#: grouped 3D convolutions run about twice as fast in channels-last layout (measured on CPU)
CHANNELS_LAST = torch.channels_last_3d




def train_halogen(
    grid_files: list,
    net_cfg: HalogenConfig,
    cfg: HalogenTrainConfig,
    loss_cfg: LossConfig,
    checkpoint_path,
    history_path,
    device: torch.device,
    expect: dict | None = None,
    progress: bool = True,
) -> dict:
    """Train HALOgen (resuming from ``checkpoint_path`` when it exists) and return the model
    file's content: best weights, architecture, normalisations and loss thresholds."""
    torch.manual_seed(cfg.seed)
    data = HalogenData(grid_files, cfg, loss_cfg, expect, device)
    model = HALOgen(net_cfg).to(device, memory_format=CHANNELS_LAST)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=cfg.lr_warm)
    spe = data.steps_per_epoch

    def compute_loss(step):
        x, y, m = data.batch(step)
        with autocast(device, cfg.bf16):
            pred = model(x.contiguous(memory_format=CHANNELS_LAST))
        terms = halogen_loss(pred.float(), y, m, model, loss_cfg)
        logs = {f"l2_ch{c + 1}": float(v) for c, v in enumerate(terms.l2_masked.detach())}
        logs.update({f"lq_ch{c + 1}": float(v) for c, v in enumerate(terms.quantile.detach())})
        logs["reg"] = float(terms.regulariser.detach())
        logs["epoch"] = step / spe
        return terms.total, logs

    @torch.no_grad()
    def validate(net):
        total, n = 0.0, 0
        for i in range(0, len(data.val), cfg.batch_size):
            x, y, m = (torch.stack(t) for t in zip(*[data.window(item) for item in data.val[i : i + cfg.batch_size]]))
            with autocast(device, cfg.bf16):
                pred = net(x.contiguous(memory_format=CHANNELS_LAST))
            total += float(halogen_loss(pred.float(), y, m, None, loss_cfg).total) * len(x)
            n += len(x)
        return total / max(n, 1)

    spec = LoopSpec(kind="halogen", total_steps=cfg.epochs * spe, checkpoint_every=spe, validate_every=spe, progress=progress)
    resume_key = {"network": net_cfg.to_dict(), "train": cfg.to_dict(exclude=("epochs",)), "loss": loss_cfg.to_dict(), "data": [str(f) for f in grid_files]}
    final = train(
        spec, model, optimizer, compute_loss, lambda s: lr_at_epoch(s / spe, cfg), checkpoint_path, history_path, resume_key,
        validate=validate if data.val else None,
    )
    return {
        "kind": "halogen",
        "model": final["best_model"],
        "network": net_cfg.to_dict(),
        "dm_transform": data.dm_transform.to_dict(),
        "halo_transform": data.halo_transform.to_dict(),
        "thresholds": data.thresholds.tolist(),
        "window": cfg.window,
        "grid": data.grid,  # the training grids' cell size and smoothing, for new inputs
        "best_val": final["best_val"],
        "steps": final["step"],
        "epochs": cfg.epochs,
    }


def load_halogen(path, device="cpu") -> tuple[HALOgen, dict]:
    """The trained network (eval mode) and the model file's metadata."""
    state = load_checkpoint(path, kind="halogen", map_location=device)
    net = HALOgen(HalogenConfig.from_dict(state["network"])).to(device, memory_format=CHANNELS_LAST)
    try:
        net.load_state_dict(state["model"])
    except RuntimeError as err:
        raise InputError(path, f"weights do not fit the stored HALOgen architecture {state['network']}: {err}") from err
    net.eval()
    return net, state


@torch.no_grad()
def predict_halos(
    model: HALOgen,
    meta: dict,
    dm: np.ndarray,
    stride: int = 16,
    periodic: bool = False,
    post_threshold: float | None = 9.5,
    batch_size: int = 8,
    bf16: bool = True,
    progress: bool = False,
) -> torch.Tensor:
    """HALOgen on a whole box: windows of the training size every ``stride`` cells,
    overlaps averaged (Sec. 2.1.1), inverted to Msun (Mpc/h)^-3, and voxels with
    log10 rho_h < ``post_threshold`` set to 0 (Sec. 3.1)."""
    device = next(model.parameters()).device
    window = int(meta["window"])
    if min(dm.shape) < window:
        raise InputError("dm", f"box of {dm.shape[0]}^3 cells is smaller than the HALOgen window {window}^3")
    dm_t = LogTransform.from_dict(meta["dm_transform"])
    halo_t = LogTransform.from_dict(meta["halo_transform"])
    x = dm_t.forward(torch.as_tensor(dm, dtype=torch.float32, device=device)).unsqueeze(0)

    def fn(batch):
        with autocast(device, bf16):
            return model(batch.contiguous(memory_format=CHANNELS_LAST)).float()

    y = sliding_window_apply(x, fn, window, stride, periodic, batch_size, out_channels=model.cfg.out_channels, progress=progress)
    rho = halo_t.inverse(y, channel_dim=0)
    if post_threshold is not None:
        rho[rho < 10.0**post_threshold] = 0.0
    return rho


def evaluate_halos(pred: np.ndarray, target: np.ndarray, box_size: float, floor: float = 10**9.5, bins: int = 40) -> dict[str, pd.DataFrame]:
    """Per channel: the PDF of log10 rho_h above ``floor`` (target and predicted) with its
    median and 16-84 % band (Fig. 9, right), P(k) and r(k) against the target, and the
    fraction of halo mass recovered."""
    rows, pdf_rows, pk_rows = [], [], []
    for c in range(target.shape[0]):
        t, p = np.asarray(target[c], np.float64), np.asarray(pred[c], np.float64)
        lt, lp = np.log10(t[t > floor]), np.log10(p[p > floor])
        lo = min(lt.min(initial=np.inf), lp.min(initial=np.inf))
        hi = max(lt.max(initial=-np.inf), lp.max(initial=-np.inf))
        edges = np.linspace(lo, hi, bins + 1) if np.isfinite([lo, hi]).all() and hi > lo else np.linspace(9.5, 14, bins + 1)
        ht, hp = (np.histogram(v, edges, density=True)[0] if v.size else np.zeros(bins) for v in (lt, lp))
        for e0, e1, a, b in zip(edges[:-1], edges[1:], ht, hp):
            pdf_rows.append({"channel": c + 1, "log_rho": 0.5 * (e0 + e1), "pdf_target": a, "pdf_pred": b})
        row = {"channel": c + 1, "mass_recovered": float(p.sum() / t.sum()) if t.sum() > 0 else float("nan")}
        for name, v in (("target", lt), ("pred", lp)):
            q = np.percentile(v, [16, 50, 84]) if v.size else [np.nan] * 3
            row.update({f"{name}_p16": q[0], f"{name}_median": q[1], f"{name}_p84": q[2], f"{name}_voxels": int(v.size)})
        rows.append(row)
        if t.mean() > 0 and p.mean() > 0:
            k, pk_t, _ = power_spectrum(overdensity(t), box_size)
            _, pk_p, _ = power_spectrum(overdensity(p), box_size)
            _, r, _ = correlation_coefficient(overdensity(t), overdensity(p), box_size)
            for kk, a, b, rr in zip(k, pk_t, pk_p, r):
                pk_rows.append({"channel": c + 1, "k": kk, "pk_target": a, "pk_pred": b, "residual": b / a - 1, "r": rr})
    return {"summary": pd.DataFrame(rows), "pdf": pd.DataFrame(pdf_rows), "pk": pd.DataFrame(pk_rows)}

"""HALOgen data and training (Sec. 2.3.1)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..config import ConfigSection
from ..data.augment import CUBE_SYMMETRIES, apply_symmetry
from ..data.transforms import LogTransform
from ..data.windows import extract, window_origins
from ..io import read_training_grids, training_data_key
from ..models.halogen import (
    HALOgen,
    HalogenConfig,
    LossConfig,
    channel_thresholds,
    halogen_loss,
    loss_mask,
)
from ..runtime import autocast, memory_format
from .distributed import LAUNCH_KEYS, World
from .loop import LoopSpec, kept_weights, train

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HalogenTrainConfig(ConfigSection):
    """Config ``halogen.train``."""

    SECTION = "halogen.train"

    window: int
    train_stride: int
    augment_copies: int
    val_fraction: float
    batch_size: int
    epochs: int
    lr_warm: float
    warm_epochs: int
    lr_max: float
    lr_min: float
    cycle_epochs: int
    dm_floor_fraction: float  # floor of log10(rho_DM + floor), as a fraction of <rho_DM>
    halo_floor: float  # Msun (Mpc/h)^-3
    seed: int
    bf16: bool  # bf16 autocast (GPU or CPU)
    channels_last: bool  # channels-last-3d layout of the network and its inputs
    gpus: int = 1  # training processes per node (one per GPU); the rule's launcher starts them
    nodes: int = 1
    collective_timeout_s: float = 900.0  # a rank waiting longer than this on the others fails the job


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

    def __init__(
        self, grid_files: list, cfg: HalogenTrainConfig, loss_cfg: LossConfig, expect: dict | None = None, device="cpu"
    ):
        self.cfg = cfg
        grids, attrs = read_training_grids(grid_files, ("dm", "halos"), cfg.window, "HALOgen window", expect)
        self.grid = {
            k: attrs.get(k) for k in ("box_size", "n_grid", "smoothing_radius", "redshift", "cosmology", "dm_source")
        }
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
        log.info(
            "HALOgen data: %d training and %d validation windows of %d^3; %d steps per epoch",
            len(self.train),
            len(self.val),
            cfg.window,
            self.steps_per_epoch,
        )

    def window(self, item, symmetry: int = 0):
        s, origin = item
        w = self.cfg.window
        x, y, m = (extract(t, origin, w) for t in (self.x[s], self.y[s], self.masks[s]))
        return apply_symmetry(x, symmetry), apply_symmetry(y, symmetry), apply_symmetry(m, symmetry)

    def batch(self, step: int, share: slice = slice(None)):
        """The batch of global step ``step`` (its items ``share``, a data-parallel rank's
        part): a pure function of (seed, step). Every batch is full: an epoch whose samples do
        not fill its last batch fills it from its first ones (as torch's DistributedSampler
        pads), so that every rank gets its share."""
        epoch, b = divmod(step, self.steps_per_epoch)
        rng = np.random.default_rng([self.cfg.seed, epoch])
        order = rng.permutation(self.samples_per_epoch)
        symmetries = rng.integers(0, len(CUBE_SYMMETRIES), size=self.samples_per_epoch)
        order = np.resize(order, self.steps_per_epoch * self.cfg.batch_size)  # repeats it from the start
        idx = order[b * self.cfg.batch_size : (b + 1) * self.cfg.batch_size][share]
        parts = [self.window(self.train[i % len(self.train)], int(symmetries[i])) for i in idx]
        return tuple(torch.stack(t) for t in zip(*parts))


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
    keep: str = "best",
    world: World = World(),
) -> dict | None:
    """Train HALOgen (resuming from ``checkpoint_path`` when it exists) and return the model
    file's content: the weights with the lowest validation loss (``keep="best"``) or of the
    last step (``"last"``, for learning curves), architecture, normalisations and loss
    thresholds. With several data-parallel ranks (``world``) each trains on its share of
    every batch and only rank 0 returns the content (the others None)."""
    torch.manual_seed(cfg.seed)
    data = HalogenData(grid_files, cfg, loss_cfg, expect, device)
    fmt = memory_format(cfg.channels_last)
    model = HALOgen(net_cfg).to(device, memory_format=fmt)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=cfg.lr_warm)
    spe = data.steps_per_epoch
    share = world.share(cfg.batch_size, "halogen.train.batch_size")

    def compute_loss(step, net):
        x, y, m = data.batch(step, share)
        with autocast(device, cfg.bf16):
            pred = net(x.contiguous(memory_format=fmt))
        terms = halogen_loss(pred.float(), y, m, model, loss_cfg)
        logs = {f"l2_ch{c + 1}": float(v) for c, v in enumerate(terms.l2_masked.detach())}
        logs.update({f"lq_ch{c + 1}": float(v) for c, v in enumerate(terms.quantile.detach())})
        logs["reg"] = float(terms.regulariser.detach())
        logs["epoch"] = step / spe
        return terms.total, logs

    @torch.no_grad()
    def validate(net):
        """Sum of the loss over this rank's validation windows, and their number."""
        mine = world.portion(len(data.val))
        items = data.val[mine.start : mine.stop]
        total = 0.0
        for i in range(0, len(items), cfg.batch_size):
            x, y, m = (torch.stack(t) for t in zip(*[data.window(item) for item in items[i : i + cfg.batch_size]]))
            with autocast(device, cfg.bf16):
                pred = net(x.contiguous(memory_format=fmt))
            total += float(halogen_loss(pred.float(), y, m, None, loss_cfg).total) * len(x)
        return total, len(items)

    spec = LoopSpec(
        kind="halogen", total_steps=cfg.epochs * spe, checkpoint_every=spe, validate_every=spe, progress=progress
    )
    resume_key = {
        "network": net_cfg.to_dict(),
        "train": cfg.to_dict(exclude=("epochs", *LAUNCH_KEYS)),
        "loss": loss_cfg.to_dict(),
        "data": training_data_key(grid_files),
    }
    final = train(
        spec,
        model,
        optimizer,
        compute_loss,
        lambda s: lr_at_epoch(s / spe, cfg),
        checkpoint_path,
        history_path,
        resume_key,
        validate=validate if data.val else None,
        world=world,
    )
    if not world.is_main:
        return None
    return {
        "kind": "halogen",
        "model": kept_weights(final, keep),
        "network": net_cfg.to_dict(),
        "dm_transform": data.dm_transform.to_dict(),
        "halo_transform": data.halo_transform.to_dict(),
        "thresholds": data.thresholds.tolist(),
        "window": cfg.window,
        "grid": data.grid,  # the training grids' cell size and smoothing, for new inputs
        "best_val": final["best_val"],
        "steps": final["step"],
        "epochs": cfg.epochs,
        "time_s": final["history"][-1]["time_s"] if final["history"] else 0.0,
    }

"""LODI data (Sec. 2.3.2) and training."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from ..config import ConfigSection
from ..data.augment import CUBE_SYMMETRIES, apply_symmetry
from ..data.boxes import tiling_origins
from ..data.transforms import LogTransform
from ..io import InputError, read_grids, read_training_grids, training_data_key
from ..models.halo_model import fit_coefficients, with_halo_model_channel
from ..models.lodi import build_vdm, null_condition
from ..models.unet import DenoiserConfig
from ..models.vdm import VDMConfig
from ..runtime import autocast, memory_format
from .distributed import LAUNCH_KEYS, World
from .loop import EMA, LoopSpec, kept_weights, train

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LodiTrainConfig(ConfigSection):
    """Config ``lodi.train``."""

    SECTION = "lodi.train"

    box: int
    candidate_stride: int  # lattice of candidate sub-volumes
    important_log_rho: float  # log10 rho_h >= this marks an important region
    high_mass_channels: tuple  # 1-based channels whose halos make a box important
    low_mass_channels: tuple  # boxes centred on these channels' halos ...
    low_mass_fraction: float  # ... of which this fraction is kept
    val_fraction: float
    batch_size: int
    iterations: int
    lr: float
    lr_min: float
    warmup: int
    lr_schedule: str  # after the warm-up: "cosine" to lr_min at the last iteration, or "constant"
    weight_decay: float
    ema_decay: float
    ema_warmup: bool  # ramp the EMA decay up from 0.1 (EMA docstring) instead of starting at ema_decay
    grad_clip: float
    checkpoint_every: int
    validate_every: int
    val_boxes: int
    tb_floor_fraction: float  # floor of log10(T_b + floor) as a fraction of <T_b>
    halo_floor: float  # Msun (Mpc/h)^-3
    seed: int
    bf16: bool  # bf16 autocast (GPU or CPU)
    channels_last: bool  # channels-last-3d layout of the network and its inputs
    condition: str = "true_halos"  # "true_halos" (the paper) or "halogen": HALOgen's halos of the training sims
    box_weight_power: float = 0.0  # boxes drawn with probability ~ (their summed T_b)^p; 0: uniformly (the paper)
    background_fraction: float = 0.0  # share of the halo-free lattice boxes also drawn; 0: none (the paper)
    cond_drop: float = 0.0  # classifier-free guidance: chance a box is shown the null condition; 0: never (the paper)
    halo_model_channel: bool = False  # condition on the halo model's T_b as one channel more; False: the paper
    lr_decay_steps: int = 0  # with lr_schedule "constant": the last this many iterations cool down to lr_min
    gpus: int = 1  # training processes per node (one per GPU); the rule's launcher starts them
    nodes: int = 1
    collective_timeout_s: float = 900.0  # a rank waiting longer than this on the others fails the job


def _local_maxima(field: torch.Tensor) -> torch.Tensor:
    """Voxels equal to the maximum of their periodic 3x3x3 neighbourhood."""
    padded = F.pad(field[None, None], (1,) * 6, mode="circular")
    return field == F.max_pool3d(padded, 3, stride=1)[0, 0]


def select_subvolumes(halos: np.ndarray, cfg: LodiTrainConfig, rng: np.random.Generator) -> tuple[list, list, list]:
    """Sec. 2.3.2 halo-biased selection on one simulation's halo channels (C, N, N, N):
    (a) candidate boxes on a ``candidate_stride`` lattice that contain log10 rho_h >=
    ``important_log_rho`` in a high-mass channel; (b) ``low_mass_fraction`` of the boxes
    centred on the halos (local maxima >= the same level) of the low-mass channels; beyond the
    paper, (c) ``background_fraction`` of the lattice boxes that (a) leaves out, drawn at
    random, so that training also sees the regions between massive halos that generation paints.
    Returns the three lists of box origins (boxes lie inside the volume; (c) is empty at 0)."""
    h = torch.as_tensor(halos)
    n, b = h.shape[-1], cfg.box
    level = 10.0**cfg.important_log_rho
    important = (h[[c - 1 for c in cfg.high_mass_channels]] >= level).any(dim=0)
    lattice = tiling_origins(n, b, cfg.candidate_stride)
    high = [o for o in lattice if bool(important[o[0] : o[0] + b, o[1] : o[1] + b, o[2] : o[2] + b].any())]
    centres = []
    for c in cfg.low_mass_channels:
        peaks = _local_maxima(h[c - 1]) & (h[c - 1] >= level)
        centres += [tuple(int(v) for v in p) for p in torch.nonzero(peaks)]
    centres = sorted(set(centres))
    n_keep = int(round(cfg.low_mass_fraction * len(centres)))
    keep = sorted(rng.choice(len(centres), size=n_keep, replace=False).tolist()) if centres else []
    low = [tuple(int(min(max(p - b // 2, 0), n - b)) for p in centres[i]) for i in keep]
    rest = sorted(set(lattice) - set(high))
    n_background = int(round(cfg.background_fraction * len(rest)))
    # drawn only when asked for, so the paper's selection takes the same random numbers as before
    background = (
        [rest[i] for i in sorted(rng.choice(len(rest), size=n_background, replace=False).tolist())]
        if n_background
        else []
    )
    return high, low, background


class LodiData:
    """T_b and halo channels of the training simulations, normalised; sub-volumes are cut
    and rotated on the fly (no augmented sample is stored)."""

    def __init__(
        self, grid_files: list, cfg: LodiTrainConfig, expect: dict | None = None, device="cpu", halo_files=None
    ):
        """``halo_files`` (one per grid file, e.g. HALOgen's predictions): the condition to
        train on instead of the grids' own halos; sub-volumes are still chosen around the
        grids' true halos, where T_b is."""
        self.cfg = cfg
        grids, _ = read_training_grids(grid_files, ("tb", "halos"), cfg.box, "LODI box", expect)
        tbs, halos = [g["tb"] for g in grids], [g["halos"] for g in grids]
        condition = halos
        if halo_files is not None:
            if len(halo_files) != len(grid_files):
                raise ValueError(f"{len(halo_files)} halo files for {len(grid_files)} training grids")
            condition = []
            for path, true in zip(halo_files, halos):
                h = read_grids(path, ("halos",))[0]["halos"]
                if h.shape != true.shape:
                    raise InputError(path, f"halos of shape {h.shape}, expected the training grid's {true.shape}")
                condition.append(h)
        # beyond the paper: the halo model fit on the grids' own halos (as the halo_model baseline),
        # painted on the condition as one channel more
        self.halo_model_weights = None
        if cfg.halo_model_channel:
            f, _ = fit_coefficients(halos, tbs)
            if not f.max() > 0:
                raise InputError(
                    grid_files[0], "the halo model fit gives no T_b to any halo channel (lodi.train.halo_model_channel)"
                )
            self.halo_model_weights = (f / f.max()).tolist()
            w = self.halo_model_weights
            condition = [with_halo_model_channel(torch.from_numpy(h), w, 0).numpy() for h in condition]
        tb_floor = cfg.tb_floor_fraction * float(np.mean([t.mean() for t in tbs]))
        self.tb_transform = LogTransform.fit(tbs, tb_floor)
        self.halo_transform = LogTransform.fit(condition, cfg.halo_floor, channel_axis=0)
        rng = np.random.default_rng(cfg.seed)
        samples, self.n_high, self.n_low, self.n_background = [], 0, 0, 0
        for s, h in enumerate(halos):
            high, low, background = select_subvolumes(h, cfg, rng)
            self.n_high += len(high)
            self.n_low += len(low)
            self.n_background += len(background)
            samples += [(s, o) for o in high + low + background]
        if len(samples) < 2:
            raise InputError(
                grid_files[0],
                f"the halo-biased selection kept {len(samples)} sub-volumes; "
                "need at least 2 (lower lodi.train.important_log_rho?)",
            )
        self.x = [self.tb_transform.forward(torch.from_numpy(t)).unsqueeze(0).to(device) for t in tbs]
        self.cond = [self.halo_transform.forward(torch.from_numpy(h), channel_dim=0).to(device) for h in condition]
        order = rng.permutation(len(samples))
        n_val = max(1, int(round(cfg.val_fraction * len(samples))))
        self.val = [samples[i] for i in order[:n_val]]
        self.train = [samples[i] for i in order[n_val:]]
        # beyond the paper: boxes drawn in proportion to (their T_b)^p spend the steps where the
        # brightness is (docs/convergence.md measures it); None draws them uniformly
        self.train_p = None
        if cfg.box_weight_power:
            b = cfg.box
            content = np.array([float(tbs[s][i : i + b, j : j + b, k : k + b].sum()) for s, (i, j, k) in self.train])
            w = np.maximum(content, 1e-30) ** cfg.box_weight_power
            self.train_p = w / w.sum()
        log.info(
            "LODI data: %d high-mass + %d low-mass-centred + %d background sub-volumes of %d^3 "
            "-> %d train, %d validation",
            self.n_high,
            self.n_low,
            self.n_background,
            cfg.box,
            len(self.train),
            len(self.val),
        )

    def box(self, item, symmetry: int = 0):
        s, (i, j, k) = item
        b = self.cfg.box
        sl = (slice(None), slice(i, i + b), slice(j, j + b), slice(k, k + b))
        return apply_symmetry(self.x[s][sl], symmetry), apply_symmetry(self.cond[s][sl], symmetry)

    def draw(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """The training sub-volumes (indices into ``train``) and cube symmetries of global step
        ``step``, drawn from (seed, step): uniformly, or in proportion to ``train_p``."""
        rng = np.random.default_rng([self.cfg.seed, step])
        if self.train_p is None:
            idx = rng.integers(0, len(self.train), size=self.cfg.batch_size)
        else:
            idx = rng.choice(len(self.train), size=self.cfg.batch_size, p=self.train_p)
        return idx, rng.integers(0, len(CUBE_SYMMETRIES), size=self.cfg.batch_size)

    def dropped(self, step: int) -> np.ndarray:
        """Which items of global step ``step``'s batch are shown the null condition (classifier-
        free guidance, Ho & Salimans 2022; beyond the paper): each with probability
        ``cond_drop``, drawn from (seed, step) apart from :meth:`draw`'s boxes."""
        rng = np.random.default_rng([self.cfg.seed, step, 1])
        return rng.random(self.cfg.batch_size) < self.cfg.cond_drop

    def batch(self, step: int, share: slice = slice(None)):
        """Training batch of global step ``step`` (its items ``share``, a data-parallel rank's
        part): the sub-volumes and symmetries of :meth:`draw`, with :meth:`dropped` items'
        condition replaced by :func:`models.lodi.null_condition`."""
        idx, sym = self.draw(step)
        x, c = zip(*[self.box(self.train[i], int(k)) for i, k in zip(idx[share], sym[share])])
        x, c = torch.stack(x), torch.stack(c)
        if self.cfg.cond_drop:
            drop = torch.from_numpy(self.dropped(step)[share]).to(c.device).view(-1, *[1] * (c.ndim - 1))
            c = torch.where(drop, null_condition(c), c)
        return x, c


def lr_at(step: int, cfg: LodiTrainConfig) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``lr_min`` at the last iteration or, with
    ``lr_schedule: constant``, ``lr`` until the end (a run that can be continued) except for the
    last ``lr_decay_steps``, which decay to ``lr_min`` by the same cosine (warmup-stable-decay,
    Hu et al. 2024: a cool-down that branches off any checkpoint of the constant run)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.lr_schedule == "constant":
        start = cfg.iterations - cfg.lr_decay_steps
        if cfg.lr_decay_steps <= 0 or step < start:
            return cfg.lr
        frac = (step - start) / cfg.lr_decay_steps
    else:
        frac = (step - cfg.warmup) / max(1, cfg.iterations - cfg.warmup)
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * min(frac, 1.0)))


def train_lodi(
    grid_files: list,
    net_cfg: DenoiserConfig,
    vdm_cfg: VDMConfig,
    cfg: LodiTrainConfig,
    checkpoint_path,
    history_path,
    device: torch.device,
    expect: dict | None = None,
    progress: bool = True,
    keep: str = "best",
    halo_files: list | None = None,
    world: World = World(),
) -> dict | None:
    """Train LODI (resuming from ``checkpoint_path``) and return the model file's content: the
    EMA weights with the lowest validation loss (``keep="best"``) or of the last step
    (``"last"``, for learning curves), architecture, normalisations and Var(x | z_t) on the
    sampling grid (for ``generation.variance: analytic``). With ``cfg.condition ==
    "halogen"``, ``halo_files`` holds HALOgen's halos of the training grids, the condition
    LODI learns from (the grids' own halos otherwise). With several data-parallel ranks
    (``world``) each trains on its share of every batch and only rank 0 returns the model
    file's content (the others None)."""
    if (cfg.condition == "halogen") != bool(halo_files):
        raise ValueError(
            f"lodi.train.condition is {cfg.condition!r}: HALOgen's halos of the training simulations are "
            + ("needed" if cfg.condition == "halogen" else "not used")
        )
    torch.manual_seed(cfg.seed)
    data = LodiData(grid_files, cfg, expect, device, halo_files or None)
    if cfg.halo_model_channel:
        net_cfg = replace(net_cfg, cond_channels=net_cfg.cond_channels + 1)
    fmt = memory_format(cfg.channels_last)
    model = build_vdm(net_cfg, vdm_cfg).to(device, memory_format=fmt)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = EMA(model, cfg.ema_decay, cfg.ema_warmup)
    share = world.share(cfg.batch_size, "lodi.train.batch_size")

    def compute_loss(step, net):
        x, c = (t.contiguous(memory_format=fmt) for t in data.batch(step, share))
        noise = model.draw_noise(x, cfg.seed, step, share.start, cfg.batch_size)
        with autocast(device, cfg.bf16):
            terms = net(x, c, noise)
        with torch.no_grad():
            logs = {
                "recon": float(terms.recon.mean()),
                "prior": float(terms.prior.mean()),
                "diffusion": float(terms.diffusion.mean()),
            }
            logs.update(
                {
                    "gamma_0": float(model.gamma(torch.zeros((), device=device))),
                    "gamma_1": float(model.gamma(torch.ones((), device=device))),
                }
            )
        return terms.total, logs

    val_items = data.val[: cfg.val_boxes]

    def val_batches(items):
        for i in range(0, len(items), cfg.batch_size):
            chunk = items[i : i + cfg.batch_size]
            yield tuple(torch.stack(t).contiguous(memory_format=fmt) for t in zip(*[data.box(item) for item in chunk]))

    @torch.no_grad()
    def validate(net):
        """Sum of the bound over this rank's validation boxes; box j's noise is always the
        same (seeded by seed + 1 and j), whichever rank evaluates it."""
        mine = world.portion(len(val_items))
        total, first = 0.0, mine.start
        for x, c in val_batches(val_items[mine.start : mine.stop]):
            noise = net.draw_noise(x, cfg.seed + 1, 0, first, len(val_items))
            with autocast(device, cfg.bf16):
                total += float(net(x, c, noise).total) * len(x)
            first += len(x)
        return total, len(mine)

    spec = LoopSpec(
        kind="lodi",
        total_steps=cfg.iterations,
        checkpoint_every=cfg.checkpoint_every,
        validate_every=cfg.validate_every,
        grad_clip=cfg.grad_clip,
        progress=progress,
    )
    # training on the true halos, with uniformly drawn boxes and no null condition, keeps the
    # key it had before `condition`, `box_weight_power`, `cond_drop`, `background_fraction` and
    # `halo_model_channel` existed, so a long run started with an earlier version still resumes;
    # like `iterations`, `lr_decay_steps` is not in it: a cool-down continues a constant run
    on_true_halos = ("condition",) if cfg.condition == "true_halos" else ()
    later = ("box_weight_power", "cond_drop", "background_fraction", "halo_model_channel")
    later_keys = tuple(k for k in later if not getattr(cfg, k))
    not_learned = ("iterations", "lr_decay_steps", "checkpoint_every", "validate_every", *LAUNCH_KEYS)
    resume_key = {
        "network": net_cfg.to_dict(),
        "vdm": vdm_cfg.to_dict(),
        "train": cfg.to_dict(exclude=(*not_learned, *on_true_halos, *later_keys)),
        "data": training_data_key(grid_files),
    }
    if halo_files:
        resume_key["halos"] = training_data_key(halo_files)
    final = train(
        spec,
        model,
        optimizer,
        compute_loss,
        lambda s: lr_at(s, cfg),
        checkpoint_path,
        history_path,
        resume_key,
        validate=validate,
        ema=ema,
        world=world,
    )
    if not world.is_main:
        return None
    weights = kept_weights(final, keep)
    model.load_state_dict(weights)
    model.eval()
    with autocast(device, cfg.bf16):
        x_var = model.x_variance(val_batches(val_items), torch.Generator(device=device).manual_seed(cfg.seed + 2))
    return {
        "kind": "lodi",
        "model": weights,
        "network": net_cfg.to_dict(),
        "vdm": vdm_cfg.to_dict(),
        "tb_transform": data.tb_transform.to_dict(),
        "halo_transform": data.halo_transform.to_dict(),
        "halo_model_weights": data.halo_model_weights,
        "box": cfg.box,
        "cond_drop": cfg.cond_drop,
        "best_val": final["best_val"],
        "steps": final["step"],
        "selection": {"high_mass": data.n_high, "low_mass": data.n_low, "background": data.n_background},
        "x_variance": x_var.tolist(),
        "x_range": [min(float(x.min()) for x in data.x), max(float(x.max()) for x in data.x)],
        "time_s": final["history"][-1]["time_s"] if final["history"] else 0.0,
    }

"""Fitting the cheap baselines: the halo model's coefficients (least squares) and the LDL
parameters (gradient descent with the shared loop of :mod:`lodi_core.training.loop`)."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.camels import read_particles, snapshot_files
from ..io import atomic_path, read_grids, save_checkpoint, training_data_key
from ..models.halo_model import fit_halo_model
from ..models.ldl import LDL, LDLConfig, PowerBins, fourier_weight, ldl_loss
from ..physics.fields import Stencil
from .loop import LoopSpec, train

log = logging.getLogger(__name__)


def run_fit_halo_model(grid_paths, out_path, expect: dict | None = None) -> None:
    """One Snakemake job: fit the halo model and write it as JSON (units included)."""
    model = fit_halo_model(grid_paths, expect)
    with atomic_path(out_path) as tmp:
        Path(tmp).write_text(json.dumps(model.to_json(), indent=2) + "\n")


@dataclass
class LDLSample:
    """One training simulation: particles and their CIC stencil (fixed: cached), the
    smoothed T_b target and its binned P(k)."""

    positions: torch.Tensor
    stencil: Stencil
    tb: torch.Tensor
    power: torch.Tensor


def train_ldl(
    snapshots,
    grid_paths,
    cfg: LDLConfig,
    checkpoint_path,
    history_path,
    expect: dict | None = None,
    progress: bool = True,
) -> dict:
    """Fit the LDL parameters on the training simulations (particles, or their sub-lattice of
    ``cfg.particle_stride``, -> their T_b grid), one simulation per step in turn; resumes from
    ``checkpoint_path``. Returns the model file's content (kind 'ldl')."""
    if len(snapshots) != len(grid_paths):
        raise ValueError(f"{len(snapshots)} snapshots for {len(grid_paths)} grid files")
    samples, attrs = [], {}
    for snap, grid in zip(snapshots, grid_paths):
        data, attrs = read_grids(grid, ("tb",), expect)
        tb = torch.from_numpy(data["tb"]).float()
        box = float(attrs["box_size"])
        n = int(attrs["n_grid"])
        positions = torch.from_numpy(read_particles(snap, box, attrs.get("redshift"), cfg.particle_stride))
        samples.append(LDLSample(positions, Stencil.at(positions * (n / box), n), tb, None))
    n, box = int(attrs["n_grid"]), float(attrs["box_size"])
    radius = float(attrs.get("smoothing_radius", 0.0)) if cfg.smoothing else 0.0
    bins = PowerBins(n, box)
    o_s = fourier_weight(n, box, cfg.fourier_n)
    for s in samples:
        s.power = bins(s.tb)
    model = LDL(cfg.layers, box, n, radius, tb_mean=float(np.mean([float(s.tb.mean()) for s in samples])))
    model.calibrate(samples[0].positions)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)

    def compute_loss(step, net):
        s = samples[step % len(samples)]
        return ldl_loss(net(s.positions, stencil=s.stencil), s.tb, o_s, bins, s.power, cfg)

    def lr_at(step):  # cosine from lr to lr / 10
        return cfg.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * step / max(1, cfg.steps))))

    spec = LoopSpec(
        kind="ldl",
        total_steps=cfg.steps,
        checkpoint_every=cfg.checkpoint_every,
        validate_every=cfg.steps,
        progress=progress,
    )
    resume_key = {
        "config": cfg.to_dict(exclude=("steps", "checkpoint_every")),
        "data": training_data_key([f for s in snapshots for f in snapshot_files(Path(s))] + list(grid_paths)),
    }
    final = train(spec, model, optimizer, compute_loss, lr_at, checkpoint_path, history_path, resume_key)
    model.load_state_dict(final["model"])
    log.info("LDL parameters after %d steps: %s", final["step"], json.dumps(model.describe()))
    return {
        "kind": "ldl",
        "model": final["model"],
        "config": cfg.to_dict(),
        "grid": {"box_size": box, "n_grid": n, "smoothing_radius": radius, "redshift": attrs.get("redshift", 0.0)},
        "parameters": model.describe(),
        "steps": final["step"],
        "final_loss": final["history"][-1]["loss"] if final["history"] else float("nan"),
        "training": [str(p) for p in snapshots],
    }


def run_train_ldl(
    snapshots, grid_paths, cfg: LDLConfig, model_path, checkpoint_path, history_path, expect: dict | None = None
) -> None:
    """One Snakemake job: train (or resume) LDL and write the model file."""
    save_checkpoint(model_path, train_ldl(snapshots, grid_paths, cfg, checkpoint_path, history_path, expect))

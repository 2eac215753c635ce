"""Small grid files with the layout the workflow writes (shared by the test modules)."""

from __future__ import annotations

import numpy as np
import torch
from workflow_helpers import CONFIG, REPO

from lodi_core.config import load_config
from lodi_core.io import write_grids
from lodi_core.models.unet import DenoiserConfig
from lodi_core.physics.fields import gaussian_smooth

#: the smallest complete configuration (tests/workflow_config.yaml): the values every test
#: config section starts from (the dataclasses have no defaults of their own)
TINY_CONFIG = load_config(CONFIG)


#: the paper's setting (config/paper.yaml)
PAPER_CONFIG = load_config(REPO / "config" / "paper.yaml")


def tiny(section_class, **overrides):
    """A config section of the tiny test configuration, with ``overrides``."""
    return section_class.from_config(TINY_CONFIG, **overrides)


def tiny_inference(**overrides) -> dict:
    """HALOgen's inference settings (keyword arguments of predict_halos) of the tiny configuration."""
    return {**TINY_CONFIG["halogen"]["inference"], **overrides}


def paper(section_class, **overrides):
    """A config section of the paper's configuration, with ``overrides``."""
    return section_class.from_config(PAPER_CONFIG, **overrides)


#: a LODI denoiser small enough for tests
TINY_NET = tiny(DenoiserConfig)


def train_tiny_lodi(grid, checkpoint, history, **train):
    """LODI trained a few steps on a fixture grid (8^3 boxes, fp32): the real training code,
    small; ``train`` overrides keys of lodi.train."""
    from lodi_core.models.vdm import VDMConfig
    from lodi_core.training.lodi import LodiTrainConfig, train_lodi

    settings = dict(box=8, candidate_stride=4, warmup=2, bf16=False, important_log_rho=11.0)
    cfg = tiny(LodiTrainConfig, **{**settings, **train})
    return train_lodi([grid], TINY_NET, tiny(VDMConfig), cfg, checkpoint, history, torch.device("cpu"), progress=False)


def make_grid_file(path, n=32, box_size=8.0, seed=0):
    """A lognormal dark-matter field, halo channels on its peaks and T_b tracing the halos:
    small stand-ins with the units and layout of real grid files."""
    rng = np.random.default_rng(seed)
    g = gaussian_smooth(torch.from_numpy(rng.standard_normal((n, n, n))), box_size, 0.6).numpy()
    g /= g.std()
    dm = 1e11 * np.exp(1.5 * g)
    halos = np.stack(
        [np.where(g > t, 10 ** (10.5 + c) * np.exp(g - t), 0.0) for c, t in enumerate((0.8, 1.3, 1.8, 2.3))]
    )
    tb = 0.05 * (halos.sum(0) / halos.sum(0).mean()) ** 0.8 * np.exp(0.3 * rng.standard_normal((n, n, n))) + 1e-4
    write_grids(
        path,
        {"dm": dm, "halos": halos, "tb": tb},
        {"box_size": box_size, "n_grid": n, "redshift": 0.0, "smoothing_radius": 0.2},
    )
    return path

"""Shared fixtures: small grid files with the layout the workflow writes."""
from __future__ import annotations

import pytest
import torch

from grid_data import TINY_NET, make_grid_file
from lodi_core.io import save_checkpoint
from lodi_core.lodi_run import LodiTrainConfig, train_lodi
from lodi_core.vdm import VDMConfig

torch.set_num_threads(2)


@pytest.fixture
def grid_file(tmp_path):
    return make_grid_file(tmp_path / "grid.h5")



@pytest.fixture
def lodi_model(grid_file, tmp_path):
    """A tiny LODI model trained for a few steps on the fixture grid (real code, small)."""
    cfg = LodiTrainConfig(box=8, candidate_stride=4, batch_size=4, iterations=12, warmup=2, checkpoint_every=5, validate_every=6, val_boxes=4, bf16=False, important_log_rho=11.0)
    content = train_lodi([grid_file], TINY_NET, VDMConfig(timesteps=8), cfg, tmp_path / "ckpt.pt", tmp_path / "hist.csv", torch.device("cpu"), progress=False)
    save_checkpoint(tmp_path / "lodi.pt", content)
    return tmp_path / "lodi.pt", content


@pytest.fixture(scope="session")
def workflow_results(tmp_path_factory):
    """The whole workflow run once on tests/workflow_config.yaml."""
    from workflow_helpers import snakemake

    results = tmp_path_factory.mktemp("workflow") / "results"
    out = snakemake(results, "all")
    assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
    return results

"""Shared fixtures (small grid files with the layout the workflow writes, a tiny LODI model,
one whole workflow run) and the background start of the real-SLURM run."""

from __future__ import annotations

import os

# The background SLURM run's jobs share the cores with the tests, and a thread spinning at an
# OpenMP barrier burns the core the thread it waits for needs. Before torch starts OpenMP: a
# short spin (GNU OpenMP's default is 300000), inherited by every process the tests start,
# halves a 2-thread HALOgen training test beside a busy core (15 s -> 8 s; 7 s on idle cores).
os.environ.setdefault("GOMP_SPINCOUNT", "1000")

import pytest  # noqa: E402
import slurm_helpers
import torch  # noqa: E402
from grid_data import make_grid_file, train_tiny_lodi

from lodi_core.io import save_checkpoint

# Two threads, as the workflow's jobs have on 2 cores: tests compare in-process results with
# the jobs' bit for bit, and the CPU kernels' rounding depends on the thread count.
torch.set_num_threads(2)


@pytest.fixture
def grid_file(tmp_path):
    return make_grid_file(tmp_path / "grid.h5")


@pytest.fixture
def lodi_model(grid_file, tmp_path):
    """A tiny LODI model trained for a few steps on the fixture grid (real code, small)."""
    content = train_tiny_lodi(
        grid_file,
        tmp_path / "ckpt.pt",
        tmp_path / "hist.csv",
        batch_size=4,
        iterations=12,
        checkpoint_every=5,
        validate_every=6,
        val_boxes=4,
    )
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


def pytest_collection_modifyitems(items):
    """The real-SLURM test runs last: it only waits for the background run, and every other
    test can run while that run still waits on SLURM."""
    items.sort(key=lambda item: item.name == slurm_helpers.TEST_NAME)


def pytest_collection_finish(session):
    """Start the real-SLURM run (tests/test_slurm.py) as soon as its test is collected: it
    spends most of its ~10 minutes waiting on submissions and status polls, so the other
    tests run beside it instead of before it."""
    if not session.config.option.collectonly and any(item.name == slurm_helpers.TEST_NAME for item in session.items):
        session.config.stash[slurm_helpers.SLURM_RUN] = slurm_helpers.start()


def pytest_sessionfinish(session):
    run = session.config.stash.get(slurm_helpers.SLURM_RUN, None)
    if run is not None:
        run.stop()

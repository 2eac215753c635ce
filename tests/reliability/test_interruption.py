"""Interrupted work resumes to the uninterrupted result; SIGTERM/SIGUSR1 checkpoint first;
writers killed midway leave nothing under the final name; non-finite values are refused."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lodi_core.io import load_checkpoint
from lodi_core.training.loop import LoopSpec, NonFiniteLoss, train

JOB = Path(__file__).with_name("train_job.py")
REPO = Path(__file__).resolve().parents[2]


def start(grid, ckpt, out):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, str(JOB), str(grid), str(ckpt), str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(path, proc, timeout=120):
    t0 = time.time()
    while not Path(path).exists():
        assert proc.poll() is None, proc.stdout.read()
        assert time.time() - t0 < timeout
        time.sleep(0.05)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    from grid_data import make_grid_file

    tmp = tmp_path_factory.mktemp("interrupt")
    grid = make_grid_file(tmp / "grid.h5")
    proc = start(grid, tmp / "ref.ckpt", tmp / "ref.pt")
    assert proc.wait() == 0, proc.stdout.read()
    return grid, load_checkpoint(tmp / "ref.pt")


def _same_weights(a, b):
    assert a["steps"] == b["steps"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_sigkill_mid_epoch_then_rerun_gives_the_uninterrupted_weights(reference, tmp_path):
    grid, ref = reference
    proc = start(grid, tmp_path / "c.ckpt", tmp_path / "m.pt")
    wait_for(tmp_path / "c.ckpt", proc)  # first epoch checkpointed
    time.sleep(0.5)  # into the next epoch
    proc.kill()
    proc.wait()
    assert not (tmp_path / "m.pt").exists()
    assert load_checkpoint(tmp_path / "c.ckpt")["step"] < ref["steps"]
    again = start(grid, tmp_path / "c.ckpt", tmp_path / "m.pt")
    assert again.wait() == 0, again.stdout.read()
    _same_weights(ref, load_checkpoint(tmp_path / "m.pt"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_preemption_signal_writes_a_checkpoint_first_and_resume_matches(reference, tmp_path, sig):
    grid, ref = reference
    proc = start(grid, tmp_path / "c.ckpt", tmp_path / "m.pt")
    wait_for(tmp_path / "c.ckpt", proc)
    first = load_checkpoint(tmp_path / "c.ckpt")["step"]
    time.sleep(0.3)
    signalled = time.time()
    proc.send_signal(sig)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode != 0 and "stopped by signal" in out
    # the checkpoint is written again on the signal (on a loaded machine the job may not have
    # finished another step since the periodic checkpoint, so the step may equal `first`)
    assert (tmp_path / "c.ckpt").stat().st_mtime >= signalled - 0.05
    stopped = load_checkpoint(tmp_path / "c.ckpt")["step"]
    assert first <= stopped < ref["steps"]
    again = start(grid, tmp_path / "c.ckpt", tmp_path / "m.pt")
    assert again.wait() == 0, again.stdout.read()
    _same_weights(ref, load_checkpoint(tmp_path / "m.pt"))


def test_a_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def loss_at(step, net):
        x = torch.ones(4, 3)
        value = model(x).pow(2).mean()
        return (value * math.nan if step == 6 else value), {}

    spec = LoopSpec(kind="test", total_steps=10, checkpoint_every=4, validate_every=4, progress=False)
    with pytest.raises(NonFiniteLoss, match="at step 7") as err:
        train(spec, model, opt, loss_at, lambda s: 0.1, tmp_path / "c.pt", tmp_path / "h.csv", {})
    assert "step 4) is kept" in str(err.value)
    state = load_checkpoint(tmp_path / "c.pt", kind="test")
    assert state["step"] == 4 and all(torch.isfinite(v).all() for v in state["model"].values())


def test_a_writer_killed_midway_leaves_no_file_under_the_final_name(tmp_path):
    final = tmp_path / "big.h5"
    code = (
        "import numpy as np, sys; from lodi_core.io import write_hdf5\n"
        "data = {f'd{i}': np.random.default_rng(i).random((64, 64, 64)) for i in range(200)}\n"
        "print('writing', flush=True)\n"
        f"write_hdf5({str(final)!r}, data)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "writing"
    deadline = time.time() + 30
    while not list(tmp_path.glob(".big.h5.*")) and time.time() < deadline:
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    assert not final.exists()


def test_non_finite_volumes_are_not_written(lodi_model, tmp_path):
    from lodi_core.generation.jobs import write_volume
    from lodi_core.models.lodi import BoxSampler

    sampler = BoxSampler.load(lodi_model[0], "cpu", bf16=False)
    x0 = torch.zeros((8, 8, 8))
    x0[1, 2, 3] = float("nan")
    with pytest.raises(FloatingPointError, match="non-finite"):
        write_volume(tmp_path / "v.h5", sampler, x0, {"box_size": 1.0, "n_grid": 8})
    assert not (tmp_path / "v.h5").exists() and not list(tmp_path.glob(".v.h5*"))

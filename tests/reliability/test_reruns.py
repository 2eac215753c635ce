"""Reruns that are right and minimal: a changed simulation reruns only what depends on it, a
finished training rerun writes its outputs again without training, a checkpoint of other data
is never resumed, and positions outside the box are refused."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import torch
import yaml
from camels_layout import BOX, write_snapshot
from grid_data import train_tiny_lodi
from workflow_helpers import dry_run, snakemake

from lodi_core.data.camels import BOX_TOLERANCE, read_snapshot
from lodi_core.io import InputError, load_checkpoint


def test_a_particle_far_outside_the_box_is_refused(tmp_path):
    path = write_snapshot(tmp_path / "snap.hdf5")
    with h5py.File(path, "r+") as f:
        pos = f["PartType1/Coordinates"]
        edge = pos[...]
        edge[0] = [BOX * 1000, 0.0, 5.0]  # at BoxSize: within rounding, wrapped as before
        edge[1, 1] = -1e-3 * BOX_TOLERANCE * BOX * 1000
        pos[...] = edge
    data, _ = read_snapshot(path, 1, ["Coordinates"], BOX)
    assert data["Coordinates"][0, 0] == BOX
    with h5py.File(path, "r+") as f:
        pos = f["PartType1/Coordinates"]
        far = pos[...]
        far[7] = [1e9, 10.0, 10.0]  # kpc/h
        far[8, 2] = BOX * 1000 * (1 + 10 * BOX_TOLERANCE)
        pos[...] = far
    with pytest.raises(InputError) as err:
        read_snapshot(path, 1, ["Coordinates"], BOX)
    msg = str(err.value)
    assert "snap.hdf5" in msg and "2 of 4000 PartType1 positions lie outside the box" in msg and "1e+06 Mpc/h" in msg


def _lodi(grid, checkpoint, history):
    return train_tiny_lodi(
        grid, checkpoint, history, batch_size=2, iterations=6, checkpoint_every=3, validate_every=3, val_boxes=2
    )


def test_a_finished_training_rerun_writes_its_outputs_again(grid_file, tmp_path):
    first = _lodi(grid_file, tmp_path / "c.pt", tmp_path / "h.csv")
    (tmp_path / "h.csv").unlink()  # what Snakemake does before rerunning the job
    again = _lodi(grid_file, tmp_path / "c.pt", tmp_path / "h.csv")
    assert (tmp_path / "h.csv").read_text().count("\n") == 7  # header + 6 steps
    for k in first["model"]:
        assert torch.equal(first["model"][k], again["model"][k]), k
    assert first["x_variance"] == again["x_variance"]


def test_a_checkpoint_of_other_data_under_the_same_path_is_set_aside(grid_file, tmp_path):
    """The resume key holds each training grid's content fingerprint, not its path."""
    _lodi(grid_file, tmp_path / "c.pt", tmp_path / "h.csv")
    with h5py.File(grid_file, "r+") as f:
        f["tb"][...] = f["tb"][...] * 1.5
    changed = _lodi(grid_file, tmp_path / "c.pt", tmp_path / "h.csv")
    assert len(list(tmp_path.glob("c.pt.stale-*"))) == 1
    fresh = _lodi(grid_file, tmp_path / "fresh.pt", tmp_path / "h2.csv")
    for k in fresh["model"]:
        assert torch.equal(changed["model"][k], fresh["model"][k]), k
    assert (
        load_checkpoint(tmp_path / "c.pt")["resume_key"]["data"][0]["sha256"]
        != load_checkpoint(next(tmp_path.glob("c.pt.stale-*")))["resume_key"]["data"][0]["sha256"]
    )


@pytest.fixture
def finished_run(workflow_results, tmp_path):
    """A private copy of the finished tiny workflow (these tests change it)."""
    results = tmp_path / "results"
    shutil.copytree(workflow_results, results, symlinks=True)
    return results


@pytest.mark.slow
def test_reseeding_one_simulation_plans_only_its_chain(workflow_results, tmp_path):
    """Snakemake's own dry run (default rerun triggers) on the finished tiny workflow: a new
    seed for the held-out CV_1 plans CV_1's simulation, grids and what consumes them, and no
    training; a simulation added to the seeds but used nowhere plans nothing."""
    cfg = tmp_path / "reseed.yaml"
    cfg.write_text(yaml.safe_dump({"synthetic": {"ic_seeds": {"CV_0": 11, "CV_1": 99}}}))
    counts, outputs = dry_run(workflow_results, "all", configfiles=(cfg,))
    assert counts["synthetic_simulation"] == 1 and counts["grids"] == 1 and counts["generate_stage"] > 0
    assert not {"train_halogen", "train_lodi", "train_ldl", "fit_halo_model"} & set(counts), counts
    assert not [o for o in outputs if "CV_0" in o]
    cfg.write_text(yaml.safe_dump({"synthetic": {"ic_seeds": {"CV_0": 11, "CV_1": 12, "CV_9": 19}}}))
    assert dry_run(workflow_results, "all", configfiles=(cfg,))[0] == {}


@pytest.mark.slow
def test_forcerun_of_a_finished_training_gives_the_same_model(finished_run):
    r = finished_run  # a copy in another folder: the checkpoint must still be recognised
    before = load_checkpoint(r / "lodi/model.pt")
    out = snakemake(r, str(r / "lodi/model.pt"), "--forcerun", "train_lodi")
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    assert not list((r / "lodi").glob("checkpoint.pt.stale-*")), "the finished checkpoint was set aside"
    after = load_checkpoint(r / "lodi/model.pt")
    for k in before["model"]:
        assert torch.equal(before["model"][k], after["model"][k]), k
    assert (r / "lodi/history.csv").stat().st_size > 0 and np.isfinite(after["best_val"])

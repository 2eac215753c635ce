"""`snakemake --profile slurm all` on a real single-node SLURM cluster (scripts/local-slurm.sh:
Debian's slurm-wlm and munge, two fake GPUs), compared with a local run of the same config."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
from ddp_helpers import assert_same_network
from slurm_helpers import SLURM_RUN, make_test_profile, start
from workflow_helpers import CONFIG, REPO, snakemake

from lodi_core.io import load_checkpoint

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


@pytest.fixture(scope="module")
def slurm_run(request):
    """The run conftest.py started in the background at collection (or, when this test was
    not seen then, one started now)."""
    run = request.config.stash.get(SLURM_RUN, None)
    if run is None:
        run = request.config.stash[SLURM_RUN] = start()
    if run.skip:
        pytest.skip(run.skip)
    if run.error:
        pytest.fail(run.error)
    return run


def test_the_profile_is_found_from_the_repository_root():
    assert (REPO / "slurm").resolve() == (REPO / "profiles/slurm").resolve()
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--profile", "slurm", "all"], cwd=REPO, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Using profile slurm" in out.stdout + out.stderr or "Using profiles slurm" in out.stdout + out.stderr


def tb_map_log_slope(model_path) -> float:
    """The steepest segment of a LODI model file's T_b calibration in log-log: how much it
    multiplies a relative difference of T_b."""
    from lodi_core.data.calibration import tb_calibration
    from lodi_core.io import load_checkpoint

    cal = tb_calibration(load_checkpoint(model_path, kind="lodi"))
    x, y = np.asarray(cal.log_pred[0]), np.asarray(cal.rho[0])
    ok = (np.diff(x) > 0) & (y[:-1] > 0)
    return float((np.diff(np.log10(np.maximum(y, 1e-30)))[ok] / np.diff(x)[ok]).max())


def test_profile_slurm_all_equals_the_local_run(slurm_run, workflow_results):
    code, text = slurm_run.wait()
    assert code == 0, text[-5000:]
    results = slurm_run.results
    assert "submitted with SLURM jobid" in text
    # the per-stage merges run where Snakemake runs (localrules), the stage shards on SLURM
    assert "localrule merge_stage" in text and "rule_merge_stage/" not in text
    assert "rule_generate_stage/" in text
    # GPU rules asked SLURM for a GPU and the job used the fallback with a warning
    log = (results / "logs/train_lodi.log").read_text()
    assert "a GPU was expected" in log and "using device cpu" in log
    # Grids are numpy and bit-identical. Network outputs made in other processes with other
    # thread counts differ by float reduction order, which bf16 autocast rounds up to ~1e-4 of
    # a voxel and the sampler's steps carry on (CI measured one voxel of 32768 at 1.4e-4 of the
    # field's maximum). Another seed, model or input differs at the order of the maximum. The T_b
    # calibration (lodi.tb_calibration) multiplies a relative difference by its map's slope in
    # log T_b, ~10 in the bright tail of the tiny model's map (CI measured 28 voxels at up to
    # 2.3e-3 of the maximum, 2026-12-01, where SLURM gave its jobs other thread counts; run alone,
    # the two runs are bit-identical): the calibrated volumes get that much more room.
    calibrated = 1e-3 * max(1.0, tb_map_log_slope(workflow_results / "lodi/model_calibrated.pt"))
    for rel, tol in (
        ("grids/CV_0.h5", 0),
        ("grids/CV_1.h5", 0),
        ("halogen/predicted/CV_1.h5", 1e-3),
        ("generated/CV_1/latent_overlap_seed0.h5", calibrated),
        ("generated/CV_1/tiling_seed0.h5", calibrated),
    ):
        with h5py.File(results / rel) as a, h5py.File(workflow_results / rel) as b:
            for name in a:
                x, y = a[name][...], b[name][...]
                scale = float(np.abs(y).max()) if y.size else 0.0
                np.testing.assert_allclose(x, y, rtol=0, atol=tol * scale, err_msg=f"{rel}:{name}")
                assert np.abs(x - y).mean() <= tol * 1e-2 * scale, f"{rel}:{name}: differs beyond a few voxels"


def _train_lodi_resources(out: str) -> str:
    block = out[out.index("rule train_lodi:") :]
    return next(line for line in block.splitlines() if line.strip().startswith("resources:"))


def test_the_dry_run_shows_the_resources_of_training_on_two_nodes(tmp_path):
    """lodi.train.gpus: 4, nodes: 2 -> one SLURM job of 2 nodes x 4 GPUs, one task per GPU,
    its command started by srun (the executor plugin's mpi resource); a batch that does not
    divide over the 8 processes is a config error naming the keys."""
    overlay = tmp_path / "ddp.yaml"
    overlay.write_text("lodi:\n  train:\n    gpus: 4\n    nodes: 2\n    batch_size: 8\n")
    cmd = [sys.executable, "-m", "snakemake", "-n", "--profile", "slurm", f"{tmp_path}/results/lodi/model.pt"]
    cmd += ["--configfile", str(REPO / "config/config.yaml"), str(overlay), "--config", f"results={tmp_path}/results"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    res = _train_lodi_resources(out.stdout)
    for item in ("gres=gpu:4", "nodes=2", "tasks_per_node=4", "mpi=srun", "tasks_per_gpu=0", "processes=8"):
        assert item in res, res
    assert "gpu=" not in res.replace("tasks_per_gpu", "")  # --gpus would fix only the total
    overlay.write_text("lodi:\n  train:\n    gpus: 4\n    nodes: 2\n    batch_size: 12\n")
    bad = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert bad.returncode != 0
    assert (
        "lodi.train.batch_size (12) must be a multiple of lodi.train.gpus x lodi.train.nodes" in bad.stdout + bad.stderr
    )


def test_train_lodi_as_one_two_task_slurm_job_and_the_workflow_goes_on(slurm_run, tmp_path):
    """On a copy of the SLURM run's results: train_lodi again with lodi.train.gpus: 2 (fp32,
    so that it can be compared), as one SLURM job with two tasks started by srun (gloo on
    the CPU behind the fake GPUs), then a LODI volume from its model. The weights equal one
    process's, trained locally on the same data."""
    code, text = slurm_run.wait()
    assert code == 0, text[-5000:]
    results, local = tmp_path / "results", tmp_path / "local"
    shutil.copytree(slurm_run.results, results)  # keeps the mtimes: nothing upstream reruns
    (results / "lodi/checkpoint.pt").unlink()
    overlay = tmp_path / "ddp.yaml"
    overlay.write_text("lodi:\n  train:\n    gpus: 2\n    bf16: false\n")
    target = results / "generated/CV_1/tiling_seed0.h5"
    cmd = [sys.executable, "-m", "snakemake", str(target), "--forcerun", "train_lodi"]
    cmd += ["--profile", str(make_test_profile(tmp_path)), "--configfile", str(CONFIG), str(overlay)]
    out = subprocess.run([*cmd, "--config", f"results={results}"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
    log = out.stdout + out.stderr
    job = re.search(r"SLURM jobid (\d+)[^\n]*rule_train_lodi", log)
    assert job, log[-3000:]
    info = subprocess.run(["scontrol", "show", "job", job.group(1)], capture_output=True, text=True).stdout
    assert "NumTasks=2" in info and re.search(r"gres[:/]gpu[:=]2", info), info
    train_log = (results / "logs/train_lodi.log").read_text()
    assert "rank 0 of 2 joined the gloo process group" in train_log, train_log[-2000:]
    assert "rank 1" not in train_log  # only rank 0 writes the log
    assert target.stat().st_mtime > (results / "lodi/model.pt").stat().st_mtime
    # one process, locally, same data and settings
    shutil.copytree(results, local)
    (local / "lodi/checkpoint.pt").unlink()
    overlay.write_text("lodi:\n  train:\n    bf16: false\n")
    one = snakemake(local, str(local / "lodi/model.pt"), "--forcerun", "train_lodi", configfiles=(overlay,))
    assert one.returncode == 0, one.stderr[-3000:]
    assert_same_network(load_checkpoint(results / "lodi/model.pt"), load_checkpoint(local / "lodi/model.pt"))

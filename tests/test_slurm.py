"""`snakemake --profile slurm all` on a real single-node SLURM cluster (scripts/local-slurm.sh:
Debian's slurm-wlm and munge, a fake GPU), compared with a local run of the same config."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from workflow_helpers import CONFIG, REPO

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


@pytest.fixture(scope="module")
def cluster():
    if os.environ.get("LODI_SKIP_SLURM"):
        pytest.skip("LODI_SKIP_SLURM is set")
    if os.geteuid() != 0 or not shutil.which("apt-get") and not shutil.which("slurmctld"):
        pytest.skip("starting the local SLURM cluster needs root and Debian's apt (or SLURM installed)")
    out = subprocess.run(["bash", str(REPO / "scripts/local-slurm.sh")], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        pytest.fail(f"local SLURM cluster did not start:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return True


@pytest.fixture(scope="module")
def test_profile(tmp_path_factory):
    """The users' profile, plus what the findings say a cluster without accounting needs:
    job status from squeue (sacct answers nothing) and a short wait before the first query."""
    prof = tmp_path_factory.mktemp("profile") / "slurm"
    prof.mkdir()
    text = (REPO / "profiles/slurm/config.yaml").read_text()
    text += "slurm-status-command: squeue\nslurm-init-seconds-before-status-checks: 1\n"
    (prof / "config.yaml").write_text(text)
    return prof


def test_the_profile_is_found_from_the_repository_root():
    assert (REPO / "slurm").resolve() == (REPO / "profiles/slurm").resolve()
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--profile", "slurm", "all"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Using profile slurm" in out.stdout + out.stderr or "Using profiles slurm" in out.stdout + out.stderr


def test_profile_slurm_all_equals_the_local_run(cluster, test_profile, workflow_results, tmp_path):
    results = tmp_path / "results"
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "all", "--profile", str(test_profile), "--configfile", str(CONFIG), "--config", f"results={results}"],
        cwd=REPO, capture_output=True, text=True, timeout=3000,
    )
    assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
    text = out.stdout + out.stderr
    assert "submitted with SLURM jobid" in text
    # the per-stage merges run where Snakemake runs (localrules), the stage shards on SLURM
    assert "localrule merge_stage" in text and "rule_merge_stage/" not in text
    assert "rule_generate_stage/" in text
    # GPU rules asked SLURM for a GPU and the job used the fallback with a warning
    log = (results / "logs/train_lodi.log").read_text()
    assert "a GPU was expected" in log and "using device cpu" in log
    for rel in ("grids/CV_0.h5", "grids/CV_1.h5", "halogen/predicted/CV_1.h5", "generated/CV_1/latent_overlap_seed0.h5", "generated/CV_1/tiling_seed0.h5"):
        with h5py.File(results / rel) as a, h5py.File(workflow_results / rel) as b:
            for name in a:
                np.testing.assert_array_equal(a[name][...], b[name][...], err_msg=f"{rel}:{name}")

"""`snakemake --profile slurm all` on a real single-node SLURM cluster (scripts/local-slurm.sh:
Debian's slurm-wlm and munge, two fake GPUs), compared with a local run of the same config."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np
import pytest
from slurm_helpers import SLURM_RUN, start
from workflow_helpers import REPO

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
    # field's maximum). Another seed, model or input differs at the order of the maximum.
    for rel, tol in (
        ("grids/CV_0.h5", 0),
        ("grids/CV_1.h5", 0),
        ("halogen/predicted/CV_1.h5", 1e-3),
        ("generated/CV_1/latent_overlap_seed0.h5", 1e-3),
        ("generated/CV_1/tiling_seed0.h5", 1e-3),
    ):
        with h5py.File(results / rel) as a, h5py.File(workflow_results / rel) as b:
            for name in a:
                x, y = a[name][...], b[name][...]
                scale = float(np.abs(y).max()) if y.size else 0.0
                np.testing.assert_allclose(x, y, rtol=0, atol=tol * scale, err_msg=f"{rel}:{name}")
                assert np.abs(x - y).mean() <= tol * 1e-2 * scale, f"{rel}:{name}: differs beyond a few voxels"

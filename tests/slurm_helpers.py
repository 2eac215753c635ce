"""`snakemake --profile slurm all` on the local cluster of scripts/local-slurm.sh, started in
the background as soon as its test is collected (conftest.py): the run spends most of its
~10 minutes waiting on submissions and status polls, so the other tests run beside it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from workflow_helpers import CONFIG, REPO

TEST_NAME = "test_profile_slurm_all_equals_the_local_run"


@dataclass
class SlurmRun:
    """A background run, or why there is none (``skip``: the test is skipped; ``error``:
    the cluster did not start, the test fails with it)."""

    workdir: Path | None = None
    process: subprocess.Popen | None = None
    skip: str | None = None
    error: str | None = None

    @property
    def results(self) -> Path:
        return self.workdir / "results"

    def wait(self, timeout: float = 3000) -> tuple[int, str]:
        """Exit status and the whole output of the run."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.terminate()
            code = -1
        return code, (self.workdir / "snakemake.log").read_text()

    def terminate(self) -> None:
        """Stop a run still going (Snakemake cancels its SLURM jobs)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def stop(self) -> None:
        """Terminate the run and remove its files."""
        self.terminate()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def make_test_profile(directory: Path) -> Path:
    """The users' profile, plus what the findings say a cluster without accounting needs:
    job status from squeue (sacct answers nothing) and a short wait before the first query."""
    prof = directory / "slurm"
    prof.mkdir()
    text = (REPO / "profiles/slurm/config.yaml").read_text()
    text += "slurm-status-command: squeue\nslurm-init-seconds-before-status-checks: 1\n"
    (prof / "config.yaml").write_text(text)
    return prof


def start() -> SlurmRun:
    """Start the cluster (installing SLURM from Debian's packages when needed) and the run."""
    if os.environ.get("LODI_SKIP_SLURM"):
        return SlurmRun(skip="LODI_SKIP_SLURM is set")
    if os.geteuid() != 0 or not shutil.which("apt-get") and not shutil.which("slurmctld"):
        return SlurmRun(skip="starting the local SLURM cluster needs root and Debian's apt (or SLURM installed)")
    out = subprocess.run(["bash", str(REPO / "scripts/local-slurm.sh")], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        return SlurmRun(error=f"local SLURM cluster did not start:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    workdir = Path(tempfile.mkdtemp(prefix="lodi-slurm-run-"))
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "all",
        "--profile",
        str(make_test_profile(workdir)),
        "--configfile",
        str(CONFIG),
        "--config",
        f"results={workdir / 'results'}",
    ]
    with open(workdir / "snakemake.log", "w") as log:
        process = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, text=True)
    return SlurmRun(workdir=workdir, process=process)


SLURM_RUN = pytest.StashKey[SlurmRun]()

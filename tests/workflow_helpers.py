"""Running the workflow from tests."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "tests" / "workflow_config.yaml"


def snakemake(results, *args, cores: int = 2, configfiles: tuple = (), env=None, dry_run: bool = False):
    """Run Snakemake on the test configuration (plus ``configfiles`` overriding it) with
    outputs under ``results``."""
    files = [str(CONFIG), *map(str, configfiles)]
    # targets and options first: --configfile and --config take every word after them
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        *args,
        "--cores",
        str(cores),
        "--configfile",
        *files,
        "--config",
        f"results={results}",
    ]
    if dry_run:
        cmd.insert(3, "-n")
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)


def dry_run(results, *targets, configfiles: tuple = ()) -> tuple[dict, list]:
    """(job count per rule, outputs it would write) of a dry run; empty when nothing to do."""
    out = snakemake(results, *targets, configfiles=configfiles, dry_run=True)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    text = out.stdout + out.stderr
    table = re.search(r"Job stats:\n(.*?)\ntotal", text, re.S)
    counts = {}
    for line in table.group(1).splitlines()[2:] if table else []:
        name, count = line.split()
        if name != "all":
            counts[name] = int(count)
    return counts, re.findall(r"output: ([^\n]+)", text)

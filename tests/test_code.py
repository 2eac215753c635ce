"""The code's own checks: the layers of lodi_core (import-linter's contracts in pyproject.toml),
the linter and formatter the code is written to (ruff), and the rule files' formatter
(snakefmt)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from workflow_helpers import REPO

SNAKE_FILES = ["Snakefile", *sorted(str(p.relative_to(REPO)) for p in (REPO / "workflow" / "rules").glob("*.smk"))]


def run(*cmd):
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)


def test_import_layers_hold():
    """Each layer imports only from those below it; figures and analysis never import a model,
    a training loop or a generation job, even indirectly."""
    out = run(sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "2 kept, 0 broken" in out.stdout


@pytest.mark.parametrize(
    "module, line, broken",
    [
        (
            "figures/style.py",
            "from ..models.vdm import alpha",
            "figures and analysis never run or train a model BROKEN",
        ),
        ("physics/spectra.py", "from ..data.boxes import box_grid", "lodi_core is layered BROKEN"),
        ("generation/jobs.py", "from ..training.loop import EMA", "lodi_core is layered BROKEN"),
    ],
)
def test_layer_check_fails_on_a_forbidden_import(tmp_path, module, line, broken):
    """The check is not vacuous: a figure importing a model, a lower layer importing a higher
    one, or a generation job importing the training loop each break a contract."""
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "lodi_core", copy / "lodi_core", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
    path = copy / "lodi_core" / module
    path.write_text(path.read_text() + f"\n{line}  # noqa: E402,F401\n")
    out = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"],
        cwd=copy,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(copy), "PATH": ""},
    )
    assert out.returncode != 0 and broken in out.stdout, out.stdout[-3000:]


@pytest.mark.parametrize("check", [["check"], ["format", "--check"]])
def test_ruff(check):
    out = run(sys.executable, "-m", "ruff", *check, ".")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_snakefmt():
    out = run(sys.executable, "-m", "snakefmt", "--check", *SNAKE_FILES)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]

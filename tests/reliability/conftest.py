"""Fixtures of the reliability tests."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from camels_layout import write_groups, write_snapshot  # noqa: E402


@pytest.fixture
def camels_files(tmp_path):
    return {
        "hydro": write_snapshot(tmp_path / "snapshot_090.hdf5"),
        "groups": write_groups(tmp_path / "groups_090.hdf5"),
        "dm_only": write_snapshot(tmp_path / "dm_snapshot_090.hdf5", gas=False),
    }

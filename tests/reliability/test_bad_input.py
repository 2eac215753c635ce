"""Bad input gives an error that names the file or key and what was expected, and leaves
no output behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from camels_layout import BOX, write_groups, write_snapshot
from grid_data import tiny

from lodi_core.data.grids import GridSpec, make_grids
from lodi_core.io import InputError, load_checkpoint, read_grids, save_checkpoint, write_grids

REPO = Path(__file__).resolve().parents[2]
SPEC = GridSpec(box_size=BOX, n_grid=16, allow_empty_channels=False)


def grids_to_file(files, out, spec=SPEC):
    """What rule grids does: read, compute, then write (atomically)."""
    grids, attrs = make_grids(files["hydro"], files["groups"], files["dm_only"], spec)
    write_grids(out, grids, attrs)


def test_valid_files_make_grids(camels_files, tmp_path):
    grids_to_file(camels_files, tmp_path / "out.h5")
    data, attrs = read_grids(tmp_path / "out.h5")
    assert data["halos"].shape == (4, 16, 16, 16) and attrs["halo_counts"] == [1, 1, 1, 1]


def expect_failure(files, out, match, spec=SPEC):
    with pytest.raises(InputError, match=match) as err:
        grids_to_file(files, out, spec)
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*"))
    return str(err.value)


def test_missing_snapshot(camels_files, tmp_path):
    camels_files["hydro"] = tmp_path / "nowhere/snapshot_090.hdf5"
    msg = expect_failure(camels_files, tmp_path / "out.h5", "missing snapshot")
    assert "nowhere/snapshot_090.hdf5" in msg


def test_not_hdf5_and_truncated(camels_files, tmp_path):
    bad = tmp_path / "text.hdf5"
    bad.write_text("this is not HDF5")
    camels_files["dm_only"] = bad
    assert "text.hdf5" in expect_failure(camels_files, tmp_path / "out.h5", "not an HDF5 file")
    truncated = tmp_path / "trunc.hdf5"
    data = Path(write_snapshot(tmp_path / "full.hdf5")).read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    camels_files["dm_only"] = camels_files["hydro"]
    camels_files["hydro"] = truncated
    expect_failure(camels_files, tmp_path / "out.h5", "trunc.hdf5")


def test_snapshot_missing_a_dataset(camels_files, tmp_path):
    camels_files["hydro"] = write_snapshot(tmp_path / "nohi.hdf5", drop=("NeutralHydrogenAbundance",))
    msg = expect_failure(camels_files, tmp_path / "out.h5", "PartType0/NeutralHydrogenAbundance")
    assert "nohi.hdf5" in msg


def test_box_size_and_redshift_must_match_the_config(camels_files, tmp_path):
    camels_files["hydro"] = write_snapshot(tmp_path / "big.hdf5", box=25.0)
    msg = expect_failure(camels_files, tmp_path / "out.h5", "box size is 25 Mpc/h")
    assert "expects 8 Mpc/h" in msg
    camels_files["hydro"] = write_snapshot(tmp_path / "z1.hdf5", redshift=1.0)
    expect_failure(camels_files, tmp_path / "out.h5", "redshift is 1, the config expects 0")


def test_nan_in_a_field(camels_files, tmp_path):
    camels_files["hydro"] = write_snapshot(tmp_path / "nan.hdf5", nan="Masses")
    expect_failure(camels_files, tmp_path / "out.h5", "PartType0/Masses' contains NaN")
    grid = tmp_path / "grid.h5"
    import h5py

    with h5py.File(grid, "w") as f:
        f.create_dataset("dm", data=np.full((4, 4, 4), np.nan))
        f.attrs["box_size"] = 1.0
    with pytest.raises(InputError, match="'dm' contains NaN"):
        read_grids(grid, ("dm",))


def test_empty_catalogue_and_empty_halo_channel(camels_files, tmp_path):
    camels_files["groups"] = write_groups(tmp_path / "empty.hdf5", masses_msun_h=())
    expect_failure(camels_files, tmp_path / "out.h5", "holds no halos")
    camels_files["groups"] = write_groups(tmp_path / "nobig.hdf5", masses_msun_h=(4e10, 2e11, 5e11))
    msg = expect_failure(camels_files, tmp_path / "out.h5", r"halo channel\(s\) \[4\]")
    assert "allow_empty_channels" in msg
    grids_to_file(camels_files, tmp_path / "ok.h5", GridSpec(box_size=BOX, n_grid=16, allow_empty_channels=True))
    assert (tmp_path / "ok.h5").exists()


def test_checkpoint_of_another_kind_or_corrupt(tmp_path):
    save_checkpoint(tmp_path / "lodi.pt", {"kind": "lodi", "model": {}})
    with pytest.raises(InputError, match="kind 'lodi', expected 'halogen'"):
        load_checkpoint(tmp_path / "lodi.pt", kind="halogen")
    (tmp_path / "junk.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match="junk.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")


def test_a_checkpoint_of_another_architecture_is_set_aside(grid_file, tmp_path, caplog):
    """A checkpoint made with other settings is never resumed: it is kept as
    checkpoint.stale-<time> with a warning naming what differs, and training starts over."""
    from lodi_core.models.halogen import HalogenConfig, LossConfig
    from lodi_core.training.halogen import HalogenTrainConfig, train_halogen

    cfg = tiny(HalogenTrainConfig, window=16, train_stride=16, batch_size=4, epochs=1, bf16=False)

    def run(channels, checkpoint):
        net = tiny(HalogenConfig, channels=channels, bottleneck_channels=8)
        return train_halogen(
            [grid_file], net, cfg, tiny(LossConfig), checkpoint, tmp_path / "h.csv", torch.device("cpu"), progress=False
        )

    run((4, 8, 8), tmp_path / "c.pt")
    other = run((8, 8, 8), tmp_path / "c.pt")
    stale = list(tmp_path.glob("c.pt.stale-*"))
    assert len(stale) == 1 and load_checkpoint(stale[0])["resume_key"]["network"]["channels"] == [4, 8, 8]
    assert "made with another setup (network" in caplog.text
    fresh = run((8, 8, 8), tmp_path / "fresh.pt")
    for k in fresh["model"]:
        assert torch.equal(other["model"][k], fresh["model"][k]), k


def _dry_run_with(tmp_path, edit) -> str:
    config = yaml.safe_load((REPO / "tests/workflow_config.yaml").read_text())
    edit(config)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", str(path), "--config", f"results={tmp_path}/results"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0
    assert not (tmp_path / "results").exists()
    return out.stdout + out.stderr


def test_config_with_a_misspelled_key(tmp_path):
    text = _dry_run_with(tmp_path, lambda c: c["lodi"]["train"].update({"itrations": 10}))
    assert "'itrations' was unexpected" in text


def test_config_with_a_wrong_type(tmp_path):
    text = _dry_run_with(tmp_path, lambda c: c["halogen"]["train"].update({"epochs": "many"}))
    assert "epochs" in text and "'many' is not of type 'integer'" in text


def test_config_with_impossible_values(tmp_path):
    text = _dry_run_with(tmp_path, lambda c: c["generation"].update({"overlap": -2}))
    assert "overlap" in text and "-2 is less than the minimum of 0" in text
    text = _dry_run_with(tmp_path, lambda c: c["lodi"]["train"].update({"box": 64}))
    assert "smaller than the box (64)" in text and "generation.overlap / lodi.train.box / data.n_grid" in text
    text = _dry_run_with(tmp_path, lambda c: c["data"].update({"n_grid": 15}))  # boxes of 8, overlap 2 cannot tile 15
    assert "invalid configuration" in text and "cannot be covered by boxes of 8 with overlap 2" in text


def test_a_grid_the_box_grid_cannot_cover():
    from lodi_core.data.boxes import box_origins

    with pytest.raises(ValueError, match="cannot be covered by boxes of 32 with overlap 4"):
        box_origins(62, 32, 4)

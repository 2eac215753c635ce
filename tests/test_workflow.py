"""The workflow end to end on the smallest configuration (tests/workflow_config.yaml):
outputs, stage jobs against one in-process call, reruns after a seed change, and a killed
stage redone without redoing earlier stages."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch
from grid_data import tiny
from workflow_helpers import CONFIG, REPO, dry_run, snakemake

from lodi_core.data.transforms import LogTransform
from lodi_core.generation.jobs import GenerationConfig, generate_volume, load_condition, load_sampler
from lodi_core.io import load_checkpoint
from lodi_core.models.halo_model import with_halo_model_channel
from lodi_core.training.lodi import LodiTrainConfig

pytestmark = pytest.mark.slow


def test_all_outputs_exist_with_units(workflow_results):
    r = workflow_results
    with h5py.File(r / "grids/CV_0.h5") as f:
        assert f["dm"].shape == (32, 32, 32) and f["halos"].shape == (4, 32, 32, 32)
        assert f["tb"].attrs["units"] == "mK" and "Msun" in f["halos"].attrs["units"]
        assert float(f.attrs["box_size"]) == 10.0 and int(f.attrs["n_grid"]) == 32
        assert "code_version" in f.attrs and "source_files" in f.attrs
        assert np.all(f["tb"][...] >= 0) and f["tb"][...].mean() > 0
    for name in (
        "grids_CV_0",
        "grids_CV_1",
        "halogen_loss",
        "lodi_loss",
        "fig5_methods_CV_1",
        "fig6_overlap_pair",
        "fig7_stages",
        "fig10_power_CV_1",
        "fig11_residuals",
        "posterior_CV_1",
    ):
        assert (r / f"figures/{name}.pdf").stat().st_size > 0 and (r / f"figures/{name}.png").stat().st_size > 0
    assert (r / "halogen/eval/CV_1_summary.csv").read_text().count("\n") == 5
    # halogen.mass_calibration of tests/workflow_config.yaml reaches the calibrate_halogen job
    method = load_checkpoint(r / "halogen/model_calibrated.pt")["mass_calibration_method"]
    assert list(method) == ["mean", "mean", "quantile", "quantile"]
    # and baselines.ldl.particle_stride the LDL fit (24^3 of the 48^3 particles)
    assert load_checkpoint(r / "baselines/ldl/model.pt")["config"]["particle_stride"] == 2
    # and lodi.train.background_fraction LODI's training boxes (half the lattice boxes without a heavy halo)
    lodi = load_checkpoint(r / "lodi/model.pt")
    assert lodi["selection"]["background"] > 0
    # and lodi.train.halo_model_channel its condition: the halo model's channel after the four
    assert lodi["network"]["cond_channels"] == 5 and len(lodi["halo_model_weights"]) == 4
    for method in ("latent_overlap", "tiling", "averaging", "halo_model", "halo_model_true", "ldl"):
        with h5py.File(r / f"generated/CV_1/{method}_seed0.h5") as f:
            tb = f["tb"][...]
            assert tb.shape == (32, 32, 32) and np.isfinite(tb).all() and (tb >= 0).all()
            assert f.attrs["method"] == method and f["tb"].attrs["units"] == "mK"
    # baselines.hi_redraw: CV_1 made again with two other draws of its HI, on the same halos
    with h5py.File(r / "grids/CV_1.h5") as f:
        target = f["tb"][...]
    redrawn = []
    for draw in (1, 2):
        with h5py.File(r / f"generated/CV_1/hi_redraw_seed{draw}.h5") as f:
            redrawn.append(f["tb"][...])
            assert f.attrs["method"] == "hi_redraw" and f.attrs["seed"] == draw and f["tb"].attrs["units"] == "mK"
    assert not np.array_equal(redrawn[0], target) and not np.array_equal(redrawn[0], redrawn[1])
    assert np.corrcoef(redrawn[0].ravel(), target.ravel())[0, 1] > 0.5  # the same halos carry the HI
    metrics = (r / "metrics.csv").read_text().splitlines()
    # one row per LODI method and seed, one per deterministic baseline, one per HI draw
    assert len(metrics) == 1 + 3 + 3 + 2 and metrics[0].startswith("simulation,seed,method")
    assert {line.split(",")[2] for line in metrics[1:]} == {
        "latent_overlap",
        "tiling",
        "averaging",
        "halo_model",
        "halo_model_true",
        "ldl",
        "hi_redraw",
    }
    for name in ("baselines_CV_1", "ldl_loss", "rk_CV_1"):
        assert (r / f"figures/{name}.pdf").stat().st_size > 0
    # temporary stage files are cleaned up, logs and benchmarks are kept
    assert not list((r / "generated/CV_1/seed0").glob("*.h5"))
    assert (r / "logs/train_lodi.log").stat().st_size > 0
    assert (r / "benchmarks/rules/train_lodi.tsv").exists()


def test_stage_jobs_give_exactly_the_in_process_volume(workflow_results):
    r = workflow_results
    cfg = tiny(GenerationConfig)  # the settings the workflow's jobs ran with
    sampler = load_sampler(r / "lodi/model_calibrated.pt", cfg, "cpu")  # lodi.tb_calibration: quantile
    cond, _ = load_condition(sampler, r / "halogen/predicted/CV_1.h5")
    state = generate_volume(sampler, cond, 0, "CV_1", cfg)
    with h5py.File(r / "generated/CV_1/latent_overlap_seed0.h5") as f:
        staged = torch.from_numpy(f["tb"][...])
    assert torch.equal(sampler.to_tb(state.x0).float(), staged)
    # the T_b calibration (rule calibrate_lodi): the trained file plus the map, and it maps
    trained = load_checkpoint(r / "lodi/model.pt", kind="lodi")
    assert set(sampler.meta) - set(trained) == {"tb_calibration", "tb_calibration_samples", "tb_calibration_level"}
    assert not torch.equal(sampler.to_tb(state.x0, calibrate=False).float(), staged)


def test_a_seed_change_reruns_only_generation_and_figures(workflow_results, tmp_path):
    seeds = tmp_path / "seeds.yaml"
    seeds.write_text("seeds: [0, 3]\n")
    jobs, _ = dry_run(workflow_results, "all", configfiles=(seeds,))
    assert jobs, "adding a seed must schedule work"
    upstream = {
        "synthetic_simulation",
        "grids",
        "train_halogen",
        "train_lodi",
        "predict_halos",
        "evaluate_halogen",
        "plot_grids",
        "plot_training",
    }
    assert not (set(jobs) & upstream), jobs
    assert jobs.get("generate_stage") == 16 and jobs.get("assemble_latent_overlap") == 1
    assert {"fig10_power", "fig11_residuals", "metrics"} <= set(jobs)
    assert not {"fig5_methods", "fig8_overview", "fig9_halos"} & set(jobs)  # first-seed figures stay


def test_nothing_reruns_on_an_unchanged_config(workflow_results):
    assert dry_run(workflow_results, "all")[0] == {}


def one_shard(tmp_path):
    """A config overlay with one shard per stage: half the stage jobs (their Python start-up
    is most of a tiny job's time) where the test is not about sharding."""
    path = tmp_path / "one_shard.yaml"
    path.write_text("generation:\n  shards: 1\n")
    return path


def test_a_killed_stage_is_redone_and_earlier_stages_are_not(workflow_results, tmp_path):
    r = workflow_results
    seed = 5
    target = f"{r}/generated/CV_1/latent_overlap_seed{seed}.h5"
    stage4 = f"{r}/generated/CV_1/seed{seed}/state_stage4.h5"
    overlay = (one_shard(tmp_path),)
    out = snakemake(r, stage4, "--notemp", configfiles=overlay)
    assert out.returncode == 0, out.stderr[-2000:]
    # start the rest and kill everything as soon as a stage-5 job runs
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "snakemake",
            target,
            "--notemp",
            "--cores",
            "2",
            "--configfile",
            str(CONFIG),
            *map(str, overlay),
            "--config",
            f"results={r}",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env=env,
    )
    log5 = r / f"logs/generate/CV_1_seed{seed}_stage5_shard0.log"
    deadline = time.time() + 120
    while time.time() < deadline and not log5.exists():
        time.sleep(0.2)
    assert log5.exists(), "stage 5 never started"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not os.path.exists(target)
    assert not list((r / f"generated/CV_1/seed{seed}").glob("state_stage5*"))
    jobs, outputs = dry_run(r, target, "--notemp", configfiles=overlay)
    stages = {int(m) for m in re.findall(r"state_stage(\d)", " ".join(outputs))}
    assert "merge_stage" in jobs and min(stages) == 5, jobs  # stages 1-4 are not redone
    assert snakemake(r, "--unlock").returncode == 0  # a killed Snakemake leaves its lock behind
    out = snakemake(r, target, configfiles=overlay)
    assert out.returncode == 0, out.stderr[-2000:]
    cfg = tiny(GenerationConfig, shards=1)
    sampler = load_sampler(r / "lodi/model_calibrated.pt", cfg, "cpu")
    cond, _ = load_condition(sampler, r / "halogen/predicted/CV_1.h5")
    state = generate_volume(sampler, cond, seed, "CV_1", cfg)
    with h5py.File(target) as f:
        assert torch.equal(sampler.to_tb(state.x0).float(), torch.from_numpy(f["tb"][...]))


def test_snakemake_lint_is_clean():
    out = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and "Lints for" not in out.stdout + out.stderr, (out.stdout + out.stderr)[-3000:]


def test_bring_your_own_dark_matter_with_the_cli(workflow_results, tmp_path):
    """A user's DM-only snapshot (here: a held-out synthetic one) through `python -m
    lodi_core generate` with the trained models, outside Snakemake."""
    r = workflow_results
    snapshot = next((r / "synthetic_camels").rglob("IllustrisTNG_DM/*/CV/CV_1/snapshot_090.hdf5"))
    out = tmp_path / "my_tb.h5"
    cmd = [
        sys.executable,
        "-m",
        "lodi_core",
        "generate",
        "--dm-snapshot",
        str(snapshot),
        "--halogen",
        str(r / "halogen/model_calibrated.pt"),  # with a halogen.mass_calibration, as README says
        "--lodi",
        str(r / "lodi/model.pt"),
        "--out",
        str(out),
        "--seed",
        "2",
        "--overlap",
        "2",
        "--stride",
        "8",
        "--device",
        "cpu",
    ]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert res.returncode == 0, res.stderr[-3000:]
    with h5py.File(out) as f:
        assert f["tb"].shape == (32, 32, 32) and np.isfinite(f["tb"][...]).all()
        assert f.attrs["method"] == "latent_overlap" and f.attrs["seed"] == 2
    bad = subprocess.run(
        cmd[:5] + [str(tmp_path / "none.hdf5")] + cmd[6:],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert bad.returncode == 1 and "missing snapshot" in bad.stderr


def test_bring_your_own_dark_matter_in_the_workflow(workflow_results, tmp_path):
    """Naming a DM-only snapshot under generation.dm_snapshots generates it without touching
    the training rules."""
    r = workflow_results
    snapshot = next((r / "synthetic_camels").rglob("IllustrisTNG_DM/*/CV/CV_0/snapshot_090.hdf5"))
    extra = tmp_path / "byo.yaml"
    extra.write_text(f"generation:\n  shards: 1\n  dm_snapshots:\n    MYDM: {snapshot}\n")
    target = f"{r}/generated/MYDM/latent_overlap_seed0.h5"
    jobs, _ = dry_run(r, target, configfiles=(extra,))
    assert set(jobs) == {"dm_grid", "predict_halos", "generate_stage", "merge_stage", "assemble_latent_overlap"}, jobs
    out = snakemake(r, target, configfiles=(extra,))
    assert out.returncode == 0, out.stderr[-3000:]
    with h5py.File(target) as f:
        assert f["tb"].shape == (32, 32, 32) and f.attrs["simulation"] == "MYDM"


def test_lodi_learns_from_halogen_halos_when_configured(workflow_results, tmp_path):
    """lodi.train.condition: halogen runs HALOgen on LODI's training simulation first and
    trains on its halos (on a copy of the finished run: LODI is retrained)."""
    r = tmp_path / "results"
    shutil.copytree(workflow_results, r, symlinks=True)
    # the copy has no Snakemake metadata, so only a missing model (not the changed input list)
    # makes LODI retrain; whether the copied HALOgen is older than it depends on job order
    (r / "lodi/model.pt").unlink()
    (r / "halogen/predicted/CV_0.h5").unlink()  # made for the T_b calibration on CV_0; made again here
    extra = tmp_path / "condition.yaml"
    extra.write_text("lodi:\n  train:\n    condition: halogen\n")
    target = f"{r}/lodi/model.pt"
    jobs, outputs = dry_run(r, target, configfiles=(extra,))
    assert jobs == {"predict_halos": 1, "train_lodi": 1}, jobs
    assert any(o.endswith("halogen/predicted/CV_0.h5") for o in outputs), outputs
    out = snakemake(r, target, configfiles=(extra,))
    assert out.returncode == 0, out.stderr[-3000:]
    with h5py.File(r / "halogen/predicted/CV_0.h5") as f:
        predicted = f["halos"][...]
    model = load_checkpoint(target, kind="lodi")
    floor = tiny(LodiTrainConfig).halo_floor
    # the test config adds the halo model's channel, painted on HALOgen's halos too
    condition = with_halo_model_channel(torch.from_numpy(predicted), model["halo_model_weights"], 0).numpy()
    assert model["halo_transform"]["mean"] == pytest.approx(LogTransform.fit([condition], floor, 0).mean)


def test_tb_calibration_on_halogens_own_simulations_warns(tmp_path):
    """The T_b calibration fitted on HALOgen's halos of a simulation HALOgen trained on made the
    held-out spectra worse (docs/convergence.md): the workflow says so (the test config does
    it, on CV_0), and not for a simulation HALOgen did not see."""
    assert "warning: lodi.tb_calibration on HALOgen's halos of ['CV_0']" in snakemake(tmp_path, dry_run=True).stderr
    other = tmp_path / "other.yaml"
    other.write_text("simulations:\n  lodi_calibration: [CV_1]\n")
    out = snakemake(tmp_path, configfiles=(other,), dry_run=True)
    assert out.returncode == 0 and "warning: lodi.tb_calibration" not in out.stderr, out.stderr[-2000:]


def test_the_report_builds(workflow_results, tmp_path):
    report = tmp_path / "report.zip"
    out = snakemake(workflow_results, "--report", str(report))
    assert out.returncode == 0, out.stderr[-3000:]
    import zipfile

    names = zipfile.ZipFile(report).namelist()
    assert any("fig10_power_CV_1" in n for n in names) and any("grids_CV_0" in n for n in names)


def test_gpu_rules_declare_retries():
    """Transient failures of GPU jobs are retried (and a retried job resumes: see the
    reliability tests)."""
    import re

    for smk in (REPO / "workflow/rules").glob("*.smk"):
        for block in re.split(r"(?m)^rule ", smk.read_text())[1:]:
            if "cluster_resources(gpu=True)" in block:
                name = block.split(":", 1)[0]
                assert re.search(r"(?m)^    retries: [1-9]", block), f"{smk.name}: rule {name} has no retries"

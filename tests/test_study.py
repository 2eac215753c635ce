"""The convergence study: chained snapshots equal one uninterrupted run, and `snakemake study`
at the tiny size writes the learning curve, then continues it when a longer budget is given."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
import yaml
from grid_data import TINY_CONFIG
from workflow_helpers import REPO, dry_run, snakemake

from lodi_core.io import load_checkpoint
from lodi_core.study import run_halogen_snapshot, run_lodi_snapshot, summary

STUDY_CONFIG = REPO / "tests" / "study_config.yaml"


def _lodi_config(**train):
    lodi = {k: dict(v) if isinstance(v, dict) else v for k, v in TINY_CONFIG["lodi"].items()}  # tb_calibration: a str
    lodi["train"].update(
        box=8,
        candidate_stride=4,
        batch_size=2,
        warmup=2,
        checkpoint_every=3,
        validate_every=3,
        val_boxes=2,
        bf16=False,
        important_log_rho=11.0,
        **train,
    )
    return lodi


@pytest.mark.parametrize("schedule", ["constant"])
def test_lodi_snapshots_chain_to_the_weights_of_one_run(grid_file, tmp_path, schedule):
    """Snapshots at 3 and 7 continue one another exactly: the step-7 model equals a run
    straight to 7, and the history and wall time carry on across the chain."""
    lodi = _lodi_config(lr_schedule=schedule)
    a, b, c = (tmp_path / n for n in ("a", "b", "c"))
    run_lodi_snapshot(
        [grid_file], lodi, 3, None, a / "w.pt", a / "state.pt", a / "model.pt", a / "h.csv", torch.device("cpu")
    )
    run_lodi_snapshot(
        [grid_file],
        lodi,
        7,
        a / "state.pt",
        b / "w.pt",
        b / "state.pt",
        b / "model.pt",
        b / "h.csv",
        torch.device("cpu"),
    )
    run_lodi_snapshot(
        [grid_file], lodi, 7, None, c / "w.pt", c / "state.pt", c / "model.pt", c / "h.csv", torch.device("cpu")
    )
    chained, straight = load_checkpoint(b / "model.pt"), load_checkpoint(c / "model.pt")
    for k in straight["model"]:
        assert torch.equal(chained["model"][k], straight["model"][k]), k
    assert chained["steps"] == 7 and len(chained["x_variance"]) == TINY_CONFIG["lodi"]["vdm"]["timesteps"] + 1
    history = pd.read_csv(b / "h.csv")
    assert history["step"].tolist() == list(range(1, 8)) and history["time_s"].is_monotonic_increasing
    assert not (a / "w.pt").exists() and not (b / "w.pt").exists()  # work checkpoints became the states


def test_halogen_snapshots_chain_to_the_weights_of_one_run(grid_file, tmp_path):
    halogen = {k: dict(v) if isinstance(v, dict) else v for k, v in TINY_CONFIG["halogen"].items()}
    halogen["train"].update(window=16, train_stride=8, batch_size=4, bf16=False)
    a, b, c = (tmp_path / n for n in ("a", "b", "c"))
    run_halogen_snapshot(
        [grid_file], halogen, 1, None, a / "w.pt", a / "s.pt", a / "m.pt", a / "h.csv", torch.device("cpu")
    )
    run_halogen_snapshot(
        [grid_file], halogen, 2, a / "s.pt", b / "w.pt", b / "s.pt", b / "m.pt", b / "h.csv", torch.device("cpu")
    )
    run_halogen_snapshot(
        [grid_file], halogen, 2, None, c / "w.pt", c / "s.pt", c / "m.pt", c / "h.csv", torch.device("cpu")
    )
    chained, straight = load_checkpoint(b / "m.pt"), load_checkpoint(c / "m.pt")
    assert chained["epochs"] == 2
    for k in straight["model"]:
        assert torch.equal(chained["model"][k], straight["model"][k]), k


def test_summary_averages_seeds_per_snapshot_and_keeps_each_channel_and_baseline():
    table = pd.DataFrame(
        [
            {
                "model": "lodi",
                "variant": "v",
                "condition": "true_halos",
                "step": 10,
                "seed": 0,
                "r_k1": 0.5,
                "time_s": 4.0,
            },
            {
                "model": "lodi",
                "variant": "v",
                "condition": "true_halos",
                "step": 10,
                "seed": 1,
                "r_k1": 0.7,
                "time_s": 4.0,
            },
            {
                "model": "lodi",
                "variant": "v",
                "condition": "halogen",
                "step": 10,
                "seed": 0,
                "r_k1": 0.1,
                "time_s": 4.0,
            },
            {"model": "halogen", "simulation": "A", "epoch": 2, "channel": 1, "mass_recovered": 0.2},
            {"model": "halogen", "simulation": "B", "epoch": 2, "channel": 1, "mass_recovered": 0.4},
            {"model": "halogen", "simulation": "A", "epoch": 2, "channel": 2, "mass_recovered": 0.1},
            {"model": "baseline", "variant": "ldl", "simulation": "A", "r_k1": 0.3},
        ]
    )
    out = summary(table).set_index(["model", "variant", "condition"], drop=False)
    true = out.loc[("lodi", "v", "true_halos")]
    assert true["r_k1"] == pytest.approx(0.6) and true["n"] == 2 and true["time_s"] == 4.0
    assert out.loc[("lodi", "v", "halogen")]["n"] == 1
    halogen = out[out["model"] == "halogen"].set_index("channel")
    assert halogen.loc[1, "mass_recovered"] == pytest.approx(0.3) and halogen.loc[2, "mass_recovered"] == 0.1
    assert out[out["model"] == "baseline"]["r_k1"].tolist() == [0.3]


def test_the_figure_draws_a_curve_without_halogen_with_raw_and_calibrated_lines(tmp_path):
    """A study with study.halogen.epochs [] has no HALOgen rows: the figure leaves out their
    panel; a calibrating variant's raw and calibrated T_b are two lines."""
    from lodi_core.figures.builders import CURVE_PANELS, learning_curve_figure

    metrics = {column: 0.5 for column, _, _ in CURVE_PANELS}
    rows = [
        {"model": "lodi", "variant": "v", "condition": "true_halos", "tb": tb, "step": step, "time_s": step / 10}
        | {"seed": 0, "simulation": "A", **metrics, "mean_abs_residual_k5": 0.3 if tb == "raw" else 0.2}
        for tb in ("raw", "calibrated")
        for step in (10, 20)
    ]
    table = pd.DataFrame(rows + [{"model": "baseline", "variant": "hi_redraw", "simulation": "A", **metrics}])
    learning_curve_figure(table, "v", "t", tmp_path / "curve.png")
    assert (tmp_path / "curve.png").stat().st_size > 0


@pytest.mark.slow
def test_study_writes_the_learning_curve_and_continues_it(workflow_results, tmp_path):
    r = workflow_results
    out = snakemake(r, "study", configfiles=(STUDY_CONFIG,))
    assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
    table = pd.read_csv(r / "study/learning_curve.csv")
    lodi = table[table["model"] == "lodi"]
    # main: 2 steps x 2 conditions; min_snr: 1; main_analytic: 1 (one seed, one simulation);
    # calibrated: 1 (two simulations, each as painted and calibrated)
    assert sorted(lodi.groupby(["variant", "condition", "step"]).size().index.tolist()) == [
        ("calibrated", "true_halos", 8),
        ("main", "halogen", 4),
        ("main", "halogen", 8),
        ("main", "true_halos", 4),
        ("main", "true_halos", 8),
        ("main_analytic", "true_halos", 8),
        ("min_snr", "true_halos", 4),
    ]
    for column in (
        "mean_abs_residual_k5",
        "max_abs_residual_k10",
        "r_k1",
        "pdf_distance_dex",
        "mean_tb_ratio",
        "seam_metric",
        "time_s",
    ):
        assert lodi[column].notna().all(), column
    main = lodi[(lodi["variant"] == "main") & (lodi["condition"] == "true_halos")].sort_values("step")
    assert main["time_s"].is_monotonic_increasing
    halogen = table[table["model"] == "halogen"]
    assert sorted(halogen["epoch"].unique()) == [1, 2] and sorted(halogen["channel"].unique()) == [1, 2, 3, 4]
    baselines = table.loc[table["model"] == "baseline", "variant"]
    assert set(baselines) == {"halo_model", "halo_model_true", "ldl", "hi_redraw"}
    assert (baselines == "hi_redraw").sum() == 2  # every draw of the floor (tests/workflow_config.yaml)
    assert (r / "figures/study/learning_curve.png").stat().st_size > 0
    brief = pd.read_csv(r / "study/learning_curve_summary.csv").query("model == 'lodi'")
    assert len(brief) == 8 and brief.groupby("variant")["n"].max().to_dict() == {
        "calibrated": 2,
        "main": 1,
        "main_analytic": 1,
        "min_snr": 1,
    }
    # the analytic and calibrated variants sampled the main variant's weights: no training of their own
    assert not (r / "study/lodi/main_analytic").exists() and not (r / "study/lodi/calibrated").exists()
    # calibrated: one volume per simulation, as painted and through the map fitted on CV_0's seed-0
    # volume of the same snapshot and sampler: that volume gets CV_0's own level exactly
    cal = lodi[lodi["variant"] == "calibrated"].set_index(["simulation", "tb"])
    assert sorted(cal.index) == [("CV_0", "calibrated"), ("CV_0", "raw"), ("CV_1", "calibrated"), ("CV_1", "raw")]
    assert cal.loc[("CV_0", "calibrated"), "mean_tb_ratio"] == pytest.approx(1.0, abs=1e-3)
    assert abs(cal.loc[("CV_0", "raw"), "mean_tb_ratio"] - 1) > 0.01
    raw_main = lodi[(lodi["variant"] == "main") & (lodi["step"] == 8) & (lodi["condition"] == "true_halos")]
    assert cal.loc[("CV_1", "raw"), "r_k1"] == pytest.approx(raw_main["r_k1"].item())  # the same volume
    assert set(lodi.loc[lodi["variant"] != "calibrated", "tb"]) == {"raw"}
    # the residual of the mean P(k) over a snapshot's volumes: one volume's own mean residual, and
    # for the calibrated variant's two, that of their mean P_gen/P_target, by hand
    for _, row in brief[brief["n"] == 1].iterrows():
        assert row["mean_pk_mean_abs_residual_k10"] == pytest.approx(row["mean_abs_residual_k10"]), row["variant"]
    scores = r / "study/scores/lodi/calibrated"
    pk = pd.concat([pd.read_csv(scores / f"step8_{sim}_true_halos_seed0_pk.csv") for sim in ("CV_0", "CV_1")])
    for tb, rows in pk.groupby("tb"):
        mean = rows[rows["k"] <= 10].groupby("k")["ratio"].mean()
        assert len(mean) > 3 and rows.groupby("k").size().eq(2).all()
        expected = (mean - 1).abs().mean()
        got = brief.set_index(["variant", "tb"]).loc[("calibrated", tb), "mean_pk_mean_abs_residual_k10"]
        assert got == pytest.approx(expected), tb

    # a longer budget continues the chain: only the new snapshot, its scores and the curve run
    longer = tmp_path / "longer.yaml"
    cfg = yaml.safe_load(STUDY_CONFIG.read_text())
    cfg["study"]["variants"]["main"]["steps"] = [4, 8, 12]
    longer.write_text(yaml.safe_dump(cfg))
    counts, _ = dry_run(r, "study", configfiles=(longer,))
    assert counts == {"study_lodi_snapshot": 1, "study_lodi_score": 2, "study_curve": 1, "study": 1}, counts
    out = snakemake(r, "study", configfiles=(longer,))
    assert out.returncode == 0, (out.stdout + out.stderr)[-5000:]
    history = pd.read_csv(r / "study/lodi/main/step12/history.csv")
    assert history["step"].tolist() == list(range(1, 13))


def test_study_only_runs_the_named_variants_and_their_chains(tmp_path):
    """study.only: the named variants alone; one trained as another trains that chain to its own
    steps only; HALOgen is left out with epochs []; an unknown name is refused."""
    only = tmp_path / "only.yaml"
    only.write_text(
        yaml.safe_dump({"study": {"only": ["calibrated"], "main": "calibrated", "halogen": {"epochs": []}}})
    )
    counts, outputs = dry_run(tmp_path / "results", "study", configfiles=(STUDY_CONFIG, only))
    assert counts["study_lodi_snapshot"] == 1 and any("study/lodi/main/step8/model.pt" in o for o in outputs)
    assert counts["study_calibrate_lodi"] == 1 and counts["study_lodi_score"] == 2
    assert "study_halogen_snapshot" not in counts and "study_halogen_score" not in counts
    only.write_text(yaml.safe_dump({"study": {"only": ["nonesuch"]}}))
    out = snakemake(tmp_path / "results", "study", configfiles=(STUDY_CONFIG, only), dry_run=True)
    assert out.returncode != 0 and "study.only names ['nonesuch']" in out.stdout + out.stderr

"""The convergence study (``snakemake study --configfile config/study.yaml``): HALOgen and LODI
trained in chained snapshots at geometric steps, each snapshot scored on the held-out
simulations, and the learning curve gathered in one table.

A snapshot job continues the previous snapshot's full training state (weights, optimizer, EMA,
random generators: exact resume) to its own step and writes the state, the model file (the
weights of that step, not the best validation ones) and the loss history, so a longer budget
adds snapshots without retraining the earlier ones. Its wall time is the training's own
(``time_s`` of the loop, summed over the chain). A score job generates or predicts one
held-out volume with a snapshot and writes one row of metrics.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .analysis.halogen_eval import evaluate_halos
from .analysis.metrics import K_LIMITS, mean_abs_residual, power_residual, value_at, volume_metrics, with_tb
from .generation.halos import calibrate_halogen, predict_halos
from .generation.jobs import GenerationConfig, generate_volume, load_condition, load_sampler
from .io import load_checkpoint, read_grids, save_checkpoint, write_csv, write_grids
from .models.halogen import HalogenConfig, LossConfig, load_halogen
from .models.unet import DenoiserConfig
from .models.vdm import VDMConfig
from .training.halogen import HalogenTrainConfig, train_halogen
from .training.lodi import LodiTrainConfig, train_lodi


def _continue(prev_state, work: Path) -> None:
    """Start the work checkpoint from the previous snapshot's state, unless a run of this
    snapshot was interrupted and left its own work checkpoint to resume."""
    if prev_state and not work.exists():
        work.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(prev_state, work)


def _finish(content: dict, work: Path, state_out, model_out) -> None:
    save_checkpoint(model_out, content)
    Path(state_out).parent.mkdir(parents=True, exist_ok=True)
    os.replace(work, state_out)


def run_lodi_snapshot(
    grid_files, lodi: dict, step: int, prev_state, work, state_out, model_out, history_out, device, expect=None
):
    """Train LODI (config dict ``lodi``: network, vdm, train) from ``prev_state`` (or from
    scratch) to iteration ``step``; writes the state, the model file (EMA weights of this
    step) and the loss history."""
    work = Path(work)
    _continue(prev_state, work)
    cfg = LodiTrainConfig.from_dict({**lodi["train"], "iterations": int(step)})
    content = train_lodi(
        list(grid_files),
        DenoiserConfig.from_dict(lodi["network"]),
        VDMConfig.from_dict(lodi["vdm"]),
        cfg,
        work,
        history_out,
        device,
        expect,
        keep="last",
    )
    _finish(content, work, state_out, model_out)


def run_halogen_snapshot(
    grid_files, halogen: dict, epoch: int, prev_state, work, state_out, model_out, history_out, device, expect=None
):
    """Train HALOgen (config dict ``halogen``: network, loss, train) from ``prev_state`` to
    epoch ``epoch``; writes the state, the model file (weights of this epoch), the history."""
    work = Path(work)
    _continue(prev_state, work)
    content = train_halogen(
        list(grid_files),
        HalogenConfig.from_dict(halogen["network"]),
        HalogenTrainConfig.from_dict({**halogen["train"], "epochs": int(epoch)}),
        LossConfig.from_dict(halogen["loss"]),
        work,
        history_out,
        device,
        expect,
        keep="last",
    )
    _finish(content, work, state_out, model_out)


def run_predict_halos(
    model_path, grid_path, out_path, inference: dict, device, calibration_grids=(), method: str = "mean"
) -> None:
    """HALOgen snapshot -> halo channels of a held-out simulation (a grid file of ``halos``),
    with the snapshot's mass calibration (``method``) fitted on ``calibration_grids`` (the
    training simulations) when there are any."""
    net, meta = load_halogen(model_path, device)
    if calibration_grids:
        meta = calibrate_halogen(net, meta, calibration_grids, inference, method)
    data, attrs = read_grids(grid_path, ("dm",))
    rho = predict_halos(net, meta, data["dm"], **inference)
    write_grids(out_path, {"halos": rho}, {**attrs, "halogen_model": str(model_path)})


def score_halogen(model_path, predicted_path, grid_path, out_csv, post_threshold: float, k: float = 1.0) -> None:
    """One row per halo channel: the fraction of halo mass recovered, the median log10 rho_h of
    target and prediction (above the post-threshold), and the channel's P(k) residual and r
    at ``k``; with the snapshot's epoch and training wall time."""
    pred, _ = read_grids(predicted_path, ("halos",))
    target, attrs = read_grids(grid_path, ("halos",))
    tables = evaluate_halos(pred["halos"], target["halos"], float(attrs["box_size"]), floor=10.0**post_threshold)
    meta = load_checkpoint(model_path, kind="halogen")
    rows = []
    for _, r in tables["summary"].iterrows():
        pk = tables["pk"][tables["pk"]["channel"] == r["channel"]] if len(tables["pk"]) else tables["pk"]
        rows.append(
            {
                "model": "halogen",
                "epoch": int(meta["epochs"]),
                "step": int(meta["steps"]),
                "time_s": float(meta.get("time_s", np.nan)),
                "simulation": str(attrs.get("simulation", Path(grid_path).stem)),
                "channel": int(r["channel"]),
                "mass_recovered": r["mass_recovered"],
                "median_target": r["target_median"],
                "median_pred": r["pred_median"],
                f"residual_k{k:g}": value_at(pk, "residual", k) if len(pk) else np.nan,
                f"r_k{k:g}": value_at(pk, "r", k) if len(pk) else np.nan,
            }
        )
    write_csv(pd.DataFrame(rows), out_csv)


def score_lodi(
    model_path,
    halos_path,
    grid_path,
    out_csv,
    generation: dict,
    seed: int,
    simulation: str,
    device,
    labels: dict,
    spectra_csv=None,
) -> None:
    """Generate ``simulation`` by latent overlap with a LODI snapshot on ``halos_path`` (all
    eight stages in one process) and write one row per T_b: ``labels`` (variant, condition),
    ``tb`` (``raw``, as painted; and ``calibrated`` when the model file has a T_b calibration,
    the same volume through it), the snapshot's step and training wall time, the generation
    time and :func:`analysis.metrics.volume_metrics` against the target T_b; ``spectra_csv``
    gets P_gen/P_target per k bin of each row (what the summary's residual of the mean P(k)
    over simulations and seeds is made of)."""
    cfg = GenerationConfig.from_dict(generation)
    sampler = load_sampler(model_path, cfg, device)
    cond, _ = load_condition(sampler, halos_path)
    t0 = time.perf_counter()
    x0 = generate_volume(sampler, cond, seed, simulation, cfg).x0.float()
    generation_s = time.perf_counter() - t0
    volumes = {"raw": sampler.to_tb(x0, calibrate=False)}
    if sampler.tb_calibration is not None:
        volumes["calibrated"] = sampler.to_tb(x0)
    target, attrs = read_grids(grid_path, ("tb",))
    vattrs = {
        "method": "latent_overlap",
        "box_size": attrs["box_size"],
        "n_grid": attrs["n_grid"],
        "box": int(sampler.meta["box"]),
        "overlap": cfg.overlap,
        "periodic": cfg.periodic,
    }
    rows, spectra = [], []
    for kind, tb in volumes.items():
        keys = {"model": "lodi", **labels, "tb": kind, "step": int(sampler.meta["steps"])}
        keys.update(simulation=simulation, seed=seed)
        tb = tb.cpu().numpy()
        rows.append(
            {
                **keys,
                "time_s": float(sampler.meta.get("time_s", np.nan)),
                "generation_s": generation_s,
                **volume_metrics(tb, target["tb"], vattrs),
            }
        )
        power = power_residual(tb, target["tb"], float(attrs["box_size"]))
        spectra.append(power[["k", "n_modes"]].assign(**keys, ratio=power["residual"] + 1.0))
    write_csv(pd.DataFrame(rows), out_csv)
    if spectra_csv is not None:
        write_csv(pd.concat(spectra, ignore_index=True), spectra_csv)


def baseline_rows(volume_paths, grid_paths: dict) -> pd.DataFrame:
    """The reference lines: the metrics of the baseline volumes (halo model, LDL)."""
    rows = []
    for p in volume_paths:
        data, attrs = read_grids(p, ("tb",))
        sim = str(attrs["simulation"])
        target = read_grids(grid_paths[sim], ("tb",))[0]["tb"]
        rows.append(
            {
                "model": "baseline",
                "variant": str(attrs["method"]),
                "simulation": sim,
                **volume_metrics(data["tb"], target, attrs),
            }
        )
    return pd.DataFrame(rows)


def learning_curve(score_csvs, baseline_volumes, grid_paths: dict, out_csv) -> pd.DataFrame:
    """results/study/learning_curve.csv: every score row (LODI per variant, step, condition,
    simulation and seed; HALOgen per epoch, simulation and channel) and the baselines."""
    parts = [pd.read_csv(p) for p in score_csvs]
    if baseline_volumes:
        parts.append(baseline_rows(baseline_volumes, grid_paths))
    table = pd.concat(parts, ignore_index=True, sort=False)
    write_csv(table, out_csv)
    return table


SUMMARY_METRICS = (
    "time_s",
    "max_abs_residual_k1",
    "max_abs_residual_k5",
    "max_abs_residual_k10",
    "mean_abs_residual_k1",
    "mean_abs_residual_k5",
    "mean_abs_residual_k10",
    "r_k1",
    "r_k5",
    "pdf_distance_dex",
    "mean_tb_ratio",
    "seam_metric",
)


SNAPSHOT_KEYS = ["variant", "condition", "tb", "step"]


def mean_pk_residuals(spectra: pd.DataFrame) -> pd.DataFrame:
    """Per snapshot, condition and T_b (``SNAPSHOT_KEYS``), the residual of the mean P(k) over
    its volumes (simulations and seeds): mean |<P_gen/P_target> - 1| over the bins k <= 1, 5,
    10 h/Mpc (``mean_pk_mean_abs_residual_k*``, the paper's "mean P(k) within 10 %")."""
    spectra = with_tb(spectra)
    mean = spectra.groupby([*SNAPSHOT_KEYS, "k"], sort=False)["ratio"].mean().reset_index()
    mean["residual"] = mean["ratio"] - 1.0
    return mean.groupby(SNAPSHOT_KEYS, sort=False).apply(
        lambda t: pd.Series({f"mean_pk_mean_abs_residual_k{k:g}": mean_abs_residual(t, k) for k in K_LIMITS}),
        include_groups=False,
    )


def summary(table: pd.DataFrame, out_csv=None, spectra: pd.DataFrame | None = None) -> pd.DataFrame:
    """The learning curve in one row per LODI snapshot, condition and T_b (means over
    simulations and seeds, with ``n`` the number of volumes, and with ``spectra``, the score
    jobs' P_gen/P_target per k, :func:`mean_pk_residuals`), per HALOgen epoch and channel, and per
    baseline: what docs/convergence.md quotes."""
    parts = []
    lodi = with_tb(table[table["model"] == "lodi"])
    if len(lodi):
        cols = [c for c in SUMMARY_METRICS if c in lodi]
        g = lodi.groupby(SNAPSHOT_KEYS, sort=False)
        rows = g[cols].mean().join(g.size().rename("n"))
        if spectra is not None and len(spectra):
            rows = rows.join(mean_pk_residuals(spectra))
        parts.append(rows.reset_index().assign(model="lodi"))
    halogen = table[table["model"] == "halogen"]
    if len(halogen):
        cols = [c for c in halogen.columns if c not in ("model", "simulation", "epoch", "channel")]
        cols = [c for c in cols if pd.api.types.is_numeric_dtype(halogen[c])]
        g = halogen.groupby(["epoch", "channel"])
        parts.append(g[cols].mean().reset_index().assign(model="halogen"))
    base = table[table["model"] == "baseline"]
    if len(base):
        cols = [c for c in SUMMARY_METRICS if c in base and c != "time_s"]
        parts.append(base.groupby("variant")[cols].mean().reset_index().assign(model="baseline"))
    out = pd.concat(parts, ignore_index=True, sort=False)
    out = out[["model"] + [c for c in out.columns if c != "model"]]
    if out_csv is not None:
        write_csv(out, out_csv)
    return out

"""LODI's T_b calibration (``lodi.tb_calibration: quantile``) scored on several held-out
simulations, from the runs of docs/convergence/held_out.py (an ``out`` folder each, with its
model.pt and the samples held_out_<sim>_w<w>_seed<k>.npy). It made
docs/convergence/tb_calibration.csv ("Calibrating T_b" in docs/convergence.md):

    python docs/convergence/tb_calibration.py results docs/convergence/tb_calibration.csv \\
        --guidance 0.5 --runs out/two_s0 out/two_s1 out/two_s2
    python docs/convergence/tb_calibration.py results docs/convergence/tb_calibration.csv \\
        --guidance 1.0 --runs out/two_default_s0 out/two_default_s1 --fit-on CV_0 CV_1 --halogen

For each run and test simulation the samples are mapped through lodi_core's T_b calibration
(``fit_tb_calibration``, the map ``calibrate_lodi`` fits) fitted

- without ``--fit-on``: on seed 0 of the run's other test simulations (leave one out), which
  is what ``calibrate_lodi`` fits with ``tb_calibration_samples: 1`` on calibration
  simulations that HALOgen and LODI did not train on (its seed-0 volume is the same volume);
- with ``--fit-on SIMS``: by ``calibrate_lodi`` itself, on those simulations (seed 0 each),
  on their HALOgen halos (``--halogen``, results/halogen/predicted/<sim>.h5) or their own
  (the map is kept as calibration_<sims>_w<w>.json in the run's folder and reused);
- with ``--fit-on target``: on the sample itself against its own target, an oracle no
  emulator has (the sample takes its target's one-point distribution of T_b/<T_b>): how much
  of the error the one-point distribution holds.

Rows (gathered into the CSV by run and fit): per run, test simulation, sample and ``tb``
(raw or calibrated), mean and max |P/P_expected - 1| for k <= 5 and 10 (P of T_b/<T_b>; the
expected power is that of the target and its hi_redraw draws, as held_out.py), r(k = 1) and the
sample's mean, median and 99th percentile of T_b over the target's; for the calibrated rows
without ``--fit-on``, ``tb_mean_level``: its mean over the target's with the map's other level
(``lodi.tb_calibration_level: calibration``, the calibration simulations' total T_b; P(k) of
T_b/<T_b> is the same with either). <csv>_summary.csv: per
run, fit and ``tb``, the mean over its samples of P/P_expected and its mean |ratio - 1| for
k <= 5 and 10 (held_out_figure.py's bias), the samples' means of the rows' numbers and, for
``tb_mean`` and ``tb_mean_level``, their mean |x - 1| (``_error``), with <csv>.png.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from held_out import draw_spectra, expected_residuals, power_table  # noqa: E402
from held_out_figure import mean_abs_bias  # noqa: E402
from hi_redraw import expected_power, gather  # noqa: E402

from lodi_core.analysis.metrics import value_at  # noqa: E402
from lodi_core.data.calibration import Calibration, fit_tb_calibration  # noqa: E402
from lodi_core.figures.style import plt, save_figure  # noqa: E402
from lodi_core.generation.jobs import GenerationConfig, calibrate_lodi  # noqa: E402
from lodi_core.io import read_grids, write_csv  # noqa: E402

FIT_TITLES = {"leave_one_out": "the other two fields (leave one out)", "target": "each sample's own target (oracle)"}


def sample_path(run: Path, sim: str, w: float, seed: int) -> Path:
    return run / f"held_out_{sim}_w{w}_seed{seed}.npy"


def fitted_on_training(run: Path, sims: list, w: float, results: Path, halogen: bool) -> Calibration:
    """calibrate_lodi's map on ``sims`` (seed 0 each), cached in the run's folder."""
    cache = run / f"calibration_{'_'.join(sims)}_w{w}.json"
    if not cache.exists():
        cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
        halos = [results / ("halogen/predicted" if halogen else "grids") / f"{s}.h5" for s in sims]
        content = calibrate_lodi(
            run / "model.pt",
            halos,
            [results / "grids" / f"{s}.h5" for s in sims],
            GenerationConfig.from_config(cfg, guidance=w),
            1,
            "cpu",
        )
        cache.write_text(json.dumps(content["tb_calibration"]))
    return Calibration.from_dict(json.loads(cache.read_text()))


def leave_one_out(run: Path, test: list, sim: str, w: float, truth: dict, level: str = "lodi") -> Calibration:
    """The map fitted on seed 0 of the other test simulations."""
    others = [s for s in test if s != sim]
    generated = [np.load(sample_path(run, s, w, 0)) for s in others]
    return fit_tb_calibration(generated, [truth[s] for s in others], level)


def main(args) -> None:
    results, csv = Path(args.results).resolve(), Path(args.csv)
    truth, expected, box = {}, {}, {}
    for sim in args.test:
        grids, attrs = read_grids(results / "grids" / f"{sim}.h5", ("tb",))
        truth[sim], box[sim] = grids["tb"], float(attrs["box_size"])
        _, draws, pk_target = draw_spectra(results, sim, truth[sim], box[sim])
        expected[sim] = expected_power(draws, pk_target)
    oracle = args.fit_on == ["target"]
    fit = " ".join(args.fit_on) if args.fit_on else "leave_one_out"
    rows, spectra = [], []
    for run in map(Path, args.runs):
        trained = None
        if args.fit_on and not oracle:
            trained = fitted_on_training(run, args.fit_on, args.guidance, results, args.halogen)
        for sim in args.test:
            calibration = (
                trained if trained is not None or oracle else leave_one_out(run, args.test, sim, args.guidance, truth)
            )
            leveled = None if args.fit_on else leave_one_out(run, args.test, sim, args.guidance, truth, "calibration")
            for seed in range(args.samples):
                raw = np.load(sample_path(run, sim, args.guidance, seed))
                if oracle:
                    calibration = fit_tb_calibration([raw], [truth[sim]])
                calibrated = calibration.apply(torch.from_numpy(raw[None]).float()).numpy()[0]
                level = np.nan  # <T_b>/target's with the calibration simulations' level (leave one out)
                if leveled is not None:
                    level = (
                        leveled.apply(torch.from_numpy(raw[None]).float()).double().mean().item() / truth[sim].mean()
                    )
                for tb_kind, tb in (("raw", raw), ("calibrated", calibrated)):
                    tb = tb.astype(np.float64)
                    power = power_table(tb, truth[sim], expected[sim], box[sim])
                    keys = {"run": run.name, "fit": fit, "guidance": args.guidance, "simulation": sim, "seed": seed}
                    t = truth[sim]
                    rows.append(
                        {
                            **keys,
                            "tb": tb_kind,
                            **expected_residuals(power),
                            "r_k1": value_at(power, "r", 1.0),
                            "tb_mean": tb.mean() / t.mean(),
                            "tb_q50": np.median(tb) / np.median(t),
                            "tb_q99": np.quantile(tb, 0.99) / np.quantile(t, 0.99),
                            "tb_mean_level": level if tb_kind == "calibrated" else np.nan,
                        }
                    )
                    power = power[power["n_modes"] > 1]
                    ratio = power["pk_generated"] / power["pk_expected"]
                    spectra.append(
                        pd.DataFrame({**keys, "tb": tb_kind, "k": power["k"].round(6), "ratio": ratio.round(6)})
                    )
        print(f"{run.name}: scored", flush=True)
    gather(pd.DataFrame(rows), csv, ["run", "fit"])
    gather(pd.concat(spectra, ignore_index=True), csv.with_name(csv.stem + "_pk.csv"), ["run", "fit"])
    summarise(csv)


def summarise(csv: Path) -> None:
    """Per run, fit and tb: the bias of the samples' mean P/P_expected, and the figure."""
    pk = pd.read_csv(csv.with_name(csv.stem + "_pk.csv"))
    pk["k"] = pk["k"].round(6)
    rows = []
    for (run, fit, tb_kind), g in pk.groupby(["run", "fit", "tb"], sort=False):
        mean = g.groupby("k")["ratio"].mean()
        rows.append(
            {
                "run": run,
                "fit": fit,
                "tb": tb_kind,
                "samples": len(g.groupby(["simulation", "seed"])),
                "bias_k5": mean_abs_bias(mean, 5.0),
                "bias_k10": mean_abs_bias(mean, 10.0),
            }
        )
    per_sample = pd.read_csv(csv).groupby(["run", "fit", "tb"], sort=False)
    columns = ["mean_abs_expected_k10", "r_k1", "tb_mean", "tb_q99", "tb_mean_level"]
    summary = pd.DataFrame(rows).merge(per_sample[columns].mean().reset_index(), on=["run", "fit", "tb"])
    for col in ("tb_mean", "tb_mean_level"):  # how far <T_b> is from the target's, on average over the samples
        error = per_sample[col].apply(lambda x: (x - 1).abs().mean(skipna=False)).rename(f"{col}_error")
        summary = summary.merge(error.reset_index(), on=["run", "fit", "tb"])
    write_csv(summary.round(4), csv.with_name(csv.stem + "_summary.csv"))
    wide = summary.pivot_table(index=["fit", "run"], columns="tb", values="bias_k10", sort=False).reset_index()
    fits = sorted(set(wide["fit"]), key=lambda f: (f != "leave_one_out", f != "target", f))  # gathering reorders
    fig, axes = plt.subplots(1, len(fits), figsize=(5.5 * len(fits), 4.2), squeeze=False)
    for ax, fit in zip(axes[0], fits):
        w = wide[wide["fit"] == fit]
        x = np.arange(len(w))
        ax.bar(x - 0.2, w["raw"], 0.4, label="as painted", color="0.6")
        ax.bar(x + 0.2, w["calibrated"], 0.4, label="calibrated", color="C0")
        ax.axhline(0.1, color="k", lw=0.8, ls="--", label="the paper's 10 %")
        ax.set_xticks(x, w["run"], rotation=60, ha="right", fontsize=7)
        ax.set_title(f"map fitted on {FIT_TITLES.get(fit, f'{fit} by calibrate_lodi')}", fontsize=9)
        ax.set_ylabel(r"mean $|\langle P/P_{\rm expected}\rangle - 1|$, $k \leq 10\,h$/Mpc")
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, csv.with_suffix(".png"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", help="grids, HALOgen's halos and the test simulations' hi_redraw draws")
    parser.add_argument("csv", help="the CSV gathering every run's rows (by run and fit)")
    parser.add_argument("--runs", nargs="+", required=True, help="held_out.py output folders")
    parser.add_argument("--guidance", type=float, required=True, help="the samples' generation.guidance")
    parser.add_argument("--test", nargs="+", default=["CV_2", "CV_5", "CV_6"], help="the runs' test simulations")
    parser.add_argument("--samples", type=int, default=2, help="samples per test simulation")
    parser.add_argument("--fit-on", nargs="+", help="fit by calibrate_lodi on these simulations instead")
    parser.add_argument("--halogen", action="store_true", help="--fit-on on HALOgen's halos (the default's)")
    main(parser.parse_args())

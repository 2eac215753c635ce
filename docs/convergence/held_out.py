"""LODI trained on a list of simulations and scored on several held-out ones, against each
target's T_b and against the power a sampler exact in distribution expects there (the mean P(k)
of the target and its `hi_redraw` draws, docs/convergence/hi_redraw.py). It made
docs/convergence/held_out.csv ("Several held-out simulations" in docs/convergence.md):

    python docs/convergence/held_out.py results out/four_s0 0 \\
        '{"condition": "true_halos", "halo_model_channel": true, "iterations": 4000}' \\
        --train CV_0 CV_1 CV_3 CV_4 --test CV_2 CV_5 CV_6 --guidance 0.5 1.0

``results`` holds the grids of every simulation named (and HALOgen's halos of them when the
condition is HALOgen's) and the test simulations' draws, generated/<sim>/hi_redraw_seed<k>.h5
(see docs/convergence.md for the config that makes them). The model is trained as the
train_lodi rule does (config/config.yaml's lodi settings with the JSON's overrides of lodi.train
and ``--network``'s of lodi.network, skipped when ``out``/model.pt exists), then sampled by
latent overlap (all eight stages, sample seeds 0..``--samples``-1, each T_b kept as
``out``/held_out_<sim>_w<w>_seed<k>.npy and reused) on each test simulation's halos.
``--floor`` scores the test simulations' draws instead, each against the expected power of the
target and the other draws. ``out``/held_out.csv gets one row per
test simulation, guidance and sample: the labels, the metrics.csv columns against the target
and, against the expected power, mean and max |P/P_expected - 1| for k <= 5 and 10;
``out``/held_out_pk.csv the P(k) of each sample, of its target and the expected one, and r(k),
per k bin up to 12 h/Mpc. ``--csv`` gathers both with other runs' (in the named CSV and beside
it, <name>_pk.csv; rows of the same ``--label`` replaced). Training takes ~6 minutes for 4000
iterations and each sample ~25 s on 2 CPU cores.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from hi_redraw import K_MAX, draw_volumes, expected_power, gather  # noqa: E402
from retrain_lodi import run_training, training_settings  # noqa: E402

from lodi_core.analysis.metrics import power_residual, volume_metrics  # noqa: E402
from lodi_core.generation.jobs import GenerationConfig, generate_tb, load_condition, load_sampler  # noqa: E402
from lodi_core.io import read_grids, write_csv  # noqa: E402


def draw_spectra(results: Path, sim: str, target: np.ndarray, box_size: float) -> tuple[list, pd.DataFrame, pd.Series]:
    """The hi_redraw draws of ``sim`` (T_b arrays), each one's P(k) of T_b/<T_b> as a column of
    a DataFrame indexed by k, and the target's P(k)."""
    volumes = draw_volumes(results, sim)
    tables = [power_residual(v, target, box_size).set_index("k") for v in volumes]
    return volumes, pd.DataFrame({i: t["pk_generated"] for i, t in enumerate(tables)}), tables[0]["pk_target"]


def expected_residuals(table: pd.DataFrame) -> dict:
    """mean and max |P/P_expected - 1| of a sample for k <= 5 and 10 (bins with > 1 mode), from
    its :func:`power_table`."""
    table = table[table["n_modes"] > 1]
    row = {}
    for k in (5, 10):
        dev = (table.loc[table["k"] <= k, "pk_generated"] / table.loc[table["k"] <= k, "pk_expected"] - 1).abs()
        row[f"mean_abs_expected_k{k}"], row[f"max_abs_expected_k{k}"] = float(dev.mean()), float(dev.max())
    return row


def power_table(tb: np.ndarray, target: np.ndarray, expected: pd.Series, box_size: float) -> pd.DataFrame:
    """A sample's P(k) of T_b/<T_b>, the target's, the expected and r(k), per k bin."""
    table = power_residual(tb, target, box_size)
    return table.assign(pk_expected=table["k"].map(expected))


def main(args) -> None:
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    lodi, results, out = cfg["lodi"], Path(args.results).resolve(), Path(args.out).resolve()
    train = {**json.loads(args.train_overrides), "seed": args.seed}
    network = {**lodi["network"], **json.loads(args.network)}
    settings = training_settings(cfg, "lodi", {"network": network, "vdm": lodi["vdm"]}, train)
    condition = train.get("condition", lodi["train"]["condition"])
    true_halos = condition == "true_halos"
    predicted = results / "halogen" / "predicted"
    rows, spectra = [], []

    def score(tb, target, expected, attrs, keys):
        power = power_table(tb, target, expected, float(attrs["box_size"]))
        rows.append({**labels, **keys, **volume_metrics(tb, target, attrs), **expected_residuals(power)})
        spectra.append(power[power["k"] <= K_MAX].assign(condition=labels["condition"], **keys))

    if args.floor:  # the draws themselves, each against the expected power of the others
        labels = {"condition": "hi_redraw"}
    else:
        halos = [] if true_halos else ["--halos", *[str(predicted / f"{s}.h5") for s in args.train]]
        run_training("lodi", settings, [results / "grids" / f"{s}.h5" for s in args.train], out, halos)
        labels = {
            "condition": condition,
            "train_sims": " ".join(args.train),
            **{f"train_{k}": v for k, v in train.items() if k != "condition"},
        }
    for sim in args.test:
        grid = results / "grids" / f"{sim}.h5"
        target, attrs = read_grids(grid, ("tb",))
        target, attrs = target["tb"], {"box_size": float(attrs["box_size"]), "n_grid": attrs["n_grid"]}
        volumes, draws, pk_target = draw_spectra(results, sim, target, attrs["box_size"])
        if args.floor:
            for i, tb in enumerate(volumes):
                expected = expected_power(draws.drop(columns=i), pk_target)
                score(tb, target, expected, attrs, {"simulation": sim, "guidance": np.nan, "seed": i + 1})
            continue
        expected = expected_power(draws, pk_target)
        for w in args.guidance:
            gen = GenerationConfig.from_config(cfg, guidance=w)
            sampler = None
            for seed in range(args.samples):
                path = out / f"held_out_{sim}_w{w}_seed{seed}.npy"
                if not path.exists():
                    if sampler is None:
                        sampler = load_sampler(out / "model.pt", gen, "cpu")
                        cond, _ = load_condition(sampler, grid if true_halos else predicted / f"{sim}.h5")
                    np.save(path, generate_tb(sampler, cond, seed, sim, gen))
                score(np.load(path), target, expected, attrs, {"simulation": sim, "guidance": w, "seed": seed})
    label = args.label or out.name
    table, spectra = pd.DataFrame(rows), pd.concat(spectra, ignore_index=True)
    table.insert(0, "label", label)
    spectra.insert(0, "label", label)
    write_csv(table, out / "held_out.csv")
    write_csv(spectra, out / "held_out_pk.csv")
    if args.csv:  # gathered: this label's rows replace its earlier ones
        gathered = Path(args.csv)
        gather(table, gathered, ["label"])
        gather(spectra, gathered.with_name(gathered.stem + "_pk.csv"), ["label"])
    cols = ["simulation", "guidance", "seed", "mean_abs_residual_k10", "mean_abs_expected_k10", "r_k1", "r_k5"]
    print(table[cols].round(3).to_string())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results")
    parser.add_argument("out")
    parser.add_argument("seed", type=int, help="lodi.train.seed")
    parser.add_argument("train_overrides", nargs="?", default="{}", help="lodi.train overrides (JSON)")
    parser.add_argument("--network", default="{}", help="lodi.network overrides (JSON)")
    parser.add_argument("--train", nargs="+", default=["CV_0", "CV_1"], help="training simulations")
    parser.add_argument("--test", nargs="+", default=["CV_2"], help="held-out simulations")
    parser.add_argument("--guidance", nargs="+", type=float, default=[1.0], help="generation.guidance values")
    parser.add_argument("--label", help="the rows' label (default: the name of out)")
    parser.add_argument("--csv", help="a CSV gathering several runs' rows, by label")
    parser.add_argument(
        "--floor", action="store_true", help="score the test simulations' hi_redraw draws instead (no model)"
    )
    parser.add_argument("--samples", type=int, default=2, help="latent-overlap samples per simulation and w")
    main(parser.parse_args())

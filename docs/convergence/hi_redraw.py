"""The floor of the metrics: a test simulation's T_b with its per-halo HI drawn again
(baselines.methods: hi_redraw, volumes generated/<sim>/hi_redraw_seed<k>.h5) beside LODI's
latent-overlap seeds and the halo model on the true halos, per k. It made
docs/convergence/hi_redraw.csv and hi_redraw.png from a main job run with 8 draws:

    printf 'baselines:\\n  hi_redraw: {draws: 8}\\n' > draws8.yaml
    snakemake --cores all all --configfile draws8.yaml
    python docs/convergence/hi_redraw.py results CV_2 docs/convergence \
        "LODI on the true halos (halo_model_channel, 4000 steps, w = 0.5)=<dir>/tb_CV_2_w0.5_seed0.npy" ...

Further arguments ``label=path`` add volumes (.npy T_b arrays or generated .h5 volumes), e.g.
the samples of docs/convergence/retrain_lodi.py's models, under their label.

Rows of hi_redraw.csv: one per volume and k bin (P(k) of T_b/<T_b> over the target's and
over the expected power, and r(k)), and ``expected``: the mean P(k) of the draws and the
target, the power a sampler exact in distribution expects (its distance to the target's is
how atypical the target's own draw is). hi_redraw_summary.csv: the residuals and r(k) per
volume (``summary``).
"""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from lodi_core.analysis.metrics import power_residual  # noqa: E402
from lodi_core.figures.from_files import group_volumes, read_tb  # noqa: E402
from lodi_core.figures.style import METHOD_COLOURS, METHOD_LABELS, plt, save_figure  # noqa: E402
from lodi_core.io import read_grids, write_csv  # noqa: E402

METHODS = ("hi_redraw", "latent_overlap", "halo_model_true")
#: the largest k kept (h/Mpc): the metrics stop at 10
K_MAX = 12.0
EXTRA_COLOURS = ("C4", "C8", "C6")
LABELS = {"expected": "expected power of the draws", "latent_overlap": "latent overlap, the main job (HALOgen's halos)"}


def expected_power(draws: pd.DataFrame, pk_target: pd.Series) -> pd.Series:
    """The P(k) a sampler exact in distribution expects: the mean of the draws' (one column per
    draw, indexed by k) and the target's own, itself one more draw."""
    return (draws.sum(axis=1) + pk_target) / (draws.shape[1] + 1)


def draw_volumes(results: Path, sim: str) -> list:
    """T_b of the hi_redraw draws of ``sim`` (results/generated/<sim>/hi_redraw_seed*.h5)."""
    paths = sorted((results / "generated" / sim).glob("hi_redraw_seed*.h5"))
    if not paths:
        raise FileNotFoundError(f"no hi_redraw draws of {sim} in {results / 'generated' / sim}")
    return [read_grids(p, ("tb",))[0]["tb"] for p in paths]


def gather(table: pd.DataFrame, path: Path, keys: list) -> None:
    """Write ``table`` into the CSV at ``path``, replacing the rows there that share one of its
    combinations of ``keys`` (e.g. its label): several runs' rows in one file."""
    if path.exists() and len(table):
        earlier = pd.read_csv(path)
        same = earlier[keys].apply(tuple, axis=1).isin(set(table[keys].apply(tuple, axis=1)))
        table = pd.concat([earlier[~same], table], ignore_index=True)
    write_csv(table, path)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per volume: max and mean |P/P_target - 1| for k <= 1, 5, 10 (the metrics' residuals),
    mean |P/P_expected - 1| for k <= 10 (against the draws' expected power instead of the
    target's own draw) and r at the bins nearest k = 1, 5, 10."""
    rows = []
    for (method, seed), g in table.groupby(["method", "seed"], sort=False):
        row = {"method": method, "seed": seed}
        for k in (1, 5, 10):
            sel = g[g["k"] <= k]
            row[f"max_abs_residual_k{k}"] = (sel["ratio"] - 1).abs().max()
            row[f"mean_abs_residual_k{k}"] = (sel["ratio"] - 1).abs().mean()
        row["mean_abs_residual_expected_k10"] = (g.loc[g["k"] <= 10, "ratio_expected"] - 1).abs().mean()
        for k in (1, 5, 10):
            row[f"r_k{k}"] = g["r"].iloc[(g["k"] - k).abs().argmin()] if method != "expected" else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def main(results: str, sim: str, out_dir: str, *extra: str) -> None:
    results, out_dir = Path(results), Path(out_dir)
    target, attrs = read_tb(results / "grids" / f"{sim}.h5")
    box_size = float(attrs["box_size"])
    paths = [p for m in METHODS for p in sorted((results / "generated" / sim).glob(f"{m}_seed*.h5"))]
    groups = group_volumes(paths)
    rows = []
    for method, volumes in groups.items():
        for path in volumes:
            table = power_residual(read_tb(path)[0], target, box_size)
            seed = int(path.stem.rsplit("seed", 1)[1])
            rows.append(table.assign(method=method, seed=seed, ratio=table["residual"] + 1.0))
    seen: dict = {}
    for item in extra:
        label, path = item.rsplit("=", 1)
        seed = seen[label] = seen.get(label, -1) + 1  # the label's samples in order
        volume = np.load(path) if path.endswith(".npy") else read_tb(path)[0]
        table = power_residual(volume, target, box_size)
        rows.append(table.assign(method=label, seed=seed, ratio=table["residual"] + 1.0))
    table = pd.concat(rows, ignore_index=True)
    draws = table[table["method"] == "hi_redraw"].pivot(index="k", columns="seed", values="pk_generated")
    first = table[table["method"] == "hi_redraw"].drop_duplicates("k").set_index("k")
    expected = expected_power(draws, first["pk_target"])
    table = pd.concat(
        [
            table,
            pd.DataFrame(
                {
                    "k": expected.index,
                    "method": "expected",
                    "seed": -1,
                    "pk_generated": expected.values,
                    "pk_target": first["pk_target"].values,
                    "ratio": (expected / first["pk_target"]).values,
                    "n_modes": first["n_modes"].values,
                }
            ),
        ],
        ignore_index=True,
    )
    table = table[(table["n_modes"] > 1) & (table["k"] <= K_MAX)]
    table = table.assign(ratio_expected=table["pk_generated"] / table["k"].map(expected))
    cols = ["method", "seed", "k", "n_modes", "pk_generated", "pk_target", "ratio", "ratio_expected", "r"]
    write_csv(table[cols], out_dir / "hi_redraw.csv")
    write_csv(summary(table), out_dir / "hi_redraw_summary.csv")

    fig, (ax_p, ax_r) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    extra_labels = list(dict.fromkeys(item.rsplit("=", 1)[0] for item in extra))
    for method, rows in table.groupby("method", sort=False):
        colour = METHOD_COLOURS.get(method, "k")
        if method in extra_labels:
            colour = EXTRA_COLOURS[extra_labels.index(method) % len(EXTRA_COLOURS)]
        for i, (_, r) in enumerate(rows.groupby("seed")):
            name = LABELS.get(method, METHOD_LABELS.get(method, method))
            label = name if i == 0 else None
            style = dict(
                color=colour, lw=1.0 if method != "expected" else 2.0, alpha=0.5 if method == "hi_redraw" else 1.0
            )
            if method == "halo_model_true":
                style["ls"] = "--"
            ax_p.plot(r["k"], r["ratio"], label=label, **style)
            if method != "expected":
                ax_r.plot(r["k"], r["r"], label=label, **style)
    ax_p.axhspan(0.9, 1.1, color="0.85", zorder=0)
    ax_p.set_yscale("log")
    for ax in (ax_p, ax_r):
        ax.set_xscale("log")
        ax.set_xlabel("k [h/Mpc]")
        ax.axvline(10.0, color="0.6", lw=0.8)
    ax_p.set_ylabel(r"$P(k) / P_\mathrm{target}(k)$ of $T_b/\langle T_b\rangle$")
    ax_r.set_ylabel("r(k) with the target")
    ax_p.legend(fontsize=7)
    fig.suptitle(f"{sim}: the HI re-drawn on the same halos against LODI (grey band: ±10 %)")
    save_figure(fig, out_dir / "hi_redraw.png")


if __name__ == "__main__":
    main(*sys.argv[1:])

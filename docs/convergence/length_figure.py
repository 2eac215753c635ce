"""How LODI's power at k >~ 10 h/Mpc follows the training length: snapshots of one training
chain (constant learning rate, so a longer run continues a shorter one) scored by held_out.py on
the held-out simulations and measured by high_k.py. It made docs/convergence/training_length.csv
and training_length.png ("With the training length" in docs/convergence.md):

    python docs/convergence/length_figure.py docs/convergence/high_k_length.csv docs/convergence \\
        --pk docs/convergence/held_out_pk.csv docs/convergence/held_out_length_pk.csv \\
        --chain "true halos, w = 0.5" 0.5 two_true_1500it_s0:1500 two_true_s0:4000 ... \\
        --chain "default, w = 1" 1.0 two_default_s0:1500 default_3000it_s0:3000 ...

A ``--chain`` is its name, its guidance weight and one held_out.py label per snapshot, with the
snapshot's step (``label:step``), or ``label:step:cooled`` for a cool-down branching off the
chain (``lodi.train.lr_decay_steps``) that ends at that step; the snapshot's high_k.py label is
"<name>, <step> it" or "<name>, <step> it, cooled" (rows of start ``noise``, ``volume`` and
``volume_clip99``, and the peaks of <high_k csv>_peaks.csv). One row per snapshot: the
samples' mean |P/P_expected - 1| for k <= 5 and 10, mean P/P_expected near k = 5, 10 and 12
(held_out.py's bins) and mean <T_b> over the target's (from the scores, <name>.csv beside each
<name>_pk.csv), the whole volumes' mean power over the expected in the |k| shells 9-11, 11-13
and 13-16 as is and clipped at the target's 99th percentile, the boxes sampled from pure noise
there (P / P_target of T_b), the peaks' median and 90th percentile sharpness (the data's: the
references' rows) and the 50th and 99th percentiles of T_b over the target's, each a mean over
the simulations. Two chains, one panel each.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from held_out_figure import mean_abs_bias, sample_ratios, value_near  # noqa: E402

from lodi_core.figures.style import plt, save_figure  # noqa: E402
from lodi_core.io import write_csv  # noqa: E402

K_BINS = (5.0, 10.0, 12.0)  # held_out.py's P(k) reaches k = 12
SHELLS = ((9, 11), (11, 13), (13, 16))
STARTS = {"volume": "volume", "volume_clip99": "clipped", "noise": "boxes"}


def chain_rows(name: str, guidance: float, snapshots: list, pk, scores, high_k, peaks) -> list:
    """One row per snapshot ``label:step[:cooled]`` of a chain (the module's docstring)."""
    rows = []
    for snapshot in snapshots:
        label, step, *cooled = snapshot.split(":")
        if cooled not in ([], ["cooled"]):
            raise ValueError(f"snapshot {snapshot}: expected label:step or label:step:cooled")
        name_k = f"{name}, {step} it" + (", cooled" if cooled else "")
        samples = pk[(pk["label"] == label) & (pk["guidance"] == guidance)]
        if samples.empty:
            raise ValueError(f"no held_out.py rows of label {label} at guidance {guidance:g}")
        row = {"chain": name, "guidance": guidance, "steps": int(step), "cooled": bool(cooled), "label": label}
        row["samples"] = int(samples.groupby("k").size().min())
        mean = samples.groupby("k")["ratio_expected"].mean()
        for k in (5, 10):
            row[f"mean_abs_bias_expected_k{k}"] = mean_abs_bias(mean, k)
        for k in K_BINS:
            row[f"ratio_expected_k{k:g}"] = value_near(samples, "ratio_expected", k)
        row["mean_tb_ratio"] = float(
            scores.loc[(scores["label"] == label) & (scores["guidance"] == guidance), "mean_tb_ratio"].mean()
        )
        box = high_k[(high_k["label"] == name_k) & (high_k["space"] == "linear")]
        for start, column in STARTS.items():
            for lo, hi in SHELLS:
                sel = box[(box["start"] == start) & (box["k_lo"] == lo) & (box["k_hi"] == hi)]
                row[f"{column}_k{lo}_{hi}"] = float(sel["ratio"].mean()) if len(sel) else np.nan
        p = peaks[(peaks["label"] == name_k) & (peaks["volumes"] == "samples")]
        row["peak_median"], row["peak_p90"] = float(p["median"].mean()), float(p["p90"].mean())
        row["tb_q50"], row["tb_q99"] = float(p["tb_q50"].mean()), float(p["tb_q99"].mean())
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("high_k_csv")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--pk", nargs="+", required=True, help="held_out.py's gathered P(k) CSVs")
    parser.add_argument("--chain", nargs="+", action="append", required=True, metavar="NAME W LABEL:STEP")
    args = parser.parse_args()
    pk = pd.concat([sample_ratios(path, k_max=max(K_BINS)) for path in args.pk], ignore_index=True)
    # held_out.py writes <name>.csv (the scores) beside <name>_pk.csv
    scores = pd.concat([pd.read_csv(str(path).removesuffix("_pk.csv") + ".csv") for path in args.pk])
    high_k = pd.read_csv(args.high_k_csv)
    peaks = pd.read_csv(Path(args.high_k_csv).with_name(Path(args.high_k_csv).stem + "_peaks.csv"))
    rows = []
    for name, w, *snapshots in args.chain:
        rows += chain_rows(name, float(w), snapshots, pk, scores, high_k, peaks)
    table = pd.DataFrame(rows)
    references = peaks[peaks["volumes"] == "references"]
    table["data_peak_median"], table["data_peak_p90"] = references["median"].mean(), references["p90"].mean()
    write_csv(table, args.out_dir / "training_length.csv")
    print(table.drop(columns="label").round(3).to_string())

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3), layout="constrained")
    for ax, (name, g) in zip(axes[:2], table.groupby("chain", sort=False)):
        steps = sorted(g["steps"].unique())
        colours = dict(zip(steps, plt.cm.viridis(np.linspace(0.0, 0.85, len(steps)))))
        for _, row in g.iterrows():
            curve = pk[(pk["label"] == row["label"]) & (pk["guidance"] == row["guidance"])]
            mean = curve.groupby("k")["ratio_expected"].mean()
            what = f"{row['steps']} steps{', cooled' if row['cooled'] else ''} ({row['samples']} samples)"
            ax.plot(mean.index, mean.values, "--" if row["cooled"] else "-", color=colours[row["steps"]], label=what)
        ax.axhspan(0.9, 1.1, color="0.85", zorder=0)
        ax.axhline(1.0, color="k", lw=0.6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_yticks([0.5, 0.7, 1.0, 1.5, 2.0, 3.0], ["0.5", "0.7", "1", "1.5", "2", "3"])
        ax.minorticks_off()
        ax.set_xlabel("k [h/Mpc]")
        ax.set_ylabel(r"mean $P/P_\mathrm{expected}$ of $T_b/\langle T_b\rangle$")
        ax.set_title(f"LODI, {name}: one training, continued", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
    ax = axes[2]
    for i, (lo, hi) in enumerate(SHELLS):
        for (name, g), style in zip(table.groupby("chain", sort=False), ("-", "--")):
            run = g[~g["cooled"]]
            ax.plot(
                run["steps"], run[f"volume_k{lo}_{hi}"], style, marker="o", color=f"C{i}", label=f"{name}, k {lo}-{hi}"
            )
            cooled = g[g["cooled"]]
            ax.plot(cooled["steps"], cooled[f"volume_k{lo}_{hi}"], "o", mfc="none", color=f"C{i}")
    ax.plot([], [], "o", mfc="none", color="0.4", label="after a cool-down")
    ax.axhline(1.0, color="k", lw=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    steps = sorted(table["steps"].unique())
    ax.set_xticks(steps, [f"{s // 1000}k" if s % 1000 == 0 else f"{s / 1000:g}k" for s in steps], fontsize=7)
    ax.minorticks_off()
    ax.set_xlabel("training steps")
    ax.set_ylabel("whole volumes' mean P / expected")
    ax.set_title("the excess at k > 9 h/Mpc against the training length", fontsize=9)
    ax.legend(fontsize=7)
    save_figure(fig, args.out_dir / "training_length.png")


if __name__ == "__main__":
    main()

"""The figure and the table of docs/convergence/high_k.csv (made by high_k.py): per label,
start level, space and |k| shell, the mean over the test simulations of the ratio
generated/target (for the volume rows: mean generated / expected power), written to
high_k_summary.csv, and high_k.png, one column per label, linear T_b above and log10 T_b below:

    python docs/convergence/high_k_figure.py docs/convergence/high_k.csv docs/convergence
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from lodi_core.io import write_csv  # noqa: E402

K_PLOT = 20  # shells above the 1D Nyquist (16 h/Mpc) only as far as 20 h/Mpc


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Mean ratio over the simulations, and their count, per label, start, space and shell."""
    keys = ["label", "start", "space", "k_lo", "k_hi"]
    out = table.groupby(keys, sort=False).agg(
        ratio=("ratio", "mean"), start_logsnr=("start_logsnr", "mean"), sims=("sim", "nunique")
    )
    return out.reset_index()


def start_name(start: str) -> str:
    """The legend entry of a start level of high_k.py."""
    names = {
        "noise": "boxes from pure noise",
        "volume": "whole volumes / expected",
        "volume_clip99": "the same, clipped at the 99th pct",
    }
    return names.get(start) or f"boxes from log-SNR {float(start):g}"


def main(csv: str, out_dir: str) -> None:
    out_dir = Path(out_dir)
    summary = summarise(pd.read_csv(csv))
    write_csv(summary, out_dir / "high_k_summary.csv")
    labels = list(dict.fromkeys(summary["label"]))
    colours = {start: f"C{i}" for i, start in enumerate(dict.fromkeys(summary["start"]))}
    fig, axes = plt.subplots(2, len(labels), figsize=(4.2 * len(labels), 6.5), sharex=True, squeeze=False)
    for col, label in enumerate(labels):
        for row, space in enumerate(("linear", "log")):
            ax = axes[row, col]
            sel = summary[(summary["label"] == label) & (summary["space"] == space) & (summary["k_lo"] < K_PLOT)]
            for start, g in sel.groupby("start", sort=False):
                k = (g["k_lo"] + g["k_hi"]) / 2
                style = "--" if start.startswith("volume") else "-"
                ax.plot(k, g["ratio"], style, marker="o", ms=3, color=colours[start], label=start_name(start))
            ax.axhline(1.0, color="k", lw=0.6)
            ax.axvline(10.0, color="0.6", lw=0.6, ls=":")
            ax.set_yscale("log")
            ax.set_title(f"{label}: {'T_b' if space == 'linear' else 'log10 T_b'}", fontsize=9)
            if col == 0:
                ax.set_ylabel("P generated / P target")
            if row == 1:
                ax.set_xlabel("k [h/Mpc]")
        axes[0, col].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out_dir / "high_k.png", dpi=120)


if __name__ == "__main__":
    main(*sys.argv[1:])

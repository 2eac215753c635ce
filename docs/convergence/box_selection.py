"""The figure of docs/convergence.md's "Training boxes between the halos": LODI's end-to-end
metrics on the held-out CV_2 for each training-box selection and guidance weight, one point
per (LODI training, sample seed), from the rows of docs/default_spread.csv that
retrain_lodi.py made on the 9496795 / 39a5cc5 main job's data and HALOgen:

    python docs/convergence/box_selection.py   # writes docs/convergence/box_selection.png
"""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

HERE = Path(__file__).resolve().parent
#: (column, title, issue 15's bar)
METRICS = [
    ("max_k1", "max |ΔP/P|, k ≤ 1 h/Mpc", 0.3),
    ("max_k5", "max |ΔP/P|, k ≤ 5 h/Mpc", 0.3),
    ("max_k10", "max |ΔP/P|, k ≤ 10 h/Mpc", None),
    ("r_k1", "r(k = 1)", 0.8),
    ("mean_tb_ratio", "⟨T_b⟩ generated / target", (0.8, 1.2)),
]


def settings(spread: pd.DataFrame) -> pd.DataFrame:
    """The rows of the comparison, labelled by (background_fraction, guidance): the paper's
    selection on the main job's data (training 0: the main job, 1: a retraining, 2-4: with
    the key at 0), then every retraining with the key (at the default's guidance interval, log-SNR <= 0)."""
    paper = spread[
        (spread.commit == "39a5cc5")
        & (spread.lodi_train_overrides == '{"cond_drop": 0.1}')
        & (spread.run.str.startswith("clean clone, main job") | spread.run.str.startswith("LODI retrained"))
    ]
    new = spread[(spread.commit == "999179a") & (spread.guidance_logsnr_max == 0)]
    rows = pd.concat([paper, new])
    f = rows.lodi_train_overrides.map(lambda s: json.loads(s).get("background_fraction", 0.0))
    return rows.assign(setting=[f"f = {a:g}, w = {w:g}" for a, w in zip(f, rows.guidance)], f=f)


def main() -> None:
    rows = settings(pd.read_csv(HERE.parent / "default_spread.csv")).sort_values(["f", "guidance"])
    labels = list(dict.fromkeys(rows.setting))
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 4.2), sharey=True)
    for ax, (col, title, bar) in zip(axes, METRICS):
        for y, label in enumerate(labels):
            sel = rows[rows.setting == label]
            for train, marker in zip(range(5), "os^Dv"):
                v = sel[sel.lodi_train_seed == train][col]
                ax.scatter(v, [y] * len(v), marker=marker, color=f"C{train}", alpha=0.8,
                           label=f"LODI training {train}" if y == 0 else None)  # fmt: skip
        for b in bar if isinstance(bar, tuple) else (bar,):
            if b is not None:
                ax.axvline(b, color="grey", ls="--", lw=1)
        ax.set_title(title, fontsize=10)
        ax.set_yticks(range(len(labels)), labels)
        ax.grid(alpha=0.3)
    axes[0].invert_yaxis()
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle(
        "LODI on HALOgen's halos, held-out CV_2, sample seeds 0 and 1: f = lodi.train.background_fraction, "
        "w = generation.guidance (dashed: issue 15's bars)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(HERE / "box_selection.png", dpi=110)


if __name__ == "__main__":
    main()

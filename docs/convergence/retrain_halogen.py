"""Retrain the default's HALOgen on a finished main job's grids, with halogen.network /
halogen.train overrides, predict every simulation as the workflow does (mass-calibrated on the
training simulations, post-thresholded) and print the channel metrics of the held-out ones,
without and with the calibration. It made the seed-1 rows of docs/convergence.md's head-norm
table (the seed-0 ones are the networks of the clean main jobs at 9b6a229 and 6788613; it
reproduces the latter's metrics):

    python docs/convergence/retrain_halogen.py results out/s1 '{"train": {"seed": 1}}'
    python docs/convergence/retrain_halogen.py results out/s1_norm \\
        '{"train": {"seed": 1}, "network": {"head_norm": true}}'

The output directory is laid out like a results directory (halogen/model.pt,
halogen/predicted/<sim>.h5 and a link to the job's grids/), so that
docs/convergence/retrain_lodi.py can train and score LODI on its halos:

    python docs/convergence/retrain_lodi.py out/s1 out/s1/lodi_s0 0

It runs `python -m lodi_core train halogen` (the train_halogen rule's command, config/config.yaml's
settings) and lodi_core.study.run_predict_halos; ~5 minutes on 2 CPU cores.
"""

import json
import os
import sys
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from retrain_lodi import run_training, training_settings  # noqa: E402  (this directory)

from lodi_core.analysis.halogen_eval import evaluate_halos  # noqa: E402
from lodi_core.io import read_grids  # noqa: E402
from lodi_core.study import run_predict_halos  # noqa: E402

#: where the channel P(k) ratios and r(k) are printed (h/Mpc, nearest bins of the 12.5 Mpc/h box)
K_PRINT = (0.7, 1.2, 2.7, 4.8, 9.8)


def channel_lines(pred: np.ndarray, target: np.ndarray, box_size: float, floor: float) -> list[str]:
    tables = evaluate_halos(pred, target, box_size, floor=floor)
    lines = []
    for _, row in tables["summary"].iterrows():
        pk = tables["pk"][tables["pk"]["channel"] == row["channel"]] if len(tables["pk"]) else tables["pk"]
        line = f"  ch{int(row['channel'])} mass {row['mass_recovered']:.3f}"
        if len(pk):
            at = [int(np.argmin(np.abs(pk["k"].to_numpy() - k))) for k in K_PRINT]
            ratio = (pk["pk_pred"] / pk["pk_target"]).to_numpy()[at]
            line += f" P/P_true at k {K_PRINT}: {np.round(ratio, 2)} r: {np.round(pk['r'].to_numpy()[at], 2)}"
        lines.append(line)
    return lines


def main(results: str, out: str, overrides: dict) -> None:
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    halogen, res, out = cfg["halogen"], Path(results).resolve(), Path(out).resolve()
    parts = {"network": {**halogen["network"], **overrides.get("network", {})}, "loss": halogen["loss"]}
    settings = training_settings(cfg, "halogen", parts, overrides.get("train", {}))
    (out / "halogen/predicted").mkdir(parents=True, exist_ok=True)
    if not (out / "grids").exists():
        os.symlink(res / "grids", out / "grids")
    sims = cfg["simulations"]["halogen_train"]
    run_training("halogen", settings, [res / f"grids/{s}.h5" for s in sims], out / "halogen")
    model = out / "halogen/model.pt"
    inference = halogen["inference"]
    method = halogen.get("mass_calibration", "none")
    calibration = [str(res / f"grids/{s}.h5") for s in sims] if method != "none" else []
    floor = 10.0 ** inference["post_threshold"]
    for sim in dict.fromkeys(cfg["simulations"]["lodi_train"] + cfg["simulations"]["test"]):
        grids = res / f"grids/{sim}.h5"
        predicted = out / f"halogen/predicted/{sim}.h5"
        if not predicted.exists():
            run_predict_halos(model, grids, predicted, inference, "cpu", calibration, method)
        if sim not in cfg["simulations"]["test"]:
            continue
        target = read_grids(grids, ("halos",))[0]["halos"]
        raw = out / f"halogen/uncalibrated_{sim}.h5"
        if not raw.exists():
            run_predict_halos(model, grids, raw, inference, "cpu")
        box_size = float(cfg["data"]["box_size"])
        for label, path in (("threshold only", raw), ("as the workflow predicts", predicted)):
            print(f"{sim}, {label}:", *channel_lines(read_grids(path, ("halos",))[0]["halos"], target, box_size, floor),
                  sep="\n")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]) if len(sys.argv) > 3 else {})

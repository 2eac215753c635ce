"""Retrain the default's LODI on a finished main job's data and HALOgen halos, with another
training seed or lodi.train overrides, and score it on CV_2 (latent overlap, sample seeds 0
and 1) as the study does. It made the retraining rows of docs/default_spread.csv:

    python docs/convergence/retrain_lodi.py results out/constant_s1 1
    python docs/convergence/retrain_lodi.py results out/cosine_s0 0 '{"lr_schedule": "cosine"}'

It runs the train_lodi rule's command (`python -m lodi_core train lodi`, config/config.yaml's
settings) and lodi_core.study.score_lodi (all eight stages in one process: the volume the
stage jobs make). Each run takes ~5 minutes on 2 CPU cores.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from lodi_core.generation.jobs import GenerationConfig  # noqa: E402
from lodi_core.study import score_lodi  # noqa: E402
from lodi_core.training.distributed import LAUNCH_KEYS  # noqa: E402


def main(results: str, out: str, seed: int, overrides: dict) -> None:
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    lodi, res, out = cfg["lodi"], Path(results).resolve(), Path(out).resolve()  # the training runs in REPO
    train = {k: v for k, v in lodi["train"].items() if k not in LAUNCH_KEYS}
    train.update(overrides, seed=seed)
    expect = {"box_size": float(cfg["data"]["box_size"]), "n_grid": int(cfg["data"]["n_grid"])}
    settings = json.dumps({"network": lodi["network"], "vdm": lodi["vdm"], "train": train, "expect": expect})
    out.mkdir(parents=True, exist_ok=True)
    sims = cfg["simulations"]["lodi_train"]
    if not (out / "model.pt").exists():
        subprocess.run(
            [sys.executable, "-m", "lodi_core", "train", "lodi", "--settings", settings,
             "--grids", *[str(res / f"grids/{s}.h5") for s in sims],
             "--halos", *[str(res / f"halogen/predicted/{s}.h5") for s in sims],
             "--checkpoint", str(out / "checkpoint.pt"), "--model", str(out / "model.pt"),
             "--history", str(out / "history.csv"), "--device", "cpu", "--threads", "2",
             "--log-file", str(out / "train.log")],
            check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
    generation = GenerationConfig.from_config(cfg).to_dict()
    labels = {"variant": overrides.get("lr_schedule", train["lr_schedule"]), "condition": "halogen", "train_seed": seed}
    for sample_seed in (0, 1):
        csv = out / f"score_seed{sample_seed}.csv"
        if not csv.exists():
            score_lodi(
                out / "model.pt", res / "halogen/predicted/CV_2.h5", res / "grids/CV_2.h5", csv, generation,
                sample_seed, "CV_2", "cpu", labels,
            )  # fmt: skip
        print(pd.read_csv(csv).to_string())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]) if len(sys.argv) > 4 else {})

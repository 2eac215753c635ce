"""Retrain the default's LODI on a finished main job's data and HALOgen halos, with another
training seed or lodi.train overrides, and score it on CV_2 (latent overlap, sample seeds 0
and 1) as the study does. It made the retraining rows of docs/default_spread.csv:

    python docs/convergence/retrain_lodi.py results out/constant_s1 1
    python docs/convergence/retrain_lodi.py results out/cosine_s0 0 '{"lr_schedule": "cosine"}'

A fifth argument overrides generation settings for the scoring (e.g. '{"guidance": 1.0}'); its
scores are written beside the others with the overrides in their name. With '{"condition":
"true_halos"}' among the training overrides, LODI is trained and scored on the simulations' own
halos (the paper's setting) instead of HALOgen's.

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


def training_settings(cfg: dict, section: str, parts: dict, train_overrides: dict) -> str:
    """The JSON the train_<section> rule hands to `python -m lodi_core train` (common.smk's
    training_settings): ``parts`` of the section (e.g. its network, with overrides), its train
    settings without the launch keys, with ``train_overrides``, and the grids' layout."""
    train = {k: v for k, v in cfg[section]["train"].items() if k not in LAUNCH_KEYS}
    train.update(train_overrides)
    expect = {"box_size": float(cfg["data"]["box_size"]), "n_grid": int(cfg["data"]["n_grid"])}
    return json.dumps({**parts, "train": train, "expect": expect})


def run_training(kind: str, settings: str, grids: list, out: Path, extra: list = ()) -> None:
    """The train_<kind> rule's command, on 2 CPU threads, writing model.pt, checkpoint.pt,
    history.csv and train.log into ``out`` (skipped when its model.pt exists)."""
    if (out / "model.pt").exists():
        return
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "lodi_core", "train", kind, "--settings", settings, "--grids", *map(str, grids),
         *extra, "--checkpoint", str(out / "checkpoint.pt"), "--model", str(out / "model.pt"),
         "--history", str(out / "history.csv"), "--device", "cpu", "--threads", "2",
         "--log-file", str(out / "train.log")],
        check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip


def main(results: str, out: str, seed: int, overrides: dict, sampling: dict) -> None:
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    lodi, res, out = cfg["lodi"], Path(results).resolve(), Path(out).resolve()  # the training runs in REPO
    train = {**overrides, "seed": seed}
    settings = training_settings(cfg, "lodi", {"network": lodi["network"], "vdm": lodi["vdm"]}, train)
    sims = cfg["simulations"]["lodi_train"]
    condition = train.get("condition", lodi["train"]["condition"])
    halos = [] if condition == "true_halos" else ["--halos", *[str(res / f"halogen/predicted/{s}.h5") for s in sims]]
    test_halos = res / ("grids/CV_2.h5" if condition == "true_halos" else "halogen/predicted/CV_2.h5")
    run_training("lodi", settings, [res / f"grids/{s}.h5" for s in sims], out, halos)
    generation = GenerationConfig.from_config(cfg, **sampling).to_dict()
    variant = overrides.get("lr_schedule", lodi["train"]["lr_schedule"])
    labels = {"variant": variant, "condition": condition, "train_seed": seed, **sampling}
    tag = "".join(f"_{k}{v}" for k, v in sampling.items())
    for sample_seed in (0, 1):
        csv = out / f"score_seed{sample_seed}{tag}.csv"
        if not csv.exists():
            score_lodi(
                out / "model.pt", test_halos, res / "grids/CV_2.h5", csv, generation,
                sample_seed, "CV_2", "cpu", labels,
            )  # fmt: skip
        print(pd.read_csv(csv).to_string())


if __name__ == "__main__":
    args = [json.loads(a) for a in sys.argv[4:6]]
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), *args, *[{}] * (2 - len(args)))

"""The spread of LODI's seeds against their skill, per k: a model file sampled N times (latent
overlap, sample seeds 0..N-1, the config's generation settings) on a simulation's halos, scored
by lodi_core.analysis.metrics.spread_skill against its T_b, with the P(k) residual of the seeds'
mean P(k), beside a deterministic volume's r(k) and residual (e.g. halo_model_true). Its rows,
labelled, replace those of the same label in the CSV. It made docs/convergence/spread_skill.csv
(labels and models: docs/convergence.md), e.g.:

    python docs/convergence/spread_skill.py four_channels_halogen_s0_w1 results/lodi/model.pt \\
        results/halogen/predicted/CV_2.h5 results/grids/CV_2.h5 4 \\
        docs/convergence/spread_skill.csv results/generated/CV_2/halo_model_true_seed0.h5

A last argument gives generation overrides as JSON (e.g. '{"guidance": 0.5}'). Each sample
takes ~15 s on 2 CPU cores; the samples are kept beside the model file
(spread_skill_<label>_seed<i>.npy) and reused.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from lodi_core.analysis.metrics import power_residual, spread_skill  # noqa: E402
from lodi_core.generation.jobs import GenerationConfig, generate_tb, load_condition, load_sampler  # noqa: E402
from lodi_core.io import read_grids, write_csv  # noqa: E402


def main(label, model, halos, grid, count, out_csv, reference, overrides) -> None:
    cfg = GenerationConfig.from_config(REPO / "config/config.yaml", **overrides)
    sampler = load_sampler(model, cfg, "cpu")
    cond, _ = load_condition(sampler, halos)
    target, attrs = read_grids(grid, ("tb",))
    simulation = Path(grid).stem
    out_csv = Path(out_csv)
    samples = []
    for seed in range(count):
        path = Path(model).parent / f"spread_skill_{label}_seed{seed}.npy"
        if not path.exists():
            np.save(path, generate_tb(sampler, cond, seed, simulation, cfg))
        samples.append(np.load(path))
    box_size = float(attrs["box_size"])
    table = spread_skill(samples, target["tb"], box_size)  # with residual_of_mean_pk, the seeds' mean P(k)
    reference_table = power_residual(read_grids(reference, ("tb",))[0]["tb"], target["tb"], box_size)
    table["r_reference"] = reference_table["r"].to_numpy()
    table["residual_reference"] = reference_table["residual"].to_numpy()
    table.insert(0, "label", label)
    if out_csv.exists():
        table = pd.concat([pd.read_csv(out_csv).query("label != @label"), table], ignore_index=True)
    write_csv(table, out_csv)
    print(table[(table["label"] == label) & (table["k"] <= 10.5)].round(3).to_string())


if __name__ == "__main__":
    args = sys.argv[1:]
    main(*args[:4], int(args[4]), args[5], args[6], json.loads(args[7]) if len(args) > 7 else {})

"""Where a generated map puts its brightness: the generated T_b summed over the voxels of each
band of halo density, divided by the target's T_b over the same voxels (1 everywhere for a
perfect map), bands in the true halo channels' total and in HALOgen's. It made the brightness
budget tables of docs/convergence.md:

    python docs/convergence/tb_budget.py results CV_2 results/generated/CV_2/*.h5

A LODI model file in place of a volume is sampled first (latent overlap, sample seed 0, the
config's generation settings) on HALOgen's halos of the simulation, e.g. on a training one:

    python docs/convergence/tb_budget.py results CV_0 results/lodi/model.pt

``--generation JSON`` (last) overrides generation settings for that sampling, e.g.
'{"guidance": 1.0}'.
"""

import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from lodi_core.generation.jobs import GenerationConfig, generate_tb, load_condition, load_sampler  # noqa: E402
from lodi_core.io import read_grids  # noqa: E402

#: bands of the summed halo channels, Msun (Mpc/h)^-3
EDGES = (0.0, 1e10, 1e11, 1e12, 1e13, np.inf)


def sample(model: Path, halos: Path, simulation: str, overrides: dict) -> np.ndarray:
    cfg = GenerationConfig.from_config(REPO / "config/config.yaml", **overrides)
    sampler = load_sampler(model, cfg, "cpu")
    cond, _ = load_condition(sampler, halos)
    return generate_tb(sampler, cond, 0, simulation, cfg)


def band_sums(field: np.ndarray, halos: np.ndarray) -> np.ndarray:
    """The field summed over the voxels of each band of ``halos``."""
    return np.array([field[(halos >= lo) & (halos < hi)].sum() for lo, hi in zip(EDGES[:-1], EDGES[1:])])


def main(results: str, simulation: str, volumes: list[str], overrides: dict) -> None:
    res = Path(results)
    grids = read_grids(res / f"grids/{simulation}.h5", ("tb", "halos"))[0]
    target, true_halos = grids["tb"].astype(np.float64), grids["halos"].sum(axis=0)
    predicted_path = res / f"halogen/predicted/{simulation}.h5"
    predicted = read_grids(predicted_path, ("halos",))[0]["halos"].sum(axis=0)
    bands = ", ".join(f"[{lo:.0e}, {hi:.0e})" for lo, hi in zip(EDGES[:-1], EDGES[1:]))
    print(f"bands of the summed halo channels (Msun (Mpc/h)^-3): {bands}")
    for name, halos in (("true", true_halos), ("HALOgen", predicted)):
        print(f"target's share of T_b by {name} halos: {np.round(band_sums(target, halos) / target.sum(), 2)}")
    for v in volumes:
        path = Path(v)
        if path.suffix == ".pt":
            generated = sample(path, predicted_path, simulation, overrides)
        else:
            generated = read_grids(path, ("tb",))[0]["tb"]
        generated = generated.astype(np.float64)
        by_true = band_sums(generated, true_halos) / band_sums(target, true_halos)
        by_halogen = band_sums(generated, predicted) / band_sums(target, predicted)
        print(f"{path}: <T_b> ratio {generated.mean() / target.mean():.3f}; generated / target by true halos "
              f"{np.round(by_true, 2)}, by HALOgen's {np.round(by_halogen, 2)}")  # fmt: skip


if __name__ == "__main__":
    args, overrides = sys.argv[3:], {}
    if len(args) > 1 and args[-2] == "--generation":
        overrides, args = json.loads(args[-1]), args[:-2]
    main(sys.argv[1], sys.argv[2], args, overrides)

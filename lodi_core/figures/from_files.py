"""Figures from the workflow's files: each ``plot_*`` function reads grid files, generated
volumes, evaluation tables or training histories and calls one builder of
:mod:`lodi_core.figures.builders` (what a figure rule's script runs). Nothing here runs a model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..analysis.metrics import power_residual, spread_skill
from ..analysis.posterior import posterior_stats
from ..data.calibration import normalised_to_tb, tb_calibration
from ..data.transforms import LogTransform
from ..io import load_checkpoint, read_grids, read_hdf5
from .builders import (
    baselines_figure,
    halos_figure,
    learning_curve_figure,
    loss_curve_figure,
    methods_figure,
    overlap_pair_figure,
    overview_figure,
    posterior_figure,
    power_figure,
    residuals_figure,
    rk_figure,
    stage_projections,
    stages_figure,
    tb_pdf,
    tb_pdf_figure,
)
from .style import TB_FLOOR_FRACTION, log_tb


def read_tb(path) -> tuple[np.ndarray, dict]:
    """The ``tb`` dataset (mK) of a grid file or a generated volume, and its attributes."""
    data, attrs = read_grids(path, ("tb",))
    return data["tb"], attrs


def read_volume_attrs(path) -> dict:
    """Attributes of a generated volume (method, seed, simulation, box, ...) without its data."""
    return read_hdf5(path, [], what="generated volume")[1]


def group_volumes(paths, key: str = "method") -> dict[str, list]:
    """Generated volumes grouped by an attribute (``method`` or ``simulation``), each group
    ordered by seed."""
    groups: dict[str, list] = {}
    for p in paths:
        a = read_volume_attrs(p)
        groups.setdefault(str(a[key]), []).append((int(a["seed"]), p))
    return {k: [p for _, p in sorted(v, key=lambda sp: sp[0])] for k, v in groups.items()}


def plot_methods(grid_path, volume_paths, title, *paths) -> None:
    """Fig. 5 from files: the target grid and one volume per method."""
    target, _ = read_tb(grid_path)
    volumes = {m: read_tb(ps[0]) for m, ps in group_volumes(volume_paths).items()}
    methods_figure(target, volumes, volumes[next(iter(volumes))][1], title, *paths)


def plot_overlap_pair(pair_path, title, *paths) -> None:
    """Fig. 6 from the pair file written by :func:`lodi_core.generation.jobs.run_overlap_pair`."""
    data, a = read_hdf5(
        pair_path,
        ["x0_a", "latent_overlap", "tiling", "tb_a", "tb_latent_overlap", "tb_tiling"],
        what="latent-overlap pair file",
    )
    steps = [int(s) for s in a["steps"]]
    pair = {
        "x0_a": data["x0_a"],
        "latent_overlap": dict(zip(steps, data["latent_overlap"])),
        "tiling": dict(zip(steps, data["tiling"])),
    }
    tb = {"a": data["tb_a"], "latent_overlap": data["tb_latent_overlap"], "tiling": data["tb_tiling"]}
    origin = tuple(int(o) for o in a["origin_a"])
    overlap_pair_figure(
        pair, steps, tb, int(a["box"]), int(a["overlap"]), int(a["axis"]), f"{title}, A at voxel {origin}", *paths
    )


def plot_stages(model_path, state_paths, box_size: float, title, *paths) -> None:
    """Fig. 7 from files: the states after stages 1..8 (normalised x_0, known mask) turned
    into T_b with the T_b normalisation (and calibration) stored in the LODI model file;
    ``box_size`` in Mpc/h."""
    meta = load_checkpoint(model_path, kind="lodi")
    tb_transform, calibration = LogTransform.from_dict(meta["tb_transform"]), tb_calibration(meta)
    maps, floor = [], None
    for p in state_paths:
        state, _ = read_hdf5(p, ["x0", "known"], what="generation state")
        tb = normalised_to_tb(torch.from_numpy(state["x0"]).float(), tb_transform, calibration).numpy()
        known = state["known"].astype(bool)
        if floor is None:
            floor = TB_FLOOR_FRACTION * float(tb[known].mean()) if known.any() else 1e-6
        maps.append([log_tb(m, floor) for m in stage_projections(tb, known)])
    stages_figure(maps, float(box_size), title, *paths)


def plot_overview(grid_path, volume_paths, title, *paths) -> None:
    """Fig. 8 from files: the grid (dm, target T_b) and the tiling and latent-overlap volumes."""
    grids, _ = read_grids(grid_path, ("dm", "tb"))
    groups = group_volumes(volume_paths)
    (til, a_til), (lo, a_lo) = read_tb(groups["tiling"][0]), read_tb(groups["latent_overlap"][0])
    overview_figure(grids["dm"], grids["tb"], til, lo, a_til, a_lo, title, *paths)


def plot_halos(grid_path, predicted_path, summary_csv, pdf_csv, title, *paths, floor_log: float = 9.5) -> None:
    """Fig. 9 from files: target and predicted halo channels and HALOgen's evaluation tables."""
    target, attrs = read_grids(grid_path, ("halos",))
    predicted, _ = read_grids(predicted_path, ("halos",))
    halos_figure(
        target["halos"],
        predicted["halos"],
        pd.read_csv(summary_csv),
        pd.read_csv(pdf_csv),
        float(attrs["box_size"]),
        title,
        *paths,
        floor_log=floor_log,
    )


def power_tables(target, volume_paths, box_size: float) -> list[pd.DataFrame]:
    """:func:`metrics.power_residual` of each volume against the target."""
    return [power_residual(read_tb(p)[0], target, box_size) for p in volume_paths]


def plot_power(grid_path, volume_paths, title, *paths) -> None:
    """Fig. 10 from files: the target and the latent-overlap volumes of all seeds."""
    target, attrs = read_tb(grid_path)
    ordered = [p for ps in group_volumes(volume_paths).values() for p in ps]
    box_size = float(attrs["box_size"])
    power_figure(read_tb(ordered[0])[0], target, power_tables(target, ordered, box_size), box_size, title, *paths)


def plot_residuals(grid_paths: dict, volume_paths, title, *paths) -> None:
    """Fig. 11 from files: ``grid_paths`` simulation -> grid file; the volumes of all test
    simulations and seeds."""
    tables = {}
    for sim, ps in group_volumes(volume_paths, "simulation").items():
        target, attrs = read_tb(grid_paths[sim])
        tables[sim] = power_tables(target, ps, float(attrs["box_size"]))
    residuals_figure(tables, title, *paths)


def plot_rk(grid_path, volume_paths, title, *paths) -> None:
    """r(k) and residuals per method from files."""
    target, attrs = read_tb(grid_path)
    tables = {m: power_tables(target, ps, float(attrs["box_size"])) for m, ps in group_volumes(volume_paths).items()}
    rk_figure(tables, title, *paths)


def plot_tb_pdf(grid_path, volume_paths, title, *paths, bins: int = 60) -> None:
    """One-point PDFs of T_b from files (bins span the target's range, with margins)."""
    target, _ = read_tb(grid_path)
    floor = TB_FLOOR_FRACTION * float(np.mean(target))
    lt = log_tb(target, floor)
    lo, hi = float(lt.min()), float(lt.max())
    edges = np.linspace(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo), bins + 1)
    pdfs = {m: [tb_pdf(read_tb(p)[0], edges, floor) for p in ps] for m, ps in group_volumes(volume_paths).items()}
    tb_pdf_figure(0.5 * (edges[1:] + edges[:-1]), tb_pdf(target, edges, floor), pdfs, floor, title, *paths)


def plot_posterior(grid_path, volume_paths, title, *paths) -> None:
    """Posterior maps over the seeds of one method (latent overlap) from files."""
    target, attrs = read_tb(grid_path)
    stats = posterior_stats((read_tb(p)[0] for p in volume_paths), target)
    spread = spread_skill((read_tb(p)[0] for p in volume_paths), target, float(attrs["box_size"]))
    posterior_figure(target, stats, spread, float(attrs["box_size"]), title, *paths)


def plot_baselines(grid_path, volume_paths, title, *paths) -> None:
    """The baselines figure from files: the target grid and the volumes of each method
    (maps: the first seed; P(k): the mean over seeds)."""
    target, attrs = read_tb(grid_path)
    groups = group_volumes(volume_paths)
    box_size = float(attrs["box_size"])
    volumes = {m: read_tb(ps[0])[0] for m, ps in groups.items()}
    tables = {m: power_tables(target, ps, box_size) for m, ps in groups.items()}
    baselines_figure(target, volumes, tables, box_size, title, *paths)


def plot_training(history_csv, title: str, *paths) -> None:
    """Loss curves of a training run from its history CSV."""
    loss_curve_figure(pd.read_csv(history_csv), title, *paths)


def plot_learning_curve(table_csv, main: str, title: str, *paths) -> None:
    """The convergence study's figure from results/study/learning_curve.csv."""
    learning_curve_figure(pd.read_csv(table_csv), main, title, *paths)

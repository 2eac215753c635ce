"""Baseline volumes painted in one piece on the test simulations: the halo model on HALOgen's
or the true halo channels, and LDL on the DM-only particles. They are written like generated
volumes (``tb`` in mK, :func:`volumes.volume_attrs`) with ``box = 0``: no boxes, no seams."""

from __future__ import annotations

import numpy as np
import torch

from ..data.camels import read_particles
from ..io import InputError, read_grids
from ..models.halo_model import HaloModel, paint_halo_channels
from ..models.ldl import apply_ldl, load_ldl
from .volumes import volume_attrs, write_tb_volume


def baseline_attrs(grid_attrs: dict, method: str, seed: int, simulation: str, model_path, **sources) -> dict:
    """:func:`volumes.volume_attrs` of a deterministic volume painted in one piece (``box = 0``),
    with the model file and the input files it was painted from."""
    return volume_attrs(
        grid_attrs,
        method,
        seed,
        simulation,
        box=0,
        deterministic=True,
        baseline_model=str(model_path),
        **{k: str(v) for k, v in sources.items()},
    )


def run_halo_model_volume(model_path, halos_path, out_path, method: str, seed: int, simulation: str) -> None:
    """One Snakemake job: paint T_b with the fitted halo model on a halo-channel file
    (HALOgen's prediction or the simulation's grid) and write it as a generated volume."""
    model = HaloModel.load(model_path)
    data, attrs = read_grids(halos_path, ("halos",))
    halos = data["halos"]
    if halos.shape[0] != len(model.coefficients):
        raise InputError(
            halos_path, f"{halos.shape[0]} halo channels, the halo model {model_path} has {len(model.coefficients)}"
        )
    edges = attrs.get("halo_mass_edges")
    if edges is not None and not np.allclose(edges, model.mass_edges, rtol=1e-6):
        raise InputError(halos_path, f"halo mass edges {edges} differ from the halo model's {list(model.mass_edges)}")
    tb = paint_halo_channels(halos, model.coefficients)
    write_tb_volume(out_path, tb, baseline_attrs(attrs, method, seed, simulation, model_path, halos=halos_path))


def run_ldl_volume(model_path, snapshot_path, grid_path, out_path, seed: int, simulation: str) -> None:
    """One Snakemake job: paint a held-out simulation's DM-only particles with the trained
    model (``grid_path`` gives the box and the grid attributes; the particles' sub-lattice
    of the training's ``particle_stride``) and write the volume."""
    model, state = load_ldl(model_path)
    _, attrs = read_grids(grid_path, ())
    box, n = float(attrs["box_size"]), int(attrs["n_grid"])
    stride = int(state["config"].get("particle_stride", 1))
    positions = read_particles(snapshot_path, box, attrs.get("redshift"), stride)
    try:
        tb = apply_ldl(model, torch.from_numpy(positions), box, n)
    except ValueError as err:
        raise InputError(grid_path, str(err)) from err
    write_tb_volume(out_path, tb, baseline_attrs(attrs, "ldl", seed, simulation, model_path, dm_snapshot=snapshot_path))

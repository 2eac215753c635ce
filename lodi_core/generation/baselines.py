"""Baseline volumes painted in one piece on the test simulations: the halo model on HALOgen's
or the true halo channels, LDL on the DM-only particles, and (synthetic data only) the
simulation's own T_b with its HI drawn again given the same halos. They are written like
generated volumes (``tb`` in mK, :func:`volumes.volume_attrs`) with ``box = 0``: no boxes, no
seams."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..data.camels import read_particles
from ..data.grids import GridSpec, make_grids
from ..data.synthetic import make_configured_simulation
from ..io import InputError, read_grids
from ..models.halo_model import HaloModel, paint_halo_channels
from ..models.ldl import apply_ldl, load_ldl
from .volumes import volume_attrs, write_tb_volume

#: the largest relative L1 difference between the redrawn simulation's halo channels and the
#: grid's: the same settings give 0 at the synthetic rule's one thread, 3e-4 at two (float sums
#: in another order move a few particles across cells); another seed gives order 1
HALO_TOLERANCE = 1e-2

log = logging.getLogger(__name__)


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


def run_hi_redraw_volume(
    grid_path, out_path, draw: int, simulation: str, seed: int, synthetic: dict, data: dict, cosmology: dict, device
) -> None:
    """One Snakemake job (synthetic data only): the test simulation made again from its initial
    conditions ``seed`` with draw ``draw`` > 0 of the per-halo HI scatter
    (:func:`data.synthetic.make_configured_simulation`, ``hi_draw``), gridded as its grid (``data``: the
    grid settings), and its T_b written as a volume. It is an exact sample of T_b given the
    same particles, halos and gas: what no emulator of this data can beat on average, since it
    conditions on more than the halo channels. The redrawn halo channels must equal the grid's
    (else the grid was made with other synthetic settings or code); nothing else is kept."""
    if draw < 1:
        raise ValueError(f"hi_redraw: draw {draw} must be >= 1 (draw 0 is the simulation itself)")
    target, attrs = read_grids(grid_path, ("halos",))
    spec = GridSpec.from_config(data, cosmology)
    with tempfile.TemporaryDirectory(dir=Path(out_path).parent, prefix=".hi_redraw_") as tmp:
        paths = make_configured_simulation(
            tmp,
            simulation,
            seed,
            synthetic,
            spec.box_size,
            spec.redshift,
            cosmology,
            device=device,
            progress=False,
            hi_draw=draw,
        )
        grids, _ = make_grids(paths["hydro"], paths["groups"], paths["dm_only"], spec, device)
    halos = np.asarray(grids["halos"], dtype=np.float64)
    expected = np.asarray(target["halos"], dtype=np.float64)
    if halos.shape != expected.shape:
        raise InputError(
            grid_path, f"halo channels of shape {expected.shape}; the redrawn simulation has {halos.shape}"
        )
    total = max(np.abs(expected).sum(), np.finfo(float).tiny)
    difference = np.abs(halos - expected).sum() / total
    if difference > HALO_TOLERANCE:
        raise InputError(
            grid_path,
            f"the halo channels of {simulation} made again from seed {seed} differ from the grid's by "
            f"{difference:.2g} (relative L1, at most {HALO_TOLERANCE:g} expected): the grid was made with other "
            "synthetic settings or code; remake it before redrawing its HI",
        )
    log.info("%s, HI draw %d: halo channels equal the grid's to %.2g (relative L1)", simulation, draw, difference)
    out_attrs = volume_attrs(
        attrs, "hi_redraw", draw, simulation, box=0, deterministic=False, grid=str(grid_path), ic_seed=seed
    )
    write_tb_volume(out_path, grids["tb"], out_attrs)

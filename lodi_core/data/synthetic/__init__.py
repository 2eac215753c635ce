"""Synthetic simulations in the exact CAMELS layout and units (the embedded default data).

Pipeline of :func:`make_simulation` (one call per simulation, deterministic for a seed on a
given device):

1. :mod:`.ics`: Gaussian field from the linear LambdaCDM P(k) of ``Cosmology.linear_power``
   (colossus) on an ``n_particles^3`` lattice, 2LPT positions and momenta at ``a_start``;
2. :mod:`.nbody`: FastPM particle-mesh run (torch, CPU or GPU) to ``a = 1 / (1 + redshift)``;
3. :mod:`.fof`: friends-of-friends halos (b = 0.2, 20+ members) and their properties; run on
   the N-body particles, which is the same as on the hydro run's DM + gas since every gas
   cell follows (and is assigned to the group of) its DM particle;
4. :mod:`.gas`: one gas cell per DM particle, HI from the Villaescusa-Navarro et al. (2018)
   HI-halo mass relation with log-normal scatter;
5. :mod:`.writer`: the hydro snapshot, its group catalogue and the DM-only snapshot (the
   DM-only run is the same N-body integration with the particles carrying the full matter
   mass), written atomically::

       <root>/Sims/IllustrisTNG/<volume>/CV/<sim>/snapshot_090.hdf5
       <root>/FOF_Subfind/IllustrisTNG/<volume>/CV/<sim>/groups_090.hdf5
       <root>/Sims/IllustrisTNG_DM/<volume>/CV/<sim>/snapshot_090.hdf5
       (optional) <root>/FOF_Subfind/IllustrisTNG_DM/<volume>/CV/<sim>/groups_090.hdf5

   with ``<volume> = f"L{box_size:g}n{n_particles}"`` (e.g. ``L12.5n128``).

Snapshots are in Lagrangian (ParticleIDs) order, not ordered by group as TNG's are; DM IDs
are 1..N, gas IDs N+1..2N (gas cell i follows DM particle i).

Usable from the command line, e.g.::

    python -c "from lodi_core.synthetic import make_simulation; print(make_simulation('data', 'CV_0', 101))"
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager

import numpy as np
import torch

from ...physics.cosmology import RHO_CRIT_H2, Cosmology
from ..camels import Layout
from .fof import Halos, friends_of_friends, halo_properties
from .gas import X_H, HIModel, gas_positions, halo_hi_masses, hi_mass_per_cell, make_gas, omega_hi, paint_hi
from .ics import InitialConditions, initial_conditions, lattice, linear_density_k, lpt_displacements, white_noise
from .nbody import DarkMatter, ParticleMesh, peculiar_velocity, run_pm, simulate_dark_matter
from .writer import snapshot_header, write_group_catalogue, write_snapshot

__all__ = [
    "make_simulation",
    "make_configured_simulation",
    "volume_name",
    "simulation_paths",
    "particle_mass",
    "InitialConditions",
    "initial_conditions",
    "lattice",
    "white_noise",
    "linear_density_k",
    "lpt_displacements",
    "ParticleMesh",
    "run_pm",
    "peculiar_velocity",
    "DarkMatter",
    "simulate_dark_matter",
    "friends_of_friends",
    "halo_properties",
    "Halos",
    "HIModel",
    "X_H",
    "gas_positions",
    "halo_hi_masses",
    "paint_hi",
    "make_gas",
    "hi_mass_per_cell",
    "omega_hi",
    "snapshot_header",
    "write_snapshot",
    "write_group_catalogue",
]

log = logging.getLogger(__name__)

#: snapshot number of z = 0 in the current CAMELS release
SNAPNUM_Z0 = 90


def volume_name(box_size: float, n_particles: int) -> str:
    """CAMELS-style volume folder, e.g. ``L25n256`` or ``L12.5n128``."""
    return f"L{box_size:g}n{n_particles}"


def particle_mass(box_size: float, n_particles: int, cosmology: Cosmology) -> float:
    """Matter mass per N-body particle, Msun/h."""
    return cosmology.omega_m * RHO_CRIT_H2 * box_size**3 / n_particles**3


def simulation_paths(
    root,
    sim_name: str,
    box_size: float,
    n_particles: int,
    suite: str = "IllustrisTNG",
    set_name: str = "CV",
    snapnum: int = SNAPNUM_Z0,
) -> dict:
    """Where :func:`make_simulation` writes (keys ``hydro``, ``groups``, ``dm_only``,
    ``groups_dm_only``): the current CAMELS layout of :class:`lodi_core.camels.Layout`."""
    lay = Layout(root=str(root), suite=suite, volume=volume_name(box_size, n_particles), set=set_name, snapnum=snapnum)
    return {
        "hydro": lay.path("snapshot", sim_name),
        "groups": lay.path("groups", sim_name),
        "dm_only": lay.path("snapshot", sim_name, dm_only=True),
        "groups_dm_only": lay.path("groups", sim_name, dm_only=True),
    }


@contextmanager
def _deterministic(device: torch.device):
    """On CUDA, CIC painting accumulates with atomics; torch's deterministic mode switches
    the 1-D ``scatter_add_`` of :func:`lodi_core.fields.cic` to an ordered algorithm so a
    seed gives the same simulation on a given GPU. The previous mode is restored."""
    if device.type != "cuda":
        yield
        return
    was, warn_only = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was, warn_only=warn_only)


def make_configured_simulation(
    root, sim_name: str, seed: int, synthetic: dict, box_size: float, redshift: float, cosmology: dict, **options
) -> dict:
    """:func:`make_simulation` with the workflow config's settings: ``synthetic`` (the settings
    every synthetic simulation shares: ``n_particles``, ``a_start``, ``n_steps``, ``mesh_factor``),
    ``data.box_size``, ``data.redshift`` and the ``cosmology`` section; ``options`` are passed on
    (``device``, ``progress``, ``hi_draw``). The synthetic_simulation rule and the hi_redraw
    baseline both call it, so a redraw is made exactly as the simulation was."""
    return make_simulation(
        root,
        sim_name,
        seed,
        n_particles=int(synthetic["n_particles"]),
        box_size=float(box_size),
        cosmology=Cosmology(**cosmology),
        redshift=float(redshift),
        a_start=float(synthetic["a_start"]),
        n_steps=int(synthetic["n_steps"]),
        mesh_factor=int(synthetic["mesh_factor"]),
        **options,
    )


def make_simulation(
    root,
    sim_name: str,
    seed: int,
    *,
    n_particles: int = 128,
    box_size: float = 12.5,
    cosmology: Cosmology = Cosmology(),
    redshift: float = 0.0,
    a_start: float = 0.1,
    n_steps: int = 10,
    mesh_factor: int = 2,
    device=None,
    progress: bool = True,
    hi_model: HIModel = HIModel(),
    dm_only_catalogue: bool = False,
    suite: str = "IllustrisTNG",
    set_name: str = "CV",
    snapnum: int = SNAPNUM_Z0,
    timings: dict | None = None,
    hi_draw: int = 0,
) -> dict:
    """Run one synthetic simulation and write it under ``root`` in the CAMELS layout.

    ``n_particles`` per side (DM particles; as many gas cells) in a periodic box of
    ``box_size`` Mpc/h, initial conditions from the integer ``seed`` at ``a_start``, ``n_steps``
    particle-mesh steps on a ``mesh_factor * n_particles`` mesh, on ``device`` (None: CPU);
    FoF and the writing run on the CPU. The snapshot number is ``snapnum`` (090, z = 0 in
    CAMELS) whatever the redshift. ``timings``, when given, receives the seconds spent per
    stage (``ics``, ``pm``, ``fof``, ``gas``, ``write``) and a few summary numbers
    (``n_halos``, ``omega_hi``). ``hi_draw`` k > 0 draws the per-halo HI scatter again
    (:mod:`.gas`) and leaves everything else as the seed makes it: the same simulation with
    another exact sample of its HI given the halos.

    Returns ``{"hydro": Path, "groups": Path, "dm_only": Path}`` (plus ``"groups_dm_only"``
    when ``dm_only_catalogue``). Deterministic for a seed on a given device.
    """
    if n_particles < 8:
        raise ValueError(f"n_particles must be >= 8, got {n_particles}")
    if not 0 < a_start < 1.0 / (1.0 + redshift):
        raise ValueError(f"a_start = {a_start} must lie in (0, a_end = {1.0 / (1.0 + redshift):g})")
    device = torch.device(device) if device is not None else torch.device("cpu")
    paths = simulation_paths(root, sim_name, box_size, n_particles, suite, set_name, snapnum)
    a_end = 1.0 / (1.0 + redshift)
    stage: dict = {}
    t0 = time.perf_counter()

    with _deterministic(device):
        dm = simulate_dark_matter(
            n_particles, box_size, seed, cosmology, a_start, a_end, n_steps, mesh_factor, device, progress, stage
        )
    pos, v_pec, ids = dm.positions, dm.velocities, dm.ids
    del dm
    snap_vel = (v_pec / np.sqrt(a_end)).astype(np.float32)  # Gadget: v_pec / sqrt(a)

    t = time.perf_counter()
    m_p = particle_mass(box_size, n_particles, cosmology)
    labels = friends_of_friends(pos, box_size, 0.2 * box_size / n_particles, min_members=20)
    halos = halo_properties(pos, v_pec, labels, m_p, box_size, cosmology, redshift)
    stage["fof"] = time.perf_counter() - t

    t = time.perf_counter()
    with _deterministic(device):
        gas = make_gas(
            pos, snap_vel, halos, cosmology, box_size, n_particles, seed, hi_model, redshift, device, hi_draw
        )
    n = n_particles**3
    m_gas = gas.pop("Masses")
    halo_hi = gas.pop("halo_hi")
    sfr = gas["StarFormationRate"]
    group_sfr = np.bincount(labels[labels >= 0], weights=sfr[labels >= 0].astype(np.float64), minlength=len(halos))
    gas_fields = {
        "Coordinates": gas["Coordinates"],
        "Masses": m_gas,
        "NeutralHydrogenAbundance": gas["NeutralHydrogenAbundance"],
        "StarFormationRate": sfr,
        "Velocities": gas["Velocities"],
        "ParticleIDs": ids + np.uint64(n),
        "Density": gas["Density"],
        "InternalEnergy": gas["InternalEnergy"],
        "ElectronAbundance": gas["ElectronAbundance"],
        "GFM_Metallicity": gas["GFM_Metallicity"],
    }
    del gas
    stage["gas"] = time.perf_counter() - t

    t = time.perf_counter()
    m_dm = m_p - m_gas
    common = dict(box_size=box_size, redshift=redshift, cosmology=cosmology)
    dm_fields = {"Coordinates": pos, "Velocities": snap_vel, "ParticleIDs": ids}
    write_snapshot(
        paths["hydro"],
        {0: gas_fields, 1: dm_fields},
        mass_table=[0, m_dm, 0, 0, 0, 0],
        coordinate_dtype=np.float64,
        **common,
    )
    write_group_catalogue(paths["groups"], halos, type_masses={0: m_gas, 1: m_dm}, group_sfr=group_sfr, **common)
    write_snapshot(
        paths["dm_only"], {1: dm_fields}, mass_table=[0, m_p, 0, 0, 0, 0], coordinate_dtype=np.float32, **common
    )
    out = {k: paths[k] for k in ("hydro", "groups", "dm_only")}
    if dm_only_catalogue:
        write_group_catalogue(paths["groups_dm_only"], halos, type_masses={1: m_p}, **common)
        out["groups_dm_only"] = paths["groups_dm_only"]
    stage["write"] = time.perf_counter() - t

    o_hi = omega_hi(np.full(n, m_gas), gas_fields["NeutralHydrogenAbundance"], sfr, box_size)
    stage["total"] = time.perf_counter() - t0
    stage["n_halos"] = len(halos)
    stage["omega_hi"] = o_hi
    stage["halo_hi_total"] = float(np.sum(halo_hi))
    if timings is not None:
        timings.update(stage)
    log.info(
        "%s (seed %d): %d^3 particles in %g Mpc/h, %d FoF halos, Omega_HI = %.3g; "
        "ICs %.1fs, PM %.1fs, FoF %.1fs, gas %.1fs, write %.1fs",
        sim_name,
        seed,
        n_particles,
        box_size,
        len(halos),
        o_hi,
        stage["ics"],
        stage["pm"],
        stage["fof"],
        stage["gas"],
        stage["write"],
    )
    return out

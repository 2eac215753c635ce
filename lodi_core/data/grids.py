"""One simulation's snapshots and catalogue -> the three grids of the paper.

``dm``: dark-matter density from the DM-only snapshot (Sec. 2.1.2); ``halos``: halo mass
density in the four channels of Eq. 1 from the SUBFIND catalogue; ``tb``: 21 cm brightness
temperature from the hydro gas (Eqs. 11-12). All CIC on ``n_grid^3`` and smoothed with a
Gaussian of radius R (0.2 Mpc/h in the paper).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from ..io import InputError, code_version
from ..physics.cosmology import Cosmology
from ..physics.fields import brightness_temperature, cell_volume, cic, gaussian_smooth, hi_mass
from ..physics.halos import HALO_MASS_EDGES, catalogue_mass_to_msun, halo_channels, halo_counts
from . import camels

log = logging.getLogger(__name__)


#: the keys of the config's ``data`` section a grid depends on (read by GridSpec.from_config);
#: not the CAMELS paths, server or checksums
GRID_CONFIG_KEYS = (
    "box_size",
    "n_grid",
    "redshift",
    "smoothing_radius",
    "halo_position",
    "halo_mass",
    "halo_mass_edges",
    "allow_empty_channels",
    "hydrogen_mass_fraction",
    "dm_source",
)


@dataclass(frozen=True)
class GridSpec:
    """What the grids are (config ``data``)."""

    box_size: float  # Mpc/h
    n_grid: int
    redshift: float = 0.0
    smoothing_radius: float = 0.2  # Mpc/h
    halo_position: str = "SubhaloCM"
    halo_mass: str = "SubhaloMass"
    mass_edges: tuple = HALO_MASS_EDGES  # Msun
    allow_empty_channels: bool = False
    hydrogen_mass_fraction: float = 0.76
    dm_source: str = "dm_only"  # or "hydro": which snapshot gives rho_DM
    cosmology: Cosmology = field(default_factory=Cosmology)

    @classmethod
    def from_config(cls, data: dict, cosmology: dict) -> GridSpec:
        """From the config's ``data`` and ``cosmology`` sections."""
        return cls(
            box_size=float(data["box_size"]),
            n_grid=int(data["n_grid"]),
            redshift=float(data["redshift"]),
            smoothing_radius=float(data["smoothing_radius"]),
            halo_position=data["halo_position"],
            halo_mass=data["halo_mass"],
            mass_edges=tuple(float(e) for e in data["halo_mass_edges"]),
            allow_empty_channels=bool(data["allow_empty_channels"]),
            hydrogen_mass_fraction=float(data["hydrogen_mass_fraction"]),
            dm_source=data["dm_source"],
            cosmology=Cosmology(**cosmology),
        )


def dm_density(positions, masses_1e10, spec: GridSpec, h: float, device=None) -> torch.Tensor:
    """CIC dark-matter density in Msun (Mpc/h)^-3, smoothed."""
    mass_msun = np.asarray(masses_1e10, dtype=np.float64) * 1e10 / h
    grid = cic(positions, spec.box_size, spec.n_grid, weights=mass_msun, dtype=torch.float64, device=device)
    grid = grid / cell_volume(spec.box_size, spec.n_grid)
    return gaussian_smooth(grid, spec.box_size, spec.smoothing_radius).clamp_(min=0).float()


def tb_grid(gas_positions, gas_mass_1e10, x_hi, sfr, spec: GridSpec, device=None) -> torch.Tensor:
    """Eqs. 11-12: CIC of the HI mass, per comoving volume, to T_b in mK, smoothed."""
    m_hi = hi_mass(
        torch.as_tensor(gas_mass_1e10, dtype=torch.float64) * 1e10,
        torch.as_tensor(x_hi, dtype=torch.float64),
        torch.as_tensor(sfr, dtype=torch.float64),
        spec.hydrogen_mass_fraction,
    )  # Msun/h
    rho_hi = cic(gas_positions, spec.box_size, spec.n_grid, weights=m_hi, dtype=torch.float64, device=device)
    rho_hi = rho_hi / cell_volume(spec.box_size, spec.n_grid)  # h^2 Msun / Mpc^3
    tb = brightness_temperature(rho_hi, spec.cosmology, spec.redshift)
    return gaussian_smooth(tb, spec.box_size, spec.smoothing_radius).clamp_(min=0).float()


def halo_grid(catalogue_path, spec: GridSpec, h: float, device=None) -> tuple[torch.Tensor, list[int]]:
    """Smoothed halo channels and the number of halos per channel."""
    pos, mass, _ = camels.read_catalogue(
        catalogue_path, spec.halo_position, spec.halo_mass, spec.box_size, spec.redshift
    )
    mass_msun = catalogue_mass_to_msun(mass, h)
    counts = halo_counts(mass_msun, spec.mass_edges)
    log.info("halos per channel (edges %s Msun): %s", spec.mass_edges, counts)
    if not spec.allow_empty_channels and min(counts) == 0:
        empty = [i + 1 for i, c in enumerate(counts) if c == 0]
        raise InputError(
            catalogue_path,
            f"halo channel(s) {empty} (Eq. 1 edges {list(spec.mass_edges)} Msun, mass '{spec.halo_mass}') "
            "hold no halos; "
            "expected at least one per channel (set data.allow_empty_channels: true to accept empty channels)",
        )
    grid = halo_channels(pos, mass_msun, spec.box_size, spec.n_grid, spec.mass_edges, device=device)
    return gaussian_smooth(grid, spec.box_size, spec.smoothing_radius).clamp_(min=0), counts


def make_grids(hydro_snapshot, catalogue, dm_snapshot, spec: GridSpec, device=None) -> tuple[dict, dict]:
    """Read one simulation and return ``(grids, attrs)`` ready for :func:`io.write_grids`."""
    gas, hdr = camels.read_snapshot(
        hydro_snapshot,
        0,
        ["Coordinates", "Masses", "NeutralHydrogenAbundance", "StarFormationRate"],
        spec.box_size,
        spec.redshift,
    )
    h = float(hdr["HubbleParam"])
    if not np.isclose(h, spec.cosmology.h, rtol=1e-3):
        raise InputError(hydro_snapshot, f"HubbleParam is {h}, the config's cosmology has h = {spec.cosmology.h}")
    tb = tb_grid(
        gas["Coordinates"], gas["Masses"], gas["NeutralHydrogenAbundance"], gas["StarFormationRate"], spec, device
    )
    del gas
    dm_path = dm_snapshot if spec.dm_source == "dm_only" else hydro_snapshot
    dm, _ = camels.read_snapshot(dm_path, 1, ["Coordinates", "Masses"], spec.box_size, spec.redshift)
    rho_dm = dm_density(dm["Coordinates"], dm["Masses"], spec, h, device)
    del dm
    halos, counts = halo_grid(catalogue, spec, h, device)
    attrs = {
        "box_size": spec.box_size,
        "box_size_units": "Mpc/h",
        "n_grid": spec.n_grid,
        "redshift": spec.redshift,
        "smoothing_radius": spec.smoothing_radius,
        "smoothing_radius_units": "Mpc/h",
        "halo_mass_edges": list(spec.mass_edges),
        "halo_mass_edges_units": "Msun",
        "halo_position": spec.halo_position,
        "halo_mass": spec.halo_mass,
        "halo_counts": counts,
        "hydrogen_mass_fraction": spec.hydrogen_mass_fraction,
        "dm_source": spec.dm_source,
        "cosmology": asdict(spec.cosmology),
        "source_files": {"hydro": str(hydro_snapshot), "groups": str(catalogue), "dm": str(dm_path)},
        "code_version": code_version(),
    }
    return {"dm": rho_dm, "halos": halos, "tb": tb}, attrs


def dm_only_grid(dm_snapshot, spec: GridSpec, n_grid: int, device=None) -> tuple[dict, dict]:
    """Bring your own dark matter: rho_DM of any DM-only snapshot (Gadget/CAMELS HDF5) on
    ``n_grid`` cells, which must give the training cell size (the networks know no other)."""
    box = camels.read_box_size(dm_snapshot)
    train_cell, cell = spec.box_size / spec.n_grid, box / n_grid
    if not np.isclose(cell, train_cell, rtol=1e-6):
        raise InputError(
            dm_snapshot, f"cell of {cell:g} Mpc/h on {n_grid}^3 differs from the training cell {train_cell:g} Mpc/h"
        )
    own = replace(spec, box_size=box, n_grid=n_grid)
    dm, hdr = camels.read_snapshot(dm_snapshot, 1, ["Coordinates", "Masses"], box, spec.redshift)
    rho_dm = dm_density(dm["Coordinates"], dm["Masses"], own, float(hdr["HubbleParam"]), device)
    attrs = {
        "box_size": box,
        "box_size_units": "Mpc/h",
        "n_grid": n_grid,
        "redshift": spec.redshift,
        "smoothing_radius": spec.smoothing_radius,
        "cosmology": asdict(spec.cosmology),
        "source_files": {"dm": str(dm_snapshot)},
        "code_version": code_version(),
    }
    return {"dm": rho_dm}, attrs

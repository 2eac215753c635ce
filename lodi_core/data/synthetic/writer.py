"""Snapshots and group catalogues in the CAMELS / AREPO HDF5 layout and units
(see ``shared/camels-format.md``): positions ckpc/h (comoving), masses 1e10 Msun/h,
snapshot velocities km/s sqrt(a) (Gadget's ``v_pec / sqrt(a)``), ``GroupVel`` km/s / a,
``SubhaloVel`` km/s (peculiar), SFR Msun/yr.

Every file is written under a temporary name in its final directory
(:func:`lodi_core.io.atomic_path`: ``.<name>.<random>.tmp``) and renamed into place with
``os.replace`` only when complete, so an interrupted run never leaves a file under the final
name (the temporary is removed on error).

The group catalogue holds one *central subhalo per FoF group* (no satellites are identified):
``Subhalo*`` fields repeat their group's members (``SubhaloMass = GroupMass``, ``SubhaloPos =
GroupPos``, ``SubhaloCM = GroupCM``), ``GroupFirstSub = index``, ``GroupNsubs = 1``.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from ...io import atomic_path
from ...physics.cosmology import Cosmology
from ...physics.fields import GADGET_MASS_UNIT
from .fof import Halos

#: ckpc/h per Mpc/h
LENGTH_UNIT = 1e3

#: dtype of every snapshot field (Coordinates: per file kind, see write_snapshot)
SNAPSHOT_DTYPES = {
    "Masses": np.float32,
    "NeutralHydrogenAbundance": np.float32,
    "StarFormationRate": np.float32,
    "Velocities": np.float32,
    "ParticleIDs": np.uint64,
    "Density": np.float32,
    "InternalEnergy": np.float32,
    "ElectronAbundance": np.float32,
    "GFM_Metallicity": np.float32,
}


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _publish_mode(tmp: Path) -> None:
    """``atomic_path``'s temporary comes from mkstemp (mode 0600): give the final file the
    usual permissions (0666 minus the umask), as a plain ``open`` would."""
    os.chmod(tmp, 0o666 & ~_current_umask())


def _positions(x_mpc, box_size: float, dtype) -> np.ndarray:
    """Mpc/h -> ckpc/h in ``dtype``, inside [0, BoxSize) after rounding (float32 can round
    a coordinate just below the box size up to it)."""
    box = float(box_size) * LENGTH_UNIT
    out = np.mod(np.asarray(x_mpc, dtype=np.float64) * LENGTH_UNIT, box).astype(dtype)
    out[out >= np.asarray(box, dtype=dtype)] = 0
    return out


def snapshot_header(
    box_size: float, redshift: float, cosmology: Cosmology, num_part, mass_table, double_precision: bool
) -> dict:
    """Gadget/AREPO ``Header`` attributes; ``box_size`` in Mpc/h, ``mass_table`` in Msun/h."""
    num = np.asarray(num_part, dtype=np.int64)
    return {
        "BoxSize": float(box_size) * LENGTH_UNIT,
        "Redshift": float(redshift),
        "Time": 1.0 / (1.0 + float(redshift)),
        "HubbleParam": float(cosmology.h),
        "Omega0": float(cosmology.omega_m),
        "OmegaLambda": float(cosmology.omega_l),
        "OmegaBaryon": float(cosmology.omega_b),
        "MassTable": np.asarray(mass_table, dtype=np.float64) / GADGET_MASS_UNIT,
        "NumPart_ThisFile": num.astype(np.int32),
        "NumPart_Total": (num & 0xFFFFFFFF).astype(np.uint32),
        "NumPart_Total_HighWord": (num >> 32).astype(np.uint32),
        "NumFilesPerSnapshot": np.int32(1),
        "Flag_Sfr": np.int32(1),
        "Flag_Cooling": np.int32(1),
        "Flag_Feedback": np.int32(1),
        "Flag_StellarAge": np.int32(1),
        "Flag_Metals": np.int32(1),
        "Flag_DoublePrecision": np.int32(1 if double_precision else 0),
        "UnitLength_in_cm": 3.085678e21,
        "UnitMass_in_g": 1.989e43,
        "UnitVelocity_in_cm_per_s": 1e5,
    }


def write_snapshot(
    path,
    parts: dict,
    *,
    box_size: float,
    redshift: float,
    cosmology: Cosmology,
    mass_table,
    coordinate_dtype=np.float64,
) -> Path:
    """Write a one-file snapshot atomically.

    ``parts``: {part_type: {field: array}} with ``Coordinates`` in Mpc/h (converted to ckpc/h
    and ``coordinate_dtype``: float64 for the TNG hydro runs, float32 for the DM-only runs);
    other fields as given, cast to :data:`SNAPSHOT_DTYPES`. A scalar ``Masses`` is expanded
    (in Msun/h); ``mass_table`` (6 entries, Msun/h) gives the mass of types without a
    ``Masses`` dataset (DM). Everything in Msun/h is stored in 1e10 Msun/h.
    """
    num = [0] * 6
    for t, d in parts.items():
        num[t] = len(d["Coordinates"])
    header = snapshot_header(box_size, redshift, cosmology, num, mass_table, np.dtype(coordinate_dtype) == np.float64)
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", track_order=True) as f:
            f.create_group("Header").attrs.update(header)
            for t in sorted(parts):
                g = f.create_group(f"PartType{t}")
                for name, arr in parts[t].items():
                    if name == "Coordinates":
                        data = _positions(arr, box_size, coordinate_dtype)
                    elif name == "Masses":
                        data = np.broadcast_to(np.asarray(arr, dtype=np.float64) / GADGET_MASS_UNIT, (num[t],)).astype(
                            np.float32
                        )
                    else:
                        data = np.asarray(arr, dtype=SNAPSHOT_DTYPES.get(name))
                    g.create_dataset(name, data=data, track_times=False)
        _publish_mode(tmp)
    return path


def write_group_catalogue(
    path,
    halos: Halos,
    *,
    box_size: float,
    redshift: float,
    cosmology: Cosmology,
    type_masses: dict,
    group_sfr=None,
) -> Path:
    """Write a FoF/SUBFIND-style catalogue (``Group`` and ``Subhalo``) atomically.

    Each member particle of ``halos`` stands for one particle of every type in
    ``type_masses`` ({part_type: particle mass in Msun/h}): {0: m_gas, 1: m_dm} for the hydro
    run (gas cells follow their DM particles), {1: m_p} for the DM-only run. Positions in
    Mpc/h and masses in Msun/h in ``halos`` are converted to ckpc/h and 1e10 Msun/h.
    """
    n = len(halos)
    a = 1.0 / (1.0 + redshift)
    count = np.asarray(halos.n_members, dtype=np.int64)
    len_type = np.zeros((n, 6), dtype=np.int32)
    mass_type = np.zeros((n, 6), dtype=np.float64)
    for t, m in type_masses.items():
        len_type[:, t] = count
        mass_type[:, t] = count * float(m) / GADGET_MASS_UNIT
    total_len = len_type.sum(axis=1).astype(np.int32)
    total_mass = mass_type.sum(axis=1).astype(np.float32)
    mass_type = mass_type.astype(np.float32)
    pos = _positions(np.asarray(halos.pos).reshape(n, 3), box_size, np.float32)
    cm = _positions(np.asarray(halos.cm).reshape(n, 3), box_size, np.float32)
    vel = np.asarray(halos.vel, dtype=np.float64).reshape(n, 3)
    sfr = np.zeros(n, np.float32) if group_sfr is None else np.asarray(group_sfr, dtype=np.float32)
    index = np.arange(n, dtype=np.int32)
    header = {
        "Ngroups_Total": np.int32(n),
        "Ngroups_ThisFile": np.int32(n),
        "Nsubgroups_Total": np.int32(n),
        "Nsubgroups_ThisFile": np.int32(n),
        "Nids_Total": np.int64(total_len.sum()),
        "Nids_ThisFile": np.int32(total_len.sum()),
        "NumFiles": np.int32(1),
        "BoxSize": float(box_size) * LENGTH_UNIT,
        "Redshift": float(redshift),
        "Time": a,
        "HubbleParam": float(cosmology.h),
        "Omega0": float(cosmology.omega_m),
        "OmegaLambda": float(cosmology.omega_l),
        "OmegaBaryon": float(cosmology.omega_b),
    }
    group = {
        "GroupPos": pos,
        "GroupCM": cm,
        "GroupMass": total_mass,
        "GroupLen": total_len,
        "GroupLenType": len_type,
        "GroupMassType": mass_type,
        "Group_M_Crit200": (np.asarray(halos.m200c) / GADGET_MASS_UNIT).astype(np.float32),
        "Group_R_Crit200": (np.asarray(halos.r200c) * LENGTH_UNIT).astype(np.float32),
        "GroupFirstSub": index.copy(),
        "GroupNsubs": np.ones(n, dtype=np.int32),
        "GroupSFR": sfr,
        "GroupVel": (vel / a).astype(np.float32),
    }
    subhalo = {
        "SubhaloPos": pos,
        "SubhaloCM": cm,
        "SubhaloMass": total_mass,
        "SubhaloMassType": mass_type,
        "SubhaloGrNr": index.copy(),
        "SubhaloLen": total_len,
        "SubhaloLenType": len_type,
        "SubhaloSFR": sfr,
        "SubhaloVel": vel.astype(np.float32),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w", track_order=True) as f:
            f.create_group("Header").attrs.update(header)
            for name, datasets in (("Group", group), ("Subhalo", subhalo)):
                g = f.create_group(name)
                for key, arr in datasets.items():
                    g.create_dataset(key, data=arr, track_times=False)
        _publish_mode(tmp)
    return path

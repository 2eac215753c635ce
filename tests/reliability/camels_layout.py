"""Minimal CAMELS-layout files written by hand (only what the loader reads), to be broken
in the reliability tests."""

from __future__ import annotations

import h5py
import numpy as np

BOX = 8.0  # Mpc/h


def write_snapshot(path, *, gas=True, box=BOX, redshift=0.0, n=4000, seed=0, drop=(), nan=None):
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        h = f.create_group("Header")
        h.attrs.update(
            {
                "BoxSize": box * 1000,
                "Redshift": redshift,
                "Time": 1 / (1 + redshift),
                "HubbleParam": 0.6711,
                "MassTable": np.array([0, 0.01, 0, 0, 0, 0]),
                "NumPart_ThisFile": np.array([n if gas else 0, n, 0, 0, 0, 0]),
            }
        )
        if gas:
            g = f.create_group("PartType0")
            fields = {
                "Coordinates": rng.random((n, 3)) * box * 1000,
                "Masses": np.full(n, 0.002, dtype=np.float32),
                "NeutralHydrogenAbundance": rng.random(n).astype(np.float32) * 0.1,
                "StarFormationRate": (rng.random(n) > 0.9).astype(np.float32),
            }
            for name, arr in fields.items():
                if name in drop:
                    continue
                if nan == name:
                    arr = arr.copy()
                    arr[3] = np.nan
                g.create_dataset(name, data=arr)
        d = f.create_group("PartType1")
        d.create_dataset("Coordinates", data=(rng.random((n, 3)) * box * 1000).astype(np.float32))
    return path


def write_groups(path, masses_msun_h=(4e10, 2e11, 5e11, 2e12), box=BOX, redshift=0.0, seed=1):
    rng = np.random.default_rng(seed)
    m = np.asarray(masses_msun_h, dtype=np.float64) / 1e10
    with h5py.File(path, "w") as f:
        h = f.create_group("Header")
        h.attrs.update(
            {"BoxSize": box * 1000, "Redshift": redshift, "Ngroups_ThisFile": len(m), "Nsubgroups_ThisFile": len(m)}
        )
        s = f.create_group("Subhalo")
        s.create_dataset("SubhaloCM", data=(rng.random((len(m), 3)) * box * 1000).astype(np.float32).reshape(-1, 3))
        s.create_dataset("SubhaloMass", data=m.astype(np.float32))
        g = f.create_group("Group")
        g.create_dataset("GroupPos", data=(rng.random((len(m), 3)) * box * 1000).astype(np.float32).reshape(-1, 3))
        g.create_dataset("GroupMass", data=m.astype(np.float32))
    return path

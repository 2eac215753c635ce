"""HDF5 and checkpoint I/O: atomic writes, grid files with units, clear input errors.

Every file is written under a temporary name in its final directory and renamed into place
when complete (``os.replace`` is atomic on POSIX), so a crash or a kill never leaves a
half-written file under a final name that a later rule would trust.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import torch

from . import __version__


class InputError(ValueError):
    """Bad input data or configuration; the message names the file (or key) and what was
    expected."""

    def __init__(self, source, problem: str):
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{source}: {problem}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only on success."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def code_version() -> str:
    """Package version plus the git commit of the checkout, when there is one."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    return f"{__version__}+{rev}" if rev else __version__


def _attr(value):
    if isinstance(value, (dict, list, tuple)) and not (
        isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value)
    ):
        return json.dumps(value)
    if value is None:
        return "none"
    return value


def write_hdf5(
    path, datasets: dict, attrs: dict | None = None, dataset_attrs: dict | None = None, check_finite: bool = True
) -> None:
    """Write ``datasets`` (name -> array) with file ``attrs`` and per-dataset attributes
    (e.g. units) atomically. Refuses non-finite values when ``check_finite``."""
    dataset_attrs = dataset_attrs or {}
    prepared = {}
    for name, value in datasets.items():
        arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        if check_finite and arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr)).sum())
            raise FloatingPointError(f"{path}: dataset '{name}' has {bad} non-finite values; refusing to write it")
        prepared[name] = arr
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for key, value in (attrs or {}).items():
                f.attrs[key] = _attr(value)
            for name, arr in prepared.items():
                dset = f.create_dataset(name, data=arr)
                for key, value in dataset_attrs.get(name, {}).items():
                    dset.attrs[key] = _attr(value)


def open_hdf5(path, what: str = "HDF5 file") -> h5py.File:
    """Open an HDF5 file for reading, with a clear error when it is missing or not HDF5."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, f"missing {what}: the file does not exist")
    if p.stat().st_size == 0 or not h5py.is_hdf5(p):
        raise InputError(p, f"not an HDF5 file (expected a {what}); it may be truncated or of another format")
    try:
        return h5py.File(p, "r")
    except OSError as err:  # truncated files can pass the signature check
        raise InputError(p, f"cannot be read as a {what} ({err}); it may be truncated") from err


def data_fingerprint(path) -> str:
    """SHA-256 of every dataset of an HDF5 file (its name, dtype, shape and bytes, in name
    order): the identity of the data, whatever the file's attributes (paths, code version) or
    location. A training checkpoint stores the fingerprints of its training data, so new data
    under an old path is never resumed as if it were the old."""
    digest = hashlib.sha256()
    with open_hdf5(path) as f:
        names = []
        f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
        for name in sorted(names):
            data = f[name][...]
            digest.update(f"{name}|{data.dtype.str}|{data.shape}|".encode())
            digest.update(np.ascontiguousarray(data).tobytes())
    return digest.hexdigest()


def training_data_key(paths) -> list[dict]:
    """The resume key of training data: each file's name and :func:`data_fingerprint`. Not
    its directory, so a results folder that was moved or copied still resumes."""
    return [{"file": Path(p).name, "sha256": data_fingerprint(p)} for p in paths]


def read_hdf5(path, names: list[str], what: str = "HDF5 file") -> tuple[dict[str, np.ndarray], dict]:
    """Read datasets by name and the file attributes; a missing dataset is an InputError."""
    with open_hdf5(path, what) as f:
        missing = [n for n in names if n not in f]
        if missing:
            raise InputError(path, f"missing dataset(s) {missing} in the {what}; it has {sorted(f.keys())}")
        data = {}
        for n in names:
            try:
                data[n] = f[n][...]
            except OSError as err:
                raise InputError(path, f"dataset '{n}' cannot be read ({err}); the file may be truncated") from err
        attrs = {k: _decode(v) for k, v in f.attrs.items()}
    return data, attrs


def _decode(value):
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist() if isinstance(value, np.ndarray) else value.item()
    return value


# ----------------------------------------------------------------------------- grids
GRID_UNITS = {
    "dm": ("Msun (Mpc/h)^-3", "dark-matter mass density (CIC, Gaussian-smoothed), comoving"),
    "halos": ("Msun (Mpc/h)^-3", "halo mass density in the 4 mass channels of Eq. 1 (CIC, smoothed), comoving"),
    "tb": ("mK", "21 cm brightness temperature, Eq. 12 (CIC of Eq. 11, smoothed)"),
}


def write_grids(path, grids: dict, attrs: dict) -> None:
    """Write a grid file (datasets ``dm``, ``halos``, ``tb`` or a subset) with units."""
    units = {
        name: {"units": GRID_UNITS[name][0], "description": GRID_UNITS[name][1]} for name in grids if name in GRID_UNITS
    }
    write_hdf5(
        path,
        {
            k: np.asarray(v, dtype=np.float32) if not isinstance(v, torch.Tensor) else v.float()
            for k, v in grids.items()
        },
        attrs,
        units,
    )


def read_grids(path, names=("dm", "halos", "tb"), expect: dict | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Read a grid file, checking shapes, finiteness and, where given, attributes such as
    ``box_size`` and ``n_grid`` against ``expect``."""
    data, attrs = read_hdf5(path, list(names), what="grid file")
    for key, want in (expect or {}).items():
        have = attrs.get(key)
        if have is None:
            raise InputError(path, f"attribute '{key}' is missing (expected {want})")
        if isinstance(want, float) or isinstance(have, float):
            if not np.isclose(float(have), float(want), rtol=1e-6):
                raise InputError(path, f"attribute '{key}' is {have}, the config expects {want}")
        elif have != want:
            raise InputError(path, f"attribute '{key}' is {have}, the config expects {want}")
    for name, arr in data.items():
        if not np.isfinite(arr).all():
            raise InputError(path, f"dataset '{name}' contains NaN or Inf")
    return data, attrs


def read_training_grids(
    grid_files, names: tuple, min_side: int, what: str, expect: dict | None = None
) -> tuple[list[dict], dict]:
    """The datasets ``names`` of each training grid file (checked by :func:`read_grids`),
    refusing grids smaller than ``min_side`` cells (the network's window or box, ``what``);
    also returns the attributes of the last file."""
    out, attrs = [], {}
    for path in grid_files:
        data, attrs = read_grids(path, names, expect)
        side = data[names[0]].shape[-1]
        if side < min_side:
            raise InputError(path, f"grid of {side}^3 cells is smaller than the {what} ({min_side}^3)")
        out.append(data)
    return out, attrs


# ----------------------------------------------------------------------------- checkpoints
def save_checkpoint(path, state: dict) -> None:
    """torch.save to a temporary file, then rename: a kill never corrupts the checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path, kind: str | None = None, map_location="cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint`; ``kind`` (e.g. 'halogen',
    'lodi') must match the one stored, so a LODI file is never loaded as HALOgen."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, "missing checkpoint: the file does not exist")
    try:
        state = torch.load(p, map_location=map_location, weights_only=False)
    except Exception as err:  # noqa: BLE001 - torch raises many types for corrupt files
        raise InputError(p, f"not a readable checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or "model" not in state:
        raise InputError(p, "not a LODI checkpoint (no 'model' entry)")
    if kind is not None and state.get("kind") != kind:
        raise InputError(p, f"checkpoint is of kind '{state.get('kind')}', expected '{kind}'")
    return state


def load_weights(model: torch.nn.Module, path, state: dict, architecture) -> torch.nn.Module:
    """The model file's weights into ``model`` (eval mode); weights of another shape are an
    InputError naming the file and the stored ``architecture``."""
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise InputError(path, f"weights do not fit the stored architecture {architecture}: {err}") from err
    return model.eval()


def write_csv(table, path) -> None:
    """A pandas table as CSV, atomically."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)

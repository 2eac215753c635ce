"""CAMELS IllustrisTNG snapshots and SUBFIND catalogues: where they live, how to read them,
and how to download them. The same reader serves the real files and the synthetic ones.

Layout (CAMELS since 2024, see ../shared/camels-format.md)::

    <root>/Sims/<suite>/<volume>/<set>/<sim>/snapshot_090.hdf5
    <root>/FOF_Subfind/<suite>/<volume>/<set>/<sim>/groups_090.hdf5
    <root>/Sims/<suite>_DM/<volume>/<set>/<sim>/snapshot_090.hdf5

Older layouts (no ``<volume>`` folder; ``snap_033.hdf5`` / ``fof_subhalo_tab_033.hdf5``;
chunked ``snapshot_090.N.hdf5``) are accepted when reading.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import InputError, open_hdf5

log = logging.getLogger(__name__)

CAMELS_URL = "https://users.flatironinstitute.org/~camels"

#: what each kind of file is called, newest naming first
_NAMES = {
    "snapshot": ("snapshot_{snap:03d}.hdf5", "snap_{old:03d}.hdf5"),
    "groups": ("groups_{snap:03d}.hdf5", "fof_subhalo_tab_{old:03d}.hdf5"),
}
#: z = 0 is snapshot 090 in the current release and 033 in the older one
_OLD_SNAPNUM = {90: 33}


@dataclass(frozen=True)
class Layout:
    """Where a CAMELS set lives (config ``data.camels``)."""

    root: str
    suite: str = "IllustrisTNG"
    volume: str = "L25n256"
    set: str = "CV"
    snapnum: int = 90

    def folder(self, kind: str, sim: str, dm_only: bool = False) -> str:
        top = "Sims" if kind == "snapshot" else "FOF_Subfind"
        suite = f"{self.suite}_DM" if dm_only else self.suite
        return f"{top}/{suite}/{self.volume}/{self.set}/{sim}"

    def relpath(self, kind: str, sim: str, dm_only: bool = False) -> str:
        """Path relative to the root in the current layout (what the downloader writes)."""
        return f"{self.folder(kind, sim, dm_only)}/{_NAMES[kind][0].format(snap=self.snapnum)}"

    def path(self, kind: str, sim: str, dm_only: bool = False) -> Path:
        return Path(self.root) / self.relpath(kind, sim, dm_only)

    def url(self, kind: str, sim: str, dm_only: bool = False, base: str = CAMELS_URL) -> str:
        return f"{base.rstrip('/')}/{self.relpath(kind, sim, dm_only)}"

    def find(self, kind: str, sim: str, dm_only: bool = False) -> Path:
        """The existing file among the accepted layouts and namings, else the current path."""
        suite = f"{self.suite}_DM" if dm_only else self.suite
        top = "Sims" if kind == "snapshot" else "FOF_Subfind"
        old = _OLD_SNAPNUM.get(self.snapnum, self.snapnum)
        folders = [f"{top}/{suite}/{self.volume}/{self.set}/{sim}", f"{top}/{suite}/{self.set}/{sim}", f"{suite}/{sim}"]
        for folder in folders:
            for pattern in _NAMES[kind]:
                name = pattern.format(snap=self.snapnum, old=old)
                p = Path(self.root) / folder / name
                if p.exists():
                    return p
                chunk0 = p.with_name(name.replace(".hdf5", ".0.hdf5"))
                if chunk0.exists():
                    return chunk0
        return self.path(kind, sim, dm_only)


def snapshot_files(path: Path) -> list[Path]:
    """All files of a snapshot that may be split as name.0.hdf5, name.1.hdf5, ..."""
    m = re.match(r"(.*)\.0\.hdf5$", path.name)
    if not m:
        return [path]
    files = sorted(path.parent.glob(f"{m.group(1)}.*.hdf5"), key=lambda p: int(p.name.split(".")[-2]))
    return files


def _header(f, path, need=("BoxSize", "Redshift", "HubbleParam")) -> dict:
    if "Header" not in f:
        raise InputError(path, "no 'Header' group: not a Gadget/AREPO snapshot or catalogue")
    attrs = {k: (v.item() if hasattr(v, "item") and np.ndim(v) == 0 else v) for k, v in f["Header"].attrs.items()}
    missing = [k for k in need if k not in attrs]
    if missing:
        raise InputError(path, f"Header lacks attribute(s) {missing}")
    return attrs


def check_header(path, header: dict, box_size: float | None, redshift: float | None) -> None:
    """Compare the header's box size (ckpc/h) and redshift with the config (Mpc/h, z)."""
    if box_size is not None:
        have = float(header["BoxSize"]) / 1000.0
        if not np.isclose(have, box_size, rtol=1e-4):
            raise InputError(
                path,
                f"box size is {have:g} Mpc/h (Header/BoxSize = {header['BoxSize']} ckpc/h), "
                f"the config expects {box_size:g} Mpc/h",
            )
    if redshift is not None:
        have = float(header["Redshift"])
        if abs(have - redshift) > 1e-3 * (1 + redshift):
            raise InputError(path, f"redshift is {have:g}, the config expects {redshift:g}")


def _import_blosc_filters() -> None:
    """CAMELS DM-only snapshots use Blosc compression, which needs hdf5plugin's filters."""
    try:
        import hdf5plugin  # noqa: F401
    except ImportError:  # only needed for compressed files; reading raises clearly below
        pass


#: positions may lie outside [0, BoxSize) by this fraction of BoxSize (float32 rounding of
#: coordinates near BoxSize is ~1e-7 of it; a cell of the paper's grid is 4e-3 of it)
BOX_TOLERANCE = 1e-5


def check_inside_box(path, group: str, positions: np.ndarray, box_size: float) -> None:
    """Positions (N, 3) in Mpc/h must lie in [0, box_size) up to ``BOX_TOLERANCE`` x box_size
    (those within it are wrapped by the CIC painters); farther out means a corrupt or
    mislabelled file: an InputError naming the particle type, how many and the worst value."""
    tol = BOX_TOLERANCE * box_size
    outside = np.maximum(-positions, positions - box_size)  # > 0 outside [0, box_size]
    bad = (outside > tol).any(axis=1)
    if bad.any():
        worst = positions.reshape(-1)[int(np.argmax(outside))]
        raise InputError(
            path,
            f"{int(bad.sum())} of {len(positions)} {group} positions lie outside the box [0, {box_size:g}) Mpc/h "
            f"by more than {tol:.2g} Mpc/h (the worst at {worst:.6g} Mpc/h); the file is corrupt or not of this box",
        )


def read_snapshot(
    path,
    part_type: int,
    fields: list[str],
    box_size: float | None = None,
    redshift: float | None = None,
) -> tuple[dict[str, np.ndarray], dict]:
    """Read ``PartType<part_type>/<field>`` datasets of a (possibly chunked) snapshot.

    Coordinates come back in Mpc/h (float64), masses in 1e10 Msun/h; a ``Masses`` field
    missing for DM is filled from ``Header/MassTable``. Checks box size and redshift against
    the config, and that every requested field exists and is finite.
    """
    _import_blosc_filters()
    path = Path(path)
    files = snapshot_files(path)
    out: dict[str, list] = {name: [] for name in fields}
    header: dict = {}
    group = f"PartType{part_type}"
    for file in files:
        with open_hdf5(file, "snapshot") as f:
            hdr = _header(f, file)
            if not header:
                header = hdr
                check_header(file, hdr, box_size, redshift)
            n_this = int(np.asarray(hdr.get("NumPart_ThisFile", [1] * 6))[part_type])
            if n_this == 0:
                continue
            if group not in f:
                raise InputError(file, f"no '{group}' group (expected particles of type {part_type})")
            for name in fields:
                if name in f[group]:
                    try:
                        out[name].append(f[group][name][...])
                    except OSError as err:
                        raise InputError(
                            file,
                            f"dataset '{group}/{name}' cannot be read ({err}); "
                            "truncated file, or a compressed file without hdf5plugin",
                        ) from err
                elif name == "Masses" and "MassTable" in hdr and float(hdr["MassTable"][part_type]) > 0:
                    out[name].append(np.full(n_this, float(hdr["MassTable"][part_type]), dtype=np.float64))
                else:
                    raise InputError(file, f"missing dataset '{group}/{name}' (it has {sorted(f[group].keys())})")
    if not header:
        raise InputError(path, "no snapshot files found")
    data = {}
    for name, parts in out.items():
        if not parts:
            raise InputError(path, f"no particles of type {part_type} (field '{name}')")
        arr = np.concatenate(parts)
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise InputError(path, f"dataset '{group}/{name}' contains NaN or Inf")
        if name == "Coordinates":
            arr = arr.astype(np.float64) / 1000.0  # ckpc/h -> Mpc/h
            check_inside_box(path, group, arr, float(header["BoxSize"]) / 1000.0)
        data[name] = arr
    return data, header


def read_catalogue(
    path,
    position: str = "SubhaloCM",
    mass: str = "SubhaloMass",
    box_size: float | None = None,
    redshift: float | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Halo positions (Mpc/h) and masses (1e10 Msun/h) from a SUBFIND/FoF catalogue.

    ``position``/``mass`` name the datasets (``GroupPos``/``SubhaloCM``,
    ``GroupMass``/``Group_M_Crit200``/``SubhaloMass``); the group (Group or Subhalo) is
    taken from the name.
    """
    for name in (position, mass):
        if not name.startswith(("Group", "Subhalo")):
            raise InputError(name, "halo position/mass dataset must be a Group* or Subhalo* field")
    path = Path(path)
    pos_parts, mass_parts = [], []
    header: dict = {}
    for file in snapshot_files(path):
        with open_hdf5(file, "group catalogue") as f:
            hdr = _header(f, file, need=("BoxSize", "Redshift"))
            if not header:
                header = hdr
                check_header(file, hdr, box_size, redshift)
            for name, parts in ((position, pos_parts), (mass, mass_parts)):
                grp = "Group" if name.startswith("Group") else "Subhalo"
                count_key = "Ngroups_ThisFile" if grp == "Group" else "Nsubgroups_ThisFile"
                if int(hdr.get(count_key, 1)) == 0 and grp not in f:
                    continue
                if grp not in f or name not in f[grp]:
                    have = sorted(f[grp].keys()) if grp in f else []
                    raise InputError(file, f"missing dataset '{grp}/{name}' in the group catalogue (it has {have})")
                parts.append(f[grp][name][...])
    if not pos_parts:
        raise InputError(path, f"the group catalogue holds no halos (no '{position}' entries): expected at least one")
    pos = np.concatenate(pos_parts).astype(np.float64) / 1000.0
    m = np.concatenate(mass_parts).astype(np.float64)
    if len(pos) == 0:
        raise InputError(path, f"the group catalogue holds no halos ('{position}' is empty): expected at least one")
    for name, arr in ((position, pos), (mass, m)):
        if not np.isfinite(arr).all():
            raise InputError(path, f"dataset '{name}' contains NaN or Inf")
    return pos, m, header


# ----------------------------------------------------------------------------- download
def download(
    url: str, dest, expected_size: int | None = None, sha256: str | None = None, retries: int = 3, timeout: float = 60.0
) -> Path:
    """Download ``url`` to ``dest``, resuming a partial ``dest.part`` with an HTTP Range
    request; checks the size (Content-Length or ``expected_size``) and, when given, the
    SHA-256; renames into place only when complete."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    total = expected_size
    for attempt in range(1, retries + 1):
        have = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                length = response.headers.get("Content-Length")
                if response.status == 206:
                    rng = response.headers.get("Content-Range", "")
                    total = int(rng.split("/")[-1]) if "/" in rng else total
                    mode = "ab"
                else:  # server ignored the range: start over
                    total = int(length) if length else total
                    mode = "wb"
                with open(part, mode) as out:
                    while chunk := response.read(1 << 22):
                        out.write(chunk)
            break
        except urllib.error.HTTPError as err:
            if err.code == 416 and total is not None and have == total:  # already complete
                break
            raise InputError(url, f"HTTP error {err.code} ({err.reason}) while downloading") from err
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
            if attempt == retries:
                raise InputError(
                    url,
                    f"cannot reach the CAMELS file server ({err}); are you offline? "
                    f"A partial download is kept in {part} and resumes on the next run",
                ) from err
            log.warning("download of %s failed (%s); retrying (%d/%d)", url, err, attempt, retries)
            time.sleep(2 * attempt)
    size = part.stat().st_size
    if total is not None and size != total:
        raise InputError(dest, f"download incomplete: {size} of {total} bytes; rerun to resume")
    if sha256:
        digest = hashlib.sha256()
        with open(part, "rb") as f:
            while chunk := f.read(1 << 24):
                digest.update(chunk)
        if digest.hexdigest() != sha256.lower():
            part.unlink()
            raise InputError(
                dest, f"SHA-256 mismatch: got {digest.hexdigest()}, expected {sha256}; the partial file was removed"
            )
    os.replace(part, dest)
    return dest


def read_box_size(path) -> float:
    """Box side in Mpc/h from a snapshot's header (Header/BoxSize is in ckpc/h)."""
    path = Path(path)
    with open_hdf5(snapshot_files(path)[0], "snapshot") as f:
        return float(_header(f, path)["BoxSize"]) / 1000.0


def read_particles(
    snapshot_path, box_size: float, redshift: float | None = None, lattice_stride: int = 1
) -> np.ndarray:
    """DM particle positions (N, 3) in Mpc/h (float32) of a snapshot (PartType1).

    ``lattice_stride`` s > 1 keeps the Lagrangian sub-lattice of every s-th particle along each
    axis, N / s^3 particles of s^3 times the mass: ``ParticleIDs`` must number an n^3 initial
    lattice (``min + (i n + j) n + k``, as N-GenIC / 2LPTic and the synthetic generator
    write them; any axis order selects the same sub-lattice) with n divisible by s."""
    fields = ["Coordinates", "ParticleIDs"] if lattice_stride != 1 else ["Coordinates"]
    data, _ = read_snapshot(snapshot_path, 1, fields, box_size, redshift)
    positions = data["Coordinates"]
    if lattice_stride != 1:
        positions = positions[lattice_subset(data["ParticleIDs"], lattice_stride, snapshot_path)]
    return np.asarray(positions, dtype=np.float32)


def lattice_subset(ids: np.ndarray, stride: int, path) -> np.ndarray:
    """Mask of the particles on every ``stride``-th point of the initial lattice along each
    axis, from IDs that number an n^3 lattice (see :func:`read_particles`)."""
    if stride < 1:
        raise ValueError(f"lattice stride must be >= 1, got {stride}")
    n_part = len(ids)
    n = round(n_part ** (1 / 3))
    field = "PartType1/ParticleIDs"
    if n**3 != n_part or n % stride:
        raise InputError(
            path, f"'{field}': {n_part} particles are not an n^3 lattice with n divisible by the stride {stride}"
        )
    index = ids.astype(np.int64) - int(ids.min())
    if int(index.max()) != n_part - 1 or np.bincount(index, minlength=n_part).max() != 1:
        raise InputError(
            path,
            f"'{field}' are not the consecutive numbers of an initial lattice (min + 0 .. n^3 - 1 once each), "
            f"so the sub-lattice of stride {stride} cannot be chosen; use a stride of 1",
        )
    i, j, k = index // (n * n), (index // n) % n, index % n
    return (i % stride == 0) & (j % stride == 0) & (k % stride == 0)

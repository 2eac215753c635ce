"""Compare two results folders bit for bit: every HDF5 dataset (grids, HALOgen's halos,
generated volumes, baselines) and every tensor of every checkpoint and model file.

    python scripts/compare_results.py RESULTS_A RESULTS_B

The check behind a refactoring that must not change behaviour: run the same config with the
same seeds and threads into two folders (e.g. `snakemake --cores 2 all --config
results=results_before` on the old tree, `results=results_after` on the new one) and compare.
Attributes and non-tensor metadata (code version, paths, config dicts) are listed when they
differ but do not fail the comparison. Exit status 1 when any data differs or a file exists in
one folder only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import h5py
import numpy as np
import torch

DATA_SUFFIXES = (".h5", ".hdf5")
CHECKPOINT_SUFFIXES = (".pt",)


def _tensors(obj, prefix=""):
    """Flatten the tensors (and numpy arrays) of a nested checkpoint: path -> tensor."""
    out, meta = {}, {}
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, np.ndarray):
        out[prefix] = torch.from_numpy(obj)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            t, m = _tensors(v, f"{prefix}/{k}")
            out.update(t)
            meta.update(m)
    elif isinstance(obj, (list, tuple)) and any(isinstance(v, (torch.Tensor, dict, list, tuple)) for v in obj):
        for i, v in enumerate(obj):
            t, m = _tensors(v, f"{prefix}[{i}]")
            out.update(t)
            meta.update(m)
    else:
        meta[prefix] = obj
    return out, meta


def _datasets(f: h5py.File) -> set[str]:
    names = set()
    f.visititems(lambda name, obj: names.add(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def compare_hdf5(a: Path, b: Path) -> tuple[list[str], list[str]]:
    """(data differences, attribute differences) of two HDF5 files (every dataset, in groups too)."""
    diffs, notes = [], []
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        names_a, names_b = _datasets(fa), _datasets(fb)
        if names_a != names_b:
            diffs.append(f"datasets differ: {sorted(names_a ^ names_b)}")
        for name in sorted(names_a & names_b):
            x, y = fa[name][...], fb[name][...]
            if x.shape != y.shape or x.dtype != y.dtype:
                diffs.append(f"{name}: {x.shape} {x.dtype} vs {y.shape} {y.dtype}")
            elif not np.array_equal(x, y, equal_nan=True) or x.tobytes() != y.tobytes():
                n = int(np.sum(x != y))
                worst = np.nanmax(np.abs(x.astype(float) - y.astype(float)))
                diffs.append(f"{name}: {n} of {x.size} values differ (max |diff| {worst:.3g})")
        for key in sorted(set(fa.attrs) | set(fb.attrs)):
            va, vb = fa.attrs.get(key), fb.attrs.get(key)
            if not np.array_equal(np.asarray(va, dtype=object), np.asarray(vb, dtype=object)):
                notes.append(f"attribute {key}")
    return diffs, notes


def compare_checkpoint(a: Path, b: Path) -> tuple[list[str], list[str]]:
    """(tensor differences, metadata differences) of two torch checkpoints."""
    ta, ma = _tensors(torch.load(a, map_location="cpu", weights_only=False))
    tb, mb = _tensors(torch.load(b, map_location="cpu", weights_only=False))
    diffs = [f"tensors only in one file: {sorted(set(ta) ^ set(tb))[:5]}"] if set(ta) != set(tb) else []
    for key in sorted(set(ta) & set(tb)):
        x, y = ta[key], tb[key]
        if x.shape != y.shape or x.dtype != y.dtype or not torch.equal(x, y):
            diffs.append(f"{key}: differs")
    notes = [f"metadata {k}" for k in sorted(set(ma) | set(mb)) if ma.get(k, "<absent>") != mb.get(k, "<absent>")]
    return diffs, notes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--quiet", action="store_true", help="do not list attribute and metadata differences")
    args = parser.parse_args(argv)

    def files(root):
        return {
            p.relative_to(root)
            for p in root.rglob("*")
            if p.is_file() and p.suffix in DATA_SUFFIXES + CHECKPOINT_SUFFIXES
        }

    fa, fb = files(args.a), files(args.b)
    failed = False
    for rel in sorted(fa ^ fb):
        print(f"ONLY IN {'A' if rel in fa else 'B'}: {rel}")
        failed = True
    same = 0
    for rel in sorted(fa & fb):
        compare = compare_checkpoint if rel.suffix in CHECKPOINT_SUFFIXES else compare_hdf5
        diffs, notes = compare(args.a / rel, args.b / rel)
        if diffs:
            failed = True
            print(f"DIFFERS: {rel}")
            for d in diffs[:10]:
                print(f"    {d}")
        else:
            same += 1
            if notes and not args.quiet:
                print(f"same data: {rel} ({', '.join(notes[:6])}{' ...' if len(notes) > 6 else ''} differ)")
    print(f"{same} of {len(fa | fb)} files have identical data")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

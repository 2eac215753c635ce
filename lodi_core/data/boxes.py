"""The geometry of boxes in a volume (Sec. 2.4): box origins along an axis, the box grid, the
eight parity stages, non-overlapping tilings and the planes where boxes start or end, and the
balanced split of items over shards or training ranks. Index arithmetic only: generation,
training, metrics and figures share it."""

from __future__ import annotations

import math

import numpy as np
import torch

#: parity classes of the box indices in the paper's order: all even; one odd axis (x, y, z);
#: two odd axes; all odd
STAGE_PARITIES = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1)]


def shard_slice(n_items: int, shard: int, n_shards: int) -> range:
    """The items of shard ``shard`` (0-based) of ``n_shards``: contiguous, balanced to one item.
    A stage's boxes over its shard jobs (each then goes through the network in micro-batches
    of its own: sharding the boxes, not the micro-batches, keeps every shard busy when a stage
    fits in a few batches), and a batch or the validation boxes over data-parallel ranks."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} out of range for {n_shards} shards")
    return range(shard * n_items // n_shards, (shard + 1) * n_items // n_shards)


def box_origins(n_voxels: int, box: int, overlap: int, periodic: bool = False) -> list[int]:
    """Box origins along one axis: neighbours overlap by at least ``overlap`` voxels and
    boxes two apart (same stage) do not overlap. Non-periodic boxes are spread evenly over
    [0, n_voxels - box]; periodic boxes wrap around (an even number of them).
    Raises ValueError when no such arrangement exists."""
    if box < 1 or overlap < 0 or overlap >= box:
        raise ValueError(f"need box >= 1 and 0 <= overlap < box, got box={box}, overlap={overlap}")
    if n_voxels < box:
        raise ValueError(
            f"volume of {n_voxels} voxels per side is smaller than the box ({box}); the box grid cannot cover it"
        )
    step = box - overlap
    if periodic:
        n = max(2, math.ceil(n_voxels / step))
        n += n % 2  # parity classes must alternate around the torus
        origins = [round(i * n_voxels / n) for i in range(n)]
        spacings = np.diff(origins + [origins[0] + n_voxels])
    else:
        if n_voxels == box:
            return [0]
        n = math.ceil((n_voxels - box) / step) + 1
        origins = [round(i * (n_voxels - box) / (n - 1)) for i in range(n)]
        spacings = np.diff(origins)
    if spacings.max() > step:
        raise ValueError(f"box grid: neighbours would overlap by only {box - spacings.max()} < {overlap} voxels")
    if len(origins) >= 3 and (spacings[:-1] + spacings[1:]).min() < box:
        raise ValueError(
            f"a volume of {n_voxels} voxels cannot be covered by boxes of {box} with overlap {overlap}: "
            f"boxes of the same stage would overlap (spacing {spacings.min()} < box/2); "
            "change generation.overlap or the box size"
        )
    return origins


def box_grid(n_voxels: int, box: int, overlap: int, periodic: bool = False) -> dict[tuple, tuple]:
    """Box index (i, j, k) -> origin (x, y, z) in voxels."""
    axis = box_origins(n_voxels, box, overlap, periodic)
    return {
        (i, j, k): (axis[i], axis[j], axis[k])
        for i in range(len(axis))
        for j in range(len(axis))
        for k in range(len(axis))
    }


def stage_indices(n_voxels: int, box: int, overlap: int, periodic: bool = False) -> list[list[tuple]]:
    """The eight stages as lists of box indices (parity classes in the paper's order)."""
    grid = box_grid(n_voxels, box, overlap, periodic)
    return [[idx for idx in sorted(grid) if tuple(v % 2 for v in idx) == parity] for parity in STAGE_PARITIES]


def stage_schedule(n_voxels: int, box: int, overlap: int, periodic: bool = False) -> list[list[tuple]]:
    """The eight stages, each a list of box origins in voxels (paper: N = 256, b = 32,
    o = 4 gives [125, 100, 100, 100, 80, 80, 80, 64] boxes)."""
    grid = box_grid(n_voxels, box, overlap, periodic)
    return [[grid[idx] for idx in stage] for stage in stage_indices(n_voxels, box, overlap, periodic)]


def box_index_arrays(origin, box: int, n_voxels: int, device=None):
    """Index arrays of a (possibly wrapping) box, for gather and scatter."""
    return torch.meshgrid(*[torch.arange(o, o + box, device=device) % n_voxels for o in origin], indexing="ij")


def tiling_origins(n_voxels: int, box: int, step: int | None = None) -> list[tuple]:
    """Non-overlapping boxes (the last one pushed to the end when box does not divide N), or,
    with ``step``, boxes every ``step`` voxels (LODI's candidate lattice), the last likewise."""
    axis = list(range(0, n_voxels - box + 1, step or box))
    if axis[-1] != n_voxels - box:
        axis.append(n_voxels - box)
    return [(x, y, z) for x in axis for y in axis for z in axis]


def box_edge_planes(origins_axis: list[int], box: int, n_voxels: int) -> list[int]:
    """Plane positions p (between voxels p-1 and p) where a box starts or ends, inside (0, N)."""
    edges = set()
    for o in origins_axis:
        for p in (o % n_voxels, (o + box) % n_voxels):
            if 0 < p < n_voxels:
                edges.add(p)
    return sorted(edges)

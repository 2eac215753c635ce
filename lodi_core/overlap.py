"""Generation of whole volumes from boxes (Sec. 2.4): the box grid, the 8-stage parity
schedule, latent overlap (Algorithm 1), the tiling and averaging baselines, and a seam
metric.

Latent overlap: boxes of one stage are disjoint and are sampled together; each box's known
region is the union of its overlaps with boxes of earlier stages. At every reverse step the
known region is replaced by alpha_t x0_known + sigma_t eps (eps drawn once per box) and the
sampler's step is applied to the whole box (the paper's mask equation has the roles of the
two boxes swapped: the overlap must take the already generated box's re-noised values).
Every random draw of a box comes from its own generator, seeded by (seed, simulation, box
index), and boxes go through the network in fixed micro-batches, so any split of a stage
into shards gives exactly the same volume as one in-process call.
"""

from __future__ import annotations

import logging
import math
import zlib
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

#: parity classes of the box indices in the paper's order: all even; one odd axis (x, y, z);
#: two odd axes; all odd
STAGE_PARITIES = [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1)]


def box_origins(n_voxels: int, box: int, overlap: int, periodic: bool = False) -> list[int]:
    """Box origins along one axis: neighbours overlap by at least ``overlap`` voxels and
    boxes two apart (same stage) do not overlap. Non-periodic boxes are spread evenly over
    [0, n_voxels - box]; periodic boxes wrap around (an even number of them).
    Raises ValueError when no such arrangement exists."""
    if box < 1 or overlap < 0 or overlap >= box:
        raise ValueError(f"need box >= 1 and 0 <= overlap < box, got box={box}, overlap={overlap}")
    if n_voxels < box:
        raise ValueError(f"volume of {n_voxels} voxels per side is smaller than the box ({box}); the box grid cannot cover it")
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
            f"boxes of the same stage would overlap (spacing {spacings.min()} < box/2); change generation.overlap or the box size"
        )
    return origins


def box_grid(n_voxels: int, box: int, overlap: int, periodic: bool = False) -> dict[tuple, tuple]:
    """Box index (i, j, k) -> origin (x, y, z) in voxels."""
    axis = box_origins(n_voxels, box, overlap, periodic)
    return {(i, j, k): (axis[i], axis[j], axis[k]) for i in range(len(axis)) for j in range(len(axis)) for k in range(len(axis))}


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


def tiling_origins(n_voxels: int, box: int) -> list[tuple]:
    """Non-overlapping boxes (the last one pushed to the end when box does not divide N)."""
    axis = list(range(0, n_voxels - box + 1, box))
    if axis[-1] != n_voxels - box:
        axis.append(n_voxels - box)
    return [(x, y, z) for x in axis for y in axis for z in axis]


# ----------------------------------------------------------------------------- state
@dataclass
class VolumeState:
    """The partially generated volume: normalised x_0 and which voxels are known."""

    x0: torch.Tensor  # (N, N, N)
    known: torch.Tensor  # (N, N, N) bool
    stage: int = 0

    @classmethod
    def empty(cls, n_voxels: int, device=None) -> "VolumeState":
        return cls(torch.zeros((n_voxels,) * 3, device=device), torch.zeros((n_voxels,) * 3, dtype=torch.bool, device=device))


def box_key(seed: int, simulation: str, index: tuple, method: str = "latent_overlap") -> int:
    """Seed of one box's generator: a stable function of (seed, simulation, method, box)."""
    text = f"{seed}|{simulation}|{method}|{index}"
    return zlib.crc32(text.encode()) + (int(seed) << 32)


def micro_batches(items: list, batch_size: int) -> list[list]:
    return [items[i : i + batch_size] for i in range(0, len(items), batch_size)]


def shard_slice(n_boxes: int, shard: int, n_shards: int) -> range:
    """The boxes of shard ``shard`` (0-based) of ``n_shards``: contiguous, balanced to one box
    (the shard then goes through the network in micro-batches of its own). Sharding the
    boxes, not the micro-batches, keeps every shard busy when a stage fits in a few batches."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} out of range for {n_shards} shards")
    return range(shard * n_boxes // n_shards, (shard + 1) * n_boxes // n_shards)


# ----------------------------------------------------------------------------- sampling
def _renoise(sampler, z, i_from: int, i_to: int, noise):
    """Forward q(z_t | z_s) from t_{i_from} to the noisier t_{i_to} (RePaint resampling)."""
    a_s, a_t = sampler.alpha(i_from), sampler.alpha(i_to)
    ratio2 = (a_t / a_s) ** 2
    return torch.sqrt(ratio2) * z + torch.sqrt(1 - ratio2) * noise


@torch.no_grad()
def sample_boxes(sampler, cond: torch.Tensor, known: torch.Tensor, x0_known: torch.Tensor, keys: list[int], resample: int = 0, record=None) -> torch.Tensor:
    """Latent overlap (Algorithm 1) for a batch of boxes: cond (B, C, b, b, b) normalised
    halo channels, known (B, 1, b, b, b) bool, x0_known the known normalised values. Returns
    x_0 (B, 1, b, b, b) equal to ``x0_known`` wherever known. ``resample`` > 0 adds RePaint
    resampling (jump back one step ``resample`` times per step; beyond the paper).
    ``record(i, z_t)`` sees the latent entering each reverse step (after the known region
    was imposed), for figures."""
    device = sampler.device
    gens = [torch.Generator(device=device).manual_seed(k) for k in keys]
    shape = (1, 1, *cond.shape[-3:])

    def draw():
        return torch.cat([torch.randn(shape, generator=g, device=device) for g in gens])

    z = draw()  # z_T ~ N(0, 1)
    eps_known = draw()  # drawn once per box (Algorithm 1, line 2)
    has_known = bool(known.any())
    for i in range(sampler.T, 0, -1):
        for r in range(resample + 1):
            if has_known:
                z = torch.where(known, sampler.alpha(i) * x0_known + sampler.sigma(i) * eps_known, z)
            if record is not None and r == 0:
                record(i, z)
            z = sampler.step(z, i, cond, draw())
            if r < resample:
                z = _renoise(sampler, z, i - 1, i, draw())
    x0 = z / sampler.alpha(0)
    return torch.where(known, x0_known, x0) if has_known else x0


def sample_stage_shard(
    sampler,
    state: VolumeState,
    cond_volume: torch.Tensor,
    stage_boxes: list[tuple],
    box: int,
    seed: int,
    simulation: str,
    shard: int = 0,
    n_shards: int = 1,
    batch_size: int = 32,
    resample: int = 0,
    method: str = "latent_overlap",
    progress: bool = False,
) -> tuple[list[tuple], torch.Tensor]:
    """Sample this shard's boxes of one stage, conditioned on ``state``; returns the box
    indices and origins handled and their x_0 (n, b, b, b). Boxes are identified by
    (index, origin) pairs in ``stage_boxes``."""
    n = cond_volume.shape[-1]
    mine = micro_batches([stage_boxes[i] for i in shard_slice(len(stage_boxes), shard, n_shards)], batch_size)
    done, outputs = [], []
    for batch in tqdm(mine, desc=f"{method} stage {state.stage + 1} shard {shard + 1}/{n_shards}", disable=not progress):
        idx = [box_index_arrays(origin, box, n, cond_volume.device) for _, origin in batch]
        cond = torch.stack([cond_volume[(slice(None), *ix)] for ix in idx])
        known = torch.stack([state.known[ix] for ix in idx]).unsqueeze(1)
        x0k = torch.stack([state.x0[ix] for ix in idx]).unsqueeze(1)
        keys = [box_key(seed, simulation, index, method) for index, _ in batch]
        outputs.append(sample_boxes(sampler, cond, known, x0k, keys, resample)[:, 0])
        done += batch
    x0 = torch.cat(outputs) if outputs else torch.zeros((0, box, box, box), device=cond_volume.device)
    return done, x0


@torch.no_grad()
def pair_trajectory(sampler, cond_volume: torch.Tensor, origin_a: tuple, axis: int, box: int, overlap: int, seed: int) -> dict:
    """Fig. 6: box A sampled alone, then its neighbour B along ``axis`` (overlapping by
    ``overlap`` voxels) with latent overlap and, for comparison, independently (tiling).
    Returns the normalised latents z_t of both variants of B at every step (B, keyed by
    step i = T..1), the final x_0 of A and of both Bs, and B's origin."""
    n = cond_volume.shape[-1]
    origin_b = tuple(o + (box - overlap if a == axis else 0) for a, o in enumerate(origin_a))

    def box_cond(origin):
        return cond_volume[(slice(None), *box_index_arrays(origin, box, n, cond_volume.device))].unsqueeze(0)

    empty = torch.zeros((1, 1, box, box, box), dtype=torch.bool, device=cond_volume.device)
    zeros = torch.zeros((1, 1, box, box, box), device=cond_volume.device)
    x_a = sample_boxes(sampler, box_cond(origin_a), empty, zeros, [box_key(seed, "pair", origin_a)])
    known = empty.clone()
    x0_known = zeros.clone()
    sl = [slice(None)] * 5
    sl[2 + axis] = slice(0, overlap)
    src = [slice(None)] * 5
    src[2 + axis] = slice(box - overlap, box)
    known[tuple(sl)] = True
    x0_known[tuple(sl)] = x_a[tuple(src)]
    out = {"origin_b": origin_b, "x0_a": x_a[0, 0].cpu(), "latent_overlap": {}, "tiling": {}}
    key_b = box_key(seed, "pair", origin_b)
    x_lo = sample_boxes(sampler, box_cond(origin_b), known, x0_known, [key_b], record=lambda i, z: out["latent_overlap"].__setitem__(i, z[0, 0].cpu()))
    x_ti = sample_boxes(sampler, box_cond(origin_b), empty, zeros, [key_b], record=lambda i, z: out["tiling"].__setitem__(i, z[0, 0].cpu()))
    out["x0_latent_overlap"], out["x0_tiling"] = x_lo[0, 0].cpu(), x_ti[0, 0].cpu()
    return out


def merge_boxes(state: VolumeState, boxes: list[tuple], x0: torch.Tensor, box: int) -> VolumeState:
    """Write each box's values into the voxels not yet known (known values never change),
    then mark the boxes' voxels known; advances the stage counter."""
    n = state.x0.shape[-1]
    new_known = state.known.clone()
    x = state.x0.clone()
    for (_, origin), values in zip(boxes, x0):
        ix = box_index_arrays(origin, box, n, x.device)
        unknown = ~state.known[ix]
        region = x[ix]
        region[unknown] = values.to(x.dtype)[unknown]
        x[ix] = region
        new_known[ix] = True
    return VolumeState(x, new_known, state.stage + 1)


def generate_independent(sampler, cond_volume, seed, simulation, origins: list[tuple], box: int, method: str, combine: str, batch_size=32, progress=False) -> torch.Tensor:
    """Baselines from independent boxes: ``combine='first'`` keeps the first box's values
    where boxes overlap (tiling); ``'mean'`` averages overlaps (averaging)."""
    n = cond_volume.shape[-1]
    state = VolumeState.empty(n, cond_volume.device)
    boxes = [(o, o) for o in origins]
    _, x0 = sample_stage_shard(sampler, state, cond_volume, boxes, box, seed, simulation, 0, 1, batch_size, method=method, progress=progress)
    if combine == "first":
        return merge_boxes(state, boxes, x0, box).x0
    total = torch.zeros((n,) * 3, dtype=torch.float64, device=cond_volume.device)
    count = torch.zeros_like(total)
    for (_, origin), values in zip(boxes, x0):
        ix = box_index_arrays(origin, box, n, total.device)
        total.index_put_(ix, values.double(), accumulate=True)
        count.index_put_(ix, torch.ones_like(values, dtype=torch.float64), accumulate=True)
    return (total / count).float()


# ----------------------------------------------------------------------------- seams
def box_edge_planes(origins_axis: list[int], box: int, n_voxels: int) -> list[int]:
    """Plane positions p (between voxels p-1 and p) where a box starts or ends, inside (0, N)."""
    edges = set()
    for o in origins_axis:
        for p in (o % n_voxels, (o + box) % n_voxels):
            if 0 < p < n_voxels:
                edges.add(p)
    return sorted(edges)


def seam_metric(field, origins_axis: list[int], box: int) -> float:
    """Mean squared difference across box-edge planes over the same across all other
    planes, along the three axes (1 for a seamless field; > 1 when the boxes show)."""
    f = torch.as_tensor(field, dtype=torch.float64)
    n = f.shape[-1]
    edges = box_edge_planes(origins_axis, box, n)
    interior = [p for p in range(1, n) if p not in edges]
    if not edges or not interior:
        return float("nan")
    num = den = 0.0
    for axis in range(3):
        d2 = (f.narrow(axis, 1, n - 1) - f.narrow(axis, 0, n - 1)) ** 2  # plane p-1 -> p at index p-1
        other = tuple(a for a in range(3) if a != axis)
        per_plane = d2.mean(dim=other)
        num += float(per_plane[[p - 1 for p in edges]].mean())
        den += float(per_plane[[p - 1 for p in interior]].mean())
    return num / den


def seam_excess_power(field, target, spacing: float, box_size: float, harmonics: int = 2) -> float:
    """Power of the plane-averaged profiles at the seam wavenumbers k = 2 pi m / spacing
    (spacing in Mpc/h, m = 1..harmonics), generated over target, minus 1, averaged over the
    three axes and the harmonics (0 when the boxes leave no periodic imprint)."""
    f = torch.as_tensor(field, dtype=torch.float64)
    t = torch.as_tensor(target, dtype=torch.float64)
    n = f.shape[-1]
    ratios = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        pf = torch.fft.rfft(f.mean(dim=other) / f.mean())
        pt = torch.fft.rfft(t.mean(dim=other) / t.mean())
        for m in range(1, harmonics + 1):
            j = int(round(m * box_size / spacing))
            if 0 < j <= n // 2 and float(pt[j].abs()) > 0:
                ratios.append(float(pf[j].abs() ** 2 / pt[j].abs() ** 2) - 1.0)
    return float(np.mean(ratios)) if ratios else float("nan")

"""Generation of whole volumes from boxes (Sec. 2.4): latent overlap (Algorithm 1) stage by
stage on the box grid of :mod:`lodi_core.data.boxes`, and the tiling and averaging baselines.

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
import zlib
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..data.boxes import box_index_arrays, shard_slice
from ..models.lodi import BoxSampler, box_noise
from ..models.vdm import alpha, sigma

log = logging.getLogger(__name__)


@dataclass
class VolumeState:
    """The partially generated volume: normalised x_0 and which voxels are known."""

    x0: torch.Tensor  # (N, N, N)
    known: torch.Tensor  # (N, N, N) bool
    stage: int = 0

    @classmethod
    def empty(cls, n_voxels: int, device=None) -> VolumeState:
        return cls(
            torch.zeros((n_voxels,) * 3, device=device), torch.zeros((n_voxels,) * 3, dtype=torch.bool, device=device)
        )


def box_key(seed: int, simulation: str, index: tuple, method: str = "latent_overlap") -> int:
    """Seed of one box's generator: a stable function of (seed, simulation, method, box)."""
    text = f"{seed}|{simulation}|{method}|{index}"
    return zlib.crc32(text.encode()) + (int(seed) << 32)


def micro_batches(items: list, batch_size: int) -> list[list]:
    return [items[i : i + batch_size] for i in range(0, len(items), batch_size)]


# ----------------------------------------------------------------------------- sampling
@torch.no_grad()
def sample_boxes(
    sampler: BoxSampler,
    cond: torch.Tensor,
    known: torch.Tensor,
    x0_known: torch.Tensor,
    keys: list[int],
    resample: int = 0,
    record=None,
) -> torch.Tensor:
    """Latent overlap (Algorithm 1) for a batch of boxes: cond (B, C, b, b, b) normalised
    halo channels, known (B, 1, b, b, b) bool, x0_known the known normalised values. Returns
    x_0 (B, 1, b, b, b) equal to ``x0_known`` wherever known. It is the sampler's one reverse
    loop with an impose-the-known-region hook: before every step the known region becomes
    alpha_t x0_known + sigma_t eps_known. ``resample`` > 0 adds RePaint resampling (beyond the
    paper); ``record(i, z_t)`` sees the latent entering each reverse step, for figures."""
    noise = box_noise(
        [torch.Generator(device=sampler.device).manual_seed(k) for k in keys], (1, *cond.shape[-3:]), sampler.device
    )
    z_T = noise()
    eps_known = noise()  # drawn once per box (Algorithm 1, line 2)
    if not bool(known.any()):
        return sampler.sample(cond, noise, z_T, record=record, resample=resample)
    g = sampler.gammas

    def impose(z, i):
        return torch.where(known, alpha(g[i]) * x0_known + sigma(g[i]) * eps_known, z)

    x0 = sampler.sample(cond, noise, z_T, impose=impose, record=record, resample=resample)
    return torch.where(known, x0_known, x0)


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
    for batch in tqdm(
        mine, desc=f"{method} stage {state.stage + 1} shard {shard + 1}/{n_shards}", disable=not progress
    ):
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
def pair_trajectory(
    sampler, cond_volume: torch.Tensor, origin_a: tuple, axis: int, box: int, overlap: int, seed: int
) -> dict:
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
    x_lo = sample_boxes(
        sampler,
        box_cond(origin_b),
        known,
        x0_known,
        [key_b],
        record=lambda i, z: out["latent_overlap"].__setitem__(i, z[0, 0].cpu()),
    )
    x_ti = sample_boxes(
        sampler,
        box_cond(origin_b),
        empty,
        zeros,
        [key_b],
        record=lambda i, z: out["tiling"].__setitem__(i, z[0, 0].cpu()),
    )
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


def generate_independent(
    sampler,
    cond_volume,
    seed,
    simulation,
    origins: list[tuple],
    box: int,
    method: str,
    combine: str,
    batch_size=32,
    progress=False,
) -> torch.Tensor:
    """Baselines from independent boxes: ``combine='first'`` keeps the first box's values
    where boxes overlap (tiling); ``'mean'`` averages overlaps (averaging)."""
    n = cond_volume.shape[-1]
    state = VolumeState.empty(n, cond_volume.device)
    boxes = [(o, o) for o in origins]
    _, x0 = sample_stage_shard(
        sampler, state, cond_volume, boxes, box, seed, simulation, 0, 1, batch_size, method=method, progress=progress
    )
    if combine == "first":
        return merge_boxes(state, boxes, x0, box).x0
    total = torch.zeros((n,) * 3, dtype=torch.float64, device=cond_volume.device)
    count = torch.zeros_like(total)
    for (_, origin), values in zip(boxes, x0):
        ix = box_index_arrays(origin, box, n, total.device)
        total.index_put_(ix, values.double(), accumulate=True)
        count.index_put_(ix, torch.ones_like(values, dtype=torch.float64), accumulate=True)
    return (total / count).float()

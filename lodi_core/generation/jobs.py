"""File-level generation: what each Snakemake stage job, merge job, baseline job and the
Fig. 6 pair job does, and the same chain in one process (``python -m lodi_core generate``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..config import ConfigSection
from ..data.boxes import box_grid, box_origins, stage_indices, tiling_origins
from ..data.calibration import fit_tb_calibration
from ..io import InputError, read_grids, read_hdf5, write_hdf5
from ..models.lodi import BoxSampler
from .overlap import VolumeState, generate_independent, merge_boxes, pair_trajectory, sample_stage_shard
from .volumes import volume_attrs, write_tb_volume

log = logging.getLogger(__name__)

METHODS = ("latent_overlap", "tiling", "averaging")


@dataclass(frozen=True)
class GenerationConfig(ConfigSection):
    """Config ``generation`` (the keys a generation job depends on)."""

    SECTION = "generation"

    overlap: int
    periodic: bool
    shards: int
    batch_size: int
    resample: int
    bf16: bool
    variance: str  # reverse-step variance: "posterior" (Eq. 14) or "analytic" (vdm.reverse_step)
    channels_last: bool  # channels-last-3d layout of the denoiser and its inputs
    clip: bool  # keep every step's x_hat within the training data's range (vdm.clip_prediction)
    guidance: float = 0.0  # classifier-free guidance weight (BoxSampler); 0: none (the paper)
    guidance_logsnr_max: float | None = None  # guide only steps with log-SNR <= this (BoxSampler); None: all


def load_sampler(model_path, cfg: GenerationConfig, device) -> BoxSampler:
    """A LODI model file's sampler with the generation settings: bf16, the reverse-step
    variance, the memory layout, clipping and guidance (and its interval)."""
    return BoxSampler.load(
        model_path, device, cfg.bf16, cfg.variance, cfg.channels_last, cfg.clip, cfg.guidance, cfg.guidance_logsnr_max
    )


def load_condition(sampler: BoxSampler, halos_path) -> tuple[torch.Tensor, dict]:
    """Normalised halo channels (C, N, N, N) of a grid or HALOgen file, and its attributes."""
    data, attrs = read_grids(halos_path, ("halos",))
    halos = torch.from_numpy(data["halos"]).to(sampler.device)
    n = halos.shape[-1]
    if n < sampler.meta["box"]:
        raise InputError(halos_path, f"volume of {n}^3 cells is smaller than the LODI box {sampler.meta['box']}^3")
    return sampler.condition(halos.unsqueeze(0))[0], attrs


def stage_boxes(n: int, box: int, cfg: GenerationConfig, stage: int) -> list[tuple]:
    """(index, origin) of the boxes of stage ``stage`` (1-based)."""
    grid = box_grid(n, box, cfg.overlap, cfg.periodic)
    return [(idx, grid[idx]) for idx in stage_indices(n, box, cfg.overlap, cfg.periodic)[stage - 1]]


def read_state(path, n: int, device) -> VolumeState:
    data, attrs = read_hdf5(path, ["x0", "known"], what="generation state")
    if data["x0"].shape != (n,) * 3:
        raise InputError(path, f"state volume has shape {data['x0'].shape}, expected {(n,) * 3}")
    return VolumeState(
        torch.from_numpy(data["x0"]).to(device),
        torch.from_numpy(data["known"].astype(bool)).to(device),
        int(attrs["stage"]),
    )


def write_state(path, state: VolumeState, attrs: dict) -> None:
    write_hdf5(path, {"x0": state.x0.float(), "known": state.known.to(torch.uint8)}, {**attrs, "stage": state.stage})


def run_stage_shard(
    model_path,
    halos_path,
    state_path,
    stage: int,
    shard: int,
    cfg: GenerationConfig,
    seed: int,
    simulation: str,
    out_path,
    device,
) -> None:
    """One Snakemake stage job: sample shard ``shard`` of stage ``stage`` and write the x_0
    of its boxes."""
    sampler = load_sampler(model_path, cfg, device)
    cond, _ = load_condition(sampler, halos_path)
    n, box = cond.shape[-1], int(sampler.meta["box"])
    state = read_state(state_path, n, sampler.device) if state_path else VolumeState.empty(n, sampler.device)
    if state.stage != stage - 1:
        raise InputError(
            state_path, f"state is after stage {state.stage}, stage {stage} needs the state after stage {stage - 1}"
        )
    boxes = stage_boxes(n, box, cfg, stage)
    done, x0 = sample_stage_shard(
        sampler,
        state,
        cond,
        boxes,
        box,
        seed,
        simulation,
        shard,
        cfg.shards,
        cfg.batch_size,
        cfg.resample,
        progress=True,
    )
    if not torch.isfinite(x0).all():
        raise FloatingPointError(f"stage {stage} shard {shard}: generated boxes contain non-finite values")
    write_hdf5(
        out_path,
        {
            "x0": x0.float().reshape(-1, box, box, box),
            "indices": np.asarray([i for i, _ in done], dtype=np.int64).reshape(-1, 3),
            "origins": np.asarray([o for _, o in done], dtype=np.int64).reshape(-1, 3),
        },
        {"stage": stage, "shard": shard, "shards": cfg.shards, "seed": seed, "simulation": simulation},
    )


def run_merge(state_path, shard_paths: list, stage: int, n: int, box: int, out_path, attrs: dict, device="cpu") -> int:
    """One merge job: write the state after stage ``stage`` from the previous state and the
    stage's shard files; returns the number of boxes merged."""
    state = read_state(state_path, n, device) if state_path else VolumeState.empty(n, device)
    done, values = [], []
    for path in shard_paths:
        data, a = read_hdf5(path, ["x0", "indices", "origins"], what="stage shard")
        if int(a["stage"]) != stage:
            raise InputError(path, f"shard of stage {a['stage']}, expected stage {stage}")
        done += [(tuple(i), tuple(o)) for i, o in zip(data["indices"].tolist(), data["origins"].tolist())]
        values.append(torch.from_numpy(data["x0"]).to(device))
    x0 = torch.cat(values) if values else torch.zeros((0, box, box, box), device=device)
    state = merge_boxes(state, done, x0, box)
    write_state(out_path, state, attrs)
    return len(done)


def lodi_volume_attrs(
    grid_attrs: dict, method: str, seed: int, simulation: str, model_path, halos_path, cfg: GenerationConfig, box: int
) -> dict:
    """:func:`volumes.volume_attrs` of a volume made of LODI boxes."""
    return volume_attrs(
        grid_attrs,
        method,
        seed,
        simulation,
        box=box,
        overlap=cfg.overlap,
        periodic=cfg.periodic,
        resample=cfg.resample,
        lodi_model=str(model_path),
        halos=str(halos_path),
    )


def write_volume(path, sampler: BoxSampler, x0: torch.Tensor, attrs: dict) -> None:
    """Normalised x_0 -> T_b (mK), written as a generated volume."""
    write_tb_volume(path, sampler.to_tb(x0.float()), attrs)


def run_assemble(
    model_path, halos_path, state_path, out_path, seed: int, simulation: str, cfg: GenerationConfig, device
) -> None:
    """The final latent-overlap volume from the state after stage 8."""
    sampler = load_sampler(model_path, cfg, device)
    _, grid_attrs = read_grids(halos_path, ())
    n = int(grid_attrs["n_grid"])
    state = read_state(state_path, n, sampler.device)
    if state.stage != 8 or not bool(state.known.all()):
        raise InputError(
            state_path,
            f"state after stage {state.stage} covers {float(state.known.float().mean()):.1%} of the volume; "
            "expected all 8 stages done",
        )
    write_volume(
        out_path,
        sampler,
        state.x0,
        lodi_volume_attrs(
            grid_attrs, "latent_overlap", seed, simulation, model_path, halos_path, cfg, int(sampler.meta["box"])
        ),
    )


def generate_baseline(
    sampler: BoxSampler,
    cond: torch.Tensor,
    method: str,
    seed: int,
    simulation: str,
    cfg: GenerationConfig,
    progress=False,
) -> torch.Tensor:
    """Tiling (independent non-overlapping boxes) or averaging (independent boxes on the
    latent-overlap grid, overlaps averaged)."""
    n, box = cond.shape[-1], int(sampler.meta["box"])
    if method == "tiling":
        return generate_independent(
            sampler, cond, seed, simulation, tiling_origins(n, box), box, method, "first", cfg.batch_size, progress
        )
    if method == "averaging":
        axis = box_origins(n, box, cfg.overlap, cfg.periodic)
        origins = [(x, y, z) for x in axis for y in axis for z in axis]
        return generate_independent(
            sampler, cond, seed, simulation, origins, box, method, "mean", cfg.batch_size, progress
        )
    raise ValueError(f"unknown baseline method {method!r}; expected 'tiling' or 'averaging'")


def run_baseline(
    model_path, halos_path, out_path, method: str, seed: int, simulation: str, cfg: GenerationConfig, device
) -> None:
    sampler = load_sampler(model_path, cfg, device)
    cond, grid_attrs = load_condition(sampler, halos_path)
    x0 = generate_baseline(sampler, cond, method, seed, simulation, cfg, progress=True)
    write_volume(
        out_path,
        sampler,
        x0,
        lodi_volume_attrs(grid_attrs, method, seed, simulation, model_path, halos_path, cfg, int(sampler.meta["box"])),
    )


def generate_volume(
    sampler: BoxSampler,
    cond: torch.Tensor,
    seed: int,
    simulation: str,
    cfg: GenerationConfig,
    progress=False,
    on_stage=None,
) -> VolumeState:
    """All 8 stages in one process, shard by shard exactly as the workflow splits them."""
    n, box = cond.shape[-1], int(sampler.meta["box"])
    state = VolumeState.empty(n, sampler.device)
    for stage in range(1, 9):
        boxes = stage_boxes(n, box, cfg, stage)
        done_all, x0_all = [], []
        for shard in range(cfg.shards):
            done, x0 = sample_stage_shard(
                sampler,
                state,
                cond,
                boxes,
                box,
                seed,
                simulation,
                shard,
                cfg.shards,
                cfg.batch_size,
                cfg.resample,
                progress=progress,
            )
            done_all += done
            x0_all.append(x0)
        state = merge_boxes(state, done_all, torch.cat(x0_all), box)
        if on_stage is not None:
            on_stage(state)
    return state


def generate_tb(
    sampler: BoxSampler, cond: torch.Tensor, seed: int, simulation: str, cfg: GenerationConfig
) -> np.ndarray:
    """T_b (mK) of the volume :func:`generate_volume` makes (latent overlap, all 8 stages)."""
    return sampler.to_tb(generate_volume(sampler, cond, seed, simulation, cfg).x0.float()).cpu().numpy()


def calibrate_lodi(
    model_path,
    halos_paths: list,
    grid_paths: list,
    cfg: GenerationConfig,
    samples: int,
    device,
    level: str = "lodi",
    progress=False,
) -> dict:
    """The LODI model file's content with its T_b calibration (``lodi.tb_calibration``, beyond
    the paper; :func:`..data.calibration.fit_tb_calibration`): a map fitted on ``samples``
    latent-overlap volumes of each calibration simulation (seeds 0, 1, ..., on the halo
    channels in ``halos_paths``, those generation conditions on) against the simulations' true
    T_b (``grid_paths``). Trainings, and snapshots of one training, put the bright end of T_b
    tens of per cent apart, and P(k) of T_b/<T_b> with it; the map, a property of the trained
    network, pins that shape; ``level`` says whose <T_b> the map keeps, LODI's or the
    calibration simulations' (docs/convergence.md, "Calibrating T_b")."""
    if len(halos_paths) != len(grid_paths) or not grid_paths or samples < 1:
        raise ValueError("T_b calibration needs one halo file per calibration grid, at least one, and samples >= 1")
    sampler = load_sampler(model_path, cfg, device)
    if sampler.tb_calibration is not None:
        raise InputError(model_path, "already has a T_b calibration; expected the trained LODI model file")
    generated, true = [], []
    for halos_path, grid_path in zip(halos_paths, grid_paths):
        cond, attrs = load_condition(sampler, halos_path)
        sim = str(attrs.get("simulation", Path(halos_path).stem))
        for seed in range(samples):
            x0 = generate_volume(sampler, cond, seed, sim, cfg, progress=progress).x0.float()
            generated.append(sampler.to_tb(x0, calibrate=False).cpu().numpy())
        true += [read_grids(grid_path, ("tb",))[0]["tb"]] * samples
    calibration = fit_tb_calibration(generated, true, level)
    return {
        **sampler.meta,
        "tb_calibration": calibration.to_dict(),
        "tb_calibration_samples": int(samples),
        "tb_calibration_level": level,
    }


def pick_pair_origin(halos, box: int, overlap: int, axis: int = 0) -> tuple:
    """Origin of box A for Fig. 6: the pair (A and its neighbour along ``axis``) holding
    the most halo mass, on a grid of half-box steps."""
    total = np.asarray(halos).sum(axis=0, dtype=np.float64)
    n = total.shape[0]
    width = 2 * box - overlap
    size = [width if a == axis else box for a in range(3)]
    starts = [range(0, max(1, n - s + 1), max(1, box // 2)) for s in size]
    best, origin = -1.0, (0, 0, 0)
    for x in starts[0]:
        for y in starts[1]:
            for z in starts[2]:
                mass = total[x : x + size[0], y : y + size[1], z : z + size[2]].sum()
                if mass > best:
                    best, origin = mass, (x, y, z)
    return origin


def run_overlap_pair(
    model_path, halos_path, out_path, cfg: GenerationConfig, seed: int, device, axis: int = 0, n_steps: int = 4
) -> None:
    """The Fig. 6 job: sample one overlapping pair of boxes (overlapping by ``cfg.overlap``) on a
    simulation's halo channels (:func:`overlap.pair_trajectory`, at the pair holding the most
    halo mass) in fp32 and write the normalised latents of box B at ``n_steps`` + 1 reverse
    steps, with latent overlap and independently, and the final T_b (mK) of A and of both Bs."""
    overlap = cfg.overlap
    sampler = load_sampler(model_path, replace(cfg, bf16=False), device)
    cond, _ = load_condition(sampler, halos_path)
    halos, _ = read_grids(halos_path, ("halos",))
    box = int(sampler.meta["box"])
    origin = pick_pair_origin(halos["halos"], box, overlap, axis)
    pair = pair_trajectory(sampler, cond, origin, axis, box, overlap, seed)
    steps = sorted({int(round(s)) for s in np.linspace(sampler.T, 1, n_steps + 1)}, reverse=True)
    datasets = {v: torch.stack([pair[v][i] for i in steps]) for v in ("latent_overlap", "tiling")}
    datasets["x0_a"] = pair["x0_a"]
    for name, key in (("tb_a", "x0_a"), ("tb_latent_overlap", "x0_latent_overlap"), ("tb_tiling", "x0_tiling")):
        datasets[name] = sampler.to_tb(pair[key].float())
    attrs = {
        "steps": steps,
        "origin_a": list(origin),
        "origin_b": list(pair["origin_b"]),
        "box": box,
        "overlap": overlap,
        "axis": axis,
        "seed": seed,
        "lodi_model": str(model_path),
        "halos": str(halos_path),
    }
    write_hdf5(out_path, datasets, attrs)

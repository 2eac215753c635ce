"""One whole realisation (paper grid: 256^3, boxes of 32^3, overlap 4, 729 boxes in 8
stages) on one device: HALOgen on the full box, then the 8 latent-overlap stages, staged
and batched, against box-by-box sequential generation in the same run (timed on the first
``--sequential-boxes`` boxes and scaled to 729), plus where the time goes (per stage, the
denoiser alone against the latent-overlap bookkeeping) and peak memory. The JSON is
rewritten after each part, so a time limit keeps what was measured. Untrained paper-size
networks: the arithmetic is the same as with trained weights.
Run: python benchmarks/generate.py [--quick] [--sequential-boxes 40]"""

from __future__ import annotations

import argparse
import time

import torch
from _common import DEFAULT_CONFIG, PAPER_CONFIG, peak_memory, reset_peak, sync, write

from lodi_core.data.transforms import LogTransform
from lodi_core.data.windows import sliding_window_apply
from lodi_core.generation.jobs import GenerationConfig, stage_boxes
from lodi_core.generation.overlap import VolumeState, merge_boxes, sample_stage_shard
from lodi_core.models.halogen import HALOgen, HalogenConfig
from lodi_core.models.lodi import BoxSampler, build_vdm
from lodi_core.models.unet import DenoiserConfig
from lodi_core.models.vdm import VDMConfig

parser = argparse.ArgumentParser()
parser.add_argument("--quick", action="store_true")
parser.add_argument("--sequential-boxes", type=int, default=40)
parser.add_argument("--batch-size", type=int, default=128)
args = parser.parse_args()
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
CONFIG = DEFAULT_CONFIG if args.quick else PAPER_CONFIG  # the embedded default's sizes, or the paper's
N, BOX, OVERLAP, WINDOW = (
    64 if args.quick else 256,
    CONFIG["lodi"]["train"]["box"],
    4,
    CONFIG["halogen"]["train"]["window"],
)
T = 10 if args.quick else CONFIG["lodi"]["vdm"]["timesteps"]
halo_cfg = HalogenConfig.from_config(CONFIG)
den_cfg = DenoiserConfig.from_config(CONFIG)
CHANNELS_LAST = torch.channels_last_3d
BF16 = device.type == "cuda"


def build():
    torch.manual_seed(0)
    halogen = HALOgen(halo_cfg).to(device, memory_format=CHANNELS_LAST).eval()
    vdm = build_vdm(den_cfg, VDMConfig.from_config(CONFIG, timesteps=T)).to(device).eval()
    identity = LogTransform(floor=1.0, mean=(0.0,), std=(1.0,)).to_dict()
    meta = {"tb_transform": identity, "halo_transform": LogTransform(1.0, (0.0,) * 4, (1.0,) * 4).to_dict(), "box": BOX}
    return halogen, BoxSampler(vdm, meta, bf16=BF16)


@torch.no_grad()
def run_halogen(halogen, dm):
    def fn(b):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=BF16):
            return halogen(b.contiguous(memory_format=CHANNELS_LAST)).float()

    return sliding_window_apply(dm, fn, WINDOW, 16, False, batch_size=32 if device.type == "cuda" else 4)


def staged(sampler, cond, cfg, seed=0):
    state = VolumeState.empty(N, device)
    per_stage = []
    for stage in range(1, 9):
        boxes = stage_boxes(N, BOX, cfg, stage)
        sync(device)
        t0 = time.perf_counter()
        done, x0 = sample_stage_shard(sampler, state, cond, boxes, BOX, seed, "bench", 0, 1, cfg.batch_size)
        sync(device)
        t1 = time.perf_counter()
        state = merge_boxes(state, done, x0, BOX)
        sync(device)
        per_stage.append(
            {"stage": stage, "boxes": len(boxes), "sample_s": t1 - t0, "merge_s": time.perf_counter() - t1}
        )
    return state, per_stage


@torch.no_grad()
def network_only(sampler, cond, n_boxes, batch):
    """The denoiser alone on ``n_boxes`` boxes x T steps in batches (no noise draws, no
    latent-overlap bookkeeping): the floor of the staged time."""
    z = torch.randn(min(batch, n_boxes), 1, BOX, BOX, BOX, device=device)
    c = cond[:, :BOX, :BOX, :BOX].unsqueeze(0).expand(len(z), -1, -1, -1, -1).contiguous()
    sync(device)
    t0 = time.perf_counter()
    full, rest = divmod(n_boxes, len(z))
    for _ in range(T):
        for _ in range(full):
            sampler.predict_noise(z, 1, c)
        if rest:
            sampler.predict_noise(z[:rest], 1, c[:rest])
    sync(device)
    return time.perf_counter() - t0


def main():
    name = "generate" + ("_quick" if args.quick else "")
    halogen, sampler = build()
    dm = torch.randn(1, N, N, N, device=device)
    cfg = GenerationConfig.from_config(CONFIG, overlap=OVERLAP, batch_size=args.batch_size, bf16=BF16)
    result = {
        "device": str(device),
        "grid": N,
        "box": BOX,
        "overlap": OVERLAP,
        "timesteps": T,
        "batch_size": args.batch_size,
        "bf16": BF16,
        "paper": {"total_s": 106.0, "halogen_s": 16.0, "lodi_s": 90.0, "staging_speedup": 6.0},
    }
    run_halogen(halogen, dm[:, : WINDOW * 2, : WINDOW * 2, : WINDOW * 2])  # warm-up: the same window batches
    reset_peak(device)
    sync(device)
    t0 = time.perf_counter()
    halos = run_halogen(halogen, dm)
    sync(device)
    result["halogen_s"] = time.perf_counter() - t0
    write(name, result)  # rewritten after each part: a time limit keeps what was measured
    cond = sampler.condition(halos.unsqueeze(0))[0]
    network_only(sampler, cond, args.batch_size, args.batch_size)  # warm-up of the denoiser
    t0 = time.perf_counter()
    state, per_stage = staged(sampler, cond, cfg)
    t_lodi = time.perf_counter() - t0
    n_boxes = sum(s["boxes"] for s in per_stage)
    result.update(
        {
            "boxes": n_boxes,
            "lodi_staged_s": t_lodi,
            "total_staged_s": result["halogen_s"] + t_lodi,
            "per_stage": per_stage,
            **peak_memory(device),
        }
    )
    write(name, result)
    t_net = network_only(sampler, cond, n_boxes, args.batch_size)
    result.update({"denoiser_only_s": t_net, "bookkeeping_s": t_lodi - t_net})
    write(name, result)
    # box by box: the same code with micro-batches of one box, on the first boxes of stage 1
    k = min(args.sequential_boxes, per_stage[0]["boxes"])
    boxes = stage_boxes(N, BOX, cfg, 1)[:k]
    empty = VolumeState.empty(N, device)
    sync(device)
    t0 = time.perf_counter()
    sample_stage_shard(sampler, empty, cond, boxes, BOX, 0, "bench", 0, 1, 1)
    sync(device)
    t_seq = (time.perf_counter() - t0) / k
    result.update(
        {
            "sequential_s_per_box": t_seq,
            "sequential_boxes_timed": k,
            "lodi_sequential_s_extrapolated": t_seq * n_boxes,
            "staging_speedup": t_seq * n_boxes / t_lodi,
        }
    )
    write(name, result)


if __name__ == "__main__":
    main()

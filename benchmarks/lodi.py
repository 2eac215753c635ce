"""LODI: training iterations per second at batch 16 (32^3 boxes) and sampler throughput
(boxes x reverse steps per second, and the time of 729 boxes x 50 steps), fp32 eager against
bf16 autocast and bf16 + torch.compile, peak GPU memory. The paper-sized denoiser of
config/paper.yaml. Run: python benchmarks/lodi.py [--quick]"""

from __future__ import annotations

import sys
import time

import torch
from _common import DEFAULT_CONFIG, PAPER_CONFIG, peak_memory, reset_peak, sync, time_steps, write

from lodi_core.models.lodi import build_vdm
from lodi_core.models.unet import DenoiserConfig
from lodi_core.models.vdm import VDMConfig

quick = "--quick" in sys.argv
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
PAPER = DenoiserConfig.from_config(PAPER_CONFIG)
TINY = DenoiserConfig.from_config(DEFAULT_CONFIG)
net_cfg = TINY if quick else PAPER
box, batch, T = (16, 4, 10) if quick else (32, 16, 50)
sample_batch = 8 if quick else 125  # the largest stage of the paper's grid
steps = 3 if quick else 10


def variants():
    out = [("fp32_eager", False, False)]
    if device.type == "cuda":
        out += [("bf16_eager", True, False), ("bf16_compile", True, True)]
    return out


def build(compile_):
    torch.manual_seed(0)
    model = build_vdm(net_cfg, VDMConfig.from_config(PAPER_CONFIG, timesteps=T)).to(device)
    if compile_:
        model.denoiser = torch.compile(model.denoiser)
    return model


def training(bf16, compile_):
    model = build(compile_)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 1, box, box, box, device=device)
    c = torch.randn(batch, 4, box, box, box, device=device)

    def step():
        step.n = getattr(step, "n", -1) + 1
        noise = model.draw_noise(x, 0, step.n)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = model(x, c, noise).total
        loss.backward()
        opt.step()

    timing = time_steps(step, device, steps)
    return {"iterations_per_s": 1 / timing["s_per_step"], **timing}


@torch.no_grad()
def sampling(bf16, compile_):
    model = build(compile_).eval()
    cond = torch.randn(sample_batch, 4, box, box, box, device=device)
    g = torch.Generator(device=device).manual_seed(1)

    def noise(_i):
        return torch.randn(sample_batch, 1, box, box, box, device=device, generator=g)

    def run():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return model.sample(cond, noise)

    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):  # warm-up (and compilation)
        for _ in range(2):
            model.predict_noise(noise(0), torch.tensor(0.0, device=device), cond)
    reset_peak(device)
    sync(device)
    t0 = time.perf_counter()
    run()
    sync(device)
    dt = time.perf_counter() - t0
    rate = sample_batch * T / dt
    return {
        "box_steps_per_s": rate,
        "seconds_729_boxes_x_50_steps": 729 * 50 / rate,
        "batch": sample_batch,
        **peak_memory(device),
    }


def main():
    result = {
        "device": str(device),
        "network": net_cfg.to_dict(),
        "box": box,
        "batch": batch,
        "timesteps": T,
        "parameters": sum(
            p.numel() for p in build_vdm(net_cfg, VDMConfig.from_config(PAPER_CONFIG)).denoiser.parameters()
        ),
        "training": {},
        "sampling": {},
    }
    for name, bf16, comp in variants():
        result["training"][name] = training(bf16, comp)
        result["sampling"][name] = sampling(bf16, comp)
        write("lodi" + ("_quick" if quick else ""), result)  # partial results survive a time limit
        print(name, result["training"][name], result["sampling"][name], flush=True)
    paper = 600_000 / (30 * 3600)  # 600k iterations in ~30 h on an A100
    result["paper_iterations_per_s"] = paper
    result["training_speedup_over_paper"] = max(v["iterations_per_s"] for v in result["training"].values()) / paper
    write("lodi" + ("_quick" if quick else ""), result)


if __name__ == "__main__":
    main()

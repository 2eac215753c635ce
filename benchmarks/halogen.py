"""HALOgen: training samples per second at batch 16 (64^3 windows) and whole-box 256^3
inference (stride 16), fp32 eager against bf16 autocast (and bf16 + torch.compile, and bf16
in the default contiguous memory format instead of channels_last_3d: the first H100 run took
36 s for 256^3 against the paper's 16 s on an A100, and grouped 3D convolutions and GroupNorm
in channels_last are the first suspect), peak GPU memory. The paper's network size
(config/paper.yaml). Run: python benchmarks/halogen.py [--quick] (quick: small sizes, for
checking on a CPU)."""
from __future__ import annotations

import sys
import time

import torch

from _common import peak_memory, reset_peak, sync, time_steps, write
from lodi_core.halogen import HALOgen, HalogenConfig, LossConfig, halogen_loss
from lodi_core.halogen_run import CHANNELS_LAST
from lodi_core.windows import sliding_window_apply

quick = "--quick" in sys.argv
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
PAPER = HalogenConfig(channels=(64, 128, 256), bottleneck_channels=512, blocks_per_stage=2)
TINY = HalogenConfig(channels=(8, 16, 32), bottleneck_channels=32)
net_cfg = TINY if quick else PAPER
window, batch, n_box, stride = (32, 4, 64, 16) if quick else (64, 16, 256, 16)
steps = 3 if quick else 10


def variants():
    """(name, bf16, compile for inference, memory format); training is timed eager
    (compiling the backward graph of this network costs minutes and did not pay back in a
    short run). The compiled variant goes last: it is the one a time limit may cut."""
    out = [("fp32_eager", False, False, CHANNELS_LAST)]
    if device.type == "cuda":
        out += [("bf16_eager", True, False, CHANNELS_LAST), ("bf16_eager_contiguous", True, False, torch.contiguous_format),
                ("bf16_compile", True, True, CHANNELS_LAST)]
    return out


def training(bf16: bool, compile_: bool, memory_format) -> dict:
    torch.manual_seed(0)
    model = HALOgen(net_cfg).to(device, memory_format=memory_format)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-4)
    fwd = torch.compile(model) if compile_ else model
    x = torch.randn(batch, 1, window, window, window, device=device).contiguous(memory_format=memory_format)
    y = torch.randn(batch, 4, window, window, window, device=device)
    m = torch.rand_like(y) / y.numel()
    loss_cfg = LossConfig()

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            pred = fwd(x)
        halogen_loss(pred.float(), y, m, model, loss_cfg).total.backward()
        opt.step()

    timing = time_steps(step, device, steps)
    return {"samples_per_s": batch / timing["s_per_step"], **timing}


@torch.no_grad()
def inference(bf16: bool, compile_: bool, memory_format) -> dict:
    torch.manual_seed(0)
    model = HALOgen(net_cfg).to(device, memory_format=memory_format).eval()
    fwd = torch.compile(model) if compile_ else model
    dm = torch.randn(1, n_box, n_box, n_box, device=device)

    def fn(b):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            return fwd(b.contiguous(memory_format=memory_format)).float()

    batch_size = 32 if device.type == "cuda" else 4

    def run(volume):
        return sliding_window_apply(volume, fn, window, stride, False, batch_size=batch_size)

    run(dm[:, : n_box // 2, : n_box // 2, : n_box // 2])  # warm-up (and compilation): same window batches
    reset_peak(device)
    sync(device)
    t0 = time.perf_counter()
    run(dm)
    sync(device)
    return {"seconds": time.perf_counter() - t0, "windows_per_batch": batch_size, **peak_memory(device)}


def main():
    result = {"device": str(device), "network": net_cfg.to_dict(), "window": window, "batch": batch, "box": n_box, "stride": stride,
              "parameters": sum(p.numel() for p in HALOgen(net_cfg).parameters()), "training": {}, "inference": {}}
    for name, bf16, comp, memory_format in variants():
        if not comp:
            result["training"][name] = training(bf16, False, memory_format)
        result["inference"][name] = inference(bf16, comp, memory_format)
        write("halogen" + ("_quick" if quick else ""), result)  # partial results survive a time limit
        print(name, result["training"].get(name), result["inference"][name], flush=True)
    # the paper: 260 epochs in ~21 h on an A100; an epoch of config/paper.yaml is 48 training
    # windows x 48 symmetries = 2304 samples
    paper_rate = 260 * 2304 / (21 * 3600)
    best = max(v["samples_per_s"] for v in result["training"].values())
    result["paper_training_samples_per_s"] = paper_rate
    result["training_speedup_over_paper"] = best / paper_rate
    result["paper_inference_s"] = 16.0
    write("halogen" + ("_quick" if quick else ""), result)


if __name__ == "__main__":
    main()

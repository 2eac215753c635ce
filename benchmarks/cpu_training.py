"""Raw CPU throughput of the embedded default's networks (config/config.yaml), measured side by
side in one run: LODI and HALOgen training steps and LODI sampling (network evaluations), in
fp32 and under bf16 autocast (AVX-512 BF16 / AMX on recent Xeons), in the default and the
channels-last-3d memory formats, eager and with torch.compile, with 1 and 2 threads; and the
attention kernel on strided against contiguous q, k, v.

Ratios to the fp32 eager 2-thread variant are what to read: absolute times depend on the CPU.
Run: python benchmarks/cpu_training.py [--quick] [--no-compile]
Writes results/benchmarks/cpu_training.json.
"""

from __future__ import annotations

import sys
import time

import torch
from _common import ROOT, write

from lodi_core.config import load_config
from lodi_core.models.halogen import HALOgen, HalogenConfig, LossConfig, halogen_loss
from lodi_core.models.lodi import build_vdm
from lodi_core.models.unet import DenoiserConfig
from lodi_core.models.vdm import VDMConfig

quick = "--quick" in sys.argv
use_compile = "--no-compile" not in sys.argv
CONFIG = load_config(ROOT / "config" / "config.yaml")
STEPS = 3 if quick else 20
LODI_BOX = CONFIG["lodi"]["train"]["box"]
LODI_BATCH = CONFIG["lodi"]["train"]["batch_size"]
HALO_WINDOW = CONFIG["halogen"]["train"]["window"]
HALO_BATCH = CONFIG["halogen"]["train"]["batch_size"]
SAMPLE_BATCH = CONFIG["generation"]["batch_size"]


def timed(step, steps=STEPS, warmup=2) -> dict:
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return {"s_per_step": (time.perf_counter() - t0) / steps, "first_step_s": first}


def lodi_training(bf16: bool, channels_last: bool, compiled: bool):
    torch.manual_seed(0)
    model = build_vdm(DenoiserConfig.from_config(CONFIG), VDMConfig.from_config(CONFIG))
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    if compiled:
        model.denoiser = torch.compile(model.denoiser)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(LODI_BATCH, 1, LODI_BOX, LODI_BOX, LODI_BOX).contiguous(memory_format=fmt)
    c = torch.randn(LODI_BATCH, 4, LODI_BOX, LODI_BOX, LODI_BOX).contiguous(memory_format=fmt)

    def step():
        step.n = getattr(step, "n", -1) + 1
        noise = model.draw_noise(x, 0, step.n)
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(x, c, noise).total
        loss.backward()
        opt.step()

    return timed(step)


def lodi_sampling(bf16: bool, channels_last: bool, compiled: bool):
    torch.manual_seed(0)
    model = build_vdm(DenoiserConfig.from_config(CONFIG), VDMConfig.from_config(CONFIG)).eval()
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    if compiled:
        model.denoiser = torch.compile(model.denoiser)
    z = torch.randn(SAMPLE_BATCH, 1, LODI_BOX, LODI_BOX, LODI_BOX).contiguous(memory_format=fmt)
    c = torch.randn(SAMPLE_BATCH, 4, LODI_BOX, LODI_BOX, LODI_BOX).contiguous(memory_format=fmt)
    gamma = torch.tensor(0.3)

    @torch.no_grad()
    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            model.predict_noise(z, gamma, c)

    return timed(step)


def halogen_training(bf16: bool, channels_last: bool, compiled: bool):
    torch.manual_seed(0)
    fmt = torch.channels_last_3d if channels_last else torch.contiguous_format
    model = HALOgen(HalogenConfig.from_config(CONFIG)).to(memory_format=fmt)
    net = torch.compile(model) if compiled else model
    loss_cfg = LossConfig.from_config(CONFIG)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-4)
    x = torch.randn(HALO_BATCH, 1, HALO_WINDOW, HALO_WINDOW, HALO_WINDOW).contiguous(memory_format=fmt)
    y = torch.randn(HALO_BATCH, 4, HALO_WINDOW, HALO_WINDOW, HALO_WINDOW)
    m = torch.ones_like(y)

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            pred = net(x)
        halogen_loss(pred.float(), y, m, model, loss_cfg).total.backward()
        opt.step()

    return timed(step)


def attention_layout() -> list[dict]:
    """Scaled dot-product attention at the LODI bottleneck (the sampling batch, the default's
    heads and width), on q, k, v as the transposed views of the qkv projection against
    contiguous copies: why unet.SelfAttention makes them contiguous."""
    net = CONFIG["lodi"]["network"]
    side = LODI_BOX // 2 ** (len(net["channels"]) - 1)
    heads, width = net["attention_heads"], net["channels"][-1]
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        shape = (SAMPLE_BATCH, heads, width // heads, side**3)
        q, k, v = (torch.randn(shape, dtype=dtype).transpose(-1, -2) for _ in "qkv")
        strided = timed(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v))
        qc, kc, vc = (t.contiguous() for t in (q, k, v))
        contiguous = timed(lambda: torch.nn.functional.scaled_dot_product_attention(qc, kc, vc))
        rows.append(
            {
                "dtype": str(dtype),
                "tokens": side**3,
                "strided_s": strided["s_per_step"],
                "contiguous_s": contiguous["s_per_step"],
                "speedup": strided["s_per_step"] / contiguous["s_per_step"],
            }
        )
    return rows


def main():
    variants = [(bf16, cl, False) for bf16 in (False, True) for cl in (False, True)]
    if use_compile:
        variants += [(False, False, True), (True, False, True)]
    result = {
        "config": "config/config.yaml",
        "lodi_box": LODI_BOX,
        "lodi_batch": LODI_BATCH,
        "halogen_window": HALO_WINDOW,
        "halogen_batch": HALO_BATCH,
        "sample_batch": SAMPLE_BATCH,
        "steps": STEPS,
        "runs": [],
    }
    torch.set_num_threads(2)
    result["attention_2t"] = attention_layout()
    print("attention (strided / contiguous):", [round(r["speedup"], 1) for r in result["attention_2t"]], flush=True)
    for threads in (2, 1):
        torch.set_num_threads(threads)
        for bf16, cl, compiled in variants if threads == 2 else [(False, False, False), (True, False, False)]:
            name = "_".join(
                ["bf16" if bf16 else "fp32"]
                + (["channels_last"] if cl else [])
                + (["compile"] if compiled else [])
                + [f"{threads}t"]
            )
            row = {"variant": name, "threads": threads, "bf16": bf16, "channels_last": cl, "compile": compiled}
            for what, fn in (
                ("lodi_train", lodi_training),
                ("lodi_sample", lodi_sampling),
                ("halogen_train", halogen_training),
            ):
                try:
                    row[what] = fn(bf16, cl, compiled)
                except Exception as err:  # a variant this CPU or build cannot run is reported, not fatal
                    row[what] = {"error": f"{type(err).__name__}: {err}"[:300]}
            result["runs"].append(row)
            print(
                name,
                {k: round(v["s_per_step"], 4) for k, v in row.items() if isinstance(v, dict) and "s_per_step" in v},
                flush=True,
            )
            write("cpu_training", result)
    base = result["runs"][0]
    for row in result["runs"]:
        row["speedup_vs_fp32_2t"] = {
            what: base[what]["s_per_step"] / row[what]["s_per_step"]
            for what in ("lodi_train", "lodi_sample", "halogen_train")
            if "s_per_step" in row.get(what, {}) and "s_per_step" in base.get(what, {})
        }
    write("cpu_training", result)


if __name__ == "__main__":
    main()

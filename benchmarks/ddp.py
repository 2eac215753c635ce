"""Data-parallel training throughput: iterations/s of HALOgen and LODI on 1, 2, 4, ...
processes (one per GPU, or CPU processes sharing the cores), the global batch fixed (strong
scaling), and the scaling efficiency speed-up / processes, measured side by side in one run.
Each rank runs the project's training loop (lodi_core.training.loop.train: DDP wrapper, the
per-step all-reduce, per-sample noise) on random inputs of the configured sizes, the ranks
started by torchrun.

Run: python benchmarks/ddp.py                      (paper sizes; all GPUs: 1, 2, 4, ... of them)
     python benchmarks/ddp.py --size default --processes 1 2 --steps 6   (the CPU check)
Writes results/benchmarks/ddp.json."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from _common import DEFAULT_CONFIG, PAPER_CONFIG, ROOT, write

SIZES = {"paper": PAPER_CONFIG, "default": DEFAULT_CONFIG}


def worker(network: str, size: str, steps: int, warmup: int, out: Path) -> None:
    """One rank: ``warmup + steps`` training steps of ``network``; rank 0 writes s/step."""
    from lodi_core.models.halogen import HALOgen, HalogenConfig, LossConfig, halogen_loss
    from lodi_core.models.lodi import build_vdm
    from lodi_core.models.unet import DenoiserConfig
    from lodi_core.models.vdm import VDMConfig
    from lodi_core.runtime import autocast, pick_device
    from lodi_core.training.distributed import init_process_group, rank_device, shutdown, world_from_env
    from lodi_core.training.loop import EMA, LoopSpec, train

    config = SIZES[size]
    world = world_from_env()
    device = rank_device(pick_device("auto"), world)
    init_process_group(world, device, 600)
    torch.manual_seed(0)
    t = config[network]["train"]
    share = world.share(t["batch_size"])
    n = len(range(t["batch_size"])[share])
    g = torch.Generator(device=device).manual_seed(world.rank)
    if network == "halogen":
        model = HALOgen(HalogenConfig.from_config(config)).to(device)
        optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-5)
        loss_cfg, side, ema = LossConfig.from_config(config), t["window"], None

        def compute_loss(step, net):
            x = torch.randn(n, 1, side, side, side, generator=g, device=device)
            y = torch.randn(n, 4, side, side, side, generator=g, device=device)
            with autocast(device, t["bf16"]):
                pred = net(x)
            return halogen_loss(pred.float(), y, (y > 1).float(), model, loss_cfg).total, {}
    else:
        model = build_vdm(DenoiserConfig.from_config(config), VDMConfig.from_config(config)).to(device)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
        side, ema = t["box"], EMA(model, t["ema_decay"])

        def compute_loss(step, net):
            x = torch.randn(n, 1, side, side, side, generator=g, device=device)
            c = torch.randn(n, 4, side, side, side, generator=g, device=device)
            noise = model.draw_noise(x, 0, step, share.start, t["batch_size"])
            with autocast(device, t["bf16"]):
                return net(x, c, noise).total, {}

    total = warmup + steps
    spec = LoopSpec(kind=network, total_steps=total, checkpoint_every=total, validate_every=total, progress=False)
    with tempfile.TemporaryDirectory() as tmp:
        final = train(
            spec, model, optimizer, compute_loss, lambda s: 1e-5, Path(tmp) / "c.pt", Path(tmp) / "h.csv", {},
            ema=ema, world=world,
        )  # fmt: skip
    shutdown()
    if world.is_main:
        times = [row["time_s"] for row in final["history"]]
        s_per_step = (times[-1] - times[warmup - 1]) / steps
        out.write_text(json.dumps({"s_per_step": s_per_step, "device": str(device)}))


def run(network: str, size: str, processes: int, steps: int, warmup: int, threads: int) -> dict:
    """``processes`` ranks of this script's worker, started by torchrun (as the training rules
    start them on one machine), the CPU threads shared between them."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "rank0.json"
        env = dict(os.environ, OMP_NUM_THREADS=str(max(1, threads // processes)), PYTHONPATH=str(ROOT))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}"]
        cmd += [__file__, "--worker", network, "--size", size, "--steps", str(steps), "--warmup", str(warmup)]
        code = subprocess.run([*cmd, "--out", str(out)], env=env).returncode
        if code:
            raise RuntimeError(f"{network} on {processes} processes failed (exit code {code})")
        return json.loads(out.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=sorted(SIZES), default="paper", help="network and batch sizes of this config")
    p.add_argument("--processes", type=int, nargs="+", help="default: 1, 2, 4, ... up to the GPUs (CPU: 1 2)")
    p.add_argument("--networks", nargs="+", default=["halogen", "lodi"], choices=["halogen", "lodi"])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--worker", choices=["halogen", "lodi"], help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", 1)))
        return worker(args.worker, args.size, args.steps, args.warmup, args.out)
    gpus = torch.cuda.device_count()
    threads = os.cpu_count() or 1
    counts = args.processes or ([2**k for k in range(gpus.bit_length()) if 2**k <= gpus] if gpus else [1, 2])
    rows = []
    for network in args.networks:
        base = None
        for n in counts:
            r = run(network, args.size, n, args.steps, args.warmup, threads)
            its = 1.0 / r["s_per_step"]
            if base is None:  # the first count is the reference (normally 1 process)
                base = its
            speedup = its / base
            rows.append(
                {
                    "network": network,
                    "processes": n,
                    "device": r["device"],
                    "global_batch": SIZES[args.size][network]["train"]["batch_size"],
                    "iterations_per_s": its,
                    "speedup": speedup,
                    "scaling_efficiency": speedup * counts[0] / n,
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    single = {r["network"]: r["iterations_per_s"] for r in rows if r["processes"] == 1}
    projection = {}
    if "lodi" in single and args.size == "paper":  # the paper: 600k LODI iterations (30 h on one A100)
        iters = PAPER_CONFIG["lodi"]["train"]["iterations"]
        projection = {
            f"lodi_{r['processes']}_processes_hours": iters / r["iterations_per_s"] / 3600
            for r in rows
            if r["network"] == "lodi"
        }
    write(
        "ddp",
        {
            "size": args.size,
            "steps": args.steps,
            "warmup": args.warmup,
            "cpu_threads_shared_by_ranks": None if gpus else threads,
            "rows": rows,
            "projected_paper_training": projection,
        },
    )


if __name__ == "__main__":
    main()

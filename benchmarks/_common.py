"""Shared by the benchmarks: timing, device facts, JSON output (results/benchmarks/ and,
on the device machine, $OUT)."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lodi_core.config import load_config  # noqa: E402

#: the paper's setting and the embedded CPU default: the sizes the benchmarks time
PAPER_CONFIG = load_config(ROOT / "config" / "paper.yaml")
DEFAULT_CONFIG = load_config(ROOT / "config" / "config.yaml")


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timeit(fn, device="cpu", repeat: int = 3, warmup: int = 1) -> dict:
    """Median and min wall time of ``fn()`` in seconds."""
    for _ in range(warmup):
        fn()
        sync(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "repeat": repeat}


def time_steps(step, device, steps: int, warmup: int = 2) -> dict:
    """Training-step timing: the first step (compilation, cuDNN autotuning) alone, then
    ``warmup`` steps, then the mean over ``steps`` with the peak GPU memory of those."""
    t0 = time.perf_counter()
    step()
    sync(device)
    first = time.perf_counter() - t0
    for _ in range(warmup):
        step()
    reset_peak(device)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return {"s_per_step": (time.perf_counter() - t0) / steps, "first_step_s": first, **peak_memory(device)}


def peak_memory(device) -> dict:
    if torch.device(device).type != "cuda":
        return {}
    return {"peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30}


def reset_peak(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.empty_cache()


def machine() -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "platform": platform.platform(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def write(name: str, result: dict) -> Path:
    """results/benchmarks/<name>.json, and $OUT/<name>.json when $OUT is set."""
    result = {"benchmark": name, "machine": machine(), **result}
    text = json.dumps(result, indent=2, default=float)
    paths = [ROOT / "results" / "benchmarks" / f"{name}.json"]
    if os.environ.get("OUT"):
        paths.append(Path(os.environ["OUT"]) / f"{name}.json")
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    print(text)
    return paths[0]

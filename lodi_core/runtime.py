"""Run-time plumbing shared by the workflow scripts: device choice, logging, signals."""

from __future__ import annotations

import logging
import os
import signal
import sys
import warnings
from contextlib import contextmanager

import torch

log = logging.getLogger("lodi")


def pick_device(requested: str = "auto") -> torch.device:
    """'auto' -> the GPU SLURM (or the user) made visible, else the CPU with a warning when a
    GPU was expected; 'cpu' / 'cuda' / 'cuda:N' as given. Logs the choice."""
    requested = (requested or "auto").lower()
    if requested == "cpu":
        device = torch.device("cpu")
    elif requested.startswith("cuda") or requested == "auto":
        if torch.cuda.is_available():
            device = torch.device("cuda" if requested == "auto" else requested)
        else:
            expected = requested != "auto" or os.environ.get("CUDA_VISIBLE_DEVICES") not in (None, "")
            if expected:
                msg = (
                    f"a GPU was expected (device={requested!r}, CUDA_VISIBLE_DEVICES="
                    f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r}) but torch sees none; falling back to the CPU"
                )
                warnings.warn(msg, RuntimeWarning, stacklevel=2)  # logged via captureWarnings
            device = torch.device("cpu")
    else:
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {requested!r}")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    log.info("using device %s: %s (torch %s)", device, name, torch.__version__)
    return device


def autocast(device: torch.device, bf16: bool):
    """bf16 autocast when asked, on a GPU or the CPU (AVX-512 BF16 / AMX make it 2-3x faster
    than fp32 for the default's networks: benchmarks/cpu_training.py); fp32 otherwise."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16)


def memory_format(channels_last: bool) -> torch.memory_format:
    """channels-last-3d or the default layout of 5D tensors (which is faster depends on the
    device, the network and the dtype: benchmarks/cpu_training.py)."""
    return torch.channels_last_3d if channels_last else torch.contiguous_format


def setup_logging(log_file=None, level=logging.INFO) -> None:
    """Log to ``log_file`` (a rule's ``log:``) and stderr, with timestamps; warnings too."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(str(log_file))), exist_ok=True)
        handlers.append(logging.FileHandler(str(log_file), mode="w"))
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=handlers, force=True
    )
    logging.captureWarnings(True)


def set_threads(n: int | None) -> None:
    """Use the threads a rule was given (Snakemake ``threads``)."""
    if n and n > 0:
        torch.set_num_threads(int(n))


class StopRequested(Exception):
    """Raised at a safe point after SIGTERM/SIGUSR1 once a checkpoint was written."""


@contextmanager
def preemption_signals():
    """Turn SIGTERM and SIGUSR1 (what SLURM sends before a time limit or preemption) into a
    flag a training loop polls: ``with preemption_signals() as stop: ... if stop(): ...``."""
    flag = {"signal": None}

    def handler(signum, _frame):
        flag["signal"] = signum
        log.warning("received signal %s: will checkpoint and stop at the next safe point", signal.Signals(signum).name)

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread
            pass
    try:
        yield lambda: flag["signal"]
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_script(main, log_file=None, threads: int | None = None, level=logging.INFO) -> None:
    """Entry point of a workflow script or command: logging to the rule's log, the rule's
    threads, and bad input reported as one clear line (file/key and what was expected)
    instead of a traceback from deep inside h5py or torch."""
    from .io import InputError

    setup_logging(log_file, level)
    set_threads(threads)
    try:
        main()
    except InputError as err:
        log.error("bad input: %s", err)
        sys.stderr.write(f"\nERROR (bad input): {err}\n")
        sys.exit(1)

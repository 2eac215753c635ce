"""The training loop shared by HALOgen and LODI: checkpoint and exact resume, SIGTERM /
SIGUSR1 checkpoints, non-finite loss guard, validation with best-weights tracking, an
exponential moving average of the weights, and loss curves (CSV; figures live in
:mod:`lodi_core.figures`).

Resume is exact: the model, optimizer and EMA states are restored and the data and noise of
step s are pure functions of (seed, s), so an interrupted and resumed run ends with the same
weights as an uninterrupted one on the CPU.

Data-parallel: with a :class:`~lodi_core.training.distributed.World` of several ranks, the model
is wrapped in DistributedDataParallel, each rank computes the loss of its share of the global
batch (gradients are averaged over ranks, as over one batch), validation is spread over the
ranks and summed, a signal on any rank stops all of them at the same step, and only rank 0
writes. The checkpoint does not depend on the number of ranks, so it resumes on any number.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from ..io import load_checkpoint, save_checkpoint, write_csv
from ..runtime import StopRequested, preemption_signals
from .distributed import World

log = logging.getLogger(__name__)


class NonFiniteLoss(FloatingPointError):
    """The loss became NaN or Inf; the last good checkpoint is kept."""


class EMA:
    """Exponential moving average of a model's parameters and buffers (used for sampling).

    With ``warmup`` the decay of update n is min(decay, (1 + n) / (10 + n)) (the ramp of the
    VDM and Hugging Face EMA code), so the average forgets the random initialisation within
    the first hundred steps instead of ~1 / (1 - decay) steps; without it, ``decay`` throughout."""

    def __init__(self, model: nn.Module, decay: float, warmup: bool = False):
        self.decay = decay
        self.warmup = warmup
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].lerp_(v.detach(), 1.0 - decay)
            else:
                self.shadow[k].copy_(v)
        self.updates += 1

    def weights(self) -> dict:
        """The averaged weights (a model state dict)."""
        return self.shadow

    def state_dict(self) -> dict:
        return {"shadow": self.shadow, "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.shadow = {k: v.clone() for k, v in state["shadow"].items()}
        self.updates = int(state["updates"])


@dataclass
class LoopSpec:
    kind: str  # 'halogen' or 'lodi': stored and checked on resume
    total_steps: int
    checkpoint_every: int
    validate_every: int
    grad_clip: float | None = None
    progress: bool = True


def setup_differences(stored: dict, current: dict) -> str:
    """What differs between a checkpoint's resume key and this run's ("" when nothing): the
    architecture, the training settings or the training data (content fingerprints)."""
    diffs = {k: (stored.get(k), v) for k, v in current.items() if stored.get(k) != v}
    return "; ".join(f"{k}: checkpoint has {a!r}, this run has {b!r}" for k, (a, b) in diffs.items())


def set_aside(path: Path, why: str) -> Path:
    """Move a checkpoint made with another setup to ``<name>.stale-<UTC time>`` (kept, never
    resumed) so that training starts over."""
    stale = path.with_name(f"{path.name}.stale-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    os.replace(path, stale)
    log.warning("%s was made with another setup (%s); kept as %s, training starts over", path, why, stale)
    return stale


def train(
    spec: LoopSpec,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    compute_loss: Callable[[int, nn.Module], tuple[torch.Tensor, dict]],
    lr_at: Callable[[int], float],
    checkpoint_path,
    history_path,
    resume_key: dict,
    validate: Callable[[nn.Module], tuple[float, int]] | None = None,
    ema: EMA | None = None,
    world: World = World(),
) -> dict:
    """Run (or resume) training to ``spec.total_steps``. ``compute_loss(step, net)`` returns the
    mean loss of this rank's share of the batch of ``step``, computed with ``net`` (the model,
    or its DistributedDataParallel wrapper), and a dict of floats to log; its data and noise
    must be functions of ``step``. ``validate(model)`` returns the sum of the validation loss
    over this rank's share of the validation items and their number. Returns the final
    checkpoint dict, whose ``best_model`` holds the weights with the lowest validation loss (EMA
    weights when an EMA is kept). Every history row carries ``time_s``, the wall seconds spent
    in this loop up to that step, summed over interrupted and resumed runs."""
    checkpoint_path = Path(checkpoint_path)
    step, history, best_val, best_model = 0, [], math.inf, None
    if world.is_main and checkpoint_path.exists():
        stored = load_checkpoint(checkpoint_path, kind=spec.kind).get("resume_key", {})
        why = setup_differences(stored, resume_key)
        if why:
            set_aside(checkpoint_path, why)
    world.barrier()  # the other ranks read the checkpoint only once rank 0 has judged it
    if checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path, kind=spec.kind)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        step, history = state["step"], state["history"]
        best_val, best_model = state["best_val"], state["best_model"]
        log.info("resumed %s training from %s at step %d/%d", spec.kind, checkpoint_path, step, spec.total_steps)
    time_offset = history[-1].get("time_s", 0.0) if history else 0.0
    started, first_step = time.perf_counter(), step
    net = model
    if world.distributed:
        from torch.nn.parallel import DistributedDataParallel

        device = next(model.parameters()).device
        net = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)

    def weights_for_eval() -> dict:
        return ema.weights() if ema is not None else model.state_dict()

    def snapshot() -> dict:
        return {
            "kind": spec.kind,
            "resume_key": resume_key,
            "step": step,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
            "history": history,
            "best_val": best_val,
            "best_model": best_model,
            "world_size": world.size,  # for the record: any number of ranks resumes it
        }

    def checkpoint() -> None:
        if world.is_main:
            save_checkpoint(checkpoint_path, snapshot())
            write_history(history, history_path)

    eval_model = copy.deepcopy(model) if validate is not None else None
    bar = tqdm(
        total=spec.total_steps,
        initial=step,
        desc=f"train {spec.kind}",
        disable=not (spec.progress and world.is_main),
        mininterval=5,
    )
    with preemption_signals() as stop:
        while step < spec.total_steps:
            lr = lr_at(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            model.train()
            optimizer.zero_grad(set_to_none=True)
            loss, logs = compute_loss(step, net)
            # one all-reduce per step: the logged values averaged over the ranks (the global
            # batch's), and whether any rank was asked to stop
            local = [float(loss.detach()), *logs.values(), 1.0 if stop() else 0.0]
            summed = world.all_sum(local)
            value = summed[0] / world.size
            logs = dict(zip(logs, (v / world.size for v in summed[1:-1])))
            stop_requested = summed[-1] > 0
            if not math.isfinite(value):
                raise NonFiniteLoss(
                    f"{spec.kind} training: the loss is {value} at step {step + 1}; stopping. The last good checkpoint "
                    f"({checkpoint_path}, step {step - step % spec.checkpoint_every}) is kept; "
                    "lower the learning rate or check the inputs"
                )
            loss.backward()
            if spec.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
            optimizer.step()
            if ema is not None:
                ema.update(model)
            step += 1
            bar.update(1)
            record = {"step": step, "lr": lr, "loss": value, **logs}
            if validate is not None and (step % spec.validate_every == 0 or step == spec.total_steps):
                eval_model.load_state_dict(weights_for_eval())
                eval_model.eval()
                total, count = world.all_sum(validate(eval_model))
                val = total / max(count, 1)
                record["val_loss"] = val
                if val < best_val:
                    best_val = val
                    best_model = {k: v.detach().clone() for k, v in weights_for_eval().items()}
                if world.is_main:
                    log.info(
                        "%s step %d: loss %.5g, val_loss %.5g (best %.5g), lr %.3g",
                        spec.kind,
                        step,
                        value,
                        val,
                        best_val,
                        lr,
                    )
            record["time_s"] = time_offset + time.perf_counter() - started
            history.append(record)
            bar.set_postfix(loss=f"{value:.4g}", refresh=False)
            if step % spec.checkpoint_every == 0 or step == spec.total_steps:
                checkpoint()
            if stop_requested:
                checkpoint()
                bar.close()
                world.barrier()  # no rank leaves before the checkpoint is on disk
                raise StopRequested(
                    f"{spec.kind} training stopped by signal at step {step}; checkpoint written to {checkpoint_path}"
                )
    bar.close()
    if step == first_step and world.is_main:
        # a finished checkpoint resumed (a rerun forced or triggered upstream) trains no step
        # and writes no checkpoint: its loss history is written again, so the outputs are complete
        write_history(history, history_path)
    world.barrier()
    if best_model is None:
        best_model = {k: v.detach().clone() for k, v in weights_for_eval().items()}
    final = snapshot()
    final["best_model"] = best_model
    return final


def kept_weights(final: dict, keep: str) -> dict:
    """The weights a model file keeps from :func:`train`'s final dict: ``"best"``, the lowest
    validation loss (EMA weights where kept), or ``"last"``, those of the last step (EMA
    weights where kept), as learning-curve snapshots need."""
    if keep == "best":
        return final["best_model"]
    if keep == "last":
        return final["ema"]["shadow"] if final.get("ema") is not None else final["model"]
    raise ValueError(f"keep must be 'best' or 'last', got {keep!r}")


def write_history(history: list[dict], path) -> None:
    """Loss curves as CSV (one row per step; val_loss where validated), atomically."""
    import pandas as pd  # here, not at the top: generation jobs import this module and never need it

    if history:
        write_csv(pd.DataFrame(history), path)

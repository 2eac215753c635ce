"""Data-parallel training across processes (one per GPU, or several CPU processes with gloo):
who this process is in the job, the process group, each rank's share of a global batch, and
the few all-reduces the training loop needs.

The rendezvous comes from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``, ``MASTER_PORT``) or, for processes that ``srun`` starts, from SLURM's
(``SLURM_PROCID``, ``SLURM_STEP_NUM_TASKS``, ``SLURM_LOCALID``, the first host of
``SLURM_STEP_NODELIST`` as master, a port derived from the job id). Without either, a run is a
single process and nothing here communicates.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from ..data.boxes import shard_slice

log = logging.getLogger(__name__)

LAUNCH_KEYS = ("gpus", "nodes", "collective_timeout_s")  # how a run is spread, not what it learns


class DistributedFailure(RuntimeError):
    """A collective failed: another rank died or stalled past the collective timeout."""


@dataclass(frozen=True)
class World:
    """This process's place in a data-parallel job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, loss curves, model files and the log."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def share(self, n: int, key: str = "batch_size") -> slice:
        """This rank's contiguous share of ``n`` global items (a batch); ``n`` must divide by the
        world size so that every rank takes the same number and the global batch stays ``n``."""
        if n % self.size:
            raise ValueError(f"{key} ({n}) must be a multiple of the number of training processes ({self.size})")
        part = self.portion(n)
        return slice(part.start, part.stop)

    def portion(self, n: int) -> range:
        """The contiguous part of ``n`` items (validation boxes) this rank evaluates; parts
        differ by at most one item."""
        return shard_slice(n, self.rank, self.size)

    def all_sum(self, values) -> list[float]:
        """Element-wise sum of ``values`` over the ranks (float64; the values themselves alone).
        NCCL reduces GPU tensors only: the values travel on this rank's GPU there."""
        if not self.distributed:
            return [float(v) for v in values]
        device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=device)
        collective(lambda: dist.all_reduce(t), self, "all_reduce")
        return t.tolist()

    def barrier(self) -> None:
        if self.distributed:
            collective(dist.barrier, self, "barrier")


def collective(op, world: World, what: str):
    """Run one collective; a failure (a rank that died or stalled past the timeout) becomes one
    clear error instead of a backend traceback."""
    try:
        return op()
    except (RuntimeError, dist.DistBackendError) as err:
        raise DistributedFailure(
            f"rank {world.rank} of {world.size}: {what} failed ({str(err).splitlines()[0]}); another training "
            "process died or stalled past the collective timeout, so this one stops too. The last checkpoint is "
            "kept; rerun the job to resume from it"
        ) from err


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list, e.g. ``gpu[07-09,12],login1`` -> ``gpu07`` (what
    ``scontrol show hostnames | head -1`` prints)."""
    m = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not m:
        raise ValueError(f"cannot read the SLURM node list {nodelist!r}")
    prefix, ranges = m.group(1), m.group(2)
    if ranges is None:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]


def world_from_env(env=None) -> World:
    """This process's :class:`World` from torchrun's variables, else from those of an ``srun``
    job step, else a single process. (Inside an sbatch script but outside ``srun``, SLURM's
    variables describe the allocation, not this process: they are not used.)"""
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        return World(
            rank=int(env["RANK"]),
            size=int(env["WORLD_SIZE"]),
            local_rank=int(env.get("LOCAL_RANK", 0)),
            master_addr=env.get("MASTER_ADDR", "127.0.0.1"),
            master_port=int(env.get("MASTER_PORT", 29500)),
        )
    if "SLURM_STEP_NUM_TASKS" in env and "SLURM_PROCID" in env:
        job = int(env.get("SLURM_JOB_ID", 0))
        return World(
            rank=int(env["SLURM_PROCID"]),
            size=int(env["SLURM_STEP_NUM_TASKS"]),
            local_rank=int(env.get("SLURM_LOCALID", 0)),
            master_addr=first_host(env.get("SLURM_STEP_NODELIST") or env["SLURM_JOB_NODELIST"]),
            master_port=int(env.get("MASTER_PORT", 20000 + job % 20000)),
        )
    return World()


def rank_device(device: torch.device, world: World) -> torch.device:
    """The GPU of this rank on its node (``LOCAL_RANK``, modulo the GPUs it sees, so that it
    works whether SLURM binds one GPU per task or shows all of them); the CPU stays the CPU."""
    if device.type != "cuda" or not world.distributed:
        return device
    index = world.local_rank % torch.cuda.device_count()
    torch.cuda.set_device(index)
    return torch.device("cuda", index)


def init_process_group(world: World, device: torch.device, timeout_s: float) -> None:
    """Join the job's process group: NCCL on GPUs, gloo on the CPU; every collective fails
    after ``timeout_s`` seconds instead of waiting for a dead rank until the time limit."""
    if not world.distributed or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    os.environ.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")  # NCCL: a timeout aborts the process
    dist.init_process_group(
        backend,
        init_method=f"tcp://{world.master_addr}:{world.master_port}",
        rank=world.rank,
        world_size=world.size,
        timeout=timedelta(seconds=timeout_s),
    )
    log.info(
        "rank %d of %d joined the %s process group at %s:%d",
        world.rank,
        world.size,
        backend,
        world.master_addr,
        world.master_port,
    )


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def check_world(batch_size: int, gpus: int, nodes: int, section: str) -> str:
    """'' when ``batch_size`` divides over gpus x nodes processes, else the problem, naming the
    keys (for the workflow's config check)."""
    n = gpus * nodes
    if batch_size % n:
        return (
            f"{section}.batch_size ({batch_size}) must be a multiple of {section}.gpus x {section}.nodes "
            f"({gpus} x {nodes} = {n}): each training process takes an equal share of the global batch"
        )
    return ""

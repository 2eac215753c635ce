"""Data-parallel training on the CPU with gloo: ranks started the way torchrun starts them
(RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) run `python -m lodi_core train`, the
command rules train_halogen and train_lodi run. The result must not depend on the number of
ranks, a checkpoint must resume on another number, a signal to one rank must stop all of
them, and a rank that dies must fail the others quickly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from ddp_helpers import assert_same_network
from grid_data import TINY_CONFIG, make_grid_file
from workflow_helpers import REPO

from lodi_core.cli import _rank_threads, launch_command
from lodi_core.io import load_checkpoint
from lodi_core.training.distributed import World, check_world, first_host, world_from_env

# each rank one thread: 2 ranks on the 2 cores
THREADS = 1
LODI_TRAIN = dict(
    box=8, candidate_stride=4, important_log_rho=11.0, warmup=2, bf16=False, batch_size=4, iterations=12,
    checkpoint_every=2, validate_every=4, val_boxes=6,
)  # fmt: skip
HALOGEN_TRAIN = dict(window=16, train_stride=16, batch_size=4, epochs=3, warm_epochs=1, cycle_epochs=2, bf16=False)


def settings(network: str, **train) -> str:
    section = TINY_CONFIG[network]
    parts = ("network", "vdm") if network == "lodi" else ("network", "loss")
    base = {**section["train"], **(LODI_TRAIN if network == "lodi" else HALOGEN_TRAIN), **train}
    return json.dumps({**{k: section[k] for k in parts}, "train": base})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_args(network, grid, out, tag, **train) -> list:
    return [
        "train",
        network,
        "--settings",
        settings(network, **train),
        "--grids",
        str(grid),
        "--checkpoint",
        str(out / f"{tag}.ckpt"),
        "--model",
        str(out / f"{tag}.pt"),
        "--history",
        str(out / f"{tag}.csv"),
        "--device",
        "cpu",
        "--threads",
        str(THREADS),
        "--timeout",
        "30",
    ]


def start_ranks(n: int, args: list) -> list[subprocess.Popen]:
    """``n`` ranks of ``python -m lodi_core <args>`` with torchrun's variables."""
    port = free_port()
    procs = []
    for rank in range(n):
        env = dict(
            os.environ,
            PYTHONPATH=str(REPO),
            OMP_NUM_THREADS=str(THREADS),
            **({} if n == 1 else dict(RANK=str(rank), WORLD_SIZE=str(n), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(n),
                                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))),
        )  # fmt: skip
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "lodi_core", *args],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    return procs


def finish(procs, timeout=300) -> list[tuple[int, str]]:
    return [(p.wait(timeout=timeout), p.stdout.read()) for p in procs]


def run_ranks(n, args):
    results = finish(start_ranks(n, args))
    for code, text in results:
        assert code == 0, text[-3000:]
    return results


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    return make_grid_file(tmp_path_factory.mktemp("ddp") / "grid.h5")


@pytest.fixture(scope="module")
def one_rank_lodi(grid, tmp_path_factory):
    out = tmp_path_factory.mktemp("one")
    run_ranks(1, train_args("lodi", grid, out, "ref"))
    return load_checkpoint(out / "ref.pt"), load_checkpoint(out / "ref.ckpt")


# ---------------------------------------------------------------------------------------------
# who is who, and how ranks are started


def test_world_from_torchrun_and_srun_variables():
    assert world_from_env({}) == World()
    w = world_from_env(dict(RANK="3", WORLD_SIZE="4", LOCAL_RANK="1", MASTER_ADDR="n1", MASTER_PORT="1234"))
    assert (w.rank, w.size, w.local_rank, w.master_addr, w.master_port) == (3, 4, 1, "n1", 1234)
    srun = dict(SLURM_PROCID="2", SLURM_STEP_NUM_TASKS="4", SLURM_LOCALID="0", SLURM_JOB_ID="77",
                SLURM_STEP_NODELIST="gpu[07-08]", SLURM_JOB_NODELIST="gpu[07-08]")  # fmt: skip
    w = world_from_env(srun)
    assert (w.rank, w.size, w.local_rank, w.master_addr, w.master_port) == (2, 4, 0, "gpu07", 20077)
    # inside an sbatch script but outside srun: SLURM describes the allocation, not this process
    batch = {k: v for k, v in srun.items() if k != "SLURM_STEP_NUM_TASKS"}
    assert world_from_env(batch) == World()


@pytest.mark.parametrize(
    "nodelist, first",
    [("node1", "node1"), ("gpu[07-09,12]", "gpu07"), ("a[3],b[1-2]", "a3"), ("login1,login2", "login1"),
     ("x-y[010-011]", "x-y010")],
)  # fmt: skip
def test_first_host_of_a_slurm_node_list(nodelist, first):
    assert first_host(nodelist) == first


def test_launch_command_per_place():
    rest = ["train", "lodi", "--threads", "8"]
    me = [sys.executable, "-m", "lodi_core", *rest]
    assert launch_command(1, 1, rest, env={}) == me
    local = launch_command(4, 1, rest, env={})
    assert local[:5] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4"]
    assert local[5:] == me[1:]
    slurm = launch_command(4, 2, rest, threads=8, env={"SLURM_JOB_ID": "5"})
    assert slurm == ["srun", "--kill-on-bad-exit=1", "--ntasks=4", "--nodes=2", "--cpus-per-task=8", *me]
    with pytest.raises(ValueError, match="needs SLURM"):
        launch_command(4, 2, rest, env={})
    with pytest.raises(ValueError, match="evenly"):
        launch_command(3, 2, rest, env={"SLURM_JOB_ID": "5"})
    # torchrun parses abbreviations of its own options anywhere in its command line: no option
    # of `train` may be one (`--log` was: `--log-dir`)
    from torch.distributed.run import get_args_parser

    from lodi_core.cli import main

    theirs = [o for a in get_args_parser()._actions for o in a.option_strings]
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    ours = ["--settings", "--grids", "--halos", "--checkpoint", "--model", "--history", "--device", "--threads",
            "--timeout", "--log-file"]  # fmt: skip
    assert not [(o, t) for o in ours for t in theirs if t.startswith(o)]
    # threads: SLURM's per task under srun, the job's shared by torchrun's local ranks
    assert _rank_threads(8, {"SLURM_STEP_NUM_TASKS": "4", "SLURM_CPUS_PER_TASK": "6"}) == 6
    assert _rank_threads(8, {"LOCAL_WORLD_SIZE": "4", "RANK": "0"}) == 2
    assert _rank_threads(8, {}) == 8


def test_a_batch_that_does_not_divide_over_the_ranks_is_refused_naming_the_keys():
    assert check_world(16, 4, 2, "lodi.train") == ""
    msg = check_world(6, 4, 1, "lodi.train")
    assert "lodi.train.batch_size (6)" in msg and "lodi.train.gpus x lodi.train.nodes" in msg
    with pytest.raises(ValueError, match="halogen.train.batch_size \\(6\\) must be a multiple of .* \\(4\\)"):
        World(rank=1, size=4).share(6, "halogen.train.batch_size")
    assert World(rank=1, size=2).share(4) == slice(2, 4)
    assert [list(World(rank=r, size=3).portion(7)) for r in range(3)] == [[0, 1], [2, 3], [4, 5, 6]]


# ---------------------------------------------------------------------------------------------
# the result does not depend on the number of ranks


@pytest.mark.parametrize("network", ["halogen", "lodi"])
def test_two_ranks_train_the_weights_of_one(network, grid, tmp_path, one_rank_lodi):
    if network == "lodi":
        ref_model, ref_ckpt = one_rank_lodi
    else:
        run_ranks(1, train_args(network, grid, tmp_path, "one"))
        ref_model, ref_ckpt = load_checkpoint(tmp_path / "one.pt"), load_checkpoint(tmp_path / "one.ckpt")
    run_ranks(2, train_args(network, grid, tmp_path, "two"))
    model, ckpt = load_checkpoint(tmp_path / "two.pt"), load_checkpoint(tmp_path / "two.ckpt")
    assert ckpt["world_size"] == 2 and ref_ckpt["world_size"] == 1
    assert ckpt["step"] == ref_ckpt["step"] > 0
    assert_same_network(model, ref_model)  # the kept (best, EMA for LODI) weights
    assert_same_network({**model, "model": ckpt["model"]}, {**ref_model, "model": ref_ckpt["model"]})  # last step
    # the logged losses are the global batch's and validation covers every box once
    for a, b in zip(ckpt["history"], ref_ckpt["history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
        assert a.get("val_loss", 0.0) == pytest.approx(b.get("val_loss", 0.0), rel=1e-4)
    assert any("val_loss" in row for row in ckpt["history"])
    # only rank 0 writes
    assert sorted(p.name for p in tmp_path.glob("two*")) == ["two.ckpt", "two.csv", "two.pt"]


# ---------------------------------------------------------------------------------------------
# signals, resume across world sizes, a dead rank


def wait_for_checkpoint(path, procs, timeout=120):
    t0 = time.time()
    while not path.exists():
        assert all(p.poll() is None for p in procs), [p.stdout.read()[-2000:] for p in procs]
        assert time.time() - t0 < timeout
        time.sleep(0.05)


def test_sigterm_to_one_rank_stops_both_and_the_checkpoint_resumes_on_one(grid, tmp_path, one_rank_lodi):
    ref_model, _ = one_rank_lodi
    args = train_args("lodi", grid, tmp_path, "run")
    procs = start_ranks(2, args)
    wait_for_checkpoint(tmp_path / "run.ckpt", procs)
    procs[1].send_signal(signal.SIGTERM)  # rank 1 only
    results = finish(procs, timeout=120)
    assert all(code == 1 for code, _ in results), [t[-2000:] for _, t in results]
    assert "stopped by signal" in results[0][1]  # rank 0 stopped because rank 1 was told to
    state = load_checkpoint(tmp_path / "run.ckpt")
    assert 0 < state["step"] < LODI_TRAIN["iterations"] and state["world_size"] == 2
    assert not (tmp_path / "run.pt").exists()
    run_ranks(1, args)  # resumed on one rank
    assert_same_network(load_checkpoint(tmp_path / "run.pt"), ref_model)


def test_a_one_rank_checkpoint_resumes_on_two(grid, tmp_path, one_rank_lodi):
    ref_model, _ = one_rank_lodi
    args = train_args("lodi", grid, tmp_path, "run")
    (proc,) = start_ranks(1, args)
    wait_for_checkpoint(tmp_path / "run.ckpt", [proc])
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(timeout=120) == 1
    assert load_checkpoint(tmp_path / "run.ckpt")["step"] < LODI_TRAIN["iterations"]
    run_ranks(2, args)
    state = load_checkpoint(tmp_path / "run.ckpt")
    assert state["world_size"] == 2 and state["step"] == LODI_TRAIN["iterations"]
    assert_same_network(load_checkpoint(tmp_path / "run.pt"), ref_model)


def test_a_rank_that_dies_fails_the_other_with_a_clear_message(grid, tmp_path):
    args = train_args("lodi", grid, tmp_path, "run", iterations=400)
    procs = start_ranks(2, args)
    wait_for_checkpoint(tmp_path / "run.ckpt", procs)
    procs[1].kill()
    t0 = time.time()
    code, text = finish(procs[:1], timeout=120)[0]
    procs[1].wait()
    assert code == 1, text[-2000:]
    assert time.time() - t0 < 60  # the collective timeout is 30 s; gloo usually sees the closed socket at once
    assert "another training process died or stalled" in text, text[-2000:]
    assert load_checkpoint(tmp_path / "run.ckpt")["step"] > 0  # the last checkpoint is kept

"""Command line.

- ``python -m lodi_core generate ...`` runs HALOgen + LODI on a DM-only snapshot outside
  Snakemake (bring your own dark matter).
- ``python -m lodi_core train {halogen,lodi} ...`` trains one network (rules train_halogen and
  train_lodi); started once per data-parallel rank.
- ``python -m lodi_core launch --processes N --nodes M -- train ...`` starts those ranks: the
  command itself for one process, ``srun`` inside a SLURM job, ``torchrun --standalone`` on one
  machine otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from .config import load_config
from .data.camels import read_box_size
from .data.grids import GridSpec, dm_only_grid
from .generation.halos import predict_halos
from .generation.jobs import (
    METHODS,
    GenerationConfig,
    generate_baseline,
    generate_volume,
    load_sampler,
    lodi_volume_attrs,
    write_volume,
)
from .models.halogen import load_halogen
from .physics.cosmology import Cosmology
from .runtime import pick_device, run_script


def _generate(args) -> None:
    config = load_config(args.config)
    inference = {
        **config["halogen"]["inference"],
        **{k: v for k, v in (("stride", args.stride), ("post_threshold", args.post_threshold)) if v is not None},
    }
    overrides = {
        k: v
        for k, v in (("overlap", args.overlap), ("batch_size", args.batch_size), ("resample", args.resample))
        if v is not None
    }
    if args.periodic:
        overrides["periodic"] = True
    if args.fp32:
        overrides["bf16"] = inference["bf16"] = False
    cfg = GenerationConfig.from_config(config, **overrides)
    device = pick_device(args.device)
    halogen, meta = load_halogen(args.halogen, device)
    g = meta["grid"]
    cell = float(g["box_size"]) / int(g["n_grid"])
    box = read_box_size(args.dm_snapshot)
    n = round(box / cell)
    spec = GridSpec(
        box_size=float(g["box_size"]),
        n_grid=int(g["n_grid"]),
        redshift=float(g.get("redshift") or 0.0),
        smoothing_radius=float(g["smoothing_radius"]),
        cosmology=Cosmology(**g["cosmology"]) if g.get("cosmology") else Cosmology(),
    )
    grids, attrs = dm_only_grid(args.dm_snapshot, spec, n, device)
    halos = predict_halos(halogen, meta, grids["dm"].cpu().numpy(), **inference, progress=True)
    sampler = load_sampler(args.lodi, cfg, device)
    cond = sampler.condition(halos.unsqueeze(0).to(device))[0]
    if args.method == "latent_overlap":
        x0 = generate_volume(sampler, cond, args.seed, args.name, cfg, progress=True).x0
    else:
        x0 = generate_baseline(sampler, cond, args.method, args.seed, args.name, cfg, progress=True)
    attrs.update(
        lodi_volume_attrs(
            attrs, args.method, args.seed, args.name, args.lodi, args.dm_snapshot, cfg, int(sampler.meta["box"])
        )
    )
    write_volume(args.out, sampler, x0, attrs)
    print(f"wrote {args.out}")


def launch_command(processes: int, nodes: int, rest: list, threads: int = 1, env=None) -> list:
    """The command that starts ``processes`` ranks of ``python -m lodi_core <rest>`` on
    ``nodes`` nodes: the command itself for one; ``srun`` (one task per rank with ``threads``
    CPUs, the job killed when any rank fails) inside a SLURM job; ``torchrun --standalone``
    on this machine."""
    env = os.environ if env is None else env
    me = [sys.executable, "-m", "lodi_core", *rest]
    if processes < 1 or nodes < 1 or processes % nodes:
        raise ValueError(f"{processes} training processes do not spread evenly over {nodes} nodes")
    if processes == 1:
        return me
    if env.get("SLURM_JOB_ID"):
        # srun does not take the job's cpus per task (SLURM >= 22.05; the executor plugin's job
        # step also clears SLURM_CPUS_PER_TASK): each task asks for the rule's threads again
        return [
            "srun", "--kill-on-bad-exit=1", f"--ntasks={processes}", f"--nodes={nodes}", f"--cpus-per-task={threads}",
            *me,
        ]  # fmt: skip
    if nodes > 1:
        raise ValueError(
            f"training on {nodes} nodes needs SLURM (snakemake --profile slurm); on one machine set nodes: 1"
        )
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", *me[1:]]


def _launch(args) -> int:
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    try:
        cmd = launch_command(args.processes, args.nodes, rest, args.threads)
    except ValueError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 2
    print("launch:", " ".join(cmd), file=sys.stderr, flush=True)
    os.execvp(cmd[0], cmd)


def _rank_threads(threads: int, env=None) -> int:
    """Threads of one rank: SLURM's cpus per task under srun, else the rule's threads shared
    by the ranks torchrun started on this machine."""
    env = os.environ if env is None else env
    if env.get("SLURM_STEP_NUM_TASKS") and env.get("SLURM_CPUS_PER_TASK") and "RANK" not in env:
        return int(env["SLURM_CPUS_PER_TASK"])
    return max(1, threads // int(env.get("LOCAL_WORLD_SIZE", 1)))


def _train(args) -> int:
    from .io import save_checkpoint
    from .runtime import StopRequested
    from .training.distributed import DistributedFailure, init_process_group, rank_device, shutdown, world_from_env

    world = world_from_env()

    def train() -> None:
        settings = json.loads(args.settings)
        device = rank_device(pick_device(args.device), world)
        try:
            init_process_group(world, device, args.timeout)
            common = dict(
                checkpoint_path=args.checkpoint,
                history_path=args.history,
                device=device,
                expect=settings.get("expect"),
                world=world,
            )
            if args.network == "halogen":
                from .models.halogen import HalogenConfig, LossConfig
                from .training.halogen import HalogenTrainConfig, train_halogen

                content = train_halogen(
                    args.grids,
                    HalogenConfig.from_dict(settings["network"]),
                    HalogenTrainConfig.from_dict(settings["train"]),
                    LossConfig.from_dict(settings["loss"]),
                    **common,
                )
            else:
                from .models.unet import DenoiserConfig
                from .models.vdm import VDMConfig
                from .training.lodi import LodiTrainConfig, train_lodi

                content = train_lodi(
                    args.grids,
                    DenoiserConfig.from_dict(settings["network"]),
                    VDMConfig.from_dict(settings["vdm"]),
                    LodiTrainConfig.from_dict(settings["train"]),
                    halo_files=[h for h in args.halos if h],  # Snakemake writes '' for no files
                    **common,
                )
            if world.is_main:
                save_checkpoint(args.model, content)
        except (DistributedFailure, StopRequested) as err:
            logging.getLogger("lodi").error("%s", err)
            sys.exit(1)
        finally:
            shutdown()

    run_script(
        train,
        args.log_file if world.is_main else None,
        _rank_threads(args.threads),
        logging.INFO if world.is_main else logging.WARNING,
    )
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lodi_core", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    tr = sub.add_parser("train", help="train HALOgen or LODI (one data-parallel rank; resumes from the checkpoint)")
    tr.add_argument("network", choices=("halogen", "lodi"))
    tr.add_argument("--settings", required=True, help="JSON: the config's network, loss/vdm and train sections, expect")
    tr.add_argument("--grids", nargs="+", required=True, help="training grid files")
    tr.add_argument(
        "--halos", nargs="*", default=[], help="LODI with condition 'halogen': HALOgen's halos of the grids"
    )
    tr.add_argument("--checkpoint", required=True)
    tr.add_argument("--model", required=True, help="model file written at the end (rank 0)")
    tr.add_argument("--history", required=True, help="loss curves (CSV)")
    tr.add_argument("--device", default="auto")
    tr.add_argument("--threads", type=int, default=1, help="CPU threads of the job (shared by the ranks of a machine)")
    tr.add_argument("--timeout", type=float, default=900.0, help="collective timeout in seconds (several ranks)")
    tr.add_argument("--log-file", help="log file (rank 0)")
    la = sub.add_parser("launch", help="start the ranks of a training run: srun in SLURM, torchrun otherwise")
    la.add_argument("--processes", type=int, required=True, help="ranks in all (GPUs per node x nodes)")
    la.add_argument("--nodes", type=int, default=1)
    la.add_argument("--threads", type=int, default=1, help="CPUs of each rank (srun --cpus-per-task)")
    la.add_argument("rest", nargs=argparse.REMAINDER, help="-- and the lodi_core command of each rank")
    gen = sub.add_parser("generate", help="DM-only snapshot -> HALOgen halo channels -> LODI T_b volume (HDF5, mK)")
    gen.add_argument(
        "--dm-snapshot",
        required=True,
        help="DM-only snapshot (Gadget/CAMELS HDF5), any box size at the training resolution",
    )
    gen.add_argument("--halogen", required=True, help="trained HALOgen model (results/halogen/model.pt)")
    gen.add_argument("--lodi", required=True, help="trained LODI model (results/lodi/model.pt)")
    gen.add_argument("--out", required=True, help="output HDF5 file")
    gen.add_argument(
        "--config",
        default="config/config.yaml",
        help="workflow config whose 'generation' and 'halogen.inference' settings apply "
        "(default: %(default)s); the options below override them",
    )
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--name", default="byo", help="simulation name (part of every box's noise seed)")
    gen.add_argument("--method", choices=METHODS, default="latent_overlap")
    gen.add_argument("--overlap", type=int)
    gen.add_argument("--periodic", action="store_true", help="boxes wrap around the periodic volume")
    gen.add_argument("--batch-size", type=int)
    gen.add_argument("--resample", type=int)
    gen.add_argument("--stride", type=int, help="HALOgen sliding-window stride")
    gen.add_argument("--post-threshold", type=float)
    gen.add_argument("--device", default="auto")
    gen.add_argument("--fp32", action="store_true", help="no bf16 autocast (HALOgen and LODI)")
    args = parser.parse_args(argv)
    if args.command == "launch":
        return _launch(args)
    if args.command == "train":
        return _train(args)
    run_script(lambda: _generate(args))
    return 0

"""Command line: ``python -m lodi_core generate ...`` runs HALOgen + LODI on a DM-only
snapshot outside Snakemake (bring your own dark matter)."""

from __future__ import annotations

import argparse
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
    lodi_volume_attrs,
    write_volume,
)
from .io import InputError
from .models.halogen import load_halogen
from .models.lodi import BoxSampler
from .physics.cosmology import Cosmology
from .runtime import pick_device, setup_logging


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
    sampler = BoxSampler.load(args.lodi, device, cfg.bf16, cfg.variance, cfg.channels_last, cfg.clip)
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lodi_core", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
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
    setup_logging()
    try:
        _generate(args)
    except InputError as err:
        print(f"ERROR (bad input): {err}", file=sys.stderr)
        return 1
    return 0

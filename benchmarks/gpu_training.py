"""Train HALOgen and LODI for real on synthetic simulations at the paper's resolution
(128^3 particles in 12.5 Mpc/h gridded on 128^3: cells of 0.098 Mpc/h as CAMELS at 256^3 in
25 Mpc/h), then generate a held-out simulation and measure fidelity: HALOgen's per-channel
PDF medians and P(k) residuals, LODI's P(k) of T_b against the target box by box, and the
whole-volume latent overlap and tiling metrics. A GPU run outside Snakemake (the device has
no Snakemake), with the same lodi_core functions the rules call.
Run: python benchmarks/gpu_training.py [--quick] [--halogen-epochs E] [--lodi-iterations I]"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import PAPER_CONFIG, ROOT, write

from lodi_core.analysis.halogen_eval import evaluate_halos
from lodi_core.analysis.metrics import power_residual, volume_metrics
from lodi_core.data.boxes import box_origins
from lodi_core.data.grids import GridSpec, make_grids
from lodi_core.data.synthetic import make_simulation
from lodi_core.generation.halos import predict_halos
from lodi_core.generation.jobs import GenerationConfig, generate_baseline, generate_volume
from lodi_core.io import read_grids, save_checkpoint, write_grids
from lodi_core.models.halogen import HalogenConfig, LossConfig, load_halogen
from lodi_core.models.lodi import BoxSampler
from lodi_core.models.unet import DenoiserConfig
from lodi_core.models.vdm import VDMConfig
from lodi_core.runtime import setup_logging
from lodi_core.training.halogen import HalogenTrainConfig, train_halogen
from lodi_core.training.lodi import LodiTrainConfig, train_lodi

p = argparse.ArgumentParser()
p.add_argument("--quick", action="store_true")
p.add_argument("--halogen-epochs", type=int, default=30)
p.add_argument("--lodi-iterations", type=int, default=4000)
p.add_argument("--seeds", type=int, default=2)
args = p.parse_args()
setup_logging()
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
work = Path(tempfile.mkdtemp(prefix="lodi_gpu_"))
out_dir = ROOT / "results" / "gpu_training"  # every table; $OUT gets them as one archive
out_dir.mkdir(parents=True, exist_ok=True)

if args.quick:
    NP, BOX, NG, WINDOW, LBOX = 32, 8.0, 32, 16, 8
    halo_net = HalogenConfig.from_config(PAPER_CONFIG, channels=(4, 8, 8), bottleneck_channels=8, blocks_per_stage=1)
    den_net = DenoiserConfig.from_config(
        PAPER_CONFIG, channels=(8, 16), blocks_per_level=1, embed_dim=16, norm_groups=4, attention_heads=2
    )
    T = 10
else:
    NP, BOX, NG, WINDOW, LBOX = 128, 12.5, 128, 64, 32
    halo_net = HalogenConfig.from_config(PAPER_CONFIG, channels=(32, 64, 128), bottleneck_channels=256)
    den_net = DenoiserConfig.from_config(PAPER_CONFIG)
    T = 50
SIMS = {"CV_0": 201, "CV_1": 202, "CV_2": 203, "CV_3": 204}  # CV_3 held out
timing = {}


def main():
    t0 = time.time()
    spec = GridSpec(box_size=BOX, n_grid=NG, allow_empty_channels=args.quick)
    grid_files = {}
    for sim, seed in SIMS.items():
        paths = make_simulation(work / "camels", sim, seed, n_particles=NP, box_size=BOX, device=device, progress=False)
        grids, attrs = make_grids(paths["hydro"], paths["groups"], paths["dm_only"], spec, device)
        grid_files[sim] = work / f"{sim}.h5"
        write_grids(grid_files[sim], grids, attrs)
        for f in paths.values():
            if isinstance(f, Path):
                f.unlink()
    timing["simulations_and_grids_s"] = time.time() - t0

    t0 = time.time()
    hcfg = HalogenTrainConfig.from_config(
        PAPER_CONFIG,
        window=WINDOW,
        train_stride=WINDOW // 2,
        augment_copies=4,
        batch_size=16 if not args.quick else 4,
        epochs=args.halogen_epochs,
        warm_epochs=max(1, args.halogen_epochs // 10),
        cycle_epochs=max(2, args.halogen_epochs // 3),
    )
    content = train_halogen(
        [grid_files["CV_0"], grid_files["CV_1"]],
        halo_net,
        hcfg,
        LossConfig.from_config(PAPER_CONFIG),
        work / "h.ckpt",
        out_dir / "halogen_history.csv",
        device,
        progress=False,
    )
    save_checkpoint(work / "halogen.pt", content)
    timing["halogen_training_s"] = time.time() - t0
    net, meta = load_halogen(work / "halogen.pt", device)
    test, attrs = read_grids(grid_files["CV_3"])
    t0 = time.time()
    inference = {**PAPER_CONFIG["halogen"]["inference"], "stride": 16 if not args.quick else 8}
    pred = predict_halos(net, meta, test["dm"], **inference).cpu().numpy()
    timing["halogen_inference_s"] = time.time() - t0
    halo_eval = evaluate_halos(pred, test["halos"], BOX)
    for name, table in halo_eval.items():
        table.to_csv(out_dir / f"halogen_eval_{name}.csv", index=False)
    write(
        "gpu_training_halogen",
        {
            "timing": timing,
            "summary": halo_eval["summary"].to_dict("records"),
            "pk": halo_eval["pk"].round(4).to_dict("records"),
        },
    )

    t0 = time.time()
    lcfg = LodiTrainConfig.from_config(
        PAPER_CONFIG,
        box=LBOX,
        candidate_stride=LBOX // 2,
        batch_size=16 if not args.quick else 4,
        iterations=args.lodi_iterations,
        lr=2e-4,
        warmup=max(1, args.lodi_iterations // 20),
        ema_decay=0.999,
        checkpoint_every=max(1, args.lodi_iterations // 4),
        validate_every=max(1, args.lodi_iterations // 8),
        val_boxes=64 if not args.quick else 4,
        important_log_rho=10.0,
    )
    content = train_lodi(
        [grid_files[s] for s in ("CV_0", "CV_1", "CV_2")],
        den_net,
        VDMConfig.from_config(PAPER_CONFIG, timesteps=T),
        lcfg,
        work / "l.ckpt",
        out_dir / "lodi_history.csv",
        device,
        progress=False,
    )
    save_checkpoint(work / "lodi.pt", content)
    timing["lodi_training_s"] = time.time() - t0
    sampler = BoxSampler.load(work / "lodi.pt", device)
    cfg = GenerationConfig.from_config(PAPER_CONFIG, overlap=4, batch_size=128, shards=1)
    rows, boxwise = [], []
    for cond_name, halos in (("halogen", torch.from_numpy(pred)), ("true_halos", torch.from_numpy(test["halos"]))):
        cond = sampler.condition(halos.unsqueeze(0).to(device))[0]
        for seed in range(args.seeds):
            t0 = time.time()
            x0 = generate_volume(sampler, cond, seed, "CV_3", cfg).x0
            timing[f"generate_{cond_name}_seed{seed}_s"] = time.time() - t0
            vols = {
                "latent_overlap": sampler.to_tb(x0).cpu().numpy(),
                "tiling": sampler.to_tb(generate_baseline(sampler, cond, "tiling", seed, "CV_3", cfg)).cpu().numpy(),
            }
            for method, tb in vols.items():
                a = {"box_size": BOX, "n_grid": NG, "box": LBOX, "overlap": 4, "method": method}
                rows.append(
                    {"condition": cond_name, "seed": seed, "method": method, **volume_metrics(tb, test["tb"], a)}
                )
                table = power_residual(tb, test["tb"], BOX)
                table.to_csv(out_dir / f"pk_{cond_name}_{method}_seed{seed}.csv", index=False)
            if seed == 0:  # P(k) of T_b box by box (issue 5), latent-overlap volume
                axis = box_origins(NG, LBOX, 4)
                for o in [(i, j, k) for i in axis[::2] for j in axis[::2] for k in axis[::2]]:
                    sl = tuple(slice(a0, a0 + LBOX) for a0 in o)
                    t = power_residual(vols["latent_overlap"][sl], test["tb"][sl], BOX * LBOX / NG)
                    boxwise.append(
                        {
                            "condition": cond_name,
                            "origin": o,
                            **{f"residual_k{k:.1f}": r for k, r in zip(t["k"], t["residual"])},
                        }
                    )
    import pandas as pd

    pd.DataFrame(rows).to_csv(out_dir / "metrics.csv", index=False)
    pd.DataFrame(boxwise).to_csv(out_dir / "boxwise_pk.csv", index=False)
    np.save(
        out_dir / "slices.npy",
        np.stack([test["tb"][NG // 2], vols["latent_overlap"][NG // 2], vols["tiling"][NG // 2]]),
    )
    summary = {
        "device": str(device),
        "particles": NP,
        "grid": NG,
        "box_mpc_h": BOX,
        "timing": timing,
        "halogen": {
            "epochs": args.halogen_epochs,
            "summary": halo_eval["summary"].to_dict("records"),
            "pk_residual_by_channel": {
                int(c): g[["k", "residual", "r"]].round(4).to_dict("records")
                for c, g in halo_eval["pk"].groupby("channel")
            }
            if len(halo_eval["pk"])
            else {},
        },
        "lodi": {"iterations": args.lodi_iterations, "metrics": rows},
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    write(
        "gpu_training" + ("_quick" if args.quick else ""),
        {"timing": timing, "lodi_metrics": rows, "halogen_summary": summary["halogen"]["summary"]},
    )
    if os.environ.get("OUT"):  # the device tool brings back at most 8 files: one archive
        import tarfile

        with tarfile.open(Path(os.environ["OUT"]) / "gpu_training_files.tar.gz", "w:gz") as tar:
            tar.add(out_dir, arcname="gpu_training")


if __name__ == "__main__":
    main()

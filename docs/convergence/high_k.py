"""Where LODI's excess power at k >~ 10 h/Mpc forms: along the reverse trajectory, inside one
box, with no stitching. It made docs/convergence/high_k.csv and high_k.png ("Where the excess
at k >~ 10 comes from" in docs/convergence.md):

    python docs/convergence/high_k.py results out/two_s0/model.pt CV_2 --label "true halos, w = 0.5" \\
        --generation '{"guidance": 0.5}' --starts noise,0,4,8 \\
        --samples out/two_s[012]/held_out_CV_2_w0.5_seed*.npy --csv docs/convergence/high_k.csv

The test simulation's volume is cut into the model's training boxes (64 boxes of 16^3 for the
default). For each start level L (log-SNR), the target's normalised log10 T_b is diffused to
the step of the sampling grid nearest L (Eq. 8) and the sampler (:func:`vdm.sample_loop`, with
the generation settings: guidance, clipping, variance) runs from there to x; ``noise`` starts
from pure noise, as generation does. Each box's T_b (mK) and normalised log10 T_b, and the
target's, are tapered by a 3D Hann window (no leakage from the box faces) and their power
averaged over the boxes in shells of |k|; the CSV gets the ratio generated/target per shell,
in both spaces. A ratio above 1 from a start level means the steps below that level add power
the data do not have. ``--halos`` conditions on a HALOgen file instead of the true halos.
``--samples`` adds two rows per shell for whole generated volumes (.npy T_b, e.g. held_out.py's):
their mean P(k) over the expected power (the mean of the target's and its hi_redraw draws',
generated/<sim>/hi_redraw_seed*.h5), as is and with every volume clipped at the target's 99th
percentile of T_b (start ``volume`` and ``volume_clip99``): where the clipped ratio is 1, the
excess sits in the brightest 1 % of the voxels. With ``--samples`` and ``--csv``, <csv>_peaks.csv
gets how sharp the bright peaks are: for every local maximum (3^3 neighbourhood) above the
target's 99.5th percentile, its T_b over the mean of its 6 face neighbours (1.61 for a point
source under the data's Gaussian smoothing of one cell), median and 90th percentile over the
peaks of the samples and of the references (target and draws), and their one-point distribution
(mean, 50th and 99th percentiles of T_b over the target's). About 10 s per start level on 2
CPU cores.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.ndimage import maximum_filter

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from hi_redraw import draw_volumes, gather  # noqa: E402

from lodi_core.analysis.metrics import power_residual  # noqa: E402
from lodi_core.generation.jobs import GenerationConfig, load_condition, load_sampler  # noqa: E402
from lodi_core.io import read_grids  # noqa: E402
from lodi_core.models.vdm import diffuse, sample_loop  # noqa: E402

SHELLS = [(0, 3), (3, 6), (6, 9), (9, 11), (11, 13), (13, 16), (16, 20), (20, 28)]


def tapered_power(boxes: np.ndarray, box_size: float) -> np.ndarray:
    """Mean over boxes (B, b, b, b) of |FFT|^2 of each box minus its mean, times a 3D Hann
    window, in the |k| shells of SHELLS (h/Mpc; ``box_size`` in Mpc/h)."""
    b = boxes.shape[-1]
    w = np.hanning(b + 2)[1:-1]
    window = w[:, None, None] * w[None, :, None] * w[None, None, :]
    f = np.abs(np.fft.fftn((boxes - boxes.mean(axis=(1, 2, 3), keepdims=True)) * window, axes=(1, 2, 3))) ** 2
    f = f.mean(axis=0)
    k1 = np.fft.fftfreq(b) * b * 2 * np.pi / box_size
    k = np.sqrt(k1[:, None, None] ** 2 + k1[None, :, None] ** 2 + k1[None, None, :] ** 2)
    return np.array([f[(k >= lo) & (k < hi)].mean() for lo, hi in SHELLS])


def shell_power(volume: np.ndarray, box_size: float) -> np.ndarray:
    """P(k) of a whole periodic volume (:func:`power_residual`'s binning), mode-weighted into
    the |k| shells of SHELLS."""
    table = power_residual(volume, volume, box_size)
    k, pk, n = table["k"].to_numpy(), table["pk_target"].to_numpy(), table["n_modes"].to_numpy()
    return np.array(
        [np.sum((pk * n)[(k >= lo) & (k < hi)]) / max(np.sum(n[(k >= lo) & (k < hi)]), 1) for lo, hi in SHELLS]
    )


def volume_rows(target: np.ndarray, references: list, samples: list, box_size: float) -> list[dict]:
    """Mean P(k) of the ``samples`` over the expected power (the mean of the ``references``':
    target and draws), as is and clipped at the target's 99th percentile (module docstring),
    per shell."""
    rows = []
    for start, level in (("volume", np.inf), ("volume_clip99", np.percentile(target, 99.0))):
        expected = np.mean([shell_power(np.minimum(v, level), box_size) for v in references], axis=0)
        generated = np.mean([shell_power(np.minimum(v, level), box_size) for v in samples], axis=0)
        for (lo, hi), pg, pe in zip(SHELLS, generated, expected):
            rows.append(
                {"start": start, "start_logsnr": np.nan, "space": "linear", "k_lo": lo, "k_hi": hi, "ratio": pg / pe}
            )
    return rows


def peak_sharpness(volume: np.ndarray, level: float) -> np.ndarray:
    """T_b of each local maximum (3^3, periodic) above ``level`` over the mean of its 6 face
    neighbours."""
    peaks = (volume == maximum_filter(volume, size=3, mode="wrap")) & (volume > level)
    neighbours = sum(np.roll(volume, shift, axis) for axis in range(3) for shift in (1, -1)) / 6.0
    return volume[peaks] / neighbours[peaks]


def peak_rows(sim: str, target: np.ndarray, references: list, samples: list) -> list[dict]:
    """Median and 90th percentile of :func:`peak_sharpness` over the samples' peaks and over the
    references' (target and hi_redraw draws), peaks above the target's 99.5th percentile; and
    where the one-point distribution sits: the volumes' mean T_b and their 50th and 99th
    percentiles over the target's (``tb_mean``, ``tb_q50``, ``tb_q99``, means over the volumes)."""
    level = np.percentile(target, 99.5)
    rows = []
    for kind, volumes in (("samples", samples), ("references", references)):
        ratios = np.concatenate([peak_sharpness(v, level) for v in volumes])
        rows.append({"sim": sim, "volumes": kind, "count": len(volumes), "peaks_per_volume": len(ratios) / len(volumes),
                     "median": float(np.median(ratios)), "p90": float(np.percentile(ratios, 90)),
                     "tb_mean": float(np.mean([v.mean() / target.mean() for v in volumes]))}
                    | {f"tb_q{q}": float(np.mean([np.percentile(v, q) / np.percentile(target, q) for v in volumes]))
                       for q in (50, 99)})  # fmt: skip
    return rows


def main(argv=None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", type=Path, help="results folder with grids/<sim>.h5")
    p.add_argument("model", type=Path, help="LODI model file")
    p.add_argument("sim", help="test simulation")
    p.add_argument("--halos", type=Path, help="condition on this HALOgen file (default: the true halos)")
    p.add_argument("--generation", default="{}", help="generation overrides (JSON)")
    p.add_argument(
        "--starts", default="noise,-4,0,2,4,8", help="start log-SNRs, comma-separated; noise: pure noise; empty: none"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--samples", nargs="*", default=[], help="generated T_b volumes (.npy) of sim")
    p.add_argument("--label", default="")
    p.add_argument("--csv", type=Path, help="gather the rows here (rows of the same label and sim replaced)")
    p.add_argument("--config", type=Path, default=REPO / "config" / "config.yaml")
    a = p.parse_args(argv)

    cfg = GenerationConfig.from_config(a.config, **json.loads(a.generation))
    sampler = load_sampler(a.model, cfg, "cpu")
    grid_path = a.results / "grids" / f"{a.sim}.h5"
    cond, _ = load_condition(sampler, a.halos or grid_path)
    tb, attrs = read_grids(grid_path, ("tb",))
    x = sampler.tb_transform.forward(torch.from_numpy(tb["tb"]))
    b, n = int(sampler.meta["box"]), x.shape[-1]
    box_size = float(attrs["box_size"]) * b / n
    origins = [
        (i, j, k) for i in range(0, n - b + 1, b) for j in range(0, n - b + 1, b) for k in range(0, n - b + 1, b)
    ]
    x_boxes = torch.stack([x[i : i + b, j : j + b, k : k + b] for i, j, k in origins])[:, None]
    c_boxes = torch.stack([cond[:, i : i + b, j : j + b, k : k + b] for i, j, k in origins])
    target = {
        "log": tapered_power(x_boxes[:, 0].numpy(), box_size),
        "linear": tapered_power(sampler.to_tb(x_boxes[:, 0]).numpy(), box_size),
    }
    g = sampler.gammas
    rows = []
    for start in filter(None, a.starts.split(",")):
        gen = torch.Generator().manual_seed(a.seed)

        def noise():
            return torch.randn(x_boxes.shape, generator=gen)

        if start == "noise":
            i0, z = len(g) - 1, noise()
        else:
            i0 = int(np.argmin(np.abs(-g.numpy() - float(start))))
            z = diffuse(x_boxes, g[i0].expand(len(origins)), noise())
        x_var = None if sampler.x_var is None else sampler.x_var[: i0 + 1]
        out = sample_loop(lambda z, i: sampler.predict_noise(z, i, c_boxes), g[: i0 + 1], z, noise, x_var=x_var)
        generated = {
            "log": tapered_power(out[:, 0].numpy(), box_size),
            "linear": tapered_power(sampler.to_tb(out[:, 0]).numpy(), box_size),
        }
        for space in ("linear", "log"):
            for (lo, hi), pg, pt in zip(SHELLS, generated[space], target[space]):
                rows.append(
                    {
                        "label": a.label,
                        "sim": a.sim,
                        "start": start,
                        "start_logsnr": float(-g[i0]),
                        "space": space,
                        "k_lo": lo,
                        "k_hi": hi,
                        "ratio": pg / pt,
                    }
                )
        print(start, " ".join(f"{r['ratio']:.2f}" for r in rows[-2 * len(SHELLS) :]), flush=True)
    if a.samples:
        references, samples = [tb["tb"], *draw_volumes(a.results, a.sim)], [np.load(p) for p in a.samples]
        for row in volume_rows(tb["tb"], references, samples, float(attrs["box_size"])):
            rows.append({"label": a.label, "sim": a.sim, **row})
        print("volume", " ".join(f"{r['ratio']:.2f}" for r in rows[-2 * len(SHELLS) :]), flush=True)
        peaks = pd.DataFrame([{"label": a.label, **r} for r in peak_rows(a.sim, tb["tb"], references, samples)])
        print(peaks.round(3).to_string(index=False), flush=True)
        if a.csv:
            gather(peaks, a.csv.with_name(a.csv.stem + "_peaks.csv"), ["label", "sim"])
    table = pd.DataFrame(rows)
    if a.csv:
        gather(table, a.csv, ["label", "sim"])
    return table


if __name__ == "__main__":
    main()

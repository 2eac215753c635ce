"""What every figure shares: matplotlib (Agg), the methods' labels and colours, slabs and log
maps of T_b, box corners, and the small drawing helpers."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..analysis.metrics import K_LIMITS, TB_FLOOR_FRACTION, box_axis_origins  # noqa: E402
from ..data.boxes import box_edge_planes  # noqa: E402
from ..io import atomic_path  # noqa: E402

__all__ = ["TB_FLOOR_FRACTION", "plt"]

#: thickness (Mpc/h) of the slabs the maps average over (Fig. 5: "about 0.9 Mpc/h")
SLAB_MPC = 0.9
#: the ±band (fraction) drawn on residual panels (Figs. 10-11)
RESIDUAL_BAND = 0.1
#: labels and colours of the generation methods, in the paper's order (Fig. 5), then the
#: cheap baselines (lodi_core.models.halo_model, lodi_core.models.ldl) and the HI re-drawn floor
METHOD_LABELS = {
    "latent_overlap": "latent overlap (LODI)",
    "averaging": "averaging",
    "tiling": "tiling",
    "halo_model": "halo model (HALOgen halos)",
    "halo_model_true": "halo model (true halos)",
    "ldl": "LDL (Lagrangian)",
    "hi_redraw": "HI re-drawn (exact sample)",
}
METHOD_COLOURS = {
    "latent_overlap": "C3",
    "averaging": "C2",
    "tiling": "C0",
    "halo_model": "C1",
    "halo_model_true": "C5",
    "ldl": "C9",
    "hi_redraw": "C7",
}


def realisations(method: str, count: int) -> str:
    """How many volumes a method's curve averages, named by what they are: the HI scatter's
    draws for ``hi_redraw``, sampling seeds otherwise ("2 draws", "1 seed")."""
    noun = "draw" if method == "hi_redraw" else "seed"
    return f"{count} {noun}{'' if count == 1 else 's'}"


def save_figure(fig, *paths) -> None:
    """Save one figure under each path (format from the suffix), atomically."""
    for p in paths:
        p = Path(p)
        with atomic_path(p) as tmp:
            fig.savefig(tmp, format=p.suffix.lstrip("."), dpi=130, bbox_inches="tight")
    plt.close(fig)


def log_slice(field, depth: int = 1, floor: float | None = None):
    """log10 of the mean over ``depth`` cells of the first axis (projection of a slab)."""
    f = np.asarray(field, dtype=np.float64)[:depth].mean(axis=0)
    positive = f[f > 0]
    if floor is None:
        floor = positive.min() if positive.size else 1.0
    return np.log10(np.maximum(f, floor))


def slab_depth(box_size: float, n: int, thickness: float = SLAB_MPC) -> int:
    """Cells in a slab ``thickness`` Mpc/h thick (at least one)."""
    return max(1, int(round(thickness / (float(box_size) / n))))


def slab_map(field, depth: int, axis: int = 0, start: int | None = None) -> np.ndarray:
    """Mean over ``depth`` cells along ``axis`` starting at ``start`` (default: centred);
    the two other axes keep their order."""
    f = np.asarray(field, dtype=np.float64)
    n = f.shape[axis]
    start = n // 2 - depth // 2 if start is None else start
    return np.take(f, np.arange(start, start + depth) % n, axis=axis).mean(axis=axis)


def log_tb(img, floor: float) -> np.ndarray:
    """log10(T_b + floor) of a map or volume (mK)."""
    return np.log10(np.maximum(np.asarray(img, dtype=np.float64), 0.0) + floor)


def box_corners(attrs: dict) -> list[int]:
    """Voxel planes where the boxes of a generated volume start or end along one axis,
    with the volume's own faces (0 and N): where Figs. 5 and 8 mark the box corners."""
    axis, box, _ = box_axis_origins(attrs)
    n = int(attrs["n_grid"])
    return [0, *box_edge_planes(axis, box, n), n]


def show(fig, ax, img, extent, cmap, vmin, vmax, title, label=None, colorbar=True):
    """A map with its first axis horizontal (and, unless ``colorbar`` is False, a colour bar)."""
    im = ax.imshow(
        np.asarray(img).T, origin="lower", extent=extent, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest"
    )
    ax.set_title(title, fontsize=9)
    if colorbar:
        cb = fig.colorbar(im, ax=ax, shrink=0.8)
        if label:
            cb.set_label(label, fontsize=8)
    return im


def mark_corners(ax, edges, cell: float):
    """Green crosses at the corners of the box grid (Figs. 5 and 8)."""
    pos = np.asarray(edges, dtype=np.float64) * cell
    if pos.size:
        xx, yy = np.meshgrid(pos, pos, indexing="ij")
        ax.plot(xx.ravel(), yy.ravel(), "+", color="lime", ms=5, mew=0.9, ls="none")


def percentile_limits(*imgs, lo=1.0, hi=99.7):
    v = np.concatenate([np.asarray(i, dtype=np.float64)[np.isfinite(i)].ravel() for i in imgs])
    return (float(np.percentile(v, lo)), float(np.percentile(v, hi))) if v.size else (0.0, 1.0)


def mean_std(tables: list[pd.DataFrame], column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k and the mean and standard deviation of ``column`` over tables with the same bins."""
    k = tables[0]["k"].to_numpy()
    if any(len(t) != len(k) or not np.allclose(t["k"].to_numpy(), k) for t in tables):
        raise ValueError("tables have different k bins; are the volumes of different sizes?")
    values = np.stack([t[column].to_numpy(dtype=np.float64) for t in tables])
    return k, values.mean(axis=0), values.std(axis=0)


def band(ax, k, mean, std, colour, label, lw=1.4):
    ax.plot(k, mean, color=colour, lw=lw, label=label)
    ax.fill_between(k, mean - std, mean + std, color=colour, alpha=0.25, lw=0)


def residual_axes(ax, k_max: float | None = None):
    """Zero line, the ±10 % band, log k; called after the curves are drawn, it scales the
    y-axis to the curves at k <= the metrics' largest k (10 h/Mpc): beyond the Gaussian
    smoothing scale the target has almost no power, and a residual of 10^8 there would
    flatten every residual that is scored."""
    ys = [
        np.asarray(line.get_ydata(), float)[np.asarray(line.get_xdata(), float) <= max(K_LIMITS)]
        for line in ax.get_lines()
        if len(line.get_xdata()) > 2
    ]
    ys = np.concatenate(ys) if ys else np.empty(0)
    ys = ys[np.isfinite(ys)]
    if ys.size:
        lo, hi = min(float(ys.min()), -2 * RESIDUAL_BAND), max(float(ys.max()), 2 * RESIDUAL_BAND)
        pad = 0.08 * (hi - lo)
        ax.set_ylim(lo - pad, hi + pad)
    ax.axhline(0, color="k", lw=0.6)
    ax.axhspan(-RESIDUAL_BAND, RESIDUAL_BAND, color="0.85", zorder=0, label=f"±{RESIDUAL_BAND:.0%}")
    ax.set_xscale("log")
    ax.set_xlabel("k [h/Mpc]")
    ax.set_ylabel("P_gen / P_true - 1")
    if k_max is not None:
        ax.set_xlim(right=k_max)


def method_order(methods) -> list[str]:
    """The paper's order (latent overlap, averaging, tiling), then any others."""
    return [m for m in METHOD_LABELS if m in methods] + [m for m in methods if m not in METHOD_LABELS]

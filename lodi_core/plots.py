"""Figures (matplotlib, Agg). Each ``*_figure`` function takes arrays/tables and writes PDF
and PNG; each ``plot_*`` function reads the workflow's files and calls one of them (what a
figure rule's script runs). Figs. 5-11 of Mishra, Trotta & Viel (2025), plus r(k), the
one-point PDF of T_b and posterior maps over seeds (beyond the paper)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .io import atomic_path, read_grids, read_hdf5  # noqa: E402
from .spectra import overdensity, pdf, power_spectrum  # noqa: E402

#: T_b floor of log displays and PDFs, as a fraction of the target's <T_b> (as metrics.pdf_distance)
TB_FLOOR_FRACTION = 1e-3
#: thickness (Mpc/h) of the slabs the maps average over (Fig. 5: "about 0.9 Mpc/h")
SLAB_MPC = 0.9
#: the ±band (fraction) drawn on residual panels (Figs. 10-11)
RESIDUAL_BAND = 0.1
#: labels and colours of the generation methods, in the paper's order (Fig. 5), then the
#: baselines of lodi_core.baselines
METHOD_LABELS = {
    "latent_overlap": "latent overlap (LODI)", "averaging": "averaging", "tiling": "tiling",
    "halo_model": "halo model (HALOgen halos)", "halo_model_true": "halo model (true halos)", "ldl": "LDL (Lagrangian)",
}
METHOD_COLOURS = {"latent_overlap": "C3", "averaging": "C2", "tiling": "C0", "halo_model": "C1", "halo_model_true": "C5", "ldl": "C9"}


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


def grids_figure(grids: dict, attrs: dict, title: str, *paths) -> None:
    """Slices of dm, the halo channels and T_b, and their P(k) (the data layer's figure)."""
    box = float(attrs["box_size"])
    halos = np.asarray(grids["halos"])
    n = grids["dm"].shape[0]
    depth = max(1, n // 16)
    edges = list(attrs.get("halo_mass_edges", []))
    panels = [("log10 rho_DM [Msun (Mpc/h)^-3]", grids["dm"], "viridis")]
    for c in range(halos.shape[0]):
        lo = f"{edges[c]:.0e}" if c < len(edges) else "?"
        hi = f"{edges[c + 1]:.0e}" if c + 1 < len(edges) else "max"
        panels.append((f"log10 rho_h ch{c + 1} [{lo}, {hi}) Msun", halos[c], "magma"))
    panels.append(("log10 T_b [mK]", grids["tb"], "inferno"))
    fig, axes = plt.subplots(2, 4, figsize=(17, 8.2))
    extent = (0, box, 0, box)
    for ax, (label, field, cmap) in zip(axes.flat, panels):
        img = log_slice(field, depth)
        vmax = img.max()
        im = ax.imshow(img.T, origin="lower", extent=extent, cmap=cmap, vmin=max(img.min(), vmax - 5))
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("x [Mpc/h]")
        fig.colorbar(im, ax=ax, shrink=0.8)
    ax = axes.flat[-2]
    for label, field in (("rho_DM / <rho_DM>", grids["dm"]), ("T_b / <T_b>", grids["tb"])):
        f = np.asarray(field, dtype=np.float64)
        centres, density = pdf(f / f.mean(), bins=60, log10=True, floor=1e-6)
        ax.semilogy(centres, density, label=label)
    ax.set_xlabel("log10 (field / mean)")
    ax.set_ylabel("PDF")
    ax.legend(fontsize=7)
    ax.set_title("one-point PDFs", fontsize=9)
    ax = axes.flat[-1]
    for label, field in (("delta_DM", grids["dm"]), ("T_b/<T_b> - 1", grids["tb"])):
        k, pk, _ = power_spectrum(overdensity(field), box)
        ax.loglog(k, pk, label=label)
    for c in range(halos.shape[0]):
        if halos[c].mean() > 0:
            k, pk, _ = power_spectrum(overdensity(halos[c]), box)
            ax.loglog(k, pk, lw=0.8, ls="--", label=f"halo ch{c + 1}")
    ax.set_xlabel("k [h/Mpc]")
    ax.set_ylabel("P(k) [(Mpc/h)^3]")
    ax.legend(fontsize=7)
    ax.set_title("power spectra (smoothed fields)", fontsize=9)
    fig.suptitle(f"{title}: slab of {depth} cells, {box:g} Mpc/h, {n}^3")
    save_figure(fig, *paths)


# ----------------------------------------------------------------------------- map helpers
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


def box_edges(attrs: dict) -> list[int]:
    """Voxel planes where the boxes of a generated volume start or end (one axis)."""
    from .metrics import box_axis_origins

    axis, box, _ = box_axis_origins(attrs)
    n = int(attrs["n_grid"])
    return sorted(set(axis) | {min(o + box, n) for o in axis})


def _show(fig, ax, img, extent, cmap, vmin, vmax, title, label=None, colorbar=True):
    """A map with its first axis horizontal (and, unless ``colorbar`` is False, a colour bar)."""
    im = ax.imshow(np.asarray(img).T, origin="lower", extent=extent, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    if colorbar:
        cb = fig.colorbar(im, ax=ax, shrink=0.8)
        if label:
            cb.set_label(label, fontsize=8)
    return im


def _mark_corners(ax, edges, cell: float):
    """Green crosses at the corners of the box grid (Figs. 5 and 8)."""
    pos = np.asarray(edges, dtype=np.float64) * cell
    if pos.size:
        xx, yy = np.meshgrid(pos, pos, indexing="ij")
        ax.plot(xx.ravel(), yy.ravel(), "+", color="lime", ms=5, mew=0.9, ls="none")


def _percentile_limits(*imgs, lo=1.0, hi=99.7):
    v = np.concatenate([np.asarray(i, dtype=np.float64)[np.isfinite(i)].ravel() for i in imgs])
    return (float(np.percentile(v, lo)), float(np.percentile(v, hi))) if v.size else (0.0, 1.0)


def mean_std(tables: list[pd.DataFrame], column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k and the mean and standard deviation of ``column`` over tables with the same bins."""
    k = tables[0]["k"].to_numpy()
    if any(len(t) != len(k) or not np.allclose(t["k"].to_numpy(), k) for t in tables):
        raise ValueError("tables have different k bins; are the volumes of different sizes?")
    values = np.stack([t[column].to_numpy(dtype=np.float64) for t in tables])
    return k, values.mean(axis=0), values.std(axis=0)


def _band(ax, k, mean, std, colour, label, lw=1.4):
    ax.plot(k, mean, color=colour, lw=lw, label=label)
    ax.fill_between(k, mean - std, mean + std, color=colour, alpha=0.25, lw=0)


def _residual_axes(ax, k_max: float | None = None):
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


# ----------------------------------------------------------------------------- statistics for figures
def posterior_stats(samples, target) -> dict[str, np.ndarray]:
    """Per-voxel posterior mean and standard deviation (ddof = 1) of the realisations
    (an iterable of arrays, streamed with Welford's update) and the z-score
    (target - mean) / std (NaN where std is 0 or there is a single realisation)."""
    count, mean, m2 = 0, None, None
    for s in samples:
        s = np.asarray(s, dtype=np.float64)
        if mean is None:
            mean, m2 = np.zeros_like(s), np.zeros_like(s)
        count += 1
        delta = s - mean
        mean += delta / count
        m2 += delta * (s - mean)
    if count == 0:
        raise ValueError("posterior_stats: no realisations")
    std = np.sqrt(m2 / (count - 1)) if count > 1 else np.full_like(mean, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(std > 0, (np.asarray(target, dtype=np.float64) - mean) / std, np.nan)
    return {"mean": mean, "std": std, "z": z, "count": count}


def tb_pdf(tb, edges, floor: float) -> np.ndarray:
    """Density of log10(T_b + floor) on the bins ``edges`` (one-point PDF)."""
    return np.histogram(log_tb(tb, floor).ravel(), bins=edges, density=True)[0]


# ----------------------------------------------------------------------------- figures
def methods_figure(target, volumes: dict, attrs: dict, title: str, *paths) -> None:
    """Fig. 5: target, latent overlap, averaging and tiling on the same slab, box corners
    marked (top: whole slab; bottom: a zoom on the first seams)."""
    n, box_size = target.shape[0], float(attrs["box_size"])
    cell, depth = box_size / n, slab_depth(box_size, n)
    floor = TB_FLOOR_FRACTION * float(np.mean(target))
    panels = [("target (simulation)", target, None)]
    panels += [(METHOD_LABELS.get(m, m), *volumes[m]) for m in method_order(volumes)]
    maps = [log_tb(slab_map(f, depth), floor) for _, f, _ in panels]
    vmin, vmax = _percentile_limits(maps[0])
    box = int(next(iter(volumes.values()))[1]["box"]) if volumes else n
    zoom = (box // 2 * cell, min(n, box // 2 + 2 * box) * cell)
    fig, axes = plt.subplots(2, len(panels), figsize=(4.2 * len(panels), 7.6), squeeze=False, layout="constrained")
    for col, ((label, _, vattrs), img) in enumerate(zip(panels, maps)):
        for row in range(2):
            ax = axes[row, col]
            im = _show(fig, ax, img, (0, box_size, 0, box_size), "inferno", vmin, vmax, label if row == 0 else f"{label} (zoom)", colorbar=False)
            if vattrs is not None:
                _mark_corners(ax, box_edges(vattrs), cell)
            if row == 1:
                ax.set_xlim(*zoom)
                ax.set_ylim(*zoom)
            ax.set_xlabel("y [Mpc/h]", fontsize=8)
            if col == 0:
                ax.set_ylabel("z [Mpc/h]", fontsize=8)
    for row in range(2):
        fig.colorbar(im, ax=axes[row].tolist(), shrink=0.85, label="log10 T_b [mK]")
    fig.suptitle(f"{title}: generation methods, slab of {depth} cells ({depth * cell:.2g} Mpc/h) at x = {box_size / 2:.3g} Mpc/h; + box corners")
    save_figure(fig, *paths)


def overlap_pair_figure(pair: dict, steps: list[int], tb: dict, box: int, overlap: int, axis: int, title: str, *paths) -> None:
    """Fig. 6: box B next to the already generated box A at several reverse steps, with
    latent overlap (top) and independently sampled (tiling, bottom); last column: the pair
    in T_b. ``pair`` is :func:`overlap.pair_trajectory`'s dict (normalised latents), ``tb``
    the final T_b of A and both Bs (keys ``a``, ``latent_overlap``, ``tiling``)."""
    other = [a for a in range(3) if a != axis]
    mid = box // 2

    def plane(vol):  # (axis, other[0]) plane through the middle of other[1]
        v = np.moveaxis(np.asarray(vol, dtype=np.float64), [axis, other[0], other[1]], [0, 1, 2])
        return v[:, :, mid]

    def joined(a, b):  # A up to the overlap, then the whole of B (its overlap included)
        return np.concatenate([plane(a)[: box - overlap], plane(b)], axis=0)

    width = 2 * box - overlap
    extent = (0, width, 0, box)
    floor = TB_FLOOR_FRACTION * float(np.mean(tb["a"])) if np.mean(tb["a"]) > 0 else 1e-6
    fig, axes = plt.subplots(2, len(steps) + 1, figsize=(3.3 * (len(steps) + 1), 4.6), squeeze=False, layout="constrained")
    tb_maps = {v: log_tb(joined(tb["a"], tb[v]), floor) for v in ("latent_overlap", "tiling")}
    tlim = _percentile_limits(*tb_maps.values())
    for row, variant in enumerate(("latent_overlap", "tiling")):
        for col, i in enumerate(steps):
            img = joined(pair["x0_a"], pair[variant][i])
            lim = _percentile_limits(plane(pair["latent_overlap"][i]), plane(pair["tiling"][i]), lo=0.5, hi=99.5)
            _show(fig, axes[row, col], img, extent, "viridis", *lim, f"{'latent overlap' if row == 0 else 'tiling'}: z_t, step {i}")
        _show(fig, axes[row, -1], tb_maps[variant], extent, "inferno", *tlim, "final pair, log10 T_b [mK]")
        for ax in axes[row]:
            ax.axvspan(box - overlap, box, color="w", alpha=0.15, lw=0)
            ax.axvline(box - overlap, color="w", lw=0.6, ls="--")
            ax.axvline(box, color="w", lw=0.6, ls="--")
            ax.set_xticks([0, box - overlap, box, width])
            ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel(f"voxels along axis {'xyz'[axis]} (A: 0-{box}, B: {box - overlap}-{width})", fontsize=8)
    fig.suptitle(f"{title}: latent overlap of one pair of {box}^3 boxes (overlap {overlap} voxels, dashed); left box A generated first")
    save_figure(fig, *paths)


def stages_figure(stage_maps: list[list[np.ndarray]], box_size: float, title: str, *paths) -> None:
    """Fig. 7: the volume after each stage (rows), as the three orthogonal projections
    X-Y, X-Z, Y-Z (log10 T_b averaged over the known voxels along the third axis; blank
    where nothing is known yet)."""
    vmin, vmax = _percentile_limits(*stage_maps[-1]) if stage_maps else (0, 1)
    cmap = plt.get_cmap("inferno").with_extremes(bad="0.92")
    rows = len(stage_maps)
    fig, axes = plt.subplots(rows, 3, figsize=(9.6, 2.9 * rows), squeeze=False, layout="constrained")
    planes = ("X-Y", "X-Z", "Y-Z")
    for s, maps in enumerate(stage_maps):
        for c, img in enumerate(maps):
            ax = axes[s, c]
            im = ax.imshow(np.ma.masked_invalid(img).T, origin="lower", extent=(0, box_size, 0, box_size), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_title(f"stage {s + 1}: {planes[c]} ({np.isfinite(img).mean():.0%} of columns)", fontsize=8)
            ax.tick_params(labelsize=6)
        fig.colorbar(im, ax=axes[s].tolist(), shrink=0.85, label="log10 T_b [mK]")
    fig.suptitle(f"{title}: assembly stage by stage (projections over the known voxels)")
    save_figure(fig, *paths)


def overview_figure(dm, target, tiling, latent_overlap, attrs_tiling: dict, attrs_lo: dict, title: str, *paths) -> None:
    """Fig. 8: dark-matter input, target T_b, tiling and latent overlap (box corners marked
    on the generated maps)."""
    n, box_size = target.shape[0], float(attrs_tiling["box_size"])
    cell, depth = box_size / n, slab_depth(box_size, n)
    floor = TB_FLOOR_FRACTION * float(np.mean(target))
    ext = (0, box_size, 0, box_size)
    dm_map = np.log10(np.maximum(slab_map(dm, depth), 1e-30))
    maps = [log_tb(slab_map(f, depth), floor) for f in (target, tiling, latent_overlap)]
    vmin, vmax = _percentile_limits(maps[0])
    fig, axes = plt.subplots(2, 2, figsize=(10.5, 9.4), layout="constrained")
    _show(fig, axes[0, 0], dm_map, ext, "viridis", *_percentile_limits(dm_map), "dark matter (input)", "log10 rho_DM [Msun (Mpc/h)^-3]")
    _show(fig, axes[0, 1], maps[0], ext, "inferno", vmin, vmax, "target T_b (simulation)", "log10 T_b [mK]")
    _show(fig, axes[1, 0], maps[1], ext, "inferno", vmin, vmax, "tiling", "log10 T_b [mK]")
    _show(fig, axes[1, 1], maps[2], ext, "inferno", vmin, vmax, "latent overlap (LODI)", "log10 T_b [mK]")
    _mark_corners(axes[1, 0], box_edges(attrs_tiling), cell)
    _mark_corners(axes[1, 1], box_edges(attrs_lo), cell)
    for ax in axes.flat:
        ax.set_xlabel("y [Mpc/h]", fontsize=8)
        ax.set_ylabel("z [Mpc/h]", fontsize=8)
    fig.suptitle(f"{title}: pipeline overview, slab of {depth} cells; + box corners")
    save_figure(fig, *paths)


def halos_figure(target, predicted, summary: pd.DataFrame, pdf: pd.DataFrame, box_size: float, title: str, *paths, floor_log: float = 9.5) -> None:
    """Fig. 9: per halo channel (rows) the target and HALOgen's map and the PDFs of
    log10 rho_h above the threshold, with medians and 16-84 % bands."""
    target, predicted = np.asarray(target), np.asarray(predicted)
    n_ch, n = target.shape[0], target.shape[1]
    depth = slab_depth(box_size, n)
    ext = (0, box_size, 0, box_size)
    fig, axes = plt.subplots(n_ch, 3, figsize=(13, 3.6 * n_ch), squeeze=False, layout="constrained")
    for c in range(n_ch):
        maps = [np.log10(np.maximum(slab_map(f[c], depth), 10.0**floor_log)) for f in (target, predicted)]
        vmax = max(floor_log + 0.5, float(max(m.max() for m in maps)))
        for j, (img, label) in enumerate(zip(maps, ("target", "HALOgen"))):
            _show(fig, axes[c, j], img, ext, "magma", floor_log, vmax, f"channel {c + 1}: {label}", "log10 rho_h [Msun (Mpc/h)^-3]")
        ax = axes[c, 2]
        rows = pdf[pdf["channel"] == c + 1]
        srow = summary[summary["channel"] == c + 1]
        for who, colour in (("target", "k"), ("pred", "C1")):
            if len(rows):
                ax.step(rows["log_rho"], rows[f"pdf_{who}"], where="mid", color=colour, label="target" if who == "target" else "HALOgen")
            if len(srow) and np.isfinite(float(srow[f"{who}_median"].iloc[0])):
                ax.axvline(float(srow[f"{who}_median"].iloc[0]), color=colour, ls="--", lw=0.9)
                ax.axvspan(float(srow[f"{who}_p16"].iloc[0]), float(srow[f"{who}_p84"].iloc[0]), color=colour, alpha=0.12, lw=0)
        recovered = float(srow["mass_recovered"].iloc[0]) if len(srow) else float("nan")
        ax.set_title(f"channel {c + 1}: PDF above 10^{floor_log:g}, mass recovered {recovered:.2f}", fontsize=8)
        ax.set_xlabel("log10 rho_h [Msun (Mpc/h)^-3]", fontsize=8)
        ax.set_ylabel("PDF", fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle(f"{title}: halo channels, target vs HALOgen (median dashed, 16-84 % shaded)")
    save_figure(fig, *paths)


def power_figure(sample, target, tables: list[pd.DataFrame], box_size: float, title: str, *paths) -> None:
    """Fig. 10: one generated map and the target; P(k) of T_b/<T_b>, target vs the mean ±
    std over realisations; the residual P_gen/P_true - 1 with the ±10 % band."""
    n = target.shape[0]
    depth = slab_depth(box_size, n)
    floor = TB_FLOOR_FRACTION * float(np.mean(target))
    maps = [log_tb(slab_map(f, depth), floor) for f in (sample, target)]
    lim = _percentile_limits(maps[1])
    fig = plt.figure(figsize=(10, 12))
    gs = fig.add_gridspec(3, 2, height_ratios=[1.25, 1, 0.6], hspace=0.35)
    ext = (0, box_size, 0, box_size)
    _show(fig, fig.add_subplot(gs[0, 0]), maps[0], ext, "inferno", *lim, "generated (latent overlap, first seed)", "log10 T_b [mK]")
    _show(fig, fig.add_subplot(gs[0, 1]), maps[1], ext, "inferno", *lim, "target (simulation)", "log10 T_b [mK]")
    ax = fig.add_subplot(gs[1, :])
    k, mean, std = mean_std(tables, "pk_generated")
    ax.loglog(k, tables[0]["pk_target"], "k", lw=1.4, label="target")
    _band(ax, k, mean, std, "C3", f"latent overlap, mean ± std of {len(tables)}")
    ax.set_ylabel("P(k) of T_b/<T_b> [(Mpc/h)^3]")
    ax.legend(fontsize=8)
    ax2 = fig.add_subplot(gs[2, :], sharex=ax)
    k, mean, std = mean_std(tables, "residual")
    _band(ax2, k, mean, std, "C3", "residual")
    _residual_axes(ax2)
    ax2.legend(fontsize=7, loc="lower left")
    fig.suptitle(f"{title}: T_b power spectrum over {len(tables)} realisation(s)", y=0.93)
    save_figure(fig, *paths)


def residuals_figure(tables: dict[str, list[pd.DataFrame]], title: str, *paths) -> None:
    """Fig. 11: P(k) residuals of latent overlap; top: mean ± std over seeds for each
    simulation; bottom: all realisations combined (thin lines: each realisation)."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 8), sharex=True, layout="constrained")
    everything = []
    for j, (sim, sim_tables) in enumerate(sorted(tables.items())):
        k, mean, std = mean_std(sim_tables, "residual")
        _band(top, k, mean, std, f"C{j % 10}", f"{sim} ({len(sim_tables)} seed(s))")
        everything += sim_tables
    for t in everything:
        bottom.plot(t["k"], t["residual"], color="0.5", lw=0.4, alpha=0.6)
    k, mean, std = mean_std(everything, "residual")
    _band(bottom, k, mean, std, "C3", f"all {len(everything)} realisations")
    for ax in (top, bottom):
        _residual_axes(ax)
        ax.legend(fontsize=7, loc="lower left")
    top.set_xlabel("")
    top.set_title("mean ± std over seeds, per test simulation", fontsize=9)
    bottom.set_title("all realisations combined", fontsize=9)
    fig.suptitle(f"{title}: residuals of the T_b power spectrum (latent overlap)")
    save_figure(fig, *paths)


def rk_figure(tables: dict[str, list[pd.DataFrame]], title: str, *paths) -> None:
    """r(k) between each method's volumes and the target (mean ± std over seeds), and the
    P(k) residuals of each method."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 8), sharex=True, gridspec_kw={"height_ratios": [1.3, 1]}, layout="constrained")
    for method in method_order(tables):
        colour, label = METHOD_COLOURS.get(method, "C4"), METHOD_LABELS.get(method, method)
        k, mean, std = mean_std(tables[method], "r")
        _band(top, k, mean, std, colour, f"{label} ({len(tables[method])} seed(s))")
        k, mean, std = mean_std(tables[method], "residual")
        _band(bottom, k, mean, std, colour, label)
    top.axhline(1, color="k", lw=0.6)
    top.axhline(0, color="k", lw=0.4, ls=":")
    top.set_xscale("log")
    top.set_ylabel("r(k) = P_gt / sqrt(P_gg P_tt)")
    top.legend(fontsize=7, loc="lower left")
    _residual_axes(bottom)
    bottom.legend(fontsize=7, loc="lower left")
    fig.suptitle(f"{title}: cross-correlation with the target and P(k) residuals, per method")
    save_figure(fig, *paths)


def tb_pdf_figure(centres, target_pdf, pdfs: dict[str, list[np.ndarray]], floor: float, title: str, *paths) -> None:
    """One-point PDFs of log10(T_b + floor): the target and each method (mean ± std over
    seeds), and their ratio to the target's."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 7.5), sharex=True, gridspec_kw={"height_ratios": [1.5, 1]}, layout="constrained")
    top.plot(centres, target_pdf, "k", lw=1.6, label="target")
    for method in method_order(pdfs):
        values = np.stack(pdfs[method])
        mean, std = values.mean(axis=0), values.std(axis=0)
        colour = METHOD_COLOURS.get(method, "C4")
        _band(top, centres, mean, std, colour, f"{METHOD_LABELS.get(method, method)} ({len(values)} seed(s))")
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(target_pdf > 0, mean / target_pdf, np.nan)
        bottom.plot(centres, ratio, color=colour)
    top.set_yscale("log")
    top.set_ylabel("PDF")
    top.legend(fontsize=7)
    bottom.axhline(1, color="k", lw=0.6)
    bottom.set_ylim(0, 2.5)
    bottom.set_ylabel("PDF / target PDF")
    bottom.set_xlabel(f"log10(T_b + {floor:.2g} mK)")
    fig.suptitle(f"{title}: one-point PDF of T_b")
    save_figure(fig, *paths)


def posterior_figure(target, stats: dict, box_size: float, title: str, *paths) -> None:
    """Maps over the seeds (latent overlap): target, posterior mean, standard deviation and
    z = (target - mean)/std (slabs), and the histogram of z over all voxels against N(0, 1)."""
    n = target.shape[0]
    depth = slab_depth(box_size, n)
    ext = (0, box_size, 0, box_size)
    floor = TB_FLOOR_FRACTION * float(np.mean(target))
    t_map, m_map = (log_tb(slab_map(f, depth), floor) for f in (target, stats["mean"]))
    s_map, z_map = slab_map(stats["std"], depth), slab_map(stats["z"], depth)
    fig, axes = plt.subplots(1, 5, figsize=(24, 4.6), layout="constrained")
    lim = _percentile_limits(t_map)
    _show(fig, axes[0], t_map, ext, "inferno", *lim, "target", "log10 T_b [mK]")
    _show(fig, axes[1], m_map, ext, "inferno", *lim, "posterior mean", "log10 T_b [mK]")
    single = stats["count"] < 2
    s_lim = (0.0, 1.0) if single else _percentile_limits(s_map, lo=0, hi=99.5)
    _show(fig, axes[2], np.nan_to_num(s_map), ext, "viridis", *s_lim, "posterior std" + (" (1 seed: undefined)" if single else ""), "T_b [mK]")
    _show(fig, axes[3], np.nan_to_num(z_map), ext, "RdBu_r", -3, 3, "z = (target - mean) / std (slab mean)", "z")
    ax = axes[4]
    z = stats["z"][np.isfinite(stats["z"])].ravel()
    grid = np.linspace(-5, 5, 201)
    ax.plot(grid, np.exp(-0.5 * grid**2) / np.sqrt(2 * np.pi), "k", lw=1, label="N(0, 1)")
    if z.size:
        within = [float(np.mean(np.abs(z) < c)) for c in (1, 2)]
        label = f"voxels (clipped to ±5): |z|<1 {within[0]:.0%}, |z|<2 {within[1]:.0%} (N(0, 1): 68%, 95%)"
        ax.hist(np.clip(z, -5, 5), bins=80, range=(-5, 5), density=True, color="C3", alpha=0.6, label=label)
    else:
        ax.text(0.5, 0.5, "needs at least 2 seeds", transform=ax.transAxes, ha="center")
    ax.set_xlabel("z per voxel")
    ax.set_title("calibration of the spread over seeds", fontsize=9)
    ax.legend(fontsize=7)
    fig.suptitle(f"{title}: posterior over {stats['count']} seed(s), slab of {depth} cells")
    save_figure(fig, *paths)


# ----------------------------------------------------------------------------- from the workflow's files
def read_tb(path) -> tuple[np.ndarray, dict]:
    """The ``tb`` dataset (mK) of a grid file or a generated volume, and its attributes."""
    data, attrs = read_grids(path, ("tb",))
    return data["tb"], attrs


def volume_attrs(path) -> dict:
    """Attributes of a generated volume (method, seed, simulation, box, ...) without its data."""
    return read_hdf5(path, [], what="generated volume")[1]


def group_volumes(paths, key: str = "method") -> dict[str, list]:
    """Generated volumes grouped by an attribute (``method`` or ``simulation``), each group
    ordered by seed."""
    groups: dict[str, list] = {}
    for p in paths:
        a = volume_attrs(p)
        groups.setdefault(str(a[key]), []).append((int(a["seed"]), p))
    return {k: [p for _, p in sorted(v, key=lambda sp: sp[0])] for k, v in groups.items()}


def plot_methods(grid_path, volume_paths, title, *paths) -> None:
    """Fig. 5 from files: the target grid and one volume per method."""
    target, _ = read_tb(grid_path)
    volumes = {m: read_tb(ps[0]) for m, ps in group_volumes(volume_paths).items()}
    methods_figure(target, volumes, volumes[next(iter(volumes))][1], title, *paths)


def pick_pair_origin(halos, box: int, overlap: int, axis: int = 0) -> tuple:
    """Origin of box A for Fig. 6: the pair (A and its neighbour along ``axis``) holding
    the most halo mass, on a grid of half-box steps."""
    total = np.asarray(halos).sum(axis=0, dtype=np.float64)
    n = total.shape[0]
    width = 2 * box - overlap
    size = [width if a == axis else box for a in range(3)]
    starts = [range(0, max(1, n - s + 1), max(1, box // 2)) for s in size]
    best, origin = -1.0, (0, 0, 0)
    for x in starts[0]:
        for y in starts[1]:
            for z in starts[2]:
                mass = total[x : x + size[0], y : y + size[1], z : z + size[2]].sum()
                if mass > best:
                    best, origin = mass, (x, y, z)
    return origin


def plot_overlap_pair(model_path, halos_path, overlap: int, seed: int, device, title, *paths, axis: int = 0, n_steps: int = 4) -> None:
    """Fig. 6 from files: sample one overlapping pair on the halo condition of a simulation
    (:func:`overlap.pair_trajectory`) and plot its reverse steps."""
    import torch

    from .generate import load_condition
    from .lodi_run import BoxSampler
    from .overlap import pair_trajectory

    sampler = BoxSampler.load(model_path, device, bf16=False)
    cond, _ = load_condition(sampler, halos_path)
    halos, _ = read_grids(halos_path, ("halos",))
    box = int(sampler.meta["box"])
    origin = pick_pair_origin(halos["halos"], box, overlap, axis)
    pair = pair_trajectory(sampler, cond, origin, axis, box, overlap, seed)
    steps = sorted({int(round(s)) for s in np.linspace(sampler.T, 1, n_steps + 1)}, reverse=True)
    to_tb = {"a": pair["x0_a"], "latent_overlap": pair["x0_latent_overlap"], "tiling": pair["x0_tiling"]}
    tb = {k: sampler.to_tb(torch.as_tensor(v).float()).cpu().numpy() for k, v in to_tb.items()}
    pair = {k: ({i: z.numpy() for i, z in v.items()} if isinstance(v, dict) else v) for k, v in pair.items()}
    overlap_pair_figure(pair, steps, tb, box, overlap, axis, f"{title}, A at voxel {origin}", *paths)


def stage_projections(tb, known) -> list[np.ndarray]:
    """Log10 T_b averaged over the known voxels along z, y and x (X-Y, X-Z, Y-Z planes);
    NaN where a column has no known voxel."""
    tb = np.asarray(tb, dtype=np.float64)
    known = np.asarray(known, dtype=bool)
    out = []
    for axis in (2, 1, 0):
        count = known.sum(axis=axis)
        total = np.where(known, tb, 0.0).sum(axis=axis)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.where(count > 0, total / np.maximum(count, 1), np.nan))
    return out


def plot_stages(model_path, state_paths, box_size: float, title, *paths) -> None:
    """Fig. 7 from files: the states after stages 1..8 (normalised x_0, known mask) turned
    into T_b with the LODI model's transform; ``box_size`` in Mpc/h."""
    from .generate import read_state
    from .lodi_run import BoxSampler

    sampler = BoxSampler.load(model_path, "cpu", bf16=False)
    n = read_hdf5(state_paths[0], ["known"], what="generation state")[0]["known"].shape[0]
    maps, floor = [], None
    for p in state_paths:
        state = read_state(p, n, "cpu")
        tb = sampler.to_tb(state.x0.float()).numpy()
        known = state.known.numpy()
        if floor is None:
            floor = TB_FLOOR_FRACTION * float(tb[known].mean()) if known.any() else 1e-6
        maps.append([log_tb(m, floor) for m in stage_projections(tb, known)])
    stages_figure(maps, float(box_size), title, *paths)


def plot_overview(grid_path, volume_paths, title, *paths) -> None:
    """Fig. 8 from files: the grid (dm, target T_b) and the tiling and latent-overlap volumes."""
    grids, _ = read_grids(grid_path, ("dm", "tb"))
    groups = group_volumes(volume_paths)
    (til, a_til), (lo, a_lo) = read_tb(groups["tiling"][0]), read_tb(groups["latent_overlap"][0])
    overview_figure(grids["dm"], grids["tb"], til, lo, a_til, a_lo, title, *paths)


def plot_halos(grid_path, predicted_path, summary_csv, pdf_csv, title, *paths, floor_log: float = 9.5) -> None:
    """Fig. 9 from files: target and predicted halo channels and HALOgen's evaluation tables."""
    target, attrs = read_grids(grid_path, ("halos",))
    predicted, _ = read_grids(predicted_path, ("halos",))
    halos_figure(target["halos"], predicted["halos"], pd.read_csv(summary_csv), pd.read_csv(pdf_csv), float(attrs["box_size"]), title, *paths, floor_log=floor_log)


def power_tables(target, volume_paths, box_size: float) -> list[pd.DataFrame]:
    """:func:`metrics.power_residual` of each volume against the target."""
    from .metrics import power_residual

    return [power_residual(read_tb(p)[0], target, box_size) for p in volume_paths]


def plot_power(grid_path, volume_paths, title, *paths) -> None:
    """Fig. 10 from files: the target and the latent-overlap volumes of all seeds."""
    target, attrs = read_tb(grid_path)
    ordered = [p for ps in group_volumes(volume_paths).values() for p in ps]
    box_size = float(attrs["box_size"])
    power_figure(read_tb(ordered[0])[0], target, power_tables(target, ordered, box_size), box_size, title, *paths)


def plot_residuals(grid_paths: dict, volume_paths, title, *paths) -> None:
    """Fig. 11 from files: ``grid_paths`` simulation -> grid file; the volumes of all test
    simulations and seeds."""
    tables = {}
    for sim, ps in group_volumes(volume_paths, "simulation").items():
        target, attrs = read_tb(grid_paths[sim])
        tables[sim] = power_tables(target, ps, float(attrs["box_size"]))
    residuals_figure(tables, title, *paths)


def plot_rk(grid_path, volume_paths, title, *paths) -> None:
    """r(k) and residuals per method from files."""
    target, attrs = read_tb(grid_path)
    tables = {m: power_tables(target, ps, float(attrs["box_size"])) for m, ps in group_volumes(volume_paths).items()}
    rk_figure(tables, title, *paths)


def plot_tb_pdf(grid_path, volume_paths, title, *paths, bins: int = 60) -> None:
    """One-point PDFs of T_b from files (bins span the target's range, with margins)."""
    target, _ = read_tb(grid_path)
    floor = TB_FLOOR_FRACTION * float(np.mean(target))
    lt = log_tb(target, floor)
    lo, hi = float(lt.min()), float(lt.max())
    edges = np.linspace(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo), bins + 1)
    pdfs = {m: [tb_pdf(read_tb(p)[0], edges, floor) for p in ps] for m, ps in group_volumes(volume_paths).items()}
    tb_pdf_figure(0.5 * (edges[1:] + edges[:-1]), tb_pdf(target, edges, floor), pdfs, floor, title, *paths)


def plot_posterior(grid_path, volume_paths, title, *paths) -> None:
    """Posterior maps over the seeds of one method (latent overlap) from files."""
    target, attrs = read_tb(grid_path)
    stats = posterior_stats((read_tb(p)[0] for p in volume_paths), target)
    posterior_figure(target, stats, float(attrs["box_size"]), title, *paths)


def baselines_figure(target, volumes: dict, tables: dict[str, list[pd.DataFrame]], box_size: float, title: str, *paths) -> None:
    """The baselines beside LODI: slabs of log10 T_b (target, then one volume per method)
    and P(k) of T_b/<T_b> of each method against the target (mean over seeds)."""
    n = target.shape[0]
    depth = slab_depth(box_size, n)
    floor = TB_FLOOR_FRACTION * float(np.mean(target))
    methods = method_order(volumes)
    panels = [("target (simulation)", target)] + [(METHOD_LABELS.get(m, m), volumes[m]) for m in methods]
    maps = [log_tb(slab_map(f, depth), floor) for _, f in panels]
    lim = _percentile_limits(maps[0])
    cols = len(panels)
    fig = plt.figure(figsize=(3.6 * cols, 8.4), layout="constrained")
    gs = fig.add_gridspec(2, cols, height_ratios=[1, 1.1])
    ext = (0, box_size, 0, box_size)
    for j, ((label, _), img) in enumerate(zip(panels, maps)):
        _show(fig, fig.add_subplot(gs[0, j]), img, ext, "inferno", *lim, label, colorbar=j == cols - 1, label="log10 T_b [mK]")
    ax = fig.add_subplot(gs[1, :])
    first = next(iter(tables.values()))[0]
    ax.loglog(first["k"], first["pk_target"], "k", lw=1.6, label="target")
    for m in method_order(tables):
        k, mean, _ = mean_std(tables[m], "pk_generated")
        ax.loglog(k, mean, color=METHOD_COLOURS.get(m, "C4"), label=METHOD_LABELS.get(m, m))
    ax.set_xlabel("k [h/Mpc]")
    ax.set_ylabel("P(k) of T_b/<T_b> [(Mpc/h)^3]")
    ax.legend(fontsize=7, ncol=2)
    fig.suptitle(f"{title}: LODI and the cheap baselines, slab of {depth} cells")
    save_figure(fig, *paths)


def plot_baselines(grid_path, volume_paths, title, *paths) -> None:
    """The baselines figure from files: the target grid and the volumes of each method
    (maps: the first seed; P(k): the mean over seeds)."""
    target, attrs = read_tb(grid_path)
    groups = group_volumes(volume_paths)
    box_size = float(attrs["box_size"])
    volumes = {m: read_tb(ps[0])[0] for m, ps in groups.items()}
    tables = {m: power_tables(target, ps, box_size) for m, ps in groups.items()}
    baselines_figure(target, volumes, tables, box_size, title, *paths)

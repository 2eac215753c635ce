"""Figures from arrays and tables (Figs. 5-11 of Mishra, Trotta & Viel 2025, plus the grids,
r(k), the one-point PDF of T_b, posterior maps over seeds, the baselines and loss curves).
Each ``*_figure`` function writes PDF and PNG; :mod:`lodi_core.figures.from_files` reads the
workflow's files and calls them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis.metrics import with_tb
from ..physics.spectra import overdensity, pdf, power_spectrum
from .style import (
    METHOD_COLOURS,
    METHOD_LABELS,
    TB_FLOOR_FRACTION,
    band,
    box_corners,
    log_slice,
    log_tb,
    mark_corners,
    mean_std,
    method_order,
    percentile_limits,
    plt,
    realisations,
    residual_axes,
    save_figure,
    show,
    slab_depth,
    slab_map,
)


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


def tb_pdf(tb, edges, floor: float) -> np.ndarray:
    """Density of log10(T_b + floor) on the bins ``edges`` (one-point PDF)."""
    return np.histogram(log_tb(tb, floor).ravel(), bins=edges, density=True)[0]


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


def methods_figure(target, volumes: dict, attrs: dict, title: str, *paths) -> None:
    """Fig. 5: target, latent overlap, averaging and tiling on the same slab, box corners
    marked (top: whole slab; bottom: a zoom on the first seams)."""
    n, box_size = target.shape[0], float(attrs["box_size"])
    cell, depth = box_size / n, slab_depth(box_size, n)
    floor = TB_FLOOR_FRACTION * float(np.mean(target))
    panels = [("target (simulation)", target, None)]
    panels += [(METHOD_LABELS.get(m, m), *volumes[m]) for m in method_order(volumes)]
    maps = [log_tb(slab_map(f, depth), floor) for _, f, _ in panels]
    vmin, vmax = percentile_limits(maps[0])
    box = int(next(iter(volumes.values()))[1]["box"]) if volumes else n
    zoom = (box // 2 * cell, min(n, box // 2 + 2 * box) * cell)
    fig, axes = plt.subplots(2, len(panels), figsize=(4.2 * len(panels), 7.6), squeeze=False, layout="constrained")
    for col, ((label, _, vattrs), img) in enumerate(zip(panels, maps)):
        for row in range(2):
            ax = axes[row, col]
            im = show(
                fig,
                ax,
                img,
                (0, box_size, 0, box_size),
                "inferno",
                vmin,
                vmax,
                label if row == 0 else f"{label} (zoom)",
                colorbar=False,
            )
            if vattrs is not None:
                mark_corners(ax, box_corners(vattrs), cell)
            if row == 1:
                ax.set_xlim(*zoom)
                ax.set_ylim(*zoom)
            ax.set_xlabel("y [Mpc/h]", fontsize=8)
            if col == 0:
                ax.set_ylabel("z [Mpc/h]", fontsize=8)
    for row in range(2):
        fig.colorbar(im, ax=axes[row].tolist(), shrink=0.85, label="log10 T_b [mK]")
    fig.suptitle(
        f"{title}: generation methods, slab of {depth} cells ({depth * cell:.2g} Mpc/h) "
        f"at x = {box_size / 2:.3g} Mpc/h; + box corners"
    )
    save_figure(fig, *paths)


def overlap_pair_figure(
    pair: dict, steps: list[int], tb: dict, box: int, overlap: int, axis: int, title: str, *paths
) -> None:
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
    fig, axes = plt.subplots(
        2, len(steps) + 1, figsize=(3.3 * (len(steps) + 1), 4.6), squeeze=False, layout="constrained"
    )
    tb_maps = {v: log_tb(joined(tb["a"], tb[v]), floor) for v in ("latent_overlap", "tiling")}
    tlim = percentile_limits(*tb_maps.values())
    for row, variant in enumerate(("latent_overlap", "tiling")):
        for col, i in enumerate(steps):
            img = joined(pair["x0_a"], pair[variant][i])
            lim = percentile_limits(plane(pair["latent_overlap"][i]), plane(pair["tiling"][i]), lo=0.5, hi=99.5)
            show(
                fig,
                axes[row, col],
                img,
                extent,
                "viridis",
                *lim,
                f"{'latent overlap' if row == 0 else 'tiling'}: z_t, step {i}",
            )
        show(fig, axes[row, -1], tb_maps[variant], extent, "inferno", *tlim, "final pair, log10 T_b [mK]")
        for ax in axes[row]:
            ax.axvspan(box - overlap, box, color="w", alpha=0.15, lw=0)
            ax.axvline(box - overlap, color="w", lw=0.6, ls="--")
            ax.axvline(box, color="w", lw=0.6, ls="--")
            ax.set_xticks([0, box - overlap, box, width])
            ax.tick_params(labelsize=7)
    axes[-1, 0].set_xlabel(f"voxels along axis {'xyz'[axis]} (A: 0-{box}, B: {box - overlap}-{width})", fontsize=8)
    fig.suptitle(
        f"{title}: latent overlap of one pair of {box}^3 boxes (overlap {overlap} voxels, dashed); "
        "left box A generated first"
    )
    save_figure(fig, *paths)


def stages_figure(stage_maps: list[list[np.ndarray]], box_size: float, title: str, *paths) -> None:
    """Fig. 7: the volume after each stage (rows), as the three orthogonal projections
    X-Y, X-Z, Y-Z (log10 T_b averaged over the known voxels along the third axis; blank
    where nothing is known yet)."""
    vmin, vmax = percentile_limits(*stage_maps[-1]) if stage_maps else (0, 1)
    cmap = plt.get_cmap("inferno").with_extremes(bad="0.92")
    rows = len(stage_maps)
    fig, axes = plt.subplots(rows, 3, figsize=(9.6, 2.9 * rows), squeeze=False, layout="constrained")
    planes = ("X-Y", "X-Z", "Y-Z")
    for s, maps in enumerate(stage_maps):
        for c, img in enumerate(maps):
            ax = axes[s, c]
            im = ax.imshow(
                np.ma.masked_invalid(img).T,
                origin="lower",
                extent=(0, box_size, 0, box_size),
                cmap=cmap,
                vmin=vmin,
                vmax=vmax,
                interpolation="nearest",
            )
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
    vmin, vmax = percentile_limits(maps[0])
    fig, axes = plt.subplots(2, 2, figsize=(10.5, 9.4), layout="constrained")
    show(
        fig,
        axes[0, 0],
        dm_map,
        ext,
        "viridis",
        *percentile_limits(dm_map),
        "dark matter (input)",
        "log10 rho_DM [Msun (Mpc/h)^-3]",
    )
    show(fig, axes[0, 1], maps[0], ext, "inferno", vmin, vmax, "target T_b (simulation)", "log10 T_b [mK]")
    show(fig, axes[1, 0], maps[1], ext, "inferno", vmin, vmax, "tiling", "log10 T_b [mK]")
    show(fig, axes[1, 1], maps[2], ext, "inferno", vmin, vmax, "latent overlap (LODI)", "log10 T_b [mK]")
    mark_corners(axes[1, 0], box_corners(attrs_tiling), cell)
    mark_corners(axes[1, 1], box_corners(attrs_lo), cell)
    for ax in axes.flat:
        ax.set_xlabel("y [Mpc/h]", fontsize=8)
        ax.set_ylabel("z [Mpc/h]", fontsize=8)
    fig.suptitle(f"{title}: pipeline overview, slab of {depth} cells; + box corners")
    save_figure(fig, *paths)


def halos_figure(
    target,
    predicted,
    summary: pd.DataFrame,
    pdf: pd.DataFrame,
    box_size: float,
    title: str,
    *paths,
    floor_log: float = 9.5,
) -> None:
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
            show(
                fig,
                axes[c, j],
                img,
                ext,
                "magma",
                floor_log,
                vmax,
                f"channel {c + 1}: {label}",
                "log10 rho_h [Msun (Mpc/h)^-3]",
            )
        ax = axes[c, 2]
        rows = pdf[pdf["channel"] == c + 1]
        srow = summary[summary["channel"] == c + 1]
        for who, colour in (("target", "k"), ("pred", "C1")):
            if len(rows):
                ax.step(
                    rows["log_rho"],
                    rows[f"pdf_{who}"],
                    where="mid",
                    color=colour,
                    label="target" if who == "target" else "HALOgen",
                )
            if len(srow) and np.isfinite(float(srow[f"{who}_median"].iloc[0])):
                ax.axvline(float(srow[f"{who}_median"].iloc[0]), color=colour, ls="--", lw=0.9)
                ax.axvspan(
                    float(srow[f"{who}_p16"].iloc[0]), float(srow[f"{who}_p84"].iloc[0]), color=colour, alpha=0.12, lw=0
                )
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
    lim = percentile_limits(maps[1])
    fig = plt.figure(figsize=(10, 12))
    gs = fig.add_gridspec(3, 2, height_ratios=[1.25, 1, 0.6], hspace=0.35)
    ext = (0, box_size, 0, box_size)
    show(
        fig,
        fig.add_subplot(gs[0, 0]),
        maps[0],
        ext,
        "inferno",
        *lim,
        "generated (latent overlap, first seed)",
        "log10 T_b [mK]",
    )
    show(fig, fig.add_subplot(gs[0, 1]), maps[1], ext, "inferno", *lim, "target (simulation)", "log10 T_b [mK]")
    ax = fig.add_subplot(gs[1, :])
    k, mean, std = mean_std(tables, "pk_generated")
    ax.loglog(k, tables[0]["pk_target"], "k", lw=1.4, label="target")
    band(ax, k, mean, std, "C3", f"latent overlap, mean ± std of {len(tables)}")
    ax.set_ylabel("P(k) of T_b/<T_b> [(Mpc/h)^3]")
    ax.legend(fontsize=8)
    ax2 = fig.add_subplot(gs[2, :], sharex=ax)
    k, mean, std = mean_std(tables, "residual")
    band(ax2, k, mean, std, "C3", "residual")
    residual_axes(ax2)
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
        band(top, k, mean, std, f"C{j % 10}", f"{sim} ({len(sim_tables)} seed(s))")
        everything += sim_tables
    for t in everything:
        bottom.plot(t["k"], t["residual"], color="0.5", lw=0.4, alpha=0.6)
    k, mean, std = mean_std(everything, "residual")
    band(bottom, k, mean, std, "C3", f"all {len(everything)} realisations")
    for ax in (top, bottom):
        residual_axes(ax)
        ax.legend(fontsize=7, loc="lower left")
    top.set_xlabel("")
    top.set_title("mean ± std over seeds, per test simulation", fontsize=9)
    bottom.set_title("all realisations combined", fontsize=9)
    fig.suptitle(f"{title}: residuals of the T_b power spectrum (latent overlap)")
    save_figure(fig, *paths)


def rk_figure(tables: dict[str, list[pd.DataFrame]], title: str, *paths) -> None:
    """r(k) between each method's volumes and the target (mean ± std over seeds), and the
    P(k) residuals of each method."""
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 8), sharex=True, gridspec_kw={"height_ratios": [1.3, 1]}, layout="constrained"
    )
    for method in method_order(tables):
        colour, label = METHOD_COLOURS.get(method, "C4"), METHOD_LABELS.get(method, method)
        k, mean, std = mean_std(tables[method], "r")
        band(top, k, mean, std, colour, f"{label} ({realisations(method, len(tables[method]))})")
        k, mean, std = mean_std(tables[method], "residual")
        band(bottom, k, mean, std, colour, label)
    top.axhline(1, color="k", lw=0.6)
    top.axhline(0, color="k", lw=0.4, ls=":")
    top.set_xscale("log")
    top.set_ylabel("r(k) = P_gt / sqrt(P_gg P_tt)")
    top.legend(fontsize=7, loc="lower left")
    residual_axes(bottom)
    bottom.legend(fontsize=7, loc="lower left")
    fig.suptitle(f"{title}: cross-correlation with the target and P(k) residuals, per method")
    save_figure(fig, *paths)


def tb_pdf_figure(centres, target_pdf, pdfs: dict[str, list[np.ndarray]], floor: float, title: str, *paths) -> None:
    """One-point PDFs of log10(T_b + floor): the target and each method (mean ± std over
    seeds), and their ratio to the target's."""
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 7.5), sharex=True, gridspec_kw={"height_ratios": [1.5, 1]}, layout="constrained"
    )
    top.plot(centres, target_pdf, "k", lw=1.6, label="target")
    for method in method_order(pdfs):
        values = np.stack(pdfs[method])
        mean, std = values.mean(axis=0), values.std(axis=0)
        colour = METHOD_COLOURS.get(method, "C4")
        label = f"{METHOD_LABELS.get(method, method)} ({realisations(method, len(values))})"
        band(top, centres, mean, std, colour, label)
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


def posterior_figure(target, stats: dict, spread: pd.DataFrame, box_size: float, title: str, *paths) -> None:
    """Maps over the seeds (latent overlap): target, posterior mean, standard deviation and
    z = (target - mean)/std (slabs), the histogram of z over all voxels against N(0, 1), and
    the spread against the skill per k (``spread``: :func:`analysis.metrics.spread_skill`)."""
    n = target.shape[0]
    depth = slab_depth(box_size, n)
    ext = (0, box_size, 0, box_size)
    floor = TB_FLOOR_FRACTION * float(np.mean(target))
    t_map, m_map = (log_tb(slab_map(f, depth), floor) for f in (target, stats["mean"]))
    s_map, z_map = slab_map(stats["std"], depth), slab_map(stats["z"], depth)
    fig, axes = plt.subplots(1, 6, figsize=(29, 4.6), layout="constrained")
    lim = percentile_limits(t_map)
    show(fig, axes[0], t_map, ext, "inferno", *lim, "target", "log10 T_b [mK]")
    show(fig, axes[1], m_map, ext, "inferno", *lim, "posterior mean", "log10 T_b [mK]")
    single = stats["count"] < 2
    s_lim = (0.0, 1.0) if single else percentile_limits(s_map, lo=0, hi=99.5)
    show(
        fig,
        axes[2],
        np.nan_to_num(s_map),
        ext,
        "viridis",
        *s_lim,
        "posterior std" + (" (1 seed: undefined)" if single else ""),
        "T_b [mK]",
    )
    show(fig, axes[3], np.nan_to_num(z_map), ext, "RdBu_r", -3, 3, "z = (target - mean) / std (slab mean)", "z")
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
    ax = axes[5]
    curves = [
        ("r_target", "k", "-", "seed with target (mean)"),
        ("r_between", "C3", "--", "seed with seed (calibrated: = the line above)"),
        ("r_mean", "C0", "-", f"mean of {stats['count']} seed(s) with target"),
        ("r_conditional", "C2", ":", "conditional mean with target (many seeds)"),
    ]
    for column, colour, style, label in curves:
        if spread[column].notna().any():
            ax.plot(spread["k"], spread[column], color=colour, ls=style, label=label)
    ax.set_xscale("log")
    ax.set_ylim(-0.05, 1.05)
    ax.axhline(0, color="k", lw=0.4, ls=":")
    ax.set_xlabel("k [h/Mpc]")
    ax.set_ylabel("r(k)")
    ax.set_title("spread against skill: seed-seed above seed-target = over-confident", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    fig.suptitle(f"{title}: posterior over {stats['count']} seed(s), slab of {depth} cells")
    save_figure(fig, *paths)


def baselines_figure(
    target, volumes: dict, tables: dict[str, list[pd.DataFrame]], box_size: float, title: str, *paths
) -> None:
    """The baselines beside LODI: slabs of log10 T_b (target, then one volume per method)
    and P(k) of T_b/<T_b> of each method against the target (mean over seeds)."""
    n = target.shape[0]
    depth = slab_depth(box_size, n)
    floor = TB_FLOOR_FRACTION * float(np.mean(target))
    methods = method_order(volumes)
    panels = [("target (simulation)", target)] + [(METHOD_LABELS.get(m, m), volumes[m]) for m in methods]
    maps = [log_tb(slab_map(f, depth), floor) for _, f in panels]
    lim = percentile_limits(maps[0])
    cols = len(panels)
    fig = plt.figure(figsize=(3.6 * cols, 8.4), layout="constrained")
    gs = fig.add_gridspec(2, cols, height_ratios=[1, 1.1])
    ext = (0, box_size, 0, box_size)
    for j, ((label, _), img) in enumerate(zip(panels, maps)):
        show(
            fig,
            fig.add_subplot(gs[0, j]),
            img,
            ext,
            "inferno",
            *lim,
            label,
            colorbar=j == cols - 1,
            label="log10 T_b [mK]",
        )
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


def loss_curve_figure(history: pd.DataFrame, title: str, *paths) -> None:
    """Training and validation loss against step (a training run's history table)."""
    df = history
    fig, ax = plt.subplots(figsize=(6.5, 4))
    window = max(1, len(df) // 100)
    ax.plot(df["step"], df["loss"], lw=0.5, alpha=0.4, color="C0")
    ax.plot(df["step"], df["loss"].rolling(window, min_periods=1).mean(), color="C0", label=f"train (rolling {window})")
    if "val_loss" in df:
        v = df.dropna(subset=["val_loss"])
        ax.plot(v["step"], v["val_loss"], "o-", color="C1", ms=3, label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if (df["loss"] > 0).all():
        ax.set_yscale("log")
    ax.legend()
    ax.set_title(title)
    save_figure(fig, *paths)


#: the learning-curve panels: column, label, target line (the paper's accuracy, where it has one)
CURVE_PANELS = [
    ("mean_abs_residual_k1", "mean |dP/P|, k <= 1 h/Mpc", 0.1),
    ("mean_abs_residual_k5", "mean |dP/P|, k <= 5 h/Mpc", 0.1),
    ("mean_abs_residual_k10", "mean |dP/P|, k <= 10 h/Mpc", 0.1),
    ("max_abs_residual_k1", "max |dP/P|, k <= 1 h/Mpc", None),
    ("max_abs_residual_k5", "max |dP/P|, k <= 5 h/Mpc", None),
    ("max_abs_residual_k10", "max |dP/P|, k <= 10 h/Mpc", None),
    ("r_k1", "r(k = 1 h/Mpc)", 0.9),
    ("r_k5", "r(k = 5 h/Mpc)", None),
    ("pdf_distance_dex", "PDF distance [dex]", None),
    ("mean_tb_ratio", "<T_b> generated / target", 1.0),
    ("seam_metric", "seam metric (1: no seams)", 1.0),
]
CONDITION_COLOURS = {"true_halos": "C3", "halogen": "C0"}
BASELINE_STYLES = {
    "halo_model_true": ("C5", "--"),
    "halo_model": ("C1", ":"),
    "ldl": ("C9", "-."),
    "hi_redraw": ("C7", "-"),
}


def learning_curve_figure(table: pd.DataFrame, main: str, title: str, *paths) -> None:
    """Every metric of the convergence study against training wall time: the ``main`` variant
    as lines (mean and spread over simulations and seeds, one colour per halo condition), the
    other variants (ablations) as labelled points, the baselines as horizontal lines and the
    paper's accuracy as a grey line; last panel (when the table has HALOgen's rows): HALOgen's
    halo mass recovered per channel."""
    lodi = with_tb(table[table["model"] == "lodi"])
    base = table[table["model"] == "baseline"]
    halogen = table[table["model"] == "halogen"]
    n = len(CURVE_PANELS) + (1 if len(halogen) else 0)  # a study may leave HALOgen out (epochs [])
    cols = 4
    fig, axes = plt.subplots(
        (n + cols - 1) // cols,
        cols,
        figsize=(4.4 * cols, 3.3 * ((n + cols - 1) // cols)),
        squeeze=False,
        layout="constrained",
    )
    for ax, (column, label, target) in zip(axes.flat, CURVE_PANELS):
        for (cond, tb), rows in lodi[lodi["variant"] == main].groupby(["condition", "tb"]):
            g = rows.groupby("step").agg(t=("time_s", "mean"), m=(column, "mean"), s=(column, "std")).reset_index()
            colour = CONDITION_COLOURS.get(cond, "C4")
            ax.errorbar(
                g["t"],
                g["m"],
                yerr=g["s"].fillna(0),
                color=colour,
                ls="--" if tb == "calibrated" else "-",
                marker="s" if tb == "calibrated" else "o",
                ms=3,
                capsize=2,
                label=f"{main}, {cond}" + (", T_b calibrated" if tb == "calibrated" else ""),
            )
        others = lodi[lodi["variant"] != main]
        for i, ((variant, cond, tb), rows) in enumerate(others.groupby(["variant", "condition", "tb"])):
            g = rows.groupby("step").agg(t=("time_s", "mean"), m=(column, "mean")).reset_index()
            ax.plot(
                g["t"],
                g["m"],
                ls="none",
                marker="^sdvP*XhD<>"[i % 11],
                ms=5,
                color=f"C{(i + 5) % 10}",
                label=f"{variant}, {cond}" + (", T_b calibrated" if tb == "calibrated" else ""),
            )
        if column in base:
            for method, rows in base.groupby("variant"):
                colour, ls = BASELINE_STYLES.get(method, ("0.4", "--"))
                ax.axhline(rows[column].mean(), color=colour, ls=ls, lw=1, label=METHOD_LABELS.get(method, method))
        if target is not None:
            ax.axhline(target, color="0.6", lw=2.5, alpha=0.4, zorder=0)
        ax.set_xscale("log")
        ax.set_xlabel("training wall time [s]")
        ax.set_title(label, fontsize=9)
        if column.startswith(("mean_abs", "max_abs")):
            ax.set_yscale("log")
    if len(halogen):
        ax = axes.flat[len(CURVE_PANELS)]
        for channel, rows in halogen.groupby("channel"):
            g = rows.groupby("epoch").agg(t=("time_s", "mean"), m=("mass_recovered", "mean")).reset_index()
            ax.plot(g["t"], g["m"], marker="o", ms=3, label=f"HALOgen ch{int(channel)}")
        ax.axhline(1.0, color="0.6", lw=2.5, alpha=0.4, zorder=0)
        ax.set_xscale("log")
        ax.set_xlabel("HALOgen training wall time [s]")
        ax.set_title("halo mass recovered", fontsize=9)
        ax.legend(fontsize=6)
    for ax in axes.flat[n:]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(5, len(handles)), fontsize=7)
    fig.suptitle(f"{title} (grey: the paper's accuracy)")
    save_figure(fig, *paths)

"""Metrics of generated T_b volumes against the simulation (Sec. 3.2 and beyond the paper):
P(k) residuals of T_b/<T_b> (Eqs. 15-16), r(k), a one-point PDF distance, seams, and the
spread of the seeds against their skill."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from ..data.boxes import box_origins, tiling_origins
from ..io import read_grids, read_hdf5, write_csv
from ..physics.spectra import cross_correlation, cross_power_spectrum, cross_spectra
from .seams import seam_excess_power, seam_metric

#: wavenumber limits (h/Mpc) of the residual metrics (the paper quotes k <= 10)
K_LIMITS = (1.0, 5.0, 10.0)
#: where r(k) is reported
K_R = (0.5, 1.0, 5.0)
#: floor of log10(T_b + floor) in PDFs, seams and log maps, as a fraction of the target's <T_b>
TB_FLOOR_FRACTION = 1e-3


def normalised(tb) -> np.ndarray:
    """Eq. 15: T_b / <T_b>."""
    tb = np.asarray(tb, dtype=np.float64)
    return tb / tb.mean()


def power_residual(generated, target, box_size: float) -> pd.DataFrame:
    """P(k) of T_b/<T_b> for both fields, the relative residual P_gen/P_true - 1 and r(k)."""
    g, t = normalised(generated), normalised(target)
    k, p_gt, p_gg, p_tt, n_modes = cross_power_spectrum(g, t, box_size)
    r = cross_correlation(p_gt, p_gg, p_tt)
    return pd.DataFrame(
        {"k": k, "pk_generated": p_gg, "pk_target": p_tt, "residual": p_gg / p_tt - 1.0, "r": r, "n_modes": n_modes}
    )


def max_abs_residual(table: pd.DataFrame, k_max: float) -> float:
    """max |P_gen / P_true - 1| over the bins with k <= k_max."""
    sel = table["k"] <= k_max
    return float(table.loc[sel, "residual"].abs().max()) if sel.any() else float("nan")


def mean_abs_residual(table: pd.DataFrame, k_max: float) -> float:
    """The mean of |P_gen / P_true - 1| over the bins with k <= k_max (the paper's "within 10 %"
    reads the mean curve; the max is dominated by the noisiest bin)."""
    sel = table["k"] <= k_max
    return float(table.loc[sel, "residual"].abs().mean()) if sel.any() else float("nan")


def value_at(table: pd.DataFrame, column: str, k: float) -> float:
    """The column in the bin nearest to k (NaN beyond the table's range)."""
    if k > table["k"].max() * 1.05 or k < table["k"].min() * 0.95:
        return float("nan")
    return float(table[column].iloc[int(np.argmin(np.abs(table["k"].to_numpy() - k)))])


def spread_skill(samples, target, box_size: float) -> pd.DataFrame:
    """Per k bin, the realisations s_i of one condition (seeds) against the target t (each
    T_b/<T_b>, Eq. 15; beyond the paper):

    - ``r_target``: the mean over i of r(s_i, t), what the metrics report per seed;
    - ``r_between``: the mean of r(s_i, s_j) over the pairs i < j;
    - ``r_mean``: r(mean_i s_i, t);
    - ``r_conditional``: <P(s_i, t)> / sqrt(<P(s_i, s_j)> P(t, t)), the correlation of the
      model's conditional mean with t (``r_mean``'s limit for many realisations): the number to
      set beside a deterministic prediction such as ``halo_model_true``;
    - ``residual_of_mean_pk``: <P(s_i, s_i)> / P(t, t) - 1, the residual of the seeds' mean
      power spectrum, the curve the paper's "within 10 %" reads (its Fig. 10). One seed's
      residual scatters by tens of per cent where a few bright halos carry the power.

    Were t one more draw of the law the samples come from, P(s_i, s_j) and P(s_i, t) would both
    estimate the power of the conditional mean, so ``r_between`` = ``r_target`` in expectation
    (and ``r_target`` = ``r_conditional``^2). ``r_between`` above ``r_target``: the samples agree
    with each other more than with t, an error of the conditional mean that the spread over
    seeds does not show (over-confident); below: under-confident. With a single realisation
    ``r_between`` and ``r_conditional`` are NaN."""
    fields = [normalised(s) for s in samples]
    if not fields:
        raise ValueError("spread_skill: no realisations")
    n = len(fields)
    t, m = n, n + 1  # the target and the seeds' mean, after the seeds
    pairs = list(combinations(range(n), 2))
    wanted = [(i, t) for i in range(n)] + [(i, i) for i in range(n)] + pairs + [(t, t), (m, t), (m, m)]
    k, spectra, n_modes = cross_spectra([*fields, normalised(target), np.mean(fields, axis=0)], wanted, box_size)
    p_st, p_ss, p_pairs = spectra[:n], spectra[n : 2 * n], spectra[2 * n : 2 * n + len(pairs)]
    p_tt, p_mt, p_mm = spectra[-3:]
    r_target = np.mean([cross_correlation(a, b, p_tt) for a, b in zip(p_st, p_ss)], axis=0)
    r_between = r_conditional = np.full_like(k, np.nan)
    if pairs:
        r_between = np.mean([cross_correlation(p, p_ss[i], p_ss[j]) for p, (i, j) in zip(p_pairs, pairs)], axis=0)
        r_conditional = cross_correlation(np.mean(p_st, axis=0), np.mean(p_pairs, axis=0), p_tt)
    return pd.DataFrame(
        {
            "k": k,
            "n_modes": n_modes,
            "r_target": r_target,
            "r_between": r_between,
            "r_mean": cross_correlation(p_mt, p_mm, p_tt),
            "r_conditional": r_conditional,
            "residual_of_mean_pk": np.mean(p_ss, axis=0) / p_tt - 1.0,
        }
    )


def pdf_distance(
    generated, target, floor_fraction: float = TB_FLOOR_FRACTION, max_samples: int = 2_000_000, seed: int = 0
) -> float:
    """1-Wasserstein distance between the one-point distributions of log10(T_b + floor),
    floor a fraction of <T_b> of the target (in dex; 0 for identical distributions)."""
    floor = floor_fraction * float(np.mean(target))
    a = np.log10(np.asarray(generated, dtype=np.float64).ravel() + floor)
    b = np.log10(np.asarray(target, dtype=np.float64).ravel() + floor)
    rng = np.random.default_rng(seed)
    if a.size > max_samples:
        a, b = rng.choice(a, max_samples, replace=False), rng.choice(b, max_samples, replace=False)
    from scipy.stats import wasserstein_distance  # here: scipy.stats costs every figure job ~0.8 s to import

    return float(wasserstein_distance(a, b))


def box_axis_origins(attrs: dict) -> tuple[list[int], int, float]:
    """Origins of a generated volume's boxes along one axis, the box side and the spacing of
    the seams in voxels, from the volume's attributes."""
    n, box = int(attrs["n_grid"]), int(attrs["box"])
    if attrs["method"] == "tiling":
        axis = sorted({o[0] for o in tiling_origins(n, box)})
        return axis, box, float(box)
    axis = box_origins(n, box, int(attrs["overlap"]), bool(attrs.get("periodic", False)))
    spacing = float(np.mean(np.diff(axis))) if len(axis) > 1 else float(box)
    return axis, box, spacing


def has_boxes(attrs: dict) -> bool:
    """Whether a volume was assembled from boxes (LODI's methods); baselines painted on the
    whole volume at once carry ``box = 0`` and have no seams."""
    box = attrs.get("box")
    return isinstance(box, (int, float, np.integer, np.floating)) and int(box) > 0


def volume_metrics(generated, target, attrs: dict) -> dict:
    """One row of results/metrics.csv (seam columns NaN for a volume without boxes)."""
    box_size = float(attrs["box_size"])
    table = power_residual(generated, target, box_size)
    row = {f"max_abs_residual_k{k:g}": max_abs_residual(table, k) for k in K_LIMITS}
    row.update({f"mean_abs_residual_k{k:g}": mean_abs_residual(table, k) for k in K_LIMITS})
    row.update({f"r_k{k:g}": value_at(table, "r", k) for k in K_R})
    row.update(seam_metric=float("nan"), seam_metric_target=float("nan"), seam_excess_power=float("nan"))
    if has_boxes(attrs):
        axis, box, spacing = box_axis_origins(attrs)
        # seams on log10(T_b + floor): T_b is heavy-tailed, and a few bright halos would decide
        # a linear-scale ratio whatever the boxes do
        floor = TB_FLOOR_FRACTION * float(np.mean(target))
        row["seam_metric"] = seam_metric(np.log10(np.asarray(generated, dtype=np.float64) + floor), axis, box)
        row["seam_metric_target"] = seam_metric(np.log10(np.asarray(target, dtype=np.float64) + floor), axis, box)
        row["seam_excess_power"] = seam_excess_power(
            generated, target, spacing * box_size / int(attrs["n_grid"]), box_size
        )
    row["pdf_distance_dex"] = pdf_distance(generated, target)
    row["mean_tb_ratio"] = float(np.mean(generated) / np.mean(target))
    return row


def summarise(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds for each simulation and method."""
    value_cols = [c for c in metrics.columns if c not in ("simulation", "seed", "method")]
    grouped = metrics.groupby(["simulation", "method"])[value_cols]
    out = grouped.mean().add_suffix("_mean").join(grouped.std(ddof=0).add_suffix("_std")).reset_index()
    return out


def metrics_table(grid_paths: dict, volume_paths) -> pd.DataFrame:
    """One row per generated volume: simulation, seed, method and :func:`volume_metrics`
    against the simulation's T_b (``grid_paths``: simulation -> grid file)."""
    rows, targets = [], {}
    for p in volume_paths:
        data, attrs = read_grids(p, ("tb",))
        sim = str(attrs["simulation"])
        if sim not in targets:
            targets[sim] = read_grids(grid_paths[sim], ("tb",))[0]["tb"]
        rows.append(
            {
                "simulation": sim,
                "seed": int(attrs["seed"]),
                "method": str(attrs["method"]),
                **volume_metrics(data["tb"], targets[sim], attrs),
            }
        )
    table = pd.DataFrame(rows)
    return table.sort_values(["simulation", "method", "seed"]).reset_index(drop=True) if len(table) else table


def spread_summary(grid_paths: dict, volume_paths) -> pd.DataFrame:
    """One row per simulation and method with two or more seeds: :func:`spread_skill`'s
    ``r_between`` and ``r_conditional`` at the wavenumbers of the ``r_k`` columns, and the max
    and mean |residual| of the seeds' mean P(k) for k <= 1, 5, 10 (``mean_pk_max_abs_residual_k*``,
    ``mean_pk_mean_abs_residual_k*``)."""
    groups: dict[tuple, list] = {}
    for p in volume_paths:
        attrs = read_hdf5(p, [], what="generated volume")[1]
        groups.setdefault((str(attrs["simulation"]), str(attrs["method"])), []).append(p)
    r_columns = [f"{c}_k{k:g}" for c in ("r_between", "r_conditional") for k in K_R]
    pk_columns = [f"mean_pk_{stat}_abs_residual_k{k:g}" for stat in ("max", "mean") for k in K_LIMITS]
    rows = []
    for (sim, method), paths in sorted(groups.items()):
        if len(paths) < 2:
            continue
        target, attrs = read_grids(grid_paths[sim], ("tb",))
        table = spread_skill((read_grids(p, ("tb",))[0]["tb"] for p in paths), target["tb"], float(attrs["box_size"]))
        residual = table.rename(columns={"residual_of_mean_pk": "residual"})
        pk = [max_abs_residual(residual, k) for k in K_LIMITS] + [mean_abs_residual(residual, k) for k in K_LIMITS]
        rows.append([sim, method] + [value_at(table, c, k) for c in ("r_between", "r_conditional") for k in K_R] + pk)
    return pd.DataFrame(rows, columns=["simulation", "method", *r_columns, *pk_columns])


def write_metrics(grid_paths: dict, volume_paths, metrics_csv, summary_csv) -> None:
    """results/metrics.csv (one row per volume) and metrics_summary.csv (mean and std over
    seeds per simulation and method, and where there are two seeds or more the spread against
    the skill and the residual of the seeds' mean P(k): :func:`spread_summary`)."""
    table = metrics_table(grid_paths, volume_paths)
    write_csv(table, metrics_csv)
    summary = summarise(table).merge(spread_summary(grid_paths, volume_paths), on=["simulation", "method"], how="left")
    write_csv(summary, summary_csv)


def with_tb(lodi: pd.DataFrame) -> pd.DataFrame:
    """The convergence study's LODI score rows with their ``tb`` column (``raw`` or
    ``calibrated``; tables written before the T_b calibration have none: their T_b is raw)."""
    return lodi.assign(tb=lodi["tb"].fillna("raw") if "tb" in lodi else "raw")

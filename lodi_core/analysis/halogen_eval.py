"""HALOgen against the simulation's halo channels (Fig. 9): per-channel PDFs of log10 rho_h,
P(k), r(k) and the fraction of halo mass recovered."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..physics.spectra import correlation_coefficient, overdensity, power_spectrum


def evaluate_halos(
    pred: np.ndarray, target: np.ndarray, box_size: float, floor: float = 10**9.5, bins: int = 40
) -> dict[str, pd.DataFrame]:
    """Per channel: the PDF of log10 rho_h above ``floor`` (target and predicted) with its
    median and 16-84 % band (Fig. 9, right), P(k) and r(k) against the target, and the
    fraction of halo mass recovered."""
    rows, pdf_rows, pk_rows = [], [], []
    for c in range(target.shape[0]):
        t, p = np.asarray(target[c], np.float64), np.asarray(pred[c], np.float64)
        lt, lp = np.log10(t[t > floor]), np.log10(p[p > floor])
        lo = min(lt.min(initial=np.inf), lp.min(initial=np.inf))
        hi = max(lt.max(initial=-np.inf), lp.max(initial=-np.inf))
        edges = (
            np.linspace(lo, hi, bins + 1) if np.isfinite([lo, hi]).all() and hi > lo else np.linspace(9.5, 14, bins + 1)
        )
        ht, hp = (np.histogram(v, edges, density=True)[0] if v.size else np.zeros(bins) for v in (lt, lp))
        for e0, e1, a, b in zip(edges[:-1], edges[1:], ht, hp):
            pdf_rows.append({"channel": c + 1, "log_rho": 0.5 * (e0 + e1), "pdf_target": a, "pdf_pred": b})
        row = {"channel": c + 1, "mass_recovered": float(p.sum() / t.sum()) if t.sum() > 0 else float("nan")}
        for name, v in (("target", lt), ("pred", lp)):
            q = np.percentile(v, [16, 50, 84]) if v.size else [np.nan] * 3
            row.update(
                {f"{name}_p16": q[0], f"{name}_median": q[1], f"{name}_p84": q[2], f"{name}_voxels": int(v.size)}
            )
        rows.append(row)
        if t.mean() > 0 and p.mean() > 0:
            k, pk_t, _ = power_spectrum(overdensity(t), box_size)
            _, pk_p, _ = power_spectrum(overdensity(p), box_size)
            _, r, _ = correlation_coefficient(overdensity(t), overdensity(p), box_size)
            for kk, a, b, rr in zip(k, pk_t, pk_p, r):
                pk_rows.append(
                    {"channel": c + 1, "k": kk, "pk_target": a, "pk_pred": b, "residual": b / a - 1, "r": rr}
                )
    return {"summary": pd.DataFrame(rows), "pdf": pd.DataFrame(pdf_rows), "pk": pd.DataFrame(pk_rows)}

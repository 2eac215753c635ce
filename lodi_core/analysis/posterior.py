"""Statistics over the realisations (seeds) of one method: the per-voxel posterior mean and
spread, and the calibration z-score of the target (beyond the paper)."""

from __future__ import annotations

import numpy as np


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

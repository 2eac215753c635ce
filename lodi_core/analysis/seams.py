"""Seam metrics of volumes assembled from boxes (beyond the paper): the contrast across box
edges and the power of the plane-averaged profile at the seam spacing."""

from __future__ import annotations

import numpy as np
import torch

from ..data.boxes import box_edge_planes


def seam_metric(field, origins_axis: list[int], box: int) -> float:
    """Mean squared difference across box-edge planes over the same across all other
    planes, along the three axes (1 for a seamless field; > 1 when the boxes show)."""
    f = torch.as_tensor(field, dtype=torch.float64)
    n = f.shape[-1]
    edges = box_edge_planes(origins_axis, box, n)
    interior = [p for p in range(1, n) if p not in edges]
    if not edges or not interior:
        return float("nan")
    num = den = 0.0
    for axis in range(3):
        d2 = (f.narrow(axis, 1, n - 1) - f.narrow(axis, 0, n - 1)) ** 2  # plane p-1 -> p at index p-1
        other = tuple(a for a in range(3) if a != axis)
        per_plane = d2.mean(dim=other)
        num += float(per_plane[[p - 1 for p in edges]].mean())
        den += float(per_plane[[p - 1 for p in interior]].mean())
    return num / den


def seam_excess_power(field, target, spacing: float, box_size: float, harmonics: int = 2) -> float:
    """Power of the plane-averaged profiles at the seam wavenumbers k = 2 pi m / spacing
    (spacing in Mpc/h, m = 1..harmonics), generated over target, minus 1, averaged over the
    three axes and the harmonics (0 when the boxes leave no periodic imprint)."""
    f = torch.as_tensor(field, dtype=torch.float64)
    t = torch.as_tensor(target, dtype=torch.float64)
    n = f.shape[-1]
    ratios = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        pf = torch.fft.rfft(f.mean(dim=other) / f.mean())
        pt = torch.fft.rfft(t.mean(dim=other) / t.mean())
        for m in range(1, harmonics + 1):
            j = int(round(m * box_size / spacing))
            if 0 < j <= n // 2 and float(pt[j].abs()) > 0:
                ratios.append(float(pf[j].abs() ** 2 / pt[j].abs() ** 2) - 1.0)
    return float(np.mean(ratios)) if ratios else float("nan")

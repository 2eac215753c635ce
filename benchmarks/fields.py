"""CIC of 128^3 and 256^3 particles and P(k) of a 256^3 grid: ours and Pylians side by side
on the CPU (and ours on the GPU where present), plus the full T_b grid of a 256^3 simulation
(CIC + Eq. 12 + smoothing). Run: python benchmarks/fields.py [--quick]"""

from __future__ import annotations

import sys

import numpy as np
import torch
from _common import devices, timeit, write

from lodi_core.physics.cosmology import Cosmology
from lodi_core.physics.fields import brightness_temperature, cell_volume, cic, gaussian_smooth
from lodi_core.physics.spectra import power_spectrum

quick = "--quick" in sys.argv
BOX = 25.0


def particles(n_side, seed=0, clustered=False):
    """Uniform random positions, or a clustered set (a perturbed lattice in Lagrangian order,
    spatially coherent as simulation snapshots are)."""
    rng = np.random.default_rng(seed)
    if not clustered:
        return (rng.random((n_side**3, 3)) * BOX).astype(np.float32)
    q = (np.stack(np.meshgrid(*[np.arange(n_side)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) * BOX / n_side
    return np.mod(q + rng.normal(scale=0.3, size=q.shape), BOX).astype(np.float32)


def main():
    try:
        import MAS_library as MASL
        import Pk_library as PKL
    except ImportError:
        MASL = PKL = None
    result = {"cic": {}, "pk": {}, "tb_grid": {}}
    sizes = (64, 128) if quick else (128, 256)
    for n_side in sizes:
        for clustered in (False, True):
            pos = particles(n_side, clustered=clustered)
            key = f"{n_side}^3_{'lattice' if clustered else 'random'}_on_{n_side}^3"
            row = {}
            for dev in devices():
                p = torch.from_numpy(pos).to(dev)
                row[f"ours_{dev}"] = timeit(lambda: cic(p, BOX, n_side, device=dev), dev)
            if MASL is not None:

                def pylians():
                    g = np.zeros((n_side,) * 3, dtype=np.float32)
                    MASL.MA(pos, g, BOX, "CIC", verbose=False)

                row["pylians_cpu"] = timeit(pylians)
                row["pylians_over_ours_cpu"] = row["pylians_cpu"]["median_s"] / row["ours_cpu"]["median_s"]
            result["cic"][key] = row
    n = 128 if quick else 256
    delta = np.random.default_rng(1).standard_normal((n,) * 3).astype(np.float32)
    row = {}
    for dev in devices():
        d = torch.from_numpy(delta).to(dev)
        row[f"ours_{dev}"] = timeit(lambda: power_spectrum(d, BOX), dev)
    if PKL is not None:
        row["pylians_cpu"] = timeit(lambda: PKL.Pk(delta, BOX, 0, None, torch.get_num_threads(), verbose=False))
        row["pylians_over_ours_cpu"] = row["pylians_cpu"]["median_s"] / row["ours_cpu"]["median_s"]
    result["pk"][f"{n}^3"] = row
    # a whole T_b grid: CIC of 256^3 gas cells with HI weights, Eq. 12, smoothing
    pos = particles(n, clustered=True)
    weights = np.random.default_rng(2).random(len(pos)).astype(np.float32) * 1e8
    cosmo = Cosmology()
    for dev in devices():
        p, w = torch.from_numpy(pos).to(dev), torch.from_numpy(weights).to(dev)

        def tb():
            rho = cic(p, BOX, n, w, dtype=torch.float32, device=dev) / cell_volume(BOX, n)
            return gaussian_smooth(brightness_temperature(rho, cosmo, 0.0), BOX, 0.2)

        result["tb_grid"][f"{n}^3_{dev}"] = timeit(tb, dev)
    write("fields", result)


if __name__ == "__main__":
    main()

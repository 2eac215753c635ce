"""The generated-volume file: T_b in mK (a grid file with the ``tb`` dataset) and the
attributes that say what made it. LODI's volumes, its tiling and averaging baselines and the
cheap baselines all go through here, so metrics and figures read them alike."""

from __future__ import annotations

import torch

from ..io import code_version, write_grids


def volume_attrs(grid_attrs: dict, method: str, seed: int, simulation: str, box: int, **provenance) -> dict:
    """Attributes of a generated volume: what (``method``, ``seed``, ``simulation``), the boxes
    it was assembled from (``box`` side in voxels; 0 for a volume painted in one piece, which
    has no seams), the grid it lives on (from ``grid_attrs``) and ``provenance`` (the method's
    settings and input files)."""
    return {
        "method": method,
        "seed": seed,
        "simulation": simulation,
        "box": box,
        **provenance,
        "box_size": grid_attrs["box_size"],
        "n_grid": grid_attrs["n_grid"],
        "redshift": grid_attrs.get("redshift", 0.0),
        "smoothing_radius": grid_attrs.get("smoothing_radius", 0.0),
        "code_version": code_version(),
    }


def write_tb_volume(path, tb, attrs: dict) -> None:
    """A T_b volume (mK), checked finite, clamped non-negative and written with its attributes."""
    tb = torch.as_tensor(tb).float()
    if not torch.isfinite(tb).all():
        raise FloatingPointError(f"{path}: the {attrs.get('method')} volume has non-finite values; not written")
    write_grids(path, {"tb": tb.clamp(min=0)}, attrs)

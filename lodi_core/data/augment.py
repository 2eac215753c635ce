"""The 48 symmetries of the cube (6 axis permutations x 8 reflections), applied to the last
three (spatial) dimensions of a tensor, identically to every channel."""

from __future__ import annotations

import itertools

import torch

#: (permutation of the three spatial axes, which of them to flip afterwards)
CUBE_SYMMETRIES: list[tuple[tuple[int, int, int], tuple[bool, bool, bool]]] = [
    (perm, flips) for perm in itertools.permutations(range(3)) for flips in itertools.product((False, True), repeat=3)
]


def apply_symmetry(x: torch.Tensor, index: int) -> torch.Tensor:
    """Permute the spatial axes, then flip; index 0 is the identity."""
    perm, flips = CUBE_SYMMETRIES[index]
    lead = x.ndim - 3
    y = x.permute(*range(lead), *(lead + p for p in perm))
    dims = [lead + a for a in range(3) if flips[a]]
    return y.flip(dims) if dims else y


def invert_symmetry(y: torch.Tensor, index: int) -> torch.Tensor:
    """The inverse of :func:`apply_symmetry` with the same index."""
    perm, flips = CUBE_SYMMETRIES[index]
    lead = y.ndim - 3
    dims = [lead + a for a in range(3) if flips[a]]
    y = y.flip(dims) if dims else y
    inverse = [perm.index(a) for a in range(3)]
    return y.permute(*range(lead), *(lead + p for p in inverse))

"""Sub-volumes of a periodic grid: window origins, extraction, and sliding-window inference
with overlaps averaged (HALOgen on a full box, Sec. 2.1.1)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from tqdm.auto import tqdm


def window_origins(n: int, window: int, stride: int, periodic: bool = False) -> list[int]:
    """Origins along one axis. Periodic: 0, stride, ... < n (windows wrap around).
    Otherwise windows stay inside [0, n): 0, stride, ..., and a last one ending at n."""
    if window > n and not periodic:
        raise ValueError(f"window of {window} cells does not fit in a box of {n} cells")
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    if periodic:
        return list(range(0, n, stride))
    origins = list(range(0, n - window + 1, stride))
    if origins[-1] != n - window:
        origins.append(n - window)
    return origins


def extract(volume: torch.Tensor, origin, size: int) -> torch.Tensor:
    """The ``size^3`` window at ``origin`` (3 ints) of a periodic volume (..., N, N, N)."""
    n = volume.shape[-3:]
    out = volume
    for axis, (o, length) in enumerate(zip(origin, n)):
        idx = torch.arange(o, o + size, device=volume.device) % length
        out = out.index_select(volume.ndim - 3 + axis, idx)
    return out


def sliding_window_apply(
    volume: torch.Tensor,
    fn: Callable[[torch.Tensor], torch.Tensor],
    window: int,
    stride: int,
    periodic: bool = False,
    batch_size: int = 8,
    out_channels: int | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Apply ``fn`` ((B, C, w, w, w) -> (B, C_out, w, w, w)) on every window of ``volume``
    (C, N, N, N) and average the overlapping outputs (float64 accumulation, so an identity
    ``fn`` returns the input exactly). Windows are batched ``batch_size`` at a time."""
    n = volume.shape[-1]
    axis = window_origins(n, window, stride, periodic)
    origins = [(i, j, k) for i in axis for j in axis for k in axis]
    total = count = None
    bar = tqdm(total=len(origins), desc="windows", disable=not progress, mininterval=2)
    for start in range(0, len(origins), batch_size):
        chunk = origins[start : start + batch_size]
        windows = [extract(volume, o, window) for o in chunk]
        # the last batch is padded to full size: one input shape for compiled networks
        windows += [windows[-1]] * (batch_size - len(windows))
        out = fn(torch.stack(windows))[: len(chunk)].to(torch.float64)
        if total is None:
            cout = out_channels or out.shape[1]
            total = torch.zeros((cout, n, n, n), dtype=torch.float64, device=volume.device)
            count = torch.zeros((n, n, n), dtype=torch.float64, device=volume.device)
        for o, res in zip(chunk, out):
            if all(a + window <= n for a in o):
                sl = tuple(slice(a, a + window) for a in o)
            else:  # a periodic window wrapping around the box
                sl = torch.meshgrid(*[torch.arange(a, a + window, device=volume.device) % n for a in o], indexing="ij")
            total[(slice(None), *sl)] += res
            count[sl] += 1.0
        bar.update(len(chunk))
    bar.close()
    return (total / count).to(volume.dtype)

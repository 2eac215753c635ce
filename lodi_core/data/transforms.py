"""Explicit, invertible normalisations of the fields fed to the networks.

``y = (log10(x + floor) - mean) / std`` per channel; ``floor`` keeps empty voxels finite.
The fitted parameters travel with every checkpoint so outputs are always inverted with the
numbers the network was trained with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch


@dataclass
class LogTransform:
    floor: float
    mean: tuple = (0.0,)
    std: tuple = (1.0,)

    @classmethod
    def fit(cls, fields: list, floor: float, channel_axis: int | None = None) -> LogTransform:
        """Mean and std of log10(x + floor) over ``fields`` (per channel along
        ``channel_axis`` of each field, or one pair for all)."""
        if channel_axis is None:
            logs = np.concatenate([np.log10(np.asarray(f, dtype=np.float64).ravel() + floor) for f in fields])
            return cls(floor=float(floor), mean=(float(logs.mean()),), std=(float(max(logs.std(), 1e-6)),))
        n_ch = np.asarray(fields[0]).shape[channel_axis]
        means, stds = [], []
        for c in range(n_ch):
            logs = np.concatenate(
                [
                    np.log10(np.take(np.asarray(f, dtype=np.float64), c, axis=channel_axis).ravel() + floor)
                    for f in fields
                ]
            )
            means.append(float(logs.mean()))
            stds.append(float(max(logs.std(), 1e-6)))
        return cls(floor=float(floor), mean=tuple(means), std=tuple(stds))

    def _params(self, x: torch.Tensor, channel_dim: int | None):
        mean = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device)
        std = torch.as_tensor(self.std, dtype=x.dtype, device=x.device)
        if len(self.mean) > 1:
            if channel_dim is None:
                raise ValueError("a per-channel transform needs channel_dim")
            shape = [1] * x.ndim
            shape[channel_dim] = -1
            mean, std = mean.view(shape), std.view(shape)
        return mean, std

    def forward(self, x: torch.Tensor, channel_dim: int | None = None) -> torch.Tensor:
        mean, std = self._params(x, channel_dim)
        return (torch.log10(x.clamp(min=0) + self.floor) - mean) / std

    def inverse(self, y: torch.Tensor, channel_dim: int | None = None) -> torch.Tensor:
        mean, std = self._params(y, channel_dim)
        return (torch.pow(10.0, y * std + mean) - self.floor).clamp(min=0)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> LogTransform:
        return cls(floor=float(d["floor"]), mean=tuple(d["mean"]), std=tuple(d["std"]))

"""HALOgen (Sec. 2.1): an attention ResUNet mapping rho_DM to the 4 halo channels, and the
masked loss of Eqs. 2-7.

Every layer after the stem is grouped (``groups`` = number of halo channels): grouped 3D
convolutions, GroupNorm with one group per halo channel, skip connections interleaved group
by group, and a bottleneck self-attention with one head per group, so the features of the
four channels never mix (Fig. 2; the paper found that mixing groups degrades results).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigSection
from ..io import load_checkpoint, load_weights


@dataclass(frozen=True)
class HalogenConfig(ConfigSection):
    """Architecture (config ``halogen.network``)."""

    SECTION = "halogen.network"

    in_channels: int
    out_channels: int  # halo channels = groups
    channels: tuple  # per encoder stage (three stages, Fig. 2)
    bottleneck_channels: int
    blocks_per_stage: int
    attention: bool
    head_norm: bool = False  # GroupNorm before the output convolutions (model files before it had one)


def interleave_groups(a: torch.Tensor, b: torch.Tensor, groups: int) -> torch.Tensor:
    """Concatenate two grouped feature maps group by group, so group g of the result holds
    group g of ``a`` followed by group g of ``b`` (a plain concat would mix groups)."""
    bsz, _, *spatial = a.shape
    a = a.reshape(bsz, groups, -1, *spatial)
    b = b.reshape(bsz, groups, -1, *spatial)
    return torch.cat([a, b], dim=2).reshape(bsz, -1, *spatial)


class GroupedResBlock(nn.Module):
    """GroupNorm -> SiLU -> grouped conv3 (x2) with a grouped 1x1 skip when widths differ."""

    def __init__(self, cin: int, cout: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = nn.Conv3d(cin, cout, 3, padding=1, groups=groups)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = nn.Conv3d(cout, cout, 3, padding=1, groups=groups)
        self.skip = nn.Conv3d(cin, cout, 1, groups=groups) if cin != cout else nn.Identity()

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class GroupedSelfAttention(nn.Module):
    """Self-attention over voxels with one head per group; q, k, v and the output
    projection are grouped 1x1 convolutions."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.groups = groups
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv3d(channels, 3 * channels, 1, groups=groups)
        self.proj = nn.Conv3d(channels, channels, 1, groups=groups)

    def forward(self, x):
        bsz, c, *spatial = x.shape
        qkv = self.qkv(self.norm(x)).reshape(bsz, self.groups, 3, c // self.groups, -1)
        q, k, v = (t.transpose(-1, -2).contiguous() for t in qkv.unbind(2))  # (B, heads, N, d); see unet.SelfAttention
        out = F.scaled_dot_product_attention(q, k, v)
        out = out.transpose(-1, -2).reshape(bsz, c, *spatial)
        return x + self.proj(out)


class HALOgen(nn.Module):
    """Attention ResUNet: three max-pooling stages (64^3 -> 8^3 in the paper), attention at the
    bottleneck, trilinear upsampling with interleaved skips, grouped head with one output
    per halo channel."""

    def __init__(self, cfg: HalogenConfig):
        super().__init__()
        g = cfg.out_channels
        for w in (*cfg.channels, cfg.bottleneck_channels):
            if w % g:
                raise ValueError(f"HALOgen widths must be multiples of the {g} groups, got {w}")
        self.cfg = cfg
        self.groups = g
        self.stem = nn.Conv3d(cfg.in_channels, cfg.channels[0], 3, padding=1)
        self.down = nn.ModuleList()
        cin = cfg.channels[0]
        for w in cfg.channels:
            blocks = [GroupedResBlock(cin if i == 0 else w, w, g) for i in range(cfg.blocks_per_stage)]
            self.down.append(nn.Sequential(*blocks))
            cin = w
        self.mid1 = GroupedResBlock(cin, cfg.bottleneck_channels, g)
        self.attn = GroupedSelfAttention(cfg.bottleneck_channels, g) if cfg.attention else nn.Identity()
        self.mid2 = GroupedResBlock(cfg.bottleneck_channels, cfg.bottleneck_channels, g)
        self.up = nn.ModuleList()
        cin = cfg.bottleneck_channels
        for w in reversed(cfg.channels):
            blocks = [GroupedResBlock(cin + w if i == 0 else w, w, g) for i in range(cfg.blocks_per_stage)]
            self.up.append(nn.Sequential(*blocks))
            cin = w
        # the paper's last decoder block leads straight to the grouped output convolutions; a
        # GroupNorm there rescales each window's features to unit variance, so the head cannot
        # tell a window's massive halo from a small one (docs/convergence.md measures it)
        self.head_norm = nn.GroupNorm(g, cin) if cfg.head_norm else nn.Identity()
        self.head = nn.Conv3d(cin, cfg.out_channels, 1, groups=g)

    @property
    def downsampling(self) -> int:
        return 2 ** len(self.cfg.channels)

    def forward(self, x):
        if any(s % self.downsampling for s in x.shape[-3:]):
            raise ValueError(f"HALOgen input sides must be multiples of {self.downsampling}, got {tuple(x.shape[-3:])}")
        h = self.stem(x)
        skips = []
        for stage in self.down:
            h = stage(h)
            skips.append(h)
            h = F.max_pool3d(h, 2)
        h = self.mid2(self.attn(self.mid1(h)))
        for stage in self.up:
            h = F.interpolate(h, scale_factor=2, mode="trilinear", align_corners=False)
            h = stage(interleave_groups(h, skips.pop(), self.groups))
        return self.head(F.silu(self.head_norm(h)))


def dense_equivalent(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every grouped convolution replaced by a dense one whose
    kernel is block-diagonal: the same function (the zero blocks couple no groups) at
    ``groups`` times the arithmetic, run by the dense convolution kernels, which some GPU
    backends execute far faster than grouped 3D ones. For inference only: training the
    copy would fill the zero blocks and mix the groups."""
    out = copy.deepcopy(model)
    for parent in list(out.modules()):
        for name, conv in list(parent.named_children()):
            if not isinstance(conv, nn.Conv3d) or conv.groups == 1:
                continue
            g, ci, co = conv.groups, conv.in_channels // conv.groups, conv.out_channels // conv.groups
            dense = nn.Conv3d(
                conv.in_channels,
                conv.out_channels,
                conv.kernel_size,
                conv.stride,
                conv.padding,
                conv.dilation,
                bias=conv.bias is not None,
                device=conv.weight.device,
                dtype=conv.weight.dtype,
            )
            with torch.no_grad():
                dense.weight.zero_()
                for k in range(g):
                    dense.weight[k * co : (k + 1) * co, k * ci : (k + 1) * ci] = conv.weight[k * co : (k + 1) * co]
                if conv.bias is not None:
                    dense.bias.copy_(conv.bias)
            setattr(parent, name, dense)
    return out


# ----------------------------------------------------------------------------- masked loss
@dataclass(frozen=True)
class LossConfig(ConfigSection):
    """Eq. 5 hyper-parameters (config ``halogen.loss``; paper: alpha 0.6, q 0.7, beta [1, 2, 5, 8],
    lambda_w 1e-6, percentile 95 for Eq. 3's P(rho > T_c) = 0.05)."""

    SECTION = "halogen.loss"

    alpha: float
    quantile: float
    beta: tuple
    lambda_w: float
    percentile: float
    neighbour_mask: bool


def channel_thresholds(targets, percentile: float = 95.0) -> torch.Tensor:
    """Eq. 3: per-channel T_c with P(rho^(c) > T_c) = 1 - percentile/100, over the training
    targets (a (C, ...) tensor or a list of them)."""
    if isinstance(targets, torch.Tensor):
        targets = [targets]
    c = targets[0].shape[0]
    flat = np.concatenate([torch.as_tensor(t).reshape(c, -1).double().cpu().numpy() for t in targets], axis=1)
    return torch.from_numpy(np.percentile(flat, percentile, axis=1))


def _neighbours(i: int, n: int) -> range:
    """Channels max(1, i-1) .. min(n, i+1) of Eq. 2 (0-based)."""
    return range(max(0, i - 1), min(n, i + 2))


def channel_weights(target: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Eq. 2: w^i = N_mesh^3 / sum_{j = i-1..i+1} #(rho^(j) > T_c^(j)) (>= 1)."""
    c = target.shape[0]
    above = (target > thresholds.view(c, *[1] * (target.ndim - 1)).to(target)).reshape(c, -1)
    n_vox = above.shape[1]
    counts = above.sum(dim=1).double()
    w = torch.empty(c, dtype=torch.float64)
    for i in range(c):
        total = counts[list(_neighbours(i, c))].sum()
        w[i] = n_vox / total if total > 0 else 1.0
    return w


def loss_mask(target: torch.Tensor, thresholds, window: int = 64, neighbour_mask: bool = True) -> torch.Tensor:
    """Eq. 4 mask of a (C, N, N, N) target (thresholds per channel in the target's units).

    m^{i,k} = w^i (Eq. 2) where the voxel holds a halo of channel i above T_c^(i) and, with
    ``neighbour_mask`` (Fig. 3: "the mask also has large values for adjacent channel's halo
    positions"), also where a neighbouring channel i +- 1 does; 1 elsewhere. Normalised so
    that it sums to the number of ``window^3`` sub-volumes in the box (64 for 256^3 and
    64^3 windows): each (C, window^3) training mask adds to 1 on average.
    """
    thresholds = torch.as_tensor(thresholds, dtype=target.dtype, device=target.device)
    c = target.shape[0]
    above = target > thresholds.view(c, *[1] * (target.ndim - 1))
    w = channel_weights(target, thresholds).to(target.device)
    mask = torch.ones(target.shape, dtype=torch.float64, device=target.device)
    for i in range(c):
        region = above[list(_neighbours(i, c))].any(dim=0) if neighbour_mask else above[i]
        mask[i][region] = w[i]
    n_windows = target[0].numel() / window**3
    return (mask * (n_windows / mask.sum())).to(target.dtype)


@dataclass
class HalogenLoss:
    """The terms of Eq. 5, kept apart for logs and tests (per channel, batch-averaged)."""

    l2_masked: torch.Tensor  # (C,) sum_k m (pred - target)^2
    quantile: torch.Tensor  # (C,) Eq. 6 L_q
    regulariser: torch.Tensor  # Eq. 7 sum |theta|
    total: torch.Tensor = field(default=None)


def quantile_loss(pred: torch.Tensor, target: torch.Tensor, q: float) -> torch.Tensor:
    """Eq. 6 L_q per channel: mean over voxels of max(q d, (q - 1) d), d = target - pred;
    input (B, C, ...), output (C,) averaged over the batch."""
    d = target - pred
    return torch.maximum(q * d, (q - 1) * d).flatten(2).mean(dim=2).mean(dim=0)


def masked_l2(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked L2 of Eq. 5 per channel: sum_k m^{j,k} (pred - target)^2 (the mask's
    normalisation plays the role of 1/N_mesh); (C,) averaged over the batch."""
    return (mask * (pred - target) ** 2).flatten(2).sum(dim=2).mean(dim=0)


def l1_regulariser(model: nn.Module) -> torch.Tensor:
    """Eq. 7: sum of |theta| over the network's weights (convolution kernels and
    projections; biases and normalisation scales excluded)."""
    return sum(p.abs().sum() for p in model.parameters() if p.ndim > 1)


def halogen_loss(pred, target, mask, model: nn.Module | None, cfg: LossConfig) -> HalogenLoss:
    """Eq. 5: sum_j (alpha beta^j L2^j (.) m^j + (1 - alpha) L_q^j) + lambda_w L1_reg."""
    l2 = masked_l2(pred, target, mask)
    lq = quantile_loss(pred, target, cfg.quantile)
    beta = torch.as_tensor(cfg.beta, dtype=l2.dtype, device=l2.device)
    reg = l1_regulariser(model) if (model is not None and cfg.lambda_w > 0) else torch.zeros((), device=l2.device)
    total = (cfg.alpha * beta * l2 + (1 - cfg.alpha) * lq).sum() + cfg.lambda_w * reg
    return HalogenLoss(l2_masked=l2, quantile=lq, regulariser=reg, total=total)


def load_halogen(path, device="cpu") -> tuple[HALOgen, dict]:
    """The trained network (eval mode) and the model file's metadata."""
    state = load_checkpoint(path, kind="halogen", map_location=device)
    # model files written before `head_norm` existed have the norm and no key for it
    network = {"head_norm": "head_norm.weight" in state["model"], **state["network"]}
    net = HALOgen(HalogenConfig.from_dict(network)).to(device)
    return load_weights(net, path, state, {"HALOgen": state["network"]}), state

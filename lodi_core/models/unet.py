"""The LODI denoiser (Fig. 4): a 3D U-Net of residual blocks with GroupNorm, a Fourier time
embedding, self-attention at the bottleneck, conditioned on the halo channels by
concatenation. Residual blocks carry the paper's extra convolution (three instead of the
two of Ono et al. 2024). As in the VDM reference code, output and residual convolutions start
at zero; what the output means (eps with the base measure eps_hat = z_t + output, v or x) is
decided by the VDM (:func:`vdm.eps_from_output`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigSection


@dataclass(frozen=True)
class DenoiserConfig(ConfigSection):
    """Architecture (config ``lodi.network``)."""

    SECTION = "lodi.network"

    in_channels: int  # the noisy T_b
    cond_channels: int  # the halo channels
    channels: tuple  # per resolution level
    blocks_per_level: int
    embed_dim: int
    norm_groups: int
    attention_heads: int


def fourier_time_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of t * 1000 (t in [0, 1]), as the VDM reference embeds time."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GN-SiLU-conv, + time embedding, GN-SiLU-conv, GN-SiLU-conv (the extra convolution),
    residual connection (1x1 conv when the width changes)."""

    def __init__(self, cin: int, cout: int, embed_dim: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, cin), cin)
        self.conv1 = nn.Conv3d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(embed_dim, cout)
        self.norm2 = nn.GroupNorm(min(groups, cout), cout)
        self.conv2 = nn.Conv3d(cout, cout, 3, padding=1)
        self.norm3 = nn.GroupNorm(min(groups, cout), cout)
        self.conv3 = _zero(nn.Conv3d(cout, cout, 3, padding=1))
        self.skip = nn.Conv3d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(temb)[:, :, None, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        h = self.conv3(F.silu(self.norm3(h)))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(min(groups, channels), channels)
        self.qkv = nn.Conv3d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv3d(channels, channels, 1))

    def forward(self, x):
        b, c, *spatial = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, -1)
        # contiguous (B, heads, N, d): on strided inputs the CPU kernel is ~10x slower
        # (36 against 4 ms at the default's bottleneck: benchmarks/cpu_training.py)
        q, k, v = (t.transpose(-1, -2).contiguous() for t in qkv.unbind(1))
        out = F.scaled_dot_product_attention(q, k, v).transpose(-1, -2).reshape(b, c, *spatial)
        return x + self.proj(out)


class Denoiser(nn.Module):
    """Denoiser(z_t, gamma_t, halo_channels) -> the prediction read by the VDM; gamma_t enters the time embedding as
    t = (gamma_t - gamma_min) / (gamma_max - gamma_min), with the schedule's initial bounds
    (``VDMConfig``), fixed while the schedule learns."""

    def __init__(self, cfg: DenoiserConfig, gamma_min: float, gamma_max: float):
        super().__init__()
        self.cfg = cfg
        self.gamma_min, self.gamma_max = float(gamma_min), float(gamma_max)
        ch, e, g = cfg.channels, cfg.embed_dim, cfg.norm_groups
        if ch[-1] % cfg.attention_heads:
            raise ValueError(f"bottleneck width {ch[-1]} must be a multiple of attention_heads {cfg.attention_heads}")
        self.time_mlp = nn.Sequential(nn.Linear(e, 4 * e), nn.SiLU(), nn.Linear(4 * e, e))
        self.stem = nn.Conv3d(cfg.in_channels + cfg.cond_channels, ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downsample = nn.ModuleList()
        cin = ch[0]
        for level, w in enumerate(ch):
            self.down_blocks.append(
                nn.ModuleList([ResBlock(cin if i == 0 else w, w, e, g) for i in range(cfg.blocks_per_level)])
            )
            cin = w
            if level < len(ch) - 1:
                self.downsample.append(nn.Conv3d(w, w, 3, stride=2, padding=1))
        self.mid1 = ResBlock(cin, cin, e, g)
        self.attn = SelfAttention(cin, cfg.attention_heads, g)
        self.mid2 = ResBlock(cin, cin, e, g)
        self.up_blocks = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in range(len(ch) - 1, -1, -1):
            w = ch[level]
            self.up_blocks.append(
                nn.ModuleList([ResBlock((cin + w) if i == 0 else w, w, e, g) for i in range(cfg.blocks_per_level)])
            )
            cin = w
            if level > 0:
                self.upsample.append(nn.Conv3d(w, ch[level - 1], 3, padding=1))
                cin = ch[level - 1]
        self.out_norm = nn.GroupNorm(min(g, ch[0]), ch[0])
        self.out = _zero(nn.Conv3d(ch[0], cfg.in_channels, 3, padding=1))

    @property
    def downsampling(self) -> int:
        return 2 ** (len(self.cfg.channels) - 1)

    def forward(self, z_t: torch.Tensor, gamma_t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if any(s % self.downsampling for s in z_t.shape[-3:]):
            raise ValueError(f"box sides must be multiples of {self.downsampling}, got {tuple(z_t.shape[-3:])}")
        t = (gamma_t - self.gamma_min) / (self.gamma_max - self.gamma_min)
        temb = self.time_mlp(fourier_time_embedding(t, self.cfg.embed_dim))
        h = self.stem(torch.cat([z_t, cond.to(z_t.dtype)], dim=1))
        skips = []
        for level, blocks in enumerate(self.down_blocks):
            for block in blocks:
                h = block(h, temb)
            skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
        h = self.mid2(self.attn(self.mid1(h, temb)), temb)
        for i, blocks in enumerate(self.up_blocks):
            h = torch.cat([h, skips.pop()], dim=1)
            for block in blocks:
                h = block(h, temb)
            if i < len(self.upsample):
                h = self.upsample[i](F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.out(F.silu(self.out_norm(h)))

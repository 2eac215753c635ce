"""Variational diffusion model (Kingma et al. 2021; Sec. 2.2), kept in pieces as the
reference implementation (google-research/vdm) does: the noise schedule, the loss terms of
the bound, one pure reverse step and the one sampling loop. The denoiser (``unet.Denoiser``)
only sees gamma_t; what its output means (eps, v or x) is this module's ``parameterization``.

Forward process (Eq. 8): z_t = alpha_t x + sigma_t eps, alpha_t^2 = sigmoid(-gamma(t)),
sigma_t^2 = sigmoid(gamma(t)), with the learned linear schedule gamma(t) = b + |w| t.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..config import ConfigSection


@dataclass(frozen=True)
class VDMConfig(ConfigSection):
    """Config ``lodi.vdm``: T steps (paper 50) and the initial gamma(0), gamma(1) (Ono et al.
    2024: -13.3, 13.3), which also normalise gamma for the denoiser's time embedding."""

    SECTION = "lodi.vdm"

    timesteps: int
    gamma_min: float
    gamma_max: float
    antithetic_time_sampling: bool
    parameterization: str  # what the network predicts: "eps" (the paper), "v" or "x"
    loss_weighting: str  # "elbo" (the paper's bound) or "min_snr" (Hang et al. 2023)
    min_snr_gamma: float  # the cap of min-SNR weighting

    def __post_init__(self):
        if self.parameterization not in PARAMETERIZATIONS:
            raise ValueError(
                f"lodi.vdm.parameterization must be one of {PARAMETERIZATIONS}, got {self.parameterization!r}"
            )
        if self.loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"lodi.vdm.loss_weighting must be one of {LOSS_WEIGHTINGS}, got {self.loss_weighting!r}")


PARAMETERIZATIONS = ("eps", "v", "x")
LOSS_WEIGHTINGS = ("elbo", "min_snr")


class LinearSchedule(nn.Module):
    """gamma(t) = b + |w| t with learned b and w (monotone in t, so the SNR decreases)."""

    def __init__(self, gamma_min: float, gamma_max: float):
        super().__init__()
        self.b = nn.Parameter(torch.tensor(float(gamma_min)))
        self.w = nn.Parameter(torch.tensor(float(gamma_max - gamma_min)))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.b + self.w.abs() * t


def alpha(gamma: torch.Tensor) -> torch.Tensor:
    """alpha_t = sqrt(sigmoid(-gamma_t))."""
    return torch.sqrt(torch.sigmoid(-gamma))


def sigma(gamma: torch.Tensor) -> torch.Tensor:
    """sigma_t = sqrt(sigmoid(gamma_t))."""
    return torch.sqrt(torch.sigmoid(gamma))


def snr(gamma: torch.Tensor) -> torch.Tensor:
    """alpha^2 / sigma^2 = exp(-gamma)."""
    return torch.exp(-gamma)


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(-1, *[1] * (like.ndim - 1))


def diffuse(x: torch.Tensor, gamma: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Eq. 8: z_t = alpha_t x + sigma_t eps (gamma per sample)."""
    return _bcast(alpha(gamma), x) * x + _bcast(sigma(gamma), x) * eps


def reverse_step(
    z_t: torch.Tensor, eps_hat: torch.Tensor, gamma_t, gamma_s, noise: torch.Tensor, x_var=None
) -> torch.Tensor:
    """Eq. 14 (ancestral sampling, VDM appendix): with c = -expm1(gamma_s - gamma_t),
    z_s = alpha_s / alpha_t (z_t - sigma_t c eps_hat) + sqrt((1 - alpha_s^2) c) noise.
    (The paper prints c = exp(gamma_s - gamma_t - 1); the reference code's c is used.)

    That is q(z_s | z_t, x) with x replaced by its estimate, so it leaves out the spread of x
    given z_t. ``x_var`` = Var(x | z_t) (averaged over the data, :meth:`VDM.x_variance`) adds
    it back: the variance becomes sigma_s^2 c + (alpha_s c)^2 Var(x | z_t), the moment-matched
    p(z_s | z_t) (as Analytic-DPM, Bao et al. 2022); exact for Gaussian data at any T."""
    gamma_t = torch.as_tensor(gamma_t, dtype=z_t.dtype, device=z_t.device)
    gamma_s = torch.as_tensor(gamma_s, dtype=z_t.dtype, device=z_t.device)
    c = -torch.expm1(gamma_s - gamma_t)
    ratio = torch.sqrt(torch.sigmoid(-gamma_s) / torch.sigmoid(-gamma_t))
    mean = _bcast(ratio, z_t) * (z_t - _bcast(sigma(gamma_t) * c, z_t) * eps_hat)
    var = torch.sigmoid(gamma_s) * c
    if x_var is not None:
        var = var + torch.sigmoid(-gamma_s) * c**2 * torch.as_tensor(x_var, dtype=z_t.dtype, device=z_t.device)
    return mean + _bcast(torch.sqrt(var), z_t) * noise


def clip_prediction(eps_hat: torch.Tensor, z_t: torch.Tensor, gamma_t, lo: float, hi: float) -> torch.Tensor:
    """Static thresholding (DDPM's clipped x_0 prediction): the x_hat = (z_t - sigma_t eps_hat) /
    alpha_t implied by eps_hat is clamped to [lo, hi] (the range of the training data) and
    eps_hat recomputed from it, so that no step can move towards values the data never take."""
    gamma_t = torch.as_tensor(gamma_t, dtype=z_t.dtype, device=z_t.device)
    a, s = alpha(gamma_t), sigma(gamma_t)
    x_hat = ((z_t - s * eps_hat) / a).clamp(lo, hi)
    return (z_t - a * x_hat) / s


def renoise(z_s: torch.Tensor, gamma_s, gamma_t, noise: torch.Tensor) -> torch.Tensor:
    """Forward q(z_t | z_s) to the noisier gamma_t (RePaint's jump back):
    z_t = (alpha_t / alpha_s) z_s + sqrt(1 - (alpha_t / alpha_s)^2) noise."""
    ratio2 = (alpha(gamma_t) / alpha(gamma_s)) ** 2
    return torch.sqrt(ratio2) * z_s + torch.sqrt(1 - ratio2) * noise


@torch.no_grad()
def sample_loop(
    denoise, gammas: torch.Tensor, z: torch.Tensor, noise, impose=None, record=None, resample: int = 0, x_var=None
) -> torch.Tensor:
    """Ancestral sampling (Eq. 14) from z_T down the grid ``gammas`` (T + 1 values, t_i = i/T)
    to x = z_0 / alpha_0: the one reverse loop of this package, used for independent boxes,
    latent overlap and the closed-form tests alike.

    ``denoise(z, i)`` returns eps_hat at step i; ``noise()`` returns the next standard normal
    draw (the caller decides how noise is seeded: per box for latent overlap). Hooks:
    ``impose(z, i)`` returns z with a known region imposed before step i (latent overlap);
    ``record(i, z)`` sees the latent entering step i; ``resample`` > 0 re-noises each step
    back ``resample`` times (RePaint; beyond the paper). ``x_var`` (T + 1 values, Var(x | z_t)
    on the grid) gives each step its moment-matched variance (:func:`reverse_step`)."""
    T = len(gammas) - 1
    for i in range(T, 0, -1):
        for r in range(resample + 1):
            if impose is not None:
                z = impose(z, i)
            if record is not None and r == 0:
                record(i, z)
            z = reverse_step(z, denoise(z, i), gammas[i], gammas[i - 1], noise(), None if x_var is None else x_var[i])
            if r < resample:
                z = renoise(z, gammas[i - 1], gammas[i], noise())
    return z / alpha(gammas[0])


@dataclass
class DiffusionNoise:
    """The randomness of one estimate of the bound: times t (B,), eps for z_t and eps_0 for
    z_0, each shaped like x."""

    t: torch.Tensor
    eps: torch.Tensor
    eps0: torch.Tensor


def mixed_seed(*keys: int) -> int:
    """One 64-bit generator seed from several non-negative integers (NumPy's SeedSequence)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1, np.uint64)[0])


@dataclass
class VDMLoss:
    """The three terms of the bound, in nats per voxel, per sample (B,)."""

    recon: torch.Tensor
    prior: torch.Tensor
    diffusion: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return (self.recon + self.prior + self.diffusion).mean()


def eps_from_output(out: torch.Tensor, z_t: torch.Tensor, gamma_t: torch.Tensor, parameterization: str) -> torch.Tensor:
    """eps_hat from the network's output (per-sample gamma_t):
    "eps": eps_hat = z_t + out (the reference code's base measure, exact at high noise);
    "v": v_hat = out, eps_hat = alpha_t v_hat + sigma_t z_t (v = alpha eps - sigma x);
    "x": x_hat = out, eps_hat = (z_t - alpha_t x_hat) / sigma_t."""
    if parameterization == "eps":
        return z_t + out
    a, s = _bcast(alpha(gamma_t), z_t), _bcast(sigma(gamma_t), z_t)
    if parameterization == "v":
        return a * out + s * z_t
    return (z_t - a * out) / s


def loss_weight(gamma_t: torch.Tensor, cfg: VDMConfig) -> torch.Tensor:
    """Per-sample weight of the eps loss: 1 for the bound; min-SNR-gamma (Hang et al. 2023)
    min(SNR_t, gamma) / SNR_t, which stops low-noise steps from dominating (no gradient)."""
    if cfg.loss_weighting == "elbo":
        return torch.ones_like(gamma_t)
    return torch.clamp(cfg.min_snr_gamma * torch.exp(gamma_t.detach()), max=1.0)


class VDM(nn.Module):
    """A conditional VDM: ``denoiser(z_t, gamma_t, cond)``, read as eps, v or x by
    ``cfg.parameterization`` (:func:`eps_from_output`)."""

    def __init__(self, denoiser: nn.Module, cfg: VDMConfig):
        super().__init__()
        self.cfg = cfg
        self.denoiser = denoiser
        self.gamma = LinearSchedule(cfg.gamma_min, cfg.gamma_max)

    def predict_noise(self, z_t: torch.Tensor, gamma_t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """eps_hat(z_t, gamma_t, cond), whatever the network predicts."""
        gamma_t = torch.as_tensor(gamma_t, dtype=z_t.dtype, device=z_t.device).expand(z_t.shape[0])
        return eps_from_output(self.denoiser(z_t, gamma_t, cond), z_t, gamma_t, self.cfg.parameterization)

    def sample_times(self, u: torch.Tensor) -> torch.Tensor:
        """Uniform draws u in [0, 1) as t in (0, 1], rounded up to the T-step grid."""
        T = self.cfg.timesteps
        return torch.ceil(u * T).clamp(min=1) / T

    def draw_noise(
        self, x: torch.Tensor, seed: int, step: int, first: int = 0, total: int | None = None
    ) -> DiffusionNoise:
        """The noise of the bound's estimator for samples ``first .. first + len(x) - 1`` of a
        batch of ``total`` (default len(x)): sample i's eps and eps_0 (and its t, without
        antithetic sampling) come from a generator seeded by (seed, step, i); with antithetic
        (low-discrepancy) sampling t_i = (u0 + i / total) mod 1, u0 seeded by (seed, step). So
        a batch split over any number of processes draws the same noise as one process."""
        total = len(x) if total is None else total
        index = torch.arange(first, first + len(x), device=x.device)
        eps, eps0, u = [], [], []
        for i in index.tolist():
            g = torch.Generator(device=x.device).manual_seed(mixed_seed(seed, step, i + 1))
            eps.append(torch.randn(x.shape[1:], generator=g, device=x.device, dtype=x.dtype))
            eps0.append(torch.randn(x.shape[1:], generator=g, device=x.device, dtype=x.dtype))
            u.append(torch.rand((), generator=g, device=x.device))
        if self.cfg.antithetic_time_sampling:
            g = torch.Generator(device=x.device).manual_seed(mixed_seed(seed, step, 0))
            u0 = torch.rand((), generator=g, device=x.device)
            u = torch.remainder(u0 + index / total, 1.0)
        else:
            u = torch.stack(u)
        return DiffusionNoise(t=self.sample_times(u), eps=torch.stack(eps), eps0=torch.stack(eps0))

    def diffusion_loss(self, x, cond, t, eps) -> torch.Tensor:
        """Eq. 13 (discrete time, reference form): T/2 expm1(gamma_t - gamma_s) |eps - eps_hat|^2
        with s = t - 1/T, per voxel. (The paper prints exp(gamma(t-1) - gamma(t)) - 1.) With
        ``loss_weighting: min_snr`` each sample's term is multiplied by :func:`loss_weight`
        (no longer the bound)."""
        T = self.cfg.timesteps
        g_t = self.gamma(t)
        g_s = self.gamma(t - 1.0 / T)
        z_t = diffuse(x, g_t, eps)
        eps_hat = self.predict_noise(z_t, g_t, cond).float()
        mse = ((eps - eps_hat) ** 2).flatten(1).mean(dim=1)
        loss = 0.5 * T * torch.expm1(g_t - g_s) * mse
        return loss if self.cfg.loss_weighting == "elbo" else loss * loss_weight(g_t, self.cfg)

    def prior_loss(self, x) -> torch.Tensor:
        """KL(q(z_1 | x) || N(0, 1)) per voxel."""
        g1 = self.gamma(torch.ones((), device=x.device))
        var1 = torch.sigmoid(g1)
        mean2 = torch.sigmoid(-g1) * x**2
        return (0.5 * (var1 + mean2 - torch.log(var1) - 1.0)).flatten(1).mean(dim=1)

    def recon_loss(self, x, eps0) -> torch.Tensor:
        """-log p(x | z_0) per voxel for a Gaussian decoder N(x; z_0 / alpha_0, sigma_0^2 / alpha_0^2)
        (continuous data); with z_0 = alpha_0 x + sigma_0 eps_0 this is
        0.5 eps_0^2 + 0.5 (log 2 pi + gamma_0)."""
        g0 = self.gamma(torch.zeros((), device=x.device))
        z0 = diffuse(x, g0.expand(x.shape[0]), eps0)
        x_hat = z0 / alpha(g0)
        var = torch.exp(g0)  # sigma_0^2 / alpha_0^2
        nll = 0.5 * ((x - x_hat) ** 2 / var + math.log(2 * math.pi) + g0)
        return nll.flatten(1).mean(dim=1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, noise: DiffusionNoise) -> VDMLoss:
        """The bound's terms for a batch x (B, 1, n, n, n) given cond (B, C, n, n, n) and the
        estimator's ``noise`` (:meth:`draw_noise`)."""
        return VDMLoss(
            recon=self.recon_loss(x, noise.eps0),
            prior=self.prior_loss(x),
            diffusion=self.diffusion_loss(x, cond, noise.t, noise.eps),
        )

    @torch.no_grad()
    def gammas(self, device=None) -> torch.Tensor:
        """gamma on the sampling grid t_i = i / T, i = 0..T."""
        T = self.cfg.timesteps
        return self.gamma(torch.arange(T + 1, device=device, dtype=torch.float32) / T)

    @torch.no_grad()
    def x_variance(self, batches, generator: torch.Generator | None = None) -> torch.Tensor:
        """Var(x | z_t) on the sampling grid (T + 1 values), averaged over the data: the mean of
        (x - x_hat)^2 with x_hat = (z_t - sigma_t eps_hat) / alpha_t, over ``batches`` of
        (x, cond) and noise from ``generator``; what :func:`reverse_step` needs as ``x_var``.
        For Gaussian data and the exact denoiser it is the posterior variance itself."""
        g = self.gammas()
        total = torch.zeros(len(g), dtype=torch.float64)
        count = 0
        for x, cond in batches:
            for i in range(len(g)):
                gi = g[i].to(x.device).expand(x.shape[0])
                z = diffuse(x, gi, torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype))
                eps_hat = self.predict_noise(z, gi, cond).float()
                x_hat = (z - _bcast(sigma(gi), z) * eps_hat) / _bcast(alpha(gi), z)
                total[i] += float(((x - x_hat) ** 2).double().sum())
            count += x.numel()
        return (total / max(count, 1)).float()

    @torch.no_grad()
    def sample(self, cond: torch.Tensor, noise, x_var=None) -> torch.Tensor:
        """Independent samples x (B, 1, n, n, n) given cond by :func:`sample_loop` from
        z_1 = ``noise()``; ``noise()`` returns each standard normal draw, shaped like x."""
        g = self.gammas(cond.device)
        return sample_loop(lambda z, i: self.predict_noise(z, g[i], cond).float(), g, noise(), noise, x_var=x_var)

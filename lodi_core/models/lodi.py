"""The LODI model: the VDM with the U-Net denoiser, a trained model file loaded back, and the
box sampler generation uses (the network plus the normalisations it was trained with)."""

from __future__ import annotations

import torch

from ..data.transforms import LogTransform
from ..io import InputError, load_checkpoint
from ..runtime import autocast
from .unet import Denoiser, DenoiserConfig
from .vdm import VDM, VDMConfig, sample_loop


def build_vdm(net_cfg: DenoiserConfig, vdm_cfg: VDMConfig) -> VDM:
    """The conditional VDM with its U-Net denoiser (gamma normalised by the schedule's initial bounds)."""
    return VDM(Denoiser(net_cfg, vdm_cfg.gamma_min, vdm_cfg.gamma_max), vdm_cfg)


def load_lodi(path, device="cpu") -> tuple[VDM, dict]:
    """The trained VDM (EMA weights, eval mode) and the model file's metadata."""
    state = load_checkpoint(path, kind="lodi", map_location=device)
    model = build_vdm(DenoiserConfig.from_dict(state["network"]), VDMConfig.from_dict(state["vdm"])).to(device)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise InputError(path, f"weights do not fit the stored LODI architecture {state['network']}: {err}") from err
    model.eval()
    return model, state


def box_noise(generators: list[torch.Generator], shape: tuple, device) -> callable:
    """The noise hook of :func:`vdm.sample_loop` for a batch of boxes: each call returns a
    (B, *shape) standard normal draw whose box k comes from ``generators[k]``, so a box's
    noise does not depend on which other boxes share its batch."""

    def draw() -> torch.Tensor:
        return torch.cat([torch.randn((1, *shape), generator=g, device=device) for g in generators])

    return draw


class BoxSampler:
    """Sampling API for generation: the trained VDM plus its normalisations.

    ``condition(halos)`` normalises physical halo channels (B, 4, b, b, b) in
    Msun (Mpc/h)^-3; ``sample`` runs :func:`vdm.sample_loop` on boxes (with the hooks latent
    overlap needs); ``gammas`` is the sampling grid; ``to_tb`` inverts the T_b normalisation (mK)."""

    def __init__(self, model: VDM, meta: dict, bf16: bool = True):
        self.model = model
        self.meta = meta
        self.device = next(model.parameters()).device
        self.bf16 = bf16
        self.tb_transform = LogTransform.from_dict(meta["tb_transform"])
        self.halo_transform = LogTransform.from_dict(meta["halo_transform"])
        self.T = model.cfg.timesteps
        self.gammas = model.gammas(self.device).float()

    @classmethod
    def load(cls, path, device="cpu", bf16: bool = True) -> BoxSampler:
        model, meta = load_lodi(path, device)
        return cls(model, meta, bf16)

    def condition(self, halos: torch.Tensor) -> torch.Tensor:
        return self.halo_transform.forward(halos.to(self.device, torch.float32), channel_dim=1)

    @torch.no_grad()
    def predict_noise(self, z: torch.Tensor, i: int, cond: torch.Tensor) -> torch.Tensor:
        """eps_hat at step i (t_i = i/T) of the sampling grid."""
        with autocast(self.device, self.bf16):
            return self.model.predict_noise(z, self.gammas[i], cond).float()

    @torch.no_grad()
    def sample(
        self, cond: torch.Tensor, noise, z_T: torch.Tensor | None = None, impose=None, record=None, resample: int = 0
    ) -> torch.Tensor:
        """Normalised x_0 (B, 1, b, b, b) of the boxes conditioned on ``cond`` (normalised halo
        channels), by :func:`vdm.sample_loop` from ``z_T`` (default: the first ``noise()``
        draw); ``noise``, ``impose``, ``record`` and ``resample`` are the loop's hooks."""
        z = noise() if z_T is None else z_T
        return sample_loop(lambda z, i: self.predict_noise(z, i, cond), self.gammas, z, noise, impose, record, resample)

    def to_tb(self, x0: torch.Tensor) -> torch.Tensor:
        """Normalised x_0 -> T_b in mK."""
        return self.tb_transform.inverse(x0)

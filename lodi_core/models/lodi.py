"""The LODI model: the VDM with the U-Net denoiser, a trained model file loaded back, and the
box sampler generation uses (the network plus the normalisations it was trained with)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..data.calibration import normalised_to_tb, tb_calibration
from ..data.transforms import LogTransform
from ..io import InputError, load_checkpoint, load_weights
from ..runtime import autocast, memory_format
from .halo_model import with_halo_model_channel
from .unet import Denoiser, DenoiserConfig
from .vdm import VDM, VDMConfig, clip_prediction, sample_loop


def null_condition(cond: torch.Tensor) -> torch.Tensor:
    """The condition of "no halo information" for classifier-free guidance (beyond the paper):
    zeros in the normalised halo channels, a uniform box no simulation gives (empty space is
    the channels' floor, below their mean)."""
    return torch.zeros_like(cond)


def build_vdm(net_cfg: DenoiserConfig, vdm_cfg: VDMConfig) -> VDM:
    """The conditional VDM with its U-Net denoiser (gamma normalised by the schedule's initial bounds)."""
    return VDM(Denoiser(net_cfg, vdm_cfg.gamma_min, vdm_cfg.gamma_max), vdm_cfg)


def load_lodi(path, device="cpu") -> tuple[VDM, dict]:
    """The trained VDM (EMA weights, eval mode) and the model file's metadata."""
    state = load_checkpoint(path, kind="lodi", map_location=device)
    model = build_vdm(DenoiserConfig.from_dict(state["network"]), VDMConfig.from_dict(state["vdm"])).to(device)
    return load_weights(model, path, state, {"LODI": state["network"]}), state


def box_noise(generators: list[torch.Generator], shape: tuple, device) -> Callable[[], torch.Tensor]:
    """The noise hook of :func:`vdm.sample_loop` for a batch of boxes: each call returns a
    (B, *shape) standard normal draw whose box k comes from ``generators[k]``, so a box's
    noise does not depend on which other boxes share its batch."""

    def draw() -> torch.Tensor:
        return torch.cat([torch.randn((1, *shape), generator=g, device=device) for g in generators])

    return draw


class BoxSampler:
    """Sampling API for generation: the trained VDM plus its normalisations.

    ``condition(halos)`` normalises physical halo channels (B, 4, b, b, b) in
    Msun (Mpc/h)^-3 (with the halo model's channel, for a model trained with it); ``sample``
    runs :func:`vdm.sample_loop` on boxes (with the hooks latent overlap needs); ``gammas`` is
    the sampling grid; ``to_tb`` inverts the T_b normalisation (mK) and maps through the model
    file's T_b calibration where it has one (``lodi.tb_calibration``, beyond the paper).
    ``variance``: "posterior" steps with q(z_s | z_t, x_hat) (Eq. 14); "analytic" adds the
    spread of x given z_t stored in the model file (:meth:`vdm.VDM.x_variance`). ``clip``: the
    x_hat of every step is kept within the training data's range (:func:`vdm.clip_prediction`).
    ``guidance`` w > 0: classifier-free guidance (Ho & Salimans 2022, Eq. 6; beyond the paper),
    eps_hat = (1 + w) eps(z, halos) - w eps(z, null), for a model trained with ``cond_drop``;
    ``guidance_logsnr_max``: guide only the steps whose log-SNR (= -gamma_t) is at most this,
    the noisy ones (guidance in a limited interval, Kynkaanniemi et al. 2024), None: every step."""

    def __init__(
        self,
        model: VDM,
        meta: dict,
        bf16: bool = True,
        variance: str = "posterior",
        channels_last: bool = False,
        clip: bool = False,
        guidance: float = 0.0,
        guidance_logsnr_max: float | None = None,
    ):
        self.format = memory_format(channels_last)
        self.model = model.to(memory_format=self.format)
        self.meta = meta
        self.device = next(model.parameters()).device
        self.bf16 = bf16
        self.tb_transform = LogTransform.from_dict(meta["tb_transform"])
        self.halo_transform = LogTransform.from_dict(meta["halo_transform"])
        self.tb_calibration = tb_calibration(meta)
        self.T = model.cfg.timesteps
        self.gammas = model.gammas(self.device).float()
        if variance not in ("posterior", "analytic"):
            raise ValueError(f"variance must be 'posterior' or 'analytic', got {variance!r}")
        self.x_var = None
        if variance == "analytic":
            if "x_variance" not in meta:
                raise InputError(
                    "LODI model file",
                    "has no x_variance table (made by an older version): "
                    "retrain it or use generation.variance: posterior",
                )
            self.x_var = torch.as_tensor(meta["x_variance"], dtype=torch.float32, device=self.device)
        self.x_range = None
        if clip:
            if "x_range" not in meta:
                raise InputError(
                    "LODI model file",
                    "has no x_range (made by an older version): retrain it or use generation.clip: false",
                )
            self.x_range = tuple(float(v) for v in meta["x_range"])
        if guidance < 0:
            raise ValueError(f"guidance must be >= 0, got {guidance}")
        if guidance and not meta.get("cond_drop"):
            raise InputError(
                "LODI model file",
                "was trained without the null condition (lodi.train.cond_drop: 0), so it cannot be guided: "
                "retrain it with cond_drop > 0 or use generation.guidance: 0",
            )
        self.guidance = float(guidance)
        self.guidance_logsnr_max = None if guidance_logsnr_max is None else float(guidance_logsnr_max)

    @classmethod
    def load(
        cls,
        path,
        device="cpu",
        bf16=True,
        variance="posterior",
        channels_last=False,
        clip=False,
        guidance=0.0,
        guidance_logsnr_max=None,
    ) -> BoxSampler:
        model, meta = load_lodi(path, device)
        return cls(model, meta, bf16, variance, channels_last, clip, guidance, guidance_logsnr_max)

    def guided(self, i: int) -> bool:
        """Whether step i (t_i = i/T) is guided: w > 0 and its log-SNR -gamma_i within the interval."""
        if not self.guidance:
            return False
        return self.guidance_logsnr_max is None or -float(self.gammas[i]) <= self.guidance_logsnr_max

    def condition(self, halos: torch.Tensor) -> torch.Tensor:
        """Normalised condition of halo channels (B, 4, ...): with the halo model's channel
        appended first when the model was trained with it (``halo_model_weights``)."""
        halos = halos.to(self.device, torch.float32)
        if self.meta.get("halo_model_weights"):
            halos = with_halo_model_channel(halos, self.meta["halo_model_weights"], 1)
        return self.halo_transform.forward(halos, channel_dim=1)

    @torch.no_grad()
    def predict_noise(self, z: torch.Tensor, i: int, cond: torch.Tensor) -> torch.Tensor:
        """eps_hat at step i (t_i = i/T) of the sampling grid (a guided step: one pass over the
        boxes with their halos and with the null condition)."""
        with autocast(self.device, self.bf16):
            z_in, cond = z.contiguous(memory_format=self.format), cond.contiguous(memory_format=self.format)
            if self.guided(i):
                both = self.model.predict_noise(
                    torch.cat([z_in, z_in]), self.gammas[i], torch.cat([cond, null_condition(cond)])
                )
                eps_c, eps_u = both.float().chunk(2)
                eps_hat = ((1 + self.guidance) * eps_c - self.guidance * eps_u).contiguous()
            else:
                eps_hat = self.model.predict_noise(z_in, self.gammas[i], cond).float().contiguous()
        if self.x_range is not None:
            eps_hat = clip_prediction(eps_hat, z, self.gammas[i], *self.x_range)
        return eps_hat

    @torch.no_grad()
    def sample(
        self, cond: torch.Tensor, noise, z_T: torch.Tensor | None = None, impose=None, record=None, resample: int = 0
    ) -> torch.Tensor:
        """Normalised x_0 (B, 1, b, b, b) of the boxes conditioned on ``cond`` (normalised halo
        channels), by :func:`vdm.sample_loop` from ``z_T`` (default: the first ``noise()``
        draw); ``noise``, ``impose``, ``record`` and ``resample`` are the loop's hooks."""
        z = noise() if z_T is None else z_T
        return sample_loop(
            lambda z, i: self.predict_noise(z, i, cond), self.gammas, z, noise, impose, record, resample, self.x_var
        )

    def to_tb(self, x0: torch.Tensor, calibrate: bool = True) -> torch.Tensor:
        """Normalised x_0 -> T_b in mK, through the model file's T_b calibration (where it has
        one and ``calibrate``)."""
        return normalised_to_tb(x0, self.tb_transform, self.tb_calibration if calibrate else None)

"""The VDM against its closed forms (Kingma et al. 2021) and a toy Gaussian dataset."""

import math

import pytest
import torch
from grid_data import paper
from torch import nn

from lodi_core.models.vdm import (
    VDM,
    LinearSchedule,
    VDMConfig,
    alpha,
    clip_prediction,
    diffuse,
    eps_from_output,
    loss_weight,
    reverse_step,
    sigma,
    snr,
)


def test_alpha_sigma_variance_preserving():
    g = torch.linspace(-20, 20, 101, dtype=torch.float64)
    torch.testing.assert_close(alpha(g) ** 2 + sigma(g) ** 2, torch.ones_like(g))
    torch.testing.assert_close(alpha(g) ** 2 / sigma(g) ** 2, snr(g))


def test_schedule_snr_decreases_with_t_and_has_the_ono_initialisation():
    sched = LinearSchedule(-13.3, 13.3)
    t = torch.linspace(0, 1, 51)
    g = sched(t).detach()
    assert float(g[0]) == pytest.approx(-13.3) and float(g[-1]) == pytest.approx(13.3)
    assert torch.all(torch.diff(snr(g)) < 0)
    with torch.no_grad():
        sched.w.fill_(-5.0)  # the |w| keeps gamma monotone whatever the learned sign
    assert torch.all(torch.diff(sched(t).detach()) > 0)


# The denoisers below predict eps; the VDM's eps parameterization reads the network's output
# as the correction to the base measure (eps_hat = z_t + output), so they return eps - z_t.
class Oracle(nn.Module):
    """A denoiser that knows the clean data and returns the exact noise."""

    def __init__(self, x):
        super().__init__()
        self.x = x

    def forward(self, z_t, gamma_t, cond):
        a = alpha(gamma_t).view(-1, 1, 1, 1, 1)
        s = sigma(gamma_t).view(-1, 1, 1, 1, 1)
        return (z_t - a * self.x) / s - z_t


class Zero(nn.Module):
    """eps_hat = 0."""

    def forward(self, z_t, gamma_t, cond):
        return -z_t


class GaussianPosterior(nn.Module):
    """The optimal denoiser for data x ~ N(mu, s^2) per voxel: E[eps | z_t]."""

    def __init__(self, mu, s):
        super().__init__()
        self.mu, self.s = mu, s

    def forward(self, z_t, gamma_t, cond):
        a = alpha(gamma_t).view(-1, 1, 1, 1, 1).double()
        sg = sigma(gamma_t).view(-1, 1, 1, 1, 1).double()
        return (sg * (z_t.double() - a * self.mu) / (a**2 * self.s**2 + sg**2)).to(z_t.dtype) - z_t


def test_diffusion_loss_of_the_true_noise_is_zero():
    x = torch.randn(6, 1, 4, 4, 4, dtype=torch.float64)
    vdm = VDM(Oracle(x), paper(VDMConfig)).double()
    g = torch.Generator().manual_seed(0)
    t = vdm.sample_times(torch.rand(6, generator=g)).double()
    eps = torch.randn(x.shape, generator=g, dtype=torch.float64)
    loss = vdm.diffusion_loss(x, None, t, eps)
    assert torch.all(loss.abs() < 1e-12)
    # a wrong prediction costs T/2 expm1(gamma_t - gamma_s) |eps - eps_hat|^2 per voxel
    vdm.denoiser = Zero()
    loss = vdm.diffusion_loss(x, None, t, eps)
    g_t, g_s = vdm.gamma(t), vdm.gamma(t - 1 / 50)
    expected = 25 * torch.expm1(g_t - g_s) * (eps**2).flatten(1).mean(1)
    torch.testing.assert_close(loss, expected.detach())


@pytest.mark.parametrize("antithetic", [True, False])
def test_the_noise_of_a_batch_does_not_depend_on_how_it_is_split(antithetic):
    """Data-parallel ranks draw the noise of their share of the batch: the union must be the
    noise one process draws for the whole batch, whatever the split."""
    vdm = VDM(Zero(), paper(VDMConfig, antithetic_time_sampling=antithetic))
    x = torch.zeros(4, 1, 3, 3, 3)
    whole = vdm.draw_noise(x, seed=7, step=11)
    for parts in ([2, 2], [1, 1, 1, 1], [1, 3]):
        first, pieces = 0, []
        for n in parts:
            pieces.append(vdm.draw_noise(x[:n], seed=7, step=11, first=first, total=4))
            first += n
        for field in ("t", "eps", "eps0"):
            assert torch.equal(torch.cat([getattr(q, field) for q in pieces]), getattr(whole, field)), (parts, field)
    other = vdm.draw_noise(x, seed=7, step=12)
    assert not torch.equal(other.eps, whole.eps)
    assert not torch.equal(whole.eps[0], whole.eps[1])
    if antithetic:  # t_i = (u0 + i / B) mod 1, rounded up to the T = 50 grid: spaced by 1/4
        gaps = torch.diff(torch.sort(whole.t).values)
        assert torch.all((gaps - 0.25).abs() <= 1 / 50 + 1e-6), gaps


def test_prior_and_reconstruction_terms_closed_form():
    vdm = VDM(Oracle(None), paper(VDMConfig, gamma_min=-5.0, gamma_max=3.0)).double()
    x = torch.full((1, 1, 2, 2, 2), 0.7, dtype=torch.float64)
    s1, a1 = (
        torch.sigmoid(torch.tensor(3.0, dtype=torch.float64)),
        torch.sigmoid(torch.tensor(-3.0, dtype=torch.float64)),
    )
    expected_prior = 0.5 * (s1 + a1 * 0.49 - torch.log(s1) - 1)
    torch.testing.assert_close(vdm.prior_loss(x), expected_prior.expand(1).detach())
    eps0 = torch.full_like(x, 0.3)
    expected_recon = 0.5 * 0.09 + 0.5 * (math.log(2 * math.pi) - 5.0)
    torch.testing.assert_close(vdm.recon_loss(x, eps0).detach(), torch.tensor([expected_recon], dtype=torch.float64))


def test_reverse_step_is_the_posterior_q_zs_given_zt_x():
    """With eps_hat = the true noise, Eq. 14 is q(z_s | z_t, x) (VDM appendix A)."""
    g_t, g_s = torch.tensor(1.2, dtype=torch.float64), torch.tensor(-0.4, dtype=torch.float64)
    x = torch.randn(1, 1, 3, 3, 3, dtype=torch.float64)
    eps = torch.randn_like(x)
    z_t = diffuse(x, g_t.expand(1), eps)
    a_t, a_s, s_t, s_s = alpha(g_t), alpha(g_s), sigma(g_t), sigma(g_s)
    a_ts = a_t / a_s
    var_ts = s_t**2 - a_ts**2 * s_s**2
    mean = a_ts * s_s**2 / s_t**2 * z_t + a_s * var_ts / s_t**2 * x
    std = torch.sqrt(var_ts * s_s**2 / s_t**2)
    noise = torch.randn_like(x)
    torch.testing.assert_close(reverse_step(z_t, eps, g_t, g_s, noise), mean + std * noise)


def _samples(vdm, n_boxes, seed, side=8, x_var=None):
    g = torch.Generator().manual_seed(seed)
    cond = torch.zeros(n_boxes, 0, side, side, side)
    return vdm.sample(cond, lambda: torch.randn(n_boxes, 1, side, side, side, generator=g, dtype=torch.float64), x_var)


def test_sampler_with_the_optimal_denoiser_recovers_a_gaussian():
    """Ancestral sampling with E[eps | z_t] converges to the data distribution as T grows
    (at T = 50 over gamma in [-13.3, 13.3] it keeps ~89 % of the standard deviation: the
    reverse kernel ignores the posterior variance of x, a known property of the sampler)."""
    mu, s = 0.8, 0.5
    x = _samples(VDM(GaussianPosterior(mu, s), paper(VDMConfig, timesteps=1000)).double(), 32, 0)
    assert float(x.mean()) == pytest.approx(mu, abs=0.01)
    assert float(x.std()) == pytest.approx(s, rel=0.02)
    x50 = _samples(VDM(GaussianPosterior(mu, s), paper(VDMConfig, timesteps=50)).double(), 32, 0)
    assert 0.8 * s < float(x50.std()) < 0.95 * s


def test_the_sampler_keeps_the_variance_with_the_posterior_spread_of_x():
    """The ~11 % shortfall above is the spread of x given z_t that Eq. 14 leaves out: with
    Var(x | z_t) added to each step (reverse_step's x_var), T = 50 keeps the data's standard
    deviation to 2 %, whether the spread is the closed form or measured by VDM.x_variance on
    samples of the data, as the training does for the real model."""
    mu, s = 0.8, 0.5
    vdm = VDM(GaussianPosterior(mu, s), paper(VDMConfig, timesteps=50)).double()
    g = vdm.gammas().double()
    a2, s2 = alpha(g) ** 2, sigma(g) ** 2
    exact = s**2 * s2 / (a2 * s**2 + s2)  # Var(x | z_t) of N(mu, s^2) data
    gen = torch.Generator().manual_seed(3)
    data = [(mu + s * torch.randn(16, 1, 8, 8, 8, generator=gen, dtype=torch.float64), None) for _ in range(2)]
    measured = vdm.x_variance(data, torch.Generator().manual_seed(4))
    torch.testing.assert_close(measured.double(), exact, rtol=0.05, atol=1e-6)
    for x_var in (exact, measured):
        x = _samples(vdm, 32, 0, x_var=x_var)
        assert float(x.mean()) == pytest.approx(mu, abs=0.01)
        assert float(x.std()) == pytest.approx(s, rel=0.02)


def test_reverse_step_variance_adds_the_spread_of_x():
    """(alpha_s c)^2 Var(x | z_t) on top of Eq. 14's sigma_s^2 c, hand-computed."""
    g_t, g_s = torch.tensor(0.5, dtype=torch.float64), torch.tensor(-0.2, dtype=torch.float64)
    z, eps_hat, noise = (torch.full((1, 1, 1, 1, 1), v, dtype=torch.float64) for v in (0.3, -0.4, 1.0))
    c = 1 - math.exp(-0.7)
    a_s2, s_s2 = 1 / (1 + math.exp(-0.2)), 1 / (1 + math.exp(0.2))
    plain = reverse_step(z, eps_hat, g_t, g_s, noise)
    wider = reverse_step(z, eps_hat, g_t, g_s, noise, x_var=0.25)
    assert float(wider - plain) == pytest.approx(math.sqrt(s_s2 * c + a_s2 * c**2 * 0.25) - math.sqrt(s_s2 * c))


@pytest.mark.parametrize("parameterization", ["eps", "v", "x"])
def test_each_parameterization_gives_the_true_noise_from_its_true_target(parameterization):
    """eps_from_output reads the network's output as eps (with the base measure z_t + out),
    v = alpha eps - sigma x or x; fed the exact target it returns the exact noise."""
    x = torch.randn(3, 1, 2, 2, 2, dtype=torch.float64)
    eps = torch.randn_like(x)
    g = torch.tensor([-4.0, 0.3, 6.0], dtype=torch.float64)
    z = diffuse(x, g, eps)
    a, s = alpha(g).view(-1, 1, 1, 1, 1), sigma(g).view(-1, 1, 1, 1, 1)
    target = {"eps": eps - z, "v": a * eps - s * x, "x": x}[parameterization]
    torch.testing.assert_close(eps_from_output(target, z, g, parameterization), eps)


def test_min_snr_weighting_caps_the_snr():
    """w = min(SNR, 5) / SNR with SNR = exp(-gamma): 1 where SNR <= 5, 5 / SNR above."""
    cfg = paper(VDMConfig, loss_weighting="min_snr", min_snr_gamma=5.0)
    g = torch.tensor([-3.0, -math.log(5.0), 0.0, 2.0], dtype=torch.float64)
    torch.testing.assert_close(
        loss_weight(g, cfg), torch.tensor([5 * math.exp(-3.0), 1.0, 1.0, 1.0], dtype=torch.float64)
    )
    assert torch.equal(loss_weight(g, paper(VDMConfig)), torch.ones_like(g))
    x = torch.randn(4, 1, 2, 2, 2, dtype=torch.float64)
    vdm = VDM(Zero(), cfg).double()
    t = torch.tensor([0.1, 0.4, 0.6, 0.9], dtype=torch.float64)
    eps = torch.randn_like(x)
    weighted = vdm.diffusion_loss(x, None, t, eps)
    vdm.cfg = paper(VDMConfig)
    torch.testing.assert_close(weighted, vdm.diffusion_loss(x, None, t, eps) * loss_weight(vdm.gamma(t).detach(), cfg))


def test_sampler_is_deterministic_for_a_seed():
    vdm = VDM(GaussianPosterior(0.0, 1.0), paper(VDMConfig, timesteps=10)).double()
    a, b, c = _samples(vdm, 2, 5), _samples(vdm, 2, 5), _samples(vdm, 2, 6)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_a_trained_model_samples_the_toy_data_mean_and_variance():
    """Train a small denoiser on x ~ N(0.5, 0.3^2) (independent voxels) with T = 250 (Ono et
    al. 2024) and sample it."""
    from lodi_core.models.unet import Denoiser, DenoiserConfig

    torch.manual_seed(0)
    mu, s, side = 0.5, 0.3, 8
    vdm_cfg = paper(VDMConfig, timesteps=250)
    net_cfg = paper(
        DenoiserConfig, channels=(16, 16), blocks_per_level=1, embed_dim=32, cond_channels=1, attention_heads=2
    )
    vdm = VDM(Denoiser(net_cfg, vdm_cfg.gamma_min, vdm_cfg.gamma_max), vdm_cfg)
    opt = torch.optim.AdamW(vdm.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(1)
    for step in range(400):
        x = mu + s * torch.randn(16, 1, side, side, side, generator=g)
        loss = vdm(x, torch.zeros_like(x), vdm.draw_noise(x, 1, step)).total
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        gs = torch.Generator().manual_seed(2)
        cond = torch.zeros(16, 1, side, side, side)
        x = vdm.sample(cond, lambda: torch.randn(16, 1, side, side, side, generator=gs))
    # 400 steps leave the mean off by up to ~0.08 depending on the noise stream (0.42-0.50
    # measured over four noise seeds), a third of the data's width s
    assert float(x.mean()) == pytest.approx(mu, abs=0.1)
    assert float(x.std()) == pytest.approx(s, rel=0.2)


def test_clipping_keeps_the_implied_x_within_the_range_and_leaves_the_rest():
    """clip_prediction: x_hat = (z - sigma eps_hat) / alpha is clamped to [lo, hi] and eps_hat
    recomputed from it; inside the range nothing changes."""
    g = torch.tensor(-1.0, dtype=torch.float64)
    a, s = alpha(g), sigma(g)
    x = torch.tensor([-2.0, 0.5, 3.0], dtype=torch.float64)
    eps = torch.tensor([0.3, -0.2, 1.1], dtype=torch.float64)
    z = a * x + s * eps
    clipped = clip_prediction(eps, z, g, -1.0, 2.0)
    x_hat = (z - s * clipped) / a
    torch.testing.assert_close(x_hat, torch.tensor([-1.0, 0.5, 2.0], dtype=torch.float64))
    torch.testing.assert_close(clipped[1], eps[1])

"""LODI data selection, training, the sampling API and determinism."""

import numpy as np
import pytest
import torch
from grid_data import TINY_NET, tiny, train_tiny_lodi

from lodi_core.io import InputError, save_checkpoint, write_grids
from lodi_core.models.halo_model import fit_coefficients, with_halo_model_channel
from lodi_core.models.lodi import BoxSampler, box_noise, null_condition
from lodi_core.models.vdm import VDMConfig, alpha, sigma
from lodi_core.training.lodi import LodiData, LodiTrainConfig, lr_at, select_subvolumes, train_lodi
from lodi_core.training.loop import EMA


def test_selection_keeps_what_the_rule_says():
    n, b = 32, 8
    halos = np.zeros((4, n, n, n))
    halos[3, 5, 5, 5] = 1e11  # a massive halo (channel 4) -> important region
    halos[2, 20, 3, 30] = 5e10  # channel 3, also >= 1e10
    halos[2, 28, 28, 28] = 1e9  # below the importance level: ignored
    peaks = [(3, 3, 3), (10, 20, 30), (16, 16, 16), (25, 8, 12), (30, 30, 1), (12, 12, 12)]
    for i, p in enumerate(peaks):
        halos[i % 2][p] = 2e10  # low-mass halos in channels 1-2
    settings = dict(box=b, candidate_stride=4, important_log_rho=10.0, low_mass_fraction=0.5)
    cfg = tiny(LodiTrainConfig, **settings, background_fraction=0.0)
    high, low, background = select_subvolumes(halos, cfg, np.random.default_rng(0))
    # (a) exactly the lattice boxes holding log10 rho >= 10 in channels 3-4
    axis = list(range(0, n - b + 1, 4))
    expected = [
        (i, j, k)
        for i in axis
        for j in axis
        for k in axis
        if (halos[2:, i : i + b, j : j + b, k : k + b] >= 1e10).any()
    ]
    assert sorted(high) == sorted(expected) and len(high) > 0
    # (b) half of the low-mass halos, each box centred on its halo (clipped to the volume)
    assert len(low) == 3
    centred = {tuple(min(max(c - b // 2, 0), n - b) for c in p): p for p in peaks}
    for origin in low:
        assert origin in centred
        p = centred[origin]
        assert all(o <= c < o + b for o, c in zip(origin, p))
    # (c) none at the paper's setting; a share of the lattice boxes (a) left out, beyond it
    assert background == []
    rest = {(i, j, k) for i in axis for j in axis for k in axis} - set(high)
    for fraction in (0.25, 1.0):
        more = tiny(LodiTrainConfig, **settings, background_fraction=fraction)
        high2, low2, background = select_subvolumes(halos, more, np.random.default_rng(0))
        assert (high2, low2) == (high, low)  # the paper's boxes are not changed by the extra draw
        assert len(background) == round(fraction * len(rest)) and len(set(background)) == len(background)
        assert set(background) <= rest


def test_training_writes_curves_and_the_normalisation(lodi_model, tmp_path):
    path, content = lodi_model
    assert content["steps"] == 12 and np.isfinite(content["best_val"])
    assert content["selection"]["high_mass"] > 0
    lines = (tmp_path / "hist.csv").read_text().splitlines()
    assert lines[0].startswith("step,lr,loss") and len(lines) == 13
    assert {"recon", "prior", "diffusion", "gamma_0", "gamma_1", "val_loss"} <= set(lines[0].split(","))


def test_training_resumes_to_the_same_weights(grid_file, tmp_path):
    def run(iterations, name):
        return train_tiny_lodi(
            grid_file,
            tmp_path / f"{name}.pt",
            tmp_path / f"{name}.csv",
            batch_size=2,
            iterations=iterations,
            checkpoint_every=3,
            validate_every=3,
            val_boxes=2,
        )

    full = run(6, "full")
    run(3, "split")
    resumed = run(6, "split")
    for k in full["model"]:
        assert torch.equal(full["model"][k], resumed["model"][k]), k
    # on the true halos the resume key is the one of the versions before lodi.train.condition,
    # so their checkpoints still resume
    key = torch.load(tmp_path / "split.pt", weights_only=False)["resume_key"]
    assert "condition" not in key["train"] and set(key) == {"network", "vdm", "train", "data"}


def test_a_cool_down_continues_a_constant_run(grid_file, tmp_path):
    """lr_decay_steps is not in the resume key: a constant run's checkpoint goes on into its
    cool-down (not set aside to start over), and the steps after it follow the decay."""
    settings = dict(batch_size=2, checkpoint_every=3, validate_every=3, val_boxes=2, lr_schedule="constant")
    checkpoint, history = tmp_path / "run.pt", tmp_path / "run.csv"
    train_tiny_lodi(grid_file, checkpoint, history, iterations=3, **settings)
    train_tiny_lodi(grid_file, checkpoint, history, iterations=6, lr_decay_steps=3, lr_min=1e-5, **settings)
    assert not list(tmp_path.glob("run.pt.stale-*"))
    cfg = tiny(LodiTrainConfig, warmup=2, iterations=6, lr_decay_steps=3, lr_min=1e-5, lr_schedule="constant")
    rows = history.read_text().splitlines()[1:]
    lrs = [float(r.split(",")[1]) for r in rows]
    assert len(rows) == 6 and lrs[3:] == pytest.approx([lr_at(s, cfg) for s in (3, 4, 5)])
    assert lrs[2] == lrs[3] == cfg.lr > lrs[4] > lrs[5] > cfg.lr_min


def test_box_weight_power_draws_boxes_in_proportion_to_their_brightness(grid_file):
    import h5py

    settings = dict(box=8, candidate_stride=4, important_log_rho=10.0, batch_size=16)
    uniform = LodiData([grid_file], tiny(LodiTrainConfig, **settings))
    weighted = LodiData([grid_file], tiny(LodiTrainConfig, **settings, box_weight_power=1.0))
    assert weighted.train == uniform.train and uniform.train_p is None  # same boxes, same split
    with h5py.File(grid_file) as f:
        tb = f["tb"][...].astype(np.float64)
    content = np.array([tb[i : i + 8, j : j + 8, k : k + 8].sum() for _, (i, j, k) in uniform.train])
    expected = content / content.sum()
    n = len(uniform.train)

    def frequencies(data):
        draws = np.concatenate([data.draw(step)[0] for step in range(1000)])
        return np.bincount(draws, minlength=n) / draws.size

    # 16000 draws over ~180 boxes: ~0.04 of total variation by chance; the two laws differ by 0.5
    assert 0.5 * np.abs(frequencies(weighted) - expected).sum() < 0.06
    assert 0.5 * np.abs(frequencies(uniform) - 1.0 / n).sum() < 0.06
    assert 0.5 * np.abs(expected - 1.0 / n).sum() > 0.15
    # the uniform draw is the one the training had before the option existed
    rng = np.random.default_rng([uniform.cfg.seed, 7])
    assert np.array_equal(uniform.draw(7)[0], rng.integers(0, n, size=16))


def test_cond_drop_shows_the_null_condition_to_the_drawn_share(grid_file):
    settings = dict(box=8, candidate_stride=4, important_log_rho=10.0, batch_size=16)
    plain = LodiData([grid_file], tiny(LodiTrainConfig, **settings, cond_drop=0.0))
    drop = LodiData([grid_file], tiny(LodiTrainConfig, **settings, cond_drop=0.25))
    shown_null = []
    for step in range(40):
        (x0, c0), (x1, c1) = plain.batch(step), drop.batch(step)
        dropped = torch.from_numpy(drop.dropped(step))
        assert torch.equal(x0, x1)  # the same boxes and symmetries: only the condition differs
        assert torch.equal(c1[~dropped], c0[~dropped])
        assert torch.equal(c1[dropped], torch.zeros_like(c1[dropped]))
        # no real box's condition is the null one (empty space is the channels' floor, < 0)
        assert not any(torch.equal(c, null_condition(c)) for c in c0)
        shown_null.append(dropped.float().mean())
        # a data-parallel rank's share drops the same items as one process does
        _, half = drop.batch(step, slice(8, 16))
        assert torch.equal(half, c1[8:])
    # 640 draws: ~0.017 of standard deviation around 0.25
    assert abs(float(torch.stack(shown_null).mean()) - 0.25) < 0.06
    assert not plain.dropped(3).any()


def test_box_sampler_is_deterministic_and_inverts_the_normalisation(lodi_model):
    path, _ = lodi_model
    sampler = BoxSampler.load(path, "cpu", bf16=False)
    halos = torch.rand(2, 4, 8, 8, 8) * 1e11
    cond = sampler.condition(halos)

    def draw(seeds):
        return sampler.sample(cond, box_noise([torch.Generator().manual_seed(s) for s in seeds], (1, 8, 8, 8), "cpu"))

    a, b, c = draw([1, 2]), draw([1, 2]), draw([1, 3])
    assert a.shape == (2, 1, 8, 8, 8)
    assert torch.equal(a, b) and torch.equal(a[0], c[0]) and not torch.equal(a[1], c[1])
    tb = sampler.to_tb(a)
    assert (tb >= 0).all() and torch.isfinite(tb).all()
    # the sampling grid: alpha^2 + sigma^2 = 1, SNR decreasing
    a2, s2 = alpha(sampler.gammas) ** 2, sigma(sampler.gammas) ** 2
    torch.testing.assert_close(a2 + s2, torch.ones_like(a2))
    assert torch.all(torch.diff(a2 / s2) < 0)


def test_guidance_extrapolates_from_the_null_condition(lodi_model):
    """Ho & Salimans (2022) Eq. 6: eps~ = (1 + w) eps(z, c) - w eps(z, null), from one batched
    pass; w = 0 is the conditional model; a model trained without cond_drop is refused."""
    path, _ = lodi_model
    plain = BoxSampler.load(path, "cpu", bf16=False)
    with pytest.raises(InputError, match="cond_drop"):
        BoxSampler(plain.model, {**plain.meta, "cond_drop": 0.0}, bf16=False, guidance=1.0)
    meta = {**plain.meta, "cond_drop": 0.1}
    guided = BoxSampler(plain.model, meta, bf16=False, guidance=1.5)
    unguided = BoxSampler(plain.model, meta, bf16=False, guidance=0.0)
    cond = plain.condition(torch.rand(2, 4, 8, 8, 8) * 1e11)
    z = torch.randn(2, 1, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    i = plain.T // 2
    with torch.no_grad():
        eps_c = plain.model.predict_noise(z, plain.gammas[i], cond)
        eps_u = plain.model.predict_noise(z, plain.gammas[i], torch.zeros_like(cond))
    assert not torch.allclose(eps_c, eps_u)
    torch.testing.assert_close(guided.predict_noise(z, i, cond), 2.5 * eps_c - 1.5 * eps_u, rtol=1e-4, atol=1e-5)
    assert torch.equal(unguided.predict_noise(z, i, cond), plain.predict_noise(z, i, cond))


def test_guidance_interval_guides_only_the_noisy_steps(lodi_model):
    """generation.guidance_logsnr_max L: step i is guided iff its log-SNR -gamma_i <= L (the
    noisy end of the grid); the other steps are the conditional model's, one pass each."""
    path, _ = lodi_model
    plain = BoxSampler.load(path, "cpu", bf16=False)
    meta = {**plain.meta, "cond_drop": 0.1}
    logsnr = -plain.gammas
    mid = plain.T // 2
    limit = float(logsnr[mid] + logsnr[mid + 1]) / 2  # between two steps: no rounding decides
    full = BoxSampler(plain.model, meta, bf16=False, guidance=1.5)
    limited = BoxSampler(plain.model, meta, bf16=False, guidance=1.5, guidance_logsnr_max=limit)
    assert [i for i in range(1, plain.T + 1) if limited.guided(i)] == list(range(mid + 1, plain.T + 1))
    assert all(full.guided(i) for i in range(1, plain.T + 1))
    cond = plain.condition(torch.rand(2, 4, 8, 8, 8) * 1e11)
    z = torch.randn(2, 1, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    for i in (mid, mid + 1):
        expected = full if i > mid else plain
        assert torch.equal(limited.predict_noise(z, i, cond), expected.predict_noise(z, i, cond))
    assert not torch.equal(full.predict_noise(z, mid, cond), plain.predict_noise(z, mid, cond))


def test_lr_schedules():
    """Linear warm-up, then cosine to lr_min at the last iteration, or constant."""
    cosine = tiny(LodiTrainConfig, lr=1e-3, lr_min=1e-5, warmup=10, iterations=110, lr_schedule="cosine")
    assert lr_at(0, cosine) == pytest.approx(1e-4) and lr_at(9, cosine) == pytest.approx(1e-3)
    assert lr_at(60, cosine) == pytest.approx(0.5 * (1e-3 + 1e-5)) and lr_at(110, cosine) == pytest.approx(1e-5)
    constant = tiny(LodiTrainConfig, lr=1e-3, warmup=10, iterations=110, lr_schedule="constant")
    assert lr_at(4, constant) == pytest.approx(5e-4) and lr_at(60, constant) == lr_at(10**6, constant) == 1e-3
    # a cool-down of the last 40 iterations: lr up to step 70, the cosine's middle at 90, lr_min at 110
    wsd = tiny(LodiTrainConfig, **{**constant.to_dict(), "lr_min": 1e-5, "lr_decay_steps": 40})
    assert lr_at(4, wsd) == pytest.approx(5e-4) and lr_at(70, wsd) == pytest.approx(1e-3)
    assert lr_at(90, wsd) == pytest.approx(0.5 * (1e-3 + 1e-5)) and lr_at(110, wsd) == pytest.approx(1e-5)


def test_ema_decay_ramp():
    """With warm-up the n-th update (n from 0) averages with decay min(decay, (1 + n) / (10 + n)):
    0.1, 2/11, 3/12, ...; without, decay throughout."""
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema, plain = EMA(model, 0.5, warmup=True), EMA(model, 0.5)
    expected_ramp, expected_plain = 0.0, 0.0
    for n, value in enumerate((1.0, 2.0, 3.0, 4.0)):
        with torch.no_grad():
            model.weight.fill_(value)
        d = min(0.5, (1 + n) / (10 + n))
        expected_ramp = d * expected_ramp + (1 - d) * value
        expected_plain = 0.5 * expected_plain + 0.5 * value
        ema.update(model)
        plain.update(model)
        assert float(ema.weights()["weight"]) == pytest.approx(expected_ramp)
        assert float(plain.weights()["weight"]) == pytest.approx(expected_plain)
    restored = EMA(model, 0.5, warmup=True)
    restored.load_state_dict(ema.state_dict())
    assert restored.updates == 4 and restored.current_decay() == ema.current_decay() == pytest.approx(5 / 14)


def test_training_on_halogen_halos_conditions_on_them_and_selects_on_the_true_ones(grid_file, tmp_path):
    """lodi.train.condition: halogen: the condition (and its normalisation) comes from the
    given halo files, the sub-volumes from the grid's true halos; a file of another shape or a
    condition without its files is refused with the key's name."""
    import h5py

    with h5py.File(grid_file) as f:
        true = f["halos"][...]
    predicted = 0.1 * np.roll(true, 1, axis=-1)  # a fainter, shifted stand-in for HALOgen's output
    pred_file = tmp_path / "pred.h5"
    write_grids(pred_file, {"halos": predicted}, {"box_size": 8.0, "n_grid": 32})
    settings = dict(box=8, candidate_stride=4, important_log_rho=11.0, halo_model_channel=False)
    cfg = tiny(LodiTrainConfig, **settings, condition="halogen")
    on_true, on_pred = LodiData([grid_file], cfg), LodiData([grid_file], cfg, halo_files=[pred_file])
    assert on_pred.train == on_true.train and on_pred.val == on_true.val  # same boxes, around the true halos
    expected = on_pred.halo_transform.forward(torch.from_numpy(predicted), channel_dim=0).float()
    assert torch.allclose(on_pred.cond[0], expected)
    assert on_pred.halo_transform.mean != on_true.halo_transform.mean
    torch.testing.assert_close(on_pred.x[0], on_true.x[0])  # the target is still the grid's T_b

    bad = tmp_path / "bad.h5"
    write_grids(bad, {"halos": predicted[:, :16]}, {"box_size": 8.0, "n_grid": 32})
    with pytest.raises(InputError, match="bad.h5.*expected the training grid"):
        LodiData([grid_file], cfg, halo_files=[bad])
    net, vdm = TINY_NET, tiny(VDMConfig)
    with pytest.raises(ValueError, match="lodi.train.condition is 'halogen'.*needed"):
        train_lodi([grid_file], net, vdm, cfg, tmp_path / "c.pt", tmp_path / "h.csv", torch.device("cpu"))
    with pytest.raises(ValueError, match="'true_halos'.*not used"):
        train_lodi(
            [grid_file],
            net,
            vdm,
            tiny(LodiTrainConfig, condition="true_halos"),
            tmp_path / "c.pt",
            tmp_path / "h.csv",
            torch.device("cpu"),
            halo_files=[pred_file],
        )


def test_halo_model_channel_is_the_same_weighted_sum_in_training_and_generation(grid_file, tmp_path):
    """lodi.train.halo_model_channel: one channel more, sum_c w_c rho_c with w the halo model's
    coefficients fit on the grid's own halos over their largest; the sampler builds the same
    normalised condition from the four channels as training did."""
    import h5py

    h = torch.arange(16, dtype=torch.float64).reshape(2, 2, 2, 2)
    out = with_halo_model_channel(h, [1.0, 0.5], 0)
    assert out.shape == (3, 2, 2, 2) and torch.equal(out[:2], h)
    assert out[2, 1, 0, 1].item() == 5.0 + 0.5 * 13.0
    assert torch.equal(with_halo_model_channel(h[None], [1.0, 0.5], 1)[0], out)
    with pytest.raises(ValueError, match="3 halo-model weights"):
        with_halo_model_channel(h, [1.0, 1.0, 1.0], 0)

    with h5py.File(grid_file) as f:
        true, tb = f["halos"][...], f["tb"][...]
    f_c, _ = fit_coefficients([true], [tb])
    run = dict(batch_size=2, iterations=2, checkpoint_every=2, validate_every=2, val_boxes=2)
    content = train_tiny_lodi(grid_file, tmp_path / "c.pt", tmp_path / "h.csv", **run, halo_model_channel=True)
    assert content["network"]["cond_channels"] == TINY_NET.cond_channels + 1
    np.testing.assert_allclose(content["halo_model_weights"], f_c / f_c.max())
    assert len(content["halo_transform"]["mean"]) == 5
    settings = dict(box=8, candidate_stride=4, important_log_rho=11.0, halo_model_channel=True)
    data = LodiData([grid_file], tiny(LodiTrainConfig, **settings))
    save_checkpoint(tmp_path / "lodi.pt", content)
    sampler = BoxSampler.load(tmp_path / "lodi.pt", "cpu", bf16=False)
    torch.testing.assert_close(sampler.condition(torch.from_numpy(true)[None])[0], data.cond[0])
    cond = sampler.condition(torch.from_numpy(true[:, :8, :8, :8])[None])
    x = sampler.sample(cond, box_noise([torch.Generator().manual_seed(0)], (1, 8, 8, 8), "cpu"))
    assert x.shape == (1, 1, 8, 8, 8) and torch.isfinite(x).all()

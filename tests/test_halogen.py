"""HALOgen: the masked loss against hand-computed cases, group separation of the network,
sliding-window inference, training and exact resume."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from grid_data import paper, tiny, tiny_inference

from lodi_core.analysis.halogen_eval import evaluate_halos
from lodi_core.data.augment import CUBE_SYMMETRIES, apply_symmetry, invert_symmetry
from lodi_core.data.calibration import Calibration, fit_calibration, rank_levels
from lodi_core.data.windows import sliding_window_apply
from lodi_core.generation.halos import calibrate_halogen, predict_halos
from lodi_core.io import save_checkpoint
from lodi_core.models.halogen import (
    HALOgen,
    HalogenConfig,
    LossConfig,
    channel_thresholds,
    channel_weights,
    dense_equivalent,
    halogen_loss,
    interleave_groups,
    load_halogen,
    loss_mask,
    masked_l2,
    quantile_loss,
)
from lodi_core.training.halogen import HalogenData, HalogenTrainConfig, lr_at_epoch, train_halogen

TINY = tiny(HalogenConfig, channels=(8, 8, 16), bottleneck_channels=16)


def _target_with_known_counts():
    """4 channels on 4^3 (64 voxels): 2, 1, 0 and 4 voxels above the threshold 0.5."""
    t = torch.zeros((4, 4, 4, 4))
    t[0, 0, 0, 0] = t[0, 0, 0, 1] = 1.0
    t[1, 1, 1, 1] = 1.0
    t[3, 3, 3, 0] = t[3, 3, 3, 1] = t[3, 3, 3, 2] = t[3, 3, 3, 3] = 1.0
    return t, torch.full((4,), 0.5)


def test_channel_weights_eq2_hand_case():
    t, thr = _target_with_known_counts()
    # w^i = N^3 / sum over channels i-1..i+1 of the voxels above threshold
    expected = [64 / (2 + 1), 64 / (2 + 1 + 0), 64 / (1 + 0 + 4), 64 / (0 + 4)]
    assert channel_weights(t, thr).tolist() == pytest.approx(expected)


def test_loss_mask_eq4_hand_case_and_normalisation():
    t, thr = _target_with_known_counts()
    raw = torch.ones((4, 4, 4, 4), dtype=torch.float64)
    above = [{(0, 0, 0), (0, 0, 1)}, {(1, 1, 1)}, set(), {(3, 3, 0), (3, 3, 1), (3, 3, 2), (3, 3, 3)}]
    w = [64 / 3, 64 / 3, 64 / 5, 16.0]
    for i in range(4):
        for j in range(max(0, i - 1), min(4, i + 2)):  # Fig. 3: the neighbours' halo voxels too
            for v in above[j]:
                raw[(i, *v)] = w[i]
    mask = loss_mask(t, thr, window=4)
    np.testing.assert_allclose(mask.double().numpy(), (raw / raw.sum()).numpy(), rtol=1e-6)
    assert float(mask.sum()) == pytest.approx(1.0)  # one 4^3 window: the mask sums to 1
    # a box of 8 windows sums to 8
    big = torch.zeros((4, 8, 8, 8))
    big[:, :4, :4, :4] = t
    assert float(loss_mask(big, thr, window=4).sum()) == pytest.approx(8.0)
    # literal Eq. 4: only channel i's own voxels are weighted
    own = loss_mask(t, thr, window=4, neighbour_mask=False).double()
    raw_own = torch.ones_like(raw)
    for i in range(4):
        for v in above[i]:
            raw_own[(i, *v)] = w[i]
    np.testing.assert_allclose(own.numpy(), (raw_own / raw_own.sum()).numpy(), rtol=1e-6)


def test_thresholds_are_the_95th_percentile():
    t = torch.arange(100, dtype=torch.float64).reshape(1, 100).expand(4, 100).reshape(4, 100)
    assert channel_thresholds(t, 95.0).tolist() == pytest.approx([94.05] * 4)


def test_quantile_and_masked_l2_hand_case():
    pred = torch.zeros((1, 1, 2))
    target = torch.tensor([[[1.0, -1.0]]])
    # q = 0.7: d = 1 -> 0.7, d = -1 -> max(-0.7, 0.3) = 0.3; mean 0.5
    assert float(quantile_loss(pred, target, 0.7)[0]) == pytest.approx(0.5)
    mask = torch.tensor([[[0.25, 0.75]]])
    assert float(masked_l2(pred, target, mask)[0]) == pytest.approx(1.0)
    mask = torch.tensor([[[2.0, 0.0]]])
    assert float(masked_l2(pred + 3, target, mask)[0]) == pytest.approx(2.0 * 4.0)


def test_total_loss_eq5_hand_case():
    cfg = tiny(LossConfig, alpha=0.6, quantile=0.7, beta=(1.0, 2.0), lambda_w=0.5)
    pred = torch.zeros((1, 2, 2))
    target = torch.tensor([[[1.0, -1.0], [2.0, 0.0]]])
    mask = torch.tensor([[[0.5, 0.5], [1.0, 0.0]]])
    model = torch.nn.Linear(2, 1, bias=True)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0]]))
        model.bias.fill_(10.0)  # biases are not regularised
    terms = halogen_loss(pred, target, mask, model, cfg)
    l2 = [0.5 * 1 + 0.5 * 1, 1.0 * 4 + 0.0]
    lq = [(0.7 + 0.3) / 2, (0.7 * 2 + 0.0) / 2]
    expected = sum(0.6 * b * a + 0.4 * q for a, b, q in zip(l2, (1.0, 2.0), lq)) + 0.5 * 3.0
    assert float(terms.total.detach()) == pytest.approx(expected)
    assert terms.l2_masked.tolist() == pytest.approx(l2)


def test_groups_never_mix():
    """Output channel 0 depends on no parameter slice that belongs to groups 1-3."""
    torch.manual_seed(0)
    net = HALOgen(TINY)
    x = torch.randn(1, 1, 16, 16, 16)
    net(x)[:, 0].sum().backward()
    for name, p in net.named_parameters():
        if p.grad is None or p.shape[0] % 4:
            continue
        chunks = p.grad.reshape(4, -1)
        assert torch.count_nonzero(chunks[1:]) == 0, name
        if name.startswith(("stem", "down.0")):
            assert torch.count_nonzero(chunks[0]) > 0, name


def test_dense_equivalent_is_the_same_function_with_no_grouped_convolutions():
    torch.manual_seed(0)
    net = HALOgen(TINY).eval()
    dense = dense_equivalent(net)
    convs = [m for m in dense.modules() if isinstance(m, torch.nn.Conv3d)]
    assert len(convs) == sum(isinstance(m, torch.nn.Conv3d) for m in net.modules())
    assert all(m.groups == 1 for m in convs)
    assert any(m.groups > 1 for m in net.modules() if isinstance(m, torch.nn.Conv3d))  # the original is untouched
    x = torch.randn(2, 1, 16, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(dense(x), net(x), rtol=1e-5, atol=1e-5)


def test_a_head_norm_hides_the_amplitude_of_a_window_and_old_model_files_keep_theirs(grid_file, tmp_path):
    """With ``head_norm`` the GroupNorm before the output convolutions undoes any scale of the
    last decoder block's features: the head cannot tell a massive halo from a small one. Without
    it (the paper's text, the default) the output follows. A model file written before the key
    existed (norm weights, no key) still loads, with its norm."""
    torch.manual_seed(0)
    x = torch.randn(1, 1, 16, 16, 16)

    def with_features_scaled(net, factor):
        hook = net.up[-1].register_forward_hook(lambda module, args, out: out * factor)
        try:
            with torch.no_grad():
                return net(x)
        finally:
            hook.remove()

    normed = HALOgen(replace(TINY, head_norm=True)).eval()
    plain = HALOgen(TINY).eval()
    assert not TINY.head_norm and isinstance(plain.head_norm, torch.nn.Identity)
    torch.testing.assert_close(
        with_features_scaled(normed, 3.0), with_features_scaled(normed, 1.0), rtol=1e-3, atol=1e-3
    )
    diff = (with_features_scaled(plain, 3.0) - with_features_scaled(plain, 1.0)).abs().max()
    assert diff > 0.1 * with_features_scaled(plain, 1.0).abs().max()

    content = _train(grid_file, tmp_path, 1, "m")
    old_network = replace(TINY, head_norm=True).to_dict(exclude=("head_norm",))
    legacy = {**content, "model": normed.state_dict(), "network": old_network}
    save_checkpoint(tmp_path / "legacy.pt", legacy)
    net, _ = load_halogen(tmp_path / "legacy.pt")
    assert net.cfg.head_norm
    with torch.no_grad():
        torch.testing.assert_close(net(x), normed(x))
    save_checkpoint(tmp_path / "new.pt", content)
    assert not load_halogen(tmp_path / "new.pt")[0].cfg.head_norm


def test_interleave_groups_keeps_group_order():
    a = torch.arange(4).float().view(1, 4, 1, 1, 1)
    b = 10 + torch.arange(8).float().view(1, 8, 1, 1, 1)
    out = interleave_groups(a, b, 4).flatten().tolist()
    assert out == [0, 10, 11, 1, 12, 13, 2, 14, 15, 3, 16, 17]


def test_48_symmetries_are_distinct_and_invertible():
    x = torch.randn(2, 5, 5, 5)
    seen = set()
    for k in range(len(CUBE_SYMMETRIES)):
        y = apply_symmetry(x, k)
        seen.add(y.numpy().tobytes())
        assert torch.equal(invert_symmetry(y, k), x)
    assert len(CUBE_SYMMETRIES) == 48 and len(seen) == 48


@pytest.mark.parametrize("periodic", [False, True])
def test_window_averaging_reproduces_the_input_for_an_identity_network(periodic):
    v = torch.rand(4, 40, 40, 40)
    out = sliding_window_apply(v, lambda b: b, 16, 6, periodic, batch_size=7)
    assert torch.equal(out, v)


def test_lr_schedule_of_the_paper():
    cfg = paper(HalogenTrainConfig)
    assert lr_at_epoch(0, cfg) == lr_at_epoch(9.9, cfg) == 2e-4
    assert lr_at_epoch(10, cfg) == pytest.approx(1e-4)
    assert lr_at_epoch(35, cfg) == pytest.approx(0.5 * (1e-4 + 3e-5))
    assert lr_at_epoch(60, cfg) == pytest.approx(1e-4)  # warm restart


def _train(grid, tmp, epochs, name):
    cfg = tiny(
        HalogenTrainConfig,
        window=16,
        train_stride=8,
        batch_size=4,
        epochs=epochs,
        warm_epochs=1,
        cycle_epochs=2,
        bf16=False,
    )
    return train_halogen(
        [grid],
        TINY,
        cfg,
        tiny(LossConfig),
        tmp / f"{name}.ckpt",
        tmp / f"{name}.csv",
        torch.device("cpu"),
        progress=False,
    )


def test_every_batch_is_full_and_rank_shares_make_it_up(grid_file):
    """6 training windows in batches of 4: the epoch's second batch is filled from its first
    windows, so that both data-parallel ranks get 2; the shares are the whole batch's parts."""
    cfg = tiny(HalogenTrainConfig, window=16, train_stride=16, batch_size=4)
    data = HalogenData([grid_file], cfg, tiny(LossConfig))
    assert len(data.train) == 6 and data.steps_per_epoch == 2
    for step in range(4):
        x, y, m = data.batch(step)
        assert x.shape[0] == y.shape[0] == m.shape[0] == 4
        for k, t in enumerate((x, y, m)):
            torch.testing.assert_close(
                torch.cat([data.batch(step, slice(0, 2))[k], data.batch(step, slice(2, 4))[k]]), t
            )
    # the padding repeats the epoch's first two samples (same window, same symmetry)
    first, second = data.batch(0)[0], data.batch(1)[0]
    torch.testing.assert_close(second[2:], first[:2])
    assert not torch.equal(second[:2], first[:2])


def test_training_resumes_to_the_same_weights(grid_file, tmp_path):
    full = _train(grid_file, tmp_path, 2, "full")
    _train(grid_file, tmp_path, 1, "split")  # interrupted after epoch 1 ...
    resumed = _train(grid_file, tmp_path, 2, "split")  # ... and resumed
    assert resumed["steps"] == full["steps"]
    for k in full["model"]:
        assert torch.equal(full["model"][k], resumed["model"][k]), k
    history = (tmp_path / "full.csv").read_text().splitlines()
    assert len(history) == full["steps"] + 1 and "val_loss" in history[0]


def test_prediction_and_evaluation_shapes(grid_file, tmp_path):
    content = _train(grid_file, tmp_path, 1, "m")
    save_checkpoint(tmp_path / "model.pt", content)
    net, meta = load_halogen(tmp_path / "model.pt")
    from lodi_core.io import read_grids

    data, attrs = read_grids(grid_file)
    rho = predict_halos(net, meta, data["dm"], **tiny_inference(stride=8, batch_size=8, bf16=False))
    assert rho.shape == (4, 32, 32, 32) and torch.isfinite(rho).all() and (rho >= 0).all()
    nonzero = rho[rho > 0]
    assert nonzero.numel() == 0 or float(nonzero.min()) >= 10**9.5
    tables = evaluate_halos(rho.numpy(), data["halos"], 8.0)
    assert set(tables) == {"summary", "pdf", "pk"} and len(tables["summary"]) == 4


def test_mass_calibration_is_the_mean_true_density_at_each_prediction():
    """Hand-computed case: one channel, predictions at three levels (1e8, 1e9, 1e10) of 10, 6
    and 4 voxels. Their true densities average 2e7, 5e9 and 3e9: the last two are pooled by
    the isotonic regression into their voxel-weighted mean (6 x 5e9 + 4 x 3e9) / 10 = 4.2e9.
    Every prediction maps to its level's value, so the total is the true total."""
    pred = np.array([1e8] * 10 + [1e9] * 6 + [1e10] * 4)
    true = np.array([0.0] * 5 + [4e7] * 5 + [2e9, 8e9] * 3 + [3e9] * 4)
    cal = fit_calibration([pred.reshape(1, -1, 1, 1)], [true.reshape(1, -1, 1, 1)], bins=8, top_voxels=2)
    np.testing.assert_allclose(cal.log_pred[0], [8.0, 9.0, 10.0])
    np.testing.assert_allclose(cal.rho[0], [2e7, 4.2e9, 4.2e9])
    out = cal.apply(torch.as_tensor(pred).reshape(1, -1, 1, 1)).double().numpy().ravel()
    np.testing.assert_allclose(out, [2e7] * 10 + [4.2e9] * 10, rtol=1e-6)
    assert out.sum() == pytest.approx(true.sum(), rel=1e-6)
    # between knots: linear in log10 rho_pred; beyond them: the end values
    mid = cal.apply(torch.tensor([10**8.5, 1e6, 1e12]).reshape(1, 3, 1, 1)).double().numpy().ravel()
    np.testing.assert_allclose(mid, [(2e7 + 4.2e9) / 2, 2e7, 4.2e9], rtol=1e-6)
    assert Calibration.from_dict(cal.to_dict()) == cal


def test_mass_calibration_bins_narrow_towards_the_brightest_predictions():
    """Geometric tail quantiles: of 10^4 distinct predictions, the brightest bin holds
    about ``top_voxels``, and the knots are increasing."""
    rng = np.random.default_rng(0)
    pred = 10 ** rng.uniform(6, 12, size=(1, 10, 10, 100))
    cal = fit_calibration([pred], [pred], bins=16, top_voxels=10)
    x = np.asarray(cal.log_pred[0])
    assert len(x) == 16 and np.all(np.diff(x) > 0)
    ranked = np.sort(np.log10(pred.ravel()))
    assert ranked[-12:].mean() <= x[-1] <= ranked[-9:].mean()  # the brightest ~10 voxels
    # target = prediction: the identity, up to each bin's mean rho lying above 10^(mean log10 rho)
    # (0.66 dex in the lower half's 3 dex wide bin, < 0.05 dex in the narrow bins of the tail)
    assert np.all(np.log10(cal.rho[0]) >= x)
    np.testing.assert_allclose(np.log10(cal.rho[0])[4:], x[4:], atol=0.05)


def test_quantile_calibration_maps_each_rank_to_the_true_value_of_that_rank():
    """Hand-computed case: 8 voxels, predictions 10^1 ... 10^8, true densities a shuffle of
    0, 0, 0, 1, 2, 3, 5, 9 (x 1e9). bins=4 and top_voxels=1 give the rank levels 0, 1/2, 3/4,
    7/8, 1, i.e. positions 0, 3.5, 5.25, 6.125 and 7 in the sorted voxels (linear between
    neighbours): the knots are log10 rho_pred 1, 4.5, 6.25, 7.125, 8 and the true values
    there, 0, 1.5, 3.5, 5.5, 9 (x 1e9). The brightest prediction takes the brightest true
    value, the faintest the faintest, whatever the true values' positions."""
    pred = 10.0 ** np.arange(1, 9)
    true = np.array([2e9, 0.0, 9e9, 0.0, 1e9, 5e9, 0.0, 3e9])
    cal = fit_calibration([pred.reshape(1, -1, 1, 1)], [true.reshape(1, -1, 1, 1)], "quantile", bins=4, top_voxels=1)
    np.testing.assert_allclose(cal.log_pred[0], [1.0, 4.5, 6.25, 7.125, 8.0])
    np.testing.assert_allclose(cal.rho[0], [0.0, 1.5e9, 3.5e9, 5.5e9, 9e9])
    out = cal.apply(torch.as_tensor(pred).reshape(1, -1, 1, 1)).double().numpy().ravel()
    assert out[0] == 0.0 and out[-1] == pytest.approx(9e9, rel=1e-6) and np.all(np.diff(out) >= 0)


def test_quantile_calibration_gives_the_true_one_point_distribution():
    """Predictions unrelated in shape to the truth (lognormal against a mostly empty,
    lognormal field): after the quantile map the voxels' distribution is the true one
    (the quantiles up to the brightest ~20 voxels agree to 5 %, the error of interpolating
    between the knots) and the total mass is kept;
    the mean map keeps the total but not the distribution (its brightest voxel is far below
    the true one). A true field that is a monotone function of the prediction is recovered at
    the knots."""
    rng = np.random.default_rng(0)
    pred = 10 ** rng.normal(8.0, 1.0, size=(1, 40, 40, 40))
    true = np.where(rng.random(pred.shape) < 0.1, 10 ** rng.normal(9.5, 0.7, pred.shape), 0.0)
    rho = fit_calibration([pred], [true], "quantile", bins=48).apply(torch.as_tensor(pred)).double().numpy()
    levels = [0.5, 0.92, 0.95, 0.99, 0.999, 1 - 20 / true.size]
    np.testing.assert_allclose(np.quantile(rho, levels), np.quantile(true, levels), rtol=0.05)
    assert rho.sum() == pytest.approx(true.sum(), rel=0.05)
    mean = fit_calibration([pred], [true], "mean", bins=48).apply(torch.as_tensor(pred)).double().numpy()
    assert mean.sum() == pytest.approx(true.sum(), rel=0.05) and mean.max() < 0.1 * true.max()
    cal = fit_calibration([pred], [3e9 * (pred / 1e8) ** 1.5], "quantile", bins=48)
    np.testing.assert_allclose(cal.rho[0], 3e9 * (10 ** np.asarray(cal.log_pred[0]) / 1e8) ** 1.5, rtol=0.02)
    with pytest.raises(ValueError, match="calibration method 'median'"):
        fit_calibration([pred], [true], "median")


def test_calibration_methods_can_differ_per_channel():
    """A list of methods, one per channel: each channel's knots are those of that method
    alone; a list of the wrong length is refused."""
    rng = np.random.default_rng(1)
    pred = 10 ** rng.normal(8.0, 1.0, size=(2, 20, 20, 20))
    true = np.where(rng.random(pred.shape) < 0.1, 10 ** rng.normal(9.5, 0.7, pred.shape), 0.0)
    mixed = fit_calibration([pred], [true], ["mean", "quantile"], bins=16)
    mean, quantile = (fit_calibration([pred], [true], m, bins=16) for m in ("mean", "quantile"))
    assert mixed.log_pred == (mean.log_pred[0], quantile.log_pred[1]) and mixed.rho == (mean.rho[0], quantile.rho[1])
    with pytest.raises(ValueError, match="expected one per channel"):
        fit_calibration([pred], [true], ["mean"])


def test_predict_halos_applies_the_model_files_calibration(grid_file, tmp_path):
    """calibrate_halogen fits on the training box and stores the knots in the model file's
    content; predict_halos then maps through them (before the post-threshold) and, on the box
    it was fitted on, keeps each channel's total mass within the interpolation's error."""
    from lodi_core.io import read_grids

    content = _train(grid_file, tmp_path, 1, "m")
    save_checkpoint(tmp_path / "model.pt", content)
    net, meta = load_halogen(tmp_path / "model.pt")
    data, _ = read_grids(grid_file)
    inference = tiny_inference(stride=8, batch_size=8, bf16=False, post_threshold=None)
    raw = predict_halos(net, meta, data["dm"], **inference)
    calibrated = calibrate_halogen(net, meta, [grid_file], inference)
    assert set(calibrated) - set(meta) == {"mass_calibration", "mass_calibration_method"}
    save_checkpoint(tmp_path / "calibrated.pt", calibrated)
    net, meta = load_halogen(tmp_path / "calibrated.pt")
    rho = predict_halos(net, meta, data["dm"], **inference)
    cal = Calibration.from_dict(meta["mass_calibration"])
    torch.testing.assert_close(rho, cal.apply(raw))
    torch.testing.assert_close(predict_halos(net, meta, data["dm"], **inference, calibrate=False), raw)
    target = data["halos"].reshape(4, -1).sum(axis=1)
    np.testing.assert_allclose(rho.double().reshape(4, -1).sum(dim=1).numpy(), target, rtol=0.25)


def test_rank_levels_by_hand():
    """8 voxels, bins=4, top_voxels=1, lower_levels=4: 0, 1/8, 2/8, 3/8 below the median, then
    the tail 1 - (1/2, 1/4, 1/8) whose last bin holds one voxel, and 1."""
    np.testing.assert_allclose(rank_levels(8, 4, 1, 4), [0, 0.125, 0.25, 0.375, 0.5, 0.75, 0.875, 1.0])
    np.testing.assert_allclose(rank_levels(8, 4, 1), [0, 0.5, 0.75, 0.875, 1.0])  # HALOgen's: no lower levels

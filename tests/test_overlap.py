"""Box grid, stage schedule (against the paper's counts), latent overlap and baselines."""

import numpy as np
import pytest
import torch
from grid_data import tiny

from lodi_core.analysis.seams import seam_metric
from lodi_core.data.boxes import box_grid, box_origins, shard_slice, stage_indices, stage_schedule, tiling_origins
from lodi_core.generation.jobs import GenerationConfig, generate_baseline, generate_volume, load_condition
from lodi_core.models.lodi import BoxSampler


def test_paper_stage_counts():
    stages = stage_schedule(256, 32, 4)
    assert [len(s) for s in stages] == [125, 100, 100, 100, 80, 80, 80, 64]
    assert box_origins(256, 32, 4) == list(range(0, 225, 28))
    assert [len(s) for s in stage_schedule(64, 16, 4)] == [27, 18, 18, 18, 12, 12, 12, 8]


@pytest.mark.parametrize(
    "n,box,overlap,periodic",
    [(64, 16, 4, False), (100, 32, 4, False), (70, 16, 3, False), (64, 16, 4, True), (48, 16, 2, True)],
)
def test_stages_are_disjoint_cover_the_volume_and_overlap_by_at_least_o(n, box, overlap, periodic):
    axis = box_origins(n, box, overlap, periodic)
    gaps = np.diff(axis + ([axis[0] + n] if periodic else []))
    assert gaps.max() <= box - overlap  # neighbours overlap by >= o voxels
    covered = np.zeros((n, n, n), dtype=bool)
    for stage in stage_schedule(n, box, overlap, periodic):
        seen = np.zeros_like(covered)
        for origin in stage:
            vox = _box_mask(origin, box, n)
            assert not (vox & seen).any(), "two boxes of one stage overlap"
            seen |= vox
        covered |= seen
    assert covered.all()


def _box_mask(origin, box, n):
    m = np.zeros((n, n, n), dtype=bool)
    m[np.ix_(*[(np.arange(box) + o) % n for o in origin])] = True
    return m


def test_known_region_is_the_overlap_with_earlier_stages():
    """A box's known region (what latent overlap conditions it on) is exactly the union of its
    overlaps with the boxes of earlier stages; in the paper's grid a stage-2 box sees two
    4 x 32 x 32 slabs of its stage-1 neighbours."""
    n, box, overlap = 40, 12, 4
    grid = box_grid(n, box, overlap)
    stages = stage_indices(n, box, overlap)
    known_so_far = np.zeros((n, n, n), dtype=bool)
    for s, stage in enumerate(stages):
        earlier = [grid[i] for st in stages[:s] for i in st]
        for idx in stage:
            mine = _box_mask(grid[idx], box, n)
            expected = np.zeros_like(mine)
            for origin in earlier:
                expected |= mine & _box_mask(origin, box, n)
            assert np.array_equal(mine & known_so_far, expected)
        for idx in stage:
            known_so_far |= _box_mask(grid[idx], box, n)
    paper = box_grid(256, 32, 4)
    stage1 = np.zeros((256,) * 3, dtype=bool)
    for idx in stage_indices(256, 32, 4)[0]:
        stage1 |= _box_mask(paper[idx], 32, 256)
    inner = _box_mask(paper[(3, 2, 2)], 32, 256)  # a stage-2 box (odd x) away from the edges
    assert (inner & stage1).sum() == 2 * 4 * 32 * 32


def test_impossible_grids_are_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="cannot be covered"):
        box_origins(62, 32, 4)
    with pytest.raises(ValueError, match="smaller than the box"):
        box_origins(20, 32, 4)
    with pytest.raises(ValueError, match="overlap < box"):
        box_origins(64, 16, -1)


def test_tiling_origins():
    assert len(tiling_origins(256, 32)) == 512
    assert tiling_origins(20, 8) == [(x, y, z) for x in (0, 8, 12) for y in (0, 8, 12) for z in (0, 8, 12)]
    # with a step: LODI's candidate lattice (a box every 5 voxels, the last pushed to the end)
    assert tiling_origins(20, 8, 5) == [
        (x, y, z) for x in (0, 5, 10, 12) for y in (0, 5, 10, 12) for z in (0, 5, 10, 12)
    ]


@pytest.fixture
def sampler_and_cond(lodi_model, grid_file):
    sampler = BoxSampler.load(lodi_model[0], "cpu", bf16=False)
    cond, _ = load_condition(sampler, grid_file)
    return sampler, cond


def test_stitched_volume_equals_the_known_values(sampler_and_cond):
    sampler, cond = sampler_and_cond
    cfg = tiny(GenerationConfig, overlap=2, batch_size=5)
    snapshots = []
    final = generate_volume(
        sampler, cond, 0, "sim", cfg, on_stage=lambda s: snapshots.append((s.x0.clone(), s.known.clone()))
    )
    assert len(snapshots) == 8 and bool(final.known.all())
    for (x_prev, k_prev), (x_next, _) in zip(snapshots[:-1], snapshots[1:]):
        assert torch.equal(x_next[k_prev], x_prev[k_prev])  # known voxels never change
    assert torch.isfinite(final.x0).all()


def test_generation_is_deterministic_and_independent_of_sharding(sampler_and_cond):
    sampler, cond = sampler_and_cond
    cond = cond[..., :20, :20, :20]  # 27 boxes of 8^3 at overlap 2 (the whole 32^3: 125)
    one = generate_volume(sampler, cond, 7, "sim", tiny(GenerationConfig, overlap=2, batch_size=4, shards=1)).x0
    three = generate_volume(sampler, cond, 7, "sim", tiny(GenerationConfig, overlap=2, batch_size=4, shards=3)).x0
    other = generate_volume(sampler, cond, 8, "sim", tiny(GenerationConfig, overlap=2, batch_size=4, shards=1)).x0
    assert torch.equal(
        one, generate_volume(sampler, cond, 7, "sim", tiny(GenerationConfig, overlap=2, batch_size=4, shards=1)).x0
    )
    # the same noise for every box whatever the split; the network's rounding may depend on
    # the micro-batch a box shares (CPU kernels chosen by batch size: up to ~4e-7 here)
    torch.testing.assert_close(one, three, rtol=0, atol=1e-5)
    assert (one - other).abs().max() > 0.1


@pytest.mark.parametrize("n_shards", [1, 2, 4, 16])
def test_shards_split_every_stage_evenly(n_shards):
    # the paper's grid: every shard of every stage has work, whatever the micro-batch size
    for stage in stage_schedule(256, 32, 4):
        parts = [shard_slice(len(stage), s, n_shards) for s in range(n_shards)]
        assert sorted(i for p in parts for i in p) == list(range(len(stage)))
        assert max(map(len, parts)) - min(map(len, parts)) <= 1 and min(map(len, parts)) >= 1


def test_baselines_cover_the_volume(sampler_and_cond):
    sampler, cond = sampler_and_cond
    cfg = tiny(GenerationConfig, overlap=2, batch_size=8)
    for method in ("tiling", "averaging"):
        x = generate_baseline(sampler, cond, method, 0, "sim", cfg)
        assert x.shape == cond.shape[-3:] and torch.isfinite(x).all()
    with pytest.raises(ValueError, match="unknown baseline"):
        generate_baseline(sampler, cond, "stacking", 0, "sim", cfg)


def test_seam_metric_sees_seams():
    rng = np.random.default_rng(0)
    smooth = rng.standard_normal((32, 32, 32))
    assert seam_metric(smooth, [0, 8, 16, 24], 8) == pytest.approx(1.0, abs=0.1)
    seams = smooth.copy()
    for i, o in enumerate(range(0, 32, 8)):
        seams[o : o + 8] += 3.0 * (-1) ** i  # offset blocks along x
    assert seam_metric(seams, [0, 8, 16, 24], 8) > 2.0


def test_tb_calibration_gives_the_volume_it_was_fitted_on_the_true_contrast_and_keeps_its_level(
    lodi_model, grid_file, tmp_path
):
    """calibrate_lodi (lodi.tb_calibration: quantile) samples the calibration simulation by
    latent overlap and maps T_b to the true T_b of the same rank, scaled to keep the volumes'
    total: on the volume it was fitted on, T_b/<T_b> has the truth's quantiles (to the
    interpolation between knots) and <T_b> is the uncalibrated one; the file is the trained one
    plus the map; the uncalibrated T_b is still there (``calibrate=False``); and a calibrated
    file is refused as the input."""
    from lodi_core.generation.jobs import calibrate_lodi, generate_tb, load_sampler
    from lodi_core.io import InputError, read_grids, save_checkpoint

    cfg = tiny(GenerationConfig, overlap=2, batch_size=16, bf16=False)
    content = calibrate_lodi(lodi_model[0], [grid_file], [grid_file], cfg, 1, "cpu")
    assert set(content) - set(lodi_model[1]) == {"tb_calibration", "tb_calibration_samples", "tb_calibration_level"}
    save_checkpoint(tmp_path / "calibrated.pt", content)
    grids, attrs = read_grids(grid_file, ("tb",))
    true, sim = grids["tb"], str(attrs.get("simulation", grid_file.stem))
    raw_sampler, sampler = (load_sampler(p, cfg, "cpu") for p in (lodi_model[0], tmp_path / "calibrated.pt"))
    cond, _ = load_condition(sampler, grid_file)
    raw, tb = generate_tb(raw_sampler, cond, 0, sim, cfg), generate_tb(sampler, cond, 0, sim, cfg)
    levels = [0.5, 0.85, 0.9, 0.95, 0.99, 0.999]  # (76 % of the true voxels are its floor, 1e-4)
    contrast = np.quantile(tb / tb.mean(), levels)
    np.testing.assert_allclose(contrast, np.quantile(true / true.mean(), levels), rtol=0.05)
    assert np.abs(np.quantile(raw / raw.mean(), levels) / contrast - 1).max() > 0.1  # the map did something
    assert tb.mean() == pytest.approx(raw.mean(), rel=1e-4)
    assert np.all(np.diff(tb.ravel()[np.argsort(raw.ravel(), kind="stable")]) >= 0)  # the ranks are kept
    x0 = torch.zeros(2, 2)
    torch.testing.assert_close(sampler.to_tb(x0, calibrate=False), raw_sampler.to_tb(x0))
    with pytest.raises(InputError, match="already has a T_b calibration"):
        calibrate_lodi(tmp_path / "calibrated.pt", [grid_file], [grid_file], cfg, 1, "cpu")


def test_tb_calibration_level_is_lodis_or_the_calibration_simulations():
    """fit_tb_calibration's scale (lodi.tb_calibration_level): the calibrated volumes keep the
    generated total T_b ("lodi") or take the true total ("calibration"); the two maps differ by
    that factor only, so T_b/<T_b> is the same; another level is refused."""
    from lodi_core.data.calibration import fit_tb_calibration

    rng = np.random.default_rng(0)
    true = [10 ** rng.normal(-1.0, 0.5, (16, 16, 16)) for _ in range(2)]
    generated = [0.6 * t**1.3 + 1e-3 for t in true]  # fainter, more contrast; the same ranks
    g = torch.from_numpy(np.stack([x[None] for x in generated])).float()
    out = {
        level: torch.cat([fit_tb_calibration(generated, true, level).apply(x) for x in g]).double().numpy()
        for level in ("lodi", "calibration")
    }
    assert out["lodi"].sum() == pytest.approx(sum(x.sum() for x in generated), rel=1e-4)
    assert out["calibration"].sum() == pytest.approx(sum(t.sum() for t in true), rel=1e-4)
    ratio = sum(t.sum() for t in true) / sum(x.sum() for x in generated)
    assert abs(ratio - 1) > 0.2  # the two levels are far apart here
    np.testing.assert_allclose(out["calibration"], ratio * out["lodi"], rtol=1e-4)
    with pytest.raises(ValueError, match="level 'target'"):
        fit_tb_calibration(generated, true, "target")

"""Figures and metrics: every figure builds from small stand-ins of the workflow's files, the
metrics give known answers, and every figure target resolves to a rule (dry run)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from grid_data import make_grid_file, tiny

from lodi_core.analysis import metrics
from lodi_core.analysis.halogen_eval import evaluate_halos
from lodi_core.analysis.metrics import box_axis_origins, power_residual, spread_skill, summarise, volume_metrics
from lodi_core.analysis.posterior import posterior_stats
from lodi_core.analysis.seams import seam_metric
from lodi_core.figures import builders, from_files, style
from lodi_core.generation.jobs import GenerationConfig, pick_pair_origin, run_overlap_pair, stage_boxes, write_state
from lodi_core.generation.overlap import VolumeState
from lodi_core.io import read_grids, write_csv, write_grids

REPO = Path(__file__).resolve().parents[1]
N, BOX_SIZE, BOX, OVERLAP = 32, 8.0, 8, 2
METHODS = ("latent_overlap", "tiling", "averaging")


def volume_file(path, tb, method, seed, sim="sim_a"):
    attrs = {
        "method": method,
        "seed": seed,
        "simulation": sim,
        "box": BOX,
        "overlap": OVERLAP,
        "periodic": False,
        "box_size": BOX_SIZE,
        "n_grid": N,
    }
    write_grids(path, {"tb": tb}, attrs)
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A fake results tree: two simulations' grids, HALOgen output and its evaluation, and
    generated volumes (target times log-normal noise) for 3 methods x 2 seeds."""
    root = tmp_path_factory.mktemp("results")
    out = {"root": root, "grids": {}, "volumes": []}
    for j, sim in enumerate(("sim_a", "sim_b")):
        grid = make_grid_file(root / f"grids/{sim}.h5", n=N, box_size=BOX_SIZE, seed=j)
        out["grids"][sim] = grid
        target = read_grids(grid, ("tb",))[0]["tb"]
        for method in METHODS:
            for seed in (0, 1):
                rng = np.random.default_rng(100 * j + 10 * seed + len(method))
                tb = target * np.exp(0.2 * rng.standard_normal(target.shape))
                out["volumes"].append(
                    volume_file(
                        root / f"generated/{sim}/{method}_seed{seed}.h5", tb.astype(np.float32), method, seed, sim
                    )
                )
    grids, attrs = read_grids(out["grids"]["sim_a"])
    rng = np.random.default_rng(5)
    predicted = grids["halos"] * np.exp(0.3 * rng.standard_normal(grids["halos"].shape))
    out["predicted"] = root / "halogen/predicted/sim_a.h5"
    write_grids(out["predicted"], {"halos": predicted}, attrs)
    for name, table in evaluate_halos(predicted, grids["halos"], BOX_SIZE).items():
        out[name] = root / f"halogen/eval/sim_a_{name}.csv"
        write_csv(table, out[name])
    return out


def figure_paths(tmp_path, name):
    return tmp_path / f"{name}.pdf", tmp_path / f"{name}.png"


def assert_written(pdf, png):
    assert pdf.stat().st_size > 1000 and pdf.read_bytes()[:4] == b"%PDF"
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"


def latent(run, sim="sim_a"):
    return [p for p in run["volumes"] if f"/{sim}/latent_overlap" in str(p)]


# ----------------------------------------------------------------------------- figures
@pytest.mark.parametrize(
    "name",
    [
        "fig5_methods",
        "fig8_overview",
        "fig9_halos",
        "fig10_power",
        "fig11_residuals",
        "rk",
        "tb_pdf",
        "posterior",
        "posterior_one_seed",
    ],
)
def test_figure_builds(run, tmp_path, name):
    pdf, png = figure_paths(tmp_path, name)
    grid, sim_a = run["grids"]["sim_a"], [p for p in run["volumes"] if "/sim_a/" in str(p)]
    first_seed = [p for p in sim_a if p.name.endswith("_seed0.h5")]
    if name == "fig5_methods":
        from_files.plot_methods(grid, first_seed, "sim_a", pdf, png)
    elif name == "fig8_overview":
        from_files.plot_overview(grid, [p for p in first_seed if "averaging" not in p.name], "sim_a", pdf, png)
    elif name == "fig9_halos":
        from_files.plot_halos(grid, run["predicted"], run["summary"], run["pdf"], "sim_a", pdf, png)
    elif name == "fig10_power":
        from_files.plot_power(grid, latent(run), "sim_a", pdf, png)
    elif name == "fig11_residuals":
        from_files.plot_residuals(run["grids"], latent(run) + latent(run, "sim_b"), "test", pdf, png)
    elif name == "rk":
        from_files.plot_rk(grid, sim_a, "sim_a", pdf, png)
    elif name == "tb_pdf":
        from_files.plot_tb_pdf(grid, sim_a, "sim_a", pdf, png)
    elif name == "posterior":
        from_files.plot_posterior(grid, latent(run), "sim_a", pdf, png)
    elif name == "posterior_one_seed":
        from_files.plot_posterior(grid, latent(run)[:1], "sim_a", pdf, png)
    assert_written(pdf, png)


def state_files(root, model_box, n=N):
    """States after stages 1..8 as the merge jobs write them (random normalised x0)."""
    cfg = tiny(GenerationConfig, overlap=OVERLAP)
    state = VolumeState.empty(n)
    rng = torch.Generator().manual_seed(0)
    paths = []
    for stage in range(1, 9):
        x0, known = state.x0.clone(), state.known.clone()
        for _, (x, y, z) in stage_boxes(n, model_box, cfg, stage):
            region = (slice(x, x + model_box), slice(y, y + model_box), slice(z, z + model_box))
            new = ~known[region]
            x0[region][new] = torch.randn(int(new.sum()), generator=rng)
            known[region] = True
        state = VolumeState(x0, known, stage)
        paths.append(root / f"state_stage{stage}.h5")
        write_state(paths[-1], state, {"simulation": "sim_a", "seed": 0})
    return paths


def test_model_figures_build(lodi_model, grid_file, tmp_path):
    """Figs. 6 and 7 need the LODI model: a pair sampled with the tiny fixture model, and
    the 8 stage states converted to T_b."""
    model, content = lodi_model
    pdf, png = figure_paths(tmp_path, "fig6")
    run_overlap_pair(model, grid_file, tmp_path / "pair.h5", tiny(GenerationConfig, overlap=OVERLAP), 0, "cpu")
    from_files.plot_overlap_pair(tmp_path / "pair.h5", "test", pdf, png)
    assert_written(pdf, png)
    states = state_files(tmp_path, int(content["box"]))
    last = read_state_known(states[-1])
    assert last.all(), "the fake stages must cover the volume"
    pdf, png = figure_paths(tmp_path, "fig7")
    from_files.plot_stages(model, states, BOX_SIZE, "test", pdf, png)
    assert_written(pdf, png)


def read_state_known(path):
    from lodi_core.generation.jobs import read_state

    return read_state(path, N, "cpu").known.numpy()


def test_stage_projections_average_only_known_voxels():
    tb = np.full((4, 4, 4), 2.0)
    tb[0] = 100.0  # unknown voxels must not count
    known = np.zeros((4, 4, 4), dtype=bool)
    known[1:, :2, :] = True
    xy, xz, yz = builders.stage_projections(tb, known)
    assert np.allclose(xy[1:, :2], 2.0) and np.isnan(xy[0]).all() and np.isnan(xy[:, 2:]).all()
    assert np.allclose(yz[:2], 2.0) and np.isnan(yz[2:]).all()
    assert xz.shape == (4, 4)


def test_pair_origin_finds_the_halo_mass():
    halos = np.zeros((4, 32, 32, 32))
    halos[2, 20, 9, 26] = 1.0
    origin = pick_pair_origin(halos, box=8, overlap=2, axis=0)
    assert origin[0] <= 20 < origin[0] + 14 and origin[1] <= 9 < origin[1] + 8 and origin[2] <= 26 < origin[2] + 8


def test_legends_count_draws_and_seeds():
    # the r(k) and PDF legends: hi_redraw's volumes are draws of the HI scatter, not seeds
    assert style.realisations("hi_redraw", 8) == "8 draws"
    assert style.realisations("latent_overlap", 2) == "2 seeds"
    assert style.realisations("halo_model", 1) == "1 seed"


def test_box_corners_of_each_method():
    attrs = {"box": BOX, "overlap": OVERLAP, "periodic": False, "box_size": BOX_SIZE, "n_grid": N}
    assert style.box_corners({**attrs, "method": "tiling"}) == [0, 8, 16, 24, 32]
    lo = style.box_corners({**attrs, "method": "latent_overlap"})
    axis, _, _ = box_axis_origins({**attrs, "method": "latent_overlap"})
    assert lo == sorted(set(axis) | {o + BOX for o in axis}) and lo[0] == 0 and lo[-1] == N


# ----------------------------------------------------------------------------- statistics
def field(seed, n=N):
    return np.exp(0.5 * np.random.default_rng(seed).standard_normal((n, n, n)))


def test_power_residual_of_a_field_against_itself():
    f = field(1)
    table = power_residual(f, f, BOX_SIZE)
    assert np.allclose(table["residual"], 0.0, atol=1e-12)
    assert np.allclose(table["r"], 1.0, atol=1e-12)
    assert (table["n_modes"] > 0).all()


def test_independent_fields_are_uncorrelated():
    table = power_residual(field(1), field(2), BOX_SIZE)
    weighted = np.average(np.abs(table["r"]), weights=table["n_modes"])
    assert weighted < 0.03, weighted  # ~ 1/sqrt(modes per bin)
    assert abs(np.average(table["residual"], weights=table["n_modes"])) < 0.05


def test_seam_metric_is_one_for_noise():
    origins, box, _ = box_axis_origins(
        {"method": "latent_overlap", "box": BOX, "overlap": OVERLAP, "periodic": False, "n_grid": N}
    )
    assert seam_metric(field(3), origins, box) == pytest.approx(1.0, abs=0.1)
    stepped = field(3) + 5.0 * (np.arange(N) // BOX % 2)[:, None, None]  # jumps at box edges
    assert seam_metric(stepped, [0, 8, 16, 24], BOX) > 10


def test_volume_metrics_of_the_target_itself():
    f = field(4)
    attrs = {
        "method": "latent_overlap",
        "box": BOX,
        "overlap": OVERLAP,
        "periodic": False,
        "box_size": BOX_SIZE,
        "n_grid": N,
    }
    row = volume_metrics(f, f, attrs)
    assert row["max_abs_residual_k10"] == pytest.approx(0.0, abs=1e-12)
    assert row["r_k5"] == pytest.approx(1.0) and row["mean_tb_ratio"] == pytest.approx(1.0)
    assert row["pdf_distance_dex"] == pytest.approx(0.0, abs=1e-12)
    assert row["seam_metric"] == pytest.approx(row["seam_metric_target"])


def test_posterior_stats_match_numpy():
    samples = [field(s, 8) for s in range(5)]
    target = field(9, 8)
    stats = posterior_stats(iter(samples), target)
    stack = np.stack(samples)
    assert stats["count"] == 5
    assert np.allclose(stats["mean"], stack.mean(0)) and np.allclose(stats["std"], stack.std(0, ddof=1))
    assert np.allclose(stats["z"], (target - stack.mean(0)) / stack.std(0, ddof=1))
    one = posterior_stats([samples[0]], target)
    assert np.isnan(one["std"]).all() and np.isnan(one["z"]).all()


@pytest.mark.parametrize("spread", [1.0, 0.3])
def test_spread_skill_matches_the_gaussian_closed_forms(spread):
    """White Gaussian toy: target t = m + e_t, samples s_i = m + a e_i (m, e of variances M, v
    around a mean of 100). Closed forms per k: r(s, t) = M / sqrt((M + a^2 v)(M + v)),
    r(s_i, s_j) = M / (M + a^2 v), r(mean of N, t) = M / sqrt((M + a^2 v / N)(M + v)), and the
    conditional mean's r = sqrt(M / (M + v)) whatever a. Calibrated (a = 1): r_between =
    r_target; over-confident (a = 0.3): r_between > r_target."""
    rng = np.random.default_rng(7)
    n, big_m, v, count = 32, 1.0, 1.0, 4
    m = rng.normal(0, np.sqrt(big_m), (n,) * 3)
    target = 100 + m + rng.normal(0, np.sqrt(v), (n,) * 3)
    samples = [100 + m + spread * rng.normal(0, np.sqrt(v), (n,) * 3) for _ in range(count)]
    table = spread_skill(samples, target, BOX_SIZE)
    many = table[table["n_modes"] >= 200]
    avg = {c: float(np.average(many[c], weights=many["n_modes"])) for c in table.columns[2:]}
    sv = spread**2 * v
    assert avg["r_target"] == pytest.approx(big_m / np.sqrt((big_m + sv) * (big_m + v)), abs=0.02)
    assert avg["r_between"] == pytest.approx(big_m / (big_m + sv), abs=0.02)
    assert avg["r_mean"] == pytest.approx(big_m / np.sqrt((big_m + sv / count) * (big_m + v)), abs=0.02)
    assert avg["r_conditional"] == pytest.approx(np.sqrt(big_m / (big_m + v)), abs=0.02)
    if spread < 1:
        assert avg["r_between"] > avg["r_target"] + 0.2
    one = spread_skill(samples[:1], target, BOX_SIZE)
    assert one["r_between"].isna().all() and one["r_conditional"].isna().all()
    assert np.allclose(one["r_target"], one["r_mean"])


def test_residual_of_the_seeds_mean_power():
    """Seeds c_i (t - <t>) + <t>: P(s_i) = c_i^2 P(t) in every bin, so the seeds' mean P(k) has
    the residual mean(c_i^2) - 1 (here -0.1) while each seed's is c_i^2 - 1 (+0.44, -0.64)."""
    target = field(3)
    samples = [target.mean() + c * (target - target.mean()) for c in (1.2, 0.6)]
    table = spread_skill(samples, target, BOX_SIZE)
    assert np.allclose(table["residual_of_mean_pk"], -0.1)
    per_seed = [power_residual(s, target, BOX_SIZE)["residual"] for s in samples]
    assert np.allclose(per_seed[0], 0.44) and np.allclose(per_seed[1], -0.64)


def test_mean_std_and_pdf():
    t = pd.DataFrame({"k": [1.0, 2.0], "residual": [0.1, -0.2]})
    u = pd.DataFrame({"k": [1.0, 2.0], "residual": [0.3, 0.0]})
    k, mean, std = style.mean_std([t, u], "residual")
    assert np.allclose(mean, [0.2, -0.1]) and np.allclose(std, [0.1, 0.1])
    with pytest.raises(ValueError):
        style.mean_std([t, pd.DataFrame({"k": [1.0], "residual": [0.0]})], "residual")
    edges = np.linspace(-3, 1, 41)
    density = builders.tb_pdf(field(5), edges, 1e-3)
    assert np.sum(density * np.diff(edges)) == pytest.approx(1.0)


def test_metrics_tables(run, tmp_path):
    metrics_csv, summary_csv = tmp_path / "metrics.csv", tmp_path / "metrics_summary.csv"
    metrics.write_metrics(run["grids"], run["volumes"], metrics_csv, summary_csv)
    table = pd.read_csv(metrics_csv)
    assert len(table) == 2 * len(METHODS) * 2
    assert list(table.columns[:3]) == ["simulation", "seed", "method"]
    assert set(table["method"]) == set(METHODS) and set(table["seed"]) == {0, 1}
    assert {"max_abs_residual_k10", "r_k5", "seam_metric", "pdf_distance_dex", "mean_tb_ratio"} <= set(table.columns)
    assert table["r_k5"].between(0.3, 1.0).all()  # target times small noise
    summary = pd.read_csv(summary_csv)
    assert len(summary) == 2 * len(METHODS) and "seam_metric_mean" in summary and "seam_metric_std" in summary
    assert np.allclose(
        summary.sort_values(["simulation", "method"])["mean_tb_ratio_mean"],
        summarise(table).sort_values(["simulation", "method"])["mean_tb_ratio_mean"],
    )
    # the spread against the skill, from the two seeds of each method
    row = summary.set_index(["simulation", "method"]).loc[("sim_a", "latent_overlap")]
    target = read_grids(run["grids"]["sim_a"], ("tb",))[0]["tb"]
    spread = spread_skill([read_grids(p, ("tb",))[0]["tb"] for p in latent(run)], target, BOX_SIZE)
    nearest = spread.iloc[int(np.argmin(np.abs(spread["k"] - 5.0)))]
    assert row["r_between_k5"] == pytest.approx(nearest["r_between"])
    assert row["r_conditional_k5"] == pytest.approx(nearest["r_conditional"])
    k10 = spread["k"] <= 10
    assert row["mean_pk_mean_abs_residual_k10"] == pytest.approx(spread.loc[k10, "residual_of_mean_pk"].abs().mean())
    assert row["mean_pk_max_abs_residual_k5"] == pytest.approx(
        spread.loc[spread["k"] <= 5, "residual_of_mean_pk"].abs().max()
    )
    # the seeds scatter around the target, which is their conditional mean here: r_conditional
    # is 1 and the seeds agree with each other less than with it (r_between = r_target^2)
    assert row["r_conditional_k5"] == pytest.approx(1.0, abs=0.01)
    assert row["r_between_k5"] == pytest.approx(row["r_k5_mean"] ** 2, abs=0.01)


# ----------------------------------------------------------------------------- workflow
def test_every_figure_target_resolves_to_a_rule(tmp_path):
    """Dry run of every figure target and of `figures` on the test configuration: the DAG
    builds and each target is made by its own rule."""
    snakefile = REPO / "Snakefile"
    if "figures.smk" not in snakefile.read_text():  # until the Snakefile includes the rules
        wrapper = tmp_path / "Snakefile"
        wrapper.write_text(f'include: "{snakefile}"\ninclude: "{REPO / "workflow/rules/figures.smk"}"\n')
        snakefile = wrapper
    cfg = yaml.safe_load((REPO / "tests/workflow_config.yaml").read_text())
    sim, results = cfg["simulations"]["test"][0], tmp_path / "results"
    expected = {
        f"figures/fig5_methods_{sim}.pdf": "fig5_methods",
        "figures/fig6_overlap_pair.pdf": "fig6_overlap_pair",
        "figures/fig7_stages.pdf": "fig7_stages",
        f"figures/fig8_overview_{sim}.pdf": "fig8_overview",
        f"figures/fig9_halos_{sim}.pdf": "fig9_halos",
        f"figures/fig10_power_{sim}.pdf": "fig10_power",
        "figures/fig11_residuals.pdf": "fig11_residuals",
        f"figures/rk_{sim}.pdf": "rk",
        f"figures/tb_pdf_{sim}.pdf": "tb_pdf",
        f"figures/posterior_{sim}.pdf": "posterior",
        "metrics.csv": "metrics",
    }
    seeds = tmp_path / "seeds.yaml"  # --config seeds=[0,3] would give strings
    seeds.write_text("seeds: [0, 3]\n")
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-n",
        "-s",
        str(snakefile),
        "--cores",
        "1",
        "--configfile",
        str(REPO / "tests/workflow_config.yaml"),
        str(seeds),
        "--config",
        f"results={results}",
        "--",
        "figures",
        *(f"{results}/{t}" for t in expected),
    ]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    jobs = re.findall(r"rule (\w+):\n((?:    .*\n)+)", text)
    made_by = {}
    for rule, body in jobs:
        for path in re.findall(r"output: ([^\n]+)", body):
            for p in path.split(", "):
                made_by[p.strip()] = rule
    for target, rule in expected.items():
        assert made_by.get(f"{results}/{target}") == rule, (target, rule, made_by.get(f"{results}/{target}"))
    # latent overlap for every seed (the seed-wise figures), tiling and averaging for the first
    # generation.comparison_seeds (1 here) only
    assert f"{results}/generated/{sim}/latent_overlap_seed3.h5" in made_by
    assert f"{results}/generated/{sim}/tiling_seed3.h5" not in made_by


def test_residual_summaries_by_hand():
    """max and mean |dP/P| over the bins with k <= k_max, on a hand-made table."""
    table = pd.DataFrame({"k": [0.5, 1.0, 2.0, 6.0], "residual": [0.2, -0.4, 0.1, -3.0]})
    assert metrics.max_abs_residual(table, 1.0) == pytest.approx(0.4)
    assert metrics.mean_abs_residual(table, 1.0) == pytest.approx(0.3)
    assert metrics.mean_abs_residual(table, 5.0) == pytest.approx(0.7 / 3)
    assert np.isnan(metrics.mean_abs_residual(table, 0.1))


def test_residual_axes_show_the_scored_range():
    """Beyond k = 10 h/Mpc the smoothed target has almost no power and the residual can reach
    10^8; the y-axis follows the curves at k <= 10 (the metrics' range), keeping the ±10 % band
    readable."""
    import matplotlib.pyplot as plt

    k = np.geomspace(0.5, 30, 60)
    residual = np.where(k <= 10, -0.4 + 0.05 * np.log(k), 1e8 * (k / 30) ** 4)
    fig, ax = plt.subplots()
    ax.plot(k, residual)
    style.residual_axes(ax)
    lo, hi = ax.get_ylim()
    plt.close(fig)
    assert lo < residual[k <= 10].min() and hi >= 2 * style.RESIDUAL_BAND
    assert hi < 1.0  # not stretched to the unscored 10^8

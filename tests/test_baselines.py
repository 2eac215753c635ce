"""Baselines: the halo model (catalogue painting, fit, volumes) and Lagrangian Deep Learning
(displacement layers, gradients, training), and their place in the metrics."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from grid_data import tiny

from lodi_core.analysis.metrics import metrics_table
from lodi_core.data.camels import read_particles
from lodi_core.data.synthetic.writer import write_snapshot
from lodi_core.generation import baselines as paint
from lodi_core.io import InputError, read_grids, write_grids
from lodi_core.models import halo_model as hm
from lodi_core.models import ldl
from lodi_core.physics.cosmology import Cosmology
from lodi_core.physics.fields import cell_volume, gaussian_smooth
from lodi_core.physics.halos import halo_channels
from lodi_core.training import baselines as fit

COSMO = Cosmology()
EDGES = (3e10, 1e11, 5e11, 1e12)


def clustered_particles(n_side: int, box_size: float, seed: int = 0) -> np.ndarray:
    """A lattice moved along a smooth random field: particles with some structure."""
    rng = np.random.default_rng(seed)
    q = (np.stack(np.meshgrid(*[np.arange(n_side)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) * (box_size / n_side)
    phases = rng.uniform(0, 2 * np.pi, (3, 3))
    k = 2 * np.pi / box_size
    disp = sum(
        0.08 * box_size * np.sin(k * (j + 1) * q[:, [(a + j) % 3]] + phases[a, j]) for a in range(3) for j in range(3)
    )
    return np.mod(q + disp, box_size)


# ----------------------------------------------------------------------------- halo model
def test_one_halo_puts_the_expected_hi_mass_in_the_expected_cells():
    box, n = 10.0, 10
    ratio = (0.02, 0.01, 0.005, 0.001)
    mass = 2e11  # Msun: channel 2 (1e11 - 5e11)
    k = hm.tb_per_hi_density(COSMO, 0.0)
    expected_hi = ratio[1] * mass * COSMO.h  # Msun/h
    # on a grid point: everything in that cell
    tb = hm.paint_halo_catalogue([[3.0, 4.0, 7.0]], [mass], ratio, box, n, EDGES, COSMO)
    hi_per_cell = tb / k * cell_volume(box, n)
    assert float(hi_per_cell[3, 4, 7]) == pytest.approx(expected_hi, rel=1e-9)
    assert float(hi_per_cell.sum()) == pytest.approx(expected_hi, rel=1e-9)
    # a quarter and a half cell off along x and y: CIC shares over the 4 neighbours
    tb = hm.paint_halo_catalogue([[3.25, 4.5, 7.0]], [mass], ratio, box, n, EDGES, COSMO)
    hi = (tb / k * cell_volume(box, n)).numpy()
    for (i, j), share in {(3, 4): 0.75 * 0.5, (4, 4): 0.25 * 0.5, (3, 5): 0.75 * 0.5, (4, 5): 0.25 * 0.5}.items():
        assert hi[i, j, 7] == pytest.approx(share * expected_hi, rel=1e-9)
    assert np.count_nonzero(hi) == 4
    # below the first channel edge: no HI
    assert float(hm.paint_halo_catalogue([[1.0, 1.0, 1.0]], [1e10], ratio, box, n, EDGES, COSMO).abs().sum()) == 0.0


def test_halo_model_fit_recovers_known_ratios():
    rng = np.random.default_rng(3)
    box, n = 10.0, 16
    ratio = np.array([0.03, 0.012, 0.006, 0.002])
    halos_list, tb_list = [], []
    for _ in range(2):
        mass = np.concatenate([rng.uniform(lo, hi, 40) for lo, hi in zip(EDGES, EDGES[1:] + (1e13,))])
        pos = rng.uniform(0, box, (len(mass), 3))
        channels = gaussian_smooth(halo_channels(pos, mass, box, n, EDGES).double(), box, 0.3)
        tb = gaussian_smooth(hm.paint_halo_catalogue(pos, mass, ratio, box, n, EDGES, COSMO), box, 0.3)
        # painting the smoothed channels is the smoothed catalogue painting (linearity)
        f = hm.hi_ratio_to_coefficient(ratio, COSMO, 0.0)
        torch.testing.assert_close(hm.paint_halo_channels(channels, f), tb, rtol=1e-5, atol=1e-12)
        halos_list.append(channels.numpy())
        tb_list.append(tb.numpy() * (1 + 0.01 * rng.standard_normal(tb.shape)))
    f, explained = hm.fit_coefficients(halos_list, tb_list)
    np.testing.assert_allclose(hm.coefficient_to_hi_ratio(f, COSMO, 0.0), ratio, rtol=0.02)
    assert explained > 0.99


def test_halo_model_fit_is_non_negative(tmp_path):
    rng = np.random.default_rng(4)
    halos = rng.uniform(0, 1, (4, 8, 8, 8))
    tb = 2.0 * halos[0] - 0.5 * halos[3]  # the best unconstrained fit would be negative
    f, _ = hm.fit_coefficients([halos], [tb])
    assert (f >= 0).all() and f[3] == 0.0 and f[0] > 1.0


def test_halo_model_fit_equals_nnls_on_every_voxel():
    """The slab-wise normal equations give scipy's NNLS on the full design matrix (the reference),
    with an empty channel and a negative unconstrained coefficient; and the explained variance."""
    from scipy.optimize import nnls

    rng = np.random.default_rng(5)
    scale = np.array([1e-3, 1.0, 30.0, 0.0])[:, None, None, None]  # decades apart, channel 4 empty
    halos_list = [rng.lognormal(0, 2, (4, 12, 12, 12)) * scale for _ in range(2)]
    tb_list = [0.7 * h[0] + 0.02 * h[2] - 0.3 * h[1] + rng.normal(0, 1, h.shape[1:]) for h in halos_list]
    a = np.concatenate([h.reshape(4, -1).T for h in halos_list])
    b = np.concatenate([t.ravel() for t in tb_list])
    expected, _ = nnls(a, b)
    f, explained = hm.fit_coefficients(halos_list, tb_list, chunk=5)
    np.testing.assert_allclose(f, expected, rtol=1e-6, atol=1e-12)
    assert f[1] == 0.0 and f[3] == 0.0
    np.testing.assert_allclose(explained, 1.0 - np.var(b - a @ expected) / np.var(b), rtol=1e-8)


# ----------------------------------------------------------------------------- LDL model
def small_model(dtype=torch.float64, layers=2, n=8, box=4.0, seed=0):
    torch.manual_seed(seed)
    model = ldl.LDL(layers, box, n, smoothing_radius=0.4, tb_mean=0.1).to(dtype)
    x = torch.from_numpy(clustered_particles(12, box, seed)).to(dtype)
    model.calibrate(x)
    return model, x


def test_displacement_layer_with_zero_strength_is_the_identity():
    model, x = small_model()
    mesh = model.mesh(8, 4.0, x.device, x.dtype)
    layer = model.layers[0]
    layer.gamma.data.fill_(1.7)
    layer.nu.data.fill_(-1.3)
    layer.a.data.fill_(0.0)
    assert torch.equal(layer(x, mesh), x)
    layer.a.data.fill_(0.5)
    with torch.no_grad():
        assert float((layer(x, mesh) - x).norm(dim=1).max()) > 0
    # a = 1 is an rms displacement of one cell at the calibration point
    layer.gamma.data.fill_(1.0)
    layer.nu.data.fill_(-2.0)
    layer.a.data.fill_(1.0)
    with torch.no_grad():
        rms = float((layer(x, mesh) - x).pow(2).sum(1).mean().sqrt())
    assert rms == pytest.approx(4.0 / 8, rel=1e-6)


def test_gradients_flow_through_the_lagrangian_model():
    """Autograd against central finite differences for every parameter of a two-layer
    model, through displacement, CIC paint and read-out, activation, smoothing and loss."""
    model, x = small_model()
    for layer, a in zip(model.layers, (0.4, -0.3)):
        layer.a.data.fill_(a)
    model.activation.b0.data.fill_(-0.05)  # ReLU active everywhere: smooth in every parameter
    model.activation.mu.data.fill_(1.3)
    target = model(x).detach() * torch.exp(0.3 * torch.randn(8, 8, 8, dtype=torch.float64))
    bins = ldl.PowerBins(8, 4.0)
    o_s = ldl.fourier_weight(8, 4.0, 1.0).double()
    cfg = tiny(ldl.LDLConfig)

    def loss():
        return ldl.ldl_loss(model(x), target, o_s, bins, bins(target), cfg)[0]

    params = dict(model.named_parameters())
    model.zero_grad()
    loss().backward()
    eps = 1e-6
    checked = 0
    for name, p in params.items():
        with torch.no_grad():
            p += eps
            up = float(loss())
            p -= 2 * eps
            down = float(loss())
            p += eps
        numeric = (up - down) / (2 * eps)
        assert float(p.grad) == pytest.approx(numeric, rel=2e-4, abs=1e-7), name
        checked += abs(numeric) > 1e-6
    assert checked >= 10, "most parameters must influence the loss"


def write_tiny_simulation(tmp_path, name: str, seed: int, n_side=16, n=16, box=6.0, teacher=None):
    """A DM-only snapshot and a grid file whose T_b is a known LDL model's output."""
    pos = clustered_particles(n_side, box, seed)
    snap = write_snapshot(
        tmp_path / f"{name}_dm.hdf5",
        {1: {"Coordinates": pos, "ParticleIDs": np.arange(len(pos), dtype=np.uint64) + 1}},  # lattice order
        box_size=box,
        redshift=0.0,
        cosmology=COSMO,
        mass_table=[0, 1e9, 0, 0, 0, 0],
        coordinate_dtype=np.float32,
    )
    with torch.no_grad():
        tb = teacher(torch.from_numpy(pos).float())
    dm = np.full((n, n, n), 1e10)
    halos = np.stack(
        [
            gaussian_smooth(halo_channels(pos[:4], [2e11] * 4, box, n, EDGES)[c].double(), box, 0.3).numpy()
            for c in range(4)
        ]
    )
    grid = tmp_path / f"{name}.h5"
    write_grids(
        grid,
        {"dm": dm, "halos": halos, "tb": tb.numpy()},
        {
            "box_size": box,
            "n_grid": n,
            "redshift": 0.0,
            "smoothing_radius": 0.3,
            "halo_mass_edges": list(EDGES),
            "cosmology": COSMO.as_dict(),
        },
    )
    return snap, grid


def teacher_model(n=16, box=6.0):
    torch.manual_seed(5)
    t = ldl.LDL(1, box, n, 0.3, tb_mean=0.2)
    t.calibrate(torch.from_numpy(clustered_particles(16, box, 0)).float())
    t.layers[0].a.data.fill_(0.6)
    t.activation.mu.data.fill_(1.8)
    t.activation.b0.data.fill_(0.3)
    return t


def test_ldl_training_lowers_the_loss_and_keeps_its_checkpoint(tmp_path):
    teacher = teacher_model()
    files = [write_tiny_simulation(tmp_path, f"S{i}", seed=i, teacher=teacher) for i in range(2)]
    snaps, grids = [f[0] for f in files], [f[1] for f in files]
    cfg = tiny(ldl.LDLConfig, layers=1, steps=24, lr=0.05, checkpoint_every=12)
    content = fit.train_ldl(snaps, grids, cfg, tmp_path / "ck.pt", tmp_path / "hist.csv", progress=False)
    hist = pd.read_csv(tmp_path / "hist.csv")
    assert len(hist) == 24 and {"loss", "real", "power"} <= set(hist.columns)
    assert hist["loss"].iloc[-4:].mean() < 0.6 * hist["loss"].iloc[:4].mean()
    assert content["kind"] == "ldl" and content["steps"] == 24 and len(content["parameters"]["layers"]) == 1
    # a second run finds the finished checkpoint and returns the same weights without training
    again = fit.train_ldl(snaps, grids, cfg, tmp_path / "ck.pt", tmp_path / "hist2.csv", progress=False)
    for k, v in content["model"].items():
        assert torch.equal(v, again["model"][k]), k


def test_lattice_stride_keeps_the_lagrangian_sub_lattice_whatever_the_file_order(tmp_path):
    """baselines.ldl.particle_stride s: the particles whose initial-lattice indices (from IDs
    min + (i n + j) n + k) are all multiples of s, in any storage order; IDs that number no
    lattice are refused, naming the file and the field."""
    n, box = 8, 4.0
    q = np.stack(np.meshgrid(*[np.arange(n)] * 3, indexing="ij"), -1).reshape(-1, 3)
    pos = ((q + 0.25) * (box / n)).astype(np.float32)  # particle i, j, k sits in cell i, j, k
    ids = np.arange(n**3, dtype=np.uint64) + 1
    order = np.random.default_rng(3).permutation(n**3)  # stored shuffled, as DM-only CAMELS files
    path = write_snapshot(
        tmp_path / "dm.hdf5",
        {1: {"Coordinates": pos[order], "ParticleIDs": ids[order]}},
        box_size=box,
        redshift=0.0,
        cosmology=COSMO,
        mass_table=[0, 1e9, 0, 0, 0, 0],
        coordinate_dtype=np.float32,
    )
    assert read_particles(path, box).shape == (n**3, 3)
    for s in (2, 4):
        sub = read_particles(path, box, lattice_stride=s)
        cells = np.floor(sub / (box / n)).astype(int)
        assert len(sub) == (n // s) ** 3 and (cells % s == 0).all()
        assert len({tuple(c) for c in cells}) == (n // s) ** 3
    with pytest.raises(InputError, match="divisible by the stride 3"):
        read_particles(path, box, lattice_stride=3)
    gaps = ids.copy()
    gaps[5] = 10**6  # not consecutive: no lattice
    bad = write_snapshot(
        tmp_path / "gaps.hdf5",
        {1: {"Coordinates": pos, "ParticleIDs": gaps}},
        box_size=box,
        redshift=0.0,
        cosmology=COSMO,
        mass_table=[0, 1e9, 0, 0, 0, 0],
        coordinate_dtype=np.float32,
    )
    with pytest.raises(InputError, match="gaps.hdf5.*PartType1/ParticleIDs"):
        read_particles(bad, box, lattice_stride=2)


def test_ldl_trained_on_a_sub_lattice_paints_on_the_same_sub_lattice(tmp_path):
    """The model file records particle_stride and the volume job reads the particles with it."""
    teacher = teacher_model()
    snap, grid = write_tiny_simulation(tmp_path, "S0", seed=0, teacher=teacher)
    cfg = tiny(ldl.LDLConfig, layers=1, steps=2, lr=0.05, checkpoint_every=2, particle_stride=2)
    content = fit.train_ldl([snap], [grid], cfg, tmp_path / "ck.pt", tmp_path / "hist.csv", progress=False)
    assert content["config"]["particle_stride"] == 2
    from lodi_core.io import save_checkpoint

    save_checkpoint(tmp_path / "ldl.pt", content)
    paint.run_ldl_volume(tmp_path / "ldl.pt", snap, grid, tmp_path / "v.h5", 0, "S0")
    model, _ = ldl.load_ldl(tmp_path / "ldl.pt")
    sub = torch.from_numpy(read_particles(snap, 6.0, lattice_stride=2))
    assert len(sub) == 8**3
    np.testing.assert_array_equal(
        read_grids(tmp_path / "v.h5", ("tb",))[0]["tb"], ldl.apply_ldl(model, sub, 6.0, 16).numpy()
    )


# ----------------------------------------------------------------------------- volumes and metrics
@pytest.fixture
def baseline_files(tmp_path):
    teacher = teacher_model()
    snap, grid = write_tiny_simulation(tmp_path, "T0", seed=7, teacher=teacher)
    fit.run_fit_halo_model([grid], tmp_path / "halo_model.json")
    out = {}
    for method in ("halo_model", "halo_model_true"):
        out[method] = tmp_path / f"{method}_seed0.h5"
        paint.run_halo_model_volume(tmp_path / "halo_model.json", grid, out[method], method, 0, "T0")
    from lodi_core.io import save_checkpoint

    save_checkpoint(
        tmp_path / "ldl.pt",
        {
            "kind": "ldl",
            "model": teacher.state_dict(),
            "config": {"layers": 1},
            "grid": {"box_size": 6.0, "n_grid": 16, "smoothing_radius": 0.3},
        },
    )
    out["ldl"] = tmp_path / "ldl_seed0.h5"
    paint.run_ldl_volume(tmp_path / "ldl.pt", snap, grid, out["ldl"], 0, "T0")
    return grid, out, teacher, snap


def test_baseline_files_carry_the_volume_attributes_and_units(baseline_files):
    grid, out, teacher, snap = baseline_files
    for method, path in out.items():
        with h5py.File(path) as f:
            assert f["tb"].attrs["units"] == "mK" and f["tb"].shape == (16, 16, 16)
            a = dict(f.attrs)
            assert a["method"] == method and int(a["seed"]) == 0 and a["simulation"] == "T0"
            assert float(a["box_size"]) == 6.0 and int(a["n_grid"]) == 16 and int(a["box"]) == 0
            assert {"code_version", "redshift", "smoothing_radius", "baseline_model", "deterministic"} <= set(a)
            assert a.get("halos", a.get("dm_snapshot"))  # the file it was painted from
            assert np.isfinite(f["tb"][...]).all() and (f["tb"][...] >= 0).all()
    # LDL applied with the teacher's weights reproduces the teacher's T_b (the grid's target)
    target = read_grids(grid, ("tb",))[0]["tb"]
    np.testing.assert_allclose(read_grids(out["ldl"], ("tb",))[0]["tb"], target, rtol=1e-5, atol=1e-7)


def test_metrics_table_includes_the_baselines_with_nan_seams(baseline_files, tmp_path):
    grid, out, _, _ = baseline_files
    # a box-made volume beside them keeps its seam columns
    tb = read_grids(grid, ("tb",))[0]["tb"]
    tiled = tmp_path / "tiling_seed0.h5"
    write_grids(
        tiled,
        {"tb": tb * 1.1},
        {
            "method": "tiling",
            "seed": 0,
            "simulation": "T0",
            "box": 8,
            "overlap": 0,
            "periodic": False,
            "box_size": 6.0,
            "n_grid": 16,
        },
    )
    table = metrics_table({"T0": grid}, [*out.values(), tiled])
    assert sorted(table["method"]) == ["halo_model", "halo_model_true", "ldl", "tiling"]
    base = table[table["method"] != "tiling"]
    assert base[["seam_metric", "seam_metric_target", "seam_excess_power"]].isna().all().all()
    assert (
        base[["max_abs_residual_k5", "r_k5", "pdf_distance_dex", "mean_tb_ratio"]].notna().all().all()
    )  # k_F > 1 h/Mpc here
    assert table.loc[table["method"] == "tiling", "seam_metric"].notna().all()
    ldl_row = table[table["method"] == "ldl"].iloc[0]
    assert ldl_row["r_k5"] == pytest.approx(1.0, abs=1e-6) and ldl_row["mean_tb_ratio"] == pytest.approx(1.0, rel=1e-5)


def test_hi_redraw_remakes_the_simulation_with_only_its_hi_drawn_again(tmp_path):
    """The hi_redraw baseline: the same halos and DM, another draw of the HI; a grid from
    another seed (or other settings) is refused, naming the grid."""
    from lodi_core.data.grids import GridSpec, make_grids
    from lodi_core.data.synthetic import make_configured_simulation

    synthetic = {"n_particles": 32, "a_start": 0.1, "n_steps": 5, "mesh_factor": 2}
    data = {
        "box_size": 12.5,
        "n_grid": 16,
        "redshift": 0.0,
        "smoothing_radius": 0.2,
        "halo_position": "SubhaloCM",
        "halo_mass": "SubhaloMass",
        "halo_mass_edges": list(EDGES),
        "allow_empty_channels": True,
        "hydrogen_mass_fraction": 0.76,
        "dm_source": "dm_only",
    }
    cosmology = {"omega_m": 0.3, "omega_b": 0.049, "h": 0.6711, "n_s": 0.9624, "sigma8": 0.8}
    # made as the synthetic_simulation rule makes it, from the same settings the redraw gets
    sim = make_configured_simulation(tmp_path / "sim", "T0", 11, synthetic, 12.5, 0.0, cosmology, progress=False)
    grids, attrs = make_grids(sim["hydro"], sim["groups"], sim["dm_only"], GridSpec.from_config(data, cosmology))
    grid = tmp_path / "T0.h5"
    write_grids(grid, grids, attrs)
    out = tmp_path / "hi_redraw_seed1.h5"
    paint.run_hi_redraw_volume(grid, out, 1, "T0", 11, synthetic, data, cosmology, "cpu")
    with h5py.File(out) as f:
        a = dict(f.attrs)
        tb = f["tb"][...]
        assert f["tb"].attrs["units"] == "mK" and tb.shape == (16, 16, 16)
    assert a["method"] == "hi_redraw" and int(a["seed"]) == 1 and a["simulation"] == "T0" and int(a["box"]) == 0
    target = np.asarray(grids["tb"], dtype=np.float64)
    assert not np.allclose(tb, target)
    # the same halos hold the HI: another draw correlates with the target
    assert np.corrcoef(tb.ravel(), target.ravel())[0, 1] > 0.5
    assert tb.mean() == pytest.approx(target.mean(), rel=0.5)
    assert not list(tmp_path.glob(".hi_redraw_*"))  # the remade simulation is not kept
    with pytest.raises(InputError, match="T0.h5.*halo channels"):
        paint.run_hi_redraw_volume(grid, tmp_path / "other.h5", 1, "T0", 12, synthetic, data, cosmology, "cpu")
    assert not (tmp_path / "other.h5").exists()
    with pytest.raises(ValueError, match="draw 0"):
        paint.run_hi_redraw_volume(grid, tmp_path / "zero.h5", 0, "T0", 11, synthetic, data, cosmology, "cpu")

"""CIC (painting, read-out and the differentiable stencil), smoothing and T_b against Pylians
and hand-computed cases."""

import numpy as np
import pytest
import torch

from lodi_core.physics.cosmology import RHO_CRIT_H2, Cosmology
from lodi_core.physics.fields import Stencil, brightness_temperature, cic, cic_readout, gaussian_smooth, hi_mass


@pytest.fixture(scope="module")
def masl():
    return pytest.importorskip("MAS_library", reason="Pylians is a test extra (pip install -e '.[test]')")


@pytest.mark.parametrize("n_grid", [16, 33])
@pytest.mark.parametrize("weighted", [False, True])
def test_cic_matches_pylians(masl, n_grid, weighted):
    rng = np.random.default_rng(n_grid)
    box = 25.0
    pos = (rng.random((50_000, 3)) * box).astype(np.float32)
    pos[:10] = np.float32(box) * np.float32(0.9999999)  # right at the periodic edge
    pos[10:20] = 0.0
    w = rng.random(len(pos)).astype(np.float32) if weighted else None
    ref = np.zeros((n_grid,) * 3, dtype=np.float32)
    masl.MA(pos, ref, box, "CIC", W=w, verbose=False)
    ours = cic(pos, box, n_grid, w).numpy()
    assert np.abs(ours - ref).max() <= 1e-4 * np.abs(ref).max()


def test_cic_conserves_mass_exactly():
    rng = np.random.default_rng(1)
    pos = rng.random((100_000, 3)) * 10.0 - 3.0  # also outside [0, L): wrapped periodically
    w = rng.random(len(pos))
    grid = cic(pos, 10.0, 24, w, dtype=torch.float64)
    assert float(grid.sum()) == pytest.approx(w.sum(), rel=1e-12)
    assert float(cic(pos, 10.0, 24).sum()) == pytest.approx(len(pos), rel=1e-6)


def test_cic_hand_case():
    # one particle at (0.25, 0, 0) cells: 0.75 to cell 0, 0.25 to cell 1; on the grid point
    grid = cic(np.array([[0.25, 0.0, 0.0]]), 4.0, 4, dtype=torch.float64).numpy()
    assert grid[0, 0, 0] == pytest.approx(0.75) and grid[1, 0, 0] == pytest.approx(0.25)
    assert grid.sum() == pytest.approx(1.0)
    # wrap-around: a particle at 3.5 cells shares with cell 0
    grid = cic(np.array([[3.5, 3.5, 3.5]]), 4.0, 4, dtype=torch.float64).numpy()
    assert grid[3, 3, 3] == pytest.approx(0.125) and grid[0, 0, 0] == pytest.approx(0.125)


def test_cic_readout_is_the_adjoint_of_cic():
    rng = np.random.default_rng(2)
    pos = torch.from_numpy(rng.random((500, 3)) * 6.0)
    field = torch.from_numpy(rng.standard_normal((12, 12, 12)))
    w = torch.from_numpy(rng.standard_normal(500))
    lhs = float((cic(pos, 6.0, 12, w, dtype=torch.float64) * field).sum())
    rhs = float((cic_readout(field, pos, 6.0) * w).sum())
    assert lhs == pytest.approx(rhs, rel=1e-10)


@pytest.mark.parametrize("n_grid", [16, 33])
def test_cic_readout_matches_pylians(masl, n_grid):
    rng = np.random.default_rng(n_grid)
    box = 25.0
    pos = (rng.random((20_000, 3)) * box).astype(np.float32)
    pos[:10] = np.float32(box) * np.float32(0.9999999)  # right at the periodic edge
    pos[10:20] = 0.0
    field = rng.standard_normal((n_grid,) * 3).astype(np.float32)
    ref = np.zeros(len(pos), dtype=np.float32)
    masl.CIC_interp(field, box, pos, ref)
    ours = cic_readout(torch.from_numpy(field), torch.from_numpy(pos), box).numpy()
    assert np.abs(ours - ref).max() <= 1e-5 * np.abs(field).max()


def test_stencil_paints_like_cic_at_any_position():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.uniform(0, 5.0, (300, 3)))
    x[0] = torch.tensor([5.0 - 1e-13, 0.0, 4.999999])  # at the periodic edge
    x[1] = torch.tensor([-3.2, 7.1, 12.0])  # outside the box: periodic
    mass = torch.from_numpy(rng.uniform(0.5, 2, 300))
    torch.testing.assert_close(
        Stencil.at(x * (8 / 5.0), 8).paint(mass), cic(x, 5.0, 8, weights=mass, dtype=torch.float64)
    )


def test_stencil_read_out_of_a_painted_field_conserves_mass():
    rng = np.random.default_rng(2)
    n, box = 8, 4.0
    x = torch.from_numpy(rng.uniform(-box, 2 * box, (500, 3)))  # outside the box too: periodic
    mass = torch.from_numpy(rng.uniform(0.1, 3.0, 500))
    st = Stencil.at(x * (n / box), n)
    grid = st.paint(mass)
    assert float(grid.sum()) == pytest.approx(float(mass.sum()), rel=1e-12)
    # read-out is the adjoint of painting and a partition of unity: reading the painted
    # density back with each particle's mass returns the grid's mass-weighted total, and a
    # uniform field reads back unchanged at every particle
    field = torch.from_numpy(rng.uniform(0, 1, (1, n, n, n)))
    assert float((st.read(field)[:, 0] * mass).sum()) == pytest.approx(float((grid * field[0]).sum()), rel=1e-12)
    torch.testing.assert_close(
        st.read(torch.full((1, n, n, n), 3.0, dtype=torch.float64)), torch.full((500, 1), 3.0, dtype=torch.float64)
    )


def test_stencil_gradients_match_finite_differences():
    torch.manual_seed(0)
    n = 5
    x = (torch.rand(20, 3, dtype=torch.float64) * n).requires_grad_()
    mass = torch.rand(20, dtype=torch.float64).requires_grad_()
    f = torch.randn(2, n, n, n, dtype=torch.float64).requires_grad_()
    w = torch.randn(n, n, n, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x, m: (Stencil.at(x, n).paint(m) * w).sum(), (x, mass))
    assert torch.autograd.gradcheck(lambda x, f: (Stencil.at(x, n).read(f) ** 2).sum(), (x, f))


def test_gaussian_smoothing_of_a_point_is_the_sampled_gaussian_and_conserves_the_total():
    n, box, r = 64, 16.0, 0.7
    delta = torch.zeros((n, n, n), dtype=torch.float64)
    delta[0, 0, 0] = 1.0
    out = gaussian_smooth(delta, box, r)
    dx = box / n
    x = np.minimum(np.arange(n), n - np.arange(n)) * dx
    half = int(np.ceil(4 * r / dx))  # the kernel reaches 4 R, rounded up to whole cells
    g = np.where(np.minimum(np.arange(n), n - np.arange(n)) <= half, np.exp(-0.5 * x**2 / r**2), 0.0)
    g /= g.sum()
    np.testing.assert_allclose(out.numpy(), g[:, None, None] * g[None, :, None] * g[None, None, :], atol=1e-15)
    assert float(out.sum()) == pytest.approx(1.0, rel=1e-12)
    # close to the continuous Gaussian of the same radius away from the truncation
    cont = dx**3 / (2 * np.pi * r**2) ** 1.5 * np.exp(-0.5 * (x[:6] / r) ** 2)
    np.testing.assert_allclose(out.numpy()[:6, 0, 0] / out.numpy()[0, 0, 0], cont / cont[0], rtol=1e-6)


def test_gaussian_smoothing_never_rings_below_zero():
    rng = np.random.default_rng(3)
    sparse = torch.from_numpy(np.where(rng.random((32, 32, 32)) > 0.995, 1e12, 0.0))
    out = gaussian_smooth(sparse, 10.0, 0.3)  # R ~ one cell: an FFT filter rings here
    assert float(out.min()) >= 0.0 and float(out.sum()) == pytest.approx(float(sparse.sum()), rel=1e-12)
    batched = gaussian_smooth(torch.stack([sparse, 2 * sparse]), 10.0, 0.3)
    assert torch.allclose(batched[1], 2 * out)


def test_hi_mass_sets_star_forming_gas_neutral():
    m = hi_mass(torch.tensor([2.0, 2.0, 2.0]), torch.tensor([0.1, 0.5, 0.0]), torch.tensor([0.0, 1.0, 3.0]), 0.76)
    assert m.tolist() == pytest.approx([2 * 0.76 * 0.1, 2 * 0.76, 2 * 0.76])


def test_brightness_temperature_hand_case():
    c = Cosmology(omega_m=0.3, h=0.7)
    # rho_HI = rho_c  ->  T_b = 189 h (1+z)^2 / E(z) mK; at z = 1, E = sqrt(0.3 * 8 + 0.7)
    tb = brightness_temperature(torch.tensor(RHO_CRIT_H2, dtype=torch.float64), c, 1.0)
    assert float(tb) == pytest.approx(189 * 0.7 * 4 / np.sqrt(0.3 * 8 + 0.7), rel=1e-12)
    # Omega_HI = 4e-4 at z = 0 gives 189 h 4e-4 mK (Villaescusa-Navarro et al. 2018)
    tb0 = brightness_temperature(torch.tensor(4e-4 * RHO_CRIT_H2, dtype=torch.float64), c, 0.0)
    assert float(tb0) == pytest.approx(189 * 0.7 * 4e-4, rel=1e-12)

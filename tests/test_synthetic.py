"""The synthetic CAMELS-format simulations: physical checks and the file contract.

One 64^3-particle simulation in 25 Mpc/h is made once per module (a few seconds); the
determinism tests use 32^3 particles.
"""

from __future__ import annotations

import hashlib
import os

import h5py
import numpy as np
import pytest
import torch

from lodi_core.data.camels import read_catalogue, read_snapshot
from lodi_core.data.synthetic import (
    X_H,
    HIModel,
    friends_of_friends,
    halo_hi_masses,
    halo_properties,
    initial_conditions,
    lattice,
    linear_density_k,
    lpt_displacements,
    make_simulation,
    particle_mass,
    run_pm,
    write_snapshot,
)
from lodi_core.physics.cosmology import RHO_CRIT_H2, Cosmology, _colossus
from lodi_core.physics.fields import cic, fourier_wavenumbers
from lodi_core.physics.spectra import cross_power_spectrum, overdensity, power_spectrum

COSMO = Cosmology()
BOX, NP, SEED = 25.0, 64, 3  # m_p = 5e9 Msun/h: a few hundred FoF halos


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    timings = {}
    out = make_simulation(root, "CV_0", SEED, n_particles=NP, box_size=BOX, progress=False, timings=timings)
    return root, out, timings


@pytest.fixture(scope="module")
def halos_of_sim(sim):
    """FoF halos recomputed from the written hydro snapshot's DM (float64 coordinates)."""
    _, out, _ = sim
    dm, _ = read_snapshot(out["hydro"], 1, ["Coordinates", "Velocities"], BOX, 0.0)
    labels = friends_of_friends(dm["Coordinates"], BOX, 0.2 * BOX / NP)
    return dm, halos_props(dm, labels)


def halos_props(dm, labels):
    return halo_properties(dm["Coordinates"], dm["Velocities"], labels, particle_mass(BOX, NP, COSMO), BOX, COSMO)


def _min_image(d, box):
    return d - box * torch.round(d / box)


# ----------------------------------------------------------------------------- initial conditions
def test_initial_conditions_have_the_linear_power_spectrum():
    n, box, a0 = 64, 200.0, 0.1
    ic = initial_conditions(n, box, seed=7, cosmology=COSMO, a_start=a0)
    # the coloured noise itself
    delta = torch.fft.irfftn(ic.delta_k, s=(n, n, n))
    k, pk, n_modes = power_spectrum(delta, box)
    ratio = pk / COSMO.linear_power(k)
    assert np.average(ratio, weights=n_modes) == pytest.approx(1.0, abs=0.03)
    assert np.all(np.abs(ratio - 1) < 5 * np.sqrt(2 / n_modes))
    # the particles' displacement at a_start: -div(x - q) / D1 is delta_L (2LPT adds little)
    disp = _min_image(ic.positions - lattice(n, box), box).reshape(n, n, n, 3)
    kx, ky, kz = fourier_wavenumbers(n, box)
    div_k = sum(1j * kk * torch.fft.rfftn(disp[..., i]) for i, kk in enumerate((kx, ky, kz)))
    delta_disp = -torch.fft.irfftn(div_k, s=(n, n, n)) / COSMO.growth_factor(a0)
    k, p_dd, p_ll, p_lin, n_modes = cross_power_spectrum(delta_disp, delta, box)
    low = k < 0.5 * np.pi * n / box
    assert np.average(p_ll[low] / COSMO.linear_power(k[low]), weights=n_modes[low]) == pytest.approx(1.0, abs=0.04)
    assert np.all(p_dd[low] / np.sqrt(p_ll[low] * p_lin[low]) > 0.99)  # same sign and phases
    # momenta: p = G_f (psi1 - 6/7 D1 psi2)
    gf, d1 = COSMO.kick_factor_Gf(a0), COSMO.growth_factor(a0)
    assert torch.allclose(ic.momenta, gf * (ic.psi1 - 6 / 7 * d1 * ic.psi2), rtol=1e-12, atol=1e-12)


def test_same_seed_same_field_other_seed_other_field():
    a = linear_density_k(16, 10.0, COSMO, seed=5)
    assert torch.equal(a, linear_density_k(16, 10.0, COSMO, seed=5))
    assert not torch.allclose(a, linear_density_k(16, 10.0, COSMO, seed=6))


def test_second_order_displacement_of_two_crossed_waves():
    """phi1 = A cos kx + B cos ky: lap phi2 = AB k^4 cos kx cos ky, so
    psi2 = grad phi2 = (AB k^3 / 2) (sin kx cos ky, cos kx sin ky, 0)."""
    n, box, amp_a, amp_b = 32, 10.0, 0.3, 0.2
    k = 2 * np.pi / box
    q = lattice(n, box)
    x, y = q[:, 0].reshape(n, n, n), q[:, 1].reshape(n, n, n)
    delta = -(k**2) * (amp_a * torch.cos(k * x) + amp_b * torch.cos(k * y))
    psi1, psi2 = lpt_displacements(torch.fft.rfftn(delta), n, box)
    c = amp_a * amp_b * k**3 / 2
    expect2 = torch.stack(
        [c * torch.sin(k * x) * torch.cos(k * y), c * torch.cos(k * x) * torch.sin(k * y), torch.zeros_like(x)], -1
    ).reshape(-1, 3)
    expect1 = torch.stack(
        [amp_a * k * torch.sin(k * x), amp_b * k * torch.sin(k * y), torch.zeros_like(x)], -1
    ).reshape(-1, 3)
    assert torch.allclose(psi1, expect1, atol=1e-12)
    assert torch.allclose(psi2, expect2, atol=1e-12)


# ----------------------------------------------------------------------------- particle mesh
@pytest.mark.parametrize("n_steps", [3, 10])
def test_particle_mesh_grows_a_long_mode_as_linear_theory(n_steps):
    """A small plane-wave Zel'dovich displacement grows as D(a) with few steps (FastPM factors)."""
    n, box, a0 = 32, 100.0, 0.1
    q = lattice(n, box)
    wave = torch.sin(2 * np.pi * q[:, 0] / box)
    amp = 0.02 * box / (2 * np.pi)  # delta = 0.02 D(a) / D(1) ... linear throughout
    pos, p = q.clone(), torch.zeros_like(q)
    pos[:, 0] += COSMO.growth_factor(a0) * amp * wave
    p[:, 0] = COSMO.kick_factor_Gf(a0) * amp * wave
    pos_end, p_end = run_pm(torch.remainder(pos, box), p, box, COSMO, a0, n_steps=n_steps, mesh=2 * n, progress=False)
    disp = _min_image(pos_end[:, 0] - q[:, 0], box)
    grown = float((disp * wave).sum() / (wave * wave).sum()) / amp
    momentum = float((p_end[:, 0] * wave).sum() / (wave * wave).sum()) / amp
    assert grown == pytest.approx(1.0, rel=0.02)  # D(1) = 1
    assert momentum == pytest.approx(COSMO.kick_factor_Gf(1.0), rel=0.02)
    assert float(_min_image(pos_end[:, 1:] - q[:, 1:], box).abs().max()) < 1e-6  # no transverse motion


def _divergence_density(positions, n, box):
    """-div(x - q): the density contrast of the displacement field, linear in it."""
    disp = _min_image(positions - lattice(n, box), box).reshape(n, n, n, 3)
    kx, ky, kz = fourier_wavenumbers(n, box)
    div_k = sum(1j * kk * torch.fft.rfftn(disp[..., i]) for i, kk in enumerate((kx, ky, kz)))
    return -torch.fft.irfftn(div_k, s=(n, n, n))


def test_particle_mesh_grows_a_weak_random_field_as_linear_theory():
    """sigma_8 = 0.05: every mode well below the particle Nyquist frequency grows as D(a)."""
    n, box, a0 = 32, 200.0, 0.1
    weak = Cosmology(sigma8=0.05)
    ic = initial_conditions(n, box, seed=1, cosmology=weak, a_start=a0)
    lin = torch.fft.irfftn(ic.delta_k, s=(n, n, n))
    pos, _ = run_pm(ic.positions, ic.momenta, box, weak, a0, n_steps=5, mesh=2 * n, progress=False)
    k, p_x, p_pm, p_lin, _ = cross_power_spectrum(_divergence_density(pos, n, box), lin, box)
    low = k < 0.25 * np.pi * n / box
    np.testing.assert_allclose(p_pm[low] / p_lin[low], 1.0, atol=0.05)
    assert np.all(p_x[low] / np.sqrt(p_pm[low] * p_lin[low]) > 0.999)


def test_z0_matter_spectrum_is_linear_on_large_scales_and_nonlinear_on_small(sim):
    # large scales: a 200 Mpc/h box (k_F = 0.03 h/Mpc) at the full sigma_8, against the same
    # realisation's linear field and against the linear spectrum within sampling variance
    n, box = 32, 200.0
    ic = initial_conditions(n, box, seed=2, cosmology=COSMO, a_start=0.1)
    lin = torch.fft.irfftn(ic.delta_k, s=(n, n, n))
    pos, _ = run_pm(ic.positions, ic.momenta, box, COSMO, 0.1, n_steps=10, mesh=2 * n, progress=False)
    delta = overdensity(cic(pos, box, n, dtype=torch.float64))
    k, p_x, pk, p_lin, n_modes = cross_power_spectrum(delta, lin, box, mas="CIC")
    assert pk[0] / p_lin[0] == pytest.approx(1.0, abs=0.1) and p_x[0] / np.sqrt(pk[0] * p_lin[0]) > 0.97
    first = slice(0, 3)
    theory = pk / COSMO.linear_power(k)
    sigma = np.sqrt(2.0 / n_modes[first].sum())
    assert abs(np.average(theory[first], weights=n_modes[first]) - 1.0) < max(0.25, 3 * sigma)
    # small scales: the 25 Mpc/h simulation is far above linear theory at k ~ 1-5 h/Mpc
    _, out, _ = sim
    data, _ = read_snapshot(out["dm_only"], 1, ["Coordinates"], BOX, 0.0)
    k, pk, _ = power_spectrum(overdensity(cic(data["Coordinates"], BOX, NP, dtype=torch.float64)), BOX, mas="CIC")
    small = (k > 1.0) & (k < 5.0)
    assert np.all(pk[small] / COSMO.linear_power(k[small]) > 2.0)


# ----------------------------------------------------------------------------- halos
def test_friends_of_friends_on_hand_made_particles():
    rng = np.random.default_rng(0)
    box, b = 10.0, 0.05
    a = rng.normal([2.0, 2.0, 2.0], 0.01, size=(30, 3))
    c = rng.normal([9.99, 5.0, 5.0], 0.01, size=(25, 3)) % box  # straddles the periodic edge
    small = rng.normal([6.0, 6.0, 6.0], 0.01, size=(15, 3))  # too few members
    grid = (np.stack(np.meshgrid(*[np.arange(5)] * 3, indexing="ij"), -1).reshape(-1, 3) + 0.5) * 2.0 + 0.3  # isolated
    pos = np.concatenate([grid, c, small, a])  # the bigger clump last: groups are sorted by size
    labels = friends_of_friends(pos, box, b, min_members=20)
    n_grid = len(grid)
    assert np.all(labels[:n_grid] == -1)
    assert np.all(labels[n_grid : n_grid + 25] == 1)
    assert np.all(labels[n_grid + 25 : n_grid + 40] == -1)
    assert np.all(labels[n_grid + 40 :] == 0)


def test_friends_of_friends_matches_brute_force_and_any_slab_count():
    rng = np.random.default_rng(1)
    box, b = 5.0, 0.12
    centres = rng.random((12, 3)) * box
    pos = (
        np.concatenate(
            [rng.normal(c, rng.uniform(0.03, 0.15), size=(rng.integers(5, 60), 3)) for c in centres]
            + [rng.random((300, 3)) * box]
        )
        % box
    )
    n = len(pos)
    d = pos[:, None, :] - pos[None, :, :]
    d -= box * np.round(d / box)
    adj = (d**2).sum(-1) < b**2
    comp = np.arange(n)  # brute-force components by label propagation
    while True:
        new = np.array([comp[adj[i]].min() for i in range(n)])
        if np.array_equal(new, comp):
            break
        comp = new
    labels = friends_of_friends(pos, box, b, min_members=10)
    sizes = np.bincount(comp)
    for i in range(n):
        same_group = labels == labels[i]
        if sizes[comp[i]] >= 10:
            assert np.array_equal(same_group, comp == comp[i])
        else:
            assert labels[i] == -1
    for slabs in (2, 3, 7):
        assert np.array_equal(friends_of_friends(pos, box, b, min_members=10, n_slabs=slabs), labels)


def test_fof_slabs_give_the_same_groups_on_the_simulation(halos_of_sim):
    """The slab-wise pair search (bounded memory) is exact: same groups as one query_pairs."""
    dm, halos = halos_of_sim
    reference = friends_of_friends(dm["Coordinates"], BOX, 0.2 * BOX / NP, n_slabs=1)
    assert reference.max() > 100 and np.array_equal(reference, halos.labels)
    for slabs in (3, 8):
        assert np.array_equal(
            friends_of_friends(dm["Coordinates"], BOX, 0.2 * BOX / NP, n_slabs=slabs, workers=2), reference
        )


def test_halo_properties_of_a_truncated_isothermal_sphere():
    """rho ~ r^-2 out to R: M(<r) = M r / R, so 200 rho_c is reached at r200 = 0.5 R when
    M = 200 rho_c (4/3) pi R r200^2 / ... ; the sphere straddles the periodic boundary."""
    rng = np.random.default_rng(2)
    box, radius, n = 10.0, 1.0, 4000
    r200 = 0.5 * radius
    m_total = 200 * RHO_CRIT_H2 * 4 / 3 * np.pi * r200**2 * radius  # mean density 200 rho_c within r200
    centre = np.array([0.05, 5.0, 5.0])
    direction = rng.normal(size=(n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    pos = (centre + direction * radius * rng.random((n, 1))) % box
    vel = np.array([100.0, -50.0, 0.0]) + rng.normal(0, 30, size=(n, 3))
    labels = friends_of_friends(pos, box, 0.3, min_members=20)
    assert np.all(labels == 0)
    h = halo_properties(pos, vel, labels, m_total / n, box, COSMO)
    assert len(h) == 1 and h.mass[0] == pytest.approx(m_total)
    offset = h.pos[0] - centre
    offset -= box * np.round(offset / box)
    assert np.linalg.norm(offset) < 0.05 * radius  # densest member at the cusp
    cm_offset = h.cm[0] - centre
    cm_offset -= box * np.round(cm_offset / box)
    assert np.linalg.norm(cm_offset) < 0.05 * radius  # periodic-aware centre of mass
    assert h.m200c[0] == pytest.approx(0.5 * m_total, rel=0.05)
    assert h.r200c[0] == pytest.approx(r200, rel=0.05)
    assert h.vel[0] == pytest.approx([100.0, -50.0, 0.0], abs=3.0)


def test_halo_mass_function_has_the_expected_shape(sim):
    from colossus.cosmology import cosmology as colossus_cosmology
    from colossus.lss import mass_function

    _, out, _ = sim
    _, mass, _ = read_catalogue(out["groups"], "GroupPos", "GroupMass", BOX, 0.0)
    mass = mass * 1e10
    colossus_cosmology.setCurrent(_colossus(COSMO))  # mass_function uses the current cosmology
    m_p = particle_mass(BOX, NP, COSMO)
    for n_part in (50, 200, 1000):
        threshold = n_part * m_p
        m = np.logspace(np.log10(threshold), 16, 300)
        dndlnm = mass_function.massFunction(m, 0.0, mdef="fof", model="sheth99", q_out="dndlnM")
        expected = np.trapezoid(dndlnm, np.log(m)) * BOX**3
        assert 0.5 < (mass >= threshold).sum() / expected < 2.0, (n_part, (mass >= threshold).sum(), expected)


# ----------------------------------------------------------------------------- gas and HI
def test_hi_follows_the_hi_halo_mass_relation(sim, halos_of_sim):
    _, out, timings = sim
    _, halos = halos_of_sim
    gas, _ = read_snapshot(
        out["hydro"], 0, ["Coordinates", "Masses", "NeutralHydrogenAbundance", "StarFormationRate"], BOX, 0.0
    )
    masses = gas["Masses"].astype(np.float64) * 1e10
    sfr = gas["StarFormationRate"]
    hi = masses * X_H * np.where(sfr > 0, 1.0, gas["NeutralHydrogenAbundance"].astype(np.float64))
    omega_hi = hi.sum() / (RHO_CRIT_H2 * BOX**3)
    assert 1e-4 < omega_hi < 2e-3
    assert omega_hi == pytest.approx(timings["omega_hi"], rel=1e-6)
    assert np.all(gas["NeutralHydrogenAbundance"][sfr > 0] == 1.0)
    # per halo, exactly the drawn M_HI (capped at the halo's hydrogen)
    drawn = np.minimum(halo_hi_masses(halos, SEED, HIModel()), X_H * masses[0] * halos.n_members)
    in_halo = halos.labels >= 0
    painted = np.bincount(halos.labels[in_halo], weights=hi[in_halo], minlength=len(halos))
    np.testing.assert_allclose(painted, drawn, rtol=2e-5)
    # the scatter is the model's 0.25 dex, log-normal about the mean relation
    resid = np.log10(painted / HIModel().mean_hi_mass(halos.mass))
    assert np.std(resid) == pytest.approx(0.25, abs=0.04)
    assert np.mean(resid) == pytest.approx(-0.5 * 0.25**2 * np.log(10), abs=0.04)
    # little HI outside halos
    assert hi[~in_halo].sum() < 0.01 * hi.sum()
    # star-forming cells are the innermost ones of their halo
    g0 = halos.members(0)
    d = gas["Coordinates"][g0] - halos.pos[0]
    r = np.linalg.norm(d - BOX * np.round(d / BOX), axis=1)
    sf = sfr[g0] > 0
    assert sf.any() and (~sf).any() and r[sf].max() <= r[~sf].min()


def test_another_hi_draw_is_an_independent_scatter_about_the_same_relation(halos_of_sim):
    _, halos = halos_of_sim
    model = HIModel()
    own, again, other, third = (halo_hi_masses(halos, SEED, model, d) for d in (0, 0, 1, 2))
    assert np.array_equal(own, again)
    # draw 0 is the stream the simulations were always made with
    rng = np.random.default_rng(np.random.SeedSequence([SEED, 2]))
    sigma = model.scatter_dex
    legacy = 10.0 ** (sigma * rng.standard_normal(len(halos))) * np.exp(-0.5 * (sigma * np.log(10.0)) ** 2)
    np.testing.assert_array_equal(own, model.mean_hi_mass(halos.mass) * legacy)
    # two independent 0.25 dex draws differ by sqrt(2) x 0.25 dex, unbiased
    for a, b in ((own, other), (other, third)):
        diff = np.log10(b / a)
        assert np.std(diff) == pytest.approx(np.sqrt(2) * sigma, rel=0.15)
        assert abs(np.mean(diff)) < 4 * np.sqrt(2) * sigma / np.sqrt(len(halos))
    with pytest.raises(ValueError, match="draw"):
        halo_hi_masses(halos, SEED, model, -1)


def test_another_hi_draw_keeps_the_particles_and_halos(tmp_path):
    kw = dict(n_particles=32, box_size=12.5, n_steps=5, progress=False)
    own = make_simulation(tmp_path / "a", "CV_0", 11, **kw)
    other = make_simulation(tmp_path / "b", "CV_0", 11, hi_draw=1, **kw)
    assert _digest(own["dm_only"]) == _digest(other["dm_only"])
    fields = ["Coordinates", "NeutralHydrogenAbundance", "StarFormationRate"]
    a, _ = read_snapshot(own["hydro"], 0, fields, 12.5, 0.0)
    b, _ = read_snapshot(other["hydro"], 0, fields, 12.5, 0.0)
    np.testing.assert_array_equal(a["Coordinates"], b["Coordinates"])
    assert not np.array_equal(a["NeutralHydrogenAbundance"], b["NeutralHydrogenAbundance"])
    for position, mass in (("GroupPos", "GroupMass"), ("SubhaloCM", "SubhaloMass")):
        pa, ma, _ = read_catalogue(own["groups"], position, mass, 12.5, 0.0)
        pb, mb, _ = read_catalogue(other["groups"], position, mass, 12.5, 0.0)
        assert len(ma) > 0
        np.testing.assert_array_equal(pa, pb)
        np.testing.assert_array_equal(ma, mb)


# ----------------------------------------------------------------------------- files
def test_files_have_the_camels_layout_and_units(sim):
    root, out, _ = sim
    vol = f"L{BOX:g}n{NP}"
    assert out["hydro"] == root / f"Sims/IllustrisTNG/{vol}/CV/CV_0/snapshot_090.hdf5"
    assert out["groups"] == root / f"FOF_Subfind/IllustrisTNG/{vol}/CV/CV_0/groups_090.hdf5"
    assert out["dm_only"] == root / f"Sims/IllustrisTNG_DM/{vol}/CV/CV_0/snapshot_090.hdf5"
    n = NP**3
    m_p = particle_mass(BOX, NP, COSMO)
    f_b = COSMO.omega_b / COSMO.omega_m
    with h5py.File(out["hydro"]) as f:
        hdr = f["Header"].attrs
        assert hdr["BoxSize"] == BOX * 1000 and hdr["Redshift"] == 0.0 and hdr["Time"] == 1.0
        assert hdr["HubbleParam"] == COSMO.h and hdr["Omega0"] == COSMO.omega_m and hdr["OmegaLambda"] == COSMO.omega_l
        assert hdr["OmegaBaryon"] == COSMO.omega_b and hdr["NumFilesPerSnapshot"] == 1
        assert list(hdr["NumPart_ThisFile"]) == list(hdr["NumPart_Total"]) == [n, n, 0, 0, 0, 0]
        assert list(hdr["NumPart_Total_HighWord"]) == [0] * 6
        assert hdr["MassTable"][1] * 1e10 == pytest.approx(m_p * (1 - f_b), rel=1e-9)
        gas, dm = f["PartType0"], f["PartType1"]
        expected = {
            "Coordinates": np.float64,
            "Masses": np.float32,
            "NeutralHydrogenAbundance": np.float32,
            "StarFormationRate": np.float32,
            "Velocities": np.float32,
            "ParticleIDs": np.uint64,
            "Density": np.float32,
            "InternalEnergy": np.float32,
            "ElectronAbundance": np.float32,
            "GFM_Metallicity": np.float32,
        }
        for name, dtype in expected.items():
            assert gas[name].dtype == dtype, name
            assert gas[name].shape[0] == n and np.isfinite(gas[name][...]).all(), name
        assert set(dm) == {"Coordinates", "Velocities", "ParticleIDs"}  # no Masses: MassTable[1]
        assert dm["Coordinates"].dtype == np.float64 and dm["ParticleIDs"].dtype == np.uint64
        np.testing.assert_array_equal(dm["ParticleIDs"][...], np.arange(1, n + 1))
        np.testing.assert_array_equal(gas["ParticleIDs"][...], np.arange(n + 1, 2 * n + 1))
        assert gas["Masses"][0] * 1e10 == pytest.approx(m_p * f_b, rel=1e-6)
        for part in (gas, dm):
            x = part["Coordinates"][...]
            assert x.min() >= 0 and x.max() < BOX * 1000
        # gas cells sit next to their DM particle (offset 0.1 mean separations per axis)
        d = gas["Coordinates"][...] - dm["Coordinates"][...]
        d -= BOX * 1000 * np.round(d / (BOX * 1000))
        assert np.std(d) == pytest.approx(0.1 * BOX * 1000 / NP, rel=0.05)
        # Density: comoving gas density in 1e10 (Msun/h) / (ckpc/h)^3, mass-weighted above the mean
        rho = gas["Density"][...].astype(np.float64)
        mean_density = COSMO.omega_b * RHO_CRIT_H2 / 1e10 / 1e9
        assert rho.min() > 0 and 1.5 * mean_density < rho.mean() < 1e3 * mean_density
        star_forming = gas["StarFormationRate"][...] > 0
        assert np.median(rho[star_forming]) > 3 * np.median(rho[~star_forming])  # halo centres are dense
        v = dm["Velocities"][...]
        assert 100 < np.sqrt((v**2).sum(1).mean()) < 1000  # km/s
    with h5py.File(out["dm_only"]) as f:
        assert "PartType0" not in f and set(f["PartType1"]) == {"Coordinates", "Velocities", "ParticleIDs"}
        assert f["PartType1/Coordinates"].dtype == np.float32
        assert f["Header"].attrs["MassTable"][1] * 1e10 == pytest.approx(m_p, rel=1e-9)
        assert list(f["Header"].attrs["NumPart_Total"]) == [0, n, 0, 0, 0, 0]
    with h5py.File(out["groups"]) as f:
        hdr = f["Header"].attrs
        n_groups = hdr["Ngroups_Total"]
        assert n_groups == hdr["Ngroups_ThisFile"] == hdr["Nsubgroups_Total"] == hdr["Nsubgroups_ThisFile"] > 100
        assert (
            hdr["BoxSize"] == BOX * 1000
            and hdr["Redshift"] == 0.0
            and hdr["Time"] == 1.0
            and hdr["HubbleParam"] == COSMO.h
        )
        g, s = f["Group"], f["Subhalo"]
        for name in (
            "GroupPos",
            "GroupMass",
            "GroupCM",
            "GroupLen",
            "GroupLenType",
            "GroupMassType",
            "Group_M_Crit200",
            "Group_R_Crit200",
            "GroupFirstSub",
            "GroupNsubs",
            "GroupSFR",
            "GroupVel",
        ):
            assert g[name].shape[0] == n_groups, name
        for name in (
            "SubhaloPos",
            "SubhaloCM",
            "SubhaloMass",
            "SubhaloMassType",
            "SubhaloGrNr",
            "SubhaloLen",
            "SubhaloVel",
        ):
            assert s[name].shape[0] == n_groups, name
        length, mass = g["GroupLen"][...], g["GroupMass"][...].astype(np.float64)
        assert np.all(np.diff(length) <= 0) and length.min() >= 2 * 20  # 20+ DM particles, as many gas cells
        np.testing.assert_array_equal(g["GroupLenType"][:, 0], g["GroupLenType"][:, 1])
        np.testing.assert_allclose(g["GroupMassType"][...].sum(1), mass, rtol=1e-6)
        np.testing.assert_allclose(mass * 1e10, length / 2 * m_p, rtol=1e-6)
        m200, r200 = g["Group_M_Crit200"][...].astype(np.float64), g["Group_R_Crit200"][...].astype(np.float64)
        ok = m200 > 0
        # M200c = 200 rho_c (4/3) pi R200c^3 in 1e10 Msun/h and ckpc/h
        np.testing.assert_allclose(
            m200[ok] * 1e10, 200 * RHO_CRIT_H2 * 4 / 3 * np.pi * (r200[ok] / 1000) ** 3, rtol=1e-4
        )
        assert np.median(m200 / mass) > 0.05
        for name in ("GroupPos", "GroupCM"):
            assert g[name][...].min() >= 0 and g[name][...].max() < BOX * 1000
        np.testing.assert_array_equal(g["GroupFirstSub"][...], np.arange(n_groups))
        np.testing.assert_array_equal(s["SubhaloGrNr"][...], np.arange(n_groups))
        assert np.all(g["GroupNsubs"][...] == 1)
        np.testing.assert_array_equal(s["SubhaloMass"][...], g["GroupMass"][...])
        assert g["GroupSFR"][...].sum() > 0
    # the project's loader reads them unchanged
    pos, mass, _ = read_catalogue(out["groups"], "SubhaloCM", "SubhaloMass", BOX, 0.0)
    assert len(pos) == n_groups and pos.max() < BOX
    data, _ = read_snapshot(out["dm_only"], 1, ["Coordinates", "Masses"], BOX, 0.0)
    assert data["Masses"][0] * 1e10 == pytest.approx(m_p, rel=1e-9)
    assert not [p for p in root.rglob("*") if p.name.endswith(".tmp")]
    umask = os.umask(0o022)
    os.umask(umask)
    for path in out.values():  # the usual permissions, not mkstemp's 0600
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def _digest(path):
    h = hashlib.sha256()
    with h5py.File(path) as f:

        def visit(name, obj):
            h.update(name.encode())
            for key in sorted(obj.attrs):
                h.update(key.encode() + np.asarray(obj.attrs[key]).tobytes())
            if isinstance(obj, h5py.Dataset):
                h.update(obj[...].tobytes())

        visit("/", f)
        f.visititems(visit)
    return h.hexdigest()


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    kw = dict(n_particles=32, box_size=12.5, n_steps=5, progress=False)
    first = make_simulation(tmp_path / "a", "CV_0", 11, **kw)
    again = make_simulation(tmp_path / "b", "CV_0", 11, **kw)
    other = make_simulation(tmp_path / "c", "CV_0", 12, **kw)
    assert set(first) == {"hydro", "groups", "dm_only"}
    for key in ("hydro", "groups", "dm_only"):
        assert _digest(first[key]) == _digest(again[key])
        assert _digest(first[key]) != _digest(other[key])
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_a_failed_write_leaves_neither_the_file_nor_a_temporary(tmp_path):
    path = tmp_path / "Sims" / "snapshot_090.hdf5"
    good = {1: {"Coordinates": np.zeros((4, 3)), "ParticleIDs": np.arange(1, 5)}}
    kw = dict(box_size=1.0, redshift=0.0, cosmology=COSMO, mass_table=[0, 1e10, 0, 0, 0, 0])
    with pytest.raises(ValueError):
        write_snapshot(path, {1: {"Coordinates": np.zeros((4, 3)), "ParticleIDs": np.array(["x"] * 4)}}, **kw)
    assert not path.exists() and not list(path.parent.iterdir())
    write_snapshot(path, good, **kw)
    with pytest.raises(ValueError):
        write_snapshot(path, {1: {"Coordinates": np.zeros((4, 3)), "ParticleIDs": np.array(["x"] * 4)}}, **kw)
    with h5py.File(path) as f:  # the earlier file is intact
        assert list(f["PartType1/ParticleIDs"][...]) == [1, 2, 3, 4]
    assert [p.name for p in path.parent.iterdir()] == ["snapshot_090.hdf5"]

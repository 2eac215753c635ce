"""P(k), cross spectra and r(k) against Pylians, bin by bin; metrics on known cases."""

import numpy as np
import pytest

from lodi_core.physics.spectra import correlation_coefficient, cross_power_spectrum, overdensity, pdf, power_spectrum

PKL = pytest.importorskip("Pk_library", reason="Pylians is a test extra (pip install -e '.[test]')")


@pytest.mark.parametrize("n", [16, 17, 32])
@pytest.mark.parametrize("mas", [None, "CIC"])
def test_power_spectrum_matches_pylians(n, mas):
    rng = np.random.default_rng(n)
    delta = rng.standard_normal((n, n, n)).astype(np.float32)
    ref = PKL.Pk(delta, 25.0, 0, mas, 1, verbose=False)
    k, pk, n_modes = power_spectrum(delta, 25.0, mas=mas)
    assert len(k) == len(ref.k3D)
    np.testing.assert_allclose(k, ref.k3D, rtol=1e-10)
    np.testing.assert_allclose(pk, ref.Pk[:, 0], rtol=1e-4)
    np.testing.assert_array_equal(n_modes, ref.Nmodes3D)


def test_cross_spectrum_matches_pylians():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((24,) * 3).astype(np.float32)
    b = (0.5 * a + rng.standard_normal((24,) * 3)).astype(np.float32)
    ref = PKL.XPk([a, b], 10.0, 0, ["CIC", "CIC"], 1)
    k, pab, paa, pbb, _ = cross_power_spectrum(a, b, 10.0, mas="CIC")
    np.testing.assert_allclose(pab, ref.XPk[:, 0, 0], rtol=1e-4, atol=1e-4 * np.abs(ref.XPk[:, 0, 0]).max())
    np.testing.assert_allclose(paa, ref.Pk[:, 0, 0], rtol=1e-4)
    np.testing.assert_allclose(pbb, ref.Pk[:, 0, 1], rtol=1e-4)


def test_correlation_coefficient_known_cases():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((32,) * 3)
    _, r_self, _ = correlation_coefficient(a, a, 10.0)
    np.testing.assert_allclose(r_self, 1.0, rtol=1e-12)
    _, r_ind, n_modes = correlation_coefficient(a, rng.standard_normal((32,) * 3), 10.0)
    # independent fields: r ~ N(0, 1/N_modes); allow 5 sigma per bin
    assert np.all(np.abs(r_ind) < 5 / np.sqrt(n_modes))
    _, r_neg, _ = correlation_coefficient(a, -2 * a, 10.0)
    np.testing.assert_allclose(r_neg, -1.0, rtol=1e-12)


def test_white_noise_has_flat_spectrum_with_the_right_amplitude():
    rng = np.random.default_rng(5)
    n, box = 48, 30.0
    field = rng.standard_normal((n, n, n))
    k, pk, _ = power_spectrum(field, box)
    # P = V / N^3 sigma^2 for white noise
    assert np.mean(pk[5:]) == pytest.approx((box / n) ** 3, rel=0.02)


def test_log_binning_keeps_all_modes():
    rng = np.random.default_rng(6)
    f = rng.standard_normal((16,) * 3)
    _, _, n_lin = power_spectrum(f, 5.0)
    _, _, n_log = power_spectrum(f, 5.0, n_bins=8)
    assert n_lin.sum() == n_log.sum() == (16**3 - 8) // 2 + 8 - 1  # independent modes, DC dropped


def test_overdensity_and_pdf():
    f = np.full((4, 4, 4), 2.0)
    f[0, 0, 0] = 34.0
    d = overdensity(f).numpy()
    assert d.mean() == pytest.approx(0.0, abs=1e-14)
    centres, density = pdf(np.arange(1, 101), bins=10, log10=True)
    assert np.sum(density * np.diff(np.linspace(0, 2, 11))) == pytest.approx(1.0)
    assert len(centres) == 10

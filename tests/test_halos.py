"""Halo channels (Eq. 1) on catalogues whose answer is known."""

import numpy as np
import pytest
import torch

from lodi_core.physics.fields import cell_volume
from lodi_core.physics.halos import HALO_MASS_EDGES, catalogue_mass_to_msun, channel_index, halo_channels, halo_counts


def test_channel_index_at_and_around_the_edges():
    m = np.array([1e10, 2.99e10, 3e10, 9.99e10, 1e11, 4.9e11, 5e11, 9.9e11, 1e12, 5e14])
    assert channel_index(m).tolist() == [-1, -1, 0, 0, 1, 1, 2, 2, 3, 3]
    assert halo_counts(m) == [2, 2, 2, 2]


def test_catalogue_masses_are_converted_from_1e10_msun_over_h():
    h = 0.6711
    # 0.5 x 1e10 Msun/h = 7.45e9 Msun (no channel); 6 x 1e10 Msun/h = 8.9e10 Msun (channel 1)
    msun = catalogue_mass_to_msun([0.5, 6.0, 40.0, 100.0], h)
    np.testing.assert_allclose(msun, np.array([0.5, 6.0, 40.0, 100.0]) * 1e10 / h)
    assert channel_index(msun).tolist() == [-1, 0, 2, 3]


def test_halos_land_in_their_channel_and_cell_with_their_mass():
    box, n = 10.0, 10
    pos = np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 5.0], [2.5, 0.0, 0.0], [9.0, 9.0, 9.0], [1.0, 1.0, 1.0]])
    mass = np.array([5e10, 2e11, 7e11, 3e12, 1e10])  # channels 1, 2, 3, 4 and one below the first edge
    grid = halo_channels(pos, mass, box, n)
    assert grid.shape == (4, n, n, n)
    vol = cell_volume(box, n)
    assert float(grid[0, 0, 0, 0]) == pytest.approx(5e10 / vol, rel=1e-6)  # on a grid point: all in one cell
    assert float(grid[1, 5, 5, 5]) == pytest.approx(2e11 / vol, rel=1e-6)
    # half-way between grid points 2 and 3 along x: half the mass in each
    assert float(grid[2, 2, 0, 0]) == pytest.approx(0.5 * 7e11 / vol, rel=1e-6)
    assert float(grid[2, 3, 0, 0]) == pytest.approx(0.5 * 7e11 / vol, rel=1e-6)
    totals = (grid.double().sum(dim=(1, 2, 3)) * vol).tolist()
    assert totals == pytest.approx([5e10, 2e11, 7e11, 3e12], rel=1e-6)  # the 1e10 halo is left out
    assert len(HALO_MASS_EDGES) == 4


def test_an_empty_channel_is_zero():
    grid = halo_channels(np.zeros((1, 3)), np.array([5e10]), 10.0, 8)
    assert float(grid[1:].abs().sum()) == 0.0 and torch.isfinite(grid).all()

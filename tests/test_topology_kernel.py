"""The compiled density kernel against the numpy reference path, and grids by symmetry orbit."""

from __future__ import annotations

import numpy as np
import pytest

from chasm.crystal.structure import Atom, Crystal
from chasm.density.model import SplitAtom
from chasm.examples.urea_model import build_models, example_structure
from chasm.maps.density import model_density
from chasm.maps.grids import CellGrid
from chasm.topology import density_kernel
from chasm.topology.basins import basin_grid
from chasm.topology.density_derivatives import DensityField
from chasm.topology.electrostatics import PotentialField
from chasm.topology.grid_values import on_grid
from test_topology_derivatives import crystal, level_model, points

pytestmark = pytest.mark.skipif(not density_kernel.HAVE_NUMBA, reason="numba not installed")
RNG = np.random.default_rng(5)


def _models(rng):
    """Every multipole level on N, C (l <= 4) and H (l <= 1); C spin-split."""
    n = level_model("N", 4, rng)
    n.plm[:] = rng.uniform(-0.2, 0.2, n.plm.size)
    c = level_model("C", 3, rng)
    spin_plm = rng.uniform(-0.1, 0.1, c.plm.size)
    h = level_model("H", 1, rng, lmax=1)
    return [n, SplitAtom.from_charge_and_spin(c, 0.4, spin_plm), h]


def _compare(field, x, orders=(0, 1, 2)):
    for order in orders:
        fast = field(x, order)
        ref = field._call_numpy(x.reshape(-1, 3), x.shape[:-1], order)
        for a, b in zip(fast, ref, strict=True):
            if b is None:
                assert a is None
                continue
            err = np.abs(a - b).max() / np.abs(b).max()
            assert err < 1e-10, (order, err)


@pytest.mark.parametrize("kind", ["charge", "spin"])
def test_kernel_equals_numpy_path(kind):
    cr = crystal()
    field = DensityField(cr, _models(RNG), kind)
    assert field._kernel_ok(2)
    x = points(cr, 60, RNG)
    _compare(field, x)
    # at a nucleus the copy there gives its value only (u = 0 on both paths)
    nuc = np.array([cr.frac_to_cart(a.xyz) for a in cr.atoms])
    _compare(field, nuc)


def test_kernel_threads_give_the_same_numbers():
    cr = crystal()
    field = DensityField(cr, _models(RNG), "charge")
    x = points(cr, 700, RNG)
    one = field._packed()(x, 2, threads=1)
    two = field._packed()(x, 2, threads=2)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)


def test_density_and_core_against_the_map_density():
    cr = crystal()
    models = _models(RNG)
    charge = [m.charge_model() if isinstance(m, SplitAtom) else m for m in models]
    x = points(cr, 40, RNG)
    rho, core = DensityField(cr, charge, "charge", eps=1e-14).density_and_core(x)
    np.testing.assert_allclose(rho, model_density(cr, charge, x, tail=1e-12), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(
        rho - core, model_density(cr, charge, x, core=False, tail=1e-12), rtol=1e-7, atol=1e-9
    )


def test_environment_selects_the_numpy_path(monkeypatch):
    cr = crystal()
    field = DensityField(cr, _models(RNG), "charge")
    x = points(cr, 20, RNG)
    fast = field.density_and_core(x)
    monkeypatch.setenv("CHASM_ENGINE", "numpy")
    assert not field._kernel_ok(0)
    for a, b in zip(fast, field.density_and_core(x), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_potential_short_range_kernel_equals_numpy_path():
    cr = example_structure()
    pot = PotentialField(cr, build_models(cr)[0])
    x = np.concatenate(
        [RNG.uniform(0, 1, (40, 3)) @ cr.A.T, [cr.frac_to_cart(a.xyz) for a in cr.atoms]]
    )
    fast = pot(x, 0)[0]
    ref = pot._call_numpy(x, x.shape[:-1], 0)[0] + pot.smooth(x, 0)[0] - pot.mean_short
    assert np.abs(fast - ref).max() < 1e-10 * np.abs(ref).max()
    assert not pot._kernel_ok(1)  # derivatives of the potential: numpy path


def test_symmetric_grid_evaluation_equals_every_point():
    cr = crystal()
    field = DensityField(cr, _models(RNG), "charge")
    grid = basin_grid(cr, 0.45)
    assert grid.orbits() is not None
    assert all(
        n >= m for n, m in zip(grid.shape, CellGrid.cell(cr, spacing=0.45).shape, strict=True)
    )
    (sym,) = on_grid(grid, lambda p: (field(p, order=0)[0],))
    full = field(grid.points.reshape(-1, 3), order=0)[0].reshape(grid.shape)
    np.testing.assert_allclose(sym, full, rtol=1e-12, atol=1e-12)


def test_basin_grid_falls_back_to_the_plain_grid():
    """P1 maps every grid onto itself; a grid with no symmetric shape nearby stays as is."""
    atoms = [Atom("C1", "C", (0.1, 0.2, 0.3), uiso=0.0)]
    cr = Crystal.from_parts((5.0, 6.0, 7.0, 90, 90, 90), "P 1", atoms)
    assert basin_grid(cr, 0.3).shape == CellGrid.cell(cr, spacing=0.3).shape

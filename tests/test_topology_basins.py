"""QTAIM basins on a grid: bookkeeping, sum rules, symmetry, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from chasm.crystal.structure import Atom, Crystal
from chasm.density.model import HansenCoppensAtom, SphericalAtom, SplitAtom
from chasm.errors import InputError
from chasm.topology.basins import grid_basins


def _dimer() -> Crystal:
    """N2-like pair across an inversion centre, and an O atom far away (P -1)."""
    atoms = [
        Atom("N1", "N", (0.45, 0.5, 0.5), uiso=0.0),
        Atom("O1", "O", (0.0, 0.0, 0.0), uiso=0.0),
    ]
    return Crystal.from_parts((5.5, 6.0, 6.5, 90, 90, 90), "P -1", atoms)


def test_basin_sum_rules_and_symmetry():
    cr = _dimer()
    plm = np.zeros(9)
    plm[4] = 0.1
    models = [
        SplitAtom.from_charge_and_spin(HansenCoppensAtom("N", 5.1, lmax=2, plm=plm), 0.4),
        SphericalAtom("O", "koga"),
    ]
    b = grid_basins(cr, models, spacing=0.15)
    mult = np.array([2, 1])
    # the basins share out exactly the cell integral (cores exact, valence on the grid)
    assert float(b.population @ mult) == pytest.approx(b.cell_integral, abs=1e-9)
    print(f"cell integral {b.cell_integral:.4f} e vs model {b.cell_electrons:.4f} e")
    # cores and the nuclear part of the valence exact, the rest on the grid
    assert b.cell_integral == pytest.approx(b.cell_electrons, abs=0.01)
    assert b.nna == 0
    # the O atom alone in its region of the cell keeps (nearly) all its electrons
    assert b.charge[1] == pytest.approx(0.0, abs=0.02)
    # N: its spin (monopole 0.4 μB) stays in its basin; two copies share the cell volume
    assert b.spin[0] == pytest.approx(0.4, abs=0.02)
    assert float(b.volume @ mult) == pytest.approx(cr.volume, rel=1e-9)


def test_nuclear_window_integral_is_exact():
    """The radial integral of the windowed valence equals its grid sum on a fine grid."""
    from chasm.maps.grids import CellGrid
    from chasm.topology.basins import _nuclear_valence

    cr = Crystal.from_parts(
        (4.0, 4.0, 4.0, 90, 90, 90), "P 1", [Atom("C1", "C", (0.5, 0.5, 0.5), uiso=0.0)]
    )
    grid = CellGrid.cell(cr, spacing=0.02)
    values, exact = _nuclear_valence(cr, [HansenCoppensAtom("C", 4.0)], grid)
    print(f"window: grid {grid.integrate(values):.5f} e, radial {exact[0]:.5f} e")
    assert grid.integrate(values) == pytest.approx(exact[0], abs=2e-3)


def test_basin_grid_too_large_or_bad():
    cr = _dimer()
    with pytest.raises(InputError, match="spacing"):
        grid_basins(cr, [SphericalAtom("N", "koga"), None], spacing=0.0)
    big = Crystal.from_parts(
        (300.0, 300.0, 300.0, 90, 90, 90), "P 1", [Atom("N1", "N", (0, 0, 0), uiso=0.0)]
    )
    with pytest.raises(InputError, match="memory"):
        grid_basins(big, [SphericalAtom("N", "koga")], spacing=0.05)

"""Cube and XSF files (chasm.io.volumetric) read back with ase, an independent reader."""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import pytest

from chasm.crystal.cif import read_cif
from chasm.density.radial import BOHR
from chasm.errors import InputError
from chasm.io.volumetric import write_cube, write_xsf
from chasm.maps.grids import CellGrid

ase_cube = pytest.importorskip("ase.io.cube")
ase_xsf = pytest.importorskip("ase.io.xsf")


def urea():
    return read_cif(str(files("chasm.examples").joinpath("urea.cif")))


def linear(points: np.ndarray) -> np.ndarray:
    """A test map whose value says where the point is (Cartesian Å)."""
    return 0.3 + points[..., 0] - 2.0 * points[..., 1] + 0.7 * points[..., 2]


def cell_grid():
    cr = urea()
    return cr, CellGrid.cell(cr, shape=(10, 12, 9))


def expected_atoms(cr):
    """Cell contents by brute force: every operation, wrapped into [0, 1), duplicates removed."""
    out = []
    for atom in cr.atoms:
        for rot, t in zip(cr.rotations, cr.translations, strict=True):
            x = (rot @ atom.xyz + t) % 1.0
            x[np.isclose(x, 1.0)] = 0.0
            cart = cr.frac_to_cart(x)
            if all(np.linalg.norm(cart - c) > 1e-3 for _, c in out):
                out.append((atom.element, cart))
    return out


def same_atoms(numbers, positions, expected, tol):
    from gemmi import Element

    want = sorted((Element(e).atomic_number, *np.round(c, 3)) for e, c in expected)
    got = sorted((int(z), *np.round(p, 3)) for z, p in zip(numbers, positions, strict=True))
    assert len(want) == len(got)
    for a, b in zip(want, got, strict=True):
        assert a[0] == b[0]
        assert np.allclose(a[1:], b[1:], atol=tol + 1e-3)


def test_cube_periodic_cell_round_trip(tmp_path):
    cr, grid = cell_grid()
    values = linear(grid.points)
    path = tmp_path / "map.cube"
    write_cube(path, cr, grid, values)
    with open(path) as fh:
        d = ase_cube.read_cube(fh)
    data, atoms = d["data"], d["atoms"]
    assert data.shape == grid.shape
    # values in e/bohr^3 by default
    np.testing.assert_allclose(data / BOHR**3, values, rtol=2e-5, atol=1e-5)
    # periodic convention: n points x step = the cell edge (no repeated end point)
    np.testing.assert_allclose(np.asarray(atoms.cell), cr.A.T, atol=1e-5)
    # ase's own grid geometry places every value at the right point
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in grid.shape], indexing="ij"), -1)
    pts = d["origin"] + idx @ d["spacing"]
    np.testing.assert_allclose(data / BOHR**3, linear(pts), rtol=2e-5, atol=1e-4)
    same_atoms(atoms.numbers, atoms.positions, expected_atoms(cr), 1e-5)
    assert len(atoms) == 16


def test_cube_unit_and_explicit_atoms(tmp_path):
    cr, grid = cell_grid()
    values = linear(grid.points)
    path = tmp_path / "a3.cube"
    write_cube(path, cr, grid, values, atoms=[("Cu", (1.0, 2.0, 3.0))], density_unit="e/A^3")
    data, atoms = ase_cube.read_cube_data(str(path))
    np.testing.assert_allclose(data, values, rtol=2e-5, atol=1e-5)
    assert list(atoms.numbers) == [29]
    np.testing.assert_allclose(atoms.positions[0], (1.0, 2.0, 3.0), atol=1e-5)


def test_xsf_periodic_cell_has_the_end_points(tmp_path):
    cr, grid = cell_grid()
    values = linear(grid.points)
    path = tmp_path / "map.xsf"
    write_xsf(path, cr, grid, values)
    with open(path) as fh:
        data, origin, span, atoms = ase_xsf.read_xsf(fh, read_data=True)
    n = np.array(grid.shape)
    assert data.shape == tuple(n + 1)
    np.testing.assert_allclose(data[:-1, :-1, :-1], values, rtol=1e-9, atol=1e-9)
    # the extra planes repeat the first ones (periodic general grid)
    np.testing.assert_allclose(data[-1], data[0], rtol=0, atol=0)
    np.testing.assert_allclose(data[:, -1], data[:, 0], rtol=0, atol=0)
    np.testing.assert_allclose(data[:, :, -1], data[:, :, 0], rtol=0, atol=0)
    # the spanning vectors are the cell edges; the grid spacing is span / (n_written - 1)
    np.testing.assert_allclose(span, cr.A.T, atol=1e-9)
    np.testing.assert_allclose(np.asarray(atoms.cell), cr.A.T, atol=1e-9)
    idx = np.stack(np.meshgrid(*[np.arange(k) for k in n], indexing="ij"), -1)
    pts = origin + idx @ (span / n[:, None])
    np.testing.assert_allclose(data[:-1, :-1, :-1], linear(pts), rtol=1e-8, atol=1e-8)
    same_atoms(atoms.numbers, atoms.positions, expected_atoms(cr), 1e-8)


def test_box_grids_round_trip(tmp_path):
    cr = urea()
    box = CellGrid.box(cr, ["C1", "O1", "N1"], margin=1.0, spacing=0.25)
    values = linear(box.points)
    with open(tmp_path / "box.xsf", "w") as fh:
        fh.write("")  # an existing file is replaced
    write_xsf(tmp_path / "box.xsf", cr, box, values)
    with open(tmp_path / "box.xsf") as fh:
        data, origin, span, atoms = ase_xsf.read_xsf(fh, read_data=True)
    assert data.shape == box.shape  # no end points added: the box includes its faces
    np.testing.assert_allclose(data, values, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(origin + span.sum(axis=0), box.points[-1, -1, -1], atol=1e-9)
    labels = [label for _, label, _ in box.atoms()]
    assert len(atoms) == len(labels) and {"C1", "O1", "N1"} <= set(labels)
    write_cube(tmp_path / "box.cube", cr, box, values)
    data, atoms = ase_cube.read_cube_data(str(tmp_path / "box.cube"))
    np.testing.assert_allclose(data / BOHR**3, values, rtol=2e-5, atol=1e-5)
    assert len(atoms) == len(labels)


def test_bad_input(tmp_path):
    cr, grid = cell_grid()
    good = np.zeros(grid.shape)
    with pytest.raises(InputError, match="shape"):
        write_cube(tmp_path / "x.cube", cr, grid, np.zeros((2, 2, 2)))
    bad = good.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        write_xsf(tmp_path / "x.xsf", cr, grid, bad)
    with pytest.raises(InputError, match="density_unit"):
        write_cube(tmp_path / "x.cube", cr, grid, good, density_unit="e/nm^3")
    with pytest.raises(InputError, match="element"):
        write_cube(tmp_path / "x.cube", cr, grid, good, atoms=[("Qq", (0, 0, 0))])
    with pytest.raises(InputError, match="one word"):
        write_xsf(tmp_path / "x.xsf", cr, grid, good, name="two words")
    assert not list(tmp_path.iterdir())  # nothing half-written

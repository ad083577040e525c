"""Volumetric map files: Gaussian cube and XCrySDen XSF.

Both writers take a grid object with the attributes of
:class:`chasm.maps.grids.CellGrid` (``shape``, ``origin`` (Å), ``axes``
(rows = grid steps, Å), ``periodic``) and the values on it, shape
``grid.shape``, point (i, j, k) at ``origin + i axes[0] + j axes[1] + k axes[2]``.

Gaussian cube
    Lengths in bohr (a0 = 0.529177210903 Å). Line 3: number of atoms and
    origin; lines 4-6: points per axis and the step vector; then one line per
    atom (Z, Z as the nuclear charge, x, y, z); then the values with the last
    index fastest, six per line, a new line after each run of n3 values. A
    periodic cell grid is written the way VESTA and ase read a periodic cube:
    n points per axis with step a/n, the repeated end point left out, so that
    n x step is the cell edge. Values are converted to e/bohr³ by default
    (the unit of Gaussian's density cubes, so that Σ value x voxel volume in
    bohr³ is in electrons); ``density_unit="e/A^3"`` keeps e/Å³, and
    ``"hartree/e"`` writes a potential given in e/Å in atomic units. The unit
    is named in the second comment line.

XSF (XCrySDen)
    Lengths in Å, values unchanged (e/Å³ for chasm's densities). A periodic
    grid is written as a CRYSTAL (PRIMVEC = the cell, PRIMCOORD = the cell
    contents) with a DATAGRID_3D block whose "general grid" includes the
    periodic end points: n+1 points per axis spanning the full cell edge,
    the last plane a copy of the first. A box is written as a molecule
    (ATOMS) with its n points per axis spanning (n-1) steps. Values run with
    the first index fastest.

Files are written atomically (:mod:`chasm.io.atomic`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import gemmi
import numpy as np

from chasm.density.radial import BOHR
from chasm.errors import InputError
from chasm.io.atomic import write_text_atomic

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from chasm.crystal.structure import Crystal


class VolumetricGrid(Protocol):
    """What the writers read of a grid (:class:`chasm.maps.grids.CellGrid` has it)."""

    shape: tuple[int, int, int]
    origin: np.ndarray  # Cartesian Å
    axes: np.ndarray  # (3, 3), one step per row, Å
    periodic: bool

    def atoms(self) -> list[tuple[str, str, np.ndarray]]:
        """(element, label, Cartesian Å) of the atom copies in the grid's region."""
        ...


__all__ = ["write_cube", "write_xsf"]

_UNITS = {"e/bohr^3": BOHR**3, "e/A^3": 1.0, "hartree/e": BOHR}  # the last: a potential in e/Å


def _atomic_number(symbol) -> int:
    if isinstance(symbol, (int, np.integer)):
        return int(symbol)
    z = gemmi.Element(str(symbol)).atomic_number
    if z == 0:
        raise InputError(f"unknown element {symbol!r} in the atom list")
    return int(z)


def _check(grid, values) -> np.ndarray:
    for name in ("shape", "origin", "axes", "periodic"):
        if not hasattr(grid, name):
            raise InputError(f"the grid has no {name!r}; pass a chasm.maps.grids.CellGrid")
    v = np.asarray(values, dtype=float)
    if v.shape != tuple(grid.shape):
        raise InputError(f"values have shape {v.shape}, the grid is {tuple(grid.shape)}")
    if not np.all(np.isfinite(v)):
        raise InputError("values contain NaN or infinite numbers")
    return v


def _atoms(grid, atoms) -> list[tuple[int, np.ndarray]]:
    """(Z, Cartesian Å) of the atoms to list; by default those in the grid's region."""
    if atoms is None:
        atoms = [(element, cart) for element, _, cart in grid.atoms()]
    out = []
    for item in atoms:
        symbol, cart = item[0], item[-1]
        cart = np.asarray(cart, dtype=float).reshape(-1)
        if cart.shape != (3,) or not np.all(np.isfinite(cart)):
            raise InputError(f"atom {symbol!r}: position must be three finite numbers (Å)")
        out.append((_atomic_number(symbol), cart))
    return out


def _block(values: np.ndarray, per_line: int, fmt: str) -> str:
    """Rows of ``values`` (2-D), ``per_line`` numbers per line, a new line after each row."""
    n = values.shape[1]
    full, rest = divmod(n, per_line)
    row = (fmt * per_line + "\n") * full + (fmt * rest + "\n" if rest else "")
    return "".join(row % tuple(r) for r in values)


def write_cube(
    path: str | os.PathLike,
    crystal: Crystal,
    grid: VolumetricGrid,
    values: ArrayLike,
    atoms: Sequence | None = None,
    *,
    comment: str | None = None,
    density_unit: str = "e/bohr^3",
) -> None:
    """Write a Gaussian cube file.

    Parameters
    ----------
    path : str or path
        Output file (written atomically).
    crystal : Crystal
        Supplies the title.
    grid : CellGrid
        The grid (a periodic cell grid or a box).
    values : array_like, shape grid.shape
        Map values, e/Å³.
    atoms : sequence of (element or Z, ..., cart), optional
        Atoms to list, Cartesian Å in the last item; by default the copies
        in the grid's region (``grid.atoms()``).
    comment : str, optional
        First title line (default: the crystal's name).
    density_unit : {"e/bohr^3", "e/A^3"}
        Unit of the written values.

    Raises
    ------
    InputError
        Values of the wrong shape or not finite, an unknown unit or element.
    """
    v = _check(grid, values)
    if density_unit not in _UNITS:
        raise InputError(f"density_unit must be one of {sorted(_UNITS)}, got {density_unit!r}")
    listed = _atoms(grid, atoms)
    origin = np.asarray(grid.origin, dtype=float) / BOHR + 0.0  # no "-0.000000"
    axes = np.asarray(grid.axes, dtype=float) / BOHR + 0.0
    title = (comment or f"chasm map of {crystal.name}").replace("\n", " ")
    lines = [
        title,
        f"values in {density_unit}, lengths in bohr; periodic={bool(grid.periodic)}",
        f"{len(listed):5d}{origin[0]:12.6f}{origin[1]:12.6f}{origin[2]:12.6f}",
    ]
    for n, step in zip(grid.shape, axes, strict=True):
        lines.append(f"{int(n):5d}{step[0]:12.6f}{step[1]:12.6f}{step[2]:12.6f}")
    for z, cart in listed:
        x = cart / BOHR
        lines.append(f"{z:5d}{float(z):12.6f}{x[0]:12.6f}{x[1]:12.6f}{x[2]:12.6f}")
    scaled = v * _UNITS[density_unit]
    body = _block(scaled.reshape(-1, v.shape[2]), 6, "%13.5E")
    write_text_atomic(path, "\n".join(lines) + "\n" + body)


def write_xsf(
    path: str | os.PathLike,
    crystal: Crystal,
    grid: VolumetricGrid,
    values: ArrayLike,
    atoms: Sequence | None = None,
    *,
    name: str = "chasm_map",
) -> None:
    """Write an XCrySDen XSF file with one DATAGRID_3D block.

    Parameters
    ----------
    path : str or path
        Output file (written atomically).
    crystal : Crystal
        Supplies the cell (PRIMVEC) of a periodic grid.
    grid : CellGrid
        The grid; a periodic one gets the repeated end points (module docstring).
    values : array_like, shape grid.shape
        Map values (written unchanged, e/Å³ for densities).
    atoms : sequence of (element or Z, ..., cart), optional
        Atoms to list (Cartesian Å); by default ``grid.atoms()``.
    name : str
        Name of the data block (no spaces).

    Raises
    ------
    InputError
        Values of the wrong shape or not finite, an unknown element, a name with spaces.
    """
    v = _check(grid, values)
    if not name or any(c.isspace() for c in name):
        raise InputError(f"the XSF block name must be one word, got {name!r}")
    listed = _atoms(grid, atoms)
    axes = np.asarray(grid.axes, dtype=float)
    if grid.periodic:
        data = np.pad(v, [(0, 1)] * 3, mode="wrap")
        span = axes * np.array(grid.shape, dtype=float)[:, None]
        cell = np.asarray(crystal.A, dtype=float).T + 0.0
        lines = ["CRYSTAL", "PRIMVEC"]
        lines += [f"  {r[0]:.10f} {r[1]:.10f} {r[2]:.10f}" for r in cell]
        lines += ["PRIMCOORD", f"  {len(listed)} 1"]
    else:
        data = v
        span = axes * (np.array(grid.shape, dtype=float) - 1.0)[:, None]
        lines = ["ATOMS"]
    lines += [f"  {z:3d} {c[0]:.10f} {c[1]:.10f} {c[2]:.10f}" for z, c in listed]
    o = np.asarray(grid.origin, dtype=float)
    lines += [
        "BEGIN_BLOCK_DATAGRID_3D",
        f"  {name}",
        f"  BEGIN_DATAGRID_3D_{name}",
        "  " + " ".join(str(n) for n in data.shape),
        f"  {o[0]:.10f} {o[1]:.10f} {o[2]:.10f}",
    ]
    lines += [f"  {s[0]:.10f} {s[1]:.10f} {s[2]:.10f}" for s in span]
    flat = data.transpose(2, 1, 0).reshape(-1)  # first index fastest
    full = len(flat) // 6 * 6
    body = _block(flat[:full].reshape(-1, 6), 6, " %.9E")
    if full < len(flat):
        body += _block(flat[full:].reshape(1, -1), 6, " %.9E")
    tail = ["  END_DATAGRID_3D", "END_BLOCK_DATAGRID_3D"]
    write_text_atomic(path, "\n".join(lines) + "\n" + body + "\n".join(tail) + "\n")

"""The electrostatic potential on the 0.001 au isodensity surface of the crystal.

The static charge density and the potential (:mod:`chasm.topology.electrostatics`)
are computed on a periodic cell grid; the surface is where the density crosses
the isovalue (0.001 e/bohr³ = 0.006748 e/Å³ by default), found on every grid
edge whose two ends lie on either side, with the position and the potential
interpolated linearly along the edge. In a molecular crystal this surface
wraps each molecule where it meets its neighbours' densities; it is the
crystal's surface, not that of an isolated molecule.

Outputs: ``density.cube`` (e/bohr³) and ``esp.cube`` (hartree/e = e/bohr,
the unit viewers expect to colour the density isosurface with) for VESTA,
VMD or Jmol, and a picture of the surface points coloured by the potential.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chasm.density.radial import BOHR
from chasm.errors import InputError
from chasm.maps.grids import CellGrid
from chasm.topology.density_derivatives import DensityField
from chasm.topology.electrostatics import EA_TO_KCAL, PotentialField
from chasm.topology.grid_values import on_grid

__all__ = [
    "ISO_AU",
    "IsoSurface",
    "check_grid",
    "esp_on_isodensity",
    "plot_isosurface",
    "write_cubes",
]

ISO_AU = 0.001
"""Default isovalue, e/bohr³."""
_MAX_POINTS = 4_000_000


@dataclass
class IsoSurface:
    """Density and potential on a cell grid and the isodensity-surface points."""

    grid: CellGrid
    rho: np.ndarray  # e/Å³, grid.shape
    phi: np.ndarray  # e/Å, grid.shape
    iso: float  # e/Å³
    points: np.ndarray  # (n, 3) Cartesian Å
    values: np.ndarray  # (n,) e/Å

    def stats(self) -> dict:
        """Minimum, maximum and mean of the potential on the surface (e/Å and kcal/mol)."""
        v = self.values
        if v.size == 0:
            return {"points": 0}
        return {
            "points": int(v.size),
            "min_e_per_A": float(v.min()),
            "max_e_per_A": float(v.max()),
            "mean_e_per_A": float(v.mean()),
            "min_kcal_mol": float(v.min() * EA_TO_KCAL),
            "max_kcal_mol": float(v.max() * EA_TO_KCAL),
        }


def check_grid(crystal, spacing: float) -> CellGrid:
    """The cell grid of step ``spacing`` (Å), refused when too fine or too large."""
    if not (np.isfinite(spacing) and 0.02 <= spacing <= 1.0):
        raise InputError(f"--esp-step must be between 0.02 and 1 Å, got {spacing!r}")
    grid = CellGrid.cell(crystal, spacing=spacing)
    if grid.n_points > _MAX_POINTS:
        raise InputError(
            f"--esp-step {spacing} Å gives a grid of {grid.n_points:,} points (limit "
            f"{_MAX_POINTS:,}); use a larger step (0.2-0.3 Å is enough for the surface)"
        )
    return grid


def esp_on_isodensity(
    crystal, models, spacing: float = 0.25, iso_au: float = ISO_AU, field=None
) -> IsoSurface:
    """Density, potential and the potential on the isodensity surface.

    Parameters
    ----------
    crystal, models
        The model.
    spacing : float
        Largest grid step along a cell edge, Å.
    iso_au : float
        Isovalue, e/bohr³.
    field : PotentialField, optional
        Reused if given.

    Raises
    ------
    InputError
        A grid of more than 4,000,000 points or a bad step or isovalue.
    """
    if not (np.isfinite(iso_au) and iso_au > 0):
        raise InputError(f"isodensity value must be positive (e/bohr³), got {iso_au!r}")
    grid = check_grid(crystal, spacing)
    pot = field if field is not None else PotentialField(crystal, models)
    dens = DensityField(crystal, models, "charge")
    (rho,) = on_grid(grid, lambda p: (dens(p, order=0)[0],))
    phi = pot.on_grid(grid)
    iso = iso_au / BOHR**3
    pts, vals = [], []
    base = grid.points
    for ax in range(3):
        r2 = np.roll(rho, -1, axis=ax)
        p2 = np.roll(phi, -1, axis=ax)
        cross = (rho - iso) * (r2 - iso) < 0
        t = (iso - rho[cross]) / (r2[cross] - rho[cross])
        pts.append(base[cross] + t[:, None] * grid.axes[ax])
        vals.append(phi[cross] + t * (p2[cross] - phi[cross]))
    return IsoSurface(grid, rho, phi, iso, np.concatenate(pts), np.concatenate(vals))


def write_cubes(folder, crystal, surf: IsoSurface) -> dict[str, Path]:
    """``density.cube`` (e/bohr³) and ``esp.cube`` (hartree/e) in ``folder``."""
    from chasm.io.volumetric import write_cube

    folder = Path(folder)
    dens, esp = folder / "density.cube", folder / "esp.cube"
    write_cube(dens, crystal, surf.grid, surf.rho, comment="chasm static model density")
    write_cube(
        esp,
        crystal,
        surf.grid,
        surf.phi,
        comment="chasm electrostatic potential (cell average 0)",
        density_unit="hartree/e",
    )
    return {"density": dens, "esp": esp}


def plot_isosurface(path, surf: IsoSurface, title: str = "") -> Path:
    """Picture of the isodensity-surface points coloured by the potential (red: lowest)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from chasm.io.atomic import write_bytes_atomic

    fig = plt.figure(figsize=(6.5, 5.5))
    ax = fig.add_subplot(projection="3d")
    v = surf.values
    lo, hi = (float(v.min()), float(v.max())) if v.size else (-1.0, 1.0)
    sc = ax.scatter(*surf.points.T, c=v, cmap="RdBu", vmin=lo, vmax=hi, s=2, linewidths=0)
    ax.set_xlabel("x (Å)")
    ax.set_ylabel("y (Å)")
    ax.set_zlabel("z (Å)")
    iso_au = surf.iso * BOHR**3
    ax.set_title(title or f"potential on the {iso_au:g} au isodensity surface")
    fig.colorbar(sc, ax=ax, shrink=0.7, label="φ (e/Å)")
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())
    return Path(path)

"""Residual-density analysis of Meindl & Henn (Acta Cryst. A64 (2008) 404).

On a grid over the unit cell (n1 × n2 × n3 points, periodic) every voxel is
the cube of eight neighbouring grid points. The iso-surface ρ0 of the
residual density passes through a voxel when ρ0 lies between the smallest
and the largest of its corner values. With N(ρ0) such voxels among the
n1·n2·n3 voxels, the box-counting estimate of the fractal dimension of the
iso-surface at the grid's resolution is

    df(ρ0) = log N(ρ0) / log (n1·n2·n3)^(1/3) = 3 log N(ρ0) / log(n1·n2·n3),

2 for a smooth surface (N ∝ n²), approaching 3 for a surface that fills
space (featureless noise at the grid's resolution, at ρ0 near 0). Plotted
against ρ0, Gaussian noise gives a narrow parabola-like curve centred on 0;
features the model misses (a wrong scale, unmodelled density, thermal
smearing) widen it and add shoulders or tails at large |ρ0|.

The gross residual electrons e_gross = ½ ∫_cell |ρ0| dV (electrons per cell)
measure how much density is left over, whatever its shape.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["ResidualAnalysis", "residual_analysis", "spherical_atom_residual", "voxel_ranges"]


@dataclass
class ResidualAnalysis:
    """The fractal-dimension distribution and e_gross of a residual map.

    Attributes
    ----------
    levels : ndarray
        ρ0, e/Å³ (increasing, from the map's minimum to its maximum).
    df : ndarray
        df(ρ0); NaN where no voxel is crossed.
    e_gross : float
        ½ ∫|ρ0| dV over the cell, electrons.
    rho_min, rho_max, rms : float
        Extremes and rms deviation from the mean of the grid values, e/Å³.
    grid : tuple of int
        The grid (n1, n2, n3).
    """

    levels: np.ndarray
    df: np.ndarray
    e_gross: float
    rho_min: float
    rho_max: float
    rms: float
    grid: tuple

    @property
    def df_max(self) -> float:
        """The largest df(ρ0) (near ρ0 = 0 for a clean map)."""
        return float(np.nanmax(self.df))

    @property
    def df_zero(self) -> float:
        """df at the level nearest ρ0 = 0."""
        return float(self.df[int(np.argmin(np.abs(self.levels)))])


def voxel_ranges(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest corner value of every voxel of a periodic grid (flattened)."""
    v = np.asarray(values, dtype=float)
    lo = v.copy()
    hi = v.copy()
    for axis in range(3):  # corners along each axis in turn: 2 x 2 x 2 = 8 corners
        lo = np.minimum(lo, np.roll(lo, -1, axis=axis))
        hi = np.maximum(hi, np.roll(hi, -1, axis=axis))
    return lo.ravel(), hi.ravel()


def residual_analysis(values: ArrayLike, volume: float, n_levels: int = 201) -> ResidualAnalysis:
    """df(ρ0) and e_gross of a residual density on a periodic grid over the cell.

    Parameters
    ----------
    values : ndarray, shape (n1, n2, n3)
        Residual density ρ0 at the grid points i/n1, j/n2, k/n3, e/Å³
        (e.g. :attr:`chasm.maps.fourier.FourierMap.values`).
    volume : float
        Cell volume, Å³.
    n_levels : int
        Levels ρ0 from the minimum to the maximum of the grid values.

    Returns
    -------
    ResidualAnalysis
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 3 or min(v.shape) < 2:
        raise ValueError(
            f"a residual grid must be 3-D with at least 2 points a side, got {v.shape}"
        )
    lo, hi = voxel_ranges(v)
    lo.sort()
    hi.sort()
    levels = np.linspace(v.min(), v.max(), int(n_levels))
    # crossed: lo <= rho0 < hi  ->  #(lo <= rho0) - #(hi <= rho0)
    count = np.searchsorted(lo, levels, side="right") - np.searchsorted(hi, levels, side="right")
    total = v.size
    with np.errstate(divide="ignore"):
        df = np.where(count > 0, 3.0 * np.log(np.maximum(count, 1)) / np.log(total), np.nan)
    mean = float(v.mean())
    return ResidualAnalysis(
        levels=levels,
        df=df,
        e_gross=0.5 * float(np.abs(v).sum()) * float(volume) / total,
        rho_min=float(v.min()),
        rho_max=float(v.max()),
        rms=float(np.sqrt(np.mean((v - mean) ** 2))),
        grid=tuple(int(n) for n in v.shape),
    )


def spherical_atom_residual(crystal, fit, n_levels: int = 201) -> ResidualAnalysis:
    """The residual analysis of spherical atoms (IAM, IT92) at the model's geometry.

    Same positions, displacement parameters, occupancies and dispersion as the
    refined ``crystal``, but neutral spherical atoms; their |Fc|² scaled to the
    data by least squares on F² (k = Σ Fo² Fc² / Σ Fc⁴), phases of the IAM.
    The difference from the model's own analysis is what the aspherical
    density accounts for.

    Parameters
    ----------
    crystal : Crystal
        The refined structure.
    fit : XrayFit
        Its X-ray data (Fo² on the absolute scale).
    n_levels : int
        As :func:`residual_analysis`.

    Returns
    -------
    ResidualAnalysis
    """
    from chasm.maps.fourier import residual_map
    from chasm.scattering.engine import StructureFactorEngine
    from chasm.scattering.sfcalc import default_models

    f_iam = StructureFactorEngine(crystal, default_models(crystal, "iam"), fit.hkl).compute().F
    fc2 = np.abs(f_iam) ** 2
    k = float(np.sum(fit.fo2 * fc2) / np.sum(fc2**2))
    fo = np.sqrt(np.maximum(fit.fo2, 0.0) / k)
    fmap = residual_map(crystal, fit.hkl, fo, f_iam)
    return residual_analysis(fmap.values, crystal.volume, n_levels)

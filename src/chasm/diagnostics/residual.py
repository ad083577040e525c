"""Residual-density analysis of Meindl & Henn (Acta Cryst. A64 (2008) 404).

On a grid over the unit cell (n1 × n2 × n3 points, periodic) every grid point
stands for a small box (voxel) of the cell, and two neighbouring boxes share
a face. The iso-surface ρ0 of the residual density crosses the face between
two neighbours when ρ0 lies between their values (lo <= ρ0 < hi). With
N(ρ0) crossed faces among the T = 3·n1·n2·n3 faces of the grid, the
box-counting estimate of the fractal dimension of the iso-surface is

    df(ρ0) = log N(ρ0) / log T^(1/3) = 3 log N(ρ0) / log T.

This is the count of Meindl & Henn's program jnk2RDA: their chapter
"Residual density analysis" (Electron Density and Chemical Bonding I,
Structure and Bonding 146, Springer 2012) derives from it the expectation
for uncorrelated Gaussian noise, where each face is crossed at ρ0 = 0 with
probability ½: df(0) = 3 log(T/2) / log T (2.8372 for their 49 × 49 × 49
face layers, and 2.83723(41) from jnk2RDA on 50³ Gaussian numbers) —
:func:`noise_df_zero`. A smooth surface gives 2 (N ∝ n²); the closer df(0)
comes to the noise value, the more featureless the map. Plotted against ρ0,
noise gives a narrow parabola-like curve centred on 0; features the model
misses (a wrong scale, unmodelled density, thermal smearing) lower df(0),
widen the curve and add shoulders or tails at large |ρ0|.

df depends on the grid: Meindl & Henn tie it to the resolution (2|h|max − 1
grid intervals along a, about as many as the sign changes a Fourier series to
|h|max can have along a line, so that neighbouring values are nearly
independent); a finer grid samples the same band-limited map more densely,
neighbours agree in sign more often and df(0) falls (docs/diagnostics.md).

The gross residual electrons e_gross = ½ ∫_cell |ρ0| dV (electrons per cell)
measure how much density is left over, whatever its shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from chasm.scattering.kernel import HAVE_NUMBA, _jit

__all__ = [
    "ResidualAnalysis",
    "face_ranges",
    "noise_df_zero",
    "residual_analysis",
    "spherical_atom_residual",
]


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
    df_zero : float
        df at ρ0 = 0 exactly (NaN for a map without sign changes).
    df_noise : float
        df(0) expected for uncorrelated Gaussian noise on this grid
        (:func:`noise_df_zero`): the ceiling a featureless map approaches.
    """

    levels: np.ndarray
    df: np.ndarray
    e_gross: float
    rho_min: float
    rho_max: float
    rms: float
    grid: tuple
    df_zero: float = float("nan")
    df_noise: float = float("nan")

    @property
    def df_max(self) -> float:
        """The largest df(ρ0) (near ρ0 = 0 for a clean map)."""
        return float(np.nanmax(self.df))


def face_ranges(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smaller and larger value of the two grid points on each face of a periodic grid.

    The faces are the pairs of neighbours along a, b and c in turn (3·n1·n2·n3
    of them, flattened in that order).
    """
    v = np.asarray(values, dtype=float)
    lo, hi = [], []
    for axis in range(3):
        other = np.roll(v, -1, axis=axis)
        lo.append(np.minimum(v, other).ravel())
        hi.append(np.maximum(v, other).ravel())
    return np.concatenate(lo), np.concatenate(hi)


def noise_df_zero(grid: tuple) -> float:
    """df(0) of uncorrelated Gaussian noise on a periodic grid: 3 log(T/2) / log T.

    T = 3·n1·n2·n3 faces, each crossed at ρ0 = 0 with probability ½
    (Meindl & Henn's expectation, see the module docstring).
    """
    total = 3 * int(np.prod([int(n) for n in grid]))
    return 3.0 * math.log(total / 2) / math.log(total)


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
    levels = np.linspace(v.min(), v.max(), int(n_levels))
    total = 3 * v.size  # 3·n1·n2·n3 faces
    count, at_zero = _crossed(v, levels)

    def dimension(c: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.where(c > 0, 3.0 * np.log(np.maximum(c, 1)) / np.log(total), np.nan)

    df = dimension(count)
    df_zero = float(dimension(np.array([at_zero]))[0])
    mean = float(v.mean())
    return ResidualAnalysis(
        levels=levels,
        df=df,
        e_gross=0.5 * float(np.abs(v).sum()) * float(volume) / v.size,
        rho_min=float(v.min()),
        rho_max=float(v.max()),
        rms=float(np.sqrt(np.mean((v - mean) ** 2))),
        grid=tuple(int(n) for n in v.shape),
        df_zero=df_zero,
        df_noise=noise_df_zero(v.shape),
    )


def _crossed(v: np.ndarray, levels: np.ndarray) -> tuple[np.ndarray, int]:
    """Faces crossed at each of the increasing ``levels`` and at ρ0 = 0.

    A face is crossed at ρ0 when lo <= ρ0 < hi: its count is
    #(lo <= ρ0) − #(hi <= ρ0). Compiled, one pass over the grid places each
    face's lo and hi among the levels (from the levels' even spacing, checked
    against the levels themselves) and counts them; the sums up the levels
    are exact integers, the same as sorting the faces. Without numba, the
    faces are sorted and the levels looked up in them.
    """
    levels = np.ascontiguousarray(levels, dtype=float)
    if HAVE_NUMBA:
        hist = np.zeros((2, levels.size + 1), dtype=np.int64)
        zero = np.zeros(2, dtype=np.int64)
        _face_histogram(np.ascontiguousarray(v, dtype=float), levels, hist, zero)
        cum = np.cumsum(hist, axis=1)[:, :-1]  # [0]: #(lo <= level_j), [1]: #(hi <= level_j)
        return cum[0] - cum[1], int(zero[0] - zero[1])
    lo, hi = face_ranges(v)
    lo.sort()
    hi.sort()
    at = np.append(levels, 0.0)
    count = np.searchsorted(lo, at, side="right") - np.searchsorted(hi, at, side="right")
    return count[:-1], int(count[-1])


@_jit
def _level_index(x: float, levels: np.ndarray, first: float, step: float) -> int:
    # first m with levels[m] >= x (levels.size when none): a guess from the even
    # spacing, moved until the comparisons with the levels themselves hold
    n = levels.size
    if x != x:  # NaN: below no level
        return n
    if step > 0.0:
        g = (x - first) / step
        m = 0 if g <= 0.0 else (n if g >= n else int(math.ceil(g)))
    else:
        m = 0
    while m > 0 and levels[m - 1] >= x:
        m -= 1
    while m < n and levels[m] < x:
        m += 1
    return m


@_jit
def _face_histogram(
    v: np.ndarray, levels: np.ndarray, hist: np.ndarray, zero: np.ndarray
) -> None:  # pragma: no cover - compiled
    # hist[0, m] (hist[1, m]): faces whose smaller (larger) value x has m as the
    # first index with levels[m] >= x, i.e. x <= levels[j] exactly for j >= m;
    # zero: faces with lo <= 0 and with hi <= 0
    n1, n2, n3 = v.shape
    first = levels[0]
    step = (levels[-1] - levels[0]) / (levels.size - 1) if levels.size > 1 else 0.0
    for i in range(n1):
        ip = i + 1 if i + 1 < n1 else 0
        for j in range(n2):
            jp = j + 1 if j + 1 < n2 else 0
            for k in range(n3):
                kp = k + 1 if k + 1 < n3 else 0
                x = v[i, j, k]
                for axis in range(3):
                    if axis == 0:
                        y = v[ip, j, k]
                    elif axis == 1:
                        y = v[i, jp, k]
                    else:
                        y = v[i, j, kp]
                    lo = min(x, y)
                    hi = max(x, y)
                    hist[0, _level_index(lo, levels, first, step)] += 1
                    hist[1, _level_index(hi, levels, first, step)] += 1
                    if lo <= 0.0:
                        zero[0] += 1
                    if hi <= 0.0:
                        zero[1] += 1


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

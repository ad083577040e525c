"""Reflection statistics: Fo against Fc, normal probability plot, DRK plot.

All three work on an :class:`~chasm.diagnostics.reflections.XrayFit` (Fo², σ,
Fc² on one scale, weights of the fit).

- :func:`fo_fc`: |Fo| = √max(Fo², 0) against |Fc|, with the slope of the
  least-squares line through the origin on F² (Σ Fo² Fc² / Σ Fc⁴, 1 for a
  model on the scale of the data).
- :func:`normal_probability`: the weighted residuals √w (Fo² − Fc²) sorted,
  against the normal quantiles Φ⁻¹((i − ½)/n) expected for a sample of n
  standard normal values (Abrahams & Keve, Acta Cryst. A27 (1971) 157). For
  errors that are normal with the assumed weights the points lie on a line of
  slope 1 (slope = GOF for consistent but mis-scaled weights) through 0.
- :func:`drk`: Σ Fo² / Σ Fc² in bins of sinθ/λ holding equal numbers of
  reflections (Zavodnik, Stash, Tsirelson & Feil, Acta Cryst. B55 (1999) 45);
  1 at every resolution for a model free of resolution-dependent errors
  (thermal motion, scale, extinction).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtri

from chasm.diagnostics.reflections import XrayFit

__all__ = ["DrkBins", "FoFc", "NormalProbability", "drk", "fo_fc", "normal_probability"]


@dataclass
class FoFc:
    """Fo against Fc.

    Attributes
    ----------
    f_obs, f_calc : ndarray
        |Fo| = √max(Fo², 0) and |Fc|, electrons.
    slope : float
        Σ Fo² Fc² / Σ Fc⁴ (least-squares scale of Fc² to Fo²).
    correlation : float
        Pearson correlation of |Fo| and |Fc|.
    """

    f_obs: np.ndarray
    f_calc: np.ndarray
    slope: float
    correlation: float


def fo_fc(fit: XrayFit) -> FoFc:
    """|Fo| against |Fc| of an X-ray fit; see the module docstring."""
    fo2, fc2 = np.asarray(fit.fo2, float), np.asarray(fit.fc2, float)
    fo, fc = np.sqrt(np.maximum(fo2, 0.0)), np.sqrt(np.maximum(fc2, 0.0))
    slope = float(np.sum(fo2 * fc2) / np.sum(fc2**2)) if np.any(fc2) else float("nan")
    corr = float(np.corrcoef(fo, fc)[0, 1]) if len(fo) > 1 else float("nan")
    return FoFc(fo, fc, slope, corr)


@dataclass
class NormalProbability:
    """A normal probability plot.

    Attributes
    ----------
    expected : ndarray
        Φ⁻¹((i − ½)/n), i = 1…n.
    observed : ndarray
        The weighted residuals √w (Fo² − Fc²), sorted ascending.
    slope, intercept : float
        Least-squares line observed ≈ slope·expected + intercept.
    """

    expected: np.ndarray
    observed: np.ndarray
    slope: float
    intercept: float


def normal_quantiles(n: int) -> np.ndarray:
    """Expected quantiles Φ⁻¹((i − ½)/n), i = 1…n, of a standard normal sample."""
    return ndtri((np.arange(1, n + 1) - 0.5) / n)


def normal_probability(
    fit: XrayFit | None = None, residuals: ArrayLike | None = None
) -> NormalProbability:
    """Normal probability plot of an X-ray fit (or of given residuals).

    Parameters
    ----------
    fit : XrayFit, optional
        Its residuals √w (Fo² − Fc²) are used.
    residuals : array_like, optional
        Residuals to plot instead.

    Returns
    -------
    NormalProbability
    """
    r = np.asarray(fit.weighted_residuals if residuals is None else residuals, dtype=float)
    r = np.sort(r[np.isfinite(r)])
    e = normal_quantiles(len(r))
    if len(r) > 1:
        slope, intercept = np.polyfit(e, r, 1)
    else:
        slope = intercept = float("nan")
    return NormalProbability(e, r, float(slope), float(intercept))


@dataclass
class DrkBins:
    """Σ Fo² / Σ Fc² in resolution bins.

    Attributes
    ----------
    stol_low, stol_high, stol_mean : ndarray
        Limits and mean sinθ/λ of each bin, Å⁻¹.
    ratio : ndarray
        Σ Fo² / Σ Fc² of the reflections of the bin.
    count : ndarray of int
        Reflections in the bin.
    """

    stol_low: np.ndarray
    stol_high: np.ndarray
    stol_mean: np.ndarray
    ratio: np.ndarray
    count: np.ndarray


def drk(fit: XrayFit, n_bins: int = 10) -> DrkBins:
    """The DRK plot of an X-ray fit: Σ Fo² / Σ Fc² in ``n_bins`` bins of equal counts.

    Parameters
    ----------
    fit : XrayFit
    n_bins : int
        Number of bins (fewer when there are fewer reflections).

    Returns
    -------
    DrkBins
        Bins in increasing sinθ/λ.
    """
    s = np.asarray(fit.stol, dtype=float)
    order = np.argsort(s, kind="stable")
    n_bins = max(1, min(int(n_bins), len(s)))
    groups = np.array_split(order, n_bins)
    fo2, fc2 = np.asarray(fit.fo2, float), np.asarray(fit.fc2, float)
    rows = [
        (s[g].min(), s[g].max(), s[g].mean(), fo2[g].sum() / fc2[g].sum(), len(g))
        for g in groups
        if len(g)
    ]
    lo, hi, mean, ratio, count = (np.array(c) for c in zip(*rows, strict=True))
    return DrkBins(lo, hi, mean, ratio, count.astype(int))

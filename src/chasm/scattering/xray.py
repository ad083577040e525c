"""X-ray observables: F² or |F| with scale and extinction, weights, agreement factors.

The calculated observable of one reflection is

    y_c = k y_ext(|F|²) |F|²          (kind "F2", electrons² on the data scale)
    y_c = sqrt(k y_ext(|F|²) |F|²)    (kind "F", electrons on the data scale)

with F = A + iB from the structure-factor engine (absolute scale), k the
overall scale factor and y_ext an extinction factor (1 without extinction). Its
derivatives follow from d|F|²/dp = 2 (A dA/dp + B dB/dp):

    d(k y I)/dp = k (y + I dy/dI) dI/dp,   I = |F|²,
    d(k y I)/dk = y I,   d(k y I)/dε = k I dy/dε   (ε = extinction parameter),

and for kind "F" every column is divided by 2 y_c.

Weights, agreement factors and reflection masks (True = keep) are here as
well; they work on F² data as read from an HKLF 4 file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from chasm.data.agreement import Agreement
from chasm.errors import InputError

__all__ = [
    "XrayObservables",
    "xray_observables",
    "chain_factors",
    "weights_sigma",
    "weights_shelx",
    "f_from_f2",
    "Agreement",
    "agreement_factors",
    "mask_resolution",
    "mask_i_over_sigma",
    "mask_omitted",
]

ExtinctionFunction = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]
#: ``row_factors(rows, F_rows) -> (ga, gb)`` of ``StructureFactorEngine.compute(real=True)``:
#: dy_calc/dp = ga dA/dp + gb dB/dp for the reflections ``rows`` (:func:`chain_factors`)
RowFactors = Callable[[slice, np.ndarray], tuple[np.ndarray, np.ndarray]]
_BLOCK_ROWS = 2048


@dataclass
class XrayObservables:
    """Calculated X-ray observables and their Jacobian.

    Attributes
    ----------
    y_calc : ndarray, shape (n,)
        k y_ext |F|² (kind "F2") or its square root (kind "F").
    jacobian : ndarray, shape (n, n_struct + 1 [+ 1]) or None
        dy_calc/dp, real. Columns: the structural parameters (same order as the
        engine's Jacobian), then the scale k, then the extinction parameter
        when an extinction function was given.
    names : list of str
        Column names (``parameter_names`` + [scale_name] [+ [extinction_name]]).
    fc2 : ndarray, shape (n,)
        |F|² on the absolute scale, no extinction (electrons²).
    y_ext : ndarray, shape (n,)
        Extinction factor applied to F² (ones when none).
    kind : str
        "F2" or "F".
    """

    y_calc: np.ndarray
    jacobian: np.ndarray | None
    names: list[str]
    fc2: np.ndarray
    y_ext: np.ndarray
    kind: str


def xray_observables(
    F: ArrayLike,
    dF: ArrayLike | None = None,
    scale: float = 1.0,
    extinction: ExtinctionFunction | None = None,
    kind: str = "F2",
    parameter_names: Sequence[str] | None = None,
    scale_name: str = "scale",
    extinction_name: str = "extinction",
    jacobian: bool = True,
    out: np.ndarray | None = None,
) -> XrayObservables:
    """k y_ext |F|² (or its root) and the real Jacobian w.r.t. p, k and ε.

    Parameters
    ----------
    F : array_like, complex, shape (n,)
        Structure factors (electrons, absolute scale).
    dF : array_like, complex or real, shape (n, n_struct), or None
        dF/dp from the engine (real part dA/dp, imaginary part dB/dp; a real
        array is dA/dp with dB/dp = 0). None: only the scale and extinction
        columns are produced.
    scale : float
        Overall scale k (data scale per electron²).
    extinction : callable or None
        ``extinction(fc2) -> (y, dy/dfc2, dy/dε)`` on the absolute |F|², e.g.
        ``functools.partial(shelx_exti, x=..., wavelength=..., sin2theta=...)``
        from :mod:`chasm.scattering.extinction`.
    kind : {"F2", "F"}
        Observable: intensity-like F² or amplitude |F|.
    parameter_names : sequence of str, optional
        Names of the structural columns (default ``p0, p1, ...``).
    scale_name, extinction_name : str
        Names of the extra columns.
    jacobian : bool
        Compute the Jacobian (otherwise ``jacobian`` is None).
    out : ndarray, float, shape (n, n_columns), optional
        Buffer for the Jacobian (avoids one allocation when the caller reuses it).

    Returns
    -------
    XrayObservables

    Raises
    ------
    InputError
        Unknown kind, shape mismatch, or kind "F" with k y |F|² < 0.

    Notes
    -----
    The structural block is filled in row blocks so that, apart from the output,
    only a few MB of temporaries are needed (n ≈ 15,000 × 900 parameters gives
    a 108 MB output and no second full-size array). A refinement does not
    come here for it: the engine applies :func:`chain_factors` block by block
    (``StructureFactorEngine.compute(real=True, row_factors=...)``).
    """
    F = np.asarray(F).reshape(-1)
    n = F.size
    y_calc, fc2, y_ext, dy_dext, chain, g = _observable(F, scale, extinction, kind)
    n_struct = 0
    dF_a = None if dF is None else np.asarray(dF)
    if dF_a is not None:
        if dF_a.ndim != 2 or dF_a.shape[0] != n:
            raise InputError(f"dF must have shape ({n}, n_par), got {dF_a.shape}")
        n_struct = dF_a.shape[1]
    if parameter_names is None:
        parameter_names = [f"p{i}" for i in range(n_struct)]
    if len(parameter_names) != n_struct:
        raise InputError("parameter_names does not match the columns of dF")
    names = list(parameter_names) + [scale_name]
    if extinction is not None:
        names.append(extinction_name)
    if not jacobian:
        return XrayObservables(y_calc, None, names, fc2, y_ext, kind)

    n_col = len(names)
    if out is None:
        J = np.empty((n, n_col))
    else:
        if out.shape != (n, n_col) or out.dtype != np.float64:
            raise InputError(f"out must be float64 with shape {(n, n_col)}")
        J = out
    if n_struct and dF_a is not None:
        ga, gb = g * F.real, g * F.imag
        cplx = np.iscomplexobj(dF_a)
        for b0 in range(0, n, _BLOCK_ROWS):
            b1 = min(n, b0 + _BLOCK_ROWS)
            blk = J[b0:b1, :n_struct]
            np.multiply(dF_a[b0:b1].real, ga[b0:b1, None], out=blk)
            if cplx:
                blk += dF_a[b0:b1].imag * gb[b0:b1, None]
    J[:, n_struct] = chain * y_ext * fc2
    if extinction is not None and dy_dext is not None:  # (dy_dext is set with extinction)
        J[:, n_struct + 1] = chain * scale * fc2 * dy_dext
    return XrayObservables(y_calc, J, names, fc2, y_ext, kind)


def _observable(
    F: np.ndarray, scale: float, extinction: ExtinctionFunction | None, kind: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Per reflection: y_calc, |F|², y_ext, dy_ext/dε, chain = dy_calc/d(k y I), and g.

    g is the factor in dy_calc/dp = g (A dA/dp + B dB/dp), g = chain k (y + I dy/dI) 2.
    """
    if kind not in ("F2", "F"):
        raise InputError(f"unknown observable kind {kind!r}; use 'F2' or 'F'")
    n = F.size
    fc2 = F.real * F.real + F.imag * F.imag
    dy_dext: np.ndarray | None
    if extinction is not None:
        y_ext, dy_dfc2, dy_dext = (np.asarray(v, dtype=float) for v in extinction(fc2))
    else:
        y_ext, dy_dfc2, dy_dext = np.ones(n), np.zeros(n), None
    ic = scale * y_ext * fc2
    y_calc: np.ndarray
    if kind == "F":
        if np.any(ic < 0.0):
            raise InputError("kind 'F' needs k y |F|² ≥ 0 (scale factor is negative)")
        y_calc = np.sqrt(ic)
        # d sqrt(u) = du / (2 sqrt(u)); exactly zero F gives a zero derivative
        chain = np.divide(0.5, y_calc, out=np.zeros(n), where=y_calc > 0.0)
    else:
        y_calc = ic
        chain = np.ones(n)
    g = chain * (2.0 * scale) * (y_ext + fc2 * dy_dfc2)
    return y_calc, fc2, y_ext, dy_dext, chain, g


def chain_factors(
    F: ArrayLike, scale: float = 1.0, extinction: ExtinctionFunction | None = None, kind: str = "F2"
) -> tuple[np.ndarray, np.ndarray]:
    """(ga, gb) with dy_calc/dp = ga dA/dp + gb dB/dp for every reflection.

    The structural columns of :func:`xray_observables` row by row, for the
    engine to apply while each block of its Jacobian is in cache
    (``StructureFactorEngine.compute(real=True, row_factors=...)``). Arguments
    as for :func:`xray_observables` (``extinction`` evaluated on these rows).
    """
    F = np.asarray(F).reshape(-1)
    g = _observable(F, scale, extinction, kind)[-1]
    return g * F.real, g * F.imag


# ----------------------------------------------------------------------------- weights
def _check_sigma(sigma: ArrayLike) -> np.ndarray:
    sigma = np.asarray(sigma, dtype=float)
    bad = ~(np.isfinite(sigma) & (sigma > 0.0))
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{int(bad.sum())} σ value(s) are zero, negative or not finite "
            f"(first at index {i}: {sigma[i]}); weights need σ > 0"
        )
    return sigma


def weights_sigma(sigma: ArrayLike) -> np.ndarray:
    """Statistical weights w = 1/σ².

    Parameters
    ----------
    sigma : array_like
        σ of the observations (same unit as the observation).

    Raises
    ------
    InputError
        Any σ ≤ 0 or not finite.
    """
    s = _check_sigma(sigma)
    w: np.ndarray = 1.0 / (s * s)
    return w


def weights_shelx(
    fo2: ArrayLike,
    sigma: ArrayLike,
    fc2: ArrayLike,
    a: float = 0.1,
    b: float = 0.0,
    f: float = 1.0 / 3.0,
    scale: float = 1.0,
) -> np.ndarray:
    """SHELXL weights on F²: w = 1 / (σ² + (aP)² + b k P), P = f max(Fo², 0) + (1 − f) Fc².

    SHELXL's ``WGHT a b`` with its defaults c = d = e = 0 and f = 1/3. SHELXL
    evaluates the scheme on the absolute scale (Fo², σ and Fc² divided by the
    data scale k = osf²); on the data scale that is the expression above, so
    with the data set's scale k the weighted residuals, wR2 and GooF are SHELXL's
    whatever the scale of the reflection file (k = 1: the scheme on the data
    scale).

    Parameters
    ----------
    fo2, sigma : array_like
        Observed F² and σ(F²) (data scale).
    fc2 : array_like
        Calculated F² on the data scale (k y_ext |F|²).
    a, b : float
        WGHT parameters.
    f : float
        Fraction of Fo² in P (SHELXL's sixth WGHT parameter, default 1/3).
    scale : float
        Data scale k (Fo² ≈ k |F|², > 0).

    Returns
    -------
    ndarray
        Weights (data scale⁻²).

    Notes
    -----
    These weights depend on Fc. In a refinement they are recomputed at the
    start of each cycle and treated as constants in the derivatives and the
    normal equations, as SHELXL does; the refinement therefore does not
    minimise a fixed function, and the last cycle's weights define χ².

    Raises
    ------
    InputError
        σ ≤ 0, or a non-positive weight denominator.
    """
    s = _check_sigma(sigma)
    p = f * np.maximum(np.asarray(fo2, dtype=float), 0.0) + (1.0 - f) * np.asarray(fc2, float)
    den = s * s + (a * p) ** 2 + b * float(scale) * p
    if np.any(den <= 0.0):
        raise InputError("SHELX weight denominator ≤ 0 (negative b or Fc²?)")
    w: np.ndarray = 1.0 / den
    return w


def f_from_f2(fo2: ArrayLike, sigma_f2: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """|Fo| and σ(|Fo|) from F² data, for a refinement on F.

    Fo = sqrt(max(Fo², 0)); σ(F) = sqrt(max(Fo², 0) + σ(F²)) − Fo
    = σ(F²) / (sqrt(Fo² + σ(F²)) + Fo). This equals the first-order σ(F²)/(2Fo)
    for strong reflections and stays finite (sqrt σ(F²)) at Fo² ≤ 0.

    Raises
    ------
    InputError
        σ(F²) ≤ 0.
    """
    s = _check_sigma(sigma_f2)
    fo = np.sqrt(np.maximum(np.asarray(fo2, dtype=float), 0.0))
    return fo, s / (np.sqrt(fo * fo + s) + fo)


# ----------------------------------------------------------------------------- agreement
def agreement_factors(
    fo2: ArrayLike,
    sigma: ArrayLike,
    fc2: ArrayLike,
    weights: ArrayLike | None = None,
    n_par: int = 0,
) -> Agreement:
    """R1, wR2, GOF and Rw(F) of F² data.

    Parameters
    ----------
    fo2, sigma : array_like
        Observed F² and σ(F²).
    fc2 : array_like
        Calculated F² on the data scale, k y_ext |F|².
    weights : array_like, optional
        Weights on F² (default 1/σ²).
    n_par : int
        Number of refined parameters (for the GOF).

    Returns
    -------
    Agreement
        See its attributes for the definitions.
    """
    fo2 = np.asarray(fo2, dtype=float)
    fc2 = np.asarray(fc2, dtype=float)
    sigma = _check_sigma(sigma)
    w = weights_sigma(sigma) if weights is None else np.asarray(weights, dtype=float)
    n = fo2.size
    if not (fc2.size == n and sigma.size == n and w.size == n):
        raise InputError("fo2, sigma, fc2 and weights must have the same length")
    resid = fo2 - fc2
    chi2 = float(np.sum(w * resid * resid))
    fo = np.sqrt(np.maximum(fo2, 0.0))
    fc = np.sqrt(np.maximum(fc2, 0.0))
    dfo = np.abs(fo - fc)
    gt = fo2 > 2.0 * sigma
    sum_fo, sum_fo_gt = float(np.sum(fo)), float(np.sum(fo[gt]))
    wf = 4.0 * np.maximum(fo2, 0.0) * w
    den_w2, den_wf = float(np.sum(w * fo2 * fo2)), float(np.sum(wf * fo2))
    return Agreement.of(
        "xray",
        n,
        n_par,
        chi2,
        gof=float(np.sqrt(chi2 / (n - n_par))) if n > n_par else float("inf"),
        R1=float(np.sum(dfo)) / sum_fo if sum_fo > 0 else 0.0,
        R1_gt=float(np.sum(dfo[gt])) / sum_fo_gt if sum_fo_gt > 0 else 0.0,
        n_gt=int(gt.sum()),
        wR2=float(np.sqrt(chi2 / den_w2)) if den_w2 > 0 else 0.0,
        Rw=float(np.sqrt(np.sum(wf * (fo - fc) ** 2) / den_wf)) if den_wf > 0 else 0.0,
    )


# ----------------------------------------------------------------------------- masks
def mask_resolution(
    stol: ArrayLike, smin: float | None = None, smax: float | None = None
) -> np.ndarray:
    """True for reflections with smin ≤ sinθ/λ ≤ smax (Å⁻¹); None = no limit."""
    s = np.asarray(stol, dtype=float)
    keep = np.ones(s.shape, dtype=bool)
    if smin is not None:
        keep &= s >= smin
    if smax is not None:
        keep &= s <= smax
    return keep


def mask_i_over_sigma(fo2: ArrayLike, sigma: ArrayLike, cutoff: float) -> np.ndarray:
    """True for reflections with Fo²/σ(Fo²) > cutoff (e.g. 2 for "I > 2σ(I)")."""
    s = _check_sigma(sigma)
    keep: np.ndarray = np.asarray(fo2, dtype=float) > cutoff * s
    return keep


def mask_omitted(hkl: ArrayLike, omitted: ArrayLike, friedel: bool = False) -> np.ndarray:
    """True for reflections NOT in the list ``omitted`` (SHELXL's OMIT h k l).

    Parameters
    ----------
    hkl : array_like of int, shape (n, 3)
        Indices of the data set.
    omitted : array_like of int, shape (m, 3)
        Reflections to leave out (exact index match).
    friedel : bool
        Also leave out the Friedel mates −h −k −l of the listed reflections.
    """
    h = np.asarray(hkl, dtype=np.int64).reshape(-1, 3)
    om = np.asarray(omitted, dtype=np.int64).reshape(-1, 3)
    if om.size == 0:
        return np.ones(len(h), dtype=bool)
    if friedel:
        om = np.concatenate([om, -om])
    keep: np.ndarray = ~np.isin(_hkl_key(h), _hkl_key(om))
    return keep


def _hkl_key(hkl: np.ndarray) -> np.ndarray:
    """One int64 per index triple (|h|, |k|, |l| < 2**19)."""
    off, base = 1 << 19, 1 << 20
    if np.any(np.abs(hkl) >= off):
        raise InputError("Miller index too large for mask_omitted")
    key: np.ndarray = ((hkl[:, 0] + off) * base + (hkl[:, 1] + off)) * base + (hkl[:, 2] + off)
    return key

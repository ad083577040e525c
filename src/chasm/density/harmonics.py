"""Real spherical harmonics of the Hansen-Coppens multipole model (l <= 4).

Two normalisations of the same real harmonics are used:

* density-normalised ``d_lm = M_lm * poly_lm`` (CONVENTIONS.md): the angular
  functions of the multipole density, with ``int d_00 dOmega = 1`` and
  ``int |d_lm| dOmega = 2`` for l >= 1;
* orthonormal (wavefunction-normalised) ``y_lm = N_lm * poly_lm`` with
  ``int y_lm y_l'm' dOmega = delta``. Same polynomial, same sign, so
  ``d_lm = c_lm * y_lm`` with ``c_lm = M_lm / N_lm > 0``.

Index convention (used everywhere in chasm): for a given ``lmax`` the flat
index is ``k = l**2 + j`` with, inside each l, ``j = 0`` for m = 0,
``j = 2i - 1`` for m = +i (cosine part, label ``"li+"``) and ``j = 2i`` for
m = -i (sine part, label ``"li-"``)::

    00, 10, 11+, 11-, 20, 21+, 21-, 22+, 22-, 30, ..., 44+, 44-

Arguments are unit vectors ``u = (x, y, z)`` in the atom's local frame; they
are NOT normalised here (the polynomials such as ``3 z**2 - 1`` assume
``x**2 + y**2 + z**2 = 1``).

Rotations: ``rotation_matrices(R, lmax)`` returns, for each l, the
(2l+1) x (2l+1) matrix ``D^l(R)`` in the orthonormal basis defined by::

    f(u) = sum_m c_m y_lm(u)  =>  f(R^T u) = sum_m (D^l(R) c)_m y_lm(u),

so that ``D(R1 R2) = D(R1) D(R2)``, ``D(R^T) = D(R)^T`` and the inversion
gives ``(-1)**l``. Equivalently, for row vectors of harmonics,
``y(R^T u) = y(u) @ D(R)`` (``Y @ D`` form used by the structure-factor
engine). The matrices are obtained exactly (to rounding) by projecting the
rotated harmonics on a product quadrature rule that integrates polynomials
of degree <= 8 on the sphere exactly::

    D_mm' = int y_m(u) y_m'(R^T u) dOmega = sum_k w_k y_m(u_k) y_m'(R^T u_k).

Populations of the density basis are rotated through the orthonormal basis
(``a = c * P``), because the ``d_lm`` are not orthonormal.
"""

from __future__ import annotations

from functools import cache, lru_cache
from math import pi, sqrt

import numpy as np

LMAX_SUPPORTED = 4
"""Highest multipole order implemented (hexadecapoles)."""

# Density normalisation M_lm of CONVENTIONS.md, in flat-index order (l <= 4).
_M = np.array(
    [
        1.0 / (4.0 * pi),  # 00
        1.0 / pi,  # 10      z
        1.0 / pi,  # 11+     x
        1.0 / pi,  # 11-     y
        3.0 * sqrt(3.0) / (8.0 * pi),  # 20   3z^2-1
        0.75,  # 21+     xz
        0.75,  # 21-     yz
        0.375,  # 22+    x^2-y^2
        0.75,  # 22-     xy
        10.0 / (13.0 * pi),  # 30   z(5z^2-3)
        0.3203330895838574,  # 31+   x(5z^2-1)
        0.3203330895838574,  # 31-   y(5z^2-1)
        1.0,  # 32+      (x^2-y^2)z
        2.0,  # 32-      xyz
        4.0 / (3.0 * pi),  # 33+   (x^2-3y^2)x
        4.0 / (3.0 * pi),  # 33-   (3x^2-y^2)y
        0.06941752438437611,  # 40   35z^4-30z^2+3
        0.4740025188689597,  # 41+   xz(7z^2-3)
        0.4740025188689597,  # 41-   yz(7z^2-3)
        0.3305913422894053,  # 42+   (x^2-y^2)(7z^2-1)
        0.6611826845788106,  # 42-   xy(7z^2-1)
        1.25,  # 43+     (x^2-3y^2)xz
        1.25,  # 43-     (3x^2-y^2)yz
        0.46875,  # 44+  x^4-6x^2y^2+y^4
        1.875,  # 44-    xy(x^2-y^2)
    ]
)

# Orthonormal normalisation N_lm of the same polynomials (closed forms of
# 1 / sqrt(int poly_lm^2 dOmega)).
_N = np.array(
    [
        0.5 * sqrt(1.0 / pi),
        sqrt(3.0 / (4.0 * pi)),
        sqrt(3.0 / (4.0 * pi)),
        sqrt(3.0 / (4.0 * pi)),
        0.25 * sqrt(5.0 / pi),
        0.5 * sqrt(15.0 / pi),
        0.5 * sqrt(15.0 / pi),
        0.25 * sqrt(15.0 / pi),
        0.5 * sqrt(15.0 / pi),
        0.25 * sqrt(7.0 / pi),
        0.25 * sqrt(21.0 / (2.0 * pi)),
        0.25 * sqrt(21.0 / (2.0 * pi)),
        0.25 * sqrt(105.0 / pi),
        0.5 * sqrt(105.0 / pi),
        0.25 * sqrt(35.0 / (2.0 * pi)),
        0.25 * sqrt(35.0 / (2.0 * pi)),
        3.0 / 16.0 * sqrt(1.0 / pi),
        0.75 * sqrt(5.0 / (2.0 * pi)),
        0.75 * sqrt(5.0 / (2.0 * pi)),
        0.375 * sqrt(5.0 / pi),
        0.75 * sqrt(5.0 / pi),
        0.75 * sqrt(35.0 / (2.0 * pi)),
        0.75 * sqrt(35.0 / (2.0 * pi)),
        3.0 / 16.0 * sqrt(35.0 / pi),
        0.75 * sqrt(35.0 / pi),
    ]
)

_C = _M / _N


def check_lmax(lmax: int) -> int:
    lmax_int = int(lmax)
    if lmax_int != lmax or not 0 <= lmax_int <= LMAX_SUPPORTED:
        raise ValueError(f"lmax must be an integer in 0..{LMAX_SUPPORTED}, got {lmax!r}")
    return lmax_int


def n_harmonics(lmax: int) -> int:
    """Number of real harmonics with l <= lmax, ``(lmax + 1)**2``."""
    lmax = int(lmax)
    if lmax < 0:
        raise ValueError(f"lmax must be >= 0, got {lmax}")
    return (lmax + 1) ** 2


def lm_index(lmax: int) -> list[tuple[int, int]]:
    """(l, m) of every flat index, m > 0 cosine part, m < 0 sine part.

    Parameters
    ----------
    lmax : int
        Highest order.

    Returns
    -------
    list of (int, int)
        ``[(0, 0), (1, 0), (1, 1), (1, -1), (2, 0), (2, 1), (2, -1), ...]``.
    """
    out: list[tuple[int, int]] = []
    for l in range(int(lmax) + 1):
        out.append((l, 0))
        for i in range(1, l + 1):
            out.append((l, i))
            out.append((l, -i))
    return out


def lm_labels(lmax: int) -> list[str]:
    """Labels ``"00", "10", "11+", "11-", ...`` of the flat index.

    Parameters
    ----------
    lmax : int
        Highest order.

    Returns
    -------
    list of str
        A new list on every call (made once per lmax: parameter names are
        looked up in it for every parameter written, thousands of times a
        refinement).
    """
    return list(_lm_labels(int(lmax)))


@cache
def _lm_labels(lmax: int) -> tuple[str, ...]:
    labels = []
    for l, m in lm_index(lmax):
        if m == 0:
            labels.append(f"{l}0")
        else:
            labels.append(f"{l}{abs(m)}{'+' if m > 0 else '-'}")
    return tuple(labels)


def density_norms(lmax: int) -> np.ndarray:
    """Density normalisation constants M_lm (CONVENTIONS.md), flat order.

    Parameters
    ----------
    lmax : int
        Highest order (<= 4).

    Returns
    -------
    ndarray, shape ((lmax+1)**2,)
    """
    lmax = check_lmax(lmax)
    return _M[: n_harmonics(lmax)].copy()


def wavefunction_norms(lmax: int) -> np.ndarray:
    """Orthonormal normalisation constants N_lm (y_lm = N_lm poly_lm), flat order.

    Parameters
    ----------
    lmax : int
        Highest order (<= 4).

    Returns
    -------
    ndarray, shape ((lmax+1)**2,)
    """
    lmax = check_lmax(lmax)
    return _N[: n_harmonics(lmax)].copy()


def density_to_wavefunction(lmax: int) -> np.ndarray:
    """Factors c_lm = M_lm / N_lm > 0 with d_lm = c_lm y_lm.

    A density ``sum P_lm d_lm`` equals ``sum a_lm y_lm`` with ``a = c * P``.

    Parameters
    ----------
    lmax : int
        Highest order (<= 4).

    Returns
    -------
    ndarray, shape ((lmax+1)**2,)
    """
    lmax = check_lmax(lmax)
    return _C[: n_harmonics(lmax)].copy()


def _evaluate(u: np.ndarray, lmax: int, coef: np.ndarray) -> np.ndarray:
    """coef[k] * poly_k(u) for all k, explicit polynomials, no loop over points."""
    lmax = check_lmax(lmax)
    u = np.asarray(u, dtype=float)
    if u.shape[-1:] != (3,):
        raise ValueError(f"u must have shape (..., 3), got {u.shape}")
    lead = u.shape[:-1]
    flat = u.reshape(-1, 3)
    npts = flat.shape[0]
    nh = n_harmonics(lmax)
    # Rows of `out` are contiguous: every harmonic is written in one pass.
    out = np.empty((nh, npts))
    out[0] = coef[0]
    if lmax >= 1:
        x = np.ascontiguousarray(flat[:, 0])
        y = np.ascontiguousarray(flat[:, 1])
        z = np.ascontiguousarray(flat[:, 2])
        np.multiply(z, coef[1], out=out[1])
        np.multiply(x, coef[2], out=out[2])
        np.multiply(y, coef[3], out=out[3])
    if lmax >= 2:
        z2 = z * z
        xz = x * z
        yz = y * z
        xy = x * y
        x2my2 = x * x
        x2my2 -= y * y
        t = 3.0 * coef[4] * z2
        np.subtract(t, coef[4], out=out[4])
        np.multiply(xz, coef[5], out=out[5])
        np.multiply(yz, coef[6], out=out[6])
        np.multiply(x2my2, coef[7], out=out[7])
        np.multiply(xy, coef[8], out=out[8])
    if lmax >= 3:
        # z (5 z^2 - 3), x (5 z^2 - 1), y (5 z^2 - 1)
        f = 5.0 * z2
        f -= 3.0
        np.multiply(f, z, out=out[9])
        out[9] *= coef[9]
        f += 2.0  # 5 z^2 - 1
        f *= coef[10]
        np.multiply(f, x, out=out[10])
        f *= coef[11] / coef[10]
        np.multiply(f, y, out=out[11])
        np.multiply(x2my2, z, out=out[12])
        out[12] *= coef[12]
        np.multiply(xy, z, out=out[13])
        out[13] *= coef[13]
        x2 = x * x
        y2 = y * y
        a3 = x2 - 3.0 * y2  # x^2 - 3 y^2
        b3 = 3.0 * x2 - y2  # 3 x^2 - y^2
        a3x = a3 * x
        b3y = b3 * y
        np.multiply(a3x, coef[14], out=out[14])
        np.multiply(b3y, coef[15], out=out[15])
    if lmax >= 4:
        # 35 z^4 - 30 z^2 + 3 = (35 z^2 - 30) z^2 + 3
        g = 35.0 * z2
        g -= 30.0
        g *= z2
        g += 3.0
        np.multiply(g, coef[16], out=out[16])
        g = 7.0 * z2
        g -= 3.0  # 7 z^2 - 3
        g *= coef[17]
        np.multiply(g, xz, out=out[17])
        g *= coef[18] / coef[17]
        np.multiply(g, yz, out=out[18])
        g = 7.0 * z2
        g -= 1.0  # 7 z^2 - 1
        np.multiply(g, x2my2, out=out[19])
        out[19] *= coef[19]
        np.multiply(g, xy, out=out[20])
        out[20] *= coef[20]
        np.multiply(a3x, z, out=out[21])
        out[21] *= coef[21]
        np.multiply(b3y, z, out=out[22])
        out[22] *= coef[22]
        # x^4 - 6 x^2 y^2 + y^4 = (x^2 - y^2)^2 - 4 x^2 y^2
        np.multiply(x2my2, x2my2, out=out[23])
        t = xy * xy
        t *= 4.0
        out[23] -= t
        out[23] *= coef[23]
        np.multiply(xy, x2my2, out=out[24])
        out[24] *= coef[24]
    return out.T.reshape(lead + (nh,))


def density_harmonics(u: np.ndarray, lmax: int) -> np.ndarray:
    """Density-normalised real harmonics d_lm = M_lm poly_lm (CONVENTIONS.md).

    Parameters
    ----------
    u : ndarray, shape (..., 3)
        Unit vectors (dimensionless) in the local frame; not renormalised.
    lmax : int
        Highest order, 0..4.

    Returns
    -------
    ndarray, shape (..., (lmax+1)**2)
        d_lm(u) in the flat index order (see module docstring), in 1/sr.
        The array is a transposed view (Fortran-ordered for 1-D batches);
        call ``np.ascontiguousarray`` if a C-ordered array is required.
    """
    return _evaluate(u, lmax, _M)


def wavefunction_harmonics(u: np.ndarray, lmax: int) -> np.ndarray:
    """Orthonormal real harmonics y_lm = N_lm poly_lm, same sign as d_lm.

    Parameters
    ----------
    u : ndarray, shape (..., 3)
        Unit vectors (dimensionless); not renormalised.
    lmax : int
        Highest order, 0..4.

    Returns
    -------
    ndarray, shape (..., (lmax+1)**2)
        y_lm(u) with ``int y_lm y_l'm' dOmega = delta``, in 1/sqrt(sr).
    """
    return _evaluate(u, lmax, _N)


# --------------------------------------------------------------------------
# Rotation matrices
# --------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _rotation_rule() -> tuple[np.ndarray, np.ndarray]:
    """Product rule exact for polynomials of degree <= 8 on the sphere.

    5 Gauss-Legendre nodes in cos(theta) (exact to degree 9) times 9 equally
    spaced azimuths (exact for trigonometric degree <= 8): 45 directions.
    Returns the directions (45, 3) and ``(w * Y)^T`` (25, 45) with Y the
    orthonormal harmonics at those directions.
    """
    zn, wz = np.polynomial.legendre.leggauss(5)
    nphi = 9
    phi = 2.0 * pi * (np.arange(nphi) + 0.5) / nphi
    zz, pp = np.meshgrid(zn, phi, indexing="ij")
    st = np.sqrt(1.0 - zz * zz)
    dirs = np.stack([st * np.cos(pp), st * np.sin(pp), zz], axis=-1).reshape(-1, 3)
    w = np.repeat(wz * (2.0 * pi / nphi), nphi)
    y = wavefunction_harmonics(dirs, LMAX_SUPPORTED)
    wyt = np.ascontiguousarray((y * w[:, None]).T)
    dirs.setflags(write=False)
    wyt.setflags(write=False)
    return dirs, wyt


def check_orthogonal(R: np.ndarray) -> np.ndarray:
    R = np.asarray(R, dtype=float)
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"R must have shape (..., 3, 3), got {R.shape}")
    err = np.abs(np.swapaxes(R, -1, -2) @ R - np.eye(3)).max(initial=0.0)
    if err > 1e-6:
        raise ValueError(f"R is not orthogonal (max |R^T R - 1| = {err:.2e})")
    return R


def full_matrix(R: np.ndarray, lmax: int) -> np.ndarray:
    """Dense D(R) over all l <= lmax (off-diagonal l blocks set to zero)."""
    dirs, wyt = _rotation_rule()
    nh = n_harmonics(lmax)
    # Rows of dirs @ R are (R^T u_k)^T.
    yr = wavefunction_harmonics(dirs @ R, lmax)  # (..., 45, nh)
    d = wyt[:nh] @ yr  # (..., nh, nh)
    for l in range(lmax + 1):
        lo, hi = l * l, (l + 1) ** 2
        d[..., lo:hi, :lo] = 0.0
        d[..., lo:hi, hi:] = 0.0
    return d


def rotation_matrices(R: np.ndarray, lmax: int) -> list[np.ndarray]:
    """Real-harmonic rotation matrices D^l(R), l = 0..lmax, orthonormal basis.

    Convention: if ``f(u) = sum_m c_m y_lm(u)`` then
    ``f(R^T u) = sum_m (D^l(R) c)_m y_lm(u)``; equivalently
    ``y_l(R^T u) = y_l(u) @ D^l(R)`` for row vectors. D is a homomorphism
    (``D(R1 R2) = D(R1) D(R2)``), orthogonal, and ``D(-1) = (-1)**l``.

    Parameters
    ----------
    R : ndarray, shape (3, 3) or (n, 3, 3)
        Orthogonal matrix (proper or improper), Cartesian; a stack gives
        stacked results.
    lmax : int
        Highest order, 0..4.

    Returns
    -------
    list of ndarray
        Element l has shape (2l+1, 2l+1) (or (n, 2l+1, 2l+1)), in the flat
        m order 0, +1, -1, +2, -2, ...
    """
    lmax = check_lmax(lmax)
    R = check_orthogonal(R)
    d = full_matrix(R, lmax)
    return [d[..., l * l : (l + 1) ** 2, l * l : (l + 1) ** 2].copy() for l in range(lmax + 1)]


def rotation_matrix_full(R: np.ndarray, lmax: int) -> np.ndarray:
    """Block-diagonal D(R) over all l <= lmax (orthonormal basis).

    Parameters
    ----------
    R : ndarray, shape (3, 3) or (n, 3, 3)
        Orthogonal matrix (proper or improper).
    lmax : int
        Highest order, 0..4.

    Returns
    -------
    ndarray, shape ((lmax+1)**2, (lmax+1)**2) (or stacked)
        ``y(R^T u) = y(u) @ D``; see :func:`rotation_matrices`.
    """
    lmax = check_lmax(lmax)
    R = check_orthogonal(R)
    return full_matrix(R, lmax)


def rotate_populations(P: np.ndarray, R: np.ndarray, lmax: int) -> np.ndarray:
    """Populations of the density basis for the rotated density.

    Returns P' with ``sum P'_lm d_lm(u) = sum P_lm d_lm(R^T u)``, i.e. the
    density rotated by R (``rho'(R v) = rho(v)``). Computed in the
    orthonormal basis: ``P' = D(R) (c P) / c``.

    Parameters
    ----------
    P : ndarray, shape (..., (lmax+1)**2)
        Populations (electrons, or muB for spin) in the flat index order.
    R : ndarray, shape (3, 3)
        Orthogonal matrix (proper or improper).
    lmax : int
        Highest order, 0..4.

    Returns
    -------
    ndarray, same shape as P
    """
    lmax = check_lmax(lmax)
    P = np.asarray(P, dtype=float)
    nh = n_harmonics(lmax)
    if P.shape[-1:] != (nh,):
        raise ValueError(f"P must have last dimension {nh} for lmax={lmax}, got {P.shape}")
    R = check_orthogonal(R)
    if R.shape != (3, 3):
        raise ValueError(f"R must have shape (3, 3), got {R.shape}")
    c = _C[:nh]
    d = full_matrix(R, lmax)
    return ((P * c) @ d.T) / c

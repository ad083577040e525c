"""Exact conversion between d-orbital populations and multipole populations.

A d shell whose electrons (or unpaired spins) occupy the five real d orbitals
with one common radial function ``R_3d(r)`` has the density::

    rho_d(r) = |R_3d(r)|**2 * sum_{i <= j} P_ij d_i(u) d_j(u),    u = r / |r|,

a quadratic form in the angular functions. Every product ``d_i d_j`` of two
l = 2 functions is a combination of l = 0, 2 and 4 real harmonics, so the same
density is a Hansen-Coppens multipole density with the radial function
``R(r) = |R_3d(r)|**2`` for l = 0, 2 and 4::

    rho_d(r) = R(r) * sum_{l = 0, 2, 4} sum_m P_lm d_lm(u).

The 15 orbital populations and the 15 even-l multipole populations are
related by an invertible linear map (Holladay, Leung & Coppens, Acta Cryst.
A39 (1983) 377-387; International Tables for Crystallography Vol. C (2006),
section 8.7.3, Table 8.7.3.5).

Conventions
-----------
Orbitals (``D_ORBITALS``, chasm's order, which is the order of the l = 2
harmonics ``20, 21+, 21-, 22+, 22-``), all orthonormal on the unit sphere,
``int d_i d_j dOmega = delta_ij``, with the same sign as chasm's real
harmonics (``d_i = y_2m`` of :func:`chasm.density.harmonics.wavefunction_harmonics`)::

    z2     sqrt(5 / (16 pi))  (3 z**2 - 1)
    xz     sqrt(15 / (4 pi))  x z
    yz     sqrt(15 / (4 pi))  y z
    x2-y2  sqrt(15 / (16 pi)) (x**2 - y**2)
    xy     sqrt(15 / (4 pi))  x y

Orbital populations (``ORBITAL_PAIRS``), a 15-vector: the five diagonal
populations ``P_ii`` (z2, xz, yz, x2-y2, xy), then the ten cross terms
``P_ij``, i < j, in the order (z2,xz), (z2,yz), (z2,x2-y2), (z2,xy),
(xz,yz), (xz,x2-y2), (xz,xy), (yz,x2-y2), (yz,xy), (x2-y2,xy). Each cross
term multiplies the product ``d_i d_j`` ONCE (sum over i <= j), the convention
of Holladay, Leung & Coppens (1983). In terms of the symmetric 5 x 5
population (density) matrix ``Q`` with ``rho_ang = sum_ij Q_ij d_i d_j`` over
all i, j: ``P_ii = Q_ii`` and ``P_ij = 2 Q_ij`` (i < j); see
:func:`orbital_population_matrix`. The eigenvalues of Q are the natural
occupations.

Multipoles: chasm's density-normalised ``d_lm`` (CONVENTIONS.md), flat index
``k = l**2 + j`` of :mod:`chasm.density.harmonics`; the 15 even-l entries used
here are, in that order, ``00, 20, 21+, 21-, 22+, 22-, 40, 41+, ..., 44-``
(``EVEN_INDICES`` into the 25-vector of lmax = 4).

Radial normalisation: the orbital radial function is normalised to one
electron, ``int |R_3d|**2 r**2 dr = 1``, and the multipole radial function is
chasm's density-normalised ``R_l`` with ``int R_l r**2 dr = 1``, the SAME
function for l = 0, 2 and 4 (``R_l = |R_3d|**2``; with a single-zeta Slater
3d orbital r**2 exp(-xi r) this is chasm's default for Sc-Zn, n_l = 4 and
zeta = 2 xi_3d). Then ``P00 = sum_i P_ii``: the trace counts the d electrons
(or, for a spin density, the d moment in muB), because ``int d_00 dOmega = 1``
and ``int d_lm dOmega = 0`` for l > 0. If the spherical part of the d shell
is carried by the valence monopole ``Pv`` with the same radial function, use
that population in place of P00. With different radial functions for
different l, or for l = 0 and the valence shell, the conversion is no longer
exact (Sabino & Coppens, Acta Cryst. A59 (2003) 127-131, discuss this and the
choice of the d-orbital coordinate system); the angular relation below is
then applied to the populations as refined.

The matrix is derived here by projection on the sphere (a product rule that
integrates polynomials of degree <= 9 exactly), not typed from a table. Its
inverse reproduces Table 8.7.3.5(a) of International Tables Vol. C (the
P00, P20, P40, P43+/- columns, after Holladay, Leung & Coppens 1983), e.g.
``P(z2) = 0.200 P00 + 1.039 P20 + 1.396 P40`` and the 2.094 (= 2 pi / 3)
coefficient of P43+ in the (xz, x2-y2) cross term, to the three printed
decimals, except the P40 coefficient of xz and yz (exact -0.93048, printed
-0.931). Table 8.7.3.5(b) (trigonal symmetry-adapted orbitals) agrees to
0.003 (tests/test_dorbitals.py).
"""

from __future__ import annotations

from functools import lru_cache
from math import pi

import numpy as np

from chasm.density.harmonics import (
    density_to_wavefunction,
    lm_labels,
    rotation_matrices,
    wavefunction_harmonics,
)

D_ORBITALS: tuple[str, ...] = ("z2", "xz", "yz", "x2-y2", "xy")
"""Real d orbitals in chasm's order (= l = 2 harmonics 20, 21+, 21-, 22+, 22-)."""

ORBITAL_PAIRS: tuple[tuple[int, int], ...] = tuple((i, i) for i in range(5)) + tuple(
    (i, j) for i in range(5) for j in range(i + 1, 5)
)
"""(i, j) orbital indices of the 15 orbital populations: 5 diagonal, then i < j."""

EVEN_INDICES: tuple[int, ...] = (0,) + tuple(range(4, 9)) + tuple(range(16, 25))
"""Positions of the l = 0, 2, 4 entries in chasm's 25-vector of lmax = 4."""

ODD_INDICES: tuple[int, ...] = tuple(range(1, 4)) + tuple(range(9, 16))
"""Positions of the l = 1, 3 entries (always zero for a pure d shell)."""

_N_PAIRS = len(ORBITAL_PAIRS)
_N_LM4 = 25


def orbital_pair_labels() -> list[str]:
    """Labels of the 15 orbital populations, ``"z2"`` ... ``"xy"``, ``"z2/xz"`` ...

    Returns
    -------
    list of str
        ``"a"`` for a diagonal population, ``"a/b"`` for the cross term of
        orbitals a and b, in the order of ``ORBITAL_PAIRS``.
    """
    out = []
    for i, j in ORBITAL_PAIRS:
        out.append(D_ORBITALS[i] if i == j else f"{D_ORBITALS[i]}/{D_ORBITALS[j]}")
    return out


def multipole_labels() -> list[str]:
    """Labels of the 15 even-l multipoles, ``"00", "20", "21+", ..., "44-"``.

    Returns
    -------
    list of str
    """
    labels = lm_labels(4)
    return [labels[k] for k in EVEN_INDICES]


def _sphere_rule() -> tuple[np.ndarray, np.ndarray]:
    """Directions (n, 3) and weights (n,) exact for polynomials of degree <= 9.

    Gauss-Legendre in cos(theta) with 5 nodes (exact to degree 9) times 10
    azimuths (exact for trigonometric degree <= 9). The weights sum to 4 pi.
    """
    cos_t, w_t = np.polynomial.legendre.leggauss(5)
    n_az = 10
    az = (2.0 * pi / n_az) * np.arange(n_az)
    sin_t = np.sqrt(1.0 - cos_t**2)
    u = np.empty((cos_t.size, n_az, 3))
    u[..., 0] = np.outer(sin_t, np.cos(az))
    u[..., 1] = np.outer(sin_t, np.sin(az))
    u[..., 2] = cos_t[:, None]
    weights = np.outer(w_t, np.full(n_az, 2.0 * pi / n_az))
    return u.reshape(-1, 3), weights.ravel()


@lru_cache(maxsize=1)
def _product_matrix_full() -> np.ndarray:
    """(25, 15) matrix: all lmax = 4 multipoles from the orbital populations."""
    u, w = _sphere_rule()
    y = wavefunction_harmonics(u, 4)  # (n, 25), orthonormal
    d = y[:, 4:9]  # the normalised d orbitals, D_ORBITALS order
    rows = np.array([i for i, _ in ORBITAL_PAIRS])
    cols = np.array([j for _, j in ORBITAL_PAIRS])
    products = d[:, rows] * d[:, cols]  # (n, 15)
    # Coefficients a_lm of each product on the orthonormal y_lm, then
    # P_lm = a_lm / c_lm because d_lm = c_lm y_lm.
    a = (y * w[:, None]).T @ products
    full = a / density_to_wavefunction(4)[:, None]
    full[np.abs(full) < 1e-14] = 0.0
    full.setflags(write=False)
    return full


@lru_cache(maxsize=1)
def _inverse_matrix() -> np.ndarray:
    inv = np.linalg.inv(_product_matrix_full()[list(EVEN_INDICES)])
    inv[np.abs(inv) < 1e-13] = 0.0
    inv.setflags(write=False)
    return inv


def orbital_product_matrix() -> np.ndarray:
    """Matrix M of the even-l multipole populations in terms of orbital populations.

    ``P_multipole = M @ P_orbital``, with the orbital populations in the order
    of ``ORBITAL_PAIRS`` (5 diagonal, then 10 cross terms i < j, each cross
    term counted once) and the multipoles in the order of ``EVEN_INDICES``
    (00, 20, 21+, 21-, 22+, 22-, 40, 41+, ..., 44-). Row 00 is all ones on
    the diagonal populations (the trace) and zero on the cross terms.

    Returns
    -------
    ndarray, shape (15, 15)
        Dimensionless; a fresh copy.
    """
    return _product_matrix_full()[list(EVEN_INDICES)].copy()


def inverse_product_matrix() -> np.ndarray:
    """Inverse of :func:`orbital_product_matrix`: ``P_orbital = M^-1 @ P_multipole``.

    Returns
    -------
    ndarray, shape (15, 15)
        Rows in ``ORBITAL_PAIRS`` order, columns in ``EVEN_INDICES`` order.
        Its rows are the orbital populations in terms of multipoles as
        tabulated after Holladay, Leung & Coppens (1983), e.g. the z2 row is
        (0.2, 1.0392, 0, 0, 0, 0, 1.3957, 0, ...).
    """
    return _inverse_matrix().copy()


def _as_orbital_vector(p_orb: np.ndarray) -> np.ndarray:
    p = np.asarray(p_orb, dtype=float)
    if p.shape[-1:] != (_N_PAIRS,):
        raise ValueError(f"orbital populations must have last dimension 15, got {p.shape}")
    return p


def multipoles_from_orbitals(p_orb: np.ndarray) -> np.ndarray:
    """Multipole populations (lmax = 4, chasm's order) of a d-orbital density.

    Parameters
    ----------
    p_orb : ndarray, shape (..., 15)
        Orbital populations in the order of ``ORBITAL_PAIRS``, in electrons
        (or muB for a spin density).

    Returns
    -------
    ndarray, shape (..., 25)
        P_lm for l <= 4 in chasm's flat order, same unit; the l = 1 and 3
        entries are exactly zero. ``P00`` equals the trace ``sum P_ii``.
    """
    p = _as_orbital_vector(p_orb)
    return p @ _product_matrix_full().T


def orbitals_from_multipoles(plm: np.ndarray, odd_tol: float = 1e-10) -> np.ndarray:
    """Orbital populations of a multipole density with l = 0, 2, 4 only.

    Parameters
    ----------
    plm : ndarray, shape (..., 25)
        Multipole populations for lmax = 4 in chasm's flat order (electrons
        or muB). P00 must be the population of the spherical term with the
        same radial function as l = 2, 4 (see the module docstring).
    odd_tol : float, optional
        Largest |P_lm| accepted for l = 1, 3 (same unit as ``plm``). A d
        shell has no odd-l density; larger values raise ValueError.

    Returns
    -------
    ndarray, shape (..., 15)
        Orbital populations in the order of ``ORBITAL_PAIRS``.

    Raises
    ------
    ValueError
        If the last dimension is not 25 or an odd-l entry exceeds ``odd_tol``.
    """
    p = np.asarray(plm, dtype=float)
    if p.shape[-1:] != (_N_LM4,):
        raise ValueError(f"plm must have last dimension 25 (lmax = 4), got {p.shape}")
    odd = np.abs(p[..., list(ODD_INDICES)]).max(initial=0.0)
    if odd > odd_tol:
        raise ValueError(
            f"odd-l multipoles (max |P_lm| = {odd:.3g}) cannot come from a d shell; "
            f"tolerance {odd_tol:.3g}"
        )
    return p[..., list(EVEN_INDICES)] @ _inverse_matrix().T


def orbital_population_matrix(p_orb: np.ndarray) -> np.ndarray:
    """Symmetric 5 x 5 population matrix Q of the orbital populations.

    ``rho_ang(u) = sum_{i,j} Q_ij d_i(u) d_j(u)`` over all i, j, so
    ``Q_ii = P_ii`` and ``Q_ij = Q_ji = P_ij / 2`` for the cross terms.
    Under a rotation with d-orbital matrix D (:func:`orbital_rotation`) it
    transforms as ``Q' = D Q D^T``.

    Parameters
    ----------
    p_orb : ndarray, shape (..., 15)
        Orbital populations in the order of ``ORBITAL_PAIRS``.

    Returns
    -------
    ndarray, shape (..., 5, 5)
        Rows and columns in ``D_ORBITALS`` order, same unit as ``p_orb``.
    """
    p = _as_orbital_vector(p_orb)
    q = np.zeros(p.shape[:-1] + (5, 5))
    for k, (i, j) in enumerate(ORBITAL_PAIRS):
        if i == j:
            q[..., i, i] = p[..., k]
        else:
            q[..., i, j] = q[..., j, i] = 0.5 * p[..., k]
    return q


def orbitals_from_population_matrix(q: np.ndarray) -> np.ndarray:
    """Orbital populations (15-vector) of a 5 x 5 population matrix.

    Inverse of :func:`orbital_population_matrix`; the matrix is symmetrised
    first, so ``P_ij = Q_ij + Q_ji`` for i < j.

    Parameters
    ----------
    q : ndarray, shape (..., 5, 5)
        Population matrix in ``D_ORBITALS`` order.

    Returns
    -------
    ndarray, shape (..., 15)
        Orbital populations in the order of ``ORBITAL_PAIRS``.
    """
    q = np.asarray(q, dtype=float)
    if q.shape[-2:] != (5, 5):
        raise ValueError(f"q must have shape (..., 5, 5), got {q.shape}")
    i = np.array([a for a, _ in ORBITAL_PAIRS])
    j = np.array([b for _, b in ORBITAL_PAIRS])
    return np.where(i == j, q[..., i, j], q[..., i, j] + q[..., j, i])


def natural_orbitals(p_orb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Natural occupations and orbitals of a d-orbital population set.

    Diagonalises the population matrix, ``Q = C diag(n) C^T``.

    Parameters
    ----------
    p_orb : ndarray, shape (15,)
        Orbital populations in the order of ``ORBITAL_PAIRS``.

    Returns
    -------
    occupations : ndarray, shape (5,)
        Eigenvalues of Q in decreasing order (electrons, or muB for a spin
        density, where negative values are allowed). They sum to the trace.
    coefficients : ndarray, shape (5, 5)
        Column k holds the natural orbital k as a combination of the
        ``D_ORBITALS``; the sign of each column is fixed so that its largest
        component is positive.
    """
    q = orbital_population_matrix(p_orb)
    if q.ndim != 2:
        raise ValueError("natural_orbitals takes a single set of 15 populations")
    occ, vec = np.linalg.eigh(q)
    order = np.argsort(occ)[::-1]
    occ, vec = occ[order], vec[:, order]
    big = np.argmax(np.abs(vec), axis=0)
    vec = vec * np.sign(vec[big, np.arange(5)])
    return occ, vec


def orbital_rotation(R: np.ndarray) -> np.ndarray:
    """5 x 5 rotation matrix of the real d orbitals.

    With ``d(u)`` the row vector of the five orbitals, ``d(R^T u) = d(u) @ D``
    (the l = 2 block of :func:`chasm.density.harmonics.rotation_matrices`).

    Parameters
    ----------
    R : ndarray, shape (3, 3)
        Orthogonal matrix, Cartesian, in the atom's local frame.

    Returns
    -------
    ndarray, shape (5, 5)
        Orthogonal; rows and columns in ``D_ORBITALS`` order.
    """
    return rotation_matrices(R, 2)[2]


def rotate_orbital_populations(p_orb: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Orbital populations of the d density rotated by R.

    The result describes ``rho'(u) = rho(R^T u)`` (the density carried along
    by R), the same convention as
    :func:`chasm.density.harmonics.rotate_populations`: ``Q' = D Q D^T``.

    Parameters
    ----------
    p_orb : ndarray, shape (..., 15)
        Orbital populations in the order of ``ORBITAL_PAIRS``.
    R : ndarray, shape (3, 3)
        Orthogonal matrix.

    Returns
    -------
    ndarray, shape (..., 15)
    """
    d = orbital_rotation(R)
    q = orbital_population_matrix(p_orb)
    return orbitals_from_population_matrix(d @ q @ d.T)

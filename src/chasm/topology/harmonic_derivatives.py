"""Density-normalised real harmonics d_lm(u) with their gradient and Hessian in u.

The harmonics of :mod:`chasm.density.harmonics` are polynomials in the
components of a unit vector u = (x, y, z); here each one is written as a
sum of monomials c x^a y^b z^c (the same polynomial, same M_lm), so that its
value, gradient ∂d/∂u_i and Hessian ∂²d/∂u_i∂u_j follow exactly from the
exponents. The derivatives are those of the polynomial as written (with its
constant terms, e.g. 3z² − 1), not of a homogeneous extension: the chain rule
through u = v/|v| in :mod:`chasm.topology.density_derivatives` makes the
result independent of that choice.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from chasm.density.harmonics import density_norms, n_harmonics

# monomials (coefficient, (a, b, c)) of poly_lm in the flat order 00, 10, 11+, 11-, ...
_POLY: tuple[tuple[tuple[float, tuple[int, int, int]], ...], ...] = (
    ((1.0, (0, 0, 0)),),
    ((1.0, (0, 0, 1)),),
    ((1.0, (1, 0, 0)),),
    ((1.0, (0, 1, 0)),),
    ((3.0, (0, 0, 2)), (-1.0, (0, 0, 0))),
    ((1.0, (1, 0, 1)),),
    ((1.0, (0, 1, 1)),),
    ((1.0, (2, 0, 0)), (-1.0, (0, 2, 0))),
    ((1.0, (1, 1, 0)),),
    ((5.0, (0, 0, 3)), (-3.0, (0, 0, 1))),
    ((5.0, (1, 0, 2)), (-1.0, (1, 0, 0))),
    ((5.0, (0, 1, 2)), (-1.0, (0, 1, 0))),
    ((1.0, (2, 0, 1)), (-1.0, (0, 2, 1))),
    ((1.0, (1, 1, 1)),),
    ((1.0, (3, 0, 0)), (-3.0, (1, 2, 0))),
    ((3.0, (2, 1, 0)), (-1.0, (0, 3, 0))),
    ((35.0, (0, 0, 4)), (-30.0, (0, 0, 2)), (3.0, (0, 0, 0))),
    ((7.0, (1, 0, 3)), (-3.0, (1, 0, 1))),
    ((7.0, (0, 1, 3)), (-3.0, (0, 1, 1))),
    ((7.0, (2, 0, 2)), (-1.0, (2, 0, 0)), (-7.0, (0, 2, 2)), (1.0, (0, 2, 0))),
    ((7.0, (1, 1, 2)), (-1.0, (1, 1, 0))),
    ((1.0, (3, 0, 1)), (-3.0, (1, 2, 1))),
    ((3.0, (2, 1, 1)), (-1.0, (0, 3, 1))),
    ((1.0, (4, 0, 0)), (-6.0, (2, 2, 0)), (1.0, (0, 4, 0))),
    ((1.0, (3, 1, 0)), (-1.0, (1, 3, 0))),
)


@lru_cache(maxsize=8)
def monomial_basis(lmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct monomials of the harmonics up to lmax and the map onto them.

    Returns
    -------
    exps : ndarray, shape (n_mono, 3)
        Exponents (a, b, c) of x^a y^b z^c.
    T : ndarray, shape (nlm, n_mono)
        d_lm(u) = Σ_m T[lm, m] x^a_m y^b_m z^c_m (M_lm included).
    """
    norms = density_norms(lmax)
    nh = n_harmonics(lmax)
    exps = sorted({e for k in range(nh) for _, e in _POLY[k]}, key=lambda e: (sum(e), e))
    where = {e: i for i, e in enumerate(exps)}
    T = np.zeros((nh, len(exps)))
    for k in range(nh):
        for c, e in _POLY[k]:
            T[k, where[e]] += c * norms[k]
    return np.array(exps, dtype=int), T


def polynomials_with_derivatives(u: np.ndarray, exps: np.ndarray, coef: np.ndarray, order: int = 2):
    """Polynomials Σ_m coef[q, m, i] x^a_m y^b_m z^c_m of u_i with derivatives in u.

    Parameters
    ----------
    u : ndarray, shape (n, 3)
        Points.
    exps : ndarray, shape (n_mono, 3)
        Exponents (0..4) of the monomials.
    coef : ndarray, shape (n_poly, n_mono, n)
        Coefficients of each polynomial q at each point i.
    order : {0, 1, 2}
        Highest derivative computed (the others are None).

    Returns
    -------
    val : ndarray, shape (n_poly, n)
    grad : ndarray, shape (n_poly, n, 3) or None
    hess : ndarray, shape (n_poly, n, 3, 3) or None
    """
    u = np.asarray(u, dtype=float).reshape(-1, 3)
    pw = np.ones((5, 3, len(u)))
    for p in range(1, 5):
        pw[p] = pw[p - 1] * u.T
    f0 = [pw[exps[:, i], i] for i in range(3)]  # (n_mono, n) each

    def contract(f) -> np.ndarray:
        return np.einsum("qmn,mn->qn", coef, f[0] * f[1] * f[2])

    val = contract(f0)
    if order == 0:
        return val, None, None
    f1 = [exps[:, i, None] * pw[np.maximum(exps[:, i] - 1, 0), i] for i in range(3)]
    grad = np.empty(val.shape + (3,))
    for i in range(3):
        grad[..., i] = contract([f1[j] if j == i else f0[j] for j in range(3)])
    if order == 1:
        return val, grad, None
    f2 = [
        (exps[:, i] * (exps[:, i] - 1))[:, None] * pw[np.maximum(exps[:, i] - 2, 0), i]
        for i in range(3)
    ]
    hess = np.empty(val.shape + (3, 3))
    for i in range(3):
        for j in range(i, 3):
            if i == j:
                f = [f2[k] if k == i else f0[k] for k in range(3)]
            else:
                f = [f1[k] if k in (i, j) else f0[k] for k in range(3)]
            hess[..., i, j] = contract(f)
            hess[..., j, i] = hess[..., i, j]
    return val, grad, hess


def harmonics_with_derivatives(u: np.ndarray, lmax: int):
    """d_lm(u), ∂d_lm/∂u and ∂²d_lm/∂u∂u of the polynomials.

    Parameters
    ----------
    u : ndarray, shape (n, 3)
        Unit vectors (dimensionless); not renormalised.
    lmax : int
        Highest order, 0..4.

    Returns
    -------
    d : ndarray, shape (n, nlm)
        Values (1/sr), equal to :func:`chasm.density.harmonics.density_harmonics`.
    g : ndarray, shape (n, nlm, 3)
        Gradient of each polynomial with respect to u.
    h : ndarray, shape (n, nlm, 3, 3)
        Hessian with respect to u (symmetric).
    """
    exps, T = monomial_basis(lmax)
    u = np.asarray(u, dtype=float).reshape(-1, 3)
    coef = np.broadcast_to(T[:, :, None], T.shape + (len(u),))
    v, g, h = polynomials_with_derivatives(u, exps, coef)
    return v.T, np.swapaxes(g, 0, 1), np.swapaxes(h, 0, 1)

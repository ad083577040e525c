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
def _tables(lmax: int):
    """(harmonic index, coefficient x M_lm, exponents) of every monomial, l <= lmax."""
    norms = density_norms(lmax)
    rows = [(k, c * norms[k], e) for k in range(n_harmonics(lmax)) for c, e in _POLY[k]]
    idx = np.array([r[0] for r in rows])
    coef = np.array([r[1] for r in rows])
    exps = np.array([r[2] for r in rows], dtype=int)
    return idx, coef, exps


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
    u = np.asarray(u, dtype=float).reshape(-1, 3)
    n = len(u)
    nh = n_harmonics(lmax)
    idx, coef, exps = _tables(lmax)
    # powers[p, i, :] = u_i ** p with p = 0..4
    powers = np.ones((5, 3, n))
    for p in range(1, 5):
        powers[p] = powers[p - 1] * u.T

    def mono(e: np.ndarray) -> np.ndarray:
        """Π_i u_i^e_i for each monomial (rows), negative exponents give 0."""
        out = np.ones((len(e), n))
        for i in range(3):
            ok = e[:, i] >= 0
            out[ok] *= powers[e[ok, i], i]
            out[~ok] = 0.0
        return out

    d = np.zeros((nh, n))
    np.add.at(d, idx, coef[:, None] * mono(exps))
    g = np.zeros((3, nh, n))
    h = np.zeros((3, 3, nh, n))
    for i in range(3):
        ei = exps.copy()
        ei[:, i] -= 1
        gi = (coef * exps[:, i])[:, None] * mono(ei)
        np.add.at(g[i], idx, gi)
        for j in range(i, 3):
            eij = ei.copy()
            eij[:, j] -= 1
            fac = exps[:, i] * (exps[:, j] - (1 if i == j else 0))
            hij = (coef * fac)[:, None] * mono(eij)
            np.add.at(h[i, j], idx, hij)
            if j != i:
                h[j, i] = h[i, j]
    return d.T, np.moveaxis(g, 0, -1).transpose(1, 0, 2), h.transpose(3, 2, 0, 1)

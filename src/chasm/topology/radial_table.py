"""Spherical databank densities tabulated with their first two derivatives.

A core or valence density of the wavefunction databank is a sum of ~50
exponential terms g(r) = Σ w r^k e^(−Zr) (e/Å³ per electron or per core).
Summing them at every (atom copy, point) pair is the cost of a topology
search, so g is read from a quintic Hermite table: at nodes uniform in
x = ln(1 + r/c), c = 1/max Z, the exact g, dg/dx and d²g/dx² are stored and
each interval carries the unique quintic matching them at both ends. The
interpolant is twice continuously differentiable, so its analytic first and
second derivatives are consistent with finite differences of its values
(what a Newton search needs), and it is refined (doubling the nodes) until
g, g′ and g″ at every mid-interval point agree with the exact sums to 1e-9
relative (g″: 1e-8, the limit set by rounding in the differences of the
node values near r = 0), plus 1e-12 of each one's largest magnitude.
"""

from __future__ import annotations

import numpy as np

__all__ = ["QuinticTable", "RadialTable", "exponential_sum"]


def exponential_sum(k: np.ndarray, Z: np.ndarray, w: np.ndarray, r: np.ndarray):
    """Exact Σ w r^k e^(−Zr) and its first and second r-derivatives (r > 0, 1-D).

    Parameters
    ----------
    k, Z, w : ndarray, shape (n_terms,)
        Powers, exponents (1/Å) and weights of the terms.
    r : ndarray, shape (n,)
        Radii, Å.

    Returns
    -------
    g, dg, d2g : ndarray, shape (n,)
    """
    out = [np.zeros(len(r)) for _ in range(3)]
    for a in range(0, len(r), 4096):
        x = r[a : a + 4096, None]
        e = np.exp(-Z * x) * w
        p = x**k
        p1 = np.where(k >= 1, k * x ** np.maximum(k - 1.0, 0.0), 0.0)
        p2 = np.where(k >= 2, k * (k - 1.0) * x ** np.maximum(k - 2.0, 0.0), 0.0)
        out[0][a : a + 4096] = np.einsum("ij,ij->i", p, e)
        out[1][a : a + 4096] = np.einsum("ij,ij->i", p1 - Z * p, e)
        out[2][a : a + 4096] = np.einsum("ij,ij->i", p2 - 2.0 * Z * p1 + Z * Z * p, e)
    return tuple(out)


def _bound(k, Z, w, r: float) -> float:
    return float(np.sum(np.abs(w) * r**k * np.exp(-Z * r)))


def _hermite_coefficients(exact, x: np.ndarray, h: float, c: float) -> np.ndarray:
    """Quintic coefficients per interval from exact g, g', g'' at the nodes x = ln(1 + r/c)."""
    r = c * np.expm1(x)
    g, g1, g2 = exact(r)
    s = c + r  # dr/dx per unit of x; in index units t = x/h: dr/dt = h s
    F, F1 = g, g1 * h * s
    F2 = g2 * (h * s) ** 2 + g1 * h * h * s
    p0, p1 = F[:-1], F[1:]
    d0, d1 = F1[:-1], F1[1:]
    s0, s1 = F2[:-1], F2[1:]
    a3 = -10 * p0 - 6 * d0 - 1.5 * s0 + 0.5 * s1 - 4 * d1 + 10 * p1
    a4 = 15 * p0 + 8 * d0 + 1.5 * s0 - s1 + 7 * d1 - 15 * p1
    a5 = -6 * p0 - 3 * d0 - 0.5 * s0 + 0.5 * s1 - 3 * d1 + 6 * p1
    return np.ascontiguousarray(np.stack([p0, d0, 0.5 * s0, a3, a4, a5]))


class RadialTable:
    """A radial function g(r) tabulated with g' and g'' (quintic Hermite, zero beyond ``r_end``).

    Parameters
    ----------
    exact : callable
        r (1-D array, Å) -> (g, dg/dr, d²g/dr²), exact values.
    r_end : float
        Radius beyond which g is taken as zero, Å.
    c : float
        Node scale (Å): nodes are uniform in ln(1 + r/c), dense below r ~ c.
    rel : tuple of 3 float
        Relative tolerances of g, g', g'' at the mid-interval points (plus
        ``floor`` times each one's largest magnitude); nodes are doubled until met.
    floor : float
        Absolute part of the tolerance, relative to the largest magnitude.
    """

    def __init__(self, exact, r_end: float, c: float, rel=(1e-9, 1e-9, 1e-8), floor=1e-12):
        self.r_end, self.c = float(r_end), float(c)
        self.h, self.coef = 1.0, np.zeros((6, 0))
        if self.r_end <= 0.0:
            return
        xmax = float(np.log1p(self.r_end / self.c))
        n = 256
        while True:
            x = np.linspace(0.0, xmax, n + 1)
            h = float(x[1])
            coef = _hermite_coefficients(exact, x, h, self.c)
            rm = self.c * np.expm1(x[:-1] + 0.5 * h)
            want = exact(rm)
            self.h, self.coef = h, coef
            approx = self._interpolate(rm, 2)
            ok = all(
                np.all(np.abs(a - e) <= tol * np.abs(e) + floor * np.abs(e).max())
                for a, e, tol in zip(approx, want, rel, strict=True)
            )
            if ok or n >= 1 << 16:
                break
            n *= 2

    def _interpolate(self, r: np.ndarray, order: int):
        t_all = np.log1p(r / self.c) / self.h
        i = np.minimum(t_all.astype(np.intp), self.coef.shape[1] - 1)
        t = t_all - i
        a0, a1, a2, a3, a4, a5 = (row[i] for row in self.coef)
        F = a0 + t * (a1 + t * (a2 + t * (a3 + t * (a4 + t * a5))))
        if order == 0:
            return F, None, None
        F1 = a1 + t * (2 * a2 + t * (3 * a3 + t * (4 * a4 + t * 5 * a5)))
        s = self.c + r
        dt = 1.0 / (self.h * s)  # dt/dr
        g1 = F1 * dt
        if order == 1:
            return F, g1, None
        F2 = 2 * a2 + t * (6 * a3 + t * (12 * a4 + t * 20 * a5))
        g2 = F2 * dt * dt - F1 * dt / s  # d²t/dr² = −dt/dr / s
        return F, g1, g2

    def __call__(self, r: np.ndarray, order: int = 2):
        """g, dg/dr, d²g/dr² at radii r (Å); zero beyond ``r_end``; None above ``order``."""
        r = np.asarray(r, dtype=float)
        out = [np.zeros(r.shape) if o <= order else None for o in range(3)]
        if self.coef.shape[1] == 0:
            return tuple(out)
        inside = r < self.r_end
        vals = self._interpolate(r[inside], order)
        for o in range(order + 1):
            out[o][inside] = vals[o]
        return tuple(out)


class QuinticTable(RadialTable):
    """g(r) = Σ w r^k e^(−Zr) tabulated (zero beyond ``r_end``).

    Parameters
    ----------
    k, Z, w : ndarray
        Terms of the sum (powers, exponents in 1/Å, weights).
    """

    def __init__(self, k: np.ndarray, Z: np.ndarray, w: np.ndarray):
        self.k, self.Z, self.w = k, Z, w
        if k.size == 0:
            super().__init__(None, 0.0, 1.0)
            return
        peak = _bound(k, Z, w, 0.0) + _bound(k, Z, w, 0.5)
        lo, hi = 0.5, 60.0
        while hi - lo > 1e-3:
            mid = 0.5 * (lo + hi)
            if _bound(k, Z, w, mid) > 1e-15 * peak:
                lo = mid
            else:
                hi = mid
        super().__init__(lambda r: exponential_sum(k, Z, w, r), hi, 1.0 / float(np.max(Z)))

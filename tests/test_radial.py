"""Slater radial transforms: closed-form g(l, N; K, Z) against adaptive quadrature."""

from __future__ import annotations

from math import factorial

import mpmath as mp
import numpy as np
import pytest
from scipy import integrate, special

from chasm.density.radial import (
    BOHR,
    default_slater,
    g_integral,
    gegenbauer,
    slater_bessel,
    slater_density,
)

S_VALUES = [0.001, 0.02, 0.1, 0.5, 1.0, 2.0]  # sin(theta)/lambda, 1/A
Z_VALUES = [1.3, 4.0, 9.5]  # 1/A


def _quad_g(l, N, K, Z):
    """Adaptive quadrature (scipy) of g."""

    def f(r):
        return r**N * np.exp(-Z * r) * special.spherical_jn(l, K * r)

    upper = (N + 60.0) / Z  # e^{-Zr} r^N is below 1e-20 of its maximum beyond this
    # split at the half-periods of the oscillation so the adaptive rule sees smooth pieces
    n_pieces = max(1, int(K * upper / np.pi))
    edges = np.linspace(0.0, upper, n_pieces + 1)
    total = 0.0
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        total += integrate.quad(f, a, b, epsabs=0.0, epsrel=1e-13, limit=200)[0]
    return total


def _hankel_g(l, N, K, Z):
    """g from the Hankel expansion of j_l, evaluated with 50 significant digits.

    j_l(x) = Re[(-i)^(l+1) e^(ix)/x sum_k (l+k)!/(k!(l-k)!) (i/2x)^k], so
    g = Re sum_k (-i)^(l+1) c_k (i/2K)^k Gamma(N-k) / (K (Z - iK)^(N-k)).
    This is the form that loses digits in double precision at small K; with
    mpmath's 50 digits it is an exact reference for the ill-conditioned cases.
    """
    mp.mp.dps = 50
    K, Z = mp.mpf(K), mp.mpf(Z)
    total = mp.mpc(0)
    for k in range(l + 1):
        c = mp.factorial(l + k) / (mp.factorial(k) * mp.factorial(l - k))
        total += c * (1j / (2 * K)) ** k * mp.gamma(N - k) / (Z - 1j * K) ** (N - k)
    return float(mp.re((-1j) ** (l + 1) * total / K))


@pytest.mark.slow
@pytest.mark.parametrize("l", range(5))
def test_g_closed_form_equals_quadrature(l):
    """1e-9 relative against adaptive quadrature where quadrature can deliver it.

    Where the integrand cancels by more than 1e4 (large K, small Z, large N), a
    double-precision quadrature cannot reach 1e-9; those cases are checked
    against the 50-digit Hankel-series value instead (and a 40-digit mpmath
    adaptive quadrature of the worst case is in validation/g_mpmath.py).
    """
    worst_quad = worst_hankel = 0.0
    n_quad = 0
    for N in range(l + 1, 13):
        for s in S_VALUES:
            K = 4 * np.pi * s
            for Z in Z_VALUES:
                val = float(g_integral(l, N, K, Z))
                # |j_l| <= 1 bounds the cancellation: int |f| <= N! / Z^(N+1)
                cond = factorial(N) / Z ** (N + 1) / abs(val)
                if cond < 1e4:
                    ref = _quad_g(l, N, K, Z)
                    n_quad += 1
                    worst_quad = max(worst_quad, abs(val - ref) / abs(ref))
                ref = _hankel_g(l, N, K, Z)
                worst_hankel = max(worst_hankel, abs(val - ref) / abs(ref))
    assert n_quad >= 30
    assert worst_quad < 1e-9, f"l={l}: worst deviation from quadrature {worst_quad:.2e}"
    assert worst_hankel < 1e-9, f"l={l}: worst deviation from Hankel series {worst_hankel:.2e}"


def test_g_derivatives_finite_differences():
    for l in range(5):
        for N in range(l + 1, 13):
            for K in (0.0126, 1.3, 12.0, 25.0):
                for Z in (1.3, 6.0):
                    g, dK, dZ = g_integral(l, N, np.array([K]), Z, derivatives=True)
                    h = 1e-5 * K
                    fdK = (g_integral(l, N, K + h, Z) - g_integral(l, N, K - h, Z)) / (2 * h)
                    hz = 1e-5 * Z
                    fdZ = (g_integral(l, N, K, Z + hz) - g_integral(l, N, K, Z - hz)) / (2 * hz)
                    assert abs(dK[0] - fdK) <= 1e-6 * max(abs(fdK), abs(g[0]) / K)
                    assert abs(dZ[0] - fdZ) <= 1e-6 * max(abs(fdZ), abs(g[0]) / Z)


def test_slater_bessel_normalisation_and_derivatives():
    for n in range(0, 9):
        for zeta in (2.0, 6.0, 16.0):
            j0 = slater_bessel(0, n, zeta, np.array([0.0]))
            assert abs(j0[0] - 1.0) < 1e-14  # <j_0>(0) = 1: R_l integrates to one
            r = np.linspace(0, 60 / zeta, 200001)
            norm = np.trapezoid(slater_density(r, n, zeta) * r**2, r)
            assert abs(norm - 1.0) < 1e-6
    K = np.array([0.5, 3.0, 9.0])
    for l in range(5):
        n = max(l, 2)
        v, dK, dz = slater_bessel(l, n, 5.0, K, derivatives=True)
        h = 1e-6
        fdz = (slater_bessel(l, n, 5.0 + h, K) - slater_bessel(l, n, 5.0 - h, K)) / (2 * h)
        fdk = (slater_bessel(l, n, 5.0, K + h) - slater_bessel(l, n, 5.0, K - h)) / (2 * h)
        np.testing.assert_allclose(dz, fdz, rtol=1e-6, atol=1e-12)
        np.testing.assert_allclose(dK, fdk, rtol=1e-6, atol=1e-12)


def test_gegenbauer_matches_scipy():
    x = np.linspace(-1, 1, 101)
    for n in range(12):
        for alpha in (1.0, 2.0, 5.0):
            np.testing.assert_allclose(
                gegenbauer(n, alpha, x),
                special.eval_gegenbauer(n, alpha, x),
                rtol=1e-12,
                atol=1e-12,
            )


def test_default_slater_exponents_match_conventions():
    # CONVENTIONS.md, bohr^-1
    expected = {
        "H": 2.0,
        "C": 3.1762,
        "N": 3.8394,
        "O": 4.4660,
        "F": 5.1079,
        "S": 3.8513,
        "Cu": 8.8004,
    }
    for el, zeta_bohr in expected.items():
        _, zeta = default_slater(el)
        assert abs(zeta * BOHR - zeta_bohr) < 1e-4
    assert default_slater("H")[0] == (0, 1, 2, 3, 4)
    assert default_slater("C")[0] == (2, 2, 2, 3, 4)
    assert default_slater("Cu")[0] == (4, 4, 4, 4, 4)
    assert default_slater("Ga")[0] == (6, 6, 6, 6, 6)


def test_g_rejects_invalid_order():
    with pytest.raises(ValueError):
        g_integral(3, 3, 1.0, 1.0)

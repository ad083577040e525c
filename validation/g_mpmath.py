"""g(l, N; K, Z) against 40-digit adaptive quadrature in the ill-conditioned corner.

At large K, small Z and large N the integrand r^N e^(-Zr) j_l(Kr) cancels by up
to 1e13, so double-precision quadrature cannot check the closed form there.
This script integrates with mpmath (tanh-sinh, 40 digits, split at the
half-periods of the oscillation) and prints the relative deviation of chasm's
double-precision closed form. Takes a few minutes.

Usage: python validation/g_mpmath.py
"""

from __future__ import annotations

import mpmath as mp
import numpy as np

from chasm.density.radial import g_integral

mp.mp.dps = 40


def spherical_jn(l, x):
    return mp.sqrt(mp.pi / (2 * x)) * mp.besselj(l + mp.mpf(1) / 2, x) if x else mp.mpf(l == 0)


def g_quad(l, N, K, Z):
    K, Z = mp.mpf(K), mp.mpf(Z)
    upper = (N + 80) / Z
    n = max(1, int(K * upper / mp.pi))
    points = [upper * i / n for i in range(n + 1)]
    return mp.quad(lambda r: r**N * mp.exp(-Z * r) * spherical_jn(l, K * r), points)


def main() -> None:
    print(" l  N  s(1/A)  Z(1/A)   g (40-digit quadrature)     rel. deviation of chasm")
    for l, N, s, Z in [
        (0, 12, 2.0, 1.3),
        (2, 10, 2.0, 1.3),
        (4, 12, 2.0, 1.3),
        (0, 9, 1.0, 1.3),
        (3, 8, 0.001, 4.0),
        (4, 5, 0.001, 9.5),
    ]:
        K = 4 * np.pi * s
        ref = g_quad(l, N, K, Z)
        val = float(g_integral(l, N, K, Z))
        print(
            f"{l:2d} {N:2d} {s:7.3f} {Z:7.2f}  {mp.nstr(ref, 20):>26s}  "
            f"{abs(val - float(ref)) / abs(float(ref)):.1e}"
        )


if __name__ == "__main__":
    main()

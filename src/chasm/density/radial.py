"""Slater-type radial functions and their Fourier-Bessel transforms.

The transforms go through the closed form of

    g(l, N; K, Z) = integral_0^inf r^N exp(-Z r) j_l(K r) dr
                  = 2^l l! (N-l-1)! K^l rho^-(N+l+1) C^(l+1)_(N-l-1)(Z / rho),
    rho = sqrt(K^2 + Z^2),

valid for integer N >= l + 1, with C the Gegenbauer polynomial. The form is
stable at small K (the Hankel-series form loses about six digits at
s = 0.02 1/Angstrom). Units: K and Z in inverse Angstrom (any consistent unit
works; g then carries the unit length^(N+1)).

References: CONVENTIONS.md (chasm); Avery & Watson (1977) Acta Cryst. A33, 679
for the Fourier-Bessel transforms of Slater functions.
"""

from __future__ import annotations

from math import factorial

import numpy as np

BOHR = 0.529177210903
"""Bohr radius a0 in Angstrom (CODATA 2018)."""


def gegenbauer(n: int, alpha: float, x: np.ndarray) -> np.ndarray:
    """Gegenbauer polynomial C^(alpha)_n(x) by its three-term recurrence.

    Parameters
    ----------
    n : int
        Degree (>= -1; C_-1 = 0 by convention, used by derivatives).
    alpha : float
        Order (> 0).
    x : ndarray
        Argument.
    """
    x = np.asarray(x, dtype=float)
    if n < 0:
        return np.zeros_like(x)
    c_prev = np.ones_like(x)
    if n == 0:
        return c_prev
    c = 2.0 * alpha * x
    for k in range(2, n + 1):
        c, c_prev = (2.0 * x * (k + alpha - 1.0) * c - (k + 2.0 * alpha - 2.0) * c_prev) / k, c
    return c


def g_integral(l: int, N: int, K: np.ndarray, Z: float | np.ndarray, derivatives: bool = False):
    """Closed-form g(l, N; K, Z) = integral r^N exp(-Z r) j_l(K r) dr.

    Parameters
    ----------
    l : int
        Order of the spherical Bessel function, 0 <= l.
    N : int
        Power of r, N >= l + 1.
    K : array_like
        Bessel argument scale (1/length), K >= 0.
    Z : float or array_like
        Exponent (1/length), Z > 0; broadcast against K.
    derivatives : bool
        Also return dg/dK and dg/dZ.

    Returns
    -------
    g : ndarray
        The integral.
    dg_dK, dg_dZ : ndarray
        Only when ``derivatives`` is true.
    """
    if N < l + 1:
        raise ValueError(f"g(l={l}, N={N}) needs N >= l + 1")
    K = np.asarray(K, dtype=float)
    Z = np.asarray(Z, dtype=float)
    K, Z = np.broadcast_arrays(K, Z)
    n = N - l - 1
    alpha = l + 1.0
    p = N + l + 1
    c = 2.0**l * factorial(l) * factorial(n)
    rho2 = K * K + Z * Z
    rho = np.sqrt(rho2)
    x = Z / rho
    C = gegenbauer(n, alpha, x)
    rho_mp = rho ** (-p)
    Kl = K**l if l > 0 else np.ones_like(K)
    g = c * Kl * rho_mp * C
    if not derivatives:
        return g
    dC = 2.0 * alpha * gegenbauer(n - 1, alpha + 1.0, x)  # dC/dx
    rho3 = rho2 * rho
    # d/dK of K^l
    dKl = l * K ** (l - 1) if l > 0 else np.zeros_like(K)
    dg_dK = c * rho_mp * (dKl * C - p * Kl * K / rho2 * C - Kl * dC * Z * K / rho3)
    dg_dZ = c * Kl * rho_mp * (-p * Z / rho2 * C + dC * K * K / rho3)
    return g, dg_dK, dg_dZ


def slater_norm(n: int, zeta: float | np.ndarray) -> np.ndarray:
    """Normalisation zeta^(n+3)/(n+2)! of R(r) = N r^n exp(-zeta r), int R r^2 dr = 1."""
    return np.asarray(zeta, dtype=float) ** (n + 3) / factorial(n + 2)


def slater_density(r: np.ndarray, n: int, zeta: float) -> np.ndarray:
    """Density-normalised Slater function R(r) = zeta^(n+3)/(n+2)! r^n exp(-zeta r).

    Parameters
    ----------
    r : ndarray
        Radius (Angstrom).
    n : int
        Power of r.
    zeta : float
        Exponent (1/Angstrom).

    Returns
    -------
    ndarray
        R(r) in 1/Angstrom^3, with int R r^2 dr = 1.
    """
    r = np.asarray(r, dtype=float)
    return slater_norm(n, zeta) * r**n * np.exp(-zeta * r)


def slater_bessel(l: int, n: int, zeta: float, K: np.ndarray, derivatives: bool = False):
    """Fourier-Bessel transform <j_l>(K) of a density-normalised Slater function.

    <j_l>(K) = int R(r) j_l(K r) r^2 dr = zeta^(n+3)/(n+2)! g(l, n+2; K, zeta).

    A kappa' expansion kappa'^3 R(kappa' r) is obtained by passing
    ``zeta * kappa'`` (equivalently, evaluating at K / kappa').

    Parameters
    ----------
    l : int
        Multipole order.
    n : int
        Radial power (n >= l - 1 for the closed form).
    zeta : float
        Slater exponent (1/Angstrom).
    K : ndarray
        4 pi sin(theta)/lambda (1/Angstrom).
    derivatives : bool
        Also return d<j_l>/dK and d<j_l>/dzeta.

    Returns
    -------
    jl : ndarray
        Dimensionless transform; <j_0>(0) = 1.
    djl_dK, djl_dzeta : ndarray
        Only when ``derivatives`` is true.
    """
    norm = slater_norm(n, zeta)
    if not derivatives:
        return norm * g_integral(l, n + 2, K, zeta)
    g, gK, gZ = g_integral(l, n + 2, K, zeta, derivatives=True)
    dnorm = (n + 3) * np.asarray(zeta, dtype=float) ** (n + 2) / factorial(n + 2)
    return norm * g, norm * gK, dnorm * g + norm * gZ


def default_slater(element: str) -> tuple[tuple[int, ...], float]:
    """Default radial powers n_l (l = 0..4) and exponent zeta (1/Angstrom) of an element.

    From ``density/data/slater_defaults.json`` (built by
    ``tools/build_slater_defaults.py``: every element H-Lr, Z = 1-103, from the
    single-zeta exponents of Clementi & Raimondi (1963) and Clementi, Raimondi
    & Reinhardt (1967) up to Rn, Slater's rules beyond; rare earths and
    actinides take their open 4f/5f shell; see CONVENTIONS.md and the tool's
    docstring). Users override both per atom type.

    Parameters
    ----------
    element : str
        Element symbol, e.g. ``"Cu"``.

    Returns
    -------
    n_l : tuple of int
        Radial powers for l = 0..4.
    zeta : float
        Exponent in 1/Angstrom.
    """
    table = _slater_table()
    key = element.capitalize()
    if key not in table:
        from chasm.errors import InputError

        raise InputError(
            f"no default Slater exponent for element {element!r} (table covers H-Lr, Z = 1-103); "
            "give n_l and zeta for this atom type explicitly"
        )
    entry = table[key]
    return tuple(entry["n_l"]), entry["zeta_bohr"] / BOHR


def default_valence_configuration(element: str) -> tuple[str, ...]:
    """Occupied shells behind the default Slater exponent, e.g. ``('4f11',)`` for Ho.

    Raises
    ------
    InputError
        Element not in the table (H-Lr).
    """
    default_slater(element)  # the same error for an unknown element
    return tuple(_slater_table()[element.capitalize()]["valence"])


_SLATER_TABLE: dict | None = None


def _slater_table() -> dict:
    global _SLATER_TABLE
    if _SLATER_TABLE is None:
        import json
        from importlib.resources import files

        text = files("chasm.density").joinpath("data/slater_defaults.json").read_text()
        _SLATER_TABLE = json.loads(text)["elements"]
    return _SLATER_TABLE

"""Spherical X-ray form factors: IT92 Gaussian fits and Koga free atoms.

All functions take s = sin(theta)/lambda in 1/Angstrom and return electrons.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import gemmi
import numpy as np

from chasm.errors import InputError


@cache
def it92_coefficients(element: str) -> tuple[np.ndarray, np.ndarray, float]:
    """IT92 coefficients (a_1..4, b_1..4 in Angstrom^2, c) of an element.

    Values of International Tables for Crystallography Vol. C, Table 6.1.1.4,
    as distributed by gemmi (stored there in single precision; used as such so
    that chasm and gemmi agree to double precision).
    """
    el = gemmi.Element(element)
    if el.atomic_number == 0 and element.upper() not in ("X",):
        raise InputError(f"unknown element {element!r}")
    coefs = el.it92.get_coefs()
    if len(coefs) != 9 or (el.atomic_number > 0 and sum(coefs[:4]) + coefs[8] == 0.0):
        raise InputError(f"no IT92 form factor for element {element!r}")
    return np.array(coefs[:4]), np.array(coefs[4:8]), float(coefs[8])


def it92(element: str, s: np.ndarray) -> np.ndarray:
    """IT92 form factor f(s) = sum_i a_i exp(-b_i s^2) + c (electrons)."""
    a, b, c = it92_coefficients(element)
    s2 = np.asarray(s, dtype=float) ** 2
    f: np.ndarray = np.exp(-np.multiply.outer(s2, b)) @ a + c
    return f


@cache
def koga_atom(element: str, charge: int = 0, valence: tuple[str, ...] | None = None) -> Any:
    """Cached spherical Koga atom (core and valence form factors) from the databank."""
    from chasm.density.databank import spherical_atom

    return spherical_atom(element, charge, valence=None if valence is None else list(valence))


def koga(element: str, s: np.ndarray, charge: int = 0) -> np.ndarray:
    """Total form factor of the Koga Roothaan-Hartree-Fock free atom (electrons)."""
    f: np.ndarray = koga_atom(element, charge).total(np.asarray(s, dtype=float))
    return f

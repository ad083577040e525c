"""Spherical magnetic form factors of ions: ⟨j0⟩, ⟨j2⟩, ⟨j4⟩ and the dipole form.

Radial integrals (International Tables for Crystallography Vol. C, §4.4.5,
P. J. Brown's fits), with s = sinθ/λ in Å⁻¹:

    ⟨j0⟩(s) = A e^{−a s²} + B e^{−b s²} + C e^{−c s²} + D
    ⟨j2⟩(s) = s² (A e^{−a s²} + B e^{−b s²} + C e^{−c s²} + D)      (own coefficients)
    ⟨j4⟩(s) = s² (...)                                              (own coefficients)

The coefficients are read from ``periodictable`` (``Cu.magnetic_ff[2].j0`` ...);
every ion it lists is available (``'Cu2+'``, ``'Ti3+'``, ``'Ho3+'``,
``'Mn2+'``, neutral ``'Fe'`` = ``'Fe0+'``...).

Expansion κ: a spin density κ³ρ(κr) has the form factor f(s/κ); κ enters
every exponential and the s² prefactor, as in cryspy.

Dipole approximation: f(s) = ⟨j0⟩ + C2 ⟨j2⟩, with C2 an explicit input. Which C2
follows from a "g" depends on what g is (CONVENTIONS.md, "Spin-resolved atoms"):

- For a J-multiplet (rare earths) with Landé factor g_J, the orbital fraction
  of the moment is (2 − g_J)/g_J, so C2 = 2/g_J − 1 (Ho³⁺, g_J = 5/4:
  C2 = +0.6). This is what cryspy computes from ``_atom_site_scat_Lande``:
  ``form_factor = j0 + (2/lande − 1) j2`` (cryspy
  ``A_functions_base/magnetic_form_factor.py``, ``calc_form_factor``), and
  :func:`c2_from_lande` returns it.
- For a quenched 3d ion described by a spectroscopic g = 2 + δ (orbital moment
  parallel to spin, fraction (g − 2)/g of the total), C2 = 1 − 2/g, small and
  positive for Cu²⁺ (g ≈ 2.1–2.3). This is the formula of CONVENTIONS.md;
  :func:`c2_from_spectroscopic_g` returns it.

Both are positive when the orbital moment is parallel to the spin; they are
not two signs of one formula but two meanings of g. A Landé factor of 2 (spin
only, as in the YTiO3 and MnF2 files) gives C2 = 0 either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import periodictable

from chasm.crystal.structure import parse_type_symbol
from chasm.errors import InputError

__all__ = [
    "IonFormFactor",
    "ion_form_factor",
    "radial_integrals",
    "dipole_form_factor",
    "c2_from_lande",
    "c2_from_spectroscopic_g",
    "hund_moment",
    "max_moment",
]


def _gauss_sum(coeffs: tuple, u2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """g(u) = A e^{−a u²} + B e^{−b u²} + C e^{−c u²} + D and dg/d(u²)."""
    big_a, a, big_b, b, big_c, c, d = (float(v) for v in coeffs)
    ea, eb, ec = np.exp(-a * u2), np.exp(-b * u2), np.exp(-c * u2)
    value = big_a * ea + big_b * eb + big_c * ec + d
    slope = -(a * big_a * ea + b * big_b * eb + c * big_c * ec)
    return value, slope


@dataclass(frozen=True)
class IonFormFactor:
    """Tabulated radial integrals of one magnetic ion.

    Parameters
    ----------
    ion : str
        Name as given (``'Cu2+'``).
    j0, j2, j4 : tuple of 7 float or None
        (A, a, B, b, C, c, D) for each ⟨j_l⟩; a, b, c in Å² (s in Å⁻¹).
    """

    ion: str
    j0: tuple
    j2: tuple | None
    j4: tuple | None

    def radial(self, s, kappa: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """⟨j0⟩, ⟨j2⟩, ⟨j4⟩ at s/κ (dimensionless); s in Å⁻¹.

        A missing ⟨j2⟩ or ⟨j4⟩ table gives zeros.
        """
        u2 = (np.asarray(s, dtype=float) / kappa) ** 2
        out = []
        for l_order, coeffs in ((0, self.j0), (2, self.j2), (4, self.j4)):
            if coeffs is None:
                out.append(np.zeros_like(u2))
                continue
            g, _ = _gauss_sum(coeffs, u2)
            out.append(g if l_order == 0 else u2 * g)
        return out[0], out[1], out[2]

    def dipole(self, s, c2: float, kappa: float = 1.0) -> tuple[np.ndarray, dict]:
        """Dipole form factor f = ⟨j0⟩ + C2⟨j2⟩ at s/κ, with derivatives.

        Returns
        -------
        f : ndarray
        derivatives : dict
            ``'s'`` (df/ds, Å), ``'kappa'`` (df/dκ), ``'c2'`` (df/dC2 = ⟨j2⟩).
        """
        s = np.asarray(s, dtype=float)
        u2 = (s / kappa) ** 2
        g0, d0 = _gauss_sum(self.j0, u2)
        if self.j2 is None:
            g2 = d2 = np.zeros_like(u2)
        else:
            g2, d2 = _gauss_sum(self.j2, u2)
        j2 = u2 * g2
        f = g0 + c2 * j2
        df_du2 = d0 + c2 * (g2 + u2 * d2)
        # u2 = s²/κ²: du2/ds = 2s/κ², du2/dκ = −2u2/κ
        derivs = {
            "s": df_du2 * 2.0 * s / kappa**2,
            "kappa": df_du2 * (-2.0 * u2 / kappa),
            "c2": j2,
        }
        return f, derivs


def ion_form_factor(ion: str) -> IonFormFactor:
    """Look up the ⟨j_l⟩ coefficients of an ion in periodictable.

    Parameters
    ----------
    ion : str
        ``'Cu2+'``, ``'Cu+2'``, ``'Ti3+'``, ``'Fe'`` (neutral) ...

    Raises
    ------
    InputError
        Unknown element or no table for that charge (the message lists the
        charges that have one).
    """
    try:
        symbol, charge = parse_type_symbol(ion)
    except ValueError:
        raise InputError(f"cannot read an ion from {ion!r} (expected e.g. 'Cu2+')") from None
    element = periodictable.elements.symbol(symbol)
    tables = getattr(element, "magnetic_ff", None) or {}
    if charge not in tables:
        have = ", ".join(f"{symbol}{c}+" for c in sorted(tables)) or "none"
        raise InputError(
            f"no magnetic form factor for {ion!r} in periodictable (tabulated for {symbol}: {have})"
        )
    table = tables[charge]
    if getattr(table, "j0", None) is None:
        # Ce3+: periodictable has only a fit of the whole dipole form factor ("J")
        raise InputError(
            f"no <j0> radial integral for {ion!r} in periodictable (only a fit of the whole "
            "dipole form factor); give the ion's <j0>, <j2> coefficients explicitly"
        )
    return IonFormFactor(
        ion=ion,
        j0=tuple(table.j0),
        # periodictable leaves the attribute out (not None) for ions with ⟨j0⟩ only (O1+)
        j2=None if getattr(table, "j2", None) is None else tuple(table.j2),
        j4=None if getattr(table, "j4", None) is None else tuple(table.j4),
    )


def radial_integrals(ion: str, s, kappa: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """⟨j0⟩, ⟨j2⟩, ⟨j4⟩ of an ion at s/κ (s = sinθ/λ in Å⁻¹)."""
    return ion_form_factor(ion).radial(s, kappa)


def dipole_form_factor(ion: str, s, c2: float, kappa: float = 1.0) -> np.ndarray:
    """f(s) = ⟨j0⟩(s/κ) + C2 ⟨j2⟩(s/κ) of an ion (s in Å⁻¹).

    C2 is an explicit input: see :func:`c2_from_lande` and
    :func:`c2_from_spectroscopic_g` for the two usual sources.
    """
    return ion_form_factor(ion).dipole(s, c2, kappa)[0]


def c2_from_lande(g_j: float) -> float:
    """C2 = 2/g_J − 1 for a J-multiplet with Landé factor g_J (cryspy's ``Lande``)."""
    if g_j == 0:
        raise InputError("the Landé factor must not be zero")
    return 2.0 / g_j - 1.0


def c2_from_spectroscopic_g(g: float) -> float:
    """C2 = 1 − 2/g for a quenched ion with spectroscopic g = 2 + δ (CONVENTIONS.md)."""
    if g == 0:
        raise InputError("the g factor must not be zero")
    return 1.0 - 2.0 / g


def hund_moment(l_shell: int, n: int) -> tuple[float, float, float, float]:
    """S, L, J and g_J·J (μB) of n electrons in a shell of orbital momentum l (Hund's rules).

    Less than half full: J = |L − S|; half full or more: J = L + S.
    g_J = 3/2 + [S(S+1) − L(L+1)] / [2J(J+1)] (g_J·J = 0 when J = 0).
    """
    size = 2 * l_shell + 1
    if not 0 <= n <= 2 * size:
        raise ValueError(f"{n} electrons do not fit a shell with l = {l_shell}")
    up = min(n, size)
    down = n - up
    spin = 0.5 * (up - down)
    ml = list(range(l_shell, -l_shell - 1, -1))
    orbital = abs(sum(ml[:up]) + sum(ml[:down]))
    j = abs(orbital - spin) if n < size else orbital + spin
    if j == 0:
        return spin, float(orbital), 0.0, 0.0
    g = 1.5 + (spin * (spin + 1) - orbital * (orbital + 1)) / (2 * j * (j + 1))
    return spin, float(orbital), j, g * j


#: (first Z, last Z, l, electrons below the shell, usual charges)
MAGNETIC_SHELLS = (
    (21, 30, 2, 18, (2, 3)),  # 3d: d^n, n = Z − 18 − charge
    (39, 48, 2, 36, (2, 3, 4)),  # 4d
    (72, 80, 2, 68, (2, 3, 4)),  # 5d (after 4f14)
    (57, 71, 3, 54, (3,)),  # 4f: Ln3+ 4f^(Z−57); Sm, Eu, Yb also 2+ (DIVALENT_LANTHANIDES)
    (89, 103, 3, 86, (3, 4, 5, 6)),  # 5f: U3+ 5f3, U4+ 5f2
)
#: lanthanides with a usual 2+ ion besides 3+ (max_moment; project.pnd_init)
DIVALENT_LANTHANIDES = {"Sm", "Eu", "Tm", "Yb"}
#: orbital allowance (μB) above the spin-only moment of a d ion (quenched L; Co²⁺ ≈ 1)
D_ORBITAL_ALLOWANCE = 1.0


def max_moment(element: str) -> float | None:
    """Largest moment (μB) of an element's usual magnetic ions, or None.

    f ions (4f, 5f): the free-ion g_J·J of Hund's rules, max over the usual
    charges (Ho³⁺ 4f10: 10; Gd³⁺: 7; Eu²⁺: 7; U³⁺: 3.27). d ions, whose orbital
    moment is quenched: the spin-only 2S plus
    :data:`D_ORBITAL_ALLOWANCE`, max over the usual charges (Mn²⁺/Fe³⁺: 6;
    Cu²⁺/Cu³⁺: 3; Ti: 3). None for other elements (no bound is claimed).
    """
    try:
        z = int(periodictable.elements.symbol(element).number)
    except ValueError:
        return None
    for first, last, l_shell, core, charges in MAGNETIC_SHELLS:
        if not first <= z <= last:
            continue
        if element in DIVALENT_LANTHANIDES:
            charges = (2, *charges)
        best = 0.0
        for q in charges:
            n = z - core - q
            if 0 <= n <= 2 * (2 * l_shell + 1):
                spin, _, _, gj = hund_moment(l_shell, n)
                best = max(best, gj if l_shell == 3 else 2 * spin + D_ORBITAL_ALLOWANCE)
        return best
    return None

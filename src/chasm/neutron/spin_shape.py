"""Spin-multipole form factor of a magnetic site (cryspy's ``_atom_rho_multipole`` model).

Model
-----
The magnetisation density of a site is its moment times a normalised spin
density of one radial orbital R(r) with multipoles in a local frame M:

    s(r) = R_κ(r)² Σ_{l = 0, 2, 4} Σ_m P_lm d_lm(Mᵀ r̂),    R_κ(r) = κ^(3/2) R(κ r),

d_lm chasm's density-normalised real harmonics (CONVENTIONS.md; the same
functions as cryspy's ``realsphharm2df``, tests/test_pnd_spin_shape.py), so
∫ s = P00. Its transform (:mod:`chasm.neutron.dorbital_site`, module
docstring) is

    f(h) = Σ_l 4π i^l ⟨j_l⟩(s/κ) Σ_m P_lm d_lm(Mᵀ ĥ),   ⟨j_l⟩ = ∫ R² j_l(4πs r) r² dr,

f(0) = P00. The symmetry copy (R, t) of the site carries its density rotated
by R_c, so its form factor is f(R_cᵀ h) (:meth:`SpinShape.per_operation`,
one column per operation), and the ordered or induced moment of the copy
multiplies it as the dipole form factor ⟨j0⟩ + C2⟨j2⟩ does
(:mod:`chasm.neutron.structure_factors`). With P00 = 1 and nothing else f is
the orbital's ⟨j0⟩(s/κ): the moment model with a computed instead of a
tabulated radial function.

Radial functions: an orbital of chasm's wavefunction databank (Koga et al.;
:class:`~chasm.neutron.dorbital_site.OrbitalFormFactor`) or any Slater
expansion given as (n, ζ, c) (e.g. the Clementi–Roetti orbital cryspy uses),
normalised to ∫ R² r² dr = 1 (cryspy does not normalise: its Mn 3d has
norm 0.9999864, its F 2p 0.9999949; docs/validation.md).

Odd l: cryspy multiplies each term by Re(i^l), which is zero for odd l, so an
odd-l population has no effect there; chasm refuses a non-zero one rather
than drop it silently (:func:`populations_from_cryspy`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from chasm.crystal.structure import Crystal
from chasm.density.databank import make_orbital
from chasm.density.dorbitals import EVEN_INDICES, multipole_labels
from chasm.density.frames import local_frame
from chasm.errors import InputError
from chasm.neutron.dorbital_site import OrbitalFormFactor, copy_form_factors

__all__ = [
    "SpinShape",
    "POPULATION_NAMES",
    "populations_from_cryspy",
    "population_vector",
    "slater_form_factor",
    "frame_from_text",
]

#: chasm's names of the 15 even-l populations (order of ``EVEN_INDICES``)
POPULATION_NAMES: tuple[str, ...] = tuple(f"P{x}" for x in multipole_labels())
_L_LETTER = "spdfghi"


def populations_from_cryspy(coeffs: Mapping[str, float], where: str = "") -> dict[str, float]:
    """cryspy's ``P00``, ``P21``, ``P2-1`` ... -> chasm's ``P00``, ``P21+``, ``P21-`` ...

    cryspy's harmonic (l, m > 0) is chasm's ``lm+`` and (l, −m) is ``lm-`` (same
    functions; cryspy's l = 4, m = 0 constant is rounded, 3.6e-5 relative).

    Raises
    ------
    InputError
        A non-zero odd-l population (cryspy ignores it: Re(i^l) = 0).
    """
    out: dict[str, float] = {}
    for name, value in coeffs.items():
        l, m = int(name[1]), int(name[2:])
        if l % 2:
            if value != 0.0:
                raise InputError(
                    f"{where}coeff_{name} = {value}: an odd-l spin multipole; cryspy drops it "
                    "(its factor Re(i^l) is 0) and chasm's spin-multipole form factor has even l "
                    "only; set it to 0"
                )
            continue
        suffix = f"{l}0" if m == 0 else f"{l}{abs(m)}{'+' if m > 0 else '-'}"
        out[f"P{suffix}"] = float(value)
    return out


def population_vector(populations: Mapping[str, float], where: str = "") -> np.ndarray:
    """The 15 even-l P_lm (``EVEN_INDICES`` order) from chasm's names (others 0).

    Raises
    ------
    InputError
        An unknown name.
    """
    vec = np.zeros(len(POPULATION_NAMES))
    for name, value in populations.items():
        if name not in POPULATION_NAMES:
            raise InputError(
                f"{where}{name!r} is not an even-l spin population "
                f"(allowed: {', '.join(POPULATION_NAMES)})"
            )
        vec[POPULATION_NAMES.index(name)] = float(value)
    return vec


def slater_form_factor(name: str, orbital: str, n, zeta_bohr, coeff) -> OrbitalFormFactor:
    """⟨j_l⟩ provider of R = Σ c_p N_p r^(n_p−1) e^(−ζ_p r) (ζ in bohr⁻¹), normalised.

    Raises
    ------
    InputError
        Lengths differ, n < l + 1, ζ ≤ 0, or an orbital name that is not ``"3d"``-like.
    """
    orb = orbital.strip().lower()
    if len(orb) < 2 or orb[-1] not in _L_LETTER or not orb[:-1].isdigit():
        raise InputError(f"{name}: orbital {orbital!r} is not a shell name such as '3d' or '2p'")
    made = make_orbital(orb, _L_LETTER.index(orb[-1]), 1.0, n, zeta_bohr, coeff)
    return OrbitalFormFactor(f"{name} {orb}", made)


def frame_from_text(crystal: Crystal, text: str, where: str = "") -> np.ndarray:
    """Local frame (axes as columns, Cartesian) from ``"x u v w, z u v w"``.

    The first axis lies along the direct-lattice direction [u v w] given
    first; the second is the part of the second direction orthogonal to it;
    the third completes a right-handed frame (cryspy's ``_atom_local_axes``
    rule, :func:`chasm.density.frames.local_frame`).

    Raises
    ------
    InputError
        Not two parts of an axis letter and three numbers, equal axes, or
        parallel directions.
    """
    parts = [p.split() for p in text.split(",")]
    if len(parts) != 2 or any(len(p) != 4 for p in parts):
        raise InputError(
            f"{where}local_axes = {text!r}: give two axes as 'x u v w, z u v w' "
            "(axis letter, then a direct-lattice direction)"
        )
    try:
        v1, v2 = (np.array([float(x) for x in p[1:]]) for p in parts)
    except ValueError:
        raise InputError(f"{where}local_axes = {text!r}: the directions must be numbers") from None
    zero = np.zeros(3)
    try:
        return local_frame(
            zero, crystal.A @ v1, zero, crystal.A @ v2, parts[0][0].upper(), parts[1][0].upper()
        )
    except InputError as exc:
        raise InputError(f"{where}local_axes = {text!r}: {exc.message}") from None


@dataclass
class SpinShape:
    """Normalised spin-multipole form factor of one site (module docstring).

    Parameters
    ----------
    table : OrbitalFormFactor
        ⟨j_l⟩ of the radial orbital (``radial(s, kappa)``).
    populations : ndarray (15,)
        Even-l P_lm (``EVEN_INDICES`` order; P00 = 1 for a normalised density).
    frame : ndarray (3, 3)
        Local axes as columns (Cartesian).
    kappa : float
        Radial expansion κ (fixed).
    """

    table: OrbitalFormFactor
    populations: np.ndarray
    frame: np.ndarray
    kappa: float = 1.0

    def __post_init__(self) -> None:
        self.populations = np.asarray(self.populations, dtype=float).reshape(len(EVEN_INDICES))
        self.frame = np.asarray(self.frame, dtype=float).reshape(3, 3)
        if not self.kappa > 0:
            raise InputError(f"spin multipoles: kappa must be > 0, got {self.kappa}")

    def per_operation(self, crystal: Crystal, hkl, dkappa: bool = False) -> np.ndarray:
        """f(R_cᵀ h) for every operation of ``crystal``, (n, n_ops) real (``dkappa``: df/dκ).

        Raises
        ------
        InputError
            The reflection (0 0 0), or an l whose ⟨j_l⟩ the orbital lacks (l = 4 of a p shell).
        """
        pops = self.populations[:, None]
        args = (crystal, hkl, self.frame, self.table, self.kappa, pops)
        return copy_form_factors(*args, dkappa=dkappa)[..., 0]

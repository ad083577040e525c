"""Physically plausible ranges of refined parameters, and the cure when one is left.

A least-squares fit can reach values that no referee accepts (a neutral Mg in
a salt, an O with κ′ = 0.3, a negative H Uiso) while every figure of merit
looks fine. After each stage, :func:`check` compares every parameter that a
stage refined (and the quantities derived from several of them: the net
atomic charge, the eigenvalues of U, a spin moment) with the ranges of
:data:`RANGES`, and returns one :class:`Finding` per value outside its range,
with the value, its su, the range and the likely cure. The ranges are wide:
they mark what is physically implausible, not what is unusual. They are
printed in docs/physics.md ("Plausible ranges").

Sources of the ranges. κ: refined κ of first- and second-row atoms lie within
a few per cent of 1 (Coppens, *X-ray Charge Densities and Chemical Bonding*,
OUP 1997, ch. 3); κ and κ′ of H are usually fixed between 1.1 and 1.3 for the
usual Slater exponent ζ(H) = 2.26 bohr⁻¹ (the same). κ′: the theoretical
values of Volkov, Abramov & Coppens (Acta Cryst. A57 (2001) 272) for the
standard single-ζ Slater functions of C, N and O lie between about 0.8 and
1.0; a refined κ′ far outside [0.75, 1.25] is the radial function absorbing
noise or ADP error. Net charges: organic atoms carry |q| ≲ 1 e in every
multipole study; an alkali or alkaline-earth ion in a salt carries most of
its formal charge. ADPs: U must be positive definite; Uiso > 0.
Magnetic parameters of a PND spin model (``LABEL.moment``, ``LABEL.mx/my/mz`` in μB,
``LABEL.chi_iso``/``LABEL.chiIJ``/``LABEL.chi_par``/``LABEL.chi_perp`` in μB/T):
|m| at most the ion's moment
m_max (:func:`chasm.neutron.magnetic_ff.max_moment`: g_J·J of the free f ion,
2S + 1 for a quenched d ion; 7 μB for other elements); a susceptibility
component within ±2 m_max μB/T (saturation reached at 0.5 T) and a diagonal
one ≥ 0 (paramagnetic; the diamagnetic part is ~1e-5 μB/T per atom).
Extinction (``NAME.extinction`` of a data set, SHELXL's EXTI or the
Becker–Coppens mosaic parameter g): ≥ 0; a negative value brightens the
strongest reflections, which no crystal does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import periodictable

from chasm.io.su_format import format_quantity

if TYPE_CHECKING:
    from chasm.crystal.structure import Crystal
    from chasm.refine.parameters import Parameters

__all__ = ["Finding", "Range", "RANGES", "check", "element_class"]

ALKALI = {"Li", "Na", "K", "Rb", "Cs"}
ALKALINE_EARTH = {"Be", "Mg", "Ca", "Sr", "Ba"}
_NONMETALS = {"B", "C", "N", "O", "F", "Si", "P", "S", "Cl", "Se", "Br", "I", "Te", "As"}


def element_class(element: str) -> str:
    """The class of an element in :data:`RANGES`.

    ``"H"``, ``"light"`` (main-group non-metals), ``"alkali"``,
    ``"alkaline-earth"`` or ``"metal"`` (everything else).
    """
    if element in ("H", "D"):
        return "H"
    if element in ALKALI:
        return "alkali"
    if element in ALKALINE_EARTH:
        return "alkaline-earth"
    if element in _NONMETALS:
        return "light"
    return "metal"


@dataclass(frozen=True)
class Range:
    """A plausible range of one quantity for one element class."""

    quantity: str  # "kappa", "kappa_prime", "charge", "Uiso", "U_eig", "occ", "Plm", "spin"
    classes: tuple[str, ...]  # element classes it applies to ("*": all)
    lo: float
    hi: float
    cure: str


_KP_CURE = (
    "fix κ′ at its theoretical value (or restrain it there), or share one κ′ per element; "
    "check the resolution reached and the ADPs"
)
RANGES: tuple[Range, ...] = (
    Range("kappa", ("H",), 0.8, 1.5, "fix κ(H) at 1.2 as is usual"),
    Range(
        "kappa",
        ("light",),
        0.85,
        1.15,
        "share κ between chemically equivalent atoms, restrain it, or refine it with the "
        "populations only after the high-order ADPs are settled",
    ),
    Range(
        "kappa",
        ("alkali", "alkaline-earth", "metal"),
        0.8,
        1.5,
        "use the ion model (a spherical cation with the ion's Pv and κ fixed)",
    ),
    Range("kappa_prime", ("H",), 0.8, 1.5, "fix κ′(H) at 1.2 as is usual"),
    Range("kappa_prime", ("light",), 0.75, 1.25, _KP_CURE),
    Range("kappa_prime", ("alkali", "alkaline-earth", "metal"), 0.6, 1.5, _KP_CURE),
    Range("charge", ("H",), -0.3, 0.7, "fix κ(H) and restrain Pv(H); check X–H distances"),
    Range(
        "charge",
        ("light",),
        -1.2,
        1.2,
        "constrain electroneutrality, share Pv between equivalent atoms, or restrain it",
    ),
    Range(
        "charge",
        ("alkali",),
        0.4,
        1.2,
        "use the ion model: start from the cation's configuration (Pv of the ion) and keep it "
        "spherical or restrained",
    ),
    Range(
        "charge",
        ("alkaline-earth",),
        0.8,
        2.2,
        "use the ion model: start from the cation's configuration (Pv of the ion) and keep it "
        "spherical or restrained",
    ),
    Range("charge", ("metal",), -1.0, 4.0, "restrain Pv or use the ion's configuration"),
    Range(
        "Uiso",
        ("*",),
        1e-5,
        0.25,
        "let H ride on its parent (Uiso = 1.2 or 1.5 Ueq) or restrain the ADPs",
    ),
    Range(
        "U_eig",
        ("*",),
        1e-5,
        0.25,
        "U is not positive definite: refine this atom isotropically or restrain its ADPs",
    ),
    Range("occ", ("*",), 0.0, 1.0, "occupancies lie in [0, 1]: constrain or fix them"),
    Range(
        "Plm",
        ("H", "light"),
        -0.6,
        0.6,
        "too large for a deformation population: lower lmax, constrain by local symmetry "
        "or chemical equivalence, or fix κ′",
    ),
    Range(
        "Plm",
        ("alkali", "alkaline-earth", "metal"),
        -1.0,
        1.0,
        "too large for a deformation population: lower lmax or use local-symmetry constraints",
    ),
    Range(
        "moment",
        ("*",),
        -7.0,  # replaced by ∓ the ion's m_max (_magnetic_range)
        7.0,
        "above the ion's largest moment: check the ion (type symbol), the Landé factor, "
        "the field and the scale; fix or restrain the moment",
    ),
    Range(
        "chi",
        ("*",),
        -14.0,  # replaced by ∓ 2 m_max, diagonal components ≥ 0 (_magnetic_range)
        14.0,
        "a runaway susceptibility: fix the components the site symmetry or the data do not "
        "determine (e.g. those the file fixes at 0), or restrain them",
    ),
    Range(
        "spin",
        ("*",),
        -7.0,
        7.0,
        "more unpaired electrons than a shell holds: check constraints.total_spin and the "
        "magnetic atoms",
    ),
    Range(
        "extinction",
        ("*",),
        0.0,
        float("inf"),
        "a negative extinction parameter makes the strongest reflections brighter than "
        "kinematic: a model error (scale, missing multipoles, overloaded or clipped low-angle "
        'data), not extinction; find it, or leave extinction out (extinction = "none")',
    ),
)


@dataclass
class Finding:
    """One value outside its plausible range."""

    name: str
    value: float
    su: float | None
    lo: float
    hi: float
    element: str
    cure: str

    def message(self) -> str:
        shown = format_quantity(self.value, self.su)
        return (
            f"{self.name} = {shown} is implausible for {self.element} (plausible range "
            f"[{self.lo:g}, {self.hi:g}]); cure: {self.cure}"
        )

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "value": float(self.value),
            "su": None if not self.su else float(self.su),
            "range": [self.lo, self.hi],
            "element": self.element,
            "cure": self.cure,
        }


def _range(quantity: str, element: str) -> Range | None:
    cls = element_class(element)
    for r in RANGES:
        if r.quantity == quantity and (cls in r.classes or "*" in r.classes):
            return r
    return None


def _magnetic_range(kind: str, element: str) -> Range | None:
    """The range of a PND moment or susceptibility parameter (module docstring)."""
    from chasm.neutron.magnetic_ff import max_moment

    if kind in ("moment", "mx", "my", "mz"):  # along the field, or an ordered component
        base = _range("moment", element)
        factor, diagonal = 1.0, False
    elif kind in ("chi_iso", "chi_par", "chi_perp") or (
        kind.startswith("chi") and kind[3:] in _CHI_COMPONENTS
    ):
        base = _range("chi", element)
        factor = 2.0
        diagonal = kind in ("chi_iso", "chi_par", "chi_perp") or kind[3] == kind[4]
    else:
        return None
    if base is None:
        return None
    m_max = max_moment(element) or 7.0
    hi = factor * m_max
    return Range(base.quantity, base.classes, 0.0 if diagonal else -hi, hi, base.cure)


_CHI_COMPONENTS = ("11", "22", "33", "12", "13", "23")


def _outside(value: float, su: float | None, r: Range) -> bool:
    """Outside by more than 3 su (an su-compatible value is not flagged)."""
    margin = 3.0 * su if su and np.isfinite(su) else 0.0
    return value + margin < r.lo or value - margin > r.hi


def _z(element: str) -> int:
    try:
        return int(periodictable.elements.symbol(element).number)
    except ValueError:
        return 0


def check(
    crystal: Crystal,
    models: Sequence[Any],
    params: Parameters,
    refined: set[str] | None = None,
) -> list[Finding]:
    """Every refined parameter (or derived quantity) outside its plausible range.

    Parameters
    ----------
    crystal : Crystal
        Atoms (labels, elements, ADPs in the current state).
    models : list
        One density model per atom (HansenCoppensAtom, SplitAtom, SphericalAtom...).
    params : Parameters
        Current values and su; names ``LABEL.KIND[.TAG]``.
    refined : set of str, optional
        Names refined in some stage; only they (and quantities that depend on
        them) are judged. Default: every parameter.

    Returns
    -------
    list of Finding
    """
    from chasm.crystal.adp import ucif_to_ucart
    from chasm.density.databank import spherical_atom

    by_label = {a.label: (i, a) for i, a in enumerate(crystal.atoms)}
    out: list[Finding] = []
    touched: dict[str, set[str]] = {}
    for p in params:
        if refined is not None and p.name not in refined:
            continue
        label, _, rest = p.name.partition(".")
        if label not in by_label:
            if rest == "extinction":  # a data set's extinction parameter
                r = _range("extinction", "")
                if r is not None and _outside(p.value, p.su, r):
                    where = f"data set {label}"
                    out.append(Finding(p.name, p.value, p.su, r.lo, r.hi, where, r.cure))
            continue
        kind = rest.split(".")[0]
        touched.setdefault(label, set()).add(kind)
        element = by_label[label][1].element
        quantity = {"kappa": "kappa", "kappa_prime": "kappa_prime", "Uiso": "Uiso", "occ": "occ"}
        magnetic = _magnetic_range(kind, element)
        if magnetic is not None:
            if _outside(p.value, p.su, magnetic):
                out.append(
                    Finding(p.name, p.value, p.su, magnetic.lo, magnetic.hi, element, magnetic.cure)
                )
            continue
        if kind in quantity:
            q = quantity[kind]
        elif kind.startswith("P") and kind not in ("Pv", "P00") and kind[1:2].isdigit():
            q = "Plm"
        else:
            continue
        if q == "Uiso" and by_label[label][1].u_aniso is not None and not rest.endswith("N"):
            continue
        r = _range(q, element)
        if r is not None and _outside(p.value, p.su, r):
            out.append(Finding(p.name, p.value, p.su, r.lo, r.hi, element, r.cure))
    names = set(params.names)
    for label, kinds in touched.items():
        i, atom = by_label[label]
        element = atom.element
        if kinds & {"U11", "U22", "U33", "U12", "U13", "U23"} and atom.u_aniso is not None:
            eig = np.linalg.eigvalsh(ucif_to_ucart(atom.u_aniso, crystal.cell))
            r = _range("U_eig", element)
            if r is not None and (eig.min() < r.lo or eig.max() > r.hi):
                bad = eig.min() if eig.min() < r.lo else eig.max()
                out.append(
                    Finding(f"{label}.U (eigenvalue)", bad, None, r.lo, r.hi, element, r.cure)
                )
        if "Pv" not in kinds:
            continue
        model = models[i]
        parts = (model.up, model.dn) if hasattr(model, "up") else (model,)
        pc = float(getattr(model, "pc", 1.0))
        try:
            n_core = spherical_atom(element, parts[0].charge).n_core
        except Exception:  # noqa: BLE001 - an element without a databank entry: no charge check
            continue
        pv = sum(float(m.pv) for m in parts)
        p00 = sum(float(m.plm[0]) for m in parts if m.lmax >= 0)
        charge = _z(element) - pc * n_core - pv - p00
        r = _range("charge", element)
        su = None
        if f"{label}.Pv" in names and len(parts) == 1:
            su = params[f"{label}.Pv"].su
        if r is not None and _outside(charge, su, r):
            out.append(Finding(f"{label} net charge", charge, su, r.lo, r.hi, element, r.cure))
        if len(parts) == 2:
            spin = float(parts[0].pv - parts[1].pv)
            r = _range("spin", element)
            limit = min(7.0, pv) if pv > 0 else 7.0
            if r is not None and abs(spin) > limit + 1e-9:
                out.append(
                    Finding(f"{label} spin population", spin, None, -limit, limit, element, r.cure)
                )
    return out

"""Atomic charges, spin moments and d-orbital populations of a refined model, with su.

Every quantity here is an affine function ``c + a·p`` of the structural
parameters p of a :class:`~chasm.refine.structure_model.StructureModel`
(either basis of split atoms, ``updown`` or ``chargespin``), so its standard
uncertainty is ``√(aᵀ C a)`` with C the covariance of p: correlations between
the parameters count, for single atoms and for the sums.

Quantities
----------
- Net atomic charge (electrons, ``e``):
  ``q = Z − Pc·n_core − Pv − P00`` for a Hansen-Coppens atom, and for a split
  atom ``q = Z − Pc·n_core − (Pv↑ + Pv↓ + P00↑ + P00↓)``; n_core is the
  electron count of the databank core of the atom's species, Pc its (fixed)
  core scale. A spherical (IAM) atom has the charge of its form-factor
  species, without su.
- Atomic spin moment (μB, spin only): ``m = Pv↑ − Pv↓ + P00↑ − P00↓`` for a
  split atom; other atoms carry no spin.
- Sums: over the asymmetric unit with the weights w_j = occupancy /
  |site-symmetry group| of the charge and spin constraints (CONVENTIONS.md,
  so the asymmetric-unit charge is what electroneutrality constrains), over
  the cell (Σ_j occupancy_j × multiplicity_j × value_j = n_ops × the
  asymmetric-unit sum), and per formula unit (cell / Z). Z defaults to
  :func:`formula_units` (gcd of the multiplicities). The one definition of these
  sums, :func:`linear_sums` with :func:`site_weight`, serves the spin moments
  of a PND spin model too (:func:`chasm.neutron.moments.moment_report`).
- d-orbital populations of transition-metal atoms with lmax = 4, in the
  atom's local frame, from the l = 0, 2, 4 populations by the exact map of
  :mod:`chasm.density.dorbitals` (Holladay, Leung & Coppens 1983): for the
  charge density (P↑ + P↓, or the atom's own populations if it is not split),
  for each spin, and for the spin density (P↑ − P↓). The spherical part is
  the valence monopole Pv (option ``spherical="pv+p00"`` adds P00), so the
  trace of the populations is Pv: every valence electron of the atom (for Cu,
  the databank's 3d + 4s shell) is counted as a d electron. ASSUMPTION: the
  conversion is exact only if the valence density and the l = 2, 4
  deformation functions share one radial function (|R_3d|²); with chasm's
  Slater deformation functions and the databank valence density this holds
  approximately, and the angular relation is applied to the refined
  populations as they are (Sabino & Coppens 2003). Odd-l populations (l = 1,
  3) do not enter.

Covariance
----------
With a :class:`~chasm.refine.refinement.Refinement`,
:func:`refinement_properties` takes the covariance of the last stage
(:func:`chasm.neutron.moments.refinement_covariance`: the full-vector
covariance T cov_z Tᵀ of :meth:`~chasm.refine.results.FitResult.cov_p`;
parameters refined only in earlier stages get their su² without
correlations, stated in the note). From su alone (e.g. a result folder's
result.json), :func:`atomic_properties` uses a diagonal covariance and says
so in the note: sums and combinations then ignore correlations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import gemmi
import numpy as np

from chasm.crystal.sums import formula_units, linear_sums, site_weight
from chasm.density.databank import spherical_atom
from chasm.density.dorbitals import (
    EVEN_INDICES,
    inverse_product_matrix,
    natural_orbitals,
    orbital_pair_labels,
)
from chasm.density.harmonics import lm_labels
from chasm.density.model import HansenCoppensAtom, SphericalAtom, SplitAtom
from chasm.errors import InputError
from chasm.io.su_format import format_quantity
from chasm.refine.parameters import atom_parameter_names

if TYPE_CHECKING:
    from chasm.refine.refinement import Refinement

__all__ = [
    "AtomProperties",
    "OrbitalPopulationSet",
    "Properties",
    "TRANSITION_METALS",
    "atomic_properties",
    "refinement_properties",
    "format_value",
    "format_table",
    "properties_tables",
    "format_properties",
    "markdown_properties",
]

TRANSITION_METALS = frozenset([*range(21, 31), *range(39, 49), 57, *range(72, 81)])
"""Atomic numbers of the d-block metals (Sc–Zn, Y–Cd, La, Hf–Hg)."""

SPHERICAL = ("pv", "pv+p00")


@dataclass
class AtomProperties:
    """Charge and spin of one atom.

    Attributes
    ----------
    label, element : str
    weight : float
        occupancy / |site-symmetry group| (weight in the asymmetric-unit sums).
    multiplicity : int
        Positions per cell.
    charge, charge_su : float
        Net charge q (e); su NaN when unknown, 0 for a fixed charge.
    spin, spin_su : float or None
        Spin moment (μB) of a split atom, None for other atoms.
    """

    label: str
    element: str
    weight: float
    multiplicity: int
    charge: float
    charge_su: float
    spin: float | None = None
    spin_su: float | None = None


@dataclass
class OrbitalPopulationSet:
    """d-orbital populations of one atom and one density (local frame).

    Attributes
    ----------
    label : str
    part : str
        ``"charge"`` (electrons), ``"up"``, ``"dn"`` (electrons per spin) or
        ``"spin"`` (μB, up − down).
    frame : str
        How the local frame was defined (axes text, or ``"matrix"``).
    frame_matrix : ndarray (3, 3)
        Local axes as columns (Cartesian).
    names : list of str
        ``"z2"``, ..., ``"xy"``, ``"z2/xz"``, ... (cross terms counted once).
    values, su : ndarray (15,)
    natural : ndarray (5,)
        Natural occupations (eigenvalues of the population matrix), no su.
    """

    label: str
    part: str
    frame: str
    frame_matrix: np.ndarray
    names: list
    values: np.ndarray
    su: np.ndarray
    natural: np.ndarray


@dataclass
class Properties:
    """Charges, spins, sums and d-orbital populations of a model.

    Attributes
    ----------
    atoms : list of AtomProperties
    charge_sums, spin_sums : dict
        ``"asymmetric unit"``, ``"cell"`` and ``"formula unit"`` -> (value, su);
        spin sums empty without split atoms; no formula unit when Z is unknown.
    z : int or None
        Formula units per cell.
    orbitals : list of OrbitalPopulationSet
    spherical : str
        ``"pv"`` or ``"pv+p00"``: the spherical part of the d populations.
    note : str
        How the su were obtained and what was skipped.
    """

    atoms: list[AtomProperties]
    charge_sums: dict
    spin_sums: dict
    z: int | None
    orbitals: list[OrbitalPopulationSet]
    spherical: str = "pv"
    note: str = ""
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- linear forms
def _kind_form(structure, i: int, spin: str | None, kind: str) -> dict[str, float]:
    """{parameter name: coefficient} of one population (or κ) of atom i.

    ``spin`` is ``"up"``/``"dn"`` for a split atom, None for a plain one.
    """
    atom, m = structure.crystal.atoms[i], structure.models[i]
    if isinstance(m, SplitAtom):
        out: dict[str, float] = {}
        for name, targets in structure._split[i]:
            for s, k, c in targets:
                if s == spin and k == kind:
                    out[name] = out.get(name, 0.0) + c
        return out
    names = atom_parameter_names(atom, m)
    return {names[kind]: 1.0} if kind in names else {}


def _combine(*terms: tuple[float, dict]) -> dict[str, float]:
    out: dict[str, float] = {}
    for coef, form in terms:
        for name, c in form.items():
            out[name] = out.get(name, 0.0) + coef * c
    return out


def _parts(m) -> list[str | None]:
    return ["up", "dn"] if isinstance(m, SplitAtom) else [None]


def _charge_form(structure, i: int) -> tuple[float, dict[str, float]]:
    """(constant, form) of the net charge of atom i (e)."""
    m = structure.models[i]
    if isinstance(m, SphericalAtom):
        return float(m.charge), {}
    if not isinstance(m, HansenCoppensAtom | SplitAtom):
        raise InputError(
            f"atom {structure.crystal.atoms[i].label}: no charge for a {type(m).__name__}"
        )
    hc = m.up if isinstance(m, SplitAtom) else m
    n_core = spherical_atom(m.element, hc.charge, hc.valence).n_core
    const = gemmi.Element(m.element).atomic_number - m.pc * n_core
    terms = [(-1.0, _kind_form(structure, i, s, k)) for s in _parts(m) for k in ("Pv", "P00")]
    return float(const), _combine(*terms)


def _spin_form(structure, i: int) -> dict[str, float] | None:
    m = structure.models[i]
    if not isinstance(m, SplitAtom):
        return None
    terms = [
        (sign, _kind_form(structure, i, s, k))
        for s, sign in (("up", 1.0), ("dn", -1.0))
        for k in ("Pv", "P00")
    ]
    return _combine(*terms)


def _even_forms(structure, i: int, spin: str | None, spherical: str) -> list[dict]:
    """Forms of the 15 even-l populations (00 = spherical part, 20 ... 44-)."""
    labels = lm_labels(4)
    forms = []
    for k in EVEN_INDICES:
        if k == 0:
            kinds = ["Pv"] + (["P00"] if spherical == "pv+p00" else [])
            forms.append(_combine(*[(1.0, _kind_form(structure, i, spin, x)) for x in kinds]))
        else:
            forms.append(_kind_form(structure, i, spin, f"P{labels[k]}"))
    return forms


# --------------------------------------------------------------------------- evaluation
class _Linear:
    """Values and su of forms over named parameters."""

    def __init__(self, names: Sequence[str], values: np.ndarray, cov: np.ndarray | None):
        self.index = {n: k for k, n in enumerate(names)}
        self.p = values
        self.cov = cov

    def vector(self, form: Mapping[str, float]) -> np.ndarray:
        a = np.zeros(len(self.p))
        for name, c in form.items():
            if name not in self.index:
                raise InputError(f"parameter {name!r} has no value; give every structural one")
            a[self.index[name]] += c
        return a

    def value_su(self, a: np.ndarray, const: float = 0.0) -> tuple[float, float]:
        value = const + float(a @ self.p)
        if self.cov is None:
            return value, float("nan")
        return value, float(np.sqrt(max(float(a @ self.cov @ a), 0.0)))


def _frame_text(m) -> str:
    axes = m.axes
    return axes.as_text() if axes is not None else "matrix"


def atomic_properties(
    structure,
    values,
    covariance: np.ndarray | None = None,
    names: Sequence[str] | None = None,
    su: Mapping[str, float] | None = None,
    z: int | None = None,
    spherical: str = "pv",
    note: str = "",
) -> Properties:
    """Charges, spin moments, sums and d-orbital populations with su.

    Parameters
    ----------
    structure : StructureModel
        The layout (atoms, models, split atoms, basis); the numbers come from
        ``values``, not from the models.
    values : mapping name -> float, or array_like
        Parameter values (a mapping with at least every structural parameter,
        or an array in the order of ``names``).
    covariance : ndarray (n, n), optional
        Covariance of the parameters in the order of ``names``.
    names : sequence of str, optional
        Order of ``values`` (array) and ``covariance``; default
        ``structure.names``.
    su : mapping name -> su, optional
        Used when ``covariance`` is None: a diagonal covariance (no
        correlations; said in the note). None or NaN entries count as 0.
    z : int, optional
        Formula units per cell (default: gcd of the site multiplicities).
    spherical : {"pv", "pv+p00"}
        Spherical part of the d-orbital populations (module docstring).
    note : str
        Prepended to the report's note.

    Returns
    -------
    Properties

    Raises
    ------
    InputError
        A missing parameter value, a covariance of the wrong shape, an
        unknown ``spherical`` option.
    """
    if spherical not in SPHERICAL:
        raise InputError(f"spherical must be one of {SPHERICAL}, got {spherical!r}")
    names = list(structure.names if names is None else names)
    if isinstance(values, Mapping):
        p = np.array([float(values.get(n, np.nan)) for n in names])
    else:
        p = np.asarray(values, dtype=float).reshape(-1)
        if p.size != len(names):
            raise InputError(f"{p.size} values for {len(names)} parameter names")
    notes = [note] if note else []
    if covariance is not None:
        cov = np.asarray(covariance, dtype=float)
        if cov.shape != (len(names), len(names)):
            raise InputError(f"covariance must be {len(names)} x {len(names)}, got {cov.shape}")
    elif su is not None:
        s = np.array([float(su.get(n) or 0.0) for n in names])
        cov = np.diag(np.nan_to_num(s) ** 2)
        notes.append("su from the parameter su alone: correlations are not included")
    else:
        cov = None
    used = {n for i in range(len(structure.models)) for n in _all_names(structure, i)}
    index = {n: k for k, n in enumerate(names)}
    missing = sorted(n for n in used if n not in index or not np.isfinite(p[index[n]]))
    if missing:
        raise InputError(f"no value for the parameters {', '.join(missing[:6])}")
    lin = _Linear(names, np.nan_to_num(p), cov)
    cr = structure.crystal
    atoms: list[AtomProperties] = []
    charge_vecs, spin_vecs = [], []
    for i, atom in enumerate(cr.atoms):
        weight = site_weight(cr, i)
        const, form = _charge_form(structure, i)
        a_q = lin.vector(form)
        q, q_su = lin.value_su(a_q, const)
        if not form:
            q_su = 0.0
        row = AtomProperties(atom.label, atom.element, weight, cr.multiplicity(i), q, q_su)
        charge_vecs.append((weight, const, a_q))
        sform = _spin_form(structure, i)
        if sform is not None:
            a_s = lin.vector(sform)
            row.spin, row.spin_su = lin.value_su(a_s)
            spin_vecs.append((weight, a_s))
        atoms.append(row)
    if z is None:
        try:
            z = formula_units(cr)
        except InputError as exc:
            notes.append(f"no sums per formula unit: {exc.message}")
    charge_sums = _sums(lin, charge_vecs, cr.n_ops, z)
    spin_sums = _sums(lin, [(w, 0.0, a) for w, a in spin_vecs], cr.n_ops, z) if spin_vecs else {}
    orbitals, skipped = _orbitals(structure, lin, spherical)
    if skipped:
        notes.append("no d-orbital populations for " + ", ".join(skipped) + " (they need lmax = 4)")
    return Properties(atoms, charge_sums, spin_sums, z, orbitals, spherical, "; ".join(notes))


def _all_names(structure, i: int) -> set[str]:
    m = structure.models[i]
    out = set(_charge_form(structure, i)[1])
    out |= set(_spin_form(structure, i) or {})
    if getattr(m, "lmax", -1) == 4:
        for s in _parts(m):
            for f in _even_forms(structure, i, s, "pv+p00"):
                out |= set(f)
    return out


def _sums(lin: _Linear, vecs, n_ops: int, z: int | None) -> dict:
    return linear_sums(lin.value_su, vecs, n_ops, z)


def _orbitals(structure, lin: _Linear, spherical: str):
    minv = inverse_product_matrix()
    out, skipped = [], []
    for i, (atom, m) in enumerate(zip(structure.crystal.atoms, structure.models, strict=True)):
        if not isinstance(m, HansenCoppensAtom | SplitAtom):
            continue
        if gemmi.Element(m.element).atomic_number not in TRANSITION_METALS:
            continue
        if m.lmax != 4:
            skipped.append(atom.label)
            continue
        maps = {}
        for s in _parts(m):
            even = np.array([lin.vector(f) for f in _even_forms(structure, i, s, spherical)])
            maps[s] = minv @ even  # (15, n_params)
        if isinstance(m, SplitAtom):
            parts = [
                ("charge", maps["up"] + maps["dn"]),
                ("up", maps["up"]),
                ("dn", maps["dn"]),
                ("spin", maps["up"] - maps["dn"]),
            ]
        else:
            parts = [("charge", maps[None])]
        for part, a in parts:
            values = a @ lin.p
            if lin.cov is None:
                su = np.full(15, np.nan)
            else:
                # diag(a C aᵀ) by one matrix product (einsum's triple loop took 45 ms a part)
                su = np.sqrt(np.clip(np.sum((a @ lin.cov) * a, axis=1), 0.0, None))
            out.append(
                OrbitalPopulationSet(
                    atom.label,
                    part,
                    _frame_text(m),
                    np.asarray(m.frame, dtype=float).copy(),
                    orbital_pair_labels(),
                    values,
                    su,
                    natural_orbitals(values)[0],
                )
            )
    return out, skipped


def refinement_properties(
    refinement: Refinement, z: int | None = None, spherical: str = "pv"
) -> Properties:
    """:func:`atomic_properties` of a refinement's current parameters and covariance.

    Parameters
    ----------
    refinement : Refinement
        After at least one stage for su (without stages, su are NaN).
    z, spherical : see :func:`atomic_properties`.
    """
    st = refinement.structure
    names = refinement.params.names[: refinement.n_struct]
    values = refinement.params.values[: refinement.n_struct]
    if refinement.outcomes:
        from chasm.neutron.moments import refinement_covariance

        cov, note = refinement_covariance(refinement, names)
        note = "su from the covariance of the last stage" + (f" ({note})" if note else "")
    else:
        cov, note = None, "no stage run: no su"
    return atomic_properties(st, values, cov, names, z=z, spherical=spherical, note=note)


# --------------------------------------------------------------------------- formatting
def format_value(value: float | None, su: float | None = None) -> str:
    """``value(su)`` with the su to two significant digits; the plain value without su."""
    if value is None:
        return "-"
    return format_quantity(float(value), su)


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool = False
) -> str:
    """A plain-text (aligned columns) or Markdown (pipe) table of strings."""
    rows = [[str(c) for c in r] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(headers) + " |"]
        lines.append("|" + "|".join("---" if k == 0 else "---:" for k in range(len(headers))) + "|")
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(str(h)), *(len(r[k]) for r in rows)) for k, h in enumerate(headers)]
    fmt = lambda cells: "  ".join(  # noqa: E731
        (c.ljust(w) if k == 0 else c.rjust(w))
        for k, (c, w) in enumerate(zip(cells, widths, strict=True))
    )
    return "\n".join([fmt(headers), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)])


def properties_tables(props: Properties) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, headers, rows) of every table of a :class:`Properties`."""
    out = []
    has_spin = any(a.spin is not None for a in props.atoms)
    headers = ["atom", "type", "mult", "charge q (e)"] + (["spin m (μB)"] if has_spin else [])
    rows = []
    for a in props.atoms:
        row = [a.label, a.element, str(a.multiplicity), format_value(a.charge, a.charge_su)]
        if has_spin:
            row.append("" if a.spin is None else format_value(a.spin, a.spin_su))
        rows.append(row)
    for key in ("asymmetric unit", "cell", "formula unit"):
        if key not in props.charge_sums:
            continue
        name = f"sum per {key}" + (f" (Z = {props.z})" if key == "formula unit" else "")
        row = [name, "", "", format_value(*props.charge_sums[key])]
        if has_spin:
            row.append(format_value(*props.spin_sums[key]) if key in props.spin_sums else "")
        rows.append(row)
    out.append(("Atomic charges and spin moments", headers, rows))
    by_atom: dict[str, list[OrbitalPopulationSet]] = {}
    for o in props.orbitals:
        by_atom.setdefault(o.label, []).append(o)
    units = {"charge": "e", "up": "e", "dn": "e", "spin": "μB"}
    for label, sets in by_atom.items():
        heads = ["orbital"] + [f"{o.part} ({units[o.part]})" for o in sets]
        rows = [
            [name] + [format_value(o.values[k], o.su[k]) for o in sets]
            for k, name in enumerate(sets[0].names)
        ]
        rows.append(["total (trace)"] + [f"{float(np.sum(o.values[:5])):.4f}" for o in sets])
        rows.append(
            ["natural occupations"] + [" ".join(f"{x:.3f}" for x in o.natural) for o in sets]
        )
        title = (
            f"d-orbital populations of {label} (local frame: {sets[0].frame}; spherical part "
            f"{'Pv + P00' if props.spherical == 'pv+p00' else 'Pv'}; cross terms counted once)"
        )
        out.append((title, heads, rows))
    return out


def _assumption(props: Properties) -> str:
    if not props.orbitals:
        return ""
    return (
        "d-orbital populations assume one radial function for the spherical part and the "
        "l = 2, 4 deformation functions (Holladay, Leung & Coppens 1983); every valence "
        "electron of the metal is counted as a d electron."
    )


def format_properties(props: Properties) -> str:
    """Plain-text tables of a :class:`Properties`."""
    parts = []
    for title, headers, rows in properties_tables(props):
        parts.append(title + "\n" + format_table(headers, rows))
    for text in (_assumption(props), props.note):
        if text:
            parts.append("note: " + text)
    return "\n\n".join(parts) + "\n"


def markdown_properties(props: Properties, level: int = 3) -> str:
    """Markdown tables of a :class:`Properties` (headings of the given level)."""
    parts = []
    for title, headers, rows in properties_tables(props):
        parts.append(f"{'#' * level} {title}\n\n" + format_table(headers, rows, markdown=True))
    for text in (_assumption(props), props.note):
        if text:
            parts.append(f"*{text}*")
    return "\n\n".join(parts) + "\n"

"""The refinable structure of a (joint) refinement: atoms, ADP sets, split atoms, views.

A :class:`StructureModel` is the one model that every data set of a refinement
sees, each in its own way:

* X-rays see the charge density: every atom's density model, a split atom as
  its core plus ρ↑ plus ρ↓, with the ADPs of the set the data set refers to
  (``"X"`` by default);
* unpolarised neutrons (and the nuclear part of flipping ratios) see the
  nuclei: a constant coherent scattering length b per atom, with the neutron
  ADP set (``"N"`` by default);
* the magnetic neutron amplitude sees the spin density ρ↑ − ρ↓ of the split
  atoms (μB), with the neutron ADPs.

Each way of seeing is an :class:`EngineView`: a list of *engine atoms* (a
crystal atom, the density model the engine evaluates, and the sign of its
contribution) on a private copy of the crystal, and the linear map from the
engine's Jacobian columns to the refinement's parameters. The engine is the
ordinary :class:`~chasm.scattering.engine.StructureFactorEngine`; a split atom
contributes three engine atoms to the X-ray view (its core alone, the up part
and the down part, all without core) and two to the magnetic view (up, and
down with a negative occupancy), so that F_X = F_core + F↑ + F↓ and
F_spin = F↑ − F↓ with every derivative exact. When its two spins share κ and
κ', the same sums are one engine atom per view (populations P↑ + P↓ with the
core, and P↑ − P↓); the engine applies the view's column map block by block.

Parameter names (per atom, in this order; the first block is exactly
:func:`chasm.refine.parameters.parameters_from_model` for unsplit models):

* ``L.x L.y L.z``, the ADPs of set X (``L.U11`` ... or ``L.Uiso``), ``L.occ``;
* unsplit Hansen-Coppens atom: ``L.Pv L.kappa L.P00 ... L.kappa_prime``;
* split atom, ``basis="updown"``: ``L.Pv.up L.kappa.up L.P00.up ... L.kappa_prime.up``
  then the same with ``.dn``; with ``basis="chargespin"`` the populations are
  ``L.Pv``, ``L.P00``... (charge, P↑ + P↓) and ``L.Pv.spin``, ``L.P00.spin``...
  (spin, P↑ − P↓), and κ, κ' stay ``L.kappa.up`` / ``L.kappa.dn``. A κ (κ')
  shared by the two spins is one parameter ``L.kappa`` (``L.kappa_prime``);
* after all atoms, the other ADP sets: ``L.U11.N`` ... for every atom.

Units: fractional coordinates, Å², electrons for charge populations and μB
(unpaired electrons) for spin populations.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import gemmi
import numpy as np
from numpy.typing import ArrayLike

from chasm.crystal.adp import ueq
from chasm.crystal.structure import Atom, Crystal
from chasm.density.databank import spherical_atom
from chasm.density.harmonics import lm_labels
from chasm.density.model import (
    AtomModel,
    EngineModel,
    HansenCoppensAtom,
    NuclearAtom,
    SplitAtom,
)
from chasm.errors import InputError
from chasm.refine.constraints import LinearConstraints
from chasm.refine.parameters import (
    Parameters,
    atom_parameter_names,
    model_parameter,
    parameters_from_model,
    read_parameter,
    set_model_parameter,
    write_parameter,
)
from chasm.refine.symmetry_constraints import (
    adp_rows,
    multipole_rows,
    point_group_symbol,
    site_symmetry_constraints,
)
from chasm.scattering.engine import (
    U_LABELS,
    ColumnMap,
    StructureFactorEngine,
    StructureFactors,
    atom_columns,
)
from chasm.scattering.xray import RowFactors

__all__ = ["StructureModel", "EngineView", "ADP_SETS_DEFAULT", "VIEW_KINDS"]

ADP_SETS_DEFAULT = {"xray": "X", "und": "N", "pnd": "N"}
VIEW_KINDS = ("xray", "nuclear", "magnetic")
BASES = ("updown", "chargespin")
_SPINS = ("up", "dn")

#: One target of a split-atom parameter: (spin "up"/"dn", kind "Pv"/"kappa"/"P21+"..., coefficient)
Target = tuple[str, str, float]
#: The recipe of a split atom: (parameter name, its targets) per parameter
SplitRecipe = list[tuple[str, list[Target]]]


def _population_kinds(lmax: int) -> list[str]:
    return ["Pv"] + [f"P{s}" for s in lm_labels(lmax)] if lmax >= 0 else ["Pv"]


@dataclass
class _EngineAtom:
    index: int  # atom of the structure's crystal
    model: EngineModel  # what the engine evaluates
    sign: float  # +1, or -1 for the spin-down part in the magnetic view
    role: str  # "plain", "core", "up", "dn", "nuclear"


class StructureModel:
    """Atoms, density models (plain or split), ADP sets and neutron lengths.

    Parameters
    ----------
    crystal : Crystal
        Cell, symmetry, positions, occupancies and the ADPs of set ``"X"``.
    models : sequence
        One per atom: SphericalAtom, HansenCoppensAtom or SplitAtom.
    adp_sets : mapping name -> list of (u_aniso or None, uiso), or iterable of names
        ADP sets besides ``"X"`` (e.g. ``"N"`` for neutrons). Given by name
        only, a set starts as a copy of the X set.
    basis : {"updown", "chargespin"}
        Names of the populations of split atoms (module docstring).
    scattering_lengths : mapping label or element -> b (fm), optional
        Coherent scattering lengths for the nuclear view; default from
        :func:`chasm.neutron.scattering_lengths.scattering_length`.
    """

    def __init__(
        self,
        crystal: Crystal,
        models: Sequence[AtomModel],
        adp_sets: Mapping[str, Any] | Iterable[str] = (),
        basis: str = "updown",
        scattering_lengths: Mapping[str, complex] | None = None,
    ) -> None:
        if basis not in BASES:
            raise InputError(f"basis must be one of {BASES}, got {basis!r}")
        self.crystal = crystal
        self.models = list(models)
        if len(self.models) != len(crystal.atoms):
            raise InputError(
                f"{len(crystal.atoms)} atoms but {len(self.models)} density models: "
                "give one per atom"
            )
        self.basis = basis
        self.adp: dict[str, list[tuple[np.ndarray | None, float]]] = {}
        items = adp_sets.items() if isinstance(adp_sets, Mapping) else ((n, None) for n in adp_sets)
        for name, values in items:
            self.add_adp_set(name, values)
        self._b = self._scattering_lengths(scattering_lengths or {})
        self._build_names()

    # ------------------------------------------------------------------ ADP sets
    def add_adp_set(
        self, name: str, values: Iterable[tuple[ArrayLike | None, float]] | None = None
    ) -> None:
        """Add an ADP set (a copy of set X when ``values`` is None); no-op for X."""
        if name == "X" or name in self.adp:
            return
        if not name or any(c in name for c in ".,*?[ "):
            raise InputError(f"invalid ADP set name {name!r}")
        atoms = self.crystal.atoms
        if values is None:
            values = [(None if a.u_aniso is None else a.u_aniso.copy(), _uiso(a)) for a in atoms]
        given = list(values)
        if len(given) != len(atoms):
            raise InputError(f"ADP set {name!r}: {len(given)} entries for {len(atoms)} atoms")
        clean: list[tuple[np.ndarray | None, float]] = []
        for atom, (u6, uiso) in zip(atoms, given, strict=True):
            if (u6 is None) != (atom.u_aniso is None):
                raise InputError(
                    f"ADP set {name!r}: atom {atom.label} must be "
                    f"{'anisotropic' if atom.u_aniso is not None else 'isotropic'} as in set X"
                )
            clean.append((None if u6 is None else np.asarray(u6, float).reshape(6), float(uiso)))
        self.adp[name] = clean
        if hasattr(self, "_names"):
            self._build_names()

    @property
    def adp_set_names(self) -> list[str]:
        return ["X"] + list(self.adp)

    def _adp_of(self, i: int, adp_set: str) -> tuple[np.ndarray | None, float]:
        if adp_set == "X":
            a = self.crystal.atoms[i]
            return a.u_aniso, _uiso(a)
        if adp_set not in self.adp:
            raise InputError(f"unknown ADP set {adp_set!r}; known: {', '.join(self.adp_set_names)}")
        return self.adp[adp_set][i]

    def _scattering_lengths(self, given: Mapping[str, complex]) -> list[float]:
        from chasm.neutron.scattering_lengths import scattering_length

        out = []
        for atom in self.crystal.atoms:
            b: complex
            if atom.label in given:
                b = given[atom.label]
            elif atom.element in given:
                b = given[atom.element]
            else:
                b = scattering_length(atom.element)
            out.append(float(complex(b).real))
        return out

    # ------------------------------------------------------------------ names
    def _split_names(self, label: str, m: SplitAtom) -> SplitRecipe:
        """(name, [(spin, kind, coefficient)]) of the population/expansion parameters."""
        out: SplitRecipe = []
        pops = _population_kinds(m.lmax)
        kap = [("kappa", m.share_kappa)]
        if m.lmax >= 0:
            kap.append(("kappa_prime", m.share_kappa_prime))
        if self.basis == "updown":
            for spin in _SPINS:
                for kind in ["Pv", "kappa"] + pops[1:] + (["kappa_prime"] if m.lmax >= 0 else []):
                    shared = dict(kap).get(kind, False)
                    if shared and spin == "dn":
                        continue
                    name = f"{label}.{kind}" if shared else f"{label}.{kind}.{spin}"
                    targets: list[Target] = (
                        [(s, kind, 1.0) for s in _SPINS] if shared else [(spin, kind, 1.0)]
                    )
                    out.append((name, targets))
        else:
            for kind in pops:
                out.append((f"{label}.{kind}", [("up", kind, 0.5), ("dn", kind, 0.5)]))
            for kind in pops:
                out.append((f"{label}.{kind}.spin", [("up", kind, 0.5), ("dn", kind, -0.5)]))
            for kind, shared in kap:
                if shared:
                    out.append((f"{label}.{kind}", [("up", kind, 1.0), ("dn", kind, 1.0)]))
                else:
                    out += [(f"{label}.{kind}.{s}", [(s, kind, 1.0)]) for s in _SPINS]
        return out

    def _build_names(self) -> None:
        """Parameter names, start values, bounds, and the write-back recipe."""
        cr = self.crystal
        plain_models = self._plain_models()
        base = parameters_from_model(cr, plain_models)
        params = Parameters()
        self._split: dict[int, SplitRecipe] = {}
        for i, (atom, m) in enumerate(zip(cr.atoms, self.models, strict=True)):
            for name in atom_parameter_names(atom, plain_models[i]).values():
                p = base[name]
                params.add(name, p.value, bounds=p.bounds)
            if isinstance(m, SplitAtom):
                recipe = self._split_names(atom.label, m)
                self._split[i] = recipe
                for name, targets in recipe:
                    params.add(name, self._split_value(m, targets), bounds=_bounds(targets))
        for set_name, values in self.adp.items():
            for atom, (u6, uiso) in zip(cr.atoms, values, strict=True):
                if u6 is None:
                    params.add(f"{atom.label}.Uiso.{set_name}", uiso, bounds=(0.0, np.inf))
                else:
                    for k, lab in enumerate(U_LABELS):
                        b = (0.0, np.inf) if k < 3 else None
                        params.add(f"{atom.label}.{lab}.{set_name}", u6[k], bounds=b)
        self._template = params
        self._names = params.names
        self._index = {n: k for k, n in enumerate(self._names)}

    def _plain_models(self) -> list[AtomModel]:
        """The models with every split atom replaced by a position/ADP-only stand-in."""
        return [m if not isinstance(m, SplitAtom) else _Placeholder(m.element) for m in self.models]

    def _split_value(self, m: SplitAtom, targets: list[Target]) -> float:
        """Current value of a split-atom parameter from its up/dn parts."""
        if len(targets) == 2 and targets[0][2] == 0.5:  # charge or spin population
            sign = 1.0 if targets[1][2] > 0 else -1.0
            kind = targets[0][1]
            return model_parameter(m.up, kind) + sign * model_parameter(m.dn, kind)
        spin, kind, _ = targets[0]
        return model_parameter(getattr(m, spin), kind)

    def parameters(self) -> Parameters:
        """A fresh Parameters object with the current values (all free)."""
        out = self._template.copy()
        out.set_values(self.values())
        return out

    @property
    def names(self) -> list[str]:
        return list(self._names)

    def values(self) -> np.ndarray:
        """Current values of every structural parameter, in :attr:`names` order."""
        v = np.zeros(len(self._names))
        cr = self.crystal
        for i, (atom, m, plain) in enumerate(
            zip(cr.atoms, self.models, self._plain_models(), strict=True)
        ):
            for kind, name in atom_parameter_names(atom, plain).items():
                v[self._index[name]] = read_parameter(atom, plain, kind)
            for name, targets in self._split.get(i, []):  # (only split atoms have a recipe)
                v[self._index[name]] = self._split_value(cast(SplitAtom, m), targets)
        for set_name, values in self.adp.items():
            for atom, (u6, uiso) in zip(cr.atoms, values, strict=True):
                if u6 is None:
                    v[self._index[f"{atom.label}.Uiso.{set_name}"]] = uiso
                else:
                    for k, lab in enumerate(U_LABELS):
                        v[self._index[f"{atom.label}.{lab}.{set_name}"]] = u6[k]
        return v

    def apply(self, params: Parameters) -> None:
        """Write parameter values into the crystal, the models and the ADP sets (in place)."""
        cr = self.crystal
        for i, (atom, m, plain) in enumerate(
            zip(cr.atoms, self.models, self._plain_models(), strict=True)
        ):
            names = atom_parameter_names(atom, plain)
            for kind, name in names.items():
                write_parameter(atom, plain, kind, params[name].value)
            if atom.u_aniso is not None:
                atom.uiso = float(ueq(atom.u_aniso, cr.cell))
            if i in self._split:
                acc: dict[tuple[str, str], float] = {}
                for name, targets in self._split[i]:
                    value = params[name].value
                    for spin, kind, coef in targets:
                        acc[spin, kind] = acc.get((spin, kind), 0.0) + coef * value
                for (spin, kind), value in acc.items():
                    set_model_parameter(getattr(m, spin), kind, value)
        for set_name, values in self.adp.items():
            for k, atom in enumerate(cr.atoms):
                u6, _ = values[k]
                if u6 is None:
                    values[k] = (None, params[f"{atom.label}.Uiso.{set_name}"].value)
                else:
                    for j, lab in enumerate(U_LABELS):
                        u6[j] = params[f"{atom.label}.{lab}.{set_name}"].value
                    values[k] = (u6, float(ueq(u6, cr.cell)))

    @property
    def is_plain(self) -> bool:
        """True without split atoms and extra ADP sets (the X-ray-only layout)."""
        return not self._split and not self.adp

    # ------------------------------------------------------------------ constraints
    def site_constraints(self, params: Parameters) -> LinearConstraints:
        """Site symmetry for positions, every ADP set, and both spins of split atoms."""
        cr = self.crystal
        plain = self._plain_models()
        out = site_symmetry_constraints(cr, plain, params)
        rot, _ = cr.symops
        cart = cr.cartesian_rotations()
        nstar = np.linalg.norm(np.asarray(cr.B, dtype=float), axis=0)
        for i, atom in enumerate(cr.atoms):
            ops = cr.site_symmetry(i)
            if len(ops) == 1:
                continue
            group = point_group_symbol(rot[ops])
            if atom.u_aniso is not None:
                for set_name in self.adp:
                    names = {lab: f"{atom.label}.{lab}.{set_name}" for lab in U_LABELS}
                    head = f"site symmetry of {atom.label} ({group}), ADP set {set_name}"
                    adp_rows(out, rot[ops], names, head, nstar, 5e-5)
            m = self.models[i]
            if isinstance(m, SplitAtom) and m.lmax >= 0:
                tags = ("up", "dn") if self.basis == "updown" else ("", "spin")
                for tag in tags:
                    names = {
                        f"P{s}": f"{atom.label}.P{s}" + (f".{tag}" if tag else "")
                        for s in lm_labels(m.lmax)
                    }
                    head = f"site symmetry of {atom.label} ({group}), {tag or 'charge'}"
                    multipole_rows(out, cart[ops], m.up, names, head, 5e-4)
        return out

    def _population_coefficients(
        self, which: str, labels: Iterable[str] | None = None
    ) -> tuple[dict[str, float], float]:
        """Σ_j m_j (electrons or spin) as {name: coefficient} + constant."""
        cr = self.crystal
        coeffs: dict[str, float] = {}
        const = 0.0
        for i, (atom, m) in enumerate(zip(cr.atoms, self.models, strict=True)):
            if labels is not None and atom.label not in labels:
                continue
            weight = atom.occupancy / len(cr.site_symmetry(i))
            kinds = ("Pv", "P00")
            if isinstance(m, SplitAtom):
                if which == "charge":
                    core = spherical_atom(m.element, m.up.charge, m.up.valence).n_core
                    const += weight * (m.pc * core - gemmi.Element(m.element).atomic_number)
                for name, targets in self._split[i]:
                    for spin, kind, coef in targets:
                        if kind not in kinds:
                            continue
                        sign = 1.0 if (which == "charge" or spin == "up") else -1.0
                        coeffs[name] = coeffs.get(name, 0.0) + weight * sign * coef
            elif which == "charge":
                if isinstance(m, HansenCoppensAtom):
                    core = spherical_atom(m.element, m.charge, m.valence).n_core
                    const += weight * (m.pc * core - gemmi.Element(m.element).atomic_number)
                    names = atom_parameter_names(atom, m)
                    for kind in kinds:
                        if kind in names:
                            coeffs[names[kind]] = coeffs.get(names[kind], 0.0) + weight
                else:
                    const -= weight * getattr(m, "charge", 0)
        coeffs = {k: v for k, v in coeffs.items() if v != 0.0}
        return coeffs, const

    def charge_constraint(
        self, params: Parameters, charge: float = 0.0, labels: Iterable[str] | None = None
    ) -> LinearConstraints:
        """Charge of the asymmetric unit (or of ``labels``) = ``charge`` (electrons).

        Σ_j m_j (Pc n_core + Pv + P00 − Z) = −Q, with split atoms counted as
        Pv↑ + Pv↓ + P00↑ + P00↓ and m_j = occupancy / |site group|.
        """
        coeffs, const = self._population_coefficients("charge", labels)
        if not coeffs:
            raise InputError("a charge constraint needs at least one Hansen-Coppens atom")
        out = LinearConstraints(params)
        rhs = -float(charge) - const
        out.add(coeffs, rhs, f"charge of the asymmetric unit = {float(charge):g} e")
        return out

    def spin_constraint(
        self, params: Parameters, total: float, labels: Iterable[str] | None = None
    ) -> LinearConstraints:
        """Total spin of the asymmetric unit (or of ``labels``) = ``total`` (μB).

        Σ_j m_j (Pv↑ − Pv↓ + P00↑ − P00↓) over the split atoms; ``total`` is the
        number of unpaired electrons per asymmetric unit (e.g. from
        magnetisation data).
        """
        coeffs, _ = self._population_coefficients("spin", labels)
        if not coeffs:
            raise InputError("a total-spin constraint needs at least one split atom")
        out = LinearConstraints(params)
        out.add(coeffs, float(total), f"total spin of the asymmetric unit = {float(total):g} μB")
        return out

    def split_labels(self) -> list[str]:
        return [self.crystal.atoms[i].label for i in self._split]

    # ------------------------------------------------------------------ views
    def view(self, kind: str, adp_set: str | None = None) -> EngineView:
        """The engine atoms and column map of one kind of data (module docstring)."""
        if kind not in VIEW_KINDS:
            raise InputError(f"view kind must be one of {VIEW_KINDS}, got {kind!r}")
        adp_set = adp_set or ("X" if kind == "xray" else "N")
        if adp_set != "X" and adp_set not in self.adp:
            raise InputError(f"unknown ADP set {adp_set!r}; known: {', '.join(self.adp_set_names)}")
        return EngineView(self, kind, adp_set)

    def partial_nuclear_view(
        self, lengths: Mapping[int, float], adp_set: str | None = None
    ) -> EngineView:
        """A nuclear view of some atoms only, with scattering lengths of the caller's choice.

        For a nuclear amplitude that is not the coherent one, e.g. the
        spin-dependent amplitude 14.56 P_H fm of polarised protons
        (:mod:`chasm.neutron.flipping`). The view sees positions, occupancies
        and the ADP set ``adp_set`` (default ``"N"``) of the atoms given, and
        its Jacobian columns are theirs; :meth:`view` is unchanged.

        Parameters
        ----------
        lengths : mapping atom index -> b (fm)
            The atoms of the view (indices into ``crystal.atoms``) and their
            scattering lengths.
        adp_set : str, optional
        """
        adp_set = adp_set or "N"
        if adp_set != "X" and adp_set not in self.adp:
            raise InputError(f"unknown ADP set {adp_set!r}; known: {', '.join(self.adp_set_names)}")
        if not lengths:
            raise InputError("a partial nuclear view needs at least one atom")
        atoms = [
            _EngineAtom(i, NuclearAtom(self.crystal.atoms[i].element, float(b)), 1.0, "nuclear")
            for i, b in sorted(lengths.items())
        ]
        return EngineView(self, "nuclear", adp_set, atoms=atoms)

    def engine_atoms(self, kind: str) -> list[_EngineAtom]:
        out: list[_EngineAtom] = []
        for i, m in enumerate(self.models):
            if kind == "nuclear":
                el = self.crystal.atoms[i].element
                out.append(_EngineAtom(i, NuclearAtom(el, self._b[i]), 1.0, "nuclear"))
            elif kind == "xray":
                if isinstance(m, SplitAtom):
                    core = HansenCoppensAtom(
                        element=m.element,
                        pv=0.0,
                        lmax=-1,
                        pc=m.pc,
                        charge=m.up.charge,
                        valence=m.up.valence,
                    )
                    out.append(_EngineAtom(i, core, 1.0, "core"))
                    out.append(_EngineAtom(i, m.up, 1.0, "up"))
                    out.append(_EngineAtom(i, m.dn, 1.0, "dn"))
                else:
                    out.append(_EngineAtom(i, m, 1.0, "plain"))
            elif isinstance(m, SplitAtom):
                out.append(_EngineAtom(i, m.up, 1.0, "up"))
                out.append(_EngineAtom(i, m.dn, -1.0, "dn"))
        return out


class _Placeholder(NuclearAtom):
    """Stand-in model of a split atom in the plain layout: x, U, occ only."""

    def __init__(self, element: str) -> None:
        super().__init__(element, 0.0)


def _uiso(atom: Atom) -> float:
    """Uiso (or Ueq) of an atom of a crystal (set for every atom by :class:`Crystal`)."""
    assert atom.uiso is not None
    return float(atom.uiso)


def _bounds(targets: list[Target]) -> tuple[float, float] | None:
    kind = targets[0][1]
    if kind in ("kappa", "kappa_prime"):
        return (0.5, 2.0)
    return None


def _merge_split_atoms(
    structure: StructureModel, kind: str, atoms: list[_EngineAtom]
) -> list[_EngineAtom]:
    """One engine atom per split atom with shared κ and κ' (see :class:`EngineView`)."""
    out: list[_EngineAtom] = []
    for ea in atoms:
        m = structure.models[ea.index]
        shared = (
            isinstance(m, SplitAtom)
            and m.share_kappa
            and (m.share_kappa_prime or m.lmax < 0)
            and kind in ("xray", "magnetic")
        )
        if not shared:
            out.append(ea)
        elif ea.role == ("core" if kind == "xray" else "up"):  # the atom's first part
            role = "charge" if kind == "xray" else "spin"
            merged = cast(SplitAtom, m).charge_model()  # (``shared`` implies a split atom)
            out.append(_EngineAtom(ea.index, merged, 1.0, role))  # refreshed later
    return out


def _merged_targets(split: SplitRecipe, kind: str, role: str) -> list[tuple[str, float]]:
    """Parameters (and coefficients) of one column of a merged split atom.

    The merged populations are P↑ ± P↓ (+ for X-rays, − for the spin density):
    dP/dθ sums the coefficients of both spins (the charge/spin basis gives 1 and
    0); κ and κ' are the shared ones (the up part's).
    """
    sign = 1.0 if role == "charge" else -1.0
    coef: dict[str, float] = {}
    for name, targets in split:
        for spin, k2, c in targets:
            if k2 != kind:
                continue
            if kind in ("kappa", "kappa_prime"):
                c = c if spin == "up" else 0.0
            elif spin == "dn":
                c = sign * c
            coef[name] = coef.get(name, 0.0) + c
    return [(name, c) for name, c in coef.items() if c != 0.0]


class EngineView:
    """One kind of data's view of a :class:`StructureModel` (module docstring).

    Attributes
    ----------
    crystal : Crystal
        Private copy: one atom per engine atom, refreshed from the structure
        (positions, the view's ADP set, signed occupancy) at every computation.
    models : list
        What the engine evaluates for each engine atom (the structure's own
        model objects, so populations are always current; for a merged split
        atom a private model refreshed from its two spins).

    A split atom whose two spins share κ and κ' is one engine atom in the
    X-ray view (populations P↑ + P↓ and the core: its charge model) and in the
    magnetic view (P↑ − P↓), rather than three (core, ρ↑, ρ↓) and two: the
    same structure factors, half or a third of the work, and derivatives
    w.r.t. the populations that X-rays (or the spin density) do not see that
    are exactly zero. ``merge=False`` keeps the separate engine atoms.
    ``atoms`` replaces the view kind's engine atoms by the caller's (see
    :meth:`StructureModel.partial_nuclear_view`).
    """

    def __init__(
        self,
        structure: StructureModel,
        kind: str,
        adp_set: str,
        merge: bool = True,
        atoms: list[_EngineAtom] | None = None,
    ) -> None:
        self.structure, self.kind, self.adp_set = structure, kind, adp_set
        if atoms is not None:
            self.atoms = list(atoms)
        else:
            self.atoms = structure.engine_atoms(kind)
            if merge:
                self.atoms = _merge_split_atoms(structure, kind, self.atoms)
        if not self.atoms:
            raise InputError(
                "the magnetic view needs at least one split atom (a spin density); "
                "split the magnetic atoms of the model"
            )
        src = structure.crystal.atoms
        copies = []
        for k, ea in enumerate(self.atoms):
            a = src[ea.index]
            copies.append(
                Atom(
                    label=f"{a.label}#{k}",
                    element=a.element,
                    xyz=a.xyz.copy(),
                    occupancy=a.occupancy,
                    uiso=a.uiso,
                    u_aniso=None if a.u_aniso is None else a.u_aniso.copy(),
                )
            )
        self.crystal = replace(structure.crystal, atoms=copies)
        self.models = [ea.model for ea in self.atoms]
        self._build_map()
        self.refresh()

    def _build_map(self) -> None:
        st = self.structure
        index = st._index
        src: list[int] = []
        dst: list[int] = []
        coef: list[float] = []
        col = 0
        for ea in self.atoms:
            atom = st.crystal.atoms[ea.index]
            label = atom.label
            split = st._split.get(ea.index, [])  # (a split atom's roles only read it)
            for kind, _ in atom_columns(atom, ea.model):
                targets: list[tuple[str, float]] = []
                if kind in ("x", "y", "z"):
                    targets = [(f"{label}.{kind}", 1.0)]
                elif kind in U_LABELS or kind == "Uiso":
                    suffix = "" if self.adp_set == "X" else f".{self.adp_set}"
                    targets = [(f"{label}.{kind}{suffix}", 1.0)]
                elif kind == "occ":
                    targets = [(f"{label}.occ", ea.sign)]
                elif ea.role == "plain":
                    targets = [(f"{label}.{kind}", 1.0)]
                elif ea.role in ("up", "dn"):
                    for name, tg in split:
                        for spin, k2, c in tg:
                            if spin == ea.role and k2 == kind:
                                targets.append((name, c))
                elif ea.role in ("charge", "spin"):
                    targets = _merged_targets(split, kind, ea.role)
                # core and nuclear atoms: their Pv / kappa columns are not parameters
                for name, c in targets:
                    src.append(col)
                    dst.append(index[name])
                    coef.append(c)
                col += 1
        self.n_engine_columns = col
        self.n_struct = len(st._names)
        src_a, dst_a, coef_a = np.array(src, int), np.array(dst, int), np.array(coef, float)
        self.prefix_identity = bool(
            len(src_a) == col
            and np.array_equal(src_a, np.arange(col))
            and np.array_equal(dst_a, np.arange(col))
            and np.all(coef_a == 1.0)
        )
        # the map the engine applies block by block (None: its columns are the parameters)
        plain = self.prefix_identity and col == self.n_struct
        self.column_map = None if plain else ColumnMap(src_a, dst_a, coef_a, st._names)
        # rounds of unique destinations, so that J[:, dst] += c J_e[:, src] is vectorised
        self._rounds: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        remaining = np.arange(len(src_a))
        while remaining.size:
            _, first = np.unique(dst_a[remaining], return_index=True)
            take = remaining[first]
            self._rounds.append((src_a[take], dst_a[take], coef_a[take]))
            remaining = np.setdiff1d(remaining, take)

    def refresh(self) -> None:
        """Copy positions, the view's ADPs and signed occupancies from the structure.

        Merged split atoms also get their populations and expansions.
        """
        st = self.structure
        for a, ea in zip(self.crystal.atoms, self.atoms, strict=True):
            s = st.crystal.atoms[ea.index]
            a.xyz[:] = s.xyz
            u6, uiso = st._adp_of(ea.index, self.adp_set)
            if u6 is not None:
                assert a.u_aniso is not None  # the copy is anisotropic as its atom is
                a.u_aniso[:] = u6
            a.uiso = uiso
            a.occupancy = ea.sign * s.occupancy
            if ea.role in ("charge", "spin"):  # a merged split atom (_merge_split_atoms)
                split = cast(SplitAtom, st.models[ea.index])
                sign = 1.0 if ea.role == "charge" else -1.0
                m, up, dn = cast(HansenCoppensAtom, ea.model), split.up, split.dn
                m.pv = up.pv + sign * dn.pv
                m.plm[:] = up.plm + sign * dn.plm
                m.kappa, m.kappa_prime = up.kappa, up.kappa_prime
                m.pc = split.pc if ea.role == "charge" else 0.0

    def engine(self, hkl: ArrayLike, **kwargs: Any) -> StructureFactorEngine:
        """A structure-factor engine on the view's crystal (dispersion for X-rays only)."""
        kwargs.setdefault("anomalous", self.kind == "xray")
        roles = ("plain", "core", "charge")
        kwargs.setdefault("dispersion_atoms", [ea.role in roles for ea in self.atoms])
        return StructureFactorEngine(self.crystal, self.models, hkl, **kwargs)

    def compute(
        self, engine: StructureFactorEngine, jacobian: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """F (electrons, fm or μB) and dF/dp over the structural parameters (or None)."""
        self.refresh()
        res = engine.compute(jacobian=jacobian, column_map=self.column_map)
        return res.F, res.jacobian

    def compute_real(
        self,
        engine: StructureFactorEngine,
        out: np.ndarray | None = None,
        row_factors: RowFactors | None = None,
        column_map: ColumnMap | None = None,
    ) -> StructureFactors:
        """F and the real Jacobian over the structural parameters (engine's ``real=True``).

        Returns the engine's :class:`~chasm.scattering.engine.StructureFactors`
        with ``jacobian`` = dA/dp (n, n_struct), written into ``out`` when given
        (columns the view does not see are not written: pass zeros), and
        ``jacobian_imag`` = dB/dp of the structural columns ``imag_columns``;
        with ``row_factors`` the Jacobian of a real observable instead (see
        :meth:`~chasm.scattering.engine.StructureFactorEngine.compute`).
        ``column_map`` replaces the view's own (e.g. the same map with its
        output columns permuted, :meth:`permuted_map`).
        """
        self.refresh()
        cmap = self.column_map if column_map is None else column_map
        return engine.compute(
            jacobian=True, real=True, out=out, column_map=cmap, row_factors=row_factors
        )

    def permuted_map(self, where: np.ndarray, names: list[str]) -> ColumnMap:
        """The view's column map with structural column j written to column ``where[j]``.

        ``where`` maps every structural column the view writes to a column of
        an output of ``len(names)`` columns.
        """
        if self.column_map is None:  # the engine's columns are the parameters
            src = np.arange(self.n_engine_columns)
            return ColumnMap(src, where[src], np.ones(src.size), names)
        cm = self.column_map
        return ColumnMap(cm.src, where[cm.dst], cm.coef, names)

    def columns_written(self) -> np.ndarray:
        """The structural columns this view's engine writes (ascending)."""
        if self.column_map is None:
            return np.arange(self.n_engine_columns)
        return np.unique(self.column_map.dst)

    def map_columns(self, j_engine: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Engine Jacobian (n, n_engine) -> structural Jacobian (n, n_struct)."""
        n = j_engine.shape[0]
        if out is None and self.prefix_identity and self.n_engine_columns == self.n_struct:
            return j_engine  # the plain layout: the engine's columns are the parameters
        if out is None:
            out = np.zeros((n, self.n_struct), dtype=j_engine.dtype)
        if self.prefix_identity:
            out[:, : self.n_engine_columns] = j_engine
            return out
        for s, d, c in self._rounds:
            if np.all(c == 1.0):
                out[:, d] += j_engine[:, s]
            else:
                out[:, d] += j_engine[:, s] * c
        return out

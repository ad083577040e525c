"""Generators of the usual linear constraints on a refinement's parameters.

:func:`site_symmetry_constraints` (positions, U_cif and multipoles of atoms on
special positions), :func:`electroneutrality`, :func:`equal_constraints` and
:func:`same_value`; each returns a
:class:`~chasm.refine.constraints.LinearConstraints` over the full parameter
vector, to be combined with ``+=`` and eliminated with
:meth:`~chasm.refine.constraints.LinearConstraints.reduce`.
:func:`point_group_symbol` names the site-symmetry groups in the row
descriptions.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from fractions import Fraction
from functools import cache

import gemmi
import numpy as np

from chasm.crystal.structure import Atom, Crystal
from chasm.density.databank import spherical_atom
from chasm.density.harmonics import lm_labels
from chasm.density.model import AtomModel, HansenCoppensAtom
from chasm.density.sitesym import POINT_GROUPS, multipole_projector, point_group_rotations
from chasm.errors import InputError
from chasm.refine.constraints import LinearConstraints, format_equation
from chasm.refine.parameters import (
    Parameters,
    UnknownNameError,
    atom_parameter_names,
    check_models,
    did_you_mean,
)

__all__ = [
    "equal_constraints",
    "same_value",
    "site_symmetry_constraints",
    "electroneutrality",
    "point_group_symbol",
    "adp_rows",
    "multipole_rows",
]


# --------------------------------------------------------------------- equalities
def _kind(name: str) -> str:
    return name.split(".", 1)[1] if "." in name else name


def equal_constraints(
    params: Parameters,
    names_a: str | Sequence[str],
    names_b: str | Sequence[str],
    check_kinds: bool = True,
) -> LinearConstraints:
    """Pairwise equalities ``a_i = b_i``.

    Parameters
    ----------
    params : Parameters
    names_a, names_b : str or sequence of str
        Names or patterns (see :meth:`Parameters.select`); paired in the order
        they resolve to, e.g. ``"C1.P*"`` with ``"C2.P*"``.
    check_kinds : bool
        Require the part after the label to agree in each pair (``C1.U11``
        with ``C2.U11``), which catches mismatched patterns.

    Raises
    ------
    InputError
        Unknown names or patterns, lists of different lengths, or mismatched
        kinds.
    """
    a, b = params.select(names_a), params.select(names_b)
    if len(a) != len(b):
        raise InputError(
            f"equal_constraints: {len(a)} parameters ({', '.join(a)}) cannot be paired with "
            f"{len(b)} ({', '.join(b)})"
        )
    out = LinearConstraints(params)
    for x, y in zip(a, b, strict=True):
        if x == y:
            continue
        if check_kinds and _kind(x) != _kind(y):
            raise InputError(
                f"equal_constraints pairs {x} with {y}: different kinds of parameter "
                "(pass check_kinds=False if this is intended)"
            )
        out.add({x: 1.0, y: -1.0}, 0.0, f"{x} = {y}")
    return out


def same_value(params: Parameters, names: str | Sequence[str]) -> LinearConstraints:
    """One common value for a group, e.g. ``same_value(p, "C*.kappa")``.

    The first name (in the order of :meth:`Parameters.select`) is the
    reference: rows ``first = other`` for every other name.
    """
    sel = params.select(names)
    if len(sel) < 2:
        raise InputError(f"same_value: {names!r} selects {len(sel)} parameter; need two or more")
    out = LinearConstraints(params)
    for other in sel[1:]:
        out.add({sel[0]: 1.0, other: -1.0}, 0.0, f"{sel[0]} = {other}")
    return out


# ------------------------------------------------------------------ site symmetry
def _op_signature(rotations: np.ndarray) -> tuple:
    """How many operations of each kind (det, trace): identifies a point group."""
    r = np.asarray(rotations, dtype=float)
    det = np.rint(np.linalg.det(r)).astype(int).tolist()
    tr = np.rint(np.trace(r, axis1=1, axis2=2)).astype(int).tolist()
    return tuple(sorted(Counter(zip(det, tr, strict=True)).items()))


@cache
def _point_group_table() -> dict:
    table: dict = {}
    for symbol in POINT_GROUPS:  # the first setting of each group names it
        table.setdefault(_op_signature(point_group_rotations(symbol)), symbol)
    return table


def point_group_symbol(rotations: np.ndarray) -> str:
    """Hermann-Mauguin symbol of a point group given by all its matrices.

    The 32 crystallographic point groups differ in how many operations of
    each kind (determinant, trace) they contain, so the symbol does not depend
    on the basis (fractional or Cartesian) or the orientation; alternative
    settings get one name ("3m" for 3m1 and 31m, "-42m" for -4m2).
    Returns ``"order n"`` for a set that is not a crystallographic group.
    """
    symbol: str = _point_group_table().get(_op_signature(rotations), f"order {len(rotations)}")
    return symbol


def _integer_rows(m: np.ndarray) -> np.ndarray:
    """Independent integer rows with the row space of integer ``m``.

    Exact reduced row-echelon form over the rationals, each row scaled to
    coprime integers with a positive leading entry: readable constraints
    such as ``x - y = -1/2`` or ``U11 - 2 U12 = 0``.
    """
    rows = [[Fraction(int(v)) for v in r] for r in np.unique(m, axis=0) if np.any(r)]
    ncol = m.shape[1]
    done = 0
    for col in range(ncol):
        piv = next((i for i in range(done, len(rows)) if rows[i][col] != 0), None)
        if piv is None:
            continue
        rows[done], rows[piv] = rows[piv], rows[done]
        lead = rows[done][col]
        rows[done] = [v / lead for v in rows[done]]
        for i in range(len(rows)):
            if i != done and rows[i][col] != 0:
                f = rows[i][col]
                rows[i] = [a - f * b for a, b in zip(rows[i], rows[done], strict=True)]
        done += 1
    out = []
    for r in rows[:done]:
        den = math.lcm(*(v.denominator for v in r))
        ints = [int(v * den) for v in r]
        g = math.gcd(*ints)
        out.append([v // g for v in ints])
    return np.array(out, dtype=int).reshape(-1, ncol)


def _float_rref(m: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """Reduced row-echelon form (partial pivoting) of a full-row-rank float matrix."""
    m = np.array(m, dtype=float)
    done = 0
    for col in range(m.shape[1]):
        if done == m.shape[0]:
            break
        piv = done + int(np.argmax(np.abs(m[done:, col])))
        if abs(m[piv, col]) < tol:
            continue
        m[[done, piv]] = m[[piv, done]]
        m[done] /= m[done, col]
        for i in range(m.shape[0]):
            if i != done:
                m[i] -= m[i, col] * m[done]
        done += 1
    m[np.abs(m) < tol] = 0.0
    return m[:done]


_PAIRS = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))


def _ustar_action(r: np.ndarray) -> np.ndarray:
    """Integer (6, 6) matrix of ``U* -> R U* Rᵀ`` on (U11 U22 U33 U12 U13 U23)."""
    m = np.zeros((6, 6), dtype=int)
    for a, (i, j) in enumerate(_PAIRS):
        for b, (k, l) in enumerate(_PAIRS):
            m[a, b] = r[i, k] * r[j, l] + (r[i, l] * r[j, k] if k != l else 0)
    return m


def _position_rows(
    out: LinearConstraints,
    atom: Atom,
    rot: np.ndarray,
    trans: np.ndarray,
    names: Mapping[str, str],
    head: str,
    frac_tol: np.ndarray,
) -> None:
    """x on the fixed-point set of the site operations: ``C x = C x_sym``."""
    x = atom.xyz
    images = np.einsum("oij,j->oi", rot, x) + trans
    # the site operations with their lattice shifts form a group of affine maps;
    # the mean image is a fixed point of every one (the symmetrised position)
    xsym = (images - np.rint(images - x)).mean(axis=0)
    for row in _integer_rows((rot - np.eye(3, dtype=int)).reshape(-1, 3)):
        terms = [(k, float(c)) for k, c in zip("xyz", row, strict=True) if c]
        rhs = float(row @ xsym)
        out.add(
            {names[k]: c for k, c in terms},
            rhs,
            f"{head}: {format_equation(terms, rhs)}",
            tol=float(np.abs(row) @ frac_tol),
        )


def adp_rows(
    out: LinearConstraints,
    rot: np.ndarray,
    names: Mapping[str, str],
    head: str,
    nstar: np.ndarray,
    u_tol: float,
) -> None:
    """Add to ``out`` the rows that keep U invariant: ``R U* Rᵀ = U*``, rewritten for U_cif.

    ``rot`` are the site's integer rotations (fractional), ``names`` maps
    ``U11`` ... ``U23`` to parameter names, ``head`` starts every row's
    description, ``nstar`` are |a*|, |b*|, |c*| (Å⁻¹) and ``u_tol`` (Å²) the
    accepted misfit per unit coefficient. The invariance rows are exact integers.

    ``U*_ij = a*_i a*_j U_cif,ij``, so a row ``sum c_ij U*_ij = 0`` is
    ``sum c_ij a*_i a*_j U_cif,ij = 0``, scaled to keep its leading
    coefficient.
    """
    eye = np.eye(6, dtype=int)
    rows = _integer_rows(np.concatenate([_ustar_action(r) - eye for r in rot]))
    factor = np.array([nstar[i] * nstar[j] for i, j in _PAIRS])
    kinds = ("U11", "U22", "U33", "U12", "U13", "U23")
    for row in rows:
        lead = int(np.flatnonzero(row)[0])
        coef = row * factor / factor[lead]
        terms = [(k, float(c)) for k, c in zip(kinds, coef, strict=True) if c]
        out.add(
            {names[k]: c for k, c in terms},
            0.0,
            f"{head}: {format_equation(terms, 0.0)}",
            tol=u_tol * float(np.abs(coef).sum()),
        )


def multipole_rows(
    out: LinearConstraints,
    cart_rot: np.ndarray,
    model: HansenCoppensAtom,
    names: Mapping[str, str],
    head: str,
    p_tol: float,
) -> None:
    """Add to ``out`` the rows that keep the populations in the site projector's range.

    ``(I - Q) P = 0`` per l, Q for the Cartesian site rotations ``cart_rot``
    and the model's frame; ``names`` maps ``P00`` ... to parameter names and
    ``p_tol`` (electrons) is the accepted misfit per unit coefficient.
    """
    q = multipole_projector(cart_rot, model.frame, model.lmax)
    labels = lm_labels(model.lmax)
    for l in range(model.lmax + 1):
        sl = slice(l * l, (l + 1) ** 2)
        _, s, vt = np.linalg.svd(np.eye(2 * l + 1) - q[sl, sl])
        rank = int(np.sum(s > 1e-8))
        if rank == 0:
            continue
        for row in _float_rref(vt[:rank]):
            terms = [(f"P{labels[l * l + k]}", float(c)) for k, c in enumerate(row) if c]
            out.add(
                {names[k]: c for k, c in terms},
                0.0,
                f"{head}: {format_equation(terms, 0.0)}",
                tol=p_tol * float(np.abs(row).sum()),
            )


def site_symmetry_constraints(
    crystal: Crystal,
    models: Sequence[AtomModel],
    params: Parameters,
    tol: float = 1e-4,
    u_tol: float = 5e-5,
    p_tol: float = 5e-4,
    tags: Mapping[str, str] | None = None,
) -> LinearConstraints:
    """Constraints that keep every atom on a special position symmetric.

    For an atom whose site-symmetry group G (operations ``x -> R x + t`` that
    map it onto itself modulo the lattice) has more than the identity:

    * position: ``(R - I) x = L - t`` for all of G, i.e. x stays on the
      fixed-point set (shifts only along the null space of ``R - I``); the
      right-hand sides come from the symmetrised position (the mean of the
      images), so ``0.3333`` becomes exactly 1/3 once reduced;
    * U_cif: ``R U* Rᵀ = U*`` with ``U*_ij = a*_i a*_j U_ij`` (the copy of the
      atom made by R has ``R U* Rᵀ``, as the engine evaluates T at ``Rᵀh``),
      solved exactly over the integers then rescaled to U_cif;
    * populations of a Hansen-Coppens atom: ``(I - Q) P = 0`` with Q from
      :func:`chasm.density.sitesym.multipole_projector` for the Cartesian site
      rotations and the atom's frame, independent rows chosen per l by SVD
      and written in reduced row-echelon form (``P11+ = 0`` for aligned axes).

    Parameters
    ----------
    crystal : Crystal
    models : sequence of SphericalAtom or HansenCoppensAtom
    params : Parameters
        Must contain the names of :func:`atom_parameter_names`.
    tol : float
        Å, the site-symmetry tolerance (as in ``Crystal.site_symmetry``); also
        the accepted misfit of a fixed position.
    u_tol : float
        Å², accepted misfit (per unit coefficient) of fixed U's.
    p_tol : float
        Electrons, accepted misfit of fixed populations.
    tags : mapping, optional
        Name tags, see :func:`chasm.refine.parameters.parameters_from_model`.

    Returns
    -------
    LinearConstraints
        Rows described as ``"site symmetry of C1 (mm2): x = 0"``.
    """
    models = check_models(crystal, models)
    out = LinearConstraints(params)
    rot, trans = crystal.symops
    cart = crystal.cartesian_rotations()
    nstar = np.linalg.norm(np.asarray(crystal.B, dtype=float), axis=0)
    for i, (atom, model) in enumerate(zip(crystal.atoms, models, strict=True)):
        ops = crystal.site_symmetry(i, tol)
        if len(ops) == 1:
            continue
        names = atom_parameter_names(atom, model, tags)
        head = f"site symmetry of {atom.label} ({point_group_symbol(rot[ops])})"
        _position_rows(out, atom, rot[ops], trans[ops], names, head, tol * nstar)
        if atom.u_aniso is not None:
            adp_rows(out, rot[ops], names, head, nstar, u_tol)
        if isinstance(model, HansenCoppensAtom) and model.lmax >= 0:
            multipole_rows(out, cart[ops], model, names, head, p_tol)
    return out


# -------------------------------------------------------------- electroneutrality
def electroneutrality(
    crystal: Crystal,
    models: Sequence[AtomModel],
    params: Parameters,
    charge: float = 0.0,
    labels: Sequence[str] | None = None,
    tags: Mapping[str, str] | None = None,
) -> LinearConstraints:
    """``sum_j m_j (Pc_j n_core,j + Pv_j + P00_j - Z_j) = -Q`` (electrons).

    Parameters
    ----------
    crystal, models :
        The structure and one density model per atom.
    params : Parameters
    charge : float
        Q, the charge of the asymmetric unit: the charge of the cell divided
        by the number of symmetry operations (centring included). 0 for a
        neutral compound.
    labels : sequence of str, optional
        Restrict the sum to these atoms (e.g. one ion of a salt); default all.
    tags : mapping, optional
        Name tags, see :func:`chasm.refine.parameters.parameters_from_model`.

    Notes
    -----
    ``m_j = occupancy_j / |site group of j|``, the engine's weight, i.e. the
    fraction of atom j in one asymmetric unit (occupancy × multiplicity /
    number of general positions). Occupancies are taken at their current
    values: if they are refined, rebuild the row each cycle. The core holds
    ``Pc · n_core`` electrons (``HansenCoppensAtom.pc`` scales the databank
    core); Pv and P00 count electrons. A spherical (IAM) atom adds the
    constant ``-m_j × charge`` (its electrons are ``Z - charge``).
    """
    models = check_models(crystal, models)
    all_labels = [a.label for a in crystal.atoms]
    if labels is not None:
        for lab in labels:
            if lab not in all_labels:
                raise UnknownNameError(
                    f"electroneutrality: unknown atom {lab!r}" + did_you_mean(lab, all_labels)
                )
    coeffs: dict[str, float] = {}
    const = 0.0
    for i, (atom, model) in enumerate(zip(crystal.atoms, models, strict=True)):
        if labels is not None and atom.label not in labels:
            continue
        weight = atom.occupancy / len(crystal.site_symmetry(i))
        if isinstance(model, HansenCoppensAtom):
            names = atom_parameter_names(atom, model, tags)
            core = spherical_atom(model.element, model.charge, model.valence).n_core
            z = gemmi.Element(model.element).atomic_number
            const += weight * (model.pc * core - z)
            for kind in ("Pv", "P00"):
                if kind in names:
                    coeffs[names[kind]] = coeffs.get(names[kind], 0.0) + weight
        else:
            const -= weight * model.charge
    if not coeffs:
        raise InputError("electroneutrality needs at least one Hansen-Coppens atom")
    out = LinearConstraints(params)
    rhs = -float(charge) - const
    out.add(
        coeffs,
        rhs,
        f"electroneutrality (Q = {float(charge):g} per asymmetric unit): "
        + format_equation(list(coeffs.items()), rhs),
    )
    return out

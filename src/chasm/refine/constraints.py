"""Exact linear equality constraints ``A p = b`` and their elimination.

Constraints act on the FULL parameter vector (all names of a
:class:`~chasm.refine.parameters.Parameters`, fixed ones included). Before a
refinement they are eliminated together with the fixed parameters
(:meth:`LinearConstraints.reduce`): every admissible vector is written

    p = p0 + T z,

with ``z`` the k reduced unknowns of the least squares. The Jacobian becomes
``J T``, the covariance of p is ``T cov(z) Tᵀ`` (so parameters constrained to
be equal get equal standard uncertainties), and ``A p = b`` holds to rounding
for every z (Hamilton's elimination method; CONVENTIONS.md, "Least squares").

Generators of the usual rows: :func:`site_symmetry_constraints` (positions,
U_cif and multipoles of atoms on special positions), :func:`electroneutrality`,
:func:`equal_constraints` and :func:`same_value`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import cache

import gemmi
import numpy as np

from chasm.density.databank import spherical_atom
from chasm.density.harmonics import lm_labels
from chasm.density.model import HansenCoppensAtom
from chasm.density.sitesym import POINT_GROUPS, multipole_projector, point_group_rotations
from chasm.errors import InputError
from chasm.refine.parameters import (
    Parameters,
    UnknownNameError,
    _check_models,
    _did_you_mean,
    atom_parameter_names,
)

__all__ = [
    "LinearConstraints",
    "Reduction",
    "equal_constraints",
    "same_value",
    "site_symmetry_constraints",
    "electroneutrality",
    "point_group_symbol",
    "format_equation",
]


def _number(value: float) -> str:
    """Readable number: small fractions as p/q (0.5 -> '1/2'), otherwise %.6g."""
    frac = Fraction(value).limit_denominator(48)
    if frac.denominator > 1 and abs(float(frac) - value) < 1e-10:
        return f"{frac.numerator}/{frac.denominator}"
    return f"{value:.6g}"


def format_equation(terms: Sequence[tuple[str, float]], rhs: float) -> str:
    """``[("U11", 1), ("U12", -2)], 0`` -> ``'U11 - 2 U12 = 0'``."""
    out = ""
    for name, coef in terms:
        if coef == 0:
            continue
        sign = "-" if coef < 0 else "+"
        mag = abs(coef)
        text = name if abs(mag - 1.0) < 1e-12 else f"{mag:.6g} {name}"
        if not out:
            out = f"-{text}" if sign == "-" else text
        else:
            out += f" {sign} {text}"
    return f"{out or '0'} = {_number(float(rhs))}"


class LinearConstraints:
    """Linear equality constraints ``A p = b`` over a named parameter vector.

    Parameters
    ----------
    names : Parameters or sequence of str
        The full parameter vector the rows refer to (order matters).

    Notes
    -----
    Each row carries a human-readable description (``"site symmetry of C1
    (mm2): P11+ = 0"``) and an optional tolerance used only to judge rows
    whose parameters are all fixed (e.g. coordinates typed with 4 decimals on
    a special position): such a row is accepted when its residual is within
    the tolerance, and an :class:`~chasm.errors.InputError` is raised
    otherwise.
    """

    def __init__(self, names: Parameters | Sequence[str]):
        self._names = list(names.names if isinstance(names, Parameters) else names)
        self._index = {n: i for i, n in enumerate(self._names)}
        if len(self._index) != len(self._names):
            raise InputError("LinearConstraints: parameter names must be unique")
        self._rows: list[dict[int, float]] = []
        self._rhs: list[float] = []
        self._desc: list[str] = []
        self._tol: list[float] = []

    # ----------------------------------------------------------------- rows
    def add(
        self,
        coeffs: Mapping[str, float],
        rhs: float = 0.0,
        description: str | None = None,
        tol: float | None = None,
    ) -> None:
        """Add the row ``sum_name coeffs[name] * p[name] = rhs``.

        Parameters
        ----------
        coeffs : mapping of str to float
            Coefficients by parameter name (each name must exist).
        rhs : float
            Right-hand side, in the units of the combination.
        description : str, optional
            Readable text; defaults to the equation itself.
        tol : float, optional
            Accepted residual when every parameter of the row is fixed.

        Raises
        ------
        InputError
            Unknown names (with suggestions), no nonzero coefficient, or
            non-finite numbers.
        """
        row: dict[int, float] = {}
        for name, coef in coeffs.items():
            if name not in self._index:
                raise UnknownNameError(
                    f"constraint refers to unknown parameter {name!r}"
                    + _did_you_mean(name, self._names)
                )
            coef = float(coef)
            if not np.isfinite(coef):
                raise InputError(f"constraint coefficient of {name} is not finite: {coef}")
            if coef != 0.0:
                row[self._index[name]] = row.get(self._index[name], 0.0) + coef
        rhs = float(rhs)
        if not row:
            raise InputError(f"constraint {description or coeffs!r} has no nonzero coefficient")
        if not np.isfinite(rhs):
            raise InputError(f"constraint {description or coeffs!r}: right-hand side {rhs}")
        if description is None:
            description = format_equation([(self._names[i], c) for i, c in row.items()], rhs)
        self._rows.append(row)
        self._rhs.append(rhs)
        self._desc.append(str(description))
        self._tol.append(0.0 if tol is None else abs(float(tol)))

    def extend(self, other: LinearConstraints) -> LinearConstraints:
        """Append the rows of ``other`` (same parameter names); returns self."""
        if other.names != self._names:
            raise InputError("cannot combine constraints built on different parameter sets")
        self._rows += [dict(r) for r in other._rows]
        self._rhs += other._rhs
        self._desc += other._desc
        self._tol += other._tol
        return self

    def __iadd__(self, other: LinearConstraints) -> LinearConstraints:
        return self.extend(other)

    def __len__(self) -> int:
        return len(self._rows)

    def __str__(self) -> str:
        return "\n".join(f"[{i}] {d}" for i, d in enumerate(self._desc)) or "(no constraints)"

    # ----------------------------------------------------------- as arrays
    @property
    def names(self) -> list[str]:
        """The parameter names of the columns of A."""
        return list(self._names)

    @property
    def descriptions(self) -> list[str]:
        """One readable description per row."""
        return list(self._desc)

    @property
    def A(self) -> np.ndarray:
        """Coefficient matrix (m, n) over the full parameter vector."""
        a = np.zeros((len(self._rows), len(self._names)))
        for i, row in enumerate(self._rows):
            for j, c in row.items():
                a[i, j] = c
        return a

    @property
    def b(self) -> np.ndarray:
        """Right-hand sides (m,)."""
        return np.array(self._rhs, dtype=float)

    @property
    def tolerances(self) -> np.ndarray:
        """Per-row tolerances for rows made only of fixed parameters (m,)."""
        return np.array(self._tol, dtype=float)

    def residual(self, values: Parameters | np.ndarray) -> np.ndarray:
        """``A p - b`` for a parameter vector (or the values of a Parameters)."""
        p = values.values if isinstance(values, Parameters) else np.asarray(values, dtype=float)
        if p.shape != (len(self._names),):
            raise InputError(f"residual: expected {len(self._names)} values, got {p.shape}")
        return self.A @ p - self.b

    # ----------------------------------------------------------- reduction
    def reduce(self, params: Parameters, rtol: float = 1e-9) -> Reduction:
        """Eliminate the constraints and the fixed parameters.

        Parameters
        ----------
        params : Parameters
            Same names, same order as the constraints; gives the current
            values and which parameters are free.
        rtol : float
            Relative threshold on the singular values of the (row-normalised)
            constraint block that decides its rank.

        Returns
        -------
        Reduction
            ``p = p0 + T z``. Fixed parameters have zero rows in T and keep
            their values in p0; ``p0`` is the admissible vector closest (least
            squares over the free parameters) to the current values, so
            ``z = 0`` is "where we are, made consistent".

        Raises
        ------
        InputError
            If the names differ from ``params``, or the constraints cannot
            all hold with the fixed parameters at their values (the message
            lists the rows involved and their fixed parameters).
        """
        if params.names != self._names:
            raise InputError(
                "the constraints were built for a different parameter set "
                f"({len(self._names)} names vs {len(params)}); rebuild them"
            )
        x = params.values
        free = params.free_mask
        fi, fx = np.flatnonzero(free), np.flatnonzero(~free)
        A, b = self.A, self.b
        c = b - A[:, fx] @ x[fx]
        Af = A[:, fi]
        norms = np.linalg.norm(Af, axis=1)
        act = norms > 0
        As = Af[act] / norms[act, None]
        cs = c[act] / norms[act]
        pf = x[fi].copy()
        rank = 0
        basis = np.eye(len(fi))
        red = [self._names[j] for j in fi]
        if As.shape[0] and len(fi):
            u, s, vt = np.linalg.svd(As)
            rank = int(np.sum(s > rtol * s[0]))
            for _ in range(2):  # least-squares correction, then one refinement step
                res = As @ pf - cs
                pf -= vt[:rank].T @ ((u[:, :rank].T @ res) / s[:rank])
            basis, red = _null_space(As, vt, rank, [self._names[j] for j in fi])
        p0 = x.copy()
        p0[fi] = pf
        self._check_consistency(p0, A, b, free)
        T = np.zeros((len(x), basis.shape[1]))
        T[fi] = basis
        return Reduction(
            names=list(self._names),
            T=T,
            p0=p0,
            reduced_names=red,
            rank=rank,
            n_redundant=int(act.sum()) - rank,
        )

    def _check_consistency(self, p0, A, b, free) -> None:
        res = A @ p0 - b
        scale = np.abs(b) + np.abs(A) @ np.abs(p0)
        tol = np.maximum(self.tolerances, 1e-9 * scale + 1e-12)
        bad = np.flatnonzero(np.abs(res) > tol)
        if bad.size == 0:
            return
        lines = []
        for i in bad:
            fixed = [f"{self._names[j]} = {p0[j]:.6g}" for j in self._rows[i] if not free[j]]
            note = f"; fixed: {', '.join(fixed)}" if fixed else ""
            if all(not free[j] for j in self._rows[i]):
                note += " (all its parameters are fixed)"
            lines.append(f"  [{i}] {self._desc[i]}: off by {res[i]:.3g}{note}")
        raise InputError(
            "inconsistent constraints: no parameter values satisfy these rows together "
            "with the fixed parameters:\n"
            + "\n".join(lines)
            + "\nremove or correct one of them, free a fixed parameter, or fix its value"
        )


def _null_space(
    As: np.ndarray, vt: np.ndarray, rank: int, free_names: list[str]
) -> tuple[np.ndarray, list[str]]:
    """Basis of {y : As y = 0} and a name per column.

    Preferred: elimination. A set of ``rank`` "dependent" parameters whose
    columns of As are well independent is chosen greedily from the LAST
    parameter backwards (Gram-Schmidt, i.e. a QR of the chosen columns), so
    earlier parameters stay unknowns: ``same_value("C1.kappa, O1.kappa")``
    keeps C1.kappa, ``U11 = U22 = 2 U12`` keeps U11. Each basis column then
    has a 1 at its own independent parameter and the dependent ones follow
    (``y_D = -As_D⁺ As_I y_I``). If the chosen block is ill-conditioned, the
    orthonormal SVD basis is used instead, its columns named ``~name`` after
    their largest entry.
    """
    nf = As.shape[1]
    if rank == 0:
        return np.eye(nf), list(free_names)
    if rank == nf:
        return np.zeros((nf, 0)), []
    colnorm = np.linalg.norm(As, axis=0)
    q = np.zeros((As.shape[0], 0))
    dep: list[int] = []
    for j in range(nf - 1, -1, -1):
        v = As[:, j] - q @ (q.T @ As[:, j])
        v -= q @ (q.T @ v)
        nv = np.linalg.norm(v)
        if nv > 1e-6 * colnorm.max():
            q = np.column_stack([q, v / nv])
            dep.append(j)
            if len(dep) == rank:
                break
    if len(dep) == rank:
        dep = sorted(dep)
        ind = [j for j in range(nf) if j not in dep]
        block = As[:, dep]
        sv = np.linalg.svd(block, compute_uv=False)
        if sv[-1] > 1e-8 * sv[0]:
            basis = np.zeros((nf, nf - rank))
            basis[ind, np.arange(nf - rank)] = 1.0
            basis[dep] = -np.linalg.lstsq(block, As[:, ind], rcond=None)[0]
            if np.abs(As @ basis).max() <= 1e-10 * max(1.0, np.abs(basis).max()):
                return basis, [free_names[j] for j in ind]
    basis = vt[rank:].T.copy()
    names = [f"~{free_names[j]}" for j in np.argmax(np.abs(basis), axis=0)]
    return basis, names


@dataclass
class Reduction:
    """The admissible parameter vectors ``p = p0 + T z``.

    ``A (p0 + T z) = b`` holds to rounding for every z, except for rows
    made only of fixed parameters that :meth:`LinearConstraints.reduce`
    accepted within their tolerance (rounded fixed input values): nothing
    free can change those, and they are left as given.

    Attributes
    ----------
    names : list of str
        Full parameter names (rows of T).
    T : ndarray, shape (n, k)
        Map from the reduced unknowns to parameter shifts; zero rows for fixed
        parameters. With the elimination basis each column has a 1 at its
        own (independent) parameter.
    p0 : ndarray, shape (n,)
        Admissible vector closest to the values given to ``reduce``.
    reduced_names : list of str
        A name per reduced unknown: the independent parameter it moves.
    rank : int
        Number of independent constraint rows on the free parameters.
    n_redundant : int
        Rows on free parameters implied by the others (harmless).
    """

    names: list[str]
    T: np.ndarray
    p0: np.ndarray
    reduced_names: list[str]
    rank: int
    n_redundant: int

    @property
    def n_reduced(self) -> int:
        """k, the number of unknowns left for the least squares."""
        return self.T.shape[1]

    def to_full(self, z: np.ndarray) -> np.ndarray:
        """``p = p0 + T z``."""
        z = np.asarray(z, dtype=float)
        return self.p0 + self.T @ z

    def to_reduced(self, p: np.ndarray) -> np.ndarray:
        """Least-squares ``z`` with ``p0 + T z`` closest to p (exact for admissible p)."""
        d = np.asarray(p, dtype=float) - self.p0
        if self.n_reduced == 0:
            return np.zeros(0)
        return np.linalg.lstsq(self.T, d, rcond=None)[0]

    def jacobian(self, J: np.ndarray) -> np.ndarray:
        """Jacobian with respect to z: ``J T`` for J (n_obs, n) over the full vector."""
        return np.asarray(J) @ self.T

    def covariance_full(self, cov_z: np.ndarray) -> np.ndarray:
        """Covariance of p, ``T cov_z Tᵀ`` (n, n); zero for fixed parameters."""
        cov_z = np.asarray(cov_z, dtype=float)
        return self.T @ cov_z @ self.T.T


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
    return _point_group_table().get(_op_signature(rotations), f"order {len(rotations)}")


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


def _position_rows(out, atom, rot, trans, names, head, frac_tol) -> None:
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


def _adp_rows(out, rot, names, head, nstar, u_tol) -> None:
    """U invariant: ``R U* Rᵀ = U*`` (exact integers), rewritten for U_cif.

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


def _multipole_rows(out, cart_rot, model, names, head, p_tol) -> None:
    """Populations in the range of the site projector Q: ``(I - Q) P = 0`` per l."""
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
    crystal,
    models,
    params: Parameters,
    tol: float = 1e-4,
    u_tol: float = 5e-5,
    p_tol: float = 5e-4,
    prefix_sets: Mapping[str, str] | None = None,
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
    prefix_sets : mapping, optional
        Name tags, see :func:`chasm.refine.parameters.parameters_from_model`.

    Returns
    -------
    LinearConstraints
        Rows described as ``"site symmetry of C1 (mm2): x = 0"``.
    """
    models = _check_models(crystal, models)
    out = LinearConstraints(params)
    rot, trans = crystal.symops
    cart = crystal.cartesian_rotations()
    nstar = np.linalg.norm(np.asarray(crystal.B, dtype=float), axis=0)
    for i, (atom, model) in enumerate(zip(crystal.atoms, models, strict=True)):
        ops = crystal.site_symmetry(i, tol)
        if len(ops) == 1:
            continue
        names = atom_parameter_names(atom, model, prefix_sets)
        head = f"site symmetry of {atom.label} ({point_group_symbol(rot[ops])})"
        _position_rows(out, atom, rot[ops], trans[ops], names, head, tol * nstar)
        if atom.u_aniso is not None:
            _adp_rows(out, rot[ops], names, head, nstar, u_tol)
        if isinstance(model, HansenCoppensAtom) and model.lmax >= 0:
            _multipole_rows(out, cart[ops], model, names, head, p_tol)
    return out


# -------------------------------------------------------------- electroneutrality
def electroneutrality(
    crystal,
    models,
    params: Parameters,
    charge: float = 0.0,
    labels: Sequence[str] | None = None,
    prefix_sets: Mapping[str, str] | None = None,
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
    prefix_sets : mapping, optional
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
    models = _check_models(crystal, models)
    all_labels = [a.label for a in crystal.atoms]
    if labels is not None:
        for lab in labels:
            if lab not in all_labels:
                raise UnknownNameError(
                    f"electroneutrality: unknown atom {lab!r}" + _did_you_mean(lab, all_labels)
                )
    coeffs: dict[str, float] = {}
    const = 0.0
    for i, (atom, model) in enumerate(zip(crystal.atoms, models, strict=True)):
        if labels is not None and atom.label not in labels:
            continue
        weight = atom.occupancy / len(crystal.site_symmetry(i))
        if isinstance(model, HansenCoppensAtom):
            names = atom_parameter_names(atom, model, prefix_sets)
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

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

The generators of the usual rows (site symmetry, electroneutrality,
equalities) live in :mod:`chasm.refine.symmetry_constraints`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from chasm.errors import InputError
from chasm.refine.parameters import Parameters, UnknownNameError, _did_you_mean

__all__ = ["LinearConstraints", "Reduction", "format_equation"]


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

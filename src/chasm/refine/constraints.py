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
from chasm.refine.parameters import Parameters, UnknownNameError, did_you_mean

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
                    + did_you_mean(name, self._names)
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
        res: np.ndarray = self.A @ p - self.b
        return res

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
        fi = np.flatnonzero(free)
        nf = len(fi)
        where = np.full(len(x), -1, dtype=np.intp)  # position among the free parameters
        where[fi] = np.arange(nf)
        blocks, n_active = _blocks(self._rows, self._rhs, x, free, where)
        pf = x[fi].copy()
        smax = max((blk.s[0] for blk in blocks if blk.s.size), default=0.0)
        colmax = max((blk.colmax for blk in blocks), default=0.0)
        rank = 0
        for blk in blocks:
            blk.rank = int(np.sum(blk.s > rtol * smax))
            rank += blk.rank
            for _ in range(2):  # least-squares correction, then one refinement step
                r = blk.rank
                res = blk.As @ pf[blk.cols] - blk.cs
                pf[blk.cols] -= blk.vt[:r].T @ ((blk.u[:, :r].T @ res) / blk.s[:r])
        p0 = x.copy()
        p0[fi] = pf
        self._check_consistency(p0, free)
        free_names = [self._names[j] for j in fi]
        columns = _reduced_columns(blocks, nf, free_names, colmax)  # [(free pos, name, values)]
        T = np.zeros((len(x), len(columns)))
        for k, (_, _, rows, values) in enumerate(columns):
            T[fi[rows], k] = values
        return Reduction(
            names=list(self._names),
            T=T,
            p0=p0,
            reduced_names=[name for _, name, _, _ in columns],
            rank=rank,
            n_redundant=n_active - rank,
        )

    def _check_consistency(self, p0: np.ndarray, free: np.ndarray) -> None:
        res = np.array([sum(c * p0[j] for j, c in row.items()) for row in self._rows]) - self.b
        scale = np.abs(self.b) + np.array(
            [sum(abs(c) * abs(p0[j]) for j, c in row.items()) for row in self._rows]
        )
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


@dataclass
class _Block:
    """Constraint rows that share free parameters (a connected group), as a dense block."""

    cols: np.ndarray  # positions among the free parameters, ascending
    As: np.ndarray  # the rows over those columns, each scaled to unit norm
    cs: np.ndarray  # right-hand sides minus the fixed parameters' terms, scaled alike
    u: np.ndarray
    s: np.ndarray
    vt: np.ndarray
    colmax: float  # largest column norm of As
    rank: int = 0


def _blocks(
    rows: Sequence[Mapping[int, float]],
    rhs: Sequence[float],
    x: np.ndarray,
    free: np.ndarray,
    where: np.ndarray,
) -> tuple[list[_Block], int]:
    """The active rows (some free parameter) grouped by shared free parameters.

    Work and memory grow with the number of non-zero coefficients and the
    size of the largest group, not with rows times parameters: site-symmetry
    rows touch one atom, equalities a few. Returns the groups, ordered by
    their first free parameter, and the number of active rows.
    """
    parent: dict[int, int] = {}

    def root(j: int) -> int:
        while parent[j] != j:
            parent[j] = parent[parent[j]]
            j = parent[j]
        return j

    active = []
    for i, row in enumerate(rows):
        cols = [int(where[j]) for j, c in row.items() if free[j]]
        if not any(row[j] != 0.0 for j in row if free[j]):
            continue
        active.append((i, cols))
        for j in cols:
            parent.setdefault(j, j)
        r0 = root(cols[0])
        for j in cols[1:]:
            parent[root(j)] = r0
    groups: dict[int, list[int]] = {}
    for i, cols in active:
        groups.setdefault(root(cols[0]), []).append(i)
    out = []
    for members in groups.values():
        block = np.array(sorted({int(where[j]) for i in members for j in rows[i] if free[j]}))
        index = {int(c): k for k, c in enumerate(block)}
        As = np.zeros((len(members), block.size))
        cs = np.zeros(len(members))
        for r, i in enumerate(members):
            fixed = 0.0
            for j, c in rows[i].items():
                if free[j]:
                    As[r, index[int(where[j])]] = c
                else:
                    fixed += c * x[j]
            cs[r] = rhs[i] - fixed
        norms = np.linalg.norm(As, axis=1)
        As /= norms[:, None]
        cs /= norms
        u, sv, vt = np.linalg.svd(As)
        colmax = float(np.linalg.norm(As, axis=0).max())
        out.append(_Block(block, As, cs, u, sv, vt, colmax))
    out.sort(key=lambda blk: int(blk.cols[0]))
    return out, len(active)


#: A column of T over the free parameters: (key, name, rows, values)
_Column = tuple[int, str, np.ndarray, np.ndarray]
#: The elimination basis of a group of rows and its independent positions (:func:`_null_space`)
_Elimination = tuple[np.ndarray, np.ndarray]


def _reduced_columns(
    blocks: list[_Block], nf: int, free_names: list[str], colmax: float
) -> list[_Column]:
    """The columns of T over the free parameters: (key, name, rows, values), in order.

    Free parameters in no constraint keep a unit column of their own; each
    group of rows gets the basis of its null space (:func:`_null_space`). The
    columns are ordered by the free parameter they are named after, as a
    single elimination over all rows orders them. If any group's elimination
    is ill-conditioned every group uses its orthonormal SVD basis and every
    column is named ``~name`` after its largest entry, as the single
    elimination did then for all rows.
    """
    in_block = np.zeros(nf, dtype=bool)
    for blk in blocks:
        in_block[blk.cols] = True
    parts = [
        _null_space(blk.As, blk.vt, blk.rank, [free_names[j] for j in blk.cols], colmax)
        for blk in blocks
    ]
    failed = any(elim is None for elim, _, _ in parts)
    conds = [cond for _, _, cond in parts if cond is not None]
    svd = failed or bool(conds and min(lo for lo, _ in conds) <= 1e-8 * max(hi for _, hi in conds))
    mark = "~" if svd else ""  # the SVD basis names every column after its largest entry
    columns: list[_Column] = [
        (int(j), mark + free_names[j], np.array([j]), np.ones(1)) for j in np.flatnonzero(~in_block)
    ]
    for blk, (elim, _, _) in zip(blocks, parts, strict=True):
        keys: np.ndarray | list[int]
        if elim is not None and not svd:
            basis, keys = elim
            names = [free_names[blk.cols[k]] for k in keys]
        else:
            basis = blk.vt[blk.rank :].T.copy()
            keys = np.argmax(np.abs(basis), axis=0) if basis.size else []
            names = [f"~{free_names[blk.cols[k]]}" for k in keys]
        for c, (k, name) in enumerate(zip(keys, names, strict=True)):
            columns.append((int(blk.cols[k]), name, blk.cols, basis[:, c]))
    columns.sort(key=lambda col: col[0])
    return columns


def _null_space(
    As: np.ndarray, vt: np.ndarray, rank: int, free_names: list[str], colmax: float
) -> tuple[_Elimination | None, None, tuple[float, float] | None]:
    """Elimination basis of {y : As y = 0} for one group of rows.

    A set of ``rank`` "dependent" parameters whose columns of As are well
    independent is chosen greedily from the LAST parameter backwards
    (Gram-Schmidt, i.e. a QR of the chosen columns), so earlier parameters
    stay unknowns: ``same_value("C1.kappa, O1.kappa")`` keeps C1.kappa,
    ``U11 = U22 = 2 U12`` keeps U11. Each basis column then has a 1 at its
    own independent parameter and the dependent ones follow
    (``y_D = -As_D⁺ As_I y_I``). ``colmax`` is the largest column norm over
    all groups (the threshold of the greedy choice).

    Returns
    -------
    elimination : (basis, independent positions) or None
        None when no well-conditioned choice exists (the caller then uses
        the orthonormal SVD basis ``vt[rank:]``).
    names : unused (kept for symmetry with the SVD case)
    cond : (smallest, largest) singular value of the dependent block, or None
    """
    nf = As.shape[1]
    if rank == 0:
        return (np.eye(nf), np.arange(nf)), None, None
    q = np.zeros((As.shape[0], 0))
    dep: list[int] = []
    for j in range(nf - 1, -1, -1):
        v = As[:, j] - q @ (q.T @ As[:, j])
        v -= q @ (q.T @ v)
        nv = np.linalg.norm(v)
        if nv > 1e-6 * colmax:
            q = np.column_stack([q, v / nv])
            dep.append(j)
            if len(dep) == rank:
                break
    if len(dep) != rank:
        return None, None, None
    dep = sorted(dep)
    ind = [j for j in range(nf) if j not in dep]
    block = As[:, dep]
    sv = np.linalg.svd(block, compute_uv=False)
    basis = np.zeros((nf, nf - rank))
    if ind:
        basis[ind, np.arange(nf - rank)] = 1.0
        basis[dep] = -np.linalg.lstsq(block, As[:, ind], rcond=None)[0]
    if ind and np.abs(As @ basis).max() > 1e-10 * max(1.0, np.abs(basis).max()):
        return None, None, None
    return (basis, np.array(ind)), None, (float(sv[-1]), float(sv[0]))


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
        return int(self.T.shape[1])

    def to_full(self, z: np.ndarray) -> np.ndarray:
        """``p = p0 + T z``."""
        z = np.asarray(z, dtype=float)
        p: np.ndarray = self.p0 + self.T @ z
        return p

    def to_reduced(self, p: np.ndarray) -> np.ndarray:
        """Least-squares ``z`` with ``p0 + T z`` closest to p (exact for admissible p)."""
        d = np.asarray(p, dtype=float) - self.p0
        if self.n_reduced == 0:
            return np.zeros(0)
        z: np.ndarray = np.linalg.lstsq(self.T, d, rcond=None)[0]
        return z

    def jacobian(self, J: np.ndarray) -> np.ndarray:
        """Jacobian with respect to z: ``J T`` for J (n_obs, n) over the full vector."""
        jz: np.ndarray = np.asarray(J) @ self.T
        return jz

    def covariance_full(self, cov_z: np.ndarray) -> np.ndarray:
        """Covariance of p, ``T cov_z Tᵀ`` (n, n); zero for fixed parameters."""
        cov_z = np.asarray(cov_z, dtype=float)
        cov: np.ndarray = self.T @ cov_z @ self.T.T
        return cov

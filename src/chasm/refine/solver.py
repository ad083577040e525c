"""Full-matrix Gauss–Newton least squares with Levenberg–Marquardt damping.

The solver knows nothing about physics. A refinement is a list of data sets;
each one, given the full parameter vector p, returns its observations y_o,
calculated values y_c, weights w and the Jacobian J = dy_c/dp
(:class:`Evaluation`). Linear constraints enter as a reduction p = p0 + T z: the
solver works on z, with J_z = J T.

Score functions (CONVENTIONS.md, "Least squares"), χ²_e = Σ w (y_o − y_c)²:

    UNIT  C = Σ_e u_e χ²_e           c_e = u_e
    NLOG  C = Σ_e u_e N_e ln χ²_e    c_e = u_e N_e / χ²_e
    LOG   C = Σ_e u_e ln χ²_e        c_e = u_e / χ²_e

(u_e an optional user weight). ∇C = −2 Σ_e c_e J_eᵀ W_e r_e, so every cycle
solves the normal equations

    (M + λ diag M) Δz = b,  M = Σ_e c_e (J_e T)ᵀ W_e (J_e T),  b = Σ_e c_e (J_e T)ᵀ W_e r_e,

with c_e taken at the current point; the fixed point Δz = 0 is ∇C = 0. Under
NLOG and LOG the factors themselves depend on z, and half the Hessian of C is
M − 2 Σ_e k_e b_e b_eᵀ (b_e the set's part of b, k_e = 1/(u_e N_e) or 1/u_e):
the steps use that matrix when it is positive definite (M otherwise), so that
near the minimum a cycle is a Newton step of C even when the sets pull against
each other (M alone leaves a fixed fraction of the error per cycle there). Data
sets marked ``absolute`` (restraints, by default) always enter as u_e χ²_e:
their σ are taken at face value, whatever the scheme.

Covariance (our convention). With M = Σ_e M_e, M_e = c_e (J_e T)ᵀ W_e (J_e T)
evaluated at the solution, each set's share of the fitted parameters
h_e = tr(M_e M⁻¹) (Σ_e h_e = n_z; reported as the information share h_e/n_z)
and its own variance factor s_e² (the true σ² of set e are s_e² times its
stated ones),

    cov(z) = M⁻¹ (Σ_e c_e s_e² M_e) M⁻¹                         (covariance="gof")

the sandwich covariance of the weighted estimator: the noise of set e enters
the gradient with variance c_e² s_e² (J_e T)ᵀ W_e (J_e T). The s_e² solve the
linear equations that equate each χ²_e with its expectation to first order,

    E[χ²_e] = s_e² (N_e − 2 h_e) + Σ_f s_f² (c_f / c_e) tr(H_e H_f),   H_e = M_e M⁻¹

(absolute sets have s_f² = 1 on the right). When every c_f s_f² is the same
(UNIT with correctly scaled sets) this is the familiar s_e² = χ²_e/(N_e − h_e);
when the factors are not inverse variances (NLOG, LOG, user weights), a set
weighted above its 1/σ² pulls the shared parameters towards itself and its χ²_e
falls below s_e²(N_e − h_e): the familiar rule would then underestimate its
s_e² (on the seed case under LOG the PND's, by ~25 %, which made the spin su's
too small: pull sd 1.13 → 1.02 with this rule, docs/validation.md). If the
equations have no positive solution the familiar rule is used. With one data set it
is SHELXL's rule, su_i = sqrt(M⁻¹_ii χ²/(N − n_z)), whatever the scheme (c
cancels). With several sets it stays right when the sets fit differently (one
set's σ underestimated) and under NLOG and LOG, whose factors c_e are not
inverse variances: the plain s² M⁻¹ with c_e = 1/χ²_e would shrink every su by
about sqrt(n_sets/N) relative to the truth. Restraints and other ``absolute``
sets keep s_e² = 1 (their σ are taken at face value); a set with
N_e − h_e ≤ 0 uses s_e² = χ²_e/N_e. ``covariance="pooled"`` gives
cov = s² M⁻¹ with s² = Σ_e c_e χ²_e / (N − n_z) (identical for one set),
``covariance="none"`` gives cov = M⁻¹ (σ taken as exact). N, N_e count the
observations with non-zero weight.
cov(p) = T cov(z) Tᵀ.

Layout. This module holds the algorithm (:func:`solve` and its internals) and
the error classes :class:`RefinementError` and :class:`SingularMatrixError`,
which are raised only here; they are not moved out because no import cycle
requires it. The problem description (:class:`Evaluation`, :class:`Dataset`,
:class:`Restraints`, :class:`SolverOptions`) lives in :mod:`chasm.refine.problem`
and the results (:class:`CycleInfo`, :class:`DatasetFit`, :class:`FitResult`) in
:mod:`chasm.refine.results`; both are re-exported here, so
``from chasm.refine.solver import Dataset, FitResult, solve`` keeps working.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sps
from numpy.typing import ArrayLike
from scipy.linalg.lapack import dlange, dpocon, dpotrf, dtrtri

from chasm.blas import blas_threads
from chasm.errors import ChasmError, InputError
from chasm.refine.dense import add_into, symmetrise_lower
from chasm.refine.problem import (
    Dataset,
    Evaluation,
    Restraints,
    SolverOptions,
    WeightedEvaluation,
)
from chasm.refine.results import CycleInfo, DatasetFit, FitResult
from chasm.refine.syrk import syrk_lower
from chasm.scattering import kernel as _kernel

__all__ = [
    "RefinementError",
    "SingularMatrixError",
    "Evaluation",
    "Dataset",
    "Restraints",
    "SolverOptions",
    "CycleInfo",
    "DatasetFit",
    "FitResult",
    "solve",
]

SCHEMES = ("unit", "nlog", "log")
_ROWS = 4096  # rows of J per block when forming the normal matrix
_BLOCK_BYTES = 1 << 25  # at most 32 MiB per block (fewer rows when J is wide)
#: a set's columns are sliced as one run (not gathered) when run width² <= this x count²
_SPAN_SLACK = 1.25
#: OpenBLAS threads of the Cholesky factorisation, rcond and M⁻¹ below FACTOR_THREADS_UP_TO
#: reduced parameters (above it, and for the normal matrix itself, the default). Measured on
#: the 2-core machine of docs/benchmarks.md (chol + rcond + M⁻¹, medians): at loads 8-13,
#: k = 858 took 0.18-0.27 s on one thread against 0.74-1.03 s on two, k = 3429 5.5-7.4 s
#: against 12.3 s; at load 0.6-1.1, k = 858 0.068 s either way, k = 3429 2.3-2.7 s on one
#: thread against 1.7-1.9 s on two. Small factorisations gain nothing from a second thread
#: even on an idle machine and lose a lot on a busy one.
FACTOR_THREADS = 1
FACTOR_THREADS_UP_TO = 2000
#: Convergence figures (su) below this are rounding: a tolerance below it is raised to it.
ROUNDING_SU = 1e-6


class RefinementError(ChasmError):
    """A refinement that cannot proceed (non-finite model, no progress)."""


class SingularMatrixError(RefinementError):
    """The normal matrix is singular or nearly so.

    Attributes
    ----------
    parameters : list of str
        Names of the coordinates involved (largest components of the
        eigenvectors of the smallest eigenvalues, or without any effect).
    eigenvalues : ndarray
        The offending eigenvalues of the unit-diagonal scaled normal matrix.
    """

    def __init__(
        self, message: str, parameters: Sequence[str], eigenvalues: ArrayLike = ()
    ) -> None:
        self.parameters = list(parameters)
        self.eigenvalues = np.asarray(eigenvalues, dtype=float)
        super().__init__(message)


# ----------------------------------------------------------------------------- internals
@dataclass
class _State:
    """All data sets evaluated at one point."""

    z: np.ndarray
    p: np.ndarray
    evals: list[Evaluation]
    chi2: np.ndarray
    n: np.ndarray
    factors: np.ndarray
    score: float
    chi2_held: np.ndarray | None = None  # χ² under the weights of the cycle's start point
    score_held: float | None = None  # the score under those weights


@dataclass
class _System:
    """Normal equations at one point, scaled to unit diagonal and factorised."""

    d: np.ndarray  # sqrt(diag M)
    ms: np.ndarray  # M / (d d^T)
    bs: np.ndarray  # b / d
    chol: tuple[np.ndarray, bool]
    grads: list[np.ndarray]  # c_e (J_e T)^T W_e r_e, one per set
    parts: list[np.ndarray] | None  # M_e, kept on request
    _li: np.ndarray | None = None  # L⁻¹ of the Cholesky factor, made on first use
    _inv: np.ndarray | None = None

    @property
    def inv_s(self) -> np.ndarray:
        """(M / (d dᵀ))⁻¹ = L⁻ᵀ L⁻¹, formed on first use (only the su's are needed per cycle)."""
        if self._inv is None:
            li = self._l_inverse()
            self._inv = li.T @ li
        return self._inv

    def _l_inverse(self) -> np.ndarray:
        if self._li is None:
            with blas_threads(_factor_threads(len(self.bs))):
                self._li = _tril_inverse(self.chol[0])  # zeros above the diagonal
        return self._li

    def step(self, lam: float) -> np.ndarray:
        ds: np.ndarray
        if lam == 0.0:
            ds = _cho_solve(self.chol[0], self.bs)
        else:  # (on the factorisation's threads: a damped step is one more Cholesky)
            a = self.ms + lam * np.eye(len(self.bs))
            with blas_threads(_factor_threads(len(self.bs))):
                low = _cholesky(a)
                if low is None:  # (M + λ diag M with M positive definite: not expected)
                    raise np.linalg.LinAlgError("damped normal matrix not positive definite")
                ds = _cho_solve(low, self.bs)
        dz: np.ndarray = ds / self.d
        return dz

    def su_unit(self) -> np.ndarray:
        """sqrt(diag M⁻¹): the column norms of L⁻¹ (M⁻¹ itself is not formed)."""
        if self._inv is not None:
            su: np.ndarray = np.sqrt(np.diag(self._inv)) / self.d
            return su
        li = self._l_inverse()
        out: np.ndarray = np.sqrt(np.einsum("ij,ij->j", li, li)) / self.d
        return out


class _Solver:
    def __init__(
        self,
        datasets: Sequence[Dataset | Restraints],
        p0: ArrayLike,
        T: ArrayLike | None,
        names: Sequence[str] | None,
        scheme: str,
        opts: SolverOptions,
    ) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise InputError("solve: no data sets")
        self.p0 = np.asarray(p0, dtype=float).reshape(-1)
        self.T = None if T is None else np.asarray(T, dtype=float)
        if self.T is not None and (self.T.ndim != 2 or self.T.shape[0] != self.p0.size):
            raise InputError(f"T must have shape ({self.p0.size}, n_z), got {self.T.shape}")
        self.k = self.p0.size if self.T is None else self.T.shape[1]
        self._plan_reduction()
        used = np.arange(self.p0.size) if self._cols is None else self._cols
        for ds in self.datasets:  # sets that lay out their weighted rows by it
            hook = getattr(ds, "use_columns", None)
            if hook is not None:
                hook(used)
        if names is None:
            names = [f"z{i}" for i in range(self.k)]
        if len(names) != self.k:
            raise InputError(f"{len(names)} names given for {self.k} reduced coordinates")
        self.names = list(names)
        scheme = scheme.lower()
        if scheme not in SCHEMES:
            raise InputError(f"unknown score scheme {scheme!r}; use one of {SCHEMES}")
        self.scheme = scheme
        if opts.covariance not in ("gof", "pooled", "none"):
            raise InputError(
                f"covariance must be 'gof', 'pooled' or 'none', not {opts.covariance!r}"
            )
        self.opts = opts

    def _plan_reduction(self) -> None:
        """How J T is applied: M = T_Uᵀ (J_Uᵀ W J_U) T_U over the rows U of T in use.

        Columns of J that T ignores (fixed parameters) are never touched. When
        T_U is the identity (no constraints) nothing else is needed; otherwise
        the (sparse) T_U is applied to the small matrix afterwards, not to J.
        """
        self._cols: np.ndarray | None
        self._TU: sps.csr_array | None
        if self.T is None:
            self._cols, self._TU = None, None
            return
        used = np.flatnonzero(np.any(self.T != 0.0, axis=1))
        TU = self.T[used]
        self._cols = None if used.size == self.p0.size else used
        if TU.shape[0] == TU.shape[1] and np.array_equal(TU, np.eye(TU.shape[0])):
            self._TU = None
        else:
            self._TU = sps.csr_array(TU)

    def full(self, z: np.ndarray) -> np.ndarray:
        p: np.ndarray = self.p0 + z if self.T is None else self.p0 + self.T @ z
        return p

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, z: np.ndarray, held: _State | None = None) -> _State:
        """All data sets at z; with ``held``, also the score under held's weights.

        Weights that depend on the model (SHELXL's, through F_c²) are held at
        the values of the cycle's start point while its trial steps are judged
        (``score_held``, ``chi2_held``), as SHELXL does: otherwise the score a
        step is judged by changes with the step, and a step towards the
        minimum of the weighted χ² can look like a loss. The accepted point
        then brings its own weights to the next cycle. With constant weights
        the two scores are identical.
        """
        p = self.full(z)
        evals: list[Evaluation] = []
        chi2_list: list[float] = []
        n_list: list[int] = []
        chi2_held: list[float] = []
        for e, ds in enumerate(self.datasets):
            ev = ds.evaluate(p.copy())
            ev = self._checked(ds.name, ev, p.size)
            r = ev.y_obs - ev.y_calc
            evals.append(ev)
            chi2_list.append(float(np.sum(ev.weights * r * r)))
            n_list.append(int(np.count_nonzero(ev.weights)))
            if held is not None:
                w = held.evals[e].weights
                chi2_held.append(float(np.sum(w * r * r)) if w.shape == r.shape else chi2_list[-1])
        chi2, n = np.array(chi2_list), np.array(n_list, dtype=float)
        factors, terms = self._score_terms(chi2, n)
        state = _State(z, p, evals, chi2, n, factors, float(np.sum(terms)))
        if held is not None:
            state.chi2_held = np.array(chi2_held)
            state.score_held = float(np.sum(self._score_terms(state.chi2_held, held.n)[1]))
        return state

    def _checked(self, name: str, ev: Evaluation, n_full: int) -> Evaluation:
        y_obs = np.asarray(ev.y_obs, dtype=float).reshape(-1)
        n = y_obs.size
        y_calc = np.asarray(ev.y_calc, dtype=float).reshape(-1)
        w = np.asarray(ev.weights, dtype=float).reshape(-1)
        weighted = isinstance(ev, WeightedEvaluation)
        J = ev.rows if isinstance(ev, WeightedEvaluation) else np.asarray(ev.jacobian, float)
        shape = (n, J.shape[1]) if weighted else (n, n_full)
        if isinstance(ev, WeightedEvaluation):
            cols = ev.columns
            if (
                ev.n_params != n_full
                or cols.shape != (J.shape[1] - 1,)
                or (cols.size and (cols.min() < 0 or cols.max() >= n_full))
                or np.unique(cols).size != cols.size
            ):
                raise InputError(
                    f"data set {name!r}: weighted rows for {ev.n_params} parameters, columns "
                    f"{cols.shape} of {J.shape}; expected distinct columns in 0..{n_full - 1}, "
                    "one per column of the rows but the last"
                )
        if y_calc.size != n or w.size != n or J.shape != shape:
            what = "weighted rows" if weighted else "jacobian"
            raise InputError(
                f"data set {name!r}: y_obs {n}, y_calc {y_calc.size}, weights {w.size}, "
                f"{what} {J.shape}; expected {what} {shape}"
            )
        if np.any(~np.isfinite(w)) or np.any(w < 0.0) or np.any(~np.isfinite(y_obs)):
            raise InputError(f"data set {name!r}: weights must be finite and ≥ 0, y_obs finite")
        if not np.all(np.isfinite(y_calc)):
            raise RefinementError(_not_finite(name))
        # the derivatives are checked on the normal matrix (normal_part): a non-finite entry
        # of J makes its column's diagonal non-finite, without a pass over J here
        if isinstance(ev, WeightedEvaluation):
            return WeightedEvaluation(y_obs, y_calc, w, ev.rows, ev.columns, ev.n_params)
        return Evaluation(y_obs, y_calc, w, J)

    def _score_terms(self, chi2: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u = np.array([ds.user_weight for ds in self.datasets], dtype=float)
        absolute = np.array([ds.absolute for ds in self.datasets])
        if self.scheme == "unit":
            return u.copy(), u * chi2
        c = np.maximum(chi2, self.opts.chi2_floor * np.maximum(n, 1.0))
        if self.scheme == "nlog":
            factors, terms = u * n / c, u * n * np.log(c)
        else:
            factors, terms = u / c, u * np.log(c)
        factors = np.where(absolute, u, factors)
        terms = np.where(absolute, u * chi2, terms)
        return factors, terms

    # ------------------------------------------------------------------ normal equations
    def normal_part(
        self, ev: Evaluation, c: float, name: str = ""
    ) -> tuple[np.ndarray, np.ndarray]:
        """c (J T)ᵀ W (J T) and c (J T)ᵀ W r of one data set.

        Only the columns of J that T uses and that are not all zero in this
        evaluation enter the products (a data set's Jacobian is zero in the
        parameters it does not see: the X-ray set in the spin populations,
        the neutron sets in most multipoles); the zero rows and columns of
        the set's matrix are filled in afterwards.

        A :class:`~chasm.refine.problem.WeightedEvaluation` brings its rows
        weighted, with the weighted residuals as their last column, and the
        columns that can be non-zero: when those (through the residuals)
        nearly are one run, one BLAS syrk over that run of the array itself
        gives M and b (no copy of J, no scan of it; the few columns inside the
        run that are not wanted are dropped from the small product); when
        they are scattered, they are gathered block by block into a buffer.
        A plain :class:`~chasm.refine.problem.Evaluation` is scanned for its
        non-zero columns, which are copied and weighted by √(c w) into a
        buffer of a few thousand rows, with the weighted residuals as one
        more column, and accumulated by syrk block by block.

        Raises
        ------
        RefinementError
            Non-finite derivatives (seen on the diagonal of the product: a
            non-finite entry of J makes its column's diagonal non-finite).
        """
        live, Mk, gk = self._used_part(ev, c, name)
        u = self._n_used()
        if live.size == u:
            M, g = Mk, gk
        else:
            M, g = np.zeros((u, u)), np.zeros(u)
            M[np.ix_(live, live)] = Mk
            g[live] = gk
        return self._reduced(M), self._reduced_g(g)

    def _n_used(self) -> int:
        """Number of columns of J that T uses."""
        return self.p0.size if self._cols is None else self._cols.size

    def _used_part(
        self, ev: Evaluation, c: float, name: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(positions among the used columns, c (J_U)ᵀ W J_U over them, c (J_U)ᵀ W r) of a set."""
        used = np.arange(self.p0.size) if self._cols is None else self._cols
        if isinstance(ev, WeightedEvaluation):
            live, Mk, gk = self._weighted_product(ev, c, used)
        else:
            live, Mk, gk = self._plain_product(ev, c, used)
        if not (np.all(np.isfinite(np.diagonal(Mk))) and np.all(np.isfinite(gk))):
            raise RefinementError(_not_finite(name))
        Mk = symmetrise_lower(Mk)  # (a view of the accumulator when nothing was dropped: no copy)
        return live, Mk, gk

    def _reduced(self, M: np.ndarray) -> np.ndarray:
        """T_Uᵀ M T_U of a symmetric matrix over the used columns (M itself when T_U = 1)."""
        if self._TU is None:
            return M
        TU = self._TU
        out = np.asarray(TU.T @ (TU.T @ M).T)  # (M symmetric)
        return symmetrise_lower(np.ascontiguousarray(out))

    def _reduced_g(self, g: np.ndarray) -> np.ndarray:
        """T_Uᵀ g of a vector over the used columns."""
        return g if self._TU is None else np.asarray(self._TU.T @ g)

    def _weighted_product(
        self, ev: WeightedEvaluation, c: float, used: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(positions in ``used`` of the product's columns, c Aᵀ A lower, c Aᵀ (√w r))."""
        A = ev.rows
        n, m = A.shape[0], A.shape[1] - 1
        where = np.full(ev.n_params, -1, dtype=np.intp)  # column of A of each parameter
        where[ev.columns] = np.arange(m)
        at = where[used]
        live = np.flatnonzero(at >= 0)
        pos = at[live]  # columns of A, in the order of `used`
        k = pos.size
        if k == 0 or n == 0:
            return live, np.zeros((0, 0), order="F"), np.zeros(0)
        # one run from the first wanted column through the residuals (the last column) when
        # the wanted columns nearly are one: a slightly wider syrk costs less than a gather
        first = int(pos.min())
        span = m - first
        if span**2 <= _SPAN_SLACK * k * k:
            # (beta = 0: the accumulator is not read, and only its lower triangle is used)
            acc = syrk_lower(A[:, first:], np.empty((span + 1, span + 1), order="F"), c)
            Mk, gk = acc[:span, :span], acc[span, :span].copy()
            pick = pos - first
            if span == k and np.array_equal(pick, np.arange(k)):
                return live, Mk, gk
            if np.any(np.diff(pick) < 0):  # not in the order of `used`: both triangles
                Mk = symmetrise_lower(Mk)
            return live, Mk[np.ix_(pick, pick)], gk[pick]
        take = np.append(pos, m)  # the columns and the residuals, gathered
        rows = min(_ROWS, max(256, _BLOCK_BYTES // (8 * (k + 1))))
        buf = np.empty((min(n, rows), k + 1))
        acc = np.zeros((k + 1, k + 1), order="F")
        for b0 in range(0, n, rows):
            B = buf[: min(n, b0 + rows) - b0]
            np.take(A[b0 : b0 + B.shape[0]], take, axis=1, out=B)
            acc = syrk_lower(B, acc, c, 1.0)
        return live, acc[:k, :k], acc[k, :k].copy()

    def _plain_product(
        self, ev: Evaluation, c: float, used: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As :meth:`_weighted_product` for an unweighted J (weighted into a buffer here)."""
        J = ev.jacobian
        n = J.shape[0]
        sw = np.sqrt(c * ev.weights)
        rw = sw * (ev.y_obs - ev.y_calc)
        live = _nonzero_columns(J, used)  # positions in `used` of the non-zero columns
        cols = used[live]
        k = cols.size
        # the columns are sliced as one run when they nearly are one (a few fixed
        # columns inside, e.g. occupancies): a slightly wider syrk costs less than a
        # gather (15,060 x 858 of 891: 8 % more syrk, against a gather of a third of it)
        span = int(cols[-1]) - int(cols[0]) + 1 if k else 0
        run = (int(cols[0]), int(cols[0]) + span) if k and span**2 <= _SPAN_SLACK * k * k else None
        w = span if run is not None else k  # columns of the products
        # the weighted residuals ride along as column w: one syrk gives
        # [[Aᵀ A, .], [rᵀ A, .]], i.e. M and b, in one pass over the block
        rows = min(_ROWS, max(256, _BLOCK_BYTES // (8 * (w + 1))))  # wide J: fewer rows
        buf = np.empty((min(n, rows), w + 1))
        target = none = none_i = none_1 = None
        if run is None and k and _kernel.HAVE_NUMBA:  # position in A of each column of J
            target = np.full(J.shape[1], -1, dtype=np.intp)
            target[cols] = np.arange(k)
            none, none_i, none_1 = np.empty((0, 0)), np.empty(0, dtype=np.intp), np.empty(0)
        acc = np.zeros((w + 1, w + 1), order="F")  # lower triangle accumulated in place
        for b0 in range(0, n if k else 0, rows):
            b1 = min(n, b0 + rows)
            B = buf[: b1 - b0]
            A = B[:, :w]
            if run is not None:
                np.multiply(J[b0:b1, run[0] : run[1]], sw[b0:b1, None], out=A)
            elif target is not None:  # gathered and weighted in one compiled pass
                assert none is not None and none_i is not None and none_1 is not None
                _kernel.scatter(J[b0:b1], none, target, none_i, sw[b0:b1], none_1, 2, A, none)
            else:
                np.take(J[b0:b1], cols, axis=1, out=A)
                A *= sw[b0:b1, None]
            B[:, w] = rw[b0:b1]
            acc = syrk_lower(B, acc, 1.0, 1.0)
        Mk, gk = acc[:w, :w], acc[w, :w].copy()
        if run is not None and w != k:  # drop the run's zero (or unused) columns
            pick = cols - run[0]
            Mk, gk = Mk[np.ix_(pick, pick)], gk[pick]
        return live, Mk, gk

    def system(self, state: _State, keep_parts: bool = False, curvature: bool = True) -> _System:
        k = self.k
        M: np.ndarray | None = None
        b = np.zeros(k)
        grads: list[np.ndarray] = []
        parts: list[np.ndarray] | None = None
        if keep_parts:
            parts = []
            for ds, ev, c in zip(self.datasets, state.evals, state.factors, strict=True):
                Me, g = self.normal_part(ev, c, ds.name)
                M = Me.copy() if M is None else M + Me
                b += g
                grads.append(g)
                parts.append(Me)
        else:
            M, grads = self._summed(state)
            b = np.sum(grads, axis=0) if len(grads) > 1 else grads[0].copy()
        assert M is not None  # _Solver refuses an empty list of data sets
        if not (np.all(np.isfinite(M)) and np.all(np.isfinite(b))):
            raise RefinementError("normal equations are not finite (overflow in weights?)")
        d2 = np.diag(M).copy()
        dead = np.flatnonzero(d2 <= 0.0)
        if dead.size:
            names = [self.names[i] for i in dead]
            raise SingularMatrixError(
                "singular normal matrix: no observation depends on "
                + ", ".join(names)
                + " (fix these parameters or check their derivatives)",
                names,
                np.zeros(dead.size),
            )
        d = np.sqrt(d2)
        ms = _scaled(M, d)
        correction = self._curvature(state, grads) if curvature else None
        if correction is None:
            del M  # not needed any more: one k x k array less at the factorisation
        # L⁻¹ (the su's of every cycle) on the same threads, in the same thread switch
        with blas_threads(_factor_threads(self.k)):
            if correction is not None:  # the score's own curvature, when positive definite
                mc = (M + correction) / np.outer(d, d)
                chol, rcond = _factor(mc)
                if chol is not None and rcond >= self.opts.singular_tol:
                    li = _tril_inverse(chol[0])
                    return _System(d, mc, b / d, chol, grads, parts, _li=li)
            chol, rcond = _factor(ms)
            if chol is None or rcond < self.opts.singular_tol:
                self._raise_singular(ms)
            assert chol is not None  # _raise_singular raised otherwise
            li = _tril_inverse(chol[0])
        return _System(d, ms, b / d, chol, grads, parts, _li=li)

    def _summed(self, state: _State) -> tuple[np.ndarray, list[np.ndarray]]:
        """Σ_e M_e and every set's c_e (J_e T)ᵀ W_e r_e (T applied once, to the sum).

        Each set's product over its own columns is added into one matrix over
        the used columns (the first set's, when it spans them all, is that
        matrix): no k x k matrix per set, and T_Uᵀ (.) T_U once.
        """
        u = self._n_used()
        M: np.ndarray | None = None
        grads: list[np.ndarray] = []
        for ds, ev, c in zip(self.datasets, state.evals, state.factors, strict=True):
            live, Mk, gk = self._used_part(ev, c, ds.name)
            if M is None and live.size == u:
                M = Mk
            else:
                if M is None:
                    M = np.zeros((u, u))
                if live.size == u:
                    M += Mk
                elif live.size:
                    add_into(M, Mk, live)  # (M[np.ix_(live, live)] += Mk, compiled)
            g = np.zeros(u)
            g[live] = gk
            grads.append(self._reduced_g(g))
        assert M is not None  # _Solver refuses an empty list of data sets
        return self._reduced(M), grads

    def _curvature(self, state: _State, grads: list[np.ndarray]) -> np.ndarray | None:
        """−2 Σ_e k_e b_e b_eᵀ: what turns M into half the Hessian of NLOG or LOG (None: UNIT).

        C = Σ_e f_e(χ²_e) with f_e = u_e N_e ln χ² (NLOG) or u_e ln χ² (LOG), so
        ∇²C/2 = Σ_e c_e (J_e T)ᵀ W_e (J_e T) + 2 Σ_e f_e'' (J_e T)ᵀ W_e r_e r_eᵀ W_e (J_e T)
              = M − 2 Σ_e k_e b_e b_eᵀ,   b_e = c_e (J_e T)ᵀ W_e r_e,
        k_e = 1/(u_e N_e) (NLOG) or 1/u_e (LOG), since f_e'' = −c_e²/(u_e N_e) or
        −c_e²/u_e. M alone treats the factors c_e as constants: at a point where the
        sets pull against each other (b_e ≠ 0 although Σ b_e = 0) the step is then
        too short, and a cycle removes only part of the error (the seed case under
        LOG: 0.5 per cycle, 0.9 with X-rays to 0.6 Å⁻¹). Absolute sets and χ²_e
        at the floor keep their constant factor. With one data set (restraints
        aside) every scheme has the minimum of χ², and the steps stay those of
        Gauss–Newton on χ² (identical to UNIT).
        """
        if self.scheme == "unit" or sum(not ds.absolute for ds in self.datasets) < 2:
            return None  # one set: same minimum as χ², and Gauss–Newton on χ² is the step
        corr: np.ndarray | None = None
        for e, (ds, g) in enumerate(zip(self.datasets, grads, strict=True)):
            n, chi2 = float(state.n[e]), float(state.chi2[e])
            if ds.absolute or ds.user_weight <= 0 or n <= 0:
                continue
            if chi2 <= self.opts.chi2_floor * max(n, 1.0):
                continue
            k = 1.0 / (ds.user_weight * (n if self.scheme == "nlog" else 1.0))
            if corr is None:
                corr = np.zeros((self.k, self.k))
            corr -= 2.0 * k * np.outer(g, g)
        return corr

    def _raise_singular(self, ms: np.ndarray) -> NoReturn:
        w, v = np.linalg.eigh(ms)
        bad = np.flatnonzero(w < self.opts.singular_tol * max(w[-1], 0.0) * 10.0)
        if bad.size == 0:
            bad = np.array([0])
        bad = bad[:3]
        groups: list[str] = []
        names: list[str] = []
        for j in bad:
            comp = np.abs(v[:, j])
            order = np.argsort(-comp)
            sel = [i for i in order[:8] if comp[i] >= 0.3 * comp[order[0]]]
            group = [self.names[i] for i in sel]
            groups.append(f"[{', '.join(group)}] (eigenvalue {w[j]:.2e})")
            names += [g for g in group if g not in names]
        raise SingularMatrixError(
            "singular normal matrix (scaled to unit diagonal): the parameters in "
            + "; ".join(groups)
            + " are (nearly) linearly dependent; fix, constrain or restrain one of them",
            names,
            w[bad],
        )

    # ------------------------------------------------------------------ helpers
    def dof_factor(self, state: _State) -> float:
        if self.opts.covariance == "none":
            return 1.0
        dof = float(np.sum(state.n)) - self.k
        if dof <= 0:
            return 1.0
        return float(np.sum(state.factors * state.chi2)) / dof

    def limit(self, dz: np.ndarray, su: np.ndarray) -> tuple[np.ndarray, bool]:
        cap = np.full(self.k, np.inf)
        if self.opts.max_shift_su is not None:
            cap = np.minimum(cap, self.opts.max_shift_su * su)
        if self.opts.max_shift_abs is not None:
            cap = np.minimum(cap, np.broadcast_to(np.abs(self.opts.max_shift_abs), (self.k,)))
        ratio = float(np.max(np.abs(dz) / cap)) if self.k else 0.0
        if ratio > 1.0:
            return dz / ratio, True
        return dz, False

    def info(
        self,
        state: _State,
        stage: str,
        cycle: int,
        start: float,
        shift: float,
        worst: int,
        lam: float,
        trials: int,
        accepted: bool,
        limited: bool,
    ) -> CycleInfo:
        wr: dict[str, float] = {}
        for ds, ev, chi2 in zip(self.datasets, state.evals, state.chi2, strict=True):
            den = float(np.sum(ev.weights * ev.y_obs**2))
            wr[ds.name] = float(np.sqrt(chi2 / den)) if den > 0 else 0.0
        dof = float(np.sum(state.n)) - self.k
        gof = float(np.sqrt(np.sum(state.chi2) / dof)) if dof > 0 else float("inf")
        return CycleInfo(
            stage=stage,
            cycle=cycle,
            score_start=start,
            score=state.score,
            chi2={ds.name: float(c) for ds, c in zip(self.datasets, state.chi2, strict=True)},
            wr=wr,
            n={ds.name: int(k) for ds, k in zip(self.datasets, state.n, strict=True)},
            factors={ds.name: float(c) for ds, c in zip(self.datasets, state.factors, strict=True)},
            gof=gof,
            max_shift_su=shift,
            max_shift_name=self.names[worst] if self.k else "",
            damping=lam,
            trials=trials,
            accepted=accepted,
            limited=limited,
            p=state.p.copy(),
        )


# ----------------------------------------------------------------------------- driver
def solve(
    datasets: Sequence[Dataset | Restraints],
    p0: ArrayLike,
    T: ArrayLike | None = None,
    z0: ArrayLike | None = None,
    names: Sequence[str] | None = None,
    scheme: str = "unit",
    options: SolverOptions | None = None,
    callback: Callable[[CycleInfo], None] | None = None,
    stage: str = "",
    first_cycle: int = 1,
) -> FitResult:
    """Minimise a score over the reduced coordinates z, p = p0 + T z.

    Parameters
    ----------
    datasets : sequence of Dataset or Restraints
        Each has ``name``, ``evaluate(p) -> Evaluation``, ``user_weight`` and
        ``absolute``.
    p0 : array_like, shape (n_full,)
        Offset of the reduction (the full vector at z = 0).
    T : array_like, shape (n_full, n_z), optional
        Reduction matrix; None means the identity (z = p − p0).
    z0 : array_like, shape (n_z,), optional
        Starting z (default zeros, i.e. p = p0).
    names : sequence of str, optional
        Name of each z coordinate (used in messages and correlations).
    scheme : {"unit", "nlog", "log"}
        Score function (module docstring).
    options : SolverOptions, optional
    callback : callable, optional
        Called with a :class:`CycleInfo` after every cycle.
    stage : str
        Label passed through to the callback (e.g. "multipoles").
    first_cycle : int
        Number of the first cycle (a resumed stage continues its count: the
        budget is ``options.max_cycles`` cycles in all, not per call).

    Returns
    -------
    FitResult

    Raises
    ------
    SingularMatrixError
        Singular or near-singular normal matrix, naming the coordinates involved.
    RefinementError
        Non-finite model at the starting point.
    InputError
        Inconsistent shapes, negative weights, unknown scheme.

    Notes
    -----
    A cycle builds the normal matrix once (per set, the symmetric product of the
    weighted columns of J that T uses; T is applied to that small matrix, not to
    J), then tries steps, raising λ (Marquardt, (M + λ diag M)) while C goes up and
    lowering it when C goes down.

    Convergence is a property of a point, not of the step that was taken: at
    the start of every cycle the undamped step (Gauss–Newton, or the Newton step
    of the score under NLOG/LOG) and the gradient are measured in su
    (:class:`_Test`); the stage has converged when both are below ``tol``, the
    cycle's step was accepted and the shift limiter did not cut it. A damped
    step is never the test (damping shrinks any step below tol: a point far
    from the minimum would pass), nor is a limited one. A rejected trial at a
    point that passes ends the stage as converged; a trial that changes no χ²_e
    beyond rounding (1e-13 relative) at a point that does not pass stops the
    stage as NOT converged, naming the figures. Running out of cycles names the
    coordinates still moving (:attr:`FitResult.moving`). σ(z_i) uses s² ≥ 1e-12
    so that noise-free problems converge too. A trial point where a data set
    raises a :class:`~chasm.errors.ChasmError` or gives non-finite values counts
    as "C went up".
    """
    opts = options or SolverOptions()
    sv = _Solver(datasets, p0, T, names, scheme, opts)
    z = np.zeros(sv.k) if z0 is None else np.asarray(z0, dtype=float).reshape(sv.k).copy()
    state = sv.evaluate(z)
    lam = float(opts.lambda_start)
    history: list[CycleInfo] = []
    converged, message, cycles = False, "", first_cycle - 1
    for cycle in range(first_cycle, opts.max_cycles + 1):
        cycles = cycle
        system = sv.system(state)
        su = system.su_unit() * np.sqrt(max(sv.dof_factor(state), 1e-12))
        # the convergence figures of the point the cycle starts from: the undamped
        # (Gauss–Newton or Newton) step and the gradient, both in su
        gn = _Test(system, su, sv.dof_factor(state), opts)
        trials, accepted, stop, undamped_tried = 0, False, False, False
        note = ""
        while True:
            trials += 1
            dz, limited = sv.limit(gn.step if lam == 0.0 else system.step(lam), su)
            rel = np.abs(dz) / su
            worst = int(np.argmax(rel)) if sv.k else 0
            shift = float(rel[worst]) if sv.k else 0.0
            trial: _State | None
            try:
                trial = sv.evaluate(z + dz, held=state)
            except ChasmError as err:
                trial, note = None, str(err)
            if trial is not None and _score_held(trial) < state.score:
                accepted = True
                break
            # a failed trial means convergence only if the point itself passes the
            # test (damping shrinks any step below tol, so the damped shift says nothing)
            if gn.passed:
                converged, stop = True, True
                message = "converged (no further decrease of the score)"
                break
            if trial is not None and _stationary(trial, state):
                if lam == 0.0 and not limited:  # the full undamped step gains nothing
                    converged, stop = True, True
                    message = "converged (the score is flat to rounding)"
                    break
                if not undamped_tried:  # a damped step says nothing: try the full one
                    undamped_tried, lam = True, 0.0
                    continue
                stop = True
                message = (
                    "stopped: the score no longer changes beyond rounding, but the point is "
                    f"not a minimum ({gn.describe(sv.names)}); check the derivatives"
                )
                break
            lam = opts.lambda_first if lam == 0.0 else lam * opts.lambda_factor
            if lam > opts.lambda_max:
                stop = True
                message = "stopped: damping limit reached without decreasing the score"
                if note:
                    message += f" (last trial: {note})"
                break
        start = state.score
        if accepted and trial is not None:  # (accepted implies a trial)
            z, state = z + dz, trial
            lam = 0.0 if lam <= opts.lambda_first else lam / opts.lambda_factor
        info = sv.info(state, stage, cycle, start, shift, worst, lam, trials, accepted, limited)
        info.gn_shift, info.gradient = gn.shift, gn.gradient
        history.append(info)
        if callback is not None:
            callback(info)
        # converged: the undamped step from the cycle's start point AND the gradient
        # there were below tol, and the step taken was not cut by the limiter
        if accepted and gn.passed and not limited:
            converged, message = True, "converged"
            break
        if stop:
            break
    else:
        message = f"not converged after {opts.max_cycles} cycles"
    result = _result(sv, state, cycles, converged, message, history)
    out_of_cycles = not converged and message.startswith("not converged after")
    if out_of_cycles and result.final_passed:  # the last step landed on the minimum
        result.converged = True
        result.message = f"converged (the point after cycle {cycles} passes the test)"
    elif not converged and result.moving:
        still = ", ".join(f"{n} ({r:.2g} su)" for n, r in result.moving[:5])
        result.message += f"; still moving: {still}"
    return result


class _Test:
    """Convergence figures of one point: the undamped step and the gradient, in su.

    ``shift`` = max_i |Δz_i|/σ_i of the undamped step (Gauss–Newton, or Newton of
    the score when the NLOG/LOG curvature is used); ``gradient`` = max_i |b_i| /
    (sqrt(M_ii) s), the shift (in su) that coordinate i would take if it alone
    were refined, with b = −∇C/2 and s² the covariance factor. Both vanish at a
    minimum of the score; the point passes when both are below ``tol`` (or
    below :data:`ROUNDING_SU` when a smaller tol is asked for: figures of that
    size are the rounding of the gradient, not a direction to move in).
    """

    def __init__(self, system: _System, su: np.ndarray, s2: float, opts: SolverOptions):
        self.step = system.step(0.0)
        with np.errstate(all="ignore"):
            rel = np.abs(self.step) / su
            grad = np.abs(system.bs) / np.sqrt(max(s2, 1e-12))
        if not (np.all(np.isfinite(rel)) and np.all(np.isfinite(grad))):
            rel = np.full_like(rel, np.inf)
        self.rel, self.grad = rel, grad
        self.shift = float(np.max(rel)) if rel.size else 0.0
        self.gradient = float(np.max(grad)) if grad.size else 0.0
        tol = max(opts.tol, ROUNDING_SU)
        self.passed = self.shift < tol and self.gradient < tol

    def describe(self, names: Sequence[str]) -> str:
        i = int(np.argmax(self.rel)) if self.rel.size else 0
        where = f" ({names[i]})" if self.rel.size else ""
        return f"undamped step {self.shift:.3g} su{where}, gradient {self.gradient:.3g} su"


def _covariance(
    sv: _Solver, state: _State, system: _System, inv: np.ndarray, h: np.ndarray, s2: float
) -> tuple[np.ndarray, np.ndarray]:
    """(cov(z), s_e² per set) by the rule of ``opts.covariance`` (module docstring)."""
    absolute = np.array([ds.absolute for ds in sv.datasets])
    if sv.opts.covariance != "gof" or np.sum(~absolute) <= 1:
        # pooled, none, or one data set (and restraints): SHELXL's rule
        return s2 * inv, np.where(absolute, 1.0, s2 / state.factors)  # c_e s_e² = s²
    se2 = _set_variances(sv, state, system, inv, h)
    middle = np.zeros_like(inv)
    for e, me in enumerate(_parts(system)):
        middle += state.factors[e] * se2[e] * me  # c_e² s_e² (J_e T)ᵀ W_e (J_e T)
    return symmetrise_lower(inv @ middle @ inv), se2


def _parts(system: _System) -> list[np.ndarray]:
    """The per-set matrices M_e of a system built with ``keep_parts=True``."""
    assert system.parts is not None
    return system.parts


def _set_variances(
    sv: _Solver, state: _State, system: _System, inv: np.ndarray, h: np.ndarray
) -> np.ndarray:
    """s_e² of every set (1 for absolute sets) from E[χ²_e] (module docstring)."""
    absolute = np.array([ds.absolute for ds in sv.datasets])
    n, chi2, c = state.n, state.chi2, state.factors
    simple = np.where(n - h > 0, n - h, np.maximum(n, 1.0))
    s2 = np.where(absolute, 1.0, chi2 / simple)
    free = np.flatnonzero(~absolute)
    # H_e = M_e M⁻¹; E[χ²_e] = s_e² (N_e − 2 h_e) + Σ_f s_f² (c_f/c_e) tr(H_e H_f)
    parts = _parts(system)
    hs = [parts[e] @ inv for e in range(len(n))]
    a = np.zeros((len(n), len(n)))
    for e in range(len(n)):
        a[e, e] = n[e] - 2.0 * h[e]
        for f in range(len(n)):
            a[e, f] += c[f] / c[e] * float(np.sum(hs[e] * hs[f].T))
    rhs = chi2[free] - a[np.ix_(free, np.flatnonzero(absolute))].sum(axis=1)
    try:
        exact: np.ndarray = np.linalg.solve(a[np.ix_(free, free)], rhs)
    except np.linalg.LinAlgError:
        return s2
    if np.all(np.isfinite(exact)) and np.all(exact > 0.0):
        s2[free] = exact
    return s2


def _factor(ms: np.ndarray) -> tuple[tuple[np.ndarray, bool] | None, float]:
    """Cholesky factor (lower, True) of a unit-diagonal matrix and its rcond; (None, 0): not PD."""
    low = _cholesky(ms)
    if low is None:
        return None, 0.0
    anorm = float(dlange(b"1", ms.T))  # (ms symmetric: its memory read as a Fortran matrix)
    rcond, info = dpocon(low.T, anorm, uplo="U")  # Lᵀ = U, Fortran-ordered: no copy
    return (low, True), (float(rcond) if info == 0 else 0.0)


def _cholesky(a: np.ndarray) -> np.ndarray | None:
    """Lower Cholesky factor L (C order, zeros above the diagonal) of a symmetric a; None: not PD.

    LAPACK potrf reads a's memory as the Fortran matrix aᵀ = a and returns its
    upper factor U = Lᵀ in Fortran order (one copy of a, which is kept), whose
    transpose is L in C order without another copy.
    """
    u, info = dpotrf(a.T, lower=0, clean=1)
    if info != 0:
        return None
    low: np.ndarray = u.T
    return low


def su_z_test(system: _System, s2: float) -> np.ndarray:
    """σ(z) of the convergence test: sqrt(diag M⁻¹) s with s² ≥ 1e-12 (as in the cycles)."""
    su: np.ndarray = system.su_unit() * np.sqrt(max(s2, 1e-12))
    return su


def _cho_solve(low: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x with L Lᵀ x = b for a C-ordered lower factor L, without copying L.

    LAPACK wants Fortran order: Lᵀ is L's memory read in Fortran order, the
    upper factor U = Lᵀ of the same matrix (scipy would copy a C-ordered L,
    a k x k array at the memory peak of every step).
    """
    x: np.ndarray = sla.cho_solve((low.T, False), b, check_finite=False)
    return x


def _factor_threads(k: int) -> int | None:
    """OpenBLAS threads of the factorisation and inverse of k parameters (None: default)."""
    return FACTOR_THREADS if k < FACTOR_THREADS_UP_TO else None


def _tril_inverse(low: np.ndarray) -> np.ndarray:
    """Inverse of a lower-triangular matrix (C order; the upper triangle stays 0).

    LAPACK trtri on a copy of Lᵀ (the Fortran reading of L's memory): (Lᵀ)⁻¹
    in Fortran order is L⁻¹ in C order.
    """
    inv, info = dtrtri(low.T, lower=0)
    if info != 0:
        raise SingularMatrixError("singular Cholesky factor", [], [])
    out: np.ndarray = inv.T
    return out


def _not_finite(name: str) -> str:
    """The message of a data set whose calculated values or derivatives are not finite."""
    return f"data set {name!r}: calculated values or derivatives not finite"


def _nonzero_columns(J: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Positions in ``cols`` of the columns of J with a non-zero entry (read in row blocks)."""
    if cols.size == 0 or J.shape[0] == 0:
        return np.arange(0)
    seen = np.zeros(J.shape[1], dtype=bool)
    for b0 in range(0, J.shape[0], _ROWS):
        seen |= np.any(J[b0 : b0 + _ROWS] != 0.0, axis=0)
    return np.flatnonzero(seen[cols])


def _scaled(M: np.ndarray, d: np.ndarray, rows: int = 256) -> np.ndarray:
    """M / outer(d, d), row block by row block (no k x k temporary; the same numbers).

    M is symmetric (bit for bit): a column-major M is read as its transpose,
    the row-major reading of the same memory, which gives the same quotients.
    """
    if M.ndim == 2 and M.strides[0] < M.strides[1]:
        M = M.T
    out = np.empty((len(M), len(M)))
    for r0 in range(0, len(M), rows):
        np.divide(M[r0 : r0 + rows], np.outer(d[r0 : r0 + rows], d), out=out[r0 : r0 + rows])
    return out


def _score_held(trial: _State) -> float:
    """The trial's score under the weights of the cycle's start (set by ``evaluate(held=)``)."""
    assert trial.score_held is not None
    return trial.score_held


def _stationary(trial: _State, state: _State) -> bool:
    """No χ² (under the held weights) changed beyond rounding (1e-13 relative)."""
    chi2 = trial.chi2 if trial.chi2_held is None else trial.chi2_held
    return bool(np.all(np.abs(chi2 - state.chi2) <= 1e-13 * state.chi2))


def _result(
    sv: _Solver,
    state: _State,
    cycles: int,
    converged: bool,
    message: str,
    history: list[CycleInfo],
) -> FitResult:
    # the covariance from the Gauss–Newton matrix Σ_e M_e (the information of the data;
    # the score-curvature term of NLOG/LOG only speeds up the steps)
    system = sv.system(state, keep_parts=True, curvature=False)
    s2 = sv.dof_factor(state)
    inv = system.inv_s / np.outer(system.d, system.d)
    h = np.array([float(np.sum(me * inv)) for me in _parts(system)])
    cov, se2 = _covariance(sv, state, system, inv, h, s2)
    su_z = np.sqrt(np.maximum(np.diag(cov), 0.0))
    scale = np.where(su_z > 0, su_z, 1.0)
    corr = cov / np.outer(scale, scale)
    np.fill_diagonal(corr, 1.0)
    thr = sv.opts.correlation_threshold
    iu, ju = np.triu_indices(sv.k, 1)
    sel = np.flatnonzero(np.abs(corr[iu, ju]) >= thr)
    sel = sel[np.argsort(-np.abs(corr[iu[sel], ju[sel]]))]
    high = [(sv.names[iu[s]], sv.names[ju[s]], float(corr[iu[s], ju[s]])) for s in sel]
    T = np.eye(sv.p0.size) if sv.T is None else sv.T
    su_p = np.sqrt(np.maximum(np.sum((T @ cov) * T, axis=1), 0.0))
    final = _Test(system, su_z_test(system, s2), s2, sv.opts)
    order = np.argsort(-final.rel)
    moving = [(sv.names[i], float(final.rel[i])) for i in order if final.rel[i] >= sv.opts.tol]
    gnorm = np.array([np.linalg.norm(g / system.d) for g in system.grads])
    gshare = gnorm / gnorm.sum() if gnorm.sum() > 0 else np.zeros_like(gnorm)
    ishare = h / sv.k
    fits = []
    for e, ds in enumerate(sv.datasets):
        ev = state.evals[e]
        den = float(np.sum(ev.weights * ev.y_obs**2))
        fits.append(
            DatasetFit(
                name=ds.name,
                n=int(state.n[e]),
                chi2=float(state.chi2[e]),
                factor=float(state.factors[e]),
                user_weight=float(ds.user_weight),
                absolute=bool(ds.absolute),
                wr=float(np.sqrt(state.chi2[e] / den)) if den > 0 else 0.0,
                gradient_share=float(gshare[e]),
                information_share=float(ishare[e]),
                variance_factor=float(se2[e]),
            )
        )
    n_obs = int(np.sum(state.n))
    dof = n_obs - sv.k
    return FitResult(
        z=state.z.copy(),
        su_z=su_z,
        p=state.p.copy(),
        su_p=su_p,
        names=list(sv.names),
        cov_z=cov,
        correlation=corr,
        high_correlations=high,
        datasets=fits,
        scheme=sv.scheme,
        score=state.score,
        n_obs=n_obs,
        n_par=sv.k,
        gof=float(np.sqrt(np.sum(state.chi2) / dof)) if dof > 0 else float("inf"),
        covariance_factor=s2,
        cycles=cycles,
        converged=converged,
        message=message,
        history=history,
        T=T,
        final_shift=final.shift,
        final_gradient=final.gradient,
        moving=moving,
        final_passed=final.passed,
    )

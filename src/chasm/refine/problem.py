"""What a least-squares problem is made of: data sets, restraints, solver settings.

:class:`Evaluation` is what a data set returns for a full parameter vector p
(y_o, y_c, weights, Jacobian dy_c/dp); :class:`Dataset` wraps a model's
``evaluate(p)``; :class:`Restraints` are extra observations value(p) = target ± σ;
:class:`SolverOptions` holds the settings of :func:`chasm.refine.solver.solve`.
The score schemes and the covariance convention these refer to are described
in the :mod:`chasm.refine.solver` docstring.

This module holds data only and imports nothing from the solver. The solver's
error classes (:class:`~chasm.refine.solver.RefinementError`,
:class:`~chasm.refine.solver.SingularMatrixError`) stay in
:mod:`chasm.refine.solver`: they are raised only there, and moving them would
not break any import cycle (there is none). Everything here is re-exported by
:mod:`chasm.refine.solver`, so ``from chasm.refine.solver import Dataset`` keeps
working.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from chasm.errors import InputError

__all__ = ["Evaluation", "WeightedEvaluation", "Dataset", "Restraints", "SolverOptions"]


@dataclass
class Evaluation:
    """What a data set returns for a parameter vector p.

    Attributes
    ----------
    y_obs, y_calc, weights : ndarray, shape (n_e,)
        Observations, calculated values, weights (1/σ² or other, ≥ 0).
    jacobian : ndarray, shape (n_e, n_full)
        dy_calc/dp with respect to the FULL parameter vector p.
    """

    y_obs: np.ndarray
    y_calc: np.ndarray
    weights: np.ndarray
    jacobian: np.ndarray


class WeightedEvaluation(Evaluation):
    """An :class:`Evaluation` whose Jacobian comes with its rows already weighted.

    The solver's own form of a data set's derivatives: one C-ordered array

        rows = [√w J[:, columns] | √w (y_obs − y_calc)],   shape (n_e, m + 1),

    from which the normal matrix and the right-hand side are one BLAS syrk
    over a run of its columns, with no weighted copy of J (a data set can
    fold √w into its rows while it makes them, e.g. in the engine's chain
    rule). ``columns`` says which parameter each of the first m columns is;
    the columns of J not listed are zero. A data set told which parameters
    the solver uses (:attr:`Dataset.use_columns`) puts those last, so that
    they and the residuals are one run. ``jacobian`` (dy_calc/dp, unweighted,
    full width) is formed from ``rows`` on first use, for whoever else reads
    it; every weight must therefore be > 0 (a data set with zero weights
    returns a plain :class:`Evaluation`).

    Attributes
    ----------
    rows : ndarray, shape (n_e, m + 1)
        √w times the derivatives of the parameters ``columns``, then the
        weighted residuals; unit column stride (rows may be padded).
    columns : ndarray of int, shape (m,)
        The parameter (index into p) of each column; distinct. Default: 0..m−1.
    n_params : int
        Length of p (default m).
    """

    def __init__(
        self,
        y_obs: np.ndarray,
        y_calc: np.ndarray,
        weights: np.ndarray,
        rows: np.ndarray,
        columns: np.ndarray | None = None,
        n_params: int | None = None,
    ) -> None:
        self.y_obs, self.y_calc, self.weights = y_obs, y_calc, weights
        self.rows = rows
        m = rows.shape[1] - 1
        self.columns = np.arange(m) if columns is None else np.asarray(columns, dtype=np.intp)
        self.n_params = m if n_params is None else int(n_params)
        self._jacobian: np.ndarray | None = None

    @property
    def jacobian(self) -> np.ndarray:
        """dy_calc/dp, shape (n_e, n_params): the rows divided by √w (made once, on request)."""
        if self._jacobian is None:
            sw = np.sqrt(np.asarray(self.weights, dtype=float))
            J = np.zeros((self.rows.shape[0], self.n_params))
            J[:, self.columns] = self.rows[:, :-1] / sw[:, None]
            self._jacobian = J
        return self._jacobian

    @jacobian.setter
    def jacobian(self, value: np.ndarray) -> None:  # (the dataclass field of the base)
        raise AttributeError("WeightedEvaluation.jacobian is derived from rows")


@dataclass
class Dataset:
    """One set of observations.

    Attributes
    ----------
    name : str
    evaluate : callable
        ``evaluate(p) -> Evaluation`` for a full parameter vector p.
    user_weight : float
        u_e, multiplies the set's term of the score.
    absolute : bool
        Enter the score as u_e χ²_e whatever the scheme (σ taken at face value).
    use_columns : callable, optional
        Told once, before the first evaluation, which entries of p the solver
        uses (ascending indices; the others are fixed): a set returning
        :class:`WeightedEvaluation` lays its rows out with those last.
    """

    name: str
    evaluate: Callable[[np.ndarray], Evaluation]
    user_weight: float = 1.0
    absolute: bool = False
    use_columns: Callable[[np.ndarray], None] | None = None


@dataclass
class Restraints:
    """Restraints as extra observations: value(p) = target ± sigma.

    Give either ``matrix`` (linear restraints, value = matrix @ p) or
    ``function`` (``function(p) -> (values, jacobian)``). Restraints are
    ``absolute``: they enter every score as u χ² with c = u.

    Raises
    ------
    InputError
        σ ≤ 0, neither or both of matrix and function given, bad shapes.
    """

    name: str
    target: np.ndarray
    sigma: np.ndarray
    matrix: np.ndarray | None = None
    function: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]] | None = None
    user_weight: float = 1.0
    absolute: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        self.target = np.atleast_1d(np.asarray(self.target, dtype=float))
        self.sigma = np.atleast_1d(np.asarray(self.sigma, dtype=float))
        if self.sigma.shape != self.target.shape or np.any(~(self.sigma > 0)):
            raise InputError(f"restraints {self.name!r}: need one σ > 0 per target")
        if (self.matrix is None) == (self.function is None):
            raise InputError(f"restraints {self.name!r}: give either matrix or function")
        if self.matrix is not None:
            self.matrix = np.atleast_2d(np.asarray(self.matrix, dtype=float))
            if self.matrix.shape[0] != self.target.size:
                raise InputError(f"restraints {self.name!r}: one matrix row per target")

    def evaluate(self, p: np.ndarray) -> Evaluation:
        if self.matrix is not None:
            values, jac = self.matrix @ p, self.matrix
        else:
            assert self.function is not None  # __post_init__: matrix or function
            values, jac = self.function(p)
        return Evaluation(self.target, np.asarray(values, float), 1.0 / self.sigma**2, jac)


@dataclass
class SolverOptions:
    """Settings of :func:`~chasm.refine.solver.solve`.

    Attributes
    ----------
    tol : float
        Converged when max_i |Δz_i| / σ(z_i) < tol after a step.
    max_cycles : int
        Maximum number of cycles (normal-matrix builds).
    max_shift_su : float or None
        Shift limiter: no |Δz_i| larger than this many σ(z_i).
    max_shift_abs : float, ndarray (n_z,) or None
        Shift limiter: absolute caps on |Δz_i| (units of z_i).
        When a limit is exceeded the whole step is scaled down (direction kept).
    lambda_start : float
        Initial Marquardt λ (0 = plain Gauss–Newton until C goes up).
    lambda_first : float
        λ used at the first increase from 0; below it λ drops back to 0.
    lambda_factor : float
        λ is multiplied by this when C goes up, divided when it goes down.
    lambda_max : float
        Give up (not converged) beyond this λ.
    singular_tol : float
        Smallest allowed eigenvalue (via the reciprocal condition number) of
        the unit-diagonal scaled normal matrix, relative to the largest.
    correlation_threshold : float
        |ρ| above which pairs are listed in
        :attr:`~chasm.refine.results.FitResult.high_correlations`.
    covariance : {"gof", "pooled", "none"}
        "gof": each data set's own goodness of fit in a sandwich covariance
        (SHELXL's rule for one set); "pooled": s² M⁻¹ with one s² for all
        sets; "none": M⁻¹ (:mod:`chasm.refine.solver` docstring).
    chi2_floor : float
        χ²_e is floored at chi2_floor·N_e in the NLOG and LOG scores (perfect fits).
    """

    tol: float = 0.01
    max_cycles: int = 50
    max_shift_su: float | None = None
    max_shift_abs: float | np.ndarray | None = None
    lambda_start: float = 0.0
    lambda_first: float = 1e-3
    lambda_factor: float = 10.0
    lambda_max: float = 1e8
    singular_tol: float = 1e-12
    correlation_threshold: float = 0.9
    covariance: str = "gof"
    chi2_floor: float = 1e-20

"""What the least-squares solver returns: per-cycle reports and the final fit.

:class:`CycleInfo` (one cycle, passed to the callback and kept in the history),
:class:`DatasetFit` (per-set summary at the solution) and :class:`FitResult`
(the outcome of :func:`chasm.refine.solver.solve`: coordinates, su, covariance,
correlations). The covariance scaling and the score schemes are described in
the :mod:`chasm.refine.solver` docstring.

This module holds data only and imports nothing from the solver (no import
cycle; the solver's error classes therefore stay in :mod:`chasm.refine.solver`).
Everything here is re-exported by :mod:`chasm.refine.solver`, so
``from chasm.refine.solver import FitResult`` keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["CycleInfo", "DatasetFit", "FitResult"]


@dataclass
class CycleInfo:
    """One cycle, as passed to the callback and kept in the history.

    ``score``, ``chi2``, ``wr`` and ``gof`` are after the cycle's step;
    ``wr[name]`` = sqrt(χ²/Σ w y_o²) (wR2 for F² data); ``gof`` =
    sqrt(Σ_e χ²_e / (N − n_z)); ``max_shift_su`` = max |Δz_i|/σ(z_i) of the step
    (taken or, if rejected, tried), at ``max_shift_name``; ``gn_shift`` and
    ``gradient`` are the convergence figures of the point the cycle started
    from: max |Δz_i|/σ_i of the undamped step and max |∂C/∂z_i|/(2 sqrt(M_ii) s),
    the shift in su that z_i would take alone (:class:`chasm.refine.solver._Test`);
    ``n`` and ``factors`` give each set's N_e and score factor c_e, as the
    solver used them (the progress monitor prints them, it does not recompute them).
    """

    stage: str
    cycle: int
    score_start: float
    score: float
    chi2: dict
    wr: dict
    gof: float
    max_shift_su: float
    max_shift_name: str
    damping: float
    trials: int
    accepted: bool
    limited: bool
    p: np.ndarray
    gn_shift: float = float("nan")
    gradient: float = float("nan")
    #: Per data set (restraints included): observations with nonzero weight N_e and the
    #: score factor c_e (user weight included) at the point after the step.
    n: dict = field(default_factory=dict)
    factors: dict = field(default_factory=dict)

    def line(self) -> str:
        """One printable line: stage, cycle, score, wR per set, GOF, max shift/σ."""
        wr = " ".join(f"wR({k})={v:.4f}" for k, v in self.wr.items())
        return (
            f"{self.stage} cycle {self.cycle:3d}  C={self.score:.6g}  {wr}  GOF={self.gof:.3f}"
            f"  max shift/su={self.max_shift_su:.3g} ({self.max_shift_name})"
            f"  GN={self.gn_shift:.2g} grad={self.gradient:.2g}"
            + ("" if self.accepted else "  [rejected]")
        )


@dataclass
class DatasetFit:
    """Per-set summary at the solution.

    Attributes
    ----------
    name : str
    n : int
        Observations.
    chi2 : float
        Σ w (y_o − y_c)².
    factor : float
        c_e of the scheme (user weight included).
    user_weight : float
    absolute : bool
    wr : float
        sqrt(χ²/Σ w y_o²).
    gradient_share : float
        ‖D⁻¹ c_e (J_e T)ᵀ W_e r_e‖ / Σ_e ‖…‖ at the final point, D = sqrt(diag M)
        (the pull of each set on the scaled coordinates; at the solution the
        pulls cancel, their sizes show the tug of war). Zeros if all vanish.
    information_share : float
        tr(M_e M⁻¹)/n_z with M_e = c_e (J_e T)ᵀW_e(J_e T): the fraction of the
        parameter information from this set (shares sum to 1).
    variance_factor : float
        s_e², the factor by which the set's σ² are scaled in the covariance
        (the solver's module docstring; the su's of the parameters are those
        of the sandwich M⁻¹ (Σ_e c_e² s_e² A_e) M⁻¹). 1 for absolute sets;
        s²/c_e with ``covariance="pooled"``, ``"none"`` (s² = 1) or a single
        set (SHELXL's rule).
    """

    name: str
    n: int
    chi2: float
    factor: float
    user_weight: float
    absolute: bool
    wr: float
    gradient_share: float
    information_share: float
    variance_factor: float = float("nan")


@dataclass
class FitResult:
    """Outcome of :func:`~chasm.refine.solver.solve`.

    Attributes
    ----------
    z, su_z : ndarray (n_z,)
        Reduced coordinates and their standard uncertainties.
    p, su_p : ndarray (n_full,)
        Full parameters p = p0 + T z and su from T cov_z Tᵀ.
    names : list of str
        Names of the z coordinates.
    cov_z : ndarray (n_z, n_z)
        Covariance (:mod:`chasm.refine.solver` docstring for its scaling).
    correlation : ndarray (n_z, n_z)
    high_correlations : list of (str, str, float)
        Pairs with |ρ| ≥ the threshold, largest first.
    datasets : list of DatasetFit
    scheme : str
    score : float
    n_obs, n_par : int
    gof : float
        sqrt(Σ_e χ²_e / (n_obs − n_par)), all sets, unscaled χ².
    covariance_factor : float
        s² used for cov_z.
    cycles : int
    converged : bool
    message : str
    history : list of CycleInfo
    T : ndarray (n_full, n_z)
    final_shift, final_gradient : float
        The convergence figures (in su) at the returned point, measured with
        the Gauss–Newton matrix: max |Δz_i|/σ_i of the undamped step and the
        largest gradient component (:class:`CycleInfo`). Both are below the
        tolerance at a minimum.
    moving : list of (str, float)
        Coordinates whose undamped step at the returned point is at least the
        tolerance (in su), largest first: what is still moving.
    final_passed : bool
        Both figures at the returned point are below the tolerance.
    """

    z: np.ndarray
    su_z: np.ndarray
    p: np.ndarray
    su_p: np.ndarray
    names: list[str]
    cov_z: np.ndarray
    correlation: np.ndarray
    high_correlations: list[tuple[str, str, float]]
    datasets: list[DatasetFit]
    scheme: str
    score: float
    n_obs: int
    n_par: int
    gof: float
    covariance_factor: float
    cycles: int
    converged: bool
    message: str
    history: list[CycleInfo]
    T: np.ndarray
    final_shift: float = float("nan")
    final_gradient: float = float("nan")
    moving: list[tuple[str, float]] | None = None
    final_passed: bool = False

    def cov_p(self) -> np.ndarray:
        """Covariance of the full parameter vector, T cov_z Tᵀ."""
        cov: np.ndarray = self.T @ self.cov_z @ self.T.T
        return cov

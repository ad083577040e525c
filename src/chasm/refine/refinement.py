"""A refinement: one structure and density model, several data sets, staged strategy.

:class:`Refinement` owns the named parameter vector (atomic parameters in the
engine's order, then the model parameters shared by several data sets, then each
data set's private parameters), the exact linear
constraints (site symmetry, riding hydrogens, user rows such as shared κ or
electroneutrality), optional restraints, and runs :class:`Stage` after
:class:`Stage`: each stage says which parameters are free (patterns), an
optional resolution window, and solver settings. Every stage starts from where
the previous one ended. The project-file runner (:mod:`chasm.project`) and the
Python API use this same object.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from chasm.errors import InputError
from chasm.refine.constraints import LinearConstraints
from chasm.refine.dataset import AttachesToStructure, DataSet, SharesParameters, adp_set_of
from chasm.refine.origin import origin_constraints
from chasm.refine.parameters import Parameters
from chasm.refine.problem import Dataset, Evaluation, Restraints, SolverOptions
from chasm.refine.results import CycleInfo, FitResult
from chasm.refine.riding import RidingHydrogen, riding_constraints
from chasm.refine.solver import solve
from chasm.refine.structure_model import StructureModel

if TYPE_CHECKING:
    from chasm.crystal.structure import Crystal

__all__ = ["Stage", "Restraint", "Refinement", "StageOutcome", "share_gof"]


@dataclass
class Stage:
    """One step of a refinement strategy.

    Attributes
    ----------
    name : str
        Shown on every cycle line.
    free : list of str
        Patterns of the parameters refined in this stage (all others fixed).
    fix : list of str
        Patterns fixed again after ``free`` (exceptions).
    smin, smax : float or None
        Resolution window (sinθ/λ, Å⁻¹) applied to every data set in this stage.
    max_cycles : int or None
        Overrides the solver's maximum number of cycles.
    tol : float or None
        Overrides the convergence threshold on max |shift|/su.
    data : list of str or None
        Names of the data sets fitted in this stage (default: all), e.g. the
        X-ray set only for the charge-density stage of a joint strategy.
    """

    name: str
    free: list[str]
    fix: list[str] = field(default_factory=list)
    smin: float | None = None
    smax: float | None = None
    max_cycles: int | None = None
    tol: float | None = None
    data: list[str] | None = None


@dataclass
class Restraint:
    """A restraint ``p[name] = target ± sigma`` (an extra observation).

    With ``terms`` it is the linear restraint ``Σ c_i p[n_i] = target ± sigma``
    (``terms = {n_i: c_i}``; ``name`` is then only a label), e.g. a similarity
    restraint ``p_A − p_B = 0``. ``kind`` groups restraints in the listing
    (``"target"``, ``"similarity"``, ``"local-symmetry"``).
    """

    name: str
    target: float
    sigma: float
    terms: dict[str, float] | None = None
    kind: str = "target"

    def coefficients(self) -> dict[str, float]:
        """``{parameter name: coefficient}`` of the restrained combination."""
        return dict(self.terms) if self.terms is not None else {self.name: 1.0}


@dataclass
class StageOutcome:
    """What one stage did."""

    stage: Stage
    result: FitResult
    n_free: int
    max_constraint_residual: float
    tol: float = 0.01
    origin: str = ""  # how a floating origin was fixed in this stage ("" if not needed)


class Refinement:
    """Refine one crystal and its density models against one or more data sets.

    The parameter vector is: atomic parameters (the first ``n_struct``), the
    shared parameters of the data sets (``shared_names``), then every data
    set's private parameters.

    Parameters
    ----------
    crystal : Crystal
        Updated in place as the refinement proceeds.
    models : list
        One density model per atom (updated in place).
    datasets : sequence of DataSet
        The declared interface :class:`chasm.refine.dataset.DataSet` (XrayData,
        UndData, FlippingData, PndData, MagneticAmplitudeData). Each
        contributes its private parameters (scale, extinction) through
        ``initial_values(crystal, models)``. A data set may also define
        ``shared_values(crystal, models) -> {name: start value}``
        (:class:`~chasm.refine.dataset.SharesParameters`): model
        parameters outside the atomic layout that several data sets use
        (``Ti.moment`` or ``Ho1.chi11`` of the polarised-neutron sets of
        :mod:`chasm.refine.pnd_data`). They are added once, in the order met,
        after the atomic parameters and before every private one; a name
        declared by several data sets keeps the first start value.
    riders : list of RidingHydrogen, optional
        Hydrogens riding on their parent at a fixed distance (already placed).
    scheme : {"unit", "nlog", "log"}
        Score function combining the data sets.
    options : SolverOptions, optional
        Default solver settings for every stage.
    structure : StructureModel, optional
        The parameterised structure (split atoms, ADP sets, scattering
        lengths). Default: built from ``crystal`` and ``models`` with the ADP
        sets the data sets ask for (``adp_set`` attribute,
        :class:`~chasm.refine.dataset.UsesAdpSet`: ``"X"`` for X-ray sets,
        ``"N"`` for neutron sets) and ``basis``. Data sets with an
        ``attach(structure)`` method (:class:`~chasm.refine.dataset.AttachesToStructure`)
        get it before their start values.
    basis : {"updown", "chargespin"}
        Names of the populations of split atoms (:mod:`chasm.refine.structure_model`).
    """

    def __init__(
        self,
        crystal: Crystal,
        models: list[Any],
        datasets: Sequence[DataSet],
        riders: Sequence[RidingHydrogen] = (),
        scheme: str = "unit",
        options: SolverOptions | None = None,
        structure: StructureModel | None = None,
        basis: str = "updown",
    ):
        if not datasets:
            raise InputError("a refinement needs at least one data set")
        names = [d.name for d in datasets]
        if len(set(names)) != len(names):
            raise InputError(f"data set names must be unique, got {names}")
        self.crystal, self.models = crystal, models
        self.datasets = list(datasets)
        self.scheme = scheme
        self.options = options or SolverOptions()
        if structure is None:
            sets = [adp_set_of(d) for d in datasets]
            structure = StructureModel(
                crystal, models, adp_sets=[s for s in dict.fromkeys(sets) if s != "X"], basis=basis
            )
        elif structure.crystal is not crystal:
            raise InputError("the structure model must be built on the refinement's crystal")
        self.structure = structure
        for d in self.datasets:
            if isinstance(d, AttachesToStructure):
                d.attach(structure)
        self.params: Parameters = structure.parameters()
        self.n_struct = len(self.params)
        self.params.fix("*.occ")
        self.shared_names: list[str] = []
        for d in self.datasets:
            shared = d.shared_values(crystal, models) if isinstance(d, SharesParameters) else {}
            for name, value in shared.items():
                if name in self.shared_names:
                    continue
                if name in self.params:
                    raise InputError(f"shared parameter {name!r} clashes with an atomic parameter")
                self.params.add(name, value)
                self.shared_names.append(name)
        for d in self.datasets:
            for name, value in d.initial_values(crystal, models).items():
                self.params.add(name, value)
        for d in self.datasets:
            d.bind(crystal, models, self.params.names, self.n_struct)
        self.riders = list(riders)
        self.site_constraints = structure.site_constraints(self.params)
        self.riding = riding_constraints(crystal, self.params, self.riders)
        self.user_constraints = LinearConstraints(self.params)
        self.restraints: list[Restraint] = []
        self.followers: list[str] = []  # always free; a constraint sets them (riding Uiso)
        self.outcomes: list[StageOutcome] = []
        #: Called after every evaluation of a data set by the solver, with the set's name,
        #: p, the Evaluation and the seconds it took (the progress monitor of a run).
        self.observers: list[Callable[[str, np.ndarray, Evaluation, float], None]] = []
        self._last_n_par = 0
        self._applied: np.ndarray | None = None

    # ------------------------------------------------------------------ setup
    def all_constraints(self) -> LinearConstraints:
        """All constraint rows: site symmetry, riding H, user rows."""
        out = LinearConstraints(self.params)
        out.extend(self.site_constraints)
        out.extend(self.riding)
        out.extend(self.user_constraints)
        return out

    def add_constraints(self, rows: LinearConstraints) -> None:
        """Append user constraint rows (built on ``self.params``)."""
        self.user_constraints.extend(rows)

    def add_restraint(self, name: str, target: float, sigma: float) -> None:
        """Restrain ``name`` to ``target`` with standard deviation ``sigma``."""
        self.params[name]  # noqa: B018  (raises UnknownNameError with suggestions)
        if not sigma > 0:
            raise InputError(f"restraint on {name}: sigma must be positive, got {sigma}")
        self.restraints.append(Restraint(name, float(target), float(sigma)))

    def add_linear_restraint(self, restraint: Restraint) -> None:
        """Add a restraint on a linear combination (:attr:`Restraint.terms`)."""
        for name in restraint.coefficients():
            self.params[name]  # noqa: B018  (raises UnknownNameError with suggestions)
        if not restraint.sigma > 0:
            raise InputError(
                f"restraint {restraint.name}: sigma must be positive, got {restraint.sigma}"
            )
        self.restraints.append(restraint)

    def _select_free(self, stage: Stage) -> None:
        p = self.params
        p.fix("*")
        if not stage.free:
            raise InputError(f"stage {stage.name!r} frees no parameter; give 'free' patterns")
        p.free(stage.free)
        if stage.fix:
            p.fix(stage.fix)
        p.fix("*.occ")
        for r in self.riders:  # positions follow their parent through the constraint
            p.free([f"{r.h}.x", f"{r.h}.y", f"{r.h}.z"])
        if self.followers:  # e.g. riding Uiso of H: set by a constraint on a free parent
            p.free(self.followers)

    def stage_datasets(self, stage: Stage) -> list:
        """The data sets a stage fits (``stage.data`` names, default all)."""
        if stage.data is None:
            return list(self.datasets)
        known = {d.name: d for d in self.datasets}
        unknown = [n for n in stage.data if n not in known]
        if unknown or not stage.data:
            raise InputError(
                f"stage {stage.name!r}: data {unknown or stage.data} not among the data sets "
                f"{list(known)}"
            )
        return [known[n] for n in stage.data]

    def set_values(self, p: np.ndarray) -> None:
        """Put a full parameter vector into params, crystal and models (skipped if unchanged)."""
        p = np.asarray(p, dtype=float)
        if self._applied is not None and np.array_equal(p, self._applied):
            return
        self.params.set_values(p)
        self.structure.apply(self.params)
        self._applied = p.copy()

    def _evaluator(self, dataset: DataSet) -> Callable[[np.ndarray], Evaluation]:
        def evaluate(p: np.ndarray) -> Evaluation:
            self.set_values(p)
            if not self.observers:
                return dataset.evaluate(p)
            start = time.perf_counter()
            ev = dataset.evaluate(p)
            seconds = time.perf_counter() - start
            for observe in self.observers:
                observe(dataset.name, p, ev, seconds)
            return ev

        return evaluate

    def solver_dataset(self, dataset: DataSet) -> Dataset:
        """The solver's view of one data set: evaluator, user weight, column layout hook."""
        return Dataset(
            dataset.name,
            self._evaluator(dataset),
            user_weight=getattr(dataset, "user_weight", 1.0),
            use_columns=getattr(dataset, "use_columns", None),
        )

    def _restraint_set(self) -> Restraints | None:
        if not self.restraints:
            return None
        names = self.params.names
        m = np.zeros((len(self.restraints), len(names)))
        for i, r in enumerate(self.restraints):
            for name, c in r.coefficients().items():
                m[i, names.index(name)] += c
        return Restraints(
            "restraints",
            target=np.array([r.target for r in self.restraints]),
            sigma=np.array([r.sigma for r in self.restraints]),
            matrix=m,
        )

    # ------------------------------------------------------------------ running
    def run_stage(
        self,
        stage: Stage,
        callback: Callable[[CycleInfo], None] | None = None,
        first_cycle: int = 1,
    ) -> StageOutcome:
        """Refine the parameters freed by ``stage``; model and params end at the solution.

        ``first_cycle`` > 1 continues a stage interrupted after cycle
        ``first_cycle − 1`` (its cycle budget is not renewed).
        """
        self._select_free(stage)
        return self.run_free(stage, callback, first_cycle=first_cycle)

    def run_free(
        self,
        stage: Stage,
        callback: Callable[[CycleInfo], None] | None = None,
        options: SolverOptions | None = None,
        first_cycle: int = 1,
    ) -> StageOutcome:
        """Refine the parameters free NOW (``stage`` gives only name, window and limits)."""
        for d in self.datasets:
            d.window = (stage.smin, stage.smax)
        cons = self.all_constraints()
        origin, origin_note = origin_constraints(self.crystal, self.params)
        if origin is not None:  # a polar space group with every atom free along its axis
            cons.extend(origin)
        red = cons.reduce(self.params)
        if red.n_reduced == 0:
            raise InputError(
                f"stage {stage.name!r}: no free parameter left after constraints; "
                "check its 'free' and 'fix' patterns"
            )
        A, b = cons.A, cons.b
        worst = [float(np.max(np.abs(A @ red.p0 - b))) if len(b) else 0.0]

        def on_cycle(info: CycleInfo) -> None:
            if len(b):
                worst.append(float(np.max(np.abs(A @ info.p - b))))
            if callback is not None:
                callback(info)

        sets: list = [self.solver_dataset(d) for d in self.stage_datasets(stage)]
        rs = self._restraint_set()
        if rs is not None:
            sets.append(rs)
        opts = options or self.options
        if stage.max_cycles is not None:
            opts = replace(opts, max_cycles=stage.max_cycles)
        if stage.tol is not None:
            opts = replace(opts, tol=stage.tol)
        try:
            result = solve(
                sets,
                red.p0,
                red.T,
                names=red.reduced_names,
                scheme=self.scheme,
                options=opts,
                callback=on_cycle,
                stage=stage.name,
                first_cycle=max(1, int(first_cycle)),
            )
        finally:
            for d in self.datasets:
                d.window = (None, None)
        self._applied = None
        self.set_values(result.p)
        su = self.params.su
        moved = np.abs(red.T).sum(axis=1) > 0
        su[moved] = result.su_p[moved]
        self.params.set_su(su)
        if len(b):
            worst.append(float(np.max(np.abs(A @ result.p - b))))
        self._last_n_par = red.n_reduced
        out = StageOutcome(stage, result, red.n_reduced, max(worst), opts.tol, origin_note)
        self.outcomes.append(out)
        return out

    def run(
        self, stages: Sequence[Stage], callback: Callable[[CycleInfo], None] | None = None
    ) -> list[StageOutcome]:
        """Run stages in order (each starts where the previous ended)."""
        return [self.run_stage(s, callback) for s in stages]

    # ------------------------------------------------------------------ reporting
    def agreement(self, n_par: int | None = None) -> dict[str, dict]:
        """Per-data-set agreement factors at the current parameters."""
        p = self.params.values
        n = self._last_n_par if n_par is None else n_par
        return {d.name: d.agreement(p, n) for d in self.datasets}


def share_gof(agreements: dict, n_par: int) -> None:
    """Per-set GOF with the parameters shared among several data sets (in place).

    With one data set GOF = sqrt(χ²/(N − n_par)) (left as it is). With several,
    each set is charged the fraction N_e/N of the parameters: GOF_e = sqrt(χ²_e /
    (N_e − n_par N_e/N)), so that a set of few observations (a flipping-ratio
    block) still has a GOF, and Σ_e χ²_e / (N − n_par) is the N_e-weighted mean
    of GOF_e². None when N ≤ n_par.

    Parameters
    ----------
    agreements : dict
        Data-set name -> dict with ``"n_obs"`` and ``"chi2"`` (as from
        :meth:`Refinement.agreement`); ``"gof"`` is replaced.
    n_par : int
        Parameters refined together over these data sets.
    """
    if len(agreements) < 2:
        return
    total = sum(d["n_obs"] for d in agreements.values())
    for d in agreements.values():
        dof = d["n_obs"] * (1.0 - n_par / total) if total else 0.0
        ok = d["chi2"] is not None and dof > 0
        d["gof"] = float(np.sqrt(d["chi2"] / dof)) if ok else None

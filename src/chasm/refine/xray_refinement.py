"""Least-squares refinement of one structure against one X-ray data set.

A convenience front end to :class:`chasm.refine.refinement.Refinement` with a
single :class:`~chasm.refine.xray_data.XrayData` set and no stages: the caller
frees and fixes parameters on :attr:`params` and calls :meth:`run`. Project
files and several data sets use the same :class:`Refinement` underneath.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from chasm.data.agreement import Agreement
from chasm.data.reflections import Reflections
from chasm.errors import InputError
from chasm.refine.problem import SolverOptions
from chasm.refine.refinement import Refinement, Stage
from chasm.refine.results import CycleInfo, FitResult
from chasm.refine.xray_data import XrayData, XrayOptions
from chasm.scattering.xray import agreement_factors

if TYPE_CHECKING:
    from chasm.crystal.structure import Crystal

SCALE = "xray.scale"


class XrayRefinement(Refinement):
    """Refine a crystal and its density models against X-ray F².

    Parameters
    ----------
    crystal : Crystal
        Positions, ADPs, occupancies (updated in place by :meth:`run`).
    models : list
        One density model per atom (updated in place).
    reflections : Reflections
        Observed F² and σ(F²) (merged, no absences).
    name : str
        Dataset name (prefix of its own parameters).
    kind : {"F2", "F"}
        Refine on F² (default) or |F|.

    Attributes
    ----------
    params : Parameters
        Every atomic parameter and ``NAME.scale``; all atomic occupancies
        start fixed, everything else free. Use ``params.fix`` / ``free``.
    constraints : LinearConstraints
        Site-symmetry constraints; add user constraints (``extend``) before
        :meth:`run`.
    """

    def __init__(
        self,
        crystal: Crystal,
        models: list[Any],
        reflections: Reflections,
        name: str = "xray",
        kind: str = "F2",
    ) -> None:
        if reflections.f2 is None or reflections.sigma is None:
            raise InputError("X-ray refinement needs F² and σ(F²) for every reflection")
        if len(reflections) == 0:
            raise InputError(f"dataset {name!r} has no reflections left")
        self.reflections = reflections
        self.name = name
        self.kind = kind
        data = XrayData(name, reflections, crystal, XrayOptions(observable=kind))
        super().__init__(crystal, models, [data])
        self.params.free("*")
        self.params.fix("*.occ")
        self.constraints = self.site_constraints

    def run(  # type: ignore[override]  # an older API than Refinement.run(stages)
        self,
        scheme: str = "unit",
        options: SolverOptions | None = None,
        callback: Callable[[CycleInfo], None] | None = None,
        stage: str = "",
    ) -> FitResult:
        """Refine the free parameters; the crystal and models end at the solution."""
        self.scheme = scheme
        return self.run_free(Stage(stage, []), callback, options).result

    def agreement(self, n_par: int | None = None) -> Agreement:
        """R1(all), wR2, GOF at the current parameters (see chasm.scattering.xray)."""
        d = cast(XrayData, self.datasets[0])
        fo2, s2, _, fc2, _, _ = d.calculate(self.params.values, jacobian=False)
        k = self.params[f"{self.name}.scale"].value
        return agreement_factors(fo2, s2, k * fc2, n_par=n_par or 0)

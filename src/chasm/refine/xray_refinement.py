"""Least-squares refinement of one structure against one X-ray data set.

The glue of the refinement core: named parameters of the crystal and its
density models plus the dataset's scale, site-symmetry constraints (and any
user constraints), the structure-factor engine, the X-ray observables and
the constrained Gauss-Newton solver. Project files and several datasets
build on the same pieces.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from chasm.errors import InputError
from chasm.io.shelx_hkl import Reflections
from chasm.refine.constraints import LinearConstraints
from chasm.refine.parameters import Parameters, apply_values, parameters_from_model
from chasm.refine.solver import CycleInfo, Dataset, Evaluation, FitResult, SolverOptions, solve
from chasm.refine.symmetry_constraints import site_symmetry_constraints
from chasm.scattering.engine import StructureFactorEngine
from chasm.scattering.xray import agreement_factors, weights_sigma, xray_observables

SCALE = "xray.scale"


class XrayRefinement:
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
        Every atomic parameter and ``xray.scale``; all atomic occupancies
        start fixed, everything else free. Use ``params.fix`` / ``free``.
    constraints : LinearConstraints
        Site-symmetry constraints; add user constraints before :meth:`run`.
    """

    def __init__(
        self, crystal, models, reflections: Reflections, name: str = "xray", kind: str = "F2"
    ):
        if reflections.f2 is None or reflections.sigma is None:
            raise InputError("X-ray refinement needs F² and σ(F²) for every reflection")
        if len(reflections) == 0:
            raise InputError(f"dataset {name!r} has no reflections left")
        self.crystal, self.models = crystal, models
        self.reflections = reflections
        self.name = name
        self.kind = kind
        self.engine = StructureFactorEngine(crystal, models, reflections.hkl)
        self.params: Parameters = parameters_from_model(crystal, models)
        self.params.fix("*.occ")
        fc2 = np.abs(self.engine.compute().F) ** 2
        w = weights_sigma(reflections.sigma)
        scale = float(np.sum(w * reflections.f2 * fc2) / np.sum(w * fc2**2))
        self.params.add(f"{name}.scale", scale)
        self.constraints = site_symmetry_constraints(crystal, models, self.params)
        self._n_struct = len(self.engine.parameter_names)

    def _evaluate(self, p: np.ndarray) -> Evaluation:
        self.params.set_values(p)
        apply_values(self.params, self.crystal, self.models)
        res = self.engine.compute(jacobian=True)
        obs = xray_observables(res.F, res.jacobian, scale=p[self._n_struct], kind=self.kind)
        y_obs, sigma = self.reflections.f2, self.reflections.sigma
        if self.kind == "F":
            from chasm.scattering.xray import f_from_f2

            y_obs, sigma = f_from_f2(y_obs, sigma)
        return Evaluation(y_obs, obs.y_calc, weights_sigma(sigma), obs.jacobian)

    def run(
        self,
        scheme: str = "unit",
        options: SolverOptions | None = None,
        callback: Callable[[CycleInfo], None] | None = None,
        stage: str = "",
    ) -> FitResult:
        """Refine the free parameters; the crystal and models end at the solution."""
        cons = LinearConstraints(self.params)
        cons.extend(self.constraints)
        red = cons.reduce(self.params)
        dataset = Dataset(self.name, self._evaluate)
        result = solve(
            [dataset],
            red.p0,
            red.T,
            names=red.reduced_names,
            scheme=scheme,
            options=options,
            callback=callback,
            stage=stage,
        )
        self.params.set_values(result.p)
        self.params.set_su(result.su_p)
        apply_values(self.params, self.crystal, self.models)
        return result

    def agreement(self, n_par: int | None = None):
        """R1(all), wR2, GOF at the current parameters (see chasm.scattering.xray)."""
        k = self.params[f"{self.name}.scale"].value
        fc2 = k * np.abs(self.engine.compute().F) ** 2
        r = self.reflections
        return agreement_factors(r.f2, r.sigma, fc2, n_par=n_par or 0)

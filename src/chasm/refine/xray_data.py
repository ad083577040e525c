"""One X-ray data set inside a refinement: observations, options, private parameters.

An :class:`XrayData` holds the reflections that survive its cut-offs, the
options of its observable (F² or |F|, weights, extinction) and the names of
its private parameters (``NAME.scale`` and, with extinction, ``NAME.extinction``).
Bound to a parameter vector by :meth:`XrayData.bind`, it evaluates
y_obs, y_calc, weights and dy_calc/dp over the FULL parameter vector, as the
solver expects (:class:`chasm.refine.problem.Evaluation`).

Extinction parameters: ``"shelx"`` refines SHELXL's EXTI x; ``"bc-gauss"`` and
``"bc-lorentz"`` refine the Becker–Coppens type I mosaic parameter g (rad⁻¹)
with the mean path length T̄ (µm) given as an option
(:mod:`chasm.scattering.extinction`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from numpy.typing import ArrayLike

from chasm.data.agreement import Agreement
from chasm.data.reflections import Reflections
from chasm.data.reflections import stol as sinthl
from chasm.errors import InputError
from chasm.refine.problem import Evaluation, WeightedEvaluation
from chasm.refine.structure_model import ADP_SETS_DEFAULT
from chasm.scattering.engine import ColumnMap, StructureFactorEngine
from chasm.scattering.extinction import becker_coppens_type1, bragg_trig, shelx_exti
from chasm.scattering.xray import (
    ExtinctionFunction,
    RowFactors,
    agreement_factors,
    chain_factors,
    f_from_f2,
    mask_i_over_sigma,
    mask_omitted,
    mask_resolution,
    weights_shelx,
    weights_sigma,
    xray_observables,
)

if TYPE_CHECKING:
    from chasm.crystal.structure import Crystal
    from chasm.density.model import AtomModel, EngineModel
    from chasm.refine.structure_model import EngineView, StructureModel

__all__ = ["XrayOptions", "XrayData", "UndData", "EXTINCTION_MODELS", "WEIGHT_SCHEMES"]

EXTINCTION_MODELS = ("none", "shelx", "bc-gauss", "bc-lorentz")
WEIGHT_SCHEMES = ("sigma", "shelx")


@dataclass
class XrayOptions:
    """Options of one X-ray data set.

    Attributes
    ----------
    observable : {"F2", "F"}
        Refine on F² (default) or |F|.
    weights : {"sigma", "shelx"}
        w = 1/σ² or SHELXL's w = 1/(σ²(F²) + (aP)² + bP), P = (max(F²,0) + 2F_c²)/3
        (for a refinement on |F| the F² weight is propagated, w_F = 4 F² w).
    shelx_a, shelx_b : float
        a and b of the SHELX scheme.
    extinction : {"none", "shelx", "bc-gauss", "bc-lorentz"}
        Isotropic extinction model.
    extinction_start : float
        Starting value of the extinction parameter (EXTI x, or g in rad⁻¹).
    path_length : float
        Mean path length T̄ through the crystal (µm), Becker–Coppens only.
    wavelength : float or None
        λ in Å (needed for extinction; default: the crystal's).
    smin, smax : float or None
        Resolution window in sinθ/λ (Å⁻¹).
    min_i_over_sigma : float or None
        Drop reflections with F²/σ(F²) below this.
    omit : list of (h, k, l)
        Reflections left out (Friedel mates too, unless ``omit_friedel`` is False).
    omit_friedel : bool
        False: an omitted h leaves −h in (SHELXL's OMIT when Friedel mates are
        kept apart).
    """

    observable: str = "F2"
    weights: str = "sigma"
    shelx_a: float = 0.0
    shelx_b: float = 0.0
    extinction: str = "none"
    extinction_start: float = 0.0
    path_length: float = 100.0
    wavelength: float | None = None
    smin: float | None = None
    smax: float | None = None
    min_i_over_sigma: float | None = None
    omit: list[tuple[int, int, int]] = field(default_factory=list)
    omit_friedel: bool = True

    def __post_init__(self) -> None:
        if self.observable not in ("F2", "F"):
            raise InputError(f"observable must be 'F2' or 'F', got {self.observable!r}")
        if self.weights not in WEIGHT_SCHEMES:
            raise InputError(f"weights must be one of {WEIGHT_SCHEMES}, got {self.weights!r}")
        if self.extinction not in EXTINCTION_MODELS:
            raise InputError(
                f"extinction must be one of {EXTINCTION_MODELS}, got {self.extinction!r}"
            )


class XrayData:
    """An X-ray data set in a refinement.

    Parameters
    ----------
    name : str
        Data-set name, prefix of its parameters (``NAME.scale``).
    reflections : Reflections
        Observed F² and σ(F²), merged, without systematic absences.
    crystal : Crystal
        Used for sinθ/λ and the default wavelength.
    options : XrayOptions, optional
    adp_set : str, optional
        The ADP set the data set sees (default ``"X"``), see
        :class:`~chasm.refine.structure_model.StructureModel`.

    Raises
    ------
    InputError
        Missing F² or σ, or no reflection left after the cut-offs.
    """

    kind = "xray"
    view_kind = "xray"
    user_weight = 1.0

    def __init__(
        self,
        name: str,
        reflections: Reflections,
        crystal: Crystal,
        options: XrayOptions | None = None,
        adp_set: str | None = None,
    ) -> None:
        self.name = name
        self.adp_set = adp_set or ADP_SETS_DEFAULT[self.kind]
        self._view: EngineView | None = None
        self.options = options or XrayOptions()
        if reflections.f2 is None or reflections.sigma is None:
            raise InputError(f"dataset {name!r}: X-ray data need F² and σ(F²) for every reflection")
        self.n_read = len(reflections)
        o = self.options
        stol = sinthl(reflections.hkl, crystal)
        keep = mask_resolution(stol, o.smin, o.smax)
        if o.min_i_over_sigma is not None:
            keep &= mask_i_over_sigma(reflections.f2, reflections.sigma, o.min_i_over_sigma)
        if o.omit:
            keep &= mask_omitted(reflections.hkl, np.asarray(o.omit, int), friedel=o.omit_friedel)
        if not np.any(keep):
            raise InputError(
                f"dataset {name!r}: no reflection left after the cut-offs "
                f"(read {len(reflections)}; smin={o.smin}, smax={o.smax}, "
                f"I/σ >= {o.min_i_over_sigma}, {len(o.omit)} omitted); relax them"
            )
        self.reflections = reflections.subset(keep)
        self.stol = stol[keep]
        self.wavelength = o.wavelength if o.wavelength is not None else crystal.wavelength
        if o.extinction != "none" and not self.wavelength:
            raise InputError(
                f"dataset {name!r}: extinction needs the wavelength; give 'wavelength' "
                "in the dataset or _diffrn_radiation_wavelength in the CIF"
            )
        self.window: tuple[float | None, float | None] = (None, None)
        self._engines: dict[
            tuple[float | None, float | None], tuple[StructureFactorEngine, np.ndarray]
        ] = {}
        self._bound = False
        self._buffers: list[np.ndarray] = []
        self._weighted_buffers: list[np.ndarray] = []
        self._wanted: np.ndarray | None = None  # the parameters the solver uses
        self._layout_cache: tuple[np.ndarray, np.ndarray, ColumnMap] | None = None

    # ------------------------------------------------------------------ parameters
    @property
    def scale_name(self) -> str:
        return f"{self.name}.scale"

    @property
    def extinction_name(self) -> str | None:
        return None if self.options.extinction == "none" else f"{self.name}.extinction"

    def parameter_names(self) -> list[str]:
        """Private parameters of the data set, in order."""
        ext = self.extinction_name
        return [self.scale_name] + ([ext] if ext else [])

    def attach(self, structure: StructureModel) -> None:
        """See the structure through its view of this data set's kind and ADP set."""
        self._view = structure.view(self.view_kind, self.adp_set)
        self._buffers = []
        self._weighted_buffers = []
        self._layout_cache = None

    def _new_engine(
        self, crystal: Crystal, models: Sequence[AtomModel], hkl: ArrayLike
    ) -> StructureFactorEngine:
        if self._view is not None:
            return self._view.engine(hkl)
        # without a structure's view there are no split atoms (StructureModel splits them)
        return StructureFactorEngine(crystal, cast("Sequence[EngineModel]", models), hkl)

    def _observed(self) -> tuple[np.ndarray, np.ndarray]:
        """F² and σ(F²) of the kept reflections (both checked present on construction)."""
        f2, sigma = self.reflections.f2, self.reflections.sigma
        assert f2 is not None and sigma is not None
        return f2, sigma

    def _compute(
        self, eng: StructureFactorEngine, jacobian: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """F and dF/dp over the structural parameters (engine columns when not attached)."""
        if self._view is not None:
            return self._view.compute(eng, jacobian)
        res = eng.compute(jacobian=jacobian)
        return res.F, res.jacobian

    def _compute_observable(
        self,
        eng: StructureFactorEngine,
        out: np.ndarray,
        factors: RowFactors,
        column_map: ColumnMap | None = None,
    ) -> np.ndarray:
        """F, with dy_calc/dp over the structural parameters written into ``out``.

        The engine's real Jacobian (no complex array; no imaginary part at all
        for a centrosymmetric structure without dispersion), mapped to the
        structural parameters by the view and turned into the observable's
        derivatives (``factors``, :func:`~chasm.scattering.xray.chain_factors`)
        block by block, while each block is in cache; ``column_map`` (over
        the engine's own columns) places them in ``out`` (default: the
        structural parameters' order).
        """
        if self._view is not None:
            return self._view.compute_real(eng, out, factors, column_map).F
        res = eng.compute(
            jacobian=True, real=True, out=out, row_factors=factors, column_map=column_map
        )
        return res.F

    def initial_values(self, crystal: Crystal, models: Sequence[AtomModel]) -> dict[str, float]:
        """Least-squares scale for the current model (and the extinction start)."""
        eng = self._new_engine(crystal, models, self.reflections.hkl)
        fc2 = np.abs(self._compute(eng, False)[0]) ** 2
        f2, sigma = self._observed()
        w = weights_sigma(sigma)
        k = float(np.sum(w * f2 * fc2) / np.sum(w * fc2 * fc2))
        out = {self.scale_name: k}
        if self.extinction_name:
            out[self.extinction_name] = self.options.extinction_start
        return out

    def bind(
        self, crystal: Crystal, models: Sequence[AtomModel], names: list[str], n_struct: int
    ) -> None:
        """Attach to a refinement: full parameter names; the first n_struct are the engine's."""
        self.crystal, self.models = crystal, models
        self._names = list(names)
        self._n_struct = n_struct
        self._i_scale = self._names.index(self.scale_name)
        ext = self.extinction_name
        self._i_ext = self._names.index(ext) if ext else None
        self._engines = {}
        self._buffers = []
        self._weighted_buffers = []
        self._layout_cache = None
        self._bound = True

    # ------------------------------------------------------------------ evaluation
    #: Observations left out of every evaluation (bool over the kept reflections), the free
    #: set of a cross-validation fold (:mod:`chasm.cv`); None leaves none out.
    held_out: np.ndarray | None = None

    #: Weight factor of every kept reflection in fits (a bootstrap replicate's draw counts,
    #: :mod:`chasm.cv.bootstrap`); None: 1 for all. Agreement figures ignore it.
    multiplicity: np.ndarray | None = None

    def hold_out(self, mask: np.ndarray | None) -> None:
        """Leave the reflections ``mask`` out of fits and agreement figures (None: none)."""
        self.held_out = None if mask is None else np.array(mask, dtype=bool)
        self._engines = {}

    def active(self) -> np.ndarray:
        """Mask of the reflections inside the current stage window and not held out."""
        mask = mask_resolution(self.stol, *self.window)
        return mask if self.held_out is None else mask & ~self.held_out

    def _engine(self) -> tuple[StructureFactorEngine, np.ndarray]:
        key = self.window
        if key not in self._engines:
            mask = self.active()
            if not np.any(mask):
                raise InputError(
                    f"dataset {self.name!r}: no reflection in the stage window "
                    f"sinθ/λ {self.window}; widen it"
                )
            hkl = self.reflections.hkl[mask]
            self._engines[key] = (self._new_engine(self.crystal, self.models, hkl), mask)
        return self._engines[key]

    def _jacobian_buffer(self, shape: tuple[int, int], weighted: bool = False) -> np.ndarray:
        """A zeroed full-width Jacobian array, or an earlier one nobody holds any more.

        Every evaluation writes the same columns of it (the structural columns
        this data set sees, its scale and extinction), so an array from an
        earlier evaluation of the same window only needs its columns
        overwritten: no fresh 100 MB array to be zeroed and faulted in by the
        kernel in every cycle (slow and erratic on a shared VM). An array is
        reused only when no reference to it (or to a view of it) is left
        outside this pool; at most _POOL arrays are kept. The weighted rows
        (``weighted``, every column written by every evaluation, in the
        current layout) have their own pool: a plain Jacobian never gets an
        array whose other columns hold weighted values.
        """
        attr = "_weighted_buffers" if weighted else "_buffers"
        pool = getattr(self, attr)
        for i in range(len(pool)):  # (no loop variable bound to the arrays: it would count)
            if pool[i].shape == shape and _references(pool, i) <= _UNREFERENCED:
                return cast(np.ndarray, pool[i])
        buf = np.zeros(shape)
        setattr(self, attr, [b for b in pool if b.shape == shape][-(_POOL - 1) :] + [buf])
        return buf

    def _extinction(
        self, p: np.ndarray, mask: np.ndarray, rows: slice = slice(None)
    ) -> ExtinctionFunction | None:
        """The extinction function of the reflections ``mask`` (``rows`` of them) at p."""
        o = self.options
        if o.extinction == "none":
            return None
        assert self.wavelength is not None and self._i_ext is not None  # checked, bound
        s2t, c2t = bragg_trig(self.stol[mask][rows], self.wavelength)
        value = float(p[self._i_ext])
        if o.extinction == "shelx":
            return partial(shelx_exti, x=value, wavelength=self.wavelength, sin2theta=s2t)
        return partial(
            becker_coppens_type1,
            g=value,
            wavelength=self.wavelength,
            sin2theta=s2t,
            cos2theta=c2t,
            volume=self.crystal.volume,
            path_length=o.path_length,
            distribution=o.extinction[3:],
        )

    def calculate(
        self, p: np.ndarray, jacobian: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
        """(y_obs, sigma, y_calc, fc2 on the data scale, J full or None, mask)."""
        if not self._bound:
            raise RuntimeError("XrayData.bind must be called first")
        eng, mask = self._engine()
        scale, kind = float(p[self._i_scale]), self.options.observable
        J: np.ndarray | None = None
        if jacobian:
            # the structural columns straight into the full-width Jacobian, the chain rule
            # to the observable applied by the engine block by block
            def factors(rows: slice, f_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                return chain_factors(f_rows, scale, self._extinction(p, mask, rows), kind)

            J = self._jacobian_buffer((int(mask.sum()), len(p)))
            f_calc = self._compute_observable(eng, J[:, : self._n_struct], factors)
        else:
            f_calc = self._compute(eng, False)[0]
        ext = self._extinction(p, mask)
        obs = xray_observables(
            f_calc, None, scale=scale, extinction=ext, kind=kind, jacobian=jacobian
        )
        if J is not None and obs.jacobian is not None:  # the scale (and extinction) columns
            J[:, self._i_scale] = obs.jacobian[:, 0]
            if self._i_ext is not None:
                J[:, self._i_ext] = obs.jacobian[:, 1]
        f2, sigma = self._observed()
        fo2 = f2[mask]
        s2 = sigma[mask]
        return fo2, s2, obs.y_calc, obs.fc2, J, mask

    def _weights_f2(
        self, fo2: np.ndarray, s2: np.ndarray, fc2: np.ndarray, scale: float
    ) -> np.ndarray:
        o = self.options
        if o.weights == "shelx":  # SHELXL's scheme on its absolute scale (see weights_shelx)
            return weights_shelx(fo2, s2, fc2, a=o.shelx_a, b=o.shelx_b, scale=abs(scale))
        return weights_sigma(s2)

    def _weights(
        self, fo2: np.ndarray, s2: np.ndarray, y_calc: np.ndarray, scale: float, m: Any
    ) -> np.ndarray:
        """Weights of the observable (F² or |F|) times the multiplicity m (1.0: none)."""
        fc2 = y_calc if self.options.observable == "F2" else y_calc**2
        w = self._weights_f2(fo2, s2, fc2, scale)
        if self.options.observable == "F":
            sf = f_from_f2(fo2, s2)[1]
            wf = 4.0 * np.maximum(fo2, 0.0) * w if self.options.weights == "shelx" else sf**-2.0
            out: np.ndarray = m * wf
            return out
        out = m * w
        return out

    def evaluate(self, p: np.ndarray) -> Evaluation:
        """Observations, calculated values, weights and full Jacobian at p.

        The Jacobian comes with its rows weighted by √w, made so by the
        engine's chain rule block by block (:meth:`_evaluate_weighted`), with
        the weighted residuals as one more column: the solver's normal matrix
        is then one syrk over that array. With a zero weight (a bootstrap
        replicate that leaves a reflection out) the plain Jacobian is returned.
        """
        m = 1.0 if self.multiplicity is None else self.multiplicity[self._engine()[1]]
        if np.all(np.asarray(m) > 0.0):
            return self._evaluate_weighted(p, m)
        fo2, s2, y_calc, _, J, mask = self.calculate(p, jacobian=True)
        assert J is not None  # (asked for)
        w = self._weights(fo2, s2, y_calc, p[self._i_scale], m)
        y_obs = fo2 if self.options.observable == "F2" else f_from_f2(fo2, s2)[0]
        return Evaluation(y_obs, y_calc, w, J)

    def _evaluate_weighted(self, p: np.ndarray, mult: Any) -> WeightedEvaluation:
        """:meth:`evaluate` with √w folded into the rows of J where the engine makes them."""
        eng, mask = self._engine()
        scale, kind = float(p[self._i_scale]), self.options.observable
        f2, sigma = self._observed()
        fo2, s2 = f2[mask], sigma[mask]
        n = fo2.size
        mb = np.broadcast_to(np.asarray(mult, dtype=float), (n,))
        sw = np.full(n, np.nan)  # √w of every row, set block by block (NaN: not reached)
        fixed = (
            None
            if self.options.weights == "shelx"
            else np.sqrt(self._weights(fo2, s2, fo2, scale, mb))
        )

        def factors(rows: slice, f_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            ext = self._extinction(p, mask, rows)
            ga, gb = chain_factors(f_rows, scale, ext, kind)
            if fixed is None:  # SHELXL weights: from this block's F_c²
                y = xray_observables(f_rows, None, scale=scale, extinction=ext, kind=kind).y_calc
                sw[rows] = np.sqrt(self._weights(fo2[rows], s2[rows], y, scale, mb[rows]))
            else:
                sw[rows] = fixed[rows]
            return ga * sw[rows], gb * sw[rows]

        order, where, cmap = self._layout(len(p))
        m = order.size
        A = self._jacobian_buffer((n, m + 1), weighted=True)
        f_calc = self._compute_observable(eng, A[:, :m], factors, cmap)
        ext = self._extinction(p, mask)
        obs = xray_observables(f_calc, None, scale=scale, extinction=ext, kind=kind)
        w = self._weights(fo2, s2, obs.y_calc, scale, mult)
        y_obs = fo2 if kind == "F2" else f_from_f2(fo2, s2)[0]
        assert obs.jacobian is not None  # (the default jacobian=True)
        np.multiply(obs.jacobian[:, 0], sw, out=A[:, where[self._i_scale]])
        if self._i_ext is not None:
            np.multiply(obs.jacobian[:, 1], sw, out=A[:, where[self._i_ext]])
        A[:, m] = sw * (y_obs - obs.y_calc)
        return WeightedEvaluation(y_obs, obs.y_calc, w, A, order, len(p))

    def use_columns(self, used: np.ndarray) -> None:
        """The parameters the solver uses (:attr:`~chasm.refine.problem.Dataset.use_columns`).

        The weighted rows put them last (before the residuals), so that the
        normal matrix is one syrk over a run of exactly those columns.
        """
        self._wanted = np.asarray(used, dtype=np.intp)
        self._layout_cache = None

    def _layout(self, n_params: int) -> tuple[np.ndarray, np.ndarray, ColumnMap]:
        """(parameter of each column of the weighted rows, column of each parameter, engine map).

        The columns are those this set can make non-zero (the structural
        columns its engine writes, its scale and extinction): first those the
        solver does not use, then those it uses, each in ascending order.
        """
        if self._layout_cache is None or self._layout_cache[1].size != n_params:
            struct = (
                np.arange(self._n_struct) if self._view is None else self._view.columns_written()
            )
            own = [self._i_scale] + ([] if self._i_ext is None else [self._i_ext])
            seen = np.union1d(struct, np.array(own, dtype=np.intp))
            if self._wanted is not None:
                last = np.isin(seen, self._wanted)
                seen = np.concatenate([seen[~last], seen[last]])
            where = np.full(n_params, -1, dtype=np.intp)
            where[seen] = np.arange(seen.size)
            names = [self._names[i] for i in seen]
            if self._view is not None:
                cmap = self._view.permuted_map(where, names)
            else:
                src = np.arange(self._n_struct)
                cmap = ColumnMap(src, where[src], np.ones(src.size), names)
            self._layout_cache = (seen, where, cmap)
        return self._layout_cache

    def agreement(self, p: np.ndarray, n_par: int = 0) -> Agreement:
        """R1 (F, all), R1(>2σ), wR2 (F²), Rw(F), χ², GOF at p over the whole data set."""
        saved = self.window
        self.window = (None, None)
        try:
            fo2, s2, y_calc, _, _, _ = self.calculate(p, jacobian=False)
        finally:
            self.window = saved
        fc2 = y_calc if self.options.observable == "F2" else y_calc**2
        w = self._weights_f2(fo2, s2, fc2, p[self._i_scale])
        a = agreement_factors(fo2, s2, fc2, weights=w, n_par=n_par)
        a["kind"] = self.kind  # "xray" or "und" (the key keeps its place)
        a.update(observable=self.options.observable, weights=self.options.weights)
        a["n_read"] = self.n_read
        return a

    def fc_complex(self) -> np.ndarray:
        """Absolute-scale complex F of every reflection of the set at the current model."""
        saved, self.window = self.window, (None, None)
        try:
            return self._compute(self._engine()[0], False)[0]
        finally:
            self.window = saved


def _references(pool: list[Any], i: int) -> int:
    """Reference count of pool[i] as seen from here (compared with _UNREFERENCED)."""
    return sys.getrefcount(pool[i])


#: what _references gives for an array held by its pool alone
_UNREFERENCED = _references([np.empty(0)], 0)
#: Jacobian arrays kept per data set (a solver holds two: current point and trial)
_POOL = 3


class UndData(XrayData):
    """An unpolarised-neutron data set: F² (or |F|) of the nuclear structure factors.

    Identical to :class:`XrayData` (observable, weights, scale, extinction,
    cut-offs) except that it sees the nuclei: F_N = Σ b T exp(2πi h·x) in fm,
    with constant coherent scattering lengths b from the structure model and
    the neutron ADP set (``"N"`` by default). Observed F² are on an arbitrary
    scale (``NAME.scale`` refines it); give the neutron wavelength in the
    options when extinction is refined.
    """

    kind = "und"
    view_kind = "nuclear"

    def _new_engine(
        self, crystal: Crystal, models: Sequence[AtomModel], hkl: ArrayLike
    ) -> StructureFactorEngine:
        if self._view is None:
            raise InputError(
                f"dataset {self.name!r}: unpolarised neutron data need a refinement's "
                "structure model (UndData.attach)"
            )
        return self._view.engine(hkl)

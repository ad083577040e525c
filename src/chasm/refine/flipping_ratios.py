"""One flipping-ratio data set: the ratio, extinction, λ/2, twins and the Jacobian chain.

Every polarised-neutron flipping-ratio block of a refinement is a
:class:`FlippingRatioSet`. What the data set does is written here once; only
where its amplitudes come from differs between the routes.

Design
------
The data set (this module) owns

* the observations after the cut-offs (h k l, R, σ(R), sinθ/λ), the field
  direction ê in chasm's Cartesian frame, P, e, λ, the stage window and the
  held-out / bootstrap masks;
* the **reflection sets** whose amplitudes enter R (:attr:`FlippingRatioSet.sets`),
  keyed by the prefix that :func:`chasm.neutron.flipping.flipping_ratio` gives
  their derivatives: ``""`` (h), ``"half_"`` (2h at λ/2, with the direction ĥ
  of h), ``"twin1_"``, ``"twin1_half_"``... (h' = M h of each twin domain and
  its 2h'); each with its h k l, the unit vectors ĥ of F_M⊥ and the sinθ/λ of
  its extinction;
* the private parameters ``NAME.extinction_radius``, ``NAME.mosaicity``,
  ``NAME.polarisation``, ``NAME.lambda_half``, ``NAME.twin1``... and their
  columns (dR/d them come straight from :func:`flipping_ratio`);
* the ratio: sphere extinction per set (2h at λ/2 with the polarised λ/2
  model, at λ with cryspy's unpolarised one), :class:`HalfWavelength` and
  :class:`TwinDomain` assembled from the sets' amplitudes, one call of
  :func:`flipping_ratio`;
* the one chain rule: for every set s and every block of columns θ,

      dR/dθ = Σ_c [∂R/∂Re F_c · Re dF_c/dθ + ∂R/∂Im F_c · Im dF_c/dθ],

  over the channels c = F_N, the three components of F_M⊥, F_Hpol.

The **magnetic source** is what a subclass plugs in, by implementing
``_amplitudes(p, mask, jacobian) -> {prefix: Amplitudes}``: for each
reflection set, F_N, F_M⊥ (fm, chasm Cartesian), F_Hpol (or None) over the
reflections in ``mask``, and their derivatives as :class:`Block` s (columns
of the full parameter vector, dF_N, dF_M⊥ and dF_Hpol per column; dF_M⊥
either as (n, m, 3) or, when F_M⊥ is a scalar times a fixed vector per
reflection, as the scalar's (n, m) with that vector). The two sources:

* :class:`chasm.refine.flipping_data.FlippingData` (joint route): F_N, F_spin
  and F_Hpol from views of the refinement's structure model through the
  structure-factor engine (all sets stacked in one engine per view);
  F_M⊥ = p s F_spin (ê − (ĥ·ê) ĥ); blocks: the structural columns (the
  engine's Jacobians) and ``NAME.mscale``.
* :class:`chasm.refine.pnd_data.PndData` (PND-only stage): fixed nuclear
  structure (F_N, F_Hpol fixed arrays) and a spin model linear in its
  parameters, F_M⊥ = Σ_k c_k G⊥_k with the bases G_k over the engine's
  per-operation terms; blocks: the spin columns (G⊥) and the κ of
  spin-multipole shapes (Σ_k c_k dG⊥_k/dκ; the bases are rebuilt when κ moves).

Adding a route means writing a source, never a second ratio or chain rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from chasm.data.agreement import Agreement
from chasm.errors import InputError
from chasm.neutron.extinction import SphereExtinction
from chasm.neutron.flipping import (
    HalfWavelength,
    TwinDomain,
    flipping_ratio,
    flipping_statistics,
    proton_polarisation,
)
from chasm.neutron.geometry import field_direction, field_geometry
from chasm.neutron.rcif import PndDataset
from chasm.refine.problem import Evaluation
from chasm.scattering.xray import mask_resolution

if TYPE_CHECKING:
    from chasm.crystal.structure import Crystal
    from chasm.density.model import AtomModel

__all__ = [
    "LAMBDA_HALF_MODELS",
    "Amplitudes",
    "Block",
    "FlippingRatioSet",
    "PndOptions",
    "ReflectionSet",
    "asymmetry_observed",
]

#: the λ/2 models of :class:`PndOptions` (``lambda_half_model``)
LAMBDA_HALF_MODELS = ("polarised", "unpolarised")


@dataclass(frozen=True)
class ReflectionSet:
    """One set of reflections whose amplitudes enter the ratio of the kept reflections.

    Attributes
    ----------
    hkl : ndarray (n_kept, 3)
        Indices (2h for a λ/2 set, M h for a twin domain).
    h_unit : ndarray (n_kept, 3)
        Unit vectors ĥ (chasm Cartesian) of F_M⊥ = F_M − (ĥ·F_M) ĥ: those of
        h for h and 2h, of h' for a twin domain and its 2h'.
    stol : ndarray (n_kept,)
        sinθ/λ (Å⁻¹) of the reflection at λ whose extinction this set sees
        (h, or h'; doubled for a λ/2 set with the polarised model).
    half : bool
        A λ/2 set.
    """

    hkl: np.ndarray
    h_unit: np.ndarray
    stol: np.ndarray
    half: bool = False


@dataclass
class Block:
    """Derivatives of one set's amplitudes with respect to some columns of the full vector.

    Attributes
    ----------
    cols : slice or ndarray of int
        The columns (m of them).
    d_n, d_h : ndarray (n, m) complex or None
        dF_N/dθ, dF_Hpol/dθ (fm per unit); None: zero.
    d_m : ndarray complex or None
        dF_M⊥/dθ: (n, m, 3); or (n, m) when ``direction`` is given, then
        dF_M⊥/dθ = d_m[:, j] × direction.
    direction : ndarray (n, 3) real or None
        The fixed vector of a scalar magnetic amplitude.
    """

    cols: slice | np.ndarray
    d_n: np.ndarray | None = None
    d_m: np.ndarray | None = None
    d_h: np.ndarray | None = None
    direction: np.ndarray | None = None


@dataclass
class Amplitudes:
    """F_N (fm), F_M⊥ (fm, (n, 3)), F_Hpol (fm or None) of one reflection set, and blocks."""

    f_n: np.ndarray
    f_m_perp: np.ndarray
    f_hpol: np.ndarray | None = None
    blocks: list[Block] = field(default_factory=list)


@dataclass
class PndOptions:
    """Options of one flipping-ratio data set.

    Attributes
    ----------
    extinction : bool or None
        Sphere extinction on or off; None: as in the file (on when the block
        gives an extinction model and a radius > 0).
    extinction_model : {"gauss", "lorentz"} or None
        Mosaic distribution; None: the file's (``"gauss"`` if absent).
    radius : float or None
        Start radius (µm); None: the file's. Must be > 0 with extinction on
        (every derivative vanishes at r = 0).
    mosaicity : float or None
        Start mosaicity (cryspy's unit, :mod:`chasm.neutron.extinction`);
        None: the file's.
    refine_polarisation : bool
        Add ``NAME.polarisation`` (signed P) as a parameter (a stage must still
        free it); otherwise P is the file's.
    smin, smax : float or None
        Resolution window in sinθ/λ (Å⁻¹).
    include_excluded : bool
        Keep the reflections flagged ``_diffrn_refln_excluded``.
    lambda_half : float
        α ≥ 0 of the λ/2 contamination (:mod:`chasm.neutron.flipping`): the
        integrated intensity at λ/2 per unit |F|² relative to that at λ, i.e.
        Φ(λ/2)/Φ(λ) × 1/8 (λ³ Lorentz ratio) × the detector-efficiency ratio.
        0 (default): off, no reflection 2h is computed.
    refine_lambda_half : bool
        Add ``NAME.lambda_half`` (start ``lambda_half``; a stage must free it).
    lambda_half_model : {"polarised", "unpolarised"}
        ``"polarised"`` (default): the λ/2 neutrons are polarised and flipped
        like those at λ, and 2h sees the extinction at λ/2;
        ``"unpolarised"``: cryspy's model, the unpolarised I(2h) added to
        both channels, with the extinction of h at λ
        (:mod:`chasm.neutron.flipping`, docs/physics.md).
    hydrogen_polarisation : bool or float
        Polarised protons (:mod:`chasm.neutron.flipping`): False (default) off;
        True: P_H = tanh(μ_p |B| / k_B T) from the data set's field and
        ``temperature``; a number: P_H itself (in [−1, 1]).
    temperature : float or None
        Sample temperature (K), needed by ``hydrogen_polarisation = True``.
    asymmetry : bool
        Fit the asymmetry A = (R − 1)/(R + 1) with cryspy's σ(A)
        (:func:`asymmetry_observed`; cryspy's ``_chi2_asymmetry``) instead of R.
    twins : bool
        Use the data set's twin domains (cryspy's ``_jana_twin``):
        each adds the parameter ``NAME.twin1``, ``NAME.twin2``... (its volume
        fraction, start from the file; a stage must free it).
    """

    extinction: bool | None = None
    extinction_model: str | None = None
    radius: float | None = None
    mosaicity: float | None = None
    refine_polarisation: bool = False
    smin: float | None = None
    smax: float | None = None
    include_excluded: bool = False
    lambda_half: float = 0.0
    refine_lambda_half: bool = False
    lambda_half_model: str = "polarised"
    hydrogen_polarisation: bool | float = False
    temperature: float | None = None
    twins: bool = True
    asymmetry: bool = False

    @classmethod
    def from_config(cls, cfg: dict[str, Any], extinction: bool | None, **extra: Any) -> PndOptions:
        """The options of a project file's pnd data set (``datasets[i]``, validated).

        ``extinction`` is the resolved extinction kind; ``extra`` adds fields
        that only one route sets (e.g. ``twins`` for PND-only projects).
        """
        return cls(
            extinction=extinction,
            extinction_model=cfg["extinction_model"],
            radius=cfg["radius"],
            mosaicity=cfg["mosaicity"],
            refine_polarisation=cfg["refine_polarisation"],
            smin=cfg["smin"],
            smax=cfg["smax"],
            include_excluded=cfg["include_excluded"],
            lambda_half=cfg["lambda_half"],
            refine_lambda_half=cfg["refine_lambda_half"],
            lambda_half_model=cfg["lambda_half_model"],
            hydrogen_polarisation=cfg["hydrogen_polarisation"],
            temperature=cfg["temperature"],
            asymmetry=cfg["fit"] == "asymmetry",
            **extra,
        )


def asymmetry_observed(r_obs: ArrayLike, sigma: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """A = (R − 1)/(R + 1) and cryspy's σ(A) = √2 σ(R) √(R² + 1)/(R + 1)².

    cryspy's ``_chi2_asymmetry`` (procedure_rhochi/rhochi_diffrn.py) fits A with
    this σ, which counts the uncertainty of the two intensities behind R
    rather than the first-order propagation 2σ(R)/(R + 1)².
    """
    r_obs = np.asarray(r_obs, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    a = (r_obs - 1.0) / (r_obs + 1.0)
    s = np.sqrt(2.0) * sigma * np.sqrt(r_obs**2 + 1.0) / (r_obs + 1.0) ** 2
    return a, s


def _hydrogen_polarisation(
    name: str, o: PndOptions, field: float, crystal: Crystal
) -> float | None:
    """P_H of a data set from its options (None: off); InputError naming the key."""
    setting = o.hydrogen_polarisation
    if setting is False:
        return None
    if setting is True:
        t = o.temperature
        if t is None or not np.isfinite(t) or not t > 0:
            raise InputError(
                f"dataset {name!r}: hydrogen_polarisation = true needs the sample "
                f"temperature > 0 K (key temperature, given {t})"
            )
        p_h = proton_polarisation(field, t)
    else:
        p_h = float(setting)
        if not (np.isfinite(p_h) and -1.0 <= p_h <= 1.0):
            raise InputError(
                f"dataset {name!r}: hydrogen_polarisation = {setting} is not a proton "
                "polarisation P_H in [-1, 1] (or true to compute it from temperature and field)"
            )
    if not any(a.element == "H" for a in crystal.atoms):
        raise InputError(
            f"dataset {name!r}: hydrogen_polarisation is on but the structure has no H atom "
            "(element H); switch it off"
        )
    return p_h


class FlippingRatioSet:
    """One flipping-ratio data set of a refinement (module docstring: the design).

    The observations, the reflection sets, the private parameters, the ratio
    and its Jacobian (:meth:`calculate`), evaluation and agreement. A
    subclass is a magnetic source: it calls :meth:`_read` and implements
    :meth:`_amplitudes`; it may add parameters (:meth:`_source_names`,
    :meth:`_source_values`, :meth:`_required_names`) and bind them
    (:meth:`_bind_source`). Subclasses: :class:`chasm.refine.pnd_data.PndData`
    (fixed nuclear structure, linear spin model) and
    :class:`chasm.refine.flipping_data.FlippingData` (the refinement's
    structure model through the engine).
    """

    kind = "pnd"
    user_weight = 1.0

    def _read(
        self,
        name: str,
        dataset: PndDataset,
        crystal: Crystal,
        options: PndOptions | None,
        field_direction_cart: ArrayLike | None = None,
    ) -> None:
        """Keep the observations and make the reflection sets (:attr:`sets`).

        ``field_direction_cart`` (chasm Cartesian frame) replaces the direction
        derived from the data set's UB matrix (simulations, direction-cosine files).
        """
        self.name = name
        self.dataset = dataset
        self.options = o = options or PndOptions()
        self.n_read = len(dataset.hkl)
        if field_direction_cart is None:
            self.e = field_direction(dataset.ub, crystal.B, dataset.ub_type, dataset.field)
        else:
            e = np.asarray(field_direction_cart, dtype=float).reshape(3)
            self.e = e / np.linalg.norm(e) * (-1.0 if dataset.field < 0 else 1.0)
        geom = field_geometry(dataset.hkl, crystal.B, self.e)
        keep = mask_resolution(geom.stol, o.smin, o.smax)
        if not o.include_excluded:
            keep &= ~np.asarray(dataset.excluded, dtype=bool)
        if not np.any(keep):
            raise InputError(
                f"dataset {name!r}: no flipping ratio left after the cut-offs "
                f"(read {self.n_read}; smin={o.smin}, smax={o.smax}, excluded flags)"
            )
        self.hkl = np.asarray(dataset.hkl)[keep]
        self.r_obs = np.asarray(dataset.fr, dtype=float)[keep]
        self.sigma = np.asarray(dataset.fr_sigma, dtype=float)[keep]
        if np.any(~(self.sigma > 0)):
            bad = self.hkl[~(self.sigma > 0)][0]
            raise InputError(f"dataset {name!r}: σ(R) must be positive (reflection {bad})")
        self.stol = geom.stol[keep]
        self.q = geom.q[keep]
        self.polarisation = float(dataset.polarisation)
        self.efficiency = float(dataset.efficiency)
        self.wavelength = float(dataset.wavelength)
        on = o.extinction
        if on is None:
            on = dataset.extinction_model is not None and dataset.radius > 0
        self.extinction_model = o.extinction_model or dataset.extinction_model or "gauss"
        self.radius = float(dataset.radius if o.radius is None else o.radius)
        self.mosaicity = float(dataset.mosaicity if o.mosaicity is None else o.mosaicity)
        self.extinction_on = bool(on)
        if self.extinction_on and not (self.radius > 0 and self.wavelength > 0):
            raise InputError(
                f"dataset {name!r}: extinction needs a radius > 0 µm (given {self.radius}) "
                f"and the wavelength (given {self.wavelength}); set PndOptions.radius"
            )
        alpha = float(o.lambda_half)
        if not (np.isfinite(alpha) and alpha >= 0):
            raise InputError(
                f"dataset {name!r}: lambda_half must be a number >= 0 (the lambda/2 to lambda "
                f"intensity ratio alpha), given {o.lambda_half}"
            )
        self.lambda_half = alpha
        if o.lambda_half_model not in LAMBDA_HALF_MODELS:
            raise InputError(
                f"dataset {name!r}: lambda_half_model = {o.lambda_half_model!r} is not one of "
                f"{', '.join(LAMBDA_HALF_MODELS)}"
            )
        #: the unpolarised λ/2 model (cryspy's): I(2h) at P = 0, extinction of h at λ
        self.half_unpolarised = o.lambda_half_model == "unpolarised"
        # 2h is computed when alpha may be non-zero (a refinable alpha starting at 0 too)
        self.half_on = alpha > 0 or o.refine_lambda_half
        #: P_H, or None when the protons are not polarised (P_H = 0 counts as off)
        self.p_h = _hydrogen_polarisation(name, o, dataset.field, crystal)
        if self.p_h == 0.0:
            self.p_h = None
        self.asymmetry = bool(o.asymmetry)
        self.window: tuple[float | None, float | None] = (None, None)
        self._bound = False
        self.volume = float(crystal.volume)
        self.sets = self._reflection_sets(dataset, crystal, geom.h_unit[keep])

    def _reflection_sets(
        self, dataset: PndDataset, crystal: Crystal, h_unit: np.ndarray
    ) -> dict[str, ReflectionSet]:
        """h, 2h (λ/2 on), and h' = M h and 2h' of each twin domain (``options.twins``)."""
        sets = {"": ReflectionSet(self.hkl, h_unit, self.stol)}
        if self.half_on:  # 2h has the direction of h
            sets["half_"] = ReflectionSet(2 * self.hkl, h_unit, self.stol, True)
        #: twin domains (cryspy's _jana_twin): h' = M h, same field direction, P and e
        self.twins = list(dataset.twins) if self.options.twins else []
        for k, twin in enumerate(self.twins, 1):
            hkl_t = np.asarray(self.hkl, dtype=float) @ np.asarray(twin.matrix, float).T
            geom_t = field_geometry(hkl_t, crystal.B, self.e)
            sets[f"twin{k}_"] = ReflectionSet(hkl_t, geom_t.h_unit, geom_t.stol)
            if self.half_on:
                sets[f"twin{k}_half_"] = ReflectionSet(2 * hkl_t, geom_t.h_unit, geom_t.stol, True)
        return sets

    # ------------------------------------------------------------------ parameters
    def _own(self, suffix: str, on: bool) -> str | None:
        return f"{self.name}.{suffix}" if on else None

    @property
    def twin_names(self) -> list[str]:
        """``NAME.twin1``, ``NAME.twin2``...: volume fractions of the other twin domains."""
        return [f"{self.name}.twin{k}" for k in range(1, len(self.twins) + 1)]

    def _source_names(self) -> list[str]:
        """Private parameters of the magnetic source (after P, before α)."""
        return []

    def _source_values(self) -> dict[str, float]:
        """Start values of :meth:`_source_names`."""
        return {}

    def _required_names(self) -> list[str]:
        """Parameters of the source that :meth:`bind` must find besides the private ones."""
        return []

    def parameter_names(self) -> list[str]:
        """Private parameters of the data set, in order."""
        names = [
            self._own("extinction_radius", self.extinction_on),
            self._own("mosaicity", self.extinction_on),
            self._own("polarisation", self.options.refine_polarisation),
            *self._source_names(),
            self._own("lambda_half", self.options.refine_lambda_half),
            *self.twin_names,
        ]
        return [n for n in names if n]

    def initial_values(
        self, crystal: Crystal | None = None, models: Sequence[AtomModel] | None = None
    ) -> dict[str, float]:
        """Start values of the private parameters (radius µm, mosaicity, P, α, fractions)."""
        values = {
            f"{self.name}.extinction_radius": self.radius,
            f"{self.name}.mosaicity": self.mosaicity,
            f"{self.name}.polarisation": self.polarisation,
            f"{self.name}.lambda_half": self.lambda_half,
            **self._source_values(),
            **{n: float(t.fraction) for n, t in zip(self.twin_names, self.twins, strict=True)},
        }
        return {n: values[n] for n in self.parameter_names()}

    def bind(
        self,
        crystal: Crystal | None,
        models: Sequence[AtomModel] | None,
        names: list[str],
        n_struct: int,
    ) -> None:
        """Attach to the refinement's parameter vector (the first n_struct are structural).

        Raises
        ------
        InputError
            A parameter of the data set or its source is missing from ``names``.
        """
        names = list(names)
        own = self._required_names() + self.parameter_names()
        missing = [n for n in own if n not in names]
        if missing:
            raise InputError(f"dataset {self.name!r}: parameters {missing} are not in the vector")
        self._n_full, self._n_struct = len(names), n_struct
        self._i = {n.removeprefix(f"{self.name}."): names.index(n) for n in self.parameter_names()}
        self._bind_source(names, n_struct)
        self._bound = True

    def _bind_source(self, names: list[str], n_struct: int) -> None:
        """Find the source's own parameters in the vector (:meth:`bind`)."""

    def _value(self, p: np.ndarray, key: str, default: float) -> float:
        """Private parameter ``NAME.key`` at p, or ``default`` when it is not a parameter."""
        return float(p[self._i[key]]) if key in self._i else default

    #: Observations left out of every evaluation (bool over the kept ratios), the free set
    #: of a cross-validation fold (:mod:`chasm.cv`); None leaves none out.
    held_out: np.ndarray | None = None

    #: Weight factor of every kept ratio in fits (a bootstrap replicate's draw counts,
    #: :mod:`chasm.cv.bootstrap`); None: 1 for all. Agreement figures ignore it.
    multiplicity: np.ndarray | None = None

    def hold_out(self, mask: np.ndarray | None) -> None:
        """Leave the ratios ``mask`` out of fits and agreement figures (None: none)."""
        self.held_out = None if mask is None else np.array(mask, dtype=bool)
        self._engines: dict[Any, Any] = {}

    def active(self) -> np.ndarray:
        """Mask of the reflections inside the current stage window and not held out."""
        mask = mask_resolution(self.stol, *self.window)
        return mask if self.held_out is None else mask & ~self.held_out

    def _no_reflection(self) -> InputError:
        return InputError(
            f"dataset {self.name!r}: no reflection in the stage window "
            f"sinθ/λ {self.window}; widen it"
        )

    def _extinction(
        self, p: np.ndarray, mask: np.ndarray, rset: ReflectionSet
    ) -> SphereExtinction | None:
        """Sphere extinction of one reflection set's rows in ``mask`` at p, or None when off.

        A λ/2 set sees the extinction at λ/2 with the polarised model and that
        of its reflection at λ with the unpolarised (cryspy's) one.
        """
        if not self.extinction_on:
            return None
        return self.sphere_extinction(
            self._value(p, "mosaicity", self.mosaicity),
            self._value(p, "extinction_radius", self.radius),
            self.volume,
            mask,
            rset.half and not self.half_unpolarised,
            rset.stol,
        )

    def sphere_extinction(
        self,
        mosaicity: float,
        radius: float,
        volume: float,
        mask: np.ndarray,
        half: bool = False,
        stol: np.ndarray | None = None,
    ) -> SphereExtinction:
        """The extinction model of the reflections in ``mask`` (radius µm).

        With ``half``, that of their reflections 2h at λ/2: sinθ/λ doubles and
        λ halves, so θ (cos 2θ = 1 − 2(λ sinθ/λ)²) is that of h, while the
        extinction arguments (∝ λ², λ³) see λ/2. ``stol``: the sinθ/λ of
        another reflection set at λ (a twin domain's h'), default that of h.
        """
        lam = self.wavelength
        stol = (self.stol if stol is None else stol)[mask]
        if half:
            lam, stol = 0.5 * lam, 2.0 * stol
        return SphereExtinction.from_stol(
            self.extinction_model, mosaicity, radius, lam, volume, stol
        )

    #: Fit the asymmetry A = (R − 1)/(R + 1) instead of R (:class:`PndOptions`).
    asymmetry = False

    # ------------------------------------------------------------------ the ratio
    def _amplitudes(self, p: np.ndarray, mask: np.ndarray, jacobian: bool) -> dict[str, Amplitudes]:
        """{prefix: :class:`Amplitudes`} of every reflection set over ``mask`` (the source)."""
        raise NotImplementedError

    def calculate(
        self, p: np.ndarray, jacobian: bool = True
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Calculated ratios at p over the stage window.

        Returns
        -------
        mask : ndarray (n_kept,) bool
            Reflections used.
        r_calc : ndarray (n_used,)
        J : ndarray (n_used, n_full) or None
            dR/dp over the full vector (zero for parameters R does not depend on).
        """
        if not self._bound:
            raise RuntimeError(f"{type(self).__name__}.bind must be called first")
        p = np.asarray(p, dtype=float)
        mask = self.active()
        if not np.any(mask):
            raise self._no_reflection()
        amps = self._amplitudes(p, mask, jacobian)
        ext = {tag: self._extinction(p, mask, rset) for tag, rset in self.sets.items()}

        def half(tag: str) -> HalfWavelength | None:
            a = amps.get(f"{tag}half_")
            if a is None:
                return None
            return HalfWavelength(
                a.f_n, a.f_m_perp, ext[f"{tag}half_"], a.f_hpol, unpolarised=self.half_unpolarised
            )

        h = amps[""]
        extra: dict = {}
        if h.f_hpol is not None:
            extra["f_hpol"] = h.f_hpol
        if self.half_on:
            extra["half"] = half("")
            extra["lambda_half"] = self._value(p, "lambda_half", self.lambda_half)
        if self.twins:
            extra["twins"] = [
                TwinDomain(
                    self._value(p, f"twin{k}", 0.0),
                    amps[f"twin{k}_"].f_n,
                    amps[f"twin{k}_"].f_m_perp,
                    ext[f"twin{k}_"],
                    amps[f"twin{k}_"].f_hpol,
                    half(f"twin{k}_"),
                )
                for k in range(1, len(self.twins) + 1)
            ]
        pol = self._value(p, "polarisation", self.polarisation)
        out = flipping_ratio(
            h.f_n, h.f_m_perp, self.e, pol, self.efficiency, ext[""], derivatives=jacobian, **extra
        )
        if not jacobian:
            return mask, out, None
        ratio, d = out
        J = np.zeros((len(ratio), self._n_full))
        for tag, a in amps.items():
            for block in a.blocks:
                _chain(J, d, tag, block)
        direct = {  # private parameter -> its derivative in flipping_ratio's output
            "extinction_radius": "radius",
            "mosaicity": "mosaicity",
            "polarisation": "polarisation",
            "lambda_half": "lambda_half",
            **{f"twin{k}": f"twin_fraction{k}" for k in range(1, len(self.twins) + 1)},
        }
        for key, name in direct.items():
            if key in self._i:
                J[:, self._i[key]] = d[name]
        return mask, ratio, J

    def evaluate(self, p: np.ndarray) -> Evaluation:
        """R_obs, R_calc, w = 1/σ(R)² and dR/dp (full vector) at p (A and dA/dp with asymmetry)."""
        mask, ratio, J = self.calculate(p, jacobian=True)
        assert J is not None  # asked for
        m = 1.0 if self.multiplicity is None else self.multiplicity[mask]
        if self.asymmetry:
            a_obs, s_a = asymmetry_observed(self.r_obs[mask], self.sigma[mask])
            a_calc = (ratio - 1.0) / (ratio + 1.0)
            return Evaluation(a_obs, a_calc, m * s_a**-2.0, J * (2.0 / (ratio + 1.0) ** 2)[:, None])
        return Evaluation(self.r_obs[mask], ratio, m * self.sigma[mask] ** -2.0, J)

    def ratios(self, p: np.ndarray) -> np.ndarray:
        """R_calc of every kept reflection not held out at p (stage window ignored)."""
        saved = self.window
        self.window = (None, None)
        try:
            return self.calculate(p, jacobian=False)[1]
        finally:
            self.window = saved

    def agreement(self, p: np.ndarray, n_par: int = 0) -> Agreement:
        """χ², χ²/N, GOF, Rw(1−R) over the whole data set at p (R1, wR2: None)."""
        keep = slice(None) if self.held_out is None else ~self.held_out
        r_obs, sigma, r_calc = self.r_obs[keep], self.sigma[keep], self.ratios(p)
        if self.asymmetry:  # χ² of what is fitted; Rw on 1 + A (A_o = 0: no contrast)
            r_obs, sigma = asymmetry_observed(r_obs, sigma)
            r_calc = (r_calc - 1.0) / (r_calc + 1.0)
            r_obs, r_calc = r_obs + 1.0, r_calc + 1.0
        stats = flipping_statistics(r_obs, sigma, r_calc, None, n_par)
        stats["kind"] = self.kind
        stats.update(observable="A" if self.asymmetry else "R", weights="sigma", n_read=self.n_read)
        return stats


def _chain(J: np.ndarray, d: dict, tag: str, block: Block) -> None:
    """J[:, cols] += Σ_c ∂R/∂Re F_c Re dF_c/dθ + ∂R/∂Im F_c Im dF_c/dθ for one set's block.

    ``d`` holds the derivatives of :func:`~chasm.neutron.flipping.flipping_ratio`,
    ``tag`` the prefix of the reflection set (``""``, ``"half_"``, ``"twin1_"``...).
    """
    cols = block.cols
    for channel, dF in (("f_n", block.d_n), ("f_hpol", block.d_h)):
        if dF is not None:
            d_re, d_im = d[f"{tag}{channel}_real"], d[f"{tag}{channel}_imag"]
            J[:, cols] += d_re[:, None] * dF.real + d_im[:, None] * dF.imag
    if block.d_m is None:
        return
    d_re, d_im = d[f"{tag}f_m_perp_real"], d[f"{tag}f_m_perp_imag"]
    dF = block.d_m
    if block.direction is None:
        J[:, cols] += np.einsum("na,nka->nk", d_re, dF.real)
        J[:, cols] += np.einsum("na,nka->nk", d_im, dF.imag)
    else:  # dF_M⊥/dθ = (dF/dθ) × direction
        g_re = np.einsum("na,na->n", d_re, block.direction)
        g_im = np.einsum("na,na->n", d_im, block.direction)
        J[:, cols] += g_re[:, None] * dF.real + g_im[:, None] * dF.imag

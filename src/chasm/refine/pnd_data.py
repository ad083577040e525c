"""The PND-only stage: fixed nuclear structure and linear spin models.

In a :class:`~chasm.refine.refinement.Refinement`, a :class:`PndData` is one
flipping-ratio data block (R_obs, σ(R), signed beam polarisation P, flipper
efficiency e, field B and its direction from the UB matrix, sphere
extinction). It is the PND-only magnetic source of the one flipping-ratio data
set, :class:`~chasm.refine.flipping_ratios.FlippingRatioSet` (which computes
the ratio, extinction, λ/2, twins and the Jacobian chain for this route and
for the joint one, :class:`~chasm.refine.flipping_data.FlippingData`), and
adds ``shared_values``: the spin-model parameters, which every PND set of a
refinement shares (see :class:`~chasm.refine.refinement.Refinement`).

What is refined in the PND-only stage
-------------------------------------
- The nuclear structure (positions, neutron ADPs, scattering lengths) comes
  from the rcif crystal block and is FIXED: F_N and the magnetic basis below
  are computed once, when the data set is built. The atomic parameters of the
  refinement get ZERO Jacobian columns from a PndData, so a stage must not
  free them on PND data alone (the normal matrix would be singular). The
  joint X-ray / neutron structure model is :class:`FlippingData`'s.
- The spin model (:class:`PndSpinModel`) is a list of magnetic sites
  (:class:`SpinSite`) with the tabulated dipole form factor
  f(s) = ⟨j0⟩(s/κ) + C2⟨j2⟩(s/κ) (C2 and κ explicit inputs, fixed here) and
  either

  * a moment m (μB) along the applied field, the same on every symmetry copy
    of the site (paramagnet or ferromagnet magnetised along ê: collinear,
    induced or ferromagnetic case). Parameter ``LABEL.moment``:
    F_M(h) = m ê G(h), G(h) = p w f(s) Σ_(R,t) T(Rᵀh) exp[2πi h·(R x + t)]
    (fm/μB; p in fm/μB, w = occupancy/|site group|);
  * a site susceptibility χ (μB/T, cryspy's components on the normalised
    crystal axes a/|a|, b/|b|, c/|c|). Anisotropic (``Cani``): the parameters
    are the independent components under the site symmetry, taken with
    cryspy's rule (the first independent ones in the order 11 22 33 12 13 23,
    :func:`chasm.neutron.rcif_sites.constrain_site_tensor` with ``"first"``), named
    ``LABEL.chi11``, ``LABEL.chi12``...; the other components follow linearly
    (on the Ho site of Ho2Ti2O7, χ11 = χ22 = χ33 and χ12 = χ13 = χ23, two
    parameters). Isotropic (``Ciso``): one parameter ``LABEL.chi_iso``,
    χ = chi_iso · 1 on the normalised axes (as in :mod:`chasm.neutron.model`, the reference;
    in an orthogonal cell it is the moment model with m = chi_iso |B|).
    F_M = S(h) B with S the susceptibility structure tensor
    (:mod:`chasm.neutron.structure_factors`) and B = |B| ê in T.

  or, for a transition-metal ion, an aspherical d-shell spin density along
  the field (:class:`~chasm.neutron.dorbital_site.DOrbitalSite`: multipole
  populations ``LABEL.P00``, ``LABEL.P20``... or d-orbital spin populations
  ``LABEL.d_xy``, ``LABEL.d_xz/yz``... in a local frame, with the ion's
  ⟨j0⟩, ⟨j2⟩, ⟨j4⟩; see :mod:`chasm.neutron.dorbital_site`).

  All are linear in the parameters c_k: F_M(h) = Σ_k c_k G_k(h), with G_k the
  F_M (fm) of a unit value of parameter k. A data set stores the magnetic
  interaction vectors G_k⊥ = G_k − (ĥ·G_k) ĥ of its reflections.

Flipping ratio and derivatives
------------------------------
R is :func:`chasm.neutron.flipping.flipping_ratio` (through
:meth:`FlippingRatioSet.calculate`) with F_M⊥ = Σ_k c_k G_k⊥ for every
reflection set (h, 2h, twin domains). The source's blocks are the spin columns
(dF⊥/dc_k = G_k⊥) and the κ of spin shapes (dF⊥/dκ = Σ_k c_k dG_k⊥/dκ); the
chain rule of the core turns them into dR/dc_k (checked by central finite
differences in tests/test_pnd_refinement.py and tests/test_flipping_extras.py).

Parameters of a data set named NAME
-----------------------------------
- shared (declared by :meth:`PndData.shared_values`, added once by the
  refinement): the spin parameters above;
- private (:meth:`PndData.initial_values`): ``NAME.extinction_radius`` (µm)
  and ``NAME.mosaicity`` (cryspy's ``_extinction_mosaicity``, see
  :mod:`chasm.neutron.extinction`) when extinction is on, ``NAME.polarisation``
  (signed P) only with ``PndOptions(refine_polarisation=True)``,
  ``NAME.lambda_half`` (α of the λ/2 contamination) only with
  ``PndOptions(refine_lambda_half=True)``, ``NAME.twin1``... (volume
  fractions) of the block's twin domains. Which of them
  move is the stage's choice (:class:`~chasm.refine.refinement.Stage`): all are
  fixed unless a stage frees them.

Optional effects (:mod:`chasm.neutron.flipping`; :class:`PndOptions`): λ/2
contamination and twin domains (each a reflection set of the core: F_N and
the basis G_k⊥ precomputed like those of h) and polarised protons
(``hydrogen_polarisation``: F_Hpol of the fixed H atoms of the rcif crystal, a
fixed array). Both are off by default, and then nothing is computed for them.

Agreement (CONVENTIONS.md, "Neutrons" and "Least squares"): χ² = Σ w (R_o − R_c)²
with w = 1/σ(R)², χ²/N, GOF = √(χ²/(N − n_par)), and ``"Rw"`` = Rw(1−R) =
√(Σ w (R_o − R_c)² / Σ w (R_o − 1)²). ``"R1"`` and ``"wR2"`` are None: they
are defined on |F| and F², which a flipping-ratio set does not observe.

Example::

    from chasm.density.model import SphericalAtom
    from chasm.neutron import read_rcif
    from chasm.refine.pnd_data import PndData, PndSpinModel
    from chasm.refine.refinement import Refinement, Stage

    pnd = read_rcif("ytio3.rcif")
    spin = PndSpinModel.from_rcif(pnd.crystal(), moments={"Ti": 0.5})
    sets = [PndData(d.name, d, spin) for d in pnd.datasets]
    models = [SphericalAtom(a.element) for a in spin.crystal.atoms]
    ref = Refinement(spin.crystal, models, sets)
    ref.run_stage(Stage("moment", free=["Ti.moment"]))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from chasm.crystal.adp import matrix_to_u6, u6_to_matrix
from chasm.crystal.structure import Crystal
from chasm.density.model import NuclearAtom
from chasm.errors import InputError
from chasm.neutron.dorbital_site import DOrbitalLayout, DOrbitalSite, dorbital_basis
from chasm.neutron.flipping import PROTON_SPIN_AMPLITUDE
from chasm.neutron.magnetic_ff import IonFormFactor, c2_from_lande, ion_form_factor
from chasm.neutron.rcif import PndCrystal, PndDataset
from chasm.neutron.rcif_sites import (
    check_scat_rows,
    constrain_site_tensor,
    located,
    rcif_crystal,
)
from chasm.neutron.spin_shape import SpinShape
from chasm.neutron.structure_factors import (
    P_FM,
    magnetic_structure_factors,
    moment_along_field,
    nuclear_structure_factors,
    susceptibility_structure_tensor,
)
from chasm.refine.flipping_ratios import (  # noqa: F401  (PndOptions... importable from here too)
    LAMBDA_HALF_MODELS,
    Amplitudes,
    Block,
    FlippingRatioSet,
    PndOptions,
    asymmetry_observed,
)
from chasm.scattering.engine import StructureFactorEngine

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from chasm.density.model import AtomModel
    from chasm.neutron.structure_factors import TermsFn

__all__ = [
    "SpinSite",
    "PndSpinModel",
    "PndOptions",
    "PndData",
    "moment_site_columns",
    "site_columns",
    "local_axis",
]

_CHI_LABELS = ("11", "22", "33", "12", "13", "23")


@dataclass
class SpinSite:
    """Magnetic description of one site of the spin model.

    Give exactly one of ``moment`` and ``chi``.

    Parameters
    ----------
    label : str
        Atom label in the crystal.
    table : IonFormFactor
        ⟨j0⟩, ⟨j2⟩ coefficients of the ion.
    c2 : float
        Dipole coefficient: f = ⟨j0⟩ + C2⟨j2⟩ (dimensionless).
    kappa : float
        Radial expansion κ of the form factor (fixed).
    moment : float or None
        Start value of the moment along the field (μB).
    chi : array_like (6,) or None
        Start χ11 χ22 χ33 χ12 χ13 χ23 (μB/T) on the normalised crystal axes.
    isotropic : bool
        With ``chi``: χ = χ11 · 1, one parameter (cryspy's ``Ciso``).
    chi_local : (float, float) or None
        Start (χ∥, χ⊥) (μB/T) of a uniaxial site susceptibility
        χ = χ⊥ 1 + (χ∥ − χ⊥) n nᵀ about the site's axis n (parameters
        ``LABEL.chi_par``, ``LABEL.chi_perp``; :func:`local_axis`).
    axis : array_like (3,) or None
        With ``chi_local``: n as a direct-lattice direction [u v w]; None: the
        unique 3-, 4- or 6-fold axis of the site symmetry.
    shape : SpinShape or None
        A spin-multipole form factor (:mod:`chasm.neutron.spin_shape`, one
        value per symmetry operation) in the place of ⟨j0⟩ + C2⟨j2⟩ (``table``,
        ``c2`` and ``kappa`` are then not used).
    vector : array_like (3,) or None
        Start ordered moment (μB) on the normalised crystal axes (cryspy's
        ``_atom_site_moment_crystalaxis_x/y/z``), copied to the other sites by
        the magnetic group (time reversal θ of each operation); parameters
        ``LABEL.mx``, ``LABEL.my``, ``LABEL.mz``, those free under the magnetic
        site symmetry (:func:`moment_site_columns`).
    """

    label: str
    table: IonFormFactor
    c2: float = 0.0
    kappa: float = 1.0
    moment: float | None = None
    chi: np.ndarray | None = None
    isotropic: bool = False
    vector: np.ndarray | None = None
    chi_local: tuple[float, float] | None = None
    axis: np.ndarray | None = None
    shape: SpinShape | None = None

    def __post_init__(self) -> None:
        given = [x is not None for x in (self.moment, self.chi, self.vector, self.chi_local)]
        if sum(given) != 1:
            raise InputError(
                f"magnetic site {self.label}: give one of a moment along the field, a chi, "
                "an ordered moment vector or a local (uniaxial) chi"
            )
        if self.chi_local is not None:
            self.chi_local = (float(self.chi_local[0]), float(self.chi_local[1]))
            if self.axis is not None:
                self.axis = np.asarray(self.axis, dtype=float).reshape(3)
        if self.chi is not None:
            self.chi = np.asarray(self.chi, dtype=float).reshape(6)
        if self.vector is not None:
            self.vector = np.asarray(self.vector, dtype=float).reshape(3)

    def form_factor(self, stol: ArrayLike) -> np.ndarray:
        """f(s) = ⟨j0⟩(s/κ) + C2⟨j2⟩(s/κ), s = sinθ/λ in Å⁻¹."""
        return self.table.dipole(stol, self.c2, self.kappa)[0]

    def form_factors(self, crystal: Crystal, hkl: ArrayLike, stol: ArrayLike) -> np.ndarray:
        """f per reflection (n,), or per reflection and operation (n, n_ops) with a ``shape``."""
        if self.shape is not None:
            return self.shape.per_operation(crystal, hkl)
        return self.form_factor(stol)


@dataclass(frozen=True)
class _Column:
    """One spin parameter: its site, atom index and χ6 per unit value (None: a moment).

    For a :class:`~chasm.neutron.dorbital_site.DOrbitalSite`, ``chi6`` is None
    and ``slot`` is the parameter's position in the site's layout.
    """

    name: str
    site: SpinSite | DOrbitalSite
    atom: int
    chi6: np.ndarray | None
    slot: int = 0
    vec: np.ndarray | None = None


class PndSpinModel:
    """Fixed nuclear structure and a linear spin model shared by PND data sets.

    Parameters
    ----------
    crystal : Crystal
        Positions and neutron ADPs (fixed in this step).
    b : sequence of complex
        Coherent scattering length of each atom (fm).
    sites : sequence of SpinSite or DOrbitalSite
        A :class:`~chasm.neutron.dorbital_site.DOrbitalSite` is an aspherical
        d-shell spin density along the field (parameters ``LABEL.P00``... or
        ``LABEL.d_xy``..., see :mod:`chasm.neutron.dorbital_site`).
    p : float
        Magnetic scattering amplitude per μB (fm); :data:`~chasm.neutron.P_FM`
        (2.69542) by default, ``CRYSPY_P`` (2.695) to reproduce cryspy.

    Attributes
    ----------
    values : dict
        Parameter name -> value (μB or μB/T); the start values of a
        refinement. :meth:`set_values` updates them (e.g. with the refined ones).
    layouts : dict
        Label -> :class:`~chasm.neutron.dorbital_site.DOrbitalLayout` of each
        d-orbital site (frame, parameter names, maps to multipoles and orbitals).

    Raises
    ------
    InputError
        Unknown label, a site given twice, or no magnetic site.
    """

    def __init__(
        self,
        crystal: Crystal,
        b: Sequence[complex],
        sites: Sequence[SpinSite | DOrbitalSite],
        p: float = P_FM,
        time_reversal: ArrayLike | None = None,
    ):
        self.crystal = crystal
        self.b = list(b)
        self.sites = list(sites)
        self.p = float(p)
        self.time_reversal = None if time_reversal is None else np.asarray(time_reversal, int)
        if self.time_reversal is not None and len(self.time_reversal) != crystal.n_ops:
            raise InputError(
                f"{len(self.time_reversal)} time-reversal signs for {crystal.n_ops} operations"
            )
        if len(self.b) != len(crystal.atoms):
            raise InputError(f"{len(self.b)} scattering lengths for {len(crystal.atoms)} atoms")
        if not self.sites:
            raise InputError("a PND spin model needs at least one magnetic site")
        labels = [a.label for a in crystal.atoms]
        self._columns: list[_Column] = []
        self.values: dict[str, float] = {}
        #: κ of the spin-multipole sites (``LABEL.kappa``): name -> site; values in shape_values
        self.shape_sites: dict[str, SpinSite] = {}
        self.shape_values: dict[str, float] = {}
        self.layouts: dict[str, DOrbitalLayout] = {}
        seen: set[str] = set()
        for site in self.sites:
            if site.label not in labels:
                raise InputError(f"magnetic site {site.label!r} is not an atom of the crystal")
            if site.label in seen:
                raise InputError(f"magnetic site {site.label!r} is given twice")
            seen.add(site.label)
            index = labels.index(site.label)
            if isinstance(site, DOrbitalSite):
                layout = site.resolve(crystal, index)
                self.layouts[site.label] = layout
                for slot, (name, start) in enumerate(zip(layout.names, layout.start, strict=True)):
                    self._columns.append(_Column(name, site, index, None, slot))
                    self.values[name] = float(start)
                continue
            if site.shape is not None:
                self.shape_sites[f"{site.label}.kappa"] = site
                self.shape_values[f"{site.label}.kappa"] = float(site.shape.kappa)
            if site.vector is not None:
                for name, vec, start in moment_site_columns(
                    crystal, index, site, self.time_reversal
                ):
                    self._columns.append(_Column(name, site, index, None, vec=vec))
                    self.values[name] = start
                continue
            if site.moment is not None and self._time_reversed():
                raise InputError(
                    f"magnetic site {site.label}: a moment along the field needs a "
                    "ferromagnetic or paramagnetic site; this magnetic group has time-reversed "
                    "operations (an antiferromagnet): give the ordered moment (vector) instead"
                )
            for name, chi6, start in site_columns(crystal, index, site):
                self._columns.append(_Column(name, site, index, chi6))
                self.values[name] = start

    def _time_reversed(self) -> bool:
        return self.time_reversal is not None and bool(np.any(self.time_reversal < 0))

    @property
    def parameter_names(self) -> list[str]:
        """Names of the spin parameters, in order."""
        return [c.name for c in self._columns]

    def column_indices(self, label: str) -> list[int]:
        """Positions in :attr:`parameter_names` of the parameters of site ``label``."""
        return [k for k, c in enumerate(self._columns) if c.site.label == label]

    def column_vector(self, k: int) -> np.ndarray | None:
        """Ordered moment (normalised crystal axes) per unit value of parameter k, or None."""
        return self._columns[k].vec

    def column_chi6(self, k: int) -> np.ndarray | None:
        """χ6 per unit value of parameter k (normalised crystal axes), None if not a χ."""
        return self._columns[k].chi6

    @property
    def shape_parameter_names(self) -> list[str]:
        """κ of the spin-multipole form factors (``LABEL.kappa``): not linear, not in the basis."""
        return list(self.shape_sites)

    def set_values(self, values: Mapping[str, float]) -> None:
        """Replace some parameter values (names as in :attr:`parameter_names`, or a κ)."""
        for name, value in values.items():
            if name in self.shape_sites:
                if not value > 0:
                    raise InputError(f"{name} must be > 0, got {value}")
                self.shape_values[name] = float(value)
                site = self.shape_sites[name]
                assert site.shape is not None  # a shape site by construction
                site.shape.kappa = site.kappa = float(value)
                continue
            if name not in self.values:
                raise InputError(f"{name!r} is not a parameter of the spin model")
            self.values[name] = float(value)

    @classmethod
    def from_rcif(
        cls,
        block: PndCrystal,
        moments: Mapping[str, float] | None = None,
        c2: Mapping[str, float] | None = None,
        b_overrides: Mapping[str, complex] | None = None,
        form_factors: Mapping[str, IonFormFactor] | None = None,
        c2_rule: Callable[[float], float] = c2_from_lande,
        p: float = P_FM,
        sites: Mapping[str, SpinSite | DOrbitalSite] | None = None,
    ) -> PndSpinModel:
        """Spin model of an rcif crystal block.

        Every atom with an ``_atom_site_scat`` row becomes a magnetic site: a
        moment along the field if its label is in ``moments``, otherwise its
        susceptibility of the file (``Ciso`` or ``Cani``); a scat row with
        neither is skipped.

        Parameters
        ----------
        block : PndCrystal
        moments : mapping label -> float, optional
            Sites described by a moment along the field, with start values (μB).
        c2 : mapping label -> float, optional
            Explicit C2 per site; the others get ``c2_rule(Landé factor)``.
        b_overrides : mapping, optional
            Scattering lengths (fm) replacing periodictable's, by element or
            species (:func:`chasm.neutron.rcif_sites.rcif_crystal`).
        form_factors : mapping, optional
            Ion name -> :class:`IonFormFactor` replacing periodictable's coefficients.
        c2_rule : callable
            Landé factor of ``_atom_site_scat_Lande`` -> C2 (cryspy's 2/g − 1 by default).
        p : float
            fm per μB.
        sites : mapping label -> SpinSite or DOrbitalSite, optional
            Sites given explicitly: they replace what the file says about
            those labels (e.g. a d-orbital Ti instead of the file's χ, or small
            spherical moments on ligands, which need no scat row). They come
            after the file's sites, in the mapping's order.

        Ordered moments (``_atom_site_moment``) of sites with a scat row and
        no susceptibility become ordered-moment sites (``vector``), copied by
        the block's magnetic group (time reversal included).

        Raises
        ------
        InputError
            A moment along the field in a magnetic group with time reversal
            (an antiferromagnet), a site in ``moments`` or ``c2`` without a
            scat row, an ion without a magnetic form factor (file and line).
        """
        moments = dict(moments or {})
        c2 = dict(c2 or {})
        given = dict(sites or {})
        for label, site in given.items():
            if site.label != label:
                raise InputError(f"sites: key {label!r} holds the site of {site.label!r}")
        clash = sorted(set(given) & (set(moments) | set(c2)))
        if clash:
            raise InputError(f"sites {clash} are given both in 'sites' and in 'moments'/'c2'")
        for label in set(moments) | set(c2):
            if label not in block.scattering:
                raise InputError(
                    f"site {label!r} has no _atom_site_scat row (form factor unknown)",
                    block.path,
                    block.line,
                )
        along_field = bool(moments) or any(
            isinstance(x, DOrbitalSite) or x.moment is not None for x in given.values()
        )
        if along_field and block.time_reversal is not None and np.any(block.time_reversal < 0):
            raise InputError(
                "moments along the field need a ferromagnetic or paramagnetic site; this "
                "block has time-reversed operations (antiferromagnet), not handled yet",
                block.path,
                block.line,
            )
        check_scat_rows(block)
        crystal, b = rcif_crystal(block, b_overrides)
        out: list[SpinSite | DOrbitalSite] = []
        for label, scat in block.scattering.items():
            if label in given:
                continue
            sus = block.susceptibility.get(label)
            ordered = block.moments.get(label)
            if label not in moments and sus is None and ordered is None:
                continue
            table = (form_factors or {}).get(scat.type_symbol) or located(
                ion_form_factor, block, scat.line, scat.type_symbol
            )
            head = (label, table, c2.get(label, c2_rule(scat.lande)), scat.kappa)
            if label in moments:
                out.append(SpinSite(*head, moment=float(moments[label])))
            elif sus is None:
                out.append(SpinSite(*head, vector=ordered))
            else:
                iso = sus.chi_type.lower() == "ciso"
                out.append(SpinSite(*head, chi=sus.chi, isotropic=iso))
        out.extend(given.values())
        return cls(crystal, b, out, p, block.time_reversal)

    def operation_terms(self, hkl: ArrayLike) -> TermsFn:
        """The per-operation terms of the structure-factor engine for ``hkl`` (atom -> (n, n_ops)).

        One :class:`~chasm.scattering.engine.StructureFactorEngine` per call
        (all operations, no centric shortcut): its phases and Debye–Waller
        factors are the symmetry sum of every nuclear and magnetic term here.

        Raises
        ------
        InputError
            Indices that are not integers (e.g. a twin matrix with fractions).
        """
        hkl = np.asarray(hkl, dtype=float).reshape(-1, 3)
        if not np.array_equal(hkl, np.rint(hkl)):
            raise InputError("reflection indices must be integers (a twin matrix with fractions?)")
        models = [NuclearAtom(a.element, 0.0) for a in self.crystal.atoms]
        engine = StructureFactorEngine(
            self.crystal, models, hkl.astype(int), centric_fast_path=False, backend="numpy"
        )
        return engine.operation_terms

    def nuclear(self, hkl: ArrayLike, terms: TermsFn | None = None) -> np.ndarray:
        """F_N (fm), (n,) complex (``terms``: :meth:`operation_terms` of ``hkl``, made if None)."""
        terms = terms or self.operation_terms(hkl)
        return nuclear_structure_factors(self.crystal, hkl, self.b, terms)

    def basis(
        self,
        hkl: ArrayLike,
        e: ArrayLike,
        field: float,
        terms: TermsFn | None = None,
        dkappa: str | None = None,
    ) -> np.ndarray:
        """G_k(h): F_M (fm, chasm Cartesian) per unit value of each parameter, (n, k, 3) complex.

        Parameters
        ----------
        hkl : array_like (n, 3)
        e : array_like (3,)
            Field direction ê (chasm Cartesian frame; normalised here).
        field : float
            Field B (T); only |B| is used (its sign is in ê).
        terms : callable, optional
            :meth:`operation_terms` of ``hkl`` (made if None).
        dkappa : str, optional
            A κ name (:attr:`shape_parameter_names`): dG_k/dκ instead, zero for
            the columns of other sites.
        """
        crystal = self.crystal
        hkl = np.asarray(hkl, dtype=float).reshape(-1, 3)
        terms = terms or self.operation_terms(hkl)
        stol = 0.5 * np.linalg.norm(hkl @ crystal.B.T, axis=1)
        e_unit = np.asarray(e, dtype=float)
        e_unit = e_unit / np.linalg.norm(e_unit)
        b_vec = abs(field) * e_unit
        norm = crystal.A / np.linalg.norm(crystal.A, axis=0)[None, :]  # normalised axes
        out = np.zeros((len(hkl), len(self._columns), 3), dtype=complex)
        done: dict[str, np.ndarray] = {}
        for k, col in enumerate(self._columns):
            site = col.site
            if dkappa is not None and site is not self.shape_sites[dkappa]:
                continue
            if isinstance(site, DOrbitalSite):
                if site.label not in done:
                    layout = self.layouts[site.label]
                    done[site.label] = dorbital_basis(
                        crystal, hkl, layout, site.table, site.kappa, self.p, terms
                    )
                out[:, k, :] = done[site.label][:, col.slot, None] * e_unit
                continue
            if dkappa is None:
                ff = site.form_factors(crystal, hkl, stol)
            else:
                assert site.shape is not None  # dkappa: a shape site
                ff = site.shape.per_operation(crystal, hkl, dkappa=True)
            if col.vec is not None:  # ordered moment: independent of the field
                out[:, k, :] = magnetic_structure_factors(
                    crystal,
                    hkl,
                    {col.atom: norm @ col.vec},
                    {col.atom: ff},
                    self.time_reversal,
                    self.p,
                    terms,
                )
            elif col.chi6 is None:
                amp = moment_along_field(crystal, hkl, col.atom, ff, self.p, terms)
                out[:, k, :] = amp[:, None] * e_unit
            else:
                chi = norm @ u6_to_matrix(col.chi6) @ norm.T
                tensor = susceptibility_structure_tensor(
                    crystal, hkl, {col.atom: chi}, {col.atom: ff}, self.p, terms
                )
                out[:, k, :] = tensor @ b_vec
        return out


def local_axis(
    crystal: Crystal, index: int, label: str, uvw: ArrayLike | None = None
) -> np.ndarray:
    """Unit Cartesian axis n of a uniaxial site tensor, checked against the site symmetry.

    ``uvw``: a direct-lattice direction; None: the unique 3-, 4- or 6-fold axis
    (proper or improper) of the site group.

    Raises
    ------
    InputError
        No or several such axes (give ``axis``), or an axis that an operation of
        the site group does not map onto ±itself (the tensor would break the
        site symmetry).
    """
    ops = crystal.site_symmetry(index)
    rc = crystal.cartesian_rotations()
    det = np.round(np.linalg.det(crystal.rotations.astype(float)))
    if uvw is None:
        found: list[np.ndarray] = []
        for k in ops:
            r = det[k] * rc[k]  # the proper rotation of the operation
            if np.trace(r) < 2.5 and np.trace(r) > -0.5:  # 3-, 4- or 6-fold (trace 0, 1, 2)
                w, v = np.linalg.eig(r)
                n = np.real(v[:, np.argmin(np.abs(w - 1.0))])
                n /= np.linalg.norm(n)
                if not any(abs(abs(n @ m) - 1.0) < 1e-6 for m in found):
                    found.append(n)
        if len(found) != 1:
            raise InputError(
                f"model.spin.{label}: the site symmetry has {len(found)} axes of order 3, 4 or "
                "6, not one; give axis = [u, v, w] (a direct-lattice direction)"
            )
        return found[0]
    uvw_f = np.asarray(uvw, dtype=float).reshape(3)
    n = crystal.A @ uvw_f
    if not np.linalg.norm(n) > 0:
        raise InputError(f"model.spin.{label}.axis: [0, 0, 0] is not a direction")
    n /= np.linalg.norm(n)
    for k in ops:
        if abs(abs(n @ (rc[k] @ n)) - 1.0) > 1e-6:
            raise InputError(
                f"model.spin.{label}.axis: [{', '.join(f'{x:g}' for x in uvw_f)}] is not mapped "
                "onto itself by the site "
                f"symmetry (operation {k + 1}): a uniaxial chi about it breaks the site "
                "symmetry; give the site's own axis"
            )
    axis: np.ndarray = n
    return axis


def site_columns(
    crystal: Crystal, index: int, site: SpinSite
) -> list[tuple[str, np.ndarray | None, float]]:
    """(name, χ6 per unit value or None, start value) of the parameters of one site."""
    if site.moment is not None:
        return [(f"{site.label}.moment", None, float(site.moment))]
    if site.chi_local is not None:
        n = local_axis(crystal, index, site.label, site.axis)
        norm = crystal.A / np.linalg.norm(crystal.A, axis=0)[None, :]
        inv = np.linalg.inv(norm)
        par = np.outer(n, n)
        cols = [inv @ m @ inv.T for m in (par, np.eye(3) - par)]  # normalised crystal axes
        return [
            (f"{site.label}.chi_par", matrix_to_u6(cols[0]), site.chi_local[0]),
            (f"{site.label}.chi_perp", matrix_to_u6(cols[1]), site.chi_local[1]),
        ]
    assert site.chi is not None  # the one of the four left
    if site.isotropic:
        iso = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
        return [(f"{site.label}.chi_iso", iso, float(site.chi[0]))]
    unit = np.eye(6)
    full = np.column_stack([constrain_site_tensor(crystal, index, unit[k]) for k in range(6)])
    keep = [k for k in range(6) if np.max(np.abs(full[:, k])) > 1e-10]
    return [(f"{site.label}.chi{_CHI_LABELS[k]}", full[:, k], float(site.chi[k])) for k in keep]


_AXES = ("mx", "my", "mz")


def moment_site_columns(
    crystal: Crystal, index: int, site: SpinSite, time_reversal: ArrayLike | None = None
) -> list[tuple[str, np.ndarray, float]]:
    """(name, unit moment on the normalised axes, start) of an ordered moment's parameters.

    The moment m of a site obeys its magnetic site group: m = θ det(R) R_f m
    for every operation (R, t, θ) that maps the site onto itself (R_f: R on the
    normalised axes a/|a|, b/|b|, c/|c|). The free components are taken with
    the rule of :func:`~chasm.neutron.rcif_sites.constrain_site_tensor` (the first
    independent ones in the order x, y, z); the others follow linearly. On the
    Mn site of MnF₂ (P4₂'/mnm') only ``Mn.mz`` is free (cryspy's ``0,0,mz``).
    """
    norm = crystal.A / np.linalg.norm(crystal.A, axis=0)[None, :]
    inv = np.linalg.inv(norm)
    ops = crystal.site_symmetry(index)
    rc = crystal.cartesian_rotations()
    det = np.round(np.linalg.det(crystal.rotations.astype(float)))
    theta = np.ones(crystal.n_ops) if time_reversal is None else np.asarray(time_reversal, float)
    proj = np.zeros((3, 3))
    for k in ops:
        proj += theta[k] * det[k] * (inv @ rc[k] @ norm)
    proj /= len(ops)
    u, sv, _ = np.linalg.svd(proj)
    v = u[:, sv > 1e-8]
    if v.shape[1] == 0:
        raise InputError(
            f"magnetic site {site.label}: its magnetic site symmetry allows no ordered moment "
            "(every component is zero by symmetry); remove the site or check the group"
        )
    keep: list[int] = []
    for k in range(3):
        if np.linalg.matrix_rank(v[keep + [k], :], tol=1e-8) == len(keep) + 1:
            keep.append(k)
    full = v @ np.linalg.inv(v[keep, :])  # (3, n_free): components from the free ones
    start = np.asarray(site.vector, dtype=float)
    return [(f"{site.label}.{_AXES[k]}", full[:, j], float(start[k])) for j, k in enumerate(keep)]


class PndData(FlippingRatioSet):
    """A flipping-ratio data set of a PND-only stage (module docstring).

    The magnetic source of :class:`~chasm.refine.flipping_ratios.FlippingRatioSet`
    for a fixed nuclear structure and a linear spin model: F_N and F_Hpol of
    every reflection set are fixed arrays, F_M⊥ = Σ_k c_k G⊥_k with the bases
    G⊥ of each set (rebuilt when a κ of a spin shape moves).

    Parameters
    ----------
    name : str
        Data-set name, prefix of its private parameters.
    dataset : PndDataset
        Reflections (h k l, R, σ(R), excluded flags), wavelength, field,
        signed P, efficiency, UB and its convention, extinction.
    spin : PndSpinModel
        Fixed nuclear structure and the spin model (shared by the PND sets of
        one refinement).
    options : PndOptions, optional

    Raises
    ------
    InputError
        No reflection left, σ(R) ≤ 0, extinction on with radius ≤ 0 or no
        wavelength, ``lambda_half`` < 0, polarised protons without a
        temperature > 0 K (or with P_H outside [−1, 1]) or without H atoms.
    """

    def __init__(
        self, name: str, dataset: PndDataset, spin: PndSpinModel, options: PndOptions | None = None
    ):
        self.spin = spin
        self._field = dataset.field
        self._read(name, dataset, spin.crystal, options)
        b_h = None
        if self.p_h is not None:
            b_h = [
                PROTON_SPIN_AMPLITUDE * self.p_h if a.element == "H" else 0.0
                for a in spin.crystal.atoms
            ]
        # per reflection set: the engine's symmetry terms, fixed F_N and F_Hpol, the basis G⊥
        self._terms, self._f_n, self._f_hpol, self._g_perp = {}, {}, {}, {}
        for tag, rset in self.sets.items():
            terms = self._terms[tag] = spin.operation_terms(rset.hkl)
            self._f_n[tag] = spin.nuclear(rset.hkl, terms)
            self._f_hpol[tag] = (
                None
                if b_h is None
                else nuclear_structure_factors(spin.crystal, rset.hkl, b_h, terms)
            )
            self._g_perp[tag] = self._perp_basis(tag)
        self._kappa_used = dict(spin.shape_values)

    @property
    def f_n(self) -> np.ndarray:
        """F_N (fm) of the kept reflections h, (n,) complex."""
        return self._f_n[""]

    @property
    def f_hpol(self) -> np.ndarray | None:
        """F_Hpol (fm) of the kept reflections h, or None without polarised protons."""
        return self._f_hpol[""]

    @property
    def g_perp(self) -> np.ndarray:
        """G⊥_k(h) (fm per unit parameter, chasm Cartesian) of the kept reflections, (n, k, 3)."""
        return self._g_perp[""]

    # ------------------------------------------------------------------ κ of spin shapes
    def _perp_basis(self, tag: str, dkappa: str | None = None) -> np.ndarray:
        """G⊥ = G − (ĥ·G) ĥ of one reflection set (``dkappa``: dG⊥/dκ of that κ)."""
        rset = self.sets[tag]
        u = rset.h_unit
        g = self.spin.basis(rset.hkl, self.e, self._field, self._terms[tag], dkappa)
        g_perp: np.ndarray = g - np.einsum("nka,na->nk", g, u)[:, :, None] * u[:, None, :]
        return g_perp

    def _refresh(self, p: np.ndarray) -> None:
        """Recompute the bases when a κ of the spin shapes moved (it is not linear)."""
        if not self._i_kappa:
            return
        now = {n: float(p[i]) for n, i in self._i_kappa.items()}
        if now == self._kappa_used:
            return
        self.spin.set_values(now)
        for tag in self.sets:
            self._g_perp[tag] = self._perp_basis(tag)
        self._kappa_used = now

    # ------------------------------------------------------------------ parameters
    def shared_values(
        self, crystal: Crystal | None = None, models: Sequence[AtomModel] | None = None
    ) -> dict[str, float]:
        """Spin-model parameters and their current values (μB, μB/T); shared by all PND sets."""
        return {**self.spin.values, **self.spin.shape_values}

    def _required_names(self) -> list[str]:
        return self.spin.parameter_names + self.spin.shape_parameter_names

    def _bind_source(self, names: list[str], n_struct: int) -> None:
        self._i_spin = np.array([names.index(n) for n in self.spin.parameter_names], dtype=int)
        self._i_kappa = {n: names.index(n) for n in self.spin.shape_parameter_names}

    # ------------------------------------------------------------------ the source
    def _amplitudes(self, p: np.ndarray, mask: np.ndarray, jacobian: bool) -> dict:
        """Fixed F_N and F_Hpol, F_M⊥ = Σ_k c_k G⊥_k of every set; blocks: c and κ.

        dF⊥/dc_k = G⊥_k and dF⊥/dκ = Σ_k c_k dG⊥_k/dκ.
        """
        self._refresh(p)
        c = p[self._i_spin]
        out = {}
        for tag in self.sets:
            g = self._g_perp[tag][mask]
            f_h = self._f_hpol[tag]
            amp = Amplitudes(
                self._f_n[tag][mask],
                np.einsum("nka,k->na", g, c),
                None if f_h is None else f_h[mask],
            )
            if jacobian:
                amp.blocks.append(Block(self._i_spin, d_m=g))
                if self._i_kappa:
                    dk = [
                        np.einsum("nka,k->na", self._perp_basis(tag, name)[mask], c)
                        for name in self._i_kappa
                    ]
                    cols = np.fromiter(self._i_kappa.values(), dtype=int)
                    amp.blocks.append(Block(cols, d_m=np.stack(dk, axis=1)))
            out[tag] = amp
        return out

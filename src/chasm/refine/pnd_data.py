"""Polarised-neutron flipping ratios as a data set of a refinement.

In a :class:`~chasm.refine.refinement.Refinement`, a :class:`PndData` is one
flipping-ratio data block (R_obs, σ(R), signed beam polarisation P, flipper
efficiency e, field B and its direction from the UB matrix, sphere
extinction), evaluated with :mod:`chasm.neutron`. It follows
the interface of :class:`~chasm.refine.xray_data.XrayData` (``initial_values``,
``bind``, ``evaluate``, ``agreement``, ``window``) and adds ``shared_values``:
the spin-model parameters, which every PND set of a refinement shares
(see :class:`~chasm.refine.refinement.Refinement`).

What is refined in this first step
----------------------------------
- The nuclear structure (positions, neutron ADPs, scattering lengths) comes
  from the rcif crystal block and is FIXED: F_N and the magnetic basis below
  are computed once, when the data set is built. The atomic parameters of the
  refinement get ZERO Jacobian columns from a PndData, so a stage must not
  free them on PND data alone (the normal matrix would be singular). The joint
  X-ray / neutron structure model comes later.
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
    :func:`chasm.neutron.model.constrain_site_tensor` with ``"first"``), named
    ``LABEL.chi11``, ``LABEL.chi12``...; the other components follow linearly
    (on the Ho site of Ho2Ti2O7, χ11 = χ22 = χ33 and χ12 = χ13 = χ23, two
    parameters). Isotropic (``Ciso``): one parameter ``LABEL.chi_iso``,
    χ = chi_iso · 1 on the normalised axes (as in :mod:`chasm.neutron.model`;
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
R is :func:`chasm.neutron.flipping.flipping_ratio` (vector form, extinction per
channel, chasm's Cartesian frame) with F_M⊥ = Σ_k c_k G_k⊥. Its analytic
derivatives give the Jacobian:

    dR/dc_k = Σ_a [∂R/∂Re F_M⊥,a · Re G_k⊥,a + ∂R/∂Im F_M⊥,a · Im G_k⊥,a],

and ∂R/∂radius, ∂R/∂mosaicity, ∂R/∂P directly for the private parameters
(checked by central finite differences in tests/test_pnd_refinement.py).

Parameters of a data set named NAME
-----------------------------------
- shared (declared by :meth:`PndData.shared_values`, added once by the
  refinement): the spin parameters above;
- private (:meth:`PndData.initial_values`): ``NAME.extinction_radius`` (µm)
  and ``NAME.mosaicity`` (cryspy's ``_extinction_mosaicity``, see
  :mod:`chasm.neutron.extinction`) when extinction is on, ``NAME.polarisation``
  (signed P) only with ``PndOptions(refine_polarisation=True)``,
  ``NAME.lambda_half`` (α of the λ/2 contamination) only with
  ``PndOptions(refine_lambda_half=True)``. Which of them
  move is the stage's choice (:class:`~chasm.refine.refinement.Stage`): all are
  fixed unless a stage frees them.

Optional effects (:mod:`chasm.neutron.flipping`; :class:`PndOptions`): λ/2
contamination (``lambda_half`` = α > 0 or ``refine_lambda_half``: F_N(2h) and
the basis G_k⊥(2h) are precomputed like those of h, 2h having the direction of
h) and polarised protons (``hydrogen_polarisation``: F_Hpol of the fixed H
atoms of the rcif crystal, a fixed array). Both are off by default, and then
nothing is computed for them.

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

import numpy as np

from chasm.crystal.adp import matrix_to_u6, u6_to_matrix
from chasm.crystal.structure import Crystal
from chasm.data.agreement import Agreement
from chasm.density.model import NuclearAtom
from chasm.errors import InputError
from chasm.neutron.dorbital_site import DOrbitalLayout, DOrbitalSite, dorbital_basis
from chasm.neutron.extinction import SphereExtinction
from chasm.neutron.flipping import (
    PROTON_SPIN_AMPLITUDE,
    HalfWavelength,
    TwinDomain,
    flipping_ratio,
    flipping_statistics,
    proton_polarisation,
)
from chasm.neutron.geometry import field_direction, field_geometry
from chasm.neutron.magnetic_ff import IonFormFactor, c2_from_lande, ion_form_factor
from chasm.neutron.model import PndModel, _located, constrain_site_tensor
from chasm.neutron.rcif import PndCrystal, PndDataset
from chasm.neutron.spin_shape import SpinShape
from chasm.neutron.structure_factors import (
    P_FM,
    magnetic_structure_factors,
    moment_along_field,
    nuclear_structure_factors,
    susceptibility_structure_tensor,
)
from chasm.refine.problem import Evaluation
from chasm.scattering.engine import StructureFactorEngine
from chasm.scattering.xray import mask_resolution

__all__ = [
    "SpinSite",
    "PndSpinModel",
    "PndOptions",
    "PndData",
    "moment_site_columns",
    "local_axis",
]

_CHI_LABELS = ("11", "22", "33", "12", "13", "23")

#: the λ/2 models of :class:`PndOptions` (``lambda_half_model``)
LAMBDA_HALF_MODELS = ("polarised", "unpolarised")


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

    def form_factor(self, stol) -> np.ndarray:
        """f(s) = ⟨j0⟩(s/κ) + C2⟨j2⟩(s/κ), s = sinθ/λ in Å⁻¹."""
        return self.table.dipole(stol, self.c2, self.kappa)[0]

    def form_factors(self, crystal: Crystal, hkl, stol) -> np.ndarray:
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
        sites: Sequence[SpinSite],
        p: float = P_FM,
        time_reversal: Sequence[int] | None = None,
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
            for name, chi6, start in _site_columns(crystal, index, site):
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
                self.shape_sites[name].shape.kappa = float(value)
                self.shape_sites[name].kappa = float(value)
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
        b_overrides, form_factors, c2_rule
            As in :meth:`chasm.neutron.model.PndModel.from_rcif`.
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
        nuclear = PndModel.from_rcif(block, b_overrides, form_factors, c2_rule)
        out: list[SpinSite | DOrbitalSite] = []
        for label, scat in block.scattering.items():
            if label in given:
                continue
            sus = block.susceptibility.get(label)
            ordered = block.moments.get(label)
            if label not in moments and sus is None and ordered is None:
                continue
            table = (form_factors or {}).get(scat.type_symbol) or _located(
                ion_form_factor, block, scat.line, scat.type_symbol
            )
            common = {
                "label": label,
                "table": table,
                "c2": c2.get(label, c2_rule(scat.lande)),
                "kappa": scat.kappa,
            }
            if label in moments:
                out.append(SpinSite(**common, moment=float(moments[label])))
            elif sus is None:
                out.append(SpinSite(**common, vector=ordered))
            else:
                iso = sus.chi_type.lower() == "ciso"
                out.append(SpinSite(**common, chi=sus.chi, isotropic=iso))
        out.extend(given.values())
        return cls(nuclear.crystal, nuclear.b, out, p, block.time_reversal)

    def operation_terms(self, hkl):
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

    def nuclear(self, hkl, terms=None) -> np.ndarray:
        """F_N (fm), (n,) complex (``terms``: :meth:`operation_terms` of ``hkl``, made if None)."""
        terms = terms or self.operation_terms(hkl)
        return nuclear_structure_factors(self.crystal, hkl, self.b, terms)

    def basis(self, hkl, e, field: float, terms=None, dkappa: str | None = None) -> np.ndarray:
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
        e = np.asarray(e, dtype=float) / np.linalg.norm(e)
        b_vec = abs(field) * e
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
                out[:, k, :] = done[site.label][:, col.slot, None] * e
                continue
            if dkappa is None:
                ff = site.form_factors(crystal, hkl, stol)
            else:
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
                out[:, k, :] = amp[:, None] * e
            else:
                chi = norm @ u6_to_matrix(col.chi6) @ norm.T
                tensor = susceptibility_structure_tensor(
                    crystal, hkl, {col.atom: chi}, {col.atom: ff}, self.p, terms
                )
                out[:, k, :] = tensor @ b_vec
        return out


def local_axis(crystal: Crystal, index: int, label: str, uvw=None) -> np.ndarray:
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
    n = crystal.A @ np.asarray(uvw, dtype=float)
    if not np.linalg.norm(n) > 0:
        raise InputError(f"model.spin.{label}.axis: [0, 0, 0] is not a direction")
    n /= np.linalg.norm(n)
    for k in ops:
        if abs(abs(n @ (rc[k] @ n)) - 1.0) > 1e-6:
            raise InputError(
                f"model.spin.{label}.axis: [{', '.join(f'{x:g}' for x in uvw)}] is not mapped "
                "onto itself by the site "
                f"symmetry (operation {k + 1}): a uniaxial chi about it breaks the site "
                "symmetry; give the site's own axis"
            )
    return n


def _site_columns(crystal: Crystal, index: int, site: SpinSite):
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
    if site.isotropic:
        iso = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
        return [(f"{site.label}.chi_iso", iso, float(site.chi[0]))]
    unit = np.eye(6)
    full = np.column_stack([constrain_site_tensor(crystal, index, unit[k]) for k in range(6)])
    keep = [k for k in range(6) if np.max(np.abs(full[:, k])) > 1e-10]
    return [(f"{site.label}.chi{_CHI_LABELS[k]}", full[:, k], float(site.chi[k])) for k in keep]


_AXES = ("mx", "my", "mz")


def moment_site_columns(crystal: Crystal, index: int, site: SpinSite, time_reversal=None):
    """(name, unit moment on the normalised axes, start) of an ordered moment's parameters.

    The moment m of a site obeys its magnetic site group: m = θ det(R) R_f m
    for every operation (R, t, θ) that maps the site onto itself (R_f: R on the
    normalised axes a/|a|, b/|b|, c/|c|). The free components are taken with
    the rule of :func:`~chasm.neutron.model.constrain_site_tensor` (the first
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
        Use the data set's twin domains (cryspy's ``_jana_twin``; PndData only):
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
    def from_config(cls, cfg: dict, extinction: bool | None, **extra: object) -> PndOptions:
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


def asymmetry_observed(r_obs, sigma) -> tuple[np.ndarray, np.ndarray]:
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


def _hydrogen_polarisation(name: str, o: PndOptions, field: float, crystal) -> float | None:
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
    """What every flipping-ratio data set of a refinement shares.

    The observations after the cut-offs (h k l, R, σ(R), sinθ/λ), the field
    direction ê in chasm's Cartesian frame, P, e, λ and the sphere-extinction
    settings, the stage window, and the ratios, evaluation and agreement built
    on a subclass's ``calculate(p, jacobian) -> (mask, R, J)``. Subclasses:
    :class:`PndData` (fixed nuclear structure, linear spin model) and
    :class:`chasm.refine.flipping_data.FlippingData` (the refinement's
    structure model through the engine).
    """

    kind = "pnd"
    user_weight = 1.0

    def _read(
        self,
        name: str,
        dataset: PndDataset,
        crystal,
        options: PndOptions | None,
        field_direction_cart=None,
    ):
        """Keep the observations; returns the field geometry and the kept mask.

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
        return geom, keep

    #: Observations left out of every evaluation (bool over the kept ratios), the free set
    #: of a cross-validation fold (:mod:`chasm.cv`); None leaves none out.
    held_out: np.ndarray | None = None

    #: Weight factor of every kept ratio in fits (a bootstrap replicate's draw counts,
    #: :mod:`chasm.cv.bootstrap`); None: 1 for all. Agreement figures ignore it.
    multiplicity: np.ndarray | None = None

    def hold_out(self, mask: np.ndarray | None) -> None:
        """Leave the ratios ``mask`` out of fits and agreement figures (None: none)."""
        self.held_out = None if mask is None else np.array(mask, dtype=bool)
        self._engines = {}

    def active(self) -> np.ndarray:
        """Mask of the reflections inside the current stage window and not held out."""
        mask = mask_resolution(self.stol, *self.window)
        return mask if self.held_out is None else mask & ~self.held_out

    def _no_reflection(self) -> InputError:
        return InputError(
            f"dataset {self.name!r}: no reflection in the stage window "
            f"sinθ/λ {self.window}; widen it"
        )

    def sphere_extinction(
        self, mosaicity: float, radius: float, volume: float, mask: np.ndarray, half: bool = False
    ) -> SphereExtinction:
        """The extinction model of the reflections in ``mask`` (radius µm).

        With ``half``, that of their reflections 2h at λ/2: sinθ/λ doubles and
        λ halves, so θ (cos 2θ = 1 − 2(λ sinθ/λ)²) is that of h, while the
        extinction arguments (∝ λ², λ³) see λ/2.
        """
        lam, stol = self.wavelength, self.stol[mask]
        if half:
            lam, stol = 0.5 * lam, 2.0 * stol
        return SphereExtinction.from_stol(
            self.extinction_model, mosaicity, radius, lam, volume, stol
        )

    #: Fit the asymmetry A = (R − 1)/(R + 1) instead of R (:class:`PndOptions`).
    asymmetry = False

    def evaluate(self, p: np.ndarray) -> Evaluation:
        """R_obs, R_calc, w = 1/σ(R)² and dR/dp (full vector) at p (A and dA/dp with asymmetry)."""
        mask, ratio, J = self.calculate(p, jacobian=True)
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


class PndData(FlippingRatioSet):
    """A flipping-ratio data set in a refinement (module docstring).

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

    kind = "pnd"
    user_weight = 1.0

    def __init__(
        self, name: str, dataset: PndDataset, spin: PndSpinModel, options: PndOptions | None = None
    ):
        self.spin = spin
        geom, keep = self._read(name, dataset, spin.crystal, options)
        self.q = geom.q[keep]
        terms = spin.operation_terms(self.hkl)  # the engine's symmetry sum of these rows
        self.f_n = spin.nuclear(self.hkl, terms)
        h_unit = geom.h_unit[keep]

        # the reflection sets whose magnetic basis depends on the spin model (κ may move):
        # key -> (hkl, engine terms, unit vectors of the scattering vectors)
        self._field = dataset.field
        self._basis_sets: dict[tuple, tuple] = {("h",): (self.hkl, terms, h_unit)}
        self.g_perp = self._perp_basis(("h",))
        # optional effects (chasm.neutron.flipping): fixed arrays, the structure is fixed
        self.f_hpol = self.f_hpol_half = None
        if self.p_h is not None:
            b = [
                PROTON_SPIN_AMPLITUDE * self.p_h if a.element == "H" else 0.0
                for a in spin.crystal.atoms
            ]
            self.f_hpol = nuclear_structure_factors(spin.crystal, self.hkl, b, terms)
        if self.half_on:
            hkl2 = 2 * np.asarray(self.hkl)
            terms2 = spin.operation_terms(hkl2)
            self.f_n_half = spin.nuclear(hkl2, terms2)
            self._basis_sets[("half",)] = (hkl2, terms2, h_unit)  # 2h has the direction of h
            self.g_perp_half = self._perp_basis(("half",))
            if self.p_h is not None:
                self.f_hpol_half = nuclear_structure_factors(spin.crystal, hkl2, b, terms2)
        # twin domains (cryspy's _jana_twin): h' = M h, same field direction, P and e
        self.twins = list(dataset.twins) if self.options.twins else []
        self._domains = []
        for k, twin in enumerate(self.twins):
            hkl_t = np.asarray(self.hkl, dtype=float) @ np.asarray(twin.matrix, float).T
            geom_t = field_geometry(hkl_t, spin.crystal.B, self.e)
            u_t = geom_t.h_unit
            terms_t = spin.operation_terms(hkl_t)
            self._basis_sets[("twin", k, "g_perp")] = (hkl_t, terms_t, u_t)
            dom = {
                "stol": geom_t.stol,
                "f_n": spin.nuclear(hkl_t, terms_t),
                "g_perp": self._perp_basis(("twin", k, "g_perp")),
                "f_hpol": None,
            }
            if self.p_h is not None:
                dom["f_hpol"] = nuclear_structure_factors(spin.crystal, hkl_t, b, terms_t)
            if self.half_on:
                terms_t2 = spin.operation_terms(2 * hkl_t)
                dom["f_n_half"] = spin.nuclear(2 * hkl_t, terms_t2)
                self._basis_sets[("twin", k, "g_perp_half")] = (2 * hkl_t, terms_t2, u_t)
                dom["g_perp_half"] = self._perp_basis(("twin", k, "g_perp_half"))
                dom["f_hpol_half"] = (
                    None
                    if self.p_h is None
                    else nuclear_structure_factors(spin.crystal, 2 * hkl_t, b, terms_t2)
                )
            self._domains.append(dom)
        self._kappa_used = dict(spin.shape_values)

    # ------------------------------------------------------------------ κ of spin shapes
    def _perp_basis(self, key: tuple, dkappa: str | None = None) -> np.ndarray:
        """G⊥ = G − (ĥ·G) ĥ of one reflection set (``dkappa``: dG⊥/dκ of that κ)."""
        hkl, terms, u = self._basis_sets[key]
        g = self.spin.basis(hkl, self.e, self._field, terms, dkappa)
        return g - np.einsum("nka,na->nk", g, u)[:, :, None] * u[:, None, :]

    def _set_basis(self, key: tuple, value: np.ndarray) -> None:
        if key == ("h",):
            self.g_perp = value
        elif key == ("half",):
            self.g_perp_half = value
        else:
            self._domains[key[1]][key[2]] = value

    def _refresh(self, p: np.ndarray) -> None:
        """Recompute the bases when a κ of the spin shapes moved (it is not linear)."""
        if not self._i_kappa:
            return
        now = {n: float(p[i]) for n, i in self._i_kappa.items()}
        if now == self._kappa_used:
            return
        self.spin.set_values(now)
        for key in self._basis_sets:
            self._set_basis(key, self._perp_basis(key))
        self._kappa_used = now

    def _basis_of(self, key: tuple) -> np.ndarray:
        """The current G⊥ of a reflection set (:attr:`_basis_sets` key)."""
        if key == ("h",):
            return self.g_perp
        if key == ("half",):
            return self.g_perp_half
        return self._domains[key[1]][key[2]]

    @staticmethod
    def _channel(key: tuple) -> str:
        """Prefix of the F_M⊥ derivatives of :func:`flipping_ratio` for a reflection set."""
        if key[0] != "twin":
            return {"h": "", "half": "half_"}[key[0]]
        return f"twin{key[1] + 1}_" + ("half_" if key[2] == "g_perp_half" else "")

    def _spin_jacobian(self, d: dict, mask: np.ndarray, spin: np.ndarray, J: np.ndarray) -> None:
        """dR/dc (linear spin parameters) and dR/dκ: the chain rule through F_M⊥ of every set.

        dR/dθ = Σ_sets Σ_a [∂R/∂Re F⊥,a Re dF⊥,a/dθ + ∂R/∂Im F⊥,a Im dF⊥,a/dθ], with
        dF⊥/dc_k = G⊥_k and dF⊥/dκ = Σ_k c_k dG⊥_k/dκ.
        """
        for key in self._basis_sets:
            tag = self._channel(key)
            d_re, d_im = d[f"{tag}f_m_perp_real"], d[f"{tag}f_m_perp_imag"]
            g = self._basis_of(key)[mask]
            J[:, self._i_spin] += np.einsum("na,nka->nk", d_re, g.real)
            J[:, self._i_spin] += np.einsum("na,nka->nk", d_im, g.imag)
            for name, i in self._i_kappa.items():
                dfm = np.einsum("nka,k->na", self._perp_basis(key, name)[mask], spin)
                J[:, i] += np.einsum("na,na->n", d_re, dfm.real)
                J[:, i] += np.einsum("na,na->n", d_im, dfm.imag)

    # ------------------------------------------------------------------ parameters
    @property
    def radius_name(self) -> str | None:
        return f"{self.name}.extinction_radius" if self.extinction_on else None

    @property
    def mosaicity_name(self) -> str | None:
        return f"{self.name}.mosaicity" if self.extinction_on else None

    @property
    def polarisation_name(self) -> str | None:
        return f"{self.name}.polarisation" if self.options.refine_polarisation else None

    @property
    def lambda_half_name(self) -> str | None:
        return f"{self.name}.lambda_half" if self.options.refine_lambda_half else None

    @property
    def twin_names(self) -> list[str]:
        """``NAME.twin1``, ``NAME.twin2``...: volume fractions of the other twin domains."""
        return [f"{self.name}.twin{k}" for k in range(1, len(self.twins) + 1)]

    def parameter_names(self) -> list[str]:
        """Private parameters of the data set, in order."""
        names = [
            self.radius_name,
            self.mosaicity_name,
            self.polarisation_name,
            self.lambda_half_name,
            *self.twin_names,
        ]
        return [n for n in names if n]

    def shared_values(self, crystal=None, models=None) -> dict[str, float]:
        """Spin-model parameters and their current values (μB, μB/T); shared by all PND sets."""
        return {**self.spin.values, **self.spin.shape_values}

    def initial_values(self, crystal=None, models=None) -> dict[str, float]:
        """Start values of the private parameters (radius µm, mosaicity, P, α)."""
        values = {
            self.radius_name: self.radius,
            self.mosaicity_name: self.mosaicity,
            self.polarisation_name: self.polarisation,
            self.lambda_half_name: self.lambda_half,
        }
        values.update(
            {n: float(t.fraction) for n, t in zip(self.twin_names, self.twins, strict=True)}
        )
        return {k: v for k, v in values.items() if k}

    def bind(self, crystal, models, names: list[str], n_struct: int) -> None:
        """Attach to a refinement's parameter vector (the crystal and models are not used).

        Raises
        ------
        InputError
            A spin or private parameter is missing from ``names``.
        """
        names = list(names)
        own = self.spin.parameter_names + self.spin.shape_parameter_names + self.parameter_names()
        missing = [n for n in own if n not in names]
        if missing:
            raise InputError(f"dataset {self.name!r}: parameters {missing} are not in the vector")
        self._n_full = len(names)
        self._i_spin = np.array([names.index(n) for n in self.spin.parameter_names], dtype=int)
        self._i_kappa = {n: names.index(n) for n in self.spin.shape_parameter_names}
        self._i_radius = names.index(self.radius_name) if self.radius_name else None
        self._i_mosaicity = names.index(self.mosaicity_name) if self.mosaicity_name else None
        self._i_pol = names.index(self.polarisation_name) if self.polarisation_name else None
        self._i_half = names.index(self.lambda_half_name) if self.lambda_half_name else None
        self._i_twin = [names.index(n) for n in self.twin_names]
        self._bound = True

    # ------------------------------------------------------------------ evaluation
    def _extinction(
        self, p: np.ndarray, mask: np.ndarray, half: bool = False, stol=None
    ) -> SphereExtinction | None:
        """Sphere extinction of the kept reflections in ``mask`` (``stol``: a twin's h')."""
        if not self.extinction_on:
            return None
        if stol is None:
            return self.sphere_extinction(
                float(p[self._i_mosaicity]),
                float(p[self._i_radius]),
                self.spin.crystal.volume,
                mask,
                half,
            )
        lam, st = self.wavelength, np.asarray(stol)[mask]
        if half:
            lam, st = 0.5 * lam, 2.0 * st
        return SphereExtinction.from_stol(
            self.extinction_model,
            float(p[self._i_mosaicity]),
            float(p[self._i_radius]),
            lam,
            self.spin.crystal.volume,
            st,
        )

    def _twin_domains(self, p: np.ndarray, mask: np.ndarray, spin: np.ndarray) -> list:
        """The :class:`~chasm.neutron.flipping.TwinDomain` of each twin at p."""
        out = []
        for dom, i_frac in zip(self._domains, self._i_twin, strict=True):
            half = None
            if self.half_on:
                half = HalfWavelength(
                    dom["f_n_half"][mask],
                    np.einsum("nka,k->na", dom["g_perp_half"][mask], spin),
                    self._extinction(p, mask, not self.half_unpolarised, dom["stol"]),
                    None if dom["f_hpol_half"] is None else dom["f_hpol_half"][mask],
                    unpolarised=self.half_unpolarised,
                )
            out.append(
                TwinDomain(
                    float(p[i_frac]),
                    dom["f_n"][mask],
                    np.einsum("nka,k->na", dom["g_perp"][mask], spin),
                    self._extinction(p, mask, stol=dom["stol"]),
                    None if dom["f_hpol"] is None else dom["f_hpol"][mask],
                    half,
                )
            )
        return out

    def calculate(self, p: np.ndarray, jacobian: bool = True):
        """Calculated ratios at p over the stage window.

        Returns
        -------
        mask : ndarray (n_kept,) bool
            Reflections used.
        r_calc : ndarray (n_used,)
        J : ndarray (n_used, n_full) or None
            dR/dp over the full vector (zero for atomic parameters).
        """
        if not self._bound:
            raise RuntimeError("PndData.bind must be called first")
        p = np.asarray(p, dtype=float)
        mask = self.active()
        if not np.any(mask):
            raise self._no_reflection()
        self._refresh(p)
        g_perp = self.g_perp[mask]
        f_m_perp = np.einsum("nka,k->na", g_perp, p[self._i_spin])
        pol = self.polarisation if self._i_pol is None else float(p[self._i_pol])
        extra = {}
        if self.f_hpol is not None:
            extra["f_hpol"] = self.f_hpol[mask]
        if self.half_on:
            g_half = self.g_perp_half[mask]
            extra["half"] = HalfWavelength(
                self.f_n_half[mask],
                np.einsum("nka,k->na", g_half, p[self._i_spin]),
                self._extinction(p, mask, half=not self.half_unpolarised),
                None if self.f_hpol_half is None else self.f_hpol_half[mask],
                unpolarised=self.half_unpolarised,
            )
            extra["lambda_half"] = self.lambda_half if self._i_half is None else p[self._i_half]
        if self._domains:
            extra["twins"] = self._twin_domains(p, mask, p[self._i_spin])
        out = flipping_ratio(
            self.f_n[mask],
            f_m_perp,
            self.e,
            pol,
            self.efficiency,
            self._extinction(p, mask),
            derivatives=jacobian,
            **extra,
        )
        if not jacobian:
            return mask, out, None
        ratio, d = out
        J = np.zeros((len(ratio), self._n_full))
        self._spin_jacobian(d, mask, p[self._i_spin], J)
        if self.extinction_on:
            J[:, self._i_radius] = d["radius"]
            J[:, self._i_mosaicity] = d["mosaicity"]
        if self._i_pol is not None:
            J[:, self._i_pol] = d["polarisation"]
        if self._i_half is not None:
            J[:, self._i_half] = d["lambda_half"]
        for k, i_frac in enumerate(self._i_twin, 1):
            J[:, i_frac] = d[f"twin_fraction{k}"]
        return mask, ratio, J

"""The independent reference of the PND route: a model of an rcif block and its ratios.

**Test oracle only.** No production path imports this module (the refined
route is :mod:`chasm.refine.flipping_ratios` with its sources
:class:`~chasm.refine.pnd_data.PndData` and
:class:`~chasm.refine.flipping_data.FlippingData`; tests/test_pnd_oracle.py
checks that importing and running them never loads it). What the refined
route shares with it lives in :mod:`.rcif_sites` (the crystal of an rcif
block, the site-tensor rule) and :mod:`.structure_factors` (the
per-operation weights of moments and tensors); what is independent here is
the symmetry sum (:func:`~chasm.neutron.structure_factors.site_sums`, its own
phases and Debye–Waller factors, where the refined route uses the
structure-factor engine), the assembly of F_M from the file's χ and moments
(no linear basis), and one plain call of the ratio per data set (no reflection
sets, no Jacobian chain). The tests hold the two routes against each other and
against cryspy.

:class:`PndModel` ties together the crystal (chasm :class:`Crystal`, neutron
ADPs), the scattering lengths, and the magnetic sites (form-factor ion, C2, κ,
and either an ordered moment or a site susceptibility). :func:`calculate`
evaluates one flipping-ratio data set: geometry from the UB matrix, F_N, F_M,
F_M⊥, extinction, R and the agreement statistics.

Frames of the tensors in the file: cryspy gives χ_ij (and ordered-moment
components) on the normalised crystal axes a/|a|, b/|b|, c/|c| and turns them
into Cartesian ones with its ``m_m_norm`` matrix (``Crystal
.calc_main_axes_of_magnetization_ellipsoids``): χ_cart = N χ Nᵀ, m_cart = N m,
N = A diag(1/a, 1/b, 1/c). We do the same in chasm's frame. For the orthogonal
cells of the data in hand N = 1 in both frames; the non-orthogonal case
follows cryspy's documented intent and has not been checked against cryspy.

Reproducing cryspy digit for digit
----------------------------------
Four inputs differ between cryspy and chasm's defaults, each documented where
it lives: the scattering-length table (cryspy: Sears 1992; pass
``b_overrides``), the ⟨j2⟩ coefficients of some ions (periodictable rounds
Ho³⁺ a, b, c to three decimals; pass ``form_factors`` with the ITC values),
p = 2.695 fm/μB (``calculate(..., p=CRYSPY_P)``), and the rule that makes χ
obey its site symmetry (``chi_rule="first"``, the default). With all four,
the 94 Ho2Ti2O7 ratios agree with cryspy's to 6 × 10⁻⁸ relative
(tests/test_neutron_flipping.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from chasm.crystal.adp import u6_to_matrix
from chasm.crystal.structure import Crystal

from .extinction import SphereExtinction
from .flipping import FlippingStatistics, flipping_ratio, flipping_statistics
from .geometry import FieldGeometry, field_direction, field_geometry
from .magnetic_ff import IonFormFactor, c2_from_lande, ion_form_factor
from .rcif import PndCrystal, PndDataset
from .rcif_sites import (  # re-exported: their home was here
    check_scat_rows,
    constrain_site_tensor,
    is_dummy,
    located,
    normalised_axes,
    rcif_crystal,
)
from .structure_factors import (
    P_FM,
    magnetic_structure_factors,
    nuclear_structure_factors,
    susceptibility_structure_tensor,
)

__all__ = [
    "MagneticSite",
    "PndModel",
    "FlippingCalculation",
    "calculate",
    "constrain_site_tensor",
    "rcif_crystal",
    "is_dummy",
    "located",
    "normalised_axes",
]


@dataclass
class MagneticSite:
    """Magnetic description of one atom of the crystal.

    Parameters
    ----------
    index : int
        Atom index in ``crystal.atoms``.
    table : IonFormFactor
        ⟨j0⟩, ⟨j2⟩ coefficients of the ion (``ion_form_factor('Ho3+')``).
    c2 : float
        Dipole coefficient: f = ⟨j0⟩ + C2⟨j2⟩.
    kappa : float
        Radial expansion κ.
    chi : ndarray (3, 3) or None
        Site susceptibility (μB/T), chasm Cartesian frame.
    moment : ndarray (3,) or None
        Ordered moment (μB), chasm Cartesian frame.
    """

    index: int
    table: IonFormFactor
    c2: float = 0.0
    kappa: float = 1.0
    chi: np.ndarray | None = None
    moment: np.ndarray | None = None

    def form_factor(self, stol) -> np.ndarray:
        """f(s) = ⟨j0⟩(s/κ) + C2 ⟨j2⟩(s/κ)."""
        return self.table.dipole(stol, self.c2, self.kappa)[0]


@dataclass
class PndModel:
    """Crystal, scattering lengths and magnetic sites.

    Parameters
    ----------
    crystal : Crystal
        Positions and neutron ADPs.
    b : list of complex
        Coherent scattering length per atom (fm).
    sites : list of MagneticSite
    time_reversal : ndarray (n_ops,) or None
        θ = ±1 per operation for ordered moments in a magnetic group.
    """

    crystal: Crystal
    b: list[complex]
    sites: list[MagneticSite] = field(default_factory=list)
    time_reversal: np.ndarray | None = None

    @classmethod
    def from_rcif(
        cls,
        block: PndCrystal,
        b_overrides: Mapping[str, complex] | None = None,
        form_factors: Mapping[str, IonFormFactor] | None = None,
        c2_rule: Callable[[float], float] = c2_from_lande,
        chi_rule: str = "first",
    ) -> PndModel:
        """Model of an rcif crystal block.

        Parameters
        ----------
        block : PndCrystal
        b_overrides : mapping, optional
            Scattering lengths (fm) replacing periodictable's, by element or
            species (see :mod:`.scattering_lengths`).
        form_factors : mapping, optional
            Ion name -> :class:`IonFormFactor` replacing periodictable's
            coefficients (e.g. the four-decimal ITC values where periodictable
            rounds them).
        c2_rule : callable
            Landé factor of ``_atom_site_scat_Lande`` -> C2. The default,
            :func:`c2_from_lande` (2/g − 1), is cryspy's.
        chi_rule : {"first", "average"}
            How χ is made to obey its site symmetry (see
            :func:`constrain_site_tensor`); "first" is cryspy's rule.
        """
        crystal, b = rcif_crystal(block, b_overrides)
        norm = normalised_axes(crystal)
        labels = [a.label for a in crystal.atoms]
        sites = []
        for label, scat in block.scattering.items():
            chi = moment = None
            index = labels.index(label)
            if label in block.susceptibility:
                sus = block.susceptibility[label]
                chi6 = constrain_site_tensor(crystal, index, sus.chi, chi_rule)
                chi = norm @ u6_to_matrix(chi6) @ norm.T
            if label in block.moments:
                moment = norm @ block.moments[label]
            if chi is None and moment is None:
                continue
            table = (form_factors or {}).get(scat.type_symbol) or located(
                ion_form_factor, block, scat.line, scat.type_symbol
            )
            sites.append(MagneticSite(index, table, c2_rule(scat.lande), scat.kappa, chi, moment))
        check_scat_rows(block)
        return cls(crystal, b, sites, block.time_reversal)

    def nuclear(self, hkl) -> np.ndarray:
        """F_N (fm), (n,) complex."""
        return nuclear_structure_factors(self.crystal, hkl, self.b)

    def magnetic(self, hkl, field_vector, p: float = P_FM) -> np.ndarray:
        """F_M (fm, chasm Cartesian), (n, 3) complex, for a field vector B (T).

        Ordered moments and induced moments (m = χ B) add up.
        """
        hkl = np.asarray(hkl).reshape(-1, 3)
        stol = 0.5 * np.linalg.norm(hkl @ self.crystal.B.T, axis=1)
        out = np.zeros((len(hkl), 3), dtype=complex)
        chi = {s.index: s.chi for s in self.sites if s.chi is not None}
        moments = {s.index: s.moment for s in self.sites if s.moment is not None}
        ff = {s.index: s.form_factor(stol) for s in self.sites}
        if chi:
            tensor = susceptibility_structure_tensor(self.crystal, hkl, chi, ff, p)
            out += np.einsum("nab,b->na", tensor, np.asarray(field_vector, dtype=float))
        if moments:
            out += magnetic_structure_factors(self.crystal, hkl, moments, ff, self.time_reversal, p)
        return out


@dataclass
class FlippingCalculation:
    """Result of :func:`calculate` for one data set."""

    dataset: PndDataset
    geometry: FieldGeometry
    f_n: np.ndarray
    f_m: np.ndarray
    f_m_perp: np.ndarray
    ratio: np.ndarray
    statistics: FlippingStatistics
    extinction: SphereExtinction | None
    derivatives: dict | None = None


def calculate(
    model: PndModel,
    dataset: PndDataset,
    p: float = P_FM,
    derivatives: bool = False,
    n_parameters: int = 0,
) -> FlippingCalculation:
    """Flipping ratios of one data set and their agreement with the observations.

    Parameters
    ----------
    model : PndModel
    dataset : PndDataset
        Uses its UB (field direction), field, P, e, extinction and reflections.
    p : float
        fm per μB (:data:`~.structure_factors.P_FM`, or ``CRYSPY_P``).
    derivatives : bool
        Also return dR/d(F_N, F_M⊥, P, e, extinction parameters).
    n_parameters : int
        For the GOF of the statistics.
    """
    crystal = model.crystal
    e = field_direction(dataset.ub, crystal.B, dataset.ub_type, dataset.field)
    geom = field_geometry(dataset.hkl, crystal.B, e)
    f_n = model.nuclear(dataset.hkl)
    f_m = model.magnetic(dataset.hkl, abs(dataset.field) * e, p)
    h = geom.h_unit
    f_m_perp = f_m - np.sum(f_m * h, axis=1)[:, None] * h
    extinction = None
    if dataset.extinction_model is not None and (dataset.radius > 0):
        extinction = SphereExtinction.from_stol(
            dataset.extinction_model,
            dataset.mosaicity,
            dataset.radius,
            dataset.wavelength,
            crystal.volume,
            geom.stol,
        )
    result = flipping_ratio(
        f_n,
        f_m_perp,
        e,
        dataset.polarisation,
        dataset.efficiency,
        extinction,
        derivatives=derivatives,
    )
    ratio, derivs = result if derivatives else (result, None)
    stats = flipping_statistics(dataset.fr, dataset.fr_sigma, ratio, dataset.excluded, n_parameters)
    return FlippingCalculation(dataset, geom, f_n, f_m, f_m_perp, ratio, stats, extinction, derivs)

"""Polarised-neutron flipping ratios (chasm.neutron).

Modules
-------
- :mod:`.scattering_lengths`: coherent b (fm) from periodictable, with overrides.
- :mod:`.magnetic_ff`: ⟨j0⟩, ⟨j2⟩, ⟨j4⟩ of ions and the dipole form factor.
- :mod:`.rcif`: reader for cryspy's ``.rcif`` PND files.
- :mod:`.geometry`: field direction ê and sin²α from a UB matrix (CCSL convention).
- :mod:`.structure_factors`: F_N, F_M of ordered moments and of site susceptibilities.
- :mod:`.extinction`: cryspy's sphere extinction (primary × secondary Becker–Coppens).
- :mod:`.flipping`: collinear and vector flipping ratios, derivatives, statistics.
- :mod:`.fm_from_ratio`: the classical route, γ = F_M/F_N from R (centrosymmetric).
- :mod:`.rcif_sites`: the crystal of an rcif block, site tensors on the normalised axes.
- :mod:`.model`: the independent reference (test oracle): a model built from
  an rcif crystal block and :func:`calculate`; loaded only when one of its
  names is used (the refined route never imports it).

Typical use::

    from chasm.neutron import read_rcif, PndModel, calculate
    pnd = read_rcif("ho2ti2o7.rcif")
    model = PndModel.from_rcif(pnd.crystal())
    result = calculate(model, pnd.datasets[0])
    result.ratio, result.statistics.chi2
"""

from .extinction import SphereExtinction, cryspy_mosaicity_to_g
from .flipping import (
    FlippingStatistics,
    PolarisedIntensities,
    flipping_ratio,
    flipping_ratio_collinear,
    flipping_statistics,
    polarised_intensities,
)
from .fm_from_ratio import MagneticAmplitudes, gamma_from_ratio
from .geometry import FieldGeometry, field_direction, field_geometry, orientation_matrix
from .magnetic_ff import (
    IonFormFactor,
    c2_from_lande,
    c2_from_spectroscopic_g,
    dipole_form_factor,
    ion_form_factor,
    radial_integrals,
)
from .rcif import PndCrystal, PndDataset, PndFile, read_rcif
from .rcif_sites import constrain_site_tensor
from .scattering_lengths import scattering_length, scattering_lengths
from .structure_factors import (
    CRYSPY_P,
    P_FM,
    magnetic_structure_factors,
    nuclear_structure_factors,
    susceptibility_structure_tensor,
)

__all__ = [
    "CRYSPY_P",
    "P_FM",
    "FieldGeometry",
    "FlippingCalculation",
    "FlippingStatistics",
    "IonFormFactor",
    "MagneticAmplitudes",
    "MagneticSite",
    "PndCrystal",
    "PndDataset",
    "PndFile",
    "PndModel",
    "PolarisedIntensities",
    "SphereExtinction",
    "c2_from_lande",
    "c2_from_spectroscopic_g",
    "calculate",
    "constrain_site_tensor",
    "cryspy_mosaicity_to_g",
    "dipole_form_factor",
    "field_direction",
    "field_geometry",
    "flipping_ratio",
    "flipping_ratio_collinear",
    "flipping_statistics",
    "gamma_from_ratio",
    "ion_form_factor",
    "magnetic_structure_factors",
    "nuclear_structure_factors",
    "orientation_matrix",
    "polarised_intensities",
    "radial_integrals",
    "read_rcif",
    "scattering_length",
    "scattering_lengths",
    "susceptibility_structure_tensor",
]

#: names of the reference :mod:`.model`, imported on first use (PEP 562)
_ORACLE = ("FlippingCalculation", "MagneticSite", "PndModel", "calculate")


def __getattr__(name: str):
    if name in _ORACLE:
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module 'chasm.neutron' has no attribute {name!r}")

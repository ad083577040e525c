"""Diagnostics of a refinement, as charge-density practice expects them.

Each is a plain function of arrays (testable on its own) with a figure
function beside it (:mod:`chasm.diagnostics.plots`):

- :func:`fo_fc` — Fo against Fc of an X-ray data set;
- :func:`normal_probability` — sorted weighted residuals against the expected
  normal quantiles (Abrahams & Keve, Acta Cryst. A27 (1971) 157);
- :func:`drk` — Σ Fo² / Σ Fc² in resolution bins (Zavodnik, Stash, Tsirelson
  & Feil, Acta Cryst. B55 (1999) 45);
- :func:`residual_analysis` — fractal dimension df(ρ0) of the residual density
  and e_gross = ½ ∫|ρ0| dV (Meindl & Henn, Acta Cryst. A64 (2008) 404);
- :func:`rigid_bond_test` — Hirshfeld's rigid-bond test, Δ-MSDA per bonded
  pair of anisotropic atoms with its su (Hirshfeld, Acta Cryst. A32 (1976) 239).

The reflection-based ones take an :class:`XrayFit` (Fo², σ, model Fc² on the
same scale, weights, complex Fc when known), made by :func:`xray_fits` from a
:class:`~chasm.refine.refinement.Refinement` or by :func:`fit_from_fcf` from
a result folder's ``model.fcf``.
"""

from chasm.diagnostics.reflections import XrayFit, fit_from_fcf, xray_fits
from chasm.diagnostics.residual import ResidualAnalysis, residual_analysis
from chasm.diagnostics.rigid_bond import RigidBond, rigid_bond_test
from chasm.diagnostics.statistics import (
    DrkBins,
    FoFc,
    NormalProbability,
    drk,
    fo_fc,
    normal_probability,
)

__all__ = [
    "DrkBins",
    "FoFc",
    "NormalProbability",
    "ResidualAnalysis",
    "RigidBond",
    "XrayFit",
    "drk",
    "fit_from_fcf",
    "fo_fc",
    "normal_probability",
    "residual_analysis",
    "rigid_bond_test",
    "xray_fits",
]

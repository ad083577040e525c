"""chasm: Charge And Spin Multipole refinement.

Joint refinement of one spin-resolved Hansen-Coppens multipole model against
X-ray, unpolarised neutron and polarised neutron (flipping ratio) data.

The public API is what ``import chasm`` gives (names are resolved on first use,
so ``import chasm`` stays fast):

* projects: :func:`load_project`, :func:`build`, :func:`write_project`
  (``chasm init``), :func:`run_project` (``chasm refine``);
* refinement: :class:`Refinement`, :class:`Stage`, :class:`SolverOptions`,
  :class:`FitResult`, :class:`Result` (result.json: ``Result.read``,
  ``Result.from_refinement``, ``to_json``), :class:`Agreement` (R1, wR2, Rw,
  χ², GOF of any data set);
* structures and files: :class:`Crystal`, :class:`Atom`, :func:`read_cif`,
  :func:`read_hkl4`, :func:`write_hkl4`, :func:`read_rcif`, :func:`read_rhocif`,
  :func:`write_rhocif`;
* density models: :class:`SphericalAtom`, :class:`HansenCoppensAtom`,
  :class:`SplitAtom`, :class:`LocalAxes`;
* maps: :class:`Plane`, :class:`CellGrid`, :func:`model_density`,
  :func:`deformation_density`, :func:`spin_density`, :func:`plot_plane`, :func:`peaks`,
  :func:`plot_map` (``chasm map``), :func:`map_plane`, :func:`default_planes`,
  :func:`residual_map`, :func:`write_cube`, :func:`write_xsf`;
* properties and reports: :func:`refinement_properties`,
  :func:`format_properties`, :func:`moment_report`, :func:`format_moment_report`,
  :func:`write_report`, :func:`xray_residual_map`, :func:`format_su`;
* electrostatics: :class:`PotentialField`, :func:`nuclear_field_gradients`,
  :func:`dipole_moment` (the topology itself, :mod:`chasm.topology.analysis`, keeps
  its module path: ``chasm.topology`` is the subpackage);
* cross-validation: :func:`cross_validate`, :func:`write_cv`, :func:`dask_runner`;
* polarised neutrons: :class:`PndData`, :class:`PndOptions`, :class:`PndSpinModel`,
  :class:`SpinSite`, :class:`DOrbitalSite`, :class:`OrbitalFormFactor`,
  :func:`ion_form_factor`;
* plausibility: :func:`check_plausibility`;
* diagnostics (:mod:`chasm.diagnostics`): :func:`xray_fits`, :func:`fit_from_fcf`,
  :func:`fo_fc`, :func:`normal_probability`, :func:`drk`, :func:`residual_analysis`,
  :func:`rigid_bond_test`.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from chasm.blas import limit_openblas_spin

limit_openblas_spin()  # before numpy or scipy loads OpenBLAS (chasm.blas imports neither)

__version__ = "0.1.0"

#: public name -> module that defines it (imported on first access)
_PUBLIC: dict[str, str] = {
    # projects
    "load_project": "chasm.project.project",
    "build": "chasm.project.build",
    "write_project": "chasm.project.init",
    "run_project": "chasm.project.run",
    # refinement
    "Refinement": "chasm.refine.refinement",
    "Stage": "chasm.refine.refinement",
    "SolverOptions": "chasm.refine.problem",
    "FitResult": "chasm.refine.results",
    "Result": "chasm.refine.result",
    "Agreement": "chasm.data.agreement",
    # structures and files
    "Crystal": "chasm.crystal.structure",
    "Atom": "chasm.crystal.structure",
    "read_cif": "chasm.crystal.cif",
    "read_hkl4": "chasm.io.shelx_hkl",
    "write_hkl4": "chasm.io.shelx_hkl",
    "read_rcif": "chasm.neutron.rcif",
    "read_rhocif": "chasm.io.rhocif",
    "write_rhocif": "chasm.io.rhocif",
    # density models
    "SphericalAtom": "chasm.density.model",
    "HansenCoppensAtom": "chasm.density.model",
    "SplitAtom": "chasm.density.model",
    "LocalAxes": "chasm.density.frames",
    # maps
    "Plane": "chasm.maps.grids",
    "model_density": "chasm.maps.density",
    "deformation_density": "chasm.maps.density",
    "spin_density": "chasm.maps.density",
    "plot_plane": "chasm.maps.plot",
    "peaks": "chasm.maps.fourier",
    "plot_map": "chasm.report.figures",
    "map_plane": "chasm.maps.planes",
    "default_planes": "chasm.maps.default_planes",
    "CellGrid": "chasm.maps.grids",
    "residual_map": "chasm.maps.fourier",
    "write_cube": "chasm.io.volumetric",
    "write_xsf": "chasm.io.volumetric",
    # properties and reports
    "refinement_properties": "chasm.properties",
    "format_properties": "chasm.properties",
    "moment_report": "chasm.neutron.moments",
    "format_moment_report": "chasm.neutron.moments",
    "refinement_covariance": "chasm.neutron.moments",
    "write_report": "chasm.report.report",
    "xray_residual_map": "chasm.maps.residual",
    "format_su": "chasm.io.su_format",
    # electrostatics
    "PotentialField": "chasm.topology.electrostatics",
    "nuclear_field_gradients": "chasm.topology.electrostatics",
    "dipole_moment": "chasm.topology.dipole",
    # cross-validation
    "cross_validate": "chasm.cv.run",
    "write_cv": "chasm.cv.report",
    "dask_runner": "chasm.cv.dask_backend",
    # polarised neutrons
    "PndData": "chasm.refine.pnd_data",
    "PndOptions": "chasm.refine.pnd_data",
    "PndSpinModel": "chasm.refine.pnd_data",
    "SpinSite": "chasm.refine.pnd_data",
    "DOrbitalSite": "chasm.neutron.dorbital_site",
    "OrbitalFormFactor": "chasm.neutron.dorbital_site",
    "ion_form_factor": "chasm.neutron.magnetic_ff",
    # plausibility
    "check_plausibility": "chasm.refine.plausibility:check",
    # diagnostics
    "xray_fits": "chasm.diagnostics",
    "fit_from_fcf": "chasm.diagnostics",
    "fo_fc": "chasm.diagnostics",
    "normal_probability": "chasm.diagnostics",
    "drk": "chasm.diagnostics",
    "residual_analysis": "chasm.diagnostics",
    "rigid_bond_test": "chasm.diagnostics",
}

__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    target = _PUBLIC.get(name)
    if target is None:
        raise AttributeError(f"module 'chasm' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(import_module(module), attr or name)
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

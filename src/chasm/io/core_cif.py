"""The refined structure as a publication (core) CIF: values with su, refinement, geometry.

What a journal, checkCIF, olex2 or Mercury reads: every refined value with its
standard uncertainty in parentheses, rounded by the rule of 19
(:func:`chasm.io.su_format.format_su`; a value fixed or fixed by symmetry has no
parentheses). The multipole and spin parameters stay in the rhoCIF file
(``model.cif``, :mod:`chasm.io.rhocif`).

Items written
-------------
- ``_audit_creation_method``; the cell with su, ``_cell_volume`` with su
  (propagated from the cell covariance of :func:`chasm.geometry.cell_covariance`);
  ``_space_group_crystal_system``, ``_IT_number``, ``_name_H-M_alt``,
  ``_name_Hall``; the ``_space_group_symop_id / _operation_xyz`` loop (every
  operation, centring included: the operation numbers of the symmetry codes);
  ``_diffrn_radiation_wavelength``; the ``_atom_type_`` loop with f′ and f″;
- ``_refine_ls_*`` of the data set given in :class:`RefineSummary`:
  ``structure_factor_coef`` (Fsqd or Fobs), ``matrix_type`` full,
  ``weighting_scheme`` / ``_details``, ``extinction_method`` / ``_coef`` (with
  su) / ``_expression``, ``number_reflns``, ``number_parameters``,
  ``number_restraints``, ``R_factor_all`` / ``_gt``, ``wR_factor_ref``,
  ``goodness_of_fit_ref``, ``restrained_S_all`` (``?`` with restraints),
  ``shift/su_max``;
  ``_reflns_number_total`` / ``_gt`` with ``_reflns_threshold_expression``;
  ``_refine_diff_density_max / min / rms`` when given;
- ``_atom_site_`` loop: label, type_symbol, fract_x/y/z, U_iso_or_equiv (Ueq of
  an anisotropic atom with its su from the covariance of its U_ij),
  adp_type, occupancy, site_symmetry_order, calc_flag (``d``, ``calc`` for a
  riding H), refinement_flags_posn (``R`` riding, ``.`` else) and, when
  groups are given, disorder_group; riding H coordinates are written without
  su (as SHELXL does);
- ``_atom_site_aniso_`` loop: U_11 U_22 U_33 U_23 U_13 U_12 with su;
- ``_geom_special_details``, ``_geom_bond_`` (label_1, label_2, distance,
  site_symmetry_1, site_symmetry_2, publ_flag) and ``_geom_angle_`` (labels,
  angle, site_symmetry_1, _2, _3, publ_flag) loops from :mod:`chasm.geometry`:
  su from the full covariance of the coordinates and the cell su's; atoms of
  different disorder groups are not bonded.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from gemmi import cif

from chasm import __version__
from chasm.crystal.symmetry import format_symop
from chasm.geometry import Geometry, angle_list, bond_list, cell_covariance, xyz_covariance
from chasm.io.atomic import write_text_atomic
from chasm.io.rhocif import _loop, _pair  # the same CIF layout as model.cif
from chasm.io.su_format import format_su

__all__ = ["RefineSummary", "core_cif_text", "write_core_cif", "cell_volume_su"]

#: su at or below this (in the unit of the value) count as zero: fixed by a constraint.
_ZERO_SU = 1e-12


@dataclass
class RefineSummary:
    """The ``_refine_ls_`` figures of the data set a publication reports.

    Attributes
    ----------
    coef : {"Fsqd", "Fobs"}
        Refinement on F² or on F.
    n_reflns, n_gt, n_params, n_restraints : int
    r1_all, r1_gt, wr2, gof : float or None
        R1 (F, all and > 2σ(F²)), wR2 (F²), goodness of fit.
    weighting : {"sigma", "shelx"}
    shelx_a, shelx_b : float
    extinction : str
        ``"none"``, ``"shelx"``, ``"bc-gauss"``, ``"bc-lorentz"``.
    extinction_value, extinction_su : float or None
    shift_su_max : float or None
        Largest |shift|/su of the last cycle.
    diff_density : (max, min, rms) or None
        e Å⁻³.
    """

    coef: str = "Fsqd"
    n_reflns: int = 0
    n_gt: int | None = None
    n_params: int = 0
    n_restraints: int = 0
    r1_all: float | None = None
    r1_gt: float | None = None
    wr2: float | None = None
    gof: float | None = None
    weighting: str = "sigma"
    shelx_a: float = 0.0
    shelx_b: float = 0.0
    extinction: str = "none"
    extinction_value: float | None = None
    extinction_su: float | None = None
    shift_su_max: float | None = None
    diff_density: tuple[float, float, float] | None = None


def _su_of(su: dict, name: str) -> float:
    s = su.get(name)
    if s is None or not math.isfinite(s) or s <= _ZERO_SU:
        return 0.0
    return float(s)


def cell_volume_su(crystal) -> tuple[float, float]:
    """Cell volume (Å³) and its su from :func:`~chasm.geometry.cell_covariance`.

    V² = det G; dV/dp = V/2 tr(G⁻¹ dG/dp) for each cell parameter p.
    """
    from chasm.geometry import metric_derivatives, metric_tensor

    cell = crystal.cell.parameters
    g = metric_tensor(cell)
    v = math.sqrt(float(np.linalg.det(g)))
    gi = np.linalg.inv(g)
    grad = np.array([0.5 * v * np.trace(gi @ dg) for dg in metric_derivatives(cell)])
    return v, math.sqrt(max(0.0, float(grad @ cell_covariance(crystal) @ grad)))


def _ueq_su(crystal, index: int, names: Sequence[str], cov: np.ndarray | None, su: dict) -> float:
    """su of Ueq = (1/3) Σ U_ij a*_i a*_j (a_i · a_j), from the covariance of the U_ij."""
    label = crystal.atoms[index].label
    g = crystal.A.T @ crystal.A
    astar = np.linalg.norm(crystal.B, axis=0)
    pairs = [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]
    coef = np.array([(1 if m == n else 2) * astar[m] * astar[n] * g[m, n] for m, n in pairs]) / 3
    keys = [f"{label}.U{m + 1}{n + 1}" for m, n in pairs]
    where = {n: k for k, n in enumerate(names)}
    if cov is not None and all(k in where for k in keys):
        idx = [where[k] for k in keys]
        c = np.asarray(cov)[np.ix_(idx, idx)]
        return math.sqrt(max(0.0, float(coef @ c @ coef)))
    s = np.array([_su_of(su, k) for k in keys])
    return math.sqrt(float(np.sum((coef * s) ** 2)))


def _header(crystal, title: str | None) -> list[str]:
    name = "".join("_" if c.isspace() else c for c in (title or crystal.name or "chasm"))
    lines = [
        f"# core CIF written by chasm {__version__}: the refined structure with su;",
        "# the multipole and spin model is in the rhoCIF file beside it (model.cif).",
        f"data_{name}",
        "",
        _pair("_audit_creation_method", cif.quote(f"chasm {__version__}")),
        "",
    ]
    sus = np.nan_to_num(np.asarray(crystal.cell_su or [0.0] * 6, float), nan=0.0)
    names = ["length_a", "length_b", "length_c", "angle_alpha", "angle_beta", "angle_gamma"]
    for n, v, s in zip(names, crystal.cell.parameters, sus, strict=True):
        lines.append(_pair(f"_cell_{n}", format_su(v, s, exact_decimals=4)))
    v, sv = cell_volume_su(crystal)
    lines += [_pair("_cell_volume", format_su(v, sv, exact_decimals=2)), ""]
    sg = crystal.spacegroup
    if sg is not None:
        lines.append(_pair("_space_group_crystal_system", sg.crystal_system_str()))
        lines.append(_pair("_space_group_IT_number", str(sg.number)))
        lines.append(_pair("_space_group_name_H-M_alt", cif.quote(sg.hm)))
        lines.append(_pair("_space_group_name_Hall", cif.quote(sg.hall)))
        lines.append("")
    ops = [
        [str(k + 1), cif.quote(format_symop(r, t))]
        for k, (r, t) in enumerate(zip(*crystal.symops, strict=True))
    ]
    lines += _loop(["_space_group_symop_id", "_space_group_symop_operation_xyz"], ops)
    if crystal.wavelength is not None:
        lines += [_pair("_diffrn_radiation_wavelength", f"{crystal.wavelength:.5f}"), ""]
    elements = list(dict.fromkeys(a.element for a in crystal.atoms))
    rows = []
    for el in elements:
        fp, fpp = crystal.dispersion.get(el, (0.0, 0.0))
        rows.append([el, f"{fp:.4f}", f"{fpp:.4f}"])
    tags = ["symbol", "scat_dispersion_real", "scat_dispersion_imag"]
    lines += _loop([f"_atom_type_{t}" for t in tags], rows)
    return lines


def _num(x: float | None, fmt: str) -> str:
    return "?" if x is None or not math.isfinite(x) else fmt.format(x)


def _refine(s: RefineSummary) -> list[str]:
    if s.weighting == "shelx":
        scheme = "calc"
        details = (
            f"w=1/[\\s^2^(Fo^2^)+({s.shelx_a:.4f}P)^2^+{s.shelx_b:.4f}P] where P=(Fo^2^+2Fc^2^)/3"
        )
    else:
        scheme, details = "sigma", "w=1/[\\s^2^(Fo^2^)]"
    ext = {
        "none": ("none", None),
        "shelx": ("SHELXL-style EXTI", "Fc^*^=kFc[1+0.001xFc^2^\\l^3^/sin(2\\q)]^-1/4^"),
        "bc-gauss": ("Becker-Coppens type 1, Gaussian mosaic", None),
        "bc-lorentz": ("Becker-Coppens type 1, Lorentzian mosaic", None),
    }.get(s.extinction, (s.extinction, None))
    lines = [
        _pair("_refine_ls_structure_factor_coef", s.coef),
        _pair("_refine_ls_matrix_type", "full"),
        _pair("_refine_ls_weighting_scheme", scheme),
        _pair("_refine_ls_weighting_details", cif.quote(details)),
        _pair("_refine_ls_extinction_method", cif.quote(ext[0])),
    ]
    if s.extinction != "none" and s.extinction_value is not None:
        lines.append(
            _pair("_refine_ls_extinction_coef", format_su(s.extinction_value, s.extinction_su))
        )
        if ext[1]:
            lines.append(_pair("_refine_ls_extinction_expression", cif.quote(ext[1])))
    else:
        lines.append(_pair("_refine_ls_extinction_coef", "."))
    lines += [
        _pair("_refine_ls_number_reflns", str(int(s.n_reflns))),
        _pair("_refine_ls_number_parameters", str(int(s.n_params))),
        _pair("_refine_ls_number_restraints", str(int(s.n_restraints))),
        _pair("_refine_ls_R_factor_all", _num(s.r1_all, "{:.4f}")),
        _pair("_refine_ls_R_factor_gt", _num(s.r1_gt, "{:.4f}")),
        _pair("_refine_ls_wR_factor_ref", _num(s.wr2, "{:.4f}")),
        _pair("_refine_ls_goodness_of_fit_ref", _num(s.gof, "{:.3f}")),
        # with restraints S_all would need them counted: left unknown rather than wrong
        _pair("_refine_ls_restrained_S_all", _num(s.gof if not s.n_restraints else None, "{:.3f}")),
        _pair("_refine_ls_shift/su_max", _num(s.shift_su_max, "{:.3f}")),
        _pair("_reflns_number_total", str(int(s.n_reflns))),
        _pair("_reflns_number_gt", "?" if s.n_gt is None else str(int(s.n_gt))),
        _pair("_reflns_threshold_expression", cif.quote("I > 2\\s(I)")),
    ]
    if s.diff_density is not None:
        for tag, v in zip(("max", "min", "rms"), s.diff_density, strict=True):
            lines.append(_pair(f"_refine_diff_density_{tag}", _num(v, "{:.3f}")))
    return lines + [""]


def _atoms(crystal, names, cov, su: dict, riding: set, parts: dict) -> list[str]:
    sites, aniso = [], []
    for i, atom in enumerate(crystal.atoms):
        lab = atom.label
        ride = lab in riding
        xyz = [  # riding H: 4 decimals, no su (as SHELXL)
            format_su(v, 0.0, 4) if ride else format_su(v, _su_of(su, f"{lab}.{c}"))
            for v, c in zip(atom.xyz, "xyz", strict=True)
        ]
        if atom.is_anisotropic:
            u = format_su(atom.uiso, _ueq_su(crystal, i, names, cov, su))
        else:
            u = format_su(atom.uiso, _su_of(su, f"{lab}.Uiso"))
        sites.append(
            [
                cif.quote(lab),
                cif.quote(atom.type_symbol or atom.element),
                *xyz,
                u,
                "Uani" if atom.is_anisotropic else "Uiso",
                format_su(atom.occupancy, _su_of(su, f"{lab}.occ")),
                str(len(crystal.site_symmetry(i))),
                "calc" if ride else "d",
                "R" if ride else ".",
                *([str(parts[lab]) if parts.get(lab) else "."] if parts else []),
            ]
        )
        if atom.is_anisotropic:
            # U_cif order U11 U22 U33 U12 U13 U23; the CIF loop U_11 U_22 U_33 U_23 U_13 U_12
            order = [(0, "U11"), (1, "U22"), (2, "U33"), (5, "U23"), (4, "U13"), (3, "U12")]
            aniso.append(
                [cif.quote(lab)]
                + [format_su(atom.u_aniso[k], _su_of(su, f"{lab}.{n}")) for k, n in order]
            )
    tags = ["label", "type_symbol", "fract_x", "fract_y", "fract_z", "U_iso_or_equiv"]
    tags += ["adp_type", "occupancy", "site_symmetry_order", "calc_flag", "refinement_flags_posn"]
    tags += ["disorder_group"] if parts else []
    lines = _loop([f"_atom_site_{t}" for t in tags], sites)
    tags = ["label", "U_11", "U_22", "U_33", "U_23", "U_13", "U_12"]
    return lines + _loop([f"_atom_site_aniso_{t}" for t in tags], aniso)


def _geometry(crystal, geometry: Geometry, full: bool, parts: dict) -> list[str]:
    how = (
        "the full covariance matrix of the refined coordinates"
        if full
        else "the su's of the coordinates only (no covariance was available)"
    )
    lines = [
        _pair(
            "_geom_special_details",
            ";\n su's of bond lengths and angles are propagated from "
            f"{how} and the su's\n of the cell parameters (correlated only where the "
            "lattice makes them equal),\n by chasm.geometry.\n;",
        ),
        "",
    ]
    bonds = [
        [cif.quote(b.label1), cif.quote(b.label2), format_su(b.distance, _tiny(b.su), 4)]
        + [b.code1, b.code2, "?"]
        for b in bond_list(crystal, geometry, parts=parts)
    ]
    tags = ["atom_site_label_1", "atom_site_label_2", "distance"]
    tags += ["site_symmetry_1", "site_symmetry_2", "publ_flag"]
    lines += _loop([f"_geom_bond_{t}" for t in tags], bonds)
    angles = [
        [cif.quote(a.label1), cif.quote(a.label2), cif.quote(a.label3)]
        + [format_su(a.angle, _tiny(a.su), 2), a.code1, ".", a.code3, "?"]
        for a in angle_list(crystal, geometry, parts=parts)
    ]
    tags = ["atom_site_label_1", "atom_site_label_2", "atom_site_label_3", "", "site_symmetry_1"]
    tags += ["site_symmetry_2", "site_symmetry_3", "publ_flag"]
    lines += _loop(["_geom_angle" + (f"_{t}" if t else "") for t in tags], angles)
    return lines


def _tiny(s: float) -> float:
    """An su of a value fixed by symmetry (rounding noise, or NaN at 180°) -> 0."""
    return 0.0 if not math.isfinite(s) or s < 1e-9 else s


def core_cif_text(
    crystal,
    su: dict[str, float] | None = None,
    names: Sequence[str] | None = None,
    cov: np.ndarray | None = None,
    summary: RefineSummary | None = None,
    riding: Sequence[str] = (),
    title: str | None = None,
    parts: dict[str, int] | None = None,
) -> str:
    """The core CIF of a refined crystal (module docstring).

    Parameters
    ----------
    crystal : Crystal
        The refined structure (cell su in ``crystal.cell_su``).
    su : dict, optional
        su by parameter name (``'C1.x'``, ``'C1.U11'``, ``'C1.Uiso'``, ``'C1.occ'``).
    names : sequence of str, optional
        Names of the rows of ``cov``.
    cov : ndarray, optional
        Covariance of the parameters ``names`` (e.g. ``FitResult.cov_p()``): the
        geometry su's and the Ueq su's use it; without it the coordinates count
        as uncorrelated with the su's of ``su``.
    summary : RefineSummary, optional
        The ``_refine_ls_`` items (omitted without it).
    riding : sequence of str
        Labels of riding hydrogens.
    title : str, optional
        Data block name (default the crystal's name).
    parts : dict, optional
        Disorder group by label (``_atom_site_disorder_group``): written in the
        atom_site loop; no bond between atoms of different non-zero groups
        (:func:`chasm.geometry.bond_list`).
    """
    su = dict(su or {})
    lines = _header(crystal, title)
    if summary is not None:
        lines += _refine(summary)
    parts = {k: int(v) for k, v in (parts or {}).items() if v}
    lines += _atoms(crystal, list(names or []), cov, su, set(riding), parts)
    full = cov is not None and names is not None
    if full:
        cov_xyz = xyz_covariance(crystal, list(names), cov, su)
    else:
        cov_xyz = np.diag([_su_of(su, f"{a.label}.{c}") ** 2 for a in crystal.atoms for c in "xyz"])
    lines += _geometry(crystal, Geometry(crystal, cov_xyz), full, parts)
    return "\n".join(lines).rstrip("\n") + "\n"


def write_core_cif(path: str | os.PathLike, crystal, **kwargs) -> None:
    """Write :func:`core_cif_text` to ``path`` atomically (same keyword arguments)."""
    text = core_cif_text(crystal, **kwargs)
    cif.read_string(text)  # never write a file gemmi cannot read back
    write_text_atomic(path, text)

"""Magnetic moments and d-orbital spin populations of a refined spin model, with su.

Every quantity reported here is a LINEAR function a·c of the spin parameters c
of a :class:`~chasm.refine.pnd_data.PndSpinModel`, so its standard
uncertainty is √(aᵀ C a) with C the covariance of c; sums over sites take the
correlations into account. What each site gives:

- moment site (``LABEL.moment``): the moment along the field, μB;
- ordered-moment site (``LABEL.mx/my/mz``): its size |m| (μB, su linearised:
  a·c with a = ∂|m|/∂c at the values), left out of the sums (the magnetic
  group sets the directions of its copies);
- susceptibility site (``LABEL.chi*``): the induced moment m = ê·χ ê |B| for a
  field B = |B| ê (μB; χ on cryspy's normalised axes, rotated to Cartesian);
  without a direction, the powder average tr(χ)/3 |B|;
- d-orbital site (``LABEL.P*`` or ``LABEL.d_*``): the spin monopole
  P00 = Σ_i P_ii, the spin moment of the ion (μB, spin only), and its 15
  d-orbital spin populations in the site's local frame
  (:mod:`chasm.density.dorbitals` convention; cross terms counted once), with
  su from the same covariance, and the natural occupations (eigenvalues of
  the population matrix, no su).

Sums: the one definition of :func:`chasm.properties.linear_sums`, as for
charges and spin populations: over the asymmetric unit Σ_j w_j m_j with
w_j = occupancy_j / |site group_j| (:func:`chasm.properties.site_weight`: an
atom on a special position counts with its share), over the cell n_ops × that
= Σ_j occupancy_j mult_j m_j, and per formula unit (cell sum)/Z. Z defaults to
:func:`~chasm.properties.formula_units` (the greatest common divisor of the
site multiplicities: Z = 4 for YTiO3 in P n m a).

Covariance: :func:`refinement_covariance` takes the full covariance T cov_z Tᵀ
of the refinement's last stage (:meth:`chasm.refine.results.FitResult.cov_p`)
for the parameters that stage refined; a parameter fixed in that stage but
refined earlier keeps its su² on the diagonal, without correlations (stated in
the returned ``note``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from chasm.crystal.adp import u6_to_matrix
from chasm.crystal.sums import formula_units, linear_sums, site_weight
from chasm.density.dorbitals import natural_orbitals, orbital_pair_labels
from chasm.errors import InputError
from chasm.io.su_format import format_quantity
from chasm.neutron.dorbital_site import DOrbitalSite

__all__ = [
    "SiteMoment",
    "OrbitalPopulations",
    "MomentReport",
    "formula_units",
    "refinement_covariance",
    "moment_report",
    "format_moment_report",
]


@dataclass
class SiteMoment:
    """Moment of one magnetic site.

    Attributes
    ----------
    label, element : str
    kind : str
        ``"moment"``, ``"chi"``, ``"ordered"`` (|m| of an ordered moment) or ``"d-orbital"``.
    multiplicity : int
        Positions per cell.
    value, su : float
        Moment along the field (μB); su NaN when unknown.
    """

    label: str
    element: str
    kind: str
    multiplicity: int
    value: float
    su: float


@dataclass
class OrbitalPopulations:
    """d-orbital spin populations of one d-orbital site (μB, local frame).

    Attributes
    ----------
    label : str
    frame : str
        How the local frame was defined.
    frame_matrix : ndarray (3, 3)
        Local axes as columns (Cartesian).
    names : list of str
        ``"z2"``, ..., ``"xy"``, ``"z2/xz"``, ... (:func:`orbital_pair_labels`).
    values, su : ndarray (15,)
    natural : ndarray (5,)
        Natural occupations (eigenvalues of the population matrix, μB).
    natural_orbitals : ndarray (5, 5)
        Columns: the natural orbitals on z2, xz, yz, x2-y2, xy.
    """

    label: str
    frame: str
    frame_matrix: np.ndarray
    names: list
    values: np.ndarray
    su: np.ndarray
    natural: np.ndarray
    natural_orbitals: np.ndarray


@dataclass
class MomentReport:
    """Moments per site, d-orbital populations, and sums (μB)."""

    sites: list[SiteMoment]
    orbitals: list[OrbitalPopulations]
    asymmetric_unit: tuple[float, float]
    cell: tuple[float, float]
    z: int
    per_formula_unit: tuple[float, float]
    note: str = ""
    extra: dict = field(default_factory=dict)


def refinement_covariance(refinement: Any, names: Sequence[str]) -> tuple[np.ndarray, str]:
    """Covariance (n, n) of the named parameters after a refinement.

    Parameters
    ----------
    refinement : Refinement
        After at least one stage.
    names : sequence of str

    Returns
    -------
    cov : ndarray (n, n)
    note : str
        Which parameters got su² only (empty when all come from the last stage).
    """
    idx = [refinement.params.index(n) for n in names]
    su = refinement.params.su[idx]
    if not refinement.outcomes:
        return np.diag(su**2), "no stage run: su from the parameters, no correlations"
    result = refinement.outcomes[-1].result
    cov = result.cov_p()[np.ix_(idx, idx)]
    moved = np.abs(result.T[idx]).sum(axis=1) > 0
    lone = [n for n, m in zip(names, moved, strict=True) if not m]
    for k in np.nonzero(~moved)[0]:
        cov[k, :] = cov[:, k] = 0.0
        cov[k, k] = su[k] ** 2 if np.isfinite(su[k]) else 0.0
    note = f"not refined in the last stage (su² only): {', '.join(lone)}" if lone else ""
    return cov, note


def _normalised_axes(crystal) -> np.ndarray:
    return crystal.A / np.linalg.norm(crystal.A, axis=0)[None, :]


def moment_report(
    spin: Any,
    values: Mapping[str, float] | ArrayLike,
    covariance: np.ndarray | None = None,
    z: int | None = None,
    field: float = 1.0,
    direction: ArrayLike | None = None,
    note: str = "",
) -> MomentReport:
    """Moments, d-orbital populations and sums of a spin model, with su.

    Parameters
    ----------
    spin : PndSpinModel
    values : mapping name -> value or array_like
        Spin-parameter values (a mapping such as ``spin.values``, or an array
        in the order of ``spin.parameter_names``).
    covariance : ndarray (k, k) or None
        Covariance of the spin parameters in the order of
        ``spin.parameter_names``; None: su reported as NaN.
    z : int or None
        Formula units per cell; None: :func:`formula_units`.
    field : float
        |B| (T) for susceptibility sites.
    direction : array_like (3,) or None
        Field direction (Cartesian) for susceptibility sites; None: tr(χ)/3.
    note : str
        Carried into the report (e.g. from :func:`refinement_covariance`).

    Returns
    -------
    MomentReport
    """
    names = spin.parameter_names
    if isinstance(values, dict) or hasattr(values, "keys"):
        c = np.array([float(values[n]) for n in names])
    else:
        c = np.asarray(values, dtype=float).reshape(-1)
    if c.shape != (len(names),):
        raise InputError(f"{c.size} values for {len(names)} spin parameters")
    k = len(names)
    cov = None if covariance is None else np.asarray(covariance, dtype=float)
    if cov is not None and cov.shape != (k, k):
        raise InputError(f"covariance must be {k} x {k}, got {cov.shape}")
    crystal = spin.crystal
    z = formula_units(crystal) if z is None else int(z)
    norm = _normalised_axes(crystal)
    e = None if direction is None else np.asarray(direction, float) / np.linalg.norm(direction)

    def su_of(a: np.ndarray) -> float:
        if cov is None:
            return float("nan")
        return float(np.sqrt(max(a @ cov @ a, 0.0)))

    rows: list[SiteMoment] = []
    vectors: list[np.ndarray] = []
    ordered: list[int] = []  # rows of ordered moments: |m|, not summed
    orbitals: list[OrbitalPopulations] = []
    for site in spin.sites:
        index = crystal.atom_index(site.label)
        a = np.zeros(k)
        cols = spin.column_indices(site.label)
        if isinstance(site, DOrbitalSite):
            layout = spin.layouts[site.label]
            sel = cols
            a[sel] = layout.to_multipoles[0]
            kind = "d-orbital"
            pop_map = np.zeros((15, k))
            pop_map[:, sel] = layout.to_orbitals
            pops = pop_map @ c
            su = (
                np.full(15, np.nan)
                if cov is None
                else np.sqrt(np.clip(np.sum((pop_map @ cov) * pop_map, axis=1), 0, None))
            )
            occ, vec = natural_orbitals(pops)
            orbitals.append(
                OrbitalPopulations(
                    site.label,
                    layout.frame_text,
                    layout.frame,
                    orbital_pair_labels(),
                    pops,
                    su,
                    occ,
                    vec,
                )
            )
        elif site.moment is not None:
            a[cols[0]] = 1.0
            kind = "moment"
        elif getattr(site, "vector", None) is not None:  # ordered moment: |m|, linearised su
            m_cart = np.zeros(3)
            rows_cart = {}
            for j in cols:
                rows_cart[j] = norm @ spin.column_vector(j)
                m_cart += c[j] * rows_cart[j]
            size = float(np.linalg.norm(m_cart))
            for j in cols:
                a[j] = float(m_cart @ rows_cart[j]) / size if size > 0 else 0.0
            ordered.append(len(rows))
            kind = "ordered"
        else:
            for j in cols:
                chi = norm @ u6_to_matrix(spin.column_chi6(j)) @ norm.T
                a[j] = abs(field) * (np.trace(chi) / 3.0 if e is None else e @ chi @ e)
            kind = "chi"
        vectors.append(a)
        rows.append(
            SiteMoment(
                site.label,
                crystal.atoms[index].element,
                kind,
                crystal.multiplicity(index),
                float(a @ c),
                su_of(a),
            )
        )
    terms = [
        (site_weight(crystal, crystal.atom_index(r.label)), 0.0, v)
        for i, (r, v) in enumerate(zip(rows, vectors, strict=True))
        if i not in ordered
    ]
    if ordered:
        extra_note = (
            "ordered moments are listed as |m| (su linearised) and left out of the sums: "
            "their directions follow the magnetic group"
        )
        note = f"{note}; {extra_note}" if note else extra_note
    sums = linear_sums(lambda a, c0: (float(a @ c) + c0, su_of(a)), terms, crystal.n_ops, z)
    zero = (0.0, su_of(np.zeros(k)))
    return MomentReport(
        sites=rows,
        orbitals=orbitals,
        asymmetric_unit=sums.get("asymmetric unit", zero),
        cell=sums.get("cell", zero),
        z=z,
        per_formula_unit=sums.get("formula unit", zero),
        note=note,
    )


def _vs(value: float, su: float) -> str:
    """value(su) as in every table (:func:`chasm.io.su_format.format_quantity`)."""
    return format_quantity(value, su)


def format_moment_report(report: MomentReport) -> str:
    """Plain-text tables of a :class:`MomentReport` (μB)."""
    lines = ["Magnetic moments along the field (μB, spin only for d-orbital sites)"]
    lines.append(f"{'site':<8}{'type':<11}{'kind':<11}{'mult':>5}  {'moment':>14}")
    for r in report.sites:
        lines.append(
            f"{r.label:<8}{r.element:<11}{r.kind:<11}{r.multiplicity:>5}  {_vs(r.value, r.su):>14}"
        )
    if any(r.kind != "ordered" for r in report.sites):  # ordered moments are not summed
        lines.append(f"sum over the asymmetric unit      {_vs(*report.asymmetric_unit):>14}")
        lines.append("  (each site weighted by occupancy / |site group|, as charges and spins)")
        lines.append(f"sum over the cell                 {_vs(*report.cell):>14}")
        lines.append(
            f"per formula unit (Z = {report.z})          {_vs(*report.per_formula_unit):>14}"
        )
    for o in report.orbitals:
        lines.append("")
        lines.append(f"d-orbital spin populations of {o.label} (μB), local frame: {o.frame}")
        ax = o.frame_matrix
        for i, name in enumerate("xyz"):
            lines.append(
                f"  {name} = ({ax[0, i]: .4f}, {ax[1, i]: .4f}, {ax[2, i]: .4f}) Cartesian"
            )
        for name, v, s in zip(o.names, o.values, o.su, strict=True):
            lines.append(f"  {name:<12}{_vs(float(v), float(s)):>14}")
        lines.append(f"  trace = moment {float(np.sum(o.values[:5])):.4f}")
        occ = " ".join(f"{x:.3f}" for x in o.natural)
        lines.append(f"  natural occupations: {occ}")
        lead = o.natural_orbitals[:, 0]
        parts = " ".join(f"{c:+.3f} {n}" for c, n in zip(lead, o.names[:5], strict=True))
        lines.append(f"  leading natural orbital: {parts}")
    if report.note:
        lines.append("")
        lines.append(f"note: {report.note}")
    return "\n".join(lines)

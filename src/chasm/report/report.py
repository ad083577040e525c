"""The refinement report: report.html (self-contained) and report.md (+ PNG maps).

:func:`write_report` writes, into a result folder (the output folder of
:func:`chasm.project.run.run_project`: ``result.json`` and ``model.cif``):

- a data summary per data set (kind, N obs, R1, wR2, Rw, GOF, χ², and the
  score factor c_e and gradient share of the last stage that fitted it when
  result.json has them), the score and the stages;
- the parameters with su, the largest correlations;
- the spin populations of the split atoms (Pv, P00 and the moment per atom,
  their sum over the asymmetric unit; N obs, N param, GOF and Rw(1−R) of the
  flipping-ratio data), side by side for a polarised-neutron-only stage
  (a stage whose name starts with "pnd", not the last one) and the final
  model, as in Table 1 of the joint-refinement paper; further parameter
  snapshots can be passed as :class:`Snapshot`;
- atomic charges and spin moments with sums, d-orbital populations of
  transition metals (:mod:`chasm.properties`);
- maps on the plane of the metal and two of its nearest ligand atoms (or
  the first three non-H atoms): the static deformation density, the spin
  density when there are split atoms, and the X-ray residual density when
  the refinement object is given.

From the folder alone the model is rebuilt from model.cif (split atoms come
from the rhoCIF spin extension or, for a charge-only model.cif, from the
spin parameters in result.json) and the su of derived quantities are
combined WITHOUT correlations (said in the report). Given the
:class:`~chasm.refine.refinement.Refinement`, they come from the last
stage's covariance, and the correlation table is computed from its full
correlation matrix. The HTML embeds every image as a base64 PNG (no
external links); the Markdown file links the PNG files written next to it.
All files are written atomically; result.json and model.cif are only read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from chasm import __version__
from chasm.density.model import HansenCoppensAtom, SplitAtom
from chasm.errors import InputError
from chasm.io.atomic import write_text_atomic
from chasm.maps.residual import xray_residual_map
from chasm.properties import (
    Properties,
    atomic_properties,
    format_value,
    properties_tables,
    refinement_properties,
)
from chasm.refine.result import Result
from chasm.report.diagnostics_section import diagnostics_blocks
from chasm.report.layout import render_html, render_markdown
from chasm.report.sections import (
    charged_parameters,
    dataset_rows,
    formula_text,
    implausible_rows,
    parameter_tables,
    side_by_side,
    stage_rows,
)
from chasm.report.steps import Steps

if TYPE_CHECKING:
    from chasm.refine.refinement import Refinement

__all__ = ["Snapshot", "write_report", "structure_from_folder", "xray_residual_map"]

N_CORRELATIONS = 12
"""Rows of the correlation table."""


@dataclass
class Snapshot:
    """A parameter set to show in the spin-population table.

    Attributes
    ----------
    label : str
        Column heading, e.g. ``"PND only"``.
    values : dict
        Parameter name -> value (at least the structural parameters).
    su : dict, optional
        Parameter name -> su (used when ``covariance`` is None; no correlations).
    covariance : ndarray, optional
        Over ``names``.
    names : list of str, optional
    n_obs, n_par : int or None
        Observations (flipping ratios) and refined parameters.
    gof, rw : float or None
        GOF and Rw(1−R) of the flipping-ratio data.
    """

    label: str
    values: dict
    su: dict | None = None
    covariance: np.ndarray | None = None
    names: list | None = None
    n_obs: int | None = None
    n_par: int | None = None
    gof: float | None = None
    rw: float | None = None
    extra: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- model
def _read_result(folder: Path) -> Result | None:
    path = folder / "result.json"
    return Result.read(path) if path.is_file() else None


def structure_from_folder(folder, result: dict | None = None):
    """The StructureModel of a result folder: model.cif plus result.json values.

    Split atoms come from model.cif's spin extension (:mod:`chasm.io.rhocif`);
    with a charge-only model.cif, an atom whose parameters in result.json
    include ``L.Pv.spin`` (chargespin) or ``L.Pv.up`` (updown) is split again
    with the spin populations of result.json (κ shared when ``L.kappa`` is a
    parameter). The neutron ADP set comes from model.cif or, when result.json
    has ``L.U11.N`` / ``L.Uiso.N`` names, starts as a copy of the X-ray set.
    The structure's parameters are then set to result.json's values.

    Parameters
    ----------
    folder : path
    result : dict, optional
        The parsed result.json (read from the folder if None).

    Returns
    -------
    StructureModel

    Raises
    ------
    InputError
        No model.cif, or a model.cif that cannot be read.
    """
    from chasm.io.rhocif import read_rhocif, read_rhocif_adp_sets
    from chasm.refine.structure_model import StructureModel

    folder = Path(folder)
    cif_path = folder / "model.cif"
    if not cif_path.is_file():
        raise InputError("no model.cif in the result folder; run the refinement first", str(folder))
    result = _read_result(folder) if result is None else result
    params = (result or {}).get("parameters", {})
    crystal, models = read_rhocif(cif_path)
    basis = "chargespin" if any(n.endswith(".spin") for n in params) else "updown"
    for i, (atom, m) in enumerate(zip(crystal.atoms, models, strict=True)):
        lab = atom.label
        if not isinstance(m, HansenCoppensAtom):
            continue
        if f"{lab}.Pv.spin" in params or f"{lab}.Pv.up" in params:
            models[i] = SplitAtom.from_charge_and_spin(
                m,
                share_kappa=f"{lab}.kappa" in params,
                share_kappa_prime=f"{lab}.kappa_prime" in params,
            )
    adp = read_rhocif_adp_sets(cif_path)
    if not adp and any(n.endswith((".U11.N", ".Uiso.N")) for n in params):
        adp = {"N": None}
    sm = StructureModel(crystal, models, adp_sets=adp, basis=basis)
    p = sm.parameters()
    for name in p.names:
        entry = params.get(name)
        if entry is not None and entry.get("value") is not None:
            p[name].value = float(entry["value"])
    sm.apply(p)
    return sm


# --------------------------------------------------------------------------- maps
# --------------------------------------------------------------------------- content
def _f(x, fmt: str = "{:.4f}") -> str:
    return "-" if x is None else fmt.format(float(x))


def _result_from_refinement(refinement) -> Result:
    """The result of a refinement alone (no result.json): :meth:`Result.from_refinement`."""
    return Result.from_refinement(refinement)


def _correlations(result: dict, refinement) -> tuple[list[list[str]], str]:
    if refinement is not None and refinement.outcomes:
        r = refinement.outcomes[-1].result
        c = r.correlation
        iu = np.triu_indices(len(r.names), 1)
        order = np.argsort(-np.abs(c[iu]))[:N_CORRELATIONS]
        rows = [[r.names[iu[0][k]], r.names[iu[1][k]], f"{c[iu][k]:+.3f}"] for k in order]
        return rows, f"the {len(rows)} largest |ρ| of the last stage"
    rows = [[a, b, f"{x:+.3f}"] for a, b, x in result.get("correlations", [])][:N_CORRELATIONS]
    return rows, "correlations above the threshold listed in result.json"


def _pnd_figures(refinement, p: np.ndarray, names: list[str], n_par: int, n_total: int):
    """N obs, Rw(1−R) and GOF of the flipping-ratio sets among ``names`` at p.

    The GOF charges the flipping ratios their share n_par·N_pnd/n_total of the
    parameters, n_total being every observation the stage fitted (as
    :func:`chasm.refine.refinement.share_gof` does for result.json).
    """
    sets = [d for d in refinement.datasets if d.kind == "pnd" and d.name in names]
    if not sets:
        return None, None, None
    saved = refinement.params.values.copy()
    try:
        refinement.set_values(p)
        ag = [d.agreement(p, n_par) for d in sets]
    finally:
        refinement.set_values(saved)
    n_obs = sum(a["n_obs"] for a in ag)
    return n_obs, _combined_rw(ag), _combined_gof(ag, n_par, n_total)


def _combined_gof(agreements, n_par: int, n_total: int) -> float | None:
    """√(Σ χ²_e / Σ N_e (1 − n_par/n_total)): the GOF of several sets sharing n_par."""
    chi2 = sum(a["chi2"] for a in agreements)
    dof = sum(a["n_obs"] for a in agreements) * (1.0 - n_par / n_total) if n_total else 0.0
    return float(np.sqrt(chi2 / dof)) if dof > 0 else None


def _combined_rw(agreements) -> float | None:
    """Rw(1−R) of several sets: sqrt(Σ χ²_e / Σ χ²_e/Rw_e²)."""
    num = den = 0.0
    for a in agreements:
        if not a.get("Rw") or a.get("chi2") is None:
            return None
        num += a["chi2"]
        den += a["chi2"] / a["Rw"] ** 2
    return float(np.sqrt(num / den)) if den > 0 else None


def _gof_of_rows(rows: list[dict]) -> float | None:
    """The GOF of several result.json data-set rows together: √(Σ χ² / Σ χ²/GOF²)."""
    if len(rows) == 1:
        return rows[0].get("gof")
    if any(not r.get("gof") or r.get("chi2") is None for r in rows):
        return None
    chi2 = sum(r["chi2"] for r in rows)
    return float(np.sqrt(chi2 / sum(r["chi2"] / r["gof"] ** 2 for r in rows)))


def _snapshots(refinement, result: dict, structure) -> list[Snapshot]:
    """The last PND-only stage (if any) and the final model.

    A stage is PND-only when it fitted flipping ratios and no X-ray data (it
    may fit unpolarised neutrons as well, for the scale and neutron ADPs): its
    spin populations come from the polarised neutrons alone.
    """
    out = []
    pnd_rows = {n: d for n, d in result.get("datasets", {}).items() if d.get("kind") == "pnd"}
    if refinement is not None and refinement.outcomes:
        n = refinement.n_struct
        names = refinement.params.names[:n]
        kinds = {d.name: d.kind for d in refinement.datasets}
        pnd_only = [
            o
            for o in refinement.outcomes[:-1]
            if "pnd" in {kinds.get(x.name) for x in o.result.datasets}
            and "xray" not in {kinds.get(x.name) for x in o.result.datasets}
        ]
        for o in pnd_only[-1:]:
            r = o.result
            used = [x.name for x in r.datasets]
            n_total = sum(int(x.n) for x in r.datasets)
            n_obs, rw, gof = _pnd_figures(refinement, r.p, used, o.n_free, n_total)
            out.append(
                Snapshot(
                    f"stage {o.stage.name}",
                    dict(zip(names, r.p[:n], strict=True)),
                    covariance=r.cov_p()[:n, :n],
                    names=list(names),
                    n_obs=n_obs,
                    n_par=o.n_free,
                    gof=gof,
                    rw=rw,
                    extra={"n_par_pnd": o.n_free * n_obs / n_total if n_obs else None},
                )
            )
    params = result.get("parameters", {})
    final = Snapshot(
        "final",
        {k: v["value"] for k, v in params.items()},
        su={k: v.get("su") for k, v in params.items()},
    )
    if pnd_rows:  # the figures of the data-set table (result.json), not the stage's GOF
        final.n_obs = sum(int(d["n_obs"]) for d in pnd_rows.values())
        final.rw = _combined_rw(list(pnd_rows.values()))
        final.gof = _gof_of_rows(list(pnd_rows.values()))
        charged = charged_parameters(result)
        final.extra["n_par_pnd"] = sum(charged.get(n) or 0.0 for n in pnd_rows)
    if refinement is not None and refinement.outcomes:
        final.n_par = refinement.outcomes[-1].n_free
        final.values = dict(zip(refinement.params.names, refinement.params.values, strict=True))
    else:
        stages = result.get("stages", [])
        if stages:
            final.n_par = stages[-1].get("n_free")
    out.append(final)
    return out


def _spin_table(structure, snaps: list[Snapshot], final_props: Properties):
    split = [
        (i, a.label)
        for i, (a, m) in enumerate(zip(structure.crystal.atoms, structure.models, strict=True))
        if isinstance(m, SplitAtom)
    ]
    if not split:
        return None
    props = []
    for s in snaps[:-1]:
        props.append(
            atomic_properties(structure, s.values, s.covariance, s.names, su=s.su)
            if s.covariance is not None
            else atomic_properties(structure, s.values, su=s.su)
        )
    props.append(final_props)
    headers = ["", *(s.label for s in snaps)]
    rows = []

    def pop(s: Snapshot, name: str) -> str:
        v = s.values.get(name)
        if v is None:
            return "-"
        su = None
        if s.covariance is not None and s.names is not None and name in s.names:
            k = s.names.index(name)
            su = float(np.sqrt(max(s.covariance[k, k], 0.0)))
        elif s.su is not None:
            su = s.su.get(name)
        return format_value(v, su)

    basis = structure.basis
    for i, label in split:
        m = structure.models[i]
        if basis == "chargespin":
            rows.append([f"{label} Pv spin (μB)", *(pop(s, f"{label}.Pv.spin") for s in snaps)])
            rows.append([f"{label} P00 spin (μB)", *(pop(s, f"{label}.P00.spin") for s in snaps)])
        else:
            for spin in ("up", "dn"):
                rows.append(
                    [f"{label} Pv {spin} (e)", *(pop(s, f"{label}.Pv.{spin}") for s in snaps)]
                )
        for kind in ("kappa", "kappa_prime"):
            if kind == "kappa_prime" and m.lmax < 0:
                continue
            shared = m.share_kappa if kind == "kappa" else m.share_kappa_prime
            spins = [""] if shared else [".up", ".dn"]
            for sp in spins:
                name = f"{label}.{kind}{sp}"
                rows.append([f"{label} {kind}{sp}", *(pop(s, name) for s in snaps)])
        k = [a.label for a in final_props.atoms].index(label)
        rows.append(
            [f"{label} moment m (μB)"]
            + [format_value(p.atoms[k].spin, p.atoms[k].spin_su) for p in props]
        )
    kept = [r for r in rows if len(set(r[1:])) > 1 or any("(" in c for c in r[1:])]
    if len(kept) < len(rows):
        dropped = len(rows) - len(kept)
        kept.append(
            [f"({dropped} rows of values fixed in every column left out)", *[""] * len(snaps)]
        )
    rows = kept
    rows.append(
        ["sum, asymmetric unit (μB)"]
        + [format_value(*p.spin_sums["asymmetric unit"]) for p in props]
    )
    if all("formula unit" in p.spin_sums for p in props):
        rows.append(
            [f"sum per formula unit (Z = {props[-1].z}) (μB)"]
            + [format_value(*p.spin_sums["formula unit"]) for p in props]
        )
    rows.append(["N obs (flipping ratios)", *(_f(s.n_obs, "{:.0f}") for s in snaps)])
    rows.append(["N param", *(_f(s.n_par, "{:.0f}") for s in snaps)])
    rows.append(
        ["N param charged to them", *(_f(s.extra.get("n_par_pnd"), "{:.1f}") for s in snaps)]
    )
    rows.append(["GOF (flipping ratios)", *(_f(s.gof, "{:.3f}") for s in snaps)])
    rows.append(["Rw(1−R)", *(_f(s.rw, "{:.3f}") for s in snaps)])
    return headers, rows


# --------------------------------------------------------------------------- writing
def _shorten(note: str, keep: int = 8) -> str:
    """A note with every long comma-separated list of names cut to ``keep`` and a count."""

    def cut(m: re.Match) -> str:
        names = m.group(2).split(", ")
        if len(names) <= keep:
            return m.group(0)
        return f"{m.group(1)}{', '.join(names[:keep])} and {len(names) - keep} more"

    return re.sub(r"(: )([^;:()]+(?:, [^;:()]+){8,})", cut, note)


def _summary(result: dict, crystal, refinement, structure, props, snapshots, steps) -> list:
    """The Summary section: data, agreement per set and stage, spin table, warnings."""
    blocks: list[tuple] = [("h", 2, "Summary")]
    stages = result.get("stages", [])
    what = []
    if crystal is not None:
        sg = crystal.spacegroup.hm if crystal.spacegroup is not None else "(given operations)"
        cell = ", ".join(f"{v:.4f}" for v in crystal.cell.parameters[:3])
        angles = ", ".join(f"{v:.3f}" for v in crystal.cell.parameters[3:])
        formula = formula_text(crystal)
        what.append(
            f"{crystal.name}{f' ({formula})' if formula else ''}: "
            f"{len(crystal.atoms)} atoms in the asymmetric unit, space group "
            f"{sg}, a, b, c = {cell} Å, α, β, γ = {angles}°, V = {crystal.volume:.2f} Å³."
        )
    kinds = {"xray": "X-ray", "und": "unpolarised neutron", "pnd": "polarised neutron"}
    sets = result.get("datasets", {})
    if sets:
        what.append(
            "Data: "
            + "; ".join(
                f"{n} ({kinds.get(d.get('kind'), d.get('kind'))}, {d.get('n_obs')} obs.)"
                for n, d in sets.items()
            )
            + "."
        )
    state = "converged" if result.get("converged") else "NOT converged"
    what.append(
        f"Refinement {state} after {len(stages)} stage(s), "
        f"{sum(int(s.get('cycles') or 0) for s in stages)} cycles; "
        f"{stages[-1].get('n_free', '-') if stages else '-'} parameters in the last stage."
    )
    blocks.append(("p", " ".join(what)))
    blocks += [("h", 3, "Agreement per data set"), ("table", *dataset_rows(result))]
    blocks.append(
        (
            "note",
            "Final model. R1 on F, wR2 on F²; Rw is Rw(F) for X-ray and unpolarised-neutron "
            "data and Rw(1−R) for flipping ratios. GOF = √(χ² / (N obs − N param)), N param "
            "being the parameters of the last stage charged to each data set in proportion to "
            "its N obs when several sets share them (as in result.json). c_e is the score "
            "factor of the set and the gradient share its pull on the parameters, both from "
            "the last stage that fitted it.",
        )
    )
    if stages:
        blocks += [("h", 3, "Stages"), ("table", *stage_rows(result))]
        blocks.append(
            (
                "note",
                "GOF of a stage = √(Σ χ² / (N obs + N restr. − N param)) over the data it "
                "fitted (within its sinθ/λ window) and every restraint: the figure the "
                "solver minimised and printed per cycle. It differs from the per-set GOF "
                "above, which leaves the restraints out.",
            )
        )
    if props is not None and structure is not None:
        spin = _spin_table(structure, snapshots, props)
        if spin is not None:
            blocks += [("h", 3, "Spin populations"), ("table", *spin)]
            blocks.append(
                (
                    "note",
                    "Spin populations in μB (chargespin basis) or electrons per spin (updown); "
                    "m = Pv↑ − Pv↓ + P00↑ − P00↓. N obs, GOF and Rw(1−R) are those of the "
                    "flipping ratios alone; N param is what the stage refined, of which the "
                    "flipping ratios are charged their share (N obs / all observations of the "
                    "stage). The final column's GOF is the flipping ratios' GOF of the "
                    "data-set table.",
                )
            )
    steps.step("summary", 1, 1, "agreement, stages, spin table")
    warnings = result.get("warnings") or []
    blocks.append(("h", 3, "Warnings"))
    blocks += [("p", f"⚠ {w}") for w in warnings] or [("p", "None.")]
    bad = implausible_rows(result)
    blocks.append(("h", 3, "Implausible parameters"))
    if bad:
        blocks.append(("table", *bad))
    else:
        blocks.append(("p", "None: every refined parameter is inside its plausible range."))
    return blocks


def _properties(folder: Path, props) -> list:
    """The Properties section: charges, moments, d-orbitals; topology when available."""
    blocks: list[tuple] = [("h", 2, "Properties")]
    if props is not None:
        for title_t, headers, rows in properties_tables(props):
            blocks += [("h", 3, title_t), ("table", headers, rows)]
        if props.orbitals:
            blocks.append(
                (
                    "p",
                    "d-orbital populations assume one radial function for the spherical part "
                    "(Pv) and the l = 2, 4 deformation functions (Holladay, Leung & Coppens "
                    "1983); every valence electron of the metal counts as a d electron.",
                )
            )
        if props.note:
            blocks.append(("p", "Note: " + _shorten(props.note) + "."))
    try:  # the topology helper's section (critical points, basins), when it exists
        from chasm.topology.report_section import properties_section
    except ImportError:
        properties_section = None
    if properties_section is not None:
        text = properties_section(folder)
        if text:
            blocks.append(("md", text))
    if len(blocks) == 1:
        blocks.append(("p", "No model: no properties."))
    return blocks


def _parameters(result: dict) -> list:
    """The Parameters section: refined ones shown, the others folded."""
    free, fixed = parameter_tables(result)
    blocks: list[tuple] = [("h", 2, "Parameters")]
    blocks.append(
        (
            "note",
            f"{len(free)} parameters refined in the last stage (with su; some tied by "
            f"constraints), {len(fixed)} fixed, fixed by symmetry or a constraint, or refined "
            "only in earlier stages. value(su): su in units of the last digit, rounded by the "
            "rule of 19; no parentheses: fixed or exact.",
        )
    )
    if free:
        table = [("table", *side_by_side(free))]
        if len(free) > FOLD_FREE:
            blocks.append(("details", f"Refined in the last stage ({len(free)})", table))
        else:
            blocks += [("h", 3, "Refined in the last stage"), *table]
    if fixed:
        title = f"Fixed, exact or not refined in the last stage ({len(fixed)})"
        blocks.append(("details", title, [("table", *side_by_side(fixed))]))
    return blocks


def _stage_data(result: dict, refinement) -> None:
    """Give stages without them the data sets and N obs they fitted (from the refinement)."""
    outs = refinement.outcomes if refinement is not None else []
    stages = result.get("stages") or []
    if len(outs) != len(stages):
        return
    for s, o in zip(stages, outs, strict=True):
        if not s.get("datasets"):
            s["data"] = [x.name for x in o.result.datasets]
            s["datasets"] = {x.name: {"n_obs": int(x.n)} for x in o.result.datasets}


FOLD_FREE = 150
"""More refined parameters than this are folded too."""


def write_report(
    folder: str | os.PathLike,
    refinement: Refinement | None = None,
    maps: bool = True,
    snapshots: list[Snapshot] | None = None,
    progress: bool = False,
    observed: Refinement | None = None,
    extra_notes: list[str] | None = None,
    planes: list | None = None,
) -> dict[str, Path]:
    """Write report.html and report.md (+ PNG figures) into a result folder.

    The report reads as the results section of a paper: a summary first (the
    structure and data, the agreement per data set and per stage with the N
    and parameters of each GOF, the spin-population table, warnings and
    implausible parameters), then the maps, the properties and the
    diagnostics (:mod:`chasm.diagnostics`), the parameters last (the refined
    ones; the others folded). A table of contents links the sections in both
    the HTML page (self-contained) and the Markdown file.

    Parameters
    ----------
    folder : str or path
        The result folder (result.json and model.cif, as written by the
        project runner); with ``refinement`` given, result.json and model.cif
        are optional.
    refinement : Refinement, optional
        The refinement that produced the folder (in its final state): su of
        derived quantities with correlations, the correlation table of the
        last stage, the PND-only stage column, the residual map and the
        residual-density analysis.
    maps : bool
        Compute and draw the maps (deformation, spin, residual).
    snapshots : list of Snapshot, optional
        Extra columns of the spin-population table, shown before the final
        model (e.g. a PND-only refinement done elsewhere).
    progress : bool
        Print a line per step on stderr (``report: maps 2/3 spin density (0.4 s)``).
    observed : Refinement, optional
        Without ``refinement``: a refinement at the final values used only for
        the observed data — the residual map and the reflection diagnostics
        (``chasm report`` builds it with
        :func:`chasm.project.observed.observed_refinement`). Without either,
        the reflection diagnostics come from the folder's model.fcf.
    extra_notes : list of str, optional
        Lines for the report's notes (e.g. where the observed data came from).
    planes : list of MapPlane, optional
        The map planes (:class:`chasm.maps.planes.MapPlane`), instead of the
        project's ``[[maps]]`` or the default planes (``chasm demo``: the
        Cu1-O1-N1 plane).

    Returns
    -------
    dict
        ``"html"``, ``"md"`` and one entry per PNG file -> path.

    Raises
    ------
    InputError
        A folder without result.json and no refinement, a folder that does
        not exist, an unreadable result.json or model.cif.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(
            "the result folder does not exist; give the refinement's output folder", str(folder)
        )
    result = _read_result(folder)
    if result is None and refinement is None:
        if (folder / "table1.txt").is_file():  # what `chasm demo` writes (no result.json)
            raise InputError(
                "this is a `chasm demo` folder: its report is already there (report.html); "
                "to refine and report the demo yourself, write it as a project with "
                "`chasm demo --write-project DIR`, then `chasm simulate DIR/project.toml` and "
                "`chasm refine DIR/project.toml`",
                str(folder),
            )
        raise InputError(
            "no result.json in the folder; give the output folder of `chasm refine` "
            "(from Python: pass the Refinement)",
            str(folder),
        )
    if result is None:
        result = _result_from_refinement(refinement)
    _stage_data(result, refinement)
    steps = Steps(progress)
    notes: list[str] = []
    if refinement is not None:
        structure = refinement.structure
        crystal, models = refinement.crystal, refinement.models
        props = refinement_properties(refinement)
    elif (folder / "model.cif").is_file():
        structure = structure_from_folder(folder, result)
        crystal, models = structure.crystal, structure.models
        su = {k: v.get("su") for k, v in result.get("parameters", {}).items()}
        props = atomic_properties(structure, structure.values(), su=su)
        notes.append(
            "Made from the result folder alone: standard uncertainties of charges, moments, "
            "sums and d-orbital populations combine the parameter su WITHOUT correlations."
        )
    else:
        structure = crystal = models = props = None
        notes.append("no model.cif: no charges, populations or maps")
    steps.step("model", 1, 1, "structure and properties")
    if refinement is not None:
        observed = refinement
    notes += [n for n in (extra_notes or []) if n]
    snaps: list[Snapshot] = []
    if props is not None:
        snaps = _snapshots(refinement, result, structure)
        snaps = snaps[:-1] + list(snapshots or []) + snaps[-1:]
    title = f"chasm refinement report: {crystal.name if crystal is not None else folder.name}"
    blocks: list[tuple] = [("h", 1, title)]
    blocks.append(("p", f"chasm {__version__}; result folder {folder}."))
    blocks.append(("toc",))
    blocks += _summary(result, crystal, refinement, structure, props, snaps, steps)
    files: dict[str, Path] = {}
    blocks.append(("h", 2, "Maps"))
    pictures = []
    if maps and crystal is not None:
        from chasm.report.figures import report_maps

        pictures = report_maps(
            folder, crystal, models, observed, notes, result=result, steps=steps, planes=planes
        )
    for name, caption, data in pictures:
        blocks.append(("img", name, caption, data))
        files[name] = folder / name
    if not pictures:
        blocks.append(("p", "No maps (--no-maps, or see the notes)."))
    blocks += _peaks(result)
    blocks += _properties(folder, props)
    steps.step("properties", 1, 1, "tables")
    more, figures = diagnostics_blocks(
        folder, observed, crystal, result, steps, _correlations(result, refinement)
    )
    blocks += more
    files.update(figures)
    blocks += _parameters(result)
    if notes:
        blocks += [("h", 2, "Notes")] + [("p", n) for n in notes]
    write_text_atomic(folder / "report.md", render_markdown(blocks))
    write_text_atomic(folder / "report.html", render_html(title, blocks))
    steps.step("files", 1, 1, "report.html and report.md")
    files["md"], files["html"] = folder / "report.md", folder / "report.html"
    return files


def _peaks(result: dict) -> list:
    """The residual-density peaks of result.json as a table."""
    peaks = (result.get("residual_density") or {}).get("peaks")
    if not peaks:
        return []
    rd = result["residual_density"]
    return [
        ("h", 3, f"Residual density peaks ({rd.get('dataset')})"),
        (
            "p",
            f"max {_f(rd.get('max'), '{:.3f}')}, min {_f(rd.get('min'), '{:.3f}')}, "
            f"rms {_f(rd.get('rms'), '{:.3f}')} e/Å³",
        ),
        (
            "table",
            ["height (e/Å³)", "x", "y", "z", "nearest atom", "distance (Å)"],
            [
                [
                    _f(q["height"], "{:.3f}"),
                    *(f"{v:.4f}" for v in q["frac"]),
                    str(q.get("nearest_atom") or "-"),
                    _f(q.get("distance"), "{:.2f}"),
                ]
                for q in peaks
            ],
        ),
    ]

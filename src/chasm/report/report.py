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

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chasm import __version__
from chasm.density.model import HansenCoppensAtom, SplitAtom
from chasm.errors import InputError
from chasm.io.atomic import write_text_atomic
from chasm.maps.residual import xray_residual_map
from chasm.progress import Progress
from chasm.properties import (
    TRANSITION_METALS,
    Properties,
    atomic_properties,
    format_table,
    format_value,
    properties_tables,
    refinement_properties,
)
from chasm.refine.result import Result

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
def _plane_atoms(crystal, models) -> tuple[list, str]:
    """Three atom specifications for the map plane and a description."""
    from chasm.crystal.neighbours import neighbours

    metals = [
        i
        for i, m in enumerate(models)
        if _atomic_number(crystal.atoms[i].element) in TRANSITION_METALS
    ]
    for i in metals:
        near = [
            n
            for n in neighbours(crystal, i, 3.2)
            if crystal.atoms[n.index].element not in ("H", "D")
        ]
        if len(near) < 2:
            continue
        centre = crystal.atoms[i].label
        c = crystal.frac_to_cart(crystal.atoms[i].xyz)
        for a in range(len(near)):
            for b in range(a + 1, len(near)):
                u, v = near[a].cart - c, near[b].cart - c
                if np.linalg.norm(np.cross(u, v)) > 0.2 * np.linalg.norm(u) * np.linalg.norm(v):
                    specs = [
                        centre,
                        (near[a].label, near[a].op, near[a].shift),
                        (near[b].label, near[b].op, near[b].shift),
                    ]
                    return specs, f"{centre}, {near[a].label}, {near[b].label}"
    heavy = [a.label for a in crystal.atoms if a.element not in ("H", "D")]
    return heavy[:3], ", ".join(heavy[:3])


def _atomic_number(element: str) -> int:
    import gemmi

    return gemmi.Element(element).atomic_number


def _maps(
    folder: Path, crystal, models, refinement, notes: list[str], progress: bool = False
) -> list[tuple]:
    """(file name, caption, png bytes) of each map (``progress``: a bar on a terminal)."""
    from chasm.maps.density import deformation_density, spin_density
    from chasm.maps.grids import Plane, fourier_on_plane
    from chasm.maps.plot import plot_plane

    specs, what = _plane_atoms(crystal, models)
    if len(specs) < 3:
        notes.append("no maps: fewer than three non-H atoms")
        return []
    try:
        plane = Plane.through_atoms(crystal, specs, size=(6.0, 6.0), step=0.05, centre=0)
    except InputError as exc:
        notes.append(f"no maps: {exc.message}")
        return []
    pts = plane.points
    charge = [m.charge_model() if isinstance(m, SplitAtom) else m for m in models]
    out = []
    split = any(isinstance(m, SplitAtom) for m in models)
    bar = Progress(1 + split + (refinement is not None), "report maps", quiet=not progress)

    def draw(name: str, values, kind: str, caption: str) -> None:
        path = folder / name
        plot_plane(path, plane, values, crystal, kind=kind, title=caption)
        out.append((name, caption, path.read_bytes()))
        bar.advance()

    draw(
        "report_deformation.png",
        deformation_density(crystal, charge, pts),
        "deformation",
        f"Static deformation density (model − neutral spherical atoms), plane {what}",
    )
    if split:
        up = [m.up if isinstance(m, SplitAtom) else None for m in models]
        dn = [m.dn if isinstance(m, SplitAtom) else None for m in models]
        draw(
            "report_spin.png",
            spin_density(crystal, up, dn, pts),
            "spin",
            f"Static spin density ρ↑ − ρ↓ (μB/Å³), plane {what}",
        )
    if refinement is not None:
        res = xray_residual_map(refinement)
        if res is not None:
            fmap, name = res
            draw(
                "report_residual.png",
                fourier_on_plane(fmap, plane),
                "residual",
                f"Residual density Fo − Fc ({name}), plane {what}",
            )
    else:
        notes.append("the residual map needs the refinement object (observed data)")
    bar.close()
    return out


# --------------------------------------------------------------------------- content
def _f(x, fmt: str = "{:.4f}") -> str:
    return "-" if x is None else fmt.format(float(x))


def _dataset_table(result: dict) -> tuple[list[str], list[list[str]]]:
    headers = ["data set", "kind", "N obs", "R1", "wR2", "Rw", "GOF", "χ²", "c_e", "grad. share"]
    rows = []
    for name, d in result.get("datasets", {}).items():
        rows.append(
            [
                name,
                str(d.get("kind", "-")),
                str(d.get("n_obs", "-")),
                _f(d.get("R1")),
                _f(d.get("wR2")),
                _f(d.get("Rw")),
                _f(d.get("gof"), "{:.3f}"),
                _f(d.get("chi2"), "{:.5g}"),
                _f(d.get("factor"), "{:.4g}"),
                _f(d.get("gradient_share"), "{:.3f}"),
            ]
        )
    return headers, rows


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


def _pnd_figures(refinement, p: np.ndarray, names: list[str], n_par: int):
    """N obs, GOF and Rw(1−R) of the flipping-ratio sets among ``names`` at p."""
    sets = [d for d in refinement.datasets if d.kind == "pnd" and d.name in names]
    if not sets:
        return None, None
    saved = refinement.params.values.copy()
    try:
        refinement.set_values(p)
        ag = [d.agreement(p, n_par) for d in sets]
    finally:
        refinement.set_values(saved)
    return sum(a["n_obs"] for a in ag), _combined_rw(ag)


def _combined_rw(agreements) -> float | None:
    """Rw(1−R) of several sets: sqrt(Σ χ²_e / Σ χ²_e/Rw_e²)."""
    num = den = 0.0
    for a in agreements:
        if not a.get("Rw") or a.get("chi2") is None:
            return None
        num += a["chi2"]
        den += a["chi2"] / a["Rw"] ** 2
    return float(np.sqrt(num / den)) if den > 0 else None


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
            n_obs, rw = _pnd_figures(refinement, r.p, used, o.n_free)
            out.append(
                Snapshot(
                    f"stage {o.stage.name}",
                    dict(zip(names, r.p[:n], strict=True)),
                    covariance=r.cov_p()[:n, :n],
                    names=list(names),
                    n_obs=n_obs,
                    n_par=o.n_free,
                    gof=r.gof,
                    rw=rw,
                )
            )
    params = result.get("parameters", {})
    final = Snapshot(
        "final",
        {k: v["value"] for k, v in params.items()},
        su={k: v.get("su") for k, v in params.items()},
    )
    if pnd_rows:
        final.n_obs = sum(int(d["n_obs"]) for d in pnd_rows.values())
        final.rw = _combined_rw(list(pnd_rows.values()))
    if refinement is not None and refinement.outcomes:
        last = refinement.outcomes[-1]
        final.n_par, final.gof = last.n_free, last.result.gof
        final.values = dict(zip(refinement.params.names, refinement.params.values, strict=True))
    else:
        stages = result.get("stages", [])
        if stages:
            final.n_par, final.gof = stages[-1].get("n_free"), stages[-1].get("gof")
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
    rows.append(["GOF", *(_f(s.gof, "{:.2f}") for s in snaps)])
    rows.append(["Rw(1−R)", *(_f(s.rw, "{:.3f}") for s in snaps)])
    return headers, rows


# --------------------------------------------------------------------------- rendering
def _render_md(blocks: list[tuple]) -> str:
    out = []
    for b in blocks:
        if b[0] == "h":
            out.append(f"{'#' * b[1]} {b[2]}")
        elif b[0] == "p":
            out.append(b[1])
        elif b[0] == "table":
            out.append(format_table(b[1], b[2], markdown=True))
        elif b[0] == "img":
            out.append(f"![{b[2]}]({b[1]})\n\n*{b[2]}*")
    return "\n\n".join(out) + "\n"


def _render_html(title: str, blocks: list[tuple]) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:70em;margin:auto;padding:1em}"
        "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #bbb;"
        "padding:2px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
        "img{max-width:100%}</style></head><body>",
    ]
    for b in blocks:
        if b[0] == "h":
            out.append(f"<h{b[1]}>{e(b[2])}</h{b[1]}>")
        elif b[0] == "p":
            out.append(f"<p>{e(b[1])}</p>")
        elif b[0] == "table":
            out.append("<table><tr>" + "".join(f"<th>{e(str(h))}</th>" for h in b[1]) + "</tr>")
            for row in b[2]:
                out.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>")
            out.append("</table>")
        elif b[0] == "img":
            data = base64.b64encode(b[3]).decode("ascii")
            out.append(
                f'<figure><img alt="{e(b[2])}" src="data:image/png;base64,{data}">'
                f"<figcaption>{e(b[2])}</figcaption></figure>"
            )
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_report(
    folder,
    refinement=None,
    maps: bool = True,
    snapshots: list[Snapshot] | None = None,
    progress: bool = False,
) -> dict[str, Path]:
    """Write report.html and report.md (+ PNG maps) into a result folder.

    Parameters
    ----------
    folder : str or path
        The result folder (result.json and model.cif, as written by the
        project runner); with ``refinement`` given, result.json and model.cif
        are optional.
    refinement : Refinement, optional
        The refinement that produced the folder (in its final state): su of
        derived quantities with correlations, the correlation table of the
        last stage, the PND-only stage column and the residual map.
    maps : bool
        Compute and draw the maps (deformation, spin, residual).
    snapshots : list of Snapshot, optional
        Extra columns of the spin-population table, shown before the final
        model (e.g. a PND-only refinement done elsewhere).
    progress : bool
        Show a progress bar of the maps on stderr (only on a terminal,
        :class:`chasm.progress.Progress`).

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
        raise InputError(
            "no result.json in the folder; run the refinement first or pass the Refinement",
            str(folder),
        )
    if result is None:
        result = _result_from_refinement(refinement)
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
    title = f"chasm refinement report: {crystal.name if crystal is not None else folder.name}"
    blocks: list[tuple] = [("h", 1, title)]
    blocks.append(("p", f"chasm {__version__}; folder {folder}."))
    score = result.get("score", {})
    blocks.append(
        (
            "p",
            f"Score {score.get('scheme', '-')} = {_f(score.get('value'), '{:.6g}')}; "
            f"converged: {result.get('converged')}.",
        )
    )
    blocks += [("h", 2, "Data sets and agreement"), ("table", *_dataset_table(result))]
    blocks.append(
        (
            "p",
            "R1 on F, wR2 on F²; Rw is Rw(F) for X-ray and unpolarised-neutron data and "
            "Rw(1−R) for flipping ratios; c_e is the score factor of the data set and the "
            "gradient share its pull on the parameters, both from the last stage that fitted it.",
        )
    )
    stages = result.get("stages", [])
    if stages:
        rows = [
            [
                s["name"],
                str(s.get("n_free", "-")),
                str(s.get("cycles", "-")),
                _f(s.get("gof"), "{:.3f}"),
                str(s.get("converged", "-")),
            ]
            for s in stages
        ]
        blocks += [
            ("h", 3, "Stages"),
            ("table", ["stage", "N param", "cycles", "GOF", "converged"], rows),
        ]
    rows = [
        [name, format_value(p["value"], p.get("su")), "yes" if p.get("free") else ""]
        for name, p in result.get("parameters", {}).items()
    ]
    blocks += [
        ("h", 2, "Parameters"),
        ("table", ["parameter", "value(su)", "free (last stage)"], rows),
    ]
    corr, what = _correlations(result, refinement)
    blocks += [("h", 2, "Largest correlations"), ("p", what + ".")]
    if corr:
        blocks.append(("table", ["parameter 1", "parameter 2", "ρ"], corr))
    if props is not None:
        snaps = _snapshots(refinement, result, structure)
        snaps = snaps[:-1] + list(snapshots or []) + snaps[-1:]
        spin = _spin_table(structure, snaps, props)
        if spin is not None:
            blocks += [("h", 2, "Spin populations"), ("table", *spin)]
            blocks.append(
                (
                    "p",
                    "Spin populations in μB (chargespin basis) or electrons per spin (updown); "
                    "m = Pv↑ − Pv↓ + P00↑ − P00↓; N obs, GOF and Rw(1−R) of the flipping ratios, "
                    "N param refined in that stage.",
                )
            )
        blocks.append(("h", 2, "Atomic charges, moments and d-orbital populations"))
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
            blocks.append(("p", "Note: " + props.note + "."))
    files: dict[str, Path] = {}
    if maps and crystal is not None:
        from chasm.report.figures import report_maps

        pictures = report_maps(folder, crystal, models, refinement, notes, progress, result)
        if pictures:
            blocks.append(("h", 2, "Maps"))
        for name, caption, data in pictures:
            blocks.append(("img", name, caption, data))
            files[name] = folder / name
    peaks = (result.get("residual_density") or {}).get("peaks")
    if peaks:
        rd = result["residual_density"]
        blocks += [
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
    if notes:
        blocks += [("h", 2, "Notes")] + [("p", n) for n in notes]
    write_text_atomic(folder / "report.md", _render_md(blocks))
    write_text_atomic(folder / "report.html", _render_html(title, blocks))
    files["md"], files["html"] = folder / "report.md", folder / "report.html"
    return files

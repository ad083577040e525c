"""Run a project: stages, one line per cycle, and the output folder.

The output folder receives, after EVERY completed stage (so a failure later
leaves the last good model on disk), written atomically:

- ``result.json``: the stable layout of issue 3 (``converged``, ``cycles``,
  ``score``, ``datasets``, ``parameters``, ``correlations``) plus extra keys
  (``stages``, ``constraints``, ``warnings``, ``residual_density``,
  ``chasm_version``). Each data set has ``kind`` (xray, und, pnd), ``n_obs``,
  ``chi2``, ``gof``, ``R1``/``wR2`` (None for flipping ratios), ``Rw``
  (Rw(F) for F² data, Rw(1−R) for flipping ratios) and, from the last stage
  that fitted it, ``factor`` (the score's c_e, user weight included),
  ``gradient_share`` and ``information_share`` at that stage's solution
  (:class:`~chasm.refine.results.DatasetFit`); every stage entry lists the
  same three figures for the data sets it fitted;
- ``model.cif``: the refined model as rhoCIF (:mod:`chasm.io.rhocif`); a
  split atom is written as its charge model (P↑ + P↓, κ of the up part),
  its spin populations are in ``result.json``;
- ``listing.txt``: a plain-text listing (model, constraints, cycles,
  per-data-set table, parameters with su, correlations, residual-density
  peaks, and the warnings repeated at the end: parameters at or beyond their
  plausible range, |correlation| above the threshold, data sets whose GOF is
  far from the others).

The project file and the data are only read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chasm import __version__
from chasm.io.atomic import write_text_atomic
from chasm.project.build import Built, build
from chasm.project.project import load_project
from chasm.refine.refinement import share_gof
from chasm.refine.results import CycleInfo

__all__ = [
    "RunOutcome",
    "run_project",
    "result_dict",
    "cycle_line",
    "dataset_table",
    "warnings_for",
]


@dataclass
class RunOutcome:
    """What :func:`run_project` did."""

    built: Built
    output: Path
    result: dict
    lines: list[str] = field(default_factory=list)


def cycle_line(info: CycleInfo, agreement: dict | None = None, seconds: float = 0.0) -> str:
    """``stage  cycle  score  wR2  GOF  max shift/su (name)  seconds``."""
    wr = " ".join(f"wR2({k})={v:.4f}" for k, v in info.wr.items())
    flag = "" if info.accepted else "  [rejected]"
    return (
        f"{info.stage:<12s} {info.cycle:3d}  score={info.score:.6g}  {wr}  "
        f"GOF={info.gof:.3f}  max shift/su={info.max_shift_su:.3g} ({info.max_shift_name})"
        f"  {seconds:.1f}s{flag}"
    )


def _figures(a: dict) -> str:
    """``R1=… wR2=… Rw=… GOF=…`` with only the figures defined for the data set."""
    keys = ("R1", "wR2", "Rw", "gof")
    return " ".join(
        f"{'GOF' if k == 'gof' else k}={a[k]:.4f}" for k in keys if _f(a.get(k)) is not None
    )


def _f(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


#: GOF ratio to the median of the other data sets above which a warning is given.
GOF_SPREAD = 2.0


def _fit_figures(fit) -> dict:
    return {
        "factor": _f(fit.factor),
        "gradient_share": _f(fit.gradient_share),
        "information_share": _f(fit.information_share),
    }


def warnings_for(built: Built, result: dict) -> list[str]:
    """Warnings on the current state: bounds, correlations, GOF spread between data sets.

    Parameters
    ----------
    built : Built
    result : dict
        The :func:`result_dict` content (correlations and per-set GOF).
    """
    out: list[str] = []
    ref = built.refinement
    for p in ref.params:
        if p.bounds is None or not p.free:
            continue
        lo, hi = p.bounds
        tol = 1e-6 * max(1.0, abs(p.value))
        if p.value < lo - tol or p.value > hi + tol:
            out.append(f"{p.name} = {p.value:.6g} outside its plausible range [{lo:g}, {hi:g}]")
        elif abs(p.value - lo) <= tol or abs(p.value - hi) <= tol:
            out.append(f"{p.name} = {p.value:.6g} at the bound of its range [{lo:g}, {hi:g}]")
    threshold = built.project.data["refinement"]["correlation_threshold"]
    for a, b, r in result["correlations"]:
        if abs(r) > threshold:
            out.append(f"correlation {a} / {b} = {r:+.3f} (|rho| > {threshold:g})")
    gofs = {n: d["gof"] for n, d in result["datasets"].items() if d.get("gof")}
    if len(gofs) >= 2:
        for name, g in gofs.items():
            others = np.median([v for k, v in gofs.items() if k != name])
            if others > 0 and not 1 / GOF_SPREAD <= g / others <= GOF_SPREAD:
                out.append(
                    f"data set {name}: GOF {g:.3f} is far from the others (median {others:.3f}); "
                    "check its weights / sigmas or its user_weight"
                )
    for o in ref.outcomes:
        if not o.result.converged:
            out.append(f"stage {o.stage.name} did not converge ({o.result.message})")
    return out


def result_dict(built: Built) -> dict:
    """The result.json content for the refinement's current state."""
    ref = built.refinement
    outs = ref.outcomes
    last = outs[-1].result if outs else None
    n_par = outs[-1].n_free if outs else 0
    agreement = ref.agreement(n_par)
    datasets = {}
    for name, a in agreement.items():
        datasets[name] = {"kind": a["kind"], "n_obs": a["n_obs"], "n_par": n_par}
        for key in ("chi2", "gof", "R1", "wR2", "Rw", "R1_gt"):
            datasets[name][key] = _f(a.get(key))
        for key in ("n_gt", "n_read", "observable", "weights"):
            if key in a:
                datasets[name][key] = a[key]
        datasets[name].update(factor=None, gradient_share=None, information_share=None)
        datasets[name]["stage"] = None
        for o in reversed(outs):  # the last stage that fitted this data set
            fit = next((x for x in o.result.datasets if x.name == name), None)
            if fit is not None:
                datasets[name].update(_fit_figures(fit))
                datasets[name]["stage"] = o.stage.name
                break
    share_gof(datasets, n_par)
    refined = set()
    for o in outs:
        refined |= set(o.result.names)
    params = {}
    for p in ref.params:
        su = p.su if (p.su is not None and p.su > 0) else None
        params[p.name] = {
            "value": float(p.value),
            "su": None if su is None else float(su),
            "free": bool(p.free),
        }
    stages = [
        {
            "name": o.stage.name,
            "cycles": o.result.cycles,
            "converged": o.result.converged,
            "n_free": o.n_free,
            "score": _f(o.result.score),
            "gof": _f(o.result.gof),
            "message": o.result.message,
            "max_constraint_residual": o.max_constraint_residual,
            "data": [x.name for x in o.result.datasets if x.name in agreement],
            "datasets": {
                x.name: {"n_obs": int(x.n), "chi2": _f(x.chi2), **_fit_figures(x)}
                for x in o.result.datasets
                if x.name in agreement
            },
        }
        for o in outs
    ]
    out = {
        "converged": bool(last.converged) if last else False,
        "cycles": int(sum(o.result.cycles for o in outs)),
        "score": {"scheme": ref.scheme.upper(), "value": _f(last.score) if last else None},
        "datasets": datasets,
        "parameters": params,
        "correlations": [[a, b, float(r)] for a, b, r in (last.high_correlations if last else [])],
        "stages": stages,
        "constraints": {
            "rows": len(ref.all_constraints()),
            "max_residual": max((o.max_constraint_residual for o in outs), default=0.0),
        },
        "chasm_version": __version__,
        "project": str(built.project.path),
    }
    out["warnings"] = warnings_for(built, out)
    return out


def _residual(built: Built) -> tuple[dict, str]:
    """Fo − Fc map of the first X-ray data set: figures and a peak table."""
    from chasm.maps.fourier import peaks, residual_peaks_table
    from chasm.report.report import xray_residual_map

    fmap, name = xray_residual_map(built.refinement)
    st = fmap.stats()
    pk = peaks(fmap, n=5, crystal=built.crystal)
    info = {
        "dataset": name,
        "max": float(st.max),
        "min": float(st.min),
        "rms": float(st.rms),
        "peaks": [
            {
                "height": float(q.height),
                "frac": [float(v) for v in q.frac],
                "nearest_atom": q.atom,
                "distance": _f(q.distance),
            }
            for q in pk
        ],
    }
    return info, residual_peaks_table(pk)


def _listing(built: Built, result: dict, lines: list[str], peaks_table: str | None) -> str:
    ref, cr = built.refinement, built.crystal
    out = [
        f"chasm {__version__} refinement listing",
        f"project: {built.project.path}",
        f"title: {built.project.data['title']}",
        "",
        f"structure: {cr.name}, {len(cr.atoms)} atoms, {cr.n_ops} symmetry operations",
        "",
    ]
    out.append("model:")
    for atom, m in zip(cr.atoms, built.models, strict=True):
        kind = type(m).__name__
        extra = ""
        if hasattr(m, "spin_pv"):
            extra = f" spin Pv={m.spin_pv:.4f}"
        if hasattr(m, "lmax"):
            extra += f" lmax={m.lmax}"
        axes = getattr(m, "axes", None)
        if axes is not None:
            extra += f" axes: {axes.as_text()}"
        out.append(f"  {atom.label:<6s} {atom.element:<3s} {kind}{extra}")
    if built.kappa_sets:
        out.append(
            "kappa sets: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in built.kappa_sets.items())
        )
    for r in built.riders:
        out.append(f"riding: {r.h} on {r.parent} at {r.distance:.3f} A")
    if built.split:
        out.append(
            f"spin-split atoms ({built.refinement.structure.basis}): {' '.join(built.split)}"
        )
    out += [f"note: {n}" for n in built.notes]
    out += ["", f"constraints ({len(ref.all_constraints())} rows):"]
    out += [f"  {t}" for t in ref.all_constraints().descriptions]
    out += ["", "datasets:"]
    out += [f"  {_describe(d)}" for d in ref.datasets]
    out += ["", "cycles:"] + [f"  {x}" for x in lines]
    out += ["", "agreement (final; factor and gradient share from the last stage fitting the set):"]
    out += dataset_table(result["datasets"])
    for st in result["stages"]:
        shares = ", ".join(
            f"{n} {v['gradient_share']:.3f}"
            for n, v in st["datasets"].items()
            if v["gradient_share"] is not None
        )
        out.append(f"  stage {st['name']}: data {', '.join(st['data'])}; gradient shares {shares}")
    out += ["", "parameters (value, su; * = free in the last stage):"]
    for name, p in result["parameters"].items():
        su = "" if p["su"] is None else f"{p['su']:.2g}"
        out.append(f"  {'*' if p['free'] else ' '} {name:<22s} {p['value']:>14.6f}  {su}")
    out += ["", "correlations above threshold:"]
    out += [f"  {a:<20s} {b:<20s} {r:+.3f}" for a, b, r in result["correlations"]] or ["  none"]
    if peaks_table:
        rd = result["residual_density"]
        out += [
            "",
            f"residual density (Fo - Fc, {rd['dataset']}): max {rd['max']:.3f}, "
            f"min {rd['min']:.3f}, rms {rd['rms']:.3f} e/A^3",
            peaks_table,
        ]
    out += ["", f"warnings ({len(result['warnings'])}):"]
    out += [f"  - {w}" for w in result["warnings"]] or ["  none"]
    return "\n".join(out) + "\n"


def _describe(d) -> str:
    """One line on a data set: kind, file, counts and its main options."""
    o = d.options
    if d.kind == "pnd":
        ext = f"sphere {d.extinction_model}" if d.extinction_on else "none"
        what = (
            f"{len(d.r_obs)} used; P {d.polarisation:+g}, e {d.efficiency:g}, "
            f"field {d.dataset.field:g} T, wavelength {d.wavelength:g} A, extinction {ext}, "
            f"ADP set {d.adp_set}"
        )
    else:
        what = (
            f"{len(d.reflections)} used (observable {o.observable}, weights {o.weights}, "
            f"extinction {o.extinction}, ADP set {d.adp_set})"
        )
    return f"{d.name}: {d.kind}, {d.n_read} read, {what}"


def _cell(x, fmt: str = "{:.4f}") -> str:
    return "-" if x is None else fmt.format(x)


def dataset_table(datasets: dict) -> list[str]:
    """The per-data-set table of the listing (one header line, one line per set)."""
    head = (
        f"  {'data set':<16s} {'kind':<5s} {'N':>6s} {'chi2':>12s} {'GOF':>8s} {'R1':>7s} "
        f"{'wR2':>7s} {'Rw':>7s} {'factor':>10s} {'grad.share':>10s}"
    )
    rows = [head]
    for name, a in datasets.items():
        rows.append(
            f"  {name:<16s} {a['kind']:<5s} {a['n_obs']:>6d} {_cell(a['chi2'], '{:.5g}'):>12s} "
            f"{_cell(a['gof'], '{:.3f}'):>8s} {_cell(a['R1']):>7s} {_cell(a['wR2']):>7s} "
            f"{_cell(a['Rw']):>7s} {_cell(a.get('factor'), '{:.4g}'):>10s} "
            f"{_cell(a.get('gradient_share'), '{:.3f}'):>10s}"
        )
    rows.append("  (R1 on F, wR2 on F2; Rw: Rw(F) for xray/und, Rw(1-R) for pnd)")
    return rows


def _write_outputs(built: Built, out: Path, lines: list[str], final: bool) -> dict:
    from chasm.io.rhocif import write_rhocif

    result = result_dict(built)
    table = None
    if final and any(d.kind == "xray" for d in built.refinement.datasets):
        result["residual_density"], table = _residual(built)
    ref = built.refinement
    su = {
        p.name: float(p.su)
        for p in list(ref.params)[: ref.n_struct]
        if p.su is not None and p.su > 0
    }
    extra = {}
    for name, a in result["datasets"].items():
        for key in ("R1", "wR2", "Rw"):
            if a.get(key) is not None:
                extra[f"_chasm_refine_{name}_{key}"] = f"{a[key]:.5f}"
    write_rhocif(
        out / "model.cif",
        built.crystal,
        built.models,
        su=su,
        extra=extra,
        adp_sets=ref.structure.adp or None,
    )
    write_text_atomic(out / "result.json", json.dumps(result, indent=1) + "\n")
    write_text_atomic(out / "listing.txt", _listing(built, result, lines, table))
    return result


def run_project(
    path,
    output: str | Path | None = None,
    echo: Callable[[str], None] | None = print,
    stages: list[str] | None = None,
    report: bool = True,
) -> RunOutcome:
    """Load, build and run a project file; write the output folder.

    Parameters
    ----------
    path : str or Path
        Project file.
    output : str or Path, optional
        Output folder (default: the project's ``output`` key).
    echo : callable or None
        Receives one line per cycle and per stage (None: silent).
    stages : list of str, optional
        Run only these stages (by name), in project order.
    report : bool
        Write report.html and report.md (with maps) at the end
        (:func:`chasm.report.report.write_report`).
    """
    project = load_project(path)
    built = build(project)
    out = Path(output) if output is not None else project.output
    out.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    say = echo or (lambda s: None)
    todo = built.stages
    if stages:
        known = [s.name for s in built.stages]
        unknown = [s for s in stages if s not in known]
        if unknown:
            from chasm.errors import InputError

            raise InputError(
                f"unknown stage(s) {unknown}; the project has {known}", str(project.path)
            )
        todo = [s for s in built.stages if s.name in stages]
    ref = built.refinement
    a0 = ref.agreement(0)
    for name, a in a0.items():
        say(f"start: {name} ({a['kind']}) {_figures(a)}")
    t0 = time.perf_counter()
    for stage in todo:

        def cb(info: CycleInfo) -> None:
            line = cycle_line(info, seconds=time.perf_counter() - t0)
            lines.append(line)
            say(line)

        o = ref.run_stage(stage, cb)
        ag = ref.agreement(o.n_free)
        summary = "  ".join(f"{n}: {_figures(a)}" for n, a in ag.items())
        msg = (
            f"stage {stage.name}: {'converged' if o.result.converged else 'NOT converged'}"
            f" after {o.result.cycles} cycles, {o.n_free} parameters; {summary}"
        )
        lines.append(msg)
        say(msg)
        final = stage is todo[-1]
        result = _write_outputs(built, out, lines, final)
    for w in result["warnings"]:
        say(f"warning: {w}")
    say(f"wrote {out / 'result.json'}, {out / 'model.cif'}, {out / 'listing.txt'}")
    if report:
        from chasm.report.report import write_report

        files = write_report(out, refinement=ref)
        say(f"report: {files.get('html', out / 'report.html')}")
    return RunOutcome(built, out, result, lines)

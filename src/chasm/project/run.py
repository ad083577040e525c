"""Run a project: stages, one line per cycle, and the output folder.

The output folder receives, after EVERY completed stage (so a failure later
leaves the last good model on disk), written atomically:

- ``result.json``: the stable layout of issue 3 (``converged``, ``cycles``,
  ``score``, ``datasets``, ``parameters``, ``correlations``) plus extra keys
  (``stages``, ``constraints``, ``residual_density``, ``chasm_version``);
- ``model.cif``: the refined model as rhoCIF (:mod:`chasm.io.rhocif`);
- ``listing.txt``: a plain-text listing (model, constraints, cycles,
  agreement, parameters with su, correlations, residual-density peaks).

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
from chasm.refine.results import CycleInfo

__all__ = ["RunOutcome", "run_project", "result_dict", "cycle_line"]


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


def _f(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


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
        if last is not None:
            fit = next((d for d in last.datasets if d.name == name), None)
            if fit is not None:
                datasets[name]["score_factor"] = _f(fit.factor)
                datasets[name]["gradient_share"] = _f(fit.gradient_share)
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
        }
        for o in outs
    ]
    return {
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


def _residual(built: Built) -> tuple[dict, str]:
    """Fo − Fc map of the first data set: figures and a peak table."""
    from chasm.maps.fourier import peaks, residual_map, residual_peaks_table

    ref = built.refinement
    d = ref.datasets[0]
    p = ref.params.values
    fo2, s2, y_calc, fc2_abs, _, _ = d.calculate(p, jacobian=False)
    k = float(p[ref.params.index(d.scale_name)])
    y_ext = (y_calc if d.options.observable == "F2" else y_calc**2) / (k * fc2_abs)
    fo = np.sqrt(np.maximum(fo2, 0.0) / y_ext)
    fmap = residual_map(built.crystal, d.reflections.hkl, fo, d.fc_complex(), scale=np.sqrt(k))
    st = fmap.stats()
    pk = peaks(fmap, n=5, crystal=built.crystal)
    info = {
        "dataset": d.name,
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
        if hasattr(m, "lmax"):
            extra = f" lmax={m.lmax}"
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
    out += ["", f"constraints ({len(ref.all_constraints())} rows):"]
    out += [f"  {t}" for t in ref.all_constraints().descriptions]
    out += ["", "datasets:"]
    for d in ref.datasets:
        out.append(
            f"  {d.name}: {d.kind}, {d.n_read} read, {len(d.reflections)} used "
            f"(observable {d.options.observable}, weights {d.options.weights}, "
            f"extinction {d.options.extinction})"
        )
    out += ["", "cycles:"] + [f"  {x}" for x in lines]
    out += ["", "agreement (final):"]
    for name, a in result["datasets"].items():
        keys = ("R1", "R1_gt", "wR2", "Rw", "gof", "chi2")
        figures = " ".join(f"{k}={a[k]:.4f}" for k in keys if a.get(k) is not None)
        out.append(f"  {name}: {figures} N={a['n_obs']} Npar={a['n_par']}")
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
    return "\n".join(out) + "\n"


def _write_outputs(built: Built, out: Path, lines: list[str], final: bool) -> dict:
    from chasm.io.rhocif import write_rhocif

    result = result_dict(built)
    table = None
    if final:
        result["residual_density"], table = _residual(built)
    ref = built.refinement
    atomic = set(ref.params.names[: ref.n_struct])
    su = {
        p.name: float(p.su)
        for p in ref.params
        if p.name in atomic and p.su is not None and p.su > 0
    }
    extra = {}
    for name, a in result["datasets"].items():
        extra[f"_chasm_refine_{name}_R1"] = f"{a['R1']:.5f}"
        extra[f"_chasm_refine_{name}_wR2"] = f"{a['wR2']:.5f}"
    write_rhocif(out / "model.cif", built.crystal, built.models, su=su, extra=extra)
    write_text_atomic(out / "result.json", json.dumps(result, indent=1) + "\n")
    write_text_atomic(out / "listing.txt", _listing(built, result, lines, table))
    return result


def run_project(
    path,
    output: str | Path | None = None,
    echo: Callable[[str], None] | None = print,
    stages: list[str] | None = None,
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
        say(f"start: {name} R1={a['R1']:.4f} wR2={a['wR2']:.4f} GOF={a['gof']:.3f}")
    t0 = time.perf_counter()
    for stage in todo:

        def cb(info: CycleInfo) -> None:
            line = cycle_line(info, seconds=time.perf_counter() - t0)
            lines.append(line)
            say(line)

        o = ref.run_stage(stage, cb)
        ag = ref.agreement(o.n_free)
        summary = "  ".join(
            f"{n}: R1={a['R1']:.4f} wR2={a['wR2']:.4f} GOF={a['gof']:.3f}" for n, a in ag.items()
        )
        msg = (
            f"stage {stage.name}: {'converged' if o.result.converged else 'NOT converged'}"
            f" after {o.result.cycles} cycles, {o.n_free} parameters; {summary}"
        )
        lines.append(msg)
        say(msg)
        final = stage is todo[-1]
        result = _write_outputs(built, out, lines, final)
    say(f"wrote {out / 'result.json'}, {out / 'model.cif'}, {out / 'listing.txt'}")
    return RunOutcome(built, out, result, lines)

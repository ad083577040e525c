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
- at the end of the run only, ``model_core.cif`` (publication CIF: values
  with su, ``_refine_ls_*``, ``_geom_*``) and ``model.fcf`` (SHELX LIST 4),
  :mod:`chasm.project.publish`;
- ``listing.txt``: a plain-text listing (model, constraints, cycles,
  per-data-set table, parameters with su, correlations, residual-density
  peaks, and the warnings repeated at the end: parameters at or beyond their
  plausible range, |correlation| above the threshold, data sets whose GOF is
  far from the others).

Progress and control (:func:`run_project`):

- one line per cycle: stage, cycle, score, the agreement of every data set
  the stage fits (wR2 for F², wR for F, Rw(1−R) for flipping ratios), GOF,
  max shift/su and the seconds of the cycle; ``verbose`` adds per data set
  N, χ², the score factor c_e and the gradient share, and the time spent in
  the data sets' evaluations against the rest of the cycle;
- a checkpoint, ``checkpoint.json`` in the output folder, written atomically
  after every accepted cycle and every completed stage: the stages asked
  for, those completed (with their result.json entries), the stage and
  cycle in progress, every parameter (data-set scales and extinction
  included) with value and su, and the listing's cycle lines;
- the first SIGINT (Ctrl-C) stops after the cycle in progress: the last
  accepted model goes to result.json (``"converged": false``,
  ``"interrupted": true``, ``"stopped_at": {"stage", "cycle"}``), model.cif
  and listing.txt; a second SIGINT aborts at once (the checkpoint of the
  last accepted cycle stays). ``resume=True`` reads the checkpoint, skips
  the completed stages and restarts the interrupted (or failed) stage from
  the saved parameters;
- the warnings of the run (final state, stages, huge shifts) come back in
  :attr:`RunOutcome.warnings`, for one block at the end.

The project file and the data are only read.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chasm import __version__
from chasm.errors import InputError
from chasm.io.atomic import clean_stale_temp, protect_inputs, refuse_input, write_text_atomic
from chasm.io.lock import LOCK_NAME, FolderLock
from chasm.project.build import Built, build
from chasm.project.checks import spin_warnings
from chasm.project.defaults import obs_per_parameter_warning
from chasm.project.project import load_project
from chasm.project.shelx_parity import shelxl_comparison
from chasm.refine.plausibility import check as check_plausibility
from chasm.refine.refinement import Stage, share_gof
from chasm.refine.results import CycleInfo
from chasm.refine.similarity import restraint_summary
from chasm.scattering.engine import U_LABELS
from chasm.topology.covariance import write_covariance

__all__ = [
    "RunOutcome",
    "run_project",
    "result_dict",
    "cycle_line",
    "dataset_table",
    "warnings_for",
    "CHECKPOINT",
]

#: The checkpoint file in the output folder (module docstring).
CHECKPOINT = "checkpoint.json"
_CHECKPOINT_FORMAT = "chasm-checkpoint-1"

#: A cycle with max |shift|/su above this is reported as a warning.
HUGE_SHIFT_SU = 100.0


@dataclass
class RunOutcome:
    """What :func:`run_project` did.

    Attributes
    ----------
    built : Built
    output : Path
        The output folder.
    result : dict
        The result.json content.
    lines : list of str
        The cycle and stage lines (as in the listing).
    warnings : list of str
        Every warning of the run, once: the final state's (result.json
        ``warnings``), those of earlier stages no longer true at the end,
        huge shifts.
    interrupted : bool
        Stopped by SIGINT; ``stopped_at`` says where.
    stopped_at : dict or None
        ``{"stage": name, "cycle": n}``: the stage a resume restarts and the
        last cycle done in it (0: not started).
    """

    built: Built
    output: Path
    result: dict
    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    interrupted: bool = False
    stopped_at: dict | None = None


def cycle_line(info: CycleInfo, agreement: dict | None = None, seconds: float = 0.0) -> str:
    """``stage  cycle  score  agreement  GOF  max shift/su (name)  GN step/su  grad/su  seconds``.

    ``max shift/su`` is the step taken (damped or limited); ``GN step/su`` and
    ``grad/su`` are the convergence figures of the point the cycle started from
    (the undamped step and the gradient, in su; both below tol at convergence).

    Parameters
    ----------
    info : CycleInfo
    agreement : dict, optional
        Data-set name -> (label, value), e.g. ``{"xray": ("wR2", 0.031)}``
        (default: wR2 = ``info.wr`` for every set the solver saw).
    seconds : float
        Time of the cycle.
    """
    if agreement is None:
        agreement = {k: ("wR2", v) for k, v in info.wr.items()}
    wr = " ".join(f"{label}({k})={v:.4f}" for k, (label, v) in agreement.items())
    flag = "" if info.accepted else "  [rejected]"
    return (
        f"{info.stage:<12s} {info.cycle:3d}  score={info.score:.6g}  {wr}  "
        f"GOF={info.gof:.3f}  max shift/su={info.max_shift_su:.3g} ({info.max_shift_name})"
        f"  GN step/su={info.gn_shift:.2g} grad/su={info.gradient:.2g}"
        f"  {seconds:.2f}s{flag}"
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
    judged = {"kappa", "kappa_prime", "Pv", "Uiso", "occ", *U_LABELS}
    for p in ref.params:
        if p.bounds is None or not p.free:
            continue
        if p.name.partition(".")[2].split(".")[0] in judged:
            continue  # the plausibility table judges these (below)
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
    # only data sets fitted so far (a set not yet fitted has no factor): comparing the GOF
    # of the flipping ratios against the X-rays after an X-ray-only stage says nothing
    gofs = {
        n: d["gof"]
        for n, d in result["datasets"].items()
        if d.get("gof") and d.get("factor") is not None
    }
    if len(gofs) >= 2:
        if len(gofs) == 2:  # two sets: which one is off cannot be told
            (a, ga), (b, gb) = gofs.items()
            if max(ga, gb) > GOF_SPREAD * min(ga, gb):
                out.append(
                    f"data sets {a} and {b}: GOF {ga:.3f} and {gb:.3f} differ by more than "
                    f"{GOF_SPREAD:g}x; check their weights / sigmas or user_weight"
                )
        else:  # against the median of all fitted sets (one outlier does not move it)
            mid = float(np.median(list(gofs.values())))
            for name, g in gofs.items():
                if mid > 0 and not 1 / GOF_SPREAD <= g / mid <= GOF_SPREAD:
                    out.append(
                        f"data set {name}: GOF {g:.3f} is far from the others (median "
                        f"{mid:.3f}); check its weights / sigmas or its user_weight"
                    )
    for st in result["stages"]:
        if not st["converged"]:
            out.append(f"stage {st['name']} did not converge ({st['message']})")
        n_obs = sum(int(v.get("n_obs") or 0) for v in st.get("datasets", {}).values())
        few = obs_per_parameter_warning(st["name"], n_obs, int(st.get("n_free") or 0))
        if few:
            out.append(few)
    out += [f["message"] for f in result.get("implausible", [])]
    return out


def implausible(built: Built) -> list[dict]:
    """The refined parameters outside their plausible ranges (:mod:`chasm.refine.plausibility`)."""
    ref = built.refinement
    refined = {p.name for p in ref.params if p.su is not None and np.isfinite(p.su) and p.su > 0}
    found = check_plausibility(built.crystal, built.models, ref.params, refined)
    return [{**f.as_dict(), "message": f.message()} for f in found]


def result_dict(built: Built, earlier: dict | None = None, n_par: int | None = None) -> dict:
    """The result.json content for the refinement's current state.

    Parameters
    ----------
    built : Built
    earlier : dict, optional
        What stages completed before this session did (a resumed run):
        ``{"stages": [result.json stage entries], "datasets": {NAME:
        {factor, gradient_share, information_share, stage}}}``; their
        entries come first, and a data set no stage of this session fitted
        keeps its figures from there.
    n_par : int, optional
        Parameters for the GOF (default: those of the last stage).
    """
    ref = built.refinement
    earlier = earlier or {}
    outs = ref.outcomes
    last = outs[-1].result if outs else None
    before = earlier.get("stages", [])
    if n_par is None:
        n_par = outs[-1].n_free if outs else (before[-1]["n_free"] if before else 0)
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
        if datasets[name]["stage"] is None and name in earlier.get("datasets", {}):
            datasets[name].update(earlier["datasets"][name])
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
    stages = list(before) + [
        {
            "name": o.stage.name,
            "cycles": o.result.cycles,
            "converged": o.result.converged,
            "n_free": o.n_free,
            "score": _f(o.result.score),
            "gof": _f(o.result.gof),
            "message": o.result.message,
            "convergence": {
                "tol": _f(o.tol),
                "gn_step_su": _f(o.result.final_shift),
                "gradient_su": _f(o.result.final_gradient),
                "moving": [[n, float(r)] for n, r in (o.result.moving or [])[:10]],
            },
            "max_constraint_residual": o.max_constraint_residual,
            "origin": o.origin or None,
            "data": [x.name for x in o.result.datasets if x.name in agreement],
            "datasets": {
                x.name: {"n_obs": int(x.n), "chi2": _f(x.chi2), **_fit_figures(x)}
                for x in o.result.datasets
                if x.name in agreement
            },
        }
        for o in outs
    ]
    if last is not None:
        score = _f(last.score)
    else:
        score = before[-1]["score"] if before else None
    out = {
        "converged": bool(last.converged) if last else False,
        "cycles": int(sum(st["cycles"] for st in stages)),
        "score": {"scheme": ref.scheme.upper(), "value": score},
        "datasets": datasets,
        "parameters": params,
        "correlations": [[a, b, float(r)] for a, b, r in (last.high_correlations if last else [])],
        "stages": stages,
        "constraints": {
            "rows": len(ref.all_constraints()),
            "max_residual": max((st["max_constraint_residual"] for st in stages), default=0.0),
        },
        "restraints": restraint_summary(ref.restraints, ref.params.names, ref.params.values),
        "chasm_version": __version__,
        "project": str(built.project.path),
    }
    out["implausible"] = implausible(built)
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
    ]
    if result.get("interrupted"):
        at = result["stopped_at"]
        out += [
            f"INTERRUPTED in stage {at['stage']} after cycle {at['cycle']}: the last accepted "
            "model; su and correlations are those of the last completed stage",
            "",
        ]
    out += [
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
    if result.get("restraints"):
        out += ["", "restraints (final; chi2 = contribution to the score, misfit in sigma):"]
        for kind, s in result["restraints"].items():
            name, value, target, sigma = s["worst"]
            out.append(
                f"  {kind:<15s} n={s['n']:<4d} chi2={s['chi2']:<10.4g} "
                f"rms misfit={s['rms_misfit_su']:.3f} sigma; worst {name}: {value:.4f} "
                f"(target {target:g}, sigma {sigma:g})"
            )
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
    out += ["", "parameters (value(su), rule of 19; * = free in the last stage):"]
    from chasm.io.su_format import format_su  # one su style in every output

    for name, p in result["parameters"].items():
        shown = format_su(p["value"], p["su"])
        out.append(f"  {'*' if p['free'] else ' '} {name:<22s} {shown:>16s}")
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


def _write_outputs(
    built: Built,
    out: Path,
    lines: list[str],
    final: bool,
    earlier: dict | None = None,
    stopped: dict | None = None,
) -> dict:
    """Write model.cif, result.json and listing.txt for the current state.

    ``earlier``: as for :func:`result_dict`. ``stopped``: an interrupted run,
    ``{"stage", "cycle"}`` and optionally ``"score"`` (of the interrupted
    stage's last cycle) and ``"n_par"``.
    """
    from chasm.io.rhocif import write_rhocif

    stopped = stopped or {}
    result = result_dict(built, earlier, stopped.get("n_par"))
    found = built.checks + spin_warnings(built.crystal, built.models)
    result["warnings"] = list(dict.fromkeys(found + result["warnings"]))
    if stopped:
        at = {"stage": stopped["stage"], "cycle": int(stopped["cycle"])}
        result["converged"] = False
        result["cycles"] += at["cycle"]
        if stopped.get("score") is not None:
            result["score"]["value"] = _f(stopped["score"])
        result["interrupted"] = True
        result["stopped_at"] = at
        result["warnings"].append(
            f"interrupted in stage {at['stage']} after cycle {at['cycle']}; "
            "continue with chasm refine --resume"
        )
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
    if final and not stopped:  # model_core.cif and model.fcf (chasm.project.publish)
        from chasm.project.publish import write_publication_files

        write_publication_files(built, result, out, result["warnings"])
    write_text_atomic(out / "result.json", json.dumps(result, indent=1) + "\n")
    write_text_atomic(out / "listing.txt", _listing(built, result, lines, table))
    write_covariance(out, ref)  # for chasm properties (su with correlations)
    return result


# ----------------------------------------------------------------------------- run control
class _Stop(BaseException):
    """Raised by the cycle callback after a SIGINT; carries the cycle's :class:`CycleInfo`.

    A BaseException (like KeyboardInterrupt) so that no ``except Exception`` on
    the way out of the solver takes it for a failure.
    """

    def __init__(self, info: CycleInfo):
        super().__init__(info.stage)
        self.info = info


class _SigintStop:
    """First SIGINT: ask for a stop after the cycle in progress; second: KeyboardInterrupt.

    Installed only in the main thread and not over an ignored SIGINT (a
    background job); the previous handler comes back on exit.
    """

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.requested = False
        self._previous = None
        self._installed = False

    def __enter__(self) -> _SigintStop:
        if self.enabled and threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous is not signal.SIG_IGN:
                signal.signal(signal.SIGINT, self._handle)
                self._previous = signal.SIG_DFL if previous is None else previous
                self._installed = True
        return self

    def __exit__(self, *exc) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        # os.write, not print: the main thread may be inside a write to the same stream
        os.write(2, b"\nchasm: stopping after the cycle in progress (Ctrl-C again to abort now)\n")


def _score_factor(scheme: str, user_weight: float, chi2: float, n: int, floor: float) -> float:
    """c_e of the score at χ²_e (:mod:`chasm.refine.solver`: UNIT, NLOG, LOG)."""
    if scheme == "unit":
        return user_weight
    c = max(chi2, floor * max(n, 1))
    return user_weight * n / c if scheme == "nlog" else user_weight / c


class _Probe:
    """The data sets' last evaluations, for the cycle lines.

    Wraps each data set's ``evaluate`` (restored on exit) to keep its last
    :class:`~chasm.refine.problem.Evaluation` and the parameters it was made
    at, and the time spent in evaluations. From them: Rw(1−R) of flipping
    ratios, N_e and c_e, and, for a cycle whose point was the last one
    evaluated (an accepted step), the gradient share of every set, computed
    as the solver does at a stage's solution
    (:class:`~chasm.refine.results.DatasetFit`).
    """

    def __init__(self, refinement):
        self.ref = refinement
        self.last: dict[str, tuple[np.ndarray, object]] = {}
        self.seconds = 0.0
        self.count = 0
        self._saved: list[tuple[object, object]] = []
        self._reduction: np.ndarray | None = None
        self._pnd_den: dict[str, float] = {}

    def __enter__(self) -> _Probe:
        for d in self.ref.datasets:
            self._saved.append((d, vars(d).get("evaluate")))
            d.evaluate = self._wrap(d.name, d.evaluate)
        return self

    def __exit__(self, *exc) -> None:
        for d, own in self._saved:
            if own is None:
                del d.evaluate
            else:
                d.evaluate = own
        self._saved = []

    def _wrap(self, name: str, evaluate):
        def timed(p: np.ndarray):
            t = time.perf_counter()
            try:
                ev = evaluate(p)
            finally:
                self.seconds += time.perf_counter() - t
                self.count += 1
            self.last[name] = (np.array(p, dtype=float), ev)
            return ev

        return timed

    def new_stage(self) -> None:
        """Forget what depends on the stage (window, free parameters)."""
        self._reduction = None
        self._pnd_den = {}
        self.last = {}
        self.clock()

    def clock(self) -> tuple[float, int]:
        """Seconds in evaluations and their number since the last call."""
        out = (self.seconds, self.count)
        self.seconds, self.count = 0.0, 0
        return out

    def agreement(self, info: CycleInfo) -> dict[str, tuple[str, float]]:
        """Data-set name -> (label, value): wR2 (F²), wR (F) or Rw (flipping ratios)."""
        out = {}
        for d in self.ref.datasets:
            if d.name not in info.chi2:
                continue
            if d.kind == "pnd" and self._rw_denominator(d.name):
                out[d.name] = ("Rw", float(np.sqrt(info.chi2[d.name] / self._pnd_den[d.name])))
            elif d.kind == "pnd":
                out[d.name] = ("wR", info.wr[d.name])
            else:
                observable = getattr(getattr(d, "options", None), "observable", "F2")
                out[d.name] = ("wR2" if observable == "F2" else "wR", info.wr[d.name])
        return out

    def _rw_denominator(self, name: str) -> float:
        """Σ w (R_o − 1)² of a flipping-ratio set in the stage (0 when unknown)."""
        if name not in self._pnd_den and name in self.last:
            ev = self.last[name][1]
            self._pnd_den[name] = float(np.sum(ev.weights * (ev.y_obs - 1.0) ** 2))
        return self._pnd_den.get(name, 0.0)

    def details(self, info: CycleInfo, seconds: float, evals: tuple[float, int]) -> list[str]:
        """The verbose lines of a cycle: per set N, χ², c_e, gradient share; timing."""
        ref = self.ref
        opts = ref.options
        rows = {}
        for d in ref.datasets:
            if d.name in info.chi2:
                ev = self.last.get(d.name)
                n = int(np.count_nonzero(ev[1].weights)) if ev is not None else 0
                u = float(getattr(d, "user_weight", 1.0))
                c = _score_factor(ref.scheme, u, info.chi2[d.name], n, opts.chi2_floor)
                rows[d.name] = (n, info.chi2[d.name], c)
        if "restraints" in info.chi2:
            rows["restraints"] = (len(ref.restraints), info.chi2["restraints"], 1.0)
        shares = self.gradient_shares(info, {k: v[2] for k, v in rows.items()})
        out = []
        for name, (n, chi2, c) in rows.items():
            share = "-" if shares is None else f"{shares[name]:.3f}"
            out.append(
                f"    {name:<16s} N={n:<6d} chi2={chi2:<12.6g} c_e={c:<10.4g} grad.share={share}"
            )
        t_eval, n_eval = evals
        out.append(
            f"    time: {t_eval:.2f}s in {n_eval} evaluation(s) of the data, "
            f"{max(seconds - t_eval, 0.0):.2f}s normal equations and solve"
        )
        return out

    def gradient_shares(self, info: CycleInfo, factors: dict) -> dict | None:
        """‖D⁻¹ c_e (J_e T)ᵀ W_e r_e‖ / Σ ‖…‖ at the cycle's point (None if not at hand)."""
        import scipy.sparse as sps

        ref = self.ref
        sets = [n for n in factors if n != "restraints"]
        if any(n not in self.last or not np.array_equal(self.last[n][0], info.p) for n in sets):
            return None
        if self._reduction is None:
            self._reduction = ref.all_constraints().reduce(ref.params).T
        T = self._reduction
        used = np.flatnonzero(np.any(T != 0.0, axis=1))
        tu = sps.csr_array(T[used]).T  # (n_z, used)
        d2 = np.zeros(T.shape[1])
        grads = {}
        for name in sets:
            ev = self.last[name][1]
            jt = np.asarray(tu @ np.asarray(ev.jacobian)[:, used].T)  # (J T)ᵀ, (n_z, n)
            c, w = factors[name], np.asarray(ev.weights)
            d2 += c * ((jt * jt) @ w)
            grads[name] = c * (jt @ (w * (np.asarray(ev.y_obs) - np.asarray(ev.y_calc))))
        if "restraints" in factors:
            names, g = ref.params.names, np.zeros(T.shape[1])
            for r in ref.restraints:
                row = np.zeros(len(names))
                for name, c in r.coefficients().items():
                    row[names.index(name)] += c
                w = 1.0 / r.sigma**2
                rt = row @ T
                d2 += w * rt**2
                g += w * (r.target - row @ info.p) * rt
            grads["restraints"] = g
        d = np.sqrt(np.where(d2 > 0, d2, 1.0))
        norms = {n: float(np.linalg.norm(g / d)) for n, g in grads.items()}
        total = sum(norms.values())
        return {n: (v / total if total > 0 else 0.0) for n, v in norms.items()}


def _stage_summary(result: dict) -> dict:
    """What a resumed run needs of the completed stages (:func:`result_dict`'s ``earlier``)."""
    keys = ("factor", "gradient_share", "information_share", "stage")
    return {
        "stages": result["stages"],
        "datasets": {n: {k: d.get(k) for k in keys} for n, d in result["datasets"].items()},
    }


class _Session:
    """The stages of one run, what is done, and the checkpoint file."""

    def __init__(self, built: Built, out: Path, todo: list[Stage]):
        self.built = built
        self.out = out
        self.todo = todo
        self.completed: list[str] = []
        self.before: dict = {}  # stages completed before this session (resume)
        self.done: dict = {}  # all completed stages (the checkpoint's "earlier")
        self.lines: list[str] = []
        self.warnings: list[tuple[str, str]] = []  # (where, warning) as they arose
        self.first_cycle = 1  # of the first stage to run (a resumed stage counts on)
        self.digest = hashlib.sha256(built.project.path.read_bytes()).hexdigest()

    def checkpoint(
        self,
        values: np.ndarray,
        status: str = "running",
        current: dict | None = None,
        error: str | None = None,
    ) -> None:
        """Write checkpoint.json atomically (parameters at ``values``, su as they are)."""
        ref = self.built.refinement
        su = ref.params.su
        data = {
            "format": _CHECKPOINT_FORMAT,
            "chasm_version": __version__,
            "project": str(self.built.project.path),
            "project_sha256": self.digest,
            "status": status,
            "stages": [s.name for s in self.todo],
            "completed": list(self.completed),
            "current": current,
            "error": error,
            "earlier": self.done,
            "parameters": {
                name: {"value": float(v), "su": None if np.isnan(e) else float(e)}
                for name, v, e in zip(ref.params.names, values, su, strict=True)
            },
            "lines": self.lines,
        }
        write_text_atomic(self.out / CHECKPOINT, json.dumps(data, indent=1) + "\n")

    def all_warnings(self, result: dict) -> list[str]:
        """The warnings of ``result`` and, after them, those of the run no longer among them."""
        final = result["warnings"]
        earlier = [f"{at}: {w}" if at else w for at, w in self.warnings if w not in final]
        return list(dict.fromkeys(final + earlier))

    def resume(self, stages: list[str] | None, say: Callable[[str], None]) -> None:
        """Read the checkpoint: completed stages, parameters, lines (InputError if unusable)."""
        path = self.out / CHECKPOINT
        if not path.is_file():
            raise InputError(
                "no checkpoint.json here: nothing to resume (run without --resume)", str(self.out)
            )
        try:
            ck = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"unreadable checkpoint: {exc}", str(path)) from None
        keys = ("status", "stages", "completed", "parameters")
        if not isinstance(ck, dict) or ck.get("format") != _CHECKPOINT_FORMAT:
            raise InputError(f"not a chasm checkpoint (expected {_CHECKPOINT_FORMAT})", str(path))
        if any(k not in ck for k in keys):
            raise InputError(f"incomplete checkpoint: it needs {', '.join(keys)}", str(path))
        if ck.get("status") == "finished":
            raise InputError(
                "the run in this folder finished: nothing to resume "
                "(run without --resume to refine again)",
                str(self.out),
            )
        built = self.built
        names = built.refinement.params.names
        saved = ck["parameters"]
        known = set(names)
        missing = [n for n in names if n not in saved]
        unknown = [n for n in saved if n not in known]
        if missing or unknown:
            raise InputError(
                "the checkpoint does not fit the project's parameters (missing "
                f"{missing[:5]}, unknown {unknown[:5]}); the model changed: run without --resume",
                str(path),
            )
        if stages:
            asked = [s.name for s in self.todo]
            if asked != ck["stages"]:
                raise InputError(
                    f"--stage {asked} differs from the interrupted run's "
                    f"{ck['stages']}; resume without --stage",
                    str(path),
                )
        else:
            wanted = set(ck["stages"])
            self.todo = [s for s in built.stages if s.name in wanted]
            if [s.name for s in self.todo] != ck["stages"]:
                raise InputError(
                    f"the project's stages {[s.name for s in built.stages]} no "
                    f"longer contain the checkpoint's {ck['stages']}",
                    str(path),
                )
        done = list(ck["completed"])
        if [s.name for s in self.todo[: len(done)]] != done or len(done) >= len(self.todo):
            raise InputError(
                f"the checkpoint's completed stages {done} do not lead to a stage "
                f"of {ck['stages']} still to run",
                str(path),
            )
        ref = built.refinement
        ref.set_values(np.array([saved[n]["value"] for n in names], dtype=float))
        su = [np.nan if saved[n]["su"] is None else saved[n]["su"] for n in names]
        ref.params.set_su(np.array(su, dtype=float))
        self.completed = done
        self.before = self.done = ck.get("earlier") or {}
        self.lines = list(ck.get("lines", []))
        nxt = self.todo[len(done)].name
        cur = ck.get("current") or {}
        where = "from its start"
        if cur.get("stage") == nxt and cur.get("cycle"):
            where = (
                f"from the model of its cycle {cur['cycle']} (counting on: its cycle "
                "budget is not renewed)"
            )
            self.first_cycle = int(cur["cycle"]) + 1
        note = f"resumed: stages done {done or 'none'}; stage {nxt} restarts {where}"
        if ck.get("error"):
            note += f" (it had failed: {ck['error']})"
        if ck.get("project_sha256") != self.digest:
            note += "; the project file changed since the checkpoint"
        self.lines.append(note)
        say(note)


def _checkpoint_status(out: Path) -> str | None:
    """``status`` of the checkpoint in ``out`` (None: none, or unreadable)."""
    try:
        return json.loads((out / CHECKPOINT).read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError, AttributeError):
        return None


def _select(built: Built, stages: list[str] | None) -> list[Stage]:
    """The stages to run: all, or those named (in project order)."""
    if not stages:
        return list(built.stages)
    known = [s.name for s in built.stages]
    unknown = [s for s in stages if s not in known]
    if unknown:
        raise InputError(
            f"unknown stage(s) {unknown}; the project has {known}", str(built.project.path)
        )
    return [s for s in built.stages if s.name in stages]


def run_project(
    path,
    output: str | Path | None = None,
    echo: Callable[[str], None] | None = print,
    stages: list[str] | None = None,
    report: bool = True,
    *,
    resume: bool = False,
    verbose: bool = False,
    interruptible: bool = True,
    progress: bool = False,
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
    resume : bool
        Continue the run recorded in the output folder's checkpoint.json:
        skip its completed stages, restart the interrupted one from the saved
        parameters (InputError when there is nothing to resume or the
        checkpoint does not fit the project).
    verbose : bool
        Per cycle, also N, χ², c_e and gradient share of every data set and
        the time in evaluations against normal equations and solve.
    interruptible : bool
        The first SIGINT stops after the cycle in progress (main thread only).
    progress : bool
        Progress bar of the report's maps on stderr (on a terminal only).

    Returns
    -------
    RunOutcome
        ``interrupted`` True when a SIGINT stopped the run; its result.json,
        model.cif and listing.txt then hold the last accepted model.
    """
    project = load_project(path)
    built = build(project)
    out = Path(output) if output is not None else project.output
    inputs = _inputs(built)
    for name in OUTPUT_FILES:
        refuse_input(out / name, inputs)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"cannot create the output folder: {exc.strerror or exc}", str(out)
        ) from None
    with FolderLock(out, "chasm refine"), protect_inputs(inputs):
        clean_stale_temp(out)
        return _run(
            built,
            out,
            echo,
            stages,
            report,
            resume=resume,
            verbose=verbose,
            interruptible=interruptible,
            progress=progress,
        )


#: Files ``chasm refine`` writes into its output folder (besides the report's maps).
OUTPUT_FILES = (
    "model.cif",
    "result.json",
    "listing.txt",
    CHECKPOINT,
    "report.html",
    "report.md",
    LOCK_NAME,
)


def _inputs(built: Built) -> dict[str, Path]:
    """The files a run reads: project file, structure and data (never written)."""
    project = built.project
    inputs = {
        "project file": project.path,
        "structure file (structure.cif)": project.resolve(project.data["structure"]["cif"]),
    }
    for i, cfg in enumerate(project.data["datasets"]):
        inputs[f"data file of datasets[{i}] ({cfg['name']})"] = project.resolve(cfg["file"])
    return inputs


def _run(
    built: Built,
    out: Path,
    echo: Callable[[str], None] | None,
    stages: list[str] | None,
    report: bool,
    *,
    resume: bool,
    verbose: bool,
    interruptible: bool,
    progress: bool,
) -> RunOutcome:
    """The body of :func:`run_project`, with the output folder locked."""
    project = built.project
    say = echo or (lambda s: None)
    for w in built.checks + spin_warnings(built.crystal, built.models):
        say(f"warning: {w}")
    session = _Session(built, out, _select(built, stages))
    if resume:
        session.resume(stages, say)
    elif _checkpoint_status(out) not in (None, "finished"):
        say(
            f"note: starting afresh; {out / CHECKPOINT} of an unfinished run is replaced "
            "(--resume continues it)"
        )
    lines = session.lines
    ref = built.refinement
    for name, a in ref.agreement(0).items():
        say(f"{'resume' if resume else 'start'}: {name} ({a['kind']}) {_figures(a)}")
    remaining = session.todo[len(session.completed) :]
    if not remaining:
        raise InputError("the project has no stage to run", str(project.path))
    if not resume:  # a checkpoint exists before any result.json of this run
        session.checkpoint(ref.params.values, current={"stage": remaining[0].name, "cycle": 0})
    seen: list[str] = []
    with _SigintStop(interruptible) as stop, _Probe(ref) as probe:
        for k, stage in enumerate(remaining):
            monitor = _Monitor(session, probe, stop, say, verbose)
            start = ref.params.values
            try:
                o = ref.run_stage(stage, monitor, first_cycle=session.first_cycle if k == 0 else 1)
            except _Stop as halt:
                return _interrupted(session, stage, halt.info, say)
            except Exception as exc:
                at = monitor.accepted or {"p": start, "cycle": 0}
                session.checkpoint(
                    at["p"], "failed", {"stage": stage.name, "cycle": at["cycle"]}, str(exc)
                )
                raise
            if o.origin:
                lines.append(f"stage {stage.name}: {o.origin}")
                say(f"stage {stage.name}: {o.origin}")
            ag = ref.agreement(o.n_free)
            summary = "  ".join(f"{n}: {_figures(a)}" for n, a in ag.items())
            msg = (
                f"stage {stage.name}: {'converged' if o.result.converged else 'NOT converged'}"
                f" after {o.result.cycles} cycles, {o.n_free} parameters; {summary}"
            )
            lines.append(msg)
            say(msg)
            for line in shelxl_comparison(built, ag):  # IAM stages of a SHELXL CIF's data
                lines.append(line)
                say(line)
            session.completed.append(stage.name)
            final = k == len(remaining) - 1
            result = _write_outputs(built, out, lines, final, session.before)
            session.done = _stage_summary(result)
            for w in result["warnings"]:
                if w not in seen:
                    seen.append(w)
                    session.warnings.append((f"after stage {stage.name}", w))
                    say(f"warning: {w}")
            if stop.requested and not final:
                nxt = remaining[k + 1].name
                return _interrupted(session, None, None, say, nxt)
            status = "finished" if final else "running"
            session.checkpoint(ref.params.values, status)
        stopped = stop.requested
    warnings = session.all_warnings(result)
    bad = result.get("implausible", [])
    say(
        f"plausibility: {len(bad)} refined parameter(s) outside their plausible range"
        + (" (warnings above; docs/physics.md, 'Plausible ranges')" if bad else "")
    )
    say(f"wrote {out / 'result.json'}, {out / 'model.cif'}, {out / 'listing.txt'}")
    if report and stopped:
        say(f"report skipped (interrupted); write it with: chasm report {out}")
    elif report:
        from chasm.report.report import write_report

        files = write_report(out, refinement=ref, progress=progress)
        say(f"report: {files.get('html', out / 'report.html')}")
    return RunOutcome(built, out, result, lines, warnings)


class _Monitor:
    """The per-cycle callback of a stage: line, details, warnings, checkpoint, stop."""

    def __init__(self, session: _Session, probe: _Probe, stop: _SigintStop, say, verbose: bool):
        self.session, self.probe, self.stop = session, probe, stop
        self.say, self.verbose = say, verbose
        self.accepted: dict | None = None  # p and cycle of the last accepted step
        probe.new_stage()
        self.mark = time.perf_counter()

    def __call__(self, info: CycleInfo) -> None:
        now = time.perf_counter()
        seconds, self.mark = now - self.mark, now
        evals = self.probe.clock()
        line = cycle_line(info, self.probe.agreement(info), seconds)
        self.session.lines.append(line)
        self.say(line)
        if self.verbose:
            for x in self.probe.details(info, seconds, evals):
                self.say(x)
        if info.max_shift_su > HUGE_SHIFT_SU:
            w = (
                f"stage {info.stage}, cycle {info.cycle}: max shift/su = {info.max_shift_su:.3g} "
                f"({info.max_shift_name}); check its start value or set refinement.max_shift_su"
            )
            self.session.warnings.append(("", w))
            self.say(f"warning: {w}")
        if info.accepted:
            self.accepted = {"p": info.p.copy(), "cycle": info.cycle}
            self.session.checkpoint(info.p, current={"stage": info.stage, "cycle": info.cycle})
        if self.stop.requested:
            raise _Stop(info)
        self.mark = time.perf_counter()  # the checkpoint is not the next cycle's time


def _interrupted(
    session: _Session,
    stage: Stage | None,
    info: CycleInfo | None,
    say,
    next_stage: str | None = None,
) -> RunOutcome:
    """Write the last accepted model and the checkpoint of an interrupted run."""
    built, out = session.built, session.out
    ref = built.refinement
    if info is not None:  # inside a stage: back to its last accepted point
        ref.set_values(np.array(info.p, dtype=float))
        try:
            n_par = ref.all_constraints().reduce(ref.params).n_reduced
        except InputError:
            n_par = None
        at = {"stage": stage.name, "cycle": info.cycle, "score": info.score, "n_par": n_par}
    else:
        at = {"stage": next_stage, "cycle": 0}
    result = _write_outputs(built, out, session.lines, False, session.before, at)
    stopped_at = result["stopped_at"]
    session.checkpoint(ref.params.values, "interrupted", stopped_at)
    warnings = session.all_warnings(result)
    say(
        f"interrupted: stage {stopped_at['stage']}, cycle {stopped_at['cycle']}; "
        f"wrote {out / 'result.json'}, {out / 'model.cif'}, {out / 'listing.txt'}"
    )
    return RunOutcome(
        built, out, result, session.lines, warnings, interrupted=True, stopped_at=stopped_at
    )

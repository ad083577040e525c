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
  max shift/su and the seconds of the cycle; on screen (not in the listing)
  it ends with the stage count and the time left, ``stage 2/4  ETA 12 s``
  (:class:`~chasm.project.monitor.Eta`); ``verbose`` adds per data set
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

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chasm.errors import InputError
from chasm.io.atomic import clean_stale_temp, protect_inputs, refuse_input
from chasm.io.lock import LOCK_NAME, FolderLock
from chasm.project.build import Built, build
from chasm.project.checkpoint import CHECKPOINT, Session, checkpoint_status
from chasm.project.checks import spin_warnings
from chasm.project.monitor import HUGE_SHIFT_SU, Eta, Monitor, Probe, SigintStop, Stop, cycle_line
from chasm.project.outputs import (
    dataset_table,
    figures,
    result_dict,
    warnings_for,
    write_outputs,
)
from chasm.project.project import load_project
from chasm.project.shelx_parity import shelxl_comparison
from chasm.refine.refinement import Stage
from chasm.refine.result import Result
from chasm.refine.results import CycleInfo

__all__ = [
    "RunOutcome",
    "run_project",
    "select_stages",
    "result_dict",
    "cycle_line",
    "dataset_table",
    "warnings_for",
    "CHECKPOINT",
    "HUGE_SHIFT_SU",
    "OUTPUT_FILES",
]


@dataclass
class RunOutcome:
    """What :func:`run_project` did.

    Attributes
    ----------
    built : Built
    output : Path
        The output folder.
    result : Result
        The result.json content (:class:`chasm.refine.result.Result`, a mapping).
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
    result: Result
    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    interrupted: bool = False
    stopped_at: dict | None = None


def select_stages(built: Built, stages: list[str] | None) -> list[Stage]:
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
    path: str | Path,
    output: str | Path | None = None,
    echo: Callable[[str], None] | None = print,
    stages: list[str] | None = None,
    report: Callable[..., dict] | None = None,
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
    report : callable, optional
        Writes the report at the end of a run that was not interrupted:
        called as ``report(output_folder, refinement=refinement,
        progress=progress)`` and returns ``{kind: path}``; the command line
        passes :func:`chasm.report.report.write_report` (the report layer sits
        above this one). None or False: no report.
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
    report: Callable[..., dict] | None,
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
    for n in built.notes:  # the constants of a cryspy file (issue 17): on screen too
        if n.startswith("model.conventions"):
            say(f"note: {n}")
    session = Session(built, out, select_stages(built, stages))
    if resume:
        session.resume(stages, say)
    elif checkpoint_status(out) not in (None, "finished"):
        say(
            f"note: starting afresh; {out / CHECKPOINT} of an unfinished run is replaced "
            "(--resume continues it)"
        )
    lines = session.lines
    ref = built.refinement
    for name, a in ref.agreement(0).items():
        say(f"{'resume' if resume else 'start'}: {name} ({a['kind']}) {figures(a)}")
    remaining = session.todo[len(session.completed) :]
    if not remaining:
        raise InputError("the project has no stage to run", str(project.path))
    if not resume:  # a checkpoint exists before any result.json of this run
        session.checkpoint(ref.params.values, current={"stage": remaining[0].name, "cycle": 0})
    seen: list[str] = []
    with SigintStop(interruptible) as stop, Probe(ref) as probe:
        budget = ref.options.max_cycles
        eta = Eta(
            [s.max_cycles or budget for s in remaining],
            len(session.completed) + 1,
            len(session.todo),
        )
        for k, stage in enumerate(remaining):
            monitor = Monitor(session, probe, stop, say, verbose, eta)
            start = ref.params.values
            try:
                o = ref.run_stage(stage, monitor, first_cycle=session.first_cycle if k == 0 else 1)
            except Stop as halt:
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
            summary = "  ".join(f"{n}: {figures(a)}" for n, a in ag.items())
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
            eta.stage_done(o.result.cycles)
            final = k == len(remaining) - 1
            result = write_outputs(built, out, lines, final, session.before)
            session.done = result.stage_summary()
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
        files = report(out, refinement=ref, progress=progress)
        say(f"report: {files.get('html', out / 'report.html')}")
    return RunOutcome(built, out, result, lines, warnings)


def _interrupted(
    session: Session,
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
    result = write_outputs(built, out, session.lines, False, session.before, at)
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

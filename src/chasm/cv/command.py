"""``chasm cv``: the command behind the parser block in :mod:`chasm.cli`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from chasm.cv.bootstrap import bootstrap, bootstrap_table
from chasm.cv.compare import compare, compare_table, plot_compare
from chasm.cv.dask_backend import DASK_HINT, dask_available, dask_runner
from chasm.cv.report import cv_table, write_cv
from chasm.cv.run import cross_validate
from chasm.errors import InputError
from chasm.io.atomic import write_text_atomic
from chasm.progress import Progress
from chasm.project.project import load_project

__all__ = ["run_cv_command"]


def _runner(args: argparse.Namespace):
    """None (serial) or a Dask runner, from --scheduler / --workers."""
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers {args.workers}: give 1 or more worker processes")
    if not args.scheduler and args.workers is None:
        return None
    if not dask_available():
        if args.scheduler:
            raise InputError(f"--scheduler {args.scheduler}: Dask is not installed; {DASK_HINT}")
        print(
            f"note: Dask is not installed ({DASK_HINT}); running the folds serially",
            file=sys.stderr,
        )
        return None
    return dask_runner(args.scheduler, args.workers)


def run_cv_command(args: argparse.Namespace) -> int:
    """Run ``chasm cv`` (one project) or ``chasm cv --compare`` (several); exit status."""
    if args.folds < 2 and args.bootstrap is None:
        raise InputError(f"--folds {args.folds}: cross-validation needs at least 2 folds")
    projects = list(args.compare or [])
    if args.project:
        projects.insert(0, args.project)
    if not projects:
        raise InputError("give a project file, or several with --compare A.toml B.toml ...")
    runner = _runner(args)
    bar = not args.quiet and Progress(1).enabled
    echo = None if args.quiet or bar else (lambda line: print(line, flush=True))
    kw = dict(seed=args.seed, stages=args.stages, runner=runner, echo=echo, progress=bar)
    if args.bootstrap is not None:
        if len(projects) > 1:
            raise InputError("--bootstrap takes one project, not --compare")
        bs = bootstrap(projects[0], args.bootstrap, **kw)
        out = Path(args.output) if args.output else load_project(projects[0]).output / "cv"
        out.mkdir(parents=True, exist_ok=True)
        table = bootstrap_table(bs)
        write_text_atomic(out / "bootstrap.json", json.dumps(bs, indent=1) + "\n")
        write_text_atomic(out / "bootstrap.txt", table)
        if not args.quiet:
            print(table, end="")
        print(f"wrote {out / 'bootstrap.json'} and {out / 'bootstrap.txt'}")
        return 0
    if len(projects) == 1:
        cv = cross_validate(projects[0], args.folds, **kw)
        out = Path(args.output) if args.output else load_project(projects[0]).output / "cv"
        files = write_cv(cv, out)
        if not args.quiet:
            print(cv_table(cv), end="")
        print(f"wrote {files['json']} and {files['txt']}")
        return 0
    cmp = compare(projects, args.folds, **kw)
    out = Path(args.output) if args.output else Path(projects[0]).parent / "cv-compare"
    out.mkdir(parents=True, exist_ok=True)
    for m, run in zip(cmp["models"], _in_rank_order(cmp), strict=True):
        write_cv(run, out / m["label"].replace("/", "_"))
    table = compare_table(cmp)
    write_text_atomic(out / "compare.txt", table)
    summary = {key: v for key, v in cmp.items() if key != "runs"}
    write_text_atomic(out / "compare.json", json.dumps(summary, indent=1) + "\n")
    png = plot_compare(cmp, out / "compare.png")
    print(table, end="")
    print(f"wrote {out / 'compare.json'}, {out / 'compare.txt'} and {png}")
    return 0


def _in_rank_order(cmp: dict) -> list[dict]:
    by_project = {r["project"]: r for r in cmp["runs"]}
    return [by_project[m["project"]] for m in cmp["models"]]

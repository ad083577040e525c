"""Bootstrap standard uncertainties: refinements against resampled reflections.

Replicate b ≥ 1 draws, for every data set independently, N observations with
replacement from its N (seeded: the user's seed, a digest of the data-set
name and b); an observation drawn c times enters the fit with weight c·w
(:attr:`~chasm.refine.xray_data.XrayData.multiplicity`), one never drawn is
held out (out of bag). Every replicate is refined from the project's start by
the same stages as a cross-validation fold (:func:`chasm.cv.run.run_fold`),
serially or on Dask. Replicate 0 is the full data set (every count 1): its
parameters and covariance su's are the reference.

The bootstrap su of a parameter is the sample standard deviation of its
values over the replicates 1 … B whose last stage converged (Efron &
Tibshirani, *An Introduction to the Bootstrap*, 1993, ch. 6); beside it a
robust one (1.4826 × the median absolute deviation: a replicate caught in
another local minimum inflates the sd, hardly the MAD, so the two disagree),
the covariance su of the full refinement and the ratio sd / covariance su.
A ratio well above 1 says the least-squares su's are too small (misfit not
described by σ, correlated errors, a model too flexible).
The out-of-bag agreement figures of each replicate are reported like a fold's
free figures. B ≈ 50–200 gives an su to about 10–5 %.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from chasm import __version__
from chasm.cv.folds import fold_seed
from chasm.cv.run import FoldTask, serial_runner
from chasm.errors import InputError
from chasm.progress import Progress
from chasm.project.build import build
from chasm.project.project import load_project
from chasm.project.run import select_stages as _select

__all__ = ["bootstrap_counts", "bootstrap", "bootstrap_table", "MAD_TO_SD"]

#: 1/Φ⁻¹(3/4): the scaled median absolute deviation estimates σ of a normal sample.
MAD_TO_SD = 1.482602218505602


def bootstrap_counts(n: int, seed: int, name: str, replicate: int) -> np.ndarray:
    """Draw counts (n,) of replicate ``replicate`` (0: all ones) of data set ``name``."""
    if replicate == 0:
        return np.ones(n, dtype=int)
    ss = fold_seed(seed, name).spawn(replicate)[-1]
    return np.bincount(np.random.default_rng(ss).integers(0, n, n), minlength=n)


def bootstrap(
    project: str | Path,
    replicates: int = 100,
    *,
    seed: int = 0,
    stages: Sequence[str] | None = None,
    runner: Callable | None = None,
    echo: Callable[[str], None] | None = None,
    progress: bool = False,
) -> dict:
    """Bootstrap su's of a project's parameters (module docstring); the bootstrap.json content."""
    if replicates < 2:
        raise InputError(f"--bootstrap {replicates}: give at least 2 replicates (50-200 usual)")
    path = str(project)
    built = build(load_project(path))
    _select(built, list(stages) if stages else None)
    st = tuple(stages) if stages else None
    tasks = []
    for b in range(replicates + 1):
        counts = {
            d.name: bootstrap_counts(len(d.stol), seed, d.name, b)
            for d in built.refinement.datasets
        }
        tasks.append(FoldTask(path, b, {n: c == 0 for n, c in counts.items()}, st, counts))
    bar = Progress(len(tasks), f"bootstrap {Path(path).stem}", quiet=not progress)

    def on_result(r: dict) -> None:
        bar.advance()
        if echo is not None:
            what = "full data" if r["fold"] == 0 else f"replicate {r['fold']}"
            echo(f"{what} done in {r['seconds']:.1f} s")

    t0 = time.perf_counter()
    with bar:
        results = sorted((runner or serial_runner)(tasks, on_result), key=lambda r: r["fold"])
    full = results[0]
    if "error" in full:
        raise InputError(f"bootstrap, full data set: {full['error']}")
    reps = [r for r in results[1:] if "error" not in r and r["stages"][-1]["converged"]]
    params = {}
    for name, (value, su) in full["parameters"].items():
        v = np.array([r["parameters"][name][0] for r in reps if name in r["parameters"]])
        if len(v) < 2:
            continue
        b_su = float(v.std(ddof=1))
        params[name] = {
            "value": value,
            "su": su,
            "bootstrap_mean": float(v.mean()),
            "bootstrap_su": b_su,
            "bootstrap_su_mad": float(MAD_TO_SD * np.median(np.abs(v - np.median(v)))),
            "ratio": b_su / su if su > 0 else None,
        }
    ratios = [e["ratio"] for e in params.values() if e["ratio"] is not None]
    return {
        "chasm_version": __version__,
        "project": path,
        "replicates": replicates,
        "converged_replicates": len(reps),
        "seed": int(seed),
        "stages": [s["name"] for s in full["stages"]],
        "wall_seconds": time.perf_counter() - t0,
        "median_ratio": float(np.median(ratios)) if ratios else None,
        "parameters": params,
        "per_replicate": results,
    }


def bootstrap_table(bs: dict) -> str:
    """Plain-text table: value(su) of the full refinement, bootstrap mean and su, ratio."""
    lines = [
        f"chasm {bs['chasm_version']} bootstrap of {bs['project']}: {bs['replicates']} "
        f"replicates (reflections resampled with replacement per data set), seed {bs['seed']}; "
        f"wall time {bs['wall_seconds']:.1f} s",
        "value and su: the full-data refinement; bootstrap su: sd over the replicates",
        f"  {'parameter':<28s} {'value':>12s} {'su':>10s} {'boot mean':>12s} "
        f"{'boot su':>10s} {'MAD su':>10s} {'ratio':>6s}",
    ]
    for n, e in bs["parameters"].items():
        r = "-" if e["ratio"] is None else f"{e['ratio']:.2f}"
        lines.append(
            f"  {n:<28s} {e['value']:12.6g} {e['su']:10.3g} {e['bootstrap_mean']:12.6g} "
            f"{e['bootstrap_su']:10.3g} {e['bootstrap_su_mad']:10.3g} {r:>6s}"
        )
    lines.append(
        f"replicates whose last stage converged (used): {bs['converged_replicates']}/"
        f"{bs['replicates']}"
    )
    m = bs["median_ratio"]
    if m is not None and math.isfinite(m):
        lines.append(f"median bootstrap su / covariance su: {m:.2f}")
    return "\n".join(lines) + "\n"

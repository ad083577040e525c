"""k-fold cross-validation of a project: the folds, one fold's refinement, the summary.

A fold is refined from the project's starting model (the project file is
loaded and built afresh for every fold) by the project's stages, or those
chosen, with its free set held out of every data set
(:meth:`~chasm.refine.xray_data.XrayData.hold_out`). After each stage the
agreement figures of the work set (the observations fitted) and of the free
set (held out) are computed at the stage's solution for every data set:
R1, wR2 and Rw(F) for F² data, Rw(1−R) for flipping ratios, χ² and χ²/N.

:func:`run_fold` is a pure function of (project file, fold, free masks,
stages): what a serial loop calls in process and what a Dask worker runs
(:mod:`chasm.cv.dask_backend`), so the two give the same numbers.

The summary (:func:`summarise`) gives per data set and stage the mean and
spread (sample standard deviation) over the folds of every figure, the free
χ²/N pooled over the folds (Σχ²/ΣN), and for every refined parameter its
mean, its spread, the grouped-jackknife su sqrt((k−1)/k Σ(θ_i − θ̄)²) and the
mean covariance su of the fold refinements. The cross-validated score of a
model is the mean over data sets of the pooled free χ²/N at the last stage
(each data set counts once, whatever its size); its uncertainty is the
standard error over the folds of the per-fold score.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chasm import __version__
from chasm.blas import blas_threads
from chasm.cv.folds import check_folds, fingerprint, fold_seed, stratified_folds
from chasm.errors import ChasmError, InputError
from chasm.progress import Progress
from chasm.project.build import Built, build
from chasm.project.project import load_project
from chasm.project.run import select_stages as _select

__all__ = [
    "AllFoldsFailed",
    "FoldTask",
    "Split",
    "make_split",
    "run_fold",
    "summarise",
    "cross_validate",
]

#: The agreement figures kept per data set, stage and side (None where undefined).
FIGURES = ("n_obs", "chi2", "chi2_per_n", "R1", "wR2", "Rw")

#: A parameter whose su is below this (relative) is held by a constraint, not reported.
SU_FLOOR = 1e-12


class AllFoldsFailed(InputError):
    """Every fold of a cross-validation failed (the message is the first fold's)."""


@dataclass(frozen=True)
class FoldTask:
    """The inputs of one fold's refinement (picklable: sent to Dask workers).

    Attributes
    ----------
    project : str
        The project file.
    fold : int
        Fold number (0 … k−1).
    free : dict
        Data-set name -> bool mask over its kept observations (True: free set).
    stages : tuple of str or None
        Stages to run (None: all of the project's).
    counts : dict or None
        Data-set name -> weight factor of every observation in the fit (a
        bootstrap replicate's draw counts; :mod:`chasm.cv.bootstrap`).
    blas_threads : int or None
        OpenBLAS threads while the fold runs (:mod:`chasm.blas`; default 1,
        as on a Dask worker, so that serial and Dask results are identical).
    """

    project: str
    fold: int
    free: dict
    stages: tuple | None = None
    counts: dict | None = None
    blas_threads: int | None = 1


@dataclass
class Split:
    """The folds of every data set of a project."""

    k: int
    seed: int
    folds: dict  # name -> ndarray (n,) int
    fingerprints: dict  # name -> str

    def tasks(self, project: str, stages: Sequence[str] | None = None) -> list[FoldTask]:
        """One :class:`FoldTask` per fold."""
        st = tuple(stages) if stages else None
        return [
            FoldTask(str(project), i, {n: f == i for n, f in self.folds.items()}, st)
            for i in range(self.k)
        ]


def _hkl(dataset) -> np.ndarray:
    refl = getattr(dataset, "reflections", None)
    return np.asarray(refl.hkl if refl is not None else dataset.hkl)


def make_split(built: Built, k: int, seed: int = 0) -> Split:
    """Stratified, seeded folds of every data set of a built project (k checked)."""
    sets = built.refinement.datasets
    check_folds(k, {d.name: len(d.stol) for d in sets}, str(built.project.path))
    folds, prints = {}, {}
    for d in sets:
        f = stratified_folds(d.stol, k, fold_seed(seed, d.name))
        folds[d.name] = f
        prints[d.name] = fingerprint(_hkl(d), f)
    return Split(k, int(seed), folds, prints)


def _clean(x) -> float | int | None:
    if x is None:
        return None
    if isinstance(x, int | np.integer):
        return int(x)
    x = float(x)
    return x if math.isfinite(x) else None


def _figures(a: dict) -> dict:
    out = {key: _clean(a.get(key)) for key in FIGURES if key != "chi2_per_n"}
    n, chi2 = out["n_obs"], out["chi2"]
    out["chi2_per_n"] = chi2 / n if n and chi2 is not None else None
    return out


def _both_sides(dataset, p: np.ndarray, free: np.ndarray, n_par: int) -> dict:
    """Work and free agreement of one data set at p (its free set held out again after)."""
    work = _figures(dataset.agreement(p, n_par))
    if not np.any(free):  # (a bootstrap replicate that drew every observation)
        return {"work": work, "free": dict.fromkeys(FIGURES)}
    dataset.hold_out(~free)
    try:
        held = _figures(dataset.agreement(p, 0))
    finally:
        dataset.hold_out(free)
    return {"work": work, "free": held}


def run_fold(task: FoldTask) -> dict:
    """Refine one fold from the project's start; the figures after every stage.

    Returns
    -------
    dict
        ``fold``, ``seconds``, ``stages`` (per stage: ``name``, ``n_free``,
        ``cycles``, ``converged``, ``datasets``: name -> ``fitted`` and the
        ``work`` and ``free`` figures of :data:`FIGURES`), ``parameters``
        (name -> [value, su] of every parameter refined in some stage).
    """
    with blas_threads(task.blas_threads):
        return _run_fold(task)


def _run_fold(task: FoldTask) -> dict:
    t0 = time.perf_counter()
    built = build(load_project(task.project))
    ref = built.refinement
    for d in ref.datasets:
        d.hold_out(task.free[d.name])
        if task.counts is not None:
            d.multiplicity = np.asarray(task.counts[d.name], dtype=float)
    stages = _select(built, list(task.stages) if task.stages else None)
    out_stages = []
    refined = np.zeros(len(ref.params), dtype=bool)
    try:
        for stage in stages:
            o = ref.run_stage(stage)
            refined |= ref.params.free_mask
            fitted = {d.name for d in ref.stage_datasets(stage)}
            p = ref.params.values
            out_stages.append(
                {
                    "name": stage.name,
                    "n_free": int(o.n_free),
                    "cycles": int(o.result.cycles),
                    "converged": bool(o.result.converged),
                    "datasets": {
                        d.name: {
                            "fitted": d.name in fitted,
                            **_both_sides(d, p, task.free[d.name], o.n_free),
                        }
                        for d in ref.datasets
                    },
                }
            )
    except ChasmError as exc:  # reported with the fold; the others still count
        return {
            "fold": task.fold,
            "seconds": time.perf_counter() - t0,
            "error": f"{exc}",
            "stages": out_stages,
            "parameters": {},
        }
    values, su = ref.params.values, ref.params.su
    # refined and not held by a constraint (a symmetry-zero P_lm has su 0 or ~1e-19)
    moved = refined & np.isfinite(su) & (su > SU_FLOOR * np.maximum(1.0, np.abs(values)))
    params = {
        n: [float(values[i]), float(su[i])] for i, n in enumerate(ref.params.names) if moved[i]
    }
    return {
        "fold": task.fold,
        "seconds": time.perf_counter() - t0,
        "stages": out_stages,
        "parameters": params,
    }


def _spread(x: list) -> tuple[float | None, float | None]:
    v = np.array([np.nan if e is None else e for e in x], dtype=float)
    if len(v) == 0 or np.all(np.isnan(v)):
        return None, None
    mean = float(np.nanmean(v))
    sd = float(np.nanstd(v, ddof=1)) if np.sum(~np.isnan(v)) > 1 else None
    return mean, sd


def fold_scores(folds: list[dict], stage: int = -1) -> np.ndarray:
    """Per fold: the mean over data sets of the free χ²/N after ``stage``."""
    out = []
    for f in folds:
        if "error" in f:
            out.append(np.nan)
            continue
        sets = f["stages"][stage]["datasets"].values()
        v = [s["free"]["chi2_per_n"] for s in sets]
        out.append(np.mean([np.nan if x is None else x for x in v]))
    return np.array(out)


def summarise(folds: list[dict]) -> dict:
    """Mean and spread over the folds that did not fail (module docstring).

    Raises
    ------
    InputError
        Every fold failed (the first fold's message).
    """
    failed = [f for f in folds if "error" in f]
    folds = [f for f in folds if "error" not in f]
    if not folds:
        raise AllFoldsFailed(f"cross-validation fold {failed[0]['fold'] + 1}: {failed[0]['error']}")
    k = len(folds)
    stages = []
    for j, first in enumerate(folds[0]["stages"]):
        sets = {}
        for name, entry in first["datasets"].items():
            row = {"fitted": entry["fitted"]}
            for side in ("work", "free"):
                per = [f["stages"][j]["datasets"][name][side] for f in folds]
                fig = {}
                for key in FIGURES:
                    mean, sd = _spread([e[key] for e in per])
                    fig[key] = {"mean": mean, "sd": sd}
                n = sum(e["n_obs"] or 0 for e in per)
                chi2 = sum(e["chi2"] or 0.0 for e in per)
                fig["pooled_chi2_per_n"] = chi2 / n if n else None
                row[side] = fig
            sets[name] = row
        scores = fold_scores(folds, j)
        stages.append(
            {
                "name": first["name"],
                "datasets": sets,
                "score": float(np.mean(scores)),
                "score_se": float(np.std(scores, ddof=1) / math.sqrt(k)) if k > 1 else None,
                "converged_folds": sum(f["stages"][j]["converged"] for f in folds),
            }
        )
    params = {}
    names = [n for n in folds[0]["parameters"] if all(n in f["parameters"] for f in folds)]
    for n in names:
        v = np.array([f["parameters"][n][0] for f in folds])
        su = np.array([f["parameters"][n][1] for f in folds])
        params[n] = {
            "mean": float(v.mean()),
            "sd": float(v.std(ddof=1)) if k > 1 else None,
            "jackknife_su": float(math.sqrt((k - 1) / k * np.sum((v - v.mean()) ** 2)))
            if k > 1
            else None,
            "mean_su": float(su.mean()),
        }
    return {
        "folds_used": k,
        "failed": [{"fold": f["fold"] + 1, "error": f["error"]} for f in failed],
        "stages": stages,
        "score": stages[-1]["score"],
        "score_se": stages[-1]["score_se"],
        "parameters": params,
    }


def cross_validate(
    project: str | Path,
    k: int = 10,
    *,
    seed: int = 0,
    stages: Sequence[str] | None = None,
    runner: Callable[[list[FoldTask], Callable[[dict], None] | None], list[dict]] | None = None,
    echo: Callable[[str], None] | None = None,
    progress: bool = False,
) -> dict:
    """Run k-fold cross-validation of a project; the cv.json content.

    Parameters
    ----------
    project : path
        The project file.
    k : int
        Folds (2 ≤ k, every free set ≥ :data:`~chasm.cv.folds.MIN_FREE`).
    seed : int
        Seed of the splits.
    stages : list of str, optional
        Stages to run (default: all of the project's).
    runner : callable, optional
        ``runner(tasks, on_result) -> results`` in task order (default: serial,
        in process; :func:`chasm.cv.dask_backend.dask_runner` for Dask).
    echo : callable, optional
        Receives one line per finished fold.
    progress : bool
        A progress bar of the folds on stderr (drawn on a terminal only).
    """
    path = str(project)
    built = build(load_project(path))
    _select(built, list(stages) if stages else None)  # unknown stage names: InputError now
    split = make_split(built, k, seed)
    tasks = split.tasks(path, stages)
    t0 = time.perf_counter()
    done = [0]

    bar = Progress(k, f"cv {Path(path).stem}", quiet=not progress)

    def on_result(r: dict) -> None:
        done[0] += 1
        bar.advance()
        if echo is not None and "error" in r:
            echo(f"fold {r['fold'] + 1} FAILED ({done[0]}/{k}): {r['error']}")
        elif echo is not None:
            last = r["stages"][-1]["datasets"]
            figs = "  ".join(
                f"{n}: Rw={e['work']['Rw']:.4f} Rw_free={e['free']['Rw']:.4f}"
                for n, e in last.items()
                if e["work"]["Rw"] is not None and e["free"]["Rw"] is not None
            )
            echo(f"fold {r['fold'] + 1} done ({done[0]}/{k}) in {r['seconds']:.1f} s  {figs}")

    with bar:
        results = (runner or serial_runner)(tasks, on_result)
    results = sorted(results, key=lambda r: r["fold"])
    return {
        "chasm_version": __version__,
        "project": path,
        "folds": k,
        "seed": split.seed,
        "stages": [s["name"] for s in max(results, key=lambda r: len(r["stages"]))["stages"]],
        "fold_fingerprints": split.fingerprints,
        "n_obs": {n: int(len(f)) for n, f in split.folds.items()},
        "wall_seconds": time.perf_counter() - t0,
        "summary": summarise(results),
        "per_fold": results,
    }


def serial_runner(tasks: list[FoldTask], on_result: Callable[[dict], None] | None = None):
    """Run the folds one after the other in this process."""
    out = []
    for t in tasks:
        r = run_fold(t)
        if on_result is not None:
            on_result(r)
        out.append(r)
    return out

"""Cross-validation figures of docs/validation-cv.md (issue 20).

Modes (each prints its table; the urea data are read from ../shared/data):

``speed``
    Wall time of a k-fold CV of the urea project (``chasm init`` strategy,
    unedited), serial in this process and on a LocalCluster of 2 workers;
    the per-fold time, the Dask overhead, and the predicted wall time for
    10 and 100 workers.
``levels``
    Urea: cross-validated R_free and work R against the multipole level
    (l ≤ 1 … 4, κ′ refined) and κ′ fixed at 1 (l ≤ 4), same folds.
``schemes``
    The seed example (simulated, truth known): R_free per data set under
    UNIT, NLOG and LOG, over several noise realisations, and the distance
    of the refined spin populations to the truth.

Usage::

    PYTHONPATH=src python benchmarks/bench_cv.py speed --folds 10
    PYTHONPATH=src python benchmarks/bench_cv.py levels --folds 5
    PYTHONPATH=src python benchmarks/bench_cv.py schemes --folds 5 --realisations 3
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from chasm.cli import main as chasm
from chasm.cv.compare import compare, compare_table, plot_compare
from chasm.cv.run import cross_validate

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "xray" / "urea"


def urea_project(folder: Path) -> Path:
    """``chasm init`` on the urea IAM model and data."""
    out = folder / "urea.toml"
    code = chasm(["init", str(DATA / "iam.cif"), "--xray", str(DATA / "iam.hkl"), "-o", str(out)])
    assert code == 0
    return out


def variant(base: Path, name: str, lmax: int = 4, kappa_prime: bool = True) -> Path:
    """A copy of the urea project with l ≤ lmax on C, N, O, and κ′ refined or fixed at 1."""
    text = base.read_text()
    text = re.sub(r"(?m)^lmax = 4", f"lmax = {lmax}", text)
    text = text.replace("lmax = 4                # non-H", f"lmax = {lmax}                # non-H")
    if not kappa_prime:
        text = re.sub(r'\[\[stages\]\]\nname = "kappa-prime".*?\n\n', "", text, flags=re.S)
        text = text.replace(', "@nonH.kappa_prime"', "")
    out = base.parent / f"{name}.toml"
    out.write_text(text)
    return out


def speed(args) -> None:
    from chasm.cv.dask_backend import dask_runner

    folder = Path(tempfile.mkdtemp(prefix="bench_cv_"))
    p = urea_project(folder)
    print(f"load average before: {os.getloadavg()}")
    t0 = time.perf_counter()
    serial = cross_validate(p, args.folds, seed=0)
    t_serial = time.perf_counter() - t0
    per_fold = [f["seconds"] for f in serial["per_fold"]]
    t0 = time.perf_counter()
    dask = cross_validate(p, args.folds, seed=0, runner=dask_runner(workers=2))
    t_dask = time.perf_counter() - t0
    same = [{k: v for k, v in f.items() if k != "seconds"} for f in serial["per_fold"]] == [
        {k: v for k, v in f.items() if k != "seconds"} for f in dask["per_fold"]
    ]
    k, f = args.folds, statistics.median(per_fold)
    # overhead: what the 2-worker run took beyond its folds' share of compute
    dask_fold = statistics.median([r["seconds"] for r in dask["per_fold"]])
    overhead = t_dask - np.ceil(k / 2) * dask_fold
    print(f"load average after: {os.getloadavg()}")
    print(f"{k}-fold CV of urea ({serial['n_obs']['xray']} reflections)")
    print(f"serial: {t_serial:.1f} s, median fold {f:.1f} s (min {min(per_fold):.1f})")
    print(
        f"2-worker LocalCluster: {t_dask:.1f} s, median fold {dask_fold:.1f} s, "
        f"overhead {overhead:.1f} s; speed-up {t_serial / t_dask:.2f}"
    )
    print(f"fold results bit-identical to serial: {same}")
    for w in (10, 100):
        waves = int(np.ceil(k / w))
        print(
            f"predicted, {w} workers (1 core each): {waves} wave(s) x {f:.1f} s + overhead "
            f"{overhead:.1f} s = {waves * f + overhead:.1f} s"
        )
    json.dump(
        {"serial": t_serial, "dask2": t_dask, "per_fold": per_fold, "same": same},
        sys.stdout,
    )
    print()


def levels(args) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench_cv_levels_"))
    base = urea_project(folder)
    projects = [variant(base, f"l{n}", n) for n in (1, 2, 3, 4)]
    projects.append(variant(base, "l4-kp-fixed", 4, kappa_prime=False))
    runner = None
    if args.workers:
        from chasm.cv.dask_backend import dask_runner

        runner = dask_runner(workers=args.workers)
    t0 = time.perf_counter()
    cmp = compare(projects, args.folds, seed=0, runner=runner, echo=print)
    print(f"wall time {time.perf_counter() - t0:.0f} s")
    print(compare_table(cmp))
    for m in cmp["models"]:
        x = m["datasets"]["xray"]
        print(
            f"{m['label']:<14s} R1 work {x['work']['R1']['mean']:.4f} free "
            f"{x['free']['R1']['mean']:.4f}({x['free']['R1']['sd']:.4f})  wR2 work "
            f"{x['work']['wR2']['mean']:.4f} free {x['free']['wR2']['mean']:.4f}"
            f"({x['free']['wR2']['sd']:.4f})  chi2/N work {x['work']['chi2_per_n']['mean']:.3f} "
            f"free {x['free']['chi2_per_n']['mean']:.3f}"
        )
    if args.plot:
        plot_compare(cmp, args.plot)
        print(f"wrote {args.plot}")


def schemes(args) -> None:
    from chasm.project.build import build
    from chasm.project.project import load_project
    from chasm.simulate.project import truth_values

    runner = None
    if args.workers:
        from chasm.cv.dask_backend import dask_runner

        runner = dask_runner(workers=args.workers)
    rows = []
    t0 = time.perf_counter()
    for r in range(args.start, args.start + args.realisations):
        folder = Path(tempfile.mkdtemp(prefix=f"bench_cv_seed{r}_"))
        projects = seed_projects(folder, r, args.xray_smax, args.und_count)
        truth, _ = truth_values(build(load_project(projects[0])))
        cmp = compare(projects, args.folds, seed=0, runner=runner, echo=print)
        print(f"realisation {r}:")
        print(compare_table(cmp), end="")
        for run in cmp["runs"]:
            params = run["summary"]["parameters"]
            spin = [n for n in params if n.endswith(".Pv.spin") and n in truth]
            dist = float(np.sqrt(np.mean([(params[n]["mean"] - truth[n]) ** 2 for n in spin])))
            label = Path(run["project"]).stem
            m = next(x for x in cmp["models"] if x["label"] == label)
            free = {n: e["free"]["chi2_per_n"]["mean"] for n, e in m["datasets"].items()}
            rw = {n: e["free"]["Rw"]["mean"] for n, e in m["datasets"].items()}
            rows.append(
                {
                    "realisation": r,
                    "scheme": label,
                    "score": m["score"],
                    "score_se": m["score_se"],
                    "delta": m["delta"],
                    "delta_se": m["delta_se"],
                    "spin_rms": dist,
                    "n_spin": len(spin),
                    "free_chi2_per_n": free,
                    "free_Rw": rw,
                }
            )
            print(json.dumps(rows[-1]))
    print(f"wall time {time.perf_counter() - t0:.0f} s")
    picked = closest = 0
    for m in cmp.get("failed_models", []):
        print(f"not ranked: {m['label']}: {m['error'][:200]}")
    for r in range(args.start, args.start + args.realisations):
        sub = [x for x in rows if x["realisation"] == r]
        best_cv = min(sub, key=lambda x: x["score"])["scheme"]
        best_truth = min(sub, key=lambda x: x["spin_rms"])["scheme"]
        picked += best_cv == best_truth
        closest += 1
        print(f"realisation {r}: CV picks {best_cv}, closest spins {best_truth}")
    print(f"CV picked the scheme with the spins closest to the truth in {picked}/{closest}")


def seed_projects(folder: Path, realisation: int, xray_smax: float, und_count: int) -> list[Path]:
    """The seed example simulated with run seed ``realisation``; one project per scheme."""
    from chasm.examples.seed_project import write_seed_project
    from chasm.simulate.project import simulate_project

    base = write_seed_project(folder, xray_smax=xray_smax, und_count=und_count)
    simulate_project(base, seed=realisation, echo=None)
    out = []
    for scheme in ("unit", "nlog", "log"):
        p = folder / f"{scheme.upper()}.toml"
        p.write_text(base.read_text() + f'\n[refinement]\nscore = "{scheme}"\n')
        out.append(p)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=("speed", "levels", "schemes"))
    ap.add_argument("--folds", type=int, default=10)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--realisations", type=int, default=3)
    ap.add_argument("--start", type=int, default=0, help="first realisation (noise seed)")
    ap.add_argument("--plot")
    ap.add_argument("--xray-smax", type=float, default=0.6)
    ap.add_argument("--und-count", type=int, default=600)
    a = ap.parse_args()
    {"speed": speed, "levels": levels, "schemes": schemes}[a.mode](a)

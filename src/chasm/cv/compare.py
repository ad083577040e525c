"""Model selection: several projects cross-validated on the same folds, ranked.

Every project (a weighting scheme, a multipole level, a κ′ treatment, a
restraint σ …) is cross-validated with the same k and seed; since a data
set's split depends only on the seed, its name and its observations, projects
reading the same data with the same cut-offs share their folds (checked by
the fold fingerprints; a mismatch is reported in ``same_folds``).

The ranking is by the cross-validated score (mean over data sets of the
pooled free χ²/N at the last stage; lower is better) with its standard error
over the folds. Because all models see the same folds, the difference of a
model to the best one is also given fold by fold (paired): its mean and
standard error, the figure that says whether two models are distinguishable
(a difference within about 2 se is not).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from chasm.cv.run import AllFoldsFailed, cross_validate, fold_scores

__all__ = ["compare", "compare_table", "plot_compare"]


def _se(x: np.ndarray) -> float | None:
    """Standard error of the mean of the finite values (None below 2)."""
    x = x[np.isfinite(x)]
    return float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else None


def _labels(projects: Sequence[str]) -> list[str]:
    stems = [Path(p).stem for p in projects]
    if len(set(stems)) == len(stems):
        return stems
    return [str(p) for p in projects]


def compare(
    projects: Sequence[str | Path],
    k: int = 10,
    *,
    seed: int = 0,
    stages: Sequence[str] | None = None,
    runner: Callable | None = None,
    echo: Callable[[str], None] | None = None,
    progress: bool = False,
) -> dict:
    """Cross-validate every project on the same folds and rank them.

    Returns
    -------
    dict
        ``models`` (in ranking order: ``label``, ``project``, ``score``,
        ``score_se``, ``delta``/``delta_se`` to the best, paired over folds,
        and per data set the work and free Rw, R1, wR2 and χ²/N mean and sd
        at the last stage), ``same_folds``, ``folds``, ``seed`` and ``runs``
        (each project's full cv.json content).
    """
    paths = [str(p) for p in projects]
    runs, failed, labels = [], [], dict(zip(paths, _labels(paths), strict=True))
    for p in paths:
        try:
            runs.append(
                cross_validate(
                    p, k, seed=seed, stages=stages, runner=runner, echo=echo, progress=progress
                )
            )
        except AllFoldsFailed as exc:  # the model is reported, the others ranked
            failed.append({"label": labels[p], "project": p, "error": str(exc)})
    if not runs:
        raise AllFoldsFailed(f"every fold of every project failed; first: {failed[0]['error']}")
    scores = [fold_scores(r["per_fold"]) for r in runs]  # NaN for a failed fold
    best = int(np.argmin([np.nanmean(s) for s in scores]))
    models = []
    for r, s in zip(runs, scores, strict=True):
        p = r["project"]
        label = labels[p]
        d = s - scores[best]  # paired over the folds both models completed
        last = r["summary"]["stages"][-1]["datasets"]
        models.append(
            {
                "label": label,
                "project": p,
                "score": float(np.nanmean(s)),
                "score_se": _se(s),
                "delta": float(np.nanmean(d)) if np.any(np.isfinite(d)) else None,
                "delta_se": _se(d),
                "failed_folds": [f["fold"] for f in r["summary"]["failed"]],
                "datasets": {
                    name: {
                        side: {key: e[side][key] for key in ("R1", "wR2", "Rw", "chi2_per_n")}
                        for side in ("work", "free")
                    }
                    for name, e in last.items()
                },
            }
        )
    models.sort(key=lambda m: m["score"])
    prints = [r["fold_fingerprints"] for r in runs]
    same = all(prints[0].get(name) == fp for other in prints[1:] for name, fp in other.items())
    return {
        "folds": k,
        "seed": seed,
        "same_folds": same,
        "models": models,
        "failed_models": failed,
        "runs": runs,
    }


def compare_table(cmp: dict) -> str:
    """Ranking table: score ± se, Δ to the best ± paired se, free and work Rw per data set."""
    names = list(cmp["models"][0]["datasets"])
    lines = [
        f"{cmp['folds']}-fold cross-validation, seed {cmp['seed']}: models ranked by the "
        "score (mean over data sets of the free chi2/N; lower is better)",
    ]
    if not cmp["same_folds"]:
        lines.append("note: the projects do not share their folds (different data or cut-offs)")
    head = f"{'rank':>4s}  {'model':<20s} {'score':>16s} {'delta (paired)':>18s}"
    head += "".join(f" {'Rw_free(' + n + ')':>20s} {'Rw(' + n + ')':>14s}" for n in names)
    lines.append(head)
    for i, m in enumerate(cmp["models"], 1):
        row = f"{i:4d}  {m['label']:<20s} {m['score']:8.4f} +-{_num(m['score_se'], 6)}"
        row += f" {_num(m['delta'], 9)} +-{_num(m['delta_se'], 6)}"
        for n in names:
            e = m["datasets"].get(n)
            free = None if e is None else e["free"]["Rw"]["mean"]
            work = None if e is None else e["work"]["Rw"]["mean"]
            row += f" {'-' if free is None else f'{free:.4f}':>20s}"
            row += f" {'-' if work is None else f'{work:.4f}':>14s}"
        lines.append(row)
    for m in cmp.get("failed_models", []):
        lines.append(f"not ranked: {m['label']}: every fold failed: {m['error']}")
    for m in cmp["models"]:
        if m.get("failed_folds"):
            folds = ", ".join(str(f) for f in m["failed_folds"])
            lines.append(f"note: {m['label']}: fold(s) {folds} failed (see its cv.txt)")
    return "\n".join(lines) + "\n"


def _num(x: float | None, width: int) -> str:
    return f"{'-':>{width}s}" if x is None else f"{x:{width}.4f}"


def plot_compare(cmp: dict, path: str | Path) -> Path:
    """R_free (Rw of the free sets, mean ± sd over folds) per model, work Rw beside; a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = cmp["models"]
    names = list(models[0]["datasets"])
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names) + 1, 4), squeeze=False)
    x = np.arange(len(models))
    for ax, n in zip(axes[0], names, strict=True):
        for side, marker, shift in (("free", "o", -0.08), ("work", "s", 0.08)):
            e = [m["datasets"].get(n, {}).get(side, {}).get("Rw", {}) for m in models]
            y = [np.nan if not v or v["mean"] is None else v["mean"] for v in e]
            s = [0.0 if not v or v["sd"] is None else v["sd"] for v in e]
            label = "R_free (Rw, held out)" if side == "free" else "R_work (Rw, fitted)"
            ax.errorbar(x + shift, y, yerr=s, fmt=marker, capsize=3, label=label)
        ax.set_xticks(x, [m["label"] for m in models], rotation=30, ha="right")
        ax.set_title(f"data set {n}")
        ax.set_ylabel("Rw (mean ± sd over folds)")
        ax.legend(fontsize=8)
    fig.suptitle(f"{cmp['folds']}-fold cross-validation (models in ranking order)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

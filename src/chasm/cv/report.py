"""cv.json and the readable table of a cross-validation (:func:`chasm.cv.run.cross_validate`)."""

from __future__ import annotations

import json
from pathlib import Path

from chasm.io.atomic import write_text_atomic

__all__ = ["cv_table", "write_cv"]

#: Table columns: (label, figure key).
_COLUMNS = (("R1", "R1"), ("wR2", "wR2"), ("Rw", "Rw"), ("chi2/N", "chi2_per_n"))


def _ms(entry: dict) -> str:
    """``mean(sd)`` with 4 decimals, or ``-`` when undefined."""
    m, s = entry["mean"], entry["sd"]
    if m is None:
        return "-"
    return f"{m:.4f}" if s is None else f"{m:.4f}({s:.4f})"


def _se(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def _g(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def cv_table(cv: dict) -> str:
    """The plain-text table: per stage and data set the work and free figures, the parameters."""
    s = cv["summary"]
    lines = [
        f"chasm {cv['chasm_version']} cross-validation of {cv['project']}",
        f"{cv['folds']} folds stratified in resolution, seed {cv['seed']}; "
        f"wall time {cv['wall_seconds']:.1f} s",
        "mean(sd) over the folds; work = observations fitted, free = held out; "
        "pooled chi2/N = sum chi2 / sum N over the folds",
    ]
    for f in s["failed"]:
        lines.append(f"fold {f['fold']} FAILED and is left out: {f['error']}")
    lines.append(f"folds summarised: {s['folds_used']} of {cv['folds']}")
    lines.append("")
    for st in s["stages"]:
        lines.append(
            f"stage {st['name']}: score (mean free chi2/N over data sets) = "
            f"{st['score']:.4f} +- {_se(st['score_se'])} (se), "
            f"{st['converged_folds']}/{s['folds_used']} folds converged"
        )
        head = f"  {'data set':<14s} {'set':<5s}" + "".join(f" {c:>17s}" for c, _ in _COLUMNS)
        lines.append(head + f" {'pooled chi2/N':>14s}")
        for name, row in st["datasets"].items():
            tag = "" if row["fitted"] else " (not fitted)"
            for side in ("work", "free"):
                fig = row[side]
                cells = "".join(f" {_ms(fig[key]):>17s}" for _, key in _COLUMNS)
                pooled = fig["pooled_chi2_per_n"]
                p = "-" if pooled is None else f"{pooled:.4f}"
                lines.append(f"  {name + tag:<14s} {side:<5s}{cells} {p:>14s}")
        lines.append("")
    lines.append("parameters refined in every fold: mean, spread (sd) over the folds,")
    lines.append("grouped-jackknife su sqrt((k-1)/k sum (x_i - mean)^2), mean covariance su")
    lines.append(
        f"  {'parameter':<28s} {'mean':>12s} {'sd':>10s} {'jackknife su':>13s} {'su':>10s}"
    )
    for n, e in s["parameters"].items():
        lines.append(
            f"  {n:<28s} {e['mean']:12.6g} {_g(e['sd']):>10s} {_g(e['jackknife_su']):>13s} "
            f"{e['mean_su']:10.3g}"
        )
    return "\n".join(lines) + "\n"


def write_cv(cv: dict, folder: str | Path) -> dict[str, Path]:
    """Write ``cv.json`` and ``cv.txt`` into ``folder`` (created), atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = {"json": folder / "cv.json", "txt": folder / "cv.txt"}
    write_text_atomic(files["json"], json.dumps(cv, indent=1) + "\n")
    write_text_atomic(files["txt"], cv_table(cv))
    return files

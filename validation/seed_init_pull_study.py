"""Parameter recovery by the project `chasm init` writes for the seed example (issue 14).

The seed example (:mod:`chasm.examples.seed_project`): the true model
``truth.cif`` (rhoCIF, split Cu/O/N atoms) and the data tables of its hand-made
project. For each realisation r: ``chasm simulate`` (seed r) writes the X-ray,
UND and PND files; the project ``chasm init truth.cif --xray --und --pnd
--magnetic ...`` writes (once, total spin filled in) is refined as written,
except κ′: init fixes κ′ of C, N, O at their theoretical values, the seed's
truth has κ′ = 1, so the κ′ lines are removed (a model that can represent the
truth, as a pull study needs). Pulls (estimate − truth)/su of every parameter
free in the last stage with an su, the truth read from ``truth.cif`` in the init
project's layout (:func:`chasm.simulate.project.truth_values`).

Usage: python validation/seed_init_pull_study.py [--realisations 20] [--smax 0.7]
       [--und 1000] [--folder DIR]
Exit status 1 when the pull mean is outside ±0.3 or the sd outside 0.8-1.2.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

from chasm.cli import main as chasm
from chasm.examples.seed import SPIN_POPULATIONS
from chasm.examples.seed_project import write_seed_project
from chasm.io.rhocif import read_rhocif
from chasm.project.build import build
from chasm.project.project import load_project
from chasm.simulate.project import truth_values

MAGNETIC = list(SPIN_POPULATIONS)


def _init_project(folder: Path) -> Path:
    out = folder / "init.toml"
    args = ["init", str(folder / "truth.cif"), "-o", str(out), "--force"]
    args += ["--xray", str(folder / "xray.hkl"), "--und", str(folder / "und.hkl")]
    args += ["--pnd", str(folder / "pnd.rcif"), "--magnetic", ",".join(MAGNETIC)]
    if chasm(args) != 0:
        raise SystemExit("chasm init failed")
    text = out.read_text()
    total = round(sum(SPIN_POPULATIONS.values()), 6)
    text = re.sub(r'(?m)^total_spin = "[^"]*"', f"total_spin = {total}", text)
    text = re.sub(r'(?m)^output = "[^"]*"', 'output = "init-refined"', text)
    text = re.sub(r"(?m)^kappa_prime = .*\n", "", text)  # the truth's kappa' = 1
    # the truth file's local frames (its populations refer to them)
    tc, tm = read_rhocif(folder / "truth.cif")
    for atom, m in zip(tc.atoms, tm, strict=True):
        axes = getattr(m, "axes", None) or getattr(getattr(m, "up", None), "axes", None)
        if axes is None:
            continue
        head = f"[model.atoms.{atom.label}]\n"
        i = text.index(head)
        j = text.find("\n[", i + len(head))
        block = text[i : j if j > 0 else len(text)]
        new = re.sub(r"(?m)^(#\s*)?axes = .*$", f'axes = "{axes.as_text()}"', block, count=1)
        if new == block:
            new = block.replace(head, f'{head}axes = "{axes.as_text()}"\n', 1)
        text = text[:i] + new + text[i + len(block) :]
    out.write_text(text)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--realisations", type=int, default=20)
    ap.add_argument("--smax", type=float, default=0.7)
    ap.add_argument("--und", type=int, default=1000)
    ap.add_argument("--folder", type=Path, default=Path("seed-init-pull"))
    args = ap.parse_args(argv)
    folder = args.folder
    folder.mkdir(parents=True, exist_ok=True)
    write_seed_project(folder)
    hand = folder / "project.toml"
    text = hand.read_text()
    text = re.sub(r"(?m)^smax = 1\.0$", f"smax = {args.smax}", text, count=1)
    text = re.sub(r"(?m)^count = 2000$", f"count = {args.und}", text, count=1)
    hand.write_text(text)
    pulls: dict[str, list[float]] = {}
    truth = None
    t0 = time.time()
    for r in range(args.realisations):
        if chasm(["simulate", str(hand), "-q", "--seed", str(r), "--force"]) != 0:
            raise SystemExit("chasm simulate failed")
        if r == 0:
            init = _init_project(folder)
            truth, _ = truth_values(build(load_project(init)))
        out = folder / f"run{r:02d}"
        code = chasm(["refine", str(init), "--output", str(out), "-q", "--no-report"])
        res = json.loads((out / "result.json").read_text())
        conv = res["converged"] and all(s["converged"] for s in res["stages"])
        for name, p in res["parameters"].items():
            if p["free"] and p["su"] and p["su"] > 1e-9 and name in truth:
                pulls.setdefault(name, []).append((p["value"] - truth[name]) / p["su"])
        gof = {n: round(d["gof"], 3) for n, d in res["datasets"].items() if d.get("gof")}
        print(
            f"realisation {r}: exit {code}, converged {conv}, GOF {gof} ({time.time() - t0:.0f} s)",
            flush=True,
        )
    allp = np.concatenate([np.asarray(v) for v in pulls.values()])
    spin = [v for n, vs in pulls.items() if n.endswith(".spin") for v in vs]
    per = {n: (float(np.mean(v)), float(np.std(v, ddof=1))) for n, v in pulls.items()}
    worst = max(per.items(), key=lambda kv: abs(kv[1][0]))
    summary = {
        "n_parameters": len(pulls),
        "n_pulls": int(allp.size),
        "mean": float(allp.mean()),
        "sd": float(allp.std(ddof=1)),
        "beyond_3su": int(np.sum(np.abs(allp) > 3)),
        "spin_mean": float(np.mean(spin)) if spin else None,
        "spin_sd": float(np.std(spin, ddof=1)) if len(spin) > 1 else None,
        "worst_mean": [worst[0], *worst[1]],
        "per_parameter": per,
    }
    (folder / "pulls.json").write_text(json.dumps(summary, indent=1))
    print(
        f"{summary['n_parameters']} parameters, {summary['n_pulls']} pulls: mean "
        f"{summary['mean']:+.3f}, sd {summary['sd']:.3f}, |pull| > 3: {summary['beyond_3su']}; "
        f"spin populations: mean {summary['spin_mean']:+.3f}, sd {summary['spin_sd']:.3f}; "
        f"worst mean {worst[0]} {worst[1][0]:+.2f} (sd {worst[1][1]:.2f})"
    )
    ok = abs(summary["mean"]) <= 0.3 and 0.8 <= summary["sd"] <= 1.2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""`chasm init` on the seed example against the hand-made project (issue 7).

1. :func:`chasm.examples.seed_project.write_seed_project` writes the true model
   (``truth.cif``, rhoCIF with split atoms) and the hand-made joint project
   (``project.toml``: the stages of :func:`chasm.examples.seed.route`);
2. ``chasm simulate project.toml`` writes the X-ray, UND and PND files;
3. ``chasm refine project.toml`` runs the hand-made project;
4. ``chasm init truth.cif --xray xray.hkl --und und.hkl --pnd pnd.rcif
   --magnetic Cu1,O1,N1,N2,N3,N4,N5`` writes a project, whose total-spin
   placeholder is replaced by the true total spin, and ``chasm refine`` runs it
   as written;
5. the spin populations, agreement factors and convergence of the two are
   compared: |difference| / su for every spin population.

The init project differs from the hand-made one where a new user's would: its
own strategy (high-order stage, H displacement parameters, riding H at neutron
distances, one κ per element outside the split atoms, the PND stage fitting
UND and PND together).

Usage: python validation/seed_init_vs_hand.py [--smax 0.7] [--und 1000] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

from chasm.cli import main as chasm
from chasm.examples.seed import SPIN_POPULATIONS
from chasm.examples.seed_project import write_seed_project

MAGNETIC = list(SPIN_POPULATIONS)


def prepare(folder: Path, smax: float, und_count: int) -> Path:
    """Seed project with the requested sizes, and its simulated data files."""
    write_seed_project(folder)
    project = folder / "project.toml"
    text = project.read_text()
    text = re.sub(r"(?m)^smax = 1\.0$", f"smax = {smax}", text, count=1)
    text = re.sub(r"(?m)^count = 2000$", f"count = {und_count}", text, count=1)
    project.write_text(text)
    if chasm(["simulate", str(project), "-q"]) != 0:
        raise SystemExit("chasm simulate failed")
    return project


def init_project(folder: Path, total_spin: float) -> Path:
    """`chasm init` on the truth CIF and the data, total spin filled in."""
    out = folder / "init.toml"
    args = ["init", str(folder / "truth.cif"), "-o", str(out), "--force"]
    args += ["--xray", str(folder / "xray.hkl"), "--und", str(folder / "und.hkl")]
    args += ["--pnd", str(folder / "pnd.rcif"), "--magnetic", ",".join(MAGNETIC)]
    if chasm(args) != 0:
        raise SystemExit("chasm init failed")
    text = out.read_text()
    text = re.sub(r'(?m)^total_spin = "[^"]*"', f"total_spin = {total_spin}", text)
    text = re.sub(r'(?m)^output = "[^"]*"', 'output = "init-refined"', text)
    out.write_text(text)
    return out


def compare(hand: dict, init: dict) -> list[tuple[str, float, float, float, float, float]]:
    """(label, hand value, hand su, init value, init su, |Δ|/max su) per split atom."""
    rows = []
    for lab in MAGNETIC:
        a = hand["parameters"][f"{lab}.Pv.spin"]
        b = init["parameters"][f"{lab}.Pv.spin"]
        su = max(a["su"], b["su"])
        rows.append(
            (lab, a["value"], a["su"], b["value"], b["su"], abs(a["value"] - b["value"]) / su)
        )
    return rows


def run(folder: Path, smax: float, und_count: int, quiet: bool = True) -> dict:
    """Both refinements in ``folder``; returns both result.json dicts and the comparison."""
    project = prepare(folder, smax, und_count)
    q = ["-q"] if quiet else []
    t0 = time.perf_counter()
    if chasm(["refine", str(project), "--no-report", *q]) != 0:
        raise SystemExit("hand-made project failed")
    t_hand = time.perf_counter() - t0
    total = round(sum(SPIN_POPULATIONS.values()), 6)
    init = init_project(folder, total)
    t0 = time.perf_counter()
    if chasm(["refine", str(init), "--no-report", *q]) != 0:
        raise SystemExit("init project failed")
    t_init = time.perf_counter() - t0
    hand = json.loads((folder / "refined" / "result.json").read_text())
    mine = json.loads((folder / "init-refined" / "result.json").read_text())
    return {
        "hand": hand,
        "init": mine,
        "rows": compare(hand, mine),
        "seconds": (t_hand, t_init),
        "init_text": init.read_text(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smax", type=float, default=0.7, help="X-ray sin(theta)/lambda limit")
    ap.add_argument("--und", type=int, default=1000, help="number of UND reflections")
    ap.add_argument("--out", help="folder to keep (default: a temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.out or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        res = run(folder, args.smax, args.und)
    print(f"X-ray to {args.smax} 1/A, {args.und} UND, 212 flipping ratios")
    print("spin populations Pv.spin (muB):")
    print("atom    hand-made          chasm init         |diff|/su   true")
    for lab, a, sa, b, sb, d in res["rows"]:
        true = SPIN_POPULATIONS[lab]
        print(f"{lab:<6s} {a:8.4f}({sa:.4f})  {b:8.4f}({sb:.4f})   {d:6.2f}   {true:.3f}")
    for key in ("hand", "init"):
        r = res[key]
        sets = "  ".join(
            f"{n}: GOF {d['gof']:.3f} Rw {d['Rw']:.4f}" for n, d in r["datasets"].items()
        )
        stages = ", ".join(
            f"{s['name']} {'ok' if s['converged'] else 'NOT converged'} ({s['cycles']})"
            for s in r.get("stages", [])
        )
        print(f"{key}: converged {r['converged']}; {sets}\n   stages: {stages}")
    print(f"time: hand-made {res['seconds'][0]:.0f} s, init {res['seconds'][1]:.0f} s")


if __name__ == "__main__":
    main()

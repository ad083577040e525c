"""`chasm init` -> `chasm refine` on every X-ray structure of ../shared/data, as a new user would.

For each CIF (xray/urea, xray/l-alanine with their .hkl; xray/caf2 and the five
corpus CIFs with their embedded reflections) this writes the unedited init
project into OUT/NAME, refines it through the command line, and prints one
summary line per structure: exit status, stages converged, R1/wR2/GOF, the
published SHELXL R-values when the CIF has them, and every kappa, kappa' and
net charge with su, and the count of implausible parameters.

Usage::

    python validation/real_data_sweep.py [--data ../shared/data] [--out /tmp/sweep]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def absolute_pythonpath() -> None:
    """Make PYTHONPATH absolute: the chasm runs start in other folders, where a relative
    ``PYTHONPATH=src`` would silently fall back to the installed chasm."""
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if parts:
        os.environ["PYTHONPATH"] = os.pathsep.join(str(Path(p).resolve()) for p in parts)


CASES = [
    ("urea", "xray/urea/iam.cif", ["--xray", "xray/urea/iam.hkl"]),
    ("l-alanine", "xray/l-alanine/iam.cif", ["--xray", "xray/l-alanine/iam.hkl"]),
    ("caf2", "xray/caf2/CaF2.cif", []),
    ("SH2185_Cu", "corpus/SH2185_Cu.cif", []),
    ("alert_example", "corpus/alert_example.cif", []),
    ("ccdc1979688", "corpus/ccdc1979688.cif", []),
    ("cod1000007", "corpus/cod1000007.cif", []),
    ("p31c", "corpus/p31c.cif", []),
]


def _run(cmd: list[str], cwd: Path, log: Path) -> tuple[int, float]:
    t0 = time.perf_counter()
    with log.open("w") as handle:
        rc = subprocess.run(cmd, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT).returncode
    return rc, time.perf_counter() - t0


def _summary(name: str, folder: Path, rc: int, seconds: float) -> str:
    res = folder / "refined" / "result.json"
    if not res.is_file():
        tail = (folder / "refine.log").read_text().strip().splitlines()[-1:]
        return f"{name}: exit {rc}, no result ({tail})"
    r = json.loads(res.read_text())
    stages = r["stages"]
    conv = sum(bool(s["converged"]) for s in stages)
    figs = []
    for d in r["datasets"].values():
        figs.append(
            " ".join(f"{k}={d[k]:.4f}" for k in ("R1", "wR2", "gof") if d.get(k) is not None)
        )
    kap, ext = [], []
    for pname, p in r["parameters"].items():
        kind = pname.split(".")[1] if "." in pname else ""
        if kind in ("kappa", "kappa_prime") and p["su"]:
            kap.append(f"{pname}={p['value']:.3f}({p['su'] * 1000:.0f})")
        if kind == "extinction":
            ext.append(f"{pname}={p['value']:.4g}({(p['su'] or 0):.2g})")
    rd = r.get("residual_density") or {}
    rms = f"residual rms {rd['rms']:.4f}; " if rd.get("rms") is not None else ""
    return (
        f"{name}: exit {rc} in {seconds:.0f} s; stages converged {conv}/{len(stages)}; "
        f"{'; '.join(figs)}; {rms}{' '.join(ext) or 'no extinction'}; "
        f"implausible {len(r.get('implausible', []))}; "
        f"refined kappa: {', '.join(kap) or 'none'}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).parents[1] / ".." / "shared" / "data"))
    ap.add_argument("--out", default="/tmp/chasm-sweep")
    ap.add_argument("--only", nargs="*", help="names of the cases to run")
    args = ap.parse_args(argv)
    absolute_pythonpath()
    data, out = Path(args.data).resolve(), Path(args.out)
    for name, cif, extra in CASES:
        if args.only and name not in args.only:
            continue
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        extra = [str(data / x) if x.endswith((".hkl", ".cif")) else x for x in extra]
        init = ["chasm", "init", str(data / cif), *extra, "-o", "project.toml", "--force"]
        rc, _ = _run(init, folder, folder / "init.log")
        if rc != 0:
            print(f"{name}: init exit {rc}: {(folder / 'init.log').read_text().strip()}")
            continue
        rc, seconds = _run(["chasm", "refine", "project.toml"], folder, folder / "refine.log")
        print(_summary(name, folder, rc, seconds), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

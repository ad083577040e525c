"""Parameter recovery by the project `chasm init` writes (issue 14): urea-like truth.

Truth: a Hansen-Coppens model of urea with the theoretical κ′ init fixes, the
populations of the multipole model refined on the real urea data
(../shared/data/xray/urea) with the init defaults, H2's multipoles made equal to
H1's (the similarity restraint init writes holds exactly at the truth), written
as a rhoCIF. For each realisation: ``chasm simulate`` (counting noise, seed r),
then the unedited init project (written once from the truth file, with a
``simulate`` table added) refined by ``chasm refine``; pulls (estimate − truth)/su
of every free parameter of the last stage with an su.

Usage: python validation/init_pull_study.py MODEL_CIF [--realisations 20] [--smax 1.0]
       [--folder DIR] [--gain 20] [--background 5] [--h-uiso free|riding]
Noise: sigma^2(F^2) = (F^2 + background)/gain + (0.01 F^2)^2 (2 % at F^2 = 200 e^2).
MODEL_CIF: a model.cif of `chasm refine` on the real urea data with the init project.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from chasm.density.frames import LocalAxes
from chasm.io.rhocif import read_rhocif, write_rhocif
from chasm.project.build import build
from chasm.project.defaults import theory_kappa_prime
from chasm.project.init import write_project
from chasm.project.project import load_project
from chasm.project.run import run_project
from chasm.simulate.project import simulate_project, truth_values


def make_truth(model_cif: Path, out: Path) -> Path:
    crystal, models = read_rhocif(model_cif)
    labels = [a.label for a in crystal.atoms]
    h1, h2 = models[labels.index("H1")], models[labels.index("H2")]
    h2.plm = np.array(h1.plm, dtype=float).copy()
    for i, m in enumerate(models):  # kappa' at the theoretical value init fixes
        if hasattr(m, "kappa_prime") and m.element != "H":
            th = theory_kappa_prime(crystal, i)
            m.kappa_prime = th[0] if th is not None else 1.0
    # N's frame from heavy atoms only (x towards O, in the molecular plane): the riding H
    # are re-placed from rounded coordinates, which would turn an H-defined x by ~1e-5
    n = labels.index("N")
    models[n].axes = LocalAxes("C", "Z", "N", "O", "X")
    models[n].frame = models[n].axes.matrix(crystal, n)
    write_rhocif(out, crystal, models)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_cif", type=Path)
    ap.add_argument("--realisations", type=int, default=20)
    ap.add_argument("--smax", type=float, default=1.0)
    ap.add_argument("--folder", type=Path, default=Path("init-pull"))
    ap.add_argument("--gain", type=float, default=20.0, help="counts per e^2 (noise level)")
    ap.add_argument("--background", type=float, default=5.0, help="e^2 under the peak")
    ap.add_argument(
        "--reuse", action="store_true", help="read existing runNN/result.json instead of refining"
    )
    ap.add_argument(
        "--h-uiso",
        choices=("free", "riding"),
        default="free",
        help="H Uiso refined freely (uiso_free, what init writes for urea's anisotropic H "
        "without neutron data; default) or riding on the parent (init's choice for H "
        "isotropic in the CIF)",
    )
    args = ap.parse_args(argv)
    folder = args.folder
    folder.mkdir(parents=True, exist_ok=True)
    truth_cif = make_truth(args.model_cif, folder / "truth.cif")
    hkl = folder / "sim.hkl"
    # placeholder reflections to smax (init reads the resolution from them; simulate
    # rewrites the file): the allowed, Laue-unique reflections of the truth's group
    import gemmi

    tc0, _ = read_rhocif(truth_cif)
    miller = gemmi.make_miller_array(tc0.cell, tc0.spacegroup, 1 / (2 * args.smax))
    hkl.write_text(
        "".join(f"{h:4d}{k:4d}{l:4d}{100.0:8.2f}{1.0:8.2f}\n" for h, k, l in miller)
        + f"{0:4d}{0:4d}{0:4d}{0:8.2f}{0:8.2f}\n"
    )
    project = folder / "project.toml"
    write_project(project, truth_cif, xray=[hkl], force=True)
    text = project.read_text()
    # the truth file's frames (init may pick another neighbour for x after riding H moved)
    import re

    tc, tm = read_rhocif(truth_cif)
    for atom, m in zip(tc.atoms, tm, strict=True):
        if getattr(m, "axes", None) is not None:
            text = re.sub(
                rf"(\[model\.atoms\.{re.escape(atom.label)}\]\nlmax = -?\d+\naxes = )\"[^\"]*\"",
                rf'\g<1>"{m.axes.as_text()}"',
                text,
            )
    if args.h_uiso == "free":  # as init writes for the real urea's H (anisotropic in its CIF)
        text = re.sub(r"^u_riding = .*$", "uiso_free = true", text, flags=re.M)
    text = text.replace(
        "[constraints]",
        f"[datasets.simulate]\nsmax = {args.smax}\nscale = 1.0\ngain = {args.gain}\n"
        f"background = {args.background}\n\n[constraints]",
        1,
    )
    project.write_text(text)
    truth, _ = truth_values(build(load_project(project)))
    pulls: dict[str, list[float]] = {}
    t0 = time.time()
    for r in range(args.realisations):
        out = folder / f"run{r:02d}"
        if args.reuse and (out / "result.json").is_file():
            res = json.loads((out / "result.json").read_text())
        else:
            simulate_project(project, seed=r, force=True, echo=None)
            res = run_project(project, output=out, echo=None, report=False).result
        conv = res["converged"] and all(s["converged"] for s in res["stages"])
        for name, p in res["parameters"].items():
            # su at rounding level: a population zero by site symmetry, not a parameter
            if p["free"] and p["su"] and p["su"] > 1e-9 and name in truth:
                pulls.setdefault(name, []).append((p["value"] - truth[name]) / p["su"])
        print(
            f"realisation {r}: converged {conv}, R1 {res['datasets']['xray']['R1']:.4f}, "
            f"GOF {res['datasets']['xray']['gof']:.3f} ({time.time() - t0:.0f} s)",
            flush=True,
        )
    allp = np.concatenate([np.asarray(v) for v in pulls.values()])
    per = {n: (float(np.mean(v)), float(np.std(v, ddof=1))) for n, v in pulls.items()}
    worst_mean = max(per.items(), key=lambda kv: abs(kv[1][0]))
    summary = {
        "n_parameters": len(pulls),
        "n_pulls": int(allp.size),
        "mean": float(allp.mean()),
        "sd": float(allp.std(ddof=1)),
        "beyond_3su": int(np.sum(np.abs(allp) > 3)),
        "worst_mean": [worst_mean[0], *worst_mean[1]],
        "per_parameter": per,
    }
    (folder / "pulls.json").write_text(json.dumps(summary, indent=1))
    print(
        f"{summary['n_parameters']} parameters, {summary['n_pulls']} pulls: mean "
        f"{summary['mean']:+.3f}, sd {summary['sd']:.3f}, |pull| > 3: {summary['beyond_3su']}; "
        f"worst mean {worst_mean[0]} {worst_mean[1][0]:+.2f} (sd {worst_mean[1][1]:.2f})"
    )
    ok = abs(summary["mean"]) <= 0.3 and 0.8 <= summary["sd"] <= 1.2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

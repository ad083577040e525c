"""Meindl & Henn residual-density analysis of urea: IAM against the multipole model (issue 19).

Data: ``../shared/data/xray/urea`` (Birkedal et al., Acta Cryst. A60 (2004)
371; 1022 unique reflections to sinθ/λ = 1.40 Å⁻¹, 123 K). Two project files
written by ``chasm init`` are refined in a temporary folder:

- IAM: ``chasm init --no-multipoles`` (spherical atoms; reproduces SHELXL's
  wR2 = 0.0547 of iam.cif);
- multipole: ``chasm init`` defaults (lmax 4 on C, N, O; H dipoles; the
  staged strategy scale → high-order → hydrogens → monopoles → multipoles → all).

For each final model: the Fo − Fc map over the cell (every reflection, Fo on
the absolute scale, phases of the model) on two grids — the report's 0.1 Å
grid and the coarsest grid that holds the data (about 2|h|max + 1 points
along each axis, the resolution-matched grid of Meindl & Henn) — its fractal
dimension distribution df(ρ0) and e_gross (:func:`chasm.diagnostics.residual_analysis`),
printed as a table with the df(0) of uncorrelated noise on the same grid,
and the 0.1 Å curves drawn into one PNG (the path given as the first
argument, default residual-analysis-urea.png).

Run:  python validation/residual_analysis_urea.py [OUT.png]     (about 20 s)
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from chasm.cli import main as chasm
from chasm.diagnostics import residual_analysis, xray_fits
from chasm.diagnostics.plots import residual_analysis_png
from chasm.io.atomic import write_bytes_atomic
from chasm.maps.fourier import residual_map
from chasm.project.run import run_project

DATA = Path(os.environ.get("CHASM_DATA", Path(__file__).parents[2] / "shared" / "data"))
UREA = DATA / "xray" / "urea"


#: Grids: the report's (step <= 0.1 A) and the resolution-matched one (a step so large
#: that the size is set by 2|h|max + 1 alone).
GRIDS = {"0.1 A": 0.1, "2hmax+1": 10.0}


def analyse(project: Path, out: Path):
    """Refine a project quietly; its residual analyses {grid: analysis} and X-ray agreement."""
    run = run_project(project, output=out, echo=None, report=False)
    ref = run.built.refinement
    fit = xray_fits(ref)[0]
    fo = np.sqrt(np.maximum(fit.fo2, 0))
    analyses = {}
    for name, spacing in GRIDS.items():
        fmap = residual_map(ref.crystal, fit.hkl, fo, fit.f_calc, spacing=spacing)
        analyses[name] = residual_analysis(fmap.values, ref.crystal.volume)
    return analyses, run.result["datasets"]["xray"]


def main() -> None:
    png = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("residual-analysis-urea.png")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, extra in (("IAM", ["--no-multipoles"]), ("multipole", [])):
            folder = Path(tmp) / label
            folder.mkdir()
            args = ["init", str(UREA / "iam.cif"), "--xray", str(UREA / "iam.hkl")]
            with contextlib.redirect_stdout(io.StringIO()):
                assert chasm([*args, *extra, "-o", str(folder / "project.toml")]) == 0
            results[label] = analyse(folder / "project.toml", folder / "refined")
    print(
        "model      grid        wR2     GOF    rho_min  rho_max  rms     df(0)  noise  "
        "df(-0.1) df(+0.1) e_gross"
    )
    for label, (analyses, d) in results.items():
        for a in analyses.values():
            at = {lv: a.df[int(np.argmin(np.abs(a.levels - lv)))] for lv in (-0.1, 0.1)}
            grid = "x".join(str(n) for n in a.grid)
            print(
                f"{label:<10s} {grid:<10s}  {d['wR2']:.4f}  {d['gof']:.3f}  {a.rho_min:+.3f}   "
                f"{a.rho_max:+.3f}   {a.rms:.4f}  {a.df_zero:.3f}  {a.df_noise:.3f}  "
                f"{at[-0.1]:.3f}    {at[0.1]:.3f}    {a.e_gross:.3f}"
            )
    print("(e/A^3; e_gross in electrons per cell; noise: df(0) of uncorrelated noise on the grid)")
    write_bytes_atomic(
        png,
        residual_analysis_png(
            [analyses["0.1 A"] for analyses, _ in results.values()],
            list(results),
            "Urea: residual-density analysis, IAM and multipole",
        ),
    )
    print(f"wrote {png}")


if __name__ == "__main__":
    main()

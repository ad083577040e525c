"""The report's diagnostics: figures and tables of :mod:`chasm.diagnostics`.

Per X-ray data set (from the refinement, or from the folder's model.fcf):
Fo against Fc, the normal probability plot, the DRK plot and — when the
phases are known (the refinement is given) — the residual-density analysis
of Meindl & Henn. Then the rigid-bond test of the anisotropic atoms and the
largest correlations. Figures are written next to report.md as
``diag_<kind>_<set>.png`` (atomically).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from chasm.io.atomic import write_bytes_atomic
from chasm.io.su_format import format_su

__all__ = ["diagnostics_blocks"]


def _fits(folder: Path, refinement, crystal) -> tuple[list, str]:
    from chasm.diagnostics import fit_from_fcf, xray_fits

    if refinement is not None:
        return xray_fits(refinement), "the refinement's X-ray data at the final parameters"
    fcf = folder / "model.fcf"
    if fcf.is_file():
        return [fit_from_fcf(fcf, crystal)], "model.fcf of the folder (weights 1/σ², no phases)"
    return [], ""


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def diagnostics_blocks(
    folder: Path, refinement, crystal, result: dict, steps, correlations: tuple
) -> tuple[list[tuple], dict[str, Path]]:
    """Blocks of the Diagnostics section and the PNG files written.

    Parameters
    ----------
    folder : Path
        The result folder (figures are written there).
    refinement : Refinement or None
    crystal : Crystal or None
        The final structure (rigid-bond test; sinθ/λ of model.fcf).
    result : dict
        result.json content (parameter su for the rigid-bond test).
    steps : Steps
        Progress lines.
    correlations : (rows, what)
        The largest correlations and what they are.
    """
    from chasm.diagnostics import drk, fo_fc, normal_probability, plots, residual_analysis
    from chasm.diagnostics.residual import spherical_atom_residual
    from chasm.maps.fourier import residual_map

    blocks: list[tuple] = [("h", 2, "Diagnostics")]
    files: dict[str, Path] = {}
    fits, source = _fits(folder, refinement, crystal)
    n_steps = 4 * len(fits) + 2
    k = 0

    def figure(name: str, caption: str, png: bytes) -> None:
        path = folder / name
        write_bytes_atomic(path, png)
        files[name] = path
        blocks.append(("img", name, caption, png))

    if not fits:
        blocks.append(("p", "No X-ray data set (or no model.fcf): no reflection diagnostics."))
    else:
        blocks.append(("p", f"Reflections from {source}."))
    for fit in fits:
        tag = _safe(fit.name)
        several = f" ({fit.name})" if len(fits) > 1 else ""
        f = fo_fc(fit)
        npp = normal_probability(fit)
        bins = drk(fit)
        blocks.append(("h", 3, f"Agreement of the reflections{several}"))
        figure(
            f"diag_fofc_{tag}.png",
            f"|Fo| against |Fc| of {fit.name}, {len(fit)} reflections; slope of Fo² on Fc² "
            f"{f.slope:.4f}, correlation {f.correlation:.5f}.",
            plots.fo_fc_png(f, f"Fo against Fc, {fit.name}"),
        )
        k += 1
        steps.step("diagnostics", k, n_steps, f"Fo vs Fc ({fit.name})")
        figure(
            f"diag_normal_{tag}.png",
            f"Normal probability plot of {fit.name}: sorted √w (Fo² − Fc²), w = {fit.weighting}, "
            f"against the normal quantiles Φ⁻¹((i − ½)/n) (Abrahams & Keve 1971); slope "
            f"{npp.slope:.3f}, intercept {npp.intercept:+.3f} (1 and 0 for normal errors "
            "of the assumed size).",
            plots.normal_probability_png(npp, f"Normal probability plot, {fit.name}"),
        )
        k += 1
        steps.step("diagnostics", k, n_steps, f"normal probability plot ({fit.name})")
        figure(
            f"diag_drk_{tag}.png",
            f"DRK plot of {fit.name}: Σ Fo² / Σ Fc² in {len(bins.ratio)} bins of sinθ/λ of "
            f"equal counts (Zavodnik et al. 1999); range {bins.ratio.min():.3f} – "
            f"{bins.ratio.max():.3f}.",
            plots.drk_png(bins, f"DRK plot, {fit.name}"),
        )
        k += 1
        steps.step("diagnostics", k, n_steps, f"DRK plot ({fit.name})")
        if fit.f_calc is not None and crystal is not None:
            fmap = residual_map(crystal, fit.hkl, np.sqrt(np.maximum(fit.fo2, 0)), fit.f_calc)
            a = residual_analysis(fmap.values, crystal.volume)
            iam = spherical_atom_residual(crystal, fit)
            blocks.append(("h", 3, f"Residual-density analysis{several}"))
            figure(
                f"diag_residual_{tag}.png",
                f"Fractal dimension df(ρ0) of the residual density of {fit.name} (Meindl & "
                f"Henn 2008) on a {'×'.join(map(str, a.grid))} grid: df(0) = {a.df_zero:.3f} "
                f"(uncorrelated noise on this grid: {a.df_noise:.3f}), "
                f"ρ0 from {a.rho_min:.3f} to {a.rho_max:.3f} e/Å³, rms {a.rms:.4f} e/Å³, "
                f"e_gross = {a.e_gross:.3f} e per cell. For comparison, spherical atoms "
                f"(IAM) at the same positions and ADPs: ρ0 from {iam.rho_min:.3f} to "
                f"{iam.rho_max:.3f} e/Å³, df(0) = {iam.df_zero:.3f}, e_gross = "
                f"{iam.e_gross:.3f} e. A narrow, symmetric, parabola-like curve whose top "
                "approaches the noise value is what featureless residuals give; shoulders, "
                "long tails and a lower df(0) are features the model misses.",
                plots.residual_analysis_png(
                    [iam, a], ["spherical atoms, same geometry", "final model"]
                ),
            )
        k += 1
        steps.step("diagnostics", k, n_steps, f"residual-density analysis ({fit.name})")
    blocks += _rigid_bond(crystal, result)
    k += 1
    steps.step("diagnostics", k, n_steps, "rigid-bond test")
    rows, what = correlations
    blocks += [("h", 3, "Largest correlations"), ("p", what + ".")]
    if rows:
        blocks.append(("table", ["parameter 1", "parameter 2", "ρ"], rows))
    k += 1
    steps.step("diagnostics", k, n_steps, "correlations")
    return blocks, files


def _signed(x: float) -> str:
    """x with its sign and one decimal; 0.0 without a sign (no "-0.0")."""
    text = f"{x:+.1f}"
    return "0.0" if float(text) == 0.0 else text


def _rigid_bond(crystal, result: dict) -> list[tuple]:
    from chasm.diagnostics import rigid_bond_test
    from chasm.diagnostics.rigid_bond import HIRSHFELD_LIMIT

    out: list[tuple] = [("h", 3, "Rigid-bond test")]
    if crystal is None:
        return out + [("p", "No structure: no rigid-bond test.")]
    su = {n: p.get("su") for n, p in (result.get("parameters") or {}).items()}
    rows = rigid_bond_test(crystal, su)
    if not rows:
        return out + [("p", "No bonded pair of anisotropic non-H atoms.")]
    table = []
    for r in rows:
        z = r.z
        table.append(
            [
                f"{r.atom1}–{r.atom2}",
                f"{r.distance:.4f}",
                f"{r.z2_1 * 1e4:.1f}",
                f"{r.z2_2 * 1e4:.1f}",
                format_su(r.delta * 1e4, None if r.su is None else r.su * 1e4, exact_decimals=1),
                "-" if z is None else _signed(z),
            ]
        )
    worst = max(rows, key=lambda r: abs(r.delta))
    out.append(
        (
            "table",
            ["bond", "d (Å)", "z²_A (10⁻⁴ Å²)", "z²_B (10⁻⁴ Å²)", "Δ (10⁻⁴ Å²)", "Δ/su"],
            table,
        )
    )
    out.append(
        (
            "p",
            "Hirshfeld's rigid-bond test: Δ = z²_A − z²_B, the difference of the mean-square "
            "displacements of the two atoms along the bond; |Δ| ≤ "
            f"{HIRSHFELD_LIMIT * 1e4:.0f} × 10⁻⁴ Å² for a rigid bond between atoms at least as "
            f"heavy as C (largest here: {worst.atom1}–{worst.atom2}, "
            f"{abs(worst.delta) * 1e4:.1f} × 10⁻⁴ Å²); metal–ligand and ionic contacts need "
            "not be rigid. su(Δ) from the su of the U without correlations.",
        )
    )
    return out

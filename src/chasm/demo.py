"""``chasm demo``: the built-in example end to end.

The synthetic azido-bridged Cu(II) dimer of :mod:`chasm.examples.seed`:
simulate X-ray F², unpolarised-neutron F² and flipping ratios from the true
spin-resolved model, start from neutral spherical atoms, run the stages of the
method (X-ray multipoles; neutron ADPs and PND-only spin populations; split;
joint refinement of everything), and write into the output folder the refined
model (rhoCIF with the spin-split atoms), a table like Table 1 of the paper
(spin populations PND-only vs joint), and the static deformation and spin
density maps in the plane of Cu1, O1 and N1, and the report (report.html,
report.md: agreement, parameters, correlations, the PND-only vs joint spin
table, charges, d-orbital populations, maps with the X-ray residual map).

The default size (X-ray to sinθ/λ = 0.7 Å⁻¹, 1,000 UND and 212 PND
reflections) runs in well under two minutes; ``--full`` uses the published
sizes (X-ray to 1.0 Å⁻¹, about 13,000 reflections; 2,000 UND).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from chasm.blas import blas_threads
from chasm.examples import seed
from chasm.io.atomic import write_text_atomic
from chasm.io.su_format import format_su
from chasm.refine.refinement import share_gof

__all__ = ["run_demo", "spin_table"]


def spin_table(pnd_only: dict, joint: dict, truth: dict | None = None) -> str:
    """Table 1 of the paper: spin populations (μB) PND-only vs joint, with su.

    Values are printed as value(su) by the rule of 19; the N obs, GOF and
    Rw(1−R) rows are those of the flipping ratios in each stage.

    ``pnd_only`` and ``joint`` map "populations" -> {label: (value, su)} and
    "stats" -> {"n_obs", "n_par", "gof", "rw"} of the PND data.
    """
    head = f"{'atom':<6s} {'PND only':>14s} {'joint':>14s}" + (f" {'true':>8s}" if truth else "")
    rows = [head, "-" * len(head)]
    for lab in pnd_only["populations"]:
        a, sa = pnd_only["populations"][lab]
        b, sb = joint["populations"][lab]
        line = f"{lab:<6s} {format_su(a, sa):>14s} {format_su(b, sb):>14s}"
        rows.append(line + (f" {truth[lab]:>8.3f}" if truth else ""))
    sa = sum(v for v, _ in pnd_only["populations"].values())
    sb = sum(v for v, _ in joint["populations"].values())
    rows.append(
        f"{'sum':<6s} {sa:>14.4f} {sb:>14.4f}" + (f" {sum(truth.values()):>8.3f}" if truth else "")
    )
    # the PND figures of each stage: its flipping ratios (N obs), the parameters it
    # refined, and the ratios' own GOF (shared parameters charged by their share)
    for key, label in (("n_obs", "N obs"), ("n_par", "N param")):
        rows.append(f"{label:<6s} {pnd_only['stats'][key]:>14d} {joint['stats'][key]:>14d}")
    rows.append(f"{'GOF':<6s} {pnd_only['stats']['gof']:>14.3f} {joint['stats']['gof']:>14.3f}")
    rows.append(f"{'Rw(1-R)':<6s} {pnd_only['stats']['rw']:>14.4f} {joint['stats']['rw']:>14.4f}")
    return "\n".join(rows)


HEADER = """\
chasm demo: a joint refinement of one spin-resolved multipole model against X-ray
diffraction (XRD), unpolarised neutron diffraction (UND) and polarised neutron
diffraction (PND, flipping ratios), the method of Deutsch et al., Acta Cryst. A68
(2012) 675, applied as in Deutsch et al., IUCrJ 1 (2014) 194 to an end-to-end
azido-bridged Cu(II) dimer. Here the data are SIMULATED from a known ("true")
model with realistic noise, so you can see how well each stage recovers it."""

STAGES_IN_WORDS = """\
stages: a: charge density from the X-rays alone (multipoles of every atom);
        b: nuclear ADPs from UND, then spin populations from PND alone (Table 1, left);
        c: split each magnetic atom into spin-up and spin-down densities;
        d: joint refinement of everything against all three data sets (Table 1, right)."""


def _keep_done(out: Path, crystal, ref, lines: list[str], say) -> None:
    """Ctrl-C: keep the model and the stage lines done so far (then the caller re-raises)."""
    from chasm.io.rhocif import write_rhocif

    su = {p.name: float(p.su) for p in list(ref.params)[: ref.n_struct] if p.su}
    write_rhocif(out / "model.cif", crystal, ref.models, su=su, adp_sets=ref.structure.adp)
    text = "\n".join(lines) + "\n(interrupted: the stages above were done)\n"
    write_text_atomic(out / "table1.txt", text)
    say(f"interrupted: the model after {len(lines)} finished stage(s) is in {out / 'model.cif'}")


def _set_agreement(ref, n_par: int, sets: list[str]) -> dict:
    """Agreement of the data sets a stage fitted, GOF with shared parameters."""
    ag = ref.agreement(n_par)
    ag = {s: ag[s] for s in sets}
    share_gof(ag, n_par)
    return ag


def _snapshot(ref, outcome, sets: list[str]) -> dict:
    pops = {
        lab: (ref.params[f"{lab}.Pv.spin"].value, ref.params[f"{lab}.Pv.spin"].su or 0.0)
        for lab in seed.SPIN_POPULATIONS
    }
    n_par = outcome.n_free
    ag = _set_agreement(ref, n_par, sets)
    stats = {
        "n_obs": int(ag["pnd"]["n_obs"]),
        "n_par": int(n_par),
        "gof": ag["pnd"]["gof"],
        "rw": float(ag["pnd"]["Rw"]),
    }
    return {"populations": pops, "stats": stats}


def demo_plane(crystal):
    """The demo's map plane: Cu1, O1, N1, 6 × 6 Å centred on Cu1, mesh step 0.08 Å.

    The report draws the deformation, spin and X-ray residual maps on it
    (``report_deformation.png``, ``report_spin.png``, ``report_residual.png``).
    """
    from chasm.maps.grids import Plane
    from chasm.maps.planes import map_plane

    atoms = ["Cu1", "O1", "N1"]
    mp = map_plane(crystal, ",".join(atoms), extent=6.0, step=0.08)
    mp.plane = Plane.through_atoms(crystal, atoms, size=(6.0, 6.0), step=0.08, centre=0)
    mp.name += ", centred on Cu1"
    return mp


def run_demo(
    output: str | Path = "chasm-demo",
    full: bool = False,
    seed_value: int = 0,
    echo: Callable[[str], None] | None = print,
    maps: bool = True,
    xray_smax: float | None = None,
    und_count: int | None = None,
) -> dict:
    """Simulate and refine the example; write model.cif, table1.txt and the report into ``output``.

    Returns
    -------
    dict
        ``"pnd_only"`` and ``"joint"`` snapshots (spin populations with su and
        PND statistics), ``"truth"``, ``"seconds"``, ``"files"``, ``"stages"``.
    """
    say = echo or (lambda s: None)
    t0 = time.perf_counter()
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    smax = xray_smax if xray_smax is not None else (1.0 if full else 0.7)
    n_und = und_count if und_count is not None else (2000 if full else 1000)
    say(HEADER)
    truth_crystal = seed.seed_crystal()
    truth = seed.truth_models(truth_crystal)
    data = seed.simulate(truth_crystal, truth, xray_smax=smax, und_count=n_und, seed=seed_value)
    say(
        f"simulated: {len(data.xray)} X-ray F2 (sin(theta)/lambda <= {smax}), "
        f"{len(data.und)} UND F2, {len(data.pnd.hkl)} flipping ratios (5 T)"
    )
    crystal = seed.seed_crystal()
    ref = seed.build_refinement(crystal, seed.start_models(crystal), data)
    stages = seed.route(ref)
    snapshots, lines = {}, []
    say("\n" + STAGES_IN_WORDS)
    for st in stages:
        try:
            o = ref.run_stage(st)
        except KeyboardInterrupt:
            _keep_done(out, crystal, ref, lines, say)
            raise
        sets = st.data or [d.name for d in ref.datasets]
        ag = _set_agreement(ref, o.n_free, sets)
        figs = "  ".join(f"{s}: GOF {ag[s]['gof']:.3f} Rw {ag[s]['Rw']:.4f}" for s in sets)
        state = "converged" if o.result.converged else "NOT converged"
        line = f"stage {st.name:<16s} {state} in {o.result.cycles:2d} cycles, {o.n_free:4d} par; "
        lines.append(line + figs)
        say(lines[-1])
        if st.name == "b: PND spin":
            snapshots["pnd_only"] = _snapshot(ref, o, ["pnd"])
            say("stage c: split     P_up = (P + S)/2, P_dn = (P - S)/2 (charge/spin basis)")
        if st.name == "d: joint":
            snapshots["joint"] = _snapshot(ref, o, sets)
    table = spin_table(snapshots["pnd_only"], snapshots["joint"], seed.SPIN_POPULATIONS)
    say(
        "\nspin populations (muB), PND-only vs joint, as in Table 1 of the paper "
        "(true: the values the data were simulated from):\n" + table
    )
    from chasm.io.rhocif import write_rhocif

    files = [out / "model.cif", out / "table1.txt"]
    su = {p.name: float(p.su) for p in list(ref.params)[: ref.n_struct] if p.su}
    write_rhocif(files[0], crystal, ref.models, su=su, adp_sets=ref.structure.adp)
    write_text_atomic(files[1], "\n".join(lines) + "\n\n" + table + "\n")
    from chasm.report import write_report

    # the maps are drawn once, by the report, on the demo's plane; the report's
    # products are small, and on a busy 2-core machine a second OpenBLAS thread that
    # is not scheduled stalls each of them (demo --full at load 3.8: 3.0-4.2 s on one
    # thread against 4.3-4.7 s with two, three runs each, same pages)
    planes = [demo_plane(crystal)] if maps else None
    with blas_threads(1):
        report = write_report(
            out, refinement=ref, maps=maps, progress=echo is not None, planes=planes
        )
    files += [report["html"], report["md"]]
    files += [path for name, path in report.items() if name.startswith("report_")]
    seconds = time.perf_counter() - t0
    say(f"\nwrote {', '.join(str(f) for f in files)}  ({seconds:.0f} s)")
    say(f"open {report['html']} in a browser: agreement, spin table, maps, properties")
    return {
        **snapshots,
        "truth": dict(seed.SPIN_POPULATIONS),
        "seconds": seconds,
        "files": files,
        "stages": lines,
    }

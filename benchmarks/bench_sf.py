"""Benchmark of the structure-factor engine on the seed-sized reference problem.

Prints medians of 5 runs of
  (a) IAM F (IT92),
  (b) Hansen-Coppens F (l <= 4 on non-H, l <= 1 on H),
  (c) Hansen-Coppens F plus the full Jacobian,
  (d) gemmi's IAM F (StructureFactorCalculatorX, Python loop over reflections),
and the ratio (a)/(d), all measured in this run. Then (issue 21) the HC
engine against an in-run yardstick, the floor of bench_cycle.py (numpy
J.T @ J for a random 15,060 x 858 float64 J, one BLAS syrk on the default
threads), timed interleaved with each engine call: HC F on one engine thread
and on every core (CHASM_ENGINE_THREADS), and HC F + the real Jacobian with
the chain rule to F² (what a refinement asks for), as medians of the per-run
ratios; with --numpy also the numpy reference path.

The problem is ../shared/data/benchmark/ref.cif + ref.hkl when present (P 21/n,
33 atoms, 15,060 reflections to sin(theta)/lambda = 1.0 1/A); otherwise an
equivalent one is generated deterministically.

Usage: python benchmarks/bench_sf.py [--runs 5] [--yardstick-only] [--numpy] [--cpu]
"""

from __future__ import annotations

# isort: off
import chasm.blas as _first  # noqa: F401 - import chasm first: it sets OpenBLAS's thread timeout

# isort: on
import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import gemmi
import numpy as np

from chasm.crystal.cif import read_cif
from chasm.crystal.structure import Atom, Crystal
from chasm.density.model import HansenCoppensAtom, SphericalAtom
from chasm.io.shelx_hkl import read_hkl_indices
from chasm.scattering.engine import StructureFactorEngine

REF = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "benchmark"


def generated_problem():
    """33 atoms (1 Cu, 1 O, 3 F, 5 N, 9 C, 14 H) in P 21/n, all unique hkl to s = 1.0."""
    rng = np.random.default_rng(2026)
    elements = ["Cu", "O"] + ["F"] * 3 + ["N"] * 5 + ["C"] * 9 + ["H"] * 14
    atoms, counts = [], {}
    for el in elements:
        counts[el] = counts.get(el, 0) + 1
        x = rng.uniform(0, 1, 3)
        atoms.append(Atom(f"{el}{counts[el]}", el, x, uiso=0.02 if el != "H" else 0.04))
    cr = Crystal.from_parts((11.7, 14.2, 11.2, 90, 105, 90), "P 1 21/n 1", atoms)
    for a in cr.atoms:
        if a.element != "H":
            a.u_aniso = np.array([0.02, 0.018, 0.022, 0.001, 0.004, -0.001])
    hkl = gemmi.make_miller_array(cr.cell, cr.spacegroup, 0.5)
    hkl = hkl[~cr.spacegroup.operations().systematic_absences(hkl)]
    return cr, hkl, "generated (seed 2026)"


def load_problem():
    if (REF / "ref.cif").is_file() and (REF / "ref.hkl").is_file():
        return read_cif(REF / "ref.cif"), read_hkl_indices(REF / "ref.hkl").hkl, str(REF)
    return generated_problem()


def hc_models(crystal, rng):
    models = []
    for a in crystal.atoms:
        lmax = 1 if a.element == "H" else 4
        q, r = np.linalg.qr(rng.normal(size=(3, 3)))
        models.append(
            HansenCoppensAtom(
                a.element,
                pv=1.0 if a.element == "H" else 4.0,
                kappa=1.02,
                lmax=lmax,
                plm=rng.normal(scale=0.1, size=(lmax + 1) ** 2),
                kappa_prime=0.95,
                frame=q * np.sign(np.linalg.det(q)),
            )
        )
    return models


#: the clock of median_time: wall time, or this thread's CPU time (use_cpu_clock)
CLOCK = {"now": time.perf_counter}


def use_cpu_clock() -> None:
    """Time with time.thread_time (CPU of this thread): one-thread ratios robust to load.

    Only meaningful when nothing runs on other threads, so CHASM_ENGINE_THREADS
    and OPENBLAS_NUM_THREADS must both be 1 (set before the process starts).
    """
    for var in ("CHASM_ENGINE_THREADS", "OPENBLAS_NUM_THREADS"):
        if os.environ.get(var) != "1":
            raise SystemExit(f"--cpu needs {var}=1 in the environment (one-thread CPU time)")
    CLOCK["now"] = time.thread_time
    print("clock: time.thread_time (CPU time of one thread; engine and BLAS on one thread)")


def median_time(fn, runs):
    times = []
    now = CLOCK["now"]
    for _ in range(runs):
        t0 = now()
        fn()
        times.append(now() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--numpy", action="store_true", help="also the numpy reference path")
    ap.add_argument("--yardstick-only", action="store_true", help="only the issue-21 ratios")
    ap.add_argument(
        "--cpu",
        action="store_true",
        help="time by the CPU time of one thread (needs CHASM_ENGINE_THREADS=1 "
        "OPENBLAS_NUM_THREADS=1): one-thread ratios that the machine's load moves less",
    )
    args = ap.parse_args()
    if args.cpu:
        use_cpu_clock()
    if args.yardstick_only:
        against_yardstick(args.runs, args.numpy)
        return
    crystal, hkl, source = load_problem()
    rng = np.random.default_rng(1)
    print(
        f"problem: {source}; {len(crystal.atoms)} atoms, {len(hkl)} reflections, "
        f"{crystal.n_ops} operations"
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"numpy {np.__version__}, gemmi {gemmi.__version__}, "
        f"OPENBLAS_THREAD_TIMEOUT={os.environ.get('OPENBLAS_THREAD_TIMEOUT', 'unset')}"
    )

    iam = StructureFactorEngine(crystal, [SphericalAtom(a.element) for a in crystal.atoms], hkl)
    hc = StructureFactorEngine(crystal, hc_models(crystal, rng), hkl)
    n_par = len(hc.parameter_names)
    iam.compute()
    hc.compute(jacobian=True)
    ta = median_time(iam.compute, args.runs)
    tb = median_time(hc.compute, args.runs)
    tc = median_time(lambda: hc.compute(jacobian=True), args.runs)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "s.cif"
        lines = ["data_s", f"_symmetry_space_group_name_H-M '{crystal.spacegroup.hm}'"]
        for tag, v in zip(
            ("length_a", "length_b", "length_c", "angle_alpha", "angle_beta", "angle_gamma"),
            crystal.cell.parameters,
            strict=True,
        ):
            lines.append(f"_cell_{tag} {v}")
        lines += [
            "loop_",
            "_atom_site_label",
            "_atom_site_type_symbol",
            "_atom_site_fract_x",
            "_atom_site_fract_y",
            "_atom_site_fract_z",
            "_atom_site_U_iso_or_equiv",
        ]
        lines += [
            f"{a.label} {a.element} {a.xyz[0]} {a.xyz[1]} {a.xyz[2]} {a.uiso}"
            for a in crystal.atoms
        ]
        aniso = [a for a in crystal.atoms if a.u_aniso is not None]
        lines += ["loop_", "_atom_site_aniso_label"] + [
            f"_atom_site_aniso_U_{t}" for t in ("11", "22", "33", "12", "13", "23")
        ]
        lines += [f"{a.label} " + " ".join(map(str, a.u_aniso)) for a in aniso]
        path.write_text("\n".join(lines) + "\n")
        st = gemmi.read_small_structure(str(path))
    calc = gemmi.StructureFactorCalculatorX(st.cell)
    hl = [list(map(int, h)) for h in hkl]

    def gemmi_sf():
        return [calc.calculate_sf_from_small_structure(st, h) for h in hl]

    td = median_time(gemmi_sf, args.runs)
    F_g = np.array(gemmi_sf())
    F_a = iam.compute().F
    dev = np.max(np.abs(F_a - F_g)) / np.max(np.abs(F_g))
    print(f"(a) IAM F                      {ta:8.3f} s")
    print(f"(b) HC F                       {tb:8.3f} s   (target 0.2 s)")
    print(f"(c) HC F + Jacobian ({n_par} par) {tc:8.3f} s   (target 1 s)")
    print(f"(d) gemmi IAM F (Python loop)  {td:8.3f} s")
    print(f"ratio (a)/(d) = {ta / td:.2f}   (target <= 2)")
    print(f"max |F_chasm - F_gemmi| / max |F| = {dev:.1e}")
    against_yardstick(args.runs, args.numpy)


def against_yardstick(runs: int, with_numpy: bool) -> None:
    """HC F and F + Jacobian over the floor J.T @ J (15,060 x 858), interleaved run by run."""
    from chasm.scattering.engine import engine_backend, engine_threads

    crystal, hkl, _ = load_problem()
    models = hc_models(crystal, np.random.default_rng(1))
    floor_a = np.random.default_rng(0).normal(size=(len(hkl), 858))
    saved = os.environ.get("CHASM_ENGINE_THREADS")
    cores = engine_threads()

    def threads(k):
        def set_threads():
            os.environ["CHASM_ENGINE_THREADS"] = str(k)

        return set_threads

    rows = []
    for backend in ["numba", "numpy"] if with_numpy else [engine_backend()]:
        eng = StructureFactorEngine(crystal, models, hkl, backend=backend)
        out = np.zeros((len(hkl), len(eng.parameter_names)))

        def factors(rows_, f):
            return 2.0 * f.real, 2.0 * f.imag

        def f_and_j(eng=eng, out=out):
            eng.compute(jacobian=True, real=True, out=out, row_factors=factors)

        cases = [(f"{backend}: HC F, 1 thread", threads(1), eng.compute)]
        if backend == "numba":
            cases.append((f"{backend}: HC F, {cores} threads", threads(cores), eng.compute))
            cases.append((f"{backend}: HC F + dF²/dp, 1 thread", threads(1), f_and_j))
        cases.append((f"{backend}: HC F + dF²/dp, {cores} threads", threads(cores), f_and_j))
        for label, setup, fn in cases:
            setup()
            fn()
            t_fn, t_floor = [], []
            for _ in range(runs):
                t_floor.append(median_time(lambda: floor_a.T @ floor_a, 1))
                t_fn.append(median_time(fn, 1))
            ratio = statistics.median(a / b for a, b in zip(t_fn, t_floor, strict=True))
            rows.append((label, statistics.median(t_fn), statistics.median(t_floor), ratio))
    if saved is None:
        os.environ.pop("CHASM_ENGINE_THREADS", None)
    else:
        os.environ["CHASM_ENGINE_THREADS"] = saved
    print(f"against the floor J.T @ J ({len(hkl)} x 858), medians of {runs}, load {load_text()}:")
    for label, t, f, r in rows:
        print(f"  {label:<40s} {t:7.4f} s   floor {f:7.4f} s   ratio {r:5.2f}")


def load_text() -> str:
    """The 1-minute load average."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


if __name__ == "__main__":
    main()

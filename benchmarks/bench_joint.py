"""Benchmark of one joint full-matrix cycle on the full-size seed case (issue 5).

The problem is the example of :mod:`chasm.examples.seed` at the sizes of
``chasm demo --full``: X-ray F² to sinθ/λ = 1.0 Å⁻¹ (about 13,000 unique
reflections), 2,000 unpolarised-neutron F², 212 flipping ratios, simulated
from the true spin-resolved model (seed 0). The refinement is the one of the
demo (:func:`chasm.examples.seed.build_refinement`: charge/spin basis,
electroneutrality) and its route (:func:`chasm.examples.seed.route`).

Part 1 times the whole route to convergence, stages a-d (simulation and set-up
separately), as ``chasm demo --full`` runs it without the maps and files.

Part 2 times one cycle of the joint stage "d: joint" (every parameter that
stage frees: X-ray scale, positions, X-ray ADPs, charge populations, κ, UND
scale, neutron ADPs, spin populations) at the point where the route starts
that stage, through the real code path: Refinement's evaluator for each data
set (X-ray, UND and PND evaluation with their full-width Jacobians), the
solver's checks, normal matrix and right-hand side per set, scaling,
Cholesky, rcond, M⁻¹ and the step, as :func:`chasm.refine.solver.solve` does
per cycle (its internals are called directly so one cycle can be isolated).

The floor, timed in the same run and interleaved with the cycles, is numpy
forming Jᵀ J for a random float64 C-contiguous J of the total rows (all three
data sets) × the free columns: ``J.T @ J`` (one BLAS syrk). Every figure is a
median of --runs runs; the ratio is the median of the per-run ratios
cycle / floor. Target: cycle ≤ 3 × floor. The breakdown times each phase on
its own (same calls), per data set kind and per phase.

Usage: python benchmarks/bench_joint.py [--runs 7] [--no-route] [--cpu] (--cpu: as in
bench_cycle.py, one-thread CPU time)
"""

from __future__ import annotations

# isort: off
import chasm.blas as _first  # noqa: F401 - import chasm first: it sets OpenBLAS's thread timeout

# isort: on
import argparse
import time

import numpy as np

from bench_cycle import (
    CPU_HELP,
    against_floor,
    load_average,
    machine,
    one_cycle,
    print_ratio,
    solver_dataset,
)
from bench_sf import median_time, use_cpu_clock
from chasm.examples import seed
from chasm.refine.solver import _Solver

ROUTE_TARGET = 300.0  # seconds, stages a-d


def build(full: bool = True):
    """Simulated data and the demo's refinement at its start (sizes of chasm demo --full)."""
    t0 = time.perf_counter()
    truth_crystal = seed.seed_crystal()
    truth = seed.truth_models(truth_crystal)
    smax, n_und = (1.0, 2000) if full else (0.7, 1000)
    data = seed.simulate(truth_crystal, truth, xray_smax=smax, und_count=n_und, seed=0)
    t_sim = time.perf_counter() - t0
    t0 = time.perf_counter()
    crystal = seed.seed_crystal()
    ref = seed.build_refinement(crystal, seed.start_models(crystal), data)
    t_build = time.perf_counter() - t0
    return data, ref, t_sim, t_build


def run_route(ref) -> tuple[list, np.ndarray]:
    """Run the demo's stages; per stage (name, seconds, cycles, n_free, converged).

    Also returns the full parameter vector at the start of the joint stage.
    """
    rows, start_joint = [], None
    for st in seed.route(ref):
        if st.name == "d: joint":
            start_joint = ref.params.values.copy()
        t0 = time.perf_counter()
        o = ref.run_stage(st)
        rows.append(
            (st.name, time.perf_counter() - t0, o.result.cycles, o.n_free, o.result.converged)
        )
    return rows, start_joint


def joint_solver(ref, p_start: np.ndarray | None):
    """The solver of the joint stage as Refinement.run_free builds it, at p_start."""
    stage = next(s for s in seed.route(ref) if s.name == "d: joint")
    if p_start is not None:
        ref._applied = None
        ref.set_values(p_start)
    ref._select_free(stage)
    for d in ref.datasets:
        d.window = (stage.smin, stage.smax)
    red = ref.all_constraints().reduce(ref.params)
    sets = [solver_dataset(ref, d) for d in ref.stage_datasets(stage)]
    sv = _Solver(sets, red.p0, red.T, red.reduced_names, ref.scheme, ref.options)
    return sv, red


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--no-route", action="store_true", help="skip part 1 (cycle at the start)")
    ap.add_argument("--cpu", action="store_true", help=CPU_HELP)
    args = ap.parse_args()
    runs = max(5, args.runs)
    if args.cpu:
        use_cpu_clock()

    print(machine())
    print(f"load average at start: {load_average()}")
    data, ref, t_sim, t_build = build()
    n_x, n_u, n_p = len(data.xray), len(data.und), len(data.pnd.hkl)
    print(
        f"seed case (chasm demo --full): {n_x} X-ray F², {n_u} UND F², {n_p} flipping ratios; "
        f"{len(ref.params)} parameters ({ref.n_struct} structural)"
    )

    # ---- part 1: the whole route
    p_joint = None
    if not args.no_route:
        rows, p_joint = run_route(ref)
        total = t_sim + t_build + sum(r[1] for r in rows)
        print("whole refinement, stages a-d (chasm demo --full without maps and files):")
        print(f"  {'simulation (truth model, noise)':<34s} {t_sim:7.2f} s")
        print(f"  {'refinement set-up':<34s} {t_build:7.2f} s")
        for name, t, cycles, n_free, conv in rows:
            state = "converged" if conv else "NOT converged"
            print(f"  stage {name:<28s} {t:7.2f} s   {cycles:2d} cycles, {n_free:4d} free, {state}")
        verdict = "met" if total <= ROUTE_TARGET else "NOT met"
        print(f"  {'total':<34s} {total:7.2f} s   (target <= {ROUTE_TARGET:g} s: {verdict})")
        print(f"load average after the route: {load_average()}")

    # ---- part 2: one joint cycle
    sv, red = joint_solver(ref, p_joint)
    names = [d.name for d in sv.datasets]
    kinds = {d.name: d.kind for d in ref.datasets}
    n_full, n_free = red.T.shape
    z = np.zeros(sv.k)
    p = sv.full(z)
    state = sv.evaluate(z)
    n_rows = int(sum(len(ev.y_obs) for ev in state.evals))
    print(
        f"joint cycle at the start of stage d: {n_rows} rows "
        f"({', '.join(f'{n} {len(ev.y_obs)}' for n, ev in zip(names, state.evals, strict=True))}), "
        f"{n_full} parameters, {n_free} free"
    )
    t_cycle, t_floor, ratio = against_floor(lambda: one_cycle(sv, z), n_rows, n_free, runs)

    # ---- breakdown: the same calls, phase by phase
    rows = []
    ref.set_values(p)
    for d in ref.stage_datasets(next(s for s in seed.route(ref) if s.name == "d: joint")):
        label = {"xray": "X-ray", "und": "UND", "pnd": "PND"}.get(kinds[d.name], d.name)
        t = median_time(lambda d=d: d.evaluate(p), runs)
        rows.append((f"{label} evaluation ({d.name}: F, Jacobian, weights)", t))
        for part, fn in _parts(d, p):
            rows.append((f"  {part}", median_time(fn, runs)))
    t_check = sum(
        median_time(lambda ev=ev, n=n: sv._checked(n, ev, n_full), runs)
        for n, ev in zip(names, state.evals, strict=True)
    )
    rows.append(("solver checks (finite values, shapes)", t_check))
    t_normal = 0.0
    for n, ev, c in zip(names, state.evals, state.factors, strict=True):
        t = median_time(lambda ev=ev, c=c: sv.normal_part(ev, c), runs)
        t_normal += t
        rows.append((f"normal matrix + rhs, {n} ({len(ev.y_obs)} rows)", t))
    t_system = median_time(lambda: sv.system(state), runs)
    rows.append(("scaling, Cholesky, rcond, M⁻¹ (difference)", t_system - t_normal))
    system = sv.system(state)
    rows.append(("step", median_time(lambda: system.step(0.0), runs)))
    t_eval = median_time(lambda: sv.evaluate(z), runs)

    print(f"breakdown (medians of {runs}, each phase timed alone):")
    for label, t in rows:
        print(f"  {label:<58s} {t:7.3f} s")
    print(f"  {'evaluate (all sets, with checks), timed alone':<58s} {t_eval:7.3f} s")
    print_ratio("one joint cycle", t_cycle, t_floor, ratio, (n_rows, n_free))


def _parts(d, p):
    """Sub-phases of one data set's evaluation (engine work), as (label, function)."""
    out = []
    if hasattr(d, "_engine"):  # X-ray and UND sets: engine and column map
        eng, view = d._engine()[0], d._view
        n_e = len(eng.parameter_names)
        if hasattr(view, "compute_real"):  # the path XrayData takes (no extinction here)
            from chasm.scattering.xray import chain_factors

            buf = np.zeros((len(eng.hkl), view.n_struct))
            scale = float(p[d._i_scale])

            def factors(rows, f_rows):
                return chain_factors(f_rows, scale)

            out.append(
                (
                    f"engine: F, dy/dp over {view.n_struct} parameters (real)",
                    lambda: view.compute_real(eng, out=buf, row_factors=factors),
                )
            )
        out.append((f"(engine: F, complex dF/dp, {n_e} engine columns)", lambda: eng.compute(True)))
        out.append(("(engine + column map, complex)", lambda: view.compute(eng, True)))
    elif hasattr(d, "structure_factors"):  # flipping ratios: nuclear and magnetic views
        out.append(("nuclear + magnetic F and Jacobians", lambda: d.structure_factors(p, True)))
    return out


if __name__ == "__main__":
    main()

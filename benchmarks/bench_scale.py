"""Scale benchmark: one full-matrix cycle of a structure 4x the seed size (issue 21, item 4).

The problem is made deterministically from the seed-sized reference problem
of bench_sf.py (P 1 21/n 1, 33 atoms): the cell is doubled along a and b and
the asymmetric unit copied into the four quarters, (x + i)/2, (y + j)/2, z
for i, j in {0, 1}, giving 132 atoms (4 Cu, 4 O, 12 F, 20 N, 36 C, 56 H) in
P 1 21/n 1 with the same Hansen-Coppens model per atom as bench_sf.py (l <= 4
on non-H, l <= 1 on H). Reflections: every unique hkl of the new cell to
sin(theta)/lambda = --smax (default 0.8 1/A). F² are simulated and the start
perturbed as in bench_cycle.py; every parameter but the occupancies is free.

Printed: the problem's size, one cycle against numpy's J.T @ J floor for the
reduced Jacobian's shape (interleaved, medians of --runs, ratio = median of
per-run ratios), the engine alone, and the peak resident memory of a fresh
process that builds the problem and runs one cycle (ru_maxrss), against the
size of the Jacobian. The geometry is not chemistry (copies of an asymmetric
unit placed in a cell with other symmetry): only sizes and times matter here.

Usage: python benchmarks/bench_scale.py [--smax 0.8] [--runs 3] [--copies 4]
"""

from __future__ import annotations

# isort: off
import chasm.blas as _first  # noqa: F401 - import chasm first: it sets OpenBLAS's thread timeout

# isort: on
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import gemmi
import numpy as np

from bench_cycle import against_floor, load_average, machine, one_cycle
from bench_sf import hc_models, load_problem, median_time
from chasm.crystal.structure import Atom, Crystal
from chasm.io.shelx_hkl import Reflections
from chasm.refine.parameters import apply_values, parameters_from_model
from chasm.refine.solver import Dataset, _Solver
from chasm.refine.xray_refinement import XrayRefinement
from chasm.scattering.engine import StructureFactorEngine


def scaled_crystal(copies: int = 4) -> Crystal:
    """The reference asymmetric unit copied into 1, 2 or 4 parts of a cell doubled along a, b."""
    base, _, _ = load_problem()
    shifts = {1: [(0, 0)], 2: [(0, 0), (1, 0)], 4: [(0, 0), (1, 0), (0, 1), (1, 1)]}[copies]
    fa, fb = (2 if copies >= 2 else 1), (2 if copies == 4 else 1)
    a, b, c, al, be, ga = base.cell.parameters
    atoms = []
    for k, (i, j) in enumerate(shifts):
        for at in base.atoms:
            x, y, z = at.xyz
            atoms.append(
                Atom(
                    f"{at.label}_{k}",
                    at.element,
                    np.array([(x + i) / fa, (y + j) / fb, z]),
                    uiso=at.uiso,
                    u_aniso=None if at.u_aniso is None else np.array(at.u_aniso, float),
                )
            )
    return Crystal.from_parts((a * fa, b * fb, c, al, be, ga), "P 1 21/n 1", atoms)


def scaled_problem(copies: int, smax: float, seed: int = 7):
    """Crystal, HC models at a perturbed start, and simulated F² (as bench_cycle.py)."""
    crystal = scaled_crystal(copies)
    hkl = gemmi.make_miller_array(crystal.cell, crystal.spacegroup, 0.5 / smax)
    hkl = hkl[~crystal.spacegroup.operations().systematic_absences(hkl)]
    models = hc_models(crystal, np.random.default_rng(1))
    fc2 = np.abs(StructureFactorEngine(crystal, models, hkl).compute().F) ** 2
    rng = np.random.default_rng(seed)
    sigma = 0.02 * fc2 + 0.01 * fc2.mean()
    f2 = fc2 + rng.normal(size=fc2.size) * sigma
    params = parameters_from_model(crystal, models)
    for p in params:
        kind = p.name.split(".", 1)[1]
        if kind in ("x", "y", "z"):
            p.value += rng.normal(scale=0.001)
        elif kind.startswith("U"):
            p.value *= 1.05
        elif kind in ("kappa", "kappa_prime"):
            p.value += rng.normal(scale=0.01)
        elif kind == "Pv" or kind.startswith("P") and kind[1:2].isdigit():
            p.value += rng.normal(scale=0.02)
    apply_values(params, crystal, models)
    return crystal, models, Reflections(hkl, f2, sigma)


def solver_for(crystal, models, refl):
    """XrayRefinement's solver set-up, as bench_cycle.py builds it."""
    ref = XrayRefinement(crystal, models, refl)
    red = ref.all_constraints().reduce(ref.params)
    data = ref.datasets[0]
    sv = _Solver(
        [Dataset(data.name, ref._evaluator(data))],
        red.p0,
        red.T,
        red.reduced_names,
        ref.scheme,
        ref.options,
    )
    return ref, red, sv


def peak_child(copies: int, smax: float) -> dict:
    """Run one cycle in a fresh process (this script with --child); its peak RSS and J's size."""
    cmd = [sys.executable, __file__, "--child", "--copies", str(copies), "--smax", str(smax)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ)
    return json.loads(out.stdout.strip().splitlines()[-1])


def peak_rss_kib() -> int:
    """Peak resident memory of this process, KiB: VmHWM (Linux), else ru_maxrss.

    ru_maxrss is not used on Linux because a child started from a big process
    keeps its parent's value across exec.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(copies: int, smax: float) -> None:
    """Build the problem, run one cycle, print the peak RSS (KiB) before and after, as JSON."""
    crystal, models, refl = scaled_problem(copies, smax)
    _, red, sv = solver_for(crystal, models, refl)
    before = peak_rss_kib()
    one_cycle(sv, np.zeros(sv.k))
    peak = peak_rss_kib()
    print(json.dumps({"before": before, "peak": peak, "rows": len(refl), "cols": red.T.shape[0]}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smax", type=float, default=0.8, help="sin(theta)/lambda limit, 1/A")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--copies", type=int, default=4, choices=(1, 2, 4))
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory child")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.copies, args.smax)
        return
    t0 = time.perf_counter()
    crystal, models, refl = scaled_problem(args.copies, args.smax)
    ref, red, sv = solver_for(crystal, models, refl)
    n_refl, n_full, n_free = len(refl), red.T.shape[0], red.T.shape[1]
    print(
        f"problem: {len(crystal.atoms)} atoms ({args.copies} x the reference asymmetric unit), "
        f"P 1 21/n 1, {n_refl} reflections to sin(theta)/lambda = {args.smax}"
    )
    print(f"parameters: {n_full} ({ref.n_struct} engine + scale), {n_free} free")
    print(f"set-up {time.perf_counter() - t0:.1f} s")
    print(machine())
    print(f"load average at start: {load_average()}")
    z = np.zeros(sv.k)
    one_cycle(sv, z)
    engine = ref.datasets[0]._engine()[0]
    t_engine = median_time(lambda: engine.compute(jacobian=True, real=True), args.runs)
    t_cycle, t_floor, ratio = against_floor(lambda: one_cycle(sv, z), n_refl, n_free, args.runs)
    med = sorted(t_cycle)[len(t_cycle) // 2]
    fmed = sorted(t_floor)[len(t_floor) // 2]
    print(f"engine F + real Jacobian ({ref.n_struct} columns)      {t_engine:8.3f} s")
    print(f"one cycle (median of {len(t_cycle)}, interleaved)            {med:8.3f} s")
    print(f"floor: numpy J.T @ J, J {n_refl} x {n_free}        {fmed:8.3f} s")
    print(f"ratio cycle / floor (median of per-run ratios) = {ratio:.2f}   (target <= 2)")
    print(f"load average at the end: {load_average()}")
    if not args.no_memory:
        mem = peak_child(args.copies, args.smax)
        jac = mem["rows"] * mem["cols"] * 8 / 2**20
        peak = mem["peak"] / 1024
        print(
            f"peak RSS of a fresh process through one cycle: {peak:.0f} MiB "
            f"(before the cycle {mem['before'] / 1024:.0f} MiB); Jacobian "
            f"{mem['rows']} x {mem['cols']} float64 = {jac:.0f} MiB; "
            f"peak / Jacobian = {peak / jac:.2f} (target < 3)"
        )
    print(f"this process: peak RSS {peak_rss_kib() / 1024:.0f} MiB")


if __name__ == "__main__":
    main()

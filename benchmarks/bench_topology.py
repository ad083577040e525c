"""Benchmark of the topology of the static density on the seed-sized structure.

The structure is the bundled seed example (a Cu(II) dimer, chasm.examples.seed:
``seed_crystal()`` with ``truth_models()``: Hansen–Coppens l <= 4 on non-H,
l <= 1 on H, Cu and its neighbours spin-split). Timed, each once:

    field      DensityField set-up (radial tables, rotated populations)
    charge     critical points of the charge density (pair + Delaunay seeds,
               + a |∇ρ| grid with --grid-step, Newton–Raphson, symmetry
               merge, Morse count)
    paths      bond paths and properties of every (3,−1) point
    spin       critical points of the spin density
    basins     near-grid QTAIM basins (--basin-step, 0 to skip)
    esp        potential set-up, field gradients at the nuclei and the potential
               on the 0.001 au isodensity surface (--esp-step, 0 to skip)

Each phase is reported as wall time and as CPU time of the process (all its
threads; the compiled kernels run on every core, CHASM_ENGINE_THREADS sets
how many), with the load average before and after: on a shared machine the
wall time depends on the other jobs, the CPU time much less.

Usage: python benchmarks/bench_topology.py [--grid-step 0.3] [--random-seeds 3000]
       [--basin-step 0.15] [--esp-step 0.3]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

from chasm.examples.seed import seed_crystal, truth_models
from chasm.topology.bcp import bond_critical_points
from chasm.topology.critical_points import find_critical_points
from chasm.topology.density_derivatives import DensityField


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid-step", type=float, default=0.0)
    ap.add_argument("--random-seeds", type=int, default=0)
    ap.add_argument("--basin-step", type=float, default=0.15)
    ap.add_argument("--esp-step", type=float, default=0.3)
    args = ap.parse_args()
    crystal = seed_crystal()
    models = truth_models(crystal)
    print(
        f"seed example: {len(crystal.atoms)} atoms in the asymmetric unit, "
        f"{crystal.n_ops} operations, V = {crystal.volume:.1f} A^3; "
        f"python {platform.python_version()}, {os.cpu_count()} cores"
    )
    print("load average (1, 5, 15 min) before: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    t: dict[str, tuple[float, float]] = {}
    clock = [time.perf_counter(), time.process_time()]

    def lap(name: str) -> None:
        now = [time.perf_counter(), time.process_time()]
        t[name] = (now[0] - clock[0], now[1] - clock[1])
        clock[:] = now

    charge = DensityField(crystal, models, "charge")
    spin = DensityField(crystal, models, "spin")
    lap("field")
    search = find_critical_points(charge, grid_step=args.grid_step, random_seeds=args.random_seeds)
    lap("charge")
    bcps = bond_critical_points(charge, search.points, spin=spin)
    lap("paths")
    spin_search = find_critical_points(spin, grid_step=args.grid_step, rho_min=1e-4)
    lap("spin")
    if args.basin_step > 0:
        from chasm.topology.basins import grid_basins

        lap("-")
        basins = grid_basins(crystal, models, args.basin_step)
        lap("basins")
        q = ", ".join(
            f"{a} {c:+.3f}" for a, c in zip(basins.labels[:3], basins.charge[:3], strict=True)
        )
        print(f"basins: {q}, ...; cell integral {basins.cell_integral:.4f} e")
    if args.esp_step > 0:
        from chasm.topology.electrostatics import PotentialField, nuclear_field_gradients
        from chasm.topology.isosurface import esp_on_isodensity

        lap("-")
        pot = PotentialField(crystal, models)
        nuclear_field_gradients(crystal, models, field=pot)
        surf = esp_on_isodensity(crystal, models, args.esp_step, field=pot)
        lap("esp")
        print(f"esp: {surf.stats()}")
    t.pop("-", None)
    c = search.counts
    print(
        f"charge: n={c['n']} b={c['b']} r={c['r']} c={c['c']} per cell, "
        f"n-b+r-c = {search.morse}; {search.seeds} seeds, {search.rejected} rejected; "
        f"{len(bcps)} distinct BCPs"
    )
    s = spin_search.counts
    print(f"spin: b={s['b']} r={s['r']} c={s['c']} (+maxima {s['n']}), {spin_search.seeds} seeds")
    print("  phase      wall     CPU")
    for k, (wall, cpu) in t.items():
        print(f"  {k:7s} {wall:7.1f} {cpu:7.1f} s")
    wall = sum(v[0] for v in t.values())
    cpu = sum(v[1] for v in t.values())
    print(f"  total   {wall:7.1f} {cpu:7.1f} s (target for CPs + basins + ESP: 60 s wall)")
    print("load average (1, 5, 15 min) after: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()

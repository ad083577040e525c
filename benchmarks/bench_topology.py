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
    t = {}
    t0 = time.perf_counter()
    charge = DensityField(crystal, models, "charge")
    spin = DensityField(crystal, models, "spin")
    t["field"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    search = find_critical_points(charge, grid_step=args.grid_step, random_seeds=args.random_seeds)
    t["charge"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    bcps = bond_critical_points(charge, search.points, spin=spin)
    t["paths"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    spin_search = find_critical_points(spin, grid_step=args.grid_step, rho_min=1e-4)
    t["spin"] = time.perf_counter() - t0
    if args.basin_step > 0:
        from chasm.topology.basins import grid_basins

        t0 = time.perf_counter()
        grid_basins(crystal, models, args.basin_step)
        t["basins"] = time.perf_counter() - t0
    if args.esp_step > 0:
        from chasm.topology.electrostatics import PotentialField, nuclear_field_gradients
        from chasm.topology.isosurface import esp_on_isodensity

        t0 = time.perf_counter()
        pot = PotentialField(crystal, models)
        nuclear_field_gradients(crystal, models, field=pot)
        surf = esp_on_isodensity(crystal, models, args.esp_step, field=pot)
        t["esp"] = time.perf_counter() - t0
        print(f"esp: {surf.stats()}")
    c = search.counts
    print(
        f"charge: n={c['n']} b={c['b']} r={c['r']} c={c['c']} per cell, "
        f"n-b+r-c = {search.morse}; {search.seeds} seeds, {search.rejected} rejected; "
        f"{len(bcps)} distinct BCPs"
    )
    s = spin_search.counts
    print(f"spin: b={s['b']} r={s['r']} c={s['c']} (+maxima {s['n']}), {spin_search.seeds} seeds")
    for k, v in t.items():
        print(f"  {k:7s} {v:7.1f} s")
    print(f"  total   {sum(t.values()):7.1f} s (target for CPs + basins + ESP: 60 s)")


if __name__ == "__main__":
    main()

"""Benchmark of real-space density maps (issue 6).

Static deformation density (model minus neutral spherical free atoms, every
symmetry copy that reaches the points) of the seed-sized structure: the
simulated azido-bridged Cu(II) dimer of :mod:`chasm.examples.seed` (P 21/n,
33 atoms in the asymmetric unit, 132 in the cell), truth model (Hansen–Coppens
charge density, l ≤ 4 on the non-H atoms).

Timed, each the median of --runs runs:

* a 200 × 200 plane through Cu1, O1 and N1 (6 × 6 Å, step 0.03 Å), the map
  `chasm demo` draws; target 1 s;
* a 100 × 100 × 100 grid over the unit cell; target 30 s;
* the spin density on the same plane (split atoms, valence only).

Usage: python benchmarks/bench_maps.py [--runs 3] [--grid 100]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from chasm.density.model import SplitAtom
from chasm.examples.seed import seed_crystal, truth_models
from chasm.maps.density import deformation_density, spin_density
from chasm.maps.grids import CellGrid, Plane


def _median_time(fn, runs: int) -> tuple[float, float, float, object]:
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), min(times), max(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--grid", type=int, default=100, help="grid points per cell edge")
    args = ap.parse_args()

    cr = seed_crystal()
    models = truth_models(cr)
    charge = [m.charge_model() if isinstance(m, SplitAtom) else m for m in models]
    up = [m.up if isinstance(m, SplitAtom) else None for m in models]
    dn = [m.dn if isinstance(m, SplitAtom) else None for m in models]
    n_split = sum(u is not None for u in up)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"load {os.getloadavg()[0]:.2f}"
    )
    print(
        f"structure: seed Cu(II) dimer, {len(cr.atoms)} atoms in the asymmetric unit, "
        f"{len(cr.rotations)} operations, {n_split} split atoms"
    )
    plane = Plane.through_atoms(cr, ["Cu1", "O1", "N1"], size=(6.0, 6.0), step=6.0 / 199, centre=0)
    pts = plane.points
    # first call builds the radial tables (cached afterwards); time it apart
    t0 = time.perf_counter()
    deformation_density(cr, charge, pts[:10])
    print(f"first call (radial tables), 10 points          {time.perf_counter() - t0:7.3f} s")
    med, lo, hi, rho = _median_time(lambda: deformation_density(cr, charge, pts), args.runs)
    print(
        f"deformation density, plane {plane.shape[0]} x {plane.shape[1]}        "
        f"{med:7.3f} s  (range {lo:.3f}-{hi:.3f}; target 1 s: {'met' if med <= 1 else 'NOT met'})"
    )
    print(f"   min/max {rho.min():.3f} / {rho.max():.3f} e/Å³")
    med_s = _median_time(lambda: spin_density(cr, up, dn, pts), args.runs)[0]
    print(f"spin density, same plane                       {med_s:7.3f} s")
    n = args.grid
    grid = CellGrid.cell(cr, shape=(n, n, n))
    med, lo, hi, vol = _median_time(
        lambda: grid.map(lambda p: deformation_density(cr, charge, p)), max(1, args.runs - 1)
    )
    print(
        f"deformation density, cell grid {n}^3 ({n**3} points)  {med:7.3f} s  "
        f"(range {lo:.3f}-{hi:.3f}; target 30 s: {'met' if med <= 30 else 'NOT met'})"
    )
    print(f"   integral over the cell {grid.integrate(vol):.2e} e (neutral model: 0)")


if __name__ == "__main__":
    main()

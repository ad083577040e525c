"""Benchmark of the maps (issues 6 and 21) against an in-run yardstick.

Structure: the simulated azido-bridged Cu(II) dimer of :mod:`chasm.examples.seed`
(P 21/n, 33 atoms in the asymmetric unit, 132 in the cell).

Timed, each the median of --runs runs, interleaved run by run with the
yardstick (numpy's 1000 x 1000 x 1000 float64 matrix product, same BLAS
threads), and printed as wall time, CPU time of this process and wall/yardstick:

* the residual map of ``chasm demo --full``: X-ray data to sinθ/λ = 1.0 as the
  full demo simulates them, the refinement built at the starting model (the
  cost does not depend on the parameter values), then
  ``report.xray_residual_map`` (two engine calls + the FFT synthesis) and
  ``fourier_on_plane`` on the report's first plane (``default_planes``);
  target < 1 s for both;
* the deformation density of the truth model on a 200 x 200 plane through
  Cu1, O1 and N1, the spin density on it, and on a 100 x 100 x 100 cell grid
  (``CellGrid.map(..., symmetric=True)``: one point per orbit); target < 5 s;
* the neighbour lists of all 33 atoms within 6 Å (as the local frames ask).

With --before the replaced paths are timed in the same run: the plane by
the point-by-point complex sum over the full sphere (what ``fourier_on_plane``
did before issue 21, ~30-45 s here) and the 100³ grid with every point
evaluated.

Usage: python benchmarks/bench_maps.py [--runs 3] [--grid 100] [--before]
"""

from __future__ import annotations

# isort: off
import chasm.blas as _first  # noqa: F401 - import chasm first: it sets OpenBLAS's thread timeout

# isort: on
import argparse
import os
import platform
import time

import numpy as np

from chasm.crystal.neighbours import neighbours
from chasm.density.model import SplitAtom
from chasm.examples import seed
from chasm.maps.default_planes import default_planes
from chasm.maps.density import deformation_density, spin_density
from chasm.maps.grids import CellGrid, Plane, fourier_on_plane
from chasm.report.report import xray_residual_map

_YARD = np.random.default_rng(0).normal(size=(1000, 1000))


def yardstick() -> None:
    """numpy's 1000^3 float64 matrix product (about 2 GFlop)."""
    _YARD @ _YARD


def timed(fn, runs: int):
    """Medians of (wall, cpu, yardstick wall) over ``runs``, interleaved, and the last result."""
    yardstick()
    walls, cpus, yards, out = [], [], [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        yardstick()
        yards.append(time.perf_counter() - t0)
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return float(np.median(walls)), float(np.median(cpus)), float(np.median(yards)), out


def report(label: str, result, target: float | None = None) -> object:
    wall, cpu, yard, out = result
    met = (
        "" if target is None else f"  target {target:g} s: {'met' if wall <= target else 'NOT met'}"
    )
    print(
        f"{label:<52s} wall {wall:8.3f} s  cpu {cpu:8.3f} s  "
        f"= {wall / yard:7.2f} x yardstick ({yard:.3f} s){met}"
    )
    return out


def old_plane_sum(fmap, plane) -> np.ndarray:
    """The replaced path: one complex exponential per point and reflection, full sphere."""
    x = fmap.crystal.cart_to_frac(plane.points).reshape(-1, 3)
    h = fmap.hkl.astype(float)
    out = np.empty(len(x))
    step = max(1, 4_000_000 // len(h))
    for i0 in range(0, len(x), step):
        out[i0 : i0 + step] = (np.exp(-2j * np.pi * (x[i0 : i0 + step] @ h.T)) @ fmap.coeffs).real
    return out.reshape(plane.shape) / fmap.crystal.volume


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--grid", type=int, default=100, help="grid points per cell edge")
    ap.add_argument("--before", action="store_true", help="also time the replaced paths")
    args = ap.parse_args()
    runs = args.runs

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}, "
        f"load {os.getloadavg()[0]:.2f}"
    )

    # ---------------------------------------------------------------- residual map, full demo
    truth_crystal = seed.seed_crystal()
    data = seed.simulate(
        truth_crystal, seed.truth_models(truth_crystal), xray_smax=1.0, und_count=2000, seed=0
    )
    crystal = seed.seed_crystal()
    ref = seed.build_refinement(crystal, seed.start_models(crystal), data)
    first = default_planes(crystal)[0]  # the report's first plane (no [[maps]] in the project)
    plane, what = first.plane, first.name
    print(
        f"full demo: {len(data.xray)} X-ray reflections; report plane {what}, "
        f"{plane.shape[0]} x {plane.shape[1]} points"
    )
    fmap, _ = report(
        "residual map: xray_residual_map (engine + FFT)",
        timed(lambda: xray_residual_map(ref), runs),
    )
    print(
        f"   grid {fmap.grid}, {len(fmap.hkl)} P1 reflections, "
        f"{len(fmap._half()[0])} on the half sphere"
    )
    both = timed(lambda: fourier_on_plane(xray_residual_map(ref)[0], plane), runs)
    report("residual map + report plane (what the report draws)", both, target=1.0)
    plane_vals = report(
        "   of which the plane (separable phases)",
        timed(lambda: fourier_on_plane(fmap, plane), runs),
    )
    if args.before:
        old = report(
            "   plane, point-by-point complex sum (before)",
            timed(lambda: old_plane_sum(fmap, plane), 1),
        )
        err = np.max(np.abs(old - plane_vals))
        print(f"   largest difference {err:.1e} e/Å³ (max |Δρ| {np.max(np.abs(old)):.3f})")

    # ---------------------------------------------------------------- real-space densities
    cr = seed.seed_crystal()
    models = seed.truth_models(cr)
    charge = [m.charge_model() if isinstance(m, SplitAtom) else m for m in models]
    up = [m.up if isinstance(m, SplitAtom) else None for m in models]
    dn = [m.dn if isinstance(m, SplitAtom) else None for m in models]
    dplane = Plane.through_atoms(cr, ["Cu1", "O1", "N1"], size=(6.0, 6.0), step=6.0 / 199, centre=0)
    pts = dplane.points
    t0 = time.perf_counter()
    deformation_density(cr, charge, pts[:10])
    print(f"first call (radial tables), 10 points: {time.perf_counter() - t0:.3f} s")
    rho = report(
        f"deformation density, plane {dplane.shape[0]} x {dplane.shape[1]}",
        timed(lambda: deformation_density(cr, charge, pts), runs),
        target=1.0,
    )
    print(f"   min/max {rho.min():.3f} / {rho.max():.3f} e/Å³")
    report("spin density, same plane", timed(lambda: spin_density(cr, up, dn, pts), runs))
    n = args.grid
    grid = CellGrid.cell(cr, shape=(n, n, n))
    orbit = grid.orbits()
    n_rep = (
        grid.n_points if orbit is None else int(np.count_nonzero(orbit == np.arange(orbit.size)))
    )
    vol = report(
        f"deformation density, cell grid {n}^3 (symmetric: {n_rep} points)",
        timed(
            lambda: grid.map(lambda p: deformation_density(cr, charge, p), symmetric=True),
            max(1, runs - 1),
        ),
        target=5.0,
    )
    print(f"   integral over the cell {grid.integrate(vol):.2e} e (neutral model: 0)")
    if args.before:
        full = report(
            f"   every point evaluated ({grid.n_points} points)",
            timed(lambda: grid.map(lambda p: deformation_density(cr, charge, p)), 1),
        )
        print(f"   largest difference {np.max(np.abs(full - vol)):.1e} e/Å³")

    # ---------------------------------------------------------------- neighbours
    found = report(
        "neighbours of all 33 atoms within 6 Å",
        timed(lambda: sum(len(neighbours(cr, i, 6.0)) for i in range(len(cr.atoms))), runs),
    )
    print(f"   {found} neighbours")


if __name__ == "__main__":
    main()

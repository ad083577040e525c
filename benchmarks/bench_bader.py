"""chasm's on-grid basins beside pybader (on-grid and near-grid) on chasm's own cubes.

Run: PYTHONPATH=src python benchmarks/bench_bader.py [steps...]   (needs pybader)

For each grid step: chasm.topology.basins.grid_basins charges, and pybader run
on basins_integrand.cube with basins_reference.cube as the reference density,
plus the exactly integrated core and nuclear valence; the model is the urea
example (chasm.examples.urea_model). Prints one Markdown row per step and method.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import time

import numpy as np

from chasm.examples.urea_model import build_models, example_structure
from chasm.topology.basins import basin_cubes, grid_basins


def pybader_charges(cubes, crystal, method: str) -> dict[str, float]:
    """Per-label basin charge (e) from pybader on chasm's cubes, copies averaged."""
    from pybader.interface import Bader

    with contextlib.redirect_stdout(io.StringIO()):  # pybader reports progress on stdout
        b = Bader.from_file(str(cubes["integrand"]), method=method)
        b.reference = Bader.from_file(str(cubes["reference"])).charge.copy()
        b()
    z = {a.label: _z(a.element) * a.occupancy for a in crystal.atoms}
    out = {}
    for lab in z:
        grid_part = np.mean(
            [q for q, a in zip(b.atoms_charge, cubes["atoms"], strict=True) if a == lab]
        )
        out[lab] = z[lab] - (grid_part + cubes["exact"][lab])
    return out


def _z(element: str) -> int:
    import gemmi

    return gemmi.Element(element).atomic_number


def main(steps) -> None:
    cr = example_structure()
    models = build_models(cr)[0]
    labels = [a.label for a in cr.atoms]
    print("| step (Å) | method | " + " | ".join(labels) + " | Σ q·mult | time |")
    print("|---|---|" + "---|" * len(labels) + "---|---|")
    mult = np.array([cr.multiplicity(i) for i in range(len(labels))])
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        for h in steps:
            rows = []
            for method in ("neargrid", "ongrid"):
                t0 = time.perf_counter()
                b = grid_basins(cr, models, h, method=method)
                q = dict(zip(labels, b.charge, strict=True))
                rows.append((f"chasm {method}", q, time.perf_counter() - t0))
            cubes = basin_cubes(tmp, cr, models, h)
            for method in ("ongrid", "neargrid"):
                t0 = time.perf_counter()
                q = pybader_charges(cubes, cr, method)
                rows.append((f"pybader {method}", q, time.perf_counter() - t0))
            for name, q, sec in rows:
                qs = np.array([q[lab] for lab in labels])
                print(
                    f"| {h} | {name} | "
                    + " | ".join(f"{v:+.3f}" for v in qs)
                    + f" | {qs @ mult:+.4f} | {sec:.1f} s |",
                    flush=True,
                )


if __name__ == "__main__":
    main([float(s) for s in sys.argv[1:]] or [0.2, 0.15, 0.1, 0.07])

"""Basin charges beside an independent grid-based Bader code (pybader) on chasm's own cubes.

pybader is a test-only dependency (the ``test`` extra); these tests skip without it.
Its first import compiles its numba functions (minutes), so they are marked slow.
"""

from __future__ import annotations

import numpy as np
import pytest

from chasm.examples.urea_model import build_models, example_structure
from chasm.topology.basins import basin_cubes, grid_basins

pytest.importorskip("pybader")


def _pybader_charges(cubes, crystal):
    import contextlib
    import io

    import gemmi
    from pybader.interface import Bader

    with contextlib.redirect_stdout(io.StringIO()):
        b = Bader.from_file(str(cubes["integrand"]), method="neargrid")
        b.reference = Bader.from_file(str(cubes["reference"])).charge.copy()
        b()
    out = {}
    for a in crystal.atoms:
        part = np.mean(
            [q for q, lab in zip(b.atoms_charge, cubes["atoms"], strict=True) if lab == a.label]
        )
        z = gemmi.Element(a.element).atomic_number * a.occupancy
        out[a.label] = z - (part + cubes["exact"][a.label])
    return out, float(b.atoms_charge.sum())


@pytest.mark.slow
def test_basin_charges_match_pybader(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # pybader writes its bader.p into the working folder
    cr = example_structure()
    models = build_models(cr)[0]
    step = 0.07
    mine = grid_basins(cr, models, step)
    cubes = basin_cubes(tmp_path, cr, models, step)
    theirs, grid_total = _pybader_charges(cubes, cr)
    mult = np.array([cr.multiplicity(i) for i in range(len(cr.atoms))])
    model_charge = float(mine.monopole_charge @ mult)
    print("chasm  ", dict(zip(mine.labels, np.round(mine.charge, 3), strict=True)))
    print("pybader", {k: round(v, 3) for k, v in theirs.items()})
    # sum rule: the basins share out the cell (model charge, to the grid's quadrature error)
    assert float(mine.charge @ mult) == pytest.approx(model_charge, abs=2e-3)
    assert sum(theirs[a.label] * m for a, m in zip(cr.atoms, mult, strict=True)) == pytest.approx(
        float(mine.charge @ mult), abs=1e-3
    )
    for i, lab in enumerate(mine.labels):  # measured: within 0.001 e at 0.07 Å
        assert mine.charge[i] == pytest.approx(theirs[lab], abs=0.02), lab

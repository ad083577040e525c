"""chasm's refinement of the spherical YTiO3 model reaches cryspy's χ² minimum (issue 4).

Ti susceptibility χ (μB/T) is the only free parameter; model and settings of
``pnd/ytio3/ytio3.rcif`` (validation/ytio3_chi_scan.py has the full table).
The independent reference is cryspy's χ² (``rhochi_calc_chi_sq_by_dictionary``)
scanned on χ = 0.10, 0.15, ..., 1.60; the parabola through its lowest point and
the two neighbours gives χ_scan. From every start 0.2, 0.3, ..., 1.5 chasm must
converge, without NaN, to |χ − χ_scan| < su(χ) and χ² equal to cryspy's χ² at
χ_scan within 1e-4 relative. cryspy's χ² must also be larger on both sides of
chasm's χ (a minimum of cryspy's function, not only of chasm's).

Both programs use the file with its 15 systematically absent reflections
excluded: cryspy's R there is 0/0 and its χ² NaN at some χ (e.g. 0.30). A last
test refines the file as it is with chasm (R = 1 at the absences) and checks
that only the constant Σ w (R_o − 1)² of those reflections changes.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cryspy")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "validation"))

import ytio3_chi_scan as scan  # noqa: E402

from chasm.neutron import read_rcif  # noqa: E402


@pytest.fixture(scope="module")
def problem(shared_data):
    path = shared_data / "pnd" / "ytio3" / "ytio3.rcif"
    pnd = read_rcif(path)
    cry = scan.CryspyChi2(path, exclude_absent=True)
    assert cry.n_absent == 15
    values = np.array([cry(float(chi)) for chi in scan.GRID])
    assert np.all(np.isfinite(values))
    chi_scan = scan.parabolic_minimum(scan.GRID, values)
    assert abs(chi_scan - scan.GRID[np.argmin(values)]) < 0.025  # inside the bracket
    return pnd, scan.exclude_absent(pnd), cry, chi_scan, cry(chi_scan)


@pytest.mark.parametrize("start", [float(s) for s in scan.STARTS])
def test_refinement_reaches_the_scan_minimum(problem, start):
    pnd, datasets, cry, chi_scan, chi2_scan = problem
    out = scan.chasm_refinement(pnd, datasets, start)
    assert out["n"] == 251
    assert out["converged"], out["message"]
    assert all(math.isfinite(out[k]) for k in ("chi", "su", "chi2"))
    assert 0 < out["su"] < 0.05
    assert abs(out["chi"] - chi_scan) < out["su"]
    assert out["chi2"] == pytest.approx(chi2_scan, rel=1e-4)
    # chasm's χ² is cryspy's function at chasm's χ
    assert out["chi2"] == pytest.approx(cry(out["chi"]), rel=1e-7)


def test_cryspy_chi2_rises_on_both_sides(problem):
    pnd, datasets, cry, _, _ = problem
    out = scan.chasm_refinement(pnd, datasets, 0.7362)
    at = cry(out["chi"])
    # 1e-3 μB/T is about 2 unscaled su (su / GOF): χ² rises by a few units of 1e5
    for step in (-1e-3, 1e-3):
        assert cry(out["chi"] + step) > at + 1.0


def test_absent_reflections_only_add_a_constant(problem):
    pnd, datasets, _, _, _ = problem
    trimmed = scan.chasm_refinement(pnd, datasets, 0.7362)
    full = scan.chasm_refinement(pnd, pnd.datasets, 0.7362)
    assert full["n"] == 266 and full["converged"]
    constant = 0.0
    group = pnd.crystal().spacegroup
    for raw in pnd.datasets:
        a = scan.absent_mask(raw.hkl, group)
        constant += float(np.sum(((raw.fr[a] - 1.0) / raw.fr_sigma[a]) ** 2))
    assert constant > 10.0
    assert full["chi2"] == pytest.approx(trimmed["chi2"] + constant, rel=1e-9)
    assert abs(full["chi"] - trimmed["chi"]) < 1e-3 * trimmed["su"]

"""The solver's "converged" is a property of the point (issue 14, item 1).

A damped Levenberg–Marquardt step can be far below the tolerance at a point
far from the minimum; the solver must then neither stop nor say "converged".
The reference minimum of each problem is found independently by a dense grid
scan of χ² (no derivatives, no solver).
"""

from __future__ import annotations

import numpy as np
import pytest

from chasm.refine.solver import Dataset, Evaluation, SolverOptions, solve


def _extinction_problem(seed: int = 3):
    """A susceptibility-like scale χ and an extinction-like parameter x: strongly curved.

    y_i = χ F_i / sqrt(1 + x χ F_i), 40 observations with 1 % noise: χ and x are
    correlated (|ρ| ≈ 0.95) and the model is far from linear in x.
    """
    rng = np.random.default_rng(seed)
    f = np.linspace(0.5, 20.0, 40)
    true = np.array([2.25, 0.35])

    def model(p):
        chi, x = p
        q = np.maximum(1.0 + x * chi * f, 1e-300)  # trial points with q <= 0: a huge misfit
        y = chi * f / np.sqrt(q)
        dchi = f / np.sqrt(q) - 0.5 * chi * f * x * f / q**1.5
        dx = -0.5 * chi * f * chi * f / q**1.5
        return y, np.column_stack([dchi, dx])

    y0, _ = model(true)
    sig = 0.01 * y0
    y = y0 + sig * rng.standard_normal(f.size)

    def evaluate(p):
        yc, jac = model(p)
        return Evaluation(y, yc, 1.0 / sig**2, jac)

    def chi2(chi, x):
        q = 1.0 + x * chi * f[:, None, None]
        yc = chi * f[:, None, None] / np.sqrt(q)
        return np.sum(((y[:, None, None] - yc) / sig[:, None, None]) ** 2, axis=0)

    return Dataset("pnd", evaluate), chi2


def _grid_minimum(chi2, centre, su, half=4.0, n=321):
    """Grid scan of χ² over ±half su around centre: (minimum χ², its point, grid steps)."""
    a = centre[0] + np.linspace(-half, half, n) * su[0]
    b = centre[1] + np.linspace(-half, half, n) * su[1]
    c2 = chi2(a[:, None], b[None, :])
    i, j = np.unravel_index(np.argmin(c2), c2.shape)
    return float(c2[i, j]), np.array([a[i], b[j]]), np.array([a[1] - a[0], b[1] - b[0]])


def test_heavy_damping_never_reads_as_convergence():
    """λ so large that the first step is ≪ tol su: the old test said "converged" at cycle 1."""
    ds, chi2 = _extinction_problem()
    start = np.array([1.5, 0.05])
    opts = SolverOptions(lambda_start=1e5, lambda_first=1e5, max_cycles=200)
    res = solve([ds], start, options=opts)
    first = res.history[0]
    assert first.accepted and first.max_shift_su < opts.tol  # the damped step is tiny ...
    assert first.gn_shift > 1.0  # ... while the point is many su from the minimum
    assert res.converged, res.message
    assert res.final_shift < opts.tol and res.final_gradient < opts.tol
    best, at, step = _grid_minimum(chi2, res.p, res.su_p)
    c2 = chi2(np.array(res.p[0]), np.array(res.p[1])).item()
    assert c2 <= best * (1 + 1e-9)  # no grid point is better than the solver's
    assert np.all(np.abs(at - res.p) <= step)  # and the grid minimum is the solver's point


def test_out_of_cycles_is_not_converged_and_names_what_moves():
    ds, _ = _extinction_problem()
    opts = SolverOptions(lambda_start=1e5, lambda_first=1e5, max_cycles=3)
    res = solve([ds], np.array([1.5, 0.05]), names=["chi33", "ext.radius"], options=opts)
    assert not res.converged
    assert "not converged after 3 cycles" in res.message and "still moving" in res.message
    assert res.moving and res.moving[0][1] >= opts.tol
    assert res.moving[0][0] in res.message


def test_shift_limiter_never_reads_as_convergence():
    ds, chi2 = _extinction_problem()
    opts = SolverOptions(max_shift_abs=np.array([1e-4, 1e-4]), max_cycles=40)
    res = solve([ds], np.array([1.5, 0.05]), options=opts)
    assert all(h.limited for h in res.history)
    assert not res.converged


@pytest.mark.parametrize("start", [(1.5, 0.05), (3.0, 0.9), (2.2, 0.0)])
def test_reaches_the_grid_scan_minimum(start):
    ds, chi2 = _extinction_problem()
    res = solve([ds], np.array(start), options=SolverOptions(max_cycles=100))
    assert res.converged, res.message
    best, at, step = _grid_minimum(chi2, res.p, res.su_p)
    c2 = chi2(np.array(res.p[0]), np.array(res.p[1])).item()
    assert c2 <= best * (1 + 1e-9)
    assert np.all(np.abs(at - res.p) <= step)
    assert res.final_shift < 0.01 and res.final_gradient < 0.01


def test_first_cycle_continues_the_count():
    """A resumed stage keeps its cycle count: the budget is max_cycles in all."""
    ds, _ = _extinction_problem()
    opts = SolverOptions(lambda_start=1e5, lambda_first=1e5, max_cycles=5)
    res = solve([ds], np.array([1.5, 0.05]), options=opts, first_cycle=4)
    assert [h.cycle for h in res.history] == [4, 5]
    assert not res.converged and "not converged after 5 cycles" in res.message

"""Weighted Jacobian rows (WeightedEvaluation): the normal matrix without a copy of J.

Checked against independent dense products (numpy), the plain route of the
same data set, and finite differences (through tests/test_xray_data.py, which
reads the unweighted ``jacobian`` of the same evaluations).
"""

from __future__ import annotations

import numpy as np
import pytest

from chasm.refine import syrk
from chasm.refine.problem import Dataset, Evaluation, SolverOptions, WeightedEvaluation
from chasm.refine.refinement import Refinement
from chasm.refine.solver import _ROWS, RefinementError, _Solver, solve
from chasm.refine.xray_data import XrayData, XrayOptions
from test_xray_data import _problem


@pytest.mark.parametrize("copy", [False, True], ids=["strided", "copied (no C entry point)"])
def test_syrk_lower_of_a_strided_view_equals_numpy(copy, monkeypatch):
    if copy:
        monkeypatch.setattr(syrk, "_dsyrk", lambda: None)
    rng = np.random.default_rng(5)
    big = rng.normal(size=(301, 17))
    a = big[:, 4:]  # a run of columns: row stride 17, not contiguous
    c = np.asfortranarray(np.tril(rng.normal(size=(13, 13))))
    want = 0.5 * a.T @ a + 2.0 * c
    out = syrk.syrk_lower(a, c, 0.5, 2.0)
    assert out is c
    np.testing.assert_allclose(np.tril(c), np.tril(want), rtol=1e-13, atol=1e-13)
    assert syrk.have_strided_syrk() is not copy


def _weighted(J, w, y_obs, y_calc, columns=None):
    """WeightedEvaluation of J's ``columns`` (in that order; None: all of them)."""
    sw = np.sqrt(w)
    cols = np.arange(J.shape[1]) if columns is None else np.asarray(columns)
    rows = np.empty((J.shape[0], cols.size + 1))
    rows[:, :-1] = J[:, cols] * sw[:, None]
    rows[:, -1] = sw * (y_obs - y_calc)
    return WeightedEvaluation(y_obs, y_calc, w, rows, columns, J.shape[1])


@pytest.mark.parametrize("constrained", [False, True], ids=["T = 1", "T sparse"])
@pytest.mark.parametrize("pattern", ["run", "fixed first", "shuffled", "far", "all", "none seen"])
def test_weighted_normal_part_equals_the_dense_product(pattern, constrained):
    """One syrk over the trailing run of the rows, or a gather (far), in any column order."""
    rng = np.random.default_rng(2)
    n, p = _ROWS + 300, 40
    T = np.eye(p)
    if constrained:  # parameter 7 fixed, 12 tied to 11: sparse T_U
        T[12] = 2.0 * T[11]
        T = np.delete(T, [7, 12], axis=1)
    used = np.flatnonzero(np.any(T != 0.0, axis=1))
    seen = {
        "run": np.r_[3:40],
        "fixed first": np.r_[np.setdiff1d(np.r_[3:40], used), np.intersect1d(np.r_[3:40], used)],
        "shuffled": rng.permutation(np.r_[0:30]),
        "far": np.arange(p),  # every column, a third of them used: gathered
        "all": None,
        "none seen": np.arange(0),
    }[pattern]
    J = rng.normal(size=(n, p))
    if seen is not None:
        J[:, np.setdiff1d(np.arange(p), seen)] = 0.0
    if pattern == "far":  # two thirds of the columns fixed
        T[np.arange(p) % 3 != 0] = 0.0
    w = rng.uniform(0.5, 2.0, n)
    y_obs, y_calc = rng.normal(size=n), rng.normal(size=n)
    ev = _weighted(J, w, y_obs, y_calc, seen)
    sv = _Solver([Dataset("d", lambda q: ev)], np.zeros(p), T, None, "unit", SolverOptions())
    M, g = sv.normal_part(ev, 0.7)
    Jseen = np.zeros_like(J)
    cols = np.arange(p) if seen is None else seen
    Jseen[:, cols] = J[:, cols]
    JT = Jseen @ T
    np.testing.assert_allclose(M, 0.7 * JT.T @ (w[:, None] * JT), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(g, 0.7 * JT.T @ (w * (y_obs - y_calc)), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(ev.jacobian, Jseen, rtol=1e-15, atol=0)  # unweighted on request


@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted rows"])
def test_non_finite_derivatives_stop_with_the_set_named(weighted):
    """A NaN in J (not in y_calc) is found on M's diagonal: same message as before."""
    rng = np.random.default_rng(4)
    A = rng.normal(size=(30, 3))
    y = A @ np.array([1.0, 2.0, 3.0])

    def evaluate(p):
        J = A.copy()
        J[7, 1] = np.nan
        w = np.ones(30)
        return _weighted(J, w, y, A @ p) if weighted else Evaluation(y, A @ p, w, J)

    with pytest.raises(RefinementError, match="data set 'bad': calculated values or derivatives"):
        solve([Dataset("bad", evaluate)], np.zeros(3))


@pytest.mark.parametrize(
    "opts",
    [
        XrayOptions(),
        XrayOptions(weights="shelx", shelx_a=0.05, shelx_b=2.0),
        XrayOptions(observable="F", weights="shelx", shelx_a=0.05, extinction="shelx"),
        XrayOptions(observable="F", extinction="bc-gauss", extinction_start=50.0),
    ],
    ids=["F2 sigma", "F2 shelx", "F shelx exti", "F sigma bc"],
)
def test_xray_rows_are_the_plain_jacobian_times_sqrt_w(opts):
    """XrayData's weighted rows = √w J of its plain route; zero weights fall back to it."""
    rng = np.random.default_rng(3)
    cr, models, refl = _problem(rng)
    d = XrayData("a", refl, cr, opts)
    ref = Refinement(cr, models, [d])
    p = ref.params.values.copy()
    ref.set_values(p)
    ev = d.evaluate(p)
    assert isinstance(ev, WeightedEvaluation)
    d.multiplicity = np.ones(len(d.reflections))
    d.multiplicity[5] = 0.0  # a bootstrap draw that leaves reflection 5 out
    plain = d.evaluate(p)
    assert not isinstance(plain, WeightedEvaluation)
    keep = np.arange(len(d.reflections)) != 5
    np.testing.assert_array_equal(plain.weights[keep], ev.weights[keep])
    np.testing.assert_array_equal(plain.y_calc, ev.y_calc)
    sw = np.sqrt(ev.weights)
    want = np.column_stack(
        [plain.jacobian[:, ev.columns] * sw[:, None], sw * (ev.y_obs - ev.y_calc)]
    )
    np.testing.assert_allclose(ev.rows[keep], want[keep], rtol=1e-14, atol=1e-300)
    # the listed columns hold every non-zero column
    nonzero = np.flatnonzero(np.any(plain.jacobian != 0.0, axis=0))
    assert set(nonzero) <= set(ev.columns)


def test_xray_rows_put_the_solver_columns_last():
    """Told the solver's columns, XrayData lays them last: M from one syrk, = the plain route's."""
    rng = np.random.default_rng(3)
    cr, models, refl = _problem(rng)
    d = XrayData("a", refl, cr, XrayOptions(weights="shelx", shelx_a=0.05))
    ref = Refinement(cr, models, [d])
    p = ref.params.values.copy()
    n = len(p)
    used = np.flatnonzero(np.arange(n) % 5 != 2)  # every fifth parameter fixed
    sv = _Solver([ref.solver_dataset(d)], p, np.eye(n)[:, used], None, "unit", SolverOptions())
    state = sv.evaluate(np.zeros(used.size))
    ev = state.evals[0]
    assert isinstance(ev, WeightedEvaluation)
    k = np.isin(ev.columns, used).sum()
    assert np.all(np.isin(ev.columns[-k:], used)) and np.all(np.diff(ev.columns[-k:]) > 0)
    M, g = sv.normal_part(ev, 1.0)
    J = ev.jacobian[:, used]
    r = ev.y_obs - ev.y_calc
    np.testing.assert_allclose(M, J.T @ (ev.weights[:, None] * J), rtol=1e-11, atol=1e-6)
    np.testing.assert_allclose(g, J.T @ (ev.weights * r), rtol=1e-11, atol=1e-6)


def test_syrk_lower_with_beta_zero_ignores_what_c_held():
    """beta = 0: c is not read (an uninitialised accumulator), also without rows."""
    rng = np.random.default_rng(8)
    a = rng.normal(size=(50, 6))
    c = np.full((6, 6), np.nan, order="F")
    syrk.syrk_lower(a, c, 1.0, 0.0)
    np.testing.assert_allclose(np.tril(c), np.tril(a.T @ a), rtol=1e-13)
    c = np.full((6, 6), np.nan, order="F")
    syrk.syrk_lower(a[:0], c, 1.0, 0.0)
    assert np.all(c == 0.0)

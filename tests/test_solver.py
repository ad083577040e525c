"""Least-squares solver: exact solutions, constraints, score schemes, singularity, pulls."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import least_squares

from chasm.errors import ChasmError, InputError
from chasm.refine.solver import (
    Dataset,
    Evaluation,
    Restraints,
    SingularMatrixError,
    SolverOptions,
    solve,
)


def linear_dataset(name, A, y, sigma):
    w = 1.0 / sigma**2
    return Dataset(name, lambda p: Evaluation(y, A @ p, w, A))


def decay_model(t, p):
    """y = a exp(−b t) + c and its Jacobian."""
    a, b, c = p[:3]
    e = np.exp(-b * t)
    return a * e + c, np.column_stack([e, -a * t * e, np.ones_like(t)])


def decay_dataset(name, t, y, sigma, columns=(0, 1, 2), n_full=3, user_weight=1.0):
    w = 1.0 / sigma**2
    cols = list(columns)

    def evaluate(p):
        yc, j = decay_model(t, p[cols])
        J = np.zeros((t.size, n_full))
        J[:, cols] = j
        return Evaluation(y, yc, w, J)

    return Dataset(name, evaluate, user_weight=user_weight)


TRUE = np.array([5.0, 0.7, 1.0])


def decay_data(rng, n=40, tmax=6.0, sigma=0.05, true=TRUE):
    t = np.linspace(0.0, tmax, n)
    return t, decay_model(t, true)[0] + rng.normal(scale=sigma, size=n), np.full(n, sigma)


# ----------------------------------------------------------------------------- linear
def test_linear_exact_recovery_and_covariance():
    rng = np.random.default_rng(0)
    x = np.linspace(-1, 1, 30)
    A = np.column_stack([np.ones_like(x), x, x**2, np.sin(3 * x)])
    truth = np.array([1.0, -2.0, 0.5, 0.3])
    sigma = rng.uniform(0.05, 0.2, x.size)
    # noise-free: exact recovery from a distant start
    res = solve([linear_dataset("d", A, A @ truth, sigma)], np.zeros(4), z0=[10, 10, -10, 3])
    assert res.converged and res.cycles <= 3
    np.testing.assert_allclose(res.z, truth, rtol=1e-12, atol=1e-12)
    # noisy: the weighted least-squares solution and SHELXL's covariance
    y = A @ truth + rng.normal(scale=sigma)
    res = solve([linear_dataset("d", A, y, sigma)], np.zeros(4), names=list("abcd"))
    W = np.diag(1 / sigma**2)
    N = A.T @ W @ A
    zhat = np.linalg.solve(N, A.T @ W @ y)
    chi2 = float(np.sum((y - A @ zhat) ** 2 / sigma**2))
    np.testing.assert_allclose(res.z, zhat, rtol=1e-12)
    np.testing.assert_allclose(res.cov_z, np.linalg.inv(N) * chi2 / (30 - 4), rtol=1e-10)
    np.testing.assert_allclose(res.su_p, res.su_z, rtol=1e-14)
    assert res.covariance_factor == pytest.approx(chi2 / 26)
    assert res.datasets[0].chi2 == pytest.approx(chi2)
    assert res.gof == pytest.approx(np.sqrt(chi2 / 26))
    np.testing.assert_allclose(np.diag(res.correlation), 1.0)
    raw = solve(
        [linear_dataset("d", A, y, sigma)], np.zeros(4), options=SolverOptions(covariance="none")
    )
    np.testing.assert_allclose(raw.cov_z, np.linalg.inv(N), rtol=1e-10)


def test_linear_restraints_as_observations():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(20, 3))
    y = A @ [1.0, 2.0, 3.0] + rng.normal(scale=0.1, size=20)
    R = np.array([[1.0, -1.0, 0.0]])  # restrain p0 − p1 = 0 ± 0.01
    res = solve(
        [linear_dataset("d", A, y, np.full(20, 0.1)), Restraints("dist", [0.0], [0.01], matrix=R)],
        np.zeros(3),
        scheme="nlog",
        options=SolverOptions(tol=1e-9),
    )
    # NLOG: the data enter with c = N/χ², the restraints with c = 1
    c = res.datasets[0].factor
    assert res.datasets[1].factor == 1.0 and res.datasets[1].absolute
    Aa = np.vstack([np.sqrt(c) * A / 0.1, R / 0.01])
    ya = np.concatenate([np.sqrt(c) * y / 0.1, [0.0]])
    np.testing.assert_allclose(res.z, np.linalg.lstsq(Aa, ya, rcond=None)[0], rtol=1e-8)
    assert abs(res.p[0] - res.p[1]) < 0.05
    share = [d.information_share for d in res.datasets]
    assert sum(share) == pytest.approx(1.0) and all(s > 0 for s in share)
    with pytest.raises(InputError):
        Restraints("bad", [0.0], [0.0], matrix=R)


# ----------------------------------------------------------------------------- nonlinear
def test_nonlinear_decay_matches_scipy_and_damping_recovers():
    rng = np.random.default_rng(2)
    t, y, sigma = decay_data(rng)
    lines = []
    res = solve(
        [decay_dataset("decay", t, y, sigma)],
        np.zeros(3),
        z0=[1.0, 3.5, 0.0],  # b five times too large: plain Gauss–Newton overshoots
        names=["a", "b", "c"],
        options=SolverOptions(tol=1e-6),
        callback=lambda info: lines.append(info.line()),
        stage="test",
    )
    assert res.converged, res.message
    ref = least_squares(lambda p: (decay_model(t, p)[0] - y) / sigma, [1.0, 3.5, 0.0], xtol=1e-14)
    np.testing.assert_allclose(res.z, ref.x, rtol=1e-7)
    assert any(not h.accepted or h.damping > 0 for h in res.history)  # LM did work
    assert len(lines) == res.cycles and lines[0].startswith("test cycle")
    J = decay_model(t, res.z)[1] / sigma[:, None]
    chi2 = np.sum(((decay_model(t, res.z)[0] - y) / sigma) ** 2)
    np.testing.assert_allclose(res.cov_z, np.linalg.inv(J.T @ J) * chi2 / 37, rtol=1e-6)
    assert all(np.all(np.isfinite(h.p)) for h in res.history)


def test_non_finite_trial_is_rejected_not_propagated():
    t = np.linspace(0.5, 2.0, 10)
    y = np.sqrt(0.01) * t

    def evaluate(p):
        with np.errstate(invalid="ignore", divide="ignore"):
            s = np.sqrt(p[0])
            return Evaluation(y, s * t, np.full(10, 1e4), (0.5 / s * t)[:, None])

    res = solve([Dataset("sqrt", evaluate)], np.array([4.0]), options=SolverOptions(tol=1e-8))
    assert res.converged and res.p[0] == pytest.approx(0.01, rel=1e-8)
    assert any(h.trials > 1 for h in res.history)


def test_no_accepted_step_is_not_convergence():
    """Every trial fails (the model cannot be evaluated off the start): damping shrinks the
    step below tol, but the undamped step is large, so this must not count as converged."""
    t = np.linspace(0.5, 2.0, 10)
    y = 2.0 * t

    def evaluate(p):
        if p[0] != 1.0:
            raise ChasmError("model undefined away from the start")
        return Evaluation(y, p[0] * t, np.ones(10), t[:, None])

    res = solve([Dataset("stuck", evaluate)], np.array([1.0]), options=SolverOptions(tol=0.01))
    assert not res.converged and "damping limit" in res.message


def test_shift_limiter():
    rng = np.random.default_rng(3)
    t, y, sigma = decay_data(rng)
    opts = SolverOptions(max_shift_su=0.5, tol=1e-6, max_cycles=200)
    res = solve([decay_dataset("d", t, y, sigma)], np.array([4.0, 0.6, 1.1]), options=opts)
    free = solve([decay_dataset("d", t, y, sigma)], np.array([4.0, 0.6, 1.1]))
    assert res.converged
    assert all(h.max_shift_su <= 0.5 + 1e-12 for h in res.history)
    assert any(h.limited for h in res.history)
    np.testing.assert_allclose(res.z, free.z, atol=1e-3 * np.max(free.su_z))
    caps = SolverOptions(max_shift_abs=np.array([0.1, 0.01, 0.1]), max_cycles=200)
    capped = solve([decay_dataset("d", t, y, sigma)], np.array([4.0, 0.6, 1.1]), options=caps)
    path = np.array([[4.0, 0.6, 1.1]] + [h.p for h in capped.history])
    steps = np.abs(np.diff(path, axis=0))
    assert np.all(steps <= np.array([0.1, 0.01, 0.1]) + 1e-12)


# ----------------------------------------------------------------------------- constraints
def test_constraints_hold_exactly():
    """p = (a1, a2, b, c, d): a1 = a2 (shared), d fixed; two decays share b and c."""
    rng = np.random.default_rng(4)
    t1, y1, s1 = decay_data(rng)
    t2, y2, s2 = decay_data(rng, true=np.array([5.0, 0.7, 1.0]), sigma=0.08)
    T = np.zeros((5, 3))
    T[0, 0] = T[1, 0] = 1.0  # a1 = a2 = z0
    T[2, 1] = 1.0  # b
    T[3, 2] = 1.0  # c
    p0 = np.array([4.0, 4.0, 0.6, 1.2, 7.5])  # d = 7.5 fixed (row of zeros)
    sets = [
        decay_dataset("one", t1, y1, s1, columns=(0, 2, 3), n_full=5),
        decay_dataset("two", t2, y2, s2, columns=(1, 2, 3), n_full=5),
    ]
    res = solve(sets, p0, T=T, names=["a", "b", "c"], options=SolverOptions(tol=1e-6))
    assert res.converged
    assert abs(res.p[0] - res.p[1]) <= 1e-12
    assert res.p[4] == 7.5 and res.su_p[4] == 0.0
    np.testing.assert_allclose(res.p, p0 + T @ res.z, rtol=0, atol=1e-15)
    for h in res.history:  # every reported full vector satisfies the constraints
        assert abs(h.p[0] - h.p[1]) <= 1e-12 and h.p[4] == 7.5
    assert res.su_p[0] == pytest.approx(res.su_p[1]) == pytest.approx(res.su_z[0])
    np.testing.assert_allclose(res.cov_p(), T @ res.cov_z @ T.T)


# ----------------------------------------------------------------------------- schemes
def _score(sets, p, scheme):
    total = 0.0
    for ds in sets:
        ev = ds.evaluate(p)
        chi2 = np.sum(ev.weights * (ev.y_obs - ev.y_calc) ** 2)
        n = ev.y_obs.size
        total += {"unit": chi2, "nlog": n * np.log(chi2), "log": np.log(chi2)}[scheme]
    return total


def _two_sets(rng):
    t1, y1, s1 = decay_data(rng, n=40)
    t2, y2, s2 = decay_data(rng, n=15, tmax=3.0, sigma=0.15)
    s1 = s1 / 3.0  # set one has underestimated σ (GOF ≈ 3)
    return [
        decay_dataset("long", t1, y1, s1, columns=(0, 1, 2), n_full=4),
        decay_dataset("short", t2, y2, s2, columns=(3, 1, 2), n_full=4),
    ]


@pytest.mark.parametrize("scheme", ["unit", "nlog", "log"])
def test_gradient_of_score_vanishes_at_convergence(scheme):
    sets = _two_sets(np.random.default_rng(5))
    start = np.array([4.5, 0.8, 0.9, 5.5])
    res = solve(sets, start, scheme=scheme, options=SolverOptions(tol=1e-9, max_cycles=200))
    assert res.converged, res.message
    su_unit = res.su_z / np.sqrt(res.covariance_factor)
    for i in range(4):
        h = 1e-4 * su_unit[i]
        e = np.zeros(4)
        e[i] = h
        g = (_score(sets, res.p + e, scheme) - _score(sets, res.p - e, scheme)) / (2 * h)
        # moving z_i by one (unit-GOF) su changes C by O(1): the slope must be ~0
        assert abs(g * su_unit[i]) < 1e-5, (scheme, i, g * su_unit[i])
    assert res.score == pytest.approx(_score(sets, res.p, scheme), rel=1e-12)
    expected_c = {"unit": [1.0, 1.0], "nlog": None, "log": None}[scheme]
    c = [d.factor for d in res.datasets]
    if expected_c:
        assert c == expected_c
    elif scheme == "nlog":
        np.testing.assert_allclose(c, [d.n / d.chi2 for d in res.datasets])
    else:
        np.testing.assert_allclose(c, [1 / d.chi2 for d in res.datasets])
    assert sum(d.gradient_share for d in res.datasets) == pytest.approx(1.0)


def test_schemes_differ_with_two_sets_and_agree_with_one():
    sets = _two_sets(np.random.default_rng(6))
    start = np.array([4.5, 0.8, 0.9, 5.5])
    opts = SolverOptions(tol=1e-9, max_cycles=200)
    z = {s: solve(sets, start, scheme=s, options=opts) for s in ("unit", "nlog")}
    assert np.max(np.abs(z["unit"].z - z["nlog"].z) / z["unit"].su_z) > 0.05
    one = [decay_dataset("d", *decay_data(np.random.default_rng(7)))]
    r = {
        s: solve(one, np.array([4.5, 0.8, 0.9]), scheme=s, options=opts)
        for s in ("unit", "nlog", "log")
    }
    for s in ("nlog", "log"):
        np.testing.assert_allclose(r[s].z, r["unit"].z, atol=1e-7 * np.max(r["unit"].su_z))
        np.testing.assert_allclose(r[s].su_z, r["unit"].su_z, rtol=1e-6)


# ----------------------------------------------------------------------------- singular
def test_singular_matrix_names_the_parameters():
    x = np.linspace(0, 1, 20)
    A = np.column_stack([np.ones_like(x), x, x, x**2])  # columns 1 and 2 identical
    ds = linear_dataset("d", A, 1 + x, np.full(20, 0.1))
    with pytest.raises(SingularMatrixError) as err:
        solve([ds], np.zeros(4), names=["scale", "C1.x", "C2.x", "curv"])
    assert set(err.value.parameters) == {"C1.x", "C2.x"}
    assert "C1.x" in str(err.value) and "C2.x" in str(err.value)
    assert isinstance(err.value, ChasmError)
    A2 = np.column_stack([np.ones_like(x), x, np.zeros_like(x)])  # no effect at all
    with pytest.raises(SingularMatrixError, match="O1.occ"):
        solve(
            [linear_dataset("d", A2, 1 + x, np.full(20, 0.1))],
            np.zeros(3),
            names=["a", "b", "O1.occ"],
        )


def test_input_errors():
    A = np.ones((5, 1))
    with pytest.raises(InputError):
        solve([linear_dataset("d", A, np.ones(5), np.ones(5))], np.zeros(1), scheme="chi")
    bad = Dataset("bad", lambda p: Evaluation(np.ones(5), np.ones(5), np.ones(5), np.ones((5, 2))))
    with pytest.raises(InputError, match="bad"):
        solve([bad], np.zeros(1))
    neg = Dataset("neg", lambda p: Evaluation(np.ones(5), A @ p, -np.ones(5), A))
    with pytest.raises(InputError, match="neg"):
        solve([neg], np.zeros(1))


# ----------------------------------------------------------------------------- pulls
@pytest.mark.parametrize("model", ["linear", "decay"])
def test_pull_distribution(model):
    """(estimate − truth)/su over 200 noise realisations is ~N(0, 1).

    With 2000 realisations the decay model gives sd 0.99–1.01; 200 realisations
    scatter the sd by ±0.05, hence the generous bounds.
    """
    rng = np.random.default_rng(123)
    pulls = []
    t = np.linspace(0.0, 6.0, 60)
    sigma = np.full(60, 0.05)
    A = np.column_stack([np.ones_like(t), t, np.cos(t)])
    truth = TRUE if model == "decay" else np.array([0.3, -0.2, 1.5])
    for _ in range(200):
        if model == "decay":
            y = decay_model(t, truth)[0] + rng.normal(scale=sigma)
            res = solve([decay_dataset("d", t, y, sigma)], truth * 1.1)
        else:
            y = A @ truth + rng.normal(scale=sigma)
            res = solve([linear_dataset("d", A, y, sigma)], np.zeros(3))
        assert res.converged
        pulls.append((res.p - truth) / res.su_p)
    pulls = np.array(pulls)
    assert np.all(np.abs(pulls.mean(axis=0)) < 0.15)
    sd = pulls.std(axis=0, ddof=1)
    assert np.all((sd > 0.85) & (sd < 1.15)), sd


# ----------------------------------------------------------------------------- real data
def test_lalanine_scale_only_reproduces_shelxl(shared_data):
    from chasm.crystal.cif import read_cif
    from chasm.density.model import SphericalAtom
    from chasm.io.shelx_hkl import read_hkl4
    from chasm.scattering.engine import StructureFactorEngine
    from chasm.scattering.xray import agreement_factors, weights_sigma, xray_observables

    folder = shared_data / "xray" / "l-alanine"
    crystal = read_cif(folder / "iam.cif")
    refl = read_hkl4(folder / "iam.hkl")
    models = [SphericalAtom(a.element) for a in crystal.atoms]
    F = StructureFactorEngine(crystal, models, refl.hkl).compute().F
    w = weights_sigma(refl.sigma)

    def evaluate(p):
        obs = xray_observables(F, None, scale=p[0])
        return Evaluation(refl.f2, obs.y_calc, w, obs.jacobian)

    res = solve([Dataset("xray", evaluate)], np.array([1.0]), names=["xray.scale"])
    assert res.converged and res.cycles <= 3
    k = res.p[0]
    ag = agreement_factors(refl.f2, refl.sigma, k * np.abs(F) ** 2, n_par=83)
    assert abs(ag.wr2 - 0.0637) <= 3e-4
    assert abs(ag.r1 - 0.0304) <= 3e-4
    assert abs(ag.gof - 2.251) <= 0.01
    assert ag.n_gt == 2393 and abs(ag.r1_gt - 0.0285) <= 3e-4  # SHELXL's R1 [Fo > 4σ(Fo)]
    assert res.datasets[0].wr == pytest.approx(ag.wr2, rel=1e-10)


@pytest.mark.parametrize("scheme", ["unit", "nlog", "log"])
def test_two_set_covariance_matches_the_scatter_of_estimates(scheme):
    """Reported su = scatter of the estimates over noise realisations, every scheme.

    Two linear data sets share parameter b; set "big" (400 points) states its σ
    three times too small, set "small" (30 points) states them right and alone
    determines c. Under LOG and NLOG the factors c_e are not inverse variances,
    and under any scheme the two sets fit differently: the pooled rule s² M⁻¹
    is wrong by large factors there (except under NLOG, which rescales every
    set to χ²_e/N_e = 1), the per-set sandwich is not.
    """
    rng = np.random.default_rng(11)
    x1, x2 = np.linspace(-1, 1, 400), np.linspace(-1, 1, 30)
    A1 = np.column_stack([np.ones_like(x1), x1, np.zeros_like(x1)])
    A2 = np.column_stack([np.zeros_like(x2), x2, x2**2])
    truth = np.array([1.0, 0.5, -0.3])
    s1, s2 = np.full(x1.size, 0.1), np.full(x2.size, 0.05)
    est, su, su_pooled = [], [], []
    for _ in range(300):
        y1 = A1 @ truth + rng.normal(scale=3 * s1)
        y2 = A2 @ truth + rng.normal(scale=s2)
        sets = [linear_dataset("big", A1, y1, s1), linear_dataset("small", A2, y2, s2)]
        res = solve(sets, truth, scheme=scheme, options=SolverOptions(tol=1e-8))
        pooled = solve(sets, res.p, scheme=scheme, options=SolverOptions(covariance="pooled"))
        est.append(res.z)
        su.append(res.su_z)
        su_pooled.append(pooled.su_z)
    scatter = np.std(est, axis=0, ddof=1)
    ratio = np.median(su, axis=0) / scatter
    ratio_pooled = np.median(su_pooled, axis=0) / scatter
    print(scheme, "su / scatter:", ratio.round(3), "pooled rule:", ratio_pooled.round(3))
    np.testing.assert_allclose(ratio, 1.0, atol=0.12)
    if scheme != "nlog":  # NLOG rescales every set to χ²_e/N_e = 1: there both rules agree
        assert np.max(np.abs(ratio_pooled - 1.0)) > 0.3  # the test tells the rules apart


@pytest.mark.parametrize("scheme", ["nlog", "log"])
def test_nlog_and_log_steps_use_the_curvature_of_the_score(scheme):
    """Near the minimum one cycle is a Newton step of C itself, not of Σ c_e χ²_e.

    Two linear sets in tension (they disagree on the shared parameter b by many
    σ): each set's gradient b_e is far from zero at the minimum, and the
    Gauss–Newton matrix M, which treats the factors c_e as constants, makes a
    cycle remove only part of the error. With M − 2 Σ k_e b_e b_eᵀ (the exact
    Hessian of C for linear models) only the second-order remainder is left.
    """
    rng = np.random.default_rng(3)
    x1, x2 = np.linspace(-1, 1, 200), np.linspace(-1, 1, 40)
    A1 = np.column_stack([np.ones_like(x1), x1, np.zeros_like(x1)])
    A2 = np.column_stack([np.zeros_like(x2), x2, x2**2])
    y1 = A1 @ [1.0, 0.5, 0.0] + rng.normal(scale=0.1, size=x1.size)
    y2 = A2 @ [0.0, 0.8, -0.3] + rng.normal(scale=0.05, size=x2.size)  # b = 0.8, not 0.5
    sets = [
        linear_dataset("one", A1, y1, np.full(x1.size, 0.1)),
        linear_dataset("two", A2, y2, np.full(x2.size, 0.05)),
    ]
    best = solve(sets, np.zeros(3), scheme=scheme, options=SolverOptions(tol=1e-12))
    assert best.converged
    su = best.su_p
    p0 = best.p + 0.01 * su * np.array([1.0, -1.0, 0.5])
    one = solve(sets, p0, scheme=scheme, options=SolverOptions(max_cycles=1))
    before = np.max(np.abs(p0 - best.p) / su)
    after = np.max(np.abs(one.p - best.p) / su)
    # the plain Gauss-Newton step from the same point, for comparison
    chi2 = np.array(
        [np.sum((y - A @ p0) ** 2) / s**2 for A, y, s in ((A1, y1, 0.1), (A2, y2, 0.05))]
    )
    n = np.array([x1.size, x2.size])
    c = n / chi2 if scheme == "nlog" else 1.0 / chi2
    M = c[0] * A1.T @ A1 / 0.01 + c[1] * A2.T @ A2 / 0.0025
    b = c[0] * A1.T @ (y1 - A1 @ p0) / 0.01 + c[1] * A2.T @ (y2 - A2 @ p0) / 0.0025
    gn = np.max(np.abs(p0 + np.linalg.solve(M, b) - best.p) / su)
    print(f"{scheme}: error {before:.1e} su -> {after:.1e} su (Gauss-Newton: {gn:.1e} su)")
    assert after < 0.01 * before
    assert gn > 0.05 * before  # the plain step leaves a sizeable part: the test can tell


@pytest.mark.slow
@pytest.mark.parametrize(("scheme", "weight"), [("unit", 1.0), ("unit", 30.0), ("log", 1.0)])
def test_set_variance_factors_are_unbiased(scheme, weight, monkeypatch):
    """s_e² from E[χ²_e] recovers each set's true variance factor, on average.

    Set "small" (80 points, stated σ = 1, true σ = 2) owns 15 parameters and
    shares 25 with set "big" (1,500 points, stated σ = 1, true σ = 0.5), which
    owns 5 more. Its weight relative to its information is off under UNIT (the
    stated σ are wrong by different factors), more so with a user weight of 30
    and under LOG: the shared parameters lean towards it, its χ² falls below
    s²(N − h), and the familiar s_e² = χ²_e/(N_e − h_e) comes out 5–10 % low for
    "small" (and 5–70 % high for "big"). The rule of the solver does not.
    """
    rng = np.random.default_rng(1)
    n1, n2, k1, ks, k2 = 80, 1500, 15, 25, 5
    k = k1 + ks + k2
    a1, a2 = np.zeros((n1, k)), np.zeros((n2, k))
    a1[:, : k1 + ks] = rng.normal(size=(n1, k1 + ks))
    a2[:, k1:] = 0.3 * rng.normal(size=(n2, ks + k2))
    truth = rng.normal(size=k)
    true_s2 = np.array([4.0, 0.25])

    def run(n_real: int, seed: int) -> np.ndarray:
        noise = np.random.default_rng(seed)
        factors = []
        for _ in range(n_real):
            y1 = a1 @ truth + 2.0 * noise.normal(size=n1)
            y2 = a2 @ truth + 0.5 * noise.normal(size=n2)
            sets = [
                Dataset("small", lambda p, y=y1: Evaluation(y, a1 @ p, np.ones(n1), a1), weight),
                Dataset("big", lambda p, y=y2: Evaluation(y, a2 @ p, np.ones(n2), a2)),
            ]
            res = solve(sets, truth, scheme=scheme, options=SolverOptions(tol=1e-9))
            factors.append([d.variance_factor for d in res.datasets])
        return np.mean(factors, axis=0)

    # 300 realisations: the mean of s² is known to ~1.1 % (small) and ~0.4 % (big)
    np.testing.assert_allclose(run(300, 7), true_s2, rtol=0.04)
    # the familiar rule on the same data is measurably biased (the test tells them apart)
    from chasm.refine import solver as solver_module

    monkeypatch.setattr(
        solver_module, "_set_variances", lambda sv, st, sy, inv, h: st.chi2 / (st.n - h)
    )
    assert np.max(np.abs(run(300, 7) / true_s2 - 1.0)) > 0.05


@pytest.mark.parametrize("compiled", [True, False], ids=["numba gather", "numpy gather"])
@pytest.mark.parametrize("constrained", [False, True], ids=["T = 1", "T sparse"])
@pytest.mark.parametrize("pattern", ["run", "scattered", "far", "none", "all"])
def test_normal_part_over_the_non_zero_columns_equals_the_dense_product(
    pattern, constrained, compiled, monkeypatch
):
    """A set's M and b from its non-zero columns only equal c (J T)ᵀ W (J T), c (J T)ᵀ W r.

    The columns are sliced as one run (pattern "run", and "none" or "scattered"
    with few zero columns inside the run) or gathered ("far": half the columns
    zero), by the compiled kernel or by numpy; "all": a set without any
    non-zero column.
    """
    from chasm.refine.solver import _ROWS, _Solver
    from chasm.scattering import kernel

    if not compiled:
        monkeypatch.setattr(kernel, "HAVE_NUMBA", False)

    rng = np.random.default_rng(11)
    n, p = _ROWS + 700, 40  # two row blocks
    J = rng.normal(size=(n, p))
    zero = {
        "run": np.r_[0:5, 30:40],
        "scattered": np.r_[1, 4, 9, 22, 23, 37],
        "far": np.r_[1:40:2],
        "none": [],
        "all": np.arange(p),  # a set that sees none of the parameters
    }
    J[:, zero[pattern]] = 0.0
    T = np.eye(p)
    if constrained:  # parameter 7 fixed, 12 tied to 11 (p12 = 2 p11): sparse T_U
        T[12] = 2.0 * T[11]
        T = np.delete(T, [7, 12], axis=1)
        assert not T[7].any() and T[12].sum() == 2.0
    w = rng.uniform(0.5, 2.0, n)
    ev = Evaluation(rng.normal(size=n), rng.normal(size=n), w, J)
    sv = _Solver([Dataset("d", lambda q: ev)], np.zeros(p), T, None, "unit", SolverOptions())
    M, g = sv.normal_part(ev, 0.7)
    JT = J @ T
    np.testing.assert_allclose(M, 0.7 * JT.T @ (w[:, None] * JT), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(g, 0.7 * JT.T @ (w * (ev.y_obs - ev.y_calc)), rtol=1e-12, atol=1e-9)
    dead = np.flatnonzero(~np.any(JT != 0.0, axis=0))
    assert np.all(M[dead] == 0.0) and np.all(g[dead] == 0.0)

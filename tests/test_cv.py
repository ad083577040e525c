"""Cross-validation (chasm.cv, issue 20): folds, the hold-out hook, one fold, summary, CLI.

Independent references: a held-out set gives the same evaluation and fit as
the same observations removed by the data sets' own cut-offs (``omit`` for
X-ray, ``excluded`` flags for flipping ratios); the summary's jackknife su and
the paired ranking against formulas written out here; a fold refined with
its free set held out against a project whose data file lacks those
reflections.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from chasm.cli import main
from chasm.crystal.structure import Atom, Crystal
from chasm.cv.bootstrap import bootstrap_counts
from chasm.cv.compare import compare_table
from chasm.cv.folds import MIN_FREE, check_folds, fold_seed, stratified_folds
from chasm.cv.run import FoldTask, fold_scores, make_split, run_fold, summarise
from chasm.errors import InputError
from chasm.neutron.magnetic_ff import ion_form_factor
from chasm.project.build import build
from chasm.project.project import load_project
from chasm.refine.pnd_data import PndData, PndOptions, PndSpinModel, SpinSite
from chasm.refine.refinement import Refinement, Stage
from chasm.refine.xray_data import XrayData
from cv_helpers import simulated_urea, write_hkl
from test_pnd_refinement import _dataset, _hkl, _present, _refinement, _rotation

STAGES = ("scale", "monopoles")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return simulated_urea(tmp_path_factory.mktemp("cv_urea"), dmin=1.0, max_cycles=4)


# ------------------------------------------------------------------ folds
@pytest.mark.parametrize("n,k", [(97, 5), (40, 10), (12, 2), (33, 33)])
def test_folds_are_stratified_balanced_and_seeded(n, k):
    rng = np.random.default_rng(n)
    stol = np.round(rng.uniform(0.1, 1.0, n), 2)  # ties on purpose
    f = stratified_folds(stol, k, fold_seed(3, "xray"))
    assert f.shape == (n,) and set(np.unique(f)) == set(range(k))
    sizes = np.bincount(f, minlength=k)
    assert sizes.max() - sizes.min() <= 1
    # brute force, robust to ties: the j-th smallest sinθ/λ of every fold lies in the
    # value range of the j-th block of k observations in sinθ/λ order
    s = np.sort(stol)
    for i in range(k):
        v = np.sort(stol[f == i])
        j = np.arange(len(v))
        assert np.all(v >= s[j * k]) and np.all(v <= s[np.minimum(j * k + k - 1, n - 1)])
    np.testing.assert_array_equal(f, stratified_folds(stol, k, fold_seed(3, "xray")))
    if k < n:
        assert not np.array_equal(f, stratified_folds(stol, k, fold_seed(4, "xray")))
        assert not np.array_equal(f, stratified_folds(stol, k, fold_seed(3, "pnd")))


def test_check_folds_messages():
    check_folds(3, {"a": 3 * MIN_FREE, "b": 100})
    with pytest.raises(InputError, match="at least 2 folds"):
        check_folds(1, {"a": 100})
    with pytest.raises(InputError, match=r"'a' has 14 observations.*use --folds 2 or fewer"):
        check_folds(3, {"a": 14, "b": 100})


# ------------------------------------------------------------------ the hold-out hook
def test_xray_hold_out_equals_omitted_reflections(project):
    built = build(load_project(project))
    ref = built.refinement
    d = ref.datasets[0]
    held = stratified_folds(d.stol, 4, 1) == 0
    # the same options (init's extinction included) with the held reflections omitted
    options = dataclasses.replace(d.options, omit=d.reflections.hkl[held].tolist())
    omitted = XrayData("xray", d.reflections, built.crystal, options)
    other = Refinement(built.crystal, built.models, [omitted])
    p = ref.params.values
    assert other.params.names == ref.params.names
    d.hold_out(held)
    a, b = d.evaluate(p), omitted.evaluate(p)
    np.testing.assert_array_equal(a.y_obs, b.y_obs)
    np.testing.assert_allclose(a.y_calc, b.y_calc, rtol=1e-12)
    np.testing.assert_allclose(a.jacobian, b.jacobian, rtol=1e-12, atol=1e-14)
    work, free = d.agreement(p), None
    d.hold_out(~held)
    free = d.agreement(p)
    d.hold_out(None)
    whole = d.agreement(p)
    assert work["n_obs"] + free["n_obs"] == whole["n_obs"] and free["n_obs"] == held.sum()
    assert work["chi2"] + free["chi2"] == pytest.approx(whole["chi2"], rel=1e-12)
    assert work == {**omitted.agreement(p), "n_read": work["n_read"]}


def _ferromagnet():
    atoms = [Atom("Ni1", "Ni", (0, 0, 0), uiso=0.004), Atom("O1", "O", (0.5, 0.5, 0.5), uiso=0.006)]
    cryst = Crystal.from_parts((4.17, 4.17, 4.17, 90, 90, 90), "F m -3 m", atoms)
    spin = PndSpinModel(
        cryst, [10.3, 5.803], [SpinSite("Ni1", ion_form_factor("Ni2+"), c2=0.08, moment=1.7)]
    )
    rng = np.random.default_rng(11)
    ub = _rotation(rng) @ cryst.B
    hkl = _present(spin, _hkl(4))
    hkl = hkl[0.5 * np.linalg.norm(hkl @ cryst.B.T, axis=1) < 0.6]
    clean = PndData("sim", _dataset("sim", hkl, ub), spin)
    r = clean.ratios(_refinement(spin, [clean]).params.values)
    sigma = 0.003 + 0.01 * np.abs(r - 1.0)
    spin.set_values({"Ni1.moment": 1.0})
    return spin, _dataset("sim", hkl, ub, r + sigma * rng.normal(size=len(r)), sigma, radius=20.0)


def test_flipping_hold_out_fits_like_excluded_flags():
    spin, raw = _ferromagnet()
    held = stratified_folds(np.arange(len(raw.hkl), dtype=float), 3, 2) == 1
    stage = Stage("moment", free=["Ni1.moment", "sim.extinction_radius"])
    fits = []
    for how in ("hold_out", "excluded"):
        spin.set_values({"Ni1.moment": 1.0})
        raw.excluded[:] = held if how == "excluded" else False
        data = PndData("sim", raw, spin)
        ref = _refinement(spin, [data])
        if how == "hold_out":
            data.hold_out(held)
        ref.run_stage(stage)
        fits.append((ref.params.values.copy(), ref.agreement(0)["sim"]))
    raw.excluded[:] = False
    np.testing.assert_allclose(fits[0][0], fits[1][0], rtol=1e-10)
    assert fits[0][1]["n_obs"] == len(raw.hkl) - held.sum()
    assert fits[0][1]["chi2"] == pytest.approx(fits[1][1]["chi2"], rel=1e-9)


# ------------------------------------------------------------------ one fold, summary
def test_fold_equals_refinement_without_the_free_reflections(project, tmp_path):
    built = build(load_project(project))
    split = make_split(built, 3, seed=5)
    task = split.tasks(str(project), ["scale"])[1]
    r = run_fold(task)
    free = task.free["xray"]
    assert r["stages"][0]["datasets"]["xray"]["free"]["n_obs"] == free.sum()
    # the same stage on a data file without the free reflections
    d = built.refinement.datasets[0]
    hkl = tmp_path / "work.hkl"
    write_hkl(hkl, d.reflections.hkl[~free], d.reflections.f2[~free], d.reflections.sigma[~free])
    text = project.read_text().replace('"urea.hkl"', f'"{hkl}"')
    assert text != project.read_text()
    other = tmp_path / "work.toml"
    other.write_text(text.replace('cif = "urea.cif"', f'cif = "{project.parent / "urea.cif"}"'))
    b2 = build(load_project(other))
    b2.refinement.run_stage(b2.stages[0])
    ag = b2.refinement.agreement()["xray"]
    work = r["stages"][0]["datasets"]["xray"]["work"]
    assert work["n_obs"] == ag["n_obs"]
    # HKLF 4 rounds to 2 decimals: the scale agrees to the rounding, not bit for bit
    assert r["parameters"]["xray.scale"][0] == pytest.approx(
        b2.refinement.params["xray.scale"].value, rel=1e-4
    )
    assert work["wR2"] == pytest.approx(ag["wR2"], rel=1e-3)


def _fake_fold(i, score, value):
    figs = {"n_obs": 10, "chi2": 10 * score, "chi2_per_n": score, "R1": 0.1, "wR2": 0.2, "Rw": 0.1}
    entry = {"fitted": True, "work": dict(figs), "free": dict(figs)}
    st = {"name": "s", "n_free": 1, "cycles": 1, "converged": True, "datasets": {"x": entry}}
    return {"fold": i, "seconds": 0.0, "stages": [st], "parameters": {"a": [value, 0.1]}}


def test_summary_jackknife_and_paired_ranking():
    vals = [1.0, 1.2, 0.9, 1.1]
    folds = [_fake_fold(i, 2.0 + i, v) for i, v in enumerate(vals)]
    s = summarise(folds)
    k, m = len(vals), sum(vals) / len(vals)
    assert s["parameters"]["a"]["jackknife_su"] == pytest.approx(
        math.sqrt((k - 1) / k * sum((v - m) ** 2 for v in vals))
    )
    assert s["score"] == pytest.approx(3.5)
    assert s["score_se"] == pytest.approx(np.std([2, 3, 4, 5], ddof=1) / 2)
    pooled = s["stages"][0]["datasets"]["x"]["free"]["pooled_chi2_per_n"]
    assert pooled == pytest.approx(sum(10 * (2.0 + i) for i in range(4)) / 40)
    cmp = {
        "folds": 4,
        "seed": 0,
        "same_folds": False,
        "models": [
            {
                "label": "A",
                "score": 1.0,
                "score_se": 0.1,
                "delta": 0.0,
                "delta_se": 0.0,
                "datasets": {"x": {"work": {"Rw": {"mean": 0.1}}, "free": {"Rw": {"mean": 0.2}}}},
            }
        ],
    }
    # a failed fold is reported and left out; all failed: InputError
    bad = {
        "fold": 4,
        "seconds": 0.0,
        "error": "singular normal matrix",
        "stages": [],
        "parameters": {},
    }
    s2 = summarise([*folds, bad])
    assert s2["folds_used"] == 4 and s2["failed"] == [{"fold": 5, "error": bad["error"]}]
    assert s2["score"] == s["score"] and s2["parameters"] == s["parameters"]
    assert np.isnan(fold_scores([*folds, bad])[-1])
    with pytest.raises(InputError, match="fold 5: singular"):
        summarise([bad])
    table = compare_table(cmp)
    assert "do not share their folds" in table and "0.2000" in table


# ------------------------------------------------------------------ CLI
def test_cli_serial_writes_cv_json(project, tmp_path, capsys):
    out = tmp_path / "cv"
    args = ["cv", str(project), "--folds", "2", "--stages", *STAGES, "--output", str(out)]
    assert main(args) == 0
    cv = json.loads((out / "cv.json").read_text())
    assert cv["stages"] == list(STAGES) and len(cv["per_fold"]) == 2
    last = cv["summary"]["stages"][-1]["datasets"]["xray"]
    assert last["free"]["Rw"]["mean"] > last["work"]["Rw"]["mean"]  # free fits worse
    assert "Ha.Pv" not in cv["summary"]["parameters"]
    assert "C1.Pv" in cv["summary"]["parameters"]
    assert "stage monopoles" in (out / "cv.txt").read_text()
    assert "fold 2 done (2/2)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra,pattern",
    [
        (["--folds", "1"], "at least 2 folds"),
        (["--folds", "400"], r"data set 'xray' has \d+ observations.*use --folds \d+ or fewer"),
        (["--stages", "nope"], "unknown stage"),
        (["--workers", "0"], "--workers 0"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(project, capsys, extra, pattern):
    assert main(["cv", str(project), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("chasm: error:")
    assert __import__("re").search(pattern, err), err


def test_cli_unreachable_scheduler(project, capsys, monkeypatch):
    pytest.importorskip("distributed")
    import chasm.cv.dask_backend as backend

    monkeypatch.setattr(backend, "CONNECT_TIMEOUT", 1.0)
    args = ["cv", str(project), "--folds", "2", "--scheduler", "tcp://127.0.0.1:9"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no Dask scheduler answers" in err, err


def test_fold_task_is_picklable(project):
    import pickle

    t = FoldTask(str(project), 0, {"xray": np.array([True, False])}, STAGES)
    u = pickle.loads(pickle.dumps(t))
    assert u.project == t.project and np.array_equal(u.free["xray"], t.free["xray"])


# ------------------------------------------------------------------ bootstrap
def test_bootstrap_counts_are_seeded_draws():
    np.testing.assert_array_equal(bootstrap_counts(7, 0, "x", 0), np.ones(7))
    c = bootstrap_counts(500, 3, "xray", 4)
    assert c.sum() == 500 and c.min() == 0
    assert 0.30 < np.mean(c == 0) < 0.44  # out of bag: (1 - 1/n)^n ~ 0.368
    np.testing.assert_array_equal(c, bootstrap_counts(500, 3, "xray", 4))
    assert not np.array_equal(c, bootstrap_counts(500, 3, "xray", 5))
    assert not np.array_equal(c, bootstrap_counts(500, 3, "und", 4))


def _fit_moment(spin, raw, counts=None):
    spin.set_values({"Ni1.moment": 1.0})
    data = PndData("sim", raw, spin)
    ref = _refinement(spin, [data])
    if counts is not None:
        data.hold_out(counts == 0)
        data.multiplicity = counts.astype(float)
    # the moment alone: with the extinction radius free too, 2 of 30 replicates refine to a
    # second minimum (moment 1.09, radius 9.6 µm) from any start tried
    ref.run_stage(Stage("moment", free=["Ni1.moment"]))
    return ref.params["Ni1.moment"]


def test_multiplicity_equals_repeated_observations():
    spin, raw = _ferromagnet()
    counts = bootstrap_counts(len(raw.hkl), 1, "sim", 1)
    rows = np.repeat(np.arange(len(raw.hkl)), counts)
    repeated = _dataset("sim", raw.hkl[rows], raw.ub, raw.fr[rows], raw.fr_sigma[rows], radius=20.0)
    a, b = _fit_moment(spin, raw, counts), _fit_moment(spin, repeated)
    assert a.value == pytest.approx(b.value, rel=1e-10)
    # the su is scaled by GOF = sqrt(chi2/(N - p)), N counting distinct observations: a
    # replicate's su is not a bootstrap figure (only its values are used)
    n, n_distinct, p = len(rows), int(np.sum(counts > 0)), 1
    assert a.su * math.sqrt((n_distinct - p) / (n - p)) == pytest.approx(b.su, rel=1e-8)


@pytest.mark.slow
def test_bootstrap_su_matches_covariance_su_for_a_right_model():
    spin, raw = _ferromagnet()
    full = _fit_moment(spin, raw)
    n = len(raw.hkl)
    values = [_fit_moment(spin, raw, bootstrap_counts(n, 0, "sim", b)).value for b in range(1, 31)]
    ratio = np.std(values, ddof=1) / full.su
    # 30 replicates: the sd itself is uncertain by ~1/sqrt(2*29) ~ 13 %
    assert 0.65 < ratio < 1.4, ratio


def test_cli_bootstrap_writes_su_table(project, tmp_path):
    out = tmp_path / "bs"
    args = ["cv", str(project), "--bootstrap", "2", "--stages", "scale", "--output", str(out), "-q"]
    assert main(args) == 0
    bs = json.loads((out / "bootstrap.json").read_text())
    assert bs["replicates"] == 2 and len(bs["per_replicate"]) == 3
    built = build(load_project(project))
    built.refinement.run_stage(built.stages[0])
    scale = bs["parameters"]["xray.scale"]
    assert scale["value"] == built.refinement.params["xray.scale"].value  # replicate 0: full data
    assert scale["bootstrap_su"] > 0 and "xray.scale" in (out / "bootstrap.txt").read_text()


def test_flipping_data_hold_out_evaluates_like_excluded_flags():
    """The structure-model flipping-ratio set (FlippingData, λ/2 on): held out = excluded."""
    from test_flipping_extras import _joint

    ref, data = _joint(PndOptions(lambda_half=0.02))
    p = ref.params.values
    held = np.zeros(len(data.r_obs), dtype=bool)
    held[::3] = True
    whole = data.evaluate(p)
    data.hold_out(held)
    part = data.evaluate(p)
    np.testing.assert_array_equal(part.y_obs, whole.y_obs[~held])
    np.testing.assert_allclose(part.y_calc, whole.y_calc[~held], rtol=1e-12)
    np.testing.assert_allclose(part.jacobian, whole.jacobian[~held], rtol=1e-10, atol=1e-14)
    work = data.agreement(p)
    data.hold_out(~held)
    free = data.agreement(p)
    data.hold_out(None)
    total = data.agreement(p)
    assert work["chi2"] + free["chi2"] == pytest.approx(total["chi2"], rel=1e-12)
    assert (work["n_obs"], free["n_obs"]) == ((~held).sum(), held.sum())


def test_compare_ranks_pairs_and_lists_failed_models(monkeypatch):
    """compare() on canned fold results (no refinement): ranking, paired Δ, failed models."""
    import chasm.cv.compare as cmp_mod
    from chasm.cv.run import AllFoldsFailed

    per = {"A": [3.0, 4.0, 5.0], "B": [2.0, 3.5, 4.0]}

    def fake(p, k, **kw):
        if p == "C":
            raise AllFoldsFailed("cross-validation fold 1: singular normal matrix")
        folds = [_fake_fold(i, v, 1.0) for i, v in enumerate(per[p])]
        return {
            "project": p,
            "per_fold": folds,
            "summary": summarise(folds),
            "fold_fingerprints": {"x": "same"},
        }

    monkeypatch.setattr(cmp_mod, "cross_validate", fake)
    out = cmp_mod.compare(["A", "B", "C"], 3)
    assert [m["label"] for m in out["models"]] == ["B", "A"] and out["same_folds"]
    a = out["models"][1]
    d = np.array(per["A"]) - np.array(per["B"])
    assert a["delta"] == pytest.approx(d.mean())
    assert a["delta_se"] == pytest.approx(d.std(ddof=1) / math.sqrt(3))
    assert a["score_se"] == pytest.approx(np.std(per["A"], ddof=1) / math.sqrt(3))
    assert out["failed_models"][0]["label"] == "C"
    assert "not ranked: C: every fold failed" in compare_table(out)

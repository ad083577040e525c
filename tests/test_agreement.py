"""One Agreement type (issue 18): F² data, flipping ratios and every data set give the same."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chasm.data.agreement import Agreement
from chasm.neutron.flipping import FlippingStatistics, flipping_statistics
from chasm.project.build import build
from chasm.project.project import load_project
from chasm.scattering.xray import agreement_factors
from test_project_joint import joint_case  # noqa: F401  (a fixture)

RNG = np.random.default_rng(5)


def test_f2_agreement_against_the_formulas():
    fc2 = RNG.uniform(1, 100, 50)
    sigma = 0.05 * fc2 + 1
    fo2 = fc2 + RNG.normal(0, sigma)
    a = agreement_factors(fo2, sigma, fc2, n_par=5)
    w = 1 / sigma**2
    fo, fc = np.sqrt(np.maximum(fo2, 0)), np.sqrt(fc2)
    assert isinstance(a, Agreement) and a.kind == "xray"
    assert a.R1 == a.r1 == pytest.approx(np.sum(np.abs(fo - fc)) / np.sum(fo))
    assert (
        a.wR2 == a.wr2 == pytest.approx(np.sqrt(np.sum(w * (fo2 - fc2) ** 2) / np.sum(w * fo2**2)))
    )
    assert a.gof == pytest.approx(np.sqrt(np.sum(w * (fo2 - fc2) ** 2) / 45))
    assert a.n == a.n_obs == 50 and a.n_par == 5 and a.rw_f == a.Rw
    assert list(a)[:4] == ["kind", "n_obs", "n_par", "chi2"]
    assert json.loads(json.dumps(a)) == a  # a dict: serialises as it is
    assert len(a.lines()) == 3 and "R1(F, all 50)" in a.lines()[0]


def test_flipping_statistics_are_the_same_type():
    r_c = RNG.uniform(0.5, 2, 30)
    sig = np.full(30, 0.02)
    r_o = r_c + RNG.normal(0, sig)
    s = flipping_statistics(r_o, sig, r_c, n_parameters=2)
    assert FlippingStatistics is Agreement and isinstance(s, Agreement)
    w = 1 / sig**2
    chi2 = np.sum(w * (r_o - r_c) ** 2)
    assert s.chi2 == pytest.approx(chi2) and s.chi2_per_n == pytest.approx(chi2 / 30)
    assert s.rw_1mr == s.Rw == pytest.approx(np.sqrt(chi2 / np.sum(w * (r_o - 1) ** 2)))
    assert s.gof == pytest.approx(np.sqrt(chi2 / 28)) and s.R1 is None and s.wR2 is None


def test_every_data_set_of_the_joint_case_gives_an_agreement(joint_case):  # noqa: F811
    ref = build(load_project(joint_case / "project.toml")).refinement
    found = ref.agreement(3)
    assert {a.kind for a in found.values()} == {"xray", "und", "pnd"}
    for name, a in found.items():
        assert isinstance(a, Agreement), name
        assert a.n_par == 3 and a.n_obs > 0 and a.gof is not None
        assert a["observable"] in ("F2", "R") and a["n_read"] >= a.n_obs
    assert found["pnd.b1"].R1 is None and found["xray"].R1 > 0

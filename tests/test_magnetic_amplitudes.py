"""The classical PND route: observed F_M from flipping ratios, and refinement against them.

γ = F_M/F_N from R (chasm.neutron.fm_from_ratio) is checked by round trip
through the collinear formula, against the other root of the quadratic, and
its derivative by finite differences; MagneticAmplitudeData is checked on
noise-free and noisy simulated ratios of a centrosymmetric structure (exact
recovery, pulls over realisations, agreement with the direct refinement of R),
on its errors, and on the real YTiO3 blocks against the refinement of R.
"""

from __future__ import annotations

import numpy as np
import pytest

from chasm.crystal.structure import Atom, Crystal
from chasm.density.model import SphericalAtom
from chasm.errors import InputError
from chasm.neutron.flipping import flipping_ratio_collinear
from chasm.neutron.fm_from_ratio import gamma_from_ratio
from chasm.neutron.magnetic_ff import ion_form_factor
from chasm.neutron.rcif import read_rcif
from chasm.neutron.structure_factors import CRYSPY_P
from chasm.refine.magnetic_amplitude_data import MagneticAmplitudeData
from chasm.refine.pnd_data import PndData, PndOptions, PndSpinModel, SpinSite
from chasm.refine.refinement import Refinement, Stage
from test_neutron_flipping import SEARS_1992
from test_pnd_refinement import _dataset, _hkl, _monoclinic_spin, _present, _rotation

OFF = PndOptions(extinction=False)


# ------------------------------------------------------------------ γ from R
@pytest.mark.parametrize("polarisation", [-0.9, 0.97])
def test_gamma_round_trip_and_smaller_root(polarisation):
    rng = np.random.default_rng(5)
    n = 400
    q = rng.uniform(0.05, 1.0, n)
    efficiency = 0.93
    gamma = rng.uniform(-0.6, 0.6, n)
    f_n = rng.choice([-1.0, 1.0], n) * rng.uniform(0.5, 40.0, n)
    r = flipping_ratio_collinear(f_n, gamma * f_n, q, polarisation, efficiency)
    amp = gamma_from_ratio(r, np.full(n, 0.01), q, polarisation, efficiency)
    assert np.all(amp.valid)
    np.testing.assert_allclose(amp.gamma, gamma, rtol=0, atol=1e-12)
    # the other root of A γ² − 2 B γ + C = 0 (product of the roots C/A = 1/q) also gives R
    other = 1.0 / (q * amp.gamma)
    r_other = flipping_ratio_collinear(f_n, other * f_n, q, polarisation, efficiency)
    np.testing.assert_allclose(r_other, r, rtol=1e-9)
    assert np.all(np.abs(amp.gamma) < np.abs(other))
    # R = 1 gives γ = 0 exactly (no 0/0)
    one = gamma_from_ratio([1.0], [0.01], [0.7], polarisation, efficiency)
    assert one.valid[0] and one.gamma[0] == 0.0


def test_gamma_derivative_by_finite_differences():
    rng = np.random.default_rng(8)
    n = 200
    q = rng.uniform(0.1, 1.0, n)
    r = flipping_ratio_collinear(1.0, rng.uniform(-0.5, 0.5, n), q, -0.9, 0.95)
    sigma = rng.uniform(0.002, 0.05, n)
    amp = gamma_from_ratio(r, sigma, q, -0.9, 0.95)
    step = 1e-6
    fd = (
        gamma_from_ratio(r + step, sigma, q, -0.9, 0.95).gamma
        - gamma_from_ratio(r - step, sigma, q, -0.9, 0.95).gamma
    ) / (2 * step)
    np.testing.assert_allclose(amp.dgamma_dr, fd, rtol=1e-7)
    np.testing.assert_allclose(amp.gamma_su, np.abs(fd) * sigma, rtol=1e-7)


def test_gamma_without_real_root_is_flagged():
    # with P = −0.9, e = 1, q = 1 the ratio lies between 0.0526 and 19 (R(γ) extremes)
    amp = gamma_from_ratio([25.0, 0.01, 2.0], [0.1, 0.1, 0.1], [1.0, 1.0, 0.0], -0.9, 1.0)
    np.testing.assert_array_equal(amp.valid, [False, False, False])  # q = 0: no information
    assert np.all(np.isnan(amp.gamma)) and np.all(np.isnan(amp.gamma_su))


# ------------------------------------------------------------------ refinement against F_M
def _centric_spin(moments=(0.6, 0.08)) -> PndSpinModel:
    """P 21/c (origin on −1): Cu and a ligand O carrying spin, C without."""
    atoms = [
        Atom("Cu1", "Cu", (0.12, 0.21, 0.33), uiso=0.005),
        Atom("O1", "O", (0.31, 0.08, 0.41), uiso=0.008),
        Atom("C1", "C", (0.42, 0.27, 0.14), uiso=0.009),
    ]
    cryst = Crystal.from_parts((7.1, 8.3, 9.2, 90, 101.0, 90), "P 1 21/c 1", atoms)
    sites = [
        SpinSite("Cu1", ion_form_factor("Cu2+"), c2=0.1, moment=moments[0]),
        SpinSite("O1", ion_form_factor("O1+"), moment=moments[1]),
    ]
    return PndSpinModel(cryst, [7.718, 5.803, 6.646], sites)


def _refinement(spin, sets) -> Refinement:
    return Refinement(spin.crystal, [SphericalAtom(a.element) for a in spin.crystal.atoms], sets)


def _simulated(spin, rng, noise: bool, truth=None):
    """Ratios at the spin model's current values (or ``truth``), random orientation."""
    if truth is not None:
        spin.set_values(dict(zip(spin.parameter_names, truth, strict=True)))
    ub = _rotation(rng) @ spin.crystal.B
    hkl = _present(spin, _hkl(3))
    clean = PndData("sim", _dataset("sim", hkl, ub), spin, OFF)
    r_true = clean.ratios(_refinement(spin, [clean]).params.values)
    sigma = 0.002 + 0.01 * np.abs(r_true - 1.0)
    r_obs = r_true + (sigma * rng.normal(size=len(r_true)) if noise else 0.0)
    return _dataset("sim", hkl, ub, r_obs, sigma)


def _fit(spin, data, start=(0.3, 0.0)):
    spin.set_values(dict(zip(spin.parameter_names, start, strict=True)))
    ref = _refinement(spin, [data])
    out = ref.run_stage(Stage("spin", free=spin.parameter_names))
    assert out.result.converged
    return ref


def test_noise_free_ratios_give_the_true_moments_and_f_m():
    truth = (0.6, 0.08)
    spin = _centric_spin(truth)
    raw = _simulated(spin, np.random.default_rng(2), noise=False)
    data = MagneticAmplitudeData("sim", raw, spin)
    assert data.n_no_root == 0 and data.usable.sum() > 200
    f_m_true = np.einsum("nka,a,k->n", data.g_perp, data.e, truth) / data.q  # F_M along ê
    keep = data.usable
    np.testing.assert_allclose(data.f_m_obs[keep], f_m_true[keep], rtol=0, atol=1e-9)
    # without the F_N cut, weak nuclear reflections have |γ| > 1/√q: the smaller root is wrong
    loose = MagneticAmplitudeData("sim", raw, spin, min_fn=1e-3)
    gamma_true = (f_m_true / loose.f_n).real
    wrong = loose.usable & (np.abs(gamma_true) > 1 / np.sqrt(loose.q))
    assert 10 < wrong.sum() < 40 and not np.any(wrong & keep)
    np.testing.assert_allclose(loose.gamma[wrong], 1 / (loose.q * gamma_true)[wrong], rtol=1e-9)
    ref = _fit(spin, data)
    for name, value in zip(spin.parameter_names, truth, strict=True):
        assert ref.params[name].value == pytest.approx(value, abs=1e-9)
    assert ref.agreement()["sim"]["chi2"] < 1e-12


def test_jacobian_and_agreement_keys():
    spin = _centric_spin()
    data = MagneticAmplitudeData("sim", _simulated(spin, np.random.default_rng(4), True), spin)
    ref = _refinement(spin, [data])
    p0 = ref.params.values
    ev = data.evaluate(p0)
    for name in spin.parameter_names:
        i = ref.params.index(name)
        plus, minus = p0.copy(), p0.copy()
        plus[i] += 1e-4
        minus[i] -= 1e-4
        fd = (data.evaluate(plus).y_calc - data.evaluate(minus).y_calc) / 2e-4
        np.testing.assert_allclose(ev.jacobian[:, i], fd, rtol=0, atol=1e-9 * np.abs(fd).max())
    np.testing.assert_array_equal(ev.jacobian[:, : ref.n_struct], 0.0)
    a = ref.agreement()["sim"]
    assert a["observable"] == "F_M" and a["kind"] == "pnd" and a["n_obs"] == data.usable.sum()
    assert 0 < a["R1"] and 0 < a["Rw"]


def test_pulls_over_realisations_and_agreement_with_the_ratio_refinement():
    truth = np.array([0.6, 0.08])
    spin = _centric_spin(tuple(truth))
    rng = np.random.default_rng(21)
    pulls, gaps, su_ratio = [], [], []
    for _ in range(40):
        raw = _simulated(spin, rng, noise=True, truth=truth)
        ref_fm = _fit(spin, MagneticAmplitudeData("sim", raw, spin))
        fm = np.array([[ref_fm.params[n].value, ref_fm.params[n].su] for n in spin.parameter_names])
        ref_r = _fit(spin, PndData("sim", raw, spin, OFF))
        r = np.array([[ref_r.params[n].value, ref_r.params[n].su] for n in spin.parameter_names])
        pulls.append((fm[:, 0] - truth) / fm[:, 1])
        gaps.append((fm[:, 0] - r[:, 0]) / r[:, 1])
        su_ratio.append(fm[:, 1] / r[:, 1])
    pulls, gaps, su_ratio = np.array(pulls), np.array(gaps), np.array(su_ratio)
    # the su's of the linearised route describe its scatter
    assert np.all(np.abs(pulls.mean(axis=0)) < 0.45)  # 3 × 1/√40 = 0.47
    assert np.all((0.75 < pulls.std(axis=0)) & (pulls.std(axis=0) < 1.3))
    # both routes are unbiased: their difference averages out (they use different
    # reflections, the F_M route leaving out the weak nuclear ones, so it is not 0)
    print("pull mean", pulls.mean(axis=0), "sd", pulls.std(axis=0))
    print("gap mean", gaps.mean(axis=0), "sd", gaps.std(axis=0), "su ratio", su_ratio.mean(axis=0))
    assert np.all(np.abs(gaps.mean(axis=0)) < 0.5)


def test_errors_name_the_problem():
    spin = _monoclinic_spin()  # P 1 21 1: F_M and F_N not in phase
    ub = _rotation(np.random.default_rng(3)) @ spin.crystal.B
    raw = _dataset("acentric", _present(spin, _hkl(2)), ub)
    with pytest.raises(InputError, match="acentric.*centrosymmetric"):
        MagneticAmplitudeData("acentric", raw, spin, OFF)
    centric = _centric_spin()
    raw = _simulated(centric, np.random.default_rng(1), noise=False)
    with pytest.raises(InputError, match="no extinction"):
        MagneticAmplitudeData("sim", raw, centric, PndOptions())
    with pytest.raises(InputError, match="P cannot be refined"):
        MagneticAmplitudeData("sim", raw, centric, PndOptions(False, refine_polarisation=True))


# ------------------------------------------------------------------ real data
def test_ytio3_observed_f_m_against_the_ratio_refinement(shared_data):
    """Spherical Ti³⁺ moment from the three YTiO3 blocks (Pnma): both routes, no extinction."""
    pnd = read_rcif(shared_data / "pnd" / "ytio3" / "ytio3.rcif")
    block = pnd.crystal()

    def run(cls):
        spin = PndSpinModel.from_rcif(
            block, moments={"Ti": 0.5}, b_overrides=SEARS_1992, p=CRYSPY_P
        )
        sets = [cls(d.name, d, spin, OFF) for d in pnd.datasets]
        ref = _refinement(spin, sets)
        out = ref.run_stage(Stage("moment", free=["Ti.moment"]))
        assert out.result.converged
        return ref, sets

    ref_r, _ = run(PndData)
    ref_fm, sets = run(MagneticAmplitudeData)
    m_r, m_fm = ref_r.params["Ti.moment"], ref_fm.params["Ti.moment"]
    assert m_r.value == pytest.approx(0.516, abs=0.002)  # docs/validation.md, model (a)
    assert sum(s.usable.sum() for s in sets) > 200
    assert abs(m_fm.value - m_r.value) < 3 * max(m_r.su, m_fm.su)

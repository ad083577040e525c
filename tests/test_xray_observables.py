"""X-ray observables: Jacobian against finite differences of the whole pipeline, weights,
agreement factors and masks."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from chasm.crystal.structure import Atom, Crystal
from chasm.density.model import SphericalAtom
from chasm.errors import InputError
from chasm.io.shelx_hkl import systematic_absences
from chasm.scattering.engine import StructureFactorEngine
from chasm.scattering.extinction import becker_coppens_type1, bragg_trig, shelx_exti
from chasm.scattering.xray import (
    agreement_factors,
    f_from_f2,
    mask_i_over_sigma,
    mask_omitted,
    mask_resolution,
    weights_shelx,
    weights_sigma,
    xray_observables,
)
from engine_helpers import get_parameter, random_hkl, set_parameter

LAMBDA = 0.71073


def _problem():
    atoms = [
        Atom("C1", "C", [0.11, 0.23, 0.37], uiso=0.02),
        Atom("N1", "N", [0.31, 0.07, 0.61], uiso=0.025),
        Atom("O1", "O", [0.72, 0.41, 0.13], uiso=0.018),
    ]
    crystal = Crystal.from_parts(
        (5.9, 6.8, 12.1, 90, 90, 90), "P 21 21 21", atoms, dispersion={"O": (0.01, 0.006)}
    )
    crystal.atoms[2].u_aniso = np.array([0.021, 0.017, 0.025, 0.003, -0.002, 0.004])
    crystal.atoms[1].occupancy = 0.9
    models = [SphericalAtom(a.element) for a in crystal.atoms]
    hkl = random_hkl(60, np.random.default_rng(7), hmax=5)
    hkl = hkl[~systematic_absences(hkl, "P 21 21 21")]  # |F| = 0 has no derivative
    return crystal, models, hkl


def _extinctions(engine):
    s2t, c2t = bragg_trig(engine.stol, LAMBDA)
    vol = engine.crystal.volume
    return {
        "none": (None, None),
        "shelx": (lambda e: partial(shelx_exti, x=e, wavelength=LAMBDA, sin2theta=s2t), 0.8),
        "bc-gauss": (
            lambda e: partial(
                becker_coppens_type1,
                g=e,
                wavelength=LAMBDA,
                sin2theta=s2t,
                cos2theta=c2t,
                volume=vol,
                path_length=100.0,
            ),
            3.0e4,
        ),
    }


def _five_point(f2p, fp, fm, f2m, h):
    """Central difference with O(h⁴) error (|F| is strongly curved where F is small)."""
    return (8.0 * (fp - fm) - (f2p - f2m)) / (12.0 * h)


@pytest.mark.parametrize("kind", ["F2", "F"])
@pytest.mark.parametrize("ext_name", ["none", "shelx", "bc-gauss"])
def test_jacobian_against_finite_differences(kind, ext_name):
    crystal, models, hkl = _problem()
    engine = StructureFactorEngine(crystal, models, hkl)
    make_ext, e0 = _extinctions(engine)[ext_name]
    k0 = 3.7

    def observe(scale=k0, ext=e0, jac=False):
        sf = engine.compute(jacobian=jac)
        extinction = None if make_ext is None else make_ext(ext)
        names = sf.parameter_names if jac else None
        return xray_observables(sf.F, sf.jacobian, scale, extinction, kind, parameter_names=names)

    obs = observe(jac=True)
    n_struct = len(engine.parameter_names)
    assert obs.names[: n_struct + 1] == engine.parameter_names + ["scale"]
    assert obs.jacobian.shape == (len(hkl), n_struct + 1 + (make_ext is not None))
    if make_ext is not None:
        assert np.min(obs.y_ext) < 0.97  # extinction is actually exercised
    for j, name in enumerate(engine.parameter_names):
        p0 = get_parameter(crystal, models, name)
        values = []
        h = 2e-6 * max(1.0, abs(p0))  # some |F| are accidentally small
        for step in (2 * h, h, -h, -2 * h):
            set_parameter(crystal, models, name, p0 + step)
            values.append(observe().y_calc)
        set_parameter(crystal, models, name, p0)
        fd = _five_point(*values, h)
        col = obs.jacobian[:, j]
        assert np.max(np.abs(col - fd)) <= 1e-6 * np.max(np.abs(col)), name
    h = 1e-6 * k0
    fd = (observe(scale=k0 + h).y_calc - observe(scale=k0 - h).y_calc) / (2 * h)
    np.testing.assert_allclose(obs.jacobian[:, n_struct], fd, rtol=1e-7, atol=0)
    if make_ext is not None:
        h = 1e-6 * e0
        fd = (observe(ext=e0 + h).y_calc - observe(ext=e0 - h).y_calc) / (2 * h)
        col = obs.jacobian[:, n_struct + 1]
        assert np.max(np.abs(col - fd)) <= 1e-6 * np.max(np.abs(col))


def test_values_out_buffer_and_no_jacobian():
    crystal, models, hkl = _problem()
    sf = StructureFactorEngine(crystal, models, hkl).compute(jacobian=True)
    fc2 = np.abs(sf.F) ** 2
    obs = xray_observables(sf.F, sf.jacobian, 2.0)
    np.testing.assert_allclose(obs.y_calc, 2.0 * fc2, rtol=1e-14)
    np.testing.assert_allclose(obs.fc2, fc2, rtol=1e-14)
    np.testing.assert_allclose(obs.jacobian[:, -1], fc2, rtol=1e-14)
    obs_f = xray_observables(sf.F, None, 2.0, kind="F", jacobian=False)
    np.testing.assert_allclose(obs_f.y_calc, np.sqrt(2.0 * fc2), rtol=1e-14)
    assert obs_f.jacobian is None and obs_f.names == ["scale"]
    buf = np.empty((len(hkl), sf.jacobian.shape[1] + 1))
    obs2 = xray_observables(sf.F, sf.jacobian, 2.0, out=buf)
    assert obs2.jacobian is buf
    np.testing.assert_array_equal(buf, obs.jacobian)
    with pytest.raises(InputError):
        xray_observables(sf.F, sf.jacobian, -1.0, kind="F")
    with pytest.raises(InputError):
        xray_observables(sf.F, sf.jacobian, 1.0, kind="I")
    with pytest.raises(InputError):
        xray_observables(sf.F, sf.jacobian[:-1], 1.0)


def test_weights():
    sigma = np.array([1.0, 2.0, 0.5])
    np.testing.assert_allclose(weights_sigma(sigma), [1.0, 0.25, 4.0])
    for bad in ([1.0, 0.0], [1.0, -2.0], [np.nan]):
        with pytest.raises(InputError):
            weights_sigma(bad)
    fo2 = np.array([100.0, -5.0, 400.0])
    fc2 = np.array([90.0, 3.0, 420.0])
    np.testing.assert_allclose(weights_shelx(fo2, sigma, fc2, 0.0, 0.0), weights_sigma(sigma))
    a, b = 0.05, 0.7
    p = (np.maximum(fo2, 0) + 2 * fc2) / 3
    ref = 1 / (sigma**2 + (a * p) ** 2 + b * p)
    np.testing.assert_allclose(weights_shelx(fo2, sigma, fc2, a, b), ref, rtol=1e-15)
    with pytest.raises(InputError):
        weights_shelx(fo2, [1.0, 0.0, 1.0], fc2, a, b)


def test_f_from_f2():
    fo, sf = f_from_f2([1.0e6, 0.0, -4.0], [100.0, 4.0, 4.0])
    np.testing.assert_allclose(fo, [1000.0, 0.0, 0.0])
    assert sf[0] == pytest.approx(100.0 / 2000.0, rel=1e-4)  # σ(F²)/(2F) when strong
    np.testing.assert_allclose(sf[1:], 2.0)  # sqrt(σ(F²)) at Fo² ≤ 0


def test_agreement_factors_by_hand():
    fo2 = np.array([100.0, 25.0, 4.0, -1.0])
    sigma = np.array([2.0, 1.0, 1.0, 1.0])
    fc2 = np.array([81.0, 25.0, 9.0, 1.0])
    ag = agreement_factors(fo2, sigma, fc2, n_par=1)
    w = 1 / sigma**2
    chi2 = np.sum(w * (fo2 - fc2) ** 2)
    assert ag.chi2 == pytest.approx(chi2)
    assert ag.wr2 == pytest.approx(np.sqrt(chi2 / np.sum(w * fo2**2)))
    assert ag.gof == pytest.approx(np.sqrt(chi2 / 3))
    assert ag.r1 == pytest.approx((1 + 0 + 1 + 1) / (10 + 5 + 2 + 0))
    assert ag.n_gt == 3 and ag.r1_gt == pytest.approx(2 / 17)
    wf = 4 * np.maximum(fo2, 0) * w
    fo, fc = np.sqrt(np.maximum(fo2, 0)), np.sqrt(fc2)
    assert ag.rw_f == pytest.approx(np.sqrt(np.sum(wf * (fo - fc) ** 2) / np.sum(wf * fo**2)))
    assert any("wR2(F²" in line for line in ag.lines())
    perfect = agreement_factors(fo2[:3], sigma[:3], fo2[:3])
    assert perfect.r1 == perfect.wr2 == perfect.rw_f == 0.0


def test_masks():
    stol = np.array([0.1, 0.5, 0.9, 1.2])
    np.testing.assert_array_equal(mask_resolution(stol, 0.2, 1.0), [False, True, True, False])
    np.testing.assert_array_equal(mask_resolution(stol), [True] * 4)
    fo2, sig = np.array([10.0, 1.0, -3.0]), np.array([1.0, 1.0, 1.0])
    np.testing.assert_array_equal(mask_i_over_sigma(fo2, sig, 2.0), [True, False, False])
    hkl = np.array([[1, 0, 0], [0, 2, 1], [-1, 0, 0], [3, -2, 1]])
    np.testing.assert_array_equal(mask_omitted(hkl, [[1, 0, 0]]), [False, True, True, True])
    np.testing.assert_array_equal(
        mask_omitted(hkl, [[1, 0, 0], [3, -2, 1]], friedel=True), [False, True, False, False]
    )
    np.testing.assert_array_equal(mask_omitted(hkl, np.zeros((0, 3))), [True] * 4)

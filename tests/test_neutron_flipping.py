"""Flipping ratios: formulas, derivatives, and cryspy's numbers on real data."""

from __future__ import annotations

import numpy as np
import pytest

from chasm.neutron.extinction import SphereExtinction
from chasm.neutron.flipping import (
    flipping_ratio,
    flipping_ratio_collinear,
    flipping_statistics,
    polarised_intensities,
)
from chasm.neutron.magnetic_ff import IonFormFactor, ion_form_factor
from chasm.neutron.model import PndModel, calculate
from chasm.neutron.rcif import read_rcif
from chasm.neutron.structure_factors import CRYSPY_P

RNG = np.random.default_rng(20240611)
N = 12


def _unit(v):
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _perp(vec, h_unit):
    return vec - np.sum(vec * h_unit, axis=1)[:, None] * h_unit


def _random_case(collinear: bool):
    e = _unit(RNG.normal(size=3))
    h = _unit(RNG.normal(size=(N, 3)))
    f_n = RNG.normal(size=N) * 40 + 1j * RNG.normal(size=N) * 5
    if collinear:
        f_m_scalar = RNG.normal(size=N) * 15 + 1j * RNG.normal(size=N) * 3
        return e, h, f_n, f_m_scalar, _perp(f_m_scalar[:, None] * e, h)
    f_m = RNG.normal(size=(N, 3)) * 15 + 1j * RNG.normal(size=(N, 3)) * 6
    return e, h, f_n, None, _perp(f_m, h)


def _extinction(stol=None):
    stol = np.linspace(0.08, 0.55, N) if stol is None else stol
    return SphereExtinction.from_stol("gauss", 2909.938, 78.53, 1.4, 10.2**3, stol)


@pytest.mark.parametrize("efficiency", [1.0, 0.93])
def test_vector_form_reduces_to_collinear(efficiency):
    e, h, f_n, f_m, f_m_perp = _random_case(collinear=True)
    q = 1.0 - (h @ e) ** 2
    np.testing.assert_allclose(f_m_perp @ e, q * f_m, rtol=1e-12)  # F_M⊥·ê = q F_M
    r_vec = flipping_ratio(f_n, f_m_perp, e, -0.87, efficiency)
    r_col = flipping_ratio_collinear(f_n, f_m, q, -0.87, efficiency)
    np.testing.assert_allclose(r_vec, r_col, rtol=1e-13)
    assert np.ptp(r_col) > 0.1


def test_polarisation_sign_and_trivial_cases():
    e, h, f_n, _, f_m_perp = _random_case(collinear=False)
    ext = _extinction()
    r = flipping_ratio(f_n, f_m_perp, e, 0.9, 1.0, ext)
    # e = 1: reversing P exchanges the two flipper states, extinction or not
    np.testing.assert_allclose(flipping_ratio(f_n, f_m_perp, e, -0.9, 1.0, ext), 1.0 / r)
    # no magnetic scattering, or F_M ∥ h (sin²α = 0): R = 1
    np.testing.assert_allclose(flipping_ratio(f_n, 0 * f_m_perp, e, 0.9, 0.95, ext), 1.0)
    np.testing.assert_allclose(flipping_ratio_collinear(f_n, 30.0, 0.0, 0.9, 0.95), 1.0)
    along_h = _perp(7.0 * h, h)
    np.testing.assert_allclose(flipping_ratio(f_n, along_h, e, 0.9), 1.0, atol=1e-15)
    # unpolarised beam
    np.testing.assert_allclose(flipping_ratio(f_n, f_m_perp, e, 0.0, 1.0, ext), 1.0)


def test_chiral_term():
    e, h, f_n, _, f_m_perp = _random_case(collinear=False)
    parts = polarised_intensities(f_n, f_m_perp, e, 0.9)
    assert np.all(np.abs(parts.chiral) > 0)
    # it changes sign with the handedness of F_M⊥ (complex conjugation) ...
    flipped = polarised_intensities(np.conj(f_n), np.conj(f_m_perp), e, 0.9)
    np.testing.assert_allclose(flipped.chiral, -parts.chiral)
    np.testing.assert_allclose(flipped.nsf_plus, parts.nsf_plus)
    # ... and vanishes when F_M⊥ is real up to one phase (collinear structures)
    phase = np.exp(1j * RNG.uniform(0, 6, N))[:, None]
    real_like = polarised_intensities(f_n, phase * f_m_perp.real, e, 0.9)
    np.testing.assert_allclose(real_like.chiral, 0.0, atol=1e-12)


def test_derivatives_by_finite_differences():
    e, h, f_n, _, f_m_perp = _random_case(collinear=False)
    pol, eff = -0.87, 0.91
    stol = np.linspace(0.08, 0.55, N)

    def ratio(f_n=f_n, f_m_perp=f_m_perp, pol=pol, eff=eff, radius=78.53, mosaicity=2909.938):
        ext = SphereExtinction.from_stol("gauss", mosaicity, radius, 1.4, 10.2**3, stol)
        return flipping_ratio(f_n, f_m_perp, e, pol, eff, ext)

    ext = SphereExtinction.from_stol("gauss", 2909.938, 78.53, 1.4, 10.2**3, stol)
    r, d = flipping_ratio(f_n, f_m_perp, e, pol, eff, ext, derivatives=True)
    np.testing.assert_allclose(r, ratio())

    def check(analytic, plus, minus, step):
        np.testing.assert_allclose(analytic, (plus - minus) / (2 * step), rtol=2e-6, atol=1e-9)

    s = 1e-4
    check(d["f_n_real"], ratio(f_n=f_n + s), ratio(f_n=f_n - s), s)
    check(d["f_n_imag"], ratio(f_n=f_n + 1j * s), ratio(f_n=f_n - 1j * s), s)
    for k in range(3):
        unit = np.zeros(3)
        unit[k] = s
        check(
            d["f_m_perp_real"][:, k],
            ratio(f_m_perp=f_m_perp + unit),
            ratio(f_m_perp=f_m_perp - unit),
            s,
        )
        check(
            d["f_m_perp_imag"][:, k],
            ratio(f_m_perp=f_m_perp + 1j * unit),
            ratio(f_m_perp=f_m_perp - 1j * unit),
            s,
        )
    s = 1e-6
    check(d["polarisation"], ratio(pol=pol + s), ratio(pol=pol - s), s)
    check(d["efficiency"], ratio(eff=eff + s), ratio(eff=eff - s), s)
    check(d["radius"], ratio(radius=78.53 + 1e-4), ratio(radius=78.53 - 1e-4), 1e-4)
    check(d["mosaicity"], ratio(mosaicity=2909.938 + 1e-3), ratio(mosaicity=2909.938 - 1e-3), 1e-3)


def test_statistics():
    obs = np.array([1.2, 0.8, 1.1, 0.5])
    sig = np.array([0.1, 0.1, 0.05, 0.1])
    calc = np.array([1.1, 0.85, 1.1, 0.9])
    stats = flipping_statistics(
        obs, sig, calc, excluded=[False, False, False, True], n_parameters=1
    )
    assert stats.n == 3
    assert stats.chi2 == pytest.approx(1.0 + 0.25)
    assert stats.chi2_per_n == pytest.approx(1.25 / 3)
    assert stats.gof == pytest.approx(np.sqrt(1.25 / 2))
    assert stats.rw_1mr == pytest.approx(np.sqrt(1.25 / (4.0 + 4.0 + 4.0)))


# ------------------------------------------------------------------ cryspy on real data
#: Sears, Neutron News 3(3) (1992) 26 (fm): the scattering lengths of cryspy's table.
SEARS_1992 = {"Ho": 8.01, "Ti": -3.438, "O": 5.803, "Y": 7.75}
#: Ho3+ ⟨j2⟩ of International Tables Vol. C, Table 4.4.5.3 (P. J. Brown), four decimals
#: as in cryspy's formmag.tab; periodictable rounds a, b, c to 18.516, 6.707, 2.161.
HO3_J2_ITC = (0.2188, 18.5157, 1.0240, 6.7070, 0.9251, 2.1614, 0.0268)
#: cryspy (tests/basic_operations/redo_test_flip_ratio.py): the 94 ratios of the file's model.
CRYSPY_RATIOS = np.array(
    """
    0.67769245 1.7400608 1.61654164 0.92303798 0.93245852 0.73714893 0.40084516 0.50707637
    0.50795978 0.48982221 0.50707637 1.32039548 0.59300708 0.5916218 1.20424258 0.26216475
    0.26492688 0.82986437 0.33546764 0.33383482 1.12074955 0.17855907 0.17960172 0.57088846
    0.17511859 0.17401576 0.91998266 0.92101488 0.463532 0.46219096 0.93118655 1.31636915
    1.2325219 0.92126681 2.02369069 2.10804872 1.2464412 1.1946929 1.5758018 1.57551678
    1.0475533 1.02447433 0.69226483 0.69191805 1.2232208 0.28342698 0.28216954 1.18997359
    0.14681338 0.14755406 0.08987179 0.09044616 0.89966622 1.5618064 1.43274175 0.91577276
    0.88814321 0.90020169 0.07214861 0.07263155 1.06119519 1.0503256 1.27122221 0.58716649
    0.58641253 1.16313051 0.7322256 0.73278371 0.56721618 0.56665512 0.91421339 0.92236371
    0.30185899 0.30081766 0.96430564 1.05840772 1.04005396 0.96652207 0.81260982 0.83355983
    0.1146756 0.47731122 0.47819234 0.51865214 1.11041753 1.07842329 0.6923462 0.69290315
    1.14664124 0.07892507 0.07801952 1.08325336 0.0901045 0.09113749
    """.split(),
    dtype=float,
)


def _ho_model(pnd, **kw) -> PndModel:
    ho = ion_form_factor("Ho3+")
    itc = IonFormFactor("Ho3+", ho.j0, HO3_J2_ITC, ho.j4)
    return PndModel.from_rcif(pnd.crystal(), SEARS_1992, {"Ho3+": itc}, **kw)


def test_ho2ti2o7_reproduces_cryspy(shared_data):
    pnd = read_rcif(shared_data / "pnd" / "ho2ti2o7" / "ho2ti2o7.rcif")
    (data,) = pnd.datasets
    calc = calculate(_ho_model(pnd), data, p=CRYSPY_P)
    assert list(CRYSPY_RATIOS[:5]) == [0.67769245, 1.7400608, 1.61654164, 0.92303798, 0.93245852]
    np.testing.assert_allclose(calc.ratio, CRYSPY_RATIOS, rtol=1e-7)
    assert calc.statistics.n == 94
    assert calc.statistics.chi2 == pytest.approx(1135.41, abs=0.005)
    assert calc.statistics.chi2_per_n == pytest.approx(12.079, abs=5e-4)
    # the file's own fr_calc column (5 decimals, written by an earlier cryspy run)
    assert np.max(np.abs(calc.ratio - data.fr_calc)) < 1e-4
    # what each cryspy-specific input is worth: the symmetrising rule for χ ...
    avg = calculate(_ho_model(pnd, chi_rule="average"), data, p=CRYSPY_P)
    assert 1e-6 < np.max(np.abs(avg.ratio / calc.ratio - 1)) < 2e-4
    # ... and p = 2.69542 fm/μB (CONVENTIONS.md) instead of cryspy's 2.695
    exact_p = calculate(_ho_model(pnd), data)
    assert 1e-5 < np.max(np.abs(exact_p.ratio / calc.ratio - 1)) < 1e-3


def test_ytio3_spherical_model(shared_data):
    pnd = read_rcif(shared_data / "pnd" / "ytio3" / "ytio3.rcif")
    model = PndModel.from_rcif(pnd.crystal(), SEARS_1992)
    results = [calculate(model, data, p=CRYSPY_P) for data in pnd.datasets]
    directions = np.array([r.geometry.e for r in results])
    assert np.all(np.abs(directions @ directions.T - np.eye(3)) < 0.95)  # three orientations
    chi2 = sum(r.statistics.chi2 for r in results)
    n = sum(r.statistics.n for r in results)
    assert n == 266
    # README: χ²/N ≈ 1300 for the spherical Ti3+ model of the file
    assert 1250 < chi2 / n < 1350

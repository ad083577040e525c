"""Extinction factors: derivatives against finite differences, limits, and the BC integral."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad

from chasm.errors import InputError
from chasm.scattering.extinction import (
    FM_IN_ANGSTROM,
    R_E_ANGSTROM,
    becker_coppens_coefficients,
    becker_coppens_type1,
    becker_coppens_y,
    bragg_trig,
    shelx_exti,
)

LAMBDA = 0.71073
VOLUME = 420.0
T_BAR = 150.0  # µm


def _geometry(n=25, seed=3):
    rng = np.random.default_rng(seed)
    stol = rng.uniform(0.05, 1.2, n)
    s2t, c2t = bragg_trig(stol, LAMBDA)
    fc2 = rng.uniform(1.0, 3000.0, n)
    return fc2, s2t, c2t


def _central(f, x0, h):
    return (f(x0 + h) - f(x0 - h)) / (2.0 * h)


def _close(a, b, rel=1e-6):
    scale = np.max(np.abs(b)) if np.max(np.abs(b)) > 0 else 1.0
    assert np.max(np.abs(a - b)) <= rel * scale, np.max(np.abs(a - b)) / scale


def test_bragg_trig():
    s2t, c2t = bragg_trig([0.0, 0.5 / LAMBDA], LAMBDA)
    # sinθ = 0.5 -> 2θ = 60°
    assert s2t[0] == 0.0 and c2t[0] == 1.0
    assert s2t[1] == pytest.approx(np.sin(np.pi / 3)) and c2t[1] == pytest.approx(0.5)
    with pytest.raises(InputError):
        bragg_trig([1.5], LAMBDA)  # λ sinθ/λ > 1


def test_shelx_exti_derivatives_and_limits():
    fc2, s2t, _ = _geometry()
    x = 0.37
    y, dy_dfc2, dy_dx = shelx_exti(fc2, x, LAMBDA, s2t)
    _close(dy_dfc2, _central(lambda v: shelx_exti(v, x, LAMBDA, s2t)[0], fc2, 1e-3))
    _close(dy_dx, _central(lambda v: shelx_exti(fc2, v, LAMBDA, s2t)[0], x, 1e-6))
    # SHELXL's factor on Fc is the square root of y
    ref = (1 + 0.001 * x * fc2 * LAMBDA**3 / s2t) ** -0.25
    np.testing.assert_allclose(np.sqrt(y), ref, rtol=1e-14)
    y0, _, _ = shelx_exti(fc2, 0.0, LAMBDA, s2t)
    np.testing.assert_array_equal(y0, 1.0)
    with pytest.raises(InputError):
        shelx_exti(fc2, -1e6, LAMBDA, s2t)
    with pytest.raises(InputError):
        shelx_exti(fc2, x, LAMBDA, np.zeros_like(s2t))


@pytest.mark.parametrize("distribution", ["gauss", "lorentz"])
def test_bc_closed_form_derivative_and_limits(distribution):
    c2t = np.linspace(-0.99, 0.99, 13)
    x = np.linspace(0.01, 3.0, 13)
    y, dy = becker_coppens_y(x, c2t, distribution)
    _close(dy, _central(lambda v: becker_coppens_y(v, c2t, distribution)[0], x, 1e-6))
    y0, d0 = becker_coppens_y(np.zeros(13), c2t, distribution)
    np.testing.assert_array_equal(y0, 1.0)
    a1 = becker_coppens_coefficients(c2t, distribution)[0]
    np.testing.assert_allclose(d0, -a1 / 2)
    # small x: y ≈ 1 − (a1/2) x, a1 = 2.12 (Gauss, published) or 2 (Lorentz)
    ys, _ = becker_coppens_y(1e-4, c2t, distribution)
    np.testing.assert_allclose(ys, 1 - a1 / 2 * 1e-4, atol=2e-8)
    assert np.all(np.diff(becker_coppens_y(np.linspace(0, 50, 50), 0.3, distribution)[0]) < 0)


@pytest.mark.parametrize("distribution", ["gauss", "lorentz"])
@pytest.mark.parametrize("polarisation", ["unpolarised", "none"])
def test_bc_type1_derivatives(distribution, polarisation):
    fc2, s2t, c2t = _geometry()
    kw = dict(
        wavelength=LAMBDA,
        sin2theta=s2t,
        cos2theta=c2t,
        volume=VOLUME,
        path_length=T_BAR,
        distribution=distribution,
        polarisation=polarisation,
    )
    g = 2.0e4
    y, dy_dfc2, dy_dg = becker_coppens_type1(fc2, g, **kw)
    assert np.all((y > 0.3) & (y < 1.0))  # a noticeable but sane extinction
    _close(dy_dfc2, _central(lambda v: becker_coppens_type1(v, g, **kw)[0], fc2, 1e-3))
    _close(dy_dg, _central(lambda v: becker_coppens_type1(fc2, v, **kw)[0], g, 1e-2))


def test_bc_type1_weak_limit_is_g_q_tbar():
    """y ≈ 1 − g Q T̄ for weak extinction, both distributions (one polarisation)."""
    fc2, s2t, c2t = _geometry()
    q = R_E_ANGSTROM**2 * LAMBDA**3 * fc2 / (VOLUME**2 * s2t)  # Å⁻¹
    loss = q * T_BAR * 1e4  # per unit g
    for dist, rel in (("gauss", 1e-3), ("lorentz", 1e-12)):
        kw = dict(wavelength=LAMBDA, sin2theta=s2t, cos2theta=c2t, volume=VOLUME)
        kw.update(path_length=T_BAR, distribution=dist, polarisation="none")
        y0, _, d0 = becker_coppens_type1(fc2, 0.0, **kw)
        np.testing.assert_array_equal(y0, 1.0)
        # Gaussian: 2.12 · (2√2/3) / 2 = 0.99938 (BC's 2.12 rounds 3/√2)
        np.testing.assert_allclose(d0, -loss, rtol=rel)
        # unpolarised: the π state sees K² x, weight K²/(1+K²)
        kw["polarisation"] = "unpolarised"
        _, _, d0u = becker_coppens_type1(fc2, 0.0, **kw)
        np.testing.assert_allclose(d0u, d0 * (1 + c2t**4) / (1 + c2t**2), rtol=1e-12)


def test_bc_neutron_units_and_errors():
    fc2, s2t, c2t = _geometry()
    kw = dict(wavelength=1.4, sin2theta=s2t, cos2theta=c2t, volume=VOLUME, path_length=T_BAR)
    y_x, _, _ = becker_coppens_type1(fc2, 1e3, amplitude_unit=R_E_ANGSTROM, **kw)
    # the same Q: F in fm scaled so that F·1e-5 Å equals F·r_e
    f2n = fc2 * (R_E_ANGSTROM / FM_IN_ANGSTROM) ** 2
    y_n, _, _ = becker_coppens_type1(f2n, 1e3, amplitude_unit=FM_IN_ANGSTROM, **kw)
    np.testing.assert_allclose(y_x, y_n, rtol=1e-13)
    with pytest.raises(InputError):
        becker_coppens_type1(fc2, 1e3, distribution="fresnel", **kw)
    with pytest.raises(InputError):
        becker_coppens_type1(fc2, 1e3, polarisation="linear", **kw)


# --------------------------------------------------------------------- BC integral
def _phi0(s):
    if s < 1e-4:
        return 1.0 - 1.5 * s
    return 3.0 / (64.0 * s**3) * (8 * s * s + 4 * s * np.exp(-4 * s) - (1 - np.exp(-4 * s)))


def _phipi(s):
    if s < 1e-4:
        return 1.0 - 1.5 * s
    return 3.0 / (4.0 * s**3) * (s * s - s + 0.5 * np.log1p(2 * s))


def _y_integral(theta, x, distribution):
    """Becker & Coppens (1974) secondary extinction of a sphere, by quadrature.

    y = (6c/4π) ∫_0^∞ f(η) φ(θ, c x f(η)) dη, with φ interpolating between the
    θ = 0 and θ = π/2 solutions of the transfer equations,
    φ(θ, s) = φ0(s) + sin^{3/2}θ [φπ(s√sinθ) − φ0(s√sinθ)],
    and f the normalised mosaic profile: Gauss exp(−9η²/16π) (c = 1),
    Lorentz 1/(1+η²) (c = 4/3). This is the BC integral as restated (with the
    corrected φπ) by T. Kittelmann, github.com/tkittel/bc-extinction-paper.
    """
    if distribution == "gauss":
        c, f = 1.0, lambda e: np.exp(-9 * e * e / (16 * np.pi))
    else:
        c, f = 4.0 / 3.0, lambda e: 1.0 / (1.0 + e * e)
    st = np.sin(theta)

    def integrand(e):
        s = c * x * f(e)
        u = s * np.sqrt(st)
        return f(e) * (_phi0(s) + st**1.5 * (_phipi(u) - _phi0(u)))

    return 6 * c / (4 * np.pi) * quad(integrand, 0, np.inf, limit=200)[0]


@pytest.mark.parametrize("distribution", ["gauss", "lorentz"])
def test_bc_coefficients_against_the_integral(distribution):
    """The published closed forms reproduce the BC integral (checks A, B, 2.12)."""
    worst_small, worst_mid = 0.0, 0.0
    for theta_deg in (5.0, 30.0, 60.0, 85.0):
        theta = np.radians(theta_deg)
        for x in (0.02, 0.1, 0.5, 1.0):
            ref = _y_integral(theta, x, distribution)
            y, _ = becker_coppens_y(x, np.cos(2 * theta), distribution)
            err = abs(y - ref) / ref
            if x <= 0.1:
                worst_small = max(worst_small, err)
            worst_mid = max(worst_mid, err)
    assert worst_small < 3e-3
    assert worst_mid < 0.06

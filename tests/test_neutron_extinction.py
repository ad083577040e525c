"""cryspy's sphere extinction for flipping ratios (chasm.neutron.extinction)."""

from __future__ import annotations

import numpy as np
import pytest

from chasm.errors import InputError
from chasm.neutron.extinction import SphereExtinction, cryspy_mosaicity_to_g
from chasm.scattering.extinction import (
    FM_IN_ANGSTROM,
    becker_coppens_type1,
    becker_coppens_y,
    bragg_trig,
)

WAVELENGTH, VOLUME = 1.4, 10.2**3
STOL = np.array([0.09, 0.25, 0.39, 0.54])
F_SQ = np.array([250.0**2, 60.0**2, 140.0**2, 300.0**2])  # fm²


COS2T = 1 - 2 * (WAVELENGTH * STOL) ** 2


def _ext(model="gauss", mosaicity=2909.938, radius=78.53, primary=True) -> SphereExtinction:
    return SphereExtinction(model, mosaicity, radius, WAVELENGTH, VOLUME, COS2T, primary)


def test_mosaicity_maps_to_becker_coppens_g_in_the_type_i_limit():
    # g λ ≪ r sin 2θ: cryspy's mixed formula becomes BC type I with
    # g = 10⁴ m π/10800 rad⁻¹ and a mean path T̄ = 3r/2
    mosaicity, radius = 100.0, 3000.0
    y_cryspy = _ext("gauss", mosaicity, radius, primary=False)(F_SQ)[0]
    s2t, c2t = bragg_trig(STOL, WAVELENGTH)
    y_bc = becker_coppens_type1(
        F_SQ,
        cryspy_mosaicity_to_g(mosaicity),
        wavelength=WAVELENGTH,
        sin2theta=s2t,
        cos2theta=c2t,
        volume=VOLUME,
        path_length=1.5 * radius,
        distribution="gauss",
        polarisation="none",
        amplitude_unit=FM_IN_ANGSTROM,
    )[0]
    assert np.all(y_bc < 0.99)  # the comparison is not trivial
    np.testing.assert_allclose(y_cryspy, y_bc, rtol=2e-6)
    assert cryspy_mosaicity_to_g(2909.938) == pytest.approx(8464.6, rel=1e-4)


@pytest.mark.parametrize("model", ["gauss", "lorentz"])
def test_type_ii_limit_equals_the_primary_argument(model):
    # g λ ≫ r sin 2θ: x_s → (3/2)(F λ r / V)², the primary-extinction argument
    radius = 40.0
    sec = _ext(model, 1e13, radius, primary=False)(F_SQ)[0]
    prim = _ext(model, 0.0, radius)(F_SQ)[0]
    x = 1.5 * F_SQ / 100.0 * (WAVELENGTH * radius / VOLUME) ** 2  # F in 10⁻¹² cm, r in µm
    assert np.all(prim < 0.99) and np.all(sec < 0.99)
    np.testing.assert_allclose(sec, becker_coppens_y(x, COS2T, model)[0], rtol=1e-7)
    # BC's primary fit: a₁ = 2, A = 0.20 + 0.45 cos 2θ, B = 0.22 − 0.12 (0.5 − cos 2θ)²
    a, b = 0.20 + 0.45 * COS2T, 0.22 - 0.12 * (0.5 - COS2T) ** 2
    np.testing.assert_allclose(prim, (1 + 2 * x + a * x * x / (1 + b * x)) ** -0.5, rtol=1e-13)


@pytest.mark.parametrize("model", ["gauss", "lorentz"])
def test_derivatives(model):
    ext = _ext(model)
    y, dy_df, dy_dp = ext(F_SQ)
    assert np.all((y > 0.05) & (y < 1.0))
    h = 1e-4 * F_SQ
    np.testing.assert_allclose(dy_df, (ext(F_SQ + h)[0] - ext(F_SQ - h)[0]) / (2 * h), rtol=1e-6)
    for name, value in (("radius", 78.53), ("mosaicity", 2909.938)):
        step = 1e-5 * value
        kw = {"radius": 78.53, "mosaicity": 2909.938, name: value + step}
        up = _ext(model, kw["mosaicity"], kw["radius"])(F_SQ)[0]
        kw[name] = value - step
        down = _ext(model, kw["mosaicity"], kw["radius"])(F_SQ)[0]
        np.testing.assert_allclose(dy_dp[name], (up - down) / (2 * step), rtol=1e-6, atol=1e-12)


def test_switching_off():
    assert np.all(_ext(radius=0.0)(F_SQ)[0] == 1.0)
    only_primary = _ext(mosaicity=0.0)(F_SQ)[0]
    both = _ext()(F_SQ)[0]
    assert np.all(both < only_primary) and np.all(only_primary < 1.0)
    with pytest.raises(InputError):
        _ext(model="cauchy")
    with pytest.raises(InputError):
        _ext(radius=-1.0)

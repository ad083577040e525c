"""The engine's Hansen-Coppens form factor against a numerical 3-D Fourier transform.

The density of one pseudo-atom (core + valence + all 25 multipoles, random
populations, kappa, kappa' and local frame) is built in real space and
integrated, F(h) = int rho(r) exp(2 pi i h.r) d^3r, on a spherical product
grid (Gauss-Legendre in ln r, Gauss-Legendre in cos(theta) about h, uniform
phi). Nothing of the engine's route (Bessel transforms, harmonics rotation
matrices) is used on the quadrature side.
"""

from __future__ import annotations

import numpy as np
import pytest

from chasm.crystal.structure import Atom, Crystal
from chasm.density.databank import spherical_atom
from chasm.density.harmonics import density_harmonics
from chasm.density.model import HansenCoppensAtom
from chasm.density.radial import slater_density
from chasm.scattering.engine import StructureFactorEngine
from engine_helpers import random_rotation


def _density(model: HansenCoppensAtom, r: np.ndarray, u: np.ndarray) -> np.ndarray:
    """rho at radii r (nr,) and Cartesian unit vectors u (nu, 3): (nr, nu), e/A^3."""
    sp = spherical_atom(model.element, model.charge)
    k, kp = model.kappa, model.kappa_prime
    sph = model.pc * sp.density_core(r) + model.pv * k**3 * sp.density_valence(k * r)
    ang = density_harmonics(u @ model.frame, model.lmax)  # d_lm(M^T u)
    out = np.repeat(sph[:, None], len(u), axis=1)
    for l in range(model.lmax + 1):
        rl = slater_density(r, model.n_l[l], model.zeta * kp)
        out += rl[:, None] * (ang[:, l * l : (l + 1) ** 2] @ model.plm[l * l : (l + 1) ** 2])[None]
    return out


def _numerical_ft(model, hcart: np.ndarray) -> complex:
    # radial grid: r = exp(t), Gauss-Legendre in t
    t, wt = np.polynomial.legendre.leggauss(500)
    lo, hi = np.log(1e-7), np.log(16.0)
    t = 0.5 * (hi - lo) * t + 0.5 * (hi + lo)
    wt = 0.5 * (hi - lo) * wt
    r = np.exp(t)
    wr = wt * r**3  # dr r^2 = r^3 dt
    # angular grid about h: cos(theta) Gauss-Legendre, phi uniform
    ct, wc = np.polynomial.legendre.leggauss(220)
    nphi = 24
    phi = 2 * np.pi * np.arange(nphi) / nphi
    st = np.sqrt(1 - ct**2)
    K = np.linalg.norm(hcart)
    ez = hcart / K
    ex = np.cross(ez, [0.3, 0.5, 0.7])
    ex /= np.linalg.norm(ex)
    ey = np.cross(ez, ex)
    u = (
        st[:, None, None] * np.cos(phi)[None, :, None] * ex
        + st[:, None, None] * np.sin(phi)[None, :, None] * ey
        + ct[:, None, None] * ez
    ).reshape(-1, 3)
    wang = np.repeat(wc, nphi) * (2 * np.pi / nphi)
    rho = _density(model, r, u)  # (nr, nu)
    phase = np.exp(2j * np.pi * K * np.outer(r, np.repeat(ct, nphi)))
    return complex(np.sum(wr[:, None] * wang[None, :] * rho * phase))


@pytest.mark.slow
@pytest.mark.parametrize("element", ["Cu", "C"])
def test_hansen_coppens_form_factor_equals_numerical_transform(element):
    rng = np.random.default_rng(11 if element == "Cu" else 12)
    model = HansenCoppensAtom(
        element,
        pv=float(rng.uniform(3.0, 9.0)),
        kappa=float(rng.uniform(0.95, 1.08)),
        lmax=4,
        plm=rng.normal(scale=0.3, size=25),
        kappa_prime=float(rng.uniform(0.85, 1.2)),
        frame=random_rotation(rng),
    )
    crystal = Crystal.from_parts(
        (6.1, 7.3, 8.2, 79.0, 96.0, 104.0), "P 1", [Atom("A1", element, [0, 0, 0], uiso=0.0)]
    )
    hkl = rng.integers(-4, 5, size=(20, 3))
    hkl[np.all(hkl == 0, axis=1)] = (1, 2, 3)
    F = StructureFactorEngine(crystal, [model], hkl).compute().F
    hcart = hkl @ crystal.B.T
    worst = 0.0
    for h, f in zip(hcart, F, strict=True):
        ref = _numerical_ft(model, h)
        worst = max(worst, abs(f - ref) / abs(ref))
    assert worst < 1e-6, f"max relative deviation {worst:.2e}"

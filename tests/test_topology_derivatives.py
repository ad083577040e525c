"""Analytic gradient and Hessian of the static density (charge and spin) vs finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from chasm.crystal.structure import Atom, Crystal
from chasm.density.databank import spherical_atom
from chasm.density.harmonics import density_harmonics
from chasm.density.model import HansenCoppensAtom, SphericalAtom, SplitAtom
from chasm.errors import InputError
from chasm.maps.density import model_density, spin_density
from chasm.topology.density_derivatives import DensityField
from chasm.topology.harmonic_derivatives import (
    harmonics_with_derivatives,
    monomial_basis,
    polynomials_with_derivatives,
)
from chasm.topology.radial_table import QuinticTable, exponential_sum

RNG = np.random.default_rng(22)


def crystal() -> Crystal:
    """P 21/c with an atom on the inversion centre and two general atoms."""
    atoms = [
        Atom("N1", "N", (0.0, 0.0, 0.0), uiso=0.0),
        Atom("C1", "C", (0.27, 0.61, 0.18), uiso=0.0),
        Atom("H1", "H", (0.45, 0.30, 0.35), uiso=0.0),
    ]
    return Crystal.from_parts((5.1, 5.6, 6.2, 90, 101, 90), "P 21/c", atoms)


def frame(rng) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return q


def level_model(element: str, level: int, rng, lmax: int = 4) -> HansenCoppensAtom:
    """Only the populations of one multipole level l are non-zero (level -1: spherical only)."""
    plm = np.zeros((lmax + 1) ** 2)
    if level >= 0:
        plm[level * level : (level + 1) ** 2] = rng.uniform(-0.3, 0.3, 2 * level + 1)
    return HansenCoppensAtom(
        element,
        pv=rng.uniform(0.8, 5.0) if element != "H" else 0.9,
        kappa=rng.uniform(0.95, 1.1),
        lmax=lmax,
        plm=plm,
        kappa_prime=rng.uniform(0.9, 1.2),
        frame=frame(rng),
    )


def points(cr, n: int, rng) -> np.ndarray:
    """Random points at least 0.15 Å from every nucleus copy."""
    p = rng.uniform(0, 1, (4 * n, 3)) @ cr.A.T
    nuc = []
    for a in cr.atoms:
        for s in np.stack(np.meshgrid(*[[-1, 0, 1]] * 3, indexing="ij"), -1).reshape(-1, 3):
            rot, trans = cr.symops
            for r, t in zip(rot, trans, strict=True):
                nuc.append(cr.A @ (r @ a.xyz + t + s))
    d = np.linalg.norm(p[:, None] - np.array(nuc)[None], axis=2).min(axis=1)
    return p[d > 0.15][:n]


def fd(fun, x: np.ndarray, h: float = 1e-3) -> np.ndarray:
    """Fourth-order central differences of fun (n, ...) along x, y, z -> (n, ..., 3)."""
    cols = []
    for e in np.eye(3):
        cols.append(
            (-fun(x + 2 * h * e) + 8 * fun(x + h * e) - 8 * fun(x - h * e) + fun(x - 2 * h * e))
            / (12 * h)
        )
    return np.stack(cols, axis=-1)


def check_field(field: DensityField, x: np.ndarray, what: str) -> None:
    rho, grad, hess = field(x)
    g_fd = fd(lambda p: field(p, order=0)[0], x)
    h_fd = fd(lambda p: field(p, order=1)[1], x)
    eg = np.abs(grad - g_fd).max() / np.abs(grad).max()
    eh = np.abs(hess - h_fd).max() / np.abs(hess).max()
    print(f"{what}: |grad - FD| / max|grad| = {eg:.1e}, |hess - FD| / max|hess| = {eh:.1e}")
    assert eg < 1e-6 and eh < 1e-6
    np.testing.assert_allclose(hess, np.swapaxes(hess, -1, -2), atol=0)


# --------------------------------------------------------------------------- building blocks
def test_harmonic_polynomials_equal_the_density_harmonics_and_their_derivatives():
    u = RNG.normal(size=(40, 3))
    u /= np.linalg.norm(u, axis=1)[:, None]
    d, g, h = harmonics_with_derivatives(u, 4)
    np.testing.assert_allclose(d, density_harmonics(u, 4), atol=1e-14)
    # derivatives of the polynomials (off the sphere: the polynomials, not d(u/|u|))
    exps, T = monomial_basis(4)

    def val(p):
        return polynomials_with_derivatives(p, exps, np.repeat(T[:, :, None], len(p), 2), 0)[0].T

    def grad(p):
        return polynomials_with_derivatives(p, exps, np.repeat(T[:, :, None], len(p), 2), 1)[1]

    np.testing.assert_allclose(g, fd(val, u, 1e-3), atol=1e-9)
    np.testing.assert_allclose(h, np.moveaxis(fd(grad, u, 1e-3), 0, 1), atol=1e-8)


@pytest.mark.parametrize("element", ["H", "C", "O", "Cu"])
def test_quintic_tables_match_the_exact_exponential_sums(element):
    atom = spherical_atom(element)
    r = np.concatenate([np.linspace(1e-4, 0.2, 701), np.linspace(0.2, 7.0, 1501)])
    for t in (atom.core_transform, atom.valence_transform):
        if len(t.N) == 0:
            continue
        k, Z, w = np.asarray(t.N, float) - 2, np.asarray(t.Z, float), np.asarray(t.w, float)
        table = QuinticTable(k, Z, w)
        exact = exponential_sum(k, Z, w, r)
        for a, e, rel in zip(table(r), exact, (2e-9, 2e-9, 2e-8), strict=True):
            assert np.all(np.abs(a - e) <= rel * np.abs(e) + 2e-12 * np.abs(e).max())


# --------------------------------------------------------------------------- charge density
@pytest.mark.parametrize("level", [-1, 0, 1, 2, 3, 4])
def test_charge_density_derivatives_every_multipole_level(level):
    cr = crystal()
    rng = np.random.default_rng(100 + level)
    models = [level_model(a.element, level, rng, lmax=4) for a in cr.atoms]
    field = DensityField(cr, models, eps=1e-14)
    x = points(cr, 25, rng)
    check_field(field, x, f"charge, l = {level}")
    # same values as the maps module (its radial tables agree to 1e-9)
    np.testing.assert_allclose(
        field(x, order=0)[0], model_density(cr, models, x, tail=1e-12), rtol=1e-7, atol=1e-9
    )


def test_spherical_atom_and_exact_sums_agree_with_tables():
    cr = crystal()
    models = [SphericalAtom("N", "koga"), SphericalAtom("C", "koga"), None]
    x = points(cr, 20, np.random.default_rng(3))
    a = DensityField(cr, models, eps=1e-14)(x)
    b = DensityField(cr, models, eps=1e-14, exact=True)(x)
    for u, v in zip(a, b, strict=True):
        assert np.abs(u - v).max() <= 1e-8 * np.abs(v).max()
    np.testing.assert_allclose(a[0], model_density(cr, models, x, tail=1e-12), rtol=1e-7)


# --------------------------------------------------------------------------- spin density
@pytest.mark.parametrize("level", [0, 2, 4])
def test_spin_density_derivatives(level):
    cr = crystal()
    rng = np.random.default_rng(200 + level)
    models = []
    for a in cr.atoms:
        charge = level_model(a.element, level, rng, lmax=4)
        spin_plm = np.zeros(25)
        spin_plm[level * level : (level + 1) ** 2] = rng.uniform(-0.2, 0.2, 2 * level + 1)
        models.append(SplitAtom.from_charge_and_spin(charge, rng.uniform(-0.5, 0.8), spin_plm))
    field = DensityField(cr, models, "spin", eps=1e-14)
    x = points(cr, 25, rng)
    check_field(field, x, f"spin, l = {level}")
    up = [m.up for m in models]
    dn = [m.dn for m in models]
    np.testing.assert_allclose(
        field(x, order=0)[0], spin_density(cr, up, dn, x, tail=1e-12), rtol=1e-7, atol=1e-10
    )


def test_spin_field_needs_split_atoms():
    cr = crystal()
    with pytest.raises(InputError, match="no spin-split atom"):
        DensityField(cr, [SphericalAtom("N", "koga"), None, None], "spin")
    with pytest.raises(InputError, match="3 atoms"):
        DensityField(cr, [None], "charge")

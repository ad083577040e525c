"""Critical points, bond paths, BCP properties and their su."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from chasm.crystal.structure import Atom, Crystal
from chasm.density.model import SphericalAtom
from chasm.errors import InputError
from chasm.examples.urea_model import build_models, example_structure
from chasm.maps.density import model_density
from chasm.topology.bcp import (
    QUANTITIES,
    _linearised,
    bcp_quantities,
    bcp_uncertainties,
    bond_critical_points,
    density_jacobian,
)
from chasm.topology.critical_points import find_critical_points
from chasm.topology.density_derivatives import DensityField

COVALENT = {("C1", "O1"), ("C1", "N1"), ("H1", "N1"), ("H2", "N1")}


@pytest.fixture(scope="module")
def urea():
    cr = example_structure()
    return cr, build_models(cr)[0]


def test_bcp_of_two_spherical_atoms_is_the_density_minimum_on_the_line():
    cr = Crystal.from_parts(
        (9.0, 9.5, 10.0, 90, 90, 90),
        "P 1",
        [Atom("C1", "C", (0.4, 0.5, 0.5), uiso=0.0), Atom("O1", "O", (0.54, 0.5, 0.5), uiso=0.0)],
    )
    models = [SphericalAtom("C", "koga"), SphericalAtom("O", "koga")]
    field = DensityField(cr, models)
    search = find_critical_points(field, grid_step=0, pair_cutoff=2.0)
    bcps = search.of_kind("(3,-1)")
    assert len(bcps) == 1
    a, b = (cr.frac_to_cart(at.xyz) for at in cr.atoms)
    # independent: minimise the maps module's density along the internuclear line
    line = minimize_scalar(
        lambda t: float(model_density(cr, models, (a + t * (b - a))[None], tail=1e-12)[0]),
        bounds=(0.2, 0.8),
        method="bounded",
        options={"xatol": 1e-9},
    )
    expected = a + line.x * (b - a)
    print(f"BCP {bcps[0].cart} vs line minimum {expected}")
    assert np.linalg.norm(bcps[0].cart - expected) < 1e-5
    assert bcps[0].rho == pytest.approx(line.fun, rel=1e-7)
    lam = bcps[0].eigenvalues
    assert lam[0] == pytest.approx(lam[1], rel=1e-8)  # cylindrical: ε = 0
    [b0] = bond_critical_points(field, search.points)
    assert sorted(b0.atoms) == ["C1", "O1"]
    assert sum(b0.distances) == pytest.approx(np.linalg.norm(b - a), abs=1e-6)
    assert b0.path_length == pytest.approx(np.linalg.norm(b - a), abs=0.02)
    assert b0.values["ellipticity"] == pytest.approx(0.0, abs=1e-7)


def test_every_covalent_bond_of_urea_has_its_bcp(urea):
    cr, models = urea
    field = DensityField(cr, models)
    search = find_critical_points(field, grid_step=0, pair_cutoff=1.45, tessellation=False)
    bcps = bond_critical_points(field, search.points)
    bonds = {tuple(sorted(b.atoms)) for b in bcps}
    print("bonds:", sorted(bonds))
    assert COVALENT <= bonds
    for b in bcps:
        p = b.point
        assert p.grad_norm < 1e-8
        # the point is a CP of the maps module's density too (central differences)
        h = 1e-4
        g = [
            (
                model_density(cr, models, (p.cart + h * e)[None], tail=1e-12)
                - model_density(cr, models, (p.cart - h * e)[None], tail=1e-12)
            )[0]
            / (2 * h)
            for e in np.eye(3)
        ]
        assert np.linalg.norm(g) < 2e-5 * b.values["rho"]
    mult = {tuple(sorted(b.atoms)): b.point.multiplicity for b in bcps}
    assert mult[("C1", "O1")] == 2 and mult[("H1", "N1")] == 4


@pytest.mark.slow
def test_morse_relation_urea_example(urea):
    cr, models = urea
    search = find_critical_points(DensityField(cr, models), grid_step=0.25)
    print(search.counts, "n-b+r-c =", search.morse)
    assert search.morse == 0
    assert search.counts["n"] == 16 and search.counts["b"] > 16


def test_bcp_quantities_linearisation_matches_their_differences():
    rng = np.random.default_rng(5)
    h0 = rng.normal(size=(3, 3))
    h0 = h0 + h0.T + np.diag([-9.0, -6.0, 12.0])
    rho0 = 1.7
    dh = rng.normal(size=(4, 3, 3))
    dh = dh + np.swapaxes(dh, 1, 2)
    dr = rng.normal(size=4)
    J = _linearised(rho0, h0, dr, dh)
    eps = 1e-6
    for p in range(4):
        num = (
            bcp_quantities(rho0 + eps * dr[p], h0 + eps * dh[p])
            - bcp_quantities(rho0 - eps * dr[p], h0 - eps * dh[p])
        ) / (2 * eps)
        np.testing.assert_allclose(J[:, p], num, rtol=1e-6, atol=1e-9)


def test_abramov_energy_densities_by_hand():
    # ρ = 0.1 e/bohr³, ∇²ρ = 0.2 e/bohr⁵ in Å units
    bohr = 0.529177210903
    lap = np.diag([-0.1, -0.1, 0.4]) / bohr**5
    q = dict(zip(QUANTITIES, bcp_quantities(0.1 / bohr**3, lap), strict=True))
    G = 0.3 * (3 * np.pi**2) ** (2 / 3) * 0.1 ** (5 / 3) + 0.2 / 6
    assert q["G"] == pytest.approx(G, rel=1e-12)
    assert q["V"] == pytest.approx(0.05 - 2 * G, rel=1e-12)
    assert q["H"] == pytest.approx(0.05 - G, rel=1e-12)


def test_bcp_su_equals_finite_difference_propagation(urea):
    cr, models = urea
    field = DensityField(cr, models)
    search = find_critical_points(
        field, grid_step=0, pair_cutoff=1.3, tessellation=False, second_pass=False
    )
    bcps = [b for b in bond_critical_points(field, search.points) if "O1" in b.atoms]
    assert len(bcps) == 1
    names = ["O1.Pv", "O1.kappa", "O1.P20", "O1.kappa_prime", "C1.P30", "C1.Pv", "C1.x"]
    rng = np.random.default_rng(1)
    a = rng.normal(size=(len(names), len(names))) * 0.01
    cov = a @ a.T
    bcp_uncertainties(cr, models, bcps, names, cov)
    # independent: move each parameter in the whole model, recompute the quantities at the point
    x = bcps[0].point.cart[None]
    labels = [at.label for at in cr.atoms]
    cols = []
    for name in names:
        label, kind = name.split(".")
        i = labels.index(label)
        vals = []
        for sgn in (1, -1):
            ms = [m.__class__(**{**m.__dict__}) for m in models]
            ms[i].plm = models[i].plm.copy()
            d = sgn * 1e-4
            if kind == "Pv":
                ms[i].pv += d
            elif kind in ("kappa", "kappa_prime"):
                setattr(ms[i], kind, getattr(ms[i], kind) + d)
            elif kind.startswith("P"):
                ms[i].plm[4 if kind == "P20" else 9] += d
            rho, _, hess = DensityField(cr, ms)(x)
            vals.append(bcp_quantities(rho[0], hess[0]))
        cols.append((vals[0] - vals[1]) / 2e-4)
    J = np.array(cols).T
    su_fd = np.sqrt(np.einsum("qi,ij,qj->q", J, cov, J))
    su = np.array([bcps[0].su[q] for q in QUANTITIES])
    print(dict(zip(QUANTITIES, np.round(su, 5), strict=True)))
    np.testing.assert_allclose(su, su_fd, rtol=1e-5)
    # positions do not enter at a fixed point
    drho, _ = density_jacobian(cr, models, ["C1.x"], x)
    assert np.all(drho == 0.0)


def test_morse_relation_urea_tessellation_seeds(urea):
    cr, models = urea
    search = find_critical_points(DensityField(cr, models), grid_step=0)
    print(search.counts, "n-b+r-c =", search.morse)
    assert search.morse == 0
    assert search.counts == {"n": 16, "b": 30, "r": 22, "c": 8}


@pytest.mark.slow
def test_morse_relation_caf2_promolecule(shared_data):
    from chasm.crystal.cif import read_cif

    cr = read_cif(shared_data / "xray" / "caf2" / "CaF2.cif")
    field = DensityField(cr, [SphericalAtom(a.element, "koga") for a in cr.atoms])
    search = find_critical_points(field)
    print(search.counts, "n-b+r-c =", search.morse)
    assert search.counts == {"n": 12, "b": 56, "r": 48, "c": 4}
    bonds = {tuple(sorted(b.atoms)) for b in bond_critical_points(field, search.points)}
    assert ("Ca01", "F002") in bonds


def test_bad_search_settings():
    cr = example_structure()
    field = DensityField(cr, build_models(cr)[0])
    with pytest.raises(InputError, match="grid_step"):
        find_critical_points(field, grid_step=0.01)
    with pytest.raises(InputError, match="random_seeds"):
        find_critical_points(field, random_seeds=-5)


def test_spin_density_at_bcps_and_spin_critical_points():
    from chasm.density.model import HansenCoppensAtom, SplitAtom
    from chasm.maps.density import spin_density
    from chasm.topology.analysis import topology

    cr = Crystal.from_parts(
        (6.0, 6.5, 7.0, 90, 90, 90),
        "P 1",
        [Atom("C1", "C", (0.4, 0.5, 0.5), uiso=0.0), Atom("O1", "O", (0.6, 0.5, 0.5), uiso=0.0)],
    )
    plm = np.zeros(9)
    plm[4] = 0.2
    models = [
        SplitAtom.from_charge_and_spin(HansenCoppensAtom("C", 4.0, lmax=2, plm=plm), 0.3),
        SplitAtom.from_charge_and_spin(HansenCoppensAtom("O", 6.0, lmax=2), 0.6, 0.5 * plm),
    ]
    names = ["C1.Pv.up", "C1.Pv.dn", "O1.P20.up"]
    topo = topology(cr, models, names, np.diag([1e-4, 1e-4, 4e-4]))
    co = [b for b in topo.bcps if sorted(b.atoms) == ["C1", "O1"]]
    co = sorted(co, key=lambda b: -b.values["rho"])  # the bond, then the contact across the cell
    assert co[0].values["rho"] > 1.0
    x = co[0].point.cart[None]
    up, dn = [m.up for m in models], [m.dn for m in models]
    expected = spin_density(cr, up, dn, x, tail=1e-12)[0]
    assert co[0].spin["rho"] == pytest.approx(expected, rel=1e-6)
    # d spin / d Pv.up and d Pv.dn have opposite signs and equal size (same valence function)
    assert co[0].spin["rho_su"] > 0
    assert topo.spin is not None and topo.spin.points
    spin_field = DensityField(cr, models, "spin")
    xs = np.array([p.cart for p in topo.spin.points])
    assert np.abs(spin_field(xs, order=1)[1]).max() < 1e-6

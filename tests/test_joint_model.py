"""The structure model of a joint refinement: split atoms, ADP sets, views, Jacobians.

Independent references: the engine on an unsplit model with P = P↑ + P↓ (X-ray
view) and with the spin populations (magnetic view); the nuclear structure
factors of chasm.neutron.structure_factors (separate code); central finite
differences for every Jacobian column of X-ray, unpolarised and flipping-ratio
data sets, in both parameter bases.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from chasm.crystal.structure import Atom, Crystal
from chasm.density.model import HansenCoppensAtom, NuclearAtom, SphericalAtom, SplitAtom
from chasm.io.shelx_hkl import Reflections
from chasm.neutron.rcif import PndDataset
from chasm.neutron.structure_factors import nuclear_structure_factors
from chasm.refine.flipping_data import FlippingData
from chasm.refine.pnd_data import PndOptions
from chasm.refine.refinement import Refinement
from chasm.refine.structure_model import StructureModel
from chasm.refine.xray_data import UndData, XrayData, XrayOptions
from chasm.scattering.engine import StructureFactorEngine
from engine_helpers import hc_model, random_u_cif

HKL = np.array(
    [(1, 0, 0), (0, 1, 1), (1, 1, -1), (2, 1, 0), (1, 2, 3), (-2, 1, 2), (3, 0, -1), (0, 2, 1)]
    + [(h, k, 1) for h in range(-2, 3) for k in range(1, 3)]
)


def _crystal(rng, group="P 1 21/c 1") -> Crystal:
    cell = [7.1, 8.3, 6.9, 90, 101.5, 90]
    atoms = [
        Atom("Cu1", "Cu", [0.11, 0.23, 0.31], uiso=0.01),
        Atom("N1", "N", [0.27, 0.18, 0.42], uiso=0.01),
        Atom("O1", "O", [0.05, 0.36, 0.22], uiso=0.01),
        Atom("H1", "H", [0.33, 0.12, 0.47], uiso=0.02),
    ]
    cr = Crystal.from_parts(cell, group, atoms, wavelength=0.71)
    for a in cr.atoms[:3]:
        a.u_aniso = random_u_cif(cr, rng, 0.01)
    cr.dispersion = {"Cu": (0.32, 1.27)}
    return cr


def _models(rng):
    cu = hc_model("Cu", 4, rng)
    n = hc_model("N", 3, rng)
    o = hc_model("O", 2, rng)
    h = HansenCoppensAtom("H", pv=0.9, kappa=1.1, lmax=1, plm=[0.1, 0.05, 0.0, 0.02])
    split_cu = SplitAtom.from_charge_and_spin(cu, 0.8, rng.normal(scale=0.05, size=25))
    split_n = SplitAtom.from_charge_and_spin(n, 0.05, rng.normal(scale=0.01, size=16))
    split_cu.up.kappa, split_cu.dn.kappa = 1.02, 0.97  # independent expansions
    split_cu.up.kappa_prime, split_cu.dn.kappa_prime = 0.93, 1.08
    return [split_cu, split_n, o, h], [cu, n, o, h]


def test_xray_view_is_the_charge_model():
    rng = np.random.default_rng(1)
    cr = _crystal(rng)
    split, _ = _models(rng)
    split[0].share_kappa = split[0].share_kappa_prime = True
    split[0].dn.kappa, split[0].dn.kappa_prime = split[0].up.kappa, split[0].up.kappa_prime
    sm = StructureModel(cr, split)
    view = sm.view("xray")
    f_view, _ = view.compute(view.engine(HKL))
    charge = [m.charge_model() if isinstance(m, SplitAtom) else m for m in split]
    f_ref = StructureFactorEngine(copy.deepcopy(cr), charge, HKL).compute().F
    assert np.max(np.abs(f_view - f_ref)) < 1e-10 * np.max(np.abs(f_ref))


def test_every_model_answers_charge_model_and_spin_parts():
    """charge_model() and spin_parts() on every model type: no caller switches on the type."""
    rng = np.random.default_rng(5)
    split, _ = _models(rng)
    cu, o = split[0], split[2]
    plain = [o, SphericalAtom("C"), NuclearAtom("Ni", 10.3)]
    for m in plain:  # one density: the model itself, no spin parts
        assert m.charge_model() is m
        assert m.spin_parts() == (None, None)
    up, dn = cu.spin_parts()
    assert up is cu.up and dn is cu.dn
    charge = cu.charge_model()  # P = P(up) + P(dn), element by element
    assert isinstance(charge, HansenCoppensAtom) and charge is not cu.up
    assert charge.pv == pytest.approx(cu.up.pv + cu.dn.pv)
    for k in range(25):
        assert charge.plm[k] == pytest.approx(cu.up.plm[k] + cu.dn.plm[k])
    assert charge.pc == cu.pc and charge.kappa == cu.up.kappa


def test_magnetic_view_is_the_spin_density():
    rng = np.random.default_rng(2)
    cr = _crystal(rng)
    split, _ = _models(rng)
    for m in split[:2]:  # with a common kappa, F_spin is the FT of the spin populations
        m.dn.kappa, m.dn.kappa_prime = m.up.kappa, m.up.kappa_prime
    sm = StructureModel(cr, split, adp_sets=["N"])
    view = sm.view("magnetic")
    f_view, _ = view.compute(view.engine(HKL))
    spin = []
    atoms = []
    for atom, m in zip(cr.atoms, split, strict=True):
        if isinstance(m, SplitAtom):
            s = m.charge_model()
            s.pv, s.plm, s.pc = m.spin_pv, m.spin_plm, 0.0
            spin.append(s)
            atoms.append(copy.deepcopy(atom))
    sub = Crystal(
        cr.name, cr.cell, cr.spacegroup, atoms, rotations=cr.rotations, translations=cr.translations
    )
    f_ref = StructureFactorEngine(sub, spin, HKL, anomalous=False).compute().F
    assert np.max(np.abs(f_view - f_ref)) < 1e-10 * np.max(np.abs(f_ref))
    assert abs(f_ref[0]) > 0.05  # a real signal, not zeros


def test_nuclear_view_matches_the_neutron_module():
    rng = np.random.default_rng(3)
    cr = _crystal(rng)
    split, _ = _models(rng)
    sm = StructureModel(cr, split, adp_sets=["N"])
    for k, (u6, uiso) in enumerate(sm.adp["N"]):  # a neutron set different from X
        if u6 is not None:
            sm.adp["N"][k] = (u6 * 1.3, uiso * 1.3)
    view = sm.view("nuclear")
    f_view, _ = view.compute(view.engine(HKL))
    ref = copy.deepcopy(cr)
    for a, (u6, uiso) in zip(ref.atoms, sm.adp["N"], strict=True):
        a.u_aniso = None if u6 is None else u6.copy()
        a.uiso = uiso
    f_ref = nuclear_structure_factors(ref, HKL, sm._b)
    assert np.max(np.abs(f_view - f_ref)) < 1e-10 * np.max(np.abs(f_ref))


@pytest.mark.parametrize("basis", ["updown", "chargespin"])
def test_parameters_round_trip_and_constraints(basis):
    rng = np.random.default_rng(4)
    cr = _crystal(rng)
    split, _ = _models(rng)
    sm = StructureModel(cr, split, adp_sets=["N"], basis=basis)
    p = sm.parameters()
    suffix = ".up" if basis == "updown" else ".spin"
    assert f"Cu1.P22+{suffix}" in p and "Cu1.U11.N" in p and "Cu1.kappa.dn" in p
    if basis == "chargespin":
        assert p["Cu1.Pv.spin"].value == pytest.approx(0.8, abs=1e-14)
    v = p.values.copy()
    p.set_values(v + 0.01)
    sm.apply(p)
    assert np.allclose(sm.values(), v + 0.01, rtol=0, atol=1e-14)
    # the charge and spin sums computed from the models
    sm_spin = sm.spin_constraint(p, 0.0)
    A = sm_spin.A
    cu, n = sm.models[0], sm.models[1]
    w = [a.occupancy for a in cr.atoms]  # general positions: weight = occupancy (now 1.01)
    spin = w[0] * (cu.spin_pv + cu.spin_plm[0]) + w[1] * (n.spin_pv + n.spin_plm[0])
    assert (A @ p.values)[0] == pytest.approx(spin, abs=1e-12)


def _xray_set(cr, rng, name="x"):
    f2 = rng.uniform(10, 100, len(HKL))
    refl = Reflections(hkl=HKL.copy(), f2=f2, sigma=0.05 * f2)
    return XrayData(name, refl, cr, XrayOptions(extinction="bc-gauss", extinction_start=0.02))


def _und_set(cr, rng):
    f2 = rng.uniform(10, 100, len(HKL))
    refl = Reflections(hkl=HKL.copy(), f2=f2, sigma=0.05 * f2)
    return UndData("n", refl, cr, XrayOptions(wavelength=1.2))


def pnd_dataset(name, hkl, fr=None, sigma=None, field=5.0) -> PndDataset:
    n = len(hkl)
    return PndDataset(
        name=name,
        wavelength=0.84,
        field=field,
        polarisation=-0.9,
        efficiency=0.95,
        ub=np.diag([0.14, 0.12, 0.145]),
        ub_type="CCSL",
        extinction_model="gauss",
        mosaicity=150.0,
        radius=40.0,
        phase=None,
        hkl=np.asarray(hkl),
        fr=np.ones(n) if fr is None else fr,
        fr_sigma=np.full(n, 0.01) if sigma is None else sigma,
        fr_calc=None,
        excluded=np.zeros(n, bool),
        lines=np.arange(n),
    )


@pytest.mark.parametrize("basis", ["updown", "chargespin"])
def test_jacobians_by_finite_differences(basis):
    rng = np.random.default_rng(5)
    cr = _crystal(rng)
    split, _ = _models(rng)
    pnd = FlippingData(
        "p",
        pnd_dataset("p", HKL),
        cr,
        PndOptions(refine_polarisation=True),
        magnetisation_scale=True,
    )
    sets = [_xray_set(cr, rng), _und_set(cr, rng), pnd]
    ref = Refinement(cr, split, sets, basis=basis)
    assert ref.structure.adp_set_names == ["X", "N"]
    p0 = ref.params.values.copy()
    names = ref.params.names
    for d in sets:
        ref.set_values(p0)
        e0 = d.evaluate(p0)
        J, y0 = e0.jacobian, e0.y_calc
        used = np.flatnonzero(np.any(J != 0, axis=0))
        assert used.size > 20
        for k in range(len(names)):
            if names[k].endswith(".occ"):
                continue
            h = (1e-6 if names[k][-2:] in (".x", ".y", ".z") else 1e-5) * max(1.0, abs(p0[k]))
            pp, pm = p0.copy(), p0.copy()
            pp[k] += h
            pm[k] -= h
            ref.set_values(pp)
            yp = d.evaluate(pp).y_calc
            ref.set_values(pm)
            ym = d.evaluate(pm).y_calc
            fd = (yp - ym) / (2 * h)
            scale = max(np.max(np.abs(fd)), np.max(np.abs(J[:, k])), 1e-300)
            err = np.max(np.abs(fd - J[:, k])) / scale if scale > 1e-12 else 0.0
            noise = 1e-12 * np.max(np.abs(y0)) / h  # rounding error of the difference
            bad = np.max(np.abs(fd - J[:, k]))
            assert err < 1e-6 or bad < noise, (d.name, names[k], err, bad, noise)
        ref.set_values(p0)
        # what each kind of data sees
        col = {n: k for k, n in enumerate(names)}
        spin_name = "Cu1.P20.up" if basis == "updown" else "Cu1.P20.spin"
        if d.kind == "und":
            assert not np.any(J[:, col[spin_name]]) and not np.any(J[:, col["Cu1.U11"]])
            assert np.any(J[:, col["Cu1.U11.N"]])
        if d.kind == "xray":
            assert not np.any(J[:, col["Cu1.U11.N"]]) and np.any(J[:, col["Cu1.U11"]])
        if d.kind == "pnd":
            assert np.any(J[:, col[spin_name]]) and np.any(J[:, col["Cu1.U11.N"]])
            assert not np.any(J[:, col["Cu1.U11"]])


def test_stage_data_selects_the_fitted_sets():
    from chasm.errors import InputError
    from chasm.refine.refinement import Stage

    rng = np.random.default_rng(6)
    cr = _crystal(rng)
    split, _ = _models(rng)
    pnd = FlippingData("p", pnd_dataset("p", HKL), cr)
    sets = [_xray_set(cr, rng), _und_set(cr, rng), pnd]
    ref = Refinement(cr, split, sets, basis="chargespin")
    assert [d.name for d in ref.stage_datasets(Stage("a", ["*"], data=["x"]))] == ["x"]
    with pytest.raises(InputError, match="not among"):
        ref.stage_datasets(Stage("a", ["*"], data=["xray"]))
    out = ref.run_stage(Stage("scale", ["x.scale"], data=["x"], max_cycles=3))
    assert [d.name for d in out.result.datasets] == ["x"]

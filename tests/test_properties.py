"""Charges, spin moments and d-orbital populations (chasm.properties).

Independent references: the su of a quantity refined directly as one
parameter (chargespin basis: Cu1.Pv.spin, Cu1.Pv) against the same quantity
as a combination of the updown parameters of the same refinement; F(000) of
the structure-factor engine (the electron count of the cell) for the charges;
d-orbital populations put into a model through dorbitals' forward map.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from chasm.density.dorbitals import multipoles_from_orbitals
from chasm.density.model import SplitAtom
from chasm.errors import InputError
from chasm.io.shelx_hkl import Reflections
from chasm.properties import (
    atomic_properties,
    format_properties,
    markdown_properties,
    refinement_properties,
)
from chasm.refine.flipping_data import FlippingData
from chasm.refine.refinement import Refinement, Stage
from chasm.refine.structure_model import StructureModel
from chasm.refine.xray_data import XrayData, XrayOptions
from engine_helpers import hc_model
from test_joint_model import _crystal, _models, pnd_dataset

Z = {"Cu": 29, "N": 7, "O": 8, "H": 1}


def _hkl(limit: int) -> np.ndarray:
    r = range(-limit, limit + 1)
    hkl = np.array([(h, k, l) for h in r for k in r for l in r if (h, k, l) > (0, 0, 0)])
    # P2_1/c absences: 0k0 k odd, h0l l odd
    absent = ((hkl[:, 0] == 0) & (hkl[:, 2] == 0) & (hkl[:, 1] % 2 == 1)) | (
        (hkl[:, 1] == 0) & (hkl[:, 2] % 2 == 1)
    )
    return hkl[~absent]


def _simulated_refinement(basis: str, free: list[str]) -> Refinement:
    """X-ray F² and flipping ratios simulated from one model (fixed seed, 1 % noise)."""
    rng = np.random.default_rng(21)
    cr = _crystal(rng)
    models, _ = _models(rng)
    hx, hp = _hkl(3), _hkl(2)
    refl = Reflections(hkl=hx, f2=np.ones(len(hx)), sigma=np.ones(len(hx)))
    sets = [
        XrayData("x", refl, cr, XrayOptions()),
        FlippingData("p", pnd_dataset("p", hp), cr),
    ]
    ref = Refinement(cr, models, sets, basis=basis)
    p = ref.params.values.copy()
    y = sets[0].calculate(p, jacobian=False)[2]
    r = sets[1].ratios(p)
    noise = np.random.default_rng(5)
    sig_x = 0.01 * y + 0.01 * np.median(y)
    refl = Reflections(hkl=hx, f2=y + noise.normal(0, sig_x), sigma=sig_x)
    sig_p = 0.003 + 0.01 * np.abs(r - 1)
    pnd = pnd_dataset("p", hp, fr=r + noise.normal(0, sig_p), sigma=sig_p)
    cr, models = copy.deepcopy(cr), copy.deepcopy(models)
    for m in models[:2]:  # start away from the truth
        m.up.pv += 0.1
        m.dn.pv -= 0.05
    sets = [XrayData("x", refl, cr, XrayOptions()), FlippingData("p", pnd, cr)]
    ref = Refinement(cr, models, sets, basis=basis)
    ref.run([Stage("pops", free, max_cycles=30, tol=1e-6)])
    return ref


def test_su_of_a_combination_equals_the_su_refined_directly():
    """m(Cu1) = Pv↑ − Pv↓ (updown) against Cu1.Pv.spin refined as one parameter."""
    pops = ["Cu1.Pv*", "N1.Pv*"]
    ud = _simulated_refinement("updown", ["x.scale", *pops])
    cs = _simulated_refinement("chargespin", ["x.scale", *pops])
    assert ud.outcomes[-1].result.converged and cs.outcomes[-1].result.converged
    pu, pc = refinement_properties(ud), refinement_properties(cs)
    direct = cs.params
    for k, label in enumerate(["Cu1", "N1"]):
        spin_su = direct[f"{label}.Pv.spin"].su
        charge_su = direct[f"{label}.Pv"].su
        spin = direct[f"{label}.Pv.spin"].value + direct[f"{label}.P00.spin"].value  # P00 fixed
        assert pu.atoms[k].spin == pytest.approx(spin, abs=1e-6)
        assert pu.atoms[k].spin_su == pytest.approx(spin_su, rel=1e-4)
        assert pu.atoms[k].charge_su == pytest.approx(charge_su, rel=1e-4)
        assert pc.atoms[k].spin_su == pytest.approx(spin_su, rel=1e-12)
        # the correlation of Pv.up and Pv.dn matters: without it the su is far off
        s_up, s_dn = ud.params[f"{label}.Pv.up"].su, ud.params[f"{label}.Pv.dn"].su
        assert abs(np.hypot(s_up, s_dn) - spin_su) > 0.2 * spin_su
    # the sum over the asymmetric unit: Pv.spin(Cu1) + Pv.spin(N1), covariance of chargespin
    cov = cs.outcomes[-1].result.cov_p()
    names = cs.params.names
    a = np.zeros(len(names))
    a[names.index("Cu1.Pv.spin")] = a[names.index("N1.Pv.spin")] = 1.0  # weights 1 (P2_1/c)
    assert pu.spin_sums["asymmetric unit"][1] == pytest.approx(np.sqrt(a @ cov @ a), rel=1e-4)
    assert pu.spin_sums["formula unit"][1] == pytest.approx(np.sqrt(a @ cov @ a), rel=1e-4)
    text = format_properties(pu)
    assert "su from the covariance of the last stage" in text
    # without a covariance, su alone: diagonal, said so
    su = {n: ud.params[n].su for n in ud.params.names}
    diag = atomic_properties(
        ud.structure, dict(zip(ud.params.names, ud.params.values, strict=True)), su=su
    )
    assert diag.atoms[0].spin_su == pytest.approx(
        np.hypot(ud.params["Cu1.Pv.up"].su, ud.params["Cu1.Pv.dn"].su), rel=1e-12
    )
    assert "correlations are not included" in diag.note


def test_charges_against_the_electron_count_of_the_cell():
    """Σ_cell (Z − q) = F(000), and a model made neutral by F(000) has charges summing to 0."""
    rng = np.random.default_rng(2)
    cr = _crystal(rng)
    models, _ = _models(rng)
    models[1].up.plm[0] = 0.07  # P00 of a split atom counts
    models[2].plm[0] = -0.05
    sm = StructureModel(cr, models)

    def f000() -> float:
        view = sm.view("xray")
        return float(view.compute(view.engine(np.zeros((1, 3)), anomalous=False))[0][0].real)

    props = atomic_properties(sm, sm.values())
    electrons = sum(a.multiplicity * (Z[a.element] - a.charge) for a in props.atoms)
    assert electrons == pytest.approx(f000(), abs=1e-9)
    assert props.charge_sums["cell"][0] == pytest.approx(
        sum(4 * z for z in Z.values()) - f000(), abs=1e-9
    )
    # make the cell neutral by moving electrons into O1's valence shell
    models[2].pv += props.charge_sums["cell"][0] / 4
    assert f000() == pytest.approx(4 * sum(Z.values()), abs=1e-9)
    neutral = atomic_properties(sm, sm.values())
    for key in ("asymmetric unit", "cell", "formula unit"):
        assert abs(neutral.charge_sums[key][0]) < 1e-10
    assert np.isnan(neutral.charge_sums["cell"][1])  # no covariance given
    q = [a.charge for a in neutral.atoms]
    assert max(abs(x) for x in q) > 0.5  # not a trivially neutral model


@pytest.mark.parametrize("basis", ["updown", "chargespin"])
def test_d_orbital_populations_round_trip(basis):
    rng = np.random.default_rng(8)
    cr = _crystal(rng)
    models, _ = _models(rng)
    pops = {s: rng.normal(0.5, 0.3, 15) for s in ("up", "dn")}
    for s in ("up", "dn"):
        part = getattr(models[0], s)
        plm = multipoles_from_orbitals(pops[s])
        part.pv = plm[0]  # Pv is the spherical part
        plm[0] = 0.0
        plm[[1, 2, 3, 9, 10, 11]] = rng.normal(size=6)  # odd l: no d density, ignored
        part.plm = plm
    plain = hc_model("Cu", 4, rng)  # an unsplit metal: charge populations only
    charge = rng.normal(0.8, 0.2, 15)
    plm = multipoles_from_orbitals(charge)
    plain.pv, plain.plm = plm[0], plm
    plain.plm[0] = 0.37  # P00 is left out by default, included with spherical="pv+p00"
    sm = StructureModel(cr, [models[0], models[1], plain, models[3]], basis=basis)
    props = atomic_properties(sm, sm.values())
    got = {(o.label, o.part): o.values for o in props.orbitals}
    assert set(got) == {("Cu1", p) for p in ("charge", "up", "dn", "spin")} | {("O1", "charge")}
    assert np.max(np.abs(got["Cu1", "up"] - pops["up"])) < 1e-10
    assert np.max(np.abs(got["Cu1", "dn"] - pops["dn"])) < 1e-10
    assert np.max(np.abs(got["Cu1", "charge"] - pops["up"] - pops["dn"])) < 1e-10
    assert np.max(np.abs(got["Cu1", "spin"] - pops["up"] + pops["dn"])) < 1e-10
    assert np.max(np.abs(got["O1", "charge"] - charge)) < 1e-10
    with_p00 = atomic_properties(sm, sm.values(), spherical="pv+p00")
    o1 = next(o for o in with_p00.orbitals if o.label == "O1")
    assert np.sum(o1.values[:5]) == pytest.approx(np.sum(charge[:5]) + 0.37, abs=1e-12)
    md = markdown_properties(props)
    assert "| z2 |" in md and "d-orbital populations of Cu1" in md
    assert "one radial function" in md


def test_bad_input():
    rng = np.random.default_rng(1)
    cr = _crystal(rng)
    models, _ = _models(rng)
    sm = StructureModel(cr, models)
    values = dict(zip(sm.names, sm.values(), strict=True))
    del values["Cu1.Pv.dn"]
    with pytest.raises(InputError, match="no value for the parameters Cu1.Pv.dn"):
        atomic_properties(sm, values)
    with pytest.raises(InputError, match="spherical must be one of"):
        atomic_properties(sm, sm.values(), spherical="p00")
    with pytest.raises(InputError, match="covariance must be"):
        atomic_properties(sm, sm.values(), covariance=np.eye(3))
    assert isinstance(sm.models[0], SplitAtom)

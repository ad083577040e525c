"""Plausible ranges of refined parameters and the cure (issue 14, item 4)."""

from __future__ import annotations

import numpy as np

from chasm.crystal.structure import Atom, Crystal
from chasm.density.model import HansenCoppensAtom, SplitAtom
from chasm.examples.urea_model import build_models, example_structure
from chasm.refine.parameters import parameters_from_model
from chasm.refine.plausibility import RANGES, check, element_class
from chasm.refine.structure_model import StructureModel


def _urea():
    crystal = example_structure()
    models, _ = build_models(crystal)
    return crystal, models, parameters_from_model(crystal, models)


def test_a_typical_model_is_plausible():
    crystal, models, params = _urea()
    assert check(crystal, models, params) == []


def test_urea_kappa_prime_of_0_28_is_flagged_with_its_cure():
    crystal, models, params = _urea()
    params["O1.kappa_prime"].value = 0.279
    params["O1.kappa_prime"].su = 0.010
    found = check(crystal, models, params)
    assert [f.name for f in found] == ["O1.kappa_prime"]
    msg = found[0].message()
    assert "0.279(10)" in msg and "[0.75, 1.25]" in msg and "κ′" in msg and "cure" in msg


def test_within_three_su_of_the_range_is_not_flagged():
    crystal, models, params = _urea()
    params["O1.kappa_prime"].value = 0.70
    params["O1.kappa_prime"].su = 0.03  # 0.70 + 3 x 0.03 reaches 0.75
    assert check(crystal, models, params) == []
    params["O1.kappa_prime"].su = 0.01
    assert [f.name for f in check(crystal, models, params)] == ["O1.kappa_prime"]


def test_only_refined_parameters_are_judged():
    crystal, models, params = _urea()
    params["O1.kappa_prime"].value = 0.279
    assert check(crystal, models, params, refined={"C1.Pv"}) == []


def _one_atom(element, model, u_aniso=None):
    atom = Atom(label=f"{element}1", element=element, xyz=np.zeros(3), uiso=0.01)
    if u_aniso is not None:
        atom.u_aniso = np.asarray(u_aniso, dtype=float)
    crystal = Crystal.from_parts([5, 5, 5, 90, 90, 90], "P 1", [atom])
    return crystal, [model], parameters_from_model(crystal, [model])


def test_sodium_salt_charges():
    """Na Pv = -2.80 (charge +3.8) and a neutral Mg are flagged; Na+ with Pv = 0 is not."""
    crystal, models, params = _one_atom("Na", HansenCoppensAtom("Na", pv=-2.80))
    found = check(crystal, models, params)
    assert [f.name for f in found] == ["Na1 net charge"]
    assert abs(found[0].value - 3.80) < 1e-9 and "ion model" in found[0].cure
    crystal, models, params = _one_atom("Na", HansenCoppensAtom("Na", pv=0.0))
    assert check(crystal, models, params) == []
    crystal, models, params = _one_atom("Mg", HansenCoppensAtom("Mg", pv=1.95))
    assert [f.name for f in check(crystal, models, params)] == ["Mg1 net charge"]


def test_non_positive_definite_u_and_negative_uiso():
    u = [0.02, 0.02, 0.02, 0.03, 0.0, 0.0]  # U12 > U11: an eigenvalue below zero
    crystal, models, params = _one_atom("C", HansenCoppensAtom("C", pv=4.0), u_aniso=u)
    assert [f.name for f in check(crystal, models, params)] == ["C1.U (eigenvalue)"]
    crystal, models, params = _one_atom("H", HansenCoppensAtom("H", pv=1.0, kappa=1.2))
    params["H1.Uiso"].value = -0.0022
    assert [f.name for f in check(crystal, models, params)] == ["H1.Uiso"]


def test_spin_beyond_the_electrons_is_flagged():
    up = HansenCoppensAtom("Cu", pv=30.0)
    dn = HansenCoppensAtom("Cu", pv=-2.0)
    crystal, models, _ = _one_atom("Cu", SplitAtom(up, dn))
    params = StructureModel(crystal, models).parameters()  # Cu1.Pv.up, Cu1.Pv.dn, ...
    names = [f.name for f in check(crystal, models, params)]
    assert "Cu1 spin population" in names


def test_every_class_has_every_core_range():
    for element in ("H", "C", "Na", "Mg", "Cu"):
        cls = element_class(element)
        for quantity in ("kappa", "kappa_prime", "charge", "Uiso", "U_eig", "Plm"):
            assert any(
                r.quantity == quantity and (cls in r.classes or "*" in r.classes) for r in RANGES
            ), (element, quantity)


def test_the_docs_table_is_the_code_table():
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "physics.md").read_text(encoding="utf-8")
    for r in RANGES:
        row = f"| {r.quantity} | {', '.join(r.classes)} | {r.lo:g} | {r.hi:g} | {r.cure} |"
        assert row in text, row


def test_magnetic_moment_and_runaway_susceptibility_are_named():
    """A Ho moment above g_J·J = 10 μB and a χ of −229(28) μB/T are flagged (issue 17, item 5)."""
    from chasm.neutron.magnetic_ff import hund_moment, max_moment
    from chasm.refine.parameters import Parameter, Parameters

    # Hund's rules by hand: Ho³⁺ 4f10 S = 2, L = 6, J = 8, g_J = 5/4
    assert hund_moment(3, 10) == (2.0, 6.0, 8.0, 10.0)
    assert max_moment("Ho") == 10.0 and max_moment("Gd") == 7.0 and max_moment("O") is None
    crystal = Crystal.from_parts(
        (10.1, 10.1, 10.1, 90, 90, 90),
        "P 1",
        [Atom("Ho1", "Ho", [0, 0, 0], uiso=0.01), Atom("Ti1", "Ti", [0.5, 0.5, 0.5], uiso=0.01)],
    )
    models = [None, None]
    params = Parameters(
        [
            Parameter("Ho1.moment", 10.9, su=0.1),
            Parameter("Ti1.chi11", -229.0, su=28.0),
            Parameter("Ti1.chi12", 0.5, su=0.1),
            Parameter("Ho1.chi_iso", 9.0, su=1.0),
        ]
    )
    found = {f.name: f for f in check(crystal, models, params)}
    assert set(found) == {"Ho1.moment", "Ti1.chi11"}
    assert found["Ho1.moment"].hi == 10.0
    assert "Ti1.chi11 = " in found["Ti1.chi11"].message()
    assert "runaway susceptibility" in found["Ti1.chi11"].message()
    # within 3 su of g_J·J: not flagged
    params2 = Parameters([Parameter("Ho1.moment", 10.2, su=0.1)])
    assert check(crystal, models, params2) == []


def test_negative_extinction_is_flagged_beyond_three_su():
    """A data set's EXTI below 0 by more than 3 su is named with its cure; at 0 it is not."""
    from chasm.refine.parameters import Parameter, Parameters

    crystal, models, params = _urea()
    for value, su, flagged in ((-0.05, 0.01, True), (-0.02, 0.01, False), (0.09, 0.007, False)):
        extra = Parameters([*params, Parameter("xray.extinction", value, su=su)])
        found = check(crystal, models, extra)
        assert [f.name for f in found] == (["xray.extinction"] if flagged else []), value
        if flagged:
            msg = found[0].message()
            assert "data set xray" in msg and "[0, inf]" in msg and 'extinction = "none"' in msg

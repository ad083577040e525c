"""Named parameters: selection patterns, fix/free, errors, model round trip."""

from __future__ import annotations

import numpy as np
import pytest

from chasm.crystal.structure import Atom, Crystal
from chasm.density.model import HansenCoppensAtom, SphericalAtom
from chasm.errors import InputError
from chasm.refine.parameters import (
    Parameter,
    Parameters,
    UnknownNameError,
    apply_values,
    atom_parameter_names,
    column_names,
    parameters_from_model,
)
from chasm.scattering.engine import StructureFactorEngine


def urea_like():
    """Urea-like P-421m structure: anisotropic and isotropic, HC and IAM atoms."""
    atoms = [
        Atom("C1", "C", [0.0, 0.5, 0.326], u_aniso=[0.012, 0.012, 0.008, 0.001, 0.0, 0.0]),
        Atom("O1", "O", [0.0, 0.5, 0.5953], u_aniso=[0.015, 0.015, 0.006, 0.002, 0.0, 0.0]),
        Atom("N1", "N", [0.1459, 0.6459, 0.1766], u_aniso=[0.02, 0.02, 0.01, -0.01, 0.001, 0.001]),
        Atom("H1", "H", [0.2575, 0.7575, 0.2827], uiso=0.03),
        Atom("H2", "H", [0.1441, 0.6441, -0.0380], uiso=0.03),
    ]
    crystal = Crystal.from_parts((5.565, 5.565, 4.684, 90, 90, 90), "P -4 21 m", atoms)
    rng = np.random.default_rng(1)
    models = [
        HansenCoppensAtom("C", 4.0, 1.01, 4, rng.normal(size=25) * 0.1, 0.95),
        HansenCoppensAtom("O", 6.2, 0.98, 3, rng.normal(size=16) * 0.1, 1.02),
        HansenCoppensAtom("N", 5.1, 0.99, 2, rng.normal(size=9) * 0.1, 0.97),
        HansenCoppensAtom("H", 0.9, 1.2, 1, rng.normal(size=4) * 0.1, 1.2),
        SphericalAtom("H"),
    ]
    return crystal, models


@pytest.fixture
def params():
    crystal, models = urea_like()
    return parameters_from_model(crystal, models)


def test_names_match_engine_columns():
    crystal, models = urea_like()
    p = parameters_from_model(crystal, models)
    engine = StructureFactorEngine(crystal, models, [[1, 0, 0]])
    assert p.names == engine.parameter_names
    assert column_names(crystal, models) == engine.parameter_names
    assert p["C1.z"].value == pytest.approx(0.326)
    assert p["O1.U33"].value == pytest.approx(0.006)
    assert p["H1.Uiso"].value == pytest.approx(0.03)
    assert p["C1.P00"].value == models[0].plm[0]
    assert p["N1.P22-"].value == models[2].plm[8]
    assert p["H1.kappa_prime"].value == pytest.approx(1.2)
    assert "H2.Pv" not in p and "H2.occ" in p
    assert p.free_mask.all()


def test_round_trip_apply_values():
    crystal, models = urea_like()
    p = parameters_from_model(crystal, models)
    rng = np.random.default_rng(5)
    new = p.values + rng.normal(scale=1e-3, size=len(p))
    p.set_values(new)
    p.add("xray.scale", 2.5)  # extra, non-atomic entries are ignored
    apply_values(p, crystal, models)
    again = parameters_from_model(crystal, models)
    np.testing.assert_array_equal(again.values, new)
    # Ueq follows the new U_cif; an isotropic atom keeps its Uiso
    assert crystal.atoms[0].uiso == pytest.approx(
        np.mean(new[[p.index("C1.U11"), p.index("C1.U22"), p.index("C1.U33")]]), rel=1e-12
    )
    assert crystal.atoms[3].uiso == new[p.index("H1.Uiso")]


def test_apply_values_missing_name():
    crystal, models = urea_like()
    p = Parameters([q for q in parameters_from_model(crystal, models) if q.name != "N1.P20"])
    with pytest.raises(UnknownNameError, match="N1.P20"):
        apply_values(p, crystal, models)


def test_tags_suffix_groups():
    crystal, models = urea_like()
    p = parameters_from_model(crystal, models, tags={"adp": "N", "multipole": "up"})
    assert "O1.U11.N" in p and "H1.Uiso.N" in p and "C1.P21-.up" in p and "C1.kappa_prime.up" in p
    assert "C1.x" in p and "C1.Pv" in p
    names = atom_parameter_names(crystal.atoms[0], models[0], {"adp": "N"})
    assert names["U11"] == "C1.U11.N" and names["x"] == "C1.x"
    with pytest.raises(InputError, match="unknown parameter group"):
        parameters_from_model(crystal, models, tags={"adps": "N"})


def test_model_count_mismatch():
    crystal, models = urea_like()
    with pytest.raises(InputError, match="5 atoms but 4"):
        parameters_from_model(crystal, models[:4])


def test_select_exact_glob_and_lists(params):
    assert params.select("C1.x") == ["C1.x"]
    multipoles = ["N1.P00", "N1.P10", "N1.P11+", "N1.P11-"] + [
        f"N1.P2{s}" for s in ("0", "1+", "1-", "2+", "2-")
    ]
    # plain shell semantics: "P*" also matches Pv; "P[0-9]*" is the multipoles only
    assert params.select("N*.P*") == ["N1.Pv"] + multipoles
    assert params.select("N*.P[0-9]*") == multipoles
    assert params.select("H*.U*") == ["H1.Uiso", "H2.Uiso"]
    assert params.select("*.kappa") == ["C1.kappa", "O1.kappa", "N1.kappa", "H1.kappa"]
    # comma-separated: token order, glob matches in parameter order, no duplicates
    assert params.select("O1.z, C1.x,C1.*y") == ["O1.z", "C1.x", "C1.y"]
    assert params.select(["C1.x", "C1.?"]) == ["C1.x", "C1.y", "C1.z"]
    assert params.select("C1.U1[12]") == ["C1.U11", "C1.U12"]


def test_fix_and_free(params):
    fixed = params.fix("*.x,*.y,*.z")
    assert len(fixed) == 15
    assert not params["N1.y"].free and params["N1.U11"].free
    assert params.free_mask.sum() == len(params) - 15
    params.free("C1.z")
    assert params["C1.z"].free
    assert "C1.z" in params.free_names and "C1.x" not in params.free_names


def test_unknown_pattern_messages(params):
    with pytest.raises(UnknownNameError, match="'C1.kapa'.*C1.kappa"):
        params.select("C1.kapa")
    with pytest.raises(InputError, match="no label matches 'Cu\\*'"):
        params.fix("Cu*.P*")
    with pytest.raises(InputError, match="no parameter kind matches 'Pc'.*Pv"):
        params.select("N*.Pc")
    with pytest.raises(InputError, match="case-sensitive"):
        params.select("c1.x")
    with pytest.raises(KeyError):  # also a KeyError, for dict-like use
        params["C9.x"]
    with pytest.raises(InputError, match="'C9.x'"):
        params.free("C1.x, C9.x")
    with pytest.raises(InputError, match="empty"):
        params.select(" , ")


def test_add_validation_and_vectors():
    p = Parameters()
    p.add("a", 1.0)
    p.add("b", 2.0, free=False, bounds=(0.0, 1.0))
    with pytest.raises(InputError, match="twice"):
        p.add("a", 3.0)
    for bad in ("", "a b", "x,y", "k*"):
        with pytest.raises(InputError, match="invalid parameter name"):
            p.add(bad, 0.0)
    with pytest.raises(InputError, match="reversed"):
        Parameter("c", 0.0, bounds=(1.0, 0.0))
    np.testing.assert_array_equal(p.values, [1.0, 2.0])
    assert p.free_mask.tolist() == [True, False]
    with pytest.raises(InputError, match="expected 2 values"):
        p.set_values([1.0])
    assert p.check_bounds() == ["b = 2 is outside its plausible range [0, 1]"]
    p.set_su([0.1, np.nan])
    assert p["a"].su == 0.1 and p["b"].su is None
    assert np.isnan(p.su[1])
    q = p.copy()
    q["a"].value = 9.0
    assert p["a"].value == 1.0
    assert [x.name for x in p] == ["a", "b"] and len(p) == 2 and p.index("b") == 1


def test_default_bounds_warn(params):
    assert params.check_bounds() == []
    params["C1.kappa"].value = 3.0
    params["H1.occ"].value = -0.1
    msgs = params.check_bounds()
    assert len(msgs) == 2 and "C1.kappa" in msgs[0] and "H1.occ" in msgs[1]

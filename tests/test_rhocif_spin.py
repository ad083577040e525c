"""rhoCIF spin extension: split atoms and the neutron ADP set, written and read back.

The round trip must be exact (same doubles) for random spin populations, κ,
κ' and share flags, for the values of both parameter bases of a
StructureModel; the standard items must hold the charge model (checked
against SplitAtom.charge_model, and by reading the file with every _chasm_
item removed, as another program would); hand-edited inconsistencies are
refused with the file and line.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from gemmi import cif

from chasm.density.model import HansenCoppensAtom, SphericalAtom, SplitAtom
from chasm.errors import InputError
from chasm.io.rhocif import read_rhocif, read_rhocif_adp_sets, read_rhocif_su, write_rhocif
from chasm.refine.structure_model import StructureModel
from engine_helpers import hc_model
from test_joint_model import _crystal


def _case(rng, share=(False, False)):
    cr = _crystal(rng)  # Cu1, N1, O1 (anisotropic), H1 in P2_1/c
    cu = SplitAtom.from_charge_and_spin(
        hc_model("Cu", 4, rng), rng.normal(0.8, 0.1), rng.normal(scale=0.05, size=25)
    )
    cu.up.kappa, cu.dn.kappa = rng.uniform(0.9, 1.1, 2)
    cu.up.kappa_prime, cu.dn.kappa_prime = rng.uniform(0.8, 1.2, 2)
    n = SplitAtom.from_charge_and_spin(
        hc_model("N", 2, rng), 0.1, rng.normal(scale=0.01, size=9), *share
    )
    n.up.pv += rng.normal(scale=0.1)  # not an exact half any more
    models = [cu, n, hc_model("O", 3, rng), SphericalAtom("H")]
    return cr, models


def _same_hc(a: HansenCoppensAtom, b: HansenCoppensAtom) -> None:
    assert type(a) is type(b)
    for name in ("element", "pv", "kappa", "lmax", "kappa_prime", "n_l", "zeta", "pc", "charge"):
        assert getattr(a, name) == getattr(b, name), name
    assert (a.valence or None) == (b.valence or None)
    assert np.array_equal(a.plm, b.plm) and np.array_equal(a.frame, b.frame)
    assert (a.axes is None) == (b.axes is None)
    if a.axes is not None:
        assert a.axes.as_text().upper() == b.axes.as_text().upper()


def _same_split(a: SplitAtom, b: SplitAtom) -> None:
    assert isinstance(b, SplitAtom)
    assert (a.pc, a.share_kappa, a.share_kappa_prime) == (b.pc, b.share_kappa, b.share_kappa_prime)
    _same_hc(a.up, b.up)
    _same_hc(a.dn, b.dn)


@pytest.mark.parametrize("share", [(False, False), (True, True), (True, False)])
def test_split_atoms_round_trip_exactly(tmp_path, share):
    rng = np.random.default_rng(7 + sum(share))
    cr, models = _case(rng, share)
    path = tmp_path / "spin.cif"
    write_rhocif(path, cr, models)
    cr2, back = read_rhocif(path)
    _same_split(models[0], back[0])
    _same_split(models[1], back[1])
    _same_hc(models[2], back[2])
    assert isinstance(back[3], SphericalAtom)
    # write -> read -> write is byte-identical
    path2 = tmp_path / "again.cif"
    write_rhocif(path2, cr2, back)
    assert path2.read_text() == path.read_text()


@pytest.mark.parametrize("basis", ["updown", "chargespin"])
def test_structure_model_values_survive_in_both_bases(tmp_path, basis):
    """Random values of every parameter of a StructureModel (incl. the N set) round trip."""
    rng = np.random.default_rng(11)
    cr, models = _case(rng, (True, False))
    sm = StructureModel(cr, models, adp_sets=["N"], basis=basis)
    p = sm.parameters()
    v = p.values.copy()
    for k, name in enumerate(p.names):
        if name.endswith(".occ"):
            continue
        v[k] += rng.normal(scale=0.003 if ".U" in name else 0.05)
    p.set_values(v)
    sm.apply(p)
    su = {name: float(abs(rng.normal(scale=0.01))) for name in p.names if not name.endswith("occ")}
    path = tmp_path / "sm.cif"
    write_rhocif(path, cr, sm.models, su=su, adp_sets=sm.adp)
    cr2, back = read_rhocif(path)
    sm2 = StructureModel(cr2, back, adp_sets=read_rhocif_adp_sets(path), basis=basis)
    assert sm2.names == sm.names
    assert np.array_equal(sm2.values(), sm.values())
    assert read_rhocif_su(path) == su


@pytest.mark.filterwarnings("ignore:.*no _atom_local_axes_ row")
def test_standard_items_hold_the_charge_model(tmp_path):
    rng = np.random.default_rng(3)
    cr, models = _case(rng)
    path = tmp_path / "spin.cif"
    write_rhocif(path, cr, models)
    text = path.read_text()
    assert "_chasm_atom_rho_spin_id" in text and " Cu1.up " in text and " Cu1.dn " in text
    # what another program sees: the file without any _chasm_ item (pairs and loops)
    doc = cif.read(str(path))
    block = doc.sole_block()
    for item in list(block):
        tag = item.pair[0] if item.pair is not None else item.loop.tags[0]
        if tag.startswith("_chasm_"):
            item.erase()
    other = tmp_path / "other.cif"
    doc.write_file(str(other))
    assert not re.search(r"^\s*_chasm_", other.read_text(), re.M)
    _, read = read_rhocif(other)
    for m, r in zip(models[:2], read[:2], strict=True):
        charge = m.charge_model()
        assert isinstance(r, HansenCoppensAtom)
        assert r.pv == charge.pv and np.array_equal(r.plm, charge.plm)
        assert r.kappa == m.up.kappa and r.kappa_prime == m.up.kappa_prime and r.pc == m.pc
        assert r.zeta == pytest.approx(charge.zeta, rel=1e-12)
        # charge = up + down, computed here independently of charge_model
        assert r.pv == pytest.approx(m.up.pv + m.dn.pv, abs=0, rel=1e-15)
        assert np.allclose(r.plm, m.up.plm + m.dn.plm, rtol=0, atol=1e-15)


def _spin_row_edit(path, key: str, column: int, value: str) -> None:
    text = path.read_text()
    lines = text.split("\n")
    k = next(i for i, x in enumerate(lines) if x.startswith(f" {key} "))
    parts = lines[k].split()
    parts[column] = value
    lines[k] = " " + " ".join(parts)
    path.write_text("\n".join(lines))


@pytest.mark.parametrize(
    "key,column,value,words",
    [
        ("Cu1.up", 2, "5.0", "Pv of the charge model"),
        ("Cu1.dn", 1, "0.9", "disagree on coeff_Pc"),
        ("N1.dn", -1, "maybe", "share_kappa_prime must be yes or no"),
        ("Cu1.dn", 0, "Cu1.side", "expected <label>.up or <label>.dn"),
    ],
)
def test_inconsistent_spin_rows_are_refused(tmp_path, key, column, value, words):
    rng = np.random.default_rng(5)
    cr, models = _case(rng)
    path = tmp_path / "spin.cif"
    write_rhocif(path, cr, models)
    _spin_row_edit(path, key, column, value)
    with pytest.raises(InputError) as exc:
        read_rhocif(path)
    assert words in exc.value.message
    assert exc.value.path == str(path) and exc.value.line is not None


def test_missing_spin_rows_and_neutron_set_errors(tmp_path):
    rng = np.random.default_rng(9)
    cr, models = _case(rng)
    path = tmp_path / "spin.cif"
    sm = StructureModel(cr, models, adp_sets=["N"])
    write_rhocif(path, cr, models, adp_sets=sm.adp)
    text = path.read_text()
    path.write_text(re.sub(r"\n N1\.(up|dn) [^\n]*", "", text))
    with pytest.raises(InputError, match=r"kind 'hc_split' needs two rows \(N1.up, N1.dn\)"):
        read_rhocif(path)
    # the neutron set: an X-ray-anisotropic atom given without neutron U_ij
    k = text.index("_chasm_atom_site_aniso_neutron_U_23")
    path.write_text(text[:k] + re.sub(r"\n O1 [^\n]*", "", text[k:], count=1))
    with pytest.raises(InputError, match="anisotropic exactly when"):
        read_rhocif_adp_sets(path)
    with pytest.raises(ValueError, match="only the neutron set 'N'"):
        write_rhocif(tmp_path / "x.cif", cr, models, adp_sets={"N2": sm.adp["N"]})
    # no neutron items: empty
    write_rhocif(tmp_path / "plain.cif", cr, models)
    assert read_rhocif_adp_sets(tmp_path / "plain.cif") == {}

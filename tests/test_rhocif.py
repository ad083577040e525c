"""Tests of rhoCIF output and input (chasm.io.rhocif)."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
from gemmi import cif

from chasm.crystal.cif import read_cif
from chasm.crystal.structure import Atom, Crystal
from chasm.density.frames import LocalAxes
from chasm.density.harmonics import lm_labels
from chasm.density.model import HansenCoppensAtom, SphericalAtom
from chasm.density.radial import BOHR, default_slater
from chasm.errors import InputError
from chasm.io.rhocif import read_rhocif, read_rhocif_su, rhocif_text, write_rhocif
from chasm.scattering.engine import StructureFactorEngine, atom_columns
from engine_helpers import random_hkl, random_rotation, random_u_cif

EXTRA = {"_refine_ls_R_factor_gt": "0.0213", "_refine_special_details": "two\nlines"}


# --------------------------------------------------------------------------- helpers
def same_bits(a, b) -> bool:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return a.shape == b.shape and a.tobytes() == b.tobytes()


def assert_same_crystal(c1: Crystal, c2: Crystal) -> None:
    assert c2.name == c1.name
    assert same_bits(c1.cell.parameters, c2.cell.parameters)
    assert (c1.spacegroup is None) == (c2.spacegroup is None)
    if c1.spacegroup is not None:
        assert c2.spacegroup.hall == c1.spacegroup.hall
    assert np.array_equal(c1.rotations, c2.rotations)
    assert same_bits(c1.translations, c2.translations)
    assert c2.wavelength == c1.wavelength
    assert list(c2.dispersion.items()) == list(c1.dispersion.items())
    nan6 = (math.nan,) * 6
    assert same_bits(c1.cell_su or nan6, c2.cell_su or nan6)
    assert len(c2.atoms) == len(c1.atoms)
    for a1, a2 in zip(c1.atoms, c2.atoms, strict=True):
        assert (a2.label, a2.element, a2.charge, a2.type_symbol) == (
            a1.label,
            a1.element,
            a1.charge,
            a1.type_symbol,
        )
        assert same_bits(a1.xyz, a2.xyz)
        assert same_bits(a1.occupancy, a2.occupancy) and same_bits(a1.uiso, a2.uiso)
        assert (a1.u_aniso is None) == (a2.u_aniso is None)
        if a1.u_aniso is not None:
            assert same_bits(a1.u_aniso, a2.u_aniso)


def assert_same_models(m1: list, m2: list) -> None:
    assert len(m1) == len(m2)
    for a, b in zip(m1, m2, strict=True):
        assert type(a) is type(b)
        if isinstance(a, SphericalAtom):
            assert a == b
            continue
        for name in ("pv", "kappa", "kappa_prime", "zeta", "pc", "plm", "frame"):
            assert same_bits(getattr(a, name), getattr(b, name)), name
        assert (a.element, a.lmax, a.n_l, a.charge, a.valence) == (
            b.element,
            b.lmax,
            b.n_l,
            b.charge,
            b.valence,
        )
        # axis names come back upper case ('x' -> 'X'): compare the normalised text
        assert (a.axes and a.axes.as_text()) == (b.axes and b.axes.as_text())


def strip_chasm_items(text: str) -> str:
    """The same file as another program would write it: no _chasm_ items."""
    kept = []
    for part in text.split("\n\n"):
        if part.startswith("loop_\n _chasm_"):
            continue
        kept.append("\n".join(x for x in part.split("\n") if not x.startswith(("_chasm_", "#"))))
    return "\n\n".join(kept)


def mixed_crystal(rng: np.random.Generator):
    """P 31 2 1 (no inversion), iso/aniso atoms, IAM and HC atoms with lmax -1..4."""
    elements = ["Cu", "O", "N", "C", "H", "O", "S", "H"]
    atoms = []
    for k, el in enumerate(elements):
        charge = 2 if el == "Cu" else 0
        atoms.append(
            Atom(
                f"{el}{k + 1}",
                el,
                rng.uniform(-0.1, 1.1, size=3),
                occupancy=float(rng.uniform(0.5, 1.0)),
                uiso=float(rng.uniform(0.01, 0.05)),
                charge=charge,
                type_symbol="Cu2+" if charge else el,
            )
        )
    crystal = Crystal.from_parts(
        (6.1 + rng.random(), 6.1, 9.3 + rng.random(), 90, 90, 120),
        "P 31 2 1",
        atoms,
        name="mixed_test",
        dispersion={"Cu": (0.3 + rng.random(), 1.2 + rng.random()), "O": (0.011, 0.006)},
        wavelength=0.71073,
    )
    for a in crystal.atoms[:4]:
        a.u_aniso = random_u_cif(crystal, rng)
    crystal.cell_su = (1e-4, 1e-4, 2e-4, math.nan, math.nan, math.nan)
    labels = [a.label for a in crystal.atoms]

    def hc(el, lmax, axes=None, **kw):
        return HansenCoppensAtom(
            el,
            pv=float(rng.uniform(2, 7)),
            kappa=float(rng.uniform(0.9, 1.1)),
            lmax=lmax,
            plm=rng.normal(scale=0.2, size=(lmax + 1) ** 2),
            kappa_prime=float(rng.uniform(0.8, 1.2)),
            frame=random_rotation(rng),
            axes=axes,
            **kw,
        )

    models = [
        hc("Cu", 4, LocalAxes(labels[1], "Z", labels[0], labels[2], "X"), charge=2,
           valence=["3d", "4s"], n_l=(6, 6, 6, 6, 6), zeta=8.8004 / BOHR, pc=0.98),
        hc("O", 3, LocalAxes(labels[0], "x", labels[1], labels[3], "y")),
        SphericalAtom("N", "koga", -1),
        hc("C", 2, LocalAxes(labels[1], "Y", labels[3], labels[2], "Z", right_handed=False)),
        SphericalAtom("H"),
        hc("O", 1, valence=[]),
        hc("S", -1, zeta=float(rng.uniform(3, 5))),
        hc("H", 0, n_l=(1, 1, 2, 3, 4)),
    ]  # fmt: skip
    su = {}
    for atom, model in zip(crystal.atoms, models, strict=True):
        for kind, _ in atom_columns(atom, model):
            su[f"{atom.label}.{kind}"] = float(rng.uniform(1e-5, 1e-2))
    su[f"{labels[1]}.Pc"] = math.nan
    return crystal, models, su


@pytest.fixture(scope="module")
def urea_hc(shared_data):
    """Real urea (P -4 21 m) with HC atoms whose frames come from LocalAxes."""
    crystal = read_cif(shared_data / "xray" / "urea" / "iam.cif")
    axes = {
        "O": LocalAxes("C", "Z", "O", "N", "X"),
        "C": LocalAxes("O", "Z", "C", "N", "X"),
        "N": LocalAxes("C", "X", "N", "H1", "Y"),
        "H1": LocalAxes("N", "Z", "H1", "C", "X"),
        "H2": LocalAxes("N", "Z", "H2", "C", "X"),
    }
    rng = np.random.default_rng(5)
    pv = {"O": 6.2, "N": 5.1, "C": 3.8, "H": 0.8}
    models = []
    for i, atom in enumerate(crystal.atoms):
        lmax = 1 if atom.element == "H" else 4
        models.append(
            HansenCoppensAtom(
                atom.element,
                pv[atom.element],
                kappa=float(rng.uniform(0.97, 1.03)),
                lmax=lmax,
                plm=rng.normal(scale=0.1, size=(lmax + 1) ** 2),
                kappa_prime=float(rng.uniform(0.85, 1.15)),
                frame=axes[atom.label].matrix(crystal, i),
                axes=axes[atom.label],
            )
        )
    return crystal, models


# --------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("seed", [0, 1])
def test_exact_round_trip_mixed(tmp_path, seed):
    crystal, models, su = mixed_crystal(np.random.default_rng(seed))
    first = tmp_path / "first.cif"
    write_rhocif(first, crystal, models, su=su, extra=EXTRA)
    crystal2, models2 = read_rhocif(first)
    su2 = read_rhocif_su(first)
    assert_same_crystal(crystal, crystal2)
    assert_same_models(models, models2)
    assert list(su2) == list(su)
    assert same_bits(list(su.values()), list(su2.values()))
    # su's of the structure also land on Atom.su and Crystal.cell_su
    cu = crystal2.atoms[0]
    assert same_bits(
        cu.su["u_aniso"], [su[f"Cu1.{k}"] for k in ("U11", "U22", "U33", "U12", "U13", "U23")]
    )
    assert cu.su["occupancy"] == su["Cu1.occ"] and cu.su["xyz"][2] == su["Cu1.z"]
    assert same_bits(crystal2.cell_su, crystal.cell_su)
    second = tmp_path / "second.cif"
    write_rhocif(second, crystal2, models2, su=su2, extra=EXTRA)
    assert second.read_bytes() == first.read_bytes()


def test_round_trip_without_su_or_extra(tmp_path):
    crystal, models, _ = mixed_crystal(np.random.default_rng(7))
    crystal.cell_su = None
    crystal.wavelength = None
    crystal.dispersion = {}
    path = tmp_path / "bare.cif"
    write_rhocif(path, crystal, models)
    text = path.read_text()
    assert "_chasm_su_" not in text and "_chasm_cell" not in text and "_atom_type_" not in text
    crystal2, models2 = read_rhocif(path)
    assert_same_crystal(crystal, crystal2)
    assert_same_models(models, models2)
    write_rhocif(tmp_path / "again.cif", crystal2, models2)
    assert (tmp_path / "again.cif").read_bytes() == path.read_bytes()


def test_urea_structure_factors_survive_round_trip(tmp_path, urea_hc):
    crystal, models = urea_hc
    hkl = random_hkl(300, np.random.default_rng(3), hmax=7)
    before = StructureFactorEngine(crystal, models, hkl).compute().F
    path = tmp_path / "urea.cif"
    write_rhocif(path, crystal, models)
    crystal2, models2 = read_rhocif(path)
    assert_same_crystal(crystal, crystal2)
    assert_same_models(models, models2)
    after = StructureFactorEngine(crystal2, models2, hkl).compute().F
    assert same_bits(before.real, after.real) and same_bits(before.imag, after.imag)

    # Read as plain rhoCIF (no _chasm_ items): frames rebuilt from the local axes and
    # zeta converted from 1/bohr give the same structure factors to rounding.
    plain = tmp_path / "plain.cif"
    plain.write_text(strip_chasm_items(path.read_text()))
    assert "_chasm_" not in plain.read_text()
    crystal3, models3 = read_rhocif(plain)
    for m, m3 in zip(models, models3, strict=True):
        assert m3.axes == m.axes and m3.lmax == m.lmax and m3.n_l == m.n_l
        np.testing.assert_allclose(m3.frame, m.frame, atol=1e-14)
        assert m3.zeta == pytest.approx(m.zeta, rel=1e-14)
        assert same_bits(m3.plm, m.plm)
    plain_f = StructureFactorEngine(crystal3, models3, hkl).compute().F
    np.testing.assert_allclose(plain_f, before, rtol=1e-11, atol=1e-11)


def test_population_names_and_zeta_unit_in_file():
    atoms = [Atom("C1", "C", [0.1, 0.2, 0.3], uiso=0.02)]
    crystal = Crystal.from_parts((5, 6, 7, 90, 90, 90), "P 21 21 21", atoms)
    plm = np.zeros(9)
    plm[lm_labels(2).index("11+")] = 0.25
    plm[lm_labels(2).index("11-")] = -0.5
    plm[lm_labels(2).index("22-")] = 0.125
    model = HansenCoppensAtom("C", 4.0, lmax=2, plm=plm, zeta=6.0)
    block = cif.read_string(rhocif_text(crystal, [model])).sole_block()

    def value(tag):
        return cif.as_string(block.find_value(tag))

    assert value("_atom_rho_multipole_coeff_P11") == "0.25"
    assert value("_atom_rho_multipole_coeff_P1-1") == "-0.5"
    assert value("_atom_rho_multipole_coeff_P2-2") == "0.125"
    assert value("_atom_rho_multipole_coeff_P22") == "0.0"
    assert block.find_value("_atom_rho_multipole_coeff_P30") is None
    for l in range(5):  # zeta in 1/bohr in the dictionary items, 1/A in chasm's own
        assert float(value(f"_atom_rho_multipole_radial_slater_zeta{l}")) == 6.0 * BOHR
    assert value("_chasm_atom_model_zeta") == "6.0"


# --------------------------------------------------------------------------- foreign rhoCIF
FOREIGN = """\
data_foreign
_cell_length_a 5.565(2)
_cell_length_b 5.565(2)
_cell_length_c 4.684(3)
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P -4 21 m'
loop_
_atom_site_label
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_U_iso_or_equiv
_atom_site_type_symbol
C1 0.0 0.5 0.326(1) 0.012 C
O1 0.0 0.5 0.5953 0.015 O
N1 0.1459 0.6459 0.1766 0.02 N
H1 0.2575 0.7575 0.2827 0.03 H
loop_
_atom_local_axes_atom_label
_atom_local_axes_atom0
_atom_local_axes_ax1
_atom_local_axes_atom1
_atom_local_axes_atom2
_atom_local_axes_ax2
C1 O1 Z C1 N1 X
N1 C1 -x N1 H1 +Y
O1 C1 Z O1 N1 X
loop_
_atom_rho_multipole_atom_label
_atom_rho_multipole_coeff_Pv
_atom_rho_multipole_coeff_P00
_atom_rho_multipole_coeff_P10
_atom_rho_multipole_coeff_P11
_atom_rho_multipole_coeff_P1_1
_atom_rho_multipole_coeff_P20
_atom_rho_multipole_coeff_P21
_atom_rho_multipole_coeff_P2-1
_atom_rho_multipole_coeff_P22
_atom_rho_multipole_coeff_P2-2
_atom_rho_multipole_kappa
_atom_rho_multipole_kappa_prime0
_atom_rho_multipole_kappa_prime1
_atom_rho_multipole_kappa_prime2
_atom_rho_multipole_kappa_prime3
_atom_rho_multipole_kappa_prime4
_atom_rho_multipole_radial_slater_n0
_atom_rho_multipole_radial_slater_zeta0
_atom_rho_multipole_radial_slater_n1
_atom_rho_multipole_radial_slater_zeta1
_atom_rho_multipole_radial_slater_n2
_atom_rho_multipole_radial_slater_zeta2
C1 4.05(3) 0.01 0.1 0.2 -0.3 0.05 0.06 0.07 0.08 0.09
   1.01(1) 0.9(2) 0.9 0.9 1.0 1.0 2 3.0 2 3.0 2 3.0
O1 6.1 0 0.03 0.04 0.05 . . . . . 0.98 0.95 0.95 1.0 1.0 1.0 2 4.5 2 4.5 3 1.0
N1 5.0 ? ? ? ? ? ? ? ? ? 1.0 1.0 1.0 1.0 1.0 1.0 2 3.8 2 3.8 2 3.8
"""


@pytest.fixture()
def foreign(tmp_path) -> Path:
    path = tmp_path / "foreign.cif"
    path.write_text(FOREIGN)
    return path


def test_foreign_rhocif(foreign):
    crystal, models = read_rhocif(foreign)
    assert [a.label for a in crystal.atoms] == ["C1", "O1", "N1", "H1"]
    c1, o1, n1, h1 = models
    assert h1 == SphericalAtom("H")  # no multipole row: IAM
    # C1: lmax 2 from the columns; P11 -> 11+, P1_1 (alias of P1-1) -> 11-
    assert c1.lmax == 2 and c1.pv == 4.05 and c1.kappa == 1.01 and c1.kappa_prime == 0.9
    labels = ["00", "10", "11+", "11-", "20", "21+", "21-", "22+", "22-"]
    values = [0.01, 0.1, 0.2, -0.3, 0.05, 0.06, 0.07, 0.08, 0.09]
    expected = dict(zip(labels, values, strict=True))
    assert dict(zip(lm_labels(2), c1.plm.tolist(), strict=True)) == expected
    assert c1.pc == 1.0 and c1.charge == 0 and c1.valence is None
    assert c1.zeta == 3.0 / BOHR  # the dictionary items are in 1/bohr
    n_default, zeta_default = default_slater("C")
    assert c1.n_l == (2, 2, 2) + n_default[3:]  # missing n3, n4: defaults
    assert c1.axes == LocalAxes("O1", "Z", "C1", "N1", "X")
    np.testing.assert_array_equal(c1.frame, c1.axes.matrix(crystal, 0))
    # O1: populations only up to l = 1 ('.' above); kappa' and zeta of l > lmax ignored
    assert o1.lmax == 1 and o1.kappa_prime == 0.95 and o1.zeta == 4.5 / BOHR
    np.testing.assert_array_equal(o1.plm, [0.0, 0.03, 0.04, 0.05])
    # N1: no populations at all -> lmax -1, no frame needed
    assert n1.lmax == -1 and n1.pv == 5.0 and n1.zeta == 3.8 / BOHR
    # N1 axes '-x' and '+Y': X points from C1 to N1, Y as usual, Z = X x Y
    plain = LocalAxes("C1", "X", "N1", "H1", "Y").matrix(crystal, 2)
    np.testing.assert_allclose(n1.frame, plain @ np.diag([-1.0, 1.0, -1.0]), atol=1e-15)
    assert np.linalg.det(n1.frame) == pytest.approx(1.0) and n1.axes is None
    # su's written in parentheses come back by chasm parameter name
    su = read_rhocif_su(foreign)
    assert su["C1.z"] == pytest.approx(0.001) and su["C1.Pv"] == pytest.approx(0.03)
    assert su["C1.kappa"] == pytest.approx(0.01) and su["C1.kappa_prime"] == pytest.approx(0.2)
    assert crystal.cell_su[:3] == pytest.approx((0.002, 0.002, 0.003))


def test_foreign_without_axes_warns(foreign):
    text = FOREIGN.replace("C1 O1 Z C1 N1 X\n", "")
    foreign.write_text(text)
    with pytest.warns(UserWarning, match="C1 has multipoles but no _atom_local_axes_ row"):
        _, models = read_rhocif(foreign)
    np.testing.assert_array_equal(models[0].frame, np.eye(3))


# --------------------------------------------------------------------------- bad input
def error_of(path: Path) -> InputError:
    with pytest.raises(InputError) as info:
        read_rhocif(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    return info.value


@pytest.mark.parametrize(
    "old,new,words,has_line",
    [
        ("N1 5.0 ?", "Xx9 5.0 ?", "'Xx9' is not an atom of the _atom_site_ loop", True),
        ("0.9(2) 0.9 0.9", "0.9(2) 0.92 0.9", "kappa_prime0 = 0.9, kappa_prime1 = 0.92", True),
        ("2 4.5 2 4.5 3", "2 4.5 2 4.4 3", "radial_slater_zeta0 = 4.5, radial_slater_zeta1", True),
        ("_atom_rho_multipole_coeff_Pv\n", "_atom_rho_multipole_coeff_Pc\n", "Pv is missing", True),
        ("N1 C1 -x N1 H1 +Y", "N1 C1 -x N1 Q7 +Y", "atom2 'Q7' is not an atom", True),
        ("N1 C1 -x N1 H1 +Y", "N1 C1 W N1 H1 +Y", "'W' is not one of X, Y, Z", True),
        ("N1 C1 -x N1 H1 +Y", "N1 C1 -x N1 N1 +Y", "atom1 and atom2 coincide", True),
        ("_cell_length_a 5.565(2)\n", "", "missing cell parameter _cell_length_a", False),
    ],
)
def test_bad_foreign_input(foreign, old, new, words, has_line):
    assert old in FOREIGN
    foreign.write_text(FOREIGN.replace(old, new, 1))
    err = error_of(foreign)
    assert words in err.message
    assert (err.line is not None) == has_line


def test_item_outside_the_multipole_loop(foreign):
    foreign.write_text(FOREIGN + "_atom_rho_multipole_coeff_Pc 1.0\n")
    err = error_of(foreign)
    assert "must be in the same loop as _atom_rho_multipole_atom_label" in err.message
    assert err.line == FOREIGN.count("\n") + 1


@pytest.fixture()
def chasm_file(tmp_path) -> Path:
    crystal, models, su = mixed_crystal(np.random.default_rng(11))
    path = tmp_path / "model.cif"
    write_rhocif(path, crystal, models, su=su)
    return path


def edit_row(path: Path, label: str, loop_tag: str, column: int, value: str) -> None:
    """Replace one value of the row of ``label`` in the loop of ``loop_tag``."""
    doc = cif.read(str(path))
    loop = doc.sole_block().find_loop_item(loop_tag).loop
    row = next(i for i in range(loop.length()) if loop[i, 0] == label)
    loop[row, column] = value
    doc.write_file(str(path))


@pytest.mark.parametrize(
    "column,value,words",
    [
        (1, "hc_split", "kind 'hc_split' needs two rows (O2.up, O2.dn)"),
        (1, "dft", "kind 'dft' is not 'iam', 'hc' or 'hc_split'"),
        (6, "2", "_chasm_atom_model_lmax is 2 but its populations"),
        (7, "6.5", "_chasm_atom_model_zeta = 6.5 1/A disagrees"),
        (9, "0.5", "frame_ij matrix is not orthonormal"),
        (8, "'C4 Z Cu1 N3 X'", "disagrees with _chasm_atom_model_axes"),
    ],
)
def test_bad_chasm_items(chasm_file, column, value, words):
    edit_row(chasm_file, "O2", "_chasm_atom_model_atom_label", column, value)
    err = error_of(chasm_file)
    assert words in err.message and "O2" in err.message
    assert err.line is not None


def test_chasm_loop_must_cover_every_atom(chasm_file):
    text = chasm_file.read_text()
    row = next(x for x in text.split("\n") if x.startswith(" H5 iam"))
    chasm_file.write_text(text.replace(row + "\n", ""))
    err = error_of(chasm_file)
    assert "atom H5 has no row in the _chasm_atom_model_atom_label loop" in err.message
    assert "remove the _chasm_ items" in err.message


def test_newer_extension_version_refused(chasm_file):
    text = chasm_file.read_text()
    chasm_file.write_text(re.sub(r"(_chasm_rhocif_version\s+)1", r"\g<1>2", text))
    err = error_of(chasm_file)
    assert "_chasm_rhocif_version is '2'" in err.message and err.line == 6


def test_missing_file(tmp_path):
    err = error_of(tmp_path / "absent.cif")
    assert "file not found" in err.message


# --------------------------------------------------------------------------- writing
def test_bad_models_and_su_are_refused():
    crystal, models, su = mixed_crystal(np.random.default_rng(2))
    with pytest.raises(ValueError, match="one per atom"):
        rhocif_text(crystal, models[:-1])
    with pytest.raises(TypeError, match="atom H8: density model object"):
        rhocif_text(crystal, [*models[:-1], object()])
    bad = HansenCoppensAtom("O", 6.0, lmax=1, frame=np.diag([1.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="atom O2: frame is not orthonormal"):
        rhocif_text(crystal, [models[0], bad, *models[2:]])
    with pytest.raises(ValueError, match="su 'Cu1.spin'"):
        rhocif_text(crystal, models, su={"Cu1.spin": 0.1})
    with pytest.raises(ValueError, match="su 'Zz1.x'"):
        rhocif_text(crystal, models, su={"Zz1.x": 0.1})
    with pytest.raises(ValueError, match="is not a standard uncertainty"):
        rhocif_text(crystal, models, su={"Cu1.x": -0.1})
    with pytest.raises(ValueError, match="repeats an item chasm writes"):
        rhocif_text(crystal, models, extra={"_cell_length_a": "1"})
    with pytest.raises(ValueError, match="starts with '_'"):
        rhocif_text(crystal, models, extra={"R1": "0.02"})


def test_failed_write_keeps_the_old_file(tmp_path):
    crystal, models, su = mixed_crystal(np.random.default_rng(4))
    path = tmp_path / "model.cif"
    write_rhocif(path, crystal, models, su=su)
    old = path.read_bytes()
    broken = HansenCoppensAtom("O", math.nan, lmax=1)  # cannot be serialised
    with pytest.raises(ValueError, match="atom O2 Pv: cannot write the non-finite value nan"):
        write_rhocif(path, crystal, [models[0], broken, *models[2:]])
    with pytest.raises(TypeError):
        write_rhocif(path, crystal, [*models[:-1], "not a model"])
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.cif"]


def test_failure_while_writing_removes_the_temporary_file(tmp_path, monkeypatch):
    crystal, models, _ = mixed_crystal(np.random.default_rng(4))
    path = tmp_path / "model.cif"
    path.write_text("old contents\n")

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_rhocif(path, crystal, models)
    assert path.read_text() == "old contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.cif"]


def test_new_file_has_ordinary_permissions(tmp_path):
    crystal, models, _ = mixed_crystal(np.random.default_rng(4))
    reference = tmp_path / "reference"
    reference.write_text("")
    write_rhocif(tmp_path / "model.cif", crystal, models)
    assert (tmp_path / "model.cif").stat().st_mode == reference.stat().st_mode

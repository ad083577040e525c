"""Tests of the crystal layer: cell, symmetry, site symmetry, ADPs, CIF reading."""

from __future__ import annotations

import gemmi
import numpy as np
import pytest
from gemmi import cif

from chasm.crystal.adp import (
    ucart_to_ucif,
    ucif_to_ucart,
    ucif_to_ustar,
    ueq,
    ustar_to_ucif,
)
from chasm.crystal.cif import parse_cif_number, read_cif
from chasm.crystal.structure import Atom, Crystal, parse_type_symbol
from chasm.crystal.symmetry import format_symop, ops_from_triplets, parse_symop
from chasm.errors import InputError

TRICLINIC = (5.1, 6.3, 7.7, 81.0, 97.5, 104.2)


def _gemmi_site_orders(crystal: Crystal, tol: float = 0.01) -> list[int]:
    """Site-group orders from gemmi's is_special_position (independent check)."""
    st = gemmi.SmallStructure()
    st.cell = crystal.cell
    st.spacegroup_hall = crystal.spacegroup.hall
    st.determine_and_set_spacegroup("h")  # also sets up the cell images
    return [st.cell.is_special_position(gemmi.Fractional(*a.xyz), tol) + 1 for a in crystal.atoms]


def _atoms(sites: dict[str, tuple]) -> list[Atom]:
    return [Atom(label, "C", xyz, uiso=0.01) for label, xyz in sites.items()]


# --------------------------------------------------------------------------- real CIFs
@pytest.fixture(scope="module")
def urea(shared_data):
    return read_cif(shared_data / "xray" / "urea" / "iam.cif")


@pytest.fixture(scope="module")
def alanine(shared_data):
    return read_cif(shared_data / "xray" / "l-alanine" / "iam.cif")


def test_urea_cell_symmetry_atoms(urea):
    assert urea.name == "iam"
    assert urea.cell.parameters == pytest.approx((5.578, 5.578, 4.686, 90, 90, 90))
    assert urea.cell_su[:3] == pytest.approx((0.0006, 0.0006, 0.0007))
    assert urea.n_ops == 8
    assert urea.spacegroup.hm == "P -4 21 m"
    assert not urea.is_centrosymmetric and not urea.inversion_at_origin
    assert [a.label for a in urea.atoms] == ["O", "N", "H1", "H2", "C"]
    assert [a.element for a in urea.atoms] == ["O", "N", "H", "H", "C"]
    assert all(a.is_anisotropic and a.occupancy == 1.0 and a.charge == 0 for a in urea.atoms)
    o = urea.atoms[0]
    assert o.xyz == pytest.approx([0.0, 0.5, 0.59672])
    assert o.su["xyz"][2] == pytest.approx(0.00009)
    assert o.uiso == pytest.approx(0.01569)
    assert urea.wavelength == pytest.approx(0.5996)
    assert urea.dispersion == {
        "C": (0.002, 0.001),
        "H": (0.0, 0.0),
        "N": (0.004, 0.002),
        "O": (0.007, 0.004),
    }


def test_urea_aniso_columns_mapped_by_tag(shared_data, urea):
    """urea's aniso loop is U11 U22 U33 U23 U13 U12: compare with the file text."""
    lines = (shared_data / "xray" / "urea" / "iam.cif").read_text().splitlines()
    start = lines.index(" _atom_site_aniso_label")
    tags = []
    k = start
    while lines[k].strip().startswith("_atom_site_aniso_"):
        tags.append(lines[k].strip())
        k += 1
    assert tags[4:] == ["_atom_site_aniso_U_23", "_atom_site_aniso_U_13", "_atom_site_aniso_U_12"]
    order = ["11", "22", "33", "12", "13", "23"]
    for row in lines[k : k + 5]:
        fields = row.split()
        atom = urea.atoms[urea.atom_index(fields[0])]
        for tag, text in zip(tags[1:], fields[1:], strict=True):
            value = float(text.split("(")[0])
            assert atom.u_aniso[order.index(tag[-2:])] == pytest.approx(value)
    n = urea.atoms[urea.atom_index("N")]
    assert n.u_aniso[3] == pytest.approx(-0.0159)  # U12
    assert n.u_aniso[5] == pytest.approx(0.00009)  # U23


def test_urea_site_symmetry(urea):
    orders = {a.label: len(urea.site_symmetry(i)) for i, a in enumerate(urea.atoms)}
    assert orders == {"O": 4, "C": 4, "N": 2, "H1": 2, "H2": 2}  # mm2 and m
    mult = {a.label: urea.multiplicity(i) for i, a in enumerate(urea.atoms)}
    assert mult == {"O": 2, "C": 2, "N": 4, "H1": 4, "H2": 4}
    assert list(orders.values()) == _gemmi_site_orders(urea)


def test_alanine(alanine):
    assert alanine.n_ops == 4
    assert alanine.spacegroup.hm == "P 21 21 21"
    assert alanine.cell.parameters == pytest.approx((5.9279, 12.2597, 5.7939, 90, 90, 90))
    assert len(alanine.atoms) == 13
    assert sum(a.element == "H" for a in alanine.atoms) == 7
    assert all(a.u_aniso is None for a in alanine.atoms if a.element == "H")
    assert all(a.u_aniso is not None for a in alanine.atoms if a.element != "H")
    assert alanine.dispersion["O"] == (0.0106, 0.006)
    assert alanine.wavelength == pytest.approx(0.71073)
    assert all(alanine.multiplicity(i) == 4 for i in range(13))


@pytest.mark.parametrize("name", ["urea", "l-alanine"])
def test_atoms_agree_with_gemmi_small_structure(shared_data, name):
    path = shared_data / "xray" / name / "iam.cif"
    crystal = read_cif(path)
    small = gemmi.make_small_structure_from_block(cif.read(str(path)).sole_block())
    assert len(small.sites) == len(crystal.atoms)
    for site, atom in zip(small.sites, crystal.atoms, strict=True):
        assert site.label == atom.label
        assert site.element.name == atom.element
        assert list(site.fract.tolist()) == pytest.approx(atom.xyz)
        assert site.occ == pytest.approx(atom.occupancy)
        if atom.u_aniso is not None:
            assert site.aniso.elements_pdb() == pytest.approx(atom.u_aniso)
            # the file's Ueq is rounded to its su (H1 of urea: 0.058(4), from Uij 0.05767)
            tol = max(2e-5, atom.su["uiso"])
            assert crystal.cell.calculate_u_eq(site.aniso) == pytest.approx(atom.uiso, abs=tol)
        else:
            assert site.u_iso == pytest.approx(atom.uiso)


def test_benchmark_structure(shared_data):
    crystal = read_cif(shared_data / "benchmark" / "ref.cif")
    assert crystal.spacegroup.hm == "P 1 21/n 1"
    assert crystal.n_ops == 4 and len(crystal.atoms) == 33
    assert crystal.inversion_at_origin
    assert len(crystal.centric_half()) == 2


# --------------------------------------------------------------------------- geometry
def test_bases_and_transforms_against_gemmi():
    crystal = Crystal.from_parts(TRICLINIC, "P 1", [Atom("C1", "C", [0.1, 0.2, 0.3], uiso=0.01)])
    cell = crystal.cell
    a, b = crystal.A, crystal.B
    assert np.linalg.norm(a, axis=0) == pytest.approx(TRICLINIC[:3])
    cos_alpha = a[:, 1] @ a[:, 2] / (TRICLINIC[1] * TRICLINIC[2])
    assert cos_alpha == pytest.approx(np.cos(np.radians(TRICLINIC[3])))
    assert a.T @ b == pytest.approx(np.eye(3), abs=1e-14)
    rec = cell.reciprocal()
    assert np.linalg.norm(b, axis=0) == pytest.approx([rec.a, rec.b, rec.c])
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 2, size=(20, 3))
    r = crystal.frac_to_cart(x)
    for xi, ri in zip(x, r, strict=True):
        assert ri == pytest.approx(cell.orthogonalize(gemmi.Fractional(*xi)).tolist())
        assert crystal.cart_to_frac(ri) == pytest.approx(
            cell.fractionalize(gemmi.Position(*ri)).tolist()
        )
    assert crystal.cart_to_frac(r) == pytest.approx(x)
    assert crystal.frac_to_cart(x[0]).shape == (3,)
    h = np.array([1, -2, 3])
    assert 1 / np.linalg.norm(b @ h) == pytest.approx(cell.calculate_d(list(h)))


def test_u_conversions_against_gemmi():
    cell = gemmi.UnitCell(*TRICLINIC)
    rng = np.random.default_rng(7)
    for _ in range(5):
        m = rng.normal(size=(3, 3)) * 0.1
        ucart = m @ m.T + 0.01 * np.eye(3)
        atom = gemmi.Atom()
        pairs = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
        atom.aniso = gemmi.SMat33f(*[ucart[i, j] for i, j in pairs])
        site = gemmi.SmallStructure.Site(atom, cell)  # converts Cartesian U to U_cif
        ucif = ucart_to_ucif(ucart, cell)
        assert ucif == pytest.approx(site.aniso.elements_pdb(), rel=1e-5, abs=1e-8)
        assert ucif_to_ucart(ucif, cell) == pytest.approx(ucart, abs=1e-12)
        assert ueq(ucif, cell) == pytest.approx(cell.calculate_u_eq(site.aniso), rel=1e-5)
        assert ueq(ucif, cell) == pytest.approx(np.trace(ucart) / 3)
        assert ustar_to_ucif(ucif_to_ustar(ucif, cell), cell) == pytest.approx(ucif)
        # Debye-Waller exponent: h^T U* h (integer h) = (Bh)^T U_cart (Bh)
        ustar = ucif_to_ustar(ucif, cell)
        us = np.array(
            [
                [ustar[0], ustar[3], ustar[4]],
                [ustar[3], ustar[1], ustar[5]],
                [ustar[4], ustar[5], ustar[2]],
            ]
        )
        h = np.array([2, -1, 3])
        bh = np.linalg.inv(np.array(cell.orth.mat.tolist())).T @ h
        assert h @ us @ h == pytest.approx(bh @ ucart @ bh)


def test_isotropic_u_in_cif_convention():
    """Uiso·I in Cartesian gives U_ij = Uiso cos(angle between a*_i and a*_j)."""
    cell = gemmi.UnitCell(*TRICLINIC)
    rec = cell.reciprocal()
    cosines = np.cos(np.radians([rec.gamma, rec.beta, rec.alpha]))  # 12, 13, 23
    ucif = ucart_to_ucif(0.02 * np.eye(3), cell)
    assert ucif == pytest.approx(0.02 * np.r_[1, 1, 1, cosines])
    assert ueq(ucif, cell) == pytest.approx(0.02)
    # vectorised over atoms
    batch = ucif_to_ucart(np.stack([ucif, 2 * ucif]), cell)
    assert batch.shape == (2, 3, 3)
    assert batch[1] == pytest.approx(0.04 * np.eye(3))


def test_crystal_fills_ueq():
    u = [0.02, 0.03, 0.025, 0.001, 0.002, -0.003]
    crystal = Crystal.from_parts(TRICLINIC, "P -1", [Atom("O1", "o", [0.1, 0.2, 0.3], u_aniso=u)])
    atom = crystal.atoms[0]
    assert atom.element == "O"
    assert atom.uiso == pytest.approx(ueq(u, crystal.cell))
    with pytest.raises(ValueError, match="uiso or u_aniso"):
        Crystal.from_parts(TRICLINIC, "P 1", [Atom("O1", "O", [0, 0, 0])])
    with pytest.raises(ValueError, match="unknown element"):
        Atom("Q1", "Q", [0, 0, 0], uiso=0.01)


# --------------------------------------------------------------------------- symmetry
@pytest.mark.parametrize(
    ("text", "rot", "tran"),
    [
        ("x, y, z", np.eye(3), [0, 0, 0]),
        ("-y+1/2, x, -z", [[0, -1, 0], [1, 0, 0], [0, 0, -1]], [0.5, 0, 0]),
        ("1/2+x,-y,z-1/2", [[1, 0, 0], [0, -1, 0], [0, 0, 1]], [0.5, 0, 0.5]),
        ("0.50000 + X , 0.50000 - Y , - Z", np.diag([1, -1, -1]), [0.5, 0.5, 0]),
        ("x-y, x, z+1/6", [[1, -1, 0], [1, 0, 0], [0, 0, 1]], [0, 0, 1 / 6]),
        ("-x+0.33333,-y+0.66667,-z+0.16667", -np.eye(3), [1 / 3, 2 / 3, 1 / 6]),
        ("'+x,+y,+z+3/4'", np.eye(3), [0, 0, 0.75]),
    ],
)
def test_parse_symop(text, rot, tran):
    r, t = parse_symop(text)
    assert r.dtype.kind == "i"
    assert np.array_equal(r, np.asarray(rot, dtype=int))
    assert t == pytest.approx(tran, abs=1e-12)
    assert np.array_equal(parse_symop(format_symop(r, t))[0], r)
    assert parse_symop(format_symop(r, t))[1] == pytest.approx(t)


@pytest.mark.parametrize("bad", ["x,y", "x,y,w", "2x,y,z", "x,x,z", "x,y,z+0.123", "x y,z,"])
def test_parse_symop_errors(bad):
    with pytest.raises(ValueError, match="symmetry operation"):
        parse_symop(bad)


def test_incomplete_operation_list():
    with pytest.raises(ValueError, match="do not form a group"):
        ops_from_triplets(["x,y,z", "-y,x,z"])
    with pytest.raises(ValueError, match="identity"):
        ops_from_triplets(["-x,-y,-z"])
    rot, tran = ops_from_triplets(["x,y,z", "-x,y+1/2,-z+1/2", "-x,-y,-z", "x,-y+1/2,z+1/2"])
    assert rot.shape == (4, 3, 3) and tran.shape == (4, 3)


def test_spacegroup_spellings_agree():
    atoms = [Atom("C1", "C", [0.1, 0.2, 0.3], uiso=0.01)]
    cell = (5, 6, 7, 90, 100, 90)
    by_hm = Crystal.from_parts(cell, "P 21/c", atoms)
    by_hall = Crystal.from_parts(cell, "-P 2ybc", atoms)
    by_ops = Crystal.from_parts(
        cell, ["x,y,z", "-x,y+1/2,-z+1/2", "-x,-y,-z", "x,-y+1/2,z+1/2"], atoms
    )
    for c in (by_hall, by_ops):
        assert c.spacegroup.hm == "P 1 21/c 1"
        assert {format_symop(r, t) for r, t in zip(*c.symops, strict=True)} == {
            format_symop(r, t) for r, t in zip(*by_hm.symops, strict=True)
        }
    with pytest.raises(ValueError, match="unknown space group"):
        Crystal.from_parts(cell, "P 7", atoms)


def test_hexagonal_wyckoff_multiplicities():
    """P 63/m m c (No. 194): every Wyckoff position, against IT A and gemmi."""
    sites = {
        "2a": (0, 0, 0),
        "2b": (0, 0, 0.25),
        "2c": (1 / 3, 2 / 3, 0.25),
        "2d": (1 / 3, 2 / 3, 0.75),
        "4e": (0, 0, 0.1),
        "4f": (1 / 3, 2 / 3, 0.06),
        "6g": (0.5, 0, 0),
        "6h": (0.17, 0.34, 0.25),
        "12i": (0.2, 0, 0),
        "12j": (0.3, 0.1, 0.25),
        "12k": (0.2, 0.4, 0.07),
        "24l": (0.13, 0.29, 0.41),
    }
    crystal = Crystal.from_parts((3.2, 3.2, 5.2, 90, 90, 120), "P 63/m m c", _atoms(sites))
    assert crystal.n_ops == 24
    assert crystal.is_centrosymmetric and crystal.inversion_at_origin
    mult = [crystal.multiplicity(i) for i in range(len(sites))]
    assert mult == [int(label[:-1]) for label in sites]
    orders = [len(crystal.site_symmetry(i)) for i in range(len(sites))]
    assert orders == _gemmi_site_orders(crystal)
    rot = crystal.cartesian_rotations()
    assert np.einsum("nij,nkj->nik", rot, rot) == pytest.approx(
        np.broadcast_to(np.eye(3), rot.shape), abs=1e-12
    )
    # the site group of 6h maps the site onto itself in Cartesian space too
    i = 7
    r0 = crystal.frac_to_cart(crystal.atoms[i].xyz)
    for k in crystal.site_symmetry(i):
        image = crystal.rotations[k] @ crystal.atoms[i].xyz + crystal.translations[k]
        shift = np.round(image - crystal.atoms[i].xyz)
        assert crystal.frac_to_cart(image - shift) == pytest.approx(r0, abs=1e-9)


def test_triclinic_inversion_centres():
    sites = {f"1{c}": xyz for c, xyz in zip("abcdefgh", np.ndindex(2, 2, 2), strict=True)}
    sites = {k: np.array(v) * 0.5 for k, v in sites.items()}
    sites["2i"] = (0.12, 0.34, 0.56)
    crystal = Crystal.from_parts(TRICLINIC, "P -1", _atoms(sites))
    assert crystal.n_ops == 2
    assert [crystal.multiplicity(i) for i in range(9)] == [1] * 8 + [2]
    assert [len(crystal.site_symmetry(i)) for i in range(9)] == _gemmi_site_orders(crystal)
    assert list(crystal.centric_half()) == [0]


def test_tolerance_of_site_symmetry():
    """2c written as (0.3333, 0.6666, 1/4) is 6h (x, 2x, 1/4) unless tol > 3e-4 Å."""
    crystal = Crystal.from_parts(
        (3.2, 3.2, 5.2, 90, 90, 120), "P 63/m m c", _atoms({"C": (0.3333, 0.6666, 0.25)})
    )
    assert crystal.multiplicity(0) == 6
    assert crystal.multiplicity(0, tol=0.01) == 2


def test_centred_group_and_centric_half():
    sites = {"4e": (0, 0.3, 0.25), "4a": (0, 0, 0), "8f": (0.1, 0.2, 0.3), "4c": (0.25, 0.25, 0)}
    crystal = Crystal.from_parts((9, 8, 7, 90, 110, 90), "C 1 2/c 1", _atoms(sites))
    assert crystal.n_ops == 8  # centring included
    assert [crystal.multiplicity(i) for i in range(4)] == [4, 4, 8, 4]
    assert [len(crystal.site_symmetry(i)) for i in range(4)] == _gemmi_site_orders(crystal)
    half = crystal.centric_half()
    assert len(half) == 4
    rot, tran = crystal.symops
    keys = {format_symop(r, t) for r, t in zip(rot, tran, strict=True)}
    generated = {format_symop(rot[i], tran[i]) for i in half}
    generated |= {format_symop(-rot[i], -tran[i]) for i in half}
    assert generated == keys


def test_inversion_not_at_origin():
    atoms = [Atom("C1", "C", [0.1, 0.2, 0.3], uiso=0.01)]
    choice1 = Crystal.from_parts((10, 10, 10, 90, 90, 90), "F d -3 m:1", atoms)
    assert choice1.n_ops == 192
    assert choice1.is_centrosymmetric and not choice1.inversion_at_origin
    with pytest.raises(ValueError, match="inversion through the origin"):
        choice1.centric_half()
    choice2 = Crystal.from_parts((10, 10, 10, 90, 90, 90), "F d -3 m", atoms)  # origin choice 2
    assert choice2.inversion_at_origin and len(choice2.centric_half()) == 96


# --------------------------------------------------------------------------- parsing helpers
@pytest.mark.parametrize(
    ("symbol", "expected"),
    [
        ("Cu2+", ("Cu", 2)),
        ("O2-", ("O", -2)),
        ("Cu+2", ("Cu", 2)),
        ("Na+", ("Na", 1)),
        ("C", ("C", 0)),
        ("Cl3", ("Cl", 0)),
        ("C12A", ("C", 0)),
        ("CU", ("Cu", 0)),
        ("D", ("D", 0)),
        ("Nval", ("N", 0)),
    ],
)
def test_parse_type_symbol(symbol, expected):
    assert parse_type_symbol(symbol) == expected


def test_parse_type_symbol_error():
    with pytest.raises(ValueError):
        parse_type_symbol("Q1")


@pytest.mark.parametrize(
    ("text", "value", "su"),
    [
        ("0.02023(14)", 0.02023, 0.00014),
        ("123(2)", 123.0, 2.0),
        ("-0.008(2)", -0.008, 0.002),
        ("1.5e-3(2)", 0.0015, 0.0002),
        ("90", 90.0, None),
        (".5", 0.5, None),
    ],
)
def test_parse_cif_number(text, value, su):
    v, s = parse_cif_number(text)
    assert v == pytest.approx(value)
    assert s == (None if su is None else pytest.approx(su))


@pytest.mark.parametrize("bad", ["?", ".", "abc", "1.2(3"])
def test_parse_cif_number_errors(bad):
    with pytest.raises(ValueError):
        parse_cif_number(bad)


# --------------------------------------------------------------------------- CIF errors
CIF = """data_test
_cell_length_a 5.0
_cell_length_b 6.0(1)
_cell_length_c 7.0
_cell_angle_alpha 90
_cell_angle_beta 100.0
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P 21/c'
{symops}
loop_
_atom_type_symbol
_atom_type_scat_dispersion_real
_atom_type_scat_dispersion_imag
Cu2+ 0.285 1.283
O2- 0.011 0.006
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_U_iso_or_equiv
_atom_site_occupancy
Cu1 {cu} 0 0 0 0.010(1) 1
O1 O2- 0.1 0.2 0.3 . 0.5
loop_
_atom_site_aniso_label
_atom_site_aniso_U_12
_atom_site_aniso_U_11
_atom_site_aniso_U_22
_atom_site_aniso_U_33
_atom_site_aniso_U_13
_atom_site_aniso_U_23
O1 0.001 0.02 0.03 0.04 0.002 0.003
"""

SYMOPS = """loop_
_symmetry_equiv_pos_as_xyz
x,y,z
-x,y+1/2,-z+1/2
-x,-y,-z
x,-y+1/2,z+1/2"""


def _write(tmp_path, text, name="t.cif"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_synthetic_cif(tmp_path):
    crystal = read_cif(_write(tmp_path, CIF.format(symops=SYMOPS, cu="Cu2+")))
    assert crystal.spacegroup.hm == "P 1 21/c 1" and crystal.n_ops == 4
    cu, o = crystal.atoms
    assert (cu.element, cu.charge, cu.type_symbol) == ("Cu", 2, "Cu2+")
    assert (o.element, o.charge, o.occupancy) == ("O", -2, 0.5)
    assert o.u_aniso == pytest.approx([0.02, 0.03, 0.04, 0.001, 0.002, 0.003])
    assert o.uiso == pytest.approx(ueq(o.u_aniso, crystal.cell))
    assert cu.u_aniso is None and cu.su["uiso"] == pytest.approx(0.001)
    assert crystal.dispersion == {"Cu": (0.285, 1.283), "O": (0.011, 0.006)}
    assert crystal.wavelength is None
    assert crystal.multiplicity(0) == 2 and crystal.multiplicity(1) == 4
    # no symop loop: the H-M name is used
    named = read_cif(_write(tmp_path, CIF.format(symops="", cu="Cu2+"), "n.cif"))
    assert named.n_ops == 4 and named.spacegroup.hm == "P 1 21/c 1"


def test_cif_errors(tmp_path):
    with pytest.raises(InputError, match="file not found") as err:
        read_cif(tmp_path / "missing.cif")
    assert "missing.cif" in str(err.value)

    no_cell = CIF.format(symops=SYMOPS, cu="Cu").replace("_cell_length_a 5.0\n", "")
    with pytest.raises(InputError, match="_cell_length_a") as err:
        read_cif(_write(tmp_path, no_cell, "a.cif"))
    assert "a.cif" in str(err.value)

    with pytest.raises(InputError, match="unknown element") as err:
        read_cif(_write(tmp_path, CIF.format(symops=SYMOPS, cu="Qq"), "b.cif"))
    assert err.value.line == 29 and "Cu1" in str(err.value)

    bad_su = CIF.format(symops=SYMOPS, cu="Cu").replace("0.010(1)", "0.01x")
    with pytest.raises(InputError, match="cannot read the number") as err:
        read_cif(_write(tmp_path, bad_su, "c.cif"))
    assert err.value.line == 29

    no_atoms = CIF.format(symops=SYMOPS, cu="Cu").split("loop_\n_atom_site_label")[0]
    with pytest.raises(InputError, match="no data block with atoms"):
        read_cif(_write(tmp_path, no_atoms, "d.cif"))
    with pytest.raises(InputError, match="has no atoms"):
        read_cif(_write(tmp_path, no_atoms, "d.cif"), block="test")
    with pytest.raises(InputError, match="no data block 'other'"):
        read_cif(_write(tmp_path, CIF.format(symops=SYMOPS, cu="Cu"), "e.cif"), block="other")

    incomplete = SYMOPS.rsplit("\n", 1)[0]
    with pytest.raises(InputError, match="do not form a group") as err:
        read_cif(_write(tmp_path, CIF.format(symops=incomplete, cu="Cu"), "f.cif"))
    assert err.value.line == 9  # the loop_ line

    with pytest.raises(InputError, match="not a readable CIF"):
        read_cif(_write(tmp_path, "data_x\nloop_\n_a\n_b\n1\n", "g.cif"))


def test_cif_warnings(tmp_path):
    wrong_name = CIF.format(symops=SYMOPS, cu="Cu").replace("'P 21/c'", "'P 1'")
    with pytest.warns(UserWarning, match="differs from the symmetry operations"):
        crystal = read_cif(_write(tmp_path, wrong_name))
    assert crystal.n_ops == 4
    order = (
        CIF.format(symops=SYMOPS, cu="Cu")
        .replace("_atom_site_occupancy\n", "_atom_site_occupancy\n_atom_site_site_symmetry_order\n")
        .replace(" 1\nO1", " 1 2\nO1")
        .replace(" 0.5\n", " 0.5 2\n")
    )
    with pytest.warns(UserWarning, match="atom O1 has site_symmetry_order 2"):
        read_cif(_write(tmp_path, order, "o.cif"))

"""Local frames that name symmetry images and dummy points; init's frames never fail."""

from __future__ import annotations

import numpy as np
import pytest
from gemmi import cif as gcif

from chasm.crystal.structure import Atom, Crystal
from chasm.density.frames import LocalAxes, local_frame, point_position, symop_text
from chasm.errors import InputError
from chasm.project.autobuild import choose_model


def _crystal(atoms, sg="P -1", cell=(6.0, 6.5, 7.0, 90.0, 90.0, 90.0)) -> Crystal:
    return Crystal.from_parts(cell, sg, [Atom(lab, el, xyz, uiso=0.01) for lab, el, xyz in atoms])


def _dimer() -> Crystal:
    """C1 bonded to its own inversion image C1@-x,-y,-z (1.59 A), C2 (1.62 A) and H1."""
    c1 = np.array([0.11, 0.06, 0.03])  # |A c1| = 0.795 A
    return _crystal(
        [
            ("C1", "C", c1),
            ("C2", "C", c1 + [0.24, 0.1, 0.05]),
            ("H1", "H", c1 + [-0.05, 0.15, 0.0]),
        ]
    )


def _centred() -> Crystal:
    """Mn1 on the inversion centre at the origin between two images of O1 and of O2,
    and Cl1 bonded to nothing but within 4 A."""
    return _crystal(
        [
            ("Mn1", "Mn", [0.0, 0.0, 0.0]),
            ("O1", "O", [0.33, 0.0, 0.0]),  # 1.98 A along a: O1 and O1@-x,-y,-z collinear
            ("O2", "O", [0.0, 0.31, 0.02]),
        ]
    )


def _frames_ok(crystal) -> list:
    choices = choose_model(crystal)
    for i, ch in enumerate(choices):
        assert ch.axes is not None, (ch.label, ch.axes_reason)
        m = LocalAxes.from_text(ch.axes.as_text()).matrix(crystal, i)
        np.testing.assert_allclose(m.T @ m, np.eye(3), atol=1e-12)
    return choices


def test_symop_text_round_trip():
    import gemmi

    for text in ["-x+1,-y,-z", "x+1/2,-y+1/2,z", "-y,x-y,z+1/3", "x,y,z", "-x-1,y+2,-z+5/6"]:
        op = gemmi.Op(text)
        rot = np.array(op.rot) // gemmi.Op.DEN
        tran = np.array(op.tran) / gemmi.Op.DEN
        assert gemmi.Op(symop_text(rot, tran)) == op, text
    assert symop_text(-np.eye(3, dtype=int), [1, 0, 0.5]) == "-x+1,-y,-z+1/2"


def test_image_point_is_exact():
    c = _dimer()
    p = point_position("C1@-x+1,-y,-z", c, 1)
    np.testing.assert_allclose(p, c.frac_to_cart([1 - 0.11, -0.06, -0.03]), atol=1e-12)
    mid = point_position("mid(C1;C1@-x,-y,-z)", c, 1)
    np.testing.assert_allclose(mid, 0.0, atol=1e-12)  # the inversion centre
    with pytest.raises(InputError, match="not an operation of the space group"):
        point_position("C1@-x,y,z", c, 1)
    with pytest.raises(InputError, match="not a symmetry operation"):
        point_position("C1@-q,y,z", c, 1)
    with pytest.raises(InputError, match="'C9' is not an atom"):
        point_position("C9", c, 1)


def test_own_image_frame_of_a_dimer():
    c = _dimer()
    choices = _frames_ok(c)
    c1 = choices[0].axes.as_text()
    # the nearest neighbour of C1 is its own inversion image, named with its operation
    assert c1.split()[0] == "C1@-x,-y,-z", c1
    # what the issue saw: the bare label makes atom0 the atom itself -> an error naming it
    with pytest.raises(InputError) as exc:
        LocalAxes.from_text("C1 Z C1 C2 X").matrix(c, 0)
    msg = exc.value.message
    assert "local axes of C1 ('C1 Z C1 C2 X')" in msg and "coincides" in msg
    assert "LABEL@-x+1,-y,-z" in msg


def test_atom_on_inversion_centre():
    c = _centred()
    choices = _frames_ok(c)
    mn = choices[0].axes
    # z to O1, x to an O2 image: the other O1 image is collinear and must be skipped
    assert mn.atom0.split("@")[0] == "O1" and mn.atom2.split("@")[0] == "O2", mn.as_text()
    m = mn.matrix(c, 0)
    o2 = point_position(mn.atom2, c, 0)
    assert abs(m[:, 0] @ o2 / np.linalg.norm(o2)) > 0.9  # x close to the Mn-O2 bond
    with pytest.raises(InputError, match="local axes of Mn1 .*collinear"):
        LocalAxes.from_text("O1 Z Mn1 O1@-x,-y,-z X").matrix(c, 0)


def test_only_collinear_neighbours_falls_back_to_nearest_off_line_atom():
    c = _crystal(
        [
            ("Mn1", "Mn", [0.0, 0.0, 0.0]),
            ("O1", "O", [0.33, 0.0, 0.0]),
            ("Cl1", "Cl", [0.0, 0.5, 0.2]),  # 3.5 A away, not bonded
        ]
    )
    mn = choose_model(c)[0]
    assert mn.axes is not None and mn.axes.atom2.startswith("Cl1"), mn.axes_reason
    assert "off the z line" in mn.axes_reason
    mn.axes.matrix(c, 0)


def test_frame_matches_local_frame_of_the_images():
    c = _dimer()
    ax = LocalAxes.from_text("C1@-x,-y,-z Z C1 mid(C2;H1) X")
    o = c.frac_to_cart(c.atoms[0].xyz)
    expected = local_frame(
        o,
        c.frac_to_cart(-np.asarray(c.atoms[0].xyz)),
        o,
        (c.frac_to_cart(c.atoms[1].xyz) + c.frac_to_cart(c.atoms[2].xyz)) / 2,
        "Z",
        "X",
    )
    np.testing.assert_allclose(ax.matrix(c, 0), expected, atol=1e-14)


def test_rhocif_carries_image_notation(tmp_path):
    from chasm.density.model import HansenCoppensAtom
    from chasm.io.rhocif import read_rhocif, write_rhocif

    c = _dimer()
    choices = choose_model(c)
    models = []
    for i, ch in enumerate(choices):
        m = HansenCoppensAtom(
            ch.element,
            pv=4.0 if ch.element == "C" else 1.0,
            lmax=2,
            axes=ch.axes,
            frame=ch.axes.matrix(c, i),
        )
        models.append(m)
    path = tmp_path / "dimer.cif"
    write_rhocif(path, c, models)
    text = path.read_text()
    assert "C1@-x,-y,-z" in text
    _, back = read_rhocif(path)
    for a, b, i in zip(models, back, range(3), strict=True):
        assert b.axes.as_text() == a.axes.as_text()
        np.testing.assert_allclose(b.frame, a.axes.matrix(c, i), atol=1e-12)


def _structures(shared):
    """Every crystal of the shared data: X-ray and corpus CIF blocks with atoms, PND rcifs."""
    from chasm.crystal.cif import read_cif
    from chasm.crystal.structure import parse_type_symbol
    from chasm.neutron.rcif import read_rcif

    out = []
    for f in sorted((shared / "xray").glob("*/*.cif")) + sorted((shared / "corpus").glob("*.cif")):
        for block in gcif.read(str(f)):
            if block.find_values("_atom_site_fract_x"):
                out.append((f"{f.name}:{block.name}", read_cif(f, block.name)))
    for f in sorted((shared / "pnd").glob("*/*.rcif")):
        for cb in read_rcif(f).crystals:
            atoms = []
            for a in cb.atoms:  # as chasm.neutron.model does, without dummy species
                try:
                    element = parse_type_symbol(a.type_symbol)[0]
                except ValueError:
                    continue
                atoms.append(Atom(a.label, element, a.xyz, uiso=0.01))
            group = cb.symops if cb.symops is not None else cb.spacegroup
            out.append((f"{f.name}:{cb.name}", Crystal.from_parts(cb.cell, group, atoms)))
    return out


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_every_shared_structure_gets_accepted_frames(shared_data):
    count = 0
    for name, crystal in _structures(shared_data):
        for i, ch in enumerate(choose_model(crystal)):
            if ch.axes is None:
                continue
            # through the text, as refine reads the project file
            LocalAxes.from_text(ch.axes.as_text()).matrix(crystal, i)
            count += 1
        assert count, name


def test_project_frame_error_names_key_line_and_a_working_frame(tmp_path):
    from chasm.project.build import build
    from chasm.project.project import load_project

    (tmp_path / "s.cif").write_text(
        "data_s\n_cell_length_a 5\n_cell_length_b 6\n_cell_length_c 7\n_cell_angle_alpha 90\n"
        "_cell_angle_beta 90\n_cell_angle_gamma 90\n_space_group_name_H-M_alt 'P -1'\n"
        "loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n"
        "_atom_site_fract_y\n_atom_site_fract_z\n_atom_site_U_iso_or_equiv\n"
        "C1 C 0.1 0.2 0.3 0.02\nO1 O 0.3 0.1 0.2 0.02\n"
    )
    (tmp_path / "d.hkl").write_text("1 0 0 10.0 1.0\n0 1 0 12.0 1.0\n0 0 1 8.0 1.0\n")
    (tmp_path / "p.toml").write_text(
        '[structure]\ncif = "s.cif"\n\n[model.atoms.C1]\naxes = "C1 Z C1 O1 X"\n\n'
        '[[datasets]]\nname = "x"\nkind = "xray"\nfile = "d.hkl"\n\n'
        '[[stages]]\nname = "s"\nfree = ["*.scale"]\n'
    )
    with pytest.raises(InputError) as exc:
        build(load_project(tmp_path / "p.toml"))
    err = exc.value
    assert err.line == 5 and err.path.endswith("p.toml")
    msg = err.message
    assert msg.startswith("model.atoms.C1.axes: local axes of C1 ('C1 Z C1 O1 X')")
    assert "chasm init would write axes = 'O1 Z C1 " in msg

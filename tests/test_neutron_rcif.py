"""Reading cryspy's rcif polarised-neutron files (chasm.neutron.rcif)."""

from __future__ import annotations

import numpy as np
import pytest

from chasm.crystal.adp import B_TO_U
from chasm.errors import InputError
from chasm.neutron.model import PndModel
from chasm.neutron.rcif import parse_rcif_text, read_rcif

MINIMAL = """global_
_mem_parameters_points_a 24

data_test
_cell_length_a 5.0
_cell_length_b 6.0
_cell_length_c 7.0(2)
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_space_group_name_H-M_alt 'P n m a'

loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_B_iso_or_equiv
  Ti   Ti3+   0.0   0.0   0.5   0.8
   O    O2-   0.1   0.25  0.3   0.5

loop_
_atom_site_aniso_label
_atom_site_aniso_U_11
_atom_site_aniso_U_22
_atom_site_aniso_U_33
_atom_site_aniso_U_12
_atom_site_aniso_U_13
_atom_site_aniso_U_23
  O  0.01 0.02 0.03 0.0 0.001 0.0

loop_
_atom_site_susceptibility_label
_atom_site_susceptibility_chi_type
_atom_site_susceptibility_chi_11
_atom_site_susceptibility_chi_22
_atom_site_susceptibility_chi_33
_atom_site_susceptibility_chi_12
_atom_site_susceptibility_chi_13
_atom_site_susceptibility_chi_23
  Ti   Ciso   0.7362   9.0   9.0   1.0   1.0   1.0

loop_
_atom_site_scat_label
_atom_site_scat_type_symbol
_atom_site_scat_Lande
_atom_site_scat_kappa
  Ti   Ti3+   2.0   1.1

data_exp
_setup_wavelength 0.84
_setup_field -1.5
_diffrn_radiation_polarization -0.9
_diffrn_radiation_efficiency 0.95
_diffrn_orient_matrix_ub_11 0.2
_diffrn_orient_matrix_ub_12 0.0
_diffrn_orient_matrix_ub_13 0.0
_diffrn_orient_matrix_ub_21 0.0
_diffrn_orient_matrix_ub_22 0.16
_diffrn_orient_matrix_ub_23 0.0
_diffrn_orient_matrix_ub_31 0.0
_diffrn_orient_matrix_ub_32 0.0
_diffrn_orient_matrix_ub_33 0.14
_extinction_model gauss
_extinction_mosaicity 10.0
_extinction_radius 50(3)
_phase_label test

loop_
_diffrn_refln_index_h
_diffrn_refln_index_k
_diffrn_refln_index_l
_diffrn_refln_fr
_diffrn_refln_fr_sigma
_diffrn_refln_excluded
   1  0  1  1.05  0.01  False
   0  2  0  0.98  0.02  True

loop_test
_refln_index_h
_refln_index_k
_refln_index_l
_refln_f_calc
   1 0 1  1.0+0.0j
"""


def _write(tmp_path, text):
    path = tmp_path / "x.rcif"
    path.write_text(text)
    return path


def test_minimal_file(tmp_path):
    pnd = read_rcif(_write(tmp_path, MINIMAL))
    assert [b.name for b in pnd.blocks] == ["global_", "test", "exp"]
    cryst = pnd.crystal()
    assert cryst.cell == (5.0, 6.0, 7.0, 90.0, 90.0, 90.0)
    assert cryst.spacegroup == "P n m a"
    ti, o = cryst.atoms
    assert ti.uiso == pytest.approx(0.8 * B_TO_U)
    np.testing.assert_allclose(o.u_aniso, [0.01, 0.02, 0.03, 0.0, 0.001, 0.0])
    # Ciso: only chi_11 counts
    np.testing.assert_allclose(cryst.susceptibility["Ti"].chi, [0.7362] * 3 + [0.0] * 3)
    scat = cryst.scattering["Ti"]
    assert (scat.type_symbol, scat.lande, scat.kappa) == ("Ti3+", 2.0, 1.1)
    (data,) = pnd.datasets
    assert (data.wavelength, data.field, data.polarisation, data.efficiency) == (
        0.84,
        -1.5,
        -0.9,
        0.95,
    )
    assert data.ub_type == "CCSL"  # cryspy's default
    assert (data.extinction_model, data.mosaicity, data.radius) == ("gauss", 10.0, 50.0)
    np.testing.assert_array_equal(data.hkl, [[1, 0, 1], [0, 2, 0]])
    np.testing.assert_array_equal(data.excluded, [False, True])
    assert data.fr_calc is None
    assert data.lines[0] == MINIMAL.splitlines().index("   1  0  1  1.05  0.01  False") + 1


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        ("_cell_length_b 6.0", "_cell_length_b six", "not a number"),
        ("   0  2  0  0.98  0.02  True", "   0  2  0  0.98  -0.02  True", "positive"),
        ("   0  2  0  0.98  0.02  True", "   0  2  0  0.98  0.02", "multiple"),
        ("'P n m a'", "'P n m a", "unterminated"),
        ("  Ti   Ciso ", "  Tx   Ciso ", "unknown atom"),
        ("   1  0  1  1.05", "   1.5  0  1  1.05", "integer"),
    ],
)
def test_bad_input_reports_file_and_line(tmp_path, old, new, match):
    assert old in MINIMAL
    text = MINIMAL.replace(old, new, 1)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if new in t)
    path = _write(tmp_path, text)
    with pytest.raises(InputError, match=match) as info:
        read_rcif(path)
    assert info.value.path == str(path)
    assert info.value.line == line


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        ("  Ti   Ti3+   2.0   1.1", "  Ti   Ti9+   2.0   1.1", "Ti9\\+"),
        ("   O    O2-   0.1", "   O    Xx   0.1", "Xx"),
    ],
)
def test_model_errors_point_at_the_row(tmp_path, old, new, match):
    text = MINIMAL.replace(old, new, 1)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if new in t)
    path = _write(tmp_path, text)
    pnd = read_rcif(path)
    with pytest.raises(InputError, match=match) as info:
        PndModel.from_rcif(pnd.crystal())
    assert (info.value.path, info.value.line) == (str(path), line)


def test_missing_mandatory_items(tmp_path):
    with pytest.raises(InputError, match="_diffrn_orient_matrix_ub_33"):
        read_rcif(_write(tmp_path, MINIMAL.replace("_diffrn_orient_matrix_ub_33 0.14\n", "")))
    with pytest.raises(InputError, match="file not found"):
        read_rcif(tmp_path / "absent.rcif")


def test_text_fields_comments_and_empty_loops():
    blocks = parse_rcif_text(
        "data_a\n_x 1 # comment\n_t\n;\nline one\n# not a comment\n;\n"
        "loop_\n_empty_1\n_empty_2\nloop_named\n_v\n 'a b' \"c'd\"\n"
    )
    (block,) = blocks
    assert block.items["_t"].text == "line one\n# not a comment"
    assert block.loops[0].rows == []
    assert [t.text for t in block.loops[1].column("_v")] == ["a b", "c'd"]


def test_shared_files(shared_data):
    ho = read_rcif(shared_data / "pnd" / "ho2ti2o7" / "ho2ti2o7.rcif")
    cryst = ho.crystal("Ho2Ti2O7")
    assert cryst.spacegroup == "F d -3 m:2"  # _space_group_IT_coordinate_system_code 2
    np.testing.assert_allclose(
        cryst.susceptibility["Ho1"].chi, [3.3290, 3.32909, 3.32909, 3.2543, 3.25442, 3.25442]
    )
    assert cryst.scattering["Ho1"].lande == 1.25
    (data,) = ho.datasets
    assert len(data.hkl) == 94 and data.polarisation == -0.87
    assert (data.mosaicity, data.radius) == (2909.938, 78.53)

    yt = read_rcif(shared_data / "pnd" / "ytio3" / "ytio3.rcif")
    assert [d.name for d in yt.datasets] == ["6t2c", "6t2a", "6t2b"]
    assert [len(d.hkl) for d in yt.datasets] == [110, 95, 61]
    assert not np.allclose(yt.datasets[0].ub, yt.datasets[1].ub)

    mn = read_rcif(shared_data / "pnd" / "mnf2" / "main.rcif")
    cryst = mn.crystal()
    assert len(cryst.symops) == 16 and cryst.spacegroup is None
    assert list(cryst.time_reversal[:8]) == [1, 1, 1, 1, -1, -1, -1, -1]
    np.testing.assert_allclose(cryst.moments["Mn"], [0.0, 0.0, 5.275])
    assert mn.datasets[0].polarisation == 0.94 and len(mn.datasets[0].hkl) == 189

"""The publication CIF (chasm.io.core_cif), format_su and the files a finished run writes."""

from __future__ import annotations

import math

import gemmi
import numpy as np
import pytest

from chasm.cli import main
from chasm.crystal.cif import read_cif
from chasm.io.core_cif import RefineSummary, cell_volume_su, core_cif_text
from chasm.io.fcf import read_fcf
from chasm.io.su_format import format_su, su_digits


# ----------------------------------------------------------------------------- format_su
@pytest.mark.parametrize(
    ("value", "su", "text"),
    [
        (0.727073, 0.000071, "0.72707(7)"),
        (0.00678, 0.00013, "0.00678(13)"),
        (1.0, 0.0019, "1.0000(19)"),  # 19: still two digits
        (1.0, 0.00194, "1.0000(19)"),
        (1.0, 0.00196, "1.000(2)"),  # 20 after rounding: one digit
        (1.0, 0.0020, "1.000(2)"),
        (0.35487, 0.000097, "0.35487(10)"),  # one digit would be 10: two digits
        (0.1, 0.0995, "0.10(10)"),
        (112.83, 0.8163, "112.8(8)"),
        (-0.00055, 0.00012, "-0.00055(12)"),
        (-0.00001, 0.0004, "0.0000(4)"),  # no negative zero
        (1234.0, 25.0, "1230(30)"),  # su above 19: tens
        (1234.0, 15.0, "1234(15)"),
        (0.5, 0.0, "0.5"),  # fixed: no parentheses
        (0.25, None, "0.25"),
        (0.333333333, float("nan"), "0.333333"),
    ],
)
def test_format_su(value, su, text):
    assert format_su(value, su) == text


def test_format_su_rejects_bad_input():
    with pytest.raises(ValueError):
        format_su(1.0, -0.1)
    with pytest.raises(ValueError):
        format_su(float("inf"), 0.1)
    with pytest.raises(ValueError):
        su_digits(0.0)


def test_su_digits_rule_of_19_over_decades():
    """Brute force over su = m 10^e: the printed su has 1 digit, or 2 digits <= 19."""
    for e in range(-7, 3):
        for m in np.linspace(1.0, 9.99, 400):
            su = m * 10.0**e
            decimals, units = su_digits(su)
            assert 1 <= units <= 19
            assert units >= 10 or units <= 9
            shown = units * 10.0**-decimals
            assert abs(shown - su) <= 0.5 * 10.0**-decimals * (1 + 1e-9) or units == 10


# ----------------------------------------------------------------------------- core CIF
def test_cubic_fixed_values_have_no_su_and_gemmi_reads_it(shared_data, tmp_path):
    """CaF2: coordinates fixed by symmetry print bare; cell and Ueq su; bonds with cell su."""
    cr = read_cif(shared_data / "xray" / "caf2" / "CaF2.cif")
    su = {"Ca01.U11": 5e-5, "Ca01.U22": 5e-5, "Ca01.U33": 5e-5, "F002.U11": 8e-5}
    text = core_cif_text(cr, su=su, summary=RefineSummary(weighting="shelx", shelx_a=0.0109))
    path = tmp_path / "c.cif"
    path.write_text(text)
    block = gemmi.cif.read(str(path)).sole_block()
    assert list(block.find_values("_atom_site_fract_x")) == ["0.5", "0.25"]
    assert block.find_value("_cell_length_a") == "5.45095(5)"
    v, sv = cell_volume_su(cr)
    assert sv == pytest.approx(3 * cr.cell.a**2 * 5e-5)  # a, b, c fully correlated
    assert block.find_value("_cell_volume") == format_su(v, sv)
    assert "0.0109P" in block.find_value("_refine_ls_weighting_details")
    d = list(block.find_values("_geom_bond_distance"))
    assert d[0] == format_su(cr.cell.a * math.sqrt(3) / 4, math.sqrt(3) / 4 * 5e-5)
    small = gemmi.make_small_structure_from_block(block)
    assert [s.label for s in small.sites] == ["Ca01", "F002"]


@pytest.fixture(scope="module")
def alanine_run(shared_data, tmp_path_factory):
    """`chasm refine` of an IAM project with SHELXL's L-alanine model (83 parameters)."""
    folder = tmp_path_factory.mktemp("ala")
    data = shared_data / "xray" / "l-alanine"
    project = folder / "iam.toml"
    project.write_text(
        f"""title = "l-alanine"
output = "refined"
[structure]
cif = "{data / "iam.cif"}"
[model]
default = "iam"
riding_h = false
[[datasets]]
name = "xray"
kind = "xray"
file = "{data / "iam.hkl"}"
merge = false
weights = "sigma"
extinction = "none"
[constraints]
electroneutrality = false
[refinement]
tol = 0.001
[[stages]]
name = "iam"
free = ["*.scale", "*.x", "*.y", "*.z", "*.U*"]
"""
    )
    out = folder / "refined"
    assert main(["refine", str(project), "--output", str(out), "-q", "--no-report"]) == 0
    return out, data


def test_run_writes_core_cif_matching_shelxl(alanine_run):
    """model_core.cif of chasm's IAM refinement prints the 88 values of SHELXL's atom_site
    and aniso loops, the cell volume and the _refine_ls figures exactly as SHELXL's CIF."""
    out, data = alanine_run
    ours = gemmi.cif.read(str(out / "model_core.cif")).sole_block()
    ref = gemmi.cif.read(str(data / "iam.cif")).sole_block()
    for prefix, cols in (
        ("_atom_site_", ["fract_x", "fract_y", "fract_z", "U_iso_or_equiv"]),
        ("_atom_site_aniso_", ["U_11", "U_22", "U_33", "U_23", "U_13", "U_12"]),
    ):
        a = {r[0]: list(r)[1:] for r in ours.find(prefix, ["label", *cols])}
        b = {r[0]: list(r)[1:] for r in ref.find(prefix, ["label", *cols])}
        assert a == b
    for tag in (
        "_cell_volume",
        "_refine_ls_number_reflns",
        "_refine_ls_number_parameters",
        "_refine_ls_R_factor_all",
        "_refine_ls_R_factor_gt",
        "_refine_ls_wR_factor_ref",
        "_reflns_number_gt",
    ):
        assert ours.find_value(tag) == ref.find_value(tag), tag
    # GooF 2.250 vs SHELXL's 2.251 (chasm 2.2503, SHELXL's 2.2505: README)
    assert float(ours.find_value("_refine_ls_goodness_of_fit_ref")) == pytest.approx(
        2.251, abs=1e-3
    )
    # the bond table as SHELXL's (geometry su: tests/test_geometry.py)
    bonds = {
        frozenset((r[0], r[1])): r[2]
        for r in ours.find("_geom_bond_", ["atom_site_label_1", "atom_site_label_2", "distance"])
    }
    for r in ref.find("_geom_bond_", ["atom_site_label_1", "atom_site_label_2", "distance"]):
        assert bonds[frozenset((r[0], r[1]))] == r[2]


def test_core_cif_reads_back(alanine_run):
    """gemmi's small-structure reader and chasm's own CIF reader take the file."""
    out, data = alanine_run
    small = gemmi.read_small_structure(str(out / "model_core.cif"))
    assert len(small.sites) == 13 and small.spacegroup_hm.replace(" ", "") == "P212121"
    cr = read_cif(out / "model_core.cif")
    ref = read_cif(data / "iam.cif")
    assert cr.cell_su == pytest.approx(ref.cell_su, nan_ok=True)
    for a, b in zip(cr.atoms, ref.atoms, strict=True):
        assert a.label == b.label
        assert np.allclose(a.xyz, b.xyz, atol=1.5 * np.nanmax(b.su["xyz"]))
        assert np.allclose(a.su["xyz"], b.su["xyz"], rtol=0.25)


def test_run_writes_fcf(alanine_run):
    """model.fcf: LIST 4 of all 2519 reflections; Fo2 on the absolute scale of Fc2."""
    out, _ = alanine_run
    f = read_fcf(out / "model.fcf")
    assert f.list_code == 4 and len(f) == 2519
    # the scale is refined: sum w (Fo2 - Fc2) Fc2 = 0 at the solution, so Fo2 ~ Fc2 overall
    assert np.sum(f.f2_meas) / np.sum(f.f2_calc) == pytest.approx(1.0, abs=0.01)
    r1 = np.sum(np.abs(np.sqrt(np.maximum(f.f2_meas, 0)) - np.sqrt(f.f2_calc)))
    r1 /= np.sum(np.sqrt(np.maximum(f.f2_meas, 0)))
    assert r1 == pytest.approx(0.0304, abs=1e-4)


def test_riding_hydrogens_are_flagged(shared_data):
    cr = read_cif(shared_data / "xray" / "l-alanine" / "iam.cif")
    su = {"H1.x": 0.002, "H1.y": 0.001, "H1.z": 0.002, "N1.x": 0.0001}
    block = gemmi.cif.read_string(core_cif_text(cr, su=su, riding=["H1"])).sole_block()
    rows = {
        r[0]: list(r)
        for r in block.find(
            "_atom_site_", ["label", "fract_x", "calc_flag", "refinement_flags_posn"]
        )
    }
    assert rows["H1"][1:] == ["0.6980", "calc", "R"]
    assert rows["N1"][1:] == ["0.64730(10)", "d", "."]


def test_a_file_that_cannot_be_written_is_a_warning_not_a_failure(alanine_run, monkeypatch, capsys):
    """A symmetry code the CIF cannot hold: the run still ends with result.json and a warning."""
    import json

    import chasm.io.core_cif as core

    out, _ = alanine_run
    project = out.parent / "iam.toml"

    def refuse(*args, **kwargs):
        raise ValueError("lattice shift (5, 0, 0) cannot be written as a CIF code")

    monkeypatch.setattr(core, "bond_list", refuse)
    again = out.parent / "again"
    assert main(["refine", str(project), "--output", str(again), "-q", "--no-report"]) == 0
    result = json.loads((again / "result.json").read_text())
    assert any(
        "model_core.cif / model.fcf not written: lattice shift" in w for w in result["warnings"]
    )
    assert "not written" in capsys.readouterr().out + (again / "listing.txt").read_text()
    assert not (again / "model_core.cif").exists()


def test_disorder_groups_from_the_structure_cif(shared_data):
    from types import SimpleNamespace

    from chasm.project.project import Project
    from chasm.project.publish import disorder_groups

    path = shared_data / "corpus" / "p31c.cif"
    project = Project(path=path.parent / "x.toml", data={"structure": {"cif": path.name}})
    groups = disorder_groups(SimpleNamespace(project=project))
    assert groups["N1"] == 1 and groups["N1'"] == 2 and "C4" not in groups
    missing = Project(path=path.parent / "x.toml", data={"structure": {"cif": "nope.cif"}})
    assert disorder_groups(SimpleNamespace(project=missing)) == {}

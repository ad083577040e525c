"""SHELXL/olex2 CIFs with embedded reflections and instructions: reading, init, parity rules."""

from __future__ import annotations

import numpy as np
import pytest

from chasm.cli import main
from chasm.errors import InputError
from chasm.io.shelx_cif import (
    blocks,
    choose_block,
    embedded_reflections,
    merge_shelxl,
    parse_res,
    published_fit,
    read_instructions,
)
from chasm.scattering.xray import weights_shelx

RES = """TITL test in P-1
CELL 0.71073 5.0 6.0 7.0 90 90 90
ZERR 2 0.001 0.001 0.001 0 0 0
LATT 1
SFAC C O
UNIT 2 2
OMIT 1 0 0
OMIT -3 50
L.S. 4
WGHT    0.052300    0.410000
EXTI    0.012300
FVAR       1.00000
PART 1
C1    1    0.100000    0.200000    0.300000    11.00000    0.02000
PART 0
O1    2    0.300000    0.100000    0.200000    11.00000    0.02000 =
  ! a continuation line
HKLF {hklf}

REM final
END

WGHT      0.0600      0.5000
"""

ATOMS = """_cell_length_a 5.0
_cell_length_b 6.0
_cell_length_c 7.0
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_space_group_name_H-M_alt 'P -1'
_diffrn_radiation_wavelength 0.71073
loop_
_space_group_symop_operation_xyz
'x, y, z'
'-x, -y, -z'
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_U_iso_or_equiv
_atom_site_occupancy
C1 C 0.1 0.2 0.3 0.02 1
O1 O 0.3 0.1 0.2 0.02 1
"""


def _hkl(n: int = 3) -> str:
    rng = np.random.default_rng(1)
    rows = []
    for h in range(-n, n + 1):
        for k in range(-n, n + 1):
            for m in range(0, n + 1):
                if (h, k, m) == (0, 0, 0):
                    continue
                f2 = float(rng.uniform(5, 500))
                rows.append(f"{h:4d}{k:4d}{m:4d}{f2:8.2f}{0.05 * f2 + 1:8.2f}")
                rows.append(f"{-h:4d}{-k:4d}{-m:4d}{f2 * 1.02:8.2f}{0.05 * f2 + 1:8.2f}")
    rows.append("   0   0   0    0.00    0.00")
    return "\n".join(rows)


def _block(name: str, hkl: bool = True, hklf: int = 4, published: bool = True) -> str:
    text = f"data_{name}\n" + ATOMS
    if published:
        text += (
            "_refine_ls_R_factor_all 0.0412\n_refine_ls_R_factor_gt 0.0400\n"
            "_refine_ls_wR_factor_ref 0.1020\n_refine_ls_goodness_of_fit_ref 1.051\n"
            "_refine_ls_number_reflns 170\n_refine_ls_number_parameters 9\n"
        )
    text += "_shelx_res_file\n;\n" + RES.format(hklf=hklf) + ";\n"
    if hkl:
        text += "_shelx_hkl_file\n;\n" + _hkl() + "\n;\n"
    return text


@pytest.fixture
def cif(tmp_path):
    path = tmp_path / "final.cif"
    path.write_text(_block("final"))
    return path


def test_instructions_of_the_embedded_res(cif):
    ins = read_instructions(cif, "final")
    assert ins.wavelength == 0.71073
    assert ins.wght == (0.0523, 0.41)  # the scheme used, not the one suggested after END
    assert ins.exti == 0.0123
    assert ins.hklf == 4 and ins.parts == {1}
    assert ins.omit == [(1, 0, 0)]  # OMIT -3 50 is a resolution limit
    text = cif.read_text().splitlines()
    assert text[ins.lines["WGHT"] - 1].startswith("WGHT    0.052300")
    assert text[ins.lines["HKLF"] - 1].startswith("HKLF")
    # continuation lines and comments
    ins2 = parse_res("WGHT 0.1 =\n  0.2\nHKLF 4 1.5 1 0 0 0 1 0 0 0 1\nEND\nWGHT 9 9\n")
    assert ins2.wght == (0.1, 0.2) and ins2.hklf_scale == 1.5


def test_embedded_reflections_and_lines(cif):
    refl = embedded_reflections(cif, "final")
    assert len(refl) == 2 * (7 * 7 * 4 - 1)
    lines = cif.read_text().splitlines()
    first = int(refl.lines[0])
    assert lines[first - 1].split()[:3] == [str(v) for v in refl.hkl[0]]
    assert refl.path == str(cif)
    pub = published_fit(cif, "final")
    assert (pub.r1_all, pub.wr2, pub.goof, pub.n_parameters) == (0.0412, 0.102, 1.051, 9)


def test_bad_reflection_line_points_into_the_cif(tmp_path):
    text = _block("final").replace("   0   0   0    0.00", "  xx   0   1   12.00")
    path = tmp_path / "bad.cif"
    path.write_text(text)
    with pytest.raises(InputError) as exc:
        embedded_reflections(path, "final")
    bad = next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith("  xx"))
    assert exc.value.line == bad and "_shelx_hkl_file" in exc.value.message


def test_block_choice(tmp_path):
    path = tmp_path / "many.cif"
    path.write_text(_block("first", hkl=False) + _block("second") + "data_text\n_x 1\n")
    assert [b.name for b in blocks(path)] == ["first", "second", "text"]
    assert choose_block(path) == "second"  # the only one with reflections
    assert choose_block(path, "data_FIRST") == "first"
    with pytest.raises(InputError, match=r"no data block 'third'.*data_first \(2 atoms"):
        choose_block(path, "third")
    path.write_text(_block("a") + _block("b"))
    with pytest.raises(
        InputError, match="2 data blocks carry reflections; choose one with --block"
    ):
        choose_block(path)


def test_init_from_the_cif_alone(cif, tmp_path, capsys):
    out = tmp_path / "project.toml"
    assert main(["init", str(cif), "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert "_shelx_hkl_file" in said and "WGHT 0.0523 0.41" in said and "EXTI 0.0123" in said
    assert "published (CIF): R1(all) 0.0412" in said
    text = out.read_text()
    for line in [
        'default = "iam"',
        'merge_rule = "shelxl"',
        "friedel = true",  # P -1 is centrosymmetric
        'weights = "shelx"',
        "shelx_a = 0.0523",
        'extinction = "shelx"',
        "extinction_start = 0.0123",
        "omit = [[1, 0, 0]]",
    ]:
        assert line in text, line
    assert "disorder" in text and "PART 1" in text  # the reason for an IAM project
    # random intensities: only the published-model stage is meaningful here
    assert main(["refine", str(out), "--no-report", "--stage", "published"]) == 0
    said = capsys.readouterr().out
    assert "xray vs SHELXL (chasm / CIF): R1(all)" in said and "/ 0.0412" in said


def test_init_refusals(tmp_path, capsys):
    def fails(args, *words):
        assert main(args) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        for w in words:
            assert w in err, (w, err)

    out = str(tmp_path / "p.toml")
    path = tmp_path / "nohkl.cif"
    path.write_text(_block("x", hkl=False))
    fails(["init", str(path), "-o", out], "no embedded reflections", "--xray")
    path.write_text(_block("x", hklf=5))
    fails(["init", str(path), "-o", out], "HKLF 5", "not supported", "HKLF 4")
    path.write_text(_block("x"))
    fails(["init", str(path), "--block", "y", "-o", out], "no data block 'y'", "data_x")


def test_merge_shelxl_brute_force():
    from chasm.io.shelx_hkl import Reflections

    hkl = np.array([[1, 0, 0], [-1, 0, 0], [1, 0, 0], [0, 1, 1], [0, -1, -1], [2, 1, 0], [0, 0, 1]])
    f2 = np.array([100.0, 110.0, 95.0, 2.0, -1.0, 50.0, 30.0])
    sigma = np.array([5.0, 6.0, 5.5, 1.0, 1.0, 3.0, 2.0])
    refl = Reflections(hkl, f2, sigma)
    merged, rint, _ = merge_shelxl(refl, "P 1 21 1", friedel=True)
    got = {tuple(h): (v, s) for h, v, s in zip(merged.hkl, merged.f2, merged.sigma, strict=True)}
    # brute force by hand: group (1 0 0) x3, (0 1 1) x2, (2 1 0) x1; (0 0 1) kept (not absent)
    for idx in ([0, 1, 2], [3, 4], [5]):
        fo, s = f2[idx], sigma[idx]
        w = np.array([v / t**2 if v > 3 * t else 3 / t for v, t in zip(fo, s, strict=True)])
        mean = float((w * fo).sum() / w.sum())
        n = len(idx)
        sig = 1 / np.sqrt((1 / s**2).sum())
        if n > 1:
            sig = max(sig, float(np.abs(fo - mean).sum() / (n * np.sqrt(n - 1))))
        match = [v for h, v in got.items() if abs(v[0] - mean) < 1e-9]
        assert match and abs(match[0][1] - sig) < 1e-12, (idx, got)
    assert len(merged) == 4
    # 0 k 0 with k odd is absent in P 1 21 1: dropped
    refl2 = Reflections(np.array([[0, 1, 0], [0, 2, 0]]), np.array([5.0, 6.0]), np.ones(2))
    assert merge_shelxl(refl2, "P 1 21 1")[0].hkl.tolist() == [[0, 2, 0]]
    assert 0 < rint < 1
    # a merged F² below -sigma becomes -sigma (SHELXL); above it is left alone
    refl3 = Reflections(np.array([[1, 1, 1], [2, 2, 2]]), np.array([-5.0, -1.5]), np.full(2, 2.0))
    got3 = merge_shelxl(refl3, "P 1")[0]
    assert got3.f2.tolist() == [-2.0, -1.5] and got3.sigma.tolist() == [2.0, 2.0]


def test_shelx_weights_are_those_of_the_absolute_scale():
    rng = np.random.default_rng(0)
    fc2_abs = rng.uniform(1, 1000, 50)
    fo2_abs = fc2_abs * rng.normal(1, 0.05, 50)
    s_abs = 0.03 * fo2_abs + 0.5
    a, b = 0.05, 2.0
    w_abs = weights_shelx(fo2_abs, s_abs, fc2_abs, a, b)  # SHELXL's definition, scale 1
    for k in (0.01, 9.45, 300.0):
        w = weights_shelx(k * fo2_abs, k * s_abs, k * fc2_abs, a, b, scale=k)
        chi_data = w * (k * fo2_abs - k * fc2_abs) ** 2
        chi_abs = w_abs * (fo2_abs - fc2_abs) ** 2
        np.testing.assert_allclose(chi_data, chi_abs, rtol=1e-12)


def test_merge_shelxl_reproduces_shelxl_sigma(shared_data):
    """CaF2: SHELXL's merged sigma (.fcf, absolute scale) / chasm's is one constant."""
    import gemmi

    from chasm.crystal.cif import read_cif

    path = shared_data / "xray" / "caf2" / "CaF2.cif"
    crystal = read_cif(path)
    merged, rint, _ = merge_shelxl(embedded_reflections(path, "caf2"), crystal, friedel=True)
    assert len(merged) == 96 and abs(rint - 0.0677) < 0.003  # SHELXL: R(int) = 0.0677
    doc = gemmi.cif.read(str(shared_data / "xray" / "caf2" / "CaF2.fcf"))
    tab = doc[0].find("_refln_", ["index_h", "index_k", "index_l", "F_squared_sigma"])
    sg = gemmi.SpaceGroup("F m -3 m")
    asu, ops = gemmi.ReciprocalAsu(sg), sg.operations()
    fcf = {tuple(asu.to_asu([int(r[i]) for i in range(3)], ops)[0]): float(r[3]) for r in tab}
    ratio = np.array(
        [
            s / fcf[tuple(asu.to_asu([int(v) for v in h], ops)[0])]
            for h, s in zip(merged.hkl, merged.sigma, strict=True)
        ]
    )
    assert np.ptp(ratio) / np.median(ratio) < 0.02, ratio


def test_multipoles_on_request(cif, tmp_path, capsys):
    out = tmp_path / "hc.toml"
    assert main(["init", str(cif), "--multipoles", "-o", str(out)]) == 0
    text = out.read_text()
    assert 'default = "hc"' in text and "[model.atoms.C1]" in text
    assert 'weights = "shelx"' in text and "shelx_a = 0.0523" in text  # the CIF's WGHT
    out2 = tmp_path / "iam.toml"
    assert main(["init", str(cif), "--no-multipoles", "-o", str(out2)]) == 0
    assert "asked for (--no-multipoles)" in out2.read_text()

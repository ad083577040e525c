"""Bad input to the file readers ends as one clear line naming file and line (issue 15).

The ``bad-input.sh`` reproducers that concern a reader are run through
``chasm.cli.main`` (in-process; the FIFO one in a subprocess with a timeout),
and each check of :mod:`chasm.io.textio`, the CIF, HKLF 4, XD and rcif readers
is tested directly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import gemmi
import numpy as np
import pytest

from chasm.cli import main
from chasm.crystal.cif import parse_cif_number, read_cif
from chasm.crystal.structure import Atom, Crystal, cell_problem
from chasm.crystal.symmetry import parse_symop
from chasm.errors import InputError
from chasm.io.shelx_hkl import (
    Reflections,
    check_resolution,
    hklf4_text,
    read_hkl4,
    read_reflections,
    read_xd_hkl,
    sniff_reflection_format,
    write_xd_hkl,
    xd_hkl_text,
)
from chasm.io.textio import check_range, decode_input, parse_number, read_input_text
from chasm.neutron.rcif import read_rcif

EXAMPLES = Path(__file__).parents[1] / "src" / "chasm" / "examples"
UREA = EXAMPLES / "urea.cif"
CU_DIMER = EXAMPLES / "seed_cu_dimer.cif"
HKL = "   0   0   1   13.43    0.05\n   0   0   2  134.84    0.83\n   1   1   0  500.00    2.00\n"


def _symop_cif(tmp_path: Path) -> Path:
    """The urea example with an explicit symmetry-operation loop."""
    ops = gemmi.find_spacegroup_by_name("P -4 21 m").operations()
    loop = "loop_\n_space_group_symop_operation_xyz\n" + "".join(
        f"'{op.triplet()}'\n" for op in ops
    )
    text = UREA.read_text().replace("_cell_length_a", loop + "_cell_length_a", 1)
    path = tmp_path / "symop.cif"
    path.write_text(text)
    return path


def _cli_error(capsys, argv) -> str:
    """Run the CLI, expect exit 2 and return the one-line error message."""
    status = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("chasm: error:")]
    assert status == 2, err
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    return errors[0]


def _sf(tmp_path, cif, hkl):
    return ["sf", cif, hkl, "--out", tmp_path / "f.csv"]


# ---------------------------------------------------------------------------- reproducers
@pytest.mark.parametrize(
    ("number", "match"),
    [("1e999", "double-precision range"), ("1" * 400, "400 characters")],
    ids=["R1 exponent beyond double range", "R2 number of absurd length"],
)
def test_r1_r2_numbers_beyond_range(tmp_path, capsys, number, match):
    cif = tmp_path / "a.cif"
    cif.write_text(UREA.read_text().replace("0.5953", number))
    (tmp_path / "x.hkl").write_text(HKL)
    message = _cli_error(capsys, _sf(tmp_path, cif, tmp_path / "x.hkl"))
    assert f"{cif}, line {_line(cif, 'O1 ')}: atom O1 coordinate z" in message
    assert match in message


def test_r3_symop_division_by_zero(tmp_path, capsys):
    cif = _symop_cif(tmp_path)
    text = cif.read_text()
    assert "'-x+1/2,y+1/2,-z'" in text
    cif.write_text(text.replace("'-x+1/2,y+1/2,-z'", "'-x+1/0,y+1/2,-z'"))
    (tmp_path / "x.hkl").write_text(HKL)
    message = _cli_error(capsys, _sf(tmp_path, cif, tmp_path / "x.hkl"))
    assert f"{cif}, line" in message and "division by zero" in message


def test_r4_degenerate_cell(tmp_path, capsys):
    cif = tmp_path / "d.cif"
    cif.write_text(UREA.read_text().replace("_cell_angle_alpha 90", "_cell_angle_alpha 1e-320"))
    (tmp_path / "x.hkl").write_text(HKL)
    message = _cli_error(capsys, _sf(tmp_path, cif, tmp_path / "x.hkl"))
    assert f"{cif}, line {_line(cif, '_cell_angle_alpha')}: degenerate cell" in message


def test_r5_latin1_byte_in_hkl(tmp_path, capsys):
    hkl = tmp_path / "l1.hkl"
    hkl.write_bytes(b"   0   0   1   13.43    0.05 \xe9\n")
    with pytest.warns(UserWarning, match="latin-1"):
        message = _cli_error(capsys, _sf(tmp_path, UREA, hkl))
    assert f"{hkl}, line 1: cannot read the reflection" in message


def test_latin1_comment_in_hkl_is_read_with_a_note(tmp_path, capsys):
    hkl = tmp_path / "l1.hkl"
    hkl.write_bytes(HKL.encode() + b"   0   0   0    0.00    0.00\ncaf\xe9\n")
    with pytest.warns(UserWarning, match=r"line 5: not UTF-8 \(byte 0xe9\).*latin-1"):
        assert main([str(a) for a in _sf(tmp_path, UREA, hkl)]) == 0
    assert len((tmp_path / "f.csv").read_text().splitlines()) == 4


@pytest.mark.parametrize("index", ["99999999999999999999", "2147483648", "9223372036854775808"])
def test_r8_r9_huge_index_never_wraps(tmp_path, capsys, index):
    hkl = tmp_path / "h.hkl"
    hkl.write_text(f"   0   0   1   13.43    0.05\n{index} 0 2 134.84 0.83\n")
    message = _cli_error(capsys, _sf(tmp_path, UREA, hkl))
    assert f"{hkl}, line 2: index h = {index} is outside the allowed range [-9999, 9999]" in message
    assert not (tmp_path / "f.csv").exists()


def test_r10_index_beyond_the_resolution_limit_of_the_cell(tmp_path, capsys):
    hkl = tmp_path / "h.hkl"
    hkl.write_text(HKL + "9999   0   1   13.43    0.05\n")
    message = _cli_error(capsys, _sf(tmp_path, UREA, hkl))
    assert f"{hkl}, line 4: reflection (9999, 0, 1) has sinθ/λ = 898.4" in message
    assert "beyond the allowed maximum 2.5" in message


def _refine_project(tmp_path: Path) -> Path:
    """The IAM project of bad-input.sh: the urea example and h.hkl, scale refined."""
    toml = tmp_path / "s.toml"
    toml.write_text(
        f'output="out"\n[structure]\ncif="{UREA}"\n[model]\ndefault="iam"\n'
        '[[datasets]]\nname="xray"\nkind="xray"\nfile="h.hkl"\n'
        '[[stages]]\nname="s"\nfree=["*.scale"]\n'
    )
    return toml


def test_r8b_huge_index_refine(tmp_path, capsys):
    hkl = tmp_path / "h.hkl"
    hkl.write_text("99999999999999999999 0 1 13.43 0.05\n0 0 2 134.84 0.83\n")
    toml = _refine_project(tmp_path)
    message = _cli_error(capsys, ["refine", toml, "-q"])
    assert f"{hkl}, line 1: index h = 99999999999999999999" in message


def _rcif(tmp_path: Path, row: str = "1 0 1 0.57 0.004", **items) -> Path:
    """A one-reflection flipping-ratio block; ``items`` replace or add single items."""
    values = {
        "_setup_wavelength": "0.84",
        "_setup_field": "1.0",
        "_diffrn_radiation_polarization": "-0.9",
        "_diffrn_radiation_efficiency": "0.95",
    }
    for i in (1, 2, 3):
        for j in (1, 2, 3):
            values[f"_diffrn_orient_matrix_ub_{i}{j}"] = "0.1" if i == j else "0"
    values.update(items)
    text = "data_p\n" + "".join(f"{k} {v}\n" for k, v in values.items())
    text += (
        "loop_\n_diffrn_refln_index_h\n_diffrn_refln_index_k\n_diffrn_refln_index_l\n"
        f"_diffrn_refln_fr\n_diffrn_refln_fr_sigma\n{row}\n"
    )
    path = tmp_path / "r.rcif"
    path.write_text(text)
    return path


def _line(path: Path, start: str) -> int:
    """1-based number of the first line of ``path`` starting with ``start``."""
    lines = path.read_text().split("\n")
    return next(n for n, line in enumerate(lines, start=1) if line.startswith(start))


def test_r11_rcif_index_1e308(tmp_path, capsys):
    rcif = _rcif(tmp_path, "1e308 0 1 0.57 0.004")
    argv = [
        "init",
        CU_DIMER,
        "--block",
        "seed_cu_dimer_xray_10K",
        "--pnd",
        rcif,
        "-o",
        tmp_path / "i.toml",
    ]
    message = _cli_error(capsys, argv)
    line = _line(rcif, "1e308")
    assert f"{rcif}, line {line}: index_h = 1e+308 is outside the allowed range" in message


def test_s1_rcif_negative_flipping_ratio(tmp_path, capsys):
    rcif = _rcif(tmp_path, "1 0 1 -1 0.004")
    argv = [
        "init",
        CU_DIMER,
        "--block",
        "seed_cu_dimer_xray_10K",
        "--pnd",
        rcif,
        "-o",
        tmp_path / "i.toml",
    ]
    message = _cli_error(capsys, argv)
    line = _line(rcif, "1 0 1 -1")
    assert f"{rcif}, line {line}: flipping ratio _diffrn_refln_fr = -1" in message
    assert not (tmp_path / "i.toml").exists()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_h1_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / "fifo.hkl"
    os.mkfifo(fifo)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    argv = [sys.executable, "-m", "chasm.cli", "sf", str(UREA), str(fifo)]
    done = subprocess.run(
        [*argv, "--out", str(tmp_path / "f.csv")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 2
    assert (
        done.stderr.strip() == f"chasm: error: {fifo}: is a FIFO (named pipe), not a regular file"
    )


# ---------------------------------------------------------------------------- textio
def test_special_files_are_refused(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        read_input_text(tmp_path)
    with pytest.raises(InputError, match="file not found"):
        read_input_text(tmp_path / "absent.hkl")
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(InputError, match="symbolic link loop"):
        read_input_text(loop)
    with pytest.raises(InputError, match="is a device"):
        read_input_text("/dev/null")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files without permission")
def test_unreadable_file(tmp_path):
    path = tmp_path / "x.hkl"
    path.write_text(HKL)
    path.chmod(0)
    with pytest.raises(InputError, match="permission"):
        read_input_text(path)


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"\xef\xbb\xbfa\r\nb\rc", "a\nb\nc"),
        ("a\r\nb é".encode("utf-16"), "a\nb é"),
        ("a\nb é".encode("utf-16-be"), None),  # no BOM: NUL bytes, refused as binary
        ("é\n".encode(), "é\n"),
    ],
)
def test_decoding(data, text):
    if text is None:
        with pytest.raises(InputError, match="binary file"):
            decode_input(data, "x")
    else:
        assert decode_input(data, "x") == text


def test_latin1_fallback_names_the_line():
    with pytest.warns(UserWarning, match=r"x, line 2: not UTF-8 \(byte 0xe9\)"):
        assert decode_input(b"a\ncaf\xe9\n", "x") == "a\ncafé\n"


def test_broken_utf16_is_refused():
    with pytest.raises(InputError, match="utf-16-le byte-order mark but is not valid") as info:
        decode_input(b"\xff\xfea\x00\n\x00\x00\xd8", "x")
    assert info.value.line == 2
    with pytest.raises(InputError, match="binary file") as info:
        decode_input("a\nb\x00".encode("utf-16"), "x")
    assert info.value.line == 2


@pytest.mark.parametrize(
    ("text", "value", "su"),
    [
        ("0.02023(14)", 0.02023, 0.00014),
        ("123(2)", 123.0, 2.0),
        ("-1.5e-3(2)", -0.0015, 0.0002),
        (".5", 0.5, None),
        ("1e-400", 0.0, None),
    ],
)
def test_parse_number(text, value, su):
    v, s = parse_number(text)
    assert v == pytest.approx(value, abs=1e-300)
    assert (s is None) == (su is None) and (su is None or s == pytest.approx(su))
    assert parse_cif_number(text) == (v, s)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("1e999", "double-precision range"),
        ("-1e309", "double-precision range"),
        ("1" * 400, "400 characters"),
        ("1(" + "9" * 400 + ")", "characters"),
        ("1.0(9)e400", "not a number"),
        ("nan", "not a number"),
        ("inf", "not a number"),
        ("1_000", "not a number"),
        ("?", "not a number"),
    ],
)
def test_parse_number_refuses(text, match):
    with pytest.raises(ValueError, match=match):
        parse_number(text)


def test_any_double_in_positional_notation_is_read():
    """chasm's rhoCIF writes values positionally, never with an exponent."""
    for value in (5e-324, -4.815792e-20, 1.7976931348623157e308, -2.2250738585072014e-308):
        text = np.format_float_positional(value, unique=True, trim="0")
        assert parse_number(text + "(3)")[0] == value


def test_su_beyond_double_range():
    with pytest.raises(ValueError, match="standard uncertainty"):
        parse_number("1e300(" + "9" * 20 + ")")


def test_check_range_message():
    assert check_range(0.5, "occupancy", 0, 1) == 0.5
    with pytest.raises(
        InputError, match=r"^f, line 3: P = 5 is outside the allowed range \(0, 1\]"
    ):
        check_range(5, "P", 0, 1, lo_open=True, path="f", line=3)
    with pytest.raises(InputError, match=r"x = nan is outside the allowed range \(-inf, inf\)"):
        check_range(float("nan"), "x", hi_open=True)


# ---------------------------------------------------------------------------- cell, symops
@pytest.mark.parametrize(
    ("cell", "match", "index"),
    [
        ((5, 5, 5, 90, 90, 90), None, None),
        ((5, 5, 5, 24, 24, 24), None, None),  # a sharp rhombohedral cell is fine
        ((0, 5, 5, 90, 90, 90), "cell length a = 0", 0),
        ((5, 5, 1e9, 90, 90, 90), "cell length c", 2),
        ((5, 5, 5, 90, 180, 90), "cell angle beta = 180", 4),
        ((5, 5, 5, 120, 120, 120), "degenerate cell", 3),  # sum 360°: flat
        ((5, 5, 5, 30, 100, 60), "degenerate cell", 3),  # 100 > 30 + 60
        ((0.5, 0.5, 0.5, 90, 90, 90), "volume 0.125", 0),
    ],
)
def test_cell_problem(cell, match, index):
    problem = cell_problem(cell)
    if match is None:
        assert problem is None
    else:
        assert match in problem[0] and problem[1] == index


def test_crystal_refuses_a_degenerate_cell():
    atom = Atom("C1", "C", [0, 0, 0], uiso=0.01)
    with pytest.raises(ValueError, match="degenerate cell"):
        Crystal.from_parts((5, 5, 5, 120, 120, 120), "P 1", [atom])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("x+1/0,y,z", "division by zero"),
        ("x+1" + "0" * 30 + ",y,z", "too long"),
        ("x+100000,y,z", "allowed range"),
        ("99999x,y,z", "allowed range"),
    ],
)
def test_symop_numbers(text, match):
    with pytest.raises(ValueError, match=match):
        parse_symop(text)


# ---------------------------------------------------------------------------- CIF ranges
@pytest.mark.parametrize(
    ("old", "new", "start", "match"),
    [
        ("0.3260 0.0120 1", "0.3260 -1 1", "C1 ", r"C1 U_iso_or_equiv \(Å²\) = -1 .*\(0, 10\]"),
        ("0.3260 0.0120 1", "0.3260 0 1", "C1 ", "must be positive"),
        ("0.3260 0.0120 1", "0.3260 0.0120 1e308", "C1 ", r"atom C1 occupancy = 1e\+308"),
        ("0.3260 0.0120 1", "0.3260 0.0120 -0.5", "C1 ", "occupancy = -0.5"),
        ("0.71073", "0", "_diffrn", r"_diffrn_radiation_wavelength \(Å\) = 0 .*\(0, 100\]"),
        ("0.71073", "-1", "_diffrn", "wavelength"),
        ("0.1459", "1e5", "N1 ", r"atom N1 coordinate x = 100000 .*\[-100, 100\]"),
        ("_cell_length_c    4.684", "_cell_length_c 0", "_cell_length_c", "cell length c = 0"),
    ],
)
def test_cif_ranges(tmp_path, old, new, start, match):
    text = UREA.read_text()
    assert old in text
    path = tmp_path / "x.cif"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(InputError, match=match) as info:
        read_cif(path)
    assert info.value.path == str(path) and info.value.line == _line(path, start)


def test_cif_tolerates_rounded_occupancy(tmp_path):
    path = tmp_path / "x.cif"
    path.write_text(UREA.read_text().replace("0.3260 0.0120 1", "0.3260 0.0120 1.0015"))
    assert read_cif(path).atoms[0].occupancy == 1.0015


def test_cif_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "x.cif"
    path.write_text(UREA.read_text().replace("'P -4 21 m'", "'P -4 21 m"))
    with pytest.raises(InputError, match="not a readable CIF file") as info:
        read_cif(path)
    assert info.value.line == _line(path, "_symmetry_space_group_name_H-M")


@pytest.mark.parametrize(
    ("old", "new", "start", "match"),
    [
        ("H2 H", "H1 H", "H1 H 0.1441", "atom label 'H1' is given twice"),
        (
            "_cell_length_b",
            "_cell_length_a",
            "_cell_length_a    5.565\n_cell_length_a",
            "duplicate",
        ),
    ],
)
def test_cif_duplicates_name_the_line(tmp_path, old, new, start, match):
    path = tmp_path / "x.cif"
    path.write_text(UREA.read_text().replace(old, new))
    with pytest.raises(InputError, match=match) as info:
        read_cif(path)
    text = path.read_text()
    assert info.value.line == text[: text.index(start) + len(start)].count("\n") + 1


def test_cif_with_bom_and_crlf(tmp_path):
    path = tmp_path / "x.cif"
    path.write_bytes(b"\xef\xbb\xbf" + UREA.read_text().replace("\n", "\r\n").encode())
    assert len(read_cif(path).atoms) == 5


# ---------------------------------------------------------------------------- HKLF 4
def _refl(n: int = 6, batch: bool = False) -> Reflections:
    rng = np.random.default_rng(1)
    hkl = rng.integers(-9, 10, size=(n, 3))
    hkl[:, 2] = np.arange(1, n + 1)
    return Reflections(
        hkl=hkl,
        f2=rng.uniform(1, 900, n).round(2),
        sigma=rng.uniform(0.5, 9, n).round(2),
        batch=np.arange(1, n + 1) if batch else None,
    )


def test_fixed_free_disagreement_warns_and_reads_fixed(tmp_path):
    """A file laid out 3I4,2F12.2: SHELXL reads columns 13-20 and 21-28; so does chasm."""
    path = tmp_path / "wide.hkl"
    rows = [(1, 2, 3, 123.45, 1.23), (2, 0, 0, 7.5, 0.5)]
    path.write_text("".join(f"{h:4d}{k:4d}{l:4d}{f:12.2f}{s:12.2f}\r\n" for h, k, l, f, s in rows))
    with pytest.warns(UserWarning) as record:
        fixed = read_hkl4(path)
    (warning,) = [w for w in record if "fixed columns" in str(w.message)]
    text = str(warning.message)
    assert text.startswith(f"{path}, line 1: the fixed columns 3I4,2F8.2 read h = 1")
    assert "F² = 12, σ = 3.45" in text and "F² = 123.45, σ = 1.23" in text
    assert "using the fixed columns, as SHELXL does" in text and "format='free'" in text
    assert fixed.layout == "fixed"
    np.testing.assert_array_equal(fixed.f2, [12.0, 0.0])  # line 2: F² columns blank
    np.testing.assert_array_equal(fixed.sigma, [3.45, 7.5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        free = read_hkl4(path, format="free")
    assert free.layout == "free"
    np.testing.assert_array_equal(free.f2, [123.45, 7.5])
    np.testing.assert_array_equal(free.sigma, [1.23, 0.5])


def test_agreeing_layouts_do_not_warn(tmp_path):
    path = tmp_path / "x.hkl"
    path.write_text(hklf4_text(_refl(batch=True)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        refl = read_hkl4(path)
    assert refl.layout == "fixed" and len(refl) == 6


def test_forced_fixed_layout_names_the_line(tmp_path):
    path = tmp_path / "x.hkl"
    path.write_text("1 2 3 100.0 2.0\n")
    with pytest.raises(InputError, match="fixed columns 3I4") as info:
        read_hkl4(path, format="fixed")
    assert info.value.line == 1
    with pytest.raises(ValueError, match="format must be"):
        read_hkl4(path, format="xd")


def test_tabs_crlf_and_bom_accepted(tmp_path):
    path = tmp_path / "x.hkl"
    path.write_bytes(b"\xef\xbb\xbf1\t2\t3\t100.5\t2.0\r\n-1\t0\t4\t50\t1.5\r\n")
    refl = read_hkl4(path)
    assert refl.layout == "free"
    np.testing.assert_array_equal(refl.hkl, [[1, 2, 3], [-1, 0, 4]])
    np.testing.assert_array_equal(refl.lines, [1, 2])


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("1 2 3 nan 2.0", "cannot read the reflection"),
        ("1 2 3 1e999 2.0", "cannot read the reflection"),
        ("1 2 3 100 inf", "cannot read the reflection"),
        ("1 2 3 100 0", r"σ\(F²\) = 0 for reflection \(1, 2, 3\)"),
        ("1 2 3 100 -1e-300", "must be positive"),
        ("1_0 2 3 100 1", "cannot read the reflection"),
        ("1 2 3 100 1 99999999999", "batch number"),
    ],
)
def test_hkl_bad_numbers(tmp_path, line, match):
    path = tmp_path / "x.hkl"
    first = "1 0 0 10 1 1" if len(line.split()) == 6 else "1 0 0 10 1"
    path.write_text(first + "\n" + line + "\n")
    with pytest.raises(InputError, match=match) as info:
        read_hkl4(path)
    assert info.value.line == 2 and info.value.path == str(path)


def test_check_resolution_with_a_cell(tmp_path):
    path = tmp_path / "x.hkl"
    path.write_text(HKL + "  40   0   0   10.00    1.00\n")
    crystal = read_cif(UREA)
    assert len(read_hkl4(path)) == 4
    with pytest.raises(InputError, match=r"\(40, 0, 0\) has sinθ/λ = 3.594") as info:
        read_hkl4(path, cell=crystal.cell)
    assert info.value.line == 4
    assert len(read_hkl4(path, cell=crystal, max_stol=4.0)) == 4
    assert check_resolution(Reflections(np.zeros((0, 3))), crystal).hkl.shape == (0, 3)


# ---------------------------------------------------------------------------- XD
@pytest.mark.parametrize("data", ["F^2", "F"])
def test_xd_round_trip(tmp_path, data):
    """An HKLF 4 file written as XD (F² or F) reads back to the same reflections."""
    hklf = tmp_path / "x.hkl"
    hklf.write_text(hklf4_text(_refl(batch=True)))
    original = read_hkl4(hklf)
    xd = tmp_path / "xd.hkl"
    write_xd_hkl(xd, original, name="cpna", data=data)
    assert xd.read_text().splitlines()[0] == f"cpna {data} NDAT 6"
    assert sniff_reflection_format(xd) == "xd"
    back = read_reflections(xd)
    assert back.layout == "xd"
    np.testing.assert_array_equal(back.hkl, original.hkl)
    np.testing.assert_array_equal(back.batch, original.batch)
    np.testing.assert_allclose(back.f2, original.f2, rtol=1e-14)
    np.testing.assert_allclose(back.sigma, original.sigma, rtol=1e-14)
    np.testing.assert_array_equal(back.lines, np.arange(2, 8))


def test_xd_f_conversion_rules(tmp_path):
    path = tmp_path / "xd.hkl"
    path.write_text("x F NDAT 6\n1 0 0 1 10 0.5\n2 0 0 1 0 0.3\n3 0 0 1 -2 1\n")
    refl = read_xd_hkl(path)
    np.testing.assert_allclose(refl.f2, [100, 0, -4])
    np.testing.assert_allclose(refl.sigma, [10, 0.09, 4])
    # the writer inverts the rule, F = 0 included
    back = tmp_path / "back.hkl"
    back.write_text(xd_hkl_text(refl, data="F"))
    np.testing.assert_allclose(read_xd_hkl(back).sigma, refl.sigma, rtol=1e-14)


@pytest.mark.parametrize(
    "header",
    ["cpna F^2 NDAT 7", "cpna NDAT 7 F^2", "cpna  f2  ndat 7", "cpna FSQ NDAT 7", "x I NDAT 7"],
)
def test_xd_header_variants(tmp_path, header):
    path = tmp_path / "xd.hkl"
    path.write_text(f"{header}\n   1   0   0 1   100.0     2.0   0.031\n   0   2   0 2 50 1 0.02\n")
    refl = read_xd_hkl(path)
    np.testing.assert_array_equal(refl.f2, [100, 50])
    np.testing.assert_array_equal(refl.batch, [1, 2])
    assert sniff_reflection_format(path) == "xd"


@pytest.mark.parametrize(
    ("text", "line", "match"),
    [
        ("cpna F^2\n1 0 0 1 1 1\n", 1, "has no NDAT"),
        ("cpna F^2 NDAT 5\n1 0 0 1 1\n", 1, r"NDAT must be an integer in \[6, 20\]"),
        ("cpna F^2 NDAT\n", 1, "got 'nothing'"),
        ("cpna NDAT 6\n1 0 0 1 1 1\n", 1, "exactly one of F"),
        ("cpna F^2 NDAT 7\n1 0 0 1 1 1 0.1\n1 0 0 1 1 1\n", 3, "6 fields where the header"),
        ("cpna F^2 NDAT 6\n1 0 0 x 1 1\n", 2, "cannot read the reflection"),
        ("cpna F^2 NDAT 6\n1 0 0 1 1 0\n", 2, r"σ\(F²\) = 0"),
        ("cpna F NDAT 6\n1 0 0 1 1 -1\n", 2, r"σ\(F\) = -1"),
        ("cpna F^2 NDAT 6\n1 0 99999 1 1 1\n", 2, "index l = 99999"),
        ("cpna F^2 NDAT 6\n0 0 0 1 1 1\n", None, "no reflections"),
        ("cpna F NDAT 6\n1 0 0 1 1 1\n1 0 0 1 1e200 1\n", 3, "beyond the double range"),
    ],
)
def test_xd_bad_input(tmp_path, text, line, match):
    path = tmp_path / "xd.hkl"
    path.write_text(text)
    with pytest.raises(InputError, match=match) as info:
        read_xd_hkl(path)
    assert info.value.line == line


def test_sniff_formats(tmp_path):
    fixed, free, cif = tmp_path / "a.hkl", tmp_path / "b.hkl", tmp_path / "c.cif"
    fixed.write_text(HKL)
    free.write_text("1 2 3 100 2\n")
    cif.write_text(
        "#\\#CIF_2.0\n# a comment\n\ndata_x\n_shelx_hkl_file\n;\n   1   0   0   1.0   1.0\n;\n"
    )
    assert sniff_reflection_format(fixed) == "hklf4-fixed"
    assert sniff_reflection_format(free) == "hklf4-free"
    assert sniff_reflection_format(cif) == "cif"
    assert sniff_reflection_format(UREA) == "cif"  # begins with comment lines
    with pytest.raises(ValueError, match="format must be"):
        read_reflections(free, format="cif")


# ---------------------------------------------------------------------------- rcif
@pytest.mark.parametrize(
    ("items", "row", "start", "match"),
    [
        (
            {"_diffrn_radiation_polarization": "5"},
            None,
            "_diffrn_radiation_pol",
            r"= 5 .*\[-1, 1\]",
        ),
        ({"_diffrn_radiation_polarization": "0"}, None, "_diffrn_radiation_pol", "unpolarised"),
        ({"_diffrn_radiation_efficiency": "7"}, None, "_diffrn_radiation_eff", r"= 7 .*\[0, 1\]"),
        ({"_setup_field": "0"}, None, "_setup_field", "_setup_field = 0 T"),
        ({"_setup_field": "1e300"}, None, "_setup_field", r"\[-100, 100\]"),
        ({"_setup_wavelength": "-1"}, None, "_setup_wavelength", r"= -1 .*\(0, 100\]"),
        ({"_setup_wavelength": "inf"}, None, "_setup_wavelength", "not a number"),
        ({"_extinction_mosaicity": "-3"}, None, "_extinction_mosaicity", "mosaicity = -3"),
        ({"_diffrn_orient_matrix_ub_11": "0"}, None, "_diffrn_orient_matrix_ub_11", "singular"),
        ({"_diffrn_orient_matrix_ub_22": "1e-12"}, None, "_diffrn_orient_matrix_ub_11", "singular"),
        ({}, "1 0 1 0.57 0", "1 0 1", "sigma '0' must be positive"),
        ({}, "1 0 1 0 0.004", "1 0 1", "flipping ratio _diffrn_refln_fr = 0"),
        ({}, "1.5 0 1 0.57 0.004", "1.5", "not an integer"),
    ],
)
def test_rcif_ranges(tmp_path, items, row, start, match):
    path = _rcif(tmp_path, row or "1 0 1 0.57 0.004", **items)
    with pytest.raises(InputError, match=match) as info:
        read_rcif(path)
    assert info.value.path == str(path) and info.value.line == _line(path, start)


def test_rcif_crystal_block_checks(tmp_path):
    crystal = (
        "data_c\n_cell_length_a 5\n_cell_length_b 5\n_cell_length_c 5\n_cell_angle_alpha 90\n"
        "_cell_angle_beta 90\n_cell_angle_gamma 90\n_space_group_name_H-M_alt 'P 1'\n"
        "loop_\n_atom_site_label\n_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n"
        "_atom_site_U_iso_or_equiv\n_atom_site_occupancy\nFe1 0 0 0 {u} {occ}\n"
    )
    data = _rcif(tmp_path).read_text().replace("data_p\n", "data_p\n_phase_label c\n")
    path = tmp_path / "c.rcif"
    for u, occ, match in (
        ("-1", "1", "U_iso_or_equiv"),
        ("0.01", "2", "occupancy = 2"),
        ("0.01", "1", None),
    ):
        path.write_text(crystal.format(u=u, occ=occ) + data)
        if match is None:
            assert len(read_rcif(path).datasets) == 1
        else:
            with pytest.raises(InputError, match=match) as info:
                read_rcif(path)
            assert info.value.line == _line(path, "Fe1")
    # with the crystal's cell, a reflection beyond sinθ/λ = 2.5 Å⁻¹ is refused
    path.write_text(crystal.format(u="0.01", occ="1") + data.replace("1 0 1 0.57", "60 0 1 0.57"))
    with pytest.raises(InputError, match=r"\(60, 0, 1\) has sinθ/λ = 6.0") as info:
        read_rcif(path)
    assert info.value.line == _line(path, "60 0 1")


def test_sf_reads_an_xd_file(tmp_path, capsys):
    xd = tmp_path / "xd.hkl"
    write_xd_hkl(xd, _refl(), name="urea", data="F")
    csv = tmp_path / "f.csv"
    assert main(["sf", str(UREA), str(xd), "--out", str(csv)]) == 0
    rows = csv.read_text().splitlines()
    assert len(rows) == 7
    np.testing.assert_array_equal([list(map(int, r.split(",")[:3])) for r in rows[1:]], _refl().hkl)


def test_r10_refine_with_merging_refuses_an_index_beyond_the_cell(tmp_path, capsys):
    """R10 via `chasm refine` (merge on, the default): refused before any allocation."""
    hkl = tmp_path / "h.hkl"
    hkl.write_text(HKL + "9999   0   1   13.43    0.05\n")
    toml = _refine_project(tmp_path)
    message = _cli_error(capsys, ["refine", toml, "-q", "--no-report"])
    assert f"{hkl}, line 4: reflection (9999, 0, 1) has sinθ/λ = 898.4" in message


def test_a_refined_model_left_implausible_is_still_read_back(tmp_path):
    """chasm's own rhoCIF: occupancy and ADP ranges are not applied (only finiteness)."""
    from chasm.density.model import SphericalAtom
    from chasm.io.rhocif import read_rhocif, rhocif_text

    crystal = read_cif(UREA)
    crystal.atoms[0].occupancy = 1.05
    crystal.atoms[3].uiso = -0.001
    path = tmp_path / "model.cif"
    path.write_text(rhocif_text(crystal, [SphericalAtom(a.element) for a in crystal.atoms]))
    back, _ = read_rhocif(path)
    assert back.atoms[0].occupancy == 1.05 and back.atoms[3].uiso == -0.001
    with pytest.raises(InputError, match="occupancy = 1.05"):
        read_cif(path)  # as an input structure it is refused
    path.write_text(path.read_text().replace("-0.001", "nan"))
    with pytest.raises(InputError, match="not a number"):
        read_rhocif(path)

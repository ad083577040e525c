"""Bad project files and data: one line naming file and line or key, exit status 2 (issue 15).

The project-file and physics reproducers of ../shared/repro/bad-input.sh (R6 latin-1
byte, R7 a table for an enum key, the silently accepted values, all F² <= 0, data of
absences only, total_spin = 60 on the Cu dimer) and their neighbours.
"""

from __future__ import annotations

import os
import re
import threading
from importlib.resources import files
from pathlib import Path

import pytest

from chasm.cli import main
from chasm.crystal.cif import read_cif
from chasm.errors import InputError
from chasm.io.shelx_hkl import read_hkl4
from chasm.project.build import build, match_total_spin
from chasm.project.checks import check_f2_data, spin_capacity, spin_warnings
from chasm.project.project import load_project
from safety_helpers import PROJECT, hkl_text, urea_project

BASE = PROJECT.format(cif="urea.cif", hkl="urea.hkl", output="out")


def _error(capsys, argv) -> str:
    """Run the CLI, expect exit status 2, return the one error line."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("chasm: error: ")
    return err


def _refine_error(capsys, project: Path) -> str:
    return _error(capsys, ["refine", str(project), "-q", "--no-report"])


# ----------------------------------------------------------------------------- encodings
def test_latin1_byte_names_file_line_and_column(tmp_path, capsys):
    """R6: a latin-1 byte in a project file (was UnicodeDecodeError)."""
    p = tmp_path / "l1.toml"
    p.write_bytes(b'title = "x"\n# caf\xe9\n')
    err = _refine_error(capsys, p)
    assert f"{p}, line 2: byte 0xe9 at column 6 (offset 17) is not UTF-8" in err


def test_bom_is_accepted_and_utf16_refused(tmp_path, capsys):
    p = urea_project(tmp_path)
    p.write_bytes(b"\xef\xbb\xbf" + BASE.encode())
    assert load_project(p).data["title"] == "urea, scale only"
    p.write_bytes(BASE.encode("utf-16"))
    assert "UTF-16; save it as UTF-8" in _refine_error(capsys, p)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_and_folder_refused_at_once(tmp_path, capsys):
    fifo = tmp_path / "p.toml"
    os.mkfifo(fifo)
    done = []
    t = threading.Thread(target=lambda: done.append(_refine_error(capsys, fifo)), daemon=True)
    t.start()
    t.join(10)
    assert done and "not a regular file" in done[0]
    assert "is a folder" in _refine_error(capsys, tmp_path)


def test_toml_syntax_error_has_a_line(tmp_path, capsys):
    p = tmp_path / "p.toml"
    p.write_text('title = "x"\noutput = \n', encoding="utf-8")
    assert f"{p}, line 2: TOML syntax error" in _refine_error(capsys, p)


# ----------------------------------------------------------------------------- keys
def test_table_for_an_enum_key(tmp_path, capsys):
    """R7: kind = {a = 1} (was TypeError: unhashable type)."""
    p = tmp_path / "k.toml"
    p.write_text(
        '[structure]\ncif="x"\n[[datasets]]\nname="x"\nkind={a=1}\nfile="y"\n'
        '[[stages]]\nname="s"\nfree=["*"]\n',
        encoding="utf-8",
    )
    err = _refine_error(capsys, p)
    assert f"{p}, line 5: datasets[0].kind:" in err and "'xray', 'und', 'pnd'" in err


BAD = [
    # (replace this, by this, key path in the message, words of the message)
    ("max_cycles = 5", "max_cycles = 0", "refinement.max_cycles", ">= 1"),
    ("max_cycles = 5", "max_cycles = 99999999999999999999", "refinement.max_cycles", "<= 100000"),
    ("max_cycles = 5", "tol = nan", "refinement.tol", "not a finite number"),
    ("max_cycles = 5", "tol = -0.01", "refinement.tol", "> 0"),
    ("max_cycles = 5", "max_shift_su = inf", "refinement.max_shift_su", "not a finite"),
    ("max_cycles = 5", "correlation_threshold = 2", "refinement.correlation_threshold", "<= 1"),
    ('file = "urea.hkl"', 'file = "urea.hkl"\nwavelength = 0', "datasets[0].wavelength", "> 0"),
    (
        'file = "urea.hkl"',
        'file = "urea.hkl"\nwavelength = inf',
        "datasets[0].wavelength",
        "finite",
    ),
    ('file = "urea.hkl"', 'file = "urea.hkl"\npath_length = -1', "datasets[0].path_length", "> 0"),
    (
        'file = "urea.hkl"',
        'file = "urea.hkl"\nuser_weight = nan',
        "datasets[0].user_weight",
        "finite",
    ),
    ('file = "urea.hkl"', 'file = "urea.hkl"\nsmax = 1e308', "datasets[0].smax", "<= 10"),
    ('file = "urea.hkl"', 'file = "urea.hkl"\nsmin = 0.8\nsmax = 0.5', "datasets[0].smin", "below"),
    ('file = "urea.hkl"', 'file = "urea.hkl"\nomit = [[1, 2]]', "datasets[0].omit", "[h, k, l]"),
    ('file = "urea.hkl"', 'file = "urea.hkl"\nomit = [["a", 1, 2]]', "datasets[0].omit", "three"),
    ('file = "urea.hkl"', 'file = "urea.hkl"\nomit = [[0, 0, 0]]', "datasets[0].omit", "0, 0, 0"),
    ('file = "urea.hkl"', 'file = "urea.hkl"\nomit = [[1, 1, 1e9]]', "datasets[0].omit", "three"),
    ('file = "urea.hkl"', 'file = "urea.hkl"\nomit = [1, 2, 3]', "datasets[0].omit[0]", "an array"),
    ('default = "iam"', 'default = "iam"\nh_kappa = -1.2', "model.h_kappa", "> 0"),
    (
        'default = "iam"',
        'default = "iam"\n[model.atoms.C1]\nkappa = inf',
        "model.atoms.C1.kappa",
        "finite",
    ),
    ('default = "iam"', 'default = "iam"\n[model.atoms.C1]\npv = -4', "model.atoms.C1.pv", ">= 0"),
    (
        'default = "iam"',
        'default = "iam"\n[model.atoms.C1]\nspin = {P00 = "a"}',
        "model.atoms.C1.spin.P00",
        "a number",
    ),
    ('free = ["*.scale"]', 'free = ["*.scale"]\nmax_cycles = -3', "stages[0].max_cycles", ">= 1"),
    ('free = ["*.scale"]', 'free = ["*.scale"]\nsmax = -1', "stages[0].smax", "> 0"),
    ('title = "urea', 'title = "a\\u0000b"\n#', "title", "control character"),
    ("[refinement]", "[constraints]\ncharge = nan\n[refinement]", "constraints.charge", "finite"),
    (
        "[refinement]",
        "[constraints]\nsame = [[1, 2]]\n[refinement]",
        "constraints.same",
        "group 0 [1, 2]: expected names",
    ),
    (
        "[refinement]",
        "[[restraints]]\nparameter = 'x'\ntarget = 0\nsigma = 0\n[refinement]",
        "restraints[0].sigma",
        "> 0",
    ),
]


@pytest.mark.parametrize("old, new, key, words", BAD, ids=[b[2] + ":" + b[1][-12:] for b in BAD])
def test_bad_value_names_the_key_and_the_range(tmp_path, capsys, old, new, key, words):
    p = urea_project(tmp_path)
    assert old in BASE
    p.write_text(BASE.replace(old, new, 1), encoding="utf-8")
    err = _refine_error(capsys, p)
    assert re.match(rf"chasm: error: {re.escape(str(p))}, line \d+: {re.escape(key)}", err), err
    assert words in err


PND_BAD = [
    ("polarisation = -0.9", "polarisation = 5", "polarisation", "<= 1"),
    ("polarisation = -0.9", "polarisation = 0", "polarisation", "not allowed"),
    ("efficiency = 0.95", "efficiency = 7", "efficiency", "<= 1"),
    ("field = 5.0", "field = 0", "field", "> 0"),
    ("field_direction = [0.3, 1.0, 0.2]", "field_direction = [0, 0, 0]", "field_direction", "no "),
    ("radius = 10.0", "radius = -1", "radius", ">= 0"),
    ("mosaicity = 10.0", "mosaicity = -1", "mosaicity", ">= 0"),
    ("temperature = 2.0", "temperature = -5", "temperature", "> 0"),
]

PND = """[structure]
cif = "urea.cif"
[model]
magnetic = ["C1"]
[[datasets]]
name = "pnd"
kind = "pnd"
file = "p.rcif"
radius = 10.0
mosaicity = 10.0
temperature = 2.0
[datasets.simulate]
polarisation = -0.9
efficiency = 0.95
field = 5.0
field_direction = [0.3, 1.0, 0.2]
[[stages]]
name = "s"
free = ["*"]
"""


@pytest.mark.parametrize("old, new, key, words", PND_BAD, ids=[b[1] for b in PND_BAD])
def test_bad_flipping_ratio_experiment(tmp_path, capsys, old, new, key, words):
    p = tmp_path / "p.toml"
    assert old in PND
    p.write_text(PND.replace(old, new), encoding="utf-8")
    err = _refine_error(capsys, p)
    assert re.match(rf"chasm: error: {re.escape(str(p))}, line \d+: datasets\[0\]\.", err)
    assert key in err and words in err
    assert load_project(_good(tmp_path)).data["datasets"][0]["radius"] == 10.0


def _good(tmp_path: Path) -> Path:
    p = tmp_path / "good.toml"
    p.write_text(PND, encoding="utf-8")
    return p


# ----------------------------------------------------------------------------- data
def _with_hkl(tmp_path: Path, text: str) -> Path:
    p = urea_project(tmp_path)
    (tmp_path / "urea.hkl").write_text(text, encoding="utf-8")
    return p


def test_all_f2_negative_is_refused(tmp_path, capsys):
    """Was exit 0 with scale -1.045 and R1 0.0000."""
    cif = urea_project(tmp_path).parent / "urea.cif"
    p = _with_hkl(tmp_path, hkl_text(cif, f2=lambda h: -5.0 - sum(h)))
    err = _refine_error(capsys, p)
    assert re.search(r"urea.hkl: datasets\[0\] \(xray\): all \d+ F² are <= 0 \(largest -6\)", err)


def test_only_absences_refused_and_strong_absences_listed_strongest_first(tmp_path, capsys):
    """Was exit 0 with scale 2.7e34; check_absences was never called."""
    p = _with_hkl(tmp_path, "1 0 0 13.4 0.05\n3 0 0 134.8 0.8\n0 5 0 10.0 0.1\n")
    assert "all 3 reflections are systematic absences of P -4 21 m" in _refine_error(capsys, p)
    cif = tmp_path / "urea.cif"
    (tmp_path / "urea.hkl").write_text(
        "1 0 0 13.4 0.05\n0 3 0 134.8 0.8\n" + hkl_text(cif), encoding="utf-8"
    )
    refl, found = check_f2_data(read_hkl4(tmp_path / "urea.hkl"), read_cif(cif), "xray")
    assert len(found) == 1
    assert re.search(
        r"strongest: 1 0 0 F²/σ = 268\.0 \(line 1\); 0 3 0 F²/σ = 168\.5 \(line 2\)", found[0]
    )
    assert main(["refine", str(p), "-q", "--no-report"]) == 0
    out = capsys.readouterr().out
    assert "2 of 2 systematic absences" in out


def test_tiny_sigma_is_refused_by_file_line(tmp_path, capsys):
    cif = urea_project(tmp_path).parent / "urea.cif"
    lines = hkl_text(cif).splitlines(keepends=True)
    lines[6] = lines[6].rsplit(" ", 1)[0] + " 1e-300\n"
    p = _with_hkl(tmp_path, "".join(lines))
    err = _refine_error(capsys, p)
    assert "urea.hkl, line 7: datasets[0] (xray): σ(F²) = 1e-300" in err


def test_duplicate_differing_tenfold_warns_with_rint(tmp_path):
    cif = urea_project(tmp_path).parent / "urea.cif"
    text = hkl_text(cif)
    first = text.splitlines()[0].split()
    dup = f"{first[0]} {first[1]} {first[2]} {10 * float(first[3])} {first[4]}\n"
    (tmp_path / "urea.hkl").write_text(text + dup, encoding="utf-8")
    refl = read_hkl4(tmp_path / "urea.hkl")
    merged, found = check_f2_data(refl, read_cif(cif), "xray", merged=True)
    assert len(merged) == len(check_f2_data(refl.subset(slice(0, -1)), read_cif(cif), "x")[0])
    assert any(re.search(r"Rint = 0\.\d+ over the \d+ reflections measured more", w) for w in found)
    assert any("differ from the mean of their equivalents" in w for w in found)
    _, found = check_f2_data(refl, read_cif(cif), "xray", merged=False)
    assert any("merge = false" in w for w in found)
    _, clean = check_f2_data(
        read_hkl4(tmp_path / "urea.hkl").subset(slice(0, -1)), read_cif(cif), "x"
    )
    assert clean == []


# ----------------------------------------------------------------------------- spins
CU = """[structure]
cif = "cu.cif"
[model]
magnetic = ["Cu1", "O1"]
[[datasets]]
name = "xray"
kind = "xray"
file = "cu.hkl"
[constraints]
total_spin = {spin}
[[stages]]
name = "s"
free = ["xray.scale"]
"""


def _cu_project(tmp_path: Path, spin: float) -> Path:
    cif = tmp_path / "cu.cif"
    cif.write_text(
        files("chasm.examples").joinpath("seed_cu_dimer.cif").read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    (tmp_path / "cu.hkl").write_text(hkl_text(cif), encoding="utf-8")
    p = tmp_path / "cu.toml"
    p.write_text(CU.format(spin=spin), encoding="utf-8")
    return p


def test_total_spin_the_atoms_cannot_carry_is_refused(tmp_path, capsys):
    """Was exit 0 with Cu1 = 1428.6 muB and N3 = -740.0 muB."""
    p = _cu_project(tmp_path, 60)
    err = _refine_error(capsys, p)
    assert f"{p}, line 10: constraints.total_spin: 60 muB cannot be carried" in err
    assert "at most 10 muB" in err and "Cu1 6 x 1, O1 4 x 1" in err


def test_spin_population_beyond_capacity_is_warned(tmp_path):
    built = build(load_project(_cu_project(tmp_path, 9.5)))  # feasible in total, not on Cu1
    found = spin_warnings(built.crystal, built.models)
    assert spin_capacity("Cu") == 6 and spin_capacity("H") == 1 and spin_capacity("O") == 4
    assert len(found) == 1 and found[0].startswith("Cu1: spin population")
    match_total_spin(built.crystal, built.models, 1.0)  # the same start scaled to 1 muB
    assert spin_warnings(built.crystal, built.models) == []


def test_charge_beyond_the_valence_shells_is_refused(tmp_path):
    p = urea_project(tmp_path)
    p.write_text(
        BASE.replace('default = "iam"', 'default = "hc"').replace(
            "[refinement]", "[constraints]\ncharge = 500\n[refinement]"
        ),
        encoding="utf-8",
    )
    with pytest.raises(InputError, match=r"constraints.charge: 500 e is outside"):
        build(load_project(p))


@pytest.mark.parametrize(
    "row, words",
    [
        (
            "99999999999999999999 0 1 13.43 0.05",
            r"line 60: (datasets\[0\] \(xray\): indices|index h = 9+ is outside)",
        ),
        (
            "9999 0 1 13.43 0.05",
            r"line 60: .*\(?9999,? 0,? 1\)? .*(sin\(theta\)/lambda|sinθ/λ) = \d+",
        ),
    ],
    ids=["R8b index >= 2^63", "R10 index 9999"],
)
def test_indices_beyond_reach_are_refused_by_line(tmp_path, capsys, row, words):
    """R8b, R10: an index >= 2^63 (gemmi TypeError) or h = 9999 (286 GiB) in refine."""
    import warnings

    cif = urea_project(tmp_path).parent / "urea.cif"
    p = _with_hkl(tmp_path, hkl_text(cif) + row + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the reader's cast of 1e20
        err = _refine_error(capsys, p)
    assert re.search(rf"urea.hkl, {words}", err), err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_as_data_file_is_refused_at_once(tmp_path, capsys):
    p = urea_project(tmp_path)
    (tmp_path / "urea.hkl").unlink()
    os.mkfifo(tmp_path / "urea.hkl")
    err = _refine_error(capsys, p)
    assert "datasets[0].file: file of 'xray' is not a regular file" in err


def test_numbers_of_thousands_of_digits(tmp_path, capsys):
    p = urea_project(tmp_path)
    p.write_text(BASE.replace("max_cycles = 5", "max_cycles = " + "9" * 5000), encoding="utf-8")
    assert "numbers of thousands of digits" in _refine_error(capsys, p)
    p.write_text(BASE.replace("max_cycles = 5", "tol = " + "9" * 4000), encoding="utf-8")
    err = _refine_error(capsys, p)
    assert "refinement.tol: 999" in err and "is not a finite number" in err and len(err) < 400

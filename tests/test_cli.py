"""The command line: ``chasm sf`` output and error handling, ``chasm demo``."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from chasm.cli import main
from chasm.crystal.cif import read_cif
from chasm.demo import run_demo
from chasm.io.shelx_hkl import read_hkl4
from chasm.scattering.engine import StructureFactorEngine
from chasm.scattering.sfcalc import default_models


def _example_cif(tmp_path):
    from importlib.resources import files

    path = tmp_path / "urea.cif"
    path.write_text(files("chasm.examples").joinpath("urea.cif").read_text())
    return path


def test_sf_writes_csv_in_input_order(tmp_path, shared_data):
    folder = shared_data / "xray" / "l-alanine"
    out = tmp_path / "fc.csv"
    assert main(["sf", str(folder / "iam.cif"), str(folder / "iam.hkl"), "--out", str(out)]) == 0
    with open(out) as fh:
        header = fh.readline().strip()
        rows = list(csv.reader(fh))
    assert header == "h,k,l,stol,F,phase_deg,A,B"
    refl = read_hkl4(folder / "iam.hkl")
    assert len(rows) == len(refl)
    hkl = np.array([[int(r[0]), int(r[1]), int(r[2])] for r in rows])
    assert np.array_equal(hkl, refl.hkl)
    vals = np.array([[float(x) for x in r[3:]] for r in rows])
    crystal = read_cif(folder / "iam.cif")
    eng = StructureFactorEngine(crystal, default_models(crystal), refl.hkl)
    F = eng.compute().F
    np.testing.assert_allclose(vals[:, 0], eng.stol, atol=1e-6)
    np.testing.assert_allclose(vals[:, 1], np.abs(F), atol=1e-5)
    np.testing.assert_allclose(vals[:, 3] + 1j * vals[:, 4], F, atol=1e-5)
    phase = np.radians(vals[:, 2])
    np.testing.assert_allclose(vals[:, 1] * np.cos(phase), vals[:, 3], atol=1e-4)


@pytest.mark.parametrize("model,ff", [("iam", "it92"), ("iam", "koga"), ("hc", "it92")])
def test_sf_models(tmp_path, model, ff):
    cif = _example_cif(tmp_path)
    hkl = tmp_path / "x.hkl"
    hkl.write_text("   2   0   0  10.0   1.0\n   1   1   0  10.0   1.0\n   0   0   0   0.0   0.0\n")
    out = tmp_path / "o.csv"
    rc = main(["sf", str(cif), str(hkl), "--model", model, "--form-factors", ff, "--out", str(out)])
    assert rc == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 3 and lines[1].startswith("2,0,0,")
    assert float(lines[2].split(",")[4]) > 20.0  # 110 is strong in urea


def _one_line_error(capsys, argv):
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and err.startswith("chasm: error:")
    return err


def test_sf_errors(tmp_path, capsys):
    cif = _example_cif(tmp_path)
    good = tmp_path / "g.hkl"
    good.write_text("   2   0   0  10.0   1.0\n")
    bad = tmp_path / "b.hkl"
    bad.write_text("   2   0   0  10.0   1.0\n   1   x   0  10.0   1.0\n")
    out = str(tmp_path / "o.csv")
    err = _one_line_error(capsys, ["sf", str(tmp_path / "missing.cif"), str(good), "--out", out])
    assert "missing.cif" in err
    err = _one_line_error(capsys, ["sf", str(cif), str(bad), "--out", out])
    assert "b.hkl" in err and "line 2" in err
    badcif = tmp_path / "bad.cif"
    badcif.write_text(cif.read_text().replace("N1 N ", "N1 Xx "))
    err = _one_line_error(capsys, ["sf", str(badcif), str(good), "--out", out])
    assert "bad.cif" in err and "line" in err and "Xx" in err
    assert not (tmp_path / "o.csv").exists()


@pytest.mark.slow
def test_demo_runs_the_seed_route(tmp_path, capsys):
    """A small version of the demo: every stage converges, the spin populations of the
    PND-only and joint stages are within 3 su of the truth, the files are written."""
    out = run_demo(output=tmp_path, xray_smax=0.6, und_count=1000, maps=False)
    text = capsys.readouterr().out
    assert "Table 1" in text and "stage d: joint" in text
    assert all("NOT converged" not in line for line in out["stages"])
    for key in ("pnd_only", "joint"):
        for lab, (value, su) in out[key]["populations"].items():
            assert su > 0 and abs(value - out["truth"][lab]) < 3 * su + 1e-3, (key, lab, value, su)
    assert all(f.is_file() for f in out["files"])
    # the report comes with the demo: PND-only stage beside the final model in the spin table
    md = (tmp_path / "report.md").read_text()
    assert (tmp_path / "report.html").is_file()
    assert "| stage b: PND spin | final |" in md
    assert "Cu1 moment m (μB)" in md
    # per-set GOF in the data-set table: parameters shared among the sets, as the stage line
    rows = {r.split("|")[1].strip(): r.split("|") for r in md.splitlines() if r.startswith("| ")}
    column = [c.strip() for c in rows["data set"]].index("GOF")  # by header, not by position
    printed = out["stages"][-1]
    for name in ("xray", "und", "pnd"):
        gof = float(rows[name][column])
        assert f"{name}: GOF {gof:.3f}" in printed, (name, gof, printed)


@pytest.mark.slow
def test_simulate_command_writes_the_seed_data(tmp_path, capsys):
    """`chasm simulate` is reachable from the main parser; existing files are kept."""
    from chasm.examples.seed_project import write_seed_project

    write_seed_project(tmp_path)
    project = tmp_path / "project.toml"
    text = (
        project.read_text()
        .replace("smax = 1.0", "smax = 0.4")
        .replace("count = 2000", "count = 200")
    )
    project.write_text(text)
    assert main(["simulate", str(project), "-q"]) == 0
    files = [tmp_path / f for f in ("xray.hkl", "und.hkl", "pnd.rcif")]
    assert all(f.is_file() and f.stat().st_size > 0 for f in files)
    before = [f.read_bytes() for f in files]
    capsys.readouterr()
    assert main(["simulate", str(project), "-q", "--seed", "5"]) != 0  # would overwrite
    err = capsys.readouterr().err
    assert "xray.hkl" in err and "--force" in err
    assert [f.read_bytes() for f in files] == before
    assert main(["simulate", str(project), "-q", "--seed", "5", "--force"]) == 0
    assert [f.read_bytes() for f in files] != before


def test_demo_write_project_then_init_with_total_spin(tmp_path, capsys):
    """`chasm demo --write-project` writes the example's project (demo sizes), refuses to
    overwrite; `chasm init --total-spin` writes the constraint instead of the placeholder."""
    from chasm.project.init import TOTAL_SPIN_PLACEHOLDER
    from chasm.project.project import load_project

    folder = tmp_path / "seed"
    assert main(["demo", "--write-project", str(folder)]) == 0
    text = (folder / "project.toml").read_text()
    assert "smax = 0.7" in text and "count = 1000" in text and "total_spin = 1.016" in text
    load_project(folder / "project.toml")  # a valid project
    capsys.readouterr()
    assert main(["demo", "--write-project", str(folder)]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["demo", "--write-project", str(folder), "--force", "--full"]) == 0
    assert "smax = 1.0" in (folder / "project.toml").read_text()
    # init on the truth CIF with the total spin given (no data files needed for the text)
    from chasm.project.init import project_text

    res = project_text(folder / "truth.cif", magnetic=["Cu1", "N1"], total_spin=1.016)
    assert "total_spin = 1.016" in res.text and TOTAL_SPIN_PLACEHOLDER not in res.text
    assert not any("PLACEHOLDER" in g for g in res.guesses)
    res = project_text(folder / "truth.cif", magnetic=["Cu1", "N1"])
    assert TOTAL_SPIN_PLACEHOLDER in res.text

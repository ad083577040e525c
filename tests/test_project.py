"""Project files end to end: chasm init -> chasm refine on simulated urea data, bad input.

The simulated case needs no external data: the bundled urea structure, a
Hansen-Coppens "truth" with a few site-symmetry-allowed multipoles, F² with
2 % Gaussian noise of known sigma, written as HKLF 4.
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from pathlib import Path

import gemmi
import numpy as np
import pytest

from chasm.cli import main
from chasm.io.rhocif import read_rhocif
from chasm.project.build import build
from chasm.project.project import load_project
from chasm.scattering.engine import StructureFactorEngine

STABLE_DATASET_KEYS = {"kind", "n_obs", "n_par", "chi2", "gof", "R1", "wR2", "Rw"}


def _write_hkl(path: Path, hkl, f2, sigma) -> None:
    with open(path, "w") as fh:
        for (h, k, l), y, s in zip(hkl, f2, sigma, strict=True):
            fh.write(f"{h:4d}{k:4d}{l:4d}{y:8.2f}{s:8.2f}\n")
        fh.write(f"{0:4d}{0:4d}{0:4d}{0:8.2f}{0:8.2f}\n")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """A urea project written by `chasm init` and data simulated from an HC model."""
    folder = tmp_path_factory.mktemp("urea_sim")
    cif = folder / "urea.cif"
    cif.write_text(resources.files("chasm.examples").joinpath("urea.cif").read_text())
    cell = gemmi.UnitCell(5.565, 5.565, 4.684, 90, 90, 90)
    sg = gemmi.SpaceGroup("P -4 21 m")
    hkl = gemmi.make_miller_array(cell, sg, 1 / (2 * 1.2))
    hkl = hkl[~sg.operations().systematic_absences(hkl)]
    hklfile = folder / "urea.hkl"
    _write_hkl(hklfile, hkl, np.ones(len(hkl)), np.ones(len(hkl)))
    project = folder / "project.toml"
    assert main(["init", str(cif), "--xray", str(hklfile), "-o", str(project)]) == 0
    text = project.read_text()
    # one user constraint: two kappa' tied together (equal values, equal su's); init's
    # theoretical kappa' differ for C and N, so the test starts both from 1 instead
    text = "".join(x for x in text.splitlines(True) if not x.startswith("kappa_prime = "))
    same = 'same = [["C1.kappa_prime", "N1.kappa_prime"]]'
    text = text.replace("charge = 0.0", f"charge = 0.0\n{same}")
    # kappa' is fixed by default (issue 14); free it in the last stage to test the tie
    head, tail = text.rsplit('"@nonH.kappa", ', 1)
    text = head + '"@nonH.kappa", "@nonH.kappa_prime", ' + tail
    project.write_text(text)
    # the truth: same frames and riding geometry as the refinement will use
    built = build(load_project(project))
    cr, models = built.crystal, built.models
    truth = {
        "C1": {4: 0.12},
        "O1": {4: -0.10, 1: 0.05},
        "N1": {4: 0.06},
        "H1": {1: 0.12},
        "H2": {1: 0.10},
    }
    for atom, m in zip(cr.atoms, models, strict=True):
        for k, v in truth.get(atom.label, {}).items():
            m.plm[k] = v
        atom.uiso = atom.uiso  # isotropic as in the file
    fc2 = np.abs(StructureFactorEngine(cr, models, hkl).compute().F) ** 2
    scale = 0.5
    rng = np.random.default_rng(7)
    sigma = 0.01 * scale * fc2 + 0.05
    f2 = scale * fc2 + rng.normal(0.0, sigma)
    _write_hkl(hklfile, hkl, f2, sigma)
    digests = {p.name: _digest(p) for p in (cif, hklfile, project)}
    return {"folder": folder, "project": project, "cif": cif, "hkl": hklfile, "digests": digests}


@pytest.fixture(scope="module")
def refined(simulated):
    out = simulated["folder"] / "out"
    code = main(["refine", str(simulated["project"]), "--output", str(out), "-q"])
    return {"code": code, "out": out, **simulated}


def test_refine_writes_stable_result_json(refined):
    assert refined["code"] == 0
    res = json.loads((refined["out"] / "result.json").read_text())
    assert isinstance(res["converged"], bool) and res["converged"]
    assert isinstance(res["cycles"], int) and res["cycles"] > 0
    assert res["score"]["scheme"] in ("UNIT", "NLOG", "LOG")
    assert isinstance(res["score"]["value"], float)
    ds = res["datasets"]["xray"]
    assert STABLE_DATASET_KEYS <= set(ds) and ds["kind"] == "xray"
    assert ds["n_obs"] > 300 and ds["n_par"] > 30
    for entry in res["parameters"].values():
        assert set(entry) == {"value", "su", "free"}
        assert entry["su"] is None or entry["su"] > 0
    for a, b, rho in res["correlations"]:
        assert a in res["parameters"] and b in res["parameters"] and abs(rho) <= 1
    # the data were simulated with known sigma: the model must fit to noise level
    assert 0.8 < ds["gof"] < 1.3, ds
    assert ds["R1"] < 0.04


def test_inputs_untouched_and_outputs_present(refined):
    for p in (refined["cif"], refined["hkl"], refined["project"]):
        assert _digest(p) == refined["digests"][p.name]
    for name in ("result.json", "model.cif", "listing.txt"):
        assert (refined["out"] / name).is_file()
    listing = (refined["out"] / "listing.txt").read_text()
    assert "residual density" in listing and "N1 rides" not in listing
    assert re.search(r"H1 on N1 at 1\.015 A", listing)


def test_constraints_hold_every_cycle_and_equal_su(refined):
    res = json.loads((refined["out"] / "result.json").read_text())
    for st in res["stages"]:
        assert st["max_constraint_residual"] < 1e-10, st
    p = res["parameters"]
    a, b = p["C1.kappa_prime"], p["N1.kappa_prime"]
    assert a["value"] == pytest.approx(b["value"], abs=1e-12)
    assert a["su"] == pytest.approx(b["su"], rel=1e-9)
    # site symmetry: C1 on -4.. mm2 keeps x = 0, y = 1/2
    assert p["C1.x"]["value"] == pytest.approx(0.0, abs=1e-12)
    assert p["C1.y"]["value"] == pytest.approx(0.5, abs=1e-12)


def test_model_cif_reads_back_and_keeps_riding_distances(refined):
    crystal, models = read_rhocif(refined["out"] / "model.cif")
    res = json.loads((refined["out"] / "result.json").read_text())
    for atom in crystal.atoms:
        assert atom.xyz[0] == res["parameters"][f"{atom.label}.x"]["value"]
    n = crystal.frac_to_cart(crystal.atoms[crystal.atom_index("N1")].xyz)
    for h in ("H1", "H2"):
        d = np.linalg.norm(crystal.frac_to_cart(crystal.atoms[crystal.atom_index(h)].xyz) - n)
        assert d == pytest.approx(1.015, abs=1e-9)
    # the model read back reproduces the reported R1
    from chasm.io.shelx_hkl import merge, read_hkl4

    refl = merge(read_hkl4(refined["hkl"]), crystal)[0]
    fc2 = np.abs(StructureFactorEngine(crystal, models, refl.hkl).compute().F) ** 2
    k = res["parameters"]["xray.scale"]["value"]
    ext = res["parameters"].get("xray.extinction")  # init's EXTI (a multipole project)
    if ext is not None:
        from chasm.data.reflections import stol
        from chasm.scattering.extinction import bragg_trig, shelx_exti

        s2t = bragg_trig(stol(refl.hkl, crystal), crystal.wavelength)[0]
        fc2 = fc2 * shelx_exti(fc2, ext["value"], crystal.wavelength, s2t)[0]
    fo, fc = np.sqrt(np.maximum(refl.f2, 0)), np.sqrt(k * fc2)
    r1 = np.sum(np.abs(fo - fc)) / np.sum(fo)
    assert r1 == pytest.approx(res["datasets"]["xray"]["R1"], rel=1e-9)


# ---------------------------------------------------------------- bad input
def _variant(simulated, tmp_path, old: str, new: str, count: int = 1) -> Path:
    text = simulated["project"].read_text()
    assert old in text
    p = tmp_path / "project.toml"
    text = text.replace(old, new, count)
    text = re.sub(r'cif = "([^"]+)"', f'cif = "{simulated["cif"]}"', text)
    text = re.sub(r'file = "([^"]+)"', f'file = "{simulated["hkl"]}"', text)
    p.write_text(text)
    return p


def _fails(capsys, project: Path, *patterns: str) -> str:
    code = main(["refine", str(project), "--output", str(project.parent / "out"), "-q"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and err.startswith("chasm: error:")
    assert len(err.strip().splitlines()) == 1, err
    for pat in patterns:
        assert re.search(pat, err), (pat, err)
    return err


def test_unknown_key_names_path_and_line(simulated, tmp_path, capsys):
    p = _variant(simulated, tmp_path, "h_lmax = 1", "h_lmax = 1\nhlmax = 2")
    _fails(capsys, p, r"model\.hlmax", r"unknown key", r"line \d+")


def test_wrong_type_names_key(simulated, tmp_path, capsys):
    p = _variant(simulated, tmp_path, "max_cycles = 30", 'max_cycles = "many"')
    _fails(capsys, p, r"refinement\.max_cycles", r"expected an integer")


def test_unknown_atom_in_constraint(simulated, tmp_path, capsys):
    p = _variant(simulated, tmp_path, '"N1.kappa_prime"]]', '"N9.kappa_prime"]]')
    _fails(capsys, p, r"constraints\.same\[0\]", r"N9\.kappa_prime", r"matches no parameter")


def test_pattern_matching_nothing(simulated, tmp_path, capsys):
    p = _variant(simulated, tmp_path, 'free = ["*.scale"]', 'free = ["*.scale", "Q1.x"]')
    _fails(capsys, p, r"stages\[0\]\.free", r"Q1\.x")


def test_empty_dataset_after_cutoffs(simulated, tmp_path, capsys):
    p = _variant(simulated, tmp_path, 'observable = "F2"', 'observable = "F2"\nsmin = 3.0')
    _fails(capsys, p, r"no reflection left after the cut-offs", r"smin=3\.0")


def test_singular_matrix_names_parameters(simulated, tmp_path, capsys):
    # all multipoles start at zero: no observation depends on kappa'
    p = _variant(simulated, tmp_path, 'free = ["*.scale"]', 'free = ["*.scale", "O1.kappa_prime"]')
    _fails(capsys, p, r"singular", r"O1\.kappa_prime")


def test_init_refuses_to_overwrite(simulated, capsys):
    code = main(["init", str(simulated["cif"]), "-o", str(simulated["project"])])
    assert code == 2 and "exists" in capsys.readouterr().err


def test_reference_page_lists_every_key():
    import sys

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "tools"))
    try:
        from build_project_doc import table
    finally:
        sys.path.pop(0)
    text = (root / "docs" / "project-file.md").read_text(encoding="utf-8")
    assert table() in text, "docs/project-file.md is stale: run python tools/build_project_doc.py"


def test_missing_data_file_names_the_key_and_file(simulated, tmp_path, capsys):
    p = _variant(simulated, tmp_path, 'observable = "F2"', 'observable = "F2"')
    text = re.sub(r'file = "([^"]+)"', 'file = "nowhere/missing.hkl"', p.read_text())
    p.write_text(text)
    _fails(capsys, p, r"missing\.hkl", r"datasets\[0\]\.file|not found|no such|does not exist")


def test_missing_structure_file_is_named(simulated, tmp_path, capsys):
    p = _variant(simulated, tmp_path, 'observable = "F2"', 'observable = "F2"')
    text = re.sub(r'cif = "([^"]+)"', 'cif = "gone.cif"', p.read_text())
    p.write_text(text)
    _fails(capsys, p, r"structure\.cif: structure file not found: .*gone\.cif")

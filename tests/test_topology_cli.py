"""chasm properties RESULT --topology: properties.json, covariance.npz, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chasm.cli import main
from chasm.density.model import SphericalAtom
from chasm.examples.urea_model import build_models, example_structure
from chasm.io.rhocif import write_rhocif
from chasm.topology.analysis import SPHERICAL_NOTE
from chasm.topology.covariance import read_covariance


def _result(folder, models=None, su=None):
    cr = example_structure()
    models = build_models(cr)[0] if models is None else models
    folder.mkdir()
    write_rhocif(folder / "model.cif", cr, models, su=su)
    return cr, models


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("chasm: error:")
    return err


def test_properties_topology_writes_json(tmp_path, capsys):
    su = {"O1.Pv": 0.03, "O1.P20": 0.02, "C1.P30": 0.02, "N1.kappa": 0.004}
    _result(tmp_path / "res", su=su)
    assert main(["properties", str(tmp_path / "res"), "--topology", "--grid-step", "0"]) == 0
    out = capsys.readouterr().out
    assert "BCP" in out and "wrote" in out
    data = json.loads((tmp_path / "res" / "properties.json").read_text())
    bcps = data["topology"]["bond_critical_points"]
    bonds = {tuple(sorted(b["atoms"])) for b in bcps}
    assert {("C1", "O1"), ("C1", "N1"), ("H1", "N1"), ("H2", "N1")} <= bonds
    co = next(b for b in bcps if sorted(b["atoms"]) == ["C1", "O1"])
    assert co["su"]["rho"] > 0 and co["values"]["laplacian"] < 0
    assert any("without correlations" in n for n in data["topology"]["notes"])


def test_properties_spherical_model_says_what_it_is(tmp_path, capsys):
    cr = example_structure()
    models = [SphericalAtom(a.element, "koga") for a in cr.atoms]
    _result(tmp_path / "iam", models=models)
    assert main(["properties", str(tmp_path / "iam"), "--topology", "--grid-step", "0"]) == 0
    data = json.loads((tmp_path / "iam" / "properties.json").read_text())
    assert SPHERICAL_NOTE in data["topology"]["notes"]


def test_properties_bad_input(tmp_path, capsys):
    err = _one_line_error(capsys, ["properties", str(tmp_path / "absent"), "--topology"])
    assert "no such result folder" in err
    (tmp_path / "empty").mkdir()
    err = _one_line_error(capsys, ["properties", str(tmp_path / "empty"), "--topology"])
    assert "model.cif is missing" in err
    _result(tmp_path / "res")
    err = _one_line_error(capsys, ["properties", str(tmp_path / "res")])
    assert "--topology" in err
    err = _one_line_error(
        capsys, ["properties", str(tmp_path / "res"), "--basins", "--basin-step", "0.001"]
    )
    assert "spacing" in err
    (tmp_path / "res" / "covariance.npz").write_text("garbage")
    err = _one_line_error(capsys, ["properties", str(tmp_path / "res"), "--topology"])
    assert "covariance" in err


def test_covariance_file_round_trip(tmp_path):
    from chasm.topology.covariance import write_covariance

    class Params:
        names = ["a.Pv", "a.kappa", "scale"]

    class Ref:
        params = Params()
        n_struct = 2
        outcomes = []

    assert write_covariance(tmp_path, Ref()) is None
    assert read_covariance(tmp_path) is None
    cov = np.array([[4.0, 1.0], [1.0, 9.0]])
    np.savez(tmp_path / "covariance.npz", names=np.array(Params.names[:2]), cov=cov)
    names, c, _ = read_covariance(tmp_path)
    assert names == ["a.Pv", "a.kappa"]
    np.testing.assert_array_equal(c, cov)


@pytest.mark.slow
def test_properties_of_refined_urea(tmp_path, shared_data, capsys):
    """Real data: init + refine (κ' fixed) + properties; Morse holds, covalent BCPs present."""
    import re

    proj = tmp_path / "urea.toml"
    xr = shared_data / "xray" / "urea"
    assert main(["init", str(xr / "iam.cif"), "--xray", str(xr / "iam.hkl"), "-o", str(proj)]) == 0
    text = proj.read_text()
    text = re.sub(
        r'\[\[stages\]\]\nname = "kappa-prime".*?(?=\[\[stages\]\])', "", text, flags=re.S
    )
    text = text.replace('"@nonH.kappa", "@nonH.kappa_prime",', '"@nonH.kappa",')
    proj.write_text(text)
    out = tmp_path / "out"
    main(["refine", str(proj), "--output", str(out), "-q", "--no-report"])
    assert (out / "covariance.npz").is_file()
    assert main(["properties", str(out), "--topology"]) == 0
    data = json.loads((out / "properties.json").read_text())["topology"]
    assert data["charge"]["morse_ok"]
    bonds = {tuple(sorted(b["atoms"])) for b in data["bond_critical_points"]}
    assert {("C", "O"), ("C", "N"), ("H1", "N"), ("H2", "N")} <= bonds

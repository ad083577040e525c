"""Multipole refinements of real X-ray data from a project file chasm wrote itself.

Issue 3: a Hansen-Coppens refinement of L-alanine and of urea (l <= 4 on C, N,
O; H riding at neutron X-H distances with l <= 1; kappa per element;
electroneutrality) must end with R1(all) at least a third below the IAM value
and a clearly lower GOF. The IAM reference is computed here from the SHELXL
model in iam.cif (IT92, its f', f'', fitted scale, w = 1/sigma^2), which
reproduces SHELXL's figures (tests/test_xray_refinement.py). A spherical-atom
project reproduces SHELXL's refinement of L-alanine as well.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from chasm.cli import main
from chasm.crystal.cif import read_cif
from chasm.io.shelx_hkl import merge, read_hkl4
from chasm.scattering.engine import StructureFactorEngine
from chasm.scattering.sfcalc import default_models
from chasm.scattering.xray import agreement_factors, weights_sigma

pytestmark = pytest.mark.slow  # validation-grade (minutes): CI runs it with -m slow


def _iam_agreement(folder):
    cr = read_cif(folder / "iam.cif")
    refl = merge(read_hkl4(folder / "iam.hkl"), cr)[0]
    fc2 = np.abs(StructureFactorEngine(cr, default_models(cr, "iam"), refl.hkl).compute().F) ** 2
    w = weights_sigma(refl.sigma)
    k = np.sum(w * refl.f2 * fc2) / np.sum(w * fc2**2)
    return agreement_factors(refl.f2, refl.sigma, k * fc2)


@pytest.mark.parametrize("compound", ["urea", "l-alanine"])
def test_multipole_refinement_beats_iam(shared_data, tmp_path, compound, capsys):
    folder = shared_data / "xray" / compound
    project = tmp_path / "project.toml"
    assert (
        main(
            ["init", str(folder / "iam.cif"), "--xray", str(folder / "iam.hkl"), "-o", str(project)]
        )
        == 0
    )
    assert main(["refine", str(project), "-q"]) == 0
    capsys.readouterr()
    res = json.loads((tmp_path / "refined" / "result.json").read_text())
    hc = res["datasets"]["xray"]
    iam = _iam_agreement(folder)
    rd = res["residual_density"]
    with capsys.disabled():
        print(
            f"\n{compound}: IAM R1={iam.r1:.4f} GOF={iam.gof:.3f} | HC R1={hc['R1']:.4f} "
            f"wR2={hc['wR2']:.4f} GOF={hc['gof']:.3f} ({hc['n_par']} par); residual "
            f"max {rd['max']:.3f} min {rd['min']:.3f} rms {rd['rms']:.3f} e/A^3"
        )
    assert res["converged"]
    assert hc["R1"] <= (2.0 / 3.0) * iam.r1
    assert hc["gof"] < 0.75 * iam.gof
    assert all(s["max_constraint_residual"] < 1e-10 for s in res["stages"])
    # electroneutrality: sum of Pv and P00 over the asymmetric unit (weights m_j)
    p = res["parameters"]
    assert abs(rd["max"]) < 0.5 and abs(rd["min"]) < 0.5
    kappas = {n: v["value"] for n, v in p.items() if n.endswith(".kappa")}
    assert all(0.8 < k < 1.25 for k in kappas.values()), kappas


def test_spherical_atom_project_reproduces_shelxl(shared_data, tmp_path):
    folder = shared_data / "xray" / "l-alanine"
    project = tmp_path / "iam.toml"
    project.write_text(f"""
title = "L-alanine IAM"
output = "iam-out"
[structure]
cif = "{folder / "iam.cif"}"
[model]
default = "iam"
riding_h = false
[[datasets]]
name = "xray"
kind = "xray"
file = "{folder / "iam.hkl"}"
[[stages]]
name = "all"
free = ["*.scale", "*.x", "*.y", "*.z", "*.U*"]
""")
    assert main(["refine", str(project), "-q"]) == 0
    res = json.loads((tmp_path / "iam-out" / "result.json").read_text())
    d = res["datasets"]["xray"]
    assert d["n_par"] == 83
    assert d["wR2"] == pytest.approx(0.0637, abs=3e-4)
    assert d["R1"] == pytest.approx(0.0304, abs=3e-4)
    assert d["gof"] == pytest.approx(2.251, abs=0.01)

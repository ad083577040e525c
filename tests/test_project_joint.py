"""Joint X-ray / unpolarised-neutron / polarised-neutron project files, end to end.

A small Cu complex fragment in P2_1/c (Cu1 bonded to N1 and O1, H1 riding on
N1) with a known charge and spin model: the test writes its CIF, X-ray and
neutron HKLF 4 files and a two-block rcif of flipping ratios computed by
chasm itself from the "truth" (with Gaussian noise of known sigma), runs three
stages through :func:`chasm.project.run.run_project` (X-ray charge model;
spin populations from the neutron data only; everything jointly) and checks
result.json (kinds, agreement, score factors, gradient shares), the recovered
spin populations and the listing. Then the bad-input cases of the new keys and
``chasm init --und --pnd --magnetic``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from chasm.cli import main
from chasm.errors import InputError
from chasm.project.build import build
from chasm.project.project import load_project
from chasm.project.run import run_project

CIF = """data_cu_fragment
_symmetry_space_group_name_H-M   'P 1 21/c 1'
_cell_length_a    7.100
_cell_length_b    8.300
_cell_length_c    6.900
_cell_angle_alpha 90
_cell_angle_beta  101.5
_cell_angle_gamma 90
_diffrn_radiation_wavelength 0.71073
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_U_iso_or_equiv
_atom_site_occupancy
Cu1 Cu 0.2000 0.2500 0.3000 0.0150 1
N1  N  0.4850 0.2500 0.3300 0.0200 1
O1  O  0.2000 0.4850 0.2900 0.0200 1
H1  H  0.5600 0.3450 0.3500 0.0300 1
loop_
_atom_site_aniso_label
_atom_site_aniso_U_11
_atom_site_aniso_U_22
_atom_site_aniso_U_33
_atom_site_aniso_U_12
_atom_site_aniso_U_13
_atom_site_aniso_U_23
Cu1 0.0140 0.0160 0.0150 0.0010 0.0020 -0.0005
N1  0.0190 0.0210 0.0200 0.0015 0.0030 0.0010
O1  0.0200 0.0180 0.0220 -0.0010 0.0025 0.0005
"""

PROJECT = """title = "joint test"
output = "out"

[structure]
cif = "cu.cif"

[model]
lmax = 2
h_lmax = 0
basis = "chargespin"
magnetic = ["Cu1"]

[model.atoms.Cu1]
spin_pv = 1.0
spin = {P20 = 0.0}
share_kappa = true
share_kappa_prime = true

[model.atoms.N1]
split = true
share_kappa = true
share_kappa_prime = true

[[datasets]]
name = "xray"
kind = "xray"
file = "xray.hkl"

[[datasets]]
name = "und"
kind = "und"
file = "und.hkl"

[[datasets]]
name = "pnd"
kind = "pnd"
file = "fr.rcif"
extinction = "off"

[constraints]
electroneutrality = true
total_spin = 1.0

[refinement]
tol = 0.01
max_cycles = 20

[[stages]]
name = "charge"
free = ["xray.scale", "@nonH.x", "@nonH.y", "@nonH.z", "@nonH.U*", "*.Pv", "@nonH.P2*"]
fix = ["*.N", "*.spin", "*.P2*.spin"]
data = ["xray"]

[[stages]]
name = "pnd-spin"
free = ["und.scale", "*.spin", "*.U*.N"]
data = ["und", "pnd"]

[[stages]]
name = "joint"
free = ["*.scale", "@nonH.x", "@nonH.y", "@nonH.z", "@nonH.U*", "*.Pv", "@nonH.P2*",
        "*.spin", "@H.U*.N"]
"""

#: The model the data are simulated from (chargespin names; Σ spin = 1 μB).
TRUTH = {
    "Cu1.Pv.spin": 0.80,
    "Cu1.P20.spin": 0.12,
    "Cu1.P22+.spin": -0.10,
    "N1.Pv.spin": 0.20,
    "Cu1.P20": 0.10,
    "Cu1.P22+": 0.08,
    "N1.P20": -0.06,
    "O1.P20": 0.05,
}


def _write_hkl(path: Path, hkl, f2, sigma) -> None:
    with open(path, "w") as fh:
        for (h, k, l), y, s in zip(hkl, f2, sigma, strict=True):
            fh.write(f"{h:4d}{k:4d}{l:4d}{y:8.2f}{s:8.2f}\n")
        fh.write(f"{0:4d}{0:4d}{0:4d}{0:8.2f}{0:8.2f}\n")


def _unique_hkl(smax: float) -> np.ndarray:
    import gemmi

    cell = gemmi.UnitCell(7.1, 8.3, 6.9, 90, 101.5, 90)
    sg = gemmi.SpaceGroup("P 1 21/c 1")
    hkl = gemmi.make_miller_array(cell, sg, 1 / (2 * smax))
    return np.asarray(hkl[~sg.operations().systematic_absences(hkl)])


def _rcif_block(name: str, ub: np.ndarray, hkl, fr, sigma) -> str:
    lines = [
        f"data_{name}",
        "_setup_wavelength 0.84",
        "_setup_field 5.0",
        "_diffrn_radiation_polarization -0.9",
        "_diffrn_radiation_efficiency 0.95",
    ]
    lines += [
        f"_diffrn_orient_matrix_ub_{i + 1}{j + 1} {ub[i, j]:.6f}"
        for i in range(3)
        for j in range(3)
    ]
    lines += ["_diffrn_orient_matrix_type CCSL", "", "loop_"]
    lines += [f"_diffrn_refln_{t}" for t in ("index_h", "index_k", "index_l", "fr", "fr_sigma")]
    lines += [
        f"{h} {k} {l} {r:.6f} {s:.6f}" for (h, k, l), r, s in zip(hkl, fr, sigma, strict=True)
    ]
    return "\n".join(lines) + "\n"


UB = {
    "b1": np.diag([0.14, 0.12, 0.145]),
    "b2": np.array([[0.0, -0.12, 0.0], [0.10, 0.0, 0.07], [-0.07, 0.0, 0.10]]),
}


def _write_rcif(path: Path, hkl_blocks: dict, fr=None, sigma=None) -> None:
    text = ""
    for name, hkl in hkl_blocks.items():
        n = len(hkl)
        r = np.ones(n) if fr is None else fr[name]
        s = np.full(n, 0.01) if sigma is None else sigma[name]
        text += _rcif_block(name, UB[name], hkl, r, s) + "\n"
    path.write_text(text)


@pytest.fixture(scope="module")
def joint_case(tmp_path_factory):
    """Files of the joint case with data simulated from TRUTH (1 % noise)."""
    folder = tmp_path_factory.mktemp("joint")
    (folder / "cu.cif").write_text(CIF)
    hx, hn = _unique_hkl(0.6), _unique_hkl(0.45)
    hp = _unique_hkl(0.35)
    # flipping ratios: the reflections with a usable nuclear signal, two field directions
    blocks = {"b1": hp[::2], "b2": hp[1::2]}
    _write_hkl(folder / "xray.hkl", hx, np.ones(len(hx)), np.ones(len(hx)))
    _write_hkl(folder / "und.hkl", hn, np.ones(len(hn)), np.ones(len(hn)))
    _write_rcif(folder / "fr.rcif", blocks)
    (folder / "project.toml").write_text(PROJECT)
    built = build(load_project(folder / "project.toml"))
    ref = built.refinement
    p = ref.params
    for name, value in TRUTH.items():
        p[name].value = value
    for prm in p:  # neutron ADPs 10 % larger than the X-ray ones
        if prm.name.endswith(".N"):
            prm.value = 1.1 * p[prm.name[:-2]].value
    p["xray.scale"].value, p["und.scale"].value = 0.5, 2.0
    values = p.values.copy()
    ref.set_values(values)
    rng = np.random.default_rng(11)
    sets = {d.name: d for d in ref.datasets}
    for name, hkl in (("xray", hx), ("und", hn)):
        d = sets[name]
        assert len(d.reflections) == len(hkl)
        y = d.calculate(values, jacobian=False)[2]
        sig = 0.01 * y + 0.02 * np.median(y)
        _write_hkl(folder / f"{name}.hkl", d.reflections.hkl, y + rng.normal(0, sig), sig)
    fr, sig = {}, {}
    for b in blocks:
        d = sets[f"pnd.{b}"]
        r = d.ratios(values)
        sig[b] = np.full(len(r), 0.005) + 0.01 * np.abs(r - 1)
        fr[b] = r + rng.normal(0, sig[b])
    _write_rcif(folder / "fr.rcif", blocks, fr, sig)
    return folder


@pytest.fixture(scope="module")
def joint_run(joint_case):
    out = run_project(joint_case / "project.toml", echo=None)
    return out, json.loads((out.output / "result.json").read_text())


def test_joint_project_builds_every_kind(joint_case):
    built = build(load_project(joint_case / "project.toml"))
    assert built.kinds == {"xray": "xray", "und": "und", "pnd.b1": "pnd", "pnd.b2": "pnd"}
    assert built.entries["pnd"] == ["pnd.b1", "pnd.b2"]
    assert built.split == ["Cu1", "N1"]
    assert built.stages[1].data == ["und", "pnd.b1", "pnd.b2"]  # the entry expands to its blocks
    names = built.refinement.params.names
    for n in ("Cu1.Pv.spin", "Cu1.P20.spin", "N1.Pv.spin", "Cu1.kappa", "Cu1.U11.N", "Cu1.Pv"):
        assert n in names
    # spin and charge constraints from the structure model (split atoms counted in both)
    text = "\n".join(built.refinement.all_constraints().descriptions)
    assert "total spin of the asymmetric unit = 1" in text and "charge of the asymmetric" in text
    from chasm.project.build import expand

    p = built.refinement.params
    cr = built.crystal
    assert set(expand(p, cr, "*.spin", "t")) >= {"Cu1.Pv.spin", "N1.P20.spin"}
    assert expand(p, cr, "*.U*.N", "t") == [n for n in names if re.fullmatch(r".*\.U.*\.N", n)]
    assert "Cu1.P20.spin" in expand(p, cr, "@split.P2*", "t", built.split)


def test_joint_run_result_and_recovered_spin(joint_run):
    out, res = joint_run
    assert res["converged"]
    ds = res["datasets"]
    assert {n: d["kind"] for n, d in ds.items()} == {
        "xray": "xray",
        "und": "und",
        "pnd.b1": "pnd",
        "pnd.b2": "pnd",
    }
    for name, d in ds.items():
        assert {
            "kind",
            "n_obs",
            "chi2",
            "gof",
            "R1",
            "wR2",
            "Rw",
            "factor",
            "gradient_share",
        } <= set(d)
        assert d["factor"] == pytest.approx(1.0)  # UNIT score, user weight 1
        assert 0.0 <= d["gradient_share"] <= 1.0
        assert d["stage"] == "joint"
        assert 0.8 < d["gof"] < 1.2, (name, d)  # simulated with known sigma
        if d["kind"] == "pnd":
            assert d["R1"] is None and d["wR2"] is None and 0 < d["Rw"] < 0.5
        else:
            assert d["R1"] < 0.05 and d["wR2"] < 0.05
    assert sum(d["gradient_share"] for d in ds.values()) == pytest.approx(1.0, abs=1e-6)
    st = {s["name"]: s for s in res["stages"]}
    assert st["charge"]["data"] == ["xray"]
    assert st["pnd-spin"]["data"] == ["und", "pnd.b1", "pnd.b2"]
    assert st["pnd-spin"]["datasets"]["und"]["gradient_share"] is not None
    for s in res["stages"]:
        assert s["max_constraint_residual"] < 1e-9
    p = res["parameters"]
    for name, value in TRUTH.items():
        assert abs(p[name]["value"] - value) < 4 * p[name]["su"] + 1e-3, (name, p[name])
    total = p["Cu1.Pv.spin"]["value"] + p["Cu1.P00.spin"]["value"] + p["N1.Pv.spin"]["value"]
    total += p["N1.P00.spin"]["value"]
    assert total == pytest.approx(1.0, abs=1e-9)
    listing = (out.output / "listing.txt").read_text()
    assert re.search(r"pnd\.b1\s+pnd\s+\d+", listing) and "grad.share" in listing
    assert "warnings (" in listing.split("parameters (value")[1]
    assert isinstance(res["warnings"], list)
    assert (out.output / "model.cif").is_file()


# ---------------------------------------------------------------- bad input
def _variant(case: Path, tmp_path: Path, old: str, new: str) -> Path:
    text = (case / "project.toml").read_text()
    assert old in text, old
    text = text.replace(old, new, 1)
    for f in ("cu.cif", "xray.hkl", "und.hkl", "fr.rcif"):
        text = text.replace(f'"{f}"', f'"{case / f}"')
    p = tmp_path / "project.toml"
    p.write_text(text)
    return p


def test_unknown_key_under_a_pnd_dataset(joint_case, tmp_path):
    p = _variant(
        joint_case, tmp_path, 'extinction = "off"', 'extinction = "off"\nobservable = "F2"'
    )
    with pytest.raises(InputError) as exc:
        load_project(p)
    msg = str(exc.value)
    assert "datasets[2].observable" in msg and "unknown key (for kind = 'pnd')" in msg
    lines = p.read_text().splitlines()
    assert lines[exc.value.line - 1].startswith("observable")


def test_total_spin_placeholder_stops_the_run(joint_case, tmp_path):
    p = _variant(joint_case, tmp_path, "total_spin = 1.0", 'total_spin = "FILL IN"')
    with pytest.raises(InputError, match=r"constraints\.total_spin: placeholder") as exc:
        load_project(p)
    assert (
        exc.value.line is not None
        and "total_spin" in p.read_text().splitlines()[exc.value.line - 1]
    )


def test_stage_data_naming_an_unknown_set(joint_case, tmp_path):
    p = _variant(joint_case, tmp_path, 'data = ["und", "pnd"]', 'data = ["und", "pnd9"]')
    with pytest.raises(InputError, match=r"stages\[1\]\.data \(pnd-spin\): 'pnd9' is not a data"):
        build(load_project(p))


def test_pnd_block_and_kind_errors(joint_case, tmp_path):
    p = _variant(joint_case, tmp_path, 'extinction = "off"', 'extinction = "off"\nblock = "b7"')
    with pytest.raises(InputError, match=r"datasets\[2\]\.block: no flipping-ratio block 'b7'"):
        build(load_project(p))
    p = _variant(joint_case, tmp_path, 'kind = "und"', 'kind = "neutron"')
    with pytest.raises(InputError, match=r"datasets\[1\]\.kind: 'neutron' is not one of"):
        load_project(p)
    p = _variant(joint_case, tmp_path, "spin = {P20 = 0.0}", "spin = {P50 = 0.1}")
    with pytest.raises(InputError, match=r"model\.atoms\.Cu1\.spin\.P50: not a multipole"):
        build(load_project(p))
    p = _variant(joint_case, tmp_path, 'magnetic = ["Cu1"]', "magnetic = []")
    p.write_text(p.read_text().replace("split = true", "split = false"))
    with pytest.raises(InputError, match=r"spin_pv: only for split atoms"):
        build(load_project(p))


def test_init_joint_project_loads_after_filling_total_spin(joint_case, tmp_path, capsys):
    out = tmp_path / "init.toml"
    args = [
        "init",
        str(joint_case / "cu.cif"),
        "--xray",
        str(joint_case / "xray.hkl"),
        "--und",
        str(joint_case / "und.hkl"),
        "--pnd",
        str(joint_case / "fr.rcif"),
        "--magnetic",
        "Cu1,N1",
        "-o",
        str(out),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "total_spin" in printed and "strategy:" in printed
    text = out.read_text()
    assert text.count("# CHECK:") >= 4 and "polarisation P = -0.9" in text
    assert 'kind = "pnd"' in text and 'kind = "und"' in text
    # the placeholder stops the run with a clear message
    code = main(["refine", str(out), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "total_spin: placeholder" in err and "line" in err
    filled = re.sub(r'total_spin = "[^"]*"', "total_spin = 1.0", text)
    out.write_text(filled)
    built = build(load_project(out))
    assert built.split == ["Cu1", "N1"]
    names = [s.name for s in built.stages]
    assert names[0] == "scale" and names[-2:] == ["pnd-spin", "joint"]
    assert built.stages[0].data == ["xray"] and built.stages[-1].data is None
    assert built.stages[-2].data == ["und", "pnd.b1", "pnd.b2"]
    p = built.refinement.params
    assert "Cu1.Pv.spin" in built.stages[-2].free and "und.scale" in built.stages[-2].free
    # spin monopoles everywhere, l = 2, 4 spin multipoles on the metal only, no P00.spin
    for st in built.stages[-2:]:
        spins = {n for n in set(st.free) - set(st.fix) if n.endswith(".spin")}
        assert {"Cu1.Pv.spin", "N1.Pv.spin", "Cu1.P20.spin", "Cu1.P44+.spin"} <= spins
        others = spins - {"Cu1.Pv.spin", "N1.Pv.spin"}
        assert all(n.startswith(("Cu1.P2", "Cu1.P4")) for n in others), sorted(others)
    # the X-ray stages keep the neutron ADPs and the spin fixed
    for st in built.stages[:-2]:
        assert not any(n.endswith((".N", ".spin")) for n in set(st.free) - set(st.fix))
    # starting spin: 1 muB on the metal, 0 on the ligand (already = total_spin)
    assert p["Cu1.Pv.spin"].value == pytest.approx(1.0) and p["N1.Pv.spin"].value == 0.0
    # and the first stage runs
    res = run_project(out, output=tmp_path / "o", echo=None, stages=["scale"]).result
    assert res["datasets"]["xray"]["stage"] == "scale"
    assert res["datasets"]["pnd.b1"]["factor"] is None  # not fitted yet


def test_init_default_magnetic_atoms(joint_case, tmp_path):
    from chasm.crystal.cif import read_cif
    from chasm.project.init import default_magnetic, project_text

    labels, reasons = default_magnetic(read_cif(joint_case / "cu.cif"))
    assert labels == ["Cu1", "N1", "O1"] and reasons[0] == "Cu1: transition metal"
    res = project_text(
        joint_case / "cu.cif", pnd=[joint_case / "fr.rcif"], project_path=tmp_path / "p.toml"
    )
    assert 'adp_set = "X"' in res.text  # no unpolarised data: flipping ratios use X-ray ADPs
    assert any("magnetic (spin-split) atoms: Cu1" in g for g in res.guesses)

"""PND-only projects (issue 17, item 2): the rcif dialect, the magnetic-atom guess,
ordered moments, twins, the asymmetry fit, plausibility and the project keys.

Independent checks: central finite differences for every Jacobian column with twins
and λ/2 together; the asymmetry's derivative against finite differences of A; the
magnetic site symmetry of MnF₂ against cryspy's ``0,0,mz`` written in the file; Hund's
rules by hand for the Landé factors.
"""

from __future__ import annotations

import numpy as np
import pytest

from chasm.cli import main
from chasm.errors import InputError
from chasm.neutron import read_rcif
from chasm.neutron.conventions import conventions
from chasm.project.build import build
from chasm.project.pnd_init import guess_magnetic, open_shell
from chasm.project.project import load_project
from chasm.refine.pnd_data import PndData, PndOptions, PndSpinModel


def _init(tmp_path, text: str, name: str = "x.rcif"):
    rcif = tmp_path / name
    rcif.write_text(text)
    project = tmp_path / "project.toml"
    assert main(["init", str(rcif), "-o", str(project)]) == 0
    return project


def test_scat_loop_without_type_symbol_takes_the_atom_s_ion(shared_data, tmp_path):
    text = (shared_data / "pnd" / "ytio3" / "ytio3.rcif").read_text()
    text = text.replace("_atom_site_scat_type_symbol\n", "").replace(
        "  Ti   Ti3+   2.0   1.0", "  Ti   2.0   1.0"
    )
    path = tmp_path / "no_type.rcif"
    path.write_text(text)
    scat = read_rcif(path).crystal().scattering["Ti"]
    assert (scat.type_symbol, scat.lande, scat.kappa) == ("Ti3+", 2.0, 1.0)


def test_open_shell_by_hand():
    assert open_shell("Ti4+") is None and open_shell("O2-") is None
    assert open_shell("Ti3+")[:3] == ("3d", 2, 1)
    assert open_shell("Mn")[:3] == ("3d", 2, 5)  # no charge: Mn2+
    # Ho3+ 4f10: S = 2, L = 6, J = 8, g_J = 3/2 + (6 - 42)/(2 * 72) = 1.25
    name, l_shell, n, g = open_shell("Ho3+")
    assert (name, l_shell, n) == ("4f", 3, 10) and g == pytest.approx(1.25)
    # Yb3+ 4f13: S = 1/2, L = 3, J = 7/2, g_J = 8/7
    assert open_shell("Yb3+")[3] == pytest.approx(8 / 7)
    assert open_shell("Lu3+") is None and open_shell("Gd3+")[3] == pytest.approx(2.0)


def test_guess_uses_the_file_s_loops_first_then_chemistry(shared_data, tmp_path, capsys):
    text = (shared_data / "pnd" / "ho2ti2o7" / "ho2ti2o7.rcif").read_text()
    pnd_path = tmp_path / "ho.rcif"
    pnd_path.write_text(text)
    sites, why = guess_magnetic(read_rcif(pnd_path))
    assert list(sites) == ["Ho1"] and sites["Ho1"]["model"] == "chi_aniso"  # Ti3+ not chosen
    assert sites["Ho1"]["free"] == ["chi11", "chi12"]  # cryspy marked these refined
    # without the susceptibility loop: chemistry, rare earth included
    start = text.index("loop_\n_atom_site_susceptibility_label")
    end = text.index("loop_\n_atom_site_scat_label")
    project = _init(tmp_path, text[:start] + text[end:], "chem.rcif")
    out = capsys.readouterr().out
    assert "Ho1: Ho3+ has an open 4f shell (4f10)" in out and "Ti1: Ti3+" in out
    written = project.read_text()
    assert "[model.spin.Ho1]" in written and "lande = 1.25" in written
    built = build(load_project(project))
    assert {"Ho1.chi_iso", "Ti1.chi_iso"} <= set(built.refinement.params.names)


def test_moment_site_symmetry_of_mnf2_is_cryspy_s(shared_data):
    pnd = read_rcif(shared_data / "pnd" / "mnf2" / "main.rcif")
    spin = PndSpinModel.from_rcif(pnd.crystal())
    # the file writes _atom_site_moment_symmform 0,0,mz for both sites
    assert spin.parameter_names == ["Mn.mz", "F.mz"]
    assert spin.values == {"Mn.mz": 5.275, "F.mz": -0.02516}


def test_dummy_atoms_are_left_out(shared_data, tmp_path, capsys):
    text = (shared_data / "pnd" / "mnf2" / "MnF2_multipole_prior.rcif").read_text()
    project = _init(tmp_path, text, "prior.rcif")
    assert "_atom_rho_multipole" in capsys.readouterr().out  # read (issue 17)
    built = build(load_project(project))
    assert [a.label for a in built.crystal.atoms] == ["Mn", "F"]


def _twinned_case(shared_data, asymmetry=False):
    """MnF₂ main.rcif with its twin, λ/2 (polarised model, α refined) and P refined."""
    pnd = read_rcif(shared_data / "pnd" / "mnf2" / "main.rcif")
    c = conventions("cryspy")
    spin = PndSpinModel.from_rcif(
        pnd.crystal(), b_overrides=c.b_overrides, form_factors=c.form_factors, p=c.p
    )
    raw = pnd.datasets[0]
    opts = PndOptions(
        lambda_half=0.05,
        refine_lambda_half=True,
        refine_polarisation=True,
        mosaicity=50.0,
        asymmetry=asymmetry,
    )
    data = PndData(raw.name, raw, spin, opts)
    names = spin.parameter_names + data.parameter_names()
    values = {**spin.values, **data.initial_values()}
    data.bind(None, None, names, 0)
    return data, names, np.array([values[n] for n in names])


def test_twin_and_lambda_half_jacobian_by_finite_differences(shared_data):
    data, names, p = _twinned_case(shared_data)
    assert "exp1.twin1" in names and "exp1.lambda_half" in names
    _, ratio, jac = data.calculate(p, jacobian=True)
    for k, name in enumerate(names):
        step = 1e-6 * max(abs(p[k]), 1e-2)
        hi, lo = p.copy(), p.copy()
        hi[k] += step
        lo[k] -= step
        fd = (data.calculate(hi, False)[1] - data.calculate(lo, False)[1]) / (2 * step)
        scale = np.max(np.abs(fd))
        assert scale > 1e-9, name
        np.testing.assert_allclose(jac[:, k], fd, rtol=0, atol=2e-6 * scale, err_msg=name)
    # the twin matters: without it the ratios move
    q = p.copy()
    q[names.index("exp1.twin1")] = 0.0
    assert np.max(np.abs(data.calculate(q, False)[1] / ratio - 1)) > 1e-2


def test_asymmetry_fit_values_and_derivatives(shared_data):
    data, names, p = _twinned_case(shared_data, asymmetry=True)
    ev = data.evaluate(p)
    r = data.ratios(p)
    np.testing.assert_allclose(ev.y_calc, (r - 1) / (r + 1), rtol=1e-14)
    r_o, s_o = data.r_obs, data.sigma
    np.testing.assert_allclose(ev.y_obs, (r_o - 1) / (r_o + 1), rtol=1e-14)
    s_a = np.sqrt(2) * s_o * np.sqrt(r_o**2 + 1) / (r_o + 1) ** 2  # cryspy's σ(A)
    np.testing.assert_allclose(ev.weights, s_a**-2, rtol=1e-12)
    k = names.index("Mn.mz")
    hi, lo = p.copy(), p.copy()
    hi[k] += 1e-5
    lo[k] -= 1e-5
    fd = (data.evaluate(hi).y_calc - data.evaluate(lo).y_calc) / 2e-5
    np.testing.assert_allclose(ev.jacobian[:, k], fd, rtol=0, atol=1e-7 * np.max(np.abs(fd)))
    assert data.agreement(p)["observable"] == "A"


def test_runaway_susceptibility_gets_a_warning(shared_data, tmp_path):
    """A component that runs away (issue 17: −229(28) μB/T) is named by the plausibility."""
    from chasm.project.outputs import implausible

    text = (shared_data / "pnd" / "ytio3" / "ytio3.rcif").read_text()
    project = _init(tmp_path, text, "ytio3.rcif")
    t = project.read_text()
    t = t.replace('model = "chi_iso"', 'model = "chi_aniso"').replace(
        "chi = 0.7362", "chi = [0.7362, 0.7362, 0.7362, 0, 0, 0]"
    )
    project.write_text(t.replace('free = ["Ti.chi_iso"]', 'free = ["Ti.chi*"]'))
    built = build(load_project(project))
    par = built.refinement.params
    assert [n for n in par.names if n.startswith("Ti.chi")] == [
        "Ti.chi11",
        "Ti.chi22",
        "Ti.chi33",
        "Ti.chi12",
        "Ti.chi13",
        "Ti.chi23",
    ]
    assert implausible(built) == []
    par["Ti.chi22"].value, par["Ti.chi22"].su = -229.0, 28.0
    par["Ti.chi13"].value, par["Ti.chi13"].su = 12.0, 0.5  # |chi| > 2 m_max (Ti: 3 muB)
    found = {f["name"]: f["message"] for f in implausible(built)}
    assert set(found) == {"Ti.chi22", "Ti.chi13"}
    assert "Ti.chi22 = -230(30)" in found["Ti.chi22"] and "runaway" in found["Ti.chi22"]


BAD_KEYS = [
    ("[model.spin.Ti]", "[model.spin.Ti9]", "model.spin.Ti9: no atom 'Ti9'"),
    ('ion = "Ti3+"', 'ion = "Ba2+"', "model.spin.Ti.ion: no magnetic form factor"),
    ("chi = 0.7362", "chi = [0.7362, 0.7362, 0.7362, 0, 0, 0]", "model.spin.Ti.chi"),
    ('kind = "pnd"', 'kind = "xray"', "PND-only spin model"),
    ("[constraints]", "[constraints]\ntotal_spin = 1.0", "constraints.total_spin"),
]


@pytest.mark.parametrize("old, new, words", BAD_KEYS)
def test_bad_project_keys_name_the_key(shared_data, tmp_path, old, new, words):
    text = (shared_data / "pnd" / "ytio3" / "ytio3.rcif").read_text()
    project = _init(tmp_path, text, "ytio3.rcif")
    t = project.read_text()
    assert old in t
    t = t.replace(old, new, 1)
    if new == 'kind = "xray"':
        t = t.replace('format = "rcif"\n', "").replace('extinction = "file"', 'extinction = "none"')
    project.write_text(t)
    with pytest.raises(InputError) as exc:
        build(load_project(project))
    assert words in str(exc.value) and "\n" not in str(exc.value)
    assert str(project) in str(exc.value)


def test_moment_sums_weight_special_positions_as_properties(shared_data):
    """One definition of the sums (issue 17, item 1): PND moments as charges and spins.

    YTiO₃ (P n m a, 8 operations): Ti on 4b (site group -1, 2 operations), Y and O1 on
    4c (m), O2 on 8d (general). Brute force: the cell sum is the sum over the distinct
    positions of every orbit in the cell; the asymmetric-unit sum is that / 8.
    """
    from chasm.neutron import ion_form_factor
    from chasm.neutron import moments as moments_module
    from chasm.neutron.moments import moment_report
    from chasm.properties import linear_sums, site_weight
    from chasm.refine.pnd_data import SpinSite

    pnd = read_rcif(shared_data / "pnd" / "ytio3" / "ytio3.rcif")
    base = PndSpinModel.from_rcif(pnd.crystal())
    crystal = base.crystal
    table = ion_form_factor("Ti3+")
    values = {"Ti": 0.8, "Y": -0.1, "O1": 0.05, "O2": 0.02}
    sites = [SpinSite(label, table, moment=m) for label, m in values.items()]
    spin = PndSpinModel(crystal, base.b, sites)
    cov = np.diag([1e-4, 4e-4, 9e-4, 1e-4])
    rep = moment_report(spin, spin.values, cov)

    def orbit(label):  # distinct positions of the atom in the cell, by brute force
        x = crystal.atoms[crystal.atom_index(label)].xyz
        pts = [
            (r @ x + t) % 1.0 for r, t in zip(crystal.rotations, crystal.translations, strict=True)
        ]
        out = []
        for q in pts:
            if not any(np.allclose((q - o + 0.5) % 1.0 - 0.5, 0, atol=1e-6) for o in out):
                out.append(q)
        return len(out)

    counts = {label: orbit(label) for label in values}
    assert counts == {"Ti": 4, "Y": 4, "O1": 4, "O2": 8}
    cell = sum(counts[x] * m for x, m in values.items())
    assert rep.cell[0] == pytest.approx(cell, rel=1e-12)
    assert rep.asymmetric_unit[0] == pytest.approx(cell / crystal.n_ops, rel=1e-12)
    assert rep.z == 4 and rep.per_formula_unit[0] == pytest.approx(cell / 4, rel=1e-12)
    # every moment counted with its weight: Ti 1/2 (not 1, as each listed site once gave)
    w = {x: site_weight(crystal, crystal.atom_index(x)) for x in values}
    assert w == {"Ti": 0.5, "Y": 0.5, "O1": 0.5, "O2": 1.0}
    su_asym = np.sqrt(sum((w[x] ** 2) * v for x, v in zip(values, np.diag(cov), strict=True)))
    assert rep.asymmetric_unit[1] == pytest.approx(su_asym, rel=1e-12)
    assert moments_module.linear_sums is linear_sums  # the same function as properties'


def test_mosaicity_derivative_at_zero_is_the_one_sided_one():
    """cryspy's mosaicity starts at 0 in MnF₂'s file: freeing it needs dy/dm at m = 0+."""
    from chasm.neutron.extinction import SphereExtinction

    stol = np.linspace(0.05, 0.6, 12)
    f_sq = np.linspace(10.0, 400.0, 12)
    for model in ("gauss", "lorentz"):
        at0 = SphereExtinction.from_stol(model, 0.0, 60.0, 0.82, 78.4, stol)
        y0, _, d = at0(f_sq)
        h = 1e-4
        y1 = SphereExtinction.from_stol(model, h, 60.0, 0.82, 78.4, stol)(f_sq)[0]
        fd = (y1 - y0) / h
        assert np.max(np.abs(fd)) > 1e-6
        np.testing.assert_allclose(d["mosaicity"], fd, rtol=1e-3, err_msg=model)


def test_conventions_note_and_rcif_with_other_data(shared_data, tmp_path, capsys):
    text = (shared_data / "pnd" / "ho2ti2o7" / "ho2ti2o7.rcif").read_text()
    project = _init(tmp_path, text, "ho.rcif")
    assert not any("conventions" in n for n in build(load_project(project)).notes)
    project.write_text(project.read_text().replace('conventions = "cryspy"', ""))
    notes = build(load_project(project)).notes
    assert any("model.conventions = 'chasm'" in n for n in notes)
    assert main(["refine", str(project), "--no-report", "-o", str(tmp_path / "o")]) == 0
    printed = capsys.readouterr().out
    assert (
        sum(line.startswith("note: model.conventions = 'chasm'") for line in printed.splitlines())
        == 1
    )
    with pytest.raises(InputError, match="chasm init X.rcif alone"):
        from chasm.project.init import write_project

        write_project(tmp_path / "q.toml", tmp_path / "ho.rcif", [str(tmp_path / "x.hkl")])


def test_magnetic_option_chooses_the_atoms(shared_data, tmp_path, capsys):
    rcif = tmp_path / "ytio3.rcif"
    rcif.write_text((shared_data / "pnd" / "ytio3" / "ytio3.rcif").read_text())
    project = tmp_path / "p.toml"
    assert main(["init", str(rcif), "--magnetic", "Ti,O1", "-o", str(project)]) == 0
    assert "O1: given (--magnetic)" in capsys.readouterr().out
    names = build(load_project(project)).refinement.params.names
    assert {"Ti.chi_iso", "O1.chi_iso"} <= set(names) and "O2.chi_iso" not in names
    assert main(["init", str(rcif), "--magnetic", "Xx", "-o", str(tmp_path / "q.toml")]) == 2
    assert "--magnetic: no atom 'Xx'" in capsys.readouterr().err


def test_joint_route_computes_the_twins(shared_data, tmp_path):
    """FlippingData (joint route) computes the block's twin domains through the one data-set
    core (NAME.twin1, the file's fraction); twins = false fits the first domain alone."""
    from chasm.neutron.rcif_sites import rcif_crystal
    from chasm.project.build import _pnd_datasets
    from chasm.project.project import _COMMON_DATASET, PND_DATASET

    rcif = tmp_path / "main.rcif"
    rcif.write_text((shared_data / "pnd" / "mnf2" / "main.rcif").read_text())
    crystal = rcif_crystal(read_rcif(rcif).crystal())[0]

    class _P:
        path = tmp_path / "p.toml"
        data = {"model": {"conventions": "cryspy"}}

        def resolve(self, f):
            return tmp_path / f

    schema = {**_COMMON_DATASET, **PND_DATASET}
    cfg = {k: f.default for k, f in schema.items() if hasattr(f, "default")}
    cfg.update(name="pnd", file="main.rcif", block=None, extinction="file", twins=True)
    (data,), _ = _pnd_datasets(_P(), crystal, cfg, 0)
    assert list(data.sets) == ["", "twin1_"] and data.twin_names == ["pnd.twin1"]
    assert data.initial_values()["pnd.twin1"] == pytest.approx(0.124)
    cfg["twins"] = False
    (one,), _ = _pnd_datasets(_P(), crystal, cfg, 0)
    assert list(one.sets) == [""] and "pnd.twin1" not in one.parameter_names()


def test_chi_local_equals_the_site_symmetric_tensor(shared_data, tmp_path):
    """Ho₂Ti₂O₇: a uniaxial χ about the site's 3-fold axis [111] with χ∥ = χ11 + 2χ12 and
    χ⊥ = χ11 − χ12 is the file's tensor (χ11 = χ22 = χ33, χ12 = χ13 = χ23)."""
    text = (shared_data / "pnd" / "ho2ti2o7" / "ho2ti2o7.rcif").read_text()
    project = _init(tmp_path, text, "ho.rcif")
    built = build(load_project(project))
    p = built.refinement.params.values
    r_aniso = built.refinement.datasets[0].ratios(p)
    chi11, chi12 = 3.329, 3.2543  # the values cryspy uses (first-component rule)
    t = project.read_text()
    t = t.replace('model = "chi_aniso"', 'model = "chi_local"')
    t = t.replace(
        "chi = [3.329, 3.32909, 3.32909, 3.2543, 3.25442, 3.25442]",
        f"chi = [{chi11 + 2 * chi12!r}, {chi11 - chi12!r}]",
    )
    t = t.replace('"Ho1.chi11", "Ho1.chi12"', '"Ho1.chi_par", "Ho1.chi_perp"')
    for axis in ("", "axis = [1, 1, 1]\n", "axis = [-2, -2, -2]\n"):
        project.write_text(t.replace("kappa = 1.0\n", f"kappa = 1.0\n{axis}", 1))
        local = build(load_project(project))
        assert "Ho1.chi_par" in local.refinement.params.names
        r_local = local.refinement.datasets[0].ratios(local.refinement.params.values)
        np.testing.assert_allclose(r_local, r_aniso, rtol=1e-12, atol=0)
    project.write_text(t.replace("kappa = 1.0\n", "kappa = 1.0\naxis = [1, 0, 0]\n", 1))
    with pytest.raises(InputError, match=r"Ho1.axis: \[1, 0, 0\] is not mapped onto") as exc:
        build(load_project(project))
    assert project.read_text().splitlines()[exc.value.line - 1].startswith("axis = [1, 0, 0]")


def test_joint_route_takes_the_structure_from_the_rcif(shared_data, tmp_path):
    """structure.cif may be the rcif in the joint (split-atom) route too."""
    from chasm.refine.flipping_data import FlippingData

    (tmp_path / "ytio3.rcif").write_text((shared_data / "pnd" / "ytio3" / "ytio3.rcif").read_text())
    project = tmp_path / "project.toml"
    project.write_text(
        '[structure]\ncif = "ytio3.rcif"\n[model]\nconventions = "cryspy"\nmagnetic = ["Ti"]\n'
        '[model.atoms.Ti]\nspin_pv = 0.7\naxes = "cartesian"\n'
        '[[datasets]]\nname = "pnd"\nkind = "pnd"\nfile = "ytio3.rcif"\nadp_set = "X"\n'
        '[constraints]\nelectroneutrality = false\n[[stages]]\nname = "s"\nfree = ["Ti.Pv.spin"]\n'
    )
    built = build(load_project(project))
    assert [a.label for a in built.crystal.atoms] == ["Ti", "Y", "O1", "O2"]
    assert built.split == ["Ti"] and "Ti.Pv.spin" in built.refinement.params.names
    assert all(isinstance(d, FlippingData) for d in built.refinement.datasets)
    assert len(built.refinement.datasets) == 3


def test_listing_of_a_pnd_only_refinement_gives_moments_with_su(shared_data, tmp_path):
    """MnF₂: |m(Mn)| with its su (linearised: a single free component, so exactly su(Mn.mz)),
    and no sums for ordered moments."""
    import json

    text = (shared_data / "pnd" / "mnf2" / "main.rcif").read_text()
    project = _init(tmp_path, text, "main.rcif")
    assert main(["refine", str(project), "--no-report", "--quiet"]) == 0
    listing = (tmp_path / "refined" / "listing.txt").read_text()
    result = json.loads((tmp_path / "refined" / "result.json").read_text())
    mz = result["parameters"]["Mn.mz"]
    from chasm.io.su_format import format_quantity

    row = next(x for x in listing.splitlines() if x.startswith("Mn ") and "ordered" in x)
    assert row.split()[-1] == format_quantity(abs(mz["value"]), mz["su"])
    assert "sum over the cell" not in listing and "left out of the sums" in listing


def test_joint_route_says_when_it_leaves_the_file_s_lambda_half_out(shared_data, tmp_path):
    text = (shared_data / "pnd" / "ytio3" / "ytio3.rcif").read_text()
    text = text.replace(
        "_setup_wavelength 0.8400", "_setup_wavelength 0.8400\n_setup_ratio_lambda/2 0.1"
    )
    (tmp_path / "ytio3.rcif").write_text(text)
    project = tmp_path / "project.toml"
    project.write_text(
        '[structure]\ncif = "ytio3.rcif"\n[model]\nmagnetic = ["Ti"]\n'
        '[model.atoms.Ti]\nspin_pv = 0.7\naxes = "cartesian"\n'
        '[[datasets]]\nname = "pnd"\nkind = "pnd"\nfile = "ytio3.rcif"\nadp_set = "X"\n'
        '[constraints]\nelectroneutrality = false\n[[stages]]\nname = "s"\nfree = ["Ti.Pv.spin"]\n'
    )
    checks = build(load_project(project)).checks
    assert len(checks) == 3 and all("lambda/2 ratio 0.1" in c for c in checks)
    project.write_text(
        project.read_text().replace('adp_set = "X"', 'adp_set = "X"\nlambda_half = 0.1')
    )
    assert build(load_project(project)).checks == []

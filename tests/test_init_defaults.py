"""`chasm init` defaults from the field's practice (issue 14, item 2).

Ions, riding H displacements, κ′, chemical equivalence, local mirrors and the
observations-per-parameter check, on small structures built here; the real
data sets are in the slow tests at the end.
"""

from __future__ import annotations

import json
from importlib import resources

import gemmi
import numpy as np
import pytest

from chasm.cli import main
from chasm.crystal.adp import ueq
from chasm.crystal.cif import read_cif
from chasm.crystal.structure import Atom, Crystal
from chasm.project.autobuild import choose_model
from chasm.project.build import build
from chasm.project.defaults import (
    THEORY_KAPPA_PRIME,
    equivalence_groups,
    ion_valence,
    kappa_prime_class,
    obs_per_parameter_warning,
    plan,
    recognise_ions,
)
from chasm.project.project import load_project
from chasm.refine.riding_adp import ueq_coefficients


def _hkl(path, crystal, smax=1.0):
    hkl = gemmi.make_miller_array(crystal.cell, crystal.spacegroup, 1 / (2 * smax))
    path.write_text(
        "".join(f"{h:4d}{k:4d}{l:4d}{100.0:8.2f}{1.0:8.2f}\n" for h, k, l in hkl)
        + f"{0:4d}{0:4d}{0:4d}{0:8.2f}{0:8.2f}\n"
    )
    return path


def _fluorite() -> Crystal:
    atoms = [
        Atom("Ca1", "Ca", (0.0, 0.0, 0.0), u_aniso=[0.0033, 0.0033, 0.0033, 0, 0, 0]),
        Atom("F1", "F", (0.25, 0.25, 0.25), u_aniso=[0.0049, 0.0049, 0.0049, 0, 0, 0]),
    ]
    return Crystal.from_parts((5.463, 5.463, 5.463, 90, 90, 90), "F m -3 m", atoms)


def _write_cif(path, crystal: Crystal, extra: str = "") -> None:
    c = crystal.cell
    rows = "\n".join(
        f"{a.label} {a.type_symbol} {a.xyz[0]:.5f} {a.xyz[1]:.5f} {a.xyz[2]:.5f} "
        f"{a.uiso:.5f} Uiso 1"
        for a in crystal.atoms
    )
    ops = "\n".join(f"'{op.triplet()}'" for op in crystal.spacegroup.operations())
    path.write_text(
        f"data_test\n_cell_length_a {c.a}\n_cell_length_b {c.b}\n_cell_length_c {c.c}\n"
        f"_cell_angle_alpha {c.alpha}\n_cell_angle_beta {c.beta}\n_cell_angle_gamma {c.gamma}\n"
        f"_diffrn_radiation_wavelength 0.56087\n"
        f"loop_\n_space_group_symop_operation_xyz\n{ops}\n{extra}"
        "loop_\n_atom_site_label\n_atom_site_type_symbol\n_atom_site_fract_x\n"
        "_atom_site_fract_y\n_atom_site_fract_z\n_atom_site_U_iso_or_equiv\n"
        f"_atom_site_adp_type\n_atom_site_occupancy\n{rows}\n"
    )


# ---------------------------------------------------------------------- ions
def test_ions_from_coordination_type_symbol_and_oxidation_number(tmp_path):
    ions = recognise_ions(_fluorite())
    assert (ions["Ca1"].charge, ions["F1"].charge) == (2, -1)
    assert "coordinated" in ions["Ca1"].reason and ions["Ca1"].main_group_cation
    # a type symbol with a charge wins
    cr = _fluorite()
    cr.atoms[0].charge, cr.atoms[0].type_symbol = 2, "Ca2+"
    assert recognise_ions(cr)["Ca1"].reason == "type symbol Ca2+"
    # _atom_type_oxidation_number, for an element not recognised from coordination
    cif = tmp_path / "cu.cif"
    cu = Crystal.from_parts((6, 6, 6, 90, 90, 90), "P 1", [Atom("Cu1", "Cu", (0, 0, 0), uiso=0.01)])
    _write_cif(
        cif,
        cu,
        "loop_\n_atom_type_symbol\n_atom_type_oxidation_number\nCu 2\n",
    )
    ions = recognise_ions(read_cif(cif), cif)
    assert ions["Cu1"].charge == 2 and "oxidation" in ions["Cu1"].reason
    assert not ions["Cu1"].main_group_cation
    assert recognise_ions(read_cif(cif)) == {}  # without the file: a neutral metal


def test_hydrated_magnesium_is_a_cation_and_a_neutral_metal_is_not():
    """Mg(H2O)6-like: the water H (2.6 A) and the second shell do not hide the cation."""
    atoms = [Atom("Mg1", "Mg", (0.5, 0.5, 0.5), uiso=0.01)]
    for k, v in enumerate(np.vstack([np.eye(3), -np.eye(3)])):
        o = np.array([7.5, 7.5, 7.5]) + 2.07 * v
        atoms.append(Atom(f"O{k + 1}", "O", o / 15.0, uiso=0.01))
        w = np.cross(v, [0.3, 0.5, 0.8])
        w /= np.linalg.norm(w)
        for s, lab in ((1, "A"), (-1, "B")):
            h = o + 0.96 * (0.33 * v + s * 0.94 * w) / np.linalg.norm(0.33 * v + 0.94 * w)
            atoms.append(Atom(f"H{k + 1}{lab}", "H", h / 15.0, uiso=0.02))
    cr = Crystal.from_parts((15, 15, 15, 90, 90, 90), "P 1", atoms)
    assert recognise_ions(cr)["Mg1"].charge == 2
    metal = Crystal.from_parts(
        (3.2, 3.2, 5.2, 90, 90, 120),
        "P 63/m m c",
        [Atom("Mg1", "Mg", (1 / 3, 2 / 3, 0.25), uiso=0.01)],
    )
    assert recognise_ions(metal) == {}  # Mg metal: Mg neighbours


def test_ion_valence_populations():
    # Ca 4s2 -> Ca2+ 4s0; F 2s2 2p5 -> F- 2s2 2p6; Cu 3d10 4s1 -> Cu2+ 3d9
    assert ion_valence("Ca", 2) == 0.0
    assert ion_valence("F", -1) == 8.0
    assert ion_valence("Cu", 2) == 9.0
    assert ion_valence("Na", 2) == 0.0  # never negative


def test_fluorite_init_project_is_an_ion_model(tmp_path):
    cr = _fluorite()
    cif = tmp_path / "caf2.cif"
    _write_cif(cif, cr)
    hkl = _hkl(tmp_path / "caf2.hkl", cr, smax=0.9)
    project = tmp_path / "project.toml"
    assert main(["init", str(cif), "--xray", str(hkl), "-o", str(project), "--multipoles"]) == 0
    text = project.read_text()
    ca = text[text.index("[model.atoms.Ca1]") : text.index("[model.atoms.F1]")]
    assert "lmax = -1" in ca and "pv = 0 " in ca and 'axes = "cartesian"' in ca
    assert "pv = 8 " in text[text.index("[model.atoms.F1]") :]
    built = build(load_project(project))
    ref = built.refinement
    # the ion start values obey electroneutrality exactly (no stage can fail on it)
    assert np.max(np.abs(ref.all_constraints().residual(ref.params))) < 1e-12
    for st in built.stages:
        assert "Ca1.Pv" in st.fix and "Ca1.kappa" in st.fix
    # F on -43m: only cubic harmonics survive (P32-, and P40 with P44+ tied to it)
    names = [n for n in ref.params.names if n.startswith("F1.P") and n != "F1.Pv"]
    red = ref.all_constraints().reduce(_all_free(ref.params, names))
    assert sorted(red.reduced_names) == ["F1.P32-", "F1.P40"]


def _all_free(params, names):
    params.fix("*")
    params.free(names)
    return params


# ---------------------------------------------------------------------- hydrogens
def test_ueq_coefficients_against_the_textbook_formula():
    cell = gemmi.UnitCell(7.1, 8.3, 9.7, 81.0, 97.0, 104.0)
    rng = np.random.default_rng(2)
    u6 = rng.uniform(0.005, 0.02, 6) * np.array([1, 1, 1, 0.3, 0.3, 0.3])
    # Ueq = 1/3 sum_ij U_ij a*_i a*_j (a_i . a_j) (Fischer & Tillmanns 1988)
    a = np.array(cell.orth.mat.tolist())  # columns a, b, c
    g = a.T @ a
    rec = cell.reciprocal()
    astar = np.array([rec.a, rec.b, rec.c])
    u = np.array([[u6[0], u6[3], u6[4]], [u6[3], u6[1], u6[5]], [u6[4], u6[5], u6[2]]])
    expected = np.sum(u * np.outer(astar, astar) * g) / 3.0
    assert ueq_coefficients(cell) @ u6 == pytest.approx(expected, rel=1e-12)
    assert ueq(u6, cell) == pytest.approx(expected, rel=1e-12)


@pytest.fixture
def urea_init(tmp_path):
    cif = tmp_path / "urea.cif"
    cif.write_text(resources.files("chasm.examples").joinpath("urea.cif").read_text())
    hkl = _hkl(tmp_path / "urea.hkl", read_cif(cif), smax=0.5)
    project = tmp_path / "project.toml"
    assert main(["init", str(cif), "--xray", str(hkl), "-o", str(project), "--multipoles"]) == 0
    return project


def test_urea_init_rides_h_uiso_fixes_kappa_prime_and_ties_equivalent_h(urea_init):
    text = urea_init.read_text()
    assert 'h_adp = "riding"' in text and text.count("u_riding = 1.2 ") == 2
    assert "kappa-prime" not in text and '"hydrogens"' not in text
    free_lines = [x for x in text.splitlines() if x.startswith("free = ")]
    assert not any("kappa_prime" in x for x in free_lines)
    assert "[[similarity]]" in text and 'atoms = ["H1", "H2"]' in text
    assert 'atom = "C1"' in text and 'atom = "N1"' in text  # planar sp2: local mirror
    built = build(load_project(urea_init))
    cr, ref = built.crystal, built.refinement
    n1 = cr.atoms[cr.atom_index("N1")]
    u_n = ueq(n1.u_aniso, cr.cell) if n1.u_aniso is not None else n1.uiso
    for h in ("H1", "H2"):
        assert ref.params[f"{h}.Uiso"].value == pytest.approx(1.2 * u_n, rel=1e-12)
        assert f"{h}.Uiso" in ref.followers
    assert np.max(np.abs(ref.all_constraints().residual(ref.params))) < 1e-12
    kinds = {r.kind for r in ref.restraints}
    assert kinds == {"similarity", "local-symmetry"}
    # kappa' fixed at the theoretical value of the element (MATTS2021 medians)
    for lab, el in (("O1", "O"), ("N1", "N"), ("C1", "C")):
        assert ref.params[f"{lab}.kappa_prime"].value == THEORY_KAPPA_PRIME[(el, "")][0]
    assert ref.params["H1.kappa_prime"].value == 1.2


# ---------------------------------------------------------------------- theoretical kappa'
def _nitro_ammonium() -> Crystal:
    """H3N+-CH2-NO2 in a 15 A P1 cell: an ammonium N and a nitro N in one molecule."""
    xyz = {
        "C1": (0.0, 0.0, 0.0),
        "N1": (1.49, 0.0, 0.0),
        "H1": (1.83, 0.97, 0.0),
        "H2": (1.83, -0.48, 0.84),
        "H3": (1.83, -0.48, -0.84),
        "H4": (-0.36, 0.5, 0.87),
        "H5": (-0.36, 0.5, -0.87),
        "N2": (-0.50, -1.41, 0.0),
        "O1": (-1.70, -1.60, 0.0),
        "O2": (0.25, -2.37, 0.0),
    }
    atoms = [
        Atom(lab, lab.rstrip("0123456789"), tuple(np.add(v, 5.0) / 15.0), uiso=0.02)
        for lab, v in xyz.items()
    ]
    return Crystal.from_parts((15.0, 15.0, 15.0, 90, 90, 90), "P 1", atoms)


def test_kappa_prime_classes_and_split_kappa_sets():
    cr = _nitro_ammonium()
    cls = {a.label: kappa_prime_class(cr, i) for i, a in enumerate(cr.atoms)}
    assert cls["N1"] == "N4" and cls["N2"] == "NO" and cls["C1"] == "" and cls["O1"] == ""
    choices = choose_model(cr)
    assert {c.kappa_set for c in choices if c.element == "N"} == {"N"}  # one set by element
    pl = plan(cr, None, choices, smax=1.0, kappa_prime_smax=0.9)
    # the two N have different theoretical kappa': the set is split so that ties hold
    assert pl.kappa_set == {"N1": "N-N4", "N2": "N-NO"}
    assert pl.atom_lines["N1"][-1].startswith("kappa_prime = 0.8 ")
    assert pl.atom_lines["N2"][-1].startswith("kappa_prime = 0.77 ")
    assert pl.atom_lines["O1"][-1].startswith("kappa_prime = 1.16 ")
    assert not any("kappa_prime" in x for x in pl.atom_lines["H1"])
    text = "\n".join(pl.restraint_lines)
    for lab, target in (("N1", 0.8), ("N2", 0.77), ("C1", 0.89), ("O1", 1.16)):
        assert f'# parameter = "{lab}.kappa_prime"' in text and f"# target = {target:g}" in text


def test_theory_kappa_prime_table_is_in_the_plausible_range():
    """The table against the plausibility table of refine.plausibility (an independent
    statement of what a light atom's kappa' may be)."""
    from chasm.refine.plausibility import _range

    for (el, _), (value, source) in THEORY_KAPPA_PRIME.items():
        r = _range("kappa_prime", el)
        assert r.lo <= value <= r.hi and "MATTS2021" in source


def test_uiso_free_and_u_riding_make_an_anisotropic_h_isotropic(urea_init, tmp_path):
    """``uiso_free``: one free Uiso = Ueq of the CIF's U_ij; ``u_riding``: isotropic, riding."""
    cif = tmp_path / "urea.cif"
    u_h = "0.030 0.020 0.025 0.004 -0.002 0.001"
    cif.write_text(
        cif.read_text()
        + "loop_\n_atom_site_aniso_label\n_atom_site_aniso_U_11\n_atom_site_aniso_U_22\n"
        + "_atom_site_aniso_U_33\n_atom_site_aniso_U_12\n_atom_site_aniso_U_13\n"
        + f"_atom_site_aniso_U_23\nH1 {u_h}\nH2 {u_h}\n"
    )
    cr = read_cif(cif)
    h1 = cr.atoms[cr.atom_index("H1")]
    assert h1.u_aniso is not None
    text = urea_init.read_text()
    h1_table = text[text.index("[model.atoms.H1]") : text.index("[model.atoms.H2]")]
    assert "u_riding = 1.2 " in h1_table
    text = text.replace(h1_table, h1_table.replace("u_riding = 1.2 ", "uiso_free = true #"))
    urea_init.write_text(text)
    ref = build(load_project(urea_init)).refinement
    assert "H1.Uiso" in ref.params.names and "H1.U11" not in ref.params.names
    assert ref.params["H1.Uiso"].value == pytest.approx(ueq(h1.u_aniso, cr.cell), rel=1e-12)
    assert "H1.Uiso" not in ref.followers  # refined freely
    assert "H2.Uiso" in ref.followers and "H2.U11" not in ref.params.names  # u_riding: rides


def test_riding_uiso_follows_the_parent_through_a_stage(urea_init):
    """A stage freeing only N1's U moves H1/H2 Uiso with it, at 1.2 Ueq(N1).

    (The data here are flat, not made from the model: N1's Uiso goes where they
    push it, even below zero; the H follow it exactly, which is the point.)
    """
    built = build(load_project(urea_init))
    ref = built.refinement
    stage = built.stages[0]
    stage.free = ["xray.scale", "N1.Uiso"]
    stage.fix, stage.max_cycles = [], 3
    before = ref.params["N1.Uiso"].value
    ref.run_stage(stage)
    u_n = ref.params["N1.Uiso"].value
    assert u_n != before  # the parent moved (the data were not made from this model)
    for h in ("H1", "H2"):
        assert ref.params[f"{h}.Uiso"].value == pytest.approx(1.2 * u_n, rel=1e-10)


@pytest.mark.slow
def test_seed_example_h_never_negative(tmp_path):
    """The seed example's init route: every isotropic H rides (Uiso > 0 by construction)."""
    cif = tmp_path / "seed.cif"
    cif.write_text(resources.files("chasm.examples").joinpath("seed_cu_dimer.cif").read_text())
    cr = read_cif(cif)
    hkl = _hkl(tmp_path / "seed.hkl", cr, smax=0.3)
    project = tmp_path / "project.toml"
    block = ["--block", "seed_cu_dimer_xray_10K"]  # the file also holds the 30 K neutron block
    assert (
        main(["init", str(cif), *block, "--xray", str(hkl), "-o", str(project), "--multipoles"])
        == 0
    )
    text = project.read_text()
    n_h = sum(a.element == "H" for a in cr.atoms)
    assert text.count("u_riding = ") == n_h > 0
    built = build(load_project(project))
    for h in [a.label for a in cr.atoms if a.element == "H"]:
        assert built.refinement.params[f"{h}.Uiso"].value > 0
        assert f"{h}.Uiso" in built.refinement.followers


# ---------------------------------------------------------------------- equivalence, obs/par
def test_equivalence_groups_need_the_same_graph_to_the_second_shell():
    cif = resources.files("chasm.examples").joinpath("urea.cif")
    cr = read_cif(str(cif))
    assert equivalence_groups(cr) == [["H1", "H2"]]
    # depth 0: element only (C, N, O alone; H1, H2 together)
    assert equivalence_groups(cr, depth=0) == [["H1", "H2"]]


def _last_stage_parameters(built) -> int:
    ref = built.refinement
    ref._select_free(built.stages[-1])
    return ref.all_constraints().reduce(ref.params).n_reduced


def test_parameter_estimate_equals_the_built_last_stage(urea_init, tmp_path):
    """init's count (site symmetry, riding, fixed ion populations) = the solver's."""
    from chasm.project.autobuild import choose_model
    from chasm.project.defaults import estimate_parameters, plan

    for project, cif in ((urea_init, urea_init.parent / "urea.cif"), (None, None)):
        if project is None:  # fluorite: ions, cubic sites
            cr = _fluorite()
            cif = tmp_path / "caf2.cif"
            _write_cif(cif, cr)
            project = tmp_path / "caf2.toml"
            hkl = _hkl(tmp_path / "caf2.hkl", cr, smax=0.9)
            assert (
                main(["init", str(cif), "--xray", str(hkl), "-o", str(project), "--multipoles"])
                == 0
            )
        crystal = read_cif(cif)
        choices = choose_model(crystal)
        practice = plan(crystal, cif, choices, 1.0, 0.9)
        for c in choices:
            c.lmax = practice.lmax.get(c.label, c.lmax)
            if c.label in practice.cartesian:
                c.axes = None
        loaded = load_project(project)
        n_ext = sum(d["extinction"] != "none" for d in loaded.data["datasets"])
        assert n_ext == 1  # a multipole project refines EXTI
        n = estimate_parameters(crystal, choices, practice, 4, n_ext)
        assert n == _last_stage_parameters(build(loaded)), project.name


def test_init_says_when_observations_are_too_few(urea_init):
    text = urea_init.read_text()  # 0.5 1/A: 63 reflections for 47 parameters
    assert "# CHECK: " in text and "per parameter, below 10) at lmax 4" in text


def test_observations_per_parameter_warning():
    assert obs_per_parameter_warning("all", 1000, 100) is None
    w = obs_per_parameter_warning("all", 960, 100)
    assert w.startswith("stage all: 960 observations for 100 parameters (9.6 per parameter")


# ---------------------------------------------------------------------- real data (slow)
def _init_and_refine(tmp_path, cif, hkl, *edits):
    project = tmp_path / "project.toml"
    assert main(["init", str(cif), "--xray", str(hkl), "-o", str(project), "--multipoles"]) == 0
    text = project.read_text()
    for old, new in edits:
        assert old in text
        text = text.replace(old, new)
    project.write_text(text)
    out = tmp_path / "out"
    assert main(["refine", str(project), "--output", str(out), "-q", "--no-report"]) == 0
    return json.loads((out / "result.json").read_text())


def _check_plausible(res):
    p = res["parameters"]
    for name, v in p.items():
        if name.endswith(".kappa") or name.endswith(".kappa_prime"):
            assert 0.8 <= v["value"] <= 1.25, (name, v)
        if name.endswith(".Uiso"):
            assert v["value"] > 0, (name, v)
    assert all(st["converged"] for st in res["stages"]), res["stages"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case", "r1_before", "rms_before", "r1_margin"),
    # the limits: R1(all) within 0.002 of the first multipole model's, residual
    # rms at most 10 % higher. Measured with init's refined EXTI: urea 0.0246 (0.0257
    # without extinction), rms 0.0369; L-alanine 0.0198, 0.0428 (docs/validation.md)
    [("urea", 0.0234, 0.0365, 0.002), ("l-alanine", 0.0195, 0.0420, 0.002)],
)
def test_real_data_refine_to_a_plausible_model(
    shared_data, tmp_path, case, r1_before, rms_before, r1_margin
):
    folder = shared_data / "xray" / case
    res = _init_and_refine(tmp_path, folder / "iam.cif", folder / "iam.hkl")
    _check_plausible(res)
    ds = res["datasets"]["xray"]
    print(case, ds["R1"], res["residual_density"]["rms"])
    assert ds["R1"] <= r1_before + r1_margin
    assert res["residual_density"]["rms"] <= 1.10 * rms_before
    kp = {n.split(".")[0]: v["value"] for n, v in res["parameters"].items() if "kappa_prime" in n}
    assert kp["O1" if case == "l-alanine" else "O"] == THEORY_KAPPA_PRIME[("O", "")][0]
    assert kp["N1" if case == "l-alanine" else "N"] == (0.80 if case == "l-alanine" else 1.03)
    # extinction (SHELXL's EXTI) refined from 0: significant on both (urea 0.095(7),
    # L-alanine 0.014(2))
    ext = res["parameters"]["xray.extinction"]
    assert ext["value"] > 5 * ext["su"], ext
    # every kappa, kappa', Pv (net charge), Uiso inside the plausibility table (issue 14);
    # L-alanine's NH3+ N carries -0.82 e with its theoretical kappa' 0.80 (-0.59 with 1)
    assert res["implausible"] == []
    for name, v in res["parameters"].items():
        if name.endswith(".Pv") and not name.startswith("H"):
            el = name.split(".")[0].rstrip("0123456789")
            neutral = {"C": 4, "N": 5, "O": 6}[el]
            assert abs(v["value"] - neutral) < 0.9, (name, v)


@pytest.mark.slow
def test_caf2_ion_model(shared_data, tmp_path):
    """CaF2 from SHELXL's merged data (the .fcf) and SHELXL's weights (WGHT of the .lst).

    The embedded reflections of CaF2.cif merged by chasm (1/sigma^2-weighted means)
    differ from SHELXL's merge by 8 % rms (an unweighted-like mean): chasm's IAM then
    gives R1 0.0168 against SHELXL's 0.0128 on the same model. With SHELXL's merged
    intensities the init-written ion model reaches R1 <= 0.0128.
    """
    folder = shared_data / "xray" / "caf2"
    rows = open(folder / "CaF2.fcf").read().split("_refln_phase_calc")[1].split()
    a = np.array(rows[: len(rows) // 7 * 7], float).reshape(-1, 7)
    hkl = tmp_path / "caf2.hkl"
    hkl.write_text(
        "".join(f"{int(r[0]):4d}{int(r[1]):4d}{int(r[2]):4d}{r[3]:8.2f}{r[4]:8.2f}\n" for r in a)
        + f"{0:4d}{0:4d}{0:4d}{0:8.2f}{0:8.2f}\n"
    )
    weights = ('weights = "sigma" ', 'weights = "shelx"\nshelx_a = 0.0109\nshelx_b = 0.1029\n#')
    res = _init_and_refine(tmp_path, folder / "CaF2.cif", hkl, weights)
    p = res["parameters"]
    assert res["datasets"]["xray"]["R1"] <= 0.0128
    assert p["Ca01.Pv"]["value"] == 0.0 and p["F002.Pv"]["value"] == pytest.approx(8.0)
    assert 0.85 < p["F002.kappa"]["value"] < 1.0  # an expanded anion
    nonzero = [
        n for n, v in p.items() if ".P" in n and not n.endswith("Pv") and abs(v["value"]) > 1e-9
    ]
    assert set(nonzero) <= {"F002.P32-", "F002.P40", "F002.P44+"}  # cubic harmonics only


# ---------------------------------------------------------------------- ion salts (slow)
def _rock_salt() -> Crystal:
    """NaCl, F m -3 m, a = 5.6402 A (the room-temperature lattice constant); U typical."""
    atoms = [
        Atom("Na1", "Na", (0.0, 0.0, 0.0), uiso=0.020),
        Atom("Cl1", "Cl", (0.5, 0.5, 0.5), uiso=0.015),
    ]
    return Crystal.from_parts((5.6402, 5.6402, 5.6402, 90, 90, 90), "F m -3 m", atoms)


def _hexaaqua_magnesium() -> Crystal:
    """[Mg(H2O)6]Cl2 built here (not a measured structure): P -1, Mg on the inversion
    centre, Mg-O 2.07 A and O-H 0.96 A as in MgCl2.6H2O, Cl- in a general position
    3.19 A from the nearest water O and H (no hydrogen bond modelled), 4 A or more from
    Mg and from its own inversion image."""
    cell = np.array([7.0, 7.2, 7.4])
    atoms = [Atom("Mg1", "Mg", (0.0, 0.0, 0.0), uiso=0.012)]
    for k in range(3):
        v = np.eye(3)[k]
        o = 2.07 * v
        atoms.append(Atom(f"O{k + 1}", "O", tuple(o / cell), uiso=0.018))
        w = np.cross(v, [0.3, 0.5, 0.8])
        w /= np.linalg.norm(w)
        for s, lab in ((1, "A"), (-1, "B")):
            d = 0.33 * v + s * 0.94 * w
            h = o + 0.96 * d / np.linalg.norm(d)
            atoms.append(Atom(f"H{k + 1}{lab}", "H", tuple(h / cell), uiso=0.03))
    atoms.append(Atom("Cl1", "Cl", (0.25, 0.35, 0.40), uiso=0.02))
    return Crystal.from_parts((*cell, 90, 90, 90), "P -1", atoms)


def _ion_salt_refined(tmp_path, cr, truth: dict[str, dict[str, float]]):
    """init --multipoles on ``cr``; data simulated from the init model with ``truth``
    populations (counting noise, seed 0, sin(theta)/lambda <= 1.0); refined from init's
    start. Returns the result and the built project."""
    from chasm.io.rhocif import write_rhocif
    from chasm.project.run import run_project
    from chasm.simulate.project import simulate_project

    cif = tmp_path / "salt.cif"
    _write_cif(cif, cr)
    hkl = _hkl(tmp_path / "salt.hkl", cr, smax=1.0)
    project = tmp_path / "project.toml"
    assert main(["init", str(cif), "--xray", str(hkl), "-o", str(project), "--multipoles"]) == 0
    built = build(load_project(project))
    for atom, m in zip(built.crystal.atoms, built.models, strict=True):
        for key, value in truth.get(atom.label, {}).items():
            setattr(m, key, value)
    write_rhocif(tmp_path / "truth.cif", built.crystal, built.models)
    text = project.read_text().replace('cif = "salt.cif"', 'cif = "truth.cif"')
    text = text.replace(
        "[constraints]",
        "[datasets.simulate]\nsmax = 1.0\nscale = 1.0\ngain = 20.0\nbackground = 5.0\n\n"
        "[constraints]",
        1,
    )
    project.write_text(text)
    simulate_project(project, seed=0, force=True, echo=None)
    res = run_project(project, output=tmp_path / "out", echo=None, report=False).result
    return res, text


def _check_ion_model(res, cation: str, pv: float, anion: str):
    p = res["parameters"]
    assert all(st["converged"] for st in res["stages"]), [
        (st["name"], st.get("message")) for st in res["stages"]
    ]
    assert res["implausible"] == []
    assert p[f"{cation}.Pv"]["value"] == pv and not p[f"{cation}.Pv"]["free"]
    assert p[f"{cation}.kappa"]["value"] == 1.0 and not p[f"{cation}.kappa"]["free"]
    assert not any(n.startswith(f"{cation}.P") and n != f"{cation}.Pv" for n in p)  # spherical
    assert 7.6 < p[f"{anion}.Pv"]["value"] < 8.4
    assert 0.85 < p[f"{anion}.kappa"]["value"] < 1.15


@pytest.mark.slow
def test_sodium_chloride_refines_to_an_ion_model(tmp_path):
    """Na+ (coordination: six Cl) spherical with Pv 0, kappa fixed; Cl- Pv 8 start;
    truth Cl- kappa 0.97: converged, plausible, Cl- kappa recovered within 3 su."""
    res, text = _ion_salt_refined(tmp_path, _rock_salt(), {"Cl1": {"kappa": 0.97}})
    na = text[text.index("[model.atoms.Na1]") : text.index("[model.atoms.Cl1]")]
    assert "lmax = -1" in na and "pv = 0 " in na
    assert "pv = 8 " in text[text.index("[model.atoms.Cl1]") :]
    _check_ion_model(res, "Na1", 0.0, "Cl1")
    p = res["parameters"]
    assert abs(p["Cl1.kappa"]["value"] - 0.97) < 3 * p["Cl1.kappa"]["su"]


@pytest.mark.slow
def test_hexaaqua_magnesium_chloride_refines_to_an_ion_model(tmp_path):
    """Mg2+ (six water O at 2.07 A) spherical with Pv 0; Cl- Pv 8; waters polarised in the
    truth (O Pv 6.3, H Pv 0.85, O kappa 0.98): converged, plausible, no creeping."""
    truth = {f"O{k}": {"pv": 6.3, "kappa": 0.98} for k in (1, 2, 3)}
    truth |= {f"H{k}{s}": {"pv": 0.85} for k in (1, 2, 3) for s in "AB"}
    truth["Cl1"] = {"kappa": 0.97}
    res, text = _ion_salt_refined(tmp_path, _hexaaqua_magnesium(), truth)
    assert "pv = 8 " in text[text.index("[model.atoms.Cl1]") :]  # Cl- recognised
    _check_ion_model(res, "Mg1", 0.0, "Cl1")
    p = res["parameters"]
    for k in (1, 2, 3):
        v = p[f"O{k}.Pv"]
        assert abs(v["value"] - 6.3) < 3 * v["su"], (k, v)


def test_multipole_project_refines_extinction_with_the_valence_model(urea_init, tmp_path):
    """EXTI from 0, freed from the monopole stage on (not against spherical atoms); an IAM
    project and a CIF without wavelength keep extinction = "none" (docs/physics.md)."""
    data = load_project(urea_init).data
    assert data["datasets"][0]["extinction"] == "shelx"
    assert data["datasets"][0]["extinction_start"] == 0.0
    frees = {st["name"]: "*.extinction" in st["free"] for st in data["stages"]}
    assert frees == {
        "scale": False,
        "high-order": False,
        "monopoles": True,
        "multipoles": True,
        "all": True,
    }
    assert build(load_project(urea_init)).refinement.params["xray.extinction"].value == 0.0
    cif = urea_init.parent / "urea.cif"
    hkl = urea_init.parent / "urea.hkl"
    iam = tmp_path / "iam.toml"
    assert main(["init", str(cif), "--xray", str(hkl), "-o", str(iam), "--no-multipoles"]) == 0
    data = load_project(iam).data
    assert data["datasets"][0]["extinction"] == "none"
    assert not any("*.extinction" in st["free"] for st in data["stages"])
    no_wl = tmp_path / "no_wavelength.cif"
    text = cif.read_text()
    assert "_diffrn_radiation_wavelength" in text
    no_wl.write_text(
        "\n".join(x for x in text.splitlines() if "_diffrn_radiation_wavelength" not in x)
    )
    out = tmp_path / "no_wl.toml"
    assert main(["init", str(no_wl), "--xray", str(hkl), "-o", str(out), "--multipoles"]) == 0
    assert 'extinction = "none"      # CHECK: give the wavelength' in out.read_text()
    assert not any("*.extinction" in st["free"] for st in load_project(out).data["stages"])

"""``chasm simulate``: data files of a project from its model (chasm.simulate.project).

The Cu fragment of test_project_joint (P2_1/c, Cu1 and N1 spin-split) is the
test case: its true model (that test's charge and spin multipoles, neutron
ADPs 10 % above the X-ray ones) is written as rhoCIF, the project points at it
and has simulate tables for X-ray F², UND F² and flipping ratios. Checked:
reproducibility, reflection counts, the calculated values against the
refinement's own data-set objects at the truth, noise pulls, schema errors
with key paths, no overwriting, the command line, and simulate -> refine
recovering the truth. Then the built-in example through the project route
(chasm.examples.seed_project) against chasm.examples.seed.simulate.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from chasm.crystal.cif import read_cif
from chasm.errors import InputError
from chasm.io.rhocif import write_rhocif
from chasm.io.shelx_hkl import Reflections, hklf4_text, read_hkl4, stol, write_hkl4
from chasm.neutron.geometry import field_direction, orientation_matrix
from chasm.neutron.rcif import PndDataset, read_rcif, write_flipping_rcif
from chasm.project.build import build, build_models
from chasm.project.project import load_project
from chasm.project.run import run_project
from chasm.refine.structure_model import StructureModel
from chasm.simulate.cli import register
from chasm.simulate.noise import unique_reflections
from chasm.simulate.project import simulate_project, ub_for_field
from test_project_joint import CIF, TRUTH  # the Cu fragment and its true charge/spin model

PROJECT = """title = "simulate test"
output = "out"

[structure]
cif = "truth.cif"

[model]
lmax = 2
h_lmax = 0
riding_h = false
basis = "chargespin"
magnetic = ["Cu1"]

[model.atoms.Cu1]
spin_pv = 1.0
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

[datasets.simulate]
smax = 0.6
scale = 0.5

[[datasets]]
name = "und"
kind = "und"
file = "data/und.hkl"

[datasets.simulate]
smax = 0.45
scale = 2.0
gain = 0.5
background = 200.0

[[datasets]]
name = "pnd"
kind = "pnd"
file = "fr.rcif"
extinction = "off"

[datasets.simulate]
smax = 0.4
count = 60
field_direction = [0.0, 1.0, 0.3]
relative = 0.004
floor = 0.002

[constraints]
electroneutrality = true
total_spin = 1.0

[[stages]]
name = "spin"
free = ["xray.scale", "und.scale", "*.Pv.spin", "Cu1.P2*.spin", "Cu1.P20", "Cu1.P22+", "N1.P20",
        "O1.P20", "*.U*.N"]
"""

SCALES = {"xray": 0.5, "und": 2.0}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_case(folder: Path, text: str = PROJECT) -> Path:
    """cu.cif, the truth as truth.cif (the project's model layout) and project.toml."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cu.cif").write_text(CIF)
    project = folder / "project.toml"
    project.write_text(text)
    crystal = read_cif(folder / "cu.cif")
    models = build_models(load_project(project), crystal)[0]
    sm = StructureModel(crystal, models, adp_sets=["N"], basis="chargespin")
    p = sm.parameters()
    for name, value in TRUTH.items():
        p[name].value = value
    for prm in p:
        if prm.name.endswith(".N"):
            prm.value = 1.1 * p[prm.name[:-2]].value
    sm.apply(p)
    write_rhocif(folder / "truth.cif", crystal, models, adp_sets=sm.adp)
    return project


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim")
    project = _write_case(folder)
    sim = simulate_project(project, echo=None)
    return {"folder": folder, "project": project, "sim": sim}


@pytest.fixture(scope="module")
def exact(tmp_path_factory):
    """The same case without noise (files = calculated values)."""
    folder = tmp_path_factory.mktemp("sim_exact")
    text = PROJECT.replace("[datasets.simulate]\n", "[datasets.simulate]\nnoise = false\n")
    project = _write_case(folder, text)
    return {"project": project, "sim": simulate_project(project, echo=None)}


# ---------------------------------------------------------------- writers
def test_hklf4_writer_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    hkl = np.array([[1, 0, 0], [-12, -10, 5], [3, -4, 17]])
    f2 = np.array([12345.678912345, -3.25, 1e-7])
    sigma = np.array([1.0 / 3.0, 2.5, 0.011])
    refl = Reflections(hkl, f2, sigma)
    write_hkl4(tmp_path / "free.hkl", refl, "free")
    back = read_hkl4(tmp_path / "free.hkl")
    assert np.array_equal(back.hkl, hkl) and np.array_equal(back.f2, f2)
    assert np.array_equal(back.sigma, sigma)  # full precision
    write_hkl4(tmp_path / "fixed.hkl", refl, "fixed")
    back = read_hkl4(tmp_path / "fixed.hkl")
    assert np.array_equal(back.hkl, hkl)
    assert np.allclose(back.f2, f2, atol=0.005) and np.allclose(back.sigma, sigma, atol=0.005)
    assert (tmp_path / "fixed.hkl").read_text().splitlines()[1] == " -12 -10   5   -3.25    2.50"
    with pytest.raises(ValueError, match="does not fit"):
        hklf4_text(Reflections(hkl[:1], [123456.0], [1.0]), "fixed")
    with pytest.raises(ValueError, match="rounds to 0.00"):
        hklf4_text(Reflections(hkl[:1], [1.0], [0.001]), "fixed")
    big = Reflections(rng.integers(-20, 20, (50, 3)), rng.normal(0, 1e6, 50), np.full(50, 7.0))
    assert np.array_equal(read_hkl4(_write(tmp_path / "big.hkl", big)).f2, big.f2)


def _write(path: Path, refl: Reflections) -> Path:
    write_hkl4(path, refl, "free")
    return path


def test_flipping_rcif_writer_round_trip(tmp_path):
    hkl = np.array([[1, 0, 0], [0, 2, -1], [-3, 1, 2]])
    block = PndDataset(
        name="b1",
        wavelength=0.84,
        field=5.0,
        polarisation=-0.9,
        efficiency=0.95,
        ub=np.array([[0.1, 0.02, 0.0], [0.0, 0.12, 0.01], [0.003, 0.0, 0.145]]),
        ub_type="CCSL",
        extinction_model="gauss",
        mosaicity=1.5,
        radius=30.0,
        phase="phase1",
        hkl=hkl,
        fr=np.array([1.0 / 3.0, 0.987654321, 1.1]),
        fr_sigma=np.array([0.001, 0.0123, 0.02]),
        fr_calc=np.array([0.33, 0.99, 1.09]),
        excluded=np.array([False, True, False]),
        lines=np.arange(3),
    )
    second = PndDataset(**{**block.__dict__, "name": "b2", "extinction_model": None})
    write_flipping_rcif(tmp_path / "fr.rcif", [block, second])
    sets = read_rcif(tmp_path / "fr.rcif").datasets
    assert [d.name for d in sets] == ["b1", "b2"]
    d = sets[0]
    for key in ("wavelength", "field", "polarisation", "efficiency", "mosaicity", "radius"):
        assert getattr(d, key) == getattr(block, key), key
    assert d.extinction_model == "gauss" and d.phase == "phase1" and d.ub_type == "CCSL"
    assert np.array_equal(d.ub, block.ub) and np.array_equal(d.hkl, hkl)
    assert np.array_equal(d.fr, block.fr) and np.array_equal(d.fr_sigma, block.fr_sigma)
    assert np.array_equal(d.fr_calc, block.fr_calc)
    assert np.array_equal(d.excluded, block.excluded)
    assert sets[1].extinction_model is None and sets[1].radius == 0.0
    with pytest.raises(ValueError, match="unique"):
        write_flipping_rcif(tmp_path / "x.rcif", [block, block])
    assert not (tmp_path / "x.rcif").exists()


def test_ub_for_field_gives_the_direction(tmp_path):
    (tmp_path / "cu.cif").write_text(CIF)
    crystal = read_cif(tmp_path / "cu.cif")
    for uvw in ([0.3, 1.0, 0.2], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [-1.0, 2.0, -0.5]):
        ub = ub_for_field(crystal, uvw)
        u = orientation_matrix(ub)
        assert np.allclose(u @ u.T, np.eye(3), atol=1e-12)
        want = crystal.A @ np.array(uvw)
        want /= np.linalg.norm(want)
        assert np.allclose(field_direction(ub, crystal.B), want, atol=1e-12)
        assert np.allclose(field_direction(ub, crystal.B, field=-5.0), -want, atol=1e-12)


# ---------------------------------------------------------------- the small case
def test_files_and_counts(case):
    sim, folder = case["sim"], case["folder"]
    assert [s.name for s in sim.sets] == ["xray", "und", "pnd"]
    assert [s.path for s in sim.sets] == [
        folder / "xray.hkl",
        folder / "data" / "und.hkl",
        folder / "fr.rcif",
    ]
    crystal = read_cif(folder / "cu.cif")
    for s, smax in zip(sim.sets[:2], (0.6, 0.45), strict=True):
        assert np.array_equal(s.hkl, unique_reflections(crystal, smax)), s.name
        back = read_hkl4(s.path)
        assert np.array_equal(back.hkl, s.hkl) and np.array_equal(back.f2, s.obs)
        assert np.array_equal(back.sigma, s.sigma)
    pnd = sim.sets[2]
    assert len(pnd.hkl) == 60
    cand = unique_reflections(crystal, 0.4)
    assert len(cand) > 60 and np.all(stol(pnd.hkl, crystal) <= 0.4 + 1e-12)
    assert np.all(np.diff(stol(pnd.hkl, crystal)) >= -1e-12)  # increasing sin(theta)/lambda
    d = read_rcif(pnd.path).datasets[0]
    assert d.name == "pnd" and (d.wavelength, d.field, d.polarisation) == (0.84, 5.0, -0.9)
    assert np.array_equal(d.fr, pnd.obs) and np.array_equal(d.fr_sigma, pnd.sigma)
    assert "truth.cif" in sim.truth and "(2 split)" in sim.truth


def test_count_and_select(tmp_path):
    text = PROJECT.replace("smax = 0.6\nscale = 0.5", "smax = 0.6\nscale = 0.5\ncount = 100")
    text = text.replace(
        "background = 200.0", 'background = 200.0\ncount = 50\nselect = "strongest"'
    )
    text = text.replace("relative = 0.004", 'relative = 0.004\nselect = "lowest"')
    sim = simulate_project(_write_case(tmp_path, text), echo=None)
    crystal = read_cif(tmp_path / "cu.cif")
    x, u, p = sim.sets
    assert len(x.hkl) == 100 and np.array_equal(x.hkl, unique_reflections(crystal, 0.6)[:100])
    all_n = unique_reflections(crystal, 0.45)
    assert len(u.hkl) == 50 < len(all_n)
    # the 50 strongest: none of the others is stronger than the weakest kept
    exact = simulate_project(
        _write_case(tmp_path / "all", PROJECT.replace("scale = 2.0", "scale = 2.0\nnoise = false")),
        echo=None,
    ).sets[1]
    kept = {tuple(h) for h in u.hkl.tolist()}
    others = [
        c for h, c in zip(exact.hkl.tolist(), exact.calc, strict=True) if tuple(h) not in kept
    ]
    assert max(others) <= u.calc.min()
    s = stol(p.hkl, crystal)
    assert (
        len(p.hkl) == 60 and s.max() <= np.sort(stol(unique_reflections(crystal, 0.4), crystal))[59]
    )


def test_reproducible_and_seeded(case, tmp_path):
    project = case["project"]
    again = simulate_project(project, output=tmp_path / "a", echo=None)
    for s, t in zip(case["sim"].sets, again.sets, strict=True):
        assert _digest(s.path) == _digest(t.path), s.name
    other = simulate_project(project, output=tmp_path / "b", seed=1, echo=None)
    for s, t in zip(case["sim"].sets, other.sets, strict=True):
        assert np.array_equal(s.hkl, t.hkl) and np.array_equal(s.calc, t.calc)
        assert not np.array_equal(s.obs, t.obs), s.name
        assert t.seed == [1, s.seed[1]]
    # each data set its own stream: the pulls of two sets are not the same numbers
    a, b = (s.pulls for s in case["sim"].sets[:2])
    assert not np.allclose(a[: len(b)], b)


def test_calculated_values_are_the_refinements(exact):
    """Noise-free files equal the refinement's calculated values at the truth (1e-12)."""
    sim = exact["sim"]
    for s in sim.sets:
        assert np.array_equal(s.obs, s.calc) and np.all(s.sigma > 0)
    built = build(load_project(exact["project"]))  # reads the simulated files
    ref = built.refinement
    p = ref.params
    for name, value in TRUTH.items():
        p[name].value = value
    for prm in p:
        if prm.name.endswith(".N"):
            prm.value = 1.1 * p[prm.name[:-2]].value
    for name, k in SCALES.items():
        p[f"{name}.scale"].value = k
    values = p.values.copy()
    ref.set_values(values)
    sets = {d.name: d for d in ref.datasets}
    for s in sim.sets:
        d = sets[s.name]
        if s.kind == "pnd":
            assert np.array_equal(d.hkl, s.hkl)
            calc, obs = d.ratios(values), d.r_obs
        else:  # merging sorts the file's reflections by ASU index: the same set
            assert {tuple(h) for h in d.reflections.hkl.tolist()} == {
                tuple(h) for h in s.hkl.tolist()
            }
            obs, _, calc, *_ = d.calculate(values, jacobian=False)
        assert np.max(np.abs(obs - calc) / np.abs(calc)) < 1e-12, s.name
        # the noise model's sigma: intensities (F2 + background)/gain + (relative F2)^2
    x = sim.sets[0]
    f2 = x.calc / 0.5
    assert np.allclose(x.sigma, 0.5 * np.sqrt((f2 + 25.0) / 0.25 + (0.01 * f2) ** 2), rtol=1e-12)
    r = sim.sets[2].calc
    assert np.allclose(sim.sets[2].sigma, np.sqrt((0.004 * r) ** 2 + 0.002**2), rtol=1e-12)


def test_noise_pulls(case):
    sim = case["sim"]
    pulls = np.concatenate([s.pulls for s in sim.sets])
    for s in sim.sets:
        print(f"{s.name}: n={len(s.pulls)} mean {s.pulls.mean():+.3f} sd {s.pulls.std(ddof=1):.3f}")
    n = pulls.size
    assert abs(pulls.mean()) < 3 / np.sqrt(n)
    assert abs(pulls.std(ddof=1) - 1) < 4 / np.sqrt(2 * n)
    x = sim.sets[0]
    assert 2 < np.median(x.obs / x.sigma) < 100  # a four-atom fragment: weak, but measurable


# ---------------------------------------------------------------- bad input
def _variant(case, tmp_path: Path, old: str, new: str) -> Path:
    text = case["project"].read_text()
    assert old in text, old
    text = text.replace(old, new, 1).replace('"truth.cif"', f'"{case["folder"] / "truth.cif"}"')
    path = tmp_path / "project.toml"
    path.write_text(text)
    return path


def _line_of(path: Path, needle: str) -> int:
    lines = path.read_text().splitlines()
    return next(i for i, t in enumerate(lines, start=1) if t.startswith(needle))


@pytest.mark.parametrize(
    "old, new, pattern, needle",
    [
        (
            "smax = 0.45",
            "smax = 0.45\nsmaxx = 1.0",
            r"datasets\[1\]\.simulate\.smaxx: unknown key",
            "smaxx",
        ),
        (
            "count = 60",
            'count = "many"',
            r"datasets\[2\]\.simulate\.count: expected an integer",
            "count",
        ),
        (
            "scale = 0.5",
            "scale = -0.5",
            r"datasets\[0\]\.simulate\.scale: must be > 0",
            "scale",
        ),
        (
            "floor = 0.002",
            "floor = 0.002\nfield = 0",
            r"datasets\[2\]\.simulate\.field: must be",
            "field =",
        ),
        (
            "field_direction = [0.0, 1.0, 0.3]",
            "field_direction = [0.0, 1.0]",
            r"datasets\[2\]\.simulate\.field_direction: give three numbers",
            "field_direction",
        ),
    ],
)
def test_schema_errors_name_the_key(case, tmp_path, old, new, pattern, needle):
    path = _variant(case, tmp_path, old, new)
    with pytest.raises(InputError) as exc:
        simulate_project(path, echo=None)
    assert re.search(pattern, str(exc.value)), str(exc.value)
    assert exc.value.line == _line_of(path, needle), (exc.value.line, str(exc.value))


@pytest.mark.parametrize(
    "old, new, pattern",
    [
        ("lmax = 2", "lmax = 1", r"gives Cu1\.P20 = 0\.1.*not parameters of the project's model"),
        ("spin_pv = 1.0", 'spin_pv = 1.0\naxes = "O1 X Cu1 N1 Y"', r"Cu1\.axes: the local frame"),
        (
            'magnetic = ["Cu1"]\n\n[model.atoms.Cu1]\nspin_pv = 1.0',
            "magnetic = []\n\n[model.atoms.Cu1]",
            r"gives Cu1\.Pv\.spin = 0\.8",
        ),
    ],
)
def test_model_that_the_structure_file_does_not_fit(case, tmp_path, old, new, pattern):
    with pytest.raises(InputError, match=pattern):
        simulate_project(_variant(case, tmp_path, old, new), echo=None)


def test_simulate_table_is_accepted_by_refine(case):
    """A project with simulate tables is an ordinary project for chasm refine."""
    built = build(load_project(case["project"]))
    assert built.kinds == {"xray": "xray", "und": "und", "pnd": "pnd"}


def test_never_overwrites_without_force(case, tmp_path):
    folder = tmp_path / "once"
    simulate_project(case["project"], output=folder, echo=None)
    target = folder / "data" / "und.hkl"
    target.write_text("keep me\n")
    (folder / "xray.hkl").unlink()
    (folder / "fr.rcif").unlink()
    with pytest.raises(InputError, match=r"und\.hkl exists; use --force"):
        simulate_project(case["project"], output=folder, seed=5, echo=None)
    assert target.read_text() == "keep me\n"
    assert not list(folder.rglob(".*.tmp"))  # nothing half-written
    simulate_project(case["project"], output=folder, seed=5, force=True, echo=None)
    assert read_hkl4(target).hkl.shape[1] == 3


def test_no_simulate_table(case, tmp_path):
    text = case["project"].read_text().replace("[datasets.simulate]", "[datasets.other]")
    path = tmp_path / "p.toml"
    path.write_text(re.sub(r"\[datasets\.other\].*?(?=\n\[)", "", text, flags=re.S))
    with pytest.raises(InputError, match="no data set has a simulate table"):
        simulate_project(path, echo=None)


def test_command_line(case, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="chasm")
    register(parser.add_subparsers(dest="command", required=True))
    out = tmp_path / "cli"
    args = parser.parse_args(["simulate", str(case["project"]), "-o", str(out), "--seed", "3"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert re.search(r"xray \(xray\): \d+ reflections", text) and "model: truth.cif" in text
    assert (out / "fr.rcif").is_file() and (out / "data" / "und.hkl").is_file()
    args = parser.parse_args(["simulate", str(case["project"]), "-o", str(out), "-q", "--force"])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all(t.startswith("wrote ") for t in lines)
    args = parser.parse_args(["simulate", str(case["project"]), "-o", str(out)])
    with pytest.raises(InputError, match="exist; use --force"):
        args.func(args)


def test_simulate_then_refine_recovers_the_truth(case):
    out = run_project(case["project"], echo=None, report=False)
    res = out.result
    assert res["converged"]
    p = res["parameters"]
    pulls = {}
    for name in ("Cu1.Pv.spin", "N1.Pv.spin", "Cu1.P20.spin", "Cu1.P20", "Cu1.P22+"):
        pulls[name] = (p[name]["value"] - TRUTH[name]) / p[name]["su"]
    for name, k in SCALES.items():
        pulls[f"{name}.scale"] = (p[f"{name}.scale"]["value"] - k) / p[f"{name}.scale"]["su"]
    print({k: round(v, 2) for k, v in pulls.items()})
    assert all(abs(v) < 3 for v in pulls.values()), pulls
    for name, d in res["datasets"].items():
        assert 0.8 < d["gof"] < 1.25, (name, d["gof"])


# ---------------------------------------------------------------- the built-in example
@pytest.fixture(scope="module")
def seed_case(tmp_path_factory):
    """The example through the project route and through seed.simulate (same sizes)."""
    from chasm.examples import seed
    from chasm.examples.seed_project import write_seed_project

    sizes = {"xray_smax": 0.5, "und_count": 300, "pnd_count": 60}
    root = tmp_path_factory.mktemp("seed")
    sim = simulate_project(write_seed_project(root, **sizes), echo=None)
    crystal = seed.seed_crystal()
    models = seed.truth_models(crystal)
    data = seed.simulate(crystal, models, seed=0, **sizes)
    return {"sim": sim, "data": data, "crystal": crystal, "models": models}


def _by_hkl(hkl) -> dict:
    return {h: k for k, h in enumerate(map(tuple, np.asarray(hkl).tolist()))}


@pytest.mark.slow
def test_seed_project_same_reflections_and_calculated_values(seed_case):
    from chasm.examples import seed
    from chasm.refine.flipping_data import FlippingData

    exact, data = seed_case["sim"], seed_case["data"]  # exact: the calculated values
    cr, models = seed_case["crystal"], seed_case["models"]
    theirs = {"xray": data.xray.hkl, "und": data.und.hkl, "pnd": data.pnd.hkl}
    for s in exact.sets:
        assert len(s.hkl) == len(theirs[s.name]), s.name
        assert set(_by_hkl(s.hkl)) == set(_by_hkl(theirs[s.name])), s.name
    # the example's own calculation for the same reflections (its simulate() code path)
    sm = StructureModel(cr, models, adp_sets={"N": seed.neutron_adps(cr)})
    x, u, p = exact.sets
    view = sm.view("xray")
    ref_x = seed.SCALES["xray"] * np.abs(view.compute(view.engine(x.hkl))[0]) ** 2
    view = sm.view("nuclear")
    ref_u = seed.SCALES["und"] * np.abs(view.compute(view.engine(u.hkl))[0]) ** 2
    ones = np.ones(len(p.hkl))
    probe = FlippingData(
        "pnd", seed._pnd_dataset(p.hkl, ones, ones), cr, field_direction=data.field_direction
    )
    probe.attach(sm)
    probe.bind(cr, models, sm.names, len(sm.names))
    ref_p = probe.ratios(np.zeros(len(sm.names)))
    for s, ref in zip(exact.sets, (ref_x, ref_u, ref_p), strict=True):
        rel = np.max(np.abs(s.calc - ref) / np.abs(ref))
        print(f"{s.name}: {len(s.hkl)} reflections, max relative difference {rel:.1e}")
        assert rel < 1e-8, s.name


def test_seed_project_xray_noise_is_the_examples(seed_case):
    """Data set 0 with run seed 0 draws from default_rng([0, 0]), the stream of
    default_rng(0) that seed.simulate draws its X-ray noise from first: same data."""
    x, data = seed_case["sim"].sets[0], seed_case["data"]
    assert np.array_equal(x.hkl, data.xray.hkl)
    assert np.allclose(x.obs, data.xray.f2, rtol=1e-12, atol=1e-9)
    assert np.allclose(x.sigma, data.xray.sigma, rtol=1e-12)


def test_seed_project_noise_pulls(seed_case):
    """Both routes scatter about the same calculated values with unit pulls."""
    sim, data = seed_case["sim"], seed_case["data"]
    theirs = {"xray": data.xray, "und": data.und}
    for s in sim.sets:
        row = _by_hkl(s.hkl)
        if s.kind == "pnd":
            obs, sig, hkl = data.pnd.fr, data.pnd.fr_sigma, data.pnd.hkl
        else:
            obs, sig, hkl = theirs[s.name].f2, theirs[s.name].sigma, theirs[s.name].hkl
        calc = s.calc[[row[h] for h in map(tuple, hkl.tolist())]]
        for route, pulls in (("project", s.pulls), ("seed.simulate", (obs - calc) / sig)):
            mean, sd = pulls.mean(), pulls.std(ddof=1)
            print(f"{s.name} {route}: n={pulls.size} mean {mean:+.3f} sd {sd:.3f}")
            assert abs(mean) < 3.5 / np.sqrt(pulls.size), (s.name, route, mean)
            assert abs(sd - 1) < 4 / np.sqrt(2 * pulls.size), (s.name, route, sd)


def test_extinction_is_simulated(exact, tmp_path):
    """Extinction at its starting values weakens the strong reflections, in the file too."""
    text = exact["project"].read_text()
    text = text.replace(
        'file = "xray.hkl"',
        'file = "xray.hkl"\nextinction = "shelx"\nextinction_start = 0.5\nwavelength = 0.71073',
        1,
    )
    text = text.replace(
        'extinction = "off"',
        'extinction = "on"\nextinction_model = "gauss"\nradius = 100.0\nmosaicity = 30.0',
        1,
    )
    text = text.replace('"truth.cif"', f'"{exact["project"].parent / "truth.cif"}"')
    (tmp_path / "project.toml").write_text(text)
    sim = simulate_project(tmp_path / "project.toml", echo=None)
    for s, plain in zip(sim.sets, exact["sim"].sets, strict=True):
        row = _by_hkl(plain.hkl)  # the flipping ratios kept by "contrast" change too
        common = [(k, row[h]) for k, h in enumerate(map(tuple, s.hkl.tolist())) if h in row]
        assert len(common) > 0.7 * len(s.hkl)
        mine, theirs = np.array(common).T
        change = np.max(np.abs(s.calc[mine] / plain.calc[theirs] - 1))
        print(f"{s.name}: largest relative change by extinction {change:.3f}")
        if s.name != "und":
            assert change > 1e-3, s.name
    x = sim.sets[0]
    assert np.all(x.calc <= exact["sim"].sets[0].calc * (1 + 1e-12))  # y <= 1
    d = read_rcif(sim.sets[2].path).datasets[0]
    assert (d.extinction_model, d.radius, d.mosaicity) == ("gauss", 100.0, 30.0)
    built = build(load_project(tmp_path / "project.toml"))  # the refinement sees the same
    assert {d.name: d.extinction_on for d in built.refinement.datasets if d.kind == "pnd"} == {
        "pnd": True
    }

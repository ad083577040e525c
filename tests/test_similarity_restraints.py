"""Similarity, local-mirror and target restraints (issue 14, item 3).

The local-frame mapping is checked against the density itself: the deformation
density of an atom and of its mirror image, with the populations the
similarity restraint maps onto each other, are mirror images point by point.
"""

from __future__ import annotations

import re
from importlib import resources

import numpy as np
import pytest

from chasm.cli import main
from chasm.crystal.structure import Atom, Crystal
from chasm.density.harmonics import density_harmonics, lm_labels
from chasm.density.model import HansenCoppensAtom
from chasm.errors import InputError
from chasm.project.autobuild import choose_model
from chasm.refine.refinement import Restraint
from chasm.refine.similarity import (
    handedness,
    is_planar_trigonal,
    mirror_restraints,
    restraint_summary,
    similarity_restraints,
)
from chasm.refine.structure_model import StructureModel

CELL = 15.0
ORIGIN = np.array([5.0, 5.0, 5.0])
# C2-C1(H1)(H2)-O1: H1 and H2 are mirror images through the plane z = 0 (C1, C2, O1);
# C3 (formate-like, planar) bonded to O2, O3 and H3 in the plane z = 6 (a second fragment)
FRAGMENT = {
    "C1": ("C", (0.0, 0.0, 0.0)),
    "C2": ("C", (1.52, 0.0, 0.0)),
    "O1": ("O", (-0.48, 1.35, 0.0)),
    "H1": ("H", (-0.36, -0.51, 0.89)),
    "H2": ("H", (-0.36, -0.51, -0.89)),
    "C3": ("C", (0.0, 0.0, 4.0)),
    "O2": ("O", (1.25, 0.0, 4.0)),
    "O3": ("O", (-0.62, 1.08, 4.0)),
    "H3": ("H", (-0.55, -0.95, 4.0)),
}


def _fragment(rotation: np.ndarray | None = None):
    """P1 crystal of the fragment (optionally rotated), HC models with init's frames."""
    atoms = []
    for label, (el, r) in FRAGMENT.items():
        r = np.asarray(r) if rotation is None else rotation @ np.asarray(r)
        atoms.append(Atom(label, el, (ORIGIN + r) / CELL, uiso=0.02))
    crystal = Crystal.from_parts((CELL, CELL, CELL, 90, 90, 90), "P 1", atoms)
    models = []
    for i, ch in enumerate(choose_model(crystal)):
        frame = ch.axes.matrix(crystal, i)
        models.append(
            HansenCoppensAtom(ch.element, pv=1.0, lmax=ch.lmax, axes=ch.axes, frame=frame)
        )
    params = StructureModel(crystal, models).parameters()
    return crystal, models, params


def _deformation(model, centre, points, plm):
    """Σ P_lm d_lm(û) at Cartesian points (radial part omitted: same for both atoms)."""
    u = (points - centre) @ model.frame  # local components (frame columns = axes)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return density_harmonics(u, model.lmax) @ plm


def test_reflection_y_flips_exactly_the_sine_harmonics():
    rng = np.random.default_rng(1)
    u = rng.normal(size=(50, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    mirrored = u * np.array([1.0, -1.0, 1.0])
    d, dm = density_harmonics(u, 4), density_harmonics(mirrored, 4)
    sign = np.array([-1.0 if lab.endswith("-") else 1.0 for lab in lm_labels(4)])
    np.testing.assert_allclose(dm, d * sign, atol=1e-12)


def test_mirror_images_have_opposite_handedness_and_rotations_the_same():
    crystal, models, _ = _fragment()
    h1, h2 = crystal.atom_index("H1"), crystal.atom_index("H2")
    assert handedness(crystal, models, h1) == -handedness(crystal, models, h2) != 0
    # a proper rotation of the whole fragment keeps each atom's handedness
    a = 0.7
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])
    c2, m2, _ = _fragment(rot)
    assert handedness(c2, m2, h1) == handedness(crystal, models, h1)
    assert handedness(crystal, models, crystal.atom_index("C3")) == 0  # planar


def test_mapped_populations_give_mirror_image_densities():
    """Populations of H2 made to satisfy the restraint exactly reproduce the mirror of H1."""
    crystal, models, params = _fragment()
    rows = similarity_restraints(crystal, models, params, ["H1", "H2"], ["P*"], 0.01)
    names = params.names
    rng = np.random.default_rng(3)
    p = np.zeros(len(names))
    labels = lm_labels(1)
    plm1 = np.r_[0.0, rng.normal(size=3)]
    for k, lab in enumerate(labels[1:], 1):
        p[names.index(f"H1.P{lab}")] = plm1[k]
    # the population of H2 that zeroes every restraint row (solve the rows for H2)
    plm2 = np.zeros(4)
    for k, lab in enumerate(labels[1:], 1):
        r = next(x for x in rows if x.name.startswith(f"H1.P{lab} "))
        c1, c2 = r.terms[f"H1.P{lab}"], r.terms[f"H2.P{lab}"]
        plm2[k] = -c1 * plm1[k] / c2
        p[names.index(f"H2.P{lab}")] = plm2[k]
    assert all(abs(sum(c * p[names.index(n)] for n, c in r.terms.items())) < 1e-12 for r in rows)
    i1, i2 = crystal.atom_index("H1"), crystal.atom_index("H2")
    r1 = crystal.frac_to_cart(crystal.atoms[i1].xyz)
    r2 = crystal.frac_to_cart(crystal.atoms[i2].xyz)
    pts = r1 + rng.normal(scale=0.5, size=(40, 3))
    mirror = np.array([1.0, 1.0, -1.0])
    pts2 = ORIGIN + (pts - ORIGIN) * mirror  # the plane z = 0 of the fragment
    rho1 = _deformation(models[i1], r1, pts, plm1)
    rho2 = _deformation(models[i2], r2, pts2, plm2)
    np.testing.assert_allclose(rho2, rho1, atol=1e-12)
    assert np.ptp(rho1) > 0.1  # not a trivial comparison


def test_similarity_rows_are_deviations_from_the_group_mean():
    crystal, models, params = _fragment()
    rows = similarity_restraints(crystal, models, params, ["O2", "O3"], ["P2*", "kappa"], 0.02)
    assert {r.kind for r in rows} == {"similarity"}
    fields = sorted({r.name.split(" ")[0].split(".", 1)[1] for r in rows})
    assert fields == sorted(["P20", "P21+", "P21-", "P22+", "P22-", "kappa"])
    rng = np.random.default_rng(5)
    p = rng.normal(size=len(params.names))
    idx = {n: k for k, n in enumerate(params.names)}
    s = restraint_summary(rows, params.names, p)["similarity"]
    # brute force: (p_i - mean)/sigma summed over both atoms and all fields (no sign flips:
    # the two O of a planar C3 have no handedness)
    chi2 = 0.0
    for f in fields:
        a, b = p[idx[f"O2.{f}"]], p[idx[f"O3.{f}"]]
        chi2 += 2 * ((a - b) / 2 / 0.02) ** 2
    assert s["n"] == 2 * len(fields)
    assert s["chi2"] == pytest.approx(chi2, rel=1e-12)
    assert s["rms_misfit_su"] == pytest.approx(np.sqrt(chi2 / s["n"]), rel=1e-12)


def test_planar_atom_gets_mirror_rows_and_a_tetrahedral_one_is_refused():
    crystal, models, params = _fragment()
    assert is_planar_trigonal(crystal, models, crystal.atom_index("C3"))
    assert not is_planar_trigonal(crystal, models, crystal.atom_index("C1"))
    rows = mirror_restraints(crystal, models, params, "C3", 0.01)
    assert sorted(r.name.split(" ")[0] for r in rows) == sorted(
        f"C3.P{lab}" for lab in lm_labels(4) if lab.endswith("-")
    )
    with pytest.raises(InputError, match="C1 does not have three bonded neighbours"):
        mirror_restraints(crystal, models, params, "C1", 0.01)


@pytest.mark.parametrize(
    ("labels", "sigma", "message"),
    [
        (["O1", "C1"], 0.01, "atoms of different elements"),
        (["O2", "O3"], 0.0, "must be > 0"),
        (["O2"], 0.01, "two or more atoms"),
        (["O2", "Q9"], 0.01, "no atom 'Q9'"),
    ],
)
def test_similarity_bad_input(labels, sigma, message):
    crystal, models, params = _fragment()
    with pytest.raises(InputError, match=message):
        similarity_restraints(crystal, models, params, labels, ["P*"], sigma)


def test_linear_restraint_sum():
    r = Restraint("a-b", 0.5, 0.1, {"a": 1.0, "b": -1.0}, "similarity")
    s = restraint_summary([r], ["a", "b"], np.array([2.0, 1.0]))
    assert s["similarity"]["chi2"] == pytest.approx(25.0)


# ---------------------------------------------------------------------- project files
@pytest.fixture
def urea_project(tmp_path):
    cif = tmp_path / "urea.cif"
    cif.write_text(resources.files("chasm.examples").joinpath("urea.cif").read_text())
    hkl = tmp_path / "urea.hkl"
    rows = [(h, k, l) for h in range(0, 4) for k in range(0, 4) for l in range(1, 4)]
    hkl.write_text(
        "".join(f"{h:4d}{k:4d}{l:4d}{100.0:8.2f}{1.0:8.2f}\n" for h, k, l in rows)
        + f"{0:4d}{0:4d}{0:4d}{0:8.2f}{0:8.2f}\n"
    )
    project = tmp_path / "project.toml"
    assert main(["init", str(cif), "--xray", str(hkl), "-o", str(project), "--multipoles"]) == 0
    return project


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (
            '[[restraints]]\nparameter = "C1.kappa_primo"\ntarget = 1.0\nsigma = 0.05\n',
            "kappa_primo",
        ),
        (
            '[[restraints]]\nparameter = "C1.kappa"\ntarget = 1.0\nsigma = 0.0\n',
            r"sigma: must be > 0",
        ),
        ('[[similarity]]\natoms = ["O1", "N1"]\nsigma = 0.01\n', "different elements"),
        ('[[similarity]]\natoms = ["H1", "H2"]\nsigma = -1.0\n', r"sigma: must be > 0"),
        ('[[local_symmetry]]\natom = "O1"\nsigma = 0.01\n', "no local mirror"),
    ],
)
def test_bad_restraints_give_one_line_with_file_and_line(urea_project, capsys, block, message):
    text = urea_project.read_text().replace("[refinement]", block + "\n[refinement]")
    urea_project.write_text(text)
    code = main(["refine", str(urea_project)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"chasm: error: {urea_project}, line ")
    assert re.search(message, err), err
    line = int(err.split(", line ")[1].split(":")[0])
    start = text[: text.index(block)].count("\n") + 1
    assert start <= line < start + block.count("\n"), (line, start)

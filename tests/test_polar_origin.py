"""Polar space groups: the floating origin is fixed automatically (issue 14).

The molecule of the bundled seed structure (a real Cu complex, P 2₁/n) is put
in P 1, P 2₁ (a subgroup of its own group) and P n a 2₁; F² are simulated with
noise and the positions refined from a perturbed start. With every atom free,
the normal matrix would be singular along the polar directions; the exact
centroid constraint removes that. The result must equal a refinement in which
one atom's coordinates along the polar axes are fixed by hand: same χ², same
ADPs and scale, same interatomic vectors (the coordinates differ by one common
shift along the polar axes: a change of origin).
"""

from __future__ import annotations

from importlib.resources import as_file, files

import numpy as np
import pytest

from chasm.crystal.cif import read_cif
from chasm.crystal.structure import Atom, Crystal
from chasm.density.model import SphericalAtom
from chasm.io.shelx_hkl import Reflections
from chasm.refine.origin import polar_directions
from chasm.refine.xray_refinement import XrayRefinement

GROUPS = {
    # name: (operations, polar axes)
    "P 1": (["x,y,z"], "xyz"),
    "P 21": (["x,y,z", "-x+1/2,y+1/2,-z+1/2"], "y"),
    "P n a 21": (
        ["x,y,z", "-x,-y,z+1/2", "x+1/2,-y+1/2,z", "-x+1/2,y+1/2,z+1/2"],
        "z",
    ),
}


def _molecule():
    with as_file(files("chasm.examples").joinpath("seed_cu_dimer.cif")) as path:
        seed = read_cif(path)
    atoms = [a for a in seed.atoms if a.element != "H"][:12]  # Cu and its first neighbours
    return seed, atoms


def _crystal(group: str) -> Crystal:
    seed, atoms = _molecule()
    ops, _ = GROUPS[group]
    cell = list(seed.cell.parameters)
    if group == "P n a 21":
        cell[4] = 90.0  # orthorhombic
    new = [
        Atom(label=a.label, element=a.element, xyz=a.xyz.copy(), uiso=0.012 + 0.001 * i)
        for i, a in enumerate(atoms)
    ]
    return Crystal.from_parts(cell, ops, new, name=group)


def _simulate(crystal: Crystal, rng) -> Reflections:
    a = 1.0 / 0.55  # sin(theta)/lambda <= 0.55 / A
    n = [int(np.ceil(a * x)) for x in crystal.cell.parameters[:3]]
    grid = np.array(
        [
            (h, k, l)
            for h in range(-n[0], n[0] + 1)
            for k in range(-n[1], n[1] + 1)
            for l in range(0, n[2] + 1)
        ]
    )
    grid = grid[
        (grid[:, 2] > 0)
        | ((grid[:, 2] == 0) & ((grid[:, 1] > 0) | ((grid[:, 1] == 0) & (grid[:, 0] > 0))))
    ]
    B = crystal.B
    s = 0.5 * np.linalg.norm(grid @ B.T, axis=1)
    hkl = grid[(s <= 0.55) & (s > 0.05)]
    dummy = Reflections(hkl, np.ones(len(hkl)), np.ones(len(hkl)))
    ref = XrayRefinement(crystal, [SphericalAtom(a.element) for a in crystal.atoms], dummy)
    values = ref.params.values.copy()
    values[ref.params.names.index("xray.scale")] = 1.0  # F² in electrons²
    _, _, fc2, _, _, _ = ref.datasets[0].calculate(values, jacobian=False)
    keep = fc2 > 1e-3 * fc2.max()  # no systematic absences
    f2 = fc2[keep]
    sig = 0.03 * f2 + 0.5
    return Reflections(hkl[keep], f2 + sig * rng.standard_normal(f2.size), sig)


def _refine(group: str, fix_by_hand: bool):
    rng = np.random.default_rng(11)
    truth = _crystal(group)
    refl = _simulate(truth, rng)
    crystal = _crystal(group)
    for atom in crystal.atoms:  # the same perturbed start for both runs
        atom.xyz = atom.xyz + crystal.cart_to_frac(rng.normal(scale=0.03, size=3))
    models = [SphericalAtom(a.element) for a in crystal.atoms]
    ref = XrayRefinement(crystal, models, refl)
    if fix_by_hand:
        ref.params.fix([f"{crystal.atoms[0].label}.{c}" for c in GROUPS[group][1]])
    result = ref.run()
    return ref, result


@pytest.mark.parametrize("group", list(GROUPS))
def test_polar_directions(group):
    axes = GROUPS[group][1]
    crystal = _crystal(group)
    basis = polar_directions(crystal.rotations)
    assert len(basis) == len(axes)
    assert np.allclose(
        np.sort(np.abs(basis), axis=0)[-len(axes) :].sum(axis=0), [c in axes for c in "xyz"]
    )


@pytest.mark.parametrize("group", ["P 1", "P 21", "P n a 21"])
def test_origin_fixed_automatically_equals_fixed_by_hand(group):
    auto, res_a = _refine(group, fix_by_hand=False)
    hand, res_h = _refine(group, fix_by_hand=True)
    assert res_a.converged and res_h.converged, (res_a.message, res_h.message)
    assert auto.outcomes[-1].origin and not hand.outcomes[-1].origin
    assert res_a.n_par == res_h.n_par  # one coordinate per polar axis fewer, both ways
    chi_a, chi_h = res_a.datasets[0].chi2, res_h.datasets[0].chi2
    assert chi_a == pytest.approx(chi_h, rel=1e-7)
    pa, ph = auto.params, hand.params
    for name in pa.names:
        if name.endswith((".x", ".y", ".z")):
            continue
        assert pa[name].value == pytest.approx(ph[name].value, abs=1e-3 * (ph[name].su or 1e-6))
    # coordinates: one common shift along the polar axes, nothing else
    xa = np.array([a.xyz for a in auto.crystal.atoms])
    xh = np.array([a.xyz for a in hand.crystal.atoms])
    shift = (xa - xh).mean(axis=0)
    su = max(pa[n].su for n in pa.names if n.endswith((".x", ".y", ".z")) and pa[n].su)
    assert np.max(np.abs(xa - xh - shift)) < 1e-3 * su
    for c, axis in enumerate("xyz"):
        if axis not in GROUPS[group][1]:
            assert abs(shift[c]) < 1e-3 * su

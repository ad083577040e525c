"""The built-in seed-case structure (src/chasm/examples/seed_cu_dimer.cif).

Facts checked against what the seed paper states (space group, Cu...Cu',
the two Cu-N(azide) distances, five-coordinate Cu) and against general
chemistry (formula of Cu L (N3), neutron C-H distances, van der Waals contacts,
positive-definite ADPs), all from the file as chasm reads it.
"""

from __future__ import annotations

from collections import Counter
from importlib import resources
from itertools import combinations

import gemmi
import numpy as np
import pytest

from chasm.crystal import read_cif, ucif_to_ucart
from chasm.crystal.neighbours import neighbours

XRAY = "seed_cu_dimer_xray_10K"
NEUTRON = "seed_cu_dimer_neutron_30K"
VDW_TOLERANCE = 0.5  # contacts may be this much shorter than the vdW sum, Å


@pytest.fixture(scope="module")
def path():
    return resources.files("chasm.examples") / "seed_cu_dimer.cif"


@pytest.fixture(scope="module")
def crystal(path):
    return read_cif(path)


@pytest.fixture(scope="module")
def neutron(path):
    return read_cif(path, block=NEUTRON)


def _vdw(element: str) -> float:
    return gemmi.Element(element).vdw_r


def _cu_partner(crystal):
    """The Cu1 image at the other end of the dimer: (operation index, shift, distance)."""
    i = crystal.atom_index("Cu1")
    images = [n for n in neighbours(crystal, i, 6.0) if n.label == "Cu1"]
    nearest = images[0]
    return nearest.op, np.array(nearest.shift), nearest.distance


def _dimer(crystal) -> tuple[list[str], np.ndarray, list[str]]:
    """Labels, Cartesian coordinates (Å) and elements of the 66 atoms of the dimer."""
    op, shift, _ = _cu_partner(crystal)
    r, t = crystal.rotations[op], crystal.translations[op]
    frac = np.array([a.xyz for a in crystal.atoms])
    other = frac @ r.T + t + shift
    labels = [a.label for a in crystal.atoms]
    elements = [a.element for a in crystal.atoms] * 2
    return (
        labels + [s + "'" for s in labels],
        crystal.frac_to_cart(np.vstack([frac, other])),
        elements,
    )


def test_space_group_and_cell(crystal, neutron):
    assert crystal.spacegroup.hm == "P 1 21/n 1"
    assert crystal.n_ops == 4
    assert crystal.is_centrosymmetric
    assert crystal.cell.alpha == crystal.cell.gamma == 90.0
    assert 95.0 < crystal.cell.beta < 115.0
    assert neutron.cell.parameters == crystal.cell.parameters
    assert crystal.wavelength == pytest.approx(0.71073)


def test_formula_and_labels(crystal):
    assert len(crystal.atoms) == 33
    counts = Counter(a.element for a in crystal.atoms)
    assert counts == {"Cu": 1, "O": 1, "F": 3, "N": 5, "C": 9, "H": 14}
    labels = {a.label for a in crystal.atoms}
    assert {"Cu1", "O1", "N1", "N2", "N3", "N4", "N5"} <= labels
    # Z = 4 Cu: every atom on a general position
    assert all(crystal.multiplicity(i) == 4 for i in range(len(crystal.atoms)))


def test_dimer_on_inversion_centre(crystal):
    op, shift, distance = _cu_partner(crystal)
    assert distance == pytest.approx(5.068, abs=0.005)
    assert np.array_equal(crystal.rotations[op], -np.eye(3, dtype=int))
    # the midpoint of Cu1 and its partner is an inversion centre of P21/n: 2x integer
    x = crystal.atoms[crystal.atom_index("Cu1")].xyz
    mid2 = x + (-x + crystal.translations[op] + shift)
    assert np.allclose(mid2, np.round(mid2), atol=1e-9)


def test_azide_bridge(crystal):
    labels, cart, _ = _dimer(crystal)
    pos = dict(zip(labels, cart, strict=True))

    def dist(a, b):
        return float(np.linalg.norm(pos[a] - pos[b]))

    assert dist("Cu1", "N3") == pytest.approx(2.000, abs=0.005)
    # end-to-end bridge: the apical donor is N5 of the other azide
    assert dist("Cu1", "N5'") == pytest.approx(2.346, abs=0.005)
    assert dist("Cu1'", "N5") == pytest.approx(2.346, abs=0.005)
    for a, b in (("N3", "N4"), ("N4", "N5")):
        assert 1.14 < dist(a, b) < 1.20
    u, v = pos["N3"] - pos["N4"], pos["N5"] - pos["N4"]
    assert np.degrees(np.arccos(u @ v / np.linalg.norm(u) / np.linalg.norm(v))) > 170.0


def test_five_coordinate_copper(crystal):
    near = [n for n in neighbours(crystal, crystal.atom_index("Cu1"), 2.5)]
    assert sorted(n.label for n in near) == ["N1", "N2", "N3", "N5", "O1"]
    # N5 is the apical donor: from the inversion-related half of the dimer
    (n5,) = [n for n in near if n.label == "N5"]
    assert not n5.is_identity
    # the next atom is well outside the coordination sphere
    assert neighbours(crystal, crystal.atom_index("Cu1"), 3.5)[5].distance > 2.7


def test_hydrogen_distances_are_neutron_values(crystal):
    for i, atom in enumerate(crystal.atoms):
        if atom.element != "H":
            continue
        near = neighbours(crystal, i, 1.5)
        assert len(near) == 1, atom.label
        parent = crystal.atoms[near[0].index].element
        target = {"C": 1.089, "N": 1.015, "O": 0.967}[parent]
        assert near[0].distance == pytest.approx(target, abs=0.002), atom.label


def test_dimer_is_one_molecule(crystal):
    labels, cart, elements = _dimer(crystal)
    d = np.linalg.norm(cart[:, None] - cart[None], axis=-1)
    rcov = np.array([gemmi.Element(e).covalent_r for e in elements])
    bonded = (d < rcov[:, None] + rcov[None] + 0.4) & (d > 0)
    seen, todo = {0}, [0]
    while todo:
        k = todo.pop()
        for j in np.flatnonzero(bonded[k]):
            if j not in seen:
                seen.add(int(j))
                todo.append(int(j))
    assert len(seen) == 66


def test_no_short_intermolecular_contacts(crystal):
    op, shift, _ = _cu_partner(crystal)
    own = {(0, (0, 0, 0)), (op, tuple(int(v) for v in shift))}
    for i, atom in enumerate(crystal.atoms):
        for n in neighbours(crystal, i, 4.0):
            if (n.op, n.shift) in own:
                continue
            limit = _vdw(atom.element) + _vdw(crystal.atoms[n.index].element) - VDW_TOLERANCE
            assert n.distance > limit, (atom.label, n.label, n.distance)


def test_no_short_contacts_inside_the_dimer(crystal):
    labels, cart, elements = _dimer(crystal)
    d = np.linalg.norm(cart[:, None] - cart[None], axis=-1)
    rcov = np.array([gemmi.Element(e).covalent_r for e in elements])
    adj = ((d < rcov[:, None] + rcov[None] + 0.4) & (d > 0)).astype(int)
    step = np.eye(len(labels), dtype=int) + adj
    close = np.linalg.matrix_power(step, 3) > 0  # 1-2, 1-3 and 1-4 pairs
    for i, j in combinations(range(len(labels)), 2):
        if not close[i, j]:
            limit = _vdw(elements[i]) + _vdw(elements[j]) - VDW_TOLERANCE
            assert d[i, j] > limit, (labels[i], labels[j], d[i, j])


@pytest.mark.parametrize("block", [XRAY, NEUTRON])
def test_adps(path, block):
    c = read_cif(path, block=block)
    for atom in c.atoms:
        if atom.element == "H":
            assert not atom.is_anisotropic
            assert 0.003 < atom.uiso < 0.03
            continue
        u = ucif_to_ucart(atom.u_aniso, c.cell)
        assert np.allclose(u, u.T)
        assert np.linalg.eigvalsh(u).min() > 0.0, atom.label
        assert 0.004 < np.trace(u) / 3 < 0.015, atom.label


def test_neutron_adps_larger_and_same_coordinates(crystal, neutron):
    for x, n in zip(crystal.atoms, neutron.atoms, strict=True):
        assert x.label == n.label
        assert np.array_equal(x.xyz, n.xyz)
        assert n.uiso > x.uiso, x.label

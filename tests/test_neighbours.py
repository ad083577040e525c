"""Neighbour search (chasm.crystal.neighbours) against a brute-force scan.

The reference below is the plain search the k-d tree replaced: every atom,
every operation, every lattice shift in a box around the central atom, and a
pairwise check against all images kept so far for coinciding images. The fast
search must give the same list, element for element and bit for bit.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from chasm.crystal.cif import read_cif
from chasm.crystal.neighbours import bonded, neighbours
from chasm.crystal.structure import Atom, Crystal
from chasm.examples.seed import seed_crystal


def brute_force(crystal, i: int, cutoff: float, include_self: bool = False) -> list[tuple]:
    """(index, op, shift, frac, cart, distance) of every image within ``cutoff``, nearest first."""
    a = crystal.A
    x0 = np.asarray(crystal.atoms[i].xyz, float)
    c0 = a @ x0
    reach = np.ceil(cutoff * np.linalg.norm(np.linalg.inv(a), axis=1)).astype(int) + 1
    axes = [np.arange(-r, r + 1) for r in reach]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    found, seen = [], []
    for j, atom in enumerate(crystal.atoms):
        for k in range(crystal.n_ops):
            base = crystal.rotations[k] @ np.asarray(atom.xyz, float) + crystal.translations[k]
            near = -np.floor(base - x0 + 0.5)
            cand = base + near + grid
            cart = cand @ a.T
            d = np.linalg.norm(cart - c0, axis=1)
            for m in np.nonzero(d <= cutoff)[0]:
                if not include_self and d[m] < 1e-6:
                    continue
                if any(np.linalg.norm(cart[m] - s) < 1e-4 for s in seen):
                    continue
                seen.append(cart[m])
                shift = tuple(int(v) for v in near + grid[m])
                found.append((j, k, shift, cand[m], cart[m], float(d[m])))
    found.sort(key=lambda n: (n[5], n[0], n[1]))
    return found


def assert_same(crystal, i: int, cutoff: float, include_self: bool = False) -> int:
    got = neighbours(crystal, i, cutoff, include_self=include_self)
    ref = brute_force(crystal, i, cutoff, include_self=include_self)
    assert len(got) == len(ref), (crystal.atoms[i].label, cutoff)
    for n, (j, k, shift, frac, cart, d) in zip(got, ref, strict=True):
        assert (n.index, n.op, n.shift, n.label) == (j, k, shift, crystal.atoms[j].label)
        assert n.distance == d  # bit for bit
        assert np.array_equal(n.frac, frac) and np.array_equal(n.cart, cart)
    return len(got)


@pytest.mark.parametrize("cutoff", [1.5, 3.2, 6.0])
def test_seed_structure_equals_the_brute_force_scan(cutoff):
    crystal = seed_crystal()
    total = sum(assert_same(crystal, i, cutoff) for i in range(len(crystal.atoms)))
    assert total > 0
    assert_same(crystal, 0, cutoff, include_self=True)


def test_special_positions_are_listed_once(shared_data):
    """CaF2 (F m -3 m, both atoms on special positions: 192 operations, many coincide)."""
    crystal = read_cif(shared_data / "xray" / "caf2" / "CaF2.cif")
    for i in range(len(crystal.atoms)):
        for include_self in (False, True):
            assert_same(crystal, i, 4.0, include_self=include_self)
    ca = crystal.atom_index(next(a.label for a in crystal.atoms if a.element == "Ca"))
    near = neighbours(crystal, ca, 2.5)
    assert [crystal.atoms[n.index].element for n in near] == ["F"] * 8  # cubic coordination
    assert len({tuple(np.round(n.cart, 6)) for n in near}) == 8


@pytest.mark.parametrize("name", ["p31c.cif", "SH2185_Cu.cif"])
def test_real_structures_equal_the_brute_force_scan(shared_data, name):
    crystal = read_cif(shared_data / "corpus" / name)
    for i in range(0, len(crystal.atoms), 3):
        assert_same(crystal, i, 3.5)


def test_index_follows_changed_positions():
    """The cached index is keyed by content: moving an atom gives the new neighbours."""
    crystal = Crystal.from_parts(
        (6.0, 7.0, 8.0, 90, 95, 90),
        "P 21/c",
        [Atom("C1", "C", (0.1, 0.2, 0.3), uiso=0.02), Atom("O1", "O", (0.25, 0.2, 0.3), uiso=0.02)],
    )
    before = neighbours(crystal, 0, 2.0)
    assert [n.label for n in before] == ["O1"]
    crystal.atoms[1].xyz = np.array([0.45, 0.2, 0.3])
    assert neighbours(crystal, 0, 2.0) == []
    assert_same(crystal, 0, 5.0)
    assert_same(crystal, 1, 8.5)  # beyond a and b: images of O1 itself at equal distances


def test_bonded_uses_covalent_radii():
    crystal = seed_crystal()
    cu = crystal.atom_index("Cu1")
    labels = sorted(crystal.atoms[n.index].element for n in bonded(crystal, cu))
    assert labels.count("N") >= 2 and "H" not in labels


def test_search_is_not_quadratic():
    """Every atom of the seed within 6 Å: the indexed search is many times faster than the scan."""
    crystal = seed_crystal()
    neighbours(crystal, 0, 6.0)  # builds the index
    t0 = time.perf_counter()
    for i in range(len(crystal.atoms)):
        neighbours(crystal, i, 6.0)
    fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    for i in range(0, len(crystal.atoms), 4):
        brute_force(crystal, i, 6.0)
    slow = 4 * (time.perf_counter() - t0)
    assert fast < slow / 5

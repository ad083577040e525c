"""Neighbours and covalent bonds of the atoms of the asymmetric unit.

A neighbour is a symmetry image of an atom, ``x' = R x + t + n`` (operation
index and lattice shift ``n`` kept), within a distance cut-off of the central
atom. Bonds follow the usual covalent-radius rule: atoms i and j are bonded
when ``d_ij <= r_i + r_j + tolerance`` (radii from gemmi's element table,
Cordero et al., Dalton Trans. (2008) 2832).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import gemmi
import numpy as np
from scipy.spatial import cKDTree

__all__ = ["Neighbour", "covalent_radius", "neighbours", "bonded", "BOND_TOLERANCE"]

BOND_TOLERANCE = 0.4
"""Added to the sum of covalent radii for the bond criterion, Angstrom."""


@dataclass(frozen=True)
class Neighbour:
    """One symmetry image of an atom near a central atom.

    Attributes
    ----------
    index : int
        Index of the atom in ``crystal.atoms``.
    label : str
        Its label.
    op : int
        Index of the space-group operation generating the image.
    shift : tuple of int
        Lattice translation added after the operation.
    frac : ndarray, shape (3,)
        Fractional coordinates of the image.
    cart : ndarray, shape (3,)
        Cartesian coordinates of the image, Angstrom.
    distance : float
        Distance to the central atom, Angstrom.
    """

    index: int
    label: str
    op: int
    shift: tuple[int, int, int]
    frac: np.ndarray
    cart: np.ndarray
    distance: float

    @property
    def is_identity(self) -> bool:
        """True for the atom itself in the reference cell (op 0 is x,y,z)."""
        return self.op == 0 and self.shift == (0, 0, 0)


@cache
def covalent_radius(element: str) -> float:
    """Covalent radius of an element, Angstrom (gemmi; Cordero et al. 2008)."""
    return float(gemmi.Element(element).covalent_r)


_SAME_POINT = 1e-4
"""Images closer than this (Å) are one point (special positions), listed once."""

_INDEX_CACHE: dict[tuple, _ImageIndex] = {}
_INDEX_CACHE_SIZE = 8


@dataclass(eq=False)
class _ImageIndex:
    """Every image R x_j + t + n (n in a box of lattice shifts) in a k-d tree.

    The images are built from the positions wrapped into the cell,
    w = b − floor(b) for b = R x_j + t, so one index serves any central atom
    (its position wrapped into the cell too): image (j, op, n) is the point
    b + n − floor(b) of the lattice.
    """

    atom: np.ndarray  # (m,) atom index j
    op: np.ndarray  # (m,) operation index
    shift: np.ndarray  # (m, 3) int: n − floor(b), the lattice shift from b
    base: np.ndarray  # (n_atoms, n_ops, 3) b = R x_j + t
    tree: cKDTree


def _content_key(crystal, reach: np.ndarray) -> tuple:
    """A key that changes whenever the cell, the operations or the positions do."""
    xyz = np.array([a.xyz for a in crystal.atoms], dtype=float).reshape(-1, 3)
    return (
        np.asarray(crystal.A, dtype=float).tobytes(),
        np.asarray(crystal.rotations).tobytes(),
        np.asarray(crystal.translations, dtype=float).tobytes(),
        xyz.tobytes(),
        tuple(int(r) for r in reach),
    )


def _image_index(crystal, reach: np.ndarray) -> _ImageIndex:
    """The k-d tree of all images with shifts n_i in [−reach_i, reach_i] (cached by content)."""
    key = _content_key(crystal, reach)
    hit = _INDEX_CACHE.get(key)
    if hit is not None:
        return hit
    xyz = np.array([a.xyz for a in crystal.atoms], dtype=float).reshape(-1, 3)
    rot, trans = crystal.rotations, crystal.translations
    base = np.einsum("kil,jl->jki", rot, xyz) + trans[None, :, :]  # (n_atoms, n_ops, 3)
    floor = np.floor(base)
    grid = np.stack(
        np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), axis=-1
    ).reshape(-1, 3)
    n_at, n_op = base.shape[:2]
    atom = np.repeat(np.arange(n_at), n_op * len(grid))
    op = np.tile(np.repeat(np.arange(n_op), len(grid)), n_at)
    wrapped = (base - floor).reshape(-1, 1, 3) + grid[None, :, :]
    shift = (grid[None, :, :] - floor.reshape(-1, 1, 3)).reshape(-1, 3).astype(np.int64)
    tree = cKDTree(wrapped.reshape(-1, 3) @ crystal.A.T)
    index = _ImageIndex(atom, op, shift, base, tree)
    if len(_INDEX_CACHE) >= _INDEX_CACHE_SIZE:
        _INDEX_CACHE.pop(next(iter(_INDEX_CACHE)))
    _INDEX_CACHE[key] = index
    return index


def _first_of_each_point(cart: np.ndarray) -> np.ndarray:
    """Mask keeping each point unless an earlier kept point lies within 1e-4 Å (in order)."""
    keep = np.ones(len(cart), dtype=bool)
    if len(cart) < 2:
        return keep
    pairs = cKDTree(cart).query_pairs(2.0 * _SAME_POINT, output_type="ndarray")
    if len(pairs) == 0:
        return keep
    a, b = np.sort(pairs, axis=1).T  # a < b: a comes first
    close = np.linalg.norm(cart[b] - cart[a], axis=1) < _SAME_POINT
    earlier: dict[int, list[int]] = {}
    for x, y in zip(a[close], b[close], strict=True):
        earlier.setdefault(int(y), []).append(int(x))
    for y in sorted(earlier):  # only the (few) coinciding images loop here
        if any(keep[x] for x in earlier[y]):
            keep[y] = False
    return keep


def neighbours(crystal, i: int, cutoff: float, include_self: bool = False) -> list[Neighbour]:
    """All atom images within ``cutoff`` Å of atom ``i``, nearest first.

    The images come from a k-d tree of every image in a box of lattice shifts
    (built once per structure and cut-off range, cached by content), so a
    query costs O(log N + found) instead of a scan of every atom, operation
    and shift.

    Parameters
    ----------
    crystal : Crystal
        The structure.
    i : int
        Index of the central atom.
    cutoff : float
        Largest distance, Angstrom.
    include_self : bool
        Keep the central atom itself (distance 0).

    Returns
    -------
    list of Neighbour
        Images sorted by distance (then atom index, operation); images that
        coincide within 1e-4 Å (special positions) are listed once, the first
        in the order atom, operation, lattice shift.
    """
    a = crystal.A
    x0 = np.asarray(crystal.atoms[i].xyz, float)
    c0 = a @ x0
    # shifts that reach the cut-off sphere from any point of the cell
    recip_norms = np.linalg.norm(np.linalg.inv(a), axis=1)
    reach = np.ceil(cutoff * recip_norms).astype(int) + 1
    index = _image_index(crystal, reach)
    f0 = np.floor(x0)
    hits = index.tree.query_ball_point(a @ (x0 - f0), cutoff * (1.0 + 1e-9) + 1e-9)
    hits = np.asarray(hits, dtype=np.intp)
    j, k = index.atom[hits], index.op[hits]
    total = index.shift[hits] + f0.astype(np.int64)  # image = b + total
    order = np.lexsort((total[:, 2], total[:, 1], total[:, 0], k, j))
    j, k, total = j[order], k[order], total[order]
    # positions as b + s + g with s the shift that brings b next to x0 (as written before)
    base = index.base[j, k]
    near_shift = -np.floor(base - x0 + 0.5)
    cand = (base + near_shift) + (total - near_shift)
    cart = cand @ a.T
    d = np.linalg.norm(cart - c0, axis=1)
    ok = d <= cutoff
    if not include_self:
        ok &= d >= 1e-6
    j, k, total, cand, cart, d = j[ok], k[ok], total[ok], cand[ok], cart[ok], d[ok]
    keep = _first_of_each_point(cart)
    found = [
        Neighbour(
            int(j[m]),
            crystal.atoms[j[m]].label,
            int(k[m]),
            tuple(int(v) for v in total[m]),
            cand[m].copy(),
            cart[m].copy(),
            float(d[m]),
        )
        for m in np.flatnonzero(keep)
    ]
    found.sort(key=lambda n: (n.distance, n.index, n.op))
    return found


def bonded(crystal, i: int, tolerance: float = BOND_TOLERANCE) -> list[Neighbour]:
    """Covalently bonded neighbours of atom ``i`` (covalent radii + tolerance), nearest first."""
    ri = covalent_radius(crystal.atoms[i].element)
    rmax = max(covalent_radius(a.element) for a in crystal.atoms)
    out = []
    for n in neighbours(crystal, i, ri + rmax + tolerance):
        if n.distance <= ri + covalent_radius(crystal.atoms[n.index].element) + tolerance:
            out.append(n)
    return out

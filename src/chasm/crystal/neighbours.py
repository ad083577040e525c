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


def neighbours(crystal, i: int, cutoff: float, include_self: bool = False) -> list[Neighbour]:
    """All atom images within ``cutoff`` Å of atom ``i``, nearest first.

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
        Images sorted by distance; images of special-position atoms that
        coincide (same Cartesian position) are listed once.
    """
    a = crystal.A
    x0 = np.asarray(crystal.atoms[i].xyz, float)
    c0 = a @ x0
    rot, trans = crystal.rotations, crystal.translations
    # lattice shifts large enough to cover the cut-off sphere
    recip_norms = np.linalg.norm(np.linalg.inv(a), axis=1)
    reach = np.ceil(cutoff * recip_norms).astype(int) + 1
    grid = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), -1).reshape(
        -1, 3
    )
    xs = np.array([np.asarray(atom.xyz, float) for atom in crystal.atoms]).reshape(-1, 3)
    # every image R x_j + t of every atom, brought near the central atom (n, ops, 3),
    # then every lattice shift of the grid (n, ops, grid, 3)
    base = np.einsum("kab,jb->jka", rot, xs) + trans[None, :, :]
    base_shift = -np.floor(base - x0 + 0.5)
    cand = (base + base_shift)[:, :, None, :] + grid[None, None, :, :]
    cart = cand @ a.T
    d = np.linalg.norm(cart - c0, axis=-1)
    jj, kk, mm = np.nonzero(d <= cutoff)  # in atom, operation, shift order
    if not include_self:
        away = d[jj, kk, mm] >= 1e-6
        jj, kk, mm = jj[away], kk[away], mm[away]
    hits = cart[jj, kk, mm]
    # an image already found (special positions) is listed once: keep the first
    close = np.sum((hits[:, None, :] - hits[None, :, :]) ** 2, axis=-1) < 1e-8
    first = ~np.any(np.tril(close, -1), axis=1)
    found: list[Neighbour] = []
    for j, k, m in zip(jj[first], kk[first], mm[first], strict=True):
        shift = tuple(int(v) for v in (base_shift[j, k] + grid[m]))
        found.append(
            Neighbour(
                int(j),
                crystal.atoms[j].label,
                int(k),
                shift,
                cand[j, k, m].copy(),
                cart[j, k, m].copy(),
                float(d[j, k, m]),
            )
        )
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

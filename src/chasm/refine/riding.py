"""Riding hydrogen atoms at a fixed X–H distance.

X-ray data place H atoms too close to their parent atom X (the H electron
sits in the bond). Charge-density practice moves H along the X–H direction to
a standard neutron distance and keeps it there while X moves. Here H rides
on X with the direction fixed at the start of the refinement:

    x_H = R x_X + t + n + d u,

with (R, t, n) the symmetry operation and lattice shift taking the parent's
asymmetric-unit position to the image bonded to H, d the X–H distance (Å) and
u the fixed X→H direction expressed as a fractional-coordinate vector of
length d. Both positions are linear in the parameters, so the three rows
``x_H − R x_X = t + n + d u`` are exact linear constraints: when X shifts, H
shifts with it (rotated by R), and the X–H distance stays d.

Default distances are the neutron-normalisation values of Allen & Bruno,
Acta Cryst. B66 (2010) 380 (as adopted by the CSD's ConQuest): C–H 1.089,
N–H 1.015, O–H 0.993 Å. Other parents need an explicit distance.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chasm.crystal.structure import Atom, Crystal

from dataclasses import dataclass

import numpy as np

from chasm.crystal.neighbours import Neighbour, bonded
from chasm.errors import InputError
from chasm.refine.constraints import LinearConstraints
from chasm.refine.parameters import Parameters

__all__ = ["NEUTRON_XH", "RidingHydrogen", "parent_atom", "place_riding", "riding_constraints"]

#: Standard X–H distances (Å) from neutron diffraction, Allen & Bruno (2010).
NEUTRON_XH: dict[str, float] = {"C": 1.089, "N": 1.015, "O": 0.993}

HYDROGENS = ("H", "D")


@dataclass(frozen=True)
class RidingHydrogen:
    """One H atom riding on its parent.

    Attributes
    ----------
    h : str
        Label of the hydrogen.
    parent : str
        Label of the atom X it is bonded to.
    distance : float
        X–H distance kept during refinement, Å.
    """

    h: str
    parent: str
    distance: float


def _parent_image(crystal: Crystal, ih: int, parent: str) -> Neighbour:
    near = [n for n in bonded(crystal, ih, tolerance=0.6) if n.label == parent]
    if not near:
        raise InputError(
            f"riding hydrogen {crystal.atoms[ih].label}: {parent} is not bonded to it "
            "(no image within covalent radii + 0.6 A); check the parent atom"
        )
    return near[0]


def parent_atom(crystal: Crystal, i: int) -> Atom | None:
    """The nearest bonded non-H atom of atom ``i`` (covalent radii + 0.6 Å), or None."""
    for n in bonded(crystal, i, tolerance=0.6):
        if crystal.atoms[n.index].element not in HYDROGENS:
            return crystal.atoms[n.index]
    return None


def place_riding(crystal: Crystal, riders: list[RidingHydrogen]) -> dict[str, np.ndarray]:
    """Move each H along its X–H direction to the requested distance (in place).

    Returns
    -------
    dict
        H label -> the fixed Cartesian unit vector u (X→H direction).
    """
    directions = {}
    for r in riders:
        ih = crystal.atom_index(r.h)
        if r.distance <= 0:
            raise InputError(f"riding hydrogen {r.h}: distance must be positive, got {r.distance}")
        img = _parent_image(crystal, ih, r.parent)
        h_cart = crystal.frac_to_cart(crystal.atoms[ih].xyz)
        v = h_cart - img.cart
        u = v / np.linalg.norm(v)
        crystal.atoms[ih].xyz = np.asarray(crystal.cart_to_frac(img.cart + r.distance * u))
        directions[r.h] = u
    return directions


def riding_constraints(
    crystal: Crystal, params: Parameters, riders: list[RidingHydrogen]
) -> LinearConstraints:
    """Rows ``x_H − R x_X = t + n + d u`` for every rider (three per H).

    The H positions must already be at the riding distance
    (:func:`place_riding`); the right-hand sides are taken from the current
    geometry, so the constraints hold exactly at the start.
    """
    out = LinearConstraints(params)
    for r in riders:
        ih = crystal.atom_index(r.h)
        img = _parent_image(crystal, ih, r.parent)
        rot = crystal.rotations[img.op]
        xh = np.asarray(crystal.atoms[ih].xyz, float)
        xp = np.asarray(crystal.atoms[crystal.atom_index(r.parent)].xyz, float)
        rhs = xh - rot @ xp
        for a, axis in enumerate("xyz"):
            coeffs = {f"{r.h}.{axis}": 1.0}
            for b, axb in enumerate("xyz"):
                if rot[a, b] != 0:
                    name = f"{r.parent}.{axb}"
                    coeffs[name] = coeffs.get(name, 0.0) - float(rot[a, b])
            out.add(
                coeffs, float(rhs[a]), f"{r.h} rides on {r.parent} at {r.distance:.3f} A ({axis})"
            )
    return out

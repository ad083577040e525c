"""The floating origin of polar space groups, fixed by an exact constraint.

In a space group whose rotations all leave a direction v unchanged (R v = v
for every operation: P1, P2₁, Pna2₁, P3₁, P3₁c, …) a shift of every atom by
δ v changes no structure factor amplitude: the origin along v is free and the
normal matrix is singular as soon as every atom may move along v. SHELXL
removes the singularity with a restraint on the weighted centre of the
structure; chasm uses the exact equivalent: the electron-weighted centroid of
the asymmetric unit along v keeps its value,

    Σ_i w_i v·x_i = Σ_i w_i v·x_i(start),   w_i = Z_i · occupancy_i · multiplicity_i,

one row per independent polar direction (x_i fractional). Every other
parameter, every calculated value and χ² are those of a refinement with one
atom's coordinate fixed by hand; the coordinates differ from it by one common
shift along v (a change of origin). The rows are added only in a stage where
every atom can move along v: if any atom's coordinate along v is fixed, that
atom already defines the origin and nothing is added.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chasm.crystal.structure import Atom, Crystal

from collections.abc import Sequence

import numpy as np
import periodictable

from chasm.refine.constraints import LinearConstraints
from chasm.refine.parameters import Parameters

__all__ = ["polar_directions", "origin_constraints", "describe_directions"]

_AXES = "xyz"


def polar_directions(rotations: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    """Directions of free origin shift: the common fixed space of all rotations.

    Parameters
    ----------
    rotations : ndarray (n_ops, 3, 3)
        Rotation parts of the space group's operations (fractional basis).

    Returns
    -------
    ndarray (k, 3)
        Orthonormal basis (fractional components) of {v : R v = v for all R};
        k = 0 for a non-polar group, 3 for P1.
    """
    rot = np.asarray(rotations, dtype=float).reshape(-1, 3, 3)
    stacked = (rot - np.eye(3)).reshape(-1, 3)
    _, s, vt = np.linalg.svd(stacked)
    s = np.concatenate([s, np.zeros(3 - s.size)])
    basis = vt[s <= tol * max(1.0, float(s[0]) if s.size else 1.0)]
    # tidy: directions along a cell axis come out as unit vectors, not ±(rounding)
    basis = np.where(np.abs(basis) < 1e-12, 0.0, basis)
    for k in range(len(basis)):
        j = int(np.argmax(np.abs(basis[k])))
        if basis[k, j] < 0:
            basis[k] = -basis[k]
    return basis


def describe_directions(basis: np.ndarray) -> str:
    """``"b"``, ``"c"``, ``"a, b, c"`` or a vector such as ``"[0.707 0.707 0]"``."""
    names = []
    for v in basis:
        nz = np.flatnonzero(np.abs(v) > 1e-9)
        if nz.size == 1:
            names.append("abc"[int(nz[0])])
        else:
            names.append("[" + " ".join(f"{x:.3g}" for x in v) + "]")
    return ", ".join(names)


def _weight(atom: Atom, multiplicity: int) -> float:
    try:
        z = periodictable.elements.symbol(atom.element).number
    except ValueError:
        z = 1
    return float(max(z, 1)) * float(atom.occupancy) * float(multiplicity)


def origin_constraints(
    crystal: Crystal, params: Parameters, labels: Sequence[str] | None = None
) -> tuple[LinearConstraints | None, str]:
    """Rows fixing the floating origin in the current stage, and a note for the user.

    Parameters
    ----------
    crystal : Crystal
        Symmetry and atoms (current coordinates).
    params : Parameters
        The full parameter vector with the stage's free flags set.
    labels : sequence of str, optional
        Atoms that carry positions (default: all atoms of the crystal).

    Returns
    -------
    (LinearConstraints or None, str)
        None and "" when the group is not polar or some atom cannot move along
        a polar direction (the origin is then defined by that atom).
    """
    basis = polar_directions(crystal.rotations)
    if not len(basis):
        return None, ""
    atoms = [a for a in crystal.atoms if labels is None or a.label in set(labels)]
    names = set(params.names)
    rows = LinearConstraints(params)
    fixed_dirs = []
    for v in basis:
        coeffs: dict[str, float] = {}
        rhs = 0.0
        movable = True
        for i, atom in enumerate(crystal.atoms):
            if atom not in atoms:
                continue
            w = _weight(atom, crystal.multiplicity(i))
            for c in np.flatnonzero(np.abs(v) > 1e-12):
                name = f"{atom.label}.{_AXES[c]}"
                if name not in names or not params[name].free:
                    movable = False
                    break
                coeffs[name] = coeffs.get(name, 0.0) + w * float(v[c])
                rhs += w * float(v[c]) * float(atom.xyz[c])
            if not movable:
                break
        if movable and coeffs:
            total = sum(abs(x) for x in coeffs.values())
            coeffs = {k: x / total for k, x in coeffs.items()}  # the weighted mean, not the sum
            rows.add(
                coeffs,
                rhs / total,
                description=f"floating origin along {describe_directions(v[None])}: "
                "electron-weighted centroid of the asymmetric unit kept",
            )
            fixed_dirs.append(v)
    if not fixed_dirs:
        return None, ""
    note = (
        f"polar space group: the floating origin along {describe_directions(np.array(fixed_dirs))}"
        " is fixed by keeping the electron-weighted centroid of the atoms (an exact constraint;"
        " the equivalent of fixing one atom's coordinate)"
    )
    return rows, note

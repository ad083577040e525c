"""Hirshfeld's rigid-bond test (Hirshfeld, Acta Cryst. A32 (1976) 239).

For two bonded atoms A and B with anisotropic displacement tensors U_A, U_B
(Cartesian, Å²) and n the unit vector along the bond, the mean-square
displacement amplitudes along the bond are z²_A = nᵀ U_A n and z²_B =
nᵀ U_B n. If the bond is rigid — as covalent bonds between atoms at least as
heavy as carbon nearly are — the two are equal: Δ = z²_A − z²_B ≈ 0, within
about 0.001 Å² (Hirshfeld's criterion). A larger |Δ|, or |Δ| / su(Δ) well
above 3, points to ADPs that absorbed density (an inadequate density model,
wrong scale or extinction) or to poor data.

su(Δ) combines the su of the six U_cif of both atoms WITHOUT correlations
(Δ is linear in them). Atom B may be any symmetry image: its tensor is
rotated with the operation first. Bonds are pairs within the sum of the
covalent radii + 0.4 Å, contacts between two metal atoms left out;
metal–ligand and ionic contacts are listed but need not be rigid.
"""

from __future__ import annotations

from dataclasses import dataclass

import gemmi
import numpy as np

from chasm.crystal.adp import ucif_to_ucart
from chasm.crystal.structure import Crystal

__all__ = ["RigidBond", "rigid_bond_test", "msda_along"]

U_NAMES = ("U11", "U22", "U33", "U12", "U13", "U23")
#: Hirshfeld's criterion for a rigid bond between atoms at least as heavy as carbon, Å².
HIRSHFELD_LIMIT = 0.001


@dataclass
class RigidBond:
    """One bonded pair of the rigid-bond test.

    Attributes
    ----------
    atom1, atom2 : str
        Labels (atom2 with its symmetry code when it is an image).
    distance : float
        Bond length, Å.
    z2_1, z2_2 : float
        Mean-square displacement along the bond of each atom, Å².
    delta : float
        z2_1 − z2_2, Å².
    su : float or None
        su(Δ) from the su of the U (no correlations); None when unknown.
    """

    atom1: str
    atom2: str
    distance: float
    z2_1: float
    z2_2: float
    delta: float
    su: float | None

    @property
    def z(self) -> float | None:
        """Δ / su(Δ), or None without su."""
        return self.delta / self.su if self.su else None


def msda_along(u_cif, cell, direction) -> float:
    """Mean-square displacement nᵀ U_cart n (Å²) along a Cartesian direction.

    Parameters
    ----------
    u_cif : array_like, shape (6,)
        U11 U22 U33 U12 U13 U23, Å².
    cell : Crystal, gemmi.UnitCell or (3, 3) basis
    direction : array_like, shape (3,)
        Any length (normalised here).
    """
    n = np.asarray(direction, dtype=float)
    n = n / np.linalg.norm(n)
    return float(n @ ucif_to_ucart(np.asarray(u_cif, float), cell) @ n)


def _coefficients(crystal, direction) -> np.ndarray:
    """∂(nᵀ U_cart n)/∂U_cif,k for k = 1…6 (the MSDA is linear in U_cif)."""
    return np.array([msda_along(e, crystal, direction) for e in np.eye(6)])


def _variance(groups, su: dict) -> float | None:
    """Σ (c_k su_k)² over the U of the atoms; None when a needed su is not known.

    A name present with su None (a U fixed, e.g. by site symmetry) counts as 0.
    """
    var = 0.0
    for label, c in groups:
        for ck, u in zip(c, U_NAMES, strict=True):
            if abs(ck) < 1e-12:
                continue
            name = f"{label}.{u}"
            if name not in su:
                return None
            sk = su[name] or 0.0
            if not np.isfinite(sk):
                return None
            var += (ck * sk) ** 2
    return var


def rigid_bond_test(
    crystal: Crystal, su: dict | None = None, include_h: bool = False
) -> list[RigidBond]:
    """Δ-MSDA of every bonded pair of anisotropic atoms (each pair once).

    Parameters
    ----------
    crystal : Crystal
        Atoms with ``u_aniso`` (U_cif, Å²); bonds by covalent radii + 0.4 Å
        (:func:`chasm.crystal.neighbours.bonded`).
    su : dict, optional
        Parameter name (``"C1.U11"``...) -> su; missing or None entries count as
        unknown (the pair's su is then None).
    include_h : bool
        Also pairs with anisotropic H or D atoms (not rigid in Hirshfeld's sense).

    Returns
    -------
    list of RigidBond
        In the order of the atoms of the asymmetric unit.
    """
    from chasm.crystal.neighbours import bonded

    su = su or {}
    rot = crystal.cartesian_rotations()
    atoms = crystal.atoms
    out, seen = [], set()

    def usable(a) -> bool:
        return a.u_aniso is not None and (include_h or a.element not in ("H", "D"))

    metal = {a.element: gemmi.Element(a.element).is_metal for a in atoms}

    for i, a in enumerate(atoms):
        if not usable(a):
            continue
        ri = crystal.frac_to_cart(a.xyz)
        for nb in bonded(crystal, i):
            b = atoms[nb.index]
            if not usable(b) or (nb.index == i and nb.is_identity):
                continue
            if metal[a.element] and metal[b.element]:  # metal-metal contacts: not bonds
                continue
            key = tuple(sorted((i, nb.index))) + (round(nb.distance, 4),)
            if key in seen:
                continue
            seen.add(key)
            n = (nb.cart - ri) / nb.distance
            m = rot[nb.op].T @ n  # the bond in the frame of atom B's asymmetric-unit tensor
            ca, cb = _coefficients(crystal, n), _coefficients(crystal, m)
            z1, z2 = float(ca @ a.u_aniso), float(cb @ b.u_aniso)
            if nb.index == i:  # an atom bonded to its own image: one set of U
                groups = [(a.label, ca - cb)]
            else:
                groups = [(a.label, ca), (b.label, cb)]
            var = _variance(groups, su)
            shift = "".join(str(5 + t) for t in nb.shift)
            code = "" if nb.is_identity else f" ({nb.op + 1}_{shift})"
            out.append(
                RigidBond(
                    a.label,
                    b.label + code,
                    float(nb.distance),
                    z1,
                    z2,
                    z1 - z2,
                    None if var is None else float(np.sqrt(var)),
                )
            )
    return out

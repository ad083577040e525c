"""Sums of per-atom quantities over the asymmetric unit, the cell and the formula unit.

The one definition of these sums (occupancy / |site group| weights), used for
Hansen–Coppens charges and spin populations (:mod:`chasm.properties`) and for
the moments of polarised-neutron spin models (:mod:`chasm.neutron.moments`).
"""

from __future__ import annotations

import numpy as np

from chasm.errors import InputError

__all__ = ["formula_units", "site_weight", "linear_sums"]


def formula_units(crystal) -> int:
    """Z: greatest common divisor of the site multiplicities of the crystal.

    Raises
    ------
    InputError
        A partly occupied site (the formula unit is then not defined by the
        multiplicities; pass Z explicitly).
    """
    from math import gcd

    z = 0
    for i, atom in enumerate(crystal.atoms):
        if abs(atom.occupancy - 1.0) > 1e-6:
            raise InputError(f"site {atom.label} has occupancy {atom.occupancy}: give Z explicitly")
        z = gcd(z, int(crystal.multiplicity(i)))
    return z


def site_weight(crystal, index: int) -> float:
    """w_j = occupancy / |site-symmetry group|: an atom's share of the asymmetric unit.

    An atom on a special position is shared by the |G_j| images of the
    asymmetric unit that its site group maps onto each other; Σ_j w_j v_j is
    the asymmetric-unit sum that the charge and spin constraints hold, and
    n_ops Σ_j w_j v_j = Σ_j occupancy_j multiplicity_j v_j the cell sum.
    """
    return crystal.atoms[index].occupancy / len(crystal.site_symmetry(index))


def linear_sums(value_su, terms, n_ops: int, z: int | None) -> dict:
    """Sums of per-atom linear quantities over the asymmetric unit, the cell and Z.

    The one definition used for charges, spin populations and PND moments.

    Parameters
    ----------
    value_su : callable (a, const) -> (value, su)
        Value and su of the linear form a·p + const (with the covariance of p).
    terms : sequence of (weight, const, a)
        Per atom: its :func:`site_weight`, the constant part and the
        coefficient vector of its quantity.
    n_ops : int
        Operations of the space group (centring included).
    z : int or None
        Formula units per cell; None: no per-formula-unit sum.

    Returns
    -------
    dict
        ``"asymmetric unit"`` Σ w_j v_j, ``"cell"`` n_ops × that, and with z
        ``"formula unit"`` cell / z; each (value, su). Empty without terms.
    """
    if not terms:
        return {}
    const = sum(w * c for w, c, _ in terms)
    a = np.sum([w * v for w, _, v in terms], axis=0)
    asym = value_su(a, const)
    cell = (asym[0] * n_ops, asym[1] * n_ops)
    out = {"asymmetric unit": asym, "cell": cell}
    if z:
        out["formula unit"] = (cell[0] / z, cell[1] / z)
    return out

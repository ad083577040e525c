"""Riding isotropic displacement of hydrogen atoms: Uiso(H) = f · Ueq(parent).

The SHELXL convention (Sheldrick, Acta Cryst. C71 (2015) 3; the HFIX/AFIX
instructions of the SHELXL manual): f = 1.5 for the H of methyl, hydroxyl
and ammonium (NH3) groups, whose rotation adds to their motion, and f = 1.2
for every other H. Ueq = trace(U_cart)/3 is linear in the parent's U_ij, so
the rule is an exact linear constraint; a positive-definite parent U gives a
positive Uiso(H) (never a negative one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chasm.crystal.structure import Crystal
    from chasm.refine.parameters import Parameters

from collections.abc import Sequence

import numpy as np

from chasm.crystal.adp import ueq
from chasm.refine.constraints import LinearConstraints

__all__ = ["U_RIDING_GROUP", "U_RIDING_OTHER", "ueq_coefficients", "uiso_factor", "riding_uiso"]

#: f for H of CH3, OH, NH3 (rotating groups).
U_RIDING_GROUP = 1.5
#: f for every other H.
U_RIDING_OTHER = 1.2

_U6 = ("U11", "U22", "U33", "U12", "U13", "U23")


def ueq_coefficients(cell: Any) -> np.ndarray:
    """c with Ueq = c · (U11, U22, U33, U12, U13, U23) (U_cif, Å²) for this cell."""
    return np.array([ueq(np.eye(6)[k], cell) for k in range(6)])


def uiso_factor(crystal: Crystal, i_parent: int, n_h_on_parent: int) -> float:
    """1.5 for a parent C or N carrying 3 H, or an O parent (OH); else 1.2."""
    el = crystal.atoms[i_parent].element
    if el == "O" or (el in ("C", "N") and n_h_on_parent >= 3):
        return U_RIDING_GROUP
    return U_RIDING_OTHER


def riding_uiso(
    crystal: Crystal, params: Parameters, pairs: Sequence[tuple[str, str, float]]
) -> LinearConstraints:
    """Rows ``H.Uiso − f Ueq(parent) = 0`` for (h, parent, f) of isotropic H.

    The parent may be anisotropic (Ueq from its U_ij) or isotropic
    (``f · parent.Uiso``). The start values must already obey the rows
    (set ``crystal.atoms[h].uiso`` before the parameters are made).
    """
    out = LinearConstraints(params)
    c = ueq_coefficients(crystal.cell)
    for h, parent, f in pairs:
        terms = {f"{h}.Uiso": 1.0}
        if f"{parent}.U11" in params:
            for k, u in enumerate(_U6):
                if abs(c[k]) > 1e-15:
                    terms[f"{parent}.{u}"] = -f * float(c[k])
        else:
            terms[f"{parent}.Uiso"] = -f
        out.add(terms, 0.0, f"{h}.Uiso = {f:g} Ueq({parent}) (riding)")
    return out

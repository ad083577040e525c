"""Conversions between the usual parametrisations of anisotropic displacements.

All tensors are in Å² (U, not B) and the 6-vectors are ordered
``U11 U22 U33 U12 U13 U23`` (the order of gemmi's ``SMat33.elements_pdb()``;
note that CIF files may list the columns in any order — read them by tag name).

Definitions (Grosse-Kunstleve & Adams, J. Appl. Cryst. 35 (2002) 477):

- ``U_cif``: the CIF / SHELX ``U_ij``, referred to the unit vectors along the
  reciprocal axes; ``U*_ij = a*_i a*_j U_cif,ij`` (N U_cif N with
  N = diag(a*, b*, c*)).
- ``U*``: dimensionless, enters T(h) = exp(−2π² Σ_ij h_i h_j U*_ij) with
  integer (h, k, l).
- ``U_cart = A U* Aᵀ``: Cartesian, in the frame of the direct basis A of
  :class:`chasm.crystal.structure.Crystal`; T(h) = exp(−2π² hᵀ U_cart h) with
  h = B (h, k, l) Cartesian in Å⁻¹ (CONVENTIONS.md).
- ``Ueq = trace(U_cart) / 3``.

The ``cell`` argument of every function may be a ``gemmi.UnitCell`` or the
(3, 3) direct basis A (columns a, b, c in Å); anything with an ``A`` attribute
(a :class:`Crystal`) works too.
"""

from __future__ import annotations

import gemmi
import numpy as np

__all__ = [
    "direct_basis",
    "u6_to_matrix",
    "matrix_to_u6",
    "ucif_to_ustar",
    "ustar_to_ucif",
    "ucif_to_ucart",
    "ucart_to_ucif",
    "ueq",
    "B_TO_U",
]

#: Factor from B (Å²) to U (Å²): U = B / (8π²).
B_TO_U = 1.0 / (8.0 * np.pi**2)


def direct_basis(cell) -> np.ndarray:
    """The direct basis A (3, 3), columns a, b, c in Cartesian Å.

    Parameters
    ----------
    cell : gemmi.UnitCell, ndarray (3, 3), or an object with an ``A`` attribute
    """
    if isinstance(cell, gemmi.UnitCell):
        return np.array(cell.orth.mat.tolist(), dtype=float)
    if hasattr(cell, "A"):
        return np.asarray(cell.A, dtype=float)
    a = np.asarray(cell, dtype=float)
    if a.shape != (3, 3):
        raise ValueError(f"expected a gemmi.UnitCell or a (3, 3) basis, got shape {a.shape}")
    return a


def _reciprocal_lengths(cell) -> np.ndarray:
    """a*, b*, c* (Å⁻¹) as the column norms of B = inv(A)ᵀ."""
    b = np.linalg.inv(direct_basis(cell)).T
    return np.linalg.norm(b, axis=0)


def u6_to_matrix(u6) -> np.ndarray:
    """(..., 6) ``U11 U22 U33 U12 U13 U23`` -> symmetric (..., 3, 3)."""
    u = np.asarray(u6, dtype=float)
    if u.shape[-1] != 6:
        raise ValueError(f"expected 6 components U11 U22 U33 U12 U13 U23, got shape {u.shape}")
    m = np.empty(u.shape[:-1] + (3, 3))
    m[..., 0, 0], m[..., 1, 1], m[..., 2, 2] = u[..., 0], u[..., 1], u[..., 2]
    m[..., 0, 1] = m[..., 1, 0] = u[..., 3]
    m[..., 0, 2] = m[..., 2, 0] = u[..., 4]
    m[..., 1, 2] = m[..., 2, 1] = u[..., 5]
    return m


def matrix_to_u6(m) -> np.ndarray:
    """Symmetric (..., 3, 3) -> (..., 6) ``U11 U22 U33 U12 U13 U23`` (symmetrised)."""
    m = np.asarray(m, dtype=float)
    m = 0.5 * (m + np.swapaxes(m, -1, -2))
    return np.stack(
        [m[..., 0, 0], m[..., 1, 1], m[..., 2, 2], m[..., 0, 1], m[..., 0, 2], m[..., 1, 2]],
        axis=-1,
    )


_PAIRS = np.array([[0, 0], [1, 1], [2, 2], [0, 1], [0, 2], [1, 2]])


def ucif_to_ustar(u6, cell) -> np.ndarray:
    """U_cif (Å², (..., 6)) -> U* (dimensionless, (..., 6)), U*_ij = a*_i a*_j U_ij."""
    n = _reciprocal_lengths(cell)
    return np.asarray(u6, dtype=float) * n[_PAIRS[:, 0]] * n[_PAIRS[:, 1]]


def ustar_to_ucif(ustar6, cell) -> np.ndarray:
    """U* (dimensionless, (..., 6)) -> U_cif (Å², (..., 6))."""
    n = _reciprocal_lengths(cell)
    return np.asarray(ustar6, dtype=float) / (n[_PAIRS[:, 0]] * n[_PAIRS[:, 1]])


def ucif_to_ucart(u6, cell) -> np.ndarray:
    """U_cif (Å², (..., 6)) -> U_cart (Å², (..., 3, 3)) = A U* Aᵀ."""
    a = direct_basis(cell)
    ustar = u6_to_matrix(ucif_to_ustar(u6, a))
    return a @ ustar @ a.T


def ucart_to_ucif(ucart, cell) -> np.ndarray:
    """U_cart (Å², (..., 3, 3)) -> U_cif (Å², (..., 6)); U* = A⁻¹ U_cart A⁻ᵀ."""
    a = direct_basis(cell)
    ainv = np.linalg.inv(a)
    ustar = ainv @ np.asarray(ucart, dtype=float) @ ainv.T
    return ustar_to_ucif(matrix_to_u6(ustar), a)


def ueq(u6, cell) -> np.ndarray | float:
    """Equivalent isotropic U (Å²) = trace(U_cart) / 3 of U_cif (..., 6)."""
    result = np.trace(ucif_to_ucart(u6, cell), axis1=-2, axis2=-1) / 3.0
    return float(result) if np.ndim(result) == 0 else result

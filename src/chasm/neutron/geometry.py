"""Field direction and sin²α for flipping-ratio data from a UB matrix.

Instrument convention (LLB 6T2 and 5C1, as read by cryspy)
------------------------------------------------------------
The flipping ratios are measured in normal-beam geometry: the crystal turns
about the vertical ω axis, the detector is lifted out of the horizontal plane,
and the magnetic field is vertical, along the ω axis. The laboratory frame of
the "CCSL" convention (P. J. Brown's Cambridge Crystallographic Subroutine
Library, used by the LLB programs and by cryspy) is

- X along the incident beam, Z vertical (up, along ω and along +B),
  Y = Z × X (right-handed);
- UB maps Miller indices to the laboratory components of the scattering
  vector at ω = 0: q_lab = UB (h, k, l).

Since ω only rotates about Z, the field direction in the crystal frame is the
same for every reflection of a data set: ê = U⁻¹ Ẑ, where U is the rotation
part of UB. A field given as negative (``_setup_field`` < 0) points along −Z.

Other row conventions cryspy accepts (``_diffrn_orient_matrix_type``, cryspy
``C_item_loop_classes/cl_2_diffrn_orient_matrix.py``, ``calc_ub_ccsl``) are
turned into CCSL rows first: ``CCSL``, ``XYZ`` and ``6T2@LLB`` are used as
written; ``-YXZ`` and ``5C1@LLB`` give rows (−r2, r1, r3); ``Y-XZ`` and
``BusingLevy`` give rows (r2, −r1, r3).

From UB to U
------------
cryspy derives a reciprocal cell from the columns of UB itself (their lengths
and angles), builds the Busing–Levy matrix B of that cell (upper triangular,
positive diagonal, a* along x, c along z) and takes U = UB B⁻¹. Because
Bᵀ B = UBᵀ UB, this B is the Cholesky factor of UB's own metric and U is the Q
of the QR decomposition UB = Q R with positive diag(R): exactly orthogonal even
when UB's cell differs from the model's (in the Ho2Ti2O7 file one column of UB
is 1 % shorter than the others) and independent of the scale of UB (that file
stores UB with column lengths ≈ a instead of a*). :func:`orientation_matrix`
computes it that way. Only the direction ê is used downstream.

Frames
------
U maps cryspy's Cartesian crystal frame (x ∥ a*, z ∥ c, y = z × x) to the
laboratory. chasm's Cartesian frame (:mod:`chasm.crystal.structure`) has
x ∥ a and z ∥ c*. The two are related by the rotation
Q = B_chasm B_BL⁻¹ (v_chasm = Q v_cryspy), with B_chasm = inv(A)ᵀ and
B_BL the Busing–Levy matrix of the model's cell; for orthogonal cells Q = 1.
:func:`field_direction` returns ê in chasm's frame.

Then for a reflection with unit scattering vector ĥ = B h / |B h| (chasm frame),
sin²α = 1 − (ĥ·ê)² (CONVENTIONS.md, "Neutrons").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chasm.errors import InputError

__all__ = [
    "UB_CONVENTIONS",
    "ub_to_ccsl",
    "orientation_matrix",
    "busing_levy_b",
    "cryspy_to_chasm_rotation",
    "field_direction",
    "FieldGeometry",
    "field_geometry",
]

#: ``_diffrn_orient_matrix_type`` values understood, and how rows map to CCSL.
UB_CONVENTIONS = ("CCSL", "XYZ", "6T2@LLB", "-YXZ", "5C1@LLB", "Y-XZ", "BusingLevy")


def ub_to_ccsl(ub, convention: str = "CCSL") -> np.ndarray:
    """Rows of UB rearranged to the CCSL laboratory frame (X beam, Z vertical).

    Parameters
    ----------
    ub : array_like (3, 3)
    convention : str
        One of :data:`UB_CONVENTIONS` (case-insensitive).

    Raises
    ------
    InputError
        Unknown convention.
    """
    m = np.asarray(ub, dtype=float).reshape(3, 3)
    key = convention.strip().lower()
    if key in ("ccsl", "xyz", "6t2@llb"):
        return m.copy()
    if key in ("-yxz", "5c1@llb"):
        return np.array([-m[1], m[0], m[2]])
    if key in ("y-xz", "businglevy"):
        return np.array([m[1], -m[0], m[2]])
    raise InputError(
        f"unknown UB matrix convention {convention!r}; use one of {', '.join(UB_CONVENTIONS)}"
    )


def orientation_matrix(ub, convention: str = "CCSL") -> np.ndarray:
    """Rotation U (lab ← cryspy crystal frame) from a UB matrix.

    U = Q of UB_ccsl = Q R, R upper triangular with a positive diagonal (see the
    module docstring; this is cryspy's U = UB B(UB)⁻¹).

    Raises
    ------
    InputError
        Singular or left-handed UB (det < 0).
    """
    m = ub_to_ccsl(ub, convention)
    det = np.linalg.det(m)
    if abs(det) < 1e-12 * max(1.0, np.abs(m).max() ** 3):
        raise InputError("the UB matrix is singular")
    if det < 0:
        raise InputError("the UB matrix is left-handed (det < 0): check its convention")
    q, r = np.linalg.qr(m)
    signs = np.sign(np.diag(r))
    return q * signs[None, :]


def busing_levy_b(b_chasm) -> np.ndarray:
    """Busing–Levy B (a* along x, c along z) of the cell whose reciprocal basis is given.

    Parameters
    ----------
    b_chasm : array_like (3, 3)
        Any reciprocal basis of the cell, columns a*, b*, c* (e.g. ``Crystal.B``).

    Returns
    -------
    ndarray (3, 3)
        Upper triangular with positive diagonal, Bᵀ B = the reciprocal metric.
    """
    b = np.asarray(b_chasm, dtype=float)
    return np.linalg.cholesky(b.T @ b).T


def cryspy_to_chasm_rotation(b_chasm) -> np.ndarray:
    """Rotation Q with v_chasm = Q v_cryspy (cryspy: x ∥ a*, z ∥ c; chasm: x ∥ a, z ∥ c*)."""
    b = np.asarray(b_chasm, dtype=float)
    return b @ np.linalg.inv(busing_levy_b(b))


def field_direction(ub, b_chasm, convention: str = "CCSL", field: float = 1.0) -> np.ndarray:
    """Unit vector ê of the applied field in chasm's Cartesian crystal frame.

    Parameters
    ----------
    ub : array_like (3, 3)
        Orientation matrix as in the data file.
    b_chasm : array_like (3, 3)
        Reciprocal basis of the model (``Crystal.B``).
    convention : str
        ``_diffrn_orient_matrix_type``.
    field : float
        Signed field (T); only its sign is used (negative: ê → −ê).

    Returns
    -------
    ndarray (3,)
    """
    u = orientation_matrix(ub, convention)
    e_cryspy = u[2, :]  # U⁻¹ Ẑ = Uᵀ Ẑ
    e = cryspy_to_chasm_rotation(b_chasm) @ e_cryspy
    e = e / np.linalg.norm(e)
    return -e if field < 0 else e


@dataclass(frozen=True)
class FieldGeometry:
    """Per-reflection geometry of one data set.

    Attributes
    ----------
    e : ndarray (3,)
        Field direction ê (chasm Cartesian frame), the same for all reflections.
    h_unit : ndarray (n, 3)
        Unit scattering vectors ĥ.
    stol : ndarray (n,)
        sinθ/λ = |B h|/2 (Å⁻¹).
    q : ndarray (n,)
        sin²α = 1 − (ĥ·ê)².
    """

    e: np.ndarray
    h_unit: np.ndarray
    stol: np.ndarray
    q: np.ndarray

    @property
    def e_per_reflection(self) -> np.ndarray:
        """ê repeated for every reflection, (n, 3)."""
        return np.broadcast_to(self.e, self.h_unit.shape)


def field_geometry(hkl, b_chasm, e) -> FieldGeometry:
    """ĥ, sinθ/λ and sin²α of each reflection for a field direction ê.

    Parameters
    ----------
    hkl : array_like (n, 3) int
    b_chasm : array_like (3, 3)
        Reciprocal basis (``Crystal.B``).
    e : array_like (3,)
        Field direction (normalised here).

    Raises
    ------
    InputError
        The reflection (0, 0, 0).
    """
    h = np.asarray(hkl, dtype=float).reshape(-1, 3) @ np.asarray(b_chasm, dtype=float).T
    norm = np.linalg.norm(h, axis=1)
    if np.any(norm == 0):
        raise InputError("the reflection (0 0 0) has no scattering direction")
    h_unit = h / norm[:, None]
    e = np.asarray(e, dtype=float)
    e = e / np.linalg.norm(e)
    cos_alpha = h_unit @ e
    return FieldGeometry(e=e, h_unit=h_unit, stol=norm / 2.0, q=1.0 - cos_alpha**2)

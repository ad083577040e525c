"""UB matrices (CCSL convention), field direction and sin²α (chasm.neutron.geometry)."""

from __future__ import annotations

import numpy as np
import pytest

from chasm.crystal.structure import Atom, Crystal
from chasm.errors import InputError
from chasm.neutron.geometry import (
    busing_levy_b,
    cryspy_to_chasm_rotation,
    field_direction,
    field_geometry,
    orientation_matrix,
    ub_to_ccsl,
)

HO_UB = np.array(
    [[6.59783, -6.99807, 3.3663], [2.18396, -2.60871, -9.5302], [7.4657, 6.94702, -0.18685]]
)


def _triclinic() -> Crystal:
    return Crystal.from_parts(
        (5.1, 6.3, 7.2, 81.0, 97.0, 104.0), "P 1", [Atom("X", "C", (0.1, 0.2, 0.3), uiso=0.01)]
    )


def _bl_b_from_formula(ub: np.ndarray) -> np.ndarray:
    """Busing & Levy (1967) eq. 3 from the reciprocal cell of UB's columns, as cryspy does."""
    ra, rb, rc = np.linalg.norm(ub, axis=0)
    cga = ub[:, 0] @ ub[:, 1] / (ra * rb)  # cos γ*
    cbe = ub[:, 0] @ ub[:, 2] / (ra * rc)  # cos β*
    cal = ub[:, 1] @ ub[:, 2] / (rb * rc)  # cos α*
    sga, sbe, sal = (np.sqrt(1 - c * c) for c in (cga, cbe, cal))
    cos_alpha = (cbe * cga - cal) / (sbe * sga)  # direct α
    vol_star = ra * rb * rc * np.sqrt(1 - cal**2 - cbe**2 - cga**2 + 2 * cal * cbe * cga)
    c_direct = ra * rb * sga / vol_star
    return np.array(
        [
            [ra, rb * cga, rc * cbe],
            [0.0, rb * sga, -rc * sbe * cos_alpha],
            [0.0, 0.0, 1.0 / c_direct],
        ]
    )


@pytest.mark.parametrize("scale", [1.0, 0.013])
def test_u_is_cryspys_ub_times_inverse_b(scale):
    ub = HO_UB * scale
    u = orientation_matrix(ub)
    np.testing.assert_allclose(u.T @ u, np.eye(3), atol=1e-13)
    assert np.linalg.det(u) == pytest.approx(1.0)
    np.testing.assert_allclose(u, ub @ np.linalg.inv(_bl_b_from_formula(ub)), atol=1e-12)
    # the third column of UB is 1 % shorter than the others: UB's own cell is used
    lengths = np.linalg.norm(HO_UB, axis=0)
    assert lengths[2] / lengths[0] == pytest.approx(0.991, abs=1e-3)


def test_row_conventions():
    m = np.arange(9.0).reshape(3, 3) + np.eye(3) * 5
    np.testing.assert_array_equal(ub_to_ccsl(m, "6T2@LLB"), m)
    np.testing.assert_array_equal(ub_to_ccsl(m, "BusingLevy"), [m[1], -m[0], m[2]])
    np.testing.assert_array_equal(ub_to_ccsl(m, "5C1@LLB"), [-m[1], m[0], m[2]])
    with pytest.raises(InputError, match="convention"):
        ub_to_ccsl(m, "ZZZ")
    with pytest.raises(InputError, match="left-handed"):
        orientation_matrix(-np.eye(3))


def test_frames_of_a_triclinic_cell():
    cryst = _triclinic()
    q = cryspy_to_chasm_rotation(cryst.B)
    np.testing.assert_allclose(q.T @ q, np.eye(3), atol=1e-13)
    assert np.linalg.det(q) == pytest.approx(1.0)
    a_star, c_axis = cryst.B[:, 0], cryst.A[:, 2]
    np.testing.assert_allclose(q @ [1, 0, 0], a_star / np.linalg.norm(a_star), atol=1e-13)
    np.testing.assert_allclose(q @ [0, 0, 1], c_axis / np.linalg.norm(c_axis), atol=1e-13)
    bl = busing_levy_b(cryst.B)
    np.testing.assert_allclose(bl, _bl_b_from_formula(cryst.B), atol=1e-13)
    np.testing.assert_allclose(np.tril(bl, -1), 0.0, atol=1e-15)


def test_field_direction_follows_the_ub():
    cryst = _triclinic()
    bl = busing_levy_b(cryst.B)
    # U = 1: the vertical lab axis is cryspy's z, i.e. along the direct axis c
    e = field_direction(bl, cryst.B)
    np.testing.assert_allclose(e, cryst.A[:, 2] / np.linalg.norm(cryst.A[:, 2]), atol=1e-12)
    np.testing.assert_allclose(field_direction(bl, cryst.B, field=-1.0), -e, atol=1e-15)
    # a crystal turned so that (1 1 0) is vertical: ê ∥ B (1, 1, 0), sin²α = 0 for it
    target = cryst.B @ [1.0, 1.0, 0.0]
    target_bl = bl @ np.linalg.solve(cryst.B, target)
    z = target_bl / np.linalg.norm(target_bl)
    x = np.cross([0.3, 0.5, 0.7], z)
    x /= np.linalg.norm(x)
    u_lab = np.array([x, np.cross(z, x), z])
    e = field_direction(u_lab @ bl * 7.0, cryst.B)
    hkl = np.array([[1, 1, 0], [2, 2, 0], [1, -1, 0]])
    geom = field_geometry(hkl, cryst.B, e)
    np.testing.assert_allclose(geom.q[:2], 0.0, atol=1e-13)
    assert 0 < geom.q[2] <= 1
    np.testing.assert_allclose(geom.stol, np.linalg.norm(hkl @ cryst.B.T, axis=1) / 2)
    assert geom.e_per_reflection.shape == (3, 3)


def test_zero_reflection_is_rejected():
    with pytest.raises(InputError, match="0 0 0"):
        field_geometry([[0, 0, 0]], np.eye(3), [0, 0, 1])

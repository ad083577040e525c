"""Tests of the XD-style local frames."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from chasm.density.frames import local_frame, midpoint
from chasm.errors import InputError

AXES = ["X", "Y", "Z"]


def random_points(rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    return tuple(rng.normal(scale=2.0, size=3) for _ in range(4))


@pytest.mark.parametrize("ax1,ax2", list(itertools.permutations(AXES, 2)))
@pytest.mark.parametrize("right_handed", [True, False])
def test_frame_properties(ax1, ax2, right_handed):
    i1, i2 = AXES.index(ax1), AXES.index(ax2)
    rng = np.random.default_rng(10 * i1 + i2 + 100 * right_handed)
    for _ in range(20):
        origin, a0, a1, a2 = random_points(rng)
        m = local_frame(origin, a0, a1, a2, ax1=ax1, ax2=ax2, right_handed=right_handed)
        np.testing.assert_allclose(m.T @ m, np.eye(3), atol=1e-14)
        assert np.linalg.det(m) == pytest.approx(1.0 if right_handed else -1.0, abs=1e-13)
        # axis 1 along origin -> atom0
        v1 = (a0 - origin) / np.linalg.norm(a0 - origin)
        np.testing.assert_allclose(m[:, i1], v1, atol=1e-14)
        # axis 2: perpendicular, in the plane of (axis 1, atom1 -> atom2), acute with atom1 -> atom2
        v = a2 - a1
        e2 = m[:, i2]
        assert abs(e2 @ m[:, i1]) < 1e-14
        assert e2 @ v > 0
        assert abs(np.linalg.det(np.array([m[:, i1], v, e2]))) < 1e-12
        # local components: the atom0 direction is +ax1
        local = m.T @ (a0 - origin)
        assert local[i1] == pytest.approx(np.linalg.norm(a0 - origin), abs=1e-13)
        assert abs(local[i2]) < 1e-13 and abs(local[3 - i1 - i2]) < 1e-13


def test_simple_geometry_xd_usage():
    # atom at origin, atom0 on +x, atom1 = origin atom, atom2 in the xy plane with y > 0
    o = np.zeros(3)
    m = local_frame(o, [1.5, 0, 0], o, [0.7, 1.2, 0.0], "X", "Y")
    np.testing.assert_allclose(m, np.eye(3), atol=1e-15)
    m = local_frame(o, [1.5, 0, 0], o, [0.7, 1.2, 0.0], "X", "Y", right_handed=False)
    np.testing.assert_allclose(m, np.diag([1.0, 1.0, -1.0]), atol=1e-15)
    # Z along the bond, X towards atom2 -> Y = Z x X
    m = local_frame(o, [0, 0, 2.0], o, [1.0, 0.0, 0.3], "Z", "X")
    np.testing.assert_allclose(m, np.eye(3), atol=1e-15)
    # lowercase names accepted
    np.testing.assert_allclose(local_frame(o, [0, 0, 2.0], o, [1.0, 0.0, 0.3], "z", "x"), m)


def test_midpoint_as_dummy():
    o = np.zeros(3)
    a, b = np.array([1.0, 1.0, 0.0]), np.array([1.0, -1.0, 0.0])
    dummy = midpoint(a, b)
    np.testing.assert_allclose(dummy, [1.0, 0.0, 0.0])
    m = local_frame(o, dummy, o, a, "X", "Y")
    np.testing.assert_allclose(m, np.eye(3), atol=1e-15)
    np.testing.assert_allclose(midpoint(a), a)
    with pytest.raises(InputError):
        midpoint()


def test_degenerate_inputs_raise():
    o = np.zeros(3)
    with pytest.raises(InputError, match="collinear"):
        local_frame(o, [1.0, 0, 0], o, [2.0, 0, 0])
    with pytest.raises(InputError, match="collinear"):
        local_frame(o, [1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [-2.0, -2.0, -2.0])
    with pytest.raises(InputError, match="atom0 coincides"):
        local_frame(o, o, o, [1.0, 0, 0])
    with pytest.raises(InputError, match="atom1 and atom2 coincide"):
        local_frame(o, [1.0, 0, 0], [0, 1.0, 0], [0, 1.0, 0])
    with pytest.raises(InputError, match="different"):
        local_frame(o, [1.0, 0, 0], o, [0, 1.0, 0], "X", "X")
    with pytest.raises(InputError, match="ax2"):
        local_frame(o, [1.0, 0, 0], o, [0, 1.0, 0], "X", "W")
    with pytest.raises(InputError):
        local_frame(o, [1.0, 0], o, [0, 1.0, 0])

"""Tests of the site-symmetry restrictions on multipole populations.

Reference tables: the index-picking rules of site-symmetric real spherical
harmonics of Kurki-Suonio (1977, Isr. J. Chem. 16, 115), as reproduced in
International Tables for Crystallography Vol. B, ch. 1.2 (P. Coppens),
Table 1.2.3.3 (section 1.2.7 in the 2010 edition), and in Coppens (1997) "X-ray
Charge Densities and Chemical Bonding", Appendix D. Notation: (l, m, p)
with lambda, mu = 0, 1, 2, ...; "2λ" = even l, "4μ" = m multiple of 4,
p = + (cos m phi) / - (sin m phi), m = 0 counts as "+" only. Axes of the
table: z along the main axis (normal to m for point group m); y along the
secondary 2-fold or normal to the secondary mirror; for -42m the 2-folds
along x and y. The lists below were expanded BY HAND from those rules for
l <= 4 (not generated with chasm).

    1      all (l, m, ±)
    -1     (2λ, m, ±)
    2      (l, 2μ, ±)
    m      (l, l-2j, ±)                      [l + m even]
    2/m    (2λ, 2μ, ±)
    222    (2λ, 2μ, +), (2λ+1, 2μ, -)
    mm2    (l, 2μ, +)
    mmm    (2λ, 2μ, +)
    4      (l, 4μ, ±)
    -4     (2λ, 4μ, ±), (2λ+1, 4μ+2, ±)
    4/m    (2λ, 4μ, ±)
    422    (2λ, 4μ, +), (2λ+1, 4μ, -)
    4mm    (l, 4μ, +)
    -42m   (2λ, 4μ, +), (2λ+1, 4μ+2, -)
    4/mmm  (2λ, 4μ, +)
    3      (l, 3μ, ±)
    -3     (2λ, 3μ, ±)
    32     (2λ, 3μ, +), (2λ+1, 3μ, -)
    3m     (l, 3μ, +)
    -3m    (2λ, 3μ, +)
    6      (l, 6μ, ±)
    -6     (2λ, 6μ, ±), (2λ+1, 6μ+3, ±)
    6/m    (2λ, 6μ, ±)
    622    (2λ, 6μ, +), (2λ+1, 6μ, -)
    6mm    (l, 6μ, +)
    -6m2   (2λ, 6μ, +), (2λ+1, 6μ+3, +)
    6/mmm  (2λ, 6μ, +)

Cubic sites are not covered by index picking alone (Kara & Kurki-Suonio
1981, "Kubic harmonics"): with x, y, z along the 2-fold/4-fold axes the l = 4
term is x^4 + y^4 + z^4 - 3/5 = (35z^4 - 30z^2 + 3)/20 + (x^4 - 6x^2y^2 + y^4)/4,
so P44+/P40 = 5 M40/M44 = 0.74045 (the constraint used in XD); l = 3 is xyz
(d32-) for 23 and -43m.
"""

from __future__ import annotations

import numpy as np
import pytest

from chasm.density.harmonics import density_harmonics, lm_labels, rotate_populations
from chasm.density.sitesym import (
    POINT_GROUPS,
    allowed_multipoles,
    multipole_projector,
    point_group_rotations,
)
from chasm.errors import InputError

LABELS = lm_labels(4)

# Allowed P_lm, l <= 4, expanded by hand from the rules in the module docstring.
TABLE = {
    "1": LABELS,
    "-1": "00 20 21+ 21- 22+ 22- 40 41+ 41- 42+ 42- 43+ 43- 44+ 44-",
    "2": "00 10 20 22+ 22- 30 32+ 32- 40 42+ 42- 44+ 44-",
    "m": "00 11+ 11- 20 22+ 22- 31+ 31- 33+ 33- 40 42+ 42- 44+ 44-",
    "2/m": "00 20 22+ 22- 40 42+ 42- 44+ 44-",
    "222": "00 20 22+ 32- 40 42+ 44+",
    "mm2": "00 10 20 22+ 30 32+ 40 42+ 44+",
    "mmm": "00 20 22+ 40 42+ 44+",
    "4": "00 10 20 30 40 44+ 44-",
    "-4": "00 20 32+ 32- 40 44+ 44-",
    "4/m": "00 20 40 44+ 44-",
    "422": "00 20 40 44+",
    "4mm": "00 10 20 30 40 44+",
    "-42m": "00 20 32- 40 44+",
    "4/mmm": "00 20 40 44+",
    "3": "00 10 20 30 33+ 33- 40 43+ 43-",
    "-3": "00 20 40 43+ 43-",
    "32": "00 20 33- 40 43+",
    "3m": "00 10 20 30 33+ 40 43+",
    "-3m": "00 20 40 43+",
    "6": "00 10 20 30 40",
    "-6": "00 20 33+ 33- 40",
    "6/m": "00 20 40",
    "622": "00 20 40",
    "6mm": "00 10 20 30 40",
    "-6m2": "00 20 33+ 40",
    "6/mmm": "00 20 40",
}

# Alternative settings (derived by hand from how cos/sin(m phi) and P_l^m
# transform: mirror normal to x sends phi -> pi - phi; 2-fold along x sends
# phi -> -phi, z -> -z; -4m2 has mirrors normal to x and y).
TABLE_ALT = {
    "3m1": "00 10 20 30 33- 40 43-",  # mirror normal to x
    "-3m1": "00 20 40 43-",
    "321": "00 20 33+ 40 43-",  # 2-fold along x
    "-4m2": "00 20 32+ 40 44+",  # mirrors normal to x and y
    "31m": TABLE["3m"],
    "-31m": TABLE["-3m"],
    "312": TABLE["32"],
    "-62m": TABLE["-6m2"],
}

GROUP_ORDER = {
    "1": 1, "-1": 2, "2": 2, "m": 2, "2/m": 4, "222": 4, "mm2": 4, "mmm": 8,
    "4": 4, "-4": 4, "4/m": 8, "422": 8, "4mm": 8, "-42m": 8, "-4m2": 8, "4/mmm": 16,
    "3": 3, "-3": 6, "32": 6, "312": 6, "321": 6, "3m": 6, "31m": 6, "3m1": 6,
    "-3m": 12, "-31m": 12, "-3m1": 12, "6": 6, "-6": 6, "6/m": 12, "622": 12,
    "6mm": 12, "-6m2": 12, "-62m": 12, "6/mmm": 24,
    "23": 12, "m-3": 24, "432": 24, "-43m": 24, "m-3m": 48,
}  # fmt: skip

CUBIC_L3 = {"23": True, "m-3": False, "432": False, "-43m": True, "m-3m": False}
K4_RATIO = 5 * 0.06941752438437611 / 0.46875  # P44+/P40 = 0.740453...


def labels_of(spec) -> set[str]:
    return set(spec.split()) if isinstance(spec, str) else set(spec)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def random_unit(rng: np.random.Generator, n: int) -> np.ndarray:
    u = rng.normal(size=(n, 3))
    return u / np.linalg.norm(u, axis=1)[:, None]


def density(p: np.ndarray, frame: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Angular density sum P d(M^T u) at Cartesian unit vectors u (rows)."""
    return density_harmonics(u @ frame, 4) @ p


# ---------------------------------------------------------------------------
# Point groups
# ---------------------------------------------------------------------------


def test_point_group_orders_and_closure():
    assert set(GROUP_ORDER) == set(POINT_GROUPS)
    for symbol, order in GROUP_ORDER.items():
        ops = point_group_rotations(symbol)
        assert ops.shape == (order, 3, 3), symbol
        np.testing.assert_allclose(ops[0], np.eye(3))
        np.testing.assert_allclose(
            np.einsum("nji,njk->nik", ops, ops), np.broadcast_to(np.eye(3), ops.shape), atol=1e-14
        )
        flat = ops.reshape(order, 9)
        for a in ops:
            for b in ops:
                assert np.abs(flat - (a @ b).ravel()).max(axis=1).min() < 1e-12, symbol
    np.testing.assert_array_equal(point_group_rotations("m3m"), point_group_rotations("m-3m"))
    with pytest.raises(InputError, match="unknown point group"):
        point_group_rotations("7")


def test_point_group_orientation():
    # mirror of "m" normal to z; mm2 mirrors normal to x and y, 2-fold along z
    ops = point_group_rotations("m")
    np.testing.assert_allclose(ops[1], np.diag([1.0, 1.0, -1.0]))
    mm2 = {tuple(np.diag(r)) for r in point_group_rotations("mm2")}
    assert mm2 == {(1, 1, 1), (-1, 1, 1), (1, -1, 1), (-1, -1, 1)}
    # 3m: a mirror normal to y; 3m1: a mirror normal to x
    has = lambda sym, r: any(np.allclose(r, o) for o in point_group_rotations(sym))  # noqa: E731
    assert has("3m", np.diag([1.0, -1.0, 1.0])) and not has("3m", np.diag([-1.0, 1.0, 1.0]))
    assert has("3m1", np.diag([-1.0, 1.0, 1.0])) and not has("3m1", np.diag([1.0, -1.0, 1.0]))
    assert has("32", np.diag([-1.0, 1.0, -1.0])) and has("321", np.diag([1.0, -1.0, -1.0]))
    assert has("-42m", np.diag([1.0, -1.0, -1.0])) and not has("-42m", np.diag([-1.0, 1.0, 1.0]))
    assert has("-6m2", np.diag([1.0, -1.0, 1.0]))


# ---------------------------------------------------------------------------
# Index-picking tables (aligned axes)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("symbol", list(TABLE) + list(TABLE_ALT))
def test_allowed_multipoles_match_index_picking_table(symbol):
    expected = labels_of({**TABLE, **TABLE_ALT}[symbol])
    ops = point_group_rotations(symbol)
    basis, mask = allowed_multipoles(ops, np.eye(3), 4)
    assert mask is not None
    got = {LABELS[i] for i in np.nonzero(mask)[0]}
    assert got == expected
    np.testing.assert_array_equal(basis, np.eye(25)[:, mask])
    # the same group seen through any rotated frame aligned with it
    rng = np.random.default_rng(len(symbol))
    q = random_rotation(rng)
    ops_rot = np.einsum("ij,njk,lk->nil", q, ops, q)
    _, mask_rot = allowed_multipoles(ops_rot, q, 4)
    np.testing.assert_array_equal(mask_rot, mask)
    # forbidden P_lm are killed by the projector, allowed ones kept
    proj = multipole_projector(ops, np.eye(3), 4)
    np.testing.assert_allclose(proj, np.diag(mask.astype(float)), atol=1e-13)
    # lower lmax: the prefix of the same table
    _, mask2 = allowed_multipoles(ops, np.eye(3), 2)
    np.testing.assert_array_equal(mask2, mask[:9])


@pytest.mark.parametrize("symbol", list(CUBIC_L3))
def test_cubic_sites(symbol):
    ops = point_group_rotations(symbol)
    basis, mask = allowed_multipoles(ops, np.eye(3), 4)
    assert mask is None
    expected_cols = 3 if CUBIC_L3[symbol] else 2
    assert basis.shape == (25, expected_cols)
    np.testing.assert_allclose(basis[:, 0], np.eye(25)[0], atol=1e-14)
    if CUBIC_L3[symbol]:
        np.testing.assert_allclose(basis[:, 1], np.eye(25)[LABELS.index("32-")], atol=1e-14)
    k4 = basis[:, -1]
    i40, i44 = LABELS.index("40"), LABELS.index("44+")
    assert np.count_nonzero(k4) == 2
    assert k4[i44] / k4[i40] == pytest.approx(K4_RATIO, rel=1e-12)
    assert K4_RATIO == pytest.approx(0.74045, abs=1e-5)


# ---------------------------------------------------------------------------
# Arbitrary (unaligned) frames: invariance of the projected density
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("symbol", sorted(GROUP_ORDER))
def test_projected_density_is_invariant_in_random_frame(symbol):
    rng = np.random.default_rng(sum(map(ord, symbol)))
    q = random_rotation(rng)  # orientation of the site group in the crystal
    ops = np.einsum("ij,njk,lk->nil", q, point_group_rotations(symbol), q)
    frame = random_rotation(rng)  # local axes, not aligned with the symmetry elements
    if symbol in ("-1", "m", "2", "mm2"):
        frame = frame * np.array([1.0, -1.0, 1.0])  # a left-handed frame too
    proj = multipole_projector(ops, frame, 4)
    np.testing.assert_allclose(proj @ proj, proj, atol=1e-13)

    u = random_unit(rng, 64)
    p = rng.normal(size=25)
    p_sym = proj @ p
    rho = density(p_sym, frame, u)
    for r in ops:
        np.testing.assert_allclose(density(p_sym, frame, u @ r.T), rho, atol=1e-12)  # rho(R u)
    # the projected density is the group average of the original one
    average = np.mean([density(p, frame, u @ r.T) for r in ops], axis=0)
    np.testing.assert_allclose(rho, average, atol=1e-12)
    # same number of free parameters as in the aligned frame
    basis, mask = allowed_multipoles(ops, frame, 4)
    _, mask_aligned = allowed_multipoles(point_group_rotations(symbol), np.eye(3), 4)
    n_aligned = np.count_nonzero(mask_aligned) if mask_aligned is not None else None
    if n_aligned is not None:
        assert basis.shape[1] == n_aligned
    if symbol not in ("1",):
        assert mask is None or basis.shape[1] < 25
    np.testing.assert_allclose(basis.T @ basis, np.eye(basis.shape[1]), atol=1e-12)
    np.testing.assert_allclose(proj @ basis, basis, atol=1e-12)
    # each basis column lives in one l block
    for col in basis.T:
        ls = {int(np.sqrt(i)) for i in np.nonzero(np.abs(col) > 1e-12)[0]}
        assert len(ls) == 1
    # forbidden directions: anything the projector removes has zero group-averaged density
    p_bad = p - p_sym
    np.testing.assert_allclose(proj @ p_bad, 0.0, atol=1e-12)
    avg_bad = np.mean([density(p_bad, frame, u @ r.T) for r in ops], axis=0)
    np.testing.assert_allclose(avg_bad, 0.0, atol=1e-12)


def test_projector_commutes_with_frame_change():
    """Same physical density whatever local frame is used."""
    rng = np.random.default_rng(99)
    ops = point_group_rotations("4mm")
    m1, m2 = random_rotation(rng), random_rotation(rng)
    p1 = multipole_projector(ops, m1, 4) @ rng.normal(size=25)
    # populations of the same density in frame m2: rho(u) = sum P1 d(m1^T u) = sum P2 d(m2^T u)
    p2 = rotate_populations(p1, m2.T @ m1, 4)
    u = random_unit(rng, 50)
    np.testing.assert_allclose(density(p2, m2, u), density(p1, m1, u), atol=1e-12)
    np.testing.assert_allclose(multipole_projector(ops, m2, 4) @ p2, p2, atol=1e-12)


def test_bad_site_groups():
    c4 = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    with pytest.raises(InputError, match="not a group"):
        multipole_projector(np.array([np.eye(3), c4]), np.eye(3), 4)
    with pytest.raises(InputError, match="orthogonal"):
        multipole_projector(np.array([np.eye(3), np.diag([1.0, 1.0, 2.0])]), np.eye(3), 4)
    with pytest.raises(InputError, match="frame"):
        multipole_projector(np.array([np.eye(3)]), np.ones((3, 3)), 4)
    with pytest.raises(InputError, match="shape"):
        multipole_projector(np.zeros((2, 3)), np.eye(3), 4)

"""Tests of the d-orbital <-> multipole population conversion."""

from __future__ import annotations

from math import pi, sqrt

import numpy as np
import pytest

from chasm.density.dorbitals import (
    D_ORBITALS,
    EVEN_INDICES,
    ODD_INDICES,
    ORBITAL_PAIRS,
    inverse_product_matrix,
    multipole_labels,
    multipoles_from_orbitals,
    natural_orbitals,
    orbital_pair_labels,
    orbital_population_matrix,
    orbital_product_matrix,
    orbital_rotation,
    orbitals_from_multipoles,
    orbitals_from_population_matrix,
    rotate_orbital_populations,
)
from chasm.density.harmonics import (
    density_harmonics,
    density_to_wavefunction,
    lm_labels,
    rotation_matrix_full,
    wavefunction_harmonics,
)
from engine_helpers import random_rotation

LABELS = lm_labels(4)
PAIR_LABELS = orbital_pair_labels()


def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def d_orbitals_by_hand(u: np.ndarray) -> np.ndarray:
    """The five normalised real d orbitals typed from their textbook formulas."""
    x, y, z = u[:, 0], u[:, 1], u[:, 2]
    return np.stack(
        [
            sqrt(5.0 / (16.0 * pi)) * (3.0 * z**2 - 1.0),
            sqrt(15.0 / (4.0 * pi)) * x * z,
            sqrt(15.0 / (4.0 * pi)) * y * z,
            sqrt(15.0 / (16.0 * pi)) * (x**2 - y**2),
            sqrt(15.0 / (4.0 * pi)) * x * y,
        ],
        axis=1,
    )


def orbital_density(p_orb: np.ndarray, u: np.ndarray) -> np.ndarray:
    """sum_{i<=j} P_ij d_i d_j, cross terms counted once."""
    d = d_orbitals_by_hand(u)
    return sum(p_orb[k] * d[:, i] * d[:, j] for k, (i, j) in enumerate(ORBITAL_PAIRS))


def random_multipoles(rng: np.random.Generator, n: int) -> np.ndarray:
    p = np.zeros((n, 25))
    p[:, list(EVEN_INDICES)] = rng.normal(size=(n, 15))
    return p


def orbital(name: str) -> np.ndarray:
    """Orbital populations of one electron in the named orbital."""
    p = np.zeros(15)
    p[PAIR_LABELS.index(name)] = 1.0
    return p


# ---------------------------------------------------------------------------


def test_labels_and_orders():
    assert D_ORBITALS == ("z2", "xz", "yz", "x2-y2", "xy")
    assert PAIR_LABELS[:5] == list(D_ORBITALS)
    assert PAIR_LABELS[5:] == [
        "z2/xz", "z2/yz", "z2/x2-y2", "z2/xy", "xz/yz",
        "xz/x2-y2", "xz/xy", "yz/x2-y2", "yz/xy", "x2-y2/xy",
    ]  # fmt: skip
    assert multipole_labels() == [LABELS[k] for k in EVEN_INDICES]
    assert sorted(EVEN_INDICES + ODD_INDICES) == list(range(25))
    assert all(LABELS[k][0] in "024" for k in EVEN_INDICES)
    # The orbitals are chasm's orthonormal l = 2 harmonics, same signs.
    u = unit_vectors(np.random.default_rng(0), 50)
    np.testing.assert_allclose(
        wavefunction_harmonics(u, 2)[:, 4:9], d_orbitals_by_hand(u), rtol=0, atol=1e-14
    )


def test_round_trip_both_ways():
    rng = np.random.default_rng(1)
    p_orb = rng.normal(size=(20, 15))
    plm = multipoles_from_orbitals(p_orb)
    assert plm.shape == (20, 25)
    np.testing.assert_allclose(orbitals_from_multipoles(plm), p_orb, rtol=0, atol=1e-12)

    plm = random_multipoles(rng, 20)
    back = multipoles_from_orbitals(orbitals_from_multipoles(plm))
    np.testing.assert_allclose(back, plm, rtol=0, atol=1e-12)

    m = orbital_product_matrix()
    np.testing.assert_allclose(m @ inverse_product_matrix(), np.eye(15), rtol=0, atol=1e-12)


def test_odd_multipoles_are_zero_and_rejected():
    rng = np.random.default_rng(2)
    plm = multipoles_from_orbitals(rng.normal(size=15))
    assert np.all(plm[list(ODD_INDICES)] == 0.0)
    plm[LABELS.index("32-")] = 1e-6
    with pytest.raises(ValueError, match="odd-l"):
        orbitals_from_multipoles(plm)
    orbitals_from_multipoles(plm, odd_tol=1e-5)  # accepted with a looser tolerance
    with pytest.raises(ValueError):
        orbitals_from_multipoles(np.zeros(16))
    with pytest.raises(ValueError):
        multipoles_from_orbitals(np.zeros(10))


def test_pointwise_density_identity():
    rng = np.random.default_rng(3)
    u = unit_vectors(rng, 200)
    for _ in range(5):
        p_orb = rng.normal(size=15)
        plm = multipoles_from_orbitals(p_orb)
        np.testing.assert_allclose(
            density_harmonics(u, 4) @ plm, orbital_density(p_orb, u), rtol=0, atol=1e-12
        )


def sphere_integral(f, n_theta: int = 12, n_phi: int = 24) -> float:
    """Integral over the unit sphere (Gauss-Legendre x uniform azimuth)."""
    ct, wt = np.polynomial.legendre.leggauss(n_theta)
    phi = 2 * pi * (np.arange(n_phi) + 0.25) / n_phi
    st = np.sqrt(1 - ct**2)
    u = np.stack(
        [np.outer(st, np.cos(phi)), np.outer(st, np.sin(phi)), np.outer(ct, np.ones(n_phi))], -1
    ).reshape(-1, 3)
    w = np.repeat(wt, n_phi) * (2 * pi / n_phi)
    return float(w @ f(u))


@pytest.mark.parametrize("name", D_ORBITALS)
def test_one_electron_integrates_to_one(name):
    plm = multipoles_from_orbitals(orbital(name))
    assert plm[0] == pytest.approx(1.0, abs=1e-14)  # P00 = trace, no extra factor
    total = sphere_integral(lambda u: density_harmonics(u, 4) @ plm)
    assert total == pytest.approx(1.0, abs=1e-13)
    assert sphere_integral(lambda u: d_orbitals_by_hand(u)[:, D_ORBITALS.index(name)] ** 2) == (
        pytest.approx(1.0, abs=1e-13)
    )


def test_trace_and_spherical_shell():
    rng = np.random.default_rng(4)
    p_orb = rng.normal(size=15)
    assert multipoles_from_orbitals(p_orb)[0] == pytest.approx(p_orb[:5].sum(), abs=1e-13)
    # Cross terms carry no charge.
    np.testing.assert_allclose(
        orbital_product_matrix()[0], np.r_[np.ones(5), np.zeros(10)], rtol=0, atol=1e-14
    )
    # Unsoeld: a filled (or evenly populated) d shell is spherical.
    shell = multipoles_from_orbitals(np.r_[np.ones(5), np.zeros(10)])
    np.testing.assert_allclose(shell, np.eye(25)[0] * 5.0, rtol=0, atol=1e-13)


def test_single_orbitals_closed_forms():
    # Hand expansion: (3z^2-1)^2 = (9/35) g40 + (4/7) g20 + 4/5 and
    # (x^2-y^2)^2 = g44+/2 + g40/70 - (4/21) g20 + 4/15, with the g_lm the
    # polynomials of CONVENTIONS.md; divided by the M_lm of the table.
    m20, m40, m44 = 3 * sqrt(3) / (8 * pi), 0.06941752438437611, 0.46875
    z2 = multipoles_from_orbitals(orbital("z2"))
    expect = {
        "00": 1.0,
        "20": 5 / (16 * pi) * 4 / 7 / m20,
        "40": 5 / (16 * pi) * 9 / 35 / m40,
    }
    assert expect["20"] == pytest.approx(10 / (21 * sqrt(3)), rel=1e-14)
    for k, lab in enumerate(LABELS):
        assert z2[k] == pytest.approx(expect.get(lab, 0.0), abs=1e-13), lab

    x2y2 = multipoles_from_orbitals(orbital("x2-y2"))
    expect = {
        "00": 1.0,
        "20": -15 / (16 * pi) * 4 / 21 / m20,
        "40": 15 / (16 * pi) / 70 / m40,
        "44+": 15 / (16 * pi) / 2 / m44,
    }
    assert expect["44+"] == pytest.approx(1 / pi, rel=1e-14)
    # Only 00, 20, 40 and 44+: P22+ and P42+ vanish, since (x^2-y^2)^2 is
    # invariant under the fourfold rotation about z that flips x^2 - y^2.
    for k, lab in enumerate(LABELS):
        assert x2y2[k] == pytest.approx(expect.get(lab, 0.0), abs=1e-13), lab
    # xy is x2-y2 turned by 45 degrees about z: only P44+ changes sign.
    xy = multipoles_from_orbitals(orbital("xy"))
    flip = np.ones(25)
    flip[LABELS.index("44+")] = -1.0
    np.testing.assert_allclose(xy, flip * x2y2, rtol=0, atol=1e-13)


# International Tables for Crystallography Vol. C (2006), Table 8.7.3.5(a)
# (Coppens, Su & Becker, after Holladay, Leung & Coppens 1983): orbital
# populations in terms of P00, P20, P40, P43+, P43- for trigonal symmetry,
# printed to three decimals. All entries agree to the printed rounding except
# the P40 coefficient of xz and yz: exact -0.93048, printed -0.931 (0.0005 off).
IT_TABLE_8735A = {
    "z2": (0.200, 1.039, 1.396, 0.0, 0.0),
    "xz": (0.200, 0.520, -0.931, 0.0, 0.0),
    "yz": (0.200, 0.520, -0.931, 0.0, 0.0),
    "x2-y2": (0.200, -1.039, 0.233, 0.0, 0.0),
    "xy": (0.200, -1.039, 0.233, 0.0, 0.0),
    "xz/x2-y2": (0.0, 0.0, 0.0, 2.094, 0.0),
    "xz/xy": (0.0, 0.0, 0.0, 0.0, 2.094),
    "yz/x2-y2": (0.0, 0.0, 0.0, 0.0, 2.094),
    "yz/xy": (0.0, 0.0, 0.0, -2.094, 0.0),
}
TRIGONAL = ("00", "20", "40", "43+", "43-")


def test_inverse_matches_international_tables():
    inv = inverse_product_matrix()
    cols = [multipole_labels().index(lab) for lab in TRIGONAL]
    for name, row in IT_TABLE_8735A.items():
        got = inv[PAIR_LABELS.index(name), cols]
        np.testing.assert_allclose(got, row, rtol=0, atol=6e-4, err_msg=name)
    # The cross-term convention matters: a density-matrix convention
    # (P_ij = Q_ij) would give 1.047 instead of 2.094.
    assert inv[PAIR_LABELS.index("xz/x2-y2"), cols[3]] == pytest.approx(2 * pi / 3, rel=1e-12)


def test_trigonal_symmetry_adapted_orbitals():
    """Table 8.7.3.5(b): rho = P1 a1g^2 + P2/2 (eg+^2 + eg-^2) + P3/2 (eg'+^2 + eg'-^2)
    + P4/2 (eg+ eg'+ + eg- eg'-), orbitals as defined under the table."""
    s2, s1 = sqrt(2 / 3), sqrt(1 / 3)
    a1g = np.array([1.0, 0, 0, 0, 0])
    eg = (np.array([0, -s1, 0, s2, 0]), np.array([0, 0, s1, 0, s2]))
    egp = (np.array([0, s2, 0, s1, 0]), np.array([0, 0, -s2, 0, s1]))
    q_terms = [
        np.outer(a1g, a1g),
        0.5 * sum(np.outer(e, e) for e in eg),
        0.5 * sum(np.outer(e, e) for e in egp),
        0.25 * sum(np.outer(e, f) + np.outer(f, e) for e, f in zip(eg, egp, strict=True)),
    ]
    cols = [LABELS.index(lab) for lab in TRIGONAL]
    a = np.stack(
        [multipoles_from_orbitals(orbitals_from_population_matrix(q))[cols] for q in q_terms],
        axis=1,
    )
    assert np.all(np.abs(a[4]) < 1e-13)  # no P43-
    got = np.linalg.inv(a[:4])  # (P1..P4) from (P00, P20, P40, P43+)
    printed = np.array(
        [
            [0.200, 1.039, 1.396, 0.0],
            [0.400, -1.039, -0.310, -1.975],
            [0.400, 0.0, -1.087, 1.975],
            [0.0, -2.942, 2.193, 1.397],
        ]
    )
    # Rows 1-2 agree to the printed decimals; row 3 (P40) and row 4 differ by
    # up to 0.0026 (exact -1.0856, -2.9394 = -1.2 sqrt 6, 1.3963), rounding
    # in the published table.
    np.testing.assert_allclose(got[:2], printed[:2], rtol=0, atol=5e-4)
    np.testing.assert_allclose(got, printed, rtol=0, atol=3e-3)


def test_population_matrix_and_natural_orbitals():
    rng = np.random.default_rng(5)
    p_orb = rng.normal(size=15)
    q = orbital_population_matrix(p_orb)
    np.testing.assert_array_equal(q, q.T)
    np.testing.assert_allclose(orbitals_from_population_matrix(q), p_orb, rtol=0, atol=1e-15)
    u = unit_vectors(rng, 30)
    d = d_orbitals_by_hand(u)
    np.testing.assert_allclose(
        np.einsum("ni,ij,nj->n", d, q, d), orbital_density(p_orb, u), rtol=0, atol=1e-12
    )
    occ, c = natural_orbitals(p_orb)
    assert np.all(np.diff(occ) <= 0)
    assert occ.sum() == pytest.approx(np.trace(q), abs=1e-12)
    np.testing.assert_allclose(c @ np.diag(occ) @ c.T, q, rtol=0, atol=1e-12)
    np.testing.assert_allclose(c.T @ c, np.eye(5), rtol=0, atol=1e-12)

    # One electron in a rotated orbital: one natural orbital with occupation 1.
    coef = rng.normal(size=5)
    coef /= np.linalg.norm(coef)
    occ, c = natural_orbitals(orbitals_from_population_matrix(np.outer(coef, coef)))
    np.testing.assert_allclose(occ, [1, 0, 0, 0, 0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(c[:, 0], coef * np.sign(coef[np.argmax(np.abs(coef))]), atol=1e-12)


def d_rotation_by_fit(rng: np.random.Generator, R: np.ndarray) -> np.ndarray:
    """D with y2(R^T u) = y2(u) @ D, by least squares on random directions."""
    u = unit_vectors(rng, 40)
    y2 = wavefunction_harmonics(u, 2)[:, 4:9]
    y2r = wavefunction_harmonics(u @ R, 2)[:, 4:9]  # rows are (R^T u)^T
    d, *_ = np.linalg.lstsq(y2, y2r, rcond=None)
    return d


@pytest.mark.parametrize("proper", [True, False])
def test_rotation_covariance(proper):
    rng = np.random.default_rng(6 if proper else 7)
    c = density_to_wavefunction(4)
    for _ in range(5):
        R = random_rotation(rng) * (1.0 if proper else -1.0)
        p_orb = rng.normal(size=15)
        d5 = d_rotation_by_fit(rng, R)
        np.testing.assert_allclose(d5 @ d5.T, np.eye(5), rtol=0, atol=1e-12)
        q_rot = d5 @ orbital_population_matrix(p_orb) @ d5.T
        from_orbitals = multipoles_from_orbitals(orbitals_from_population_matrix(q_rot))
        plm = multipoles_from_orbitals(p_orb)
        from_multipoles = (rotation_matrix_full(R, 4) @ (c * plm)) / c
        np.testing.assert_allclose(from_orbitals, from_multipoles, rtol=0, atol=1e-12)
        # The module's own helpers agree with the fitted matrix.
        np.testing.assert_allclose(orbital_rotation(R), d5, rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            rotate_orbital_populations(p_orb, R),
            orbitals_from_population_matrix(q_rot),
            rtol=0,
            atol=1e-12,
        )
        # And the rotated density is the density at R^T u.
        u = unit_vectors(rng, 20)
        np.testing.assert_allclose(
            orbital_density(rotate_orbital_populations(p_orb, R), u),
            orbital_density(p_orb, u @ R),
            rtol=0,
            atol=1e-12,
        )

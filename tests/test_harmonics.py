"""Tests of the real spherical harmonics and their rotation matrices."""

from __future__ import annotations

from math import pi

import numpy as np
import pytest
from numpy.polynomial.legendre import leggauss
from scipy.optimize import brentq

from chasm.density.harmonics import (
    density_harmonics,
    density_to_wavefunction,
    lm_index,
    lm_labels,
    n_harmonics,
    rotate_populations,
    rotation_matrices,
    rotation_matrix_full,
    wavefunction_harmonics,
)

# poly_lm and M_lm typed from the d_lm table of CONVENTIONS.md, flat index order.
CONVENTIONS_TABLE = [
    ("00", lambda x, y, z: np.ones_like(x), 0.0795774715459482),
    ("10", lambda x, y, z: z, 0.3183098861837907),
    ("11+", lambda x, y, z: x, 0.3183098861837907),
    ("11-", lambda x, y, z: y, 0.3183098861837907),
    ("20", lambda x, y, z: 3 * z**2 - 1, 0.2067483357831728),
    ("21+", lambda x, y, z: x * z, 0.75),
    ("21-", lambda x, y, z: y * z, 0.75),
    ("22+", lambda x, y, z: x**2 - y**2, 0.375),
    ("22-", lambda x, y, z: x * y, 0.75),
    ("30", lambda x, y, z: z * (5 * z**2 - 3), 0.2448537586029175),
    ("31+", lambda x, y, z: x * (5 * z**2 - 1), 0.3203330895838574),
    ("31-", lambda x, y, z: y * (5 * z**2 - 1), 0.3203330895838574),
    ("32+", lambda x, y, z: (x**2 - y**2) * z, 1.0),
    ("32-", lambda x, y, z: x * y * z, 2.0),
    ("33+", lambda x, y, z: (x**2 - 3 * y**2) * x, 0.4244131815783849),
    ("33-", lambda x, y, z: (3 * x**2 - y**2) * y, 0.4244131815783849),
    ("40", lambda x, y, z: 35 * z**4 - 30 * z**2 + 3, 0.06941752438437611),
    ("41+", lambda x, y, z: x * z * (7 * z**2 - 3), 0.4740025188689597),
    ("41-", lambda x, y, z: y * z * (7 * z**2 - 3), 0.4740025188689597),
    ("42+", lambda x, y, z: (x**2 - y**2) * (7 * z**2 - 1), 0.3305913422894053),
    ("42-", lambda x, y, z: x * y * (7 * z**2 - 1), 0.6611826845788106),
    ("43+", lambda x, y, z: (x**2 - 3 * y**2) * x * z, 1.25),
    ("43-", lambda x, y, z: (3 * x**2 - y**2) * y * z, 1.25),
    ("44+", lambda x, y, z: x**4 - 6 * x**2 * y**2 + y**4, 0.46875),
    ("44-", lambda x, y, z: x * y * (x**2 - y**2), 1.875),
]


def random_unit(rng: np.random.Generator, n: int) -> np.ndarray:
    u = rng.normal(size=(n, 3))
    return u / np.linalg.norm(u, axis=1)[:, None]


def random_orthogonal(rng: np.random.Generator, proper: bool = True) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if (np.linalg.det(q) > 0) != proper:
        q = -q
    return q


def unit(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    st = np.sin(theta)
    return np.stack([st * np.cos(phi), st * np.sin(phi), np.cos(theta)], axis=-1)


def product_rule(nz: int, nphi: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre in cos(theta) x uniform phi (weights sum to 4 pi)."""
    z, wz = leggauss(nz)
    phi = 2 * pi * np.arange(nphi) / nphi
    zz, pp = np.meshgrid(z, phi, indexing="ij")
    st = np.sqrt(1 - zz**2)
    u = np.stack([st * np.cos(pp), st * np.sin(pp), zz], axis=-1).reshape(-1, 3)
    w = np.repeat(wz * 2 * pi / nphi, nphi)
    return u, w


def split_points(f, a: float, b: float, nscan: int = 4001) -> list[float]:
    """[a, ..., b] with the simple zeros of f inside (a, b) in between."""
    t = np.linspace(a, b, nscan)
    v = f(t)
    pts = [a]
    for i in range(nscan - 1):
        # skip the end points themselves (poles / exact zeros there are harmless)
        if i > 0 and v[i] == 0.0:
            pts.append(t[i])
        elif v[i] * v[i + 1] < 0:
            pts.append(brentq(f, t[i], t[i + 1], xtol=1e-15))
    pts.append(b)
    return pts


def piecewise_gauss(pts: list[float], n: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = leggauss(n)
    xs, ws = [], []
    for a, b in zip(pts[:-1], pts[1:], strict=True):
        xs.append(0.5 * (b - a) * x + 0.5 * (b + a))
        ws.append(0.5 * (b - a) * w)
    return np.concatenate(xs), np.concatenate(ws)


# ---------------------------------------------------------------------------
# Index convention
# ---------------------------------------------------------------------------


def test_labels_and_index():
    labels = lm_labels(4)
    assert labels == [row[0] for row in CONVENTIONS_TABLE]
    assert lm_labels(1) == ["00", "10", "11+", "11-"]
    idx = lm_index(4)
    assert idx[:9] == [(0, 0), (1, 0), (1, 1), (1, -1), (2, 0), (2, 1), (2, -1), (2, 2), (2, -2)]
    assert idx[-2:] == [(4, 4), (4, -4)]
    for l, m in idx:
        j = 0 if m == 0 else (2 * m - 1 if m > 0 else -2 * m)
        assert idx.index((l, m)) == l * l + j
    assert [n_harmonics(l) for l in range(5)] == [1, 4, 9, 16, 25]


def test_bad_lmax():
    with pytest.raises(ValueError):
        density_harmonics(np.array([0.0, 0.0, 1.0]), 5)
    with pytest.raises(ValueError):
        density_harmonics(np.array([0.0, 0.0, 1.0]), -1)


# ---------------------------------------------------------------------------
# Values and normalisation
# ---------------------------------------------------------------------------


def test_density_harmonics_match_conventions_table():
    rng = np.random.default_rng(11)
    u = random_unit(rng, 500)
    d = density_harmonics(u, 4)
    x, y, z = u.T
    expected = np.stack([m * poly(x, y, z) for _, poly, m in CONVENTIONS_TABLE], axis=1)
    np.testing.assert_allclose(d, expected, rtol=0, atol=1e-14)


@pytest.mark.parametrize("lmax", [0, 1, 2, 3, 4])
def test_shapes_and_lower_lmax_are_prefixes(lmax):
    rng = np.random.default_rng(3)
    u = random_unit(rng, 24).reshape(2, 3, 4, 3)
    d = density_harmonics(u, lmax)
    assert d.shape == (2, 3, 4, n_harmonics(lmax))
    full = density_harmonics(u, 4)
    np.testing.assert_array_equal(d, full[..., : n_harmonics(lmax)])
    single = density_harmonics(u[0, 0, 0], lmax)
    assert single.shape == (n_harmonics(lmax),)
    np.testing.assert_array_equal(single, full[0, 0, 0, : n_harmonics(lmax)])


def test_density_normalisation_by_split_quadrature():
    """int d_00 = 1 and int |d_lm| = 2 (l >= 1), measured to <= 1e-12.

    Every real harmonic is A(theta) * trig(m phi); the product Gauss grid is
    split at the nodal cones (zeros of A in theta) and nodal planes (zeros
    of cos/sin m phi), so |d_lm| is analytic on every cell and 24-point
    Gauss-Legendre per piece converges to rounding (measured ~1e-15).
    """
    labels = lm_labels(4)
    for k, (l, m) in enumerate(lm_index(4)):

        def along_theta(t, k=k, m=m):
            # meridian where the azimuthal factor is nonzero
            phi0 = 0.0 if m >= 0 else pi / (2 * abs(m))
            return density_harmonics(unit(t, np.full_like(t, phi0)), 4)[..., k]

        tpts = split_points(along_theta, 0.0, pi)
        ma = abs(m)
        if ma == 0:
            ppts = [0.0, 2 * pi]
        elif m > 0:  # zeros of cos(m phi)
            ppts = [0.0] + [(2 * j + 1) * pi / (2 * ma) for j in range(2 * ma)] + [2 * pi]
        else:  # zeros of sin(m phi)
            ppts = [j * pi / ma for j in range(2 * ma + 1)]
        th, wt = piecewise_gauss(tpts, 24)
        ph, wp = piecewise_gauss(ppts, 24)
        tt, pp = np.meshgrid(th, ph, indexing="ij")
        w = np.outer(wt * np.sin(th), wp)
        d = density_harmonics(unit(tt, pp), 4)[..., k]
        if l == 0:
            assert abs(np.sum(w * d) - 1.0) < 1e-12, labels[k]
        else:
            assert abs(np.sum(w * np.abs(d)) - 2.0) < 1e-12, labels[k]
            assert abs(np.sum(w * d)) < 1e-12, labels[k]


def test_density_normalisation_plain_product_grid():
    """Plain Gauss-Legendre(cos theta) x uniform-phi grid, 600 x 2400 points.

    The kinks of |d_lm| on the nodal planes make the trapezoidal phi sum
    converge only as h**2: measured max |int |d_lm| - 2| = 1.83e-5 here
    (2.6e-6 with 4000 azimuths); tolerance 3e-5. The split-grid test above
    checks the same integrals to 1e-12.
    """
    z, wz = leggauss(600)
    nphi = 2400
    phi = 2 * pi * np.arange(nphi) / nphi
    total = np.zeros(25)
    for i0 in range(0, z.size, 100):
        zz = z[i0 : i0 + 100]
        st = np.sqrt(1 - zz**2)
        u = np.stack(
            [np.outer(st, np.cos(phi)), np.outer(st, np.sin(phi)), np.repeat(zz[:, None], nphi, 1)],
            axis=-1,
        ).reshape(-1, 3)
        w = np.repeat(wz[i0 : i0 + 100] * 2 * pi / nphi, nphi)
        d = density_harmonics(u, 4)
        total[0] += w @ d[:, 0]
        total[1:] += w @ np.abs(d[:, 1:])
    assert abs(total[0] - 1.0) < 1e-12
    np.testing.assert_allclose(total[1:], 2.0, rtol=0, atol=3e-5)


def test_orthonormality_of_wavefunction_harmonics():
    # exact for degree <= 8: 5 GL nodes in z (degree 9), 9+ azimuths
    for nz, nphi in [(5, 9), (12, 30)]:
        u, w = product_rule(nz, nphi)
        y = wavefunction_harmonics(u, 4)
        gram = y.T @ (y * w[:, None])
        np.testing.assert_allclose(gram, np.eye(25), rtol=0, atol=1e-12)


def test_density_equals_c_times_wavefunction():
    rng = np.random.default_rng(5)
    u = random_unit(rng, 300)
    c = density_to_wavefunction(4)
    assert np.all(c > 0)
    np.testing.assert_allclose(
        density_harmonics(u, 4), wavefunction_harmonics(u, 4) * c, atol=1e-15
    )
    # c_00 = M_00 / N_00 = (1/4pi) / (1/sqrt(4pi)) = 1/sqrt(4pi)
    assert c[0] == pytest.approx(1 / np.sqrt(4 * pi), rel=1e-15)
    assert density_to_wavefunction(2).shape == (9,)


# ---------------------------------------------------------------------------
# Rotation matrices
# ---------------------------------------------------------------------------


def test_rotation_identity_and_inversion():
    for l, d in enumerate(rotation_matrices(np.eye(3), 4)):
        np.testing.assert_allclose(d, np.eye(2 * l + 1), atol=1e-14)
    for l, d in enumerate(rotation_matrices(-np.eye(3), 4)):
        np.testing.assert_allclose(d, (-1) ** l * np.eye(2 * l + 1), atol=1e-14)


def test_rotation_about_z_sign_convention():
    """Independent check: rotating by alpha about z shifts phi by alpha.

    f(u) = cos(m phi) ...  ->  f(R^T u) = cos(m (phi - alpha)) ...
         = cos(m alpha) cos(m phi) + sin(m alpha) sin(m phi).
    """
    alpha = 0.3
    ca, sa = np.cos(alpha), np.sin(alpha)
    rz = np.array([[ca, -sa, 0.0], [sa, ca, 0.0], [0.0, 0.0, 1.0]])
    ds = rotation_matrices(rz, 4)
    for l, d in enumerate(ds):
        assert d[0, 0] == pytest.approx(1.0, abs=1e-14)
        for mm in range(1, l + 1):
            p, q = 2 * mm - 1, 2 * mm
            np.testing.assert_allclose(
                d[[p, q]][:, [p, q]],
                [
                    [np.cos(mm * alpha), -np.sin(mm * alpha)],
                    [np.sin(mm * alpha), np.cos(mm * alpha)],
                ],
                atol=1e-14,
            )


@pytest.mark.parametrize("proper", [True, False])
def test_rotation_matrices_group_properties(proper):
    rng = np.random.default_rng(7 if proper else 8)
    for _ in range(10):
        r1 = random_orthogonal(rng, proper)
        r2 = random_orthogonal(rng, bool(rng.integers(2)))
        d1, d2, d12 = (rotation_matrices(r, 4) for r in (r1, r2, r1 @ r2))
        for l in range(5):
            eye = np.eye(2 * l + 1)
            np.testing.assert_allclose(d1[l] @ d1[l].T, eye, atol=1e-13)
            np.testing.assert_allclose(d1[l] @ d2[l], d12[l], atol=1e-13)
        dt = rotation_matrices(r1.T, 4)
        for l in range(5):
            np.testing.assert_allclose(dt[l], d1[l].T, atol=1e-13)


@pytest.mark.parametrize("proper", [True, False])
def test_rotated_function_pointwise(proper):
    rng = np.random.default_rng(21 if proper else 22)
    u = random_unit(rng, 200)
    for _ in range(5):
        r = random_orthogonal(rng, proper)
        dfull = rotation_matrix_full(r, 4)
        y = wavefunction_harmonics(u, 4)
        y_rot = wavefunction_harmonics(u @ r, 4)  # rows: y(R^T u)
        np.testing.assert_allclose(y_rot, y @ dfull, atol=1e-13)
        c = rng.normal(size=25)
        np.testing.assert_allclose(y_rot @ c, y @ (dfull @ c), atol=1e-13)
        # block-diagonal structure, blocks equal to rotation_matrices
        blocks = rotation_matrices(r, 4)
        for l in range(5):
            lo, hi = l * l, (l + 1) ** 2
            np.testing.assert_array_equal(dfull[lo:hi, lo:hi], blocks[l])
            assert not np.any(dfull[lo:hi, :lo]) and not np.any(dfull[lo:hi, hi:])


def test_rotation_matrices_stacked_and_lmax():
    rng = np.random.default_rng(4)
    rs = np.array([random_orthogonal(rng, bool(i % 2)) for i in range(6)])
    stacked = rotation_matrix_full(rs, 3)
    assert stacked.shape == (6, 16, 16)
    for r, d in zip(rs, stacked, strict=True):
        np.testing.assert_allclose(d, rotation_matrix_full(r, 3), atol=1e-15)
        np.testing.assert_allclose(d, rotation_matrix_full(r, 4)[:16, :16], atol=1e-15)
    assert [d.shape for d in rotation_matrices(rs, 2)] == [(6, 1, 1), (6, 3, 3), (6, 5, 5)]


def test_rotation_rejects_non_orthogonal():
    with pytest.raises(ValueError):
        rotation_matrices(np.diag([1.0, 2.0, 1.0]), 2)


@pytest.mark.parametrize("proper", [True, False])
def test_rotate_populations_pointwise(proper):
    rng = np.random.default_rng(31 if proper else 32)
    u = random_unit(rng, 300)
    for lmax in (1, 2, 4):
        n = n_harmonics(lmax)
        p = rng.normal(size=n)
        r = random_orthogonal(rng, proper)
        p_rot = rotate_populations(p, r, lmax)
        lhs = density_harmonics(u, lmax) @ p_rot
        rhs = density_harmonics(u @ r, lmax) @ p  # d(R^T u)
        np.testing.assert_allclose(lhs, rhs, atol=1e-13)
        # monopole unchanged, batch of populations
        assert p_rot[0] == pytest.approx(p[0], abs=1e-14)
        batch = rng.normal(size=(3, n))
        np.testing.assert_allclose(
            rotate_populations(batch, r, lmax)[1], rotate_populations(batch[1], r, lmax), atol=1e-14
        )

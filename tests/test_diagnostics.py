"""Diagnostics (chasm.diagnostics), each against an independent check.

- residual analysis: the count of crossed faces against a brute-force loop over
  every pair of neighbouring grid points; df of a plane wave (iso-surfaces are
  planes: 2 n² faces, df -> 2) and of white noise against Meindl & Henn's
  published expectation (df(0) = 2.83721 for 49³, and 2.83723(41) from their
  program jnk2RDA on Gaussian numbers); e_gross of A cos(2πx) against the
  integral A V / π;
- normal probability plot: quantiles against mpmath's erfinv, slope of a
  normal sample against its known σ;
- DRK: ratios against a plain loop over bins of equal counts;
- rigid-bond test: a rigid body (TLS without S) gives Δ = 0 for every bond,
  including a bond to a symmetry image; a known extra motion along one bond
  gives that Δ; su(Δ) against finite differences.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from chasm.crystal.adp import ucart_to_ucif
from chasm.crystal.structure import Atom, Crystal
from chasm.diagnostics import (
    XrayFit,
    drk,
    fo_fc,
    normal_probability,
    residual_analysis,
    rigid_bond_test,
)
from chasm.diagnostics.plots import (
    drk_png,
    fo_fc_png,
    normal_probability_png,
    residual_analysis_png,
)
from chasm.diagnostics.residual import face_ranges, noise_df_zero
from chasm.diagnostics.statistics import normal_quantiles


# --------------------------------------------------------------------------- Meindl & Henn
def _crossed_brute(v: np.ndarray, level: float) -> int:
    """Faces crossed: neighbours along a, b or c (periodic) with lo <= level < hi."""
    n1, n2, n3 = v.shape
    count = 0
    for i in range(n1):
        for j in range(n2):
            for k in range(n3):
                for a, b, c in ((1, 0, 0), (0, 1, 0), (0, 0, 1)):
                    pair = (v[i, j, k], v[(i + a) % n1, (j + b) % n2, (k + c) % n3])
                    count += min(pair) <= level < max(pair)
    return count


def test_face_count_matches_a_brute_force_loop():
    rng = np.random.default_rng(1)
    v = rng.normal(size=(5, 6, 4))
    lo, hi = face_ranges(v)
    assert lo.size == 3 * v.size
    for level in (-1.0, -0.2, 0.0, 0.7):
        fast = int(np.sum((lo <= level) & (level < hi)))
        assert fast == _crossed_brute(v, level)
    a = residual_analysis(v, volume=100.0, n_levels=7)
    for level, df in zip(a.levels, a.df, strict=True):
        n = _crossed_brute(v, level)
        expect = 3 * math.log(n) / math.log(3 * v.size) if n else math.nan
        assert df == pytest.approx(expect, nan_ok=True)
    assert a.df_zero == pytest.approx(3 * math.log(_crossed_brute(v, 0.0)) / math.log(3 * v.size))


def test_plane_wave_is_two_dimensional():
    n = 40
    x = (np.arange(n) + 0.5) / n  # grid not on the zero planes
    wave = np.cos(2 * np.pi * x)[:, None, None] * np.ones((1, n, n))
    a = residual_analysis(wave, volume=1000.0, n_levels=201)
    # the iso-surface at 0 is the planes x = 1/4 and 3/4: 2 n^2 faces of 3 n^3
    assert a.df_zero == pytest.approx(3 * math.log(2 * n * n) / math.log(3 * n**3), abs=1e-12)
    assert a.df_zero == pytest.approx(2.0, abs=0.01)


def test_noise_gives_meindl_and_henns_published_df0():
    # Meindl & Henn (Structure and Bonding 146 (2012), residual density analysis): for
    # uncorrelated Gaussian noise half of the faces are crossed at 0; their eq. for
    # 49 x 49 x 49 face layers gives 2.83721, their program jnk2RDA 2.83723(41) on
    # Gaussian random numbers (20 grids)
    assert noise_df_zero((49, 49, 49)) == pytest.approx(2.83721, abs=5e-6)
    rng = np.random.default_rng(2)
    runs = [residual_analysis(rng.normal(size=(49, 49, 49)), 1000.0) for _ in range(4)]
    mean = float(np.mean([r.df_zero for r in runs]))
    assert mean == pytest.approx(2.83723, abs=3 * 0.00041)
    assert runs[0].df_noise == noise_df_zero((49, 49, 49))
    # the noise distribution is wider than the plane wave's and finite inside its range
    assert np.all(np.isfinite(runs[0].df[1:-1])) and runs[0].df_zero > 2.8


def test_e_gross_is_half_the_integral_of_the_absolute_density():
    n, amplitude, volume = 64, 0.2, 250.0
    x = np.arange(n) / n
    wave = amplitude * np.cos(2 * np.pi * x)[:, None, None] * np.ones((1, n, n))
    a = residual_analysis(wave, volume=volume)
    # ½ ∫|A cos 2πx| dV = ½ A V (2/π)
    assert a.e_gross == pytest.approx(amplitude * volume / math.pi, rel=1e-3)
    assert a.rho_max == pytest.approx(amplitude) and a.rms == pytest.approx(amplitude / 2**0.5)


def test_residual_analysis_rejects_a_flat_array():
    with pytest.raises(ValueError, match="3-D"):
        residual_analysis(np.zeros((4, 4)), 10.0)


# --------------------------------------------------------------------------- reflections
def _fit(n=600, seed=3, noise=1.0, trend=0.0) -> XrayFit:
    rng = np.random.default_rng(seed)
    stol = np.sort(rng.uniform(0.05, 1.1, n))
    fc2 = rng.exponential(100.0, n) * np.exp(-2.0 * stol**2) + 1.0
    sigma = 0.02 * fc2 + 0.5
    fo2 = fc2 * (1.0 + trend * stol) + noise * sigma * rng.normal(size=n)
    return XrayFit(
        "test",
        np.zeros((n, 3), dtype=int),
        stol,
        fo2,
        sigma,
        fc2,
        1.0 / sigma**2,
    )


def test_normal_quantiles_against_mpmath():
    e = normal_quantiles(7)
    for i, q in enumerate(e, start=1):
        p = (i - 0.5) / 7
        assert q == pytest.approx(float(mpmath.sqrt(2) * mpmath.erfinv(2 * p - 1)), abs=1e-12)


def test_normal_probability_slope_is_the_error_scale():
    fit = _fit(n=4000, noise=2.0)
    npp = normal_probability(fit)
    assert np.all(np.diff(npp.observed) >= 0)
    assert npp.slope == pytest.approx(2.0, rel=0.05)
    assert abs(npp.intercept) < 0.1
    gof = math.sqrt(np.mean(fit.weighted_residuals**2))
    assert npp.slope == pytest.approx(gof, rel=0.05)


def test_drk_against_a_plain_loop():
    fit = _fit(n=503, trend=0.2)
    d = drk(fit, n_bins=10)
    order = np.argsort(fit.stol, kind="stable")
    start = 0
    for b in range(10):
        size = 503 // 10 + (1 if b < 503 % 10 else 0)
        idx = order[start : start + size]
        start += size
        assert d.count[b] == size
        assert d.ratio[b] == pytest.approx(sum(fit.fo2[idx]) / sum(fit.fc2[idx]))
        assert d.stol_low[b] == fit.stol[idx].min() and d.stol_high[b] == fit.stol[idx].max()
    # a model that misses a resolution trend shows it: ratio rises with sinθ/λ
    assert d.ratio[-1] - d.ratio[0] > 0.1


def test_fo_fc_slope_and_plots_are_png():
    fit = _fit(noise=0.0)
    fit.fo2 = 2.0 * fit.fc2
    f = fo_fc(fit)
    assert f.slope == pytest.approx(2.0) and f.correlation == pytest.approx(1.0)
    assert np.allclose(f.f_obs, np.sqrt(2.0 * fit.fc2))
    wave = np.cos(np.linspace(0, 6, 8 * 8 * 8)).reshape(8, 8, 8)
    pictures = [
        fo_fc_png(f),
        normal_probability_png(normal_probability(fit)),
        drk_png(drk(fit)),
        residual_analysis_png([residual_analysis(wave, 10.0)], ["wave"]),
    ]
    assert all(p.startswith(b"\x89PNG") for p in pictures)


# --------------------------------------------------------------------------- rigid bond
def _skew(r):
    return np.array([[0.0, -r[2], r[1]], [r[2], 0.0, -r[0]], [-r[1], r[0], 0.0]])


def _rigid_crystal(extra: float = 0.0):
    """P2 (b unique, β = 100°): C1–C1' and C1–C2' across the two-fold axis, rigid-body ADPs."""
    crystal = Crystal.from_parts(
        [10.0, 12.0, 9.0, 90.0, 100.0, 90.0],
        ["x,y,z", "-x,y,-z"],
        [
            Atom("C1", "C", [0.0, 0.0, 0.0], uiso=0.01),
            Atom("C2", "C", [0.0, 0.0, 0.0], uiso=0.01),
        ],
    )
    # two-fold along Cartesian y: T and L invariant (no xy, yz elements)
    t = np.array([[0.012, 0.0, 0.002], [0.0, 0.015, 0.0], [0.002, 0.0, 0.010]])
    lib = np.array([[0.004, 0.0, -0.001], [0.0, 0.006, 0.0], [-0.001, 0.0, 0.003]])
    positions = {"C1": np.array([0.7, 0.3, 0.2]), "C2": np.array([-1.2, 1.5, -0.9])}
    for atom in crystal.atoms:
        r = positions[atom.label]
        atom.xyz = crystal.cart_to_frac(r)
        u = t + _skew(r) @ lib @ _skew(r).T
        if atom.label == "C1" and extra:
            bond = np.array([1.2, 1.5, 0.9]) - r  # to C2' = two-fold image of C2
            n = bond / np.linalg.norm(bond)
            u = u + extra * np.outer(n, n)
        atom.u_aniso = ucart_to_ucif(u, crystal)
    return crystal


def test_rigid_body_passes_the_rigid_bond_test_also_across_symmetry():
    rows = rigid_bond_test(_rigid_crystal())
    pairs = {(r.atom1, r.atom2.split(" ")[0]) for r in rows}
    assert pairs == {("C1", "C1"), ("C1", "C2")}
    image = next(r for r in rows if r.atom2.startswith("C1"))
    assert "(2_555)" in image.atom2 and image.distance == pytest.approx(2 * (0.49 + 0.04) ** 0.5)
    other = next(r for r in rows if r.atom2.startswith("C2"))
    assert other.atom2 == "C2 (2_555)" and other.distance == pytest.approx(
        (0.25 + 1.44 + 0.49) ** 0.5
    )
    for r in rows:
        assert abs(r.delta) < 1e-12 and r.z2_1 > 0.01
    assert other.su is None  # no su given (the self-image bond has Δ ≡ 0: su 0)


def test_extra_motion_along_a_bond_is_delta_and_su_against_finite_differences():
    extra = 0.002
    crystal = _rigid_crystal(extra)
    su = {
        f"{a}.{u}": 1e-4 * (k + 1)
        for a in ("C1", "C2")
        for k, u in enumerate(("U11", "U22", "U33", "U12", "U13", "U23"))
    }
    row = next(r for r in rigid_bond_test(crystal, su) if r.atom2.startswith("C2"))
    assert row.delta == pytest.approx(extra, abs=1e-12)
    # su by finite differences over the 12 U_cif
    var, h = 0.0, 1e-6
    for atom in crystal.atoms:
        for k in range(6):
            saved = atom.u_aniso.copy()
            atom.u_aniso[k] += h
            d = next(r for r in rigid_bond_test(crystal) if r.atom2.startswith("C2")).delta
            atom.u_aniso = saved
            var += (
                (d - row.delta)
                / h
                * su[f"{atom.label}.{('U11', 'U22', 'U33', 'U12', 'U13', 'U23')[k]}"]
            ) ** 2
    assert row.su == pytest.approx(math.sqrt(var), rel=1e-6)
    assert row.z == pytest.approx(extra / row.su)
    # a U fixed by symmetry (name present, su None) counts as 0; a missing name: unknown
    assert next(
        r for r in rigid_bond_test(crystal, {**su, "C1.U12": None}) if r.atom2.startswith("C2")
    ).su
    partial = {k: v for k, v in su.items() if k != "C1.U12"}
    assert next(r for r in rigid_bond_test(crystal, partial) if r.atom2.startswith("C2")).su is None


def test_spherical_atom_residual_is_zero_for_iam_data_and_not_otherwise():
    from chasm.diagnostics.residual import spherical_atom_residual
    from chasm.scattering.engine import StructureFactorEngine
    from chasm.scattering.sfcalc import default_models

    crystal = _rigid_crystal()
    hkl = np.array(
        [
            (h, k, l)
            for h in range(-4, 5)
            for k in range(0, 5)
            for l in range(0, 5)
            if (h, k, l) != (0, 0, 0)
        ]
    )
    f = StructureFactorEngine(crystal, default_models(crystal, "iam"), hkl).compute().F
    fit = XrayFit(
        "iam",
        hkl,
        np.zeros(len(hkl)),
        2.5 * np.abs(f) ** 2,
        np.ones(len(hkl)),
        np.abs(f) ** 2,
        np.ones(len(hkl)),
    )
    a = spherical_atom_residual(crystal, fit)
    assert a.e_gross < 1e-9 and max(abs(a.rho_min), abs(a.rho_max)) < 1e-9
    fit.fo2 = fit.fo2 * (1 + 0.05 * np.random.default_rng(4).normal(size=len(hkl)))
    assert spherical_atom_residual(crystal, fit).e_gross > 0.01


def test_metal_metal_contacts_are_not_bonds():
    crystal = Crystal.from_parts(
        [5.46, 5.46, 5.46, 90, 90, 90],
        "F m -3 m",
        [
            Atom("Ca", "Ca", [0, 0, 0], u_aniso=[0.0033, 0.0033, 0.0033, 0, 0, 0]),
            Atom("F", "F", [0.25, 0.25, 0.25], u_aniso=[0.0048, 0.0048, 0.0048, 0, 0, 0]),
        ],
    )
    rows = rigid_bond_test(crystal)
    assert [(r.atom1, r.atom2.split(" ")[0]) for r in rows] == [("Ca", "F")]
    assert rows[0].delta == pytest.approx(0.0033 - 0.0048)


@pytest.mark.parametrize("seed", [0, 1])
def test_crossed_face_counts_compiled_equal_the_sorted_faces(seed, monkeypatch):
    """The one-pass face histogram counts exactly what sorting the faces counts (ties too)."""
    from chasm.diagnostics import residual as rd

    rng = np.random.default_rng(seed)
    v = np.round(rng.normal(size=(7, 9, 5)), 1)  # many equal values: ties at the levels
    v[0, 0, 0] = 0.0
    lo, hi = rd.face_ranges(v)
    for levels in (
        np.linspace(v.min(), v.max(), 41),
        np.linspace(-0.3, 0.2, 6),
        np.full(5, v.min()),  # equal levels (a flat map)
    ):
        want = np.array([np.sum(lo <= x) - np.sum(hi <= x) for x in levels])
        want0 = int(np.sum(lo <= 0.0) - np.sum(hi <= 0.0))
        count, zero = rd._crossed(v, levels)
        assert np.array_equal(count, want) and zero == want0
        monkeypatch.setattr(rd, "HAVE_NUMBA", False)
        count, zero = rd._crossed(v, levels)
        assert np.array_equal(count, want) and zero == want0
        monkeypatch.setattr(rd, "HAVE_NUMBA", True)

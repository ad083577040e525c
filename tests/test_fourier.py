"""Fourier syntheses, residual maps and peak search (chasm.maps.fourier).

The references are independent of the code under test: structure factors of
the whole sphere of reflections come straight from the engine (no symmetry
expansion), and map values from a sum over them written out here.
"""

from __future__ import annotations

import gemmi
import numpy as np
import pytest

from chasm.crystal.cif import read_cif
from chasm.crystal.structure import Atom, Crystal
from chasm.io.shelx_hkl import merge, read_hkl4
from chasm.maps.fourier import (
    expand_to_p1,
    fc_map,
    fo_map,
    fourier_grid,
    grid_shape,
    half_sphere,
    nearest_atom,
    peaks,
    residual_map,
    residual_peaks_table,
    synthesis_fft,
)
from chasm.scattering.engine import StructureFactorEngine
from chasm.scattering.sfcalc import default_models

GROUPS = {
    "P212121": ("P 21 21 21", (6.1, 7.2, 8.3, 90, 90, 90)),
    "P-1": ("P -1", (6.1, 7.2, 8.3, 80, 95, 100)),
    "P21/c": ("P 21/c", (6.1, 7.2, 8.3, 90, 100, 90)),
}
SITES = [
    ("S1", "S", (0.10, 0.20, 0.30)),
    ("O1", "O", (0.35, 0.15, 0.55)),
    ("N1", "N", (0.62, 0.41, 0.18)),
    ("C1", "C", (0.85, 0.70, 0.45)),
]


def make_crystal(group: str, uiso: float = 0.02, leave_out: str | None = None, **kw) -> Crystal:
    """A four-atom test structure; the N atom is anisotropic unless ``uiso`` is small."""
    symbol, cell = GROUPS[group]
    atoms = []
    for label, element, xyz in SITES:
        if label == leave_out:
            continue
        u_aniso = None
        if label == "N1" and uiso >= 0.01:
            u_aniso = np.array([0.025, 0.018, 0.030, 0.004, -0.003, 0.002])
        atoms.append(
            Atom(label, element, xyz, uiso=None if u_aniso is not None else uiso, u_aniso=u_aniso)
        )
    return Crystal.from_parts(cell, symbol, atoms, **kw)


def sphere(crystal: Crystal, smax: float, f000: bool = False) -> np.ndarray:
    """Every h with sinθ/λ <= smax (both Friedel mates), written out directly."""
    reach = np.ceil(2 * smax * np.array(crystal.cell.parameters[:3])).astype(int) + 1
    axes = [np.arange(-m, m + 1) for m in reach]
    h = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    s = 0.5 * np.linalg.norm(h @ crystal.B.T, axis=1)
    keep = s <= smax
    if not f000:
        keep &= np.any(h != 0, axis=1)
    return h[keep]


def unique(crystal: Crystal, hkl: np.ndarray) -> np.ndarray:
    """The reflections of ``hkl`` in gemmi's reciprocal asymmetric unit."""
    asu = gemmi.ReciprocalAsu(crystal.spacegroup)
    return np.array([h for h in hkl if asu.is_in([int(v) for v in h])])


def calc(crystal: Crystal, hkl: np.ndarray) -> np.ndarray:
    return StructureFactorEngine(crystal, default_models(crystal), hkl).compute().F


def direct_sum(crystal: Crystal, hkl: np.ndarray, F: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """(1/V) Σ_h F(h) exp(−2πi h·x), written out without any symmetry."""
    phase = np.exp(-2j * np.pi * (np.atleast_2d(frac) @ hkl.T))
    return (phase @ F) / crystal.volume


@pytest.fixture(scope="module", params=list(GROUPS))
def case(request):
    crystal = make_crystal(request.param)
    full = sphere(crystal, 0.6)
    uniq = unique(crystal, full)
    return crystal, full, calc(crystal, full), uniq, calc(crystal, uniq)


# --------------------------------------------------------------------------- synthesis
def test_grid_equals_direct_sum_over_full_sphere(case):
    crystal, full, f_full, uniq, f_uniq = case
    # the engine's full-sphere F is Hermitian without dispersion: the sum is real
    assert np.allclose(f_full, np.conj(calc(crystal, -full)), rtol=0, atol=1e-12)
    fmap = fourier_grid(crystal, uniq, f_uniq, spacing=0.25)
    rng = np.random.default_rng(3)
    index = rng.integers(0, fmap.grid, size=(12, 3))
    reference = direct_sum(crystal, full, f_full, fmap.grid_fractional(index))
    got = fmap.values[index[:, 0], index[:, 1], index[:, 2]]
    top = np.max(np.abs(reference))
    assert np.max(np.abs(reference.imag)) <= 1e-12 * top
    assert np.max(np.abs(got - reference.real)) <= 1e-10 * top
    # exact evaluation off the grid agrees as well
    x = rng.random((5, 3))
    assert np.allclose(
        fmap.evaluate(x), direct_sum(crystal, full, f_full, x).real, rtol=0, atol=1e-10 * top
    )


def test_expansion_reproduces_engine_phases(case):
    crystal, full, f_full, uniq, f_uniq = case
    hkl_p1, c_p1 = expand_to_p1(crystal, uniq, f_uniq)
    assert {tuple(h) for h in hkl_p1} == {tuple(h) for h in full}
    assert len(hkl_p1) == len(full)
    assert np.max(np.abs(c_p1 - calc(crystal, hkl_p1))) <= 1e-12 * np.max(np.abs(f_full))


def test_expansion_with_anomalous_dispersion():
    """The phase shifts hold for each Friedel half of anomalous data; mates are averaged."""
    crystal = make_crystal("P212121", dispersion={"S": (0.3, 0.6), "O": (0.02, 0.03)})
    uniq = unique(crystal, sphere(crystal, 0.5))
    F = calc(crystal, uniq)
    hkl_p1, c_p1 = expand_to_p1(crystal, uniq, F, friedel=False)
    assert np.max(np.abs(c_p1 - calc(crystal, hkl_p1))) <= 1e-12 * np.max(np.abs(F))
    hkl_h, c_h = expand_to_p1(
        crystal, np.vstack([uniq, -uniq]), np.concatenate([F, calc(crystal, -uniq)])
    )
    ref = calc(crystal, hkl_h)
    assert np.allclose(c_h, 0.5 * (ref + np.conj(calc(crystal, -hkl_h))), rtol=0, atol=1e-10)


def test_map_is_invariant_under_the_space_group(case):
    crystal, _, _, uniq, f_uniq = case
    fmap = fourier_grid(crystal, uniq, f_uniq, spacing=0.3)
    x = np.random.default_rng(5).random((6, 3))
    rho = fmap.evaluate(x)
    scale = np.max(np.abs(fmap.values))
    for r, t in zip(crystal.rotations, crystal.translations, strict=True):
        assert np.max(np.abs(fmap.evaluate(x @ r.T + t) - rho)) <= 1e-10 * scale
    # the grid was chosen so that the operations map grid points onto grid points
    n = np.array(fmap.grid)
    index = np.random.default_rng(6).integers(0, n, size=(20, 3))
    for r, t in zip(crystal.rotations, crystal.translations, strict=True):
        image = (index / n) @ r.T + t
        j = np.rint(image * n).astype(int)
        assert np.allclose(j, image * n, atol=1e-9)
        j %= n
        got = fmap.values[j[:, 0], j[:, 1], j[:, 2]]
        assert np.allclose(got, fmap.values[tuple(index.T)], rtol=0, atol=1e-10 * scale)


def test_parseval(case):
    crystal, _, f_full, uniq, f_uniq = case
    fmap = fourier_grid(crystal, uniq, f_uniq, spacing=0.3)
    expected = np.sum(np.abs(f_full) ** 2) / crystal.volume**2
    assert np.mean(fmap.values**2) == pytest.approx(expected, rel=1e-10)


def test_mean_is_f000_over_volume(case):
    crystal, _, _, uniq, f_uniq = case
    with_zero = np.vstack([[0, 0, 0], uniq])
    f0 = calc(crystal, np.zeros((1, 3), dtype=int))[0]
    assert abs(f0.imag) < 1e-12 and f0.real > 40  # S + O + N + C per copy, times Z
    fmap = fourier_grid(crystal, with_zero, np.concatenate([[f0], f_uniq]), spacing=0.3)
    assert fmap.stats().mean == pytest.approx(f0.real / crystal.volume, rel=1e-12)
    no_zero = fourier_grid(crystal, uniq, f_uniq, spacing=0.3)
    assert abs(no_zero.stats().mean) <= 1e-13 * no_zero.stats().max


# --------------------------------------------------------------------------- fast paths
def random_coefficients(n: int, hmax: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct random indices (both halves, (0,0,0) included) with non-Hermitian coefficients."""
    rng = np.random.default_rng(seed)
    h = np.unique(rng.integers(-hmax, hmax + 1, size=(3 * n, 3)), axis=0)
    h = h[np.any(h != 0, axis=1)]
    h = np.vstack([[0, 0, 0], h[rng.permutation(len(h))[: n - 1]]])
    c = rng.normal(size=len(h)) + 1j * rng.normal(size=len(h))
    return h, c


def test_half_sphere_keeps_the_real_part_of_any_synthesis():
    h, c = random_coefficients(300, 6, seed=11)
    k, ck = half_sphere(h, c)
    lead = np.array([next((v for v in row if v != 0), 0) for row in k])
    assert np.all(lead >= 0) and len(np.unique(k, axis=0)) == len(k)
    assert len(k) < len(h)  # some Friedel pairs were folded together
    x = np.random.default_rng(12).random((7, 3))
    full = np.exp(-2j * np.pi * (x @ h.T)) @ c
    folded = np.exp(-2j * np.pi * (x @ k.T)) @ ck
    assert np.allclose(folded.real, full.real, rtol=0, atol=1e-12 * np.abs(full).max())


@pytest.mark.parametrize("shape", [(16, 15, 14), (15, 16, 13)])
def test_real_fft_synthesis_equals_the_direct_sum(shape):
    """Odd and even last axes; non-Hermitian coefficients (the real part of the sum)."""
    h, c = random_coefficients(200, 6, seed=13)
    got = synthesis_fft(h, c, shape)
    j = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1)
    x = (j / np.array(shape)).reshape(-1, 3)
    direct = (np.exp(-2j * np.pi * (x @ h.T)) @ c).real.reshape(shape)
    assert np.max(np.abs(got - direct)) <= 1e-12 * np.abs(direct).max()


def test_plane_by_separable_phases_equals_the_direct_sum(case):
    """An oblique, off-grid mesh in every test group (triclinic included), to 1e-12."""
    crystal, full, f_full, uniq, f_uniq = case
    fmap = fourier_grid(crystal, uniq, f_uniq, spacing=0.3)
    origin = np.array([0.37, -1.21, 2.05])  # outside the cell on purpose
    du, dv = np.array([0.031, -0.017, 0.009]), np.array([-0.004, 0.022, 0.027])
    u, v = np.linspace(-2.5, 3.0, 9), np.array([-1.0, 0.0, 0.5, 2.25, 4.0])
    got = fmap.evaluate_plane(origin, du, dv, u, v, block=37)  # several reflection blocks
    x = origin + u[:, None, None] * du + v[None, :, None] * dv
    direct = direct_sum(crystal, full, f_full, x.reshape(-1, 3)).real.reshape(len(u), len(v))
    assert np.max(np.abs(got - direct)) <= 1e-12 * np.abs(direct).max()
    assert np.max(np.abs(fmap.evaluate(x) - direct)) <= 1e-12 * np.abs(direct).max()


def test_fast_paths_agree_for_non_hermitian_maps():
    """Anomalous data kept as is (friedel=False): grid, points and plane give Re of the sum."""
    crystal = make_crystal("P212121", dispersion={"S": (0.3, 0.6), "O": (0.02, 0.03)})
    uniq = unique(crystal, sphere(crystal, 0.5))
    both = np.vstack([uniq, -uniq])
    fmap = fourier_grid(crystal, both, calc(crystal, both), spacing=0.3, friedel=False)
    full = sphere(crystal, 0.5)
    ref_f = calc(crystal, full)
    index = np.random.default_rng(14).integers(0, fmap.grid, size=(10, 3))
    x = fmap.grid_fractional(index)
    direct = direct_sum(crystal, full, ref_f, x)
    scale = np.abs(direct).max()
    assert np.max(np.abs(direct.imag)) > 1e-6 * scale  # really non-Hermitian
    assert np.max(np.abs(fmap.values[tuple(index.T)] - direct.real)) <= 1e-11 * scale
    assert np.max(np.abs(fmap.evaluate(x) - direct.real)) <= 1e-11 * scale
    row = fmap.evaluate_plane(x[0], x[1] - x[0], x[2] - x[0], [0.0, 1.0], [0.0, 1.0])
    assert row[0, 0] == pytest.approx(direct[0].real, abs=1e-11 * scale)
    assert row[1, 0] == pytest.approx(direct[1].real, abs=1e-11 * scale)
    assert row[0, 1] == pytest.approx(direct[2].real, abs=1e-11 * scale)


def test_folded_reflections_follow_new_coefficients(case):
    """The half-sphere copy is rebuilt when the arrays are replaced; in place is refused."""
    crystal, _, _, uniq, f_uniq = case
    fmap = fourier_grid(crystal, uniq, f_uniq, spacing=0.3)
    x = np.array([[0.1, 0.2, 0.3]])
    before = fmap.evaluate(x)
    with pytest.raises(ValueError):
        fmap.coeffs[0] = 0.0
    fmap.coeffs = 2.0 * fmap.coeffs
    assert fmap.evaluate(x) == pytest.approx(2.0 * before, rel=1e-12)


# --------------------------------------------------------------------------- grid & helpers
def test_grid_shape_rules():
    crystal = make_crystal("P21/c")
    shape = grid_shape(crystal, spacing=0.1)
    lengths = np.array(crystal.cell.parameters[:3])
    assert np.all(lengths / np.array(shape) <= 0.1)
    assert shape[1] % 2 == 0 and shape[2] % 2 == 0  # 2_1 along b and c-glide
    hex_crystal = Crystal.from_parts(
        (6, 6, 9, 90, 90, 120), "P 61", [Atom("C1", "C", (0.1, 0.2, 0.3), uiso=0.02)]
    )
    nx, ny, nz = grid_shape(hex_crystal, spacing=0.2)
    assert nx == ny and nz % 6 == 0
    with pytest.raises(ValueError, match="too coarse"):
        fourier_grid(crystal, [[5, 0, 0]], [1.0], grid=(10, 10, 10))


def test_interpolation_and_derivatives(case):
    crystal, _, _, uniq, f_uniq = case
    fmap = fourier_grid(crystal, uniq, f_uniq, spacing=0.1)
    index = np.array([[3, 4, 5], [10, 0, 7]])
    nodes = fmap.grid_fractional(index)
    assert np.allclose(fmap.value_at(nodes), fmap.values[tuple(index.T)])
    x = np.array([0.123, 0.456, 0.789])
    assert fmap.value_at(x) == pytest.approx(fmap.evaluate(x), abs=0.02 * fmap.stats().max)
    value, grad, hess = fmap.derivatives(x)
    assert value == pytest.approx(fmap.evaluate(x))
    e = 1e-5
    for i in range(3):
        dx = np.zeros(3)
        dx[i] = e
        assert grad[i] == pytest.approx(
            (fmap.evaluate(x + dx) - fmap.evaluate(x - dx)) / (2 * e), rel=1e-5, abs=1e-6
        )
        g_plus = fmap.derivatives(x + dx)[1]
        g_minus = fmap.derivatives(x - dx)[1]
        assert np.allclose(hess[i], (g_plus - g_minus) / (2 * e), rtol=1e-5, atol=1e-4)


def test_residual_map_coefficients():
    crystal = make_crystal("P212121")
    uniq = unique(crystal, sphere(crystal, 0.6))
    F = calc(crystal, uniq)
    fo = np.abs(F) * (1 + 0.05 * np.random.default_rng(2).standard_normal(len(F)))
    k = 3.7  # intensity scale: F²_obs = k |Fc|², so |Fo| on the file's scale is sqrt(k)|Fo|
    a = residual_map(crystal, uniq, fo, F, spacing=0.3)
    b = residual_map(crystal, uniq, np.sqrt(k) * fo, F, scale=np.sqrt(k), spacing=0.3)
    assert np.allclose(a.values, b.values, rtol=0, atol=1e-12)
    diff = (
        fo_map(crystal, uniq, fo, F, spacing=0.3).values
        - fc_map(crystal, uniq, F, spacing=0.3).values
    )
    assert np.allclose(a.values, diff, rtol=0, atol=1e-12)
    zero = residual_map(crystal, uniq, np.abs(F), F, spacing=0.3)
    assert np.max(np.abs(zero.values)) < 1e-12
    cut = residual_map(crystal, uniq, fo, F, smax=0.4, spacing=0.3)
    assert np.max(0.5 * np.linalg.norm(cut.hkl @ crystal.B.T, axis=1)) <= 0.4
    assert len(cut.hkl) < len(a.hkl)


# --------------------------------------------------------------------------- peaks
def _distance_to_atom(crystal: Crystal, frac: np.ndarray, label: str) -> float:
    """Shortest distance from a point to any image of an atom (plain loops)."""
    x = crystal.atoms[crystal.atom_index(label)].xyz
    best = np.inf
    for r, t in zip(crystal.rotations, crystal.translations, strict=True):
        image = r @ x + t
        for shift in np.ndindex(5, 5, 5):
            d = frac - image - np.round(frac - image) + np.array(shift) - 2
            best = min(best, float(np.linalg.norm(crystal.A @ d)))
    return best


@pytest.mark.parametrize("group", list(GROUPS))
def test_fc_peaks_are_the_atoms(group):
    crystal = make_crystal(group, uiso=0.005)
    uniq = unique(crystal, sphere(crystal, 1.0))
    fmap = fc_map(crystal, uniq, calc(crystal, uniq), spacing=0.1)
    for exact in (False, True):
        found = peaks(fmap, n=len(SITES) + 2, exact=exact)
        top = found[: len(SITES)]
        assert sorted(p.atom for p in top) == sorted(label for label, _, _ in SITES)
        assert [p.atom for p in top][0] == "S1"  # the heaviest atom is the highest peak
        for p in top:
            assert p.distance < 0.02
            assert _distance_to_atom(crystal, p.frac, p.atom) == pytest.approx(p.distance, abs=1e-9)
        # the next maxima are much lower: no symmetry copies of the atoms were kept
        assert found[len(SITES)].height < 0.2 * min(p.height for p in top)
        assert found[-1].height < 0  # minima follow the maxima
    exact_top = peaks(fmap, n=1, exact=True, kind="positive")[0]
    assert exact_top.height == pytest.approx(float(fmap.evaluate(exact_top.frac)), rel=1e-12)
    assert np.max(np.abs(fmap.derivatives(exact_top.frac)[1])) < 1e-6 * exact_top.height


@pytest.mark.parametrize("group", list(GROUPS))
def test_residual_peak_of_a_missing_atom(group):
    crystal = make_crystal(group, uiso=0.01)
    partial = make_crystal(group, uiso=0.01, leave_out="N1")
    uniq = unique(crystal, sphere(crystal, 0.9))
    fmap = residual_map(crystal, uniq, np.abs(calc(crystal, uniq)), calc(partial, uniq))
    found = peaks(fmap, n=3, exact=True)
    assert found[0].atom == "N1"
    assert found[0].distance < 0.1
    deepest = min(p.height for p in found)
    assert found[0].height > 3 * max(found[1].height, -deepest)
    # against the model without N1 the peak is 'new': its nearest atom is ≥ 1.2 Å away
    label, dist = nearest_atom(partial, found[0].frac)
    assert label != "N1" and dist > 1.2


def test_peaks_table_and_filters():
    crystal = make_crystal("P-1", uiso=0.005)
    uniq = unique(crystal, sphere(crystal, 0.8))
    fmap = fc_map(crystal, uniq, calc(crystal, uniq), spacing=0.15)
    strong = peaks(fmap, n=20, min_height=20.0, kind="positive")
    assert len(strong) == len(SITES) and all(p.height >= 20.0 for p in strong)
    holes = peaks(fmap, n=3, kind="negative")
    assert len(holes) == 3 and all(p.height < 0 for p in holes)
    assert holes[0].height <= holes[1].height <= holes[2].height
    table = residual_peaks_table(strong).splitlines()
    assert table[0].split() == ["#", "height", "x", "y", "z", "atom", "d/Å"]
    assert len(table) == len(SITES) + 1 and len({len(line) for line in table}) == 1
    fields = table[1].split()
    assert float(fields[1]) == pytest.approx(strong[0].height, abs=5e-4)
    assert fields[5] == strong[0].atom
    with pytest.raises(ValueError):
        peaks(fmap, kind="max")


# --------------------------------------------------------------------------- real data
def test_urea_residual_map(shared_data):
    folder = shared_data / "xray" / "urea"
    crystal = read_cif(folder / "iam.cif")
    merged, _, _ = merge(read_hkl4(folder / "iam.hkl"), crystal)
    F = StructureFactorEngine(crystal, default_models(crystal), merged.hkl).compute().F
    fc2 = np.abs(F) ** 2
    w = 1.0 / merged.sigma**2
    k = np.sum(w * merged.f2 * fc2) / np.sum(w * fc2**2)  # least squares on F², weights 1/σ²
    assert np.sqrt(k) == pytest.approx(1.02290, rel=5e-3)  # SHELXL's FVAR (scale of F)
    fo = np.sqrt(np.maximum(merged.f2, 0.0))
    fmap = residual_map(crystal, merged.hkl, fo, F, scale=np.sqrt(k), spacing=0.1)
    stats = fmap.stats()
    found = peaks(fmap, n=5, exact=True)
    print(f"\nurea IAM Fo-Fc: grid {fmap.grid}, {len(merged.hkl)} reflections, k = {k:.4f}")
    print(f"min {stats.min:.3f} max {stats.max:.3f} rms {stats.rms:.4f} e/Å³")
    print(residual_peaks_table(found))
    strong = merged.f2 > 2 * merged.sigma
    cut = residual_map(crystal, merged.hkl[strong], fo[strong], F[strong], scale=np.sqrt(k))
    print("F² > 2σ only: min {0.min:.3f} max {0.max:.3f} rms {0.rms:.4f}".format(cut.stats()))
    assert abs(stats.mean) < 1e-12
    assert stats.rms < 0.1
    assert 0.2 < stats.max < 0.7 and -0.7 < stats.min < -0.2
    assert all(p.distance < 1.0 for p in found)
    # one of the five highest maxima is the C-O bonding density near the bond midpoint
    c = crystal.atoms[crystal.atom_index("C")].xyz
    o = crystal.atoms[crystal.atom_index("O")].xyz
    mid = 0.5 * (c + o)
    near_mid = []
    for p in found[:5]:
        images = p.frac - (crystal.rotations @ mid + crystal.translations)
        images -= np.round(images)
        near_mid.append(np.min(np.linalg.norm(images @ crystal.A.T, axis=1)))
    assert min(near_mid) < 0.3


def test_a_peak_is_reported_at_one_image_whichever_image_the_search_meets():
    """Equivalent grid points tie to rounding; the reported position must not depend on it."""
    from chasm.examples.urea_model import example_structure
    from chasm.maps.fourier import _canonical_image, _images, _wrap, nearest_atom

    cr = example_structure()
    point = np.array([0.137, 0.291, 0.412])
    chosen = {tuple(np.round(_canonical_image(cr, cr, x), 9)) for x in _images(cr, point)}
    assert len(chosen) == 1
    (best,) = chosen
    # it is the image nearest to an atom of the asymmetric unit (no lattice-free shortcut)
    x = np.array([a.xyz for a in cr.atoms])

    def to_atoms(f):
        d = x - np.asarray(f)
        d -= np.round(d)
        return np.linalg.norm(d @ cr.A.T, axis=1).min()

    assert to_atoms(best) <= min(to_atoms(_wrap(y)) for y in _images(cr, point)) + 1e-9
    assert nearest_atom(cr, best)[1] == pytest.approx(to_atoms(best), abs=1e-9)

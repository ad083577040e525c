"""Static real-space densities (chasm.maps.density) and their grids (chasm.maps.grids).

Independent references used here:

* the databank's own real-space densities (RadialTransform.density, a direct
  sum of the exponential terms) and radial.slater_density / harmonics for the
  definition of one pseudo-atom, written out in the test;
* the structure-factor engine (a reciprocal-space code path) for the Fourier
  transform of the real-space density on a cell grid;
* exact sum rules: the cell integral of a density is the sum of its
  monopoles, zero for a neutral deformation density;
* the space-group operations themselves: a symmetry-mapped point must carry
  the same density.
"""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import pytest

from chasm.crystal.cif import read_cif
from chasm.crystal.structure import Atom, Crystal
from chasm.density.databank import spherical_atom
from chasm.density.harmonics import density_harmonics
from chasm.density.model import HansenCoppensAtom, SphericalAtom
from chasm.density.radial import slater_density
from chasm.errors import InputError
from chasm.maps.density import (
    CellGrid,
    Plane,
    _species_tables,
    deformation_density,
    fourier_on_plane,
    free_atom_density,
    model_density,
    spin_density,
)
from chasm.maps.fourier import fc_map
from chasm.scattering.engine import StructureFactorEngine


def random_frame(rng, proper: bool = True) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    if (np.linalg.det(q) > 0) != proper:
        q[:, 2] *= -1
    return q


def hc_model(element, rng, lmax=4, kappa=0.95, kappa_prime=1.05, valence=None, pc=1.0, scale=0.1):
    """A neutral pseudo-atom with random multipoles (P00 = 0) and a random local frame."""
    nv = spherical_atom(element, valence=valence).n_valence
    plm = scale * rng.standard_normal((lmax + 1) ** 2)
    plm[0] = 0.0
    return HansenCoppensAtom(
        element,
        pv=nv,
        kappa=kappa,
        lmax=lmax,
        plm=plm,
        kappa_prime=kappa_prime,
        frame=random_frame(rng),
        valence=valence,
        pc=pc,
    )


def urea() -> Crystal:
    return read_cif(str(files("chasm.examples").joinpath("urea.cif")))


def made_up(group: str) -> Crystal:
    """Small structures; in P 21/c, N1 sits on the inversion centre."""
    if group == "P 1 21 1":
        atoms = [
            Atom("N1", "N", (0.11, 0.23, 0.31), uiso=0.0),
            Atom("O1", "O", (0.52, 0.61, 0.17), uiso=0.0),
        ]
        return Crystal.from_parts((3.6, 4.0, 4.4, 90, 104, 90), group, atoms)
    if group == "P 21/c":
        atoms = [
            Atom("N1", "N", (0.0, 0.0, 0.0), uiso=0.0),
            Atom("C1", "C", (0.27, 0.61, 0.18), uiso=0.0),
            Atom("H1", "H", (0.45, 0.30, 0.35), uiso=0.0),
        ]
        return Crystal.from_parts((5.1, 5.6, 6.2, 90, 101, 90), group, atoms)
    raise ValueError(group)


# --------------------------------------------------------------------------- one atom
@pytest.mark.parametrize("element", ["C", "O", "Cu"])
def test_radial_tables_match_databank_densities(element):
    atom = spherical_atom(element)
    core, val, nv = _species_tables(element, 0, None)
    r = np.concatenate([np.linspace(0.0, 0.2, 2001), np.linspace(0.2, 6.0, 3001)])
    for table, ref in ((core, atom.density_core(r)), (val, atom.density_valence(r))):
        err = np.abs(table(r) - ref)
        assert np.all(err <= 1e-8 * np.abs(ref) + 1e-11 * np.abs(ref).max())
    assert nv == atom.n_valence


@pytest.mark.parametrize("proper", [True, False])
def test_single_atom_follows_the_hansen_coppens_definition(proper):
    """One atom in a 30 Å P1 cell against the formula of CONVENTIONS.md written out here."""
    rng = np.random.default_rng(3)
    cr = Crystal.from_parts(
        (30, 30, 30, 90, 90, 90), "P 1", [Atom("O1", "O", (0.5,) * 3, occupancy=0.5, uiso=0.0)]
    )
    m = hc_model("O", rng, kappa=0.97, kappa_prime=0.9, scale=0.3)
    m.frame = random_frame(rng, proper)
    m.pc = 0.98
    centre = cr.frac_to_cart((0.5, 0.5, 0.5))
    d = rng.standard_normal((400, 3))
    d *= (rng.uniform(0.01, 3.0, 400) / np.linalg.norm(d, axis=1))[:, None]
    r = np.linalg.norm(d, axis=1)
    at = spherical_atom("O")
    dlm = density_harmonics((d / r[:, None]) @ m.frame, 4)  # local coordinates M^T u
    got = model_density(cr, [m], centre + d, tail=1e-12)  # no truncation to speak of
    ref = 0.5 * (m.pc * at.density_core(r) + m.pv * m.kappa**3 * at.density_valence(m.kappa * r))
    ref += sum(
        0.5
        * slater_density(r, m.n_l[l], m.zeta * m.kappa_prime)
        * (dlm[:, l * l : (l + 1) ** 2] @ m.plm[l * l : (l + 1) ** 2])
        for l in range(5)
    )
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-10 * np.abs(ref).max())
    # switches: core only, valence only, multipoles only add up to the whole
    parts = [
        model_density(cr, [m], centre + d, core=c, valence=v, multipoles=p, tail=1e-12)
        for c, v, p in ((True, False, False), (False, True, False), (False, False, True))
    ]
    np.testing.assert_allclose(sum(parts), got, rtol=1e-12, atol=1e-12 * np.abs(got).max())
    # weights scale the atom
    scaled = model_density(cr, [m], centre + d, weights=[-2.0], tail=1e-12)
    np.testing.assert_allclose(scaled, -2 * got, rtol=1e-12)


def test_spherical_atom_is_the_free_koga_atom():
    cr = Crystal.from_parts(
        (30, 30, 30, 90, 90, 90), "P 1", [Atom("N1", "N", (0.5,) * 3, uiso=0.02)]
    )
    r = np.linspace(0.0, 4.0, 50)
    pts = cr.frac_to_cart((0.5, 0.5, 0.5)) + r[:, None] * np.array([0.6, 0.0, 0.8])
    at = spherical_atom("N")
    ref = at.density_core(r) + at.n_valence * at.density_valence(r)
    for source in ("it92", "koga"):
        got = model_density(cr, [SphericalAtom("N", source)], pts, tail=1e-12)
        np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-12 * ref.max())
    np.testing.assert_allclose(
        free_atom_density(cr, pts, tail=1e-12), ref, rtol=1e-8, atol=1e-12 * ref.max()
    )


# --------------------------------------------------------------------------- symmetry
def symmetry_case(name: str):
    rng = np.random.default_rng(11)
    cr = urea() if name == "urea" else made_up("P 21/c")
    models = [
        hc_model(a.element, rng, lmax=2 if a.element == "H" else 4, scale=0.2) for a in cr.atoms
    ]
    return cr, models


@pytest.mark.parametrize("name", ["urea", "P21/c"])
def test_density_is_invariant_under_the_space_group(name):
    """ρ(A(Rx + t)) = ρ(A x) for every operation; urea (P-42_1m) has atoms on mm2 and m sites."""
    cr, models = symmetry_case(name)
    assert cr.is_centrosymmetric == (name != "urea")
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 1, (60, 3))
    mapped = np.einsum("oij,nj->oni", cr.rotations, x) + cr.translations[:, None]
    mapped += rng.integers(-1, 2, mapped.shape)  # any lattice translation as well
    pts = cr.frac_to_cart(np.concatenate([x[None], mapped]))
    for fn in (
        lambda p: model_density(cr, models, p),
        lambda p: deformation_density(cr, models, p),
    ):
        values = fn(pts)
        scale = np.abs(values).max()
        err = np.abs(values[1:] - values[0][None]).max() / scale
        print(f"{name}: largest symmetry difference {err:.1e} of max |rho| = {scale:.3g} e/Å³")
        assert err < 1e-8, err
    # the multipoles matter: without rotating them with the operation the map is not symmetric
    flat = [HansenCoppensAtom(m.element, m.pv, m.kappa, 0, [0.0]) for m in models]
    aspherical = deformation_density(cr, models, pts) - deformation_density(cr, flat, pts)
    assert np.abs(aspherical).max() > 1e-2


def test_symmetric_structure_equals_its_p1_expansion():
    """Every copy written out as a P1 atom with frame Q_R M and occupancy 1/|site group|.

    No merging of coincident copies and no rotation of populations: the local
    coordinates of a copy are (Q_R M)^T (r - r_copy), left-handed for the
    improper operations of P-42_1m. Urea has atoms on mm2 (|G| = 4) and m (2).
    """
    cr, models = symmetry_case("urea")
    q = cr.cartesian_rotations()
    atoms, p1_models = [], []
    for i, (atom, m) in enumerate(zip(cr.atoms, models, strict=True)):
        order = len(cr.site_symmetry(i))
        for o, (rot, t) in enumerate(zip(cr.rotations, cr.translations, strict=True)):
            atoms.append(
                Atom(
                    f"{atom.label}_{o}",
                    atom.element,
                    rot @ atom.xyz + t,
                    occupancy=1.0 / order,
                    uiso=0.0,
                )
            )
            p1_models.append(
                HansenCoppensAtom(
                    m.element, m.pv, m.kappa, m.lmax, m.plm.copy(), m.kappa_prime, q[o] @ m.frame
                )
            )
    p1 = Crystal.from_parts(cr.cell.parameters, "P 1", atoms)
    rng = np.random.default_rng(6)
    pts = cr.frac_to_cart(rng.uniform(0, 1, (80, 3)))
    # points near the special-position atoms as well
    near = [cr.frac_to_cart(a.xyz) + rng.normal(0, 0.4, 3) for a in cr.atoms for _ in range(8)]
    pts = np.concatenate([pts, near])
    a = model_density(cr, models, pts, tail=1e-10)
    b = model_density(p1, p1_models, pts, tail=1e-10)
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11 * np.abs(a).max())


# --------------------------------------------------------------------------- sum rules
def neutral_models(cr, rng, **kw):
    """2p valence for C, N, O (nodeless shells: a 0.1 Å grid integrates them to ~1e-4 e)."""
    return [
        hc_model(
            a.element,
            rng,
            lmax=1 if a.element == "H" else 4,
            valence=None if a.element == "H" else ["2p"],
            **kw,
        )
        for a in cr.atoms
    ]


@pytest.mark.slow
def test_deformation_density_integrates_to_zero():
    cr = made_up("P 21/c")
    rng = np.random.default_rng(8)
    models = neutral_models(cr, rng, kappa=0.93, kappa_prime=1.1)
    spacings = [0.3, 0.2, 0.13, 0.1]
    errors = []
    for h in spacings:
        grid = CellGrid.cell(cr, spacing=h)
        errors.append(abs(grid.integrate(grid.map(lambda p: deformation_density(cr, models, p)))))
    print("deformation density, |integral over the cell| (e) vs grid step (Å):")
    for h, e in zip(spacings, errors, strict=True):
        print(f"  {h:5.2f}  {e:.2e}")
    assert errors[-1] < 1e-3
    assert all(b < a for a, b in zip(errors, errors[1:], strict=False))
    # the map is not trivially zero
    grid = CellGrid.cell(cr, spacing=0.3)
    assert np.abs(grid.map(lambda p: deformation_density(cr, models, p))).max() > 0.3


@pytest.mark.slow
def test_spin_density_integrates_to_the_monopoles():
    cr = made_up("P 21/c")
    rng = np.random.default_rng(9)
    up = neutral_models(cr, rng)
    down = neutral_models(cr, rng)
    spins = [(0.9, 0.05), (0.2, -0.1), (0.1, 0.0)]  # (Pv, P00) differences per atom
    for mu, md, (dpv, dp00) in zip(up, down, spins, strict=True):
        md.pv = mu.pv - dpv
        mu.plm[0], md.plm[0] = 0.5 * dp00, -0.5 * dp00
    mult = np.array([cr.multiplicity(i) for i in range(len(cr.atoms))])
    expected = float(mult @ [a + b for a, b in spins])
    grid = CellGrid.cell(cr, spacing=0.1)
    spin = grid.map(lambda p: spin_density(cr, up, down, p))
    print(f"spin: integral {grid.integrate(spin):.6f} μB, monopoles {expected:.6f} μB")
    assert grid.integrate(spin) == pytest.approx(expected, abs=1e-3)
    # the same from two valence-only model densities
    pts = grid.points_slab(0, 2)
    kw = {"core": False, "tail": 1e-12}
    diff = model_density(cr, up, pts, **kw) - model_density(cr, down, pts, **kw)
    np.testing.assert_allclose(spin_density(cr, up, down, pts, tail=1e-12), diff, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("group", ["P 1 21 1", "P 21/c"])
def test_fourier_transform_of_the_density_gives_the_engine_structure_factors(group):
    """FFT of the static valence + multipole density (0.07 Å grid) vs the engine, U = 0, Pc = 0.

    Acentric and centrosymmetric (the engine's real-arithmetic centric path).
    """
    cr = made_up(group)
    rng = np.random.default_rng(4)
    models = neutral_models(cr, rng, kappa=0.9, kappa_prime=0.95, pc=0.0)
    grid = CellGrid.cell(cr, spacing=0.07)
    rho = grid.map(lambda p: model_density(cr, models, p, core=False))
    f_grid = np.fft.ifftn(rho) * cr.volume  # (1/N) Σ ρ exp(+2πi h·x) x V
    r = range(-2, 3)
    hkl = np.array([(h, k, l) for h in r for k in r for l in r])
    f_engine = StructureFactorEngine(cr, models, hkl, anomalous=False).compute().F
    f = f_grid[tuple((hkl % np.array(grid.shape)).T)]
    strong = np.abs(f_engine) > 0.5
    rel = np.abs(f - f_engine)[strong] / np.abs(f_engine[strong])
    print(
        f"FT vs engine: {strong.sum()} reflections |F| > 0.5 e, max relative difference "
        f"{rel.max():.1e}; max |ΔF| over all {np.abs(f - f_engine).max():.1e} e"
    )
    assert rel.max() < 1e-4
    assert np.abs(f - f_engine).max() < 1e-4 * abs(f_engine[np.all(hkl == 0, axis=1)][0])


# --------------------------------------------------------------------------- planes and grids
def test_plane_through_atoms_and_atoms_in_it():
    cr = urea()
    plane = Plane.through_atoms(cr, ["C1", "O1", "N1"], size=(7.0, 6.0), step=0.1)
    assert plane.shape == (71, 61)
    pts = plane.points
    assert pts.shape == (71, 61, 3)
    # the mesh is square with the given step and lies in the plane
    np.testing.assert_allclose(np.linalg.norm(pts[1, 0] - pts[0, 0]), 0.1)
    np.testing.assert_allclose((pts - plane.origin) @ plane.normal, 0.0, atol=1e-12)
    found = plane.atoms(cr, tolerance=0.05)
    # brute force: every operation and lattice shift within ±2 cells, duplicates removed
    brute = []
    for atom in cr.atoms:
        for rot, t in zip(cr.rotations, cr.translations, strict=True):
            for n in np.ndindex(5, 5, 5):
                cart = cr.frac_to_cart(rot @ atom.xyz + t + np.array(n) - 2)
                u, v, h = plane.coordinates(cart)
                inside = abs(u) <= 3.5 and abs(v) <= 3.0 and abs(h) <= 0.05
                if inside and all(np.linalg.norm(cart - b[1]) > 1e-3 for b in brute):
                    brute.append((atom.label, cart))
    assert sorted(a.label for a in found) == sorted(b[0] for b in brute)
    for a in found:
        assert min(np.linalg.norm(a.cart - b[1]) for b in brute) < 1e-9
    # urea is planar: C, O, both N and the four H of the molecule are in the plane
    labels = [a.label for a in found]
    assert labels.count("N1") >= 2 and labels.count("H1") >= 2 and labels.count("H2") >= 2
    c = next(a for a in found if a.label == "C1")
    o = next(a for a in found if a.label == "O1")
    assert np.hypot(o.u - c.u, o.v - c.v) == pytest.approx(np.linalg.norm(o.cart - c.cart))
    assert abs(o.v - c.v) < 1e-9 and o.u > c.u  # e1 runs from atom 0 to atom 1
    # an explicit symmetry copy gives the same plane for a mirror-related N
    other = [a for a in found if a.label == "N1" and (a.op, a.shift) != (0, (0, 0, 0))][0]
    p2 = Plane.through_atoms(cr, ["C1", "O1", ("N1", other.op, other.shift)], size=5.0)
    assert abs(abs(p2.normal @ plane.normal) - 1.0) < 1e-9


def test_plane_from_normal_and_bad_input():
    p = Plane.from_normal((0, 0, 0), (0, 0, 2), (1, 1, 0), size=2.0, step=0.5)
    np.testing.assert_allclose(p.e1, np.array([1, 1, 0]) / np.sqrt(2))
    np.testing.assert_allclose(p.normal, (0, 0, 1), atol=1e-15)
    assert p.shape == (5, 5)
    cr = urea()
    with pytest.raises(InputError, match="collinear"):
        Plane.through_atoms(cr, ["C1", "O1", "C1"])
    with pytest.raises(InputError, match="no atom"):
        Plane.through_atoms(cr, ["C1", "O1", "X9"])
    with pytest.raises(InputError, match="parallel"):
        Plane.from_normal((0, 0, 0), (0, 0, 1), (0, 0, 3))


def test_fourier_map_on_a_plane_matches_its_grid():
    """A plane laid on grid points of an Fc map gives the FFT grid values (exact summation)."""
    cr = Crystal.from_parts(
        (5.0, 6.0, 7.0, 90, 90, 90), "P 21 21 21", [Atom("O1", "O", (0.1, 0.2, 0.3), uiso=0.02)]
    )
    hkl = np.array([(h, k, l) for h in range(0, 4) for k in range(0, 4) for l in range(0, 4)])
    f = StructureFactorEngine(cr, [SphericalAtom("O")], hkl).compute().F
    fmap = fc_map(cr, hkl, f, grid=(20, 24, 28))
    step = 5.0 / 20
    origin = cr.frac_to_cart((0.5, 0.5, 3 / 28))
    plane = Plane(origin, (1, 0, 0), (0, 1, 0), size=(10 * step, 12 * step), step=step)
    values = fourier_on_plane(fmap, plane)
    # plane u runs over grid indices 5..15 (a) and v over 6..18 (b) at k = 3
    np.testing.assert_allclose(
        values, fmap.values[5:16, 6:19, 3], atol=1e-12 * np.abs(values).max()
    )


def test_cell_grid_and_box():
    cr = urea()
    g = CellGrid.cell(cr, shape=(8, 8, 6))
    np.testing.assert_allclose(g.frac[1, 2, 3], (1 / 8, 2 / 8, 3 / 6))
    assert g.voxel_volume * 8 * 8 * 6 == pytest.approx(cr.volume)
    contents = g.atoms()
    mult = sum(cr.multiplicity(i) for i in range(len(cr.atoms)))
    assert len(contents) == mult == 16
    # slab-by-slab evaluation equals one call
    fn = lambda p: np.sin(p[..., 0]) + p[..., 2]  # noqa: E731
    np.testing.assert_allclose(g.map(fn, max_points=100), fn(g.points))
    box = CellGrid.box(cr, ["C1", "O1"], margin=1.0, spacing=0.2)
    assert not box.periodic
    labels = {label for _, label, _ in box.atoms()}
    assert {"C1", "O1"} <= labels
    pts = box.points
    for _, _, cart in box.atoms():
        assert np.all(cart >= pts[0, 0, 0] - 1e-9) and np.all(cart <= pts[-1, -1, -1] + 1e-9)


@pytest.mark.parametrize("name", ["urea", "P21/c"])
def test_symmetric_cell_grid_evaluates_one_point_per_orbit(name):
    """map(symmetric=True) equals the every-point map; only orbit representatives are computed."""
    cr, models = symmetry_case(name)
    grid = CellGrid.cell(cr, shape=(8, 8, 6) if name == "urea" else (6, 8, 10))
    calls = []

    def fn(p):
        calls.append(p.reshape(-1, 3).shape[0])
        return deformation_density(cr, models, p)

    full = grid.map(fn)
    assert sum(calls) == grid.n_points
    calls.clear()
    fast = grid.map(fn, symmetric=True, max_points=50)
    assert np.abs(fast - full).max() <= 1e-12 * np.abs(full).max()
    assert sum(calls) < 0.4 * grid.n_points and max(calls) <= 50
    # the orbits are those of the operations: equal labels <=> images of each other
    orbit = grid.orbits().reshape(grid.shape)
    idx = np.array([1, 2, 3])
    for r, t in zip(cr.rotations, cr.translations, strict=True):
        image = np.rint(((r @ (idx / grid.shape)) + t) * grid.shape).astype(int) % grid.shape
        assert orbit[tuple(image)] == orbit[tuple(idx)]
    assert len(np.unique(orbit)) == np.count_nonzero(orbit.reshape(-1) == np.arange(orbit.size))


def test_threads_give_the_same_map(monkeypatch):
    """Blocks of points are independent: one or several threads give identical values."""
    cr, models = symmetry_case("P21/c")
    pts = cr.frac_to_cart(np.random.default_rng(8).random((24_000, 3)))
    monkeypatch.setenv("CHASM_MAP_THREADS", "1")
    one = deformation_density(cr, models, pts)
    monkeypatch.setenv("CHASM_MAP_THREADS", "3")
    assert np.array_equal(deformation_density(cr, models, pts), one)


def test_symmetric_map_falls_back_on_a_grid_the_operations_break():
    """An odd size along the 2_1 screw: no orbits, every point evaluated."""
    cr, models = symmetry_case("P21/c")
    grid = CellGrid.cell(cr, shape=(4, 5, 6))
    assert grid.orbits() is None
    calls = []
    grid.map(lambda p: calls.append(p.size // 3) or np.zeros(p.shape[:-1]), symmetric=True)
    assert sum(calls) == grid.n_points
    box = CellGrid.box(cr, ["C1"], margin=0.5, spacing=0.5)
    assert box.orbits() is None


def test_bad_input_raises_input_error():
    cr = urea()
    m = [SphericalAtom(a.element) for a in cr.atoms]
    with pytest.raises(InputError, match="density models"):
        model_density(cr, m[:-1], np.zeros(3))
    with pytest.raises(InputError, match=r"\(\.\.\., 3\)"):
        model_density(cr, m, np.zeros((4, 2)))
    with pytest.raises(InputError, match="NaN"):
        model_density(cr, m, np.full(3, np.nan))
    with pytest.raises(InputError, match="cutoff"):
        model_density(cr, m, np.zeros(3), cutoff=-1.0)
    with pytest.raises(InputError, match="weights"):
        model_density(cr, m, np.zeros(3), weights=[1.0])
    bad = HansenCoppensAtom("C", 4.0, lmax=1, plm=[0, 0.1, 0, 0], frame=np.diag([1.0, 2.0, 1.0]))
    with pytest.raises(InputError, match="orthonormal"):
        model_density(cr, [bad] + m[1:], np.zeros(3))
    with pytest.raises(InputError, match="HansenCoppensAtom"):
        model_density(cr, ["C"] + m[1:], np.zeros(3))


def test_explicit_cutoff_and_tail():
    """A larger cut-off or smaller tail changes the map by less than the tail allows."""
    cr = urea()
    rng = np.random.default_rng(2)
    models = neutral_models(cr, rng)
    pts = cr.frac_to_cart(rng.uniform(0, 1, (50, 3)))
    a = deformation_density(cr, models, pts)
    b = deformation_density(cr, models, pts, tail=1e-9)
    c = deformation_density(cr, models, pts, cutoff=12.0)
    assert np.abs(a - b).max() < 1e-5
    assert np.abs(b - c).max() < 1e-8
    assert np.abs(deformation_density(cr, models, pts, cutoff=1.0) - c).max() > 1e-3

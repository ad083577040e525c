"""Electrostatic potential, field, field gradient and dipole moment of the multipole model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import erfc

from chasm.cli import main
from chasm.crystal.structure import Atom, Crystal
from chasm.density.model import HansenCoppensAtom, SphericalAtom
from chasm.errors import InputError
from chasm.examples.urea_model import build_models, example_structure
from chasm.maps.grids import CellGrid
from chasm.topology.density_derivatives import DensityField
from chasm.topology.dipole import dipole_moment, molecule
from chasm.topology.electrostatics import PotentialField, nuclear_field_gradients


@pytest.fixture(scope="module")
def urea():
    cr = example_structure()
    return cr, build_models(cr)[0]


def _points_away(cr, n, dmin=0.5, seed=1):
    rng = np.random.default_rng(seed)
    nuc = np.array([cr.frac_to_cart(a.xyz) for a in cr.atoms])
    out = []
    while len(out) < n:
        x = rng.random(3) @ cr.A.T
        if np.linalg.norm(nuc - x, axis=1).min() > dmin:
            out.append(x)
    return np.array(out)


def test_field_and_gradient_are_derivatives_of_the_potential(urea):
    cr, models = urea
    pot = PotentialField(cr, models)
    x = _points_away(cr, 12)
    v, g, h = pot(x)
    d = 1e-4
    for i in range(3):
        e = np.zeros(3)
        e[i] = d
        vp, gp, _ = pot(x + e)
        vm, gm, _ = pot(x - e)
        assert np.abs((vp - vm) / (2 * d) - g[:, i]).max() < 1e-6 * np.abs(g).max()
        assert np.abs((gp - gm) / (2 * d) - h[:, :, i]).max() < 1e-5 * np.abs(h).max()


def test_poisson_equation_and_ewald_width(urea):
    """∇²φ = 4πρ_e away from the nuclei; the Ewald width changes nothing."""
    cr, models = urea
    x = _points_away(cr, 10, seed=2)
    v, _, h = PotentialField(cr, models, sigma=0.35)(x)
    rho, _, _ = DensityField(cr, models)(x, order=0)
    lap = np.trace(h, axis1=1, axis2=2)
    print("max |lap - 4 pi rho|", np.abs(lap - 4 * np.pi * rho).max())
    assert lap == pytest.approx(4 * np.pi * rho, rel=1e-5, abs=1e-5)
    v2, _, _ = PotentialField(cr, models, sigma=0.5)(x, order=0)
    assert np.abs(v2 - v).max() < 1e-8


def _fft_reference(cr, models, nuclei, h, sn, x):
    """φ at points x from an FFT Poisson solution of the model density sampled on a grid.

    The nuclei are Gaussians of width sn on the grid, corrected to point charges
    by Z erfc(r/√2 sn)/r and the cell average of that correction (2π Z sn²/V).
    """
    g = CellGrid.cell(cr, spacing=h)
    pts = g.points.reshape(-1, 3)
    q = -DensityField(cr, models, eps=1e-8)(pts, order=0)[0]
    inv = np.linalg.inv(cr.A)
    for Z, c in nuclei:
        d = (pts - c) @ inv.T
        d -= np.round(d)
        r2 = np.einsum("ij,ij->i", d @ cr.A.T, d @ cr.A.T)
        q += Z * np.exp(-r2 / (2 * sn * sn)) / ((2 * np.pi) ** 1.5 * sn**3)
    Q = np.fft.fftn(q.reshape(g.shape))
    hk = np.stack(np.meshgrid(*[np.fft.fftfreq(n, 1 / n) for n in g.shape], indexing="ij"), -1)
    k = hk @ (2 * np.pi * inv)
    k2 = (k**2).sum(-1)
    k2[0, 0, 0] = 1.0
    Q[0, 0, 0] = 0.0
    phi_k = 4 * np.pi * Q / k2 / cr.volume * g.voxel_volume
    # φ at arbitrary points: the Fourier series of the grid solution
    frac = x @ inv.T
    phase = np.exp(2j * np.pi * (frac @ hk.reshape(-1, 3).T))
    ref = (phase @ phi_k.reshape(-1)).real
    for Z, c in nuclei:
        d = (x - c) @ inv.T
        for sh in np.stack(np.meshgrid([-1, 0, 1], [-1, 0, 1], [-1, 0, 1]), -1).reshape(-1, 3):
            r = np.linalg.norm((d - np.round(d) + sh) @ cr.A.T, axis=1)
            ref += Z * erfc(r / (np.sqrt(2) * sn)) / r
    return ref - sum(2 * np.pi * Z * sn**2 for Z, _ in nuclei) / cr.volume


@pytest.mark.slow
def test_potential_against_fft_poisson_solution():
    """Against an FFT Poisson solution of the density on a 0.05 Å grid: within 0.1 %."""
    cr = Crystal.from_parts(
        (4.2, 4.4, 4.6, 90, 90, 90),
        "P 1",
        [Atom("N1", "N", (0.3, 0.35, 0.4), uiso=0.0), Atom("H1", "H", (0.55, 0.5, 0.6), uiso=0.0)],
    )
    rng = np.random.default_rng(3)
    models = [
        HansenCoppensAtom("N", 5.2, kappa=0.95, lmax=4, plm=rng.normal(0, 0.1, 25), pc=0.0),
        HansenCoppensAtom("H", 0.9, kappa=1.1, lmax=2, plm=rng.normal(0, 0.1, 9)),
    ]
    nuclei = [(7.0, cr.frac_to_cart(cr.atoms[0].xyz)), (1.0, cr.frac_to_cart(cr.atoms[1].xyz))]
    x = _points_away(cr, 40, dmin=0.5, seed=4)
    ref = _fft_reference(cr, models, nuclei, 0.05, 0.12, x)
    v, _, _ = PotentialField(cr, models)(x, order=0)
    err = np.abs(v - ref).max() / np.abs(v).max()
    print(f"max |phi - phi_FFT| = {np.abs(v - ref).max():.2e} e/A, {err:.1e} of max |phi|")
    assert err < 1e-3


def test_field_gradient_against_differences_of_the_field(urea):
    """EFG at a nucleus = finite differences of the field of every other charge."""
    cr, models = urea
    pot = PotentialField(cr, models, exact=True)
    pot.nucleus_radius = 0.01  # the own nucleus left out within 0.01 Å
    efg = {d["label"]: np.array(d["tensor_e_per_A3"]) for d in nuclear_field_gradients(cr, models)}
    for i in (1, 3):  # O1 and H1
        x0 = np.asarray(cr.frac_to_cart(cr.atoms[i].xyz))
        d = 1e-3
        H = np.zeros((3, 3))
        for j in range(3):
            e = np.zeros(3)
            e[j] = d
            H[:, j] = (pot(x0 + e, 1)[1] - pot(x0 - e, 1)[1]) / (2 * d)
        T = H - np.trace(H) / 3 * np.eye(3)
        lab = cr.atoms[i].label
        print(lab, np.abs(T - efg[lab]).max(), np.abs(efg[lab]).max())
        assert np.abs(T - efg[lab]).max() < 1e-4 * np.abs(efg[lab]).max() + 1e-6


def test_field_gradient_vanishes_on_cubic_sites():
    cr = Crystal.from_parts(
        (5.463, 5.463, 5.463, 90, 90, 90),
        "F m -3 m",
        [Atom("Ca1", "Ca", (0, 0, 0), uiso=0.0), Atom("F1", "F", (0.25, 0.25, 0.25), uiso=0.0)],
    )
    out = nuclear_field_gradients(cr, [SphericalAtom("Ca", "koga"), SphericalAtom("F", "koga")])
    for d in out:
        assert abs(d["Vzz_e_per_A3"]) < 1e-6
        assert np.abs(d["field_e_per_A2"]).max() < 1e-6


def test_molecule_is_whole_and_dipole_follows_symmetry(urea):
    cr, models = urea
    mol = molecule(cr, "O1")
    assert sorted(cr.atoms[i].label for i, _ in mol) == sorted(
        ["O1", "C1", "N1", "N1", "H1", "H1", "H2", "H2"]
    )
    d = dipole_moment(cr, models, "C1", ["O1.Pv", "O1.P10"], np.diag([0.03**2, 0.02**2]))
    assert abs(d["charge_e"]) < 1e-9
    # urea lies on a 2-fold axis along c: its dipole too
    assert np.abs(d["vector_eA"][:2]).max() < 1e-9
    assert d["su_magnitude_eA"] > 0
    with pytest.raises(InputError, match="unknown atom label"):
        molecule(cr, "Q9")


def _gauss_sphere(nr=24, nt=14, nphi=28):
    """Product quadrature (points, weights) of a sphere of 8 Å, panels dense near the centre."""
    edges = [0.0, 0.03, 0.15, 0.5, 1.2, 2.5, 4.5, 8.0]
    t, w = np.polynomial.legendre.leggauss(nr)
    r = np.concatenate(
        [0.5 * (b - a) * (t + 1) + a for a, b in zip(edges[:-1], edges[1:], strict=True)]
    )
    wr = (
        np.concatenate([0.5 * (b - a) * w for a, b in zip(edges[:-1], edges[1:], strict=True)])
        * r**2
    )
    ct, wt = np.polynomial.legendre.leggauss(nt)
    ph = np.arange(nphi) * 2 * np.pi / nphi
    st = np.sqrt(1 - ct**2)
    u = np.stack(
        [np.outer(st, np.cos(ph)), np.outer(st, np.sin(ph)), np.outer(ct, np.ones(nphi))], -1
    ).reshape(-1, 3)
    wu = np.outer(wt, np.full(nphi, 2 * np.pi / nphi)).reshape(-1)
    return (r[:, None, None] * u[None]).reshape(-1, 3), (wr[:, None] * wu[None]).reshape(-1)


def test_dipole_against_a_direct_integral_of_the_density():
    """μ from the populations = Σ Z r − ∫ r ρ d³r, integrated atom by atom (quadrature)."""
    cr = Crystal.from_parts(
        (16.0, 16.0, 16.0, 90, 90, 90),
        "P 1",
        [
            Atom("C1", "C", (0.50, 0.50, 0.50), uiso=0.0),
            Atom("O1", "O", (0.50, 0.50, 0.5756), uiso=0.0),
            Atom("H1", "H", (0.559, 0.50, 0.465), uiso=0.0),
            Atom("H2", "H", (0.441, 0.50, 0.465), uiso=0.0),
        ],
    )
    rng = np.random.default_rng(7)
    rot = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    models = [
        HansenCoppensAtom("C", 3.9, kappa=1.02, lmax=3, plm=rng.normal(0, 0.1, 16), frame=rot),
        HansenCoppensAtom("O", 6.2, kappa=0.98, lmax=3, plm=rng.normal(0, 0.1, 16)),
        HansenCoppensAtom("H", 0.9, kappa=1.15, lmax=1, plm=rng.normal(0, 0.1, 4), frame=rot.T),
        HansenCoppensAtom("H", 0.95, kappa=1.15, lmax=1, plm=rng.normal(0, 0.1, 4)),
    ]
    got = dipole_moment(cr, models, "C1")
    pts, w = _gauss_sphere()
    zs = {"C": 6, "O": 8, "H": 1}
    centres = [np.asarray(cr.frac_to_cart(a.xyz)) for a in cr.atoms]
    ztot = sum(zs[a.element] for a in cr.atoms)
    centre = sum(zs[a.element] * c for a, c in zip(cr.atoms, centres, strict=True)) / ztot
    mu = np.zeros(3)
    for i, (a, c) in enumerate(zip(cr.atoms, centres, strict=True)):
        only = [None] * 4
        only[i] = models[i]
        rho = DensityField(cr, only)(pts + c, order=0)[0]
        n_e = w @ rho
        mu += (zs[a.element] - n_e) * (c - centre) - (w * rho) @ pts
    print("dipole (e A): populations", got["vector_eA"], "integral", mu)
    assert np.asarray(got["vector_eA"]) == pytest.approx(mu, abs=2e-4)
    assert abs(got["charge_e"]) < 0.6


def _result(folder):
    from chasm.io.rhocif import write_rhocif

    cr = example_structure()
    folder.mkdir()
    write_rhocif(folder / "model.cif", cr, build_models(cr)[0], su={"O1.Pv": 0.03})


def test_properties_esp_cli(tmp_path, capsys):
    _result(tmp_path / "res")
    argv = ["properties", str(tmp_path / "res"), "--esp", "--esp-step", "0.4", "--molecule", "O1"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Vzz" in out and "dipole" in out
    data = json.loads((tmp_path / "res" / "properties.json").read_text())["electrostatics"]
    assert {n["label"] for n in data["nuclei"]} == {"C1", "O1", "N1", "H1", "H2"}
    assert data["dipole"]["su_magnitude_D"] > 0
    for name in ("density.cube", "esp.cube", "esp_surface.png"):
        assert (tmp_path / "res" / name).stat().st_size > 0
    assert "hartree/e" in (tmp_path / "res" / "esp.cube").read_text().splitlines()[1]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--esp", "--molecule", "Q9"], "unknown atom label 'Q9'"),
        (["--esp", "--esp-step", "0.001"], "--esp-step must be between"),
        (["--esp", "--esp-step", "0.02"], "points (limit"),
        (["--molecule", "O1"], "--molecule needs --esp"),
    ],
)
def test_properties_esp_bad_input(tmp_path, capsys, extra, message):
    _result(tmp_path / "res")
    assert main(["properties", str(tmp_path / "res"), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("chasm: error:") and message in err


@pytest.mark.parametrize(
    ("plane", "message"),
    [("C1,O1,Q9", "no atom labelled 'Q9'"), ("C1,O1", "a plane needs three atoms")],
)
def test_laplacian_plane_bad_labels(tmp_path, capsys, plane, message):
    _result(tmp_path / "res")
    assert main(["properties", str(tmp_path / "res"), "--laplacian-plane", plane]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--laplacian-plane" in err and message in err

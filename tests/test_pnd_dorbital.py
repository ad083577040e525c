"""d-orbital spin sites (chasm.neutron.dorbital_site), moment outputs, YTiO3 real data.

Independent checks: the form factor of R(r)² Σ P_lm d_lm against a 3-D
quadrature of its Fourier transform (⟨j_l⟩ by 1-D quadrature, not the closed
form); the crystal sum against copies built by rotating the populations
instead of the scattering vector; the P00-only site against the spherical
moment site; the orbital and multipole parameterisations against each other;
every Jacobian column against central finite differences; su of derived
quantities against the su of the same quantity refined as a parameter.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import spherical_jn

from chasm.crystal.structure import Atom, Crystal
from chasm.density.dorbitals import (
    EVEN_INDICES,
    inverse_product_matrix,
    multipoles_from_orbitals,
    orbital_product_matrix,
    orbitals_from_multipoles,
)
from chasm.density.frames import LocalAxes
from chasm.density.harmonics import density_harmonics, rotate_populations
from chasm.density.sitesym import multipole_projector
from chasm.errors import InputError
from chasm.neutron.dorbital_site import (
    DOrbitalSite,
    OrbitalFormFactor,
    dorbital_basis,
    spin_form_factor,
)
from chasm.neutron.flipping import flipping_ratio
from chasm.neutron.magnetic_ff import ion_form_factor
from chasm.neutron.moments import (
    format_moment_report,
    formula_units,
    moment_report,
    refinement_covariance,
)
from chasm.neutron.rcif import read_rcif
from chasm.neutron.structure_factors import site_sums
from chasm.refine.pnd_data import PndData, PndOptions, PndSpinModel, SpinSite
from chasm.refine.refinement import Stage
from test_neutron_flipping import SEARS_1992
from test_pnd_refinement import _check_jacobian, _dataset, _hkl, _refinement, _rotation


class SlaterRadial:
    """R(r) = ζ^(n+3)/(n+2)! r^n e^(−ζr) (∫R r² dr = 1); ⟨j_l⟩ by scipy quadrature."""

    def __init__(self, n: int = 4, zeta: float = 5.0):
        self.n, self.zeta = n, zeta
        self.norm = zeta ** (n + 3) / np.prod(np.arange(1, n + 3, dtype=float))

    def density(self, r):
        return self.norm * r**self.n * np.exp(-self.zeta * r)

    def radial(self, s, kappa=1.0):
        s = np.atleast_1d(np.asarray(s, dtype=float))
        out = []
        for l in (0, 2, 4):
            vals = [
                quad(
                    lambda r, k=4 * np.pi * x / kappa, l=l: (
                        self.density(r) * spherical_jn(l, k * r) * r * r
                    ),
                    0,
                    60 / self.zeta,
                    limit=200,
                    epsabs=1e-13,
                )[0]
                for x in s.ravel()
            ]
            out.append(np.array(vals).reshape(s.shape))
        return tuple(out)


def _random_frame(rng) -> np.ndarray:
    return _rotation(rng)


# ------------------------------------------------------------------ Fourier transform
def test_form_factor_against_3d_quadrature():
    rng = np.random.default_rng(7)
    rad = SlaterRadial(4, 5.0)
    frame = _random_frame(rng)
    pops = rng.normal(size=15) * 0.3
    pops[0] = 1.0
    # quadrature grid: Gauss-Legendre in r (0..10 Å), cos θ and uniform φ
    r, wr = np.polynomial.legendre.leggauss(160)
    r = 5.0 * (r + 1.0)
    wr = 5.0 * wr * r * r * rad.density(r)
    ct, wt = np.polynomial.legendre.leggauss(40)
    phi = 2 * np.pi * np.arange(80) / 80
    st = np.sqrt(1 - ct**2)
    u = np.stack(
        [np.outer(st, np.cos(phi)), np.outer(st, np.sin(phi)), np.outer(ct, np.ones_like(phi))],
        axis=-1,
    ).reshape(-1, 3)
    wu = np.outer(wt, np.full(80, 2 * np.pi / 80)).ravel()
    full = np.zeros(25)
    full[list(EVEN_INDICES)] = pops
    angular = density_harmonics(u @ frame, 4) @ full  # density in the local frame M^T r̂
    for h in (np.array([0.05, 0.0, 0.0]), rng.normal(size=3) * 0.2, rng.normal(size=3) * 0.4):
        phase = np.exp(2j * np.pi * np.outer(r, u @ h))  # (n_r, n_u)
        numeric = np.einsum("r,u,ru->", wr, wu * angular, phase)
        s = 0.5 * np.linalg.norm(h)
        uh = (h / np.linalg.norm(h)) @ frame
        analytic = spin_form_factor(rad.radial(s), uh, pops)
        assert abs(numeric.imag) < 1e-10
        assert numeric.real == pytest.approx(float(analytic[0]), abs=2e-8), h
    # f(0) is the monopole: P00 μB
    assert spin_form_factor(rad.radial(0.0), np.array([0, 0, 1.0]), pops)[0] == pytest.approx(1.0)


def test_orbital_form_factor_against_quadrature_and_tables():
    orb = OrbitalFormFactor.from_databank("Y", "4d")
    s = np.array([0.0, 0.1, 0.3, 0.6])
    j = orb.radial(s)
    o = orb.orbital
    for l, jl in zip((0, 2, 4), j, strict=True):
        for x, value in zip(s, jl, strict=True):
            ref = quad(
                lambda r, k=4 * np.pi * x, l=l: o.radial(r) ** 2 * spherical_jn(l, k * r) * r * r,
                0,
                40,
                limit=400,
                epsabs=1e-13,
            )[0]
            assert value == pytest.approx(ref, abs=1e-9)
    # P. J. Brown's fits of the same Y 4d integrals (periodictable), to the fit accuracy
    table = ion_form_factor("Y0+").radial(s)
    for ours, theirs in zip(j, table, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=6e-3)
    # derivatives of the dipole form factor
    f, d = orb.dipole(s[1:], 0.3, 1.1)
    for key, args in (("s", (s[1:] + 1e-6, s[1:] - 1e-6)),):
        fd = (orb.dipole(args[0], 0.3, 1.1)[0] - orb.dipole(args[1], 0.3, 1.1)[0]) / 2e-6
        np.testing.assert_allclose(d[key], fd, atol=1e-7)
    fd = (orb.dipole(s[1:], 0.3, 1.1 + 1e-6)[0] - orb.dipole(s[1:], 0.3, 1.1 - 1e-6)[0]) / 2e-6
    np.testing.assert_allclose(d["kappa"], fd, atol=1e-7)
    p_orb = OrbitalFormFactor.from_databank("O", "2p", -1)
    assert np.all(np.isnan(p_orb.radial(s)[2]))  # no closed-form <j4> for a p orbital
    with pytest.raises(InputError, match="lacks"):
        DOrbitalSite("O1", p_orb)


# ------------------------------------------------------------------ crystal sum
def _orthorhombic() -> Crystal:
    """P n m a with a d ion on -1 (4b), a ligand on m (4c), anisotropic ADPs."""
    atoms = [
        Atom(
            "M1",
            "Fe",
            (0.0, 0.0, 0.5),
            u_aniso=np.array([0.006, 0.008, 0.005, 0.001, -0.0005, 0.0007]),
        ),
        Atom("O1", "O", (0.457, 0.25, 0.1213), uiso=0.007),
        Atom("O2", "O", (0.1905, 0.9424, 0.1901), uiso=0.008),
    ]
    return Crystal.from_parts((5.69, 7.60, 5.32, 90, 90, 90), "P n m a", atoms)


def _monoclinic_noncentro() -> Crystal:
    """P 1 21 1: complex F_N and F_M; the d ion on a general position."""
    atoms = [
        Atom(
            "M1",
            "Fe",
            (0.11, 0.23, 0.37),
            u_aniso=np.array([0.01, 0.012, 0.008, 0.001, 0.002, -0.001]),
        ),
        Atom("O1", "O", (0.31, 0.28, 0.52), uiso=0.009),
        Atom("O2", "O", (0.02, 0.41, 0.18), uiso=0.008),
    ]
    return Crystal.from_parts((5.1, 6.3, 7.2, 90, 104.0, 90), "P 1 21 1", atoms)


def _trigonal() -> Crystal:
    """P 31: three-fold screw axes, R ≠ Rᵀ (catches a transposed rotation)."""
    atoms = [
        Atom(
            "M1",
            "Fe",
            (0.13, 0.31, 0.07),
            u_aniso=np.array([0.01, 0.009, 0.012, 0.004, 0.001, -0.002]),
        ),
        Atom("O1", "O", (0.42, 0.12, 0.33), uiso=0.009),
        Atom("O2", "O", (0.71, 0.52, 0.61), uiso=0.008),
    ]
    return Crystal.from_parts((5.5, 5.5, 7.1, 90, 90, 120), "P 31", atoms)


@pytest.mark.parametrize("make", [_orthorhombic, _trigonal])
def test_crystal_sum_against_rotated_populations(make):
    crystal = make()
    rng = np.random.default_rng(3)
    frame = _random_frame(rng)
    site = DOrbitalSite("M1", ion_form_factor("Fe3+"), axes=frame)
    layout = site.resolve(crystal, 0)
    q = rng.normal(size=len(layout.names))
    hkl = _present_nuclear(crystal, _hkl(2))
    got = dorbital_basis(crystal, hkl, layout, site.table, 1.0, 2.5) @ q
    # independent: each copy keeps the frame M and carries rotated populations
    p_even = layout.to_multipoles @ q
    full = np.zeros(25)
    full[list(EVEN_INDICES)] = p_even
    hc = hkl @ crystal.B.T
    s = 0.5 * np.linalg.norm(hc, axis=1)
    radial = site.table.radial(s)
    terms, weight = site_sums(crystal, hkl, 0)
    want = np.zeros(len(hkl), dtype=complex)
    for o, rc in enumerate(crystal.cartesian_rotations()):
        local = frame.T @ rc @ frame
        p_copy = rotate_populations(full, local, 4)[list(EVEN_INDICES)]
        f = spin_form_factor(radial, (hc / (2 * s)[:, None]) @ frame, p_copy)
        want += terms[:, o] * f
    np.testing.assert_allclose(got, 2.5 * weight * want, atol=1e-12 * np.max(np.abs(want)))


def _present_nuclear(crystal, hkl):
    b = [9.45, 5.803, 5.803]
    from chasm.neutron.structure_factors import nuclear_structure_factors

    return np.asarray(hkl)[np.abs(nuclear_structure_factors(crystal, hkl, b)) > 1e-6]


def test_site_symmetry_allowed_populations_and_pivots():
    crystal = _orthorhombic()
    # O1 on the mirror y = 1/4 with an unaligned frame: populations are coupled
    frame = _random_frame(np.random.default_rng(8))
    table = ion_form_factor("Fe3+")
    for par in ("multipole", "orbital"):
        layout = DOrbitalSite("O1", table, axes=frame, parameterisation=par).resolve(crystal, 1)
        assert len(layout.names) == 9  # l = 0: 1, l = 2: 3, l = 4: 5 under m
        rc = crystal.cartesian_rotations()[crystal.site_symmetry(1)]
        proj = multipole_projector(rc, frame, 4)[np.ix_(EVEN_INDICES, EVEN_INDICES)]
        np.testing.assert_allclose(proj @ layout.to_multipoles, layout.to_multipoles, atol=1e-10)
        np.testing.assert_allclose(
            inverse_product_matrix() @ layout.to_multipoles, layout.to_orbitals, atol=1e-10
        )
    # aligned frame on -1: all 15 populations free, unit columns
    layout = DOrbitalSite("M1", table).resolve(crystal, 0)
    np.testing.assert_array_equal(layout.to_multipoles, np.eye(15))
    assert layout.names[:3] == ["M1.P00", "M1.P20", "M1.P21+"]


# ------------------------------------------------------------------ models
def _spin(crystal, sites):
    return PndSpinModel(crystal, [9.45, 5.803, 5.803], sites)


def test_monopole_only_is_the_spherical_moment_site():
    crystal = _monoclinic_noncentro()
    table = ion_form_factor("Fe3+")
    ub = _rotation(np.random.default_rng(4)) @ crystal.B
    dorb = _spin(crystal, [DOrbitalSite("M1", table, moment=1.7, kappa=0.95)])
    sph = _spin(crystal, [SpinSite("M1", table, moment=1.7, kappa=0.95)])
    hkl = _present_nuclear(crystal, _hkl(2))
    raw = _dataset("x", hkl, ub)
    a, b = PndData("x", raw, dorb), PndData("x", raw, sph)
    ref_a, ref_b = _refinement(dorb, [a]), _refinement(sph, [b])
    np.testing.assert_allclose(
        a.ratios(ref_a.params.values), b.ratios(ref_b.params.values), rtol=1e-12
    )
    assert np.ptp(a.ratios(ref_a.params.values)) > 0.05


def test_orbital_and_multipole_parameterisations_agree():
    crystal = _monoclinic_noncentro()
    table = ion_form_factor("Fe3+")
    rng = np.random.default_rng(5)
    axes = LocalAxes("O1", "Z", "M1", "O2", "X")
    p_orb = np.abs(rng.normal(size=15)) * 0.2
    p_orb[:5] = [0.1, 0.6, 0.3, 0.05, 0.45]
    p_mult = orbital_product_matrix() @ p_orb
    # both ways to 1e-10 through dorbitals.py
    np.testing.assert_allclose(inverse_product_matrix() @ p_mult, p_orb, atol=1e-10)
    full = multipoles_from_orbitals(p_orb)
    np.testing.assert_allclose(orbitals_from_multipoles(full), p_orb, atol=1e-10)
    assert p_mult[0] == pytest.approx(np.sum(p_orb[:5]), abs=1e-12)  # trace = moment
    mult_names = DOrbitalSite("M1", table, axes=axes).resolve(crystal, 0).names
    orb_names = (
        DOrbitalSite("M1", table, axes=axes, parameterisation="orbital").resolve(crystal, 0).names
    )
    start_m = {n.split(".", 1)[1]: v for n, v in zip(mult_names, p_mult, strict=True)}
    start_o = {n.split(".", 1)[1]: v for n, v in zip(orb_names, p_orb, strict=True)}
    assert "d_x2-y2" in start_o and "d_z2/xz" in start_o and "P44-" in start_m
    m_site = DOrbitalSite("M1", table, axes=axes, populations=start_m)
    o_site = DOrbitalSite("M1", table, axes=axes, parameterisation="orbital", populations=start_o)
    spin_m, spin_o = _spin(crystal, [m_site]), _spin(crystal, [o_site])
    ub = _rotation(rng) @ crystal.B
    raw = _dataset("x", _present_nuclear(crystal, _hkl(2)), ub)
    a, b = PndData("x", raw, spin_m), PndData("x", raw, spin_o)
    ra = a.ratios(_refinement(spin_m, [a]).params.values)
    rb = b.ratios(_refinement(spin_o, [b]).params.values)
    np.testing.assert_allclose(ra, rb, rtol=1e-10)
    assert np.ptp(ra) > 0.05
    # the frame matters: the same populations in the crystal axes give other ratios
    other = _spin(crystal, [DOrbitalSite("M1", table, populations=start_m)])
    c = PndData("x", raw, other)
    assert np.max(np.abs(c.ratios(_refinement(other, [c]).params.values) - ra)) > 1e-3


@pytest.mark.parametrize("par", ["multipole", "orbital"])
def test_jacobian_by_finite_differences(par):
    crystal = _monoclinic_noncentro()
    rng = np.random.default_rng(9)
    start = {
        "multipole": {"P20": 0.2, "P22-": -0.15, "P40": 0.1, "P43+": 0.07},
        "orbital": {"d_xy": 0.6, "d_xz/yz": 0.2, "d_z2": 0.3},
    }[par]
    sites = [
        DOrbitalSite(
            "M1",
            ion_form_factor("Fe3+"),
            moment=1.2,
            axes=LocalAxes("O1", "Z", "M1", "O2", "X"),
            parameterisation=par,
            populations=start,
            kappa=1.04,
        ),
        SpinSite("O1", OrbitalFormFactor.from_databank("O", "2p", -1), moment=0.05),
    ]
    spin = _spin(crystal, sites)
    ub = _rotation(rng) @ crystal.B
    data = PndData(
        "sim",
        _dataset("sim", _present_nuclear(crystal, _hkl(2)), ub),
        spin,
        PndOptions(refine_polarisation=True),
    )
    assert np.ptp(data.f_n.imag) > 1.0
    ref = _refinement(spin, [data])
    names = spin.parameter_names + ["sim.extinction_radius", "sim.mosaicity", "sim.polarisation"]
    assert len(spin.parameter_names) == 16
    _check_jacobian(ref, data, names)


def test_systematic_absence_gives_ratio_one():
    f_n = np.array([1e-16 + 0j, 3.0 + 0j])
    f_m = np.array([[1e-16, 0, 0], [0.5, 0.1, 0]], dtype=complex)
    ratio, d = flipping_ratio(f_n, f_m, np.array([1.0, 0, 0]), -0.9, 0.95, derivatives=True)
    assert ratio[0] == 1.0 and ratio[1] != 1.0
    for value in d.values():
        assert np.all(np.asarray(value)[0] == 0.0)


def test_errors():
    crystal = _orthorhombic()
    table = ion_form_factor("Fe3+")
    with pytest.raises(InputError, match="parameterisation"):
        DOrbitalSite("M1", table, parameterisation="spherical")
    with pytest.raises(InputError, match="not a\\s+parameter"):
        DOrbitalSite("M1", table, populations={"P31+": 0.1}).resolve(crystal, 0)
    with pytest.raises(InputError, match="orthogonal"):
        DOrbitalSite("M1", table, axes=np.ones((3, 3))).resolve(crystal, 0)
    with pytest.raises(InputError, match="not an atom"):
        LocalAxes("Q9", "Z", "M1", "O2", "X").matrix(crystal, 0)
    with pytest.raises(InputError, match="κ"):
        DOrbitalSite("M1", table, kappa=0.0)


# ------------------------------------------------------------------ moments and su
def test_moment_report_su_matches_direct_parameters():
    """su of P00 (orbital fit, trace) = su of P00 refined directly, and the reverse."""
    crystal = _orthorhombic()
    rng = np.random.default_rng(12)
    table = ion_form_factor("Fe3+")
    frame = _random_frame(rng)
    truth = np.zeros(15)
    truth[:5] = [0.05, 0.5, 0.4, 0.02, 0.3]
    truth[9] = 0.2
    p_mult = orbital_product_matrix() @ truth
    lab = DOrbitalSite("M1", table, axes=frame).resolve(crystal, 0)
    sim_spin = _spin(
        crystal,
        [
            DOrbitalSite(
                "M1",
                table,
                axes=frame,
                populations={n.split(".", 1)[1]: v for n, v in zip(lab.names, p_mult, strict=True)},
            ),
            SpinSite("O1", OrbitalFormFactor.from_databank("O", "2p", -1), moment=0.03),
        ],
    )
    hkl = _present_nuclear(crystal, _hkl(3))
    hkl = hkl[0.5 * np.linalg.norm(hkl @ crystal.B.T, axis=1) < 0.55]
    ubs = [_rotation(rng) @ crystal.B for _ in range(3)]
    obs = []
    for k, ub in enumerate(ubs):
        d = PndData(f"s{k}", _dataset(f"s{k}", hkl, ub), sim_spin, PndOptions(extinction=False))
        r = d.ratios(_refinement(sim_spin, [d]).params.values)
        sig = 0.002 + 0.01 * np.abs(r - 1)
        obs.append((ub, r + sig * rng.normal(size=len(r)), sig))

    def fit(par):
        sites = [
            DOrbitalSite("M1", table, moment=1.0, axes=frame, parameterisation=par),
            SpinSite("O1", OrbitalFormFactor.from_databank("O", "2p", -1), moment=0.0),
        ]
        spin = _spin(crystal, sites)
        sets = [
            PndData(f"s{k}", _dataset(f"s{k}", hkl, ub, r, s), spin, PndOptions(extinction=False))
            for k, (ub, r, s) in enumerate(obs)
        ]
        ref = _refinement(spin, sets)
        out = ref.run_stage(
            Stage(
                "spin",
                free=["M1.P*" if par == "multipole" else "M1.d_*", "O1.moment"],
                max_cycles=30,
            )
        )
        assert out.result.converged
        cov, note = refinement_covariance(ref, spin.parameter_names)
        assert note == ""
        values = {n: ref.params[n].value for n in spin.parameter_names}
        return ref, spin, moment_report(spin, values, cov)

    ref_m, spin_m, rep_m = fit("multipole")
    ref_o, spin_o, rep_o = fit("orbital")
    p00 = ref_m.params["M1.P00"]
    assert rep_o.sites[0].value == pytest.approx(p00.value, rel=1e-6)
    assert rep_o.sites[0].su == pytest.approx(p00.su, rel=1e-4)
    pops_direct = np.array([ref_o.params[n].value for n in spin_o.layouts["M1"].names])
    su_direct = np.array([ref_o.params[n].su for n in spin_o.layouts["M1"].names])
    np.testing.assert_allclose(rep_m.orbitals[0].values, pops_direct, atol=1e-6)
    np.testing.assert_allclose(rep_m.orbitals[0].su, su_direct, rtol=1e-4)
    # the fit recovers the truth within 4 su
    assert np.all(np.abs(pops_direct - truth) < 4 * su_direct + 1e-9)
    # sums: Z = 4 (mult 4, 4, 8); per formula unit = M1 + O1 + 2 O2 (O2 carries none)
    assert formula_units(crystal) == 4
    m1, o1 = rep_o.sites[0].value, rep_o.sites[1].value
    assert rep_o.per_formula_unit[0] == pytest.approx(m1 + o1)
    # asymmetric unit: M1 and O1 on mirror planes (site group 2) count half each
    assert [len(crystal.site_symmetry(crystal.atom_index(x))) for x in ("M1", "O1")] == [2, 2]
    assert rep_o.asymmetric_unit[0] == pytest.approx((m1 + o1) / 2)
    assert rep_o.cell[0] == pytest.approx(4 * (m1 + o1))
    cov, _ = refinement_covariance(ref_o, spin_o.parameter_names)
    a = np.zeros(len(spin_o.parameter_names))
    a[:5] = 1.0
    a[-1] = 1.0
    assert rep_o.per_formula_unit[1] == pytest.approx(np.sqrt(a @ cov @ a), rel=1e-10)
    text = format_moment_report(rep_o)
    assert "per formula unit (Z = 4)" in text and "x2-y2" in text and "M1" in text


# ------------------------------------------------------------------ YTiO3
def _ytio3_fit(pnd, sites, free, extinction: bool):
    spin = PndSpinModel.from_rcif(pnd.crystal(), b_overrides=SEARS_1992, sites=sites)
    opts = PndOptions(extinction=True, radius=50.0, mosaicity=1000.0) if extinction else None
    sets = [PndData(d.name, d, spin, opts) for d in pnd.datasets]
    ref = _refinement(spin, sets)
    free = free + (["*.extinction_radius"] if extinction else [])
    out = ref.run_stage(Stage("spin", free=free, max_cycles=60))
    assert out.result.converged
    agree = ref.agreement()
    n = sum(a["n_obs"] for a in agree.values())
    assert n == 266
    return ref, spin, sum(a["chi2"] for a in agree.values()) / n


def test_ytio3_dorbital_model(shared_data):
    pnd = read_rcif(shared_data / "pnd" / "ytio3" / "ytio3.rcif")
    ti = ion_form_factor("Ti3+")
    o_ff = OrbitalFormFactor.from_databank("O", "2p", -1)
    y_ff = OrbitalFormFactor.from_databank("Y", "4d")
    axes = LocalAxes("O1", "Z", "Ti", "O2", "X")

    def aspherical():
        return {
            "Ti": DOrbitalSite("Ti", ti, moment=0.5, axes=axes, parameterisation="orbital"),
            "O1": SpinSite("O1", o_ff, moment=0.0),
            "O2": SpinSite("O2", o_ff, moment=0.0),
            "Y": SpinSite("Y", y_ff, moment=0.0),
        }

    ligands = ["O1.moment", "O2.moment", "Y.moment"]
    results = {}
    for ext in (False, True):
        sph = _ytio3_fit(pnd, {"Ti": SpinSite("Ti", ti, moment=0.5)}, ["Ti.moment"], ext)
        asp = _ytio3_fit(pnd, aspherical(), ["Ti.d_*"] + ligands, ext)
        results[ext] = (sph[2], asp[2])
        assert asp[2] < sph[2] / 2.5, (ext, sph[2], asp[2])
    # the target (χ² down by 5) is met once extinction is refined in both models
    assert results[True][1] < results[True][0] / 5
    ref, spin, _ = asp
    cov, _ = refinement_covariance(ref, spin.parameter_names)
    rep = moment_report(spin, {n: ref.params[n].value for n in spin.parameter_names}, cov)
    ti_row = rep.sites[0]
    assert ti_row.label == "Ti" and 0.4 < ti_row.value < 0.9 and 0 < ti_row.su < 0.1
    orb = rep.orbitals[0]
    # one dominant t2g natural orbital (xz, yz, xy) carrying most of the spin
    assert orb.natural[0] > 0.5 and orb.natural[0] > 3 * abs(orb.natural[1])
    lead = orb.natural_orbitals[:, 0]
    assert np.sum(lead[[1, 2, 4]] ** 2) > 0.85
    assert rep.z == 4

"""λ/2 contamination and polarised protons in flipping ratios (issue 4, item 3).

* Off (α = 0, no proton polarisation) nothing changes, bit for bit, and no
  reflection 2h or H view is computed.
* Every Jacobian column the new terms touch against central finite
  differences: the derivatives of :func:`chasm.neutron.flipping.flipping_ratio`
  (amplitudes of h and 2h, F_Hpol, P, e, extinction, α), and the full
  Jacobians of :class:`FlippingData` (every structural column, H positions,
  neutron ADPs and occupancies with polarised protons, extinction,
  ``NAME.lambda_half``, P, the magnetisation scale) and of :class:`PndData`.
* Independent routes: R written out here from explicit sums over atoms and
  symmetry operations (F_N(h), F_N(2h), F_Hpol, F_M for a moment along the
  field) and the collinear intensities
  I± = ½(1 ± P')|F_N + A|² + ½(1 ∓ P')|F_N − A|² + q(1 − q)|F_M|²,
  A = q F_M + F_Hpol, P' = P or P(2e − 1), mixed as ΣI+/ΣI−.
* P_H = tanh(μ_p B / k_B T) with CODATA k_B; bad inputs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from scipy import constants

from chasm.crystal.structure import Atom, Crystal
from chasm.density.model import HansenCoppensAtom
from chasm.errors import InputError
from chasm.neutron.extinction import SphereExtinction
from chasm.neutron.flipping import (
    PROTON_MOMENT,
    PROTON_SPIN_AMPLITUDE,
    HalfWavelength,
    flipping_ratio,
    proton_polarisation,
)
from chasm.neutron.magnetic_ff import ion_form_factor
from chasm.neutron.rcif import RcifTwin
from chasm.neutron.structure_factors import nuclear_structure_factors
from chasm.refine.flipping_data import FlippingData
from chasm.refine.pnd_data import PndData, PndOptions, PndSpinModel, SpinSite
from chasm.refine.refinement import Refinement
from engine_helpers import random_u_cif
from test_joint_model import HKL, _models, pnd_dataset
from test_pnd_refinement import _dataset, _hkl, _present, _refinement, _rotation

B_H = -3.739  # fm, coherent length of H


# ------------------------------------------------------------------ structures
def _joint_crystal(rng) -> Crystal:
    """P 1 21 1 (complex F) with split Cu and N, O and two H (H1 isotropic, H2 anisotropic)."""
    atoms = [
        Atom("Cu1", "Cu", [0.11, 0.23, 0.31], uiso=0.01),
        Atom("N1", "N", [0.27, 0.18, 0.42], uiso=0.01),
        Atom("O1", "O", [0.05, 0.36, 0.22], uiso=0.01),
        Atom("H1", "H", [0.33, 0.12, 0.47], uiso=0.02),
        Atom("H2", "H", [0.41, 0.29, 0.13], uiso=0.025),
    ]
    cr = Crystal.from_parts([7.1, 8.3, 6.9, 90, 101.5, 90], "P 1 21 1", atoms, wavelength=0.71)
    for a in (cr.atoms[0], cr.atoms[1], cr.atoms[2], cr.atoms[4]):
        a.u_aniso = random_u_cif(cr, rng, 0.015)
    cr.dispersion = {"Cu": (0.32, 1.27)}
    return cr


def _joint(options: PndOptions, seed: int = 5, twins=(), **kw):
    """(refinement, FlippingData) of the joint test structure with ``options`` (and ``twins``)."""
    rng = np.random.default_rng(seed)
    cr = _joint_crystal(rng)
    split, _ = _models(rng)
    models = split + [HansenCoppensAtom("H", pv=0.95, kappa=1.15, lmax=0)]
    block = dataclasses.replace(pnd_dataset("p", HKL), twins=list(twins))
    data = FlippingData("p", block, cr, options, **kw)
    ref = Refinement(cr, models, [data], basis="chargespin")
    ref.set_values(ref.params.values)
    return ref, data


def _spin_with_h() -> PndSpinModel:
    """P 1 21 1 (complex F): an Fe moment along the field, O, H1 (Uiso), H2 (Uij)."""
    atoms = [
        Atom("Fe1", "Fe", (0.11, 0.23, 0.37), uiso=0.006),
        Atom("O1", "O", (0.82, 0.41, 0.64), uiso=0.009),
        Atom("H1", "H", (0.61, 0.05, 0.19), uiso=0.02, occupancy=0.9),
        Atom(
            "H2",
            "H",
            (0.33, 0.71, 0.82),
            u_aniso=np.array([0.02, 0.025, 0.018, 0.003, 0.004, -0.002]),
        ),
    ]
    cryst = Crystal.from_parts((5.1, 6.3, 7.2, 90, 104.0, 90), "P 1 21 1", atoms)
    sites = [SpinSite("Fe1", ion_form_factor("Fe3+"), c2=0.1, moment=1.3)]
    return PndSpinModel(cryst, [9.45, 5.803, B_H, B_H], sites)


def _pnd(options: PndOptions, limit: int = 2):
    """(refinement, PndData) of :func:`_spin_with_h` with ``options``."""
    spin = _spin_with_h()
    ub = _rotation(np.random.default_rng(3)) @ spin.crystal.B
    data = PndData("s", _dataset("s", _present(spin, _hkl(limit)), ub), spin, options)
    return _refinement(spin, [data]), data


# ------------------------------------------------------------------ finite differences
def _fd_columns(ref: Refinement, data, names: list[str]) -> dict[str, float]:
    """Max |FD − J| / max(|FD|, |J|) per column (central differences); asserts < 1e-6.

    A column whose difference is within the rounding of the difference passes
    (e.g. charge populations, which flipping ratios do not see: J = 0 exactly).
    """
    p0 = ref.params.values.copy()
    ref.set_values(p0)
    ev = data.evaluate(p0)
    J, y0 = ev.jacobian, ev.y_calc
    out = {}
    for name in names:
        k = ref.params.index(name)
        h = (1e-6 if name.split(".")[1] in ("x", "y", "z") else 1e-5) * max(1.0, abs(p0[k]))
        pp, pm = p0.copy(), p0.copy()
        pp[k] += h
        pm[k] -= h
        ref.set_values(pp)
        yp = data.evaluate(pp).y_calc
        ref.set_values(pm)
        ym = data.evaluate(pm).y_calc
        fd = (yp - ym) / (2 * h)
        scale = max(np.max(np.abs(fd)), np.max(np.abs(J[:, k])))
        bad = np.max(np.abs(fd - J[:, k]))
        noise = 1e-12 * np.max(np.abs(y0)) / h  # rounding of the difference
        err = bad / scale if scale > 0 else 0.0
        assert err < 1e-6 or bad < noise, (name, err, bad, noise)
        out[name] = err if scale > 1e3 * noise else 0.0  # 0: no signal above rounding
    ref.set_values(p0)
    return out


# ------------------------------------------------------------------ off = today
def test_off_is_bit_identical_and_computes_nothing_more():
    explicit_off = dict(lambda_half=0.0, hydrogen_polarisation=False, temperature=1.5)
    for make in (_joint, _pnd):
        ref0, d0 = make(PndOptions(refine_polarisation=True))
        ref1, d1 = make(PndOptions(refine_polarisation=True, **explicit_off))
        assert ref0.params.names == ref1.params.names
        p = ref0.params.values
        e0, e1 = d0.evaluate(p), d1.evaluate(p)
        assert np.array_equal(e0.y_calc, e1.y_calc)
        assert np.array_equal(e0.jacobian, e1.jacobian)
        assert not d1.half_on and d1.p_h is None
    # FlippingData: one engine per view on the n reflections, no H view
    ref, d = _joint(PndOptions(**explicit_off))
    d.ratios(ref.params.values)
    ((nuc, mag, mask),) = d._engines.values()
    assert len(nuc.stol) == len(mag.stol) == mask.sum() == len(HKL)
    assert d._hpol_view is None
    # P_H = 0 given explicitly counts as off
    _, d = _joint(PndOptions(hydrogen_polarisation=0.0))
    assert d.p_h is None
    # the function: α = 0 with 2h given changes nothing either
    rng = np.random.default_rng(1)
    n = 9
    f_n = rng.normal(size=n) * 10 + 1j * rng.normal(size=n)
    f_m = rng.normal(size=(n, 3)) + 1j * rng.normal(size=(n, 3)) * 0.3
    e = np.array([0.3, 0.5, 0.81])
    e /= np.linalg.norm(e)
    half = HalfWavelength(f_n[::-1] * 0.5, f_m[::-1], None, None)
    r0, d0 = flipping_ratio(f_n, f_m, e, -0.9, 0.95, None, derivatives=True)
    r1, d1 = flipping_ratio(
        f_n, f_m, e, -0.9, 0.95, None, derivatives=True, half=half, lambda_half=0.0
    )
    assert np.array_equal(r0, r1)
    for key, value in d0.items():
        assert np.array_equal(value, d1[key]), key
    assert np.any(d1["lambda_half"] != 0)
    with pytest.raises(ValueError, match="half"):
        flipping_ratio(f_n, f_m, e, -0.9, lambda_half=0.1)


# ------------------------------------------------------------------ function derivatives
def test_flipping_ratio_derivatives_with_both_effects():
    rng = np.random.default_rng(7)
    n = 10
    e = np.array([0.2, -0.4, 0.89])
    e /= np.linalg.norm(e)

    def cplx(*shape, s=1.0):
        return s * (rng.normal(size=shape) + 1j * rng.normal(size=shape))

    base = {
        "f_n": cplx(n, s=20.0),
        "f_m_perp": cplx(n, 3, s=6.0),
        "f_hpol": cplx(n, s=4.0),
        "half_f_n": cplx(n, s=12.0),
        "half_f_m_perp": cplx(n, 3, s=3.0),
        "half_f_hpol": cplx(n, s=3.0),
        "pol": -0.87,
        "eff": 0.91,
        "radius": 60.0,
        "mosaicity": 800.0,
        "alpha": 0.3,
    }
    stol = np.linspace(0.08, 0.5, n)

    def ratio(v, derivatives=False):
        ext = SphereExtinction.from_stol("gauss", v["mosaicity"], v["radius"], 1.2, 900.0, stol)
        ext2 = SphereExtinction.from_stol(
            "gauss", v["mosaicity"], v["radius"], 0.6, 900.0, 2 * stol
        )
        np.testing.assert_allclose(ext2.cos2theta, ext.cos2theta, rtol=0, atol=1e-15)
        half = HalfWavelength(v["half_f_n"], v["half_f_m_perp"], ext2, v["half_f_hpol"])
        return flipping_ratio(
            v["f_n"], v["f_m_perp"], e, v["pol"], v["eff"], ext, derivatives,
            f_hpol=v["f_hpol"], half=half, lambda_half=v["alpha"],
        )  # fmt: skip

    r, d = ratio(base, True)
    worst = 0.0

    def check(analytic, key, delta, step):
        nonlocal worst
        plus, minus = dict(base), dict(base)
        plus[key] = base[key] + delta
        minus[key] = base[key] - delta
        fd = (ratio(plus) - ratio(minus)) / (2 * step)
        rel = np.max(np.abs(fd - analytic)) / np.max(np.abs(fd))
        worst = max(worst, rel)
        assert rel < 1e-6, (key, rel)

    s = 1e-4
    for tag in ("", "half_"):
        for amp in ("f_n", "f_hpol"):
            check(d[f"{tag}{amp}_real"], tag + amp, s, s)
            check(d[f"{tag}{amp}_imag"], tag + amp, 1j * s, s)
        for k in range(3):
            unit = np.zeros(3)
            unit[k] = s
            check(d[f"{tag}f_m_perp_real"][:, k], f"{tag}f_m_perp", unit, s)
            check(d[f"{tag}f_m_perp_imag"][:, k], f"{tag}f_m_perp", 1j * unit, s)
    check(d["polarisation"], "pol", 1e-6, 1e-6)
    check(d["efficiency"], "eff", 1e-6, 1e-6)
    check(d["radius"], "radius", 1e-4, 1e-4)
    check(d["mosaicity"], "mosaicity", 1e-3, 1e-3)
    check(d["lambda_half"], "alpha", 1e-6, 1e-6)
    assert worst < 1e-6


# ------------------------------------------------------------------ FlippingData Jacobian
@pytest.mark.parametrize("effects", ["half", "hydrogen", "both"])
def test_flipping_data_jacobian_by_finite_differences(effects):
    opts = PndOptions(refine_polarisation=True, refine_lambda_half=effects != "hydrogen")
    if effects != "hydrogen":
        opts.lambda_half = 0.35
    if effects != "half":
        opts.hydrogen_polarisation = 0.6  # large, so that the H channel is tested
    ref, data = _joint(opts, magnetisation_scale=True)
    assert data.extinction_on
    if data.half_on:  # 2h at λ/2: the θ of h, the wavelength halved
        mask = data.active()
        ext = data.sphere_extinction(150.0, 40.0, data.volume, mask)
        ext2 = data.sphere_extinction(150.0, 40.0, data.volume, mask, half=True)
        assert ext2.wavelength == 0.5 * ext.wavelength == 0.42
        np.testing.assert_allclose(ext2.cos2theta, ext.cos2theta, rtol=0, atol=1e-15)
        f_sq = np.full(mask.sum(), 400.0)
        assert np.all(ext2(f_sq)[0] > ext(f_sq)[0])  # less extinction at λ/2
    names = ref.params.names
    errs = _fd_columns(ref, data, names)
    assert max(errs.values()) < 1e-6
    ev = data.evaluate(ref.params.values)
    col = {n: k for k, n in enumerate(names)}
    for n in ("H1.x", "H1.Uiso.N", "H2.U12.N", "H1.occ", "p.extinction_radius", "p.mosaicity"):
        assert np.any(ev.jacobian[:, col[n]] != 0), n
    if effects != "hydrogen":
        assert np.max(np.abs(ev.jacobian[:, col["p.lambda_half"]])) > 1e-3
    if effects != "half":  # the H columns are not those without polarised protons
        f_h, _ = data.hydrogen_structure_factors()
        assert np.ptp(f_h.imag) > 0.1  # complex: the imaginary channel is tested too
        opts_off = PndOptions(
            refine_polarisation=True,
            refine_lambda_half=opts.refine_lambda_half,
            lambda_half=opts.lambda_half,
        )
        ref_off, off = _joint(opts_off, magnetisation_scale=True)
        j_off = off.evaluate(ref_off.params.values).jacobian
        for n in ("H1.x", "H2.z", "H1.Uiso.N", "H2.U11.N"):
            diff = np.max(np.abs(ev.jacobian[:, col[n]] - j_off[:, col[n]]))
            assert diff > 1e-3 * np.max(np.abs(j_off[:, col[n]])), n


def test_flipping_data_unpolarised_lambda_half_by_finite_differences():
    """cryspy's λ/2 model in the joint route: every column, and R differs from the polarised."""
    opts = PndOptions(
        refine_polarisation=True,
        refine_lambda_half=True,
        lambda_half=0.35,
        lambda_half_model="unpolarised",
        hydrogen_polarisation=0.6,
    )
    ref, data = _joint(opts, magnetisation_scale=True)
    assert data.half_unpolarised
    cols = [n for n in ref.params.names if n.startswith("p.")] + ["H1.x", "H2.U12.N", "H1.occ"]
    errs = _fd_columns(ref, data, cols)
    assert max(errs.values()) < 1e-6
    opts.lambda_half_model = "polarised"
    ref_pol, pol = _joint(opts, magnetisation_scale=True)
    r_unpol = data.ratios(ref.params.values)
    r_pol = pol.ratios(ref_pol.params.values)
    assert np.max(np.abs(r_unpol / r_pol - 1)) > 1e-3


def test_flipping_data_twin_domains_by_finite_differences():
    """The joint route computes twin domains (h' = M h) through the one data-set core: every
    column (structure, P, α, the fraction) by finite differences with λ/2 and polarised
    protons; twins = False leaves the domain out and changes R."""
    twin = RcifTwin(np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]), 0.3)
    kw = dict(
        refine_polarisation=True, refine_lambda_half=True, lambda_half=0.2,
        hydrogen_polarisation=0.6,
    )  # fmt: skip
    ref, data = _joint(PndOptions(**kw), twins=[twin], magnetisation_scale=True)
    assert list(data.sets) == ["", "half_", "twin1_", "twin1_half_"]
    errs = _fd_columns(ref, data, ref.params.names)
    assert max(errs.values()) < 1e-6
    assert errs["p.twin1"] > 0 and errs["Cu1.x"] > 0  # columns with signal
    ref1, one = _joint(PndOptions(**kw, twins=False), twins=[twin], magnetisation_scale=True)
    assert "p.twin1" not in ref1.params.names and list(one.sets) == ["", "half_"]
    r_two, r_one = data.ratios(ref.params.values), one.ratios(ref1.params.values)
    assert np.max(np.abs(r_two / r_one - 1)) > 1e-3
    bad = RcifTwin(np.array([[0.5, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 2.0]]), 0.1)
    with pytest.raises(InputError, match="twin1_ has indices that are not integers"):
        _joint(PndOptions(), twins=[bad])


def test_flipping_data_polarised_protons_from_temperature():
    """P_H from T and |B| (5 T, 1.2 K) reaches the data set; the 2h rows of F_Hpol too."""
    ref, data = _joint(PndOptions(hydrogen_polarisation=True, temperature=1.2, lambda_half=0.1))
    expected = np.tanh(PROTON_MOMENT * 5.0 / (constants.k * 1.2))
    assert data.p_h == pytest.approx(expected, rel=1e-14)
    f_h, _ = data.hydrogen_structure_factors()
    assert f_h.shape == (2 * len(HKL),)
    _fd_columns(ref, data, ["H1.x", "H2.y", "H1.Uiso.N", "H2.U23.N", "H2.occ"])


# ------------------------------------------------------------------ PndData Jacobian
def test_pnd_data_jacobian_by_finite_differences():
    opts = PndOptions(
        refine_polarisation=True, refine_lambda_half=True, lambda_half=0.3,
        hydrogen_polarisation=0.5,
    )  # fmt: skip
    ref, data = _pnd(opts)
    assert data.extinction_on and np.ptp(data.f_hpol.imag) > 0.1
    private = ["s.extinction_radius", "s.mosaicity", "s.polarisation", "s.lambda_half"]
    assert ref.params.names[ref.n_struct :] == ["Fe1.moment", *private]
    errs = _fd_columns(ref, data, ["Fe1.moment", *private])
    assert max(errs.values()) < 1e-6
    ev = data.evaluate(ref.params.values)
    np.testing.assert_array_equal(ev.jacobian[:, : ref.n_struct], 0.0)  # structure fixed


# ------------------------------------------------------------------ brute force
def _brute_sum(crystal: Crystal, hkl: np.ndarray, lengths: dict[int, float]) -> np.ndarray:
    """Σ_j b_j occ_j Σ_(R,t) exp(2πi h·(R x_j + t)) T_j(Rᵀh), general positions only."""
    B = crystal.B
    n_star = np.diag(np.linalg.norm(B, axis=0))
    out = np.zeros(len(hkl), dtype=complex)
    for j, b in lengths.items():
        a = crystal.atoms[j]
        for rot, t in zip(crystal.rotations, crystal.translations, strict=True):
            x = rot @ a.xyz + t
            for r, h in enumerate(np.asarray(hkl, dtype=float)):
                hr = rot.T @ h
                if a.u_aniso is None:
                    s2 = 0.25 * np.sum((B @ h) ** 2)
                    dw = np.exp(-8 * np.pi**2 * a.uiso * s2)
                else:
                    u = a.u_aniso
                    ucif = np.array([[u[0], u[3], u[4]], [u[3], u[1], u[5]], [u[4], u[5], u[2]]])
                    dw = np.exp(-2 * np.pi**2 * hr @ n_star @ ucif @ n_star @ hr)
                out[r] += b * a.occupancy * dw * np.exp(2j * np.pi * (h @ x))
    return out


def _collinear_intensities(f_n, f_m, f_h, q, pol, eff):
    """I± for F_M ∥ ê: non-spin-flip |F_N ± A|², A = q F_M + F_Hpol; spin flip q(1 − q)|F_M|²."""
    a = q * f_m + f_h
    nsf_p, nsf_m = np.abs(f_n + a) ** 2, np.abs(f_n - a) ** 2
    sf = q * (1 - q) * np.abs(f_m) ** 2
    p_d = pol * (2 * eff - 1)
    i_plus = 0.5 * (1 + pol) * nsf_p + 0.5 * (1 - pol) * nsf_m + sf
    i_minus = 0.5 * (1 - p_d) * nsf_p + 0.5 * (1 + p_d) * nsf_m + sf
    return i_plus, i_minus


def test_pnd_data_against_brute_force():
    alpha, p_h = 0.27, 0.4
    ref, data = _pnd(PndOptions(extinction=False, lambda_half=alpha, hydrogen_polarisation=p_h))
    spin = data.spin
    cr = spin.crystal
    assert all(len(cr.site_symmetry(i)) == 1 for i in range(len(cr.atoms)))  # general positions
    hkl = np.asarray(data.hkl, dtype=float)
    hc = hkl @ cr.B.T
    q = 1.0 - (hc @ data.e / np.linalg.norm(hc, axis=1)) ** 2
    site = spin.sites[0]
    lengths = dict(enumerate(spin.b))
    hyd = dict.fromkeys((2, 3), PROTON_SPIN_AMPLITUDE * p_h)
    ratio_num = ratio_den = 0.0
    for h, weight in ((hkl, 1.0), (2 * hkl, alpha)):
        stol = 0.5 * np.linalg.norm(h @ cr.B.T, axis=1)
        f_n = _brute_sum(cr, h, lengths)
        f_h = _brute_sum(cr, h, hyd)
        f_m = spin.p * 1.3 * site.form_factor(stol) * _brute_sum(cr, h, {0: 1.0})
        i_p, i_m = _collinear_intensities(f_n, f_m, f_h, q, data.polarisation, data.efficiency)
        ratio_num = ratio_num + weight * i_p
        ratio_den = ratio_den + weight * i_m
    brute = ratio_num / ratio_den
    calc = data.ratios(ref.params.values)
    dev = np.max(np.abs(calc / brute - 1))
    assert dev < 1e-10, dev
    # and the effects matter at this size
    plain = _pnd(PndOptions(extinction=False))[1].ratios(ref.params.values)
    assert np.max(np.abs(plain - calc)) > 1e-3


def test_flipping_data_against_independent_structure_factors():
    """F_N(h), F_N(2h) by chasm.neutron (separate code), F_Hpol by brute force, F_spin(2h)
    from the magnetic view on 2h alone; R from the collinear intensities."""
    alpha, p_h = 0.3, 0.5
    ref, data = _joint(PndOptions(extinction=False, lambda_half=alpha, hydrogen_polarisation=p_h))
    calc = data.ratios(ref.params.values)
    sm = ref.structure
    cr = sm.crystal
    neutron = cr.__class__(
        cr.name, cr.cell, cr.spacegroup, [], rotations=cr.rotations, translations=cr.translations
    )
    for a, (u6, uiso) in zip(cr.atoms, sm.adp["N"], strict=True):
        neutron.atoms.append(
            Atom(a.label, a.element, a.xyz.copy(), a.occupancy, uiso,
                 None if u6 is None else u6.copy())
        )  # fmt: skip
    assert all(len(cr.site_symmetry(i)) == 1 for i in range(len(cr.atoms)))
    hkl = np.asarray(data.hkl, dtype=float)
    hc = hkl @ cr.B.T
    q = 1.0 - (hc @ data.e / np.linalg.norm(hc, axis=1)) ** 2
    mag = sm.view("magnetic")
    num = den = 0.0
    for h, weight in ((hkl, 1.0), (2 * hkl, alpha)):
        f_n = nuclear_structure_factors(neutron, h, sm._b)
        f_h = _brute_sum(neutron, h, dict.fromkeys((3, 4), PROTON_SPIN_AMPLITUDE * p_h))
        f_m = data.p * mag.compute(mag.engine(h))[0]
        i_p, i_m = _collinear_intensities(f_n, f_m, f_h, q, data.polarisation, data.efficiency)
        num = num + weight * i_p
        den = den + weight * i_m
    dev = np.max(np.abs(calc / (num / den) - 1))
    assert dev < 1e-10, dev


# ------------------------------------------------------------------ P_H
def test_proton_polarisation_formula():
    # by hand: μ_p B / k_B T = 1.41061e-26 × 5 / (1.380649e-23 × 2) = 2.554250e-3,
    # tanh x = x − x³/3 = 2.554245e-3
    p = proton_polarisation(5.0, 2.0)
    assert p == pytest.approx(2.554245e-3, rel=1e-6)
    assert p == np.tanh(1.41061e-26 * 5.0 / (constants.k * 2.0))
    assert constants.k == 1.380649e-23  # CODATA (exact since 2019)
    assert proton_polarisation(-5.0, 2.0) == p  # |B|
    assert PROTON_SPIN_AMPLITUDE * p == pytest.approx(0.03719, abs=1e-5)  # fm per H
    assert proton_polarisation(30.0, 0.001) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError):
        proton_polarisation(5.0, 0.0)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "options, pattern",
    [
        (dict(lambda_half=-0.1), r"dataset 's'.*lambda_half.*>= 0"),
        (dict(lambda_half=float("nan")), r"dataset 's'.*lambda_half"),
        (dict(hydrogen_polarisation=True), r"dataset 's'.*temperature.*given None"),
        (dict(hydrogen_polarisation=True, temperature=0.0), r"dataset 's'.*temperature"),
        (dict(hydrogen_polarisation=True, temperature=-3.0), r"dataset 's'.*temperature"),
        (dict(hydrogen_polarisation=1.5), r"dataset 's'.*hydrogen_polarisation = 1.5"),
    ],
)
def test_bad_options(options, pattern):
    with pytest.raises(InputError, match=pattern):
        _pnd(PndOptions(**options))
    with pytest.raises(InputError, match=pattern.replace("'s'", "'p'")):
        _joint(PndOptions(**options))


def test_polarised_protons_without_hydrogen():
    spin = _spin_with_h()
    no_h = PndSpinModel(
        Crystal.from_parts((5.1, 6.3, 7.2, 90, 104.0, 90), "P 1 21 1", spin.crystal.atoms[:2]),
        spin.b[:2],
        spin.sites,
    )
    ub = _rotation(np.random.default_rng(3)) @ no_h.crystal.B
    ds = _dataset("s", _present(no_h, _hkl(1)), ub)
    with pytest.raises(InputError, match=r"dataset 's'.*hydrogen_polarisation.*no H atom"):
        PndData("s", ds, no_h, PndOptions(hydrogen_polarisation=True, temperature=2.0))
    PndData("s", ds, no_h, PndOptions(temperature=2.0))  # a temperature alone is fine


# ------------------------------------------------------------------ project file and simulation
def _pnd_project(tmp_path, extra: str) -> Path:
    """The simulate test's Cu fragment with its pnd data set only (no noise), ``extra`` keys."""
    from test_simulate_project import PROJECT, _write_case

    head, rest = PROJECT.split("[[datasets]]", 1)
    pnd = "[[datasets]]" + rest.split("[[datasets]]")[2].split("[constraints]")[0]
    pnd = pnd.replace('extinction = "off"\n', f'extinction = "off"\n{extra}\n')
    pnd = pnd.replace("count = 60\n", "count = 60\nnoise = false\n")
    text = head + pnd + '[[stages]]\nname = "spin"\nfree = ["*.Pv.spin"]\n'
    return _write_case(tmp_path, text)


def test_project_keys_reach_the_data_set_and_the_simulation(tmp_path):
    from chasm.project.build import build
    from chasm.project.project import load_project
    from chasm.simulate.project import simulate_project

    keys = (
        "lambda_half = 0.2\nrefine_lambda_half = true\n"
        "hydrogen_polarisation = true\ntemperature = 1.5"
    )
    on = _pnd_project(tmp_path / "on", keys)
    sim_on = simulate_project(on, echo=None).sets[0]  # writes fr.rcif
    built = build(load_project(on))
    (data,) = built.refinement.datasets
    assert data.half_on and data.lambda_half == 0.2
    assert data.p_h == pytest.approx(np.tanh(PROTON_MOMENT * 5.0 / (constants.k * 1.5)))
    assert built.refinement.params["pnd.lambda_half"].value == 0.2
    off = _pnd_project(tmp_path / "off", "")
    sim_off = simulate_project(off, echo=None).sets[0]
    r_on = dict(zip(map(tuple, sim_on.hkl.tolist()), sim_on.calc, strict=True))
    r_off = dict(zip(map(tuple, sim_off.hkl.tolist()), sim_off.calc, strict=True))
    common = sorted(set(r_on) & set(r_off))
    assert len(common) > 20
    diff = max(abs(r_on[h] - r_off[h]) for h in common)
    assert diff > 1e-3  # the effects are in the simulated ratios


@pytest.mark.parametrize(
    "extra, pattern",
    [
        ("lambda_half = -0.5", r"line \d+: datasets\[0\]\.lambda_half: must be >= 0"),
        ("hydrogen_polarisation = true", r"datasets\[0\].*'pnd'.*temperature > 0 K"),
        (
            "hydrogen_polarisation = true\ntemperature = 0",
            r"datasets\[0\]\.temperature: must be > 0",
        ),
        ("hydrogen_polarisation = 2", r"datasets\[0\]\.hydrogen_polarisation: must be .*got 2\.0"),
    ],
)
def test_project_bad_values_name_the_data_set_and_key(tmp_path, extra, pattern):
    from chasm.simulate.project import simulate_project

    with pytest.raises(InputError, match=pattern):  # the schema or the data-set build
        project = _pnd_project(tmp_path, extra)
        simulate_project(project, echo=None)  # builds the data sets as chasm refine does

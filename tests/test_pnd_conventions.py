"""Conventions as a choice and the two λ/2 models (issue 17, item 3).

With ``conventions = "cryspy"`` (its Sears scattering lengths, its ⟨j0⟩/⟨j2⟩
coefficients, p = 2.695 fm/μB; :mod:`chasm.neutron.conventions`) chasm's
flipping ratios of the rcif files in ``pnd/`` equal cryspy's (cryspy 0.18:
``cryspy.load_file(path).get_dictionary()`` and
``procedure_rhochi.rhochi_by_dictionary.rhochi_calc_chi_sq_by_dictionary``,
R = I+/I− read from its ``dict_in_out``), to 1e-6 relative. With chasm's own
constants they do not (by 1e-3 or more), which the conventions exist to say.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from chasm.errors import InputError
from chasm.neutron import read_rcif
from chasm.neutron.conventions import CONVENTIONS, conventions
from chasm.neutron.magnetic_ff import ion_form_factor
from chasm.neutron.structure_factors import P_FM
from chasm.refine.pnd_data import PndData, PndOptions, PndSpinModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_project_joint import _variant, joint_case  # noqa: E402, F401  (fixture)

RTOL = 1e-6


def cryspy_ratios(path, edit=None) -> dict[str, np.ndarray]:
    """cryspy's R = I+/I− of every reflection of each flipping-ratio block of a file."""
    cryspy = pytest.importorskip("cryspy")
    from cryspy.procedure_rhochi.rhochi_by_dictionary import rhochi_calc_chi_sq_by_dictionary

    dictionary = cryspy.load_file(str(path)).get_dictionary()
    if edit is not None:
        edit(dictionary)
    dict_in_out: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 0/0 at systematic absences
        rhochi_calc_chi_sq_by_dictionary(dictionary, dict_in_out=dict_in_out)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            key.removeprefix("diffrn_").lower(): block["iint_plus"] / block["iint_minus"]
            for key, block in dict_in_out.items()
            if key.startswith("diffrn_")
        }


def chasm_ratios(path, name: str = "cryspy", options=None) -> dict[str, np.ndarray]:
    """chasm's ratios of the file's own model under the named conventions."""
    pnd = read_rcif(path)
    c = conventions(name)
    spin = PndSpinModel.from_rcif(
        pnd.crystal(), b_overrides=c.b_overrides, form_factors=c.form_factors, p=c.p
    )
    out = {}
    for raw in pnd.datasets:
        data = PndData(raw.name, raw, spin, options)
        names = spin.parameter_names + data.parameter_names()
        values = {**spin.values, **data.initial_values()}
        data.bind(None, None, names, 0)
        assert len(data.r_obs) == len(raw.hkl)
        out[raw.name.lower()] = data.ratios(np.array([values[n] for n in names]))
    return out


FILES = ["ytio3/ytio3.rcif", "ho2ti2o7/ho2ti2o7.rcif"]


@pytest.mark.parametrize("file", FILES)
def test_cryspy_conventions_give_cryspy_ratios(shared_data, file):
    path = shared_data / "pnd" / file
    theirs = cryspy_ratios(path)
    ours = chasm_ratios(path, "cryspy")
    assert sorted(ours) == sorted(theirs)
    worst_own = 0.0
    own = chasm_ratios(path, "chasm")
    for key, r_c in theirs.items():
        ok = np.isfinite(r_c)  # cryspy's 0/0 at absences of P n m a
        assert ok.sum() > 0.9 * len(r_c) and np.ptp(r_c[ok]) > 0.3
        np.testing.assert_allclose(ours[key][ok], r_c[ok], rtol=RTOL, atol=0, err_msg=key)
        worst_own = max(worst_own, float(np.max(np.abs(own[key][ok] / r_c[ok] - 1))))
    assert worst_own > 1e-3  # chasm's own constants differ visibly: the note is needed


def test_conventions_tables():
    cry = conventions("cryspy")
    assert conventions() == conventions("chasm")
    assert conventions("chasm").p == P_FM and cry.p == 2.695
    # Sears (1992) values (Neutron News 3, 26): Ti −3.438, Ho 8.01, O 5.803 fm
    assert cry.b_overrides["Ti"] == -3.438 and cry.b_overrides["Ho"] == 8.01
    assert cry.b_overrides["O"] == 5.803
    # cryspy's ⟨j0⟩ is periodictable's; its ⟨j2⟩ is rounded differently (< 5.1e-4)
    for ion in ("Ho3+", "Mn2+", "Ti3+", "Cu2+", "U4+"):
        a, b = cry.form_factor(ion), ion_form_factor(ion)
        np.testing.assert_allclose(a.j0, b.j0, atol=1e-12)
        np.testing.assert_allclose(a.j2, b.j2, atol=5.1e-4)
    assert cry.form_factor("Ho+3").j0 == cry.form_factor("Ho3+").j0
    with pytest.raises(InputError, match="not one of chasm, cryspy"):
        conventions("fullprof")
    assert CONVENTIONS == ("chasm", "cryspy")


def test_cryspy_table_is_cryspy_s_own():
    pytest.importorskip("cryspy")
    from cryspy.A_functions_base.function_1_scat_length_neutron import get_scat_length_neutron
    from cryspy.A_functions_base.magnetic_form_factor import get_j0_j2_parameters

    cry = conventions("cryspy")
    for element in ("Ti", "Ho", "Mn", "F", "Y", "O", "Gd", "Cu"):
        assert cry.b_overrides[element] == pytest.approx(10 * get_scat_length_neutron(element))
    ions = np.array(["Ho3+", "Mn2+", "Ti3+", "Yb3+", "Fe3+"])
    j0, j2 = get_j0_j2_parameters(ions)
    for i, ion in enumerate(ions):
        np.testing.assert_array_equal(cry.form_factor(str(ion)).j0, j0[:, i])
        np.testing.assert_array_equal(cry.form_factor(str(ion)).j2, j2[:, i])


# ------------------------------------------------------------------ λ/2 models
ALPHA = 0.12


def _set_lambda_half(dictionary) -> None:
    for key, block in dictionary.items():
        if key.startswith("diffrn_"):
            block["c_lambda2"] = np.array([ALPHA])
            block["flags_c_lambda2"] = np.array([False])


@pytest.mark.parametrize("file", FILES)
def test_unpolarised_lambda_half_equals_cryspy(shared_data, file):
    """cryspy's _setup_ratio_lambdaover2 = 0.12 on the file (extinction on for Ho2Ti2O7)."""
    path = shared_data / "pnd" / file
    theirs = cryspy_ratios(path, _set_lambda_half)
    plain = cryspy_ratios(path)
    unpol = chasm_ratios(
        path, options=PndOptions(lambda_half=ALPHA, lambda_half_model="unpolarised")
    )
    pol = chasm_ratios(path, options=PndOptions(lambda_half=ALPHA))
    moved = polarised_gap = 0.0
    for key, r_c in theirs.items():
        ok = np.isfinite(r_c) & np.isfinite(plain[key])
        np.testing.assert_allclose(unpol[key][ok], r_c[ok], rtol=RTOL, atol=0, err_msg=key)
        moved = max(moved, float(np.max(np.abs(r_c[ok] / plain[key][ok] - 1))))
        polarised_gap = max(polarised_gap, float(np.max(np.abs(pol[key][ok] / r_c[ok] - 1))))
    assert moved > 1e-3  # the λ/2 term is visible in cryspy's ratios
    assert polarised_gap > 1e-3  # and the two models differ


def _fd_case(shared_data, model: str, refine_polarisation: bool = True):
    pnd = read_rcif(shared_data / "pnd" / "ho2ti2o7" / "ho2ti2o7.rcif")
    spin = PndSpinModel.from_rcif(pnd.crystal())
    raw = pnd.datasets[0]
    options = PndOptions(
        lambda_half=ALPHA,
        refine_lambda_half=True,
        lambda_half_model=model,
        refine_polarisation=refine_polarisation,
    )
    data = PndData(raw.name, raw, spin, options)
    names = spin.parameter_names + data.parameter_names()
    values = {**spin.values, **data.initial_values()}
    data.bind(None, None, names, 0)
    return data, names, np.array([values[n] for n in names])


@pytest.mark.parametrize("model", ["polarised", "unpolarised"])
def test_lambda_half_jacobian_by_finite_differences(shared_data, model):
    """Every column (χ11, χ12, radius, mosaicity, P, α) of both λ/2 models."""
    data, names, p = _fd_case(shared_data, model)
    assert {"Ho2Ti2O7.lambda_half", "Ho2Ti2O7.polarisation"} <= set(names)
    _, ratio, jac = data.calculate(p, jacobian=True)
    for k, name in enumerate(names):
        step = 1e-6 * max(abs(p[k]), 1e-3)
        hi, lo = p.copy(), p.copy()
        hi[k] += step
        lo[k] -= step
        fd = (data.calculate(hi, False)[1] - data.calculate(lo, False)[1]) / (2 * step)
        scale = np.max(np.abs(fd)) + 1e-12
        assert scale > 1e-8, name  # every column has a signal
        np.testing.assert_allclose(jac[:, k], fd, rtol=0, atol=2e-6 * scale, err_msg=name)


def test_unpolarised_lambda_half_dilutes_the_contrast(shared_data):
    """The same I(2h) in both channels: R − 1 keeps its sign and shrinks; bad model name."""
    data, names, p = _fd_case(shared_data, "unpolarised")
    i_a = names.index("Ho2Ti2O7.lambda_half")
    q = p.copy()
    q[i_a] = 0.0
    r0 = data.calculate(q, False)[1]
    r1 = data.calculate(p, False)[1]
    # R = (I+ + αI2)/(I− + αI2) with I2 ≥ 0 the same in both channels
    assert np.all(np.sign(r1 - 1) == np.sign(r0 - 1))
    assert np.all(np.abs(r1 - 1) <= np.abs(r0 - 1) + 1e-15)
    with pytest.raises(InputError, match="lambda_half_model = 'both'"):
        PndData("x", data.dataset, data.spin, PndOptions(lambda_half_model="both"))


# ------------------------------------------------------------------ project keys
def test_project_keys_conventions_and_lambda_half_model(joint_case, tmp_path):  # noqa: F811
    from chasm.project.build import build
    from chasm.project.project import load_project

    default = build(load_project(joint_case / "project.toml"))
    assert any("model.conventions = 'cryspy'" in n for n in default.notes)
    p = _variant(
        joint_case, tmp_path, 'basis = "chargespin"', 'basis = "chargespin"\nconventions = "cryspy"'
    )
    text = p.read_text().replace(
        'extinction = "off"',
        'extinction = "off"\nlambda_half = 0.1\nlambda_half_model = "unpolarised"',
    )
    p.write_text(text)
    built = build(load_project(p))
    assert not any("conventions" in n for n in built.notes)
    pnd = [d for d in built.refinement.datasets if d.kind == "pnd"]
    assert pnd and all(d.p == 2.695 and d.half_unpolarised for d in pnd)
    sears = conventions("cryspy").b_overrides
    for atom, b in zip(built.crystal.atoms, built.refinement.structure._b, strict=True):
        assert b == sears[atom.element].real, atom.label
    assert default.refinement.structure._b != built.refinement.structure._b
    p.write_text(text.replace('conventions = "cryspy"', 'conventions = "fullprof"'))
    with pytest.raises(InputError) as exc:
        load_project(p)
    assert "model.conventions" in str(exc.value) and "cryspy" in str(exc.value)
    assert p.read_text().splitlines()[exc.value.line - 1].startswith("conventions")


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("name", ["chasm", "cryspy"])
def test_ion_without_magnetic_form_factor_names_file_and_line(shared_data, tmp_path, name):
    text = (shared_data / "pnd" / "ytio3" / "ytio3.rcif").read_text()
    row = "  Ti   Ti3+   2.0   1.0"
    lines = text.splitlines()
    line = lines.index(row) + 1
    path = tmp_path / "bad.rcif"
    path.write_text(text.replace(row, "  Ti   Ba2+   2.0   1.0"))
    c = conventions(name)
    with pytest.raises(InputError) as exc:
        PndSpinModel.from_rcif(
            read_rcif(path).crystal(),
            b_overrides=c.b_overrides,
            form_factors=c.form_factors,
            p=c.p,
        )
    assert exc.value.path == str(path) or str(exc.value.path) == str(path)
    assert exc.value.line == line
    assert "no magnetic form factor for 'Ba2+'" in exc.value.message
    assert "\n" not in str(exc.value)


def test_mnf2_ordered_moments_match_cryspy_without_its_twin(shared_data):
    """MnF₂ main.rcif (ordered Mn and F moments, extinction): cryspy conventions give cryspy's
    ratios once cryspy's twin domain (``_jana_twin``, fraction 0.124) is removed, which chasm's
    rcif reader does not read yet; with the twin they are up to 5 % apart."""
    from chasm.neutron.model import PndModel, calculate

    path = shared_data / "pnd" / "mnf2" / "main.rcif"

    def no_twin(dictionary):
        block = dictionary["diffrn_exp1"]
        for key in [k for k in block if "twin" in k]:
            del block[key]

    theirs = cryspy_ratios(path, no_twin)["exp1"]
    with_twin = cryspy_ratios(path)["exp1"]
    pnd = read_rcif(path)
    c = conventions("cryspy")
    model = PndModel.from_rcif(pnd.crystal(), c.b_overrides, c.form_factors)
    ours = calculate(model, pnd.datasets[0], p=c.p).ratio
    assert len(ours) == 189 and np.ptp(theirs) > 1.0
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=0)
    assert np.max(np.abs(ours / with_twin - 1)) > 1e-2  # the twin matters


class _Radial:
    """A radial ⟨j0⟩(s) in the place of a tabulated dipole form factor (C2 and κ inside)."""

    def __init__(self, fn):
        self.fn = fn

    def dipole(self, s, c2, kappa=1.0):
        return self.fn(np.atleast_1d(np.asarray(s, dtype=float))), {}


@pytest.mark.slow  # 7 s: cryspy's multipole route
def test_mnf2_multipole_prior_cross_code(shared_data):
    """cryspy's spin-multipole model of MnF₂ (Mn 3d κ = 1.011313, F 2p κ = 1.2376, P00 = 1,
    m(Mn) = 5.275 μB): with cryspy's own orbital ⟨j0⟩ chasm's ratios are cryspy's (2e-13);
    with chasm's databank orbitals (Koga Mn⁺ 3d, F⁻ 2p) they differ by up to 17 % (median
    7e-4), the F 2p ⟨j0⟩ of the two tables differing most (0.56 against 0.49 at 0.3 Å⁻¹)."""
    pytest.importorskip("cryspy")
    import cryspy
    from cryspy.A_functions_base.orbital_functions import calc_jl

    from chasm.density.databank import spherical_atom
    from chasm.neutron.model import PndModel, calculate

    path = shared_data / "pnd" / "mnf2" / "MnF2_multipole_prior.rcif"
    crystal = cryspy.load_file(str(path)).get_dictionary()["crystal_mnf2"]
    ns, zs, cs = crystal["atom_rho_multipole_n_zeta_coeff"]
    kappa = dict(
        zip(crystal["atom_rho_multipole_label"], crystal["atom_rho_multipole_kappa"], strict=True)
    )
    assert kappa == {"Mn": 1.011313, "F": 1.2376}

    def theirs_j0(i):
        return _Radial(
            lambda s: calc_jl(s, cs[i], ns[i], zs[i], kappa=kappa[("Mn", "F")[i]], l_max=0)[:, 0]
        )

    def databank_j0(symbol, charge, orbital):
        atom = spherical_atom(symbol, charge, valence=[orbital])
        return _Radial(lambda s: atom.valence(s / kappa[symbol]))

    def no_twin(dictionary):
        block = dictionary["diffrn_exp1"]
        for key in [k for k in block if "twin" in k]:
            del block[key]

    reference = cryspy_ratios(path, no_twin)["exp1"]
    pnd = read_rcif(path)
    c = conventions("cryspy")

    def ours(tables, result=False):
        model = PndModel.from_rcif(pnd.crystal(), {**c.b_overrides, "Dummy": 0.0}, c.form_factors)
        labels = [a.label for a in model.crystal.atoms]
        for site in model.sites:
            site.table = tables[labels[site.index]]
        out = calculate(model, pnd.datasets[0], p=c.p)
        return out if result else out.ratio

    same = ours({"Mn": theirs_j0(0), "F": theirs_j0(1)})
    np.testing.assert_allclose(same, reference, rtol=RTOL, atol=0)
    # the magnetic structure factors themselves: |F_M⊥| (frame- and phase-convention free;
    # cryspy's are in 10⁻¹² cm and are the complex conjugates of chasm's)
    from cryspy.procedure_rhochi.rhochi_by_dictionary import rhochi_calc_chi_sq_by_dictionary

    dictionary = cryspy.load_file(str(path)).get_dictionary()
    no_twin(dictionary)
    dict_in_out: dict = {}
    rhochi_calc_chi_sq_by_dictionary(dictionary, dict_in_out=dict_in_out)
    f_theirs = 10.0 * np.sqrt(np.sum(np.abs(dict_in_out["diffrn_exp1"]["f_m_perp"]) ** 2, axis=0))
    f_ours = np.linalg.norm(ours({"Mn": theirs_j0(0), "F": theirs_j0(1)}, True).f_m_perp, axis=1)
    big = f_theirs > 1e-6 * f_theirs.max()
    assert big.sum() > 150 and f_theirs.max() > 10.0  # fm
    np.testing.assert_allclose(f_ours[big], f_theirs[big], rtol=1e-10, atol=0)
    own = ours({"Mn": databank_j0("Mn", 1, "3d"), "F": databank_j0("F", -1, "2p")})
    gap = np.abs(own / reference - 1)
    assert 0.1 < gap.max() < 0.25 and np.median(gap) < 2e-3

"""Nuclear and magnetic neutron structure factors (chasm.neutron.structure_factors)."""

from __future__ import annotations

import numpy as np
import pytest

from chasm.crystal.adp import (
    matrix_to_u6,
    u6_to_matrix,
    ucif_to_ucart,
    ucif_to_ustar,
    ustar_to_ucif,
)
from chasm.crystal.structure import Atom, Crystal
from chasm.neutron.magnetic_ff import IonFormFactor, ion_form_factor
from chasm.neutron.model import PndModel, constrain_site_tensor
from chasm.neutron.rcif import read_rcif
from chasm.neutron.structure_factors import (
    CRYSPY_P,
    P_FM,
    magnetic_structure_factors,
    nuclear_structure_factors,
    susceptibility_structure_tensor,
)

#: Sears, Neutron News 3(3) (1992) 26: the bound coherent lengths cryspy uses (fm).
SEARS_1992 = {"Ho": 8.01, "Ti": -3.438, "O": 5.803}

# cryspy tests/basic_operations (redo_test_flip_ratio.py): F_N of Ho2Ti2O7 in 10⁻¹² cm
CRYSPY_HKL = [
    [0, 0, 8],
    [2, 0, 6],
    [2, 0, 10],
    [4, -4, 0],
    [6, -6, 0],
    [1, -1, 1],
    [3, -1, 1],
    [1, -1, 5],
    [1, -1, 7],
    [3, -3, 7],
    [5, -5, 5],
    [6, -6, 6],
]
CRYSPY_FN = [
    25.32575171,
    6.46451557,
    -14.39094569,
    29.95022452,
    14.91614642,
    -7.17462107,
    -4.62228025,
    -15.79750462,
    -15.15393358,
    -28.19373094,
    -25.10815601,
    7.3152,
]


def _ho2ti2o7() -> Crystal:
    atoms = [
        Atom("Ho1", "Ho", (0.5, 0.5, 0.5), uiso=0.0),
        Atom("Ti1", "Ti", (0.0, 0.0, 0.0), uiso=0.0),
        Atom("O1", "O", (0.33192, 0.125, 0.125), uiso=0.0),
        Atom("O2", "O", (0.375, 0.375, 0.375), uiso=0.0),
    ]
    return Crystal.from_parts((10.2, 10.2, 10.2, 90, 90, 90), "F d -3 m:2", atoms)


def test_nuclear_matches_cryspy_ho2ti2o7():
    cryst = _ho2ti2o7()
    b = [SEARS_1992[a.element] for a in cryst.atoms]
    f_n = nuclear_structure_factors(cryst, CRYSPY_HKL, b)
    np.testing.assert_allclose(f_n.real / 10.0, CRYSPY_FN, rtol=2e-9, atol=1e-8)
    np.testing.assert_allclose(f_n.imag, 0.0, atol=1e-10)


def _monoclinic(u_aniso=None) -> Crystal:
    atom = Atom("M", "Fe", (0.13, 0.21, 0.37), uiso=0.012, u_aniso=u_aniso)
    return Crystal.from_parts((5.3, 6.1, 7.4, 90, 103.0, 90), "P 1 21/c 1", [atom])


def _expanded(cryst: Crystal, per_copy) -> Crystal:
    """P1 crystal with one explicit atom per operation; per_copy(i) gives its ADPs."""
    atoms = []
    for i, (r, t) in enumerate(zip(cryst.rotations, cryst.translations, strict=True)):
        uiso, u6 = per_copy(i, r)
        atoms.append(Atom(f"M{i}", "Fe", r @ cryst.atoms[0].xyz + t, uiso=uiso, u_aniso=u6))
    return Crystal.from_parts(cryst.cell.parameters, "P 1", atoms)


HKL = np.array([[1, 0, 0], [1, 2, -3], [0, 3, 1], [2, -1, 4], [-3, 2, 2]])


def test_anisotropic_adps_follow_the_operations():
    u6 = np.array([0.011, 0.017, 0.024, 0.002, -0.003, 0.004])
    cryst = _monoclinic(u6)
    ustar = u6_to_matrix(ucif_to_ustar(u6, cryst.cell))

    def copy(i, r):  # U*' = R U* Rᵀ for the copy at R x + t
        return None, ustar_to_ucif(matrix_to_u6(r @ ustar @ r.T), cryst.cell)

    p1 = _expanded(cryst, copy)
    f_sym = nuclear_structure_factors(cryst, HKL, [9.45])
    f_p1 = nuclear_structure_factors(p1, HKL, [9.45] * cryst.n_ops)
    np.testing.assert_allclose(f_sym, f_p1, rtol=1e-12, atol=1e-12)
    # one atom, no symmetry: b exp(2πi h·x) exp(−2π² hᵀ U_cart h)
    single = Crystal.from_parts(cryst.cell.parameters, "P 1", [cryst.atoms[0]])
    h = HKL @ cryst.B.T
    ucart = ucif_to_ucart(u6, cryst.cell)
    expected = 9.45 * np.exp(2j * np.pi * HKL @ cryst.atoms[0].xyz)
    expected *= np.exp(-2 * np.pi**2 * np.einsum("na,ab,nb->n", h, ucart, h))
    np.testing.assert_allclose(nuclear_structure_factors(single, HKL, [9.45]), expected, rtol=1e-13)


def test_moments_are_axial_vectors():
    cryst = _monoclinic()
    m = np.array([1.2, -0.7, 2.1])  # Cartesian μB; b is along y in chasm's frame
    ff = {0: np.full(len(HKL), 0.8)}
    f_m = magnetic_structure_factors(cryst, HKL, {0: m}, ff, p=P_FM)
    # explicit copies: 2-fold along b and its product with the inversion (the glide)
    # both turn (mx, my, mz) into (−mx, my, −mz); the inversion leaves m unchanged
    p1 = _expanded(cryst, lambda i, r: (0.012, None))
    moments = {}
    for i, r in enumerate(cryst.rotations):
        proper = r if np.linalg.det(r) > 0 else -r
        moments[i] = m if np.allclose(proper, np.eye(3)) else m * [-1, 1, -1]
    ff_p1 = {i: ff[0] for i in moments}
    f_p1 = magnetic_structure_factors(p1, HKL, moments, ff_p1, p=P_FM)
    np.testing.assert_allclose(f_m, f_p1, rtol=1e-12, atol=1e-12)
    # time reversal on the operations of the glide class flips those copies
    theta = [
        1 if np.allclose(r, np.eye(3)) or np.allclose(r, -np.eye(3)) else -1
        for r in cryst.rotations
    ]
    flipped = {i: moments[i] * theta[i] for i in moments}
    np.testing.assert_allclose(
        magnetic_structure_factors(cryst, HKL, {0: m}, ff, theta),
        magnetic_structure_factors(p1, HKL, flipped, ff_p1),
        rtol=1e-12,
        atol=1e-12,
    )


def test_induced_moments_rotate_with_the_site():
    cryst = _monoclinic()
    chi = np.array([[1.0, 0.2, -0.1], [0.2, 0.6, 0.3], [-0.1, 0.3, 0.9]])
    field = np.array([0.3, -0.2, 0.9])
    ff = {0: np.linspace(0.9, 0.4, len(HKL))}
    tensor = susceptibility_structure_tensor(cryst, HKL, {0: chi}, ff, p=P_FM)
    rc = cryst.cartesian_rotations()
    moments = {i: r @ chi @ r.T @ field for i, r in enumerate(rc)}
    p1 = _expanded(cryst, lambda i, r: (0.012, None))
    # m = χ' B is axial by construction; the moment model must not apply det R again
    f_p1 = magnetic_structure_factors(p1, HKL, moments, {i: ff[0] for i in moments})
    np.testing.assert_allclose(tensor @ field, f_p1, rtol=1e-12, atol=1e-12)
    # isotropic χ: the same as a ferromagnet with m = χ B on every copy
    iso = susceptibility_structure_tensor(cryst, HKL, {0: 0.7 * np.eye(3)}, ff)
    f_fm = magnetic_structure_factors(
        p1, HKL, {i: 0.7 * field for i in moments}, {i: ff[0] for i in moments}
    )
    np.testing.assert_allclose(iso @ field, f_fm, rtol=1e-12, atol=1e-12)


def test_site_constraint_rules():
    cryst = _ho2ti2o7()
    chi = np.array([3.3290, 3.32909, 3.32909, 3.2543, 3.25442, 3.25442])
    first = constrain_site_tensor(cryst, 0, chi, "first")
    average = constrain_site_tensor(cryst, 0, chi, "average")
    np.testing.assert_allclose(first, [3.3290] * 3 + [3.2543] * 3, rtol=1e-13)
    np.testing.assert_allclose(average, [3.32906] * 3 + [3.25438] * 3, rtol=1e-13)
    # a symmetric tensor is left alone; the sum over operations symmetrises anyway
    np.testing.assert_allclose(constrain_site_tensor(cryst, 0, first, "first"), first)
    hkl = np.array([[1, -1, 1], [2, 0, 6], [0, 0, 8]])
    ff = {0: np.ones(3)}
    s_raw = susceptibility_structure_tensor(cryst, hkl, {0: u6_to_matrix(chi)}, ff)
    s_avg = susceptibility_structure_tensor(cryst, hkl, {0: u6_to_matrix(average)}, ff)
    np.testing.assert_allclose(s_raw, s_avg, rtol=1e-12, atol=1e-12)


def test_tensor_matches_the_file_listing(shared_data):
    """cryspy's _refln_susceptibility_chi_ij_calc (10⁻¹² cm/T, 2 decimals) of Ho2Ti2O7."""
    pnd = read_rcif(shared_data / "pnd" / "ho2ti2o7" / "ho2ti2o7.rcif")
    ho = ion_form_factor("Ho3+")
    itc = IonFormFactor(
        "Ho3+", ho.j0, (0.2188, 18.5157, 1.024, 6.707, 0.9251, 2.1614, 0.0268), None
    )
    model = PndModel.from_rcif(pnd.crystal(), SEARS_1992, {"Ho3+": itc})
    loop = next(lp for lp in pnd.blocks[2].loops if "_refln_susceptibility_chi_11_calc" in lp.tags)
    hkl = np.array([[int(t.text) for t in row[:3]] for row in loop.rows])
    listed = np.array([[complex(t.text).real for t in row[3:12]] for row in loop.rows])
    stol = 0.5 * np.linalg.norm(hkl @ model.crystal.B.T, axis=1)
    site = model.sites[0]
    tensor = susceptibility_structure_tensor(
        model.crystal, hkl, {site.index: site.chi}, {site.index: site.form_factor(stol)}, CRYSPY_P
    )
    assert len(hkl) == 94
    np.testing.assert_allclose(tensor.real.reshape(-1, 9) / 10.0, listed, atol=0.0051)
    np.testing.assert_allclose(tensor.imag, 0.0, atol=1e-10)
    f_listed = [complex(row[3].text).real for row in pnd.blocks[2].loops[1].rows]
    np.testing.assert_allclose(model.nuclear(hkl).real / 10.0, f_listed, atol=0.0051)
    assert pytest.approx(CRYSPY_P / P_FM, rel=1e-3) == 1.0

"""The whole periodic table (issue 17, item 4): Slater defaults and magnetic form factors.

Independent references: Slater's rules worked by hand (J. C. Slater, Phys.
Rev. 36, 57 (1930)) for the elements where the table uses them; numerical
quadrature of the Slater density for the new radial powers; the structure
factor of a lone P00 deformation term, which is P00 ⟨j0⟩ of its Slater function.
"""

from __future__ import annotations

import json
from importlib.resources import files

import numpy as np
import periodictable
import pytest
from scipy.integrate import quad
from scipy.special import spherical_jn

from chasm.crystal.structure import Atom, Crystal
from chasm.density.model import HansenCoppensAtom
from chasm.density.radial import (
    BOHR,
    default_slater,
    default_valence_configuration,
    slater_bessel,
    slater_density,
)
from chasm.errors import InputError
from chasm.neutron.magnetic_ff import ion_form_factor
from chasm.scattering.engine import StructureFactorEngine

SYMBOLS = [periodictable.elements[z].symbol for z in range(1, 104)]


def test_every_element_to_lr_has_slater_defaults():
    for symbol in SYMBOLS:
        n_l, zeta = default_slater(symbol)
        assert len(n_l) == 5 and all(n >= l for l, n in enumerate(n_l)), symbol
        assert 0.5 < zeta * BOHR < 30.0, symbol
        valence = default_valence_configuration(symbol)
        assert valence and all(v[0].isdigit() and v[1] in "spdf" for v in valence), symbol
    assert default_valence_configuration("Ho") == ("4f11",)
    assert default_valence_configuration("U") == ("5f3",)
    assert default_valence_configuration("Pt") == ("5d9",)
    with pytest.raises(InputError, match="H-Lr"):
        default_slater("Xx")


def test_h_to_xe_values_unchanged():
    # the values chasm has used since the H-Xe table (CONVENTIONS.md)
    assert default_slater("Cu") == ((4, 4, 4, 4, 4), pytest.approx(8.8004 / BOHR, abs=0))
    assert default_slater("O") == ((2, 2, 2, 3, 4), pytest.approx(4.466 / BOHR, abs=0))
    table = json.loads(files("chasm.density").joinpath("data/slater_defaults.json").read_text())
    assert len(table["elements"]) == 103


@pytest.mark.parametrize(
    ("symbol", "z_eff", "n_star", "n_l"),
    [
        # U 5f3: 78 electrons in groups left of 5f shield 1.00, two other 5f 0.35 each
        ("U", 92 - 78 - 2 * 0.35, 4.0, 8),
        # Ce 4f1: 46 electrons left of 4f (1s-4d), no other 4f electron
        ("Ce", 58 - 46, 3.7, 6),
        # Fr 7s1: 7s 0 others; n-1 shell (6s6p 8 electrons) 0.85; the other 78 1.00
        ("Fr", 87 - 0.85 * 8 - 78, 4.2, 10),
    ],
)
def test_slater_rule_entries_by_hand(symbol, z_eff, n_star, n_l):
    got_n, zeta = default_slater(symbol)
    assert got_n == (n_l,) * 5
    assert zeta * BOHR == pytest.approx(2.0 * z_eff / n_star, abs=1e-4)


@pytest.mark.parametrize("n", [6, 8, 10])
def test_slater_transform_of_the_new_powers_by_quadrature(n):
    zeta, k = 7.0, 3.3
    ref = quad(lambda r: slater_density(r, n, zeta) * spherical_jn(2, k * r) * r * r, 0, 40)[0]
    assert slater_bessel(2, n, zeta, np.array([k]))[0] == pytest.approx(ref, rel=1e-9)
    norm = quad(lambda r: slater_density(r, n, zeta) * r * r, 0, 40)[0]
    assert norm == pytest.approx(1.0, rel=1e-10)


@pytest.mark.parametrize("element", ["Yb", "Ho", "Gd", "U"])
def test_rare_earth_and_actinide_hansen_coppens_atoms(element):
    crystal = Crystal.from_parts(
        (5.1, 6.3, 7.2, 90.0, 90.0, 90.0), "P 1", [Atom("A1", element, [0, 0, 0], uiso=0.0)]
    )
    hkl = np.array([[1, 0, 0], [1, 2, 3], [2, 1, 4], [0, 0, 5]])

    def f(p00: float) -> np.ndarray:
        plm = np.zeros(25)
        plm[0] = p00
        model = HansenCoppensAtom(element, pv=3.0, lmax=4, plm=plm, kappa_prime=0.97)
        return StructureFactorEngine(crystal, [model], hkl).compute().F

    base = f(0.0)
    assert np.all(np.isfinite(base)) and np.all(base.real > 0)
    n_l, zeta = default_slater(element)
    k = 2 * np.pi * np.linalg.norm(hkl @ crystal.B.T, axis=1)  # K = 4π sinθ/λ
    expected = 0.4 * slater_bessel(0, n_l[0], zeta * 0.97, k)
    np.testing.assert_allclose(f(0.4) - base, expected, rtol=1e-8, atol=1e-12)


def test_magnetic_form_factors_of_rare_earth_ions():
    for ion in ("Ce2+", "Nd3+", "Gd3+", "Tb3+", "Dy3+", "Ho3+", "Er3+", "Yb3+", "U3+", "U4+"):
        table = ion_form_factor(ion)
        j0, j2, _ = table.radial(np.array([0.0, 0.5]))
        assert j0[0] == pytest.approx(1.0, abs=2e-3), ion  # ⟨j0⟩(0) = 1
        assert j2[0] == 0.0 and j2[1] > 0, ion


def test_ion_without_j0_is_a_clear_error():
    with pytest.raises(InputError, match="no <j0> radial integral for 'Ce3\\+'"):
        ion_form_factor("Ce3+")
    with pytest.raises(InputError, match="no magnetic form factor for 'Ba2\\+'"):
        ion_form_factor("Ba2+")


def test_every_ion_periodictable_lists():
    """98 ions (3d, 4d, 4f, 5f): ⟨j0⟩(0) = 1 to the fits' accuracy; Ce3+ alone lacks ⟨j0⟩."""
    ions = [
        f"{el.symbol}{charge}+"
        for el in periodictable.elements
        for charge in sorted(getattr(el, "magnetic_ff", None) or {})
    ]
    assert len(ions) == 98
    missing = []
    for ion in ions:
        try:
            table = ion_form_factor(ion)
        except InputError:
            missing.append(ion)
            continue
        j0, j2, _ = table.radial(np.array([0.0, 0.3]))
        assert abs(j0[0] - 1.0) < 6e-3, ion
        assert -1e-3 < j0[1] < 1.0, ion  # falls off (neutral Y: ≈ 0 already at 0.3 Å⁻¹)
        assert j2[0] == 0.0
    assert missing == ["Ce3+"]

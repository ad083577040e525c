"""Neutron scattering lengths and magnetic form factors (chasm.neutron)."""

from __future__ import annotations

import numpy as np
import pytest

from chasm.errors import InputError
from chasm.neutron.magnetic_ff import (
    c2_from_lande,
    c2_from_spectroscopic_g,
    dipole_form_factor,
    ion_form_factor,
    radial_integrals,
)
from chasm.neutron.scattering_lengths import parse_species, scattering_length


def test_cu2_reference_values():
    # CONVENTIONS.md, "Spin-resolved atoms": (s, <j0>, <j2>) of Cu2+
    s = np.array([0.1, 0.3, 0.5])
    j0, j2, j4 = radial_integrals("Cu2+", s)
    np.testing.assert_allclose(j0, [0.92705, 0.54560, 0.23370], atol=6e-6)
    np.testing.assert_allclose(j2, [0.02765, 0.15006, 0.19046], atol=6e-6)
    assert np.all(j4 > 0) and j4[0] < 1e-3


@pytest.mark.parametrize("ion", ["Cu2+", "Cu+2", "Ti3+", "Ho3+", "Mn2+", "Fe"])
def test_known_ions_start_at_one(ion):
    j0, j2, _ = radial_integrals(ion, 0.0)
    assert j0 == pytest.approx(1.0, abs=2e-3)
    assert j2 == 0.0


def test_unknown_ions_are_input_errors():
    with pytest.raises(InputError, match="Cu7\\+"):
        ion_form_factor("Cu7+")
    with pytest.raises(InputError):
        ion_form_factor("Xx2+")


def test_kappa_scales_the_argument():
    s = np.linspace(0.05, 0.8, 7)
    table = ion_form_factor("Ni2+")
    for a, b in zip(table.radial(s, kappa=1.2), table.radial(s / 1.2), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-14)


def test_dipole_form_factor_and_derivatives():
    table = ion_form_factor("Ho3+")
    s, c2, kappa = np.array([0.07, 0.31, 0.62]), 0.6, 0.93
    f, d = table.dipole(s, c2, kappa)
    j0, j2, _ = table.radial(s, kappa)
    np.testing.assert_allclose(f, j0 + c2 * j2, rtol=1e-14)
    np.testing.assert_allclose(dipole_form_factor("Ho3+", s, c2, kappa), f, rtol=1e-14)
    h = 1e-6
    num_s = (table.dipole(s + h, c2, kappa)[0] - table.dipole(s - h, c2, kappa)[0]) / (2 * h)
    num_k = (table.dipole(s, c2, kappa + h)[0] - table.dipole(s, c2, kappa - h)[0]) / (2 * h)
    num_c = (table.dipole(s, c2 + h, kappa)[0] - table.dipole(s, c2 - h, kappa)[0]) / (2 * h)
    np.testing.assert_allclose(d["s"], num_s, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(d["kappa"], num_k, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(d["c2"], num_c, rtol=1e-7, atol=1e-9)


def test_c2_rules():
    # Landé g_J of a J multiplet (cryspy's _atom_site_scat_Lande): Ho3+ g_J = 5/4
    assert c2_from_lande(1.25) == pytest.approx(0.6)
    # spectroscopic g of a quenched 3d ion (CONVENTIONS.md): small, positive for Cu2+
    assert 0 < c2_from_spectroscopic_g(2.2) < 0.1
    assert c2_from_lande(2.0) == c2_from_spectroscopic_g(2.0) == 0.0
    with pytest.raises(InputError):
        c2_from_lande(0.0)


def test_scattering_lengths():
    # periodictable (Rauch & Waschkowski 2003) values
    assert scattering_length("O2-") == pytest.approx(5.8037)
    assert scattering_length("Ti3+").real == pytest.approx(-3.37)
    assert scattering_length("48Ti") == scattering_length("Ti-48") == pytest.approx(-5.86)
    assert scattering_length("D") == pytest.approx(6.6681)
    gd = scattering_length("Gd")
    assert gd.imag < 0  # tabulated resonance value, absorption sign of periodictable
    # Sears (1992) override, as cryspy uses
    assert scattering_length("Ho3+", {"Ho": 8.01}) == 8.01
    assert scattering_length("165Ho", {"Ho": 8.01}) != 8.01
    assert parse_species("Ho-165") == ("Ho", 165)


@pytest.mark.parametrize("bad", ["Xx", "Ho999", "3+", ""])
def test_unknown_species_are_input_errors(bad):
    with pytest.raises(InputError):
        scattering_length(bad)

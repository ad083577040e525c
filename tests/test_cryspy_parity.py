"""chasm's flipping ratios against cryspy's on the YTiO3 data (issue 4, parity).

The model and the three data blocks of ``pnd/ytio3/ytio3.rcif``: Ti³⁺ spherical
⟨j0⟩ (Landé 2, C2 = 0), isotropic susceptibility χ (μB/T) so that the moment is
χ·B along the field, one UB matrix per block (CCSL), P = −0.9, e = 0.95, no
extinction; 110 + 95 + 61 = 266 flipping ratios.

cryspy functions compared against (cryspy 0.18, the ``test`` extra)
---------------------------------------------------------------------
``cryspy.load_file(path).get_dictionary()`` and
``cryspy.procedure_rhochi.rhochi_by_dictionary.rhochi_calc_chi_sq_by_dictionary``
(what ``cryspy.rhochi_no_refinement`` runs), which for each block calls
``rhochi_diffrn.calc_chi_sq_for_diffrn_by_dictionary`` ->
``A_functions_base.flip_ratio.calc_intensities_by_structure_factors`` (I+ and
I−) and ``calc_flip_ratio_by_iint`` (R = I+/I−). We read I+ and I− of every
reflection from its ``dict_in_out`` and cryspy's χ² from its return value.

chasm side: :meth:`PndSpinModel.from_rcif` + :meth:`PndData.ratios`, with the
file's ``Ciso`` (``Ti.chi_iso``) and, separately, with Ti as a moment χ·B
along the field (``Ti.moment``).

What it takes to agree (explicit options, chasm's defaults unchanged)
---------------------------------------------------------------------
- ``b_overrides=SEARS_1992``: cryspy's scattering lengths (Sears 1992; Ti
  −3.438 fm where periodictable has −3.37);
- ``p=CRYSPY_P`` (2.695 fm/μB instead of 2.69542);
- nothing for the form factor: periodictable's Ti³⁺ ⟨j0⟩ is cryspy's table to
  its four decimals (checked below), and g = 2 makes the ⟨j2⟩ term vanish;
- nothing for the field direction: chasm's CCSL geometry gives cryspy's ê.
The 15 systematically absent reflections of P n m a in the file have
F_N = F_M = 0 by symmetry: both programs give R = 1 there at the file's χ,
but cryspy's 0/0 becomes NaN at some other χ (validation/ytio3_chi_scan.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("cryspy")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "validation"))

import ytio3_chi_scan as scan  # noqa: E402

from chasm.neutron import P_FM, ion_form_factor, read_rcif  # noqa: E402
from chasm.refine.pnd_data import PndData, PndSpinModel  # noqa: E402

RTOL = 1e-5


@pytest.fixture(scope="module")
def ytio3(shared_data):
    path = shared_data / "pnd" / "ytio3" / "ytio3.rcif"
    return read_rcif(path), scan.CryspyChi2(path, exclude_absent=False)


def _chasm_ratios(pnd, spin: PndSpinModel, value: float) -> dict[str, np.ndarray]:
    out = {}
    for raw in pnd.datasets:
        data = PndData(raw.name, raw, spin)
        data.bind(None, None, spin.parameter_names, 0)  # the vector: the Ti parameter only
        assert len(data.r_obs) == len(raw.hkl)  # nothing excluded in the file
        out[raw.name] = data.ratios([value])
    return out


def _absent(pnd) -> dict[str, np.ndarray]:
    group = pnd.crystal().spacegroup
    return {d.name: scan.absent_mask(d.hkl, group) for d in pnd.datasets}


@pytest.mark.parametrize("moment", [False, True], ids=["ciso", "moment"])
def test_all_266_ratios_match_cryspy(ytio3, moment):
    pnd, cry = ytio3
    chi = float(pnd.crystal().susceptibility["Ti"].chi[0])  # the file's 0.7362 μB/T
    spin = scan.chasm_spin(pnd, chi, moment=moment)
    assert spin.parameter_names == ["Ti.moment" if moment else "Ti.chi_iso"]
    ours = _chasm_ratios(pnd, spin, chi)
    chi2, n, blocks = cry.evaluate(chi)
    theirs = cry.ratios(chi)
    assert n == 266 and sum(len(r) for r in ours.values()) == 266
    absent = _absent(pnd)
    assert sum(int(a.sum()) for a in absent.values()) == 15
    total = 0.0
    for raw in pnd.datasets:
        block = blocks[f"diffrn_{raw.name}"]
        np.testing.assert_array_equal(block["index_hkl"].T, raw.hkl)  # same order
        r_c = theirs[raw.name]
        assert np.ptp(r_c) > 1.0  # the magnetic signal is there
        np.testing.assert_allclose(ours[raw.name], r_c, rtol=RTOL, atol=0, err_msg=raw.name)
        # at the absences both give no contrast
        np.testing.assert_array_equal(ours[raw.name][absent[raw.name]], 1.0)
        total += np.sum(((raw.fr - r_c) / raw.fr_sigma) ** 2)
    # the ratios read from dict_in_out are the ones behind cryspy's own χ²
    assert total == pytest.approx(chi2, rel=1e-12)


def test_ratios_match_cryspy_at_another_chi(ytio3):
    """Away from the file's value; at the absences cryspy's R is 1 or NaN (0/0)."""
    pnd, cry = ytio3
    chi = 0.6  # cryspy gives NaN at some absent reflections here
    ours = _chasm_ratios(pnd, scan.chasm_spin(pnd, chi), chi)
    theirs = cry.ratios(chi)
    absent = _absent(pnd)
    nan = 0
    for raw in pnd.datasets:
        a = absent[raw.name]
        r_c = theirs[raw.name]
        assert np.all(np.isfinite(r_c[~a]))
        np.testing.assert_allclose(ours[raw.name][~a], r_c[~a], rtol=RTOL, atol=0)
        assert np.all(np.isnan(r_c[a]) | np.isclose(r_c[a], 1.0, rtol=0, atol=1e-12))
        nan += int(np.isnan(r_c[a]).sum())
        np.testing.assert_array_equal(ours[raw.name][a], 1.0)
        assert np.all(np.isfinite(ours[raw.name]))
    assert nan > 0  # what makes cryspy's χ² (and its refinement) NaN at this χ


def test_cryspy_inputs_and_what_they_are_worth(ytio3):
    pnd, cry = ytio3
    crystal = cry.dict[cry.crystal]
    # cryspy's Ti³⁺ ⟨j0⟩ (formmag table) is periodictable's to four decimals
    j0 = np.asarray(crystal["mag_atom_j0_parameters"], dtype=float).ravel()
    np.testing.assert_allclose(ion_form_factor("Ti3+").j0, j0, rtol=0, atol=5e-5)
    # cryspy's scattering lengths (10⁻¹² cm) are the Sears table we pass
    b = dict(zip(crystal["atom_label"], np.real(crystal["atom_scat_length_neutron"]), strict=True))
    for label, element in (("Ti", "Ti"), ("Y", "Y"), ("O1", "O"), ("O2", "O")):
        assert 10.0 * b[label] == pytest.approx(scan.SEARS_1992[element], abs=1e-9)

    chi = 0.7362
    theirs = np.concatenate(list(cry.ratios(chi).values()))
    reference = np.concatenate(list(_chasm_ratios(pnd, scan.chasm_spin(pnd, chi), chi).values()))
    np.testing.assert_allclose(reference, theirs, rtol=RTOL)
    block = pnd.crystal()

    def worst(spin: PndSpinModel) -> float:
        calc = np.concatenate(list(_chasm_ratios(pnd, spin, chi).values()))
        return float(np.max(np.abs(calc / theirs - 1.0)))

    # chasm's own p = 2.69542 fm/μB: a 1.6e-4 relative change of F_M ...
    exact_p = PndSpinModel.from_rcif(block, b_overrides=scan.SEARS_1992, p=P_FM)
    assert P_FM != scan.CRYSPY_P and RTOL < worst(exact_p) < 1e-3
    # ... and periodictable's scattering lengths (Rauch & Waschkowski) change more
    rauch = PndSpinModel.from_rcif(block, p=scan.CRYSPY_P)
    assert worst(rauch) > 1e-3

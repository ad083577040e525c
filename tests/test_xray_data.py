"""XrayData's full-width Jacobian (columns of the whole parameter vector) vs finite differences.

Covers the in-place layout (first data set: its scale and extinction follow the
atomic columns) and the copied layout (second data set), refinement on F² and
on |F|, and Becker-Coppens and SHELX extinction.
"""

from __future__ import annotations

import gemmi
import numpy as np
import pytest

from chasm.crystal.structure import Atom, Crystal
from chasm.density.model import HansenCoppensAtom, SphericalAtom
from chasm.io.shelx_hkl import Reflections
from chasm.refine.refinement import Refinement
from chasm.refine.xray_data import XrayData, XrayOptions


def _problem(rng):
    atoms = [
        Atom("C1", "C", np.array([0.11, 0.23, 0.31]), uiso=0.015),
        Atom("O1", "O", np.array([0.32, 0.14, 0.52]), uiso=0.02),
        Atom("H1", "H", np.array([0.05, 0.41, 0.22]), uiso=0.03),
    ]
    cr = Crystal.from_parts((7.1, 6.3, 8.2, 90, 101, 90), "P 1 21/c 1", atoms)
    cr.atoms[0].u_aniso = np.array([0.015, 0.013, 0.017, 0.001, 0.002, -0.001])
    cr.wavelength = 0.71073
    o = HansenCoppensAtom("O", pv=6.1, kappa=0.98, lmax=2, kappa_prime=0.9)
    o.plm[:] = rng.normal(0, 0.05, o.plm.size)
    models = [SphericalAtom("C"), o, SphericalAtom("H")]
    hkl = gemmi.make_miller_array(cr.cell, cr.spacegroup, 1.0)
    hkl = hkl[~cr.spacegroup.operations().systematic_absences(hkl)][:120]
    f2 = rng.uniform(10, 1000, len(hkl))
    return cr, models, Reflections(hkl, f2, 0.05 * f2 + 1.0)


@pytest.mark.parametrize("observable", ["F2", "F"])
@pytest.mark.parametrize("extinction", ["bc-gauss", "shelx"])
def test_full_jacobian_matches_finite_differences(observable, extinction):
    rng = np.random.default_rng(3)
    cr, models, refl = _problem(rng)
    opts = XrayOptions(observable=observable, extinction=extinction, extinction_start=0.05)
    if extinction == "bc-gauss":
        opts.extinction_start = 50.0
    sets = [
        XrayData("a", refl, cr, opts),
        XrayData(
            "b", refl.subset(np.arange(len(refl)) < 80), cr, XrayOptions(observable=observable)
        ),
    ]
    ref = Refinement(cr, models, sets)
    names = ref.params.names
    p0 = ref.params.values.copy()
    for d in sets:
        ev = ref._evaluator(d)
        J = ev(p0).jacobian
        assert J.shape == (len(d.reflections), len(names))
        for i, name in enumerate(names):
            if name.endswith(".occ"):
                continue
            h = 1e-6 * max(1.0, abs(p0[i]))
            pp, pm = p0.copy(), p0.copy()
            pp[i] += h
            pm[i] -= h
            num = (ev(pp).y_calc - ev(pm).y_calc) / (2 * h)
            scale = np.max(np.abs(num)) + np.max(np.abs(J[:, i])) + 1e-30
            assert np.max(np.abs(num - J[:, i])) < 1e-6 * scale, (d.name, name)
        ev(p0)

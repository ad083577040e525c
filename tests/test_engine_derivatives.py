"""Every analytic derivative of F against central finite differences (1e-6 relative)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from chasm.scattering.engine import StructureFactorEngine
from engine_helpers import get_parameter, mixed_structure, random_hkl, set_parameter

CASES = {
    # space group, cell, special positions
    "P1 (acentric triclinic)": ("P 1", (7.1, 8.3, 9.2, 81.0, 97.0, 103.0), ()),
    "P-1 (centric triclinic)": ("P -1", (7.1, 8.3, 9.2, 81.0, 97.0, 103.0), ([0.5, 0.0, 0.5],)),
    "P21/n (centric monoclinic)": ("P 1 21/n 1", (9.3, 11.2, 8.7, 90, 104.0, 90), ([0, 0.5, 0],)),
    "P212121 (acentric)": ("P 21 21 21", (6.0, 7.2, 12.3, 90, 90, 90), ()),
    "P-421m (acentric, mm2 site)": ("P -4 21 m", (5.6, 5.6, 4.7, 90, 90, 90), ([0, 0.5, 0.33],)),
    "P63/mmc (centric, -6m2 site)": (
        "P 63/m m c",
        (5.1, 5.1, 8.2, 90, 90, 120),
        ([1 / 3, 2 / 3, 0.25],),
    ),
}


def _fd_check(crystal, models, hkl, centric_fast_path=True, step=1e-5):
    eng = StructureFactorEngine(
        crystal, models, hkl, block_size=37, centric_fast_path=centric_fast_path
    )
    res = eng.compute(jacobian=True)
    worst = {}
    for j, name in enumerate(res.parameter_names):
        p0 = get_parameter(crystal, models, name)
        h = step * max(1.0, abs(p0)) if not name.endswith(("x", "y", "z")) else step
        set_parameter(crystal, models, name, p0 + h)
        fp = eng.compute().F
        set_parameter(crystal, models, name, p0 - h)
        fm = eng.compute().F
        set_parameter(crystal, models, name, p0)
        fd = (fp - fm) / (2 * h)
        col = res.jacobian[:, j]
        # forbidden multipoles of atoms on special positions have dF/dp = 0 exactly: the
        # floor keeps finite-difference round-off (~1e-11 |F|) from counting as an error
        scale = max(np.max(np.abs(fd)), np.max(np.abs(col)), 1e-4 * np.max(np.abs(res.F)))
        worst[name] = np.max(np.abs(col - fd)) / scale
    return res, worst


@pytest.mark.parametrize("case", list(CASES))
def test_all_derivatives_match_finite_differences(case):
    sg, cell, special = CASES[case]
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    crystal, models = mixed_structure(sg, cell, rng, special)
    hkl = random_hkl(60, rng, hmax=5)
    res, worst = _fd_check(crystal, models, hkl)
    bad = {k: v for k, v in worst.items() if v > 1e-6}
    assert not bad, f"{case}: derivative mismatch {bad}"
    kinds = {n.split(".", 1)[1] for n in res.parameter_names}
    for needed in ("x", "U11", "U23", "Uiso", "occ", "Pv", "kappa", "P44-", "P10", "kappa_prime"):
        assert needed in kinds
    # the Jacobian is not trivially zero anywhere
    assert np.all(np.max(np.abs(res.jacobian), axis=0) > 0)


def test_centric_fast_path_equals_full_sum():
    sg, cell, special = CASES["P21/n (centric monoclinic)"]
    rng = np.random.default_rng(7)
    crystal, models = mixed_structure(sg, cell, rng, special)
    hkl = random_hkl(80, rng)
    fast = StructureFactorEngine(crystal, models, hkl).compute(jacobian=True)
    full = StructureFactorEngine(crystal, models, hkl, centric_fast_path=False).compute(
        jacobian=True
    )
    assert StructureFactorEngine(crystal, models, hkl).centric
    scale = np.max(np.abs(full.F))
    assert np.max(np.abs(fast.F - full.F)) < 1e-12 * scale
    jscale = np.maximum(np.max(np.abs(full.jacobian), axis=0), 1e-3 * np.max(np.abs(full.jacobian)))
    assert np.all(np.max(np.abs(fast.jacobian - full.jacobian), axis=0) <= 1e-12 * jscale)


def test_blocking_does_not_change_results():
    sg, cell, special = CASES["P212121 (acentric)"]
    rng = np.random.default_rng(3)
    crystal, models = mixed_structure(sg, cell, rng, special)
    hkl = random_hkl(100, rng)
    a = StructureFactorEngine(crystal, models, hkl, block_size=7).compute(jacobian=True)
    b = StructureFactorEngine(crystal, models, hkl, block_size=1000).compute(jacobian=True)
    np.testing.assert_allclose(a.F, b.F, rtol=0, atol=1e-12 * np.max(np.abs(a.F)))
    np.testing.assert_allclose(a.jacobian, b.jacobian, rtol=0, atol=1e-10)

"""Unpolarised neutron (UND) refinement: simulated parameter recovery and MnF2 real data.

Simulated: a made-up molecule (C, N, O, H) in P 21/c whose neutron ADPs (set
"N") differ from its X-ray ADPs (set "X"). F² = k |F_N|² of every unique
reflection to sinθ/λ = 0.65 Å⁻¹ come from UndData's own engine at the true
model and absolute scale k; Gaussian noise of known σ (seeded) is added. From
perturbed positions and neutron ADPs, positions + N ADPs + scale are refined.
Independent facts checked: every refined parameter is within 3 su of the value
the data were made from, the pulls (estimate − truth)/su over all parameters
are standard-normal-like (|mean| < 0.5, sd in 0.6–1.5), the X-ray ADPs are
untouched, and χ²/(N − P) is near 1 (σ exact).

Real: the MnF2 unpolarised single-crystal blocks (../shared/data/pnd/mnf2),
reflections with h + k + l even only (where the antiferromagnetic Mn
contribution vanishes), refined with validation/mnf2_und.py's setup; skipped
when the data folder is absent.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import gemmi
import numpy as np
import pytest

from chasm.crystal.adp import ucart_to_ucif
from chasm.crystal.structure import Atom, Crystal
from chasm.density.model import SphericalAtom
from chasm.io.shelx_hkl import Reflections
from chasm.refine.problem import SolverOptions
from chasm.refine.refinement import Refinement, Stage
from chasm.refine.xray_data import UndData, XrayOptions

ROOT = Path(__file__).resolve().parents[1]
SCALE_TRUE = 3.7  # F² per fm²
SMAX = 0.65  # sinθ/λ, Å⁻¹

# A made-up planar fragment (an amide/oxime-like molecule), fractional coordinates.
SITES = [
    ("C1", "C", [0.2120, 0.1340, 0.3050]),
    ("C2", "C", [0.3510, 0.2260, 0.2570]),
    ("N1", "N", [0.1040, 0.1980, 0.4210]),
    ("O1", "O", [0.1850, 0.0100, 0.2400]),
    ("O2", "O", [0.4720, 0.1700, 0.1720]),
    ("H1", "H", [0.0120, 0.1450, 0.4580]),
    ("H2", "H", [0.1180, 0.3050, 0.4600]),
    ("H3", "H", [0.3620, 0.3380, 0.2960]),
]


def _u_cif(cell, rng, size):
    m = rng.normal(size=(3, 3)) * 0.3
    return ucart_to_ucif(size * (np.eye(3) + 0.3 * m @ m.T), cell)


def make_crystal(seed: int = 11) -> tuple[Crystal, list[tuple[np.ndarray | None, float]]]:
    """The true crystal (X ADPs) and a different true neutron ADP set."""
    rng = np.random.default_rng(seed)
    atoms = [Atom(lab, el, xyz, uiso=0.025 if el == "H" else 0.015) for lab, el, xyz in SITES]
    cr = Crystal.from_parts([7.05, 8.12, 9.31, 90, 104.2, 90], "P 1 21/c 1", atoms, wavelength=1.0)
    n_set = []
    for a in cr.atoms:
        if a.element == "H":
            n_set.append((None, 0.028))
        else:
            a.u_aniso = _u_cif(cr.cell, rng, 0.016)
            n_set.append((_u_cif(cr.cell, rng, 0.012), 0.0))
    return cr, n_set


def unique_hkl(crystal: Crystal, smax: float) -> np.ndarray:
    """Unique, not systematically absent reflections up to sinθ/λ = smax."""
    sg = crystal.spacegroup
    ops = sg.operations()
    asu = gemmi.ReciprocalAsu(sg)
    b = np.asarray(crystal.B, float)
    c = crystal.cell
    hmax = [int(np.ceil(2 * smax * x)) + 1 for x in (c.a, c.b, c.c)]
    out = []
    for h in range(-hmax[0], hmax[0] + 1):
        for k in range(-hmax[1], hmax[1] + 1):
            for l in range(-hmax[2], hmax[2] + 1):  # noqa: E741
                if (h, k, l) == (0, 0, 0) or not asu.is_in([h, k, l]):
                    continue
                if ops.is_systematically_absent([h, k, l]):
                    continue
                if 0.5 * np.linalg.norm(b @ [h, k, l]) <= smax:
                    out.append((h, k, l))
    return np.array(out, int)


def _refinement(crystal, hkl, f2, sigma, n_set):
    """UndData refinement whose N set is ``n_set`` (the X set is the crystal's)."""
    from chasm.refine.structure_model import StructureModel

    models = [SphericalAtom(a.element) for a in crystal.atoms]
    data = UndData("und", Reflections(hkl=hkl, f2=f2, sigma=sigma), crystal, XrayOptions())
    sm = StructureModel(crystal, models, adp_sets={"N": copy.deepcopy(n_set)})
    opts = SolverOptions(covariance="none", tol=1e-4)
    return Refinement(crystal, models, [data], structure=sm, options=opts)


FREE = ["*.x", "*.y", "*.z", "*.N", "und.scale"]


def simulate(seed: int, noise_seed: int):
    """(true refinement, hkl, noisy F², σ, true values by name)."""
    cr, n_set = make_crystal(seed)
    hkl = unique_hkl(cr, SMAX)
    ones = np.ones(len(hkl))
    truth = _refinement(cr, hkl, ones, ones, n_set)
    truth.params["und.scale"].value = SCALE_TRUE
    p = truth.params.values
    truth.set_values(p)
    f2 = truth.datasets[0].evaluate(p).y_calc
    sigma = 0.03 * f2 + 0.004 * f2.max()
    noisy = f2 + np.random.default_rng(noise_seed).normal(size=len(f2)) * sigma
    values = dict(zip(truth.params.names, p, strict=True))
    return cr, n_set, hkl, noisy, sigma, values


def perturbed_fit(seed: int, noise_seed: int):
    """Refine positions, N ADPs and scale from a perturbed start; returns pulls by name."""
    cr, n_set, hkl, f2, sigma, truth = simulate(seed, noise_seed)
    rng = np.random.default_rng(1000 + noise_seed)
    start = copy.deepcopy(cr)
    for a in start.atoms:
        a.xyz = a.xyz + rng.normal(scale=0.004, size=3)  # ~0.03 Å
    n_start = [
        (None if u6 is None else u6 * rng.uniform(0.8, 1.25), uiso * rng.uniform(0.8, 1.25))
        for u6, uiso in n_set
    ]
    x_before = [None if a.u_aniso is None else a.u_aniso.copy() for a in start.atoms]
    ref = _refinement(start, hkl, f2, sigma, n_start)
    out = ref.run_stage(Stage("und", free=FREE))
    assert out.result.converged, out.result.message
    free = ref.params.free_names
    names = [n for n in free]
    pulls = np.array([(ref.params[n].value - truth[n]) / ref.params[n].su for n in names])
    for a, u0 in zip(start.atoms, x_before, strict=True):  # UND data do not touch set X
        if u0 is not None:
            assert np.array_equal(a.u_aniso, u0)
    return names, pulls, out.result, len(hkl)


def test_und_simulated_recovery():
    names, pulls, result, n_obs = perturbed_fit(seed=11, noise_seed=1)
    assert n_obs > 600 and len(names) == 5 * 9 + 3 * 4 + 1
    assert all(n.endswith(".N") or n[-2:] in (".x", ".y", ".z") or n == "und.scale" for n in names)
    worst = int(np.argmax(np.abs(pulls)))
    assert np.all(np.abs(pulls) < 3.0), (names[worst], pulls[worst])
    assert abs(pulls.mean()) < 0.5, pulls.mean()
    assert 0.6 < pulls.std(ddof=1) < 1.5, pulls.std(ddof=1)
    assert 0.85 < result.gof < 1.15  # σ exact: χ²/(N − P) ≈ 1


# ----------------------------------------------------------------------------- real data
DATA = ROOT.parent / "shared" / "data" / "pnd" / "mnf2"


@pytest.mark.skipif(not DATA.is_dir(), reason="MnF2 data folder ../shared/data/pnd/mnf2 absent")
def test_mnf2_und_nuclear_reflections():
    sys.path.insert(0, str(ROOT / "validation"))
    import mnf2_und

    res = mnf2_und.refine(DATA / "mnf2_unpol_SC.rcif")
    a = res["agreement"]
    # x(F) of rutile-type MnF2: 0.305 (Stout & Reed, J. Am. Chem. Soc. 76 (1954) 5279)
    assert abs(res["x_F"] - 0.305) < 0.002
    assert res["x_F_su"] < 0.001
    assert res["converged"] and a["n_obs"] == 219  # the h+k+l even reflections
    assert a["R1"] < 0.08 and a["wR2"] < 0.12 and a["gof"] < 6
    # neutron ADPs physical (positive, F larger than Mn as in every rutile fluoride)
    assert 0 < res["U"]["Mn"]["Ueq"] < res["U"]["F"]["Ueq"] < 0.02
    assert res["scale"] > 0


# ----------------------------------------------------------------------------- reader
def test_rcif_intensity_block_and_bad_sigma(tmp_path):
    from chasm.errors import InputError
    from chasm.neutron.rcif import read_rcif

    text = (
        "data_exp1\n_setup_wavelength 0.5\n_phase_label mnf2\n_phase_scale 8736(12)\n"
        "loop_\n_diffrn_refln_index_h\n_diffrn_refln_index_k\n_diffrn_refln_index_l\n"
        "_diffrn_refln_intensity\n_diffrn_refln_intensity_sigma\n"
        "  1 1 0  5155.19  61.22\n  2 0 0  27224.49  {}\n"
    )
    good = tmp_path / "good.rcif"
    good.write_text(text.format("159.91"))
    block = read_rcif(good).intensity_sets[0]
    assert block.hkl.tolist() == [[1, 1, 0], [2, 0, 0]] and block.wavelength == 0.5
    assert block.intensity.tolist() == [5155.19, 27224.49] and block.sigma[1] == 159.91
    assert block.phase_scale == 8736.0 and block.lines.tolist() == [11, 12]
    assert block.intensity_calc is None and not block.excluded.any()
    bad = tmp_path / "bad.rcif"
    bad.write_text(text.format("0.0"))
    with pytest.raises(InputError) as exc:
        read_rcif(bad)
    assert "bad.rcif" in str(exc.value) and "line 12" in str(exc.value)


@pytest.mark.skipif(not DATA.is_dir(), reason="MnF2 data folder ../shared/data/pnd/mnf2 absent")
def test_rcif_reads_the_mnf2_intensity_blocks():
    from chasm.neutron.rcif import read_rcif

    counts = {"mnf2_unpol_SC.rcif": 431, "mnF2_80K.rcif": 750}  # README of the data folder
    for name, n in counts.items():
        pf = read_rcif(DATA / name)
        assert len(pf.intensity_sets) == 1 and not pf.datasets
        block = pf.intensity_sets[0]
        assert len(block.hkl) == n and block.intensity_calc is not None
        assert block.phase == "mnf2" and block.wavelength == 0.5

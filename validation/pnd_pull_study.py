"""Spin multipole refinement of simulated flipping ratios: parameter recovery and pulls.

A made-up square-planar Cu²⁺ complex (trans-CuN2O2, Cu on the inversion
centre 0 0 0 of P 21/c; each N carries a C–H and each O a C–H, so the
nuclear structure is a small organic-like one) is given a known spin density
in the joint structure model (:class:`~chasm.refine.structure_model.StructureModel`,
``basis="chargespin"``):

* Cu1 is a split atom (lmax = 4, shared κ and κ'); its spin is one unpaired
  electron in the d(x²−y²) orbital scaled to 0.8 μB, converted EXACTLY to
  multipoles by :func:`chasm.density.dorbitals.multipoles_from_orbitals`
  (local x along Cu–N1, y along Cu–O1, z normal to the plane): spherical part
  0.8 μB in Pv.spin, P20.spin = −0.2199, P40.spin = 0.0491,
  P44+.spin = 0.2546 μB, every other P_lm.spin = 0;
* the two independent ligand atoms N1 and O1 are split atoms with
  Pv.spin = 0.05 μB each (spin delocalised into the σ lone pairs, spherical);
* charge populations are those of a plausible charge model and stay FIXED:
  flipping ratios do not see them.

Data: the 260 lowest-angle unique reflections, F_N and F_spin from
:class:`~chasm.refine.flipping_data.FlippingData` (P = −0.9, e = 0.95, field
5 T along a general direction of the crystal, no extinction), σ(R) = 1 % of R,
Gaussian noise (seeded). Each realisation is refined from perturbed spin
populations (N(0, 0.05) μB added to every free population) with the site-
allowed (even-l, Cu on −1) spin multipoles of Cu1 free, together with
Cu1.Pv.spin, N1.Pv.spin and O1.Pv.spin: 1 + 14 + 2 = 17 free parameters;
positions, ADPs, κ, κ' fixed at the truth. σ is exact, so su's come from the
inverse normal matrix without the GOF factor (covariance "none").

For each realisation the pulls (estimate − truth)/su of every free parameter
are collected. Checks: each true spin population within 3 su; over 20
realisations the pooled pulls have mean within ±0.3 and sd in 0.8–1.2.
A Jacobian check of dR/dκ' and dR/dκ (shared by both spins of Cu1) by central
differences is in tests/test_pnd_spin_multipoles.py.

Usage: python validation/pnd_pull_study.py [--realisations 20] [--kappa]
(--kappa also frees Cu1.kappa and Cu1.kappa_prime.)
"""

from __future__ import annotations

import argparse
import copy
import time

import gemmi
import numpy as np

from chasm.crystal.structure import Atom, Crystal
from chasm.density.dorbitals import D_ORBITALS, multipoles_from_orbitals
from chasm.density.harmonics import lm_labels
from chasm.density.model import HansenCoppensAtom, SphericalAtom, SplitAtom
from chasm.neutron.geometry import busing_levy_b
from chasm.neutron.rcif import PndDataset
from chasm.refine.flipping_data import FlippingData
from chasm.refine.pnd_data import PndOptions
from chasm.refine.problem import SolverOptions
from chasm.refine.refinement import Refinement, Stage

CELL = (7.42, 9.06, 8.13, 90.0, 103.5, 90.0)
GROUP = "P 1 21/c 1"
N_REFLECTIONS = 260
SPIN_CU = 0.8  # μB in d(x²−y²)
SPIN_LIGAND = 0.05  # μB on N1 and O1
SIGMA_REL = 0.01  # σ(R) / R
FIELD = 5.0  # T
FREE_CU = [f"Cu1.P{s}.spin" for s in lm_labels(4) if s[0] in "24"]  # even l ≥ 2
FREE = ["Cu1.Pv.spin", *FREE_CU, "N1.Pv.spin", "O1.Pv.spin"]


def _rotation(axis, angle_deg: float) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    a = np.radians(angle_deg)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


def make_crystal() -> tuple[Crystal, np.ndarray]:
    """The crystal (Cu1 on −1 at the origin) and Cu1's local frame (columns x, y, z).

    The CuN2O2 plane is tilted in the cell by a fixed rotation; N1 at 2.00 Å
    along local x, O1 at 1.95 Å along local y; C and H atoms complete the
    ligands (positions only matter for F_N).
    """
    cell = gemmi.UnitCell(*CELL)
    frac = np.array(cell.frac.mat.tolist())
    frame = _rotation([1.0, 0.4, 0.7], 37.0)  # columns: local x, y, z (Cartesian)
    ex, ey = frame[:, 0], frame[:, 1]
    ez = frame[:, 2]
    cart = {
        "Cu1": np.zeros(3),
        "N1": 2.00 * ex,
        "O1": 1.95 * ey,
        "C1": 2.00 * ex + 1.33 * (0.5 * ex + 0.866 * ez),
        "C2": 1.95 * ey + 1.27 * (0.5 * ey - 0.866 * ez),
        "H1": 2.00 * ex + 1.33 * (0.5 * ex + 0.866 * ez) + 1.08 * ex,
        "H2": 1.95 * ey + 1.27 * (0.5 * ey - 0.866 * ez) + 1.08 * ey,
    }
    atoms = []
    for label, r in cart.items():
        element = label.rstrip("0123456789")
        u = 0.025 if element == "H" else (0.010 if element == "Cu" else 0.015)
        atoms.append(Atom(label, element, frac @ r, uiso=u))
    cr = Crystal.from_parts(list(CELL), GROUP, atoms, wavelength=0.84)
    return cr, frame


def dx2y2_spin() -> np.ndarray:
    """The 25 spin multipoles of SPIN_CU μB in d(x²−y²), with P00 moved to Pv (P00 = 0)."""
    p_orb = np.zeros(15)
    p_orb[D_ORBITALS.index("x2-y2")] = SPIN_CU
    plm = multipoles_from_orbitals(p_orb)
    assert abs(plm[0] - SPIN_CU) < 1e-12
    plm[0] = 0.0
    return plm


def true_models(frame: np.ndarray) -> list:
    """Split Cu1, N1, O1 (chargespin truth) and spherical C, H (not magnetic)."""
    cu = HansenCoppensAtom("Cu", pv=9.0, lmax=4, frame=frame, valence=["3d"])
    cu.plm[lm_labels(4).index("20")] = 0.1  # a charge asphericity (fixed, unseen by PND)
    n = HansenCoppensAtom("N", pv=5.2, lmax=2, frame=frame)
    o = HansenCoppensAtom("O", pv=6.3, lmax=2, frame=frame)
    return [
        SplitAtom.from_charge_and_spin(cu, SPIN_CU, dx2y2_spin(), True, True),
        SplitAtom.from_charge_and_spin(n, SPIN_LIGAND, None, True, True),
        SplitAtom.from_charge_and_spin(o, SPIN_LIGAND, None, True, True),
        SphericalAtom("C"),
        SphericalAtom("C"),
        SphericalAtom("H"),
        SphericalAtom("H"),
    ]


def lowest_hkl(crystal: Crystal, n: int) -> np.ndarray:
    """The n lowest-angle unique (2/m) reflections that are not systematically absent."""
    sg = crystal.spacegroup
    ops, asu = sg.operations(), gemmi.ReciprocalAsu(sg)
    rng = range(-8, 9)
    hkl = np.array(
        [
            (h, k, l)
            for h in rng
            for k in rng
            for l in rng  # noqa: E741
            if (h, k, l) != (0, 0, 0)
            and asu.is_in([h, k, l])
            and not ops.is_systematically_absent([h, k, l])
        ]
    )
    stol = 0.5 * np.linalg.norm(hkl @ np.asarray(crystal.B, float).T, axis=1)
    return hkl[np.argsort(stol, kind="stable")[:n]]


def flipping_block(name: str, hkl: np.ndarray, ub: np.ndarray, field: float, fr=None, sigma=None):
    """A simulated flipping-ratio block: λ 0.84 Å, P = −0.9, e = 0.95, no extinction.

    Parameters
    ----------
    name : str
    hkl : ndarray (n, 3)
    ub : ndarray (3, 3)
        CCSL orientation matrix (lab Z, the field, is U's third row).
    field : float
        Applied field (T).
    fr, sigma : array_like or None
        Flipping ratios and σ(R) (default 1 and 0.01).
    """
    n = len(hkl)
    return PndDataset(
        name=name,
        wavelength=0.84,
        field=field,
        polarisation=-0.9,
        efficiency=0.95,
        ub=ub,
        ub_type="CCSL",
        extinction_model=None,
        mosaicity=0.0,
        radius=0.0,
        phase=None,
        hkl=np.asarray(hkl),
        fr=np.ones(n) if fr is None else np.asarray(fr, float),
        fr_sigma=np.full(n, 0.01) if sigma is None else np.asarray(sigma, float),
        fr_calc=None,
        excluded=np.zeros(n, dtype=bool),
        lines=np.arange(n),
    )


def dataset(crystal: Crystal, hkl: np.ndarray, fr=None, sigma=None) -> PndDataset:
    """The study's block: field 5 T along a general direction of the crystal."""
    u = _rotation([0.3, 1.0, -0.2], 52.0)  # lab Z = 3rd row of U: a general direction
    return flipping_block("pnd", hkl, u @ busing_levy_b(crystal.B), FIELD, fr, sigma)


def build(crystal: Crystal, models: list, raw: PndDataset) -> Refinement:
    """PND-only refinement in the charge/spin basis (covariance without GOF factor)."""
    data = FlippingData("pnd", raw, crystal, PndOptions(extinction=False))
    opts = SolverOptions(covariance="none", tol=1e-4)
    return Refinement(crystal, models, [data], basis="chargespin", options=opts)


def simulate(noise_seed: int):
    """(crystal, models, hkl, noisy R, σ(R), true values by name) for one realisation."""
    cr, frame = make_crystal()
    models = true_models(frame)
    hkl = lowest_hkl(cr, N_REFLECTIONS)
    ref = build(cr, models, dataset(cr, hkl))
    p = ref.params.values
    ref.set_values(p)
    r_true = ref.datasets[0].evaluate(p).y_calc
    sigma = SIGMA_REL * r_true
    r_obs = r_true + np.random.default_rng(noise_seed).normal(size=len(r_true)) * sigma
    truth = dict(zip(ref.params.names, p, strict=True))
    return cr, models, hkl, r_obs, sigma, truth


def refine_realisation(noise_seed: int, free_kappa: bool = False) -> dict:
    """Refine one noise realisation from perturbed spin populations.

    Returns
    -------
    dict
        ``names``, ``values``, ``su``, ``truth``, ``pulls`` (arrays over the
        free parameters), ``gof``, ``cycles``, ``converged``, ``n_obs``,
        ``r_range`` (min, max of R).
    """
    cr, models, hkl, r_obs, sigma, truth = simulate(noise_seed)
    cr, models = copy.deepcopy(cr), copy.deepcopy(models)
    ref = build(cr, models, dataset(cr, hkl, r_obs, sigma))
    free = FREE + (["Cu1.kappa", "Cu1.kappa_prime"] if free_kappa else [])
    rng = np.random.default_rng(5000 + noise_seed)
    for name in free:
        ref.params[name].value = truth[name] + (
            rng.normal(scale=0.02) if "kappa" in name else rng.normal(scale=0.05)
        )
    ref.set_values(ref.params.values)
    out = ref.run_stage(Stage("spin", free=free, max_cycles=60))
    names = ref.params.free_names
    values = np.array([ref.params[n].value for n in names])
    su = np.array([ref.params[n].su for n in names])
    true = np.array([truth[n] for n in names])
    return {
        "names": names,
        "values": values,
        "su": su,
        "truth": true,
        "pulls": (values - true) / su,
        "gof": out.result.gof,
        "cycles": out.result.cycles,
        "converged": out.result.converged,
        "n_obs": len(hkl),
        "r_range": (float(r_obs.min()), float(r_obs.max())),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--realisations", type=int, default=20)
    ap.add_argument("--kappa", action="store_true", help="free Cu1.kappa and Cu1.kappa_prime")
    args = ap.parse_args()
    t0 = time.perf_counter()
    runs = [refine_realisation(seed, args.kappa) for seed in range(1, args.realisations + 1)]
    elapsed = time.perf_counter() - t0
    first = runs[0]
    names = first["names"]
    print(
        f"{args.realisations} realisations, {first['n_obs']} flipping ratios each "
        f"(R from {first['r_range'][0]:.3f} to {first['r_range'][1]:.3f} in realisation 1), "
        f"{len(names)} free parameters, {elapsed:.1f} s"
    )
    pulls = np.array([r["pulls"] for r in runs])  # (realisations, parameters)
    print(
        f"{'parameter':18s} {'truth':>8s} {'mean est':>9s} {'mean su':>8s} "
        f"{'sd est':>8s} {'pull mean':>9s} {'pull sd':>8s} {'max|pull|':>9s}"
    )
    for k, name in enumerate(names):
        est = np.array([r["values"][k] for r in runs])
        su = np.array([r["su"][k] for r in runs])
        print(
            f"{name:18s} {first['truth'][k]:8.4f} {est.mean():9.4f} {su.mean():8.4f} "
            f"{est.std(ddof=1):8.4f} {pulls[:, k].mean():+9.3f} {pulls[:, k].std(ddof=1):8.3f} "
            f"{np.abs(pulls[:, k]).max():9.2f}"
        )
    flat = pulls.ravel()
    n_out = int(np.sum(np.abs(flat) > 3))
    print(
        f"pooled pulls ({flat.size}): mean {flat.mean():+.3f} (target ±0.3), "
        f"sd {flat.std(ddof=1):.3f} (target 0.8–1.2); |pull| > 3: {n_out} "
        f"(expected {flat.size * 0.0027:.1f}); GOF {min(r['gof'] for r in runs):.3f}–"
        f"{max(r['gof'] for r in runs):.3f}; cycles {min(r['cycles'] for r in runs)}–"
        f"{max(r['cycles'] for r in runs)}; all converged: {all(r['converged'] for r in runs)}"
    )
    ok = abs(flat.mean()) <= 0.3 and 0.8 <= flat.std(ddof=1) <= 1.2
    print(f"verdict: {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()

"""Pull study of the seed case: the joint X-ray/UND/PND route under UNIT, NLOG and LOG.

Issue 5, "What it must show", on the simulated azido-bridged Cu(II) dimer of
:mod:`chasm.examples.seed`. For every noise realisation (seed i of
:func:`chasm.examples.seed.simulate`):

1. simulate X-ray F², UND F² and flipping ratios from the true model;
2. start from neutral spherical atoms (:func:`~chasm.examples.seed.start_models`)
   and run the route (:func:`~chasm.examples.seed.route`): (a) X-ray scale,
   structure, multipoles; (b) UND scale and neutron ADPs, then the spin
   populations on PND data alone. Every stage of (a) and (b) fits ONE data set,
   for which UNIT, NLOG and LOG have the same minimum, the same steps and the
   same su (the factor c_e multiplies M and b alike and cancels in the su), so
   they run once and are shared by the three schemes; a user who sets the scheme
   for the whole route gets the same numbers (checked in
   tests/test_seed_joint.py);
3. add the total-spin constraint Σ m_j (Pv↑ − Pv↓ + P00↑ − P00↓) = the true
   total spin of the model (1.016 μB per asymmetric unit; ``route`` accepts
   ``total_spin`` but does not add it, so it is added here with
   :meth:`StructureModel.spin_constraint`) and run the joint stage (d) once per
   scheme from the same point.

Pulls (estimate − truth)/su, the truth read by parameter name from the true
models in the refinement's layout (:func:`chasm.examples.seed.truth_values`),
for four groups:

* ``spin``: Pv.spin of Cu1, O1, N1–N5 and the Cu l = 2, 4 spin multipoles
  (the parameters of the PND-only stage);
* ``charge``: Pv, P_lm (l ≥ 1) and κ of the non-H atoms;
* ``H``: Pv and the dipoles of the H atoms (the route refines them with the
  charge multipoles; their κ = κ' = 1.2, positions and X-ray Uiso stay at the
  truth);
* ``xyz/ADP``: positions and X-ray ADPs of the non-H atoms, neutron ADPs of
  all atoms;

the last two are informative, not targets of the issue. Each group is taken
"separate" (after stages a–b: charge and structure from X-rays alone,
neutron ADPs from UND alone, spins from PND alone) and "joint" (after d).

Checked in every realisation: every stage converges; after every cycle the
constraint rows hold to 1e-10, the charge of the asymmetric unit is 0 and (in
stage d) the total spin equals its target, both summed independently of the
constraint object from the model populations with site multiplicities
(:func:`independent_totals`). ``--gradient`` adds, on the first realisation,
a finite-difference check that the gradient of C (Σχ², Σ N_e ln χ²_e or
Σ ln χ²_e, computed here from the data sets' χ²) vanishes at the converged
joint point along null-space coordinates and random directions of the
constraint space (:func:`gradient_check`).

The refined model can represent the truth exactly: what the route keeps fixed
(κ' = 1 of the non-H atoms, κ = κ' = 1.2, positions and X-ray Uiso of H, P00,
the odd-l Cu spin multipoles and the ligand spin multipoles, all zero) is at
its true value. ``--hessian`` (default on) compares, for every joint fit, the
solver's covariance with the one built on the exact Hessian of C
(:func:`hessian_check`): under NLOG and LOG the factors c_e depend on the
parameters, which the Gauss-Newton matrix leaves out.

Usage:  python validation/seed_pull_study.py [--scheme unit|nlog|log|all]
        [--realisations 20] [--first-seed 0] [--full] [--gradient none|spin|all]
        [--no-hessian] [--save FILE.pickle] [--free-total-spin]
Default size: X-ray to sinθ/λ = 0.7 Å⁻¹, 1,000 UND, 212 PND (as ``chasm demo``);
``--full``: X-ray to 1.0 Å⁻¹, 2,000 UND, 212 PND.
Exit status 1 when a target of the issue or a check fails (:func:`criteria`).
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import gemmi
import numpy as np

from chasm.density.databank import spherical_atom
from chasm.density.model import HansenCoppensAtom, SplitAtom
from chasm.examples import seed
from chasm.refine.refinement import Refinement, StageOutcome, share_gof

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pull_study import machine  # noqa: E402

SCHEMES = ("unit", "nlog", "log")
SIZES = {"default": (0.7, 1000, 212), "full": (1.0, 2000, 212)}
GROUPS = ("spin", "charge", "H", "xyz/ADP")
TARGET_GROUPS = ("spin", "charge")
PHASES = ("separate", "joint")
CONSTRAINT_TOL = 1e-10
#: targets of the issue
PULL_MEAN, PULL_SD = 0.3, (0.8, 1.2)
RW_X_POINTS, RW_PND_POINTS = 0.05, 0.3


# ------------------------------------------------------------------ independent sums
def _orbit_size(crystal, xyz: np.ndarray, tol: float = 1e-4) -> int:
    """Number of distinct images of a fractional position under the space group (per cell)."""
    rot, trans = crystal.symops
    images = (np.einsum("nij,j->ni", rot, xyz) + trans) % 1.0
    distinct: list[np.ndarray] = []
    for x in images:
        if not any(
            np.linalg.norm(crystal.A @ (d - np.round(d))) < tol for d in (x - y for y in distinct)
        ):
            distinct.append(x)
    return len(distinct)


def _populations(m) -> tuple[float, float]:
    """(Pv + P00, number of core electrons) of one Hansen-Coppens part."""
    p00 = float(m.plm[0]) if m.lmax >= 0 else 0.0
    return m.pv + p00, spherical_atom(m.element, m.charge, m.valence).n_core


def independent_totals(crystal, models) -> tuple[float, float]:
    """(charge in e, spin in μB) of the asymmetric unit, from the model populations.

    Σ_j m_j (Z_j − Pc n_core − Pv − P00) and Σ_j m_j (Pv↑ + P00↑ − Pv↓ − P00↓),
    m_j = occupancy × (images of atom j per cell) / (operations per cell); a
    split atom counts both spin parts and its own core. Written apart from the
    constraint object (:meth:`StructureModel.charge_constraint`), as its check.
    """
    n_ops = len(crystal.symops[0])
    charge = spin = 0.0
    for atom, m in zip(crystal.atoms, models, strict=True):
        weight = atom.occupancy * _orbit_size(crystal, np.asarray(atom.xyz, float)) / n_ops
        z = gemmi.Element(atom.element).atomic_number
        if isinstance(m, SplitAtom):
            up, core = _populations(m.up)
            dn, _ = _populations(m.dn)
            charge += weight * (z - m.pc * core - up - dn)
            spin += weight * (up - dn)
        elif isinstance(m, HansenCoppensAtom):
            val, core = _populations(m)
            charge += weight * (z - m.pc * core - val)
        else:
            charge += weight * float(getattr(m, "charge", 0))
    return charge, spin


class CycleChecker:
    """Callback of every cycle: constraint rows, charge and total spin of the models.

    ``spin_target`` None: the total spin is not checked (stages before d).
    Keeps the worst deviations seen.
    """

    def __init__(self, ref: Refinement, charge_target: float = 0.0):
        self.ref = ref
        self.charge_target = charge_target
        self.spin_target: float | None = None
        self.cycles = 0
        self.rows = self.charge = self.spin = 0.0

    def __call__(self, info) -> None:
        ref = self.ref
        ref.set_values(info.p)
        cons = ref.all_constraints()
        self.rows = max(self.rows, float(np.max(np.abs(cons.A @ info.p - cons.b), initial=0.0)))
        q, s = independent_totals(ref.crystal, ref.models)
        self.charge = max(self.charge, abs(q - self.charge_target))
        if self.spin_target is not None:
            self.spin = max(self.spin, abs(s - self.spin_target))
        self.cycles += 1

    def worst(self) -> float:
        return max(self.rows, self.charge, self.spin)


# ------------------------------------------------------------------ score and gradient
def score_from_chi2(chi2: np.ndarray, n: np.ndarray, scheme: str) -> float:
    """C of CONVENTIONS.md: Σχ², Σ N_e ln χ²_e or Σ ln χ²_e."""
    chi2 = np.asarray(chi2, dtype=float)
    if scheme == "unit":
        return float(np.sum(chi2))
    if scheme == "nlog":
        return float(np.sum(np.asarray(n, dtype=float) * np.log(chi2)))
    if scheme == "log":
        return float(np.sum(np.log(chi2)))
    raise ValueError(f"unknown scheme {scheme!r}")


@dataclass
class GradientCheck:
    """Central differences of C at the converged point along directions v (one su long).

    ``slope``: dC/dt per su of the direction; ``line_step``: the shift (in su)
    along v that minimises C on that line, slope / curvature: the
    scheme-independent measure of how far from stationary the point is.
    """

    scheme: str
    labels: list[str]
    slope: np.ndarray
    curvature: np.ndarray
    score_mismatch: float
    seconds: float

    @property
    def line_step(self) -> np.ndarray:
        return self.slope / self.curvature

    def worst(self) -> tuple[str, float, float]:
        """(direction, |slope × su|, |line step|) of the largest line step."""
        k = int(np.argmax(np.abs(self.line_step)))
        return self.labels[k], float(abs(self.slope[k])), float(abs(self.line_step[k]))


def gradient_check(
    ref: Refinement,
    outcome: StageOutcome,
    coordinates: list[str] | None = None,
    n_random: int = 8,
    step: float = 0.1,
    rng: np.random.Generator | int = 0,
) -> GradientCheck:
    """Finite-difference gradient of C at the end of ``outcome`` (the refinement's current point).

    Directions: the null-space coordinates z_i named in ``coordinates`` (all
    when None), each one su_i long (p = p0 + T z), and ``n_random`` random
    directions T L u (cov(z) = L Lᵀ, |u| = 1), one su long in the
    Mahalanobis sense. C is evaluated from the χ² of the stage's data sets
    (``agreement``), not by the solver; its value at the solution must equal
    the solver's score (``score_mismatch``, relative). Steps ±``step``.
    The refinement is left at the solution.
    """
    t0 = time.perf_counter()
    res = outcome.result
    sets = ref.stage_datasets(outcome.stage)
    n = np.array([f.n for f in res.datasets if not f.absolute], dtype=float)

    def score(p: np.ndarray) -> float:
        ref.set_values(p)
        chi2 = np.array([d.agreement(p)["chi2"] for d in sets])
        return score_from_chi2(chi2, n, res.scheme)

    p = res.p.copy()
    c0 = score(p)
    labels, dirs = [], []
    for i, name in enumerate(res.names):
        if coordinates is None or name in coordinates:
            labels.append(name)
            dirs.append(res.T[:, i] * res.su_z[i])
    if n_random:
        w, v = np.linalg.eigh(res.cov_z)
        root = v * np.sqrt(np.maximum(w, 0.0))
        gen = np.random.default_rng(rng)
        for k in range(n_random):
            u = gen.standard_normal(len(w))
            labels.append(f"random {k}")
            dirs.append(res.T @ (root @ (u / np.linalg.norm(u))))
    slope, curv = [], []
    for d in dirs:
        cp, cm = score(p + step * d), score(p - step * d)
        slope.append((cp - cm) / (2.0 * step))
        curv.append((cp + cm - 2.0 * c0) / step**2)
    ref.set_values(p)
    return GradientCheck(
        scheme=res.scheme,
        labels=labels,
        slope=np.array(slope),
        curvature=np.array(curv),
        score_mismatch=abs(c0 - res.score) / abs(res.score),
        seconds=time.perf_counter() - t0,
    )


@dataclass
class HessianCheck:
    """The solver's covariance against the one on the exact (Gauss-Newton) Hessian of C.

    The solver's normal matrix is M = Σ_e c_e J_eᵀW_eJ_e with c_e taken as
    constants. Half the Hessian of C is M − 2 Σ_e k_e b_e b_eᵀ, b_e = c_e
    J_eᵀW_e r_e, k_e = 0 (UNIT), 1/N_e (NLOG), 1 (LOG): the c_e depend on the
    parameters through χ²_e. The fixed-point iteration of the solver
    contracts the error by 1 − λ_min(M⁻¹ H/2) per cycle (``rate``), and the
    estimator's covariance is (H/2)⁻¹ V (H/2)⁻¹ with the solver's middle
    matrix V = Σ_e c_e s_e² M_e, instead of M⁻¹ V M⁻¹.
    """

    scheme: str
    names: list[str]  # the spin coordinates of z
    su_solver: np.ndarray
    su_hessian: np.ndarray
    reconstruction: float  # max relative difference, rebuilt M⁻¹VM⁻¹ vs the solver's su(z)
    rate: float
    gradient: float  # |Σ_e b_e| scaled by sqrt(diag M): the solver's stationarity
    all_ratio: tuple[float, float, str]  # over every z: mean, max of su ratio, its coordinate

    @property
    def ratio(self) -> np.ndarray:
        return self.su_hessian / self.su_solver


def hessian_check(ref: Refinement, outcome: StageOutcome, names: list[str]) -> HessianCheck:
    """Rebuild the normal matrix at the solution, compare the covariances (:class:`HessianCheck`).

    ``names``: parameters (coordinates of z) whose su's are compared. The
    refinement is left at the solution.
    """
    res = outcome.result
    p = res.p
    ref.set_values(p)
    k = len(res.names)
    m_parts, b_parts = [], []
    for d, fit in zip(ref.stage_datasets(outcome.stage), res.datasets, strict=True):
        ev = d.evaluate(p.copy())
        jz = np.asarray(ev.jacobian) @ res.T
        w = np.asarray(ev.weights)
        r = np.asarray(ev.y_obs) - np.asarray(ev.y_calc)
        a = jz * np.sqrt(fit.factor * w)[:, None]
        m_parts.append(a.T @ a)
        b_parts.append(fit.factor * (jz.T @ (w * r)))
    m = np.sum(m_parts, axis=0)
    inv = np.linalg.inv(m)
    middle = np.zeros((k, k))
    for me, fit in zip(m_parts, res.datasets, strict=True):
        middle += fit.factor * fit.variance_factor * me  # the solver's s_e² (from E[χ²_e])
    cov_m = inv @ middle @ inv
    kk = {"unit": 0.0, "nlog": None, "log": 1.0}[res.scheme]
    half_h = m.copy()
    for be, fit in zip(b_parts, res.datasets, strict=True):
        half_h -= 2.0 * (1.0 / fit.n if kk is None else kk) * np.outer(be, be)
    inv_h = np.linalg.inv(half_h)
    cov_h = inv_h @ middle @ inv_h
    su_m = np.sqrt(np.diag(cov_m))
    idx = [res.names.index(n) for n in names if n in res.names]
    lam = np.linalg.eigvals(np.linalg.solve(m, half_h)).real
    dm = np.sqrt(np.diag(m))
    every = np.sqrt(np.diag(cov_h)) / res.su_z
    top = int(np.argmax(every))
    return HessianCheck(
        scheme=res.scheme,
        names=[res.names[i] for i in idx],
        su_solver=res.su_z[idx],
        su_hessian=np.sqrt(np.diag(cov_h))[idx],
        reconstruction=float(np.max(np.abs(su_m / res.su_z - 1.0))),
        rate=float(1.0 - lam.min()),
        gradient=float(np.max(np.abs(np.sum(b_parts, axis=0) / dm))),
        all_ratio=(float(every.mean()), float(every[top]), res.names[top]),
    )


# ------------------------------------------------------------------ one realisation
@dataclass
class JointFit:
    """The joint stage under one scheme."""

    scheme: str
    values: np.ndarray
    su: np.ndarray
    converged: bool
    cycles: int
    constraint_worst: float  # rows, charge and total spin over every cycle
    charge: float  # at the end, independent sum
    spin: float
    rw_x: float  # Rw(F) of the X-ray set
    rw_pnd: float  # Rw(1 - R)
    gof_pnd: float
    shares: dict[str, tuple[float, float]]  # set -> (gradient share, information share)
    n_free: int
    seconds: float
    gradient: GradientCheck | None = None
    hessian: HessianCheck | None = None


@dataclass
class Realisation:
    """Outcome of one noise realisation: the separate route and the joint fits."""

    seed: int
    names: list[str]
    truth: np.ndarray
    separate_values: np.ndarray
    separate_su: np.ndarray
    converged: list[bool]
    constraint_worst: float  # stages a-b
    rw_x_a: float  # Rw(F) after stage a
    rw_pnd_b: float  # Rw(1 - R) after stage b
    gof_pnd_b: float
    chi2_pnd_b: float
    n_pnd: int
    total_spin: float
    rw_pnd_true_nuclear: float = float("nan")  # PND-only with true N ADPs and positions
    chi2_pnd_true_nuclear: float = float("nan")
    joint: dict[str, JointFit] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    seconds: float = 0.0

    def index(self, names: list[str]) -> np.ndarray:
        pos = {n: k for k, n in enumerate(self.names)}
        return np.array([pos[n] for n in names], dtype=int)

    def pulls(self, group: str, phase: str, scheme: str = "unit") -> np.ndarray:
        """(estimate − truth)/su of a group after the separate route or the joint stage."""
        idx = self.index(self.groups[group])
        if phase == "separate":
            v, s = self.separate_values, self.separate_su
        else:
            v, s = self.joint[scheme].values, self.joint[scheme].su
        return (v[idx] - self.truth[idx]) / s[idx]


def pull_groups(ref: Refinement) -> dict[str, list[str]]:
    """The parameter names of each pull group (module docstring)."""
    g = seed.parameter_groups(ref)
    hyd = set(g["h"])

    def is_h(name: str) -> bool:
        return name.split(".")[0] in hyd

    return {
        "spin": list(g["spin"]),
        "charge": [n for n in g["charge"] + g["kappa"] if not is_h(n)],
        "H": [n for n in g["charge"] if is_h(n)],
        "xyz/ADP": list(g["xyz"]) + list(g["adp_x"]) + list(g["adp_n"]),
    }


def prepare(
    seed_value: int, size: tuple[float, int, int] = SIZES["default"]
) -> tuple[Refinement, np.ndarray]:
    """Simulated data of one realisation, the refinement from the user's start, the truth vector."""
    smax, n_und, n_pnd = size
    truth_cr = seed.seed_crystal()
    truth = seed.truth_models(truth_cr)
    data = seed.simulate(
        truth_cr, truth, xray_smax=smax, und_count=n_und, pnd_count=n_pnd, seed=seed_value
    )
    crystal = seed.seed_crystal()
    models = seed.start_models(crystal)
    ref = seed.build_refinement(crystal, models, data, scheme="unit")
    tv = seed.truth_values(truth_cr)
    missing = [n for n in ref.params.names if n not in tv]
    if missing:
        raise RuntimeError(f"no true value for {missing[:5]}")
    return ref, np.array([tv[n] for n in ref.params.names])


def true_total_spin() -> float:
    """Total spin (μB) of the asymmetric unit of the true model (independent sum)."""
    cr = seed.seed_crystal()
    return independent_totals(cr, seed.truth_models(cr))[1]


def pnd_with_true_nuclear(ref: Refinement, truth: np.ndarray, stage) -> dict:
    """Diagnostic: the PND-only spin stage again, neutron ADPs and positions at the truth.

    Separates what the PND-only fit lacks because of the nuclear structure it
    is given (neutron ADPs from UND alone, positions from X-rays alone) from
    the noise. The refinement is put back where it was.
    """
    values, su = ref.params.values.copy(), ref.params.su.copy()
    g = seed.parameter_groups(ref)
    idx = [ref.params.names.index(n) for n in g["adp_n"] + g["xyz"]]
    p = values.copy()
    p[idx] = truth[idx]
    ref.set_values(p)
    o = ref.run_stage(stage)
    ag = ref.agreement(o.n_free)["pnd"]
    ref.set_values(values)
    ref.params.set_su(su)
    return {"rw_pnd_true_nuclear": float(ag["Rw"]), "chi2_pnd_true_nuclear": float(ag["chi2"])}


def run_separate(
    ref: Refinement, checker: CycleChecker, stages, truth: np.ndarray | None = None
) -> dict:
    """Stages a-b of the route; figures of the X-ray-only and PND-only fits.

    With ``truth``, also :func:`pnd_with_true_nuclear` after the PND-only stage.
    """
    out = {"converged": []}
    for st in stages:
        o = ref.run_stage(st, callback=checker)
        out["converged"].append(bool(o.result.converged))
        checker.rows = max(checker.rows, o.max_constraint_residual)
        if st.name == "a: multipoles":
            out["rw_x_a"] = float(ref.agreement(o.n_free)["xray"]["Rw"])
        if st.name == "b: PND spin":
            ag = ref.agreement(o.n_free)["pnd"]
            out.update(rw_pnd_b=float(ag["Rw"]), gof_pnd_b=float(ag["gof"]))
            out.update(chi2_pnd_b=float(ag["chi2"]), n_pnd=int(ag["n_obs"]))
            if truth is not None:
                out.update(pnd_with_true_nuclear(ref, truth, st))
    return out


def run_joint(
    ref: Refinement,
    stage,
    scheme: str,
    start: tuple[np.ndarray, np.ndarray],
    checker: CycleChecker,
    gradient: dict | None = None,
    hessian: bool = False,
) -> JointFit:
    """Stage d under ``scheme`` from the point ``start`` = (values, su) after stage b."""
    t0 = time.perf_counter()
    ref.scheme = scheme
    ref.set_values(start[0])
    ref.params.set_su(start[1])
    checker.rows = checker.charge = checker.spin = 0.0
    o = ref.run_stage(stage, callback=checker)
    checker.rows = max(checker.rows, o.max_constraint_residual)
    ag = ref.agreement(o.n_free)
    share_gof(ag, o.n_free)
    q, s = independent_totals(ref.crystal, ref.models)
    fit = JointFit(
        scheme=scheme,
        values=ref.params.values.copy(),
        su=ref.params.su.copy(),
        converged=bool(o.result.converged),
        cycles=int(o.result.cycles),
        constraint_worst=checker.worst(),
        charge=q,
        spin=s,
        rw_x=float(ag["xray"]["Rw"]),
        rw_pnd=float(ag["pnd"]["Rw"]),
        gof_pnd=float(ag["pnd"]["gof"] or np.nan),
        shares={d.name: (d.gradient_share, d.information_share) for d in o.result.datasets},
        n_free=o.n_free,
        seconds=0.0,
    )
    if gradient is not None:
        kw = dict(gradient)
        if kw.get("coordinates") == "spin":
            kw["coordinates"] = pull_groups(ref)["spin"]
        elif kw.get("coordinates") == "all":
            kw["coordinates"] = None
        fit.gradient = gradient_check(ref, o, **kw)
    if hessian:
        fit.hessian = hessian_check(ref, o, pull_groups(ref)["spin"])
    fit.seconds = time.perf_counter() - t0
    return fit


def separate_route(
    seed_value: int, size: tuple[float, int, int] = SIZES["default"], total_spin: bool = True
) -> tuple[Refinement, object, CycleChecker, Realisation]:
    """Stages a-b of one realisation, then the total-spin constraint for stage d.

    Returns the refinement (at the end of stage b), the joint stage, the
    cycle checker (set for stage d) and the :class:`Realisation` without
    joint fits. ``total_spin=False`` leaves the total spin free in the joint
    stage (a diagnostic of what the constraint does to the su's).
    """
    ref, truth = prepare(seed_value, size)
    stages = seed.route(ref)
    checker = CycleChecker(ref)
    sep = run_separate(ref, checker, stages[:-1], truth)
    total = true_total_spin()
    out = Realisation(
        seed=seed_value,
        names=list(ref.params.names),
        truth=truth,
        separate_values=ref.params.values.copy(),
        separate_su=ref.params.su.copy(),
        converged=sep["converged"],
        constraint_worst=checker.worst(),
        rw_x_a=sep["rw_x_a"],
        rw_pnd_b=sep["rw_pnd_b"],
        gof_pnd_b=sep["gof_pnd_b"],
        chi2_pnd_b=sep["chi2_pnd_b"],
        n_pnd=sep["n_pnd"],
        total_spin=total,
        rw_pnd_true_nuclear=sep.get("rw_pnd_true_nuclear", float("nan")),
        chi2_pnd_true_nuclear=sep.get("chi2_pnd_true_nuclear", float("nan")),
        groups=pull_groups(ref),
    )
    if total_spin:
        ref.add_constraints(ref.structure.spin_constraint(ref.params, total))
        checker.spin_target = total
    return ref, stages[-1], checker, out


def run_realisation(
    seed_value: int,
    size: tuple[float, int, int] = SIZES["default"],
    schemes=SCHEMES,
    gradient: dict | None = None,
    hessian: bool = True,
    total_spin: bool = True,
) -> Realisation:
    """One noise realisation: separate route once, then the joint stage per scheme."""
    t0 = time.perf_counter()
    ref, joint, checker, out = separate_route(seed_value, size, total_spin)
    start = (out.separate_values, out.separate_su)
    for scheme in schemes:
        out.joint[scheme] = run_joint(ref, joint, scheme, start, checker, gradient, hessian)
    out.seconds = time.perf_counter() - t0
    return out


# ------------------------------------------------------------------ statistics
@dataclass
class GroupStats:
    """Pulls of one group pooled over realisations."""

    names: list[str]
    pulls: np.ndarray  # (realisations, parameters)

    @property
    def mean(self) -> float:
        return float(self.pulls.mean())

    @property
    def sd(self) -> float:
        return float(self.pulls.std(ddof=1))

    @property
    def within3(self) -> float:
        return float(np.mean(np.abs(self.pulls) <= 3.0))

    def worst(self) -> tuple[str, float, int]:
        """(parameter, pull, realisation index) of the largest |pull|."""
        r, j = np.unravel_index(int(np.argmax(np.abs(self.pulls))), self.pulls.shape)
        return self.names[j], float(self.pulls[r, j]), int(r)

    def ok(self) -> bool:
        return abs(self.mean) <= PULL_MEAN and PULL_SD[0] <= self.sd <= PULL_SD[1]


def group_stats(results: list[Realisation], group: str, phase: str, scheme: str) -> GroupStats:
    names = results[0].groups[group]
    return GroupStats(names, np.array([r.pulls(group, phase, scheme) for r in results]))


def spin_labels() -> list[str]:
    return [f"{lab}.Pv.spin" for lab in seed.SPIN_POPULATIONS]


def criteria(results: list[Realisation], schemes, gradient_tol: float = 0.01) -> list[str]:
    """Failed targets and checks (empty: all met).

    Targets of the issue: pulls of every group mean within ±0.3, sd 0.8–1.2
    (joint, per scheme; the separate route under its own name); Rw(F) of the
    X-rays joint vs X-ray-only within 0.05 points; Rw(1−R) joint vs PND-only
    within 0.3 points (both for the mean over realisations). Checks: every
    stage converged, constraints, charge and total spin within 1e-10 after
    every cycle, gradient line steps below ``gradient_tol`` su.
    """
    fails = []
    for g in TARGET_GROUPS:
        s = group_stats(results, g, "separate", "unit")
        if not s.ok():
            fails.append(f"separate {g}: pull mean {s.mean:+.2f} sd {s.sd:.2f}")
    for sc in schemes:
        for g in TARGET_GROUPS:
            s = group_stats(results, g, "joint", sc)
            if not s.ok():
                fails.append(f"{sc} joint {g}: pull mean {s.mean:+.2f} sd {s.sd:.2f}")
        dx = 100 * np.mean([r.joint[sc].rw_x - r.rw_x_a for r in results])
        if abs(dx) > RW_X_POINTS:
            fails.append(f"{sc}: Rw(F) X-ray joint - X-ray-only {dx:+.3f} points")
        dp = 100 * np.mean([r.joint[sc].rw_pnd - r.rw_pnd_b for r in results])
        if abs(dp) > RW_PND_POINTS:
            fails.append(f"{sc}: Rw(1-R) joint - PND-only {dp:+.3f} points")
        if not all(r.joint[sc].converged for r in results):
            fails.append(f"{sc}: a joint stage did not converge")
        worst = max(r.joint[sc].constraint_worst for r in results)
        if worst > CONSTRAINT_TOL:
            fails.append(f"{sc}: constraint/charge/spin deviation {worst:.1e}")
        for r in results:
            gc = r.joint[sc].gradient
            if gc is not None and gc.worst()[2] > gradient_tol:
                fails.append(f"{sc}: gradient line step {gc.worst()[2]:.1e} su ({gc.worst()[0]})")
    if not all(all(r.converged) for r in results):
        fails.append("a stage of the separate route did not converge")
    if max(r.constraint_worst for r in results) > CONSTRAINT_TOL:
        fails.append("constraint/charge deviation in stages a-b")
    return fails


# ------------------------------------------------------------------ output
def _sd(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1)) if len(x) > 1 else 0.0


def _group_line(label: str, s: GroupStats) -> str:
    name, pull, r = s.worst()
    flag = "ok" if s.ok() else "MISSED"
    return (
        f"  {label:<18s} {s.pulls.shape[1]:4d} {s.mean:+7.3f} {s.sd:6.3f}"
        f" {100 * s.within3:7.1f} %  {pull:+6.2f} {name} (seed {r})  {flag}"
    )


def print_report(results: list[Realisation], schemes) -> None:
    nr = len(results)
    head = f"  {'group':<18s} {'n':>4s} {'mean':>7s} {'sd':>6s} {'<=3 su':>9s}  worst pull"
    print(f"\n{nr} realisations; pulls (estimate - truth)/su, pooled over parameters")
    print("separate route (stages a-b: X-ray only, UND only, PND only; scheme-independent)")
    print(head)
    for g in GROUPS:
        print(_group_line(g, group_stats(results, g, "separate", "unit")))
    spins = spin_labels()
    idx = results[0].index(spins)
    sep_v = np.array([r.separate_values[idx] for r in results])
    sep_s = np.array([r.separate_su[idx] for r in results])
    truth = results[0].truth[idx]
    for sc in schemes:
        jf = [r.joint[sc] for r in results]
        print(f"\n=== {sc.upper()}: joint stage d ({jf[0].n_free} free parameters)")
        print(head)
        for g in GROUPS:
            print(_group_line(g, group_stats(results, g, "joint", sc)))
        for name in jf[0].shares:
            gs = np.array([f.shares[name][0] for f in jf])
            isr = np.array([f.shares[name][1] for f in jf])
            print(
                f"  {name:5s} gradient share {gs.mean():.3f} (sd {_sd(gs):.3f})"
                f"  information share {isr.mean():.3f} (sd {_sd(isr):.3f})"
            )
        v = np.array([f.values[idx] for f in jf])
        s = np.array([f.su[idx] for f in jf])
        print(
            "  spin populations (muB): mean over realisations (mean su) [sd of estimates];"
            " su ratio joint/PND-only; |joint - PND-only|/su_PND mean, max"
        )
        print(
            f"  {'atom':6s} {'true':>6s} {'PND only':>19s} {'joint':>19s} {'ratio':>6s}"
            f" {'diff':>5s} {'max':>5s}"
        )
        for j, name in enumerate(spins):
            diff = np.abs(v[:, j] - sep_v[:, j]) / sep_s[:, j]
            sdv, sds = _sd(v[:, j]), _sd(sep_v[:, j])
            print(
                f"  {name.split('.')[0]:6s} {truth[j]:6.3f}"
                f" {sep_v[:, j].mean():7.4f}({sep_s[:, j].mean():.4f})[{sds:.4f}]"
                f" {v[:, j].mean():7.4f}({s[:, j].mean():.4f})[{sdv:.4f}]"
                f" {np.mean(s[:, j] / sep_s[:, j]):6.3f} {diff.mean():5.2f} {diff.max():5.2f}"
            )
        diffs = np.abs(v - sep_v) / sep_s
        print(
            "  joint spins within 1 su (PND-only su) of PND-only:"
            f" {100 * np.mean(diffs <= 1):.1f} %, within 2 su: {100 * np.mean(diffs <= 2):.1f} %"
        )
        dx = np.array([f.rw_x - r.rw_x_a for f, r in zip(jf, results, strict=True)]) * 100
        dp = np.array([f.rw_pnd - r.rw_pnd_b for f, r in zip(jf, results, strict=True)]) * 100
        print(
            f"  Rw(F) X-ray: X-ray-only {100 * np.mean([r.rw_x_a for r in results]):.3f} %,"
            f" joint {100 * np.mean([f.rw_x for f in jf]):.3f} %; difference {dx.mean():+.3f}"
            f" points (range {dx.min():+.3f} to {dx.max():+.3f}; target within"
            f" {RW_X_POINTS})"
        )
        print(
            f"  Rw(1-R) PND: PND-only {100 * np.mean([r.rw_pnd_b for r in results]):.3f} %,"
            f" joint {100 * np.mean([f.rw_pnd for f in jf]):.3f} %; difference {dp.mean():+.3f}"
            f" points (range {dp.min():+.3f} to {dp.max():+.3f}; target within"
            f" {RW_PND_POINTS})"
        )
        print(
            f"  GOF(PND): PND-only {np.mean([r.gof_pnd_b for r in results]):.3f},"
            f" joint {np.mean([f.gof_pnd for f in jf]):.3f} (shared-parameter GOF)"
        )
        worst = max(f.constraint_worst for f in jf)
        print(
            f"  converged {sum(f.converged for f in jf)}/{nr}, cycles"
            f" {min(f.cycles for f in jf)}-{max(f.cycles for f in jf)}; constraint rows, charge"
            f" and total spin after every cycle within {worst:.1e}; final charge"
            f" {max(abs(f.charge) for f in jf):.1e} e, total spin - target"
            f" {max(abs(f.spin - r.total_spin) for f, r in zip(jf, results, strict=True)):.1e} muB"
        )
        print(f"  joint stage time {np.mean([f.seconds for f in jf]):.1f} s per realisation")
        hc = [f.hessian for f in jf if f.hessian is not None]
        if hc:
            ratio = np.array([h.ratio for h in hc])
            print(
                f"  exact Hessian of C: contraction per cycle 1 - lambda_min(M^-1 H/2)"
                f" {np.mean([h.rate for h in hc]):.3f} (max {max(h.rate for h in hc):.3f});"
                f" su(spin) on it / solver su: mean {ratio.mean():.3f},"
                f" range {ratio.min():.3f}-{ratio.max():.3f}; every parameter: mean"
                f" {np.mean([h.all_ratio[0] for h in hc]):.3f}, max"
                f" {max(h.all_ratio[1] for h in hc):.3f}"
                f" ({max(hc, key=lambda h: h.all_ratio[1]).all_ratio[2]})"
                f" (solver su rebuilt to {max(h.reconstruction for h in hc):.1e};"
                f" stationarity {max(h.gradient for h in hc):.1e})"
            )
            print(
                "    per spin population: "
                + ", ".join(
                    f"{n.split('.')[0]} {x:.2f}"
                    for n, x in zip(hc[0].names, ratio.mean(axis=0), strict=True)
                    if n.endswith("Pv.spin")
                )
            )
        for r, f in zip(results, jf, strict=True):
            if f.gradient is not None:
                print_gradient(f.gradient, r.seed)
    print("\nspin pulls per parameter over realisations: mean/sd (separate, then joint per scheme)")
    names = results[0].groups["spin"]
    cols = [("separate", "unit")] + [("joint", sc) for sc in schemes]
    print(f"  {'parameter':16s}" + "".join(f" {ph[:3] + ' ' + sc:>13s}" for ph, sc in cols))
    tables = [group_stats(results, "spin", ph, sc).pulls for ph, sc in cols]
    for j, name in enumerate(names):
        cells = "".join(f" {t[:, j].mean():+6.2f}/{_sd(t[:, j]):5.2f}" for t in tables)
        print(f"  {name:16s}{cells}")
    print(
        "\nseparate route: PND-only chi2/N"
        f" {np.mean([r.chi2_pnd_b / r.n_pnd for r in results]):.3f}"
        f", GOF {np.mean([r.gof_pnd_b for r in results]):.3f}; stages a-b converged"
        f" {sum(all(r.converged) for r in results)}/{nr}; constraint rows and charge within"
        f" {max(r.constraint_worst for r in results):.1e}"
    )
    print(
        "PND-only again with the true neutron ADPs and positions (diagnostic): Rw(1-R)"
        f" {100 * np.mean([r.rw_pnd_true_nuclear for r in results]):.3f} %"
        f" (with the route's: {100 * np.mean([r.rw_pnd_b for r in results]):.3f} %), chi2/N"
        f" {np.mean([r.chi2_pnd_true_nuclear / r.n_pnd for r in results]):.3f}"
        f" (expected (N - 21)/N = {(results[0].n_pnd - 21) / results[0].n_pnd:.3f})"
    )


def print_gradient(gc: GradientCheck, seed_value: int) -> None:
    name, slope, step = gc.worst()
    coords = [k for k, lab in enumerate(gc.labels) if not lab.startswith("random")]
    rand = [k for k, lab in enumerate(gc.labels) if lab.startswith("random")]
    parts = []
    for label, sel in (("coordinates", coords), ("random directions", rand)):
        if sel:
            parts.append(
                f"{len(sel)} {label}: max |slope x su| {np.max(np.abs(gc.slope[sel])):.1e},"
                f" max |line step| {np.max(np.abs(gc.line_step[sel])):.1e} su"
            )
    print(
        f"  gradient of C at the joint solution (seed {seed_value}): "
        + "; ".join(parts)
        + f"; worst {name}; C vs solver score {gc.score_mismatch:.1e}; {gc.seconds:.0f} s"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scheme", choices=[*SCHEMES, "all"], default="all")
    ap.add_argument("--realisations", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--full", action="store_true", help="X-ray to 1.0 1/A, 2000 UND")
    ap.add_argument(
        "--no-hessian",
        action="store_true",
        help="skip the covariance on the exact Hessian of C (a few s per joint fit)",
    )
    ap.add_argument("--save", help="pickle the results (list of Realisation) to this file")
    ap.add_argument(
        "--free-total-spin",
        action="store_true",
        help="diagnostic: no total-spin constraint in the joint stage",
    )
    ap.add_argument(
        "--gradient",
        choices=["none", "spin", "all"],
        default="spin",
        help="finite-difference gradient check on the first realisation: the spin"
        " coordinates or all null-space coordinates, plus 8 random directions",
    )
    args = ap.parse_args(argv)
    schemes = SCHEMES if args.scheme == "all" else (args.scheme,)
    size = SIZES["full" if args.full else "default"]
    t0 = time.perf_counter()
    print(f"machine: {machine()}")
    print(
        f"seed case: X-ray to sin(theta)/lambda {size[0]} 1/A, {size[1]} UND, {size[2]} PND;"
        f" seeds {args.first_seed}..{args.first_seed + args.realisations - 1};"
        f" schemes {', '.join(schemes)}"
    )
    how = "free (diagnostic)" if args.free_total_spin else "constrained"
    print(f"true total spin {true_total_spin():.6f} muB per asymmetric unit ({how} in d)")
    print("seed  time(s)  stage d cycles per scheme  max|spin pull| per scheme")
    results = []
    for k in range(args.realisations):
        grad = None
        if k == 0 and args.gradient != "none":
            grad = {"coordinates": args.gradient, "n_random": 8}
        r = run_realisation(
            args.first_seed + k,
            size,
            schemes,
            gradient=grad,
            hessian=not args.no_hessian,
            total_spin=not args.free_total_spin,
        )
        results.append(r)
        cyc = " ".join(f"{r.joint[s].cycles:2d}" for s in schemes)
        mx = " ".join(f"{np.abs(r.pulls('spin', 'joint', s)).max():5.2f}" for s in schemes)
        print(f"{r.seed:4d}  {r.seconds:7.1f}  {cyc:>24s}  {mx}", flush=True)
    if args.save:
        with open(args.save, "wb") as fh:
            pickle.dump(results, fh)
    print_report(results, schemes)
    fails = criteria(results, schemes)
    print(f"\ntotal runtime {time.perf_counter() - t0:.0f} s")
    if fails:
        print("targets or checks missed:\n  " + "\n  ".join(fails))
        return 1
    print("PASS: every target and check met")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmarks of polarised-neutron flipping ratios (issue 4).

(a) Flipping ratios and their full Jacobian for the 212 lowest-angle
    reflections of the seed-sized reference structure
    (../shared/data/benchmark/ref.cif + ref.hkl: P 21/n, 33 atoms), for each
    spin model of :data:`SPIN_MODELS`. A model is a function crystal ->
    PndSpinModel (tabulated form factors, :class:`PndData`) or crystal ->
    list of density models (the engine-based joint structure model with split
    atoms, :class:`FlippingData`, ``basis="chargespin"``).
    The data set is simulated (R = 1, σ = 0.01) with the field along b (UB =
    U·B with U's third row along b in the CCSL frame). Timed separately:
    building the PndData (F_N and the magnetic basis of its reflections) and
    ``PndData.calculate(p, jacobian=True)`` (ratios and dR/dp over the whole
    parameter vector of a Refinement: every atomic parameter plus the spin
    ones). For the split model "build" is FlippingData + Refinement (structure
    model, views, site symmetry) + the first evaluation (engines of the
    nuclear and magnetic views), and ``FlippingData.calculate(p, True)``
    gives dR/dp over every structural parameter (positions, both ADP sets,
    charge and spin populations, κ, κ').
(b) A complete PND-only refinement of YTiO3 (Ti susceptibility χ free, to
    convergence, with su) by chasm, beside cryspy's own refinement of the same
    data, spherical model and free parameter (``cryspy.rhochi_rietveld_refinement``:
    scipy BFGS on χ² with numerical derivatives, then ``rhochi_inversed_hessian``
    for the su), both timed in this process after both have loaded the file.
    chasm's time includes building its spin model and data sets from the
    loaded file; cryspy's includes its ``get_dictionary``.

    The data are ytio3.rcif with its 15 systematically absent reflections
    flagged ``_diffrn_refln_excluded`` (a temporary copy read by both): on the
    file as it is, cryspy's R = 0/0 there becomes NaN at some χ and its BFGS
    stops early (one untimed run of that is printed too).

(c) Every refinement of tests/test_pnd_cli.py: the project ``chasm init`` writes
    for each rcif of ../shared/data/pnd (YTiO3 three blocks, Ho2Ti2O7, MnF2
    main.rcif with its twin and asymmetry fit), built and run by chasm
    (``build`` reads the rcif, then the stages), beside cryspy's
    ``rhochi_rietveld_refinement`` of the same file loaded by
    ``cryspy.load_file``, with the same free parameters (those the file marks
    refined with an su; YTiO3: Ti chi, marked by hand as init frees it). Both
    timed in this process after both loaded their files; chasm's time
    includes reading the rcif and building the model, cryspy's its
    ``get_dictionary``.

Every figure is a median of --runs runs (each on freshly loaded objects).

Usage: python benchmarks/bench_pnd.py [--runs 7] [--only a|b|c]
"""

from __future__ import annotations

# isort: off
import chasm.blas as _first  # noqa: F401 - import chasm first: it sets OpenBLAS's thread timeout

# isort: on
import argparse
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy

from bench_sf import load_problem, median_time
from chasm.crystal.structure import Crystal
from chasm.density.dorbitals import D_ORBITALS, multipoles_from_orbitals
from chasm.density.frames import local_frame
from chasm.density.model import HansenCoppensAtom, SphericalAtom, SplitAtom
from chasm.neutron import PndDataset, ion_form_factor, read_rcif, scattering_length
from chasm.neutron.geometry import busing_levy_b
from chasm.refine.flipping_data import FlippingData
from chasm.refine.pnd_data import PndData, PndOptions, PndSpinModel, SpinSite
from chasm.refine.refinement import Refinement, Stage

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "validation"))

import ytio3_chi_scan as ytio3  # noqa: E402
from pnd_pull_study import flipping_block  # noqa: E402

N_REFLECTIONS = 212
N_LIGANDS = 4
TARGET = 10.0


# ----------------------------------------------------------------------------- (a)
def nearest_ligands(crystal: Crystal, label: str, n: int) -> list[str]:
    """Labels of the n N/O atoms closest to atom ``label`` (lattice translations only)."""
    centre = crystal.atoms[crystal.atom_index(label)].xyz
    shifts = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])
    found = []
    for atom in crystal.atoms:
        if atom.element in ("N", "O"):
            d = (atom.xyz - centre)[None, :] + shifts
            found.append((float(np.min(np.linalg.norm(d @ crystal.A.T, axis=1))), atom.label))
    return [name for _, name in sorted(found)[:n]]


def spherical_moments(crystal: Crystal) -> PndSpinModel:
    """Cu1 as Cu²⁺ (C2 = 0.1) with 0.8 μB along the field, 0.05 μB on the 4 nearest N/O.

    The ligand sites use the tabulated O⁻ ⟨j0⟩ (periodictable's only light
    ion), for N as well: a stand-in shape, which does not change the cost.
    """
    sites = [SpinSite("Cu1", ion_form_factor("Cu2+"), c2=0.1, moment=0.8)]
    o_minus = ion_form_factor("O1+")
    sites += [SpinSite(x, o_minus, moment=0.05) for x in nearest_ligands(crystal, "Cu1", N_LIGANDS)]
    b = [scattering_length(a.element) for a in crystal.atoms]
    return PndSpinModel(crystal, b, sites)


def _nearest_image(crystal: Crystal, centre: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    """Cartesian vector (Å) from centre to the nearest lattice translate of xyz."""
    shifts = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)])
    d = ((xyz - centre)[None, :] + shifts) @ crystal.A.T
    return d[np.argmin(np.linalg.norm(d, axis=1))]


def split_multipoles(crystal: Crystal) -> list:
    """Cu1 and its 4 nearest N/O as split Hansen-Coppens atoms (charge/spin basis).

    Cu1: lmax = 4, local x towards the nearest ligand and y in the plane of
    the two nearest, spin 0.8 μB in d(x²−y²) (exact orbital → multipole
    conversion, spherical part in Pv.spin), shared κ and κ'. Ligands: lmax = 2,
    Pv.spin = 0.05 μB, shared κ and κ'. Every other atom spherical (IT92; the
    flipping ratios see only its nuclear scattering).
    """
    labels = nearest_ligands(crystal, "Cu1", N_LIGANDS)
    models: list = [SphericalAtom(a.element) for a in crystal.atoms]
    i_cu = crystal.atom_index("Cu1")
    centre = crystal.atoms[i_cu].xyz
    v = [_nearest_image(crystal, centre, crystal.atoms[crystal.atom_index(x)].xyz) for x in labels]
    frame = local_frame(np.zeros(3), v[0], np.zeros(3), v[1], "X", "Y")
    p_orb = np.zeros(15)
    p_orb[D_ORBITALS.index("x2-y2")] = 0.8
    spin = multipoles_from_orbitals(p_orb)
    spin[0] = 0.0
    cu = HansenCoppensAtom("Cu", pv=9.0, lmax=4, frame=frame, valence=["3d"])
    models[i_cu] = SplitAtom.from_charge_and_spin(cu, 0.8, spin, True, True)
    for x in labels:
        i = crystal.atom_index(x)
        charge = HansenCoppensAtom(crystal.atoms[i].element, pv=5.0, lmax=2)
        models[i] = SplitAtom.from_charge_and_spin(charge, 0.05, None, True, True)
    return models


#: Spin models of benchmark (a): name -> builder(crystal) returning a
#: PndSpinModel (PndData) or a list of density models with split atoms (FlippingData).
SPIN_MODELS: dict[str, Callable[[Crystal], PndSpinModel | list]] = {
    "spherical moments (Cu1 + 4 N/O)": spherical_moments,
    "split multipoles (Cu1 l<=4 + 4 N/O l<=2, chargespin, shared kappa)": split_multipoles,
}


def reference_dataset(crystal: Crystal, hkl: np.ndarray) -> PndDataset:
    """Simulated flipping-ratio block of the 212 lowest-angle reflections, field along b."""
    stol = 0.5 * np.linalg.norm(hkl @ crystal.B.T, axis=1)
    hkl = hkl[np.argsort(stol, kind="stable")[:N_REFLECTIONS]]
    u = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # lab Z = crystal y ∥ b
    return flipping_block("ref", hkl, u @ busing_levy_b(crystal.B), 1.0)


def bench_reference(runs: int) -> None:
    crystal, hkl, source = load_problem()
    raw = reference_dataset(crystal, np.asarray(hkl))
    print(f"(a) {source}: {len(crystal.atoms)} atoms, {len(raw.hkl)} lowest-angle reflections")
    for name, build in SPIN_MODELS.items():
        spin = build(crystal)
        if isinstance(spin, list):
            bench_split(crystal, raw, name, spin, runs)
            continue
        data = PndData("ref", raw, spin)
        models = [SphericalAtom(a.element) for a in crystal.atoms]
        ref = Refinement(crystal, models, [data])
        p = ref.params.values
        t_build = median_time(lambda spin=spin: PndData("ref", raw, spin), runs)
        t_calc = median_time(lambda data=data, p=p: data.calculate(p, jacobian=True), runs)
        _, ratio, jac = data.calculate(p, jacobian=True)
        assert np.all(np.isfinite(ratio)) and np.all(np.isfinite(jac))
        print(f"    spin model: {name}; spin parameters {spin.parameter_names}")
        print(
            f"    field (chasm frame) {np.round(data.e, 4)}; R from {ratio.min():.3f} to "
            f"{ratio.max():.3f}; Jacobian {jac.shape[0]} x {jac.shape[1]} (full vector)"
        )
        print(f"    build PndData (F_N + magnetic basis)      {1e3 * t_build:8.2f} ms")
        print(f"    calculate(p, jacobian=True)               {1e3 * t_calc:8.2f} ms")


def bench_split(crystal: Crystal, raw: PndDataset, name: str, models: list, runs: int) -> None:
    """Benchmark (a) for a split-atom model: FlippingData through the structure model."""
    import copy

    def build():
        cr, ms = copy.deepcopy(crystal), copy.deepcopy(models)
        data = FlippingData("ref", raw, cr, PndOptions(extinction=False))
        ref = Refinement(cr, ms, [data], basis="chargespin")
        p = ref.params.values
        ref.set_values(p)
        data.calculate(p, jacobian=False)  # creates the engines of both views
        return ref, data, p

    ref, data, p = build()
    t_build = median_time(build, runs)
    t_calc = median_time(lambda: data.calculate(p, jacobian=True), runs)
    t_ratio = median_time(lambda: data.calculate(p, jacobian=False), runs)
    _, ratio, jac = data.calculate(p, jacobian=True)
    assert np.all(np.isfinite(ratio)) and np.all(np.isfinite(jac))
    split = ref.structure.split_labels()
    n_spin = sum(1 for n in ref.params.names if n.endswith(".spin"))
    print(f"    spin model: {name}; split atoms {split}, {n_spin} spin populations")
    print(
        f"    field (chasm frame) {np.round(data.e, 4)}; R from {ratio.min():.3f} to "
        f"{ratio.max():.3f}; Jacobian {jac.shape[0]} x {jac.shape[1]} (full vector, "
        f"{int(np.sum(np.any(jac != 0, axis=0)))} non-zero columns)"
    )
    print(f"    build FlippingData + Refinement + engines  {1e3 * t_build:8.2f} ms")
    print(f"    calculate(p, jacobian=True)               {1e3 * t_calc:8.2f} ms")
    print(f"    calculate(p, jacobian=False)              {1e3 * t_ratio:8.2f} ms")


# ----------------------------------------------------------------------------- (b)
def flagged_copy(path: Path, folder: Path) -> Path:
    """A copy of the rcif with the systematically absent reflections flagged excluded."""
    pnd = read_rcif(path)
    lines = path.read_text().splitlines()
    group = pnd.crystal().spacegroup
    for block in pnd.datasets:
        for line in block.lines[ytio3.absent_mask(block.hkl, group)]:
            text = lines[line - 1]
            assert text.rstrip().endswith("False"), text
            lines[line - 1] = text.rstrip()[: -len("False")] + "True"
    out = folder / path.name
    out.write_text("\n".join(lines) + "\n")
    return out


def chasm_refine(pnd) -> dict:
    """chasm: spin model and data sets from the loaded file, one stage, χ free."""
    spin = ytio3.chasm_spin(pnd)  # the file's start value, 0.7362
    sets = [PndData(d.name, d, spin) for d in pnd.datasets]
    models = [SphericalAtom(a.element) for a in spin.crystal.atoms]
    ref = Refinement(spin.crystal, models, sets)
    out = ref.run_stage(Stage("chi", free=[ytio3.CHI]))
    par = ref.params[ytio3.CHI]
    result = out.result
    return {
        "chi": par.value,
        "su": par.su,
        "chi2": sum(f.chi2 for f in result.datasets),
        "evaluations": 1 + sum(c.trials for c in result.history),
        "gof2": sum(f.chi2 for f in result.datasets) / (result.n_obs - result.n_par),
        "cycles": result.cycles,
        "converged": result.converged,
    }


class CountedChi2:
    """Counts cryspy's χ² evaluations (its refinement and its su estimate)."""

    def __init__(self):
        import cryspy.procedure_rhochi.rhochi as rhochi
        import cryspy.procedure_rhochi.rhochi_by_dictionary as by_dict

        self.modules = (by_dict, rhochi)
        self.original = by_dict.rhochi_calc_chi_sq_by_dictionary
        self.calls = 0

    def __enter__(self) -> CountedChi2:
        def counted(*args, **kwargs):
            self.calls += 1
            return self.original(*args, **kwargs)

        for module in self.modules:
            module.rhochi_calc_chi_sq_by_dictionary = counted
        return self

    def __exit__(self, *exc) -> None:
        for module in self.modules:
            module.rhochi_calc_chi_sq_by_dictionary = self.original


def cryspy_load(path: Path):
    """Loaded cryspy object with the Ti χ marked for refinement (Ciso: χ11 carries it)."""
    import cryspy

    obj = cryspy.load_file(str(path))
    crystal = next(i for i in obj.items if type(i).__name__ == "Crystal")
    crystal.atom_site_susceptibility.items[0].chi_11_refinement = True
    return obj, crystal.atom_site_susceptibility.items[0]


def cryspy_refine(obj, item) -> dict:
    import cryspy

    with CountedChi2() as count, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = cryspy.rhochi_rietveld_refinement(obj)
    return {
        "chi": float(item.chi_11),
        "su": float(item.chi_11_sigma),
        "chi2": float(out["chi_sq"]),
        "evaluations": count.calls,
    }


def bench_ytio3(runs: int) -> None:
    import cryspy

    logging.getLogger("cryspy").setLevel(logging.WARNING)
    print(f"\n(b) YTiO3 refinement of Ti chi: chasm vs cryspy {cryspy.__version__}, {runs} runs")
    t_chasm, t_cryspy, ratios = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        path = flagged_copy(ytio3.RCIF, Path(tmp))
        for _ in range(runs):
            pnd = read_rcif(path)
            obj, item = cryspy_load(path)
            t0 = time.perf_counter()
            ours = chasm_refine(pnd)
            t1 = time.perf_counter()
            theirs = cryspy_refine(obj, item)
            t2 = time.perf_counter()
            t_chasm.append(t1 - t0)
            t_cryspy.append(t2 - t1)
            ratios.append((t2 - t1) / (t1 - t0))
        n = sum(len(d.hkl) - int(np.sum(d.excluded)) for d in read_rcif(path).datasets)
    tc, ty, ratio = (statistics.median(x) for x in (t_chasm, t_cryspy, ratios))
    print(f"    {n} flipping ratios (15 systematic absences excluded), start chi = 0.7362")
    print(
        f"    {'':8} {'time (s)':>9} {'chi (muB/T)':>12} {'su':>9} {'chi2':>12} {'chi2 evals':>10}"
    )
    for label, t, r in (("chasm", tc, ours), ("cryspy", ty, theirs)):
        print(
            f"    {label:8} {t:9.4f} {r['chi']:12.5f} {r['su']:9.5f} {r['chi2']:12.3f} "
            f"{r['evaluations']:10d}"
        )
    raw_su = ours["su"] / np.sqrt(ours["gof2"])
    print(
        f"    chasm: {ours['cycles']} cycles, converged {ours['converged']}; its su includes the "
        f"GOF factor (SHELXL rule); without it {raw_su:.5f}, and / sqrt(2) = "
        f"{raw_su / np.sqrt(2):.5f}: cryspy's su is sqrt(diag) of the inverse Hessian of "
        "chi2 (= 2 J^T W J), unscaled"
    )
    verdict = "met" if ratio >= TARGET else "NOT met"
    print(
        f"    speed ratio cryspy / chasm = {ratio:.1f} (median of per-run ratios; "
        f"target >= {TARGET:.0f}: {verdict})"
    )

    obj, item = cryspy_load(ytio3.RCIF)  # the file as it is, once, for the record
    asis = cryspy_refine(obj, item)
    print(
        f"    cryspy on the file as it is (absences kept): chi = {asis['chi']:.5f}, "
        f"chi2 = {asis['chi2']:.1f}, {asis['evaluations']} chi2 evaluations"
    )


# ----------------------------------------------------------------------------- (c)
#: rcif files of (c): name -> path under ../shared/data/pnd
PROJECT_FILES = {
    "ytio3": "ytio3/ytio3.rcif",
    "ho2ti2o7": "ho2ti2o7/ho2ti2o7.rcif",
    "mnf2": "mnf2/main.rcif",
}
PND_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pnd"


def chasm_project(path: Path, folder: Path) -> Path:
    """``chasm init`` on a copy of the rcif (the project the CLI would run)."""
    from chasm.cli import main as chasm

    rcif = folder / path.name
    rcif.write_text(path.read_text())
    out = folder / "project.toml"
    with open(os.devnull, "w") as null:
        saved, sys.stdout = sys.stdout, null
        try:
            assert chasm(["init", str(rcif), "-o", str(out), "--force"]) == 0
        finally:
            sys.stdout = saved
    return out


def chasm_run(project) -> dict:
    """Build the project (reads the rcif) and run its stages: refined values and su."""
    from chasm.project.build import build

    built = build(project)
    ref = built.refinement
    for stage in built.stages:
        out = ref.run_stage(stage)
    free = [n for st in built.stages for n in st.free]
    return {
        "values": {n: (ref.params[n].value, ref.params[n].su) for n in free},
        "chi2": sum(f.chi2 for f in out.result.datasets),
        "cycles": out.result.cycles,
        "converged": out.result.converged,
    }


def cryspy_run(obj) -> dict:
    """cryspy's refinement of what the file marks refined (values written with an su)."""
    import cryspy

    with CountedChi2() as count, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = cryspy.rhochi_rietveld_refinement(obj)
    return {"chi2": float(out["chi_sq"]), "evaluations": count.calls}


def bench_projects(runs: int) -> None:
    """(c) chasm init + refine route vs cryspy, same free parameters, same process."""
    import cryspy

    from chasm.project.project import load_project

    logging.getLogger("cryspy").setLevel(logging.WARNING)
    print(f"\n(c) init + refine projects vs cryspy {cryspy.__version__}, {runs} runs each")
    for key, rel in PROJECT_FILES.items():
        with tempfile.TemporaryDirectory() as tmp:
            project = chasm_project(PND_DATA / rel, Path(tmp))
            t_c, t_y, ratios = [], [], []
            for _ in range(runs):
                loaded = load_project(project)
                obj = cryspy.load_file(str(Path(tmp) / Path(rel).name))
                if key == "ytio3":  # nothing marked in the file: free Ti chi as chasm's init
                    crystal = next(i for i in obj.items if type(i).__name__ == "Crystal")
                    crystal.atom_site_susceptibility.items[0].chi_11_refinement = True
                t0 = time.perf_counter()
                ours = chasm_run(loaded)
                t1 = time.perf_counter()
                theirs = cryspy_run(obj)
                t2 = time.perf_counter()
                t_c.append(t1 - t0)
                t_y.append(t2 - t1)
                ratios.append((t2 - t1) / (t1 - t0))
        free = ", ".join(
            f"{n} {v:.6g}({su:.2g})" for n, (v, su) in ours["values"].items() if su is not None
        )
        print(f"  {key}: free {free}")
        print(
            f"    chasm  {statistics.median(t_c):8.4f} s  chi2 {ours['chi2']:.6f}  "
            f"{ours['cycles']} cycles, converged {ours['converged']}"
        )
        print(
            f"    cryspy {statistics.median(t_y):8.4f} s  chi2 {theirs['chi2']:.6f}  "
            f"{theirs['evaluations']} chi2 evaluations (its chi2: asymmetry for mnf2)"
        )
        ratio = statistics.median(ratios)
        verdict = "met" if ratio >= TARGET else "NOT met"
        print(f"    speed ratio cryspy / chasm = {ratio:.1f} (target >= {TARGET:.0f}: {verdict})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--only", choices=("a", "b", "c"), help="one benchmark only")
    args = ap.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    if args.only in (None, "a"):
        bench_reference(args.runs)
    if args.only in (None, "b"):
        bench_ytio3(args.runs)
    if args.only in (None, "c"):
        bench_projects(args.runs)


if __name__ == "__main__":
    main()

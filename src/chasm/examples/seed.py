"""The built-in example: a synthetic azido-bridged Cu(II) dimer, simulated and refined.

The structure (``seed_cu_dimer.cif``, made by ``tools/build_seed_structure.py``)
is modelled on the published joint refinement the project starts from. This
module gives:

* :func:`truth_models`: the model the data are simulated from: Hansen-Coppens
  atoms everywhere (neutral overall), a Cu d(x²−y²) hole (charge multipoles of
  the d⁹ configuration in the Cu frame z → apical N5', x → O1), and the
  magnetic atoms split with the published spin populations (μB; Cu 0.78 with
  the angular shape of a d(x²−y²) orbital, the ligands spherical);
* :func:`simulate`: X-ray F², unpolarised-neutron F² and flipping ratios with
  the noise models of :mod:`chasm.simulate.noise`;
* :func:`start_models`: what a user starts from (neutral spherical valence,
  no multipoles, no spin) and :func:`route`: the stages of the method,
  (a) X-ray multipoles, (b) neutron ADPs then PND-only spin populations,
  (c) the split P↑ = (P + S)/2, P↓ = (P − S)/2 (here the charge/spin basis of
  the split atoms, so the split is the identity on the values), (d) joint.

All numbers are in the units of :mod:`chasm.refine.structure_model`.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import as_file, files

import numpy as np

from chasm.crystal.cif import read_cif
from chasm.data.reflections import Reflections
from chasm.density.databank import spherical_atom
from chasm.density.dorbitals import multipoles_from_orbitals
from chasm.density.frames import LocalAxes
from chasm.density.harmonics import lm_labels
from chasm.density.model import HansenCoppensAtom, SplitAtom
from chasm.neutron.rcif import PndDataset
from chasm.project.autobuild import HYDROGENS, choose_atom
from chasm.refine.flipping_data import FlippingData
from chasm.refine.pnd_data import PndOptions
from chasm.refine.refinement import Refinement, Stage
from chasm.refine.structure_model import StructureModel
from chasm.refine.xray_data import UndData, XrayData, XrayOptions
from chasm.simulate.noise import (
    PND_NOISE,
    UND_NOISE,
    XRAY_NOISE,
    lowest_angle,
    observe_f2,
    unique_reflections,
)

__all__ = [
    "SPIN_POPULATIONS",
    "CU_AXES",
    "seed_crystal",
    "charge_models",
    "truth_models",
    "start_models",
    "SeedData",
]

#: Published spin populations (μB) of the magnetic atoms; total 1.016 per Cu.
SPIN_POPULATIONS = {
    "Cu1": 0.78,
    "O1": 0.046,
    "N1": 0.045,
    "N2": 0.080,
    "N3": 0.030,
    "N4": 0.004,
    "N5": 0.031,
}
#: Cu local frame: z towards the apical azide N (N5 of the other half), x towards O1.
CU_AXES = "N5 Z Cu1 O1 X"
CIF_NAME = "seed_cu_dimer.cif"


NEUTRON_BLOCK = "seed_cu_dimer_neutron_30K"


def seed_crystal():
    """The example structure (Crystal), X-ray ADPs of 10 K."""
    with as_file(files("chasm.examples").joinpath(CIF_NAME)) as path:
        return read_cif(path)


def neutron_adps(crystal) -> list:
    """The 30 K neutron ADP set of the example, [(u_aniso or None, uiso)] per atom."""
    with as_file(files("chasm.examples").joinpath(CIF_NAME)) as path:
        other = read_cif(path, block=NEUTRON_BLOCK)
    by_label = {a.label: a for a in other.atoms}
    out = []
    for a in crystal.atoms:
        n = by_label[a.label]
        out.append((None if n.u_aniso is None else n.u_aniso.copy(), float(n.uiso)))
    return out


def _frame_models(crystal, h_lmax: int = 1, lmax: int = 4) -> list[HansenCoppensAtom]:
    """Neutral spherical-valence HC atoms with the automatic local axes."""
    out = []
    for i, atom in enumerate(crystal.atoms):
        choice = choose_atom(crystal, i, h_lmax=h_lmax, lmax=lmax)
        axes = LocalAxes.from_text(CU_AXES) if atom.label == "Cu1" else choice.axes
        frame = axes.matrix(crystal, i) if axes is not None else np.eye(3)
        m = HansenCoppensAtom(
            atom.element,
            pv=float(spherical_atom(atom.element).n_valence),
            lmax=choice.lmax,
            frame=frame,
            axes=axes,
        )
        if atom.element in HYDROGENS:
            m.kappa = m.kappa_prime = 1.2
        out.append(m)
    return out


def _set(model: HansenCoppensAtom, values: dict[str, float]) -> None:
    labels = lm_labels(model.lmax)
    for key, v in values.items():
        model.plm[labels.index(key)] = v


def _d_hole_multipoles(orbital: int = 3) -> np.ndarray:
    """l = 2, 4 multipoles (25-vector, P00 = 0) of one electron in a d orbital."""
    p = np.zeros(15)
    p[orbital] = 1.0
    out = multipoles_from_orbitals(p)
    out[0] = 0.0  # the spherical part is carried by Pv
    return out


def charge_models(crystal) -> list[HansenCoppensAtom]:
    """The true charge density: bond deformations, Cu d⁹ with a d(x²−y²) hole, neutral.

    Non-H atoms get a bond dipole/quadrupole/octupole along their local z
    (towards a bonded neighbour), H a bond dipole; Cu1 has Pv = n_valence − 1
    and the multipoles of a d(x²−y²) hole (minus one electron in that orbital);
    the other atoms share the compensating charge so that the asymmetric unit
    is exactly neutral (Σ Pv + P00 equals the neutral valence count).
    """
    models = _frame_models(crystal)
    excess = 0.0
    heavy = []
    for atom, m in zip(crystal.atoms, models, strict=True):
        if atom.label == "Cu1":
            m.pv -= 1.0
            m.kappa, m.kappa_prime = 1.02, 1.0
            m.plm[:] = -_d_hole_multipoles(3)[: m.plm.size]
            excess -= 1.0
        elif atom.element in HYDROGENS:
            m.pv -= 0.12
            excess -= 0.12
            _set(m, {"10": 0.13})
        else:
            heavy.append(m)
            m.kappa = 0.99
            _set(m, {"10": 0.04, "20": 0.08, "30": 0.12, "40": 0.03})
    share = -excess / len(heavy)
    for m in heavy:
        m.pv += share
    return models


def truth_models(crystal) -> list:
    """Charge models with the magnetic atoms split (charge/spin as published)."""
    out = []
    for atom, m in zip(crystal.atoms, charge_models(crystal), strict=True):
        spin = SPIN_POPULATIONS.get(atom.label)
        if spin is None:
            out.append(m)
            continue
        s_plm = np.zeros_like(m.plm)
        if atom.label == "Cu1":
            s_plm[:] = spin * _d_hole_multipoles(3)[: m.plm.size]
        out.append(
            SplitAtom.from_charge_and_spin(m, spin, s_plm, share_kappa=True, share_kappa_prime=True)
        )
    return out


def start_models(crystal) -> list:
    """A user's start: neutral spherical valence, no multipoles, no spin; magnetic atoms split."""
    out = []
    for atom, m in zip(crystal.atoms, _frame_models(crystal), strict=True):
        if atom.label in SPIN_POPULATIONS:
            out.append(
                SplitAtom.from_charge_and_spin(m, 0.0, share_kappa=True, share_kappa_prime=True)
            )
        else:
            out.append(m)
    return out


@dataclass
class SeedData:
    """Simulated observations of the example (see :func:`simulate`)."""

    xray: object
    und: object
    pnd: object
    field_direction: np.ndarray


#: Wavelengths (Å) and field of the simulated experiments (the paper's PND: 5 T, 0.84 Å).
XRAY_WAVELENGTH = 0.71073
UND_WAVELENGTH = 1.17
PND_WAVELENGTH = 0.84
FIELD = 5.0
SCALES = {"xray": 0.85, "und": 1.9}


def _pnd_dataset(hkl, ratio, sigma) -> PndDataset:
    n = len(hkl)
    return PndDataset(
        name="pnd",
        wavelength=PND_WAVELENGTH,
        field=FIELD,
        polarisation=-0.9,
        efficiency=0.95,
        ub=np.eye(3),
        ub_type="CCSL",
        extinction_model=None,
        mosaicity=0.0,
        radius=0.0,
        phase=None,
        hkl=np.asarray(hkl, dtype=int),
        fr=np.asarray(ratio, dtype=float),
        fr_sigma=np.asarray(sigma, dtype=float),
        fr_calc=None,
        excluded=np.zeros(n, dtype=bool),
        lines=np.arange(n),
    )


def simulate(
    crystal,
    models,
    xray_smax: float = 1.0,
    und_count: int = 2000,
    pnd_count: int = 212,
    seed: int = 0,
) -> SeedData:
    """Simulated X-ray F² (Mo Kα), UND F² (30 K ADPs) and flipping ratios (5 T) of a model.

    Parameters
    ----------
    crystal : Crystal
        Positions and X-ray ADPs; the neutron ADPs come from the example's
        second CIF block.
    models : list
        The true models (:func:`truth_models`).
    xray_smax : float
        sinθ/λ limit of the X-ray data (Å⁻¹); 1.0 gives about 13,000 unique
        reflections for the example's cell.
    und_count, pnd_count : int
        Number of UND reflections (lowest angle) and flipping ratios (the
        largest |R − 1| among the stronger half (by |F_N|) of the reflections
        with sinθ/λ < 0.6 Å⁻¹).
    seed : int
        Seed of the noise (:mod:`chasm.simulate.noise`).
    """
    rng = np.random.default_rng(seed)
    sm = StructureModel(crystal, models, adp_sets={"N": neutron_adps(crystal)})
    hkl_x = unique_reflections(crystal, xray_smax)
    view = sm.view("xray")
    f2_x = np.abs(view.compute(view.engine(hkl_x))[0]) ** 2
    fo2, sig = observe_f2(f2_x, SCALES["xray"], rng, XRAY_NOISE)
    xray = Reflections(hkl=hkl_x, f2=fo2, sigma=sig)
    hkl_n = lowest_angle(unique_reflections(crystal, 0.8), crystal, und_count)
    view = sm.view("nuclear")
    f2_n = np.abs(view.compute(view.engine(hkl_n))[0]) ** 2
    fo2, sig = observe_f2(f2_n, SCALES["und"], rng, UND_NOISE)
    und = Reflections(hkl=hkl_n, f2=fo2, sigma=sig)
    # a general field direction in the crystal (not along a symmetry axis)
    e = crystal.A @ np.array([0.3, 1.0, 0.2])
    e = e / np.linalg.norm(e)
    cand = unique_reflections(crystal, 0.6)
    probe = FlippingData(
        "pnd",
        _pnd_dataset(cand, np.ones(len(cand)), np.ones(len(cand))),
        crystal,
        field_direction=e,
    )
    probe.attach(sm)
    probe.bind(crystal, models, sm.names, len(sm.names))
    r_all = probe.ratios(np.zeros(len(sm.names)))
    # measured in practice: reflections with a strong nuclear signal (counting time) and
    # a large magnetic contrast; here the stronger half by |F_N|, then the largest |R - 1|
    view = sm.view("nuclear")
    f_n = np.abs(view.compute(view.engine(cand))[0])
    contrast = np.where(f_n >= np.median(f_n), np.abs(r_all - 1.0), -1.0)
    pick = np.argsort(-contrast, kind="stable")[:pnd_count]
    pick = np.sort(pick)
    r_obs, sigma = PND_NOISE.draw(r_all[pick], rng)
    pnd = _pnd_dataset(cand[pick], r_obs, sigma)
    return SeedData(xray=xray, und=und, pnd=pnd, field_direction=e)


def build_refinement(crystal, models, data: SeedData, scheme: str = "unit") -> Refinement:
    """The joint refinement of the example: X-ray, UND and PND sets, charge/spin basis.

    Constraints: electroneutrality of the asymmetric unit; the total spin is
    added by :func:`route` for the joint stage.
    """
    xray = XrayData("xray", data.xray, crystal, XrayOptions(wavelength=XRAY_WAVELENGTH))
    und = UndData("und", data.und, crystal, XrayOptions(wavelength=UND_WAVELENGTH))
    pnd = FlippingData(
        "pnd", data.pnd, crystal, PndOptions(extinction=False), field_direction=data.field_direction
    )
    ref = Refinement(crystal, models, [xray, und, pnd], scheme=scheme, basis="chargespin")
    ref.add_constraints(ref.structure.charge_constraint(ref.params, 0.0))
    return ref


def _names(ref: Refinement, test) -> list[str]:
    return [n for n in ref.params.names[: ref.n_struct] if test(n)]


def parameter_groups(ref: Refinement) -> dict[str, list[str]]:
    """Names of the parameter groups the stages free."""
    cr = ref.crystal
    heavy = [a.label for a in cr.atoms if a.element not in HYDROGENS]
    hyd = [a.label for a in cr.atoms if a.element in HYDROGENS]

    def label(n):
        return n.split(".")[0]

    def kind(n):
        return n.split(".")[1]

    pops = _names(
        ref,
        lambda n: n.count(".") == 1 and kind(n).startswith("P") and kind(n) != "P00",
    )
    spin = _names(
        ref,
        lambda n: (
            n.endswith(".spin")
            and (kind(n) == "Pv" or (label(n) == "Cu1" and kind(n)[1] in "24" and kind(n) != "P00"))
        ),
    )
    return {
        "xyz": [f"{a}.{c}" for a in heavy for c in "xyz"],
        "adp_x": _names(
            ref, lambda n: label(n) in heavy and n.count(".") == 1 and kind(n).startswith("U")
        ),
        "adp_n": _names(ref, lambda n: n.endswith(".N")),
        "charge": pops,
        "kappa": _names(ref, lambda n: label(n) in heavy and kind(n) == "kappa"),
        "kappa_prime": _names(ref, lambda n: label(n) in heavy and kind(n) == "kappa_prime"),
        "spin": spin,
        "h": hyd,
    }


def route(ref: Refinement, max_cycles: int = 30) -> list:
    """The stages of the method (module docstring); returns the Stage list.

    (a) X-ray: scale; positions and ADPs of the non-H atoms; Pv and P_lm of
        every atom (H: Pv and the bond dipole) and κ of the non-H atoms (P00
        fixed: the monopole is Pv); κ' stays at 1 (the truth of the example:
        with weak simulated multipoles a free κ' drifts);
    (b) neutrons: UND scale and neutron ADPs; then the spin populations
        (Pv.spin of the split atoms, Cu l = 2, 4 spin multipoles) on PND data
        alone;
    (c) split: in the charge/spin basis P↑ = (P + S)/2, P↓ = (P − S)/2 hold by
        construction, so this step changes no number;
    (d) joint: everything on all data.

    The total spin is not constrained here: constraints
    hold in every stage of a refinement, and in the PND-only stage (b) the
    constraint would tie the spins to their sum; to constrain it in the joint
    stage, add ``ref.structure.spin_constraint(ref.params, total)`` with
    ``ref.add_constraints`` after stage b (as ``validation/seed_pull_study.py``
    does).
    """
    g = parameter_groups(ref)
    xray_all = ["xray.scale"] + g["xyz"] + g["adp_x"] + g["charge"] + g["kappa"]
    joint = xray_all + ["und.scale"] + g["adp_n"] + g["spin"]
    mc = max_cycles
    return [
        Stage("a: scale", ["xray.scale"], data=["xray"], max_cycles=mc),
        Stage("a: structure", ["xray.scale"] + g["xyz"] + g["adp_x"], data=["xray"], max_cycles=mc),
        Stage("a: multipoles", xray_all, data=["xray"], max_cycles=mc),
        Stage("b: neutron ADPs", ["und.scale"] + g["adp_n"], data=["und"], max_cycles=mc),
        Stage("b: PND spin", g["spin"], data=["pnd"], max_cycles=mc),
        Stage("d: joint", joint, max_cycles=mc),
    ]


def truth_values(crystal=None) -> dict[str, float]:
    """True value of every parameter of :func:`build_refinement`, by name.

    The truth models (:func:`truth_models`) with the example's neutron ADPs,
    read in the refinement's layout (charge/spin basis, ADP set ``N``, the
    names of :class:`~chasm.refine.structure_model.StructureModel`), plus the
    data scales of :func:`simulate` (``xray.scale``, ``und.scale``: F²_data =
    k |F|²). ``crystal`` defaults to :func:`seed_crystal` (the true positions
    and X-ray ADPs); it is not changed.
    """
    crystal = crystal if crystal is not None else seed_crystal()
    sm = StructureModel(
        crystal,
        truth_models(crystal),
        adp_sets={"N": neutron_adps(crystal)},
        basis="chargespin",
    )
    out = {name: float(v) for name, v in zip(sm.names, sm.values(), strict=True)}
    out.update({f"{name}.scale": float(k) for name, k in SCALES.items()})
    return out

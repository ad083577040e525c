"""Write a complete, commented project file from a CIF and reflection files (``chasm init``).

Everything guessed (local axes and the neighbours they use, multipole levels,
κ sets, riding H distances, data-set options, magnetic atoms) is written as a
comment next to the value and listed in :attr:`InitResult.guesses`, which the
command prints. Values the user must check against the experiment
(wavelengths, the sign of the beam polarisation, the field) are marked
``# CHECK:``.

Joint projects (``und`` and/or ``pnd`` files): the magnetic atoms (given, or
by default every transition-metal atom and its covalently bonded neighbours)
are spin-split with one κ and one κ' for both spins, a starting spin monopole
of 1 μB on the metals and 0 on the ligands; ``constraints.total_spin`` is
written as a placeholder string that stops the run until the user gives the
number of unpaired electrons per asymmetric unit. The strategy is the joint
route: (a) the X-ray multipole stages, fitted to the X-ray data only; (b)
``pnd-spin``: the spin populations (with the UND scale and neutron ADPs)
from the polarised (and unpolarised) neutron data only; (c) ``joint``:
everything with all data. The spin populations freed are the spin monopoles
Pv.spin of every split atom and the l = 2, 4 spin multipoles of the metals
(the multipoles of a d-shell density); P00.spin (a duplicate of Pv.spin) and
the ligands' spin multipoles stay at zero, since a few hundred flipping
ratios do not determine them; the stage comments say how to free them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chasm.crystal.cif import read_cif
from chasm.crystal.neighbours import bonded
from chasm.errors import InputError
from chasm.io.atomic import write_text_atomic
from chasm.io.shelx_cif import (
    blocks,
    check_hklf,
    choose_block,
    embedded_reflections,
    published_fit,
    read_instructions,
)
from chasm.io.shelx_hkl import merge, read_hkl4
from chasm.io.shelx_hkl import stol as sinthl
from chasm.project.autobuild import HYDROGENS, choose_model
from chasm.project.checks import check_f2_data
from chasm.project.defaults import parameter_note, plan
from chasm.refine.riding import NEUTRON_XH

__all__ = [
    "InitResult",
    "project_text",
    "write_project",
    "default_magnetic",
    "TRANSITION_METALS",
    "TOTAL_SPIN_PLACEHOLDER",
]

#: d-block elements (groups 3-12): the default magnetic centres.
TRANSITION_METALS = frozenset(
    "Sc Ti V Cr Mn Fe Co Ni Cu Zn Y Zr Nb Mo Tc Ru Rh Pd Ag Cd La Hf Ta W Re Os Ir Pt Au Hg".split()
)

#: What ``chasm init`` writes for the total spin; loading the project stops on it.
TOTAL_SPIN_PLACEHOLDER = "FILL IN: unpaired electrons per asymmetric unit"


@dataclass
class InitResult:
    """The text of the project file and what was guessed."""

    text: str
    guesses: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


def _q(s: str) -> str:
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _rel(path: Path, folder: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), folder.resolve())
    except ValueError:  # other drive on Windows
        return str(path.resolve())


def default_magnetic(crystal) -> tuple[list[str], list[str]]:
    """Transition-metal atoms and their covalently bonded neighbours.

    Returns
    -------
    labels : list of str
        In atom order.
    reasons : list of str
        One line per atom saying why it was chosen.
    """
    metals = [i for i, a in enumerate(crystal.atoms) if a.element in TRANSITION_METALS]
    why: dict[int, str] = {i: "transition metal" for i in metals}
    for i in metals:
        for n in bonded(crystal, i):
            if n.index not in why and crystal.atoms[n.index].element not in HYDROGENS:
                why[n.index] = f"bonded to {crystal.atoms[i].label} ({n.distance:.3f} A)"
    order = sorted(why)
    return [crystal.atoms[i].label for i in order], [
        f"{crystal.atoms[i].label}: {why[i]}" for i in order
    ]


#: sin(θ)/λ (Å⁻¹) the X-ray data must reach for the default strategy to refine κ′: below
#: it the contraction of the multipoles is poorly determined (on the seed case to 0.7 Å⁻¹ a
#: free κ′ per atom or per element creeps by ~1 su per cycle for 30 cycles, C to 0.58(2)
#: against a true 1.0), and κ′ stays at 1.
KAPPA_PRIME_SMAX = 0.9


def _stages(
    has_h: bool,
    h_lmax: int,
    smax: float,
    extinction: bool,
    scale: tuple[str, ...] = ("*.scale",),
    h_u: bool = True,
    kappa_prime: bool = False,
) -> list[tuple]:
    """Default X-ray strategy: (name, free patterns, smin, comment).

    ``h_u``: some H have a free U (else they ride on the parent's Ueq: no H
    stage); ``kappa_prime``: refine κ′ (default: fixed, docs/physics.md).
    """
    hp = ["@H.P10"] + (["@H.P20"] if h_lmax >= 2 else [])
    # extinction is refined with the valence model (monopoles on): both act on the strongest
    # low-angle reflections, and against spherical atoms it would absorb the missing bonding
    # density (EXTINCTION_NOTE)
    ext = ["*.extinction"] if extinction else []
    pos = ["@nonH.x", "@nonH.y", "@nonH.z", "@nonH.U*"]
    hi = 0.7 if smax >= 0.9 else None
    scale = list(scale)
    st = [("scale", scale, None, "scale only")]
    st.append(
        (
            "high-order",
            scale + pos,
            hi,
            "positions and ADPs of non-H atoms from high-order data, where the "
            "valence deformation hardly contributes",
        )
    )
    if has_h and h_u:
        st.append(("hydrogens", scale + ["@H.U*"], None, "H displacement parameters"))
    st.append(
        (
            "monopoles",
            scale + ["*.Pv", "@nonH.kappa"] + ext,
            None,
            "valence populations and kappa (electroneutrality holds)"
            + (", extinction" if ext else ""),
        )
    )
    # charge multipoles l >= 1 by exact shape (a trailing * would cross the dot into
    # the spin populations LABEL.P20.spin of split atoms)
    mult = ["@nonH.P[1-9]0", "@nonH.P[1-9][1-9][+-]"] + (hp if has_h and h_lmax >= 1 else [])
    st.append(
        (
            "multipoles",
            scale + ["*.Pv", "@nonH.kappa"] + mult + ext,
            None,
            "multipoles (P00 is left out: it duplicates Pv)",
        )
    )
    kp = kappa_prime and smax >= KAPPA_PRIME_SMAX
    if kp:
        st.append(
            (
                "kappa-prime",
                scale + ["@nonH.kappa_prime"] + mult + ext,
                None,
                "kappa' once the multipoles are non-zero (before, no data depend on it)",
            )
        )
    everything = (
        scale
        + ext
        + pos
        + (["@H.U*"] if has_h and h_u else [])
        + ["*.Pv", "@nonH.kappa"]
        + (["@nonH.kappa_prime"] if kp else [])
        + mult
    )
    st.append(("all", everything, None, "everything together"))
    return st


def _smax(f: Path, crystal) -> float:
    """Highest sin(theta)/lambda of an HKLF 4 file (0 if unreadable: reported later)."""
    try:
        return float(sinthl(read_hkl4(f).hkl, crystal).max())
    except (InputError, ValueError, OSError):
        return 0.0


def _n_unique(f: Path, crystal) -> int:
    """Unique reflections of an HKLF 4 file after merging (0 if unreadable: reported later)."""
    try:
        return len(merge(read_hkl4(f), crystal)[0].hkl)
    except (InputError, ValueError, OSError):
        return 0


def _names(prefix: str, files) -> list[str]:
    return [prefix] if len(files) == 1 else [f"{prefix}{i + 1}" for i in range(len(files))]


#: What init says about the extinction it refines in a multipole project (docs/physics.md).
EXTINCTION_NOTE = (
    "SHELXL's isotropic EXTI, refined from 0 with the valence model: extinction weakens the "
    "strongest low-angle reflections, which carry the valence density; left out, it is "
    "absorbed by kappa and Pv"
)


def _extinction_lines(wavelength) -> list[str]:
    """The ``extinction`` line of an X-ray data set of a multipole project.

    Refined from 0 (SHELXL's EXTI, :data:`EXTINCTION_NOTE`) when the wavelength is known;
    without it the correction cannot be computed and the line says so.
    """
    if not wavelength:
        return ['extinction = "none"      # CHECK: give the wavelength to refine EXTI ("shelx")']
    return [
        'extinction = "shelx"     # GUESSED: EXTI refined from 0 with the valence model '
        '(docs/physics.md); "none" if it ends within 3 su of 0'
    ]


def _refines_extinction(lines: list[str]) -> bool:
    """A data-set table (lines of :func:`_hkl_entry`, :func:`_shelx_entry`) with extinction."""
    return any(
        x.startswith("extinction =") and x.split("#")[0].split("=")[1].strip() != '"none"'
        for x in lines
    )


def _hkl_entry(
    kind: str, name: str, f: Path, folder: Path, crystal, extinction: bool = False
) -> tuple[list[str], float]:
    """Lines of an xray/und data-set table and the file's highest sin(theta)/lambda.

    ``extinction``: an X-ray set of a multipole project, which refines EXTI
    (:func:`_extinction_lines`).
    """
    refl = read_hkl4(f)
    found = check_f2_data(refl, crystal, f"{name} ({f.name})", merged=True)[1]
    stol = sinthl(refl.hkl, crystal)
    L = [
        *[f"# WARNING: {w}" for w in found],
        "[[datasets]]",
        f"name = {_q(name)}",
        f"kind = {_q(kind)}"
        + ("   # unpolarised neutrons: F2 of the nuclei" if kind == "und" else ""),
        f"file = {_q(_rel(f, folder))}",
        f'format = "hklf4"        # detected: SHELX HKLF 4, {len(refl)} reflections, '
        f"sin(theta)/lambda <= {stol.max():.3f} 1/A",
        "merge = true             # merge equivalents in the Laue class",
        'observable = "F2"',
        'weights = "sigma"        # w = 1/sigma^2 ("shelx": set shelx_a, shelx_b)',
    ]
    wl = crystal.wavelength
    if kind == "xray" and extinction:
        L += _extinction_lines(wl)
    else:
        L.append('extinction = "none"      # CHECK: "shelx", "bc-gauss" or "bc-lorentz" if needed')
    if kind == "xray":
        L.append(
            f"wavelength = {wl}       # CHECK: from the CIF"
            if wl
            else "# wavelength = 0.71073  # CHECK: not in the CIF; needed for extinction"
        )
    else:
        L += [
            "# wavelength = 1.0      # CHECK: the neutron wavelength (A); required with extinction",
            'adp_set = "N"            # neutron ADPs LABEL.U11.N, apart from the X-ray ones',
        ]
    L.append("")
    return L, float(stol.max())


def _pnd_entry(name: str, f: Path, folder: Path, adp_set: str) -> tuple[list[str], list[str]]:
    """Lines of a pnd data-set table (all flipping-ratio blocks of an rcif) and its guesses."""
    from chasm.neutron.rcif import read_rcif

    pnd = read_rcif(f)
    if not pnd.datasets:
        raise InputError("no flipping-ratio block (_diffrn_refln_fr) in the file", str(f))
    L = [
        "[[datasets]]",
        f"name = {_q(name)}"
        + (
            f"   # one data set per block: {', '.join(name + '.' + b.name for b in pnd.datasets)}"
            if len(pnd.datasets) > 1
            else ""
        ),
        'kind = "pnd"             # polarised neutrons: flipping ratios',
        f"file = {_q(_rel(f, folder))}",
        f'format = "rcif"         # detected: cryspy rcif, {len(pnd.datasets)} flipping-ratio '
        f"block(s), {len(pnd.crystals)} crystal block(s) (the structure comes from the CIF)",
        "# block = "
        + _q(pnd.datasets[0].name)
        + "   # to fit one block only (default: every block)",
    ]
    guesses = []
    for b in pnd.datasets:
        n_ex = int(b.excluded.sum())
        ext = f"{b.extinction_model} radius {b.radius:g} um" if b.extinction_model else "none"
        L += [
            f"# block {b.name}: {len(b.hkl)} flipping ratios ({n_ex} flagged excluded), "
            f"wavelength {b.wavelength:g} A",
            f"#   CHECK: polarisation P = {b.polarisation:+g} (its sign says which flipper state "
            f"is '+'), flipper efficiency {b.efficiency:g}",
            f"#   CHECK: field {b.field:g} T along the instrument's vertical, UB type {b.ub_type}; "
            f"extinction in the file: {ext}",
        ]
        guesses.append(
            f"dataset {name} block {b.name}: P {b.polarisation:+g}, e {b.efficiency:g}, "
            f"field {b.field:g} T, wavelength {b.wavelength:g} A (from the file: check)"
        )
    L += [
        'extinction = "file"      # CHECK: sphere extinction as in the file; "on" or "off"',
        "refine_polarisation = false",
        "magnetisation_scale = false",
        "include_excluded = false",
        f"adp_set = {_q(adp_set)}"
        + (
            "            # GUESSED: no unpolarised neutron data, the X-ray ADPs are used"
            if adp_set == "X"
            else "            # the neutron ADPs, refined with the unpolarised data"
        ),
        "",
    ]
    return L, guesses


#: sin(θ)/λ (Å⁻¹) below which init writes a spherical-atom (IAM) project: a multipole
#: model is not determined by routine data (the valence deformation lives mostly
#: beyond it; e.g. Koritsanszky & Coppens, Chem. Rev. 101 (2001) 1583).
MULTIPOLE_SMAX = 0.8


def _centrosymmetric(crystal) -> bool:
    minus = -np.eye(3, dtype=int)
    return any(np.array_equal(r, minus) for r in crystal.rotations)


def _disorder(crystal, ins) -> str | None:
    """Why the structure is disordered (partial occupancies, PARTs), or None."""
    partial = [a.label for a in crystal.atoms if a.occupancy < 0.999]
    why = []
    if partial:
        more = f" and {len(partial) - 4} more" if len(partial) > 4 else ""
        why.append(f"{len(partial)} atoms with partial occupancy ({', '.join(partial[:4])}{more})")
    if ins is not None and ins.parts:
        why.append("PART " + " ".join(str(n) for n in sorted(ins.parts)) + " in _shelx_res_file")
    return "; ".join(why) or None


def _shelx_entry(
    cif: Path, block: str, folder: Path, crystal, ins, refl, stol_max: float, iam: bool
):
    """Lines of the X-ray data set of a SHELXL CIF with embedded reflections, and the
    'taken from' lines: SHELXL's own treatment (MERG 2, WGHT, EXTI, OMIT)."""
    centro = _centrosymmetric(crystal)
    L = [
        "[[datasets]]",
        'name = "xray"',
        'kind = "xray"',
        f"file = {_q(_rel(cif, folder))}   # the reflections embedded in the CIF "
        f"(_shelx_hkl_file, {len(refl)} measurements)",
        f"block = {_q(block)}",
        f'format = "hklf4"        # sin(theta)/lambda <= {stol_max:.3f} 1/A',
        "merge = true             # equivalents merged as SHELXL does (MERG 2)",
        'merge_rule = "shelxl"    # its weighted mean and sigma',
        f"friedel = {'true' if centro else 'false'}"
        + (
            "           # centrosymmetric: Friedel mates are equivalent"
            if centro
            else "          # non-centrosymmetric: Friedel mates kept apart (anomalous signal)"
        ),
        'observable = "F2"',
    ]
    src = []
    lines = ins.lines if ins is not None else {}
    if ins is not None and ins.wght is not None:
        a, b = ins.wght
        L += [
            'weights = "shelx"        # the CIF\'s own: w = 1/[s^2(Fo^2) + (aP)^2 + bP]'
            + ("" if iam else ' ("sigma": statistical weights 1/s^2)'),
            f"shelx_a = {a!r}",
            f"shelx_b = {b!r}",
        ]
        src.append(f"weights: WGHT {a} {b} (_shelx_res_file, line {lines.get('WGHT')})")
    else:
        L.append('weights = "sigma"        # no WGHT in the CIF: w = 1/sigma^2')
        src.append("weights: w = 1/sigma^2 (no WGHT in the CIF)")
    wl = (ins.wavelength if ins is not None else None) or crystal.wavelength
    exti = ins.exti if ins is not None else None
    if exti is not None:
        L += [
            'extinction = "shelx"     # EXTI of the CIF',
            f"extinction_start = {exti!r}",
        ]
        src.append(f"extinction: EXTI {exti} (_shelx_res_file, line {lines.get('EXTI')})")
    elif not iam:  # a multipole project refines EXTI (docs/physics.md)
        L += _extinction_lines(wl)
        src.append("extinction: no EXTI in the CIF; EXTI refined from 0 (multipole project)")
    else:
        L.append('extinction = "none"      # no EXTI in the CIF')
    if ins is not None and ins.swat:
        src.append("SWAT (diffuse solvent) in the CIF: not modelled by chasm; R-values will differ")
    if wl:
        L.append(f"wavelength = {wl!r}")
        src.append(
            f"wavelength: {wl} A ("
            + ("CELL of _shelx_res_file" if ins is not None and ins.wavelength else "CIF")
            + ")"
        )
    if ins is not None and ins.omit:
        L.append("omit = [" + ", ".join(f"[{h}, {k}, {m}]" for h, k, m in ins.omit) + "]")
        src.append(f"omitted reflections: {len(ins.omit)} OMIT h k l of _shelx_res_file")
    L.append("")
    return L, src


#: Convergence tolerance (max |shift|/su) of the IAM stages with SHELXL's weights: the
#: weights depend on Fc, so the score the solver tests moves with them and the last
#: Gauss-Newton steps stay at a few hundredths of an su (0.03 su on alert_example).
SHELX_WEIGHTS_TOL = 0.05


def _iam_stages(has_h: bool, extinction: bool, partial: list[str]) -> list[tuple]:
    """IAM route of a SHELXL CIF: the published model (scale only), then positions and
    ADPs of the non-H atoms (H stay where the CIF puts them; so do atoms with partial
    occupancy, which SHELXL refined with restraints chasm does not have)."""
    ext = ["*.extinction"] if extinction else []
    fix = [f"{lab}.*" for lab in partial]
    return [
        (
            "published",
            ["*.scale"],
            None,
            "the published model, one scale: compare with the CIF's R-values",
            [],
            None,
        ),
        (
            "iam",
            ["*.scale", *ext, "@nonH.x", "@nonH.y", "@nonH.z", "@nonH.U*"],
            None,
            "spherical atoms: positions and ADPs of the non-H atoms"
            + (" (H fixed at the CIF's positions)" if has_h else "")
            + ("; the partly occupied (disordered) atoms keep the CIF's values" if partial else ""),
            fix,
            None,
        ),
    ]


def project_text(
    cif: str | Path,
    xray: list[str | Path] = (),
    project_path: str | Path = "project.toml",
    h_lmax: int = 1,
    lmax: int = 4,
    kappa_sets: str = "element",
    output: str = "refined",
    title: str | None = None,
    und: list[str | Path] = (),
    pnd: list[str | Path] = (),
    magnetic: list[str] | None = None,
    total_spin: float | None = None,
    block: str | None = None,
    multipoles: bool | None = None,
) -> InitResult:
    """The project-file text for a CIF and X-ray, UND (HKLF 4) and PND (rcif) files.

    A SHELXL/olex2 CIF with embedded reflections (``_shelx_hkl_file``) and
    instructions (``_shelx_res_file``) is enough alone: without X-ray files
    its reflections become the X-ray data set, with SHELXL's treatment
    (merging as MERG 2, Friedel mates apart for a non-centrosymmetric
    structure, its WGHT weights, EXTI extinction, OMIT reflections, the
    wavelength of CELL). Data that do not reach sin(θ)/λ = 0.8 Å⁻¹, or a
    disordered structure (partial occupancies, PART), give a spherical-atom
    (IAM) project whose first stage refines only the scale of the published
    model, for comparison with the CIF's R-values; the reason is a guess.

    Parameters
    ----------
    cif : path
        Structure CIF.
    xray, und, pnd : lists of paths
        X-ray and unpolarised-neutron HKLF 4 files, cryspy rcif flipping-ratio files.
    project_path : path
        Where the project will be written (paths are written relative to it).
    h_lmax, lmax : int
        Multipole levels of H and of the other atoms.
    kappa_sets : {"element", "environment", "atom"}
    output : str
        Output folder written in the file.
    title : str, optional
    magnetic : list of str, optional
        Labels of the spin-split atoms; default with PND data: every
        transition-metal atom and its bonded neighbours (:func:`default_magnetic`).
    total_spin : float, optional
        Unpaired electrons per asymmetric unit (μB) for the total-spin
        constraint of a joint project; without it the file holds a placeholder
        that stops the run until the user fills it in.
    block : str, optional
        Data block of the CIF (default: the only block with atoms and
        reflections, or the only block with atoms).
    multipoles : bool, optional
        True: a multipole project even for low-resolution or disordered data;
        False: an IAM project; None: decided from the data (see above).

    Raises
    ------
    InputError
        Unreadable CIF or reflection file, unknown magnetic atom, unknown or
        ambiguous data block, unsupported HKLF code (twins).
    """
    cif = Path(cif)
    folder = Path(project_path).resolve().parent
    info = blocks(cif)
    block = choose_block(cif, block, need_reflections=not (xray or und or pnd))
    crystal = read_cif(cif, block)
    binfo = next(b for b in info if b.name == block)
    sources = [f"structure: {cif.name}, data_{block} ({len(crystal.atoms)} atoms)"]
    ins = read_instructions(cif, block)
    embedded = None
    if not (xray or und or pnd) and binfo.reflections:
        check_hklf(ins, str(cif))
        embedded = embedded_reflections(cif, block)
        sources.append(
            f"reflections: {cif.name}, data_{block}, _shelx_hkl_file (from line "
            f"{int(embedded.lines[0])}): {len(embedded)} measurements, HKLF "
            f"{ins.hklf if ins is not None and ins.hklf else 4}"
        )
    pub = published_fit(cif, block)
    if not np.isnan(pub.r1_all):
        sources.append(f"published (CIF): {pub.text()}")
    choices = choose_model(crystal, h_lmax=h_lmax, lmax=lmax, kappa_sets=kappa_sets)
    xsmax = max((_smax(Path(f), crystal) for f in xray), default=0.0)
    if embedded is not None:
        xsmax = max(xsmax, float(sinthl(embedded.hkl, crystal).max()))
    practice = plan(crystal, cif, choices, xsmax, KAPPA_PRIME_SMAX, neutron=bool(und))
    for ch in choices:
        ch.lmax = practice.lmax.get(ch.label, ch.lmax)
        if ch.label in practice.cartesian:
            ch.axes, ch.axes_reason = None, "ion: Cartesian (crystal) axes"
    if xray or embedded is not None:
        n_obs = sum(_n_unique(Path(f), crystal) for f in xray)
        if embedded is not None:
            n_obs += len(merge(embedded, crystal)[0].hkl)
        # every X-ray set of a multipole project with a known wavelength refines EXTI
        wl = crystal.wavelength or (ins.wavelength if ins is not None else None)
        n_ext = (len(xray) + (embedded is not None)) if wl else 0
        note = parameter_note(crystal, choices, practice, n_obs, lmax, n_ext)
        if note:
            practice.guesses.append(note)
            practice.restraint_lines[:0] = [f"# CHECK: {note}", ""]
    guesses: list[str] = []
    has_h = any(a.element in HYDROGENS for a in crystal.atoms)
    labels = [a.label for a in crystal.atoms]
    xray, und, pnd = [Path(f) for f in xray], [Path(f) for f in und], [Path(f) for f in pnd]
    if magnetic is not None:
        for lab in magnetic:
            if lab not in labels:
                raise InputError(
                    f"--magnetic: no atom {lab!r} in the structure (atoms: {', '.join(labels)})",
                    str(cif),
                )
        split, reasons = list(magnetic), [f"{lab}: given" for lab in magnetic]
    elif pnd:
        split, reasons = default_magnetic(crystal)
        guesses.append(
            "magnetic (spin-split) atoms: "
            + ("; ".join(reasons) if split else "NONE found (no transition metal): list them")
        )
    else:
        split, reasons = [], []
    joint = bool(split or und or pnd)
    smax_data = 0.0
    if embedded is not None:
        smax_data = float(sinthl(embedded.hkl, crystal).max())
    for f in xray:
        smax_data = max(smax_data, float(sinthl(read_hkl4(f).hkl, crystal).max()))
    iam_why = None
    if not (split or pnd):
        why = []
        if (xray or embedded is not None) and smax_data < MULTIPOLE_SMAX:
            why.append(
                f"the X-ray data reach sin(theta)/lambda {smax_data:.3f} 1/A < "
                f"{MULTIPOLE_SMAX} (a multipole model would overfit)"
            )
        dis = _disorder(crystal, ins)
        if dis:
            why.append(f"disorder: {dis}")
        if multipoles is False:
            iam_why = "asked for (--no-multipoles)"
        elif why and not multipoles:
            iam_why = "; ".join(why) + " (--multipoles to ask for a multipole project)"
    iam = iam_why is not None
    if iam:
        guesses.append(f"spherical-atom (IAM) project: {iam_why}")
    L = [
        "# chasm project file (TOML), written by `chasm init`.",
        "# Reference of every key: docs/project-file.md. Paths are relative to this file.",
        "# Lines marked GUESSED were chosen by chasm; lines marked CHECK need your data's values.",
        "",
        f"title = {_q(title or crystal.name)}",
        f"output = {_q(output)}   # output folder: result.json, model.cif, listing.txt",
        "",
        "[structure]",
        f"cif = {_q(_rel(cif, folder))}",
    ]
    if len([b for b in info if b.atoms]) > 1:
        L.append(f"block = {_q(block)}")
    L += [
        "",
        "[model]",
    ]
    if iam:
        L += [
            f'default = "iam"         # GUESSED: spherical atoms: {iam_why}',
            'form_factors = "it92"   # as SHELXL (International Tables C, 4 Gaussians + c)',
            "riding_h = false        # H stay at the CIF's positions (SHELXL's riding geometry)",
            "",
        ]
        choices = []
    else:
        L += [
            'default = "hc"          # Hansen-Coppens pseudo-atoms ("iam" = spherical atoms)',
            'form_factors = "it92"   # for atoms with model = "iam"',
            f"lmax = {lmax}                # non-H atoms",
            f"h_lmax = {h_lmax}              # hydrogen atoms (bond-directed dipole P10"
            + (", quadrupole P20)" if h_lmax >= 2 else ")"),
            "h_kappa = 1.2           # kappa = kappa' of H, kept fixed",
            f"kappa_sets = {_q(kappa_sets)}  # sharing kappa, kappa': element | environment | atom",
            "riding_h = true         # H ride on their parent at neutron X-H distances "
            "(Allen & Bruno 2010)",
            'h_adp = "riding"        # isotropic H: Uiso = 1.2 / 1.5 Ueq(parent) (SHELXL '
            "convention)",
        ]
    if split:
        L += [
            'basis = "chargespin"    # split atoms: charge LABEL.Pv, LABEL.P20 ... and spin '
            "LABEL.Pv.spin, LABEL.P20.spin ...",
            "# spin-split atoms have split = true below (or list them: magnetic = "
            + "["
            + ", ".join(_q(x) for x in split)
            + "])",
        ]
    L.append("")
    for ch in choices:
        L.append(f"[model.atoms.{ch.label}]")
        L.append(f"lmax = {ch.lmax}")
        if ch.label in practice.cartesian:
            L.append(f'axes = "cartesian"   # GUESSED: {ch.axes_reason}')
        elif ch.axes is not None:
            L.append(f"axes = {_q(ch.axes.as_text())}   # GUESSED: {ch.axes_reason}")
        else:
            L.append(f"# no axes: {ch.axes_reason}  (GUESSED)")
        ch.kappa_set = practice.kappa_set.get(ch.label, ch.kappa_set)
        L.append(f"kappa_set = {_q(ch.kappa_set)}")
        L += practice.atom_lines.get(ch.label, [])
        guesses.append(
            f"{ch.label}: axes {ch.axes.as_text() if ch.axes else 'Cartesian'} "
            f"({ch.axes_reason}); lmax {ch.lmax}; kappa set {ch.kappa_set}"
        )
        if ch.label in split:
            metal = ch.element in TRANSITION_METALS
            why = next(r for r in reasons if r.startswith(f"{ch.label}:"))
            L += [
                f"split = true            # GUESSED: spin-split ({why.split(': ', 1)[1]})"
                if magnetic is None
                else "split = true            # spin-split (--magnetic)",
                f"spin_pv = {1.0 if metal else 0.0}           # GUESSED: starting spin monopole "
                + ("(1 muB on the metal)" if metal else "(0 on a ligand)"),
                "share_kappa = true       # GUESSED: one kappa for both spins "
                "(false: LABEL.kappa.up/.dn, needs PND data)",
                "share_kappa_prime = true # GUESSED: one kappa' for both spins",
            ]
            guesses.append(
                f"{ch.label}: spin-split, spin_pv {1.0 if metal else 0.0} muB, shared kappa, kappa'"
            )
        if ch.element in HYDROGENS:
            if ch.parent is None or ch.xh_distance is None:
                L.append("# GUESSED: no parent with a standard X-H distance; give both:")
                L.append('# ride_on = "X1"')
                L.append("# xh_distance = 1.0")
                guesses.append(f"{ch.label}: NO riding parent found, set ride_on/xh_distance")
            else:
                L.append(f"ride_on = {_q(ch.parent)}")
                L.append(
                    f"xh_distance = {ch.xh_distance}   # GUESSED: neutron "
                    f"{crystal.atoms[crystal.atom_index(ch.parent)].element}-H"
                )
                guesses.append(f"{ch.label}: rides on {ch.parent} at {ch.xh_distance} A")
        L.append("")
    smax_all = 0.0
    x_ext = False  # some X-ray data set refines extinction
    xnames, unames, pnames = _names("xray", xray), _names("und", und), _names("pnd", pnd)
    for name, f in zip(xnames, xray, strict=True):
        lines, smax = _hkl_entry("xray", name, f, folder, crystal, extinction=not iam)
        L += lines
        x_ext = x_ext or _refines_extinction(lines)
        smax_all = max(smax_all, smax)
        sources.append(f"reflections ({name}): {f.name}, HKLF 4, sin(theta)/lambda <= {smax:.3f}")
        ext = (
            EXTINCTION_NOTE
            if not iam and crystal.wavelength
            else "no extinction" + ("" if iam else " (no wavelength: give it to refine EXTI)")
        )
        guesses.append(
            f"dataset {name}: HKLF 4, wavelength {crystal.wavelength or 'unknown'}, "
            f"w = 1/sigma^2, {ext}"
        )
    for name, f in zip(unames, und, strict=True):
        L += _hkl_entry("und", name, f, folder, crystal)[0]
        guesses.append(f"dataset {name}: HKLF 4 neutron F2, no extinction, neutron ADP set N")
    for name, f in zip(pnames, pnd, strict=True):
        lines, g = _pnd_entry(name, f, folder, "N" if und else "X")
        L += lines
        guesses += g
    if embedded is not None:
        lines, src = _shelx_entry(cif, block, folder, crystal, ins, embedded, smax_data, iam)
        L += lines
        x_ext = x_ext or _refines_extinction(lines)
        sources += src
        smax_all = smax_data
        guesses.append(
            "dataset xray: the CIF's reflections, merged as SHELXL does"
            + (", its WGHT weights and EXTI" if iam else "")
        )
    if not (xray or und or pnd) and embedded is None:
        L += [
            "# [[datasets]]  -- add your data here, e.g.",
            '# name = "xray"',
            '# kind = "xray"',
            '# file = "data.hkl"',
            "",
        ]
    L += [
        "[constraints]",
        "electroneutrality = true   # sum of charges of the asymmetric unit = charge",
        "charge = 0.0",
    ]
    if split and total_spin is not None:
        L += [
            f"total_spin = {float(total_spin)!r}   # unpaired electrons per asymmetric unit "
            "(muB; given to chasm init)",
        ]
    elif split:
        L += [
            f"total_spin = {_q(TOTAL_SPIN_PLACEHOLDER)}",
            "# CHECK: replace the string above by the number of unpaired electrons per asymmetric",
            "# unit (muB, e.g. 1.0 for one Cu2+), or delete the line for no total-spin constraint.",
            "# chasm stops until this is done.",
        ]
        guesses.append("constraints.total_spin: PLACEHOLDER, must be filled in before running")
    if not iam:  # the multipole practice (kappa', restraints, ions) means nothing for IAM
        guesses += practice.guesses
    L += [
        '# same = [["C1.U11", "C2.U11"]]        # groups sharing one value',
        '# [[constraints.equal]]  a = "N1.P*"  b = "N2.P*"   (pairwise equal)',
        "",
        *([] if iam else practice.restraint_lines),
        "[refinement]",
        'score = "unit"',
        "tol = 0.01          # converged when max |shift|/su < tol",
        "max_cycles = 30",
        "correlation_threshold = 0.9",
        "",
        "# Strategy: stages run in order, each from where the previous ended.",
        "# Patterns: names, globs (*.kappa, *.spin, *.U*.N), atom selectors (@H.U*, @nonH.x,",
        "# @split.P*.spin); 'data' names the data sets a stage fits (default: all).",
    ]
    stages: list[tuple] = []
    # spin populations refined: the spin monopoles of every split atom and, for the metals,
    # the l = 2, 4 spin multipoles (a d-shell density has only l = 0, 2, 4); P00.spin
    # duplicates Pv.spin, and ligand spin multipoles are not determined by a few hundred
    # flipping ratios (free them in the stage when the data allow)
    metals = [lab for lab in split if crystal.atoms[labels.index(lab)].element in TRANSITION_METALS]
    spin_free = (["*.Pv.spin"] + [f"{lab}.P[24]*.spin" for lab in metals]) if split else []
    neutron_adp = ["*.N"] if und else []
    if iam and (xray or embedded is not None):
        has_ext = embedded is not None and ins is not None and ins.exti is not None
        partial = [
            a.label for a in crystal.atoms if a.occupancy < 0.999 and a.element not in HYDROGENS
        ]
        stages += _iam_stages(has_h, has_ext, partial)
    elif xray or embedded is not None:
        scale = tuple(f"{n}.scale" for n in xnames) if joint else ("*.scale",)
        fix = neutron_adp + (["*.spin"] if split else []) + practice.fix
        data = xnames if joint else None
        for name, free, smin, comment in _stages(
            has_h, h_lmax, smax_all or 1.0, x_ext, scale, h_u=practice.h_u_free
        ):
            stages.append((name, free, smin, comment, fix, data))
        if smax_all and smax_all < KAPPA_PRIME_SMAX:
            why = (
                "kappa' kept at its theoretical value: the X-ray data reach sin(theta)/lambda "
                f"{smax_all:.2f} 1/A "
                f"< {KAPPA_PRIME_SMAX} (too little high-order data to determine it); add "
                '"@nonH.kappa_prime" to a stage after the multipoles to refine it'
            )
            guesses.append(why)
            L.append(f"# GUESSED: {why}")
    if xray or embedded is not None:
        everything = list(stages[-1][1])
    else:  # positions from the unpolarised neutrons, if any
        everything = ["@nonH.x", "@nonH.y", "@nonH.z"] if und else []
    if split and (und or pnd):
        free = [f"{n}.scale" for n in unames] + spin_free + neutron_adp
        stages.append(
            (
                "pnd-spin",
                free,
                None,
                "spin monopoles (Pv.spin) and the metals' l = 2, 4 spin multipoles from the "
                "neutron data only" + (" with the UND scale and the neutron ADPs" if und else ""),
                [],
                unames + pnames,
            )
        )
    if joint and (und or pnd):
        free = list(dict.fromkeys(everything + [f"{n}.scale" for n in unames] + spin_free))
        free += [x for x in neutron_adp if x not in free]
        stages.append(("joint", free, None, "everything with all data", [], None))
    for name, free, smin, comment, fix, data in stages:
        L += [
            "",
            "[[stages]]",
            f"name = {_q(name)}   # {comment}",
            "free = [" + ", ".join(_q(x) for x in free) + "]",
        ]
        if fix and iam:
            L.append("fix = [" + ", ".join(_q(x) for x in fix) + "]   # partly occupied")
        elif fix:
            L.append("fix = [" + ", ".join(_q(x) for x in fix) + "]   # not refined in this stage")
        if data is not None:
            L.append("data = [" + ", ".join(_q(x) for x in data) + "]")
        if smin is not None:
            L.append(f"smin = {smin}   # sin(theta)/lambda >= {smin} 1/A in this stage")
        if iam and embedded is not None and ins is not None and ins.wght is not None:
            L.append(
                f"tol = {SHELX_WEIGHTS_TOL}   # SHELXL's weights move with Fc: the last steps "
                "stay at a few 0.01 su"
            )
    from chasm.maps.default_planes import maps_toml

    map_lines, map_names = maps_toml(crystal)
    L += map_lines
    guesses += [f"map {name}" for name in map_names]
    guesses.append("strategy: " + " -> ".join(s[0] for s in stages))
    guesses.append("X-H distances: " + ", ".join(f"{k}-H {v}" for k, v in NEUTRON_XH.items()))
    return InitResult("\n".join(L) + "\n", guesses, sources)


def write_project(
    out: str | Path,
    cif: str | Path,
    xray: Sequence[str | Path] = (),
    force: bool = False,
    **kwargs: Any,
) -> InitResult:
    """Write :func:`project_text` to ``out`` (never over an existing file unless ``force``).

    ``kwargs`` go to :func:`project_text` (``und``, ``pnd``, ``magnetic``, ``block``,
    ...). Without any data file the CIF must carry its reflections (an InputError
    otherwise), or be a cryspy rcif: then the project is PND-only, everything taken
    from the rcif (:func:`chasm.project.pnd_init.pnd_project_text`).
    """
    out = Path(out)
    if out.exists() and not force:
        raise InputError("project file exists; choose another name or pass --force", str(out))
    from chasm.project.pnd_init import is_rcif, pnd_project_text

    if is_rcif(cif):
        if xray or kwargs.get("und") or kwargs.get("pnd"):
            raise InputError(
                "the structure file is a cryspy rcif: chasm init X.rcif alone writes a "
                "PND-only project from it; a joint project needs the structure as a CIF "
                "(the rcif then goes to --pnd)",
                str(cif),
            )
        # a cryspy rcif alone: a PND-only project (chasm.project.pnd_init)
        res = pnd_project_text(
            cif, project_path=out, block=kwargs.get("block"), magnetic=kwargs.get("magnetic")
        )
        write_text_atomic(out, res.text)
        return res
    if not (xray or kwargs.get("und") or kwargs.get("pnd")):
        info = blocks(cif)
        name = choose_block(cif, kwargs.get("block"), need_reflections=True)
        if not next(b for b in info if b.name == name).reflections:
            raise InputError(
                f"data block {name!r} has no embedded reflections (_shelx_hkl_file) and no "
                "data were given: pass --xray FILE (SHELX HKLF 4), or a SHELXL/olex2 CIF that "
                "carries its reflections",
                str(cif),
            )
    res = project_text(cif, list(xray), project_path=out, **kwargs)
    write_text_atomic(out, res.text)
    return res

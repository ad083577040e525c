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
from dataclasses import dataclass, field
from pathlib import Path

from chasm.crystal.cif import read_cif
from chasm.crystal.neighbours import bonded
from chasm.errors import InputError
from chasm.io.atomic import write_text_atomic
from chasm.io.shelx_hkl import read_hkl4
from chasm.io.shelx_hkl import stol as sinthl
from chasm.project.autobuild import HYDROGENS, choose_model
from chasm.project.checks import check_f2_data
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
) -> list[tuple]:
    """Default X-ray strategy: (name, free patterns, smin, comment)."""
    hp = ["@H.P10"] + (["@H.P20"] if h_lmax >= 2 else [])
    ext = ["*.extinction"] if extinction else []
    pos = ["@nonH.x", "@nonH.y", "@nonH.z", "@nonH.U*"]
    hi = 0.7 if smax >= 0.9 else None
    scale = list(scale)
    st = [("scale", scale + ext, None, "scale (and extinction) only")]
    st.append(
        (
            "high-order",
            scale + pos,
            hi,
            "positions and ADPs of non-H atoms from high-order data, where the "
            "valence deformation hardly contributes",
        )
    )
    if has_h:
        st.append(("hydrogens", scale + ["@H.U*"], None, "H displacement parameters"))
    st.append(
        (
            "monopoles",
            scale + ["*.Pv", "@nonH.kappa"],
            None,
            "valence populations and kappa (electroneutrality holds)",
        )
    )
    # charge multipoles l >= 1 by exact shape (a trailing * would cross the dot into
    # the spin populations LABEL.P20.spin of split atoms)
    mult = ["@nonH.P[1-9]0", "@nonH.P[1-9][1-9][+-]"] + (hp if has_h and h_lmax >= 1 else [])
    st.append(
        (
            "multipoles",
            scale + ["*.Pv", "@nonH.kappa"] + mult,
            None,
            "multipoles (P00 is left out: it duplicates Pv)",
        )
    )
    kp = smax >= KAPPA_PRIME_SMAX
    if kp:
        st.append(
            (
                "kappa-prime",
                scale + ["@nonH.kappa_prime"] + mult,
                None,
                "kappa' once the multipoles are non-zero (before, no data depend on it)",
            )
        )
    everything = (
        scale
        + ext
        + pos
        + (["@H.U*"] if has_h else [])
        + ["*.Pv", "@nonH.kappa"]
        + (["@nonH.kappa_prime"] if kp else [])
        + mult
    )
    st.append(("all", everything, None, "everything together"))
    return st


def _names(prefix: str, files) -> list[str]:
    return [prefix] if len(files) == 1 else [f"{prefix}{i + 1}" for i in range(len(files))]


def _hkl_entry(kind: str, name: str, f: Path, folder: Path, crystal) -> tuple[list[str], float]:
    """Lines of an xray/und data-set table and the file's highest sin(theta)/lambda."""
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
        'extinction = "none"      # CHECK: "shelx", "bc-gauss" or "bc-lorentz" if needed',
    ]
    wl = crystal.wavelength
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
) -> InitResult:
    """The project-file text for a CIF and X-ray, UND (HKLF 4) and PND (rcif) files.

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

    Raises
    ------
    InputError
        Unreadable CIF or reflection file, unknown magnetic atom.
    """
    cif = Path(cif)
    folder = Path(project_path).resolve().parent
    crystal = read_cif(cif)
    choices = choose_model(crystal, h_lmax=h_lmax, lmax=lmax, kappa_sets=kappa_sets)
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
        "",
        "[model]",
        'default = "hc"          # Hansen-Coppens pseudo-atoms ("iam" = spherical atoms)',
        'form_factors = "it92"   # for atoms with model = "iam"',
        f"lmax = {lmax}                # non-H atoms",
        f"h_lmax = {h_lmax}              # hydrogen atoms (bond-directed dipole P10"
        + (", quadrupole P20)" if h_lmax >= 2 else ")"),
        "h_kappa = 1.2           # kappa = kappa' of H, kept fixed",
        f"kappa_sets = {_q(kappa_sets)}  # sharing kappa, kappa': element | environment | atom",
        "riding_h = true         # H ride on their parent at neutron X-H distances "
        "(Allen & Bruno 2010)",
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
        if ch.axes is not None:
            L.append(f"axes = {_q(ch.axes.as_text())}   # GUESSED: {ch.axes_reason}")
        else:
            L.append(f"# no axes: {ch.axes_reason}  (GUESSED)")
        L.append(f"kappa_set = {_q(ch.kappa_set)}")
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
    xnames, unames, pnames = _names("xray", xray), _names("und", und), _names("pnd", pnd)
    for name, f in zip(xnames, xray, strict=True):
        lines, smax = _hkl_entry("xray", name, f, folder, crystal)
        L += lines
        smax_all = max(smax_all, smax)
        guesses.append(
            f"dataset {name}: HKLF 4, wavelength {crystal.wavelength or 'unknown'}, "
            "no extinction, w = 1/sigma^2"
        )
    for name, f in zip(unames, und, strict=True):
        L += _hkl_entry("und", name, f, folder, crystal)[0]
        guesses.append(f"dataset {name}: HKLF 4 neutron F2, no extinction, neutron ADP set N")
    for name, f in zip(pnames, pnd, strict=True):
        lines, g = _pnd_entry(name, f, folder, "N" if und else "X")
        L += lines
        guesses += g
    if not (xray or und or pnd):
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
    L += [
        '# same = [["C1.U11", "C2.U11"]]        # groups sharing one value',
        '# [[constraints.equal]]  a = "N1.P*"  b = "N2.P*"   (pairwise equal)',
        "",
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
    if xray:
        scale = tuple(f"{n}.scale" for n in xnames) if joint else ("*.scale",)
        fix = neutron_adp + (["*.spin"] if split else [])
        data = xnames if joint else None
        for name, free, smin, comment in _stages(has_h, h_lmax, smax_all or 1.0, False, scale):
            stages.append((name, free, smin, comment, fix, data))
        if smax_all and smax_all < KAPPA_PRIME_SMAX:
            why = (
                f"kappa' kept at 1: the X-ray data reach sin(theta)/lambda {smax_all:.2f} 1/A "
                f"< {KAPPA_PRIME_SMAX} (too little high-order data to determine it); add "
                '"@nonH.kappa_prime" to a stage after the multipoles to refine it'
            )
            guesses.append(why)
            L.append(f"# GUESSED: {why}")
    if xray:
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
        if fix:
            L.append("fix = [" + ", ".join(_q(x) for x in fix) + "]   # not seen by these data")
        if data is not None:
            L.append("data = [" + ", ".join(_q(x) for x in data) + "]")
        if smin is not None:
            L.append(f"smin = {smin}   # sin(theta)/lambda >= {smin} 1/A in this stage")
    guesses.append("strategy: " + " -> ".join(s[0] for s in stages))
    guesses.append("X-H distances: " + ", ".join(f"{k}-H {v}" for k, v in NEUTRON_XH.items()))
    return InitResult("\n".join(L) + "\n", guesses)


def write_project(out: str | Path, cif, xray=(), force: bool = False, **kwargs) -> InitResult:
    """Write :func:`project_text` to ``out`` (never over an existing file unless ``force``).

    ``kwargs`` go to :func:`project_text` (``und``, ``pnd``, ``magnetic``, ...).
    """
    out = Path(out)
    if out.exists() and not force:
        raise InputError("project file exists; choose another name or pass --force", str(out))
    res = project_text(cif, list(xray), project_path=out, **kwargs)
    write_text_atomic(out, res.text)
    return res

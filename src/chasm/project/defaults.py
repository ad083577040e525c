"""What ``chasm init`` takes from the field's practice, each choice with its source.

docs/physics.md ("Defaults of chasm init and their sources") gives the
reasons at length; the short form:

- κ′ (the contraction of the deformation functions): fixed at a theoretical
  value per element and bonding class (:data:`THEORY_KAPPA_PRIME`), taken from
  the per-atom-type κ′ of the MATTS2021 data bank (the successor of UBDB; Jha
  et al., J. Chem. Inf. Model. 62 (2022) 3752; Rybicka et al., ibid. 3766;
  Chodkiewicz et al., J. Appl. Cryst. 51 (2018) 193), fitted to theoretical
  (DFT) densities. Atoms of one κ set share κ′; a set whose atoms fall
  in different classes is split by class. A restrained free κ′
  (theory ± :data:`KAPPA_PRIME_SIGMA`) is offered, commented out, when the
  data reach sinθ/λ ≥ :data:`~chasm.project.init.KAPPA_PRIME_SMAX`.
- H: κ = κ′ = 1.2 fixed (:data:`chasm.project.autobuild.H_KAPPA`), the
  bond-directed dipole P10 (quadrupole with ``--h-lmax 2``), X–H at neutron
  distances (Allen & Bruno 2010), Uiso riding on the parent
  (:mod:`chasm.refine.riding_adp`, SHELXL's 1.2 / 1.5 Ueq) for H isotropic
  in the CIF; H anisotropic in the CIF get one free Uiso (``uiso_free``) when
  the project has no neutron data, their U_ij when it has. X-ray data alone do
  not determine H U_ij: in simulations of urea (the init project, 20 noise
  realisations) H2's U went non-positive-definite and the last stage crept
  along H2.U12 for 30 cycles in 3-6 of 20 runs.
- Ions: recognised from the CIF (type symbols such as ``Na1+``, the
  ``_atom_type_oxidation_number`` loop) or, for the alkali and alkaline-earth
  metals and the halides, from the coordination (:func:`recognise_ions`). An
  ion starts from its configuration, Pv = Pv(neutral) − charge (Ca²⁺: 4s⁰,
  Pv = 0; F⁻: 2s²2p⁶, Pv = 8); a main-group cation is spherical with Pv and
  κ fixed (no valence electrons to deform: the data cannot determine κ of an
  empty shell), an anion keeps the multipoles its site allows.
- Transition metals: the databank's valence shell is (n−1)d + ns
  (:func:`chasm.density.databank.default_valence`), one Pv for both, the
  d-shell multipoles l ≤ 4 refined; an oxidation state from the CIF sets the
  start Pv (Cu²⁺: 3d⁹4s⁰, Pv = 9).
- Chemical equivalence: atoms of one element with the same bonded graph to
  the second shell are tied by similarity restraints (MoPro style) of their
  multipoles, in local frames built alike (:func:`equivalence_groups`,
  :mod:`chasm.refine.similarity`); Krause et al., IUCrJ 4 (2017) 420 found
  that ties between equivalent atoms were needed on every data set they
  tested. A planar three-coordinated atom gets the local-mirror restraint
  (P_lm− = 0).
- Extinction: every X-ray data set of a multipole project refines SHELXL's
  EXTI from 0 together with the valence model (the monopole, multipole and
  last stages; :data:`chasm.project.init.EXTINCTION_NOTE`): extinction weakens
  the strongest low-angle reflections, which carry the valence density, and
  left out it is absorbed by κ and Pv (urea: EXTI 0.095(7), R1(all) 0.0257 →
  0.0246). A spherical-atom project keeps the CIF's choice (SHELXL parity).
- Observations per parameter: a stage refining more than one parameter per
  :data:`MIN_OBS_PER_PARAMETER` observations is flagged
  (:func:`obs_per_parameter_warning`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from chasm.crystal.neighbours import bonded, neighbours

__all__ = [
    "KAPPA_PRIME_TARGET",
    "KAPPA_PRIME_SIGMA",
    "THEORY_KAPPA_PRIME",
    "theory_kappa_prime",
    "SIMILARITY_SIGMA",
    "MIRROR_SIGMA",
    "MIN_OBS_PER_PARAMETER",
    "ALKALI",
    "ALKALINE_EARTH",
    "HALIDES",
    "Ion",
    "recognise_ions",
    "ion_valence",
    "equivalence_groups",
    "obs_per_parameter_warning",
]

#: κ′ of an element without a theoretical value in :data:`THEORY_KAPPA_PRIME`.
KAPPA_PRIME_TARGET = 1.0
#: σ of the κ′ restraint (to the theoretical value) offered, commented out, by chasm init:
#: about the spread of the MATTS2021 κ′ over the atom types of one class (0.02-0.04).
KAPPA_PRIME_SIGMA = 0.05

#: Theoretical κ′ by (element, bonding class): value and source. From the MATTS2021
#: data bank (discamb-project/MATTS, MATTS2021databank.txt; Jha et al., J. Chem. Inf.
#: Model. 62 (2022) 3752 and Rybicka et al., ibid. 3766), whose atom types carry a κ′
#: fitted to theoretical (DFT) densities of small molecules; assumed (not checked against
#: the bank's code) to refer to the single-ζ Slater deformation functions chasm uses
#: (n_l = 2, 2, 3, 4 for l = 1-4, exponents of Clementi & Raimondi). The bank gives κ′
#: per atom type, not per element: the value here is
#: the median over the types of the class that were read (their ids in the source
#: text); the spread over those types is about 0.03. Classes: "N4" a nitrogen with four
#: bonded neighbours (ammonium, R-NH3+, R3NH+), "NO" a nitrogen bonded to two or more
#: terminal O (nitro, N-oxide), "" every other atom of the element. Elements absent
#: here keep κ′ = 1 (:data:`KAPPA_PRIME_TARGET`).
THEORY_KAPPA_PRIME: dict[tuple[str, str], tuple[float, str]] = {
    ("C", ""): (
        0.89,
        "MATTS2021, median of 27 C types (0.83-0.94, one 1.06; e.g. C400a 0.893 and C408 0.865 "
        "sp3, C357a 0.872 and C373 0.850 sp2)",
    ),
    ("N", ""): (
        1.03,
        "MATTS2021, median of 20 three-coordinated N types (0.97-1.12; e.g. N310 1.032 "
        "C(sp2)-NH2, N302 1.013 C-NH2, N311 1.051)",
    ),
    ("N", "N4"): (
        0.80,
        "MATTS2021, median of 9 four-coordinated N types (0.77-0.83; e.g. N401a 0.814 "
        "C-NH3+, N455 0.830 NH4+)",
    ),
    ("N", "NO"): (
        0.77,
        "MATTS2021 N312 0.765 (nitro N; N-oxides N459 0.761, N3592 0.778)",
    ),
    ("O", ""): (
        1.16,
        "MATTS2021, median of 40 O types (1.11-1.22; e.g. O101 1.163 carboxylate, "
        "O1051 1.153 amide C=O, O205a 1.116 hydroxyl, O001 1.114 water)",
    ),
}
#: σ (electrons) of the similarity restraints between equivalent atoms' P_lm.
SIMILARITY_SIGMA = 0.02
#: σ (electrons) of the local-mirror restraints P_lm− = 0.
MIRROR_SIGMA = 0.01
#: Fewer observations per refined parameter than this in a stage gives a warning.
MIN_OBS_PER_PARAMETER = 10.0

ALKALI = frozenset("Li Na K Rb Cs".split())
ALKALINE_EARTH = frozenset("Mg Ca Sr Ba".split())
HALIDES = frozenset("F Cl Br I".split())
#: Atoms a cation of group 1 or 2 is coordinated by in its salts.
_DONORS = frozenset("N O F Cl Br I S".split())
#: Coordination shell searched around a group 1/2 metal (Å), and the width of its first
#: shell beyond the nearest non-H neighbour (Å): H and the second shell (the C of a
#: carboxylate, the H of a water) do not count.
_SHELL = 3.3
_SHELL_WIDTH = 0.5


@dataclass
class Ion:
    """A recognised ion: formal charge and why."""

    label: str
    element: str
    charge: int
    reason: str

    @property
    def main_group_cation(self) -> bool:
        return self.charge > 0 and self.element in ALKALI | ALKALINE_EARTH | {"Al"}


def _oxidation_numbers(cif_path) -> dict[str, int]:
    """``_atom_type_symbol`` -> ``_atom_type_oxidation_number`` of the CIF's first block."""
    import gemmi

    try:
        block = gemmi.cif.read(str(cif_path)).sole_block()
    except Exception:  # noqa: BLE001  (several blocks or unreadable: no numbers)
        try:
            block = gemmi.cif.read(str(cif_path))[0]
        except Exception:  # noqa: BLE001
            return {}
    table = block.find("_atom_type_", ["symbol", "oxidation_number"])
    out = {}
    for row in table:
        try:
            out[gemmi.cif.as_string(row[0])] = int(round(float(row[1])))
        except (ValueError, TypeError):
            continue
    return out


def recognise_ions(crystal, cif_path=None) -> dict[str, Ion]:
    """Ions of the structure, by atom label.

    In order: the type symbol's charge (``Na1+``, ``Ca2+``), the CIF's
    ``_atom_type_oxidation_number`` for the atom's type, then the
    coordination: an alkali (+1) or alkaline-earth (+2) metal whose first
    coordination shell (non-H neighbours within 0.5 Å of the nearest, up to
    3.3 Å) is all N, O, S or halogens, and a halogen with no bonded neighbour
    but such cations (−1).
    """
    ox = _oxidation_numbers(cif_path) if cif_path is not None else {}
    out: dict[str, Ion] = {}
    for i, a in enumerate(crystal.atoms):
        if a.charge:
            out[a.label] = Ion(a.label, a.element, a.charge, f"type symbol {a.type_symbol}")
        elif ox.get(a.type_symbol or a.element, 0):
            q = ox[a.type_symbol or a.element]
            out[a.label] = Ion(a.label, a.element, q, f"_atom_type_oxidation_number {q:+d}")
        elif a.element in ALKALI | ALKALINE_EARTH:
            shell = [
                n
                for n in neighbours(crystal, i, _SHELL)
                if n.distance > 1e-6 and crystal.atoms[n.index].element not in ("H", "D")
            ]
            if shell:  # the first coordination shell: within 0.5 A of the nearest
                d0 = min(n.distance for n in shell)
                shell = [n for n in shell if n.distance <= d0 + _SHELL_WIDTH]
            if shell and all(crystal.atoms[n.index].element in _DONORS for n in shell):
                q = 1 if a.element in ALKALI else 2
                out[a.label] = Ion(
                    a.label,
                    a.element,
                    q,
                    f"group {q} metal coordinated only by N/O/S/halogen within {_SHELL} A",
                )
    cations = {lab for lab, ion in out.items() if ion.charge > 0}
    for i, a in enumerate(crystal.atoms):
        if a.label in out or a.element not in HALIDES or not cations:
            continue
        nb = [crystal.atoms[n.index].label for n in bonded(crystal, i)]
        if all(lab in cations for lab in nb):
            out[a.label] = Ion(a.label, a.element, -1, "halogen bonded to no atom but cations")
    return out


def kappa_prime_class(crystal, i: int) -> str:
    """The bonding class of atom ``i`` for :data:`THEORY_KAPPA_PRIME` ("", "N4" or "NO")."""
    a = crystal.atoms[i]
    if a.element != "N":
        return ""
    nb = bonded(crystal, i)
    if len(nb) >= 4:
        return "N4"
    terminal_o = [
        n
        for n in nb
        if crystal.atoms[n.index].element == "O" and len(bonded(crystal, n.index)) == 1
    ]
    return "NO" if len(terminal_o) >= 2 else ""


def theory_kappa_prime(crystal, i: int) -> tuple[float, str, str] | None:
    """(κ′, class, source) of atom ``i`` from :data:`THEORY_KAPPA_PRIME`, None if absent."""
    cls = kappa_prime_class(crystal, i)
    hit = THEORY_KAPPA_PRIME.get((crystal.atoms[i].element, cls))
    return None if hit is None else (hit[0], cls, hit[1])


def ion_valence(element: str, charge: int) -> float:
    """Pv of an ion: the neutral atom's valence electrons minus the charge (≥ 0)."""
    from chasm.density.databank import spherical_atom

    return max(0.0, float(spherical_atom(element).n_valence) - charge)


def _colour_refine(crystal, colours: list[str], depth: int) -> list[str]:
    for _ in range(depth):
        colours = [
            colours[i] + "(" + ",".join(sorted(colours[n.index] for n in bonded(crystal, i))) + ")"
            for i in range(len(crystal.atoms))
        ]
    return colours


def equivalence_groups(crystal, depth: int = 2) -> list[list[str]]:
    """Groups (≥ 2 atoms) of one element with the same bonded graph to ``depth`` shells.

    The graph is compared by iterated neighbour colouring (element, then the
    sorted colours of the neighbours, ``depth`` times): two atoms in one group
    have the same elements in their first ``depth`` shells, connected alike.
    """
    colours = _colour_refine(crystal, [a.element for a in crystal.atoms], depth)
    groups: dict[str, list[str]] = {}
    for a, c in zip(crystal.atoms, colours, strict=True):
        groups.setdefault(c, []).append(a.label)
    return [g for g in groups.values() if len(g) > 1]


def obs_per_parameter_warning(stage: str, n_obs: int, n_par: int) -> str | None:
    """A warning when a stage has fewer than :data:`MIN_OBS_PER_PARAMETER` observations
    per refined parameter (None otherwise)."""
    if n_par <= 0 or n_obs >= MIN_OBS_PER_PARAMETER * n_par:
        return None
    return (
        f"stage {stage}: {n_obs} observations for {n_par} parameters "
        f"({n_obs / n_par:.1f} per parameter, below {MIN_OBS_PER_PARAMETER:g}); fix or "
        "restrain some (fewer multipole levels, shared kappa, similarity restraints)"
    )


# ---------------------------------------------------------------------- what init writes
@dataclass
class Plan:
    """The choices of :func:`plan` for ``chasm init``.

    Attributes
    ----------
    atom_lines : dict
        Label -> extra lines of its ``[model.atoms.LABEL]`` table.
    fix : list of str
        Parameter names fixed in every stage (ions' Pv, κ, κ′).
    restraint_lines : list of str
        ``[[similarity]]``, ``[[local_symmetry]]`` tables and the κ′ option.
    guesses : list of str
        One line per choice, for the user.
    h_u_free : bool
        Some H keep a free U (anisotropic in the CIF, or no riding parent).
    lmax : dict
        Label -> multipole level overriding the default (ions).
    cartesian : set
        Labels whose multipoles use the Cartesian (crystal) frame: ions,
        whose neighbours are all symmetry images (in a cubic crystal the
        frame of the cubic harmonics, Kurki-Suonio, Isr. J. Chem. 16 (1977) 115).
    kappa_set : dict
        Label -> κ set overriding the model choice's, where the atoms of one
        set have different theoretical κ′ (the set is split by class).
    """

    atom_lines: dict
    fix: list
    restraint_lines: list
    guesses: list
    h_u_free: bool
    lmax: dict
    cartesian: set
    kappa_set: dict = field(default_factory=dict)


def _weights(crystal) -> list[float]:
    return [a.occupancy / len(crystal.site_symmetry(i)) for i, a in enumerate(crystal.atoms)]


def plan(
    crystal, cif_path, choices, smax: float, kappa_prime_smax: float, neutron: bool = False
) -> Plan:
    """Ions, riding H displacements, equivalence and local-symmetry restraints for init.

    Parameters
    ----------
    crystal : Crystal
    cif_path : path
        The CIF (for ``_atom_type_oxidation_number``).
    choices : list of AtomChoice
        :func:`chasm.project.autobuild.choose_model` (axes, parents).
    smax : float
        Highest sinθ/λ of the X-ray data (0 without).
    kappa_prime_smax : float
        Resolution from which a restrained κ′ is offered.
    neutron : bool
        The project has neutron diffraction data: H anisotropic in the CIF keep
        their U_ij free. Without, they get one free Uiso (``uiso_free``).
    """
    from chasm.refine.riding import HYDROGENS
    from chasm.refine.riding_adp import uiso_factor
    from chasm.refine.similarity import frame_signature, is_planar_trigonal

    lines: dict[str, list[str]] = {c.label: [] for c in choices}
    guesses: list[str] = []
    fix: list[str] = []
    lmax: dict[str, int] = {}
    cartesian: set[str] = set()
    ions = recognise_ions(crystal, cif_path)
    w = _weights(crystal)
    q_total = 0.0
    for i, a in enumerate(crystal.atoms):
        ion = ions.get(a.label)
        if ion is None:
            continue
        pv = ion_valence(a.element, ion.charge)
        q_total += w[i] * ion.charge
        cartesian.add(a.label)
        lines[a.label].append(
            f"pv = {pv:g}               # GUESSED: {a.element}{abs(ion.charge)}"
            f"{'+' if ion.charge > 0 else '-'} ion ({ion.reason})"
        )
        if ion.main_group_cation:
            lmax[a.label] = -1
            fix += [f"{a.label}.Pv", f"{a.label}.kappa"]
            guesses.append(
                f"{a.label}: {a.element} cation charge {ion.charge:+d} ({ion.reason}): spherical, "
                f"Pv = {pv:g} and kappa fixed (a closed-shell cation has no valence density "
                "the data could deform or expand)"
            )
        else:
            guesses.append(
                f"{a.label}: {a.element} ion charge {ion.charge:+d} ({ion.reason}): starts from "
                f"Pv = {pv:g}; multipoles allowed by its site refined"
            )
    if ions and abs(q_total) > 1e-9:  # the others take the balancing charge at the start
        rest = [
            i
            for i, a in enumerate(crystal.atoms)
            if a.label not in ions and a.element not in HYDROGENS
        ]
        if rest:
            from chasm.density.databank import spherical_atom

            extra = q_total / sum(w[i] for i in rest)
            for i in rest:
                a = crystal.atoms[i]
                pv = float(spherical_atom(a.element).n_valence) + extra
                lines[a.label].append(
                    f"pv = {pv:.6g}   # GUESSED: neutral + {extra:.4g} e, balancing the ions' "
                    "charge at the start (electroneutrality)"
                )
    # hydrogens: riding Uiso on the parent unless anisotropic in the CIF
    parents = [c.parent for c in choices if c.parent is not None]
    h_free = False
    for a, c in zip(crystal.atoms, choices, strict=True):
        if a.element not in HYDROGENS:
            continue
        if (a.u_aniso is not None and neutron) or c.parent is None:
            h_free = True
            why = "anisotropic in the CIF" if c.parent is not None else "no riding parent"
            lines[a.label].append(f"# U refined freely ({why})")
            guesses.append(f"{a.label}: U refined freely ({why})")
            continue
        if a.u_aniso is not None:  # X-ray data alone: one free Uiso, not six U_ij
            h_free = True
            lines[a.label].append(
                "uiso_free = true        # GUESSED: anisotropic in the CIF; X-ray data alone do "
                "not determine H U_ij: one Uiso (delete this line to refine the U_ij)"
            )
            guesses.append(
                f"{a.label}: anisotropic in the CIF, refined isotropically (one free Uiso; no "
                "neutron data)"
            )
            continue
        ip = crystal.atom_index(c.parent)
        f = uiso_factor(crystal, ip, parents.count(c.parent))
        lines[a.label].append(
            f"u_riding = {f:g}         # GUESSED: Uiso = {f:g} Ueq({c.parent}) "
            "(SHELXL convention: 1.5 for CH3/OH/NH3 H, 1.2 otherwise)"
        )
    if any(a.element in HYDROGENS and a.u_aniso is None for a in crystal.atoms):
        guesses.append("isotropic H: Uiso riding on the parent (1.2 / 1.5 Ueq), never negative")
    # chemical equivalence: similarity restraints in frames built alike
    rl: list[str] = []
    for group in equivalence_groups(crystal):
        group = [lab for lab in group if lab not in ions or not ions[lab].main_group_cation]
        by_sig: dict = {}
        for lab in group:
            k = crystal.atom_index(lab)
            by_sig.setdefault(frame_signature(crystal, choices, k), []).append(lab)
        for sig, labs in by_sig.items():
            if sig is None or len(labs) < 2:
                continue
            rl += [
                "[[similarity]]   # GUESSED: same element and bonded graph to the second shell",
                "atoms = [" + ", ".join(f'"{x}"' for x in labs) + "]",
                'parameters = ["P*"]',
                f"sigma = {SIMILARITY_SIGMA:g}",
                "",
            ]
            guesses.append(
                f"similarity restraints (sigma {SIMILARITY_SIGMA:g} e) on the multipoles of "
                f"{', '.join(labs)} (chemically equivalent; exact ties: constraints.equal)"
            )
    for k, c in enumerate(choices):
        if c.label in ions or not is_planar_trigonal(crystal, choices, k):
            continue
        rl += [
            "[[local_symmetry]]   # GUESSED: planar, three-coordinated: local mirror xz",
            f'atom = "{c.label}"',
            'symmetry = "mirror"',
            f"sigma = {MIRROR_SIGMA:g}",
            "",
        ]
        guesses.append(f"{c.label}: planar three-coordinated, P_lm- restrained to 0")
    sets, targets = _theory_kappa_prime(crystal, choices, ions, lines, guesses)
    if smax >= kappa_prime_smax and targets:
        rl += [
            f"# kappa' is fixed at its theoretical value; the data reach sin(theta)/lambda "
            f"{smax:.2f} 1/A: to",
            '# refine it, add "@nonH.kappa_prime" to the last stage with these restraints:',
        ]
        for lab, value in targets.items():
            rl += [
                "# [[restraints]]",
                f'# parameter = "{lab}.kappa_prime"   # one per kappa set (shared in the set)',
                f"# target = {value:g}",
                f"# sigma = {KAPPA_PRIME_SIGMA:g}",
            ]
        rl.append("")
        guesses.append(
            f"a restrained kappa' (theory +- {KAPPA_PRIME_SIGMA:g}) is offered commented out"
        )
    return Plan(lines, fix, rl, guesses, h_free, lmax, cartesian, sets)


def _theory_kappa_prime(crystal, choices, ions, lines, guesses) -> tuple[dict, dict]:
    """Write the theoretical κ′ of every non-H atom that has one (:data:`THEORY_KAPPA_PRIME`).

    Returns the κ-set overrides (a set whose atoms fall in different classes is
    split into one set per class, so that the atoms tied by a set share one κ′)
    and, per κ set, its first atom label -> the theoretical κ′.
    """
    from chasm.refine.riding import HYDROGENS

    by_set: dict[str, list[tuple[int, tuple[float, str, str]]]] = {}
    for i, (a, c) in enumerate(zip(crystal.atoms, choices, strict=True)):
        ion = ions.get(a.label)
        if a.element in HYDROGENS or (ion is not None and ion.main_group_cation):
            continue
        th = theory_kappa_prime(crystal, i)
        if th is not None:
            by_set.setdefault(c.kappa_set, []).append((i, th))
    override: dict[str, str] = {}
    targets: dict[str, tuple] = {}
    for key, members in by_set.items():
        split = len({th[1] for _, th in members}) > 1
        for i, (value, cls, source) in members:
            a = crystal.atoms[i]
            new_key = f"{key}-{cls}" if split and cls else key
            if new_key != key:
                override[a.label] = new_key
            targets.setdefault(new_key, (a.label, value, source))
            what = a.element + (f" ({cls})" if cls else "")
            lines[a.label].append(
                f"kappa_prime = {value:g}   # GUESSED: theoretical kappa' of {what} (MATTS2021 "
                "data bank, docs/physics.md)"
            )
    for key, (_, value, source) in targets.items():
        guesses.append(f"kappa set {key}: kappa' fixed at {value:g} (theory: {source})")
    return override, {lab: value for lab, value, _ in targets.values()}


# ---------------------------------------------------------------------- parameters per observation
def _site_dof(crystal, i: int) -> tuple[int, int]:
    """Free coordinates and U_ij of atom ``i`` under its site symmetry.

    The dimension of the invariant subspace is the group average of the
    character: tr R for a position, (tr² R + tr R²)/2 for a symmetric tensor.
    """
    rots = crystal.cartesian_rotations()[crystal.site_symmetry(i)]
    tr = np.trace(rots, axis1=1, axis2=2)
    tr2 = np.einsum("nij,nji->n", rots, rots)
    return int(round(float(tr.mean()))), int(round(float(((tr**2 + tr2) / 2).mean())))


def _n_multipoles(crystal, i: int, axes, lmax: int) -> int:
    """P_lm with l ≥ 1 allowed by the site symmetry (in the atom's frame)."""
    from chasm.density.sitesym import allowed_multipoles

    if lmax < 1:
        return 0
    frame = axes.matrix(crystal, i) if axes is not None else np.eye(3)
    rots = crystal.cartesian_rotations()[crystal.site_symmetry(i)]
    basis, _ = allowed_multipoles(rots, frame, lmax)
    return int(sum(1 for col in basis.T if abs(col[0]) < 0.5))  # column 0 is P00


def estimate_parameters(crystal, choices, plan_: Plan, lmax: int, n_data: int = 0) -> int:
    """Parameters of the last default stage with the non-H atoms at ``lmax``.

    Scale, positions and U allowed by the site symmetry (riding H: none; riding
    Uiso: none), Pv, the allowed P_lm (l ≥ 1; H: P10, and P20 with h_lmax 2),
    one κ per element with a free κ, minus the electroneutrality row, plus
    ``n_data`` parameters of the data sets beyond the scale (extinction). κ′ fixed.
    """
    from chasm.refine.riding import HYDROGENS

    n, kappas = 1 + n_data, set()
    fixed = set(plan_.fix)
    for i, (a, c) in enumerate(zip(crystal.atoms, choices, strict=True)):
        nx, nu = _site_dof(crystal, i)
        is_h = a.element in HYDROGENS
        riding_u = is_h and any(x.startswith("u_riding") for x in plan_.atom_lines[a.label])
        n += (0 if is_h and c.parent else nx) + (
            0 if riding_u else (1 if a.u_aniso is None else nu)
        )
        n += 0 if f"{a.label}.Pv" in fixed else 1
        level = c.lmax if (is_h or a.label in plan_.lmax) else lmax
        # H: the stages free the bond-directed P10 (and P20), not every allowed P_lm
        n += min(level, 2) if is_h else _n_multipoles(crystal, i, c.axes, level)
        if not is_h and f"{a.label}.kappa" not in fixed:
            kappas.add(c.kappa_set)
    return n + len(kappas) - 1


def parameter_note(
    crystal, choices, plan_: Plan, n_obs: int, lmax: int, n_data: int = 0
) -> str | None:
    """A note when the multipole stages would have fewer than 10 observations per parameter.

    Names the level at which the ratio would reach :data:`MIN_OBS_PER_PARAMETER`
    (the level itself is left as asked: a user's choice). ``n_data``: see
    :func:`estimate_parameters`.
    """
    n_par = estimate_parameters(crystal, choices, plan_, lmax, n_data)
    if n_obs >= MIN_OBS_PER_PARAMETER * n_par:
        return None
    better = [
        lv
        for lv in range(lmax - 1, 0, -1)
        if n_obs >= MIN_OBS_PER_PARAMETER * estimate_parameters(crystal, choices, plan_, lv, n_data)
    ]
    hint = f"--lmax {better[0]}" if better else "fewer parameters (IAM, or more data)"
    return (
        f"{n_obs} unique X-ray reflections for about {n_par} parameters in the last stage "
        f"({n_obs / n_par:.1f} per parameter, below {MIN_OBS_PER_PARAMETER:g}) at lmax {lmax}; "
        f"consider {hint}, similarity restraints or shared populations"
    )

"""Choose a multipole model from the structure alone (what ``chasm init`` writes).

For every atom: the local axes from its covalently bonded neighbours, the
multipole level by element, a κ set, and for hydrogens the parent atom and a
standard neutron X–H distance. Every choice comes with a short reason, so
that the project file can say what was guessed.

Local axes (XD convention, :class:`chasm.density.frames.LocalAxes`):

- two or more neighbours: z towards the nearest non-H neighbour (the nearest
  neighbour if all are H), x in the plane of z and the next neighbour;
- one neighbour (terminal atom, e.g. a carbonyl O): z towards it, x in the
  plane of z and a neighbour of that neighbour;
- hydrogen: z along the bond to its parent, x towards another neighbour of
  the parent;
- when those x candidates are (nearly) collinear with z (sine < 0.1, e.g. an
  atom on an inversion centre between two images of one neighbour), x goes
  to the nearest atom image within 4 Å that is off the z line;
- isolated atom: no axes (the Cartesian frame), said so in the reason.

Every frame point is the actual image found by the neighbour search: a
neighbour that is not the atom of the reference cell is written with its
exact operation, ``O1@-x+1,-y,-z`` (:func:`frame_token`), so a frame never
depends on which image of a label is nearest; each chosen frame is evaluated
(:meth:`LocalAxes.matrix`) before it is accepted, so ``refine`` cannot reject it.

The site-symmetry constraints on the multipoles are exact for any frame
(:mod:`chasm.refine.symmetry_constraints`), so this choice only affects which
populations are zero by symmetry, not the model's correctness.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chasm.crystal.neighbours import (
    BOND_TOLERANCE,
    Neighbour,
    bonded,
    covalent_radius,
    neighbours,
)
from chasm.density.frames import NEAREST_IMAGE_CUTOFF, LocalAxes, point_position, symop_text
from chasm.errors import InputError
from chasm.refine.riding import HYDROGENS, NEUTRON_XH, parent_atom

__all__ = ["AtomChoice", "choose_atom", "choose_model", "environment_key", "HYDROGENS"]

#: Valence-shell kappa and kappa' for hydrogen, a common fixed choice (1.2; e.g.
#: Volkov, Abramov & Coppens, Acta Cryst. A57 (2001) 272: contracted bonded H).
H_KAPPA = 1.2


@dataclass
class AtomChoice:
    """The model chosen for one atom and why."""

    label: str
    element: str
    lmax: int
    axes: LocalAxes | None
    axes_reason: str
    kappa_set: str
    parent: str | None = None
    xh_distance: float | None = None


def _ordered(crystal, nbrs: list[Neighbour]) -> list[Neighbour]:
    heavy = [n for n in nbrs if crystal.atoms[n.index].element not in HYDROGENS]
    light = [n for n in nbrs if crystal.atoms[n.index].element in HYDROGENS]
    return heavy + light


def environment_key(crystal, i: int) -> str:
    """Element and sorted neighbour elements, e.g. ``C(C,C,H,N)``."""
    el = crystal.atoms[i].element
    nb = sorted(crystal.atoms[n.index].element for n in bonded(crystal, i))
    return f"{el}({','.join(nb)})"


#: Smallest sine of the angle between z and the x-defining direction that init accepts
#: (a well-conditioned frame; :func:`chasm.density.frames.local_frame` itself only
#: rejects exact collinearity).
MIN_FRAME_SINE = 0.1

#: Cut-off (Å) of the search for a frame point when the bonded neighbours give none.
FRAME_SEARCH_CUTOFF = 4.0


def frame_token(crystal, i: int, n: Neighbour, near=None) -> str:
    """How the frame of atom ``i`` names its neighbour ``n``: the bare label when that
    resolves to ``n`` (the atom of the reference cell, and the nearest image of its
    label), ``LABEL@OP`` (the exact operation, lattice shift included) otherwise.
    ``near``: the neighbours of atom ``i`` within 6 Å, when known."""
    if n.is_identity and np.allclose(
        point_position(n.label, crystal, i, near=near), n.cart, atol=1e-6
    ):
        return n.label
    rot = crystal.rotations[n.op]
    return f"{n.label}@{symop_text(rot, crystal.translations[n.op] + np.asarray(n.shift))}"


def _sine(z: np.ndarray, v: np.ndarray) -> float:
    nz, nv = np.linalg.norm(z), np.linalg.norm(v)
    if nz < 1e-6 or nv < 1e-6:
        return 0.0
    return float(np.linalg.norm(np.cross(z, v)) / (nz * nv))


def _x_candidates(crystal, first: Neighbour, nbrs: list[Neighbour], near, terminal: bool):
    """Frame points for x, best first: bonded neighbours (of the atom, or for a terminal
    atom of its only neighbour), then any atom image within FRAME_SEARCH_CUTOFF."""
    if terminal:
        rf = covalent_radius(crystal.atoms[first.index].element)
        bonded_to_first = [
            n
            for n in near
            if n is not first
            and np.linalg.norm(n.cart - first.cart) > 1e-6
            and np.linalg.norm(n.cart - first.cart)
            <= rf + covalent_radius(crystal.atoms[n.index].element) + BOND_TOLERANCE
        ]
        bonded_to_first.sort(key=lambda n: np.linalg.norm(n.cart - first.cart))
        head = [(n, f"neighbour of {first.label}") for n in _ordered(crystal, bonded_to_first)]
    else:
        head = [(n, "bonded neighbour") for n in nbrs[1:]]
    rest = [(n, "nearest atom off the z line") for n in near if n.distance <= FRAME_SEARCH_CUTOFF]
    return head + rest


def _axes_for(crystal, i: int) -> tuple[LocalAxes | None, str]:
    atom = crystal.atoms[i]
    near = neighbours(crystal, i, NEAREST_IMAGE_CUTOFF)
    ri = covalent_radius(atom.element)
    nbrs = _ordered(
        crystal,
        [
            n
            for n in near
            if n.distance <= ri + covalent_radius(crystal.atoms[n.index].element) + BOND_TOLERANCE
        ],
    )
    if not nbrs:
        return None, "no bonded neighbour: Cartesian axes"
    first = nbrs[0]
    terminal = atom.element in HYDROGENS or len(nbrs) == 1
    origin = crystal.frac_to_cart(atom.xyz)
    z = first.cart - origin
    z_tok = frame_token(crystal, i, first, near)
    for second, where in _x_candidates(crystal, first, nbrs, near, terminal):
        if _sine(z, second.cart - origin) < MIN_FRAME_SINE:
            continue
        x_tok = frame_token(crystal, i, second, near)
        axes = LocalAxes(z_tok, "Z", atom.label, x_tok, "X")
        try:  # exactly what refine will compute
            axes.matrix(crystal, i, near)
        except InputError:
            continue
        return axes, f"z to {z_tok}, x towards {x_tok} ({where})"
    return None, f"no atom off the line to {z_tok} within reach: Cartesian axes"


def choose_atom(
    crystal, i: int, h_lmax: int = 1, lmax: int = 4, kappa_sets: str = "element"
) -> AtomChoice:
    """Model choice for atom ``i``; ``kappa_sets`` is "element" or "environment"."""
    atom = crystal.atoms[i]
    axes, reason = _axes_for(crystal, i)
    is_h = atom.element in HYDROGENS
    key = atom.element if kappa_sets == "element" else environment_key(crystal, i)
    choice = AtomChoice(atom.label, atom.element, h_lmax if is_h else lmax, axes, reason, key)
    if is_h:
        parent = parent_atom(crystal, i)
        if parent is not None:
            choice.parent = parent.label
            choice.xh_distance = NEUTRON_XH.get(parent.element)
    return choice


def choose_model(crystal, h_lmax: int = 1, lmax: int = 4, kappa_sets: str = "element"):
    """:func:`choose_atom` for every atom of the asymmetric unit."""
    return [choose_atom(crystal, i, h_lmax, lmax, kappa_sets) for i in range(len(crystal.atoms))]

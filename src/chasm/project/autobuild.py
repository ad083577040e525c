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
- isolated atom: no axes (the Cartesian frame), said so in the reason.

The site-symmetry constraints on the multipoles are exact for any frame
(:mod:`chasm.refine.symmetry_constraints`), so this choice only affects which
populations are zero by symmetry, not the model's correctness.
"""

from __future__ import annotations

from dataclasses import dataclass

from chasm.crystal.neighbours import Neighbour, bonded
from chasm.density.frames import LocalAxes
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


def _axes_for(crystal, i: int) -> tuple[LocalAxes | None, str]:
    atom = crystal.atoms[i]
    nbrs = _ordered(crystal, bonded(crystal, i))
    if not nbrs:
        return None, "no bonded neighbour: Cartesian axes"
    first = nbrs[0]
    if atom.element in HYDROGENS or len(nbrs) == 1:
        # z along the single bond; x towards a neighbour of that neighbour
        others = [
            n
            for n in _ordered(crystal, bonded(crystal, first.index))
            if n.label != atom.label and n.distance > 1e-6
        ]
        if not others:
            return None, f"only neighbour {first.label} has no other neighbour: Cartesian axes"
        second = others[0]
        axes = LocalAxes(first.label, "Z", first.label, second.label, "X")
        return axes, f"z to {first.label}, x towards {second.label} (neighbour of {first.label})"
    second = next((n for n in nbrs[1:] if n.label != first.label), nbrs[1])
    if second.label == first.label:
        # two images of the same atom (special position): use the midpoint-free choice
        return (
            LocalAxes(first.label, "Z", atom.label, first.label, "X"),
            f"z to {first.label}; both neighbours are images of {first.label}",
        )
    return (
        LocalAxes(first.label, "Z", atom.label, second.label, "X"),
        f"z to {first.label}, x towards {second.label}",
    )


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

"""Restraints beyond target values: similarity and local symmetry of pseudo-atoms.

Three kinds of restraint, each a linear equation in the parameters with a σ
(an extra observation ``Σ c_i p_i = t ± σ`` of
:class:`~chasm.refine.refinement.Restraint`):

- **target**: ``p = t ± σ`` (κ, κ′, Pv, ...), the project file's
  ``[[restraints]]``;
- **similarity** (MoPro style, Jelsch et al., J. Appl. Cryst. 38 (2005) 38):
  the same population of chemically equivalent atoms A_1 … A_n is restrained
  to the group mean, ``s_i p(A_i) − (1/n) Σ_j s_j p(A_j) = 0 ± σ``;
- **local symmetry**: populations that a local mirror plane makes zero,
  ``P_lm = 0 ± σ``.

Local-frame mapping. Populations of two atoms can only be compared if their
local frames are built the same way from corresponding neighbours: the atoms
defining z and x must have the same elements (checked here). Two equivalent
environments may still be mirror images of each other in their frames (an
enantiomorphic pair, or two H of a CH2 group). With the frame (x, y, z) and
the y axis = z × x, a reflection y → −y maps d_lm+ (∝ cos mφ) and d_l0 onto
themselves and d_lm− (∝ sin mφ) onto −d_lm−. The handedness of an atom's
environment is the sign of Σ Z_k y_k / d_k² over its first and second
bonded shells (:func:`handedness`); atoms whose handedness differs from
that of the first atom of the group get s = −1 on their P_lm−
populations. A mirror-symmetric environment (planar, linear) has no
handedness and s = +1.

Mirror (planar sp²): an atom with three bonded neighbours in its local xz
plane (as when z and x point at two of them) has the local mirror y → −y of
its first shell; every P_lm− (odd in y) is then zero.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from chasm.crystal.neighbours import bonded
from chasm.errors import InputError
from chasm.refine.refinement import Restraint

if TYPE_CHECKING:
    from chasm.crystal.structure import Crystal
    from chasm.density.model import AtomModel
    from chasm.refine.parameters import Parameters

#: How an atom's local frame is built (:func:`frame_signature`)
FrameSignature = tuple[str, str, str, str, bool]

__all__ = [
    "HANDEDNESS_TOL",
    "handedness",
    "frame_signature",
    "similarity_restraints",
    "mirror_restraints",
    "is_planar_trigonal",
    "restraint_summary",
]

#: |Σ Z y / d²| (1/Å) below which an environment has no handedness; also the
#: largest |y| (Å) of a neighbour in the plane of a planar atom.
HANDEDNESS_TOL = 0.1


def _frame(crystal: Crystal, models: Sequence[AtomModel], i: int) -> np.ndarray | None:
    """Rows x, y, z of atom ``i``'s local frame in Cartesian Å (None: no axes)."""
    m = models[i]
    axes = getattr(m, "axes", None)
    if axes is None:
        return None
    return np.asarray(axes.matrix(crystal, i), dtype=float).T


def _shells(crystal: Crystal, i: int) -> list[tuple[str, np.ndarray]]:
    """(element, Cartesian position) of the first and second bonded shells of atom ``i``."""
    centre = crystal.frac_to_cart(crystal.atoms[i].xyz)
    out: list[tuple[str, np.ndarray]] = []
    seen = [centre]
    first = bonded(crystal, i)
    for n in first:
        out.append((crystal.atoms[n.index].element, np.asarray(n.cart, float)))
        seen.append(np.asarray(n.cart, float))
    for n in first:
        rot = np.asarray(crystal.rotations[n.op], float)
        tr = np.asarray(crystal.translations[n.op], float) + np.asarray(n.shift, float)
        for m in bonded(crystal, n.index):
            r = crystal.frac_to_cart(rot @ np.asarray(m.frac, float) + tr)
            if min(np.linalg.norm(r - s) for s in seen) < 1e-3:
                continue
            seen.append(r)
            out.append((crystal.atoms[m.index].element, r))
    return out


def handedness(crystal: Crystal, models: Sequence[AtomModel], i: int) -> int:
    """+1 or −1: on which side (y sign) of its local xz plane atom ``i``'s environment lies.

    The sign of Σ_k Z_k y_k / d_k² over the first and second bonded shells
    (y_k the local y of neighbour k, d_k its distance, Z_k its atomic
    number): equal for two atoms related by a rotation, opposite for mirror
    images. 0 when the sum is below :data:`HANDEDNESS_TOL` (a planar or
    mirror-symmetric environment), or without axes.
    """
    f = _frame(crystal, models, i)
    if f is None:
        return 0
    import gemmi

    centre = crystal.frac_to_cart(crystal.atoms[i].xyz)
    total = 0.0
    for el, r in _shells(crystal, i):
        d = r - centre
        total += gemmi.Element(el).atomic_number * float(f[1] @ d) / float(d @ d)
    if abs(total) <= HANDEDNESS_TOL:
        return 0
    return 1 if total > 0 else -1


def frame_signature(crystal: Crystal, models: Sequence[AtomModel], i: int) -> FrameSignature | None:
    """How atom ``i``'s frame is built: (element of atom0, ax1, element of atom2, ax2, hand).

    None without axes. Two atoms whose signatures agree have frames built
    from corresponding neighbours.
    """
    axes = getattr(models[i], "axes", None)
    if axes is None:
        return None
    el = {a.label: a.element for a in crystal.atoms}
    return (el.get(axes.atom0, "?"), axes.ax1, el.get(axes.atom2, "?"), axes.ax2, axes.right_handed)


def _population_names(params: Parameters, label: str, patterns: Sequence[str]) -> list[str]:
    """``LABEL.FIELD`` names of the parameters matching ``patterns`` (fields, e.g. ``P*``)."""
    prefix = f"{label}."
    fields = [n[len(prefix) :] for n in params.names if n.startswith(prefix)]
    out = []
    for f in fields:
        if "." in f:  # spin populations LABEL.P20.spin, ADP sets LABEL.U11.N
            continue
        if f == "Pv" and "Pv" not in patterns:  # "P*" means the multipoles P_lm, not Pv
            continue
        if any(fnmatch.fnmatchcase(f, pat) for pat in patterns) and f not in out:
            out.append(f)
    return out


def similarity_restraints(
    crystal: Crystal,
    models: Sequence[AtomModel],
    params: Parameters,
    labels: Sequence[str],
    fields: Sequence[str],
    sigma: float,
    where: str = "similarity",
) -> list[Restraint]:
    """Each population of each atom restrained to the mean over the group.

    Parameters
    ----------
    crystal, models
        The structure and its density models (frames).
    params : Parameters
        Names to restrain.
    labels : sequence of str
        Two or more atoms of one element with corresponding local frames.
    fields : sequence of str
        Field patterns, e.g. ``["P*", "kappa"]``: ``P*`` selects the
        multipoles P_lm (``P00`` is skipped: it duplicates Pv); name ``Pv``
        to restrain the valence populations too.
    sigma : float
        σ of every restraint (units of the parameter: electrons for P_lm).
    where : str
        Key path for messages.

    Raises
    ------
    InputError
        Fewer than two atoms, an unknown atom, atoms of different elements,
        frames built from neighbours of different elements, σ ≤ 0, or a field
        that matches no parameter.
    """
    if not sigma > 0:
        raise InputError(f"{where}.sigma: must be > 0, got {sigma:g}")
    labels = list(dict.fromkeys(labels))
    if len(labels) < 2:
        raise InputError(f"{where}.atoms: a similarity restraint needs two or more atoms")
    known = {a.label: k for k, a in enumerate(crystal.atoms)}
    for lab in labels:
        if lab not in known:
            raise InputError(
                f"{where}.atoms: no atom {lab!r} in the structure (atoms: {', '.join(known)})"
            )
    idx = [known[lab] for lab in labels]
    elements = {crystal.atoms[k].element for k in idx}
    if len(elements) > 1:
        pairs = ", ".join(f"{crystal.atoms[k].label} {crystal.atoms[k].element}" for k in idx)
        raise InputError(
            f"{where}.atoms: atoms of different elements ({pairs}); a similarity restraint "
            "ties atoms of one element"
        )
    sigs = [frame_signature(crystal, models, k) for k in idx]
    if len(set(sigs)) > 1:
        txt = ", ".join(f"{lab}: {s}" for lab, s in zip(labels, sigs, strict=True))
        raise InputError(
            f"{where}.atoms: the local frames are not built from corresponding neighbours "
            f"(elements defining z, x: {txt}); give the atoms matching 'axes'"
        )
    hands = [handedness(crystal, models, k) for k in idx]
    ref_hand = next((h for h in hands if h != 0), 0)
    names_per_atom = [_population_names(params, lab, fields) for lab in labels]
    common = [f for f in names_per_atom[0] if all(f in n for n in names_per_atom[1:])]
    common = [f for f in common if f != "P00"]
    if not common:
        raise InputError(
            f"{where}.parameters: {list(fields)} match no population common to {', '.join(labels)}"
        )
    out = []
    n = len(labels)
    for f in common:
        odd = f.startswith("P") and f.endswith("-")
        signs = [
            (-1.0 if (odd and h != 0 and ref_hand != 0 and h != ref_hand) else 1.0) for h in hands
        ]
        for a, lab in enumerate(labels):
            terms: dict[str, float] = {}
            for b, other in enumerate(labels):
                c = signs[b] * ((1.0 if a == b else 0.0) - 1.0 / n)
                terms[f"{other}.{f}"] = terms.get(f"{other}.{f}", 0.0) + c
            out.append(
                Restraint(
                    f"{lab}.{f} ~ mean({'/'.join(labels)})", 0.0, float(sigma), terms, "similarity"
                )
            )
    return out


def is_planar_trigonal(
    crystal: Crystal, models: Sequence[AtomModel], i: int, tol: float = HANDEDNESS_TOL
) -> bool:
    """Three bonded neighbours within ``tol`` Å of the atom's local xz plane.

    Then the local mirror y → −y maps the atom's first shell onto itself.
    """
    f = _frame(crystal, models, i)
    nbrs = bonded(crystal, i)
    if f is None or len(nbrs) != 3:
        return False
    centre = crystal.frac_to_cart(crystal.atoms[i].xyz)
    return all(abs(float(f[1] @ (n.cart - centre))) <= tol for n in nbrs)


def mirror_restraints(
    crystal: Crystal,
    models: Sequence[AtomModel],
    params: Parameters,
    label: str,
    sigma: float,
    where: str = "local_symmetry",
) -> list[Restraint]:
    """``P_lm− = 0 ± σ`` for an atom whose environment has the local mirror y → −y.

    Raises
    ------
    InputError
        Unknown atom, σ ≤ 0, an atom without multipoles, or an environment that
        is not planar in the atom's local xz plane (the mirror would not hold).
    """
    if not sigma > 0:
        raise InputError(f"{where}.sigma: must be > 0, got {sigma:g}")
    known = {a.label: k for k, a in enumerate(crystal.atoms)}
    if label not in known:
        raise InputError(f"{where}.atom: no atom {label!r} in the structure")
    i = known[label]
    if not is_planar_trigonal(crystal, models, i):
        raise InputError(
            f"{where}.atom: {label} does not have three bonded neighbours in its local xz plane "
            f"(within {HANDEDNESS_TOL} A); no local mirror"
        )
    fields = [f for f in _population_names(params, label, ["P*-"])]
    if not fields:
        raise InputError(f"{where}.atom: {label} has no P_lm- population to restrain")
    return [
        Restraint(
            f"{label}.{f} = 0 (mirror)", 0.0, float(sigma), {f"{label}.{f}": 1.0}, "local-symmetry"
        )
        for f in fields
    ]


def restraint_summary(
    restraints: Iterable[Restraint], names: Sequence[str], p: np.ndarray
) -> dict[str, dict[str, Any]]:
    """Per kind: count, χ² contribution Σ ((value − target)/σ)², rms misfit/σ, worst.

    Returns
    -------
    dict
        ``{kind: {"n", "chi2", "rms_misfit_su", "worst": [label, value, target, sigma]}}``.
    """
    index = {n: k for k, n in enumerate(names)}
    out: dict[str, dict[str, Any]] = {}
    for r in restraints:
        value = sum(c * float(p[index[n]]) for n, c in r.coefficients().items())
        z = (value - r.target) / r.sigma
        d = out.setdefault(r.kind, {"n": 0, "chi2": 0.0, "worst": None, "_zmax": -1.0})
        d["n"] += 1
        d["chi2"] += z * z
        if abs(z) > d["_zmax"]:
            d["_zmax"] = abs(z)
            d["worst"] = [r.name, value, r.target, r.sigma]
    for d in out.values():
        d["rms_misfit_su"] = float(np.sqrt(d["chi2"] / d["n"]))
        d["chi2"] = float(d["chi2"])
        del d["_zmax"]
    return out

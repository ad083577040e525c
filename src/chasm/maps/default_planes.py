"""Chemically sensible default map planes, each with a name.

:func:`default_planes` proposes, in this order:

1. **metal coordination planes**: for each metal atom (d-block, alkali,
   alkaline-earth, lanthanide or a main-group metal) with two or more bonded
   non-H ligands, the plane through the metal and two ligands that holds the
   most ligand atoms within 0.3 Å (ties: the shortest bonds), e.g. the
   equatorial plane of a square-pyramidal Cu(II);
2. **molecular planes**: for each molecule (bonded fragment of non-H atoms,
   symmetry images included), the least-squares plane of its largest planar
   ring (rms < 0.1 Å) or, without a ring, the plane through an atom and two
   of its neighbours that holds the most atoms of the molecule (H included)
   within 0.1 Å — for urea the whole molecule, "plane O1-C1-N1";
3. **ionic crystals** (at most four atoms in the asymmetric unit, all on
   special positions and no molecule found above): the low-index lattice
   plane through the first atom that holds the most distinct atoms and
   species, e.g. the (1-10) plane through Ca1 and F1 of CaF2;
4. otherwise the first three non-H atoms that define a plane.

Bonds are :func:`chasm.crystal.neighbours.bonded` (covalent radii + 0.4 Å).
Each plane is returned as a :class:`~chasm.maps.planes.MapPlane` whose
``spec.text`` is the text written into the project file (``[[maps]] plane``)
and whose ``name`` is printed by ``chasm init`` and used in captions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from chasm.errors import InputError
from chasm.maps.planes import MapPlane, map_plane
from chasm.maps.plot import METALS, atomic_number

if TYPE_CHECKING:
    from chasm.crystal.structure import Crystal

__all__ = ["default_planes", "METALS"]

#: Ligands within this distance (Å) of a coordination plane count as in it.
LIGAND_TOLERANCE = 0.3
#: Atoms within this distance (Å) of a molecular plane count as in it.
PLANAR_TOLERANCE = 0.1
#: Largest ring searched (atoms), largest molecule followed (atoms).
MAX_RING, MAX_MOLECULE = 8, 120
#: Low-index lattice planes tried for ionic crystals.
_HKL = [
    (1, 0, 0),
    (0, 1, 0),
    (0, 0, 1),
    (1, 1, 0),
    (1, -1, 0),
    (1, 0, 1),
    (1, 0, -1),
    (0, 1, 1),
    (0, 1, -1),
    (1, 1, 1),
    (1, 1, -1),
    (1, -1, 1),
    (-1, 1, 1),
]


@dataclass(frozen=True)
class _Node:
    """An atom image: asymmetric-unit index, operation, translation, Cartesian position."""

    index: int
    rot: tuple
    trans: tuple
    cart: tuple

    @property
    def xyz(self) -> np.ndarray:
        return np.array(self.cart)


def _token(crystal, first: int, node: _Node) -> str:
    """Atom token for ``node`` in a plane whose first atom is ``first``.

    A bare label when it resolves to this image (the atom itself, or the
    image of that label nearest to the first atom), else ``LABEL@OP``.
    """
    from chasm.density.frames import point_position, symop_text

    label = crystal.atoms[node.index].label
    try:
        p = point_position(label, crystal, first)
        if np.linalg.norm(p - node.xyz) < 1e-3:
            return label
    except InputError:
        pass
    return f"{label}@{symop_text(np.array(node.rot), np.array(node.trans))}"


def _neighbours(crystal, node: _Node, cache: dict) -> list[_Node]:
    """Bonded images of an image (bond vectors carried by the image's rotation)."""
    from chasm.crystal.neighbours import bonded

    i = node.index
    if i not in cache:
        c0 = crystal.frac_to_cart(crystal.atoms[i].xyz)
        cache[i] = [
            (
                n.index,
                np.array(crystal.rotations[n.op]),
                crystal.translations[n.op] + n.shift,
                n.cart - c0,
            )
            for n in bonded(crystal, i)
        ]
    A = crystal.A
    R = np.array(node.rot)
    Q = A @ R @ np.linalg.inv(A)
    out = []
    for j, rj, tj, d in cache[i]:
        rot = R @ rj
        trans = R @ tj + np.array(node.trans)
        out.append(_Node(j, _key(rot), tuple(float(x) for x in trans), tuple(node.xyz + Q @ d)))
    return out


def _key(m) -> tuple:
    return tuple(tuple(int(x) for x in row) for row in np.asarray(m))


def _identity(crystal, i: int) -> _Node:
    return _Node(
        i, _key(np.eye(3)), (0.0, 0.0, 0.0), tuple(crystal.frac_to_cart(crystal.atoms[i].xyz))
    )


def _molecule(crystal, start: int, cache: dict) -> tuple[list[_Node], dict]:
    """Images bonded to atom ``start`` (breadth first, at most MAX_MOLECULE, metals left
    out) and the bond graph."""
    nodes = [_identity(crystal, start)]
    seen = {_pos(nodes[0]): 0}
    edges: dict[int, set] = {0: set()}
    k = 0
    while k < len(nodes) and len(nodes) < MAX_MOLECULE:
        for nb in _neighbours(crystal, nodes[k], cache):
            if atomic_number(crystal.atoms[nb.index].element) in METALS:
                continue  # a ligand's plane is its own; the metal's comes from _metal_plane
            key = _pos(nb)
            if key not in seen:
                seen[key] = len(nodes)
                nodes.append(nb)
                edges[seen[key]] = set()
            j = seen[key]
            if j != k:
                edges[k].add(j)
                edges[j].add(k)
        k += 1
    return nodes, edges


def _pos(node: _Node) -> tuple:
    return tuple(np.round(np.array(node.cart), 3))


def _heavy(crystal, node: _Node) -> bool:
    return crystal.atoms[node.index].element not in ("H", "D")


def _rings(nodes, edges, crystal) -> list[list[int]]:
    """Smallest rings of non-H atoms through each bond (at most MAX_RING atoms), unique."""
    heavy = {k for k, n in enumerate(nodes) if _heavy(crystal, n)}
    rings, found = [], set()
    for u in heavy:
        for v in edges[u]:
            if v not in heavy or v < u:
                continue
            prev = {u: None}
            queue = [u]
            while queue and v not in prev:
                nxt = []
                for a in queue:
                    for b in edges[a]:
                        if b in heavy and b not in prev and not (a == u and b == v):
                            prev[b] = a
                            nxt.append(b)
                queue = nxt
                if len(prev) > 4 * MAX_RING * MAX_RING:
                    break
            if v not in prev:
                continue
            path, x = [], v
            while x is not None:
                path.append(x)
                x = prev[x]
            if 3 <= len(path) <= MAX_RING and frozenset(path) not in found:
                found.add(frozenset(path))
                rings.append(path[::-1])
    return rings


def _rms(points: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    c = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - c)
    return float(np.sqrt(np.mean(((points - c) @ vt[2]) ** 2))), c, vt[2]


def _plane_count(points: np.ndarray, centre, normal, tol: float) -> int:
    return int(np.sum(np.abs((points - centre) @ normal) < tol))


def _metal_plane(crystal, i: int, cache: dict):
    """(spec text, name) of the coordination plane of metal ``i``, or None."""
    centre = _identity(crystal, i)
    ligands = [n for n in _neighbours(crystal, centre, cache) if _heavy(crystal, n)]
    ligands.sort(key=lambda n: np.linalg.norm(n.xyz - centre.xyz))
    ligands = ligands[:8]
    if len(ligands) < 2:
        return None
    pts = np.array([n.xyz for n in ligands])
    best = None
    for a in range(len(ligands)):
        for b in range(a + 1, len(ligands)):
            u, v = pts[a] - centre.xyz, pts[b] - centre.xyz
            nrm = np.cross(u, v)
            if np.linalg.norm(nrm) < 0.2 * np.linalg.norm(u) * np.linalg.norm(v):
                continue  # trans pair (nearly collinear with the metal)
            nrm /= np.linalg.norm(nrm)
            count = _plane_count(pts, centre.xyz, nrm, LIGAND_TOLERANCE)
            score = (count, -(np.linalg.norm(u) + np.linalg.norm(v)))
            if best is None or score > best[0]:
                best = (score, a, b)
    if best is None:
        return None
    (count, _), a, b = best
    label = crystal.atoms[i].label
    toks = [label, _token(crystal, i, ligands[a]), _token(crystal, i, ligands[b])]
    names = [crystal.atoms[ligands[k].index].label for k in (a, b)]
    what = f"{label} and {count} of its {len(ligands)} ligand atoms"
    return ",".join(toks), f"plane {label}-{names[0]}-{names[1]} ({what})"


def _molecule_plane(crystal, nodes, edges):
    """(spec text, name) of the main ring or the largest planar group of a molecule, or None."""
    heavy = [k for k, n in enumerate(nodes) if _heavy(crystal, n)]
    if len(heavy) < 3:
        return None
    allpts = np.array([n.xyz for n in nodes])
    best_ring = None
    for ring in _rings(nodes, edges, crystal):
        pts = np.array([nodes[k].xyz for k in ring])
        rms, _, _ = _rms(pts)
        if rms < PLANAR_TOLERANCE and (best_ring is None or len(ring) > len(best_ring[0])):
            best_ring = (ring, rms)
    if best_ring is not None:
        ring, rms = best_ring
        start = nodes[ring[0]].index
        toks = [_token(crystal, start, nodes[k]) for k in ring]
        labels = [crystal.atoms[nodes[k].index].label for k in ring]
        return f"lsq({','.join(toks)})", (
            f"lsq plane of the {len(ring)}-membered ring {'-'.join(labels)} (rms {rms:.3f} Å)"
        )
    best = None
    for c in heavy:
        nbs = sorted(k for k in edges[c] if k in heavy)
        for x in range(len(nbs)):
            for y in range(x + 1, len(nbs)):
                a, b = nbs[x], nbs[y]
                p0, p1, p2 = allpts[a], allpts[c], allpts[b]
                nrm = np.cross(p1 - p0, p2 - p0)
                if np.linalg.norm(nrm) < 0.2 * np.linalg.norm(p1 - p0) * np.linalg.norm(p2 - p0):
                    continue  # nearly linear (an azide, a nitrile): no plane to speak of
                nrm /= np.linalg.norm(nrm)
                count = _plane_count(allpts, p1, nrm, PLANAR_TOLERANCE)
                score = (count, -crystal.atoms[nodes[a].index].label.__len__())
                if best is None or score > best[0]:
                    best = (score, a, c, b)
    if best is None:
        return None
    (count, _), a, c, b = best
    start = nodes[a].index
    toks = [_token(crystal, start, nodes[k]) for k in (a, c, b)]
    labels = "-".join(crystal.atoms[nodes[k].index].label for k in (a, c, b))
    whole = count == len(nodes) and len(nodes) < MAX_MOLECULE
    what = (
        f"the whole molecule, {count} atoms, is planar"
        if whole
        else f"planar group of {count} of the molecule's {len(nodes)} atoms"
    )
    return ",".join(toks), f"plane {labels} ({what})"


def _ionic_plane(crystal):
    """(spec text, name) of the best low-index lattice plane through atom 0, or None."""
    if len(crystal.atoms) > 4 or len(crystal.atoms) < 2:
        return None
    if any(len(crystal.site_symmetry(i)) < 2 for i in range(len(crystal.atoms))):
        return None
    label = crystal.atoms[0].label
    best = None
    for hkl in _HKL:
        spec = f"hkl({label};{hkl[0]},{hkl[1]},{hkl[2]})"
        mp = map_plane(crystal, spec)
        atoms = mp.plane.atoms(crystal, tolerance=PLANAR_TOLERANCE)
        kinds = {a.index for a in atoms}
        elements = {a.element for a in atoms}
        score = (len(elements), len(kinds), len(atoms), -sum(abs(h) for h in hkl))
        if best is None or score > best[0]:
            best = (score, spec, mp, sorted(kinds))
    (_, _, _, _), spec, mp, kinds = best
    through = " and ".join(crystal.atoms[k].label for k in kinds)
    hkl = spec[spec.index(";") + 1 : -1].replace(",", "")
    return spec, f"({hkl}) plane through {through} (ionic crystal)"


def default_planes(crystal: Crystal, max_planes: int = 3) -> list[MapPlane]:
    """Named default map planes of a structure, best first (module docstring).

    Parameters
    ----------
    crystal : Crystal
    max_planes : int
        At most this many.

    Returns
    -------
    list of MapPlane
        ``spec.text`` is the project-file text, ``name`` the description.
        Empty only for a structure with fewer than three non-H atoms in
        reach of each other and no lattice plane to offer.
    """
    found: list[tuple[str, str]] = []
    cache: dict = {}
    metals = [i for i, a in enumerate(crystal.atoms) if atomic_number(a.element) in METALS]
    ionic = _ionic_plane(crystal)
    if ionic is not None:
        found.append(ionic)
    for i in metals:
        got = _metal_plane(crystal, i, cache)
        if got is not None:
            found.append(got)
    covered: set[int] = set(metals)
    for i, atom in enumerate(crystal.atoms):
        if i in covered or atom.element in ("H", "D") or ionic is not None:
            continue
        nodes, edges = _molecule(crystal, i, cache)
        covered |= {n.index for n in nodes}
        got = _molecule_plane(crystal, nodes, edges)
        if got is not None:
            found.append(got)
    if not found:
        heavy = [a.label for a in crystal.atoms if a.element not in ("H", "D")]
        for a in range(len(heavy)):
            for b in range(a + 1, len(heavy)):
                for c in range(b + 1, len(heavy)):
                    text = f"{heavy[a]},{heavy[b]},{heavy[c]}"
                    try:
                        map_plane(crystal, text)
                    except InputError:
                        continue
                    found.append(
                        (text, f"plane {text.replace(',', '-')} (no chemical plane found)")
                    )
                    break
                if found:
                    break
            if found:
                break
    out, seen = [], set()
    for text, name in found:
        if text in seen:
            continue
        seen.add(text)
        try:
            mp = map_plane(crystal, text)
        except InputError:
            continue
        mp.name = name
        out.append(mp)
        if len(out) >= max_planes:
            break
    return out


def maps_toml(crystal, max_planes: int = 3) -> tuple[list[str], list[str]]:
    """``[[maps]]`` tables of the default planes for a project file, and their names.

    Returns
    -------
    lines : list of str
        TOML lines (each table preceded by a blank line; empty when no plane).
    names : list of str
        The planes' names, for ``chasm init`` to print.
    """
    planes = default_planes(crystal, max_planes)
    lines: list[str] = []
    for mp in planes:
        text = mp.spec.text.replace("\\", "\\\\").replace('"', '\\"')
        lines += [
            "",
            "[[maps]]   # drawn in the report; chasm map RESULT --plane ... for others",
            f'plane = "{text}"',
            f'name = "{mp.name}"',
        ]
    return lines, [mp.name for mp in planes]

"""Map planes where the chemistry is: by three atoms, an atom and a normal, a lattice
plane, or the least-squares plane of a group of atoms.

A plane is written as text (project file, command line) or built from Python:

=================================  ==============================================
text                               plane
=================================  ==============================================
``Cu1,O1,N1``                      through three atoms
``Cu1,O1@-x+1,-y,-z,N1``           the same with a symmetry image (frames' notation)
``normal(Cu1;0,0,1)``              through Cu1, normal along Cartesian (0, 0, 1)
``normal(Cu1;N1)``                 through Cu1, normal along Cu1 -> N1
``hkl(Ca1;1,-1,0)``                through Ca1, parallel to the lattice plane (1 -1 0)
``lsq(C1,C2,C3,C4,C5,C6)``         least-squares plane of the atoms (3 or more)
=================================  ==============================================

An atom is ``LABEL`` (the first atom of the list itself; any other bare label
is the image of that atom nearest to the first, within 6 Å), ``LABEL@OP``
with OP a space-group operation in xyz form applied to LABEL's coordinates
(``O1@-x+1,-y,-z``; lattice translations allowed), or a dummy point
``mid(A;B)`` (:func:`chasm.density.frames.point_position`).

Geometry (all Cartesian Å, :class:`chasm.maps.grids.Plane`):

* **centre**: the centroid of the defining atoms (three atoms, lsq), or the
  atom of ``normal(...)`` and ``hkl(...)``;
* **in-plane axes**: three atoms: e1 from atom 1 to atom 2, e2 towards atom 3;
  lsq: e1 along the direction of largest spread of the atoms, pointing
  towards the first atom; normal and hkl: e1 is the projection of the cell
  axis a onto the plane (b when a is within 10° of the normal); always
  e2 = normal × e1 (a right-handed u, v, normal frame);
* **extent**: by default a square that holds every defining atom with
  2 Å to spare, at least 6 Å and at most 20 Å on a side (rounded up to
  0.5 Å); ``extent=`` gives one side or (width, height);
* **step**: 0.05 Å by default.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from chasm.errors import InputError
from chasm.maps.grids import Plane

if TYPE_CHECKING:
    from chasm.crystal.structure import Crystal

__all__ = ["PlaneSpec", "MapPlane", "parse_plane", "map_plane", "split_atom_list"]

#: Default mesh step (Å).
DEFAULT_STEP = 0.05
#: Room around the defining atoms in the default extent (Å), and its bounds.
MARGIN, MIN_EXTENT, MAX_EXTENT = 2.0, 6.0, 20.0
#: sin of the smallest angle between two in-plane directions of three atoms.
COLLINEAR_SIN = 1e-3

_FORM = re.compile(r"^(normal|hkl|lsq)\((.*)\)$", re.IGNORECASE | re.DOTALL)
_EXAMPLES = "e.g. 'Cu1,O1,N1', 'normal(Cu1;0,0,1)', 'hkl(Ca1;1,1,0)' or 'lsq(C1,C2,C3,C4)'"


@dataclass(frozen=True)
class PlaneSpec:
    """What a plane is, before it meets a structure.

    Attributes
    ----------
    method : {"atoms", "normal", "hkl", "lsq"}
    atoms : tuple of str
        Atom tokens: three for "atoms", one for "normal"/"hkl", at least three
        for "lsq".
    direction : tuple of float or str or None
        "normal": a Cartesian vector or an atom token; "hkl": the Miller
        indices (floats).
    text : str
        The text it was read from (or an equivalent one).
    """

    method: str
    atoms: tuple[str, ...]
    direction: tuple[float, ...] | str | None = None
    text: str = ""


@dataclass(eq=False)
class MapPlane:
    """A plane placed in a structure, with a name for captions.

    Attributes
    ----------
    plane : Plane
        The mesh (origin, e1, e2, size, step).
    name : str
        E.g. ``"plane Cu1-O1-N1"``, ``"lsq plane C1-C2-C3-C4 (rms 0.004 Å)"``.
    spec : PlaneSpec
    points : ndarray, shape (n, 3)
        Cartesian positions of the defining atoms, Å.
    rms : float or None
        Rms distance of the atoms from a least-squares plane, Å.
    """

    plane: Plane
    name: str
    spec: PlaneSpec
    points: np.ndarray
    rms: float | None = None


def split_atom_list(text: str) -> list[str]:
    """Split ``"A,B@-x+1,-y,-z,C"`` into atom tokens.

    Commas inside parentheses (``mid(A;B@x,-y,z)``) stay; a token with ``@``
    takes the two following comma-separated parts as the rest of its
    operation. Whitespace around tokens is dropped.
    """
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    parts = [p.strip() for p in parts]
    out: list[str] = []
    i = 0
    while i < len(parts):
        p = parts[i]
        if "@" in p and not p.lower().startswith("mid("):
            out.append(",".join(parts[i : i + 3]))
            i += 3
        else:
            out.append(p)
            i += 1
    return out


def _numbers(text: str, what: str, where: str) -> tuple[float, float, float]:
    try:
        v = tuple(float(x) for x in text.split(","))
    except ValueError:
        v = ()
    if len(v) != 3 or not all(np.isfinite(v)):
        raise InputError(f"{where}: {what} must be three numbers such as 0,0,1, got {text!r}")
    if not any(v):
        raise InputError(f"{where}: {what} {text!r} is a zero vector")
    return v


def parse_plane(value: str | Sequence[str]) -> PlaneSpec:
    """Read a plane specification (module docstring for the forms).

    Parameters
    ----------
    value : str or sequence of str
        The text, or a list of three atom tokens (``["Cu1", "O1@-x+1,-y,-z", "N1"]``).

    Raises
    ------
    InputError
        Empty text, a wrong number of atoms or numbers, an unknown form.
    """
    if not isinstance(value, str):
        atoms = [str(a).strip() for a in value]
        text = ",".join(atoms)
    else:
        text = value.strip()
        atoms = None
    where = f"plane {text!r}"
    if not text:
        raise InputError(f"empty plane specification; {_EXAMPLES}")
    m = _FORM.match(text) if atoms is None else None
    if m:
        method, body = m.group(1).lower(), m.group(2).strip()
        if method == "lsq":
            toks = split_atom_list(body)
            if len(toks) < 3 or not all(toks):
                raise InputError(f"{where}: a least-squares plane needs three or more atoms")
            return PlaneSpec("lsq", tuple(toks), None, text)
        head, sep, rest = body.partition(";")
        if not sep or not head.strip() or not rest.strip():
            raise InputError(
                f"{where}: write {method}(ATOM;{'h,k,l' if method == 'hkl' else 'x,y,z'})"
            )
        head, rest = head.strip(), rest.strip()
        if method == "hkl":
            return PlaneSpec("hkl", (head,), _numbers(rest, "the Miller indices", where), text)
        if re.match(r"^[-+0-9.eE, ]+$", rest):
            return PlaneSpec("normal", (head,), _numbers(rest, "the normal", where), text)
        return PlaneSpec("normal", (head,), rest, text)
    if atoms is None:
        if "(" in text.split(",")[0] and not text.lower().startswith("mid("):
            raise InputError(f"{where}: unknown form; {_EXAMPLES}")
        atoms = split_atom_list(text)
    if len(atoms) != 3 or not all(atoms):
        raise InputError(
            f"{where}: a plane through atoms needs exactly three atoms, got {len(atoms)}; "
            f"{_EXAMPLES} (lsq(...) for a group)"
        )
    return PlaneSpec("atoms", tuple(atoms), None, text)


def _label_of(token: str) -> str:
    t = token.strip()
    if t.lower().startswith("mid("):
        t = t[4:].split(";")[0]
    return t.partition("@")[0].strip()


def _positions(crystal, tokens: Sequence[str], where: str) -> np.ndarray:
    """Cartesian positions of atom tokens; bare labels after the first: nearest images."""
    from chasm.density.frames import point_position

    labels = [a.label for a in crystal.atoms]
    first = _label_of(tokens[0])
    if first not in labels:
        raise InputError(f"{where}: {first!r} is not an atom of the structure ({_known(labels)})")
    i = labels.index(first)
    out = []
    for t in tokens:
        lab = _label_of(t)
        if lab not in labels:
            raise InputError(f"{where}: {lab!r} is not an atom of the structure ({_known(labels)})")
        out.append(point_position(t, crystal, i, f"{where}: atom"))
    return np.array(out, dtype=float)


def _known(labels: list[str]) -> str:
    shown = ", ".join(labels[:12]) + (", ..." if len(labels) > 12 else "")
    return f"atoms: {shown}"


def _extent(extent, points: np.ndarray, origin, e1, e2) -> tuple[float, float]:
    if extent is not None:
        s = np.broadcast_to(np.asarray(extent, dtype=float), (2,))
        if not np.all(np.isfinite(s) & (s > 0) & (s <= 100.0)):
            raise InputError(f"plane extent must be > 0 and <= 100 Å, got {extent!r}")
        return float(s[0]), float(s[1])
    d = points - origin
    half = max(np.abs(d @ e1).max(), np.abs(d @ e2).max())
    side = float(np.clip(np.ceil((2 * (half + MARGIN)) / 0.5) * 0.5, MIN_EXTENT, MAX_EXTENT))
    return side, side


def _axis_in_plane(crystal, normal: np.ndarray) -> np.ndarray:
    A = crystal.A
    for k in range(3):
        a = A[:, k] / np.linalg.norm(A[:, k])
        if abs(a @ normal) < np.cos(np.radians(10.0)):
            d = a - (a @ normal) * normal
            return d / np.linalg.norm(d)
    raise AssertionError("unreachable: three cell axes cannot all be near one normal")


def _name_atoms(tokens: Sequence[str]) -> str:
    return "-".join(t.replace(" ", "") for t in tokens)


def map_plane(
    crystal: Crystal,
    spec: PlaneSpec | str | Sequence[str],
    *,
    extent: float | tuple[float, float] | None = None,
    step: float | None = None,
) -> MapPlane:
    """Place a plane in a structure.

    Parameters
    ----------
    crystal : Crystal
    spec : PlaneSpec, str or sequence of str
        See :func:`parse_plane`.
    extent : float or (float, float), optional
        Side(s) of the map, Å (default: module docstring).
    step : float, optional
        Mesh step, Å (default 0.05).

    Returns
    -------
    MapPlane

    Raises
    ------
    InputError
        Unknown atom labels or operations, collinear atoms, a normal along
        nothing, a bad extent or step.
    """
    if not isinstance(spec, PlaneSpec):
        spec = parse_plane(spec)
    where = f"plane {spec.text or _name_atoms(spec.atoms)!r}"
    step = DEFAULT_STEP if step is None else step
    if not (np.isfinite(step) and 0.005 <= step <= 1.0):
        raise InputError(f"{where}: step must be between 0.005 and 1 Å, got {step!r}")
    p = _positions(crystal, spec.atoms, where)
    rms = None
    if spec.method == "atoms":
        d1, d2 = p[1] - p[0], p[2] - p[0]
        n = np.cross(d1, d2)
        l1, l2 = np.linalg.norm(d1), np.linalg.norm(d2)
        if min(l1, l2) < 1e-3 or np.linalg.norm(n) < COLLINEAR_SIN * l1 * l2:
            raise InputError(
                f"{where}: the three atoms are (nearly) collinear or coincide, so they define "
                "no plane; choose a third atom off their line, or use normal(ATOM;x,y,z)"
            )
        e1 = d1 / l1
        normal = n / np.linalg.norm(n)
        origin = p.mean(axis=0)
        name = f"plane {_name_atoms(spec.atoms)}"
    elif spec.method == "lsq":
        origin = p.mean(axis=0)
        _, s, vt = np.linalg.svd(p - origin)
        if s[1] < 1e-3 * max(s[0], 1e-12):
            raise InputError(f"{where}: the atoms lie on a line; they define no plane")
        e1, normal = vt[0], vt[2]
        ref = next((q - origin for q in p if np.linalg.norm(q - origin) > 1e-3), vt[0])
        if ref @ e1 < 0:
            e1 = -e1
        rms = float(np.sqrt(np.mean(((p - origin) @ normal) ** 2)))
        name = f"lsq plane {_name_atoms(spec.atoms)} (rms {rms:.3f} Å)"
    else:
        origin = p[0]
        if spec.method == "hkl":
            normal = np.linalg.inv(crystal.A).T @ np.asarray(spec.direction, float)
            hkl = "".join(
                f"{int(h)}" if float(h).is_integer() else f"{h:g}" for h in spec.direction
            )
            name = f"({hkl}) plane through {_name_atoms(spec.atoms)}"
        elif isinstance(spec.direction, str):
            q = _positions(crystal, [spec.atoms[0], spec.direction], where)
            normal = q[1] - q[0]
            if np.linalg.norm(normal) < 1e-3:
                raise InputError(f"{where}: the two atoms coincide; the normal is undefined")
            name = f"plane through {spec.atoms[0]} normal to {spec.atoms[0]}-{spec.direction}"
        else:
            normal = np.asarray(spec.direction, float)
            name = f"plane through {spec.atoms[0]}, normal ({', '.join(f'{x:g}' for x in normal)})"
        normal = normal / np.linalg.norm(normal)
        e1 = _axis_in_plane(crystal, normal)
    e1 = e1 - (e1 @ normal) * normal
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(normal, e1)
    size = _extent(extent, p, origin, e1, e2)
    return MapPlane(Plane(origin, e1, e2, size, step), name, spec, p, rms)

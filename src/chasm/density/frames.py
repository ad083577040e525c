"""XD-style local coordinate frames of multipole atoms.

Convention (CONVENTIONS.md, "Local frames and site symmetry"; XD / rhoCIF):
axis ``ax1`` points from the atom (``origin``) to ``atom0``; axis ``ax2`` is
perpendicular to it, in the plane containing the vector ``atom1 -> atom2``,
at an acute angle to that vector; the third axis completes a right-handed set
(or a left-handed one if requested). The frame matrix ``M`` holds the local
x, y, z axes as COLUMNS (Cartesian components), so that a Cartesian vector
``h`` has local components ``M.T @ h``.

All positions are Cartesian, in Angstrom. Dummy points (midpoints of bonds,
ring centroids) are resolved by the caller, e.g. with :func:`midpoint`.
The common XD usage is ``atom1 = origin`` (the atom itself) and ``atom2`` a
second neighbour: axis 2 then lies in the plane origin-atom0-atom2, on the
side of atom2.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chasm.errors import InputError

_AXES = {"X": 0, "Y": 1, "Z": 2}

MIN_LENGTH = 1e-6
"""Shortest accepted axis-defining vector, Angstrom."""

MIN_SINE = 1e-6
"""Smallest accepted sine of the angle between axis 1 and atom1 -> atom2."""


def midpoint(*points: np.ndarray) -> np.ndarray:
    """Centroid of Cartesian points (a dummy atom for frame definitions).

    Parameters
    ----------
    *points : array_like, shape (3,)
        Cartesian positions, Angstrom (at least one).

    Returns
    -------
    ndarray, shape (3,)
        Their mean, Angstrom.
    """
    if not points:
        raise InputError("midpoint needs at least one point")
    arr = np.asarray([np.asarray(p, dtype=float) for p in points])
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise InputError(f"midpoint expects Cartesian 3-vectors, got shape {arr.shape}")
    return arr.mean(axis=0)


def _axis_index(name: str, which: str) -> int:
    key = str(name).strip().upper()
    if key not in _AXES:
        raise InputError(f"{which} must be one of 'X', 'Y', 'Z', got {name!r}")
    return _AXES[key]


def _vector(p: np.ndarray, which: str) -> np.ndarray:
    v = np.asarray(p, dtype=float)
    if v.shape != (3,):
        raise InputError(f"{which} must be a Cartesian 3-vector, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise InputError(f"{which} has non-finite coordinates: {v}")
    return v


def local_frame(
    origin: np.ndarray,
    atom0: np.ndarray,
    atom1: np.ndarray,
    atom2: np.ndarray,
    ax1: str = "X",
    ax2: str = "Y",
    right_handed: bool = True,
) -> np.ndarray:
    """Local frame of a multipole atom, XD convention.

    Parameters
    ----------
    origin : array_like, shape (3,)
        Position of the atom carrying the frame, Cartesian Angstrom.
    atom0 : array_like, shape (3,)
        Axis ``ax1`` points from ``origin`` to ``atom0`` (Angstrom).
    atom1, atom2 : array_like, shape (3,)
        Axis ``ax2`` is perpendicular to ``ax1``, in the plane containing the
        vector ``atom2 - atom1``, at an acute angle to it (Angstrom). Often
        ``atom1`` is the origin atom itself.
    ax1, ax2 : {"X", "Y", "Z"}
        Names of the two defined axes (distinct; case-insensitive).
    right_handed : bool
        True for a right-handed frame (det M = +1), False for a left-handed
        one (det M = -1, the third axis reversed).

    Returns
    -------
    ndarray, shape (3, 3)
        M with the local x, y, z unit axes as columns; local components of a
        Cartesian vector h are ``M.T @ h``.

    Raises
    ------
    InputError
        Unknown or equal axis names; atom0 at the origin; atom1 = atom2;
        atom1 -> atom2 parallel to axis 1 (no plane defined).
    """
    i1 = _axis_index(ax1, "ax1")
    i2 = _axis_index(ax2, "ax2")
    if i1 == i2:
        raise InputError(f"ax1 and ax2 must be different axes, both are {ax1!r}")
    o = _vector(origin, "origin")
    a0 = _vector(atom0, "atom0")
    a1 = _vector(atom1, "atom1")
    a2 = _vector(atom2, "atom2")

    v1 = a0 - o
    n1 = np.linalg.norm(v1)
    if n1 < MIN_LENGTH:
        raise InputError(
            f"local frame: atom0 coincides with the origin atom (distance {n1:.2e} A); "
            "axis 1 is undefined"
        )
    e1 = v1 / n1
    v = a2 - a1
    nv = np.linalg.norm(v)
    if nv < MIN_LENGTH:
        raise InputError(
            f"local frame: atom1 and atom2 coincide (distance {nv:.2e} A); "
            "the direction defining axis 2 is undefined"
        )
    w = v - np.dot(v, e1) * e1
    nw = np.linalg.norm(w)
    if nw < MIN_SINE * nv:
        raise InputError(
            "local frame: the vector atom1 -> atom2 is collinear with axis 1 "
            f"(origin -> atom0; sine of angle {nw / nv:.2e}); axis 2 is undefined, "
            "choose other frame atoms"
        )
    e2 = w / nw
    e2 -= np.dot(e2, e1) * e1  # second Gram-Schmidt pass: orthogonal to rounding
    e2 /= np.linalg.norm(e2)
    e3 = np.cross(e1, e2)
    i3 = 3 - i1 - i2
    m = np.empty((3, 3))
    m[:, i1] = e1
    m[:, i2] = e2
    m[:, i3] = e3
    if (np.linalg.det(m) > 0.0) != bool(right_handed):
        m[:, i3] = -e3
    return m


#: Cut-off (Å) for the nearest image of a bare label in a frame definition.
NEAREST_IMAGE_CUTOFF = 6.0

_FRAME_HELP = (
    "name other frame atoms: a symmetry image 'LABEL@-x+1,-y,-z' or a dummy point "
    "'mid(A;B@x,-y+1/2,z)' (docs/project-file.md, Local axes)"
)


def symop_text(rotation, translation) -> str:
    """A symmetry operation as a compact xyz triplet without spaces, e.g. ``-x+1,-y,-z+1/2``.

    Parameters
    ----------
    rotation : array_like of int, shape (3, 3)
        Rotation part R in fractional coordinates.
    translation : array_like, shape (3,)
        Translation t (fractions), lattice shifts included.
    """
    from fractions import Fraction

    rows = []
    for r, t in zip(np.asarray(rotation, dtype=int), np.asarray(translation, float), strict=True):
        text = ""
        for c, name in zip(r, "xyz", strict=True):
            if c == 0:
                continue
            sign = "-" if c < 0 else ("+" if text else "")
            text += sign + (str(abs(int(c))) if abs(c) != 1 else "") + name
        f = Fraction(float(t)).limit_denominator(24)
        if f != 0:
            text += ("+" if f > 0 and text else "") + str(f)
        rows.append(text or "0")
    return ",".join(rows)


def _parse_op(text: str, crystal, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Rotation and translation of ``text``; it must be a space-group operation."""
    import gemmi

    try:
        op = gemmi.Op(text)
    except (RuntimeError, ValueError) as exc:
        raise InputError(
            f"{where}: {text!r} is not a symmetry operation in xyz form ({exc}), "
            "e.g. '-x+1,-y,-z' or 'x+1/2,-y+1/2,z'"
        ) from None
    rot = np.array(op.rot, dtype=int) // gemmi.Op.DEN
    tran = np.array(op.tran, dtype=float) / gemmi.Op.DEN
    for r, t in zip(crystal.rotations, crystal.translations, strict=True):
        d = tran - t
        if np.array_equal(r, rot) and np.allclose(d, np.round(d), atol=1e-6):
            return rot, tran
    raise InputError(
        f"{where}: {text!r} is not an operation of the space group "
        f"({len(crystal.rotations)} operations, lattice translations allowed)"
    )


def point_position(token: str, crystal, i: int, where: str = "", near=None) -> np.ndarray:
    """Cartesian position (Å) of one frame point of atom ``i``.

    Accepted forms (no whitespace):

    - ``LABEL``: the atom itself when it is the atom's own label, otherwise the
      image of that atom nearest to atom ``i`` (within 6 Å);
    - ``LABEL@OP``: the image of LABEL by the space-group operation OP, an xyz
      triplet such as ``-x+1,-y,-z`` (lattice translations allowed), applied
      exactly to LABEL's coordinates: x' = R x + t;
    - ``mid(P1;P2;...)``: the centroid of the points P1, P2, ... (each a
      ``LABEL`` or ``LABEL@OP``), a dummy point such as a bond midpoint.

    ``near`` may pass ``neighbours(crystal, i, NEAREST_IMAGE_CUTOFF)`` when it is
    already known (it is only used for bare labels).

    Raises
    ------
    InputError
        Unknown label, bad operation, no image within range; the message starts
        with ``where``.
    """
    from chasm.crystal.neighbours import neighbours

    token = str(token).strip()
    where = where or f"local axes of {crystal.atoms[i].label}: point"
    low = token.lower()
    if low.startswith("mid(") and token.endswith(")"):
        parts = [p for p in token[4:-1].split(";") if p.strip()]
        if not parts or any(p.strip().lower().startswith("mid(") for p in parts):
            raise InputError(
                f"{where}: dummy point {token!r} must list atoms, e.g. 'mid(C1;C2@-x+1,-y,-z)'"
            )
        return midpoint(*[point_position(p, crystal, i, where, near) for p in parts])
    label, _, op = token.partition("@")
    labels = [a.label for a in crystal.atoms]
    if label not in labels:
        raise InputError(f"{where} {label!r} is not an atom of the structure")
    j = labels.index(label)
    if op:
        rot, tran = _parse_op(op, crystal, f"{where}: {token!r}")
        return crystal.frac_to_cart(rot @ np.asarray(crystal.atoms[j].xyz, float) + tran)
    if j == i:
        return crystal.frac_to_cart(crystal.atoms[i].xyz)
    if near is None:
        near = neighbours(crystal, i, NEAREST_IMAGE_CUTOFF)
    near = [n for n in near if n.index == j and n.distance <= NEAREST_IMAGE_CUTOFF]
    if not near:
        raise InputError(
            f"{where}: no image of {label} within {NEAREST_IMAGE_CUTOFF:g} A of "
            f"{crystal.atoms[i].label}; name the image, e.g. '{label}@x+1,y,z'"
        )
    return near[0].cart


@dataclass(frozen=True)
class LocalAxes:
    """Definition of a local frame by frame points (XD / rhoCIF style).

    ``ax1`` points from the atom to ``atom0``; ``ax2`` lies in the plane of
    the vector ``atom1 -> atom2`` (see :func:`local_frame`). Each point is an
    atom label (the image nearest to the atom carrying the frame, or the atom
    itself for its own label), a symmetry image ``LABEL@OP`` (``O1@-x+1,-y,-z``)
    or a dummy point ``mid(A;B)`` (:func:`point_position`). ``atom1`` is
    usually the atom itself.
    """

    atom0: str
    ax1: str
    atom1: str
    atom2: str
    ax2: str
    right_handed: bool = True

    def __post_init__(self) -> None:
        i1 = _axis_index(self.ax1, "ax1")
        if i1 == _axis_index(self.ax2, "ax2"):
            raise InputError(f"ax1 and ax2 must be different axes, both are {self.ax1!r}")

    def positions(self, crystal, i: int, near=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cartesian positions (Å) of atom0, atom1, atom2 for the frame of atom ``i``
        (``near``: see :func:`point_position`)."""
        where = f"local axes of {crystal.atoms[i].label} ({self.as_text()!r})"
        return tuple(
            point_position(getattr(self, w), crystal, i, f"{where}, {w}", near)
            for w in ("atom0", "atom1", "atom2")
        )

    def matrix(self, crystal, i: int, near=None) -> np.ndarray:
        """Frame matrix (local axes as columns) of atom ``i`` in ``crystal``
        (``near``: see :func:`point_position`).

        Raises
        ------
        InputError
            Naming the atom, its frame and what to change (an unknown point, a
            point on the atom, collinear points).
        """
        a0, a1, a2 = self.positions(crystal, i, near)
        origin = crystal.frac_to_cart(crystal.atoms[i].xyz)
        try:
            return local_frame(origin, a0, a1, a2, self.ax1, self.ax2, self.right_handed)
        except InputError as exc:
            label = crystal.atoms[i].label
            raise InputError(
                f"local axes of {label} ({self.as_text()!r}): "
                + exc.message.removeprefix("local frame: ")
                + f"; {_FRAME_HELP}"
            ) from None

    def as_text(self) -> str:
        """Compact form ``"atom0 ax1 atom1 atom2 ax2"`` (``R``/``L`` appended if left-handed)."""
        hand = "" if self.right_handed else " L"
        return f"{self.atom0} {self.ax1.upper()} {self.atom1} {self.atom2} {self.ax2.upper()}{hand}"

    @classmethod
    def from_text(cls, text: str) -> LocalAxes:
        """Parse :meth:`as_text` (``"O1 Z C1 N1 X"``; optional trailing ``R`` or ``L``).

        The points may be symmetry images and dummy points
        (``"O1@-x+1,-y,-z Z C1 mid(N1;N2) X"``, :func:`point_position`).
        """
        parts = str(text).split()
        if len(parts) not in (5, 6) or (len(parts) == 6 and parts[5].upper() not in "RL"):
            raise InputError(
                f"local axes {text!r}: expected 'atom0 ax1 atom1 atom2 ax2 [R|L]', "
                "e.g. 'O1 Z C1 N1 X'"
            )
        hand = len(parts) == 5 or parts[5].upper() == "R"
        return cls(parts[0], parts[1].upper(), parts[2], parts[3], parts[4].upper(), hand)

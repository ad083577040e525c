"""Space-group operations as numpy arrays, and site symmetry.

An operation acts on fractional coordinates as ``x' = R x + t`` with ``R`` an
integer (3, 3) matrix and ``t`` a translation in fractions of the cell edges.
A list of operations is kept as two arrays: ``rotations`` (n_ops, 3, 3) int and
``translations`` (n_ops, 3) float, with every translation reduced to [0, 1).
The list is always the whole space group: centring translations are included,
so ``n_ops`` is the number of operations per conventional cell (e.g. 8 for
C 2/c, 192 for F m -3 m).

gemmi provides the space-group tables (names, Hall symbols); everything else here
is plain numpy so that the structure-factor engine can use the arrays directly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction

import gemmi
import numpy as np

__all__ = [
    "parse_symop",
    "format_symop",
    "ops_from_triplets",
    "ops_from_spacegroup",
    "resolve_spacegroup",
    "group_ops",
    "check_group",
    "find_op",
    "inversion_partners",
    "site_symmetry_ops",
]

#: Translations are snapped to multiples of 1/DEN (gemmi's convention, 24).
DEN = 24

_TERM = re.compile(r"([+-]?)(\d+(?:\.\d*)?(?:/\d+)?|\.\d+)?(\*?)([xyz])?")


def _snap_translation(value: float, text: str) -> float:
    """Round a translation to the nearest multiple of 1/24 (raise if far from one)."""
    snapped = round(value * DEN) / DEN
    if abs(snapped - value) > 1e-3:
        raise ValueError(
            f"symmetry operation {text!r}: translation {value} is not a multiple of 1/{DEN}"
        )
    return snapped


#: Largest |number| accepted in a symmetry operation (translations are reduced mod 1).
_SYMOP_NUMBER_LIMIT = 1000


def _symop_number(text: str, xyz: str) -> float:
    """A coefficient or translation of an operation: ``1``, ``0.5``, ``1/2``."""
    if len(text) > 24:
        raise ValueError(f"symmetry operation {xyz!r}: number {text[:24]}... is too long")
    try:
        value = Fraction(text)
    except ZeroDivisionError:
        raise ValueError(f"symmetry operation {xyz!r}: division by zero in {text!r}") from None
    if abs(value) > _SYMOP_NUMBER_LIMIT:
        raise ValueError(
            f"symmetry operation {xyz!r}: {text} is outside the allowed range "
            f"[-{_SYMOP_NUMBER_LIMIT}, {_SYMOP_NUMBER_LIMIT}]"
        )
    return float(value)


def parse_symop(xyz: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse a symmetry operation written as a coordinate triplet.

    Accepts the usual CIF and SHELX spellings: ``'x, y, z'``, ``'-y+1/2, x, -z'``,
    ``'1/2+x, -y, z'``, ``'0.50000 + X, 0.50000 - Y, - Z'``, ``'x-y, x, z+1/6'``.
    Decimal translations are snapped to the nearest multiple of 1/24.

    Parameters
    ----------
    xyz : str
        The triplet, three comma-separated expressions in x, y, z.

    Returns
    -------
    rotation : ndarray, shape (3, 3), int
        Matrix R of ``x' = R x + t`` (fractional coordinates).
    translation : ndarray, shape (3,), float
        Translation t, reduced to [0, 1).

    Raises
    ------
    ValueError
        If the text is not a valid operation (wrong number of parts, unknown
        symbols, non-integer coefficients, |det R| != 1).
    """
    parts = xyz.strip().strip("'\"").split(",")
    if len(parts) != 3:
        raise ValueError(f"symmetry operation {xyz!r}: expected three comma-separated parts")
    rot = np.zeros((3, 3), dtype=int)
    tran = np.zeros(3)
    for row, part in enumerate(parts):
        text = re.sub(r"\s+", "", part.lower())
        if not text:
            raise ValueError(f"symmetry operation {xyz!r}: empty part {row + 1}")
        pos = 0
        while pos < len(text):
            match = _TERM.match(text, pos)
            sign_s, number_s, star, axis = match.groups()
            if (
                match.end() == pos
                or (number_s is None and axis is None)
                or (star and (number_s is None or axis is None))
            ):
                raise ValueError(f"symmetry operation {xyz!r}: cannot read {text[pos:]!r}")
            if pos > 0 and not sign_s:
                raise ValueError(f"symmetry operation {xyz!r}: missing sign before {text[pos:]!r}")
            sign = -1.0 if sign_s == "-" else 1.0
            number = 1.0 if number_s is None else _symop_number(number_s, xyz)
            if axis is None:
                tran[row] += sign * number
            else:
                coefficient = sign * number
                if abs(coefficient - round(coefficient)) > 1e-9:
                    raise ValueError(
                        f"symmetry operation {xyz!r}: non-integer coefficient of {axis}"
                    )
                rot[row, "xyz".index(axis)] += int(round(coefficient))
            pos = match.end()
    det = round(np.linalg.det(rot))
    if abs(det) != 1:
        raise ValueError(f"symmetry operation {xyz!r}: determinant {det}, expected +1 or -1")
    tran = np.array([_snap_translation(v, xyz) for v in tran]) % 1.0
    return rot, tran


def _fraction_text(value: float) -> str:
    frac = Fraction(round(value * DEN), DEN)
    return f"{frac.numerator}/{frac.denominator}" if frac.denominator != 1 else str(frac)


def format_symop(rotation: np.ndarray, translation: np.ndarray) -> str:
    """Write an operation as a triplet such as ``'-x+1/2,y+1/2,-z'``.

    Parameters
    ----------
    rotation : ndarray, shape (3, 3), int
    translation : ndarray, shape (3,)
        Fractional translation (snapped to multiples of 1/24 when printed).
    """
    out = []
    for row in range(3):
        text = ""
        for col, axis in enumerate("xyz"):
            c = int(rotation[row, col])
            if c == 0:
                continue
            sign = "-" if c < 0 else ("+" if text else "")
            text += sign + (str(abs(c)) if abs(c) != 1 else "") + axis
        t = float(translation[row]) % 1.0
        if round(t * DEN) % DEN != 0:
            text += "+" + _fraction_text(t)
        out.append(text or "0")
    return ",".join(out)


def _canonical_ops(rotations: np.ndarray, translations: np.ndarray) -> list[tuple]:
    """Hashable keys (rotation, translation in 24ths mod 1) for a list of operations."""
    tr = np.round(np.asarray(translations) * DEN).astype(int) % DEN
    return [(tuple(r.ravel()), tuple(t)) for r, t in zip(rotations, tr, strict=True)]


def check_group(rotations: np.ndarray, translations: np.ndarray) -> None:
    """Check that the operations form a group modulo lattice translations.

    Raises
    ------
    ValueError
        If the identity is missing, an operation is repeated, or the product of
        two operations is not in the list (an incomplete symmetry list).
    """
    keys = _canonical_ops(rotations, translations)
    index = {k: i for i, k in enumerate(keys)}
    if len(index) != len(keys):
        raise ValueError("symmetry operations: an operation is listed twice")
    ident = (tuple(np.eye(3, dtype=int).ravel()), (0, 0, 0))
    if ident not in index:
        raise ValueError("symmetry operations: the identity x,y,z is missing")
    n = len(keys)
    # products (R_i, t_i)(R_j, t_j) = (R_i R_j, R_i t_j + t_i)
    prod_r = np.einsum("iab,jbc->ijac", rotations, rotations)
    prod_t = np.einsum("iab,jb->ija", rotations, translations) + translations[:, None, :]
    prod_keys = _canonical_ops(prod_r.reshape(-1, 3, 3), prod_t.reshape(-1, 3))
    for k, key in enumerate(prod_keys):
        if key not in index:
            i, j = divmod(k, n)
            raise ValueError(
                "symmetry operations do not form a group: the product of "
                f"{format_symop(rotations[i], translations[i])!r} and "
                f"{format_symop(rotations[j], translations[j])!r} is "
                f"{format_symop(prod_r[i, j], prod_t[i, j])!r}, which is not listed"
            )


def ops_from_triplets(triplets: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Operations from a complete list of triplets, kept in the given order.

    Parameters
    ----------
    triplets : sequence of str
        All operations of the space group, centring included (as in a CIF
        ``_space_group_symop_operation_xyz`` loop).

    Returns
    -------
    rotations : ndarray, shape (n_ops, 3, 3), int
    translations : ndarray, shape (n_ops, 3), float in [0, 1)

    Raises
    ------
    ValueError
        If a triplet cannot be parsed or the list is not a group.
    """
    parsed = [parse_symop(t) for t in triplets]
    if not parsed:
        raise ValueError("symmetry operations: the list is empty")
    rotations = np.array([p[0] for p in parsed], dtype=int)
    translations = np.array([p[1] for p in parsed], dtype=float)
    check_group(rotations, translations)
    return rotations, translations


def ops_from_spacegroup(spacegroup: gemmi.SpaceGroup) -> tuple[np.ndarray, np.ndarray]:
    """All operations of a gemmi space group (centring included), identity first.

    Returns
    -------
    rotations : ndarray, shape (n_ops, 3, 3), int
    translations : ndarray, shape (n_ops, 3), float in [0, 1)
    """
    ops = list(spacegroup.operations())
    rotations = np.array([np.array(op.rot) // op.DEN for op in ops], dtype=int)
    translations = np.array([np.array(op.tran) / op.DEN for op in ops], dtype=float) % 1.0
    return rotations, translations


def group_ops(rotations: np.ndarray, translations: np.ndarray) -> gemmi.GroupOps:
    """Build a gemmi.GroupOps (for gemmi's table look-ups) from the arrays."""
    ops = []
    for r, t in zip(rotations, translations, strict=True):
        seitz = np.eye(4)
        seitz[:3, :3] = r
        seitz[:3, 3] = t
        ops.append(gemmi.seitz_to_op(seitz.tolist()))
    return gemmi.GroupOps(ops)


def resolve_spacegroup(name: str, alpha: float = 0.0, gamma: float = 0.0) -> gemmi.SpaceGroup:
    """Find a space group from an H-M symbol, a Hall symbol or an IT number.

    Ambiguous H-M symbols take origin choice 2 (inversion at the origin) and
    hexagonal axes for R groups unless the cell angles say rhombohedral
    (``alpha == gamma != 90``, as gemmi decides); append ``:1``, ``:2``,
    ``:H`` or ``:R`` to choose explicitly.

    Parameters
    ----------
    name : str
        e.g. ``'P 21/c'``, ``'P -4 21 m'``, ``'-P 2ybc'`` (Hall), ``'14'``.
    alpha, gamma : float
        Cell angles in degrees (only used to pick the R-group axes).

    Raises
    ------
    ValueError
        If gemmi knows no such group.
    """
    text = name.strip()
    if not text:
        raise ValueError("empty space-group name")
    sg = None
    try:
        sg = gemmi.find_spacegroup_by_name(text, alpha, gamma, prefer="2")
    except (RuntimeError, ValueError):
        sg = None
    if sg is None:
        try:
            sg = gemmi.find_spacegroup_by_ops(gemmi.symops_from_hall(text))
        except (RuntimeError, ValueError):
            sg = None
    if sg is None:
        raise ValueError(f"unknown space group {name!r} (neither an H-M nor a Hall symbol)")
    return sg


def find_op(
    rotations: np.ndarray, translations: np.ndarray, rotation: np.ndarray, translation: np.ndarray
) -> int:
    """Index of the operation equal to (rotation, translation) modulo lattice, or -1."""
    same_r = np.all(rotations == np.asarray(rotation)[None], axis=(1, 2))
    dt = translations - np.asarray(translation)[None]
    same_t = np.all(np.abs(dt - np.round(dt)) < 1e-6, axis=1)
    hits = np.flatnonzero(same_r & same_t)
    return int(hits[0]) if hits.size else -1


def inversion_partners(rotations: np.ndarray, translations: np.ndarray) -> np.ndarray:
    """For each op (R, t), the index of (-R, -t) modulo lattice, or -1 when absent.

    Every entry is >= 0 exactly when the inversion through the origin (-1, 0)
    belongs to the group.
    """
    pairs = zip(rotations, translations, strict=True)
    return np.array([find_op(rotations, translations, -r, -t) for r, t in pairs], dtype=int)


def site_symmetry_ops(
    xyz: np.ndarray,
    rotations: np.ndarray,
    translations: np.ndarray,
    orth: np.ndarray,
    tol: float = 1e-4,
) -> np.ndarray:
    """Indices of the operations that map a site onto itself modulo lattice.

    Parameters
    ----------
    xyz : ndarray, shape (3,)
        Fractional coordinates of the site.
    rotations, translations : ndarray
        The space-group operations (see the module docstring).
    orth : ndarray, shape (3, 3)
        Direct basis A (columns a, b, c in Å), to measure distances in Å.
    tol : float
        Largest Cartesian distance (Å) between the site and its image for the
        operation to count as a site-symmetry operation.

    Returns
    -------
    ndarray of int
        Operation indices; their number is the order of the site group.
    """
    x = np.asarray(xyz, dtype=float)
    images = np.einsum("nab,b->na", rotations, x) + translations
    d = images - x
    d -= np.round(d)
    dist = np.linalg.norm(d @ np.asarray(orth).T, axis=1)
    return np.flatnonzero(dist < tol)

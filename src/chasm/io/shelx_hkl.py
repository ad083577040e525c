"""SHELX reflection files (HKLF 4), absences and merging of equivalents.

File format
-----------
HKLF 4 records are ``h k l F² σ(F²) [batch]`` in the fixed Fortran format
``3I4, 2F8.2, I4``; columns after the batch (e.g. direction cosines) are
ignored. Files written by other programs are often whitespace separated
instead. The layout is decided once per file:

- *fixed columns* when every data line reads as right-justified integers in
  columns 1–4, 5–8, 9–12 followed by numbers in columns 13–20, 21–28 (and an
  integer in 29–32). This is the only way to read glued negative indices such
  as ``' -12-10   5'``;
- *free format* (whitespace-separated fields) otherwise.

Reading stops at the first record with h = k = l = 0 (SHELX's terminator;
SHELXL copies the cell and orientation matrix after it), blank lines are
skipped, and a missing terminator is accepted. Every data line must have the
same number of fields: ``h k l`` only, ``h k l F²``, ``h k l F² σ`` or
``h k l F² σ batch``.

:func:`write_hkl4` writes either layout (fixed columns, or whitespace-separated
fields at full double precision) with the terminator, atomically.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import gemmi
import numpy as np

from ..errors import InputError
from .atomic import write_text_atomic

__all__ = [
    "Reflections",
    "MergeInfo",
    "read_hkl4",
    "read_hkl_indices",
    "stol",
    "systematic_absences",
    "check_absences",
    "merge",
    "hklf4_text",
    "write_hkl4",
]

_FIELDS = ("h k l", "h k l F²", "h k l F² σ(F²)", "h k l F² σ(F²) batch")


@dataclass(eq=False)
class Reflections:
    """Reflections read from a file (or merged from such).

    Attributes
    ----------
    hkl : ndarray, shape (n, 3), int
        Miller indices.
    f2 : ndarray, shape (n,), or None
        Observed F² (electrons² on the file's scale); None for an index-only file.
    sigma : ndarray, shape (n,), or None
        σ(F²), all positive; None when the file has no σ column.
    batch : ndarray, shape (n,), int, or None
        Batch numbers when the file has them.
    lines : ndarray, shape (n,), int
        1-based line number of each reflection in ``path`` (for a merged set,
        the line of the first contributing measurement).
    path : str or None
        The file read.
    """

    hkl: np.ndarray
    f2: np.ndarray | None = None
    sigma: np.ndarray | None = None
    batch: np.ndarray | None = None
    lines: np.ndarray | None = None
    path: str | None = None

    def __post_init__(self) -> None:
        self.hkl = np.asarray(self.hkl, dtype=int).reshape(-1, 3)
        n = len(self.hkl)
        for name in ("f2", "sigma"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, np.asarray(value, dtype=float).reshape(n))
        if self.batch is not None:
            self.batch = np.asarray(self.batch, dtype=int).reshape(n)
        if self.lines is None:
            self.lines = np.zeros(n, dtype=int)
        self.lines = np.asarray(self.lines, dtype=int).reshape(n)

    def __len__(self) -> int:
        return len(self.hkl)

    def subset(self, mask) -> Reflections:
        """A new Reflections with the rows selected by a boolean mask or index array."""
        return Reflections(
            hkl=self.hkl[mask],
            f2=None if self.f2 is None else self.f2[mask],
            sigma=None if self.sigma is None else self.sigma[mask],
            batch=None if self.batch is None else self.batch[mask],
            lines=self.lines[mask],
            path=self.path,
        )


# ----------------------------------------------------------------------------- parsing
def _fixed_int(text: str) -> int | None:
    """A right-justified Fortran integer field, or None."""
    if not text or text[-1] == " " or not text.strip():
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _parse_fixed(line: str) -> list | None:
    """Fields of a fixed-column record (3I4, 2F8, I4), or None if it does not fit."""
    hkl = [_fixed_int(line[i : i + 4]) for i in (0, 4, 8)]
    if None in hkl:
        return None
    values: list = list(hkl)
    for start in (12, 20):
        chunk = line[start : start + 8]
        if not chunk.strip():
            break
        value = _number(chunk)
        if value is None:
            return None
        values.append(value)
    if len(values) == 5 and line[28:32].strip():
        batch = _fixed_int(line[28:32])
        if batch is None:
            return None
        values.append(batch)
    if len(values) < 5 and line[12 + 8 * (len(values) - 3) :].strip():
        return None  # text after a blank field: not this layout
    return values


def _parse_free(line: str) -> list | None:
    """Fields of a whitespace-separated record, or None if they are not numbers."""
    tokens = line.split()
    if len(tokens) < 3:
        return None
    values: list = []
    for k, token in enumerate(tokens[:6]):
        if k < 3 or k == 5:
            try:
                values.append(int(token))
            except ValueError:
                return None
        else:
            value = _number(token)
            if value is None:
                return None
            values.append(value)
    return values


def _records(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the data lines before the 0 0 0 terminator."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        raise InputError("file not found", path=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read the file: {exc}", path=str(path)) from None
    records = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if not line.strip():
            continue
        for parsed in (_parse_fixed(line), _parse_free(line)):
            if parsed is not None and parsed[:3] == [0, 0, 0]:
                return records
        records.append((number, line))
    return records


def _parse_file(path: Path) -> tuple[list[tuple[int, list]], str]:
    """Parse every record with the layout that fits the whole file."""
    records = _records(path)
    if not records:
        raise InputError("no reflections in the file", path=str(path))
    best: tuple[int, int, str] | None = None  # (lines parsed, first bad line, layout)
    for layout, parser in (("fixed", _parse_fixed), ("free", _parse_free)):
        rows = []
        for number, line in records:
            values = parser(line)
            if values is None:
                if best is None or len(rows) > best[0]:
                    best = (len(rows), number, layout)
                break
            rows.append((number, values))
        else:
            return rows, layout
    _, number, layout = best
    bad = dict(records)[number]
    raise InputError(
        f"cannot read the reflection {bad.strip()!r}: expected {_FIELDS[-1]} "
        f"({'fixed columns 3I4,2F8.2,I4' if layout == 'fixed' else 'whitespace-separated'}, "
        "as on the lines before)",
        path=str(path),
        line=number,
    )


def _to_reflections(path: Path, rows: list[tuple[int, list]], need_data: bool) -> Reflections:
    width = len(rows[0][1])
    for number, values in rows:
        if len(values) != width:
            raise InputError(
                f"{len(values)} fields ({_FIELDS[len(values) - 3]}) where the first reflection "
                f"(line {rows[0][0]}) has {width} ({_FIELDS[width - 3]})",
                path=str(path),
                line=number,
            )
    if need_data and width < 4:
        raise InputError(
            "the file has only h k l (no F²); use read_hkl_indices for such files",
            path=str(path),
            line=rows[0][0],
        )
    data = np.array([values for _, values in rows], dtype=float)
    lines = np.array([number for number, _ in rows], dtype=int)
    sigma = data[:, 4] if width >= 5 else None
    if sigma is not None:
        bad = np.flatnonzero(~(sigma > 0))
        if bad.size:
            k = bad[0]
            raise InputError(
                f"σ(F²) = {sigma[k]:g} for reflection {tuple(int(v) for v in data[k, :3])}: "
                f"σ(F²) must be positive; fix or remove the reflection "
                f"({bad.size} such reflection{'s' if bad.size > 1 else ''} in the file)",
                path=str(path),
                line=int(lines[k]),
            )
    return Reflections(
        hkl=data[:, :3].astype(int),
        f2=data[:, 3] if width >= 4 else None,
        sigma=sigma,
        batch=data[:, 5].astype(int) if width >= 6 else None,
        lines=lines,
        path=str(path),
    )


def read_hkl4(path: str | Path) -> Reflections:
    """Read a SHELX HKLF 4 file: h k l F² σ(F²) [batch].

    See the module docstring for the accepted layouts. Files without a σ
    column are read with ``sigma = None``.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    Reflections

    Raises
    ------
    InputError
        Missing file, no reflections, a line that cannot be read, lines with
        different numbers of fields, an index-only file, or σ(F²) ≤ 0 — with the
        path and the line number.
    """
    path = Path(path)
    rows, _ = _parse_file(path)
    return _to_reflections(path, rows, need_data=True)


def read_hkl_indices(path: str | Path) -> Reflections:
    """Read the Miller indices of a reflection file (any extra columns ignored).

    For index-only lists such as the benchmark's ``ref.hkl``; the returned
    ``f2`` and ``sigma`` are None.
    """
    path = Path(path)
    rows, _ = _parse_file(path)
    rows = [(number, values[:3]) for number, values in rows]
    return _to_reflections(path, rows, need_data=False)


# ----------------------------------------------------------------------------- writing
HKLF4_LAYOUTS = ("fixed", "free")


def _free_number(value: float) -> str:
    """Shortest positional text that reads back to the same double."""
    return np.format_float_positional(float(value), unique=True, trim="0")


def hklf4_text(reflections: Reflections, layout: str = "fixed") -> str:
    """HKLF 4 text of reflections with F² and σ(F²), ended by the ``0 0 0`` record.

    Parameters
    ----------
    reflections : Reflections
        Needs ``f2`` and ``sigma`` (σ > 0); the batch column is written when present.
    layout : {"fixed", "free"}
        ``"fixed"``: SHELX's ``3I4, 2F8.2[, I4]`` (F² and σ rounded to 0.01; every
        value must fit its columns and σ must not round to 0). ``"free"``:
        whitespace-separated fields with the shortest text that reads back to the
        same double (:func:`read_hkl4` reads both).

    Returns
    -------
    str

    Raises
    ------
    ValueError
        Unknown layout, missing F² or σ, a non-finite value, σ ≤ 0, or (fixed) a
        value that does not fit its columns.
    """
    if layout not in HKLF4_LAYOUTS:
        raise ValueError(f"layout must be one of {HKLF4_LAYOUTS}, got {layout!r}")
    if reflections.f2 is None or reflections.sigma is None:
        raise ValueError("HKLF 4 needs F² and σ(F²) for every reflection")
    f2, sigma = reflections.f2, reflections.sigma
    if not (np.all(np.isfinite(f2)) and np.all(np.isfinite(sigma))):
        raise ValueError("F² and σ(F²) must be finite")
    if np.any(sigma <= 0):
        raise ValueError("σ(F²) must be positive")
    batch = reflections.batch
    lines = []
    for i, (h, k, l) in enumerate(reflections.hkl.tolist()):
        if layout == "free":
            fields = [str(h), str(k), str(l), _free_number(f2[i]), _free_number(sigma[i])]
            if batch is not None:
                fields.append(str(int(batch[i])))
            lines.append(" ".join(fields))
            continue
        text = f"{h:4d}{k:4d}{l:4d}{f2[i]:8.2f}{sigma[i]:8.2f}"
        if batch is not None:
            text += f"{int(batch[i]):4d}"
        if len(text) != (32 if batch is not None else 28):
            raise ValueError(
                f"reflection {h} {k} {l}: an index, F² {f2[i]:g} or σ {sigma[i]:g} does not fit "
                "the fixed columns 3I4,2F8.2 (scale the data down or use the free layout)"
            )
        if round(float(sigma[i]), 2) <= 0:
            raise ValueError(
                f"reflection {h} {k} {l}: σ {sigma[i]:g} rounds to 0.00 in the fixed columns "
                "(scale the data up or use the free layout)"
            )
        lines.append(text)
    end = "0 0 0 0 0" if layout == "free" else f"{0:4d}{0:4d}{0:4d}{0:8.2f}{0:8.2f}"
    return "\n".join([*lines, end]) + "\n"


def write_hkl4(path: str | Path, reflections: Reflections, layout: str = "fixed") -> None:
    """Write reflections as an HKLF 4 file, atomically (:func:`hklf4_text`).

    Raises
    ------
    ValueError
        See :func:`hklf4_text` (nothing is written then).
    OSError
        The file cannot be written.
    """
    write_text_atomic(path, hklf4_text(reflections, layout))


# ----------------------------------------------------------------------------- geometry
def stol(hkl, cell_or_B) -> np.ndarray:
    """sinθ/λ (Å⁻¹) = |B h| / 2 of Miller indices.

    Parameters
    ----------
    hkl : array_like, shape (n, 3)
    cell_or_B : gemmi.UnitCell, ndarray (3, 3) reciprocal basis B (columns a*,
        b*, c* in Å⁻¹), or an object with a ``B`` attribute (a Crystal).
    """
    if isinstance(cell_or_B, gemmi.UnitCell):
        b = np.linalg.inv(np.array(cell_or_B.orth.mat.tolist())).T
    elif hasattr(cell_or_B, "B"):
        b = np.asarray(cell_or_B.B, dtype=float)
    else:
        b = np.asarray(cell_or_B, dtype=float)
    return 0.5 * np.linalg.norm(np.asarray(hkl, dtype=float) @ b.T, axis=-1)


# ----------------------------------------------------------------------------- symmetry
def _group_ops(spacegroup) -> gemmi.GroupOps:
    if isinstance(spacegroup, gemmi.GroupOps):
        return spacegroup
    return _spacegroup(spacegroup).operations()


def _spacegroup(spacegroup) -> gemmi.SpaceGroup:
    if isinstance(spacegroup, gemmi.SpaceGroup):
        return spacegroup
    if isinstance(spacegroup, gemmi.GroupOps):
        sg = gemmi.find_spacegroup_by_ops(spacegroup)
        if sg is None:
            raise ValueError("these operations are not a space-group setting gemmi knows")
        return sg
    if hasattr(spacegroup, "spacegroup"):  # a Crystal
        if spacegroup.spacegroup is None:
            raise ValueError("the crystal's symmetry is not a setting gemmi knows")
        return spacegroup.spacegroup
    if isinstance(spacegroup, str):
        from ..crystal.symmetry import resolve_spacegroup

        return resolve_spacegroup(spacegroup)
    raise TypeError(f"expected a space group, got {type(spacegroup).__name__}")


def systematic_absences(hkl, spacegroup) -> np.ndarray:
    """True for the reflections that the space group forbids.

    Parameters
    ----------
    hkl : array_like, shape (n, 3), int
    spacegroup : gemmi.SpaceGroup, gemmi.GroupOps, str (H-M or Hall) or Crystal
    """
    ops = _group_ops(spacegroup)
    h = np.ascontiguousarray(np.asarray(hkl).reshape(-1, 3), dtype=np.int32)
    return np.asarray(ops.systematic_absences(h), dtype=bool)


def check_absences(reflections: Reflections, spacegroup, show: int = 5) -> np.ndarray:
    """Indices of systematically absent reflections; warns when there are any.

    The warning gives their number and the first ``show`` of them with F²/σ and
    the file line, so that a wrong space group or a mis-indexed file shows up.
    """
    absent = np.flatnonzero(systematic_absences(reflections.hkl, spacegroup))
    if absent.size:
        items = []
        for k in absent[:show]:
            text = "{} {} {}".format(*reflections.hkl[k])
            if reflections.f2 is not None and reflections.sigma is not None:
                text += f" (F²/σ = {reflections.f2[k] / reflections.sigma[k]:.1f})"
            text += f" line {reflections.lines[k]}"
            items.append(text)
        more = ", …" if absent.size > show else ""
        warnings.warn(
            f"{reflections.path or 'reflections'}: {absent.size} systematically absent "
            f"reflection{'s' if absent.size > 1 else ''}: {'; '.join(items)}{more}",
            stacklevel=2,
        )
    return absent


# ----------------------------------------------------------------------------- merging
@dataclass(eq=False)
class MergeInfo:
    """Bookkeeping of :func:`merge`.

    Attributes
    ----------
    group : ndarray, shape (n_in,), int
        For each input reflection, the row of the merged set it went into.
    counts : ndarray, shape (n_out,), int
        Number of measurements merged into each unique reflection.
    n_in, n_out : int
        Numbers of input and merged reflections.
    n_multiple : int
        Unique reflections measured more than once.
    rint : float
        Σ|F² − ⟨F²⟩| / Σ F² over the measurements of those reflections (NaN if none).
    rsigma : float
        Σ σ(⟨F²⟩) / Σ ⟨F²⟩ over the merged set.
    friedel : bool
        Whether Friedel mates were merged.
    """

    group: np.ndarray
    counts: np.ndarray
    n_in: int
    n_out: int
    n_multiple: int
    rint: float
    rsigma: float
    friedel: bool


def merge(
    reflections: Reflections, spacegroup, friedel: bool = True
) -> tuple[Reflections, float, MergeInfo]:
    """Merge symmetry-equivalent measurements.

    Each h is mapped to its representative in gemmi's reciprocal asymmetric unit
    (``ReciprocalAsu``) of the point group (``friedel=False``) or of the Laue
    class (``friedel=True``). With ``friedel=False`` a reflection and its Friedel
    mate stay apart, unless the reflection is centric (then h and −h are
    symmetry-equivalent anyway); the mates are returned as −(ASU representative).

    Rules
    -----
    - ⟨F²⟩ = Σ w F² / Σ w with w = 1/σ².
    - σ(⟨F²⟩) = max(σ_int, σ_ext), σ_int = (Σ w)^(−1/2) and
      σ_ext = [Σ w (F² − ⟨F²⟩)² / ((n − 1) Σ w)]^(1/2) for n > 1 measurements
      (σ_ext is not used when n = 1).
    - Rint = Σ |F² − ⟨F²⟩| / Σ F², both sums over every measurement of the unique
      reflections measured more than once (SHELX's definition).
    - The batch numbers are dropped; ``lines`` gives the line of the first
      measurement of each group. Merged rows are sorted by ASU index.

    Parameters
    ----------
    reflections : Reflections
        Must have F² and σ.
    spacegroup : gemmi.SpaceGroup, gemmi.GroupOps, str (H-M or Hall) or Crystal
    friedel : bool
        Merge Friedel mates (ignore anomalous scattering).

    Returns
    -------
    merged : Reflections
    rint : float
        NaN when no reflection was measured twice.
    info : MergeInfo
    """
    if reflections.f2 is None or reflections.sigma is None:
        raise InputError("merging needs F² and σ(F²) for every reflection", path=reflections.path)
    sg = _spacegroup(spacegroup)
    ops = sg.operations()
    asu = gemmi.ReciprocalAsu(sg)
    keys = np.empty((len(reflections), 4), dtype=int)
    for k, h in enumerate(reflections.hkl):
        rep, isym = asu.to_asu([int(v) for v in h], ops)
        mate = 0
        if not friedel and isym % 2 == 0 and not ops.is_reflection_centric(rep):
            mate = 1  # reached through −R: the Friedel mate of the representative
        keys[k, :3] = rep
        keys[k, 3] = mate
    unique, group, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    group = group.reshape(-1)
    n_out = len(unique)
    w = 1.0 / reflections.sigma**2
    sw = np.bincount(group, weights=w, minlength=n_out)
    mean = np.bincount(group, weights=w * reflections.f2, minlength=n_out) / sw
    resid = reflections.f2 - mean[group]
    chi = np.bincount(group, weights=w * resid**2, minlength=n_out)
    sigma_int = 1.0 / np.sqrt(sw)
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma_ext = np.where(counts > 1, np.sqrt(chi / ((counts - 1) * sw)), 0.0)
    sigma = np.maximum(sigma_int, sigma_ext)
    multiple = counts[group] > 1
    denominator = float(np.sum(reflections.f2[multiple]))
    rint = float(np.sum(np.abs(resid[multiple])) / denominator) if multiple.any() else math.nan
    hkl = np.where(unique[:, 3:4] == 1, -unique[:, :3], unique[:, :3])
    first = np.full(n_out, len(reflections), dtype=int)
    np.minimum.at(first, group, np.arange(len(reflections)))
    merged = Reflections(
        hkl=hkl,
        f2=mean,
        sigma=sigma,
        batch=None,
        lines=reflections.lines[first],
        path=reflections.path,
    )
    rsigma = float(np.sum(sigma) / np.sum(mean)) if n_out else math.nan
    info = MergeInfo(
        group=group,
        counts=counts,
        n_in=len(reflections),
        n_out=n_out,
        n_multiple=int(np.sum(counts > 1)),
        rint=rint,
        rsigma=rsigma,
        friedel=friedel,
    )
    return merged, rint, info

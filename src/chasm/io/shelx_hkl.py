"""Reflection files (SHELX HKLF 4 and XD), absences and merging of equivalents.

File format
-----------
HKLF 4 records are ``h k l F² σ(F²) [batch]`` in the fixed Fortran format
``3I4, 2F8.2, I4``; columns after the batch (e.g. direction cosines) are
ignored. Files written by other programs are often whitespace separated
instead. The layout is decided once per file (``format=None``/``"auto"``):

- *fixed columns* when every data line reads as right-justified integers in
  columns 1–4, 5–8, 9–12 followed by numbers in columns 13–20, 21–28 (and an
  integer in 29–32); a blank F² or σ field followed by more text reads as 0,
  as Fortran (and SHELXL) reads it. This is the only way to read glued negative
  indices such as ``' -12-10   5'``. SHELXL reads these columns whatever the
  spacing, so chasm does too (the same data, the same R-values); when a line
  also reads as whitespace-separated fields with other values (a file written
  as ``3I4,2F12.2``, say), a warning names the first such line, both readings
  and the choice, and ``format="free"`` reads the fields instead;
- *free format* (whitespace-separated fields) otherwise.

``format="fixed"`` or ``"free"`` forces one layout. Reading stops at the first
record with h = k = l = 0 (SHELX's terminator; SHELXL copies the cell and
orientation matrix after it), blank lines are skipped, and a missing
terminator is accepted. Every data line must have the same number of fields:
``h k l`` only, ``h k l F²``, ``h k l F² σ`` or ``h k l F² σ batch``. CRLF line
ends, tabs (free format) and a byte-order mark are accepted
(:mod:`chasm.io.textio`).

XD reflection files (header ``NAME F^2 NDAT 7``) are read by
:func:`read_xd_hkl` into the same :class:`Reflections`;
:func:`sniff_reflection_format` tells the formats apart and
:func:`read_reflections` reads any of them.

Checks on reading
-----------------
Numbers must be finite decimal numbers (no NaN/inf, at most 350 characters);
|h|, |k|, |l| ≤ :data:`MAX_INDEX` (9999) before any conversion to machine
integers, so an index ≥ 2⁶³ never wraps; σ > 0. With a cell
(``cell=...``, or :func:`check_resolution`), every reflection must lie within
sinθ/λ ≤ ``max_stol`` (default :data:`MAX_STOL` = 2.5 Å⁻¹). Every refusal is an
:class:`~chasm.errors.InputError` naming the file and the line.

:func:`write_hkl4` writes either layout (fixed columns, or whitespace-separated
fields at full double precision) with the terminator, atomically;
:func:`write_xd_hkl` writes an XD file.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import gemmi
import numpy as np

from ..errors import InputError
from .atomic import write_text_atomic
from .textio import MAX_NUMBER_CHARS, read_input_text

__all__ = [
    "Reflections",
    "MergeInfo",
    "MAX_INDEX",
    "MAX_STOL",
    "read_hkl4",
    "read_hkl_indices",
    "read_xd_hkl",
    "read_reflections",
    "sniff_reflection_format",
    "check_resolution",
    "xd_hkl_text",
    "write_xd_hkl",
    "stol",
    "systematic_absences",
    "check_absences",
    "merge",
    "hklf4_text",
    "write_hkl4",
]

_FIELDS = ("h k l", "h k l F²", "h k l F² σ(F²)", "h k l F² σ(F²) batch")
HKLF4_LAYOUTS = ("fixed", "free")

#: Largest |h|, |k|, |l| read from any file (a cell edge of 2000 Å at sinθ/λ = 2.5 Å⁻¹);
#: a tighter, cell-dependent bound is :func:`check_resolution`.
MAX_INDEX = 9999
#: Largest |batch| (scale-group) number read.
MAX_BATCH = 2**31 - 1
#: Default largest sinθ/λ (Å⁻¹) accepted by :func:`check_resolution`.
MAX_STOL = 2.5


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
    layout : str or None
        How the file was read: ``"fixed"``, ``"free"`` (HKLF 4) or ``"xd"``.
    """

    hkl: np.ndarray
    f2: np.ndarray | None = None
    sigma: np.ndarray | None = None
    batch: np.ndarray | None = None
    lines: np.ndarray | None = None
    path: str | None = None
    layout: str | None = None

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
            layout=self.layout,
        )


# ----------------------------------------------------------------------------- parsing
_INT = re.compile(r"^[+-]?[0-9]+$")
_FLOAT = re.compile(r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eEdD][+-]?[0-9]+)?$")


def _int(text: str) -> int | None:
    """A plain decimal integer (ASCII digits only), or None."""
    text = text.strip()
    return int(text) if _INT.match(text) and len(text) <= 32 else None


def _fixed_int(text: str) -> int | None:
    """A right-justified Fortran integer field, or None."""
    if not text or text[-1] == " " or not text.strip():
        return None
    return _int(text)


def _number(text: str) -> float | None:
    """A finite decimal number (Fortran ``D`` exponents accepted), or None."""
    text = text.strip()
    if len(text) > MAX_NUMBER_CHARS or not _FLOAT.match(text):
        return None
    value = float(text.replace("d", "e").replace("D", "e"))
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
            if not line[start + 8 :].strip():
                break
            values.append(0.0)  # text follows: Fortran (SHELXL) reads a blank field as 0
            continue
        value = _number(chunk)
        if value is None:
            return None
        values.append(value)
    if len(values) == 5 and line[28:32].strip():
        batch = _fixed_int(line[28:32])
        if batch is None:
            return None
        values.append(batch)
    return values


def _parse_free(line: str) -> list | None:
    """Fields of a whitespace-separated record, or None if they are not numbers."""
    tokens = line.split()
    if len(tokens) < 3:
        return None
    values: list = []
    for k, token in enumerate(tokens[:6]):
        value = _int(token) if k < 3 or k == 5 else _number(token)
        if value is None:
            return None
        values.append(value)
    return values


def _records(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the data lines before the 0 0 0 terminator."""
    text = read_input_text(path)
    records = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip()
        if not line.strip():
            continue
        for parsed in (_parse_fixed(line), _parse_free(line)):
            if parsed is not None and parsed[:3] == [0, 0, 0]:
                return records
        records.append((number, line))
    return records


def _disagreement(records: list[tuple[int, str]]) -> tuple[int, list, list] | None:
    """First line whose fixed-column and whitespace readings both work but differ."""
    for number, line in records:
        fixed, free = _parse_fixed(line), _parse_free(line)
        if fixed is None or free is None:
            continue
        n = min(len(fixed), len(free), 5)
        if len(fixed) != len(free) and min(len(fixed), len(free)) < 5:
            return number, fixed, free
        pairs = zip(fixed[:n], free[:n], strict=True)
        if any(not math.isclose(a, b, rel_tol=1e-12) for a, b in pairs):
            return number, fixed, free
    return None


def _describe(values: list) -> str:
    names = ("h", "k", "l", "F²", "σ", "batch")
    return ", ".join(f"{name} = {v:g}" for name, v in zip(names, values, strict=False))


def _parse_file(path: Path, layout: str | None = None) -> tuple[list[tuple[int, list]], str]:
    """Parse every record with the layout that fits the whole file (or the one asked for)."""
    if layout not in (None, "auto", *HKLF4_LAYOUTS):
        raise ValueError(f"format must be 'auto', 'fixed' or 'free', got {layout!r}")
    records = _records(path)
    if not records:
        raise InputError("no reflections in the file", path=str(path))
    choices = (("fixed", _parse_fixed), ("free", _parse_free))
    if layout in HKLF4_LAYOUTS:
        choices = tuple(c for c in choices if c[0] == layout)
    best: tuple[int, int, str] | None = None  # (lines parsed, first bad line, layout)
    for name, parser in choices:
        rows = []
        for number, line in records:
            values = parser(line)
            if values is None:
                if best is None or len(rows) > best[0]:
                    best = (len(rows), number, name)
                break
            rows.append((number, values))
        else:
            if name == "fixed" and layout in (None, "auto"):
                clash = _disagreement(records)
                if clash is not None:
                    number, fixed, free = clash
                    warnings.warn(
                        f"{path}, line {number}: the fixed columns 3I4,2F8.2 read "
                        f"{_describe(fixed)} but the whitespace-separated fields read "
                        f"{_describe(free)}; using the fixed columns, as SHELXL does "
                        "(HKLF 4 is a fixed-column format). If the file was written "
                        "with other column widths, read it with format='free'",
                        stacklevel=4,
                    )
            return rows, name
    _, number, name = best
    bad = dict(records)[number]
    shown = bad.strip() if len(bad.strip()) <= 80 else bad.strip()[:77] + "..."
    raise InputError(
        f"cannot read the reflection {shown!r}: expected {_FIELDS[-1]} "
        f"({'fixed columns 3I4,2F8.2,I4' if name == 'fixed' else 'whitespace-separated'}"
        f"{', as on the lines before' if best[0] else ''})",
        path=str(path),
        line=number,
    )


def _check_index_range(path: Path, rows: list[tuple[int, list]]) -> None:
    """Indices within ±MAX_INDEX and batch numbers within ±MAX_BATCH (before any int64 cast)."""
    for number, values in rows:
        for name, v in zip("hkl", values[:3], strict=True):
            if abs(v) > MAX_INDEX:
                raise InputError(
                    f"index {name} = {v} is outside the allowed range [-{MAX_INDEX}, {MAX_INDEX}] "
                    "(no crystal diffracts that far; is the file corrupted?)",
                    path=str(path),
                    line=number,
                )
        if len(values) > 5 and abs(values[5]) > MAX_BATCH:
            raise InputError(
                f"batch number {values[5]} is outside the allowed range "
                f"[-{MAX_BATCH}, {MAX_BATCH}]",
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
    _check_index_range(path, rows)
    data = np.array([values for _, values in rows], dtype=float)
    lines = np.array([number for number, _ in rows], dtype=int)
    sigma = data[:, 4] if width >= 5 else None
    if sigma is not None:
        _check_sigma(path, data[:, :3], sigma, lines)
    return Reflections(
        hkl=data[:, :3].astype(int),
        f2=data[:, 3] if width >= 4 else None,
        sigma=sigma,
        batch=data[:, 5].astype(int) if width >= 6 else None,
        lines=lines,
        path=str(path),
    )


def _check_sigma(path, hkl, sigma, lines, what: str = "σ(F²)") -> None:
    bad = np.flatnonzero(~(sigma > 0))
    if bad.size:
        k = bad[0]
        raise InputError(
            f"{what} = {sigma[k]:g} for reflection {tuple(int(v) for v in hkl[k])}: "
            f"{what} must be positive; fix or remove the reflection "
            f"({bad.size} such reflection{'s' if bad.size > 1 else ''} in the file)",
            path=str(path),
            line=int(lines[k]),
        )


def check_resolution(
    reflections: Reflections, cell_or_B, max_stol: float = MAX_STOL
) -> Reflections:
    """Refuse reflections beyond sinθ/λ = ``max_stol`` (Å⁻¹) for this cell.

    A guard against corrupted indices (e.g. 9999 or 2³¹), which would make the
    structure-factor engine ask for tens of GiB: :data:`MAX_STOL` = 2.5 Å⁻¹ is
    beyond any measurement (sinθ/λ ≤ 1/λ, and 2.5 Å⁻¹ needs λ ≤ 0.4 Å at
    2θ = 180°).

    Parameters
    ----------
    reflections : Reflections
    cell_or_B : gemmi.UnitCell, Crystal or reciprocal basis (see :func:`stol`)
    max_stol : float
        Å⁻¹.

    Returns
    -------
    Reflections
        The same object.

    Raises
    ------
    InputError
        Naming the file and the line of the first reflection beyond the limit.
    """
    if len(reflections) == 0:
        return reflections
    s = stol(reflections.hkl, cell_or_B)
    bad = np.flatnonzero(~(s <= max_stol))
    if bad.size:
        k = bad[0]
        h = tuple(int(v) for v in reflections.hkl[k])
        raise InputError(
            f"reflection {h} has sinθ/λ = {s[k]:.4g} Å⁻¹, beyond the allowed maximum "
            f"{max_stol:g} Å⁻¹ for this cell ({bad.size} such reflection"
            f"{'s' if bad.size > 1 else ''}); wrong cell or corrupted indices?",
            path=reflections.path,
            line=int(reflections.lines[k]) or None,
        )
    return reflections


def read_hkl4(
    path: str | Path,
    format: str | None = None,
    cell=None,
    max_stol: float = MAX_STOL,
) -> Reflections:
    """Read a SHELX HKLF 4 file: h k l F² σ(F²) [batch].

    See the module docstring for the accepted layouts. Files without a σ
    column are read with ``sigma = None``.

    Parameters
    ----------
    path : str or Path
    format : {None, "auto", "fixed", "free"}
        Layout of the records. ``None``/``"auto"``: fixed columns when every
        record reads so (with a warning naming the first line where the
        whitespace-separated fields would give other values), else
        whitespace-separated fields. ``"fixed"`` or ``"free"``: only that layout.
    cell : gemmi.UnitCell, Crystal or reciprocal basis, optional
        When given, reflections beyond ``max_stol`` are refused
        (:func:`check_resolution`).
    max_stol : float
        Å⁻¹, see :func:`check_resolution`.

    Returns
    -------
    Reflections
        ``layout`` says which layout was used.

    Raises
    ------
    InputError
        Missing or special file, binary file, no reflections, a line that
        cannot be read, lines with different numbers of fields, an index-only
        file, an index beyond ±MAX_INDEX, σ(F²) ≤ 0, or a reflection beyond
        ``max_stol`` — with the path and the line number.
    """
    path = Path(path)
    rows, layout = _parse_file(path, format)
    refl = _to_reflections(path, rows, need_data=True)
    refl.layout = layout
    if cell is not None:
        check_resolution(refl, cell, max_stol)
    return refl


def read_hkl_indices(path: str | Path, format: str | None = None) -> Reflections:
    """Read the Miller indices of a reflection file (any extra columns ignored).

    For index-only lists such as the benchmark's ``ref.hkl``; the returned
    ``f2`` and ``sigma`` are None. An XD file is read with :func:`read_xd_hkl`.
    """
    path = Path(path)
    if sniff_reflection_format(path) == "xd":
        refl = read_xd_hkl(path)
        return Reflections(hkl=refl.hkl, lines=refl.lines, path=refl.path)
    rows, layout = _parse_file(path, format)
    rows = [(number, values[:3]) for number, values in rows]
    refl = _to_reflections(path, rows, need_data=False)
    refl.layout = layout
    return refl


# ----------------------------------------------------------------------------- XD files
#: Header words of an XD reflection file that mean F² (or I on the F² scale), and F.
XD_F2_WORDS = ("F^2", "F2", "FSQ", "F**2", "I")
XD_F_WORDS = ("F",)
#: Columns per record accepted after NDAT.
XD_NDAT_RANGE = (6, 20)


def _xd_header(path: Path, number: int, line: str) -> tuple[bool, int]:
    """(data are F², NDAT) from the header line ``NAME F^2 NDAT 7``."""
    tokens = line.split()
    upper = [t.upper() for t in tokens]
    if "NDAT" not in upper[1:]:
        raise InputError(f"XD header {line.strip()!r} has no NDAT n", path=str(path), line=number)
    i = upper.index("NDAT", 1)
    ndat = _int(tokens[i + 1]) if i + 1 < len(tokens) else None
    lo, hi = XD_NDAT_RANGE
    if ndat is None or not lo <= ndat <= hi:
        raise InputError(
            f"XD header: NDAT must be an integer in [{lo}, {hi}] "
            f"(h k l scale-group F σ and up to {hi - 6} more columns), got "
            f"{tokens[i + 1] if i + 1 < len(tokens) else 'nothing'!r}",
            path=str(path),
            line=number,
        )
    kinds = [t for t in upper[1:i] + upper[i + 2 :] if t in XD_F2_WORDS + XD_F_WORDS]
    if len(kinds) != 1:
        raise InputError(
            f"XD header {line.strip()!r}: give exactly one of F^2 (or F2, FSQ, I) and F",
            path=str(path),
            line=number,
        )
    return kinds[0] in XD_F2_WORDS, ndat


def read_xd_hkl(path: str | Path, cell=None, max_stol: float = MAX_STOL) -> Reflections:
    """Read an XD reflection file (``xd.hkl``) into the same container as HKLF 4.

    Layout: a header line ``NAME F^2 NDAT n`` (``F^2``, ``F2``, ``FSQ`` or ``I``
    for F² data, ``F`` for F data; keywords in any order after the name), then
    one reflection per line, ``n`` whitespace-separated fields: h k l, the
    scale-factor group (an integer, returned as ``batch``), F² or F, σ, then
    ``n - 6`` further columns (e.g. the mean path length t̄ for ``NDAT 7``),
    which are checked to be numbers and otherwise ignored. Blank lines are
    skipped; a record h = k = l = 0 ends the data, as in HKLF 4.

    F data are converted to F² = F·|F| and σ(F²) = 2|F|σ(F) (σ(F)² when F = 0,
    where the first-order rule gives 0).

    Parameters
    ----------
    path : str or Path
    cell, max_stol
        As for :func:`read_hkl4`.

    Returns
    -------
    Reflections
        ``layout`` is ``"xd"``.

    Raises
    ------
    InputError
        As :func:`read_hkl4`, plus a header without NDAT or data type, or a
        record with another number of fields than NDAT.
    """
    path = Path(path)
    text = read_input_text(path)
    rows: list[tuple[int, list]] = []
    header = None
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        if header is None:
            header = _xd_header(path, number, raw)
            continue
        tokens = raw.split()
        if len(tokens) != header[1]:
            raise InputError(
                f"{len(tokens)} fields where the header says NDAT {header[1]}",
                path=str(path),
                line=number,
            )
        ints = [_int(t) for t in tokens[:4]]
        nums = [_number(t) for t in tokens[4:]]
        if None in ints or None in nums:
            raise InputError(
                f"cannot read the reflection {raw.strip()[:80]!r}: expected h k l "
                "scale-group (integers) then numbers",
                path=str(path),
                line=number,
            )
        if ints[:3] == [0, 0, 0]:
            break
        rows.append((number, [*ints[:3], nums[0], nums[1], ints[3]]))
    if header is None:
        raise InputError("empty file", path=str(path))
    if not rows:
        raise InputError("no reflections in the file", path=str(path), line=None)
    _check_index_range(path, rows)
    data = np.array([values for _, values in rows], dtype=float)
    lines = np.array([number for number, _ in rows], dtype=int)
    value, sig = data[:, 3], data[:, 4]
    _check_sigma(path, data[:, :3], sig, lines, "σ(F²)" if header[0] else "σ(F)")
    if header[0]:
        f2, sigma = value, sig
    else:
        with np.errstate(over="ignore"):
            f2 = value * np.abs(value)
            sigma = np.where(value != 0, 2 * np.abs(value) * sig, sig**2)
        bad = np.flatnonzero(~(np.isfinite(f2) & np.isfinite(sigma)))
        if bad.size:
            raise InputError(
                f"F = {value[bad[0]]:g}, σ(F) = {sig[bad[0]]:g}: F² or σ(F²) is beyond the "
                "double range (|F|, σ(F) < 1e154)",
                path=str(path),
                line=int(lines[bad[0]]),
            )
        _check_sigma(path, data[:, :3], sigma, lines, "σ(F²) from σ(F)")
    refl = Reflections(
        hkl=data[:, :3].astype(int),
        f2=f2,
        sigma=sigma,
        batch=data[:, 5].astype(int),
        lines=lines,
        path=str(path),
        layout="xd",
    )
    if cell is not None:
        check_resolution(refl, cell, max_stol)
    return refl


def xd_hkl_text(reflections: Reflections, name: str = "chasm", data: str = "F^2") -> str:
    """XD reflection-file text (``NAME F^2 NDAT 6`` or ``NAME F NDAT 6``).

    Values are written at full double precision (shortest text that reads back
    to the same double); the scale group is the batch (1 when there is none).
    For ``data="F"``: F = sign(F²)·sqrt|F²| and σ(F) = σ(F²)/(2|F|)
    (sqrt σ(F²) when F² = 0), the inverse of :func:`read_xd_hkl`'s rule.

    Raises
    ------
    ValueError
        Missing F² or σ, a name with spaces, or an unknown ``data``.
    """
    if reflections.f2 is None or reflections.sigma is None:
        raise ValueError("an XD file needs F² and σ(F²) for every reflection")
    if not name or len(name.split()) != 1:
        raise ValueError(f"the XD name must be one word, got {name!r}")
    if data not in ("F^2", "F"):
        raise ValueError(f"data must be 'F^2' or 'F', got {data!r}")
    f2, sig = np.asarray(reflections.f2, float), np.asarray(reflections.sigma, float)
    if data == "F":
        value = np.sign(f2) * np.sqrt(np.abs(f2))
        with np.errstate(divide="ignore", invalid="ignore"):
            sig = np.where(value != 0, sig / (2 * np.abs(value)), np.sqrt(sig))
    else:
        value = f2
    batch = reflections.batch if reflections.batch is not None else np.ones(len(f2), int)
    lines = [f"{name} {data} NDAT 6"]
    for (h, k, l), b, v, s in zip(reflections.hkl.tolist(), batch, value, sig, strict=True):
        lines.append(f"{h} {k} {l} {int(b)} {_free_number(v)} {_free_number(s)}")
    return "\n".join(lines) + "\n"


def write_xd_hkl(
    path: str | Path, reflections: Reflections, name: str = "chasm", data: str = "F^2"
) -> None:
    """Write :func:`xd_hkl_text` atomically."""
    write_text_atomic(path, xd_hkl_text(reflections, name, data))


# ----------------------------------------------------------------------------- sniffing
REFLECTION_FORMATS = ("hklf4-fixed", "hklf4-free", "xd", "cif")


def sniff_reflection_format(path: str | Path) -> str:
    """The format of a reflection file, from its content.

    Returns
    -------
    str
        ``"xd"`` when the first non-blank line carries ``NDAT`` (XD header);
        ``"cif"`` when the first line that is neither blank nor a ``#``
        comment starts with ``data_`` or ``global_`` (e.g. a SHELXL CIF with
        ``_shelx_hkl_file``); otherwise
        ``"hklf4-fixed"`` or ``"hklf4-free"``, the layout :func:`read_hkl4`
        would choose.

    Raises
    ------
    InputError
        As :func:`read_hkl4` when the file is neither.
    """
    path = Path(path)
    text = read_input_text(path)
    first = next((line for line in text.split("\n") if line.strip()), "")
    tokens = first.upper().split()
    if "NDAT" in tokens[1:]:
        return "xd"
    lines = (line.strip().lower() for line in text.split("\n"))
    first_item = next((line for line in lines if line and not line.startswith("#")), "")
    if first_item.startswith(("data_", "global_")):
        return "cif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, layout = _parse_file(path)
    return f"hklf4-{layout}"


def read_reflections(
    path: str | Path, format: str = "auto", cell=None, max_stol: float = MAX_STOL
) -> Reflections:
    """Read a reflection file of any supported format (see :func:`sniff_reflection_format`).

    Parameters
    ----------
    format : {"auto", "fixed", "free", "xd"}
        ``"auto"`` sniffs; ``"fixed"``/``"free"`` read HKLF 4 in that layout.
    """
    if format not in ("auto", "fixed", "free", "xd"):
        raise ValueError(f"format must be 'auto', 'fixed', 'free' or 'xd', got {format!r}")
    if format == "auto" and sniff_reflection_format(path) == "xd":
        format = "xd"
    if format == "xd":
        return read_xd_hkl(path, cell, max_stol)
    return read_hkl4(path, format, cell, max_stol)


# ----------------------------------------------------------------------------- writing


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
        With a Crystal, reflections beyond sinθ/λ = :data:`MAX_STOL` for its cell
        are refused first (:func:`check_resolution`), as corrupted indices.
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
    if hasattr(spacegroup, "B"):  # a Crystal: its cell bounds the indices
        check_resolution(reflections, spacegroup)
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

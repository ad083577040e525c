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
from pathlib import Path
from typing import Any

import numpy as np

from ..data.reflections import (
    MAX_INDEX,
    MAX_STOL,
    MergeInfo,
    Reflections,
    check_absences,
    check_resolution,
    merge,
    stol,
    systematic_absences,
)
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

#: Largest |batch| (scale-group) number read.
MAX_BATCH = 2**31 - 1


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


def read_hkl4(
    path: str | Path,
    format: str | None = None,
    cell: Any = None,
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

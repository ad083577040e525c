"""Reading input text safely, and parsing its numbers with range checks.

Every reader of chasm (CIF, HKLF 4, XD hkl, rcif, rhoCIF) goes through this
module, so that bad input always ends as an :class:`~chasm.errors.InputError`
naming the file, the line and what is allowed, never as a traceback.

Files
-----
:func:`read_input_text` refuses at once (with ``os.stat``, before opening)
anything that is not a regular file: a directory, a FIFO (which would block
forever), a device, a socket, a symbolic-link loop, an unreadable file, and
files larger than :data:`MAX_INPUT_BYTES`. The bytes are then decoded:

- a UTF-8 byte-order mark is dropped; UTF-16 (and UTF-32) is recognised by its
  byte-order mark;
- otherwise UTF-8; when that fails the text is read as latin-1 (every byte is a
  character there) and a warning names the first offending line;
- a NUL byte in a file without a UTF-16/32 mark means a binary file: refused.

Line ends ``\\r\\n`` and ``\\r`` become ``\\n``, so line numbers are those an
editor shows.

Numbers
-------
:func:`parse_number` reads a CIF-style number, optionally with a standard
uncertainty in parentheses (``1.234(5)``), and refuses texts longer than
:data:`MAX_NUMBER_CHARS`, values beyond the double range (``1e999``) and
NaN/inf. :func:`check_range` then checks a value against its allowed interval
with a message that names the file, the line and the interval.
"""

from __future__ import annotations

import codecs
import errno
import math
import os
import re
import stat
import warnings
from pathlib import Path

from chasm.errors import InputError

__all__ = [
    "MAX_INPUT_BYTES",
    "MAX_NUMBER_CHARS",
    "check_input_file",
    "decode_input",
    "read_input_text",
    "parse_number",
    "check_range",
    "range_text",
]

#: Largest input file read (bytes): 1 GiB, far beyond any reflection list.
MAX_INPUT_BYTES = 1 << 30

#: Longest text accepted as one number (digits, sign, exponent, su included): room
#: for any double written in positional notation, as chasm's rhoCIF does (5e-324
#: takes 326 characters), but not for the 400-digit numbers of a corrupted file.
MAX_NUMBER_CHARS = 350

_NUMBER = re.compile(r"^([+-]?)(\d+\.?\d*|\.\d+)(?:[eE]([+-]?\d+))?(?:\((\d+)\))?$")

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_input_file(path: str | os.PathLike) -> Path:
    """Check, without opening it, that ``path`` is a readable regular file.

    Returns
    -------
    Path

    Raises
    ------
    InputError
        Missing file, symbolic-link loop, directory, FIFO, device, socket,
        a file larger than :data:`MAX_INPUT_BYTES`, or no read permission.
    """
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputError("file not found", path=str(path)) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise InputError("symbolic link loop: give the real file", path=str(path)) from None
        raise InputError(f"cannot read the file: {exc.strerror}", path=str(path)) from None
    if not stat.S_ISREG(info.st_mode):
        raise InputError(f"is {_kind(info.st_mode)}, not a regular file", path=str(path))
    if info.st_size > MAX_INPUT_BYTES:
        raise InputError(
            f"file of {info.st_size} bytes: more than the {MAX_INPUT_BYTES} bytes chasm reads "
            "(is it the right file?)",
            path=str(path),
        )
    if not os.access(path, os.R_OK):
        raise InputError("no permission to read the file", path=str(path))
    return path


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def decode_input(data: bytes, path: str | None = None) -> str:
    """Text of an input file's bytes (see the module docstring for the rules).

    Raises
    ------
    InputError
        A binary file (NUL byte without a UTF-16/32 mark) or undecodable UTF-16/32.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            body = data[len(bom) :]
            try:
                text = body.decode(encoding)
            except UnicodeDecodeError as exc:
                good = body[: exc.start].decode(encoding, errors="replace")
                raise InputError(
                    f"starts with a {encoding} byte-order mark but is not valid {encoding} "
                    f"(byte {exc.start + len(bom)}); save it as UTF-8",
                    path=path,
                    line=good.count("\n") + 1,
                ) from None
            break
    else:
        nul = data.find(b"\0")
        if nul >= 0:
            raise InputError(
                "binary file (NUL byte): expected a text file", path=path, line=_line_of(data, nul)
            )
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            text = data.decode("latin-1")
            warnings.warn(
                f"{path}, line {_line_of(data, exc.start)}: not UTF-8 "
                f"(byte 0x{data[exc.start]:02x}); the file is read as latin-1",
                stacklevel=3,
            )
    if "\0" in text:
        line = text.count("\n", 0, text.index("\0")) + 1
        raise InputError("binary file (NUL character): expected a text file", path=path, line=line)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_input_text(path: str | os.PathLike) -> str:
    """Check (:func:`check_input_file`), read and decode (:func:`decode_input`) a text file."""
    path = check_input_file(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the file: {exc.strerror}", path=str(path)) from None
    return decode_input(data, str(path))


def parse_number(text: str) -> tuple[float, float | None]:
    """Value and standard uncertainty of a CIF-style number.

    ``'0.02023(14)'`` -> (0.02023, 0.00014); ``'123(2)'`` -> (123.0, 2.0);
    ``'1.5e-3(2)'`` -> (0.0015, 0.0002); ``'90'`` -> (90.0, None).

    Raises
    ------
    ValueError
        Not a number (``'?'`` and ``'.'`` included), more than
        :data:`MAX_NUMBER_CHARS` characters, or a value (or su) beyond the
        double range. The message says which.
    """
    s = text.strip()
    if len(s) > MAX_NUMBER_CHARS:
        raise ValueError(
            f"a number of {len(s)} characters, more than the {MAX_NUMBER_CHARS} accepted"
        )
    match = _NUMBER.match(s)
    if not match:
        raise ValueError(f"not a number: {text!r}")
    sign, mantissa, exponent, su_digits = match.groups()
    exp = int(exponent) if exponent else 0
    value = float(f"{sign}{mantissa}e{exp}")
    if not math.isfinite(value):
        raise ValueError("beyond the double-precision range |x| < 1.8e308")
    su = None
    if su_digits is not None:
        decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
        su = float(f"{su_digits}e{exp - decimals}")
        if not math.isfinite(su):
            raise ValueError(f"{text!r}: the standard uncertainty is beyond the double range")
    return value, su


def range_text(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    """The interval as text: ``(0, 1]``, ``[0, inf)``..."""
    left = "(" if lo_open or lo is None else "["
    right = ")" if hi_open or hi is None else "]"
    a = "-inf" if lo is None else f"{lo:g}"
    b = "inf" if hi is None else f"{hi:g}"
    return f"{left}{a}, {b}{right}"


def check_range(
    value: float,
    what: str,
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    hi_open: bool = False,
    path: str | os.PathLike | None = None,
    line: int | None = None,
    hint: str = "",
) -> float:
    """``value`` if it is finite and within the interval, else an InputError.

    Parameters
    ----------
    value : float
    what : str
        What the value is (``"atom C1 occupancy"``), for the message.
    lo, hi : float or None
        Bounds (None: unbounded on that side).
    lo_open, hi_open : bool
        Exclude the bound itself.
    path, line
        Where the value was read.
    hint : str
        What to do, appended to the message.
    """
    v = float(value)
    bad = not math.isfinite(v)
    if lo is not None:
        bad = bad or (v <= lo if lo_open else v < lo)
    if hi is not None:
        bad = bad or (v >= hi if hi_open else v > hi)
    if bad:
        allowed = range_text(lo, hi, lo_open, hi_open)
        message = f"{what} = {v:g} is outside the allowed range {allowed}"
        if hint:
            message += f"; {hint}"
        raise InputError(message, path=None if path is None else str(path), line=line)
    return v

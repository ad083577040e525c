"""Atomic file output: write to a temporary file in the same folder, then rename.

A reader never sees a half-written file, and an existing file is replaced only
when the new content was written completely. A new file gets the ordinary
permissions of the umask; a replaced file keeps its own.

Safety rules kept here for every command:

- The temporary file is ``.NAME.<hex>.<pid>.tmp`` beside the target. It is
  removed on every exit path that runs Python code (an exception, Ctrl-C,
  SIGTERM through :func:`chasm.cli.main`); after a SIGKILL it stays, and the
  next write into that folder (by any chasm command) removes the temporary
  files whose process is gone (:func:`clean_stale_temp`).
- An error names the target file, not the temporary one.
- Inputs are protected: inside ``with protect_inputs(paths):`` a write onto
  one of those files (the same resolved path, or the same inode and device)
  is refused with :class:`~chasm.errors.InputError`, whatever ``--force``
  says. Commands also check their outputs against their inputs up front
  (:func:`refuse_input`), before any work.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from chasm.errors import InputError

__all__ = [
    "write_bytes_atomic",
    "write_text_atomic",
    "clean_stale_temp",
    "protect_inputs",
    "refuse_input",
    "same_file",
]

#: Temporary files of :func:`write_bytes_atomic`; group 2 is the writer's PID (older
#: chasm versions wrote none).
TEMP_PATTERN = re.compile(r"^\.(.+)\.[0-9a-f]{12}(?:\.(\d+))?\.tmp$")
#: A temporary file without a live writer, or older than this (s), is stale.
STALE_AGE = 24 * 3600.0
#: A temporary file of an older chasm (no PID in its name) is stale after this (s).
LEGACY_AGE = 600.0

_protected: list[tuple[Path, str]] = []
_cleaned: set[Path] = set()


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (binary files such as PNG or PDF).

    Raises
    ------
    InputError
        ``path`` is a protected input (:func:`protect_inputs`).
    OSError
        The folder is not writable, the disk is full...; ``filename`` is ``path``.
    """
    path = Path(path)
    for source, what in _protected:
        if same_file(path, source):
            refuse_input(path, {what: source})
    folder = path.parent
    if folder not in _cleaned:
        _cleaned.add(folder)
        clean_stale_temp(folder)
    tmp = folder / f".{path.name}.{secrets.token_hex(6)}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot write: {exc.strerror}", str(path)) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            shutil.copymode(path, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise type(exc)(exc.errno, f"cannot write: {exc.strerror}", str(path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0
    return True


def clean_stale_temp(folder: str | os.PathLike) -> list[Path]:
    """Remove the stale temporary files of :func:`write_bytes_atomic` in ``folder``.

    Stale: the PID in the name is not a running process, or the file is older
    than :data:`STALE_AGE`; a file without a PID (older chasm) when older than
    :data:`LEGACY_AGE`. Files of this process are kept. Errors (a folder that
    cannot be listed, a file removed meanwhile) are ignored.

    Returns
    -------
    list of Path
        The files removed.
    """
    removed = []
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = TEMP_PATTERN.match(entry.name)
        if m is None:
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            age = now - entry.stat(follow_symlinks=False).st_mtime
            pid = int(m.group(2)) if m.group(2) else None
            if pid == os.getpid():
                continue
            stale = age > STALE_AGE or (age > LEGACY_AGE if pid is None else not _alive(pid))
            if stale:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file: same resolved path, or same device and inode."""
    a, b = Path(a), Path(b)
    try:
        if a.resolve() == b.resolve():
            return True
    except (OSError, RuntimeError):  # a symlink loop
        pass
    try:
        sa, sb = a.stat(), b.stat()
    except (OSError, ValueError):
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def refuse_input(target: str | os.PathLike, inputs: dict[str, str | os.PathLike | None]) -> None:
    """Raise InputError if ``target`` is one of ``inputs`` (description -> path).

    ``--force`` does not lift this: an input is never overwritten.
    """
    for what, source in inputs.items():
        if source is not None and same_file(target, source):
            raise InputError(
                f"refusing to write here: this is the {what} {source} of this command "
                "(inputs are never overwritten, --force included); choose another output",
                str(target),
            )


@contextlib.contextmanager
def protect_inputs(inputs: dict[str, str | os.PathLike | None] | Iterable) -> Iterator[None]:
    """Within the block, :func:`write_bytes_atomic` refuses to write onto these files.

    ``inputs`` maps a description ("structure file") to a path, or is a list of
    paths (described as "input file").
    """
    if not isinstance(inputs, dict):
        inputs = {f"input file {i + 1}": p for i, p in enumerate(inputs)}
    entries = [(Path(p), what) for what, p in inputs.items() if p is not None]
    _protected.extend(entries)
    try:
        yield
    finally:
        for e in entries:
            _protected.remove(e)

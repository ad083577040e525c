"""A lock on an output folder, so that two runs never write one folder together.

The lock is an advisory ``flock`` on ``FOLDER/.chasm.lock``, which holds the
PID of the run. The kernel releases it when the process ends, however it ends
(SIGKILL included), so a lock left by a dead run is taken over at once; the
file itself stays in the folder (removing it would let two runs lock two
different files). Where ``fcntl`` is missing (Windows) no lock is taken.
"""

from __future__ import annotations

import os
from pathlib import Path

from chasm.errors import InputError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

__all__ = ["FolderLock", "LOCK_NAME"]

LOCK_NAME = ".chasm.lock"


class FolderLock:
    """``with FolderLock(folder, "chasm refine"):`` holds the folder for this process.

    Raises
    ------
    InputError
        Another live process holds the folder (its PID in the message), or the
        lock file cannot be created (a read-only folder).
    """

    def __init__(self, folder: str | os.PathLike, what: str = "chasm refine"):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.what = what
        self.fd: int | None = None

    def acquire(self) -> None:
        if fcntl is None:
            return
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise InputError(
                f"cannot write in the output folder ({exc.strerror or exc}); choose another "
                "output folder",
                str(self.folder),
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").split()
            except OSError:
                holder = []
            os.close(fd)
            who = f" (PID {holder[0]})" if holder else ""
            raise InputError(
                f"the output folder is in use by another {self.what}{who}; wait for it to "
                "finish, or give another output folder (--output)",
                str(self.folder),
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            finally:
                os.close(self.fd)
                self.fd = None

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

"""The thread count of the OpenBLAS libraries loaded in this process (Linux; best effort).

A matrix product split over a different number of threads adds its terms in
a different order, so the last bits of a refinement depend on it. Dask
workers run OpenBLAS with one thread; a cross-validation fold runs under
:func:`blas_threads` with the same count wherever it runs (serially in the
command's process or on a worker), which makes the fold results bit-identical.

numpy and scipy wheels bundle OpenBLAS with prefixed symbols
(``scipy_openblas_set_num_threads64_``); the libraries are found among the
shared objects mapped into the process (``/proc/self/maps``). Where that
fails (another BLAS, another OS) nothing is changed and
:func:`blas_threads` reports it.

:func:`limit_openblas_spin` (called by ``import chasm``, before numpy is
loaded) shortens the time OpenBLAS's idle threads spin between calls, which
otherwise takes the cores from the engine's threads (issue 21,
docs/benchmarks.md).
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["SPIN_TIMEOUT", "blas_threads", "limit_openblas_spin", "openblas_handles"]

#: OPENBLAS_THREAD_TIMEOUT chasm asks for: after a call, OpenBLAS's worker
#: threads wait for the next one busy (2**n CPU cycles, then asleep). The
#: library's default, n = 28 (about 0.1 s), is as long as the engine's
#: threaded phase of a cycle: numpy's and scipy's OpenBLAS (two pools) then
#: spin on the cores the engine's threads need. 2**16 cycles (tens of
#: microseconds) still bridges back-to-back calls.
SPIN_TIMEOUT = "16"


def limit_openblas_spin() -> bool:
    """Set ``OPENBLAS_THREAD_TIMEOUT`` (unless the user did) before OpenBLAS is loaded.

    OpenBLAS reads the variable once, when numpy or scipy first loads it:
    ``import chasm`` does this first (the command line always), so a script
    that imports numpy before chasm keeps OpenBLAS's default. Results do not
    depend on it, only the time. Returns whether the variable now holds
    chasm's value.
    """
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", SPIN_TIMEOUT)
    return os.environ["OPENBLAS_THREAD_TIMEOUT"] == SPIN_TIMEOUT


_NAMES = [
    (f"{p}openblas_set_num_threads{s}", f"{p}openblas_get_num_threads{s}")
    for p in ("scipy_", "")
    for s in ("64_", "")
]


@functools.cache
def _handle(path: str) -> tuple[Any, Any] | None:
    try:
        lib = ctypes.CDLL(path)
    except OSError:
        return None
    for set_name, get_name in _NAMES:
        if hasattr(lib, set_name) and hasattr(lib, get_name):
            return getattr(lib, set_name), getattr(lib, get_name)
    return None


#: the handles once numpy's and scipy's OpenBLAS have both been found (no more to come)
_FOUND: list[tuple] = []


def openblas_handles() -> list[tuple]:
    """(set, get) functions of every OpenBLAS mapped into this process.

    The process's mapped files are read until two libraries (numpy's and
    scipy's) have been seen, then the answer is kept: reading
    ``/proc/self/maps`` costs about a millisecond, and the solver asks once
    per cycle.
    """
    if len(_FOUND) >= 2:
        return list(_FOUND)
    try:
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line.lower()}
    except OSError:
        return []
    found = [h for h in (_handle(p) for p in sorted(paths) if p.startswith("/")) if h is not None]
    if len(found) >= 2:
        _FOUND[:] = found
    return found


@contextmanager
def blas_threads(n: int | None) -> Iterator[int]:
    """Run the block with ``n`` OpenBLAS threads (None: unchanged); yields the libraries set.

    The previous counts are restored afterwards.
    """
    handles = openblas_handles() if n else []
    before = [get() for _, get in handles]
    for set_, _ in handles:
        set_(int(n or 0))
    try:
        yield len(handles)
    finally:
        for (set_, _), k in zip(handles, before, strict=True):
            set_(k)

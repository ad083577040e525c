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
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["blas_threads", "openblas_handles"]

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


def openblas_handles() -> list[tuple]:
    """(set, get) functions of every OpenBLAS mapped into this process."""
    try:
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line.lower()}
    except OSError:
        return []
    return [h for h in (_handle(p) for p in sorted(paths) if p.startswith("/")) if h is not None]


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

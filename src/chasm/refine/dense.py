"""Dense symmetric-matrix steps of the normal equations, compiled when numba is present.

The solver sums the data sets' normal matrices, each over its own columns,
and copies lower triangles (what BLAS syrk writes) onto upper ones, every
cycle. In numpy those steps make temporaries of the matrix's size (``np.tril``) or go through
fancy indexing (``M[np.ix_(live, live)] += Mk``, ~10 ns an element); at the
seed size (k ≈ 870) they cost 5-10 ms a cycle, a few per cent of the cycle.
The loops here do the same additions and copies element by element, so the
numbers are bit-identical to the numpy expressions they replace (which stay
as the path without numba and as the reference of tests/test_dense.py).
"""

from __future__ import annotations

import threading

import numpy as np

from chasm.scattering.kernel import HAVE_NUMBA, _jit

__all__ = ["symmetrise_lower", "add_into"]

_TILE = 64  # square tiles of the triangle copy: both sides stay in cache
_MIN_COMPILED = 64  # below this order the numpy path is as fast (no compile at all)

_SIGNATURES = {
    "_symmetrise_tiles": "void(f8[:, :], int64)",
    "_add_into": "void(f8[:, :], f8[:, :], intp[::1])",
}
_READY = [False]
_LOCK = threading.Lock()


def _compiled() -> bool:
    """True when the kernels are compiled (once, for arrays of any layout)."""
    if not HAVE_NUMBA:
        return False
    if not _READY[0]:
        with _LOCK:
            for name, sig in _SIGNATURES.items():
                dispatcher = globals()[name]
                if not dispatcher.signatures:
                    dispatcher.compile(sig)
                    dispatcher.disable_compile()
            _READY[0] = True
    return True


def symmetrise_lower(a: np.ndarray, block: int = 256) -> np.ndarray:
    """Copy the lower triangle of a square matrix onto its upper one, in place.

    Parameters
    ----------
    a : ndarray, float64, shape (n, n)
        Any strides (e.g. a view of a Fortran-ordered syrk accumulator). Its
        upper triangle is overwritten and never read.
    block : int
        Column block of the numpy path (no temporaries of a's size).

    Returns
    -------
    ndarray
        ``a`` itself.
    """
    n = len(a)
    if n >= _MIN_COMPILED and a.dtype == np.float64 and _compiled():
        _symmetrise_tiles(a, _TILE)
        return a
    for j0 in range(0, n, block):
        j1 = min(n, j0 + block)
        d = a[j0:j1, j0:j1]
        d[...] = np.tril(d) + np.tril(d, -1).T
        a[j0:j1, j1:] = a[j1:, j0:j1].T
    return a


def add_into(m: np.ndarray, part: np.ndarray, live: np.ndarray) -> None:
    """``m[np.ix_(live, live)] += part`` (distinct indices), in place.

    Parameters
    ----------
    m : ndarray, float64, shape (u, u)
    part : ndarray, float64, shape (k, k)
    live : ndarray of int, shape (k,)
        Distinct rows/columns of ``m`` that ``part``'s rows/columns go to.
    """
    live = np.ascontiguousarray(live, dtype=np.intp)
    if (
        len(part) >= _MIN_COMPILED
        and m.dtype == np.float64
        and part.dtype == np.float64
        and _compiled()
    ):
        _add_into(m, part, live)
        return
    m[np.ix_(live, live)] += part


@_jit
def _symmetrise_tiles(a: np.ndarray, tile: int) -> None:  # pragma: no cover - compiled
    n = a.shape[0]
    for i0 in range(0, n, tile):  # tile rows of the lower triangle ...
        i1 = min(n, i0 + tile)
        for j0 in range(0, i0 + 1, tile):  # ... and its columns, up to the diagonal
            j1 = min(n, j0 + tile)
            for i in range(i0, i1):
                for j in range(j0, min(j1, i)):
                    a[j, i] = a[i, j]


@_jit
def _add_into(m: np.ndarray, part: np.ndarray, live: np.ndarray) -> None:  # pragma: no cover
    k = live.size
    for i in range(k):
        r = live[i]
        for j in range(k):
            m[r, live[j]] += part[i, j]

"""BLAS syrk on a row-strided view: Aᵀ A of some columns of a wider array, without a copy.

The normal matrix of a data set whose Jacobian rows come weighted
(:class:`~chasm.refine.problem.WeightedEvaluation`) is Aᵀ A over a run of
columns of a C-ordered (n, W) array. That run is a Fortran matrix of shape
(w, n) with leading dimension W, which BLAS reads as it is; scipy's f2py
wrapper of ``dsyrk`` would first copy it into a contiguous array (a pass over
the whole Jacobian). :func:`syrk_lower` calls the same OpenBLAS ``dsyrk``
through the C function scipy exports (``scipy.linalg.cython_blas``) with the
array's own leading dimension. Where that entry point cannot be found the
view is copied and scipy's wrapper used (same numbers, one copy more).
"""

from __future__ import annotations

import ctypes
import functools
from typing import Any

import numpy as np
from scipy.linalg.blas import dsyrk as _f2py_dsyrk

__all__ = ["syrk_lower", "have_strided_syrk"]

_INT_MAX = 2**31 - 1


@functools.cache
def _dsyrk() -> Any | None:
    """The C entry point of scipy's ``dsyrk`` (Fortran calling convention), or None."""
    try:
        from scipy.linalg import cython_blas

        capsule = cython_blas.__pyx_capi__["dsyrk"]
        get_name = ctypes.pythonapi.PyCapsule_GetName
        get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
        get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
        get_pointer.restype = ctypes.c_void_p
        get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
        address = get_pointer(capsule, get_name(capsule))
    except (ImportError, KeyError, AttributeError, ValueError):
        return None
    if not address:
        return None
    c_int_p, c_double_p, c_char_p = (
        ctypes.POINTER(ctypes.c_int),
        ctypes.POINTER(ctypes.c_double),
        ctypes.c_char_p,
    )
    proto = ctypes.CFUNCTYPE(
        None,
        c_char_p,  # uplo
        c_char_p,  # trans
        c_int_p,  # n
        c_int_p,  # k
        c_double_p,  # alpha
        ctypes.c_void_p,  # a
        c_int_p,  # lda
        c_double_p,  # beta
        ctypes.c_void_p,  # c
        c_int_p,  # ldc
    )
    return proto(address)


def have_strided_syrk() -> bool:
    """True when :func:`syrk_lower` reads strided views without copying them."""
    return _dsyrk() is not None


def syrk_lower(a: np.ndarray, c: np.ndarray, alpha: float = 1.0, beta: float = 0.0) -> np.ndarray:
    """c ← alpha aᵀ a + beta c in the lower triangle of c (in place; the upper one untouched).

    Parameters
    ----------
    a : ndarray, float64, shape (n, w)
        Rows with unit column stride (e.g. a run of columns of a C-ordered
        array): read where it lies.
    c : ndarray, float64, shape (w, w), Fortran order
        The accumulator (only its lower triangle is read and written).
    alpha, beta : float

    Returns
    -------
    ndarray
        c itself.
    """
    n, w = a.shape
    if c.shape != (w, w) or c.dtype != np.float64 or not c.flags.f_contiguous:
        raise ValueError(f"c must be a Fortran-ordered float64 ({w}, {w}) array")
    if w == 0:
        return c
    fn = _dsyrk()
    lda = a.strides[0] // 8 if n > 1 else w
    strided = (
        a.dtype == np.float64
        and a.strides[1] == 8
        and (n <= 1 or (a.strides[0] % 8 == 0 and lda >= w))
        and max(n, lda, w) <= _INT_MAX
    )
    if fn is None or not strided:
        b = np.ascontiguousarray(a, dtype=np.float64)
        out: np.ndarray = _f2py_dsyrk(alpha, b.T, beta=beta, c=c, trans=0, lower=1, overwrite_c=1)
        if out is not c:  # (f2py returns c itself for a Fortran-ordered c)
            c[...] = out
        return c
    if n == 0:  # C = beta C (beta = 0: zero, whatever C held)
        if beta == 0.0:
            c[...] = 0.0
        else:
            c *= beta
        return c
    cint = ctypes.c_int
    fn(
        b"L",
        b"N",
        ctypes.byref(cint(w)),
        ctypes.byref(cint(n)),
        ctypes.byref(ctypes.c_double(alpha)),
        ctypes.c_void_p(a.ctypes.data),
        ctypes.byref(cint(max(lda, 1))),
        ctypes.byref(ctypes.c_double(beta)),
        ctypes.c_void_p(c.ctypes.data),
        ctypes.byref(cint(w)),
    )
    return c

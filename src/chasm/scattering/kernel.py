"""Compiled (numba) kernels of the structure-factor engine.

The numpy path of :class:`chasm.scattering.engine.StructureFactorEngine` works
on arrays of (operation, reflection, atom) and pays Python dispatch for every
block, l and column group. These kernels do the same sums reflection by
reflection in compiled code; they release the GIL, so the engine runs them on
disjoint ranges of reflections in several threads at once. For one
reflection, every atom and every
operation, they form the Debye–Waller factor, the phase (products of the
per-atom tables exp(2πi k x_c), as the numpy path does), the real harmonics of
the rotated scattering vector (explicit polynomials, those of
:mod:`chasm.density.harmonics`), the form factor, F and, on request, every
Jacobian column of the atom (the engine's column layout, see
:func:`chasm.scattering.engine.atom_columns`). The formulas are those of the
engine's module docstring; the numpy path stays the reference (tests compare
the two to 1e-12, and ``CHASM_ENGINE=numpy`` selects it).

Why numba: it installs from PyPI wheels (numba and llvmlite, manylinux,
macOS and Windows, CPython 3.10–3.13), so ``pip install .`` stays one command
with no compiler; kernels are compiled once per machine and cached
(``cache=True``, in ``__pycache__`` or ``NUMBA_CACHE_DIR``). The kernels are
serial (threads come from the engine): numba's ``parallel=True`` doubled
the one-off compile time (12 s against 6 s of CPU on the development
machine) and gained nothing over Python threads on blocks of reflections.

Functions
---------
sf_block
    F and (optionally) the engine-ordered Jacobian of a block of reflections.
scatter
    Copy engine columns of a block into the caller's columns (optionally as
    ga dA/dp + gb dB/dp, the chain rule to a real observable); also the
    solver's weighted gather of scattered Jacobian columns.
radial_block
    The radial tables <j_l>(kappa' K) and their kappa' derivatives of a
    block of reflections (each engine thread makes those of its blocks).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numpy as np

try:  # numba is a runtime dependency; the numpy path works without it
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None  # type: ignore[assignment]  # (read only when HAVE_NUMBA)
    HAVE_NUMBA = False

TWO_PI = 2.0 * math.pi
FOUR_PI = 4.0 * math.pi


_Fn = TypeVar("_Fn", bound=Callable[..., Any])


def _jit(fn: _Fn) -> _Fn:
    """Compiled, GIL released, cached on disk (the plain function without numba).

    Typed as returning ``fn`` itself: mypy checks the kernels as the Python
    functions they are written as (numba ignores the annotations and types
    every call from its arguments at compile time).
    """
    if not HAVE_NUMBA:
        return fn
    compiled: Any = numba.njit(nogil=True, cache=True)(fn)  # a numba Dispatcher
    return cast(_Fn, compiled)


@_jit
def _harmonics(
    ux: float, uy: float, uz: float, lmax: int, coef: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """coef[k] poly_k(u) for k < (lmax+1)², the polynomials of harmonics._evaluate."""
    out[0] = coef[0]
    if lmax < 1:
        return
    x, y, z = ux, uy, uz
    out[1] = z * coef[1]
    out[2] = x * coef[2]
    out[3] = y * coef[3]
    if lmax < 2:
        return
    z2 = z * z
    xz = x * z
    yz = y * z
    xy = x * y
    x2my2 = x * x - y * y
    out[4] = 3.0 * coef[4] * z2 - coef[4]
    out[5] = xz * coef[5]
    out[6] = yz * coef[6]
    out[7] = x2my2 * coef[7]
    out[8] = xy * coef[8]
    if lmax < 3:
        return
    f = 5.0 * z2 - 3.0
    out[9] = f * z * coef[9]
    f1 = 5.0 * z2 - 1.0
    out[10] = f1 * coef[10] * x
    out[11] = f1 * coef[11] * y
    out[12] = x2my2 * z * coef[12]
    out[13] = xy * z * coef[13]
    x2 = x * x
    y2 = y * y
    a3x = (x2 - 3.0 * y2) * x
    b3y = (3.0 * x2 - y2) * y
    out[14] = a3x * coef[14]
    out[15] = b3y * coef[15]
    if lmax < 4:
        return
    out[16] = ((35.0 * z2 - 30.0) * z2 + 3.0) * coef[16]
    g = 7.0 * z2 - 3.0
    out[17] = g * coef[17] * xz
    out[18] = g * coef[18] * yz
    g = 7.0 * z2 - 1.0
    out[19] = g * x2my2 * coef[19]
    out[20] = g * xy * coef[20]
    out[21] = a3x * z * coef[21]
    out[22] = b3y * z * coef[22]
    out[23] = (x2my2 * x2my2 - 4.0 * xy * xy) * coef[23]
    out[24] = xy * x2my2 * coef[24]


@_jit
def sf_block(
    r0: int,
    r1: int,
    hs: np.ndarray,
    quad: np.ndarray,
    stol: np.ndarray,
    kidx: np.ndarray,
    tab0: np.ndarray,
    tab1: np.ndarray,
    tab2: np.ndarray,
    eht: np.ndarray,
    htc: np.ndarray,
    use_tables: bool,
    uhat: np.ndarray,
    X: np.ndarray,
    occ: np.ndarray,
    aniso: np.ndarray,
    U6: np.ndarray,
    uiso: np.ndarray,
    site_order: np.ndarray,
    fa_re: np.ndarray,
    fa_im: np.ndarray,
    fsph: np.ndarray,
    hc_of: np.ndarray,
    lmax_of: np.ndarray,
    val_of: np.ndarray,
    col0: np.ndarray,
    n_adp: np.ndarray,
    rot: np.ndarray,
    plm: np.ndarray,
    wrot: np.ndarray,
    ylm: np.ndarray,
    cnorm: np.ndarray,
    sign_l: np.ndarray,
    jl: np.ndarray,
    djl: np.ndarray,
    joff: int,
    rad_index: np.ndarray,
    fv: np.ndarray,
    dfv: np.ndarray,
    pv: np.ndarray,
    kappa: np.ndarray,
    centric: bool,
    jacobian: bool,
    want_imag: bool,
    F: np.ndarray,
    dA: np.ndarray,
    dB: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """F (and the Jacobian) of reflections r0 <= n < r1.

    F[n] is overwritten; with ``jacobian`` row n - r0 of dA (dB: with
    ``want_imag``) gets dA/dp (dB/dp) of every engine column. Arrays as the
    engine prepares them (``StructureFactorEngine._kernel_args``): hs, quad
    (o, n, 3 | 6), kidx (3, o, n), tab_c (k, atom) complex, eht (o, n)
    complex, htc (o, n) h.t in cycles (direct phases when not use_tables),
    uhat (n, 3), fsph (atom, n), rot (o, n_hc, 3, 3) the matrices M^T Q_o,
    plm (n_hc, 25) P_lm, wrot (o, n_hc, 25) c_lm P_lm rotated onto y(h) (F
    alone), ylm (n, 25) y(h), cnorm (25) c_lm N_lm (harmonics' coefficients),
    jl/djl (rows, n') radial tables whose column n - joff is reflection n, with
    rad_index (lmax+1, n_hc), fv/dfv
    (n_val, n) (rows of reflections: each thread reads its part of a row).
    """
    n_ops = hs.shape[0]
    n_at = X.shape[0]
    two = 2.0 if centric else 1.0
    anomalous = False
    for a in range(n_at):
        if fa_re[a] != 0.0 or fa_im[a] != 0.0:
            anomalous = True
    yr = np.empty(25)
    jl_l = np.empty(5)
    djl_l = np.empty(5)
    ang = np.empty(5)
    dxR = np.empty(3)
    dxI = np.empty(3)
    duR = np.empty(6)
    duI = np.empty(6)
    accR = np.empty(25)
    accI = np.empty(25)
    for n in range(r0, r1):
        r = n - r0
        s = stol[n]
        ux, uy, uz = uhat[n, 0], uhat[n, 1], uhat[n, 2]
        f_re = 0.0
        f_im = 0.0
        for a in range(n_at):
            h = hc_of[a]
            L = lmax_of[a] + 1 if h >= 0 else 0
            v = val_of[a]
            oc = occ[a]
            so = site_order[a]
            far = fa_re[a]
            fai = fa_im[a]
            for l in range(L):
                jl_l[l] = FOUR_PI * sign_l[l] * jl[rad_index[l, h], n - joff]
                if jacobian:
                    djl_l[l] = FOUR_PI * sign_l[l] * djl[rad_index[l, h], n - joff]
            gR = 0.0
            gI = 0.0
            for k in range(3):
                dxR[k] = 0.0
                dxI[k] = 0.0
            for k in range(6):
                duR[k] = 0.0
                duI[k] = 0.0
            for k in range(L * L):
                accR[k] = 0.0
                accI[k] = 0.0
            cs = 0.0
            ss = 0.0
            dkR = 0.0
            dkI = 0.0
            T_iso = math.exp(-8.0 * math.pi**2 * s * s * uiso[a]) / so
            for o in range(n_ops):
                # Debye-Waller factor and phase: E0 = (C + i S) = T exp(2 pi i h.(R x + t))
                if aniso[a]:
                    e = 0.0
                    for k in range(6):
                        e += quad[o, n, k] * U6[a, k]
                    T = math.exp(-2.0 * math.pi**2 * e) / so
                else:
                    T = T_iso
                if use_tables:
                    E = tab0[kidx[0, o, n], a] * tab1[kidx[1, o, n], a]
                    E = E * tab2[kidx[2, o, n], a]
                    E = E * eht[o, n]
                else:
                    t = hs[o, n, 0] * X[a, 0] + hs[o, n, 1] * X[a, 1] + hs[o, n, 2] * X[a, 2]
                    t = TWO_PI * (t - np.rint(t))
                    E = complex(math.cos(t), math.sin(t)) * eht[o, n]
                C = E.real * T
                S = E.imag * T
                # form factor f = fR + i fI (odd l imaginary)
                fR = fsph[a, n]
                fI = 0.0
                if L > 0 and not jacobian:  # rotated populations on y(h)
                    mR = 0.0
                    mI = 0.0
                    for l in range(L):
                        al = 0.0
                        for k in range(l * l, (l + 1) * (l + 1)):
                            al += ylm[n, k] * wrot[o, h, k]
                        if l % 2 == 0:
                            mR += al * jl_l[l]
                        else:
                            mI += al * jl_l[l]
                    fR += mR
                    fI = mI
                elif L > 0:  # y(rotated h), also for the P_lm columns
                    px = rot[o, h, 0, 0] * ux + rot[o, h, 0, 1] * uy + rot[o, h, 0, 2] * uz
                    py = rot[o, h, 1, 0] * ux + rot[o, h, 1, 1] * uy + rot[o, h, 1, 2] * uz
                    pz = rot[o, h, 2, 0] * ux + rot[o, h, 2, 1] * uy + rot[o, h, 2, 2] * uz
                    _harmonics(px, py, pz, L - 1, cnorm, yr)  # c_lm y_lm
                    mR = 0.0
                    mI = 0.0
                    for l in range(L):
                        al = 0.0
                        for k in range(l * l, (l + 1) * (l + 1)):
                            al += plm[h, k] * yr[k]
                        ang[l] = al
                        term = al * jl_l[l]
                        if l % 2 == 0:
                            mR += term
                        else:
                            mI += term
                    fR += mR
                    fI = mI
                XR = C * fR - S * fI
                XI = S * fR + C * fI
                if centric:
                    GuR = 2.0 * XR
                    GuI = 0.0
                    if anomalous:
                        GuR += 2.0 * far * C
                        GuI = 2.0 * fai * C
                else:
                    GuR = XR
                    GuI = XI
                    if anomalous:
                        GuR += far * C - fai * S
                        GuI += far * S + fai * C
                gR += GuR
                gI += GuI
                if not jacobian:
                    continue
                if centric:
                    GxR = -2.0 * XI
                    GxI = 0.0
                    if anomalous:
                        GxR -= 2.0 * far * S
                        GxI = -2.0 * fai * S
                else:
                    GxR = -GuI
                    GxI = GuR
                for k in range(3):
                    dxR[k] += hs[o, n, k] * GxR
                if aniso[a]:
                    for k in range(6):
                        duR[k] += quad[o, n, k] * GuR
                if want_imag:
                    for k in range(3):
                        dxI[k] += hs[o, n, k] * GxI
                    if aniso[a]:
                        for k in range(6):
                            duI[k] += quad[o, n, k] * GuI
                cs += C
                ss += S
                if L > 0:
                    qR = 0.0
                    qI = 0.0
                    for l in range(L):
                        t = djl_l[l] * ang[l]
                        k0 = l * l
                        k1 = k0 + 2 * l + 1
                        if l % 2 == 0:
                            qR += t
                            for k in range(k0, k1):
                                accR[k] += C * yr[k]
                            if not centric:
                                for k in range(k0, k1):
                                    accI[k] += S * yr[k]
                        else:
                            qI += t
                            for k in range(k0, k1):
                                accR[k] -= S * yr[k]
                            if not centric:
                                for k in range(k0, k1):
                                    accI[k] += C * yr[k]
                    dkR += C * qR - S * qI
                    dkI += S * qR + C * qI
            f_re += oc * gR
            f_im += oc * gI
            if not jacobian:
                continue
            # ---- the atom's columns
            c = col0[a]
            for k in range(3):
                dA[r, c + k] = TWO_PI * oc * dxR[k]
                if want_imag:
                    dB[r, c + k] = TWO_PI * oc * dxI[k]
            c += 3
            if aniso[a]:
                for k in range(6):
                    dA[r, c + k] = -2.0 * math.pi**2 * oc * duR[k]
                    if want_imag:
                        dB[r, c + k] = -2.0 * math.pi**2 * oc * duI[k]
            else:
                dA[r, c] = -8.0 * math.pi**2 * s * s * gR * oc
                if want_imag:
                    dB[r, c] = -8.0 * math.pi**2 * s * s * gI * oc
            c += n_adp[a]
            dA[r, c] = gR
            if want_imag:
                dB[r, c] = gI
            c += 1
            if v < 0:
                continue
            eR = two * cs * oc
            eI = 0.0 if centric else ss * oc
            dA[r, c] = eR * fv[v, n]
            kfac = pv[v] * dfv[v, n] * (-s / kappa[v] ** 2)
            dA[r, c + 1] = eR * kfac
            if want_imag:
                dB[r, c] = eI * fv[v, n]
                dB[r, c + 1] = eI * kfac
            c += 2
            if L == 0:
                continue
            for l in range(L):
                w = jl_l[l] * (oc * two)
                for k in range(l * l, (l + 1) * (l + 1)):
                    dA[r, c + k] = accR[k] * w
                    if want_imag:
                        dB[r, c + k] = 0.0 if centric else accI[k] * w
            c += L * L
            dA[r, c] = two * dkR * oc
            if want_imag:
                dB[r, c] = 0.0 if centric else dkI * oc
        F[n] = complex(f_re, f_im)


@_jit
def _ipow(a: float, p: int) -> float:  # pragma: no cover - compiled
    """a**p (p >= 1) by the squarings of engine._int_power, in the same order."""
    out = 0.0
    have = False
    base = a
    while True:
        if p & 1:
            out = out * base if have else base
            have = True
        p >>= 1
        if p == 0:
            return out
        base = base * base


@_jit
def _poly(coef: np.ndarray, off: int, n: int, t: float) -> float:  # pragma: no cover - compiled
    """sum_k coef[off + k] t^k by Horner's rule, in the order of engine._horner."""
    if n == 1:
        c0: float = coef[off]
        return c0
    out: float = coef[off + n - 1] * t
    out += coef[off + n - 2]
    for k in range(n - 3, -1, -1):
        out *= t
        out += coef[off + k]
    return out


@_jit
def radial_block(
    r0: int,
    r1: int,
    K: np.ndarray,
    ls: np.ndarray,
    power: np.ndarray,
    zk: np.ndarray,
    kp: np.ndarray,
    voff: np.ndarray,
    vlen: np.ndarray,
    soff: np.ndarray,
    slen: np.ndarray,
    vcoef: np.ndarray,
    scoef: np.ndarray,
    derivative: bool,
    jl: np.ndarray,
    djl: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Radial tables <j_l>(K) (and d/dkappa') of reflections r0 <= n < r1, row by row.

    Column n - r0 of jl (djl) is reflection n.

    Row j is the Slater-Bessel transform of engine._slater_bessel_kappa with
    l = ls[j], zeta kappa' = zk[j], kappa' = kp[j], its polynomials at
    vcoef[voff[j]:][:vlen[j]] and scoef[soff[j]:][:slen[j]] and x^power[j]:
    the same operations in the same order, hence the same numbers.
    """
    for j in range(ls.shape[0]):
        l = ls[j]
        z = zk[j]
        for n in range(r0, r1):
            k = K[n]
            inv = math.sqrt(k * k + z * z)
            inv = 1.0 / inv
            x = z * inv
            y = k * inv
            front = _ipow(x, power[j])
            if l:
                front *= _ipow(y, l)
            t = x * x
            p = _poly(vcoef, voff[j], vlen[j], t)
            jl[j, n - r0] = front * p
            if derivative:
                b = _poly(scoef, soff[j], slen[j], t) * (y * y)
                if l:
                    b -= l * t * p
                djl[j, n - r0] = (front / kp[j]) * b


_SCATTER_SIGNATURE = (
    "void(f8[:, :], f8[:, :], intp[::1], intp[::1], f8[::1], f8[::1], int64, f8[:, :], f8[:, :])"
)


_COMPILE_LOCK = threading.Lock()


_SCATTER_READY = [False]  # compiled (reading the dispatcher's signatures costs ~50 µs a call)


def scatter(
    dA: np.ndarray,
    dB: np.ndarray,
    target_re: np.ndarray,
    target_im: np.ndarray,
    ga: np.ndarray,
    gb: np.ndarray,
    mode: int,
    out_re: np.ndarray,
    out_im: np.ndarray,
) -> None:
    """:func:`_scatter`, compiled once for arrays of any layout (not once per layout)."""
    if HAVE_NUMBA and not _SCATTER_READY[0]:
        with _COMPILE_LOCK:  # the engine's threads may all arrive here first
            dispatcher: Any = _scatter  # numba's dispatcher (mypy sees the Python function)
            if not dispatcher.signatures:
                dispatcher.compile(_SCATTER_SIGNATURE)
                dispatcher.disable_compile()
            _SCATTER_READY[0] = True
    _scatter(dA, dB, target_re, target_im, ga, gb, int(mode), out_re, out_im)


@_jit
def _scatter(
    dA: np.ndarray,
    dB: np.ndarray,
    target_re: np.ndarray,
    target_im: np.ndarray,
    ga: np.ndarray,
    gb: np.ndarray,
    mode: int,
    out_re: np.ndarray,
    out_im: np.ndarray,
) -> None:  # pragma: no cover
    # (compiled)
    """Copy engine columns of a block into output columns.

    mode 0: out_re[:, target_re[c]] = dA[:, c] and, when out_im has rows,
    out_im[:, target_im[c]] = dB[:, c]; mode 1: out_re[:, target_re[c]] =
    ga dA[:, c] + gb dB[:, c] (gb and dB unused when dB has no rows); mode 2:
    as 1 without dB. Targets < 0 are skipped.
    """
    nrow = dA.shape[0]
    n_e = dA.shape[1]
    for r in range(nrow):
        if mode == 0:
            for c in range(n_e):
                t = target_re[c]
                if t >= 0:
                    out_re[r, t] = dA[r, c]
            if out_im.shape[0] > 0:
                for c in range(n_e):
                    t = target_im[c]
                    if t >= 0:
                        out_im[r, t] = dB[r, c]
        elif mode == 1:
            a = ga[r]
            b = gb[r]
            for c in range(n_e):
                t = target_re[c]
                if t >= 0:
                    out_re[r, t] = a * dA[r, c] + b * dB[r, c]
        else:
            a = ga[r]
            for c in range(n_e):
                t = target_re[c]
                if t >= 0:
                    out_re[r, t] = a * dA[r, c]

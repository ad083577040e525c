"""Compiled (numba) kernels of the structure-factor engine.

The numpy path of :class:`chasm.scattering.engine.StructureFactorEngine` works
on arrays of (operation, reflection, atom) and pays Python dispatch for every
block, l and column group. These kernels do the same sums in compiled code;
they release the GIL, so the engine runs them on disjoint ranges of
reflections in several threads at once. For every atom and every operation
they form, over a chunk of reflections at a time (loops over contiguous
arrays that the compiler vectorises), the Debye–Waller factor, the phase
(products of the per-atom tables exp(2πi k x_c), as the numpy path does), the
real harmonics of the rotated scattering vector (explicit polynomials, those
of :mod:`chasm.density.harmonics`), the form factor, F and, on request, every
Jacobian column of the atom (the engine's column layout, see
:func:`chasm.scattering.engine.atom_columns`). Each reflection sees the same
operations in the same order as in a loop over single reflections, and no
``fastmath`` is used: the numbers do not depend on the chunking or the
threads. The formulas are those of the engine's module docstring; the numpy
path stays the reference (tests compare the two to 1e-12, and
``CHASM_ENGINE=numpy`` selects it).

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
def _harmonics_v(
    px: np.ndarray,
    py: np.ndarray,
    pz: np.ndarray,
    m: int,
    lmax: int,
    coef: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """out[k, r] = coef[k] poly_k(u_r), k < (lmax+1)², for m unit vectors u_r = (px, py, pz)[r].

    poly_k are the polynomials of :func:`chasm.density.harmonics._evaluate`
    (the real harmonics up to their normalisation), one loop over the vectors
    per l so that the compiler vectorises it.
    """
    for r in range(m):
        out[0, r] = coef[0]
    if lmax < 1:
        return
    for r in range(m):
        x = px[r]
        y = py[r]
        z = pz[r]
        out[1, r] = z * coef[1]
        out[2, r] = x * coef[2]
        out[3, r] = y * coef[3]
    if lmax < 2:
        return
    for r in range(m):
        x = px[r]
        y = py[r]
        z = pz[r]
        z2 = z * z
        xy = x * y
        x2my2 = x * x - y * y
        out[4, r] = 3.0 * coef[4] * z2 - coef[4]
        out[5, r] = (x * z) * coef[5]
        out[6, r] = (y * z) * coef[6]
        out[7, r] = x2my2 * coef[7]
        out[8, r] = xy * coef[8]
    if lmax < 3:
        return
    for r in range(m):
        x = px[r]
        y = py[r]
        z = pz[r]
        z2 = z * z
        xy = x * y
        x2my2 = x * x - y * y
        f = 5.0 * z2 - 3.0
        out[9, r] = f * z * coef[9]
        f1 = 5.0 * z2 - 1.0
        out[10, r] = f1 * coef[10] * x
        out[11, r] = f1 * coef[11] * y
        out[12, r] = x2my2 * z * coef[12]
        out[13, r] = xy * z * coef[13]
        x2 = x * x
        y2 = y * y
        out[14, r] = ((x2 - 3.0 * y2) * x) * coef[14]
        out[15, r] = ((3.0 * x2 - y2) * y) * coef[15]
    if lmax < 4:
        return
    for r in range(m):  # (l = 4 in two loops: few enough stores for the vectoriser)
        x = px[r]
        y = py[r]
        z = pz[r]
        z2 = z * z
        xz = x * z
        yz = y * z
        xy = x * y
        x2my2 = x * x - y * y
        out[16, r] = ((35.0 * z2 - 30.0) * z2 + 3.0) * coef[16]
        g = 7.0 * z2 - 3.0
        out[17, r] = g * coef[17] * xz
        out[18, r] = g * coef[18] * yz
        g = 7.0 * z2 - 1.0
        out[19, r] = g * x2my2 * coef[19]
        out[20, r] = g * xy * coef[20]
    for r in range(m):
        x = px[r]
        y = py[r]
        z = pz[r]
        xy = x * y
        x2my2 = x * x - y * y
        x2 = x * x
        y2 = y * y
        a3x = (x2 - 3.0 * y2) * x
        b3y = (3.0 * x2 - y2) * y
        out[21, r] = a3x * z * coef[21]
        out[22, r] = b3y * z * coef[22]
        out[23, r] = (x2my2 * x2my2 - 4.0 * xy * xy) * coef[23]
        out[24, r] = xy * x2my2 * coef[24]


#: reflections a Jacobian kernel works on at once (its per-reflection arrays stay in L1/L2)
CHUNK = 64


@_jit
def sf_block(
    r0: int,
    r1: int,
    hsT: np.ndarray,
    quadT: np.ndarray,
    stol: np.ndarray,
    kidx: np.ndarray,
    tabR: np.ndarray,
    tabI: np.ndarray,
    ehtR: np.ndarray,
    ehtI: np.ndarray,
    htc: np.ndarray,
    use_tables: bool,
    uhatT: np.ndarray,
    X: np.ndarray,
    occ: np.ndarray,
    aniso: np.ndarray,
    U6: np.ndarray,
    uiso: np.ndarray,
    site_order: np.ndarray,
    fa_re: np.ndarray,
    fa_im: np.ndarray,
    fixed: np.ndarray,
    pc: np.ndarray,
    pv_a: np.ndarray,
    hc_of: np.ndarray,
    lmax_of: np.ndarray,
    val_of: np.ndarray,
    col0: np.ndarray,
    n_adp: np.ndarray,
    rot: np.ndarray,
    plm: np.ndarray,
    wrot: np.ndarray,
    ylmT: np.ndarray,
    cnorm: np.ndarray,
    sign_l: np.ndarray,
    jl: np.ndarray,
    djl: np.ndarray,
    joff: int,
    rad_index: np.ndarray,
    fv: np.ndarray,
    dfv: np.ndarray,
    vrow: np.ndarray,
    pv: np.ndarray,
    kappa: np.ndarray,
    centric: bool,
    jacobian: bool,
    want_imag: bool,
    F: np.ndarray,
    dA: np.ndarray,
    dB: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """F (and the Jacobian) of reflections r0 <= n < r1, vectorised over reflections.

    F[n] is overwritten; with ``jacobian`` row n - r0 of dA (dB: with
    ``want_imag``) gets dA/dp (dB/dp) of every engine column. For every atom
    and operation each quantity is a loop over up to :data:`CHUNK`
    reflections on contiguous arrays (the compiler makes SIMD code of it);
    every reflection sees the same operations in the same order as in a
    reflection-by-reflection loop. Arrays as the engine prepares them
    (``StructureFactorEngine._kernel_args``), reflections last: hsT (o, 3, n)
    the rows h R, quadT (o, 6, n), kidx (3, o, n), tabR, tabI (3, atom, k)
    the phase tables exp(2 pi i k x_c), ehtR, ehtI (o, n) exp(2 pi i h.t)
    (direct phases from hsT when not use_tables), uhatT (3, n), fixed (atom,
    n) the fixed spherical form factors (the core of a multipolar atom), pc
    and pv_a (atom) its P_c and P_v, rot (o, n_hc, 3, 3) the matrices M^T
    Q_o, plm (n_hc, 25) P_lm, wrot (o, n_hc, 25) c_lm P_lm rotated onto y(h)
    and ylmT (25, n) y(h) (F alone), cnorm (25) c_lm N_lm (the harmonics'
    coefficients), jl/djl (rows, n') radial tables whose column n - joff is
    reflection n, with rad_index (lmax+1, n_hc), fv/dfv (rows, n) the valence
    form factors f_v(s / kappa) and their slopes, row vrow[v] for the v-th
    multipolar atom, pv and kappa (v) its P_v and kappa.
    """
    n_ops = hsT.shape[0]
    n_at = X.shape[0]
    two = 2.0 if centric else 1.0
    anomalous = False
    for a in range(n_at):
        if fa_re[a] != 0.0 or fa_im[a] != 0.0:
            anomalous = True
    M = CHUNK
    yr = np.empty((25, M))
    ang = np.empty((5, M))
    jl_l = np.empty((5, M))
    djl_l = np.empty((5, M))
    # sums over the operations: dx (3), du (6), y_lm sums (25), real then imaginary parts,
    # then g, C, dk (real, imaginary)
    acc = np.empty((2, 37, M))
    accR, accI = acc[0], acc[1]  # rows: x 0-2, U 3-8, y_lm 9-33, g 34, C 35, dk 36
    gR, gI = accR[34], accI[34]
    v1 = np.empty((16, M))
    Tv, Cv, Sv, px, py, pz, mR, mI = v1[0], v1[1], v1[2], v1[3], v1[4], v1[5], v1[6], v1[7]
    GuR, GuI, GxR, GxI, f_re, f_im, Tiso, ev = (
        v1[8],
        v1[9],
        v1[10],
        v1[11],
        v1[12],
        v1[13],
        v1[14],
        v1[15],
    )
    pi2 = math.pi**2
    for c0 in range(r0, r1, M):
        m = min(M, r1 - c0)
        q0 = c0 - r0  # first row of the chunk in dA, dB
        _zero(v1, 12, 14, m)  # f_re, f_im
        for a in range(n_at):
            h = hc_of[a]
            L = lmax_of[a] + 1 if h >= 0 else 0
            oc = occ[a]
            v = val_of[a]
            vr = vrow[v] if v >= 0 else 0  # its valence row in fv, dfv
            pca = pc[a]
            pva = pv_a[a]
            so = site_order[a]
            far = fa_re[a]
            fai = fa_im[a]
            for l in range(L):
                i = rad_index[l, h]
                w = FOUR_PI * sign_l[l]
                for r in range(m):
                    jl_l[l, r] = w * jl[i, c0 - joff + r]
                if jacobian:
                    for r in range(m):
                        djl_l[l, r] = w * djl[i, c0 - joff + r]
            nz = 9 + L * L  # rows x, U, y_lm in use
            _zero(accR, 0, nz, m)
            _zero(accR, 34, 37, m)
            _zero(accI, 34, 37, m)
            if want_imag or not centric:
                _zero(accI, 0, nz, m)
            if not aniso[a]:
                for r in range(m):
                    s = stol[c0 + r]
                    Tiso[r] = -8.0 * pi2 * s * s * uiso[a]
                for r in range(m):
                    Tiso[r] = math.exp(Tiso[r]) / so
            for o in range(n_ops):
                # Debye-Waller factor and phase: (C + i S) = T exp(2 pi i h.(R x + t))
                if aniso[a]:
                    for r in range(m):
                        e = 0.0
                        for k in range(6):
                            e += quadT[o, k, c0 + r] * U6[a, k]
                        ev[r] = -2.0 * pi2 * e
                    for r in range(m):
                        Tv[r] = math.exp(ev[r]) / so
                else:
                    for r in range(m):
                        Tv[r] = Tiso[r]
                if use_tables:
                    for r in range(m):
                        n = c0 + r
                        i0 = kidx[0, o, n]
                        i1 = kidx[1, o, n]
                        i2 = kidx[2, o, n]
                        aR = tabR[0, a, i0]
                        aI = tabI[0, a, i0]
                        bR = tabR[1, a, i1]
                        bI = tabI[1, a, i1]
                        pR = aR * bR - aI * bI
                        pI = aR * bI + aI * bR
                        bR = tabR[2, a, i2]
                        bI = tabI[2, a, i2]
                        qR = pR * bR - pI * bI
                        qI = pR * bI + pI * bR
                        bR = ehtR[o, n]
                        bI = ehtI[o, n]
                        Cv[r] = (qR * bR - qI * bI) * Tv[r]
                        Sv[r] = (qR * bI + qI * bR) * Tv[r]
                else:
                    for r in range(m):
                        n = c0 + r
                        t = hsT[o, 0, n] * X[a, 0] + hsT[o, 1, n] * X[a, 1] + hsT[o, 2, n] * X[a, 2]
                        t = TWO_PI * (t - np.rint(t))
                        qR = math.cos(t)
                        qI = math.sin(t)
                        bR = ehtR[o, n]
                        bI = ehtI[o, n]
                        Cv[r] = (qR * bR - qI * bI) * Tv[r]
                        Sv[r] = (qR * bI + qI * bR) * Tv[r]
                # form factor f = fR + i fI (odd l imaginary), y of the rotated h
                for r in range(m):
                    mR[r] = 0.0
                    mI[r] = 0.0
                if L > 0 and not jacobian:  # rotated populations on y(h)
                    _zero(ang, 0, L, m)
                    for l in range(L):
                        for k in range(l * l, (l + 1) * (l + 1)):
                            wk = wrot[o, h, k]
                            for r in range(m):
                                ang[l, r] += ylmT[k, c0 + r] * wk
                        _madd(mR if l % 2 == 0 else mI, ang, jl_l, l, m)
                elif L > 0:  # y(rotated h), also for the P_lm columns
                    for r in range(m):
                        n = c0 + r
                        ux = uhatT[0, n]
                        uy = uhatT[1, n]
                        uz = uhatT[2, n]
                        px[r] = rot[o, h, 0, 0] * ux + rot[o, h, 0, 1] * uy + rot[o, h, 0, 2] * uz
                        py[r] = rot[o, h, 1, 0] * ux + rot[o, h, 1, 1] * uy + rot[o, h, 1, 2] * uz
                        pz[r] = rot[o, h, 2, 0] * ux + rot[o, h, 2, 1] * uy + rot[o, h, 2, 2] * uz
                    _harmonics_v(px, py, pz, m, L - 1, cnorm, yr)  # c_lm y_lm
                    for l in range(L):
                        for r in range(m):
                            ang[l, r] = 0.0
                        for k in range(l * l, (l + 1) * (l + 1)):
                            p = plm[h, k]
                            for r in range(m):
                                ang[l, r] += p * yr[k, r]
                        if l % 2 == 0:
                            for r in range(m):
                                mR[r] += ang[l, r] * jl_l[l, r]
                        else:
                            for r in range(m):
                                mI[r] += ang[l, r] * jl_l[l, r]
                for r in range(m):  # f_sph = P_c f_fixed + P_v f_v, as the numpy path
                    n = c0 + r
                    fR = fixed[a, n] if v < 0 else pca * fixed[a, n] + pva * fv[vr, n]
                    fR += mR[r]
                    fI = mI[r] if L > 0 else 0.0
                    GuR[r] = Cv[r] * fR - Sv[r] * fI  # XR
                    GuI[r] = Sv[r] * fR + Cv[r] * fI  # XI
                # the derivative factors of the pair (centric) or of the operation
                if centric:
                    for r in range(m):
                        XR = GuR[r]
                        XI = GuI[r]
                        GuR[r] = 2.0 * XR
                        GuI[r] = 0.0
                        GxR[r] = -2.0 * XI
                        GxI[r] = 0.0
                    if anomalous:
                        for r in range(m):
                            GuR[r] += 2.0 * far * Cv[r]
                            GuI[r] = 2.0 * fai * Cv[r]
                            GxR[r] -= 2.0 * far * Sv[r]
                            GxI[r] = -2.0 * fai * Sv[r]
                else:
                    if anomalous:
                        for r in range(m):
                            GuR[r] += far * Cv[r] - fai * Sv[r]
                            GuI[r] += far * Sv[r] + fai * Cv[r]
                    for r in range(m):
                        GxR[r] = -GuI[r]
                        GxI[r] = GuR[r]
                if not jacobian:
                    for r in range(m):
                        gR[r] += GuR[r]
                        gI[r] += GuI[r]
                    continue
                _accumulate(o, c0, m, L, aniso[a], centric, want_imag, hsT, quadT, v1, acc)
                _accumulate_kappa(m, L, centric, v1, ang, djl_l, yr, acc)
            for r in range(m):
                f_re[r] += oc * gR[r]
                f_im[r] += oc * gI[r]
            if jacobian:
                _atom_columns(
                    q0,
                    c0,
                    m,
                    col0[a],
                    n_adp[a],
                    aniso[a],
                    v,
                    vr,
                    L,
                    oc,
                    two,
                    centric,
                    want_imag,
                    stol,
                    fv,
                    dfv,
                    pv,
                    kappa,
                    jl_l,
                    acc,
                    dA,
                    dB,
                )
        for r in range(m):
            F[c0 + r] = complex(f_re[r], f_im[r])


@_jit
def _accumulate(
    o: int,
    c0: int,
    m: int,
    L: int,
    aniso: bool,
    centric: bool,
    want_imag: bool,
    hsT: np.ndarray,
    quadT: np.ndarray,
    v1: np.ndarray,
    acc: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Add operation o's terms to the atom's sums over the operations (:func:`sf_block`).

    v1 rows: 1, 2 C, S; 8-11 the factors GuR, GuI, GxR, GxI. acc (2, 37, m):
    real and imaginary parts of x (rows 0-2), U (3-8), g (34), C or S (35).
    """
    accR = acc[0]
    accI = acc[1]
    for r in range(m):
        accR[34, r] += v1[8, r]
        accI[34, r] += v1[9, r]
        accR[35, r] += v1[1, r]
        accI[35, r] += v1[2, r]
    for k in range(3):
        for r in range(m):
            accR[k, r] += hsT[o, k, c0 + r] * v1[10, r]
    if aniso:
        for k in range(6):
            for r in range(m):
                accR[3 + k, r] += quadT[o, k, c0 + r] * v1[8, r]
    if want_imag:
        for k in range(3):
            for r in range(m):
                accI[k, r] += hsT[o, k, c0 + r] * v1[11, r]
        if aniso:
            for k in range(6):
                for r in range(m):
                    accI[3 + k, r] += quadT[o, k, c0 + r] * v1[9, r]


@_jit
def _accumulate_kappa(
    m: int,
    L: int,
    centric: bool,
    v1: np.ndarray,
    ang: np.ndarray,
    djl_l: np.ndarray,
    yr: np.ndarray,
    acc: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Add an operation's terms to the P_lm (acc rows 9-33) and kappa' (row 36) sums.

    v1 rows 1, 2 are C, S; rows 6, 7 are work space.
    """
    if L == 0:
        return
    accR = acc[0]
    accI = acc[1]
    for r in range(m):  # sums of the kappa' derivative
        v1[6, r] = 0.0
        v1[7, r] = 0.0
    for l in range(L):
        k0 = l * l
        k1 = k0 + 2 * l + 1
        if l % 2 == 0:
            for r in range(m):
                v1[6, r] += djl_l[l, r] * ang[l, r]
            for k in range(k0, k1):
                for r in range(m):
                    accR[9 + k, r] += v1[1, r] * yr[k, r]
            if not centric:
                for k in range(k0, k1):
                    for r in range(m):
                        accI[9 + k, r] += v1[2, r] * yr[k, r]
        else:
            for r in range(m):
                v1[7, r] += djl_l[l, r] * ang[l, r]
            for k in range(k0, k1):
                for r in range(m):
                    accR[9 + k, r] -= v1[2, r] * yr[k, r]
            if not centric:
                for k in range(k0, k1):
                    for r in range(m):
                        accI[9 + k, r] += v1[1, r] * yr[k, r]
    for r in range(m):
        C = v1[1, r]
        S = v1[2, r]
        accR[36, r] += C * v1[6, r] - S * v1[7, r]
        accI[36, r] += S * v1[6, r] + C * v1[7, r]


@_jit
def _atom_columns(
    q0: int,
    c0: int,
    m: int,
    c: int,
    n_adp: int,
    aniso: bool,
    v: int,
    w: int,
    L: int,
    oc: float,
    two: float,
    centric: bool,
    want_imag: bool,
    stol: np.ndarray,
    fv: np.ndarray,
    dfv: np.ndarray,
    pv: np.ndarray,
    kappa: np.ndarray,
    jl_l: np.ndarray,
    acc: np.ndarray,
    dA: np.ndarray,
    dB: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Write one atom's Jacobian columns (from column c) to a chunk's rows q0, q0 + 1, ...

    The sums over the operations are those of :func:`sf_block` (acc), the
    column layout the engine's (:func:`chasm.scattering.engine.atom_columns`).
    """
    pi2 = math.pi**2
    accR = acc[0]
    accI = acc[1]
    _put(dA, q0, c, TWO_PI * oc, accR, 0, 3, m)
    if want_imag:
        _put(dB, q0, c, TWO_PI * oc, accI, 0, 3, m)
    c += 3
    if aniso:
        _put(dA, q0, c, -2.0 * pi2 * oc, accR, 3, 6, m)
        if want_imag:
            _put(dB, q0, c, -2.0 * pi2 * oc, accI, 3, 6, m)
    else:
        for r in range(m):
            s = stol[c0 + r]
            dA[q0 + r, c] = -8.0 * pi2 * s * s * accR[34, r] * oc
        if want_imag:
            for r in range(m):
                s = stol[c0 + r]
                dB[q0 + r, c] = -8.0 * pi2 * s * s * accI[34, r] * oc
    c += n_adp
    _put(dA, q0, c, 1.0, accR, 34, 1, m)  # occupancy: g
    if want_imag:
        _put(dB, q0, c, 1.0, accI, 34, 1, m)
    c += 1
    if v < 0:
        return
    for r in range(m):
        n = c0 + r
        eR = two * accR[35, r] * oc
        dA[q0 + r, c] = eR * fv[w, n]
        dA[q0 + r, c + 1] = eR * (pv[v] * dfv[w, n] * (-stol[n] / kappa[v] ** 2))
    if want_imag:
        for r in range(m):
            n = c0 + r
            eI = 0.0 if centric else accI[35, r] * oc
            dB[q0 + r, c] = eI * fv[w, n]
            dB[q0 + r, c + 1] = eI * (pv[v] * dfv[w, n] * (-stol[n] / kappa[v] ** 2))
    c += 2
    if L == 0:
        return
    for l in range(L):
        for k in range(l * l, (l + 1) * (l + 1)):
            for r in range(m):
                dA[q0 + r, c + k] = accR[9 + k, r] * (jl_l[l, r] * (oc * two))
            if want_imag:
                for r in range(m):
                    dB[q0 + r, c + k] = (
                        0.0 if centric else accI[9 + k, r] * (jl_l[l, r] * (oc * two))
                    )
    c += L * L
    _put(dA, q0, c, two * oc, accR, 36, 1, m)  # kappa': (two dk) oc = (two oc) dk
    if want_imag:
        _put(dB, q0, c, 0.0 if centric else oc, accI, 36, 1, m)


@_jit
def _zero(a: np.ndarray, k0: int, k1: int, m: int) -> None:  # pragma: no cover - compiled
    """a[k, :m] = 0 for k0 <= k < k1."""
    for k in range(k0, k1):
        for r in range(m):
            a[k, r] = 0.0


@_jit
def _madd(
    acc: np.ndarray, x: np.ndarray, y: np.ndarray, l: int, m: int
) -> None:  # pragma: no cover
    """acc[r] += x[l, r] y[l, r] for r < m (compiled)."""
    for r in range(m):
        acc[r] += x[l, r] * y[l, r]


@_jit
def _put(
    out: np.ndarray, q0: int, c: int, f: float, v: np.ndarray, j0: int, nk: int, m: int
) -> None:  # pragma: no cover - compiled
    """out[q0 + r, c + k] = f v[j0 + k, r] for k < nk, r < m."""
    for k in range(nk):
        for r in range(m):
            out[q0 + r, c + k] = f * v[j0 + k, r]


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
    nb = r1 - r0
    w = np.empty((7, nb))
    x, y, t, front, base, p, b = w[0], w[1], w[2], w[3], w[4], w[5], w[6]
    for j in range(ls.shape[0]):
        l = ls[j]
        z = zk[j]
        for r in range(nb):  # (each step a loop over the block: vectorised)
            k = K[r0 + r]
            inv = math.sqrt(k * k + z * z)
            inv = 1.0 / inv
            x[r] = z * inv
            y[r] = k * inv
            t[r] = x[r] * x[r]
        _ipow_v(x, power[j], base, front, nb, False)
        if l:
            _ipow_v(y, l, base, front, nb, True)
        _poly_v(vcoef, voff[j], vlen[j], t, p, nb)
        for r in range(nb):
            jl[j, r] = front[r] * p[r]
        if derivative:
            _poly_v(scoef, soff[j], slen[j], t, b, nb)
            kpj = kp[j]
            for r in range(nb):
                bb = b[r] * (y[r] * y[r])
                if l:
                    bb -= l * t[r] * p[r]
                djl[j, r] = (front[r] / kpj) * bb


@_jit
def _ipow_v(
    a: np.ndarray, power: int, base: np.ndarray, out: np.ndarray, m: int, multiply: bool
) -> None:  # pragma: no cover - compiled
    """out[r] = a[r]**power (times out[r] when ``multiply``) by :func:`_ipow`'s squarings."""
    for r in range(m):
        base[r] = a[r]
    have = False
    q = power
    tmp = out if not multiply else np.empty(m)
    while True:
        if q & 1:
            if have:
                for r in range(m):
                    tmp[r] = tmp[r] * base[r]
            else:
                for r in range(m):
                    tmp[r] = base[r]
            have = True
        q >>= 1
        if q == 0:
            break
        for r in range(m):
            base[r] = base[r] * base[r]
    if not have:  # power 0 (not used): 0, as _ipow
        for r in range(m):
            tmp[r] = 0.0
    if multiply:
        for r in range(m):
            out[r] *= tmp[r]


@_jit
def _poly_v(
    coef: np.ndarray, off: int, n: int, t: np.ndarray, out: np.ndarray, m: int
) -> None:  # pragma: no cover - compiled
    """out[r] = :func:`_poly` (coef, off, n, t[r]): Horner's rule, the same operations."""
    if n == 1:
        for r in range(m):
            out[r] = coef[off]
        return
    c1 = coef[off + n - 1]
    c0 = coef[off + n - 2]
    for r in range(m):
        out[r] = c1 * t[r]
        out[r] += c0
    for k in range(n - 3, -1, -1):
        ck = coef[off + k]
        for r in range(m):
            out[r] *= t[r]
            out[r] += ck


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

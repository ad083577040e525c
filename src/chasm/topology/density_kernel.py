"""Compiled (numba) sums of the static density (or short-range potential) over atom copies.

:class:`chasm.topology.density_derivatives.DensityField` evaluates, at every
point, the sum over the atom copies within their cut-off radius of spherical
terms f(r) and multipole channels S_l(r) A_l(u). Its numpy path builds arrays
of (copy, point) pairs and pays Python dispatch per atom, block and l; the
kernel here does the same sums point by point in compiled code:

* for a point x (fractional) and a site s of an atom with cut-off R, the
  lattice shifts n with |A(x − s − n)| ≤ R are enumerated inside the
  fractional box |x − s − n|_i ≤ R |a*_i| (a*_i the rows of A⁻¹), so no
  candidate list is built;
* spherical terms are read from the quintic tables of
  :mod:`chasm.topology.radial_table` (the same interpolation formulas), with
  the multipliers scale κ³, κ⁴, κ⁵ of g(κr) and its r-derivatives;
* a multipole channel is a radial function (a Slater function N r^n e^(−ζr),
  or a table for the short-ranged potential) times the polynomial
  A_l(u) = Σ_m c_m x^a y^b z^c of the unit vector, with the same chain rule
  as :func:`chasm.topology.density_derivatives.radial_times_angular`;
* the potential's nucleus term Z erfc(r/√2σ)/r (own charge left out within
  1e-6 Å) is done at order 0 only (the numpy path does the derivatives).

The kernel releases the GIL: blocks of points run on several threads.
The numpy path stays the reference (tests compare the two to 1e-10 relative;
``CHASM_ENGINE=numpy`` selects it, as for the structure-factor engine).
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from chasm.topology.harmonic_derivatives import monomial_basis

try:  # numba is a runtime dependency; the numpy path works without it
    import numba

    HAVE_NUMBA = True
except ImportError:  # pragma: no cover - exercised only without numba
    numba = None
    HAVE_NUMBA = False

__all__ = ["HAVE_NUMBA", "PackedField", "use_kernel"]

_EXPS, _ = monomial_basis(4)
# monomials of degree <= l come first (monomial_basis sorts by degree)
_N_DEG = np.array([int(np.sum(_EXPS.sum(axis=1) <= l)) for l in range(5)], dtype=np.int64)
_POOL: dict = {}
_BLOCK = 256  # points per task


def use_kernel() -> bool:
    """True when numba is installed and ``CHASM_ENGINE`` does not ask for numpy."""
    return HAVE_NUMBA and os.environ.get("CHASM_ENGINE", "").strip().lower() != "numpy"


def _jit(fn):
    if not HAVE_NUMBA:
        return fn
    return numba.njit(nogil=True, cache=True)(fn)


@_jit
def _table(x, ti, order, tab_coef, tab_off, tab_len, tab_h, tab_c, out):  # pragma: no cover
    """out[0:3] = g, g', g'' of table ti at x (zero beyond its end)."""
    out[0] = 0.0
    out[1] = 0.0
    out[2] = 0.0
    n = tab_len[ti]
    if n == 0:
        return
    h = tab_h[ti]
    c = tab_c[ti]
    tt = math.log1p(x / c) / h
    i = int(tt)
    if i > n - 1:
        i = n - 1
    t = tt - i
    j = tab_off[ti] + i
    a0 = tab_coef[0, j]
    a1 = tab_coef[1, j]
    a2 = tab_coef[2, j]
    a3 = tab_coef[3, j]
    a4 = tab_coef[4, j]
    a5 = tab_coef[5, j]
    out[0] = a0 + t * (a1 + t * (a2 + t * (a3 + t * (a4 + t * a5))))
    if order < 1:
        return
    F1 = a1 + t * (2 * a2 + t * (3 * a3 + t * (4 * a4 + t * 5 * a5)))
    s = c + x
    dt = 1.0 / (h * s)
    out[1] = F1 * dt
    if order < 2:
        return
    F2 = 2 * a2 + t * (6 * a3 + t * (12 * a4 + t * 20 * a5))
    out[2] = F2 * dt * dt - F1 * dt / s


@_jit
def _monomials(ux, uy, uz, nmono, exps, order, mono, pw):  # pragma: no cover
    """mono[m] = value, ∂x, ∂y, ∂z, ∂xx, ∂yy, ∂zz, ∂xy, ∂xz, ∂yz of x^a y^b z^c (pw: scratch)."""
    p = pw[0]
    d1 = pw[1]
    d2 = pw[2]
    for c in range(3):
        x = ux if c == 0 else (uy if c == 1 else uz)
        p[c, 0] = 1.0
        for k in range(1, 5):
            p[c, k] = p[c, k - 1] * x
        if order >= 1:
            for k in range(1, 5):
                d1[c, k] = k * p[c, k - 1]
        if order >= 2:
            for k in range(2, 5):
                d2[c, k] = k * (k - 1) * p[c, k - 2]
    for m in range(nmono):
        a = exps[m, 0]
        b = exps[m, 1]
        e = exps[m, 2]
        mono[m, 0] = p[0, a] * p[1, b] * p[2, e]
        if order >= 1:
            mono[m, 1] = d1[0, a] * p[1, b] * p[2, e]
            mono[m, 2] = p[0, a] * d1[1, b] * p[2, e]
            mono[m, 3] = p[0, a] * p[1, b] * d1[2, e]
        if order >= 2:
            mono[m, 4] = d2[0, a] * p[1, b] * p[2, e]
            mono[m, 5] = p[0, a] * d2[1, b] * p[2, e]
            mono[m, 6] = p[0, a] * p[1, b] * d2[2, e]
            mono[m, 7] = d1[0, a] * d1[1, b] * p[2, e]
            mono[m, 8] = d1[0, a] * p[1, b] * d1[2, e]
            mono[m, 9] = p[0, a] * d1[1, b] * d1[2, e]


@_jit
def _add_radial_angular(S, S1, S2, ang, u, r, order, acc, work):  # pragma: no cover
    """acc += value, gradient, Hessian (in v = r u) of S(r) A(u); ang as a mono row.

    work : scratch, shape (5, 3, 3).
    """
    A = ang[0]
    acc[0] += S * A
    if order < 1:
        return
    g = work[0, 0]
    gv = work[0, 1]
    g[0] = ang[1]
    g[1] = ang[2]
    g[2] = ang[3]
    ug = u[0] * g[0] + u[1] * g[1] + u[2] * g[2]
    for i in range(3):
        gv[i] = (g[i] - u[i] * ug) / r
        acc[1 + i] += S1 * A * u[i] + S * gv[i]
    if order < 2:
        return
    Hu = work[1]
    P = work[2]
    T = work[3]
    Hu[0, 0] = ang[4]
    Hu[1, 1] = ang[5]
    Hu[2, 2] = ang[6]
    Hu[0, 1] = ang[7]
    Hu[1, 0] = ang[7]
    Hu[0, 2] = ang[8]
    Hu[2, 0] = ang[8]
    Hu[1, 2] = ang[9]
    Hu[2, 1] = ang[9]
    for i in range(3):
        for j in range(3):
            P[i, j] = (1.0 if i == j else 0.0) - u[i] * u[j]
    for i in range(3):
        for j in range(3):
            s = 0.0
            for k in range(3):
                s += Hu[i, k] * P[k, j]
            T[i, j] = s
    k = 4
    for i in range(3):
        for j in range(i, 3):
            phq = 0.0
            for q in range(3):
                phq += P[i, q] * T[q, j]
            hv = phq - (
                g[i] * u[j] + u[i] * g[j] + ug * (1.0 if i == j else 0.0) - 3.0 * ug * u[i] * u[j]
            )
            hv /= r * r
            cross = u[i] * gv[j] + gv[i] * u[j]
            acc[k] += S2 * A * u[i] * u[j] + (S1 * A / r) * P[i, j] + S1 * cross + S * hv
            k += 1


@_jit
def _evaluate(  # pragma: no cover - compiled
    pf,
    A,
    rc,
    site_frac,
    site_w,
    site_atom,
    site_local,
    atom_R,
    atom_sph,
    atom_ch,
    atom_z,
    sigma,
    sph_tab,
    sph_mul,
    sph_kap,
    sph_core,
    ch_kind,
    ch_n,
    ch_zeta,
    ch_scale,
    ch_tab,
    ch_deg,
    ch_coef,
    tab_coef,
    tab_off,
    tab_len,
    tab_h,
    tab_c,
    tab_rend,
    exps,
    n_deg,
    order,
    potential,
    lo,
    hi,
    out,
    core_out,
):
    """Sums at points lo..hi-1; out[:, 0] value, 1:4 gradient, 4:10 Hessian (xx xy xz yy yz zz)."""
    n_sites = site_frac.shape[0]
    acc = np.zeros(10)
    tab = np.zeros(3)
    mono = np.zeros((exps.shape[0], 10))
    ang = np.zeros(10)
    u = np.zeros(3)
    pw = np.zeros((3, 3, 5))
    work = np.zeros((5, 3, 3))
    s2 = math.sqrt(2.0) * sigma
    n_ang = 10 if order >= 2 else (4 if order >= 1 else 1)
    for ip in range(lo, hi):
        for k in range(10):
            acc[k] = 0.0
        core = 0.0
        for s in range(n_sites):
            a = site_atom[s]
            R = atom_R[a]
            w = site_w[s]
            d0 = pf[ip, 0] - site_frac[s, 0]
            d1 = pf[ip, 1] - site_frac[s, 1]
            d2 = pf[ip, 2] - site_frac[s, 2]
            for n0 in range(math.ceil(d0 - R * rc[0]), math.floor(d0 + R * rc[0]) + 1):
                f0 = d0 - n0
                for n1 in range(math.ceil(d1 - R * rc[1]), math.floor(d1 + R * rc[1]) + 1):
                    f1 = d1 - n1
                    for n2 in range(math.ceil(d2 - R * rc[2]), math.floor(d2 + R * rc[2]) + 1):
                        f2 = d2 - n2
                        vx = A[0, 0] * f0 + A[0, 1] * f1 + A[0, 2] * f2
                        vy = A[1, 0] * f0 + A[1, 1] * f1 + A[1, 2] * f2
                        vz = A[2, 0] * f0 + A[2, 1] * f1 + A[2, 2] * f2
                        r2 = vx * vx + vy * vy + vz * vz
                        if r2 > R * R:
                            continue
                        r0 = math.sqrt(r2)
                        r = max(r0, 1e-8)
                        if potential and r0 < 1e-12:
                            u[0] = 0.0
                            u[1] = 0.0
                            u[2] = 1.0
                        elif not potential and r0 < 1e-8:  # at the nucleus: its value only
                            u[0] = 0.0
                            u[1] = 0.0
                            u[2] = 0.0
                        else:
                            u[0] = vx / r
                            u[1] = vy / r
                            u[2] = vz / r
                        # nucleus (potential, order 0): Z erfc(r/√2σ)/r, own charge left out
                        if atom_z[a] != 0.0:
                            at = 1.0 if r0 < 1e-6 else 0.0
                            if at > 0.0 and r < 1e-3 * s2:
                                fn = (
                                    -2.0 / (s2 * math.sqrt(math.pi)) * (1.0 - r * r / (3 * s2 * s2))
                                )
                            else:
                                fn = (math.erfc(r / s2) - at) / r
                            acc[0] += fn * atom_z[a] * w
                        # spherical terms
                        fs0 = 0.0
                        fs1 = 0.0
                        fs2 = 0.0
                        for q in range(atom_sph[a], atom_sph[a + 1]):
                            ti = sph_tab[q]
                            x = sph_kap[q] * r
                            if x >= tab_rend[ti]:
                                continue
                            _table(x, ti, order, tab_coef, tab_off, tab_len, tab_h, tab_c, tab)
                            fs0 += sph_mul[q, 0] * tab[0]
                            fs1 += sph_mul[q, 1] * tab[1]
                            fs2 += sph_mul[q, 2] * tab[2]
                            if sph_core[q]:
                                core += sph_mul[q, 0] * tab[0] * w
                        acc[0] += fs0 * w
                        if order >= 1:
                            for i in range(3):
                                acc[1 + i] += fs1 * w * u[i]
                        if order >= 2:
                            k = 4
                            for i in range(3):
                                for j in range(i, 3):
                                    uu = u[i] * u[j]
                                    acc[k] += w * (
                                        fs2 * uu + fs1 / r * ((1.0 if i == j else 0.0) - uu)
                                    )
                                    k += 1
                        # multipole channels
                        c_lo = atom_ch[a]
                        c_hi = atom_ch[a + 1]
                        if c_hi > c_lo:
                            _monomials(u[0], u[1], u[2], exps.shape[0], exps, order, mono, pw)
                            loc = site_local[s]
                            last_z = -1.0
                            ez = 0.0
                            for c in range(c_lo, c_hi):
                                nm = n_deg[ch_deg[c]]
                                for k in range(n_ang):
                                    ang[k] = 0.0
                                for m in range(nm):
                                    cm = ch_coef[c, m, loc]
                                    if cm != 0.0:
                                        for k in range(n_ang):
                                            ang[k] += cm * mono[m, k]
                                if ch_kind[c] == 0:
                                    nn = ch_n[c]
                                    z = ch_zeta[c]
                                    if z != last_z:  # channels of a term share ζ
                                        last_z = z
                                        ez = math.exp(-z * r)
                                    e = ch_scale[c] * ez
                                    rm2 = 1.0  # r^(n−2)
                                    for _ in range(nn - 2):
                                        rm2 *= r
                                    if nn >= 2:
                                        rn = rm2 * r * r
                                        rn1 = nn * rm2 * r
                                        rn2 = nn * (nn - 1) * rm2
                                    elif nn == 1:
                                        rn, rn1, rn2 = r, 1.0, 0.0
                                    else:
                                        rn, rn1, rn2 = 1.0, 0.0, 0.0
                                    S = rn * e
                                    S1 = (rn1 - z * rn) * e
                                    S2 = (rn2 - 2.0 * z * rn1 + z * z * rn) * e
                                else:
                                    ti = ch_tab[c]
                                    if r >= tab_rend[ti]:
                                        continue
                                    _table(
                                        r, ti, order, tab_coef, tab_off, tab_len, tab_h, tab_c, tab
                                    )
                                    S = ch_scale[c] * tab[0]
                                    S1 = ch_scale[c] * tab[1]
                                    S2 = ch_scale[c] * tab[2]
                                _add_radial_angular(S, S1, S2, ang, u, r, order, acc, work)
        for k in range(10):
            out[ip, k] = acc[k]
        core_out[ip] = core


class PackedField:
    """The terms of a DensityField (or PotentialField) in flat arrays for :func:`_evaluate`.

    Parameters
    ----------
    crystal : Crystal
    atoms : list of (term holder, cut-off radius)
        ``DensityField.atoms``: each holder has ``sites``, ``tables``
        ((QuinticTable, scale, κ) of its spherical terms) and ``mult`` (its
        multipole terms).
    core_flags : list of list of bool, optional
        Per atom and spherical table: a core density (its value is also
        summed into the ``core`` output).
    potential : dict, optional
        For the potential: per atom ``z`` (nuclear charge × occupancy),
        ``sph`` (RadialTable or None) and ``channels`` (per multipole term,
        list of (l, RadialTable, scale) or None), and ``sigma``.
    """

    def __init__(self, crystal, atoms, core_flags=None, potential=None):
        self.A = np.ascontiguousarray(crystal.A, dtype=float)
        self.Ainv = np.linalg.inv(self.A)
        self.rc = np.linalg.norm(self.Ainv, axis=1)
        self.potential = potential is not None
        tables: list = []
        tindex: dict = {}

        def tab_id(table) -> int:
            if id(table) not in tindex:
                tindex[id(table)] = len(tables)
                tables.append(table)
            return tindex[id(table)]

        sf, sw, sa, sl = [], [], [], []
        R, z = [], []
        atom_sph, atom_ch = [0], [0]
        sph_tab, sph_mul, sph_kap, sph_core = [], [], [], []
        ch_kind, ch_n, ch_zeta, ch_scale, ch_tab, ch_deg, ch_coef = [], [], [], [], [], [], []
        nmono = len(_EXPS)
        where = {tuple(e): i for i, e in enumerate(_EXPS.tolist())}
        max_sites = max((len(t.sites.frac) for t, _ in atoms), default=1)
        for ia, (t, radius) in enumerate(atoms):
            ns = len(t.sites.frac)
            sf.append(t.sites.frac)
            sw.append(t.sites.weight)
            sa.append(np.full(ns, ia))
            sl.append(np.arange(ns))
            R.append(float(radius))
            pot = potential["atoms"][ia] if potential else None
            z.append(pot["z"] if pot else 0.0)
            if pot:
                if pot["sph"] is not None:
                    sph_tab.append(tab_id(pot["sph"]))
                    sph_mul.append((1.0, 1.0, 1.0))
                    sph_kap.append(1.0)
                    sph_core.append(False)
            else:
                flags = core_flags[ia] if core_flags is not None else []
                for q, (table, scale, kap) in enumerate(t.tables):
                    sph_tab.append(tab_id(table))
                    sph_mul.append((scale * kap**3, scale * kap**4, scale * kap**5))
                    sph_kap.append(kap)
                    sph_core.append(bool(flags[q]) if q < len(flags) else False)
            atom_sph.append(len(sph_tab))
            for j, (lmax, n_l, zeta, _cart, norms, exps, coefs) in enumerate(t.mult):
                remap = np.array([where[tuple(e)] for e in exps.tolist()])
                for l in range(lmax + 1):
                    if not np.any(coefs[l]):
                        continue
                    full = np.zeros((nmono, max_sites))
                    full[remap, :ns] = coefs[l]
                    if pot:
                        chans = pot["channels"][j]
                        ch = next((c for c in chans if c is not None and c[0] == l), None)
                        if ch is None:
                            continue
                        ch_kind.append(1)
                        ch_tab.append(tab_id(ch[1]))
                        ch_scale.append(float(ch[2]))
                        ch_n.append(0)
                        ch_zeta.append(0.0)
                    else:
                        ch_kind.append(0)
                        ch_tab.append(0)
                        ch_scale.append(float(norms[l]))
                        ch_n.append(int(n_l[l]))
                        ch_zeta.append(float(zeta))
                    ch_deg.append(l)
                    ch_coef.append(full)
            atom_ch.append(len(ch_kind))
        i64, f8 = np.int64, float
        self.site_frac = np.ascontiguousarray(np.concatenate(sf) if sf else np.zeros((0, 3)))
        self.site_w = np.concatenate(sw).astype(f8) if sw else np.zeros(0)
        self.site_atom = np.concatenate(sa).astype(i64) if sa else np.zeros(0, i64)
        self.site_local = np.concatenate(sl).astype(i64) if sl else np.zeros(0, i64)
        self.atom_R = np.array(R, f8)
        self.atom_z = np.array(z, f8)
        self.sigma = float(potential["sigma"]) if potential else 1.0
        self.atom_sph = np.array(atom_sph, i64)
        self.atom_ch = np.array(atom_ch, i64)
        self.sph_tab = np.array(sph_tab, i64)
        self.sph_mul = np.array(sph_mul, f8).reshape(-1, 3)
        self.sph_kap = np.array(sph_kap, f8)
        self.sph_core = np.array(sph_core, np.bool_)
        self.ch_kind = np.array(ch_kind, i64)
        self.ch_n = np.array(ch_n, i64)
        self.ch_zeta = np.array(ch_zeta, f8)
        self.ch_scale = np.array(ch_scale, f8)
        self.ch_tab = np.array(ch_tab, i64)
        self.ch_deg = np.array(ch_deg, i64)
        self.ch_coef = (
            np.ascontiguousarray(np.stack(ch_coef)) if ch_coef else np.zeros((0, nmono, max_sites))
        )
        coefs = [t.coef for t in tables]
        self.tab_len = np.array([c.shape[1] for c in coefs], i64)
        self.tab_off = np.concatenate([[0], np.cumsum(self.tab_len)[:-1]]).astype(i64)
        self.tab_coef = np.ascontiguousarray(
            np.concatenate(coefs, axis=1) if coefs else np.zeros((6, 0))
        )
        self.tab_h = np.array([t.h for t in tables], f8)
        self.tab_c = np.array([t.c for t in tables], f8)
        self.tab_rend = np.array([t.r_end for t in tables], f8)

    def __call__(self, points: np.ndarray, order: int, threads: int | None = None):
        """Values (n,), gradients (n, 3), Hessians (n, 3, 3) and core values (n,) at points (Å)."""
        p = np.asarray(points, dtype=float).reshape(-1, 3)
        n = len(p)
        pf = np.ascontiguousarray(p @ self.Ainv.T)
        out = np.zeros((n, 10))
        core = np.zeros(n)
        args = (
            pf,
            self.A,
            self.rc,
            self.site_frac,
            self.site_w,
            self.site_atom,
            self.site_local,
            self.atom_R,
            self.atom_sph,
            self.atom_ch,
            self.atom_z,
            self.sigma,
            self.sph_tab,
            self.sph_mul,
            self.sph_kap,
            self.sph_core,
            self.ch_kind,
            self.ch_n,
            self.ch_zeta,
            self.ch_scale,
            self.ch_tab,
            self.ch_deg,
            self.ch_coef,
            self.tab_coef,
            self.tab_off,
            self.tab_len,
            self.tab_h,
            self.tab_c,
            self.tab_rend,
            _EXPS,
            _N_DEG,
            int(order),
            bool(self.potential),
        )
        workers = threads if threads is not None else _threads()
        blocks = [(a, min(a + _BLOCK, n)) for a in range(0, n, _BLOCK)]
        if workers <= 1 or len(blocks) < 2:
            _evaluate(*args, 0, n, out, core)
        else:
            pool = _pool(workers)
            list(pool.map(lambda b: _evaluate(*args, b[0], b[1], out, core), blocks))
        val = out[:, 0]
        grad = out[:, 1:4] if order >= 1 else None
        hess = None
        if order >= 2:
            hess = np.empty((n, 3, 3))
            k = 4
            for i in range(3):
                for j in range(i, 3):
                    hess[:, i, j] = out[:, k]
                    hess[:, j, i] = out[:, k]
                    k += 1
        return val, grad, hess, core


def _threads() -> int:
    text = os.environ.get("CHASM_ENGINE_THREADS", "").strip()
    if text.isdigit() and int(text) >= 1:
        return int(text)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def _pool(workers: int) -> ThreadPoolExecutor:
    key = (os.getpid(), workers)
    if key not in _POOL:
        _POOL[key] = ThreadPoolExecutor(workers, thread_name_prefix="chasm-topology")
    return _POOL[key]

"""Static real-space densities of a multipole model, on planes and grids.

"Static" means the density of the atoms at rest: no thermal smearing, unlike
a Fourier synthesis of structure factors. Densities are in e/Å³ at Cartesian
points in Å (the crystal's orthogonalisation, ``r = A x``).

The model density is the sum over the atoms of the asymmetric unit, over all
operations (R, t) of the space group and over the lattice translations n of

    w_j ρ_j(Q_Rᵀ (r − A(R x_j + t + n))),    w_j = occupancy / |site group|,

the same sum as the structure-factor engine's (CONVENTIONS.md), with Q_R =
A R A⁻¹ the Cartesian matrix of the operation (proper or improper). The
multipole part of a copy is therefore evaluated in the copy's frame
M_copy = Q_R M: its local coordinates are M_copyᵀ (r − r_copy), which for an
improper operation is a left-handed frame (the d_lm transform as functions).
In practice the populations of each copy are rotated once into the Cartesian
frame (:func:`chasm.density.harmonics.rotate_populations` with M_copy), and
the copies of an atom on a special position that fall on the same point are
merged into one site carrying the sum of their weights and populations.

Per atom (ρ_j in its local frame)

* :class:`~chasm.density.model.HansenCoppensAtom`:
  Pc ρ_c(r) + Pv κ³ ρ_v(κr) + Σ_l κ'³ R_l(κ'r) Σ_m P_lm d_lm(r̂), with ρ_c and
  ρ_v of the databank species (element, charge, valence partition) and
  R_l the density-normalised Slater functions of exponent ζ (1/Å);
* :class:`~chasm.density.model.SphericalAtom`: the free atom of the Koga
  wavefunction databank, core + n_valence ρ_v, of the model's species
  (``charge``). This is also used for ``source="it92"``: the IT92 Gaussian
  fit is a form factor only and has no real-space form.

Cut-off. Every atom contributes only within a radius around each copy.
By default (``cutoff=None``) each of its k terms (Pc ρ_c, Pv κ³ρ_v(κr), one
multipole set; a deformation or spin density has the terms of both models)
gets the smallest radius at which its charge outside the sphere is below
tail / k, so that at most ``tail`` electrons per atom are left out (default
1e-6 e: 1-1.5 Å for the cores of C-O, 5-6 Å for the valence shells of H-O,
up to 8-9 Å for an H atom with hexadecapoles of n_l = 4). For the spherical
terms that charge is ∫ 4πr²|ρ| dr beyond R, integrated from the exact values
at the table nodes (Simpson); for the multipoles it is the bound
Σ_l Γ(n_l+3, κ'ζR)/(n_l+2)! Σ_m |P_lm| a_l, a_0 = 1, a_l = ∫|d_lm| dΩ = 2.
A number passed as ``cutoff`` (Å) sets the radius of every term instead.
Identical spherical terms of the two models are merged first, so the cores of
a deformation density (model Pc = 1 minus the neutral free atom, same databank
species and partition) cancel exactly.

Radial functions. The spherical core and valence densities are sums of up to
~130 exponential terms; they are read from a cubic Hermite table of the exact
values and slopes in x = ln(1 + r/c), built once per species and refined until
the table agrees with the exact sum to 1e-9 relative (plus 1e-12 of the peak
value) at every mid-interval point. The Slater functions of the multipoles
are evaluated exactly.

Work is blocked over points: points are sorted into cubes of 3 Å, and for each
cube only the atom copies within reach are considered, so memory stays
bounded for any number of points; a :class:`CellGrid` is also evaluated slab by
slab (:meth:`CellGrid.map`), and with ``symmetric=True`` at one point per
orbit of the space group. The multipole functions are evaluated only on the
pairs within their own radius (usually shorter than the spherical terms').
Large point sets (20,000 points or more) are shared among threads, one block
at a time (``CHASM_MAP_THREADS``, default every core); a block's sum is formed
in the same order either way, so the values do not depend on the threads.
The grids (:class:`Plane`, :class:`CellGrid`) live in :mod:`chasm.maps.grids`
and are re-exported here.

Grid integrals. The sum of a map over a periodic cell grid of step h differs
from the integral by the aliased structure factors Σ_(m≠0) F(N m), i.e. by the
form factors at sinθ/λ ≈ 1/(2h). Valence shells with a radial node (2s, 3s,
3d's inner part...) keep a tight inner lobe whose form factor is still
~3e-4 e per electron at sinθ/λ = 5 1/Å (C 2s2p): summing such densities to
1e-3 e needs steps of about 0.05 Å, whereas a nodeless valence (H 1s, 2p)
converges at 0.1 Å.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from math import lgamma, pi
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import gammaincc

from chasm.density.databank import spherical_atom
from chasm.density.harmonics import (
    density_harmonics,
    density_to_wavefunction,
    rotation_matrix_full,
)
from chasm.density.model import HansenCoppensAtom, SphericalAtom
from chasm.density.radial import slater_norm
from chasm.errors import InputError
from chasm.maps.grids import (
    CellGrid,
    Plane,
    PlaneAtom,
    Sites,
    atom_images,
    atom_sites,
    check_points,
    fourier_on_plane,
    lattice_candidates,
)

if TYPE_CHECKING:
    from chasm.crystal.structure import Crystal

__all__ = [
    "DEFAULT_TAIL",
    "CellGrid",
    "Plane",
    "PlaneAtom",
    "atom_images",
    "deformation_density",
    "fourier_on_plane",
    "free_atom_density",
    "model_density",
    "spin_density",
]

DEFAULT_TAIL = 1e-6
"""Largest charge (electrons) of one atom left outside its cut-off sphere."""

_BIN = 3.0  # side of the cubes the points are sorted into, Å
_BLOCK_POINTS = 20_000  # points per block at most
_DIST_PAIRS = 1 << 20  # copies x points examined at once
_EVAL_PAIRS = 1 << 16  # (copy, point) pairs evaluated at once
_THREAD_POINTS = 20_000  # fewer points than this: one thread


# --------------------------------------------------------------------------- radial tables
def _term_density(N: np.ndarray, Z: np.ndarray, w: np.ndarray, r: np.ndarray):
    """Exact Σ w r^(N-2) e^(-Zr) / 4π and its r-derivative (1-D r)."""
    val = np.zeros(r.shape)
    der = np.zeros(r.shape)
    k = (N - 2).astype(float)
    for a in range(0, r.size, 2048):
        x = r[a : a + 2048, None]
        e = np.exp(-Z * x)
        p = x**k
        dp = np.where(k > 0, k * x ** np.maximum(k - 1.0, 0.0), 0.0)
        val[a : a + 2048] = (p * e) @ w
        der[a : a + 2048] = ((dp - Z * p) * e) @ w
    return val / (4.0 * pi), der / (4.0 * pi)


def _term_tail(N: np.ndarray, Z: np.ndarray, w: np.ndarray, R: float) -> float:
    """Upper bound of the charge outside radius R: Σ |w| Γ(N+1, ZR) / Z^(N+1)."""
    if N.size == 0:
        return 0.0
    log_full = np.array([lgamma(n + 1.0) for n in N]) - (N + 1.0) * np.log(Z)
    return float(np.sum(np.abs(w) * np.exp(log_full) * gammaincc(N + 1.0, Z * R)))


def _bisect_radius(tail: Callable[[float], float], tol: float, rmax: float = 100.0) -> float:
    """Smallest R (to 1e-3 Å) with tail(R) <= tol."""
    if tail(0.0) <= tol:
        return 0.0
    lo, hi = 0.0, rmax
    if tail(hi) > tol:
        return rmax
    while hi - lo > 1e-3:
        mid = 0.5 * (lo + hi)
        if tail(mid) > tol:
            lo = mid
        else:
            hi = mid
    return hi


@dataclass(eq=False)
class _RadialTable:
    """Spherical density Σ w r^(N-2) e^(-Zr)/4π (e/Å³), tabulated.

    The table runs to the radius where the rigorous tail bound of
    :func:`_term_tail` falls below 1e-13 of the charge; :meth:`tail` is the
    charge outside R integrated numerically from the exact node values, and
    the density is set to zero beyond ``r_eff``, where that charge is below
    1e-13 of the total (the bound is loose for core densities, whose diffuse
    basis functions nearly cancel).
    """

    N: np.ndarray
    Z: np.ndarray
    w: np.ndarray
    c: float = 0.0
    h: float = 0.0
    coef: tuple[np.ndarray, ...] = ()
    _rows: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    r_nodes: np.ndarray = field(default_factory=lambda: np.zeros(0))
    tail_nodes: np.ndarray = field(default_factory=lambda: np.zeros(0))
    r_eff: float = 0.0

    def __post_init__(self) -> None:
        if self.N.size == 0:
            return
        bound = abs(_term_tail(self.N, self.Z, self.w, 0.0))
        r_end = _bisect_radius(
            lambda R: _term_tail(self.N, self.Z, self.w, R), 1e-13 * max(bound, 1e-300)
        )
        self.c = 1.0 / float(np.max(self.Z))
        xmax = float(np.log1p(r_end / self.c))
        n = 512
        while True:
            x = np.linspace(0.0, xmax, n + 1)
            h = float(x[1])
            r = self.c * np.expm1(x)
            f, d = _term_density(self.N, self.Z, self.w, r)
            f0, f1 = f[:-1], f[1:]
            d0, d1 = d[:-1] * (self.c + r[:-1]) * h, d[1:] * (self.c + r[1:]) * h
            coef = (f0, d0, 3.0 * (f1 - f0) - 2.0 * d0 - d1, 2.0 * (f0 - f1) + d0 + d1)
            xm = x[:-1] + 0.5 * h
            exact, _ = _term_density(self.N, self.Z, self.w, self.c * np.expm1(xm))
            approx = coef[0] + 0.5 * coef[1] + 0.25 * coef[2] + 0.125 * coef[3]
            allowed = 1e-9 * np.abs(exact) + 1e-12 * np.max(np.abs(f))
            if np.all(np.abs(approx - exact) <= allowed) or n >= 1 << 18:
                break
            n *= 2
        self.h, self.coef = h, tuple(np.ascontiguousarray(a) for a in coef)
        self._rows = np.ascontiguousarray(np.stack(coef, axis=1))  # (n, 4): one gather
        # charge outside each node: Simpson-like trapezoid in x of 4π r² |ρ| dr/dx
        g = 4.0 * pi * r * r * np.abs(f) * (self.c + r)
        rm = self.c * np.expm1(xm)
        gm = 4.0 * pi * rm * rm * np.abs(exact) * (self.c + rm)
        piece = h * (g[:-1] + 4.0 * gm + g[1:]) / 6.0
        self.r_nodes = r
        self.tail_nodes = np.concatenate([np.cumsum(piece[::-1])[::-1], [0.0]])
        total = self.tail_nodes[0]
        beyond = np.flatnonzero(self.tail_nodes <= 1e-13 * total)
        self.r_eff = float(r[beyond[0]]) if beyond.size else float(r[-1])

    def tail(self, R: float) -> float:
        """Charge (e) outside radius R (of |ρ|, integrated numerically)."""
        if self.N.size == 0 or R >= self.r_eff:
            return 0.0
        return float(np.interp(R, self.r_nodes, self.tail_nodes))

    def __call__(self, r: np.ndarray, rcut: float | None = None) -> np.ndarray:
        """ρ(r) in e/Å³, zero beyond ``r_eff`` (or ``rcut`` Å when smaller)."""
        r = np.asarray(r, dtype=float)
        out = np.zeros(r.shape)
        if self.N.size == 0:
            return out
        inside = r < (self.r_eff if rcut is None else min(rcut, self.r_eff))
        whole = bool(inside.all())
        rr = r if whole else r[inside]
        x = np.log1p(rr / self.c) / self.h
        i = np.minimum(x.astype(np.intp), len(self._rows) - 1)
        t = x - i
        c = self._rows[i]
        val = c[:, 3] * t
        val += c[:, 2]
        val *= t
        val += c[:, 1]
        val *= t
        val += c[:, 0]  # c0 + t (c1 + t (c2 + t c3)), in place
        if whole:
            return val
        out[inside] = val
        return out

    def exact(self, r: np.ndarray) -> np.ndarray:
        """ρ(r) by summing the terms (for checks)."""
        r = np.asarray(r, dtype=float)
        return _term_density(self.N, self.Z, self.w, r.reshape(-1))[0].reshape(r.shape)


@lru_cache(maxsize=256)
def _species_tables(
    element: str, charge: int, valence: tuple[str, ...] | None
) -> tuple[_RadialTable, _RadialTable, float]:
    """Core table (e), valence table (per electron) and n_valence of a databank species."""
    try:
        atom = spherical_atom(element, charge, valence=None if valence is None else list(valence))
    except (KeyError, ValueError) as exc:
        raise InputError(
            f"no databank density for {element} (charge {charge}, valence {valence}): {exc}"
        ) from exc
    ct, vt = atom.core_transform, atom.valence_transform
    core = _RadialTable(np.asarray(ct.N), np.asarray(ct.Z, float), np.asarray(ct.w, float))
    val = _RadialTable(np.asarray(vt.N), np.asarray(vt.Z, float), np.asarray(vt.w, float))
    return core, val, float(atom.n_valence)


# --------------------------------------------------------------------------- atom terms
@dataclass(eq=False)
class _Multipoles:
    """One multipole set of an atom: populations per site, Slater radial functions."""

    lmax: int
    plm: np.ndarray  # local populations (already scaled by occupancy and weight)
    frame: np.ndarray
    n_l: tuple[int, ...]
    zeta: float  # κ'ζ, 1/Å
    cart: np.ndarray | None = None  # (nlm, n_sites) Cartesian-frame populations
    rcut: float = np.inf

    def tail(self, R: float) -> float:
        total = 0.0
        for l in range(self.lmax + 1):
            p = np.sum(np.abs(self.plm[l * l : (l + 1) ** 2])) * (1.0 if l == 0 else 2.0)
            total += p * float(gammaincc(self.n_l[l] + 3.0, self.zeta * R))
        return total


@dataclass(eq=False)
class _Spherical:
    """scale κ³ table(κ r), zero beyond rcut (Å)."""

    table: _RadialTable
    scale: float
    kappa: float
    rcut: float = np.inf

    def tail(self, R: float) -> float:
        return abs(self.scale) * self.table.tail(self.kappa * R)


@dataclass(eq=False)
class _AtomTerms:
    """Everything evaluated around the copies of one atom of the asymmetric unit."""

    spherical: list[_Spherical] = field(default_factory=list)
    multipoles: list[_Multipoles] = field(default_factory=list)

    def add(self, table: _RadialTable, scale: float, kappa: float = 1.0) -> None:
        """Add scale κ³ table(κr), merged with a term of the same table and κ."""
        for term in self.spherical:
            if term.table is table and term.kappa == kappa:
                term.scale += scale
                return
        self.spherical.append(_Spherical(table, scale, kappa))

    def extend(self, other: _AtomTerms | None, sign: float = 1.0) -> None:
        if other is None:
            return
        for t in other.spherical:
            self.add(t.table, sign * t.scale, t.kappa)
        for m in other.multipoles:
            self.multipoles.append(_Multipoles(m.lmax, sign * m.plm, m.frame, m.n_l, m.zeta))

    def prepare(self, tail: float, cutoff: float | None) -> float:
        """Drop null terms, set each term's radius; return the largest (Å).

        Each of the k terms gets the radius at which its charge outside is
        below tail / k, so the atom loses at most ``tail`` electrons.
        """
        self.spherical = [t for t in self.spherical if t.scale != 0.0]
        terms = self.spherical + self.multipoles
        if not terms:
            return 0.0
        for t in terms:
            t.rcut = (
                float(cutoff) if cutoff is not None else _bisect_radius(t.tail, tail / len(terms))
            )
        return max(t.rcut for t in terms)


def _check_models(crystal, models, what: str = "models") -> list:
    models = list(models)
    if len(models) != len(crystal.atoms):
        raise InputError(
            f"{what}: {len(models)} density models for {len(crystal.atoms)} atoms; "
            "give one per atom of the asymmetric unit (None for no density)"
        )
    for atom, m in zip(crystal.atoms, models, strict=True):
        if m is not None and not isinstance(m, (SphericalAtom, HansenCoppensAtom)):
            raise InputError(
                f"{what}: atom {atom.label} has a {type(m).__name__}; "
                "expected SphericalAtom, HansenCoppensAtom or None"
            )
    return models


def _check_weights(crystal, weights) -> np.ndarray:
    n = len(crystal.atoms)
    if weights is None:
        return np.ones(n)
    w = np.asarray(weights, dtype=float).reshape(-1)
    if w.shape != (n,) or not np.all(np.isfinite(w)):
        raise InputError(f"weights must be {n} finite numbers (one per atom), got {w.shape}")
    return w


def _model_terms(atom, model, core: bool, valence: bool, multipoles: bool, scale: float):
    """Terms of one atom's model times ``scale`` (occupancy x weight)."""
    if model is None or scale == 0.0:
        return None
    terms = _AtomTerms()
    if isinstance(model, SphericalAtom):
        ct, vt, nv = _species_tables(model.element, int(model.charge), None)
        if core:
            terms.add(ct, scale)
        if valence:
            terms.add(vt, scale * nv)
        return terms
    vkey = tuple(model.valence) if model.valence else None
    ct, vt, _ = _species_tables(model.element, int(model.charge), vkey)
    if model.kappa <= 0 or model.kappa_prime <= 0:
        raise InputError(f"atom {atom.label}: kappa and kappa_prime must be positive")
    if core and model.pc != 0.0:
        terms.add(ct, scale * model.pc)
    if valence and model.pv != 0.0:
        terms.add(vt, scale * model.pv, float(model.kappa))
    if multipoles and model.lmax >= 0 and np.any(model.plm != 0.0):
        frame = np.asarray(model.frame, dtype=float)
        if frame.shape != (3, 3) or np.abs(frame.T @ frame - np.eye(3)).max() > 1e-6:
            raise InputError(f"atom {atom.label}: the local frame is not an orthonormal 3x3 matrix")
        terms.multipoles.append(
            _Multipoles(
                int(model.lmax),
                scale * np.asarray(model.plm, dtype=float),
                frame,
                tuple(int(n) for n in model.n_l),
                float(model.zeta) * float(model.kappa_prime),
            )
        )
    return terms


def _free_atom_terms(atom, core: bool, valence: bool, scale: float):
    """Neutral spherical free atom of the databank (default partition)."""
    return _model_terms(atom, SphericalAtom(atom.element, "koga", 0), core, valence, False, scale)


# --------------------------------------------------------------------------- copies
def _cartesian_populations(crystal, sites: Sites, m: _Multipoles) -> np.ndarray:
    """Σ over the merged operations of the populations rotated into the Cartesian frame."""
    q = crystal.cartesian_rotations()
    d = rotation_matrix_full(q @ m.frame, m.lmax)  # (n_ops, nlm, nlm), frame of each copy
    c = density_to_wavefunction(m.lmax)
    rotated = np.einsum("oij,j->oi", d, c * m.plm) / c  # Σ P' d(u) = Σ P d(M_copyᵀ u)
    merged = np.array([rotated[g].sum(axis=0) / sites.order for g in sites.groups])
    return np.ascontiguousarray(merged.T)


# --------------------------------------------------------------------------- evaluation
def _point_blocks(p: np.ndarray):
    """Index arrays of spatially compact blocks of points."""
    if len(p) == 0:
        return
    cell = np.floor((p - p.min(axis=0)) / _BIN).astype(np.int64)
    dims = cell.max(axis=0) + 1
    code = (cell[:, 0] * dims[1] + cell[:, 1]) * dims[2] + cell[:, 2]
    order = np.argsort(code, kind="stable")
    cuts = np.flatnonzero(np.diff(code[order])) + 1
    for idx in np.split(order, cuts):
        for a in range(0, len(idx), _BLOCK_POINTS):
            yield idx[a : a + _BLOCK_POINTS]


def _int_power(r: np.ndarray, n: int) -> np.ndarray:
    """r**n by repeated multiplication (n >= 1; faster than pow)."""
    out = r.copy()
    for _ in range(n - 1):
        out *= r
    return out


def _pair_values(terms: _AtomTerms, v: np.ndarray, site: np.ndarray, sw: np.ndarray):
    """Density of the copies ``site`` at displacements v (n, 3) from them."""
    r = np.sqrt(np.einsum("ij,ij->i", v, v))
    out = np.zeros(len(r))
    for t in terms.spherical:
        out += (t.scale * t.kappa**3) * t.table(t.kappa * r, t.kappa * t.rcut)
    out *= sw[site]
    if not terms.multipoles:
        return out
    # the multipoles usually reach less far than the spherical terms: only the pairs inside
    reach = max(m.rcut for m in terms.multipoles)
    inside = np.flatnonzero(r < reach)
    if inside.size == 0:
        return out
    whole = inside.size == r.size
    if not whole:
        r, v, site = r[inside], v[inside], site[inside]
    acc = out if whole else out[inside]
    safe = r > 0.0
    u = v / np.where(safe, r, 1.0)[:, None]
    u[~safe] = (0.0, 0.0, 1.0)
    lmax = max(m.lmax for m in terms.multipoles)
    dt = density_harmonics(u, lmax).T  # (nlm, n), C-contiguous rows
    for m in terms.multipoles:
        e = np.exp(-m.zeta * r)
        e[r >= m.rcut] = 0.0
        pg = np.take(m.cart, site, axis=1)
        powers = {0: None, 1: r}
        for l in range(m.lmax + 1):
            n = m.n_l[l]
            if n not in powers:
                powers[n] = r**n if n > 8 else _int_power(r, n)
            ang = np.einsum("ij,ij->j", dt[l * l : (l + 1) ** 2], pg[l * l : (l + 1) ** 2])
            ang *= e
            if n:
                ang *= powers[n]
            acc += slater_norm(n, m.zeta) * ang
    if not whole:
        out[inside] = acc
    return out


def _threads() -> int:
    """Worker threads for large point sets: CHASM_MAP_THREADS, else every core."""
    env = os.environ.get("CHASM_MAP_THREADS", "")
    if env.strip().isdigit() and int(env) > 0:
        return int(env)
    return os.cpu_count() or 1


def _block_values(pb: np.ndarray, work: list, A: np.ndarray, recip: np.ndarray) -> np.ndarray:
    """Density at the points ``pb`` (n, 3) of one compact block, summed over the atom copies."""
    cmin, cmax = pb.min(axis=0), pb.max(axis=0)
    corners = np.array(np.meshgrid(*zip(cmin, cmax, strict=True), indexing="ij")).reshape(3, -1)
    fc = np.linalg.solve(A, corners)
    acc = np.zeros(len(pb))
    p2 = np.einsum("ij,ij->i", pb, pb)
    pb2t = np.ascontiguousarray(2.0 * pb.T)
    for t, R, sites in work:
        site, shift = lattice_candidates(
            sites.frac, fc.min(axis=1) - R * recip, fc.max(axis=1) + R * recip
        )
        centres = (sites.frac[site] + shift) @ A.T
        gap = np.maximum(np.maximum(cmin - centres, centres - cmax), 0.0)
        near = np.einsum("ij,ij->i", gap, gap) <= R * R
        site, centres = site[near], centres[near]
        step = max(1, _DIST_PAIRS // len(pb))
        reach2 = R * R * (1.0 + 1e-9) + 1e-9
        for a in range(0, len(site), step):
            c = centres[a : a + step]
            # |p − c|² <= R²  <=>  |p|² − 2 c·p <= R² − |c|², in place on one array
            g = c @ pb2t
            np.subtract(p2[None], g, out=g)
            ci, pi_ = np.nonzero(g <= (reach2 - np.einsum("ij,ij->i", c, c))[:, None])
            for b in range(0, len(ci), _EVAL_PAIRS):
                cs, ps = ci[b : b + _EVAL_PAIRS], pi_[b : b + _EVAL_PAIRS]
                v = pb[ps] - c[cs]
                vals = _pair_values(t, v, site[a + cs], sites.weight)
                acc += np.bincount(ps, weights=vals, minlength=len(pb))
    return acc


def _evaluate(crystal, terms: list, points, cutoff: float | None, tail: float) -> np.ndarray:
    p = check_points(points)
    shape = p.shape[:-1]
    p = p.reshape(-1, 3)
    out = np.zeros(len(p))
    if cutoff is not None and not (np.isfinite(cutoff) and cutoff > 0):
        raise InputError(f"cutoff must be a positive distance in Å, got {cutoff!r}")
    if not (np.isfinite(tail) and tail > 0):
        raise InputError(f"tail must be a positive charge in electrons, got {tail!r}")
    A = crystal.A
    recip = np.linalg.norm(np.linalg.inv(A), axis=1)  # |a*_i|: fractional extent per Å
    work = []
    for i, t in enumerate(terms):
        if t is None:
            continue
        R = t.prepare(tail, cutoff)
        if R <= 0.0:
            continue
        sites = atom_sites(crystal, i)
        for m in t.multipoles:
            m.cart = _cartesian_populations(crystal, sites, m)
        work.append((t, R, sites))
    blocks = list(_point_blocks(p))
    threads = min(_threads(), len(blocks)) if len(p) >= _THREAD_POINTS else 1

    def one(idx: np.ndarray) -> None:
        out[idx] = _block_values(p[idx], work, A, recip)

    if threads > 1:
        # blocks are independent and numpy releases the GIL in its loops; each
        # block's sum runs in the same order as serially, so the result is identical
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(one, blocks))
    else:
        for idx in blocks:
            one(idx)
    return out.reshape(shape)


# --------------------------------------------------------------------------- public densities
def model_density(
    crystal: Crystal,
    models: Sequence,
    points: ArrayLike,
    *,
    core: bool = True,
    valence: bool = True,
    multipoles: bool = True,
    weights: ArrayLike | None = None,
    cutoff: float | None = None,
    tail: float = DEFAULT_TAIL,
) -> np.ndarray:
    """Static density of a model at Cartesian points.

    Parameters
    ----------
    crystal : Crystal
        Cell, symmetry, atom positions and occupancies (ADPs are not used).
    models : sequence of SphericalAtom, HansenCoppensAtom or None
        One per atom of ``crystal.atoms``; None contributes nothing.
    points : array_like, shape (..., 3)
        Cartesian coordinates, Å.
    core, valence, multipoles : bool
        Which parts to include: Pc ρ_c, Pv κ³ρ_v(κr) (the whole free atom
        for a SphericalAtom is core + valence), and the deformation
        functions. A spin density is ``core=False`` on spin-up minus
        spin-down models (or :func:`spin_density`).
    weights : array_like, shape (n_atoms,), optional
        Factor per atom (default 1), e.g. −1 to subtract an atom.
    cutoff : float, optional
        Radius (Å) around every atom copy beyond which it is neglected;
        by default chosen per atom from ``tail`` (module docstring).
    tail : float
        Charge (electrons) per atom allowed outside its cut-off sphere.

    Returns
    -------
    ndarray, shape (...)
        Density in e/Å³.

    Raises
    ------
    InputError
        Wrong number of models, a model of unknown type, bad points, weights,
        cut-off or local frame, or a species missing from the databank.
    """
    models = _check_models(crystal, models)
    w = _check_weights(crystal, weights)
    terms = [
        _model_terms(a, m, core, valence, multipoles, a.occupancy * wi)
        for a, m, wi in zip(crystal.atoms, models, w, strict=True)
    ]
    return _evaluate(crystal, terms, points, cutoff, tail)


def free_atom_density(
    crystal,
    points,
    *,
    core: bool = True,
    valence: bool = True,
    weights=None,
    cutoff: float | None = None,
    tail: float = DEFAULT_TAIL,
) -> np.ndarray:
    """Procrystal density: neutral spherical free atoms (Koga databank) at the atom positions.

    Parameters and returns as :func:`model_density`; each atom is the neutral
    species of its element with the default core/valence partition.
    """
    w = _check_weights(crystal, weights)
    terms = [
        _free_atom_terms(a, core, valence, a.occupancy * wi)
        for a, wi in zip(crystal.atoms, w, strict=True)
    ]
    return _evaluate(crystal, terms, points, cutoff, tail)


def deformation_density(
    crystal: Crystal,
    models: Sequence,
    points: ArrayLike,
    *,
    multipoles: bool = True,
    weights: ArrayLike | None = None,
    cutoff: float | None = None,
    tail: float = DEFAULT_TAIL,
) -> np.ndarray:
    """Static deformation density: model (core + valence + multipoles) − neutral free atoms.

    The reference is :func:`free_atom_density` (neutral databank species,
    core + valence, same positions and occupancies). For a neutral model with
    Pc = 1 and Pv + P00 equal to the neutral valence count, its integral over
    the cell is zero. ``multipoles=False`` gives the "κ-only" deformation.
    Parameters and returns as :func:`model_density` (e/Å³).
    """
    models = _check_models(crystal, models)
    w = _check_weights(crystal, weights)
    terms = []
    for a, m, wi in zip(crystal.atoms, models, w, strict=True):
        t = _AtomTerms()
        t.extend(_model_terms(a, m, True, True, multipoles, a.occupancy * wi))
        t.extend(_free_atom_terms(a, True, True, a.occupancy * wi), sign=-1.0)
        terms.append(t)
    return _evaluate(crystal, terms, points, cutoff, tail)


def spin_density(
    crystal: Crystal,
    up: Sequence,
    down: Sequence,
    points: ArrayLike,
    *,
    weights: ArrayLike | None = None,
    cutoff: float | None = None,
    tail: float = DEFAULT_TAIL,
) -> np.ndarray:
    """Static spin density ρ↑ − ρ↓ (valence and multipoles, no core), in μB/Å³.

    Equal to ``model_density(up, core=False) − model_density(down, core=False)``
    computed in one pass. Atoms without spin can be None in both lists.
    Parameters as :func:`model_density`.
    """
    up = _check_models(crystal, up, "spin-up models")
    down = _check_models(crystal, down, "spin-down models")
    w = _check_weights(crystal, weights)
    terms = []
    for a, mu, md, wi in zip(crystal.atoms, up, down, w, strict=True):
        t = _AtomTerms()
        t.extend(_model_terms(a, mu, False, True, True, a.occupancy * wi))
        t.extend(_model_terms(a, md, False, True, True, a.occupancy * wi), sign=-1.0)
        terms.append(t)
    return _evaluate(crystal, terms, points, cutoff, tail)

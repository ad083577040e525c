"""Critical points of the static density in the crystal, merged by symmetry.

A critical point (CP) is a point where ∇ρ = 0; its kind (rank, signature)
is read from the signs of the three Hessian eigenvalues: (3,−3) maximum
(nuclei), (3,−1) bond, (3,+1) ring, (3,+3) cage.

Search
------
* Nuclei: the density of a pseudo-atom has a cusp at its nucleus, where the
  derivatives are not defined; every nucleus is counted as a (3,−3) point
  (as XD's TOPXD and QTAIM codes do). A Newton search that ends within
  0.1 Å of a nucleus is discarded.
* Seeds: the midpoints of every pair of atom copies closer than
  ``pair_cutoff`` (default 4 Å); the edge midpoints and the face and
  tetrahedron centroids of the Delaunay tessellation of the nuclei and
  their periodic images (where ring and cage points lie); and, optionally,
  the local minima of |∇ρ| on a grid over the cell (step ``grid_step``;
  0 = no grid).
* Damped Newton–Raphson from every seed, x ← x − s H⁻¹∇ρ with the step
  limited to ``max_step`` (0.25 Å) and s halved until |∇ρ| decreases, until
  |∇ρ| < ``gtol`` (1e-8 e/Å⁴); seeds that do not converge in ``max_iter``
  steps, stall (nearly singular Hessian: a valley of |∇ρ| without a CP),
  reach |ρ| < ``rho_min`` (1e-5 e/Å³) or end with a (near) zero curvature
  are dropped and counted in ``rejected``.
* Merging: every converged point is mapped into the cell with all the
  space-group operations; points closer than ``merge_tol`` (0.01 Å, modulo
  lattice translations) are one CP. Each distinct CP of the asymmetric unit
  is reported once, with its multiplicity (number of copies in the cell).

Morse relation. For a periodic function the numbers of CPs per cell obey
n − b + r − c = 0 (counting nuclei as maxima); a violation means that the
search missed points (refine ``grid_step``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from chasm.errors import InputError
from chasm.maps.grids import atom_sites
from chasm.topology.density_derivatives import DensityField

__all__ = ["CriticalPoint", "CriticalPointSearch", "find_critical_points", "KIND_NAMES"]

KIND_NAMES = {-3: "(3,-3)", -1: "(3,-1)", 1: "(3,+1)", 3: "(3,+3)"}
_NUCLEUS_ZONE = 0.1  # Å


@dataclass
class CriticalPoint:
    """One critical point (a representative of its symmetry orbit).

    Attributes
    ----------
    kind : str
        "(3,-3)", "(3,-1)", "(3,+1)" or "(3,+3)".
    cart : ndarray, shape (3,)
        Cartesian position, Å.
    frac : ndarray, shape (3,)
        Fractional position in [0, 1).
    rho : float
        Density (e/Å³; μB/Å³ for spin).
    grad_norm : float
        |∇ρ| at the point (e/Å⁴); 0 for nuclei.
    eigenvalues : ndarray, shape (3,)
        Hessian eigenvalues λ1 ≤ λ2 ≤ λ3 (e/Å⁵); NaN for nuclei.
    eigenvectors : ndarray, shape (3, 3)
        Columns are the eigenvectors (Cartesian).
    multiplicity : int
        Number of copies in the unit cell.
    nucleus : str or None
        Atom label if the point is a nucleus.
    """

    kind: str
    cart: np.ndarray
    frac: np.ndarray
    rho: float
    grad_norm: float
    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    multiplicity: int
    nucleus: str | None = None

    @property
    def laplacian(self) -> float:
        """∇²ρ = λ1 + λ2 + λ3 (e/Å⁵)."""
        return float(np.sum(self.eigenvalues))


@dataclass
class CriticalPointSearch:
    """The critical points found and the Morse count per cell."""

    points: list[CriticalPoint]
    counts: dict[str, int]  # per cell: n, b, r, c
    morse: int  # n − b + r − c
    seeds: int
    rejected: int
    notes: list[str] = field(default_factory=list)

    @property
    def morse_ok(self) -> bool:
        return self.morse == 0

    def of_kind(self, kind: str) -> list[CriticalPoint]:
        return [p for p in self.points if p.kind == kind]


def _orbit(crystal, frac: np.ndarray, tol: float) -> np.ndarray:
    """Distinct images in [0, 1) of a fractional point under the space group."""
    rot, trans = crystal.symops
    x = np.einsum("oij,j->oi", rot, frac) + trans
    x -= np.floor(x)
    keep = [0]
    for i in range(1, len(x)):
        if _min_distance(crystal.A, x[i], x[keep]) >= tol:
            keep.append(i)
    return x[keep]


def _min_distance(A: np.ndarray, a: np.ndarray, others: np.ndarray) -> float:
    """Smallest distance (Å) from fractional a to the points ``others`` (n, 3), modulo lattice."""
    if len(others) == 0:
        return np.inf
    d = others - a
    d -= np.round(d)
    c = d @ A.T
    return float(np.sqrt(np.min(np.einsum("ij,ij->i", c, c))))


def _nuclei(crystal):
    """Cartesian positions of every nucleus copy near the cell, with labels."""
    pos, labels = [], []
    for i, atom in enumerate(crystal.atoms):
        sites = atom_sites(crystal, i)
        for f in sites.frac:
            for s in np.stack(np.meshgrid(*[[-1, 0, 1]] * 3, indexing="ij"), -1).reshape(-1, 3):
                pos.append(crystal.A @ (f + s))
                labels.append(atom.label)
    return np.array(pos), labels


def _pair_seeds(crystal, cutoff: float) -> np.ndarray:
    """Midpoints of pairs of atom copies closer than cutoff, one end in the asymmetric unit."""
    pos, _ = _nuclei(crystal)
    seeds = []
    for atom in crystal.atoms:
        r0 = crystal.frac_to_cart(atom.xyz)
        d = np.linalg.norm(pos - r0, axis=1)
        near = (d > 0.1) & (d < cutoff)
        seeds.append(0.5 * (pos[near] + r0))
    return np.concatenate(seeds) if seeds else np.zeros((0, 3))


def _circumcentres(p: np.ndarray) -> np.ndarray:
    """Circumcentres of triangles (n, 3, 3) or tetrahedra (n, 4, 3); degenerate ones dropped.

    Those of the tetrahedra are the vertices of the Voronoi tessellation of the
    nuclei (the points farthest from every atom: cage points), those of the
    triangles lie on its edges (ring points).
    """
    d = p[:, 1:] - p[:, :1]  # (n, k-1, 3)
    rhs = 0.5 * np.einsum("nij,nij->ni", d, d)
    if p.shape[1] == 3:
        nrm = np.cross(d[:, 0], d[:, 1])
        M = np.concatenate([d, nrm[:, None]], axis=1)
        rhs = np.concatenate([rhs, np.zeros((len(p), 1))], axis=1)
    else:
        M = d
    ok = np.abs(np.linalg.det(M)) > 1e-6
    c = np.linalg.solve(M[ok], rhs[ok][..., None])[..., 0]
    return p[ok, 0] + c


def _second_pass_seeds(crystal, points, found, reach: float = 3.0) -> np.ndarray:
    """Midpoints of close pairs of the bond, ring and cage points found (all copies)."""
    from scipy.spatial import cKDTree

    fr = [orbit for p, (_, orbit) in zip(points, found, strict=True) if p.kind != "(3,-3)"]
    if not fr:
        return np.zeros((0, 3))
    frac = np.concatenate(fr)
    shifts = np.stack(np.meshgrid(*[[-1, 0, 1]] * 3, indexing="ij"), -1).reshape(-1, 3)
    allf = (frac[None] + shifts[:, None]).reshape(-1, 3)
    cart = allf @ crystal.A.T
    pairs = cKDTree(cart).query_pairs(reach, output_type="ndarray")
    if len(pairs) == 0:
        return np.zeros((0, 3))
    mid = 0.5 * (allf[pairs[:, 0]] + allf[pairs[:, 1]])
    inside = np.all((mid >= 0.0) & (mid < 1.0), axis=1)
    return mid[inside] @ crystal.A.T


def _delaunay_seeds(crystal, margin: float = 4.0, circumcentres: bool = True) -> np.ndarray:
    """Midpoints of edges, centroids (and circumcentres) of faces and of tetrahedra
    of the Delaunay tessellation of the nuclei (with their periodic images), inside
    the cell."""
    from itertools import combinations

    from scipy.spatial import Delaunay

    pos, _ = _nuclei(crystal)
    frac = np.linalg.solve(crystal.A, pos.T).T
    pad = margin * np.linalg.norm(np.linalg.inv(crystal.A), axis=1)
    keep = np.all((frac > -pad) & (frac < 1.0 + pad), axis=1)
    pts = pos[keep]
    if len(pts) < 5:
        return np.zeros((0, 3))
    tri = Delaunay(pts)
    out = []
    simp = tri.simplices
    for k in (2, 3, 4):
        cells = {tuple(sorted(c)) for s in simp for c in combinations(s, k)}
        idx = np.array(sorted(cells))
        out.append(pts[idx].mean(axis=1))
        if k > 2 and circumcentres:
            out.append(_circumcentres(pts[idx]))
    seeds = np.concatenate(out)
    f = np.linalg.solve(crystal.A, seeds.T).T
    inside = np.all((f >= 0.0) & (f < 1.0), axis=1)
    return seeds[inside]


def _grid_seeds(field: DensityField, step: float, rho_min: float) -> np.ndarray:
    """Local minima of |∇ρ|² on a periodic grid over the cell."""
    crystal = field.crystal
    lengths = np.linalg.norm(crystal.A, axis=0)
    n = np.maximum(np.ceil(lengths / step).astype(int), 4)
    axes = [np.arange(k) / k for k in n]
    frac = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    rho, grad, _ = field(frac @ crystal.A.T, order=1)
    g2 = np.einsum("ij,ij->i", grad, grad).reshape(n)
    is_min = np.ones(g2.shape, dtype=bool)
    for s in np.stack(np.meshgrid(*[[-1, 0, 1]] * 3, indexing="ij"), -1).reshape(-1, 3):
        if not s.any():
            continue
        is_min &= g2 <= np.roll(g2, tuple(-s), axis=(0, 1, 2))
    is_min &= rho.reshape(n) > rho_min
    return frac[is_min.reshape(-1)] @ crystal.A.T


def _unique_seeds(crystal, x: np.ndarray, tol: float = 0.05) -> np.ndarray:
    """One seed per symmetry orbit (seeds whose images fall within ~tol Å are merged)."""
    if len(x) == 0:
        return x
    rot, trans = crystal.symops
    f = np.linalg.solve(crystal.A, x.T).T
    img = np.einsum("oij,nj->noi", rot, f) + trans
    img -= np.floor(img)
    cart = img @ crystal.A.T
    key = np.round(cart / tol).astype(np.int64)
    # canonical image: the lexicographically smallest rounded position
    order = np.lexsort(key.transpose(2, 0, 1)[::-1].reshape(3, -1)).reshape(-1)
    best = np.empty(len(x), dtype=np.int64)
    seen = np.zeros(len(x), dtype=bool)
    n_ops = img.shape[1]
    for flat in order:
        i = flat // n_ops
        if not seen[i]:
            seen[i] = True
            best[i] = flat % n_ops
    canon = key[np.arange(len(x)), best]
    _, first = np.unique(canon, axis=0, return_index=True)
    return x[np.sort(first)]


def _newton(field, x, gtol, max_step, max_iter, rho_min):
    """Damped Newton–Raphson from every seed at once; returns positions, converged mask.

    A step is accepted when it lowers |∇ρ|; otherwise it is halved (the
    point stays) and tried again, so a seed cannot cycle.
    """
    x = np.array(x, dtype=float)
    n = len(x)
    done = np.zeros(n, dtype=bool)
    if n == 0:
        return x, done
    rho, g, h = field(x, order=2)
    gn = np.linalg.norm(g, axis=1)
    scale = np.ones(n)
    active = np.ones(n, dtype=bool)
    for _ in range(max_iter):
        conv = active & (gn < gtol)
        done |= conv
        active &= ~conv & (np.abs(rho) >= rho_min) & (scale > 1e-4)
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        hm, gm = h[idx], g[idx]
        step = np.empty_like(gm)
        det = np.abs(np.linalg.det(hm))
        ok = det > 1e-300
        step[ok] = -np.linalg.solve(hm[ok], gm[ok][..., None])[..., 0]
        step[~ok] = -gm[~ok]
        length = np.linalg.norm(step, axis=1)
        step *= (np.minimum(1.0, max_step / np.maximum(length, 1e-300)) * scale[idx])[:, None]
        trial = x[idx] + step
        rt, gt, ht = field(trial, order=2)
        gtn = np.linalg.norm(gt, axis=1)
        better = gtn < gn[idx]
        good = idx[better]
        x[good], rho[good], g[good], h[good], gn[good] = (
            trial[better],
            rt[better],
            gt[better],
            ht[better],
            gtn[better],
        )
        scale[good] = np.minimum(1.0, 2.0 * scale[good])
        scale[idx[~better]] *= 0.5
        # a converged trial is accepted even if |∇ρ| is at the noise floor
        tiny = np.linalg.norm(step, axis=1) < 1e-7
        done[idx[tiny & (gn[idx] < 1e3 * gtol)]] = True
        active[idx[tiny & (gn[idx] < 1e3 * gtol)]] = False
    done |= gn < gtol
    return x, done


def find_critical_points(
    field: DensityField,
    *,
    grid_step: float = 0.0,
    pair_cutoff: float = 4.0,
    gtol: float = 1e-8,
    max_step: float = 0.25,
    max_iter: int = 60,
    rho_min: float = 1e-5,
    merge_tol: float = 0.01,
    extra_seeds=None,
    tessellation: bool = True,
    random_seeds: int = 0,
    second_pass: bool = True,
) -> CriticalPointSearch:
    """All critical points of a static density in the cell.

    Parameters
    ----------
    field : DensityField
        The density (charge or spin) with its derivatives.
    grid_step : float
        Step (Å) of the grid whose |∇ρ| minima seed the search (0 for none).
    pair_cutoff : float
        Pairs of atom copies closer than this (Å) seed at their midpoint.
    gtol : float
        Convergence: |∇ρ| below this (e/Å⁴).
    max_step, max_iter : float, int
        Newton step limit (Å) and number of steps.
    rho_min : float
        Points where |ρ| falls below this (e/Å³) are abandoned.
    merge_tol : float
        Distance (Å) below which two points are the same CP.
    extra_seeds : array_like, shape (n, 3), optional
        More Cartesian seeds.
    tessellation : bool
        Seed at the edge midpoints, face and tetrahedron centroids of the
        Delaunay tessellation of the nuclei (ring and cage points).
    random_seeds : int
        Also seed at this many uniformly random points of the cell (fixed
        generator): finds the cage and ring points of near-zero density
        between molecules that the other seeds miss.
    second_pass : bool
        After the first search (charge density only), seed again at the
        midpoints of pairs of bond, ring and cage points found closer than 3 Å
        to each other (the ring and cage points that lie between them).

    Returns
    -------
    CriticalPointSearch
    """
    if not (np.isfinite(grid_step) and grid_step >= 0):
        raise InputError(f"grid_step must be a distance >= 0 in Å, got {grid_step!r}")
    if grid_step and grid_step < 0.05:
        raise InputError(f"grid_step {grid_step} Å is too fine for a seed grid; use 0.05-0.5 Å")
    if int(random_seeds) != random_seeds or random_seeds < 0:
        raise InputError(f"random_seeds must be a whole number >= 0, got {random_seeds!r}")
    crystal = field.crystal
    spin = field.kind == "spin"
    seeds = [_pair_seeds(crystal, pair_cutoff)]
    if tessellation:
        seeds.append(_delaunay_seeds(crystal))
    if grid_step:
        seeds.append(_grid_seeds(field, grid_step, rho_min))
    if extra_seeds is not None:
        seeds.append(np.asarray(extra_seeds, dtype=float).reshape(-1, 3))
    if random_seeds:
        rng = np.random.default_rng(22)
        seeds.append(rng.uniform(0.0, 1.0, (int(random_seeds), 3)) @ crystal.A.T)
    seeds = _unique_seeds(crystal, np.concatenate(seeds))
    # the density's sign matters for the spin density: search |ρ| thresholds on the value
    if spin:
        rho_min = -np.inf
    nuc_pos, _ = _nuclei(crystal)
    A = crystal.A
    found: list[tuple[np.ndarray, np.ndarray]] = []  # (frac rep, orbit)
    points: list[CriticalPoint] = []
    known = [np.zeros((0, 3))]  # every orbit point found so far

    def converge(seeds_) -> int:
        x, ok = _newton(field, seeds_, gtol, max_step, max_iter, rho_min)
        rejected = int((~ok).sum())
        rho_c, g_c, h_c = field(x[ok], order=2) if ok.any() else (np.zeros(0),) * 3
        for xi, rho, g, h in zip(x[ok], rho_c, g_c, h_c, strict=True):
            if np.min(np.linalg.norm(nuc_pos - xi, axis=1)) < _NUCLEUS_ZONE:
                continue
            w, v = np.linalg.eigh(h)
            if np.min(np.abs(w)) < 1e-6 * max(np.max(np.abs(w)), 1e-12):
                rejected += 1
                continue
            frac = np.round(crystal.cart_to_frac(xi), 10) % 1.0
            if len(known) > 1:
                known[:] = [np.concatenate(known)]
            if _min_distance(A, frac, known[0]) < merge_tol:
                continue
            orbit = _orbit(crystal, frac, merge_tol)
            found.append((frac, orbit))
            known.append(orbit)
            sig = int(np.sum(np.sign(w)))
            points.append(
                CriticalPoint(
                    KIND_NAMES[sig],
                    xi,
                    frac,
                    float(rho),
                    float(np.linalg.norm(g)),
                    w,
                    v,
                    len(orbit),
                )
            )
        return rejected

    rejected = converge(seeds)
    n_seeds = len(seeds)
    if not spin and second_pass:
        more = _second_pass_seeds(crystal, points, found)
        if len(more):
            more = _unique_seeds(crystal, more)
            rejected += converge(more)
            n_seeds += len(more)
    nuclei = []
    for i, atom in enumerate(crystal.atoms):
        if spin:
            continue
        f = np.round(np.asarray(atom.xyz, float), 10) % 1.0
        r = crystal.frac_to_cart(f)
        rho = float(field(r[None], order=0)[0][0])
        nuclei.append(
            CriticalPoint(
                "(3,-3)",
                r,
                f,
                rho,
                0.0,
                np.full(3, np.nan),
                np.full((3, 3), np.nan),
                len(atom_sites(crystal, i).frac),
                atom.label,
            )
        )
    points = nuclei + sorted(points, key=lambda p: (p.kind, -p.rho))
    counts = {"n": 0, "b": 0, "r": 0, "c": 0}
    key = {"(3,-3)": "n", "(3,-1)": "b", "(3,+1)": "r", "(3,+3)": "c"}
    for p in points:
        counts[key[p.kind]] += p.multiplicity
    morse = counts["n"] - counts["b"] + counts["r"] - counts["c"]
    notes = []
    if spin:
        notes.append(
            "spin density: nuclei are not counted (their cusps may be maxima or minima); "
            "the Morse sum is then not expected to vanish"
        )
    return CriticalPointSearch(points, counts, morse, n_seeds, rejected, notes)

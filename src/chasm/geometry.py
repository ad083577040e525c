"""Bond lengths and angles with standard uncertainties from the full covariance.

A site is a symmetry image of an atom of the asymmetric unit,
``x' = R_k x + t_k + n`` (operation ``k`` of ``crystal.rotations`` /
``crystal.translations``, lattice shift ``n``). Its CIF symmetry code is
``'{k+1}_{5+n1}{5+n2}{5+n3}'`` (``'2_655'``: operation 2, shifted by +a), ``'.'``
for the atom itself; operation numbers are those of the
``_space_group_symop_operation_xyz`` loop written from the same crystal.

Every quantity is a function of the fractional coordinates of the atoms and of
the six cell parameters (a, b, c in Å, α, β, γ in degrees), through the metric
tensor G (``G_ij = a_i · a_j``): ``d² = Δᵀ G Δ`` for a fractional difference
Δ, and ``cos θ = uᵀ G w / (|u| |w|)`` for an angle at a vertex with arms u, w.
The gradient with respect to all 3 N coordinates and the 6 cell parameters is
analytic (module functions :func:`metric_derivatives`, :func:`distance_gradient`,
:func:`angle_gradient`; checked against finite differences in
tests/test_geometry.py), and the su is ``sqrt(g C gᵀ)`` with C the
block-diagonal covariance of the coordinates (the full refined covariance, not
its diagonal) and of the cell.

Cell covariance (:func:`cell_covariance`): the su's of the input CIF, taken as
independent except where the lattice makes parameters equal (a = b in the
tetragonal, hexagonal and trigonal systems, a = b = c in the cubic, and
α = β = γ too for rhombohedral axes): those are one parameter and fully
correlated. This is SHELXL's treatment ("correlations between esds in cell
parameters are only used when they are defined by crystal symmetry",
``_geom_special_details`` of its CIFs).

Bonds (:func:`bond_list`) follow the covalent-radius rule of
:mod:`chasm.crystal.neighbours`; each bond is listed once, from the atom earlier
in the asymmetric unit. Angles (:func:`angle_list`) are every pair of bonds at
a central atom.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from chasm.crystal.neighbours import BOND_TOLERANCE, covalent_radius

__all__ = [
    "Site",
    "Bond",
    "Angle",
    "metric_tensor",
    "metric_derivatives",
    "distance_gradient",
    "angle_gradient",
    "cell_covariance",
    "xyz_covariance",
    "Geometry",
    "bond_list",
    "angle_list",
]

_DEG = math.pi / 180.0

#: Å: two sites closer than this are one (rounded coordinates of special positions).
_SAME_SPOT = 0.01


@dataclass(frozen=True)
class Site:
    """An image of atom ``index``: operation ``op`` then lattice shift ``shift``."""

    index: int
    op: int = 0
    shift: tuple[int, int, int] = (0, 0, 0)

    @property
    def is_identity(self) -> bool:
        return self.op == 0 and tuple(self.shift) == (0, 0, 0)

    def code(self) -> str:
        """CIF symmetry code, ``'.'`` for the atom itself, else ``'2_655'``.

        Raises
        ------
        ValueError
            A lattice shift outside -4..4 (not expressible in the CIF code).
        """
        if self.is_identity:
            return "."
        if any(not -4 <= s <= 4 for s in self.shift):
            raise ValueError(f"lattice shift {self.shift} cannot be written as a CIF code")
        return f"{self.op + 1}_" + "".join(str(5 + s) for s in self.shift)

    def frac(self, crystal) -> np.ndarray:
        """Fractional coordinates of the image."""
        x = np.asarray(crystal.atoms[self.index].xyz, float)
        return crystal.rotations[self.op] @ x + crystal.translations[self.op] + self.shift


@dataclass
class Bond:
    """A bond: labels, CIF symmetry codes, distance (Å) and its su."""

    label1: str
    label2: str
    code1: str
    code2: str
    distance: float
    su: float


@dataclass
class Angle:
    """An angle 1-2-3 at atom 2 (identity): labels, codes of 1 and 3, degrees, su."""

    label1: str
    label2: str
    label3: str
    code1: str
    code3: str
    angle: float
    su: float


# ----------------------------------------------------------------------------- metric
def metric_tensor(cell: Sequence[float]) -> np.ndarray:
    """G (3, 3), Å², of a cell (a, b, c in Å, α, β, γ in degrees)."""
    a, b, c, al, be, ga = (float(v) for v in cell)
    ca, cb, cg = (math.cos(v * _DEG) for v in (al, be, ga))
    return np.array(
        [
            [a * a, a * b * cg, a * c * cb],
            [a * b * cg, b * b, b * c * ca],
            [a * c * cb, b * c * ca, c * c],
        ]
    )


def metric_derivatives(cell: Sequence[float]) -> np.ndarray:
    """dG/d(cell parameter), shape (6, 3, 3): per Å for a, b, c, per degree for α, β, γ."""
    a, b, c, al, be, ga = (float(v) for v in cell)
    ca, cb, cg = (math.cos(v * _DEG) for v in (al, be, ga))
    sa, sb, sg = (math.sin(v * _DEG) for v in (al, be, ga))
    d = np.zeros((6, 3, 3))
    d[0] = [[2 * a, b * cg, c * cb], [b * cg, 0, 0], [c * cb, 0, 0]]
    d[1] = [[0, a * cg, 0], [a * cg, 2 * b, c * ca], [0, c * ca, 0]]
    d[2] = [[0, 0, a * cb], [0, 0, b * ca], [a * cb, b * ca, 2 * c]]
    d[3][1, 2] = d[3][2, 1] = -b * c * sa * _DEG
    d[4][0, 2] = d[4][2, 0] = -a * c * sb * _DEG
    d[5][0, 1] = d[5][1, 0] = -a * b * sg * _DEG
    return d


def distance_gradient(p: np.ndarray, q: np.ndarray, cell: Sequence[float]):
    """Distance |q − p| (Å) and its gradient.

    Parameters
    ----------
    p, q : ndarray (3,)
        Fractional coordinates of the two sites.
    cell : sequence of 6 float

    Returns
    -------
    (d, dp, dq, dcell) : float, ndarray (3,), ndarray (3,), ndarray (6,)
        dcell per Å for lengths and per degree for angles.
    """
    g = metric_tensor(cell)
    delta = np.asarray(q, float) - np.asarray(p, float)
    d = math.sqrt(float(delta @ g @ delta))
    gd = g @ delta / d
    dcell = np.einsum("i,kij,j->k", delta, metric_derivatives(cell), delta) / (2 * d)
    return d, -gd, gd, dcell


def angle_gradient(p1: np.ndarray, v: np.ndarray, p2: np.ndarray, cell: Sequence[float]):
    """Angle p1-v-p2 (degrees) and its gradient.

    Returns
    -------
    (theta, d1, dv, d2, dcell)
        Gradients per fractional unit (d1, dv, d2, shape (3,)) and per cell
        parameter (6,), all in degrees per unit.

    At 0 or 180 degrees the angle is not differentiable (its linearised su is
    undefined): the gradients are then NaN.

    Raises
    ------
    ValueError
        A zero-length arm.
    """
    g = metric_tensor(cell)
    u = np.asarray(p1, float) - np.asarray(v, float)
    w = np.asarray(p2, float) - np.asarray(v, float)
    uu, ww, uw = float(u @ g @ u), float(w @ g @ w), float(u @ g @ w)
    if uu <= 0 or ww <= 0:
        raise ValueError("angle with a zero-length arm")
    nu, nw = math.sqrt(uu), math.sqrt(ww)
    cos = uw / (nu * nw)
    sin = math.sqrt(max(0.0, 1.0 - cos * cos))
    theta = math.degrees(math.acos(max(-1.0, min(1.0, cos))))
    if sin < 1e-6:
        nan3 = np.full(3, np.nan)
        return theta, nan3, nan3, nan3, np.full(6, np.nan)
    dc_du = g @ w / (nu * nw) - cos * (g @ u) / uu
    dc_dw = g @ u / (nu * nw) - cos * (g @ w) / ww
    dg = metric_derivatives(cell)
    dc_dcell = np.einsum("i,kij,j->k", u, dg, w) / (nu * nw) - 0.5 * cos * (
        np.einsum("i,kij,j->k", u, dg, u) / uu + np.einsum("i,kij,j->k", w, dg, w) / ww
    )
    f = -1.0 / sin / _DEG  # d theta[deg] = -d cos / sin, in degrees
    return theta, f * dc_du, -f * (dc_du + dc_dw), f * dc_dw, f * dc_dcell


# ----------------------------------------------------------------------------- covariances
def _lattice_groups(crystal) -> list[list[int]]:
    """Cell parameters made equal by the lattice (indices into a, b, c, α, β, γ)."""
    sg = crystal.spacegroup
    system = sg.crystal_system_str() if sg is not None else ""
    al, ga = crystal.cell.alpha, crystal.cell.gamma
    if system == "cubic":
        return [[0, 1, 2]]
    if system in ("tetragonal", "hexagonal"):
        return [[0, 1]]
    if system == "trigonal":
        if abs(ga - 120.0) < 1e-6 and abs(al - 90.0) < 1e-6:
            return [[0, 1]]
        return [[0, 1, 2], [3, 4, 5]]  # rhombohedral axes
    return []


def cell_covariance(crystal) -> np.ndarray:
    """Covariance (6, 6) of a, b, c (Å) and α, β, γ (degrees) from ``crystal.cell_su``.

    Unknown su's (None, NaN) count as zero; parameters the lattice makes equal
    are fully correlated (module docstring).
    """
    sus = np.nan_to_num(np.asarray(crystal.cell_su or [0.0] * 6, float), nan=0.0)
    cov = np.diag(sus**2)
    for group in _lattice_groups(crystal):
        for i in group:
            for j in group:
                cov[i, j] = sus[i] * sus[j]
    return cov


def xyz_covariance(
    crystal, names: Sequence[str], cov: np.ndarray, su: dict[str, float] | None = None
) -> np.ndarray:
    """Covariance (3N, 3N) of the fractional coordinates of the N atoms.

    Parameters
    ----------
    crystal : Crystal
    names : sequence of str
        Parameter names (``'C1.x'``...) of the rows of ``cov``.
    cov : ndarray
        Full parameter covariance (e.g. ``FitResult.cov_p()``).
    su : dict, optional
        Known su's by name: a coordinate with zero variance in ``cov`` but a
        positive su here (refined in an earlier stage, fixed in the last) gets
        su² on the diagonal, uncorrelated.

    Raises
    ------
    KeyError
        A coordinate name missing from ``names``.
    """
    where = {n: i for i, n in enumerate(names)}
    idx = [where[f"{a.label}.{c}"] for a in crystal.atoms for c in "xyz"]
    out = np.array(cov, float)[np.ix_(idx, idx)]
    if su:
        keys = [f"{a.label}.{c}" for a in crystal.atoms for c in "xyz"]
        for k, key in enumerate(keys):
            s = su.get(key)
            if out[k, k] <= 0 and s is not None and math.isfinite(s) and s > 0:
                out[k, k] = s * s
    return out


# ----------------------------------------------------------------------------- geometry
class Geometry:
    """Distances and angles of a crystal with su from the coordinate and cell covariance.

    Parameters
    ----------
    crystal : Crystal
    cov_xyz : ndarray (3N, 3N), optional
        Covariance of the fractional coordinates, atom by atom (x, y, z), e.g.
        :func:`xyz_covariance`. Default: zero (su from the cell only).
    cov_cell : ndarray (6, 6), optional
        Default :func:`cell_covariance`.
    """

    def __init__(self, crystal, cov_xyz: np.ndarray | None = None, cov_cell=None):
        n = 3 * len(crystal.atoms)
        self.crystal = crystal
        self.cov = np.zeros((n + 6, n + 6))
        if cov_xyz is not None:
            cov_xyz = np.asarray(cov_xyz, float)
            if cov_xyz.shape != (n, n):
                raise ValueError(f"cov_xyz must be ({n}, {n}), got {cov_xyz.shape}")
            self.cov[:n, :n] = cov_xyz
        self.cov[n:, n:] = cell_covariance(crystal) if cov_cell is None else cov_cell
        self.cell = crystal.cell.parameters

    def _accumulate(self, grad: np.ndarray, site: Site, dfrac: np.ndarray) -> None:
        # x' = R x + t + n  =>  d/dx = R^T d/dx'
        rot = self.crystal.rotations[site.op]
        grad[3 * site.index : 3 * site.index + 3] += rot.T @ dfrac

    def _su(self, grad: np.ndarray) -> float:
        if not np.all(np.isfinite(grad)):
            return math.nan
        return math.sqrt(max(0.0, float(grad @ self.cov @ grad)))

    def distance(self, s1: Site, s2: Site) -> tuple[float, float]:
        """Distance (Å) between two sites and its su."""
        cr = self.crystal
        d, dp, dq, dcell = distance_gradient(s1.frac(cr), s2.frac(cr), self.cell)
        grad = np.zeros(len(self.cov))
        self._accumulate(grad, s1, dp)
        self._accumulate(grad, s2, dq)
        grad[-6:] = dcell
        return d, self._su(grad)

    def angle(self, s1: Site, s2: Site, s3: Site) -> tuple[float, float]:
        """Angle s1-s2-s3 at s2 (degrees) and its su (NaN for a straight angle)."""
        cr = self.crystal
        th, d1, dv, d3, dcell = angle_gradient(s1.frac(cr), s2.frac(cr), s3.frac(cr), self.cell)
        grad = np.zeros(len(self.cov))
        self._accumulate(grad, s1, d1)
        self._accumulate(grad, s2, dv)
        self._accumulate(grad, s3, d3)
        grad[-6:] = dcell
        return th, self._su(grad)


def _bonded_sites(crystal, tolerance: float, parts: dict | None = None) -> list[list[Site]]:
    """Bonded images of every atom, nearest first.

    The distance rule of :func:`chasm.crystal.neighbours.bonded`, applied over
    all atoms, operations and lattice shifts at once; kept apart from it for
    SHELXL's listing rules below (which image of a site is kept, disorder
    groups), which the general neighbour search does not know. Sites closer
    than ``_SAME_SPOT`` to one already listed, or to the
    central atom, are one site: the images of an atom on a special position
    (whose printed coordinates put them a few 0.001 Å apart), and the image of
    an atom that falls on another atom (a disordered methyl group on a
    three-fold axis), where the atom itself (op 0, no shift) is the one kept,
    as SHELXL lists it. ``parts`` (label -> disorder group) drops
    bonds between different non-zero groups, and, in a negative group (SHELXL's
    PART -n), bonds to symmetry images of the same group.
    """
    a = crystal.A
    rot, trans = crystal.rotations, crystal.translations
    x = np.array([at.xyz for at in crystal.atoms], float)  # (n, 3)
    radii = np.array([covalent_radius(at.element) for at in crystal.atoms])
    cutoff = 2 * radii.max() + tolerance
    # images start within half a cell of the atom: shifts up to cutoff |a*| + 1/2 reach it
    reach = np.ceil(cutoff * np.linalg.norm(np.linalg.inv(a), axis=1) + 0.5).astype(int)
    grid = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), -1).reshape(
        -1, 3
    )
    base = np.einsum("kab,jb->jka", rot, x) + trans[None]  # (n, n_ops, 3)
    out = []
    for i in range(len(x)):
        shift0 = -np.floor(base - x[i] + 0.5)  # (n, n_ops, 3)
        cand = (base + shift0)[:, :, None, :] + grid[None, None]  # (n, n_ops, g, 3)
        cart = (cand - x[i]) @ a.T
        d = np.linalg.norm(cart, axis=-1)
        limit = radii[i] + radii + tolerance  # (n,)
        hit = (d <= limit[:, None, None]) & (d > 1e-6)
        j, k, g = np.nonzero(hit)
        # nearest first; among images on one spot the atom itself (op 0, no shift) first
        moved = (k != 0) | np.any(shift0[j, k] + grid[g] != 0, axis=1)
        order = np.lexsort((k, j, moved, np.round(d[j, k, g], 4)))
        sites, seen = [], [np.zeros(3)]  # the central atom's own spot
        for m in order:
            if parts and not _same_assembly(
                crystal, parts, i, j[m], k[m], grid[g[m]] + shift0[j[m], k[m]]
            ):
                continue
            c = cart[j[m], k[m], g[m]]
            if any(np.linalg.norm(c - q) < _SAME_SPOT for q in seen):
                continue
            seen.append(c)
            n = shift0[j[m], k[m]] + grid[g[m]]
            sites.append(Site(int(j[m]), int(k[m]), tuple(int(v) for v in n)))
        out.append(sites)
    return out


def _same_assembly(crystal, parts: dict, i: int, j: int, op: int, shift) -> bool:
    """False for atoms of different disorder groups (module docstring of the rule)."""
    pi = int(parts.get(crystal.atoms[i].label, 0) or 0)
    pj = int(parts.get(crystal.atoms[j].label, 0) or 0)
    if pi and pj and pi != pj:
        return False
    return not (pi < 0 and pi == pj and (op != 0 or np.any(shift != 0)))


def _outer_together(parts: dict, a: str, b: str) -> bool:
    pa, pb = int(parts.get(a, 0) or 0), int(parts.get(b, 0) or 0)
    return not (pa and pb and pa != pb)


def _keep_self_bond(crystal, i: int, site: Site) -> bool:
    """Of a bond i - i' and its symmetry mate i - i'' (the inverse operation), keep one."""
    rot = crystal.rotations[site.op]
    image = site.frac(crystal)
    x = np.asarray(crystal.atoms[i].xyz, float)
    inverse = np.linalg.solve(rot, x - crystal.translations[site.op] - np.asarray(site.shift))
    return tuple(np.round(image, 6)) <= tuple(np.round(inverse, 6))


def bond_list(
    crystal,
    geometry: Geometry | None = None,
    tolerance: float = BOND_TOLERANCE,
    parts: dict[str, int] | None = None,
) -> list[Bond]:
    """Every bond once (covalent radii + ``tolerance`` Å), with su.

    A bond is given from the atom earlier in the asymmetric unit (code ``'.'``)
    to an image of the other. ``parts``: disorder group by label
    (``_atom_site_disorder_group``); atoms of different non-zero groups are
    not bonded, nor an atom of a negative group to images of its group.
    """
    geometry = geometry or Geometry(crystal)
    out = []
    for i, sites in enumerate(_bonded_sites(crystal, tolerance, parts)):
        for s in sites:
            if s.index < i or (s.index == i and not _keep_self_bond(crystal, i, s)):
                continue
            d, su = geometry.distance(Site(i), s)
            out.append(
                Bond(crystal.atoms[i].label, crystal.atoms[s.index].label, ".", s.code(), d, su)
            )
    return out


def angle_list(
    crystal,
    geometry: Geometry | None = None,
    tolerance: float = BOND_TOLERANCE,
    parts: dict[str, int] | None = None,
) -> list[Angle]:
    """Every angle between two bonds at a central atom, with su (``parts``: as
    :func:`bond_list`; the two outer atoms must also belong together)."""
    geometry = geometry or Geometry(crystal)
    out = []
    labels = [a.label for a in crystal.atoms]
    for i, sites in enumerate(_bonded_sites(crystal, tolerance, parts)):
        for k, s1 in enumerate(sites):
            for s3 in sites[k + 1 :]:
                if parts and not _outer_together(parts, labels[s1.index], labels[s3.index]):
                    continue
                th, su = geometry.angle(s1, Site(i), s3)
                out.append(
                    Angle(
                        labels[s1.index], labels[i], labels[s3.index], s1.code(), s3.code(), th, su
                    )
                )
    return out

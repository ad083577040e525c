"""Where maps are evaluated: planes, 3-D grids, and the atom copies near them.

* :class:`Plane`: a rectangular mesh in a plane through three atoms (any
  symmetry copy) or given by a point, a normal and an in-plane direction;
  its 2-D coordinates, and the atom copies lying in it (for plots).
* :class:`CellGrid`: the unit cell divided into n1 x n2 x n3 points
  (periodic: point n equals point 0 and is not stored), or a Cartesian box
  around atoms; evaluated slab by slab with :meth:`CellGrid.map` (for a
  function invariant under the space group, one point per orbit).
* :func:`fourier_on_plane`: a Fourier synthesis on a plane by separable phases.
* :func:`atom_images`: every distinct atom copy (operation, lattice shift)
  inside a fractional box.

All positions are Cartesian Å in the crystal's orthogonalisation (r = A x).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from chasm.crystal.structure import parse_symop
from chasm.errors import InputError

__all__ = ["CellGrid", "Plane", "PlaneAtom", "atom_images", "fourier_on_plane"]

_SAME_SITE = 1e-4  # Å: copies closer than this are one site (as Crystal.site_symmetry)


def check_points(points) -> np.ndarray:
    """Cartesian points (..., 3) as a float array; InputError if malformed or not finite."""
    try:
        p = np.asarray(points, dtype=float)
    except (TypeError, ValueError) as exc:
        raise InputError(f"points must be an array of Cartesian coordinates: {exc}") from exc
    if p.ndim < 1 or p.shape[-1] != 3:
        raise InputError(f"points must have shape (..., 3) (Cartesian Å), got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise InputError("points contain NaN or infinite coordinates")
    return p


# --------------------------------------------------------------------------- copies
@dataclass(eq=False)
class Sites:
    """Distinct copies of one atom in the cell (fractional), with weights."""

    frac: np.ndarray  # (n_sites, 3) in [0, 1)
    weight: np.ndarray  # (n_sites,) sum of 1/|site group| over the merged operations
    groups: list[np.ndarray]  # operation indices merged into each site
    order: int  # |site group| of the atom


def atom_sites(crystal, i: int) -> Sites:
    """The distinct copies in the cell of atom ``i`` under all operations.

    Operations that put the atom on the same point (within 1e-4 Å, modulo
    the lattice; the tolerance of ``Crystal.site_symmetry``) are merged.
    """
    atom = crystal.atoms[i]
    rot, trans = crystal.symops
    x = np.einsum("oij,j->oi", rot, atom.xyz) + trans
    x -= np.floor(x)
    A = crystal.A
    order = len(crystal.site_symmetry(i))
    reps: list[int] = []
    groups: list[list[int]] = []
    for o in range(len(x)):
        for g, rep in enumerate(reps):
            d = x[o] - x[rep]
            d -= np.round(d)
            if np.linalg.norm(A @ d) < _SAME_SITE:
                groups[g].append(o)
                break
        else:
            reps.append(o)
            groups.append([o])
    frac = x[reps] - np.floor(x[reps] + 1e-12)
    weight = np.array([len(g) / order for g in groups])
    return Sites(frac, weight, [np.array(g) for g in groups], order)


def lattice_candidates(frac: np.ndarray, lo: np.ndarray, hi: np.ndarray):
    """(site index (n,), shift (n, 3)) of every ``frac[site] + shift`` inside the box [lo, hi].

    Parameters
    ----------
    frac : ndarray, shape (n_sites, 3)
        Fractional positions.
    lo, hi : ndarray, shape (3,)
        Fractional corners of the box (inclusive).
    """
    nlo = np.ceil(lo[None] - frac - 1e-12).astype(int)
    nhi = np.floor(hi[None] - frac + 1e-12).astype(int)
    if frac.size == 0 or np.any(nhi.max(axis=0) < nlo.min(axis=0)):
        return np.zeros(0, dtype=int), np.zeros((0, 3), dtype=int)
    axes = [np.arange(a, b + 1) for a, b in zip(nlo.min(axis=0), nhi.max(axis=0), strict=True)]
    shifts = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    ok = np.all((shifts[None] >= nlo[:, None]) & (shifts[None] <= nhi[:, None]), axis=2)
    site, s = np.nonzero(ok)
    return site, shifts[s]


# --------------------------------------------------------------------------- atom images
@dataclass(frozen=True)
class PlaneAtom:
    """A copy of an atom near a plane.

    Attributes
    ----------
    label, element : str
    index : int
        Index in ``crystal.atoms``.
    op : int
        Operation generating the copy.
    shift : tuple of int
        Lattice translation added after the operation.
    cart : ndarray, shape (3,)
        Cartesian position, Å.
    u, v : float
        In-plane coordinates, Å (along ``Plane.e1``, ``Plane.e2`` from its origin).
    height : float
        Signed distance from the plane, Å.
    """

    label: str
    element: str
    index: int
    op: int
    shift: tuple[int, int, int]
    cart: np.ndarray
    u: float
    v: float
    height: float


def atom_images(crystal, lo, hi) -> list[tuple[int, int, tuple[int, int, int], np.ndarray]]:
    """All distinct atom copies with fractional coordinates in the box [lo, hi].

    Parameters
    ----------
    crystal : Crystal
    lo, hi : array_like, shape (3,)
        Fractional corners of the box (inclusive).

    Returns
    -------
    list of (index, op, shift, frac)
        Atom index, operation, lattice shift and fractional position of each
        copy; copies of special-position atoms that coincide are listed once.
    """
    lo = np.asarray(lo, dtype=float)
    hi = np.asarray(hi, dtype=float)
    rot, trans = crystal.symops
    out = []
    for i, atom in enumerate(crystal.atoms):
        sites = atom_sites(crystal, i)
        base = np.einsum("oij,j->oi", rot, atom.xyz) + trans
        site, shift = lattice_candidates(sites.frac, lo, hi)
        for s, n in zip(site, shift, strict=True):
            frac = sites.frac[s] + n
            op = int(sites.groups[s][0])
            total = tuple(int(v) for v in np.rint(frac - base[op]))
            out.append((i, op, total, frac))
    return out


# --------------------------------------------------------------------------- plane
def _resolve_atom(crystal, spec) -> np.ndarray:
    """Cartesian position of 'label', (label, op) or (label, op, shift); op an index or triplet."""
    if isinstance(spec, str):
        label, op, shift = spec, 0, (0, 0, 0)
    else:
        spec = tuple(spec)
        if not 1 <= len(spec) <= 3:
            raise InputError(
                f"atom specification {spec!r}: use label, (label, op) or (label, op, shift)"
            )
        label = spec[0]
        op = spec[1] if len(spec) > 1 else 0
        shift = spec[2] if len(spec) > 2 else (0, 0, 0)
    try:
        atom = crystal.atoms[crystal.atom_index(label)]
    except KeyError:
        raise InputError(f"no atom labelled {label!r} in the structure") from None
    if isinstance(op, str):
        try:
            R, t = parse_symop(op)
        except ValueError as exc:
            raise InputError(f"atom {label}: bad symmetry operation {op!r}: {exc}") from exc
    else:
        if not 0 <= int(op) < crystal.n_ops:
            raise InputError(f"atom {label}: operation index {op} outside 0..{crystal.n_ops - 1}")
        R, t = crystal.rotations[int(op)], crystal.translations[int(op)]
    shift = np.asarray(shift, dtype=float).reshape(-1)
    if shift.shape != (3,):
        raise InputError(f"atom {label}: the lattice shift needs three integers")
    return crystal.frac_to_cart(R @ atom.xyz + t + shift)


def _two_sizes(size) -> tuple[float, float]:
    s = np.broadcast_to(np.asarray(size, dtype=float), (2,))
    if not np.all(np.isfinite(s) & (s > 0)):
        raise InputError(f"plane size must be positive (Å), got {size!r}")
    return float(s[0]), float(s[1])


@dataclass(eq=False)
class Plane:
    """A rectangular map in a plane: points on a square mesh, 2-D coordinates.

    Parameters
    ----------
    origin : array_like, shape (3,)
        Cartesian centre of the map, Å.
    e1, e2 : array_like, shape (3,)
        Orthonormal in-plane axes (the map's horizontal and vertical).
    size : float or (float, float)
        Side lengths along e1 and e2, Å.
    step : float
        Mesh step, Å. There are ``floor(size/step) + 1`` points per side,
        centred on ``origin``.
    """

    origin: np.ndarray
    e1: np.ndarray
    e2: np.ndarray
    size: tuple[float, float] = (6.0, 6.0)
    step: float = 0.05

    def __post_init__(self) -> None:
        self.origin = np.asarray(self.origin, dtype=float).reshape(3)
        self.e1 = np.asarray(self.e1, dtype=float).reshape(3)
        self.e2 = np.asarray(self.e2, dtype=float).reshape(3)
        gram = np.array([[self.e1 @ self.e1, self.e1 @ self.e2], [0.0, self.e2 @ self.e2]])
        if np.abs(gram - np.eye(2)).max() > 1e-8:
            raise InputError("plane axes e1 and e2 must be orthonormal")
        self.size = _two_sizes(self.size)
        if not (np.isfinite(self.step) and self.step > 0):
            raise InputError(f"plane step must be positive (Å), got {self.step!r}")
        self.step = float(self.step)

    @classmethod
    def from_normal(cls, origin, normal, direction, size=(6.0, 6.0), step: float = 0.05) -> Plane:
        """Plane through ``origin`` (Å) with this normal; e1 along ``direction`` in the plane."""
        n = np.asarray(normal, dtype=float).reshape(3)
        d = np.asarray(direction, dtype=float).reshape(3)
        if np.linalg.norm(n) == 0:
            raise InputError("the plane normal is a zero vector")
        n = n / np.linalg.norm(n)
        d = d - (d @ n) * n
        if np.linalg.norm(d) < 1e-8:
            raise InputError("the in-plane direction is parallel to the normal")
        e1 = d / np.linalg.norm(d)
        return cls(np.asarray(origin, float), e1, np.cross(n, e1), size, step)

    @classmethod
    def through_atoms(
        cls, crystal, atoms: Sequence, size=(6.0, 6.0), step: float = 0.05, centre="centroid"
    ) -> Plane:
        """Plane through three atoms.

        Parameters
        ----------
        crystal : Crystal
        atoms : sequence of 3 atom specifications
            Each a label (``"C1"``), ``(label, op)`` or ``(label, op, shift)``;
            op is an operation index or a triplet such as ``"-x,y+1/2,-z"``,
            shift a lattice translation (3 integers).
        size, step : see :class:`Plane`.
        centre : "centroid" or int
            Map centre: the centroid of the three atoms, or atom 0, 1 or 2.

        Notes
        -----
        e1 points from atom 0 to atom 1; e2 lies in the plane, perpendicular
        to e1, on the side of atom 2; the normal is e1 × e2.
        """
        if len(atoms) != 3:
            raise InputError(f"a plane needs three atoms, got {len(atoms)}")
        p = np.array([_resolve_atom(crystal, a) for a in atoms])
        d1 = p[1] - p[0]
        n = np.cross(d1, p[2] - p[0])
        if np.linalg.norm(d1) < 1e-6 or np.linalg.norm(n) < 1e-6 * np.linalg.norm(d1) ** 2:
            raise InputError(f"atoms {list(atoms)} are (nearly) collinear: no plane through them")
        e1 = d1 / np.linalg.norm(d1)
        n /= np.linalg.norm(n)
        if isinstance(centre, str) and centre == "centroid":
            origin = p.mean(axis=0)
        elif not isinstance(centre, str) and int(centre) in (0, 1, 2):
            origin = p[int(centre)]
        else:
            raise InputError(f"centre must be 'centroid' or 0, 1, 2, got {centre!r}")
        return cls(origin, e1, np.cross(n, e1), size, step)

    @property
    def normal(self) -> np.ndarray:
        """Unit normal e1 × e2."""
        return np.cross(self.e1, self.e2)

    @property
    def u(self) -> np.ndarray:
        """Coordinates along e1 (Å), shape (n1,)."""
        n = int(np.floor(self.size[0] / self.step + 1e-9)) + 1
        return (np.arange(n) - 0.5 * (n - 1)) * self.step

    @property
    def v(self) -> np.ndarray:
        """Coordinates along e2 (Å), shape (n2,)."""
        n = int(np.floor(self.size[1] / self.step + 1e-9)) + 1
        return (np.arange(n) - 0.5 * (n - 1)) * self.step

    @property
    def shape(self) -> tuple[int, int]:
        """(n1, n2)."""
        return len(self.u), len(self.v)

    @property
    def points(self) -> np.ndarray:
        """Cartesian points (n1, n2, 3), Å; [i, j] is at u[i] e1 + v[j] e2 from the origin."""
        return (
            self.origin
            + self.u[:, None, None] * self.e1[None, None]
            + self.v[None, :, None] * self.e2[None, None]
        )

    def coordinates(self, cart) -> np.ndarray:
        """(u, v, height) in Å of Cartesian points (..., 3)."""
        d = np.asarray(cart, dtype=float) - self.origin
        return np.stack([d @ self.e1, d @ self.e2, d @ self.normal], axis=-1)

    def atoms(self, crystal, tolerance: float = 0.25, margin: float = 0.0) -> list[PlaneAtom]:
        """Atom copies within ``tolerance`` Å of the plane and inside the map (+ ``margin`` Å)."""
        hu, hv = 0.5 * self.size[0] + margin, 0.5 * self.size[1] + margin
        corners = np.array(
            [
                self.origin + a * hu * self.e1 + b * hv * self.e2 + c * tolerance * self.normal
                for a in (-1, 1)
                for b in (-1, 1)
                for c in (-1, 1)
            ]
        )
        f = crystal.cart_to_frac(corners)
        out = []
        for i, op, shift, frac in atom_images(crystal, f.min(axis=0), f.max(axis=0)):
            cart = crystal.frac_to_cart(frac)
            u, v, h = self.coordinates(cart)
            if abs(h) <= tolerance and abs(u) <= hu + 1e-9 and abs(v) <= hv + 1e-9:
                a = crystal.atoms[i]
                out.append(PlaneAtom(a.label, a.element, i, op, shift, cart, u, v, h))
        out.sort(key=lambda x: (x.index, x.u, x.v))
        return out


def fourier_on_plane(fmap, plane: Plane) -> np.ndarray:
    """A :class:`~chasm.maps.fourier.FourierMap` summed exactly at the points of a plane.

    The mesh is origin + u_i e1 + v_j e2, so the phases factorise
    (:meth:`~chasm.maps.fourier.FourierMap.evaluate_plane`): two tables of
    exponentials and one matrix product instead of one exponential per point
    and reflection.

    Returns
    -------
    ndarray, shape plane.shape
        Values in the map's units (e/Å³ for a residual map).
    """
    cr = fmap.crystal
    o, d1, d2 = cr.cart_to_frac(np.array([plane.origin, plane.e1, plane.e2]))
    return fmap.evaluate_plane(o, d1, d2, plane.u, plane.v)


# --------------------------------------------------------------------------- 3-D grids
@dataclass(eq=False)
class CellGrid:
    """Points on a 3-D grid: the unit cell (periodic) or a box.

    Point (i, j, k) is at ``origin + i axes[0] + j axes[1] + k axes[2]``.

    Attributes
    ----------
    crystal : Crystal
    shape : tuple of 3 int
    origin : ndarray, shape (3,)
        Cartesian position of point (0, 0, 0), Å.
    axes : ndarray, shape (3, 3)
        Rows are the grid steps, Cartesian Å.
    periodic : bool
        True for the cell grid (the step along a is a/n1, and the point n1,
        equal to point 0, is not stored); False for a box, whose last points
        lie on its far faces.
    """

    crystal: object
    shape: tuple[int, int, int]
    origin: np.ndarray
    axes: np.ndarray
    periodic: bool

    @classmethod
    def cell(cls, crystal, shape=None, spacing: float = 0.1) -> CellGrid:
        """The unit cell divided into n1 x n2 x n3 points (fractional i/n1, j/n2, k/n3).

        Parameters
        ----------
        crystal : Crystal
        shape : tuple of 3 int, optional
            Points per cell edge; by default ceil(edge / spacing).
        spacing : float
            Largest step along a cell edge, Å, when ``shape`` is not given.
        """
        if shape is None:
            if not (np.isfinite(spacing) and spacing > 0):
                raise InputError(f"grid spacing must be positive (Å), got {spacing!r}")
            edges = np.array(crystal.cell.parameters[:3], dtype=float)
            shape = tuple(int(n) for n in np.ceil(edges / spacing - 1e-9))
        shape = tuple(int(n) for n in shape)
        if len(shape) != 3 or min(shape) < 1:
            raise InputError(f"grid shape must be three positive integers, got {shape}")
        axes = (crystal.A / np.array(shape, dtype=float)[None]).T
        return cls(crystal, shape, np.zeros(3), axes, True)

    @classmethod
    def box(
        cls, crystal, atoms: Sequence = (), points=None, margin: float = 2.0, spacing: float = 0.1
    ) -> CellGrid:
        """A Cartesian box (axes x, y, z) around atoms and/or points, with a margin.

        Parameters
        ----------
        crystal : Crystal
        atoms : sequence of atom specifications
            As in :meth:`Plane.through_atoms`: label, (label, op) or (label, op, shift).
        points : array_like, shape (n, 3), optional
            More Cartesian points (Å) to enclose.
        margin : float
            Added on every side, Å.
        spacing : float
            Grid step, Å.
        """
        pos = [_resolve_atom(crystal, a) for a in atoms]
        if points is not None:
            pos += list(check_points(points).reshape(-1, 3))
        if not pos:
            raise InputError("a box needs at least one atom or point")
        if not (np.isfinite(spacing) and spacing > 0 and np.isfinite(margin) and margin >= 0):
            raise InputError("box spacing must be positive and margin non-negative (Å)")
        pos = np.array(pos)
        lo, hi = pos.min(axis=0) - margin, pos.max(axis=0) + margin
        n = np.maximum(np.ceil((hi - lo) / spacing - 1e-9).astype(int), 1) + 1
        return cls(crystal, tuple(int(x) for x in n), lo, np.eye(3) * spacing, False)

    @property
    def n_points(self) -> int:
        return int(np.prod(self.shape))

    @property
    def voxel_volume(self) -> float:
        """Volume per grid point, Å³."""
        return float(abs(np.linalg.det(self.axes)))

    def _index(self, i0: int, i1: int) -> np.ndarray:
        grids = np.meshgrid(
            np.arange(i0, i1), np.arange(self.shape[1]), np.arange(self.shape[2]), indexing="ij"
        )
        return np.stack(grids, axis=-1).astype(float)

    def points_slab(self, i0: int, i1: int) -> np.ndarray:
        """Cartesian points of the slab i0 <= i < i1, shape (i1 - i0, n2, n3, 3), Å."""
        return self.origin + self._index(i0, i1) @ self.axes

    @property
    def points(self) -> np.ndarray:
        """All Cartesian points (n1, n2, n3, 3), Å (use :meth:`map` for large grids)."""
        return self.points_slab(0, self.shape[0])

    @property
    def frac(self) -> np.ndarray:
        """All fractional coordinates (n1, n2, n3, 3)."""
        return self.crystal.cart_to_frac(self.points)

    def map(
        self,
        function: Callable[[np.ndarray], np.ndarray],
        max_points: int = 500_000,
        symmetric: bool = False,
    ) -> np.ndarray:
        """Values of ``function(points)`` on the grid, evaluated slab by slab.

        Parameters
        ----------
        function : callable
            Takes Cartesian points (..., 3) and returns values (...), e.g.
            ``lambda p: deformation_density(crystal, models, p)``.
        max_points : int
            Points passed per call (bounds the memory).
        symmetric : bool
            The function is invariant under the space group (any density of
            the crystal is): on a cell grid that the operations map onto
            itself, evaluate one point per orbit (:meth:`orbits`) and copy
            the value to the others, 1/|G| of the work for points in
            general position. Ignored (every point evaluated) for a box or a
            grid the operations do not map onto itself.

        Returns
        -------
        ndarray, shape (n1, n2, n3)
        """
        orbit = self.orbits() if symmetric else None
        if orbit is not None:
            reps = np.flatnonzero(orbit == np.arange(orbit.size))
            index = np.stack(np.unravel_index(reps, self.shape), axis=-1).astype(float)
            values = np.empty(len(reps))
            for a in range(0, len(reps), max(1, max_points)):
                pts = self.origin + index[a : a + max_points] @ self.axes
                values[a : a + max_points] = function(pts)
            full = np.empty(orbit.size)
            full[reps] = values
            return full[orbit].reshape(self.shape)
        out = np.empty(self.shape)
        step = max(1, max_points // (self.shape[1] * self.shape[2]))
        for i0 in range(0, self.shape[0], step):
            i1 = min(self.shape[0], i0 + step)
            out[i0:i1] = function(self.points_slab(i0, i1))
        return out

    def orbits(self) -> np.ndarray | None:
        """For each grid point (flat index), the smallest flat index of its symmetry images.

        Point g (fractional g/n) goes to n (R g/n + t) under (R, t); on a cell
        grid whose shape the operations respect (n_i R_ij / n_j and n_i t_i
        integers) that is a grid point, and the orbits of the group
        partition the grid. Points with equal entries are images of each
        other; the entry equal to its own index marks one representative.

        Returns
        -------
        ndarray of int, shape (n1 n2 n3,), or None
            None for a box or a grid the operations do not map onto itself.
        """
        if not self.periodic:
            return None
        n = np.array(self.shape, dtype=float)
        rot, trans = self.crystal.symops
        m = rot * n[None, :, None] / n[None, None, :]  # n_i R_ij / n_j
        tn = trans * n[None, :]
        if not (np.allclose(m, np.rint(m), atol=1e-9) and np.allclose(tn, np.rint(tn), atol=1e-9)):
            return None
        m, tn = np.rint(m).astype(np.int64), np.rint(tn).astype(np.int64)
        n1, n2, n3 = self.shape
        strides = (n2 * n3, n3, 1)
        axes = [
            np.arange(k, dtype=np.int64).reshape([-1 if a == b else 1 for b in range(3)])
            for a, k in enumerate(self.shape)
        ]  # g1, g2, g3 broadcast over the grid
        best = np.arange(self.n_points, dtype=np.int64).reshape(self.shape)
        for r, t in zip(m, tn, strict=True):
            flat = np.zeros(self.shape, dtype=np.int64)
            for i in range(3):
                comp = (r[i, 0] * axes[0] + r[i, 1] * axes[1] + r[i, 2] * axes[2] + t[i]) % (
                    self.shape[i]
                )
                flat += strides[i] * comp
            np.minimum(best, flat, out=best)
        return best.reshape(-1)

    def integrate(self, values) -> float:
        """Σ values x voxel volume (electrons for a density in e/Å³ on a periodic cell grid)."""
        v = np.asarray(values, dtype=float)
        if v.shape != self.shape:
            raise InputError(f"values have shape {v.shape}, the grid {self.shape}")
        return float(v.sum() * self.voxel_volume)

    def atoms(self) -> list[tuple[str, str, np.ndarray]]:
        """Atom copies in the grid's region: (element, label, Cartesian Å).

        The cell grid lists the cell contents (fractional coordinates in
        [0, 1)); a box lists the copies inside the box.
        """
        cr = self.crystal
        if self.periodic:
            found = atom_images(cr, np.zeros(3), np.ones(3) - 1e-9)
            return [
                (cr.atoms[i].element, cr.atoms[i].label, cr.frac_to_cart(f)) for i, _, _, f in found
            ]
        span = self.axes * (np.array(self.shape) - 1)[:, None]
        corners = np.array(
            [
                self.origin + a * span[0] + b * span[1] + c * span[2]
                for a in (0, 1)
                for b in (0, 1)
                for c in (0, 1)
            ]
        )
        f = cr.cart_to_frac(corners)
        out = []
        inv = np.linalg.inv(span.T) if np.all(np.array(self.shape) > 1) else None
        for i, _, _, frac in atom_images(cr, f.min(axis=0), f.max(axis=0)):
            cart = cr.frac_to_cart(frac)
            if inv is not None:
                g = inv @ (cart - self.origin)
                if np.any(g < -1e-9) or np.any(g > 1 + 1e-9):
                    continue
            out.append((cr.atoms[i].element, cr.atoms[i].label, cart))
        return out

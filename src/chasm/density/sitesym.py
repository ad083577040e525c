"""Multipole populations allowed on special positions (site symmetry).

A density ``rho(u) = sum_lm P_lm d_lm(M^T u)`` (local frame M, Cartesian u)
is invariant under the site-symmetry group G when ``rho(R u) = rho(u)`` for
every R in G. Written in the local frame, ``R_loc = M^T R M``, and in the
orthonormal basis (``a = c * P``, see :mod:`chasm.density.harmonics`), the
condition is ``D(R_loc) a = a`` for all R; the group average
``Pi = <D(R_loc)>_G`` is the orthogonal projector onto those ``a``. In the
population (d_lm) basis the projector is ``C^-1 Pi C`` with ``C = diag(c)``.
This works for any orientation of the local axes (CONVENTIONS.md).

Point groups (:func:`point_group_rotations`) are given in the orientation
of the index-picking table of Kurki-Suonio (1977), reproduced in
International Tables for Crystallography Vol. B, chapter 1.2 (P. Coppens),
Table 1.2.3.3 (the section on multipoles is 1.2.7 in the 2010 edition), and in Coppens,
"X-ray Charge Densities and Chemical Bonding" (1997), Appendix D:

* z along the principal axis (n-fold, -n), or normal to the mirror of "m";
* y along the secondary 2-fold axis, or normal to the secondary mirror
  ("Y || 2" / "Y perpendicular to m"); for groups where the secondary
  elements are equivalent under the main axis (222, mm2, mmm, 4-fold,
  6-fold groups) both x and y are secondary directions;
* -42m: 2-fold axes along x and y (mirrors normal to [110] and [1-10]);
  "-4m2" gives the other setting (mirrors normal to x and y);
* trigonal and -6m2: one mirror normal to y (3m, -3m, -6m2) and a 2-fold
  along y (32, -3m). In hexagonal axes with x || a (the usual Cartesian
  convention) this is the Hermann-Mauguin setting 31m, -31m, 312, -62m.
  The settings with the mirror normal to x (3m1, -3m1) or the 2-fold along
  x (321) are available under those names ("-62m" is accepted as a synonym
  of the K-S "-6m2");
* cubic groups: x, y, z along the 2-fold (23, m-3) or 4-fold / -4 axes
  (432, -43m, m-3m), 3-fold axes along <111>.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from chasm.density.harmonics import (
    check_lmax,
    check_orthogonal,
    density_to_wavefunction,
    full_matrix,
    n_harmonics,
)
from chasm.errors import InputError

# --------------------------------------------------------------------------
# Point groups
# --------------------------------------------------------------------------

_I = np.eye(3)
_INV = -np.eye(3)
_C2Z = np.diag([-1.0, -1.0, 1.0])
_C2X = np.diag([1.0, -1.0, -1.0])
_C2Y = np.diag([-1.0, 1.0, -1.0])
_MX = np.diag([-1.0, 1.0, 1.0])  # mirror normal to x
_MY = np.diag([1.0, -1.0, 1.0])  # mirror normal to y
_MZ = np.diag([1.0, 1.0, -1.0])  # mirror normal to z
_C4Z = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
_C3Z = np.array(
    [[-0.5, -np.sqrt(3.0) / 2.0, 0.0], [np.sqrt(3.0) / 2.0, -0.5, 0.0], [0.0, 0.0, 1.0]]
)
_C6Z = np.array([[0.5, -np.sqrt(3.0) / 2.0, 0.0], [np.sqrt(3.0) / 2.0, 0.5, 0.0], [0.0, 0.0, 1.0]])
_C3D = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # 3 along [111]

_GENERATORS: dict[str, tuple[np.ndarray, ...]] = {
    "1": (_I,),
    "-1": (_INV,),
    "2": (_C2Z,),
    "m": (_MZ,),
    "2/m": (_C2Z, _INV),
    "222": (_C2Z, _C2Y),
    "mm2": (_MX, _MY),
    "mmm": (_MX, _MY, _MZ),
    "4": (_C4Z,),
    "-4": (-_C4Z,),
    "4/m": (_C4Z, _INV),
    "422": (_C4Z, _C2Y),
    "4mm": (_C4Z, _MY),
    "-42m": (-_C4Z, _C2X),
    "-4m2": (-_C4Z, _MX),
    "4/mmm": (_C4Z, _MY, _INV),
    "3": (_C3Z,),
    "-3": (_C3Z, _INV),
    "32": (_C3Z, _C2Y),
    "312": (_C3Z, _C2Y),
    "321": (_C3Z, _C2X),
    "3m": (_C3Z, _MY),
    "31m": (_C3Z, _MY),
    "3m1": (_C3Z, _MX),
    "-3m": (_C3Z, _MY, _INV),
    "-31m": (_C3Z, _MY, _INV),
    "-3m1": (_C3Z, _MX, _INV),
    "6": (_C6Z,),
    "-6": (-_C6Z,),
    "6/m": (_C6Z, _INV),
    "622": (_C6Z, _C2Y),
    "6mm": (_C6Z, _MY),
    "-6m2": (-_C6Z, _MY),
    "-62m": (-_C6Z, _MY),
    "6/mmm": (_C6Z, _MY, _INV),
    "23": (_C2Z, _C2X, _C3D),
    "m-3": (_C2Z, _C2X, _C3D, _INV),
    "432": (_C4Z, _C3D),
    "-43m": (-_C4Z, _C3D),
    "m-3m": (_C4Z, _C3D, _INV),
}

_ALIASES = {"m3": "m-3", "m3m": "m-3m", "2mm": "mm2"}

POINT_GROUPS: tuple[str, ...] = tuple(_GENERATORS)
"""Symbols accepted by :func:`point_group_rotations`."""


def _close_group(generators: tuple[np.ndarray, ...], max_order: int = 48) -> np.ndarray:
    """All products of the generators (a finite group of orthogonal matrices)."""
    elements = [np.eye(3)]
    keys = {tuple(np.round(np.eye(3), 6).ravel())}
    frontier = [np.eye(3)]
    while frontier:
        new = []
        for a in frontier:
            for g in generators:
                b = g @ a
                key = tuple(np.round(b, 6).ravel() + 0.0)
                if key not in keys:
                    keys.add(key)
                    elements.append(b)
                    new.append(b)
        if len(elements) > max_order:
            raise InputError("the generators do not close to a finite crystallographic group")
        frontier = new
    return np.array(elements)


@cache
def _point_group(symbol: str) -> np.ndarray:
    ops = _close_group(_GENERATORS[symbol])
    # Sort: identity first, then proper before improper, for readability.
    det = np.linalg.det(ops)
    trace = np.trace(ops, axis1=1, axis2=2)
    order = np.lexsort((-trace, -det))
    ops = ops[order]
    ops.setflags(write=False)
    return ops


def point_group_rotations(symbol: str) -> np.ndarray:
    """Cartesian matrices of a crystallographic point group.

    Orientation as in the Kurki-Suonio index-picking table (see the module
    docstring): z along the main axis, y along the secondary 2-fold or
    normal to the secondary mirror; "3m1", "-3m1", "321", "-4m2" give the
    alternative settings.

    Parameters
    ----------
    symbol : str
        Hermann-Mauguin symbol, e.g. "mm2", "-42m", "6/mmm", "m-3m"
        (spaces ignored; "m3", "m3m" accepted).

    Returns
    -------
    ndarray, shape (n, 3, 3)
        All n operations (identity first), orthogonal, proper and improper.
    """
    key = str(symbol).replace(" ", "")
    key = _ALIASES.get(key, key)
    if key not in _GENERATORS:
        raise InputError(f"unknown point group {symbol!r}; known: {', '.join(POINT_GROUPS)}")
    return _point_group(key).copy()


# --------------------------------------------------------------------------
# Projector onto the site-symmetric populations
# --------------------------------------------------------------------------


def _check_group(ops: np.ndarray, tol: float = 1e-6) -> None:
    """Raise InputError unless the matrices form a group (closed under products)."""
    n = ops.shape[0]
    prods = np.einsum("aij,bjk->abik", ops, ops).reshape(n * n, 9)
    flat = ops.reshape(n, 9)
    dist = np.abs(prods[:, None, :] - flat[None, :, :]).max(axis=2)
    found = dist.min(axis=1) < tol
    if not np.all(found):
        k = int(np.argmin(found))
        raise InputError(
            "site_rotations is not a group: the product of operations "
            f"{k // n} and {k % n} is not in the list; give every operation of the "
            "site-symmetry group (not only generators)"
        )


def _orthogonal_projector(site_rotations: np.ndarray, frame: np.ndarray, lmax: int) -> np.ndarray:
    ops = np.asarray(site_rotations, dtype=float)
    if ops.ndim == 2:
        ops = ops[None]
    if ops.ndim != 3 or ops.shape[1:] != (3, 3) or ops.shape[0] == 0:
        raise InputError(f"site_rotations must have shape (n, 3, 3), got {ops.shape}")
    try:
        ops = check_orthogonal(ops)
    except ValueError as exc:
        raise InputError(f"site_rotations: {exc}") from None
    m = np.asarray(frame, dtype=float)
    if m.shape != (3, 3):
        raise InputError(f"frame must have shape (3, 3), got {m.shape}")
    try:
        m = check_orthogonal(m)
    except ValueError as exc:
        raise InputError(f"frame: {exc}") from None
    _check_group(ops)
    local = np.einsum("ji,njk,kl->nil", m, ops, m)  # M^T R M
    return full_matrix(local, lmax).mean(axis=0)


def multipole_projector(site_rotations: np.ndarray, frame: np.ndarray, lmax: int) -> np.ndarray:
    """Projector onto the site-symmetric populations, d_lm (population) basis.

    Parameters
    ----------
    site_rotations : ndarray, shape (n, 3, 3)
        Cartesian matrices of ALL operations of the site-symmetry group
        (proper or improper, identity included). The density is required to
        satisfy ``rho(R r) = rho(r)`` about the atom.
    frame : ndarray, shape (3, 3)
        Local frame M (local axes as columns, Cartesian), e.g. from
        :func:`chasm.density.frames.local_frame`.
    lmax : int
        Highest order, 0..4.

    Returns
    -------
    ndarray, shape ((lmax+1)**2, (lmax+1)**2)
        Q with ``P_sym = Q @ P``: idempotent, block diagonal in l, not
        symmetric in general (the d_lm are not orthonormal). The density of
        ``Q @ P`` is the group average of the density of P.

    Raises
    ------
    InputError
        Bad shapes, non-orthogonal matrices, or operations not forming a group.
    """
    lmax = check_lmax(lmax)
    pi_orth = _orthogonal_projector(site_rotations, frame, lmax)
    c = density_to_wavefunction(lmax)
    return pi_orth * (c[None, :] / c[:, None])


def allowed_multipoles(
    site_rotations: np.ndarray, frame: np.ndarray, lmax: int, tol: float = 1e-8
) -> tuple[np.ndarray, np.ndarray | None]:
    """Basis of the symmetry-allowed populations and, if possible, a mask.

    Parameters
    ----------
    site_rotations : ndarray, shape (n, 3, 3)
        Cartesian site-symmetry group (all operations), see
        :func:`multipole_projector`.
    frame : ndarray, shape (3, 3)
        Local frame M (local axes as columns).
    lmax : int
        Highest order, 0..4.
    tol : float
        Entries of the basis smaller than this are set to zero; a basis whose
        columns then each have a single nonzero entry defines the mask.

    Returns
    -------
    basis : ndarray, shape ((lmax+1)**2, k)
        Orthonormal (Euclidean, in population space) basis of the allowed
        subspace; each column belongs to a single l. Allowed populations are
        ``P = basis @ q``. Deterministic: column j is the Gram-Schmidt
        orthogonalised projection of the lowest-index P_lm not yet spanned.
        When a mask exists the columns are exactly unit vectors.
    mask : ndarray of bool, shape ((lmax+1)**2,), or None
        True for the allowed P_lm when the allowed subspace is spanned by
        individual P_lm (local axes along the symmetry elements); None when
        symmetry couples several P_lm (cubic sites, or unaligned axes).
    """
    lmax = check_lmax(lmax)
    nh = n_harmonics(lmax)
    q = multipole_projector(site_rotations, frame, lmax)
    # Orthonormal basis of range(q): a nonzero singular value of a projector is >= 1.
    u, s, _ = np.linalg.svd(q)
    rng = u[:, s > 0.5]
    g = rng @ rng.T  # Euclidean orthogonal projector onto the allowed subspace
    cols: list[np.ndarray] = []
    for k in range(nh):
        v = g[:, k].copy()
        for _ in range(2):
            for b in cols:
                v -= np.dot(b, v) * b
        norm = np.linalg.norm(v)
        if norm > 1e-6:
            cols.append(v / norm)
        if len(cols) == rng.shape[1]:
            break
    if len(cols) < rng.shape[1]:  # pathological: keep the SVD basis
        cols = list(rng.T)
    basis = np.array(cols).T if cols else np.zeros((nh, 0))
    basis[np.abs(basis) < tol] = 0.0
    nonzero = np.count_nonzero(basis, axis=0)
    if np.all(nonzero == 1):
        mask = np.zeros(nh, dtype=bool)
        mask[np.nonzero(basis)[0]] = True
        basis = np.eye(nh)[:, mask]
        return basis, mask
    return basis, None

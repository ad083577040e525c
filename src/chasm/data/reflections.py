"""Reflections as data: the container, sinθ/λ, absences, merging of equivalents.

The data layer's reflection list (issue 18): :class:`Reflections` is what
every reader of reflection files returns (:mod:`chasm.io.shelx_hkl` for HKLF 4
and XD, :mod:`chasm.io.shelx_cif` for reflections embedded in a CIF) and what
the structure-factor code and the data sets use; it does not depend on any file
format. :func:`check_resolution` refuses reflections beyond a sinθ/λ limit,
:func:`systematic_absences` and :func:`check_absences` find the reflections the
space group forbids, :func:`merge` averages symmetry equivalents.
:mod:`chasm.io.shelx_hkl` re-exports all of these under their old names.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import gemmi
import numpy as np
from numpy.typing import ArrayLike

from chasm.errors import InputError

__all__ = [
    "Reflections",
    "MergeInfo",
    "MAX_INDEX",
    "MAX_STOL",
    "check_resolution",
    "stol",
    "systematic_absences",
    "check_absences",
    "merge",
]


#: Largest |h|, |k|, |l| read from any file (a cell edge of 2000 Å at sinθ/λ = 2.5 Å⁻¹);
#: a tighter, cell-dependent bound is :func:`check_resolution`.
MAX_INDEX = 9999
#: Default largest sinθ/λ (Å⁻¹) accepted by :func:`check_resolution`.
MAX_STOL = 2.5


@dataclass(eq=False)
class Reflections:
    """Reflections read from a file (or merged from such).

    Attributes
    ----------
    hkl : ndarray, shape (n, 3), int
        Miller indices.
    f2 : ndarray, shape (n,), or None
        Observed F² (electrons² on the file's scale); None for an index-only file.
    sigma : ndarray, shape (n,), or None
        σ(F²), all positive; None when the file has no σ column.
    batch : ndarray, shape (n,), int, or None
        Batch numbers when the file has them.
    lines : ndarray, shape (n,), int
        1-based line number of each reflection in ``path`` (for a merged set,
        the line of the first contributing measurement).
    path : str or None
        The file read.
    layout : str or None
        How the file was read: ``"fixed"``, ``"free"`` (HKLF 4) or ``"xd"``.
    """

    hkl: np.ndarray
    f2: np.ndarray | None = None
    sigma: np.ndarray | None = None
    batch: np.ndarray | None = None
    lines: np.ndarray = None  # type: ignore[assignment]  # None: zeros (__post_init__)
    path: str | None = None
    layout: str | None = None

    def __post_init__(self) -> None:
        self.hkl = np.asarray(self.hkl, dtype=int).reshape(-1, 3)
        n = len(self.hkl)
        for name in ("f2", "sigma"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, np.asarray(value, dtype=float).reshape(n))
        if self.batch is not None:
            self.batch = np.asarray(self.batch, dtype=int).reshape(n)
        if self.lines is None:
            self.lines = np.zeros(n, dtype=int)
        self.lines = np.asarray(self.lines, dtype=int).reshape(n)

    def __len__(self) -> int:
        return len(self.hkl)

    def subset(self, mask: np.ndarray | slice) -> Reflections:
        """A new Reflections with the rows selected by a boolean mask or index array."""
        return Reflections(
            hkl=self.hkl[mask],
            f2=None if self.f2 is None else self.f2[mask],
            sigma=None if self.sigma is None else self.sigma[mask],
            batch=None if self.batch is None else self.batch[mask],
            lines=self.lines[mask],
            path=self.path,
            layout=self.layout,
        )


# ----------------------------------------------------------------------------- parsing


def check_resolution(
    reflections: Reflections, cell_or_B: Any, max_stol: float = MAX_STOL
) -> Reflections:
    """Refuse reflections beyond sinθ/λ = ``max_stol`` (Å⁻¹) for this cell.

    A guard against corrupted indices (e.g. 9999 or 2³¹), which would make the
    structure-factor engine ask for tens of GiB: :data:`MAX_STOL` = 2.5 Å⁻¹ is
    beyond any measurement (sinθ/λ ≤ 1/λ, and 2.5 Å⁻¹ needs λ ≤ 0.4 Å at
    2θ = 180°).

    Parameters
    ----------
    reflections : Reflections
    cell_or_B : gemmi.UnitCell, Crystal or reciprocal basis (see :func:`stol`)
    max_stol : float
        Å⁻¹.

    Returns
    -------
    Reflections
        The same object.

    Raises
    ------
    InputError
        Naming the file and the line of the first reflection beyond the limit.
    """
    if len(reflections) == 0:
        return reflections
    s = stol(reflections.hkl, cell_or_B)
    bad = np.flatnonzero(~(s <= max_stol))
    if bad.size:
        k = bad[0]
        h = tuple(int(v) for v in reflections.hkl[k])
        raise InputError(
            f"reflection {h} has sinθ/λ = {s[k]:.4g} Å⁻¹, beyond the allowed maximum "
            f"{max_stol:g} Å⁻¹ for this cell ({bad.size} such reflection"
            f"{'s' if bad.size > 1 else ''}); wrong cell or corrupted indices?",
            path=reflections.path,
            line=int(reflections.lines[k]) or None,
        )
    return reflections


def stol(hkl: ArrayLike, cell_or_B: Any) -> np.ndarray:
    """sinθ/λ (Å⁻¹) = |B h| / 2 of Miller indices.

    Parameters
    ----------
    hkl : array_like, shape (n, 3)
    cell_or_B : gemmi.UnitCell, ndarray (3, 3) reciprocal basis B (columns a*,
        b*, c* in Å⁻¹), or an object with a ``B`` attribute (a Crystal).
    """
    if isinstance(cell_or_B, gemmi.UnitCell):
        b = np.linalg.inv(np.array(cell_or_B.orth.mat.tolist())).T
    elif hasattr(cell_or_B, "B"):
        b = np.asarray(cell_or_B.B, dtype=float)
    else:
        b = np.asarray(cell_or_B, dtype=float)
    out: np.ndarray = 0.5 * np.linalg.norm(np.asarray(hkl, dtype=float) @ b.T, axis=-1)
    return out


# ----------------------------------------------------------------------------- symmetry
def _group_ops(spacegroup: Any) -> gemmi.GroupOps:
    if isinstance(spacegroup, gemmi.GroupOps):
        return spacegroup
    return _spacegroup(spacegroup).operations()


def _spacegroup(spacegroup: Any) -> gemmi.SpaceGroup:
    if isinstance(spacegroup, gemmi.SpaceGroup):
        return spacegroup
    if isinstance(spacegroup, gemmi.GroupOps):
        sg = gemmi.find_spacegroup_by_ops(spacegroup)
        if sg is None:
            raise ValueError("these operations are not a space-group setting gemmi knows")
        return sg
    if hasattr(spacegroup, "spacegroup"):  # a Crystal
        if spacegroup.spacegroup is None:
            raise ValueError("the crystal's symmetry is not a setting gemmi knows")
        sg_of_crystal: gemmi.SpaceGroup = spacegroup.spacegroup
        return sg_of_crystal
    if isinstance(spacegroup, str):
        from chasm.crystal.symmetry import resolve_spacegroup

        return resolve_spacegroup(spacegroup)
    raise TypeError(f"expected a space group, got {type(spacegroup).__name__}")


def systematic_absences(hkl: ArrayLike, spacegroup: Any) -> np.ndarray:
    """True for the reflections that the space group forbids.

    Parameters
    ----------
    hkl : array_like, shape (n, 3), int
    spacegroup : gemmi.SpaceGroup, gemmi.GroupOps, str (H-M or Hall) or Crystal
    """
    ops = _group_ops(spacegroup)
    h = np.ascontiguousarray(np.asarray(hkl).reshape(-1, 3), dtype=np.int32)
    return np.asarray(ops.systematic_absences(h), dtype=bool)


def check_absences(reflections: Reflections, spacegroup: Any, show: int = 5) -> np.ndarray:
    """Indices of systematically absent reflections; warns when there are any.

    The warning gives their number and the first ``show`` of them with F²/σ and
    the file line, so that a wrong space group or a mis-indexed file shows up.
    """
    absent = np.flatnonzero(systematic_absences(reflections.hkl, spacegroup))
    if absent.size:
        items = []
        for k in absent[:show]:
            text = "{} {} {}".format(*reflections.hkl[k])
            if reflections.f2 is not None and reflections.sigma is not None:
                text += f" (F²/σ = {reflections.f2[k] / reflections.sigma[k]:.1f})"
            text += f" line {reflections.lines[k]}"
            items.append(text)
        more = ", …" if absent.size > show else ""
        warnings.warn(
            f"{reflections.path or 'reflections'}: {absent.size} systematically absent "
            f"reflection{'s' if absent.size > 1 else ''}: {'; '.join(items)}{more}",
            stacklevel=2,
        )
    return absent


# ----------------------------------------------------------------------------- merging
@dataclass(eq=False)
class MergeInfo:
    """Bookkeeping of :func:`merge`.

    Attributes
    ----------
    group : ndarray, shape (n_in,), int
        For each input reflection, the row of the merged set it went into.
    counts : ndarray, shape (n_out,), int
        Number of measurements merged into each unique reflection.
    n_in, n_out : int
        Numbers of input and merged reflections.
    n_multiple : int
        Unique reflections measured more than once.
    rint : float
        Σ|F² − ⟨F²⟩| / Σ F² over the measurements of those reflections (NaN if none).
    rsigma : float
        Σ σ(⟨F²⟩) / Σ ⟨F²⟩ over the merged set.
    friedel : bool
        Whether Friedel mates were merged.
    """

    group: np.ndarray
    counts: np.ndarray
    n_in: int
    n_out: int
    n_multiple: int
    rint: float
    rsigma: float
    friedel: bool


def merge(
    reflections: Reflections, spacegroup: Any, friedel: bool = True
) -> tuple[Reflections, float, MergeInfo]:
    """Merge symmetry-equivalent measurements.

    Each h is mapped to its representative in gemmi's reciprocal asymmetric unit
    (``ReciprocalAsu``) of the point group (``friedel=False``) or of the Laue
    class (``friedel=True``). With ``friedel=False`` a reflection and its Friedel
    mate stay apart, unless the reflection is centric (then h and −h are
    symmetry-equivalent anyway); the mates are returned as −(ASU representative).

    Rules
    -----
    - ⟨F²⟩ = Σ w F² / Σ w with w = 1/σ².
    - σ(⟨F²⟩) = max(σ_int, σ_ext), σ_int = (Σ w)^(−1/2) and
      σ_ext = [Σ w (F² − ⟨F²⟩)² / ((n − 1) Σ w)]^(1/2) for n > 1 measurements
      (σ_ext is not used when n = 1).
    - Rint = Σ |F² − ⟨F²⟩| / Σ F², both sums over every measurement of the unique
      reflections measured more than once (SHELX's definition).
    - The batch numbers are dropped; ``lines`` gives the line of the first
      measurement of each group. Merged rows are sorted by ASU index.

    Parameters
    ----------
    reflections : Reflections
        Must have F² and σ.
    spacegroup : gemmi.SpaceGroup, gemmi.GroupOps, str (H-M or Hall) or Crystal
        With a Crystal, reflections beyond sinθ/λ = :data:`MAX_STOL` for its cell
        are refused first (:func:`check_resolution`), as corrupted indices.
    friedel : bool
        Merge Friedel mates (ignore anomalous scattering).

    Returns
    -------
    merged : Reflections
    rint : float
        NaN when no reflection was measured twice.
    info : MergeInfo
    """
    if reflections.f2 is None or reflections.sigma is None:
        raise InputError("merging needs F² and σ(F²) for every reflection", path=reflections.path)
    if hasattr(spacegroup, "B"):  # a Crystal: its cell bounds the indices
        check_resolution(reflections, spacegroup)
    sg = _spacegroup(spacegroup)
    ops = sg.operations()
    asu = gemmi.ReciprocalAsu(sg)
    keys = np.empty((len(reflections), 4), dtype=int)
    for k, h in enumerate(reflections.hkl):
        rep, isym = asu.to_asu([int(v) for v in h], ops)
        mate = 0
        if not friedel and isym % 2 == 0 and not ops.is_reflection_centric(rep):
            mate = 1  # reached through −R: the Friedel mate of the representative
        keys[k, :3] = rep
        keys[k, 3] = mate
    unique, group, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    group = group.reshape(-1)
    n_out = len(unique)
    w = 1.0 / reflections.sigma**2
    sw = np.bincount(group, weights=w, minlength=n_out)
    mean = np.bincount(group, weights=w * reflections.f2, minlength=n_out) / sw
    resid = reflections.f2 - mean[group]
    chi = np.bincount(group, weights=w * resid**2, minlength=n_out)
    sigma_int = 1.0 / np.sqrt(sw)
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma_ext = np.where(counts > 1, np.sqrt(chi / ((counts - 1) * sw)), 0.0)
    sigma = np.maximum(sigma_int, sigma_ext)
    multiple = counts[group] > 1
    denominator = float(np.sum(reflections.f2[multiple]))
    rint = float(np.sum(np.abs(resid[multiple])) / denominator) if multiple.any() else math.nan
    hkl = np.where(unique[:, 3:4] == 1, -unique[:, :3], unique[:, :3])
    first = np.full(n_out, len(reflections), dtype=int)
    np.minimum.at(first, group, np.arange(len(reflections)))
    merged = Reflections(
        hkl=hkl,
        f2=mean,
        sigma=sigma,
        batch=None,
        lines=reflections.lines[first],
        path=reflections.path,
    )
    rsigma = float(np.sum(sigma) / np.sum(mean)) if n_out else math.nan
    info = MergeInfo(
        group=group,
        counts=counts,
        n_in=len(reflections),
        n_out=n_out,
        n_multiple=int(np.sum(counts > 1)),
        rint=rint,
        rsigma=rsigma,
        friedel=friedel,
    )
    return merged, rint, info

"""Seeded k-fold splits of a data set, stratified in resolution.

The observations of a data set (reflections or flipping ratios, after its
cut-offs) are sorted by sinθ/λ and taken in consecutive blocks of k; inside
each block a seeded random permutation deals one observation to each fold
(the last, shorter block to a random subset of the folds). Every fold thus
samples the whole resolution range evenly (the stratification of Krause et
al., IUCrJ 4 (2017) 420), fold sizes differ by at most one, and the split
depends only on the seed, the data-set name and the observations' sinθ/λ.
"""

from __future__ import annotations

import hashlib

import numpy as np

from chasm.errors import InputError

__all__ = ["MIN_FREE", "stratified_folds", "fold_seed", "check_folds", "fingerprint"]

#: Fewest observations a free set may have (a χ² of fewer says nothing).
MIN_FREE = 5


def fold_seed(seed: int, name: str) -> np.random.SeedSequence:
    """The seed of data set ``name``'s split: the user's seed and a digest of the name."""
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    return np.random.SeedSequence([int(seed), digest])


def stratified_folds(stol: np.ndarray, k: int, seed: np.random.SeedSequence | int) -> np.ndarray:
    """Fold index (0 … k−1) of every observation.

    Parameters
    ----------
    stol : ndarray (n,)
        sinθ/λ of the observations (Å⁻¹).
    k : int
        Number of folds, 2 ≤ k ≤ n.
    seed : SeedSequence or int

    Returns
    -------
    ndarray (n,) int
        Observation i is in the free set of fold ``folds[i]``.
    """
    stol = np.asarray(stol, dtype=float)
    n = len(stol)
    if not 2 <= k <= n:
        raise ValueError(f"need 2 <= k <= n, got k={k}, n={n}")
    rng = np.random.default_rng(seed)
    # ties in sinθ/λ (symmetry-unrelated reflections of equal d) broken at random
    order = np.lexsort((rng.permutation(n), stol))
    folds = np.empty(n, dtype=int)
    for start in range(0, n, k):
        block = order[start : start + k]
        folds[block] = rng.permutation(k)[: len(block)]
    return folds


def check_folds(k: int, sizes: dict[str, int], source: str | None = None) -> None:
    """Refuse k < 2 or a k that leaves a data set's free sets below :data:`MIN_FREE`.

    Parameters
    ----------
    k : int
    sizes : dict
        Data-set name -> observations after its cut-offs.
    source : str, optional
        The project file (named in the error).

    Raises
    ------
    InputError
    """
    if k < 2:
        raise InputError(f"--folds {k}: cross-validation needs at least 2 folds; use 2 to 20")
    name, n = min(sizes.items(), key=lambda item: item[1])
    if n // k < MIN_FREE:
        raise InputError(
            f"--folds {k}: data set {name!r} has {n} observations after its cut-offs, "
            f"{n // k} per free set (at least {MIN_FREE} needed); "
            f"use --folds {max(2, n // MIN_FREE)} or fewer",
            source,
        )


def fingerprint(hkl: np.ndarray, folds: np.ndarray) -> str:
    """A short digest of which reflection is in which fold (for comparing projects)."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(np.asarray(hkl, dtype=np.int64)).tobytes())
    h.update(np.ascontiguousarray(folds.astype(np.int64)).tobytes())
    return h.hexdigest()[:16]

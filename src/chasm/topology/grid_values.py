"""Values of a symmetric function on a periodic cell grid, evaluated once per orbit."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from chasm.maps.grids import CellGrid

__all__ = ["on_grid"]


def on_grid(
    grid: CellGrid,
    function: Callable[[np.ndarray], tuple[np.ndarray, ...]],
    max_points: int = 200_000,
) -> list[np.ndarray]:
    """Arrays ``function(points)`` (a tuple of values per point) on a cell grid.

    The function must be invariant under the space group (a density or
    potential of the crystal is): where the operations map the grid onto
    itself (:meth:`CellGrid.orbits`) it is called at one point per orbit and
    the values are copied to the images; otherwise at every point.

    Parameters
    ----------
    grid : CellGrid
        A periodic cell grid (or a box: every point is evaluated).
    function : callable
        Cartesian points (n, 3), Å -> tuple of arrays (n,).
    max_points : int
        Points per call (bounds the memory).

    Returns
    -------
    list of ndarray, each of shape ``grid.shape``
    """
    orbit = grid.orbits()
    if orbit is None:
        orbit = np.arange(grid.n_points)
    reps = np.flatnonzero(orbit == np.arange(orbit.size))
    index = np.stack(np.unravel_index(reps, grid.shape), axis=-1).astype(float)
    values: list[np.ndarray] = []
    for a in range(0, len(reps), max_points):
        out = function(grid.origin + index[a : a + max_points] @ grid.axes)
        if not values:
            values = [np.empty(len(reps)) for _ in out]
        for v, o in zip(values, out, strict=True):
            v[a : a + max_points] = o
    where = np.searchsorted(reps, orbit)
    return [v[where].reshape(grid.shape) for v in values]

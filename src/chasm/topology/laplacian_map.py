"""The Laplacian ∇²ρ of the static density on a plane, and its contour plot.

Values come from the analytic Hessian of :class:`DensityField` (e/Å⁵). The
plot uses the levels customary for Laplacian maps, ±{1, 2, 4, 8} × 10ⁿ e/Å⁵
for n = −3…3: solid lines for ∇²ρ > 0 (charge depletion), dashed for ∇²ρ < 0
(charge concentration).
"""

from __future__ import annotations

import numpy as np

from chasm.maps.plot import plot_plane
from chasm.topology.density_derivatives import DensityField

__all__ = ["LAPLACIAN_LEVELS", "laplacian_on_plane", "plot_laplacian"]

_POS = np.array([m * 10.0**e for e in range(-3, 4) for m in (1.0, 2.0, 4.0, 8.0)])
LAPLACIAN_LEVELS = np.concatenate([-_POS[::-1], _POS])
"""Contour levels of a Laplacian map, e/Å⁵."""
LAPLACIAN_CAPTION = "contours at ±{1, 2, 4, 8}·10ⁿ e/Å⁵, n = −3…3 (clipped at ±1000)"
"""What the levels are, for the caption (a list of all 56 would not fit)."""


def laplacian_on_plane(field: DensityField, plane) -> np.ndarray:
    """∇²ρ (e/Å⁵) at the mesh points of a :class:`chasm.maps.grids.Plane`.

    Returns an array of shape ``plane.shape``.
    """
    pts = plane.points
    _, _, hess = field(pts, order=2)
    return np.trace(hess, axis1=-2, axis2=-1)


def plot_laplacian(path, field: DensityField, plane, title: str | None = None):
    """Write the contour plot of ∇²ρ on a plane (PNG, SVG or PDF by suffix).

    Returns the :class:`chasm.maps.plot.PlaneDrawing` of :func:`plot_plane`.
    """
    values = laplacian_on_plane(field, plane)
    # the map is clipped at ±1000 e/Å⁵: the nuclear cusps diverge
    values = np.clip(values, -1e3, 1e3)
    return plot_plane(
        path,
        plane,
        values,
        field.crystal,
        kind="deformation",
        levels=LAPLACIAN_LEVELS,
        title=title or "static Laplacian of the model density (e/Å⁵)",
        caption=LAPLACIAN_CAPTION,
        unit="e/Å⁵",
        mask=0.0,
    )

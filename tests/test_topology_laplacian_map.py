"""Laplacian plane map: values against finite differences of the maps module's density."""

from __future__ import annotations

import numpy as np

from chasm.examples.urea_model import build_models, example_structure
from chasm.maps.density import model_density
from chasm.maps.grids import Plane
from chasm.topology.density_derivatives import DensityField
from chasm.topology.laplacian_map import laplacian_on_plane, plot_laplacian


def test_laplacian_plane_matches_finite_differences_and_plots(tmp_path):
    cr = example_structure()
    models = build_models(cr)[0]
    field = DensityField(cr, models)
    plane = Plane.through_atoms(cr, ["C1", "O1", "N1"], size=(3.0, 3.0), step=0.5)
    lap = laplacian_on_plane(field, plane)
    pts = plane.points
    assert lap.shape == pts.shape[:-1]
    flat = pts.reshape(-1, 3)[::5]
    h = 1e-3
    fd = sum(
        (
            model_density(cr, models, flat + h * e, tail=1e-12)
            - 2 * model_density(cr, models, flat, tail=1e-12)
            + model_density(cr, models, flat - h * e, tail=1e-12)
        )
        / h**2
        for e in np.eye(3)
    )
    np.testing.assert_allclose(lap.reshape(-1)[::5], fd, rtol=2e-4, atol=2e-3)
    drawing = plot_laplacian(tmp_path / "lap.png", field, plane)
    assert (tmp_path / "lap.png").stat().st_size > 1000
    assert len(drawing.levels) > 0

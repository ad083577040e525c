"""PNG bytes of a map figure drawn once on the Agg canvas (chasm.maps.plot.figure_png)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from chasm.maps.density import Plane
from chasm.maps.plot import figure_png, plane_figure, plot_plane
from chasm.report.figures import small_png


@pytest.fixture(scope="module")
def gaussian_map():
    """A signed two-Gaussian field on a 4 x 3 Å plane (no crystal: contours only)."""
    plane = Plane(np.zeros(3), np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), (4.0, 3.0), 0.1)
    u, v = np.meshgrid(plane.u, plane.v, indexing="ij")
    values = np.exp(-((u - 0.8) ** 2 + v**2)) - 0.6 * np.exp(-((u + 1.0) ** 2 + (v - 0.5) ** 2))
    return plane, values


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_figure_png_has_the_pixels_of_savefig(gaussian_map):
    """Drawn once and handed to Pillow: the same image as matplotlib's savefig at that dpi."""
    plane, values = gaussian_map
    fig, _ = plane_figure(plane, values, title="a field", kind="deformation")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    fig2, _ = plane_figure(plane, values, title="a field", kind="deformation")
    data = figure_png(fig2, dpi=80)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(io.BytesIO(data)).mode == "RGB"
    assert np.array_equal(pixels(data), pixels(buf.getvalue()))
    assert pixels(data).shape[:2] == (int(round(fig.get_figheight() * 80)), 480)


def test_palette_png_is_the_quantised_savefig_image(gaussian_map, tmp_path):
    """``palette``: the report's small PNG made in one step, equal to quantising savefig's."""
    plane, values = gaussian_map
    fig, _ = plane_figure(plane, values, kind="deformation")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    path = tmp_path / "m.png"
    plot_plane(path, plane, values, kind="deformation", dpi=60, palette=16)
    image = Image.open(path)
    assert image.mode == "P" and len(image.getcolors()) <= 16
    assert np.array_equal(pixels(path.read_bytes()), pixels(small_png(buf.getvalue(), 16)))
    # without a palette the file is a full-colour PNG, and it differs from the palette one
    plot_plane(tmp_path / "rgb.png", plane, values, kind="deformation", dpi=60)
    assert Image.open(tmp_path / "rgb.png").mode == "RGB"
    assert (tmp_path / "rgb.png").stat().st_size > path.stat().st_size

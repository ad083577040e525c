"""Contour plots of plane maps (chasm.maps.plot)."""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from chasm.crystal.cif import read_cif
from chasm.density.model import HansenCoppensAtom
from chasm.errors import InputError
from chasm.maps.density import Plane, deformation_density
from chasm.maps.plot import contour_levels, draw_plane, plot_plane

HEADERS = {".png": b"\x89PNG\r\n\x1a\n", ".pdf": b"%PDF-"}


def urea():
    return read_cif(str(files("chasm.examples").joinpath("urea.cif")))


@pytest.fixture(scope="module")
def urea_map():
    cr = urea()
    models = [
        HansenCoppensAtom(
            a.element,
            pv={"H": 0.8, "C": 3.9, "N": 5.1, "O": 6.2}[a.element],
            kappa=0.98,
            lmax=1,
            plm=[0.0, 0.05, 0.0, 0.0],
        )
        for a in cr.atoms
    ]
    plane = Plane.through_atoms(cr, ["C1", "O1", "N1"], size=(6.0, 5.0), step=0.1)
    return cr, plane, deformation_density(cr, models, plane.points)


def test_linear_levels_are_multiples_of_the_documented_steps():
    for kind in ("deformation", "residual"):  # the field's 0.05 e/Å³ (issue 19)
        lv = contour_levels(kind, -0.37, 0.52)
        np.testing.assert_allclose(lv, np.arange(-7, 11) * 0.05, atol=1e-12)
        assert 0.0 in lv
    # 0.1 on request
    np.testing.assert_allclose(
        contour_levels("deformation", -0.37, 0.52, step=0.1), np.arange(-3, 6) * 0.1, atol=1e-12
    )
    # a linear step on request for a spin map
    np.testing.assert_allclose(
        contour_levels("spin", -0.05, 0.03, step=0.02), [-0.04, -0.02, 0, 0.02]
    )


def test_spin_levels_are_plus_minus_0_01_times_powers_of_two():
    lv = contour_levels("spin")
    positive = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12]
    np.testing.assert_allclose(lv, sorted([-p for p in positive] + [0.0] + positive))
    assert np.all(contour_levels("density") > 0)


def test_level_errors():
    with pytest.raises(InputError, match="kind"):
        contour_levels("fancy", 0, 1)
    with pytest.raises(InputError, match="range"):
        contour_levels("deformation")
    with pytest.raises(InputError, match="larger step"):
        contour_levels("deformation", -1e3, 1e3, step=1e-3)
    with pytest.raises(InputError, match="positive"):
        contour_levels("residual", -1, 1, step=0.0)


def test_drawing_uses_the_levels_and_line_styles(urea_map):
    cr, plane, values = urea_map
    fig = Figure()
    FigureCanvasAgg(fig)
    drawing = draw_plane(fig.add_subplot(111), plane, values, cr)
    expected = contour_levels("deformation", values.min(), values.max())
    np.testing.assert_allclose(drawing.levels, expected)
    styles = {"positive": "solid", "negative": "dashed", "zero": "dotted"}
    drawn = []
    for name, cs in drawing.contours.items():
        assert {str(s) for s in np.atleast_1d(cs.linestyles)} == {styles[name]}
        lv = np.asarray(cs.levels)
        assert np.all(lv > 0) if name == "positive" else True
        assert np.all(lv < 0) if name == "negative" else True
        drawn += list(lv)
    in_range = expected[(expected >= values.min()) & (expected <= values.max())]
    np.testing.assert_allclose(sorted(drawn), in_range)
    assert {"positive", "negative", "zero"} <= set(drawing.contours)
    # atoms of the molecule and its bonds (distances checked here, not by the code under test)
    labels = [a.label for a in drawing.atoms]
    assert {"C1", "O1", "N1", "H1", "H2"} <= set(labels)
    pairs = {
        tuple(sorted((drawing.atoms[i].label, drawing.atoms[j].label))) for i, j in drawing.bonds
    }
    assert {("C1", "O1"), ("C1", "N1"), ("H1", "N1"), ("H2", "N1")} <= pairs
    assert ("N1", "O1") not in pairs and ("C1", "H1") not in pairs
    for i, j in drawing.bonds:
        assert np.linalg.norm(drawing.atoms[i].cart - drawing.atoms[j].cart) < 1.6
    assert "0.05 e/Å³" in drawing.caption and "dashed" in drawing.caption


@pytest.mark.parametrize("suffix", [".png", ".svg", ".pdf"])
def test_plot_files(tmp_path, urea_map, suffix):
    cr, plane, values = urea_map
    path = tmp_path / f"map{suffix}"
    drawing = plot_plane(path, plane, values, cr, kind="residual", title="urea")
    data = path.read_bytes()
    assert len(data) > 1000
    if suffix == ".svg":
        assert b"<svg" in data[:2000]
    else:
        assert data.startswith(HEADERS[suffix])
    np.testing.assert_allclose(
        drawing.levels, contour_levels("residual", values.min(), values.max())
    )
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_spin_plot_and_bad_input(tmp_path, urea_map):
    cr, plane, values = urea_map
    drawing = plot_plane(tmp_path / "spin.png", plane, values, cr, kind="spin")
    np.testing.assert_allclose(drawing.levels, contour_levels("spin"))
    assert "2^n" in drawing.caption
    with pytest.raises(InputError, match="png"):
        plot_plane(tmp_path / "map.jpg", plane, values, cr)
    with pytest.raises(InputError, match="shape"):
        plot_plane(tmp_path / "map.png", plane, values[:-1], cr)

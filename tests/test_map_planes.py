"""Map planes (chasm.maps.planes), default planes, drawing rules and ``chasm map`` (issue 19)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from chasm.cli import main
from chasm.crystal.structure import Atom, Crystal
from chasm.errors import InputError
from chasm.maps.default_planes import default_planes, maps_toml
from chasm.maps.planes import map_plane, parse_plane, split_atom_list
from chasm.maps.plot import MASK_CLIP, draw_plane, plane_figure
from chasm.project.map_settings import contour_options
from test_project_joint import joint_case  # noqa: F401  (simulated joint X-ray/UND/PND data)


def _atom(label, element, xyz):
    return Atom(label, element, np.array(xyz, float), uiso=0.01)


@pytest.fixture(scope="module")
def cubic():
    """P-1 in a 10 Å cube: A1 (1,1,1), B1 (2,1,1), C1 (1,3,1) Å; D1 0.2 Å above, E1 0.5 Å."""
    atoms = [
        _atom("A1", "C", [0.1, 0.1, 0.1]),
        _atom("B1", "C", [0.2, 0.1, 0.1]),
        _atom("C1", "N", [0.1, 0.3, 0.1]),
        _atom("D1", "O", [0.15, 0.2, 0.12]),
        _atom("E1", "O", [0.3, 0.3, 0.15]),
    ]
    return Crystal.from_parts([10, 10, 10, 90, 90, 90], "P -1", atoms)


def test_split_atom_list_keeps_operations_and_dummy_points():
    assert split_atom_list("Cu1, O1@-x+1,-y,-z ,N1") == ["Cu1", "O1@-x+1,-y,-z", "N1"]
    assert split_atom_list("mid(C1;C2@-x,y,z),O1,N1") == ["mid(C1;C2@-x,y,z)", "O1", "N1"]
    assert parse_plane(["Cu1", "O1@-x+1,-y,-z", "N1"]).atoms[1] == "O1@-x+1,-y,-z"
    assert parse_plane("normal(Cu1;0,0,1)").direction == (0.0, 0.0, 1.0)
    assert parse_plane("normal(Cu1;N1)").direction == "N1"
    assert parse_plane("lsq(C1,C2,C3,C4)").method == "lsq"


def test_three_atoms_by_hand(cubic):
    mp = map_plane(cubic, "A1,B1,C1")
    p = mp.plane
    np.testing.assert_allclose(p.origin, [4 / 3, 5 / 3, 1.0], atol=1e-12)  # centroid
    np.testing.assert_allclose(p.e1, [1, 0, 0], atol=1e-12)  # A1 -> B1
    np.testing.assert_allclose(p.e2, [0, 1, 0], atol=1e-12)  # towards C1
    np.testing.assert_allclose(p.normal, [0, 0, 1], atol=1e-12)
    # default extent: 2 (max |u|, |v| = 4/3 Å + 2 Å) = 6.67 Å, rounded up to 0.5 Å
    assert p.size == (7.0, 7.0) and p.step == 0.05
    assert mp.name == "plane A1-B1-C1"


def test_three_atoms_with_a_symmetry_image_by_hand(cubic):
    # C1 by -x,-y,-z is at (-1, -3, -1) Å
    mp = map_plane(cubic, "A1,B1,C1@-x,-y,-z")
    np.testing.assert_allclose(mp.points[2], [-1, -3, -1], atol=1e-12)
    n = np.array([0.0, 2.0, -4.0]) / np.sqrt(20.0)  # (1,0,0) x (-2,-4,-2), normalised
    np.testing.assert_allclose(mp.plane.normal, n, atol=1e-12)
    np.testing.assert_allclose(mp.plane.e2, np.cross(n, [1, 0, 0]), atol=1e-12)
    np.testing.assert_allclose(mp.plane.origin, [2 / 3, -1 / 3, 1 / 3], atol=1e-12)
    assert mp.plane.e2 @ (mp.points[2] - mp.points[0]) > 0


def test_atom_and_normal(cubic):
    mp = map_plane(cubic, "normal(A1;0,0,2)", extent=(5.0, 4.0), step=0.1)
    np.testing.assert_allclose(mp.plane.origin, [1, 1, 1], atol=1e-12)
    np.testing.assert_allclose(mp.plane.normal, [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(mp.plane.e1, [1, 0, 0], atol=1e-12)  # the a axis
    assert mp.plane.size == (5.0, 4.0) and mp.plane.shape == (51, 41)
    # normal along A1 -> B1 = a: e1 falls back to the b axis
    mp = map_plane(cubic, "normal(A1;B1)")
    np.testing.assert_allclose(mp.plane.normal, [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(mp.plane.e1, [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(mp.plane.e2, [0, 0, 1], atol=1e-12)


def test_lattice_plane_contains_its_lattice_vectors():
    cr = Crystal.from_parts(
        [7.0, 9.0, 11.0, 90, 105, 90], "P 1 21/c 1", [_atom("X1", "C", [0, 0, 0])]
    )
    mp = map_plane(cr, "hkl(X1;1,1,0)")
    for t in ([1, -1, 0], [0, 0, 1]):  # h.t = 0: lattice vectors of the plane (110)
        assert abs(mp.plane.normal @ (cr.A @ np.array(t, float))) < 1e-12
    assert mp.name.startswith("(110) plane")


def test_least_squares_plane_of_a_puckered_hexagon():
    d = 0.03  # alternating +-d out of the plane z = 10 Å: rms exactly d
    ang = np.arange(6) * np.pi / 3
    xyz = [
        [10 + 1.4 * np.cos(t), 10 + 1.4 * np.sin(t), 10 + d * (-1) ** k] for k, t in enumerate(ang)
    ]
    atoms = [_atom(f"C{k + 1}", "C", np.array(x) / 20.0) for k, x in enumerate(xyz)]
    cr = Crystal.from_parts([20, 20, 20, 90, 90, 90], "P 1", atoms)
    mp = map_plane(cr, "lsq(C1,C2,C3,C4,C5,C6)")
    assert mp.rms == pytest.approx(d, abs=1e-12)
    np.testing.assert_allclose(abs(mp.plane.normal @ [0, 0, 1]), 1.0, atol=1e-12)
    np.testing.assert_allclose(mp.plane.origin, [10, 10, 10], atol=1e-12)
    assert mp.plane.e1 @ (mp.points[0] - mp.plane.origin) > 0  # towards the first atom
    assert "rms 0.030 Å" in mp.name


@pytest.mark.parametrize(
    "text, words",
    [
        ("A1,B1,X9", "'X9' is not an atom"),
        ("A1,A1@-x,-y,-z,A1@-x+1,-y+1,-z+1", "collinear"),  # (1,1,1), (-1,-1,-1), (9,9,9) Å
        ("A1,B1", "exactly three atoms"),
        ("lsq(A1,B1)", "three or more"),
        ("normal(A1;0,0,0)", "zero vector"),
        ("normal(A1)", "write normal("),
        ("circle(A1,B1,C1)", "unknown form"),
        ("A1,B1,C1@x+1/3,y,z", "not an operation of the space group"),
        ("", "empty plane"),
    ],
)
def test_bad_planes(cubic, text, words):
    with pytest.raises(InputError, match=words.replace("(", r"\(")):
        map_plane(cubic, text)


def test_bad_extent_and_step(cubic):
    with pytest.raises(InputError, match="extent"):
        map_plane(cubic, "A1,B1,C1", extent=-1)
    with pytest.raises(InputError, match="step"):
        map_plane(cubic, "A1,B1,C1", step=0)


# --------------------------------------------------------------------------- drawing rules
def test_in_plane_and_near_plane_atoms_are_told_apart(cubic):
    mp = map_plane(cubic, "A1,B1,C1", extent=8.0, step=0.2)
    fig = Figure()
    FigureCanvasAgg(fig)
    values = np.zeros(mp.plane.shape)
    values[0, 0] = 0.12  # something to contour
    drawing = draw_plane(fig.add_subplot(111), mp.plane, values, cubic)
    flags = {a.label: f for a, f in zip(drawing.atoms, drawing.in_plane, strict=True)}
    assert flags["A1"] and flags["B1"] and flags["C1"]
    assert not flags["D1"]  # 0.2 Å above: an open circle
    assert "E1" not in flags  # 0.5 Å above: no atom symbol ...
    # ... but a cross at its projection, with its height, and the caption says so
    ((e1,),) = [[a for a in drawing.projected if a.label == "E1"]]
    assert e1.height == pytest.approx(0.5) and [a.label for a in drawing.projected] == ["E1"]
    assert "×: non-H atoms 0.3–1 Å off the plane" in drawing.caption
    marks = [t.get_text() for t in fig.axes[-1].texts]
    assert "E1 (+0.50)" in marks or "E1 (-0.50)" in marks
    assert (0, 1) in drawing.bonds or (1, 0) in drawing.bonds  # A1-B1 1.0 Å, C-C bonded


def test_residual_caption_states_rms_min_max(cubic):
    mp = map_plane(cubic, "A1,B1,C1", step=0.2)
    rng = np.random.default_rng(3)
    values = rng.normal(0.0, 0.04, mp.plane.shape)
    fig, drawing = plane_figure(mp.plane, values, cubic, kind="residual", title="r")
    rms = np.sqrt(np.mean(values**2))
    assert f"rms {rms:.3f}" in drawing.caption
    assert f"min {values.min():.3f}" in drawing.caption
    assert f"max {values.max():.3f}" in drawing.caption


def test_heavy_nucleus_region_is_masked_and_said():
    cr = Crystal.from_parts(
        [10, 10, 10, 90, 90, 90],
        "P 1",
        [_atom("Cu1", "Cu", [0.5, 0.5, 0.5]), _atom("O1", "O", [0.7, 0.5, 0.5])],
    )
    mp = map_plane(cr, "normal(Cu1;0,0,1)", extent=4.0, step=0.05)
    r = np.linalg.norm(mp.plane.points - [5, 5, 5], axis=-1)
    values = -0.5 / np.maximum(r, 0.05) ** 2  # |v| > 1 e/Å³ inside r = 0.707 Å
    fig = Figure()
    FigureCanvasAgg(fig)
    drawing = draw_plane(fig.add_subplot(111), mp.plane, values, cr)
    ((atom, radius),) = drawing.masked
    assert atom.label == "Cu1" and 0.707 <= radius <= 0.81
    assert f"{radius:.2f} Å of Cu1" in drawing.caption and "Z > 18" in drawing.caption
    # contours outside the disc only: every drawn level is within MASK_CLIP
    drawn = np.concatenate([np.asarray(cs.levels) for cs in drawing.contours.values()])
    assert np.abs(drawn).max() <= MASK_CLIP + 1e-12
    # a spin map is not masked
    drawing = draw_plane(fig.add_subplot(111), mp.plane, values, cr, kind="spin")
    assert drawing.masked == []


def test_long_titles_and_captions_fit_in_the_figure(cubic):
    mp = map_plane(cubic, "A1,B1,C1", step=0.2)
    values = np.outer(np.sin(mp.plane.u), np.cos(mp.plane.v))
    title = "Static deformation density (model − neutral spherical atoms), " + "plane A1-B1-C1 " * 4
    fig, drawing = plane_figure(mp.plane, values, cubic, kind="residual", title=title)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    box = fig.bbox
    for text in [fig.axes[0].title, *fig.texts]:
        bb = text.get_window_extent(renderer)
        assert bb.x0 >= box.x0 - 1 and bb.x1 <= box.x1 + 1, text.get_text()
        assert bb.y0 >= box.y0 - 1 and bb.y1 <= box.y1 + 1, text.get_text()


def test_contour_settings():
    assert contour_options("deformation", None) == {}
    assert contour_options("deformation", 0.1) == {"step": 0.1}
    assert contour_options("spin", "linear") == {"step": 0.01}
    log = contour_options("deformation", "log")["levels"]
    np.testing.assert_allclose(log[log > 0], 0.01 * 2.0 ** np.arange(10))
    with pytest.raises(InputError, match="fixed contours"):
        contour_options("laplacian", 0.1)
    with pytest.raises(InputError, match="step"):
        contour_options("residual", -0.1)


# --------------------------------------------------------------------------- default planes
def test_default_plane_of_urea_is_the_molecule():
    from chasm.examples.urea_model import example_structure

    cr = example_structure()
    first = default_planes(cr)[0]
    assert first.spec.method == "atoms"
    assert "whole molecule, 8 atoms" in first.name
    assert len(first.plane.atoms(cr, tolerance=0.1)) >= 8
    lines, names = maps_toml(cr)
    assert lines[1].startswith("[[maps]]") and names[0] == first.name


def test_default_plane_of_fluorite_holds_both_ions():
    cr = Crystal.from_parts(
        [5.46, 5.46, 5.46, 90, 90, 90],
        "F m -3 m",
        [_atom("Ca1", "Ca", [0, 0, 0]), _atom("F1", "F", [0.25, 0.25, 0.25])],
    )
    first = default_planes(cr)[0]
    assert first.spec.method == "hkl" and "Ca1 and F1" in first.name
    h = np.abs(first.spec.direction)
    assert sorted(h) == [0, 1, 1]  # a {110} plane
    assert {a.label for a in first.plane.atoms(cr, tolerance=0.01)} == {"Ca1", "F1"}
    # drawn bonds: Ca-F (2.36 Å) yes; Ca...Ca (3.86 Å, within radii + 0.4 Å) is a contact
    mp = map_plane(cr, first.spec, extent=6.0, step=0.3)
    fig = Figure()
    FigureCanvasAgg(fig)
    drawing = draw_plane(fig.add_subplot(111), mp.plane, np.zeros(mp.plane.shape), cr)
    kinds = {
        tuple(sorted((drawing.atoms[i].element, drawing.atoms[j].element)))
        for i, j in drawing.bonds
    }
    assert kinds == {("Ca", "F")}


def test_default_plane_of_a_copper_complex_goes_through_copper():
    from chasm.examples.seed import seed_crystal

    cr = seed_crystal()
    first = default_planes(cr)[0]
    assert first.spec.atoms[0] == "Cu1" and "ligand atoms" in first.name
    ligands = first.plane.atoms(cr, tolerance=0.3)
    assert (
        sum(a.element in "NO" and np.linalg.norm(a.cart - first.points[0]) < 2.2 for a in ligands)
        >= 3
    )


# --------------------------------------------------------------------------- command line
def _result_json(parameters: dict, **extra) -> dict:
    """The smallest result.json that chasm.Result reads: the required keys, no figures."""
    return {
        "converged": True,
        "cycles": 0,
        "score": {"scheme": "UNIT", "value": 0.0},
        "datasets": {},
        "correlations": [],
        "stages": [],
        "parameters": parameters,
        **extra,
    }


@pytest.fixture(scope="module")
def urea_result(tmp_path_factory):
    """A result folder with only model.cif: urea with small multipoles."""
    from chasm.examples.urea_model import build_models, example_structure
    from chasm.io.rhocif import write_rhocif

    folder = tmp_path_factory.mktemp("urea-result")
    cr = example_structure()
    write_rhocif(folder / "model.cif", cr, build_models(cr)[0])
    (folder / "result.json").write_text(json.dumps(_result_json({})))
    return folder


def test_cli_map_end_to_end(urea_result, tmp_path, capsys):
    out = tmp_path / "urea.svg"
    assert (
        main(["map", str(urea_result), "--plane", "O1,C1,N1", "-o", str(out), "--step", "0.1"]) == 0
    )
    assert out.read_bytes()[:2000].find(b"<svg") >= 0
    text = capsys.readouterr().out
    assert "plane O1-C1-N1" in text and f"wrote {out}" in text
    png = tmp_path / "lsq.png"
    args = ["map", str(urea_result), "--plane", "lsq(C1,O1,N1,H1,H2)", "--kind", "static"]
    assert main(args + ["-o", str(png), "--step", "0.2", "--contours", "log", "-q"]) == 0
    assert png.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--plane", "O1,C1,X7"], "'X7' is not an atom"),
        (["--plane", "C1,O1,C1@x,y,z"], "collinear"),
        (["--plane", "O1,C1,N1", "--kind", "spin"], "no spin-split atoms"),
        (["--plane", "O1,C1,N1", "--kind", "residual"], "names no project file"),
        (["--plane", "O1,C1,N1", "--contours", "dense"], "--contours"),
        (["--plane", "O1,C1,N1", "-o", "map.jpg"], ".png, .svg or .pdf"),
    ],
)
def test_cli_map_bad_input(urea_result, tmp_path, capsys, extra, words):
    args = ["map", str(urea_result)] + extra
    if "-o" not in extra:
        args += ["-o", str(tmp_path / "x.png")]
    else:
        args[-1] = str(tmp_path / args[-1])
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("chasm: error:") and words in err and "\n" not in err


def test_cli_map_folder_without_model_and_unknown_kind(tmp_path, capsys):
    assert main(["map", str(tmp_path), "--plane", "A,B,C"]) == 2
    assert "no model.cif" in capsys.readouterr().err
    assert main(["map", str(tmp_path), "--plane", "A,B,C", "--kind", "fancy"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown map kind 'fancy'" in err and "\n" not in err


def test_project_maps_tables_are_validated(tmp_path):
    from chasm.project.map_settings import MAP_SCHEMA
    from chasm.project.schema import ArrayOf, validate

    schema = {"maps": ArrayOf(MAP_SCHEMA)}
    ok = validate({"maps": [{"plane": ["Cu1", "O1@-x+1,-y,-z", "N1"], "kind": "spin"}]}, schema)
    assert ok["maps"][0]["step"] == 0.05 and ok["maps"][0]["contours"] is None
    text = '[[maps]]\nplane = "Cu1,O1"\n'
    with pytest.raises(InputError, match="three atoms") as exc:
        validate({"maps": [{"plane": "Cu1,O1"}]}, schema, "p.toml", text)
    assert exc.value.line == 2
    with pytest.raises(InputError, match="not a map kind"):
        validate({"maps": [{"plane": "A,B,C", "kind": ["deformation", "fancy"]}]}, schema)
    with pytest.raises(InputError, match="required"):
        validate({"maps": [{"kind": "spin"}]}, schema)


def test_laplacian_caption_is_a_summary_that_fits(tmp_path):
    from chasm.examples.urea_model import build_models, example_structure
    from chasm.topology.density_derivatives import DensityField
    from chasm.topology.laplacian_map import plot_laplacian

    cr = example_structure()
    mp = map_plane(cr, "O1,C1,N1", extent=3.0, step=0.25)
    drawing = plot_laplacian(tmp_path / "lap.png", DensityField(cr, build_models(cr)[0]), mp.plane)
    assert len(drawing.levels) == 56 and "±{1, 2, 4, 8}·10ⁿ e/Å⁵" in drawing.caption
    assert len(drawing.caption) < 200 and drawing.masked == []


def test_report_draws_the_project_maps_tables(urea_result, tmp_path, monkeypatch):
    import chasm.maps.planes
    from chasm.report.figures import load_result, report_maps

    monkeypatch.setattr(chasm.maps.planes, "DEFAULT_STEP", 0.25)  # a quick default plane

    project = tmp_path / "project.toml"
    project.write_text(
        '[[maps]]\nplane = "O1,C1,N1"\nname = "urea molecule"\nstep = 0.2\n\n'
        '[[maps]]\nplane = "normal(C1;O1)"\nkind = ["static", "laplacian"]\nstep = 0.25\n'
        "extent = 3.0\n"
    )
    model = load_result(urea_result)
    notes: list[str] = []
    folder = tmp_path / "report"
    folder.mkdir()
    figures = report_maps(
        folder, model.crystal, model.models, None, notes, result={"project": str(project)}
    )
    names = [f[0] for f in figures]
    assert names == ["report_deformation.png", "report_static_2.png", "report_laplacian_2.png"]
    assert "urea molecule" in figures[0][1] and "normal to C1-O1" in figures[1][1]
    assert all(data.startswith(b"\x89PNG") for _, _, data in figures)
    # without [[maps]]: the first default plane, named
    figures = report_maps(folder, model.crystal, model.models, None, [], result={})
    assert [f[0] for f in figures] == ["report_deformation.png"]
    assert "whole molecule" in figures[0][1]


def test_residual_map_from_a_result_folder_rebuilds_the_project(joint_case, tmp_path):  # noqa: F811
    """kind = residual reads the observed data of the project that result.json names."""
    from chasm.io.rhocif import write_rhocif
    from chasm.maps.grids import fourier_on_plane
    from chasm.project.build import build
    from chasm.project.project import load_project
    from chasm.report.figures import load_result, plane_field, plot_map
    from chasm.report.report import xray_residual_map

    built = build(load_project(joint_case / "project.toml"))
    ref = built.refinement
    ref.params["Cu1.Pv"].value += 0.3  # a model that differs from the one the data came from
    ref.set_values(ref.params.values)
    folder = tmp_path / "result"
    folder.mkdir()
    write_rhocif(folder / "model.cif", built.crystal, built.models)
    params = {p.name: {"value": float(p.value)} for p in ref.params}
    result = _result_json(params, project=str(joint_case / "project.toml"))
    (folder / "result.json").write_text(json.dumps(result))
    out = tmp_path / "res.png"
    _, drawing, mp = plot_map(folder, "Cu1,N1,O1", kind="residual", output=out, step=0.1)
    fmap, _ = xray_residual_map(ref)  # the same map from the Refinement in memory
    expected = fourier_on_plane(fmap, mp.plane)
    values, options, note = plane_field(load_result(folder), mp.plane, "residual")
    np.testing.assert_allclose(values, expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())
    assert options["kind"] == "residual" and note == " (xray)"
    assert "rms" in drawing.caption and "min" in drawing.caption and "max" in drawing.caption
    assert out.read_bytes().startswith(b"\x89PNG")

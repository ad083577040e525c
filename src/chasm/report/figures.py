"""Map figures of a refinement result: one field on one plane, drawn to a file.

* :func:`plot_map`: ``chasm map RESULT --plane A,B,C --kind K -o F.png``
  from Python: a result folder (model.cif + result.json) or a Refinement;
* :func:`plane_field`: the values of a field on a plane and how to draw them;
* :func:`report_maps`: the map figures of the refinement report (the planes
  of the project's ``[[maps]]`` tables, else :func:`default_planes`).

Fields (``kind``):

===========  ===============================================================
deformation  static model density − neutral spherical free atoms (e/Å³)
static       static model density, core included (e/Å³, log contours)
spin         static spin density ρ↑ − ρ↓ of the split atoms (μB/Å³)
residual     Fo − Fc Fourier map of the first X-ray data set (e/Å³); needs
             the observed data: the Refinement, or the project file that
             result.json names (rebuilt at the result's parameters)
laplacian    ∇²ρ of the static model density (e/Å⁵; :mod:`chasm.topology`)
===========  ===============================================================
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from chasm.errors import InputError
from chasm.project.map_settings import MAP_KINDS, contour_options

if TYPE_CHECKING:
    from chasm.maps.planes import MapPlane, PlaneSpec
    from chasm.maps.plot import PlaneDrawing
    from chasm.refine.refinement import Refinement

__all__ = ["MAP_KINDS", "ResultModel", "load_result", "plane_field", "plot_map", "report_maps"]

TITLES = {
    "deformation": "Static deformation density (model − neutral spherical atoms)",
    "static": "Static model density",
    "spin": "Static spin density ρ↑ − ρ↓ (μB/Å³)",
    "residual": "Residual density Fo − Fc",
    "laplacian": "Laplacian ∇²ρ of the static model density (e/Å⁵)",
}
"""Title of each kind of map (the plane's name follows)."""

#: Planes drawn in the report at most (each costs a few seconds).
REPORT_PLANES = 3
#: Colours of the report's map PNGs (a palette image; see :func:`small_png`).
REPORT_COLOURS = 64


@dataclass
class ResultModel:
    """The model of a result: structure, density models, result.json, refinement.

    Attributes
    ----------
    crystal : Crystal
    models : list
        One density model per atom (SplitAtom for spin-split atoms).
    result : dict
        result.json ({} when absent).
    folder : Path or None
    refinement : Refinement or None
        Given, or rebuilt on demand for a residual map (:meth:`observed`).
    """

    crystal: object
    models: list
    result: dict
    folder: Path | None = None
    refinement: object = None

    def observed(self):
        """The Refinement with the observed data (rebuilt from the project file once)."""
        if self.refinement is None:
            self.refinement = _rebuild(self.folder, self.result)
        return self.refinement


def load_result(source) -> ResultModel:
    """A :class:`ResultModel` from a result folder or a Refinement.

    Raises
    ------
    InputError
        A folder that does not exist or has no model.cif.
    """
    if hasattr(source, "crystal") and hasattr(source, "models"):
        return ResultModel(source.crystal, list(source.models), {}, None, source)
    from chasm.report.report import _read_result, structure_from_folder

    folder = Path(source)
    if not folder.is_dir():
        raise InputError(
            "the result folder does not exist; give the output folder of chasm refine", str(folder)
        )
    if not (folder / "model.cif").is_file():
        raise InputError(
            "no model.cif in the result folder (no refined model to draw); "
            "run chasm refine first or give its output folder",
            str(folder),
        )
    result = _read_result(folder) or {}
    sm = structure_from_folder(folder, result)
    return ResultModel(sm.crystal, list(sm.models), result, folder)


def _rebuild(folder: Path | None, result: dict):
    """The project's Refinement at the parameters of result.json (for residual maps)."""
    from chasm.project.build import build
    from chasm.project.project import load_project

    project = result.get("project")
    where = str(folder / "result.json") if folder else None
    if not project:
        raise InputError(
            "a residual map needs the observed data: result.json names no project file; "
            "rerun chasm refine",
            where,
        )
    if not Path(project).is_file():
        raise InputError(
            f"a residual map needs the observed data, but the project file {project} that "
            "result.json names is not there",
            where,
        )
    ref = build(load_project(project)).refinement
    for name, entry in result.get("parameters", {}).items():
        if name in ref.params and entry.get("value") is not None:
            ref.params[name].value = float(entry["value"])
    ref.set_values(ref.params.values)
    return ref


def _charge(models) -> list:
    return [m.charge_model() for m in models]


def has_spin(models) -> bool:
    """True when some atom is spin-split (a spin map exists)."""
    from chasm.density.model import SplitAtom

    return any(isinstance(m, SplitAtom) for m in models)


def plane_field(model: ResultModel, plane, kind: str) -> tuple[np.ndarray, dict, str]:
    """Values of a field on a plane, the drawing options and a title suffix.

    Parameters
    ----------
    model : ResultModel
    plane : Plane
    kind : one of :data:`MAP_KINDS`

    Returns
    -------
    values : ndarray, shape plane.shape
    options : dict
        Keyword arguments for :func:`chasm.maps.plot.plot_plane` (kind, levels,
        caption, unit, mask).
    note : str
        Extra words for the title (the data set of a residual map), or "".

    Raises
    ------
    InputError
        Unknown kind; a spin map of a model without split atoms; a residual
        map without X-ray data.
    """
    from chasm.maps.density import deformation_density, model_density, spin_density

    if kind not in MAP_KINDS:
        raise InputError(f"unknown map kind {kind!r}; use one of {', '.join(MAP_KINDS)}")
    cr, models, pts = model.crystal, model.models, plane.points
    if kind == "deformation":
        return deformation_density(cr, _charge(models), pts), {"kind": "deformation"}, ""
    if kind == "static":
        return model_density(cr, _charge(models), pts), {"kind": "density"}, ""
    if kind == "spin":
        if not has_spin(models):
            raise InputError(
                "the model has no spin-split atoms, so there is no spin density; "
                "use --kind deformation (or refine a model with magnetic atoms)"
            )
        up = [m.spin_parts()[0] for m in models]
        dn = [m.spin_parts()[1] for m in models]
        return spin_density(cr, up, dn, pts), {"kind": "spin"}, ""
    if kind == "laplacian":
        from chasm.topology.density_derivatives import DensityField
        from chasm.topology.laplacian_map import (
            LAPLACIAN_CAPTION,
            LAPLACIAN_LEVELS,
            laplacian_on_plane,
        )

        values = np.clip(laplacian_on_plane(DensityField(cr, _charge(models)), plane), -1e3, 1e3)
        options = {
            "kind": "deformation",
            "levels": LAPLACIAN_LEVELS,
            "caption": LAPLACIAN_CAPTION,
            "unit": "e/Å⁵",
            "mask": 0.0,
        }
        return values, options, ""
    from chasm.maps.grids import fourier_on_plane
    from chasm.report.report import xray_residual_map

    res = xray_residual_map(model.observed())
    if res is None:
        raise InputError("no X-ray data set in the refinement: no residual map")
    fmap, name = res
    return fourier_on_plane(fmap, plane), {"kind": "residual"}, f" ({name})"


def draw_map(path, model: ResultModel, mplane, kind: str, contours=None, title=None, palette=None):
    """Compute one field on a :class:`~chasm.maps.planes.MapPlane` and draw it to ``path``.

    ``palette``: colours of a palette PNG (:func:`chasm.maps.plot.figure_png`).
    Returns the :class:`~chasm.maps.plot.PlaneDrawing`.
    """
    from chasm.maps.plot import plot_plane

    values, options, note = plane_field(model, mplane.plane, kind)
    options.update(contour_options(kind, contours))
    title = title or f"{TITLES[kind]}{note}, {mplane.name}"
    return plot_plane(
        path, mplane.plane, values, model.crystal, title=title, palette=palette, **options
    )


def plot_map(
    result: str | os.PathLike | Refinement,
    plane: str | Sequence[str] | PlaneSpec,
    kind: str = "deformation",
    output: str | os.PathLike | None = None,
    *,
    extent: float | tuple[float, float] | None = None,
    step: float | None = None,
    contours: float | str | None = None,
    title: str | None = None,
) -> tuple[Path, PlaneDrawing, MapPlane]:
    """Draw one map of a refinement result to a PNG, SVG or PDF file.

    Parameters
    ----------
    result : path or Refinement
        A result folder of ``chasm refine`` (model.cif, result.json) or a
        Refinement in its final state.
    plane : str, sequence of str or PlaneSpec
        ``"Cu1,O1,N1"``, ``["Cu1", "O1@-x+1,-y,-z", "N1"]``,
        ``"normal(Cu1;0,0,1)"``, ``"hkl(Ca1;1,1,0)"``, ``"lsq(C1,C2,C3,C4)"``
        (:mod:`chasm.maps.planes`).
    kind : {"deformation", "spin", "residual", "laplacian", "static"}
    output : path, optional
        The file (suffix .png, .svg or .pdf); default ``KIND_PLANE.png`` in
        the result folder (the current folder for a Refinement).
    extent, step : optional
        Map side(s) and mesh step, Å (:func:`chasm.maps.planes.map_plane`).
    contours : None, float, "log" or "linear"
        :func:`chasm.project.map_settings.contour_options`.
    title : str, optional

    Returns
    -------
    (Path, PlaneDrawing, MapPlane)

    Raises
    ------
    InputError
        Unknown atom labels, collinear atoms, unknown kind, a result folder
        without a model, a spin map without split atoms, a residual map
        without observed data, a bad suffix.
    """
    from chasm.maps.planes import map_plane

    if kind not in MAP_KINDS:
        raise InputError(f"unknown map kind {kind!r}; use one of {', '.join(MAP_KINDS)}")
    contour_options(kind, contours)  # a bad setting fails before any work
    model = load_result(result)
    mplane = map_plane(model.crystal, plane, extent=extent, step=step)
    if output is None:
        stem = "".join(c if c.isalnum() else "_" for c in mplane.spec.text).strip("_")
        output = (model.folder or Path.cwd()) / f"{kind}_{stem}.png"
    drawing = draw_map(output, model, mplane, kind, contours, title)
    return Path(output), drawing, mplane


# --------------------------------------------------------------------------- report
def _project_maps(result: dict, notes: list[str]) -> list[dict] | None:
    """The ``[[maps]]`` tables of the project that result.json names (None: none there)."""
    import tomllib

    from chasm.project.map_settings import MAP_SCHEMA
    from chasm.project.schema import ArrayOf, validate

    path = result.get("project")
    if not path or not Path(path).is_file():
        return None
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8-sig"))
        data = validate({"maps": raw.get("maps", [])}, {"maps": ArrayOf(MAP_SCHEMA)}, path)
    except (OSError, ValueError, InputError) as exc:
        notes.append(f"the project's [[maps]] could not be read ({exc}); default planes used")
        return None
    return data["maps"] or None


def _planes_for_report(model: ResultModel, notes: list[str], planes=None) -> list[tuple]:
    """(MapPlane, kinds or None, contours) of the report's maps (``planes``: the caller's)."""
    from chasm.maps.default_planes import default_planes
    from chasm.maps.planes import map_plane

    if planes:
        return [(mp, None, None) for mp in planes[:REPORT_PLANES]]
    out = []
    entries = _project_maps(model.result, notes)
    if entries:
        for i, e in enumerate(entries[:REPORT_PLANES]):
            try:
                mp = map_plane(model.crystal, e["plane"], extent=e["extent"], step=e["step"])
            except InputError as exc:
                notes.append(f"maps[{i}]: {exc.message}; plane skipped")
                continue
            if e["name"]:
                mp.name = e["name"]
            kinds = [e["kind"]] if isinstance(e["kind"], str) else e["kind"]
            out.append((mp, kinds, e["contours"]))
        return out
    for d in default_planes(model.crystal)[:1]:  # more planes: [[maps]] (chasm init writes them)
        out.append((d, None, None))
    return out


def report_maps(
    folder,
    crystal,
    models,
    refinement,
    notes: list[str],
    progress: bool = False,
    result=None,
    steps=None,
    planes=None,
) -> list[tuple[str, str, bytes]]:
    """The map figures of the refinement report: (file name, caption, PNG bytes) each.

    Planes: the project's ``[[maps]]`` tables (the project file result.json
    names), else the default planes (:func:`chasm.maps.default_planes.default_planes`),
    at most :data:`REPORT_PLANES`. Fields per plane: the table's ``kind``, else
    on the first plane the deformation density, the spin density when atoms
    are split, and the X-ray residual density when the Refinement is given,
    on the others the deformation density. The first plane's
    files are ``report_KIND.png``, the others ``report_KIND_2.png``, ...
    Problems (no plane, a map that cannot be made) become ``notes``. With
    ``steps`` (:class:`chasm.report.steps.Steps`) each map prints a progress
    line instead of the progress bar. The PNG files are written once, with a
    palette of :data:`REPORT_COLOURS` colours (:func:`chasm.maps.plot.figure_png`).
    """
    from chasm.progress import Progress
    from chasm.report.report import _read_result

    folder = Path(folder)
    if result is None:
        result = _read_result(folder) or {}
    model = ResultModel(crystal, list(models), result, folder, refinement)
    planes = _planes_for_report(model, notes, planes)
    if not planes:
        notes.append("no maps: no plane could be chosen (fewer than three non-H atoms?)")
        return []
    # spherical atoms only (IAM, or the fixed nuclear structure of a PND-only
    # project): the static deformation density is zero by construction
    deformed = any(getattr(m, "has_valence", False) for m in models)
    if not deformed:
        notes.append(
            "no deformation map: every atom is spherical (no valence or multipole "
            "populations), so the static deformation density is zero everywhere"
        )
    todo = []
    for k, (mp, kinds, contours) in enumerate(planes):
        if kinds is None and k > 0:
            kinds = ["deformation"] * deformed  # further planes: one map each (quick report)
        elif kinds is None:
            kinds = (
                ["deformation"] * deformed
                + ["spin"] * has_spin(models)
                + ["residual"] * (refinement is not None)
            )
        for kind in kinds:
            todo.append((k, mp, kind, contours))
    if refinement is None and all(kinds_ != "residual" for _, _, kinds_, _ in todo):
        notes.append("the residual map needs the refinement object (observed data)")
    bar = Progress(len(todo), "report maps", quiet=not progress or steps is not None)
    out = []
    for i, (k, mp, kind, contours) in enumerate(todo):
        name = f"report_{kind}.png" if k == 0 else f"report_{kind}_{k + 1}.png"
        try:
            drawing = draw_map(folder / name, model, mp, kind, contours, palette=REPORT_COLOURS)
        except InputError as exc:
            notes.append(f"no {kind} map on {mp.name}: {exc.message}")
        else:
            caption = (
                f"{TITLES[kind]}, {mp.name}. {drawing.caption[:1].upper()}{drawing.caption[1:]}."
            )
            out.append((name, caption, (folder / name).read_bytes()))
        bar.advance()
        if steps is not None:
            steps.step("maps", i + 1, len(todo), f"{kind} on {mp.name}")
    bar.close()
    return out


def small_png(data: bytes, colors: int = 64) -> bytes:
    """A contour map's PNG with a palette of ``colors`` (4-5 times smaller, same look).

    Contour plots hold a few line colours on white: a palette keeps them and
    makes the self-contained report.html light to open and to mail.
    """
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB")
    out = io.BytesIO()
    image.quantize(colors=colors, method=Image.Quantize.FASTOCTREE).save(out, format="PNG")
    return out.getvalue()

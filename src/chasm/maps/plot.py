"""Contour plots of maps on a plane (matplotlib, Agg canvas, no display).

Conventions of the drawings:

* positive contours solid (blue), negative dashed (red), zero dotted (grey);
* the atoms lying in the plane (within a tolerance, all symmetry copies) are
  drawn and labelled, with bonds between them where the distance is at most
  the sum of the covalent radii + 0.4 Å (the rule of
  :mod:`chasm.crystal.neighbours`);
* a caption below the map states what the contours are.

Default contour levels (e/Å³), see :func:`contour_levels`:

============  ===========================================================
kind          levels
============  ===========================================================
deformation   linear, step 0.1
residual      linear, step 0.05
spin          logarithmic ±0.01·2^n, n = 0…9 (±0.01 … ±5.12); or a
              linear step on request (``step=``)
density       logarithmic +0.01·2^n, n = 0…14 (total density)
============  ===========================================================

plus the zero contour for the signed maps. The file type (PNG, SVG or PDF)
follows the suffix of the path; files are written atomically.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from chasm.crystal.neighbours import BOND_TOLERANCE, covalent_radius
from chasm.errors import InputError
from chasm.io.atomic import write_bytes_atomic

if TYPE_CHECKING:
    from chasm.crystal.structure import Crystal
    from chasm.maps.grids import Plane

__all__ = ["KINDS", "PlaneDrawing", "contour_levels", "draw_plane", "plot_plane"]

KINDS = {
    "deformation": {"scale": "linear", "step": 0.1, "signed": True},
    "residual": {"scale": "linear", "step": 0.05, "signed": True},
    "spin": {"scale": "log", "base": 0.01, "n": 10, "signed": True},
    "density": {"scale": "log", "base": 0.01, "n": 15, "signed": False},
}
"""Default contours per kind of map (e/Å³; spin densities in μB/Å³)."""

_FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
_MAX_LEVELS = 2000


def contour_levels(
    kind: str = "deformation",
    vmin: float | None = None,
    vmax: float | None = None,
    *,
    step: float | None = None,
    base: float | None = None,
    n: int | None = None,
) -> np.ndarray:
    """Contour levels of a map.

    Parameters
    ----------
    kind : {"deformation", "residual", "spin", "density"}
        Sets the defaults (module docstring).
    vmin, vmax : float, optional
        Range of the map. Linear levels are the multiples of ``step`` within
        it (zero included); logarithmic levels are the fixed list.
    step : float, optional
        Linear step (e/Å³); given for a logarithmic kind it switches to
        linear levels.
    base, n : optional
        Logarithmic levels ±base·2^k, k = 0…n−1.

    Returns
    -------
    ndarray
        Sorted levels, zero included for signed kinds.

    Raises
    ------
    InputError
        Unknown kind, non-positive step or base, a linear range without
        vmin/vmax, or more than 2000 levels.
    """
    if kind not in KINDS:
        raise InputError(f"unknown map kind {kind!r}; use one of {sorted(KINDS)}")
    spec = KINDS[kind]
    linear = step is not None or spec["scale"] == "linear"
    if linear:
        step = float(spec.get("step", 0.0) if step is None else step)
        if not (np.isfinite(step) and step > 0):
            raise InputError(f"contour step must be positive, got {step!r}")
        if vmin is None or vmax is None or not (np.isfinite(vmin) and np.isfinite(vmax)):
            raise InputError("linear contours need the finite range vmin, vmax of the map")
        k0, k1 = (
            int(np.ceil(min(vmin, 0.0) / step - 1e-9)),
            int(np.floor(max(vmax, 0.0) / step + 1e-9)),
        )
        if k1 - k0 + 1 > _MAX_LEVELS:
            raise InputError(
                f"{k1 - k0 + 1} contours of step {step} for the range [{vmin:.3g}, {vmax:.3g}]: "
                "choose a larger step"
            )
        levels = np.arange(k0, k1 + 1) * step
        if not spec["signed"]:
            levels = levels[levels > 0]
        return levels
    base = float(spec["base"] if base is None else base)
    count = int(spec["n"] if n is None else n)
    if not (np.isfinite(base) and base > 0) or count < 1:
        raise InputError(f"logarithmic contours need base > 0 and n >= 1, got {base}, {count}")
    positive = base * 2.0 ** np.arange(count)
    if not spec["signed"]:
        return positive
    return np.concatenate([-positive[::-1], [0.0], positive])


def _describe(kind: str, step, base, n) -> str:
    spec = KINDS[kind]
    unit = "μB/Å³" if kind == "spin" else "e/Å³"
    if step is not None or spec["scale"] == "linear":
        s = float(spec.get("step", 0.0) if step is None else step)
        return f"contours every {s:g} {unit}"
    b = float(spec["base"] if base is None else base)
    k = int(spec["n"] if n is None else n)
    sign = "±" if spec["signed"] else ""
    return f"contours at {sign}{b:g}·2^n {unit}, n = 0…{k - 1}"


@dataclass
class PlaneDrawing:
    """What :func:`draw_plane` drew.

    Attributes
    ----------
    levels : ndarray
        All contour levels (the documented list for the map's kind).
    contours : dict
        ``"positive"``, ``"negative"``, ``"zero"`` -> matplotlib ContourSet
        (missing when no level of that sign falls in the map's range).
    atoms : list of PlaneAtom
        Atoms drawn.
    bonds : list of (int, int)
        Pairs of indices into ``atoms`` joined by a bond.
    caption : str
    """

    levels: np.ndarray
    contours: dict = field(default_factory=dict)
    atoms: list = field(default_factory=list)
    bonds: list = field(default_factory=list)
    caption: str = ""


def _bonds(atoms) -> list[tuple[int, int]]:
    out = []
    for i, a in enumerate(atoms):
        for j in range(i + 1, len(atoms)):
            b = atoms[j]
            limit = covalent_radius(a.element) + covalent_radius(b.element) + BOND_TOLERANCE
            if np.linalg.norm(a.cart - b.cart) <= limit:
                out.append((i, j))
    return out


def draw_plane(
    ax,
    plane,
    values,
    crystal=None,
    *,
    kind: str = "deformation",
    levels: Sequence[float] | None = None,
    step: float | None = None,
    base: float | None = None,
    n: int | None = None,
    tolerance: float = 0.25,
    labels: bool = True,
) -> PlaneDrawing:
    """Draw a plane map on a matplotlib Axes.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    plane : Plane
        The plane the values were computed on.
    values : array_like, shape plane.shape
        Map values at ``plane.points`` (e/Å³).
    crystal : Crystal, optional
        When given, the atoms within ``tolerance`` Å of the plane and their
        bonds are drawn.
    kind, step, base, n :
        Contour levels, see :func:`contour_levels`; ``levels`` overrides them.
    tolerance : float
        Largest distance of a drawn atom from the plane, Å.
    labels : bool
        Label the atoms.

    Returns
    -------
    PlaneDrawing
    """
    v = np.asarray(values, dtype=float)
    if v.shape != plane.shape:
        raise InputError(f"values have shape {v.shape}, the plane {plane.shape}")
    if not np.all(np.isfinite(v)):
        raise InputError("map values contain NaN or infinite numbers")
    if levels is None:
        levels = contour_levels(kind, float(v.min()), float(v.max()), step=step, base=base, n=n)
        caption = _describe(kind, step, base, n)
    else:
        levels = np.sort(np.asarray(levels, dtype=float).reshape(-1))
        caption = "contours at " + ", ".join(f"{x:g}" for x in levels) + " e/Å³"
    caption += "; positive solid, negative dashed, zero dotted"
    out = PlaneDrawing(levels=levels, caption=caption)
    u, w = plane.u, plane.v
    groups = {
        "positive": (levels[levels > 0], "solid", "tab:blue"),
        "negative": (levels[levels < 0], "dashed", "tab:red"),
        "zero": (levels[levels == 0], "dotted", "0.4"),
    }
    for name, (lv, style, colour) in groups.items():
        inside = lv[(lv >= v.min()) & (lv <= v.max())]
        if inside.size and v.max() > v.min():
            out.contours[name] = ax.contour(
                u, w, v.T, levels=inside, colors=colour, linestyles=style, linewidths=0.7
            )
    if crystal is not None:
        out.atoms = plane.atoms(crystal, tolerance=tolerance)
        out.bonds = _bonds(out.atoms)
        for i, j in out.bonds:
            a, b = out.atoms[i], out.atoms[j]
            ax.plot([a.u, b.u], [a.v, b.v], color="k", linewidth=1.5, zorder=3)
        for a in out.atoms:
            ax.plot(a.u, a.v, "o", color="k", markersize=4, zorder=4)
            if labels:
                ax.annotate(
                    a.label, (a.u, a.v), xytext=(4, 4), textcoords="offset points", fontsize=8
                )
    ax.set_xlim(u[0], u[-1])
    ax.set_ylim(w[0], w[-1])
    ax.set_aspect("equal")
    ax.set_xlabel("Å")
    ax.set_ylabel("Å")
    return out


def plot_plane(
    path: str | os.PathLike,
    plane: Plane,
    values: np.ndarray,
    crystal: Crystal | None = None,
    *,
    kind: str = "deformation",
    levels: Sequence[float] | None = None,
    step: float | None = None,
    base: float | None = None,
    n: int | None = None,
    title: str | None = None,
    tolerance: float = 0.25,
    size: float = 6.0,
    dpi: int = 150,
) -> PlaneDrawing:
    """Contour plot of a plane map written to a PNG, SVG or PDF file (by suffix).

    Parameters
    ----------
    path : str or path
        Output file; the suffix (.png, .svg, .pdf) chooses the format.
    plane, values, crystal, kind, levels, step, base, n, tolerance :
        As :func:`draw_plane`.
    title : str, optional
        Title above the map.
    size : float
        Figure width in inches.
    dpi : int
        Resolution of a PNG.

    Returns
    -------
    PlaneDrawing
        The levels, atoms and bonds drawn, and the caption.

    Raises
    ------
    InputError
        Unknown suffix, values of the wrong shape, bad contour settings.
    """
    fmt = _FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: plot files must end in .png, .svg or .pdf")
    ratio = plane.size[1] / plane.size[0]
    fig = Figure(figsize=(size, size * ratio + 0.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    drawing = draw_plane(
        ax,
        plane,
        values,
        crystal,
        kind=kind,
        levels=levels,
        step=step,
        base=base,
        n=n,
        tolerance=tolerance,
    )
    if title:
        ax.set_title(title)
    fig.text(0.5, 0.01, drawing.caption, ha="center", va="bottom", fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=dpi)
    write_bytes_atomic(path, buf.getvalue())
    return drawing

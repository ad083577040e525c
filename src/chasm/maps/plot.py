"""Contour plots of maps on a plane (matplotlib, Agg canvas, no display).

Conventions of the drawings:

* positive contours solid (blue), negative dashed (red), zero dotted (grey);
* atoms (all symmetry copies) lying in the plane, |d| < 0.1 Å, are filled
  black dots; atoms within ±0.3 Å of it are open circles with grey labels;
  other non-H atoms within ±1 Å are small grey crosses at their projection,
  labelled with their height (a ligand just off the plane shows its density);
  labels sit in the widest gap between the atom's bonds, away from the lines;
* bonds are the structure's bonded pairs (:func:`chasm.crystal.neighbours.bonded`:
  covalent radii + 0.4 Å) between the drawn atoms, and towards bonded atoms
  just outside the window (clipped at its edge); two metal atoms are joined
  only within the sum of their covalent radii (the Ca···Ca contacts of
  fluorite are not bonds);
* deformation and residual maps: a disc around each nucleus heavier than Ar
  (Z > 18) is masked (grey): at least 0.4 Å, widened until the map is below
  1 e/Å³ in magnitude outside it (at most 1 Å) — the steep density around a
  heavy core turns 0.05 e/Å³ contours into a solid block; the caption gives
  each radius;
* a residual map's caption gives the rms, minimum and maximum on the plane;
* titles and captions are wrapped to the width of the figure.

Default contour levels (e/Å³), see :func:`contour_levels`:

============  ===========================================================
kind          levels
============  ===========================================================
deformation   linear, step 0.05 (``step=0.1`` for a sparser map)
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

from chasm.errors import InputError
from chasm.io.atomic import write_bytes_atomic

if TYPE_CHECKING:
    from chasm.crystal.structure import Crystal
    from chasm.maps.grids import Plane

__all__ = [
    "KINDS",
    "IN_PLANE",
    "NEAR_PLANE",
    "MASK_RADIUS",
    "MASK_Z",
    "MASK_CLIP",
    "MASK_MAX",
    "PlaneDrawing",
    "contour_levels",
    "draw_plane",
    "figure_png",
    "plot_plane",
]

KINDS = {
    "deformation": {"scale": "linear", "step": 0.05, "signed": True},
    "residual": {"scale": "linear", "step": 0.05, "signed": True},
    "spin": {"scale": "log", "base": 0.01, "n": 10, "signed": True},
    "density": {"scale": "log", "base": 0.01, "n": 15, "signed": False},
}
"""Default contours per kind of map (e/Å³; spin densities in μB/Å³)."""

#: Atoms closer than this to the plane (Å) are "in the plane" (filled dots).
IN_PLANE = 0.1
#: Atoms closer than this (Å) are drawn as open circles.
NEAR_PLANE = 0.3
#: Non-H atoms farther than ``tolerance`` but closer than this (Å) are marked by a small
#: grey cross at their projection, labelled with their height: a ligand just off the
#: plane (the demo's N3, 0.43 Å) shows its density in the map and must be named.
PROJECTED = 1.0
#: Radius (Å) of the masked disc around heavy nuclei (deformation, residual maps).
MASK_RADIUS = 0.4
#: Nuclei with Z above this are masked.
MASK_Z = 18
#: The masked disc grows until |value| <= MASK_CLIP (e/Å³) outside it, up to MASK_MAX Å.
MASK_CLIP, MASK_MAX = 1.0, 1.0
#: Atomic numbers treated as metals (coordination centres; no long metal-metal bonds drawn).
METALS = frozenset(
    [3, 4, 11, 12, 13, *range(19, 32), *range(37, 51), *range(55, 85), *range(87, 104)]
)
#: Margin (Å) around the window in which bonded partners are looked for.
_BOND_MARGIN = 2.0

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
        Atoms drawn (within ``tolerance`` of the plane, inside the window).
    bonds : list of (int, int)
        Pairs of indices into ``atoms`` joined by a bond.
    caption : str
    in_plane : list of bool
        Per atom: |height| < :data:`IN_PLANE` (filled dot) or not (open circle).
    masked : list of (PlaneAtom, float)
        Heavy nuclei whose surroundings are masked, and the disc radius (Å).
    projected : list of PlaneAtom
        Non-H atoms between ``tolerance`` and :data:`PROJECTED` Å from the plane,
        inside the window, marked by a cross at their projection.
    stats : dict
        ``rms``, ``min``, ``max`` of the values on the plane (unmasked points).
    """

    levels: np.ndarray
    contours: dict = field(default_factory=dict)
    atoms: list = field(default_factory=list)
    bonds: list = field(default_factory=list)
    caption: str = ""
    in_plane: list = field(default_factory=list)
    masked: list = field(default_factory=list)
    projected: list = field(default_factory=list)
    stats: dict = field(default_factory=dict)


def atomic_number(element: str) -> int:
    """Atomic number of an element symbol (D counts as H)."""
    import gemmi

    return gemmi.Element("H" if element == "D" else element).atomic_number


def _bond_partners(crystal, atoms) -> list[tuple[int, int]]:
    """Index pairs of ``atoms`` that are bonded images in the structure.

    Each atom's bonded neighbours (:func:`~chasm.crystal.neighbours.bonded`,
    found for the atom of the asymmetric unit) are carried to the drawn copy
    by the copy's Cartesian rotation and matched to the drawn atoms.
    """
    from chasm.crystal.neighbours import bonded

    if not atoms:
        return []
    A = crystal.A
    Ainv = np.linalg.inv(A)
    cart = np.array([a.cart for a in atoms])
    cache: dict[int, list] = {}
    pairs = set()
    for i, a in enumerate(atoms):
        if a.index not in cache:
            c0 = crystal.frac_to_cart(crystal.atoms[a.index].xyz)
            cache[a.index] = [n.cart - c0 for n in bonded(crystal, a.index)]
        q = A @ crystal.rotations[a.op] @ Ainv
        for d in cache[a.index]:
            hit = np.flatnonzero(np.linalg.norm(cart - (a.cart + q @ d), axis=1) < 1e-3)
            for j in hit:
                if j != i and not _cation_contact(a, atoms[j]):
                    pairs.add((min(i, int(j)), max(i, int(j))))
    return sorted(pairs)


def _cation_contact(a, b) -> bool:
    """Two metal atoms farther apart than their covalent radii (no tolerance).

    The bond rule's 0.4 Å tolerance joins the Ca of fluorite (3.86 Å, radii
    1.76 Å): a contact, not a bond; a Cu-Cu bond of 2.6 Å stays.
    """
    from chasm.crystal.neighbours import covalent_radius

    if atomic_number(a.element) not in METALS or atomic_number(b.element) not in METALS:
        return False
    limit = covalent_radius(a.element) + covalent_radius(b.element)
    return bool(np.linalg.norm(a.cart - b.cart) > limit)


def _label_offset(atom, partners) -> tuple[float, float, str, str]:
    """Offset (points) and alignment of a label in the widest gap between bonds."""
    if not partners:
        angle = np.pi / 4
    else:
        ang = np.sort([np.arctan2(b.v - atom.v, b.u - atom.u) for b in partners])
        gaps = np.diff(np.concatenate([ang, [ang[0] + 2 * np.pi]]))
        k = int(np.argmax(gaps))
        angle = ang[k] + 0.5 * gaps[k]
    dx, dy = 7 * np.cos(angle), 7 * np.sin(angle)
    ha = "left" if dx > 2 else ("right" if dx < -2 else "center")
    va = "bottom" if dy > 2 else ("top" if dy < -2 else "center")
    return dx, dy, ha, va


def _mask(plane, values: np.ndarray, crystal, radius: float) -> tuple[np.ndarray, list]:
    """Values with NaN near heavy nuclei, and [(nucleus, radius), ...].

    Around each nucleus with Z > :data:`MASK_Z` the disc of ``radius`` is
    masked, widened (up to :data:`MASK_MAX` Å, in 0.05 Å steps) until no
    point of the map within :data:`MASK_MAX` Å of the nucleus outside the
    disc exceeds :data:`MASK_CLIP` in magnitude: the steep density around a
    heavy core would otherwise fill the ring with contours.
    """
    near = plane.atoms(crystal, tolerance=MASK_MAX, margin=MASK_MAX)
    heavy = [a for a in near if atomic_number(a.element) > MASK_Z]
    if not heavy:
        return values, []
    pts = plane.points
    out = values.copy()
    done = []
    for a in heavy:
        d = np.linalg.norm(pts - a.cart, axis=-1)
        big = (d < MASK_MAX) & (np.abs(values) > MASK_CLIP)
        r = radius
        if np.any(big):
            r = max(r, min(MASK_MAX, np.ceil(d[big].max() / 0.05 - 1e-9) * 0.05 + 0.05))
        inside = d < r
        if np.any(inside):
            out[inside] = np.nan
            done.append((a, float(r)))
    return out, done


def _distinct(masked) -> list:
    """One entry per label and radius (several copies of one atom in a map)."""
    seen, out = set(), []
    for a, r in masked:
        if (a.label, round(r, 2)) not in seen:
            seen.add((a.label, round(r, 2)))
            out.append((a, r))
    return out


def _wrap(text: str, width_in: float, fontsize: float) -> str:
    """``text`` wrapped to fit ``width_in`` inches at ``fontsize`` points."""
    import textwrap

    chars = max(20, int(width_in * 72.0 / (0.55 * fontsize)))
    return "\n".join(textwrap.wrap(text, chars)) if len(text) > chars else text


def _summarise_levels(levels: np.ndarray, unit: str) -> str:
    if len(levels) <= 8:
        return "contours at " + ", ".join(f"{x:g}" for x in levels) + f" {unit}"
    pos = levels[levels > 0]
    if len(pos) and np.allclose(np.sort(-levels[levels < 0]), pos):
        return f"{len(levels)} contours at ±{pos.min():g} … ±{pos.max():g} {unit}"
    return f"{len(levels)} contours from {levels.min():g} to {levels.max():g} {unit}"


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
    tolerance: float = NEAR_PLANE,
    labels: bool = True,
    mask: float | None = None,
    caption: str | None = None,
    unit: str | None = None,
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
        Largest distance of a drawn atom from the plane, Å (default 0.3);
        atoms within :data:`IN_PLANE` are filled dots, the others open circles.
    labels : bool
        Label the atoms.
    mask : float, optional
        Radius (Å) masked around nuclei with Z > 18; default
        :data:`MASK_RADIUS` for deformation and residual maps, 0 (none) for
        the others; 0 switches it off.
    caption : str, optional
        Replaces the description of the contour levels.
    unit : str, optional
        Unit of the values in the caption (default e/Å³, μB/Å³ for spin).

    Returns
    -------
    PlaneDrawing
    """
    v = np.asarray(values, dtype=float)
    if v.shape != plane.shape:
        raise InputError(f"values have shape {v.shape}, the plane {plane.shape}")
    if not np.all(np.isfinite(v)):
        raise InputError("map values contain NaN or infinite numbers")
    unit = unit or ("μB/Å³" if kind == "spin" else "e/Å³")
    radius = (MASK_RADIUS if kind in ("deformation", "residual") else 0.0) if mask is None else mask
    if not (np.isfinite(radius) and 0.0 <= radius <= 2.0):
        raise InputError(f"mask radius must be between 0 and 2 Å, got {radius!r}")
    heavy: list = []
    if crystal is not None and radius > 0:
        v, heavy = _mask(plane, v, crystal, radius)
    ok = np.isfinite(v)
    lo, hi = float(v[ok].min()), float(v[ok].max())
    if levels is None:
        levels = contour_levels(kind, lo, hi, step=step, base=base, n=n)
        text = _describe(kind, step, base, n)
    else:
        levels = np.sort(np.asarray(levels, dtype=float).reshape(-1))
        text = _summarise_levels(levels, unit)
    text = caption if caption is not None else text
    if np.all(levels > 0):
        text += "; solid lines"
    else:
        text += "; positive solid, negative dashed, zero dotted"
    if heavy:
        discs = ", ".join(f"{r:.2f} Å of {a.label}" for a, r in _distinct(heavy))
        text += (
            f"; grey: masked within {discs} (nuclei with Z > {MASK_Z}, out to "
            f"|value| ≤ {MASK_CLIP:g} {unit}, at least {radius:g} Å)"
        )
    stats = {
        "rms": float(np.sqrt(np.mean(v[ok] ** 2))),
        "min": lo,
        "max": hi,
    }
    if kind == "residual":
        text += (
            f"; on this plane rms {stats['rms']:.3f}, min {stats['min']:.3f}, "
            f"max {stats['max']:.3f} {unit}"
        )
    out = PlaneDrawing(levels=levels, caption=text, stats=stats, masked=heavy)
    u, w = plane.u, plane.v
    vm = np.ma.masked_invalid(v)
    groups = {
        "positive": (levels[levels > 0], "solid", "tab:blue"),
        "negative": (levels[levels < 0], "dashed", "tab:red"),
        "zero": (levels[levels == 0], "dotted", "0.4"),
    }
    for name, (lv, style, colour) in groups.items():
        inside = lv[(lv >= lo) & (lv <= hi)]
        if inside.size and hi > lo:
            out.contours[name] = ax.contour(
                u, w, vm.T, levels=inside, colors=colour, linestyles=style, linewidths=0.7
            )
    if crystal is not None:
        _draw_atoms(ax, plane, crystal, out, tolerance, labels, radius)
    ax.set_xlim(u[0], u[-1])
    ax.set_ylim(w[0], w[-1])
    ax.set_aspect("equal")
    ax.set_xlabel("Å")
    ax.set_ylabel("Å")
    return out


def _draw_atoms(ax, plane, crystal, out: PlaneDrawing, tolerance, labels, radius) -> None:
    """Atoms, bonds, labels and mask discs of :func:`draw_plane`."""
    from matplotlib.patches import Circle

    near = plane.atoms(crystal, tolerance=tolerance, margin=_BOND_MARGIN)
    hu, hv = 0.5 * plane.size[0], 0.5 * plane.size[1]
    inside = [abs(a.u) <= hu + 1e-9 and abs(a.v) <= hv + 1e-9 for a in near]
    pairs = _bond_partners(crystal, near)
    pairs = [(i, j) for i, j in pairs if inside[i] or inside[j]]
    keep = [k for k, f in enumerate(inside) if f]
    index = {k: m for m, k in enumerate(keep)}
    out.atoms = [near[k] for k in keep]
    out.bonds = [(index[i], index[j]) for i, j in pairs if i in index and j in index]
    out.in_plane = [bool(abs(a.height) < IN_PLANE) for a in out.atoms]
    if tolerance < PROJECTED:
        _draw_projected(ax, plane, crystal, out, tolerance, labels, hu, hv)
    for a, r in out.masked:
        c = np.sqrt(max(r * r - a.height**2, 0.0))  # the sphere's cut by the plane
        ax.add_patch(Circle((a.u, a.v), c, color="0.85", zorder=2, linewidth=0))
    for i, j in pairs:
        a, b = near[i], near[j]
        ax.plot([a.u, b.u], [a.v, b.v], color="k", linewidth=1.5, zorder=3)
    for k, a in zip(keep, out.atoms, strict=True):
        flat = abs(a.height) < IN_PLANE
        ax.plot(
            a.u,
            a.v,
            "o",
            markersize=5 if flat else 6,
            markerfacecolor="k" if flat else "white",
            markeredgecolor="k",
            zorder=4,
        )
        if labels:
            partners = [near[j if i == k else i] for i, j in pairs if k in (i, j)]
            dx, dy, ha, va = _label_offset(a, partners)
            ax.annotate(
                a.label,
                (a.u, a.v),
                xytext=(dx, dy),
                textcoords="offset points",
                fontsize=8,
                ha=ha,
                va=va,
                color="k" if flat else "0.35",
                zorder=5,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75},
                annotation_clip=True,
            )


def _draw_projected(ax, plane, crystal, out: PlaneDrawing, tolerance, labels, hu, hv) -> None:
    """Grey crosses for the non-H atoms just off the plane, and a word in the caption."""
    farther = plane.atoms(crystal, tolerance=PROJECTED, margin=0.0)
    out.projected = [
        a
        for a in farther
        if abs(a.height) >= tolerance
        and atomic_number(a.element) > 1
        and abs(a.u) <= hu + 1e-9
        and abs(a.v) <= hv + 1e-9
    ]
    for a in out.projected:
        ax.plot(a.u, a.v, "x", markersize=5, color="0.45", markeredgewidth=1.0, zorder=4)
        if labels:
            ax.annotate(
                f"{a.label} ({a.height:+.2f})",
                (a.u, a.v),
                xytext=(4, -4),
                textcoords="offset points",
                fontsize=7,
                ha="left",
                va="top",
                color="0.35",
                zorder=5,
                bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.75},
                annotation_clip=True,
            )
    if out.projected:
        out.caption += (
            f"; ×: non-H atoms {tolerance:g}–{PROJECTED:g} Å off the plane, at their "
            "projection (height in Å)"
        )


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
    tolerance: float = NEAR_PLANE,
    mask: float | None = None,
    caption: str | None = None,
    unit: str | None = None,
    size: float = 6.0,
    dpi: int = 150,
    palette: int | None = None,
) -> PlaneDrawing:
    """Contour plot of a plane map written to a PNG, SVG or PDF file (by suffix).

    Parameters
    ----------
    path : str or path
        Output file; the suffix (.png, .svg, .pdf) chooses the format.
    plane, values, crystal, kind, levels, step, base, n, tolerance, mask, caption, unit :
        As :func:`draw_plane`.
    title : str, optional
        Title above the map (wrapped to the figure's width).
    size : float
        Figure width in inches.
    dpi : int
        Resolution of a PNG.
    palette : int, optional
        A PNG with this many colours (a palette image, 4-5 times smaller;
        :func:`figure_png`); default full RGB.

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
    fig, drawing = plane_figure(
        plane,
        values,
        crystal,
        kind=kind,
        levels=levels,
        step=step,
        base=base,
        n=n,
        title=title,
        tolerance=tolerance,
        mask=mask,
        caption=caption,
        unit=unit,
        size=size,
    )
    if fmt == "png":
        data = figure_png(fig, dpi, palette)
    else:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=dpi)
        data = buf.getvalue()
    write_bytes_atomic(path, data)
    return drawing


def figure_png(fig: Figure, dpi: int = 150, palette: int | None = None) -> bytes:
    """The PNG bytes of a Figure on an Agg canvas, drawn once and encoded once.

    The canvas's RGBA buffer goes straight to Pillow: the pixels are those of
    ``fig.savefig(format="png", dpi=dpi)`` (the figure's background is
    opaque), without the intermediate RGBA PNG that a palette image would
    otherwise be made from.

    Parameters
    ----------
    fig : Figure
        With a :class:`~matplotlib.backends.backend_agg.FigureCanvasAgg`.
    dpi : int
        Resolution, dots per inch.
    palette : int, optional
        Number of colours of a palette PNG (fast octree quantisation: contour
        maps hold a few line colours on white); None: an RGB PNG.

    Returns
    -------
    bytes
    """
    from PIL import Image

    fig.set_dpi(dpi)
    canvas = fig.canvas
    canvas.draw()
    image = Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3])
    if palette:
        image = image.quantize(colors=int(palette), method=Image.Quantize.FASTOCTREE)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def plane_figure(plane, values, crystal=None, *, title=None, size: float = 6.0, **options):
    """The matplotlib Figure of :func:`plot_plane` (not written) and its PlaneDrawing.

    The title and the caption are wrapped to the figure's width and the
    margins leave room for both, so neither is clipped. The margins are
    computed from the numbers of title and caption lines and the widest tick
    label (:func:`_margins`), not by a layout pass (``tight_layout`` draws
    every text once more).
    """
    ratio = plane.size[1] / plane.size[0]
    fig = Figure(figsize=(size, size * ratio + 1.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    drawing = draw_plane(ax, plane, values, crystal, **options)
    title_lines = 0
    if title:
        wrapped = _wrap(title, 0.95 * size, 10)
        ax.set_title(wrapped, fontsize=10)
        title_lines = wrapped.count("\n") + 1
    caption = _wrap(drawing.caption, 0.95 * size, 8)
    lines = caption.count("\n") + 1
    fig.text(0.5, 0.01, caption, ha="center", va="bottom", fontsize=8)
    left, right, bottom, top = _margins(ax, title_lines, lines)
    width, height = fig.get_size_inches()
    fig.subplots_adjust(
        left=left / width, right=1 - right / width, bottom=bottom / height, top=1 - top / height
    )
    return fig, drawing


def _margins(ax, title_lines: int, caption_lines: int) -> tuple[float, float, float, float]:
    """Left, right, bottom and top margins (inches) of a plane map's axes.

    From the font sizes (ticks and axis labels 10 pt, title 10 pt, caption
    8 pt): left = tick + pad + the widest y tick label (0.6 em per
    character) + the axis label; bottom = the caption block (1.3 line
    spacing) + ticks, their labels and the axis label; top = the title lines
    (1.25 line spacing) and its pad. The axes keep their equal aspect inside
    the box.
    """
    pt = 1.0 / 72.0
    lo, hi = ax.get_ylim()
    ticks = [t for t in ax.yaxis.get_major_locator().tick_values(lo, hi) if lo <= t <= hi]
    labels = ax.yaxis.get_major_formatter().format_ticks(ticks) if ticks else ["0"]
    chars = max(len(s) for s in labels)
    left = (3.5 + 3.5 + 0.6 * 10 * chars + 4 + 10 * 1.2 + 8) * pt
    right = 0.2
    bottom = caption_lines * 8 * 1.3 * pt + 0.1 + (3.5 + 3.5 + 10 * 1.2 + 4 + 10 * 1.2 + 4) * pt
    top = (title_lines * 10 * 1.25 + 6 + 8) * pt if title_lines else 0.2
    return left, right, bottom, top

"""The ``[[maps]]`` tables of a project file: which planes and fields to draw.

Example::

    [[maps]]
    plane = "Cu1,O1,N1"            # or ["Cu1", "O1@-x+1,-y,-z", "N1"], "lsq(C1,C2,C3)", ...
    name = "Cu1 coordination plane"
    kind = ["deformation", "spin"]  # default: deformation, spin (split atoms), residual
    extent = 7.0                    # Å, or [width, height]; default from the atoms
    step = 0.05                     # Å
    contours = 0.1                  # linear step; "log" or "linear"; default per kind

Kept free of matplotlib so that loading a project stays fast.
"""

from __future__ import annotations

import numpy as np

from chasm.errors import InputError
from chasm.project.schema import REQUIRED, Field

__all__ = ["MAP_KINDS", "MAP_SCHEMA", "contour_options"]

#: Fields a map can show (``chasm map --kind``).
MAP_KINDS = ("deformation", "spin", "residual", "laplacian", "static")


def _plane_problem(value) -> str | None:
    from chasm.maps.planes import parse_plane

    if isinstance(value, list) and not all(isinstance(x, str) for x in value):
        return "a list of atom labels (strings) such as ['Cu1', 'O1', 'N1']"
    try:
        parse_plane(value)
    except InputError as exc:
        return exc.message
    return None


def _kind_problem(value) -> str | None:
    kinds = [value] if isinstance(value, str) else value
    for k in kinds:
        if not isinstance(k, str) or k not in MAP_KINDS:
            return f"{k!r} is not a map kind; use one of {', '.join(MAP_KINDS)}"
    if not kinds:
        return f"give at least one of {', '.join(MAP_KINDS)}"
    return None


def _extent_problem(value) -> str | None:
    v = value if isinstance(value, list) else [value]
    if len(v) not in (1, 2) or not all(isinstance(x, (int, float)) for x in v):
        return "give one side or [width, height] in Å"
    if not all(0 < float(x) <= 100 for x in v):
        return "sides must be > 0 and <= 100 Å"
    return None


def _contours_problem(value) -> str | None:
    if isinstance(value, str):
        return None if value in ("log", "linear") else "use a step (number), 'log' or 'linear'"
    if not (np.isfinite(value) and 0 < value <= 100):
        return "a contour step must be > 0 and <= 100"
    return None


MAP_SCHEMA = {
    "plane": Field(
        (str, list),
        REQUIRED,
        help="'A,B,C' (symmetry images 'O1@-x+1,-y,-z'), 'normal(A;x,y,z)', 'normal(A;B)', "
        "'hkl(A;h,k,l)' or 'lsq(A,B,C,...)' (docs/maps.md)",
        check=_plane_problem,
    ),
    "name": Field((str, type(None)), None, help="caption name (default: from the plane)"),
    "kind": Field(
        (str, list, type(None)),
        None,
        help="fields: " + ", ".join(MAP_KINDS) + " (default: deformation, spin with split "
        "atoms, residual with X-ray data)",
        check=_kind_problem,
    ),
    "extent": Field(
        (float, list, type(None)),
        None,
        help="side or [width, height], A (default: the atoms + 2 A, 6-20 A)",
        check=_extent_problem,
    ),
    "step": Field((float,), 0.05, help="mesh step, A", ge=0.005, le=1.0),
    "contours": Field(
        (float, str, type(None)),
        None,
        help="linear step (e/A3, muB/A3 for spin), 'log' or 'linear' (default: 0.05 linear, "
        "spin +-0.01*2^n)",
        check=_contours_problem,
    ),
}
"""Keys of one ``[[maps]]`` table."""


def contour_options(kind: str, contours) -> dict:
    """Keyword arguments of :func:`chasm.maps.plot.plot_plane` for a ``contours`` setting.

    Parameters
    ----------
    kind : str
        One of :data:`MAP_KINDS`.
    contours : None, float, "log" or "linear"
        None: the field's default (deformation, residual: every 0.05 e/Å³;
        spin: ±0.01·2ⁿ μB/Å³; static: +0.01·2ⁿ e/Å³). A number: linear
        contours at that step. "linear": every 0.05 (spin: 0.01 μB/Å³).
        "log": ±0.01·2ⁿ.

    Raises
    ------
    InputError
        A non-positive step, an unknown word, or contours for a Laplacian map
        (its levels are fixed).
    """
    if kind == "laplacian":
        if contours not in (None, "log"):
            raise InputError("a Laplacian map has fixed contours ±{1,2,4,8}·10ⁿ; drop --contours")
        return {}
    if contours is None:
        return {}
    if isinstance(contours, str):
        if contours == "linear":
            return {"step": 0.01 if kind == "spin" else 0.05}
        if contours == "log":
            if kind in ("spin", "static"):
                return {}
            pos = 0.01 * 2.0 ** np.arange(10)
            return {
                "levels": np.concatenate([-pos[::-1], [0.0], pos]),
                "caption": "contours at ±0.01·2^n e/Å³, n = 0…9",
            }
        raise InputError(f"contours {contours!r}: use a step (number), 'log' or 'linear'")
    step = float(contours)
    if not (np.isfinite(step) and 0 < step <= 100):
        raise InputError(f"contour step must be > 0 and <= 100, got {contours!r}")
    return {"step": step}

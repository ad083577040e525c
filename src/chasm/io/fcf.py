"""SHELX ``.fcf`` files (CIF reflection lists LIST 4 and LIST 6): read and write.

Layouts (SHELXL's own, one row per reflection in a ``_refln_`` loop)
--------------------------------------------------------------------
LIST 4 (``_shelx_refln_list_code 4``, what checkCIF and the journals take)::

    _refln_index_h _refln_index_k _refln_index_l
    _refln_F_squared_calc _refln_F_squared_meas _refln_F_squared_sigma
    _refln_observed_status

LIST 6 (Fourier maps in olex2 and others)::

    _refln_index_h _refln_index_k _refln_index_l
    _refln_F_squared_meas _refln_F_squared_sigma _refln_F_calc _refln_phase_calc

Scale, as SHELXL writes them: F_calc is the model's structure factor on the
absolute scale (electrons, anomalous dispersion included, no extinction);
F²_meas and σ are brought to that scale by dividing them by the overall scale
k (on F²) and by the extinction factor y of the reflection (Fo²/(k y)).
The phase is in degrees, 0 ≤ φ < 360.

The header carries ``_shelx_refln_list_code``, ``_shelx_F_calc_maximum``,
``_exptl_crystal_F_000`` (Σ Z over the cell, neutral atoms, as SHELXL),
``_reflns_d_resolution_high`` (Å), the ``_space_group_symop_operation_xyz``
loop and the cell. chasm writes every reflection of the data set with status
``o`` (LIST 4) and more digits than SHELXL's two decimals.

:func:`read_fcf` reads either list (LIST 3, with A and B, is refused with a
clear message), from a file written by SHELXL, olex2 or chasm.

Checked against SHELXL (tests/test_fcf.py): for the published CaF2 model,
chasm's Fc² agree with the Fc² of SHELXL's listing (CaF2.lst, 50 reflections)
to a median 6e-5 in |Fc|. The ``CaF2.fcf`` beside it (written with
``LIST -6``) is read, but its F_calc are not the model's |F|: they fit |F| with
f″ = 0 and U(Ca), U(F) smaller by 1.0e-4 and 0.5e-4 Å² than the published
ones (to 0.006 e, its print precision), and its Fo² differ from the listing's
by 1 % at 1 1 1. chasm's LIST 6 holds the model's F (dispersion included).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import gemmi
import numpy as np
from gemmi import cif

from chasm import __version__
from chasm.crystal.symmetry import format_symop
from chasm.errors import InputError
from chasm.io.atomic import write_text_atomic

__all__ = ["Fcf", "read_fcf", "fcf_text", "write_fcf", "fcf_from_xray", "LIST_CODES"]

#: The lists chasm reads and writes.
LIST_CODES = (4, 6)

_H = ["_refln_index_h", "_refln_index_k", "_refln_index_l"]
_COLUMNS = {
    4: [
        *_H,
        "_refln_F_squared_calc",
        "_refln_F_squared_meas",
        "_refln_F_squared_sigma",
        "_refln_observed_status",
    ],
    6: [
        *_H,
        "_refln_F_squared_meas",
        "_refln_F_squared_sigma",
        "_refln_F_calc",
        "_refln_phase_calc",
    ],
}


@dataclass(eq=False)
class Fcf:
    """A reflection list of a ``.fcf`` file.

    Attributes
    ----------
    list_code : int
        4 or 6.
    hkl : ndarray (n, 3), int
    f2_meas, sigma : ndarray (n,)
        Fo² and σ(Fo²) on the absolute scale of F_calc (electrons²).
    f_calc : ndarray (n,), complex
        Calculated structure factors (LIST 6: |F| and phase; LIST 4: |F| =
        sqrt(F²_calc), phase 0 since the list has none).
    status : list of str
        ``_refln_observed_status`` (LIST 4; ``'o'`` for LIST 6).
    cell : tuple of 6 float or None
    symops : list of str
        The ``_space_group_symop_operation_xyz`` triplets.
    items : dict
        Other single-valued items of the block (tag -> raw text).
    name : str
        Data block name.
    path : str or None
    """

    list_code: int
    hkl: np.ndarray
    f2_meas: np.ndarray
    sigma: np.ndarray
    f_calc: np.ndarray
    status: list[str] = field(default_factory=list)
    cell: tuple | None = None
    symops: list[str] = field(default_factory=list)
    items: dict = field(default_factory=dict)
    name: str = "chasm"
    path: str | None = None

    def __len__(self) -> int:
        return len(self.hkl)

    @property
    def f2_calc(self) -> np.ndarray:
        """|F_calc|² (electrons²)."""
        return np.abs(self.f_calc) ** 2

    @property
    def phase(self) -> np.ndarray:
        """φ_calc in degrees, [0, 360)."""
        return np.degrees(np.angle(self.f_calc)) % 360.0


# ----------------------------------------------------------------------------- reading
def _first_row_line(text: str, last_tag: str) -> int | None:
    """1-based line of the first data row after the loop header ending in ``last_tag``."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().lower() == last_tag.lower():
            for j in range(i + 1, len(lines)):
                if lines[j].strip() and not lines[j].lstrip().startswith("#"):
                    return j + 1
    return None


def read_fcf(path: str | os.PathLike, block: str | None = None) -> Fcf:
    """Read a LIST 4 or LIST 6 ``.fcf`` file.

    Parameters
    ----------
    path : path-like
    block : str, optional
        Data block name (default: the first block with a ``_refln_`` loop).

    Raises
    ------
    InputError
        Unreadable file, no reflection loop, a list other than 4 or 6, a missing
        column or a value that is not a number (the line is named when each
        reflection is on its own line, as every writer does).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
        doc = cif.read_string(text)
    except (OSError, ValueError, RuntimeError) as exc:
        raise InputError(f"cannot read the .fcf file: {exc}", path=str(path)) from None
    blocks = [b for b in doc if b.find_loop("_refln_index_h")]
    if block is not None:
        blocks = [b for b in doc if b.name == block]
        if not blocks:
            names = ", ".join(b.name for b in doc)
            raise InputError(f"no data block {block!r} (blocks: {names})", path=str(path))
    if not blocks or not blocks[0].find_loop("_refln_index_h"):
        raise InputError(
            "no reflection loop (_refln_index_h ...): not a SHELX .fcf file", path=str(path)
        )
    b = blocks[0]
    code = _list_code(b, path)
    tags = _COLUMNS[code]
    if code == 4 and not b.find_loop("_refln_observed_status"):
        tags = tags[:-1]
    table = b.find(tags)
    missing = [t for t in tags if not b.find_loop(t)]
    if missing or len(table) == 0:
        raise InputError(
            f"LIST {code} needs the columns {', '.join(_COLUMNS[code][:7])}; "
            f"missing: {', '.join(missing) or 'every row'}",
            path=str(path),
        )
    first = _first_row_line(text, tags[-1])
    n = len(table)
    values = np.empty((n, 7))
    status = []
    for r, row in enumerate(table):
        line = None if first is None else first + r
        for c in range(7 if code == 6 else 6):
            raw = row[c]
            v = cif.as_number(raw)
            if not math.isfinite(v):
                raise InputError(
                    f"{tags[c]} = {raw!r} is not a number (reflection {r + 1}); "
                    "every reflection needs h, k, l and its values",
                    path=str(path),
                    line=line,
                )
            values[r, c] = v
        status.append(cif.as_string(row[6]) if code == 4 and len(tags) == 7 else "o")
    hkl = values[:, :3]
    if np.any(hkl != np.round(hkl)):
        raise InputError("Miller indices must be integers", path=str(path), line=first)
    if code == 4:
        f2c, f2, sig = values[:, 3], values[:, 4], values[:, 5]
        f_calc = np.sqrt(np.maximum(f2c, 0.0)).astype(complex)
    else:
        f2, sig = values[:, 3], values[:, 4]
        f_calc = values[:, 5] * np.exp(1j * np.radians(values[:, 6]))
    cell = None
    cell_tags = ["_cell_length_a", "_cell_length_b", "_cell_length_c"]
    cell_tags += ["_cell_angle_alpha", "_cell_angle_beta", "_cell_angle_gamma"]
    found = [b.find_value(t) for t in cell_tags]
    if all(v is not None for v in found):
        cell = tuple(cif.as_number(v) for v in found)
    symops = [cif.as_string(v) for v in b.find_values("_space_group_symop_operation_xyz")]
    if not symops:
        symops = [cif.as_string(v) for v in b.find_values("_symmetry_equiv_pos_as_xyz")]
    items = {p.pair[0]: p.pair[1] for p in b if p.pair is not None}
    return Fcf(
        code, hkl.astype(int), f2, sig, f_calc, status, cell, symops, items, b.name, str(path)
    )


def _list_code(b: cif.Block, path: Path) -> int:
    raw = b.find_value("_shelx_refln_list_code")
    if raw is not None:
        try:
            code = int(cif.as_string(raw))
        except ValueError:
            code = None
        if code not in LIST_CODES:
            raise InputError(
                f"_shelx_refln_list_code {cif.as_string(raw)}: chasm reads LIST 4 "
                "(h k l Fc² Fo² σ status) and LIST 6 (h k l Fo² σ Fc φ) only; "
                "write the file again with LIST 4 or LIST 6",
                path=str(path),
            )
        return code
    if b.find_loop("_refln_F_calc") and b.find_loop("_refln_phase_calc"):
        return 6
    if b.find_loop("_refln_F_squared_calc"):
        return 4
    raise InputError(
        "cannot tell the list: no _shelx_refln_list_code and neither _refln_F_squared_calc "
        "(LIST 4) nor _refln_F_calc with _refln_phase_calc (LIST 6)",
        path=str(path),
    )


# ----------------------------------------------------------------------------- writing
def _fmt(v: float) -> str:
    return f"{v:.4f}"


def fcf_text(fcf: Fcf, title: str | None = None) -> str:
    """The text of a ``.fcf`` file (layout in the module docstring).

    Raises
    ------
    ValueError
        A list code other than 4 or 6, or non-finite values.
    """
    if fcf.list_code not in LIST_CODES:
        raise ValueError(f"list code must be 4 or 6, got {fcf.list_code}")
    arrays = (fcf.f2_meas, fcf.sigma, np.abs(fcf.f_calc))
    if not all(np.all(np.isfinite(a)) for a in arrays):
        raise ValueError("cannot write non-finite F or sigma to an .fcf file")
    name = re.sub(r"\s", "_", fcf.name or "chasm")
    if fcf.list_code == 4:
        head = "# h,k,l, Fc-squared, Fo-squared, sigma(Fo-squared) and status flag"
    else:
        head = "# h,k,l, Fo-squared, sigma(Fo-squared), Fc and phi(calc)"
    lines = ["#", head, f"# written by chasm {__version__}", "#", f"data_{name}"]
    lines.append(f"_shelx_title {cif.quote(title or name)}")
    lines.append(f"_shelx_refln_list_code          {fcf.list_code}")
    for tag in ("_shelx_F_calc_maximum", "_exptl_crystal_F_000", "_reflns_d_resolution_high"):
        if tag in fcf.items:
            lines.append(f"{tag:<31s} {fcf.items[tag]}")
    lines.append("")
    if fcf.symops:
        lines += ["loop_", " _space_group_symop_operation_xyz"]
        lines += [f" {cif.quote(s)}" for s in fcf.symops]
        lines.append("")
    if fcf.cell is not None:
        names = ["length_a", "length_b", "length_c", "angle_alpha", "angle_beta", "angle_gamma"]
        lines += [f"_cell_{n:<12s} {v:.5f}" for n, v in zip(names, fcf.cell, strict=True)]
        lines.append("")
    lines += ["loop_"] + [f" {t}" for t in _COLUMNS[fcf.list_code]]
    status = fcf.status or ["o"] * len(fcf)
    for k in range(len(fcf)):
        h, kk, ll = (int(v) for v in fcf.hkl[k])
        if fcf.list_code == 4:
            vals = [fcf.f2_calc[k], fcf.f2_meas[k], fcf.sigma[k]]
            lines.append(f"{h} {kk} {ll} " + " ".join(_fmt(v) for v in vals) + f" {status[k]}")
        else:
            vals = [fcf.f2_meas[k], fcf.sigma[k], abs(fcf.f_calc[k])]
            phase = fcf.phase[k]
            lines.append(f"{h} {kk} {ll} " + " ".join(_fmt(v) for v in vals) + f" {phase:.2f}")
    return "\n".join(lines) + "\n"


def write_fcf(path: str | os.PathLike, fcf: Fcf, title: str | None = None) -> None:
    """Write ``fcf`` to ``path`` atomically (:func:`fcf_text`)."""
    write_text_atomic(path, fcf_text(fcf, title))


def _f000(crystal) -> float:
    """Σ Z over the unit cell (occupancies and site multiplicities included)."""
    total = 0.0
    for i, atom in enumerate(crystal.atoms):
        z = gemmi.Element(atom.element).atomic_number
        total += z * atom.occupancy * crystal.multiplicity(i)
    return total


def fcf_from_xray(dataset, p: np.ndarray, list_code: int = 4) -> Fcf:
    """The ``.fcf`` reflection list of an X-ray data set at the parameters p.

    Parameters
    ----------
    dataset : XrayData
        Bound to a refinement (:class:`chasm.refine.xray_data.XrayData`); every
        reflection of the set is listed, whatever the stage window.
    p : ndarray
        Full parameter vector (the data set's scale and extinction included).
    list_code : {4, 6}

    Returns
    -------
    Fcf
        Fo² and σ divided by k y (module docstring), F_calc absolute.
    """
    if list_code not in LIST_CODES:
        raise InputError(f"an .fcf list must be 4 or 6, got {list_code}")
    saved = dataset.window
    dataset.window = (None, None)
    try:
        fo2, s2, y_calc, fc2, _, mask = dataset.calculate(np.asarray(p, float), jacobian=False)
        f_calc = dataset.fc_complex()
    finally:
        dataset.window = saved
    if dataset.options.observable == "F":
        y_calc = y_calc**2
    # k y per reflection: y -> 1 as Fc -> 0 for every extinction model
    ky = np.where(fc2 > 0, y_calc / np.where(fc2 > 0, fc2, 1.0), float(p[dataset._i_scale]))
    crystal = dataset.crystal
    hkl = np.asarray(dataset.reflections.hkl)[mask]
    d_min = 1.0 / (2.0 * float(np.max(dataset.stol[mask]))) if len(hkl) else math.nan
    items = {
        "_shelx_F_calc_maximum": f"{float(np.max(np.abs(f_calc))):.2f}",
        "_exptl_crystal_F_000": f"{_f000(crystal):.2f}",
        "_reflns_d_resolution_high": f"{d_min:.4f}",
    }
    symops = [format_symop(r, t) for r, t in zip(*crystal.symops, strict=True)]
    return Fcf(
        list_code,
        hkl,
        fo2 / ky,
        s2 / ky,
        np.asarray(f_calc)[mask] if len(f_calc) != len(hkl) else np.asarray(f_calc),
        ["o"] * len(hkl),
        tuple(crystal.cell.parameters),
        symops,
        items,
        crystal.name,
    )

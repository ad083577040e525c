"""Read a :class:`Crystal` from a small-molecule CIF (core dictionary tags).

Parsing is done by ``gemmi.cif``; this module maps the tags to the crystal
model and checks them. Numbers may carry a standard uncertainty in parentheses
(``0.02023(14)``): the value is used and the su kept in ``Atom.su`` /
``Crystal.cell_su``.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import gemmi
import numpy as np
from gemmi import cif

from ..errors import InputError
from ..io.textio import check_range, parse_number, read_input_text
from .adp import B_TO_U
from .structure import Atom, Crystal, cell_problem, parse_type_symbol
from .symmetry import group_ops, ops_from_triplets, resolve_spacegroup

__all__ = ["read_cif", "read_cif_document", "parse_cif_number"]

_SYMOP_TAGS = (
    "_space_group_symop_operation_xyz",
    "_symmetry_equiv_pos_as_xyz",
    "_space_group_symop.operation_xyz",
)
_HALL_TAGS = ("_space_group_name_Hall", "_symmetry_space_group_name_Hall")
_HM_TAGS = ("_space_group_name_H-M_alt", "_symmetry_space_group_name_H-M")
_NUMBER_TAGS = ("_space_group_IT_number", "_symmetry_Int_Tables_number")
_CELL_TAGS = (
    "_cell_length_a",
    "_cell_length_b",
    "_cell_length_c",
    "_cell_angle_alpha",
    "_cell_angle_beta",
    "_cell_angle_gamma",
)
_U_NAMES = ("11", "22", "33", "12", "13", "23")

#: Allowed ranges of the values read (documented in :func:`read_cif`).
XYZ_LIMIT = 100.0  # |fractional coordinate|
OCCUPANCY_TOL = 0.002  # occupancy in [-tol, 1 + tol]: rounding tolerated
U_LIMIT = 10.0  # Å², |U_ij| and Uiso
WAVELENGTH_RANGE = (0.0, 100.0)  # Å, open at 0
DISPERSION_LIMIT = 100.0  # |f'|, |f''| in electrons


def parse_cif_number(text: str) -> tuple[float, float | None]:
    """Value and standard uncertainty of a CIF number.

    ``'0.02023(14)'`` -> (0.02023, 0.00014); ``'123(2)'`` -> (123.0, 2.0);
    ``'1.5e-3(2)'`` -> (0.0015, 0.0002); ``'90'`` -> (90.0, None).
    See :func:`chasm.io.textio.parse_number`.

    Raises
    ------
    ValueError
        If the text is not a number (``'?'`` and ``'.'`` included), is longer
        than 350 characters, or its value is beyond the double range.
    """
    return parse_number(text)


class _Reader:
    """State of one read_cif call: the path, the file's lines, the block."""

    def __init__(self, path: Path, block: cif.Block, text: str | None = None, result=False):
        self.path = path
        self.block = block
        self.result = result  # chasm's own refined model: no occupancy/ADP ranges
        self._lines: list[str] | None = None if text is None else text.split("\n")

    def error(self, message: str, line: int | None = None) -> InputError:
        return InputError(message, path=str(self.path), line=line)

    def tag_line(self, tag: str) -> int | None:
        item = self.block.find_pair_item(tag) or self.block.find_loop_item(tag)
        return item.line_number if item is not None else None

    def row_line(self, tag: str, first_token: str, nth: int = 0) -> int | None:
        """Best guess of the line of a loop row: the ``nth`` line after the tag starting with it."""
        start = self.tag_line(tag)
        if start is None:
            return None
        if self._lines is None:
            self._lines = read_input_text(self.path).split("\n")
        for n in range(start, len(self._lines)):
            tokens = self._lines[n].split()
            if tokens and cif.as_string(tokens[0]) == first_token:
                if nth == 0:
                    return n + 1
                nth -= 1
        return start

    def first_value(self, tags) -> tuple[str | None, str | None]:
        """(tag, raw value) of the first tag present with a non-null value."""
        for tag in tags:
            column = self.block.find_values(tag)
            for raw in column:
                if not cif.is_null(raw):
                    return tag, raw
        return None, None

    def number(self, raw: str, what: str, line: int | None) -> tuple[float, float | None]:
        try:
            return parse_cif_number(cif.as_string(raw))
        except ValueError as exc:
            text = cif.as_string(raw)
            shown = text if len(text) <= 40 else text[:20] + "..." + text[-8:]
            raise self.error(f"{what}: cannot read the number {shown!r} ({exc})", line) from None

    def physical(self, lo, hi) -> tuple[float | None, float | None]:
        """Bounds of an occupancy or ADP: (lo, hi) for input, none for a chasm result."""
        return (None, None) if self.result else (lo, hi)

    def ranged(
        self, raw: str, what: str, line: int | None, lo=None, hi=None, hint: str = "", **kw
    ) -> tuple[float, float | None]:
        """:meth:`number`, then :func:`chasm.io.textio.check_range` on the value."""
        value, su = self.number(raw, what, line)
        check_range(value, what, lo, hi, path=self.path, line=line, hint=hint, **kw)
        return value, su


def _select_block(doc: cif.Document, block: str | None, path: Path) -> cif.Block:
    if block is not None:
        found = doc.find_block(block)
        if found is None:
            names = ", ".join(b.name for b in doc)
            raise InputError(f"no data block {block!r} (blocks: {names})", path=str(path))
        return found
    for candidate in doc:
        if candidate.find_values("_atom_site_fract_x"):
            return candidate
    raise InputError("no data block with atoms (_atom_site_fract_x) in the file", path=str(path))


def _read_cell(r: _Reader) -> tuple[gemmi.UnitCell, tuple[float, ...]]:
    values, sus = [], []
    for tag in _CELL_TAGS:
        _, raw = r.first_value([tag])
        if raw is None:
            raise r.error(f"missing cell parameter {tag}", r.tag_line(tag))
        value, su = r.number(raw, tag, r.tag_line(tag))
        values.append(value)
        sus.append(math.nan if su is None else su)
    problem = cell_problem(values)
    if problem is not None:
        raise r.error(problem[0], r.tag_line(_CELL_TAGS[problem[1]]))
    return gemmi.UnitCell(*values), tuple(sus)


def _read_symmetry(r: _Reader, cell: gemmi.UnitCell):
    """(spacegroup or None, rotations, translations) from the symop loop or the names."""
    for tag in _SYMOP_TAGS:
        column = r.block.find_values(tag)
        if column:
            triplets = [cif.as_string(v) for v in column]
            try:
                rotations, translations = ops_from_triplets(triplets)
            except ValueError as exc:
                raise r.error(str(exc), r.tag_line(tag)) from None
            sg = gemmi.find_spacegroup_by_ops(group_ops(rotations, translations))
            _check_names(r, sg, cell)
            return sg, rotations, translations
    for tags in (_HALL_TAGS, _HM_TAGS, _NUMBER_TAGS):
        tag, raw = r.first_value(tags)
        if raw is not None:
            try:
                sg = resolve_spacegroup(cif.as_string(raw), cell.alpha, cell.gamma)
            except ValueError as exc:
                raise r.error(str(exc), r.tag_line(tag)) from None
            return sg, None, None
    raise r.error(
        "no symmetry: neither a _space_group_symop_operation_xyz loop nor a space-group name"
    )


def _check_names(r: _Reader, sg: gemmi.SpaceGroup | None, cell: gemmi.UnitCell) -> None:
    """Warn when the space-group names disagree with the operations (the loop wins)."""
    for tags in (_HALL_TAGS, _HM_TAGS):
        tag, raw = r.first_value(tags)
        if raw is None:
            continue
        try:
            named = resolve_spacegroup(cif.as_string(raw), cell.alpha, cell.gamma)
        except ValueError:
            continue
        if sg is None or named.hall != sg.hall:
            found = "an unknown setting" if sg is None else sg.xhm()
            warnings.warn(
                f"{r.path}: {tag} {cif.as_string(raw)!r} differs from the symmetry "
                f"operations ({found}); using the operations",
                stacklevel=3,
            )
        return


def _read_dispersion(r: _Reader) -> dict[str, tuple[float, float]]:
    table = r.block.find("_atom_type_", ["symbol", "scat_dispersion_real", "scat_dispersion_imag"])
    out: dict[str, tuple[float, float]] = {}
    line = r.tag_line("_atom_type_scat_dispersion_real")
    for row in table:
        symbol = cif.as_string(row[0])
        if cif.is_null(row[1]) or cif.is_null(row[2]):
            continue
        try:
            element, _ = parse_type_symbol(symbol)
        except ValueError:
            raise r.error(f"_atom_type_symbol {symbol!r}: unknown element", line) from None
        lim = DISPERSION_LIMIT
        fp = r.ranged(row[1], f"f' of {symbol}", line, -lim, lim)[0]
        fpp = r.ranged(row[2], f"f'' of {symbol}", line, -lim, lim)[0]
        if element in out and out[element] != (fp, fpp):
            warnings.warn(
                f"{r.path}: several dispersion values for {element}; using the first",
                stacklevel=3,
            )
            continue
        out[element] = (fp, fpp)
    return out


def _read_aniso(r: _Reader) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """label -> (U_cif 6-vector, su 6-vector) in the order U11 U22 U33 U12 U13 U23."""
    for kind, factor in (("U", 1.0), ("B", B_TO_U)):
        tags = [f"{kind}_{ij}" for ij in _U_NAMES]
        table = r.block.find("_atom_site_aniso_", ["label", *tags])
        if len(table) == 0:
            continue
        out = {}
        for row in table:
            label = cif.as_string(row[0])
            line = r.row_line("_atom_site_aniso_label", label)
            u, su = np.empty(6), np.full(6, math.nan)
            for k in range(6):
                what = f"atom {label} {kind}_{_U_NAMES[k]}"
                lim = U_LIMIT / factor
                value, s = r.ranged(row[k + 1], what, line, *r.physical(-lim, lim))
                u[k] = value * factor
                if s is not None:
                    su[k] = s * factor
            out[label] = (u, su)
        return out
    return {}


def _read_atoms(r: _Reader, aniso: dict) -> tuple[list[Atom], list[dict]]:
    """Atoms and, per atom, what the file says about its site (for cross-checks)."""
    optional = [
        "?type_symbol",
        "?U_iso_or_equiv",
        "?B_iso_or_equiv",
        "?occupancy",
        "?adp_type",
        "?site_symmetry_order",
        "?symmetry_multiplicity",
        "?calc_flag",
    ]
    table = r.block.find("_atom_site_", ["label", "fract_x", "fract_y", "fract_z", *optional])
    if len(table) == 0:
        raise r.error(
            f"data block {r.block.name!r} has no atoms "
            "(loop of _atom_site_label, _atom_site_fract_x/y/z)",
            r.tag_line("_atom_site_label"),
        )
    (i_type, i_uiso, i_biso, i_occ, i_adp, i_order, i_mult, i_calc) = range(4, 12)
    atoms, notes, seen = [], [], set()
    for row in table:
        label = cif.as_string(row[0])
        line = r.row_line("_atom_site_label", label)
        if label in seen:
            line = r.row_line("_atom_site_label", label, nth=1)
            raise r.error(f"atom label {label!r} is given twice; labels must be unique", line)
        seen.add(label)

        def has(col, row=row):
            return row.has(col) and not cif.is_null(row[col])

        if has(i_calc) and cif.as_string(row[i_calc]).lower() == "dum":
            continue  # dummy atom: not part of the model
        symbol = cif.as_string(row[i_type]) if has(i_type) else label
        try:
            element, charge = parse_type_symbol(symbol)
        except ValueError:
            message = f"atom {label}: unknown element in type symbol {symbol!r}"
            raise r.error(message, line) from None
        xyz, xyz_su = np.empty(3), np.full(3, math.nan)
        for k in range(3):
            if not has(k + 1):
                raise r.error(f"atom {label}: missing fractional coordinate {'xyz'[k]}", line)
            what = f"atom {label} coordinate {'xyz'[k]}"
            value, s = r.ranged(row[k + 1], what, line, -XYZ_LIMIT, XYZ_LIMIT)
            xyz[k] = value
            if s is not None:
                xyz_su[k] = s
        su: dict = {"xyz": xyz_su}
        occupancy = 1.0
        if has(i_occ):
            occupancy, s = r.ranged(
                row[i_occ],
                f"atom {label} occupancy",
                line,
                *r.physical(-OCCUPANCY_TOL, 1 + OCCUPANCY_TOL),
            )
            su["occupancy"] = math.nan if s is None else s
        uiso = None
        # Ueq of an anisotropic atom is informative only; Uiso of an isotropic one must be > 0
        iso = label not in aniso and not r.result
        lo, hint = (0.0, _UISO_HINT) if iso else (-U_LIMIT, "")
        if has(i_uiso):
            what = f"atom {label} U_iso_or_equiv (Å²)"
            bounds = r.physical(lo, U_LIMIT)
            uiso, s = r.ranged(row[i_uiso], what, line, *bounds, lo_open=iso, hint=hint)
            su["uiso"] = math.nan if s is None else s
        elif has(i_biso):
            what = f"atom {label} B_iso_or_equiv (Å²)"
            bounds = r.physical(lo / B_TO_U, U_LIMIT / B_TO_U)
            biso, s = r.ranged(row[i_biso], what, line, *bounds, lo_open=iso, hint=hint)
            uiso = biso * B_TO_U
            su["uiso"] = math.nan if s is None else s * B_TO_U
        u_aniso = None
        if label in aniso:
            u_aniso, su["u_aniso"] = aniso[label]
        elif has(i_adp) and cif.as_string(row[i_adp]).lower() in ("uani", "bani"):
            raise r.error(
                f"atom {label} is {cif.as_string(row[i_adp])} but has no row in the "
                "_atom_site_aniso_ loop",
                line,
            )
        if uiso is None and u_aniso is None:
            raise r.error(f"atom {label}: no displacement parameter (Uiso, Biso or Uani)", line)
        atoms.append(
            Atom(
                label=label,
                element=element,
                xyz=xyz,
                occupancy=occupancy,
                uiso=uiso,
                u_aniso=u_aniso,
                charge=charge,
                type_symbol=symbol,
                su=su,
            )
        )
        note = {"line": line}
        if has(i_order):
            note["site_symmetry_order"] = cif.as_string(row[i_order])
        if has(i_mult):
            note["multiplicity"] = cif.as_string(row[i_mult])
        notes.append(note)
    labels = {a.label for a in atoms}
    for label in aniso:
        if label not in labels:
            raise r.error(
                f"_atom_site_aniso_label {label!r} is not an atom of _atom_site_label",
                r.row_line("_atom_site_aniso_label", label),
            )
    return atoms, notes


_UISO_HINT = (
    "an isotropic displacement parameter must be positive: a value SHELXL left "
    "non-positive must be fixed (e.g. set Uiso = 0.01) before chasm uses the model"
)


def _check_site_symmetry(r: _Reader, crystal: Crystal, notes: list[dict]) -> None:
    """Warn when the file's site-symmetry order or multiplicity disagrees with ours."""
    for i, note in enumerate(notes):
        order = len(crystal.site_symmetry(i))
        label = crystal.atoms[i].label
        for key, ours in (
            ("site_symmetry_order", order),
            ("multiplicity", crystal.n_ops // order),
        ):
            if key in note and note[key].isdigit() and int(note[key]) != ours:
                warnings.warn(
                    f"{r.path}, line {note['line']}: atom {label} has {key} {note[key]} in "
                    f"the file but {ours} from its coordinates (rounded coordinates? "
                    "use a larger tolerance in Crystal.site_symmetry)",
                    stacklevel=3,
                )


def read_cif_document(path: str | Path) -> tuple[cif.Document, str]:
    """Parse a CIF file with gemmi after reading it safely (:mod:`chasm.io.textio`).

    Returns
    -------
    (gemmi.cif.Document, str)
        The document and the decoded text (line ends normalised, BOM dropped).

    Raises
    ------
    InputError
        Not a regular readable file, binary, or a CIF syntax error (with its line).
    """
    path = Path(path)
    text = read_input_text(path)
    try:
        doc = cif.read_string(text)
    except (RuntimeError, ValueError) as exc:
        message, line = str(exc), None
        match = re.match(r"^string:(\d+)(?::\S*:)?\s*(.*)$", message, re.S)
        if match:
            line, message = int(match.group(1)), match.group(2).strip()
        raise InputError(f"not a readable CIF file: {message}", path=str(path), line=line) from None
    return doc, text


def read_cif(path: str | Path, block: str | None = None, *, result: bool = False) -> Crystal:
    """Read the structure model of a small-molecule CIF.

    Reads the cell (with su), the symmetry operations (from the
    ``_space_group_symop_operation_xyz`` or ``_symmetry_equiv_pos_as_xyz`` loop
    when present, which SHELXL calls authoritative; otherwise from the Hall
    symbol, the H-M symbol or the IT number, in that order), the atoms with
    occupancies and Uiso/Biso, the anisotropic U or B (mapped by tag name, any
    column order), ``_atom_type_scat_dispersion_real/imag`` per element, and the
    first ``_diffrn_radiation_wavelength``. Atoms with ``_atom_site_calc_flag``
    ``dum`` are skipped. Warns when the file's site-symmetry order or
    multiplicity of an atom disagrees with the one computed from its
    coordinates.

    Parameters
    ----------
    path : str or Path
        The CIF file.
    block : str, optional
        Data block name; by default the first block that has atoms.
    result : bool
        The file is a model chasm refined (its rhoCIF): occupancies and ADPs
        are only checked to be finite, so that a model a refinement left
        implausible (its plausibility table says so) can still be reported.
        Input files (False) must hold occupancies in [-0.002, 1.002], |U_ij|
        and Uiso ≤ 10 Å², and Uiso > 0 for isotropic atoms.

    Returns
    -------
    Crystal

    Raises
    ------
    InputError
        Missing or unreadable file, no block with atoms, missing cell, unknown
        element, unreadable number, inconsistent symmetry operations; the message
        names the file and, where known, the line.
    """
    path = Path(path)
    doc, text = read_cif_document(path)
    r = _Reader(path, _select_block(doc, block, path), text, result)
    cell, cell_su = _read_cell(r)
    sg, rotations, translations = _read_symmetry(r, cell)
    aniso = _read_aniso(r)
    atoms, notes = _read_atoms(r, aniso)
    dispersion = _read_dispersion(r)
    tag, raw = r.first_value(["_diffrn_radiation_wavelength", "_diffrn_radiation_wavelength.value"])
    wavelength = None
    if raw is not None:
        lo, hi = WAVELENGTH_RANGE
        wavelength = r.ranged(raw, f"{tag} (Å)", r.tag_line(tag), lo, hi, lo_open=True)[0]
    try:
        crystal = Crystal(
            name=r.block.name,
            cell=cell,
            spacegroup=sg,
            atoms=atoms,
            dispersion=dispersion,
            wavelength=wavelength,
            rotations=rotations,
            translations=translations,
            cell_su=cell_su,
        )
    except ValueError as exc:
        raise r.error(str(exc)) from None
    _check_site_symmetry(r, crystal, notes)
    return crystal

"""Reader for cryspy's ``.rcif`` polarised-neutron files.

The ``.rcif`` format of cryspy (https://github.com/ikibalin/cryspy) is a CIF
dialect that gemmi's strict parser rejects: loops may carry a name
(``loop_Ho2Ti2O7``), several data blocks may share a name, loops may be empty,
and a ``global_`` block holds program settings. This module has its own small
tokenizer (CIF 1.1 rules for quotes, ``;`` text fields and comments) and keeps
the line of every value, so that bad input is reported as an
:class:`~chasm.errors.InputError` with file and line.

What is read
------------
Crystal blocks (those with ``_cell_length_a``):

- cell, ``_space_group_name_H-M_alt`` with ``_space_group_IT_coordinate_system_code``
  (origin choice 1/2, or an axis setting such as ``abc``), or an explicit
  ``_space_group_symop_operation_xyz`` loop, or cryspy's magnetic operations
  ``_space_group_symop_magn_operation_xyz`` (``x,y,z,+1``: the last field is
  the time reversal θ = ±1) with ``_space_group_symop_magn_centering_xyz``;
- ``_atom_site_*`` (label, type symbol, fractional x y z, occupancy, Uiso or
  Biso) and ``_atom_site_aniso_*`` (U_ij or B_ij, converted to U in Å²);
- ``_atom_site_susceptibility_*`` (chi type ``Ciso``/``Cani``, χ_ij in μB/T,
  optional moment type and moment_ij);
- ``_atom_site_scat_*`` (magnetic form-factor ion, Landé factor, κ);
- ``_atom_site_moment_*`` (crystal-axis components of an ordered moment, μB);
- cryspy's spin-multipole model: ``_atom_rho_multipole_*`` (atom label, ion,
  orbital of the radial function, κ, populations ``coeff_P00`` ...
  ``coeff_P4-4``) and ``_atom_local_axes_*`` (the local frame: axis ``ax1``
  from the atom to ``atom0``, axis ``ax2`` along ``atom1`` → ``atom2``),
  kept as :class:`RhoMultipole` and :class:`LocalAxesRow` (dummy atoms of
  ``_atom_site`` stay in :attr:`PndCrystal.atoms` for the frames).

Diffraction blocks (those with ``_diffrn_refln_fr``): wavelength, field,
signed polarisation, flipper efficiency, UB matrix and its type, extinction
model / mosaicity / radius, phase label, and the reflections (h k l, R, σ(R),
cryspy's calculated R when present, excluded flags).

Unpolarised single-crystal blocks (those with ``_diffrn_refln_intensity``):
wavelength, extinction settings, phase label and cryspy's phase scale, and
the reflections (h k l, integrated intensity I ∝ F² on the file's scale,
σ(I), cryspy's calculated I when present, excluded flags), as
:class:`UnpolarisedDataset` in :attr:`PndFile.intensity_sets`.

Everything is returned as plain dataclasses; numbers keep no standard
uncertainty (the value in ``3.3290(88)`` is 3.3290).

Writing
-------
:func:`write_flipping_rcif` writes :class:`PndDataset` objects back as
flipping-ratio blocks (the items above, no crystal block: chasm takes the
structure from the project), numbers as the shortest text that reads back to
the same double, so that ``read_rcif`` returns the same values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from chasm.crystal.adp import B_TO_U
from chasm.crystal.cif import parse_cif_number
from chasm.crystal.structure import cell_problem
from chasm.errors import InputError
from chasm.io.atomic import write_text_atomic
from chasm.io.textio import check_range, read_input_text

#: Allowed ranges of the values read (interval, open ends marked by the flags).
XYZ_LIMIT = 100.0  # |fractional coordinate|
OCCUPANCY_TOL = 0.002  # occupancy in [-tol, 1 + tol]
U_LIMIT = 10.0  # Å², Uiso in [0, U_LIMIT] (0: cryspy's "no displacement"), |U_ij|
WAVELENGTH_MAX = 100.0  # Å, wavelength in (0, WAVELENGTH_MAX]
FIELD_MAX = 100.0  # T, signed field with 0 < |B| <= FIELD_MAX
KAPPA_MAX = 10.0  # magnetic form-factor kappa in (0, KAPPA_MAX]
#: Largest |h|, |k|, |l| read (as for HKLF 4 files).
MAX_INDEX = 9999

__all__ = [
    "Token",
    "RcifLoop",
    "RcifBlock",
    "parse_rcif_text",
    "RcifAtom",
    "SiteSusceptibility",
    "SiteMagneticScattering",
    "RhoMultipole",
    "LocalAxesRow",
    "PndCrystal",
    "PndDataset",
    "RcifTwin",
    "UnpolarisedDataset",
    "PndFile",
    "read_rcif",
    "flipping_rcif_text",
    "write_flipping_rcif",
]


# ---------------------------------------------------------------------- tokens and blocks
@dataclass(frozen=True)
class Token:
    """One value (or keyword) of the file and the 1-based line it starts on."""

    text: str
    line: int
    quoted: bool = False


@dataclass
class RcifLoop:
    """A ``loop_`` (possibly named, possibly empty): tags and rows of tokens."""

    name: str
    tags: list[str]
    rows: list[list[Token]]
    line: int

    def column(self, tag: str) -> list[Token] | None:
        """The tokens of one column (tag lower-case), or None if absent."""
        tag = tag.lower()
        if tag not in self.tags:
            return None
        i = self.tags.index(tag)
        return [row[i] for row in self.rows]


@dataclass
class RcifBlock:
    """A ``data_`` or ``global_`` block: single items and loops (tags lower-case)."""

    name: str
    line: int
    items: dict[str, Token] = field(default_factory=dict)
    loops: list[RcifLoop] = field(default_factory=list)

    def find_loop(self, tag: str) -> RcifLoop | None:
        """The loop containing this tag (lower-case), or None."""
        tag = tag.lower()
        for loop in self.loops:
            if tag in loop.tags:
                return loop
        return None

    def has(self, tag: str) -> bool:
        """True if the tag is a single item or a loop column of this block."""
        return tag.lower() in self.items or self.find_loop(tag) is not None


def _tokenize(text: str, path: str) -> list[Token]:
    tokens: list[Token] = []
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        lineno = i + 1
        if line.startswith(";"):
            body = [line[1:]]
            i += 1
            while i < len(lines) and not lines[i].startswith(";"):
                body.append(lines[i])
                i += 1
            if i == len(lines):
                raise InputError("text field opened with ';' is never closed", path, lineno)
            tokens.append(Token("\n".join(body).strip("\n"), lineno, quoted=True))
            i += 1
            continue
        j, n = 0, len(line)
        while j < n:
            ch = line[j]
            if ch.isspace():
                j += 1
                continue
            if ch == "#":
                break
            if ch in "'\"":
                k = j + 1
                while k < n and not (line[k] == ch and (k + 1 == n or line[k + 1].isspace())):
                    k += 1
                if k >= n:
                    raise InputError(f"unterminated quoted string {line[j:]!r}", path, lineno)
                tokens.append(Token(line[j + 1 : k], lineno, quoted=True))
                j = k + 1
                continue
            k = j
            while k < n and not line[k].isspace():
                k += 1
            tokens.append(Token(line[j:k], lineno))
            j = k
        i += 1
    return tokens


def _is_keyword(tok: Token) -> bool:
    if tok.quoted:
        return False
    low = tok.text.lower()
    return (
        tok.text.startswith("_")
        or low.startswith("data_")
        or low.startswith("loop_")
        or low == "global_"
        or low.startswith("save_")
    )


def parse_rcif_text(text: str, path: str = "<string>") -> list[RcifBlock]:
    """Split an rcif text into blocks of items and loops.

    Parameters
    ----------
    text : str
        File contents.
    path : str
        File name used in error messages.

    Returns
    -------
    list of RcifBlock
        In file order; a ``global_`` block is named ``'global_'``.

    Raises
    ------
    InputError
        Unterminated strings or text fields, a value outside any block, a tag
        without a value, a loop whose value count is not a multiple of its tags,
        a tag given twice in a block.
    """
    tokens = _tokenize(text, path)
    blocks: list[RcifBlock] = []
    block: RcifBlock | None = None
    i, n = 0, len(tokens)

    def need_block(tok: Token) -> RcifBlock:
        if block is None:
            raise InputError(f"{tok.text!r} appears before any data_ block", path, tok.line)
        return block

    while i < n:
        tok = tokens[i]
        low = tok.text.lower()
        if not tok.quoted and (low.startswith("data_") or low == "global_"):
            name = tok.text[5:] if low.startswith("data_") else "global_"
            block = RcifBlock(name=name, line=tok.line)
            blocks.append(block)
            i += 1
        elif not tok.quoted and low.startswith("loop_"):
            current = need_block(tok)
            i += 1
            tags: list[str] = []
            while i < n and not tokens[i].quoted and tokens[i].text.startswith("_"):
                tags.append(tokens[i].text.lower())
                i += 1
            if not tags:
                raise InputError("loop_ without tags", path, tok.line)
            values: list[Token] = []
            while i < n and not _is_keyword(tokens[i]):
                values.append(tokens[i])
                i += 1
            if len(values) % len(tags):
                last = values[-1].line if values else tok.line
                raise InputError(
                    f"loop with {len(tags)} tags ({tags[0]} ...) has {len(values)} values, "
                    "not a multiple of the tag count",
                    path,
                    last,
                )
            rows = [values[k : k + len(tags)] for k in range(0, len(values), len(tags))]
            current.loops.append(RcifLoop(tok.text[5:], tags, rows, tok.line))
        elif not tok.quoted and tok.text.startswith("_"):
            current = need_block(tok)
            if i + 1 >= n or _is_keyword(tokens[i + 1]):
                raise InputError(f"tag {tok.text} has no value", path, tok.line)
            tag = tok.text.lower()
            if tag in current.items:
                raise InputError(f"tag {tok.text} is given twice in this block", path, tok.line)
            current.items[tag] = tokens[i + 1]
            i += 2
        elif not tok.quoted and low.startswith("save_"):
            raise InputError("save frames are not supported in rcif files", path, tok.line)
        else:
            raise InputError(f"value {tok.text!r} without a tag", path, tok.line)
    return blocks


# ---------------------------------------------------------------------- typed content
@dataclass
class RcifAtom:
    """One ``_atom_site`` row.

    Parameters
    ----------
    label, type_symbol : str
    xyz : ndarray (3,)
        Fractional coordinates.
    occupancy : float
    uiso : float
        Uiso (Å²; converted from Biso when the file gives B).
    u_aniso : ndarray (6,) or None
        U11 U22 U33 U12 U13 U23 (Å², U_cif convention) from ``_atom_site_aniso``.
    line : int
    """

    label: str
    type_symbol: str
    xyz: np.ndarray
    occupancy: float = 1.0
    uiso: float = 0.0
    u_aniso: np.ndarray | None = None
    line: int = 0


@dataclass
class SiteSusceptibility:
    """``_atom_site_susceptibility`` row: χ (μB/T) in the file's 11 22 33 12 13 23 order.

    ``chi_type`` is ``'Ciso'`` (only χ11 is used, χ = χ11·1) or ``'Cani'``.
    The optional moment tensor (``moment_11`` ...) of cryspy's ``Mani`` type is
    kept; it is zero when the file gives no values.
    """

    label: str
    chi_type: str
    chi: np.ndarray
    moment_type: str | None = None
    moment: np.ndarray | None = None
    line: int = 0


@dataclass
class SiteMagneticScattering:
    """``_atom_site_scat`` row: the ion whose ⟨j_l⟩ are used, Landé factor, κ."""

    label: str
    type_symbol: str
    lande: float = 2.0
    kappa: float = 1.0
    line: int = 0


@dataclass
class RhoMultipole:
    """``_atom_rho_multipole`` row: cryspy's spin-multipole form factor of one atom.

    ``populations`` maps cryspy's names without the prefix (``"P00"``,
    ``"P2-1"`` ...) to the values the file gives (others are zero).
    """

    label: str
    type_symbol: str
    orbital: str
    kappa: float = 1.0
    populations: dict[str, float] = field(default_factory=dict)
    line: int = 0


@dataclass
class LocalAxesRow:
    """``_atom_local_axes`` row: axis ``ax1`` (x/y/z) along atom → ``atom0``, ``ax2`` along
    ``atom1`` → ``atom2`` (made orthogonal to the first), the third right-handed."""

    label: str
    atom0: str
    ax1: str
    atom1: str
    atom2: str
    ax2: str
    line: int = 0


@dataclass
class PndCrystal:
    """A crystal block of a PND rcif file.

    Parameters
    ----------
    name : str
    cell : tuple of 6 float
        a, b, c (Å), α, β, γ (degrees).
    spacegroup : str or None
        H-M symbol with the origin choice appended (``'F d -3 m:2'``) when the
        file gives ``_space_group_IT_coordinate_system_code`` 1 or 2.
    symops : list of str or None
        Explicit operations (centring included) when the file lists them.
    time_reversal : ndarray (n_ops,) or None
        θ = ±1 of each magnetic operation (cryspy's ``..._magn_operation_xyz``).
    atoms : list of RcifAtom
    susceptibility : dict label -> SiteSusceptibility
    scattering : dict label -> SiteMagneticScattering
    moments : dict label -> ndarray (3,)
        Ordered moments, crystal-axis components in μB (magCIF convention:
        along the unit vectors a/|a|, b/|b|, c/|c|).
    line : int
        Line of the ``data_`` keyword.
    path : str or None
        The file (for error messages).
    """

    name: str
    cell: tuple
    spacegroup: str | None
    symops: list[str] | None
    time_reversal: np.ndarray | None
    atoms: list[RcifAtom]
    susceptibility: dict[str, SiteSusceptibility] = field(default_factory=dict)
    scattering: dict[str, SiteMagneticScattering] = field(default_factory=dict)
    moments: dict[str, np.ndarray] = field(default_factory=dict)
    line: int = 0
    path: str | None = None
    multipoles: dict[str, RhoMultipole] = field(default_factory=dict)
    local_axes: dict[str, LocalAxesRow] = field(default_factory=dict)


@dataclass
class RcifTwin:
    """One ``_jana_twin`` row: a twin domain as cryspy (and Jana2006) define it.

    The domain scatters into the measured reflection h with its reflection
    h' = M h (``matrix[i][j]`` = M_ij, integer-valued for a twin by merohedry),
    with the volume fraction ``fraction``; the first domain (h itself) has
    1 − Σ fractions. cryspy computes every domain with the same field
    direction and polarisation (procedure_rhochi/rhochi_diffrn.py).
    """

    matrix: np.ndarray
    fraction: float
    line: int = 0


@dataclass
class PndDataset:
    """A flipping-ratio data block.

    Parameters
    ----------
    name : str
    wavelength : float
        λ (Å).
    field : float
        Applied field B (T); its sign says whether it points along +z (vertical
        up) of the instrument frame.
    polarisation : float
        Signed beam polarisation P (the sign says which flipper state is "+").
    efficiency : float
        Flipper efficiency e (the "−" state has polarisation −P(2e − 1)).
    ub : ndarray (3, 3)
        Orientation matrix as written (``_diffrn_orient_matrix_ub_ij``).
    ub_type : str
        ``_diffrn_orient_matrix_type`` (``'CCSL'`` when absent, cryspy's default).
    extinction_model : str or None
        ``'gauss'`` or ``'lorentz'``; None when the block has no extinction.
    mosaicity, radius : float
        cryspy's ``_extinction_mosaicity`` and ``_extinction_radius`` (µm); see
        :mod:`chasm.neutron.extinction` for their meaning.
    phase : str or None
        ``_phase_label``: the crystal block the data belong to.
    hkl : ndarray (n, 3) int
    fr, fr_sigma : ndarray (n,)
        Observed flipping ratios and their standard uncertainties.
    fr_calc : ndarray (n,) or None
        cryspy's calculated flipping ratios stored in the file, if any.
    excluded : ndarray (n,) bool
    lines : ndarray (n,) int
        Line of each reflection in the file.
    line : int
    lambda_half : float or None
        cryspy's ``_setup_ratio_lambdaover2`` (also written ``_setup_ratio_lambda/2``):
        the λ/2 to λ intensity ratio of its unpolarised λ/2 model; None when absent.
    twins : list of RcifTwin
        cryspy's ``_jana_twin_*`` domains (besides the first one), empty when absent.
    asymmetry : bool
        cryspy's ``_chi2_asymmetry``: cryspy fits A = (R − 1)/(R + 1) instead of R.
    """

    name: str
    wavelength: float
    field: float
    polarisation: float
    efficiency: float
    ub: np.ndarray
    ub_type: str
    extinction_model: str | None
    mosaicity: float
    radius: float
    phase: str | None
    hkl: np.ndarray
    fr: np.ndarray
    fr_sigma: np.ndarray
    fr_calc: np.ndarray | None
    excluded: np.ndarray
    lines: np.ndarray
    line: int = 0
    lambda_half: float | None = None
    twins: list[RcifTwin] = field(default_factory=list)
    asymmetry: bool = False


@dataclass
class UnpolarisedDataset:
    """An unpolarised single-crystal intensity block (``_diffrn_refln_intensity``).

    Parameters
    ----------
    name : str
    wavelength : float
        λ (Å).
    hkl : ndarray (n, 3) int
    intensity, sigma : ndarray (n,)
        Observed intensities and their standard uncertainties, on the file's
        scale. In cryspy's model I = scale · y · (|F_N|² + |F_M⊥|²) for an
        unpolarised beam (y the extinction factor), i.e. they are F² on an
        arbitrary scale (Lorentz and absorption corrected), not |F|.
    intensity_calc : ndarray (n,) or None
        cryspy's calculated intensities stored in the file, if any.
    excluded : ndarray (n,) bool
    lines : ndarray (n,) int
        Line of each reflection in the file.
    extinction_model : str or None
        ``_extinction_model`` as written (``'gauss'``, ``'lorentz'``, ``'qani'``...).
    mosaicity, radius : float
        cryspy's ``_extinction_mosaicity`` and ``_extinction_radius`` (µm).
    phase : str or None
        ``_phase_label``.
    phase_scale : float or None
        cryspy's ``_phase_scale`` (for F in 10⁻¹² cm: multiply by 10⁻² for F in fm).
    line : int
    """

    name: str
    wavelength: float
    hkl: np.ndarray
    intensity: np.ndarray
    sigma: np.ndarray
    intensity_calc: np.ndarray | None
    excluded: np.ndarray
    lines: np.ndarray
    extinction_model: str | None = None
    mosaicity: float = 0.0
    radius: float = 0.0
    phase: str | None = None
    phase_scale: float | None = None
    line: int = 0


@dataclass
class PndFile:
    """Contents of one rcif file: crystal blocks, flipping-ratio and intensity data sets."""

    path: str
    crystals: list[PndCrystal]
    datasets: list[PndDataset]
    blocks: list[RcifBlock]
    intensity_sets: list[UnpolarisedDataset] = field(default_factory=list)

    def crystal(self, name: str | None = None) -> PndCrystal:
        """The crystal block of this name (the only one when name is None).

        Raises
        ------
        InputError
            No such block, or several crystals and no name.
        """
        if name is None:
            if len(self.crystals) != 1:
                raise InputError(
                    f"{len(self.crystals)} crystal blocks: give the phase name", self.path
                )
            return self.crystals[0]
        for cryst in self.crystals:
            if cryst.name.lower() == name.lower():
                return cryst
        if len(self.crystals) == 1:
            return self.crystals[0]
        raise InputError(f"no crystal block named {name!r}", self.path)


# ---------------------------------------------------------------------- conversion helpers
class _Converter:
    def __init__(self, path: str):
        self.path = path

    def number(self, tok: Token, what: str) -> float:
        try:
            return parse_cif_number(tok.text)[0]
        except ValueError as exc:
            text = tok.text if len(tok.text) <= 40 else tok.text[:20] + "..." + tok.text[-8:]
            raise InputError(
                f"{what}: {text!r} is not a number ({exc})", self.path, tok.line
            ) from None

    def ranged(self, tok: Token, what: str, lo=None, hi=None, **kw) -> float:
        """:meth:`number` checked by :func:`chasm.io.textio.check_range`."""
        value = self.number(tok, what)
        return check_range(value, what, lo, hi, path=self.path, line=tok.line, **kw)

    def integer(self, tok: Token, what: str, limit: int = MAX_INDEX) -> int:
        value = self.ranged(tok, what, -limit, limit)
        if value != round(value):
            raise InputError(f"{what}: {tok.text!r} is not an integer", self.path, tok.line)
        return int(round(value))

    def boolean(self, tok: Token, what: str) -> bool:
        low = tok.text.strip().lower()
        if low in ("true", "yes", "1", "y"):
            return True
        if low in ("false", "no", "0", "n", ".", "?"):
            return False
        raise InputError(f"{what}: {tok.text!r} is not True/False", self.path, tok.line)

    def item(
        self, block: RcifBlock, tag: str, default=None, required: bool = False, **ranges
    ) -> float:
        """The number of a single item (``ranges``: see :func:`check_range`)."""
        tok = block.items.get(tag.lower())
        if tok is None:
            if required:
                raise InputError(
                    f"block data_{block.name}: {tag} is missing", self.path, block.line
                )
            return default
        return self.ranged(tok, tag, **ranges)

    def loop(self, block: RcifBlock, prefix: str, required: tuple[str, ...]) -> RcifLoop | None:
        loop = block.find_loop(prefix + required[0])
        if loop is None:
            return None
        for name in required:
            if prefix + name not in loop.tags:
                raise InputError(f"loop of {prefix}* lacks {prefix}{name}", self.path, loop.line)
        return loop


def _column(loop: RcifLoop, tag: str) -> list[Token] | None:
    return loop.column(tag)


def _spacegroup_name(conv: _Converter, block: RcifBlock) -> str | None:
    tok = block.items.get("_space_group_name_h-m_alt") or block.items.get(
        "_symmetry_space_group_name_h-m"
    )
    if tok is None:
        return None
    name = tok.text.strip()
    code = block.items.get("_space_group_it_coordinate_system_code")
    if code is not None and code.text.strip() in ("1", "2") and ":" not in name:
        name = f"{name}:{code.text.strip()}"
    return name


def _read_symops(conv: _Converter, block: RcifBlock):
    loop = block.find_loop("_space_group_symop_operation_xyz") or block.find_loop(
        "_symmetry_equiv_pos_as_xyz"
    )
    if loop is not None:
        col = loop.column("_space_group_symop_operation_xyz") or loop.column(
            "_symmetry_equiv_pos_as_xyz"
        )
        return [t.text for t in col], None
    loop = block.find_loop("_space_group_symop_magn_operation_xyz")
    if loop is None:
        return None, None
    ops, theta = [], []
    for tok in loop.column("_space_group_symop_magn_operation_xyz"):
        parts = tok.text.split(",")
        if len(parts) != 4 or parts[3].strip() not in ("+1", "-1", "1"):
            raise InputError(
                f"magnetic operation {tok.text!r}: expected 'x,y,z,+1' or 'x,y,z,-1'",
                conv.path,
                tok.line,
            )
        ops.append(",".join(parts[:3]))
        theta.append(-1 if parts[3].strip() == "-1" else 1)
    centring = block.find_loop("_space_group_symop_magn_centering_xyz")
    if centring is not None:
        full_ops, full_theta = [], []
        for ctok in centring.column("_space_group_symop_magn_centering_xyz"):
            cparts = ctok.text.split(",")
            if len(cparts) != 4:
                raise InputError(
                    f"magnetic centring {ctok.text!r}: expected 'x,y,z,+1'", conv.path, ctok.line
                )
            ctheta = -1 if cparts[3].strip() == "-1" else 1
            for op, th in zip(ops, theta, strict=True):
                full_ops.append(_compose_translation(op, cparts[:3], conv, ctok))
                full_theta.append(th * ctheta)
        ops, theta = full_ops, full_theta
    return ops, np.array(theta, dtype=int)


def _compose_translation(op: str, centring: list[str], conv: _Converter, tok: Token) -> str:
    """op followed by a pure centring translation (x+t1, y+t2, z+t3)."""
    from chasm.crystal.symmetry import format_symop, parse_symop

    try:
        r_op, t_op = parse_symop(op)
        r_c, t_c = parse_symop(",".join(centring))
    except ValueError as exc:
        raise InputError(str(exc), conv.path, tok.line) from None
    if not np.array_equal(r_c, np.eye(3, dtype=int)):
        raise InputError("magnetic centring must be a pure translation", conv.path, tok.line)
    return format_symop(r_op, (t_op + t_c) % 1.0)


def _read_atoms(conv: _Converter, block: RcifBlock) -> list[RcifAtom]:
    loop = conv.loop(block, "_atom_site_", ("label", "fract_x", "fract_y", "fract_z"))
    if loop is None:
        raise InputError(
            f"crystal block data_{block.name} has no _atom_site loop", conv.path, block.line
        )
    labels = loop.column("_atom_site_label")
    types = loop.column("_atom_site_type_symbol") or labels
    occ = loop.column("_atom_site_occupancy")
    u_iso = loop.column("_atom_site_u_iso_or_equiv")
    b_iso = loop.column("_atom_site_b_iso_or_equiv")
    atoms = []
    for k, lab in enumerate(labels):
        xyz = np.array(
            [
                conv.ranged(
                    loop.column(f"_atom_site_fract_{c}")[k],
                    f"atom {lab.text} fract_{c}",
                    -XYZ_LIMIT,
                    XYZ_LIMIT,
                )
                for c in "xyz"
            ]
        )
        uiso = 0.0
        if u_iso is not None and u_iso[k].text not in ("?", "."):
            what = f"atom {lab.text} _atom_site_U_iso_or_equiv (Å²)"
            uiso = conv.ranged(u_iso[k], what, 0.0, U_LIMIT)
        elif b_iso is not None and b_iso[k].text not in ("?", "."):
            what = f"atom {lab.text} _atom_site_B_iso_or_equiv (Å²)"
            uiso = conv.ranged(b_iso[k], what, 0.0, U_LIMIT / B_TO_U) * B_TO_U
        occupancy = 1.0
        if occ is not None:
            what = f"atom {lab.text} _atom_site_occupancy"
            occupancy = conv.ranged(occ[k], what, -OCCUPANCY_TOL, 1 + OCCUPANCY_TOL)
        atoms.append(RcifAtom(lab.text, types[k].text, xyz, occupancy, uiso, None, lab.line))
    by_label = {a.label: a for a in atoms}
    aniso = block.find_loop("_atom_site_aniso_label")
    if aniso is not None:
        names = ("11", "22", "33", "12", "13", "23")
        if all(f"_atom_site_aniso_u_{n}" in aniso.tags for n in names):
            scale, kind = 1.0, "u"
        elif all(f"_atom_site_aniso_b_{n}" in aniso.tags for n in names):
            scale, kind = B_TO_U, "b"
        else:
            raise InputError(
                "_atom_site_aniso loop needs all six U_ij (or B_ij) columns", conv.path, aniso.line
            )
        for k, lab in enumerate(aniso.column("_atom_site_aniso_label")):
            if lab.text not in by_label:
                raise InputError(
                    f"aniso label {lab.text!r} is not an atom site", conv.path, lab.line
                )
            lim = U_LIMIT / scale
            u6 = [
                conv.ranged(
                    aniso.column(f"_atom_site_aniso_{kind}_{n}")[k],
                    f"atom {lab.text} {kind}_{n}",
                    -lim,
                    lim,
                )
                * scale
                for n in names
            ]
            by_label[lab.text].u_aniso = np.array(u6)
    return atoms


def _read_susceptibility(conv: _Converter, block: RcifBlock, labels: set[str]):
    loop = conv.loop(block, "_atom_site_susceptibility_", ("label",))
    out: dict[str, SiteSusceptibility] = {}
    if loop is None:
        return out
    names = ("11", "22", "33", "12", "13", "23")
    chi_type = loop.column("_atom_site_susceptibility_chi_type")
    moment_type = loop.column("_atom_site_susceptibility_moment_type")
    for k, lab in enumerate(loop.column("_atom_site_susceptibility_label")):
        if lab.text not in labels:
            raise InputError(f"susceptibility of unknown atom {lab.text!r}", conv.path, lab.line)
        kind = "Cani" if chi_type is None else chi_type[k].text
        if kind.lower() not in ("ciso", "cani"):
            raise InputError(
                f"chi_type {kind!r}: expected Ciso or Cani", conv.path, chi_type[k].line
            )
        chi = np.zeros(6)
        for m, n in enumerate(names):
            col = loop.column(f"_atom_site_susceptibility_chi_{n}")
            if col is not None and col[k].text not in ("?", "."):
                chi[m] = conv.number(col[k], f"chi_{n}")
        if kind.lower() == "ciso":
            chi = np.array([chi[0], chi[0], chi[0], 0.0, 0.0, 0.0])
        moment = None
        if any(f"_atom_site_susceptibility_moment_{n}" in loop.tags for n in names):
            moment = np.zeros(6)
            for m, n in enumerate(names):
                col = loop.column(f"_atom_site_susceptibility_moment_{n}")
                if col is not None and col[k].text not in ("?", "."):
                    moment[m] = conv.number(col[k], f"moment_{n}")
        out[lab.text] = SiteSusceptibility(
            lab.text,
            kind,
            chi,
            None if moment_type is None else moment_type[k].text,
            moment,
            lab.line,
        )
    return out


def _read_scattering(conv: _Converter, block: RcifBlock, labels: dict[str, str]):
    """``_atom_site_scat`` rows; ``labels`` maps each atom label to its type symbol."""
    loop = conv.loop(block, "_atom_site_scat_", ("label",))
    out: dict[str, SiteMagneticScattering] = {}
    if loop is None:
        return out
    types = loop.column("_atom_site_scat_type_symbol")
    lande = loop.column("_atom_site_scat_lande")
    kappa = loop.column("_atom_site_scat_kappa")
    for k, lab in enumerate(loop.column("_atom_site_scat_label")):
        if lab.text not in labels:
            raise InputError(f"_atom_site_scat of unknown atom {lab.text!r}", conv.path, lab.line)
        # without _atom_site_scat_type_symbol cryspy takes the ion of the atom site
        ion = labels[lab.text] if types is None else types[k].text
        out[lab.text] = SiteMagneticScattering(
            lab.text,
            ion,
            2.0 if lande is None else conv.number(lande[k], "_atom_site_scat_Lande"),
            1.0
            if kappa is None
            else conv.ranged(kappa[k], "_atom_site_scat_kappa", 0.0, KAPPA_MAX, lo_open=True),
            lab.line,
        )
    return out


def _read_moments(conv: _Converter, block: RcifBlock, labels: set[str]):
    loop = conv.loop(
        block, "_atom_site_moment_", ("label", "crystalaxis_x", "crystalaxis_y", "crystalaxis_z")
    )
    out: dict[str, np.ndarray] = {}
    if loop is None:
        return out
    for k, lab in enumerate(loop.column("_atom_site_moment_label")):
        if lab.text not in labels:
            raise InputError(f"moment of unknown atom {lab.text!r}", conv.path, lab.line)
        out[lab.text] = np.array(
            [
                conv.number(loop.column(f"_atom_site_moment_crystalaxis_{c}")[k], f"moment_{c}")
                for c in "xyz"
            ]
        )
    return out


#: cryspy's population names (``_atom_rho_multipole_coeff_P...``), l <= 4
RHO_MULTIPOLE_NAMES = tuple(
    f"P{l}{m}" for l in range(5) for m in [0] + [s * k for k in range(1, l + 1) for s in (1, -1)]
)


def _read_rho_multipoles(conv: _Converter, block: RcifBlock, labels: set[str]):
    """``_atom_rho_multipole`` rows (cryspy's spin-multipole form factors)."""
    prefix = "_atom_rho_multipole_"
    loop = conv.loop(block, prefix, ("atom_label", "atom_type_symbol", "orbital"))
    out: dict[str, RhoMultipole] = {}
    if loop is None:
        return out
    known = {f"{prefix}kappa"} | {f"{prefix}{t}" for t in ("atom_label", "atom_type_symbol")}
    known |= {f"{prefix}orbital"} | {f"{prefix}coeff_{n}".lower() for n in RHO_MULTIPOLE_NAMES}
    for tag in loop.tags:
        if tag not in known and not tag.endswith(("_sigma", "_refinement", "_constraint")):
            raise InputError(
                f"{tag}: not a column of cryspy's _atom_rho_multipole loop (populations "
                "coeff_P00 ... coeff_P4-4, l <= 4)",
                conv.path,
                loop.line,
            )
    kappa = loop.column(f"{prefix}kappa")
    for k, lab in enumerate(loop.column(f"{prefix}atom_label")):
        if lab.text not in labels:
            raise InputError(
                f"_atom_rho_multipole of unknown atom {lab.text!r}", conv.path, lab.line
            )
        pops = {}
        for name in RHO_MULTIPOLE_NAMES:
            col = loop.column(f"{prefix}coeff_{name}".lower())
            if col is not None:
                pops[name] = conv.number(col[k], f"{prefix}coeff_{name}")
        out[lab.text] = RhoMultipole(
            lab.text,
            loop.column(f"{prefix}atom_type_symbol")[k].text,
            loop.column(f"{prefix}orbital")[k].text.lower(),
            1.0
            if kappa is None
            else conv.ranged(kappa[k], f"{prefix}kappa", 0.0, KAPPA_MAX, lo_open=True),
            pops,
            lab.line,
        )
    return out


def _read_local_axes(conv: _Converter, block: RcifBlock, labels: set[str]):
    """``_atom_local_axes`` rows (frames of the spin multipoles)."""
    prefix = "_atom_local_axes_"
    cols = ("atom_label", "atom0", "ax1", "atom1", "atom2", "ax2")
    loop = conv.loop(block, prefix, cols)
    out: dict[str, LocalAxesRow] = {}
    if loop is None:
        return out
    for k, lab in enumerate(loop.column(f"{prefix}atom_label")):
        row = [loop.column(f"{prefix}{c}")[k] for c in cols]
        for tok, c in zip(row, cols, strict=True):
            if c.startswith("ax") and tok.text.lower() not in ("x", "y", "z"):
                raise InputError(f"{prefix}{c}: {tok.text!r} is not X, Y or Z", conv.path, tok.line)
            if c.startswith("atom") and tok.text not in labels:
                raise InputError(f"{prefix}{c}: unknown atom {tok.text!r}", conv.path, tok.line)
        if row[2].text.lower() == row[5].text.lower():
            raise InputError(
                f"{prefix}ax2: the two axes of {lab.text} are both {row[2].text}",
                conv.path,
                row[5].line,
            )
        out[lab.text] = LocalAxesRow(
            lab.text,
            row[1].text,
            row[2].text.lower(),
            row[3].text,
            row[4].text,
            row[5].text.lower(),
            lab.line,
        )
    return out


def _read_crystal(conv: _Converter, block: RcifBlock) -> PndCrystal:
    cell = tuple(
        conv.item(block, f"_cell_{t}", required=True)
        for t in ("length_a", "length_b", "length_c", "angle_alpha", "angle_beta", "angle_gamma")
    )
    problem = cell_problem(cell)
    if problem is not None:
        names = ("length_a", "length_b", "length_c", "angle_alpha", "angle_beta", "angle_gamma")
        tok = block.items[f"_cell_{names[problem[1]]}"]
        raise InputError(f"block data_{block.name}: {problem[0]}", conv.path, tok.line)
    symops, theta = _read_symops(conv, block)
    spacegroup = _spacegroup_name(conv, block)
    if symops is None and spacegroup is None:
        raise InputError(
            f"crystal block data_{block.name} gives neither a space group nor operations",
            conv.path,
            block.line,
        )
    atoms = _read_atoms(conv, block)
    labels = {a.label for a in atoms}
    if len(labels) != len(atoms):
        raise InputError(f"duplicate atom labels in data_{block.name}", conv.path, block.line)
    return PndCrystal(
        name=block.name,
        cell=cell,
        spacegroup=spacegroup,
        symops=symops,
        time_reversal=theta,
        atoms=atoms,
        susceptibility=_read_susceptibility(conv, block, labels),
        scattering=_read_scattering(conv, block, {a.label: a.type_symbol for a in atoms}),
        moments=_read_moments(conv, block, labels),
        line=block.line,
        path=conv.path,
        multipoles=_read_rho_multipoles(conv, block, labels),
        local_axes=_read_local_axes(conv, block, labels),
    )


def _wavelength(conv: _Converter, block: RcifBlock) -> float:
    """``_setup_wavelength`` (Å), required and positive."""
    return conv.item(
        block, "_setup_wavelength", required=True, lo=0.0, hi=WAVELENGTH_MAX, lo_open=True
    )


def _read_dataset(conv: _Converter, block: RcifBlock) -> PndDataset:
    wavelength = _wavelength(conv, block)
    ub = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            ub[i, j] = conv.item(block, f"_diffrn_orient_matrix_ub_{i + 1}{j + 1}", required=True)
    det = abs(float(np.linalg.det(ub)))
    if not (math.isfinite(det) and det > 1e-9 * float(np.max(np.abs(ub))) ** 3):
        tok = block.items["_diffrn_orient_matrix_ub_11"]
        raise InputError(
            f"block data_{block.name}: the UB matrix is singular (|det UB| = {det:.3g}); "
            "give the orientation matrix of the measurement",
            conv.path,
            tok.line,
        )
    ub_tok = block.items.get("_diffrn_orient_matrix_type")
    model_tok = block.items.get("_extinction_model")
    phase_tok = block.items.get("_phase_label")
    hkl, fr, sigma, fr_calc, excluded, lines = _refln_columns(conv, block, "fr", "flipping-ratio")
    return PndDataset(
        name=block.name,
        wavelength=wavelength,
        field=_field(conv, block),
        polarisation=_polarisation(conv, block),
        efficiency=conv.item(block, "_diffrn_radiation_efficiency", default=1.0, lo=0.0, hi=1.0),
        ub=ub,
        ub_type="CCSL" if ub_tok is None else ub_tok.text,
        extinction_model=None if model_tok is None else model_tok.text.lower(),
        mosaicity=conv.item(block, "_extinction_mosaicity", default=0.0, lo=0.0),
        radius=conv.item(block, "_extinction_radius", default=0.0, lo=0.0),
        phase=None if phase_tok is None else phase_tok.text,
        hkl=hkl,
        fr=fr,
        fr_sigma=sigma,
        fr_calc=fr_calc,
        excluded=excluded,
        lines=lines,
        line=block.line,
        lambda_half=_lambda_half(conv, block),
        twins=_read_twins(conv, block),
        asymmetry=_asymmetry(conv, block),
    )


#: cryspy's two spellings of the λ/2 ratio
LAMBDA_HALF_TAGS = ("_setup_ratio_lambdaover2", "_setup_ratio_lambda/2")


def _lambda_half(conv: _Converter, block: RcifBlock) -> float | None:
    """cryspy's λ/2 ratio (either spelling), in [0, 1]; None when absent or '?'/'.'."""
    for tag in LAMBDA_HALF_TAGS:
        tok = block.items.get(tag)
        if tok is not None and tok.text not in ("?", "."):
            return conv.ranged(tok, f"{tag} (lambda/2 intensity ratio)", 0.0, 1.0)
    return None


def _asymmetry(conv: _Converter, block: RcifBlock) -> bool:
    tok = block.items.get("_chi2_asymmetry")
    return False if tok is None else conv.boolean(tok, "_chi2_asymmetry")


def _read_twins(conv: _Converter, block: RcifBlock) -> list[RcifTwin]:
    """``_jana_twin`` rows: matrix (rows [i][1..3]) and fraction; fractions sum below 1."""
    loop = block.find_loop("_jana_twin_fraction")
    if loop is None:
        return []
    out = []
    for k, tok in enumerate(loop.column("_jana_twin_fraction")):
        m = np.zeros((3, 3))
        for i in range(3):
            for j in range(3):
                col = loop.column(f"_jana_twin_matrix[{i + 1}][{j + 1}]")
                if col is None:
                    raise InputError(
                        f"_jana_twin loop lacks _jana_twin_matrix[{i + 1}][{j + 1}]",
                        conv.path,
                        loop.line,
                    )
                m[i, j] = conv.number(col[k], f"_jana_twin_matrix[{i + 1}][{j + 1}]")
        if not abs(np.linalg.det(m)) > 1e-9:
            raise InputError(
                "_jana_twin_matrix is singular: a twin law maps h onto h' = M h of the other "
                "domain; give an invertible matrix",
                conv.path,
                tok.line,
            )
        frac = conv.ranged(tok, "_jana_twin_fraction (volume fraction of the domain)", 0.0, 1.0)
        out.append(RcifTwin(m, frac, tok.line))
    total = sum(t.fraction for t in out)
    if total > 1.0:
        raise InputError(
            f"_jana_twin_fraction values add up to {total:g} > 1: the first domain would have "
            "a negative fraction (allowed: sum in [0, 1])",
            conv.path,
            out[-1].line,
        )
    return out


def _field(conv: _Converter, block: RcifBlock) -> float:
    """Signed field B (T; the sign gives its direction along the vertical): 0 < |B| ≤ 100 T."""
    field = conv.item(block, "_setup_field", default=1.0, lo=-FIELD_MAX, hi=FIELD_MAX)
    if field == 0:
        tok = block.items["_setup_field"]
        raise InputError(
            "_setup_field = 0 T: without a field there is no induced moment to measure; "
            f"allowed range [-{FIELD_MAX:g}, {FIELD_MAX:g}] T without 0",
            conv.path,
            tok.line,
        )
    return field


def _polarisation(conv: _Converter, block: RcifBlock) -> float:
    """Signed beam polarisation P: 0 < |P| ≤ 1."""
    p = conv.item(block, "_diffrn_radiation_polarization", default=1.0, lo=-1.0, hi=1.0)
    if p == 0:
        tok = block.items["_diffrn_radiation_polarization"]
        raise InputError(
            "_diffrn_radiation_polarization = 0: an unpolarised beam gives no flipping "
            "ratios; allowed range [-1, 1] without 0",
            conv.path,
            tok.line,
        )
    return p


def _refln_columns(conv: _Converter, block: RcifBlock, value: str, what: str):
    """(hkl, values, σ > 0, calc or None, excluded, lines) of the ``_diffrn_refln_`` loop.

    ``value`` is the observable's tag stem (``"fr"`` or ``"intensity"``): its
    columns are ``_diffrn_refln_<value>``, ``..._sigma`` and ``..._calc``.
    """
    tag = f"_diffrn_refln_{value}"
    loop = conv.loop(
        block, "_diffrn_refln_", ("index_h", "index_k", "index_l", value, f"{value}_sigma")
    )
    hkl = np.array(
        [
            [conv.integer(t, f"index_{c}") for t in loop.column(f"_diffrn_refln_index_{c}")]
            for c in "hkl"
        ],
        dtype=int,
    ).T.reshape(-1, 3)
    if value == "fr":  # a flipping ratio I+/I- is positive
        values = np.array(
            [conv.ranged(t, f"flipping ratio {tag}", 0.0, lo_open=True) for t in loop.column(tag)]
        )
    else:
        values = np.array([conv.number(t, tag) for t in loop.column(tag)])
    sig_col = loop.column(f"{tag}_sigma")
    sigma = np.array([conv.number(t, f"{tag}_sigma") for t in sig_col])
    for tok, s in zip(sig_col, sigma, strict=True):
        if not s > 0:
            raise InputError(f"{what} sigma {tok.text!r} must be positive", conv.path, tok.line)
    calc_col = loop.column(f"{tag}_calc")
    calc = None if calc_col is None else np.array([conv.number(t, f"{tag}_calc") for t in calc_col])
    excl_col = loop.column("_diffrn_refln_excluded")
    excluded = np.zeros(len(values), dtype=bool)
    if excl_col is not None:
        excluded = np.array([conv.boolean(t, "_diffrn_refln_excluded") for t in excl_col])
    lines = np.array([t.line for t in loop.column("_diffrn_refln_index_h")], dtype=int)
    return hkl, values, sigma, calc, excluded, lines


def _read_intensities(conv: _Converter, block: RcifBlock) -> UnpolarisedDataset:
    wavelength = _wavelength(conv, block)
    hkl, intensity, sigma, calc, excluded, lines = _refln_columns(
        conv, block, "intensity", "intensity"
    )
    model_tok = block.items.get("_extinction_model")
    phase_tok = block.items.get("_phase_label")
    scale_tok = block.items.get("_phase_scale")
    return UnpolarisedDataset(
        name=block.name,
        wavelength=wavelength,
        hkl=hkl,
        intensity=intensity,
        sigma=sigma,
        intensity_calc=calc,
        excluded=excluded,
        lines=lines,
        extinction_model=None if model_tok is None else model_tok.text.lower(),
        mosaicity=conv.item(block, "_extinction_mosaicity", default=0.0, lo=0.0),
        radius=conv.item(block, "_extinction_radius", default=0.0, lo=0.0),
        phase=None if phase_tok is None else phase_tok.text,
        phase_scale=None
        if scale_tok is None or scale_tok.text in ("?", ".")
        else conv.number(scale_tok, "_phase_scale"),
        line=block.line,
    )


def read_rcif(path: str | Path) -> PndFile:
    """Read the crystal blocks, flipping-ratio and intensity data sets of a cryspy rcif.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    PndFile
        ``crystals`` (blocks with ``_cell_length_a``), ``datasets`` (blocks with
        ``_diffrn_refln_fr``), ``intensity_sets`` (blocks with
        ``_diffrn_refln_intensity``) and all parsed ``blocks``.

    Raises
    ------
    InputError
        Unreadable file, syntax errors, missing mandatory items, numbers that
        are not numbers; with the file and line.
    """
    path = Path(path)
    text = read_input_text(path)
    blocks = parse_rcif_text(text, str(path))
    if not blocks:
        raise InputError("no data_ block in the file (is it an rcif file?)", str(path))
    conv = _Converter(str(path))
    crystals, datasets, intensity_sets = [], [], []
    for block in blocks:
        if "_cell_length_a" in block.items:
            crystals.append(_read_crystal(conv, block))
        elif block.has("_diffrn_refln_fr"):
            datasets.append(_read_dataset(conv, block))
        elif block.has("_diffrn_refln_intensity"):
            intensity_sets.append(_read_intensities(conv, block))
    pnd = PndFile(str(path), crystals, datasets, blocks, intensity_sets)
    _check_resolution(pnd)
    return pnd


def _check_resolution(pnd: PndFile) -> None:
    """Refuse reflections beyond sinθ/λ = 2.5 Å⁻¹ when the file has the crystal's cell."""
    import gemmi

    from chasm.io.shelx_hkl import Reflections, check_resolution

    for data in [*pnd.datasets, *pnd.intensity_sets]:
        try:
            crystal = pnd.crystal(data.phase) if pnd.crystals else None
        except InputError:
            crystal = None  # several crystals and no phase: checked when the project is built
        if crystal is not None and len(data.hkl):
            refl = Reflections(hkl=data.hkl, lines=data.lines, path=pnd.path)
            check_resolution(refl, gemmi.UnitCell(*crystal.cell))


# ---------------------------------------------------------------------- writing
def _text_number(value, what: str) -> str:
    """Shortest positional text that reads back to the same double."""
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{what}: cannot write the non-finite value {v}")
    return np.format_float_positional(v, unique=True, trim="0")


def _text_word(text: str, what: str) -> str:
    """A bare CIF word: non-empty, no whitespace, not starting with a CIF special character."""
    text = str(text)
    if not text or any(c.isspace() for c in text) or text[0] in "'\"_#$;[]":
        raise ValueError(
            f"{what} {text!r}: must be non-empty, without whitespace, not starting with "
            "a quote, _, #, $, ; or a bracket"
        )
    return text


def flipping_rcif_text(datasets) -> str:
    """cryspy-style rcif text with one flipping-ratio block per data set.

    Items written per block: ``_setup_wavelength`` (Å), ``_setup_field`` (T),
    ``_diffrn_radiation_polarization`` (signed P), ``_diffrn_radiation_efficiency``,
    ``_diffrn_orient_matrix_type`` and ``_diffrn_orient_matrix_ub_11`` ... ``_33``,
    ``_extinction_model`` / ``_mosaicity`` / ``_radius`` (µm) when the data set has
    an extinction model, ``_phase_label`` when it has a phase, and the loop
    ``_diffrn_refln_index_h/k/l``, ``_fr``, ``_fr_sigma``, ``_fr_calc`` (when
    present) and ``_excluded`` (when any reflection is excluded).

    Parameters
    ----------
    datasets : sequence of PndDataset
        Block names (``name``) must be unique, non-empty and without whitespace.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        No data set, a bad or repeated block name, a non-finite number, σ(R) <= 0,
        or columns of different lengths.
    """
    datasets = list(datasets)
    if not datasets:
        raise ValueError("no flipping-ratio data set to write")
    names = [str(d.name).lower() for d in datasets]
    if len(set(names)) != len(names):
        raise ValueError(f"block names must be unique, got {[d.name for d in datasets]}")
    out = ["# flipping ratios written by chasm (cryspy rcif layout)", ""]
    for d in datasets:
        name = _text_word(d.name, "block name")
        hkl = np.asarray(d.hkl, dtype=int).reshape(-1, 3)
        fr = np.asarray(d.fr, dtype=float).reshape(-1)
        sigma = np.asarray(d.fr_sigma, dtype=float).reshape(-1)
        n = len(hkl)
        calc = None if d.fr_calc is None else np.asarray(d.fr_calc, dtype=float).reshape(-1)
        excluded = np.asarray(d.excluded, dtype=bool).reshape(-1)
        columns = [fr, sigma, excluded] + ([calc] if calc is not None else [])
        if {len(c) for c in columns} != {n}:
            raise ValueError(f"block {name}: columns of different lengths")
        if np.any(~(sigma > 0)):
            raise ValueError(f"block {name}: sigma(R) must be positive")
        items = [
            ("_setup_wavelength", _text_number(d.wavelength, "wavelength")),
            ("_setup_field", _text_number(d.field, "field")),
            ("_diffrn_radiation_polarization", _text_number(d.polarisation, "polarisation")),
            ("_diffrn_radiation_efficiency", _text_number(d.efficiency, "efficiency")),
            ("_diffrn_orient_matrix_type", _text_word(d.ub_type, "UB type")),
        ]
        ub = np.asarray(d.ub, dtype=float).reshape(3, 3)
        items += [
            (f"_diffrn_orient_matrix_ub_{i + 1}{j + 1}", _text_number(ub[i, j], "UB"))
            for i in range(3)
            for j in range(3)
        ]
        if d.extinction_model is not None:
            items += [
                ("_extinction_model", _text_word(d.extinction_model, "extinction model")),
                ("_extinction_mosaicity", _text_number(d.mosaicity, "mosaicity")),
                ("_extinction_radius", _text_number(d.radius, "radius")),
            ]
        if d.phase is not None:
            items.append(("_phase_label", _text_word(d.phase, "phase label")))
        out.append(f"data_{name}")
        out += [f"{tag:<34} {value}" for tag, value in items]
        tags = ["index_h", "index_k", "index_l", "fr", "fr_sigma"]
        tags += ["fr_calc"] if calc is not None else []
        tags += ["excluded"] if np.any(excluded) else []
        out += ["", "loop_", *(f"_diffrn_refln_{t}" for t in tags)]
        for r in range(n):
            row = [str(v) for v in hkl[r].tolist()]
            row += [_text_number(fr[r], "R"), _text_number(sigma[r], "sigma(R)")]
            if calc is not None:
                row.append(_text_number(calc[r], "R_calc"))
            if "excluded" in tags:
                row.append("True" if excluded[r] else "False")
            out.append(" ".join(row))
        out.append("")
    return "\n".join(out) + "\n"


def write_flipping_rcif(path, datasets) -> None:
    """Write flipping-ratio data sets as an rcif file, atomically (:func:`flipping_rcif_text`).

    Raises
    ------
    ValueError
        See :func:`flipping_rcif_text` (nothing is written then).
    OSError
        The file cannot be written.
    """
    write_text_atomic(path, flipping_rcif_text(datasets))

"""What a SHELXL/olex2 CIF carries besides the structure: reflections, instructions, R-values.

A CIF written by SHELXL (2014 and later) or olex2 for publication holds, in
the data block of the refinement:

- ``_shelx_hkl_file``: the reflection file (HKLF 4: h k l F² σ(F²) [batch]),
  as a text field;
- ``_shelx_res_file``: the final ``.res`` (instructions, atoms): the weighting
  scheme ``WGHT a b``, extinction ``EXTI x`` (or solvent ``SWAT``), the data
  code ``HKLF n [s]``, the wavelength on ``CELL``, twin (``TWIN``, ``BASF``)
  and disorder (``PART n``) instructions;
- the agreement factors SHELXL reported: ``_refine_ls_R_factor_all``,
  ``_refine_ls_wR_factor_ref``, ``_refine_ls_goodness_of_fit_ref`` ....

A file may hold several data blocks (a deposition of several structures);
:func:`choose_block` picks one or lists them. The reflections are read by
:func:`chasm.io.shelx_hkl.read_hkl4` (every layout it accepts), line numbers
pointing into the CIF.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from gemmi import cif

from chasm.errors import InputError

__all__ = [
    "BlockInfo",
    "ShelxInstructions",
    "PublishedFit",
    "SUPPORTED_HKLF",
    "blocks",
    "choose_block",
    "is_shelx_cif",
    "embedded_reflections",
    "read_instructions",
    "parse_res",
    "published_fit",
    "merge_shelxl",
]

#: HKLF codes chasm reads: 4 = F² and σ(F²) of a single crystal.
SUPPORTED_HKLF = (4,)

_HKL = "_shelx_hkl_file"
_RES = "_shelx_res_file"


@dataclass
class BlockInfo:
    """One data block of a CIF: name, atom count, embedded reflections and instructions."""

    name: str
    atoms: int
    reflections: bool
    instructions: bool
    line: int | None

    def describe(self) -> str:
        """``data_p21c (128 atoms, reflections, instructions)``."""
        what = [f"{self.atoms} atoms"]
        what += ["reflections"] if self.reflections else ["no reflections"]
        what += ["instructions"] if self.instructions else []
        return f"data_{self.name} ({', '.join(what)})"


def _document(path: Path) -> cif.Document:
    if not path.is_file():
        raise InputError(f"CIF not found: {path}", str(path))
    try:
        return cif.read(str(path))
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"not a readable CIF: {exc}", str(path)) from None


def _text_item(block: cif.Block, tag: str) -> tuple[str | None, int | None]:
    item = block.find_pair_item(tag)
    if item is None:
        return None, None
    raw = item.pair[1]
    if raw in ("?", "."):
        return None, item.line_number
    return cif.as_string(raw), item.line_number


def blocks(path: str | Path) -> list[BlockInfo]:
    """Every data block of a CIF (see :class:`BlockInfo`)."""
    path = Path(path)
    out = []
    for b in _document(path):
        hkl, line = _text_item(b, _HKL)
        res, _ = _text_item(b, _RES)
        natoms = len(b.find_values("_atom_site_fract_x"))
        out.append(BlockInfo(b.name, natoms, bool(hkl and hkl.strip()), bool(res), line))
    return out


def is_shelx_cif(path: str | Path) -> bool:
    """True when ``path`` is a CIF with at least one ``_shelx_hkl_file`` (cheap text test)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(1 << 20)
            if not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith((b"data_", b"#")):
                return False
            while True:
                if _HKL.encode() in head:
                    return True
                more = fh.read(1 << 22)
                if not more:
                    return False
                head = head[-64:] + more
    except OSError:
        return False


def choose_block(path: str | Path, block: str | None = None, need_reflections: bool = True) -> str:
    """The data block to use.

    Parameters
    ----------
    path : path
        The CIF.
    block : str, optional
        A name given by the user (``data_`` prefix optional, case-insensitive).
    need_reflections : bool
        Without ``block``: prefer the blocks with atoms and ``_shelx_hkl_file``.

    Returns
    -------
    str
        The block's name.

    Raises
    ------
    InputError
        Unknown name, or several candidate blocks: the message lists them and
        says to pass ``--block NAME``.
    """
    path = Path(path)
    info = blocks(path)
    listing = "; ".join(b.describe() for b in info)
    if block is not None:
        want = block.removeprefix("data_").lower()
        for b in info:
            if b.name.lower() == want:
                return b.name
        raise InputError(f"no data block {block!r}; the file has {len(info)}: {listing}", str(path))
    with_atoms = [b for b in info if b.atoms]
    if not with_atoms:
        raise InputError("no data block with atoms (_atom_site_fract_x)", str(path))
    if need_reflections:
        with_refl = [b for b in with_atoms if b.reflections]
        if len(with_refl) == 1:
            return with_refl[0].name
        if len(with_refl) > 1:
            raise InputError(
                f"{len(with_refl)} data blocks carry reflections; choose one with "
                f"--block NAME: {listing}",
                str(path),
            )
    if len(with_atoms) == 1:
        return with_atoms[0].name
    raise InputError(
        f"{len(with_atoms)} data blocks have atoms; choose one with --block NAME: {listing}",
        str(path),
    )


def _block(path: Path, name: str) -> cif.Block:
    b = _document(path).find_block(name)
    if b is None:
        raise InputError(f"no data block {name!r}", str(path))
    return b


# ----------------------------------------------------------------------- instructions
@dataclass
class ShelxInstructions:
    """The instructions of an embedded ``.res`` that matter to chasm.

    Attributes
    ----------
    wavelength : float or None
        From ``CELL λ a b c α β γ`` (Å).
    wght : tuple of float or None
        (a, b) of the first ``WGHT`` (the scheme of the refinement; SHELXL
        appends the suggested next one after ``END``). Missing b is 0.
    exti : float or None
        ``EXTI x`` start value (the refined value is in the file's ``EXTI`` line).
    swat : bool
        A ``SWAT`` (diffuse solvent) instruction is present.
    hklf : int or None
        The data code of ``HKLF n``; ``hklf_scale`` its scale s (default 1),
        ``hklf_matrix`` the 9 matrix elements (identity when absent).
    twin : bool
        ``TWIN`` or ``BASF`` present.
    parts : set of int
        ``PART`` numbers other than 0.
    omit : list of tuple of int
        ``OMIT h k l`` reflections.
    merg : int or None
        ``MERG n``.
    line : int
        Line of the ``_shelx_res_file`` tag in the CIF; ``lines`` maps each
        instruction name to the CIF line it was read from.
    """

    wavelength: float | None = None
    wght: tuple[float, float] | None = None
    exti: float | None = None
    swat: bool = False
    hklf: int | None = None
    hklf_scale: float = 1.0
    hklf_matrix: tuple[float, ...] | None = None
    twin: bool = False
    parts: set[int] = field(default_factory=set)
    omit: list[tuple[int, int, int]] = field(default_factory=list)
    merg: int | None = None
    line: int = 0
    lines: dict[str, int] = field(default_factory=dict)


def _joined(text: str) -> list[tuple[int, str]]:
    """Instruction lines (offset of the first physical line, text), '=' continuations
    joined, comments and REM dropped, up to END."""
    out: list[tuple[int, str]] = []
    pending: tuple[int, str] | None = None
    for k, raw in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n")):
        line = raw.split("!", 1)[0].rstrip().replace("\t", " ")
        if pending is not None:
            line = pending[1] + " " + line.strip()
            start = pending[0]
            pending = None
        else:
            start = k
        if line.endswith("="):
            pending = (start, line[:-1])
            continue
        words = line.split()
        if not words or words[0].upper() == "REM":
            continue
        out.append((start, line))
        if words[0].upper() == "END":
            break
    return out


def _num(word: str) -> float:
    return float(word)


def parse_res(text: str, path: str = "", first_line: int = 0) -> ShelxInstructions:
    """Read the instructions of ``.res`` text (see :class:`ShelxInstructions`).

    ``first_line`` is the line number (1-based) in ``path`` of the text's first
    line, for messages.
    """
    ins = ShelxInstructions(line=first_line)
    for k, line in _joined(text):
        words = line.split()
        name = words[0].upper().split("_")[0]
        where = first_line + k
        try:
            if name == "CELL" and ins.wavelength is None and len(words) >= 2:
                ins.wavelength = _num(words[1])
            elif name == "WGHT" and ins.wght is None:
                a = _num(words[1]) if len(words) > 1 else 0.1
                b = _num(words[2]) if len(words) > 2 else 0.0
                ins.wght = (a, b)
            elif name == "EXTI":
                ins.exti = _num(words[1]) if len(words) > 1 else 0.0
            elif name == "SWAT":
                ins.swat = True
            elif name in ("TWIN", "BASF"):
                ins.twin = True
            elif name == "PART" and len(words) > 1:
                n = int(float(words[1]))
                if n != 0:
                    ins.parts.add(n)
            elif name == "OMIT" and len(words) == 4:
                try:
                    ins.omit.append(tuple(int(w) for w in words[1:4]))
                except ValueError:
                    pass  # OMIT s 2theta(lim): a resolution limit, not a reflection
            elif name == "MERG" and len(words) > 1:
                ins.merg = int(float(words[1]))
            elif name == "HKLF":
                ins.hklf = int(float(words[1]))
                if len(words) > 2:
                    ins.hklf_scale = _num(words[2])
                if len(words) > 3:
                    m = tuple(_num(w) for w in words[3:12])
                    if len(m) == 9:
                        ins.hklf_matrix = m
            else:
                continue
        except (ValueError, IndexError):
            raise InputError(
                f"_shelx_res_file: cannot read the instruction {line.strip()!r}", path, where
            ) from None
        ins.lines.setdefault(name, where)
    return ins


def read_instructions(path: str | Path, block: str) -> ShelxInstructions | None:
    """The embedded ``.res`` of ``block`` (None when the block has none)."""
    path = Path(path)
    text, line = _text_item(_block(path, block), _RES)
    if not text:
        return None
    return parse_res(text, str(path), (line or 0) + 1)


def check_hklf(ins: ShelxInstructions | None, path: str) -> None:
    """Stop on data chasm cannot refine: HKLF other than 4, a twin, a transformation."""
    if ins is None:
        return
    where = ins.lines.get("HKLF")
    if ins.hklf is not None and ins.hklf not in SUPPORTED_HKLF:
        what = {5: "twinned data with batch (component) numbers", 3: "F and sigma(F)"}.get(
            ins.hklf, "a data code chasm does not read"
        )
        raise InputError(
            f"_shelx_res_file: HKLF {ins.hklf} ({what}) is not supported; chasm reads "
            "HKLF 4 (h k l F^2 sigma(F^2) of a single crystal) only",
            path,
            where,
        )
    if ins.twin:
        raise InputError(
            "_shelx_res_file: TWIN/BASF (a twinned refinement) is not supported; chasm refines "
            "single-crystal HKLF 4 data only",
            path,
            ins.lines.get("TWIN", ins.lines.get("BASF")),
        )
    if ins.hklf_matrix is not None and any(
        abs(v - e) > 1e-9 for v, e in zip(ins.hklf_matrix, (1, 0, 0, 0, 1, 0, 0, 0, 1), strict=True)
    ):
        raise InputError(
            "_shelx_res_file: HKLF with an index transformation matrix is not supported; "
            "transform the reflections and give them with --xray",
            path,
            where,
        )


def embedded_reflections(path: str | Path, block: str):
    """The reflections of ``_shelx_hkl_file`` in ``block`` (HKLF 4).

    The HKLF scale s of the embedded ``.res`` multiplies F² and σ, as in SHELXL.
    Line numbers of the returned reflections and of errors are lines of the CIF.

    Raises
    ------
    InputError
        No reflections in the block, an unsupported HKLF code or twin
        (:func:`check_hklf`), or an unreadable reflection line.
    """
    from chasm.io.shelx_hkl import read_hkl4

    path = Path(path)
    b = _block(path, block)
    text, line = _text_item(b, _HKL)
    if not text or not text.strip():
        raise InputError(
            f"data block {block!r} has no embedded reflections ({_HKL}); give the "
            "reflection file with --xray FILE",
            str(path),
        )
    res, res_line = _text_item(b, _RES)
    ins = parse_res(res, str(path), (res_line or 0) + 1) if res else None
    check_hklf(ins, str(path))
    # the text field starts on the line after the tag, after the ';' line
    offset = (line or 0) + 1
    if text.startswith("\n"):
        text = text[1:]
        offset += 1
    # TODO(lead): when the HKLF 4 reader gains the fixed/free layout choice (issue 16,
    # `readers` branch), pass the data set's choice through here; SHELXL itself reads the
    # embedded text with its fixed 3I4,2F8.2 columns.
    fd, tmp = tempfile.mkstemp(suffix=".hkl", text=True)
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            fh.write(text)
        try:
            refl = read_hkl4(tmp)
        except InputError as exc:
            ln = exc.line + offset - 1 if exc.line is not None else None
            raise InputError(f"{_HKL}: {exc.message}", str(path), ln) from None
    finally:
        os.unlink(tmp)
    refl.path = str(path)
    if getattr(refl, "lines", None) is not None:
        refl.lines = refl.lines + offset - 1
    if ins is not None and ins.hklf_scale != 1.0:
        refl.f2 = refl.f2 * ins.hklf_scale
        refl.sigma = refl.sigma * ins.hklf_scale
    return refl


# ------------------------------------------------------------------------- published
@dataclass
class PublishedFit:
    """Agreement factors a CIF reports (NaN when absent)."""

    r1_all: float = math.nan
    r1_gt: float = math.nan
    wr2: float = math.nan
    wr2_gt: float = math.nan
    goof: float = math.nan
    n_reflections: int | None = None
    n_gt: int | None = None
    n_parameters: int | None = None
    n_restraints: int | None = None
    extinction: float | None = None

    def text(self) -> str:
        """``R1(all) 0.0300, wR2 0.0728, GooF 1.061 (3667 reflections, 319 parameters)``."""
        parts = [f"R1(all) {self.r1_all:.4f}", f"wR2 {self.wr2:.4f}", f"GooF {self.goof:.3f}"]
        extra = []
        if self.n_reflections is not None:
            extra.append(f"{self.n_reflections} reflections")
        if self.n_parameters is not None:
            extra.append(f"{self.n_parameters} parameters")
        return ", ".join(parts) + (f" ({', '.join(extra)})" if extra else "")


def _value(b: cif.Block, tag: str) -> float:
    from chasm.crystal.cif import parse_cif_number

    raw = b.find_value(tag)
    if raw is None:
        return math.nan
    try:
        return parse_cif_number(cif.as_string(raw))[0]
    except ValueError:
        return math.nan


def published_fit(path: str | Path, block: str) -> PublishedFit:
    """R1(all), R1(gt), wR2, wR2(gt), GooF, counts and EXTI as the CIF reports them."""
    b = _block(Path(path), block)

    def count(tag: str) -> int | None:
        v = _value(b, tag)
        return None if math.isnan(v) else int(v)

    ext = _value(b, "_refine_ls_extinction_coef")
    return PublishedFit(
        r1_all=_value(b, "_refine_ls_R_factor_all"),
        r1_gt=_value(b, "_refine_ls_R_factor_gt"),
        wr2=_value(b, "_refine_ls_wR_factor_ref"),
        wr2_gt=_value(b, "_refine_ls_wR_factor_gt"),
        goof=_value(b, "_refine_ls_goodness_of_fit_ref"),
        n_reflections=count("_refine_ls_number_reflns"),
        n_gt=count("_reflns_number_gt"),
        n_parameters=count("_refine_ls_number_parameters"),
        n_restraints=count("_refine_ls_number_restraints"),
        extinction=None if math.isnan(ext) else ext,
    )


# --------------------------------------------------------------------------- merging
def merge_shelxl(reflections, spacegroup, friedel: bool = True):
    """Merge equivalents as SHELXL does (MERG 2), for parity with its R-values.

    The groups of equivalents are those of :func:`chasm.io.shelx_hkl.merge`
    (Friedel mates apart unless ``friedel``); within a group of n measurements
    I_i ± σ_i (Sheldrick's rule, described with the program mergehklf5 of
    Schreurs):

    - the mean is weighted by w_i = I_i/σ_i² when I_i > 3σ_i, else by 3/σ_i;
    - σ = max(σ_int, σ_spread) with σ_int = (Σ 1/σ_i²)^(-1/2) and
      σ_spread = Σ|I_i − mean| / (n sqrt(n − 1));
    - Rint = Σ|I_i − mean| / Σ I_i over the groups with n > 1;
    - systematically absent reflections are dropped (SHELXL lists them apart);
    - a merged F² below −σ(F²) is set to −σ(F²). Not found written down; measured:
      with it the published models of alert_example (SHELXL-2014) and of the p21c
      block of cod1000007 (SHELXL-2018) give wR2 0.2795 / 0.1009 and GooF 1.126 /
      1.016 against the CIFs' 0.2795 / 0.1008 and 1.125 / 1.015 (without: 0.2808 /
      0.1029 and 1.131 / 1.036), their >2σ figures being equal either way: the
      difference sat wholly in the weak reflections (docs/validation.md).

    Checked against SHELXL's CaF2 .fcf (``tests/test_shelx_cif.py``): σ of all 96
    unique reflections within 0.6 % of SHELXL's (the .fcf rounds to 0.01).

    Returns
    -------
    merged : Reflections
    rint : float
    info : MergeInfo
    """
    import numpy as np

    from chasm.data.reflections import merge, systematic_absences

    merged, _, info = merge(reflections, spacegroup, friedel=friedel)
    g, n_out = info.group, info.n_out
    f2, s = reflections.f2, reflections.sigma
    w = np.where(f2 > 3.0 * s, f2 / s**2, 3.0 / s)
    mean = np.bincount(g, weights=w * f2, minlength=n_out) / np.bincount(
        g, weights=w, minlength=n_out
    )
    dev = np.abs(f2 - mean[g])
    sum_dev = np.bincount(g, weights=dev, minlength=n_out)
    n = info.counts.astype(float)
    sigma_int = 1.0 / np.sqrt(np.bincount(g, weights=1.0 / s**2, minlength=n_out))
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = np.where(n > 1, sum_dev / (n * np.sqrt(np.maximum(n - 1.0, 1.0))), 0.0)
    merged.sigma = np.maximum(sigma_int, spread)
    merged.f2 = np.maximum(mean, -merged.sigma)  # SHELXL: F² < −σ(F²) becomes −σ(F²)
    multiple = n[g] > 1
    rint = float(np.sum(dev[multiple]) / np.sum(f2[multiple])) if multiple.any() else math.nan
    info.rint = rint
    absent = systematic_absences(merged.hkl, spacegroup)
    if absent.any():  # SHELXL keeps them out of the refinement and the R-values
        merged = merged.subset(~absent)
    return merged, rint, info

"""rhoCIF: the crystal and its multipole model in one CIF file, written and read back.

The file is a small-molecule CIF (cell, symmetry, atoms, ADPs, f', f'') plus the
items of the electron-density dictionary rhoCIF (``cif_rho.dic``, version 1.0.1,
DDL1 names; the same items are the aliases of the DDLm version 2.0.3 kept by
COMCIFS at https://github.com/COMCIFS/Electron_Density_Dictionary). Data names
were checked against both versions of that dictionary.

Items written
-------------
Core CIF: ``_cell_length_a/b/c``, ``_cell_angle_alpha/beta/gamma``,
``_space_group_name_H-M_alt`` and ``_space_group_name_Hall`` (when the group is
known), the ``_space_group_symop_operation_xyz`` loop (every operation of the
group, centring included; it is what is read back), ``_diffrn_radiation_wavelength``,
the ``_atom_type_symbol / _scat_dispersion_real / _imag`` loop, the ``_atom_site_``
loop (label, type_symbol, fract_x/y/z, U_iso_or_equiv, adp_type Uani/Uiso,
occupancy) and the ``_atom_site_aniso_`` loop (U_11 U_22 U_33 U_12 U_13 U_23).

rhoCIF, one row per Hansen-Coppens atom (spherical IAM atoms have no row):

* ``_atom_local_axes_atom_label, _atom0, _ax1, _atom1, _atom2, _ax2``: the frame
  definition (:class:`chasm.density.frames.LocalAxes`). rhoCIF frames are always
  right-handed, so a left-handed chasm frame gets no row here (only the chasm
  items below), rather than a row other programs would read as a different frame.
* ``_atom_rho_multipole_atom_label``, ``_coeff_Pc``, ``_coeff_Pv``, the
  populations ``_coeff_P00 ... _coeff_P4-4`` (up to the highest lmax of the
  file; ``.`` above an atom's own lmax), ``_atom_rho_multipole_kappa`` (κ; called
  ``_atom_rho_multipole_kappa.base`` in DDLm), ``_kappa_prime0`` ... ``_prime4``
  (chasm has one κ' for all l: the same value is written five times),
  ``_radial_slater_n0``, ``_zeta0``, ..., ``_n4``, ``_zeta4`` (one ζ for all l).

Population names. chasm's flat order (:func:`chasm.density.harmonics.lm_labels`)
is the dictionary's order; "+" (cosine part) is m > 0 and "-" (sine part) m < 0::

    chasm   00   10   11+  11-   20   21+  21-   22+  22-   ...  44+  44-
    rhoCIF  P00  P10  P11  P1-1  P20  P21  P2-1  P22  P2-2  ...  P44  P4-4

Both use the density-normalised d_lm of Hansen & Coppens (CONVENTIONS.md), so
the values are copied unchanged. On reading, the DDL1 alias ``P1_1`` is
accepted for ``P1-1`` (and so on).

Unit of ζ. Neither version of the dictionary states a unit for
``_radial_slater_zetaN`` (DDL1 gives none, DDLm says ``none``). Hansen & Coppens
(1978) and XD work in atomic units, and chasm's own tables are in bohr⁻¹
(CONVENTIONS.md), so the standard items hold ζ in **bohr⁻¹**: the written value
is ζ[Å⁻¹] × BOHR (:data:`chasm.density.radial.BOHR`, Å), and a value read from
a file without chasm items is divided by BOHR. chasm stores ζ in Å⁻¹.

chasm extension (prefix ``_chasm_``)
------------------------------------
Everything needed for an exact round trip that rhoCIF cannot hold:

* ``_chasm_rhocif_version``: format version of the extension (1).
* loop ``_chasm_atom_model_``, one row per atom, in the order of the atoms:
  ``atom_label``; ``kind`` (``iam`` spherical atom, ``hc`` Hansen-Coppens atom);
  ``element`` of the model; ``iam_source`` (``it92``/``koga``, ``.`` for hc);
  ``charge`` (IAM ion charge, or the charge of the databank species of an hc
  atom); ``valence`` (valence orbitals of an hc atom, space separated, ``.`` for
  the default partition); ``lmax``; ``zeta`` (ζ in Å⁻¹, exact); ``axes``
  (:meth:`LocalAxes.as_text`, handedness included, axis names read back in
  upper case, or ``.``); ``frame_11`` ...
  ``frame_33``, the frame matrix M (``frame_ij`` = M[i-1, j-1]: row i the
  Cartesian component, column j the local axis), so the round trip is exact even
  for a frame given as a bare matrix or for atoms that have moved since the
  frame was computed.
* ``_chasm_cell_length_a_su`` ... ``_chasm_cell_angle_gamma_su``: the cell su's
  (written when any is known).
* loop ``_chasm_su_parameter``, ``_chasm_su_value``: standard uncertainties by
  chasm parameter name (``C1.x``, ``C1.U11``, ``C1.Uiso``, ``C1.occ``,
  ``C1.Pc``, ``C1.Pv``, ``C1.kappa``, ``C1.P21+``, ``C1.kappa_prime``), ``?`` for
  an unknown one.
* Spin-split atoms (:class:`~chasm.density.model.SplitAtom`) have ``kind``
  ``hc_split`` in ``_chasm_atom_model_``; the standard multipole loop holds their
  charge model (P = P↑ + P↓, Pv = Pv↑ + Pv↓, κ and κ' of the spin-up part, the
  core scale Pc), so that every rhoCIF reader sees the charge density, and the
  loop ``_chasm_atom_rho_spin_`` holds the two spin parts, one row each, keyed
  by ``id`` = ``<label>.up`` / ``<label>.dn``: ``coeff_Pc`` (the atom's core
  scale, the same on both rows), ``coeff_Pv``, ``coeff_P00`` ... ``coeff_P4-4``
  (rhoCIF names, ``.`` above the atom's lmax), ``kappa``, ``kappa_prime``,
  ``share_kappa`` and ``share_kappa_prime`` (``yes``/``no``, the same on both
  rows). Populations are electrons per spin; the spin density is up − down
  (μB). Element, species, lmax, Slater functions and frame are those of the
  charge model (they are the same for both spins).
* ``_chasm_atom_site_neutron_label``, ``_U_iso_or_equiv`` (every atom) and
  ``_chasm_atom_site_aniso_neutron_label``, ``_U_11`` ... ``_U_23`` (anisotropic
  atoms): the neutron ADP set ``"N"`` of a
  :class:`~chasm.refine.structure_model.StructureModel` (Å², same layout as the
  X-ray ``_atom_site_`` items), written when ``adp_sets`` is given and read by
  :func:`read_rhocif_adp_sets`.
* su names may carry the suffixes of split atoms and ADP sets
  (``Cu1.Pv.spin``, ``Cu1.P20.up``, ``Cu1.kappa.dn``, ``Cu1.U11.N``).

The full description of the extension, with an example, is in docs/rhocif.md.

Numbers and standard uncertainties
----------------------------------
Every value is written with the shortest decimal text that reads back to the
same double (``repr`` precision, positional notation, never an exponent), so
``write -> read -> write`` gives byte-identical files and identical arrays. A
value(su) text would have to round the value or carry a 17-digit su, so the su's
go in the ``_chasm_su_`` loop instead and the standard items carry plain values.
Programs that read only the dictionary items therefore see no su's.

Reading
-------
With the chasm items, the file is read back exactly, split atoms included
(their standard row must agree with the sum of the two spin rows to 1e-9,
otherwise one of them was edited by hand and the file is refused). Without them (rhoCIF from
another program) each atom with a row in the multipole loop becomes a
:class:`HansenCoppensAtom`: Pv is required; Pc, κ and κ' default to 1; the
atom's lmax is the highest l with a value (not ``?`` or ``.``) in its P_lm
columns, missing populations below it are 0; κ' and ζ must be the same for
every l up to the atom's lmax (values above it are ignored: some programs write
placeholders there); n_l and ζ missing from the file take chasm's defaults; the
frame is computed from the ``_atom_local_axes_`` row (signed axes such as
``-X`` are honoured; the frame is then kept as a matrix only), or is the
identity, with a warning, when an atom with multipoles has none. Atoms without
a multipole row are IAM atoms (IT92, neutral). su's given in parentheses are
returned by :func:`read_rhocif_su`.

References
----------
rhoCIF dictionary, cif_rho.dic 1.0.1 (International Tables Vol. G, 2005) and
2.0.3 (COMCIFS). Hansen, N. K. & Coppens, P. (1978). Acta Cryst. A34, 909-921.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from gemmi import cif

from chasm import __version__
from chasm.crystal.cif import _Reader, read_cif, read_cif_document
from chasm.crystal.structure import Crystal
from chasm.crystal.symmetry import format_symop
from chasm.density.frames import LocalAxes
from chasm.density.harmonics import lm_index, lm_labels
from chasm.density.model import HansenCoppensAtom, SphericalAtom, SplitAtom
from chasm.density.radial import BOHR, default_slater
from chasm.errors import InputError
from chasm.io.atomic import write_text_atomic

__all__ = [
    "FORMAT_VERSION",
    "rhocif_population_name",
    "rhocif_text",
    "write_rhocif",
    "read_rhocif",
    "read_rhocif_su",
    "read_rhocif_adp_sets",
]

FORMAT_VERSION = 1
"""Version of the ``_chasm_`` extension written by this module."""

LMAX = 4
_MP = "_atom_rho_multipole_"
_AXES = "_atom_local_axes_"
_MODEL = "_chasm_atom_model_"
_SU = "_chasm_su_"
_SPIN = "_chasm_atom_rho_spin_"
_SPINS = ("up", "dn")
_NEUTRON = "_chasm_atom_site_neutron_"
_NEUTRON_ANISO = "_chasm_atom_site_aniso_neutron_"
_SU_SUFFIXES = ("up", "dn", "spin", "N")
_YES_NO = {"yes": True, "no": False}
_VERSION_TAG = "_chasm_rhocif_version"
_CELL_NAMES = ("length_a", "length_b", "length_c", "angle_alpha", "angle_beta", "angle_gamma")
_CELL_SU_TAGS = tuple(f"_chasm_cell_{name}_su" for name in _CELL_NAMES)
_U_KINDS = ("U11", "U22", "U33", "U12", "U13", "U23")
_FRAME = tuple(f"frame_{i}{j}" for i in (1, 2, 3) for j in (1, 2, 3))
_AXIS_NAMES = ("X", "Y", "Z")
_ORTHONORMAL_TOL = 1e-6
_SU_KINDS = frozenset(
    ["x", "y", "z", "Uiso", *_U_KINDS, "occ", "Pc", "Pv", "kappa", "kappa_prime"]
    + [f"P{s}" for s in lm_labels(LMAX)]
)


def rhocif_population_name(l: int, m: int) -> str:
    """rhoCIF name of the population P(l, m): ``P00``, ``P11`` (m = +1), ``P1-1`` (m = -1).

    Parameters
    ----------
    l : int
        Multipole order, 0..4.
    m : int
        -l..l; m > 0 is chasm's cosine ("+") function, m < 0 the sine ("-") one.
    """
    return f"P{l}{m}"


# ---------------------------------------------------------------------------- writing
def _num(value, what: str) -> str:
    """Shortest positional text that reads back to the same double."""
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{what}: cannot write the non-finite value {v}")
    return np.format_float_positional(v, unique=True, trim="0")


def _int(value, what: str) -> str:
    if int(value) != value:
        raise ValueError(f"{what}: expected an integer, got {value!r}")
    return str(int(value))


def _word(text: str, what: str) -> str:
    """A label-like value: non-empty, no whitespace (quoted when CIF needs it)."""
    text = str(text)
    if not text or any(c.isspace() for c in text):
        raise ValueError(f"{what} {text!r}: must be non-empty and contain no whitespace")
    return cif.quote(text)


def _pair(tag: str, value: str) -> str:
    if value.startswith(";"):  # multi-line text field: starts on its own line
        return f"{tag}\n{value}"
    return f"{tag:<38} {value}"


def _loop(tags: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    if not rows:
        return []
    return ["loop_", *(f" {t}" for t in tags), *(" " + " ".join(row) for row in rows), ""]


def _check_input(crystal: Crystal, models: list) -> None:
    """One written model per atom, each a type rhoCIF holds, a charge model's frame sound."""
    if len(models) != len(crystal.atoms):
        raise ValueError(
            f"{len(crystal.atoms)} atoms but {len(models)} density models: give one per atom"
        )
    for atom, model in zip(crystal.atoms, models, strict=True):
        _word(atom.label, "atom label")
        if not isinstance(model, SphericalAtom | HansenCoppensAtom | SplitAtom):
            raise TypeError(
                f"atom {atom.label}: density model {type(model).__name__} cannot be written "
                "(expected SphericalAtom, HansenCoppensAtom or SplitAtom)"
            )
        model = model.charge_model()  # (what the standard multipole items hold)
        if isinstance(model, HansenCoppensAtom):
            frame = np.asarray(model.frame, dtype=float)
            if frame.shape != (3, 3) or not np.all(np.isfinite(frame)):
                raise ValueError(f"atom {atom.label}: frame must be a finite 3x3 matrix")
            if np.max(np.abs(frame.T @ frame - np.eye(3))) > _ORTHONORMAL_TOL:
                raise ValueError(f"atom {atom.label}: frame is not orthonormal")
            if len(model.n_l) != LMAX + 1:
                raise ValueError(f"atom {atom.label}: n_l needs {LMAX + 1} values")


def _header(crystal: Crystal, extra: dict | None) -> list[str]:
    name = "".join("_" if c.isspace() else c for c in (crystal.name or "chasm"))
    lines = [
        f"# rhoCIF (cif_rho.dic) written by chasm {__version__}; _chasm_* items: see",
        "# chasm.io.rhocif. zeta in _atom_rho_multipole_radial_slater_zeta*: 1/bohr.",
        f"data_{name}",
        "",
        _pair("_audit_creation_method", cif.quote(f"chasm {__version__}")),
        _pair(_VERSION_TAG, str(FORMAT_VERSION)),
    ]
    for tag, value in (extra or {}).items():
        if not tag.startswith("_") or any(c.isspace() for c in tag):
            raise ValueError(f"extra item {tag!r}: a CIF tag starts with '_' and has no spaces")
        lines.append(_pair(tag, cif.quote(str(value))))
    lines.append("")
    for tag, value in zip(
        ("_cell_" + n for n in _CELL_NAMES), crystal.cell.parameters, strict=True
    ):
        lines.append(_pair(tag, _num(value, tag)))
    sus = crystal.cell_su or ()
    if any(math.isfinite(s) for s in sus):
        for tag, s in zip(_CELL_SU_TAGS, sus, strict=True):
            lines.append(_pair(tag, _num(s, tag) if math.isfinite(s) else "?"))
    lines.append("")
    if crystal.spacegroup is not None:
        lines.append(_pair("_space_group_name_H-M_alt", cif.quote(crystal.spacegroup.hm)))
        lines.append(_pair("_space_group_name_Hall", cif.quote(crystal.spacegroup.hall)))
    ops = [[cif.quote(format_symop(r, t))] for r, t in zip(*crystal.symops, strict=True)]
    lines += _loop(["_space_group_symop_operation_xyz"], ops)
    if crystal.wavelength is not None:
        value = _num(crystal.wavelength, "wavelength")
        lines += [_pair("_diffrn_radiation_wavelength", value), ""]
    return lines


def _atom_loops(crystal: Crystal) -> list[str]:
    dispersion = [
        [_word(el, "element"), _num(fp, f"f' of {el}"), _num(fpp, f"f'' of {el}")]
        for el, (fp, fpp) in crystal.dispersion.items()
    ]
    lines = _loop(
        ["_atom_type_symbol", "_atom_type_scat_dispersion_real", "_atom_type_scat_dispersion_imag"],
        dispersion,
    )
    sites, aniso = [], []
    for atom in crystal.atoms:
        what = f"atom {atom.label}"
        sites.append(
            [
                cif.quote(atom.label),
                _word(atom.type_symbol, f"{what} type symbol"),
                *(_num(v, f"{what} {c}") for v, c in zip(atom.xyz, "xyz", strict=True)),
                _num(atom.uiso, f"{what} Uiso"),
                "Uani" if atom.is_anisotropic else "Uiso",
                _num(atom.occupancy, f"{what} occupancy"),
            ]
        )
        if atom.is_anisotropic:
            values = (_num(v, f"{what} {k}") for v, k in zip(atom.u_aniso, _U_KINDS, strict=True))
            aniso.append([cif.quote(atom.label), *values])
    site_tags = ["label", "type_symbol", "fract_x", "fract_y", "fract_z", "U_iso_or_equiv"]
    lines += _loop([f"_atom_site_{t}" for t in [*site_tags, "adp_type", "occupancy"]], sites)
    aniso_tags = ["label", *(f"U_{k[1:]}" for k in _U_KINDS)]
    lines += _loop([f"_atom_site_aniso_{t}" for t in aniso_tags], aniso)
    return lines


def _multipole_loops(crystal: Crystal, models: list) -> list[str]:
    hc = [
        (atom, m)
        for atom, m in zip(crystal.atoms, models, strict=True)
        if isinstance(m, HansenCoppensAtom)
    ]
    axes_rows = []
    for atom, m in hc:
        if m.axes is not None and m.axes.right_handed:
            ax = m.axes
            a0, a1, a2 = (
                _word(x, f"atom {atom.label} axes") for x in (ax.atom0, ax.atom1, ax.atom2)
            )
            axes_rows.append([cif.quote(atom.label), a0, ax.ax1.upper(), a1, a2, ax.ax2.upper()])
    lines = _loop(
        [_AXES + t for t in ("atom_label", "atom0", "ax1", "atom1", "atom2", "ax2")], axes_rows
    )
    lmax_all = max((m.lmax for _, m in hc), default=-1)
    p_names = (
        [rhocif_population_name(l, mm) for l, mm in lm_index(lmax_all)] if lmax_all >= 0 else []
    )
    tags = ["atom_label", "coeff_Pc", "coeff_Pv", *(f"coeff_{p}" for p in p_names), "kappa"]
    tags += [f"kappa_prime{l}" for l in range(LMAX + 1)]
    for l in range(LMAX + 1):
        tags += [f"radial_slater_n{l}", f"radial_slater_zeta{l}"]
    rows = []
    for atom, m in hc:
        what = f"atom {atom.label}"
        plm = [_num(v, f"{what} P{s}") for v, s in zip(m.plm, lm_labels(m.lmax), strict=True)]
        row = [cif.quote(atom.label), _num(m.pc, f"{what} Pc"), _num(m.pv, f"{what} Pv")]
        row += plm + ["."] * (len(p_names) - len(plm))
        row.append(_num(m.kappa, f"{what} kappa"))
        row += [_num(m.kappa_prime, f"{what} kappa'")] * (LMAX + 1)
        zeta_bohr = _num(float(m.zeta) * BOHR, f"{what} zeta")
        for n in m.n_l:
            row += [_int(n, f"{what} n_l"), zeta_bohr]
        rows.append(row)
    return lines + _loop([_MP + t for t in tags], rows)


def _chasm_loops(crystal: Crystal, models: list, su: dict | None) -> list[str]:
    tags = ["atom_label", "kind", "element", "iam_source", "charge", "valence", "lmax"]
    tags += ["zeta", "axes", *_FRAME]
    rows = []
    for atom, m in zip(crystal.atoms, models, strict=True):
        what = f"atom {atom.label}"
        row = [cif.quote(atom.label)]
        if isinstance(m, SphericalAtom):
            row += ["iam", _word(m.element, f"{what} element"), _word(m.source, f"{what} source")]
            row += [_int(m.charge, f"{what} charge"), ".", ".", "."] + ["."] * 10
        else:
            kind = "hc"
            if isinstance(m, SplitAtom):
                kind, m = "hc_split", m.charge_model()
            valence = "."
            if m.valence is not None:
                names = [_word(v, f"{what} valence orbital") for v in m.valence]
                valence = cif.quote(" ".join(cif.as_string(v) for v in names))
            row += [kind, _word(m.element, f"{what} element"), "."]
            row += [_int(m.charge, f"{what} charge"), valence, str(int(m.lmax))]
            row.append(_num(m.zeta, f"{what} zeta"))
            row.append(cif.quote(m.axes.as_text()) if m.axes is not None else ".")
            row += [_num(v, f"{what} frame") for v in np.asarray(m.frame, dtype=float).ravel()]
        rows.append(row)
    lines = _loop([_MODEL + t for t in tags], rows)
    su_rows = []
    labels = {a.label for a in crystal.atoms}
    for name, value in (su or {}).items():
        if not _su_name_ok(str(name), labels):
            raise ValueError(
                f"su {name!r}: not a chasm parameter name such as 'C1.x', 'C1.U11', 'C1.Pv', "
                "'C1.P21+' or 'C1.kappa_prime' of an atom of the crystal, optionally with "
                "a suffix .up, .dn, .spin (split atoms) or .N (neutron ADPs)"
            )
        s = float(value)
        if s < 0 or math.isinf(s):
            raise ValueError(f"su {name!r}: {s} is not a standard uncertainty")
        su_rows.append([cif.quote(name), "?" if math.isnan(s) else _num(s, f"su {name}")])
    return lines + _loop([_SU + "parameter", _SU + "value"], su_rows)


def _su_name_ok(name: str, labels: set) -> bool:
    """True for ``LABEL.KIND`` or ``LABEL.KIND.SUFFIX`` (suffix of split atoms or ADP sets)."""
    label, _, kind = name.rpartition(".")
    if label in labels and kind in _SU_KINDS:
        return True
    base, _, suffix = name.rpartition(".")
    label, _, kind = base.rpartition(".")
    return suffix in _SU_SUFFIXES and label in labels and kind in _SU_KINDS


def _spin_loops(crystal: Crystal, models: list) -> list[str]:
    """The ``_chasm_atom_rho_spin_`` loop: both spin parts of every split atom."""
    split = [
        (atom, m) for atom, m in zip(crystal.atoms, models, strict=True) if isinstance(m, SplitAtom)
    ]
    if not split:
        return []
    lmax_all = max(m.lmax for _, m in split)
    p_names = (
        [rhocif_population_name(l, mm) for l, mm in lm_index(lmax_all)] if lmax_all >= 0 else []
    )
    tags = ["id", "coeff_Pc", "coeff_Pv", *(f"coeff_{p}" for p in p_names)]
    tags += ["kappa", "kappa_prime", "share_kappa", "share_kappa_prime"]
    rows = []
    for atom, m in split:
        for spin in _SPINS:
            part = getattr(m, spin)
            what = f"atom {atom.label} ({spin})"
            plm = [
                _num(v, f"{what} P{s}") for v, s in zip(part.plm, lm_labels(m.lmax), strict=True)
            ]
            row = [_word(f"{atom.label}.{spin}", "spin part id"), _num(m.pc, f"{what} Pc")]
            row += [_num(part.pv, f"{what} Pv"), *plm, *["."] * (len(p_names) - len(plm))]
            row += [_num(part.kappa, f"{what} kappa"), _num(part.kappa_prime, f"{what} kappa'")]
            row += ["yes" if m.share_kappa else "no", "yes" if m.share_kappa_prime else "no"]
            rows.append(row)
    return _loop([_SPIN + t for t in tags], rows)


def _neutron_loops(crystal: Crystal, adp_sets: dict | None) -> list[str]:
    """The neutron ADP set (``adp_sets["N"]``) in the ``_chasm_atom_site_*neutron_`` loops."""
    if not adp_sets:
        return []
    unknown = [name for name in adp_sets if name != "N"]
    if unknown:
        raise ValueError(f"ADP sets {unknown}: only the neutron set 'N' can be written to rhoCIF")
    values = list(adp_sets["N"])
    if len(values) != len(crystal.atoms):
        raise ValueError(f"ADP set N: {len(values)} entries for {len(crystal.atoms)} atoms")
    iso, aniso = [], []
    for atom, (u6, uiso) in zip(crystal.atoms, values, strict=True):
        what = f"atom {atom.label} neutron"
        if (u6 is None) == atom.is_anisotropic:
            raise ValueError(f"{what} ADPs: must be anisotropic exactly when the X-ray ADPs are")
        iso.append([cif.quote(atom.label), _num(uiso, f"{what} Uiso")])
        if u6 is not None:
            u6 = np.asarray(u6, dtype=float).reshape(6)
            aniso.append(
                [cif.quote(atom.label)]
                + [_num(v, f"{what} {k}") for v, k in zip(u6, _U_KINDS, strict=True)]
            )
    lines = _loop([_NEUTRON + "label", _NEUTRON + "U_iso_or_equiv"], iso)
    tags = [_NEUTRON_ANISO + "label", *(f"{_NEUTRON_ANISO}U_{k[1:]}" for k in _U_KINDS)]
    return lines + _loop(tags, aniso)


def rhocif_text(
    crystal: Crystal,
    models: Sequence,
    su: dict[str, float] | None = None,
    extra: dict[str, str] | None = None,
    adp_sets: dict | None = None,
) -> str:
    """The rhoCIF text :func:`write_rhocif` writes (see the module docstring).

    Parameters
    ----------
    crystal : Crystal
    models : sequence of SphericalAtom, HansenCoppensAtom or SplitAtom
        One per atom of ``crystal.atoms``, same order. A SplitAtom is written as
        its charge model in the standard items and its spin parts in the
        ``_chasm_atom_rho_spin_`` loop.
    su : dict, optional
        Standard uncertainties by chasm parameter name (``'C1.x'``, ``'C1.U11'``,
        ``'C1.Pv'``, ``'C1.P21+'``, ``'C1.kappa_prime'``, ``'Cu1.Pv.spin'``,
        ``'Cu1.kappa.up'``, ``'Cu1.U11.N'``, ...), in the parameter's unit
        (fractional, Å², electrons, μB ...); NaN for unknown.
    extra : dict, optional
        Further single-valued items (tag -> text), e.g. ``{'_refine_ls_wR_factor_gt':
        '0.0213'}``, written as given (quoted where CIF needs it).
    adp_sets : dict, optional
        The extra ADP sets of a :class:`~chasm.refine.structure_model.StructureModel`
        (its ``adp`` attribute: name -> one (U6 or None, Uiso) per atom, Å²);
        only the neutron set ``"N"`` is written.

    Returns
    -------
    str

    Raises
    ------
    ValueError, TypeError
        A model of the wrong type, a non-finite value, a non-orthonormal frame, an
        unknown su name, an extra tag that is not a tag or repeats a written one.
    """
    models = list(models)
    if len(models) == len(crystal.atoms):
        for atom, m in zip(crystal.atoms, models, strict=True):
            if isinstance(m, SplitAtom):
                _word(f"{atom.label}.up", "spin part id")
    _check_input(crystal, models)
    charge = [m.charge_model() for m in models]
    lines = _header(crystal, extra)
    lines += _atom_loops(crystal)
    lines += _multipole_loops(crystal, charge)
    lines += _chasm_loops(crystal, models, su)
    lines += _spin_loops(crystal, models)
    lines += _neutron_loops(crystal, adp_sets)
    tags = [line.split()[0].lower() for line in lines if line.startswith(("_", " _"))]
    for tag in extra or {}:
        if tags.count(tag.lower()) > 1:
            raise ValueError(f"extra item {tag!r} repeats an item chasm writes itself")
    return "\n".join(lines).rstrip("\n") + "\n"


def write_rhocif(
    path: str | os.PathLike,
    crystal: Crystal,
    models: Sequence,
    su: dict[str, float] | None = None,
    extra: dict[str, str] | None = None,
    adp_sets: dict | None = None,
) -> None:
    """Write the crystal and its density models as rhoCIF, atomically.

    The whole text is built first (so a model that cannot be written raises before
    anything is touched), written to a temporary file in the target's directory
    and renamed onto ``path``: an existing file is replaced only when writing
    succeeded. Parameters as :func:`rhocif_text`.

    Raises
    ------
    ValueError, TypeError
        See :func:`rhocif_text`.
    OSError
        The file cannot be written.
    """
    write_text_atomic(path, rhocif_text(crystal, models, su, extra, adp_sets))


# ---------------------------------------------------------------------------- reading
def _rows(r: _Reader, prefix: str, names: Sequence[str], key: str = "atom_label") -> list:
    """(label, {name: raw value or None}, line) for each row keyed by ``prefix + key``.

    Items of the category outside the keyed loop are an error (they would be
    silently ignored otherwise).
    """
    table = r.block.find(prefix, [key, *(f"?{n}" for n in names)])
    if len(table) == 0:
        for n in names:
            line = r.tag_line(prefix + n)
            if line is not None:
                raise r.error(f"{prefix + n} is given but {prefix + key} is missing", line)
        return []
    for j, n in enumerate(names, start=1):
        if not table.has_column(j) and r.tag_line(prefix + n) is not None:
            raise r.error(
                f"{prefix + n} must be in the same loop as {prefix + key}", r.tag_line(prefix + n)
            )
    out, seen = [], set()
    for row in table:
        label = cif.as_string(row[0])
        line = r.row_line(prefix + key, label)
        if label in seen:
            raise r.error(f"{prefix + key}: atom {label} has two rows", line)
        seen.add(label)
        values = {
            n: (row[j] if row.has(j) and not cif.is_null(row[j]) else None)
            for j, n in enumerate(names, start=1)
        }
        out.append((label, values, line))
    return out


def _keyed(r: _Reader, crystal: Crystal, rows: list, tag: str) -> dict:
    labels = {a.label for a in crystal.atoms}
    for label, _, line in rows:
        if label not in labels:
            raise r.error(
                f"{tag} {label!r} is not an atom of the _atom_site_ loop "
                "(rename it or add the atom)",
                line,
            )
    return {label: (values, line) for label, values, line in rows}


#: Ranges checked on reading: |integer items| (n_l, lmax, charges), and the
#: expansion parameters κ, κ' and ζ (1/Å or 1/bohr), all in (0, _EXPANSION_MAX].
_INTEGER_LIMIT = 1000
_EXPANSION_MAX = 100.0


def _integer(r: _Reader, raw: str, what: str, line: int | None) -> int:
    value = r.ranged(raw, what, line, -_INTEGER_LIMIT, _INTEGER_LIMIT)[0]
    if value != int(value):
        raise r.error(f"{what}: expected an integer, got {cif.as_string(raw)!r}", line)
    return int(value)


def _same_for_all_l(
    r: _Reader, values: dict, name: str, lmax: int, what: str, line
) -> float | None:
    """The common value of ``name0..name<lmax>`` (at least l = 0), None if none is given."""
    found = [
        (
            l,
            r.ranged(
                values[f"{name}{l}"], f"{what} {name}{l}", line, 0, _EXPANSION_MAX, lo_open=True
            )[0],
        )
        for l in range(max(lmax, 0) + 1)
        if values[f"{name}{l}"] is not None
    ]
    if not found:
        return None
    if any(v != found[0][1] for _, v in found):
        text = ", ".join(f"{name}{l} = {v}" for l, v in found)
        raise r.error(
            f"{what}: chasm uses one value for all l, but the file has {text}; "
            "make them equal (values above the atom's lmax are ignored)",
            line,
        )
    return found[0][1]


def _p_columns() -> list[tuple[tuple[int, int], str, str, str]]:
    """((l, m), item, alias, chasm name) of every population.

    e.g. ((1, -1), 'coeff_P1-1', 'coeff_P1_1', 'P11-').
    """
    out = []
    for (l, m), label in zip(lm_index(LMAX), lm_labels(LMAX), strict=True):
        name = rhocif_population_name(l, m)
        out.append(((l, m), f"coeff_{name}", f"coeff_{name.replace('-', '_')}", f"P{label}"))
    return out


_P_COLUMNS = _p_columns()
_MP_NAMES = ["coeff_Pc", "coeff_Pv", "kappa", "kappa_base"]
_MP_NAMES += [c for _, name, alias, _ in _P_COLUMNS for c in dict.fromkeys((name, alias))]
_MP_NAMES += [f"kappa_prime{l}" for l in range(LMAX + 1)]
_MP_NAMES += [f"radial_slater_{x}{l}" for l in range(LMAX + 1) for x in ("n", "zeta")]
_SPIN_NAMES = ["coeff_Pc", "coeff_Pv", *(name for _, name, _, _ in _P_COLUMNS)]
_SPIN_NAMES += ["kappa", "kappa_prime", "share_kappa", "share_kappa_prime"]


class _AtomReader:
    """Builds the density model of each atom of one file."""

    def __init__(self, r: _Reader, crystal: Crystal):
        self.r = r
        self.crystal = crystal
        self.su: dict[str, float] = {}
        mp = _rows(r, _MP, _MP_NAMES)
        self.multipoles = _keyed(r, crystal, mp, _MP + "atom_label")
        names = ["atom0", "ax1", "atom1", "atom2", "ax2"]
        self.axes = _keyed(r, crystal, _rows(r, _AXES, names), _AXES + "atom_label")
        names = ["kind", "element", "iam_source", "charge", "valence", "lmax", "zeta", "axes"]
        chasm_rows = _rows(r, _MODEL, [*names, *_FRAME])
        self.chasm = _keyed(r, crystal, chasm_rows, _MODEL + "atom_label") if chasm_rows else None
        if self.chasm is not None:
            self._check_chasm_version()
        self.spin = self._spin_rows()

    def _spin_rows(self) -> dict:
        """Rows of the _chasm_atom_rho_spin_ loop by (label, spin)."""
        r = self.r
        rows = _rows(r, _SPIN, _SPIN_NAMES, key="id")
        if rows and self.chasm is None:
            raise r.error(
                f"{_SPIN}id is given but the {_MODEL} loop is missing; the spin parts of "
                "split atoms need the chasm model rows (kind hc_split)",
                r.tag_line(_SPIN + "id"),
            )
        out = {}
        for key, values, line in rows:
            label, _, spin = key.rpartition(".")
            model = self.chasm.get(label)
            kind = None
            if model is not None and model[0]["kind"] is not None:
                kind = cif.as_string(model[0]["kind"])
            if spin not in _SPINS or kind != "hc_split":
                raise r.error(
                    f"{_SPIN}id {key!r}: expected <label>.up or <label>.dn of an atom whose "
                    f"{_MODEL}kind is hc_split",
                    line,
                )
            out[label, spin] = (values, line)
        return out

    def _check_chasm_version(self) -> None:
        r = self.r
        _, raw = r.first_value([_VERSION_TAG])
        version = None if raw is None else cif.as_string(raw)
        if version != str(FORMAT_VERSION):
            raise r.error(
                f"{_VERSION_TAG} is {version!r}; this chasm reads version {FORMAT_VERSION} "
                "(use the chasm that wrote the file, or remove the _chasm_ items to read "
                "the file as plain rhoCIF)",
                r.tag_line(_VERSION_TAG) or r.tag_line(_MODEL + "atom_label"),
            )
        for atom in self.crystal.atoms:
            if atom.label not in self.chasm:
                raise r.error(
                    f"atom {atom.label} has no row in the {_MODEL}atom_label loop; add it, or "
                    "remove the _chasm_ items to read the file as plain rhoCIF",
                    r.tag_line(_MODEL + "atom_label"),
                )

    # ------------------------------------------------------------------ one atom
    def model(self, i: int):
        atom = self.crystal.atoms[i]
        if self.chasm is None:
            if atom.label in self.multipoles:
                return self._hansen_coppens(i, None)
            return SphericalAtom(atom.element)
        values, line = self.chasm[atom.label]
        kind = cif.as_string(values["kind"]) if values["kind"] is not None else None
        if (atom.label, "up") in self.spin and kind != "hc_split":
            raise self.r.error(
                f"atom {atom.label} has rows in the {_SPIN}id loop but its {_MODEL}kind is "
                f"{kind!r}, not hc_split",
                line,
            )
        if kind == "hc":
            return self._hansen_coppens(i, (values, line))
        if kind == "iam":
            if atom.label in self.multipoles:
                raise self.r.error(
                    f"atom {atom.label} is 'iam' in {_MODEL}kind but has a multipole row",
                    self.multipoles[atom.label][1],
                )
            return self._spherical(atom.label, values, line)
        if kind == "hc_split":
            return self._split_atom(i, self._hansen_coppens(i, (values, line)), line)
        raise self.r.error(
            f"atom {atom.label}: {_MODEL}kind {kind!r} is not 'iam', 'hc' or 'hc_split'", line
        )

    def _split_atom(self, i: int, charge: HansenCoppensAtom, line) -> SplitAtom:
        """A split atom from its two spin rows; its charge model must be their sum."""
        r, label = self.r, self.crystal.atoms[i].label
        missing = [s for s in _SPINS if (label, s) not in self.spin]
        if missing:
            raise r.error(
                f"atom {label}: kind 'hc_split' needs two rows ({label}.up, {label}.dn) in the "
                f"{_SPIN}id loop; {', '.join(f'{label}.{s}' for s in missing)} missing",
                line,
            )
        parts, flags, pcs = {}, set(), set()
        for spin in _SPINS:
            values, row_line = self.spin[label, spin]
            what = f"atom {label} ({spin})"

            def number(name: str, values=values, row_line=row_line, what=what) -> float:
                if values[name] is None:
                    raise r.error(f"{what}: {_SPIN}{name} is missing", row_line)
                if name.startswith("kappa"):
                    raw, lim = values[name], _EXPANSION_MAX
                    return r.ranged(raw, f"{what} {name}", row_line, 0, lim, lo_open=True)[0]
                return r.number(values[name], f"{what} {name}", row_line)[0]

            plm = np.zeros((charge.lmax + 1) ** 2)
            for k, (_, name, _, _) in enumerate(_P_COLUMNS[: plm.size]):
                plm[k] = number(name)
            for _, name, _, _ in _P_COLUMNS[plm.size :]:
                if values[name] is not None:
                    raise r.error(
                        f"{what}: {_SPIN}{name} is given above the atom's lmax {charge.lmax}",
                        row_line,
                    )
            share = []
            for name in ("share_kappa", "share_kappa_prime"):
                text = None if values[name] is None else cif.as_string(values[name]).lower()
                if text not in _YES_NO:
                    raise r.error(f"{what}: {_SPIN}{name} must be yes or no", row_line)
                share.append(_YES_NO[text])
            flags.add(tuple(share))
            pcs.add(number("coeff_Pc"))
            parts[spin] = HansenCoppensAtom(
                element=charge.element,
                pv=number("coeff_Pv"),
                kappa=number("kappa"),
                lmax=charge.lmax,
                plm=plm,
                kappa_prime=number("kappa_prime"),
                frame=charge.frame.copy(),
                n_l=charge.n_l,
                zeta=charge.zeta,
                pc=0.0,
                charge=charge.charge,
                valence=None if charge.valence is None else list(charge.valence),
                axes=charge.axes,
            )
        if len(flags) != 1 or len(pcs) != 1:
            raise r.error(
                f"atom {label}: the two rows of {_SPIN}id disagree on coeff_Pc or the share "
                "flags; make them equal",
                self.spin[label, "dn"][1],
            )
        (share_kappa, share_kappa_prime), (pc,) = flags.pop(), pcs
        up, dn = parts["up"], parts["dn"]
        checks = [
            ("Pc", pc, charge.pc),
            ("Pv", up.pv + dn.pv, charge.pv),
            ("kappa", up.kappa, charge.kappa),
        ]
        if charge.lmax >= 0:
            checks.append(("kappa_prime", up.kappa_prime, charge.kappa_prime))
        checks += [
            (f"P{s}", a, b)
            for s, a, b in zip(lm_labels(charge.lmax), up.plm + dn.plm, charge.plm, strict=True)
        ]
        for name, spin_value, standard in checks:
            if not math.isclose(spin_value, standard, rel_tol=1e-9, abs_tol=1e-9):
                raise r.error(
                    f"atom {label}: {name} of the charge model in the {_MP} loop is {standard} "
                    f"but the spin rows give {spin_value} (up + down, kappa of the up part); "
                    "one of them was changed: correct it or remove the spin rows and the "
                    "hc_split kind",
                    self.multipoles[label][1],
                )
        for bad, text in (
            (share_kappa and up.kappa != dn.kappa, "kappa"),
            (share_kappa_prime and up.kappa_prime != dn.kappa_prime, "kappa_prime"),
        ):
            if bad:
                raise r.error(
                    f"atom {label}: share_{text} is yes but the spin rows have different {text}",
                    self.spin[label, "dn"][1],
                )
        try:
            return SplitAtom(up, dn, pc, share_kappa, share_kappa_prime)
        except ValueError as exc:
            raise r.error(f"atom {label}: {exc}", line) from None

    def _spherical(self, label: str, values: dict, line) -> SphericalAtom:
        r = self.r
        element = self._required(values, "element", label, line)
        source = self._required(values, "iam_source", label, line)
        charge = self._required_int(values, "charge", label, line)
        try:
            return SphericalAtom(element, source, charge)
        except ValueError as exc:
            raise r.error(f"atom {label}: {exc}", line) from None

    def _required(self, values: dict, name: str, label: str, line, raw: bool = False):
        if values[name] is None:
            raise self.r.error(f"atom {label}: {_MODEL}{name} is missing", line)
        return values[name] if raw else cif.as_string(values[name])

    def _required_int(self, values: dict, name: str, label: str, line) -> int:
        raw = self._required(values, name, label, line, raw=True)
        return _integer(self.r, raw, f"atom {label} {_MODEL}{name}", line)

    def _number(
        self, values, name, label, line, default=None, su_name=None, positive=False
    ) -> float | None:
        raw = values[name]
        if raw is None:
            return default
        what = f"atom {label} {name}"
        if positive:
            value, su = self.r.ranged(raw, what, line, 0, _EXPANSION_MAX, lo_open=True)
        else:
            value, su = self.r.number(raw, what, line)
        if su is not None and su_name is not None:
            self.su[f"{label}.{su_name}"] = su
        return value

    def _hansen_coppens(self, i: int, chasm) -> HansenCoppensAtom:
        r, atom = self.r, self.crystal.atoms[i]
        label = atom.label
        if label not in self.multipoles:
            raise r.error(
                f"atom {label} is 'hc' in {_MODEL}kind but has no row in the {_MP}atom_label loop",
                chasm[1],
            )
        values, line = self.multipoles[label]
        pv = self._number(values, "coeff_Pv", label, line, su_name="Pv")
        if pv is None:
            raise r.error(f"atom {label}: {_MP}coeff_Pv is missing (it has no default)", line)
        pc = self._number(values, "coeff_Pc", label, line, 1.0, "Pc")
        kappa_tag = "kappa" if values["kappa"] is not None else "kappa_base"
        kappa = self._number(values, kappa_tag, label, line, 1.0, "kappa", positive=True)
        populations = {}
        for (l, m), name, alias, chasm_name in _P_COLUMNS:
            tag = name if values[name] is not None else alias
            if values[tag] is not None:
                populations[(l, m)] = self._number(values, tag, label, line, su_name=chasm_name)
        lmax = max((l for l, _ in populations), default=-1)
        plm = np.array([populations.get(lm, 0.0) for lm in lm_index(lmax)]) if lmax >= 0 else None
        kappa_prime = _same_for_all_l(r, values, "kappa_prime", lmax, f"atom {label}", line)
        self._number(values, "kappa_prime0", label, line, su_name="kappa_prime")
        zeta_bohr = _same_for_all_l(r, values, "radial_slater_zeta", lmax, f"atom {label}", line)
        n_l = []
        for l in range(LMAX + 1):
            raw = values[f"radial_slater_n{l}"]
            if raw is None and chasm is not None:
                raise r.error(f"atom {label}: {_MP}radial_slater_n{l} is missing", line)
            n_l.append(None if raw is None else _integer(r, raw, f"atom {label} n{l}", line))
        info = dict(element=atom.element, charge=0, valence=None, axes=None)
        if chasm is None:
            if None in n_l or zeta_bohr is None:
                try:
                    n_default, zeta_default = default_slater(atom.element)
                except InputError as exc:
                    raise r.error(f"atom {label}: {exc.message}", line) from None
                n_l = [n_default[l] if n is None else n for l, n in enumerate(n_l)]
            zeta = zeta_default if zeta_bohr is None else zeta_bohr / BOHR
            frame, info["axes"] = self._frame_from_axes(i, lmax)
        else:
            zeta, frame = self._chasm_hc(label, lmax, zeta_bohr, chasm, info)
        try:
            return HansenCoppensAtom(
                element=info["element"],
                pv=pv,
                kappa=kappa,
                lmax=lmax,
                plm=plm,
                kappa_prime=1.0 if kappa_prime is None else kappa_prime,
                frame=frame,
                n_l=tuple(n_l),
                zeta=zeta,
                pc=pc,
                charge=info["charge"],
                valence=info["valence"],
                axes=info["axes"],
            )
        except (ValueError, InputError) as exc:
            raise r.error(f"atom {label}: {exc}", line) from None

    def _chasm_hc(self, label: str, lmax: int, zeta_bohr, chasm, info: dict):
        """zeta (1/Å) and frame of an hc atom from its chasm row; fills element, charge, ..."""
        r = self.r
        values, line = chasm
        lmax_chasm = self._required_int(values, "lmax", label, line)
        if lmax_chasm != lmax:
            raise r.error(
                f"atom {label}: {_MODEL}lmax is {lmax_chasm} but its populations in the "
                f"{_MP} loop go up to l = {lmax}; make them agree",
                line,
            )
        info["element"] = self._required(values, "element", label, line)
        info["charge"] = self._required_int(values, "charge", label, line)
        if values["valence"] is not None:
            info["valence"] = cif.as_string(values["valence"]).split()
        raw_zeta = self._required(values, "zeta", label, line, raw=True)
        zeta = r.ranged(raw_zeta, f"atom {label} zeta", line, 0, _EXPANSION_MAX, lo_open=True)[0]
        if zeta_bohr is not None and not math.isclose(zeta * BOHR, zeta_bohr, rel_tol=1e-9):
            raise r.error(
                f"atom {label}: {_MODEL}zeta = {zeta} 1/A disagrees with "
                f"{_MP}radial_slater_zeta = {zeta_bohr} 1/bohr (= {zeta_bohr / BOHR} 1/A); "
                "correct one of them",
                line,
            )
        frame = np.array(
            [
                r.number(self._required(values, name, label, line, raw=True), name, line)[0]
                for name in _FRAME
            ]
        ).reshape(3, 3)
        if np.max(np.abs(frame.T @ frame - np.eye(3))) > _ORTHONORMAL_TOL:
            raise r.error(f"atom {label}: the {_MODEL}frame_ij matrix is not orthonormal", line)
        if values["axes"] is not None:
            try:
                info["axes"] = LocalAxes.from_text(cif.as_string(values["axes"]))
            except InputError as exc:
                raise r.error(f"atom {label}: {exc.message}", line) from None
        self._check_axes_row(label, info["axes"], line)
        return zeta, frame

    def _check_axes_row(self, label: str, axes: LocalAxes | None, line) -> None:
        expected = found = None
        if axes is not None and axes.right_handed:
            expected = (axes.atom0, axes.ax1.upper(), axes.atom1, axes.atom2, axes.ax2.upper())
        if label in self.axes:
            parts, signs, line = self._axes_row(label)
            found = tuple(parts) if signs == [1.0, 1.0] else "signed axes"
        if found != expected:
            raise self.r.error(
                f"atom {label}: its {_AXES} row ({found}) disagrees with {_MODEL}axes "
                f"{axes.as_text() if axes is not None else '.'!r}; correct one of them",
                line,
            )

    def _axes_row(self, label: str) -> tuple[list[str], list[float], int | None]:
        """Labels and axis names (atom0, ax1, atom1, atom2, ax2), signs of ax1, ax2, line."""
        values, line = self.axes[label]
        parts, signs = [], []
        for name in ("atom0", "ax1", "atom1", "atom2", "ax2"):
            if values[name] is None:
                raise self.r.error(f"atom {label}: {_AXES}{name} is missing", line)
            text = cif.as_string(values[name])
            if name.startswith("ax"):
                signs.append(-1.0 if text.startswith("-") else 1.0)
                text = text.lstrip("+-").upper()
                if text not in _AXIS_NAMES:
                    raise self.r.error(
                        f"atom {label}: {_AXES}{name} {cif.as_string(values[name])!r} "
                        "is not one of X, Y, Z (optionally signed)",
                        line,
                    )
            parts.append(text)
        return parts, signs, line

    def _frame_from_axes(self, i: int, lmax: int) -> tuple[np.ndarray, LocalAxes | None]:
        """Frame of atom i from its _atom_local_axes_ row (identity without one)."""
        r, label = self.r, self.crystal.atoms[i].label
        if label not in self.axes:
            if lmax >= 1:
                warnings.warn(
                    f"{r.path}: atom {label} has multipoles but no {_AXES} row; "
                    "using the Cartesian axes as its local frame",
                    stacklevel=6,
                )
            return np.eye(3), None
        parts, signs, line = self._axes_row(label)
        try:
            axes = LocalAxes(*parts)
            frame = axes.matrix(self.crystal, i)
        except InputError as exc:
            raise r.error(exc.message, line) from None
        if signs == [1.0, 1.0]:
            return frame, axes
        i1, i2 = _AXIS_NAMES.index(parts[1]), _AXIS_NAMES.index(parts[4])
        frame[:, i1] *= signs[0]
        frame[:, i2] *= signs[1]
        frame[:, 3 - i1 - i2] *= signs[0] * signs[1]  # stays right-handed
        return frame, None


def _read_su(r: _Reader, crystal: Crystal) -> dict[str, float] | None:
    """The _chasm_su_ loop (None without one); fills Atom.su and Crystal.cell_su."""
    cell = [r.first_value([tag])[1] for tag in _CELL_SU_TAGS]
    if any(raw is not None for raw in cell):
        crystal.cell_su = tuple(
            math.nan if raw is None else r.number(raw, tag, r.tag_line(tag))[0]
            for raw, tag in zip(cell, _CELL_SU_TAGS, strict=True)
        )
    table = r.block.find(_SU, ["parameter", "value"])
    if len(table) == 0:
        return None
    out: dict[str, float] = {}
    for row in table:
        name = cif.as_string(row[0])
        line = r.row_line(_SU + "parameter", name)
        out[name] = math.nan if cif.is_null(row[1]) else r.number(row[1], f"su {name}", line)[0]
    index = {a.label: a for a in crystal.atoms}
    for name, value in out.items():
        label, _, kind = name.rpartition(".")
        atom = index.get(label)
        if atom is None:
            continue
        if kind in ("x", "y", "z"):
            atom.su.setdefault("xyz", np.full(3, math.nan))["xyz".index(kind)] = value
        elif kind == "occ":
            atom.su["occupancy"] = value
        elif kind == "Uiso":
            atom.su["uiso"] = value
        elif kind in _U_KINDS:
            atom.su.setdefault("u_aniso", np.full(6, math.nan))[_U_KINDS.index(kind)] = value
    return out


def _structure_su(crystal: Crystal) -> dict[str, float]:
    """su's that read_cif found in parentheses, by chasm parameter name."""
    out = {}
    for atom in crystal.atoms:
        entries = list(zip("xyz", atom.su.get("xyz", ()), strict=False))
        entries += [("occ", atom.su.get("occupancy", math.nan))]
        entries += [("Uiso", atom.su.get("uiso", math.nan))]
        entries += list(zip(_U_KINDS, atom.su.get("u_aniso", ()), strict=False))
        out.update({f"{atom.label}.{k}": float(v) for k, v in entries if math.isfinite(v)})
    return out


def _read_crystal(path: Path, block: str | None):
    """(Crystal, document, text); a file chasm wrote is read as a result (see read_cif)."""
    doc, text = read_cif_document(path)
    ours = any(b.find_value(_VERSION_TAG) is not None for b in doc)
    return read_cif(path, block, result=ours), doc, text


def _read(path, block: str | None):
    path = Path(path)
    crystal, doc, text = _read_crystal(path, block)
    r = _Reader(path, doc.find_block(crystal.name), text)
    su = _read_su(r, crystal)
    reader = _AtomReader(r, crystal)
    models = [reader.model(i) for i in range(len(crystal.atoms))]
    if su is None:
        su = {**_structure_su(crystal), **reader.su}
    return crystal, models, su


def read_rhocif(path: str | os.PathLike, block: str | None = None) -> tuple[Crystal, list]:
    """Read a crystal and its density models from a rhoCIF file.

    Files written by chasm are read back exactly; rhoCIF from other programs is
    read by the dictionary items alone (rules in the module docstring).

    Parameters
    ----------
    path : str or path-like
        The file.
    block : str, optional
        Data block name; by default the first block with atoms.

    Returns
    -------
    crystal : Crystal
        With ``Atom.su`` and ``Crystal.cell_su`` filled from the file's su's.
    models : list of SphericalAtom, HansenCoppensAtom or SplitAtom
        One per atom of ``crystal.atoms``, same order (SplitAtom for ``hc_split``
        atoms of a chasm file; read as plain rhoCIF, a split atom's file gives
        its charge model).

    Raises
    ------
    InputError
        Naming the file, the line where known, what is wrong and what to do:
        structure errors (see :func:`chasm.crystal.cif.read_cif`), a multipole,
        local-axes or chasm row for an unknown atom, κ' or ζ differing between l,
        a missing Pv, an unusable frame definition, chasm items that contradict
        the dictionary items, a newer chasm extension version.
    """
    crystal, models, _ = _read(path, block)
    return crystal, models


def read_rhocif_adp_sets(
    path: str | os.PathLike, block: str | None = None
) -> dict[str, list[tuple[np.ndarray | None, float]]]:
    """Extra ADP sets of a rhoCIF file written by chasm: ``{"N": [...]}`` or ``{}``.

    Parameters
    ----------
    path : str or path-like
    block : str, optional
        Data block name; by default the first block with atoms.

    Returns
    -------
    dict
        ``"N"`` -> one (U6 in CIF order U11 U22 U33 U12 U13 U23, or None; Uiso)
        per atom of :func:`read_rhocif`'s crystal, Å², ready for
        ``StructureModel(crystal, models, adp_sets=...)``; empty without the
        ``_chasm_atom_site_neutron_`` items.

    Raises
    ------
    InputError
        A row for an unknown atom, an atom without a row, a missing value, an
        anisotropic neutron entry for an isotropic atom or the reverse.
    """
    path = Path(path)
    crystal, doc, text = _read_crystal(path, block)
    r = _Reader(path, doc.find_block(crystal.name), text)
    iso = _keyed(r, crystal, _rows(r, _NEUTRON, ["U_iso_or_equiv"], "label"), _NEUTRON + "label")
    names = [f"U_{k[1:]}" for k in _U_KINDS]
    aniso = _keyed(r, crystal, _rows(r, _NEUTRON_ANISO, names, "label"), _NEUTRON_ANISO + "label")
    if not iso and not aniso:
        return {}
    out = []
    for atom in crystal.atoms:
        if atom.label not in iso:
            raise r.error(
                f"atom {atom.label} has no row in the {_NEUTRON}label loop; give its neutron "
                "U_iso_or_equiv",
                r.tag_line(_NEUTRON + "label"),
            )
        values, line = iso[atom.label]
        if values["U_iso_or_equiv"] is None:
            raise r.error(f"atom {atom.label}: neutron U_iso_or_equiv is missing", line)
        uiso = r.number(values["U_iso_or_equiv"], f"atom {atom.label} neutron Uiso", line)[0]
        u6 = None
        if atom.is_anisotropic != (atom.label in aniso):
            raise r.error(
                f"atom {atom.label}: the neutron ADPs must be anisotropic exactly when the "
                f"X-ray ADPs are (add or remove its {_NEUTRON_ANISO}label row)",
                line,
            )
        if atom.label in aniso:
            values, line = aniso[atom.label]
            if any(values[n] is None for n in names):
                raise r.error(f"atom {atom.label}: a neutron U_ij is missing", line)
            u6 = np.array(
                [r.number(values[n], f"atom {atom.label} neutron {n}", line)[0] for n in names]
            )
        out.append((u6, uiso))
    return {"N": out}


def read_rhocif_su(path: str | os.PathLike, block: str | None = None) -> dict[str, float]:
    """Standard uncertainties of a rhoCIF file, by chasm parameter name.

    From the ``_chasm_su_`` loop when the file has one (exactly what was passed to
    :func:`write_rhocif`); otherwise the su's written in parentheses in the atom-site,
    aniso and multipole items (``'C1.x'``, ``'C1.U11'``, ``'C1.Pv'``, ``'C1.P11+'``,
    ``'C1.kappa_prime'``, ...). Units as the parameters.
    """
    return _read(path, block)[2]

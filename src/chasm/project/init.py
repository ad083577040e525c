"""Write a complete, commented project file from a CIF and reflection files (``chasm init``).

Everything guessed (local axes and the neighbours they use, multipole levels,
κ sets, riding H distances, data-set options) is written as a comment next to
the value and listed in :attr:`InitResult.guesses`, which the command prints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from chasm.crystal.cif import read_cif
from chasm.errors import InputError
from chasm.io.atomic import write_text_atomic
from chasm.io.shelx_hkl import read_hkl4
from chasm.io.shelx_hkl import stol as sinthl
from chasm.project.autobuild import HYDROGENS, choose_model
from chasm.refine.riding import NEUTRON_XH

__all__ = ["InitResult", "project_text", "write_project"]


@dataclass
class InitResult:
    """The text of the project file and what was guessed."""

    text: str
    guesses: list[str] = field(default_factory=list)


def _q(s: str) -> str:
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _rel(path: Path, folder: Path) -> str:
    try:
        return os.path.relpath(path.resolve(), folder.resolve())
    except ValueError:  # other drive on Windows
        return str(path.resolve())


def _stages(has_h: bool, h_lmax: int, smax: float, extinction: bool) -> list[tuple]:
    """Default strategy: (name, free patterns, smin, comment)."""
    hp = ["@H.P10"] + (["@H.P20"] if h_lmax >= 2 else [])
    ext = ["*.extinction"] if extinction else []
    pos = ["@nonH.x", "@nonH.y", "@nonH.z", "@nonH.U*"]
    hi = 0.7 if smax >= 0.9 else None
    st = [("scale", ["*.scale"] + ext, None, "scale (and extinction) only")]
    st.append(
        (
            "high-order",
            ["*.scale"] + pos,
            hi,
            "positions and ADPs of non-H atoms from high-order data, where the "
            "valence deformation hardly contributes",
        )
    )
    if has_h:
        st.append(("hydrogens", ["*.scale", "@H.U*"], None, "H displacement parameters"))
    st.append(
        (
            "monopoles",
            ["*.scale", "*.Pv", "@nonH.kappa"],
            None,
            "valence populations and kappa (electroneutrality holds)",
        )
    )
    mult = ["@nonH.P[1-9]*"] + (hp if has_h and h_lmax >= 1 else [])
    st.append(
        (
            "multipoles",
            ["*.scale", "*.Pv", "@nonH.kappa"] + mult,
            None,
            "multipoles (P00 is left out: it duplicates Pv)",
        )
    )
    st.append(
        (
            "kappa-prime",
            ["*.scale", "@nonH.kappa_prime"] + mult,
            None,
            "kappa' once the multipoles are non-zero (before, no data depend on it)",
        )
    )
    everything = (
        ["*.scale"]
        + ext
        + pos
        + (["@H.U*"] if has_h else [])
        + ["*.Pv", "@nonH.kappa", "@nonH.kappa_prime"]
        + mult
    )
    st.append(("all", everything, None, "everything together"))
    return st


def project_text(
    cif: str | Path,
    xray: list[str | Path] = (),
    project_path: str | Path = "project.toml",
    h_lmax: int = 1,
    lmax: int = 4,
    kappa_sets: str = "element",
    output: str = "refined",
    title: str | None = None,
) -> InitResult:
    """The project-file text for a CIF and X-ray HKLF 4 files.

    Raises
    ------
    InputError
        Unreadable CIF or reflection file.
    """
    cif = Path(cif)
    folder = Path(project_path).resolve().parent
    crystal = read_cif(cif)
    choices = choose_model(crystal, h_lmax=h_lmax, lmax=lmax, kappa_sets=kappa_sets)
    guesses: list[str] = []
    has_h = any(a.element in HYDROGENS for a in crystal.atoms)
    L = [
        "# chasm project file (TOML), written by `chasm init`.",
        "# Reference of every key: docs/project-file.md. Paths are relative to this file.",
        "# Lines marked GUESSED were chosen by chasm: check them.",
        "",
        f"title = {_q(title or crystal.name)}",
        f"output = {_q(output)}   # output folder: result.json, model.cif, listing.txt",
        "",
        "[structure]",
        f"cif = {_q(_rel(cif, folder))}",
        "",
        "[model]",
        'default = "hc"          # Hansen-Coppens pseudo-atoms ("iam" = spherical atoms)',
        'form_factors = "it92"   # for atoms with model = "iam"',
        f"lmax = {lmax}                # non-H atoms",
        f"h_lmax = {h_lmax}              # hydrogen atoms (bond-directed dipole P10"
        + (", quadrupole P20)" if h_lmax >= 2 else ")"),
        "h_kappa = 1.2           # kappa = kappa' of H, kept fixed",
        f"kappa_sets = {_q(kappa_sets)}  # sharing kappa, kappa': element | environment | atom",
        "riding_h = true         # H ride on their parent at neutron X-H distances "
        "(Allen & Bruno 2010)",
        "",
    ]
    for ch in choices:
        L.append(f"[model.atoms.{ch.label}]")
        L.append(f"lmax = {ch.lmax}")
        if ch.axes is not None:
            L.append(f"axes = {_q(ch.axes.as_text())}   # GUESSED: {ch.axes_reason}")
        else:
            L.append(f"# no axes: {ch.axes_reason}  (GUESSED)")
        L.append(f"kappa_set = {_q(ch.kappa_set)}")
        guesses.append(
            f"{ch.label}: axes {ch.axes.as_text() if ch.axes else 'Cartesian'} "
            f"({ch.axes_reason}); lmax {ch.lmax}; kappa set {ch.kappa_set}"
        )
        if ch.element in HYDROGENS:
            if ch.parent is None or ch.xh_distance is None:
                L.append("# GUESSED: no parent with a standard X-H distance; give both:")
                L.append('# ride_on = "X1"')
                L.append("# xh_distance = 1.0")
                guesses.append(f"{ch.label}: NO riding parent found, set ride_on/xh_distance")
            else:
                L.append(f"ride_on = {_q(ch.parent)}")
                L.append(
                    f"xh_distance = {ch.xh_distance}   # GUESSED: neutron "
                    f"{crystal.atoms[crystal.atom_index(ch.parent)].element}-H"
                )
                guesses.append(f"{ch.label}: rides on {ch.parent} at {ch.xh_distance} A")
        L.append("")
    smax_all = 0.0
    for i, f in enumerate(xray):
        f = Path(f)
        refl = read_hkl4(f)
        stol = sinthl(refl.hkl, crystal)
        smax_all = max(smax_all, float(stol.max()))
        name = "xray" if len(xray) == 1 else f"xray{i + 1}"
        wl = crystal.wavelength
        L += [
            "[[datasets]]",
            f"name = {_q(name)}",
            'kind = "xray"',
            f"file = {_q(_rel(f, folder))}",
            f'format = "hklf4"        # detected: SHELX HKLF 4, {len(refl)} reflections, '
            f"sin(theta)/lambda <= {stol.max():.3f} 1/A",
            "merge = true             # merge equivalents in the Laue class",
            'observable = "F2"',
            'weights = "sigma"        # w = 1/sigma^2 ("shelx": set shelx_a, shelx_b)',
            'extinction = "none"      # CHECK: "shelx", "bc-gauss" or "bc-lorentz" if needed',
            (
                f"wavelength = {wl}       # CHECK: from the CIF"
                if wl
                else "# wavelength = 0.71073  # CHECK: not in the CIF; needed for extinction"
            ),
            "",
        ]
        guesses.append(
            f"dataset {name}: HKLF 4, wavelength {wl or 'unknown'}, no extinction, w = 1/sigma^2"
        )
    if not xray:
        L += [
            "# [[datasets]]  -- add your data here, e.g.",
            '# name = "xray"',
            '# kind = "xray"',
            '# file = "data.hkl"',
            "",
        ]
    L += [
        "[constraints]",
        "electroneutrality = true   # sum of charges of the asymmetric unit = charge",
        "charge = 0.0",
        '# same = [["C1.U11", "C2.U11"]]        # groups sharing one value',
        '# [[constraints.equal]]  a = "N1.P*"  b = "N2.P*"   (pairwise equal)',
        "",
        "[refinement]",
        'score = "unit"',
        "tol = 0.01          # converged when max |shift|/su < tol",
        "max_cycles = 30",
        "correlation_threshold = 0.9",
        "",
        "# Strategy: stages run in order, each from where the previous ended.",
        "# Patterns: names, globs (*.kappa), element selectors (@H.U*, @nonH.x).",
    ]
    stages = _stages(has_h, h_lmax, smax_all or 1.0, False)
    for name, free, smin, comment in stages:
        L += [
            "",
            "[[stages]]",
            f"name = {_q(name)}   # {comment}",
            "free = [" + ", ".join(_q(x) for x in free) + "]",
        ]
        if smin is not None:
            L.append(f"smin = {smin}   # sin(theta)/lambda >= {smin} 1/A in this stage")
    guesses.append("strategy: " + " -> ".join(s[0] for s in stages))
    guesses.append("X-H distances: " + ", ".join(f"{k}-H {v}" for k, v in NEUTRON_XH.items()))
    return InitResult("\n".join(L) + "\n", guesses)


def write_project(out: str | Path, cif, xray=(), force: bool = False, **kwargs) -> InitResult:
    """Write :func:`project_text` to ``out`` (never over an existing file unless ``force``)."""
    out = Path(out)
    if out.exists() and not force:
        raise InputError("project file exists; choose another name or pass --force", str(out))
    res = project_text(cif, list(xray), project_path=out, **kwargs)
    write_text_atomic(out, res.text)
    return res

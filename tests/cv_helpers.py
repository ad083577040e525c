"""A tiny simulated urea project for the cross-validation tests (no external data)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import gemmi
import numpy as np

from chasm.cli import main
from chasm.project.build import build
from chasm.project.project import load_project
from chasm.scattering.engine import StructureFactorEngine


def write_hkl(path: Path, hkl, f2, sigma) -> None:
    """HKLF 4 with the terminating 0 0 0 line."""
    with open(path, "w") as fh:
        for (h, k, l), y, s in zip(hkl, f2, sigma, strict=True):
            fh.write(f"{h:4d}{k:4d}{l:4d}{y:8.2f}{s:8.2f}\n")
        fh.write(f"{0:4d}{0:4d}{0:4d}{0:8.2f}{0:8.2f}\n")


def simulated_urea(folder: Path, dmin: float = 0.9, max_cycles: int = 4, seed: int = 7) -> Path:
    """``chasm init`` on urea and F² simulated from a Hansen–Coppens truth (2 % noise).

    Returns the project file; its stages are cut to ``max_cycles`` cycles.
    """
    cif = folder / "urea.cif"
    cif.write_text(resources.files("chasm.examples").joinpath("urea.cif").read_text())
    cell = gemmi.UnitCell(5.565, 5.565, 4.684, 90, 90, 90)
    sg = gemmi.SpaceGroup("P -4 21 m")
    hkl = gemmi.make_miller_array(cell, sg, dmin)
    hkl = hkl[~sg.operations().systematic_absences(hkl)]
    hklfile = folder / "urea.hkl"
    write_hkl(hklfile, hkl, np.ones(len(hkl)), np.ones(len(hkl)))
    project = folder / "project.toml"
    assert main(["init", str(cif), "--xray", str(hklfile), "-o", str(project), "--multipoles"]) == 0
    text = project.read_text().replace("max_cycles = 30", f"max_cycles = {max_cycles}")
    project.write_text(text)
    built = build(load_project(project))
    cr, models = built.crystal, built.models
    truth = {"C1": {4: 0.12}, "O1": {4: -0.10, 1: 0.05}, "N1": {4: 0.06}}
    for atom, m in zip(cr.atoms, models, strict=True):
        for k, v in truth.get(atom.label, {}).items():
            m.plm[k] = v
    fc2 = np.abs(StructureFactorEngine(cr, models, hkl).compute().F) ** 2
    rng = np.random.default_rng(seed)
    sigma = 0.01 * 0.5 * fc2 + 0.05
    write_hkl(hklfile, hkl, 0.5 * fc2 + rng.normal(0.0, sigma), sigma)
    return project

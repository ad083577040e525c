"""Structure factors of a CIF structure for the reflections of a file (``chasm sf``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chasm.crystal.structure import Crystal

import os
from pathlib import Path

import numpy as np

from chasm.density.model import HansenCoppensAtom, SphericalAtom
from chasm.io.atomic import write_text_atomic
from chasm.scattering.engine import StructureFactorEngine

CSV_HEADER = "h,k,l,stol,F,phase_deg,A,B"


def default_models(crystal: Crystal, model: str = "iam", form_factors: str = "it92") -> list:
    """One density model per atom of ``crystal``.

    Parameters
    ----------
    crystal : Crystal
        The structure.
    model : {"iam", "hc"}
        ``"iam"``: spherical atoms with ``form_factors``; ``"hc"``: neutral
        Hansen-Coppens pseudo-atoms (databank core and valence, Pv = number of
        valence electrons, kappa = 1, no multipoles unless a model file gives
        them).
    form_factors : {"it92", "koga"}
        Source of the IAM form factors.
    """
    if model == "iam":
        return [SphericalAtom(a.element, source=form_factors) for a in crystal.atoms]
    if model == "hc":
        from chasm.scattering.formfactors import koga_atom

        models = []
        for a in crystal.atoms:
            sp = koga_atom(a.element, 0)
            models.append(HansenCoppensAtom(a.element, pv=float(sp.n_valence)))
        return models
    raise ValueError(f"unknown model {model!r}")


def read_indices(path: str | os.PathLike, cell: Any = None) -> np.ndarray:
    """Miller indices of a reflection file (HKLF 4, h k l only, or XD).

    Parameters
    ----------
    path : str or PathLike
    cell : gemmi.UnitCell or Crystal, optional
        When given, indices beyond sinθ/λ = 2.5 Å⁻¹ for this cell are refused
        (:func:`chasm.io.shelx_hkl.check_resolution`).

    Raises
    ------
    InputError
        Unreadable file or line, or an index out of range (file and line named).
    """
    from chasm.data.reflections import check_resolution
    from chasm.io.shelx_hkl import read_hkl_indices

    refl = read_hkl_indices(Path(path))
    if cell is not None:
        check_resolution(refl, cell)
    return refl.hkl


def structure_factor_table(
    structure: str | os.PathLike,
    hkl_file: str | os.PathLike,
    model: str = "iam",
    form_factors: str = "it92",
) -> dict[str, np.ndarray]:
    """Compute F for every reflection of ``hkl_file`` (input order kept).

    Returns
    -------
    dict
        ``hkl`` (n, 3), ``stol`` (1/Angstrom), ``F`` (complex, electrons).
    """
    from chasm.crystal.cif import read_cif

    crystal = read_cif(Path(structure))
    hkl = read_indices(hkl_file, crystal)
    engine = StructureFactorEngine(crystal, default_models(crystal, model, form_factors), hkl)
    res = engine.compute()
    return {"hkl": hkl, "stol": engine.stol, "F": res.F}


def write_sf_csv(path: str | os.PathLike, table: dict[str, np.ndarray]) -> None:
    """Write the ``chasm sf`` CSV atomically (temporary file, then rename)."""
    path = Path(path)
    F = np.array(table["F"], dtype=complex)
    # exact zeros (systematic absences) print as 0, not as round-off with a random phase
    tiny = 1e-12 * max(float(np.max(np.abs(F), initial=0.0)), 1.0)
    F.real[np.abs(F.real) < tiny] = 0.0
    F.imag[np.abs(F.imag) < tiny] = 0.0
    phase = np.degrees(np.angle(F))
    rows = [CSV_HEADER]
    for (h, k, l), s, f, p in zip(table["hkl"], table["stol"], F, phase, strict=True):
        rows.append(f"{h},{k},{l},{s:.6f},{abs(f):.6f},{p:.4f},{f.real:.6f},{f.imag:.6f}")
    write_text_atomic(path, "\n".join(rows) + "\n")

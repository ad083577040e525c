"""Structure factors of a CIF structure for the reflections of a file (``chasm sf``)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from chasm.density.model import HansenCoppensAtom, SphericalAtom
from chasm.scattering.engine import StructureFactorEngine

CSV_HEADER = "h,k,l,stol,F,phase_deg,A,B"


def default_models(crystal, model: str = "iam", form_factors: str = "it92") -> list:
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


def read_indices(path: str | os.PathLike) -> np.ndarray:
    """Miller indices of an HKLF 4 file, or of a file holding h k l only."""
    from chasm.io.shelx_hkl import read_hkl4, read_hkl_indices

    with open(path) as fh:  # raises a clear OSError for a missing file
        first = ""
        for line in fh:
            if line.strip():
                first = line
                break
    if len(first.split()) <= 3:
        return read_hkl_indices(path).hkl
    return read_hkl4(path).hkl


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

    crystal = read_cif(structure)
    hkl = read_indices(hkl_file)
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
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(rows) + "\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise

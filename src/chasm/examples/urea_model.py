"""The urea example: the bundled real structure with an illustrative multipole model.

Used by tests that need a small structure with atoms on special positions
(mm2 and m in P -4 21 m) and Hansen-Coppens models whose multipoles respect
the site symmetry. The populations are typical magnitudes, NOT refined values.
"""

from __future__ import annotations

from importlib.resources import as_file, files

import numpy as np

from chasm.crystal.cif import read_cif
from chasm.density.frames import local_frame
from chasm.density.harmonics import lm_labels
from chasm.density.model import HansenCoppensAtom
from chasm.density.sitesym import allowed_multipoles, multipole_projector

# local frames: atom -> (atom0 on axis 1, axis 1, atom2 for axis 2, axis 2)
FRAMES = {
    "C1": ("O1", "Z", "N1", "X"),
    "O1": ("C1", "Z", "N1", "X"),
    "N1": ("C1", "Z", "H1", "X"),
    "H1": ("N1", "Z", "C1", "X"),
    "H2": ("N1", "Z", "C1", "X"),
}
# An illustrative deformation model (typical magnitudes for C=O and C-N bonds;
# NOT refined values): Pv, kappa, lmax, {P_lm}
ILLUSTRATIVE = {
    "C1": (3.80, 1.00, 4, {"10": 0.05, "20": 0.10, "22+": 0.05, "30": 0.20, "32+": 0.20}),
    "O1": (6.30, 0.98, 4, {"10": -0.05, "20": -0.10, "22+": -0.05, "30": 0.03}),
    "N1": (5.20, 0.99, 4, {"10": 0.03, "11+": 0.05, "20": 0.03, "22+": -0.05, "33+": 0.1}),
    "H1": (0.875, 1.20, 1, {"10": 0.12}),
    "H2": (0.875, 1.20, 1, {"10": 0.12}),
}


def example_structure():
    """The bundled urea structure (Crystal)."""
    with as_file(files("chasm.examples").joinpath("urea.cif")) as path:
        return read_cif(path)


def build_models(crystal):
    """Hansen-Coppens models of the example, projected onto the allowed multipoles."""
    cart = {a.label: crystal.frac_to_cart(a.xyz) for a in crystal.atoms}
    rots = crystal.cartesian_rotations()
    models, notes = [], []
    for i, atom in enumerate(crystal.atoms):
        atom0, ax1, atom2, ax2 = FRAMES[atom.label]
        frame = local_frame(cart[atom.label], cart[atom0], cart[atom.label], cart[atom2], ax1, ax2)
        pv, kappa, lmax, pops = ILLUSTRATIVE[atom.label]
        labels = lm_labels(lmax)
        plm = np.zeros((lmax + 1) ** 2)
        for key, value in pops.items():
            plm[labels.index(key)] = value
        site = rots[crystal.site_symmetry(i)]
        plm = multipole_projector(site, frame, lmax) @ plm
        _, mask = allowed_multipoles(site, frame, lmax)
        allowed = (
            [lab for lab, ok in zip(labels, mask, strict=True) if ok] if mask is not None else []
        )
        models.append(
            HansenCoppensAtom(atom.element, pv=pv, kappa=kappa, lmax=lmax, plm=plm, frame=frame)
        )
        notes.append((atom, len(site), crystal.multiplicity(i), atom0, ax1, atom2, ax2, allowed))
    return models, notes

"""Spherical-atom refinement of real L-alanine data reproduces SHELXL.

Started from a perturbed model (every atom moved by up to 0.05 A, every U
scaled by 1.3), 83 parameters as in SHELXL's model (non-H anisotropic, H
isotropic, one scale), w = 1/sigma^2 (WGHT 0.0), IT92 with the f', f'' of
iam.cif. Coordinates and su's are compared with SHELXL's listing (iam.lst),
which prints them with more digits than the CIF: its coordinates to 1e-6 and
its su's to 1e-5 (so the su of a coordinate of 0.00007 carries a rounding
uncertainty of 7 %, allowed for below).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from chasm.crystal.cif import read_cif
from chasm.density.model import SphericalAtom
from chasm.errors import InputError
from chasm.io.shelx_hkl import read_hkl4
from chasm.refine.xray_refinement import XrayRefinement


def _shelxl_listing(path):
    """Coordinates (6 decimals, from the echoed .res) and su's (final table) per atom."""
    text = path.read_text()
    xyz = {}
    for m in re.finditer(
        r"^ (\w+)\s+\d+\s+(-?\d+\.\d{6})\s+(-?\d+\.\d{6})\s+(-?\d+\.\d{6})\s+11\.0", text, re.M
    ):
        xyz[m.group(1)] = np.array([float(m.group(i)) for i in (2, 3, 4)])
    su = {}
    start = text.index(" ATOM           x        y        z")
    table = text[start : text.index("Final Structure Factor", start)]
    lines = table.splitlines()
    for i, line in enumerate(lines):
        parts = line.split()
        if parts and parts[0] in xyz and len(parts) >= 6:
            nxt = lines[i + 1].split()
            su[parts[0]] = np.array([float(v) for v in nxt[1:4]])
    return xyz, su


def test_iam_refinement_reproduces_shelxl(shared_data):
    folder = shared_data / "xray" / "l-alanine"
    crystal = read_cif(folder / "iam.cif")
    refl = read_hkl4(folder / "iam.hkl")
    rng = np.random.default_rng(0)
    for atom in crystal.atoms:
        shift = rng.normal(size=3)
        shift *= rng.uniform(0.02, 0.05) / np.linalg.norm(shift)
        atom.xyz = atom.xyz + crystal.cart_to_frac(shift)
        atom.uiso *= 1.3
        if atom.u_aniso is not None:
            atom.u_aniso = atom.u_aniso * 1.3
    models = [SphericalAtom(a.element) for a in crystal.atoms]
    ref = XrayRefinement(crystal, models, refl)
    assert int(np.sum(ref.params.free_mask)) == 83
    result = ref.run()
    assert result.converged
    ag = ref.agreement(n_par=83)
    assert abs(ag.wr2 - 0.0637) <= 3e-4
    assert abs(ag.r1 - 0.0304) <= 3e-4
    assert abs(ag.gof - 2.251) <= 0.01
    xyz_ref, su_ref = _shelxl_listing(folder / "iam.lst")
    assert len(xyz_ref) == len(crystal.atoms) == len(su_ref)
    for atom in crystal.atoms:
        su = np.array([ref.params[f"{atom.label}.{c}"].su for c in "xyz"])
        s_ref = su_ref[atom.label]
        assert np.all(np.abs(atom.xyz - xyz_ref[atom.label]) <= 0.2 * s_ref), atom.label
        # su's within 10 %, plus the rounding of the listing's last digit
        assert np.all(np.abs(su - s_ref) <= 0.1 * s_ref + 0.5e-5), atom.label


def test_empty_dataset_is_a_clear_error(shared_data):
    folder = shared_data / "xray" / "l-alanine"
    crystal = read_cif(folder / "iam.cif")
    refl = read_hkl4(folder / "iam.hkl")
    with pytest.raises(InputError, match="no reflections"):
        XrayRefinement(
            crystal,
            [SphericalAtom(a.element) for a in crystal.atoms],
            refl.subset(np.zeros(len(refl), bool)),
        )

"""Test structures and parameter access for the structure-factor engine tests."""

from __future__ import annotations

import numpy as np

from chasm.crystal.structure import Atom, Crystal
from chasm.density.harmonics import lm_labels
from chasm.density.model import HansenCoppensAtom, SphericalAtom

U_INDEX = {"U11": 0, "U22": 1, "U33": 2, "U12": 3, "U13": 4, "U23": 5}


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A random proper rotation (QR of a Gaussian matrix)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def random_u_cif(crystal: Crystal, rng: np.random.Generator, size: float = 0.02) -> np.ndarray:
    """A positive-definite U_cif (U11 U22 U33 U12 U13 U23) for the cell."""
    from chasm.crystal.adp import ucart_to_ucif

    m = rng.normal(size=(3, 3)) * 0.3
    ucart = size * (np.eye(3) + m @ m.T * 0.3)
    return ucart_to_ucif(ucart, crystal.cell)


def hc_model(element: str, lmax: int, rng: np.random.Generator, random_frame=True):
    """A Hansen-Coppens atom with random populations and expansions."""
    nlm = (lmax + 1) ** 2
    return HansenCoppensAtom(
        element,
        pv=float(rng.uniform(2.0, 6.0)),
        kappa=float(rng.uniform(0.95, 1.1)),
        lmax=lmax,
        plm=rng.normal(scale=0.2, size=nlm),
        kappa_prime=float(rng.uniform(0.85, 1.2)),
        frame=random_rotation(rng) if random_frame else np.eye(3),
    )


def get_parameter(crystal: Crystal, models, name: str) -> float:
    label, par = name.split(".", 1)
    i = crystal.atom_index(label)
    atom, model = crystal.atoms[i], models[i]
    return _access(atom, model, par)


def set_parameter(crystal: Crystal, models, name: str, value: float) -> None:
    label, par = name.split(".", 1)
    i = crystal.atom_index(label)
    _access(crystal.atoms[i], models[i], par, value)


def _access(atom, model, par, value=None):
    def put(obj, attr, idx=None):
        if idx is None:
            if value is not None:
                setattr(obj, attr, value)
            return getattr(obj, attr)
        arr = getattr(obj, attr)
        if value is not None:
            arr[idx] = value
        return arr[idx]

    if par in ("x", "y", "z"):
        return put(atom, "xyz", "xyz".index(par))
    if par in U_INDEX:
        return put(atom, "u_aniso", U_INDEX[par])
    if par == "Uiso":
        return put(atom, "uiso")
    if par == "occ":
        return put(atom, "occupancy")
    if par == "Pv":
        return put(model, "pv")
    if par == "kappa":
        return put(model, "kappa")
    if par == "kappa_prime":
        return put(model, "kappa_prime")
    if par.startswith("P"):
        return put(model, "plm", lm_labels(model.lmax).index(par[1:]))
    raise KeyError(par)


def mixed_structure(spacegroup: str, cell, rng, special=()):
    """A structure with HC (lmax 4, 2, 1), IAM IT92 and Koga atoms, iso and aniso ADPs.

    ``special`` lists fractional positions of extra atoms on special positions.
    """
    positions = rng.uniform(0.05, 0.95, size=(5, 3))
    elements = ["Cu", "O", "N", "C", "H"]
    atoms = []
    for k, (el, x) in enumerate(zip(elements, positions, strict=True)):
        atoms.append(Atom(f"{el}{k + 1}", el, x, occupancy=float(rng.uniform(0.7, 1.0)), uiso=0.02))
    for k, x in enumerate(special):
        atoms.append(Atom(f"S{k + 1}", "S", np.asarray(x, float), uiso=0.015))
    crystal = Crystal.from_parts(
        cell, spacegroup, atoms, dispersion={"Cu": (0.3, 1.2), "O": (0.01, 0.006)}
    )
    for a in crystal.atoms[:3]:
        a.u_aniso = random_u_cif(crystal, rng)
    models = [
        hc_model("Cu", 4, rng),
        hc_model("O", 2, rng),
        SphericalAtom("N", "it92"),
        SphericalAtom("C", "koga"),
        hc_model("H", 1, rng),
    ]
    models += [hc_model("S", 4, rng, random_frame=False) for _ in special]
    return crystal, models


def random_hkl(n: int, rng: np.random.Generator, hmax: int = 6) -> np.ndarray:
    hkl = rng.integers(-hmax, hmax + 1, size=(n, 3))
    return hkl[np.any(hkl != 0, axis=1)]

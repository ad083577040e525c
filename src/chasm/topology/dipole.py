"""Dipole moment of a molecule of the crystal from the Hansen–Coppens populations.

A molecule is grown from one atom of the asymmetric unit through covalent
bonds (:func:`chasm.crystal.neighbours.bonded`), symmetry copies included, so
that a molecule on a special position is whole. Its dipole moment about its
centre of nuclear charge is

    μ = Σ_atoms q_a (r_a − r_c) + Σ_atoms d_a,

with q_a the net charge of the atom (Z minus core, valence and P00
electrons, times the occupancy) and d_a its dipole from the l = 1 multipoles:
for the density S_1(r) A_1(u), A_1 = c·u, the charge dipole is
−(4π/3) c ∫ r³ S_1(r) dr. The result is the moment of the multipole model
(the atoms' own densities), not of a partition of the crystal density: for a
molecule with a net charge it depends on the origin (the centre of nuclear
charge here, said in the output). Units: e·Å (1 e·Å = 4.80320 D).

Standard uncertainties: linear propagation, σ² = Jᵀ C J, with J the
derivative of μ with respect to the density parameters (populations exactly,
κ and κ′ by central differences); positions are held fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import gamma as gamma_fn
from math import pi
from typing import TYPE_CHECKING

import gemmi
import numpy as np

from chasm.crystal.neighbours import bonded
from chasm.errors import InputError
from chasm.topology.bcp import perturbed_pair
from chasm.topology.density_derivatives import DensityField

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from chasm.crystal.structure import Crystal

__all__ = ["EA_TO_DEBYE", "dipole_moment", "molecule"]

EA_TO_DEBYE = 4.80320
"""1 e·Å in debye."""
_MAX_ATOMS = 2000


def molecule(crystal, label: str) -> list[tuple[int, np.ndarray]]:
    """Atoms (index, fractional position) of the molecule containing atom ``label``.

    Raises
    ------
    InputError
        An unknown label, or a bonded network that does not close (a polymer
        or framework has no molecular dipole).
    """
    labels = [a.label for a in crystal.atoms]
    if label not in labels:
        raise InputError(
            f"molecule: unknown atom label {label!r}; the atoms are {', '.join(labels)}"
        )
    rot, trans = crystal.symops
    i0 = labels.index(label)
    members = [(i0, np.array(crystal.atoms[i0].xyz, float), np.eye(3), np.zeros(3))]
    queue = [0]
    bonds = {i: bonded(crystal, i) for i in range(len(labels))}
    while queue:
        j, x, R, t = members[queue.pop()]
        for nb in bonds[j]:
            y = R @ np.asarray(nb.frac, float) + t
            if any(
                m[0] == nb.index and np.linalg.norm(crystal.A @ (m[1] - y)) < 1e-3 for m in members
            ):
                continue
            Rn = R @ rot[nb.op]
            tn = R @ (trans[nb.op] + np.asarray(nb.shift, float)) + t
            members.append((nb.index, y, Rn, tn))
            queue.append(len(members) - 1)
            if len(members) > _MAX_ATOMS:
                raise InputError(
                    f"molecule: the atoms bonded to {label} do not close into a molecule "
                    f"(more than {_MAX_ATOMS} atoms: a polymer or framework has no "
                    "molecular dipole)"
                )
    return [(m[0], m[1]) for m in members]


def _site_moments(field_: DensityField, crystal):
    """Per atom index: (sites frac, charge per site, dipole per site (n, 3)) in e and e·Å."""
    out = {}
    for t, _ in field_.atoms:
        atom = crystal.atoms[t.index]
        n_site = len(t.sites.frac)
        z = gemmi.Element(atom.element).atomic_number * float(atom.occupancy)
        n_e = 0.0
        if t.WW.size:
            g = np.array([gamma_fn(x) for x in t.kk + 3.0])
            n_e = 4.0 * pi * float(np.sum(t.WW * g / t.ZZ ** (t.kk + 3.0)))
        q = np.full(n_site, z - n_e)
        d = np.zeros((n_site, 3))
        for lmax, n_l, zeta, _c, norms, exps, coefs in t.mult:
            if lmax >= 0:
                m0 = gamma_fn(n_l[0] + 3) / zeta ** (n_l[0] + 3)
                q -= 4.0 * pi * norms[0] * m0 * coefs[0][0]
            if lmax >= 1:
                m1 = gamma_fn(n_l[1] + 4) / zeta ** (n_l[1] + 4)
                lin = [
                    int(np.flatnonzero((exps == e).all(axis=1))[0]) for e in np.eye(3, dtype=int)
                ]
                d -= (4.0 * pi / 3.0) * norms[1] * m1 * coefs[1][lin].T
        out[t.index] = (t.sites.frac, q * t.sites.weight, d * t.sites.weight[:, None])
    return out


def _dipole(crystal, models, members) -> tuple[np.ndarray, float]:
    moments = _site_moments(DensityField(crystal, models, "charge"), crystal)
    zs = np.array([gemmi.Element(crystal.atoms[i].element).atomic_number for i, _ in members])
    cart = np.array([crystal.A @ x for _, x in members])
    centre = (zs[:, None] * cart).sum(axis=0) / zs.sum()
    mu = np.zeros(3)
    total = 0.0
    for (i, x), c in zip(members, cart, strict=True):
        if i not in moments:
            continue
        frac, q, d = moments[i]
        diff = frac - (x - np.floor(x))
        diff -= np.round(diff)
        s = int(np.argmin(np.linalg.norm(diff @ crystal.A.T, axis=1)))
        mu += q[s] * (c - centre) + d[s]
        total += q[s]
    return mu, total


def dipole_moment(
    crystal: Crystal,
    models: Sequence,
    label: str,
    names: Sequence[str] | None = None,
    cov: ArrayLike | None = None,
) -> dict:
    """Dipole moment of the molecule containing ``label``, with su from a covariance.

    Returns
    -------
    dict
        ``atoms`` (labels of the members), ``charge_e`` (net charge), ``origin``,
        ``vector_eA`` and ``magnitude_eA`` / ``magnitude_D`` with their su
        (``su_...``, None without a covariance).
    """
    members = molecule(crystal, label)
    mu, total = _dipole(crystal, models, members)
    out = {
        "atoms": [crystal.atoms[i].label for i, _ in members],
        "charge_e": float(total),
        "origin": "centre of nuclear charge",
        "vector_eA": [float(v) for v in mu],
        "magnitude_eA": float(np.linalg.norm(mu)),
        "magnitude_D": float(np.linalg.norm(mu) * EA_TO_DEBYE),
        "su_vector_eA": None,
        "su_magnitude_eA": None,
        "su_magnitude_D": None,
    }
    if names is None or cov is None:
        return out
    labels = [a.label for a in crystal.atoms]
    J = np.zeros((len(names), 3))
    for j, name in enumerate(names):
        pair = perturbed_pair(models, labels, name)
        if pair is None:
            continue
        i, plus, minus, delta = pair
        mp = list(models)
        mp[i] = plus
        mm = list(models)
        mm[i] = minus
        J[j] = (_dipole(crystal, mp, members)[0] - _dipole(crystal, mm, members)[0]) / (2 * delta)
    cov = np.asarray(cov, float)
    cmu = J.T @ cov @ J
    n = np.linalg.norm(mu)
    u = mu / n if n > 0 else np.zeros(3)
    su_mag = float(np.sqrt(max(u @ cmu @ u, 0.0)))
    out["su_vector_eA"] = [float(v) for v in np.sqrt(np.maximum(np.diag(cmu), 0.0))]
    out["su_magnitude_eA"] = su_mag
    out["su_magnitude_D"] = su_mag * EA_TO_DEBYE
    return out

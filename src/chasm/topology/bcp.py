"""Bond critical points: properties, bond paths and standard uncertainties.

At a (3,−1) point of the charge density, with λ1 ≤ λ2 < 0 < λ3 the Hessian
eigenvalues:

* ρ (e/Å³), ∇²ρ = λ1 + λ2 + λ3 (e/Å⁵), the curvatures, the ellipticity
  ε = λ1/λ2 − 1, the distances from the point to the two bonded nuclei (Å,
  the ends of the bond path) and the bond-path length;
* the energy densities of Abramov (Acta Cryst. A53 (1997) 264), in atomic
  units (hartree/bohr³, ρ in e/bohr³, ∇²ρ in e/bohr⁵):
  G = (3/10)(3π²)^(2/3) ρ^(5/3) + ∇²ρ/6, the local virial theorem
  V = ∇²ρ/4 − 2G, and H = G + V. The kinetic-energy functional is a
  gradient expansion meant for closed-shell interactions and the
  surroundings of their BCPs (∇²ρ > 0); for shared bonds it is reported as
  is and should be read with that caveat.

Bond paths are traced by gradient ascent (midpoint rule, steps of 0.02 Å
growing to 0.1 Å away from the nuclei) from the BCP along ± the eigenvector
of λ3 until they come within 0.05 Å of a nucleus.

Standard uncertainties (linear propagation, :func:`bcp_uncertainties`):
every quantity q is a function of ρ and the Hessian at the point, which
depend on the populations linearly and on κ, κ′ smoothly. The derivatives
∂(ρ, ∇∇ρ)/∂p come from the analytic evaluation of the density of the one
atom the parameter belongs to, perturbed by ±δ (exact for the populations,
which enter linearly; δ = 1e-4 for κ and κ′, error O(δ²)); ∂q/∂(ρ, ∇∇ρ) is
analytic (first-order perturbation of the eigenvalues). Then
σ_q² = Jᵀ C J with C the covariance of the parameters. The point is held at
the BCP of the refined model: its shift moves ρ only to second order, the
curvatures through the third derivatives of ρ (omitted). Positional,
displacement and scale parameters do not enter the static density's
derivatives at a fixed point except through that shift, and are left out.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from chasm.density.harmonics import lm_labels
from chasm.density.model import HansenCoppensAtom, SplitAtom
from chasm.density.radial import BOHR
from chasm.topology.critical_points import CriticalPoint, _nuclei
from chasm.topology.density_derivatives import DensityField

__all__ = [
    "QUANTITIES",
    "BondCriticalPoint",
    "bcp_quantities",
    "bcp_uncertainties",
    "bond_critical_points",
]

QUANTITIES = ("rho", "laplacian", "lambda1", "lambda2", "lambda3", "ellipticity", "G", "V", "H")
"""Order of the quantities of :func:`bcp_quantities`."""

_CF = 0.3 * (3.0 * np.pi**2) ** (2.0 / 3.0)  # Thomas-Fermi constant (a.u.)
_RHO_AU = BOHR**3  # e/Å³ -> e/bohr³
_LAP_AU = BOHR**5  # e/Å⁵ -> e/bohr⁵
_DELTA = 1e-4


def bcp_quantities(rho: float, hess: np.ndarray) -> np.ndarray:
    """ρ, ∇²ρ, λ1..3, ε, G, V, H from the density and its Hessian at a point.

    Parameters
    ----------
    rho : float
        e/Å³.
    hess : ndarray, shape (3, 3)
        e/Å⁵.

    Returns
    -------
    ndarray, shape (9,)
        In the order of :data:`QUANTITIES`: e/Å³, e/Å⁵ (four values),
        dimensionless, and hartree/bohr³ (G, V, H).
    """
    lam = np.linalg.eigvalsh(hess)
    lap = float(lam.sum())
    r_au, l_au = rho * _RHO_AU, lap * _LAP_AU
    G = _CF * np.sign(r_au) * abs(r_au) ** (5.0 / 3.0) + l_au / 6.0
    V = l_au / 4.0 - 2.0 * G
    return np.array([rho, lap, *lam, lam[0] / lam[1] - 1.0, G, V, G + V])


def _linearised(rho: float, hess: np.ndarray, drho: np.ndarray, dhess: np.ndarray) -> np.ndarray:
    """∂q/∂p (9, n_par) from ∂ρ/∂p (n_par,) and ∂H/∂p (n_par, 3, 3)."""
    lam, vec = np.linalg.eigh(hess)
    dlam = np.einsum("ia,pij,ja->ap", vec, dhess, vec)  # first-order eigenvalue shifts
    dlap = dlam.sum(axis=0)
    deps = dlam[0] / lam[1] - lam[0] * dlam[1] / lam[1] ** 2
    r_au = rho * _RHO_AU
    dG = (5.0 / 3.0) * _CF * abs(r_au) ** (2.0 / 3.0) * drho * _RHO_AU + dlap * _LAP_AU / 6.0
    dV = dlap * _LAP_AU / 4.0 - 2.0 * dG
    return np.vstack([drho, dlap, dlam, deps, dG, dV, dG + dV])


@dataclass
class BondCriticalPoint:
    """A (3,−1) point with its bonded atoms and properties.

    Attributes
    ----------
    point : CriticalPoint
    atoms : tuple of str
        Labels of the two nuclei the bond path ends at ("?" if not reached).
    distances : tuple of float
        Distance (Å) from the point to each of those nuclei.
    internuclear : float
        Distance between the two nuclei (Å).
    path_length : float
        Length of the bond path (Å).
    values : dict
        :data:`QUANTITIES` -> value.
    su : dict
        :data:`QUANTITIES` -> standard uncertainty (empty without covariance).
    spin : dict
        Spin density (μB/Å³) and its Laplacian (μB/Å⁵) at the point, for a
        model with spin-split atoms.
    """

    point: CriticalPoint
    atoms: tuple[str, str]
    distances: tuple[float, float]
    internuclear: float
    path_length: float
    values: dict
    su: dict = field(default_factory=dict)
    spin: dict = field(default_factory=dict)


def _trace_paths(field_: DensityField, starts: np.ndarray, step: float = 0.02, n_max: int = 400):
    """Gradient ascent from the starts; returns end index into the nuclei, length (Å).

    The step is ``step`` near the start and grows to a quarter of the distance
    to the nearest nucleus (at most 0.1 Å) on the way; a path that stalls
    (|∇ρ| < 1e-8, a non-nuclear maximum) or runs out of steps has no end (-1).
    """
    nuc, labels = _nuclei(field_.crystal)
    x = starts.copy()
    length = np.zeros(len(x))
    end = np.full(len(x), -1)
    active = np.ones(len(x), dtype=bool)
    for _ in range(n_max):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        d = np.linalg.norm(x[idx, None, :] - nuc[None], axis=2)
        dmin = d.min(axis=1)
        near = dmin < 0.05
        end[idx[near]] = d[near].argmin(axis=1)
        length[idx[near]] += dmin[near]
        active[idx[near]] = False
        idx, dmin = idx[~near], dmin[~near]
        if idx.size == 0:
            break
        h = np.clip(0.25 * dmin, step, 0.1)[:, None]
        _, g, _ = field_(x[idx], order=1)
        gn = np.linalg.norm(g, axis=1)
        stall = gn < 1e-8
        active[idx[stall]] = False
        u = g / np.maximum(gn, 1e-300)[:, None]
        _, g2, _ = field_(x[idx] + 0.5 * h * u, order=1)
        u2 = g2 / np.maximum(np.linalg.norm(g2, axis=1), 1e-300)[:, None]
        move = ~stall
        x[idx[move]] += (h * u2)[move]
        length[idx[move]] += h[move, 0]
    return end, length, nuc, labels


def bond_critical_points(field_: DensityField, points: Sequence[CriticalPoint], spin=None):
    """Bond paths and properties of the (3,−1) points.

    Parameters
    ----------
    field_ : DensityField
        The charge density.
    points : sequence of CriticalPoint
        Critical points; only the (3,−1) ones are used.
    spin : DensityField, optional
        A spin density, evaluated at each point.

    Returns
    -------
    list of BondCriticalPoint
    """
    bcps = [p for p in points if p.kind == "(3,-1)"]
    if not bcps:
        return []
    e3 = np.array([p.eigenvectors[:, 2] for p in bcps])
    x0 = np.array([p.cart for p in bcps])
    starts = np.concatenate([x0 + 0.01 * e3, x0 - 0.01 * e3])
    end, length, nuc, labels = _trace_paths(field_, starts)
    n = len(bcps)
    out = []
    spin_vals = spin(x0, order=2) if spin is not None else None
    for k, p in enumerate(bcps):
        ends = (end[k], end[n + k])
        atoms = tuple(labels[e] if e >= 0 else "?" for e in ends)
        dist = tuple(float(np.linalg.norm(nuc[e] - p.cart)) if e >= 0 else np.nan for e in ends)
        inter = float(np.linalg.norm(nuc[ends[0]] - nuc[ends[1]])) if min(ends) >= 0 else np.nan
        q = bcp_quantities(p.rho, p.eigenvectors @ np.diag(p.eigenvalues) @ p.eigenvectors.T)
        b = BondCriticalPoint(
            p,
            atoms,
            dist,
            inter,
            float(length[k] + length[n + k] + 0.02),
            dict(zip(QUANTITIES, map(float, q), strict=True)),
        )
        if spin_vals is not None:
            b.spin = {
                "rho": float(spin_vals[0][k]),
                "laplacian": float(np.trace(spin_vals[2][k])),
            }
        out.append(b)
    return out


# --------------------------------------------------------------------------- uncertainties
def _split_name(name: str):
    parts = name.split(".")
    if len(parts) < 2:
        return None
    label, kind = parts[0], parts[1]
    suffix = parts[2] if len(parts) > 2 else None
    return label, kind, suffix


def _perturbed(model, kind: str, suffix: str | None, delta: float):
    """A copy of an atom model with one parameter moved by delta (None if not a density one)."""
    m = copy.deepcopy(model)
    if isinstance(m, SplitAtom):
        if suffix in ("up", "dn"):
            targets, deltas = [getattr(m, suffix)], [delta]
        elif suffix == "spin":  # chargespin basis: P↑ = (P + S)/2, P↓ = (P − S)/2
            targets, deltas = [m.up, m.dn], [0.5 * delta, -0.5 * delta]
        else:
            targets, deltas = [m.up, m.dn], [0.5 * delta, 0.5 * delta]
            if kind in ("kappa", "kappa_prime"):
                deltas = [delta, delta]
    elif isinstance(m, HansenCoppensAtom) and suffix is None:
        targets, deltas = [m], [delta]
    else:
        return None
    for t, d in zip(targets, deltas, strict=True):
        if kind == "Pv":
            t.pv += d
        elif kind in ("kappa", "kappa_prime"):
            setattr(t, kind, getattr(t, kind) + d)
        elif kind.startswith("P") and t.lmax >= 0 and kind[1:] in lm_labels(t.lmax):
            t.plm = t.plm.copy()
            t.plm[lm_labels(t.lmax).index(kind[1:])] += d
        else:
            return None
    return m


def perturbed_pair(models, labels: Sequence[str], name: str):
    """(atom index, model + δ, model − δ, δ) for one named density parameter, else None.

    δ is 1 for the populations (which enter linearly) and 1e-4 for κ and κ′.
    """
    parsed = _split_name(name)
    if parsed is None or parsed[0] not in labels:
        return None
    label, kind, suffix = parsed
    i = list(labels).index(label)
    delta = _DELTA if kind in ("kappa", "kappa_prime") else 1.0
    plus = _perturbed(models[i], kind, suffix, delta)
    if plus is None:
        return None
    return i, plus, _perturbed(models[i], kind, suffix, -delta), delta


def density_jacobian(crystal, models, names: Sequence[str], x: np.ndarray, kind: str = "charge"):
    """∂ρ/∂p (n_par, n) and ∂∇∇ρ/∂p (n_par, n, 3, 3) at points x for the named parameters.

    Parameters that do not change the static density at a fixed point (positions,
    ADPs, scale...) get zero rows.
    """
    labels = [a.label for a in crystal.atoms]
    x = np.asarray(x, dtype=float).reshape(-1, 3)
    drho = np.zeros((len(names), len(x)))
    dhess = np.zeros((len(names), len(x), 3, 3))
    for j, name in enumerate(names):
        pair = perturbed_pair(models, labels, name)
        if pair is None:
            continue
        i, plus, minus, delta = pair
        if kind == "spin" and not isinstance(models[i], SplitAtom):
            continue
        only = [None] * len(models)
        only[i] = plus
        rp, _, hp = DensityField(crystal, only, kind)(x, order=2)
        only[i] = minus
        rm, _, hm = DensityField(crystal, only, kind)(x, order=2)
        drho[j] = (rp - rm) / (2 * delta)
        dhess[j] = (hp - hm) / (2 * delta)
    return drho, dhess


def bcp_uncertainties(
    crystal, models, bcps: Sequence[BondCriticalPoint], names: Sequence[str], cov: np.ndarray
) -> None:
    """Fill ``su`` of every BCP from the covariance of the named parameters.

    Parameters
    ----------
    crystal, models
        The model whose density was searched.
    bcps : sequence of BondCriticalPoint
        Updated in place.
    names : sequence of str
        Parameter names (``'C1.Pv'``, ``'C1.P20'``, ``'C1.kappa'``, ``'Cu1.P20.up'``...).
    cov : ndarray, shape (n_par, n_par)
        Their covariance.
    """
    if not bcps:
        return
    cov = np.asarray(cov, dtype=float)
    x = np.array([b.point.cart for b in bcps])
    drho, dhess = density_jacobian(crystal, models, names, x)
    for k, b in enumerate(bcps):
        p = b.point
        hess = p.eigenvectors @ np.diag(p.eigenvalues) @ p.eigenvectors.T
        J = _linearised(p.rho, hess, drho[:, k], dhess[:, k])
        var = np.sum((J @ cov) * J, axis=1)  # diag(J C Jᵀ) by one matrix product
        b.su = dict(zip(QUANTITIES, map(float, np.sqrt(np.maximum(var, 0.0))), strict=True))

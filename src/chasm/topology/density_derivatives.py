"""Static Hansen–Coppens density with its analytic gradient and Hessian.

The density is the same sum as :func:`chasm.maps.density.model_density`
(over the atoms of the asymmetric unit, their symmetry copies merged per
site, and lattice translations), evaluated here with its first and second
derivatives in Cartesian coordinates (Å):

* a spherical term f(r) (core Pc ρ_c, valence Pv κ³ρ_v(κr)) is summed exactly
  from the databank's exponential terms Σ W r^k e^(−Zr) (no table), so
  ∇f = f′ u and ∇∇f = f″ uuᵀ + (f′/r)(1 − uuᵀ), with u = v/r the unit vector
  from the copy to the point;
* a multipole term S_l(r) A_l(u), with S_l = κ′³R_l(κ′r) the Slater function
  and A_l = Σ_m P_lm d_lm(u) in the Cartesian frame of the copy: the chain
  rule through u = v/r with ∂u_i/∂v_j = (δ_ij − u_i u_j)/r and
  ∂²u_i/∂v_j∂v_k = (3u_i u_j u_k − δ_ij u_k − δ_ik u_j − δ_jk u_i)/r².

Units: ρ in e/Å³ (μB/Å³ for the spin density), ∇ρ in e/Å⁴, ∇∇ρ in e/Å⁵.

Cut-off: every atom copy contributes within the radius where a bound of its
density (Σ |W| r^k e^(−Zr) plus Σ_l N_l r^n e^(−ζr) Σ_m |P_lm| max|d_lm|)
falls below ``eps`` (default 1e-9 e/Å³), so the truncation changes ρ by at
most ~eps per copy.

The nucleus itself (r = 0) is a cusp: the derivatives are not defined there
and points closer than 1e-8 Å to a nucleus get that copy's value only.

Evaluation: the sums run in the compiled kernel of
:mod:`chasm.topology.density_kernel` (numba) when it is installed; the numpy
path (:meth:`DensityField._call_numpy`, arrays of (copy, point) pairs) is the
reference, used with ``exact=True`` or ``CHASM_ENGINE=numpy``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from math import factorial, pi

import numpy as np

from chasm.density.databank import spherical_atom
from chasm.density.harmonics import density_to_wavefunction, rotation_matrix_full
from chasm.density.model import HansenCoppensAtom, SphericalAtom, SplitAtom
from chasm.errors import InputError
from chasm.maps.grids import atom_sites, check_points, lattice_candidates
from chasm.topology.density_kernel import PackedField, use_kernel
from chasm.topology.harmonic_derivatives import monomial_basis, polynomials_with_derivatives
from chasm.topology.radial_table import QuinticTable, exponential_sum

__all__ = ["DEFAULT_EPS", "DensityField", "KINDS"]

DEFAULT_EPS = 1e-9
"""Density (e/Å³) below which an atom copy is neglected at a point."""

KINDS = ("charge", "spin")
_CHUNK = 20_000  # (copy, point) pairs evaluated at once
_NUCLEUS = 1e-8  # Å


@lru_cache(maxsize=256)
def _species_terms(element: str, charge: int, valence: tuple[str, ...] | None):
    """(k, Z, w) of core and valence (per electron) and n_valence, density Σ w r^k e^-Zr / 4π."""
    try:
        atom = spherical_atom(element, charge, valence=None if valence is None else list(valence))
    except (KeyError, ValueError) as exc:
        raise InputError(
            f"no databank density for {element} (charge {charge}, valence {valence}): {exc}"
        ) from exc
    out = []
    for t in (atom.core_transform, atom.valence_transform):
        k = np.asarray(t.N, dtype=float) - 2.0
        k, Z, w = k, np.asarray(t.Z, float), np.asarray(t.w, float) / (4.0 * pi)
        out.append((k, Z, w, QuinticTable(k, Z, w)))
    return out[0], out[1], float(atom.n_valence)


@dataclass(eq=False)
class _AtomSum:
    """All density terms around the copies of one atom (weights already applied)."""

    k: list = field(default_factory=list)
    Z: list = field(default_factory=list)
    W: list = field(default_factory=list)
    tables: list = field(default_factory=list)  # (table, scale, kappa)
    is_core: list = field(default_factory=list)  # per table: a core density
    multipoles: list = field(default_factory=list)  # (lmax, n_l, zeta, plm, frame)

    def spherical(self, terms, scale: float, kappa: float = 1.0, core: bool = False) -> None:
        """Add scale κ³ Σ w (κr)^k e^(−Zκr) (``core``: a core density)."""
        if scale == 0.0:
            return
        k, Z, w, table = terms
        self.tables.append((table, scale, kappa))
        self.is_core.append(core)
        self.k.append(k)
        self.Z.append(Z * kappa)
        self.W.append(scale * w * kappa ** (3.0 + k))

    def add_model(self, label: str, model, core: bool, valence: bool, sign: float) -> None:
        if model is None:
            return
        if isinstance(model, SphericalAtom):
            ct, vt, nv = _species_terms(model.element, int(model.charge), None)
            if core:
                self.spherical(ct, sign, core=True)
            if valence:
                self.spherical(vt, sign * nv)
            return
        if not isinstance(model, HansenCoppensAtom):
            raise InputError(
                f"atom {label}: a {type(model).__name__} has no static density "
                "(expected SphericalAtom, HansenCoppensAtom or SplitAtom)"
            )
        if model.kappa <= 0 or model.kappa_prime <= 0:
            raise InputError(f"atom {label}: kappa and kappa_prime must be positive")
        vkey = tuple(model.valence) if model.valence else None
        ct, vt, _ = _species_terms(model.element, int(model.charge), vkey)
        if core:
            self.spherical(ct, sign * model.pc, core=True)
        if valence:
            self.spherical(vt, sign * model.pv, float(model.kappa))
        if model.lmax >= 0 and np.any(model.plm != 0.0):
            frame = np.asarray(model.frame, dtype=float)
            if frame.shape != (3, 3) or np.abs(frame.T @ frame - np.eye(3)).max() > 1e-6:
                raise InputError(f"atom {label}: the local frame is not an orthonormal 3x3 matrix")
            zeta = float(model.zeta) * float(model.kappa_prime)
            self.multipoles.append(
                (int(model.lmax), tuple(int(n) for n in model.n_l), zeta, sign * model.plm, frame)
            )

    def finish(self, crystal, i: int, scale: float, eps: float):
        """Concatenate, rotate populations per site; return the cut-off radius (Å)."""
        self.sites = atom_sites(crystal, i)
        self.kk = np.concatenate(self.k) if self.k else np.zeros(0)
        self.ZZ = np.concatenate(self.Z) if self.Z else np.zeros(0)
        self.WW = scale * np.concatenate(self.W) if self.W else np.zeros(0)
        self.tables = [(t, scale * s, kap) for t, s, kap in self.tables]
        self.mult = []
        q = crystal.cartesian_rotations()
        for lmax, n_l, zeta, plm, frame in self.multipoles:
            d = rotation_matrix_full(q @ frame, lmax)
            c = density_to_wavefunction(lmax)
            rotated = np.einsum("oij,j->oi", d, c * plm) / c
            cart = np.array([rotated[g].sum(axis=0) / self.sites.order for g in self.sites.groups])
            norms = np.array([zeta ** (n + 3) / factorial(n + 2) for n in n_l])
            exps, T = monomial_basis(lmax)
            # per site and l: coefficients of A_l(u) = Σ_m P_lm d_lm(u) on the monomials
            coefs = np.stack(
                [
                    (scale * cart[:, l * l : (l + 1) ** 2] @ T[l * l : (l + 1) ** 2]).T
                    for l in range(lmax + 1)
                ]
            )  # (l, n_mono, n_sites)
            self.mult.append((lmax, n_l, zeta, scale * cart, norms, exps, coefs))
        return self._radius(eps)

    def _bound(self, r: float) -> float:
        total = float(np.sum(np.abs(self.WW) * r**self.kk * np.exp(-self.ZZ * r)))
        for lmax, n_l, zeta, cart, norms, *_ in self.mult:
            for l in range(lmax + 1):
                p = np.abs(cart[:, l * l : (l + 1) ** 2]).sum(axis=1).max()
                total += 3.0 * norms[l] * p * r ** n_l[l] * np.exp(-zeta * r)
        return total

    def _radius(self, eps: float) -> float:
        if self.WW.size == 0 and not self.mult:
            return 0.0
        r = 30.0
        if self._bound(r) > eps:
            return r
        lo, hi = 0.5, r
        while hi - lo > 1e-2:
            mid = 0.5 * (lo + hi)
            if self._bound(mid) > eps:
                lo = mid
            else:
                hi = mid
        # the bound is not monotonic near r = 0; it is beyond the maximum of r^k e^-Zr
        return max(hi, 2.0)


def _spherical_derivs(f1, f2, r, u, order):
    grad = f1[:, None] * u
    if order < 2:
        return grad, None
    uu = u[:, :, None] * u[:, None, :]
    eye = np.eye(3)[None]
    hess = f2[:, None, None] * uu + (f1 / r)[:, None, None] * (eye - uu)
    return grad, hess


def slater_radial(norm: float, nn: int, zeta: float, r: np.ndarray):
    """S = norm r^n e^(−ζr) with its first and second r-derivatives."""
    e = np.exp(-zeta * r)
    S = norm * r**nn * e
    S1 = norm * (nn * r ** max(nn - 1, 0) * (nn >= 1) - zeta * r**nn) * e
    S2 = (
        norm
        * (
            nn * (nn - 1) * r ** max(nn - 2, 0) * (nn >= 2)
            - 2.0 * zeta * nn * r ** max(nn - 1, 0) * (nn >= 1)
            + zeta * zeta * r**nn
        )
        * e
    )
    return S, S1, S2


def radial_times_angular(S, S1, S2, A, g, Hu, u, r, order):
    """Value, gradient and Hessian (in v = r u) of S(r) A(u).

    Parameters
    ----------
    S, S1, S2 : ndarray, shape (n,)
        The radial function and its first and second r-derivatives.
    A, g, Hu : ndarray, shapes (n,), (n, 3), (n, 3, 3)
        The angular polynomial, its gradient and Hessian in u.
    u, r : ndarray
        Unit vectors (n, 3) and radii (n,).
    order : int
        Highest derivative wanted (gradient/Hessian None above it).
    """
    val = S * A
    if order < 1:
        return val, None, None
    ug = np.einsum("ij,ij->i", u, g)
    gv = (g - u * ug[:, None]) / r[:, None]  # ∇_v A
    grad = (S1 * A)[:, None] * u + S[:, None] * gv
    if order < 2:
        return val, grad, None
    uu = u[:, :, None] * u[:, None, :]
    eye = np.eye(3)[None]
    proj = eye - uu
    Hv = proj @ Hu @ proj
    Hv -= (
        g[:, :, None] * u[:, None, :]
        + u[:, :, None] * g[:, None, :]
        + ug[:, None, None] * eye
        - 3.0 * ug[:, None, None] * uu
    )
    Hv /= (r * r)[:, None, None]
    cross = u[:, :, None] * gv[:, None, :] + gv[:, :, None] * u[:, None, :]
    hess = (
        (S2 * A)[:, None, None] * uu
        + (S1 * A / r)[:, None, None] * proj
        + S1[:, None, None] * cross
        + S[:, None, None] * Hv
    )
    return val, grad, hess


def _multipole_pairs(term, v, r, u, site, order):
    """Value, gradient and Hessian of Σ_l S_l(r) A_l(u) for the pairs."""
    lmax, n_l, zeta, cart, norms, exps, coefs = term
    active = [l for l in range(lmax + 1) if np.any(coefs[l])]
    Av, Ag, Ah = polynomials_with_derivatives(u, exps, coefs[active][:, :, site], order)
    n = len(r)
    val = np.zeros(n)
    grad = np.zeros((n, 3))
    hess = np.zeros((n, 3, 3)) if order >= 2 else None
    for q, l in enumerate(active):
        S, S1, S2 = slater_radial(norms[l], n_l[l], zeta, r)
        mv, mg, mh = radial_times_angular(
            S,
            S1,
            S2,
            Av[q],
            Ag[q] if order >= 1 else None,
            Ah[q] if order >= 2 else None,
            u,
            r,
            order,
        )
        val += mv
        if order >= 1:
            grad += mg
        if order >= 2:
            hess += mh
    return val, grad, hess


class DensityField:
    """The static density of a model (charge or spin) with analytic derivatives.

    Parameters
    ----------
    crystal : Crystal
        Cell, symmetry, positions and occupancies.
    models : sequence
        One per atom: SphericalAtom, HansenCoppensAtom, SplitAtom or None.
    kind : {"charge", "spin"}
        "charge": core + valence + multipoles (a split atom as its charge
        model). "spin": ρ↑ − ρ↓ of the split atoms (valence + multipoles, no
        core; μB/Å³); other atoms carry no spin.
    eps : float
        Neglected density per atom copy (e/Å³), sets the cut-off radii.
    core : bool
        Include the core densities (charge only).
    exact : bool
        Sum the spherical densities term by term instead of reading the
        quintic tables of :mod:`chasm.topology.radial_table` (slow; checks).
    """

    def __init__(
        self,
        crystal,
        models: Sequence,
        kind: str = "charge",
        *,
        eps: float = DEFAULT_EPS,
        core: bool = True,
        exact: bool = False,
    ):
        if kind not in KINDS:
            raise InputError(f"density kind must be one of {KINDS}, got {kind!r}")
        models = list(models)
        if len(models) != len(crystal.atoms):
            raise InputError(
                f"{len(models)} density models for {len(crystal.atoms)} atoms; "
                "give one per atom of the asymmetric unit (None for no density)"
            )
        if kind == "spin" and not any(isinstance(m, SplitAtom) for m in models):
            raise InputError(
                "the model has no spin-split atom, so it has no spin density; "
                "use kind='charge' or refine a joint (X-ray + polarised neutron) model"
            )
        self.crystal, self.kind, self.exact = crystal, kind, exact
        self.models, self.eps = models, eps
        self.atoms: list[tuple[_AtomSum, float]] = []
        for i, (atom, m) in enumerate(zip(crystal.atoms, models, strict=True)):
            t = _AtomSum()
            if kind == "charge":
                if isinstance(m, SplitAtom):
                    m = m.charge_model()
                t.add_model(atom.label, m, core, True, 1.0)
            elif isinstance(m, SplitAtom):
                t.add_model(atom.label, m.up, False, True, 1.0)
                t.add_model(atom.label, m.dn, False, True, -1.0)
            R = t.finish(crystal, i, atom.occupancy, eps)
            t.index = i
            if R > 0.0:
                self.atoms.append((t, R))

    def __call__(self, points, order: int = 2):
        """ρ, ∇ρ and ∇∇ρ at Cartesian points.

        Parameters
        ----------
        points : array_like, shape (..., 3)
            Cartesian positions, Å.
        order : {0, 1, 2}
            Highest derivative wanted (the others are returned as None).

        Returns
        -------
        rho : ndarray, shape (...)
            e/Å³ (μB/Å³ for spin).
        grad : ndarray, shape (..., 3) or None
            e/Å⁴.
        hess : ndarray, shape (..., 3, 3) or None
            e/Å⁵.
        """
        p = check_points(points)
        shape = p.shape[:-1]
        p = p.reshape(-1, 3)
        if self._kernel_ok(order):
            rho, grad, hess, _ = self._packed()(p, order)
            return (
                rho.reshape(shape),
                grad.reshape(shape + (3,)) if order >= 1 else None,
                hess.reshape(shape + (3, 3)) if order >= 2 else None,
            )
        return self._call_numpy(p, shape, order)

    def _kernel_ok(self, order: int) -> bool:
        """Whether the compiled kernel evaluates (numba, tables, not CHASM_ENGINE=numpy)."""
        return use_kernel() and not self.exact

    def _packed(self) -> PackedField:
        if getattr(self, "_packed_field", None) is None:
            self._packed_field = PackedField(
                self.crystal,
                self.atoms,
                core_flags=[t.is_core for t, _ in self.atoms],
            )
        return self._packed_field

    def density_and_core(self, points) -> tuple[np.ndarray, np.ndarray]:
        """ρ and its core part (Σ Pc ρ_core over the copies) at Cartesian points, e/Å³."""
        p = check_points(points)
        shape = p.shape[:-1]
        p = p.reshape(-1, 3)
        if self._kernel_ok(0):
            rho, _, _, core = self._packed()(p, 0)
        else:
            rho = self._call_numpy(p, shape, 0)[0].reshape(-1)
            core = rho - self._valence_field()._call_numpy(p, shape, 0)[0].reshape(-1)
        return rho.reshape(shape), core.reshape(shape)

    def _valence_field(self) -> DensityField:
        if getattr(self, "_valence", None) is None:
            self._valence = DensityField(
                self.crystal, self.models, self.kind, eps=self.eps, core=False, exact=self.exact
            )
        return self._valence

    def _call_numpy(self, p: np.ndarray, shape: tuple, order: int):
        """The reference path: arrays of (copy, point) pairs per atom and block."""
        n = len(p)
        rho = np.zeros(n)
        grad = np.zeros((n, 3))
        hess = np.zeros((n, 3, 3))
        A = self.crystal.A
        recip = np.linalg.norm(np.linalg.inv(A), axis=1)
        for a in range(0, n, 2000):
            pb = p[a : a + 2000]
            fb = np.linalg.solve(A, pb.T)
            for t, R in self.atoms:
                site, shift = lattice_candidates(
                    t.sites.frac, fb.min(axis=1) - R * recip, fb.max(axis=1) + R * recip
                )
                centres = (t.sites.frac[site] + shift) @ A.T
                for c0 in range(0, len(site), 500):
                    c = centres[c0 : c0 + 500]
                    d2 = (
                        np.einsum("ij,ij->i", pb, pb)[None]
                        + np.einsum("ij,ij->i", c, c)[:, None]
                        - 2.0 * c @ pb.T
                    )
                    ci, pi_ = np.nonzero(d2 <= R * R)
                    for b in range(0, len(ci), _CHUNK):
                        cs, ps = ci[b : b + _CHUNK], pi_[b : b + _CHUNK]
                        v = pb[ps] - c[cs]
                        val, g, h = self._pairs(t, v, site[c0 + cs], order, self.exact)
                        idx = a + ps
                        rho += np.bincount(idx, weights=val, minlength=n)
                        if order >= 1:
                            for j in range(3):
                                grad[:, j] += np.bincount(idx, weights=g[:, j], minlength=n)
                        if order >= 2:
                            for j in range(3):
                                for l in range(j, 3):
                                    hess[:, j, l] += np.bincount(
                                        idx, weights=h[:, j, l], minlength=n
                                    )
        hess = np.triu(hess) + np.triu(hess, 1).transpose(0, 2, 1)
        return (
            rho.reshape(shape),
            grad.reshape(shape + (3,)) if order >= 1 else None,
            hess.reshape(shape + (3, 3)) if order >= 2 else None,
        )

    @staticmethod
    def _pairs(t: _AtomSum, v: np.ndarray, site: np.ndarray, order: int, exact: bool):
        r = np.sqrt(np.einsum("ij,ij->i", v, v))
        u = v / np.maximum(r, _NUCLEUS)[:, None]
        u[r < _NUCLEUS] = 0.0  # at the nucleus: that copy's value only
        r = np.maximum(r, _NUCLEUS)
        w = t.sites.weight[site]
        val = np.zeros(len(r))
        grad = np.zeros((len(r), 3))
        hess = np.zeros((len(r), 3, 3)) if order >= 2 else None
        if t.WW.size:
            if exact:
                f0, f1, f2 = exponential_sum(t.kk, t.ZZ, t.WW, r)
            else:
                f0, f1, f2 = np.zeros(len(r)), np.zeros(len(r)), np.zeros(len(r))
                for table, scale, kap in t.tables:
                    g0, g1, g2 = table(kap * r, max(order, 0))
                    f0 += (scale * kap**3) * g0
                    if order >= 1:
                        f1 += (scale * kap**4) * g1
                    if order >= 2:
                        f2 += (scale * kap**5) * g2
            g, h = _spherical_derivs(f1 * w, f2 * w, r, u, order)
            val += f0 * w
            grad += g
            if order >= 2:
                hess += h
        for term in t.mult:
            mv, mg, mh = _multipole_pairs(term, v, r, u, site, order)
            val += mv
            grad += mg
            if order >= 2:
                hess += mh
        return val, grad, hess

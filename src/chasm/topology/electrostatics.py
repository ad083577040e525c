"""Electrostatic potential, electric field and field gradient of the static multipole model.

The charge density of the crystal is the nuclei (point charges Z, times the
occupancy) minus the static Hansen–Coppens electron density (core, valence and
multipoles of every atom, symmetry copy and lattice translation). Its
potential φ (Gaussian units, ∇²φ = −4πρ; φ in e/Å, 1 e/Å = 14.3996 V =
0.529177 hartree/e = 332.06 kcal/mol per unit charge) is summed the Ewald way:

* every charge piece of an atom — the nucleus, the spherical electrons, each
  multipole channel l — is split into a Gaussian piece with the same multipole
  moment (Z or N_e times a normalised Gaussian of width σ; for a channel
  S_l(r) A_l(u), the moment ∫ r^(l+2) S_l dr carried by r^l e^(−r²/2σ²) A_l(u))
  and the rest, whose potential is short-ranged (all its multipole moments
  vanish);
* the short-ranged potentials are exact radial integrals, per channel
  (4π/(2l+1)) [r^(−l−1) ∫₀^r s^(l+2) R ds + r^l ∫_r^∞ s^(1−l) R ds] A_l(u),
  with incomplete gamma functions for the Slater and Gaussian radial functions
  (nucleus: Z erfc(r/√2σ)/r), tabulated once per atom and channel
  (:class:`chasm.topology.radial_table.RadialTable`) and summed over the copies
  within their range in direct space;
* the Gaussian pieces are summed in reciprocal space, with their analytic
  Fourier transforms (for a harmonic polynomial P_l of degree l,
  ∫ P_l(r) e^(−r²/2σ²) e^(ik·r) d³r = (2πσ²)^(3/2) (iσ²)^l P_l(k) e^(−k²σ²/2)):
  φ = (4π/V) Σ_(k≠0) F(k)/k² e^(−ik·r).

Convention (the F(000) term): the k = 0 term is left out, so the potential is
that of the periodic density plus a uniform background cancelling any net
charge of the cell, and its average over the cell is zero (the short-ranged
part's cell average, −(2π/3V) Σ ∫ r² ρ_short d³r, is subtracted). This is the
convention of a Fourier synthesis without F(000) and of an FFT Poisson solution;
other conventions (e.g. the potential of an isolated molecule) differ by a
constant over the cell.

At a nucleus the nucleus's own point charge is left out (the potential, field
and field gradient *at* a nucleus are those of every other charge), within
1e-6 Å of it. Field E = −∇φ (e/Å²); field gradient V_ij = ∂²φ/∂x_i∂x_j
(e/Å³; 1 e/Å³ = 0.148185 a.u. = 9.7174e21·0.148185 V/m²).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from math import gamma as gamma_fn
from math import pi, sqrt
from typing import TYPE_CHECKING

import gemmi
import numpy as np
from scipy.special import erfc, gammainc, gammaincc

from chasm.density.radial import BOHR
from chasm.errors import InputError
from chasm.maps.grids import check_points
from chasm.topology.density_derivatives import (
    DensityField,
    _spherical_derivs,
    radial_times_angular,
)
from chasm.topology.density_kernel import PackedField, use_kernel
from chasm.topology.grid_values import on_grid
from chasm.topology.harmonic_derivatives import polynomials_with_derivatives
from chasm.topology.radial_table import RadialTable

if TYPE_CHECKING:
    from chasm.crystal.structure import Crystal

__all__ = [
    "EA_TO_KCAL",
    "EA_TO_VOLT",
    "PotentialField",
    "nuclear_field_gradients",
]

EA_TO_VOLT = 14.399645
"""1 e/Å of potential in volts (e/(4πε₀ Å))."""
EA_TO_KCAL = 332.0637
"""1 e/Å times one elementary charge, kcal/mol."""
EFG_TO_AU = BOHR**3
"""e/Å³ -> atomic units of field gradient (e/(4πε₀ a₀³))."""

_R_NUC = 1e-6  # Å: a point this close to a nucleus is "at" it (its own charge left out)
_TAIL = 1e-11  # potential (e/Å) below which a short-ranged channel is cut


def _combine(l: int, E, O, R, r):
    """Potential of a channel R(r) A_l(u) from E = ∫₀^r s^(l+2)R, O = ∫_r^∞ s^(1−l)R."""
    c = 4.0 * pi / (2 * l + 1)
    r = np.maximum(r, 1e-12)  # the limit r -> 0 (E ~ r^(l+3)) is reached well before
    S = c * (E / r ** (l + 1) + r**l * O)
    S1 = c * (-(l + 1) * E / r ** (l + 2) + (l * r ** (l - 1) * O if l else 0.0))
    S2 = c * (
        (l + 1) * (l + 2) * E / r ** (l + 3) + (l * (l - 1) * r ** (l - 2) * O if l > 1 else 0.0)
    )
    return S, S1, S2 - 4.0 * pi * R


def _gauss_norm(l: int, sigma: float) -> float:
    """Λ_l = ∫₀^∞ s^(2l+2) e^(−s²/2σ²) ds."""
    return gamma_fn(l + 1.5) * (2.0 * sigma * sigma) ** (l + 1.5) / 2.0


def _gauss_parts(l: int, sigma: float, moment: float, r):
    """E, O, R of moment × r^l e^(−r²/2σ²)/Λ_l."""
    x = r * r / (2.0 * sigma * sigma)
    e = np.exp(-x)
    a = moment / _gauss_norm(l, sigma)
    return moment * gammainc(l + 1.5, x), a * sigma * sigma * e, a * r**l * e


def spherical_exact(k, Z, W, sigma: float):
    """r -> (S, S', S'') of the potential of N_e g_σ − Σ W r^k e^(−Zr).

    That is, of the spherical electrons less a Gaussian of their charge.
    """
    k, Z, W = (np.asarray(a, float) for a in (k, Z, W))
    g_in = np.array([gamma_fn(x) for x in k + 3.0]) / Z ** (k + 3.0)
    g_out = np.array([gamma_fn(x) for x in k + 2.0]) / Z ** (k + 2.0)
    n_e = 4.0 * pi * float(np.sum(W * g_in))

    def exact(r):
        r = np.maximum(np.asarray(r, float), 1e-12)[:, None]
        zr = Z * r
        E = -(W * g_in * gammainc(k + 3.0, zr)).sum(axis=1)
        O = -(W * g_out * gammaincc(k + 2.0, zr)).sum(axis=1)
        R = -(W * r**k * np.exp(-zr)).sum(axis=1)
        r = r[:, 0]
        gE, gO, gR = _gauss_parts(0, sigma, n_e / (4.0 * pi), r)
        return _combine(0, E + gE, O + gO, R + gR, r)

    return exact, n_e


def multipole_exact(l: int, n: int, zeta: float, sigma: float):
    """r -> (S, S', S'') of the potential of −(r^n e^(−ζr) − its Gaussian) in channel l."""
    if n + 2 - l <= 0:
        raise InputError(
            f"a multipole of order {l} with radial power n = {n} has no finite potential "
            f"at its centre (n must be at least {l - 1}); check n_l of the model"
        )
    moment = gamma_fn(n + l + 3) / zeta ** (n + l + 3)
    out_norm = gamma_fn(n + 2 - l) / zeta ** (n + 2 - l)

    def exact(r):
        r = np.maximum(np.asarray(r, float), 1e-12)
        zr = zeta * r
        E = -moment * gammainc(n + l + 3, zr)
        O = -out_norm * gammaincc(n + 2 - l, zr)
        R = -(r**n) * np.exp(-zr)
        gE, gO, gR = _gauss_parts(l, sigma, moment, r)
        return _combine(l, E + gE, O + gO, R + gR, r)

    return exact, moment


def _table(exact, c: float):
    r = np.geomspace(1e-3, 40.0, 800)
    S, S1, S2 = exact(r)
    big = np.flatnonzero((np.abs(S) > _TAIL) | (np.abs(S1) > _TAIL))
    r_end = float(r[big[-1]] * 1.05) if big.size else 1.0
    return RadialTable(exact, r_end, c, rel=(1e-8, 1e-8, 1e-6), floor=1e-8)


@dataclass(eq=False)
class _Channel:
    """One short-ranged radial channel: exact function, table, and range."""

    exact: object
    table: RadialTable | None
    scale: float = 1.0

    def __call__(self, r, exact: bool):
        f = self.exact(r) if exact or self.table is None else self.table(r, 2)
        return tuple(self.scale * x for x in f)


@dataclass(eq=False)
class _AtomCharges:
    """Nuclear charge and channels of one atom (weights per unit site weight)."""

    znuc: float
    n_e: float
    sph: _Channel | None
    mult: list = field(default_factory=list)  # per term: list of (l, channel, moment, norm)
    r_max: float = 0.0


class PotentialField(DensityField):
    """The periodic electrostatic potential of a static multipole model.

    Parameters
    ----------
    crystal : Crystal
    models : sequence
        One per atom (SphericalAtom, HansenCoppensAtom, SplitAtom as its charge
        model, or None for an atom left out with its nucleus).
    sigma : float
        Width of the Ewald Gaussians, Å (the split changes nothing but the
        speed; tested 0.25-0.5 Å).
    exact : bool
        Evaluate the radial functions exactly instead of from tables (slow;
        used at the nuclei, where the tables' relative accuracy near r = 0
        is not enough for the field gradient).

    Notes
    -----
    Calling the field returns φ (e/Å), ∇φ (e/Å²) and ∇∇φ (e/Å³) at Cartesian
    points; see the module docstring for the convention.
    """

    def __init__(
        self, crystal: Crystal, models: Sequence, *, sigma: float = 0.5, exact: bool = False
    ) -> None:
        if not (np.isfinite(sigma) and 0.05 <= sigma <= 2.0):
            raise InputError(f"Ewald width sigma must be in 0.05..2 Å, got {sigma!r}")
        models = [m.charge_model() for m in models]
        super().__init__(crystal, models, "charge", exact=exact)
        self.sigma = float(sigma)
        self.nucleus_radius = _R_NUC
        atoms = []
        for t, _ in self.atoms:
            a = self._charges(t, crystal.atoms[t.index])
            t.charges = a
            atoms.append((t, a.r_max))
        self.atoms = atoms
        self._setup_reciprocal()

    # ------------------------------------------------------------------ set-up
    def _charges(self, t, atom) -> _AtomCharges:
        sigma = self.sigma
        z = gemmi.Element(atom.element).atomic_number * float(atom.occupancy)
        sph, n_e = None, 0.0
        r_max = 7.5 * sigma  # erfc(r/√2σ)/r < 1e-12 beyond
        if t.WW.size:
            ex, n_e = spherical_exact(t.kk, t.ZZ, t.WW, sigma)
            tab = None if self.exact else _table(ex, min(1.0 / float(t.ZZ.max()), sigma / 4))
            sph = _Channel(ex, tab)
            r_max = max(r_max, tab.r_end if tab else 12.0)
        mult = []
        for lmax, n_l, zeta, _cart, norms, _exps, coefs in t.mult:
            chans = []
            for l in range(lmax + 1):
                if not np.any(coefs[l]):
                    chans.append(None)
                    continue
                ex, moment = multipole_exact(l, n_l[l], zeta, sigma)
                tab = None if self.exact else _table(ex, min(1.0 / zeta, sigma / 4))
                chans.append((l, _Channel(ex, tab, norms[l]), moment, norms[l]))
                r_max = max(r_max, tab.r_end if tab else 12.0)
            mult.append(chans)
        return _AtomCharges(z, n_e, sph, mult, r_max)

    @staticmethod
    def _monomials(exps, k) -> dict:
        """Per l: the rows k^e_m |k|^(l−deg m) (n_sel, n_k) and which monomials m they are.

        The monomials of a harmonic of order l have the parity of l and degree
        at most l; multiplied by |k|^(l−deg m) they make it homogeneous.
        """
        kk2 = np.einsum("ij,ij->i", k, k)
        pw = np.ones((5, len(k), 3))
        for p in range(1, 5):
            pw[p] = pw[p - 1] * k
        deg = exps.sum(axis=1)
        out = {}
        for l in range(5):
            sel = np.flatnonzero((deg <= l) & (deg % 2 == l % 2))
            rows = np.empty((len(sel), len(k)))
            for c, m in enumerate(sel):
                e = exps[m]
                rows[c] = pw[e[0], :, 0] * pw[e[1], :, 1] * pw[e[2], :, 2]
                if l > deg[m]:
                    rows[c] *= kk2 ** ((l - deg[m]) // 2)
            out[l] = (rows, sel)
        return out

    def _setup_reciprocal(self) -> None:
        cr = self.crystal
        sigma = self.sigma
        kmax = 7.2 / sigma  # e^(−k²σ²/2) < 6e-12
        B = 2.0 * pi * np.linalg.inv(cr.A).T  # columns: reciprocal vectors ×2π
        nmax = np.ceil(kmax * np.linalg.norm(cr.A, axis=0) / (2 * pi)).astype(int)
        hkl = np.stack(
            np.meshgrid(*[np.arange(-n, n + 1) for n in nmax], indexing="ij"), axis=-1
        ).reshape(-1, 3)
        k = hkl @ B.T
        k2 = np.einsum("ij,ij->i", k, k)
        keep = (k2 > 0) & (k2 <= kmax * kmax)
        self.hkl, self.k, k2 = hkl[keep], k[keep], k2[keep]
        damp = np.exp(-0.5 * k2 * sigma * sigma)
        F = np.zeros(len(k2), complex)
        mean, F0 = 0.0, 0.0
        monos: dict = {}  # per monomial set (the same for every atom of one lmax)
        for t, _ in self.atoms:
            a: _AtomCharges = t.charges
            w = t.sites.weight
            phase = np.exp(1j * ((t.sites.frac @ cr.A.T) @ self.k.T))  # (n_site, n_k)
            F += (a.znuc - a.n_e) * damp * (w @ phase)
            F0 += (a.znuc - a.n_e) * float(w.sum())
            # cell average of the short-ranged part: −(2π/3V) Σ ∫ r² ρ_short d³r
            r2 = -3.0 * sigma**2 * (a.znuc - a.n_e)
            if t.WW.size:
                r2 -= (
                    4.0
                    * pi
                    * float(
                        np.sum(
                            t.WW * np.array([gamma_fn(x) for x in t.kk + 5.0]) / t.ZZ ** (t.kk + 5)
                        )
                    )
                )
            for (_lm, n_l, zeta, _c, _norms, exps, coefs), chans in zip(
                t.mult, a.mult, strict=True
            ):
                mono = None
                for ch in chans:
                    if ch is None:
                        continue
                    l, _, moment, norm = ch
                    pref = -norm * moment / _gauss_norm(l, sigma) * (2 * pi * sigma**2) ** 1.5
                    if mono is None:
                        key = exps.tobytes()
                        if key not in monos:
                            monos[key] = self._monomials(exps, self.k)
                        mono = monos[key]
                    rows, sel = mono[l]
                    poly = coefs[l][sel].T @ rows  # the homogeneous harmonic polynomial at k
                    F += (
                        pref * (1j * sigma**2) ** l * damp * np.einsum("sk,sk,s->k", poly, phase, w)
                    )
                    if l == 0:
                        a0 = coefs[0][0] @ w  # constant monomial
                        F0 -= 4.0 * pi * norm * moment * a0
                        r2 -= (
                            norm
                            * a0
                            * 4.0
                            * pi
                            * (
                                gamma_fn(n_l[0] + 5) / zeta ** (n_l[0] + 5)
                                - moment / _gauss_norm(0, sigma) * _gauss_norm(1, sigma)
                            )
                        )
            mean += -(2.0 * pi / 3.0) * r2 * float(w.sum())
        self.mean_short = mean / cr.volume
        self.coef = 4.0 * pi / cr.volume * F / k2  # φ = Σ coef e^(−ik·r)
        self.net_charge = float(F0)

    # ------------------------------------------------------------------ evaluation
    def _kernel_ok(self, order: int) -> bool:
        """The compiled kernel does the short-ranged sum at order 0 (values only)."""
        return order == 0 and use_kernel() and not self.exact

    def _packed(self) -> PackedField:
        if getattr(self, "_packed_field", None) is None:
            atoms = []
            for t, _ in self.atoms:
                a: _AtomCharges = t.charges
                atoms.append(
                    {
                        "z": a.znuc,
                        "sph": a.sph.table if a.sph is not None else None,
                        "channels": [
                            [None if ch is None else (ch[0], ch[1].table, ch[1].scale) for ch in c]
                            for c in a.mult
                        ],
                    }
                )
            self._packed_field = PackedField(
                self.crystal, self.atoms, potential={"sigma": self.sigma, "atoms": atoms}
            )
        return self._packed_field

    def _pairs(self, t, v, site, order, exact):
        r0 = np.sqrt(np.einsum("ij,ij->i", v, v))
        r = np.maximum(r0, 1e-8)
        u = v / r[:, None]
        u[r0 < 1e-12] = (0.0, 0.0, 1.0)  # at a centre: any direction (the limits are smooth)
        a: _AtomCharges = t.charges
        w = t.sites.weight[site]
        n = len(r)
        val, grad = np.zeros(n), np.zeros((n, 3))
        hess = np.zeros((n, 3, 3))
        # nucleus: Z erfc(r/√2σ)/r, or at the nucleus (own charge left out) −Z erf(r/√2σ)/r
        s2 = sqrt(2.0) * self.sigma
        at = r0 < self.nucleus_radius
        gc = erfc(r / s2)
        gp = -2.0 / (s2 * sqrt(pi)) * np.exp(-((r / s2) ** 2))
        gpp = -2.0 * r / s2**2 * gp
        f0 = gc / r - at / r
        f1 = gp / r - (gc - at) / r**2
        f2 = gpp / r - 2.0 * gp / r**2 + 2.0 * (gc - at) / r**3
        tiny = at & (r < 1e-3 * s2)  # −Z erf(r/√2σ)/r by its series (error ~(r/√2σ)⁴)
        c0 = 2.0 / (s2 * sqrt(pi))
        f0[tiny] = -c0 * (1.0 - r[tiny] ** 2 / (3 * s2**2))
        f1[tiny] = c0 * 2.0 * r[tiny] / (3 * s2**2)
        f2[tiny] = c0 * 2.0 / (3 * s2**2)
        zw = a.znuc * w
        g, h = _spherical_derivs(f1 * zw, f2 * zw, r, u, order)
        centre = r0 < _R_NUC
        g[centre] = 0.0  # the limits at the centre itself (any u)
        val += f0 * zw
        if order >= 1:
            grad += g
        if order >= 2:
            hess += h
        if a.sph is not None:
            S, S1, S2 = a.sph(r, exact)
            iso = S1 / r  # at the centre the Hessian is iso × 1 (S'' and S'/r agree there)
            S2 = np.where(centre, iso, S2)
            g, h = _spherical_derivs(S1 * w, S2 * w, r, u, order)
            g[centre] = 0.0
            val += S * w
            if order >= 1:
                grad += g
            if order >= 2:
                hess += h
        for (_lm, _nl, _z, _c, _norms, exps, coefs), chans in zip(t.mult, a.mult, strict=True):
            active = [ch for ch in chans if ch is not None]
            if not active:
                continue
            ls = [ch[0] for ch in active]
            Av, Ag, Ah = polynomials_with_derivatives(u, exps, coefs[ls][:, :, site], order)
            for q, (_l, chan, _m, _n) in enumerate(active):
                S, S1, S2 = chan(r, exact)
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
        return val, grad, hess if order >= 2 else None

    def smooth(self, points, order: int = 2):
        """The reciprocal-space (Gaussian) part at points: φ, ∇φ, ∇∇φ."""
        p = check_points(points).reshape(-1, 3)
        val = np.zeros(len(p))
        grad = np.zeros((len(p), 3))
        hess = np.zeros((len(p), 3, 3))
        chunk = max(1, int(2e6 // max(len(self.k), 1)))  # ~32 MB of phases at a time
        for a in range(0, len(p), chunk):
            e = np.exp(-1j * (p[a : a + chunk] @ self.k.T)) * self.coef[None]  # (n, n_k)
            val[a : a + chunk] = e.real.sum(axis=1)
            if order >= 1:
                grad[a : a + chunk] = ((-1j * e) @ self.k).real
            if order >= 2:
                hess[a : a + chunk] = -np.einsum("nk,ki,kj->nij", e.real, self.k, self.k)
        return val, grad, hess

    def __call__(self, points, order: int = 2):
        """φ (e/Å), ∇φ (e/Å²) and ∇∇φ (e/Å³) at Cartesian points (Å)."""
        p = check_points(points)
        shape = p.shape[:-1]
        v, g, h = super().__call__(p.reshape(-1, 3), order)
        sv, sg, sh = self.smooth(p.reshape(-1, 3), order)
        v = v + sv - self.mean_short
        g = g + sg if order >= 1 else None
        h = h + sh if order >= 2 else None
        return (
            v.reshape(shape),
            g.reshape(shape + (3,)) if g is not None else None,
            h.reshape(shape + (3, 3)) if h is not None else None,
        )

    def on_grid(self, grid) -> np.ndarray:
        """φ (e/Å) on a periodic :class:`~chasm.maps.grids.CellGrid` (smooth part by FFT)."""
        if not grid.periodic:
            raise InputError("the potential on a grid needs the periodic cell grid")
        shape = np.array(grid.shape)
        (short,) = on_grid(grid, lambda p: (DensityField.__call__(self, p, 0)[0],))
        # an FFT grid holding every k of the sum, a multiple of the output grid
        need = 2 * np.abs(self.hkl).max(axis=0) + 1
        mult = np.maximum(np.ceil(need / shape).astype(int), 1)
        big = shape * mult
        X = np.zeros(tuple(big), complex)
        idx = tuple((self.hkl % big).T)
        np.add.at(X, idx, self.coef)
        smooth = np.fft.fftn(X).real[:: mult[0], :: mult[1], :: mult[2]]
        return short.reshape(grid.shape) + smooth - self.mean_short


def nuclear_field_gradients(
    crystal: Crystal,
    models: Sequence,
    *,
    sigma: float = 0.5,
    field: PotentialField | None = None,
) -> list[dict]:
    """Potential, field and field gradient at each nucleus of the asymmetric unit.

    The nucleus's own charge is left out; the gradient tensor's trace
    (−4π times the electron density at the nucleus, the contact term) is removed
    and the traceless tensor diagonalised with |V_zz| ≥ |V_yy| ≥ |V_xx|,
    η = (V_xx − V_yy)/V_zz.

    field : PotentialField, optional
        Reused if given (evaluated with its exact radial functions here).

    Returns
    -------
    list of dict
        Per atom: label, potential (e/Å), field (e/Å², Cartesian), V_zz (e/Å³ and
        a.u.), η, the principal axes (columns) and the full traceless tensor (e/Å³).
    """
    pot = field if field is not None else PotentialField(crystal, models, sigma=sigma)
    x = np.array([crystal.frac_to_cart(a.xyz) for a in crystal.atoms])
    was, pot.exact = pot.exact, True  # exact radial functions at the centres
    try:
        v, g, h = pot(x, order=2)
    finally:
        pot.exact = was
    out = []
    for i, atom in enumerate(crystal.atoms):
        t = h[i] - np.trace(h[i]) / 3.0 * np.eye(3)
        lam, vec = np.linalg.eigh(t)
        order = np.argsort(np.abs(lam))
        lam, vec = lam[order], vec[:, order]
        vzz = lam[2]
        eta = (lam[0] - lam[1]) / vzz if abs(vzz) > 1e-12 else 0.0
        out.append(
            {
                "label": atom.label,
                "potential_e_per_A": float(v[i]),
                "field_e_per_A2": [float(c) for c in -g[i]],
                "Vzz_e_per_A3": float(vzz),
                "Vzz_au": float(vzz * EFG_TO_AU),
                "eta": float(abs(eta)),
                "axes": vec.tolist(),
                "tensor_e_per_A3": t.tolist(),
            }
        )
    return out

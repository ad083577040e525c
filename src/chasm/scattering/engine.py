"""The structure-factor engine: F(h) and its analytic derivatives.

    F(h) = sum_j sum_(R,t) w_j f_j(R^T h) exp[2 pi i h.(R x_j + t)] T_j(R^T h),

over all operations of the space group, w_j = occupancy / |site group|
(CONVENTIONS.md). The form factor of a symmetry copy is evaluated at R^T h,
and the Debye-Waller factor is T = exp(-2 pi^2 h^T U* h) with U* from the
CIF U_ij.

How the work is organised (this is what makes a numpy engine fast):

* everything that depends on the reflection only (R^T h for every operation,
  h.t, the quadratic forms of the ADPs, s, and the orthonormal real harmonics
  y_lm of the Cartesian unit vector h_hat) is computed once, at construction;
* a symmetry copy of an atom needs the harmonics of M^T Q_R h_hat
  (M the local frame, Q_R the Cartesian rotation of R^T); they are obtained
  from y(h_hat) by the block-diagonal rotation matrix D((M^T Q_R)^T), so the
  angular sums of all atoms and all operations are one matrix product
  Y (n_refl x 25) @ W (25 x n_ops n_atoms 5);
* radial transforms <j_l> depend on |h| and the (n_l, zeta kappa') of an
  atom only; they are computed per distinct value, not per atom;
* when the space group has an inversion centre at the origin, only half of
  the operations are summed and the inversion partner is added analytically:
  the pair contributes 2 Re(f_d e^{i phi}) T + (f' + i f'') 2 cos(phi) T;
* work is blocked over reflections so memory stays bounded.

Derivatives are returned as complex columns dF/dp = dA/dp + i dB/dp, in a
fixed layout per atom (see :attr:`StructureFactorEngine.parameter_names`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chasm.density.harmonics import (
    density_to_wavefunction,
    rotation_matrix_full,
    wavefunction_harmonics,
)
from chasm.density.harmonics import lm_labels as _lm_labels
from chasm.density.model import HansenCoppensAtom, SphericalAtom
from chasm.density.radial import slater_bessel
from chasm.scattering import formfactors

TWO_PI = 2.0 * np.pi
FOUR_PI = 4.0 * np.pi
I_POWERS = np.array([1.0, 1.0j, -1.0, -1.0j, 1.0])  # i^l, l = 0..4
U_LABELS = ("U11", "U22", "U33", "U12", "U13", "U23")


def atom_columns(atom, model) -> list[tuple[str, str]]:
    """Jacobian columns of one atom, in the engine's order, as (kind, group) pairs.

    kinds: x, y, z; U11 U22 U33 U12 U13 U23 (anisotropic) or Uiso; occ; for a
    Hansen-Coppens atom Pv, kappa and, with multipoles, P00 ... P<lmax><lmax>-
    and kappa_prime. groups: xyz, adp, occ, valence, multipole. This is the one
    definition of the layout; parameter names are built from it.
    """
    out = [("x", "xyz"), ("y", "xyz"), ("z", "xyz")]
    if atom.u_aniso is not None:
        out += [(u, "adp") for u in U_LABELS]
    else:
        out.append(("Uiso", "adp"))
    out.append(("occ", "occ"))
    if isinstance(model, HansenCoppensAtom):
        out += [("Pv", "valence"), ("kappa", "valence")]
        if model.lmax >= 0:
            out += [(f"P{s}", "multipole") for s in _lm_labels(model.lmax)]
            out.append(("kappa_prime", "multipole"))
    return out


@dataclass
class StructureFactors:
    """Result of one engine evaluation.

    Attributes
    ----------
    F : ndarray, complex, shape (n_refl,)
        Structure factors A + iB (electrons).
    jacobian : ndarray, complex, shape (n_refl, n_par) or None
        dF/dp; real part dA/dp, imaginary part dB/dp.
    parameter_names : list of str
        Column names of the Jacobian, e.g. ``"C1.x"``, ``"O1.U23"``, ``"N1.P21-"``.
    """

    F: np.ndarray
    jacobian: np.ndarray | None
    parameter_names: list[str]


@dataclass
class _AtomLayout:
    """Columns of one atom in the Jacobian."""

    xyz: slice
    adp: slice
    occ: int
    pv: int | None = None
    kappa: int | None = None
    plm: slice | None = None
    kappa_prime: int | None = None


class StructureFactorEngine:
    """Structure factors of a crystal for a fixed list of reflections.

    Parameters
    ----------
    crystal : chasm.crystal.structure.Crystal
        Cell, symmetry, atoms (positions, ADPs, occupancies) and f', f''.
    models : sequence of SphericalAtom or HansenCoppensAtom
        Density model of each atom of ``crystal.atoms``, same order.
    hkl : ndarray of int, shape (n, 3)
        Miller indices.
    block_size : int
        Reflections per block (bounds the memory of intermediate arrays).
    anomalous : bool
        Include f' + i f'' from ``crystal.dispersion``.
    centric_fast_path : bool
        Sum half of the operations analytically when the group has an inversion
        centre at the origin (default). False forces the plain sum (tests).

    Notes
    -----
    The engine reads the current parameter values from ``crystal.atoms`` and
    ``models`` at every call to :meth:`compute`; only geometry that depends on
    the reflections and the symmetry is cached.
    """

    def __init__(
        self,
        crystal,
        models,
        hkl,
        block_size: int = 8192,
        anomalous: bool = True,
        centric_fast_path: bool = True,
    ):
        self.crystal = crystal
        self.models = list(models)
        if len(self.models) != len(crystal.atoms):
            raise ValueError("one density model per atom is needed")
        self.hkl = np.asarray(hkl, dtype=int).reshape(-1, 3)
        self.block_size = int(block_size)
        self.anomalous = anomalous
        self.centric_fast_path = centric_fast_path
        self._setup_symmetry()
        self._setup_geometry()
        self._setup_layout()

    # ------------------------------------------------------------------ setup
    def _setup_symmetry(self) -> None:
        cr = self.crystal
        rot, trans = cr.symops
        self.centric = bool(self.centric_fast_path and cr.inversion_at_origin)
        idx = np.asarray(cr.centric_half()) if self.centric else np.arange(len(rot))
        self.rot = np.asarray(rot, dtype=float)[idx]
        self.trans = np.asarray(trans, dtype=float)[idx]
        B = np.asarray(cr.B, dtype=float)
        Binv = np.linalg.inv(B)
        # Cartesian matrix taking B h to B R^T h
        self.q_ops = np.einsum("ij,okj,kl->oil", B, self.rot, Binv)
        n_all = len(rot)
        self.site_order = np.array(
            [len(cr.site_symmetry(i)) for i in range(len(cr.atoms))], dtype=float
        )
        self.n_ops_total = n_all

    def _setup_geometry(self) -> None:
        cr = self.crystal
        h = self.hkl.astype(float)
        B = np.asarray(cr.B, dtype=float)
        hc = h @ B.T
        norm = np.linalg.norm(hc, axis=1)
        self.stol = 0.5 * norm
        self.K = FOUR_PI * self.stol
        # h R (row form of R^T h) per operation: (n_ops, n, 3)
        self.hs = np.einsum("nk,okj->onj", h, self.rot)
        self.ht = TWO_PI * np.einsum("nk,ok->on", h, self.trans)
        astar = np.linalg.norm(B, axis=0)
        a1, a2, a3 = astar
        hs = self.hs
        self.quad = np.stack(
            [
                hs[..., 0] ** 2 * a1 * a1,
                hs[..., 1] ** 2 * a2 * a2,
                hs[..., 2] ** 2 * a3 * a3,
                2 * hs[..., 0] * hs[..., 1] * a1 * a2,
                2 * hs[..., 0] * hs[..., 2] * a1 * a3,
                2 * hs[..., 1] * hs[..., 2] * a2 * a3,
            ],
            axis=-1,
        )
        self.lmax = max([m.lmax for m in self.models] + [-1])
        if self.lmax >= 0:
            u = np.where(norm[:, None] > 0, hc / np.where(norm > 0, norm, 1.0)[:, None], 0.0)
            u[norm == 0] = (0.0, 0.0, 1.0)
            self.ylm = wavefunction_harmonics(u, self.lmax)
            self.clm = density_to_wavefunction(self.lmax)
            self.l_of = np.concatenate([[l] * (2 * l + 1) for l in range(self.lmax + 1)])
        # spherical parts that do not change during a refinement
        self._fixed_f = {}
        for m in self.models:
            key = self._fixed_key(m)
            if key not in self._fixed_f:
                self._fixed_f[key] = self._fixed_form_factor(m)
        el_disp = getattr(cr, "dispersion", {}) or {}
        self.fanom = np.array(
            [
                complex(*el_disp.get(a.element, (0.0, 0.0))) if self.anomalous else 0j
                for a in cr.atoms
            ]
        )

    @staticmethod
    def _fixed_key(m) -> tuple:
        if isinstance(m, SphericalAtom):
            return ("iam", m.source, m.element, m.charge)
        return ("core", m.element, m.charge, tuple(m.valence or ()))

    def _fixed_form_factor(self, m) -> np.ndarray:
        if isinstance(m, SphericalAtom):
            if m.source == "it92":
                return formfactors.it92(m.element, self.stol)
            return formfactors.koga(m.element, self.stol, m.charge)
        atom = formfactors.koga_atom(m.element, m.charge, tuple(m.valence) if m.valence else None)
        return atom.core(self.stol)

    def _setup_layout(self) -> None:
        names: list[str] = []
        self.layout: list[_AtomLayout] = []
        for atom, m in zip(self.crystal.atoms, self.models, strict=True):
            c0 = len(names)
            kinds = [kind for kind, _ in atom_columns(atom, m)]
            names += [f"{atom.label}.{kind}" for kind in kinds]
            col = {kind: c0 + k for k, kind in enumerate(kinds)}
            n_adp = 6 if atom.u_aniso is not None else 1
            lay = _AtomLayout(
                xyz=slice(c0, c0 + 3),
                adp=slice(c0 + 3, c0 + 3 + n_adp),
                occ=col["occ"],
                pv=col.get("Pv"),
                kappa=col.get("kappa"),
                kappa_prime=col.get("kappa_prime"),
            )
            if "P00" in col:
                lay.plm = slice(col["P00"], col["kappa_prime"])
            self.layout.append(lay)
        self.parameter_names = names

    # ---------------------------------------------------------------- helpers
    def _atom_arrays(self):
        atoms = self.crystal.atoms
        X = np.array([a.xyz for a in atoms], dtype=float)
        occ = np.array([a.occupancy for a in atoms], dtype=float)
        aniso = np.array([a.u_aniso is not None for a in atoms])
        U6 = np.array(
            [a.u_aniso if a.u_aniso is not None else np.zeros(6) for a in atoms], dtype=float
        )
        uiso = np.array([a.uiso for a in atoms], dtype=float)
        return X, occ, aniso, U6, uiso

    def _rotations_for(self, m: HansenCoppensAtom) -> np.ndarray:
        """D((M^T Q_o)^T) for every operation: (n_ops, nlm, nlm)."""
        M = np.asarray(m.frame, dtype=float)
        return rotation_matrix_full(np.transpose(M.T @ self.q_ops, (0, 2, 1)), m.lmax)

    # -------------------------------------------------------------- compute
    def compute(self, jacobian: bool = False) -> StructureFactors:
        """Evaluate F (and dF/dp when ``jacobian``) at the current parameters."""
        n = len(self.hkl)
        F = np.zeros(n, dtype=complex)
        J = np.zeros((n, len(self.parameter_names)), dtype=complex) if jacobian else None
        X, occ, aniso, U6, uiso = self._atom_arrays()
        hc_atoms = [
            i for i, m in enumerate(self.models) if isinstance(m, HansenCoppensAtom) and m.lmax >= 0
        ]
        rotations = {i: self._rotations_for(self.models[i]) for i in hc_atoms}
        for b0 in range(0, n, self.block_size):
            b1 = min(n, b0 + self.block_size)
            self._block(b0, b1, F, J, X, occ, aniso, U6, uiso, hc_atoms, rotations)
        return StructureFactors(F=F, jacobian=J, parameter_names=list(self.parameter_names))

    def _block(self, b0, b1, F, J, X, occ, aniso, U6, uiso, hc_atoms, rotations) -> None:
        sl = slice(b0, b1)
        hs = self.hs[:, sl]  # (o, nb, 3)
        quad = self.quad[:, sl]  # (o, nb, 6)
        s = self.stol[sl]
        K = self.K[sl]
        nb = b1 - b0
        n_ops = len(self.rot)
        n_at = len(X)
        centric = self.centric

        # Debye-Waller factors and phases, (o, nb, a)
        expo = np.empty((n_ops, nb, n_at))
        if aniso.any():
            expo[..., aniso] = -2.0 * np.pi**2 * (quad @ U6[aniso].T)
        if (~aniso).any():
            expo[..., ~aniso] = (-8.0 * np.pi**2 * s**2)[None, :, None] * uiso[~aniso]
        T = np.exp(expo) / self.site_order
        phi = TWO_PI * (hs @ X.T) + self.ht[:, sl, None]
        E0 = T * np.exp(1j * phi)  # unit-occupancy copies

        # spherical form factors (nb, a) and HC valence parts
        fsph = np.empty((nb, n_at))
        fval = {}
        for a, m in enumerate(self.models):
            fixed = self._fixed_f[self._fixed_key(m)][sl]
            if isinstance(m, SphericalAtom):
                fsph[:, a] = fixed
            else:
                sp = formfactors.koga_atom(
                    m.element, m.charge, tuple(m.valence) if m.valence else None
                )
                fv, dfv = sp.valence(s / m.kappa, derivative=True)
                fval[a] = (fv, dfv)
                fsph[:, a] = m.pc * fixed + m.pv * fv

        # multipole parts: fm (o, nb, a) complex, radial transforms per atom
        fd = np.broadcast_to(fsph, (n_ops, nb, n_at)).astype(complex)
        radial = {}
        if hc_atoms:
            radial = self._radial(K, hc_atoms, jacobian=J is not None)
            ang = self._angular_sums(sl, hc_atoms, rotations)  # (nb, o, len(hc), lmax+1)
            for k, a in enumerate(hc_atoms):
                m = self.models[a]
                jl = radial[a][0]  # (nb, lmax+1)
                coef = FOUR_PI * I_POWERS[: m.lmax + 1] * jl  # (nb, L)
                fd[:, :, a] += np.einsum("nl,nol->on", coef, ang[:, :, k, : m.lmax + 1])

        Xd = E0 * fd
        fa = self.fanom
        if centric:
            Gu = 2.0 * Xd.real + 2.0 * fa * E0.real
        else:
            Gu = Xd + fa * E0
        F[sl] += Gu.sum(axis=0) @ occ
        if J is None:
            return

        # ---- derivatives
        Gx = (-2.0 * Xd.imag - 2.0 * fa * E0.imag) if centric else 1j * Gu
        lay = self.layout
        cols_xyz = np.array([[l.xyz.start + k for k in range(3)] for l in lay])
        dx = _sum_ops_outer(hs, Gx) * (TWO_PI * occ)[None, :, None]
        J[sl, cols_xyz.reshape(-1)] = dx.reshape(nb, -1)
        Gsum = Gu.sum(axis=0)  # (nb, a)
        J[sl, [l.occ for l in lay]] = Gsum
        if aniso.any():
            ia = np.flatnonzero(aniso)
            du = _sum_ops_outer(quad, Gu[..., ia]) * (-2.0 * np.pi**2 * occ[ia])[None, :, None]
            cols = np.array([[lay[i].adp.start + j for j in range(6)] for i in ia])
            J[sl, cols.reshape(-1)] = du.reshape(nb, -1)
        if (~aniso).any():
            ii = np.flatnonzero(~aniso)
            J[sl, [lay[i].adp.start for i in ii]] = (
                (-8.0 * np.pi**2 * s**2)[:, None] * Gsum[:, ii] * occ[ii]
            )

        def re(z):
            return 2.0 * z.real if centric else z

        Esum = E0.sum(axis=0)  # (nb, a)
        for a, (fv, dfv) in fval.items():
            m = self.models[a]
            e = re(Esum[:, a]) * occ[a]
            J[sl, lay[a].pv] = e * fv
            J[sl, lay[a].kappa] = e * m.pv * dfv * (-s / m.kappa**2)
        for a in hc_atoms:
            m = self.models[a]
            L = m.lmax + 1
            nlm = L * L
            jl, djl = radial[a]
            rad = FOUR_PI * I_POWERS[:L] * jl  # (nb, L)
            rad_lm = rad[:, self.l_of[:nlm]]  # (nb, nlm)
            D = rotations[a]  # (o, nlm, nlm)
            Yr = np.matmul(self.ylm[sl, :nlm][None], D)  # y(S h) per op, (o, nb, nlm)
            acc = (E0[:, :, a, None] * Yr).sum(axis=0)  # (nb, nlm)
            J[sl, lay[a].plm] = re(acc * rad_lm * self.clm[:nlm]) * occ[a]
            # kappa': sum_l 4 pi i^l d<j_l>/dkappa' S_l
            ang = self._angular_from_yr(Yr, m)  # (o, nb, L)
            dk = np.einsum("nl,onl->on", FOUR_PI * I_POWERS[:L] * djl, ang)
            J[sl, lay[a].kappa_prime] = re((E0[:, :, a] * dk).sum(axis=0)) * occ[a]

    def _angular_from_yr(self, Yr: np.ndarray, m: HansenCoppensAtom) -> np.ndarray:
        """Angular sums per l from rotated harmonics Yr (o, nb, nlm)."""
        L = m.lmax + 1
        w = self.clm[: L * L] * m.plm
        out = np.empty(Yr.shape[:2] + (L,))
        for l in range(L):
            k0, k1 = l * l, (l + 1) ** 2
            out[..., l] = Yr[..., k0:k1] @ w[k0:k1]
        return out

    def _radial(self, K, hc_atoms, jacobian: bool) -> dict:
        """<j_l>(K) with zeta kappa' per atom, and d/dkappa'; cached per distinct value."""
        cache: dict = {}
        out = {}
        for a in hc_atoms:
            m = self.models[a]
            L = m.lmax + 1
            jl = np.empty((len(K), L))
            djl = np.empty((len(K), L))
            for l in range(L):
                key = (l, m.n_l[l], m.zeta * m.kappa_prime)
                if key not in cache:
                    v, _, dz = slater_bessel(l, m.n_l[l], key[2], K, derivatives=True)
                    cache[key] = (v, dz)
                v, dz = cache[key]
                jl[:, l] = v
                djl[:, l] = dz * m.zeta  # d/dkappa' = zeta d/dzeta'
            out[a] = (jl, djl)
        return out

    def _angular_sums(self, sl, hc_atoms, rotations) -> np.ndarray:
        """sum_m a_lm y_lm(S h) for every op and HC atom: one matrix product."""
        lmax = self.lmax
        nlm = (lmax + 1) ** 2
        n_ops = len(self.rot)
        W = np.zeros((nlm, n_ops, len(hc_atoms), lmax + 1))
        for k, a in enumerate(hc_atoms):
            m = self.models[a]
            L = m.lmax + 1
            coeff = self.clm[: L * L] * m.plm  # orthonormal-basis coefficients
            D = rotations[a]  # (o, L*L, L*L)
            rc = np.einsum("okm,m->ok", D, coeff)  # rotated coefficients
            for l in range(L):
                k0, k1 = l * l, (l + 1) ** 2
                W[k0:k1, :, k, l] = rc[:, k0:k1].T
        S = self.ylm[sl] @ W.reshape(nlm, -1)
        return S.reshape(-1, n_ops, len(hc_atoms), lmax + 1)


def _sum_ops_outer(v: np.ndarray, g: np.ndarray) -> np.ndarray:
    """sum_o v[o, n, k] g[o, n, a] -> (n, a, k), without einsum's slow mixed-type path."""
    out = v[0][:, None, :] * g[0][:, :, None]
    for o in range(1, len(v)):
        out += v[o][:, None, :] * g[o][:, :, None]
    return out

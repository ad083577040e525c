"""The structure-factor engine: F(h) and its analytic derivatives.

    F(h) = sum_j sum_(R,t) w_j f_j(R^T h) exp[2 pi i h.(R x_j + t)] T_j(R^T h),

over all operations of the space group, w_j = occupancy / |site group|
(CONVENTIONS.md). The form factor of a symmetry copy is evaluated at R^T h,
and the Debye-Waller factor is T = exp(-2 pi^2 h^T U* h) with U* from the
CIF U_ij.

How the work is organised (this is what makes a numpy engine fast):

* everything that depends on the reflection only (R^T h for every operation,
  exp(2 pi i h.t), the quadratic forms of the ADPs, s, and the orthonormal
  real harmonics y_lm of the Cartesian unit vector h_hat) is computed once,
  at construction;
* the phase factor exp(2 pi i h.R x) is the product of three per-atom tables
  exp(2 pi i k x_c) over the integer range of each component k of R^T h:
  gathers and complex products instead of a cosine and a sine per
  reflection, operation and atom;
* a symmetry copy of an atom needs the harmonics of M^T Q_R h_hat
  (M the local frame, Q_R the Cartesian rotation of R^T); they are obtained
  from y(h_hat) by the block-diagonal rotation matrix D((M^T Q_R)^T), so the
  angular sums of all atoms and all operations are one matrix product
  Y (n_refl x 25) @ W (25 x n_ops 5 n_atoms);
* radial transforms <j_l> depend on |h| and the (n_l, zeta kappa') of an
  atom only; they are computed once per call and distinct value;
* when the space group has an inversion centre at the origin, only half of
  the operations are summed and the inversion partner is added analytically:
  the pair contributes 2 Re(f_d e^{i phi}) T + (f' + i f'') 2 cos(phi) T, and
  the derivatives are real combinations of T cos(phi) and T sin(phi) (the
  P_lm of even l need only the first, those of odd l only the second);
* work is blocked over reflections so memory stays bounded; with the
  Jacobian the blocks are small (256 reflections) so that their arrays stay
  in cache, and each block is written straight into the rows of the result.
  The P_lm columns of all atoms with the same lmax are made l by l (D is
  block diagonal in l): one small matrix product and one sum over the
  operations (einsum) per l;
* the small matrix products are cut into pieces below the size at which a
  threaded BLAS starts its threads: waking threads for each of them costs
  more than it computes, and far more on a busy machine.

Two implementations of these sums: compiled kernels
(:mod:`chasm.scattering.kernel`, numba; the default) that work on chunks of
reflections (vectorised loops) on every core, and the numpy path described
above, which stays as the reference (``backend="numpy"`` or ``CHASM_ENGINE=numpy``; the two agree to
1e-12, tests/test_engine_kernel.py). ``CHASM_ENGINE_THREADS`` sets the
compiled engine's threads (default every usable core).

Derivatives are returned as complex columns dF/dp = dA/dp + i dB/dp, in a
fixed layout per atom (see :attr:`StructureFactorEngine.parameter_names`).
``compute(jacobian=True, real=True)`` returns them as real arrays instead:
dA/dp for every column (optionally straight into the caller's array) and
dB/dp only for the columns where it can be non-zero: none for a
centrosymmetric structure without dispersion (its Jacobian is real), the
positions, ADPs and occupancies of the atoms with f″ ≠ 0 for a
centrosymmetric one with dispersion. A :class:`ColumnMap` turns the engine's
columns into other parameters (the views of a structure model) block by
block, while each block is in cache.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from math import factorial
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from numpy.typing import ArrayLike

from chasm.density.harmonics import (
    density_to_wavefunction,
    rotation_matrix_full,
    wavefunction_harmonics,
    wavefunction_norms,
)
from chasm.density.harmonics import lm_labels as _lm_labels
from chasm.density.model import EngineModel, HansenCoppensAtom, NuclearAtom, SphericalAtom
from chasm.errors import InputError, ModelError
from chasm.scattering import formfactors
from chasm.scattering import kernel as _kernel

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

    from chasm.crystal.structure import Atom, Crystal
    from chasm.scattering.xray import RowFactors

TWO_PI = 2.0 * np.pi
FOUR_PI = 4.0 * np.pi
U_LABELS = ("U11", "U22", "U33", "U12", "U13", "U23")
#: Arguments of :func:`chasm.scattering.kernel.radial_block` after r0, r1 (:func:`_radial_plan`):
#: K, l, power, zeta kappa', kappa', then offsets and lengths of the value and slope polynomials
#: and the two coefficient arrays.
RadialPlan = tuple[
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
]


def atom_columns(atom: Atom, model: EngineModel) -> list[tuple[str, str]]:
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
    jacobian : ndarray, shape (n_refl, n_par) or None
        dF/dp, complex (real part dA/dp, imaginary part dB/dp); with
        ``compute(real=True)`` the real array dA/dp alone.
    parameter_names : list of str
        Column names of the Jacobian, e.g. ``"C1.x"``, ``"O1.U23"``, ``"N1.P21-"``
        (the map's names with a :class:`ColumnMap`).
    jacobian_imag : ndarray, float, shape (n_refl, len(imag_columns)) or None
        With ``real=True``: dB/dp of the columns ``imag_columns``; dB/dp of every
        other column is exactly zero.
    imag_columns : ndarray of int or None
        With ``real=True``: the columns whose dB/dp can be non-zero (all of them
        for an acentric structure; the positions, ADPs and occupancies of the
        atoms with f″ ≠ 0 for a centrosymmetric one; none without dispersion).
    """

    F: np.ndarray
    jacobian: np.ndarray | None
    parameter_names: list[str]
    jacobian_imag: np.ndarray | None = None
    imag_columns: np.ndarray | None = None


@dataclass(eq=False)
class ColumnMap:
    """A linear map from the engine's Jacobian columns to other parameters.

    ``J_out[:, dst[k]] += coef[k] * J_engine[:, src[k]]`` for every entry k:
    engine columns without an entry are dropped, output columns without one
    are zero.

    Attributes
    ----------
    src, dst : ndarray of int
        Engine column and output column of each entry.
    coef : ndarray of float
        Coefficient of each entry.
    names : list of str
        Names of the output columns.
    """

    src: np.ndarray
    dst: np.ndarray
    coef: np.ndarray
    names: list[str]

    def __post_init__(self) -> None:
        self.src = np.asarray(self.src, dtype=np.intp).reshape(-1)
        self.dst = np.asarray(self.dst, dtype=np.intp).reshape(-1)
        self.coef = np.asarray(self.coef, dtype=float).reshape(-1)
        self.names = list(self.names)
        if not (self.src.size == self.dst.size == self.coef.size):
            raise ValueError("ColumnMap: src, dst and coef must have the same length")
        if self.dst.size and (self.dst.min() < 0 or self.dst.max() >= len(self.names)):
            raise ValueError("ColumnMap: an output column is outside names")


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
    models : sequence of SphericalAtom, HansenCoppensAtom or NuclearAtom
        Density model of each atom of ``crystal.atoms``, same order. With
        NuclearAtom models (constant b, fm) F is the nuclear structure factor
        in fm and no dispersion is added. An atom's occupancy multiplies all
        its terms; a negative occupancy subtracts the atom (used for the
        spin-down part of a split atom, see :mod:`chasm.refine.structure_model`).
    hkl : ndarray of int, shape (n, 3)
        Miller indices.
    block_size : int
        Reflections per block (bounds the memory of intermediate arrays).
    anomalous : bool
        Include f' + i f'' from ``crystal.dispersion``.
    centric_fast_path : bool
        Sum half of the operations analytically when the group has an inversion
        centre at the origin (default). False forces the plain sum (tests).
    dispersion_atoms : sequence of bool, optional
        Which atoms get f′ + i f″ (default all; the parts of one split atom
        must count it once).
    backend : {"numba", "numpy"}, optional
        Compiled kernels (:mod:`chasm.scattering.kernel`, threaded over
        reflections) or the numpy reference path. Default: the environment
        variable ``CHASM_ENGINE``, else "numba" when numba is installed.

    Notes
    -----
    The engine reads the current parameter values from ``crystal.atoms`` and
    ``models`` at every call to :meth:`compute`; only geometry that depends on
    the reflections and the symmetry is cached (and work arrays reused from
    one call to the next: one engine is not for concurrent calls from several
    threads).
    """

    def __init__(
        self,
        crystal: Crystal,
        models: Sequence[EngineModel],
        hkl: ArrayLike,
        block_size: int = 8192,
        anomalous: bool = True,
        centric_fast_path: bool = True,
        dispersion_atoms: ArrayLike | None = None,
        backend: str | None = None,
    ) -> None:
        self.backend = engine_backend(backend)
        self.crystal = crystal
        self.models = list(models)
        if len(self.models) != len(crystal.atoms):
            raise ValueError("one density model per atom is needed")
        self.hkl = np.asarray(hkl, dtype=int).reshape(-1, 3)
        self.block_size = int(block_size)
        self.anomalous = anomalous
        self.centric_fast_path = centric_fast_path
        self.dispersion_atoms = (
            np.ones(len(crystal.atoms), bool)
            if dispersion_atoms is None
            else np.asarray(dispersion_atoms, bool).reshape(len(crystal.atoms))
        )
        self._setup_symmetry()
        self._setup_geometry()
        self._setup_layout()
        self._plans: dict[tuple[bool, ColumnMap | None], tuple[_ColumnPlan, _ColumnPlan]] = {}
        self._radial_tables: tuple[np.ndarray, np.ndarray] | None = None
        self._rot_cache: dict[int, tuple[tuple[bytes, int], np.ndarray]] = {}
        self._kfixed: tuple[np.ndarray, ...] | None = None
        self._valence_cache: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] = {}
        self._valence_stack: tuple[tuple[Any, ...], np.ndarray] | None = None
        self._fixed_atoms: np.ndarray | None = None

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
        # phase factors exp(2 pi i h.(R x + t)) come from per-atom tables of
        # exp(2 pi i k x_c) over the integer components k of h R, times exp(2 pi i h.t)
        hsi = np.rint(self.hs).astype(np.intp)
        self._kmin = hsi.min(axis=(0, 1)) if hsi.size else np.zeros(3, dtype=np.intp)
        self._kcount = (hsi.max(axis=(0, 1)) - self._kmin + 1) if hsi.size else np.ones(3, int)
        self._kidx: np.ndarray | None = np.moveaxis(hsi - self._kmin, -1, 0).copy()  # (3, o, n)
        if not np.array_equal(hsi, self.hs):  # rotations not integral: direct phases
            self._kidx = None
        self._eht = _unit_phase(np.einsum("nk,ok->on", h, self.trans))
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
        self._fixed_f: dict[tuple[Any, ...], np.ndarray] = {}
        for m in self.models:
            key = self._fixed_key(m)
            if key not in self._fixed_f:
                self._fixed_f[key] = self._fixed_form_factor(m)
        el_disp = getattr(cr, "dispersion", {}) or {}
        self.fanom = np.array(
            [
                complex(*el_disp.get(a.element, (0.0, 0.0)))
                if self.anomalous and use and not isinstance(m, NuclearAtom)
                else 0j
                for a, m, use in zip(cr.atoms, self.models, self.dispersion_atoms, strict=True)
            ]
        )

    @staticmethod
    def _fixed_key(m: EngineModel) -> tuple[Any, ...]:
        if isinstance(m, SphericalAtom):
            return ("iam", m.source, m.element, m.charge)
        if isinstance(m, NuclearAtom):
            return ("nuclear", m.b)
        return ("core", m.element, m.charge, tuple(m.valence or ()))

    def _fixed_form_factor(self, m: EngineModel) -> np.ndarray:
        if isinstance(m, SphericalAtom):
            if m.source == "it92":
                return formfactors.it92(m.element, self.stol)
            return formfactors.koga(m.element, self.stol, m.charge)
        if isinstance(m, NuclearAtom):
            return np.full(len(self.stol), m.b)
        atom = formfactors.koga_atom(m.element, m.charge, tuple(m.valence) if m.valence else None)
        core: np.ndarray = atom.core(self.stol)
        return core

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
    def _atom_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        atoms = self.crystal.atoms
        X = np.array([a.xyz for a in atoms], dtype=float)
        occ = np.array([a.occupancy for a in atoms], dtype=float)
        aniso = np.array([a.u_aniso is not None for a in atoms])
        U6 = np.array(
            [a.u_aniso if a.u_aniso is not None else np.zeros(6) for a in atoms], dtype=float
        )
        uiso = np.array([a.uiso for a in atoms], dtype=float)
        return X, occ, aniso, U6, uiso

    def _hc_atom(self, a: int) -> HansenCoppensAtom:
        """The model of atom a, one of the Hansen-Coppens atoms (``_Call.hc``, ``_Call.val``)."""
        return cast(HansenCoppensAtom, self.models[a])  # the indices are chosen by type

    def _rotations_for(self, m: HansenCoppensAtom) -> np.ndarray:
        """D((M^T Q_o)^T) for every operation: (n_ops, nlm, nlm)."""
        M = np.asarray(m.frame, dtype=float)
        return rotation_matrix_full(np.transpose(M.T @ self.q_ops, (0, 2, 1)), m.lmax)

    def operation_terms(self, atom: int) -> np.ndarray:
        """Per-operation terms of one atom: w T(R_oᵀh) exp[2πi h·(R_o x + t_o)], (n, n_ops).

        The engine's own phases (``hs``, ``_eht``) and Debye–Waller factors
        (``quad``, U of the atom now), w = occupancy / |site group|, for every
        operation of the crystal in its order (needs ``centric_fast_path=False``).
        A caller that weights each operation (a magnetic form factor per
        symmetry copy, an axial moment R m, a tensor R χ Rᵀ) sums
        Σ_o terms[:, o] weight_o: the symmetry sum of the PND spin models.
        """
        if self.centric:
            raise ValueError("operation_terms needs the engine built with centric_fast_path=False")
        a = self.crystal.atoms[atom]
        phase = _unit_phase(self.hs @ np.asarray(a.xyz, dtype=float)) * self._eht  # (o, n)
        if a.u_aniso is not None:
            expo = -2.0 * np.pi**2 * (self.quad @ np.asarray(a.u_aniso, dtype=float))
        else:
            iso = -8.0 * np.pi**2 * self.stol**2 * float(a.uiso or 0.0)
            expo = np.broadcast_to(iso, phase.shape)
        terms: np.ndarray = (phase * np.exp(expo) * (a.occupancy / self.site_order[atom])).T
        return terms

    # -------------------------------------------------------------- compute
    def compute(
        self,
        jacobian: bool = False,
        real: bool = False,
        out: np.ndarray | None = None,
        column_map: ColumnMap | None = None,
        row_factors: RowFactors | None = None,
    ) -> StructureFactors:
        """Evaluate F (and dF/dp when ``jacobian``) at the current parameters.

        Parameters
        ----------
        jacobian : bool
            Compute the Jacobian.
        real : bool
            Return the Jacobian as real arrays: ``jacobian`` = dA/dp (every
            column) and ``jacobian_imag`` = dB/dp of the columns
            ``imag_columns`` only (:class:`StructureFactors`). No complex array
            is made; for a centrosymmetric structure without dispersion there
            is no imaginary part at all.
        out : ndarray, float64, shape (n_refl, n_columns), optional
            With ``real``: the array dA/dp is written into (it may be a strided
            view, e.g. the leading columns of a wider array). Columns that no
            engine column reaches are not written: pass zeros there.
        column_map : ColumnMap, optional
            Return the Jacobian over the map's columns instead of the engine's
            (applied block by block, while the block is in cache).
        row_factors : callable, optional
            With ``real``: ``row_factors(rows, F_rows) -> (ga, gb)`` for each
            block of reflections (``rows`` a slice); the Jacobian returned is
            then ga dA/dp + gb dB/dp row by row, the chain rule to a real
            observable of F (for |F|²: ga = 2A, gb = 2B), applied while the
            block is in cache; ``jacobian_imag`` and ``imag_columns`` are None.
        """
        n = len(self.hkl)
        F = np.zeros(n, dtype=complex)
        names = list(self.parameter_names if column_map is None else column_map.names)
        res = StructureFactors(F=F, jacobian=None, parameter_names=names)
        compiled = self.backend == "numba"
        # with the Jacobian, small blocks keep each block's arrays in cache
        rows = _KERNEL_ROWS if compiled else _JACOBIAN_ROWS
        step = min(self.block_size, rows) if jacobian else self.block_size
        call = self._prepare(jacobian, real, column_map, compiled)
        sinks = self._sinks(res, call, jacobian, real, out, row_factors, step)
        if compiled:
            self._compute_compiled(F, sinks, call, jacobian, step)
            return res
        for b0 in range(0, n, step):
            self._block(slice(b0, min(n, b0 + step)), F, sinks, call)
        return res

    def _sinks(
        self,
        res: StructureFactors,
        call: _Call,
        jacobian: bool,
        real: bool,
        out: np.ndarray | None,
        row_factors: RowFactors | None,
        step: int,
    ) -> _Output | None:
        """Where the Jacobian of a compute call goes (None: no Jacobian); sets res's arrays."""
        n = len(self.hkl)
        sinks = None
        if jacobian:
            plan_re, plan_im = call.plans
            shape = (n, plan_re.n_out)
            if real:
                if out is None:
                    out = np.zeros(shape)
                elif out.shape != shape or out.dtype != np.float64:
                    raise ValueError(f"out must be float64 with shape {shape}")
                res.jacobian = out
                im = None
                if row_factors is None:
                    res.imag_columns = plan_im.columns.copy()
                    res.jacobian_imag = np.zeros((n, plan_im.n_out))
                    im = _Sink(plan_im, res.jacobian_imag, step)
                sinks = _Output(_Sink(plan_re, out, step), im, row_factors)
            else:
                if out is not None or row_factors is not None:
                    raise ValueError("out and row_factors are for the real Jacobian (real=True)")
                res.jacobian = np.zeros(shape, dtype=complex)
                sinks = _Output(
                    _Sink(plan_re, res.jacobian.real, step), _Sink(plan_im, res.jacobian.imag, step)
                )
        return sinks

    def _compute_compiled(
        self, F: np.ndarray, sinks: _Output | None, call: _Call, jacobian: bool, step: int
    ) -> None:
        """F (and the Jacobian into ``sinks``) by the compiled kernels, on several threads.

        The threads (:func:`engine_threads`) take blocks of reflections from a
        shared counter, each with its own work arrays and sinks (the blocks'
        rows are disjoint), until none is left: a thread that the system
        deschedules on a busy machine does fewer blocks instead of holding up
        the call. Every block gives the same numbers whichever thread does it.
        """
        n = len(self.hkl)
        args = self._kernel_args(call)
        if not jacobian:
            step = _KERNEL_ROWS_F
        n_blocks = -(-n // step)
        min_rows = _MIN_ROWS_JACOBIAN if jacobian else _MIN_ROWS_F
        workers = max(1, min(engine_threads(), n // min_rows, n_blocks))
        counter = itertools.count()

        def run(sk: _Output | None) -> None:
            work = self._work_arrays(call, jacobian, step) + self._radial_work(call, step)
            while (k := next(counter)) < n_blocks:
                sl = slice(k * step, min(n, (k + 1) * step))
                self._compiled_block(sl, F, sk, call, args, jacobian, work)

        if workers == 1:
            run(sinks)
            return
        pool = _pool(workers - 1)
        pending = [
            pool.submit(run, None if sinks is None else sinks.clone()) for _ in range(workers - 1)
        ]
        try:
            run(sinks)
        finally:
            for fut in pending:
                fut.result()

    def _work_arrays(self, call: _Call, jacobian: bool, step: int) -> tuple[np.ndarray, ...]:
        """One thread's arrays: dA/dp and dB/dp of a block in engine columns, and empties."""
        none2 = np.empty((0, 0))
        if not jacobian:
            return none2, none2, none2, np.empty(0)
        want_imag = not (self.centric and not call.anomalous)
        n_e = len(self.parameter_names)
        dB = np.empty((step, n_e)) if want_imag else none2
        return np.empty((step, n_e)), dB, none2, np.empty(0)

    def _radial_work(self, call: _Call, step: int) -> tuple[np.ndarray, np.ndarray]:
        """One thread's radial tables for a block of reflections ((rows, step); last row 0)."""
        if call.radial_plan is None:
            return np.zeros((1, 1)), np.zeros((1, 1))
        rows = len(call.radial_plan[1]) + 1
        return np.zeros((rows, step)), np.zeros((rows, step))

    def _compiled_block(
        self,
        sl: slice,
        F: np.ndarray,
        sinks: _Output | None,
        call: _Call,
        args: tuple[tuple[Any, ...], tuple[Any, ...]],
        jacobian: bool,
        work: tuple[np.ndarray, ...],
    ) -> None:
        """One block of reflections by the kernels (module :mod:`chasm.scattering.kernel`)."""
        dA, dB, none2, none1, jl, djl = work
        head, tail = args
        if call.radial_plan is not None:  # this block's radial tables, columns from sl.start
            _kernel.radial_block(sl.start, sl.stop, *call.radial_plan, jacobian, jl, djl)
        if not jacobian:
            kargs = (*head, jl, djl, sl.start, *tail, self.centric, False, False, F, none2, none2)
            _kernel.sf_block(sl.start, sl.stop, *kargs)
            return
        assert sinks is not None  # a Jacobian has sinks (_sinks)
        # the block's Jacobian is made in the engine's column order in the work arrays,
        # then copied to the sinks' columns (times the row factors when there are any)
        want_imag = dB.size > 0
        t_re, t_im = (plan.target for plan in call.plans)
        nb = sl.stop - sl.start
        kargs = (*head, jl, djl, sl.start, *tail, self.centric, True, want_imag, F, dA, dB)
        _kernel.sf_block(sl.start, sl.stop, *kargs)
        a = dA[:nb]
        b = dB[:nb] if want_imag else none2
        if sinks.row_factors is not None:
            ga, gb = (_row_vector(g, nb) for g in sinks.row_factors(sl, F[sl]))
            mode = 1 if want_imag else 2
            _kernel.scatter(a, b, t_re, t_im, ga, gb, mode, sinks.re.rows(sl), none2)
        else:
            im = sinks.im.rows(sl) if (sinks.im is not None and want_imag) else none2
            _kernel.scatter(a, b, t_re, t_im, none1, none1, 0, sinks.re.rows(sl), im)
        sinks.flush(sl)

    def _kernel_args(self, call: _Call) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """The arrays :func:`chasm.scattering.kernel.sf_block` reads, in its order.

        Two parts: those before and those after the radial tables (jl, djl and
        their first column's reflection), which each thread makes for its block.
        """
        k = self._kernel_fixed()
        n_at = len(call.X)
        models = self.models
        hc_of = np.full(n_at, -1, dtype=np.intp)
        hc_of[call.hc] = np.arange(call.hc.size)
        val_of = np.full(n_at, -1, dtype=np.intp)
        val_of[call.val] = np.arange(call.val.size)
        lmax_of = np.array([getattr(m, "lmax", -1) for m in models], dtype=np.intp)
        n_ops = len(self.rot)
        rot = np.zeros((n_ops, call.hc.size, 3, 3))
        plm = np.zeros((call.hc.size, 25))
        wrot = np.zeros((n_ops, call.hc.size, 25))
        for j, a in enumerate(call.hc):
            m = self._hc_atom(a)
            rot[:, j] = np.asarray(m.frame, dtype=float).T @ self.q_ops
            L2 = (m.lmax + 1) ** 2
            plm[j, :L2] = np.asarray(m.plm, dtype=float)[:L2]
            coef = self.clm[:L2] * plm[j, :L2]
            wrot[:, j, :L2] = np.einsum("okm,m->ok", self._rotations_cached(a), coef)
        n = len(self.hkl)
        rad_index = np.zeros((1, 0), dtype=np.intp) if call.radial is None else call.radial[2]
        valence = np.zeros((2, 1, n)) if call.valence is None else call.valence
        vrow = np.zeros(0, dtype=np.intp) if call.valence_rows is None else call.valence_rows
        fixed, pc_a, pv_a = self._spherical_parts()
        pv = np.zeros(0) if call.pv is None else call.pv
        kappa = np.zeros(0) if call.kappa is None else call.kappa
        # the phase tables exp(2 pi i k x_c), real and imaginary parts as (3, atom, k)
        kmax = max([t.shape[0] for t in call.phase_tables or []] + [1])
        tabs = np.zeros((3, n_at, kmax), dtype=complex)
        for c, t in enumerate(call.phase_tables or []):
            tabs[c, :, : t.shape[0]] = t.T
        head = (
            *k[:4],
            np.ascontiguousarray(tabs.real),
            np.ascontiguousarray(tabs.imag),
            *k[4:7],
            self._kidx is not None,
            k[7],
            call.X,
            call.occ,
            call.aniso,
            call.U6,
            call.uiso,
            self.site_order,
            np.ascontiguousarray(self.fanom.real),
            np.ascontiguousarray(self.fanom.imag),
            fixed,
            pc_a,
            pv_a,
            hc_of,
            lmax_of,
            val_of,
            k[8],
            k[9],
            rot,
            plm,
            wrot,
            k[11],
            k[10],
            _SIGN_L,
        )
        tail = (
            np.ascontiguousarray(rad_index, dtype=np.intp),
            valence[0],
            valence[1],
            vrow,
            np.ascontiguousarray(pv, dtype=float),
            np.ascontiguousarray(kappa, dtype=float),
        )
        return head, tail

    def _valence_table(
        self, cache: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]]
    ) -> np.ndarray:
        """The valence form factors and slopes of ``cache`` as one (2, rows, n) array.

        Kept while the (species, kappa) entries are the same (a call at the same
        kappa values reuses it).
        """
        ids = tuple(cache)  # (species, kappa): the same keys, the same values
        if self._valence_stack is None or self._valence_stack[0] != ids:
            n = len(self.hkl)
            table = np.zeros((2, max(1, len(cache)), n))
            for j, (f, df) in enumerate(cache.values()):
                table[0, j], table[1, j] = f, df
            self._valence_stack = (ids, table)
        return self._valence_stack[1]

    def _spherical_parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per atom: the fixed spherical form factor (atom, n), P_c and P_v (0 when not HC).

        The compiled kernels form f_sph = P_c f_fixed + P_v f_v(s / kappa) (as
        :meth:`_prepare` does for the numpy path, the same operations).
        """
        if self._fixed_atoms is None:
            self._fixed_atoms = np.ascontiguousarray(
                [self._fixed_f[self._fixed_key(m)] for m in self.models], dtype=float
            ).reshape(len(self.models), len(self.hkl))
        pc = np.array([getattr(m, "pc", 0.0) for m in self.models], dtype=float)
        pv = np.array([getattr(m, "pv", 0.0) for m in self.models], dtype=float)
        return self._fixed_atoms, pc, pv

    def _rotations_cached(self, a: int) -> np.ndarray:
        """D((M^T Q_o)^T) of atom a (:meth:`_rotations_for`), kept while its frame is unchanged."""
        m = self._hc_atom(a)
        key = (np.asarray(m.frame, dtype=float).tobytes(), m.lmax)
        cached = self._rot_cache.get(a)
        if cached is None or cached[0] != key:
            cached = self._rot_cache[a] = (key, self._rotations_for(m))
        return cached[1]

    def _kernel_fixed(self) -> tuple[np.ndarray, ...]:
        """Kernel arrays that depend on the reflections and the layout only (made once).

        Reflections are the last axis (contiguous): the kernel's loops run over them.
        """
        if self._kfixed is None:
            n = len(self.hkl)
            kidx = self._kidx if self._kidx is not None else np.zeros((3, 1, 1), dtype=np.intp)
            B = np.asarray(self.crystal.B, dtype=float)
            hc = self.hkl.astype(float) @ B.T
            norm = np.linalg.norm(hc, axis=1)
            uhat = np.where(norm[:, None] > 0, hc / np.where(norm > 0, norm, 1.0)[:, None], 0.0)
            uhat[norm == 0] = (0.0, 0.0, 1.0)
            col0 = np.array([lay.xyz.start for lay in self.layout], dtype=np.intp)
            n_adp = np.array([lay.adp.stop - lay.adp.start for lay in self.layout], dtype=np.intp)
            cnorm = np.zeros(25)
            ylm = np.zeros((25, n))
            if self.lmax >= 0:
                cnorm[: (self.lmax + 1) ** 2] = self.clm * wavefunction_norms(self.lmax)
                ylm[: (self.lmax + 1) ** 2] = self.ylm.T
            htc = self.ht / TWO_PI
            self._kfixed = (
                np.ascontiguousarray(self.hs.transpose(0, 2, 1)),
                np.ascontiguousarray(self.quad.transpose(0, 2, 1)),
                np.ascontiguousarray(self.stol),
                np.ascontiguousarray(kidx, dtype=np.intp),
                np.ascontiguousarray(self._eht.real),
                np.ascontiguousarray(self._eht.imag),
                np.ascontiguousarray(htc) if n else np.zeros((len(self.rot), 0)),
                np.ascontiguousarray(uhat.T),
                col0,
                n_adp,
                cnorm,
                ylm,
            )
        return self._kfixed

    def _imag_sources(self) -> np.ndarray:
        """Engine columns whose dB/dp can be non-zero (module docstring)."""
        if not self.centric:
            return np.arange(len(self.parameter_names))
        cols: list[int] = []
        for lay, fa in zip(self.layout, self.fanom, strict=True):
            if fa.imag != 0.0:
                cols += [*range(lay.xyz.start, lay.xyz.stop), *range(lay.adp.start, lay.adp.stop)]
                cols.append(lay.occ)
        return np.array(sorted(cols), dtype=np.intp)

    def _column_plans(
        self, real: bool, column_map: ColumnMap | None
    ) -> tuple[_ColumnPlan, _ColumnPlan]:
        """Where the real and the imaginary parts of each engine column are written."""
        key = (real, column_map)
        if key not in self._plans:
            n_e = len(self.parameter_names)
            if column_map is None:
                src = dst = np.arange(n_e)
                coef, n_out = np.ones(n_e), n_e
            else:
                src, dst, coef = column_map.src, column_map.dst, column_map.coef
                n_out = len(column_map.names)
            plan_re = _ColumnPlan(n_e, np.arange(n_e), src, dst, coef, n_out)
            imag = self._imag_sources()
            if real:  # compact: only the output columns that imaginary parts reach
                keep = np.isin(src, imag)
                cols = np.unique(dst[keep])
                d = np.searchsorted(cols, dst[keep])
                plan_im = _ColumnPlan(n_e, imag, src[keep], d, coef[keep], cols.size, cols)
            else:
                plan_im = _ColumnPlan(n_e, imag, src, dst, coef, n_out)
            self._plans[key] = (plan_re, plan_im)
        return self._plans[key]

    def _prepare(
        self,
        jacobian: bool,
        real: bool = False,
        column_map: ColumnMap | None = None,
        compiled: bool = False,
    ) -> _Call:
        """What depends on the current parameters but not on the reflection block."""
        X, occ, aniso, U6, uiso = self._atom_arrays()
        n, n_at = len(self.hkl), len(X)
        models = self.models
        hc = np.array(
            [i for i, m in enumerate(models) if isinstance(m, HansenCoppensAtom) and m.lmax >= 0],
            dtype=int,
        )
        val = np.array([i for i, m in enumerate(models) if isinstance(m, HansenCoppensAtom)])
        val = val.astype(int)
        # spherical form factors, kappa-expanded valence parts once per (species, kappa);
        # stored atom by atom ((a, n): contiguous rows), used as (n, a) views (the compiled
        # kernels form them from the valence rows themselves: only those are made here)
        fsph = np.empty((n_at, n)) if not compiled else np.empty((0, n))
        fv = np.empty((len(val) if not compiled else 0, n))
        dfv = np.empty_like(fv)
        vrow = np.zeros(len(val), dtype=np.intp)  # row of each valence atom in the cache
        # valence form factors by (species, kappa), kept from the previous call: a call at
        # the same kappa (F after F + J, a line search, a step that leaves kappa) reuses them
        previous = self._valence_cache
        cache: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] = {}
        for a, m in enumerate(models):
            if isinstance(m, HansenCoppensAtom) and not (m.kappa > 0 and m.kappa_prime > 0):
                raise ModelError(
                    f"atom {self.crystal.atoms[a].label}: kappa ({m.kappa:g}) and kappa' "
                    f"({m.kappa_prime:g}) must be positive"
                )
        k = 0
        for a, m in enumerate(models):
            key = self._fixed_key(m)
            fixed = self._fixed_f[key]
            if not isinstance(m, HansenCoppensAtom):
                if not compiled:
                    fsph[a] = fixed
                continue
            if (key, m.kappa) not in cache:
                if (key, m.kappa) in previous:
                    cache[key, m.kappa] = previous[key, m.kappa]
                else:
                    sp = formfactors.koga_atom(
                        m.element, m.charge, tuple(m.valence) if m.valence else None
                    )
                    cache[key, m.kappa] = sp.valence(self.stol / m.kappa, derivative=True)
            vrow[k] = list(cache).index((key, m.kappa))
            if not compiled:
                fv[k], dfv[k] = cache[key, m.kappa]
                fsph[a] = m.pc * fixed + m.pv * fv[k]
            k += 1
        self._valence_cache = cache
        call = _Call(X=X, occ=occ, aniso=aniso, U6=U6, uiso=uiso, hc=hc, val=val, fsph=fsph.T)
        if compiled:
            call.valence_rows = vrow
            call.valence = self._valence_table(cache)
        call.hc_sel, call.val_sel = _selector(hc), _selector(val)
        if self._kidx is not None:
            call.phase_tables = [
                _unit_phase(np.arange(k0, k0 + nk)[:, None] * X[None, :, c])
                for c, (k0, nk) in enumerate(zip(self._kmin, self._kcount, strict=True))
            ]
        call.anomalous = bool(np.any(self.fanom != 0))
        if hc.size:
            jl, djl, index, call.radial_plan = self._radial(hc, jacobian, deferred=compiled)
            call.radial = (jl, djl, index)
        if hc.size and not compiled:
            rotations = [self._rotations_for(self._hc_atom(a)) for a in hc]
            call.wang = self._angular_weights(hc, rotations)
        if not jacobian:
            return call
        if not compiled:
            call.fv, call.dfv = fv.T, dfv.T
        call.pv = np.array([self._hc_atom(a).pv for a in val], dtype=float)
        call.kappa = np.array([self._hc_atom(a).kappa for a in val], dtype=float)
        if compiled:
            call.plans = self._column_plans(real, column_map)
            return call
        lay = self.layout
        ia, ii = np.flatnonzero(aniso), np.flatnonzero(~aniso)
        call.ia, call.ii = _selector(ia), _selector(ii)
        call.plans = self._column_plans(real, column_map)
        targets = tuple(plan.target for plan in call.plans)
        call.cols_xyz = _Group(targets, [[l.xyz.start + k for l in lay] for k in range(3)])
        call.cols_occ = _Group(targets, [l.occ for l in lay])
        call.cols_aniso = _Group(targets, [[lay[i].adp.start + k for i in ia] for k in range(6)])
        call.cols_uiso = _Group(targets, [lay[i].adp.start for i in ii])
        call.cols_pv = _Group(targets, [lay[i].pv for i in val])
        call.cols_kappa = _Group(targets, [lay[i].kappa for i in val])
        call.cols_kappa_prime = _Group(targets, [lay[i].kappa_prime for i in hc])
        call.groups = [] if not hc.size else self._multipole_groups(hc, rotations, targets)
        return call

    def _multipole_groups(
        self, hc: np.ndarray, rotations: list[np.ndarray], targets: tuple[np.ndarray, ...]
    ) -> list[_MultipoleGroup]:
        """HC atoms grouped by lmax, with their rotation blocks D^l side by side.

        D is block diagonal in l, so the P_lm columns of one l need only the
        harmonics of that l. For each l the columns are ordered (m, atom) and
        c_lm is folded in.
        """
        groups = []
        for L in sorted({self.models[a].lmax + 1 for a in hc}):
            members = [k for k, a in enumerate(hc) if self.models[a].lmax + 1 == L]
            atoms = hc[members]
            start = np.array([cast(slice, self.layout[a].plm).start for a in atoms])
            D: list[np.ndarray] = []
            cols: list[_Group] = []
            for l in range(L):
                k0, k1 = l * l, (l + 1) ** 2
                blocks = [rotations[k][:, k0:k1, k0:k1] * self.clm[k0:k1] for k in members]
                Dl = np.stack(blocks, axis=-1)  # (o, k, m, atom)
                D.append(np.moveaxis(Dl, 0, 1).reshape(k1 - k0, -1))  # (k, (o, m, atom))
                cols.append(_Group(targets, np.arange(k0, k1)[:, None] + start))
            groups.append(
                _MultipoleGroup(
                    atoms=_selector(atoms), hc=_selector(np.array(members)), D=D, cols=cols
                )
            )
        return groups

    def _block(self, sl: slice, F: np.ndarray, sinks: _Output | None, call: _Call) -> None:
        hs = self.hs[:, sl]  # (o, nb, 3)
        quad = self.quad[:, sl]  # (o, nb, 6)
        s = self.stol[sl]
        nb = len(s)
        n_ops = len(self.rot)
        X, occ, aniso = call.X, call.occ, call.aniso
        n_at = len(X)
        centric = self.centric
        hc = call.hc
        fa = self.fanom

        # Debye-Waller factors and phases, (o, nb, a): E0 = C + i S per unit occupancy
        expo = np.empty((n_ops, nb, n_at))
        if aniso.any():
            ut = -2.0 * np.pi**2 * call.U6[aniso].T
            for o in range(n_ops):
                expo[o][:, aniso] = _serial_matmul(quad[o], ut)
        if (~aniso).any():
            expo[..., ~aniso] = (-8.0 * np.pi**2 * s**2)[None, :, None] * call.uiso[~aniso]
        T = np.exp(expo, out=expo)
        T /= self.site_order
        if self._kidx is None:
            E = _unit_phase(hs @ X.T)
        else:
            E = np.take(call.phase_tables[0], self._kidx[0, :, sl], axis=0)
            for c in (1, 2):
                E *= np.take(call.phase_tables[c], self._kidx[c, :, sl], axis=0)
        E *= self._eht[:, sl, None]
        C = E.real * T
        S = E.imag * T
        del E, T

        # form factors f = fR + i fI, (o, nb, a): the multipoles of odd l are imaginary
        fR = np.empty((n_ops, nb, n_at))
        fR[:] = call.fsph[sl]
        if hc.size:
            radial = call.radial
            assert call.wang is not None and radial is not None  # _prepare, with HC atoms
            ang = self._angular_sums(sl, call.wang)  # (nb, o, lmax+1, n_hc)
            jl = self._radial_block(radial, 0, sl)  # (nb, lmax+1, n_hc)
            mR, mI = _radial_sums(ang, jl)
            fR[:, :, call.hc_sel] += mR
            fI = np.zeros((n_ops, nb, n_at))
            fI[:, :, call.hc_sel] = mI
            XR = C * fR
            XR -= S * fI
            XI = S * fR
            XI += C * fI
            del fI
        else:
            XR, XI = C * fR, S * fR
        del fR
        Gu: np.ndarray
        if centric:  # the inversion partner: 2 Re(E0 f) + 2 f_anom Re(E0)
            Gu = 2.0 * XR
            if call.anomalous:
                Gu = Gu + 2.0 * fa * C
        else:
            Gu = XR + 1j * XI
            if call.anomalous:
                Gu += fa * (C + 1j * S)
        F[sl] += np.einsum("na,a->n", Gu.sum(axis=0), occ)
        if sinks is None:
            return

        # ---- derivatives, written straight into the block's rows of the Jacobian (or into
        # a block buffer with a column map): the real part of every column, the imaginary
        # part of the columns where it can be non-zero (the rest stays zero); or, with row
        # factors (F of the block is final now), ga Re + gb Im of every column
        ga = gb = None
        if sinks.row_factors is not None:
            ga, gb = (np.asarray(g, dtype=float) for g in sinks.row_factors(sl, F[sl]))

        def put(cols: _Group | None, v: np.ndarray) -> None:
            assert sinks is not None and cols is not None  # set by _prepare with a Jacobian
            cols.write(sinks.re, sinks.im, sl, v, ga, gb)

        Gx: np.ndarray
        if centric:
            Gx = -2.0 * XI
            if call.anomalous:
                Gx = Gx - 2.0 * fa * S
        else:
            Gx = 1j * Gu
        del XR, XI
        dx = _sum_ops_outer(hs, Gx)  # sum_o (h R)_k Gx for x, y, z: (n, k, a)
        dx *= TWO_PI * occ
        put(call.cols_xyz, dx)
        del Gx, dx
        Gsum = Gu.sum(axis=0)  # (nb, a)
        put(call.cols_occ, Gsum)
        ia, ii = call.ia, call.ii
        assert call.cols_aniso is not None and call.cols_uiso is not None and ii is not None
        if call.cols_aniso.size:  # sum_o quad[o, n, k] Gu[o, n, a] for the six U_k: (n, k, a)
            du = _sum_ops_outer(quad, Gu[..., ia])
            du *= -2.0 * np.pi**2 * occ[ia]
            put(call.cols_aniso, du)
        if call.cols_uiso.size:
            put(call.cols_uiso, (-8.0 * np.pi**2 * s**2)[:, None] * Gsum[:, ii] * occ[ii])
        del Gu

        val = call.val_sel
        if call.val.size:
            assert call.fv is not None and call.dfv is not None
            assert call.pv is not None and call.kappa is not None
            Esum: np.ndarray
            if centric:
                Esum = 2.0 * C[:, :, val].sum(axis=0)
            else:
                Esum = C[:, :, val].sum(axis=0) + 1j * S[:, :, val].sum(axis=0)
            e = Esum * occ[val]
            put(call.cols_pv, e * call.fv[sl])
            put(call.cols_kappa, e * call.pv * call.dfv[sl] * (-s[:, None] / call.kappa**2))

        if hc.size:
            # P_lm: sum_o E0 4 pi i^l <j_l> c_lm y_lm(S h) occ, for the atoms of one lmax and
            # one l at once. With w = 4 pi <j_l> occ i^l (real part of i^l for even l, of
            # i^l / i for odd l): Re, Im = (sum C Y w, sum S Y w) for even l and
            # (-sum S Y w, sum C Y w) for odd l; centric: 2 Re only.
            two = 2.0 if centric else 1.0
            for g in call.groups:
                for l, (D, cols) in enumerate(zip(g.D, g.cols, strict=True)):
                    Y = _serial_matmul(self.ylm[sl, l * l : (l + 1) ** 2], D)  # (nb, (o, m, a))
                    w = jl[:, l, g.hc] * (occ[g.atoms] * (two * FOUR_PI * _SIGN_L[l]))
                    odd = l % 2 == 1
                    if centric:
                        put(cols, _sum_ops_weighted((S if odd else C)[:, :, g.atoms], w, Y, odd))
                    else:
                        accC = _sum_ops_weighted(C[:, :, g.atoms], w, Y, False)
                        accS = _sum_ops_weighted(S[:, :, g.atoms], w, Y, odd)
                        put(cols, accS + 1j * accC if odd else accC + 1j * accS)

            # kappa': sum_l 4 pi i^l d<j_l>/dkappa' S_l, i.e. E0 (dkR + i dkI)
            assert radial is not None  # (as above: mypy forgets it across the blocks)
            dkR, dkI = _radial_sums(ang, self._radial_block(radial, 1, sl))
            Ch, Sh = C[:, :, call.hc_sel], S[:, :, call.hc_sel]
            dk: np.ndarray = (Ch * dkR - Sh * dkI).sum(axis=0)
            if centric:
                dk = 2.0 * dk
            else:
                dk = dk + 1j * (Sh * dkR + Ch * dkI).sum(axis=0)
            put(call.cols_kappa_prime, dk * occ[call.hc_sel])
        sinks.flush(sl)

    def _radial(
        self, hc: np.ndarray, jacobian: bool, deferred: bool = False
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray, RadialPlan | None]:
        """<j_l>(K) with zeta kappa' and d/dkappa', once per distinct (l, n_l, zeta kappa').

        Returns the distinct transforms and their derivatives, (n_distinct + 1, n), the
        last row zero, and for every (l, HC atom) the row to use, (lmax+1, n_hc): the
        zero row beyond the atom's lmax. The transforms of one (l, n_l) are computed
        together. With ``deferred`` (the compiled engine) the tables are not made
        (None): the fourth item is the plan of
        :func:`chasm.scattering.kernel.radial_block`, by which each engine thread
        fills tables of its block of reflections just before using them (the same
        numbers, on every core instead of one, and (rows, 128) per thread instead of
        (rows, n): 130 MiB for 132 atoms and 16,555 reflections); otherwise it is
        None.
        """
        K = self.K
        users: dict[tuple[int, int, float, float], list[tuple[int, int]]] = {}
        for h, a in enumerate(hc):  # (l, n_l, zeta kappa', zeta) -> [(l, HC atom)]
            m = self._hc_atom(a)
            assert m.n_l is not None and m.zeta is not None  # set by HansenCoppensAtom
            for l in range(m.lmax + 1):
                users.setdefault((l, m.n_l[l], m.zeta * m.kappa_prime, m.zeta), []).append((l, h))
        same: dict[tuple[int, int], list[tuple[int, int, float, float]]] = {}
        for key in users:
            same.setdefault(key[:2], []).append(key)
        index = np.full((self.lmax + 1, len(hc)), len(users), dtype=np.intp)
        # the tables are private to one compute call: reuse the last call's arrays
        # (none with ``deferred``: the threads make tables of their blocks)
        shape = (len(users) + 1, len(K))
        jl: np.ndarray | None
        djl: np.ndarray | None
        if deferred:
            jl = djl = None
        else:
            if self._radial_tables is None or self._radial_tables[0].shape != shape:
                self._radial_tables = (np.zeros(shape), np.zeros(shape))
            jl, djl = self._radial_tables
        row = 0
        plan: list[tuple[int, int, float, float]] = []
        for (l, n_l), keys in same.items():
            zk = np.array([key[2] for key in keys])
            kp = zk / np.array([key[3] for key in keys])
            if deferred:
                plan += [(l, n_l, z, k) for z, k in zip(zk, kp, strict=True)]
            else:
                assert jl is not None and djl is not None
                v, dv = _slater_bessel_kappa(l, n_l, zk, kp, K, jacobian)
                jl[row : row + len(keys)] = v
                djl[row : row + len(keys)] = 0.0 if dv is None else dv
            for key in keys:
                for lh in users[key]:
                    index[lh] = row
                row += 1
        return jl, djl, index, (_radial_plan(plan, K) if deferred else None)

    @staticmethod
    def _radial_block(radial: tuple[Any, ...], which: int, sl: slice) -> np.ndarray:
        """<j_l> (which 0) or d<j_l>/dkappa' (which 1) on a block, (nb, lmax+1, n_hc)."""
        rows = np.take(radial[which][:, sl], radial[2], axis=0)  # (lmax+1, n_hc, nb)
        return np.moveaxis(rows, -1, 0)  # a view: its users make new arrays from it anyway

    def _angular_weights(self, hc: np.ndarray, rotations: list[np.ndarray]) -> np.ndarray:
        """Rotated coefficients, (nlm, (o, lmax+1, n_hc)), zero beyond an atom's lmax."""
        lmax = self.lmax
        nlm = (lmax + 1) ** 2
        W = np.zeros((nlm, len(self.rot), lmax + 1, len(hc)))
        for k, a in enumerate(hc):
            m = self._hc_atom(a)
            L = m.lmax + 1
            coeff = self.clm[: L * L] * m.plm  # orthonormal-basis coefficients
            rc = np.einsum("okm,m->ok", rotations[k], coeff)  # rotated coefficients
            for l in range(L):
                k0, k1 = l * l, (l + 1) ** 2
                W[k0:k1, :, l, k] = rc[:, k0:k1].T
        return W.reshape(nlm, -1)

    def _angular_sums(self, sl: slice, W: np.ndarray) -> np.ndarray:
        """sum_m a_lm y_lm(S h) for every op, l and HC atom, (nb, o, lmax+1, n_hc)."""
        S = _serial_matmul(self.ylm[sl], W)
        return S.reshape(S.shape[0], len(self.rot), self.lmax + 1, -1)


# i^l = _SIGN_L[l] for even l and i _SIGN_L[l] for odd l (l = 0..4)
_SIGN_L = np.array([1.0, 1.0, -1.0, -1.0, 1.0])
# reflections per block when the Jacobian is computed (the block's arrays stay in cache)
_JACOBIAN_ROWS = 256
# the same for the compiled kernels (one block is shared among the threads)
_KERNEL_ROWS = 128
BACKENDS = ("numba", "numpy")
# fewest reflections worth a thread of their own (F alone, F and Jacobian)
_MIN_ROWS_F, _MIN_ROWS_JACOBIAN = 1024, 128
# reflections per block of the compiled kernels for F alone
_KERNEL_ROWS_F = 1024
_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}


def engine_threads() -> int:
    """Threads of the compiled engine: ``CHASM_ENGINE_THREADS``, else every usable core."""
    text = os.environ.get("CHASM_ENGINE_THREADS", "").strip()
    if text:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise InputError(
                f"environment variable CHASM_ENGINE_THREADS={text!r}: the engine's thread "
                "count must be a whole number >= 1; unset it to use every core"
            )
        return value
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _pool(workers: int) -> ThreadPoolExecutor:
    """A shared thread pool with at least ``workers`` threads (made on first use).

    Pools are kept per process: a child made by fork has none of its
    parent's threads, so it makes its own.
    """
    from concurrent.futures import ThreadPoolExecutor

    pid = os.getpid()
    for (owner, size), pool in _POOLS.items():
        if owner == pid and size >= workers:
            return pool
    pool = ThreadPoolExecutor(workers, thread_name_prefix="chasm-engine")
    _POOLS[pid, workers] = pool
    return pool


def engine_backend(backend: str | None = None) -> str:
    """The engine's backend: ``backend``, else ``CHASM_ENGINE``, else numba when installed.

    Raises
    ------
    InputError
        For a name other than "numba" or "numpy".
    """
    name = backend if backend is not None else os.environ.get("CHASM_ENGINE", "").strip()
    name = (name or "numba").lower()
    if name not in BACKENDS:
        raise InputError(
            f"environment variable CHASM_ENGINE={name!r}: the structure-factor engine must be "
            "'numba' (compiled, the default) or 'numpy' (the reference path); "
            "unset it or set one of these"
        )
    if name == "numba" and not _kernel.HAVE_NUMBA:
        return "numpy"
    return name


# OpenBLAS runs a GEMM on one thread when m n k <= 2^18 (interface/gemm.c)
_SERIAL_GEMM = 1 << 18


@dataclass
class _MultipoleGroup:
    """HC atoms of one lmax whose P_lm columns are computed together."""

    atoms: slice | np.ndarray  # atom indices
    hc: slice | np.ndarray  # positions in the list of HC atoms (radial tables)
    D: list[np.ndarray]  # per l: (2l+1, (o, m, atom)), c_lm-scaled rotation blocks side by side
    cols: list[_Group]  # per l: _Group of the P_lm in the same (m, atom) order


@dataclass
class _Call:
    """Per-call quantities of :meth:`StructureFactorEngine.compute`."""

    X: np.ndarray
    occ: np.ndarray
    aniso: np.ndarray
    U6: np.ndarray
    uiso: np.ndarray
    hc: np.ndarray
    val: np.ndarray
    fsph: np.ndarray
    phase_tables: list[np.ndarray] = field(default_factory=list)
    anomalous: bool = False
    wang: np.ndarray | None = None
    radial: tuple[Any, ...] | None = None  # jl, djl (None when compiled), row index
    # the compiled engine's tables are filled block by block
    radial_plan: RadialPlan | None = None
    fv: np.ndarray | None = None
    dfv: np.ndarray | None = None
    # compiled: the valence form factors and slopes (2, rows, n), a row per atom of val
    valence: np.ndarray | None = None
    valence_rows: np.ndarray | None = None
    pv: np.ndarray | None = None
    kappa: np.ndarray | None = None
    plans: tuple[_ColumnPlan, ...] = ()
    cols_xyz: _Group | None = None
    cols_occ: _Group | None = None
    hc_sel: slice | np.ndarray | None = None
    val_sel: slice | np.ndarray | None = None
    ia: slice | np.ndarray | None = None
    ii: slice | np.ndarray | None = None
    cols_aniso: _Group | None = None
    cols_uiso: _Group | None = None
    cols_pv: _Group | None = None
    cols_kappa: _Group | None = None
    cols_kappa_prime: _Group | None = None
    groups: list[_MultipoleGroup] = field(default_factory=list)


def _row_vector(g: ArrayLike, rows: int) -> np.ndarray:
    """g as a writable, contiguous float64 vector of ``rows`` values (a scalar is broadcast)."""
    if (
        isinstance(g, np.ndarray)
        and g.dtype == np.float64
        and g.shape == (rows,)
        and g.flags.c_contiguous
        and g.flags.writeable
    ):
        return g
    return np.require(np.broadcast_to(np.asarray(g, dtype=float), (rows,)), None, ("C", "W"))


def _serial_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b for 2-D a, b, in row chunks small enough for a threaded BLAS to stay serial.

    The engine's products are small and interleaved with numpy work: threaded,
    each of them costs more in waking and synchronising threads than it
    computes, and far more on a busy machine.
    """
    m, k = a.shape
    n = b.shape[1]
    rows = max(1, _SERIAL_GEMM // max(1, n * k))
    if rows >= m:
        prod: np.ndarray = a @ b
        return prod
    out = np.empty((m, n))
    for r in range(0, m, rows):
        np.matmul(a[r : r + rows], b, out=out[r : r + rows])
    return out


def _unit_phase(cycles: np.ndarray) -> np.ndarray:
    """exp(2 pi i t), reduced to |t| <= 1/2 first (exact) so cos and sin stay accurate."""
    t = cycles - np.rint(cycles)
    t *= TWO_PI
    out = np.empty(t.shape, dtype=complex)
    out.real = np.cos(t)
    out.imag = np.sin(t)
    return out


def _slater_bessel_kappa(
    l: int, n: int, zk: ArrayLike, kappa_prime: ArrayLike, K: np.ndarray, derivative: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """<j_l>(K) of Slater functions r^n exp(-zk r) and d<j_l>/dkappa', zk = zeta kappa'.

    Several exponents at once, (n_zk, n_K) each. With x = zk/rho, y = K/rho,
    rho = sqrt(K² + zk²), m = n + 3 and C = C^(l+1)_(n+1-l) (Gegenbauer), the
    closed form of :func:`chasm.density.radial.slater_bessel` is

        <j_l> = c y^l x^m C(x),   c = 2^l l! (n+1-l)! / (n+2)!,

    a function of K / zk alone, so that kappa' d/dkappa' = -K d/dK gives

        d<j_l>/dkappa' = c y^l x^m [y² (m C(x) + x C'(x)) - l x² C(x)] / kappa'

    (y² = 1 - x² taken from K, so that the small derivatives at low K keep
    their digits). C and m C + x C' are x^p times polynomials in x², p =
    (n + 1 - l) mod 2 (:func:`_radial_polynomials`), evaluated by Horner's rule;
    integer powers by products. No pow calls and no dK derivative (what this
    engine needs of the general function).
    """
    value_poly, slope_poly, power = _radial_polynomials(l, n)
    zk2 = np.asarray(zk, dtype=float)[:, None]
    inv = np.sqrt(K * K + zk2 * zk2)
    np.divide(1.0, inv, out=inv)
    x = zk2 * inv
    y = np.multiply(K, inv, out=inv)
    front = _int_power(x, power)
    if l:
        front *= _int_power(y, l)
    t = np.multiply(x, x, out=x)
    p = _horner(value_poly, t)
    value = front * p
    if not derivative:
        return value, None
    bracket = _horner(slope_poly, t) * np.multiply(y, y, out=y)
    if l:
        bracket -= l * t * p
    front /= np.asarray(kappa_prime, dtype=float)[:, None]
    return value, front * bracket


def _radial_plan(rows: list[tuple[int, int, float, float]], K: np.ndarray) -> RadialPlan:
    """Arguments of :func:`chasm.scattering.kernel.radial_block` for table rows (l, n_l, zk, kp).

    The polynomials of :func:`_radial_polynomials` of every row side by side
    (offsets and lengths), so that the kernel evaluates exactly what
    :func:`_slater_bessel_kappa` does.
    """
    polys = [_radial_polynomials(int(l), int(n)) for l, n, _, _ in rows]
    vlen = np.array([len(v) for v, _, _ in polys], dtype=np.intp)
    slen = np.array([len(sp) for _, sp, _ in polys], dtype=np.intp)
    voff = np.concatenate([[0], np.cumsum(vlen)[:-1]]).astype(np.intp)
    soff = np.concatenate([[0], np.cumsum(slen)[:-1]]).astype(np.intp)

    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts) if parts else np.zeros(0)

    return (
        np.ascontiguousarray(K, dtype=float),
        np.array([int(r[0]) for r in rows], dtype=np.intp),
        np.array([p for _, _, p in polys], dtype=np.intp),
        np.array([float(r[2]) for r in rows]),
        np.array([float(r[3]) for r in rows]),
        voff,
        vlen,
        soff,
        slen,
        cat([v for v, _, _ in polys]),
        cat([sp for _, sp, _ in polys]),
    )


@cache
def _radial_polynomials(l: int, n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Coefficients (ascending, in x²) of c C(x) / x^p and c (m C + x C') / x^p, and m + p.

    See :func:`_slater_bessel_kappa`. The Gegenbauer coefficients are integers,
    so both polynomials are exact up to the factor c.
    """
    d = n + 1 - l
    if d < 0:
        raise ModelError(f"Slater radial function with n = {n} cannot carry l = {l} (n >= l - 1)")
    m = n + 3
    gegen = np.zeros(d + 1)
    for k in range(d // 2 + 1):
        ways = factorial(d - k + l) // (factorial(l) * factorial(k) * factorial(d - 2 * k))
        gegen[d - 2 * k] = (-1) ** k * ways * 2 ** (d - 2 * k)
    slope = m * gegen + np.arange(d + 1) * gegen  # m C + x C'
    c = 2**l * factorial(l) * factorial(d) / factorial(n + 2)
    p = d % 2
    return c * gegen[p::2], c * slope[p::2], m + p


def _horner(coef: np.ndarray, t: np.ndarray) -> np.ndarray | float:
    """sum_k coef[k] t^k."""
    if len(coef) == 1:
        c0: float = coef[0]
        return c0
    out: np.ndarray = coef[-1] * t
    out += coef[-2]
    for c in coef[-3::-1]:
        out *= t
        out += c
    return out


def _int_power(a: np.ndarray, p: int) -> np.ndarray:
    """a**p for an integer p >= 1 by repeated squaring (no pow calls)."""
    out: np.ndarray | None = None
    base = a
    while True:
        if p & 1:
            out = base.copy() if out is None else out * base
        p >>= 1
        if not p:
            assert out is not None  # set at the highest bit of p
            return out
        base = base * base


def _radial_sums(ang: np.ndarray, radial: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sum_l 4 pi i^l radial_l S_l, split into its real (even l) and imaginary (odd l) part.

    ang (nb, o, L, n_hc), radial (nb, L' >= L, n_hc); returns two (o, nb, n_hc) views.
    """
    parts: list[np.ndarray | None] = [None, None]
    for l in range(ang.shape[2]):
        term = ang[:, :, l] * (FOUR_PI * _SIGN_L[l] * radial[:, l])[:, None, :]
        part = parts[l % 2]
        if part is None:
            parts[l % 2] = term
        else:
            part += term
    even, odd = parts
    assert even is not None  # l = 0 is always there
    if odd is None:
        odd = np.zeros_like(even)
    return even.transpose(1, 0, 2), odd.transpose(1, 0, 2)


def _sum_ops_outer(v: np.ndarray, g: np.ndarray) -> np.ndarray:
    """sum_o v[o, n, k] g[o, n, a] -> (n, k, a), v real, g real or complex."""
    if np.iscomplexobj(g):  # einsum's mixed real/complex path is slow
        return _sum_ops_outer(v, g.real) + 1j * _sum_ops_outer(v, g.imag)
    out: np.ndarray = np.einsum("onk,ona->nka", v, g)
    return out


def _sum_ops_weighted(p: np.ndarray, w: np.ndarray, y: np.ndarray, negate: bool) -> np.ndarray:
    """(-) sum_o p[o, n, a] w[n, a] y[n, (o, m, a)] -> (n, (m, a))."""
    n, na = w.shape
    q = p.transpose(1, 0, 2) * (-w if negate else w)[:, None, :]  # (n, o, a)
    out: np.ndarray = np.einsum("noma,noa->nma", y.reshape(n, len(p), -1, na), q)
    return out.reshape(n, -1)


def _selector(indices: ArrayLike) -> slice | np.ndarray:
    """A slice when the indices are a contiguous increasing range (views, no copies)."""
    index = np.asarray(indices, dtype=np.intp).reshape(-1)
    if index.size and np.array_equal(index, np.arange(index[0], index[0] + index.size)):
        return slice(int(index[0]), int(index[0]) + index.size)
    return index


class _Columns:
    """Columns of a Jacobian block to write values to, in the values' column order.

    ``cols`` is a 1-D list or a 2-D array (values flattened row-major). When
    the columns are an affine pattern c0 + i di + j dj (atoms with equally
    spaced column blocks), writing goes through a strided view, which is
    faster than fancy indexing.
    """

    def __init__(self, columns: ArrayLike) -> None:
        cols = np.asarray(columns, dtype=np.intp)
        c2 = cols.reshape(1, -1) if cols.ndim == 1 else cols
        self.cols = cols.reshape(-1)
        self.size: int = self.cols.size
        self.affine: tuple[int, tuple[int, ...], int, int] | None = None
        if self.size:
            di = int(c2[1, 0] - c2[0, 0]) if c2.shape[0] > 1 else 0
            dj = int(c2[0, 1] - c2[0, 0]) if c2.shape[1] > 1 else 0
            c0 = int(c2[0, 0])
            grid = c0 + di * np.arange(c2.shape[0])[:, None] + dj * np.arange(c2.shape[1])
            if np.array_equal(grid, c2) and di >= 0 and dj >= 0:
                self.affine = (c0, c2.shape, di, dj)

    def write(
        self, buf: np.ndarray, values: np.ndarray | float, factor: np.ndarray | None = None
    ) -> None:
        """buf[:, cols] = values (values of shape (rows, ...) with size columns, or a scalar).

        ``factor`` (one per row) multiplies the values on the way.
        """
        if self.affine is not None:
            self.fill(self.strided(buf), values, factor)
            return
        if not np.isscalar(values):
            values = np.reshape(values, (len(buf), -1))
            if factor is not None:
                values = values * factor[:, None]
        buf[:, self.cols] = values

    def strided(self, buf: np.ndarray) -> np.ndarray:
        """The (affine) columns of buf as a (rows, k, m) strided view."""
        assert self.affine is not None  # callers check
        c0, shape, di, dj = self.affine
        row, col = buf.strides
        return np.lib.stride_tricks.as_strided(
            buf[:, c0:], shape=(buf.shape[0],) + shape, strides=(row, di * col, dj * col)
        )

    @staticmethod
    def fill(
        view: np.ndarray, values: np.ndarray | float, factor: np.ndarray | None = None
    ) -> None:
        """view[...] = values (times factor, one per row), values reshaped to the view."""
        if np.isscalar(values):
            view[...] = values
        elif factor is None:
            view[...] = np.reshape(values, view.shape)
        else:
            f = factor.reshape((-1,) + (1,) * (view.ndim - 1))
            np.multiply(np.reshape(values, view.shape), f, out=view)


class _ColumnPlan:
    """Where the engine writes one part (real or imaginary) of each of its columns.

    ``target[c]`` is the column of the write buffer for engine column c (-1: not
    written). An engine column with a single entry of coefficient 1 whose
    output column is not yet taken is written straight to that output column;
    every other one gets a scratch column beyond ``n_out``, from which
    :meth:`_Sink.flush` adds it to its output columns. The additions are
    grouped into runs of consecutive columns with one coefficient (the
    populations of a split atom map to charge and spin column blocks), so
    each is one operation on column ranges.

    Parameters
    ----------
    n_engine : int
        Number of engine columns.
    sources : array of int
        The engine columns written for this part.
    src, dst, coef : arrays
        Entries of the map (:class:`ColumnMap`), dst already in output columns.
    n_out : int
        Width of the output.
    columns : array of int, optional
        What the output columns are (for a compact imaginary part); default all.
    """

    def __init__(
        self,
        n_engine: int,
        sources: ArrayLike,
        src: np.ndarray,
        dst: np.ndarray,
        coef: np.ndarray,
        n_out: int,
        columns: ArrayLike | None = None,
    ) -> None:
        sources = np.asarray(sources, dtype=np.intp)
        by_src: dict[int, list[tuple[int, float]]] = {}
        for s, d, c in zip(src.tolist(), dst.tolist(), coef.tolist(), strict=True):
            by_src.setdefault(s, []).append((d, c))
        self.target = np.full(n_engine, -1, dtype=np.intp)
        taken = np.zeros(n_out, dtype=bool)
        entries: list[tuple[int, int, float]] = []
        width = n_out
        for s in sources.tolist():
            es = by_src.get(s, [])
            if len(es) == 1 and es[0][1] == 1.0 and not taken[es[0][0]]:
                self.target[s] = es[0][0]
                taken[es[0][0]] = True
            else:  # fan-out, a coefficient, a shared output column, or not an output
                self.target[s] = width
                entries += [(d, width, c) for d, c in es]
                width += 1
        self.n_out, self.width = n_out, width
        self.direct = width == n_out
        self.columns = np.arange(n_out) if columns is None else np.asarray(columns, np.intp)
        zero = sorted({d for d, _, _ in entries if not taken[d]})
        self.zero = [slice(d0, d1 + 1) for d0, d1, *_ in _runs([(d, d, 1.0) for d in zero])]
        self.ops = [
            (slice(d0, d1 + 1), slice(s0, s1 + 1), c) for d0, d1, s0, s1, c in _runs(entries)
        ]


def _runs(entries: Iterable[tuple[int, int, float]]) -> list[list[Any]]:
    """(d, s, c) entries as runs d0..d1 <- s0..s1 of consecutive columns and one coefficient."""
    out: list[list[Any]] = []
    for d, s, c in sorted(entries, key=lambda e: (e[1] - e[0], e[2], e[0])):
        if out and d == out[-1][1] + 1 and s == out[-1][3] + 1 and c == out[-1][4]:
            out[-1][1], out[-1][3] = d, s
        else:
            out.append([d, d, s, s, c])
    return out


class _Sink:
    """One part of the Jacobian being filled: the output rows, or a block buffer first."""

    def __init__(self, plan: _ColumnPlan, out: np.ndarray, rows: int) -> None:
        self.plan, self.out = plan, out
        self.buf = None if plan.direct else np.zeros((rows, plan.width))
        self._views: dict[_Columns, np.ndarray] = {}

    def clone(self) -> _Sink:
        """The same plan and output with a work buffer of its own."""
        rows = 0 if self.buf is None else self.buf.shape[0]
        return _Sink(self.plan, self.out, rows)

    def rows(self, sl: slice) -> np.ndarray:
        """Where the engine writes the block's values (columns: ``plan.target``)."""
        if self.buf is None:
            return self.out[sl]
        return self.buf[: sl.stop - sl.start]

    def put(
        self,
        cols: _Columns,
        sl: slice,
        values: np.ndarray | float,
        factor: np.ndarray | None = None,
    ) -> None:
        """Write a block's values to the columns ``cols`` (strided views made once per call)."""
        if cols.affine is None:
            cols.write(self.rows(sl), values, factor)
            return
        view = self._views.get(cols)
        if view is None:
            view = self._views[cols] = cols.strided(self.out if self.buf is None else self.buf)
        cols.fill(view[sl] if self.buf is None else view[: sl.stop - sl.start], values, factor)

    def flush(self, sl: slice) -> None:
        """Apply the map to the block buffer and copy it into the output rows."""
        if self.buf is None:
            return
        b = self.buf[: sl.stop - sl.start]
        plan = self.plan
        for d in plan.zero:
            b[:, d] = 0.0
        for d, s, c in plan.ops:
            if c == 1.0:
                b[:, d] += b[:, s]
            else:
                b[:, d] += c * b[:, s]
        self.out[sl] = b[:, : plan.n_out]


@dataclass
class _Output:
    """Where a compute call's Jacobian goes: real part, imaginary part (or None), row factors."""

    re: _Sink
    im: _Sink | None
    row_factors: RowFactors | None = None

    def flush(self, sl: slice) -> None:
        self.re.flush(sl)
        if self.im is not None:
            self.im.flush(sl)

    def clone(self) -> _Output:
        """The same outputs with work buffers of its own (for another thread)."""
        im = None if self.im is None else self.im.clone()
        return _Output(self.re.clone(), im, self.row_factors)


class _Group:
    """The columns of one kind of derivative (e.g. x, y, z of all atoms), both parts.

    ``index`` holds engine columns, (k, atom) or (atom,), in the order of the
    values written. The imaginary part is written for the atoms (last axis)
    whose columns are imaginary sources of the plan; none when there are none.
    """

    def __init__(self, targets: tuple[np.ndarray, ...], index: ArrayLike) -> None:
        index = np.asarray(index, dtype=np.intp)
        t_re, t_im = targets
        self.shape = index.shape
        self.re = _Columns(t_re[index])
        im = t_im[index] >= 0 if index.size else np.zeros(index.shape, bool)
        self.im, self.sel = None, None
        if im.any():
            atoms = np.flatnonzero(im.reshape(-1, index.shape[-1]).all(axis=0))
            keep = np.zeros(index.shape[-1], bool)
            keep[atoms] = True
            if not np.array_equal(im, np.broadcast_to(keep, im.shape)):
                raise AssertionError("imaginary parts must be written atom by atom")
            self.im = _Columns(t_im[index[..., atoms]])
            self.sel = None if atoms.size == index.shape[-1] else atoms

    @property
    def size(self) -> int:
        return self.re.size

    def write(
        self,
        re: _Sink,
        im: _Sink | None,
        sl: slice,
        v: np.ndarray,
        ga: np.ndarray | None = None,
        gb: np.ndarray | None = None,
    ) -> None:
        """Write a block's values v (rows, then the index shape, maybe flattened).

        With row factors ga, gb: ga Re v + gb Im v into the real part alone.
        """
        cplx = np.iscomplexobj(v)
        if ga is not None and not cplx:
            re.put(self.re, sl, v, ga)
            return
        if ga is not None:
            assert gb is not None  # row factors come in pairs
            shape = (len(ga),) + (1,) * (np.ndim(v) - 1)
            w = v.real * ga.reshape(shape)
            w += v.imag * gb.reshape(shape)
            re.put(self.re, sl, w)
            return
        re.put(self.re, sl, v.real if cplx else v)
        if self.im is None or im is None:
            return
        if not cplx:
            im.put(self.im, sl, 0.0)
            return
        vi = v.imag
        if self.sel is not None:
            vi = vi.reshape((sl.stop - sl.start,) + self.shape)[..., self.sel]
        im.put(self.im, sl, vi)

"""Aspherical spin density of a d ion: multipoles l = 0, 2, 4 with tabulated ⟨j_l⟩.

Model (issue 4, model 2c)
-------------------------
The spin density of a transition-metal ion is a d shell with one radial
function R_3d (normalised, ∫ R_3d² r² dr = 1) and a 5 × 5 spin-population
matrix; expanded on chasm's density-normalised real harmonics (CONVENTIONS.md,
:mod:`chasm.density.dorbitals`) it is

    s(r) = R_3d(r)² Σ_{l = 0, 2, 4} Σ_m P_lm d_lm(r̂_local)     (μB / Å³),

r̂_local = Mᵀ r̂ in the site's local frame M (axes as columns). P00 is the
spin moment of the ion in μB (∫ d_00 dΩ = 1, ∫ d_lm dΩ = 0 for l > 0),
spin only.

Fourier transform
-----------------
With e^{+2πi h·r} (CONVENTIONS.md) and the plane-wave expansion
e^{iK·r} = 4π Σ_l i^l j_l(Kr) Σ_m y_lm(r̂) y_lm(K̂) on the orthonormal real
harmonics y_lm (K = 2πh), the transform of R(r) y_lm(r̂) is
4π i^l ⟨j_l⟩(K) y_lm(ĥ), ⟨j_l⟩ = ∫ R(r) j_l(Kr) r² dr. The density
harmonics are d_lm = c_lm y_lm with a constant c_lm = M_lm/N_lm
(:func:`chasm.density.harmonics.density_to_wavefunction`), and the transform
is linear, so the same c_lm multiplies both sides and cancels:

    f_spin(h) = Σ_l 4π i^l ⟨j_l⟩(s/κ) Σ_m P_lm d_lm(Mᵀ ĥ)         (μB),

i^l = 1, −1, 1 for l = 0, 2, 4, s = sinθ/λ = |h|/2. No extra normalisation
factor links the d_lm and the y_lm here: the d_lm of the density and of the
form factor are the same functions (tests/test_pnd_dorbital.py checks this by
three-dimensional quadrature of the transform). ⟨j_l⟩ with R = R_3d² is what
the International Tables (Brown, §4.4.5) tabulate for an ion, so
:meth:`chasm.neutron.magnetic_ff.IonFormFactor.radial` supplies them; the
radial expansion κ enters as s/κ. f_spin(0) = 4π ⟨j0⟩(0) d_00 P00 = P00.

Crystal
-------
Symmetry copy (R, t) of the site carries the density rotated with R, its frame
rotated with it (as in :mod:`chasm.scattering.engine`): its form factor is
f_spin(R_cᵀ h), i.e. the harmonics of Mᵀ R_cᵀ ĥ. For a magnetisation along the
applied field ê (paramagnet or ferromagnet in a field: every copy has its spin
density along ê, the spin density a scalar under the crystal's operations)

    F_M(h) = p ê w Σ_(R,t) T(Rᵀh) exp[2πi h·(R x + t)] f_spin(R_cᵀ h),

w = occupancy/|site group|, T the Debye–Waller factor of the neutron ADPs,
p in fm/μB (:data:`chasm.neutron.structure_factors.P_FM`). With only P00 this
is the moment model of :class:`chasm.refine.pnd_data.SpinSite` with
f = ⟨j0⟩ (C2 = 0) and m = P00.

Parameters
----------
The model is linear in the populations. Only the P_lm allowed by the site
symmetry (:func:`chasm.density.sitesym.allowed_multipoles`, even l) are
independent. Two names for the same model (:class:`DOrbitalSite`):

- ``"multipole"``: ``LABEL.P00``, ``LABEL.P20``, ``LABEL.P21+`` ... ``LABEL.P44-``
  (μB);
- ``"orbital"``: d-orbital spin populations in the local frame, ``LABEL.d_z2``,
  ``LABEL.d_xz``, ``LABEL.d_yz``, ``LABEL.d_x2-y2``, ``LABEL.d_xy`` (diagonal)
  and the cross terms ``LABEL.d_z2/xz`` ... ``LABEL.d_x2-y2/xy`` (μB), in the
  convention of :mod:`chasm.density.dorbitals` (each cross term multiplies
  d_i d_j once; trace = P00 = the moment). The multipoles follow exactly
  through :func:`chasm.density.dorbitals.orbital_product_matrix`.

When the site symmetry couples several populations (no single-entry mask),
the parameters are the first independent ones in the order of the list above
(pivots), and the others follow linearly, as cryspy's rule for χ
(:func:`chasm.neutron.rcif_sites.constrain_site_tensor`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from math import pi

import numpy as np

from chasm.crystal.structure import Crystal
from chasm.density.databank import Orbital, load_species
from chasm.density.dorbitals import (
    EVEN_INDICES,
    inverse_product_matrix,
    multipole_labels,
    orbital_pair_labels,
    orbital_product_matrix,
)
from chasm.density.frames import LocalAxes
from chasm.density.harmonics import density_harmonics
from chasm.density.radial import g_integral
from chasm.density.sitesym import allowed_multipoles
from chasm.errors import InputError
from chasm.neutron.structure_factors import weighted_terms

__all__ = [
    "EVEN_L",
    "OrbitalFormFactor",
    "DOrbitalSite",
    "DOrbitalLayout",
    "multipole_factors",
    "spin_form_factor",
    "dorbital_basis",
    "dorbital_copies",
    "copy_form_factors",
]

EVEN_L: np.ndarray = np.array([0] + [2] * 5 + [4] * 9)
"""l of each of the 15 even-l multipoles (order of ``EVEN_INDICES``)."""

_I_L = {0: 1.0, 2: -1.0, 4: 1.0}  # i^l for even l
_PARAMETERISATIONS = ("multipole", "orbital")
_FOUR_PI = 4.0 * pi

# ``orbital_pair_labels`` gives "z2", "z2/xz"...: parameter suffixes "d_z2", "d_z2/xz".
_ORBITAL_NAMES = tuple(f"d_{x}" for x in orbital_pair_labels())
_MULTIPOLE_NAMES = tuple(f"P{x}" for x in multipole_labels())


class OrbitalFormFactor:
    """⟨j_l⟩(s) of one free-atom or free-ion orbital of the wavefunction databank.

    ⟨j_l⟩(K) = ∫ R(r)² j_l(Kr) r² dr with R = Σ_p c_p N_p r^(n_p−1) e^(−α_p r)
    (Koga et al., :mod:`chasm.density.databank`), summed in closed form:
    Σ_pq c_p c_q N_p N_q g(l, n_p + n_q; K, α_p + α_q), K = 4πs/κ. The closed
    form needs n_p + n_q ≥ l + 1: a p orbital (n = 2) has ⟨j0⟩ and ⟨j2⟩ but
    no closed-form ⟨j4⟩, which is returned as NaN (a p shell has no l = 4
    density, so a spherical or dipole site never needs it).

    It offers the two methods the spin sites use: :meth:`radial` (as
    :meth:`chasm.neutron.magnetic_ff.IonFormFactor.radial`) and
    :meth:`dipole`.

    Parameters
    ----------
    ion : str
        Name for output (``"O-"``, ``"Y"``).
    orbital : Orbital
        Normalised radial orbital (exponents in Å⁻¹).
    """

    def __init__(self, ion: str, orbital: Orbital):
        self.ion = str(ion)
        self.orbital = orbital
        cn = orbital.coeff * orbital.norms()
        n = orbital.n
        self._terms = [
            (int(n[p] + n[q]), float(orbital.alpha[p] + orbital.alpha[q]), float(cn[p] * cn[q]))
            for p in range(len(cn))
            for q in range(len(cn))
        ]

    @classmethod
    def from_databank(cls, symbol: str, orbital: str, charge: int = 0) -> OrbitalFormFactor:
        """Orbital ``orbital`` (``"2p"``, ``"4d"``) of a databank species.

        Raises
        ------
        InputError
            Unknown species or orbital.
        """
        species = load_species(symbol, charge)
        orb = species.orbital(orbital)
        return cls(f"{species.key} {orb.name}", orb)

    def _jl(self, l: int, K: np.ndarray, derivative: bool = False):
        out = np.zeros_like(K)
        dout = np.zeros_like(K)
        for N, Z, w in self._terms:
            if N < l + 1:
                nan = np.full_like(K, np.nan)
                return (nan, nan) if derivative else nan
            if derivative:
                g, gk, _ = g_integral(l, N, K, Z, derivatives=True)
                out += w * g
                dout += w * gk
            else:
                out += w * g_integral(l, N, K, Z)
        return (out, dout) if derivative else out

    def radial(self, s, kappa: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """⟨j0⟩, ⟨j2⟩, ⟨j4⟩ at s/κ (dimensionless), s = sinθ/λ in Å⁻¹."""
        K = 4.0 * pi * np.asarray(s, dtype=float) / kappa
        return self._jl(0, K), self._jl(2, K), self._jl(4, K)

    def radial_dkappa(self, s, kappa: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """d⟨j_l⟩(s/κ)/dκ for l = 0, 2, 4: −(K/κ) d⟨j_l⟩/dK at K = 4πs/κ."""
        K = 4.0 * pi * np.asarray(s, dtype=float) / kappa
        return tuple(-K / kappa * self._jl(l, K, derivative=True)[1] for l in (0, 2, 4))

    def dipole(self, s, c2: float, kappa: float = 1.0) -> tuple[np.ndarray, dict]:
        """f = ⟨j0⟩ + C2⟨j2⟩ at s/κ and df/ds (Å), df/dκ, df/dC2 (as IonFormFactor.dipole)."""
        s = np.asarray(s, dtype=float)
        K = 4.0 * pi * s / kappa
        j0, d0 = self._jl(0, K, derivative=True)
        j2, d2 = self._jl(2, K, derivative=True)
        dfdk = d0 + c2 * d2
        return j0 + c2 * j2, {
            "s": dfdk * 4.0 * pi / kappa,
            "kappa": -dfdk * K / kappa,
            "c2": j2,
        }


def multipole_factors(radial: tuple, u_local: np.ndarray) -> np.ndarray:
    """4π i^l ⟨j_l⟩ d_lm(u) for the 15 even-l multipoles (order of ``EVEN_INDICES``).

    Parameters
    ----------
    radial : (j0, j2, j4)
        ⟨j_l⟩ arrays broadcastable against ``u_local[..., 0]`` (dimensionless).
    u_local : ndarray (..., 3)
        Unit scattering vectors in the local frame.

    Returns
    -------
    ndarray (..., 15)
        Transform (μB per μB of population) of each term R_3d² d_lm.
    """
    d = density_harmonics(np.asarray(u_local, dtype=float), 4)[..., list(EVEN_INDICES)]
    j0, j2, j4 = (np.asarray(x, dtype=float)[..., None] for x in radial)
    scale = np.concatenate(
        np.broadcast_arrays(
            _I_L[0] * _FOUR_PI * j0,
            *(5 * [_I_L[2] * _FOUR_PI * j2]),
            *(9 * [_I_L[4] * _FOUR_PI * j4]),
        ),
        axis=-1,
    )
    return scale * d


def spin_form_factor(radial: tuple, u_local: np.ndarray, populations) -> np.ndarray:
    """f_spin = Σ_l 4π i^l ⟨j_l⟩ Σ_m P_lm d_lm(u) (μB) of one ion (module docstring).

    Parameters
    ----------
    radial : (j0, j2, j4)
        ⟨j_l⟩ at the reflections.
    u_local : ndarray (..., 3)
        Unit scattering vectors in the local frame.
    populations : array_like (15,)
        Even-l P_lm (μB), order of ``EVEN_INDICES`` (00, 20, 21+, ..., 44-).
    """
    return multipole_factors(radial, u_local) @ np.asarray(populations, dtype=float)


@dataclass(frozen=True)
class DOrbitalLayout:
    """A d-orbital site resolved on a crystal: frame and parameter map.

    Attributes
    ----------
    label : str
    index : int
        Atom index in the crystal.
    frame : ndarray (3, 3)
        Local axes as columns (Cartesian).
    frame_text : str
        How the frame was defined (``"z -> O1, x toward O2 (LocalAxes ...)"``).
    names : list of str
        Full parameter names (``"Ti.P00"``... or ``"Ti.d_xy"``...).
    to_multipoles : ndarray (15, k)
        Even-l P_lm (``EVEN_INDICES`` order) per unit value of each parameter.
    to_orbitals : ndarray (15, k)
        Orbital populations (``ORBITAL_PAIRS`` order) per unit parameter.
    start : ndarray (k,)
        Start values (μB).
    """

    label: str
    index: int
    frame: np.ndarray
    frame_text: str
    names: list
    to_multipoles: np.ndarray
    to_orbitals: np.ndarray
    start: np.ndarray


def _pivot_map(space: np.ndarray, tol: float = 1e-9) -> tuple[list[int], np.ndarray]:
    """Pivot rows (first independent) and the map q -> full vector (rows = pivots are unit)."""
    pivots: list[int] = []
    for row in range(space.shape[0]):
        trial = pivots + [row]
        if np.linalg.matrix_rank(space[trial], tol=tol) == len(trial):
            pivots.append(row)
        if len(pivots) == space.shape[1]:
            break
    full = space @ np.linalg.inv(space[pivots])
    full[np.abs(full) < 1e-12] = 0.0
    return pivots, full


@dataclass
class DOrbitalSite:
    """A d-orbital spin density (l = 0, 2, 4) magnetised along the field.

    Parameters
    ----------
    label : str
        Atom label in the crystal.
    table : object
        Radial integrals: anything with ``radial(s, kappa) -> (⟨j0⟩, ⟨j2⟩, ⟨j4⟩)``,
        e.g. :func:`chasm.neutron.magnetic_ff.ion_form_factor` ``("Ti3+")``
        or :class:`OrbitalFormFactor`.
    moment : float
        Start spin moment P00 (μB), spherical start (all other P_lm zero,
        equal orbital populations moment/5).
    axes : LocalAxes or ndarray (3, 3) or None
        Local frame: atom labels (resolved on the crystal) or a matrix with
        the axes as columns; None: the Cartesian axes of the crystal.
    parameterisation : {"multipole", "orbital"}
        Parameter names (module docstring).
    populations : mapping, optional
        Start values by suffix (``{"P20": 0.1}`` or ``{"d_xy": 0.4}``);
        they override the spherical start for those parameters.
    kappa : float
        Radial expansion κ (fixed): ⟨j_l⟩ at s/κ.
    """

    label: str
    table: object
    moment: float = 1.0
    axes: LocalAxes | np.ndarray | None = None
    parameterisation: str = "multipole"
    populations: Mapping[str, float] | None = None
    kappa: float = 1.0

    def __post_init__(self) -> None:
        if self.parameterisation not in _PARAMETERISATIONS:
            raise InputError(
                f"d-orbital site {self.label}: parameterisation must be one of "
                f"{_PARAMETERISATIONS}, got {self.parameterisation!r}"
            )
        if not self.kappa > 0:
            raise InputError(f"d-orbital site {self.label}: κ must be > 0, got {self.kappa}")
        j = self.table.radial(np.array([0.0, 0.3]), 1.0)
        if not all(np.all(np.isfinite(x)) for x in j):
            raise InputError(
                f"d-orbital site {self.label}: the radial table "
                f"{getattr(self.table, 'ion', self.table)!r} lacks <j2> or <j4>"
            )

    def resolve(self, crystal: Crystal, index: int) -> DOrbitalLayout:
        """Frame, allowed populations and parameter map on ``crystal`` (atom ``index``).

        Raises
        ------
        InputError
            Frame atoms not found, a non-orthogonal frame matrix, or a start
            population name that is not a parameter of the site.
        """
        if isinstance(self.axes, LocalAxes):
            frame = self.axes.matrix(crystal, index)
            text = f"LocalAxes '{self.axes.as_text()}'"
        elif self.axes is None:
            frame = np.eye(3)
            text = "crystal Cartesian axes (x || a, z || c*)"
        else:
            frame = np.asarray(self.axes, dtype=float)
            if frame.shape != (3, 3) or not np.allclose(frame.T @ frame, np.eye(3), atol=1e-8):
                raise InputError(f"d-orbital site {self.label}: axes must be an orthogonal 3x3")
            text = "given matrix"
        rc = crystal.cartesian_rotations()[crystal.site_symmetry(index)]
        basis, _ = allowed_multipoles(rc, frame, 4)
        even = basis[list(EVEN_INDICES)]
        even = even[:, np.linalg.norm(even, axis=0) > 1e-9]  # drop odd-l columns
        m_prod = orbital_product_matrix()
        m_inv = inverse_product_matrix()
        if self.parameterisation == "multipole":
            pivots, to_mult = _pivot_map(even)
            to_orb = m_inv @ to_mult
            suffixes = [_MULTIPOLE_NAMES[k] for k in pivots]
        else:
            pivots, to_orb = _pivot_map(m_inv @ even)
            to_mult = m_prod @ to_orb
            suffixes = [_ORBITAL_NAMES[k] for k in pivots]
        spherical_mult = np.zeros(15)
        spherical_mult[0] = self.moment
        spherical = (
            spherical_mult if self.parameterisation == "multipole" else m_inv @ spherical_mult
        )
        start = spherical[pivots].copy()
        for key, value in (self.populations or {}).items():
            if key not in suffixes:
                raise InputError(
                    f"d-orbital site {self.label}: start population {key!r} is not a "
                    f"parameter of the site (allowed: {', '.join(suffixes)})"
                )
            start[suffixes.index(key)] = float(value)
        return DOrbitalLayout(
            label=self.label,
            index=index,
            frame=frame,
            frame_text=text,
            names=[f"{self.label}.{x}" for x in suffixes],
            to_multipoles=to_mult,
            to_orbitals=to_orb,
            start=start,
        )


def copy_form_factors(
    crystal: Crystal,
    hkl,
    frame: np.ndarray,
    table,
    kappa: float,
    to_multipoles: np.ndarray,
    dkappa: bool = False,
) -> np.ndarray:
    """Form factor of each symmetry copy per column of ``to_multipoles``, (n, n_ops, k).

    Σ_lm (to_multipoles)_lm,k 4π i^l ⟨j_l⟩(s/κ) d_lm(Mᵀ R_cᵀ ĥ) (μB per unit column):
    the copy made by (R, t) carries the density rotated by R_c. Only the l
    with a non-zero row are evaluated (a p shell has no ⟨j4⟩). ``dkappa``: the
    derivative with respect to κ instead (the table's ``radial_dkappa``).

    Raises
    ------
    InputError
        The (0 0 0) reflection, or a needed ⟨j_l⟩ the radial table lacks.
    """
    hkl = np.asarray(hkl, dtype=float).reshape(-1, 3)
    hc = hkl @ crystal.B.T
    norm = np.linalg.norm(hc, axis=1)
    if np.any(norm == 0):
        raise InputError("spin form factor: the (0 0 0) reflection has no direction")
    radial = (table.radial_dkappa if dkappa else table.radial)(0.5 * norm, kappa)
    u = np.einsum("na,oab,bc->noc", hc / norm[:, None], crystal.cartesian_rotations(), frame)
    d = density_harmonics(u, 4)[..., list(EVEN_INDICES)]  # (n, ops, 15)
    to_multipoles = np.asarray(to_multipoles, dtype=float)
    out = np.zeros(u.shape[:2] + (to_multipoles.shape[1],))
    for l in (0, 2, 4):
        rows = (EVEN_L == l) & np.any(to_multipoles != 0.0, axis=1)
        if not np.any(rows):
            continue
        j_l = radial[l // 2]
        if not np.all(np.isfinite(j_l)):
            name = getattr(table, "ion", table)
            raise InputError(
                f"spin form factor: the radial function {name} has no <j{l}> (its density has "
                f"no l = {l} terms); set those populations to 0"
            )
        scale = _I_L[l] * _FOUR_PI * j_l[:, None, None]
        out += scale * (d[..., rows] @ to_multipoles[rows])
    return out


def dorbital_copies(
    crystal: Crystal, hkl, layout: DOrbitalLayout, table, kappa: float
) -> np.ndarray:
    """:func:`copy_form_factors` of a d-orbital site's parameters, (n, n_ops, k)."""
    return copy_form_factors(crystal, hkl, layout.frame, table, kappa, layout.to_multipoles)


def dorbital_basis(
    crystal: Crystal, hkl, layout: DOrbitalLayout, table, kappa: float, p: float, terms=None
) -> np.ndarray:
    """Scalar magnetic amplitude per unit value of each parameter of a d-orbital site.

    G_k(h) = p w Σ_(R,t) T exp[2πi h·(R x + t)] Σ_lm (to_multipoles)_lm,k
    4π i^l ⟨j_l⟩(s/κ) d_lm(Mᵀ R_cᵀ ĥ) (fm per μB); F_M = ê Σ_k c_k G_k.

    Parameters
    ----------
    crystal : Crystal
        Positions and neutron ADPs.
    hkl : array_like (n, 3)
    layout : DOrbitalLayout
    table : object
        ``radial(s, kappa)`` provider.
    kappa : float
    p : float
        fm per μB.
    terms : callable, optional
        Per-operation terms of an atom, weight included
        (:func:`chasm.neutron.structure_factors.weighted_terms`).

    Returns
    -------
    ndarray (n, k) complex
    """
    copies = dorbital_copies(crystal, hkl, layout, table, kappa)
    t = weighted_terms(crystal, hkl, layout.index, terms)
    return p * np.einsum("no,nok->nk", t, copies)

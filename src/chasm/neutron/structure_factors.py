"""Nuclear and magnetic neutron structure factors (fm) of a crystal.

Sign and symmetry conventions are chasm's (CONVENTIONS.md): the sum runs over
every operation (R, t) of the group, centring included, with the weight
w_j = occupancy_j / |site group of j| and the phase exp(+2πi h·(R x_j + t)).
cryspy uses exp(−2πi h·x): its structure factors are the complex conjugates of
ours, which leaves every flipping ratio unchanged (they depend on Re(F_N F_M*)
and |F|²) except for the sign of the chiral term, see :mod:`.flipping`.

Nuclear (fm)
    F_N(h) = Σ_j w_j b_j Σ_(R,t) T_j(Rᵀh) exp[2πi h·(R x_j + t)],
    with T_j(h) = exp(−2π² hᵀ U_cart,j h) from the neutron ADPs of the model
    (isotropic: exp(−8π² U s²)).

Magnetic, ordered moments (vector, fm, chasm Cartesian frame)
    F_M(h) = p Σ_j w_j f_j(s) Σ_(R,t) θ_(R,t) det(R) R_c m_j T_j exp[...].
    A magnetic moment is an axial vector: a proper rotation turns it like a
    position, the inversion leaves it unchanged, so an improper R acts as
    det(R) R = −R. θ = ±1 is the time reversal of a magnetic-group operation
    (cryspy's ``x,y,z,±1``; +1 for every operation of a grey/ordinary group).

Magnetic, induced moments (susceptibility model, cryspy ``Cani``/``Ciso``)
    the moment of the copy of site j made by R is m = χ' B with
    χ' = R_c χ_j R_cᵀ (χ maps the axial B onto the axial m, so the two det(R)
    cancel, and it is even under time reversal), χ in μB/T, B the applied
    field in T along ê. Hence F_M = S(h) B with the tensor
    S(h) = p Σ_j w_j f_j(s) Σ_(R,t) R_c χ_j R_cᵀ T_j exp[...]   (fm/T).
    This is cryspy's ``calc_sft_ccs`` (there called the structure-factor
    tensor, multiplied by the field vector ``field · U[2, :]``).

Roles: production and reference
    The refined route passes ``terms``, the structure-factor engine's
    per-operation phases × Debye–Waller factors (weight included,
    :meth:`chasm.scattering.engine.StructureFactorEngine.operation_terms`);
    this module then only adds the per-operation weights of each model
    (b, axial moments with time reversal, R χ Rᵀ, per-copy form factors).
    :func:`site_sums` (used when ``terms`` is None) is the independent
    reference sum, a test oracle with :mod:`chasm.neutron.model`: the refined
    route never calls it (tests/test_pnd_oracle.py).

p, the magnetic scattering amplitude of one μB, is γ r₀/2 = 2.69542 fm
(CONVENTIONS.md) by default; cryspy hard-codes 0.2695 × 10⁻¹² cm = 2.695 fm,
pass ``p=CRYSPY_P`` to reproduce it digit for digit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from chasm.crystal.adp import u6_to_matrix, ucif_to_ustar
from chasm.crystal.structure import Crystal

__all__ = [
    "P_FM",
    "CRYSPY_P",
    "site_sums",
    "weighted_terms",
    "moment_along_field",
    "nuclear_structure_factors",
    "magnetic_structure_factors",
    "susceptibility_structure_tensor",
    "induced_magnetic_structure_factors",
]

#: Per-operation terms of one atom (weight included): atom index -> (n, n_ops) complex.
TermsFn = Callable[[int], np.ndarray]

#: Magnetic scattering amplitude per Bohr magneton, γ r₀ / 2 (fm / μB), CONVENTIONS.md.
P_FM = 2.69542
#: The value cryspy uses (0.2695 × 10⁻¹² cm / μB), for digit-level comparisons.
CRYSPY_P = 2.695


def _hkl(hkl) -> np.ndarray:
    return np.asarray(hkl, dtype=float).reshape(-1, 3)


def site_sums(crystal: Crystal, hkl, index: int) -> tuple[np.ndarray, float]:
    """Per-operation terms of one atom: T_j(Rᵀh) exp[2πi h·(R x_j + t)].

    Parameters
    ----------
    crystal : Crystal
    hkl : array_like (n, 3)
    index : int
        Atom index in ``crystal.atoms``.

    Returns
    -------
    terms : ndarray (n, n_ops) complex
    weight : float
        occupancy / |site group|.
    """
    h = _hkl(hkl)
    atom = crystal.atoms[index]
    rot, trans = crystal.rotations, crystal.translations
    pos = np.einsum("oab,b->oa", rot, atom.xyz) + trans  # (n_ops, 3)
    terms = np.exp(2j * np.pi * (h @ pos.T))
    if atom.u_aniso is not None:
        u = u6_to_matrix(ucif_to_ustar(atom.u_aniso, crystal.cell))
        hr = np.einsum("na,oab->nob", h, rot)  # (Rᵀ h) for every op
        terms = terms * np.exp(-2.0 * np.pi**2 * np.einsum("noa,ab,nob->no", hr, u, hr))
    elif atom.uiso:
        hc = h @ crystal.B.T
        terms = terms * np.exp(-2.0 * np.pi**2 * atom.uiso * np.sum(hc * hc, axis=1))[:, None]
    weight = atom.occupancy / len(crystal.site_symmetry(index))
    return terms, weight


def weighted_terms(crystal: Crystal, hkl, index: int, terms: TermsFn | None = None) -> np.ndarray:
    """w_j T_j(Rᵀh) exp[2πi h·(R x_j + t)] per operation, (n, n_ops) complex.

    ``terms``: the per-operation terms of another symmetry sum, weight
    included (the structure-factor engine's ``operation_terms``,
    :mod:`chasm.scattering.engine`); None: :func:`site_sums` (the tests'
    reference).
    """
    if terms is not None:
        return terms(index)
    t, weight = site_sums(crystal, hkl, index)
    return weight * t


def nuclear_structure_factors(
    crystal: Crystal, hkl, b: Sequence[complex], terms: TermsFn | None = None
) -> np.ndarray:
    """F_N(h) in fm.

    Parameters
    ----------
    crystal : Crystal
        Model with the neutron ADPs.
    hkl : array_like (n, 3)
    b : sequence of complex
        Coherent scattering length of each atom of ``crystal.atoms`` (fm).
    terms : callable, optional
        Per-operation terms of an atom (:func:`weighted_terms`).

    Returns
    -------
    ndarray (n,) complex
    """
    if len(b) != len(crystal.atoms):
        raise ValueError(f"{len(b)} scattering lengths for {len(crystal.atoms)} atoms")
    total = np.zeros(len(_hkl(hkl)), dtype=complex)
    for j, b_j in enumerate(b):
        if b_j == 0:
            continue
        total += b_j * weighted_terms(crystal, hkl, j, terms).sum(axis=1)
    return total


def magnetic_structure_factors(
    crystal: Crystal,
    hkl,
    moments: dict[int, np.ndarray],
    form_factors: dict[int, np.ndarray],
    time_reversal=None,
    p: float = P_FM,
    terms: TermsFn | None = None,
) -> np.ndarray:
    """F_M(h) (vector, fm) of ordered moments, chasm Cartesian frame.

    Parameters
    ----------
    crystal : Crystal
    hkl : array_like (n, 3)
    moments : dict atom index -> ndarray (3,)
        Moment m_j of the atom as listed (Cartesian, μB).
    form_factors : dict atom index -> ndarray (n,) or (n, n_ops)
        Magnetic form factor f_j(s) of each magnetic atom at the reflections,
        or one per operation (an aspherical spin density,
        :class:`~chasm.neutron.spin_shape.SpinShape`).
    time_reversal : array_like (n_ops,) or None
        θ = ±1 per operation (None: all +1).
    p : float
        fm per μB.
    terms : callable, optional
        Per-operation terms of an atom (:func:`weighted_terms`).

    Returns
    -------
    ndarray (n, 3) complex
    """
    rc = crystal.cartesian_rotations()
    det = np.round(np.linalg.det(crystal.rotations.astype(float)))
    theta = np.ones(crystal.n_ops) if time_reversal is None else np.asarray(time_reversal, float)
    axial = (theta * det)[:, None, None] * rc  # (n_ops, 3, 3)
    out = np.zeros((len(_hkl(hkl)), 3), dtype=complex)
    for j, m in moments.items():
        m_ops = axial @ np.asarray(m, dtype=float)  # (n_ops, 3)
        out += _copies(weighted_terms(crystal, hkl, j, terms), form_factors[j]) @ m_ops
    return p * out


def _copies(terms: np.ndarray, ff) -> np.ndarray:
    """terms × f per copy: f (n,) the same for every copy, or (n, n_ops) one per copy."""
    ff = np.asarray(ff)
    return terms * (ff if ff.ndim == 2 else ff[:, None])


def susceptibility_structure_tensor(
    crystal: Crystal,
    hkl,
    chi: dict[int, np.ndarray],
    form_factors: dict[int, np.ndarray],
    p: float = P_FM,
    terms: TermsFn | None = None,
) -> np.ndarray:
    """S(h) (fm/T) with F_M = S(h) · B for induced moments m = χ B.

    Parameters
    ----------
    crystal : Crystal
    hkl : array_like (n, 3)
    chi : dict atom index -> ndarray (3, 3)
        Site susceptibility tensor (μB/T) in chasm's Cartesian frame.
    form_factors : dict atom index -> ndarray (n,) or (n, n_ops)
    p : float
        fm per μB.
    terms : callable, optional
        Per-operation terms of an atom (:func:`weighted_terms`).

    Returns
    -------
    ndarray (n, 3, 3) complex
    """
    rc = crystal.cartesian_rotations()
    out = np.zeros((len(_hkl(hkl)), 3, 3), dtype=complex)
    for j, chi_j in chi.items():
        chi_ops = rc @ np.asarray(chi_j, dtype=float) @ rc.transpose(0, 2, 1)  # (n_ops, 3, 3)
        copies = _copies(weighted_terms(crystal, hkl, j, terms), form_factors[j])
        out += np.einsum("no,oab->nab", copies, chi_ops)
    return p * out


def moment_along_field(
    crystal: Crystal, hkl, index: int, form_factor, p: float = P_FM, terms: TermsFn | None = None
) -> np.ndarray:
    """Scalar F_M (fm per μB) of a unit moment along the field on every copy of one atom.

    F_M = ê p Σ_(R,t) w T exp[2πi h·(R x + t)] f (f per copy allowed), (n,) complex.
    """
    return p * _copies(weighted_terms(crystal, hkl, index, terms), form_factor).sum(axis=1)


def induced_magnetic_structure_factors(tensor: np.ndarray, field_vector) -> np.ndarray:
    """F_M = S(h) B (fm) for a field vector B (T, chasm Cartesian frame), (n, 3) complex."""
    return np.einsum("nab,b->na", tensor, np.asarray(field_vector, dtype=float))

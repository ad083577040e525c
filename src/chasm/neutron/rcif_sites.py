"""The crystal of an rcif block and site tensors on cryspy's normalised axes.

What the refined PND route (:mod:`chasm.refine.pnd_data`,
:mod:`chasm.project.pnd_build`, :mod:`chasm.project.pnd_init`) takes from an
rcif crystal block: the :class:`~chasm.crystal.structure.Crystal` with its
coherent scattering lengths (:func:`rcif_crystal`, dummy atoms left out), the
rule that makes a site tensor obey its site symmetry
(:func:`constrain_site_tensor`, cryspy's "first independent components"), and
the frame N = A diag(1/a, 1/b, 1/c) of cryspy's tensor and moment components
(:func:`normalised_axes`; χ_cart = N χ Nᵀ, m_cart = N m, as cryspy's
``m_m_norm``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from chasm.crystal.adp import matrix_to_u6, u6_to_matrix
from chasm.crystal.structure import Atom, Crystal, parse_type_symbol
from chasm.errors import InputError

from .rcif import PndCrystal
from .scattering_lengths import scattering_length

__all__ = [
    "check_scat_rows",
    "is_dummy",
    "rcif_crystal",
    "constrain_site_tensor",
    "normalised_axes",
    "located",
]

_CHI_RULES = ("first", "average")


def is_dummy(type_symbol: str) -> bool:
    """cryspy's dummy atoms (type ``Dummy``): points for local axes, not scatterers."""
    return type_symbol.strip().lower() == "dummy"


def rcif_crystal(
    block: PndCrystal, b_overrides: Mapping[str, complex] | None = None
) -> tuple[Crystal, list[complex]]:
    """The crystal of an rcif block (dummy atoms left out) and each atom's b (fm).

    Raises
    ------
    InputError
        A type symbol without an element, an unknown space group or operation,
        an element without a scattering length (file and line).
    """
    atoms, real = [], [a for a in block.atoms if not is_dummy(a.type_symbol)]
    for a in real:
        try:
            element, charge = parse_type_symbol(a.type_symbol)
        except ValueError:
            raise InputError(
                f"atom {a.label}: no element in type symbol {a.type_symbol!r}",
                block.path,
                a.line,
            ) from None
        atoms.append(
            Atom(
                a.label,
                element,
                a.xyz,
                occupancy=a.occupancy,
                uiso=a.uiso,
                u_aniso=a.u_aniso,
                charge=charge,
                type_symbol=a.type_symbol,
            )
        )
    group = block.symops if block.symops is not None else block.spacegroup
    try:
        crystal = Crystal.from_parts(block.cell, group, atoms, name=block.name)
    except ValueError as exc:
        raise InputError(
            f"crystal block data_{block.name}: {exc}", block.path, block.line
        ) from None
    b = [located(scattering_length, block, a.line, a.type_symbol, b_overrides) for a in real]
    return crystal, b


def check_scat_rows(block: PndCrystal) -> None:
    """Every atom with a susceptibility or moment row has an ``_atom_site_scat`` row.

    Raises
    ------
    InputError
        The first atom without one (its form factor is unknown), file and line.
    """
    for label in set(block.susceptibility) | set(block.moments):
        if label not in block.scattering:
            raise InputError(
                f"atom {label} has a susceptibility or moment but no _atom_site_scat row "
                "(form factor unknown)",
                block.path,
                block.line,
            )


def constrain_site_tensor(crystal: Crystal, index: int, chi6, rule: str = "first") -> np.ndarray:
    """Make a site tensor (6 components on the normalised axes) obey the site symmetry.

    The symmetric tensors of the site form the range of the projector
    P = ⟨R_f ⊗ R_f⟩ averaged over the site group, with R_f = N⁻¹ R_c N the site
    rotations on the normalised axes (χ_cart = N χ Nᵀ, see the module docstring).

    Parameters
    ----------
    crystal : Crystal
    index : int
        Atom index.
    chi6 : array_like (6,)
        χ11 χ22 χ33 χ12 χ13 χ23.
    rule : {"first", "average"}
        "average": P χ (what the sum over all operations does anyway).
        "first": cryspy's rule (``AtomSiteSusceptibility
        .apply_space_group_constraint`` with ``calc_constr_matrix``): the first
        independent components in the order 11 22 33 12 13 23 are kept and the
        others follow from them. The two differ only when the input is not
        already symmetric (the Ho2Ti2O7 file gives χ11 = 3.3290 and
        χ22 = χ33 = 3.32909, cryspy uses 3.3290 for all three).

    Returns
    -------
    ndarray (6,)
    """
    if rule not in _CHI_RULES:
        raise InputError(f"unknown chi rule {rule!r}; use one of {_CHI_RULES}")
    chi6 = np.asarray(chi6, dtype=float)
    norm = normalised_axes(crystal)
    inv = np.linalg.inv(norm)
    rc = crystal.cartesian_rotations()[crystal.site_symmetry(index)]
    basis = np.eye(6)
    proj = np.zeros((6, 6))
    for r in rc:
        rf = inv @ r @ norm
        for k in range(6):
            proj[:, k] += matrix_to_u6(rf @ u6_to_matrix(basis[k]) @ rf.T)
    proj /= len(rc)
    if rule == "average":
        return proj @ chi6
    u, sv, _ = np.linalg.svd(proj)
    v = u[:, sv > 1e-8]
    keep: list[int] = []
    for k in range(6):
        if np.linalg.matrix_rank(v[keep + [k], :], tol=1e-8) == len(keep) + 1:
            keep.append(k)
    return v @ np.linalg.solve(v[keep, :], chi6[keep])


def located(func, block: PndCrystal, line: int, *args):
    """func(*args), with the file and line of the rcif row added to an InputError."""
    try:
        return func(*args)
    except InputError as exc:
        raise InputError(exc.message, block.path, line) from None


def normalised_axes(crystal: Crystal) -> np.ndarray:
    """N = A diag(1/a, 1/b, 1/c): normalised crystal axes -> chasm Cartesian."""
    a = crystal.A
    return a / np.linalg.norm(a, axis=0)[None, :]

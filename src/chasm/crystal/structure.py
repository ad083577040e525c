"""The crystal model: unit cell, space-group operations and atomic sites.

Conventions
-----------
- ``A`` (3, 3): direct basis, columns a, b, c in Cartesian Å, gemmi's
  orthogonalisation (a along x, b in the xy plane, c* along z):
  ``r = A x`` for fractional x.
- ``B = inv(A)ᵀ`` (3, 3): reciprocal basis, columns a*, b*, c* in Å⁻¹ (no 2π):
  the Cartesian scattering vector of (h, k, l) is ``B @ hkl`` and
  ``h·r = hklᵀ x``.
- Operations act on fractional coordinates, ``x' = R x + t``; the arrays hold
  every operation of the space group including the centring translations
  (see :mod:`chasm.crystal.symmetry`). In Cartesian space the rotation is
  ``A R A⁻¹`` (:meth:`Crystal.cartesian_rotations`).
- ADPs: ``Atom.u_aniso`` is U_cif in Å², ordered U11 U22 U33 U12 U13 U23
  (:mod:`chasm.crystal.adp`); ``Atom.uiso`` is Uiso, or Ueq for anisotropic atoms.
- Occupancy is the chemical one (1 for a fully occupied special position, as
  written by SHELXL); the structure-factor weight of an atom is
  ``occupancy / len(site_symmetry(i))`` (CONVENTIONS.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import gemmi
import numpy as np

from .adp import ueq
from .symmetry import (
    group_ops,
    inversion_partners,
    ops_from_spacegroup,
    ops_from_triplets,
    parse_symop,
    resolve_spacegroup,
    site_symmetry_ops,
)

__all__ = ["Atom", "Crystal", "cell_problem", "parse_type_symbol", "parse_symop"]

#: Cell edges accepted, Å (a few tenths of an Å up to virus-crystal cells).
CELL_LENGTH_RANGE = (0.5, 10000.0)
#: Smallest accepted V / (abc) = sqrt(1 - cos²α - cos²β - cos²γ + 2 cosα cosβ cosγ):
#: 1 for a rectangular cell, 0.02 for a rhombohedral cell with α = 24°.
MIN_VOLUME_FACTOR = 1e-3
#: Smallest accepted cell volume, Å³.
MIN_CELL_VOLUME = 1.0

_TYPE = re.compile(r"^([A-Za-z]+)(\d*)([+-]?)(\d*)")


def _is_element(symbol: str) -> bool:
    return gemmi.Element(symbol).name.lower() == symbol.lower() and symbol.lower() != "x"


def parse_type_symbol(symbol: str) -> tuple[str, int]:
    """Element and formal charge from a CIF type symbol or an atom label.

    ``'Cu2+'`` -> ('Cu', 2); ``'O2-'`` -> ('O', -2); ``'Cu+2'`` -> ('Cu', 2);
    ``'Na+'`` -> ('Na', 1); ``'C'`` -> ('C', 0); labels such as ``'C12A'`` ->
    ('C', 0), ``'Cl3'`` -> ('Cl', 0). Digits without a sign are not a charge.
    Deuterium stays ``'D'``.

    Raises
    ------
    ValueError
        If no element symbol can be recognised.
    """
    match = _TYPE.match(symbol.strip())
    if not match:
        raise ValueError(f"no element symbol in {symbol!r}")
    letters, d1, sign, d2 = match.groups()
    element = None
    if len(letters) <= 2 and _is_element(letters):
        element = letters.capitalize()
    elif len(letters) >= 2 and letters[1].islower() and _is_element(letters[:2]):
        element = letters[:2].capitalize()
    elif _is_element(letters[0]):
        element = letters[0].upper()
    if element is None:
        raise ValueError(f"no element symbol in {symbol!r}")
    charge = 0
    if sign and len(letters) == len(element):
        magnitude = int(d1 or d2 or "1")
        charge = magnitude if sign == "+" else -magnitude
    return element, charge


def cell_problem(params: Sequence[float]) -> tuple[str, int] | None:
    """What is wrong with cell parameters a, b, c (Å), α, β, γ (degrees), or None.

    Returns (message, index 0..5 of the parameter concerned) when the cell is refused.

    Accepted: finite values, edges in :data:`CELL_LENGTH_RANGE`, angles strictly
    between 0 and 180°, V/(abc) ≥ :data:`MIN_VOLUME_FACTOR` (angles that close
    into a real, not nearly flat, cell) and V ≥ :data:`MIN_CELL_VOLUME` Å³.
    """
    values = [float(v) for v in params]
    if len(values) != 6:
        return f"six cell parameters are needed, got {len(values)}", 0
    lo, hi = CELL_LENGTH_RANGE
    for i, (name, v) in enumerate(zip("abc", values[:3], strict=True)):
        if not lo <= v <= hi:
            allowed = f"[{lo:g}, {hi:g}] Å"
            return f"cell length {name} = {v:g} Å is outside the allowed range {allowed}", i
    for i, (name, v) in enumerate(zip(("alpha", "beta", "gamma"), values[3:], strict=True)):
        if not 0 < v < 180:
            return f"cell angle {name} = {v:g}° is outside the allowed range (0, 180)°", i + 3
    c = [math.cos(math.radians(v)) for v in values[3:]]
    factor2 = 1 - c[0] ** 2 - c[1] ** 2 - c[2] ** 2 + 2 * c[0] * c[1] * c[2]
    factor = math.sqrt(factor2) if factor2 > 0 else 0.0
    if factor < MIN_VOLUME_FACTOR:
        return (
            f"degenerate cell: the angles {values[3]:g}, {values[4]:g}, {values[5]:g}° give "
            f"V/(abc) = {factor:.3g} (at least {MIN_VOLUME_FACTOR:g} is needed; each angle must "
            "be smaller than the sum of the other two and the three must sum to less than 360°)",
            3 + int(np.argmin(values[3:])),
        )
    volume = values[0] * values[1] * values[2] * factor
    if volume < MIN_CELL_VOLUME:
        return f"cell volume {volume:.3g} Å³ is below {MIN_CELL_VOLUME:g} Å³", 0
    return None


@dataclass(eq=False)
class Atom:
    """One atomic site of the asymmetric unit.

    Parameters
    ----------
    label : str
        Unique site label, e.g. ``'Cu1'``.
    element : str
        Element symbol, capitalised (``'Cu'``); normalised on construction.
    xyz : ndarray, shape (3,)
        Fractional coordinates.
    occupancy : float
        Chemical occupancy (1 for a full site, also on special positions).
    uiso : float or None
        Uiso in Å²; for an anisotropic atom the equivalent Ueq (filled in by
        :class:`Crystal` when None).
    u_aniso : ndarray, shape (6,), or None
        U_cif in Å², order U11 U22 U33 U12 U13 U23; None for an isotropic atom.
    charge : int
        Formal charge from the type symbol (``'Cu2+'`` -> 2).
    type_symbol : str or None
        The type symbol as written in the file (defaults to the element).
    su : dict
        Standard uncertainties where known, keys ``'xyz'`` (3,), ``'occupancy'``,
        ``'uiso'``, ``'u_aniso'`` (6,); missing entries are NaN.
    """

    label: str
    element: str
    xyz: np.ndarray
    occupancy: float = 1.0
    uiso: float | None = None
    u_aniso: np.ndarray | None = None
    charge: int = 0
    type_symbol: str | None = None
    su: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.element = self.element.strip().capitalize()
        if not _is_element(self.element):
            raise ValueError(f"atom {self.label}: unknown element {self.element!r}")
        self.xyz = np.asarray(self.xyz, dtype=float).reshape(3)
        self.occupancy = float(self.occupancy)
        if self.u_aniso is not None:
            self.u_aniso = np.asarray(self.u_aniso, dtype=float).reshape(6)
        if self.uiso is not None:
            self.uiso = float(self.uiso)
        if self.type_symbol is None:
            self.type_symbol = self.element
        self.charge = int(self.charge)

    @property
    def is_anisotropic(self) -> bool:
        """True when the atom has a U_cif tensor."""
        return self.u_aniso is not None


@dataclass(eq=False)
class Crystal:
    """Unit cell, space group and the atoms of the asymmetric unit.

    Build one with :meth:`from_parts` in code, or with
    :func:`chasm.crystal.cif.read_cif` from a file.

    Parameters
    ----------
    name : str
        A name (the CIF data block name).
    cell : gemmi.UnitCell
        Cell parameters (Å, degrees).
    spacegroup : gemmi.SpaceGroup or None
        The space group when gemmi's tables know the setting; None for an
        unknown setting given only by its operations.
    atoms : list of Atom
        The asymmetric unit.
    dispersion : dict
        Element symbol -> (f′, f″) in electrons.
    wavelength : float or None
        Radiation wavelength in Å.
    rotations, translations : ndarray or None
        All space-group operations (n_ops, 3, 3) int and (n_ops, 3) float in
        [0, 1); derived from ``spacegroup`` when None.
    cell_su : tuple of 6 float or None
        Standard uncertainties of the cell parameters.
    """

    name: str
    cell: gemmi.UnitCell
    spacegroup: gemmi.SpaceGroup | None
    atoms: list[Atom]
    dispersion: dict[str, tuple[float, float]] = field(default_factory=dict)
    wavelength: float | None = None
    # None: from the space group (__post_init__); arrays afterwards
    rotations: np.ndarray = None  # type: ignore[assignment]
    translations: np.ndarray = None  # type: ignore[assignment]
    cell_su: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        problem = cell_problem(self.cell.parameters)
        if problem is not None:
            raise ValueError(problem[0])
        if self.rotations is None or self.translations is None:
            if self.spacegroup is None:
                raise ValueError("Crystal needs a space group or explicit operations")
            self.rotations, self.translations = ops_from_spacegroup(self.spacegroup)
        self.rotations = np.asarray(self.rotations, dtype=int).reshape(-1, 3, 3)
        self.translations = np.asarray(self.translations, dtype=float).reshape(-1, 3) % 1.0
        labels = [a.label for a in self.atoms]
        if len(set(labels)) != len(labels):
            dup = sorted({x for x in labels if labels.count(x) > 1})
            raise ValueError(f"duplicate atom labels: {', '.join(dup)}")
        for atom in self.atoms:
            if atom.uiso is None:
                if atom.u_aniso is None:
                    raise ValueError(f"atom {atom.label}: give uiso or u_aniso")
                atom.uiso = ueq(atom.u_aniso, self.cell)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_parts(
        cls,
        cell_params: Sequence[float],
        spacegroup: str | gemmi.SpaceGroup | Sequence[str],
        atoms: list[Atom],
        name: str = "crystal",
        dispersion: dict[str, tuple[float, float]] | None = None,
        wavelength: float | None = None,
    ) -> Crystal:
        """Build a crystal in code.

        Parameters
        ----------
        cell_params : sequence of 6 float
            a, b, c (Å), α, β, γ (degrees).
        spacegroup : str, gemmi.SpaceGroup or sequence of str
            An H-M symbol (``'P 21/c'``; ambiguous symbols take origin choice 2),
            a Hall symbol (``'-P 2ybc'``), or the complete list of operations as
            triplets (``['x,y,z', '-x,-y,-z']``).
        atoms : list of Atom
        name : str
        dispersion : dict, optional
            Element -> (f′, f″).
        wavelength : float, optional
            Å.
        """
        cell = gemmi.UnitCell(*[float(v) for v in cell_params])
        rotations = translations = None
        if isinstance(spacegroup, gemmi.SpaceGroup):
            sg = spacegroup
        elif isinstance(spacegroup, str):
            sg = resolve_spacegroup(spacegroup, cell.alpha, cell.gamma)
        else:
            rotations, translations = ops_from_triplets(list(spacegroup))
            sg = gemmi.find_spacegroup_by_ops(group_ops(rotations, translations))
        return cls(
            name=name,
            cell=cell,
            spacegroup=sg,
            atoms=list(atoms),
            dispersion=dict(dispersion or {}),
            wavelength=wavelength,
            rotations=rotations,
            translations=translations,
        )

    # ------------------------------------------------------------------ geometry
    @property
    def A(self) -> np.ndarray:
        """Direct basis (3, 3): columns a, b, c in Cartesian Å."""
        return np.array(self.cell.orth.mat.tolist(), dtype=float)

    @property
    def B(self) -> np.ndarray:
        """Reciprocal basis (3, 3) = inv(A)ᵀ: columns a*, b*, c* in Å⁻¹."""
        return np.linalg.inv(self.A).T

    def frac_to_cart(self, x) -> np.ndarray:
        """Fractional (..., 3) -> Cartesian Å (..., 3): r = A x."""
        return np.asarray(x, dtype=float) @ self.A.T

    def cart_to_frac(self, r) -> np.ndarray:
        """Cartesian Å (..., 3) -> fractional (..., 3): x = A⁻¹ r."""
        return np.asarray(r, dtype=float) @ self.B

    @property
    def volume(self) -> float:
        """Cell volume in Å³."""
        return float(self.cell.volume)

    # ------------------------------------------------------------------ symmetry
    @property
    def symops(self) -> tuple[np.ndarray, np.ndarray]:
        """(rotations (n_ops, 3, 3) int, translations (n_ops, 3) float): x' = R x + t."""
        return self.rotations, self.translations

    @property
    def n_ops(self) -> int:
        """Number of operations, centring included."""
        return len(self.rotations)

    @property
    def is_centrosymmetric(self) -> bool:
        """True if the group contains an inversion (R = −1, any translation)."""
        minus = -np.eye(3, dtype=int)
        return bool(np.any(np.all(self.rotations == minus, axis=(1, 2))))

    @property
    def inversion_at_origin(self) -> bool:
        """True if the inversion through the origin (−1, 0) is in the group (mod lattice)."""
        return bool(np.all(inversion_partners(self.rotations, self.translations) >= 0))

    def centric_half(self) -> np.ndarray:
        """Indices of half the operations; the other half are these times (−1, 0).

        For each returned index i the group also contains (−R_i, −t_i) modulo a
        lattice translation, and together they give every operation once, so a
        sum over the group is a sum over this half of g(R, t) + g(−R, −t).

        Raises
        ------
        ValueError
            If the inversion through the origin is not in the group.
        """
        partner = inversion_partners(self.rotations, self.translations)
        if np.any(partner < 0):
            raise ValueError("centric_half: the inversion through the origin is not in the group")
        taken = np.zeros(self.n_ops, dtype=bool)
        half = []
        for i in range(self.n_ops):
            if not taken[i]:
                half.append(i)
                taken[i] = taken[partner[i]] = True
        return np.array(half, dtype=int)

    def cartesian_rotations(self) -> np.ndarray:
        """Rotations in Cartesian space, (n_ops, 3, 3) = A R A⁻¹ (orthogonal matrices)."""
        a = self.A
        return a @ self.rotations @ np.linalg.inv(a)

    def site_symmetry(self, i: int, tol: float = 1e-4) -> np.ndarray:
        """Indices of the operations mapping atom i onto itself modulo lattice.

        Parameters
        ----------
        i : int
            Atom index in ``atoms``.
        tol : float
            Distance tolerance in Å between the atom and its image. Coordinates
            printed with few decimals (0.3333 for 1/3) need a larger value.
        """
        return site_symmetry_ops(self.atoms[i].xyz, self.rotations, self.translations, self.A, tol)

    def multiplicity(self, i: int, tol: float = 1e-4) -> int:
        """Number of equivalent positions of atom i per cell: n_ops / |site group|."""
        return self.n_ops // len(self.site_symmetry(i, tol))

    def atom_index(self, label: str) -> int:
        """Index of the atom with this label (KeyError if absent)."""
        for i, atom in enumerate(self.atoms):
            if atom.label == label:
                return i
        raise KeyError(label)

"""Density models of one atom: spherical (IAM) or Hansen-Coppens pseudo-atom.

These are plain parameter holders; the structure-factor engine reads them.
Positions, displacement parameters and occupancies live on the crystal's
atoms, not here.

The Hansen-Coppens density (CONVENTIONS.md) is

    rho(r) = Pc rho_c(r) + Pv kappa^3 rho_v(kappa r)
             + sum_l kappa'^3 R_l(kappa' r) sum_m P_lm d_lm(r_hat),

with rho_c and rho_v from the wavefunction databank (rho_v normalised to one
electron), R_l density-normalised Slater functions and d_lm the
density-normalised real harmonics in the atom's local frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from chasm.density.frames import LocalAxes
from chasm.density.radial import default_slater

IAM_SOURCES = ("it92", "koga")


@dataclass
class SphericalAtom:
    """Independent-atom-model form factor of a free (or ionic) atom.

    Parameters
    ----------
    element : str
        Element symbol.
    source : {"it92", "koga"}
        IT92 Gaussian fit (International Tables Vol. C 6.1.1.4, via gemmi) or
        the analytic form factor of the Koga Roothaan-Hartree-Fock atom.
    charge : int
        Ionic charge of the free-atom species (Koga only; 0 for IT92).
    """

    element: str
    source: str = "it92"
    charge: int = 0

    def __post_init__(self) -> None:
        if self.source not in IAM_SOURCES:
            raise ValueError(
                f"unknown form-factor source {self.source!r}; use one of {IAM_SOURCES}"
            )

    @property
    def lmax(self) -> int:
        return -1


@dataclass
class HansenCoppensAtom:
    """Hansen-Coppens pseudo-atom parameters.

    Parameters
    ----------
    element : str
        Element symbol.
    pv : float
        Valence population (electrons); neutral C has pv = 4.
    kappa : float
        Expansion of the spherical valence density.
    lmax : int
        Highest multipole order (-1 = none, up to 4).
    plm : ndarray
        Multipole populations, (lmax+1)**2 values in chasm's order
        (00, 10, 11+, 11-, 20, 21+, 21-, 22+, 22-, ...), electrons.
    kappa_prime : float
        Expansion of the deformation (multipole) radial functions.
    frame : ndarray, shape (3, 3)
        Local axes as columns in Cartesian coordinates.
    n_l : tuple of int
        Slater radial powers for l = 0..4 (default per element).
    zeta : float
        Slater exponent in 1/Angstrom (default per element).
    pc : float
        Scale of the core density (1 = the databank core; normally fixed).
    charge : int
        Charge of the databank species whose core and valence shells are used.
    valence : list of str or None
        Valence orbitals of the databank species (default partition if None).
    axes : LocalAxes or None
        How ``frame`` was defined from neighbouring atoms (kept for output
        and for recomputing the frame; the engine uses ``frame`` only).
    """

    element: str
    pv: float
    kappa: float = 1.0
    lmax: int = -1
    plm: np.ndarray = field(default_factory=lambda: np.zeros(0))
    kappa_prime: float = 1.0
    frame: np.ndarray = field(default_factory=lambda: np.eye(3))
    n_l: tuple[int, ...] | None = None
    zeta: float | None = None
    pc: float = 1.0
    charge: int = 0
    valence: list[str] | None = None
    axes: LocalAxes | None = None

    def __post_init__(self) -> None:
        if not -1 <= self.lmax <= 4:
            raise ValueError(f"lmax must be between -1 and 4, got {self.lmax}")
        nlm = (self.lmax + 1) ** 2
        plm = np.zeros(nlm) if self.plm is None else np.asarray(self.plm, dtype=float)
        if plm.size == 0:
            plm = np.zeros(nlm)
        if plm.shape != (nlm,):
            raise ValueError(f"plm needs {nlm} values for lmax={self.lmax}, got {plm.shape}")
        self.plm = plm
        self.frame = np.asarray(self.frame, dtype=float)
        if self.n_l is None or self.zeta is None:
            n_l, zeta = default_slater(self.element)
            if self.n_l is None:
                self.n_l = n_l
            if self.zeta is None:
                self.zeta = zeta
        self.n_l = tuple(int(n) for n in self.n_l)


AtomModel = SphericalAtom | HansenCoppensAtom

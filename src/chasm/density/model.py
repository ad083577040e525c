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
from typing import ClassVar, Self

import numpy as np

from chasm.density.frames import LocalAxes
from chasm.density.radial import default_slater

IAM_SOURCES = ("it92", "koga")


class _WholeAtom:
    """What an atom with one density (not spin-split) answers; :class:`SplitAtom` differs.

    Callers that need the charge density or the spin parts of any model ask the
    model (``m.charge_model()``, ``m.spin_parts()``) instead of switching on its type.
    """

    def charge_model(self) -> Self:
        """The model of the atom's charge density: the atom itself."""
        return self

    def spin_parts(self) -> tuple[None, None]:
        """The spin-up and spin-down parts: none (only a split atom has them)."""
        return None, None


@dataclass
class SphericalAtom(_WholeAtom):
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

    #: No valence populations (Pv, P_lm) to refine, no spin density, no local axes
    #: (what :class:`HansenCoppensAtom` and :class:`SplitAtom` have).
    has_valence: ClassVar[bool] = False
    carries_spin: ClassVar[bool] = False
    axes: ClassVar[None] = None


@dataclass
class HansenCoppensAtom(_WholeAtom):
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

    #: Refinable valence populations Pv (and P_lm); no separate spin density.
    has_valence: ClassVar[bool] = True
    carries_spin: ClassVar[bool] = False

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


@dataclass
class NuclearAtom(_WholeAtom):
    """A nucleus for neutron scattering: a constant coherent scattering length.

    Parameters
    ----------
    element : str
        Element (or isotope) symbol, for output only.
    b : float
        Coherent scattering length (fm), independent of sinθ/λ; the
        structure-factor engine then returns F_N in fm.
    """

    element: str
    b: float

    def __post_init__(self) -> None:
        b = complex(self.b)
        if abs(b.imag) > 1e-6 * max(1.0, abs(b.real)):
            raise ValueError(
                f"{self.element}: absorbing nuclei (complex b = {b}) are not supported"
            )
        self.b = float(b.real)

    @property
    def lmax(self) -> int:
        return -1

    #: No valence populations (Pv, P_lm) to refine, no spin density, no local axes
    #: (what :class:`HansenCoppensAtom` and :class:`SplitAtom` have).
    has_valence: ClassVar[bool] = False
    carries_spin: ClassVar[bool] = False
    axes: ClassVar[None] = None


@dataclass
class SplitAtom:
    """A spin-resolved Hansen-Coppens atom (CONVENTIONS.md, spin-split atoms).

    The valence density has a spin-up and a spin-down part, each with its own
    Pv, κ, P_lm and κ'; the core (``pc`` times the databank core of the
    element) holds paired electrons and is seen by X-rays only. X-rays see
    core + ρ↑ + ρ↓, the magnetic neutron amplitude sees ρ↑ − ρ↓ (in μB,
    spin only).

    Parameters
    ----------
    up, dn : HansenCoppensAtom
        The two spin parts; their own ``pc`` is ignored (set to 0 here), their
        element, databank species, frame, lmax and Slater functions must agree.
    pc : float
        Scale of the core density (1 = the databank core).
    share_kappa, share_kappa_prime : bool
        One κ (κ') for both spins instead of two.
    """

    up: HansenCoppensAtom
    dn: HansenCoppensAtom
    pc: float = 1.0
    share_kappa: bool = False
    share_kappa_prime: bool = False

    #: Valence populations of both spins, and a spin density ρ↑ − ρ↓ (``spin_pv``, ``spin_plm``).
    has_valence: ClassVar[bool] = True
    carries_spin: ClassVar[bool] = True

    def __post_init__(self) -> None:
        u, d = self.up, self.dn
        same = (
            u.element == d.element
            and u.charge == d.charge
            and u.lmax == d.lmax
            and tuple(u.n_l) == tuple(d.n_l)
            and u.zeta == d.zeta
            and (u.valence or None) == (d.valence or None)
            and np.allclose(u.frame, d.frame)
        )
        if not same:
            raise ValueError(
                "the spin-up and spin-down parts of a split atom need the same element, "
                "species, lmax, Slater functions and local frame"
            )
        u.pc = d.pc = 0.0
        if self.share_kappa:
            d.kappa = u.kappa
        if self.share_kappa_prime:
            d.kappa_prime = u.kappa_prime

    @classmethod
    def from_charge_and_spin(
        cls,
        charge: HansenCoppensAtom,
        spin_pv: float = 0.0,
        spin_plm=None,
        share_kappa: bool = False,
        share_kappa_prime: bool = False,
    ) -> SplitAtom:
        """Split a charge model: P↑ = (P + S)/2, P↓ = (P − S)/2, κ↑ = κ↓ = κ.

        Parameters
        ----------
        charge : HansenCoppensAtom
            The (X-ray) charge model; its ``pc`` becomes the core scale.
        spin_pv : float
            Spin monopole S_v (μB = unpaired electrons).
        spin_plm : array_like or None
            Spin multipole populations (same layout as ``charge.plm``).
        """
        s = np.zeros_like(charge.plm) if spin_plm is None else np.asarray(spin_plm, float)
        if s.shape != charge.plm.shape:
            raise ValueError(f"spin_plm needs {charge.plm.size} values, got {s.shape}")

        def part(sign: float) -> HansenCoppensAtom:
            return HansenCoppensAtom(
                element=charge.element,
                pv=0.5 * (charge.pv + sign * spin_pv),
                kappa=charge.kappa,
                lmax=charge.lmax,
                plm=0.5 * (charge.plm + sign * s),
                kappa_prime=charge.kappa_prime,
                frame=charge.frame.copy(),
                n_l=charge.n_l,
                zeta=charge.zeta,
                pc=0.0,
                charge=charge.charge,
                valence=charge.valence,
                axes=charge.axes,
            )

        return cls(part(1.0), part(-1.0), charge.pc, share_kappa, share_kappa_prime)

    @property
    def element(self) -> str:
        return self.up.element

    @property
    def lmax(self) -> int:
        return self.up.lmax

    @property
    def frame(self) -> np.ndarray:
        return self.up.frame

    @property
    def axes(self):
        return self.up.axes

    @property
    def spin_pv(self) -> float:
        """Spin monopole Pv↑ − Pv↓ (μB)."""
        return self.up.pv - self.dn.pv

    @property
    def spin_plm(self) -> np.ndarray:
        """Spin multipoles P↑ − P↓ (μB)."""
        return self.up.plm - self.dn.plm

    def spin_parts(self) -> tuple[HansenCoppensAtom, HansenCoppensAtom]:
        """The spin-up and spin-down parts (``up``, ``dn``)."""
        return self.up, self.dn

    def charge_model(self) -> HansenCoppensAtom:
        """The unsplit charge model: P = P↑ + P↓ (κ, κ' of the up part)."""
        u = self.up
        return HansenCoppensAtom(
            element=u.element,
            pv=u.pv + self.dn.pv,
            kappa=u.kappa,
            lmax=u.lmax,
            plm=u.plm + self.dn.plm,
            kappa_prime=u.kappa_prime,
            frame=u.frame.copy(),
            n_l=u.n_l,
            zeta=u.zeta,
            pc=self.pc,
            charge=u.charge,
            valence=u.valence,
            axes=u.axes,
        )


AtomModel = SphericalAtom | HansenCoppensAtom | NuclearAtom | SplitAtom
#: What the structure-factor engine evaluates for one atom (a split atom is two or three).
EngineModel = SphericalAtom | HansenCoppensAtom | NuclearAtom

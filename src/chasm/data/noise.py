"""Noise models and reflection lists for simulated X-ray, UND and PND data (the data layer).

Every random draw takes a ``numpy.random.Generator`` (or an integer seed, turned
into one with ``numpy.random.default_rng``), so a simulation is reproducible:
the same seed gives the same numbers, bit for bit.

Integrated intensities (X-ray and unpolarised-neutron F²)
--------------------------------------------------------
A counting-statistics model on the ABSOLUTE scale (X-ray F² in electrons²,
neutron F² in fm²):

    σ²(F²) = (F² + background) / gain + (relative · F²)²

- ``gain`` (counts per unit of F²): converts F² to detector counts N = gain · F²,
  so that the Poisson variance of the counts, back on the F² scale, is F²/gain.
- ``background`` (units of F²): the background under the peak, in F² units; its
  counts add background · gain to the variance of the background-subtracted
  counts (one term with the peak's, as for a well-determined background).
- ``relative``: the systematic, intensity-proportional error (absorption, beam
  and detector instability, scaling) that limits I/σ of strong reflections.

The observation is F²_obs = F²_true + σ(F²_true) · N(0, 1). σ is evaluated on the
TRUE F² (not the noisy one), so (F²_obs − F²_true)/σ is exactly standard normal,
which is what a pull study needs; weak reflections can come out negative, as in
real data. With a scale factor k (:func:`observe_f2`) the data are
k F²_obs and k σ: the signal-to-noise ratio does not depend on k.

Default constants, and what they give for the seed structure
(``chasm/examples/seed_cu_dimer.cif``, independent-atom model, IT92 form
factors, 10 K X-ray ADPs; 30 K neutron ADPs; Laue-unique reflections):

- :data:`XRAY_NOISE`: gain 0.25 e⁻², background 25 e², relative 0.01. Median
  I/σ ≈ 32 for s = sinθ/λ < 0.1 Å⁻¹, ≈ 11 at 0.4–0.5, ≈ 4.9 at 0.8–0.9 and
  ≈ 3.3 at 1.0–1.1 Å⁻¹; 9105 of the 13119 unique reflections with s < 1 Å⁻¹
  (69 %) have I/σ > 3 (the seed paper, with a slightly different cell and
  real data: 7208 reflections with I/σ > 3 and s < 1 Å⁻¹).
- :data:`UND_NOISE`: gain 0.05 fm⁻², background 2000 fm², relative 0.02
  (a hydrogen-rich molecular crystal: large incoherent background). Median
  I/σ ≈ 7 for s < 0.3 Å⁻¹, ≈ 6 at 0.3–0.6 and ≈ 4.4 at 0.6–0.8 Å⁻¹.

Flipping ratios (PND)
---------------------
σ(R) = sqrt((r · R)² + floor²), R_obs = R_true + σ(R_true) · N(0, 1).
Default r = 0.007 (0.7 %, typical of a counting-limited flipping ratio on a
hot-neutron or thermal lifting-counter diffractometer for the stronger
reflections of a molecular crystal) and no floor (floor = 0).

Reflection lists
----------------
:func:`unique_reflections` gives the Laue-class-unique reflections (Friedel mates
merged; no anomalous signal is simulated) up to a sinθ/λ limit, without
systematic absences; :func:`lowest_angle` and :func:`strongest` pick the subset
that a PND experiment would measure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gemmi
import numpy as np
from numpy.typing import ArrayLike

from chasm.data.reflections import stol, systematic_absences

__all__ = [
    "IntensityNoise",
    "FlippingRatioNoise",
    "XRAY_NOISE",
    "UND_NOISE",
    "PND_NOISE",
    "RngLike",
    "as_generator",
    "observe_f2",
    "unique_reflections",
    "lowest_angle",
    "strongest",
]

RngLike = np.random.Generator | int | None


def as_generator(rng: RngLike) -> np.random.Generator:
    """A numpy Generator from a Generator (returned as is), an int seed or None (fresh)."""
    return np.random.default_rng(rng)


@dataclass(frozen=True)
class IntensityNoise:
    """Counting-statistics noise of integrated intensities F².

    σ²(F²) = (F² + background) / gain + (relative · F²)², all on the absolute
    scale of F² (see the module documentation).

    Parameters
    ----------
    gain : float
        Counts per unit of F² (e⁻² for X-rays, fm⁻² for neutrons); > 0.
    background : float
        Background under the peak in units of F² (e² or fm²); >= 0.
    relative : float
        Relative (systematic) error, dimensionless; >= 0.
    """

    gain: float
    background: float
    relative: float

    def __post_init__(self) -> None:
        if not self.gain > 0:
            raise ValueError(f"gain must be positive, got {self.gain}")
        if self.background < 0 or self.relative < 0:
            raise ValueError("background and relative error must not be negative")

    def sigma(self, f2_true: ArrayLike) -> np.ndarray:
        """σ(F²) (units of F²) of true intensities F² >= 0.

        Parameters
        ----------
        f2_true : array_like
            True F² on the absolute scale (e² or fm²).

        Returns
        -------
        ndarray
            Standard uncertainties, same shape, same units.
        """
        f2 = np.asarray(f2_true, dtype=float)
        if np.any(f2 < 0):
            raise ValueError("true F² must not be negative")
        return np.sqrt((f2 + self.background) / self.gain + (self.relative * f2) ** 2)

    def draw(self, f2_true: ArrayLike, rng: RngLike) -> tuple[np.ndarray, np.ndarray]:
        """One noise realisation: (F²_obs, σ), F²_obs = F²_true + σ N(0, 1).

        Parameters
        ----------
        f2_true : array_like
            True F² on the absolute scale (e² or fm²).
        rng : numpy.random.Generator or int or None
            Random source (an int is a seed).

        Returns
        -------
        f2_obs, sigma : ndarray
            Same shape and units as ``f2_true``.
        """
        sigma = self.sigma(f2_true)
        noise = as_generator(rng).standard_normal(sigma.shape)
        return np.asarray(f2_true, dtype=float) + sigma * noise, sigma


#: X-ray F² in e² (absolute scale), Mo Kα charge-density data at 10 K.
XRAY_NOISE = IntensityNoise(gain=0.25, background=25.0, relative=0.01)

#: Unpolarised-neutron F² in fm² (absolute scale), single-crystal data at 30 K.
UND_NOISE = IntensityNoise(gain=0.05, background=2000.0, relative=0.02)


def observe_f2(
    f2_true: ArrayLike, scale: float, rng: RngLike, noise: IntensityNoise = XRAY_NOISE
) -> tuple[np.ndarray, np.ndarray]:
    """Observed F² and σ on the scale of the data, from true F² on the absolute scale.

    F²_obs = k (F²_true + σ(F²_true) N(0, 1)) and σ_obs = k σ(F²_true), with σ
    from ``noise``; so F²_obs / k scatters about F²_true with I/σ independent of k.

    Parameters
    ----------
    f2_true : array_like
        True |F|² on the absolute scale (e² for X-rays, fm² for neutrons).
    scale : float
        Scale factor k of the data (F²_data = k |F|²), > 0.
    rng : numpy.random.Generator or int or None
        Random source (an int is a seed).
    noise : IntensityNoise
        The noise model (:data:`XRAY_NOISE` by default; :data:`UND_NOISE` for
        unpolarised neutrons).

    Returns
    -------
    f2_obs, sigma : ndarray
        On the data scale (k × absolute units).
    """
    if not scale > 0:
        raise ValueError(f"scale must be positive, got {scale}")
    f2_obs, sigma = noise.draw(f2_true, rng)
    return scale * f2_obs, scale * sigma


@dataclass(frozen=True)
class FlippingRatioNoise:
    """Noise of polarised-neutron flipping ratios R = I+/I−.

    σ(R) = sqrt((relative · R)² + floor²).

    Parameters
    ----------
    relative : float
        Relative error r of R, dimensionless (default 0.007, i.e. 0.7 %); >= 0.
    floor : float
        Smallest σ(R), dimensionless (default 0: none); >= 0.
    """

    relative: float = 0.007
    floor: float = 0.0

    def __post_init__(self) -> None:
        if self.relative < 0 or self.floor < 0:
            raise ValueError("relative error and floor must not be negative")
        if self.relative == 0 and self.floor == 0:
            raise ValueError("give a relative error or a floor (σ would be 0)")

    def sigma(self, ratio_true: ArrayLike) -> np.ndarray:
        """σ(R) of true flipping ratios R > 0 (dimensionless)."""
        r = np.asarray(ratio_true, dtype=float)
        if np.any(r <= 0):
            raise ValueError("flipping ratios must be positive")
        return np.sqrt((self.relative * r) ** 2 + self.floor**2)

    def draw(self, ratio_true: ArrayLike, rng: RngLike) -> tuple[np.ndarray, np.ndarray]:
        """One noise realisation: (R_obs, σ), R_obs = R_true + σ N(0, 1).

        Parameters
        ----------
        ratio_true : array_like
            True flipping ratios (dimensionless, > 0).
        rng : numpy.random.Generator or int or None
            Random source (an int is a seed).
        """
        sigma = self.sigma(ratio_true)
        noise = as_generator(rng).standard_normal(sigma.shape)
        return np.asarray(ratio_true, dtype=float) + sigma * noise, sigma


#: Flipping ratios: 0.7 % relative error, no floor.
PND_NOISE = FlippingRatioNoise()


# ----------------------------------------------------------------------------- reflections
def unique_reflections(crystal: Any, smax: float, smin: float = 0.0) -> np.ndarray:
    """Laue-unique reflections with smin < sinθ/λ <= smax, systematic absences removed.

    One representative per set of reflections equivalent under the Laue class
    (the point group plus inversion: Friedel mates merged), taken in gemmi's
    reciprocal asymmetric unit, sorted by increasing sinθ/λ (ties by h, k, l).

    Parameters
    ----------
    crystal : Crystal
        Needs ``cell`` and a ``spacegroup`` that gemmi knows.
    smax : float
        Largest sinθ/λ, Å⁻¹ (> 0).
    smin : float
        Reflections with sinθ/λ <= smin are left out, Å⁻¹ (default 0: only
        000 is left out).

    Returns
    -------
    ndarray, shape (n, 3), int
    """
    if not smax > 0:
        raise ValueError(f"smax must be positive, got {smax}")
    if crystal.spacegroup is None:
        raise ValueError("the crystal's symmetry is not a setting gemmi knows")
    dmin = 0.5 / smax * (1.0 - 1e-9)  # keep reflections on the limit despite rounding
    hkl = np.asarray(gemmi.make_miller_array(crystal.cell, crystal.spacegroup, dmin), dtype=int)
    hkl = hkl[~systematic_absences(hkl, crystal.spacegroup)]
    s = stol(hkl, crystal)
    keep = (s > smin) & (s <= smax * (1.0 + 1e-12))
    hkl, s = hkl[keep], s[keep]
    order = np.lexsort((hkl[:, 2], hkl[:, 1], hkl[:, 0], np.round(s, 12)))
    out: np.ndarray = hkl[order]
    return out


def lowest_angle(hkl: ArrayLike, crystal: Any, n: int) -> np.ndarray:
    """The ``n`` reflections of smallest sinθ/λ (all if fewer), in that order.

    Parameters
    ----------
    hkl : array_like, shape (m, 3), int
    crystal : Crystal or gemmi.UnitCell
        For the metric.
    n : int
        How many to keep (>= 0).

    Returns
    -------
    ndarray, shape (min(n, m), 3), int
    """
    hkl = np.asarray(hkl, dtype=int).reshape(-1, 3)
    if n < 0:
        raise ValueError("n must not be negative")
    order = np.argsort(stol(hkl, crystal), kind="stable")
    return hkl[order[:n]]


def strongest(hkl: ArrayLike, amplitude: ArrayLike, n: int) -> np.ndarray:
    """The ``n`` reflections of largest |amplitude| (e.g. |F_M| or |F_M/F_N|), strongest first.

    Parameters
    ----------
    hkl : array_like, shape (m, 3), int
    amplitude : array_like, shape (m,), real or complex
        What to rank by; its modulus is used.
    n : int
        How many to keep (>= 0).

    Returns
    -------
    ndarray, shape (min(n, m), 3), int
        Ties keep the input order.
    """
    hkl = np.asarray(hkl, dtype=int).reshape(-1, 3)
    size = np.abs(np.asarray(amplitude)).reshape(-1)
    if size.shape[0] != hkl.shape[0]:
        raise ValueError(f"{hkl.shape[0]} reflections but {size.shape[0]} amplitudes")
    if n < 0:
        raise ValueError("n must not be negative")
    order = np.argsort(-size, kind="stable")
    return hkl[order[:n]]

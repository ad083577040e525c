"""Extinction corrections y (multiplying F²) with analytic derivatives.

Every function returns ``(y, dy/dF², dy/dparameter)`` so that an observable
layer can apply the chain rule: for I_c = k y(F²) F², dI_c/dp = k (y + F² dy/dF²)
dF²/dp. F² is always the kinematic, absolute-scale |F|² (before the overall
scale factor k), in the squared unit of the structure factor (electrons² for
X-rays).

Two models are provided.

SHELXL ``EXTI`` (SHELXL manual, instruction EXTI; Sheldrick, Acta Cryst. C71
(2015) 3). SHELXL multiplies Fc by k [1 + 0.001 x Fc² λ³ / sin 2θ]^(−1/4), so on
F² the factor is

    y = [1 + 0.001 x F² λ³ / sin 2θ]^(−1/2),

with λ in Å and x the refinable, dimensionless EXTI value.

Becker & Coppens (1974), Acta Cryst. A30, 129-147, isotropic secondary
extinction of type I (mosaic spread dominates) in a spherical crystal, with
their closed approximations (their Eqs. 37-38 and the fits of their Tables)

    Gaussian mosaic:   y = [1 + 2.12 x + A_G(θ) x² / (1 + B_G(θ) x)]^(−1/2)
        A_G = 0.58 + 0.48 cos 2θ + 0.24 cos² 2θ
        B_G = 0.02 − 0.025 cos 2θ
    Lorentzian mosaic: y = [1 + 2 x + A_L(θ) x² / (1 + B_L(θ) x)]^(−1/2)
        A_L = 0.025 + 0.285 cos 2θ
        B_L = 0.15 − 0.2 (0.75 − cos 2θ)²   if cos 2θ > 0
        B_L = −0.45 cos 2θ                    if cos 2θ ≤ 0

The linear coefficient of the Gaussian form is 2.12, not 2: with BC's
normalisation of x the Gaussian integral gives y ≈ 1 − (3/√2)x/2 ≈ 1 − 1.06 x
at small x (the same coefficients are used by cryspy). The Lorentzian B_L is
discontinuous at 2θ = 90° in the published fit; we keep it as published.
Against a direct numerical evaluation of the Becker–Coppens integral these
forms agree to 0.3 % for x ≤ 0.1 and to 6 % for x ≤ 1 (tests/test_extinction.py).

Parametrisation of x (our choice, documented here). The refinable parameter is
BC's mosaic parameter g (rad⁻¹); the mosaic distributions of the rocking angle
Δ (rad) are

    W_G(Δ) = √2 g exp(−2π g² Δ²)       (Gaussian; standard deviation 1/(2√π g)),
    W_L(Δ) = 2 g / (1 + (2π g Δ)²)     (Lorentzian; half width 1/(2π g)),

both normalised to ∫W dΔ = 1 and with ∫W² dΔ = g. With Q the kinematic
integrated reflectivity per unit volume (Å⁻¹) and T̄ the mean (intensity
weighted) path length through the crystal (T̄ = 3r/2 for a sphere of radius r),

    x_G = (2√2/3) g Q T̄,      x_L = g Q T̄,

so that in both cases y ≈ 1 − g Q T̄ for weak extinction (the first-order loss
of a mosaic crystal is T̄ Q ∫W² dΔ). For X-rays, σ polarisation,

    Q = r_e² λ³ |F|² / (V² sin 2θ),   r_e = 2.8179403262e−5 Å,

and for neutrons the same with the scattering length unit in place of r_e
(``amplitude_unit`` = 1e−5 Å per fm). λ in Å, V (cell volume) in Å³, T̄ given in
µm (converted internally). For an unpolarised X-ray beam the two polarisation
states are extinguished separately (Q_π = cos² 2θ Q_σ):

    y = [y(x) + K² y(K² x)] / (1 + K²),   K = cos 2θ.

Type II (particle size) and mixed extinction, anisotropic extinction and
monochromator polarisation are not implemented.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from chasm.errors import InputError

__all__ = [
    "R_E_ANGSTROM",
    "FM_IN_ANGSTROM",
    "bragg_trig",
    "shelx_exti",
    "becker_coppens_coefficients",
    "becker_coppens_y",
    "becker_coppens_type1",
]

R_E_ANGSTROM = 2.8179403262e-5  # classical electron radius (CODATA 2018), Å
FM_IN_ANGSTROM = 1.0e-5  # 1 fm in Å
_UM_IN_ANGSTROM = 1.0e4
_DISTRIBUTIONS = ("gauss", "lorentz")


def bragg_trig(stol: ArrayLike, wavelength: float) -> tuple[np.ndarray, np.ndarray]:
    """sin 2θ and cos 2θ from sinθ/λ.

    Parameters
    ----------
    stol : array_like
        sinθ/λ (Å⁻¹).
    wavelength : float
        λ (Å).

    Returns
    -------
    sin2theta, cos2theta : ndarray

    Raises
    ------
    InputError
        λ ≤ 0 or a reflection beyond the limiting sphere (λ sinθ/λ > 1).
    """
    if not wavelength > 0:
        raise InputError(f"wavelength must be positive (got {wavelength} Å)")
    s = wavelength * np.asarray(stol, dtype=float)
    if np.any(s > 1.0) or np.any(s < 0.0):
        raise InputError(
            f"sinθ = λ·sinθ/λ outside [0, 1] (max {np.max(s):.4f}): "
            "reflection beyond the limiting sphere for this wavelength"
        )
    cos_t = np.sqrt(1.0 - s * s)
    return 2.0 * s * cos_t, 1.0 - 2.0 * s * s


def _check_bracket(base: np.ndarray, what: str) -> None:
    if np.any(base <= 0.0) or not np.all(np.isfinite(base)):
        raise InputError(
            f"{what}: extinction bracket ≤ 0 (parameter too negative); "
            "the extinction parameter must keep y real and finite"
        )


def shelx_exti(fc2: ArrayLike, x: float, wavelength: float, sin2theta: ArrayLike) -> tuple:
    """SHELXL EXTI extinction factor on F² and its derivatives.

    y = [1 + 0.001 x F² λ³ / sin 2θ]^(−1/2)  (SHELXL's Fc factor, squared).

    Parameters
    ----------
    fc2 : array_like
        Absolute-scale |Fc|² (electrons²), before the overall scale.
    x : float
        EXTI parameter (dimensionless).
    wavelength : float
        λ (Å).
    sin2theta : array_like
        sin 2θ of each reflection (> 0).

    Returns
    -------
    y, dy_dfc2, dy_dx : ndarray
        y multiplies F²; derivatives with respect to F² (electrons⁻²) and x.

    Raises
    ------
    InputError
        sin 2θ ≤ 0 or a bracket ≤ 0 (x too negative).
    """
    fc2 = np.asarray(fc2, dtype=float)
    s2t = np.asarray(sin2theta, dtype=float)
    if np.any(s2t <= 0.0):
        raise InputError("shelx_exti: sin 2θ must be positive for every reflection")
    c = 0.001 * wavelength**3 / s2t
    base = 1.0 + x * c * fc2
    _check_bracket(base, "shelx_exti")
    y = base**-0.5
    half_y3 = -0.5 * y**3
    return y, half_y3 * x * c, half_y3 * c * fc2


def becker_coppens_coefficients(cos2theta: ArrayLike, distribution: str = "gauss") -> tuple:
    """Coefficients (a1, A, B) of y = [1 + a1 x + A x²/(1 + B x)]^(−1/2).

    Becker & Coppens (1974), type I, see the module docstring.

    Parameters
    ----------
    cos2theta : array_like
        cos 2θ.
    distribution : {"gauss", "lorentz"}
        Mosaic distribution.

    Returns
    -------
    a1 : float
        Linear coefficient (2.12 Gaussian, 2 Lorentzian).
    A, B : ndarray
        Angle-dependent coefficients.
    """
    c = np.asarray(cos2theta, dtype=float)
    if distribution == "gauss":
        return 2.12, 0.58 + 0.48 * c + 0.24 * c * c, 0.02 - 0.025 * c
    if distribution == "lorentz":
        b = np.where(c > 0.0, 0.15 - 0.2 * (0.75 - c) ** 2, -0.45 * c)
        return 2.0, 0.025 + 0.285 * c, b
    raise InputError(f"unknown mosaic distribution {distribution!r}; use one of {_DISTRIBUTIONS}")


def becker_coppens_y(x: ArrayLike, cos2theta: ArrayLike, distribution: str = "gauss") -> tuple:
    """Becker–Coppens closed form y(x, θ) and dy/dx (one polarisation state).

    Parameters
    ----------
    x : array_like
        Extinction argument (dimensionless, ≥ 0 physically).
    cos2theta : array_like
        cos 2θ.
    distribution : {"gauss", "lorentz"}

    Returns
    -------
    y, dy_dx : ndarray
    """
    x = np.asarray(x, dtype=float)
    a1, A, B = becker_coppens_coefficients(cos2theta, distribution)
    den = 1.0 + B * x
    if np.any(den <= 0.0):
        raise InputError("becker_coppens_y: 1 + B x ≤ 0 (x too negative)")
    base = 1.0 + a1 * x + A * x * x / den
    _check_bracket(base, "becker_coppens_y")
    y = base**-0.5
    dbase = a1 + A * x * (2.0 + B * x) / (den * den)
    return y, -0.5 * y**3 * dbase


def becker_coppens_type1(
    fc2: ArrayLike,
    g: float,
    *,
    wavelength: float,
    sin2theta: ArrayLike,
    cos2theta: ArrayLike,
    volume: float,
    path_length: float,
    distribution: str = "gauss",
    polarisation: str = "unpolarised",
    amplitude_unit: float = R_E_ANGSTROM,
) -> tuple:
    """Becker–Coppens type I isotropic extinction, refinable mosaic parameter g.

    See the module docstring for x(g) and the closed forms.

    Parameters
    ----------
    fc2 : array_like
        Absolute-scale |F|² (electrons² for X-rays, fm² for neutrons).
    g : float
        Mosaic parameter (rad⁻¹); 0 means no extinction.
    wavelength : float
        λ (Å).
    sin2theta, cos2theta : array_like
        sin 2θ and cos 2θ of each reflection (see :func:`bragg_trig`).
    volume : float
        Unit-cell volume (Å³).
    path_length : float
        Mean path length T̄ through the crystal (µm); 3r/2 for a sphere.
    distribution : {"gauss", "lorentz"}
        Mosaic distribution.
    polarisation : {"unpolarised", "none"}
        "unpolarised": X-ray beam without monochromator, σ and π states
        extinguished separately; "none": a single state (neutrons).
    amplitude_unit : float
        Length (Å) of one unit of F: r_e for X-rays (default),
        :data:`FM_IN_ANGSTROM` for neutron amplitudes in fm.

    Returns
    -------
    y, dy_dfc2, dy_dg : ndarray
        y multiplies F²; derivatives with respect to F² and g (rad).
    """
    fc2 = np.asarray(fc2, dtype=float)
    s2t = np.asarray(sin2theta, dtype=float)
    c2t = np.asarray(cos2theta, dtype=float)
    if np.any(s2t <= 0.0):
        raise InputError("becker_coppens_type1: sin 2θ must be positive for every reflection")
    if not (volume > 0 and path_length >= 0 and wavelength > 0):
        raise InputError("becker_coppens_type1: λ, V must be positive and T̄ ≥ 0")
    if distribution not in _DISTRIBUTIONS:
        raise InputError(
            f"unknown mosaic distribution {distribution!r}; use one of {_DISTRIBUTIONS}"
        )
    q_per_f2 = amplitude_unit**2 * wavelength**3 / (volume**2 * s2t)  # Å⁻¹ per unit F²
    geom = 2.0 * np.sqrt(2.0) / 3.0 if distribution == "gauss" else 1.0
    const = geom * q_per_f2 * (path_length * _UM_IN_ANGSTROM)  # x = g * const * F²
    x = g * const * fc2
    y1, d1 = becker_coppens_y(x, c2t, distribution)
    if polarisation == "none":
        y, dy_dx = y1, d1
    elif polarisation == "unpolarised":
        k2 = c2t * c2t
        y2, d2 = becker_coppens_y(k2 * x, c2t, distribution)
        norm = 1.0 / (1.0 + k2)
        y = (y1 + k2 * y2) * norm
        dy_dx = (d1 + k2 * k2 * d2) * norm
    else:
        raise InputError(f"unknown polarisation {polarisation!r}; use 'unpolarised' or 'none'")
    return y, dy_dx * (g * const), dy_dx * (const * fc2)

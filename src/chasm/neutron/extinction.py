"""cryspy's spherical-crystal extinction model for flipping ratios.

cryspy (``A_functions_base/extinction.py``, ``calc_extinction_sphere``)
multiplies a primary and a secondary Becker–Coppens (Acta Cryst. A30 (1974)
129) factor, both closed forms y = [1 + a₁x + A x²/(1 + B x)]^(−1/2):

    y = y_p(x_p) · y_s(x_s)

- primary (BC's fit for a sphere): a₁ = 2, A = 0.20 + 0.45 cos 2θ,
  B = 0.22 − 0.12 (0.5 − cos 2θ)², with x_p = (3/2) (F λ r / V)²;
- secondary, Gaussian mosaic: the coefficients 2.12, A_G(θ), B_G(θ) of
  :func:`chasm.scattering.extinction.becker_coppens_coefficients` (reused
  here), with BC's mixed type I/type II argument

      x_s = (3/2) F² λ (λ r / V)² · g / √(g² λ² + (9/8) r² sin² 2θ);

  Lorentzian mosaic: coefficients 2, A_L, B_L of the same function and
  x_s = (3/2) F² λ (λ r / V)² · g / (g λ + r sin 2θ).

F, λ, r and V must be in consistent lengths; the secondary term is switched
off when r·g = 0 (then only primary extinction remains if r > 0).

Units of cryspy's parameters
----------------------------
cryspy writes F in 10⁻¹² cm, λ and V in Å, the radius r in µm, and
``_extinction_mosaicity`` m "in minutes", converted to m_rad = m π/10800 and
put in place of g. Because 10⁻¹² cm × µm = 10⁻⁴ Å × 10⁴ Å = Å², x_p and the
prefactor of x_s are dimensionless as written, but g λ and r sin 2θ are compared
with λ in Å and r in µm. Rewritten in one length unit, cryspy's secondary
extinction is BC's formula with

    g = 10⁴ × m × π/10800 rad⁻¹ ≈ 2.9089 m rad⁻¹,   sphere radius r (µm),

i.e. with chasm's parametrisation (:mod:`chasm.scattering.extinction`, type I
limit, Gaussian W(Δ) = √2 g exp(−2π g² Δ²), mean path T̄ = 3r/2)
``becker_coppens_type1(F², g=cryspy_mosaicity_to_g(m), path_length=1.5 r,
amplitude_unit=FM_IN_ANGSTROM, polarisation="none")`` is the limit of
cryspy's y_s for g λ ≪ r sin 2θ (tests/test_neutron_extinction.py checks it).
So cryspy's "mosaicity" is BC's g in disguise, not a mosaic spread: the
Ho2Ti2O7 value 2909.9 means g ≈ 8465 rad⁻¹, a Gaussian of standard deviation
1/(2√π g) ≈ 3.3 × 10⁻⁵ rad (0.11 arcmin). The radius also serves as the
primary-extinction (domain) size.

Here F is in fm (F² in fm²); the factor 1/100 from fm² to (10⁻¹² cm)² is applied
inside, so the numbers are cryspy's to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chasm.errors import InputError
from chasm.scattering.extinction import becker_coppens_y

__all__ = ["cryspy_mosaicity_to_g", "SphereExtinction"]

_ARCMIN = np.pi / 10800.0
_FM2_TO_1E12CM2 = 1.0e-2


def cryspy_mosaicity_to_g(mosaicity: float) -> float:
    """BC mosaic parameter g (rad⁻¹) equivalent to cryspy's ``_extinction_mosaicity``."""
    return 1.0e4 * mosaicity * _ARCMIN


def _primary(x: np.ndarray, c2t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = 0.20 + 0.45 * c2t
    b = 0.22 - 0.12 * (0.5 - c2t) ** 2
    den = 1.0 + b * x
    base = 1.0 + 2.0 * x + a * x * x / den
    if np.any(base <= 0.0) or np.any(den <= 0.0):
        raise InputError("primary extinction: bracket ≤ 0 (negative radius?)")
    y = base**-0.5
    dbase = 2.0 + a * x * (2.0 + b * x) / (den * den)
    return y, -0.5 * y**3 * dbase


@dataclass(frozen=True)
class SphereExtinction:
    """cryspy's extinction of a sphere, bound to the reflections of one data set.

    Parameters
    ----------
    model : {"gauss", "lorentz"}
        Mosaic distribution of the secondary term.
    mosaicity : float
        cryspy's ``_extinction_mosaicity`` (see the module docstring).
    radius : float
        cryspy's ``_extinction_radius`` (µm).
    wavelength : float
        λ (Å).
    volume : float
        Cell volume V (Å³).
    cos2theta : ndarray (n,)
        cos 2θ of each reflection.
    primary : bool
        Include the primary factor y_p (cryspy always does; switch it off to
        look at the secondary term alone).

    Calling it with F² (fm², shape (n,)) returns ``(y, dy/dF², {"radius": dy/dr,
    "mosaicity": dy/dm})``.
    """

    model: str
    mosaicity: float
    radius: float
    wavelength: float
    volume: float
    cos2theta: np.ndarray
    primary: bool = True

    def __post_init__(self) -> None:
        if self.model not in ("gauss", "lorentz"):
            raise InputError(f"extinction model {self.model!r}: use 'gauss' or 'lorentz'")
        if not (self.wavelength > 0 and self.volume > 0):
            raise InputError("extinction: wavelength and cell volume must be positive")
        if self.radius < 0 or self.mosaicity < 0:
            raise InputError("extinction: radius and mosaicity must not be negative")

    @classmethod
    def from_stol(
        cls, model: str, mosaicity: float, radius: float, wavelength: float, volume: float, stol
    ) -> SphereExtinction:
        """Build from sinθ/λ: cos 2θ = 1 − 2(λ sinθ/λ)², as cryspy does."""
        c2t = 1.0 - 2.0 * (wavelength * np.asarray(stol, dtype=float)) ** 2
        return cls(model, mosaicity, radius, wavelength, volume, c2t)

    def __call__(self, f_sq) -> tuple[np.ndarray, np.ndarray, dict]:
        f_sq = np.asarray(f_sq, dtype=float) * _FM2_TO_1E12CM2
        c2t = np.asarray(self.cos2theta, dtype=float)
        lam, r, vol = self.wavelength, self.radius, self.volume
        k_p = 1.5 * (lam * r / vol) ** 2 if self.primary else 0.0
        y_p, dyp_dx = _primary(k_p * f_sq, c2t)
        dxp_df = k_p
        dxp_dr = 3.0 * (lam / vol) ** 2 * r * f_sq if self.primary else 0.0 * f_sq

        m = self.mosaicity * _ARCMIN
        sin2 = np.clip(1.0 - c2t * c2t, 0.0, None)
        pref = 1.5 * lam * (lam * r / vol) ** 2  # x_s = pref * t * F²
        if r > 0:  # also at m = 0, where t = 0 but dt/dm (one-sided) is not
            if self.model == "gauss":
                d = np.sqrt((m * lam) ** 2 + 1.125 * r * r * sin2)
            else:
                d = m * lam + r * np.sqrt(sin2)
            ok = d > 0  # d = 0 only for m = 0 at 2θ = 0 or 180°: no secondary extinction
            d = np.where(ok, d, 1.0)
            t = np.where(ok, m / d, 0.0)
            if self.model == "gauss":
                dt_dr = np.where(ok, -m * 1.125 * r * sin2 / d**3, 0.0)
                dt_dm = np.where(ok, 1.125 * r * r * sin2 / d**3, 0.0)
            else:
                dt_dr = np.where(ok, -m * np.sqrt(sin2) / d**2, 0.0)
                dt_dm = np.where(ok, r * np.sqrt(sin2) / d**2, 0.0)
        else:
            t = dt_dr = dt_dm = np.zeros_like(c2t)
        x_s = pref * t * f_sq
        y_s, dys_dx = becker_coppens_y(x_s, c2t, self.model)
        dxs_df = pref * t
        dxs_dr = (2.0 * pref / r * t + pref * dt_dr) * f_sq if r > 0 else np.zeros_like(x_s)
        dxs_dm = pref * dt_dm * f_sq * _ARCMIN

        y = y_p * y_s
        dy_df = (y_s * dyp_dx * dxp_df + y_p * dys_dx * dxs_df) * _FM2_TO_1E12CM2
        dy_dr = y_s * dyp_dx * dxp_dr + y_p * dys_dx * dxs_dr
        dy_dm = y_p * dys_dx * dxs_dm
        return y, dy_df, {"radius": dy_dr, "mosaicity": dy_dm}

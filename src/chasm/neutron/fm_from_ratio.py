"""The classical route: "observed" magnetic structure factors from flipping ratios.

For a centrosymmetric structure magnetised along the field ê, F_N and F_M of a
reflection share their phase, so γ = F_M / F_N is real. With q = sin²α, signed
beam polarisation P, flipper efficiency e and P_d = P(2e − 1), the collinear
flipping ratio without extinction (CONVENTIONS.md, "Neutrons") reads

    R = (1 + 2 P q γ + q γ²) / (1 − 2 P_d q γ + q γ²),

a quadratic in γ:

    A γ² − 2 B γ + C = 0,   A = q (R − 1),  B = q (R P_d + P),  C = R − 1.

Its roots are γ = C / (B ∓ √(B² − AC)); the one of smaller |γ|,
γ = C / (B + sign(B) √(B² − AC)), is the physical one for a weak magnetic
signal (|γ| < 1; the other root is of order 1/(q γ)), and this form stays exact
as R → 1 (γ → 0) where (B − √…)/A would cancel. When B² < AC no real γ
reproduces R (the ratio is beyond what P, e and q allow): such a reflection
gets no γ (NaN) and is flagged.

The standard uncertainty is propagated from σ(R) alone, through
dγ/dR = −(q γ² − 2 q γ P_d + 1) / (2 A γ − 2 B) (implicit differentiation of
the quadratic), σ(γ) = |dγ/dR| σ(R); F_N, q, P and e count as exact. The
observed magnetic structure factor is then F_M = γ F_N with F_N calculated
(fm; for real F_N its sign carries the phase), σ(F_M) = |F_N| σ(γ).

The route ignores extinction and any contribution other than the collinear
magnetisation (no λ/2, no polarised nuclei): it is the textbook treatment,
kept to compare with published "observed F_M" and as a check of the direct
refinement of R (:class:`chasm.refine.pnd_data.PndData`), which is the default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MagneticAmplitudes", "gamma_from_ratio"]


@dataclass(frozen=True)
class MagneticAmplitudes:
    """γ = F_M/F_N deduced from flipping ratios, with su.

    Attributes
    ----------
    gamma, gamma_su : ndarray (n,)
        γ and σ(γ) (dimensionless); NaN where no real root exists.
    dgamma_dr : ndarray (n,)
        dγ/dR (NaN where no real root exists).
    valid : ndarray (n,) bool
        A real root exists (B² > AC, q > 0 and B ≠ 0).
    """

    gamma: np.ndarray
    gamma_su: np.ndarray
    dgamma_dr: np.ndarray
    valid: np.ndarray


def gamma_from_ratio(
    ratio, sigma, q, polarisation: float, efficiency: float = 1.0
) -> MagneticAmplitudes:
    """Solve the collinear flipping-ratio formula for γ = F_M/F_N (module docstring).

    Parameters
    ----------
    ratio, sigma : array_like (n,)
        Flipping ratios R and σ(R).
    q : array_like (n,)
        sin²α of each reflection (angle between the scattering vector and the field).
    polarisation : float
        Signed beam polarisation P.
    efficiency : float
        Flipper efficiency e.

    Returns
    -------
    MagneticAmplitudes
    """
    r = np.asarray(ratio, dtype=float)
    s = np.asarray(sigma, dtype=float)
    q = np.broadcast_to(np.asarray(q, dtype=float), r.shape)
    p_d = polarisation * (2.0 * efficiency - 1.0)
    a = q * (r - 1.0)
    b = q * (r * p_d + polarisation)
    c = r - 1.0
    disc = b * b - a * c
    valid = (disc > 0.0) & (q > 0.0) & (b != 0.0)
    root = np.sqrt(np.where(valid, disc, 0.0))
    denom = b + np.copysign(root, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        gamma = np.where(valid, c / np.where(valid, denom, 1.0), np.nan)
        slope = 2.0 * a * gamma - 2.0 * b  # ∂f/∂γ = −2 sign(B) √disc at this root
        dgamma = -(q * gamma**2 - 2.0 * q * gamma * p_d + 1.0) / slope
    dgamma = np.where(valid, dgamma, np.nan)
    return MagneticAmplitudes(gamma, np.abs(dgamma) * s, dgamma, valid)

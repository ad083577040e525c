"""Flipping ratios from nuclear and magnetic structure factors, and agreement factors.

Collinear form (CONVENTIONS.md, "Neutrons"), magnetisation along the field ê,
F_M the scalar magnetic structure factor (fm), q = sin²α, P the signed beam
polarisation and e the flipper efficiency:

    I+ = |F_N|² + 2 P q Re(F_N F_M*) + q |F_M|²
    I− = |F_N|² − 2 P(2e − 1) q Re(F_N F_M*) + q |F_M|²,     R = I+ / I−.

General vector form (any magnetisation; F_M⊥ = F_M − (ĥ·F_M) ĥ the magnetic
interaction vector, z = F_M⊥·ê):

    non-spin-flip  |F±|² = |F_N ± z|²
    spin-flip      S = |F_M⊥|² − |z|²
    chiral         C = 2 (Re F_M⊥ × Im F_M⊥)·ê
    I+ = ½(1 + P) y₊|F₊|² + ½(1 − P) y₋|F₋|² + y_S S + P C
    I− = ½(1 − P_d) y₊|F₊|² + ½(1 + P_d) y₋|F₋|² + y_S S − P_d C,   P_d = P(2e − 1).

For F_M ∥ ê (z = q F_M, |F_M⊥|² = q|F_M|²) and no extinction this is the
collinear form (tests/test_neutron_flipping.py). The chiral term is cryspy's
(``flip_ratio.calc_iint``), written for chasm's exp(+2πi h·r) structure
factors (cryspy's are their complex conjugates, for which the same quantity
reads 2(Im F_x Re F_y − Re F_x Im F_y) in laboratory axes); it vanishes for
collinear structures and whenever F_M⊥ is real up to a common phase.

Extinction is applied to each partial cross-section separately, as cryspy
does: y₊ = y(|F_N + z|²) on the non-spin-flip "+" channel, y₋ = y(|F_N − z|²)
on the "−" channel, y_S = y(S) on the spin-flip part, each factor evaluated on
the F² of its own channel (fm², no scale factor); the chiral term is not
extinguished.

Systematic absences: when both I+ and I− are below ``ABSENT_INTENSITY``
(1e−20 fm²), F_N and F_M vanish by symmetry and only rounding is left
(|F| ~ 1e−15 fm); their quotient would be noise. Such a reflection gets R = 1
and zero derivatives, the value cryspy reports for it.

Polarised protons (CONVENTIONS.md, "Neutrons"): at low T and high B the
proton's coherent amplitude seen by neutrons of spin ± is b_c ± 14.56 fm · P_H,
P_H = tanh(μ_p B / k_B T) (:func:`proton_polarisation`). This term is
non-spin-flip, without sin²α or form factor, so the non-spin-flip amplitudes
become F_N ± (z + F_Hpol) with

    F_Hpol(h) = Σ_H 14.56 P_H exp(2πi h·r) T^N(h)    (fm)

over the H atoms of the cell (occupancies, neutron ADPs); S and C are
unchanged (``f_hpol`` of :func:`flipping_ratio`). For F_M ∥ ê this is
F± = F_N ± (q F_M + F_Hpol).

λ/2 contamination: the detector at the Bragg angle of h also records 2h at
λ/2 (same ĥ, hence the same ê geometry), so

    R = (I+(h; λ) + α I+(2h; λ/2)) / (I−(h; λ) + α I−(2h; λ/2)),

each I± the expression above for its own reflection (extinction of 2h at
λ/2, same θ), α ≥ 0 the λ/2 integrated intensity per unit |F|² relative to
that at λ (``half`` and ``lambda_half`` of :func:`flipping_ratio`). This is
the *polarised* λ/2 model: the λ/2 neutrons are polarised and flipped like
those at λ.

The *unpolarised* λ/2 model (``HalfWavelength(unpolarised=True)``, cryspy's
``_setup_ratio_lambdaover2``) adds the same unpolarised intensity of 2h to
both channels,

    R = (I+(h; λ) + α I(2h)) / (I−(h; λ) + α I(2h)),
    I(2h) = I±(2h) at P = 0 = |F_N|² + |F_M⊥|² (with extinction),

with the extinction model that the caller gives (cryspy: that of h at λ).
Neither P nor e acts on the 2h term. docs/physics.md says which instruments
each model fits.

Agreement (CONVENTIONS.md): χ² = Σ w (R_o − R_c)², w = 1/σ²;
Rw(1−R) = √(Σ w (R_o − R_c)² / Σ w (R_o − 1)²); GOF = √(χ²/(N − N_par)).
cryspy's ``_refine_ls_goodness_of_fit_all`` is χ²/N (no square root).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.constants import k as BOLTZMANN

from chasm.data.agreement import Agreement

__all__ = [
    "flipping_ratio_collinear",
    "PolarisedIntensities",
    "polarised_intensities",
    "flipping_ratio",
    "HalfWavelength",
    "TwinDomain",
    "proton_polarisation",
    "PROTON_SPIN_AMPLITUDE",
    "PROTON_MOMENT",
    "FlippingStatistics",
    "flipping_statistics",
]

#: Intensity (fm²) below which both flipper states count as a systematic absence (R = 1).
ABSENT_INTENSITY = 1e-20

#: Spin-dependent coherent amplitude of a fully polarised proton (fm): b± = b_c ± 14.56 P_H.
PROTON_SPIN_AMPLITUDE = 14.56

#: Proton magnetic moment μ_p (J/T); k_B is scipy's CODATA value (J/K).
PROTON_MOMENT = 1.41061e-26

#: An extinction model: F² (fm²) -> (y, dy/dF², {parameter: dy/dparameter}).
Extinction = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, dict]]


def flipping_ratio_collinear(f_n, f_m, q, polarisation: float, efficiency: float = 1.0):
    """Collinear flipping ratio (no extinction), CONVENTIONS.md.

    Parameters
    ----------
    f_n : array_like complex
        Nuclear structure factor (fm).
    f_m : array_like complex
        Magnetic structure factor of the magnetisation along ê (fm).
    q : array_like
        sin²α.
    polarisation : float
        Signed beam polarisation P.
    efficiency : float
        Flipper efficiency e.

    Returns
    -------
    ndarray
        R = I+ / I−.
    """
    f_n = np.asarray(f_n, dtype=complex)
    f_m = np.asarray(f_m, dtype=complex)
    q = np.asarray(q, dtype=float)
    n2 = np.abs(f_n) ** 2
    cross = 2.0 * q * np.real(f_n * np.conj(f_m))
    m2 = q * np.abs(f_m) ** 2
    i_plus = n2 + polarisation * cross + m2
    i_minus = n2 - polarisation * (2.0 * efficiency - 1.0) * cross + m2
    absent = (np.abs(i_plus) < ABSENT_INTENSITY) & (np.abs(i_minus) < ABSENT_INTENSITY)
    return np.where(absent, 1.0, i_plus / np.where(absent, 1.0, i_minus))


@dataclass
class PolarisedIntensities:
    """Integrated intensities of the two flipper states and their parts (fm²).

    Attributes
    ----------
    i_plus, i_minus : ndarray (n,)
    nsf_plus, nsf_minus : ndarray (n,)
        |F_N + z|² and |F_N − z|², z = F_M⊥·ê (z + F_Hpol with polarised protons).
    spin_flip : ndarray (n,)
        |F_M⊥|² − |z|².
    chiral : ndarray (n,)
        2 (Re F_M⊥ × Im F_M⊥)·ê.
    y_plus, y_minus, y_spin_flip : ndarray (n,)
        Extinction factors of the three channels (1 without extinction).
    """

    i_plus: np.ndarray
    i_minus: np.ndarray
    nsf_plus: np.ndarray
    nsf_minus: np.ndarray
    spin_flip: np.ndarray
    chiral: np.ndarray
    y_plus: np.ndarray
    y_minus: np.ndarray
    y_spin_flip: np.ndarray
    extinction_derivatives: dict = field(default_factory=dict, repr=False)


def _channels(f_n, f_m_perp, e):
    f_n = np.asarray(f_n, dtype=complex)
    f_m_perp = np.asarray(f_m_perp, dtype=complex).reshape(-1, 3)
    e = np.asarray(e, dtype=float)
    e = np.broadcast_to(e, f_m_perp.shape)
    z = np.sum(f_m_perp * e, axis=1)
    nsf_plus = np.abs(f_n + z) ** 2
    nsf_minus = np.abs(f_n - z) ** 2
    spin_flip = np.sum(np.abs(f_m_perp) ** 2, axis=1) - np.abs(z) ** 2
    spin_flip = np.clip(spin_flip, 0.0, None)
    chiral = 2.0 * np.sum(np.cross(f_m_perp.real, f_m_perp.imag) * e, axis=1)
    return f_n, f_m_perp, e, z, nsf_plus, nsf_minus, spin_flip, chiral


def _apply(extinction: Extinction | None, f_sq: np.ndarray):
    if extinction is None:
        return np.ones_like(f_sq), np.zeros_like(f_sq), {}
    return extinction(f_sq)


def proton_polarisation(field: float, temperature: float) -> float:
    """Thermal-equilibrium polarisation of the protons, P_H = tanh(μ_p |B| / (k_B T)).

    Parameters
    ----------
    field : float
        Applied field B (T); only |B| is used.
    temperature : float
        Sample temperature T (K), > 0.

    Returns
    -------
    float
        P_H (dimensionless, 0 ≤ P_H < 1); 0.00255 at 2 K and 5 T.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 K, got {temperature}")
    return float(np.tanh(PROTON_MOMENT * abs(field) / (BOLTZMANN * temperature)))


def _intensities(
    f_n,
    f_m_perp,
    e,
    polarisation: float,
    efficiency: float,
    extinction: Extinction | None,
    f_hpol,
    derivatives: bool,
) -> tuple[PolarisedIntensities, dict]:
    """I± of one reflection set and, with ``derivatives``, {name: (dI+, dI−)}.

    The names are those of :func:`flipping_ratio`'s derivatives (``'f_hpol_real'``
    and ``'f_hpol_imag'`` only when ``f_hpol`` is given).
    """
    f_n, fm, e_n, z, _, _, sf, chiral = _channels(f_n, f_m_perp, e)
    zh = z if f_hpol is None else z + np.asarray(f_hpol, dtype=complex)
    nsf_p = np.abs(f_n + zh) ** 2
    nsf_m = np.abs(f_n - zh) ** 2
    y_p, dyp, dp = _apply(extinction, nsf_p)
    y_m, dym, dm = _apply(extinction, nsf_m)
    y_s, dys, ds = _apply(extinction, sf)
    p_u = polarisation
    p_d = polarisation * (2.0 * efficiency - 1.0)
    i_plus = 0.5 * ((1 + p_u) * y_p * nsf_p + (1 - p_u) * y_m * nsf_m) + y_s * sf + p_u * chiral
    i_minus = 0.5 * ((1 - p_d) * y_p * nsf_p + (1 + p_d) * y_m * nsf_m) + y_s * sf - p_d * chiral
    ext = {"f_sq": (dyp, dym, dys), "params": (dp, dm, ds)}
    parts = PolarisedIntensities(i_plus, i_minus, nsf_p, nsf_m, sf, chiral, y_p, y_m, y_s, ext)
    if not derivatives:
        return parts, {}
    # d(y F²)/dF² of each channel
    g_p = y_p + nsf_p * dyp
    g_m = y_m + nsf_m * dym
    g_s = y_s + sf * dys
    c_plus = (0.5 * (1 + p_u) * g_p, 0.5 * (1 - p_u) * g_m, g_s, p_u)
    c_minus = (0.5 * (1 - p_d) * g_p, 0.5 * (1 + p_d) * g_m, g_s, -p_d)
    a_p, a_m = f_n + zh, f_n - zh
    # gradients of |F+|², |F−|², S, C with respect to the real variables
    grads = {
        "f_n_real": (2 * a_p.real, 2 * a_m.real, 0.0, 0.0),
        "f_n_imag": (2 * a_p.imag, 2 * a_m.imag, 0.0, 0.0),
        "f_m_perp_real": (
            2 * a_p.real[:, None] * e_n,
            -2 * a_m.real[:, None] * e_n,
            2 * fm.real - 2 * z.real[:, None] * e_n,
            2 * np.cross(fm.imag, e_n),
        ),
        "f_m_perp_imag": (
            2 * a_p.imag[:, None] * e_n,
            -2 * a_m.imag[:, None] * e_n,
            2 * fm.imag - 2 * z.imag[:, None] * e_n,
            2 * np.cross(e_n, fm.real),
        ),
    }
    if f_hpol is not None:  # F_Hpol enters the non-spin-flip amplitudes only, as z does
        grads["f_hpol_real"] = (2 * a_p.real, -2 * a_m.real, 0.0, 0.0)
        grads["f_hpol_imag"] = (2 * a_p.imag, -2 * a_m.imag, 0.0, 0.0)
    out = {name: (_combine(c_plus, g), _combine(c_minus, g)) for name, g in grads.items()}
    # I+ depends on P through P, I− through P_d = P(2e − 1)
    yf_p, yf_m = y_p * nsf_p, y_m * nsf_m
    di_plus_dp = 0.5 * (yf_p - yf_m) + chiral
    di_minus_dpd = -0.5 * (yf_p - yf_m) - chiral
    out["polarisation"] = (di_plus_dp, (2 * efficiency - 1) * di_minus_dpd)
    out["efficiency"] = (0.0, 2 * polarisation * di_minus_dpd)
    for key in dp:
        d_plus = 0.5 * ((1 + p_u) * nsf_p * dp[key] + (1 - p_u) * nsf_m * dm[key])
        d_minus = 0.5 * ((1 - p_d) * nsf_p * dp[key] + (1 + p_d) * nsf_m * dm[key])
        out[key] = (d_plus + sf * ds[key], d_minus + sf * ds[key])
    return parts, out


def polarised_intensities(
    f_n,
    f_m_perp,
    e,
    polarisation: float,
    efficiency: float = 1.0,
    extinction: Extinction | None = None,
    *,
    f_hpol=None,
) -> PolarisedIntensities:
    """I+ and I− of the general vector form (module docstring).

    Parameters
    ----------
    f_n : array_like (n,) complex
        Nuclear structure factors (fm).
    f_m_perp : array_like (n, 3) complex
        Magnetic interaction vectors F_M⊥ (fm, any Cartesian frame).
    e : array_like (3,) or (n, 3)
        Unit field direction(s) in the same frame.
    polarisation, efficiency : float
        Signed P and flipper efficiency e.
    extinction : callable or None
        F² (fm²) -> (y, dy/dF², {name: dy/dname}), e.g. a
        :class:`chasm.neutron.extinction.SphereExtinction`.
    f_hpol : array_like (n,) complex, optional
        Structure factor of the polarised protons F_Hpol (fm, module
        docstring); None: no nuclear polarisation.
    """
    return _intensities(f_n, f_m_perp, e, polarisation, efficiency, extinction, f_hpol, False)[0]


@dataclass
class HalfWavelength:
    """Reflection 2h, recorded at λ/2 with reflection h (λ/2 contamination).

    Attributes
    ----------
    f_n : array_like (n,) complex
        F_N(2h) (fm).
    f_m_perp : array_like (n, 3) complex
        F_M⊥(2h) (fm); ĥ and ê are those of h.
    extinction : callable or None
        The extinction model of 2h at λ/2 (same θ as h), with the same
        parameter names as that of h (their derivatives add up).
    f_hpol : array_like (n,) complex or None
        F_Hpol(2h) (fm), with nuclear polarisation.
    unpolarised : bool
        The unpolarised λ/2 model (module docstring): the 2h intensity at
        P = 0 is added to both channels, independent of P and e.
    """

    f_n: np.ndarray
    f_m_perp: np.ndarray
    extinction: Extinction | None = None
    f_hpol: np.ndarray | None = None
    unpolarised: bool = False


#: Derivative names of :func:`flipping_ratio` that belong to one reflection's amplitudes.
_AMPLITUDES = (
    "f_n_real",
    "f_n_imag",
    "f_m_perp_real",
    "f_m_perp_imag",
    "f_hpol_real",
    "f_hpol_imag",
)


@dataclass
class TwinDomain:
    """Another twin domain seen in the measured reflection h (cryspy's ``_jana_twin``).

    Its reflection h' = M h has its own amplitudes (and ĥ', hence F_M⊥ of h')
    but the same field direction, P and e; the intensities of the domains add
    with their volume fractions: I± = (1 − Σ f_k) I±(h) + Σ_k f_k I±(h'_k).

    Attributes
    ----------
    fraction : float
        f_k, volume fraction of the domain.
    f_n, f_m_perp, extinction, f_hpol, half
        As for the first domain in :func:`flipping_ratio`, for h'.
    """

    fraction: float
    f_n: np.ndarray
    f_m_perp: np.ndarray
    extinction: Extinction | None = None
    f_hpol: np.ndarray | None = None
    half: HalfWavelength | None = None


def _domain_intensities(
    f_n,
    f_m_perp,
    e,
    polarisation: float,
    efficiency: float,
    extinction,
    f_hpol,
    half: HalfWavelength | None,
    alpha: float,
    derivatives: bool,
):
    """I± of one domain (with its λ/2 reflection) and {name: (dI+, dI−)}.

    Amplitude names of 2h are prefixed ``half_``; ``lambda_half`` is dI±/dα.
    """
    parts, d1 = _intensities(
        f_n, f_m_perp, e, polarisation, efficiency, extinction, f_hpol, derivatives
    )
    i_plus, i_minus = parts.i_plus, parts.i_minus
    if half is None:
        return i_plus, i_minus, d1
    parts2, d2 = _intensities(
        half.f_n,
        half.f_m_perp,
        e,
        0.0 if half.unpolarised else polarisation,
        efficiency,
        half.extinction,
        half.f_hpol,
        derivatives,
    )
    i_plus = i_plus + alpha * parts2.i_plus
    i_minus = i_minus + alpha * parts2.i_minus
    if not derivatives:
        return i_plus, i_minus, {}
    if half.unpolarised:  # neither P nor e acts on I(2h)
        d2.pop("polarisation", None)
        d2.pop("efficiency", None)
    out = {}
    for name in dict.fromkeys([*d1, *d2]):
        zero = (0.0, 0.0)
        (p1, m1), (p2, m2) = d1.get(name, zero), d2.get(name, zero)
        if name in _AMPLITUDES:
            if name in d1:
                out[name] = (p1, m1)
            if name in d2:
                out[f"half_{name}"] = (alpha * p2, alpha * m2)
        else:  # P, e, extinction: both reflections
            out[name] = (p1 + alpha * np.asarray(p2), m1 + alpha * np.asarray(m2))
    out["lambda_half"] = (parts2.i_plus, parts2.i_minus)
    return i_plus, i_minus, out


def _is_amplitude(name: str) -> bool:
    return name.removeprefix("half_") in _AMPLITUDES


def flipping_ratio(
    f_n,
    f_m_perp,
    e,
    polarisation: float,
    efficiency: float = 1.0,
    extinction: Extinction | None = None,
    derivatives: bool = False,
    *,
    f_hpol=None,
    half: HalfWavelength | None = None,
    lambda_half: float = 0.0,
    twins: Sequence[TwinDomain] = (),
):
    """Flipping ratio R = I+/I− of the general vector form, with derivatives.

    Parameters
    ----------
    f_n, f_m_perp, e, polarisation, efficiency, extinction, f_hpol
        As in :func:`polarised_intensities`.
    derivatives : bool
        Also return the derivatives of R.
    half : HalfWavelength, optional
        Reflection 2h at λ/2; then R = (I+(h) + α I+(2h)) / (I−(h) + α I−(2h))
        (module docstring), with the same P, e and field geometry.
    lambda_half : float
        α ≥ 0 (dimensionless), used with ``half`` (and each twin's ``half``).
    twins : sequence of TwinDomain
        Other twin domains: I± = (1 − Σ f_k) I±(h) + Σ f_k I±(h'_k).

    Returns
    -------
    ratio : ndarray (n,)
    derivs : dict, only when ``derivatives``
        ``'f_n_real'``, ``'f_n_imag'`` (n,) [fm⁻¹]; ``'f_m_perp_real'``,
        ``'f_m_perp_imag'`` (n, 3) [fm⁻¹]; ``'polarisation'``, ``'efficiency'``
        (n,); and one entry per extinction parameter (e.g. ``'radius'``,
        ``'mosaicity'``), in the parameter's unit⁻¹. With ``f_hpol``:
        ``'f_hpol_real'``, ``'f_hpol_imag'`` [fm⁻¹]. With ``half``: the
        amplitude derivatives of 2h as ``'half_f_n_real'`` ... ``'half_f_hpol_imag'``
        and ``'lambda_half'`` (dR/dα); P, e and the extinction parameters
        include both reflections. With ``twins``: the amplitude derivatives of
        domain k (1, 2, ...) as ``'twin{k}_f_n_real'`` ... and ``'twin_fraction{k}'``
        (dR/df_k); P, e, α and the extinction parameters include every domain.
    """
    if half is None and lambda_half != 0.0:
        raise ValueError("lambda_half needs the structure factors of 2h (half=...)")
    alpha = float(lambda_half)
    i_plus, i_minus, pairs = _domain_intensities(
        f_n, f_m_perp, e, polarisation, efficiency, extinction, f_hpol, half, alpha, derivatives
    )
    if twins:
        w0 = 1.0 - sum(float(t.fraction) for t in twins)
        first = (i_plus, i_minus)
        domains = [
            _domain_intensities(
                t.f_n,
                t.f_m_perp,
                e,
                polarisation,
                efficiency,
                t.extinction,
                t.f_hpol,
                t.half,
                alpha,
                derivatives,
            )
            for t in twins
        ]
        i_plus = w0 * first[0] + sum(
            float(t.fraction) * d[0] for t, d in zip(twins, domains, strict=True)
        )
        i_minus = w0 * first[1] + sum(
            float(t.fraction) * d[1] for t, d in zip(twins, domains, strict=True)
        )
        if derivatives:
            merged = {name: (w0 * a, w0 * b) for name, (a, b) in pairs.items()}
            for k, (t, (ip, im, dk)) in enumerate(zip(twins, domains, strict=True), start=1):
                f = float(t.fraction)
                for name, (a, b) in dk.items():
                    if _is_amplitude(name):
                        merged[f"twin{k}_{name}"] = (f * a, f * b)
                    else:
                        a0, b0 = merged.get(name, (0.0, 0.0))
                        merged[name] = (a0 + f * np.asarray(a), b0 + f * np.asarray(b))
                merged[f"twin_fraction{k}"] = (ip - first[0], im - first[1])
            pairs = merged
    absent = (np.abs(i_plus) < ABSENT_INTENSITY) & (np.abs(i_minus) < ABSENT_INTENSITY)
    if np.any(absent):  # systematic absences (module docstring): R = 1, no derivative
        i_plus = np.where(absent, 1.0, i_plus)
        i_minus = np.where(absent, 1.0, i_minus)
    ratio = i_plus / i_minus
    if not derivatives:
        return ratio

    def d_ratio(d_plus, d_minus):  # dR = (dI+ − R dI−) / I−
        if np.ndim(d_plus) == 2:
            return (d_plus - ratio[:, None] * d_minus) / i_minus[:, None]
        return (d_plus - ratio * d_minus) / i_minus

    out = {name: d_ratio(*pair) for name, pair in pairs.items()}
    if np.any(absent):
        for name in out:
            out[name] = np.where(
                absent if np.ndim(out[name]) == 1 else absent[:, None], 0.0, out[name]
            )
    return ratio, out


def _combine(coeffs, grads) -> np.ndarray:
    """Σ_k c_k g_k with per-reflection coefficients c_k (n,) and gradients (n,) or (n, 3)."""
    total = 0.0
    for c, g in zip(coeffs, grads, strict=True):
        g = np.asarray(g, dtype=float)
        c = np.asarray(c, dtype=float)
        if g.ndim == 2 and c.ndim == 1:
            c = c[:, None]
        total = total + c * g
    return np.asarray(total, dtype=float)


#: The agreement of a flipping-ratio data set: the one agreement type of chasm
#: (``n``, ``chi2``, ``chi2_per_n``, ``gof``, ``rw_1mr`` as before; :mod:`chasm.data.agreement`).
FlippingStatistics = Agreement


def flipping_statistics(
    observed, sigma, calculated, excluded=None, n_parameters: int = 0
) -> Agreement:
    """χ², χ²/N, GOF and Rw(1−R) of a data set (CONVENTIONS.md, "Least squares").

    Parameters
    ----------
    observed, sigma, calculated : array_like (n,)
    excluded : array_like (n,) bool, optional
        Reflections to leave out.
    n_parameters : int
        Refined parameters (for the GOF).
    """
    r_o = np.asarray(observed, dtype=float)
    sig = np.asarray(sigma, dtype=float)
    r_c = np.asarray(calculated, dtype=float)
    keep = np.ones(r_o.shape, dtype=bool) if excluded is None else ~np.asarray(excluded, bool)
    w = 1.0 / sig[keep] ** 2
    chi2 = float(np.sum(w * (r_o[keep] - r_c[keep]) ** 2))
    n = int(keep.sum())
    denom = float(np.sum(w * (r_o[keep] - 1.0) ** 2))
    dof = n - n_parameters
    return Agreement.of(
        "pnd",
        n,
        n_parameters,
        chi2,
        chi2_per_n=chi2 / n if n else float("nan"),
        gof=float(np.sqrt(chi2 / dof)) if dof > 0 else float("nan"),
        R1=None,
        wR2=None,
        Rw=float(np.sqrt(chi2 / denom)) if denom > 0 else float("nan"),
    )

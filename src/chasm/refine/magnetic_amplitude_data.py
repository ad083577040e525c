"""Refinement against "observed" magnetic structure factors (the classical PND route).

For centrosymmetric structures the flipping ratios can be turned into observed
magnetic structure factors once, with the calculated nuclear ones
(:mod:`chasm.neutron.fm_from_ratio`), and a spin model fitted to those by
linear least squares. :class:`MagneticAmplitudeData` is that observable for a
:class:`~chasm.refine.refinement.Refinement`: the same data block, spin model,
field geometry, P and e as :class:`~chasm.refine.pnd_data.PndData`, which it
extends, but the observations are

    y_o = γ_o |F_N|,   σ(y_o) = σ(γ_o) |F_N|,     (fm)

with γ_o the root of smaller |γ| of the collinear formula, and the model is

    y_c = Re[(F_M⊥·ê) F_N*] / (q |F_N|),

which for a magnetisation along the field (F_M⊥·ê = q F_M) is F_M times the
sign of F_N (F_N real), i.e. |F_N| γ_c. Since γ is real for a centrosymmetric
structure whatever the origin, y does not depend on the phase convention.
Reported observed amplitudes: ``f_m_obs`` = γ_o F_N (fm; real and signed for
F_N real).

Reflections are left out, and counted, when F_N is weak (|F_N| < ``min_fn`` ×
max |F_N|, default 0.05; ``n_weak``), when the field is along the scattering
vector (q < 1e−6), or when no real γ reproduces R (``n_no_root``). The cut on
F_N is not cosmetic: the two roots of the quadratic multiply to 1/q, so the
rule "smaller |γ|" picks the wrong one whenever the true |γ| exceeds 1/√q,
which happens on weak nuclear reflections (in tests/test_magnetic_amplitudes.py
16–24 of 310 reflections of a Cu complex with 0.6 μB, all with |F_N| below
4 % of the largest, none above 5 %).

Restrictions (each an :class:`~chasm.errors.InputError` naming the data set):
the structure must be centrosymmetric (γ real: every magnetic basis column in
phase with F_N to 1e−8); no extinction (the classical route has none: use the
flipping ratios themselves); P is not refinable (γ_o depends on it).

Agreement: χ² = Σ w (y_o − y_c)², GOF, ``"R1"`` = Σ|y_o − y_c| / Σ|y_o| and
``"Rw"`` = √(Σ w (y_o − y_c)² / Σ w y_o²), both on F_M (``"observable":
"F_M"``).
"""

from __future__ import annotations

import numpy as np

from chasm.data.agreement import Agreement
from chasm.errors import InputError
from chasm.neutron.fm_from_ratio import gamma_from_ratio
from chasm.neutron.rcif import PndDataset
from chasm.refine.pnd_data import PndData, PndOptions, PndSpinModel
from chasm.refine.problem import Evaluation

__all__ = ["MagneticAmplitudeData"]

#: Largest |Im(G·ê F_N*)| / (|G·ê| |F_N|) accepted as "in phase" (centrosymmetric).
PHASE_TOLERANCE = 1e-8


class MagneticAmplitudeData(PndData):
    """Observed magnetic structure factors deduced from a flipping-ratio block.

    Parameters
    ----------
    name : str
        Data-set name.
    dataset : PndDataset
        The flipping-ratio block (R, σ(R), P, e, field, UB).
    spin : PndSpinModel
        Fixed nuclear structure and the spin model (shared by the data sets).
    options : PndOptions, optional
        Cut-offs; extinction must be off and P fixed.
    min_fn : float
        Reflections with |F_N| below ``min_fn`` × max |F_N| are left out.

    Raises
    ------
    InputError
        Non-centrosymmetric structure, extinction on, refinable P, or no
        reflection left.
    """

    def __init__(
        self,
        name: str,
        dataset: PndDataset,
        spin: PndSpinModel,
        options: PndOptions | None = None,
        min_fn: float = 0.05,
    ):
        options = options or PndOptions(extinction=False)
        super().__init__(name, dataset, spin, options)
        if self.extinction_on:
            raise InputError(
                f"dataset {name!r}: the classical F_M route has no extinction; switch it off "
                "(PndOptions(extinction=False)) or refine the flipping ratios with PndData"
            )
        if self.options.refine_polarisation:
            raise InputError(
                f"dataset {name!r}: P cannot be refined against observed F_M (they are "
                "deduced with P fixed); refine the flipping ratios with PndData"
            )
        f_n = self.f_n
        ge = np.einsum("nka,a->nk", self.g_perp, self.e)  # (F_M⊥·ê) per unit parameter
        abs_fn = np.abs(f_n)
        strong = abs_fn >= min_fn * abs_fn.max()
        strong &= self.q > 1e-6
        cross = ge * np.conj(f_n)[:, None]
        size = np.abs(ge) * abs_fn[:, None]
        off_phase = np.abs(cross.imag) > PHASE_TOLERANCE * np.maximum(size, 1e-300)
        bad = strong[:, None] & off_phase & (size > PHASE_TOLERANCE * size.max())
        if np.any(bad):
            hkl = self.hkl[np.nonzero(bad.any(axis=1))[0][0]]
            raise InputError(
                f"dataset {name!r}: F_M and F_N are not in phase (reflection {tuple(hkl)}): "
                "the classical F_M route needs a centrosymmetric structure; refine the "
                "flipping ratios with PndData"
            )
        amp = gamma_from_ratio(self.r_obs, self.sigma, self.q, self.polarisation, self.efficiency)
        self.gamma = amp.gamma
        self.n_weak = int(np.sum(~strong))
        self.n_no_root = int(np.sum(strong & ~amp.valid))
        self.usable = strong & amp.valid & (amp.gamma_su > 0)
        if not np.any(self.usable):
            raise InputError(f"dataset {name!r}: no reflection gives an observed F_M")
        with np.errstate(invalid="ignore"):
            self.y_obs = amp.gamma * abs_fn
            self.y_sigma = amp.gamma_su * abs_fn
            self.f_m_obs = amp.gamma * f_n
        # d y_c / d parameter: Re((G_k·ê) F_N*) / (q |F_N|), fixed (the model is linear)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.design = np.where(
                self.usable[:, None], cross.real / (self.q * abs_fn)[:, None], 0.0
            )

    def _mask(self) -> np.ndarray:
        mask: np.ndarray = self.active() & self.usable
        if not np.any(mask):
            raise self._no_reflection()
        return mask

    def amplitudes(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mask, y_c) over the stage window and the usable reflections (fm)."""
        mask = self._mask()
        return mask, self.design[mask] @ np.asarray(p, dtype=float)[self._i_spin]

    def evaluate(self, p: np.ndarray) -> Evaluation:
        """y_o, y_c, w = 1/σ(y_o)² and dy_c/dp (full vector) at p."""
        if not self._bound:
            raise RuntimeError("MagneticAmplitudeData.bind must be called first")
        mask, y_c = self.amplitudes(p)
        J = np.zeros((len(y_c), self._n_full))
        J[:, self._i_spin] = self.design[mask]
        m = 1.0 if self.multiplicity is None else self.multiplicity[mask]
        return Evaluation(self.y_obs[mask], y_c, m * self.y_sigma[mask] ** -2.0, J)

    def agreement(self, p: np.ndarray, n_par: int = 0) -> Agreement:
        """χ², χ²/N, GOF, R(F_M) and Rw(F_M) over all usable reflections at p."""
        saved = self.window
        self.window = (None, None)
        try:
            mask, y_c = self.amplitudes(p)
        finally:
            self.window = saved
        y_o, w = self.y_obs[mask], self.y_sigma[mask] ** -2.0
        n = len(y_o)
        chi2 = float(np.sum(w * (y_o - y_c) ** 2))
        dof = n - n_par
        return Agreement.of(
            self.kind,
            n,
            n_par,
            chi2,
            chi2_per_n=chi2 / n,
            gof=float(np.sqrt(chi2 / dof)) if dof > 0 else float("nan"),
            R1=float(np.sum(np.abs(y_o - y_c)) / np.sum(np.abs(y_o))),
            wR2=None,
            Rw=float(np.sqrt(chi2 / np.sum(w * y_o**2))),
            observable="F_M",
            weights="sigma",
            n_read=self.n_read,
        )

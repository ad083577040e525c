"""One agreement type for every kind of data: R1, wR2, Rw, χ², GOF.

:class:`Agreement` is what :func:`chasm.scattering.xray.agreement_factors`
(F² data), :func:`chasm.neutron.flipping.flipping_statistics` (flipping
ratios) and every data set's ``agreement(p, n_par)`` return, and what
result.json's per-data-set entries are made of. It is a ``dict`` with the keys
of result.json (so it serialises as it is, compares equal to the plain dicts
of older code and keeps the order its maker gave), with typed read-only
properties for the figures:

========== =============================================================
key        meaning
========== =============================================================
kind       ``"xray"``, ``"und"``, ``"pnd"`` (flipping ratios) ...
n_obs      observations used
n_par      parameters for the GOF
chi2       χ² = Σ w (y_o − y_c)²
gof        √(χ²/(N − n_par)); None or NaN when N ≤ n_par
R1         Σ|F_o − F_c| / Σ F_o (F² data: all reflections); None for ratios
R1_gt      R1 over F_o² > 2σ (F² data)
n_gt       reflections with F_o² > 2σ (F² data)
wR2        √(χ² / Σ w y_o²) on F² (F² data); None for ratios
Rw         Rw(F) for F² data, Rw(1−R) = √(χ² / Σ w (R_o − 1)²) for ratios
chi2_per_n χ²/N (flipping ratios: what cryspy reports)
========== =============================================================

plus, from a data set, ``observable``, ``weights`` and ``n_read``. The old
attribute names stay as aliases: ``n`` (n_obs), ``r1``, ``r1_gt``, ``wr2``,
``rw_f`` (Rw of F² data), ``rw_1mr`` (Rw of flipping ratios).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Agreement"]


class Agreement(dict[str, Any]):
    """Agreement figures of one data set: a dict with the keys of result.json.

    Attributes
    ----------
    kind : str
        ``"xray"``, ``"und"``, ``"pnd"`` (flipping ratios) ...
    n_obs, n_par : int
        Observations used; parameters for the GOF.
    chi2 : float
        Σ w (y_o − y_c)².
    gof : float or None
        √(χ²/(N − n_par)).
    R1, wR2 : float or None
        R1 on F and wR2 on F² (F² data; None for flipping ratios).
    Rw : float or None
        Rw(F) for F² data, Rw(1−R) for flipping ratios.
    chi2_per_n : float
        χ²/N.
    n, r1, r1_gt, n_gt, wr2, rw_f, rw_1mr
        The former names (scattering.xray.Agreement, FlippingStatistics).
    """

    @classmethod
    def of(cls, kind: str, n_obs: int, n_par: int, chi2: float, **figures: Any) -> Agreement:
        """An Agreement with ``kind``, ``n_obs``, ``n_par``, ``chi2`` then ``figures`` in order."""
        return cls(kind=kind, n_obs=int(n_obs), n_par=int(n_par), chi2=chi2, **figures)

    # the figures, typed
    @property
    def kind(self) -> str:
        """``"xray"``, ``"und"``, ``"pnd"`` ..."""
        return str(self.get("kind", ""))

    @property
    def n_obs(self) -> int:
        """Observations used."""
        return int(self["n_obs"])

    @property
    def n_par(self) -> int:
        """Parameters for the GOF."""
        return int(self.get("n_par", 0))

    @property
    def chi2(self) -> float:
        """Σ w (y_o − y_c)²."""
        return float(self["chi2"])

    @property
    def gof(self) -> float | None:
        """√(χ²/(N − n_par))."""
        return self.get("gof")

    @property
    def R1(self) -> float | None:  # noqa: N802  (the crystallographers' name)
        """R1 on F (F² data)."""
        return self.get("R1")

    @property
    def wR2(self) -> float | None:  # noqa: N802
        """wR2 on F² (F² data)."""
        return self.get("wR2")

    @property
    def Rw(self) -> float | None:  # noqa: N802
        """Rw(F) for F² data, Rw(1−R) for flipping ratios."""
        return self.get("Rw")

    @property
    def chi2_per_n(self) -> float:
        """χ²/N."""
        if "chi2_per_n" in self:
            return float(self["chi2_per_n"])
        return self.chi2 / self.n_obs if self.n_obs else float("nan")

    # the names of the former FlippingStatistics and scattering.xray.Agreement
    @property
    def n(self) -> int:
        """Alias of :attr:`n_obs`."""
        return self.n_obs

    @property
    def r1(self) -> float | None:
        """Alias of :attr:`R1`."""
        return self.R1

    @property
    def r1_gt(self) -> float | None:
        """R1 over F_o² > 2σ."""
        return self.get("R1_gt")

    @property
    def n_gt(self) -> int | None:
        """Reflections with F_o² > 2σ."""
        return self.get("n_gt")

    @property
    def wr2(self) -> float | None:
        """Alias of :attr:`wR2`."""
        return self.wR2

    @property
    def rw_f(self) -> float | None:
        """Alias of :attr:`Rw` (F² data: Rw on F)."""
        return self.Rw

    @property
    def rw_1mr(self) -> float | None:
        """Alias of :attr:`Rw` (flipping ratios: Rw(1−R))."""
        return self.Rw

    def lines(self) -> list[str]:
        """Human-readable lines saying which factor is which (F² data)."""
        return [
            f"R1(F, all {self.n}) = {self.r1:.4f}   R1(F, Fo²>2σ, {self.n_gt}) = {self.r1_gt:.4f}",
            f"wR2(F², all) = {self.wr2:.4f}   Rw(F) = {self.rw_f:.4f}",
            f"GOF(F²) = {self.gof:.4f}   (χ² = {self.chi2:.2f}, N = {self.n}, "
            f"N_par = {self.n_par})",
        ]

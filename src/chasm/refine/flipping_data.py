"""Flipping ratios computed from the refinement's structure model (joint refinement).

:class:`FlippingData` is a polarised-neutron data set whose nuclear AND
magnetic structure factors come from the one
:class:`~chasm.refine.structure_model.StructureModel` of the refinement, through
the structure-factor engine, so that every structural parameter the data
depend on is refinable together with the X-ray and unpolarised-neutron data:

* F_N (fm) from the nuclear view: coherent scattering lengths, positions, the
  neutron ADP set (``"N"`` by default);
* F_spin (μB) from the magnetic view: ρ↑ − ρ↓ of the split atoms (populations,
  κ, κ', positions, the same neutron ADPs);
* the magnetisation is collinear with the applied field ê (paramagnet or
  ferromagnet in a field): F_M = p s F_spin ê with p = 2.69542 fm/μB and s an
  optional per-data-set magnetisation scale (``NAME.mscale``, fixed at 1
  unless a stage frees it), so F_M⊥ = p s F_spin (ê − (ĥ·ê) ĥ).

R is :func:`chasm.neutron.flipping.flipping_ratio` (vector form, sphere
extinction per channel, signed P, flipper efficiency e). The Jacobian is
exact: dR/dθ = Σ_c [∂R/∂Re F_c · Re dF_c/dθ + ∂R/∂Im F_c · Im dF_c/dθ] over
the channels c = F_N and the three components of F_M⊥, with dF/dθ from the
engine (checked by finite differences in tests/test_joint_model.py).

The earlier :class:`~chasm.refine.pnd_data.PndData` (fixed nuclear structure,
tabulated form factors, spin models linear in their parameters) remains the
tool for spin-only models of PND-only studies.

Optional effects (:mod:`chasm.neutron.flipping`, :class:`PndOptions`), off by
default (then nothing more is computed):

* λ/2 contamination, ``lambda_half`` = α: R = ΣI+/ΣI− over h at λ and 2h at
  λ/2. F_N(2h) and F_spin(2h) come from the same views (the engines get the
  rows 2h after the rows h), F_M⊥(2h) = p s F_spin(2h) (ê − (ĥ·ê) ĥ) with the
  ĥ of h, the extinction of 2h is evaluated at λ/2; the Jacobian adds the 2h
  channels, and dR/dα with ``refine_lambda_half``; with
  ``lambda_half_model = "unpolarised"`` the 2h term is cryspy's (unpolarised
  I(2h) in both channels, extinction of h at λ);
* polarised protons, ``hydrogen_polarisation``: F_Hpol from a third view,
  :meth:`~chasm.refine.structure_model.StructureModel.partial_nuclear_view`
  of the H atoms with b = 14.56 P_H fm (positions, occupancies, the same
  neutron ADPs), whose engine Jacobian gives the exact H columns.

Private parameters of a data set NAME: ``NAME.extinction_radius`` (µm) and
``NAME.mosaicity`` with extinction, ``NAME.polarisation`` with
``refine_polarisation``, ``NAME.mscale`` with ``magnetisation_scale``,
``NAME.lambda_half`` with ``refine_lambda_half``.
"""

from __future__ import annotations

import numpy as np

from chasm.errors import InputError
from chasm.neutron.flipping import PROTON_SPIN_AMPLITUDE, HalfWavelength, flipping_ratio
from chasm.neutron.rcif import PndDataset
from chasm.neutron.structure_factors import P_FM
from chasm.refine.pnd_data import FlippingRatioSet, PndOptions

__all__ = ["FlippingData"]


class FlippingData(FlippingRatioSet):
    """A flipping-ratio data set seen through the refinement's structure model.

    Parameters
    ----------
    name : str
        Data-set name, prefix of its private parameters.
    dataset : PndDataset
        Reflections (h k l, R, σ(R), excluded flags), wavelength, field,
        signed P, efficiency, UB and its convention, extinction settings.
    crystal : Crystal
        The refinement's crystal (for the reciprocal metric of the field geometry).
    options : PndOptions, optional
        Cut-offs, extinction and polarisation settings (as for PndData).
    adp_set : str
        ADP set of the nuclear and magnetic views (default ``"N"``).
    p : float
        fm per μB.
    magnetisation_scale : bool
        Add ``NAME.mscale`` (start 1).
    field_direction : array_like (3,), optional
        Field direction in chasm's Cartesian frame, replacing the one from the
        UB matrix (simulated data; files with direction cosines). The sign of
        ``dataset.field`` still applies.
    """

    def __init__(
        self,
        name: str,
        dataset: PndDataset,
        crystal,
        options: PndOptions | None = None,
        adp_set: str = "N",
        p: float = P_FM,
        magnetisation_scale: bool = False,
        field_direction: np.ndarray | None = None,
    ):
        self.adp_set = adp_set
        self.p = float(p)
        self.magnetisation_scale = magnetisation_scale
        geom, keep = self._read(name, dataset, crystal, options, field_direction)
        h_unit = geom.h_unit[keep]
        # F_M⊥ per unit F_spin: p (ê − (ĥ·ê) ĥ), (n, 3)
        self.q_vec = self.p * (self.e[None, :] - (h_unit @ self.e)[:, None] * h_unit)
        self.volume = float(crystal.volume)
        self._hydrogens = [i for i, a in enumerate(crystal.atoms) if a.element == "H"]
        self._views = None
        self._engines: dict = {}

    # ------------------------------------------------------------------ parameters
    def _name(self, suffix: str, on: bool) -> str | None:
        return f"{self.name}.{suffix}" if on else None

    def parameter_names(self) -> list[str]:
        """Private parameters of the data set, in order."""
        names = [
            self._name("extinction_radius", self.extinction_on),
            self._name("mosaicity", self.extinction_on),
            self._name("polarisation", self.options.refine_polarisation),
            self._name("mscale", self.magnetisation_scale),
            self._name("lambda_half", self.options.refine_lambda_half),
        ]
        return [n for n in names if n]

    def initial_values(self, crystal=None, models=None) -> dict[str, float]:
        """Start values of the private parameters."""
        values = dict(
            zip(
                ["extinction_radius", "mosaicity", "polarisation", "mscale", "lambda_half"],
                [self.radius, self.mosaicity, self.polarisation, 1.0, self.lambda_half],
                strict=True,
            )
        )
        return {n: values[n.split(".")[-1]] for n in self.parameter_names()}

    def attach(self, structure) -> None:
        """Nuclear and magnetic views of the structure model (ADP set ``adp_set``).

        With polarised protons also the view of the H atoms with b = 14.56 P_H fm.
        """
        self._views = (
            structure.view("nuclear", self.adp_set),
            structure.view("magnetic", self.adp_set),
        )
        self._hpol_view = None
        if self.p_h is not None:
            b = PROTON_SPIN_AMPLITUDE * self.p_h
            self._hpol_view = structure.partial_nuclear_view(
                dict.fromkeys(self._hydrogens, b), self.adp_set
            )
        self._engines = {}

    def bind(self, crystal, models, names: list[str], n_struct: int) -> None:
        """Attach to the refinement's parameter vector (the first n_struct are structural)."""
        if self._views is None:
            raise InputError(f"dataset {self.name!r}: FlippingData needs a structure model")
        names = list(names)
        self._n_full, self._n_struct = len(names), n_struct
        idx = {n: names.index(n) for n in self.parameter_names()}
        self._i = {n.split(".")[-1]: k for n, k in idx.items()}
        self._bound = True

    # ------------------------------------------------------------------ evaluation
    def _engine_pair(self):
        key = self.window
        if key not in self._engines:
            mask = self.active()
            if not np.any(mask):
                raise self._no_reflection()
            nuc, mag = self._views
            hkl = self.hkl[mask]
            if self.half_on:  # rows h, then rows 2h
                hkl = np.vstack([hkl, 2 * hkl])
            self._engines[key] = (nuc.engine(hkl), mag.engine(hkl), mask)
            if self._hpol_view is not None:
                self._engines[key, "hpol"] = self._hpol_view.engine(hkl)
        return self._engines[key]

    def _value(self, p: np.ndarray, key: str, default: float) -> float:
        return float(p[self._i[key]]) if key in self._i else default

    def _computed(self, jacobian: bool):
        """(mask, F_N, F_spin, dF_N/dθ, dF_spin/dθ) of every engine row (h, then 2h)."""
        nuc, mag = self._views
        e_n, e_m, mask = self._engine_pair()
        f_n, j_n = nuc.compute(e_n, jacobian)
        f_s, j_s = mag.compute(e_m, jacobian)
        return mask, f_n, f_s, j_n, j_s

    def structure_factors(self, p: np.ndarray, jacobian: bool = False):
        """(mask, F_N fm, F_spin μB, dF_N/dθ, dF_spin/dθ) of h over the stage window."""
        mask, f_n, f_s, j_n, j_s = self._computed(jacobian)
        if not self.half_on:
            return mask, f_n, f_s, j_n, j_s
        n = int(mask.sum())
        return mask, f_n[:n], f_s[:n], *(None if j is None else j[:n] for j in (j_n, j_s))

    def hydrogen_structure_factors(self, jacobian: bool = False):
        """(F_Hpol fm, dF_Hpol/dθ) over the stage window: rows h, then 2h with λ/2 on.

        None, None without polarised protons.
        """
        if self._hpol_view is None:
            return None, None
        self._engine_pair()
        return self._hpol_view.compute(self._engines[self.window, "hpol"], jacobian)

    def calculate(self, p: np.ndarray, jacobian: bool = True):
        """(mask, R_calc, dR/dp over the full vector or None) at p."""
        if not self._bound:
            raise RuntimeError("FlippingData.bind must be called first")
        p = np.asarray(p, dtype=float)
        mask, f_n, f_s, j_n, j_s = self._computed(jacobian)
        f_h, j_h = self.hydrogen_structure_factors(jacobian)
        f_s_all = f_s
        ms = self._value(p, "mscale", 1.0)
        q = self.q_vec[mask]
        pol = self._value(p, "polarisation", self.polarisation)
        ext = ext_half = None
        if self.extinction_on:
            args = (
                self._value(p, "mosaicity", self.mosaicity),
                self._value(p, "extinction_radius", self.radius),
                self.volume,
                mask,
            )
            ext = self.sphere_extinction(*args)
            if self.half_on:
                ext_half = self.sphere_extinction(*args, half=not self.half_unpolarised)
        n = int(mask.sum())
        rows = [slice(0, n)] + ([slice(n, 2 * n)] if self.half_on else [])
        extra = {}
        if f_h is not None:
            extra["f_hpol"] = f_h[rows[0]]
        if self.half_on:
            f_2 = rows[1]
            extra["half"] = HalfWavelength(
                f_n[f_2],
                (ms * f_s[f_2])[:, None] * q,
                ext_half,
                None if f_h is None else f_h[f_2],
                unpolarised=self.half_unpolarised,
            )
            extra["lambda_half"] = self._value(p, "lambda_half", self.lambda_half)
            f_n, f_s = f_n[rows[0]], f_s[rows[0]]
        f_m_perp = (ms * f_s)[:, None] * q
        out = flipping_ratio(
            f_n, f_m_perp, self.e, pol, self.efficiency, ext, derivatives=jacobian, **extra
        )
        if not jacobian:
            return mask, out, None
        ratio, d = out
        J = np.zeros((len(ratio), self._n_full))
        ns = self._n_struct
        if not self.half_on and f_h is None:
            J[:, :ns] = d["f_n_real"][:, None] * j_n.real + d["f_n_imag"][:, None] * j_n.imag
            # dR/dF_spin (real and imaginary part) through F_M⊥ = ms F_spin q
            g_re = ms * np.einsum("na,na->n", d["f_m_perp_real"], q)
            g_im = ms * np.einsum("na,na->n", d["f_m_perp_imag"], q)
            J[:, :ns] += g_re[:, None] * j_s.real + g_im[:, None] * j_s.imag
            d_ms = g_re * f_s.real + g_im * f_s.imag
        else:  # the same chain rule for h and 2h, with the F_Hpol channel
            d_ms = np.zeros(n)
            for tag, rs in zip(("", "half_"), rows, strict=False):
                jn, js = j_n[rs], j_s[rs]
                J[:, :ns] += d[f"{tag}f_n_real"][:, None] * jn.real
                J[:, :ns] += d[f"{tag}f_n_imag"][:, None] * jn.imag
                g_re = ms * np.einsum("na,na->n", d[f"{tag}f_m_perp_real"], q)
                g_im = ms * np.einsum("na,na->n", d[f"{tag}f_m_perp_imag"], q)
                J[:, :ns] += g_re[:, None] * js.real + g_im[:, None] * js.imag
                d_ms += g_re * f_s_all[rs].real + g_im * f_s_all[rs].imag
                if j_h is not None:
                    jh = j_h[rs]
                    J[:, :ns] += d[f"{tag}f_hpol_real"][:, None] * jh.real
                    J[:, :ns] += d[f"{tag}f_hpol_imag"][:, None] * jh.imag
        if "mscale" in self._i:
            J[:, self._i["mscale"]] = d_ms / ms
        if self.extinction_on:
            J[:, self._i["extinction_radius"]] = d["radius"]
            J[:, self._i["mosaicity"]] = d["mosaicity"]
        if "polarisation" in self._i:
            J[:, self._i["polarisation"]] = d["polarisation"]
        if "lambda_half" in self._i:
            J[:, self._i["lambda_half"]] = d["lambda_half"]
        return mask, ratio, J

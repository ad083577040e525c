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

Private parameters of a data set NAME: ``NAME.extinction_radius`` (µm) and
``NAME.mosaicity`` with extinction, ``NAME.polarisation`` with
``refine_polarisation``, ``NAME.mscale`` with ``magnetisation_scale``.
"""

from __future__ import annotations

import numpy as np

from chasm.errors import InputError
from chasm.neutron.flipping import flipping_ratio
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
        ]
        return [n for n in names if n]

    def initial_values(self, crystal=None, models=None) -> dict[str, float]:
        """Start values of the private parameters."""
        values = dict(
            zip(
                ["extinction_radius", "mosaicity", "polarisation", "mscale"],
                [self.radius, self.mosaicity, self.polarisation, 1.0],
                strict=True,
            )
        )
        return {n: values[n.split(".")[-1]] for n in self.parameter_names()}

    def attach(self, structure) -> None:
        """Nuclear and magnetic views of the structure model (ADP set ``adp_set``)."""
        self._views = (
            structure.view("nuclear", self.adp_set),
            structure.view("magnetic", self.adp_set),
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
            self._engines[key] = (nuc.engine(hkl), mag.engine(hkl), mask)
        return self._engines[key]

    def _value(self, p: np.ndarray, key: str, default: float) -> float:
        return float(p[self._i[key]]) if key in self._i else default

    def structure_factors(self, p: np.ndarray, jacobian: bool = False):
        """(mask, F_N fm, F_spin μB, dF_N/dθ, dF_spin/dθ) over the stage window."""
        nuc, mag = self._views
        e_n, e_m, mask = self._engine_pair()
        f_n, j_n = nuc.compute(e_n, jacobian)
        f_s, j_s = mag.compute(e_m, jacobian)
        return mask, f_n, f_s, j_n, j_s

    def calculate(self, p: np.ndarray, jacobian: bool = True):
        """(mask, R_calc, dR/dp over the full vector or None) at p."""
        if not self._bound:
            raise RuntimeError("FlippingData.bind must be called first")
        p = np.asarray(p, dtype=float)
        mask, f_n, f_s, j_n, j_s = self.structure_factors(p, jacobian)
        ms = self._value(p, "mscale", 1.0)
        q = self.q_vec[mask]
        f_m_perp = (ms * f_s)[:, None] * q
        pol = self._value(p, "polarisation", self.polarisation)
        ext = None
        if self.extinction_on:
            ext = self.sphere_extinction(
                self._value(p, "mosaicity", self.mosaicity),
                self._value(p, "extinction_radius", self.radius),
                self.volume,
                mask,
            )
        out = flipping_ratio(f_n, f_m_perp, self.e, pol, self.efficiency, ext, derivatives=jacobian)
        if not jacobian:
            return mask, out, None
        ratio, d = out
        J = np.zeros((len(ratio), self._n_full))
        ns = self._n_struct
        J[:, :ns] = d["f_n_real"][:, None] * j_n.real + d["f_n_imag"][:, None] * j_n.imag
        # dR/dF_spin (real and imaginary part) through F_M⊥ = ms F_spin q
        g_re = ms * np.einsum("na,na->n", d["f_m_perp_real"], q)
        g_im = ms * np.einsum("na,na->n", d["f_m_perp_imag"], q)
        J[:, :ns] += g_re[:, None] * j_s.real + g_im[:, None] * j_s.imag
        if "mscale" in self._i:
            J[:, self._i["mscale"]] = (g_re * f_s.real + g_im * f_s.imag) / ms
        if self.extinction_on:
            J[:, self._i["extinction_radius"]] = d["radius"]
            J[:, self._i["mosaicity"]] = d["mosaicity"]
        if "polarisation" in self._i:
            J[:, self._i["polarisation"]] = d["polarisation"]
        return mask, ratio, J

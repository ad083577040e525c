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

This class is the structure-model **magnetic source** of the one flipping-ratio
data set, :class:`~chasm.refine.flipping_ratios.FlippingRatioSet`, which
computes R (vector form, sphere extinction per channel, signed P, flipper
efficiency e), the λ/2 and twin terms and the Jacobian chain
dR/dθ = Σ_c [∂R/∂Re F_c · Re dF_c/dθ + ∂R/∂Im F_c · Im dF_c/dθ] once for both
routes. Here: every reflection set of the data set (h; 2h with λ/2, which
sees F_M⊥(2h) = p s F_spin(2h) (ê − (ĥ·ê) ĥ) with the ĥ of h; h' = M h of
twin domains) is stacked in one engine per view, whose Jacobians dF/dθ are the
structural columns (checked by finite differences in
tests/test_joint_model.py and tests/test_flipping_extras.py). The PND-only
source, fixed nuclear structure and linear spin models, is
:class:`~chasm.refine.pnd_data.PndData`.

Optional effects (:class:`PndOptions`), off by default (then nothing more is
computed): λ/2 contamination ``lambda_half`` = α (polarised model: extinction
of 2h at λ/2; ``lambda_half_model = "unpolarised"``: cryspy's, unpolarised
I(2h), extinction of h at λ), and polarised protons
``hydrogen_polarisation``: F_Hpol from a third view,
:meth:`~chasm.refine.structure_model.StructureModel.partial_nuclear_view` of
the H atoms with b = 14.56 P_H fm (positions, occupancies, the same neutron
ADPs), whose engine Jacobian gives the exact H columns.

Private parameters of a data set NAME: ``NAME.extinction_radius`` (µm) and
``NAME.mosaicity`` with extinction, ``NAME.polarisation`` with
``refine_polarisation``, ``NAME.mscale`` with ``magnetisation_scale``,
``NAME.lambda_half`` with ``refine_lambda_half``, ``NAME.twin1``... with the
block's twin domains (``PndOptions.twins``; their indices must be integers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from chasm.errors import InputError
from chasm.neutron.flipping import PROTON_SPIN_AMPLITUDE
from chasm.neutron.rcif import PndDataset
from chasm.neutron.structure_factors import P_FM
from chasm.refine.flipping_ratios import Amplitudes, Block, FlippingRatioSet, PndOptions

if TYPE_CHECKING:
    from chasm.crystal.structure import Crystal
    from chasm.refine.structure_model import EngineView, StructureModel
    from chasm.scattering.engine import StructureFactorEngine

#: (mask, F_N, F_spin, dF_N/dθ or None, dF_spin/dθ or None)
Computed = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]

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
        crystal: Crystal,
        options: PndOptions | None = None,
        adp_set: str = "N",
        p: float = P_FM,
        magnetisation_scale: bool = False,
        field_direction: np.ndarray | None = None,
    ) -> None:
        self.adp_set = adp_set
        self.p = float(p)
        self.magnetisation_scale = magnetisation_scale
        self._read(name, dataset, crystal, options, field_direction)
        for tag, rset in self.sets.items():
            if not np.array_equal(rset.hkl, np.rint(rset.hkl)):
                raise InputError(
                    f"dataset {name!r}: reflection set {tag or 'h'} has indices that are not "
                    "integers (a twin matrix with fractions?)"
                )
        # F_M⊥ per unit F_spin of each set: p (ê − (ĥ·ê) ĥ), (n, 3)
        self._q_vecs = {
            tag: self.p * (self.e[None, :] - (u @ self.e)[:, None] * u)
            for tag, u in ((t, s.h_unit) for t, s in self.sets.items())
        }
        self.q_vec = self._q_vecs[""]
        self._hydrogens = [i for i, a in enumerate(crystal.atoms) if a.element == "H"]
        self._views: tuple[EngineView, EngineView] | None = None
        self._hpol_view: EngineView | None = None
        self._engines = {}

    # ------------------------------------------------------------------ parameters
    def _source_names(self) -> list[str]:
        return [f"{self.name}.mscale"] if self.magnetisation_scale else []

    def _source_values(self) -> dict[str, float]:
        return {f"{self.name}.mscale": 1.0}

    def attach(self, structure: StructureModel) -> None:
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

    def _bind_source(self, names: list[str], n_struct: int) -> None:
        if self._views is None:
            raise InputError(f"dataset {self.name!r}: FlippingData needs a structure model")

    # ------------------------------------------------------------------ evaluation
    def _attached(self) -> tuple[EngineView, EngineView]:
        if self._views is None:
            raise RuntimeError("FlippingData.attach must be called first")
        return self._views

    def _engine_pair(self) -> tuple[StructureFactorEngine, StructureFactorEngine, np.ndarray]:
        """(nuclear engine, magnetic engine, mask) of the stage window: every set's rows stacked."""
        key = self.window
        if key not in self._engines:
            mask = self.active()
            if not np.any(mask):
                raise self._no_reflection()
            nuc, mag = self._attached()
            hkl = np.vstack([rset.hkl[mask] for rset in self.sets.values()]).astype(int)
            self._engines[key] = (nuc.engine(hkl), mag.engine(hkl), mask)
            if self._hpol_view is not None:
                self._engines[key, "hpol"] = self._hpol_view.engine(hkl)
        pair: tuple[StructureFactorEngine, StructureFactorEngine, np.ndarray]
        pair = self._engines[key]
        return pair

    def _computed(self, jacobian: bool) -> Computed:
        """(mask, F_N, F_spin, dF_N/dθ, dF_spin/dθ) of every engine row (the sets in order)."""
        nuc, mag = self._attached()
        e_n, e_m, mask = self._engine_pair()
        f_n, j_n = nuc.compute(e_n, jacobian)
        f_s, j_s = mag.compute(e_m, jacobian)
        return mask, f_n, f_s, j_n, j_s

    def structure_factors(self, p: np.ndarray, jacobian: bool = False) -> Computed:
        """(mask, F_N fm, F_spin μB, dF_N/dθ, dF_spin/dθ) of h over the stage window."""
        mask, f_n, f_s, j_n, j_s = self._computed(jacobian)
        if len(self.sets) == 1:
            return mask, f_n, f_s, j_n, j_s
        n = int(mask.sum())
        return (
            mask,
            f_n[:n],
            f_s[:n],
            None if j_n is None else j_n[:n],
            None if j_s is None else j_s[:n],
        )

    def hydrogen_structure_factors(
        self, jacobian: bool = False
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(F_Hpol fm, dF_Hpol/dθ) over the stage window: the sets' rows in order (h first).

        None, None without polarised protons.
        """
        if self._hpol_view is None:
            return None, None
        self._engine_pair()
        return self._hpol_view.compute(self._engines[self.window, "hpol"], jacobian)

    def _amplitudes(self, p: np.ndarray, mask: np.ndarray, jacobian: bool) -> dict[str, Amplitudes]:
        """F_N, F_M⊥ = p s F_spin (ê − (ĥ·ê) ĥ), F_Hpol of every set, with the engine columns."""
        _, f_n, f_s, j_n, j_s = self._computed(jacobian)
        f_h, j_h = self.hydrogen_structure_factors(jacobian)
        ms = self._value(p, "mscale", 1.0)
        n, ns = int(mask.sum()), self._n_struct
        out = {}
        for k, tag in enumerate(self.sets):
            rows = slice(k * n, (k + 1) * n)
            q = self._q_vecs[tag][mask]
            amp = Amplitudes(
                f_n[rows], (ms * f_s[rows])[:, None] * q, None if f_h is None else f_h[rows]
            )
            if jacobian:
                assert j_n is not None and j_s is not None  # asked for
                amp.blocks.append(
                    Block(
                        slice(0, ns),
                        j_n[rows],
                        j_s[rows],
                        None if j_h is None else j_h[rows],
                        direction=ms * q,
                    )
                )
                if "mscale" in self._i:
                    amp.blocks.append(
                        Block(np.array([self._i["mscale"]]), d_m=f_s[rows][:, None], direction=q)
                    )
            out[tag] = amp
        return out

"""The declared interface of a data set in a :class:`~chasm.refine.refinement.Refinement`.

:class:`DataSet` is what every data set implements — X-ray and unpolarised
neutron F² (:class:`~chasm.refine.xray_data.XrayData`,
:class:`~chasm.refine.xray_data.UndData`), flipping ratios
(:class:`~chasm.refine.flipping_data.FlippingData`,
:class:`~chasm.refine.pnd_data.PndData`) and magnetic amplitudes
(:class:`~chasm.refine.magnetic_amplitude_data.MagneticAmplitudeData`):

- ``parameter_names()`` and ``initial_values(crystal, models)``: its private
  parameters (scale, extinction, polarisation...) and their start values;
- ``bind(crystal, models, names, n_struct)``: told the full parameter list
  once the refinement has assembled it;
- ``evaluate(p)``: observations, calculated values, weights and the Jacobian
  at a full parameter vector (:class:`~chasm.refine.problem.Evaluation`);
- ``agreement(p, n_par)``: its agreement figures (``kind``, ``n_obs``,
  ``chi2``, ``gof``, ``R1``, ``wR2``, ``Rw`` ...);
- ``name``, ``kind`` (``"xray"``, ``"und"``, ``"pnd"``), ``user_weight`` (u_e
  of the score) and ``window`` (the sinθ/λ range of the stage running, set by
  the refinement, ``(None, None)`` outside a stage).

The optional capabilities, each its own protocol (a refinement asks with
``isinstance``, never by probing attributes):

- :class:`UsesAdpSet`: ``adp_set``, the ADP set its structure factors use
  (``"X"`` when absent);
- :class:`AttachesToStructure`: ``attach(structure)``, given the
  :class:`~chasm.refine.structure_model.StructureModel` before its start values;
- :class:`SharesParameters`: ``shared_values(crystal, models)``, model
  parameters outside the atomic layout that several sets use (``Ti.moment``).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from chasm.refine.problem import Evaluation

__all__ = ["DataSet", "UsesAdpSet", "AttachesToStructure", "SharesParameters", "adp_set_of"]


@runtime_checkable
class DataSet(Protocol):
    """One set of observations fitted by a refinement (module docstring)."""

    name: str
    kind: str
    user_weight: float
    window: tuple[float | None, float | None]

    def parameter_names(self) -> list[str]:
        """Names of the set's private parameters."""
        ...

    def initial_values(self, crystal: Any, models: Any) -> dict[str, float]:
        """Start values of the private parameters."""
        ...

    def bind(self, crystal: Any, models: Any, names: list[str], n_struct: int) -> None:
        """Learn the full parameter list (``n_struct`` atomic parameters first)."""
        ...

    def evaluate(self, p: np.ndarray) -> Evaluation:
        """Observations, calculated values, weights and Jacobian at ``p``."""
        ...

    def agreement(self, p: np.ndarray, n_par: int = 0) -> dict[str, Any]:
        """Agreement figures at ``p`` with ``n_par`` refined parameters."""
        ...


@runtime_checkable
class UsesAdpSet(Protocol):
    """A data set whose structure factors use a named ADP set (``"X"``, ``"N"``)."""

    adp_set: str


@runtime_checkable
class AttachesToStructure(Protocol):
    """A data set that needs the refinement's structure model before its start values."""

    def attach(self, structure: Any) -> None:
        """Keep what it needs of the structure model."""
        ...


@runtime_checkable
class SharesParameters(Protocol):
    """A data set that declares model parameters shared with other sets."""

    def shared_values(self, crystal: Any, models: Any) -> dict[str, float]:
        """Shared parameter name -> start value."""
        ...


def adp_set_of(dataset: object) -> str:
    """The ADP set a data set uses: its ``adp_set``, or ``"X"``."""
    return dataset.adp_set if isinstance(dataset, UsesAdpSet) else "X"

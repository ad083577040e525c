"""The per-reflection figures of an X-ray fit that the diagnostics need.

An :class:`XrayFit` holds Fo², σ(Fo²) and the model's Fc² on one scale, the
weights of the fit and sinθ/λ; the complex Fc (absolute scale) when known,
for residual maps. Two sources:

- :func:`xray_fits`: a refinement at its current parameters — Fo² and σ
  divided by the scale and extinction factor k·y, so that they are on the
  absolute scale of Fc (as :func:`chasm.io.fcf.fcf_from_xray` writes them),
  the weights those of the fit (1/σ² or SHELXL's, rescaled with the data);
- :func:`fit_from_fcf`: a ``.fcf`` file (LIST 4 or 6), weights 1/σ².
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from chasm.crystal.structure import Crystal

__all__ = ["XrayFit", "fit_from_fcf", "xray_fits"]


@dataclass
class XrayFit:
    """One X-ray data set against its model, every reflection.

    Attributes
    ----------
    name : str
        Data-set name.
    hkl : ndarray of int, shape (n, 3)
    stol : ndarray, shape (n,)
        sinθ/λ, Å⁻¹.
    fo2, sigma : ndarray, shape (n,)
        Observed F² and its su, on the scale of ``fc2`` (electrons²).
    fc2 : ndarray, shape (n,)
        Model |Fc|², electrons².
    weights : ndarray, shape (n,)
        Weights of the fit on this scale (1/σ² for ``weights = "sigma"``).
    f_calc : ndarray of complex, shape (n,), or None
        Complex Fc on the absolute scale (phases for residual maps).
    weighting : str
        How the weights were made, for captions.
    """

    name: str
    hkl: np.ndarray
    stol: np.ndarray
    fo2: np.ndarray
    sigma: np.ndarray
    fc2: np.ndarray
    weights: np.ndarray
    f_calc: np.ndarray | None = None
    weighting: str = "1/σ²"

    def __len__(self) -> int:
        return len(self.fo2)

    @property
    def weighted_residuals(self) -> np.ndarray:
        """√w (Fo² − Fc²), dimensionless."""
        return np.sqrt(self.weights) * (self.fo2 - self.fc2)


def _stol(crystal, hkl: np.ndarray) -> np.ndarray:
    return 0.5 * np.linalg.norm(np.asarray(hkl, dtype=float) @ np.asarray(crystal.B).T, axis=1)


def xray_fits(refinement: Any) -> list[XrayFit]:
    """The X-ray data sets of a refinement at its current parameters, every reflection.

    Parameters
    ----------
    refinement : Refinement

    Returns
    -------
    list of XrayFit
        One per data set of kind ``"xray"`` (none for a neutron-only refinement).
    """
    out = []
    p = np.asarray(refinement.params.values, dtype=float)
    refinement.set_values(p)
    for d in refinement.datasets:
        if getattr(d, "kind", "") != "xray":
            continue
        saved, d.window = d.window, (None, None)
        try:
            fo2, s2, y_calc, fc2, _, mask = d.calculate(p, jacobian=False)
            f_calc = np.asarray(d.fc_complex())
        finally:
            d.window = saved
        y = y_calc if d.options.observable == "F2" else y_calc**2
        k = float(p[refinement.params.index(d.scale_name)])
        ky = np.where(fc2 > 0, y / np.where(fc2 > 0, fc2, 1.0), k)  # scale x extinction
        w = d._weights_f2(fo2, s2, y, k) * ky**2  # weights of Fo²/ky
        hkl = np.asarray(d.reflections.hkl)[mask]
        if len(f_calc) != len(hkl):
            f_calc = f_calc[mask]
        out.append(
            XrayFit(
                name=d.name,
                hkl=hkl,
                stol=_stol(refinement.crystal, hkl),
                fo2=fo2 / ky,
                sigma=s2 / ky,
                fc2=np.abs(f_calc) ** 2,
                weights=w,
                f_calc=f_calc,
                weighting="SHELXL scheme" if d.options.weights == "shelx" else "1/σ²",
            )
        )
    return out


def fit_from_fcf(
    path: str | os.PathLike, crystal: Crystal | None = None, name: str = "xray"
) -> XrayFit:
    """An :class:`XrayFit` from a ``.fcf`` file (weights 1/σ²).

    Parameters
    ----------
    path : path
        SHELX LIST 4 or LIST 6 file (:func:`chasm.io.fcf.read_fcf`).
    crystal : Crystal, optional
        For sinθ/λ; without it the cell of the file is used.
    name : str
        Data-set name for captions.

    Returns
    -------
    XrayFit
        ``f_calc`` only for LIST 6 (LIST 4 has no phases).
    """
    import gemmi

    from chasm.crystal.adp import direct_basis
    from chasm.io.fcf import read_fcf

    f = read_fcf(Path(path))
    if crystal is not None:
        stol = _stol(crystal, f.hkl)
    else:
        b = np.linalg.inv(direct_basis(gemmi.UnitCell(*f.cell))).T  # columns a*, b*, c*
        stol = 0.5 * np.linalg.norm(np.asarray(f.hkl, dtype=float) @ b.T, axis=1)
    sigma = np.asarray(f.sigma, dtype=float)
    w = np.where(sigma > 0, 1.0 / np.where(sigma > 0, sigma, 1.0) ** 2, 0.0)
    return XrayFit(
        name=name,
        hkl=np.asarray(f.hkl),
        stol=stol,
        fo2=np.asarray(f.f2_meas, dtype=float),
        sigma=sigma,
        fc2=f.f2_calc,
        weights=w,
        f_calc=np.asarray(f.f_calc) if f.list_code == 6 else None,
    )

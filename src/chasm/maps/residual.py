"""The X-ray residual density Fo − Fc of a refinement at its current parameters.

Used by the project runner (result.json ``residual_density``, the listing's
peak table) and by the report's residual map.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chasm.maps.fourier import FourierMap, residual_map

__all__ = ["xray_residual_map"]


def xray_residual_map(refinement: Any, dataset: str | None = None) -> tuple[FourierMap, str] | None:
    """Fo − Fc map (e/Å³) of an X-ray data set of a refinement at its current parameters.

    Fo is put on the absolute scale and corrected for extinction with the
    calculated extinction factor, Fc is the engine's complex F (phases of the
    model); see :func:`chasm.maps.fourier.residual_map`.

    Parameters
    ----------
    refinement : Refinement
    dataset : str, optional
        Name of the X-ray data set (default: the first one).

    Returns
    -------
    (FourierMap, str) or None
        The map and the data set's name; None without X-ray data.
    """
    sets = [d for d in refinement.datasets if getattr(d, "kind", "") == "xray"]
    if dataset is not None:
        sets = [d for d in sets if d.name == dataset]
    if not sets:
        return None
    d = sets[0]
    p = refinement.params.values
    refinement.set_values(p)
    fo2, _, y_calc, fc2_scaled, _, _ = d.calculate(p, jacobian=False)
    k = float(p[refinement.params.index(d.scale_name)])
    y = y_calc if d.options.observable == "F2" else y_calc**2
    extinction = y / (k * fc2_scaled)
    fo = np.sqrt(np.maximum(fo2, 0.0) / extinction)
    fmap = residual_map(refinement.crystal, d.reflections.hkl, fo, d.fc_complex(), scale=np.sqrt(k))
    return fmap, d.name

"""The covariance of the structural parameters, stored beside a refined model.

``chasm refine`` writes ``covariance.npz`` into the result folder (arrays
``names`` and ``cov``: the full-vector covariance of the last stage over the
structural parameters, :func:`chasm.neutron.moments.refinement_covariance`),
so that ``chasm properties`` can propagate su with the correlations.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from chasm.errors import InputError
from chasm.io.atomic import write_bytes_atomic

__all__ = ["read_covariance", "write_covariance"]

FILENAME = "covariance.npz"


def write_covariance(folder, refinement) -> Path | None:
    """Write ``folder/covariance.npz`` for a refinement with at least one stage run.

    Returns the path, or None when no stage has run or the last stage has no
    usable covariance (``chasm properties`` then uses the su of model.cif).
    """
    from chasm.neutron.moments import refinement_covariance

    if not refinement.outcomes:
        return None
    names = list(refinement.params.names)[: refinement.n_struct]
    try:
        cov, note = refinement_covariance(refinement, names)
    except (np.linalg.LinAlgError, ValueError, IndexError):
        return None  # no usable covariance (e.g. a singular stage): su come from model.cif
    buf = io.BytesIO()
    np.savez(buf, names=np.array(names), cov=cov, note=np.array(note))
    path = Path(folder) / FILENAME
    write_bytes_atomic(path, buf.getvalue())
    return path


def read_covariance(folder) -> tuple[list[str], np.ndarray, str] | None:
    """(names, covariance, note) from ``folder/covariance.npz``, or None if absent."""
    path = Path(folder) / FILENAME
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            names = [str(n) for n in z["names"]]
            cov = np.asarray(z["cov"], dtype=float)
            note = str(z["note"]) if "note" in z else ""
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: not a covariance file written by chasm refine: {exc}") from exc
    if cov.shape != (len(names), len(names)):
        raise InputError(f"{path}: covariance of shape {cov.shape} for {len(names)} names")
    return names, cov, note

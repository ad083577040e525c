"""The publication files of a finished run: ``model_core.cif`` and ``model.fcf``.

Written by :func:`chasm.project.run.run_project` next to ``model.cif`` at the end
of a refinement (not after an interrupted one):

- ``model_core.cif``: the refined structure as core CIF (:mod:`chasm.io.core_cif`)
  with the ``_refine_ls_`` figures of the first X-ray (or unpolarised neutron)
  data set, su's from the covariance of the last stage. A parameter the last
  stage kept fixed but an earlier stage refined keeps its su from that stage,
  uncorrelated (its covariance is not known any more);
- ``model.fcf``: SHELX LIST 4 of the first X-ray data set
  (:mod:`chasm.io.fcf`); ``model_NAME.fcf`` for every further X-ray set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gemmi import cif

from chasm.errors import InputError
from chasm.io.core_cif import RefineSummary, write_core_cif
from chasm.io.fcf import fcf_from_xray, write_fcf

__all__ = ["CORE_CIF", "FCF", "write_publication_files", "refine_summary"]

CORE_CIF = "model_core.cif"
FCF = "model.fcf"


def disorder_groups(built) -> dict[str, int]:
    """``_atom_site_disorder_group`` by label from the project's structure CIF ({} if none).

    The block is the one ``structure.block`` names, or the first with atoms (as
    :func:`chasm.crystal.cif.read_cif` chooses); unreadable values count as 0.
    """
    d = built.project.data["structure"]
    try:
        doc = cif.read(str(built.project.resolve(d["cif"])))
    except (OSError, ValueError, RuntimeError):
        return {}
    name = d.get("block")
    blocks = [b for b in doc if (b.name == name if name else b.find_values("_atom_site_fract_x"))]
    if not blocks:
        return {}
    out = {}
    for row in blocks[0].find("_atom_site_", ["label", "disorder_group"]):
        try:
            out[cif.as_string(row[0])] = int(cif.as_string(row[1]))
        except ValueError:  # '.' or '?'
            continue
    return {k: v for k, v in out.items() if v}


def _covariance(ref) -> np.ndarray | None:
    """Covariance of the full parameter vector: the last stage's, earlier su's on the diagonal."""
    if not ref.outcomes:
        return None
    cov = np.array(ref.outcomes[-1].result.cov_p(), dtype=float)
    for i, p in enumerate(ref.params):
        if cov[i, i] <= 0 and p.su is not None and np.isfinite(p.su) and p.su > 0:
            cov[i, i] = float(p.su) ** 2
    return cov


def refine_summary(ref, result: dict, dataset) -> RefineSummary:
    """The ``_refine_ls_`` figures of one data set from the run's result.json content."""
    a = result["datasets"][dataset.name]
    o = dataset.options
    ext_value = ext_su = None
    if getattr(dataset, "extinction_name", None):
        p = ref.params[dataset.extinction_name]
        ext_value, ext_su = float(p.value), (float(p.su) if p.su else 0.0)
    shift = None
    if ref.outcomes and ref.outcomes[-1].result.history:
        shift = float(ref.outcomes[-1].result.history[-1].max_shift_su)
    rd = result.get("residual_density")
    return RefineSummary(
        coef="Fsqd" if o.observable == "F2" else "Fobs",
        n_reflns=int(a["n_obs"]),
        n_gt=a.get("n_gt"),
        n_params=int(a.get("n_par") or 0),
        n_restraints=len(ref.restraints),
        r1_all=a.get("R1"),
        r1_gt=a.get("R1_gt"),
        wr2=a.get("wR2"),
        gof=a.get("gof"),
        weighting=o.weights,
        shelx_a=o.shelx_a,
        shelx_b=o.shelx_b,
        extinction=o.extinction,
        extinction_value=ext_value,
        extinction_su=ext_su,
        shift_su_max=shift,
        diff_density=None if not rd else (rd["max"], rd["min"], rd["rms"]),
    )


def write_publication_files(
    built, result: dict, out: Path, warnings: list[str] | None = None
) -> list[Path]:
    """Write ``model_core.cif`` and the ``.fcf`` files into ``out``; returns the paths.

    With ``warnings`` (a list), a file that cannot be written (a value the CIF
    cannot hold, e.g. an atom more than four cells away from the origin for a
    symmetry code) is left out and the reason appended there instead of
    raising: the refined model, result.json and the listing matter more.
    """
    if warnings is None:
        return _write(built, result, Path(out))
    try:
        return _write(built, result, Path(out))
    except (ValueError, ArithmeticError, RuntimeError, np.linalg.LinAlgError, InputError) as exc:
        warnings.append(f"{CORE_CIF} / {FCF} not written: {exc}")
        return []


def _write(built, result: dict, out: Path) -> list[Path]:
    ref = built.refinement
    xray = [d for d in ref.datasets if d.kind == "xray"]
    main = next((d for d in ref.datasets if d.kind in ("xray", "und")), None)
    summary = None if main is None else refine_summary(ref, result, main)
    written = [out / CORE_CIF]
    write_core_cif(
        out / CORE_CIF,
        built.crystal,
        su={p.name: p.su for p in list(ref.params)[: ref.n_struct] if p.su is not None},
        names=ref.params.names,
        cov=_covariance(ref),
        summary=summary,
        riding=[r.h for r in built.riders],
        title=built.project.data.get("title") or None,
        parts=disorder_groups(built),
    )
    p = ref.params.values
    for k, d in enumerate(xray):
        path = out / (FCF if k == 0 else f"model_{d.name}.fcf")
        write_fcf(path, fcf_from_xray(d, p, 4), title=built.project.data.get("title"))
        written.append(path)
    return written

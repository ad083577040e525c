"""Compare a spherical-atom stage with the R-values a SHELXL CIF reports (SHELXL parity).

When every atom of the project is a spherical (IAM) atom and a data set's
reflections come from a SHELXL/olex2 CIF (``_shelx_hkl_file``), the end of each
stage prints chasm's R1(all), wR2 and GooF beside the ones the CIF reports
(``_refine_ls_R_factor_all``, ``_refine_ls_wR_factor_ref``,
``_refine_ls_goodness_of_fit_ref``). The GooF is also given with the CIF's
number of parameters, the right count for the published model refined with one
scale (the first stage ``chasm init`` writes).
"""

from __future__ import annotations

import math

from chasm.density.model import SphericalAtom
from chasm.errors import InputError
from chasm.io.shelx_cif import choose_block, is_shelx_cif, published_fit

__all__ = ["shelxl_comparison"]


def _block(project, cfg: dict, path) -> str:
    block = cfg.get("block")
    structure = project.data["structure"]
    if block is None and path.resolve() == project.resolve(structure["cif"]).resolve():
        block = structure["block"]
    return choose_block(path, block)


def shelxl_comparison(built, agreement: dict[str, dict]) -> list[str]:
    """Lines ``NAME vs SHELXL (CIF): R1(all) a / b, wR2 ..., GooF ...`` for a stage's end.

    Parameters
    ----------
    built : chasm.project.build.Built
    agreement : dict
        ``Refinement.agreement`` of the stage: data-set name -> figures (R1,
        wR2, gof, chi2, n_obs).

    Returns
    -------
    list of str
        Empty unless the model is all IAM and a data set comes from a SHELXL CIF.
    """
    if not all(isinstance(m, SphericalAtom) for m in built.models):
        return []
    project = built.project
    out = []
    for cfg in project.data["datasets"]:
        a = agreement.get(cfg["name"])
        if a is None or cfg["kind"] != "xray":
            continue
        path = project.resolve(cfg["file"])
        if not is_shelx_cif(path):
            continue
        try:
            pub = published_fit(path, _block(project, cfg, path))
        except InputError:
            continue
        if math.isnan(pub.r1_all):
            continue
        gof_cif = ""
        if pub.n_parameters is not None and a["n_obs"] > pub.n_parameters:
            g = math.sqrt(a["chi2"] / (a["n_obs"] - pub.n_parameters))
            gof_cif = f" ({g:.3f} with the CIF's {pub.n_parameters} parameters)"
        n_cif = pub.n_reflections if pub.n_reflections is not None else "?"
        out.append(
            f"  {cfg['name']} vs SHELXL (chasm / CIF): R1(all) {a['R1']:.4f} / {pub.r1_all:.4f}, "
            f"wR2 {a['wR2']:.4f} / {pub.wr2:.4f}, GooF {a['gof']:.3f}{gof_cif} / {pub.goof:.3f}, "
            f"N {a['n_obs']} / {n_cif}"
        )
    return out

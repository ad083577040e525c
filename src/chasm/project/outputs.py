"""The output folder of a run: result.json, model.cif, listing.txt (and the final extras).

What each file holds is described in :mod:`chasm.project.run`; the result
object is :class:`chasm.refine.result.Result`. Everything is written
atomically (:func:`chasm.io.atomic.write_text_atomic`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from chasm import __version__
from chasm.errors import InputError
from chasm.io.atomic import write_text_atomic
from chasm.io.su_format import format_su
from chasm.project.build import Built
from chasm.project.checks import spin_warnings
from chasm.project.defaults import obs_per_parameter_warning
from chasm.refine.dataset import UsesAdpSet
from chasm.refine.plausibility import check as check_plausibility
from chasm.refine.result import Result, finite_or_none
from chasm.scattering.engine import U_LABELS
from chasm.topology.covariance import write_covariance

__all__ = [
    "result_dict",
    "dataset_table",
    "warnings_for",
    "implausible",
    "write_outputs",
    "figures",
    "GOF_SPREAD",
]


def figures(a: dict) -> str:
    """``R1=… wR2=… Rw=… GOF=…`` with only the figures defined for the data set."""
    keys = ("R1", "wR2", "Rw", "gof")
    return " ".join(
        f"{'GOF' if k == 'gof' else k}={a[k]:.4f}"
        for k in keys
        if finite_or_none(a.get(k)) is not None
    )


#: GOF ratio to the median of the other data sets above which a warning is given.
GOF_SPREAD = 2.0

#: GOF of a fitted data set above which the model is said not to describe the data.
MISFIT_GOF = 3.0


def warnings_for(built: Built, result: Mapping) -> list[str]:
    """Warnings on the current state: bounds, correlations, GOF spread between data sets.

    Parameters
    ----------
    built : Built
    result : dict
        The :func:`result_dict` content (correlations and per-set GOF).
    """
    out: list[str] = []
    ref = built.refinement
    judged = {"kappa", "kappa_prime", "Pv", "Uiso", "occ", *U_LABELS}
    for p in ref.params:
        if p.bounds is None or not p.free:
            continue
        if p.name.partition(".")[2].split(".")[0] in judged:
            continue  # the plausibility table judges these (below)
        lo, hi = p.bounds
        tol = 1e-6 * max(1.0, abs(p.value))
        if p.value < lo - tol or p.value > hi + tol:
            out.append(f"{p.name} = {p.value:.6g} outside its plausible range [{lo:g}, {hi:g}]")
        elif abs(p.value - lo) <= tol or abs(p.value - hi) <= tol:
            out.append(f"{p.name} = {p.value:.6g} at the bound of its range [{lo:g}, {hi:g}]")
    threshold = built.project.data["refinement"]["correlation_threshold"]
    for a, b, r in result["correlations"]:
        if abs(r) > threshold:
            out.append(f"correlation {a} / {b} = {r:+.3f} (|rho| > {threshold:g})")
    # only data sets fitted so far (a set not yet fitted has no factor): comparing the GOF
    # of the flipping ratios against the X-rays after an X-ray-only stage says nothing
    gofs = {
        n: d["gof"]
        for n, d in result["datasets"].items()
        if d.get("gof") and d.get("factor") is not None
    }
    bad: dict[str, list[str]] = {}  # kind -> "name (GOF g)" of the sets the model misses
    for name, g in gofs.items():
        if g > MISFIT_GOF:
            bad.setdefault(result["datasets"][name].get("kind") or "", []).append(
                f"{name} (GOF {g:.3f})"
            )
    for kind, sets in bad.items():
        cure = (
            "a spherical spin density often cannot describe the flipping ratios of an "
            "open-shell ion: an aspherical one may (spin-split multipole atoms in a joint "
            "project, or d-orbital sites from Python: chasm.neutron.dorbital_site)"
            if kind == "pnd"
            else "look for a missing model feature (multipoles, extinction, disorder, twins)"
        )
        out.append(
            f"{'data sets' if len(sets) > 1 else 'data set'} {', '.join(sets)}: GOF above "
            f"{MISFIT_GOF:g}, the model does not describe these data within their su (the "
            f"parameters' su are scaled by the GOF); {cure}, or check the su of the data"
        )
    if len(gofs) >= 2:
        if len(gofs) == 2:  # two sets: which one is off cannot be told
            (a, ga), (b, gb) = gofs.items()
            if max(ga, gb) > GOF_SPREAD * min(ga, gb):
                out.append(
                    f"data sets {a} and {b}: GOF {ga:.3f} and {gb:.3f} differ by more than "
                    f"{GOF_SPREAD:g}x; check their weights / sigmas or user_weight"
                )
        else:  # against the median of all fitted sets (one outlier does not move it)
            mid = float(np.median(list(gofs.values())))
            for name, g in gofs.items():
                if mid > 0 and not 1 / GOF_SPREAD <= g / mid <= GOF_SPREAD:
                    out.append(
                        f"data set {name}: GOF {g:.3f} is far from the others (median "
                        f"{mid:.3f}); check its weights / sigmas or its user_weight"
                    )
    for st in result["stages"]:
        if not st["converged"]:
            out.append(f"stage {st['name']} did not converge ({st['message']})")
        n_obs = sum(int(v.get("n_obs") or 0) for v in st.get("datasets", {}).values())
        few = obs_per_parameter_warning(st["name"], n_obs, int(st.get("n_free") or 0))
        if few:
            out.append(few)
    out += [f["message"] for f in result.get("implausible", [])]
    return out


def implausible(built: Built) -> list[dict]:
    """The refined parameters outside their plausible ranges (:mod:`chasm.refine.plausibility`)."""
    ref = built.refinement
    refined = {p.name for p in ref.params if p.su is not None and np.isfinite(p.su) and p.su > 0}
    found = check_plausibility(built.crystal, built.models, ref.params, refined)
    return [{**f.as_dict(), "message": f.message()} for f in found]


def result_dict(built: Built, earlier: dict | None = None, n_par: int | None = None) -> Result:
    """The result.json content for the refinement's current state.

    :meth:`Result.from_refinement <chasm.refine.result.Result.from_refinement>`
    plus the project's keys: ``project``, ``implausible`` and ``warnings``.

    Parameters
    ----------
    built : Built
    earlier : dict, optional
        What stages completed before this session did (a resumed run), as for
        :meth:`~chasm.refine.result.Result.from_refinement`.
    n_par : int, optional
        Parameters for the GOF (default: those of the last stage).
    """
    out = Result.from_refinement(built.refinement, earlier, n_par)
    out["project"] = str(built.project.path)
    out["implausible"] = implausible(built)
    out["warnings"] = warnings_for(built, out)
    return out


def _residual(built: Built) -> tuple[dict, str]:
    """Fo − Fc map of the first X-ray data set: figures and a peak table."""
    from chasm.maps.fourier import peaks, residual_peaks_table
    from chasm.maps.residual import xray_residual_map

    fmap, name = xray_residual_map(built.refinement)
    st = fmap.stats()
    pk = peaks(fmap, n=5, crystal=built.crystal)
    info = {
        "dataset": name,
        "max": float(st.max),
        "min": float(st.min),
        "rms": float(st.rms),
        "peaks": [
            {
                "height": float(q.height),
                "frac": [float(v) for v in q.frac],
                "nearest_atom": q.atom,
                "distance": finite_or_none(q.distance),
            }
            for q in pk
        ],
    }
    return info, residual_peaks_table(pk)


def _listing(built: Built, result: Result, lines: list[str], peaks_table: str | None) -> str:
    ref, cr = built.refinement, built.crystal
    out = [
        f"chasm {__version__} refinement listing",
        f"project: {built.project.path}",
        f"title: {built.project.data['title']}",
        "",
    ]
    if result.get("interrupted"):
        at = result["stopped_at"]
        out += [
            f"INTERRUPTED in stage {at['stage']} after cycle {at['cycle']}: the last accepted "
            "model; su and correlations are those of the last completed stage",
            "",
        ]
    out += [
        f"structure: {cr.name}, {len(cr.atoms)} atoms, {cr.n_ops} symmetry operations",
        "",
    ]
    spin = getattr(ref.datasets[0], "spin", None)  # a PND-only project (pnd_build)
    if spin is not None:
        out += _spin_model_lines(spin)
    out.append("model:" if spin is None else "nuclear structure (fixed, from the rcif):")
    for atom, m in zip(cr.atoms, built.models, strict=True):
        kind = type(m).__name__ if spin is None else "b, positions and ADPs of the rcif"
        extra = ""
        if spin is not None:
            out.append(f"  {atom.label:<6s} {atom.element:<3s} {kind}")
            continue
        if m.carries_spin:
            extra = f" spin Pv={m.spin_pv:.4f}"
        extra += f" lmax={m.lmax}"  # (every model has one: -1 without multipoles)
        if m.axes is not None:
            extra += f" axes: {m.axes.as_text()}"
        out.append(f"  {atom.label:<6s} {atom.element:<3s} {kind}{extra}")
    if built.kappa_sets:
        out.append(
            "kappa sets: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in built.kappa_sets.items())
        )
    for r in built.riders:
        out.append(f"riding: {r.h} on {r.parent} at {r.distance:.3f} A")
    if built.split:
        out.append(
            f"spin-split atoms ({built.refinement.structure.basis}): {' '.join(built.split)}"
        )
    out += [f"note: {n}" for n in built.notes]
    out += ["", f"constraints ({len(ref.all_constraints())} rows):"]
    out += [f"  {t}" for t in ref.all_constraints().descriptions]
    if result.get("restraints"):
        out += ["", "restraints (final; chi2 = contribution to the score, misfit in sigma):"]
        for kind, s in result["restraints"].items():
            name, value, target, sigma = s["worst"]
            out.append(
                f"  {kind:<15s} n={s['n']:<4d} chi2={s['chi2']:<10.4g} "
                f"rms misfit={s['rms_misfit_su']:.3f} sigma; worst {name}: {value:.4f} "
                f"(target {target:g}, sigma {sigma:g})"
            )
    out += ["", "datasets:"]
    out += [f"  {_describe(d)}" for d in ref.datasets]
    out += ["", "cycles:"] + [f"  {x}" for x in lines]
    out += ["", "agreement (final; factor and gradient share from the last stage fitting the set):"]
    out += dataset_table(result["datasets"])
    for st in result["stages"]:
        shares = ", ".join(
            f"{n} {v['gradient_share']:.3f}"
            for n, v in st["datasets"].items()
            if v["gradient_share"] is not None
        )
        out.append(f"  stage {st['name']}: data {', '.join(st['data'])}; gradient shares {shares}")
    out += ["", "parameters (value(su), rule of 19; * = free in the last stage):"]
    for name, p in result["parameters"].items():
        shown = format_su(p["value"], p["su"])  # one su style in every output
        out.append(f"  {'*' if p['free'] else ' '} {name:<22s} {shown:>16s}")
    out += ["", "correlations above threshold:"]
    out += [f"  {a:<20s} {b:<20s} {r:+.3f}" for a, b, r in result["correlations"]] or ["  none"]
    if spin is not None and ref.outcomes:
        out += ["", *_moment_lines(ref, spin)]
    if peaks_table:
        rd = result["residual_density"]
        out += [
            "",
            f"residual density (Fo - Fc, {rd['dataset']}): max {rd['max']:.3f}, "
            f"min {rd['min']:.3f}, rms {rd['rms']:.3f} e/A^3",
            peaks_table,
        ]
    out += ["", f"warnings ({len(result['warnings'])}):"]
    out += [f"  - {w}" for w in result["warnings"]] or ["  none"]
    return "\n".join(out) + "\n"


def _moment_lines(ref, spin) -> list[str]:
    """Moments and sums of a PND-only spin model with su (:mod:`chasm.neutron.moments`)."""
    from chasm.neutron.moments import format_moment_report, moment_report, refinement_covariance

    try:
        cov, note = refinement_covariance(ref, spin.parameter_names)
    except (np.linalg.LinAlgError, ValueError, IndexError, InputError):
        cov, note = None, "no covariance: su not given"
    values = {n: ref.params[n].value for n in spin.parameter_names}
    field = abs(float(ref.datasets[0].dataset.field))
    try:
        report = moment_report(spin, values, cov, field=field, note=note)
    except InputError as exc:  # e.g. partial occupancy without Z
        return [f"moments: not listed ({exc.message})"]
    return [
        f"(susceptibility sites: the induced moment at |B| = {field:g} T, powder average "
        "tr(chi)/3)",
        *format_moment_report(report).splitlines(),
    ]


def _spin_model_lines(spin) -> list[str]:
    """The magnetic sites of a PND-only spin model: model, ion, C2, kappa, parameters."""
    out = [f"spin model (PND only; p = {spin.p:g} fm/muB):"]
    for site in spin.sites:
        if getattr(site, "vector", None) is not None:
            kind = "ordered moment (magnetic group)"
        elif getattr(site, "moment", None) is not None:
            kind = "moment along the field"
        elif getattr(site, "chi", None) is not None:
            kind = "chi_iso" if site.isotropic else "chi tensor (site symmetry)"
        else:
            kind = type(site).__name__
        names = [spin.parameter_names[k] for k in spin.column_indices(site.label)]
        shape = getattr(site, "shape", None)
        if shape is not None:  # spin multipoles: their kappa is a (non-linear) parameter
            names.append(f"{site.label}.kappa")
            form = f"spin multipoles of {shape.table.ion}"
        else:
            table = getattr(site, "table", None)
            ion = getattr(table, "ion", None) or getattr(table, "name", "")
            form = f"{ion} C2 = {getattr(site, 'c2', 0.0):g}"
        out.append(
            f"  {site.label:<6s} {kind}; form factor {form}, "
            f"kappa = {site.kappa:g}; parameters {', '.join(names)}"
        )
    return out


def _describe(d) -> str:
    """One line on a data set: kind, file, counts and its main options."""
    o = d.options
    if d.kind == "pnd":
        ext = f"sphere {d.extinction_model}" if d.extinction_on else "none"
        what = (
            f"{len(d.r_obs)} used; P {d.polarisation:+g}, e {d.efficiency:g}, "
            f"field {d.dataset.field:g} T, wavelength {d.wavelength:g} A, extinction {ext}, "
            + (f"ADP set {d.adp_set}" if isinstance(d, UsesAdpSet) else "structure fixed (rcif)")
        )
    else:
        what = (
            f"{len(d.reflections)} used (observable {o.observable}, weights {o.weights}, "
            f"extinction {o.extinction}, ADP set {d.adp_set})"
        )
    return f"{d.name}: {d.kind}, {d.n_read} read, {what}"


def _cell(x, fmt: str = "{:.4f}") -> str:
    return "-" if x is None else fmt.format(x)


def dataset_table(datasets: dict) -> list[str]:
    """The per-data-set table of the listing (one header line, one line per set)."""
    head = (
        f"  {'data set':<16s} {'kind':<5s} {'N':>6s} {'chi2':>12s} {'GOF':>8s} {'R1':>7s} "
        f"{'wR2':>7s} {'Rw':>7s} {'factor':>10s} {'grad.share':>10s}"
    )
    rows = [head]
    for name, a in datasets.items():
        rows.append(
            f"  {name:<16s} {a['kind']:<5s} {a['n_obs']:>6d} {_cell(a['chi2'], '{:.5g}'):>12s} "
            f"{_cell(a['gof'], '{:.3f}'):>8s} {_cell(a['R1']):>7s} {_cell(a['wR2']):>7s} "
            f"{_cell(a['Rw']):>7s} {_cell(a.get('factor'), '{:.4g}'):>10s} "
            f"{_cell(a.get('gradient_share'), '{:.3f}'):>10s}"
        )
    rows.append("  (R1 on F, wR2 on F2; Rw: Rw(F) for xray/und, Rw(1-R) for pnd)")
    return rows


def write_outputs(
    built: Built,
    out: Path,
    lines: list[str],
    final: bool,
    earlier: dict | None = None,
    stopped: dict | None = None,
) -> Result:
    """Write model.cif, result.json and listing.txt for the current state.

    ``earlier``: as for :func:`result_dict`. ``stopped``: an interrupted run,
    ``{"stage", "cycle"}`` and optionally ``"score"`` (of the interrupted
    stage's last cycle) and ``"n_par"``.
    """
    from chasm.io.rhocif import write_rhocif

    stopped = stopped or {}
    result = result_dict(built, earlier, stopped.get("n_par"))
    found = built.checks + spin_warnings(built.crystal, built.models)
    result["warnings"] = list(dict.fromkeys(found + result["warnings"]))
    if stopped:
        at = {"stage": stopped["stage"], "cycle": int(stopped["cycle"])}
        result["converged"] = False
        result["cycles"] += at["cycle"]
        if stopped.get("score") is not None:
            result["score"]["value"] = finite_or_none(stopped["score"])
        result["interrupted"] = True
        result["stopped_at"] = at
        result["warnings"].append(
            f"interrupted in stage {at['stage']} after cycle {at['cycle']}; "
            "continue with chasm refine --resume"
        )
    table = None
    if final and any(d.kind == "xray" for d in built.refinement.datasets):
        result["residual_density"], table = _residual(built)
    ref = built.refinement
    su = {
        p.name: float(p.su)
        for p in list(ref.params)[: ref.n_struct]
        if p.su is not None and p.su > 0
    }
    extra = {}
    for name, a in result["datasets"].items():
        for key in ("R1", "wR2", "Rw"):
            if a.get(key) is not None:
                extra[f"_chasm_refine_{name}_{key}"] = f"{a[key]:.5f}"
    write_rhocif(
        out / "model.cif",
        built.crystal,
        built.models,
        su=su,
        extra=extra,
        adp_sets=ref.structure.adp or None,
    )
    if final and not stopped:  # model_core.cif and model.fcf (chasm.project.publish)
        from chasm.project.publish import write_publication_files

        write_publication_files(built, result, out, result["warnings"])
    write_text_atomic(out / "result.json", result.dumps())
    write_text_atomic(out / "listing.txt", _listing(built, result, lines, table))
    write_covariance(out, ref)  # for chasm properties (su with correlations)
    return result

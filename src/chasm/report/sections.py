"""The tables of a report built from result.json: summary, stages, parameters.

Every GOF in these tables states the N and the parameters it was computed
with:

- data sets (final model): GOF_e = √(χ²_e / (N_e − p_e)), p the parameters
  of the last stage, charged to each data set in proportion to its N when
  several sets share them (p_e = p N_e / N; :func:`chasm.refine.refinement.share_gof`)
  — the GOF of result.json;
- stages: GOF = √(Σ χ² / (N obs + N restraints − p)) over the data the stage
  fitted (its sinθ/λ window) and every restraint — the GOF the solver
  minimised and printed per cycle.
"""

from __future__ import annotations

from chasm.io.su_format import EXACT_SU
from chasm.properties import format_value

__all__ = [
    "dataset_rows",
    "formula_text",
    "implausible_rows",
    "parameter_tables",
    "side_by_side",
    "stage_rows",
    "n_restraints",
]


def _f(x, fmt: str = "{:.4f}") -> str:
    return "-" if x is None else fmt.format(float(x))


def formula_text(crystal) -> str | None:
    """Sum formula of the formula unit in Hill order and Z, e.g. "C H4 N2 O, Z = 2".

    Counts are the cell content (occupancy × multiplicity of each site)
    divided by Z (:func:`chasm.crystal.sums.formula_units`, the greatest
    common divisor of the multiplicities); C first and H second when there is
    carbon, the other elements alphabetically. None when Z is not defined
    (partly occupied sites) or the crystal has no atoms.
    """
    from chasm.crystal.sums import formula_units
    from chasm.errors import InputError

    try:
        z = formula_units(crystal)
    except InputError:
        return None
    if not crystal.atoms or z < 1:
        return None
    count: dict[str, float] = {}
    for i, atom in enumerate(crystal.atoms):
        element = "H" if atom.element == "D" else atom.element.capitalize()
        count[element] = count.get(element, 0.0) + atom.occupancy * crystal.multiplicity(i) / z
    first = ["C", "H"] if "C" in count else []
    order = [e for e in first if e in count] + sorted(e for e in count if e not in first)
    parts = []
    for e in order:
        n = count[e]
        k = round(n)
        number = ("" if k == 1 else str(k)) if abs(n - k) < 1e-6 else f"{n:.2f}"
        parts.append(e + number)
    return f"{' '.join(parts)}, Z = {z}"


def charged_parameters(result: dict) -> dict[str, float | None]:
    """Data-set name -> parameters charged to its GOF (p N_e / N with several sets)."""
    sets = result.get("datasets", {})
    total = sum(int(d.get("n_obs") or 0) for d in sets.values())
    out = {}
    for name, d in sets.items():
        n_par = d.get("n_par")
        if n_par is None:
            stages = result.get("stages") or [{}]
            n_par = stages[-1].get("n_free")
        if n_par is None:
            out[name] = None
        elif len(sets) > 1 and total:
            out[name] = float(n_par) * int(d.get("n_obs") or 0) / total
        else:
            out[name] = float(n_par)
    return out


def _par(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.0f}" if abs(x - round(x)) < 1e-9 else f"{x:.1f}"


def dataset_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    """Agreement per data set of the final model (headers, rows)."""
    headers = [
        "data set",
        "kind",
        "N obs",
        "N param",
        "R1",
        "wR2",
        "Rw",
        "GOF",
        "χ²",
        "c_e",
        "grad. share",
    ]
    charged = charged_parameters(result)
    rows = []
    for name, d in result.get("datasets", {}).items():
        rows.append(
            [
                name,
                str(d.get("kind", "-")),
                str(d.get("n_obs", "-")),
                _par(charged.get(name)),
                _f(d.get("R1")),
                _f(d.get("wR2")),
                _f(d.get("Rw")),
                _f(d.get("gof"), "{:.3f}"),
                _f(d.get("chi2"), "{:.5g}"),
                _f(d.get("factor"), "{:.4g}"),
                _f(d.get("gradient_share"), "{:.3f}"),
            ]
        )
    return headers, rows


def n_restraints(result: dict) -> int:
    """Restraint equations of the refinement (every stage carries them all)."""
    return int(sum(int(r.get("n") or 0) for r in (result.get("restraints") or {}).values()))


def stage_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    """One row per stage: data, N obs, N restraints, N param, cycles, GOF, converged."""
    headers = ["stage", "data", "N obs", "N restr.", "N param", "cycles", "GOF", "converged"]
    n_r = str(n_restraints(result)) if "restraints" in result else "-"
    rows = []
    for s in result.get("stages", []):
        sets = s.get("datasets") or {}
        n_obs = sum(int(d.get("n_obs") or 0) for d in sets.values()) if sets else None
        rows.append(
            [
                s["name"],
                ", ".join(s.get("data") or sets) or "-",
                "-" if n_obs is None else str(n_obs),
                n_r,
                str(s.get("n_free", "-")),
                str(s.get("cycles", "-")),
                _f(s.get("gof"), "{:.3f}"),
                "yes" if s.get("converged") else "NO",
            ]
        )
    return headers, rows


def implausible_rows(result: dict) -> tuple[list[str], list[list[str]]] | None:
    """The refined parameters outside their plausible range (headers, rows), or None."""
    bad = result.get("implausible") or []
    if not bad:
        return None
    rows = []
    for f in bad:
        lo, hi = (f.get("range") or [None, None])[:2]
        rows.append(
            [
                str(f.get("name", "-")),
                format_value(f.get("value"), f.get("su")),
                "-" if lo is None else f"[{lo:g}, {hi:g}]",
                str(f.get("cure", "")),
            ]
        )
    return ["parameter", "value(su)", "plausible range", "cure"], rows


def parameter_tables(result: dict) -> tuple[list[list[str]], list[list[str]]]:
    """Rows (name, value(su)) of the parameters refined in the last stage, and of the others.

    Refined: free in the last stage with an su; the others are fixed, fixed by
    site symmetry, a constraint or a tight restraint (free but exact: su below
    :data:`chasm.io.su_format.EXACT_SU`), or refined in earlier stages only.
    """
    free, fixed = [], []
    for name, p in result.get("parameters", {}).items():
        su = p.get("su")
        row = [name, format_value(p["value"], su)]
        (free if p.get("free") and su and su >= EXACT_SU else fixed).append(row)
    return free, fixed


def side_by_side(rows: list[list[str]], k: int = 3) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) of a two-column table laid out as ``k`` column pairs, read down."""
    k = max(1, min(k, len(rows)))
    n = -(-len(rows) // k)
    out = []
    for i in range(n):
        line = []
        for j in range(k):
            m = j * n + i
            line += rows[m] if m < len(rows) else ["", ""]
        out.append(line)
    return ["parameter", "value(su)"] * k, out

"""A Markdown section of the report from ``properties.json`` (``chasm properties``)."""

from __future__ import annotations

import json
from pathlib import Path

from chasm.io.su_format import format_quantity

__all__ = ["properties_section"]


def _q(d: dict, key: str, su: dict | None = None) -> str:
    v = d.get(key)
    if v is None:
        return "—"
    s = (su or {}).get(key)
    return format_quantity(float(v), None if s is None else float(s))


def _topology(t: dict) -> list[str]:
    c = t["charge"]
    n = c["counts_per_cell"]
    ok = "holds" if c["morse_ok"] else "is VIOLATED (points missed)"
    out = [
        "### Bond critical points",
        "",
        f"Critical points per cell: n = {n['n']}, b = {n['b']}, r = {n['r']}, c = {n['c']}; "
        f"the Morse relation n − b + r − c = {c['morse_sum']} {ok}.",
        "",
        "| bond | ρ (e/Å³) | ∇²ρ (e/Å⁵) | ε | d₁, d₂ (Å) | G, V, H (a.u.) |",
        "|---|---|---|---|---|---|",
    ]
    for b in t["bond_critical_points"]:
        v, s = b["values"], b["su"]
        d = ", ".join("—" if x is None else f"{x:.3f}" for x in b["distances_A"])
        gvh = ", ".join(f"{v[k]:.3f}" if v.get(k) is not None else "—" for k in ("G", "V", "H"))
        out.append(
            f"| {'–'.join(b['atoms'])} | {_q(v, 'rho', s)} | {_q(v, 'laplacian', s)} | "
            f"{_q(v, 'ellipticity', s)} | {d} | {gvh} |"
        )
    out += ["", *[f"*Note:* {x}" for x in t.get("notes", [])]]
    return out


def _basins(b: dict) -> list[str]:
    spin = any(a.get("spin_muB") is not None for a in b["atoms"])
    head = "| atom | basin charge (e) | monopole charge (e) | volume (Å³) |"
    head += " spin (μB) |" if spin else ""
    out = [
        "### Atomic basins",
        "",
        f"{b['method']}, grid step {b['grid_step_A']} Å; cell integral "
        f"{b['cell_integral']:.3f} e for {b['cell_electrons_model']:.3f} e in the model.",
        "",
        head,
        "|---|---|---|---|" + ("---|" if spin else ""),
    ]
    for a in b["atoms"]:
        row = (
            f"| {a['label']} | {a['charge']:+.3f} | {a['monopole_charge']:+.3f} | "
            f"{a['volume_A3']:.2f} |"
        )
        if spin:
            row += " — |" if a.get("spin_muB") is None else f" {a['spin_muB']:+.3f} |"
        out.append(row)
    return out + ["", *[f"*Note:* {x}" for x in b.get("notes", [])]]


def _electrostatics(e: dict) -> list[str]:
    out = [
        "### Electrostatic properties",
        "",
        f"Convention: {e['convention']}.",
        "",
        "| atom | φ at the nucleus (e/Å) | V_zz (e/Å³) | V_zz (a.u.) | η |",
        "|---|---|---|---|---|",
    ]
    for a in e["nuclei"]:
        out.append(
            f"| {a['label']} | {a['potential_e_per_A']:+.3f} | {a['Vzz_e_per_A3']:+.3f} | "
            f"{a['Vzz_au']:+.4f} | {a['eta']:.2f} |"
        )
    s = e.get("isodensity_surface", {})
    if s.get("points"):
        out += [
            "",
            f"On the {e['isovalue_au']} au isodensity surface ({s['points']} points, grid "
            f"{e['grid_step_A']} Å) the potential runs from {s['min_e_per_A']:+.3f} to "
            f"{s['max_e_per_A']:+.3f} e/Å ({s['min_kcal_mol']:+.1f} to "
            f"{s['max_kcal_mol']:+.1f} kcal/mol per unit charge).",
        ]
    pic = e.get("files", {}).get("picture")
    if pic:
        out += ["", f"![Potential on the isodensity surface]({pic})"]
    m = e.get("dipole")
    if m:
        q = m["charge_e"] + 0.0 if abs(m["charge_e"]) >= 5e-4 else 0.0
        out += [
            "",
            f"Dipole moment of the molecule of {m['atoms'][0]} ({len(m['atoms'])} atoms, "
            f"net charge {q:+.3f} e, about its {m['origin']}): "
            f"{format_quantity(m['magnitude_D'], m.get('su_magnitude_D'))} D.",
        ]
    return out


def properties_section(result_dir) -> str | None:
    """Markdown for the report from ``result_dir/properties.json``, or None without one.

    Bond critical points with su, basin charges beside the Hansen–Coppens
    monopole charges, and the electrostatic properties (with the picture of the
    isodensity surface when ``chasm properties --esp`` made one), as far as the
    file holds them.
    """
    path = Path(result_dir) / "properties.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    blocks = [
        make(data[key])
        for key, make in (
            ("topology", _topology),
            ("basins", _basins),
            ("electrostatics", _electrostatics),
        )
        if key in data
    ]
    if not blocks:
        return None
    body = "\n\n".join("\n".join(b).strip() for b in blocks)
    return f"## Topology and properties\n\n{body}\n"

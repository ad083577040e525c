"""The report section built from properties.json."""

from __future__ import annotations

import json

from chasm.topology.report_section import properties_section

_DATA = {
    "topology": {
        "charge": {
            "counts_per_cell": {"n": 16, "b": 34, "r": 26, "c": 8},
            "morse_sum": 0,
            "morse_ok": True,
        },
        "bond_critical_points": [
            {
                "atoms": ["C1", "O1"],
                "distances_A": [0.482, 0.775],
                "values": {
                    "rho": 2.692,
                    "laplacian": -31.7,
                    "ellipticity": 0.08,
                    "G": 0.5,
                    "V": -1.2,
                    "H": -0.7,
                },
                "su": {"rho": 0.027, "laplacian": 1.8, "ellipticity": 0.01},
            }
        ],
        "notes": ["su from covariance.npz"],
    },
    "basins": {
        "method": "near-grid ascent",
        "grid_step_A": 0.1,
        "cell_integral": 64.0,
        "cell_electrons_model": 64.0,
        "atoms": [
            {
                "label": "C1",
                "charge": 1.2,
                "monopole_charge": 0.35,
                "volume_A3": 5.1,
                "spin_muB": None,
            }
        ],
        "notes": [],
    },
    "electrostatics": {
        "convention": "cell average 0",
        "nuclei": [
            {
                "label": "O1",
                "potential_e_per_A": -42.6,
                "Vzz_e_per_A3": 6.25,
                "Vzz_au": 0.926,
                "eta": 0.68,
            }
        ],
        "isovalue_au": 0.001,
        "grid_step_A": 0.25,
        "isodensity_surface": {
            "points": 10,
            "min_e_per_A": -0.48,
            "max_e_per_A": -0.39,
            "min_kcal_mol": -158.2,
            "max_kcal_mol": -129.7,
        },
        "files": {"picture": "esp_surface.png"},
        "dipole": {
            "atoms": ["O1"] * 8,
            "charge_e": 0.0,
            "origin": "centre of nuclear charge",
            "magnitude_D": 4.56,
            "su_magnitude_D": 0.21,
        },
    },
}


def test_section_holds_every_table(tmp_path):
    (tmp_path / "properties.json").write_text(json.dumps(_DATA))
    md = properties_section(tmp_path)
    assert md.startswith("## Topology and properties\n\n### Bond critical points")
    assert "| C1–O1 | 2.69(3) | -31.7(18) |" in md
    assert "n − b + r − c = 0 holds" in md
    assert "| C1 | +1.200 | +0.350 | 5.10 |" in md
    assert "![Potential on the isodensity surface](esp_surface.png)" in md
    assert "4.6(2) D" in md and "net charge +0.000 e" in md


def test_section_absent_or_partial(tmp_path):
    assert properties_section(tmp_path) is None
    (tmp_path / "properties.json").write_text("{not json")
    assert properties_section(tmp_path) is None
    (tmp_path / "properties.json").write_text(json.dumps({"basins": _DATA["basins"]}))
    md = properties_section(tmp_path)
    assert "### Atomic basins" in md and "Bond critical points" not in md

"""Build the table behind ``conventions = "cryspy"`` (issue 17, item 3).

Regenerate with (cryspy installed, it is a test-only dependency)::

    python tools/build_cryspy_conventions.py

It writes ``src/chasm/neutron/data/cryspy_conventions.json``: the constants
cryspy computes flipping ratios with, read from cryspy's own database so that
chasm can reproduce its ratios without importing it:

* ``b_fm``: the bound coherent scattering length of every element and isotope
  cryspy lists (its ``b_scat``, 10^-12 cm, times 10 to fm; real part, and the
  imaginary part where cryspy gives one). These are the values of V. F. Sears,
  Neutron News 3 (1992) 26 (Ti -3.438 fm, Ho 8.01 fm).
* ``form_factors``: the (A, a, B, b, C, c, D) coefficients of <j0> and <j2> of
  every ion cryspy lists (International Tables for Crystallography Vol. C,
  section 4.4.5, P. J. Brown); they are periodictable's to the fourth decimal,
  but not the same rounding of <j2> (up to 5e-4 apart).
* ``p_fm_per_muB``: 2.695 fm per Bohr magneton, the amplitude cryspy uses
  (0.2695 in 10^-12 cm), against chasm's 2.69542.
"""

from __future__ import annotations

import json
from pathlib import Path

import cryspy
import numpy as np
from cryspy.A_functions_base.database import DATABASE

OUT = Path(__file__).resolve().parents[1] / "src" / "chasm" / "neutron" / "data"


def _number(value) -> float | None:
    try:
        x = complex(value)
    except (TypeError, ValueError):
        return None
    return None if not np.isfinite(x) else x


def main() -> None:
    lengths = {}
    for (key, species), value in DATABASE["Isotopes"].items():
        if key != "b_scat" or species == "Dummy":
            continue
        b = _number(value)
        if b is None:
            continue
        b = 10.0 * b
        lengths[species] = [round(b.real, 6), round(b.imag, 6)] if b.imag else round(b.real, 6)
    ions: dict[str, dict] = {}
    for (key, symbol, charge), coeffs in DATABASE["Magnetic Form Factor, tabulated"].items():
        name = f"{symbol}{abs(int(charge))}{'-' if charge < 0 else '+'}"
        ions.setdefault(name, {})[key.split("_")[0]] = [float(c) for c in coeffs]
    out = {
        "provenance": {
            "generator": "tools/build_cryspy_conventions.py",
            "cryspy_version": cryspy.__version__,
            "citations": [
                "V. F. Sears, Neutron News 3 (1992) 26 (scattering lengths)",
                "International Tables for Crystallography Vol. C, 4.4.5 (P. J. Brown): <j0>, <j2>",
            ],
            "units": "b in fm; <jl> exponents in Angstrom^2 (s = sin(theta)/lambda)",
        },
        "p_fm_per_muB": 2.695,
        "b_fm": dict(sorted(lengths.items())),
        "form_factors": dict(sorted(ions.items())),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "cryspy_conventions.json").write_text(json.dumps(out, indent=0) + "\n")
    print(len(lengths), "scattering lengths,", len(ions), "ions")


if __name__ == "__main__":
    main()

"""Build chasm's table of default Slater radial functions for multipole deformation terms.

Regenerate with::

    pip install mendeleev
    python tools/build_slater_defaults.py

For every element H-Xe it writes ``src/chasm/density/data/slater_defaults.json``:
the radial powers n_l (l = 0..4) and the exponent zeta (bohr^-1) of the
density-normalised Slater functions R_l(r) ~ r^n_l exp(-zeta r).

Rules (CONVENTIONS.md):

* n_l: H, He (0,1,2,3,4); Li-Ne (2,2,2,3,4); Na-Ar and Sc-Zn (4,4,4,4,4);
  K, Ca, Ga-Kr (6,6,6,6,6). Not fixed by the conventions and chosen here: Rb-Xe
  (6,6,6,6,6) (the XD choice for the 5th period).
* zeta = 2 sum_v o_v xi_v / sum_v o_v over the valence orbitals of the ground
  configuration, xi = (Z - sigma)/n the single-zeta exponents of Clementi &
  Raimondi, J. Chem. Phys. 38, 2686 (1963) and Clementi, Raimondi & Reinhardt,
  J. Chem. Phys. 47, 1300 (1967) (screening constants as distributed in the
  ``mendeleev`` package). Valence: the outermost s (+ p) shell for main-group
  atoms; for transition metals the (n-1)d shell only (2 xi_d), as used for the
  d-electron deformation of 3d and 4d ions.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import mendeleev

OUT = Path(__file__).resolve().parents[1] / "src" / "chasm" / "density" / "data"


def radial_powers(z: int) -> list[int]:
    if z <= 2:
        return [0, 1, 2, 3, 4]
    if z <= 10:
        return [2, 2, 2, 3, 4]
    if z <= 18 or 21 <= z <= 30:
        return [4, 4, 4, 4, 4]
    return [6, 6, 6, 6, 6]


def valence_shells(el) -> list[tuple[int, str, int]]:
    conf = el.ec.conf  # {(n, 's'): occupation}
    nmax = max(n for n, _ in conf)
    if el.block == "d":
        shells = [(n, o, occ) for (n, o), occ in conf.items() if o == "d" and n == nmax - 1]
        if shells:
            return shells
    return [(n, o, occ) for (n, o), occ in conf.items() if n == nmax and o in "sp"]


def main() -> None:
    table = {}
    for z in range(1, 55):
        el = mendeleev.element(z)
        shells = valence_shells(el)
        num = sum(occ * el.zeff(n=n, o=o, method="clementi") / n for n, o, occ in shells)
        den = sum(occ for _, _, occ in shells)
        table[el.symbol] = {
            "Z": z,
            "n_l": radial_powers(z),
            "zeta_bohr": round(2.0 * num / den, 4),
            "valence": [f"{n}{o}{occ}" for n, o, occ in shells],
        }
    out = {
        "provenance": {
            "generator": "tools/build_slater_defaults.py",
            "mendeleev_version": mendeleev.__version__,
            "date": date.today().isoformat(),
            "citations": [
                "E. Clementi, D. L. Raimondi, J. Chem. Phys. 38, 2686 (1963)",
                "E. Clementi, D. L. Raimondi, W. P. Reinhardt, J. Chem. Phys. 47, 1300 (1967)",
            ],
            "units": "zeta_bohr in bohr^-1 (divide by a0 = 0.529177210903 Angstrom)",
        },
        "elements": table,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "slater_defaults.json").write_text(json.dumps(out, indent=1) + "\n")
    for s in ("H", "C", "N", "O", "F", "S", "Cu"):
        print(s, table[s])


if __name__ == "__main__":
    main()

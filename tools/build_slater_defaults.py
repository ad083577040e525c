"""Build chasm's table of default Slater radial functions for multipole deformation terms.

Regenerate with::

    pip install mendeleev
    python tools/build_slater_defaults.py

For every element H-Lr (Z = 1-103) it writes ``src/chasm/density/data/slater_defaults.json``:
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

Beyond Xe (Z = 55-103; chosen here, not fixed by the conventions):

* the deformation shell: La-Yb and Ac-No (the f block of chasm's databank,
  ``chasm.density.databank``) the open (n-2)f shell, 4f or 5f (the magnetic
  shell of rare-earth and actinide ions; La, Ac and Th have no f electron in
  the ground configuration and fall back to (n-1)d); Lu-Hg and Lr the (n-1)d
  shell, 5d or 6d (Lr, 7s2 7p1 in the ground configuration, falls back to
  7s7p); the other elements the outermost s (+ p) shell as above;
* n_l: 4f shells (6,6,6,6,6) (the density of a 4f Slater orbital r^3 e^-zr
  squared), 5d and 5f shells and the 6s/6p main-group elements
  (8,8,8,8,8); 6d and 7s/7p (10,10,10,10,10);
* xi: Clementi, Raimondi & Reinhardt (1967) screening constants for Z <= 86;
  for Fr-Lr (Z = 87-103), which those tables do not cover, Slater's rules
  (J. C. Slater, Phys. Rev. 36, 57 (1930), as implemented in ``mendeleev``)
  with Slater's effective principal quantum number n* (3.7 for n = 4, 4.0 for
  n = 5, 4.2 for n = 6, and 4.2 kept for n = 7): xi = (Z - s)/n*. Slater's
  rules also give the 5d exponent of La, whose 5d shell the 1967 tables (as
  ``mendeleev`` distributes them) leave out, and the 4f exponent of Ce, whose
  1967 value (Z_eff = 1.68, against 21.1 for Pr) would put a 4f deformation
  far outside the atom.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import mendeleev

OUT = Path(__file__).resolve().parents[1] / "src" / "chasm" / "density" / "data"


#: the f block of chasm's databank partition (La-Yb, Ac-No)
F_BLOCK = set(range(57, 71)) | set(range(89, 103))
#: d block beyond Xe (Lu-Hg, Lr)
D_BLOCK_HEAVY = set(range(71, 81)) | {103}
#: Clementi-Reinhardt shells not used: Ce 4f (Z_eff = 1.68, an unbound-looking 4f
#: of the 4f1 5d1 6s2 configuration, against 21.1 for Pr) -> Slater's rules
CLEMENTI_SKIPPED = {(58, "f")}
#: Slater's effective principal quantum numbers (n = 7 kept at 4.2)
N_STAR = {1: 1.0, 2: 2.0, 3: 3.0, 4: 3.7, 5: 4.0, 6: 4.2, 7: 4.2}


def radial_powers(z: int, shells: list[tuple[int, str, int]] | None = None) -> list[int]:
    if z > 54:
        n, o = shells[0][0], shells[0][1]
        if o == "f" and n == 4:
            return [6] * 5
        if (o in "df" and n == 5) or (o in "sp" and n == 6):
            return [8] * 5
        return [10] * 5
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


def heavy_valence_shells(el) -> list[tuple[int, str, int]]:
    """Deformation shell of Cs-Lr (module docstring)."""
    conf = el.ec.conf
    nmax = max(n for n, _ in conf)
    wanted = []
    if el.atomic_number in F_BLOCK:
        wanted = [(nmax - 2, "f"), (nmax - 1, "d")]
    elif el.atomic_number in D_BLOCK_HEAVY:
        wanted = [(nmax - 1, "d")]
    for key in wanted:
        if conf.get(key):
            return [(key[0], key[1], conf[key])]
    return [(n, o, occ) for (n, o), occ in conf.items() if n == nmax and o in "sp"]


def exponent(el, n: int, o: str) -> float:
    """Single-zeta exponent xi (bohr^-1) of shell n o (module docstring)."""
    if el.atomic_number <= 86 and (el.atomic_number, o) not in CLEMENTI_SKIPPED:
        zeff = el.zeff(n=n, o=o, method="clementi")
        if zeff is not None:
            return zeff / n
    return el.zeff(n=n, o=o, method="slater") / N_STAR[n]


def main() -> None:
    table = {}
    for z in range(1, 104):
        el = mendeleev.element(z)
        shells = valence_shells(el) if z <= 54 else heavy_valence_shells(el)
        num = sum(occ * exponent(el, n, o) for n, o, occ in shells)
        den = sum(occ for _, _, occ in shells)
        table[el.symbol] = {
            "Z": z,
            "n_l": radial_powers(z, shells),
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
                "J. C. Slater, Phys. Rev. 36, 57 (1930): Fr-Lr (Z = 87-103)",
            ],
            "rules": "tools/build_slater_defaults.py docstring",
            "units": "zeta_bohr in bohr^-1 (divide by a0 = 0.529177210903 Angstrom)",
        },
        "elements": table,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "slater_defaults.json").write_text(json.dumps(out, indent=1) + "\n")
    for s in ("H", "C", "N", "O", "F", "S", "Cu", "Gd", "Ho", "Yb", "U", "Lr"):
        print(s, table[s])


if __name__ == "__main__":
    main()

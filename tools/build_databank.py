"""Build chasm's spherical-atom wavefunction databank from the Koga RHF tables.

The Roothaan-Hartree-Fock Slater-type-orbital (STO) wavefunctions of Koga and
co-workers are distributed on PyPI inside the package ``qc-atomdb`` (file
``atomdb/data/slater_atom.tar.xz``). This script reads that archive and writes
the compact JSON databank ``src/chasm/density/data/koga_sto.json`` that
:mod:`chasm.density.databank` loads at run time. ``qc-atomdb`` is needed only
here, never by chasm itself.

Regenerate the databank with::

    pip install qc-atomdb && python tools/build_databank.py

(or ``pip install -e .[build-databank]``). Options: ``--archive PATH`` to read
another copy of ``slater_atom.tar.xz``, ``--output PATH`` to write elsewhere.

Sources
-------
* T. Koga, K. Kanayama, S. Watanabe, A. J. Thakkar, Int. J. Quantum Chem. 71,
  491 (1999): H-Xe neutral atoms, singly charged cations and anions.
* T. Koga, K. Kanayama, T. Watanabe, T. Imai, A. J. Thakkar, Theor. Chem. Acc.
  104, 411 (2000): Cs-Lr neutral atoms.

Layout of the output
--------------------
``{"provenance": {...}, "species": {key: record}}`` where ``key`` is the element
symbol followed by ``+`` or ``-`` for ions (``"Cu"``, ``"Cu+"``, ``"O-"``) and
``record`` holds ``Z``, ``charge``, ``configuration`` (as printed in the table),
``term``, ``energy`` (total energy, hartree) and ``orbitals``: a list of
``{"name": "3d", "l": 2, "occupation": 10.0, "energy": ..., "n": [...],
"alpha": [...], "coeff": [...]}``. ``n`` are the principal quantum numbers of the
normalised STOs N r^(n-1) exp(-alpha r), ``alpha`` the exponents in bohr^-1 and
``coeff`` the expansion coefficients, all exactly as printed in the tables.
Orbitals with zero occupation in the configuration are left out.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata
import importlib.resources
import io
import json
import re
import sys
import tarfile
from pathlib import Path

SYMBOLS = (
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn "
    "Ga Ge As Se Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce "
    "Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn "
    "Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No Lr"
).split()
Z_OF = {s.lower(): i + 1 for i, s in enumerate(SYMBOLS)}
L_OF = {"S": 0, "P": 1, "D": 2, "F": 3}

# Shell abbreviations of the configuration strings.
_SHELLS = {
    "K": {"1s": 2},
    "L": {"2s": 2, "2p": 6},
    "M": {"3s": 2, "3p": 6, "3d": 10},
}
_CORES: dict[str, dict[str, int]] = {"HE": {"1s": 2}}
_CORES["NE"] = {**_CORES["HE"], "2s": 2, "2p": 6}
_CORES["AR"] = {**_CORES["NE"], "3s": 2, "3p": 6}
_CORES["KR"] = {**_CORES["AR"], "3d": 10, "4s": 2, "4p": 6}
_CORES["XE"] = {**_CORES["KR"], "4d": 10, "5s": 2, "5p": 6}
_CORES["RN"] = {**_CORES["XE"], "4f": 14, "5d": 10, "6s": 2, "6p": 6}

DIRS = {"neutral": (".slater", 0), "cation": (".cat", 1), "anion": (".an", -1)}

CITATIONS = [
    "T. Koga, K. Kanayama, S. Watanabe, A. J. Thakkar, Int. J. Quantum Chem. 71, 491 "
    "(1999): H-Xe neutral atoms, singly charged cations and anions",
    "T. Koga, K. Kanayama, T. Watanabe, T. Imai, A. J. Thakkar, Theor. Chem. Acc. 104, "
    "411 (2000): Cs-Lr neutral atoms",
]


class SkipFile(Exception):
    """A file of the archive that holds no usable wavefunction."""


def parse_configuration(text: str) -> dict[str, int]:
    """Occupations {"1s": 2, "3d": 10, ...} from e.g. ``K(2)L(8)3S(2)3P(6)4S(1)3D(10)``.

    Understands the shell letters K, L, M (complete shells), noble-gas cores
    [HE] ... [RN] and explicit sub-shells nL(k). Zero occupations are kept.
    """
    occ: dict[str, int] = {}
    pos = 0
    token = re.compile(r"\[([A-Z]{2})\]|([KLM])\((\d+)\)|(\d+)([SPDF])\((\d+)\)")
    for m in token.finditer(text):
        if m.start() != pos:
            raise ValueError(f"cannot read configuration {text!r} at {text[pos:]!r}")
        pos = m.end()
        if m.group(1):
            core = _CORES.get(m.group(1))
            if core is None:
                raise ValueError(f"unknown core [{m.group(1)}] in {text!r}")
            occ.update(core)
        elif m.group(2):
            shell = _SHELLS[m.group(2)]
            if int(m.group(3)) != sum(shell.values()):
                raise ValueError(f"incomplete shell {m.group(0)} in {text!r}")
            occ.update(shell)
        else:
            occ[f"{m.group(4)}{m.group(5).lower()}"] = int(m.group(6))
    if pos != len(text):
        raise ValueError(f"cannot read configuration {text!r} at {text[pos:]!r}")
    return occ


def _numbers(line: str, count: int) -> list[str]:
    """Numeric fields of a table line, as printed (whitespace separated)."""
    fields = line.split()
    if len(fields) != count:
        raise ValueError(f"expected {count} fields, found {len(fields)}: {line!r}")
    for f in fields:
        float(f)  # validate
    return fields


def parse_species(text: str, path: str, charge: int) -> tuple[str, dict]:
    """Parse one table file into (key, record)."""
    lines = [ln.rstrip() for ln in text.replace("\r", "").split("\n")]
    lines = [ln for ln in lines if ln.strip()]
    head = re.match(r"\s*([A-Z]+)([+-]?)\s+(\S+),\s*(\S+)\s*$", lines[0])
    if head is None:
        raise SkipFile(f"{path}: unrecognised header line {lines[0]!r}")
    name, sign, config, term = head.groups()
    symbol_lc = Path(path).name.split(".")[0]
    if symbol_lc not in Z_OF:
        raise SkipFile(f"{path}: file name is not an element symbol")
    Z = Z_OF[symbol_lc]
    symbol = SYMBOLS[Z - 1]
    expect_sign = {0: "", 1: "+", -1: "-"}[charge]
    if sign != expect_sign:
        raise ValueError(f"{path}: header {lines[0].strip()!r} disagrees with charge {charge}")
    occ = parse_configuration(config)
    if sum(occ.values()) != Z - charge:
        raise ValueError(
            f"{path}: configuration {config} has {sum(occ.values())} electrons, "
            f"expected {Z - charge}"
        )
    energy = None
    i = 1
    while i < len(lines) and "ORBITAL ENERGIES AND EXPANSION COEFFICIENTS" not in lines[i]:
        ln = lines[i].strip()
        m = re.match(r"CHARGE\s*=\s*(\S+)", ln)
        if m and abs(float(m.group(1)) - Z) > 1e-9:
            raise ValueError(f"{path}: nuclear charge {m.group(1)} is not Z = {Z}")
        m = re.match(r"E\s*=\s*(\S+)", ln)
        if m:
            energy = m.group(1)
        i += 1
    if i == len(lines):
        raise SkipFile(f"{path}: no coefficient table")
    i += 1
    orbitals = []
    seen: set[str] = set()
    block_head = re.compile(r"^\s*([SPDF])((?:\s+\d+[SPDF])+)\s*$")
    while i < len(lines):
        m = block_head.match(lines[i])
        if m is None:
            raise ValueError(f"{path}: expected an l-block header, found {lines[i]!r}")
        l = L_OF[m.group(1)]
        names = [t.lower() for t in m.group(2).split()]
        if any(L_OF[t[-1].upper()] != l for t in names):
            raise ValueError(f"{path}: orbital names {names} do not match block {m.group(1)}")
        i += 1
        if not lines[i].strip().startswith("BASIS/ORB.ENERGY"):
            raise ValueError(f"{path}: expected BASIS/ORB.ENERGY, found {lines[i]!r}")
        energies = _numbers(lines[i].split("BASIS/ORB.ENERGY", 1)[1], len(names))
        i += 1
        if lines[i].strip().startswith("CUSP"):
            i += 1
        ns: list[int] = []
        alphas: list[str] = []
        coeffs: list[list[str]] = []
        basis = re.compile(r"^\s*(\d+)([SPDF])\s+(.*)$")
        while i < len(lines) and (b := basis.match(lines[i])):
            if L_OF[b.group(2)] != l:
                raise ValueError(f"{path}: basis function {b.group(0)!r} in block l={l}")
            fields = _numbers(b.group(3), 1 + len(names))
            ns.append(int(b.group(1)))
            alphas.append(fields[0])
            coeffs.append(fields[1:])
            i += 1
        if not ns:
            raise ValueError(f"{path}: empty basis in block {m.group(1)}")
        for k, orb in enumerate(names):
            if orb in seen:
                raise ValueError(f"{path}: orbital {orb} listed twice")
            seen.add(orb)
            o = occ.get(orb)
            if o is None:
                raise ValueError(f"{path}: orbital {orb} not in configuration {config}")
            if o == 0:
                continue
            orbitals.append(
                {
                    "name": orb,
                    "l": l,
                    "occupation": float(o),
                    "energy": float(energies[k]),
                    "n": ns,
                    "alpha": [float(a) for a in alphas],
                    "coeff": [float(c[k]) for c in coeffs],
                }
            )
    missing = [o for o, k in occ.items() if k > 0 and o not in seen]
    if missing:
        raise ValueError(f"{path}: occupied orbitals {missing} have no coefficients")
    key = symbol + expect_sign
    record = {
        "Z": Z,
        "charge": charge,
        "configuration": config,
        "term": term,
        "energy": None if energy is None else float(energy),
        "orbitals": orbitals,
    }
    return key, record


def default_archive() -> Path:
    """Path of slater_atom.tar.xz inside the installed qc-atomdb package."""
    try:
        root = importlib.resources.files("atomdb")
    except ModuleNotFoundError as exc:  # pragma: no cover - build-time helper
        raise SystemExit("qc-atomdb is not installed: pip install qc-atomdb") from exc
    return Path(str(root / "data" / "slater_atom.tar.xz"))


def build(archive: Path) -> dict:
    """Read the archive and return the databank as a dict."""
    species: dict[str, dict] = {}
    skipped: list[dict[str, str]] = []
    with tarfile.open(archive) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.name)
        for member in members:
            parts = member.name.split("/")
            folder = parts[0] if len(parts) == 2 else None
            if folder not in DIRS or not member.name.endswith(DIRS[folder][0]):
                skipped.append({"file": member.name, "reason": "not a wavefunction table"})
                continue
            raw = tar.extractfile(member).read()
            if len(raw) > 262 and raw[257:262] == b"ustar":
                with tarfile.open(fileobj=io.BytesIO(raw)) as inner:
                    inner_names = sorted(m.name for m in inner.getmembers() if m.isfile())
                own = Path(member.name).name
                note = "" if own in inner_names else f" (none of them is {own})"
                skipped.append(
                    {
                        "file": member.name,
                        "reason": f"is itself a tar archive of {len(inner_names)} other table "
                        f"files of the same folder{note}, not the table of this species",
                    }
                )
                continue
            try:
                key, record = parse_species(raw.decode("ascii"), member.name, DIRS[folder][1])
            except SkipFile as exc:
                skipped.append({"file": member.name, "reason": str(exc)})
                continue
            if key in species:
                raise ValueError(f"{member.name}: species {key} appears twice")
            record["file"] = member.name
            species[key] = record
    for s in skipped:
        print(f"warning: skipped {s['file']}: {s['reason']}", file=sys.stderr)
    rank = {0: 0, 1: 1, -1: 2}
    order = sorted(species, key=lambda k: (species[k]["Z"], rank[species[k]["charge"]]))
    try:
        version = importlib.metadata.version("qc-atomdb")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover
        version = "unknown"
    provenance = {
        "source": f"PyPI package qc-atomdb {version}",
        "file": "atomdb/data/slater_atom.tar.xz",
        "generated": _dt.date.today().isoformat(),
        "generator": "tools/build_databank.py",
        "citations": CITATIONS,
        "units": "alpha in bohr^-1 (a0 = 0.529177210903 Angstrom); energies in hartree",
        "basis": "R(r) = sum_p coeff_p N_p r^(n_p-1) exp(-alpha_p r), "
        "N_p = (2 alpha_p)^(n_p+1/2) / sqrt((2 n_p)!)",
        "skipped": skipped,
        "count": len(species),
    }
    return {"provenance": provenance, "species": {k: species[k] for k in order}}


def dump(data: dict) -> str:
    """Compact JSON with one species per line (readable diffs)."""
    out = ['{"provenance": ' + json.dumps(data["provenance"], indent=1) + ',\n"species": {']
    items = list(data["species"].items())
    for j, (key, rec) in enumerate(items):
        sep = "," if j < len(items) - 1 else ""
        out.append(json.dumps(key) + ": " + json.dumps(rec, separators=(",", ":")) + sep)
    out.append("}}\n")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--archive",
        type=Path,
        default=None,
        help="slater_atom.tar.xz (default: the one in qc-atomdb)",
    )
    here = Path(__file__).resolve().parent.parent
    parser.add_argument(
        "--output", type=Path, default=here / "src" / "chasm" / "density" / "data" / "koga_sto.json"
    )
    args = parser.parse_args(argv)
    archive = args.archive or default_archive()
    data = build(archive)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    text = dump(data)
    json.loads(text)  # round-trip check
    args.output.write_text(text)
    print(f"wrote {len(data['species'])} species to {args.output} ({len(text) / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Long fuzz of chasm's file readers on mutated real files (issue 15).

Mutates the real files of ``../shared/data`` (CIF, HKLF 4 fixed and free, XD
written from a real HKLF 4 file, rcif, and a rhoCIF written by chasm from a
real CIF) and feeds them

- in-process to the reader (most cases, with a SIGALRM watchdog for hangs),
- and, for a sample, through the command line in a subprocess with a timeout
  (``chasm sf`` for structures and reflection files, ``chasm init --pnd`` for
  rcif files).

Counted per format: cases, tracebacks (any exception but InputError, or a
Python traceback on the command line), hangs, silent acceptances (a returned
object with a value outside the documented ranges), wrong exit codes (not 0
or 2, or 0 where the reader refused the file), refusals naming file and line,
refusals naming the file only. Special files (FIFO, directory, symbolic-link
loop, chmod 000, empty, binary) are a format of their own.

Usage (from the repository root)::

    PYTHONPATH=src /work/venv/bin/python validation/fuzz_inputs.py \\
        --cases 2500 --cli-every 15 --seed 1 --out docs/fuzz.md

The table is printed and, with ``--out``, written as Markdown.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from chasm.crystal.cif import read_cif
from chasm.crystal.structure import Crystal, cell_problem
from chasm.density.model import HansenCoppensAtom, SphericalAtom
from chasm.errors import InputError
from chasm.io.rhocif import read_rhocif, rhocif_text
from chasm.io.shelx_hkl import (
    MAX_INDEX,
    Reflections,
    hklf4_text,
    read_hkl4,
    read_reflections,
    xd_hkl_text,
)
from chasm.neutron.rcif import PndFile, read_rcif

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / ".." / "shared" / "data").resolve()
CU_DIMER = ROOT / "src" / "chasm" / "examples" / "seed_cu_dimer.cif"
UREA_EXAMPLE = ROOT / "src" / "chasm" / "examples" / "urea.cif"

BAD_NUMBERS = [
    "nan",
    "NaN",
    "inf",
    "-inf",
    "1e308",
    "-1e308",
    "1e999",
    "-1e999",
    "1e-400",
    "99999999999999999999999",
    "9223372036854775808",
    "2147483648",
    "9999",
    "1" * 400,
    "1/0",
    "0",
    "-1",
    "-0",
    "?",
    ".",
    "",
    "1.5(99999999999)",
    "0x10",
    "1_0",
    "1e5",
    "-5",
    "7",
]
BAD_BYTES = [
    b"\x00",
    b"\xe9",
    b"\xff\xfe",
    b"\r",
    b"\t",
    b"\xef\xbb\xbf",
    b"'",
    b";",
    b"#",
    b"\x85",
]
NUMBER = re.compile(rb"(?<![\w.])[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?(\(\d+\))?(?![\w.])")

TIMEOUT = 60  # s per case (hang)


# ----------------------------------------------------------------------------- sources
def _crop(data: bytes, max_lines: int) -> bytes:
    return b"\n".join(data.split(b"\n")[:max_lines]) + b"\n"


def _rhocif_source() -> bytes:
    crystal = read_cif(DATA / "xray" / "urea" / "iam.cif")
    models = []
    for atom in crystal.atoms:
        if atom.element in ("C", "O", "N"):
            lmax = 2
            models.append(
                HansenCoppensAtom(
                    atom.element, 4.0, lmax=lmax, plm=np.linspace(-0.05, 0.05, 9), kappa=0.99
                )
            )
        else:
            models.append(SphericalAtom(atom.element))
    return rhocif_text(crystal, models).encode()


def sources() -> dict[str, list[tuple[str, bytes]]]:
    """Per format: (file name, bytes) of the unmutated real files."""
    urea_hkl = (DATA / "xray" / "urea" / "iam.hkl").read_bytes()
    ala_hkl = (DATA / "xray" / "l-alanine" / "iam.hkl").read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        urea = read_hkl4(DATA / "xray" / "urea" / "iam.hkl")
    small = urea.subset(slice(0, 300))
    cifs = [DATA / "xray" / "urea" / "iam.cif", DATA / "xray" / "l-alanine" / "iam.cif"]
    cifs += sorted((DATA / "corpus").glob("*.cif"))
    return {
        "CIF": [(p.name, p.read_bytes()) for p in cifs],
        "HKLF 4 fixed": [("urea.hkl", _crop(urea_hkl, 400)), ("ala.hkl", _crop(ala_hkl, 400))],
        "HKLF 4 free": [
            ("free.hkl", hklf4_text(small, "free").encode()),
            ("ref.hkl", _crop((DATA / "benchmark" / "ref.hkl").read_bytes(), 400)),
        ],
        "XD hkl": [
            ("xd.hkl", xd_hkl_text(small, "urea", "F^2").encode()),
            ("xdf.hkl", xd_hkl_text(small.subset(small.f2 > 0), "urea", "F").encode()),
        ],
        "rcif": [(p.name, p.read_bytes()) for p in sorted((DATA / "pnd").glob("*/*.rcif"))],
        "rhoCIF": [("model.cif", _rhocif_source())],
    }


# ----------------------------------------------------------------------------- mutations
def mutate(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    """One to three mutations; returns (bytes, description)."""
    done = []
    for _ in range(rng.randint(1, 3)):
        kind = rng.choice(["number"] * 4 + ["truncate", "swap", "dup", "bytes", "crlf", "enc"])
        if kind == "number":
            spans = [m.span() for m in NUMBER.finditer(data)]
            if spans:
                a, b = rng.choice(spans)
                new = rng.choice(BAD_NUMBERS)
                data = data[:a] + new.encode() + data[b:]
                done.append(f"number->{new[:12]}")
        elif kind == "truncate":
            at = rng.randint(0, len(data))
            data = data[:at]
            done.append(f"truncate@{at}")
        elif kind in ("swap", "dup"):
            lines = data.split(b"\n")
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            if kind == "swap":
                lines[i], lines[j] = lines[j], lines[i]
            else:
                lines.insert(j, lines[i])
            data = b"\n".join(lines)
            done.append(f"{kind} {i},{j}")
        elif kind == "bytes":
            at = rng.randint(0, len(data))
            new = rng.choice(BAD_BYTES)
            data = data[:at] + new + data[at:]
            done.append(f"bytes {new!r}@{at}")
        elif kind == "crlf":
            data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            done.append("crlf")
        else:
            encoding = rng.choice(["utf-16", "latin-1", "utf-16-le"])
            text = data.decode("utf-8", errors="replace").replace("\ufffd", "?")
            data = text.encode(encoding, errors="replace")
            done.append(encoding)
    return data, "; ".join(done)


# ----------------------------------------------------------------------------- range checks
def _finite(*values) -> bool:
    return all(np.all(np.isfinite(np.asarray(v, dtype=float))) for v in values if v is not None)


def _crystal_violations(c: Crystal, result: bool = False) -> list[str]:
    """Values outside read_cif's ranges (``result``: chasm's rhoCIF, ADPs/occupancy finite)."""
    out = []
    if cell_problem(c.cell.parameters) is not None:
        out.append("cell")
    if c.wavelength is not None and not 0 < c.wavelength <= 100:
        out.append(f"wavelength {c.wavelength}")
    for a in c.atoms:
        if not (_finite(a.xyz) and np.all(np.abs(a.xyz) <= 100)):
            out.append(f"{a.label} xyz")
        if result:
            if not _finite(a.occupancy, a.uiso, a.u_aniso):
                out.append(f"{a.label} occupancy/ADP not finite")
            continue
        if not -0.002 <= a.occupancy <= 1.002:
            out.append(f"{a.label} occupancy {a.occupancy}")
        if a.u_aniso is None and not 0 < a.uiso <= 10:
            out.append(f"{a.label} Uiso {a.uiso}")
        if a.u_aniso is not None and not (_finite(a.u_aniso) and np.all(np.abs(a.u_aniso) <= 10)):
            out.append(f"{a.label} Uij")
    for el, (fp, fpp) in c.dispersion.items():
        if not (abs(fp) <= 100 and abs(fpp) <= 100):
            out.append(f"f' {el}")
    return out


def _reflection_violations(r: Reflections) -> list[str]:
    out = []
    if not np.all(np.abs(r.hkl) <= MAX_INDEX):
        out.append("index")
    if r.f2 is not None and not _finite(r.f2):
        out.append("F2")
    if r.sigma is not None and not (_finite(r.sigma) and np.all(r.sigma > 0)):
        out.append("sigma")
    return out


def _pnd_violations(p: PndFile) -> list[str]:
    out = []
    for c in p.crystals:
        if cell_problem(c.cell) is not None:
            out.append("cell")
        for a in c.atoms:
            if not (np.all(np.abs(a.xyz) <= 100) and -0.002 <= a.occupancy <= 1.002):
                out.append(f"{a.label} xyz/occ")
            if not 0 <= a.uiso <= 10:
                out.append(f"{a.label} Uiso")
    for d in p.datasets:
        if not 0 < d.wavelength <= 100:
            out.append("wavelength")
        if not 0 < abs(d.field) <= 100:
            out.append(f"field {d.field}")
        if not 0 < abs(d.polarisation) <= 1:
            out.append(f"P {d.polarisation}")
        if not 0 <= d.efficiency <= 1:
            out.append(f"e {d.efficiency}")
        if not (_finite(d.fr, d.fr_sigma) and np.all(d.fr > 0) and np.all(d.fr_sigma > 0)):
            out.append("R/sigma")
        if not (np.all(np.abs(d.hkl) <= MAX_INDEX) and d.mosaicity >= 0 and d.radius >= 0):
            out.append("hkl/extinction")
        if not (_finite(d.ub) and abs(np.linalg.det(d.ub)) > 0):
            out.append("UB")
    for d in p.intensity_sets:
        if not (_finite(d.intensity, d.sigma) and np.all(d.sigma > 0) and 0 < d.wavelength <= 100):
            out.append("intensity set")
    return out


def _rhocif_read(path):
    crystal, models = read_rhocif(path)
    return crystal, models


def _rhocif_violations(result) -> list[str]:
    crystal, models = result
    out = _crystal_violations(crystal, result=True)
    for m in models:
        if isinstance(m, HansenCoppensAtom):
            if not (0 < m.kappa <= 100 and _finite(m.pv, m.plm, m.kappa_prime)):
                out.append("multipole parameters")
    return out


READERS = {
    "CIF": (read_cif, _crystal_violations),
    "HKLF 4 fixed": (lambda p: read_reflections(p), _reflection_violations),
    "HKLF 4 free": (lambda p: read_reflections(p), _reflection_violations),
    "XD hkl": (lambda p: read_reflections(p), _reflection_violations),
    "rcif": (read_rcif, _pnd_violations),
    "rhoCIF": (_rhocif_read, _rhocif_violations),
}


# ----------------------------------------------------------------------------- running
class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def run_in_process(fmt: str, path: Path) -> tuple[str, str]:
    """(outcome, detail): ok, silent, refused-line, refused-file, traceback, hang."""
    reader, violations = READERS[fmt]
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIMEOUT)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = reader(path)
        bad = violations(result)
        return ("silent", ", ".join(bad[:3])) if bad else ("ok", "")
    except InputError as exc:
        if exc.path != str(path):
            return "refused-nofile", str(exc)[:200]
        return ("refused-line" if exc.line is not None else "refused-file"), str(exc)[:200]
    except _Hang:
        return "hang", ""
    except Exception as exc:  # noqa: BLE001 - counting what escapes is the point
        tb = traceback.extract_tb(exc.__traceback__)[-1]
        return "traceback", f"{type(exc).__name__}: {str(exc)[:120]} at {tb.filename}:{tb.lineno}"
    finally:
        signal.alarm(0)


def _cli_argv(fmt: str, path: Path, work: Path) -> list[str]:
    if fmt in ("CIF", "rhoCIF"):
        return ["sf", str(path), str(work / "small.hkl"), "--out", str(work / "f.csv")]
    if fmt == "rcif":
        return ["init", str(CU_DIMER), "--pnd", str(path), "-o", str(work / "i.toml"), "--force"]
    return ["sf", str(UREA_EXAMPLE), str(path), "--out", str(work / "f.csv")]


def run_cli(fmt: str, path: Path, work: Path) -> tuple[str, str]:
    """(outcome, detail) of the command line: ok, error2, traceback, wrong-exit, hang."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    argv = [sys.executable, "-m", "chasm.cli", *_cli_argv(fmt, path, work)]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=TIMEOUT, env=env, errors="replace"
        )
    except subprocess.TimeoutExpired:
        return "hang", ""
    errors = [line for line in done.stderr.splitlines() if line.startswith("chasm: error:")]
    if "Traceback" in done.stderr:
        return "traceback", done.stderr.strip().splitlines()[-1][:200]
    if done.returncode == 2 and len(errors) == 1:
        return "error2", errors[0][:200]
    if done.returncode == 0:
        return "ok", ""
    return "wrong-exit", f"exit {done.returncode}: {done.stderr.strip()[-200:]}"


def special_files(work: Path) -> list[tuple[str, Path]]:
    """Special files, each read as every format."""
    out = []
    fifo = work / "fifo"
    if hasattr(os, "mkfifo"):
        os.mkfifo(fifo)
        out.append(("FIFO", fifo))
    loop = work / "loop"
    loop.symlink_to(loop)
    out.append(("symlink loop", loop))
    folder = work / "folder"
    folder.mkdir()
    out.append(("directory", folder))
    locked = work / "locked"
    locked.write_text("x")
    locked.chmod(0)
    out.append(("chmod 000", locked))
    empty = work / "empty"
    empty.write_bytes(b"")
    out.append(("empty", empty))
    binary = work / "binary"
    binary.write_bytes(bytes(range(256)) * 8)
    out.append(("binary", binary))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2500, help="mutated files in all")
    parser.add_argument("--cli-every", type=int, default=15, help="every n-th case via the CLI")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", help="write the Markdown table here")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"no data at {DATA}", file=sys.stderr)
        return 1
    rng = random.Random(args.seed)
    srcs = sources()
    formats = list(srcs)
    counts: dict[str, Counter] = defaultdict(Counter)
    examples: dict[tuple[str, str], str] = {}
    file_only: dict[str, Counter] = defaultdict(Counter)
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="chasm-fuzz-") as tmp:
        work = Path(tmp)
        (work / "small.hkl").write_text(
            "   1   0   0   10.00    1.00\n   0   1   1    5.00    0.50\n"
        )
        for case in range(args.cases):
            fmt = formats[case % len(formats)]
            name, data = rng.choice(srcs[fmt])
            mutated, what = mutate(rng, data)
            path = work / f"case{case % 7}_{name}"
            path.write_bytes(mutated)
            outcome, detail = run_in_process(fmt, path)
            counts[fmt]["cases"] += 1
            counts[fmt][outcome] += 1
            if outcome in ("traceback", "silent", "hang", "refused-nofile"):
                examples.setdefault((fmt, outcome + detail[:60]), f"{name} [{what}]: {detail}")
            if outcome == "refused-file":
                file_only[fmt][re.sub(r"\d+", "#", detail.split(": ", 1)[-1])[:70]] += 1
            if (case // len(formats)) % args.cli_every == 0:
                cli, cdetail = run_cli(fmt, path, work)
                counts[fmt]["cli"] += 1
                counts[fmt]["cli-" + cli] += 1
                # sf reads only the indices of a reflection file and only the structure of a
                # rhoCIF, so a refusal in-process and exit 0 there are consistent
                same = fmt in ("CIF", "rcif")
                inconsistent = same and cli == "ok" and outcome.startswith("refused")
                if cli in ("traceback", "wrong-exit", "hang") or inconsistent:
                    counts[fmt]["cli-bad"] += 1
                    examples.setdefault((fmt, "cli" + cdetail[:60]), f"{name} [{what}]: {cdetail}")
            if (case + 1) % 250 == 0:
                print(f"{case + 1} cases, {time.time() - start:.0f} s", file=sys.stderr, flush=True)
        for label, path in special_files(work):
            for fmt in formats:
                outcome, detail = run_in_process(fmt, path)
                key = "special files"
                counts[key]["cases"] += 1
                counts[key][outcome] += 1
                if outcome not in ("refused-file", "refused-line", "ok"):
                    examples.setdefault((key, label + fmt), f"{label} as {fmt}: {outcome} {detail}")
                if fmt in ("CIF", "HKLF 4 fixed", "rcif"):
                    cli, cdetail = run_cli(fmt, path, work)
                    counts[key]["cli"] += 1
                    counts[key]["cli-" + cli] += 1
                    if cli in ("traceback", "wrong-exit", "hang"):
                        counts[key]["cli-bad"] += 1
                        examples.setdefault((key, "cli" + label), f"{label}: {cdetail}")
    elapsed = time.time() - start
    table = _table(counts, examples, args, elapsed, file_only)
    print(table)
    if args.out:
        Path(args.out).write_text(table)
    bad = sum(c["traceback"] + c["hang"] + c["silent"] + c["cli-bad"] for c in counts.values())
    return 1 if bad else 0


def _table(counts, examples, args, elapsed, file_only) -> str:
    head = (
        "| format | cases | tracebacks | hangs | silently accepted | refused, file + line "
        "| refused, file only | accepted (in range) | CLI runs | CLI exit 2 | CLI exit 0 "
        "| CLI wrong exit / traceback / hang |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    total = Counter()
    for fmt, c in counts.items():
        total.update(c)
        rows.append(_row(fmt, c))
    rows.append(_row("**all**", total))
    notes = "\n".join(f"- {fmt}: {text}" for (fmt, _), text in sorted(examples.items()))
    why = "\n".join(
        f"- {fmt}: " + "; ".join(f"{n} × `{m}`" for m, n in c.most_common(6))
        for fmt, c in file_only.items()
    )
    return (
        f"Run: `PYTHONPATH=src python validation/fuzz_inputs.py --cases {args.cases} "
        f"--cli-every {args.cli_every} --seed {args.seed}` ({elapsed:.0f} s).\n\n"
        + head
        + "\n".join(rows)
        + "\n\n"
        + (f"Cases that failed:\n\n{notes}\n" if notes else "No case failed.\n")
        + (f"\nRefusals without a line (most frequent messages):\n\n{why}\n" if why else "")
    )


def _row(fmt: str, c: Counter) -> str:
    cli_bad = c["cli-bad"]
    return (
        f"| {fmt} | {c['cases']} | {c['traceback']} | {c['hang']} | {c['silent']} "
        f"| {c['refused-line']} | {c['refused-file'] + c['refused-nofile']} | {c['ok']} "
        f"| {c['cli']} | {c['cli-error2']} | {c['cli-ok']} | {cli_bad} |"
    )


if __name__ == "__main__":
    sys.exit(main())

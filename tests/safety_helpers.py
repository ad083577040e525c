"""Small projects on disk for the bad-input and data-safety tests (no shared data needed)."""

from __future__ import annotations

import itertools
from importlib.resources import files
from pathlib import Path

from chasm.crystal.cif import read_cif
from chasm.io.shelx_hkl import systematic_absences

#: A scale-only refinement of urea; ``{cif}``, ``{hkl}`` and ``{output}`` are filled in.
PROJECT = """title = "urea, scale only"
output = "{output}"

[structure]
cif = "{cif}"

[model]
default = "iam"

[[datasets]]
name = "xray"
kind = "xray"
file = "{hkl}"

[refinement]
max_cycles = 5

[[stages]]
name = "scale"
free = ["*.scale"]
"""


def hkl_text(cif: Path, f2=lambda h: 100.0 / (1 + sum(abs(x) for x in h)), sigma=1.0) -> str:
    """HKLF 4 lines of the non-absent reflections with 0 <= h, k, l <= 3 (free format)."""
    crystal = read_cif(cif)
    hkl = [h for h in itertools.product(range(4), repeat=3) if any(h)]
    keep = ~systematic_absences(hkl, crystal)
    rows = [h for h, k in zip(hkl, keep, strict=True) if k]
    return "".join(f"{h[0]} {h[1]} {h[2]} {f2(h):.4f} {sigma}\n" for h in rows)


def urea_project(
    folder: Path,
    cif: str = "urea.cif",
    hkl: str = "urea.hkl",
    output: str = "out",
    text: str | None = None,
) -> Path:
    """Write urea.cif, its reflections and a project file into ``folder``; return the project."""
    folder.mkdir(parents=True, exist_ok=True)
    source = files("chasm.examples").joinpath("urea.cif").read_text(encoding="utf-8")
    (folder / cif).write_text(source, encoding="utf-8")
    (folder / hkl).write_text(hkl_text(folder / cif), encoding="utf-8")
    project = folder / "project.toml"
    project.write_text(
        text if text is not None else PROJECT.format(cif=cif, hkl=hkl, output=output),
        encoding="utf-8",
    )
    return project


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every regular file under ``folder`` (relative name -> bytes)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }

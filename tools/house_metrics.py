"""Structure figures of src/chasm (issue 18): package lines, model-type switches, private imports.

Run from the repository root: ``python tools/house_metrics.py [SRC] [--by-file]`` (SRC:
a ``src/chasm`` folder, default this checkout's; another one, e.g. a ``git archive`` of
an older commit, gives the figures before; ``--by-file`` also lists where the switches
and private imports are). Prints

- the lines of every package (and of the top-level modules, as ``chasm``);
- the number of ``isinstance`` calls whose class argument names a model type
  (the atom and site classes of density/, neutron/ and refine/);
- the number of imports of a private name (``_x``) from another chasm module.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "chasm"

#: The model types whose isinstance switches are counted.
MODEL_TYPES = {
    "SphericalAtom",
    "HansenCoppensAtom",
    "NuclearAtom",
    "SplitAtom",
    "MagneticSite",
    "DOrbitalSite",
    "SpinSite",
    "_Placeholder",
}


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
    }


def metrics(src: Path = SRC) -> dict:
    """Lines per package, model-type isinstance switches and cross-module private imports."""
    lines: Counter[str] = Counter()
    switches: Counter[str] = Counter()
    private: Counter[str] = Counter()
    for path in sorted(src.rglob("*.py")):
        rel = path.relative_to(src)
        package = rel.parts[0] if len(rel.parts) > 1 else "chasm (top level)"
        text = path.read_text(encoding="utf-8")
        lines[package] += len(text.splitlines())
        module = ".".join(("chasm", *rel.with_suffix("").parts)).removesuffix(".__init__")
        for node in ast.walk(ast.parse(text)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "isinstance"
                and len(node.args) == 2
                and _names(node.args[1]) & MODEL_TYPES
            ):
                switches[str(rel)] += 1
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.startswith("chasm") and node.module != module:
                    private[str(rel)] += sum(
                        a.name.startswith("_") and not a.name.startswith("__") for a in node.names
                    )
    return {
        "lines": dict(sorted(lines.items())),
        "switches": sum(switches.values()),
        "private": sum(private.values()),
        "switches_by_file": {k: v for k, v in switches.most_common() if v},
        "private_by_file": {k: v for k, v in private.most_common() if v},
    }


def main() -> None:
    import sys

    args = [a for a in sys.argv[1:] if a != "--by-file"]
    m = metrics(Path(args[0]) if args else SRC)
    for package, n in m["lines"].items():
        print(f"{package:<20s} {n:6d}")
    print(f"{'total':<20s} {sum(m['lines'].values()):6d}")
    print(f"isinstance switches on model types: {m['switches']}")
    print(f"imports of private names from other chasm modules: {m['private']}")
    if "--by-file" in sys.argv:
        for title, key in (
            ("switches", "switches_by_file"),
            ("private imports", "private_by_file"),
        ):
            print(f"\n{title} by file:")
            for path, n in m[key].items():
                print(f"  {n:4d}  {path}")


if __name__ == "__main__":
    main()

"""The import contract of src/chasm: layers that hold (issue 18).

Every chasm module belongs to one layer of :data:`LAYERS` (lowest first); a
module may import from its own layer and from the layers below, never from a
layer above. Every import counts, also those inside functions (a lazy import
is still a dependency), and relative imports are resolved. The facade
``chasm`` (src/chasm/__init__.py) resolves its names lazily and is not a
layer; ``from chasm import __version__`` counts as the base layer.

Besides the order, the modules' top-level imports must not form a cycle.

The contract is checked by walking the AST of every file, so it needs no
extra tool and runs in a few seconds.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "chasm"

#: Lowest first. A module belongs to the layer of its longest matching prefix.
LAYERS: list[tuple[str, ...]] = [
    # base: errors, atomic writes, text input, number formatting, locks, progress bars, BLAS threads
    (
        "chasm.errors",
        "chasm.progress",
        "chasm.io.atomic",
        "chasm.io.textio",
        "chasm.io.su_format",
        "chasm.io.lock",
        "chasm.blas",
        "chasm.__version__",
    ),
    ("chasm.crystal", "chasm.geometry"),  # cells, symmetry, atoms, neighbours
    ("chasm.density",),  # density models (Hansen-Coppens, spin-split), frames, databank
    ("chasm.data",),  # reflections, noise models of measured data
    ("chasm.io",),  # file formats (HKLF 4, XD, CIFs, rhoCIF, fcf, cube)
    ("chasm.scattering",),  # X-ray structure factors and agreement
    ("chasm.neutron",),  # neutron structure factors, flipping ratios, rcif
    ("chasm.maps",),  # density and Fourier maps
    ("chasm.diagnostics",),  # Fo/Fc, normal probability, DRK, residual-density analysis, rigid bond
    ("chasm.topology",),  # QTAIM on the model density
    ("chasm.refine",),  # parameters, data sets, solver, refinement, result
    ("chasm.properties",),  # charges, moments, d-orbital populations
    ("chasm.project",),  # project files, build, run
    ("chasm.report",),  # report.html / report.md, result figures (read results and projects)
    ("chasm.simulate", "chasm.cv"),  # simulation and cross-validation of projects
    ("chasm.examples", "chasm.demo"),  # the bundled examples and the demo
    ("chasm.cli",),  # the command line
]


def layer_of(module: str) -> int | None:
    """Index in LAYERS of a module (longest prefix), None when no layer claims it."""
    best, length = None, -1
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > length:
                best, length = i, len(prefix)
    return best


def module_name(path: Path, src: Path = SRC) -> str:
    rel = path.relative_to(src.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, int, bool]]:
    """(imported chasm module or name, line, at top level?) of every import in ``tree``."""
    top = {id(n) for n in getattr(tree, "body", [])}
    package = module if is_package else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{a.name}" if base == "chasm" else base for a in node.names]
        else:
            continue
        for name in names:
            if name == "chasm" or name.startswith("chasm."):
                out.append((name, node.lineno, id(node) in top))
    return out


def violations(src: Path = SRC, sources: dict[str, str] | None = None) -> list[str]:
    """Imports that go up the layers (or from/to a module no layer claims).

    ``sources`` (module name -> source text) replaces reading ``src``: the
    test of the checker itself.
    """
    if sources is None:
        sources = {}
        for path in sorted(src.rglob("*.py")):
            sources[module_name(path, src)] = path.read_text(encoding="utf-8")
    out = []
    for module, text in sources.items():
        if module == "chasm":
            continue  # the lazy facade
        mine = layer_of(module)
        if mine is None:
            out.append(f"{module}: no layer claims this module (add it to LAYERS)")
            continue
        is_package = text is not None and module.count(".") >= 1 and module in _packages(sources)
        for name, line, _ in imports(ast.parse(text), module, is_package):
            theirs = layer_of(name)
            if theirs is None:
                out.append(f"{module}, line {line}: imports {name}, which no layer claims")
            elif theirs > mine:
                out.append(
                    f"{module}, line {line}: imports {name} (layer {LAYERS[theirs][0]}) from "
                    f"the lower layer {LAYERS[mine][0]}"
                )
    return out


def _packages(sources: dict[str, str]) -> set[str]:
    """Modules that are packages: some other module's name starts with theirs."""
    names = set(sources)
    return {m for m in names if any(n.startswith(m + ".") for n in names)}


def top_level_cycles(src: Path = SRC) -> list[list[str]]:
    """Cycles of top-level imports between chasm modules (strongly connected components)."""
    sources = {module_name(p, src): p.read_text(encoding="utf-8") for p in src.rglob("*.py")}
    packages = _packages(sources)
    graph: dict[str, set[str]] = {m: set() for m in sources}
    for module, text in sources.items():
        for name, _, top in imports(ast.parse(text), module, module in packages):
            target = name
            while target and target not in sources:  # "chasm.x.y.Name" -> "chasm.x.y"
                target = target.rpartition(".")[0]
            if top and target and target != module and target != "chasm":
                graph[module].add(target)
    # Tarjan's algorithm
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_imports_follow_the_layers():
    found = violations()
    assert not found, "\n".join(found)


def test_no_cycles_of_top_level_imports():
    # a package's __init__ importing its own modules is not a cycle worth reporting when the
    # modules do not import the package back; what remains is listed
    cycles = top_level_cycles()
    assert not cycles, cycles


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("chasm.refine.fake", "from chasm.project.run import run_project\n", "layer chasm.project"),
        ("chasm.data.fake", "def f():\n    from chasm.io.shelx_hkl import read_hkl4\n", "line 2"),
        ("chasm.scattering.fake", "from ..refine import solver\n", "chasm.refine"),
        ("chasm.crystal.fake", "from chasm import Refinement\n", "chasm.Refinement"),
        ("chasm.nowhere", "import numpy\n", "no layer claims"),
    ],
)
def test_a_wrong_import_is_caught(module, source, expected):
    found = violations(sources={module: source})
    assert found and expected in found[0], found


def test_right_imports_pass():
    ok = {
        "chasm.project.fake": "from chasm.refine.result import Result\n"
        "from chasm import __version__",
        "chasm.refine.fake": "from .solver import solve\nfrom ..data import reflections",
    }
    assert violations(sources=ok) == []

"""``import chasm`` gives the public API (issue 18, item 1)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import chasm

DOCS = Path(__file__).parents[1] / "docs"


@pytest.mark.parametrize("name", [n for n in chasm.__all__ if n != "__version__"])
def test_every_public_name_resolves(name):
    value = getattr(chasm, name)
    assert value is not None and (callable(value) or isinstance(value, type))


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        chasm.nothing  # noqa: B018


def test_import_chasm_is_light():
    """``import chasm`` loads the facade and chasm.blas (OpenBLAS's timeout, set before numpy)."""
    code = (
        "import sys, chasm; print(sorted(m for m in sys.modules if m.startswith('chasm')),"
        " 'numpy' in sys.modules, 'scipy' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "['chasm', 'chasm.blas'] False False"


#: Deep imports a docs page may keep, with the reason (a name the facade cannot carry).
DEEP_IMPORTS_ALLOWED = {
    # chasm.topology is the subpackage: a facade name "topology" would shadow it
    "from chasm.topology.analysis import topology, topology_dict",
}


def deep_imports(page: Path, root: Path = DOCS) -> list[str]:
    """The lines of a page's ``python`` blocks that import from a chasm submodule."""
    bad = []
    for block in re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S):
        for line in block.splitlines():
            code = line.split("#")[0].strip()
            if re.match(r"(from|import)\s+chasm\.", code) and code not in DEEP_IMPORTS_ALLOWED:
                bad.append(f"{page.relative_to(root)}: {code}")
    return bad


def test_docs_python_blocks_import_only_from_chasm():
    """Every docs page (tutorials and the reference pages) imports public names from chasm."""
    pages = sorted(DOCS.glob("*.md")) + sorted((DOCS / "tutorials").glob("*.md"))
    assert len(pages) > 10 and any(p.parent.name == "tutorials" for p in pages)
    bad = [line for page in pages for line in deep_imports(page)]
    assert not bad, bad


def test_deep_import_check_sees_a_deep_import(tmp_path):
    """The check is not blind: a page importing from a submodule is reported."""
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nfrom chasm import Stage\n  from chasm.maps.fourier import peaks\n```\n"
        "```text\nfrom chasm.io import x\n```\n",
        encoding="utf-8",
    )
    assert deep_imports(page, tmp_path) == ["page.md: from chasm.maps.fourier import peaks"]

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
    code = "import sys, chasm; print(sorted(m for m in sys.modules if m.startswith('chasm')))"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "['chasm']"


def test_tutorial_python_blocks_import_only_from_chasm():
    bad = []
    for page in sorted((DOCS / "tutorials").glob("*.md")):
        for block in re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S):
            for line in block.splitlines():
                if re.match(r"\s*(from|import)\s+chasm\.", line):
                    bad.append(f"{page.name}: {line.strip()}")
    assert not bad, bad

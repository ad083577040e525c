"""The code base stays ruff-clean (configuration in pyproject.toml)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_clean():
    ruff = shutil.which("ruff") or shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff is None:
        pytest.skip("ruff is not installed (pip install '.[test]')")
    run = subprocess.run(
        [ruff, "check", "src", "tests", "tools", "benchmarks", "validation"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_every_slow_id_names_a_test_that_exists():
    """A renamed test must not silently drop out of tests/conftest.py's SLOW_IDS."""
    import re

    from conftest import SLOW_IDS

    here = Path(__file__).parent
    for key in SLOW_IDS:
        name, _, test = key.partition("::")
        function = test.split("[")[0]
        text = (here / name).read_text(encoding="utf-8")
        assert re.search(rf"^def {re.escape(function)}\(", text, re.M), key

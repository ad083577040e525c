"""mypy on the strict packages (issue 18): scattering/, refine/ and the data layer.

The configuration is ``[tool.mypy]`` of pyproject.toml (which flags, which
modules are fully strict; none is exempt any more). mypy is a test extra; the
test skips without it. A cold run takes 10-30 s, hence ``slow``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy not installed")
def test_mypy_passes_on_the_strict_packages(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Success: no issues found" in run.stdout


def test_no_strict_module_is_exempt():
    """No [[tool.mypy.overrides]] switches the errors of a module off (the debt is paid)."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    exempt = [o["module"] for o in config.get("overrides", []) if o.get("ignore_errors")]
    assert exempt == [], f"modules exempt from mypy: {exempt}"
    assert "src/chasm/scattering" in config["files"]


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy not installed")
def test_mypy_sees_a_type_error(tmp_path):
    """The check is not blind: a wrong type in a strict module is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f(x: int) -> str:\n    return x\n", encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", str(bad)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1 and "Incompatible return value" in run.stdout


def test_model_capabilities_match_the_model_classes():
    """has_valence / carries_spin / axes answer what the isinstance switches asked (issue 18)."""
    import numpy as np

    from chasm.density.model import HansenCoppensAtom, NuclearAtom, SphericalAtom, SplitAtom

    hc = HansenCoppensAtom("C", 4.0, lmax=1, plm=np.zeros(4))
    split = SplitAtom.from_charge_and_spin(hc, spin_pv=0.5)
    models = [SphericalAtom("C"), NuclearAtom("C", 6.65), hc, split]
    for m in models:
        assert m.has_valence == isinstance(m, HansenCoppensAtom | SplitAtom), m
        assert m.carries_spin == isinstance(m, SplitAtom), m
        assert m.axes is None  # none was given
    assert split.spin_pv == 0.5
    # class-level flags, not dataclass fields: the constructors and reprs are unchanged
    assert "has_valence" not in repr(models[0]) and "axes" not in repr(models[1])

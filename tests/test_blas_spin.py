"""``import chasm`` limits OpenBLAS's busy wait before numpy loads OpenBLAS (chasm.blas)."""

from __future__ import annotations

import os
import subprocess
import sys

from chasm.blas import SPIN_TIMEOUT


def _timeout_after_import(env_value: str | None, first: str) -> str:
    """OPENBLAS_THREAD_TIMEOUT seen after ``import <first>; import chasm`` in a fresh Python."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if env_value is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = env_value
    code = (
        f"import {first}, sys, os\n"
        "import chasm\n"
        "print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'), 'numpy' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_import_chasm_sets_the_timeout_without_loading_numpy():
    assert _timeout_after_import(None, "os") == f"{SPIN_TIMEOUT} False"


def test_the_users_value_is_kept():
    assert _timeout_after_import("24", "os") == "24 False"


def test_the_command_line_sets_it_before_openblas_is_loaded():
    """The `chasm` entry point imports the package (and so chasm.blas) before numpy."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    code = (
        "import sys, os\n"
        "import chasm.cli\n"
        "import numpy\n"
        "print(os.environ['OPENBLAS_THREAD_TIMEOUT'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == SPIN_TIMEOUT

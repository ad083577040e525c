"""The independent PND reference stays independent (issue 17, item 1).

:mod:`chasm.neutron.model` (PndModel, calculate) and
:func:`chasm.neutron.structure_factors.site_sums` (the reference symmetry sum)
are test oracles: the refined route (the one flipping-ratio data set and its
two sources) must never load the first nor call the second, or the tests that
hold the two routes against each other would compare a route with itself.
Checked in a fresh interpreter: the production modules are imported, and
YTiO₃, Ho₂Ti₂O₇, MnF₂ ``main.rcif`` and ``MnF2_multipole_prior.rcif`` (χ
tensors, ordered moments with time reversal and a twin, spin-multipole
shapes) are turned into projects by ``chasm init``, built and their ratios and
Jacobians computed, with ``site_sums`` replaced by a function that raises.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

PRODUCTION = (
    "chasm.cli",
    "chasm.project.build",
    "chasm.project.pnd_build",
    "chasm.project.pnd_init",
    "chasm.refine.flipping_ratios",
    "chasm.refine.pnd_data",
    "chasm.refine.flipping_data",
    "chasm.refine.magnetic_amplitude_data",
    "chasm.neutron",
)

SCRIPT = """
import importlib, sys
from pathlib import Path
for name in {production!r}:
    importlib.import_module(name)
import chasm.neutron.structure_factors as sf

def refuse(*args, **kwargs):
    raise AssertionError("the refined route called the reference site_sums")

sf.site_sums = refuse
from chasm.cli import main
from chasm.project.build import build
from chasm.project.project import load_project

tmp = Path({tmp!r})
for k, rcif in enumerate({files!r}):
    copy = tmp / Path(rcif).name
    copy.write_text(Path(rcif).read_text())
    project = tmp / f"p{{k}}.toml"
    assert main(["init", str(copy), "-o", str(project)]) == 0
    ref = build(load_project(project)).refinement
    for d in ref.datasets:
        mask, r, jac = d.calculate(ref.params.values, jacobian=True)
        assert len(r) == mask.sum() and jac.shape == (len(r), len(ref.params.values))
print("LOADED" if "chasm.neutron.model" in sys.modules else "NOT LOADED")
"""


def _run(script: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )


def test_production_modules_do_not_load_the_reference_model(tmp_path):
    done = _run(SCRIPT.format(production=PRODUCTION, tmp=str(tmp_path), files=[]))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("NOT LOADED")
    # the check can fail: the reference's names still load it on first use
    done = _run(
        "import sys, chasm.neutron as n; n.PndModel; print('chasm.neutron.model' in sys.modules)"
    )
    assert done.returncode == 0 and done.stdout.strip() == "True", done.stderr


def test_refined_route_never_uses_the_reference_sum(shared_data, tmp_path):
    pnd = shared_data / "pnd"
    files = [
        pnd / "ytio3" / "ytio3.rcif",
        pnd / "ho2ti2o7" / "ho2ti2o7.rcif",
        pnd / "mnf2" / "main.rcif",
        pnd / "mnf2" / "MnF2_multipole_prior.rcif",
    ]
    script = SCRIPT.format(production=PRODUCTION, tmp=str(tmp_path), files=[str(f) for f in files])
    done = _run(script)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("NOT LOADED")
    # the patch bites: the reference route itself calls site_sums and fails
    oracle = script.replace(
        "from chasm.cli import main",
        "from chasm.neutron import PndModel, read_rcif\n"
        f"PndModel.from_rcif(read_rcif({str(files[0])!r}).crystal()).nuclear([[1, 0, 0]])\n"
        "from chasm.cli import main",
    )
    done = _run(oracle)
    assert done.returncode != 0 and "called the reference site_sums" in done.stderr

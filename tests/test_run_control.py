"""`chasm refine` progress and control: cycle lines, --quiet/--verbose, Ctrl-C and --resume.

The project is the simulated urea case of test_project.py (bundled structure,
data simulated from a Hansen-Coppens model, no external data) with a tight
tolerance, so that its seven stages take several dozen cycles: a SIGINT sent
when the first cycle line appears lands mid-run. The interrupt test runs
``chasm refine`` as a subprocess and sends a real SIGINT; the resumed run must
end where an uninterrupted run ends (to well within the solver tolerance).
"""

from __future__ import annotations

import io
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from chasm.cli import main
from chasm.io.rhocif import read_rhocif
from chasm.progress import Progress
from chasm.project.run import run_project
from test_project import _variant, simulated  # noqa: F401  (simulated is a fixture)
from test_project_joint import joint_case  # noqa: F401  (a fixture)

#: A cycle line: stage, cycle, score, agreement, GOF, max shift/su (name), the convergence
#: figures (undamped step and gradient in su), seconds.
CYCLE = re.compile(
    r"^(?P<stage>\S+)\s+(?P<cycle>\d+)\s+score=\S+\s+wR2\(xray\)=\d\.\d{4}\s+GOF=\S+\s+"
    r"max shift/su=\S+ \(\S+\)\s+GN step/su=\S+ grad/su=\S+\s+\d+\.\d\ds"
)
STAGES = ["scale", "high-order", "monopoles", "multipoles", "all"]  # H Uiso ride (issue 14)
TIMEOUT = 600  # seconds; generous for a slow, busy 2-core machine


@pytest.fixture(scope="module")
def tight(simulated, tmp_path_factory):  # noqa: F811
    """The urea project with tol = 1e-5 (many cycles, a sharp end point)."""
    folder = tmp_path_factory.mktemp("tight")
    return _variant(simulated, folder, "tol = 0.01 ", "tol = 1e-5 ")


@pytest.fixture(scope="module")
def reference(tight):
    """The uninterrupted run of the tight project."""
    out = tight.parent / "reference"
    assert main(["refine", str(tight), "--output", str(out), "-q", "--no-report"]) == 0
    return json.loads((out / "result.json").read_text())


def _refine(project: Path, out: Path, *extra: str) -> int:
    return main(["refine", str(project), "--output", str(out), "--no-report", *extra])


def _same_parameters(res: dict, ref: dict) -> float:
    """Largest |difference| in units of su (or of 1e-6 |value| without su); asserts <= 1."""
    worst = 0.0
    for name, p in ref["parameters"].items():
        q = res["parameters"][name]
        allowed = max(p["su"] / 100 if p["su"] else 0.0, 1e-6 * abs(p["value"]), 1e-12)
        ratio = abs(q["value"] - p["value"]) / allowed
        assert ratio <= 1.0, (name, q["value"], p["value"], p["su"])
        worst = max(worst, ratio)
    return worst


def _start(project: Path, out: Path) -> subprocess.Popen:
    """`chasm refine` as a subprocess with SIGINT at its default (not ignored)."""

    def default_sigint() -> None:  # a background job may have inherited SIG_IGN
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    cmd = [sys.executable, "-m", "chasm.cli", "refine", str(project), "--output", str(out)]
    proc = subprocess.Popen(
        [*cmd, "--no-report"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,
    )
    # both pipes are read by threads from the start: a full stderr pipe cannot block the
    # child, and nothing else reads (or closes) the pipes while a reader thread is on them
    proc.err_lines = _lines(proc.stderr)
    return proc


def _lines(stream) -> queue.Queue:
    """The lines of a pipe, read by a thread (None at the end)."""
    q: queue.Queue = queue.Queue()

    def read() -> None:
        for line in stream:
            q.put(line)
        q.put(None)

    threading.Thread(target=read, daemon=True).start()
    return q


def _wait_for_cycle(proc: subprocess.Popen, lines: queue.Queue, stage: str = "") -> list[str]:
    """Lines up to the first cycle line (of ``stage``); fails on timeout or early exit."""
    seen = []
    deadline = time.monotonic() + TIMEOUT
    while True:
        line = lines.get(timeout=max(deadline - time.monotonic(), 1.0))
        assert line is not None, ("no cycle line before the end", seen, _drain(proc.err_lines))
        seen.append(line)
        m = CYCLE.match(line)
        if m and m["stage"] == (stage or m["stage"]):
            return seen


def _drain(lines: queue.Queue) -> str:
    """Everything a reader thread delivers until the end of its pipe."""
    out = []
    while (line := lines.get(timeout=TIMEOUT)) is not None:
        out.append(line)
    return "".join(out)


def _finish(proc: subprocess.Popen, lines: queue.Queue) -> tuple[str, str]:
    """Wait for the child and return its stdout and stderr.

    Not ``communicate``: it would read (and close) stdout under the thread that
    is already reading it, and the thread could then die before it signals the
    end of the pipe (a 600 s wait, seen once in a full test run).
    """
    proc.wait(timeout=TIMEOUT)
    return _drain(lines), _drain(proc.err_lines)


# ---------------------------------------------------------------- Ctrl-C and --resume
@pytest.mark.slow
def test_sigint_stops_after_the_cycle_and_resume_ends_as_an_uninterrupted_run(
    tight, reference, tmp_path
):
    out = tmp_path / "out"
    proc = _start(tight, out)
    lines = _lines(proc.stdout)
    # the first cycle of the 4th stage: stages to skip on resume, cycles still to go
    first = _wait_for_cycle(proc, lines, "multipoles")
    t0 = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    stdout, stderr = _finish(proc, lines)
    seconds = time.monotonic() - t0
    print(f"SIGINT to exit: {seconds:.2f} s")
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr
    assert "stopping after the cycle in progress" in stderr
    assert re.search(r"chasm: interrupted in stage \S+ after cycle \d+", stderr), stderr
    assert "--resume" in stderr
    assert CYCLE.match(first[-1])

    res = json.loads((out / "result.json").read_text())
    assert res["interrupted"] is True and res["converged"] is False
    at = res["stopped_at"]
    print(f"stopped at {at}")
    assert at["stage"] in STAGES[3:] and at["cycle"] >= 0, at
    assert [s["name"] for s in res["stages"]] == STAGES[: STAGES.index(at["stage"])]
    assert any("interrupted" in w for w in res["warnings"])
    # the model on disk is the state result.json describes
    crystal, _ = read_rhocif(out / "model.cif")
    for atom in crystal.atoms:
        assert atom.xyz[0] == res["parameters"][f"{atom.label}.x"]["value"]
    assert "INTERRUPTED" in (out / "listing.txt").read_text()
    ck = json.loads((out / "checkpoint.json").read_text())
    assert ck["status"] == "interrupted" and ck["current"] == {
        "stage": at["stage"],
        "cycle": at["cycle"],
    }
    for name, p in res["parameters"].items():
        assert ck["parameters"][name]["value"] == p["value"]

    assert _refine(tight, out, "-q", "--resume") == 0
    final = json.loads((out / "result.json").read_text())
    assert final["converged"] is True and "interrupted" not in final
    assert [s["name"] for s in final["stages"]] == STAGES
    worst = _same_parameters(final, reference)
    print(f"resume parity: max |difference| = {worst:.3g} of the allowance (su/100)")
    assert json.loads((out / "checkpoint.json").read_text())["status"] == "finished"
    listing = (out / "listing.txt").read_text()
    assert "resumed: stages done" in listing


def test_second_sigint_aborts_and_keeps_a_readable_checkpoint(tight, tmp_path):
    out = tmp_path / "out"
    proc = _start(tight, out)
    lines = _lines(proc.stdout)
    _wait_for_cycle(proc, lines)
    os.kill(proc.pid, signal.SIGINT)
    os.kill(proc.pid, signal.SIGINT)
    _, stderr = _finish(proc, lines)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "chasm: interrupted" in stderr
    ck = json.loads((out / "checkpoint.json").read_text())
    assert ck["status"] in ("running", "interrupted")


def test_failure_in_a_stage_leaves_the_last_good_model_and_resume_continues(
    tight, reference, tmp_path, monkeypatch, capsys
):
    """A stage that fails after two accepted cycles (a RefinementError from the solver)."""
    import chasm.refine.refinement as refinement_module
    from chasm.refine.solver import RefinementError

    real_solve = refinement_module.solve

    def failing_solve(*args, callback=None, stage="", **kw):
        def cb(info):
            callback(info)
            if stage == "all" and info.cycle == 2:
                raise RefinementError("simulated failure in cycle 2")

        return real_solve(*args, callback=cb, stage=stage, **kw)

    monkeypatch.setattr(refinement_module, "solve", failing_solve)
    out = tmp_path / "out"
    assert _refine(tight, out, "-q") == 2
    assert "simulated failure" in capsys.readouterr().err
    res = json.loads((out / "result.json").read_text())
    assert [s["name"] for s in res["stages"]] == STAGES[:-1]  # the files of multipoles
    crystal, _ = read_rhocif(out / "model.cif")
    for atom in crystal.atoms:
        assert atom.xyz[2] == res["parameters"][f"{atom.label}.z"]["value"]
    ck = json.loads((out / "checkpoint.json").read_text())
    assert ck["status"] == "failed" and "simulated failure" in ck["error"]
    assert ck["current"] == {"stage": "all", "cycle": 2} and ck["completed"] == STAGES[:-1]
    moved = [n for n, p in ck["parameters"].items() if p["value"] != res["parameters"][n]["value"]]
    assert moved  # the checkpoint holds the last accepted cycle of the failed stage

    monkeypatch.setattr(refinement_module, "solve", real_solve)
    assert _refine(tight, out, "-q", "--resume") == 0
    final = json.loads((out / "result.json").read_text())
    assert final["converged"] and [s["name"] for s in final["stages"]] == STAGES
    worst = _same_parameters(final, reference)
    print(f"resume after a failure: max |difference| = {worst:.3g} of the allowance")
    # the resumed stage counts on from cycle 3: its budget is not renewed (issue 14)
    listing = [x.strip() for x in (out / "listing.txt").read_text().splitlines()]
    after = listing[next(i for i, x in enumerate(listing) if x.startswith("resumed:")) :]
    cycles = [int(m["cycle"]) for x in after if (m := CYCLE.match(x)) and m["stage"] == "all"]
    assert cycles and cycles[0] == 3, cycles
    conv = final["stages"][-1]["convergence"]
    assert conv["gn_step_su"] < conv["tol"] and conv["gradient_su"] < conv["tol"]


def test_a_singular_stage_keeps_the_previous_stage_on_disk(simulated, tmp_path, capsys):  # noqa: F811
    # no multipoles yet: no observation depends on kappa' in the monopoles stage
    p = _variant(simulated, tmp_path, '"@nonH.kappa",', '"@nonH.kappa", "O1.kappa_prime",')
    assert _refine(p, tmp_path / "out", "-q") == 2
    assert "singular" in capsys.readouterr().err
    res = json.loads((tmp_path / "out" / "result.json").read_text())
    assert [s["name"] for s in res["stages"]] == ["scale", "high-order"]
    read_rhocif(tmp_path / "out" / "model.cif")
    ck = json.loads((tmp_path / "out" / "checkpoint.json").read_text())
    assert ck["status"] == "failed" and ck["current"] == {"stage": "monopoles", "cycle": 0}


def test_resume_refuses_what_it_cannot_continue(simulated, tight, reference, tmp_path, capsys):  # noqa: F811
    assert _refine(tight, tmp_path / "empty", "-q", "--resume") == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert _refine(tight, tight.parent / "reference", "-q", "--resume") == 2
    assert "finished" in capsys.readouterr().err
    # a checkpoint of another model (lmax changed: other parameters)
    out = tmp_path / "out"
    out.mkdir()
    ck = json.loads((tight.parent / "reference" / "checkpoint.json").read_text())
    ck.update(status="interrupted", completed=["scale"])
    del ck["parameters"][next(iter(ck["parameters"]))]
    (out / "checkpoint.json").write_text(json.dumps(ck))
    assert _refine(tight, out, "-q", "--resume") == 2
    assert "does not fit the project's parameters" in capsys.readouterr().err


# ---------------------------------------------------------------- lines on the console
def test_cycle_lines_quiet_and_verbose(tight, tmp_path, capsys):
    assert _refine(tight, tmp_path / "a") == 0
    out = capsys.readouterr().out.splitlines()
    cycles = [x for x in out if CYCLE.match(x)]
    assert {CYCLE.match(x)["stage"] for x in cycles} == set(STAGES)
    assert len(cycles) > 20
    assert not any(x.startswith("    xray ") for x in out)
    assert out[-1].startswith("results in")

    assert _refine(tight, tmp_path / "b", "-q") == 0
    out = capsys.readouterr().out.splitlines()
    assert not any(CYCLE.match(x) or x.startswith(("stage ", "start:")) for x in out)
    assert out[-1].startswith("results in")

    assert _refine(tight, tmp_path / "c", "--verbose") == 0
    out = capsys.readouterr().out.splitlines()
    n = sum(bool(CYCLE.match(x)) for x in out)
    per_set = [x for x in out if re.match(r"^    xray\s+N=\d+\s+chi2=\S+\s+c_e=1\s+grad", x)]
    timing = [x for x in out if re.match(r"^    time: \d+\.\d\ds in \d+ evaluation", x)]
    assert len(per_set) == n and len(timing) == n
    assert any(x.endswith("grad.share=1.000") for x in per_set)


def test_verbose_figures_of_a_joint_run_are_the_solver_s(joint_case, tmp_path):  # noqa: F811
    """Rw(1-R) of flipping ratios on the cycle line; c_e and gradient share as in result.json."""
    said: list[str] = []
    out = run_project(
        joint_case / "project.toml", output=tmp_path, echo=said.append, report=False, verbose=True
    )
    res = out.result
    starts = [i for i, x in enumerate(said) if x.startswith("joint ")]
    accepted = [i for i in starts if "[rejected]" not in said[i]]
    last = accepted[-1]  # the solution is the point of the last accepted cycle
    line = said[last]
    for name, d in res["datasets"].items():
        label = "Rw" if d["kind"] == "pnd" else "wR2"
        value = float(re.search(rf"{label}\({re.escape(name)}\)=(\S+)", line)[1])
        assert value == pytest.approx(d[label], abs=6e-5), (name, line)
        row = next(x for x in said[last + 1 :] if x.startswith(f"    {name} "))
        fields = dict(f.split("=") for f in row.split()[1:])
        assert int(fields["N"]) == d["n_obs"]
        assert float(fields["c_e"]) == pytest.approx(d["factor"], rel=1e-3)
        assert float(fields["grad.share"]) == pytest.approx(d["gradient_share"], abs=6e-4)
    assert not out.interrupted and res["converged"]


def test_quiet_and_verbose_exclude_each_other(tight, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["refine", str(tight), "-q", "-v"])
    assert exc.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_warnings_repeated_in_one_block_at_the_end(tight, tmp_path, capsys):
    assert _refine(tight, tmp_path / "out", "-q") == 0
    out = capsys.readouterr().out
    res = json.loads((tmp_path / "out" / "result.json").read_text())
    block = out.split("warnings (", 1)[1]
    for w in res["warnings"]:
        assert f"  - {w}" in block
    assert out.rstrip().splitlines()[-1].startswith("results in")


# ---------------------------------------------------------------- progress helper
class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_silent_off_a_terminal_and_counts():
    stream = io.StringIO()
    with Progress(5, "maps", stream=stream) as bar:
        for _ in range(5):
            bar.advance()
    assert stream.getvalue() == "" and bar.count == 5 and not bar.enabled


def test_progress_forced_and_on_a_terminal():
    stream = io.StringIO()
    with Progress(4, "grid", stream=stream, force=True, min_interval=0.0) as bar:
        for _ in range(4):
            bar.advance()
    text = stream.getvalue()
    frames = text.rstrip("\n").split("\r")[1:]
    assert len(frames) >= 4 and text.endswith("\n")
    assert [re.search(r"(\d+)/4", f)[1] for f in frames[:4]] == ["1", "2", "3", "4"]
    assert frames[-1].startswith("grid [" + "#" * 30 + "] 4/4")
    tty = _Tty()
    with Progress(None, "points", stream=tty) as bar:  # a counter, drawn on a terminal
        bar.advance(7)
    assert "points 7 " in tty.getvalue() and bar.count == 7
    quiet = _Tty()
    with Progress(3, stream=quiet, quiet=True, force=True) as bar:
        bar.advance(3)
    assert quiet.getvalue() == "" and bar.count == 3


def test_report_prints_a_line_per_map_and_step(reference, tight, capsys):
    import chasm.report.report as report_module

    folder = tight.parent / "reference"
    files = report_module.write_report(folder, progress=True)
    said = capsys.readouterr().err
    maps = [k for k in files if k.startswith("report_") and k.endswith(".png")]
    lines = [x for x in said.splitlines() if x.startswith("report: maps ")]
    assert len(lines) == len(maps) >= 1
    assert lines[-1].startswith(f"report: maps {len(maps)}/{len(maps)} ")
    assert "report: diagnostics" in said and "report: files 1/1" in said
    report_module.write_report(folder)  # default: no progress lines
    assert "report:" not in capsys.readouterr().err
    assert np.isfinite(reference["score"]["value"])


def test_gof_spread_warning_only_among_fitted_data_sets():
    """A set far from the others is named; sets not fitted yet (no factor) are left out."""
    from types import SimpleNamespace

    from chasm.project.run import warnings_for

    built = SimpleNamespace(
        refinement=SimpleNamespace(params=[]),
        project=SimpleNamespace(data={"refinement": {"correlation_threshold": 0.9}}),
    )

    def result(pnd_factor):
        sets = {
            "xray": {"gof": 1.0, "factor": 1.0},
            "und": {"gof": 1.1, "factor": 1.0},
            "pnd": {"gof": 2.5, "factor": pnd_factor},  # below MISFIT_GOF: spread only
        }
        return {"datasets": sets, "correlations": [], "stages": []}

    fitted = warnings_for(built, result(1.0))
    assert any(w.startswith("data set pnd: GOF 2.500 is far") for w in fitted), fitted
    assert not any("data set xray" in w or "data set und" in w for w in fitted)
    assert warnings_for(built, result(None)) == []  # pnd not fitted yet: nothing to compare
    # two sets: one warning naming both
    two = result(1.0)
    del two["datasets"]["und"]
    (w,) = warnings_for(built, two)
    assert w.startswith("data sets xray and pnd: GOF 1.000 and 2.500 differ")

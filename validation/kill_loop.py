"""Kill -9 loop: ``chasm refine`` killed at random moments never leaves a broken folder.

Each run refines the urea IAM model against the real urea data
(../shared/data/xray/urea: 1022 reflections; stages scale, xyz, all; about 3 s of
work after a 1.5 s start-up) into a fresh output folder, and is killed with SIGKILL
after a random delay (seeded). The delays follow the machine's load: every fifth run
is killed during its start-up (uniform between 0 and 1.1 times the median time to the
first checkpoint of the complete runs so far), the others while they write (the clock
starts when their first checkpoint appears; uniform between 0 and ``--to`` (1.1) times
the median time from the first checkpoint to the end), so that a few finish. Then:

1. every output present must be complete: result.json and checkpoint.json parse as
   JSON, model.cif reads back with chasm's CIF reader, listing.txt ends with a newline;
2. when a stage had finished (result.json exists), checkpoint.json must exist too
   and, unless it says ``finished``, ``chasm refine --resume`` must be accepted;
3. the next run in that folder (``--resume`` when the checkpoint allows it, else a
   fresh run) must finish, take the lock over and leave no ``.NAME.<hex>.<pid>.tmp``
   file behind; its final wR2 is compared with an uninterrupted run.

Usage: PYTHONPATH=src python validation/kill_loop.py [--runs 100] [--seed 0]
       [--to 1.1] [--keep DIR]
Prints the counts as a Markdown table (docs/data-safety.md).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from chasm.crystal.cif import read_cif
from chasm.io.atomic import TEMP_PATTERN
from chasm.project.run import CHECKPOINT

ROOT = Path(__file__).resolve().parents[1]
DATA = (ROOT / ".." / "shared" / "data" / "xray" / "urea").resolve()

PROJECT = """title = "kill loop: urea IAM"
output = "out"
[structure]
cif = "{cif}"
[model]
default = "iam"
[[datasets]]
name = "xray"
kind = "xray"
file = "{hkl}"
[[stages]]
name = "scale"
free = ["*.scale"]
[[stages]]
name = "xyz"
free = ["*.scale", "*.x", "*.y", "*.z"]
[[stages]]
name = "all"
free = ["*"]
"""


def chasm(*args: str) -> list[str]:
    return [sys.executable, "-m", "chasm.cli", *args]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + e.get("PYTHONPATH", "")
    return e


def broken_outputs(out: Path) -> list[str]:
    """Outputs present but not complete (should be none)."""
    bad = []
    for name in ("result.json", "checkpoint.json"):
        p = out / name
        if p.exists():
            try:
                json.loads(p.read_text(encoding="utf-8"))
            except ValueError:
                bad.append(name)
    if (out / "model.cif").exists():
        try:
            read_cif(out / "model.cif")
        except Exception:  # noqa: BLE001 - any failure to read back counts
            bad.append("model.cif")
    listing = out / "listing.txt"
    if listing.exists() and not listing.read_text(encoding="utf-8").endswith("\n"):
        bad.append("listing.txt")
    return bad


def temp_files(out: Path) -> list[Path]:
    return [p for p in out.iterdir() if TEMP_PATTERN.match(p.name)] if out.is_dir() else []


def final_wr2(out: Path) -> float:
    return json.loads((out / "result.json").read_text(encoding="utf-8"))["datasets"]["xray"]["wR2"]


def wait_for_checkpoint(proc: subprocess.Popen, out: Path, since: float) -> None:
    """Return when a ``out/checkpoint.json`` written after ``since`` (time.time()) exists,
    or the process has ended (a killed run's checkpoint is older and does not count)."""
    path = out / CHECKPOINT
    while proc.poll() is None:
        try:
            if path.stat().st_mtime >= since:
                return
        except OSError:
            pass
        time.sleep(0.005)


def timed_run(project: Path, out: Path, resume: bool = False) -> tuple[int, str, float, float]:
    """Run to the end: exit status, stderr, seconds to the first checkpoint, seconds after."""
    cmd = chasm("refine", str(project), "-q", "--no-report", "--output", str(out))
    t0, since = time.perf_counter(), time.time() - 0.01
    proc = subprocess.Popen(
        cmd + (["--resume"] if resume else []),
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wait_for_checkpoint(proc, out, since)
    t1 = time.perf_counter()
    _, err = proc.communicate()
    return proc.returncode, err.decode(errors="replace"), t1 - t0, time.perf_counter() - t1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--to", dest="hi", type=float, default=1.1)
    ap.add_argument("--keep", help="work folder to keep (default: a temporary one)")
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"kill_loop: {DATA} is absent (the real urea data are needed)")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="chasm-kill-"))
    work.mkdir(parents=True, exist_ok=True)
    project = work / "project.toml"
    project.write_text(PROJECT.format(cif=DATA / "iam.cif", hkl=DATA / "iam.hkl"), encoding="utf-8")
    ref_out = work / "reference"
    rc, _, start, writing = timed_run(project, ref_out)
    if rc != 0:
        sys.exit(f"kill_loop: the uninterrupted run failed (exit status {rc})")
    starts, writings = [start], [writing]
    ref = final_wr2(ref_out)
    rng = random.Random(args.seed)
    c = dict.fromkeys(
        [
            "runs",
            "killed",
            "finished before the kill",
            "killed before any output",
            "killed with a checkpoint only",
            "killed after a stage had finished",
            "truncated or unreadable outputs",
            "result.json without checkpoint.json",
            "temp files left by the kill (runs)",
            "temp files left by the kill (files)",
            "next runs with --resume",
            "--resume refused although a stage had finished",
            "next runs that failed",
            "temp files after the next run",
            "broken outputs after the next run",
        ],
        0,
    )
    worst = 0.0
    for i in range(args.runs):
        out = work / f"out{i:03d}"
        c["runs"] += 1
        since = time.time() - 0.01
        proc = subprocess.Popen(
            chasm("refine", str(project), "-q", "--no-report", "--output", str(out)),
            env=env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if i % 5 == 0:  # during the start-up (reading, building: nothing written yet)
            delay = rng.uniform(0.0, 1.1 * statistics.median(starts))
        else:  # while it writes: the clock starts at the first checkpoint
            delay = rng.uniform(0.0, args.hi * statistics.median(writings))
            wait_for_checkpoint(proc, out, since)
        try:
            proc.wait(timeout=delay)
            c["finished before the kill"] += 1
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            c["killed"] += 1
        files = {p.name for p in out.iterdir()} if out.is_dir() else set()
        stage_done = "result.json" in files
        if stage_done:
            c["killed after a stage had finished"] += proc.returncode == -signal.SIGKILL
        elif "checkpoint.json" in files:
            c["killed with a checkpoint only"] += 1
        else:
            c["killed before any output"] += 1
        c["truncated or unreadable outputs"] += len(broken_outputs(out)) if out.is_dir() else 0
        c["result.json without checkpoint.json"] += stage_done and "checkpoint.json" not in files
        left = temp_files(out)
        c["temp files left by the kill (runs)"] += bool(left)
        c["temp files left by the kill (files)"] += len(left)
        status = None
        if "checkpoint.json" in files:
            status = json.loads((out / "checkpoint.json").read_text(encoding="utf-8"))["status"]
        resume = status not in (None, "finished")
        rc, err, start, writing = timed_run(project, out, resume)
        if not resume and rc == 0:  # a fresh complete run: update the timing estimates
            starts.append(start)
            writings.append(writing)
        c["next runs with --resume"] += resume
        if rc not in (0, 1):
            c["next runs that failed"] += 1
            if resume and stage_done:
                c["--resume refused although a stage had finished"] += 1
            print(f"run {i}: next run failed: {err[-300:]}", file=sys.stderr)
        c["temp files after the next run"] += len(temp_files(out))
        c["broken outputs after the next run"] += len(broken_outputs(out))
        if (out / "result.json").exists():
            worst = max(worst, abs(final_wr2(out) - ref) / ref)
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    print(
        f"uninterrupted runs ({len(starts)}): median {statistics.median(starts):.2f} s to the "
        f"first checkpoint, then {statistics.median(writings):.2f} s; wR2 = {ref:.6f}"
    )
    print("| count | value |\n|---|---|")
    for k, v in c.items():
        print(f"| {k} | {int(v)} |")
    print(f"| largest relative wR2 difference after the next run vs uninterrupted | {worst:.1e} |")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

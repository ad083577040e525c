"""Cross-validation on Dask (issue 20): same numbers as serial, a killed worker's fold re-run.

Both tests start Dask processes (tens of seconds on 2 shared cores): marked
slow; they skip when dask.distributed is not installed (``pip install chasm[dask]``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chasm.cv.run import cross_validate
from cv_helpers import simulated_urea

pytest.importorskip("distributed")
from chasm.cv.dask_backend import dask_runner  # noqa: E402

pytestmark = pytest.mark.slow
STAGES = ("scale", "monopoles")
SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return simulated_urea(tmp_path_factory.mktemp("cv_dask"), dmin=1.0, max_cycles=4)


@pytest.fixture(scope="module")
def serial(project):
    return cross_validate(project, 6, seed=2, stages=STAGES)


def _strip(cv: dict) -> list[dict]:
    return [{k: v for k, v in f.items() if k != "seconds"} for f in cv["per_fold"]]


def test_local_cluster_gives_the_serial_numbers(project, serial):
    cv = cross_validate(project, 6, seed=2, stages=STAGES, runner=dask_runner(workers=2))
    assert _strip(cv) == _strip(serial)  # bit for bit (== on floats)
    assert cv["summary"] == serial["summary"]


def _spawn(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    dask = [sys.executable, "-m", "distributed.cli.dask_" + args[0]]
    return subprocess.Popen(
        dask + list(args[1:]), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def test_killed_worker_fold_is_rerun(project, serial, tmp_path):
    sched_file = tmp_path / "scheduler.json"
    procs = [
        _spawn("scheduler", "--scheduler-file", str(sched_file), "--port", "0", "--no-dashboard")
    ]
    try:
        for _ in range(300):
            if sched_file.exists() and sched_file.stat().st_size > 0:
                break
            time.sleep(0.1)
        import json

        address = json.loads(sched_file.read_text())["address"]
        workers = [
            _spawn("worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard")
            for _ in range(2)
        ]
        procs += workers
        from distributed import Client

        with Client(address, timeout=30) as c:
            c.wait_for_workers(2, timeout=60)
        killed = []
        run = dask_runner(scheduler=address)

        def busy() -> dict:
            """pid -> folds in progress, of every worker (asked of the scheduler)."""
            with Client(address, timeout=30) as c:
                return c.run_on_scheduler(
                    lambda dask_scheduler: {
                        w.pid: len(w.processing) for w in dask_scheduler.workers.values()
                    }
                )

        def runner(tasks, on_result):
            def once(r):
                if not killed:  # the first fold back: kill a worker that holds a fold
                    now = busy()
                    victim = next(p for p in workers if now.get(p.pid, 0) > 0)
                    os.kill(victim.pid, signal.SIGKILL)
                    killed.append((victim, now[victim.pid]))
                on_result(r)

            return run(tasks, once)

        cv = cross_validate(project, 6, seed=2, stages=STAGES, runner=runner)
        victim, holding = killed[0]
        assert holding >= 1 and victim.wait(timeout=30) == -signal.SIGKILL
        assert _strip(cv) == _strip(serial)  # its fold(s) re-run elsewhere, same numbers
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()

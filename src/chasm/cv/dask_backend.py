"""The folds of a cross-validation as Dask tasks (optional: ``pip install chasm[dask]``).

Each fold is one task, :func:`chasm.cv.run.run_fold` applied to its
:class:`~chasm.cv.run.FoldTask` (project file path, fold number, free masks,
stages): the worker loads and builds the project itself, so the project file
and its data must be readable at the same path on every worker (a shared
file system at a facility). Results come back as they finish.

- Without ``scheduler``, a :class:`distributed.LocalCluster` of ``workers``
  processes (default: the CPU count) with one thread each is started and
  closed again.
- With ``scheduler="tcp://HOST:PORT"``, a running cluster is used (started by
  ``dask scheduler`` / ``dask worker``, or by dask-jobqueue on SLURM or PBS);
  an unreachable address is an :class:`~chasm.errors.InputError`.
- A fold whose worker dies is re-run on another worker by the scheduler (up to
  ``distributed.scheduler.allowed-failures`` times, default 3); a fold that
  raises is retried ``retries`` times.

Dask workers set OMP/MKL/OpenBLAS to one thread; a serial run gives the same
numbers bit for bit when it runs with the same BLAS thread count.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable

from chasm.cv.run import FoldTask, run_fold
from chasm.errors import InputError

__all__ = ["dask_available", "dask_runner", "DASK_HINT"]

#: How to get Dask, for messages.
DASK_HINT = "install it with: pip install 'chasm[dask]'"

#: Seconds to wait for a scheduler to answer.
CONNECT_TIMEOUT = 10.0


def dask_available() -> bool:
    """True when ``dask.distributed`` can be imported."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def _client(scheduler: str | None, workers: int | None):
    """(client, cluster or None) for an address or a new LocalCluster."""
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout=CONNECT_TIMEOUT), None
        except (OSError, TimeoutError, ValueError) as exc:
            raise InputError(
                f"--scheduler {scheduler}: no Dask scheduler answers there within "
                f"{CONNECT_TIMEOUT:g} s ({type(exc).__name__}); give the address "
                "'dask scheduler' printed (tcp://HOST:PORT), or leave --scheduler out "
                "to run on this machine"
            ) from None
    n = int(workers or os.cpu_count() or 1)
    cluster = LocalCluster(
        n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
    )
    return Client(cluster), cluster


def dask_runner(
    scheduler: str | None = None, workers: int | None = None, retries: int = 2
) -> Callable[[list[FoldTask], Callable[[dict], None] | None], list[dict]]:
    """A runner for :func:`chasm.cv.run.cross_validate` that submits the folds to Dask.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://HOST:PORT``); default: a LocalCluster.
    workers : int, optional
        Worker processes of the LocalCluster (default: the CPU count).
    retries : int
        Re-runs of a fold that raised (a dead worker's folds are re-run anyway).

    Raises
    ------
    InputError
        Dask is not installed, or the scheduler does not answer.
    """
    if not dask_available():
        raise InputError(f"--scheduler/--workers need Dask; {DASK_HINT}")

    def run(tasks: list[FoldTask], on_result: Callable[[dict], None] | None = None) -> list[dict]:
        from distributed import as_completed

        client, cluster = _client(scheduler, workers)
        tag = uuid.uuid4().hex[:8]
        try:
            futures = [
                client.submit(run_fold, t, key=f"chasm-cv-{tag}-fold-{t.fold}", retries=retries)
                for t in tasks
            ]
            out = []
            for fut in as_completed(futures):
                r = fut.result()
                if on_result is not None:
                    on_result(r)
                out.append(r)
            return out
        finally:
            client.close()
            if cluster is not None:
                cluster.close()

    return run

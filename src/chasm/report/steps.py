"""Progress lines of report writing: ``report: maps 2/3 spin density (0.4 s)``.

Printed on stderr (flushed, one line per step, also through a pipe or into
a log) when enabled; silent otherwise. The steps done are kept either way,
with their times, for tests and profiling.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Steps"]


class Steps:
    """Announce the steps of one part of a report and time them.

    Parameters
    ----------
    enabled : bool
        Print the lines.
    stream : text stream, optional
        Where (default ``sys.stderr`` at construction time).

    Attributes
    ----------
    done : list of (str, float)
        ``"part k/n what"`` and the seconds the step took.
    """

    def __init__(self, enabled: bool = False, stream: TextIO | None = None):
        self.enabled = bool(enabled)
        self.stream = sys.stderr if stream is None else stream
        self.done: list[tuple[str, float]] = []
        self._mark = time.perf_counter()

    def start(self) -> None:
        """Start the clock of the next step (the previous one ends here)."""
        self._mark = time.perf_counter()

    def step(self, part: str, k: int, n: int, what: str) -> None:
        """Record (and print) that step ``k`` of ``n`` of ``part`` has finished."""
        now = time.perf_counter()
        seconds, self._mark = now - self._mark, now
        text = f"{part} {k}/{n} {what}"
        self.done.append((text, seconds))
        if self.enabled:
            print(f"report: {text} ({seconds:.1f} s)", file=self.stream, flush=True)

"""A tiny progress bar / counter for long loops (maps, simulations), on stderr.

It draws only on a terminal: when the stream is not a TTY (a pipe, a log file,
a test) nothing is written unless ``force=True``, and ``quiet=True`` silences
it in every case. The count is kept either way, so callers can read it.

>>> import io
>>> out = io.StringIO()
>>> with Progress(3, "maps", stream=out, force=True) as bar:
...     for _ in range(3):
...         bar.advance()
>>> bar.count, out.getvalue().rstrip().split("\\r")[-1].startswith("maps [")
(3, True)

No dependency beyond the standard library.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """A progress bar (known total) or a counter (unknown total) on one line.

    Parameters
    ----------
    total : int or None
        Number of steps; None or 0 draws a plain counter.
    label : str
        Shown before the bar.
    quiet : bool
        Draw nothing (the count is still kept).
    force : bool
        Draw even when the stream is not a terminal.
    stream : text stream, optional
        Where to draw (default: ``sys.stderr`` at construction time).
    width : int
        Characters of the bar.
    min_interval : float
        Seconds between redraws (the first and the last step are always drawn).

    Attributes
    ----------
    count : int
        Steps done so far.
    enabled : bool
        True when the bar is drawn.

    Examples
    --------
    >>> with Progress(10, "grid", quiet=True) as bar:
    ...     for _ in range(10):
    ...         bar.advance()
    >>> bar.count
    10
    """

    def __init__(
        self,
        total: int | None,
        label: str = "",
        *,
        quiet: bool = False,
        force: bool = False,
        stream: TextIO | None = None,
        width: int = 30,
        min_interval: float = 0.1,
    ):
        self.total = int(total) if total else None
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        self.width = int(width)
        self.min_interval = float(min_interval)
        self.count = 0
        self.enabled = not quiet and (force or _isatty(self.stream))
        self._start = time.perf_counter()
        self._last_draw = -float("inf")
        self._drawn = False

    def __enter__(self) -> Progress:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more steps and redraw (at most every ``min_interval`` s)."""
        self.count += int(n)
        if not self.enabled:
            return
        now = time.perf_counter()
        last = self.total is not None and self.count >= self.total
        if last or not self._drawn or now - self._last_draw >= self.min_interval:
            self._draw(now)

    def close(self) -> None:
        """End the line (if anything was drawn); further calls do nothing."""
        if self.enabled and self._drawn:
            self._draw(time.perf_counter())
            self.stream.write("\n")
            self.stream.flush()
        self.enabled = False

    def text(self, now: float | None = None) -> str:
        """The current line, e.g. ``maps [##########----------] 1/2 0.3s``."""
        seconds = (time.perf_counter() if now is None else now) - self._start
        head = f"{self.label} " if self.label else ""
        if self.total is None:
            return f"{head}{self.count} {seconds:.1f}s"
        done = min(self.count, self.total)
        filled = int(round(self.width * done / self.total))
        bar = "#" * filled + "-" * (self.width - filled)
        return f"{head}[{bar}] {self.count}/{self.total} {seconds:.1f}s"

    def _draw(self, now: float) -> None:
        self.stream.write("\r" + self.text(now))
        self.stream.flush()
        self._last_draw = now
        self._drawn = True


def _isatty(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False

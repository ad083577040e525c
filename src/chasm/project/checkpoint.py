"""The checkpoint of a run (checkpoint.json) and ``--resume``.

:class:`Session` holds the stages of one run, what is done, the cycle lines
and the warnings as they arose; it writes checkpoint.json atomically and reads
it back to resume (:mod:`chasm.project.run` describes the file).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from chasm import __version__
from chasm.errors import InputError
from chasm.io.atomic import write_text_atomic
from chasm.project.build import Built
from chasm.refine.refinement import Stage
from chasm.refine.result import Result

__all__ = ["CHECKPOINT", "Session", "checkpoint_status"]


#: The checkpoint file in the output folder (module docstring).
CHECKPOINT = "checkpoint.json"
_CHECKPOINT_FORMAT = "chasm-checkpoint-1"


class Session:
    """The stages of one run, what is done, and the checkpoint file."""

    def __init__(self, built: Built, out: Path, todo: list[Stage]):
        self.built = built
        self.out = out
        self.todo = todo
        self.completed: list[str] = []
        self.before: dict = {}  # stages completed before this session (resume)
        self.done: dict = {}  # all completed stages (the checkpoint's "earlier")
        self.lines: list[str] = []
        self.warnings: list[tuple[str, str]] = []  # (where, warning) as they arose
        self.first_cycle = 1  # of the first stage to run (a resumed stage counts on)
        self.digest = hashlib.sha256(built.project.path.read_bytes()).hexdigest()

    def checkpoint(
        self,
        values: np.ndarray,
        status: str = "running",
        current: dict | None = None,
        error: str | None = None,
    ) -> None:
        """Write checkpoint.json atomically (parameters at ``values``, su as they are)."""
        ref = self.built.refinement
        su = ref.params.su
        data = {
            "format": _CHECKPOINT_FORMAT,
            "chasm_version": __version__,
            "project": str(self.built.project.path),
            "project_sha256": self.digest,
            "status": status,
            "stages": [s.name for s in self.todo],
            "completed": list(self.completed),
            "current": current,
            "error": error,
            "earlier": self.done,
            "parameters": {
                name: {"value": float(v), "su": None if np.isnan(e) else float(e)}
                for name, v, e in zip(ref.params.names, values, su, strict=True)
            },
            "lines": self.lines,
        }
        write_text_atomic(self.out / CHECKPOINT, json.dumps(data, indent=1) + "\n")

    def all_warnings(self, result: Result) -> list[str]:
        """The warnings of ``result`` and, after them, those of the run no longer among them."""
        final = result["warnings"]
        earlier = [f"{at}: {w}" if at else w for at, w in self.warnings if w not in final]
        return list(dict.fromkeys(final + earlier))

    def resume(self, stages: list[str] | None, say: Callable[[str], None]) -> None:
        """Read the checkpoint: completed stages, parameters, lines (InputError if unusable)."""
        path = self.out / CHECKPOINT
        if not path.is_file():
            raise InputError(
                "no checkpoint.json here: nothing to resume (run without --resume)", str(self.out)
            )
        try:
            ck = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"unreadable checkpoint: {exc}", str(path)) from None
        keys = ("status", "stages", "completed", "parameters")
        if not isinstance(ck, dict) or ck.get("format") != _CHECKPOINT_FORMAT:
            raise InputError(f"not a chasm checkpoint (expected {_CHECKPOINT_FORMAT})", str(path))
        if any(k not in ck for k in keys):
            raise InputError(f"incomplete checkpoint: it needs {', '.join(keys)}", str(path))
        if ck.get("status") == "finished":
            raise InputError(
                "the run in this folder finished: nothing to resume "
                "(run without --resume to refine again)",
                str(self.out),
            )
        built = self.built
        names = built.refinement.params.names
        saved = ck["parameters"]
        known = set(names)
        missing = [n for n in names if n not in saved]
        unknown = [n for n in saved if n not in known]
        if missing or unknown:
            raise InputError(
                "the checkpoint does not fit the project's parameters (missing "
                f"{missing[:5]}, unknown {unknown[:5]}); the model changed: run without --resume",
                str(path),
            )
        if stages:
            asked = [s.name for s in self.todo]
            if asked != ck["stages"]:
                raise InputError(
                    f"--stage {asked} differs from the interrupted run's "
                    f"{ck['stages']}; resume without --stage",
                    str(path),
                )
        else:
            wanted = set(ck["stages"])
            self.todo = [s for s in built.stages if s.name in wanted]
            if [s.name for s in self.todo] != ck["stages"]:
                raise InputError(
                    f"the project's stages {[s.name for s in built.stages]} no "
                    f"longer contain the checkpoint's {ck['stages']}",
                    str(path),
                )
        done = list(ck["completed"])
        if [s.name for s in self.todo[: len(done)]] != done or len(done) >= len(self.todo):
            raise InputError(
                f"the checkpoint's completed stages {done} do not lead to a stage "
                f"of {ck['stages']} still to run",
                str(path),
            )
        ref = built.refinement
        ref.set_values(np.array([saved[n]["value"] for n in names], dtype=float))
        su = [np.nan if saved[n]["su"] is None else saved[n]["su"] for n in names]
        ref.params.set_su(np.array(su, dtype=float))
        self.completed = done
        self.before = self.done = ck.get("earlier") or {}
        self.lines = list(ck.get("lines", []))
        nxt = self.todo[len(done)].name
        cur = ck.get("current") or {}
        where = "from its start"
        if cur.get("stage") == nxt and cur.get("cycle"):
            where = (
                f"from the model of its cycle {cur['cycle']} (counting on: its cycle "
                "budget is not renewed)"
            )
            self.first_cycle = int(cur["cycle"]) + 1
        note = f"resumed: stages done {done or 'none'}; stage {nxt} restarts {where}"
        if ck.get("error"):
            note += f" (it had failed: {ck['error']})"
        if ck.get("project_sha256") != self.digest:
            note += "; the project file changed since the checkpoint"
        self.lines.append(note)
        say(note)


def checkpoint_status(out: Path) -> str | None:
    """``status`` of the checkpoint in ``out`` (None: none, or unreadable)."""
    try:
        return json.loads((out / CHECKPOINT).read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError, AttributeError):
        return None

"""One result object: what result.json holds, built once, saved and read back by everything.

:class:`Result` is the content of ``result.json`` (the stable layout of
docs/project-file.md, "Outputs"): ``converged``, ``cycles``, ``score``,
``datasets``, ``parameters``, ``correlations``, ``stages``, then the further
keys of the run in the order they are written (``constraints``,
``restraints``, ``chasm_version``, ``project``, ``implausible``,
``warnings``, ``residual_density``, ``interrupted``, ``stopped_at``). It is

- built from a refinement by :meth:`Result.from_refinement` (the project
  runner adds the project's keys; the report uses it when a folder has no
  result.json; the Python API can call it on any :class:`Refinement`);
- written by :meth:`Result.to_json` (a dict in the documented key order, with
  ``schema_version`` first) and read back by :meth:`Result.from_json` /
  :meth:`Result.read` (the report, ``--resume``);
- a read-only-by-convention mapping as well (``result["datasets"]``,
  ``result.get("warnings")``), so code and tutorials written against the old
  plain dict keep working.

Not to be confused with :mod:`chasm.refine.results`: the solver's figures of
one stage (:class:`~chasm.refine.results.FitResult`, per-cycle
:class:`~chasm.refine.results.CycleInfo`), from which this is assembled.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from chasm.errors import InputError

if TYPE_CHECKING:
    from chasm.refine.refinement import Refinement
    from chasm.refine.results import DatasetFit

__all__ = ["Result", "SCHEMA_VERSION", "finite_or_none"]

#: Version of the result.json layout; raised when a key changes meaning or goes away
#: (new keys do not raise it). Files without the key are version 0 (before issue 18),
#: which has the same layout.
SCHEMA_VERSION = 1

#: The keys every result.json has, in their order (the stable layout).
CORE = ("converged", "cycles", "score", "datasets", "parameters", "correlations", "stages")


def finite_or_none(x: Any) -> float | None:
    """``float(x)``, or None for None, NaN and ±inf (JSON has no NaN)."""
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


def fit_figures(fit: DatasetFit) -> dict[str, float | None]:
    """``factor``, ``gradient_share``, ``information_share`` of a data set at a stage's end."""
    return {
        "factor": finite_or_none(fit.factor),
        "gradient_share": finite_or_none(fit.gradient_share),
        "information_share": finite_or_none(fit.information_share),
    }


@dataclass
class Result(Mapping[str, Any]):
    """The content of result.json.

    Attributes
    ----------
    converged : bool
        The last stage converged.
    cycles : int
        Cycles of all stages.
    score : dict
        ``{"scheme": "NLOG"|..., "value": float or None}``.
    datasets : dict
        Data-set name -> ``{kind, n_obs, n_par, chi2, gof, R1, wR2, Rw, ...,
        factor, gradient_share, information_share, stage}``.
    parameters : dict
        Parameter name -> ``{value, su, free}`` (su None when not refined).
    correlations : list
        ``[name_a, name_b, rho]`` above the correlation threshold (last stage).
    stages : list of dict
        One entry per completed stage.
    extra : dict
        The further keys, in the order they are written.
    """

    converged: bool
    cycles: int
    score: dict[str, Any]
    datasets: dict[str, dict[str, Any]]
    parameters: dict[str, dict[str, Any]]
    correlations: list[list[Any]]
    stages: list[dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)

    # ----------------------------------------------------------------- mapping view
    def __getitem__(self, key: str) -> Any:
        if key == "schema_version":
            return SCHEMA_VERSION
        if key in CORE:
            return getattr(self, key)
        return self.extra[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key == "schema_version":
            raise KeyError("schema_version is fixed by the chasm that writes the file")
        if key in CORE:
            setattr(self, key, value)
        else:
            self.extra[key] = value

    def __iter__(self) -> Iterator[str]:
        yield "schema_version"
        yield from CORE
        yield from self.extra

    def __len__(self) -> int:
        return 1 + len(CORE) + len(self.extra)

    # ----------------------------------------------------------------- JSON
    def to_json(self) -> dict[str, Any]:
        """The result.json content: ``schema_version``, the stable keys, the extra keys."""
        return {key: self[key] for key in self}

    def dumps(self) -> str:
        """The text of result.json (indent 1, one final newline)."""
        return json.dumps(self.to_json(), indent=1) + "\n"

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | str, path: str | None = None) -> Result:
        """A Result from result.json content (a dict or its text).

        Raises
        ------
        InputError
            Not JSON, not an object, a stable key missing, or a schema_version
            newer than this chasm reads.
        """
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"result.json is not valid JSON ({exc.msg}); rerun the refinement to "
                    "rewrite it",
                    path,
                    exc.lineno,
                ) from None
        if not isinstance(data, Mapping):
            raise InputError("result.json must hold a JSON object", path)
        version = data.get("schema_version", 0)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise InputError(
                f"result.json has schema_version {version!r}; this chasm reads up to "
                f"{SCHEMA_VERSION}: update chasm or rerun the refinement",
                path,
            )
        missing = [k for k in CORE if k not in data]
        if missing:
            raise InputError(
                f"result.json lacks {', '.join(missing)}; rerun the refinement to rewrite it",
                path,
            )
        extra = {k: v for k, v in data.items() if k not in CORE and k != "schema_version"}
        return cls(**{k: data[k] for k in CORE}, extra=extra)

    @classmethod
    def read(cls, path: str | Path) -> Result:
        """Read a result.json file (InputError when unreadable or not a result)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read result.json: {exc.strerror or exc}", str(path)) from None
        return cls.from_json(text, str(path))

    # ----------------------------------------------------------------- building
    @classmethod
    def from_refinement(
        cls,
        refinement: Refinement,
        earlier: Mapping[str, Any] | None = None,
        n_par: int | None = None,
    ) -> Result:
        """The result of a refinement in its current state.

        Parameters
        ----------
        refinement : Refinement
            After :meth:`~chasm.refine.refinement.Refinement.run_stage` (any
            number of stages; none gives the start values).
        earlier : dict, optional
            What stages completed before this session (a resumed run):
            ``{"stages": [result.json stage entries], "datasets": {NAME:
            {factor, gradient_share, information_share, stage}}}``; their
            entries come first, and a data set no stage of this session fitted
            keeps its figures from there.
        n_par : int, optional
            Parameters for the GOF (default: those of the last stage).

        Returns
        -------
        Result
            With ``constraints``, ``restraints`` and ``chasm_version`` as extra keys.
        """
        from chasm import __version__
        from chasm.refine.refinement import share_gof
        from chasm.refine.similarity import restraint_summary

        ref = refinement
        earlier = earlier or {}
        outs = ref.outcomes
        last = outs[-1].result if outs else None
        before = list(earlier.get("stages", []))
        if n_par is None:
            n_par = outs[-1].n_free if outs else (before[-1]["n_free"] if before else 0)
        agreement = ref.agreement(n_par)
        datasets: dict[str, dict[str, Any]] = {}
        for name, a in agreement.items():
            row: dict[str, Any] = {"kind": a["kind"], "n_obs": a["n_obs"], "n_par": n_par}
            for key in ("chi2", "gof", "R1", "wR2", "Rw", "R1_gt"):
                row[key] = finite_or_none(a.get(key))
            for key in ("n_gt", "n_read", "observable", "weights"):
                if key in a:
                    row[key] = a[key]
            row.update(factor=None, gradient_share=None, information_share=None, stage=None)
            for o in reversed(outs):  # the last stage that fitted this data set
                fit = next((x for x in o.result.datasets if x.name == name), None)
                if fit is not None:
                    row.update(fit_figures(fit))
                    row["stage"] = o.stage.name
                    break
            if row["stage"] is None and name in earlier.get("datasets", {}):
                row.update(earlier["datasets"][name])
            datasets[name] = row
        share_gof(datasets, n_par)
        params = {}
        for p in ref.params:
            su = p.su if (p.su is not None and p.su > 0) else None
            params[p.name] = {
                "value": float(p.value),
                "su": None if su is None else float(su),
                "free": bool(p.free),
            }
        stages = before + [_stage_entry(o, agreement) for o in outs]
        if last is not None:
            score = finite_or_none(last.score)
        else:
            score = before[-1]["score"] if before else None
        correlations = [[a, b, float(r)] for a, b, r in (last.high_correlations if last else [])]
        return cls(
            converged=bool(last.converged) if last else False,
            cycles=int(sum(st["cycles"] for st in stages)),
            score={"scheme": ref.scheme.upper(), "value": score},
            datasets=datasets,
            parameters=params,
            correlations=correlations,
            stages=stages,
            extra={
                "constraints": {
                    "rows": len(ref.all_constraints()),
                    "max_residual": max(
                        (st["max_constraint_residual"] for st in stages), default=0.0
                    ),
                },
                "restraints": restraint_summary(
                    ref.restraints, ref.params.names, ref.params.values
                ),
                "chasm_version": __version__,
            },
        )

    def stage_summary(self) -> dict[str, Any]:
        """The completed stages, as a resumed run needs them (``earlier`` of from_refinement)."""
        keys = ("factor", "gradient_share", "information_share", "stage")
        return {
            "stages": self.stages,
            "datasets": {n: {k: d.get(k) for k in keys} for n, d in self.datasets.items()},
        }


def _stage_entry(o: Any, agreement: Mapping[str, Any]) -> dict[str, Any]:
    """The result.json entry of one completed stage (a :class:`StageOutcome`)."""
    r = o.result
    used = [x for x in r.datasets if x.name in agreement]
    return {
        "name": o.stage.name,
        "cycles": r.cycles,
        "converged": r.converged,
        "n_free": o.n_free,
        "score": finite_or_none(r.score),
        "gof": finite_or_none(r.gof),
        "message": r.message,
        "convergence": {
            "tol": finite_or_none(o.tol),
            "gn_step_su": finite_or_none(r.final_shift),
            "gradient_su": finite_or_none(r.final_gradient),
            "moving": [[n, float(v)] for n, v in (r.moving or [])[:10]],
        },
        "max_constraint_residual": o.max_constraint_residual,
        "origin": o.origin or None,
        "data": [x.name for x in used],
        "datasets": {
            x.name: {"n_obs": int(x.n), "chi2": finite_or_none(x.chi2), **fit_figures(x)}
            for x in used
        },
    }

"""The observed data of a result folder, for a report made from the folder alone.

``chasm report FOLDER`` has result.json and model.cif but not the
measurements; the residual map and the residual-density analysis need them
(and the phases of the model). :func:`observed_refinement` builds the project
file that result.json names again and sets its parameters to result.json's
values: a :class:`~chasm.refine.refinement.Refinement` at the final model that
:func:`chasm.report.report.write_report` uses for those figures only (its su
and correlations come from result.json, not from this object).

It lives in the project layer because it builds a project; the report layer
below it only receives the refinement.
"""

from __future__ import annotations

import json
from pathlib import Path

from chasm.errors import InputError

__all__ = ["observed_refinement"]


def observed_refinement(folder) -> tuple[object | None, str | None]:
    """The project of a result folder built again at the refined values.

    Parameters
    ----------
    folder : path
        A result folder with result.json (written by ``chasm refine``).

    Returns
    -------
    (Refinement or None, str or None)
        The refinement and a note for the report saying where the data came
        from; or None and the reason (None, None when result.json names no
        project, e.g. a folder of ``chasm demo``).
    """
    path = Path(folder) / "result.json"
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, None  # the report itself says what is wrong with result.json
    project = result.get("project") if isinstance(result, dict) else None
    if not project:
        return None, None
    if not Path(project).is_file():
        return None, (
            f"the project file {project} named in result.json is not there: no residual map "
            "(reflection diagnostics from model.fcf)"
        )
    from chasm.project.build import build
    from chasm.project.project import load_project

    try:
        ref = build(load_project(project)).refinement
    except (InputError, OSError, ValueError, KeyError) as exc:
        return (
            None,
            f"the observed data could not be re-read from {project} ({exc}): no residual map",
        )
    p = ref.params
    values = result.get("parameters", {})
    if set(p.names) != set(values):  # the project was edited since: not this model
        return None, (
            f"the project file {project} no longer describes the refined model (its parameters "
            "differ from result.json's): no residual map from it"
        )
    for name in p.names:
        entry = values.get(name) or {}
        if entry.get("value") is not None:
            p[name].value = float(entry["value"])
    ref.set_values(p.values.copy())
    return ref, (
        f"Residual map and reflection diagnostics from the data of the project file {project}, "
        "read again, at the parameters of result.json."
    )

"""The project file's restraints on a built refinement: target, similarity, local symmetry.

``[[restraints]]`` (target values), ``[[similarity]]`` and
``[[local_symmetry]]`` (:mod:`chasm.refine.similarity`) become
:class:`~chasm.refine.refinement.Restraint` rows of the refinement. Every
error names the project file, the line and the key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chasm.errors import InputError
from chasm.project.schema import find_line
from chasm.refine.similarity import mirror_restraints, similarity_restraints

__all__ = ["add_restraints"]


def add_restraints(project, crystal, models, ref, expand: Callable, split: Sequence[str]) -> None:
    """Add the restraints of ``project`` to ``ref`` (a Refinement).

    ``expand(params, crystal, patterns, where, split)`` resolves patterns to
    names (:func:`chasm.project.build.expand`).

    Raises
    ------
    InputError
        A pattern matching no parameter, σ ≤ 0, atoms of different elements in
        a similarity restraint, no local mirror: with the file and line.
    """
    d = project.data
    src = str(project.path)
    try:
        text = project.path.read_text(encoding="utf-8")
    except OSError:
        text = None
    p = ref.params

    def fail(exc: InputError, key: str):
        line = find_line(text, key)
        return InputError(exc.message, src, line)

    for i, rs in enumerate(d["restraints"]):
        where = f"restraints[{i}].parameter"
        try:
            for name in expand(p, crystal, rs["parameter"], where, split):
                ref.add_restraint(name, rs["target"], rs["sigma"])
        except InputError as exc:
            raise fail(exc, where) from None
    for i, rs in enumerate(d.get("similarity", [])):
        where = f"similarity[{i}]"
        try:
            for r in similarity_restraints(
                crystal, models, p, rs["atoms"], rs["parameters"], rs["sigma"], where
            ):
                ref.add_linear_restraint(r)
        except InputError as exc:
            raise fail(exc, exc.message.split(":", 1)[0]) from None
    for i, rs in enumerate(d.get("local_symmetry", [])):
        where = f"local_symmetry[{i}]"
        try:
            for r in mirror_restraints(crystal, models, p, rs["atom"], rs["sigma"], where):
                ref.add_linear_restraint(r)
        except InputError as exc:
            raise fail(exc, exc.message.split(":", 1)[0]) from None

"""The one result object (issue 18): result.json written, read back and built from a refinement."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chasm import Result
from chasm.errors import InputError
from chasm.refine.result import CORE, SCHEMA_VERSION, finite_or_none
from test_project_joint import joint_case, joint_run  # noqa: F401  (fixtures)

REFERENCE = Path(__file__).parent / "references" / "joint" / "result.json"


@pytest.fixture()
def written() -> dict:
    """A result.json as chasm refine writes it (the joint reference)."""
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


def test_round_trip_keeps_every_key_in_order(written, tmp_path):
    result = Result.from_json(written)
    assert result.to_json() == written
    assert list(result.to_json()) == list(written)
    path = tmp_path / "result.json"
    path.write_text(result.dumps(), encoding="utf-8")
    again = Result.read(path)
    assert again == result and json.loads(path.read_text()) == written


def test_layout_starts_with_the_schema_version_and_the_stable_keys(written):
    assert list(written)[: 1 + len(CORE)] == ["schema_version", *CORE]
    assert written["schema_version"] == SCHEMA_VERSION == 1


def test_mapping_view_reads_and_writes_the_fields(written):
    result = Result.from_json(written)
    assert result["datasets"] is result.datasets
    assert result["warnings"] is result.extra["warnings"]
    assert result.get("interrupted") is None and "stages" in result
    result["cycles"] += 2
    result["stopped_at"] = {"stage": "joint", "cycle": 1}
    assert result.cycles == written["cycles"] + 2
    assert list(result)[-1] == "stopped_at"
    with pytest.raises(KeyError):
        result["schema_version"] = 2


def test_files_before_the_schema_version_are_read(written):
    del written["schema_version"]
    assert Result.from_json(written).to_json()["schema_version"] == SCHEMA_VERSION


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(schema_version=SCHEMA_VERSION + 1), r"schema_version 2.*reads up to 1"),
        (lambda d: d.pop("parameters"), r"lacks parameters"),
    ],
)
def test_bad_result_files_are_input_errors(written, tmp_path, change, message):
    change(written)
    path = tmp_path / "result.json"
    path.write_text(json.dumps(written), encoding="utf-8")
    with pytest.raises(InputError, match=message) as err:
        Result.read(path)
    assert err.value.path == str(path)


def test_invalid_json_names_the_line(tmp_path):
    path = tmp_path / "result.json"
    path.write_text('{\n "converged": true,\n oops\n}', encoding="utf-8")
    with pytest.raises(InputError, match="not valid JSON") as err:
        Result.read(path)
    assert err.value.line == 3


def test_finite_or_none():
    assert finite_or_none(None) is None and finite_or_none(float("nan")) is None
    assert finite_or_none(float("inf")) is None and finite_or_none(2) == 2.0


def test_from_refinement_is_what_the_run_wrote(joint_run):  # noqa: F811  (a fixture)
    """The runner's result.json core equals Result.from_refinement of its end state."""
    outcome, written = joint_run
    built = outcome.built
    again = Result.from_refinement(built.refinement).to_json()
    for key in CORE:
        assert again[key] == written[key], key
    assert again["constraints"] == written["constraints"]
    assert set(again) == {"schema_version", *CORE, "constraints", "restraints", "chasm_version"}

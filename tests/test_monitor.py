"""The progress monitor: stage count and ETA on the printed cycle lines (issue 19, item 4)."""

from __future__ import annotations

import re

import pytest

from chasm.project.monitor import Eta
from chasm.project.run import run_project
from test_project_joint import joint_case  # noqa: F401  (a fixture)


def test_before_any_stage_completed_the_eta_is_the_budget_bound():
    eta = Eta([10, 20], first=1, total=2)
    for _ in range(2):
        eta.record(0.5)
    assert eta.seconds_left(2) == (pytest.approx(0.5 * (8 + 20)), True)
    assert eta.text(2) == "stage 1/2  ETA <=14 s"


def test_after_a_stage_the_eta_uses_its_cycle_count():
    eta = Eta([10, 20, 30], first=2, total=4)  # one stage done before this session
    for _ in range(4):
        eta.record(1.0)
    eta.stage_done(4)  # stage 2 took 4 cycles of 1 s
    eta.record(3.0)  # stage 3, cycle 1: mean 1.4 s
    seconds, bound = eta.seconds_left(1)
    assert not bound
    assert seconds == pytest.approx(1.4 * ((4 - 1) + 4))  # 3 more here, 4 in stage 4
    assert eta.text(1).startswith("stage 3/4  ETA 10 s")
    # beyond the typical count: one more cycle expected; at the budget's end: none
    assert eta.seconds_left(6)[0] == pytest.approx(1.4 * (1 + 4))
    assert eta.seconds_left(20)[0] == pytest.approx(1.4 * 4)


def test_printed_cycle_lines_carry_stage_and_eta_the_listing_not(joint_case):  # noqa: F811
    printed: list[str] = []
    out = run_project(joint_case / "project.toml", echo=printed.append, report=False)
    cycles = [x for x in printed if re.match(r"^\S+\s+\d+\s+score=", x)]
    assert cycles and all(re.search(r"  stage [123]/3  ETA (<=)?\d+ s$", x) for x in cycles)
    assert cycles[0].endswith(tuple(f"stage 1/3  ETA <={n} s" for n in range(1000)))
    assert any("stage 3/3  ETA " in x and "<=" not in x for x in cycles)
    listing = (out.output / "listing.txt").read_text(encoding="utf-8")
    assert "ETA" not in listing and "stage 1/3" not in listing

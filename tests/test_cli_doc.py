"""docs/cli.md is generated from the command line's help and its examples are valid commands."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from chasm.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))


def test_cli_page_is_current():
    from build_cli_doc import DOC, page

    assert DOC.read_text(encoding="utf-8") == page(), (
        "docs/cli.md is stale: run python tools/build_cli_doc.py"
    )


def _examples() -> list[str]:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    found = []
    for block in re.findall(r"example:\n((?:  chasm .*\n?)+)", text):
        found += [line.strip().split("#")[0].strip() for line in block.splitlines()]
    return found


def test_every_subcommand_on_the_page_has_an_example_that_parses():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    examples = _examples()
    assert {shlex.split(e)[1] for e in examples} == set(sub.choices)
    for line in examples:
        args = parser.parse_args(shlex.split(line)[1:])
        assert args.command == shlex.split(line)[1], line


@pytest.mark.parametrize("argv", [["--help"], ["report", "--help"], ["refine", "--help"]])
def test_help_runs_and_matches_the_page(argv, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "88")
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    printed = capsys.readouterr().out.rstrip()
    assert printed in (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")

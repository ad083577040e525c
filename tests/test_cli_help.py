"""One command-line style: a description, an example and -o/--output everywhere (issue 19)."""

from __future__ import annotations

import shlex

import pytest

from chasm.cli import EXAMPLES, build_parser


def _subcommands():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return parser, sub.choices


@pytest.mark.parametrize("name", sorted(_subcommands()[1]))
def test_every_subcommand_has_a_description_and_an_example_that_parses(name):
    parser, choices = _subcommands()
    text = choices[name].format_help()
    assert choices[name].description and len(choices[name].description) > 10
    assert "example:\n  chasm " + name in text
    for line in EXAMPLES[name]:
        argv = shlex.split(line.split("#")[0])[1:]
        args = parser.parse_args(argv)  # the example is a valid command line
        assert args.command == name


@pytest.mark.parametrize("name", ["demo", "sf", "init", "simulate", "refine", "cv"])
def test_output_is_minus_o_or_output_everywhere(name):
    _, choices = _subcommands()
    flags = {s for a in choices[name]._actions for s in a.option_strings}
    assert {"-o", "--output"} <= flags, name

"""Regenerate docs/cli.md from the command line's own help (chasm --help and every subcommand).

Usage: python tools/build_cli_doc.py   (rewrites docs/cli.md; tests/test_cli_doc.py checks it)

The help is formatted at a fixed width (COLUMNS=88) so that the page does not
depend on the terminal it was made in.
"""

from __future__ import annotations

import os
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
WIDTH = "88"

INTRO = """# The command line

Every `chasm` command, with the help it prints (`chasm COMMAND --help`) and a
worked example. This page is generated from the program itself by
`python tools/build_cli_doc.py`; a test checks that it is current, and
tests/test_cli_examples.py runs every example on it (on the real data and a
small simulated project) and checks that it succeeds and writes what it says.

All commands that write use `-o/--output`; `refine` and `cv` take `-q/--quiet`,
`refine` also `-v/--verbose`; errors in your input files are reported as
`chasm: error: FILE, line N: what is wrong and what to do` with exit status 2.
"""


def page() -> str:
    """The Markdown text of docs/cli.md."""
    os.environ["COLUMNS"] = WIDTH  # argparse wraps at the terminal width
    from chasm.cli import EXAMPLES, build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    out = [INTRO, "## chasm", "", "```text", parser.format_help().rstrip(), "```", ""]
    out += ["| command | what it does | example |", "|---|---|---|"]
    helps = {a.dest: a.help for a in sub._choices_actions}
    for name in sub.choices:
        example = EXAMPLES.get(name, [""])[0].split("#")[0].strip()
        out.append(f"| [`{name}`](#chasm-{name}) | {helps.get(name, '')} | `{example}` |")
    out.append("")
    for name, command in sub.choices.items():
        out += [f"## chasm {name}", "", "```text", command.format_help().rstrip(), "```", ""]
    return "\n".join(out)


def main() -> None:
    DOC.write_text(page(), encoding="utf-8")
    print(f"updated {DOC}")


if __name__ == "__main__":
    main()

"""Regenerate the key table of docs/project-file.md from the schema in chasm.project.project.

Usage: python tools/build_project_doc.py   (rewrites the block between the markers)
"""

from __future__ import annotations

from pathlib import Path

from chasm.project.project import SCHEMA
from chasm.project.schema import schema_markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "project-file.md"
BEGIN, END = "<!-- keys:begin -->", "<!-- keys:end -->"


def table() -> str:
    head = ["| key | type | default | meaning |", "|---|---|---|---|"]
    return "\n".join(head + schema_markdown(SCHEMA))


def main() -> None:
    text = DOC.read_text(encoding="utf-8")
    a, b = text.index(BEGIN) + len(BEGIN), text.index(END)
    DOC.write_text(text[:a] + "\n" + table() + "\n" + text[b:], encoding="utf-8")
    print(f"updated {DOC}")


if __name__ == "__main__":
    main()

"""Write docs/api.md, the reference of the public API (``import chasm``), from the docstrings.

Usage: python tools/build_api_doc.py   (rewrites docs/api.md; tests/test_api_doc.py checks
that the committed page is current)

One section per group of the facade (the comments of ``chasm._PUBLIC``), one
entry per name: its signature (with annotations, as written), the module that
defines it, and the summary and parameters/attributes/returns parts of its
numpy-style docstring (the Examples and Notes stay in the source).
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "api.md"

#: Docstring sections copied to the page (others stay in the source).
KEEP = ("Parameters", "Attributes", "Returns", "Raises")

HEAD = """# Python API reference

<!-- Written by tools/build_api_doc.py from the docstrings; do not edit by hand. -->

What `import chasm` gives: every name below is importable as `from chasm import NAME`
(resolved on first use, so `import chasm` stays fast). The tutorials use only these
names ([The Python API](tutorials/python-api.md) shows them at work). Deeper modules
are importable too but are not a promise: they may move between versions.
"""


def groups(init_text: str) -> list[tuple[str, list[str]]]:
    """(group title, names) in the order of ``_PUBLIC`` in chasm/__init__.py."""
    body = init_text[init_text.index("_PUBLIC: dict[str, str] = {") :]
    body = body[: body.index("\n}\n")]
    out: list[tuple[str, list[str]]] = []
    for line in body.splitlines()[1:]:
        line = line.strip()
        if line.startswith("#"):
            out.append((line.lstrip("# ").capitalize(), []))
        elif m := re.match(r'"(\w+)":', line):
            out[-1][1].append(m.group(1))
    return out


def _sections(doc: str) -> tuple[str, dict[str, str]]:
    """The summary paragraph and the numpy sections of a docstring."""
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    for line in lines:
        if not line.strip():
            break
        summary.append(line.strip())
    sections: dict[str, list[str]] = {}
    current = None
    for i, line in enumerate(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and nxt.strip() and set(nxt.strip()) == {"-"}:
            current = line.strip()
            sections[current] = []
        elif current is not None and not (line.strip() and set(line.strip()) == {"-"}):
            sections[current].append(line)
    return " ".join(summary), {k: "\n".join(v).strip("\n") for k, v in sections.items()}


def entry(name: str, obj: object) -> str:
    """The markdown of one public name."""
    kind = "class" if inspect.isclass(obj) else "function"
    try:
        sig = str(inspect.signature(obj))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        sig = "(...)"
    module = getattr(obj, "__module__", "?")
    summary, sections = _sections(inspect.getdoc(obj) or "")
    out = [f"### `{name}`", "", f"```text\n{kind} {name}{sig}\n```", ""]
    out += [f"Defined in `{module}`. {summary}".rstrip(), ""]
    for key in KEEP:
        if sections.get(key):
            out += [f"**{key}**", "", "```text", sections[key], "```", ""]
    return "\n".join(out)


def page() -> str:
    """The whole of docs/api.md."""
    sys.path.insert(0, str(ROOT / "src"))
    import chasm

    init = (ROOT / "src" / "chasm" / "__init__.py").read_text(encoding="utf-8")
    parts = [HEAD]
    for title, names in groups(init):
        parts.append(f"## {title}\n")
        parts += [entry(n, getattr(chasm, n)) for n in names]
    return "\n".join(parts).rstrip() + "\n"


def main() -> None:
    DOC.write_text(page(), encoding="utf-8")
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()

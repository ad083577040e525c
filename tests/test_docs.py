"""The documentation site (mkdocs.yml, docs/): every command it shows is run here.

How a page marks what is run (docs/index.md, "How these pages are tested", says
the same for readers):

* A ``console`` block: a line starting with ``$ `` is a shell command (bash),
  following lines starting with ``> `` continue it (a here-document); the other
  lines are the output shown for it. The commands of a page run in order in
  one temporary folder per page, with the executables of this Python's
  environment first on PATH and ``CHASM_DATA`` set to the real data
  (``../shared/data``). Each must return 0 and print no ``Traceback``; every
  output line shown must appear, in order, in what the command printed on
  stdout, where a line ``...`` is a cut, ``...`` inside a line matches
  anything, integers must be equal and decimals agree within two units of the
  last digit shown or 0.1 %.
* A fenced block directly after a line ``<!-- write: NAME -->`` is written to
  the file NAME in that folder (a file the reader saves), when it is reached.
* On a page with the line ``<!-- run-python -->`` the ``python`` blocks run in
  order in one namespace (a notebook), in the same folder; a ``text`` block
  that follows a python block after blank lines only is the output it prints,
  checked as above.
* A page whose runnable content mentions ``CHASM_DATA`` is skipped when the
  real data are absent.

Besides: every page named in mkdocs.yml exists, every docs page is in the nav,
every relative link between pages resolves, and ``mkdocs build --strict``
succeeds (when mkdocs is installed; it is in the ``test`` extra).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()
TIMEOUT = 600  # seconds per command

FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)\s*$")
WRITE = re.compile(r"^<!--\s*write:\s*(\S+)\s*-->$")
RUN_PYTHON = "<!-- run-python -->"
DECIMAL = re.compile(r"(?<![\w.])[-+]?\d+\.\d+(?:[eE][-+]?\d+)?(?![\w.])")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


# ----------------------------------------------------------------------------- parsing
@dataclass
class Block:
    """One fenced block of a page."""

    lang: str
    text: str
    line: int  # 1-based line of the opening fence
    end: int  # 1-based line of the closing fence
    write: str | None = None  # file name from a preceding <!-- write: NAME -->


@dataclass
class Step:
    """Something to run: a shell command, a file to write, or Python code."""

    kind: str  # "shell", "write", "python"
    text: str
    line: int
    expected: list[str] = field(default_factory=list)
    name: str | None = None


def fenced_blocks(text: str) -> list[Block]:
    """The top-level fenced blocks of a Markdown text, in order."""
    lines = text.splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        marker, lang, start = m.group(1), m.group(2), i
        prev = next((lines[k].strip() for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        body = []
        i += 1
        while i < len(lines) and lines[i].rstrip() != marker:
            body.append(lines[i])
            i += 1
        w = WRITE.match(prev)
        content = "\n".join(body) + "\n"
        out.append(Block(lang, content, start + 1, i + 1, w.group(1) if w else None))
        i += 1
    return out


def _console_steps(block: Block) -> list[Step]:
    steps: list[Step] = []
    for k, line in enumerate(block.text.splitlines()):
        if line.startswith("$ "):
            steps.append(Step("shell", line[2:], block.line + 1 + k))
        elif line.startswith("> ") and steps and not steps[-1].expected:
            steps[-1].text += "\n" + line[2:]
        elif steps and line.strip():
            steps[-1].expected.append(line)
    return steps


def page_steps(text: str) -> list[Step]:
    """The runnable steps of a page, in document order."""
    blocks = fenced_blocks(text)
    python = RUN_PYTHON in text.splitlines()
    lines = text.splitlines()
    steps: list[Step] = []
    for n, b in enumerate(blocks):
        if b.write:
            steps.append(Step("write", b.text, b.line, name=b.write))
        elif b.lang == "console":
            steps += _console_steps(b)
        elif python and b.lang == "python":
            steps.append(Step("python", b.text, b.line))
            after = blocks[n + 1] if n + 1 < len(blocks) else None
            if (
                after is not None
                and after.lang == "text"
                and not any(s.strip() for s in lines[b.end : after.line - 1])
            ):
                steps[-1].expected = after.text.splitlines()
    return steps


def runnable_pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if page_steps(p.read_text(encoding="utf-8")))


# ----------------------------------------------------------------------------- output check
def _literal(text: str) -> str:
    parts = []
    for i, chunk in enumerate(text.split("...")):
        if i:
            parts.append(".*?")
        parts += [r"\s+" if s.isspace() else re.escape(s) for s in re.split(r"(\s+)", chunk) if s]
    return "".join(parts)


def _line_pattern(shown: str) -> tuple[re.Pattern, list[str]]:
    parts, numbers, pos = [], [], 0
    for m in DECIMAL.finditer(shown):
        parts.append(_literal(shown[pos : m.start()]))
        parts.append(r"([-+]?\d+\.\d+(?:[eE][-+]?\d+)?)")
        numbers.append(m.group())
        pos = m.end()
    parts.append(_literal(shown[pos:]))
    return re.compile("".join(parts)), numbers


def _close(shown: str, actual: str) -> bool:
    mantissa, _, exponent = shown.lower().partition("e")
    digits = len(mantissa.split(".")[1])
    unit = 10.0 ** (int(exponent or 0) - digits)
    return abs(float(actual) - float(shown)) <= 2 * unit + 1e-3 * abs(float(shown))


def line_matches(shown: str, actual: str) -> bool:
    """Does an output line shown in the docs match a line printed (numbers with tolerance)?"""
    pattern, numbers = _line_pattern(shown.strip())
    m = pattern.fullmatch(actual.strip())
    return bool(m) and all(_close(s, a) for s, a in zip(numbers, m.groups(), strict=True))


def missing_lines(shown: list[str], printed: str) -> list[str]:
    """Lines shown that are not found, in order, in the printed text ('...' lines skipped)."""
    actual = printed.splitlines()
    pos, missing = 0, []
    for line in shown:
        if line.strip() in ("", "..."):
            continue
        for k in range(pos, len(actual)):
            if line_matches(line, actual[k]):
                pos = k + 1
                break
        else:
            missing.append(line)
    return missing


def test_output_matching_rules():
    assert line_matches("GOF 1.168  Rw 0.0579", "GOF   1.169  Rw 0.0580")
    assert not line_matches("GOF 1.168", "GOF 1.175")
    assert not line_matches("Cu1 0.78", "Cu2 0.78")  # labels and integers are exact
    assert not line_matches("in  4 cycles", "in 5 cycles")
    assert line_matches("wrote .../result.json  (... s)", "wrote /tmp/x/result.json  (12 s)")
    assert line_matches("max 1.7e-08", "max 1.71e-08")
    assert missing_lines(["a 1", "...", "c 3"], "a 1\nb 2\nc 3\n") == []
    assert missing_lines(["c 3", "a 1"], "a 1\nc 3\n") == ["a 1"]  # order matters
    steps = page_steps(
        "<!-- run-python -->\n```console\n$ cat > f <<'EOF'\n> x\n> EOF\n$ cat f\nx\n```\n"
        "<!-- write: a.toml -->\n```toml\nk = 1\n```\n```python\nprint(2)\n```\n\n```text\n2\n```\n"
    )
    assert [s.kind for s in steps] == ["shell", "shell", "write", "python"]
    assert steps[0].text == "cat > f <<'EOF'\nx\nEOF" and steps[1].expected == ["x"]
    assert steps[2].name == "a.toml" and steps[3].expected == ["2"]


# ----------------------------------------------------------------------------- site
def _nav_pages() -> list[str]:
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = text.split("\nnav:", 1)[1]
    return re.findall(r"^\s+-\s+(?:[^:\n]+:\s+)?([\w./-]+\.md)\s*$", nav, flags=re.M)


def test_nav_pages_exist_and_every_page_is_in_nav():
    nav = _nav_pages()
    assert "index.md" in nav and len(nav) == len(set(nav))
    for page in nav:
        assert (DOCS / page).is_file(), f"mkdocs.yml names {page}, not found in docs/"
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert pages <= set(nav), f"pages not in the nav: {sorted(pages - set(nav))}"


def test_relative_links_between_pages_resolve():
    bad = []
    for page in DOCS.rglob("*.md"):
        text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in LINK.findall(text):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue
            path = target.split("#", 1)[0]
            if not (page.parent / path).resolve().is_file():
                bad.append(f"{page.relative_to(ROOT)}: {target}")
    assert not bad, bad


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "site" / "index.html").is_file()


# ----------------------------------------------------------------------------- pages
def _run_python(step: Step, namespace: dict, page: Path) -> str:
    buffer = io.StringIO()
    code = compile(step.text, f"{page.name}, block at line {step.line}", "exec")
    with contextlib.redirect_stdout(buffer):
        exec(code, namespace)  # the page's code, run like a notebook cell
    return buffer.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("page", runnable_pages(), ids=lambda p: p.relative_to(DOCS).as_posix())
def test_page_commands_run(page, tmp_path, monkeypatch):
    text = page.read_text(encoding="utf-8")
    steps = page_steps(text)
    if any("CHASM_DATA" in s.text for s in steps) and not SHARED_DATA.is_dir():
        pytest.skip(f"real data not available ({SHARED_DATA} is absent)")
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["CHASM_DATA"] = str(SHARED_DATA)
    env["MPLBACKEND"] = "Agg"
    monkeypatch.setenv("CHASM_DATA", str(SHARED_DATA))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for step in steps:
        where = f"{page.relative_to(ROOT)}, line {step.line}"
        if step.kind == "write":
            (tmp_path / step.name).write_text(step.text, encoding="utf-8")
            continue
        if step.kind == "python":
            printed = _run_python(step, namespace, page)
        else:
            run = subprocess.run(
                ["bash", "-e", "-o", "pipefail", "-c", step.text],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=TIMEOUT,
            )
            printed = run.stdout
            assert run.returncode == 0, f"{where}: $ {step.text}\n{run.stdout}\n{run.stderr}"
            assert "Traceback" not in run.stderr, f"{where}: {run.stderr}"
        assert "Traceback" not in printed, f"{where}: {printed}"
        missing = missing_lines(step.expected, printed)
        assert not missing, (
            f"{where}: lines shown but not printed: {missing}\n--- printed:\n{printed}"
        )

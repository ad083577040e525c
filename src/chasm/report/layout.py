"""Rendering of a report's blocks to HTML (self-contained) and Markdown.

A report is a list of blocks (tuples), written once and rendered twice:

==============================  =================================================
block                           meaning
==============================  =================================================
``("h", level, text)``          heading (2 and 3 go into the table of contents)
``("p", text)``                 paragraph
``("note", text)``              explanatory paragraph (smaller in HTML)
``("table", headers, rows)``    table of strings
``("img", file, caption, png)`` figure: the HTML embeds the PNG, Markdown links
                                the file written next to report.md
``("details", summary, blocks)`` folded part (HTML ``<details>``; Markdown the
                                same element, which GitHub and most viewers fold)
``("md", text)``                Markdown from elsewhere (headings, pipe tables,
                                paragraphs), turned into blocks for HTML
``("toc",)``                    the table of contents of the headings that follow
==============================  =================================================

Headings get an anchor from their text (``summary``, ``maps``...), unique
within the page; the table of contents links to them in both renderings.
"""

from __future__ import annotations

import base64
import html
import re

from chasm.properties import format_table

__all__ = ["markdown_blocks", "render_html", "render_markdown", "slug"]

STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:72em;margin:auto;padding:0 1em 2em;"
    "line-height:1.4;color:#222}"
    "h1{font-size:1.5em;margin-bottom:.2em}h2{border-bottom:1px solid #ccc;margin-top:1.6em}"
    "table{border-collapse:collapse;margin:.5em 0;font-size:.92em}"
    "td,th{border:1px solid #bbb;padding:2px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}th{background:#f2f2f2}"
    "figure{display:inline-block;vertical-align:top;margin:.5em 1em .5em 0;width:28em;"
    "max-width:100%}figure.wide{width:29em}figure img{max-width:100%}"
    "figcaption{font-size:.88em;color:#444}p.note{font-size:.88em;color:#444}"
    "nav.toc{background:#f7f7f7;border:1px solid #ddd;padding:.4em 1em;font-size:.9em}"
    "nav.toc ul{margin:.2em 0;padding-left:1.2em}"
    # wide screens: the contents in a fixed column on the left, the summary on the first screen
    "@media (min-width:1200px){body{margin-left:17em}nav.toc{position:fixed;top:1em;"
    "left:1em;width:14em;max-height:92vh;overflow:auto}}"
    "details{margin:.6em 0}summary{cursor:pointer;font-weight:600}"
    ".warn{color:#9a3412}"
)


def slug(text: str, taken: set[str]) -> str:
    """An HTML id from a heading, unique among ``taken`` (which it joins)."""
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    name, k = base, 2
    while name in taken:
        name, k = f"{base}-{k}", k + 1
    taken.add(name)
    return name


def markdown_blocks(text: str) -> list[tuple]:
    """Headings, pipe tables and paragraphs of a Markdown text, as blocks."""
    blocks: list[tuple] = []
    para: list[str] = []
    table: list[list[str]] = []

    def flush() -> None:
        if para:
            blocks.append(("p", " ".join(para)))
            para.clear()
        if table:
            rows = [r for r in table if not all(set(c) <= set("-: ") for c in r)]
            blocks.append(("table", rows[0], rows[1:]))
            table.clear()

    for line in text.splitlines():
        s = line.strip()
        if not s:
            flush()
        elif s.startswith("#"):
            flush()
            level = len(s) - len(s.lstrip("#"))
            blocks.append(("h", min(level, 6), s[level:].strip()))
        elif s.startswith("|"):
            if para:
                flush()
            table.append([c.strip() for c in s.strip("|").split("|")])
        else:
            if table:
                flush()
            para.append(s)
    flush()
    return blocks


def _expand(blocks: list[tuple]) -> list[tuple]:
    """``md`` blocks replaced by their blocks (recursively inside ``details``)."""
    out = []
    for b in blocks:
        if b[0] == "md":
            out += markdown_blocks(b[1])
        elif b[0] == "details":
            out.append(("details", b[1], _expand(b[2])))
        else:
            out.append(b)
    return out


def _with_anchors(blocks: list[tuple], taken: set[str] | None = None) -> list[tuple]:
    """Headings as ``("h", level, text, anchor)``, anchors unique in page order."""
    taken = set() if taken is None else taken
    out = []
    for b in blocks:
        if b[0] == "h":
            out.append(("h", b[1], b[2], slug(b[2], taken)))
        elif b[0] == "details":
            out.append(("details", b[1], _with_anchors(b[2], taken)))
        else:
            out.append(b)
    return out


def _toc(blocks: list[tuple]) -> list[tuple[int, str, str]]:
    """(level, text, anchor) of the level-2 and level-3 headings outside folded parts."""
    return [
        (b[1], b[2].split(" (")[0], b[3])  # short entries: no parenthesised detail
        for b in blocks
        if b[0] == "h" and b[1] in (2, 3)
    ]


def render_markdown(blocks: list[tuple]) -> str:
    """The Markdown text of the blocks (report.md)."""
    blocks = _with_anchors(_expand(blocks))
    toc = _toc(blocks)

    def render(bs) -> list[str]:
        out = []
        for b in bs:
            kind = b[0]
            if kind == "h":
                out.append(f'{"#" * b[1]} {b[2]} <a id="{b[3]}"></a>')
            elif kind in ("p", "note"):
                out.append(b[1])
            elif kind == "table":
                out.append(format_table(b[1], b[2], markdown=True))
            elif kind == "img":
                out.append(f"![{b[2]}]({b[1]})\n\n*{b[2]}*")
            elif kind == "details":
                out.append(f"<details><summary>{html.escape(b[1])}</summary>")
                out += render(b[2])
                out.append("</details>")
            elif kind == "toc":
                out.append(
                    "\n".join(f"{'    ' * (level - 2)}- [{text}](#{a})" for level, text, a in toc)
                )
        return out

    return "\n\n".join(render(blocks)) + "\n"


def render_html(title: str, blocks: list[tuple]) -> str:
    """A self-contained HTML page of the blocks (report.html): images embedded, no links out."""
    e = html.escape
    blocks = _with_anchors(_expand(blocks))
    toc = _toc(blocks)

    def render(bs) -> list[str]:
        out = []
        for b in bs:
            kind = b[0]
            if kind == "h":
                out.append(f'<h{b[1]} id="{b[3]}">{e(b[2])}</h{b[1]}>')
            elif kind == "p":
                out.append(f"<p>{e(b[1])}</p>")
            elif kind == "note":
                out.append(f'<p class="note">{e(b[1])}</p>')
            elif kind == "table":
                out.append("<table><tr>" + "".join(f"<th>{e(str(h))}</th>" for h in b[1]) + "</tr>")
                for row in b[2]:
                    out.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>")
                out.append("</table>")
            elif kind == "img":
                data = base64.b64encode(b[3]).decode("ascii")
                wide = "" if b[1].startswith("diag_") else ' class="wide"'  # maps: larger
                out.append(
                    f'<figure{wide}><img alt="{e(b[2])}" src="data:image/png;base64,{data}">'
                    f"<figcaption>{e(b[2])}</figcaption></figure>"
                )
            elif kind == "details":
                out.append(f"<details><summary>{e(b[1])}</summary>")
                out += render(b[2])
                out.append("</details>")
            elif kind == "toc":
                items, level = ['<nav class="toc"><strong>Contents</strong><ul>'], 2
                for lv, text, a in toc:
                    while lv > level:
                        items.append("<ul>")
                        level += 1
                    while lv < level:
                        items.append("</ul>")
                        level -= 1
                    items.append(f'<li><a href="#{a}">{e(text)}</a></li>')
                items += ["</ul>"] * (level - 1) + ["</nav>"]
                out.append("".join(items))
        return out

    page = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        *render(blocks),
        "</body></html>",
    ]
    return "\n".join(page) + "\n"

"""The report's rendering pieces (chasm.report.layout, sections): fast, no refinement."""

from __future__ import annotations

import re

from chasm.report.layout import markdown_blocks, render_html, render_markdown
from chasm.report.report import _shorten
from chasm.report.sections import charged_parameters, side_by_side, stage_rows


def test_markdown_from_a_provider_becomes_blocks():
    text = "## Topology\n\nTwo lines\nof text.\n\n| a | b |\n|---|--:|\n| 1 | 2 |\n\nEnd."
    assert markdown_blocks(text) == [
        ("h", 2, "Topology"),
        ("p", "Two lines of text."),
        ("table", ["a", "b"], [["1", "2"]]),
        ("p", "End."),
    ]


def test_contents_link_every_heading_once_even_repeated_ones():
    blocks = [
        ("h", 1, "Report"),
        ("toc",),
        ("h", 2, "Maps"),
        ("h", 3, "Peaks (xray)"),
        ("h", 2, "Maps"),
        ("details", "folded", [("table", ["x"], [["1"]])]),
        ("md", "### From elsewhere"),
    ]
    page = render_html("t", blocks)
    ids = re.findall(r'<h\d id="([^"]+)"', page)
    assert ids == ["report", "maps", "peaks-xray", "maps-2", "from-elsewhere"]
    assert re.findall(r'href="#([^"]+)"', page) == ids[1:]
    assert ">Peaks</a>" in page  # the contents leave out the parenthesised detail
    assert "<details><summary>folded</summary>" in page
    md = render_markdown(blocks)
    assert "- [Maps](#maps)\n    - [Peaks](#peaks-xray)\n- [Maps](#maps-2)" in md
    assert "<details><summary>folded</summary>" in md and "| x |" in md


def test_long_lists_of_names_in_notes_are_cut():
    names = ", ".join(f"C{i}.x" for i in range(40))
    note = f"su from the covariance (not refined in the last stage (su² only): {names})"
    short = _shorten(note)
    assert "C0.x, C1.x" in short and "C7.x and 32 more" in short and "C8.x" not in short
    assert _shorten("a: b, c") == "a: b, c"


def test_side_by_side_reads_down_the_columns():
    rows = [[f"p{i}", str(i)] for i in range(7)]
    headers, table = side_by_side(rows, 3)
    assert headers == ["parameter", "value(su)"] * 3
    assert table[0] == ["p0", "0", "p3", "3", "p6", "6"]
    assert table[2] == ["p2", "2", "p5", "5", "", ""]


def test_charged_parameters_and_stage_rows():
    result = {
        "datasets": {"a": {"n_obs": 300, "n_par": 40}, "b": {"n_obs": 100, "n_par": 40}},
        "stages": [
            {
                "name": "s",
                "n_free": 40,
                "cycles": 3,
                "gof": 1.5,
                "converged": True,
                "data": ["a", "b"],
                "datasets": {"a": {"n_obs": 300}, "b": {"n_obs": 100}},
            }
        ],
        "restraints": {"similarity": {"n": 6}, "local-symmetry": {"n": 4}},
    }
    assert charged_parameters(result) == {"a": 30.0, "b": 10.0}
    headers, rows = stage_rows(result)
    assert rows == [["s", "a, b", "400", "10", "40", "3", "1.500", "yes"]]
    del result["restraints"]
    assert stage_rows(result)[1][0][3] == "-"  # unknown, not 0


def test_formula_of_the_formula_unit_in_hill_order():
    from chasm.crystal.structure import Atom, Crystal
    from chasm.examples.urea_model import example_structure
    from chasm.report.sections import formula_text

    # urea: C and O on 2-fold sites (multiplicity 2), N, H1, H2 general (4): Z = 2
    assert formula_text(example_structure()) == "C H4 N2 O, Z = 2"
    fluorite = Crystal.from_parts(
        [5.46, 5.46, 5.46, 90, 90, 90],
        "F m -3 m",
        [
            Atom("Ca1", "Ca", [0, 0, 0], uiso=0.005),
            Atom("F1", "F", [0.25, 0.25, 0.25], uiso=0.005),
        ],
    )
    assert formula_text(fluorite) == "Ca F2, Z = 4"  # no carbon: alphabetical
    half = Crystal.from_parts(
        [5.46, 5.46, 5.46, 90, 90, 90],
        "P 1",
        [Atom("Ca1", "Ca", [0, 0, 0], uiso=0.005, occupancy=0.5)],
    )
    assert formula_text(half) is None  # Z undefined with a partly occupied site

"""The refinement report (chasm.report): files, self-containment, tables, maps.

The case is the joint X-ray / unpolarised / polarised-neutron project of
tests/test_project_joint.py (data simulated from a known charge and spin
model, stages "charge", "pnd-spin", "joint"), run through the project runner.
The report is written from the result folder alone and from the Refinement;
the tables must carry the refined values with their su, as result.json and
the Refinement have them.
"""

from __future__ import annotations

import base64
import json
import re
import shutil

import pytest

from chasm.errors import InputError
from chasm.project.run import run_project
from chasm.properties import format_value
from chasm.report import Snapshot, structure_from_folder, write_report
from test_project_joint import joint_case  # noqa: F401  (the simulated joint data)


@pytest.fixture(scope="module")
def run(joint_case):  # noqa: F811
    out = run_project(joint_case / "project.toml", echo=None, report=write_report)
    return out, json.loads((out.output / "result.json").read_text())


def _section(page: str, anchor: str) -> str:
    """The HTML from the heading with this id to the end of its first table."""
    return page.split(f'id="{anchor}"')[1].split("</table>")[0]


def _cells(table: str, first: str) -> list[str]:
    """The cells after the first one of the row that starts with ``first``."""
    row = re.search(r"<tr><td>" + re.escape(first) + r"</td>(.*?)</tr>", table).group(1)
    return re.findall(r"<td>([^<]*)</td>", row)


def _images(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', text)]


def test_report_from_the_folder_alone(run, tmp_path, capsys):
    out, result = run
    folder = tmp_path / "copy"
    shutil.copytree(out.output, folder)
    inputs = ("result.json", "model.cif", "listing.txt")
    before = {name: (folder / name).read_bytes() for name in inputs}
    files = write_report(folder, progress=True)
    said = capsys.readouterr().err
    assert "report: maps 1/2 deformation" in said and "report: maps 2/2 spin" in said
    assert re.search(r"report: diagnostics 6/6 correlations \(\d+\.\d s\)", said)
    assert files["html"].is_file() and files["md"].is_file()
    for name, data in before.items():  # inputs untouched
        assert (folder / name).read_bytes() == data
    page = files["html"].read_text()
    md = files["md"].read_text()
    # self-contained: every src is a data URI, no external links or stylesheets
    assert not re.search(r'src="(?!data:)', page) and "<link" not in page
    imgs = _images(page)
    # maps: deformation and spin, no residual map without the observed data; diagnostics
    # from model.fcf: Fo vs Fc, normal probability, DRK (no residual analysis without phases)
    maps = sorted(k for k in files if k.startswith("report_"))
    diag = sorted(k for k in files if k.startswith("diag_"))
    assert maps == ["report_deformation.png", "report_spin.png"]
    assert diag == ["diag_drk_xray.png", "diag_fofc_xray.png", "diag_normal_xray.png"]
    assert len(imgs) == 5 and all(b.startswith(b"\x89PNG") for b in imgs)
    assert (folder / "report_deformation.png").read_bytes() in imgs
    assert "![" in md and "(report_spin.png)" in md
    # the refined values with su, as result.json has them
    p = result["parameters"]
    for name in ("Cu1.Pv.spin", "Cu1.P20", "N1.Pv.spin", "xray.scale"):
        cell = format_value(p[name]["value"], p[name]["su"])
        assert "(" in cell and f"<td>{cell}</td>" in page and f"| {cell} |" in md, name
    for name, d in result["datasets"].items():
        assert f"<td>{name}</td>" in page and f"<td>{d['n_obs']}</td>" in page
        assert f"<td>{d['gradient_share']:.3f}</td>" in page
    assert "WITHOUT correlations" in page
    assert "Spin populations" in md and "Rw(1−R)" in md
    # a results section: summary, maps, properties, diagnostics, parameters, in this order,
    # every entry of the contents pointing at a heading (HTML and Markdown)
    order = [page.index(f'<h2 id="{a}"') for a in ("summary", "maps", "properties")]
    order += [page.index(f'<h2 id="{a}"') for a in ("diagnostics", "parameters")]
    assert order == sorted(order) and page.index('<nav class="toc">') < order[0]
    for target in re.findall(r'href="#([^"]+)"', page):
        assert f'id="{target}"' in page, target
    for target in re.findall(r"\]\(#([^)]+)\)", md):
        assert f'<a id="{target}"></a>' in md, target
    assert "<details><summary>Fixed, exact or not refined in the last stage" in page
    assert "Rigid-bond test" in md and "Cu1–N1" in md
    assert "the residual map needs" in md and "model.fcf of the folder" in md
    # the rebuilt structure has the split atoms and the values of result.json
    sm = structure_from_folder(folder)
    assert sm.split_labels() == ["Cu1", "N1"] and sm.basis == "chargespin"
    values = dict(zip(sm.names, sm.values(), strict=True))
    assert values["Cu1.Pv.spin"] == pytest.approx(p["Cu1.Pv.spin"]["value"], abs=1e-12)


def test_report_from_the_refinement(run, tmp_path):
    out, result = run
    ref = out.built.refinement
    folder = tmp_path / "rich"
    shutil.copytree(out.output, folder)
    extra = Snapshot(
        "given", {n: p["value"] for n, p in result["parameters"].items()}, n_obs=7, gof=9.87
    )
    files = write_report(folder, ref, snapshots=[extra])
    page = files["html"].read_text()
    assert len(_images(page)) == 7  # three maps with the residual one, four diagnostics
    assert "report_residual.png" in files and "diag_residual_xray.png" in files
    # the spin table: the PND-only stage, the extra snapshot and the final column
    table = _section(page, "spin-populations")
    head = re.findall(r"<th>([^<]*)</th>", table)
    assert head == ["", "stage pnd-spin", "given", "final"]
    row = re.search(r"<tr><td>Cu1 Pv spin \(μB\)</td>(.*?)</tr>", table).group(1)
    cells = re.findall(r"<td>([^<]*)</td>", row)
    assert cells[2] == format_value(ref.params["Cu1.Pv.spin"].value, ref.params["Cu1.Pv.spin"].su)
    pnd_stage = next(o for o in ref.outcomes if o.stage.name == "pnd-spin")
    k = ref.params.names.index("Cu1.Pv.spin")
    assert cells[0] == format_value(pnd_stage.result.p[k], pnd_stage.result.su_p[k])
    n_par = re.search(r"<tr><td>N param</td>(.*?)</tr>", table).group(1)
    assert re.findall(r"<td>([^<]*)</td>", n_par) == [
        str(pnd_stage.n_free),
        "-",
        str(ref.outcomes[-1].n_free),
    ]
    assert "<td>9.870</td>" in table
    n_obs = sum(d["n_obs"] for d in result["datasets"].values() if d["kind"] == "pnd")
    assert f"<td>{n_obs}</td>" in table
    assert "su from the covariance of the last stage" in page
    assert "WITHOUT correlations" not in page
    # the correlation table holds the largest |rho| of the last stage
    r = ref.outcomes[-1].result
    assert (
        f"{max(abs(x) for a, b, x in r.high_correlations):.3f}" in page
        if r.high_correlations
        else True
    )


def test_bad_folder(tmp_path):
    with pytest.raises(InputError, match="no result.json.*output folder of `chasm refine`"):
        write_report(tmp_path)
    demo = tmp_path / "demo"  # what `chasm demo` leaves: its own report, no result.json
    demo.mkdir()
    (demo / "table1.txt").write_text("Table 1\n")
    with pytest.raises(InputError, match="`chasm demo` folder.*--write-project"):
        write_report(demo)
    with pytest.raises(InputError, match="does not exist"):
        write_report(tmp_path / "absent")
    (tmp_path / "result.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON") as exc:
        write_report(tmp_path)
    assert exc.value.line == 1


def test_refine_writes_the_report_and_the_cli_rewrites_it(run, capsys):
    from chasm.cli import main

    folder = run[0].output
    assert (folder / "report.html").is_file() and (folder / "report.md").is_file()
    (folder / "report.md").unlink()
    assert main(["report", str(folder), "--no-maps"]) == 0
    assert "report.html" in capsys.readouterr().out
    text = (folder / "report.md").read_text()
    assert "Cu1" in text


def test_one_gof_per_table_with_its_n_and_parameters(run, tmp_path):
    """The report's GOFs are result.json's, each with the N and parameters that give it."""
    out, result = run
    folder = tmp_path / "gof"
    shutil.copytree(out.output, folder)
    page = write_report(folder, out.built.refinement)["html"].read_text()
    sets = result["datasets"]
    total = sum(d["n_obs"] for d in sets.values())
    n_par = result["stages"][-1]["n_free"]
    table = _section(page, "agreement-per-data-set")
    for name, d in sets.items():
        kind, n_obs, charged, _r1, _wr2, _rw, gof = _cells(table, name)[:7]
        assert gof == f"{d['gof']:.3f}" and int(n_obs) == d["n_obs"]
        # the GOF follows from the N and the parameters shown beside it
        assert float(charged) == pytest.approx(n_par * d["n_obs"] / total, abs=0.05)
        assert (d["chi2"] / (d["n_obs"] - n_par * d["n_obs"] / total)) ** 0.5 == pytest.approx(
            d["gof"], rel=1e-9
        )
    stages = _section(page, "stages")
    for s in result["stages"]:
        cells = _cells(stages, s["name"])
        assert cells[5] == f"{s['gof']:.3f}" and cells[3] == str(s["n_free"])
    # the spin table's final GOF is the flipping ratios' GOF of the data-set table
    pnd = [d for d in sets.values() if d["kind"] == "pnd"]
    chi2 = sum(d["chi2"] for d in pnd)
    dof = sum(d["n_obs"] * (1 - n_par / total) for d in pnd)
    spin = _section(page, "spin-populations")
    assert _cells(spin, "GOF (flipping ratios)")[-1] == f"{(chi2 / dof) ** 0.5:.3f}"
    assert _cells(spin, "N obs (flipping ratios)")[-1] == str(sum(d["n_obs"] for d in pnd))
    charged = sum(n_par * d["n_obs"] / total for d in pnd)
    assert _cells(spin, "N param charged to them")[-1] == f"{charged:.1f}"


#: a value with an su in parentheses, as printed anywhere
SU = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?\(([^()]*)\)")


def _su_problems(text: str) -> list[str]:
    """Every value(su) that breaks the one style (the rule of 19, IUCr notation).

    The su in parentheses has one significant digit 1-9 or two 10-19, in units of
    the last digit of the value, never 0; an su of 20 or more on an integer value
    is written with the value's trailing zeros (1200(300), -10(20)).
    """
    bad = []
    for m in SU.finditer(text):
        inner = m.group(1)
        if not inner.isdigit():
            continue  # not an su: "2(xray)" and the like
        value = m.group(0)[: -len(inner) - 2]
        ok = bool(re.fullmatch(r"[1-9]|1\d", inner))
        wide = re.fullmatch(r"(1\d|[1-9])(0+)", inner)
        if not ok and wide:  # only on an integer value rounded to the same place
            zeros = wide.group(2)
            ok = "." not in value and (value.lstrip("-") == "0" or value.endswith(zeros))
        if not ok:
            bad.append(m.group(0))
    # the older styles: a decimal su in parentheses, an su in e-notation in a table
    bad += re.findall(r"\d\(0?\.\d+\)", text)
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip("| ").split("|")] if line.startswith("|") else []
        bad += [c for c in cells if re.fullmatch(r"-?\d+(\.\d+)?e[-+]\d+", c)]
    return bad


def test_every_su_in_every_output_follows_one_style(run, tmp_path):
    out, _ = run
    folder = tmp_path / "su"
    shutil.copytree(out.output, folder)
    files = write_report(folder, out.built.refinement)
    outputs = [files["md"], files["html"], folder / "listing.txt"]
    outputs += [f for f in (folder / "model_core.cif",) if f.is_file()]
    seen = 0
    for path in outputs:
        text = path.read_text()
        assert _su_problems(text) == [], path.name
        seen += len(SU.findall(text))
    assert seen > 50  # the check did see values with su
    # the checker itself catches each wrong style
    assert _su_problems("0.7905(0.0058) 0.79(58) 1.0(0) 3.1(05) 1.5(20) 12(30)\n| 2.5e-05 |") == [
        "0.79(58)",
        "1.0(0)",
        "3.1(05)",
        "1.5(20)",
        "12(30)",
        "5(0.0058)",
        "2.5e-05",
    ]
    # and lets the IUCr forms pass: su of 20 or more on a value rounded to its place
    assert _su_problems("-10(20) 0(30) 1200(300) 0.123(3) 123.4(15) 1.006(10) 100(110)") == []


def test_chasm_report_reads_the_observed_data_of_the_project_again(run, tmp_path):
    from chasm.cli import main
    from chasm.project.observed import observed_refinement

    out, result = run
    folder = tmp_path / "cli"
    shutil.copytree(out.output, folder)
    assert main(["report", str(folder)]) == 0
    md = (folder / "report.md").read_text()
    assert (folder / "report_residual.png").is_file() and "(diag_residual_xray.png)" in md
    assert "read again, at the parameters of result.json" in md
    ref, _ = observed_refinement(folder)  # at result.json's values
    for name in ("Cu1.Pv.spin", "xray.scale"):
        assert ref.params[name].value == pytest.approx(result["parameters"][name]["value"])
    # a project file gone, or edited since (other parameters): not used, and said so
    moved = dict(result, project=str(tmp_path / "gone" / "project.toml"))
    (folder / "result.json").write_text(json.dumps(moved))
    assert (
        observed_refinement(folder)[0] is None and "is not there" in observed_refinement(folder)[1]
    )
    changed = dict(result, parameters={**result["parameters"], "X9.Pv": {"value": 1.0}})
    (folder / "result.json").write_text(json.dumps(changed))
    ref, note = observed_refinement(folder)
    assert ref is None and "no longer describes the refined model" in note
    files = write_report(folder, maps=False, extra_notes=[note])
    assert "no longer describes" in files["md"].read_text()
    assert "diag_residual_xray.png" not in files  # model.fcf instead: no phases
    (folder / "result.json").write_text(json.dumps(dict(result, project=None)))
    assert observed_refinement(folder) == (None, None)

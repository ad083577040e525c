"""Behaviour references: result.json, model.cif and listing.txt against committed files.

The safety net of the refactoring of issue 18 (one Result, run.py split, data-set
protocol, layers): the outputs of a run must stay what they were, except for what
legitimately varies from run to run (cycle timings, the output folder's path, the
chasm version). Two projects:

- the joint case of test_project_joint.py (X-ray + unpolarised + polarised
  neutrons, data simulated by chasm with a fixed seed, about 5 s): in the
  default suite and in CI;
- urea (real X-ray data of ../shared/data, ``chasm init`` then ``chasm
  refine``, about 5 s): skipped without the data (so not in CI);
- YTiO3 (real flipping ratios of ../shared/data through the Python API, the
  spherical Ti3+ moment of the tutorial): result.json only, skipped without
  the data;
- the demo at a small size (``slow``): model.cif and table1.txt.

Numbers are compared with a tolerance: a relative 1e-6 for the floats of
result.json, and for printed numbers one unit of their last printed digit (or a
relative 1e-6, whichever is larger), so that round-off of another BLAS does
not fail the test while any real change of a figure, a key, a line or a word
does. To rewrite the references after an intended change::

    CHASM_UPDATE_REFERENCES=1 PYTHONPATH=src python -m pytest -q \
        tests/test_output_references.py -m "slow or not slow"

and say in the commit message why the outputs changed.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pytest

from chasm import __version__
from chasm.cli import main
from chasm.project.run import run_project
from test_project_joint import joint_case  # noqa: F401  (a fixture)

REFERENCES = Path(__file__).parent / "references"
FILES = ("result.json", "model.cif", "listing.txt")
UPDATE = os.environ.get("CHASM_UPDATE_REFERENCES") == "1"
REL = 1e-6

#: A number as printed (integers, decimals, exponents).
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
#: The seconds of a cycle at the end of a cycle line (``  0.02s``, maybe ``[rejected]``).
SECONDS = re.compile(r"  \d+\.\d\ds(?=(  \[rejected\])?$)", re.MULTILINE)


def mask(text: str, folder: Path) -> str:
    """The text with the run's folder, the chasm version and cycle timings masked."""
    text = text.replace(str(folder), "<folder>")
    text = text.replace(f"chasm {__version__}", "chasm <version>")
    text = text.replace(f'"chasm_version": "{__version__}"', '"chasm_version": "<version>"')
    return SECONDS.sub("  <t>s", text)


def _unit(token: str) -> float:
    """One unit of the last printed digit of a number token (1 for an integer)."""
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (-decimals + (int(exponent) if exponent else 0))


def same_numbers(a: float, b: float, unit: float = 0.0) -> bool:
    """``a`` equals ``b`` to a relative REL or to ``unit`` (one printed digit)."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= max(REL * max(abs(a), abs(b)), unit * 1.000001, 1e-12)


def text_differences(ref: str, new: str) -> list[str]:
    """Lines of ``new`` that differ from ``ref`` beyond the printed precision."""
    out: list[str] = []
    ref_lines, new_lines = ref.splitlines(), new.splitlines()
    if len(ref_lines) != len(new_lines):
        out.append(f"{len(new_lines)} lines instead of {len(ref_lines)}")
    for i, (r, n) in enumerate(zip(ref_lines, new_lines, strict=False), 1):
        if r == n:
            continue
        r_words, n_words = NUMBER.split(r), NUMBER.split(n)
        r_nums, n_nums = NUMBER.findall(r), NUMBER.findall(n)
        same = r_words == n_words and len(r_nums) == len(n_nums)
        same = same and all(
            same_numbers(float(x), float(y), max(_unit(x), _unit(y)))
            for x, y in zip(r_nums, n_nums, strict=True)
        )
        if not same:
            out.append(f"line {i}:\n  reference: {r}\n  now:       {n}")
        if len(out) > 20:
            break
    return out


def json_differences(ref, new, where: str = "") -> list[str]:
    """Where two JSON values differ: keys (and their order), types, strings, numbers."""
    if isinstance(ref, dict) and isinstance(new, dict):
        if list(ref) != list(new):
            return [f"{where or '/'}: keys {list(new)} instead of {list(ref)}"]
        return [d for k in ref for d in json_differences(ref[k], new[k], f"{where}/{k}")]
    if isinstance(ref, list) and isinstance(new, list):
        if len(ref) != len(new):
            return [f"{where}: {len(new)} items instead of {len(ref)}"]
        return [
            d
            for i, (a, b) in enumerate(zip(ref, new, strict=True))
            for d in json_differences(a, b, f"{where}[{i}]")
        ]
    if isinstance(ref, bool) or isinstance(new, bool) or ref is None or new is None:
        return (
            []
            if ref is new or ref == new and type(ref) is type(new)
            else [f"{where}: {new!r} instead of {ref!r}"]
        )
    if isinstance(ref, int | float) and isinstance(new, int | float):
        if type(ref) is not type(new) or not same_numbers(float(ref), float(new)):
            return [f"{where}: {new!r} instead of {ref!r}"]
        return []
    if isinstance(ref, str) and isinstance(new, str):
        return [f"{where}: {d}" for d in text_differences(ref, new)]
    return [f"{where}: {new!r} instead of {ref!r}"]


def check_outputs(case: str, out: Path, folder: Path, files: tuple[str, ...] = FILES) -> None:
    """Compare (or, with CHASM_UPDATE_REFERENCES=1, write) the outputs of ``case``."""
    problems = []
    for name in files:
        text = mask((out / name).read_text(encoding="utf-8"), folder)
        ref_path = REFERENCES / case / name
        if UPDATE:
            ref_path.parent.mkdir(parents=True, exist_ok=True)
            ref_path.write_text(text, encoding="utf-8")
            continue
        assert ref_path.is_file(), f"no reference {ref_path}: run with CHASM_UPDATE_REFERENCES=1"
        ref = ref_path.read_text(encoding="utf-8")
        if name.endswith(".json"):
            found = json_differences(json.loads(ref), json.loads(text))
        else:
            found = text_differences(ref, text)
        problems += [f"{case}/{name}: {d}" for d in found[:20]]
    if UPDATE:
        pytest.skip(f"references of {case} written to {REFERENCES / case}")
    assert not problems, "\n".join(problems)


def test_joint_case_outputs_match_the_references(joint_case):  # noqa: F811
    out = run_project(joint_case / "project.toml", echo=None, report=False)
    check_outputs("joint", out.output, joint_case)


def test_urea_outputs_match_the_references(shared_data, tmp_path):
    folder = shared_data / "xray" / "urea"
    project = tmp_path / "project.toml"
    args = ["init", str(folder / "iam.cif"), "--xray", str(folder / "iam.hkl")]
    assert main([*args, "-o", str(project)]) == 0
    assert (
        main(["refine", str(project), "--output", str(tmp_path / "out"), "-q", "--no-report"]) == 0
    )
    check_outputs("urea", tmp_path / "out", tmp_path)


def test_the_comparison_sees_a_change():
    """The comparison is not blind: a changed digit, word, key or line is reported."""
    ref = "stage a  3  score=12.5  wR2(xray)=0.0312  <t>s"
    assert not text_differences(ref, "stage a  3  score=12.5  wR2(xray)=0.0313  <t>s")
    assert text_differences(ref, "stage a  3  score=12.5  wR2(xray)=0.0315  <t>s")
    assert text_differences(ref, "stage b  3  score=12.5  wR2(xray)=0.0312  <t>s")
    assert text_differences(ref, ref + "\nextra")
    assert not json_differences({"a": 1.0, "b": [1, "x"]}, {"a": 1.0 + 1e-9, "b": [1, "x"]})
    assert json_differences({"a": 1.0, "b": 2}, {"b": 2, "a": 1.0})
    assert json_differences({"a": 1.0}, {"a": 1.001})
    assert json_differences({"a": None}, {"a": 0.0})
    assert json_differences({"a": 1}, {"a": 1.0})
    assert (
        mask("x  0.02s\ny  1.50s  [rejected]", Path("/nowhere")) == "x  <t>s\ny  <t>s  [rejected]"
    )


def test_ytio3_result_matches_the_reference(shared_data, tmp_path):
    """YTiO3 flipping ratios through the Python API (the tutorial's spherical Ti3+ moment).

    No project file: the result is :meth:`Result.from_refinement` of the refinement,
    written as result.json would be.
    """
    from chasm import (
        PndData,
        PndSpinModel,
        Refinement,
        Result,
        SphericalAtom,
        SpinSite,
        Stage,
        ion_form_factor,
        read_rcif,
    )

    pnd = read_rcif(shared_data / "pnd" / "ytio3" / "ytio3.rcif")
    sears = {"Y": 7.75, "Ti": -3.438, "O": 5.803}  # coherent scattering lengths, fm
    site = SpinSite("Ti", ion_form_factor("Ti3+"), moment=0.5)
    spin = PndSpinModel.from_rcif(pnd.crystal(), b_overrides=sears, sites={"Ti": site})
    sets = [PndData(d.name, d, spin) for d in pnd.datasets]
    atoms = [SphericalAtom(a.element) for a in spin.crystal.atoms]
    ref = Refinement(spin.crystal, atoms, sets)
    ref.run_stage(Stage("spin", free=["Ti.moment"], max_cycles=80))
    (tmp_path / "result.json").write_text(Result.from_refinement(ref).dumps(), encoding="utf-8")
    check_outputs("ytio3", tmp_path, tmp_path, files=("result.json",))


@pytest.mark.slow
def test_demo_outputs_match_the_references(tmp_path):
    """`chasm demo` at a small size (X-ray to 0.45 1/A, 200 UND): model.cif and table1.txt."""
    from chasm.demo import run_demo

    run_demo(tmp_path, xray_smax=0.45, und_count=200, maps=False, echo=None)
    check_outputs("demo", tmp_path, tmp_path, files=("model.cif", "table1.txt"))

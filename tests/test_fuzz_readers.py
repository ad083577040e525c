"""Fuzzing the file readers: a mutated file gives a valid object or an InputError, never else.

Small valid texts of every format (CIF, HKLF 4 fixed and free, XD, rcif, rhoCIF)
are mutated by hypothesis: a number replaced by NaN, inf, 1e308, 1e999, a huge
integer, a 400-digit number or ``1/0``; truncation; two lines swapped or one
duplicated; bytes inserted (NUL, latin-1, a UTF-16 mark, CR). Bounded: a few
dozen examples per reader, the whole file in well under 30 s.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chasm.crystal.cif import read_cif
from chasm.density.model import HansenCoppensAtom, SphericalAtom
from chasm.errors import InputError
from chasm.io.rhocif import read_rhocif, read_rhocif_adp_sets, rhocif_text
from chasm.io.shelx_hkl import Reflections, hklf4_text, read_hkl4, read_reflections, xd_hkl_text
from chasm.neutron.rcif import read_rcif
from test_neutron_rcif import MINIMAL  # a small valid rcif: crystal and flipping-ratio blocks

EXAMPLES = Path(__file__).parents[1] / "src" / "chasm" / "examples"
UREA = EXAMPLES / "urea.cif"

BAD_NUMBERS = [
    "nan",
    "inf",
    "-inf",
    "1e308",
    "-1e308",
    "1e999",
    "1e-400",
    "99999999999999999999999",
    "9223372036854775808",
    "2147483648",
    "1" * 400,
    "1/0",
    "0",
    "-0",
    "?",
    ".",
    "",
    "1.5(9999999999)",
    "0x10",
    "1_0",
]
BAD_BYTES = [b"\x00", b"\xe9", b"\xff\xfe", b"\r", b"\t", b"\xef\xbb\xbf", b"'", b";", b"#"]
NUMBER = re.compile(rb"(?<![\w.])[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?(\(\d+\))?(?![\w.])")


@st.composite
def mutations(draw, data: bytes) -> bytes:
    """One to three mutations of ``data``."""
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["number", "number", "truncate", "swap", "dup", "bytes"]))
        if kind == "number":
            spans = [m.span() for m in NUMBER.finditer(data)]
            if spans:
                a, b = draw(st.sampled_from(spans))
                data = data[:a] + draw(st.sampled_from(BAD_NUMBERS)).encode() + data[b:]
        elif kind == "truncate":
            data = data[: draw(st.integers(0, len(data)))]
        elif kind in ("swap", "dup"):
            lines = data.split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            if kind == "swap":
                lines[i], lines[j] = lines[j], lines[i]
            else:
                lines.insert(j, lines[i])
            data = b"\n".join(lines)
        else:
            at = draw(st.integers(0, len(data)))
            data = data[:at] + draw(st.sampled_from(BAD_BYTES)) + data[at:]
    return data


def _check(tmp_path: Path, name: str, data: bytes, reader) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            reader(path)
        except InputError as exc:
            assert exc.path == str(path), exc
            assert "\n" not in exc.message.strip(), exc


def _reflections() -> Reflections:
    hkl = np.array([[1, 0, 0], [0, 2, 0], [-1, 1, 3], [2, -2, 1]])
    return Reflections(hkl, f2=[100.5, 20.25, 3.0, 0.5], sigma=[2.0, 1.0, 0.5, 0.25], batch=[1] * 4)


def _rhocif() -> bytes:
    crystal = read_cif(UREA)
    models = [
        HansenCoppensAtom("C", 4.0, lmax=2, plm=np.linspace(-0.1, 0.1, 9), kappa=0.98),
        HansenCoppensAtom("O", 6.1, lmax=1, plm=[0.0, 0.05, 0.0, 0.0], kappa=1.01),
        SphericalAtom("N"),
        SphericalAtom("H"),
        SphericalAtom("H"),
    ]
    return rhocif_text(crystal, models).encode()


SOURCES = {
    "cif": (UREA.read_bytes(), "x.cif", read_cif),
    "hklf4-fixed": (hklf4_text(_reflections()).encode(), "x.hkl", read_hkl4),
    "hklf4-free": (hklf4_text(_reflections(), "free").encode(), "x.hkl", read_hkl4),
    "xd": (xd_hkl_text(_reflections()).encode(), "xd.hkl", read_reflections),
    "rcif": (MINIMAL.encode(), "x.rcif", read_rcif),
}

FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("fmt", list(SOURCES))
def test_valid_sources_read(tmp_path, fmt):
    """The unmutated texts are valid (so that the fuzzing starts from a readable file)."""
    data, name, reader = SOURCES[fmt]
    (tmp_path / name).write_bytes(data)
    assert reader(tmp_path / name) is not None


@pytest.mark.parametrize("fmt", list(SOURCES))
def test_fuzz_reader(tmp_path, fmt):
    data, name, reader = SOURCES[fmt]

    @FUZZ
    @given(mutations(data))
    def run(mutated):
        _check(tmp_path, name, mutated, reader)

    run()


def test_fuzz_rhocif(tmp_path):
    data = _rhocif()
    (tmp_path / "ok.cif").write_bytes(data)
    assert len(read_rhocif(tmp_path / "ok.cif")[1]) == 5

    def reader(path):
        read_rhocif(path)
        read_rhocif_adp_sets(path)

    @settings(FUZZ, max_examples=30)
    @given(mutations(data))
    def run(mutated):
        _check(tmp_path, "x.cif", mutated, reader)

    run()

"""Fuzzing the project schema: every mutated file is a valid project or an InputError (issue 15).

Two hypothesis tests, bounded (a few hundred examples, a few seconds): structured
mutations of a project that uses most keys (a value replaced by one of any TOML type,
including NaN, inf, huge integers, tables and arrays; a key deleted; an unknown key
added), and byte-level mutations of its text (truncation, inserted bytes, swapped
lines). A loaded project must hold only finite numbers.
"""

from __future__ import annotations

import json
import math
import tomllib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chasm.errors import InputError
from chasm.project.project import load_project

BASE = """title = "fuzz"
output = "out"
[structure]
cif = "s.cif"
[model]
lmax = 4
h_kappa = 1.2
magnetic = ["Cu1"]
[model.atoms.Cu1]
pv = 9.0
kappa = 1.0
spin_pv = 1.0
spin = {P00 = 0.1, P20 = 0.05}
xh_distance = 1.0
[[datasets]]
name = "xray"
kind = "xray"
file = "x.hkl"
smin = 0.1
smax = 1.0
wavelength = 0.71
path_length = 100.0
omit = [[1, 2, 3]]
[datasets.simulate]
count = 10
scale = 1.0
[[datasets]]
name = "pnd"
kind = "pnd"
file = "p.rcif"
radius = 1.0
mosaicity = 10.0
temperature = 2.0
hydrogen_polarisation = 0.1
[datasets.simulate]
polarisation = -0.9
efficiency = 0.95
field = 5.0
field_direction = [0.3, 1.0, 0.2]
[constraints]
charge = 0.0
total_spin = 1.0
same = [["a", "b"], "c,d"]
[[constraints.linear]]
terms = {"Cu1.Pv" = 1.0}
value = 0.0
[[restraints]]
parameter = "Cu1.kappa"
target = 1.0
sigma = 0.01
[refinement]
tol = 0.01
max_cycles = 30
max_shift_su = 5.0
correlation_threshold = 0.9
[[stages]]
name = "s"
free = ["*"]
max_cycles = 3
tol = 0.1
smax = 0.5
"""

BASE_DATA = tomllib.loads(BASE)

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_scalar = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 0.0, -0.0, 1e-320, 1e308, -1e308, 2**63, 2**31]),
    _text,
    st.booleans(),
)
_value = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(_text.filter(bool), inner, max_size=3)
    ),
    max_leaves=6,
)


def _toml(value) -> str:
    """One value as inline TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return (
        "{"
        + ", ".join(f"{json.dumps(k, ensure_ascii=False)} = {_toml(v)}" for k, v in value.items())
        + "}"
    )


def _document(data: dict) -> str:
    return "".join(f"{json.dumps(k, ensure_ascii=False)} = {_toml(v)}\n" for k, v in data.items())


def _paths(value, prefix=()):
    """Every (path, container) of a nested dict/list: the places a mutation can hit."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


PATHS = list(_paths(BASE_DATA))


def _finite(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


def _load(tmp_path, content: bytes):
    p = tmp_path / "fuzz.toml"
    p.write_bytes(content)
    try:
        project = load_project(p)
    except InputError as exc:
        assert exc.path == str(p)
        assert exc.message
        return None
    assert _finite(project.data), project.data
    return project


def test_the_base_project_is_valid(tmp_path):
    assert _load(tmp_path, BASE.encode()) is not None
    assert _load(tmp_path, _document(BASE_DATA).encode()) is not None


_SETTINGS = settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_SETTINGS
@given(
    path=st.sampled_from(PATHS),
    action=st.sampled_from(["replace", "delete", "add"]),
    value=_value,
    name=_text,
)
def test_structured_mutations(tmp_path, path, action, value, name):
    data = tomllib.loads(BASE)
    *head, last = path
    holder = data
    for k in head:
        holder = holder[k]
    if action == "replace":
        holder[last] = value
    elif action == "delete":
        del holder[last]
    elif isinstance(holder, dict):
        holder[name or "x"] = value
    else:
        holder.append(value)
    _load(tmp_path, _document(data).encode("utf-8"))


@_SETTINGS
@given(
    cut=st.integers(0, len(BASE)),
    where=st.integers(0, len(BASE)),
    junk=st.binary(max_size=8),
    swap=st.tuples(st.integers(0, 90), st.integers(0, 90)),
    action=st.sampled_from(["truncate", "insert", "swap"]),
)
def test_text_mutations(tmp_path, cut, where, junk, swap, action):
    raw = BASE.encode("utf-8")
    if action == "truncate":
        raw = raw[:cut]
    elif action == "insert":
        raw = raw[:where] + junk + raw[where:]
    else:
        lines = raw.split(b"\n")
        i, j = (x % len(lines) for x in swap)
        lines[i], lines[j] = lines[j], lines[i]
        raw = b"\n".join(lines)
    _load(tmp_path, raw)

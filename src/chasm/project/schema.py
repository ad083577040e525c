"""Validation of project files against a declared schema.

A schema is a nested dict: each key maps to a :class:`Field` (type, default,
allowed values, help) or to another dict (a sub-table). ``Table(schema)``
declares a table of tables whose keys are free (atom labels);
``OptionalTable(schema)`` a sub-table that may be left out (validated to None
then, e.g. a data set's ``simulate`` table); ``ArrayOf(schema)`` an array of
tables; with ``key`` and ``variants`` each table is checked against the
common schema plus the variant named by its ``key`` value (e.g. the data-set
``kind``). :func:`validate` returns a new dict with defaults filled
in, and raises :class:`~chasm.errors.InputError` naming the file, the line
(best effort: where the key first appears) and the key's dotted path for an
unknown key, a wrong type or a value outside the allowed set — nothing is
ignored silently.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chasm.data.noise import PND_NOISE, UND_NOISE, XRAY_NOISE
from chasm.errors import InputError

__all__ = [
    "Field",
    "Table",
    "OptionalTable",
    "ArrayOf",
    "REQUIRED",
    "validate",
    "find_line",
    "simulate_schema",
]

REQUIRED = object()

#: Largest magnitude of an integer without explicit bounds (a 32-bit signed int).
INT_LIMIT = 2**31 - 1


@dataclass
class Field:
    """One key: accepted Python types (after TOML parsing), default, choices, help text.

    Numbers are checked against the bounds ``ge`` (>=), ``gt`` (>), ``le``
    (<=) and ``lt`` (<) that are given; a float must be finite (no NaN or
    inf) and an integer must lie within +-``INT_LIMIT`` unless bounds say
    otherwise. The bounds also apply to the items of a list (``item_types``)
    and to the values of a table (``dict`` in ``types`` with ``item_types``).
    ``check`` is called with the (converted) value and returns an error text,
    or None when the value is fine.
    """

    types: tuple
    default: Any = None
    choices: tuple | None = None
    help: str = ""
    item_types: tuple | None = None  # for lists: type of each item; for tables: of each value
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    check: Callable[[Any], str | None] | None = None

    def range_text(self) -> str:
        """The allowed range as text, e.g. ``> 0 and <= 10`` ('' when unbounded)."""
        parts = [
            f"{op} {bound:g}"
            for op, bound in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
            if bound is not None
        ]
        return " and ".join(parts)


@dataclass
class Table:
    """A table whose keys are user names (e.g. atom labels), each holding ``schema``."""

    schema: dict
    help: str = ""


@dataclass
class OptionalTable:
    """A sub-table that may be absent: None when left out, else checked against ``schema``."""

    schema: dict
    help: str = ""


@dataclass
class ArrayOf:
    """An array of tables, each holding ``schema``.

    With ``key`` and ``variants``, the value of ``key`` (a required string, one
    of the variant names) selects the extra keys ``variants[value]`` allowed in
    that table; keys of another variant are unknown keys there.
    """

    schema: dict
    help: str = ""
    default: list = field(default_factory=list)
    key: str | None = None
    variants: dict[str, dict] | None = None
    key_help: str = ""

    def item_schema(self, value: str) -> dict:
        """Common keys plus those of variant ``value`` (the key's own field first)."""
        if not self.variants:
            return self.schema
        head = {self.key: Field((str,), REQUIRED, tuple(self.variants), self.key_help)}
        return {**head, **self.schema, **self.variants[value]}


_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true/false",
    list: "an array",
    dict: "a table",
}


def _type_text(types: tuple) -> str:
    return " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)


def _item_start(text: str, path: str) -> int:
    """Offset of the table of the last ``name[i]`` component of ``path`` (0 if none).

    ``datasets[2].block`` starts the search at the third ``[[datasets]]``
    header, so that a key repeated in several array items is found in the
    right one.
    """
    parts = path.split(".")
    start = 0
    for k, part in enumerate(parts):
        m = re.fullmatch(r"(.+)\[(\d+)\]", part)
        if m is None:
            continue
        header = ".".join([re.sub(r"\[\d+\]$", "", q) for q in parts[:k]] + [m.group(1)])
        heads = list(re.finditer(rf"^\s*\[\[\s*{re.escape(header)}\s*\]\]", text, re.M))
        i = int(m.group(2))
        if i < len(heads):
            start = heads[i].start()
            # a sub-table of the item ([datasets.simulate] or simulate = {...}) holds the key
            for sub in parts[k + 1 : -1]:
                if "[" in sub:
                    break
                where = re.compile(
                    rf"^\s*(\[\s*{re.escape(header)}\.{re.escape(sub)}\s*\]|{re.escape(sub)}\s*=)",
                    re.M,
                ).search(text, start)
                if where is not None:
                    start = where.start()
    return start


def find_line(text: str | None, path: str) -> int | None:
    """Line (1-based) where the last component of a dotted key path first appears.

    Inside an array of tables (``datasets[2].block``) the search starts at
    that item's ``[[...]]`` header.
    """
    if not text:
        return None
    key = path.split(".")[-1]
    key = re.sub(r"\[\d+\]$", "", key)
    start = _item_start(text, path)
    pattern = re.compile(rf'^\s*(\[+\s*)?("?){re.escape(key)}\2\s*(=|\]|\.)', re.M)
    m = pattern.search(text, start) or pattern.search(text)
    if m is None:
        m = re.compile(rf"\b{re.escape(key)}\b").search(text)
    return text.count("\n", 0, m.start()) + 1 if m else None


def _short(value) -> str:
    """``repr(value)`` cut to 60 characters (a 4000-digit integer stays readable)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number_problem(value, f: Field) -> str | None:
    """Why a number breaks the bounds of ``f`` (None when it is inside them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value!r} is not a finite number"
    bounded = any(b is not None for b in (f.ge, f.gt, f.le, f.lt))
    if isinstance(value, int) and not bounded and abs(value) > INT_LIMIT:
        return f"must be >= {-INT_LIMIT} and <= {INT_LIMIT}, got {_short(value)}"
    if (
        (f.ge is not None and not value >= f.ge)
        or (f.gt is not None and not value > f.gt)
        or (f.le is not None and not value <= f.le)
        or (f.lt is not None and not value < f.lt)
    ):
        return f"must be {f.range_text()}, got {_short(value)}"
    return None


def _scalar(value, types: tuple, f: Field, where: str, err) -> Any:
    """One value (a key's, a list item or a table value): type, finiteness and bounds."""
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        if abs(value) > 1e300:
            raise err(where, f"{_short(value)} is not a finite number")
        value = float(value)
    if bool not in types and isinstance(value, bool):
        raise err(where, f"expected {_type_text(types)}, got {value!r}")
    if not isinstance(value, types):
        shown = _short(value)
        raise err(where, f"expected {_type_text(types)}, got {type(value).__name__} {shown}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        problem = _number_problem(value, f)
        if problem:
            raise err(where, problem)
    if isinstance(value, str) and any(ord(c) < 32 and c not in "\t\n\r" for c in value):
        raise err(where, f"{_short(value)} contains a control character")
    return value


def _check_value(value, f: Field, where: str, err) -> Any:
    value = _scalar(value, f.types, f, where, err)
    if f.item_types is not None and isinstance(value, list):
        value = [_scalar(x, f.item_types, f, f"{where}[{i}]", err) for i, x in enumerate(value)]
    elif f.item_types is not None and isinstance(value, dict):
        value = {k: _scalar(x, f.item_types, f, f"{where}.{k}", err) for k, x in value.items()}
    if f.choices is not None and not any(
        value == c and type(value) is type(c) or (value is None and c is None) for c in f.choices
    ):
        raise err(where, f"{_short(value)} is not one of {', '.join(repr(c) for c in f.choices)}")
    if f.check is not None and value is not None:
        problem = f.check(value)
        if problem:
            raise err(where, problem)
    return value


def validate(data: dict, schema: dict, source: str = "", text: str | None = None) -> dict:
    """Check ``data`` against ``schema``; return it with defaults filled in.

    Parameters
    ----------
    data : dict
        Parsed TOML.
    schema : dict
        Nested schema (see module docstring).
    source : str
        File name for messages.
    text : str, optional
        The file's text, to report line numbers.
    """

    def err(path: str, message: str) -> InputError:
        line = find_line(text, path)
        return InputError(f"{path}: {message}", source or None, line)

    def item(d, spec: ArrayOf, path: str) -> dict:
        if not spec.variants:
            return walk(d, spec.schema, f"{path}.")
        if not isinstance(d, dict):
            raise err(path, f"expected a table, got {d!r}")
        kinds = ", ".join(repr(v) for v in spec.variants)
        value = d.get(spec.key)
        if value is None:
            raise err(f"{path}.{spec.key}", f"required key is missing; one of {kinds}")
        if not isinstance(value, str) or value not in spec.variants:
            raise err(f"{path}.{spec.key}", f"{value!r} is not one of {kinds}")
        return walk(d, spec.item_schema(value), f"{path}.", f" (for {spec.key} = {value!r})")

    def walk(d: dict, sch: dict, prefix: str, context: str = "") -> dict:
        if not isinstance(d, dict):
            raise err(prefix or "(top)", f"expected a table, got {d!r}")
        out = {}
        for key in d:
            if key not in sch:
                known = ", ".join(sorted(sch))
                raise err(f"{prefix}{key}", f"unknown key{context}; known keys here: {known}")
        for key, spec in sch.items():
            path = f"{prefix}{key}"
            present = key in d
            if isinstance(spec, Field):
                if not present:
                    if spec.default is REQUIRED:
                        raise err(path, "required key is missing")
                    out[key] = spec.default
                else:
                    out[key] = _check_value(d[key], spec, path, err)
            elif isinstance(spec, OptionalTable):
                if not present:
                    out[key] = None
                elif not isinstance(d[key], dict):
                    raise err(path, f"expected a table, got {d[key]!r}")
                else:
                    out[key] = walk(d[key], spec.schema, f"{path}.")
            elif isinstance(spec, Table):
                sub = d.get(key, {})
                if not isinstance(sub, dict):
                    raise err(path, f"expected a table, got {sub!r}")
                out[key] = {
                    name: walk(val, spec.schema, f"{path}.{name}.") for name, val in sub.items()
                }
            elif isinstance(spec, ArrayOf):
                arr = d.get(key, list(spec.default))
                if not isinstance(arr, list):
                    raise err(path, "expected an array of tables ([[...]])")
                out[key] = [item(x, spec, f"{path}[{i}]") for i, x in enumerate(arr)]
            else:
                out[key] = walk(d.get(key, {}), spec, f"{path}.")
        return out

    return walk(data, schema, "")


def _variant_rows(spec: ArrayOf, path: str) -> list[str]:
    """Rows of an array with variants: a key accepted by several variants with the
    same definition gets one row, otherwise one row per definition, its meaning
    starting with the variants it applies to."""
    kinds = list(spec.variants)
    rows = _field_rows(f"{path}[].{spec.key}", spec.item_schema(kinds[0])[spec.key])
    rows += schema_markdown(spec.schema, f"{path}[].")
    keys: dict[str, list[tuple[str, Field]]] = {}
    for kind in kinds:
        for key, f in _flat_fields(spec.variants[kind]).items():
            keys.setdefault(key, []).append((kind, f))
    # the variants' sub-tables (simulate, simulate.smax ...) after the plain keys
    tables = {k.split(".")[0] for k in keys if "." in k}
    for key, entries in sorted(keys.items(), key=lambda item: item[0].split(".")[0] in tables):
        groups: list[tuple[list[str], Field]] = []
        for kind, f in entries:
            for names, g in groups:
                if g == f:
                    names.append(kind)
                    break
            else:
                groups.append(([kind], f))
        for names, f in groups:
            tag = None if len(names) == len(kinds) else f"{spec.key} = " + ", ".join(names)
            rows += _field_rows(f"{path}[].{key}", f, tag)
    return rows


def _flat_fields(schema: dict, prefix: str = "") -> dict[str, Field]:
    """Dotted key -> Field of a schema without tables of tables or arrays (variant keys).

    An :class:`OptionalTable` gives a row of its own (type table, default none)
    before the rows of its keys.
    """
    out: dict[str, Field] = {}
    for key, spec in schema.items():
        if isinstance(spec, Field):
            out[prefix + key] = spec
        elif isinstance(spec, OptionalTable):
            out[prefix + key] = Field((dict,), None, help=spec.help)
            out.update(_flat_fields(spec.schema, f"{prefix}{key}."))
        elif isinstance(spec, dict):
            out.update(_flat_fields(spec, f"{prefix}{key}."))
        else:
            raise TypeError(f"{prefix}{key}: tables of tables and arrays are not variant keys")
    return out


def _field_rows(path: str, spec: Field, tag: str | None = None) -> list[str]:
    default = "required" if spec.default is REQUIRED else repr(spec.default)
    default = default.replace("None", "none").replace("True", "true")
    default = default.replace("False", "false").replace("'", '"')
    kind = _type_text(tuple(t for t in spec.types if t is not type(None)))
    if spec.item_types:
        kind += f" (items: {_type_text(spec.item_types)})"
    meaning = spec.help
    if spec.choices:
        meaning = (
            (meaning + "; " if meaning else "")
            + "one of "
            + ", ".join(f"`{c}`" for c in spec.choices if c is not None)
        )
    if spec.range_text():
        meaning = (meaning + "; " if meaning else "") + "allowed " + spec.range_text()
    if tag:
        meaning = f"({tag}) {meaning}"
    meaning = meaning.replace("|", "\\|")
    return [f"| `{path}` | {kind} | `{default}` | {meaning} |"]


def schema_markdown(schema: dict, prefix: str = "") -> list[str]:
    """Markdown table rows ``| key | type | default | meaning |`` for every key of a schema."""
    rows: list[str] = []
    for key, spec in schema.items():
        path = f"{prefix}{key}"
        if isinstance(spec, Field):
            rows += _field_rows(path, spec)
        elif isinstance(spec, Table):
            rows += schema_markdown(spec.schema, f"{path}.LABEL.")
        elif isinstance(spec, OptionalTable):
            rows += _field_rows(path, Field((dict,), None, help=spec.help))
            rows += schema_markdown(spec.schema, f"{path}.")
        elif isinstance(spec, ArrayOf) and spec.variants:
            rows += _variant_rows(spec, path)
        elif isinstance(spec, ArrayOf):
            rows += schema_markdown(spec.schema, f"{path}[].")
        else:
            rows += schema_markdown(spec, f"{path}.")
    return rows


# ---------------------------------------------------------------------- simulate tables
def _direction(value: list) -> str | None:
    """Error text for a field direction that is not three numbers, not all zero."""
    if len(value) != 3:
        return f"give three numbers [u, v, w], got {len(value)}"
    if not any(value):
        return "[0, 0, 0] is no direction"
    return None


def _nonzero(value: float) -> str | None:
    return "0 is not allowed (an unpolarised beam gives no flipping ratios)" if value == 0 else None


def simulate_schema(kind: str) -> OptionalTable:
    """Keys of a data set's ``simulate`` table (``chasm simulate``) for a data-set kind.

    Defaults: the noise constants of :mod:`chasm.simulate.noise` and, for
    flipping ratios, the experiment of the built-in example
    (:mod:`chasm.examples.seed`).

    Parameters
    ----------
    kind : {"xray", "und", "pnd"}
    """
    common = {
        "smin": Field(
            (float,),
            0.0,
            help="simulated reflections have sin(theta)/lambda > smin (1/A)",
            ge=0.0,
            lt=10.0,
        ),
        "count": Field(
            (int, type(None)),
            None,
            help="keep this many reflections (chosen by select; default all)",
            ge=1,
            le=10**7,
        ),
        "noise": Field(
            (bool,), True, help="add noise (false: the calculated values, with the model's sigma)"
        ),
        "seed": Field(
            (int, type(None)),
            None,
            help="noise stream numpy default_rng([run seed, seed]); default the data set's "
            "position in the file (0, 1, ...)",
            ge=0,
            lt=2**63,
        ),
    }
    if kind == "pnd":
        return OptionalTable(
            {
                "smax": Field(
                    (float,), 0.6, help="largest sin(theta)/lambda (1/A)", gt=0.0, le=10.0
                ),
                **common,
                "select": Field(
                    (str,),
                    "contrast",
                    ("contrast", "strongest", "lowest"),
                    "with count: largest |R - 1| among the stronger half by |F_N|, largest "
                    "|R - 1|, or lowest angle",
                ),
                "wavelength": Field((float,), 0.84, help="neutron wavelength (A)", gt=0.0, le=20.0),
                "field": Field((float,), 5.0, help="applied field (T)", gt=0.0, le=100.0),
                "field_direction": Field(
                    (list,),
                    [0.3, 1.0, 0.2],
                    item_types=(float,),
                    help="field along u a + v b + w c, [u, v, w] (written as a CCSL UB matrix)",
                    ge=-1e3,
                    le=1e3,
                    check=_direction,
                ),
                "polarisation": Field(
                    (float,),
                    -0.9,
                    help="signed beam polarisation P (not 0)",
                    ge=-1.0,
                    le=1.0,
                    check=_nonzero,
                ),
                "efficiency": Field((float,), 0.95, help="flipper efficiency e", gt=0.0, le=1.0),
                "relative": Field(
                    (float,),
                    PND_NOISE.relative,
                    help="relative error of R: sigma = r R (+ floor)",
                    ge=0.0,
                    le=10.0,
                ),
                "floor": Field(
                    (float,),
                    PND_NOISE.floor,
                    help="smallest sigma(R), in quadrature",
                    ge=0.0,
                    le=10.0,
                ),
            },
            help="simulate this data set (chasm simulate): flipping ratios of the model",
        )
    noise = UND_NOISE if kind == "und" else XRAY_NOISE
    unit = "fm2" if kind == "und" else "e2"
    return OptionalTable(
        {
            "smax": Field(
                (float,),
                0.8 if kind == "und" else 1.0,
                help="largest sin(theta)/lambda (1/A)",
                gt=0.0,
                le=10.0,
            ),
            **common,
            "select": Field(
                (str,), "lowest", ("lowest", "strongest"), "with count: lowest angle or largest F2"
            ),
            "scale": Field((float,), 1.0, help="scale k of the data: F2 = k |F|2", gt=0.0, le=1e12),
            "gain": Field(
                (float,),
                noise.gain,
                help=f"counts per unit of F2 (1/{unit}), absolute scale",
                gt=0.0,
                le=1e12,
            ),
            "background": Field(
                (float,),
                noise.background,
                help=f"background under the peak ({unit})",
                ge=0.0,
                le=1e12,
            ),
            "relative": Field(
                (float,), noise.relative, help="relative error of F2", ge=0.0, le=10.0
            ),
            "layout": Field(
                (str,),
                "free",
                ("free", "fixed"),
                "HKLF 4 layout: full-precision fields, or SHELX columns 3I4,2F8.2",
            ),
        },
        help="simulate this data set (chasm simulate): F2 of the model with counting noise",
    )

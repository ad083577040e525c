"""Named refinement parameters: one flat, ordered vector with readable names.

A :class:`Parameters` object is the single place where a refinement keeps the
numbers it may change: atomic positions, displacement parameters, occupancies,
Hansen-Coppens populations and expansions, and any non-atomic quantity a
caller adds (``xray.scale``, ``xray.extinction``). Each :class:`Parameter`
knows whether it is free, its standard uncertainty once refined, and optional
bounds that only produce warnings (the least squares never clip).

Names of atomic parameters are those of the structure-factor engine's columns
(:attr:`chasm.scattering.engine.StructureFactorEngine.parameter_names`), in the
same order, per atom::

    L.x L.y L.z  L.U11 L.U22 L.U33 L.U12 L.U13 L.U23 (or L.Uiso)  L.occ
    L.Pv L.kappa  L.P00 L.P10 L.P11+ ... L.P44-  L.kappa_prime

(the last two groups only for Hansen-Coppens atoms, the multipoles only when
``lmax >= 0``). Units: fractional coordinates, Å² for U (U_cif), electrons
for populations; occupancy, kappa and kappa' are dimensionless.

Users select parameters with patterns (:meth:`Parameters.select`): exact
names, shell-style globs (``"H*.U*"`` every U of the H atoms, ``"*.kappa"``,
``"N*.P*"`` Pv and every multipole of the N atoms, ``"N*.P[0-9]*"`` the
multipoles only) and comma-separated lists of both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chasm.crystal.structure import Atom, Crystal

import difflib
import fnmatch
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from chasm.crystal.adp import ueq
from chasm.density.harmonics import lm_labels
from chasm.errors import InputError
from chasm.scattering.engine import U_LABELS, atom_columns

__all__ = [
    "Parameter",
    "Parameters",
    "UnknownNameError",
    "PARAMETER_GROUPS",
    "atom_parameter_names",
    "column_names",
    "parameters_from_model",
    "apply_values",
    "read_parameter",
    "write_parameter",
    "model_parameter",
    "set_model_parameter",
    "suggest_names",
    "did_you_mean",
    "check_models",
]


#: Groups of atomic parameters that the ``tags`` argument can tag.
PARAMETER_GROUPS = ("xyz", "adp", "occ", "valence", "multipole")

_GLOB_CHARS = "*?["


class UnknownNameError(InputError, KeyError):
    """A parameter name or pattern that matches nothing (an InputError and a KeyError)."""


def suggest_names(name: str, candidates: Sequence[str], n: int = 5) -> list[str]:
    """Close matches of ``name`` among ``candidates`` (difflib), best first."""
    candidates = list(candidates)
    close = difflib.get_close_matches(name, candidates, n=n, cutoff=0.6)
    if not close:
        lower = {c.lower(): c for c in candidates}
        hits = difflib.get_close_matches(name.lower(), list(lower), n=n, cutoff=0.5)
        close = [lower[c] for c in hits]
    return close


def did_you_mean(name: str, candidates: Sequence[str]) -> str:
    """``"; did you mean 'C1.x'?"`` for the names close to ``name`` ("" when none is)."""
    close = suggest_names(name, candidates)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


@dataclass
class Parameter:
    """One refinable number.

    Attributes
    ----------
    name : str
        Stable, readable name (``"C1.x"``, ``"O1.U23"``, ``"xray.scale"``).
    value : float
        Current value, in the unit of the quantity (module docstring).
    free : bool
        True if the refinement may change it.
    su : float or None
        Standard uncertainty after a refinement (same unit as ``value``).
    bounds : tuple (min, max) or None
        Plausible range; values outside only give warnings
        (:meth:`Parameters.check_bounds`). Use ±inf for a one-sided range.
    """

    name: str
    value: float
    free: bool = True
    su: float | None = None
    bounds: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        self.value = float(self.value)
        self.free = bool(self.free)
        if self.bounds is not None:
            lo, hi = self.bounds
            lo = -np.inf if lo is None else float(lo)
            hi = np.inf if hi is None else float(hi)
            if lo > hi:
                raise InputError(f"parameter {self.name}: bounds ({lo}, {hi}) are reversed")
            self.bounds = (lo, hi)

    @property
    def in_bounds(self) -> bool:
        """True when there are no bounds or ``min <= value <= max``."""
        return self.bounds is None or self.bounds[0] <= self.value <= self.bounds[1]


class Parameters:
    """Ordered collection of :class:`Parameter`, addressed by name.

    Iterating yields the :class:`Parameter` objects in order; :attr:`names`
    and :attr:`values` give the flat vectors used by the least squares.

    Examples
    --------
    >>> p = Parameters()
    >>> _ = p.add("C1.x", 0.1); _ = p.add("C1.y", 0.2); _ = p.add("xray.scale", 1.0)
    >>> p.select("C1.*")
    ['C1.x', 'C1.y']
    >>> p.fix("xray.scale"); p.free_mask.tolist()
    ['xray.scale']
    [True, True, False]
    """

    def __init__(self, parameters: Sequence[Parameter] = ()):
        self._params: dict[str, Parameter] = {}
        for p in parameters:
            self.add(p.name, p.value, p.free, p.su, p.bounds)

    # ------------------------------------------------------------ container
    def add(
        self,
        name: str,
        value: float,
        free: bool = True,
        su: float | None = None,
        bounds: tuple[float, float] | None = None,
    ) -> Parameter:
        """Append a parameter and return it.

        Raises
        ------
        InputError
            If the name is taken, empty, or contains whitespace, a comma or a
            glob character (``* ? [``), which would make patterns ambiguous.
        """
        name = str(name)
        if not name or any(ch.isspace() for ch in name) or any(c in name for c in ",*?["):
            raise InputError(
                f"invalid parameter name {name!r}: use no spaces, commas or * ? [ characters"
            )
        if name in self._params:
            raise InputError(f"parameter {name!r} is defined twice")
        par = Parameter(name, value, free, su, bounds)
        self._params[name] = par
        return par

    def __getitem__(self, name: str) -> Parameter:
        try:
            return self._params[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown parameter {name!r}{did_you_mean(name, self.names)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._params

    def __iter__(self) -> Iterator[Parameter]:
        return iter(self._params.values())

    def __len__(self) -> int:
        return len(self._params)

    def __repr__(self) -> str:
        return f"Parameters({len(self)} parameters, {int(self.free_mask.sum())} free)"

    def copy(self) -> Parameters:
        """An independent copy (the Parameter objects are copied too)."""
        return Parameters(list(self))

    # -------------------------------------------------------------- vectors
    @property
    def names(self) -> list[str]:
        """Parameter names in order."""
        return list(self._params)

    @property
    def values(self) -> np.ndarray:
        """Current values (a new array, in order)."""
        return np.array([p.value for p in self._params.values()], dtype=float)

    def set_values(self, values: np.ndarray) -> None:
        """Set every value from a flat array in :attr:`names` order."""
        v = np.asarray(values, dtype=float).reshape(-1)
        if v.size != len(self):
            raise InputError(f"set_values: expected {len(self)} values, got {v.size}")
        for p, x in zip(self._params.values(), v, strict=True):
            p.value = float(x)

    @property
    def su(self) -> np.ndarray:
        """Standard uncertainties in order, NaN where unknown."""
        return np.array(
            [np.nan if p.su is None else p.su for p in self._params.values()], dtype=float
        )

    def set_su(self, su: np.ndarray) -> None:
        """Set every standard uncertainty from a flat array (NaN means unknown)."""
        s = np.asarray(su, dtype=float).reshape(-1)
        if s.size != len(self):
            raise InputError(f"set_su: expected {len(self)} values, got {s.size}")
        for p, x in zip(self._params.values(), s, strict=True):
            p.su = None if np.isnan(x) else float(x)

    @property
    def free_mask(self) -> np.ndarray:
        """Boolean array, True for free parameters."""
        return np.array([p.free for p in self._params.values()], dtype=bool)

    @property
    def free_names(self) -> list[str]:
        """Names of the free parameters, in order."""
        return [p.name for p in self._params.values() if p.free]

    def index(self, name: str) -> int:
        """Position of ``name`` in the flat vector (UnknownNameError if absent)."""
        if name not in self._params:
            self[name]  # raises with suggestions
        return self.names.index(name)

    # ------------------------------------------------------------ selection
    def select(self, pattern: str | Sequence[str]) -> list[str]:
        """Names matching a pattern.

        Parameters
        ----------
        pattern : str or sequence of str
            Comma-separated tokens (or a list of them); each token is an exact
            name or a case-sensitive shell-style glob (``*``, ``?``, ``[...]``).

        Returns
        -------
        list of str
            Matches in the order of the tokens, the matches of one glob in
            parameter order; each name once.

        Raises
        ------
        UnknownNameError
            If a token matches nothing (the message names it and suggests
            close names).
        """
        tokens = _tokens(pattern)
        if not tokens:
            raise InputError(f"empty parameter pattern {pattern!r}")
        names = self.names
        out: dict[str, None] = {}
        for token in tokens:
            if any(c in token for c in _GLOB_CHARS):
                hits = _globmatch(names, token)
            else:
                hits = [token] if token in self._params else []
            if not hits:
                raise UnknownNameError(self._no_match_message(token))
            out.update(dict.fromkeys(hits))
        return list(out)

    def _no_match_message(self, token: str) -> str:
        names = self.names
        msg = f"parameter pattern {token!r} matches no parameter"
        loose = [n for n in names if fnmatch.fnmatchcase(n.lower(), token.lower())]
        if loose:
            return msg + f" (names are case-sensitive: {', '.join(loose[:5])} ...?)"
        if "." in token and not any(c in token for c in _GLOB_CHARS):
            return msg + did_you_mean(token, names)
        if "." in token:
            head, tail = token.split(".", 1)
            heads = sorted({n.split(".", 1)[0] for n in names})
            tails = sorted({n.split(".", 1)[1] for n in names if "." in n})
            if not _globmatch(heads, head):
                return msg + f": no label matches {head!r}" + did_you_mean(head, heads)
            if not _globmatch(tails, tail):
                return msg + f": no parameter kind matches {tail!r}" + did_you_mean(tail, tails)
            return msg + " (the label and kind exist, but not together)"
        return msg + did_you_mean(token, names)

    def fix(self, pattern: str | Sequence[str]) -> list[str]:
        """Fix the matching parameters; returns their names."""
        names = self.select(pattern)
        for n in names:
            self._params[n].free = False
        return names

    def free(self, pattern: str | Sequence[str]) -> list[str]:
        """Free the matching parameters; returns their names."""
        names = self.select(pattern)
        for n in names:
            self._params[n].free = True
        return names

    def check_bounds(self) -> list[str]:
        """One message per parameter outside its bounds (empty when all are inside)."""
        return [
            f"{p.name} = {p.value:.6g} is outside its plausible range "
            f"[{p.bounds[0]:.6g}, {p.bounds[1]:.6g}]"
            for p in self._params.values()
            if p.bounds is not None and not p.in_bounds
        ]


def _globmatch(names: Sequence[str], pattern: str) -> list[str]:
    """Names matching a case-sensitive shell-style glob, in order."""
    return [n for n in names if fnmatch.fnmatchcase(n, pattern)]


def _tokens(pattern: str | Sequence[str]) -> list[str]:
    parts = [pattern] if isinstance(pattern, str) else list(pattern)
    out = []
    for part in parts:
        out += [t.strip() for t in str(part).split(",") if t.strip()]
    return out


# ---------------------------------------------------------------------- layout
def _check_tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    tags = dict(tags or {})
    for group, tag in tags.items():
        if group not in PARAMETER_GROUPS:
            raise InputError(
                f"unknown parameter group {group!r} in tags; "
                f"use one of {', '.join(PARAMETER_GROUPS)}"
            )
        if not tag or any(c in str(tag) for c in ".,*?[ "):
            raise InputError(f"invalid tag {tag!r} for parameter group {group!r}")
    return tags


def _atom_layout(atom: Atom, model: Any) -> list[tuple[str, str]]:
    """(kind, group) per engine column of one atom: the engine's own layout."""
    return atom_columns(atom, model)


def atom_parameter_names(atom: Atom, model: Any, tags: Mapping[str, str] | None = None) -> dict:
    """Parameter names of one atom, keyed by kind (``"x"``, ``"U11"``, ``"P21-"``...).

    Parameters
    ----------
    atom : chasm.crystal.structure.Atom
    model : SphericalAtom or HansenCoppensAtom
    tags : mapping, optional
        Name suffix per parameter group (``{"adp": "N"}`` gives ``O1.U11.N``),
        see :func:`parameters_from_model`.

    Returns
    -------
    dict
        kind -> full name, in the engine's column order.
    """
    tags = _check_tags(tags)
    out = {}
    for kind, group in _atom_layout(atom, model):
        name = f"{atom.label}.{kind}"
        out[kind] = f"{name}.{tags[group]}" if group in tags else name
    return out


def check_models(crystal: Crystal, models: Sequence[Any]) -> list[Any]:
    """The models as a list, one per atom of ``crystal`` (InputError otherwise)."""
    models = list(models)
    if len(models) != len(crystal.atoms):
        raise InputError(
            f"{len(crystal.atoms)} atoms but {len(models)} density models: give one per atom"
        )
    return list(models)


def column_names(
    crystal: Crystal, models: Sequence[Any], tags: Mapping[str, str] | None = None
) -> list[str]:
    """Parameter names of the engine's columns, in the engine's order.

    Without ``tags`` this equals
    ``StructureFactorEngine(crystal, models, hkl).parameter_names``; with tags
    column j of that engine maps to ``column_names(...)[j]``.
    """
    models = check_models(crystal, models)
    names: list[str] = []
    for atom, model in zip(crystal.atoms, models, strict=True):
        names += list(atom_parameter_names(atom, model, tags).values())
    return names


def read_parameter(atom: Atom, model: Any, kind: str) -> float:
    """The value of one atomic parameter (``kind``: a column kind of :func:`atom_columns`)."""
    if kind in ("x", "y", "z"):
        return float(atom.xyz["xyz".index(kind)])
    if kind in U_LABELS:
        assert atom.u_aniso is not None  # U11... exist for anisotropic atoms only
        return float(atom.u_aniso[U_LABELS.index(kind)])
    if kind == "Uiso":
        assert atom.uiso is not None  # set for every atom read from a structure
        return float(atom.uiso)
    if kind == "occ":
        return float(atom.occupancy)
    return model_parameter(model, kind)


def model_parameter(model: Any, kind: str) -> float:
    """Pv, κ, κ' or a population ``P<lm>`` of a Hansen-Coppens density model."""
    if kind == "Pv":
        return float(model.pv)
    if kind in ("kappa", "kappa_prime"):
        return float(getattr(model, kind))
    return float(model.plm[lm_labels(model.lmax).index(kind[1:])])


def write_parameter(atom: Atom, model: Any, kind: str, value: float) -> None:
    """Set one atomic parameter in the atom or its model (in place; see :func:`read_parameter`)."""
    if kind in ("x", "y", "z"):
        atom.xyz["xyz".index(kind)] = value
    elif kind in U_LABELS:
        assert atom.u_aniso is not None  # U11... exist for anisotropic atoms only
        atom.u_aniso[U_LABELS.index(kind)] = value
    elif kind == "Uiso":
        atom.uiso = value
    elif kind == "occ":
        atom.occupancy = value
    else:
        set_model_parameter(model, kind, value)


def set_model_parameter(model: Any, kind: str, value: float) -> None:
    """Set Pv, κ, κ' or a population ``P<lm>`` of a Hansen-Coppens model (in place)."""
    if kind == "Pv":
        model.pv = value
    elif kind in ("kappa", "kappa_prime"):
        setattr(model, kind, value)
    else:
        model.plm[lm_labels(model.lmax).index(kind[1:])] = value


_DEFAULT_BOUNDS = {
    "occ": (0.0, 1.0),
    "Uiso": (0.0, np.inf),
    "U11": (0.0, np.inf),
    "U22": (0.0, np.inf),
    "U33": (0.0, np.inf),
    "Pv": (0.0, np.inf),
    "kappa": (0.5, 2.0),
    "kappa_prime": (0.5, 2.0),
}


def parameters_from_model(
    crystal: Crystal, models: Sequence[Any], tags: Mapping[str, str] | None = None
) -> Parameters:
    """The atomic parameters of a crystal and its density models.

    Parameters
    ----------
    crystal : chasm.crystal.structure.Crystal
        Positions (fractional), ADPs (U_cif or Uiso, Å²), occupancies.
    models : sequence of SphericalAtom or HansenCoppensAtom
        One per atom of ``crystal.atoms``, same order.
    tags : mapping of str to str, optional
        Tags for parameter sets that exist more than once in a joint
        refinement: ``{group: tag}`` with group one of ``"xyz"``, ``"adp"``,
        ``"occ"``, ``"valence"`` (Pv, kappa), ``"multipole"`` (P_lm, kappa')
        appends ``.tag`` to every name of that group, e.g. ``{"adp": "N"}`` gives
        ``O1.U11.N`` (neutron ADPs), ``{"valence": "up", "multipole": "up"}``
        gives ``Cu1.Pv.up``. Default: no tags, i.e. exactly the engine's names.

    Returns
    -------
    Parameters
        One free parameter per engine column, in the engine's column order,
        with values read from ``crystal`` and ``models`` and plausible-range
        bounds for occupancies, diagonal U, Pv, kappa and kappa'. Callers add
        non-atomic parameters (``xray.scale``...) afterwards.
    """
    models = check_models(crystal, models)
    params = Parameters()
    for atom, model in zip(crystal.atoms, models, strict=True):
        for kind, name in atom_parameter_names(atom, model, tags).items():
            params.add(name, read_parameter(atom, model, kind), bounds=_DEFAULT_BOUNDS.get(kind))
    return params


def apply_values(
    params: Parameters,
    crystal: Crystal,
    models: Sequence[Any],
    tags: Mapping[str, str] | None = None,
) -> None:
    """Write parameter values back into the crystal's atoms and the models (in place).

    The inverse of :func:`parameters_from_model`: every atomic parameter name
    of the layout must be present (extra entries such as ``xray.scale`` are
    ignored). For an anisotropic atom ``Atom.uiso`` is updated to the new Ueq.

    Raises
    ------
    UnknownNameError
        If a name of the layout is missing from ``params``.
    """
    models = check_models(crystal, models)
    for atom, model in zip(crystal.atoms, models, strict=True):
        names = atom_parameter_names(atom, model, tags)
        for kind, name in names.items():
            write_parameter(atom, model, kind, params[name].value)
        if atom.u_aniso is not None and "U11" in names:
            atom.uiso = float(ueq(atom.u_aniso, crystal.cell))

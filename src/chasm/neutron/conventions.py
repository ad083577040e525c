"""Constants of a polarised-neutron calculation as a named choice (issue 17, item 3).

Flipping ratios depend on three sets of constants that programs do not share:
the coherent scattering lengths b, the ⟨j0⟩/⟨j2⟩ coefficients of the magnetic
form factors and the magnetic amplitude p per Bohr magneton. Two sets are
named here:

``"chasm"`` (the default)
    periodictable's scattering lengths (Rauch & Waschkowski 2003) and
    ⟨j_l⟩ coefficients (International Tables Vol. C, 4.4.5), and
    p = 2.69542 fm/μB (:data:`~chasm.neutron.structure_factors.P_FM`,
    r_e γ_n / 2 with CODATA constants).
``"cryspy"``
    the constants of cryspy (``data/cryspy_conventions.json``, built by
    ``tools/build_cryspy_conventions.py``): Sears (1992) scattering lengths
    (Ti −3.438 fm, Ho 8.01 fm where periodictable has −3.37 and 8.44), its
    copy of the International Tables ⟨j0⟩/⟨j2⟩ coefficients (⟨j2⟩ rounded
    differently, up to 5e-4 apart) and p = 2.695 fm/μB.

The flipping ratios of real files differ by 2.7-8.4 % between the two sets
(issue 17); with ``"cryspy"`` chasm reproduces cryspy's ratios
(tests/test_pnd_conventions.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files

from chasm.crystal.structure import parse_type_symbol
from chasm.errors import InputError
from chasm.neutron.magnetic_ff import IonFormFactor, ion_form_factor
from chasm.neutron.structure_factors import P_FM

__all__ = ["CONVENTIONS", "Conventions", "conventions"]

#: the names accepted by :func:`conventions` (and the project key ``conventions``)
CONVENTIONS = ("chasm", "cryspy")


@dataclass(frozen=True)
class Conventions:
    """One named set of constants.

    Attributes
    ----------
    name : str
    p : float
        Magnetic scattering amplitude per μB (fm).
    b_overrides : mapping
        Species -> b (fm) taking precedence over periodictable (empty for chasm).
    form_factors : mapping or None
        Ion type symbol -> :class:`IonFormFactor` (None: periodictable's), in
        the ``form_factors`` argument of the PND models.
    """

    name: str
    p: float
    b_overrides: Mapping[str, complex] = field(default_factory=dict)
    form_factors: Mapping[str, IonFormFactor] | None = None

    def form_factor(self, ion: str) -> IonFormFactor:
        """⟨j_l⟩ table of an ion under these conventions (InputError when none)."""
        found = None if self.form_factors is None else self.form_factors.get(ion)
        return found if found is not None else ion_form_factor(ion)


class _TableFormFactors(Mapping):
    """Ion type symbol -> IonFormFactor of a JSON table (any spelling of the charge)."""

    def __init__(self, table: dict, source: str):
        self._table = table
        self._source = source

    def _key(self, ion: str) -> str | None:
        try:
            symbol, charge = parse_type_symbol(ion)
        except ValueError:
            return None
        return f"{symbol}{abs(charge)}{'-' if charge < 0 else '+'}"

    def __getitem__(self, ion: str) -> IonFormFactor:
        entry = self._table.get(self._key(ion) or "")
        if entry is None or "j0" not in entry:
            raise KeyError(ion)
        return IonFormFactor(
            ion=ion,
            j0=tuple(entry["j0"]),
            j2=tuple(entry["j2"]) if "j2" in entry else None,
            j4=tuple(entry["j4"]) if "j4" in entry else None,
        )

    def __iter__(self):
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)


@cache
def _cryspy() -> Conventions:
    text = files("chasm.neutron").joinpath("data/cryspy_conventions.json").read_text()
    data = json.loads(text)
    b = {k: complex(*v) if isinstance(v, list) else complex(v) for k, v in data["b_fm"].items()}
    ff = _TableFormFactors(data["form_factors"], "cryspy")
    return Conventions("cryspy", float(data["p_fm_per_muB"]), b, ff)


def conventions(name: str = "chasm") -> Conventions:
    """The named set of constants (module docstring).

    Raises
    ------
    InputError
        An unknown name (the message lists the allowed ones).
    """
    if name == "chasm":
        return Conventions("chasm", P_FM)
    if name == "cryspy":
        return _cryspy()
    raise InputError(f"conventions = {name!r} is not one of {', '.join(CONVENTIONS)}")

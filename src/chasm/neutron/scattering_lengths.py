"""Bound coherent neutron scattering lengths b (fm) of elements and isotopes.

The default table is the one shipped with ``periodictable`` (Rauch &
Waschkowski 2003, Atominstitut Vienna, see ``periodictable.nsf``). Where that
table gives an imaginary part (strong absorbers: B-10, Cd, Sm, Gd, ...) the
returned value is complex, ``b_c + i b_c_i`` with periodictable's sign
(negative imaginary part for absorption); otherwise it is real. The small
imaginary parts that periodictable *estimates* from absorption cross sections
(``b_c_complex`` for every element) are not used: like most refinement programs
we keep b real unless a resonance value is tabulated.

Other programs use other tables. cryspy, for instance, uses Sears (1992)
(Ho 8.01 fm, Ti −3.438 fm, where periodictable has 8.44 and −3.37 fm), so every
function here accepts an ``overrides`` mapping ``species -> b (fm)`` that takes
precedence over periodictable.

Species spellings accepted: an element symbol (``'Ho'``), an ion type symbol as
written in CIF files (``'Ho3+'``, ``'O2-'``: the charge is ignored, b does not
depend on it), an isotope as ``'165Ho'``, ``'Ho-165'`` or ``'Ho165'``, and
``'D'`` / ``'T'`` for deuterium and tritium.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import periodictable

from chasm.errors import InputError

__all__ = ["scattering_length", "scattering_lengths", "parse_species"]

_ISOTOPE_FIRST = re.compile(r"^(\d+)-?([A-Za-z]{1,2})$")
_ISOTOPE_LAST = re.compile(r"^([A-Za-z]{1,2})-?(\d+)$")
_ION = re.compile(r"^([A-Za-z]{1,2})(\d*[+-]\d*)?$")


def parse_species(species: str) -> tuple[str, int | None]:
    """Element symbol and mass number of a species name.

    ``'Ho3+'`` -> ('Ho', None); ``'165Ho'``, ``'Ho-165'`` -> ('Ho', 165);
    ``'D'`` -> ('H', 2).

    Raises
    ------
    InputError
        If no known element can be read from the name.
    """
    text = species.strip()
    match = _ISOTOPE_FIRST.match(text)
    if match:
        symbol, mass = match.group(2), int(match.group(1))
    else:
        match = _ISOTOPE_LAST.match(text)
        if match:
            symbol, mass = match.group(1), int(match.group(2))
        else:
            match = _ION.match(text)
            if not match:
                raise InputError(f"cannot read an element from the species name {species!r}")
            symbol, mass = match.group(1), None
    symbol = symbol.capitalize()
    if symbol == "D":
        return "H", 2
    if symbol == "T":
        return "H", 3
    try:
        periodictable.elements.symbol(symbol)
    except ValueError:
        raise InputError(f"unknown element {symbol!r} in species {species!r}") from None
    return symbol, mass


def _lookup_override(species: str, overrides: Mapping[str, complex]) -> complex | None:
    if species in overrides:
        return complex(overrides[species])
    symbol, mass = parse_species(species)
    keys = [symbol] if mass is None else [f"{mass}{symbol}", f"{symbol}-{mass}"]
    for key in keys:
        if key in overrides:
            return complex(overrides[key])
    return None


def scattering_length(species: str, overrides: Mapping[str, complex] | None = None) -> complex:
    """Bound coherent scattering length of one species.

    Parameters
    ----------
    species : str
        Element, ion or isotope name (see the module docstring).
    overrides : mapping, optional
        ``species -> b`` (fm) taking precedence over periodictable; keys may be
        element symbols (``'Ti'``), isotopes (``'48Ti'``) or the exact species
        string.

    Returns
    -------
    complex
        b in fm (imaginary part 0 unless tabulated).

    Raises
    ------
    InputError
        Unknown element or isotope, or no coherent scattering length tabulated.
    """
    if overrides:
        found = _lookup_override(species, overrides)
        if found is not None:
            return found
    symbol, mass = parse_species(species)
    element = periodictable.elements.symbol(symbol)
    target = element
    if mass is not None:
        try:
            target = element[mass]
        except (KeyError, IndexError, ValueError):
            raise InputError(f"unknown isotope {mass}{symbol} (species {species!r})") from None
    neutron = getattr(target, "neutron", None)
    b_c = None if neutron is None else neutron.b_c
    if b_c is None:
        raise InputError(
            f"no coherent neutron scattering length tabulated for {species!r}; "
            "give it with the overrides argument"
        )
    b_i = neutron.b_c_i
    return complex(b_c, b_i if b_i is not None else 0.0)


def scattering_lengths(
    species: Iterable[str], overrides: Mapping[str, complex] | None = None
) -> list[complex]:
    """:func:`scattering_length` for each name of a sequence (fm)."""
    return [scattering_length(s, overrides) for s in species]

"""chasm.crystal layer: unit cell, space-group operations, sites, site symmetry.

Main entry points: :class:`Crystal` (build with :meth:`Crystal.from_parts` or
:func:`read_cif`), :class:`Atom`, and the ADP conversions of :mod:`.adp`.
"""

from .adp import ucart_to_ucif, ucif_to_ucart, ucif_to_ustar, ueq, ustar_to_ucif
from .cif import parse_cif_number, read_cif
from .structure import Atom, Crystal, parse_type_symbol
from .symmetry import parse_symop

__all__ = [
    "Atom",
    "Crystal",
    "read_cif",
    "parse_cif_number",
    "parse_symop",
    "parse_type_symbol",
    "ucif_to_ustar",
    "ustar_to_ucif",
    "ucif_to_ucart",
    "ucart_to_ucif",
    "ueq",
]

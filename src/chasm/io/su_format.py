"""A value with its standard uncertainty in parentheses, as crystallographers print it.

The su is rounded by the "rule of 19": it keeps two significant digits when
those two digits are 19 or less (``0.00013`` → ``(13)``, ``0.0019`` →
``(19)``), otherwise one (``0.00066`` → ``(7)``, ``0.00196`` → ``(2)``; but
``0.000097``, which rounds to 0.00010, is ``(10)``); the
value is rounded to the same decimal place. This is the convention of the IUCr
Notes for Authors and of SHELXL's CIF output (checked against
``../shared/data/xray/l-alanine/iam.cif`` in tests/test_core_cif.py).

An su of zero (a value fixed or fixed by symmetry) is printed without
parentheses; so is an unknown su (None or NaN).
"""

from __future__ import annotations

import math

__all__ = ["format_su", "format_quantity", "su_digits"]


def _half_up(x: float) -> int:
    """Round half up (25 -> 3 tens, not Python's half-to-even 2)."""
    return int(math.floor(x + 0.5 + 1e-9))


def su_digits(su: float) -> tuple[int, int]:
    """Decimal places and the su in units of the last place, by the rule of 19.

    Parameters
    ----------
    su : float
        A positive, finite standard uncertainty.

    Returns
    -------
    (decimals, units) : (int, int)
        ``round(value, decimals)`` is the printed value and ``units`` the
        integer in parentheses; ``decimals`` is negative for su ≥ 20 (the value
        is then rounded to tens, hundreds...).
    """
    if not (su > 0 and math.isfinite(su)):
        raise ValueError(f"su must be positive and finite, got {su!r}")
    exponent = math.floor(math.log10(su))
    # two significant digits first; rounding can carry into the next decade (0.0995 -> 0.10)
    two = _half_up(su / 10.0 ** (exponent - 1))
    if two >= 100:
        exponent, two = exponent + 1, _half_up(two / 10)
    if two <= 19:
        return 1 - exponent, int(two)
    one = _half_up(su / 10.0**exponent)
    if one >= 10:  # 0.0097 -> 0.010: leading digits "10" <= 19, so two digits, as SHELXL
        return -exponent, 10
    return -exponent, int(one)


def _plain(value: float, decimals: int | None) -> str:
    if decimals is None:
        text = f"{value:.6f}".rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text
    return f"{value:.{decimals}f}"


def format_su(value: float, su: float | None, exact_decimals: int | None = None) -> str:
    """``value(su)`` in CIF notation, su rounded by the rule of 19.

    Parameters
    ----------
    value : float
    su : float or None
        Standard uncertainty, same unit as ``value``; 0, None or NaN prints the
        value alone.
    exact_decimals : int, optional
        Decimal places of a value printed without su (default: up to 6, trailing
        zeros dropped: ``0.5``, ``0.333333``).

    Returns
    -------
    str
        E.g. ``format_su(0.727073, 0.000071)`` → ``'0.72707(7)'``,
        ``format_su(1.2498, 0.00066)`` → ``'1.2498(7)'``,
        ``format_su(0.5, 0.0)`` → ``'0.5'``, ``format_su(1234.0, 25.0)`` →
        ``'1230(30)'``.
    """
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"cannot format the non-finite value {value!r}")
    if su is None or not math.isfinite(float(su)) or float(su) == 0.0:
        return _plain(value, exact_decimals)
    su = float(su)
    if su < 0:
        raise ValueError(f"a standard uncertainty cannot be negative, got {su!r}")
    decimals, units = su_digits(su)
    if decimals >= 0:
        text = f"{value:.{decimals}f}"
        if float(text) == 0.0:
            text = text.lstrip("-")
        return f"{text}({units})"
    step = 10 ** (-decimals)
    rounded = int(round(value / step)) * step
    return f"{rounded}({units * step})"


#: An su below this prints as an exact value: the rounding of a constrained sum.
EXACT_SU = 5e-7


def format_quantity(value: float, su: float | None) -> str:
    """A derived quantity for a table: ``value(su)`` by the rule of 19, else exact.

    No su, or an su below :data:`EXACT_SU` (an exact sum such as a constrained
    total charge, whose covariance leaves only rounding), prints the value with
    4 decimals and without a negative zero, as a fixed quantity does.
    """
    if su is not None and math.isfinite(su) and su >= EXACT_SU:
        return format_su(float(value), float(su))
    return f"{value + 0.0 if abs(value) >= 5e-5 else 0.0:.4f}"

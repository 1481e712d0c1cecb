"""The one edge where decimal strings become integers (ticks, lots, atoms, rates) and back.

Input must be a plain ASCII decimal (``-12.345``; no exponent, no underscores, at most 30
digits each side of the point), parsed exactly with integers, never through float, and an
exact multiple of its unit: an off-grid price or quantity is refused, not rounded.
"""

from __future__ import annotations

import functools

from perpx.core.codes import RejectCode
from perpx.core.instruments import InstrumentSpec
from perpx.core.numbers import ATOM_DECIMALS, RATE_DECIMALS

# 10**n for every count of decimals `parse_fraction` returns (0..30): no `**` per order.
_POW10: tuple[int, ...] = tuple(10**n for n in range(31))
_INVALID_PRICE = RejectCode.INVALID_PRICE  # enum members read once, not per order
_INVALID_QTY = RejectCode.INVALID_QTY


class ConversionError(ValueError):
    """A decimal string that is not a valid amount of its unit; carries the RejectCode to answer."""

    def __init__(self, code: RejectCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_fraction(text: str, code: RejectCode = RejectCode.INVALID_PARAMETER) -> tuple[int, int]:
    """Parse a plain decimal string into (numerator, decimals): "-1.25" -> (-125, 2).

    The grammar is the regular expression ``-?[0-9]{1,50}([.][0-9]{0,30})?`` (a full match):
    an optional "-", 1 to 50 ASCII digits, then optionally "." and 0 to 30 ASCII digits ("1."
    is 1; ".5", "+1", "1e3", " 1" are refused). Checked with str methods, not `re` (~0.75k
    fewer instructions a call, twice per order; `test_convert_parse_oracle.py` holds the two
    equal).
    """
    if not isinstance(text, str):
        raise ConversionError(code, f"expected a decimal string, got {type(text).__name__}")
    negative = text.startswith("-")
    whole, _, fraction = (text[1:] if negative else text).partition(".")
    # Both parts' digits checked at once: `whole` is not empty and the two are ASCII digits
    # only when their concatenation is (the numerator's text, needed anyway).
    digits = whole + fraction
    if not (whole and digits.isascii() and digits.isdigit() and len(whole) <= 50
            and len(fraction) <= 30):
        raise ConversionError(code, f"not a plain decimal number: {text[:40]!r}")
    numerator = int(digits)
    return (-numerator if negative else numerator), len(fraction)


@functools.lru_cache(maxsize=1024)
def _unit(unit: str) -> tuple[int, int]:
    # A unit is an instrument's tick size or qty step: a handful of strings, parsed on every
    # order otherwise. A bad one raises (exceptions are not cached).
    step, step_decimals = parse_fraction(unit, RejectCode.INVALID_PARAMETER)
    if step <= 0:
        raise ConversionError(RejectCode.INVALID_PARAMETER, f"unit must be positive: {unit}")
    return step, step_decimals


def units_of(text: str, unit: str, code: RejectCode) -> int:
    """Return `text / unit` as an int, refusing anything that is not a whole number of units."""
    value, value_decimals = parse_fraction(text, code)
    step, step_decimals = _unit(unit)
    # value / 10**vd divided by step / 10**sd == value * 10**sd / (step * 10**vd), exactly.
    step_scale = _POW10[step_decimals]
    value_scale = _POW10[value_decimals]
    count, remainder = divmod(value * step_scale, step * value_scale)
    if remainder:
        raise ConversionError(code, f"{text} is not a multiple of {unit}")
    return count


def scaled(text: str, decimals: int, code: RejectCode = RejectCode.INVALID_PARAMETER) -> int:
    """Return `text * 10**decimals` as an int; more decimals than that are refused."""
    value, value_decimals = parse_fraction(text, code)
    if value_decimals > decimals:
        excess: int = 10 ** (value_decimals - decimals)
        count, remainder = divmod(value, excess)
        if remainder:
            raise ConversionError(code, f"{text} has more than {decimals} decimals")
        return count
    missing: int = 10 ** (decimals - value_decimals)
    return value * missing


def to_ticks(spec: InstrumentSpec, price: str) -> int:
    """Convert a price string to ticks of `spec`."""
    return units_of(price, spec.tick_size, _INVALID_PRICE)


def to_lots(spec: InstrumentSpec, qty: str) -> int:
    """Convert a quantity string to lots (qty steps) of `spec`."""
    return units_of(qty, spec.qty_step, _INVALID_QTY)


def to_atoms(amount: str) -> int:
    """Convert a coin amount string to atoms (10**-8)."""
    return scaled(amount, ATOM_DECIMALS, RejectCode.INVALID_AMOUNT)


def to_rate(rate: str) -> int:
    """Convert a rate string (0.00055) to units of 10**-8 (55000)."""
    return scaled(rate, RATE_DECIMALS)


def format_scaled(value: int, decimals: int, shown: int | None = None) -> str:
    """Format `value * 10**-decimals` exactly; `shown` pads to that many decimals.

    Without `shown`, trailing zeros are dropped ("0.165", "5", "-0.00055"). With `shown`
    smaller than needed, the exact digits are kept rather than rounded.
    """
    sign = "-" if value < 0 else ""
    whole, fraction = divmod(abs(value), 10**decimals)
    digits = str(fraction).rjust(decimals, "0") if decimals else ""
    digits = digits.rstrip("0")
    if shown is not None:
        digits = digits.ljust(shown, "0")
    return f"{sign}{whole}.{digits}" if digits else f"{sign}{whole}"


def format_ticks(spec: InstrumentSpec, ticks: int) -> str:
    """Format a price in ticks with the instrument's price decimals (Bybit's priceScale)."""
    step, step_decimals = parse_fraction(spec.tick_size)
    return format_scaled(ticks * step, step_decimals, spec.price_scale)


def format_lots(spec: InstrumentSpec, lots: int) -> str:
    """Format a quantity in lots with the qty step's decimals."""
    step, step_decimals = parse_fraction(spec.qty_step)
    return format_scaled(lots * step, step_decimals, spec.qty_scale)


def format_average_price(spec: InstrumentSpec, value_atoms: int, lots: int,
                         extra_decimals: int) -> str:
    """Show the price at which `lots` are worth `value_atoms`, floored to `extra_decimals` more.

    The contract's average entry (`ContractMaths.average_entry_fraction`: linear ``V/(q*a)``,
    inverse the harmonic ``q*k/V``) in ticks, shown in quote units; "0" without a quantity
    (zero without a value).
    """
    if lots <= 0:
        return "0"
    decimals = spec.price_scale + extra_decimals
    scaled_price = 0
    if value_atoms > 0:
        numerator, denominator = spec.contract.average_entry_fraction(value_atoms, lots)
        scaled_price = numerator * spec.tick_atoms * 10**decimals // (denominator * 10**8)
    return format_scaled(scaled_price, decimals, spec.price_scale)


def account_rate_e4(numerator: int, denominator: int) -> int | None:
    """Return an account IM or MM rate (requirement over margin base) in 10**-4.

    Truncated, as Bybit prints them (next-mechanics §4.3: the PM sample's 0.020498 is
    "0.0204"); display only, the core compares the exact integers. None when the base is
    not positive (no rate).
    """
    if denominator <= 0:
        return None
    return numerator * 10_000 // denominator


def format_atoms(atoms: int) -> str:
    """Format an amount in atoms as a plain decimal string without trailing zeros."""
    return format_scaled(atoms, ATOM_DECIMALS)


def format_rate(rate: int) -> str:
    """Format a rate in 10**-8 as a plain decimal string."""
    return format_scaled(rate, RATE_DECIMALS)

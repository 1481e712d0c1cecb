"""The one edge where decimal strings become integers (ticks, lots, atoms, rates) and back.

Input is parsed from `str` with Decimal (never from float) and must be an exact multiple of
its unit: an off-grid price or quantity is refused, not rounded.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation, localcontext

from perpx.core.codes import RejectCode
from perpx.core.instruments import InstrumentSpec
from perpx.core.numbers import ATOM_DECIMALS, RATE_DECIMALS


class ConversionError(ValueError):
    """A decimal string that is not a valid amount of its unit; carries the RejectCode to answer."""

    def __init__(self, code: RejectCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_decimal(text: str, code: RejectCode = RejectCode.INVALID_PARAMETER) -> Decimal:
    """Parse a finite decimal from a string; floats and other types are refused."""
    if not isinstance(text, str):
        raise ConversionError(code, f"expected a decimal string, got {type(text).__name__}")
    stripped = text.strip()
    if not stripped or len(stripped) > 64:
        raise ConversionError(code, f"not a number: {text!r}")
    try:
        value = Decimal(stripped)
    except InvalidOperation:
        raise ConversionError(code, f"not a number: {text!r}") from None
    if not value.is_finite():
        raise ConversionError(code, f"not a finite number: {text!r}")
    return value


def units_of(text: str, unit: Decimal | str, code: RejectCode) -> int:
    """Return `text / unit` as an int, refusing anything that is not a whole number of units."""
    value = parse_decimal(text, code)
    with localcontext() as ctx:
        ctx.prec = 60
        count = value / Decimal(unit)
        if count != count.to_integral_value():
            raise ConversionError(code, f"{text} is not a multiple of {unit}")
    return int(count)


def scaled(text: str, decimals: int, code: RejectCode = RejectCode.INVALID_PARAMETER) -> int:
    """Return `text * 10**decimals` as an int; more decimals than that are refused."""
    return units_of(text, Decimal(1).scaleb(-decimals), code)


def to_ticks(spec: InstrumentSpec, price: str) -> int:
    """Convert a price string to ticks of `spec`."""
    return units_of(price, spec.tick_size, RejectCode.INVALID_PRICE)


def to_lots(spec: InstrumentSpec, qty: str) -> int:
    """Convert a quantity string to lots (qty steps) of `spec`."""
    return units_of(qty, spec.qty_step, RejectCode.INVALID_QTY)


def to_atoms(amount: str) -> int:
    """Convert a coin amount string to atoms (10**-8)."""
    return scaled(amount, ATOM_DECIMALS, RejectCode.INVALID_AMOUNT)


def to_rate(rate: str) -> int:
    """Convert a rate string (0.00055) to units of 10**-8 (55000)."""
    return scaled(rate, RATE_DECIMALS)


def format_scaled(value: int, decimals: int, shown: int | None = None) -> str:
    """Format `value * 10**-decimals` with `shown` decimals (default: as few as exact)."""
    quantum = Decimal(1).scaleb(-(decimals if shown is None else shown))
    with localcontext() as ctx:
        ctx.prec = 60
        number = Decimal(value).scaleb(-decimals)
        if shown is None:
            return f"{number.normalize():f}"
        return f"{number.quantize(quantum):f}"


def format_ticks(spec: InstrumentSpec, ticks: int) -> str:
    """Format a price in ticks with the instrument's price decimals (Bybit's priceScale)."""
    with localcontext() as ctx:
        ctx.prec = 60
        value = Decimal(spec.tick_size) * ticks
        return f"{value.quantize(Decimal(1).scaleb(-spec.price_scale)):f}"


def format_lots(spec: InstrumentSpec, lots: int) -> str:
    """Format a quantity in lots with the qty step's decimals."""
    with localcontext() as ctx:
        ctx.prec = 60
        value = Decimal(spec.qty_step) * lots
        return f"{value.quantize(Decimal(1).scaleb(-spec.qty_scale)):f}"


def format_atoms(atoms: int) -> str:
    """Format an amount in atoms as a plain decimal string without trailing zeros."""
    return format_scaled(atoms, ATOM_DECIMALS)


def format_rate(rate: int) -> str:
    """Format a rate in 10**-8 as a plain decimal string."""
    return format_scaled(rate, RATE_DECIMALS)

"""Integer units of the core and the only ways it divides.

Prices are ticks, quantities lots, money atoms (10**-8 of the coin), rates 10**-8 of one.
Every division names its rounding direction; `/` and floats never touch an amount.
"""

from __future__ import annotations

from typing import Final, NewType

Ticks = NewType("Ticks", int)
Lots = NewType("Lots", int)
Atoms = NewType("Atoms", int)
Rate = NewType("Rate", int)

ATOM_DECIMALS: Final = 8
ATOMS_PER_COIN: Final = 10**ATOM_DECIMALS
RATE_DECIMALS: Final = 8
RATE_ONE: Final = 10**RATE_DECIMALS


def div_floor(numerator: int, denominator: int) -> int:
    """Divide rounding toward minus infinity (payouts and credits: the exchange keeps the rest)."""
    if denominator <= 0:
        raise ZeroDivisionError(f"div_floor: denominator must be positive, was {denominator}")
    return numerator // denominator


def div_ceil(numerator: int, denominator: int) -> int:
    """Divide rounding toward plus infinity (requirements and charges: never under-collect)."""
    if denominator <= 0:
        raise ZeroDivisionError(f"div_ceil: denominator must be positive, was {denominator}")
    return -(-numerator // denominator)


def div_round(numerator: int, denominator: int) -> int:
    """Divide rounding to the nearest integer, halves away from zero.

    For published reference figures (mark price, premium index, funding rate), which are no
    requirement or payout of anyone's, so neither direction favours a side.
    """
    if denominator <= 0:
        raise ZeroDivisionError(f"div_round: denominator must be positive, was {denominator}")
    magnitude = (2 * abs(numerator) + denominator) // (2 * denominator)
    return magnitude if numerator >= 0 else -magnitude


def mul_div_floor(a: int, b: int, denominator: int) -> int:
    """Return floor(a * b / denominator), exact for any size of integer."""
    return div_floor(a * b, denominator)


def mul_div_ceil(a: int, b: int, denominator: int) -> int:
    """Return ceil(a * b / denominator), exact for any size of integer."""
    return div_ceil(a * b, denominator)


def apply_rate_ceil(amount: int, rate: int) -> int:
    """Charge `rate` (in 10**-8) on `amount`, rounded up: a fee or margin the exchange collects."""
    return div_ceil(amount * rate, RATE_ONE)


def apply_rate_floor(amount: int, rate: int) -> int:
    """Pay `rate` (in 10**-8) on `amount`, rounded down: a credit the exchange hands out."""
    return div_floor(amount * rate, RATE_ONE)


def round_down_to_step(value: int, step: int) -> int:
    """Round a non-negative integer down to a multiple of `step`."""
    return div_floor(value, step) * step


def round_up_to_step(value: int, step: int) -> int:
    """Round a non-negative integer up to a multiple of `step`."""
    return div_ceil(value, step) * step

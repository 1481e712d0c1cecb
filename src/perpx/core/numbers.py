"""Integer units of the core and the only ways it divides.

Prices are ticks, quantities lots, money atoms (10**-8 of the coin), rates 10**-8 of one.
Every division names its rounding direction; `/` and floats never touch an amount.
"""

from __future__ import annotations

from typing import Any, Final, NewType

from mypy_extensions import i64

Ticks = NewType("Ticks", int)
Lots = NewType("Lots", int)
Atoms = NewType("Atoms", int)
Rate = NewType("Rate", int)

ATOM_DECIMALS: Final = 8
ATOMS_PER_COIN: Final = 10**ATOM_DECIMALS
RATE_DECIMALS: Final = 8
RATE_ONE: Final = 10**RATE_DECIMALS


# Zero as an object, boxed once. Compiled, an int handed to an event (a msgspec Struct) is
# boxed at each use, a call even for a cached small int; a fill's events carry many zeros (an
# opening fill closes nothing, a cross position holds no margin). A Final of type Any is a C
# static: reading it is a load.
BOXED_ZERO: Final[Any] = 0


def boxed(value: int) -> Any:
    """Return `value` as an object: `BOXED_ZERO` for zero, else the value boxed as usual."""
    return BOXED_ZERO if value == 0 else value


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


# Bits of magnitude an i64 fast path below allows any factor, product or sum it forms: under
# 2**62, so a sum of two such values stays under 2**63.
_NATIVE_BITS: Final = 62
# The largest value of at most 62 bits: for a positive d, ``d <= _NATIVE_MAX`` is
# ``bits(d) <= 62``.
_NATIVE_MAX: Final = 2**62 - 1


def mul(a: int, b: int) -> int:
    """Return ``a * b``, multiplied in a machine word when compiled and provably in range.

    ``bits(a) + bits(b) <= 62`` bounds the product under 2**62 (see `mul_div_floor`, whose
    first path this is); compiled, mypyc's own int product leaves machine words from a factor
    of 2**30 or any negative factor.
    """
    if a.bit_length() + b.bit_length() <= _NATIVE_BITS:
        x: i64 = a
        y: i64 = b
        return x * y
    return a * b


def mul_div_floor(a: int, b: int, denominator: int) -> int:
    """Return floor(a * b / denominator), exact for any size of integer.

    Compiled by mypyc, an int product is a machine multiply only when both factors are under
    2**30 and not negative (``CPyTagged_IsMultiplyOverflow``); amounts in atoms are ~2**40,
    so every such product went through heap longs (``PyNumber_Multiply``, ~700 instructions).
    The i64 paths multiply in machine words. An i64 product wraps silently on overflow
    (mypyc emits C's ``*``; a compiled probe gave ``2**62 * 2 == -2**63``), while i64 ``//``
    floors as Python's does; so each path runs only where its bounds, checked on the
    operands' bit lengths, prove that no intermediate reaches 2**63:

    * ``|a| < 2**bits(a)`` and ``|b| < 2**bits(b)``, so with ``bits(a) + bits(b) <= 62`` the
      product is under 2**62: one multiply and one floor division;
    * else split ``a = q*d + r`` (``0 <= r < d``, i64 floor division), so
      ``floor(a*b/d) = q*b + floor(r*b/d)`` (``q*b`` is whole). With ``bits(a) <= 61``,
      ``bits(b) <= bits(d)`` (so ``|b| < 2d``) and ``bits(b) + bits(d) <= 62`` (so also
      ``|b| < 2**31``): ``|r*b| < d*|b| < 2**62``; ``|q*d| <= |a| + d < 2**63``;
      ``|q| <= |a|/d + 1`` gives ``|q*b| < 2|a| + |b| < 2**62 + 2**31``; and
      ``|floor(r*b/d)| <= |b|``, so the sum stays under 2**62 + 2**32. This is a rate of
      about one or less (a fee ``f/R``, an IM ``R/L``, ``R/(R -/+ MMR)``) on a large amount.

    Anything else, and the pure-Python package (where i64 is int), takes Python's exact ints.
    The property tests compare every path with ``a * b // d`` at and around its bounds.
    """
    if denominator <= 0:
        raise ZeroDivisionError(f"mul_div: denominator must be positive, was {denominator}")
    bits_a: i64 = a.bit_length()  # i64: the bounds' sums and comparisons in machine words
    bits_b: i64 = b.bit_length()
    # ``bits(d) <= 62`` as a comparison (inline when compiled), not a third bit length: the
    # first path needs no more of the denominator; the split path takes its bit length.
    if bits_a + bits_b <= _NATIVE_BITS and denominator <= _NATIVE_MAX:
        x: i64 = a
        y: i64 = b
        d: i64 = denominator
        return x * y // d
    bits_d: i64 = denominator.bit_length()
    if bits_a < _NATIVE_BITS and bits_b <= bits_d and bits_b + bits_d <= _NATIVE_BITS:
        x2: i64 = a
        y2: i64 = b
        d2: i64 = denominator
        q = x2 // d2
        return q * y2 + (x2 - q * d2) * y2 // d2
    return a * b // denominator


def mul_div_ceil(a: int, b: int, denominator: int) -> int:
    """Return ceil(a * b / denominator), exact for any size of integer (`mul_div_floor`'s paths).

    `mul_div_floor`'s first path taken here, without the call and the negations around it:
    ``bits(-a) == bits(a)``, so the same bounds prove ``|a * b| < 2**62`` (its negation
    too), and ``-(-p // d)`` is the ceiling. Compiled, each order's cost and each fee goes
    through this (issue #14). Anything else is ``-mul_div_floor(-a, b, d)``, as before; the
    property tests compare both with ``-(-a * b // d)``.
    """
    if denominator > 0 and denominator <= _NATIVE_MAX:
        bits_a: i64 = a.bit_length()
        bits_b: i64 = b.bit_length()
        if bits_a + bits_b <= _NATIVE_BITS:
            x: i64 = a
            y: i64 = b
            d: i64 = denominator
            return -(-(x * y) // d)
    return -mul_div_floor(-a, b, denominator)


def apply_rate_ceil(amount: int, rate: int) -> int:
    """Charge `rate` (in 10**-8) on `amount`, rounded up: a fee or margin the exchange collects."""
    return mul_div_ceil(amount, rate, RATE_ONE)


def apply_rate_floor(amount: int, rate: int) -> int:
    """Pay `rate` (in 10**-8) on `amount`, rounded down: a credit the exchange hands out."""
    return mul_div_floor(amount, rate, RATE_ONE)


def gcd_positive(a: int, b: int) -> int:
    """Return ``math.gcd(a, b)`` for positive `a` and `b`, by Euclid's remainders.

    Compiled, a native loop of a few machine-word remainders for the rates and leverages it
    meets (``gcd(L, R)``, ``gcd(R, R - MMR)``), where `math.gcd` is a generic call of a
    pure module's name, looked up in the module's dict at each use. The property tests
    compare it with `math.gcd`.
    """
    while b:
        a, b = b, a % b
    return a


def bisect_left_ints(keys: list[int], key: int, low: int, high: int) -> int:
    """Return the first index in ``keys[low:high]`` (sorted) whose key is not below `key`.

    `bisect.bisect_left` written out: compiled, this is a native loop over the list's ints,
    where `bisect`'s functions are a module-dict lookup and a generic call each (issue #14).
    The book's sides and the risk index's books search with it; property tests hold it to
    `bisect_left`, bounds and ints past a machine word included.
    """
    while low < high:
        middle = (low + high) >> 1
        if keys[middle] < key:
            low = middle + 1
        else:
            high = middle
    return low


def round_down_to_step(value: int, step: int) -> int:
    """Round a non-negative integer down to a multiple of `step`."""
    return div_floor(value, step) * step


def round_up_to_step(value: int, step: int) -> int:
    """Round a non-negative integer up to a multiple of `step`."""
    return div_ceil(value, step) * step

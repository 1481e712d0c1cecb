"""`numbers.gcd_positive` is `math.gcd` on positive integers (issue #14).

The isolated liquidation price's shortcut
(`LinearContract.isolated_liquidation_price_rounded_ticks`) reduces its fractions by it;
`test_liq_price_rounded` holds the price itself to the fraction.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.core.numbers import RATE_ONE, gcd_positive

POSITIVE = st.integers(min_value=1, max_value=2**70)


@given(POSITIVE, POSITIVE)
@settings(max_examples=500, deadline=None)
def test_gcd_positive_is_math_gcd(a: int, b: int) -> None:
    assert gcd_positive(a, b) == math.gcd(a, b)


@given(st.integers(min_value=1, max_value=200 * RATE_ONE), st.integers(0, RATE_ONE - 1))
@settings(max_examples=500, deadline=None)
def test_gcd_positive_on_leverages_and_maintenance_factors(leverage: int, mmr: int) -> None:
    assert gcd_positive(leverage, RATE_ONE) == math.gcd(leverage, RATE_ONE)
    assert gcd_positive(RATE_ONE, RATE_ONE - mmr) == math.gcd(RATE_ONE, RATE_ONE - mmr)
    assert gcd_positive(RATE_ONE, RATE_ONE + mmr) == math.gcd(RATE_ONE, RATE_ONE + mmr)

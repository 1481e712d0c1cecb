"""Integer arithmetic of the core: every division names its rounding direction."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perpx.core.numbers import (
    ATOMS_PER_COIN,
    BOXED_ZERO,
    RATE_ONE,
    apply_rate_ceil,
    apply_rate_floor,
    boxed,
    div_ceil,
    div_floor,
    mul,
    mul_div_ceil,
    mul_div_floor,
    round_down_to_step,
    round_up_to_step,
)

TAKER_FEE_0_055_PCT = 55_000  # 0.00055 in units of 10**-8
MAKER_FEE_0_02_PCT = 20_000

numerators = st.integers(min_value=-(10**40), max_value=10**40)
denominators = st.integers(min_value=1, max_value=10**20)


@pytest.mark.parametrize(
    ("numerator", "denominator", "floor", "ceil"),
    [
        (7, 2, 3, 4),
        (-7, 2, -4, -3),
        (6, 2, 3, 3),
        (-6, 2, -3, -3),
        (0, 5, 0, 0),
        (1, 10**8, 0, 1),
        (-1, 10**8, -1, 0),
    ],
    ids=[
        "a positive remainder floors down and ceils up",
        "a negative numerator floors toward minus infinity and ceils toward zero",
        "an exact positive quotient is the same both ways",
        "an exact negative quotient is the same both ways",
        "zero divides to zero both ways",
        "a tiny positive fraction floors to zero and ceils to one",
        "a tiny negative fraction floors to minus one and ceils to zero",
    ],
)
def test_div_rounds_in_its_named_direction(
    numerator: int, denominator: int, floor: int, ceil: int
) -> None:
    # Act
    floored = div_floor(numerator, denominator)
    ceiled = div_ceil(numerator, denominator)

    # Assert
    assert (floored, ceiled) == (floor, ceil)


@pytest.mark.parametrize(
    "function",
    [div_floor, div_ceil, round_down_to_step, round_up_to_step],
    ids=["div_floor", "div_ceil", "round_down_to_step", "round_up_to_step"],
)
@pytest.mark.parametrize("denominator", [0, -1, -(10**8)], ids=["zero", "minus one", "minus 1e8"])
def test_non_positive_denominator_raises(function, denominator: int) -> None:
    # Act / Assert
    with pytest.raises(ZeroDivisionError):
        function(10, denominator)


@pytest.mark.parametrize(
    "function", [mul_div_floor, mul_div_ceil], ids=["mul_div_floor", "mul_div_ceil"]
)
@pytest.mark.parametrize("denominator", [0, -3], ids=["zero", "negative"])
def test_mul_div_with_non_positive_denominator_raises(function, denominator: int) -> None:
    # Act / Assert
    with pytest.raises(ZeroDivisionError):
        function(3, 4, denominator)


@pytest.mark.parametrize(
    "function", [apply_rate_floor, apply_rate_ceil], ids=["apply_rate_floor", "apply_rate_ceil"]
)
def test_rate_of_zero_charges_nothing(function) -> None:
    # Act / Assert
    assert function(123_456_789, 0) == 0


@pytest.mark.parametrize(
    ("a", "b", "denominator", "floor", "ceil"),
    [
        (10, 10, 3, 33, 34),
        (-10, 10, 3, -34, -33),
        (10**30, 10**30, 10**59, 10, 10),
        (10**30 + 1, 10**30, 10**60, 1, 2),
    ],
    ids=[
        "100 over 3 floors to 33 and ceils to 34",
        "minus 100 over 3 floors to -34 and ceils to -33",
        "a product far beyond 64 bits stays exact",
        "a product one part in 1e30 above a whole number ceils up",
    ],
)
def test_mul_div_is_exact_for_any_size(
    a: int, b: int, denominator: int, floor: int, ceil: int
) -> None:
    # Act
    floored = mul_div_floor(a, b, denominator)
    ceiled = mul_div_ceil(a, b, denominator)

    # Assert
    assert (floored, ceiled) == (floor, ceil)


@pytest.mark.parametrize(
    ("amount", "rate", "charged", "paid"),
    [
        (1_000 * ATOMS_PER_COIN, TAKER_FEE_0_055_PCT, 55_000_000, 55_000_000),
        (1_000 * ATOMS_PER_COIN, MAKER_FEE_0_02_PCT, 20_000_000, 20_000_000),
        (1, TAKER_FEE_0_055_PCT, 1, 0),
        (1_818, TAKER_FEE_0_055_PCT, 1, 0),
        (1_819, TAKER_FEE_0_055_PCT, 2, 1),
        (-1, TAKER_FEE_0_055_PCT, 0, -1),
        (5 * ATOMS_PER_COIN, RATE_ONE, 5 * ATOMS_PER_COIN, 5 * ATOMS_PER_COIN),
    ],
    ids=[
        "0.055% of 1000 USDT is 0.55 USDT exactly",
        "0.02% of 1000 USDT is 0.20 USDT exactly",
        "a fee on one atom is charged as one atom and paid as nothing",
        "a fee just under one atom is charged as one atom and paid as nothing",
        "just over one atom of fee is charged as two and paid as one",
        "a negative amount pays toward minus infinity and charges toward zero",
        "a rate of one returns the amount",
    ],
)
def test_apply_rate_charges_up_and_pays_down(
    amount: int, rate: int, charged: int, paid: int
) -> None:
    # Act
    ceil_result = apply_rate_ceil(amount, rate)
    floor_result = apply_rate_floor(amount, rate)

    # Assert
    assert (ceil_result, floor_result) == (charged, paid)


@pytest.mark.parametrize(
    ("value", "step", "down", "up"),
    [
        (17, 5, 15, 20),
        (15, 5, 15, 15),
        (0, 5, 0, 0),
        (1, 1_000, 0, 1_000),
        (999, 1, 999, 999),
    ],
    ids=[
        "a value between steps rounds down and up to its neighbours",
        "a value on a step stays put",
        "zero stays zero",
        "a value below one step rounds down to zero and up to one step",
        "a step of one changes nothing",
    ],
)
def test_round_to_step(value: int, step: int, down: int, up: int) -> None:
    # Act
    rounded_down = round_down_to_step(value, step)
    rounded_up = round_up_to_step(value, step)

    # Assert
    assert (rounded_down, rounded_up) == (down, up)


@given(numerator=numerators, denominator=denominators)
def test_div_floor_and_ceil_bracket_the_exact_quotient(numerator: int, denominator: int) -> None:
    # Act
    floored = div_floor(numerator, denominator)
    ceiled = div_ceil(numerator, denominator)

    # Assert
    assert floored * denominator <= numerator < (floored + 1) * denominator
    assert (ceiled - 1) * denominator < numerator <= ceiled * denominator
    assert ceiled - floored == (0 if numerator % denominator == 0 else 1)
    assert ceiled == -div_floor(-numerator, denominator)


@given(
    amount=st.integers(min_value=-(10**30), max_value=10**30),
    rate=st.integers(min_value=-RATE_ONE, max_value=RATE_ONE),
)
def test_charged_rate_is_never_below_paid_rate(amount: int, rate: int) -> None:
    # Act
    charged = apply_rate_ceil(amount, rate)
    paid = apply_rate_floor(amount, rate)

    # Assert
    assert paid <= charged <= paid + 1
    assert paid * RATE_ONE <= amount * rate <= charged * RATE_ONE


@given(value=st.integers(min_value=0, max_value=10**30), step=denominators)
def test_round_to_step_lands_on_the_nearest_multiples(value: int, step: int) -> None:
    # Act
    down = round_down_to_step(value, step)
    up = round_up_to_step(value, step)

    # Assert
    assert down % step == 0 and up % step == 0
    assert down <= value <= up
    assert up - down in (0, step)


# Around each power of two up to 2**70, both signs: the bit-length bounds of the i64 paths
# (`mul`, `mul_div_floor`) sit at powers of two, and their worst cases at 2**62 and 2**63.
def _near_powers(max_bits: int = 70) -> st.SearchStrategy[int]:
    return st.builds(lambda bits, delta, sign: sign * max(0, (1 << bits) + delta),
                     st.integers(0, max_bits), st.integers(-2, 2), st.sampled_from([1, -1]))


wide = st.one_of(_near_powers(), st.integers(-(2**70), 2**70), st.integers(-(2**31), 2**31))
positive = st.one_of(_near_powers().map(abs), st.integers(1, 2**70)).filter(lambda d: d > 0)


@given(a=wide, b=wide)
def test_mul_is_the_exact_product(a: int, b: int) -> None:
    assert mul(a, b) == a * b


@given(a=wide, b=wide, denominator=positive)
def test_mul_div_equals_the_exact_formula(a: int, b: int, denominator: int) -> None:
    assert mul_div_floor(a, b, denominator) == a * b // denominator
    assert mul_div_ceil(a, b, denominator) == -(-a * b // denominator)


@given(a=wide, denominator=_near_powers(40).map(abs).filter(lambda d: d > 0), data=st.data())
def test_mul_div_of_a_rate_under_one_equals_the_exact_formula(
        a: int, denominator: int, data: st.DataObject) -> None:
    # The split path: |b| <= d, b and d small together, a up to (and past) 2**62.
    b = data.draw(st.one_of(st.integers(-denominator, denominator),
                            st.sampled_from([-denominator, denominator, 0, 1, -1])))
    assert mul_div_floor(a, b, denominator) == a * b // denominator
    assert mul_div_ceil(a, b, denominator) == -(-a * b // denominator)


@pytest.mark.parametrize("a", [2**62 - 1, -(2**62) + 1, 2**62, -(2**62), 2**63 - 1, -(2**63)])
@pytest.mark.parametrize(("b", "denominator"), [(RATE_ONE, 10**9), (55_000, RATE_ONE),
                                                (2**31 - 1, 2**31 - 1), (-(2**31) + 1, 2**31),
                                                (1, 1), (-1, 1), (2, 3)])
def test_mul_div_at_the_edge_of_a_machine_word(a: int, b: int, denominator: int) -> None:
    assert mul_div_floor(a, b, denominator) == a * b // denominator
    assert mul_div_ceil(a, b, denominator) == -(-a * b // denominator)


@given(value=wide)
def test_boxed_is_the_value_and_zero_is_the_one_boxed_zero(value: int) -> None:
    # `boxed` hands the settlement's events one shared object for zero (no box per use);
    # any other value comes back equal, an int, whatever its size.
    got = boxed(value)
    assert got == value and type(got) is int
    assert boxed(0) is BOXED_ZERO and BOXED_ZERO == 0

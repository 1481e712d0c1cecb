"""The decimal-string edge: exact parsing into ticks, lots, atoms and rates, and formatting back."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perpx.convert import (
    ConversionError,
    format_atoms,
    format_lots,
    format_rate,
    format_ticks,
    to_atoms,
    to_lots,
    to_rate,
    to_ticks,
)
from perpx.core.codes import RejectCode
from perpx.core.instruments import InstrumentSpec
from perpx.instruments import load_instruments

SPECS: dict[str, InstrumentSpec] = {spec.symbol: spec for spec in load_instruments()}
SYMBOLS = sorted(SPECS)
BTCUSDT = SPECS["BTCUSDT"]

# Each converter with the RejectCode its refusals carry.
CONVERTERS: list[tuple[Callable[[object], int], RejectCode]] = [
    (lambda text: to_ticks(BTCUSDT, text), RejectCode.INVALID_PRICE),  # type: ignore[arg-type]
    (lambda text: to_lots(BTCUSDT, text), RejectCode.INVALID_QTY),  # type: ignore[arg-type]
    (to_atoms, RejectCode.INVALID_AMOUNT),  # type: ignore[list-item]
    (to_rate, RejectCode.INVALID_PARAMETER),  # type: ignore[list-item]
]
CONVERTER_IDS = ["a BTCUSDT price", "a BTCUSDT qty", "an amount", "a rate"]

FULLWIDTH_65000 = "\uff16\uff15\uff10\uff10\uff10"  # "65000" in full-width digits
BIG = 10**40  # far beyond any real amount, well inside the 60-digit working precision


@pytest.mark.parametrize(
    ("symbol", "price", "ticks", "shown"),
    [
        ("BTCUSDT", "65000.1", 650_001, "65000.10"),
        ("BTCUSDT", "30000.10", 300_001, "30000.10"),
        ("BTCUSDT", "0.10", 1, "0.10"),
        ("BTCUSDT", "1999999.80", 19_999_998, "1999999.80"),
        ("ETHUSDT", "3456.78", 345_678, "3456.78"),
        ("ETHUSDT", "0.01", 1, "0.01"),
        ("SOLUSDT", "145.12", 14_512, "145.120"),
        ("SOLUSDT", "145.120", 14_512, "145.120"),
    ],
    ids=[
        "BTCUSDT 65000.1 is 650001 ticks of 0.10 and shows with two decimals",
        "BTCUSDT 30000.10 is 300001 ticks",
        "BTCUSDT min price is one tick",
        "BTCUSDT max price is 19999998 ticks",
        "ETHUSDT 3456.78 is 345678 ticks of 0.01",
        "ETHUSDT min price is one tick",
        "SOLUSDT 145.12 is 14512 ticks and shows with priceScale 3",
        "SOLUSDT zero-padded input parses the same",
    ],
)
def test_price_round_trips_through_ticks(symbol: str, price: str, ticks: int, shown: str) -> None:
    # Arrange
    spec = SPECS[symbol]

    # Act
    parsed = to_ticks(spec, price)
    formatted = format_ticks(spec, parsed)

    # Assert
    assert parsed == ticks
    assert formatted == shown
    assert to_ticks(spec, formatted) == ticks


@pytest.mark.parametrize(
    ("symbol", "qty", "lots", "shown"),
    [
        ("BTCUSDT", "0.01", 10, "0.010"),
        ("BTCUSDT", "0.001", 1, "0.001"),
        ("BTCUSDT", "1190", 1_190_000, "1190.000"),
        ("ETHUSDT", "1.25", 125, "1.25"),
        ("SOLUSDT", "12.3", 123, "12.3"),
        ("SOLUSDT", "12.30", 123, "12.3"),
    ],
    ids=[
        "BTCUSDT 0.01 is 10 lots of 0.001 and shows as 0.010",
        "BTCUSDT min qty is one lot",
        "BTCUSDT max qty 1190 is 1190000 lots",
        "ETHUSDT 1.25 is 125 lots of 0.01",
        "SOLUSDT 12.3 is 123 lots of 0.1",
        "SOLUSDT trailing zero parses the same",
    ],
)
def test_qty_round_trips_through_lots(symbol: str, qty: str, lots: int, shown: str) -> None:
    # Arrange
    spec = SPECS[symbol]

    # Act
    parsed = to_lots(spec, qty)
    formatted = format_lots(spec, parsed)

    # Assert
    assert parsed == lots
    assert formatted == shown
    assert to_lots(spec, formatted) == lots


@pytest.mark.parametrize(
    ("symbol", "price"),
    [
        ("BTCUSDT", "65000.15"),
        ("BTCUSDT", "0.05"),
        ("ETHUSDT", "3456.785"),
        ("SOLUSDT", "145.125"),
    ],
    ids=[
        "BTCUSDT 65000.15 is half a tick off the grid",
        "BTCUSDT 0.05 is half of one tick",
        "ETHUSDT 3456.785 has one decimal too many",
        "SOLUSDT 145.125 is half a tick off the grid",
    ],
)
def test_off_grid_price_is_refused_not_rounded(symbol: str, price: str) -> None:
    # Act
    with pytest.raises(ConversionError) as refused:
        to_ticks(SPECS[symbol], price)

    # Assert
    assert refused.value.code is RejectCode.INVALID_PRICE


@pytest.mark.parametrize(
    ("symbol", "qty"),
    [("BTCUSDT", "0.0005"), ("ETHUSDT", "0.005"), ("SOLUSDT", "0.05")],
    ids=[
        "BTCUSDT 0.0005 is half a lot",
        "ETHUSDT 0.005 is half a lot",
        "SOLUSDT 0.05 is half a lot",
    ],
)
def test_off_grid_qty_is_refused_not_rounded(symbol: str, qty: str) -> None:
    # Act
    with pytest.raises(ConversionError) as refused:
        to_lots(SPECS[symbol], qty)

    # Assert
    assert refused.value.code is RejectCode.INVALID_QTY


@pytest.mark.parametrize(
    ("amount", "atoms"),
    [
        ("1", 100_000_000),
        ("1000", 100_000_000_000),
        ("0.00000001", 1),
        ("650.001", 65_000_100_000),
        ("-5", -500_000_000),
        ("0", 0),
    ],
    ids=[
        "one coin is 1e8 atoms",
        "1000 USDT is 1e11 atoms",
        "the smallest amount is one atom",
        "650.001 USDT is 65000100000 atoms",
        "a negative amount parses to negative atoms",
        "zero is zero atoms",
    ],
)
def test_amount_parses_to_atoms(amount: str, atoms: int) -> None:
    # Act / Assert
    assert to_atoms(amount) == atoms


def test_amount_finer_than_one_atom_is_refused_as_invalid_amount() -> None:
    # Act
    with pytest.raises(ConversionError) as refused:
        to_atoms("0.000000001")

    # Assert
    assert refused.value.code is RejectCode.INVALID_AMOUNT


@pytest.mark.parametrize(
    ("rate", "units"),
    [("0.00055", 55_000), ("0.0002", 20_000), ("-0.00375", -375_000), ("1", 100_000_000)],
    ids=[
        "taker fee 0.055% is 55000",
        "maker fee 0.02% is 20000",
        "funding floor -0.375% is -375000",
        "a rate of one is 1e8",
    ],
)
def test_rate_parses_to_units_of_1e_minus_8(rate: str, units: int) -> None:
    # Act / Assert
    assert to_rate(rate) == units


@pytest.mark.parametrize(
    ("atoms", "shown"),
    [
        (100_000_000, "1"),
        (123_000, "0.00123"),
        (65_000_100_000, "650.001"),
        (100_000_000_000, "1000"),
        (1, "0.00000001"),
        (0, "0"),
        (-500_000_000, "-5"),
    ],
    ids=[
        "one coin shows as 1 without decimals",
        "trailing zeros are stripped",
        "650.001 keeps its significant decimals",
        "a round thousand shows without exponent",
        "one atom shows all eight decimals",
        "zero shows as 0",
        "a negative amount keeps its sign",
    ],
)
def test_format_atoms_strips_trailing_zeros(atoms: int, shown: str) -> None:
    # Act / Assert
    assert format_atoms(atoms) == shown


@pytest.mark.parametrize(
    ("rate", "shown"),
    [(55_000, "0.00055"), (20_000, "0.0002"), (-375_000, "-0.00375"), (100_000_000, "1")],
    ids=[
        "55000 shows as 0.00055",
        "20000 shows as 0.0002",
        "a negative rate keeps its sign",
        "1e8 shows as 1",
    ],
)
def test_format_rate(rate: int, shown: str) -> None:
    # Act / Assert
    assert format_rate(rate) == shown


@pytest.mark.parametrize(
    "value",
    [65000.1, 1.0, Decimal("65000.1"), 650001, None, b"65000.1"],
    ids=["a float", "a whole float", "a Decimal", "an int", "None", "bytes"],
)
@pytest.mark.parametrize(("convert", "code"), CONVERTERS, ids=CONVERTER_IDS)
def test_non_string_input_is_refused(convert, code: RejectCode, value: object) -> None:
    # Act
    with pytest.raises(ConversionError) as refused:
        convert(value)

    # Assert
    assert refused.value.code is code


GARBAGE = [
    "",
    "   ",
    "NaN",
    "nan",
    "sNaN",
    "-NaN",
    "inf",
    "-inf",
    "Infinity",
    "abc",
    "65000.1.1",
    "0x10",
    "1,000",
    "--1",
    "1e",
    "e5",
    "65 000",
    "1" * 65,
    "1e-400",
]
GARBAGE_IDS = [
    "an empty string",
    "only spaces",
    "NaN",
    "lowercase nan",
    "a signalling NaN",
    "a negative NaN",
    "inf",
    "minus inf",
    "Infinity",
    "letters",
    "two decimal points",
    "hexadecimal",
    "a thousands separator",
    "a double sign",
    "an exponent without digits",
    "an exponent without mantissa",
    "an inner space",
    "65 digits, over the length limit",
    "a tiny exponent that is no whole number of units",
]


@pytest.mark.parametrize("text", GARBAGE, ids=GARBAGE_IDS)
@pytest.mark.parametrize(("convert", "code"), CONVERTERS, ids=CONVERTER_IDS)
def test_garbage_is_refused_with_conversion_error_only(
    convert, code: RejectCode, text: str
) -> None:
    # Act
    with pytest.raises(ConversionError) as refused:
        convert(text)

    # Assert
    assert refused.value.code is code


@pytest.mark.parametrize(
    "text",
    [
        "1e400",
        "1e1000000",
        "1e999999999",
        "-1e999999999",
        "1e-999999999",
        "65_000.1",
        FULLWIDTH_65000,
    ],
    ids=[
        "1e400, a huge exponent",
        "1e1000000, an exponent above Emax",
        "1e999999999, the largest exponent Decimal parses",
        "-1e999999999, a huge negative number",
        "1e-999999999, an exponent below Etiny",
        "65_000.1, a Python digit separator",
        "65000 in full-width Unicode digits",
    ],
)
@pytest.mark.parametrize(("convert", "code"), CONVERTERS, ids=CONVERTER_IDS)
def test_extreme_or_non_ascii_text_is_refused_with_conversion_error_only(
    convert, code: RejectCode, text: str
) -> None:
    # Act
    with pytest.raises(ConversionError) as refused:
        convert(text)

    # Assert
    assert refused.value.code is code


def test_sixty_one_significant_digits_are_parsed_exactly_or_refused() -> None:
    # Arrange
    text = "1" + "0" * 52 + ".00000001"  # 10**52 coins plus one atom: 61 significant digits

    # Act
    try:
        atoms = to_atoms(text)
    except ConversionError:
        return

    # Assert
    assert atoms == 10**60 + 1


def test_sixty_one_digit_atoms_format_exactly() -> None:
    # Act
    shown = format_atoms(10**61 + 1)

    # Assert
    assert shown == "1" + "0" * 53 + ".00000001"


@pytest.mark.parametrize("symbol", SYMBOLS)
@given(ticks=st.integers(min_value=-BIG, max_value=BIG))
def test_format_then_parse_returns_the_same_ticks(symbol: str, ticks: int) -> None:
    # Arrange
    spec = SPECS[symbol]

    # Act
    parsed = to_ticks(spec, format_ticks(spec, ticks))

    # Assert
    assert parsed == ticks


@pytest.mark.parametrize("symbol", SYMBOLS)
@given(lots=st.integers(min_value=-BIG, max_value=BIG))
def test_format_then_parse_returns_the_same_lots(symbol: str, lots: int) -> None:
    # Arrange
    spec = SPECS[symbol]

    # Act
    parsed = to_lots(spec, format_lots(spec, lots))

    # Assert
    assert parsed == lots


@given(atoms=st.integers(min_value=-BIG, max_value=BIG))
def test_format_then_parse_returns_the_same_atoms(atoms: int) -> None:
    # Act
    parsed = to_atoms(format_atoms(atoms))

    # Assert
    assert parsed == atoms


@given(rate=st.integers(min_value=-BIG, max_value=BIG))
def test_format_then_parse_returns_the_same_rate(rate: int) -> None:
    # Act
    parsed = to_rate(format_rate(rate))

    # Assert
    assert parsed == rate

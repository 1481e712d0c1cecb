"""The order price band around the mark (spec perp-mechanics.md §10, price limits)."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from fractions import Fraction
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perpx.convert import format_ticks, to_ticks
from perpx.core.instruments import InstrumentSpec
from perpx.core.numbers import RATE_ONE
from perpx.core.prices.prices import order_price_band
from perpx.instruments import load_instruments, spec_from_bybit

BTCUSDT = next(spec for spec in load_instruments() if spec.symbol == "BTCUSDT")


def cent_tick_btcusdt() -> InstrumentSpec:
    """BTCUSDT re-gridded to a 0.01 tick (X 1%, Y 2%), so the spec's 100-USDT example fits."""
    text = resources.files("perpx.instruments").joinpath("default.json").read_text("utf-8")
    item = copy.deepcopy(json.loads(text)["instruments"][0])
    assert item["symbol"] == "BTCUSDT"
    item["priceFilter"] = {"minPrice": "0.01", "maxPrice": "199999.98", "tickSize": "0.01"}
    return spec_from_bybit(item)


CENT = cent_tick_btcusdt()


@pytest.mark.parametrize(
    ("mark", "index", "premium", "min_sell", "max_buy"),
    [
        ("100", "100.5", "0.3", "99.00", "101.30"),
        ("100", "100.5", "0", "99.00", "101.00"),
        ("100", "100", "0", "99.00", "101.00"),
        ("100", None, "0", "99.00", "101.00"),
        ("100", "101.5", "0", "99.00", "101.50"),
        ("100", "103", "0", "99.00", "102.00"),
        ("100", "98.5", "0", "98.50", "101.00"),
        ("100", "97", "0", "98.00", "101.00"),
        ("100", "100", "-0.4", "98.60", "101.00"),
        ("100", "100", "5", "99.00", "102.00"),
    ],
    ids=[
        "spec example: mark 100, index 100.5, premium +0.3 gives 99.00 / 101.30",
        "same without premium gives 99.00 / 101.00",
        "index equal to mark gives mark plus or minus X",
        "no index defaults to the mark",
        "index above mark(1+X) lifts the buy bound to the index",
        "index above mark(1+Y) is capped at mark(1+Y)",
        "index below mark(1-X) lowers the sell bound to the index",
        "index below mark(1-Y) is floored at mark(1-Y)",
        "a negative premium widens only the sell bound",
        "a large premium is capped at mark(1+Y)",
    ],
)
def test_band_follows_bybit_formula(
    mark: str, index: str | None, premium: str, min_sell: str, max_buy: str
) -> None:
    # Arrange
    index_ticks = None if index is None else to_ticks(CENT, index)

    # Act
    low, high = order_price_band(
        CENT, to_ticks(CENT, mark), index_ticks, premium_ticks=to_ticks(CENT, premium)
    )

    # Assert
    assert (format_ticks(CENT, low), format_ticks(CENT, high)) == (min_sell, max_buy)


@pytest.mark.parametrize(
    ("mark", "min_sell", "max_buy"),
    [
        ("65000.1", "64350.10", "65650.10"),
        ("65000.0", "64350.00", "65650.00"),
        ("99.9", "99.00", "100.80"),
    ],
    ids=[
        "BTCUSDT mark 65000.1: 64350.099 ceils to 64350.10, 65650.101 floors to 65650.10",
        "BTCUSDT mark 65000.0: exact 1% bounds stay put",
        "BTCUSDT mark 99.9: 98.901 ceils to 99.00 and 100.899 floors to 100.80",
    ],
)
def test_btcusdt_band_rounds_inward_to_the_tick(mark: str, min_sell: str, max_buy: str) -> None:
    # Act
    low, high = order_price_band(BTCUSDT, to_ticks(BTCUSDT, mark))

    # Assert
    assert (format_ticks(BTCUSDT, low), format_ticks(BTCUSDT, high)) == (min_sell, max_buy)


@pytest.mark.parametrize(
    ("mark", "min_sell", "max_buy"),
    [("0.10", "0.10", "0.10"), ("1999999.80", "1979999.90", "1999999.80")],
    ids=[
        "at the min price the sell bound is clamped up to the min price",
        "at the max price the buy bound is clamped down to the max price",
    ],
)
def test_band_is_clamped_to_the_instrument_price_range(
    mark: str, min_sell: str, max_buy: str
) -> None:
    # Act
    low, high = order_price_band(BTCUSDT, to_ticks(BTCUSDT, mark))

    # Assert
    assert (format_ticks(BTCUSDT, low), format_ticks(BTCUSDT, high)) == (min_sell, max_buy)


def exact_band(mark: int, index: int, premium: int, x: int, y: int) -> tuple[Fraction, Fraction]:
    """The unrounded band of spec §10, as exact fractions of a tick."""
    one = Fraction(1)
    rx, ry = Fraction(x, RATE_ONE), Fraction(y, RATE_ONE)
    up_y, up_x = mark * (one + ry), mark * (one + rx)
    dn_y, dn_x = mark * (one - ry), mark * (one - rx)
    max_buy = min(up_y, max(Fraction(index), up_x + max(0, premium)))
    min_sell = max(dn_y, min(Fraction(index), dn_x + min(0, premium)))
    return min_sell, max_buy


@st.composite
def band_inputs(draw: st.DrawFn) -> tuple[InstrumentSpec, int, int, int]:
    x = draw(st.integers(min_value=0, max_value=RATE_ONE // 2))
    y = draw(st.integers(min_value=x, max_value=RATE_ONE - 1))
    spec = dataclasses.replace(BTCUSDT, price_limit_ratio_x=x, price_limit_ratio_y=y)
    prices = st.integers(min_value=spec.min_price_ticks, max_value=spec.max_price_ticks)
    mark = draw(prices)
    index = draw(st.one_of(prices, st.integers(min_value=mark - 50, max_value=mark + 50)))
    premium = draw(st.integers(min_value=-mark, max_value=mark))
    return spec, mark, index, premium


@given(band_inputs())
def test_rounding_never_widens_the_band(inputs: tuple[InstrumentSpec, int, int, int]) -> None:
    # Arrange
    spec, mark, index, premium = inputs
    exact_low, exact_high = exact_band(
        mark, index, premium, spec.price_limit_ratio_x, spec.price_limit_ratio_y
    )

    # Act
    low, high = order_price_band(spec, mark, index, premium)

    # Assert
    assert exact_low <= low and high <= exact_high
    assert low == max(math.ceil(exact_low), spec.min_price_ticks)
    assert high == min(math.floor(exact_high), spec.max_price_ticks)
    assert low <= mark <= high

"""Funding and mark formulas against the spec's worked examples (spec §5, §6)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perpx.convert import to_atoms, to_rate
from perpx.core.book.book import OrderBook
from perpx.core.book.order import RestingOrder
from perpx.core.enums import OrderType, Side, SmpType, TimeInForce
from perpx.core.prices.funding import (
    funding_fee_atoms,
    funding_rate,
    impact_price,
    impact_qty_lots,
    interest_rate,
    next_funding_after,
    position_funding_atoms,
    premium_index_rate,
)
from perpx.core.prices.marks import decaying_funding_price, mark_price
from support.builders import btcusdt

HOUR_MS = 3_600_000
SPEC = btcusdt()


@pytest.mark.parametrize(
    ("interval_min", "expected"),
    [(480, "0.0001"), (240, "0.00005"), (60, "0.0000125")],
    ids=["8 h: (0.06% - 0.03%) / 3 = 0.01% (seed 001)", "4 h: half", "1 h: an eighth"])
def test_interest_is_pro_rated_to_the_interval(interval_min: int, expected: str) -> None:
    assert interest_rate(SPEC, interval_min) == to_rate(expected)


@pytest.mark.parametrize(
    ("premium", "expected"),
    [("0.0002", "0.0001"), ("0.001", "0.0005"), ("-0.002", "-0.0015"), ("0.0001", "0.0001"),
     ("0.01", "0.00375"), ("-0.01", "-0.00375")],
    ids=["P 0.02% -> F 0.01% (the clamp returns I)", "P 0.10% -> 0.05%",
         "P -0.20% -> -0.15%", "P = I -> I", "capped at +0.375%", "capped at -0.375%"])
def test_funding_rate_clamps_as_the_spec_derives(premium: str, expected: str) -> None:
    samples = [to_rate(premium)] * 480
    assert funding_rate(SPEC, samples, 480) == to_rate(expected)


def test_later_minutes_weigh_more_in_the_premium_average() -> None:
    # Two samples: 0 then 0.3%: P̄ = (1 x 0 + 2 x 0.003) / 3 = 0.2%.
    rate = funding_rate(SPEC, [0, to_rate("0.003")], 480)
    assert rate == to_rate("0.002") + max(-50_000, min(50_000, 10_000 - to_rate("0.002")))


def test_no_premium_sample_leaves_the_interest_alone() -> None:
    assert funding_rate(SPEC, [], 480) == to_rate("0.0001")


def test_funding_fee_v36() -> None:
    # 1 contract x par 100 x mark 20,000 x 0.01% = 200 (BYDFi, same rule as Bybit).
    value = to_atoms("2000000")
    assert funding_fee_atoms(value, to_rate("0.0001"), pays=True) == to_atoms("200")


@given(st.integers(1, 10**18), st.integers(-375_000, 375_000))
def test_a_payment_is_never_less_than_the_receipt_it_funds(value: int, rate: int) -> None:
    paid = funding_fee_atoms(value, rate, pays=True)
    received = funding_fee_atoms(value, rate, pays=False)
    assert 0 <= paid - received <= 1


@given(st.integers(1, 10_000_000), st.integers(1, 1_000_000), st.integers(-375_000, 375_000),
       st.booleans())
def test_a_positions_funding_is_the_fee_on_its_value_at_the_mark(
        mark: int, qty: int, rate: int, pays: bool) -> None:
    value = SPEC.contract.value_ceil_atoms(mark, qty) if pays else SPEC.contract.value_floor_atoms(
        mark, qty)
    assert position_funding_atoms(SPEC, mark, qty, rate, pays) == funding_fee_atoms(
        value, rate, pays)


def test_half_a_btc_at_a_40000_mark_pays_two_usdt_at_one_basis_point() -> None:
    assert position_funding_atoms(SPEC, 400_000, 500, to_rate("0.0001"), True) == to_atoms("2")


def test_price1_decays_the_funding_basis_spec_5() -> None:
    # Index 30,000, last rate 0.01%, 3 h to an 8 h funding -> 30,001.125 (in 0.001 ticks).
    assert decaying_funding_price(30_000_000, to_rate("0.0001"), 3 * HOUR_MS,
                                  8 * HOUR_MS) == 30_001_125


@pytest.mark.parametrize(
    ("basis", "last", "expected"),
    [(None, None, 30_001_125), ((2_000 * 2, 2), 30_000_900, 30_001_125),
     ((800, 1), 29_999_000, 30_000_800), ((-500, 1), None, 30_001_125)],
    ids=["no basis, no trade: Price1", "Price1 between the others",
         "basis MA between Price1 and a low LTP", "no trade: LTP stands in as Price1"])
def test_mark_is_the_median_of_the_three(basis: tuple[int, int] | None, last: int | None,
                                         expected: int) -> None:
    assert mark_price(30_000_000, to_rate("0.0001"), 3 * HOUR_MS, 8 * HOUR_MS, basis,
                      last) == expected


@pytest.mark.parametrize(
    ("ts_ms", "interval_min", "expected_h"),
    [(0, 480, 8), (8 * HOUR_MS - 1, 480, 8), (8 * HOUR_MS, 480, 16), (5 * HOUR_MS, 60, 6)],
    ids=["from midnight to 08:00", "a millisecond before 08:00", "exactly at 08:00: the next",
         "hourly"])
def test_funding_timestamps_align_to_midnight(ts_ms: int, interval_min: int,
                                               expected_h: int) -> None:
    assert next_funding_after(ts_ms, interval_min) == expected_h * HOUR_MS


def book_with(bids: list[tuple[int, int]], asks: list[tuple[int, int]]) -> OrderBook:
    book = OrderBook("BTCUSDT")
    oid = 0
    for side, levels in ((Side.BUY, bids), (Side.SELL, asks)):
        for price, qty in levels:
            oid += 1
            book.side(side).add(RestingOrder(oid, 1, "BTCUSDT", side, OrderType.LIMIT, price, qty,
                                             TimeInForce.GTC, False, False, 0, "", SmpType.NONE,
                                             0))
    return book


def test_impact_notional_is_0_1_btc_of_margin_at_the_tier_1_imr() -> None:
    assert impact_qty_lots(SPEC) == 10_000  # 0.1 BTC / 1% = 10 BTC = 10,000 lots


def test_impact_price_averages_the_fill_and_is_none_without_depth() -> None:
    book = book_with(bids=[(500_000, 4_000), (499_990, 8_000)], asks=[(500_010, 1_000)])
    assert impact_price(book.bids, 10_000) == (500_000 * 4_000 + 499_990 * 6_000, 10_000)
    assert impact_price(book.asks, 10_000) is None


def test_premium_index_from_impact_prices() -> None:
    # Impact bid 50,010 above an index of 50,000: P = 10 / 50,000 = 0.02%.
    assert premium_index_rate(500_000, (500_100, 1), (500_200, 1)) == to_rate("0.0002")
    # Impact ask 49,990 below the index: P = -0.02%.
    assert premium_index_rate(500_000, (499_800, 1), (499_900, 1)) == to_rate("-0.0002")
    # Inside the spread: no premium; a missing side contributes nothing.
    assert premium_index_rate(500_000, (499_990, 1), (500_010, 1)) == 0
    assert premium_index_rate(500_000, None, (499_900, 1)) == to_rate("-0.0002")

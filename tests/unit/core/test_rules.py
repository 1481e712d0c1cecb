"""The order rules, written once (`perpx.core.orders.rules`), and every site that asks them.

Worked cases on BTCUSDT (tick 0.10 = 1 tick, lot 0.001 BTC = 1 lot, one tick-lot = 10,000
atoms of 1e-8 USDT; min notional 5 USDT; price 0.10 to 1,999,999.80; qty 0.001 to 1,190 BTC,
500 BTC for a market order), then the same mistake made through each kind of command.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from perpx.core.codes import RejectCode, Rejected
from perpx.core.enums import MarginMode, PositionMode, Side
from perpx.core.events import CommandRejected, Event, OrderAccepted, OrderRejected
from perpx.core.orders.rules import (
    check_min_notional,
    check_order_link_id,
    check_order_price,
    check_position_idx,
    check_price_range,
    check_qty,
    closes_hedge_side,
    max_qty_lots,
    position_indexes,
)
from support.builders import Driver, btcusdt, of_type

SPEC = btcusdt()
R = RejectCode


def refusal(check: Callable[[], None]) -> RejectCode | None:
    """Run a rule; return the code it refuses with, or None when it passes."""
    try:
        check()
    except Rejected as refused:
        return refused.code
    return None


# -- each rule on its own -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("qty_lots", "is_market", "code"),
    [
        (0, False, R.INVALID_QTY),
        (-1, True, R.INVALID_QTY),
        (1, False, None),
        (1_190_000, False, None),
        (1_190_001, False, R.QTY_ABOVE_MAX),
        (500_000, True, None),
        (500_001, True, R.QTY_ABOVE_MAX),
    ],
    ids=["0.000 BTC is invalid", "a negative quantity is invalid", "0.001 BTC is the minimum",
         "1,190 BTC is the limit order cap", "1,190.001 BTC is over the limit order cap",
         "500 BTC is the market order cap", "500.001 BTC is over the market order cap"],
)
def test_check_qty(qty_lots: int, is_market: bool, code: RejectCode | None) -> None:
    # Act / Assert
    assert refusal(lambda: check_qty(SPEC, qty_lots, is_market)) is code


def test_check_qty_below_a_minimum_of_several_lots() -> None:
    # Arrange: an instrument whose smallest order is 0.005 BTC
    spec = btcusdt(min_order_qty_lots=5)

    # Act / Assert
    assert refusal(lambda: check_qty(spec, 4, False)) is R.QTY_BELOW_MIN
    assert refusal(lambda: check_qty(spec, 5, False)) is None


def test_max_qty_lots_is_the_cap_of_the_order_type() -> None:
    # Act / Assert
    assert max_qty_lots(SPEC, is_market=True) == 500_000
    assert max_qty_lots(SPEC, is_market=False) == 1_190_000


@pytest.mark.parametrize(
    ("link", "code"),
    [
        ("", None),
        ("my-order_1", None),
        ("x" * 36, None),
        ("x" * 37, R.INVALID_ORDER_LINK_ID),
        ("has space", R.INVALID_ORDER_LINK_ID),
        ("dot.ted", R.INVALID_ORDER_LINK_ID),
        ("taken", R.DUPLICATE_ORDER_LINK_ID),
    ],
    ids=["empty means none", "letters digits dash underscore", "36 characters",
         "37 characters", "a space", "a dot", "in use by the same account"],
)
def test_check_order_link_id(link: str, code: RejectCode | None) -> None:
    # Arrange
    taken = {1: {"taken": 7}}

    # Act / Assert
    assert refusal(lambda: check_order_link_id(link, 1, taken)) is code


def test_a_link_id_of_another_account_is_free() -> None:
    # Act / Assert
    assert refusal(lambda: check_order_link_id("taken", 2, {1: {"taken": 7}})) is None


@pytest.mark.parametrize(
    ("price_ticks", "code"),
    [(1, None), (19_999_998, None), (19_999_999, R.PRICE_OUT_OF_RANGE)],
    ids=["0.10 is the min price", "1,999,999.80 is the max price", "one tick over the max"],
)
def test_check_price_range(price_ticks: int, code: RejectCode | None) -> None:
    # Act / Assert
    assert refusal(lambda: check_price_range(SPEC, price_ticks)) is code


def test_check_price_range_under_a_higher_min_price() -> None:
    # Arrange: an instrument whose lowest price is 0.50
    spec = btcusdt(min_price_ticks=5)

    # Act / Assert
    assert refusal(lambda: check_price_range(spec, 4)) is R.PRICE_OUT_OF_RANGE
    assert refusal(lambda: check_price_range(spec, 5)) is None


@pytest.mark.parametrize(
    ("price_ticks", "code"),
    [(0, R.INVALID_PRICE), (-5, R.INVALID_PRICE), (500_000, None),
     (20_000_000, R.PRICE_OUT_OF_RANGE)],
    ids=["zero", "negative", "50,000.00", "2,000,000.00 is over the max"],
)
def test_check_order_price(price_ticks: int, code: RejectCode | None) -> None:
    # Act / Assert
    assert refusal(lambda: check_order_price(SPEC, price_ticks)) is code


def test_check_order_price_says_what_was_invalid() -> None:
    # Act
    with pytest.raises(Rejected) as refused:
        check_order_price(SPEC, 0, "params error: triggerPrice invalid")

    # Assert
    assert refused.value.detail == "params error: triggerPrice invalid"


@pytest.mark.parametrize(
    ("price_ticks", "qty_lots", "reduce_only", "code"),
    [
        (50_000, 1, False, None),
        (49_999, 1, False, R.NOTIONAL_BELOW_MIN),
        (10_000, 5, False, None),
        (10_000, 4, False, R.NOTIONAL_BELOW_MIN),
        (10_000, 1, True, None),
    ],
    ids=["5,000.00 x 0.001 = 5 USDT is the minimum", "4,999.90 x 0.001 is under 5 USDT",
         "1,000.00 x 0.005 = 5 USDT", "1,000.00 x 0.004 = 4 USDT is under",
         "reduce-only is exempt"],
)
def test_check_min_notional(price_ticks: int, qty_lots: int, reduce_only: bool,
                            code: RejectCode | None) -> None:
    # Act / Assert
    assert refusal(lambda: check_min_notional(SPEC, price_ticks, qty_lots,
                                              reduce_only)) is code


@pytest.mark.parametrize(
    ("hedge", "idx", "code"),
    [
        (False, 0, None),
        (False, 1, R.POSITION_IDX_MISMATCH),
        (False, 2, R.POSITION_IDX_MISMATCH),
        (False, 3, R.POSITION_IDX_MISMATCH),
        (True, 0, R.POSITION_IDX_MISMATCH),
        (True, 1, None),
        (True, 2, None),
        (True, 3, R.POSITION_IDX_MISMATCH),
    ],
    ids=["one-way 0", "one-way 1", "one-way 2", "one-way 3", "hedge 0", "hedge 1", "hedge 2",
         "hedge 3"],
)
def test_check_position_idx(hedge: bool, idx: int, code: RejectCode | None) -> None:
    # Act / Assert
    assert refusal(lambda: check_position_idx(hedge, idx)) is code


@pytest.mark.parametrize("hedge", [False, True], ids=["one-way", "hedge"])
def test_position_indexes_are_exactly_those_the_check_accepts(hedge: bool) -> None:
    # Act
    accepted = tuple(idx for idx in range(-1, 5)
                     if refusal(partial(check_position_idx, hedge, idx)) is None)

    # Assert
    assert accepted == position_indexes(hedge)


@pytest.mark.parametrize(
    ("hedge", "idx", "side", "closes"),
    [
        (True, 1, Side.BUY, False),
        (True, 1, Side.SELL, True),
        (True, 2, Side.SELL, False),
        (True, 2, Side.BUY, True),
        (False, 0, Side.SELL, False),
    ],
    ids=["buy on the long side opens", "sell on the long side closes",
         "sell on the short side opens", "buy on the short side closes",
         "one-way mode has no closing side"],
)
def test_closes_hedge_side(hedge: bool, idx: int, side: Side, closes: bool) -> None:
    # Act / Assert
    assert closes_hedge_side(hedge, idx, side) is closes


# -- the same mistake through every command that can make it ----------------------------------


def _reason(events: list[Event]) -> RejectCode:
    [refused] = of_type(events, OrderRejected) + of_type(events, CommandRejected)
    reason: RejectCode = refused.reason
    return reason


def _resting(d: Driver) -> int:
    """Rest a buy of 0.01 BTC at 50,000 for account 1; return its order id."""
    [accepted] = of_type(d.limit(1, "buy", "50000", "0.01"), OrderAccepted)
    order_id: int = accepted.order_id
    return order_id


def _waiting(d: Driver) -> int:
    """Leave a conditional limit buy of account 1 waiting; return its order id."""
    d.limit(2, "buy", "59000", "0.1")
    d.limit(3, "sell", "59000", "0.1")  # last price 59,000
    d.conditional(1, "buy", "0.01", "60000", direction=1, price="60000")
    [order] = d.waiting(1)
    order_id: int = order.order_id
    return order_id


PRICE_OUT_OF_RANGE: dict[str, Callable[[Driver], list[Event]]] = {
    "new limit order": lambda d: d.limit(1, "buy", "2000000", "0.01"),
    "new conditional order's price": lambda d: d.conditional(
        1, "buy", "0.01", "60000", direction=1, price="2000000"),
    "new conditional order's trigger": lambda d: d.conditional(
        1, "buy", "0.01", "2000000", direction=1),
    "new order's take profit": lambda d: d.limit(
        1, "buy", "50000", "0.01", take_profit_ticks=20_000_000),
    "amend of a resting order": lambda d: d.amend(1, _resting(d), price="2000000"),
    "amend of a waiting order": lambda d: d.amend(1, _waiting(d), price="2000000"),
    "amend of a waiting order's trigger": lambda d: d.amend(1, _waiting(d), trigger="2000000"),
}


@pytest.mark.parametrize("make", PRICE_OUT_OF_RANGE.values(), ids=PRICE_OUT_OF_RANGE.keys())
def test_every_price_out_of_range_is_refused_alike(
        make: Callable[[Driver], list[Event]]) -> None:
    # Arrange
    d = Driver(btcusdt())

    # Act / Assert
    assert _reason(make(d)) is R.PRICE_OUT_OF_RANGE


BELOW_MIN_NOTIONAL: dict[str, Callable[[Driver], list[Event]]] = {
    "new limit order": lambda d: d.limit(1, "buy", "1000", "0.001"),
    "new conditional order": lambda d: d.conditional(
        1, "buy", "0.001", "60000", direction=1, price="1000"),
    "amend of a resting order": lambda d: d.amend(1, _resting(d), price="400"),
    "amend of a waiting order": lambda d: d.amend(1, _waiting(d), price="400"),
}


@pytest.mark.parametrize("make", BELOW_MIN_NOTIONAL.values(), ids=BELOW_MIN_NOTIONAL.keys())
def test_every_order_under_min_notional_is_refused_alike(
        make: Callable[[Driver], list[Event]]) -> None:
    # Arrange
    d = Driver(btcusdt())

    # Act / Assert
    assert _reason(make(d)) is R.NOTIONAL_BELOW_MIN


LINK_ID: dict[str, Callable[..., list[Event]]] = {
    "new limit order": lambda d, link: d.limit(1, "buy", "50000", "0.01",
                                               order_link_id=link),
    "new conditional order": lambda d, link: d.conditional(
        1, "buy", "0.01", "60000", direction=1, price="60000", order_link_id=link),
}


@pytest.mark.parametrize("make", LINK_ID.values(), ids=LINK_ID.keys())
@pytest.mark.parametrize(("link", "code"),
                         [("x" * 37, R.INVALID_ORDER_LINK_ID),
                          ("taken", R.DUPLICATE_ORDER_LINK_ID)],
                         ids=["too long", "in use"])
def test_every_bad_link_id_is_refused_alike(make: Callable[..., list[Event]], link: str,
                                            code: RejectCode) -> None:
    # Arrange
    d = Driver(btcusdt())
    d.limit(1, "sell", "60000", "0.1", order_link_id="taken")

    # Act / Assert
    assert _reason(make(d, link)) is code


POSITION_IDX: dict[str, Callable[[Driver, int], list[Event]]] = {
    "new limit order": lambda d, idx: d.limit(1, "buy", "50000", "0.01", position_idx=idx),
    "new conditional order": lambda d, idx: d.conditional(
        1, "buy", "0.01", "60000", direction=1, price="60000", position_idx=idx),
    "trading stop": lambda d, idx: d.trading_stop(1, tp="70000", idx=idx),
    "auto add margin": lambda d, idx: d.auto_add_margin(1, True, idx=idx),
    "adjust margin": lambda d, idx: d.adjust_margin(1, "10", idx=idx),
}


@pytest.mark.parametrize("make", POSITION_IDX.values(), ids=POSITION_IDX.keys())
@pytest.mark.parametrize(("mode", "idx"),
                         [(PositionMode.ONE_WAY, 1), (PositionMode.HEDGE, 0),
                          (PositionMode.HEDGE, 3)],
                         ids=["hedge index in one-way mode", "one-way index in hedge mode",
                              "no such index"])
def test_every_position_idx_mismatch_is_refused_alike(
        make: Callable[[Driver, int], list[Event]], mode: PositionMode, idx: int) -> None:
    # Arrange: isolated margin, as auto add margin and adjust margin need it
    d = Driver(btcusdt())
    d.margin_mode(1, MarginMode.ISOLATED)
    if mode is PositionMode.HEDGE:
        d.position_mode(1, mode)

    # Act / Assert
    assert _reason(make(d, idx)) is R.POSITION_IDX_MISMATCH


def test_closing_side_of_a_hedge_position_is_reduce_only_for_new_and_conditional_orders(
) -> None:
    # Arrange: account 1 in hedge mode with no position, so a closing order has nothing to close
    d = Driver(btcusdt())
    d.position_mode(1, PositionMode.HEDGE)
    attempts: dict[str, Callable[[], Any]] = {
        "new": lambda: d.limit(1, "sell", "50000", "0.01", position_idx=1),
        "conditional": lambda: d.conditional(1, "sell", "0.01", "40000", direction=2,
                                             price="40000", position_idx=1),
    }

    # Act
    results = {name: attempt() for name, attempt in attempts.items()}

    # Assert: the new order finds nothing to reduce; the waiting one is kept as reduce-only
    assert _reason(results["new"]) is R.REDUCE_ONLY_NOT_SATISFIED
    [waiting] = d.waiting(1)
    assert waiting.reduce_only

"""Matching: price-time priority, time in force, amend, cancel, self-match prevention, the band."""

from __future__ import annotations

import pytest

from perpx.core import (
    CancelReason,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderRejected,
    RejectCode,
    SmpType,
    TimeInForce,
    Trade,
)
from perpx.core.instruments import PriceLimitAction
from support.builders import Driver, btcusdt, ethusdt, of_type, state_apart_from_seq


def accepted_id(events: list) -> int:
    return of_type(events, OrderAccepted)[0].order_id


def trades(events: list) -> list[tuple[int, int, int, int]]:
    return [(t.price_ticks, t.qty_lots, t.taker_order_id, t.maker_order_id)
            for t in of_type(events, Trade)]


def test_fills_execute_at_the_resting_price_not_the_takers_limit() -> None:
    d = Driver()
    ask = accepted_id(d.limit(1, "sell", "67042", "0.5"))
    events = d.limit(2, "buy", "67080", "0.5")
    assert trades(events) == [(670420, 500, accepted_id(events), ask)]


def test_earlier_order_at_the_same_price_fills_first() -> None:
    d = Driver()
    first = accepted_id(d.limit(1, "sell", "50000", "0.1"))
    second = accepted_id(d.limit(2, "sell", "50000", "0.1"))
    events = d.limit(3, "buy", "50000", "0.15")
    assert [(t[1], t[3]) for t in trades(events)] == [(100, first), (50, second)]


def test_better_price_fills_before_earlier_order() -> None:
    d = Driver()
    d.limit(1, "sell", "50001", "0.1")
    better = accepted_id(d.limit(2, "sell", "50000", "0.1"))
    events = d.limit(3, "buy", "50001", "0.1")
    assert trades(events)[0][3] == better


def test_gtc_remainder_rests_at_its_limit() -> None:
    d = Driver()
    d.limit(1, "sell", "50000", "0.1")
    d.limit(2, "buy", "50010", "0.3")
    assert d.depth() == ([(500100, 200)], [])


@pytest.mark.parametrize(
    ("resting_qty", "expected_reason", "expected_filled"),
    [("0.1", CancelReason.IOC_REMAINDER, 100), (None, CancelReason.NO_IMMEDIATE_QTY, 0)],
    ids=["ioc partly filled cancels the rest", "ioc with nothing to take is cancelled whole"],
)
def test_ioc_never_rests(resting_qty: str | None, expected_reason: CancelReason,
                         expected_filled: int) -> None:
    d = Driver()
    if resting_qty:
        d.limit(1, "sell", "50000", resting_qty)
    events = d.limit(2, "buy", "50000", "0.3", tif=TimeInForce.IOC)
    cancelled = of_type(events, OrderCancelled)[0]
    assert (cancelled.reason, cancelled.leaves_lots) == (expected_reason, 300 - expected_filled)
    assert d.depth()[0] == []


def test_fok_that_cannot_fill_in_full_trades_nothing() -> None:
    d = Driver()
    d.limit(1, "sell", "50000", "0.1")
    d.limit(1, "sell", "50001", "0.1")
    events = d.limit(2, "buy", "50000", "0.15", tif=TimeInForce.FOK)
    assert trades(events) == []
    assert of_type(events, OrderCancelled)[0].reason is CancelReason.FOK_NOT_FILLABLE
    assert d.depth()[1] == [(500000, 100), (500010, 100)]


def test_fok_that_can_fill_takes_several_levels() -> None:
    d = Driver()
    d.limit(1, "sell", "50000", "0.1")
    d.limit(1, "sell", "50001", "0.1")
    events = d.limit(2, "buy", "50001", "0.15", tif=TimeInForce.FOK)
    assert [t[:2] for t in trades(events)] == [(500000, 100), (500010, 50)]


def test_post_only_that_would_take_is_cancelled_not_repriced() -> None:
    d = Driver()
    d.limit(1, "sell", "50000", "0.1")
    events = d.limit(2, "buy", "50000", "0.1", tif=TimeInForce.POST_ONLY)
    assert of_type(events, OrderCancelled)[0].reason is CancelReason.POST_ONLY_WOULD_TAKE
    assert trades(events) == []


def test_post_only_that_rests_is_a_maker() -> None:
    d = Driver()
    d.limit(1, "sell", "50000", "0.1")
    d.limit(2, "buy", "49999.9", "0.1", tif=TimeInForce.POST_ONLY)
    assert d.depth()[0] == [(499999, 100)]


def test_market_order_stops_at_the_protection_price_and_cancels_the_rest() -> None:
    d = Driver()
    d.limit(1, "sell", "50000", "0.1")
    d.limit(2, "buy", "50000", "0.1")  # last traded price is now 50,000
    d.limit(1, "sell", "50000", "0.1")
    d.limit(1, "sell", "60000", "1")  # far beyond the 1% band
    events = d.market(3, "buy", "0.5")
    accepted = of_type(events, OrderAccepted)[0]
    assert accepted.price_ticks == 505000  # 50,000 x (1 + 1%)
    assert accepted.time_in_force is TimeInForce.IOC
    assert [t[:2] for t in trades(events)] == [(500000, 100)]
    assert of_type(events, OrderCancelled)[0].leaves_lots == 400


def test_market_order_with_no_price_anywhere_is_rejected() -> None:
    d = Driver()
    events = d.market(1, "buy", "0.1")
    assert of_type(events, OrderRejected)[0].reason is RejectCode.NO_REFERENCE_PRICE


@pytest.mark.parametrize(
    ("action", "expect_price", "expect_reject"),
    [(PriceLimitAction.CLAMP, 505000, None),
     (PriceLimitAction.REJECT, None, RejectCode.PRICE_OUT_OF_BAND)],
    ids=["perps clamp a buy above the band to its edge", "a reject-mode instrument refuses it"],
)
def test_limit_price_beyond_the_band(action: PriceLimitAction, expect_price: int | None,
                                     expect_reject: RejectCode | None) -> None:
    d = Driver(btcusdt(price_limit_action=action))
    d.limit(1, "sell", "50000", "0.1")
    d.limit(2, "buy", "50000", "0.1")
    events = d.limit(3, "buy", "55000", "0.1")
    if expect_reject:
        assert of_type(events, OrderRejected)[0].reason is expect_reject
    else:
        assert of_type(events, OrderAccepted)[0].price_ticks == expect_price


def test_reducing_quantity_keeps_priority() -> None:
    d = Driver()
    first = accepted_id(d.limit(1, "sell", "50000", "0.2"))
    second = accepted_id(d.limit(2, "sell", "50000", "0.1"))
    amended = of_type(d.amend(1, first, qty="0.1"), OrderAmended)[0]
    assert amended.kept_priority
    assert trades(d.limit(3, "buy", "50000", "0.1"))[0][3] == first
    assert d.engine.order(second) is not None


@pytest.mark.parametrize(
    ("qty", "price"), [("0.3", None), (None, "50000.1"), ("0.3", "50000.1")],
    ids=["a larger quantity queues anew", "a new price queues anew", "both queue anew"])
def test_amend_that_loses_priority(qty: str | None, price: str | None) -> None:
    d = Driver()
    first = accepted_id(d.limit(1, "sell", "50000", "0.2"))
    d.limit(2, "sell", "50000.1", "0.1")
    d.limit(2, "sell", "50000", "0.1")
    amended = of_type(d.amend(1, first, qty=qty, price=price), OrderAmended)[0]
    assert not amended.kept_priority
    taken = trades(d.limit(3, "buy", "50000.1", "0.1"))
    assert taken[0][3] != first


def test_amend_to_a_crossing_price_trades_at_once() -> None:
    d = Driver()
    bid = accepted_id(d.limit(1, "buy", "49000", "0.1"))
    ask = accepted_id(d.limit(2, "sell", "50000", "0.1"))
    events = d.amend(1, bid, price="50000")
    assert trades(events) == [(500000, 100, bid, ask)]
    assert d.engine.order(bid) is None


def test_amend_of_post_only_to_a_crossing_price_cancels_it() -> None:
    d = Driver()
    bid = accepted_id(d.limit(1, "buy", "49000", "0.1", tif=TimeInForce.POST_ONLY))
    d.limit(2, "sell", "50000", "0.1")
    events = d.amend(1, bid, price="50000")
    assert of_type(events, OrderCancelled)[0].reason is CancelReason.POST_ONLY_WOULD_TAKE


@pytest.mark.parametrize(
    ("qty", "price", "code"),
    [("0.1", None, RejectCode.AMEND_QTY_NOT_ABOVE_FILLED),
     ("0.2", "50000", RejectCode.NOTHING_TO_AMEND),
     ("2000", None, RejectCode.QTY_ABOVE_MAX)],
    ids=["quantity down to the filled amount", "nothing changes", "quantity above the max"])
def test_amend_refusals_change_nothing(qty: str | None, price: str | None,
                                       code: RejectCode) -> None:
    d = Driver()
    ask = accepted_id(d.limit(1, "sell", "50000", "0.2"))
    d.limit(2, "buy", "50000", "0.1")
    before = state_apart_from_seq(d.engine)
    events = d.amend(1, ask, qty=qty, price=price)
    assert of_type(events, OrderRejected)[0].reason is code
    assert state_apart_from_seq(d.engine) == before
    assert d.engine.order(ask).leaves_lots == 100


def test_cancel_by_order_link_id() -> None:
    d = Driver()
    d.limit(1, "sell", "50000", "0.2", order_link_id="my-ask_1")
    events = d.cancel(1, link="my-ask_1")
    assert of_type(events, OrderCancelled)[0].reason is CancelReason.BY_USER
    assert d.depth() == ([], [])


@pytest.mark.parametrize("account", [1, 2], ids=["unknown id", "another account's order"])
def test_cancel_of_an_order_one_cannot_see_is_not_found(account: int) -> None:
    d = Driver()
    ask = accepted_id(d.limit(1, "sell", "50000", "0.2"))
    events = d.cancel(2, ask if account == 2 else ask + 99)
    refused = of_type(events, OrderRejected)[0]
    assert refused.reason is RejectCode.ORDER_NOT_FOUND
    assert refused.detail == "Order does not exist"
    assert d.engine.order(ask) is not None
    # The engine hands back one refusal object (`engine._ORDER_NOT_FOUND`) for every such
    # cancel and amend: each answer still carries its own ids.
    again = of_type(d.cancel(2, ask if account == 2 else ask + 98), OrderRejected)[0]
    assert (again.reason, again.detail) == (refused.reason, refused.detail)
    assert again.order_id == (ask if account == 2 else ask + 98)
    amended = of_type(d.amend(2, ask if account == 2 else ask + 99, qty="0.3"), OrderRejected)[0]
    assert (amended.reason, amended.detail) == (refused.reason, refused.detail)


def test_cancel_all_takes_only_that_accounts_orders_on_that_symbol() -> None:
    d = Driver(btcusdt(), ethusdt())
    d.limit(1, "sell", "50000", "0.2")
    d.limit(1, "buy", "40000", "0.2")
    d.limit(2, "sell", "50001", "0.2")
    d.limit(1, "sell", "3000", "1", symbol="ETHUSDT")
    events = d.cancel_all(1)
    assert len(of_type(events, OrderCancelled)) == 2
    assert d.depth() == ([], [(500010, 200)])
    assert len(d.engine.orders_of(1, "ETHUSDT")) == 1


@pytest.mark.parametrize(
    ("smp", "maker_left", "taker_cancelled"),
    [(SmpType.NONE, False, False), (SmpType.CANCEL_MAKER, False, False),
     (SmpType.CANCEL_TAKER, True, True), (SmpType.CANCEL_BOTH, False, True)],
    ids=["none: trades with itself", "cancel maker: skips to the next maker",
         "cancel taker: stops before itself", "cancel both"])
def test_self_match_prevention(smp: SmpType, maker_left: bool, taker_cancelled: bool) -> None:
    d = Driver()
    own = accepted_id(d.limit(1, "sell", "50000", "0.1"))
    d.limit(2, "sell", "50001", "0.1")
    events = d.limit(1, "buy", "50001", "0.1", smp_type=smp)
    assert (d.engine.order(own) is not None) == maker_left
    cancelled_taker = [c for c in of_type(events, OrderCancelled)
                       if c.order_id != own and c.reason is CancelReason.SELF_MATCH]
    assert bool(cancelled_taker) == taker_cancelled
    if smp is SmpType.NONE:
        assert trades(events)[0][3] == own
    if smp is SmpType.CANCEL_MAKER:
        assert trades(events)[0][0] == 500010


def test_depth_aggregates_levels_best_first_and_stops_at_n() -> None:
    d = Driver()
    for price in ("50000", "50000", "50001", "50002"):
        d.limit(1, "sell", price, "0.1")
    for price in ("49999", "49998"):
        d.limit(2, "buy", price, "0.2")
    bids, asks = d.engine.books["BTCUSDT"].depth(2)
    assert asks == [(500000, 200), (500010, 100)]
    assert bids == [(499990, 200), (499980, 200)]


def test_too_many_active_orders_is_refused() -> None:
    d = Driver(btcusdt(max_active_orders=2))
    d.limit(1, "sell", "50000", "0.1")
    d.limit(1, "sell", "50001", "0.1")
    events = d.limit(1, "sell", "50002", "0.1")
    assert of_type(events, OrderRejected)[0].reason is RejectCode.TOO_MANY_ACTIVE_ORDERS
    assert of_type(d.limit(2, "sell", "50002", "0.1"), OrderAccepted)

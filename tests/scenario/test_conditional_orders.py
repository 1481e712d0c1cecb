"""Conditional orders: placement rules, each reference price, gaps, ties, cascades, amend, cancel.

Prices are made with `print_at`: a maker (account 9) and a taker (account 8) trade 0.001 BTC
at the price, which sets the last traded price. Invariants are checked after every command
by the `Driver`.
"""

from __future__ import annotations

import pytest

from perpx.core import RejectCode
from perpx.core.engine import Engine
from perpx.core.enums import (
    CancelReason,
    OrderFilter,
    OrderStatus,
    PositionMode,
    TriggerBy,
)
from perpx.core.events import (
    ConditionalOrderAccepted,
    ConditionalOrderAmended,
    Event,
    OrderAccepted,
    OrderCancelled,
    OrderDeactivated,
    OrderRejected,
    OrderTriggered,
    Trade,
)
from support.builders import Driver, of_type

LAST, MARK, INDEX = TriggerBy.LAST_PRICE, TriggerBy.MARK_PRICE, TriggerBy.INDEX_PRICE
RISING, FALLING = 1, 2


def print_at(d: Driver, price: str) -> list[Event]:
    """Trade 0.001 BTC at `price` between accounts 9 (maker) and 8 (taker)."""
    d.limit(9, "sell", price, "0.001")
    return d.limit(8, "buy", price, "0.001")


def with_book(d: Driver) -> None:
    """Liquidity both sides of 65,000 (accounts 6 and 7) and a last price of 65,000."""
    for price in ("65000", "65100", "65200", "65300", "65400", "65500"):
        d.limit(7, "sell", price, "1")
    for price in ("64900", "64800", "64700", "64600", "64500"):
        d.limit(6, "buy", price, "1")
    d.limit(8, "buy", "65000", "0.001")


def with_far_book(d: Driver) -> None:
    """Liquidity 600 away both sides of 65,000, so `print_at` can print anywhere between."""
    for price in ("65600", "65700"):
        d.limit(7, "sell", price, "1")
    for price in ("64400", "64300"):
        d.limit(6, "buy", price, "1")
    print_at(d, "65000")


def fired(events: list[Event]) -> list[int]:
    return [e.order_id for e in of_type(events, OrderTriggered)]


def move(d: Driver, by: TriggerBy, price: str) -> list[Event]:
    if by is LAST:
        return print_at(d, price)
    if by is MARK:
        return d.mark(price)
    return d.index(price)


@pytest.mark.parametrize("by", [LAST, MARK, INDEX], ids=["last price", "mark price",
                                                        "index price"])
@pytest.mark.parametrize(("direction", "trigger", "short_of", "at"),
                         [(RISING, "65250", "65240", "65250"),
                          (FALLING, "64750", "64760", "64750")],
                         ids=["rising to the trigger", "falling to the trigger"])
def test_a_conditional_order_fires_once_its_reference_reaches_the_trigger(
        by: TriggerBy, direction: int, trigger: str, short_of: str, at: str) -> None:
    # Arrange
    d = Driver()
    with_far_book(d)
    if by is not LAST:
        move(d, by, "65000")
    side = "buy" if direction == RISING else "sell"
    order_id = d.conditional(1, side, "0.1", trigger, direction=direction, by=by)[0].order_id

    # Act
    before = move(d, by, short_of)
    after = move(d, by, at)

    # Assert
    assert fired(before) == []
    assert fired(after) == [order_id]
    [triggered] = of_type(after, OrderTriggered)
    assert triggered.trigger_by is by and triggered.triggered_at_ticks == int(at) * 10
    assert [e.order_id for e in of_type(after, OrderAccepted)][-1] == order_id
    assert d.position(1).size_lots == (100 if side == "buy" else -100)
    assert d.waiting(1) == []


def test_an_untriggered_order_reserves_no_margin() -> None:
    # Arrange
    d = Driver()
    with_book(d)
    before = d.figures(1).available_atoms

    # Act
    d.conditional(1, "buy", "5", "66000", direction=RISING, price="66000")

    # Assert
    assert d.figures(1).available_atoms == before
    assert d.engine.orders_of(1, "BTCUSDT") == []


@pytest.mark.parametrize(("direction", "trigger", "code"),
                         [(RISING, "65000", RejectCode.TRIGGER_NOT_ABOVE_PRICE),
                          (RISING, "64000", RejectCode.TRIGGER_NOT_ABOVE_PRICE),
                          (FALLING, "65000", RejectCode.TRIGGER_NOT_BELOW_PRICE),
                          (FALLING, "66000", RejectCode.TRIGGER_NOT_BELOW_PRICE)],
                         ids=["rising at the price", "rising under the price",
                              "falling at the price", "falling over the price"])
def test_a_trigger_on_the_wrong_side_of_the_price_is_refused(direction: int, trigger: str,
                                                             code: RejectCode) -> None:
    # Arrange
    d = Driver()
    with_book(d)

    # Act
    events = d.conditional(1, "buy", "0.1", trigger, direction=direction)

    # Assert
    [rejected] = events
    assert isinstance(rejected, OrderRejected) and rejected.reason is code
    assert d.waiting(1) == []


def test_an_eleventh_conditional_order_on_a_symbol_is_refused() -> None:
    # Arrange
    d = Driver()
    with_book(d)
    for i in range(10):
        d.conditional(1, "buy", "0.01", str(66000 + i), direction=RISING)

    # Act
    events = d.conditional(1, "buy", "0.01", "67000", direction=RISING)
    other_symbol_account = d.conditional(2, "buy", "0.01", "67000", direction=RISING)

    # Assert
    assert of_type(events, OrderRejected)[0].reason is RejectCode.TOO_MANY_CONDITIONAL_ORDERS
    assert of_type(other_symbol_account, ConditionalOrderAccepted)


def test_a_triggered_order_that_lacks_margin_then_is_cancelled_with_the_reason() -> None:
    # Arrange
    d = Driver(funded={**dict.fromkeys(range(2, 10), "10000000"), 1: "1000"})
    with_far_book(d)
    order_id = d.conditional(1, "buy", "1", "65250", direction=RISING)[0].order_id

    # Act
    events = print_at(d, "65300")

    # Assert
    [cancelled] = of_type(events, OrderCancelled)
    assert cancelled.order_id == order_id
    assert cancelled.reason is CancelReason.REFUSED_AT_TRIGGER
    assert cancelled.code is RejectCode.INSUFFICIENT_AVAILABLE_BALANCE
    assert d.position(1) is None


def test_a_gap_past_several_triggers_fires_them_nearest_the_old_price_first() -> None:
    # Arrange: created out of price order; a limit buy that sweeps three levels
    d = Driver()
    with_book(d)
    far = d.conditional(1, "buy", "0.01", "65350", direction=RISING)[0].order_id
    near = d.conditional(2, "buy", "0.01", "65050", direction=RISING)[0].order_id
    middle = d.conditional(3, "buy", "0.01", "65150", direction=RISING)[0].order_id
    falling = d.conditional(4, "sell", "0.01", "64950", direction=FALLING)[0].order_id

    # Act
    events = d.limit(5, "buy", "65400", "4.5")

    # Assert
    assert fired(events) == [near, middle, far]
    assert falling in {o.order_id for o in d.waiting(4)}


def test_triggers_at_the_same_price_fire_in_the_order_they_were_placed() -> None:
    # Arrange
    d = Driver()
    with_book(d)
    ids = [d.conditional(account, "sell", "0.01", "64850", direction=FALLING)[0].order_id
           for account in (3, 1, 2)]

    # Act
    events = d.market(5, "sell", "1.5")

    # Assert
    assert fired(events) == ids


def test_a_triggered_orders_own_fills_cascade_into_the_next_trigger() -> None:
    # Arrange: a stop that sells through two levels sets off a second stop further down
    d = Driver()
    with_book(d)
    first = d.conditional(1, "sell", "2.5", "64900", direction=FALLING, price="64600")
    second = d.conditional(2, "sell", "0.01", "64700", direction=FALLING)

    # Act
    events = d.market(5, "sell", "0.5")

    # Assert
    assert fired(events) == [first[0].order_id, second[0].order_id]
    prints = [e.price_ticks for e in of_type(events, Trade)]
    assert prints[0] == 649000 and min(prints) <= 647000
    assert d.waiting(1) == d.waiting(2) == []


def test_a_conditional_limit_order_rests_as_a_new_order_when_triggered() -> None:
    # Arrange
    d = Driver()
    with_far_book(d)
    order_id = d.conditional(1, "buy", "0.1", "65050", direction=RISING, price="64500")[0]\
        .order_id

    # Act
    events = print_at(d, "65100")

    # Assert
    assert fired(events) == [order_id]
    resting = d.engine.order(order_id)
    assert resting is not None and resting.status is OrderStatus.NEW
    assert resting.price_ticks == 645000


def test_amending_the_trigger_price_refiles_it_and_keeps_the_side_rule() -> None:
    # Arrange
    d = Driver()
    with_far_book(d)
    order_id = d.conditional(1, "buy", "0.1", "65350", direction=RISING)[0].order_id

    # Act
    wrong = d.amend(1, order_id, trigger="64000")
    moved = d.amend(1, order_id, trigger="65150", qty="0.2")
    events = print_at(d, "65200")

    # Assert
    assert of_type(wrong, OrderRejected)[0].reason is RejectCode.TRIGGER_NOT_ABOVE_PRICE
    [amended] = of_type(moved, ConditionalOrderAmended)
    assert amended.trigger_price_ticks == 651500 and amended.qty_lots == 200
    assert fired(events) == [order_id]
    assert d.position(1).size_lots == 200


def test_an_amend_that_changes_nothing_is_refused() -> None:
    # Arrange
    d = Driver()
    with_book(d)
    order_id = d.conditional(1, "buy", "0.1", "65350", direction=RISING)[0].order_id

    # Act
    events = d.amend(1, order_id, trigger="65350")

    # Assert
    assert of_type(events, OrderRejected)[0].reason is RejectCode.NOTHING_TO_AMEND


def test_cancelling_an_untriggered_order_deactivates_it_and_it_never_fires() -> None:
    # Arrange
    d = Driver()
    with_far_book(d)
    order_id = d.conditional(1, "buy", "0.1", "65150", direction=RISING,
                             order_link_id="stop-1")[0].order_id

    # Act
    cancelled = d.cancel(1, link="stop-1")
    later = print_at(d, "65200")
    again = d.cancel(1, order_id)

    # Assert
    [deactivated] = of_type(cancelled, OrderDeactivated)
    assert deactivated.order_id == order_id and deactivated.reason is CancelReason.BY_USER
    assert fired(later) == []
    assert of_type(again, OrderRejected)[0].reason is RejectCode.ORDER_NOT_FOUND


@pytest.mark.parametrize(("order_filter", "left"),
                         [(OrderFilter.ALL, set()),
                          (OrderFilter.ORDER, {"stop", "tp"}),
                          (OrderFilter.STOP_ORDER, {"limit", "tp"}),
                          (OrderFilter.TPSL_ORDER, {"limit", "stop"})],
                         ids=["no filter cancels every kind", "Order: the book's orders",
                              "StopOrder: conditional orders", "tpslOrder: TP/SL"])
def test_cancel_all_reaches_the_kinds_its_filter_names(order_filter: OrderFilter,
                                                       left: set[str]) -> None:
    # Arrange: a resting limit, a conditional order and a position's TP
    d = Driver()
    with_book(d)
    d.market(1, "buy", "0.1")
    kinds = {d.limit(1, "buy", "60000", "0.1")[0].order_id: "limit",
             d.conditional(1, "buy", "0.1", "66000", direction=RISING)[0].order_id: "stop",
             d.trading_stop(1, tp="67000")[0].order_id: "tp"}

    # Act
    d.cancel_all(1, order_filter=order_filter)

    # Assert
    alive = {o.order_id for o in d.engine.orders_of(1, "BTCUSDT")} | {
        o.order_id for o in d.waiting(1)}
    assert {kinds[i] for i in alive} == left


def test_a_link_id_is_unique_across_resting_and_waiting_orders() -> None:
    # Arrange
    d = Driver()
    with_book(d)
    d.conditional(1, "buy", "0.1", "65350", direction=RISING, order_link_id="x")

    # Act
    events = d.limit(1, "buy", "60000", "0.1", order_link_id="x")

    # Assert
    assert of_type(events, OrderRejected)[0].reason is RejectCode.DUPLICATE_ORDER_LINK_ID


def test_waiting_orders_block_a_position_mode_switch() -> None:
    # Arrange
    d = Driver()
    with_book(d)
    d.conditional(1, "buy", "0.1", "65350", direction=RISING)

    # Act
    events = d.position_mode(1, PositionMode.HEDGE)

    # Assert
    assert events[0].reason is RejectCode.POSITION_MODE_SWITCH_REFUSED


def test_waiting_orders_survive_a_snapshot_and_fire_the_same_after_restore() -> None:
    # Arrange
    d = Driver()
    with_far_book(d)
    d.conditional(1, "buy", "0.1", "65150", direction=RISING, take_profit_ticks="66000")
    d.conditional(2, "sell", "0.1", "64850", direction=FALLING, by=MARK)
    restored = Engine.from_snapshot(list(d.engine.instruments.values()),
                                    d.engine.to_snapshot())
    assert restored.state_hash() == d.engine.state_hash()

    # Act
    events = print_at(d, "65200")
    replay = restored.apply(d.log[-2])
    replay += restored.apply(d.log[-1])
    restored.check_invariants()

    # Assert
    assert fired(events) and fired(replay) == fired(events)
    assert restored.state_hash() == d.engine.state_hash()

"""Closing orders: reduce-only orders stay within their position; close-on-trigger makes room."""

from __future__ import annotations

from perpx.core import RejectCode
from perpx.core.enums import CancelReason
from perpx.core.events import (
    OrderCancelled,
    OrderReduced,
    OrderRejected,
    OrderTriggered,
)
from support.builders import Driver, of_type


def long_one(d: Driver) -> None:
    """Account 1 holds 1 BTC long at 65,000; bids (account 6) wait at 64,900 and below."""
    d.limit(5, "sell", "65000", "1")
    d.limit(1, "buy", "65000", "1")
    for price in ("64900", "64800"):
        d.limit(6, "buy", price, "2")


def test_reduce_only_orders_shrink_with_their_position_farthest_first() -> None:
    # Arrange
    d = Driver()
    long_one(d)
    near = d.limit(1, "sell", "66000", "0.6", reduce_only=True)[0].order_id
    far = d.limit(1, "sell", "67000", "0.4", reduce_only=True)[0].order_id

    # Act: half the position goes by an ordinary sell
    events = d.market(1, "sell", "0.5")

    # Assert
    [reduced] = of_type(events, OrderReduced)
    assert (reduced.order_id, reduced.leaves_lots) == (near, 500)
    assert reduced.reason is CancelReason.REDUCE_ONLY
    [cancelled] = of_type(events, OrderCancelled)
    assert cancelled.order_id == far and cancelled.reason is CancelReason.REDUCE_ONLY


def test_a_reduce_only_maker_never_fills_beyond_its_position() -> None:
    # Arrange: the position is closed by an earlier ask in the same sweep
    d = Driver()
    long_one(d)
    plain = d.limit(1, "sell", "65100", "1")[0].order_id
    guarded = d.limit(1, "sell", "65200", "1", reduce_only=True)[0].order_id
    assert plain and guarded

    # Act
    events = d.limit(4, "buy", "65200", "2")

    # Assert
    assert d.position(1).size_lots == 0
    cancelled = [e for e in of_type(events, OrderCancelled) if e.order_id == guarded]
    assert cancelled and cancelled[0].reason is CancelReason.REDUCE_ONLY


def test_a_reduce_only_order_cannot_be_amended_beyond_its_position() -> None:
    # Arrange
    d = Driver()
    long_one(d)
    order_id = d.limit(1, "sell", "66000", "0.6", reduce_only=True)[0].order_id

    # Act
    events = d.amend(1, order_id, qty="1.5")

    # Assert
    assert of_type(events, OrderRejected)[0].reason is RejectCode.REDUCE_ONLY_NOT_SATISFIED


def test_close_on_trigger_cancels_reduce_only_orders_to_make_room_for_the_close() -> None:
    # Arrange: a reduce-only take-profit limit holds the whole position
    d = Driver()
    long_one(d)
    held = d.limit(1, "sell", "70000", "1", reduce_only=True)[0].order_id
    stop = d.conditional(1, "sell", "0", "64950", direction=2, reduce_only=True,
                         close_on_trigger=True)[0].order_id

    # Act
    events = d.market(3, "sell", "0.1")  # prints 64,900

    # Assert
    assert [e.order_id for e in of_type(events, OrderTriggered)] == [stop]
    [freed] = [e for e in of_type(events, OrderCancelled) if e.order_id == held]
    assert freed.reason is CancelReason.FOR_CLOSE_ON_TRIGGER
    assert d.position(1).size_lots == 0


def test_a_reduce_only_stop_without_close_on_trigger_finds_no_room_and_is_cancelled() -> None:
    # Arrange
    d = Driver()
    long_one(d)
    held = d.limit(1, "sell", "70000", "1", reduce_only=True)[0].order_id
    stop = d.conditional(1, "sell", "1", "64950", direction=2, reduce_only=True)[0].order_id

    # Act
    events = d.market(3, "sell", "0.1")

    # Assert
    [refused] = [e for e in of_type(events, OrderCancelled) if e.order_id == stop]
    assert refused.reason is CancelReason.REFUSED_AT_TRIGGER
    assert refused.code is RejectCode.REDUCE_ONLY_NOT_SATISFIED
    assert d.engine.order(held) is not None
    assert d.position(1).size_lots == 1000


def test_qty_zero_with_close_on_trigger_closes_the_whole_position() -> None:
    # Arrange
    d = Driver()
    long_one(d)

    # Act
    d.market(1, "sell", "0", reduce_only=True, close_on_trigger=True)

    # Assert
    assert d.position(1).size_lots == 0

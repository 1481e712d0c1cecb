"""Events: facts in the past tense returned by `Engine.apply`; read models and streams feed on them.

Each event carries what a read model needs, so nothing downstream calls back into the engine.
"""

from __future__ import annotations

import msgspec

from perpx.core.codes import RejectCode
from perpx.core.enums import CancelReason, OrderType, Side, SmpType, TimeInForce


class Event(msgspec.Struct, frozen=True, gc=False, tag=True):
    """Base of every event: the seq and time of the command that caused it."""

    seq: int
    ts_ms: int


class OrderAccepted(Event, frozen=True, gc=False, tag=True):
    """An order passed validation and entered the book's process (status New).

    For a market order `price_ticks` is its protection price and `time_in_force` is IOC.
    """

    order_id: int
    account_id: int
    symbol: str
    side: Side
    order_type: OrderType
    price_ticks: int
    qty_lots: int
    time_in_force: TimeInForce
    reduce_only: bool
    close_on_trigger: bool
    position_idx: int
    order_link_id: str
    smp_type: SmpType


class OrderRejected(Event, frozen=True, gc=False, tag=True):
    """A place, amend or cancel was refused; nothing changed."""

    account_id: int
    symbol: str
    reason: RejectCode
    order_id: int | None = None
    order_link_id: str = ""
    detail: str = ""


class Trade(Event, frozen=True, gc=False, tag=True):
    """A fill between a taker and a resting maker, at the maker's price."""

    trade_id: int
    symbol: str
    price_ticks: int
    qty_lots: int
    taker_side: Side
    taker_order_id: int
    taker_account_id: int
    maker_order_id: int
    maker_account_id: int
    taker_leaves_lots: int
    maker_leaves_lots: int


class OrderCancelled(Event, frozen=True, gc=False, tag=True):
    """An accepted order ended with `leaves_lots` unfilled, for `reason`."""

    order_id: int
    account_id: int
    symbol: str
    leaves_lots: int
    reason: CancelReason


class OrderAmended(Event, frozen=True, gc=False, tag=True):
    """An open order now has this price and quantity; if not `kept_priority`, it queued anew."""

    order_id: int
    account_id: int
    symbol: str
    price_ticks: int
    qty_lots: int
    leaves_lots: int
    kept_priority: bool

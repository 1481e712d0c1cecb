"""The pure core: a deterministic state machine of commands in and events out.

It imports the standard library, itself, msgspec (immutable record types) and sortedcontainers
(the book's sorted price keys); never a clock, I/O, randomness or another perpx package.
"""

from perpx.core.codes import RejectCode
from perpx.core.commands import AmendOrder, CancelAllOrders, CancelOrder, Command, PlaceOrder
from perpx.core.engine import Engine
from perpx.core.enums import CancelReason, OrderStatus, OrderType, Side, SmpType, TimeInForce
from perpx.core.events import (
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderRejected,
    Trade,
)

__all__ = [
    "AmendOrder",
    "CancelAllOrders",
    "CancelOrder",
    "CancelReason",
    "Command",
    "Engine",
    "Event",
    "OrderAccepted",
    "OrderAmended",
    "OrderCancelled",
    "OrderRejected",
    "OrderStatus",
    "OrderType",
    "PlaceOrder",
    "RejectCode",
    "Side",
    "SmpType",
    "TimeInForce",
    "Trade",
]

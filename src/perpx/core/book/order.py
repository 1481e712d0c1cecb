"""A resting order: the one mutable record of an open order, shared by the book and the id index."""

from __future__ import annotations

from typing import Any

from perpx.core import lifecycle
from perpx.core.enums import OrderStatus, OrderType, Side, SmpType, TimeInForce


class RestingOrder:
    """An open order. `in_book` turns False when it leaves its queue (fill, cancel, re-queue).

    Queues drop such orders lazily when they reach the front, so a cancel is O(1).
    """

    __slots__ = (
        "account_id",
        "account_obj",
        "close_on_trigger",
        "created_ts_ms",
        "filled_lots",
        "id_obj",
        "in_book",
        "leaves_lots",
        "order_id",
        "order_link_id",
        "order_type",
        "position_idx",
        "price_ticks",
        "qty_lots",
        "reduce_only",
        "side",
        "smp_type",
        "status",
        "symbol",
        "time_in_force",
        "updated_ts_ms",
    )

    def __init__(
        self,
        order_id: Any,
        account_id: Any,
        symbol: str,
        side: Side,
        order_type: OrderType,
        price_ticks: int,
        qty_lots: int,
        time_in_force: TimeInForce,
        reduce_only: bool,
        close_on_trigger: bool,
        position_idx: int,
        order_link_id: str,
        smp_type: SmpType,
        ts_ms: int,
    ) -> None:
        self.order_id: int = order_id
        self.account_id: int = account_id
        # The same two ids boxed once, typed Any (a Python object): compiled, an int field is
        # stored unboxed and boxed anew, a new object above 256, each time it goes into an
        # event, a dict or a set; these go into several events and indexes per fill and per
        # order (issue #14). As dict keys, the one object is also found by identity. The two
        # parameters are typed Any so that a caller holding them boxed (the engine's
        # placement, `requeued`) hands its objects on instead of having them boxed again.
        self.id_obj: Any = order_id
        self.account_obj: Any = account_id
        self.symbol = symbol
        self.side = side
        self.order_type = order_type
        self.price_ticks = price_ticks
        self.qty_lots = qty_lots
        self.leaves_lots = qty_lots
        self.filled_lots = 0
        self.time_in_force = time_in_force
        self.reduce_only = reduce_only
        self.close_on_trigger = close_on_trigger
        self.position_idx = position_idx
        self.order_link_id = order_link_id
        self.smp_type = smp_type
        self.status = lifecycle.START
        self.created_ts_ms = ts_ms
        self.updated_ts_ms = ts_ms
        self.in_book = False

    def requeued(self) -> RestingOrder:
        """Return a copy to queue at the back; this object is left out of the book for good.

        Field by field, not through `__slots__`: a class compiled by mypyc has none to walk.
        """
        twin = RestingOrder(
            self.id_obj, self.account_obj, self.symbol, self.side, self.order_type,
            self.price_ticks, self.qty_lots, self.time_in_force, self.reduce_only,
            self.close_on_trigger, self.position_idx, self.order_link_id, self.smp_type,
            self.created_ts_ms)
        twin.leaves_lots = self.leaves_lots
        twin.filled_lots = self.filled_lots
        twin.status = self.status
        twin.updated_ts_ms = self.updated_ts_ms
        self.in_book = False
        return twin

    def to_record(self) -> list[object]:
        """Return the order's fields in a fixed order, for snapshots and the state hash."""
        return [
            self.order_id,
            self.account_id,
            self.symbol,
            int(self.side),
            int(self.order_type),
            self.price_ticks,
            self.qty_lots,
            self.leaves_lots,
            self.filled_lots,
            int(self.time_in_force),
            self.reduce_only,
            self.close_on_trigger,
            self.position_idx,
            self.order_link_id,
            int(self.smp_type),
            int(self.status),
            self.created_ts_ms,
            self.updated_ts_ms,
        ]

    @classmethod
    def from_record(cls, record: list[Any]) -> RestingOrder:
        """Rebuild an order from `to_record`'s list."""
        (oid, acct, symbol, side, otype, price, qty, leaves, filled, tif, ro, cot, idx, link,
         smp, status, created, updated) = record
        order = cls(
            int(oid),
            int(acct),
            str(symbol),
            Side(side),
            OrderType(otype),
            int(price),
            int(qty),
            TimeInForce(tif),
            bool(ro),
            bool(cot),
            int(idx),
            str(link),
            SmpType(smp),
            int(created),
        )
        order.leaves_lots = int(leaves)
        order.filled_lots = int(filled)
        order.status = OrderStatus(status)
        order.updated_ts_ms = int(updated)
        return order

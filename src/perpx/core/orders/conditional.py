"""Waiting orders: conditional orders, TP/SL and trailing stops, and where their triggers stand.

A waiting order reserves no margin and is not in the book. `Waiting` keeps them by id, by
account and symbol, and by the position a TP/SL protects, files their triggers in a
`TriggerIndex`, and queues the price points the trigger engine (`core/orders/stops.py`) still has
to look at. It also keeps the TP/SL attached to orders that have not filled yet.
Invariants: every waiting order is Untriggered and filed exactly as `filing` says; every
order link id of a waiting order is in the engine's link index.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Final

from perpx.core import lifecycle
from perpx.core.enums import (
    OrderStatus,
    OrderType,
    Side,
    SmpType,
    StopOrderType,
    TimeInForce,
    TpSlMode,
    TriggerBy,
    TriggerDirection,
)
from perpx.core.errors import InvariantViolation
from perpx.core.market import LinkIndex, index_link, linked_order_id, unindex_link
from perpx.core.orders.triggers import EntryKind, TriggerIndex

_RISING: Final = TriggerDirection.RISING
_FALLING: Final = TriggerDirection.FALLING
_SELL: Final = Side.SELL
TPSL_TYPES: Final = frozenset({StopOrderType.TAKE_PROFIT, StopOrderType.STOP_LOSS,
                        StopOrderType.PARTIAL_TAKE_PROFIT, StopOrderType.PARTIAL_STOP_LOSS,
                        StopOrderType.TRAILING_STOP})


class ConditionalOrder:
    """An order waiting for its trigger (status Untriggered).

    `price_ticks` is 0 for a market order. `qty_lots` 0 means the whole position when it fires
    (Full TP/SL, trailing stops, close-on-trigger orders of qty 0). A trailing stop is armed
    once `extreme_ticks` is set: the best last price since, from which the stop
    (`trigger_price_ticks`) stands `trailing_stop_ticks` away.
    """

    __slots__ = (
        "account_id",
        "active_price_ticks",
        "close_on_trigger",
        "created_ts_ms",
        "extreme_ticks",
        "order_id",
        "order_link_id",
        "order_type",
        "pair_order_id",
        "parent_order_id",
        "position_idx",
        "price_ticks",
        "qty_lots",
        "reduce_only",
        "side",
        "smp_type",
        "status",
        "stop_order_type",
        "symbol",
        "time_in_force",
        "tpsl_mode",
        "trailing_stop_ticks",
        "trigger_by",
        "trigger_direction",
        "trigger_price_ticks",
        "updated_ts_ms",
    )

    def __init__(self, order_id: int, account_id: int, symbol: str, side: Side,
                 order_type: OrderType, price_ticks: int, qty_lots: int,
                 time_in_force: TimeInForce, reduce_only: bool, close_on_trigger: bool,
                 position_idx: int, order_link_id: str, smp_type: SmpType,
                 stop_order_type: StopOrderType, trigger_price_ticks: int,
                 trigger_direction: TriggerDirection, trigger_by: TriggerBy,
                 ts_ms: int) -> None:
        self.order_id = order_id
        self.account_id = account_id
        self.symbol = symbol
        self.side = side
        self.order_type = order_type
        self.price_ticks = price_ticks
        self.qty_lots = qty_lots
        self.time_in_force = time_in_force
        self.reduce_only = reduce_only
        self.close_on_trigger = close_on_trigger
        self.position_idx = position_idx
        self.order_link_id = order_link_id
        self.smp_type = smp_type
        self.stop_order_type = stop_order_type
        self.trigger_price_ticks = trigger_price_ticks
        self.trigger_direction = trigger_direction
        self.trigger_by = trigger_by
        self.tpsl_mode: TpSlMode | None = None
        self.parent_order_id = 0
        self.pair_order_id = 0
        self.trailing_stop_ticks = 0
        self.active_price_ticks = 0
        self.extreme_ticks = 0
        self.status = lifecycle.START_CONDITIONAL
        self.created_ts_ms = ts_ms
        self.updated_ts_ms = ts_ms

    @property
    def is_tpsl(self) -> bool:
        """Tell whether this protects a position (TP/SL or trailing), not a user's stop order."""
        return self.stop_order_type in TPSL_TYPES

    def filing(self) -> list[tuple[TriggerBy, TriggerDirection, int, EntryKind]]:
        """Return the trigger entries this order should have filed.

        A trailing stop closing a long (a sell) arms when the last price rises to its
        activation price, then fires when it falls to the stop and follows when it rises past
        the extreme; one closing a short mirrors that.
        """
        if self.stop_order_type is not StopOrderType.TRAILING_STOP:
            return [(self.trigger_by, self.trigger_direction, self.trigger_price_ticks,
                     EntryKind.FIRE)]
        closes_long = self.side is _SELL
        last = TriggerBy.LAST_PRICE
        if not self.extreme_ticks:
            return [(last, _RISING if closes_long else _FALLING, self.active_price_ticks,
                     EntryKind.ARM)]
        if closes_long:
            return [(last, _FALLING, self.trigger_price_ticks, EntryKind.FIRE),
                    (last, _RISING, self.extreme_ticks + 1, EntryKind.FOLLOW)]
        return [(last, _RISING, self.trigger_price_ticks, EntryKind.FIRE),
                (last, _FALLING, self.extreme_ticks - 1, EntryKind.FOLLOW)]

    def to_record(self) -> list[Any]:
        """Return the fields in a fixed order, for snapshots and the state hash."""
        return [self.order_id, self.account_id, self.symbol, int(self.side),
                int(self.order_type), self.price_ticks, self.qty_lots, int(self.time_in_force),
                self.reduce_only, self.close_on_trigger, self.position_idx, self.order_link_id,
                int(self.smp_type), int(self.stop_order_type), self.trigger_price_ticks,
                int(self.trigger_direction), int(self.trigger_by),
                int(self.tpsl_mode) if self.tpsl_mode is not None else 0,
                self.parent_order_id, self.pair_order_id, self.trailing_stop_ticks,
                self.active_price_ticks, self.extreme_ticks, self.created_ts_ms,
                self.updated_ts_ms]

    @classmethod
    def from_record(cls, record: list[Any]) -> ConditionalOrder:
        """Rebuild an order from `to_record`'s list."""
        (oid, acct, symbol, side, otype, price, qty, tif, ro, cot, idx, link, smp, sot, trig,
         direction, by, mode, parent, pair, trail, active, extreme, created, updated) = record
        order = cls(int(oid), int(acct), str(symbol), Side(side), OrderType(otype), int(price),
                    int(qty), TimeInForce(tif), bool(ro), bool(cot), int(idx), str(link),
                    SmpType(smp), StopOrderType(sot), int(trig), TriggerDirection(direction),
                    TriggerBy(by), int(created))
        order.tpsl_mode = TpSlMode(mode) if mode else None
        order.parent_order_id = int(parent)
        order.pair_order_id = int(pair)
        order.trailing_stop_ticks = int(trail)
        order.active_price_ticks = int(active)
        order.extreme_ticks = int(extreme)
        order.updated_ts_ms = int(updated)
        return order


class Attachment:
    """TP/SL carried by an order, started when that order fills (prices 0: no such leg).

    In Partial mode the legs it made so far are `tp_order_id` / `sl_order_id`, sized to the
    parent's filled quantity.
    """

    __slots__ = (
        "account_id",
        "mode",
        "order_id",
        "position_idx",
        "side",
        "sl_limit_price_ticks",
        "sl_order_id",
        "sl_order_type",
        "sl_trigger_by",
        "stop_loss_ticks",
        "symbol",
        "take_profit_ticks",
        "tp_limit_price_ticks",
        "tp_order_id",
        "tp_order_type",
        "tp_trigger_by",
    )

    def __init__(self, order_id: int, account_id: int, symbol: str, side: Side,
                 position_idx: int, mode: TpSlMode, take_profit_ticks: int,
                 stop_loss_ticks: int, tp_trigger_by: TriggerBy, sl_trigger_by: TriggerBy,
                 tp_order_type: OrderType, sl_order_type: OrderType,
                 tp_limit_price_ticks: int, sl_limit_price_ticks: int) -> None:
        self.order_id = order_id
        # The parent order's owner, side and position: it may be gone when its fills count.
        self.account_id = account_id
        self.symbol = symbol
        self.side = side
        self.position_idx = position_idx
        self.mode = mode
        self.take_profit_ticks = take_profit_ticks
        self.stop_loss_ticks = stop_loss_ticks
        self.tp_trigger_by = tp_trigger_by
        self.sl_trigger_by = sl_trigger_by
        self.tp_order_type = tp_order_type
        self.sl_order_type = sl_order_type
        self.tp_limit_price_ticks = tp_limit_price_ticks
        self.sl_limit_price_ticks = sl_limit_price_ticks
        self.tp_order_id = 0
        self.sl_order_id = 0

    def to_record(self) -> list[Any]:
        """Return the fields in a fixed order, for snapshots and the state hash."""
        return [self.order_id, self.account_id, self.symbol, int(self.side), self.position_idx,
                int(self.mode), self.take_profit_ticks, self.stop_loss_ticks,
                int(self.tp_trigger_by), int(self.sl_trigger_by), int(self.tp_order_type),
                int(self.sl_order_type), self.tp_limit_price_ticks, self.sl_limit_price_ticks,
                self.tp_order_id, self.sl_order_id]

    @classmethod
    def from_record(cls, record: list[Any]) -> Attachment:
        """Rebuild from `to_record`'s list."""
        (oid, acct, symbol, side, idx, mode, tp, sl, tp_by, sl_by, tp_type, sl_type, tp_limit,
         sl_limit, tp_id, sl_id) = record
        attachment = cls(int(oid), int(acct), str(symbol), Side(side), int(idx), TpSlMode(mode),
                         int(tp), int(sl), TriggerBy(tp_by),
                         TriggerBy(sl_by), OrderType(tp_type), OrderType(sl_type),
                         int(tp_limit), int(sl_limit))
        attachment.tp_order_id = int(tp_id)
        attachment.sl_order_id = int(sl_id)
        return attachment


PositionKey = tuple[int, str, int]  # (account id, symbol, position idx)


class Waiting:
    """Every waiting order, its trigger entries, and the price points still to look at."""

    def __init__(self, by_link: LinkIndex) -> None:
        self.orders: dict[int, ConditionalOrder] = {}
        self.by_account_symbol: dict[tuple[int, str], dict[int, ConditionalOrder]] = {}
        self.by_position: dict[PositionKey, dict[int, ConditionalOrder]] = {}
        self.by_link = by_link  # shared with the engine: link ids are unique across both
        self.index = TriggerIndex()
        self.attachments: dict[int, Attachment] = {}
        # Price points (symbol, reference, price) to check, oldest first; empty between
        # commands.
        self.points: deque[tuple[str, TriggerBy, int]] = deque()

    def add(self, order: ConditionalOrder) -> None:
        """Keep a new waiting order and file its triggers."""
        self.orders[order.order_id] = order
        key = (order.account_id, order.symbol)
        self.by_account_symbol.setdefault(key, {})[order.order_id] = order
        if order.is_tpsl:
            self.by_position.setdefault(
                (order.account_id, order.symbol, order.position_idx), {})[order.order_id] = order
        if order.order_link_id:
            index_link(self.by_link, order.account_id, order.order_link_id, order.order_id)
        self.refile(order)

    def remove(self, order: ConditionalOrder) -> None:
        """Forget a waiting order (it fired or was cancelled) and its triggers."""
        del self.orders[order.order_id]
        key = (order.account_id, order.symbol)
        mine = self.by_account_symbol[key]
        del mine[order.order_id]
        if not mine:
            del self.by_account_symbol[key]
        if order.is_tpsl:
            position_key = (order.account_id, order.symbol, order.position_idx)
            guarding = self.by_position[position_key]
            del guarding[order.order_id]
            if not guarding:
                del self.by_position[position_key]
        if order.order_link_id:
            unindex_link(self.by_link, order.account_id, order.order_link_id)
        self.index.unfile(order.order_id)

    def refile(self, order: ConditionalOrder) -> None:
        """File the order's triggers anew after its prices changed."""
        index = self.index
        index.unfile(order.order_id)
        for trigger_by, direction, price, kind in order.filing():
            index.file(order.order_id, order.symbol, trigger_by, direction, price, kind)

    def of(self, account_id: int, symbol: str) -> list[ConditionalOrder]:
        """Return an account's waiting orders on `symbol`, oldest first."""
        mine = self.by_account_symbol.get((account_id, symbol), {})
        return [mine[order_id] for order_id in sorted(mine)]

    def guarding(self, account_id: int, symbol: str,
                 position_idx: int) -> list[ConditionalOrder]:
        """Return the TP/SL and trailing stops of one position, oldest first."""
        mine = self.by_position.get((account_id, symbol, position_idx), {})
        return [mine[order_id] for order_id in sorted(mine)]

    def full_leg(self, account_id: int, symbol: str, position_idx: int,
                 kind: StopOrderType) -> ConditionalOrder | None:
        """Return the position's Full-mode TP, SL or trailing stop (`kind`), if set."""
        for order in self.by_position.get((account_id, symbol, position_idx), {}).values():
            if order.stop_order_type is kind:
                return order
        return None

    def stop_count(self, account_id: int, symbol: str) -> int:
        """Count the user's own conditional orders (stopOrderType Stop) on `symbol`."""
        mine = self.by_account_symbol.get((account_id, symbol), {})
        return sum(1 for order in mine.values() if not order.is_tpsl)

    # -- snapshots and checks ---------------------------------------------------------------

    def to_snapshot(self) -> dict[str, Any]:
        """Return the waiting orders and attachments as plain data (the index is derived)."""
        return {
            "orders": [self.orders[i].to_record() for i in sorted(self.orders)],
            "attachments": [self.attachments[i].to_record() for i in sorted(self.attachments)],
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Load `to_snapshot`'s data and refile every trigger."""
        for record in snapshot["orders"]:
            self.add(ConditionalOrder.from_record(record))
        for record in snapshot["attachments"]:
            attachment = Attachment.from_record(record)
            self.attachments[attachment.order_id] = attachment

    def check_invariants(self) -> None:
        """Raise `InvariantViolation` if an order, its filing or a lookup disagrees."""
        if self.points:
            raise InvariantViolation("waiting: price points left unchecked after a command")
        expected = sorted(
            (order.symbol, int(by), direction is _RISING,
             price if direction is _RISING else -price, order.order_id, int(kind))
            for order in self.orders.values()
            for by, direction, price, kind in order.filing())
        if expected != self.index.entries():
            raise InvariantViolation("waiting: trigger index disagrees with the orders")
        for order in self.orders.values():
            if order.status is not OrderStatus.UNTRIGGERED:
                raise InvariantViolation(f"waiting order {order.order_id} is {order.status}")
            if order.order_link_id and linked_order_id(
                    self.by_link, order.account_id, order.order_link_id) != order.order_id:
                raise InvariantViolation(f"waiting order {order.order_id}: link not indexed")
            pair = self.orders.get(order.pair_order_id) if order.pair_order_id else None
            if order.pair_order_id and (pair is None or pair.pair_order_id != order.order_id):
                raise InvariantViolation(f"waiting order {order.order_id}: pair not mutual")
        indexed = sum(len(m) for m in self.by_account_symbol.values())
        if indexed != len(self.orders):
            raise InvariantViolation("waiting: per-account index disagrees with the orders")

"""Order books as the streams publish them: a mirror built from events, and top-N views.

The mirror follows the engine's books from durable events only (`OrderAccepted`, `Trade`,
`OrderCancelled`, `OrderAmended`), never by reading `engine.books`: the sequencer applies
commands before they are durable, so the live book may already hold effects a crash would
undo, and a stream must never show those. Each command costs O(its events).

A `DepthView` is what subscribers of one (symbol, depth) have been shown. Publishing diffs the
mirror's current top N against that view, so a delta deletes only levels the view holds and
re-adds every level that enters the top N; all subscribers of a view share one delta.

`BookMirror.to_state()` / `BookMirror.from_state()` export and rebuild a mirror as plain data
(`BookMirrorState`), for the read-side checkpoint (`perpx.readside`).
"""

from __future__ import annotations

import msgspec
from sortedcontainers import SortedDict

from perpx.core.enums import Side
from perpx.core.events import Event, OrderAccepted, OrderAmended, OrderCancelled, Trade

Level = tuple[int, int]  # (price_ticks, qty_lots)


class BookMirrorState(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """A `BookMirror` as data: levels by sort key, orders as (id, side, price, leaves, resting)."""

    bids: list[Level]
    asks: list[Level]
    orders: list[tuple[int, Side, int, int, bool]]
    pending: list[int]
    changed: bool


class _MirrorOrder:
    __slots__ = ("leaves", "price", "resting", "side")

    def __init__(self, side: Side, price: int, leaves: int) -> None:
        self.side = side
        self.price = price
        self.leaves = leaves
        self.resting = False


class BookMirror:
    """Aggregated price levels of one symbol, rebuilt from events."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        # Sort keys: -price for bids, price for asks, so index 0 is the best level.
        self.bids: SortedDict = SortedDict()
        self.asks: SortedDict = SortedDict()
        self._orders: dict[int, _MirrorOrder] = {}
        # Orders accepted (or re-queued by an amend) in this command that have not rested yet:
        # they are takers until their matching is over.
        self._pending: list[int] = []
        self.changed = False

    def to_state(self) -> BookMirrorState:
        """Return the mirror as data."""
        return BookMirrorState(
            list(self.bids.items()), list(self.asks.items()),
            [(order_id, o.side, o.price, o.leaves, o.resting)
             for order_id, o in self._orders.items()], list(self._pending), self.changed)

    @classmethod
    def from_state(cls, symbol: str, state: BookMirrorState) -> BookMirror:
        """Rebuild a mirror from `to_state()`."""
        mirror = cls(symbol)
        mirror.bids.update(state.bids)
        mirror.asks.update(state.asks)
        for order_id, side, price, leaves, resting in state.orders:
            order = mirror._orders[order_id] = _MirrorOrder(side, price, leaves)
            order.resting = resting
        mirror._pending = list(state.pending)
        mirror.changed = state.changed
        return mirror

    def _side(self, side: Side) -> tuple[SortedDict, int]:
        return (self.bids, -1) if side is Side.BUY else (self.asks, 1)

    def _add(self, order: _MirrorOrder, lots: int) -> None:
        levels, sign = self._side(order.side)
        key = order.price * sign
        total = levels.get(key, 0) + lots
        if total:
            levels[key] = total
        else:
            del levels[key]
        self.changed = True

    def _rest_pending(self, keep: int | None = None) -> None:
        still: list[int] = []
        for order_id in self._pending:
            order = self._orders.get(order_id)
            if order is None:
                continue
            if order_id == keep:
                still.append(order_id)
                continue
            if order.leaves > 0:
                order.resting = True
                self._add(order, order.leaves)
            else:
                del self._orders[order_id]
        self._pending = still

    def apply(self, event: Event) -> None:
        """Fold one event of this symbol in."""
        if isinstance(event, Trade):
            if event.taker_order_id not in self._pending:
                self._rest_pending()
            taker = self._orders.get(event.taker_order_id)
            if taker is not None:
                taker.leaves = event.taker_leaves_lots
            maker = self._orders.get(event.maker_order_id)
            if maker is not None:
                if not maker.resting:
                    self._rest_pending(keep=event.taker_order_id)
                self._add(maker, -event.qty_lots)
                maker.leaves = event.maker_leaves_lots
                if not maker.leaves:
                    del self._orders[event.maker_order_id]
        elif isinstance(event, OrderAccepted):
            self._rest_pending()
            self._orders[event.order_id] = _MirrorOrder(event.side, event.price_ticks,
                                                        event.qty_lots)
            self._pending.append(event.order_id)
        elif isinstance(event, OrderCancelled):
            order = self._orders.pop(event.order_id, None)
            if order is not None and order.resting:
                self._add(order, -order.leaves)
        elif isinstance(event, OrderAmended):
            self._rest_pending()
            order = self._orders.get(event.order_id)
            if order is None:
                return
            if event.kept_priority:
                self._add(order, event.leaves_lots - order.leaves)
                order.leaves = event.leaves_lots
            else:
                if order.resting:
                    self._add(order, -order.leaves)
                order.resting = False
                order.price = event.price_ticks
                order.leaves = event.leaves_lots
                self._pending.append(event.order_id)

    def end_command(self) -> None:
        """Close the command: orders still open after their matching now rest."""
        self._rest_pending()

    def top(self, depth: int) -> tuple[list[Level], list[Level]]:
        """Return the best `depth` (price, qty) levels of bids and asks, best first."""
        bids = [(-key, self.bids[key]) for key in self.bids.islice(0, depth)]
        asks = [(key, self.asks[key]) for key in self.asks.islice(0, depth)]
        return bids, asks

    def best(self) -> tuple[Level | None, Level | None]:
        """Return the best bid and ask levels, if any."""
        bids, asks = self.top(1)
        return (bids[0] if bids else None), (asks[0] if asks else None)


def diff_side(old: dict[int, int], new: list[Level]) -> list[Level]:
    """Return the changes turning `old` into `new`: (price, 0) deletes, others set sizes.

    A price is deleted only if `old` holds it, so a client never sees a delete for a level it
    does not have; a level entering the top N is sent in full.
    """
    changes: list[Level] = []
    fresh = dict(new)
    for price in old:
        if price not in fresh:
            changes.append((price, 0))
    for price, qty in new:
        if old.get(price) != qty:
            changes.append((price, qty))
    return changes


class DepthView:
    """The published top-N view of one (symbol, depth), shared by its subscribers.

    `u` counts published messages of this view; `seq` is the last command folded in (the
    cross sequence, comparable across depths).
    """

    def __init__(self, symbol: str, depth: int) -> None:
        self.symbol = symbol
        self.depth = depth
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.u = 0
        self.seq = 0
        self.dirty = False
        self.last_publish = 0.0  # event-loop time of the last message

    def reset(self, mirror: BookMirror, seq: int) -> None:
        """Take the mirror's current top N as the view (a snapshot)."""
        bids, asks = mirror.top(self.depth)
        self.bids = dict(bids)
        self.asks = dict(asks)
        self.u += 1
        self.seq = max(self.seq, seq)
        self.dirty = False

    def advance(self, mirror: BookMirror, seq: int) -> tuple[list[Level], list[Level]] | None:
        """Diff the mirror's top N against the view; return (bids, asks) changes or None."""
        self.dirty = False
        bids, asks = mirror.top(self.depth)
        bid_changes = diff_side(self.bids, bids)
        ask_changes = diff_side(self.asks, asks)
        if not bid_changes and not ask_changes:
            return None
        self.bids = dict(bids)
        self.asks = dict(asks)
        self.u += 1
        self.seq = max(self.seq, seq)
        return bid_changes, ask_changes

    def levels(self) -> tuple[list[Level], list[Level]]:
        """Return the view's levels, bids descending and asks ascending."""
        return (sorted(self.bids.items(), reverse=True), sorted(self.asks.items()))

"""The books and tick directions the streams show, folded from durable events (a read model).

`BookMirror` follows the engine's books from durable events only (`OrderAccepted`, `Trade`,
`OrderCancelled`, `OrderAmended`), never by reading `engine.books`: the sequencer applies
commands before they are durable, so the live book may already hold effects a crash would
undo, and a stream must never show those. Each command costs O(its events). `TickDirection`
is Bybit's tick direction of each symbol's last trade.

`Books` holds one mirror per symbol, the tick directions, and the seq and clock of the last
command folded; `Books.apply` folds a durable command and answers what the publishers need
of it (`BookChanges`: which books changed, each trade's direction). The service owns one and
checkpoints it with the rest of its read side (`to_state()` / `from_state()`, plain data:
`BooksState`); the stream hub (`perpx.api.ws.hub`) publishes from it and keeps only what its
subscribers have been shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import msgspec
from sortedcontainers import SortedDict

from perpx.core.enums import Side
from perpx.core.events import Event, OrderAccepted, OrderAmended, OrderCancelled, Trade
from perpx.rows import Stamp

BOOK_EVENTS = (OrderAccepted, Trade, OrderCancelled, OrderAmended)
# The same as a set of exact types, for `Books.apply`'s one test per event (the event
# classes are leaves: nothing subclasses them, so `type(e) in` is `isinstance(e, ...)`).
_BOOK_TYPES: frozenset[type[Event]] = frozenset(BOOK_EVENTS)

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
        # One exact-type test per kind (leaf classes, see `_BOOK_TYPES`).
        if type(event) is Trade:
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
        elif type(event) is OrderAccepted:
            self._rest_pending()
            self._orders[event.order_id] = _MirrorOrder(event.side, event.price_ticks,
                                                        event.qty_lots)
            self._pending.append(event.order_id)
        elif type(event) is OrderCancelled:
            order = self._orders.pop(event.order_id, None)
            if order is not None and order.resting:
                self._add(order, -order.leaves)
        elif type(event) is OrderAmended:
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


Direction = Literal["PlusTick", "ZeroPlusTick", "MinusTick", "ZeroMinusTick"]
# A symbol's last trade price and its direction, as a checkpoint holds it.
TickDirectionState = dict[str, tuple[int, Direction]]


class TickDirection:
    """Bybit's tick direction of each symbol's last trade, relative to the price before."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[int, Direction]] = {}

    def to_state(self) -> TickDirectionState:
        """Return each symbol's last price and direction as data."""
        return dict(self._last)

    @classmethod
    def from_state(cls, state: TickDirectionState) -> TickDirection:
        """Rebuild the directions from `to_state()`."""
        directions = cls()
        directions._last = dict(state)
        return directions

    def next(self, symbol: str, price: int) -> str:
        """Return the direction of a trade at `price` and remember it."""
        previous = self._last.get(symbol)
        direction: Direction
        if previous is None:
            direction = "ZeroPlusTick"
        elif price > previous[0]:
            direction = "PlusTick"
        elif price < previous[0]:
            direction = "MinusTick"
        else:
            direction = "ZeroPlusTick" if previous[1] in ("PlusTick", "ZeroPlusTick") \
                else "ZeroMinusTick"
        self._last[symbol] = (price, direction)
        return direction

    def current(self, symbol: str) -> str:
        """Return the last trade's direction ("" before any trade)."""
        found = self._last.get(symbol)
        return found[1] if found else ""


class BooksState(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """What `Books` folded from durable events, as data."""

    seq: int
    now_ms: int
    mirrors: dict[str, BookMirrorState]
    directions: TickDirectionState


@dataclass(slots=True)
class BookChanges:
    """What one command did to the books: which changed, and each trade's tick direction.

    `directions` follows the command's trades in event order.
    """

    changed: set[str] = field(default_factory=set)
    directions: list[str] = field(default_factory=list)


class Books:
    """Every symbol's book mirror and tick direction, and the last command folded."""

    def __init__(self, symbols: list[str]) -> None:
        self.mirrors = {symbol: BookMirror(symbol) for symbol in symbols}
        self.directions = TickDirection()
        self.seq = 0
        self.now_ms = 0

    def to_state(self) -> BooksState:
        """Return the folded state as data."""
        return BooksState(self.seq, self.now_ms,
                          {symbol: mirror.to_state() for symbol, mirror in self.mirrors.items()},
                          self.directions.to_state())

    @classmethod
    def from_state(cls, state: BooksState, symbols: list[str]) -> Books:
        """Rebuild from `to_state()`; raise ValueError on another instrument table."""
        if list(state.mirrors) != symbols:
            raise ValueError("books state: book mirrors of another instrument table")
        unknown = set(state.directions) - set(symbols)
        if unknown:
            raise ValueError(f"books state: tick directions of unknown symbols {sorted(unknown)}")
        books = cls([])
        books.mirrors = {symbol: BookMirror.from_state(symbol, found)
                         for symbol, found in state.mirrors.items()}
        books.directions = TickDirection.from_state(state.directions)
        books.seq = state.seq
        books.now_ms = state.now_ms
        return books

    def apply(self, command: Stamp, events: list[Event]) -> BookChanges:
        """Fold a durable command's events in; return what changed."""
        if command.ts_ms > self.now_ms:  # `max` of two ints, without the builtin's call
            self.now_ms = command.ts_ms
        self.seq = command.seq
        changes = BookChanges()
        touched: set[str] = set()
        mirrors = self.mirrors
        for event in events:
            kind = type(event)
            if kind in _BOOK_TYPES:
                symbol = event.symbol  # type: ignore[attr-defined]  # every book event's
                mirrors[symbol].apply(event)
                touched.add(symbol)
                if type(event) is Trade:
                    changes.directions.append(self.directions.next(symbol, event.price_ticks))
        for symbol in touched:
            mirror = self.mirrors[symbol]
            mirror.end_command()
            if mirror.changed:
                mirror.changed = False
                changes.changed.add(symbol)
        return changes

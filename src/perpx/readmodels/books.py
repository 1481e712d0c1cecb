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

from collections.abc import Callable
from typing import Any, Literal

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
_BUY = Side.BUY
_dict_setitem = dict.__setitem__


class BookMirrorState(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """A `BookMirror` as data: levels by sort key, orders as (id, side, price, leaves, resting)."""

    bids: list[Level]
    asks: list[Level]
    orders: list[tuple[int, Side, int, int, bool]]
    pending: list[int]
    changed: bool


class _MirrorOrder(msgspec.Struct, gc=False):
    """An order the mirror follows, until it leaves the book.

    A struct, built by msgspec's C constructor (one per accepted order, issue #15); it
    refers to no container, so the GC need not track it.
    """

    side: Side
    price: int
    leaves: int
    resting: bool = False


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

    def _add(self, order: _MirrorOrder, lots: int) -> None:
        # Sort keys: -price for bids, price for asks (the side picked inline, no call).
        if order.side is _BUY:
            levels, key = self.bids, -order.price
        else:
            levels, key = self.asks, order.price
        before = levels.get(key)
        total = lots if before is None else before + lots
        if not total:
            del levels[key]
        elif before is None:
            levels[key] = total  # a new level: `SortedDict` files its key
        else:
            # A level already filed: only its quantity moves, so the dict's own store
            # (`SortedDict` is a dict whose keys it also keeps sorted) skips the Python-level
            # `SortedDict.__setitem__`'s membership test (issue #15).
            _dict_setitem(levels, key, total)
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
        """Fold one event of this symbol in (any other event than the book's is ignored)."""
        handler = _MIRROR_HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    # One method per book event, found by exact type (leaf classes, see `_BOOK_TYPES`).
    # `_rest_pending` is called only when something is pending: with nothing pending it
    # would only replace the empty list with another (issue #15: once per accepted order).

    def _trade(self, event: Trade) -> None:
        if self._pending and event.taker_order_id not in self._pending:
            self._rest_pending()
        orders = self._orders
        taker = orders.get(event.taker_order_id)
        if taker is not None:
            taker.leaves = event.taker_leaves_lots
        maker = orders.get(event.maker_order_id)
        if maker is not None:
            if not maker.resting and self._pending:
                self._rest_pending(keep=event.taker_order_id)
            self._add(maker, -event.qty_lots)
            maker.leaves = event.maker_leaves_lots
            if not maker.leaves:
                del orders[event.maker_order_id]

    def _accepted(self, event: OrderAccepted) -> None:
        if self._pending:
            self._rest_pending()
        self._orders[event.order_id] = _MirrorOrder(event.side, event.price_ticks,
                                                    event.qty_lots)
        self._pending.append(event.order_id)

    def _cancelled(self, event: OrderCancelled) -> None:
        order = self._orders.pop(event.order_id, None)
        if order is not None and order.resting:
            self._add(order, -order.leaves)

    def _amended(self, event: OrderAmended) -> None:
        if self._pending:
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
        if self._pending:
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


class BookChanges(msgspec.Struct):
    """What one command did to the books: which changed, and each trade's tick direction.

    `directions` follows the command's trades in event order. A struct rather than a
    dataclass: built once per folded command, by msgspec's C constructor (issue #15).
    """

    changed: set[str] = msgspec.field(default_factory=set)
    directions: list[str] = msgspec.field(default_factory=list)


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
        directions: list[str] = []
        touched: set[str] = set()
        mirrors = self.mirrors
        for event in events:
            handler = _MIRROR_HANDLERS.get(type(event))
            if handler is not None:
                symbol = event.symbol  # type: ignore[attr-defined]  # every book event's
                handler(mirrors[symbol], event)
                touched.add(symbol)
                if handler is _TRADE:
                    price = event.price_ticks  # type: ignore[attr-defined]  # a trade's
                    directions.append(self.directions.next(symbol, price))
        changed: set[str] = set()
        for symbol in touched:
            mirror = mirrors[symbol]
            if mirror._pending:  # `end_command`, without its call when nothing is pending
                mirror._rest_pending()
            if mirror.changed:
                mirror.changed = False
                changed.add(symbol)
        return BookChanges(changed, directions)


# `BookMirror.apply`'s dispatch: each book event's method, by exact type.
_MIRROR_HANDLERS: dict[type[Event], Callable[[BookMirror, Any], None]] = {
    Trade: BookMirror._trade, OrderAccepted: BookMirror._accepted,
    OrderCancelled: BookMirror._cancelled, OrderAmended: BookMirror._amended}
_TRADE = BookMirror._trade
assert set(_MIRROR_HANDLERS) == _BOOK_TYPES

"""Adapters that replay the standard stream through matching engines published on PyPI.

Each adapter drives one third-party price-time-priority limit order book (a "peer") with the
events of `perpx.bench.stream`, so perpx's own figures can stand beside theirs. The peers are
optional: an adapter imports its package only when it is built, and `available_peers()` leaves
out any whose package is not installed (they are in the `bench` extra).

`prepare()` turns the stream into the peer's own objects on a fresh book, outside any timing;
`run()` replays that prepared stream once and returns each event's latency in nanoseconds,
from `time.perf_counter_ns` read around the event. Prepare again before each run: a replay
consumes its book.

Semantics are kept the same for every peer: limit orders trade against the opposite side at
price-time priority and any remainder rests; a cancel of an id that no longer rests is
ignored; a market order sweeps the opposite side and its unfilled remainder is dropped.
"""

from __future__ import annotations

import importlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from types import ModuleType
from typing import Any, ClassVar

from perpx.bench.stream import BUY, CANCEL, LIMIT, MARKET, SELL, StreamEvent

# One prepared event: a callable into the peer and the arguments to call it with.
PreparedOp = tuple[Callable[..., object], tuple[Any, ...]]

# litebook has no market order: a buy is sent as a limit at this price, which crosses any ask.
_FAR_BUY_TICKS = 2**62
# ... and a sell as a limit at one tick, which crosses any bid.
_FAR_SELL_TICKS = 1


@dataclass(slots=True)
class PreparedStream:
    """A stream converted for one peer: its fresh book and one call per event."""

    book: object
    ops: list[PreparedOp]


def _ignore() -> None:
    """Stand in for a cancel whose id never rested (the stream's contract rules it out)."""


def _replay(prepared: object, timed: bool) -> list[int]:
    """Call each prepared op in order; with `timed`, return each one's latency in ns."""
    if not isinstance(prepared, PreparedStream):
        raise TypeError(f"expected a PreparedStream from prepare(), got {type(prepared)!r}")
    if not timed:
        for call, args in prepared.ops:
            call(*args)
        return []
    clock = time.perf_counter_ns
    latencies = [0] * len(prepared.ops)
    for i, (call, args) in enumerate(prepared.ops):
        started = clock()
        call(*args)
        latencies[i] = clock() - started
    return latencies


class PeerAdapter(ABC):
    """One PyPI matching engine, driven with the standard stream."""

    distribution: ClassVar[str]  # the PyPI name, for version look-up and messages
    module: ClassVar[str]  # the import name

    name: str

    def __init__(self) -> None:
        """Import the peer's package; raises ImportError when it is not installed."""
        self._mod: ModuleType = importlib.import_module(self.module)
        try:
            self.name = f"{self.distribution} {version(self.distribution)}"
        except PackageNotFoundError:
            self.name = f"{self.distribution} (version unknown)"

    @abstractmethod
    def prepare(self, stream: Sequence[StreamEvent]) -> object:
        """Build a fresh book and convert `stream` into calls on it (not timed)."""

    def run(self, prepared: object, timed: bool = True) -> list[int]:
        """Replay a stream from `prepare()` once; with `timed`, each event's latency in ns."""
        return _replay(prepared, timed)


class LiquibookPeer(PeerAdapter):
    """liquibook: SWIG bindings of the C++ LiquiBook engine (`DepthOrderBook`).

    A market order is a `SimpleOrder` at price 0 added with the immediate-or-cancel condition,
    so its remainder is dropped. A cancel of an order that no longer rests only raises a
    cancel-reject callback, which nobody listens to. No listeners are attached, so the
    `SimpleOrder` objects' own fill counters are not updated (the book tracks fills itself).
    """

    distribution = "liquibook"
    module = "liquibook"

    def prepare(self, stream: Sequence[StreamEvent]) -> PreparedStream:
        """Build a fresh book and convert `stream` into calls on it (not timed)."""
        lb = self._mod
        book = lb.DepthOrderBook()
        add, cancel = book.add, book.cancel
        simple_order = lb.SimpleOrder
        ioc = lb.oc_immediate_or_cancel
        orders: dict[int, Any] = {}
        ops: list[PreparedOp] = []
        for kind, order_id, side, price_ticks, qty_lots in stream:
            if kind == LIMIT:
                order = simple_order(side == BUY, price_ticks, qty_lots)
                orders[order_id] = order
                ops.append((add, (order,)))
            elif kind == MARKET:
                ops.append((add, (simple_order(side == BUY, 0, qty_lots), ioc)))
            elif kind == CANCEL:
                target = orders.get(order_id)
                ops.append((cancel, (target,)) if target is not None else (_ignore, ()))
            else:
                raise ValueError(f"unknown event kind {kind}")
        return PreparedStream(book, ops)


class LitebookPeer(PeerAdapter):
    """litebook: a Rust limit order book (`OrderBook` of `Order`, prices in ticks).

    litebook has no market order, so one is sent as a limit at the far price (which sweeps the
    opposite side in price-time order) followed, within the same timed event, by a cancel of
    any remainder. Quantities are floats in litebook (exact for the stream's lot counts).
    Cancels take litebook's own order ids (UUID strings), fixed when the orders are prepared.
    """

    distribution = "litebook"
    module = "litebook"

    def prepare(self, stream: Sequence[StreamEvent]) -> PreparedStream:
        """Build a fresh book and convert `stream` into calls on it (not timed)."""
        lb = self._mod
        book = lb.OrderBook(tick_size=1.0)
        add, cancel = book.add, book.cancel
        make_order = lb.Order
        sides = {BUY: lb.OrderType.Buy, SELL: lb.OrderType.Sell}
        ids: dict[int, str] = {}
        ops: list[PreparedOp] = []
        for kind, order_id, side, price_ticks, qty_lots in stream:
            if kind == LIMIT:
                order = make_order(sides[side], price_ticks, float(qty_lots))
                ids[order_id] = order.id
                ops.append((add, (order,)))
            elif kind == MARKET:
                far = _FAR_BUY_TICKS if side == BUY else _FAR_SELL_TICKS
                order = make_order(sides[side], far, float(qty_lots))
                ops.append((_litebook_market, (add, cancel, order, order.id)))
            elif kind == CANCEL:
                target = ids.get(order_id)
                ops.append((cancel, (target,)) if target is not None else (_ignore, ()))
            else:
                raise ValueError(f"unknown event kind {kind}")
        return PreparedStream(book, ops)


def _litebook_market(
    add: Callable[[Any], object], cancel: Callable[[str], object], order: Any, order_id: str
) -> None:
    """Sweep with a far-priced limit, then drop whatever did not fill."""
    add(order)
    cancel(order_id)


class LimitOrderBookPeer(PeerAdapter):
    """limit-order-book: Kautenja's C++ limit order book (ctypes in 2.x, Cython in 3.x).

    Orders carry the stream's own ids. A cancel first asks `has()`, since in 2.x the library
    cancels by `std::map::at` and an unknown id would abort the process (3.x checks it too).
    Python 3.11/3.12 get 2.0.0, built from its sdist with g++ and `-march=native`; 3.x needs
    Python 3.13 or later. Both keep the same method names.
    """

    distribution = "limit-order-book"
    module = "limit_order_book"

    def prepare(self, stream: Sequence[StreamEvent]) -> PreparedStream:
        """Build a fresh book and convert `stream` into calls on it (not timed)."""
        book = self._mod.LimitOrderBook()
        limit = {BUY: book.limit_buy, SELL: book.limit_sell}
        market = {BUY: book.market_buy, SELL: book.market_sell}
        has, cancel = book.has, book.cancel
        ops: list[PreparedOp] = []
        for kind, order_id, side, price_ticks, qty_lots in stream:
            if kind == LIMIT:
                ops.append((limit[side], (order_id, qty_lots, price_ticks)))
            elif kind == MARKET:
                ops.append((market[side], (order_id, qty_lots)))
            elif kind == CANCEL:
                ops.append((_checked_cancel, (has, cancel, order_id)))
            else:
                raise ValueError(f"unknown event kind {kind}")
        return PreparedStream(book, ops)


class Akhil4nOrderbookPeer(PeerAdapter):
    """akhil4n-orderbook: a pure-Python price-time book (module `orderbook`).

    The fastest pure-Python matching engine found on PyPI; market orders are its own
    `MarketOrder`, and cancelling an id that no longer rests is a no-op.
    """

    distribution = "akhil4n-orderbook"
    module = "orderbook"

    def prepare(self, stream: Sequence[StreamEvent]) -> PreparedStream:
        """Build a fresh book and convert `stream` into calls on it (not timed)."""
        m = self._mod
        book = m.OrderBook()
        sides = {BUY: m.OrderSide.BID, SELL: m.OrderSide.ASK}
        ids: dict[int, Any] = {}
        ops: list[PreparedOp] = []
        for kind, order_id, side, price_ticks, qty_lots in stream:
            if kind == LIMIT:
                order = m.Order(side=sides[side], price=price_ticks, original_quantity=qty_lots)
                ids[order_id] = order.order_id
                ops.append((book.add_limit_order, (order,)))
            elif kind == MARKET:
                order = m.MarketOrder(side=sides[side], original_quantity=qty_lots)
                ops.append((book.add_market_order, (order,)))
            elif kind == CANCEL:
                target = ids.get(order_id)
                ops.append((book.cancel_order, (target,)) if target is not None
                           else (_ignore, ()))
            else:
                raise ValueError(f"unknown event kind {kind}")
        return PreparedStream(book, ops)


def _checked_cancel(
    has: Callable[[int], bool], cancel: Callable[[int], object], order_id: int
) -> None:
    """Cancel `order_id` only if it still rests."""
    if has(order_id):
        cancel(order_id)


# Fastest first, as measured on standard_stream(200_000).
_PEERS: tuple[type[PeerAdapter], ...] = (
    LiquibookPeer, LitebookPeer, LimitOrderBookPeer, Akhil4nOrderbookPeer)
# The peers written in Python itself (the others wrap C++ or Rust).
PURE_PYTHON = frozenset({"akhil4n-orderbook"})


def available_peers() -> list[PeerAdapter]:
    """Return an adapter for each peer whose package imports; the others are skipped."""
    peers: list[PeerAdapter] = []
    for peer_class in _PEERS:
        try:
            peers.append(peer_class())
        except ImportError:
            continue
    return peers

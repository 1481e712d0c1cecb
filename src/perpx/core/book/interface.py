"""What the engine needs of one symbol's order book: the `Book` protocol.

`OrderBook` (sorted price levels of FIFO queues) is the implementation; another — a native
book, say — can be dropped in if it satisfies this protocol and the book property tests
(tests/property/test_book_properties.py), which run every implementation against a plain
reference. The book knows orders, never accounts: its matching walk returns `MatchStep`s and
the engine's settlement pass (`core/settlement.py`) applies them.

Orders are the shared mutable `RestingOrder` records: the book keeps `in_book`, `leaves_lots`,
`filled_lots`, `status` and `updated_ts_ms` of the orders it fills or takes out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from perpx.core.book.fills import MatchStep
from perpx.core.book.order import RestingOrder
from perpx.core.enums import Side

# How much a reduce-only maker may still fill, given the taker and the steps matched so far in
# the walk (not yet settled): the book asks, the caller knows the positions.
ReduceRoom = Callable[[RestingOrder, RestingOrder, list[MatchStep]], int]


class Book(Protocol):
    """One symbol's bids and asks in price-time priority."""

    symbol: str

    def add(self, order: RestingOrder) -> None:
        """Rest `order` at the back of its price on its side."""
        ...

    def remove(self, order: RestingOrder) -> None:
        """Take the live `order` out of the book."""
        ...

    def best_bid(self) -> int | None:
        """Return the best bid price in ticks, or None."""
        ...

    def best_ask(self) -> int | None:
        """Return the best ask price in ticks, or None."""
        ...

    def crosses(self, side: Side, price_ticks: int) -> bool:
        """Return whether an order of `side` at `price_ticks` would trade now."""
        ...

    def depth(self, limit: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Return the top `limit` aggregated (price, qty) levels of bids and asks."""
        ...

    def orders_in_priority(self) -> list[RestingOrder]:
        """Return every live order: bids best first, then asks best first, each level FIFO.

        Snapshots write the book in this order and restore it by `add`ing them back.
        """
        ...

    def fillable_lots(self, order: RestingOrder) -> int:
        """Return how much of `order` could fill now, honouring its self-match prevention.

        Exact below the order's leaves; at or above them an implementation may stop counting.
        """
        ...

    def match(self, taker: RestingOrder, limit_price_ticks: int, ts_ms: int,
              next_trade_id: int,
              reduce_room: ReduceRoom | None = None) -> tuple[list[MatchStep], int, bool, int]:
        """Walk `taker` into the opposite side: (steps, next trade id, SMP stopped, last price).

        See `core.matching.match` for the rules every implementation must follow.
        """
        ...

    def check_invariants(self) -> None:
        """Raise `InvariantViolation` if the book is crossed or inconsistent."""
        ...

"""One symbol's order book: two sides of price levels, best prices and aggregated depth.

Invariants (checked by `check_invariants`): never crossed after a command; every level holds
at least one live order; each level's total is the sum of its live orders' leaves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from perpx.core import matching
from perpx.core.book.fills import MatchStep
from perpx.core.book.interface import ReduceRoom
from perpx.core.book.order import RestingOrder
from perpx.core.book.side import BookSide
from perpx.core.enums import Side
from perpx.core.errors import InvariantViolation

_BUY: Final = Side.BUY  # bound once: an enum member lookup is slow in CPython 3.11


class OrderBook:
    """The bids and asks of one symbol: the `Book` protocol's implementation."""

    __slots__ = ("asks", "bids", "symbol")

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.bids = BookSide(Side.BUY)
        self.asks = BookSide(Side.SELL)

    def side(self, side: Side) -> BookSide:
        """Return the side where orders of `side` rest."""
        return self.bids if side is _BUY else self.asks

    def opposite(self, side: Side) -> BookSide:
        """Return the side that orders of `side` trade against."""
        return self.asks if side is _BUY else self.bids

    def best_bid(self) -> int | None:
        """Return the best bid price in ticks, or None."""
        return self.bids.best_price()

    def best_ask(self) -> int | None:
        """Return the best ask price in ticks, or None."""
        return self.asks.best_price()

    def depth(self, limit: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Return the top `limit` aggregated (price, qty) levels of bids and asks."""
        return self.bids.depth(limit), self.asks.depth(limit)

    def add(self, order: RestingOrder) -> None:
        """Rest `order` at the back of its price on its side."""
        (self.bids if order.side is _BUY else self.asks).add(order)

    def remove(self, order: RestingOrder) -> None:
        """Take the live `order` out of the book."""
        (self.bids if order.side is _BUY else self.asks).remove(order)

    def crosses(self, side: Side, price_ticks: int) -> bool:
        """Return whether an order of `side` at `price_ticks` would trade now."""
        opposite = self.asks if side is _BUY else self.bids
        # `levels` holds exactly the prices of `keys`: both are empty or neither is.
        return bool(opposite.levels) and opposite.keys[0] <= opposite.key(price_ticks)

    def fillable_lots(self, order: RestingOrder) -> int:
        """Return how much of `order` could fill now, honouring its self-match prevention."""
        return matching.fillable_lots(self.opposite(order.side), order)

    def match(self, taker: RestingOrder, limit_price_ticks: int, ts_ms: int,
              next_trade_id: int,
              reduce_room: ReduceRoom | None = None) -> tuple[list[MatchStep], int, bool, int]:
        """Walk `taker` into the opposite side (`core.matching.match`)."""
        return matching.match(self.opposite(taker.side), taker, limit_price_ticks, ts_ms,
                              next_trade_id, reduce_room)

    def orders_in_priority(self) -> list[RestingOrder]:
        """Return every live order: bids best first, then asks best first, each level FIFO."""
        out: list[RestingOrder] = []
        for book_side in (self.bids, self.asks):
            for key in book_side.keys:
                out.extend(book_side.levels[key * book_side.sign].orders())
        return out

    def check_invariants(self) -> None:
        """Raise `InvariantViolation` if crossed or a level disagrees with its orders."""
        bid, ask = self.best_bid(), self.best_ask()
        if bid is not None and ask is not None and bid >= ask:
            raise InvariantViolation(f"{self.symbol}: book crossed, bid {bid} >= ask {ask}")
        for book_side in (self.bids, self.asks):
            if sorted(p * book_side.sign for p in book_side.levels) != list(book_side.keys):
                raise InvariantViolation(f"{self.symbol}: sorted prices disagree with levels")
            for price, level in book_side.levels.items():
                live = level.orders()
                if not live:
                    raise InvariantViolation(f"{self.symbol}: empty level at {price}")
                if len(live) != level.live:
                    raise InvariantViolation(f"{self.symbol}: live count wrong at {price}")
                if sum(o.leaves_lots for o in live) != level.total_lots:
                    raise InvariantViolation(f"{self.symbol}: level total wrong at {price}")
                for order in live:
                    if order.price_ticks != price or order.leaves_lots <= 0:
                        raise InvariantViolation(
                            f"{self.symbol}: order {order.order_id} misplaced at {price}"
                        )


if TYPE_CHECKING:
    from perpx.core.book.interface import Book

    def _satisfies_the_protocol(book: OrderBook) -> Book:
        return book  # mypy checks here that OrderBook is a Book

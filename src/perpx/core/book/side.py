"""One side of an order book: its price levels, with their prices kept sorted best first."""

from __future__ import annotations

from perpx.core.book.level import PriceLevel
from perpx.core.book.order import RestingOrder
from perpx.core.enums import Side
from perpx.core.numbers import bisect_left_ints


class BookSide:
    """Levels of one side keyed by price, with their prices kept sorted best first.

    Prices are stored as sort keys: the price for asks, its negation for bids, so that
    ``keys[0]`` is always the best level and depth is a walk from the front.

    The keys are a plain list kept sorted by a binary search (`numbers.bisect_left_ints`; a
    level's key is never in the list twice): a side holds few levels, so an insert or delete
    is a short memmove in C, where a `SortedList` runs Python code for every ``keys[0]`` the
    matcher and `crosses` read (and a compiled core cannot inline it).
    """

    __slots__ = ("keys", "levels", "sign")

    def __init__(self, side: Side) -> None:
        self.sign = 1 if side is Side.SELL else -1
        self.levels: dict[int, PriceLevel] = {}
        self.keys: list[int] = []

    def key(self, price_ticks: int) -> int:
        """Return the sort key of `price_ticks` on this side (and the price of a key).

        A negation for bids, not a product with `sign`: compiled, a product with a negative
        operand always takes mypyc's slow path (both operands boxed, a generic multiply).
        """
        return price_ticks if self.sign > 0 else -price_ticks

    def best_price(self) -> int | None:
        """Return the best price of this side, or None if empty."""
        return self.key(self.keys[0]) if self.levels else None  # `levels`: the same prices

    def add(self, order: RestingOrder) -> None:
        """Queue `order` at its price, creating the level if needed."""
        price = order.price_ticks
        level = self.levels.get(price)
        if level is None:
            level = PriceLevel(price)
            self.levels[price] = level
            keys = self.keys
            key = self.key(price)
            keys.insert(bisect_left_ints(keys, key, 0, len(keys)), key)
        level.append(order)

    def remove(self, order: RestingOrder) -> None:
        """Take a live `order` out of its level (lazily), dropping the level if it empties."""
        level = self.levels[order.price_ticks]
        order.in_book = False
        level.total_lots -= order.leaves_lots
        level.live -= 1
        if level.live == 0:
            self.drop_level(level.price_ticks)

    def drop_level(self, price_ticks: int) -> None:
        """Forget the level at `price_ticks`."""
        del self.levels[price_ticks]
        keys = self.keys
        del keys[bisect_left_ints(keys, self.key(price_ticks), 0, len(keys))]

    def depth(self, limit: int) -> list[tuple[int, int]]:
        """Return up to `limit` (price_ticks, qty_lots) pairs, best first, in O(limit)."""
        sign = self.sign
        levels = self.levels
        out: list[tuple[int, int]] = []
        for key in self.keys[:limit]:
            price = key * sign
            out.append((price, levels[price].total_lots))
        return out

    def total_lots_within(self, limit_price_ticks: int, wanted_lots: int) -> int:
        """Return the lots resting at `limit_price_ticks` or better, stopping at `wanted_lots`."""
        asks = self.sign > 0
        levels = self.levels
        bound = limit_price_ticks if asks else -limit_price_ticks
        total = 0
        for key in self.keys:
            if key > bound:
                break
            total += levels[key if asks else -key].total_lots
            if total >= wanted_lots:
                break
        return total

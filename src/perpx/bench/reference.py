"""The benchmark's baseline: a plain price-level book whose every operation is O(log n) or better.

Earlier this was a book of two sorted Python lists, whose O(n) inserts and removals made its
cost grow with the stream (38.8k events/s over 100k events, 4.7k over 1M), so ratios against
it said nothing. It is replaced (issue #14, item 8) rather than dropped, because a simple,
fair, pure-Python book is a useful yardstick beside the PyPI peers:

- each side is a dict ``price -> deque`` of resting entries ``[order_id, qty]`` in time order,
  plus a heap of its prices (bids negated) to find the best level in O(log levels);
- a cancel is O(1): it zeroes the entry's quantity (found through a dict by order id), and the
  matcher drops zeroed entries when they reach the front of their level; a level whose deque
  runs empty is deleted when it is the best, and a price left in the heap without a level is
  popped then (a price pushed twice, after a level was deleted and reborn, is popped twice);
- matching takes from the front of the best level, price then time priority, at the maker's
  price, and rests what a limit leaves.

Every entry is appended and popped once and every price pushed and popped once per level it
opens, so the cost per event is amortized O(log levels), independent of the stream's length.
"""

from __future__ import annotations

import heapq
import time
from collections import deque

from perpx.bench.stream import BUY, CANCEL, LIMIT, StreamEvent


class LevelBook:
    """Limit, market and cancel on price levels: dicts of deques, with a heap of prices a side."""

    def __init__(self) -> None:
        self.levels: tuple[dict[int, deque[list[int]]], dict[int, deque[list[int]]]] = ({}, {})
        self.heaps: tuple[list[int], list[int]] = ([], [])  # BUY: -price, SELL: price
        self.where: dict[int, list[int]] = {}  # order id -> its entry [order_id, qty]
        self.trades = 0

    def best(self, side: int) -> tuple[int, deque[list[int]]] | None:
        """Return the best (price, level) of `side` that still holds a live order, or None."""
        heap, levels = self.heaps[side], self.levels[side]
        while heap:
            price = -heap[0] if side == BUY else heap[0]
            level = levels.get(price)
            if level is not None:
                while level and level[0][1] == 0:
                    level.popleft()  # cancelled
                if level:
                    return price, level
                del levels[price]
            heapq.heappop(heap)
        return None

    def limit(self, order_id: int, side: int, price: int, qty: int) -> None:
        """Match a limit order and rest what is left."""
        qty = self.take(side, qty, price)
        if qty:
            levels = self.levels[side]
            level = levels.get(price)
            if level is None:
                level = levels[price] = deque()
                heapq.heappush(self.heaps[side], -price if side == BUY else price)
            entry = [order_id, qty]
            level.append(entry)
            self.where[order_id] = entry

    def market(self, side: int, qty: int) -> None:
        """Match a market order; what is left is dropped."""
        self.take(side, qty, None)

    def take(self, side: int, qty: int, price: int | None) -> int:
        """Fill against the other side up to `price` (None: any); return the unfilled qty."""
        other = 1 - side
        while qty:
            best = self.best(other)
            if best is None:
                break
            best_price, level = best
            if price is not None and (best_price > price if side == BUY else best_price < price):
                break
            entry = level[0]
            fill = min(qty, entry[1])
            qty -= fill
            entry[1] -= fill
            self.trades += 1
            if entry[1] == 0:
                level.popleft()
                del self.where[entry[0]]
        return qty

    def cancel(self, order_id: int) -> None:
        """Cancel a resting order (its entry goes when it reaches the front); unknown ids pass."""
        entry = self.where.pop(order_id, None)
        if entry is not None:
            entry[1] = 0

    def resting(self, side: int) -> list[tuple[int, int, int]]:
        """Return (price, order_id, qty) of every live order on `side`, best first (for tests)."""
        out = [(price, order_id, qty) for price, level in self.levels[side].items()
               for order_id, qty in level if qty]
        out.sort(key=lambda row: (-row[0] if side == BUY else row[0]))  # stable: time order
        return out


def run_reference(stream: list[StreamEvent], timed: bool) -> list[int]:
    """Replay `stream`; return per-event latencies in ns if `timed`, else an empty list."""
    book = LevelBook()
    clock = time.perf_counter_ns
    latencies: list[int] = []
    record = latencies.append
    for kind, order_id, side, price, qty in stream:
        start = clock() if timed else 0
        if kind == LIMIT:
            book.limit(order_id, side, price, qty)
        elif kind == CANCEL:
            book.cancel(order_id)
        else:
            book.market(side, qty)
        if timed:
            record(clock() - start)
    return latencies

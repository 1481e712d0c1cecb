"""The benchmark's baseline: a deliberately simple book of sorted Python lists.

Each side is one list of ``(sort_key, arrival, order_id, qty)`` kept sorted with `bisect`;
a cancel finds its entry through a dict and removes it from the list (O(n)). It is what one
writes first, and the yardstick that the engine's figures are a ratio against.
"""

from __future__ import annotations

import bisect
import time

from perpx.bench.stream import BUY, CANCEL, LIMIT, StreamEvent


class SimpleBook:
    """Limit, market and cancel on two sorted lists."""

    def __init__(self) -> None:
        self.bids: list[list[int]] = []  # entries [-price, arrival, order_id, qty]
        self.asks: list[list[int]] = []  # entries [price, arrival, order_id, qty]
        self.where: dict[int, list[int]] = {}
        self.arrival = 0
        self.trades = 0

    def limit(self, order_id: int, side: int, price: int, qty: int) -> None:
        """Match a limit order and rest what is left."""
        qty = self.take(side, qty, price)
        if qty:
            self.arrival += 1
            entry = [-price if side == BUY else price, self.arrival, order_id, qty]
            bisect.insort(self.bids if side == BUY else self.asks, entry)
            self.where[order_id] = entry

    def market(self, side: int, qty: int) -> None:
        """Match a market order; what is left is dropped."""
        self.take(side, qty, None)

    def take(self, side: int, qty: int, price: int | None) -> int:
        """Fill against the other side up to `price` (None: any); return the unfilled qty."""
        book = self.asks if side == BUY else self.bids
        while qty and book:
            best = book[0]
            best_price = best[0] if side == BUY else -best[0]
            if price is not None and (best_price > price if side == BUY else best_price < price):
                break
            fill = min(qty, best[3])
            qty -= fill
            best[3] -= fill
            self.trades += 1
            if best[3] == 0:
                book.pop(0)
                del self.where[best[2]]
        return qty

    def cancel(self, order_id: int) -> None:
        """Remove a resting order; an unknown id is ignored."""
        entry = self.where.pop(order_id, None)
        if entry is None:
            return
        book = self.bids if entry[0] < 0 else self.asks
        book.remove(entry)


def run_simple(stream: list[StreamEvent], timed: bool) -> list[int]:
    """Replay `stream`; return per-event latencies in ns if `timed`, else an empty list."""
    book = SimpleBook()
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

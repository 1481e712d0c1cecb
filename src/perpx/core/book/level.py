"""A price level: a FIFO queue of orders with a cached total, dropping departed orders lazily."""

from __future__ import annotations

from collections import deque

from perpx.core.book.order import RestingOrder


class PriceLevel:
    """Orders at one price in time priority. `total_lots` is the sum of live orders' leaves.

    `live` counts orders still in the book; the queue may also hold departed orders
    (`in_book` False) that the matcher skips and drops when they reach the front.
    """

    __slots__ = ("live", "price_ticks", "queue", "total_lots")

    def __init__(self, price_ticks: int) -> None:
        self.price_ticks = price_ticks
        self.queue: deque[RestingOrder] = deque()
        self.total_lots = 0
        self.live = 0

    def append(self, order: RestingOrder) -> None:
        """Queue `order` at the back."""
        order.in_book = True
        self.queue.append(order)
        self.total_lots += order.leaves_lots
        self.live += 1

    def orders(self) -> list[RestingOrder]:
        """Return the live orders in time priority."""
        return [o for o in self.queue if o.in_book]

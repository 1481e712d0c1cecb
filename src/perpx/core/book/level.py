"""A price level: a FIFO queue of orders with a cached total, dropping departed orders lazily."""

from __future__ import annotations

from perpx.core.book.order import RestingOrder


class PriceLevel:
    """Orders at one price in time priority. `total_lots` is the sum of live orders' leaves.

    `live` counts orders still in the book; the queue may also hold departed orders
    (`in_book` False) that the matcher skips and drops when they reach the front.

    The queue is ``queue[head:]``: a list and the index of its front, not a deque. Compiled,
    a list's append and index are primitives where a deque's methods are generic calls, and
    a deque allocates a block of 64 slots for every new level (issue #14). The matcher moves
    the front on (`move_front`); the list sheds what lies before it once that is half of it.
    """

    __slots__ = ("head", "live", "price_ticks", "queue", "total_lots")

    def __init__(self, price_ticks: int) -> None:
        self.price_ticks = price_ticks
        self.queue: list[RestingOrder] = []
        self.head = 0
        self.total_lots = 0
        self.live = 0

    def append(self, order: RestingOrder) -> None:
        """Queue `order` at the back."""
        order.in_book = True
        self.queue.append(order)
        self.total_lots += order.leaves_lots
        self.live += 1

    def move_front(self, head: int) -> None:
        """Make ``queue[head]`` the front: what lies before it has left the queue.

        The list drops those entries once they are half of it, so it never holds more than
        twice the queue, at an amortized constant cost per order.
        """
        queue = self.queue
        if head * 2 >= len(queue):
            del queue[:head]
            head = 0
        self.head = head

    def orders(self) -> list[RestingOrder]:
        """Return the live orders in time priority."""
        return [o for o in self.queue[self.head:] if o.in_book]

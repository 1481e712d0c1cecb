"""Every `Book` implementation walks, rests and cancels as the plain `ReferenceBook` does.

Random streams of orders (any account, side, price, size, time in force, self-match
prevention, reduce-only) and cancels run on the implementation under test and on the
reference, each with its own copies of the orders. After every command: the same match
steps (fills and maker cancels, with their trade ids and leaves), the same result, the same
taker state, the same book (orders in priority, depth, best prices, fillable lots) and the
invariants hold. Reduce-only makers ask a room that, like the engine's, reads positions
settled so far moved by the walk's unsettled fills. A native book is added to
`IMPLEMENTATIONS` to be held to the same rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from perpx.core import OrderType, Side, SmpType, TimeInForce
from perpx.core.book import Book, Fill, MatchStep, OrderBook
from perpx.core.book.order import RestingOrder
from reference_book import ReferenceBook

IMPLEMENTATIONS: list[Callable[[str], Book]] = [OrderBook]
MID = 1_000

order_ops = st.tuples(
    st.just("order"),
    st.integers(1, 3),  # account
    st.sampled_from([Side.BUY, Side.SELL]),
    st.integers(-6, 6),  # price offset
    st.integers(1, 12),  # qty
    st.sampled_from([TimeInForce.GTC] * 4 + [TimeInForce.IOC, TimeInForce.FOK]),
    st.sampled_from([SmpType.NONE] * 4 + list(SmpType)),
    st.sampled_from([False, False, True]),  # reduce-only
)
cancel_ops = st.tuples(st.just("cancel"), st.integers(0, 40))
streams = st.lists(st.one_of(order_ops, order_ops, order_ops, cancel_ops), max_size=80)


class Market:
    """One book and the accounts' one-way positions, settled after each walk."""

    def __init__(self, book: Book) -> None:
        self.book = book
        self.live: dict[int, RestingOrder] = {}
        self.positions: dict[int, int] = {}
        self.next_trade_id = 1

    def room(self, maker: RestingOrder, taker: RestingOrder, steps: list[MatchStep]) -> int:
        size = self.positions.get(maker.account_id, 0)
        for step in steps:
            if isinstance(step, Fill):
                size += self.moved(maker.account_id, taker, step)
        return max(0, size) if maker.side is Side.SELL else max(0, -size)

    @staticmethod
    def moved(account_id: int, taker: RestingOrder, fill: Fill) -> int:
        change = 0
        for order in (taker, fill.maker):
            if order.account_id == account_id:
                change += fill.qty_lots if order.side is Side.BUY else -fill.qty_lots
        return change

    def place(self, order_id: int, op: tuple[Any, ...]) -> tuple[object, ...]:
        _, account, side, offset, qty, tif, smp, reduce_only = op
        order = RestingOrder(order_id, account, "BTCUSDT", side, OrderType.LIMIT, MID + offset,
                             qty, tif, reduce_only, False, 0, "", smp, order_id)
        book = self.book
        # Only whether the order can fill whole matters: an implementation may stop counting
        # once it reaches the order's quantity.
        fillable = min(qty, book.fillable_lots(order))
        if tif is TimeInForce.FOK and fillable < qty:
            return ("fok", fillable)
        result: tuple[object, ...] = ()
        stopped = False
        if book.crosses(side, order.price_ticks):
            steps, self.next_trade_id, stopped, last = book.match(
                order, order.price_ticks, order_id, self.next_trade_id, self.room)
            for step in steps:
                if isinstance(step, Fill):
                    for account in {order.account_id, step.maker.account_id}:
                        self.positions[account] = (self.positions.get(account, 0)
                                                   + self.moved(account, order, step))
                if not step.maker.in_book:  # a maker may be in two steps: filled, then cancelled
                    self.live.pop(step.maker.order_id, None)
            result = (tuple(describe(step) for step in steps), self.next_trade_id, stopped,
                      last)
        if order.leaves_lots and tif is TimeInForce.GTC and not stopped:
            book.add(order)
            self.live[order_id] = order
        return (fillable, result, order.leaves_lots, order.filled_lots, order.status)

    def cancel(self, pick: int) -> tuple[object, ...]:
        if not self.live:
            return ()
        order = self.live.pop(sorted(self.live)[pick % len(self.live)])
        self.book.remove(order)
        return (order.order_id,)

    def view(self) -> tuple[object, ...]:
        book = self.book
        return ([(o.order_id, o.leaves_lots, o.filled_lots, o.status)
                 for o in book.orders_in_priority()],
                book.depth(5), book.best_bid(), book.best_ask(), sorted(self.positions.items()))


def describe(step: MatchStep) -> tuple[object, ...]:
    return (type(step).__name__, step.maker.order_id, *step.values(),
            step.maker.leaves_lots, step.maker.status, step.maker.updated_ts_ms)


# A reduce-only maker filled down to its room and then cancelled in the same walk: the same
# maker in two steps (a Fill, then a MakerCancel).
_FILLED_THEN_CANCELLED = [
    ("order", 2, Side.SELL, 0, 2, TimeInForce.GTC, SmpType.NONE, False),
    ("order", 1, Side.BUY, 0, 2, TimeInForce.GTC, SmpType.NONE, False),
    ("order", 1, Side.SELL, 0, 5, TimeInForce.GTC, SmpType.NONE, True),
    ("order", 3, Side.BUY, 0, 5, TimeInForce.GTC, SmpType.NONE, False),
]


@pytest.mark.parametrize("make_book", IMPLEMENTATIONS, ids=lambda make: make.__name__)
@settings(max_examples=300)  # about 5 s: the walk's cases are many and cheap
@given(streams)
@example(_FILLED_THEN_CANCELLED)
def test_a_book_walks_rests_and_cancels_as_the_reference(
        make_book: Callable[[str], Book], ops: list[tuple[Any, ...]]) -> None:
    tested, reference = Market(make_book("BTCUSDT")), Market(ReferenceBook("BTCUSDT"))
    for order_id, op in enumerate(ops, start=1):
        if op[0] == "order":
            assert tested.place(order_id, op) == reference.place(order_id, op), op
        else:
            assert tested.cancel(op[1]) == reference.cancel(op[1]), op
        tested.book.check_invariants()
        reference.book.check_invariants()
        assert tested.view() == reference.view(), op

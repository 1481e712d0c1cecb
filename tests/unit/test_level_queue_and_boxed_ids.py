"""The price level's list queue against a deque, and the ids a resting order keeps boxed."""

from __future__ import annotations

from collections import deque

from hypothesis import given
from hypothesis import strategies as st

from perpx.core import OrderType, Side, SmpType, TimeInForce
from perpx.core.book.level import PriceLevel
from perpx.core.book.order import RestingOrder


def _order(order_id: int, account_id: int = 7) -> RestingOrder:
    return RestingOrder(order_id, account_id, "BTCUSDT", Side.BUY, OrderType.LIMIT, 100, 3,
                        TimeInForce.GTC, False, False, 0, "", SmpType.NONE, 5)


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5)), max_size=60))
def test_the_list_queue_keeps_a_deques_order(ops: list[tuple[bool, int]]) -> None:
    """Appends and front moves (as the matcher makes them) leave the queue a deque would."""
    level = PriceLevel(100)
    model: deque[RestingOrder] = deque()
    next_id = 1
    for is_append, count in ops:
        if is_append:
            for _ in range(count + 1):
                order = _order(next_id)
                next_id += 1
                level.append(order)
                model.append(order)
        else:
            taken = min(count, len(level.queue) - level.head)
            for _ in range(taken):
                model.popleft()
            if taken:
                level.move_front(level.head + taken)
        assert level.queue[level.head:] == list(model)
        assert level.orders() == list(model)
        assert len(level.queue) <= 2 * len(model) + 1


def test_a_resting_order_keeps_its_ids_boxed_and_equal() -> None:
    order = _order(1_000_003, 4_242)
    assert order.id_obj == order.order_id == 1_000_003
    assert order.account_obj == order.account_id == 4_242
    twin = order.requeued()
    assert (twin.id_obj, twin.account_obj) == (1_000_003, 4_242)
    back = RestingOrder.from_record(order.to_record())
    assert (back.id_obj, back.account_obj) == (1_000_003, 4_242)

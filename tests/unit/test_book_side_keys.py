"""A book side's sorted keys, placed by its own binary search, against `bisect` (issue #14)."""

from __future__ import annotations

from bisect import bisect_left, insort

from hypothesis import given
from hypothesis import strategies as st

from perpx.core import OrderType, Side, SmpType, TimeInForce
from perpx.core.book.order import RestingOrder
from perpx.core.book.side import BookSide
from perpx.core.numbers import bisect_left_ints

PRICES = st.integers(-(2**62), 2**62)


@given(st.lists(PRICES, unique=True, max_size=80), PRICES)
def test_the_native_search_is_bisect_left(keys: list[int], key: int) -> None:
    """The native search answers what `bisect.bisect_left` does, for a present key or not."""
    keys.sort()
    assert bisect_left_ints(keys, key, 0, len(keys)) == bisect_left(keys, key)
    for present in keys:
        assert bisect_left_ints(keys, present, 0, len(keys)) == bisect_left(keys, present)


@given(st.sampled_from([Side.BUY, Side.SELL]),
       st.lists(st.tuples(st.booleans(), st.integers(1, 40)), max_size=120))
def test_levels_added_and_dropped_keep_the_keys_bisect_would(
        side: Side, ops: list[tuple[bool, int]]) -> None:
    """Adding orders and taking them out leaves the keys `insort`/`bisect_left` would keep."""
    book_side = BookSide(side)
    model: list[int] = []
    resting: dict[int, list[RestingOrder]] = {}
    next_id = 1
    for is_add, price in ops:
        if is_add:
            order = RestingOrder(next_id, 1, "BTCUSDT", side, OrderType.LIMIT, price, 1,
                                 TimeInForce.GTC, False, False, 0, "", SmpType.NONE, 0)
            next_id += 1
            if price not in book_side.levels:
                insort(model, book_side.key(price))
            book_side.add(order)
            resting.setdefault(price, []).append(order)
        elif resting.get(price):
            book_side.remove(resting[price].pop())
            if not resting[price]:
                del model[bisect_left(model, book_side.key(price))]
        assert book_side.keys == model
        assert sorted(book_side.key(k) for k in book_side.levels) == model

"""`Levels` (a book mirror's side: a dict and its keys sorted by `bisect`) against a dict.

Over any sequence of level changes as `BookMirror._add` makes them (a new level, a level's
quantity moved, a level emptied), its `items()` are the reference dict's items in key order,
its keys are sorted and name exactly the filed levels, and `BookMirror.top` is the best
`depth` of each side; `update` (a checkpoint's levels) files keys in any order.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from perpx.core.enums import Side
from perpx.readmodels.books import BookMirror, Levels, _MirrorOrder


@given(st.lists(st.tuples(st.sampled_from([Side.BUY, Side.SELL]), st.integers(1, 40),
                          st.integers(1, 5), st.booleans()), max_size=200),
       st.integers(1, 60))
def test_levels_follow_a_sorted_reference_through_any_changes(
        steps: list[tuple[Side, int, int, bool]], depth: int) -> None:
    mirror = BookMirror("BTCUSDT")
    reference: dict[Side, dict[int, int]] = {Side.BUY: {}, Side.SELL: {}}
    for side, price, lots, take in steps:
        key = -price if side is Side.BUY else price
        held = reference[side].get(key, 0)
        change = -held if take and held else lots  # empty a level, or add to it
        mirror._add(_MirrorOrder(side, price, lots), change)
        if held + change:
            reference[side][key] = held + change
        else:
            del reference[side][key]
        for levels, expected in ((mirror.bids, reference[Side.BUY]),
                                 (mirror.asks, reference[Side.SELL])):
            assert levels.items() == sorted(expected.items())
            assert levels.keys == sorted(expected) and len(levels) == len(expected)
    bids, asks = mirror.top(depth)
    assert bids == [(-key, lots) for key, lots in sorted(reference[Side.BUY].items())][:depth]
    assert asks == [(key, lots) for key, lots in sorted(reference[Side.SELL].items())][:depth]


@given(st.lists(st.tuples(st.integers(-50, 50), st.integers(1, 9)), max_size=40))
def test_levels_update_files_keys_given_in_any_order(pairs: list[tuple[int, int]]) -> None:
    levels = Levels()
    levels.update(pairs)
    assert levels.items() == sorted(dict(pairs).items())
    assert all(levels.get(key) == lots for key, lots in dict(pairs).items())

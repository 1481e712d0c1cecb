"""The risk index's int entries order and find exactly as the (trigger, id, idx) tuples did.

`entry_key` packs a trigger, an account id and a position idx into one int; the books keep
those ints sorted and `candidates` reads the account ids back by shifting. Held here against
the tuples the index kept before (the oracle: sorted tuples, the old scan), over random books
and marks of any sign; and an account whose id no entry can carry (from 2**30) is filed as
checked on every move, with the same events as the same account under a small id.
"""

from __future__ import annotations

from bisect import insort
from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.core.enums import MarginMode, PositionMode
from perpx.core.risk.risk_index import entry_key, entry_parts
from support.builders import Driver, btcusdt, ethusdt

triggers = st.integers(min_value=-(2**40), max_value=2**40)
ids = st.integers(min_value=0, max_value=2**30 - 1)
idxs = st.integers(min_value=-1, max_value=2)
entries = st.tuples(triggers, ids, idxs)


@given(entries, entries)
def test_keys_order_as_the_tuples_and_give_them_back(a: tuple[int, int, int],
                                                     b: tuple[int, int, int]) -> None:
    key_a, key_b = entry_key(*a), entry_key(*b)
    assert entry_parts(key_a) == a
    assert (key_a < key_b) == (a < b)
    assert (key_a == key_b) == (a == b)


def _old_scan(longs: list[tuple[int, int, int]], shorts: list[tuple[int, int, int]],
              mark: int) -> set[int]:
    """The index's scan over tuples, as it was written before the int entries."""
    found: set[int] = set()
    for trigger, account_id, _idx in reversed(longs):
        if trigger < mark:
            break
        found.add(account_id)
    for trigger, account_id, _idx in shorts:
        if trigger > mark:
            break
        found.add(account_id)
    return found


@settings(max_examples=200)
@given(st.lists(st.tuples(st.booleans(), st.integers(-50, 50), st.integers(0, 40), idxs),
                max_size=60),
       st.integers(-60, 60))
def test_candidates_are_those_of_the_tuple_books(filed: list[tuple[bool, int, int, int]],
                                                 mark: int) -> None:
    d = Driver(btcusdt(), funded={})
    risk = d.engine.risk
    long_tuples: list[tuple[int, int, int]] = []
    short_tuples: list[tuple[int, int, int]] = []
    for is_long, trigger, account_id, idx in filed:
        insort(long_tuples if is_long else short_tuples, (trigger, account_id, idx))
        insort((risk.longs if is_long else risk.shorts).setdefault("BTCUSDT", []),
               entry_key(trigger, account_id, idx))
    assert risk.candidates("BTCUSDT", mark) == sorted(_old_scan(long_tuples, short_tuples, mark))


SMALL = 5
LARGE = 2**40  # beyond the ids an entry carries


def _normalised(value: Any) -> Any:
    """The events with the large id written as the small one."""
    if isinstance(value, list):
        return [_normalised(item) for item in value]
    if isinstance(value, dict):
        return {key: _normalised(item) for key, item in value.items()}
    return SMALL if value == LARGE and not isinstance(value, bool) else value


def _crash(trader: int, cross: bool) -> tuple[list[Any], list[Any], list[Any]]:
    """A trader long BTC (and hedged on ETH when cross) through a fall to liquidation.

    Returns the trader's filings once open, the events of the fall, and its sizes after.
    """
    d = Driver(btcusdt(), ethusdt(), funded={trader: "9000", 2: "10000000"})
    if cross:
        d.margin_mode(trader, MarginMode.CROSS)
        d.position_mode(trader, PositionMode.HEDGE, symbol="ETHUSDT")
    d.leverage(trader, "20")
    d.leverage(trader, "20", symbol="ETHUSDT")
    d.mark("60000")
    d.mark("3000", symbol="ETHUSDT")
    d.limit(2, "Sell", "60000", "1")
    d.market(trader, "Buy", "1")
    d.limit(2, "Sell", "3000", "20", symbol="ETHUSDT")
    idx = 1 if cross else 0
    d.market(trader, "Buy", "20", symbol="ETHUSDT", position_idx=idx)
    d.limit(2, "Buy", "59000", "10")
    d.limit(2, "Buy", "2900", "100", symbol="ETHUSDT")
    d.engine.risk.refresh(d.engine.clearing.dirty)
    filed = list(d.engine.risk.filed[trader])
    events: list[Any] = []
    for price in range(59900, 55000, -100):
        events.extend(d.mark(str(price)))
        events.extend(d.mark(str(price // 20), symbol="ETHUSDT"))
    sizes = [d.position(trader).size_lots,
             d.position(trader, idx=idx, symbol="ETHUSDT").size_lots]
    return filed, _normalised(msgspec.to_builtins(events)), sizes


def test_an_account_no_entry_can_carry_is_checked_on_every_move_with_the_same_events() -> None:
    for cross in (False, True):
        small_filed, small_events, small_sizes = _crash(SMALL, cross)
        large_filed, large_events, large_sizes = _crash(LARGE, cross)
        assert small_filed and all(entry is not None for _s, _l, entry in small_filed)
        assert sorted({symbol for symbol, _l, _e in large_filed}) == ["BTCUSDT", "ETHUSDT"]
        assert all(entry is None for _s, _l, entry in large_filed)
        assert small_sizes == large_sizes == [0, 0]  # both liquidated on the way down
        assert large_events == small_events

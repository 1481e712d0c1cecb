"""The risk index's shortcuts answer exactly as the plain rules they stand for.

The books' search (`numbers.bisect_left_ints`) is `bisect_left`, and an entry moved within its
book (`_moved`) leaves it as unfiling and filing would; a budget band drawn from a slack
of at least the total weight is the capped reach without the share's product (`_bands`).
On realistic streams and the journal bench's order flow, refreshing the accounts that changed
after every command leaves each of them filed exactly as an index built from scratch (a new
`RiskIndex` over the same market and clearing) files it.
"""

from __future__ import annotations

from bisect import bisect_left

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.bench.realistic import realistic_stream
from perpx.core import Engine
from perpx.core.account.clearing import index_reads_orders
from perpx.core.numbers import RATE_ONE, bisect_left_ints, mul_div_floor
from perpx.core.risk.risk_index import _BAND_CAP, RiskIndex, _bands
from perpx.instruments import load_instruments
from perpx.store.loadflow import order_flow

# Entries of any sign and beyond a machine word (a trigger from 2**31 shifts past 2**63).
keys = st.integers(min_value=-(2**70), max_value=2**70)


@given(st.lists(keys, max_size=80), keys, st.data())
def test_the_books_search_is_bisect_left(entries: list[int], entry: int,
                                         data: st.DataObject) -> None:
    entries.sort()
    count = len(entries)
    assert bisect_left_ints(entries, entry, 0, count) == bisect_left(entries, entry)
    low = data.draw(st.integers(min_value=0, max_value=count))
    high = data.draw(st.integers(min_value=low, max_value=count))
    assert bisect_left_ints(entries, entry, low, high) == bisect_left(entries, entry, low, high)
    # A probe equal to a filed entry (or between two equal ones) lands on the first of them.
    for filed in entries[:5]:
        assert bisect_left_ints(entries, filed, 0, count) == bisect_left(entries, filed)


@settings(max_examples=300)
@given(st.lists(st.integers(min_value=-50, max_value=50), min_size=1, max_size=40),
       st.integers(min_value=-60, max_value=60), st.data())
def test_an_entry_moved_in_its_book_leaves_the_book_sorted_as_refiling_would(
        book: list[int], new_entry: int, data: st.DataObject) -> None:
    # Small values, so that the new entry often equals or neighbours others (duplicates too).
    book.sort()
    old_entry = data.draw(st.sampled_from(book))
    is_long = data.draw(st.booleans())
    risk = Engine(load_instruments()).risk
    (risk.longs if is_long else risk.shorts)["BTCUSDT"] = list(book)
    expected = list(book)
    expected.remove(old_entry)
    expected.append(new_entry)
    expected.sort()
    assert risk._moved(("BTCUSDT", is_long, old_entry), ("BTCUSDT", is_long, new_entry))
    assert (risk.longs if is_long else risk.shorts)["BTCUSDT"] == expected
    # Another side, symbol or an "always" filing is not a move: nothing done.
    for after in (("BTCUSDT", not is_long, new_entry), ("ETHUSDT", is_long, new_entry),
                  ("BTCUSDT", is_long, None)):
        assert not risk._moved(("BTCUSDT", is_long, new_entry), after)
    assert (risk.longs if is_long else risk.shorts)["BTCUSDT"] == expected


def _plain_bands(slack: int, prices: dict[str, int],
                 weight_total: int) -> dict[str, tuple[int, int]] | None:
    """`_bands` as written before the capped shortcut: the share's product for every key."""
    if not weight_total:
        return None
    bands: dict[str, tuple[int, int]] = {}
    for key, price in prices.items():
        reach = min(mul_div_floor(slack, price, weight_total),
                    mul_div_floor(price, _BAND_CAP, RATE_ONE))
        if reach <= 0:
            return None
        bands[key] = (price - reach, price + reach)
    return bands


amounts = st.integers(min_value=1, max_value=2**80)


@settings(max_examples=400)
@given(st.one_of(amounts, st.integers(min_value=1, max_value=10**4)),
       st.dictionaries(st.sampled_from(["BTCUSDT", "ETHUSDT", "index:BTCUSDT", "SOLUSDT"]),
                       st.integers(min_value=1, max_value=2**40), max_size=4),
       st.one_of(st.just(0), amounts, st.integers(min_value=1, max_value=10**4)))
def test_a_band_is_the_plain_share_capped(slack: int, prices: dict[str, int],
                                          weight_total: int) -> None:
    assert _bands(slack, prices, weight_total) == _plain_bands(slack, prices, weight_total)


def _check_refreshed_as_from_scratch(engine: Engine) -> None:
    risk = engine.risk
    dirty = set(engine.clearing.dirty)
    risk.refresh(engine.clearing.dirty)
    scratch = RiskIndex(risk.market, risk.clearing)
    scratch.refresh(set(dirty))
    for account_id in dirty:
        assert risk.filed.get(account_id) == scratch.filed.get(account_id), account_id


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**16))
def test_a_refresh_files_as_an_index_built_from_scratch(seed: int) -> None:
    stream = realistic_stream(1_000, seed=seed)
    engine = stream.engine()
    for command in stream.commands:
        engine.apply(command)
        _check_refreshed_as_from_scratch(engine)


@settings(max_examples=2, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**16))
def test_the_order_flow_is_filed_as_from_scratch(seed: int) -> None:
    # Budget bands of cross accounts with many resting orders, far from liquidation: the
    # capped shortcut's usual case.
    engine = Engine(load_instruments())
    for seq, command in enumerate(order_flow(1_500, seed), start=1):
        engine.apply(msgspec.structs.replace(command, seq=seq, ts_ms=1_700_000_000_000 + seq))
        _check_refreshed_as_from_scratch(engine)


def _check_order_blind_filings_current(engine: Engine) -> None:
    # An isolated account, or one with no position record, is not marked dirty by its
    # orders (`clearing.index_reads_orders`): after refreshing the dirty accounts, each is
    # filed as a fresh index files it (neither filing reads marks), whatever its orders did.
    risk = engine.risk
    risk.refresh(engine.clearing.dirty)
    blind = {account_id for account_id, account in engine.clearing.accounts.items()
             if not index_reads_orders(account)}
    scratch = RiskIndex(risk.market, risk.clearing)
    scratch.refresh(set(blind))
    for account_id in blind:
        assert risk.filed.get(account_id) == scratch.filed.get(account_id), account_id


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**16))
def test_accounts_not_dirtied_by_orders_stay_filed_as_from_scratch(seed: int) -> None:
    stream = realistic_stream(1_000, seed=seed)
    engine = stream.engine()
    for command in stream.commands:
        engine.apply(command)
        _check_order_blind_filings_current(engine)

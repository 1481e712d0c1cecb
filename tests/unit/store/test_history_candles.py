"""Candles and funding rates read from the history tables equal the in-memory models.

One engine session (trades, index moves, ticks every minute for over an hour, a funding
settlement) is folded into the full in-memory models and, as the service does it, into
bounded ones whose closed candles and settled rates go to the history tables. Every query the
kline endpoints can make (each source, each interval, windows, limits) must answer the same,
on both backends; projecting the session again changes no row.
"""

from __future__ import annotations

import pytest

from perpx.readmodels import FundingHistory, Klines, PriceSource
from perpx.readmodels.candles import select_candles
from perpx.readmodels.klines import HOLDS_VALUE
from perpx.readmodels.period import KLINE_INTERVALS
from perpx.store import open_history
from perpx.store.history import History
from perpx.store.history_sql import SqlHistory
from support.builders import Driver
from support.stores import history_rows
from unit.readmodels.test_readmodels_from_engine import HOUR, MIN, T0, run_session


def _fold(history: History, session_events: list, bounded: Klines,
          funding: FundingHistory) -> None:
    bounded.sink = history
    funding.sink = history
    for event in session_events:
        bounded.apply(event)
        funding.apply(event)
    history.projected(len(session_events))
    history.flush().result()


WINDOWS = [
    (None, None, 200), (None, None, 1), (None, None, 7), (T0 + 20 * MIN, None, 5),
    (T0 + 20 * MIN, T0 + 50 * MIN, 1000), (None, T0 + 40 * MIN, 3), (T0, T0 + HOUR, 2),
    (T0 + 74 * MIN, None, 10), (T0 - 10 * HOUR, T0 - HOUR, 10), (9999, None, 1),
    (T0 + 33 * MIN + 1, T0 + 61 * MIN - 1, 20),
]


def test_table_candles_and_rates_equal_the_in_memory_models(location: str) -> None:
    session = run_session()
    specs = [Driver().spec()]
    full, bounded = Klines(specs), Klines(specs, keep_closed=0)
    rates_full, rates_table = FundingHistory(specs), FundingHistory(specs, keep=False)
    for event in session.events:
        full.apply(event)
        rates_full.apply(event)
    history = open_history(location)
    _fold(history, session.events, bounded, rates_table)
    assert isinstance(history, SqlHistory)
    now = full.now_ms + 3 * HOUR  # queried later: the mark and index read flat since
    compared = 0
    for source in PriceSource:
        for interval in KLINE_INTERVALS:
            current = bounded.latest("BTCUSDT", interval, source)
            for start, end, limit in WINDOWS:
                full.now_ms = now
                expected = full.candles("BTCUSDT", interval, source=source, start_ms=start,
                                        end_ms=end, limit=limit)
                got = history._executor.submit(
                    select_candles, history.closed_candles(source.value, "BTCUSDT", interval),
                    current, interval, filled=source in HOLDS_VALUE, start_ms=start,
                    end_ms=end, limit=limit, now_ms=now).result()
                assert got == expected, (source, interval, start, end, limit)
                compared += len(expected)
    assert compared > 1000
    settled = rates_full.rates("BTCUSDT")
    assert settled
    for start, end, limit in [(None, None, 200), (None, None, 1), (T0, T0 + HOUR, 5),
                              (T0 + 2 * HOUR, None, 5)]:
        assert history.funding_rates("BTCUSDT", start_ms=start, end_ms=end, limit=limit) == \
            rates_full.rates("BTCUSDT", start_ms=start, end_ms=end, limit=limit)
    # Replaying the same events (a restart re-projecting) changes no row.
    before = history_rows(history)
    assert before["klines"] and before["funding"]
    _fold(history, session.events, Klines(specs, keep_closed=0), FundingHistory(specs,
                                                                              keep=False))
    assert history_rows(history) == before
    history.close()


def test_a_bounded_model_keeps_only_its_newest_candles() -> None:
    session = run_session()
    specs = [Driver().spec()]
    kept = Klines(specs, keep_closed=2)
    for event in session.events:
        kept.apply(event)
    one_minute = kept.candles("BTCUSDT", "1", source=PriceSource.MARK, limit=1000)
    assert 1 <= len([c for c in one_minute if c.updated_ms is not None]) <= 3
    with pytest.raises(ValueError, match="older than the open candle"):
        from perpx.core.events import MarkPriceUpdated

        kept.apply(MarkPriceUpdated(10**6, T0, "BTCUSDT", 500000))

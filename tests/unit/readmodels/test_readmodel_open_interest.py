"""Open-interest snapshots per interval: value at each period's close, gaps held, bounds, limit."""

from __future__ import annotations

import pytest

from perpx.core.events import IndexPriceUpdated, PositionChanged
from perpx.readmodels.open_interest import OpenInterest, OpenInterestPoint

MIN = 60_000
HOUR = 60 * MIN
T0 = 1_700_006_400_000  # 2023-11-15 00:00 UTC


class Feed:
    def __init__(self) -> None:
        self.oi = OpenInterest()
        self.seq = 0

    def pair(self, ts_ms: int, long_account: int, short_account: int, size_lots: int) -> None:
        """Both sides of a fill: one long and one short position now `size_lots`."""
        for account, size in ((long_account, size_lots), (short_account, -size_lots)):
            self.seq += 1
            self.oi.apply(PositionChanged(self.seq, ts_ms, account, "BTCUSDT", 0, size, 0, 10,
                                          0, 0, 0))

    def clock(self, ts_ms: int) -> None:
        self.seq += 1
        self.oi.apply(IndexPriceUpdated(self.seq, ts_ms, "BTCUSDT", 1))


def test_each_period_shows_the_open_interest_at_its_close_newest_first() -> None:
    feed = Feed()
    feed.pair(T0 + 1 * MIN, 1, 2, 4)
    feed.pair(T0 + 7 * MIN, 3, 4, 6)  # OI 10 from the second 5-minute period
    feed.pair(T0 + 8 * MIN, 3, 4, 1)  # OI 5 at that period's close
    feed.clock(T0 + 22 * MIN)
    assert feed.oi.history("BTCUSDT", "5min") == [
        OpenInterestPoint(T0 + 20 * MIN, 5),  # the current period: now
        OpenInterestPoint(T0 + 15 * MIN, 5),  # quiet periods hold the value
        OpenInterestPoint(T0 + 10 * MIN, 5),
        OpenInterestPoint(T0 + 5 * MIN, 5),
        OpenInterestPoint(T0, 4),
    ]
    assert feed.oi.history("BTCUSDT", "15min") == [OpenInterestPoint(T0 + 15 * MIN, 5),
                                                   OpenInterestPoint(T0, 5)]
    assert feed.oi.history("BTCUSDT", "1d") == [OpenInterestPoint(T0, 5)]


def test_history_honours_start_end_and_limit() -> None:
    feed = Feed()
    for hour in range(6):
        feed.pair(T0 + hour * HOUR + 1, 1, 2, hour + 1)
    points = lambda **kw: [(p.timestamp_ms - T0) // HOUR  # noqa: E731
                           for p in feed.oi.history("BTCUSDT", "1h", **kw)]
    assert points() == [5, 4, 3, 2, 1, 0]
    assert points(limit=2) == [5, 4]
    assert points(end_ms=T0 + 3 * HOUR + 5) == [3, 2, 1, 0]
    assert points(start_ms=T0 + 1, end_ms=T0 + 4 * HOUR) == [4, 3, 2, 1]
    assert points(start_ms=T0 + 2 * HOUR, limit=1) == [5]
    assert [p.open_interest_lots for p in feed.oi.history("BTCUSDT", "4h")] == [6, 4]
    with pytest.raises(ValueError, match="limit"):
        feed.oi.history("BTCUSDT", "1h", limit=201)


def test_a_symbol_without_positions_still_reads_one_zero_entry() -> None:
    feed = Feed()
    assert feed.oi.history("BTCUSDT", "5min") == []  # no time yet
    feed.clock(T0 + 7 * MIN)
    assert feed.oi.history("BTCUSDT", "5min") == [OpenInterestPoint(T0 + 5 * MIN, 0)]
    assert feed.oi.history("BTCUSDT", "5min", end_ms=T0) == []

"""Tickers from hand-built events: the exact 24 h window, prices 24 h and 1 h ago, funding, OI."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from perpx.core.enums import Side
from perpx.core.events import (
    FundingIntervalSet,
    FundingSettled,
    IndexPriceUpdated,
    MarkPriceUpdated,
    PositionChanged,
    PremiumIndexSampled,
    Trade,
)
from perpx.readmodels.tickers import Tickers
from support.builders import btcusdt

SPEC = btcusdt()
MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR
T0 = 1_700_006_400_000  # 2023-11-15 00:00 UTC, on every funding grid


class Feed:
    def __init__(self) -> None:
        self.tickers = Tickers([SPEC])
        self.seq = 0

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def trade(self, ts_ms: int, price_ticks: int, qty_lots: int = 1) -> None:
        seq = self._next()
        self.tickers.apply(Trade(seq, ts_ms, seq, "BTCUSDT", price_ticks, qty_lots, Side.SELL,
                                 10, 1, 11, 2, 0, 0))

    def mark(self, ts_ms: int, price_ticks: int) -> None:
        self.tickers.apply(MarkPriceUpdated(self._next(), ts_ms, "BTCUSDT", price_ticks))

    def position(self, ts_ms: int, account: int, size_lots: int, idx: int = 0) -> None:
        self.tickers.apply(PositionChanged(self._next(), ts_ms, account, "BTCUSDT", idx,
                                           size_lots, 0, 10, 0, 0, 0))

    def clock(self, ts_ms: int) -> None:
        """Any event moves time; an index update is the lightest."""
        self.tickers.apply(IndexPriceUpdated(self._next(), ts_ms, "BTCUSDT", 500_000))


def test_a_trade_leaves_the_24h_window_exactly_24h_after_its_minute_starts() -> None:
    feed = Feed()
    feed.trade(T0 + 30_000, 500_000, qty_lots=2)  # 00:00:30 counts in the 00:00 minute
    feed.trade(T0 + MIN, 500_100, qty_lots=3)
    feed.clock(T0 + DAY - 1)
    before = feed.tickers.ticker("BTCUSDT")
    assert (before.volume_24h_lots, before.turnover_24h_atoms) == (
        5, SPEC.notional_atoms(500_000, 2) + SPEC.notional_atoms(500_100, 3))
    feed.clock(T0 + DAY)
    after = feed.tickers.ticker("BTCUSDT")
    assert (after.volume_24h_lots, after.turnover_24h_atoms) == (
        3, SPEC.notional_atoms(500_100, 3))
    assert after.prev_price_24h_ticks == 500_000  # the last price before the window
    assert after.high_price_24h_ticks == after.low_price_24h_ticks == 500_100
    feed.clock(T0 + DAY + MIN)
    empty = feed.tickers.ticker("BTCUSDT")
    assert (empty.volume_24h_lots, empty.turnover_24h_atoms) == (0, 0)
    assert empty.high_price_24h_ticks == empty.low_price_24h_ticks == 500_100  # held all day
    assert empty.prev_price_24h_ticks == 500_100
    assert empty.price_24h_pcnt == 0


def test_prices_24h_and_1h_ago_and_the_change() -> None:
    feed = Feed()
    feed.trade(T0, 400_000)  # first trade: the reference until a day has passed
    feed.trade(T0 + 2 * HOUR, 410_000)
    feed.trade(T0 + 3 * HOUR + 30 * MIN, 420_000)
    feed.trade(T0 + 4 * HOUR, 440_000)
    ticker = feed.tickers.ticker("BTCUSDT")
    assert ticker.prev_price_24h_ticks == 400_000
    assert ticker.prev_price_1h_ticks == 410_000  # 03:30 is inside the last hour, 02:00 not
    assert ticker.price_24h_pcnt == Fraction(1, 10)
    assert ticker.price_24h_pcnt_rate == 10_000_000
    assert (ticker.high_price_24h_ticks, ticker.low_price_24h_ticks) == (440_000, 400_000)
    feed.clock(T0 + DAY + 2 * HOUR)
    later = feed.tickers.ticker("BTCUSDT")
    assert later.prev_price_24h_ticks == 410_000
    assert later.prev_price_1h_ticks == 440_000
    assert (later.high_price_24h_ticks, later.low_price_24h_ticks) == (440_000, 420_000)
    assert later.price_24h_pcnt == Fraction(440_000 - 410_000, 410_000)


@given(st.lists(st.tuples(st.integers(0, 6 * HOUR), st.integers(1, 1_000),
                          st.integers(1, 50)), min_size=1, max_size=60),
       st.integers(1, 4))
def test_window_matches_a_naive_recount(steps: list[tuple[int, int, int]], scale: int) -> None:
    # Gaps are stretched so trades leave the window at many different moments.
    feed = Feed()
    now = T0
    trades: list[tuple[int, int, int]] = []
    for gap, price, qty in steps:
        now += gap * scale
        feed.trade(now, price, qty)
        trades.append((now, price, qty))
        ticker = feed.tickers.ticker("BTCUSDT")
        first_minute = now // MIN - 1439
        window = [t for t in trades if t[0] // MIN >= first_minute]
        assert ticker.volume_24h_lots == sum(q for _, _, q in window)
        assert ticker.turnover_24h_atoms == sum(SPEC.notional_atoms(p, q) for _, p, q in window)
        assert ticker.high_price_24h_ticks == max(p for _, p, _ in window)
        assert ticker.low_price_24h_ticks == min(p for _, p, _ in window)
        before = [t for t in trades if t[0] // MIN < first_minute]
        assert ticker.prev_price_24h_ticks == (before[-1][1] if before else trades[0][1])
        last_hour = now // MIN - 59
        earlier = [t for t in trades if t[0] // MIN < last_hour]
        assert ticker.prev_price_1h_ticks == (earlier[-1][1] if earlier else trades[0][1])


def test_open_interest_counts_one_side_from_both_sides_position_changes() -> None:
    feed = Feed()
    feed.position(T0, 1, 3)  # account 1 long 3 against
    feed.position(T0, 2, -3)  # account 2 short 3
    assert feed.tickers.ticker("BTCUSDT").open_interest_lots == 3
    feed.position(T0 + 1, 3, 2, idx=1)  # account 3 in hedge mode, long 2 against
    feed.position(T0 + 1, 3, -2, idx=2)  # its own short 2
    assert feed.tickers.ticker("BTCUSDT").open_interest_lots == 5
    feed.position(T0 + 2, 1, -1)  # account 1 flips to short 1 against account 2's
    feed.position(T0 + 2, 2, 1)  # flip to long 1: longs 1 + 2, shorts 1 + 2
    oi = feed.tickers.open_interest
    assert oi.open_interest_lots("BTCUSDT") == oi.short_interest_lots("BTCUSDT") == 3
    feed.mark(T0 + 3, 500_000)
    ticker = feed.tickers.ticker("BTCUSDT")
    assert ticker.open_interest_value_atoms == SPEC.notional_atoms(500_000, 3)
    feed.position(T0 + 4, 3, 0, idx=1)
    feed.position(T0 + 4, 3, 0, idx=2)
    feed.position(T0 + 4, 1, 0)
    feed.position(T0 + 4, 2, 0)
    assert feed.tickers.ticker("BTCUSDT").open_interest_lots == 0


def test_open_interest_value_waits_for_a_mark() -> None:
    feed = Feed()
    feed.position(T0, 1, 3)
    assert feed.tickers.ticker("BTCUSDT").open_interest_value_atoms is None


def test_funding_rate_and_next_time_follow_samples_settlements_and_interval_changes() -> None:
    feed = Feed()
    feed.clock(T0 + MIN)
    fresh = feed.tickers.ticker("BTCUSDT")
    assert fresh.funding_rate == 10_000  # interest alone before any sample: 0.01%
    assert (fresh.next_funding_ms, fresh.funding_interval_min) == (T0 + 8 * HOUR, 480)
    feed.tickers.apply(PremiumIndexSampled(90, T0 + 2 * MIN, "BTCUSDT", 100_000, 50_000,
                                           T0 + 8 * HOUR))
    sampled = feed.tickers.ticker("BTCUSDT")
    assert (sampled.funding_rate, sampled.next_funding_ms) == (50_000, T0 + 8 * HOUR)
    feed.tickers.apply(FundingSettled(91, T0 + 8 * HOUR, "BTCUSDT", 50_000, 500_000,
                                      T0 + 8 * HOUR, 0, 0, 0))
    settled = feed.tickers.ticker("BTCUSDT")
    assert (settled.funding_rate, settled.next_funding_ms) == (10_000, T0 + 16 * HOUR)
    feed.tickers.apply(FundingIntervalSet(92, T0 + 9 * HOUR + 5, "BTCUSDT", 60,
                                          T0 + 10 * HOUR))
    hourly = feed.tickers.ticker("BTCUSDT")
    assert (hourly.next_funding_ms, hourly.funding_interval_min) == (T0 + 10 * HOUR, 60)
    feed.clock(T0 + 10 * HOUR)  # no settlement event (say, no mark): the grid still rolls
    assert feed.tickers.ticker("BTCUSDT").next_funding_ms == T0 + 11 * HOUR


def test_mark_index_and_last_are_the_latest_values() -> None:
    feed = Feed()
    empty = feed.tickers.ticker("BTCUSDT")
    assert (empty.last_price_ticks, empty.mark_price_ticks, empty.prev_price_24h_ticks) == (
        None, None, None)
    feed.trade(T0, 500_010)
    feed.mark(T0 + 1, 500_005)
    feed.clock(T0 + 2)
    ticker = feed.tickers.ticker("BTCUSDT")
    assert (ticker.last_price_ticks, ticker.mark_price_ticks, ticker.index_price_ticks) == (
        500_010, 500_005, 500_000)
    assert [t.symbol for t in feed.tickers.tickers()] == ["BTCUSDT"]


def test_before_the_first_trade_the_last_price_is_the_mark() -> None:
    """#13 C4: a fresh symbol's ticker has a last price and 24 h figures from its first mark
    (they were None, so a bot doing ticker['last'] * x crashed); the first trade takes over."""
    feed = Feed()
    feed.tickers.apply(IndexPriceUpdated(feed._next(), T0, "BTCUSDT", 499_990))
    assert feed.tickers.ticker("BTCUSDT").last_price_ticks == 499_990  # before any mark
    feed.mark(T0 + 1, 500_005)
    ticker = feed.tickers.ticker("BTCUSDT")
    assert (ticker.last_price_ticks, ticker.prev_price_24h_ticks, ticker.high_price_24h_ticks,
            ticker.low_price_24h_ticks, ticker.prev_price_1h_ticks) == (500_005,) * 5
    assert ticker.price_24h_pcnt == 0 and ticker.volume_24h_lots == 0
    feed.trade(T0 + 2, 500_100)
    feed.mark(T0 + 3, 500_000)
    ticker = feed.tickers.ticker("BTCUSDT")
    assert (ticker.last_price_ticks, ticker.prev_price_24h_ticks, ticker.high_price_24h_ticks,
            ticker.low_price_24h_ticks) == (500_100,) * 4

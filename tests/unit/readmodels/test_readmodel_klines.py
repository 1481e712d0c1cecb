"""Candles from hand-built events: aggregation, boundaries, W/M alignment, gaps, queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from perpx.core.enums import Side
from perpx.core.events import IndexPriceUpdated, MarkPriceUpdated, PremiumIndexSampled, Trade
from perpx.readmodels.klines import Klines, PriceSource
from perpx.rows import Candle
from support.builders import btcusdt

SPEC = btcusdt()  # one tick on one lot = 10,000 atoms
MIN = 60_000
T0 = 1_700_006_400_000  # 2023-11-15 00:00 UTC (a Wednesday)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms(text: str) -> int:
    return (datetime.fromisoformat(text).replace(tzinfo=UTC) - EPOCH) // timedelta(milliseconds=1)


class Feed:
    """Numbers seq and trade ids so a test states only time, price and size."""

    def __init__(self) -> None:
        self.klines = Klines([SPEC])
        self.seq = 0

    def trade(self, ts_ms: int, price_ticks: int, qty_lots: int = 1,
              symbol: str = "BTCUSDT") -> None:
        self.seq += 1
        self.klines.apply(Trade(self.seq, ts_ms, self.seq, symbol, price_ticks, qty_lots,
                                Side.BUY, 10, 1, 11, 2, 0, 0))

    def mark(self, ts_ms: int, price_ticks: int) -> None:
        self.seq += 1
        self.klines.apply(MarkPriceUpdated(self.seq, ts_ms, "BTCUSDT", price_ticks))

    def index(self, ts_ms: int, price_ticks: int) -> None:
        self.seq += 1
        self.klines.apply(IndexPriceUpdated(self.seq, ts_ms, "BTCUSDT", price_ticks))

    def premium(self, ts_ms: int, rate: int) -> None:
        self.seq += 1
        self.klines.apply(PremiumIndexSampled(self.seq, ts_ms, "BTCUSDT", rate, rate, 0))


def test_trades_in_one_minute_make_one_candle_with_summed_volume_and_turnover() -> None:
    feed = Feed()
    for offset, price, qty in [(1_000, 500_000, 2), (20_000, 500_050, 1), (30_000, 499_900, 5),
                               (59_999, 500_010, 3)]:
        feed.trade(T0 + offset, price, qty)
    [candle] = feed.klines.candles("BTCUSDT", "1")
    assert candle == Candle(T0, 500_000, 500_050, 499_900, 500_010, volume_lots=11,
                            turnover_atoms=SPEC.notional_atoms(500_000, 2)
                            + SPEC.notional_atoms(500_050, 1)
                            + SPEC.notional_atoms(499_900, 5)
                            + SPEC.notional_atoms(500_010, 3),
                            updated_ms=T0 + 59_999)
    assert candle.turnover_atoms == (1_000_000 + 500_050 + 2_499_500 + 1_500_030) * 10_000


def test_a_trade_at_the_boundary_opens_the_next_candle() -> None:
    feed = Feed()
    feed.trade(T0 + 5 * MIN - 1, 100)
    feed.trade(T0 + 5 * MIN, 200)
    assert [c.start_ms for c in feed.klines.candles("BTCUSDT", "5")] == [T0 + 5 * MIN, T0]
    assert [c.start_ms for c in feed.klines.candles("BTCUSDT", "15")] == [T0]
    [both] = feed.klines.candles("BTCUSDT", "15")
    assert (both.open, both.close, both.volume_lots) == (100, 200, 2)


@pytest.mark.parametrize(
    ("interval", "first", "second", "starts"),
    [("W", "2024-03-10T23:59:59.999", "2024-03-11T00:00:00",
      ["2024-03-11T00:00:00", "2024-03-04T00:00:00"]),
     ("M", "2024-02-29T23:59:59.999", "2024-03-01T00:00:00",
      ["2024-03-01T00:00:00", "2024-02-01T00:00:00"]),
     ("D", "2024-02-29T23:59:59.999", "2024-03-01T00:00:00",
      ["2024-03-01T00:00:00", "2024-02-29T00:00:00"]),
     ("720", "2024-03-01T11:59:59.999", "2024-03-01T12:00:00",
      ["2024-03-01T12:00:00", "2024-03-01T00:00:00"])],
    ids=["a week turns on Monday 00:00 UTC", "a month turns on the 1st (leap February)",
         "a day turns at 00:00 UTC", "12 hours turn at noon UTC"])
def test_long_intervals_align_to_utc(interval: str, first: str, second: str,
                                     starts: list[str]) -> None:
    feed = Feed()
    feed.trade(ms(first), 100)
    feed.trade(ms(second), 101)
    assert [c.start_ms for c in feed.klines.candles("BTCUSDT", interval)] == [ms(s) for s in starts]


def test_a_whole_month_of_trades_sums_into_one_monthly_candle() -> None:
    feed = Feed()
    start = ms("2024-02-01T00:00:00")
    for day in range(29):
        feed.trade(start + day * 86_400_000 + 1, 1_000 + day, qty_lots=day + 1)
    [month] = feed.klines.candles("BTCUSDT", "M")
    assert (month.start_ms, month.open, month.high, month.low, month.close) == (
        start, 1_000, 1_028, 1_000, 1_028)
    assert month.volume_lots == sum(range(1, 30))
    assert len(feed.klines.candles("BTCUSDT", "D", limit=1000)) == 29
    assert len(feed.klines.candles("BTCUSDT", "W")) == 5  # Feb 2024 touches five ISO weeks


def test_minutes_without_trades_carry_the_close_forward_with_no_volume() -> None:
    """#13 C3: Bybit's kline has a candle for every minute; a quiet one is flat at the
    previous close with volume 0 (this test asserted the opposite before: no trade, no
    candle). The current minute has its candle from its first second."""
    feed = Feed()
    feed.trade(T0, 100)
    feed.trade(T0 + 3 * MIN + 5_000, 103)
    feed.index(T0 + 5 * MIN, 1)  # the clock moves on: minutes 4 and 5 are quiet
    candles = feed.klines.candles("BTCUSDT", "1")
    assert [(c.start_ms, c.open, c.high, c.low, c.close, c.volume_lots) for c in candles] == [
        (T0 + 5 * MIN, 103, 103, 103, 103, 0), (T0 + 4 * MIN, 103, 103, 103, 103, 0),
        (T0 + 3 * MIN, 103, 103, 103, 103, 1), (T0 + 2 * MIN, 100, 100, 100, 100, 0),
        (T0 + MIN, 100, 100, 100, 100, 0), (T0, 100, 100, 100, 100, 1)]
    assert feed.klines.current("BTCUSDT", "1", T0 + 6 * MIN) == Candle(T0 + 6 * MIN, 103, 103,
                                                                       103, 103)


def test_before_the_first_trade_last_price_candles_follow_the_mark() -> None:
    """#13 C3: a new listing has last-price candles at once, at the mark, volume 0; the first
    trade takes over and the mark no longer moves them. Restored from its state, the model
    still knows the symbol has traded."""
    feed = Feed()
    assert feed.klines.candles("BTCUSDT", "1") == []
    feed.mark(T0 + 1_000, 500)
    feed.mark(T0 + 2_000, 510)
    feed.mark(T0 + MIN + 1_000, 505)
    assert not feed.klines.has_traded("BTCUSDT")
    assert [(c.start_ms, c.open, c.high, c.low, c.close, c.volume_lots)
            for c in feed.klines.candles("BTCUSDT", "1")] == [
        (T0 + MIN, 505, 505, 505, 505, 0), (T0, 500, 510, 500, 510, 0)]
    feed.trade(T0 + MIN + 2_000, 520)
    restored = Klines.from_state([SPEC], feed.klines.to_state())
    for klines in (feed.klines, restored):
        assert klines.has_traded("BTCUSDT")
        klines.apply(MarkPriceUpdated(99, T0 + 2 * MIN, "BTCUSDT", 400))
        assert [(c.start_ms, c.open, c.high, c.low, c.close, c.volume_lots)
                for c in klines.candles("BTCUSDT", "1", limit=2)] == [
            (T0 + 2 * MIN, 520, 520, 520, 520, 0), (T0 + MIN, 505, 520, 505, 520, 1)]


def test_queries_are_newest_first_and_anchor_at_start_when_given() -> None:
    feed = Feed()
    for minute in range(10):
        feed.trade(T0 + minute * MIN, 100 + minute)
    starts = lambda **kw: [c.start_ms for c in feed.klines.candles("BTCUSDT", "1", **kw)]  # noqa: E731
    assert starts(limit=3) == [T0 + 9 * MIN, T0 + 8 * MIN, T0 + 7 * MIN]
    assert starts(end_ms=T0 + 4 * MIN + 1, limit=2) == [T0 + 4 * MIN, T0 + 3 * MIN]
    assert starts(start_ms=T0 + 1, limit=2) == [T0 + 2 * MIN, T0 + MIN]  # start is inclusive
    assert starts(start_ms=1, limit=1) == [T0]  # Bybit: start=9999&limit=1 is the earliest
    assert starts(start_ms=T0 + 2 * MIN, end_ms=T0 + 3 * MIN) == [T0 + 3 * MIN, T0 + 2 * MIN]
    assert starts(start_ms=T0 + 20 * MIN) == []
    assert feed.klines.candles("ETHUSDT", "1") == []


def test_mark_candles_fill_quiet_periods_flat_at_the_previous_close_up_to_now() -> None:
    feed = Feed()
    feed.mark(T0 + 10, 500)
    feed.mark(T0 + 20, 510)
    feed.mark(T0 + 3 * MIN + 5, 490)
    feed.trade(T0 + 5 * MIN + 7, 495)  # any event moves time on
    candles = feed.klines.candles("BTCUSDT", "1", source=PriceSource.MARK)
    assert [(c.start_ms - T0) // MIN for c in candles] == [5, 4, 3, 2, 1, 0]
    assert candles[-1] == Candle(T0, 500, 510, 500, 510, updated_ms=T0 + 20)
    assert candles[-2] == Candle(T0 + MIN, 510, 510, 510, 510)
    assert (candles[2].open, candles[2].close) == (490, 490)
    assert candles[0] == Candle(T0 + 5 * MIN, 490, 490, 490, 490)
    assert [c.start_ms for c in feed.klines.candles(
        "BTCUSDT", "1", source=PriceSource.MARK, start_ms=T0 + 1, limit=2)] == [
        T0 + 2 * MIN, T0 + MIN]
    assert [c.start_ms for c in feed.klines.candles(
        "BTCUSDT", "1", source=PriceSource.MARK, end_ms=T0 + 2 * MIN, limit=2)] == [
        T0 + 2 * MIN, T0 + MIN]


def test_index_and_premium_candles_follow_their_own_events() -> None:
    feed = Feed()
    feed.index(T0 + 1, 700)
    feed.index(T0 + 2, 650)
    feed.premium(T0 + MIN, 100_000)
    feed.premium(T0 + 3 * MIN, -20_000)
    [index] = feed.klines.candles("BTCUSDT", "5", source=PriceSource.INDEX)
    assert (index.open, index.high, index.low, index.close) == (700, 700, 650, 650)
    premium = feed.klines.candles("BTCUSDT", "1", source=PriceSource.PREMIUM_INDEX)
    assert [(c.start_ms, c.close) for c in premium] == [(T0 + 3 * MIN, -20_000),
                                                        (T0 + MIN, 100_000)]  # no filler
    assert feed.klines.candles("BTCUSDT", "1") == []  # no trade, no last-price candle


def test_latest_is_the_current_candle_for_the_stream() -> None:
    feed = Feed()
    feed.trade(T0, 100)
    feed.trade(T0 + MIN, 101, qty_lots=4)
    latest = feed.klines.latest("BTCUSDT", "1")
    assert latest is not None
    assert (latest.start_ms, latest.close, latest.volume_lots) == (T0 + MIN, 101, 4)
    assert feed.klines.latest("BTCUSDT", "1", PriceSource.MARK) is None


def test_bad_interval_and_limit_are_refused() -> None:
    feed = Feed()
    with pytest.raises(ValueError, match="interval"):
        feed.klines.candles("BTCUSDT", "2")
    with pytest.raises(ValueError, match="limit"):
        feed.klines.candles("BTCUSDT", "1", limit=1001)

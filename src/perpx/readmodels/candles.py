"""Candle queries over closed candles stored elsewhere (a table) plus the open one in memory.

The service keeps only each track's open candle in memory (`Klines(keep_closed=0)`); every
closed one is a row of the history's ``klines`` table. `select_candles` answers
GET /v5/market/kline and its mark/index/premium-index variants from both, with exactly the
semantics of `Klines.candles` (see `perpx.readmodels.klines`): `start`/`end` bound the candles'
start times (inclusive), newest first; with `start` the `limit` candles from `start` onward,
otherwise the `limit` latest up to `end`; last-price, mark and index tracks read a quiet
period as flat at the previous close (no volume), from the first candle to now, as Bybit
serves them (issue #13 C3); premium-index minutes without a sample stay gaps.

The open candle is always the newest of its track (the engine's clock never runs back), so
every stored row starts before it.
"""

from __future__ import annotations

from perpx.readmodels.klines import MAX_LIMIT
from perpx.readmodels.period import (
    period_start,
    periods_in_window,
)
from perpx.rows import Candle, ClosedCandles


def select_candles(closed: ClosedCandles, current: Candle | None, interval: str, *,
                   filled: bool, start_ms: int | None, end_ms: int | None, limit: int,
                   now_ms: int) -> list[Candle]:
    """Return the candles of one track newest first: stored closed ones plus `current`."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be in [1, {MAX_LIMIT}], was {limit}")
    if filled:
        return _filled(closed, current, interval, start_ms, end_ms, limit, now_ms)
    if current is not None and not ((start_ms is None or current.start_ms >= start_ms)
                                    and (end_ms is None or current.start_ms <= end_ms)):
        current = None
    if start_ms is not None:
        rows = closed.between(start_ms, end_ms, limit, newest_first=False)
        if current is not None and len(rows) < limit:
            rows.append(current)
        rows.reverse()
        return rows
    head = [] if current is None else [current]
    return head + closed.between(None, end_ms, limit - len(head), newest_first=True)


def _filled(closed: ClosedCandles, current: Candle | None, interval: str,
            start_ms: int | None, end_ms: int | None, limit: int,
            now_ms: int) -> list[Candle]:
    oldest = closed.first() or current
    if oldest is None:
        return []
    # 1. The periods asked for, from the first candle to now (shared with the in-memory klines).
    first = oldest.start_ms
    if current is not None:
        newest = current.start_ms
    else:
        newest = closed.between(None, None, 1, newest_first=True)[0].start_ms
    last = max(newest, period_start(interval, now_ms))
    periods = periods_in_window(interval, first, last, start_ms, end_ms, limit)
    if not periods:
        return []
    # 2. The candles in those periods, and the one before them for a leading quiet period.
    bars = {c.start_ms: c for c in closed.between(periods[0], periods[-1], limit,
                                                  newest_first=False)}
    if current is not None:
        bars[current.start_ms] = current
    # The open candle is the newest: when it starts before the window, it is the one.
    if current is not None and current.start_ms < periods[0]:
        previous: Candle | None = current
    else:
        previous = closed.before(periods[0])
    # 3. Walk forward: a period without a candle is flat at the previous close.
    out: list[Candle] = []
    for period in periods:
        bar = bars.get(period)
        if bar is None:
            if previous is None:  # before the first candle: periods start at it, so never
                raise ValueError(f"candles: no close before {period}")
            close = previous.close
            bar = Candle(period, close, close, close, close)
        else:
            previous = bar
        out.append(bar)
    out.reverse()
    return out

"""Replay OHLC candle files as index observations: a path open → extremes → close per candle.

Each candle becomes observations every `step_ms` from its open time: the price walks in
straight lines from the open to the extreme nearer the open, then to the other extreme, then
to the close, each waypoint hit exactly on a sample (with four or more samples per candle) and
every price rounded to the tick. When both extremes are equally far from the open, the one
on the far side of the close comes first, so the path ends moving toward the close.

Two header shapes are understood (the files in tests/data/prices):

- ``open_time,open,high,low,close,volume`` with ``2023-03-01 00:00:00+00:00`` timestamps;
- ``timestamp,open,close,volume,unix_timestamp,high,low`` with naive UTC timestamps and
  epoch seconds (which must agree with the timestamp).

Prices are parsed as `Decimal` from the file's strings; no float touches them.
"""

from __future__ import annotations

import csv
from collections.abc import Generator, Iterator
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

from perpx.feeds.base import DECIMAL_PRECISION, IndexObservation, round_to_tick

_TIME_COLUMNS = ("open_time", "timestamp")
_PRICE_COLUMNS = ("open", "high", "low", "close")


class Candle(NamedTuple):
    """One OHLC candle; `open_ms` is its start (UTC epoch ms)."""

    open_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal


def _epoch_ms(text: str) -> int:
    """Parse an ISO timestamp (naive means UTC) into epoch milliseconds, exactly."""
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000 + delta.microseconds // 1_000


def read_candles(path: str | Path) -> Generator[Candle, None, None]:
    """Yield the candles of a CSV file in file order, checking each one's shape.

    Raises `ValueError` on an unknown header, a malformed price, a candle whose high and low
    do not bracket its open and close, or times that do not rise.
    """
    with Path(path).open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        time_column = next((c for c in _TIME_COLUMNS if c in columns), None)
        missing = [c for c in _PRICE_COLUMNS if c not in columns]
        if time_column is None or missing:
            raise ValueError(f"{path}: unknown candle header {columns}")
        has_unix = "unix_timestamp" in columns
        previous_ms: int | None = None
        for line, row in enumerate(reader, start=2):
            open_ms = _epoch_ms(row[time_column])
            if has_unix and int(row["unix_timestamp"]) * 1_000 != open_ms:
                raise ValueError(f"{path}:{line}: unix_timestamp disagrees with {time_column}")
            if previous_ms is not None and open_ms <= previous_ms:
                raise ValueError(f"{path}:{line}: candle times must rise")
            previous_ms = open_ms
            try:
                o, h, low, c = (Decimal((row[name] or "").strip()) for name in _PRICE_COLUMNS)
            except ArithmeticError as error:
                raise ValueError(f"{path}:{line}: malformed price") from error
            if not all(price.is_finite() for price in (o, h, low, c)):
                raise ValueError(f"{path}:{line}: prices must be finite numbers")
            if not (0 < low <= min(o, c) and h >= max(o, c)):
                raise ValueError(f"{path}:{line}: high/low do not bracket open/close")
            yield Candle(open_ms, o, h, low, c)


def _waypoints(candle: Candle) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """Return (open, first extreme, second extreme, close): the nearer extreme first."""
    to_high = candle.high - candle.open
    to_low = candle.open - candle.low
    if to_high < to_low or (to_high == to_low and candle.close < candle.open):
        return candle.open, candle.high, candle.low, candle.close
    return candle.open, candle.low, candle.high, candle.close


def candle_path(candle: Candle, candle_ms: int, step_ms: int,
                tick_size: str) -> list[tuple[int, str]]:
    """Return the candle's `(ts_ms, price)` samples every `step_ms` within `candle_ms`.

    With n = ⌈candle_ms / step_ms⌉ samples, waypoint j of (open, extreme, extreme, close)
    sits on sample round(j·(n−1)/3) and the samples between are linear interpolations.
    Fewer than four samples cannot show all four: 1 gives the open, 2 open and close, 3 open,
    the first extreme and close.
    """
    if step_ms <= 0 or candle_ms <= 0:
        raise ValueError("candle_path: candle and step lengths must be positive")
    count = -(-candle_ms // step_ms)
    points = _waypoints(candle)
    if count < 4:
        chosen = {1: (0,), 2: (0, 3), 3: (0, 1, 3)}[count]
        prices = [points[j] for j in chosen]
    else:
        anchors = [_nearest(Fraction(j * (count - 1), 3)) for j in range(4)]
        prices = []
        with localcontext() as context:
            context.prec = DECIMAL_PRECISION
            for k in range(count):
                segment = next(j for j in range(3) if k <= anchors[j + 1])
                start, end = anchors[segment], anchors[segment + 1]
                a, b = points[segment], points[segment + 1]
                prices.append(a + (b - a) * (k - start) / (end - start))
    return [(candle.open_ms + k * step_ms, round_to_tick(price, tick_size))
            for k, price in enumerate(prices)]


def _nearest(value: Fraction) -> int:
    """Round a non-negative fraction to the nearest integer, halves up."""
    return int((2 * value.numerator + value.denominator) // (2 * value.denominator))


class CandleReplay:
    """A `PriceFeed` replaying a candle CSV as one symbol's index, a sample every `step_ms`.

    `candle_ms` is the candle length; without it, it is the gap between the first two
    candles. Only candles opening in [`start_ms`, `end_ms`) are replayed when those are set.
    """

    def __init__(self, path: str | Path, symbol: str, tick_size: str, *, step_ms: int = 15_000,
                 candle_ms: int | None = None, start_ms: int | None = None,
                 end_ms: int | None = None) -> None:
        if step_ms <= 0:
            raise ValueError("CandleReplay: step_ms must be positive")
        self.path = Path(path)
        self.symbol = symbol
        self.tick_size = tick_size
        self.step_ms = step_ms
        self.candle_ms = candle_ms if candle_ms is not None else self._infer_candle_ms()
        self.start_ms = start_ms
        self.end_ms = end_ms

    def _infer_candle_ms(self) -> int:
        candles = read_candles(self.path)
        first = next(candles, None)
        second = next(candles, None)
        candles.close()
        if first is None or second is None:
            raise ValueError(f"{self.path}: two candles are needed to infer their length")
        return second.open_ms - first.open_ms

    def candles(self) -> Iterator[Candle]:
        """Yield the candles inside the replay's time window."""
        for candle in read_candles(self.path):
            if self.start_ms is not None and candle.open_ms < self.start_ms:
                continue
            if self.end_ms is not None and candle.open_ms >= self.end_ms:
                return
            yield candle

    def __iter__(self) -> Iterator[IndexObservation]:
        """Yield every candle's path in time order."""
        for candle in self.candles():
            for ts_ms, price in candle_path(candle, self.candle_ms, self.step_ms,
                                            self.tick_size):
                yield IndexObservation(ts_ms, self.symbol, price)

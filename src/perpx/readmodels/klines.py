"""Candles per symbol and Bybit interval, for the last, mark, index and premium-index prices.

Built from events only, so replaying a journal rebuilds them: `Trade` feeds the last-price
candles and their volume (lots) and turnover (quote atoms), `MarkPriceUpdated` the mark,
`IndexPriceUpdated` the index and `PremiumIndexSampled` the premium index (in 10**-8).
Periods are those of `perpx.readmodels.period` (UTC; W from Monday; M by calendar month).

Which periods have a candle follows Bybit:
- last price: every period from the first candle to now has one (#13 C3): a period without a
  trade reads as flat at the previous close with volume 0, synthesized at read time (nothing
  is stored for it, so the answer is the same before and after a restart), and the current
  period's candle is there from its first second. Before the symbol's first trade the
  last-price candles follow the mark price with volume 0 (the ticker's last price is the
  mark until then, `perpx.readmodels.tickers`), so a new listing has candles at once;
- mark and index: the price holds until it changes, and the engine reports only changes, so a
  period with no update between the first candle and now reads as flat at the previous close
  (O = H = L = C, as Bybit's mark and index candles are never missing);
- premium index: one sample per minute while ticks arrive; a minute without a sample was not
  measured, so it has no candle.

Queries mirror GET /v5/market/kline: `start`/`end` bound the candles' start times (inclusive),
newest first; with `start` the `limit` candles from `start` onward (Bybit: ``start=9999&limit=1``
returns the earliest candle), otherwise the `limit` latest up to `end`. The current candle is
included. Events are expected in seq order, whose times do not go back (the sequencer stamps
them); an older one still lands in its own period.

Kept in full (the default), the model answers every query from memory. Bounded
(`keep_closed=N`), a track keeps its open candle and the N newest closed ones; each candle that
closes (a later period got its first update) is handed to the `sink`, if one is set, so a
table can hold the closed candles and `perpx.readmodels.candles` merge them with the open one.

`to_state()` / `Klines.from_state()` export and rebuild the candles in memory as plain data
(`KlinesState`), for the read-side checkpoint (`perpx.readside`).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable
from enum import StrEnum
from typing import Protocol

import msgspec

from perpx.core.events import (
    Event,
    IndexPriceUpdated,
    MarkPriceUpdated,
    PremiumIndexSampled,
    Trade,
)
from perpx.core.instruments import InstrumentSpec
from perpx.readmodels.period import (
    KLINE_INTERVALS,
    next_period_start,
    period_start,
    periods_in_window,
)
from perpx.rows import Candle

DEFAULT_LIMIT = 200
MAX_LIMIT = 1000


class PriceSource(StrEnum):
    """Which price a candle follows (Bybit's kline, mark-, index- and premium-index-price-kline)."""

    LAST = "last"
    MARK = "mark"
    INDEX = "index"
    PREMIUM_INDEX = "premiumIndex"


# Sources whose value holds between updates, so a quiet period is a flat candle (the last
# price too: Bybit's kline has a candle for every period, volume 0 when nothing traded).
HOLDS_VALUE: frozenset[PriceSource] = frozenset({PriceSource.LAST, PriceSource.MARK,
                                                 PriceSource.INDEX})
# The members as module constants for the fold: on 3.11 each `PriceSource.X` read goes
# through the enum class's `__getattr__` (~700 instructions; a trade folds one, issue #15).
_LAST = PriceSource.LAST
_MARK = PriceSource.MARK
_INDEX = PriceSource.INDEX
_PREMIUM_INDEX = PriceSource.PREMIUM_INDEX


Bar = tuple[int, int, int, int, int, int, int, int]  # start, O, H, L, C, volume, turnover, updated


class TrackState(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """One track's candles in memory as data (bars in the track's own order)."""

    starts: list[int]
    bars: list[Bar]
    current: int | None  # start of the cached current bar
    current_end_ms: int


class KlinesState(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """A `Klines` model as data: per (source, symbol), one track per Bybit interval."""

    now_ms: int
    tracks: list[tuple[PriceSource, str, list[TrackState]]]


class CandleSink(Protocol):
    """Where a bounded `Klines` hands each candle that closed."""

    def candle_closed(self, source: str, symbol: str, interval: str, candle: Candle) -> None:
        """Take a closed candle (it will not change again)."""


class _Bar:
    """A candle being built: mutable, so an update costs no allocation."""

    __slots__ = ("close", "high", "low", "open", "start_ms", "turnover_atoms", "updated_ms",
                 "volume_lots")

    def __init__(self, start_ms: int, ts_ms: int, price: int) -> None:
        self.start_ms = start_ms
        self.open = self.high = self.low = self.close = price
        self.volume_lots = 0
        self.turnover_atoms = 0
        self.updated_ms = ts_ms

    def freeze(self) -> Candle:
        return Candle(self.start_ms, self.open, self.high, self.low, self.close,
                      self.volume_lots, self.turnover_atoms, self.updated_ms)


class _Track:
    """One symbol's candles of one source at one interval, by start time."""

    __slots__ = ("bars", "current", "current_end_ms", "interval", "keep_closed", "starts")

    def __init__(self, interval: str, keep_closed: int | None = None) -> None:
        self.interval = interval
        self.keep_closed = keep_closed  # None: every closed bar
        self.starts: list[int] = []  # ascending
        self.bars: dict[int, _Bar] = {}
        self.current: _Bar | None = None  # the bar of the latest period, cached
        self.current_end_ms = 0

    def roll(self, ts_ms: int, price: int) -> tuple[_Bar, _Bar | None]:
        """Return the bar for an update outside the open candle's period, and the closed one.

        The closed bar is the open candle a later period replaced (None when the update is
        older than it); `Klines._add` then updates the returned bar.
        """
        closed = self.current if self.starts and ts_ms >= self.current_end_ms else None
        return self._bar_for(ts_ms, price), closed

    def _bar_for(self, ts_ms: int, price: int) -> _Bar:
        start = period_start(self.interval, ts_ms)
        bar = self.bars.get(start)
        if bar is None:
            if self.keep_closed is not None and self.starts and start < self.starts[-1]:
                # Its period may have left memory already: the engine's clock never runs
                # back, so this is a caller's bug, not a state to patch up.
                raise ValueError(f"klines: an update at {ts_ms} is older than the open "
                                 f"candle at {self.starts[-1]}")
            bar = _Bar(start, ts_ms, price)
            self.bars[start] = bar
            if not self.starts or self.starts[-1] < start:
                self.starts.append(start)
            else:
                insort(self.starts, start)
            if self.keep_closed is not None:
                while len(self.starts) > self.keep_closed + 1:
                    del self.bars[self.starts.pop(0)]
        if self.starts[-1] == start:
            self.current = bar
            self.current_end_ms = next_period_start(self.interval, start)
        return bar

    def to_state(self) -> TrackState:
        return TrackState(
            list(self.starts),
            [(b.start_ms, b.open, b.high, b.low, b.close, b.volume_lots, b.turnover_atoms,
              b.updated_ms) for b in self.bars.values()],
            None if self.current is None else self.current.start_ms, self.current_end_ms)

    def load(self, state: TrackState) -> None:
        """Take the candles of `to_state()`; raise ValueError on an inconsistent state."""
        bars: dict[int, _Bar] = {}
        for start, open_, high, low, close, volume, turnover, updated in state.bars:
            bar = bars[start] = _Bar(start, updated, open_)
            bar.high, bar.low, bar.close = high, low, close
            bar.volume_lots, bar.turnover_atoms = volume, turnover
        if (sorted(bars) != state.starts or len(bars) != len(state.bars)
                or (self.keep_closed is not None and len(bars) > self.keep_closed + 1)
                or (state.current is not None and state.current not in bars)):
            raise ValueError(f"klines state: an inconsistent {self.interval} track")
        self.starts = list(state.starts)
        self.bars = bars
        self.current = None if state.current is None else bars[state.current]
        self.current_end_ms = state.current_end_ms

    def latest(self) -> Candle | None:
        return self.bars[self.starts[-1]].freeze() if self.starts else None

    def select(self, start_ms: int | None, end_ms: int | None, limit: int) -> list[Candle]:
        """Existing candles only, newest first."""
        low = 0 if start_ms is None else bisect_left(self.starts, start_ms)
        high = len(self.starts) if end_ms is None else bisect_right(self.starts, end_ms)
        if start_ms is not None:
            chosen = self.starts[low:min(high, low + limit)]
        else:
            chosen = self.starts[max(low, high - limit):high]
        return [self.bars[start].freeze() for start in reversed(chosen)]

    def select_filled(self, start_ms: int | None, end_ms: int | None, limit: int,
                      now_ms: int) -> list[Candle]:
        """Every period from the first candle to now, a quiet one flat at the previous close."""
        if not self.starts:
            return []
        interval = self.interval
        first = self.starts[0]
        last = max(self.starts[-1], period_start(interval, now_ms))
        periods = periods_in_window(interval, first, last, start_ms, end_ms, limit)
        return [self._candle_or_flat(period) for period in reversed(periods)]

    def _candle_or_flat(self, start_ms: int) -> Candle:
        bar = self.bars.get(start_ms)
        if bar is not None:
            return bar.freeze()
        previous = self.bars[self.starts[bisect_left(self.starts, start_ms) - 1]].close
        return Candle(start_ms, previous, previous, previous, previous)


# `Klines._add` reads the open candles of the minute's track (the first) for all of them.
assert KLINE_INTERVALS[0] == "1"
# The events `Klines.apply` does more for than move the clock.
_PRICED: frozenset[type[Event]] = frozenset({
    Trade, MarkPriceUpdated, IndexPriceUpdated, PremiumIndexSampled})


class Klines:
    """Candles of every symbol, source and interval, fed by `apply(event)`."""

    def __init__(self, specs: Iterable[InstrumentSpec], *, keep_closed: int | None = None,
                 sink: CandleSink | None = None) -> None:
        if keep_closed is not None and keep_closed < 0:
            raise ValueError(f"keep_closed must be at least 0, was {keep_closed}")
        self.specs = {spec.symbol: spec for spec in specs}
        self.now_ms = 0  # the latest event time: "now" for the filled sources
        self.keep_closed = keep_closed
        self.sink = sink
        self._tracks: dict[tuple[PriceSource, str], tuple[_Track, ...]] = {}

    def _tracks_of(self, source: PriceSource, symbol: str) -> tuple[_Track, ...]:
        tracks = self._tracks.get((source, symbol))
        if tracks is None:
            tracks = tuple(_Track(interval, self.keep_closed) for interval in KLINE_INTERVALS)
            self._tracks[(source, symbol)] = tracks
        return tracks

    def to_state(self) -> KlinesState:
        """Return the candles in memory as data (the sink and the bound are configuration)."""
        return KlinesState(self.now_ms, [
            (source, symbol, [track.to_state() for track in tracks])
            for (source, symbol), tracks in self._tracks.items()])

    @classmethod
    def from_state(cls, specs: Iterable[InstrumentSpec], state: KlinesState, *,
                   keep_closed: int | None = None, sink: CandleSink | None = None) -> Klines:
        """Rebuild a model from `to_state()`; raise ValueError on a state it cannot hold."""
        klines = cls(specs, keep_closed=keep_closed, sink=sink)
        klines.now_ms = state.now_ms
        for source, symbol, tracks in state.tracks:
            if symbol not in klines.specs or len(tracks) != len(KLINE_INTERVALS) \
                    or (source, symbol) in klines._tracks:
                raise ValueError(f"klines state: unexpected {source} track of {symbol!r}")
            for track, found in zip(klines._tracks_of(source, symbol), tracks, strict=True):
                track.load(found)
        return klines

    def apply(self, event: Event) -> None:
        """Fold one event into the candles; events that carry no price are only a clock tick."""
        if event.ts_ms > self.now_ms:  # `max` of two ints, without the builtin's call
            self.now_ms = event.ts_ms
        if isinstance(event, Trade):
            turnover = self.specs[event.symbol].notional_atoms(event.price_ticks, event.qty_lots)
            self._add(_LAST, event.symbol, event.ts_ms, event.price_ticks,
                      event.qty_lots, turnover)
        elif isinstance(event, MarkPriceUpdated):
            self._add(_MARK, event.symbol, event.ts_ms, event.price_ticks)
            if not self.has_traded(event.symbol):
                self._add(_LAST, event.symbol, event.ts_ms, event.price_ticks)
        elif isinstance(event, IndexPriceUpdated):
            self._add(_INDEX, event.symbol, event.ts_ms, event.price_ticks)
        elif isinstance(event, PremiumIndexSampled):
            self._add(_PREMIUM_INDEX, event.symbol, event.ts_ms, event.premium_rate)

    def apply_all(self, events: list[Event]) -> None:
        """Fold a command's events in, in order, exactly as `apply` on each would.

        Events that carry no price only move the clock: done here without `apply`'s call
        and type tests (a gateway folds every command; `docs/decisions.md`, issue #15).
        """
        for event in events:
            if type(event) in _PRICED:
                self.apply(event)
            elif event.ts_ms > self.now_ms:
                self.now_ms = event.ts_ms

    def has_traded(self, symbol: str) -> bool:
        """Tell whether `symbol` has had a trade (else its last-price candles follow the mark).

        Read from the candles themselves, so a checkpoint needs nothing more: after the first
        trade only trades open last-price candles, so the newest one-minute candle has volume;
        before it, every last-price candle came from the mark and has none.
        """
        tracks = self._tracks.get((_LAST, symbol))
        if tracks is None:
            return False
        minute = tracks[0]
        return bool(minute.starts) and minute.bars[minute.starts[-1]].volume_lots > 0

    def _add(self, source: PriceSource, symbol: str, ts_ms: int, price: int,
             volume_lots: int = 0, turnover_atoms: int = 0) -> None:
        sink = self.sink
        tracks = self._tracks_of(source, symbol)
        # A source's tracks of a symbol take the same updates, so each one's open candle is
        # the period of the same latest update: when the minute's holds `ts_ms`, so does
        # every longer interval's (each period is whole minutes, UTC-aligned), and no track
        # needs its own test (13 per trade; issue #15).
        minute = tracks[0]
        first = minute.current
        fits = first is not None and first.start_ms <= ts_ms < minute.current_end_ms
        for track in tracks:
            bar = track.current
            if bar is None or (not fits and not bar.start_ms <= ts_ms < track.current_end_ms):
                bar, closed = track.roll(ts_ms, price)
                if closed is not None and sink is not None:
                    sink.candle_closed(source.value, symbol, track.interval, closed.freeze())
            # The one rule of a candle's update, here and nowhere else, inline rather than a
            # method: a trade updates every interval's track (13), and a gateway folds every
            # command (`docs/decisions.md`, issue #15). A closed candle handed on above is
            # never this bar (its period is over).
            if ts_ms >= bar.updated_ms:  # an older event cannot move the close
                bar.close = price
                bar.updated_ms = ts_ms
            if price > bar.high:  # `max` and `min` of ints, without the builtins' calls
                bar.high = price
            if price < bar.low:
                bar.low = price
            bar.volume_lots += volume_lots
            bar.turnover_atoms += turnover_atoms

    def _track(self, source: PriceSource, symbol: str, interval: str) -> _Track | None:
        if interval not in KLINE_INTERVALS:
            raise ValueError(f"interval must be one of {', '.join(KLINE_INTERVALS)}, "
                             f"was {interval!r}")
        tracks = self._tracks.get((source, symbol))
        return None if tracks is None else tracks[KLINE_INTERVALS.index(interval)]

    def candles(self, symbol: str, interval: str, *, source: PriceSource = PriceSource.LAST,
                start_ms: int | None = None, end_ms: int | None = None,
                limit: int = DEFAULT_LIMIT) -> list[Candle]:
        """Return candles newest first, as GET /v5/market/kline and its mark/index variants.

        A bounded model answers from the candles it still holds only; the service merges the
        closed ones from its table instead (`perpx.readmodels.candles`).
        """
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be in [1, {MAX_LIMIT}], was {limit}")
        track = self._track(source, symbol, interval)
        if track is None:
            return []
        if source in HOLDS_VALUE:
            return track.select_filled(start_ms, end_ms, limit, self.now_ms)
        return track.select(start_ms, end_ms, limit)

    def latest(self, symbol: str, interval: str,
               source: PriceSource = PriceSource.LAST) -> Candle | None:
        """Return the newest candle with an update, if any."""
        track = self._track(source, symbol, interval)
        return None if track is None else track.latest()

    def current(self, symbol: str, interval: str, now_ms: int,
                source: PriceSource = PriceSource.LAST) -> Candle | None:
        """Return the candle of the period at `now_ms` (what the kline stream pushes), if any.

        For a source that holds its value, a period not updated yet is flat at the previous
        close (Bybit pushes the new candle from the period's first second).
        """
        candle = self.latest(symbol, interval, source)
        if candle is None or source not in HOLDS_VALUE:
            return candle
        start = period_start(interval, now_ms)
        if candle.start_ms >= start:
            return candle
        close = candle.close
        return Candle(start, close, close, close, close)

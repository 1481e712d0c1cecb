"""Bybit-style tickers per symbol: last price, rolling 24-hour statistics, mark, index, funding, OI.

Built from events only. Time is the latest event's `ts_ms`; a query reads the window as of then.

The 24-hour window is exact at minute resolution: trades fall into one-minute buckets (UTC
minutes), and the window is the current minute and the 1,439 before it. A bucket leaves the
window when time reaches its minute's start + 24 h, so a trade at 10:00:00.000 or 10:00:59.999
counts until 09:59:59.999 the next day and is gone at 10:00:00.000. Volume and turnover are
running sums that lose a bucket as it leaves; high and low are kept in monotonic queues (at most
one entry per minute), so a trade and an eviction each cost O(1) amortized.

- `prev_price_24h_ticks` is the last price before the window (the close of the newest bucket
  that left it); for a symbol whose first trade is inside the window, that first trade's price.
  `prev_price_1h_ticks` likewise for the last 60 minutes. `price_24h_pcnt` is
  ``(last - prev24h) / prev24h`` as an exact `Fraction` (Bybit prints it to 6 decimals).
- With no trade in the window, high and low are the last price (the price held all day).
- Before the symbol's first trade, the last price is the mark price (the index before the
  first mark), and prev 24 h / prev 1 h / high / low are that price too (#13 C4): Bybit lists
  a new symbol with a price, so a ticker is never blank once prices flow.
- `funding_rate` is the predicted rate of the running interval (the latest
  `PremiumIndexSampled`); before the first sample, and when funding settles, it is what an
  interval with no sample settles at, the interest alone (the engine's own reset).
  `next_funding_ms` is the next timestamp of the symbol's funding grid after now.
- Open interest (one side, in lots) comes from `PositionChanged` through `OpenInterest`,
  which this model owns (`tickers.open_interest.history(...)` serves the OI endpoint); its value
  is taken at the mark.

`to_state()` / `Tickers.from_state()` export and rebuild the model as plain data
(`TickersState`), for the read-side checkpoint (`perpx.readside`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

import msgspec

from perpx.core.events import (
    Event,
    FundingIntervalSet,
    FundingSettled,
    IndexPriceUpdated,
    MarkPriceUpdated,
    PositionChanged,
    PremiumIndexSampled,
    Trade,
)
from perpx.core.instruments import InstrumentSpec
from perpx.core.numbers import RATE_ONE, div_round
from perpx.core.prices.funding import funding_rate, next_funding_after
from perpx.readmodels.open_interest import OpenInterest, OpenInterestState
from perpx.readmodels.period import MINUTE_MS

WINDOW_MINUTES = 24 * 60
HOUR_MINUTES = 60


@dataclass(frozen=True, slots=True)
class Ticker:
    """One symbol's ticker (GET /v5/market/tickers, tickers.{symbol}); None where unknown yet."""

    symbol: str
    ts_ms: int
    last_price_ticks: int | None
    high_price_24h_ticks: int | None
    low_price_24h_ticks: int | None
    prev_price_24h_ticks: int | None
    price_24h_pcnt: Fraction
    volume_24h_lots: int
    turnover_24h_atoms: int
    prev_price_1h_ticks: int | None
    mark_price_ticks: int | None
    index_price_ticks: int | None
    funding_rate: int  # predicted rate of the running interval, 10**-8
    next_funding_ms: int
    funding_interval_min: int
    open_interest_lots: int
    open_interest_value_atoms: int | None  # at the mark; None before the first mark

    @property
    def price_24h_pcnt_rate(self) -> int:
        """Return `price_24h_pcnt` in 10**-8, to the nearest (a published figure, not money)."""
        return div_round(self.price_24h_pcnt.numerator * RATE_ONE,
                         self.price_24h_pcnt.denominator)


class RollingDayState(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """A `RollingDay` as data."""

    buckets: list[tuple[int, int, int, int, int]]  # minute, open, close, volume, turnover
    highs: list[tuple[int, int]]
    lows: list[tuple[int, int]]
    price_before: int | None
    volume_lots: int
    turnover_atoms: int


class SymbolTickerState(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """One symbol's ticker state as data."""

    symbol: str
    day: RollingDayState
    last: int | None
    mark: int | None
    index: int | None
    funding_interval_min: int
    funding_rate: int
    next_funding_ms: int | None


class TickersState(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """A `Tickers` model as data; symbols in the model's order."""

    now_ms: int
    open_interest: OpenInterestState
    symbols: list[SymbolTickerState]


class _Bucket:
    """The trades of one UTC minute."""

    __slots__ = ("close", "minute", "open", "turnover_atoms", "volume_lots")

    def __init__(self, minute: int, price: int) -> None:
        self.minute = minute
        self.open = self.close = price
        self.volume_lots = 0
        self.turnover_atoms = 0


class RollingDay:
    """The last 1,440 one-minute buckets of a symbol's trades, with sums, high and low."""

    __slots__ = ("_buckets", "_highs", "_lows", "_price_before", "turnover_atoms",
                 "volume_lots")

    def __init__(self) -> None:
        self._buckets: deque[_Bucket] = deque()
        self._highs: deque[tuple[int, int]] = deque()  # (minute, price), prices descending
        self._lows: deque[tuple[int, int]] = deque()  # (minute, price), prices ascending
        self._price_before: int | None = None  # close of the newest bucket that left
        self.volume_lots = 0
        self.turnover_atoms = 0

    def add(self, minute: int, price: int, qty_lots: int, turnover_atoms: int) -> None:
        """Count a trade in `minute` (ms // 60,000); `minute` must not precede the newest one."""
        self.evict(minute)
        buckets = self._buckets
        if buckets and buckets[-1].minute >= minute:
            bucket = buckets[-1]  # an earlier stamp than one seen counts in the newest minute
            minute = bucket.minute
        else:
            bucket = _Bucket(minute, price)
            buckets.append(bucket)
        bucket.close = price
        bucket.volume_lots += qty_lots
        bucket.turnover_atoms += turnover_atoms
        self.volume_lots += qty_lots
        self.turnover_atoms += turnover_atoms
        _push(self._highs, minute, price, higher=True)
        _push(self._lows, minute, price, higher=False)

    def evict(self, now_minute: int) -> None:
        """Drop the buckets of minutes at or before `now_minute` - 1,440."""
        oldest_kept = now_minute - WINDOW_MINUTES + 1
        buckets = self._buckets
        while buckets and buckets[0].minute < oldest_kept:
            bucket = buckets.popleft()
            self.volume_lots -= bucket.volume_lots
            self.turnover_atoms -= bucket.turnover_atoms
            self._price_before = bucket.close
        for queue in (self._highs, self._lows):
            while queue and queue[0][0] < oldest_kept:
                queue.popleft()

    def to_state(self) -> RollingDayState:
        """Return the window as data."""
        return RollingDayState(
            [(b.minute, b.open, b.close, b.volume_lots, b.turnover_atoms) for b in self._buckets],
            list(self._highs), list(self._lows), self._price_before, self.volume_lots,
            self.turnover_atoms)

    @classmethod
    def from_state(cls, state: RollingDayState) -> RollingDay:
        """Rebuild a window from `to_state()`."""
        day = cls()
        for minute, open_, close, volume, turnover in state.buckets:
            bucket = _Bucket(minute, open_)
            bucket.close = close
            bucket.volume_lots = volume
            bucket.turnover_atoms = turnover
            day._buckets.append(bucket)
        day._highs.extend(state.highs)
        day._lows.extend(state.lows)
        day._price_before = state.price_before
        day.volume_lots = state.volume_lots
        day.turnover_atoms = state.turnover_atoms
        return day

    @property
    def high(self) -> int | None:
        """Return the highest trade price in the window."""
        return self._highs[0][1] if self._highs else None

    @property
    def low(self) -> int | None:
        """Return the lowest trade price in the window."""
        return self._lows[0][1] if self._lows else None

    def price_before(self, minute: int) -> int | None:
        """Return the last price before `minute`, or the first price seen if none is earlier.

        Looks back from the newest bucket, so `minute` within the last hour costs at most 60
        steps.
        """
        if self._buckets and self._buckets[0].minute < minute:
            for bucket in reversed(self._buckets):
                if bucket.minute < minute:
                    return bucket.close
        if self._price_before is not None:
            return self._price_before
        return self._buckets[0].open if self._buckets else None


def _push(queue: deque[tuple[int, int]], minute: int, price: int, *, higher: bool) -> None:
    # Keep the queue monotonic: an entry dominated by a newer, better price can never be the
    # extreme again, and within one minute only the best price matters (they leave together).
    while queue and (queue[-1][1] <= price if higher else queue[-1][1] >= price):
        queue.pop()
    if not queue or queue[-1][0] != minute:
        queue.append((minute, price))


class _SymbolState:
    __slots__ = ("day", "funding_interval_min", "funding_rate", "index", "last", "mark",
                 "next_funding_ms")

    def __init__(self, spec: InstrumentSpec) -> None:
        self.day = RollingDay()
        self.last: int | None = None
        self.mark: int | None = None
        self.index: int | None = None
        self.funding_interval_min = spec.funding_interval_min
        self.funding_rate = funding_rate(spec, [], spec.funding_interval_min)
        self.next_funding_ms: int | None = None


# The events `Tickers.apply` does more for than move the clocks, but for `Trade` and
# `PositionChanged` (the open interest's only one): `apply_all` hands those straight on.
_TICKER_EVENTS: frozenset[type[Event]] = frozenset({
    MarkPriceUpdated, IndexPriceUpdated, PremiumIndexSampled, FundingIntervalSet,
    FundingSettled})


class Tickers:
    """Tickers of every symbol, fed by `apply(event)`."""

    def __init__(self, specs: Iterable[InstrumentSpec]) -> None:
        self.specs = {spec.symbol: spec for spec in specs}
        self.now_ms = 0
        self.open_interest = OpenInterest()
        self._symbols: dict[str, _SymbolState] = {}

    def _state(self, symbol: str) -> _SymbolState:
        state = self._symbols.get(symbol)
        if state is None:
            state = _SymbolState(self.specs[symbol])
            self._symbols[symbol] = state
        return state

    def apply(self, event: Event) -> None:
        """Fold one event in; every event advances the clock."""
        if event.ts_ms > self.now_ms:  # `max` of two ints, without the builtin's call
            self.now_ms = event.ts_ms
        self.open_interest.apply(event)
        if isinstance(event, Trade):
            self._trade(event)
        elif isinstance(event, MarkPriceUpdated):
            self._state(event.symbol).mark = event.price_ticks
        elif isinstance(event, IndexPriceUpdated):
            self._state(event.symbol).index = event.price_ticks
        elif isinstance(event, PremiumIndexSampled):
            state = self._state(event.symbol)
            state.funding_rate = event.predicted_rate
            state.next_funding_ms = event.next_funding_ms
        elif isinstance(event, FundingIntervalSet):
            state = self._state(event.symbol)
            state.funding_interval_min = event.interval_min
            state.next_funding_ms = event.next_funding_ms
        elif isinstance(event, FundingSettled):
            # The engine starts the next interval with no premium sample: interest alone.
            state = self._state(event.symbol)
            state.funding_rate = funding_rate(self.specs[event.symbol], [],
                                              state.funding_interval_min)
            state.next_funding_ms = event.funding_ms + state.funding_interval_min * MINUTE_MS

    def _trade(self, event: Trade) -> None:
        """Count a trade in its symbol's day (the clocks moved by the caller, as `apply`)."""
        state = self._state(event.symbol)
        turnover = self.specs[event.symbol].notional_atoms(event.price_ticks, event.qty_lots)
        state.day.add(self.now_ms // MINUTE_MS, event.price_ticks, event.qty_lots, turnover)
        state.last = event.price_ticks

    def apply_all(self, events: list[Event]) -> None:
        """Fold a command's events in, in order, exactly as `apply` on each would.

        Most events (orders accepted, cancelled, wallets) change no ticker: `apply` would
        only move the clocks, done here without its calls and type tests (a gateway folds
        every command; measured in `docs/decisions.md`, issue #15).
        """
        interest = self.open_interest
        for event in events:
            kind = type(event)
            if kind in _TICKER_EVENTS:
                self.apply(event)
                continue
            ts_ms = event.ts_ms
            if ts_ms > self.now_ms:
                self.now_ms = ts_ms
            if ts_ms > interest.now_ms:
                interest.now_ms = ts_ms
            if kind is PositionChanged:
                # Every fill changes a position or two: straight to the open interest, not
                # through `apply`'s type tests, none of which is for it (issue #15).
                interest.position_changed(event)  # type: ignore[arg-type]  # `kind` said so
            elif kind is Trade:
                # A trade: `apply`'s first test, without `apply`'s call and the open
                # interest's (which for a trade only moves its clock, done above).
                self._trade(event)  # type: ignore[arg-type]  # `kind` said so

    def to_state(self) -> TickersState:
        """Return the model as data."""
        return TickersState(self.now_ms, self.open_interest.to_state(), [
            SymbolTickerState(symbol, state.day.to_state(), state.last, state.mark, state.index,
                              state.funding_interval_min, state.funding_rate,
                              state.next_funding_ms)
            for symbol, state in self._symbols.items()])

    @classmethod
    def from_state(cls, specs: Iterable[InstrumentSpec], state: TickersState) -> Tickers:
        """Rebuild a model from `to_state()`; raise ValueError on a symbol not in `specs`."""
        tickers = cls(specs)
        tickers.now_ms = state.now_ms
        tickers.open_interest = OpenInterest.from_state(state.open_interest)
        for found in state.symbols:
            if found.symbol not in tickers.specs:
                raise ValueError(f"tickers state names unknown symbol {found.symbol!r}")
            symbol = tickers._state(found.symbol)
            symbol.day = RollingDay.from_state(found.day)
            symbol.last = found.last
            symbol.mark = found.mark
            symbol.index = found.index
            symbol.funding_interval_min = found.funding_interval_min
            symbol.funding_rate = found.funding_rate
            symbol.next_funding_ms = found.next_funding_ms
        return tickers

    def ticker(self, symbol: str) -> Ticker:
        """Return `symbol`'s ticker as of the latest event."""
        if symbol not in self.specs:
            raise KeyError(f"ticker: unknown symbol {symbol!r}")
        state = self._state(symbol)
        day = state.day
        now_minute = self.now_ms // MINUTE_MS
        day.evict(now_minute)
        # Before the first trade the last price is the mark (or, before any mark, the index),
        # and the 24-hour figures follow it: a new listing shows a price from its first
        # second (#13 C4).
        last = state.last
        if last is None:
            last = state.mark if state.mark is not None else state.index
        prev_24h = day.price_before(now_minute - WINDOW_MINUTES + 1)
        prev_1h = day.price_before(now_minute - HOUR_MINUTES + 1)
        if prev_24h is None:  # no trade yet
            prev_24h = prev_1h = last
        pcnt = (Fraction(last - prev_24h, prev_24h) if last is not None and prev_24h
                else Fraction(0))
        high = day.high if day.high is not None else last
        low = day.low if day.low is not None else last
        next_funding = state.next_funding_ms
        if not state.funding_interval_min:
            next_funding = 0  # a dated future: no funding (next-mechanics §2.3)
        elif next_funding is None or next_funding <= self.now_ms:
            # Settled (or never reported) since: the grid's next timestamp after now.
            next_funding = next_funding_after(self.now_ms, state.funding_interval_min)
        oi = self.open_interest.open_interest_lots(symbol)
        oi_value = (None if state.mark is None
                    else self.specs[symbol].notional_atoms(state.mark, oi))
        return Ticker(symbol=symbol, ts_ms=self.now_ms, last_price_ticks=last,
                      high_price_24h_ticks=high, low_price_24h_ticks=low,
                      prev_price_24h_ticks=prev_24h, price_24h_pcnt=pcnt,
                      volume_24h_lots=day.volume_lots, turnover_24h_atoms=day.turnover_atoms,
                      prev_price_1h_ticks=prev_1h, mark_price_ticks=state.mark,
                      index_price_ticks=state.index, funding_rate=state.funding_rate,
                      next_funding_ms=next_funding,
                      funding_interval_min=state.funding_interval_min,
                      open_interest_lots=oi, open_interest_value_atoms=oi_value)

    def tickers(self) -> list[Ticker]:
        """Return the ticker of every configured symbol, in symbol order."""
        return [self.ticker(symbol) for symbol in sorted(self.specs)]

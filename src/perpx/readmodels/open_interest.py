"""Open interest per symbol, now and in interval snapshots, from `PositionChanged` events only.

Open interest is one side of the market in lots: the sum of long sizes, which equals the sum
of short sizes (DESIGN invariant 2; both are kept, so a test can hold the model to it). Each
`PositionChanged` carries a position's new signed size, so the model keeps every position's
last size and moves the totals by the difference.

History mirrors GET /v5/market/open-interest: for an `intervalTime` (5min, 15min, 30min, 1h,
4h, 1d) an entry per period, its timestamp the period's UTC-aligned start and its value the
open interest when the period closed (the current period: now), newest first, like a candle's
close. Open interest holds between changes, so every period from the first change to now has
an entry; a symbol that never had a position reads one entry of zero for the current period
(ccxt's fetch_open_interest takes ``list[0]``, so the list must not be empty). The model
keeps the closing value of each 5-minute period that saw a change: every interval is a
multiple of 5 minutes, so that is enough for all of them.

`to_state()` / `OpenInterest.from_state()` export and rebuild the model as plain data
(`OpenInterestState`), for the read-side checkpoint (`perpx.readside`).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

import msgspec

from perpx.core.events import Event, PositionChanged
from perpx.readmodels.period import MINUTE_MS, open_interest_interval_ms

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_BUCKET_MS = 5 * MINUTE_MS


@dataclass(frozen=True, slots=True)
class OpenInterestPoint:
    """One entry of the open-interest history: the value in lots when the period closed."""

    timestamp_ms: int
    open_interest_lots: int


class OpenInterestState(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """An `OpenInterest` model as data."""

    now_ms: int
    sizes: list[tuple[int, str, int, int]]  # (account, symbol, idx, size)
    long: dict[str, int]
    short: dict[str, int]
    bucket_starts: dict[str, list[int]]
    bucket_values: dict[str, list[int]]


class OpenInterest:
    """Current open interest and its 5-minute history per symbol, fed by `apply(event)`."""

    def __init__(self) -> None:
        self.now_ms = 0  # the latest event time
        self._sizes: dict[tuple[int, str, int], int] = {}  # (account, symbol, idx) -> size
        self._long: dict[str, int] = {}
        self._short: dict[str, int] = {}
        self._bucket_starts: dict[str, list[int]] = {}  # ascending 5-minute period starts
        self._bucket_values: dict[str, list[int]] = {}  # long OI at each one's close

    def to_state(self) -> OpenInterestState:
        """Return the model as data."""
        return OpenInterestState(
            self.now_ms, [(*key, size) for key, size in self._sizes.items()], dict(self._long),
            dict(self._short), {s: list(v) for s, v in self._bucket_starts.items()},
            {s: list(v) for s, v in self._bucket_values.items()})

    @classmethod
    def from_state(cls, state: OpenInterestState) -> OpenInterest:
        """Rebuild a model from `to_state()`; raise ValueError on mismatched history lists."""
        if ({s: len(v) for s, v in state.bucket_starts.items()}
                != {s: len(v) for s, v in state.bucket_values.items()}):
            raise ValueError("open interest state: bucket starts and values do not pair up")
        model = cls()
        model.now_ms = state.now_ms
        model._sizes = {(a, s, i): size for a, s, i, size in state.sizes}
        model._long = dict(state.long)
        model._short = dict(state.short)
        model._bucket_starts = {s: list(v) for s, v in state.bucket_starts.items()}
        model._bucket_values = {s: list(v) for s, v in state.bucket_values.items()}
        return model

    def apply(self, event: Event) -> None:
        """Fold one event in; only `PositionChanged` moves open interest, any event moves time."""
        if event.ts_ms > self.now_ms:  # `max` of two ints, without the builtin's call
            self.now_ms = event.ts_ms
        if isinstance(event, PositionChanged):
            self.position_changed(event)

    def position_changed(self, event: PositionChanged) -> None:
        """Fold a position's change in (its clock moved by the caller, as `apply` does)."""
        key = (event.account_id, event.symbol, event.position_idx)
        before = self._sizes.get(key, 0)
        after = event.size_lots
        if after:
            self._sizes[key] = after
        else:
            self._sizes.pop(key, None)
        # `max(x, 0)` of ints as conditionals (a position's every change comes here).
        long_change = (after if after > 0 else 0) - (before if before > 0 else 0)
        short_change = (-after if after < 0 else 0) - (-before if before < 0 else 0)
        if short_change:
            self._short[event.symbol] = self._short.get(event.symbol, 0) + short_change
        if long_change:
            self._record(event.symbol, event.ts_ms,
                         self._long.get(event.symbol, 0) + long_change)

    def _record(self, symbol: str, ts_ms: int, long_lots: int) -> None:
        self._long[symbol] = long_lots
        bucket = ts_ms - ts_ms % _BUCKET_MS
        starts = self._bucket_starts.get(symbol)
        if starts is None:  # not `setdefault(symbol, [])`: two lists built per change
            starts = self._bucket_starts[symbol] = []
            self._bucket_values[symbol] = []
        values = self._bucket_values[symbol]
        if starts and starts[-1] >= bucket:
            # The same period; or an event stamped before one already seen (times do not go
            # back in a journal), which counts in the latest period rather than rewrite history.
            values[-1] = long_lots
        else:
            starts.append(bucket)
            values.append(long_lots)

    def open_interest_lots(self, symbol: str) -> int:
        """Return the open interest in lots: the sum of long sizes (= the sum of short sizes)."""
        return self._long.get(symbol, 0)

    def short_interest_lots(self, symbol: str) -> int:
        """Return the sum of short sizes in lots (equal to the long side in a sound core)."""
        return self._short.get(symbol, 0)

    def history(self, symbol: str, interval_time: str, *, start_ms: int | None = None,
                end_ms: int | None = None, limit: int = DEFAULT_LIMIT) -> list[OpenInterestPoint]:
        """Return open-interest snapshots newest first, as GET /v5/market/open-interest.

        The entries are the `limit` latest periods whose start lies in [`start_ms`, `end_ms`].
        """
        length = open_interest_interval_ms(interval_time)
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be in [1, {MAX_LIMIT}], was {limit}")
        current = self.now_ms - self.now_ms % length
        high = current if end_ms is None else min(current, end_ms - end_ms % length)
        starts = self._bucket_starts.get(symbol)
        if not starts:
            inside = (start_ms is None or start_ms <= current) and high == current
            return [OpenInterestPoint(current, 0)] if self.now_ms and inside else []
        values = self._bucket_values[symbol]
        low = starts[0] - starts[0] % length
        if start_ms is not None:
            low = max(low, start_ms + (-start_ms) % length)  # first period start >= start_ms
        points: list[OpenInterestPoint] = []
        period = high
        while period >= low and len(points) < limit:
            index = bisect_right(starts, period + length - 1) - 1
            points.append(OpenInterestPoint(period, values[index] if index >= 0 else 0))
            period -= length
        return points

"""The insurance pool's ADL triggers: pool equity and a symbol's P&L drawdown (issue #13 B8).

Bybit runs ADL on two conditions (spec next-mechanics.md §6.2, API adl-alert):
1. **contract P&L drawdown**: the pool's balance ``B`` is above ``adlTriggerThreshold`` and the
   symbol's ``pnlRatio = (PnL - MaxPnL_8h) / MaxBalance_8h`` is at or below
   ``insurancePnlRatio`` (-0.3; at equality it triggers, §7 N11); it stops once the ratio is
   above ``adlStopRatio`` (-0.25), so between the two it stays as it was;
2. **pool equity**: ``B <= 0``; stops when ``B > 0``.

perpx has one insurance fund (one shared pool for every symbol it lists); ``PnL`` of a symbol
is its cumulative contribution to the fund (liquidation surpluses minus covered shortfalls),
kept here because Bybit does not publish it. Under condition 1 the pool pays a symbol's
shortfall only down to the threshold: `loss_headroom`; the rest is deleveraged, and while the
symbol stays triggered every new takeover of it goes to ADL directly (§6.3). Condition 2 is
the takeover's own cap: the fund closes no worse than its balance covers
(`perpx.core.risk.takeover`).

The 8-hour maxima are exact over the step functions the samples describe: a sample holds from
its time until the next, so the window keeps its samples plus the last one before it. Samples
are taken at each takeover, before and after, which is when the fund's balance falls; between
takeovers it only rises (deposits, surpluses), so a maximum reached there is sampled at the
next takeover, the first moment it is read. All state is integers, in the snapshot.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from itertools import islice
from operator import itemgetter
from typing import Any, Final

from perpx.core.instruments import InstrumentSpec
from perpx.core.numbers import RATE_ONE, div_floor

WINDOW_MS: Final = 8 * 3_600_000  # "8h max balance", "8h Max PnL" (§6.2)

Samples = list[tuple[int, int]]  # (ts_ms, value), time ascending
_time = itemgetter(0)
_value = itemgetter(1)


def drawdown_at_or_below(drawdown_atoms: int, max_balance_atoms: int, ratio: int) -> bool:
    """Tell whether ``drawdown / max_balance <= ratio`` exactly (a ratio in 10**-8).

    A pool that never held a positive balance has no ratio; it is never below anything.
    """
    if max_balance_atoms <= 0:
        return False
    return drawdown_atoms * RATE_ONE <= ratio * max_balance_atoms


def condition_1_triggers(balance_atoms: int, drawdown_atoms: int, max_balance_atoms: int,
                         spec: InstrumentSpec) -> bool:
    """Condition 1's trigger: ``B > adlTriggerThreshold`` and ``pnlRatio <= insurancePnlRatio``."""
    return balance_atoms > spec.adl_trigger_threshold_atoms and drawdown_at_or_below(
        drawdown_atoms, max_balance_atoms, spec.insurance_pnl_ratio)


def condition_1_stops(drawdown_atoms: int, max_balance_atoms: int, spec: InstrumentSpec) -> bool:
    """Condition 1's stop: ``pnlRatio > adlStopRatio``."""
    return not drawdown_at_or_below(drawdown_atoms, max_balance_atoms, spec.adl_stop_ratio)


def condition_2_triggers(balance_atoms: int) -> bool:
    """Condition 2 (the original mechanism): the pool's balance is at or below zero."""
    return balance_atoms <= 0


def loss_headroom_atoms(drawdown_atoms: int, max_balance_atoms: int, ratio: int) -> int:
    """Return how much more loss the pool covers before ``pnlRatio`` passes `ratio`.

    ``max(0, drawdown - ratio * MaxBalance)`` (§6.3 rule 2), rounded down: the pool pays no
    more than the threshold allows, the rest goes to ADL.
    """
    return max(0, drawdown_atoms + div_floor(-ratio * max_balance_atoms, RATE_ONE))


def window_max(samples: Samples, now_ms: int) -> int | None:
    """Return the largest value the samples held in ``[now - 8h, now]``, or None if none.

    A sample counts unless the next one came at or before the window's start (it was
    replaced before the window opened); times ascend, so those form a prefix, found by
    bisection rather than a walk (a busy pool holds thousands of samples).
    """
    if not samples:
        return None
    first = bisect_right(samples, now_ms - WINDOW_MS, lo=1, key=_time) - 1
    best: int = max(map(_value, islice(samples, first, None)))
    return best


def _record(samples: Samples, ts_ms: int, value: int) -> tuple[bool, int]:
    """Add a sample (unless the value is unchanged) and drop those out of the window.

    Samples at one time are all kept: a takeover's balance before and after both count.
    Returns whether a sample was added and how many were dropped, for `_Peaks`.
    """
    added = not samples or samples[-1][1] != value
    if added:
        samples.append((ts_ms, value))
    start = ts_ms - WINDOW_MS
    dropped = 0
    while len(samples) >= 2 and samples[1][0] <= start:
        del samples[0]
        dropped += 1
    return added, dropped


class _Peaks:
    """Derived from one series: the samples no later sample equals or exceeds (a stack).

    Their values fall from the bottom of the stack to the top, so the largest value from
    any sample on is the first stack entry at or after it: `window_max` by two bisections
    instead of a walk. Entries carry the sample's index counted from the series' start
    (`dropped` samples have left the list's front since).
    """

    __slots__ = ("dropped", "samples", "size", "stack")

    def __init__(self, samples: Samples) -> None:
        self.samples = samples
        self.dropped = 0
        self.size = 0
        self.stack: list[tuple[int, int]] = []
        for _ts, value in samples:
            self._push(value)

    def _push(self, value: int) -> None:
        stack = self.stack
        while stack and stack[-1][1] <= value:
            stack.pop()
        stack.append((self.dropped + self.size, value))
        self.size += 1

    def follow(self, added: bool, dropped: int) -> None:
        """Catch up with what `_record` just did to the samples."""
        if added:
            self._push(self.samples[-1][1])
        if dropped:
            self.dropped += dropped
            self.size -= dropped
            stack = self.stack
            while stack[0][0] < self.dropped:
                del stack[0]

    def window_max(self, now_ms: int) -> int | None:
        """Return `window_max(self.samples, now_ms)`."""
        samples = self.samples
        if not samples:
            return None
        stack = self.stack
        start = now_ms - WINDOW_MS
        if len(samples) < 2 or samples[1][0] > start:
            # The whole series is in the window (the usual case: `_record` dropped what had
            # left it when it last sampled): the bisections would find the first sample and
            # the stack's bottom, which every entry of the stack is at or after.
            return stack[0][1]
        first = bisect_right(samples, start, lo=1, key=_time) - 1
        return stack[bisect_left(stack, self.dropped + first, key=_time)][1]


class AdlPool:
    """The pool's balance history and each symbol's P&L, maxima and condition-1 state."""

    __slots__ = ("_peaks", "balance_samples", "pnl", "pnl_samples", "triggered")

    def __init__(self) -> None:
        self.balance_samples: Samples = []
        self.pnl: dict[str, int] = {}
        self.pnl_samples: dict[str, Samples] = {}
        self.triggered: set[str] = set()
        # Derived, by series ("" the balance, else a symbol's P&L): see `_Peaks`.
        self._peaks: dict[str, _Peaks] = {}

    def _peaks_of(self, series: str, samples: Samples) -> _Peaks:
        """Return the series' peaks, rebuilt if its list was replaced (a restore)."""
        peaks = self._peaks.get(series)
        if peaks is None or peaks.samples is not samples or peaks.size != len(samples):
            peaks = self._peaks[series] = _Peaks(samples)
        return peaks

    def _record(self, series: str, samples: Samples, ts_ms: int, value: int) -> None:
        peaks = self._peaks_of(series, samples)
        # Unpacked by name: compiled, a star-args call goes through the generic call path.
        added, dropped = _record(samples, ts_ms, value)
        peaks.follow(added, dropped)

    def observe_balance(self, ts_ms: int, balance_atoms: int) -> None:
        """Sample the pool's balance."""
        self._record("", self.balance_samples, ts_ms, balance_atoms)

    def max_balance(self, ts_ms: int) -> int:
        """Return the pool's 8-hour maximum balance (0 before any sample)."""
        return self._peaks_of("", self.balance_samples).window_max(ts_ms) or 0

    def drawdown(self, symbol: str, ts_ms: int) -> int:
        """Return ``PnL - MaxPnL_8h`` of `symbol` (at most 0)."""
        current = self.pnl.get(symbol, 0)
        samples = self.pnl_samples.get(symbol)
        best = self._peaks_of(symbol, samples).window_max(ts_ms) if samples else None
        return current - max(current, best if best is not None else current)

    def pnl_ratio(self, symbol: str, ts_ms: int) -> tuple[int, int]:
        """Return the symbol's ratio as (drawdown, max balance): ``pnlRatio = d / M``."""
        return self.drawdown(symbol, ts_ms), self.max_balance(ts_ms)

    def update_state(self, spec: InstrumentSpec, ts_ms: int, balance_atoms: int) -> bool:
        """Re-evaluate condition 1 for `spec`'s symbol (with its hysteresis); return it."""
        symbol = spec.symbol
        drawdown, max_balance = self.pnl_ratio(symbol, ts_ms)
        if symbol in self.triggered:
            if condition_1_stops(drawdown, max_balance, spec):
                self.triggered.discard(symbol)
        elif condition_1_triggers(balance_atoms, drawdown, max_balance, spec):
            self.triggered.add(symbol)
        return symbol in self.triggered

    def headroom(self, spec: InstrumentSpec, ts_ms: int, balance_atoms: int) -> int | None:
        """Return the loss the pool still covers for `spec` under condition 1, None if unbounded.

        Condition 1 applies only while the pool's balance is above the trigger threshold.
        """
        if balance_atoms <= spec.adl_trigger_threshold_atoms:
            return None
        drawdown, max_balance = self.pnl_ratio(spec.symbol, ts_ms)
        if max_balance <= 0:
            return None
        return loss_headroom_atoms(drawdown, max_balance, spec.insurance_pnl_ratio)

    def record_takeover(self, symbol: str, ts_ms: int, contribution_atoms: int,
                        balance_atoms: int) -> None:
        """Book a takeover's gain (or loss) to the symbol's P&L and sample both series."""
        samples = self.pnl_samples.get(symbol)
        if samples is None:  # not `setdefault`, which would build a list at every call
            samples = self.pnl_samples[symbol] = []
        previous = self.pnl.get(symbol, 0)
        if not samples:
            # the P&L held before this takeover counts
            self._record(symbol, samples, ts_ms, previous)
        self.pnl[symbol] = previous + contribution_atoms
        self._record(symbol, samples, ts_ms, self.pnl[symbol])
        self.observe_balance(ts_ms, balance_atoms)

    # -- snapshots ------------------------------------------------------------------------

    def to_snapshot(self) -> dict[str, Any]:
        """Return the state as plain data in a canonical order."""
        return {
            "balance": [list(s) for s in self.balance_samples],
            "pnl": sorted(self.pnl.items()),
            "pnl_samples": {s: [list(x) for x in v] for s, v in sorted(self.pnl_samples.items())},
            "triggered": sorted(self.triggered),
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Load `to_snapshot`'s data."""
        self.balance_samples = [(int(t), int(v)) for t, v in snapshot["balance"]]
        self.pnl = {str(s): int(v) for s, v in snapshot["pnl"]}
        self.pnl_samples = {str(s): [(int(t), int(v)) for t, v in samples]
                            for s, samples in snapshot["pnl_samples"].items()}
        self.triggered = set(snapshot["triggered"])
        self._peaks = {}

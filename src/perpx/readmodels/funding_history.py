"""Funding history: settled rates per symbol and funding executions per account, from events.

- Per symbol, one record per `FundingSettled`, as GET /v5/market/funding/history
  (`symbol`, `fundingRate`, `fundingRateTimestamp`), newest first.
- Per account, one record per `FundingPaid`, as the execution list's ``execType: "Funding"``
  rows (GET /v5/execution/list, the `execution` stream): `execFee` is the amount (positive =
  paid), `execPrice` the mark, `execQty` the position size, `execValue` the position value,
  `feeRate` the rate, `side` the position's side (long: Buy) and `execTime` the funding
  timestamp. The mark is the event's `mark_price_ticks`; events journaled before it existed
  (0 there) are linear, and their mark is recovered from the value exactly:
  ``value_atoms = mark_ticks * |size_lots| * atoms_per_tick_lot`` (a remainder is a bug).

Both are append-only lists in event order; funding timestamps rise, so a query bisects on time.
The service keeps neither in memory (`keep=False`): it hands each settled rate to a `sink`
(the history's ``funding`` table), and the funding executions are rows of the execution
history already (`perpx.store.records`).

`to_state()` / `FundingHistory.from_state()` export and rebuild what the model keeps as plain
data (`FundingHistoryState`), for the read-side checkpoint (`perpx.readside`).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import msgspec

from perpx.core.enums import Side
from perpx.core.errors import InvariantViolation
from perpx.core.events import Event, FundingPaid, FundingSettled
from perpx.core.instruments import InstrumentSpec
from perpx.rows import RATES_MAX_LIMIT, FundingRateRecord

RATES_DEFAULT_LIMIT = 200
EXECUTIONS_DEFAULT_LIMIT = 50
EXECUTIONS_MAX_LIMIT = 100
FUNDING_EXEC_TYPE = "Funding"

_Record = TypeVar("_Record")


@dataclass(frozen=True, slots=True)
class FundingExecution:
    """One position's funding as an execution record (Bybit ``execType: "Funding"``)."""

    exec_id: str  # derived from seq, account, symbol and position index: unique, replayable
    account_id: int
    symbol: str
    side: Side  # the position's side: Buy for a long, Sell for a short
    position_idx: int
    exec_price_ticks: int  # the mark price funding was valued at
    exec_qty_lots: int  # |size|
    exec_value_atoms: int  # position value at the mark
    exec_fee_atoms: int  # funding: positive paid, negative received
    fee_rate: int  # the funding rate, 10**-8
    exec_time_ms: int  # the funding timestamp
    seq: int
    exec_type: str = FUNDING_EXEC_TYPE


class FundingHistoryState(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    """What a `FundingHistory` keeps, as data (the time indexes are derived from it)."""

    rates: dict[str, list[FundingRateRecord]]
    executions: dict[int, list[FundingExecution]]


class FundingSink(Protocol):
    """Where `FundingHistory` hands each settled funding rate."""

    def funding_rate(self, record: FundingRateRecord) -> None:
        """Take a settled funding rate."""


def _check_limit(limit: int, most: int) -> None:
    if not 1 <= limit <= most:
        raise ValueError(f"limit must be in [1, {most}], was {limit}")


# The events `FundingHistory.apply` records (leaf classes: `type(e) in` is `isinstance`).
_FUNDING_EVENTS: frozenset[type[Event]] = frozenset({FundingSettled, FundingPaid})


class FundingHistory:
    """Funding rates per symbol and funding executions per account, fed by `apply(event)`."""

    def __init__(self, specs: Iterable[InstrumentSpec], *, keep: bool = True,
                 sink: FundingSink | None = None) -> None:
        self.specs = {spec.symbol: spec for spec in specs}
        self.keep = keep
        self.sink = sink
        self._rates: dict[str, list[FundingRateRecord]] = {}
        self._rate_times: dict[str, list[int]] = {}
        self._executions: dict[int, list[FundingExecution]] = {}
        self._execution_times: dict[int, list[int]] = {}

    def to_state(self) -> FundingHistoryState:
        """Return what the model keeps as data (empty with `keep=False`)."""
        return FundingHistoryState({s: list(v) for s, v in self._rates.items()},
                                   {a: list(v) for a, v in self._executions.items()})

    @classmethod
    def from_state(cls, specs: Iterable[InstrumentSpec], state: FundingHistoryState, *,
                   keep: bool = True, sink: FundingSink | None = None) -> FundingHistory:
        """Rebuild a model from `to_state()`; raise ValueError on a state it cannot hold."""
        model = cls(specs, keep=keep, sink=sink)
        if not keep and (state.rates or state.executions):
            raise ValueError("funding state holds records for a model that keeps none")
        for symbol, rates in state.rates.items():
            if symbol not in model.specs:
                raise ValueError(f"funding state names unknown symbol {symbol!r}")
            model._rates[symbol] = list(rates)
            model._rate_times[symbol] = [r.funding_rate_timestamp_ms for r in rates]
        for account, executions in state.executions.items():
            model._executions[account] = list(executions)
            model._execution_times[account] = [e.exec_time_ms for e in executions]
        return model

    def apply(self, event: Event) -> None:
        """Fold one event in; only `FundingSettled` and `FundingPaid` are recorded."""
        if isinstance(event, FundingSettled):
            record = FundingRateRecord(event.symbol, event.rate, event.funding_ms,
                                       event.mark_price_ticks, event.seq)
            if self.sink is not None:
                self.sink.funding_rate(record)
            if not self.keep:
                return
            self._rates.setdefault(event.symbol, []).append(record)
            self._rate_times.setdefault(event.symbol, []).append(event.funding_ms)
        elif isinstance(event, FundingPaid) and self.keep:
            execution = self._execution(event)
            self._executions.setdefault(event.account_id, []).append(execution)
            self._execution_times.setdefault(event.account_id, []).append(event.funding_ms)

    def apply_all(self, events: list[Event]) -> None:
        """Fold a command's events in, in order, exactly as `apply` on each would.

        `apply` changes nothing for any other event than these two, and a gateway folds every
        command (orders, trades: none of them), so the others are passed by one set test.
        """
        for event in events:
            if type(event) in _FUNDING_EVENTS:
                self.apply(event)

    def _execution(self, event: FundingPaid) -> FundingExecution:
        qty = abs(event.size_lots)
        mark, remainder = event.mark_price_ticks, 0
        if not mark and qty:
            mark, remainder = divmod(event.value_atoms,
                                     qty * self.specs[event.symbol].atoms_per_tick_lot)
        if remainder or qty == 0:
            raise InvariantViolation(
                f"FundingHistory: value {event.value_atoms} of seq {event.seq} is not a mark "
                f"price times size {event.size_lots}")
        return FundingExecution(
            exec_id=f"{event.seq}-{event.account_id}-{event.symbol}-{event.position_idx}",
            account_id=event.account_id, symbol=event.symbol,
            side=Side.BUY if event.size_lots > 0 else Side.SELL,
            position_idx=event.position_idx, exec_price_ticks=mark, exec_qty_lots=qty,
            exec_value_atoms=event.value_atoms, exec_fee_atoms=event.amount_atoms,
            fee_rate=event.rate, exec_time_ms=event.funding_ms, seq=event.seq)

    def rates(self, symbol: str, *, start_ms: int | None = None, end_ms: int | None = None,
              limit: int = RATES_DEFAULT_LIMIT) -> list[FundingRateRecord]:
        """Return the `limit` latest settled rates with timestamps in [start, end], newest first.

        As GET /v5/market/funding/history; refusing a `startTime` without an `endTime`, as Bybit
        does, is the API's job.
        """
        _check_limit(limit, RATES_MAX_LIMIT)
        records = self._rates.get(symbol, [])
        times = self._rate_times.get(symbol, [])
        return _newest(records, times, start_ms, end_ms, limit)

    def executions(self, account_id: int, *, symbol: str | None = None,
                   start_ms: int | None = None, end_ms: int | None = None,
                   limit: int = EXECUTIONS_DEFAULT_LIMIT) -> list[FundingExecution]:
        """Return an account's latest funding executions in [start, end], newest first.

        As GET /v5/execution/list?execType=Funding (its 7-day default window is the API's).
        """
        _check_limit(limit, EXECUTIONS_MAX_LIMIT)
        records = self._executions.get(account_id, [])
        times = self._execution_times.get(account_id, [])
        if symbol is None:
            return _newest(records, times, start_ms, end_ms, limit)
        low = 0 if start_ms is None else bisect_left(times, start_ms)
        high = len(times) if end_ms is None else bisect_right(times, end_ms)
        chosen: list[FundingExecution] = []
        for index in range(high - 1, low - 1, -1):
            if records[index].symbol == symbol:
                chosen.append(records[index])
                if len(chosen) == limit:
                    break
        return chosen


def _newest(records: list[_Record], times: list[int], start_ms: int | None, end_ms: int | None,
               limit: int) -> list[_Record]:
    low = 0 if start_ms is None else bisect_left(times, start_ms)
    high = len(times) if end_ms is None else bisect_right(times, end_ms)
    return records[max(low, high - limit):high][::-1]

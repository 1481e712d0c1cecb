"""The rows the read side hands to the history tables, and reads back: plain data, no rules.

Closed candles and settled funding rates are folded by the read models (`perpx.readmodels`)
and stored by the history tables (`perpx.store.history`); both speak these types, so neither
is typed on the other's classes. Nothing here imports any other part of perpx.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

RATES_MAX_LIMIT = 200  # the most settled funding rates one query returns (Bybit's cap)


class Stamp(Protocol):
    """Where a durable command sits in the journal: a stamped command, or a bus entry.

    The read side folds a command's events at its seq and time; it needs nothing else of the
    command, so a projector fed by the event bus (which carries events, not commands) folds
    exactly as the writer's own process does.
    """

    @property
    def seq(self) -> int:
        """The command's journal seq."""
        ...

    @property
    def ts_ms(self) -> int:
        """The command's time, as the sequencer stamped it."""
        ...


@dataclass(frozen=True, slots=True)
class Candle:
    """One period's candle: prices in ticks (premium index: rate in 10**-8).

    `volume_lots` and `turnover_atoms` are the traded quantity and quote value of the period
    (last-price candles only; zero for the others). `updated_ms` is the time of the last event
    in the period (the kline stream's `timestamp`); a flat filler candle has none.
    """

    start_ms: int
    open: int
    high: int
    low: int
    close: int
    volume_lots: int = 0
    turnover_atoms: int = 0
    updated_ms: int | None = None


@dataclass(frozen=True, slots=True)
class FundingRateRecord:
    """One settled funding of a symbol."""

    symbol: str
    funding_rate: int  # 10**-8
    funding_rate_timestamp_ms: int
    mark_price_ticks: int
    seq: int


@dataclass(frozen=True, slots=True)
class InsuranceRecord:
    """One change of the insurance fund's balance in one coin (`perpx.readmodels.insurance`).

    `seq` and `n` (its place among the fund's changes in that command) are the row's key, so
    re-projecting a command writes nothing twice; `balance_atoms` is the fund's balance in
    `coin` after the change, `reason` the `BalanceReason` name (LIQUIDATION, FUNDING, ...).
    """

    coin: str
    ts_ms: int
    seq: int
    n: int
    change_atoms: int
    balance_atoms: int
    reason: str
    symbol: str


INSURANCE_MAX_LIMIT = 1000  # the most fund changes one query returns


class ClosedCandles(Protocol):
    """The closed candles of one track (symbol, source, interval), as stored."""

    def between(self, low_ms: int | None, high_ms: int | None, limit: int, *,
                newest_first: bool) -> list[Candle]:
        """Return up to `limit` candles starting in [low, high], in the order asked."""

    def before(self, start_ms: int) -> Candle | None:
        """Return the newest candle that starts before `start_ms`, if any."""

    def first(self) -> Candle | None:
        """Return the oldest candle, if any."""

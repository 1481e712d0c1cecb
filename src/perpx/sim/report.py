"""What a simulation did, derived from its commands and events alone (never from engine state).

`ReportBuilder` watches every applied command and its events; `SimulationReport` is the
summary: trades, rejections, funding settlements with their rates, fees collected, the
insurance fund's balance, open interest, and the widest gap seen between mark and index.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from perpx.convert import format_atoms, format_lots, format_rate, format_scaled, format_ticks
from perpx.core.account.accounts import INSURANCE_FUND_ID
from perpx.core.commands import Command
from perpx.core.enums import BalanceReason
from perpx.core.events import (
    BalanceChanged,
    CommandRejected,
    Event,
    FundingSettled,
    FuturesDelivered,
    IndexPriceUpdated,
    MarkPriceUpdated,
    OrderCancelled,
    OrderRejected,
    PositionChanged,
    PremiumIndexSampled,
    Trade,
)
from perpx.core.instruments import InstrumentSpec
from perpx.core.numbers import RATE_ONE


@dataclass(frozen=True, slots=True)
class FundingRecord:
    """One funding settlement as `FundingSettled` reported it."""

    symbol: str
    funding_ms: int
    rate: int  # 10**-8
    mark_price_ticks: int
    paid_atoms: int
    received_atoms: int
    remainder_atoms: int


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """A dated future's delivery as `FuturesDelivered` reported it."""

    symbol: str
    delivery_ms: int
    price_e8: int  # the delivery price, 10**-8 of the quote coin
    samples: int
    positions: int
    fee_atoms: int
    remainder_atoms: int


@dataclass(frozen=True, slots=True)
class SimulationReport:
    """Counts and balances at the end of a run; money in atoms, rates in 10**-8."""

    commands: int
    events: int
    trades: int
    traded_lots: dict[str, int]
    rejections: dict[str, int]  # RejectCode name -> count
    cancellations: dict[str, int]  # CancelReason name -> count
    premium_samples: int
    fundings: list[FundingRecord]
    fees_atoms: int
    insurance_fund_atoms: int
    open_interest_lots: dict[str, int]
    max_mark_gap_rate: dict[str, int]  # max |mark − index| / index after a command, floored
    invariant_checks: int = 0
    first_ts_ms: int | None = None
    last_ts_ms: int | None = None
    deliveries: list[DeliveryRecord] = field(default_factory=list)

    def format(self, instruments: Mapping[str, InstrumentSpec]) -> str:
        """Return the report as a few lines of text, amounts as decimal strings."""
        lines = [
            f"commands {self.commands}, events {self.events}, "
            f"invariant checks {self.invariant_checks}",
            f"trades {self.trades}: " + ", ".join(
                f"{symbol} {format_lots(instruments[symbol], lots)}"
                for symbol, lots in sorted(self.traded_lots.items())),
            "rejections: " + (", ".join(f"{name} {count}" for name, count
                                        in sorted(self.rejections.items())) or "none"),
            "cancellations: " + (", ".join(f"{name} {count}" for name, count
                                           in sorted(self.cancellations.items())) or "none"),
            f"premium samples {self.premium_samples}",
            f"funding settlements {len(self.fundings)}:",
        ]
        for record in self.fundings:
            spec = instruments[record.symbol]
            lines.append(
                f"  {record.symbol} {utc_text(record.funding_ms)} rate {format_rate(record.rate)} "
                f"mark {format_ticks(spec, record.mark_price_ticks)} "
                f"paid {format_atoms(record.paid_atoms)} "
                f"received {format_atoms(record.received_atoms)} "
                f"to fund {format_atoms(record.remainder_atoms)}")
        for done in self.deliveries:
            lines.append(
                f"delivery {done.symbol} {utc_text(done.delivery_ms)} price "
                f"{format_scaled(done.price_e8, 8, 8)} ({done.samples} index samples) "
                f"positions {done.positions} fee {format_atoms(done.fee_atoms)} "
                f"to fund {format_atoms(done.remainder_atoms)}")
        coin = "/".join(sorted({spec.settle_coin for spec in instruments.values()}))
        lines += [
            f"fees collected {format_atoms(self.fees_atoms)} {coin}",
            f"insurance fund {format_atoms(self.insurance_fund_atoms)} {coin}",
            "open interest: " + (", ".join(
                f"{symbol} {format_lots(instruments[symbol], lots)}"
                for symbol, lots in sorted(self.open_interest_lots.items())) or "none"),
            "max |mark - index| / index: " + (", ".join(
                f"{symbol} {format_rate(gap)}"
                for symbol, gap in sorted(self.max_mark_gap_rate.items())) or "none"),
        ]
        return "\n".join(lines)


def utc_text(ts_ms: int) -> str:
    """Format epoch milliseconds as a UTC time (``2023-03-01T08:00:00Z``)."""
    moment = datetime.fromtimestamp(ts_ms // 1_000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class ReportBuilder:
    """Folds applied commands and their events into a `SimulationReport`."""

    commands: int = 0
    events: int = 0
    trades: int = 0
    traded_lots: Counter[str] = field(default_factory=Counter)
    rejections: Counter[str] = field(default_factory=Counter)
    cancellations: Counter[str] = field(default_factory=Counter)
    premium_samples: int = 0
    fundings: list[FundingRecord] = field(default_factory=list)
    deliveries: list[DeliveryRecord] = field(default_factory=list)
    fees_atoms: int = 0
    insurance_fund_atoms: int = 0
    sizes: dict[tuple[int, str, int], int] = field(default_factory=dict)
    index_ticks: dict[str, int] = field(default_factory=dict)
    mark_ticks: dict[str, int] = field(default_factory=dict)
    max_gap_rate: dict[str, int] = field(default_factory=dict)
    first_ts_ms: int | None = None
    last_ts_ms: int | None = None

    def observe(self, command: Command, events: Sequence[Event]) -> None:
        """Take in one applied command and the events it caused."""
        self.commands += 1
        self.events += len(events)
        if self.first_ts_ms is None:
            self.first_ts_ms = command.ts_ms
        self.last_ts_ms = command.ts_ms
        touched: set[str] = set()
        for event in events:
            if isinstance(event, Trade):
                self.trades += 1
                self.traded_lots[event.symbol] += event.qty_lots
            elif isinstance(event, PositionChanged):
                self.sizes[event.account_id, event.symbol, event.position_idx] = event.size_lots
            elif isinstance(event, BalanceChanged):
                if event.reason is BalanceReason.FEE_INCOME:
                    self.fees_atoms += event.change_atoms
                if event.account_id == INSURANCE_FUND_ID:
                    self.insurance_fund_atoms = event.balance_atoms
            elif isinstance(event, OrderRejected | CommandRejected):
                self.rejections[event.reason.name] += 1
            elif isinstance(event, OrderCancelled):
                self.cancellations[event.reason.name] += 1
            elif isinstance(event, IndexPriceUpdated):
                self.index_ticks[event.symbol] = event.price_ticks
                touched.add(event.symbol)
            elif isinstance(event, MarkPriceUpdated):
                self.mark_ticks[event.symbol] = event.price_ticks
                touched.add(event.symbol)
            elif isinstance(event, PremiumIndexSampled):
                self.premium_samples += 1
            elif isinstance(event, FundingSettled):
                self.fundings.append(FundingRecord(
                    event.symbol, event.funding_ms, event.rate, event.mark_price_ticks,
                    event.paid_atoms, event.received_atoms, event.remainder_atoms))
            elif isinstance(event, FuturesDelivered):
                self.deliveries.append(DeliveryRecord(
                    event.symbol, event.delivery_time_ms, event.delivery_price_e8, event.samples,
                    event.positions, event.fee_atoms, event.remainder_atoms))
        # Measured after the whole command: an index move and the mark it causes are one step.
        for symbol in sorted(touched):
            self._gap(symbol)

    def _gap(self, symbol: str) -> None:
        index = self.index_ticks.get(symbol)
        mark = self.mark_ticks.get(symbol)
        if index is None or mark is None:
            return
        gap = abs(mark - index) * RATE_ONE // index
        self.max_gap_rate[symbol] = max(gap, self.max_gap_rate.get(symbol, 0))

    def report(self, invariant_checks: int = 0) -> SimulationReport:
        """Return the summary so far."""
        open_interest: dict[str, int] = {}
        for (_account, symbol, _idx), size in sorted(self.sizes.items()):
            if size > 0:
                open_interest[symbol] = open_interest.get(symbol, 0) + size
        return SimulationReport(
            commands=self.commands, events=self.events, trades=self.trades,
            traded_lots=dict(self.traded_lots), rejections=dict(self.rejections),
            cancellations=dict(self.cancellations), premium_samples=self.premium_samples,
            fundings=list(self.fundings), fees_atoms=self.fees_atoms,
            insurance_fund_atoms=self.insurance_fund_atoms, open_interest_lots=open_interest,
            max_mark_gap_rate=dict(self.max_gap_rate), invariant_checks=invariant_checks,
            first_ts_ms=self.first_ts_ms, last_ts_ms=self.last_ts_ms,
            deliveries=list(self.deliveries))

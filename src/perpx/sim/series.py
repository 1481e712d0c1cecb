"""Time series of a simulation, folded from its events alone (never by reading the engine).

`SeriesRecorder` is an observer of `Simulation` (or of `Exchange.subscribe`): it sees each
applied command with its events, keeps what they say (prices, the predicted funding rate,
positions, wallets, the insurance fund, trades, fundings, liquidations, ADL) and, once per
`every_ms` of simulated time, takes a `Sample` of it. A trader's equity is rebuilt the way
the clearing computes it: wallet (from `BalanceChanged`) + uPnL of its positions (from
`PositionChanged`) at the mark (from `MarkPriceUpdated`). Money stays in integer atoms here;
floats appear only where a figure is drawn.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from perpx.core.account.accounts import FEE_ACCOUNT_ID, INSURANCE_FUND_ID
from perpx.core.commands import Command
from perpx.core.enums import BalanceReason, Side
from perpx.core.events import (
    BalanceChanged,
    Deleveraged,
    Event,
    FundingSettled,
    IndexPriceUpdated,
    Liquidated,
    MarkPriceUpdated,
    PositionChanged,
    PremiumIndexSampled,
    Trade,
)
from perpx.core.instruments import InstrumentSpec


@dataclass(frozen=True, slots=True)
class Sample:
    """The market and the population at one moment; prices in ticks, money in atoms."""

    ts_ms: int
    index_ticks: int | None
    mark_ticks: int | None
    last_ticks: int | None
    predicted_rate: int | None  # 10**-8, the funding rate the next settlement would pay
    premium_rate: int | None  # 10**-8, the last premium index sample
    open_interest_lots: int  # one side
    insurance_fund_atoms: int
    liquidations: int  # so far
    liquidated_notional_atoms: int  # so far, at the bankruptcy prices
    adl_steps: int  # so far
    volume_lots: int  # so far
    equity_p10_atoms: int | None  # the traders' equity distribution (None before any deposit)
    equity_p50_atoms: int | None
    equity_p90_atoms: int | None


@dataclass(frozen=True, slots=True)
class LiquidationPoint:
    """One takeover (`Liquidated`): the side is the liquidated position's."""

    ts_ms: int
    account_id: int
    side: Side
    qty_lots: int
    bust_price_ticks: int
    mark_price_ticks: int
    notional_atoms: int


@dataclass(frozen=True, slots=True)
class AdlPoint:
    """One auto-deleveraging step (`Deleveraged`)."""

    ts_ms: int
    account_id: int
    qty_lots: int
    price_ticks: int


@dataclass(frozen=True, slots=True)
class FundingPoint:
    """One funding settlement (`FundingSettled`)."""

    ts_ms: int
    rate: int
    mark_price_ticks: int
    paid_atoms: int
    received_atoms: int
    remainder_atoms: int


def _percentile(ordered: Sequence[int], share_percent: int) -> int | None:
    """Return the nearest-rank percentile of an ordered list (None when empty)."""
    if not ordered:
        return None
    rank = max(1, -(-share_percent * len(ordered) // 100))
    return ordered[rank - 1]


@dataclass(slots=True)
class SeriesRecorder:
    """Folds `(command, events)` into samples and event points for one symbol.

    `traders` are the accounts whose equity distribution is followed (the population);
    without it every user account (id > 0) counts.
    """

    spec: InstrumentSpec
    every_ms: int = 60_000
    traders: Collection[int] | None = None
    samples: list[Sample] = field(default_factory=list)
    liquidations: list[LiquidationPoint] = field(default_factory=list)
    adl: list[AdlPoint] = field(default_factory=list)
    fundings: list[FundingPoint] = field(default_factory=list)
    trades: int = 0
    volume_lots: int = 0
    volume_atoms: int = 0
    fees_atoms: int = 0  # collected by the fee account
    insurance_seeded_atoms: int = 0
    insurance_atoms: int = 0
    deposits: dict[int, int] = field(default_factory=dict)
    wallets: dict[int, int] = field(default_factory=dict)
    positions: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    index_ticks: int | None = None
    mark_ticks: int | None = None
    last_ticks: int | None = None
    predicted_rate: int | None = None
    premium_rate: int | None = None
    _liquidated_atoms: int = 0
    _next_sample_ms: int | None = None

    def __call__(self, command: Command, events: list[Event]) -> None:
        """Observe one applied command (the `Simulation` observer signature)."""
        self.observe(command, events)

    def observe(self, command: Command, events: Sequence[Event]) -> None:
        """Take in one applied command's events, then sample if a sample is due."""
        symbol = self.spec.symbol
        for event in events:
            if isinstance(event, BalanceChanged):
                self._balance(event)
            elif getattr(event, "symbol", symbol) != symbol:
                continue
            elif isinstance(event, Trade):
                self.trades += 1
                self.volume_lots += event.qty_lots
                self.volume_atoms += self.spec.notional_atoms(event.price_ticks, event.qty_lots)
                self.last_ticks = event.price_ticks
            elif isinstance(event, PositionChanged):
                self.positions[event.account_id, event.position_idx] = (
                    event.size_lots, event.entry_value_atoms)
            elif isinstance(event, MarkPriceUpdated):
                self.mark_ticks = event.price_ticks
            elif isinstance(event, IndexPriceUpdated):
                self.index_ticks = event.price_ticks
            elif isinstance(event, PremiumIndexSampled):
                self.predicted_rate = event.predicted_rate
                self.premium_rate = event.premium_rate
            elif isinstance(event, FundingSettled):
                self.fundings.append(FundingPoint(
                    event.funding_ms, event.rate, event.mark_price_ticks, event.paid_atoms,
                    event.received_atoms, event.remainder_atoms))
            elif isinstance(event, Liquidated):
                notional = self.spec.notional_atoms(event.bust_price_ticks, event.qty_lots)
                self._liquidated_atoms += notional
                self.liquidations.append(LiquidationPoint(
                    event.ts_ms, event.account_id, event.side, event.qty_lots,
                    event.bust_price_ticks, event.mark_price_ticks, notional))
            elif isinstance(event, Deleveraged):
                self.adl.append(AdlPoint(event.ts_ms, event.account_id, event.qty_lots,
                                         event.price_ticks))
        due = self._next_sample_ms
        if due is None or command.ts_ms >= due:
            self.samples.append(self.sample(command.ts_ms))
            self._next_sample_ms = (command.ts_ms // self.every_ms + 1) * self.every_ms

    def _balance(self, event: BalanceChanged) -> None:
        if event.coin != self.spec.settle_coin:
            return
        account = event.account_id
        if account == INSURANCE_FUND_ID:
            if event.reason is BalanceReason.DEPOSIT:  # the operator's seed, not a result
                self.insurance_seeded_atoms += event.change_atoms
            self.insurance_atoms = event.balance_atoms
        elif account == FEE_ACCOUNT_ID:
            if event.reason is BalanceReason.FEE_INCOME:
                self.fees_atoms += event.change_atoms
        else:
            self.wallets[account] = event.balance_atoms
            if event.reason in (BalanceReason.DEPOSIT, BalanceReason.WITHDRAW):
                # Net money put in: what the trader's equity is measured against.
                self.deposits[account] = self.deposits.get(account, 0) + event.change_atoms

    def equity_atoms(self, account_id: int) -> int:
        """Return an account's equity as the events tell it: wallet + uPnL at the mark."""
        equity = self.wallets.get(account_id, 0)
        mark = self.mark_ticks
        if mark is None:
            return equity
        for (owner, _idx), (size, entry) in self.positions.items():
            if owner == account_id and size:
                equity += self.spec.contract.unrealised_pnl_atoms(
                    Side.BUY if size > 0 else Side.SELL, entry, abs(size), mark)
        return equity

    def population(self) -> list[int]:
        """Return the followed accounts that have put money in, in id order."""
        funded = (a for a, amount in self.deposits.items() if amount > 0)
        if self.traders is not None:
            return sorted(a for a in funded if a in self.traders)
        return sorted(funded)

    def equities(self) -> dict[int, int]:
        """Return each followed account's equity now."""
        return {account: self.equity_atoms(account) for account in self.population()}

    def sample(self, ts_ms: int) -> Sample:
        """Return the state now, stamped `ts_ms`."""
        ordered = sorted(self.equities().values())
        open_interest = sum(size for size, _ in self.positions.values() if size > 0)
        return Sample(
            ts_ms, self.index_ticks, self.mark_ticks, self.last_ticks, self.predicted_rate,
            self.premium_rate, open_interest, self.insurance_atoms, len(self.liquidations),
            self._liquidated_atoms, len(self.adl), self.volume_lots,
            _percentile(ordered, 10), _percentile(ordered, 50), _percentile(ordered, 90))

    def finish(self, ts_ms: int) -> None:
        """Take a last sample at the end of the run (unless one was taken at `ts_ms`)."""
        if not self.samples or self.samples[-1].ts_ms < ts_ms:
            self.samples.append(self.sample(ts_ms))

    @property
    def liquidated_notional_atoms(self) -> int:
        """Return the notional taken over so far, at the bankruptcy prices."""
        return self._liquidated_atoms

"""Liquidations on real BTC prices: leveraged traders without stops through the 2023-03-03 fall.

The replay: the one-minute Binance.US BTC/USD candles of 2023-03-02 16:00 to 2023-03-03 08:00
UTC as the BTCUSDT index, one observation every 15 s of feed time along each candle's
open → extremes → close path, and a `Tick` every 15 s (funding settles at 00:00 and 08:00).
The stretch holds the sharp fall of 2023-03-03 01:00-02:00 (23,420 to 22,000, 6% inside the
hour) between two quieter evenings. A thin market maker (five levels of 0.3 BTC a side)
quotes around the index; the insurance fund is seeded with a 2,000 USDT `Deposit`; 32 noise
traders cover every pairing of leverage (10x, 15x, 20x, 30x, 40x, 50x, 75x, 100x), margin
mode (cross, isolated) and position mode (one-way, hedge), with 1,500 USDT wallets, no
stop-loss, long holding times and a lean toward the index's last half hour. About 56,000
commands and 6,500 trades; the module takes some 9 s on this 2-core machine. The moves
liquidate 14 of the 32 traders (26 takeovers, in both margin modes), and takeovers larger than
the book's depth are auto-deleveraged (15 ADL steps).

Checked, by an observer that sees every command with its events:
- the engine's invariants (conservation, open interest, books) after every command;
- liquidations happened, in both margin modes, and ADL too; every `Deleveraged` follows a
  `Liquidated` of the same command at its bankruptcy price, and the fund holds no position
  after any command;
- every change of a trader's position is explained by an event of the same command: the
  account's own `Executed` (a trade), a `Liquidated` or `Deleveraged` naming it, a funding,
  leverage or margin event (for changes that leave the size alone), or the hedged-pair close
  of a cross liquidation; the sizes replayed from `PositionChanged` move, command by command,
  exactly as the trades, takeovers and deleveragings say, and end equal to the engine's;
- after every command that moved the mark, no isolated position is past its liquidation price
  and no cross account holding a position is at an MM rate of 100% or more;
- no account's equity (wallet + uPnL) is below zero, after every command;
- the insurance fund's wallet is the running sum of its `BalanceChanged` events;
- the read side's projector, folding the same events, writes one closed-P&L row per
  takeover and per ADL step of a trader, and holds each trader position's opening fees and
  funding exactly as the engine's position does (what those rows' shares are taken from).

A cross liquidation that closes a hedged pair at the mark announces it with
`HedgedPairClosed`; the audit also looks for such closes by their shape (the long and the
short of a cross account shrinking by the same amount with no event) and finds none.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from perpx.convert import to_atoms
from perpx.core.account.accounts import INSURANCE_FUND_ID, SYSTEM_ACCOUNT_IDS
from perpx.core.commands import Command, Deposit
from perpx.core.enums import MarginMode, PositionMode
from perpx.core.events import (
    BalanceChanged,
    CommandRejected,
    Deleveraged,
    Event,
    Executed,
    FundingPaid,
    HedgedPairClosed,
    LeverageSet,
    Liquidated,
    MarginAdjusted,
    MarginModeSet,
    MarkPriceUpdated,
    PositionChanged,
    PositionModeSwitched,
)
from perpx.core.instruments import InstrumentSpec
from perpx.core.risk.takeover import cross_is_liquidatable, is_liquidatable
from perpx.feeds import CandleReplay
from perpx.sim import Agent, MarketMaker, MarketView, NoiseTrader, Simulation, SimulationReport
from perpx.sim.agents import UNSTAMPED
from perpx.store.records import (
    ClosedPnlRecord,
    ExecutionRecord,
    LedgerRecord,
    OrderRecord,
    Projector,
)
from support.builders import PRICES, btcusdt

MINUTE_FILE = PRICES / "btcusd_1m_2023-03-01_2023-03-07.csv"
HOUR_MS = 3_600_000
START = 1_677_772_800_000  # 2023-03-02 16:00 UTC, a funding timestamp
END = START + 16 * HOUR_MS  # 2023-03-03 08:00 UTC, the next but one
SYMBOL = "BTCUSDT"
COIN = "USDT"
CHECK_EVERY = 1  # invariants after every command, as issue #5 asks
LEVERAGES = (10, 15, 20, 30, 40, 50, 75, 100)
MODES = [(m, p) for m in (MarginMode.CROSS, MarginMode.ISOLATED)
         for p in (PositionMode.ONE_WAY, PositionMode.HEDGE)]
FUND_SEED = "2000"
MIN_LIQUIDATIONS = 5

Key = tuple[int, int]  # (account id, position idx)


class FundSeeder:
    """Deposits the insurance fund's starting balance at setup, then does nothing."""

    account_id = INSURANCE_FUND_ID

    def __init__(self, amount: str) -> None:
        self.amount = amount

    def setup(self, view: MarketView) -> Iterator[Command]:
        yield Deposit(UNSTAMPED, UNSTAMPED, INSURANCE_FUND_ID, COIN, to_atoms(self.amount))

    def act(self, view: MarketView, ts_ms: int) -> Iterator[Command]:
        return iter(())


def leveraged_population(symbol: str, *, seed: int,
                         first_account_id: int = 100) -> list[NoiseTrader]:
    """One trader per (leverage, margin mode, position mode): small wallets, no stop-loss.

    Short- and long-biased traders alternate; all lean toward the index's last half hour,
    hold up to six hours and take profit only at five times their margin.
    """
    chooser = random.Random(seed)
    traders = []
    for k, (leverage, (margin_mode, position_mode)) in enumerate(
            (lev, mode) for lev in LEVERAGES for mode in MODES):
        traders.append(NoiseTrader(
            first_account_id + k, symbol, seed=chooser.getrandbits(32), deposit="1500",
            leverage=leverage, margin_mode=margin_mode, position_mode=position_mode,
            long_bias=0.6 if k % 2 else 0.4, act_probability=0.1, max_qty="0.3",
            stop_loss=float("inf"), take_profit=5.0, max_hold_ms=6 * HOUR_MS,
            trend_weight=0.3))
    return traders


@dataclass
class Audit:
    """Watches every command of the replay and records what the checks need."""

    sim: Simulation
    traders: frozenset[int]
    commands_seen: int = 0
    liquidations: Counter[MarginMode] = field(default_factory=Counter)
    liquidated_accounts: set[int] = field(default_factory=set)
    liquidated_lots: int = 0
    deleveragings: int = 0
    deleveraged_lots: int = 0
    hedge_closes: int = 0
    mark_moves: int = 0
    equity_checks: int = 0
    fund_wallet: int = 0  # the running sum of the fund's BalanceChanged
    fund_events: int = 0
    sizes: dict[Key, int] = field(default_factory=dict)  # replayed from PositionChanged
    unexplained: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    silent_hedge_closes: list[str] = field(default_factory=list)
    announced_hedge_closes: int = 0
    orphan_adl: list[str] = field(default_factory=list)
    fund_problems: list[str] = field(default_factory=list)
    breaches: list[str] = field(default_factory=list)
    negative_equity: list[str] = field(default_factory=list)
    setup_rejections: list[CommandRejected] = field(default_factory=list)
    closings: list[Liquidated | Deleveraged] = field(default_factory=list)

    def observe(self, command: Command, events: list[Event]) -> None:
        self.commands_seen += 1
        accounts = self.sim.engine.clearing.accounts
        liquidated_here = {e.account_id for e in events if isinstance(e, Liquidated)}
        before: dict[Key, int] = {}  # trader sizes at the start of the command
        expected: Counter[Key] = Counter()  # the size moves the events account for
        pending: dict[Key, str] = {}  # changes with no event of their own (yet)
        traded: set[Key] = set()
        named: set[int] = set()  # accounts a Liquidated or Deleveraged has named so far
        adjusted: set[int] = set()  # accounts with a funding, leverage or margin event so far
        bust: int | None = None  # of the last takeover in this command
        moved_mark = False
        for event in events:
            if isinstance(event, Executed):
                key = (event.account_id, event.position_idx)
                traded.add(key)
                expected[key] += event.side.sign * event.qty_lots
            elif isinstance(event, Liquidated):
                self.closings.append(event)
                named.add(event.account_id)
                bust = event.bust_price_ticks
                self.liquidated_lots += event.qty_lots
                self.liquidations[accounts[event.account_id].margin_mode] += 1
                self.liquidated_accounts.add(event.account_id)
                expected[event.account_id, event.position_idx] -= event.side.sign * event.qty_lots
            elif isinstance(event, HedgedPairClosed):
                named.add(event.account_id)
                self.announced_hedge_closes += 1
                expected[event.account_id, 1] -= event.qty_lots
                expected[event.account_id, 2] += event.qty_lots
            elif isinstance(event, Deleveraged):
                self.closings.append(event)
                named.add(event.account_id)
                self.deleveragings += 1
                self.deleveraged_lots += event.qty_lots
                if bust is None or event.price_ticks != bust:
                    self.orphan_adl.append(f"seq {event.seq}: {event} after bust {bust}")
                key = (event.account_id, event.position_idx)
                expected[key] -= (1 if self.sizes.get(key, 0) > 0 else -1) * event.qty_lots
            elif isinstance(event, FundingPaid | LeverageSet | MarginAdjusted | MarginModeSet
                            | PositionModeSwitched):
                adjusted.add(event.account_id)
            elif isinstance(event, BalanceChanged) and event.account_id == INSURANCE_FUND_ID:
                self.fund_wallet += event.change_atoms
                self.fund_events += 1
                if event.balance_atoms != self.fund_wallet:
                    self.fund_problems.append(f"seq {event.seq}: balance {event.balance_atoms}"
                                              f" != running sum {self.fund_wallet}")
            elif isinstance(event, MarkPriceUpdated):
                moved_mark = True
            elif isinstance(event, CommandRejected) and command.ts_ms == START:
                self.setup_rejections.append(event)
            elif isinstance(event, PositionChanged) and event.account_id in self.traders:
                key = (event.account_id, event.position_idx)
                size = self.sizes.get(key, 0)
                before.setdefault(key, size)
                if not (key in traded or event.account_id in named
                        or event.account_id in liquidated_here  # a hedged pair closed first
                        or (event.size_lots == size and event.account_id in adjusted)):
                    pending[key] = (f"seq {event.seq}: account {event.account_id} idx "
                                    f"{event.position_idx} {size} -> {event.size_lots}")
                self.sizes[key] = event.size_lots
        self._reconcile(command, before, expected, pending, liquidated_here, moved_mark)
        self.unexplained.extend(pending.values())
        held = accounts[INSURANCE_FUND_ID].positions.get((SYMBOL, 0))
        if held is not None and held.size_lots:
            self.fund_problems.append(f"seq {command.seq}: the fund holds {held.size_lots}")
        if moved_mark:
            self.mark_moves += 1
            self._check_no_breach(command)
        if named:
            self.check_equity(command.seq, named)
        if self.commands_seen % CHECK_EVERY == 0:
            self.check_equity(command.seq)

    def _reconcile(self, command: Command, before: dict[Key, int], expected: Counter[Key],
                   pending: dict[Key, str], liquidated_here: set[int], moved_mark: bool) -> None:
        """The replayed sizes moved by what the trades, takeovers and ADL say, no more."""
        residual: dict[Key, int] = {}
        for key in before.keys() | {k for k in expected if k[0] in self.traders}:
            left = self.sizes.get(key, 0) - before.get(key, self.sizes.get(key, 0)) - expected[key]
            if left:
                residual[key] = left
        for (account_id, idx), left in sorted(residual.items()):
            if idx == 2 and (account_id, 1) in residual:
                continue  # judged with its long
            # A cross liquidation closes a hedged pair at the mark: the long and the short
            # shrink by the same amount, with no trade and no takeover of their own.
            short_left = residual.get((account_id, 2))
            if (idx == 1 and left < 0 and short_left == -left and moved_mark
                    and self.sim.engine.clearing.accounts[account_id].margin_mode
                    is MarginMode.CROSS):
                self.hedge_closes += 1
                if account_id not in liquidated_here:
                    self.silent_hedge_closes.append(
                        f"seq {command.seq}: account {account_id} closed {-left} lots of "
                        "hedged pair with no Liquidated")
                pending.pop((account_id, 1), None)
                pending.pop((account_id, 2), None)
                continue
            for key in ((account_id, idx), (account_id, 2)) if idx == 1 else ((account_id, idx),):
                if key in residual:
                    self.mismatched.append(f"seq {command.seq}: account {key[0]} idx {key[1]} "
                                           f"moved {residual[key]} lots beyond its events")

    def _check_no_breach(self, command: Command) -> None:
        engine = self.sim.engine
        mark = engine.mark_price[SYMBOL]
        for account_id, account in engine.clearing.accounts.items():
            if account_id in SYSTEM_ACCOUNT_IDS:
                continue
            held = [p for p in account.positions.values() if p.size_lots]
            if not held:
                continue
            if account.margin_mode is MarginMode.ISOLATED:
                for position in held:
                    if is_liquidatable(engine.clearing, position, mark):
                        self.breaches.append(
                            f"seq {command.seq}: isolated {account_id} idx "
                            f"{position.position_idx} size {position.size_lots} at {mark}")
            elif cross_is_liquidatable(engine.clearing, account, COIN):
                self.breaches.append(f"seq {command.seq}: cross {account_id} at MM rate "
                                     f"{engine.clearing.figures(account, COIN).mm_rate()}")

    def check_equity(self, seq: int, account_ids: set[int] | None = None) -> None:
        """Record any non-system account (of `account_ids`) whose wallet + uPnL is below 0."""
        self.equity_checks += account_ids is None
        clearing = self.sim.engine.clearing
        for account_id in sorted(clearing.accounts if account_ids is None else account_ids):
            if account_id in SYSTEM_ACCOUNT_IDS:
                continue
            figures = clearing.figures(clearing.accounts[account_id], COIN)
            if figures.wallet_atoms + figures.upnl_atoms < 0:
                self.negative_equity.append(
                    f"seq {seq}: account {account_id} wallet {figures.wallet_atoms} "
                    f"upnl {figures.upnl_atoms}")


@dataclass
class Replay:
    """The finished simulation with its audit and report."""

    spec: InstrumentSpec
    sim: Simulation
    audit: Audit
    report: SimulationReport
    seconds: float
    projector: Projector


@pytest.fixture(scope="module")
def replay() -> Replay:
    spec = btcusdt()
    traders = leveraged_population(spec.symbol, seed=3)
    agents: list[Agent] = [MarketMaker(1, spec.symbol, level_qty="0.3"), FundSeeder(FUND_SEED),
                           *traders]
    feed = CandleReplay(MINUTE_FILE, spec.symbol, spec.tick_size, step_ms=15_000,
                        start_ms=START, end_ms=END)
    sim = Simulation([spec], feed, agents, tick_every_ms=15_000, seed=11,
                     check_every=CHECK_EVERY)
    audit = Audit(sim, frozenset(t.account_id for t in traders))
    sim.observers.append(audit.observe)
    projector = Projector([spec], ClosedRows())
    sim.observers.append(projector.project)
    started = time.perf_counter()
    report = sim.run(until_ms=END)
    seconds = time.perf_counter() - started
    fund = sim.engine.clearing.accounts[INSURANCE_FUND_ID].balance(COIN)
    print(f"\nliquidation replay: {report.commands} commands, {report.trades} trades in "
          f"{seconds:.1f} s\n"
          f"liquidations: {audit.liquidations[MarginMode.CROSS]} cross, "
          f"{audit.liquidations[MarginMode.ISOLATED]} isolated, {audit.liquidated_lots} lots, "
          f"{len(audit.liquidated_accounts)} of {len(traders)} traders; hedged pairs closed "
          f"{audit.hedge_closes} ({len(audit.silent_hedge_closes)} with no Liquidated)\n"
          f"ADL: {audit.deleveragings} ({audit.deleveraged_lots} lots); insurance fund "
          f"{fund / 10**8:,.2f} USDT (seeded {FUND_SEED})")
    return Replay(spec, sim, audit, report, seconds, projector)


# -- the run as a whole -------------------------------------------------------------------------

def test_the_population_covers_every_leverage_and_mode_it_asked_for(replay: Replay) -> None:
    assert replay.audit.setup_rejections == []
    accounts = replay.sim.engine.clearing.accounts
    traders = [a for a in replay.sim.agents if isinstance(a, NoiseTrader)]
    assert all(t.stop_loss == float("inf") for t in traders)
    seen = {(t.leverage, accounts[t.account_id].margin_mode,
             accounts[t.account_id].position_mode(SYMBOL)) for t in traders}
    assert seen == {(lev, m, p) for lev in LEVERAGES for m, p in MODES}


def test_invariants_held_after_every_command(replay: Replay) -> None:
    report = replay.report
    assert report.commands == replay.audit.commands_seen == replay.sim.seq
    assert report.invariant_checks == report.commands // CHECK_EVERY + 1
    replay.sim.engine.check_invariants()


# -- liquidation --------------------------------------------------------------------------------

def test_traders_were_liquidated_in_both_margin_modes(replay: Replay) -> None:
    liquidations = replay.audit.liquidations
    assert set(liquidations) <= {MarginMode.CROSS, MarginMode.ISOLATED}
    assert sum(liquidations.values()) >= MIN_LIQUIDATIONS
    assert liquidations[MarginMode.CROSS] > 0
    assert liquidations[MarginMode.ISOLATED] > 0
    assert replay.audit.liquidated_accounts <= replay.audit.traders


def test_what_the_book_did_not_take_was_deleveraged_at_the_bankruptcy_price(
        replay: Replay) -> None:
    audit = replay.audit
    assert audit.deleveragings > 0
    assert audit.orphan_adl == []
    assert [p for p in audit.fund_problems if "holds" in p] == []


def test_every_position_change_is_explained_by_an_event(replay: Replay) -> None:
    audit = replay.audit
    assert audit.unexplained == []
    assert audit.mismatched == []


def test_every_hedged_pair_close_is_announced_by_an_event(replay: Replay) -> None:
    assert replay.audit.silent_hedge_closes == []
    assert replay.audit.announced_hedge_closes > 0


def test_the_sizes_replayed_from_events_are_the_engine_positions(replay: Replay) -> None:
    accounts = replay.sim.engine.clearing.accounts
    actual = {(account_id, idx): position.size_lots
              for account_id in replay.audit.traders
              for (_, idx), position in accounts[account_id].positions.items()
              if position.size_lots}
    replayed = {key: size for key, size in replay.audit.sizes.items() if size}
    assert replayed == actual


def test_no_position_stays_breached_after_a_mark_move(replay: Replay) -> None:
    assert replay.audit.mark_moves > 1_000
    assert replay.audit.breaches == []


def test_nobody_is_below_zero_equity(replay: Replay) -> None:
    audit = replay.audit
    audit.check_equity(replay.sim.seq)  # and once more at the end
    assert audit.equity_checks == replay.report.commands // CHECK_EVERY + 1
    assert audit.negative_equity == []


def test_the_insurance_fund_wallet_is_the_sum_of_its_changes(replay: Replay) -> None:
    audit = replay.audit
    fund = replay.sim.engine.clearing.accounts[INSURANCE_FUND_ID].balance(COIN)
    assert audit.fund_events > 1
    assert audit.fund_problems == []
    assert audit.fund_wallet == fund == replay.report.insurance_fund_atoms > 0


class ClosedRows:
    """A record sink keeping the takeover and ADL closed-P&L rows."""

    def __init__(self) -> None:
        self.closed: list[ClosedPnlRecord] = []

    def order_final(self, record: OrderRecord) -> None:
        pass

    def execution(self, record: ExecutionRecord) -> None:
        pass

    def closed_pnl(self, record: ClosedPnlRecord) -> None:
        if record.exec_type != "Trade":
            self.closed.append(record)

    def ledger(self, record: LedgerRecord) -> None:
        pass


def test_every_takeover_and_adl_of_a_trader_has_a_closed_pnl_row(replay: Replay) -> None:
    sink = replay.projector.sink
    assert isinstance(sink, ClosedRows)
    rows = Counter((row.exec_type, row.account_id, row.seq, row.closed_lots)
                   for row in sink.closed)
    expected = Counter(
        ("BustTrade" if isinstance(e, Liquidated) else "AdlTrade", e.account_id, e.seq,
         e.qty_lots)
        for e in replay.audit.closings if e.account_id in replay.audit.traders)
    assert rows == expected
    assert {kind for kind, *_ in rows} == {"BustTrade", "AdlTrade"}
    assert len({row.order_id for row in sink.closed}) == len(sink.closed)


def test_the_projector_holds_each_positions_opening_fees_and_funding(replay: Replay) -> None:
    accounts = replay.sim.engine.clearing.accounts
    actual = {(account_id, position.symbol, idx): (position.open_fee_atoms,
                                                   position.funding_atoms)
              for account_id in replay.audit.traders
              for (_, idx), position in accounts[account_id].positions.items()
              if position.size_lots}
    folded = {key: costs for key, costs in replay.projector._costs.items()
              if key[0] in replay.audit.traders}
    assert folded == actual

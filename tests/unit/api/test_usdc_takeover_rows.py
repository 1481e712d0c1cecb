"""A USDC position's takeover and ADL closed-P&L rows are against its true entry (avgPrice).

The wallet of a BTCPERP position moves against the session's entry (next-mechanics §3.2); its
closed P&L, as Bybit shows it, is against the true average entry, which no settlement moves
(docs/decisions.md, "USDC perpetuals"). A trade's row already was (`Executed` states that
P&L); a takeover's and an ADL's rows are built by the read side's fold from `Liquidated` and
`Deleveraged`, so the fold keeps each USDC position's true entry.

An isolated long and a rich short open 1 BTC at 50,000; the session settles at 52,000 (the
long's session entry becomes 52,000, its avgPrice stays 50,000); the mark then falls to 45,000
and the long is taken over at its bankruptcy price. With no bids the fund deleverages the
short. Both rows: entry value 50,000 USDC, exit value at the bankruptcy price, and Bybit's
closed P&L = price P&L against the true entry − opening fee − closing fee − funding.
"""

from __future__ import annotations

import msgspec

from perpx.convert import to_atoms, to_lots, to_ticks
from perpx.core import Command, Engine, OrderType, PlaceOrder, Side
from perpx.core.commands import (
    Deposit,
    IndexPrice,
    MarkPrice,
    SetLeverage,
    SetMarginMode,
    Tick,
)
from perpx.core.enums import BalanceReason, MarginMode
from perpx.core.events import (
    BalanceChanged,
    Deleveraged,
    Event,
    Executed,
    FundingPaid,
    Liquidated,
    SessionSettled,
)
from perpx.core.numbers import RATE_ONE
from perpx.store.records import ClosedPnlRecord, Projector, ProjectorState
from support.builders import btcperp

SPEC = btcperp()
SESSION_MS = 8 * 3_600_000  # the first funding (and session) time after 0
LONG, SHORT = 1, 2


class Sink:
    """Collects the closed-P&L rows (the rest of the history is not looked at here)."""

    def __init__(self) -> None:
        self.closed: list[ClosedPnlRecord] = []

    def closed_pnl(self, record: ClosedPnlRecord) -> None:
        self.closed.append(record)

    def __getattr__(self, name: str) -> object:
        return lambda record: None  # order_final, execution, ledger, settlement, delivery


def run(restart: bool = False) -> tuple[Engine, Sink, list[Event]]:
    """Play the flow; with `restart`, the fold restarts from its checkpoint before the crash."""
    engine = Engine([SPEC])
    sink = Sink()
    projector = Projector([SPEC], sink=sink)  # type: ignore[arg-type]
    seen: list[Event] = []
    seq = 0

    def apply(command: Command, ts_ms: int) -> None:
        nonlocal seq
        seq += 1
        stamped = msgspec.structs.replace(command, seq=seq, ts_ms=ts_ms)
        events = engine.apply(stamped)
        engine.check_invariants()
        projector.project(stamped, events)
        seen.extend(events)

    px = to_ticks(SPEC, "50000")
    apply(Deposit(0, 0, LONG, "USDC", to_atoms("6000")), 1)
    apply(Deposit(0, 0, SHORT, "USDC", to_atoms("1000000")), 1)
    apply(SetMarginMode(0, 0, LONG, MarginMode.ISOLATED), 1)
    apply(SetLeverage(0, 0, LONG, SPEC.symbol, 10 * RATE_ONE, 10 * RATE_ONE), 1)
    apply(IndexPrice(0, 0, SPEC.symbol, px), 1)
    apply(MarkPrice(0, 0, SPEC.symbol, px), 1)
    apply(PlaceOrder(0, 0, SHORT, SPEC.symbol, Side.SELL, OrderType.LIMIT, to_lots(SPEC, "1"),
                     px), 2)
    apply(PlaceOrder(0, 0, LONG, SPEC.symbol, Side.BUY, OrderType.MARKET, to_lots(SPEC, "1")), 2)
    high = to_ticks(SPEC, "52000")
    apply(IndexPrice(0, 0, SPEC.symbol, high), SESSION_MS - 1)
    apply(MarkPrice(0, 0, SPEC.symbol, high), SESSION_MS - 1)
    apply(Tick(0, 0), SESSION_MS)  # funding and the session settlement at 52,000
    if restart:
        state = projector.to_state()
        assert state.true_entries == [(LONG, SPEC.symbol, 0, to_atoms("50000")),
                                      (SHORT, SPEC.symbol, 0, to_atoms("50000"))]
        state = msgspec.msgpack.decode(msgspec.msgpack.encode(state), type=ProjectorState)
        projector = Projector.from_state([SPEC], state, sink)  # type: ignore[arg-type]
    low = to_ticks(SPEC, "45000")
    apply(IndexPrice(0, 0, SPEC.symbol, low), SESSION_MS + 1)
    apply(MarkPrice(0, 0, SPEC.symbol, low), SESSION_MS + 1)
    return engine, sink, seen


def test_takeover_and_adl_rows_of_a_usdc_position_use_the_true_entry() -> None:
    engine, sink, events = run()
    [settled] = [e for e in events if isinstance(e, SessionSettled) and e.account_id == LONG]
    assert settled.realised_pnl_atoms == to_atoms("2000")  # the session moved to 52,000
    [taken] = [e for e in events if isinstance(e, Liquidated)]
    assert taken.account_id == LONG
    [adl] = [e for e in events if isinstance(e, Deleveraged)]
    assert adl.account_id == SHORT and adl.price_ticks == taken.bust_price_ticks
    true_entry = to_atoms("50000")  # 1 BTC at 50,000: avgPrice, before and after the session
    exit_value = SPEC.notional_atoms(taken.bust_price_ticks, to_lots(SPEC, "1"))
    rows = {row.account_id: row for row in sink.closed if row.exec_type != "Trade"}
    assert set(rows) == {LONG, SHORT}

    def opening_fee(account: int) -> int:
        return sum(e.fee_atoms for e in events if isinstance(e, Executed)
                   and e.account_id == account)

    def funding(account: int) -> int:  # paid: positive
        return sum(e.amount_atoms for e in events if isinstance(e, FundingPaid)
                   and e.account_id == account)

    long = rows[LONG]
    assert long.exec_type == "BustTrade"
    assert long.entry_value_atoms == true_entry  # not the session's 52,000
    assert long.exit_value_atoms == exit_value
    # The takeover's wallet lines move against the session entry (52,000): the price P&L,
    # then the isolated takeover's fee to close (#13 B2), the part of it they fall short of.
    lines = [e.change_atoms for e in events if isinstance(e, BalanceChanged)
             and e.account_id == LONG and e.reason is BalanceReason.LIQUIDATION]
    assert lines[0] == exit_value - to_atoms("52000")
    close_fee = exit_value - to_atoms("52000") - sum(lines)
    assert close_fee > 0
    assert long.close_fee_atoms == close_fee  # not 2,000 more (the session's gain)
    assert long.open_fee_atoms == opening_fee(LONG)
    assert long.closed_pnl_atoms == (exit_value - true_entry - opening_fee(LONG) - close_fee
                                     - funding(LONG))

    short = rows[SHORT]
    assert short.exec_type == "AdlTrade"
    assert short.entry_value_atoms == true_entry
    assert short.exit_value_atoms == exit_value
    assert short.close_fee_atoms == 0  # ADL charges no fee
    assert short.closed_pnl_atoms == (true_entry - exit_value - opening_fee(SHORT)
                                      - funding(SHORT))
    assert engine.clearing.accounts[SHORT].positions[SPEC.symbol, 0].size_lots == 0


def test_the_fold_keeps_the_true_entry_through_a_checkpoint() -> None:
    """`ProjectorState` carries the USDC true entries: a restarted fold writes the same rows."""
    _, straight, _ = run()
    _, restarted, _ = run(restart=True)
    assert [row for row in restarted.closed if row.exec_type != "Trade"] == [
        row for row in straight.closed if row.exec_type != "Trade"]

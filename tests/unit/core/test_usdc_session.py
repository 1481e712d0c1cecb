"""USDC perpetuals (next-mechanics §3): session settlement in the core, worked examples U1-U6.

BTCPERP is linear in USDC (`LinearContract`), so every figure here is exact: the session
average, the realised P&L on a reduce, the session uPnL settled at the mark. The examples
are run with zero fees so the printed P&L is the wallet's change; the fee-bearing ones are
in tests/scenario/test_usdc_public.py. The pins of the decisions (docs/decisions.md,
"USDC perpetuals") are here too: the true entry beside the session's, a loss settled out of
an isolated position's margin first, a wallet that may go negative, closed P&L against the
true entry, both SETTLEMENT rows at one funding time, one-way only.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import msgspec

from perpx.api import wire
from perpx.convert import to_atoms, to_lots, to_ticks
from perpx.core import Engine, OrderType, PlaceOrder, Side
from perpx.core.account.positions import Position, apply_fill
from perpx.core.calc import fee_to_close_atoms, initial_margin_atoms
from perpx.core.codes import RejectCode
from perpx.core.commands import (
    Deposit,
    IndexPrice,
    ListInstrument,
    MarkPrice,
    SetFundingInterval,
    SetLeverage,
    SetMarginMode,
    SwitchPositionMode,
    Tick,
)
from perpx.core.enums import BalanceReason, MarginMode, PositionMode
from perpx.core.events import (
    BalanceChanged,
    CommandRejected,
    Event,
    Executed,
    SessionSettled,
)
from perpx.core.instruments import spec_record
from perpx.core.numbers import RATE_ONE
from perpx.store.records import LedgerRecord, Projector, SettlementRecord
from support.builders import btcperp, btcusdt

FREE = btcperp(taker_fee_rate=0, maker_fee_rate=0)
BUY, SELL = Side.BUY, Side.SELL
SESSION_MS = 8 * 3_600_000  # the first funding time after 0 (00:00 / 08:00 / 16:00 UTC)


def px(text: str) -> int:
    return to_ticks(FREE, text)


def lots(text: str) -> int:
    return to_lots(FREE, text)


def usdc(text: str) -> int:
    return to_atoms(text)


def average(value_atoms: int, qty_lots: int) -> Fraction:
    """The average price in USDC of `qty_lots` worth `value_atoms` (exact)."""
    numerator, denominator = FREE.contract.average_entry_fraction(value_atoms, qty_lots)
    return Fraction(numerator * FREE.tick_atoms, denominator * 10**8)


def test_the_instrument_is_linear_in_usdc_settles_sessions_and_is_one_way() -> None:
    assert (FREE.quote_coin, FREE.settle_coin, FREE.display_name) == ("USDC", "USDC", "BTC-PERP")
    assert (FREE.tick_size, FREE.qty_step, FREE.min_order_qty_lots) == ("0.5", "0.001", 1)
    assert FREE.funding_interval_min == 480
    assert FREE.session_settled and FREE.one_way_only
    assert not btcusdt().session_settled and not btcusdt().one_way_only


# -- U1, U2, U4: within a session (positions) ----------------------------------------------

def opened(*fills: tuple[str, str]) -> Position:
    position = Position(1, "BTCPERP", 0, 10 * RATE_ONE)
    for price, qty in fills:
        apply_fill(position, FREE, BUY, px(price), lots(qty))
    return position


def test_u1_the_session_average_is_the_fills_value_weighted_mean() -> None:
    """U1 [pub]: long 0.1 @ 50,000, add 0.1 @ 50,500: (5,000 + 5,050) / 0.2 = 50,250."""
    position = opened(("50000", "0.1"), ("50500", "0.1"))
    assert position.entry_value_atoms == usdc("10050")
    assert average(position.entry_value_atoms, position.qty_lots) == 50_250
    # Before any settlement the true entry is the same.
    assert position.true_entry_atoms == position.entry_value_atoms


def test_u2_a_reduce_realises_against_the_session_average() -> None:
    """U2 [pub]: close 0.1 @ 50,700: realised 45; at mark 51,000 the rest shows uPnL 75."""
    position = opened(("50000", "0.1"), ("50500", "0.1"))
    effect = apply_fill(position, FREE, SELL, px("50700"), lots("0.1"))
    assert effect.pnl_atoms == usdc("45") == effect.entry_pnl_atoms
    upnl = FREE.contract.unrealised_pnl_atoms(BUY, position.entry_value_atoms,
                                              position.qty_lots, px("51000"))
    assert upnl == usdc("75")


def test_u4_the_session_average_of_two_buys() -> None:
    """U4 [pub]: 0.5 @ 50,000 + 0.8 @ 51,000: value 65,800, average 50,615.38 (printed)."""
    position = opened(("50000", "0.5"), ("51000", "0.8"))
    assert position.entry_value_atoms == usdc("65800")
    exact = average(position.entry_value_atoms, position.qty_lots)
    assert exact == Fraction(658_000, 13)
    assert round(Decimal(exact.numerator) / exact.denominator, 2) == Decimal("50615.38")
    assert wire.average_price(FREE, position.entry_value_atoms, position.qty_lots) == (
        "50615.38461")  # the price scale (1) + 4 more decimals, floored


# -- U3 and the pins: the settlement in the engine -----------------------------------------

def engine_with_a_u1_long(margin: MarginMode = MarginMode.CROSS,
                          deposit: str = "100000") -> Engine:
    """Account 1 long and account 2 short after U1's fills and U2's close (no fees)."""
    engine = Engine([FREE])
    seq = 0

    def run(command_of: object) -> list[Event]:
        nonlocal seq
        seq += 1
        command = msgspec.structs.replace(command_of, seq=seq, ts_ms=seq)  # type: ignore[type-var]
        events = engine.apply(command)
        engine.check_invariants()
        return events

    for account in (1, 2):
        run(Deposit(0, 0, account, "USDC", usdc(deposit)))
        if margin is MarginMode.ISOLATED:
            run(SetMarginMode(0, 0, account, margin))
    for price, qty, side in (("50000", "0.1", BUY), ("50500", "0.1", BUY),
                             ("50700", "0.1", SELL)):
        run(IndexPrice(0, 0, "BTCPERP", px(price)))
        run(MarkPrice(0, 0, "BTCPERP", px(price)))
        run(PlaceOrder(0, 0, 2, "BTCPERP", side.opposite, OrderType.LIMIT, lots(qty), px(price)))
        run(PlaceOrder(0, 0, 1, "BTCPERP", side, OrderType.MARKET, lots(qty)))
    return engine


def settle(engine: Engine, mark: str, at_ms: int = SESSION_MS) -> list[Event]:
    seq = engine.last_seq + 1
    engine.apply(MarkPrice(seq, at_ms - 1, "BTCPERP", px(mark)))
    events = engine.apply(Tick(seq + 1, at_ms))
    engine.check_invariants()
    return events


def test_u3_the_settlement_credits_the_session_upnl_and_resets_the_session_average() -> None:
    """U3 [pub]: at 00:00, mark 52,000, 0.1 left: (52,000 − 50,250) × 0.1 = 175 credited."""
    engine = engine_with_a_u1_long()
    account = engine.clearing.accounts[1]
    wallet = account.balances["USDC"]
    events = settle(engine, "52000")
    [mine] = [e for e in events if isinstance(e, SessionSettled) and e.account_id == 1]
    assert mine.realised_pnl_atoms == usdc("175")
    assert average(mine.session_entry_value_atoms, mine.size_lots) == 50_250
    position = account.positions["BTCPERP", 0]
    assert average(position.entry_value_atoms, position.qty_lots) == 52_000
    assert average(position.true_entry_atoms, position.qty_lots) == 50_250  # avgPrice kept
    funding = sum(e.change_atoms for e in events if isinstance(e, BalanceChanged)
                  and e.account_id == 1 and e.reason is BalanceReason.FUNDING)
    assert account.balances["USDC"] - wallet == usdc("175") + funding
    short = engine.clearing.accounts[2].positions["BTCPERP", 0]
    assert average(short.entry_value_atoms, short.qty_lots) == 52_000


def test_funding_and_session_settlement_both_book_settlement_rows() -> None:
    """§3.2: at one funding time both go to the transaction log as SETTLEMENT."""
    engine = engine_with_a_u1_long()
    events = settle(engine, "52000")
    lines: list[LedgerRecord] = []
    rows: list[SettlementRecord] = []

    class Sink:
        def order_final(self, record: object) -> None: ...
        def execution(self, record: object) -> None: ...
        def closed_pnl(self, record: object) -> None: ...
        def ledger(self, record: LedgerRecord) -> None:
            lines.append(record)
        def settlement(self, record: SettlementRecord) -> None:
            rows.append(record)

    projector = Projector([FREE], sink=Sink())  # type: ignore[arg-type]
    projector.project(Tick(engine.last_seq, SESSION_MS), events)
    mine = [line for line in lines if line.account_id == 1]
    assert [line.kind for line in mine] == ["SETTLEMENT", "SETTLEMENT"]
    funding, session = mine
    assert funding.funding_atoms and not session.funding_atoms
    assert (session.change_atoms, session.cash_flow_atoms) == (usdc("175"), usdc("175"))
    assert (session.price_ticks, session.size_lots) == (px("52000"), lots("0.1"))
    [row] = [r for r in rows if r.account_id == 1]
    shown = wire.settlement_record(row, FREE)
    assert shown == {"symbol": "BTCPERP", "side": "Buy", "size": "0.100",
                     "sessionAvgPrice": "50250.0", "markPrice": "52000.0",
                     "realisedPnl": "175", "createdTime": str(SESSION_MS)}


def test_u5_the_settlement_record_gives_the_previous_session_average() -> None:
    """U5 [drv]: Buy 1.5, markPrice 16,620, realisedPnl −71.28: 16,620 + 71.28/1.5."""
    size = lots("1.5")
    before = FREE.contract.entry_value_atoms(px("16620"), size) + usdc("71.28")
    record = SettlementRecord("x", 1, "BTCPERP", int(BUY), size, before, px("16620"),
                              -usdc("71.28"), 0, 0)
    shown = wire.settlement_record(record, FREE)
    assert (shown["sessionAvgPrice"], shown["realisedPnl"]) == ("16667.52", "-71.28")
    # And the core's own settlement says the same of the long it settles.
    assert FREE.contract.unrealised_pnl_atoms(BUY, before, size, px("16620")) == -usdc("71.28")


def test_u6_im_at_the_mark_and_the_fee_to_close_at_the_bankruptcy_price() -> None:
    """U6 [pub] (MECH V17): 0.5 @ 50,000, 10x, mark 50,500, 0.055%: 2,525 + 12.375."""
    spec = btcperp()
    im = initial_margin_atoms(spec.notional_atoms(to_ticks(spec, "50500"), lots("0.5")),
                              10 * RATE_ONE)
    ftc = fee_to_close_atoms(spec, BUY, to_ticks(spec, "50000"), lots("0.5"), 10 * RATE_ONE,
                             spec.taker_fee_rate)
    assert (im, ftc, im + ftc) == (usdc("2525"), usdc("12.375"), usdc("2537.375"))


def test_a_closing_after_settlements_shows_closed_pnl_against_the_true_entry() -> None:
    """The wallet got 175 at the settlement and 100 at the close (against 52,000); the
    closed P&L of the close is against the true 50,250: (53,000 − 50,250) × 0.1 = 275."""
    engine = engine_with_a_u1_long()
    settle(engine, "52000")
    seq = engine.last_seq
    engine.apply(IndexPrice(seq + 1, SESSION_MS + 1, "BTCPERP", px("53000")))
    engine.apply(MarkPrice(seq + 2, SESSION_MS + 1, "BTCPERP", px("53000")))
    engine.apply(PlaceOrder(seq + 3, SESSION_MS + 1, 2, "BTCPERP", BUY, OrderType.LIMIT,
                            lots("0.1"), px("53000")))
    events = engine.apply(PlaceOrder(seq + 4, SESSION_MS + 1, 1, "BTCPERP", SELL,
                                     OrderType.MARKET, lots("0.1")))
    engine.check_invariants()
    [done] = [e for e in events if isinstance(e, Executed) and e.account_id == 1]
    [cash] = [e for e in events if isinstance(e, BalanceChanged) and e.account_id == 1]
    assert cash.cash_flow_atoms == usdc("100")
    assert done.closed_pnl_atoms == usdc("275")
    position = engine.clearing.accounts[1].positions["BTCPERP", 0]
    assert (position.size_lots, position.entry_value_atoms, position.true_entry_atoms) == (
        0, 0, 0)


def test_several_sessions_realise_the_whole_move_and_keep_the_true_entry() -> None:
    """Three settlements at 52,000, 51,000, 54,000: +175, −100, +300; avgPrice 50,250."""
    engine = engine_with_a_u1_long()
    got = []
    for n, mark in enumerate(("52000", "51000", "54000"), start=1):
        events = settle(engine, mark, n * SESSION_MS)
        got += [e.realised_pnl_atoms for e in events
                if isinstance(e, SessionSettled) and e.account_id == 1]
    assert got == [usdc("175"), -usdc("100"), usdc("300")]
    position = engine.clearing.accounts[1].positions["BTCPERP", 0]
    assert average(position.true_entry_atoms, position.qty_lots) == 50_250
    assert average(position.entry_value_atoms, position.qty_lots) == 54_000


def test_an_isolated_loss_comes_out_of_the_position_margin_first() -> None:
    """margin + uPnL, what the liquidation trigger compares with MM, does not move."""
    engine = engine_with_a_u1_long(MarginMode.ISOLATED)
    account = engine.clearing.accounts[1]
    position = account.positions["BTCPERP", 0]
    engine.apply(MarkPrice(engine.last_seq + 1, 100, "BTCPERP", px("49000")))
    before = position.margin_atoms + FREE.contract.unrealised_pnl_atoms(
        BUY, position.entry_value_atoms, position.qty_lots, px("49000"))
    available = engine.clearing.available_atoms(account, "USDC")
    events = settle(engine, "49000")
    [mine] = [e for e in events if isinstance(e, SessionSettled) and e.account_id == 1]
    assert mine.realised_pnl_atoms == -usdc("125")  # (49,000 − 50,250) × 0.1
    assert position.margin_atoms == before  # uPnL now 0
    funding = sum(e.change_atoms for e in events if isinstance(e, BalanceChanged)
                  and e.account_id == 1 and e.reason is BalanceReason.FUNDING)
    assert engine.clearing.available_atoms(account, "USDC") == available + funding


def test_a_cross_wallet_may_go_negative_while_its_equity_holds() -> None:
    """§3.2: a settled loss may take the USDC wallet below zero (a derivatives liability).

    Account 1 is long BTCPERP (settling hourly here) and short ETHPERP (8-hourly); BTC falls
    and ETH falls further: the BTCPERP settlement realises more loss than the wallet holds
    while ETHPERP's unrealised gain keeps the cross account's USDC equity positive. The
    settlement does not move that equity, so nothing is liquidated.
    """
    eth = btcperp(symbol="ETHPERP", base_coin="ETH", taker_fee_rate=0, maker_fee_rate=0)
    engine = Engine([FREE, eth])
    commands = [
        Deposit(0, 0, 1, "USDC", usdc("700")), Deposit(0, 0, 2, "USDC", usdc("100000")),
        SetFundingInterval(0, 0, "BTCPERP", 60),
        SetLeverage(0, 0, 1, "BTCPERP", 50 * RATE_ONE, 50 * RATE_ONE),
        SetLeverage(0, 0, 1, "ETHPERP", 50 * RATE_ONE, 50 * RATE_ONE),
        IndexPrice(0, 0, "BTCPERP", px("50000")), MarkPrice(0, 0, "BTCPERP", px("50000")),
        IndexPrice(0, 0, "ETHPERP", px("3000")), MarkPrice(0, 0, "ETHPERP", px("3000")),
        PlaceOrder(0, 0, 2, "BTCPERP", SELL, OrderType.LIMIT, lots("0.1"), px("50000")),
        PlaceOrder(0, 0, 1, "BTCPERP", BUY, OrderType.MARKET, lots("0.1")),
        PlaceOrder(0, 0, 2, "ETHPERP", BUY, OrderType.LIMIT, lots("0.5"), px("3000")),
        PlaceOrder(0, 0, 1, "ETHPERP", SELL, OrderType.MARKET, lots("0.5")),
        MarkPrice(0, 0, "ETHPERP", px("1000")),  # +1,000 unrealised on the short
        MarkPrice(0, 0, "BTCPERP", px("42000")),  # −800 unrealised on the long
    ]
    for seq, command in enumerate(commands, start=1):
        engine.apply(msgspec.structs.replace(command, seq=seq, ts_ms=seq))
        engine.check_invariants()
    account = engine.clearing.accounts[1]
    equity = engine.clearing.equity_atoms(account, "USDC")
    events = engine.apply(Tick(len(commands) + 1, 3_600_000))
    engine.check_invariants()
    [mine] = [e for e in events if isinstance(e, SessionSettled) and e.account_id == 1]
    assert mine.realised_pnl_atoms == -usdc("800")
    funding = sum(e.change_atoms for e in events if isinstance(e, BalanceChanged)
                  and e.account_id == 1 and e.reason is BalanceReason.FUNDING)
    assert account.balances["USDC"] == usdc("700") - usdc("800") + funding < 0
    assert account.positions["BTCPERP", 0].size_lots == lots("0.1")  # not liquidated
    # The equity at the settlement's marks (the Tick moves the marks on afterwards).
    btc, eth_short = account.positions["BTCPERP", 0], account.positions["ETHPERP", 0]
    after = (account.balances["USDC"]
             + FREE.contract.unrealised_pnl_atoms(BUY, btc.entry_value_atoms, btc.qty_lots,
                                                  mine.mark_price_ticks)
             + eth.contract.unrealised_pnl_atoms(SELL, eth_short.entry_value_atoms,
                                                 eth_short.qty_lots, px("1000")))
    assert after == equity + funding
    assert not any(isinstance(e, SessionSettled) and e.symbol == "ETHPERP" for e in events)


def test_hedge_mode_is_refused_with_the_inverse_rule() -> None:
    """§3.1: one-way only; the same rule and code as inverse contracts (110029)."""
    engine = Engine([FREE, btcusdt()])
    engine.apply(Deposit(1, 1, 1, "USDC", usdc("1000")))
    engine.apply(Deposit(2, 2, 1, "USDT", usdc("1000")))
    [refused] = engine.apply(SwitchPositionMode(3, 3, 1, "BTCPERP", PositionMode.HEDGE))
    assert isinstance(refused, CommandRejected)
    assert refused.reason is RejectCode.HEDGE_MODE_UNSUPPORTED
    events = engine.apply(SwitchPositionMode(4, 4, 1, "BTCUSDT", PositionMode.HEDGE))
    assert not any(isinstance(e, CommandRejected) for e in events)


def test_a_snapshot_keeps_the_true_entry_and_a_usdt_record_is_unchanged() -> None:
    engine = engine_with_a_u1_long()
    settle(engine, "52000")
    position = engine.clearing.accounts[1].positions["BTCPERP", 0]
    record = position.to_record()
    assert len(record) == 14 and record[13] == position.true_entry_atoms
    assert Position.from_record(record).true_entry_atoms == position.true_entry_atoms
    restored = Engine.from_snapshot([FREE], engine.to_snapshot())
    assert restored.state_hash() == engine.state_hash()
    plain = Position(1, "BTCUSDT", 0, RATE_ONE)
    apply_fill(plain, btcusdt(), BUY, 500_000, 100)
    assert len(plain.to_record()) == 13  # what the behaviour digest hashes stays as it was


def test_a_listed_usdc_contract_keeps_its_display_name_and_sessions() -> None:
    """An operator's listing (`ListInstrument`, a spec record) carries displayName too."""
    engine = Engine([btcusdt()])
    events = engine.apply(ListInstrument(1, 1, spec_record(btcperp())))
    assert not any(isinstance(e, CommandRejected) for e in events), events
    listed = engine.instruments["BTCPERP"]
    assert (listed.display_name, listed.session_settled, listed.one_way_only) == (
        "BTC-PERP", True, True)

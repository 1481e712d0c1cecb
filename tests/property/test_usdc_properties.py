"""Random trading that mixes BTCUSDT (settled in USDT) and BTCPERP (USDC, session settlement).

Time runs a minute per command and both symbols fund hourly, so funding and (for BTCPERP)
session settlements land in the middle of the stream, among marks that jump up to 10%
(liquidations in both margin modes, ADL). After every command, per coin: every atom is
accounted for (wallets in the cash view + fee account + insurance fund = deposits −
withdrawals, recounted here), long OI = short OI, the fast available balance equals the full
figures', and every open BTCPERP position's true entry is consistent (positive exactly when
it is open). After every session settlement each BTCPERP position's session entry is the
value at the settlement's mark, and the settled P&L sums to the wallet changes of its
SESSION_SETTLEMENT lines. A replay gives the same state hash.
"""

from __future__ import annotations

import random

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.core import Command, Engine, OrderType, PlaceOrder, Side
from perpx.core.commands import (
    AdjustMargin,
    CancelOrder,
    Deposit,
    IndexPrice,
    MarkPrice,
    SetFundingInterval,
    SetLeverage,
    SetMarginMode,
    Withdraw,
)
from perpx.core.enums import BalanceReason, MarginMode
from perpx.core.events import BalanceChanged, Liquidated, SessionSettled
from perpx.core.numbers import RATE_ONE
from support.builders import btcperp, btcusdt

USDT, USDC = btcusdt(), btcperp()
COIN = {USDT.symbol: "USDT", USDC.symbol: "USDC"}
MID = {USDT.symbol: 650_000, USDC.symbol: 130_000}  # 65,000 on a 0.10 and a 0.5 tick
WIDE = {USDT.symbol: 6_000, USDC.symbol: 1_200}
ACCOUNTS = (1, 2, 3, 4, 5, 6, 7)
ISOLATED = (4, 5)
ATOMS = 10**8
MINUTE_MS = 60_000


def random_command(rng: random.Random, seq: int, engine: Engine) -> Command:
    account = rng.choice(ACCOUNTS)
    spec = rng.choice([USDT, USDC])
    symbol = spec.symbol
    draw = rng.random()
    if draw < 0.55:
        side = rng.choice([Side.BUY, Side.SELL])
        kind = OrderType.MARKET if rng.random() < 0.15 else OrderType.LIMIT
        spread = WIDE[symbol] // 20
        price = None if kind is OrderType.MARKET else MID[symbol] + rng.randint(-spread, spread)
        return PlaceOrder(seq, seq, account, symbol, side, kind, rng.randint(1, 60), price,
                          reduce_only=rng.random() < 0.1)
    if draw < 0.65 and engine.open_orders:
        order = engine.open_orders[rng.choice(sorted(engine.open_orders))]
        return CancelOrder(seq, seq, order.account_id, order.symbol, order.order_id)
    if draw < 0.78:
        wide = WIDE[symbol] * (10 if rng.random() < 0.2 else 1)  # now and then a 10% move
        return MarkPrice(seq, seq, symbol, MID[symbol] + rng.randint(-wide, wide))
    if draw < 0.84:
        return Deposit(seq, seq, account, COIN[symbol], rng.randint(1, 500) * ATOMS)
    if draw < 0.88:
        return Withdraw(seq, seq, account, COIN[symbol], rng.randint(1, 500) * ATOMS)
    if draw < 0.94:
        leverage = rng.choice([1, 2, 5, 10, 25, 50, 100]) * RATE_ONE
        return SetLeverage(seq, seq, account, symbol, leverage, leverage)
    return AdjustMargin(seq, seq, account, symbol, 0, rng.randint(-50, 50) * ATOMS)


def cash_view(engine: Engine) -> dict[str, int]:
    """Per coin, Σ (wallet − signed entry value) over every account (linear: value_sign 1)."""
    totals: dict[str, int] = {"USDT": 0, "USDC": 0}
    for account in engine.clearing.accounts.values():
        for coin, balance in account.balances.items():
            totals[coin] = totals.get(coin, 0) + balance
        for (symbol, _idx), position in account.positions.items():
            sign = 1 if position.size_lots > 0 else -1
            totals[engine.instruments[symbol].settle_coin] -= sign * position.entry_value_atoms
    return totals


def run_stream(seed: int, length: int) -> tuple[Engine, list[Command], int, set[str]]:
    rng = random.Random(seed)
    engine = Engine([USDT, USDC])
    deposits = {"USDT": 0, "USDC": 0}
    commands: list[Command] = []
    setup: list[Command] = []
    for account in ACCOUNTS:
        setup += [Deposit(0, 0, account, "USDT", 2_000 * ATOMS),
                  Deposit(0, 0, account, "USDC", 2_000 * ATOMS)]
    setup += [SetMarginMode(0, 0, account, MarginMode.ISOLATED) for account in ISOLATED]
    for spec in (USDT, USDC):
        setup += [IndexPrice(0, 0, spec.symbol, MID[spec.symbol]),
                  MarkPrice(0, 0, spec.symbol, MID[spec.symbol]),
                  SetFundingInterval(0, 0, spec.symbol, 60)]
    sessions = 0
    liquidated: set[str] = set()
    for seq in range(1, len(setup) + length + 1):
        draft = setup[seq - 1] if seq <= len(setup) else random_command(rng, seq, engine)
        cmd = msgspec.structs.replace(draft, seq=seq, ts_ms=seq * MINUTE_MS)
        events = engine.apply(cmd)
        commands.append(cmd)
        settled = [e for e in events if isinstance(e, SessionSettled)]
        booked = sum(e.change_atoms for e in events if isinstance(e, BalanceChanged)
                     and e.reason is BalanceReason.SESSION_SETTLEMENT)
        assert booked == sum(e.realised_pnl_atoms for e in settled), (seq, cmd)
        sessions += bool(settled)
        for event in settled:
            # The session entry became the value at the settlement's mark (exact).
            assert event.realised_pnl_atoms == (
                USDC.notional_atoms(event.mark_price_ticks, abs(event.size_lots))
                - event.session_entry_value_atoms) * (1 if event.size_lots > 0 else -1)
        for event in events:
            if isinstance(event, BalanceChanged) and event.reason in (
                    BalanceReason.DEPOSIT, BalanceReason.WITHDRAW):
                deposits[event.coin] += event.change_atoms
            if isinstance(event, Liquidated):
                liquidated.add(event.symbol)
        engine.check_invariants()
        assert cash_view(engine) == deposits, (seq, cmd)
        for account_id in ACCOUNTS:
            account = engine.clearing.accounts.get(account_id)
            if account is None:
                continue
            for coin in ("USDT", "USDC"):
                figures = engine.clearing.figures(account, coin)
                assert engine.clearing.available_atoms(account, coin) == (
                    figures.available_atoms), (seq, account_id, coin)
            for (symbol, _idx), position in account.positions.items():
                if symbol == USDC.symbol:
                    assert (position.true_entry_atoms > 0) == (position.size_lots != 0)
                else:
                    assert position.true_entry_atoms == 0
    return engine, commands, sessions, liquidated


@pytest.mark.parametrize("seed", range(3))
def test_mixed_usdt_and_usdc_trading_with_sessions_accounts_for_every_atom(seed: int) -> None:
    engine, commands, sessions, _ = run_stream(seed, 700)
    assert sessions >= 10  # hourly settlements in the middle of the stream, not vacuous
    replayed = Engine([USDT, USDC])
    for command in commands:
        replayed.apply(command)
    assert replayed.state_hash() == engine.state_hash()


def test_the_mixed_stream_liquidates_usdc_positions_too() -> None:
    liquidated: set[str] = set()
    for seed in range(3):
        liquidated |= run_stream(seed, 700)[3]
    assert liquidated == {"BTCUSDT", "BTCPERP"}


@given(st.integers(0, 10**6), st.integers(60, 200))
@settings(deadline=None, max_examples=20)
def test_any_mixed_stream_with_sessions_conserves_each_coin(seed: int, length: int) -> None:
    run_stream(seed, length)

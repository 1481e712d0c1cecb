"""Random trading that mixes BTCUSDT (settled in USDT) and BTCUSD (inverse, settled in BTC).

After every command, per coin: every atom is accounted for (wallets in the cash view + fee
account + insurance fund = deposits − withdrawals, recounted here from the accounts and the
deposit events, beside the engine's own check), long OI = short OI, nobody's equity in either
coin is below zero, the fast available balance equals the full figures', and each position's
risk figures equal `position_risk`'s. After every mark move no position in either coin is
left past its liquidation point. Marks jump up to 10% now and then, so positions of both
contracts are liquidated, in both margin modes, and deleveraged.

A second property drains isolated inverse margins with hourly funding (paid in BTC, ``C/MP x
F``) and checks that no isolated inverse position sits at or below its maintenance margin
after a mark move or a settlement without being liquidated (#13 B1, inverse form).
"""

from __future__ import annotations

import random

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.core import Command, Engine, OrderType, PlaceOrder, Side
from perpx.core.account.accounts import Account
from perpx.core.account.margin import order_cost_fast_atoms
from perpx.core.account.margin_model import position_risk
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
from perpx.core.events import BalanceChanged, FundingSettled, Liquidated
from perpx.core.numbers import RATE_ONE
from perpx.core.risk import takeover
from perpx.core.risk.liquidation import is_past_liquidation
from support.builders import btcusd, btcusdt

LINEAR, INVERSE = btcusdt(), btcusd()
COIN = {LINEAR.symbol: "USDT", INVERSE.symbol: "BTC"}
MID = 650_000  # 65,000.0 on both (tick 0.10)
ACCOUNTS = (1, 2, 3, 4, 5, 6, 7)
ISOLATED = (4, 5)
ATOMS = 10**8


def random_command(rng: random.Random, seq: int, engine: Engine) -> Command:
    """Draw one command on either symbol; sizes a few hundred USDT's worth."""
    account = rng.choice(ACCOUNTS)
    spec = rng.choice([LINEAR, INVERSE])
    symbol = spec.symbol
    draw = rng.random()
    if draw < 0.55:
        side = rng.choice([Side.BUY, Side.SELL])
        kind = OrderType.MARKET if rng.random() < 0.15 else OrderType.LIMIT
        price = None if kind is OrderType.MARKET else MID + rng.randint(-300, 300)
        # BTCUSDT: 0.001..0.06 BTC; BTCUSD: 65..3,900 USD, the same exposure.
        qty = rng.randint(1, 60) * (65 if spec is INVERSE else 1)
        return PlaceOrder(seq, seq, account, symbol, side, kind, qty, price,
                          reduce_only=rng.random() < 0.1)
    if draw < 0.65 and engine.open_orders:
        order = engine.open_orders[rng.choice(sorted(engine.open_orders))]
        return CancelOrder(seq, seq, order.account_id, order.symbol, order.order_id)
    if draw < 0.78:
        wide = 60_000 if rng.random() < 0.2 else 6_000  # now and then a 10% move
        return MarkPrice(seq, seq, symbol, MID + rng.randint(-wide, wide))
    if draw < 0.84:
        coin = COIN[symbol]
        amount = rng.randint(1, 500) * (ATOMS if coin == "USDT" else 1_500)
        return Deposit(seq, seq, account, coin, amount)
    if draw < 0.88:
        coin = COIN[symbol]
        amount = rng.randint(1, 500) * (ATOMS if coin == "USDT" else 1_500)
        return Withdraw(seq, seq, account, coin, amount)
    if draw < 0.94:
        leverage = rng.choice([1, 2, 5, 10, 25, 50, 100]) * RATE_ONE
        return SetLeverage(seq, seq, account, symbol, leverage, leverage)
    unit = ATOMS if spec is LINEAR else 1_500
    return AdjustMargin(seq, seq, account, symbol, 0, rng.randint(-50, 50) * unit)


def cash_view(engine: Engine) -> dict[str, int]:
    """Per coin, Σ (wallet − value_sign × signed entry value) over every account."""
    totals: dict[str, int] = {"USDT": 0, "BTC": 0}
    for account in engine.clearing.accounts.values():
        for coin, balance in account.balances.items():
            totals[coin] = totals.get(coin, 0) + balance
        for (symbol, _idx), position in account.positions.items():
            spec = engine.instruments[symbol]
            sign = 1 if position.size_lots > 0 else -1
            totals[spec.settle_coin] -= (sign * spec.contract.value_sign
                                         * position.entry_value_atoms)
    return totals


def breached(engine: Engine, account: Account) -> bool:
    """Tell, by brute force, whether an account is liquidatable in either coin."""
    if account.margin_mode is MarginMode.CROSS:
        return any(
            takeover.cross_is_liquidatable(engine.clearing, account, coin)
            for coin in ("USDT", "BTC")
            if any(p.size_lots and engine.instruments[p.symbol].settle_coin == coin
                   for p in account.positions.values()))
    for position in account.positions.values():
        mark = engine.mark_price.get(position.symbol)
        if position.size_lots and mark is not None and is_past_liquidation(
                engine.clearing, position, mark):
            return True
    return False


def run_stream(seed: int, length: int) -> tuple[Engine, list[Command], set[str]]:
    rng = random.Random(seed)
    engine = Engine([LINEAR, INVERSE])
    deposits = {"USDT": 0, "BTC": 0}
    commands: list[Command] = []
    setup: list[Command] = []
    for account in ACCOUNTS:
        setup += [Deposit(0, 0, account, "USDT", 2_000 * ATOMS),
                  Deposit(0, 0, account, "BTC", 3_000_000)]  # 0.03 BTC, about 2,000 USD
    setup += [SetMarginMode(0, 0, account, MarginMode.ISOLATED) for account in ISOLATED]
    for spec in (LINEAR, INVERSE):
        setup += [IndexPrice(0, 0, spec.symbol, MID), MarkPrice(0, 0, spec.symbol, MID)]
    liquidated: set[str] = set()
    for seq in range(1, len(setup) + length + 1):
        draft = setup[seq - 1] if seq <= len(setup) else random_command(rng, seq, engine)
        cmd = msgspec.structs.replace(draft, seq=seq, ts_ms=seq)
        events = engine.apply(cmd)
        commands.append(cmd)
        for event in events:
            if isinstance(event, BalanceChanged) and event.reason in (
                    BalanceReason.DEPOSIT, BalanceReason.WITHDRAW):
                deposits[event.coin] += event.change_atoms
            if isinstance(event, Liquidated):
                liquidated.add(event.symbol)
        engine.check_invariants()
        # Every atom of every coin: the cash view equals the net deposits, coin by coin.
        assert cash_view(engine) == deposits, (seq, cmd)
        for account_id in ACCOUNTS:
            account = engine.clearing.accounts.get(account_id)
            if account is None:  # not funded yet
                continue
            for coin in ("USDT", "BTC"):
                figures = engine.clearing.figures(account, coin)
                assert figures.wallet_atoms + figures.upnl_atoms >= 0, (seq, cmd, account_id)
                assert engine.clearing.equity_atoms(account, coin) == (
                    figures.wallet_atoms + figures.upnl_atoms)
                assert engine.clearing.available_atoms(account, coin) == (
                    figures.available_atoms), (seq, account_id, coin)
            for position in account.positions.values():
                if position.size_lots:
                    spec = engine.instruments[position.symbol]
                    mark = engine.mark_of(position.symbol)
                    assert mark is not None
                    risk = position_risk(position, spec, mark, account.margin_mode)
                    side = Side.BUY if position.size_lots > 0 else Side.SELL
                    assert risk.upnl_atoms == spec.contract.unrealised_pnl_atoms(
                        side, position.entry_value_atoms, position.qty_lots, mark)
            if isinstance(cmd, MarkPrice):
                assert not breached(engine, account), (seq, cmd, account_id)
    return engine, commands, liquidated


@pytest.mark.parametrize("seed", range(4))
def test_mixed_linear_and_inverse_trading_accounts_for_every_atom_of_every_coin(
        seed: int) -> None:
    engine, commands, _ = run_stream(seed, 900)
    replayed = Engine([LINEAR, INVERSE])
    for command in commands:
        replayed.apply(command)
    assert replayed.state_hash() == engine.state_hash()


def test_the_mixed_stream_liquidates_inverse_positions_too() -> None:
    """The streams above are not vacuous: BTCUSD positions are taken over as well."""
    liquidated: set[str] = set()
    for seed in range(4):
        liquidated |= run_stream(seed, 900)[2]
    assert liquidated == {"BTCUSDT", "BTCUSD"}


@given(st.integers(0, 10**6), st.integers(20, 150))
@settings(deadline=None, max_examples=25)
def test_any_mixed_stream_conserves_each_coin(seed: int, length: int) -> None:
    run_stream(seed, length)


# -- isolated inverse margins drained by funding paid in BTC ---------------------------------

HOUR_MS = 3_600_000


def isolated_inverse_at_or_below_maintenance(engine: Engine) -> list[tuple[int, int, int]]:
    """Every isolated BTCUSD position whose margin + uPnL at the mark is at or below its MM."""
    mark = engine.mark_price.get(INVERSE.symbol)
    found: list[tuple[int, int, int]] = []
    if mark is None:
        return found
    for account_id in ACCOUNTS:
        account = engine.clearing.accounts[account_id]
        if account.margin_mode is not MarginMode.ISOLATED:
            continue
        position = account.positions.get((INVERSE.symbol, 0))
        if position is None or not position.size_lots:
            continue
        risk = position_risk(position, engine.instruments[INVERSE.symbol], mark,
                             MarginMode.ISOLATED)
        if position.margin_atoms + risk.upnl_atoms <= risk.mm_atoms:
            found.append((account_id, position.margin_atoms + risk.upnl_atoms, risk.mm_atoms))
    return found


@given(st.integers(0, 10**6), st.integers(40, 160),
       st.sampled_from([-8_000_000, -2_000_000, 2_000_000, 8_000_000]))
@settings(deadline=None, max_examples=30)
def test_no_isolated_inverse_position_sits_at_or_below_maintenance(
        seed: int, length: int, rate_8h: int) -> None:
    """Hourly funding at ``rate_8h / 8`` in BTC drains isolated margins; marks move too."""
    spec = btcusd(interest_rate_8h=rate_8h, premium_clamp_rate=abs(rate_8h),
                  upper_funding_rate=abs(rate_8h), lower_funding_rate=-abs(rate_8h))
    rng = random.Random(seed)
    engine = Engine([spec])
    ts = 0
    seq = 0

    def apply(command: Command) -> list:
        nonlocal ts, seq
        ts += 3 * 60_000  # three minutes a command: a settlement every twenty commands
        seq += 1
        events = engine.apply(msgspec.structs.replace(command, seq=seq, ts_ms=ts))
        engine.check_invariants()
        return events

    for account in ACCOUNTS:
        apply(Deposit(0, 0, account, "BTC", 3_000_000))
    for command in [SetMarginMode(0, 0, 1, MarginMode.ISOLATED),
                    SetMarginMode(0, 0, 4, MarginMode.ISOLATED),
                    SetMarginMode(0, 0, 5, MarginMode.ISOLATED),
                    SetFundingInterval(0, 0, spec.symbol, 60),
                    IndexPrice(0, 0, spec.symbol, MID), MarkPrice(0, 0, spec.symbol, MID)]:
        apply(command)
    settlements = applied = 0
    for _ in range(length):
        cmd = random_command(rng, 0, engine)
        # This engine lists BTCUSD alone: skip what the draw aimed at BTCUSDT or USDT.
        if getattr(cmd, "symbol", spec.symbol) != spec.symbol or getattr(
                cmd, "coin", "BTC") != "BTC":
            continue
        events = apply(cmd)
        applied += 1
        funded = any(isinstance(e, FundingSettled) for e in events)
        settlements += funded
        if isinstance(cmd, MarkPrice) or funded:
            assert not isolated_inverse_at_or_below_maintenance(engine), (seq, cmd)
            for account in ACCOUNTS:
                assert not breached(engine, engine.clearing.accounts[account]), (seq, account)
    assert settlements >= applied * 3 * 60_000 // HOUR_MS - 1


# -- the hot path's written-out order cost, for an inverse contract -------------------------


@given(st.sampled_from([Side.BUY, Side.SELL]), st.integers(0, 10**22),
       st.integers(1, 100).map(lambda x: x * RATE_ONE), st.integers(0, 200_000))
def test_written_out_order_cost_takes_the_inverse_sign_of_the_fee_to_close(
        side: Side, value: int, leverage: int, fee: int) -> None:
    """`order_cost_fast_atoms` with ``sign × value_sign`` is the inverse contract's cost."""
    contract = INVERSE.contract
    fast = order_cost_fast_atoms(side.sign * contract.value_sign, value, leverage, fee)
    assert fast == contract.order_cost_atoms(side, value, leverage, fee)

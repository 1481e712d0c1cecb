"""Random flows mixing linear and inverse, perpetual and dated, with an inverse delivery inside.

BTCUSDT, BTCUSD and BTCUSDZ26 trade side by side from USDT and BTC wallets (issue #16 item
5, the inverse part). After every command each coin is conserved exactly and open interest
balances (`Engine.check_invariants`, per coin). At BTCUSDZ26's delivery every position
settles in BTC by §2.5's inverse rule, ``C(1/EP - 1/DP)·side``, recomputed here with exact
fractions: the P&L under one satoshi toward the exchange, the fee ``C/DP x 0.05%``
truncated, the rounding's remainder never negative. A replay from a mid-flow snapshot ends
in the same state.
"""

from __future__ import annotations

import dataclasses
import random
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.core import Command, Engine, OrderType, PlaceOrder, Side
from perpx.core.commands import (
    CancelOrder,
    Deposit,
    IndexPrice,
    MarkPrice,
    SetLeverage,
    SetMarginMode,
    Tick,
    Withdraw,
)
from perpx.core.contract import InverseContract
from perpx.core.enums import MarginMode
from perpx.core.events import Event, FuturesDelivered, PositionDelivered
from perpx.core.numbers import RATE_ONE
from perpx.instruments import FUTURES_TABLE, load_instruments
from support.builders import btcusd, btcusdt

FUTURE = next(s for s in load_instruments(FUTURES_TABLE) if s.symbol == "BTCUSDZ26")
T = FUTURE.delivery_time_ms
ACCOUNTS = (1, 2, 3, 4, 5, 6)
ATOMS = 10**8
# (mid in ticks, largest order in lots, coin) per symbol: 60,000 on each tick size.
MARKET = {"BTCUSDT": (600_000, 60, "USDT"), "BTCUSD": (600_000, 20_000, "BTC"),
          FUTURE.symbol: (120_000, 20_000, "BTC")}
SYMBOLS = tuple(MARKET)


def random_command(rng: random.Random, seq: int, ts: int, engine: Engine) -> Command:
    account = rng.choice(ACCOUNTS)
    symbol = rng.choice(SYMBOLS)
    mid, most, coin = MARKET[symbol]
    draw = rng.random()
    if draw < 0.5:
        kind = OrderType.MARKET if rng.random() < 0.2 else OrderType.LIMIT
        price = None if kind is OrderType.MARKET else mid + rng.randint(-mid // 150, mid // 150)
        return PlaceOrder(seq, ts, account, symbol, rng.choice([Side.BUY, Side.SELL]), kind,
                          rng.randint(1, most), price, reduce_only=rng.random() < 0.1)
    if draw < 0.58 and engine.open_orders:
        order = engine.open_orders[rng.choice(sorted(engine.open_orders))]
        return CancelOrder(seq, ts, order.account_id, order.symbol, order.order_id)
    if draw < 0.72:
        return IndexPrice(seq, ts, symbol, mid + rng.randint(-mid // 20, mid // 20))
    if draw < 0.78:
        wide = mid // 10 if rng.random() < 0.2 else mid // 120  # now and then a 10% move
        return MarkPrice(seq, ts, symbol, mid + rng.randint(-wide, wide))
    if draw < 0.84:
        return Tick(seq, ts)
    amount = rng.randint(1, 500) * (ATOMS if coin == "USDT" else ATOMS // 1_000)
    if draw < 0.88:
        return Deposit(seq, ts, account, coin, amount)
    if draw < 0.91:
        return Withdraw(seq, ts, account, coin, amount)
    if draw < 0.96:
        leverage = rng.choice([1, 5, 10, 25, 50]) * RATE_ONE
        return SetLeverage(seq, ts, account, symbol, leverage, leverage)
    return SetMarginMode(seq, ts, account, rng.choice([MarginMode.ISOLATED, MarginMode.CROSS]))


def check_delivery(before: dict[tuple[int, int], tuple[int, int]],
                   events: list[Event]) -> None:
    delivered = [e for e in events if type(e) is PositionDelivered]
    assert {(e.account_id, e.position_idx) for e in delivered} == set(before)
    (done,) = [e for e in events if type(e) is FuturesDelivered]
    assert done.remainder_atoms >= 0
    contract = FUTURE.contract
    assert isinstance(contract, InverseContract)
    dp_ticks = Fraction(done.delivery_price_e8, FUTURE.tick_atoms)
    for row in delivered:
        size, entry = before[row.account_id, row.position_idx]
        value = Fraction(abs(size) * contract.atoms_ticks_per_lot) / dp_ticks  # C/DP, atoms
        exact = entry - value if size > 0 else value - entry
        assert exact - 1 < row.pnl_atoms <= exact  # toward the exchange, under a satoshi
        fee = value * FUTURE.delivery_fee_rate / RATE_ONE
        assert fee - 1 < row.fee_atoms <= fee  # truncated
        assert row.value_atoms == int(value)
    # Inverse cash view: a long had received its entry value, a short paid it.
    assert sum(e.pnl_atoms - (e.entry_value_atoms if e.size_lots > 0 else -e.entry_value_atoms)
               for e in delivered) + done.remainder_atoms == 0


@settings(max_examples=20, deadline=None)
@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=120, max_value=400))
def test_random_linear_and_inverse_flows_through_an_inverse_delivery_conserve_each_coin(
        seed: int, steps: int) -> None:
    rng = random.Random(seed)
    spec = dataclasses.replace(FUTURE, delivery_window_ms=steps * 500)
    specs = [btcusdt(), btcusd(), spec]
    engine = Engine(specs)
    commands: list[Command] = []
    seq = 0
    for account in ACCOUNTS:
        for coin, amount in (("USDT", 200_000 * ATOMS), ("BTC", 5 * ATOMS)):
            seq += 1
            commands.append(Deposit(seq, T - 10**7, account, coin, amount))
    for symbol in SYMBOLS:
        seq += 1
        commands.append(IndexPrice(seq, T - 10**7, symbol, MARKET[symbol][0]))
    for command in commands:
        engine.apply(command)
    start = T - steps * 500
    delivered = False
    for step in range(2 * steps):
        seq += 1
        ts = start + 500 * step
        command = random_command(rng, seq, ts, engine)
        held = {(a.account_id, idx): (p.size_lots, p.entry_value_atoms)
                for a in engine.clearing.accounts.values()
                for (symbol, idx), p in a.positions.items()
                if symbol == spec.symbol and p.size_lots}
        events = engine.apply(command)
        commands.append(command)
        engine.check_invariants()
        if not delivered and ts >= T:
            delivered = True
            check_delivery(held, events)
    assert delivered
    cut = rng.randint(1, len(commands) - 1)
    first = Engine(specs)
    for command in commands[:cut]:
        first.apply(command)
    restored = Engine.from_snapshot(specs, first.to_snapshot())
    for command in commands[cut:]:
        restored.apply(command)
    assert restored.state_hash() == engine.state_hash()

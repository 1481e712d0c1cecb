"""Random flows on a perpetual and a dated future with the delivery in the middle.

After every command each coin is conserved (wallets in the cash view + fee account +
insurance fund = deposits - withdrawals) and open interest balances
(`Engine.check_invariants`). At delivery every position of the future settles (none is left,
no order of it survives), the rounding's remainder is never negative, and each settled
position's P&L and fee are the spec's (§2.5) recomputed with exact fractions. Afterwards the
future refuses every order, and a replay from a snapshot taken mid-flow ends in the same
state.
"""

from __future__ import annotations

import dataclasses
import random
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.core import Command, Engine, OrderType, PlaceOrder, Side
from perpx.core.codes import RejectCode
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
from perpx.core.enums import MarginMode
from perpx.core.events import (
    Event,
    FuturesDelivered,
    OrderAccepted,
    OrderRejected,
    PositionDelivered,
)
from perpx.core.numbers import RATE_ONE
from perpx.instruments import FUTURES_TABLE, load_instruments
from support.builders import btcusdt

FUTURE = load_instruments(FUTURES_TABLE)[0]
T = FUTURE.delivery_time_ms
SYMBOLS = ("BTCUSDT", FUTURE.symbol)
ACCOUNTS = (1, 2, 3, 4, 5, 6)
USDT = 10**8
MID = 600_000  # 60,000.0


def random_command(rng: random.Random, seq: int, ts: int, engine: Engine) -> Command:
    """Draw one command at time `ts`; prices near 60,000, quantities up to 0.06 BTC."""
    account = rng.choice(ACCOUNTS)
    symbol = rng.choice(SYMBOLS)
    draw = rng.random()
    if draw < 0.5:
        kind = OrderType.MARKET if rng.random() < 0.2 else OrderType.LIMIT
        price = None if kind is OrderType.MARKET else MID + rng.randint(-400, 400)
        return PlaceOrder(seq, ts, account, symbol, rng.choice([Side.BUY, Side.SELL]), kind,
                          rng.randint(1, 60), price, reduce_only=rng.random() < 0.1)
    if draw < 0.58 and engine.open_orders:
        order = engine.open_orders[rng.choice(sorted(engine.open_orders))]
        return CancelOrder(seq, ts, order.account_id, order.symbol, order.order_id)
    if draw < 0.72:
        # Odd index ticks, so the delivery price falls between atoms and P&L rounds.
        return IndexPrice(seq, ts, symbol, MID + rng.randint(-3_000, 3_000))
    if draw < 0.78:
        wide = 60_000 if rng.random() < 0.2 else 5_000  # now and then a 10% move
        return MarkPrice(seq, ts, symbol, MID + rng.randint(-wide, wide))
    if draw < 0.84:
        return Tick(seq, ts)
    if draw < 0.88:
        return Deposit(seq, ts, account, "USDT", rng.randint(1, 500) * USDT)
    if draw < 0.91:
        return Withdraw(seq, ts, account, "USDT", rng.randint(1, 500) * USDT)
    if draw < 0.96:
        leverage = rng.choice([1, 5, 10, 25, 50]) * RATE_ONE
        return SetLeverage(seq, ts, account, symbol, leverage, leverage)
    return SetMarginMode(seq, ts, account, rng.choice([MarginMode.ISOLATED, MarginMode.CROSS]))


def check_delivery(engine: Engine, before: dict[tuple[int, int], tuple[int, int]],
                   events: list[Event]) -> None:
    """Every position held before settled by the spec's rule; nothing of the future is left."""
    delivered = [e for e in events if type(e) is PositionDelivered]
    assert {(e.account_id, e.position_idx) for e in delivered} == set(before)
    (done,) = [e for e in events if type(e) is FuturesDelivered]
    assert done.remainder_atoms >= 0
    dp = Fraction(done.delivery_price_e8, FUTURE.tick_atoms)  # ticks
    for row in delivered:
        size, entry = before[row.account_id, row.position_idx]
        value = dp * abs(size) * FUTURE.atoms_per_tick_lot
        exact = value - entry if size > 0 else entry - value
        assert exact - 1 < row.pnl_atoms <= exact  # toward the exchange, under one atom
        fee = value * FUTURE.delivery_fee_rate / RATE_ONE
        assert fee - 1 < row.fee_atoms <= fee  # truncated
    # The cash view (wallet - signed entry value) loses only the remainder, kept by the fund.
    assert sum(e.pnl_atoms + (e.entry_value_atoms if e.size_lots > 0 else -e.entry_value_atoms)
               for e in delivered) + done.remainder_atoms == 0
    for account in engine.clearing.accounts.values():
        for (symbol, _), position in account.positions.items():
            assert symbol != FUTURE.symbol or position.size_lots == 0
    assert not any(o.symbol == FUTURE.symbol for o in engine.open_orders.values())
    assert not any(o.symbol == FUTURE.symbol for o in engine.stops.waiting.orders.values())


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=2**32), st.integers(min_value=120, max_value=400))
def test_random_flows_through_a_delivery_conserve_money(seed: int, steps: int) -> None:
    rng = random.Random(seed)
    # A 0.001 lot at a DP with 8 decimals: values fall between atoms.
    spec = dataclasses.replace(FUTURE, delivery_window_ms=steps * 500)
    specs = [btcusdt(), spec]
    engine = Engine(specs)
    commands: list[Command] = []
    seq = 0
    for account in ACCOUNTS:
        seq += 1
        commands.append(Deposit(seq, T - 10**7, account, "USDT", 200_000 * USDT))
    for symbol in SYMBOLS:
        seq += 1
        commands.append(IndexPrice(seq, T - 10**7, symbol, MID))
    for command in commands:
        engine.apply(command)
    # Half the flow before delivery, half after, one command every 500 ms.
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
            check_delivery(engine, held, events)
        if delivered and isinstance(command, PlaceOrder) and command.symbol == spec.symbol:
            assert not any(type(e) is OrderAccepted for e in events)
            (refused,) = [e for e in events if type(e) is OrderRejected]
            assert refused.reason is RejectCode.CONTRACT_NOT_LIVE
    assert delivered
    cut = rng.randint(1, len(commands) - 1)
    first = Engine(specs)
    for command in commands[:cut]:
        first.apply(command)
    restored = Engine.from_snapshot(specs, first.to_snapshot())
    for command in commands[cut:]:
        restored.apply(command)
    assert restored.state_hash() == engine.state_hash()

"""Random flows mixing every contract type, with a delivery in the middle (issue #16 item 5).

One engine lists BTCUSDT (linear USDT perpetual), BTCUSD (inverse perpetual, settled in BTC)
and BTCPERP (USDC perpetual, session settlement); the dated USDT future BTCUSDT-25DEC26 is
listed during the flow by the operator's `ListInstrument`. Accounts trade in cross and
isolated mode with USDT, USDC and BTC in their wallets: orders (limit, market, reduce-only),
cancels, amends, index and mark moves (now and then 10%, which liquidates and deleverages),
deposits, withdrawals, leverage and margin changes. A command a minute, funding every hour on
the three perpetuals (which also settles BTCPERP's session), and the future's delivery time
falls in the middle of the stream.

After every command: each coin is conserved to the atom and open interest balances (the
core's own `Engine.check_invariants`: wallets in the cash view of every account, the fee
account and the insurance fund included, per coin), and every total the clearing keeps
between commands equals its recomputation from scratch (`assert_incremental_totals_match`
of the core property test, per symbol and per settle coin); the read side's fold keeps
each BTCPERP position's true entry equal to the core's. At the delivery no position or
order of the future is left; after it every order on the future is refused with 110074. At
the end a replay of the commands, and one from a mid-way snapshot, give the same state hash.
"""

from __future__ import annotations

import random

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_account_properties import assert_incremental_totals_match

from perpx.core import AmendOrder, Command, Engine, OrderType, PlaceOrder, Side
from perpx.core.codes import RejectCode
from perpx.core.commands import (
    AdjustMargin,
    CancelOrder,
    Deposit,
    IndexPrice,
    ListInstrument,
    MarkPrice,
    SetFundingInterval,
    SetLeverage,
    SetMarginMode,
    Tick,
    Withdraw,
)
from perpx.core.enums import MarginMode
from perpx.core.events import (
    Deleveraged,
    FundingSettled,
    FuturesDelivered,
    Liquidated,
    OrderAccepted,
    OrderRejected,
    PositionDelivered,
    SessionSettled,
)
from perpx.core.instruments import InstrumentSpec, spec_record
from perpx.core.numbers import RATE_ONE
from perpx.instruments import FUTURES_TABLE, load_instruments
from perpx.store.records import Projector
from support.builders import btcperp, btcusd, btcusdt, restored_midway

LINEAR, INVERSE, USDC = btcusdt(), btcusd(), btcperp()
FUTURE = load_instruments(FUTURES_TABLE)[0]  # BTCUSDT-25DEC26, listed during the flow
PERPETUALS = [LINEAR, INVERSE, USDC]
EVERY = (LINEAR, INVERSE, USDC, FUTURE)
T = FUTURE.delivery_time_ms
MID = {LINEAR.symbol: 650_000, INVERSE.symbol: 650_000, USDC.symbol: 130_000,
       FUTURE.symbol: 650_000}  # 65,000 on 0.10 and 0.5 ticks
LOT = {LINEAR.symbol: 1, INVERSE.symbol: 65, USDC.symbol: 1, FUTURE.symbol: 1}  # ~65 USD
UNIT = {"USDT": 10**8, "USDC": 10**8, "BTC": 1_500}  # about one USD of each coin
ACCOUNTS = (1, 2, 3, 4, 5, 6, 7, 8)
ISOLATED = (4, 5, 8)
MINUTE_MS = 60_000


def random_command(rng: random.Random, seq: int, engine: Engine) -> Command:
    """Draw one command on any listed symbol (the future too, before and after delivery)."""
    account = rng.choice(ACCOUNTS)
    spec = rng.choice([s for s in EVERY if s.symbol in engine.instruments])
    symbol = spec.symbol
    coin = spec.settle_coin
    draw = rng.random()
    if draw < 0.45:
        kind = OrderType.MARKET if rng.random() < 0.15 else OrderType.LIMIT
        spread = MID[symbol] // 100  # within 1% of the middle
        price = None if kind is OrderType.MARKET else MID[symbol] + rng.randint(-spread, spread)
        return PlaceOrder(seq, seq, account, symbol, rng.choice([Side.BUY, Side.SELL]), kind,
                          rng.randint(1, 60) * LOT[symbol], price,
                          reduce_only=rng.random() < 0.1)
    if draw < 0.55 and engine.open_orders:
        order = engine.open_orders[rng.choice(sorted(engine.open_orders))]
        if rng.random() < 0.5:
            return CancelOrder(seq, seq, order.account_id, order.symbol, order.order_id)
        step = MID[order.symbol] // 200
        return AmendOrder(seq, seq, order.account_id, order.symbol, order.order_id,
                          qty_lots=max(1, order.qty_lots + rng.randint(-10, 10) * LOT[
                              order.symbol]) if rng.random() < 0.5 else None,
                          price_ticks=order.price_ticks + rng.randint(-step, step))
    if draw < 0.63:
        return IndexPrice(seq, seq, symbol, MID[symbol] + rng.randint(-MID[symbol] // 100,
                                                                     MID[symbol] // 100))
    if draw < 0.75:
        wide = MID[symbol] // (10 if rng.random() < 0.2 else 100)  # now and then a 10% crash
        return MarkPrice(seq, seq, symbol, MID[symbol] + rng.randint(-wide, wide))
    if draw < 0.78:
        return Tick(seq, seq)
    if draw < 0.83:
        return Deposit(seq, seq, account, coin, rng.randint(1, 500) * UNIT[coin])
    if draw < 0.87:
        return Withdraw(seq, seq, account, coin, rng.randint(1, 500) * UNIT[coin])
    if draw < 0.93:
        leverage = rng.choice([1, 2, 5, 10, 25, 50, 100]) * RATE_ONE
        return SetLeverage(seq, seq, account, symbol, leverage, leverage)
    if draw < 0.95:
        return SetMarginMode(seq, seq, account,
                             rng.choice([MarginMode.ISOLATED, MarginMode.CROSS]))
    return AdjustMargin(seq, seq, account, symbol, 0, rng.randint(-50, 50) * UNIT[coin])


class Seen:
    """What a stream went through, so the tests can show it was not vacuous."""

    def __init__(self) -> None:
        self.liquidated: set[str] = set()
        self.deleveraged: set[str] = set()
        self.fundings = 0
        self.sessions = 0
        self.delivered = False
        self.positions_delivered = 0
        self.refused_after = 0


def check_after_delivery(engine: Engine) -> None:
    """Nothing of the future is left: no position, no order, no waiting order."""
    for account in engine.clearing.accounts.values():
        for (symbol, _), position in account.positions.items():
            assert symbol != FUTURE.symbol or position.size_lots == 0
    assert not any(o.symbol == FUTURE.symbol for o in engine.open_orders.values())
    assert not any(o.symbol == FUTURE.symbol for o in engine.stops.waiting.orders.values())


def run_stream(seed: int, length: int) -> tuple[Engine, list[Command], Seen]:
    """Apply `length` random commands (after a setup), half before the delivery, half after."""
    rng = random.Random(seed)
    engine = Engine(PERPETUALS)
    projector = Projector(PERPETUALS)  # the read side's fold, beside the engine
    setup: list[Command] = []
    for account in ACCOUNTS:
        setup += [Deposit(0, 0, account, "USDT", 4_000 * UNIT["USDT"]),
                  Deposit(0, 0, account, "USDC", 2_000 * UNIT["USDC"]),
                  Deposit(0, 0, account, "BTC", 2_000 * UNIT["BTC"])]
    setup += [SetMarginMode(0, 0, account, MarginMode.ISOLATED) for account in ISOLATED]
    setup.append(ListInstrument(0, 0, spec_record(FUTURE)))
    for spec in EVERY:
        setup += [IndexPrice(0, 0, spec.symbol, MID[spec.symbol]),
                  MarkPrice(0, 0, spec.symbol, MID[spec.symbol])]
        if spec is not FUTURE:
            setup.append(SetFundingInterval(0, 0, spec.symbol, 60))
    # Time starts so that the future's delivery time falls halfway through the random part.
    start = T - (len(setup) + length // 2) * MINUTE_MS
    seen = Seen()
    commands: list[Command] = []
    specs: tuple[InstrumentSpec, ...] = tuple(PERPETUALS)
    for seq in range(1, len(setup) + length + 1):
        draft = setup[seq - 1] if seq <= len(setup) else random_command(rng, seq, engine)
        ts = start + seq * MINUTE_MS
        cmd = msgspec.structs.replace(draft, seq=seq, ts_ms=ts)
        events = engine.apply(cmd)
        projector.project(cmd, events)
        commands.append(cmd)
        if isinstance(cmd, ListInstrument):
            assert FUTURE.symbol in engine.instruments, events
            specs = EVERY
        for event in events:
            if isinstance(event, Liquidated):
                seen.liquidated.add(event.symbol)
            elif isinstance(event, Deleveraged):
                seen.deleveraged.add(event.symbol)
            elif isinstance(event, FundingSettled):
                seen.fundings += 1
            elif isinstance(event, SessionSettled):
                seen.sessions += 1
            elif isinstance(event, PositionDelivered):
                seen.positions_delivered += 1
        # Per coin conservation and open interest: the core's own check, every coin at once.
        engine.check_invariants()
        assert_incremental_totals_match(engine, ACCOUNTS, specs)
        # The fold keeps each USDC position's true entry as the core does (its takeover
        # and ADL rows are valued against it).
        assert sorted(projector.to_state().true_entries) == sorted(
            (account.account_id, symbol, idx, position.true_entry_atoms)
            for account in engine.clearing.accounts.values() if account.account_id > 0
            for (symbol, idx), position in account.positions.items()
            if symbol == USDC.symbol and position.size_lots), (seq, cmd)
        if any(isinstance(e, FuturesDelivered) for e in events):
            assert not seen.delivered
            seen.delivered = True
            assert ts >= T
        if ts >= T:
            assert seen.delivered, (seq, cmd)
            check_after_delivery(engine)
            if isinstance(cmd, PlaceOrder) and cmd.symbol == FUTURE.symbol:
                assert not any(isinstance(e, OrderAccepted) for e in events)
                (refused,) = [e for e in events if isinstance(e, OrderRejected)]
                assert refused.reason is RejectCode.CONTRACT_NOT_LIVE
                seen.refused_after += 1
    return engine, commands, seen


def assert_replays(engine: Engine, commands: list[Command], cut: int) -> None:
    """The commands replay from scratch, and from a snapshot at `cut`, to the same hash."""
    replayed = Engine(PERPETUALS)
    for command in commands:
        replayed.apply(command)
    assert replayed.state_hash() == engine.state_hash()
    assert restored_midway(PERPETUALS, commands, cut).state_hash() == engine.state_hash()


@pytest.mark.parametrize("seed", range(3))
def test_every_contract_type_with_a_delivery_accounts_for_every_atom(seed: int) -> None:
    engine, commands, seen = run_stream(seed, 600)
    assert seen.delivered
    assert seen.fundings >= 3 and seen.sessions >= 3  # hourly, in the middle of the stream
    assert_replays(engine, commands, len(commands) // 3)


def test_the_mixed_streams_are_not_vacuous() -> None:
    """Every seed delivers positions; across them every perpetual is liquidated."""
    liquidated: set[str] = set()
    refused = 0
    for seed in range(3):
        seen = run_stream(seed, 600)[2]
        assert seen.positions_delivered > 0, seed  # the future delivered open positions
        liquidated |= seen.liquidated
        refused += seen.refused_after
    assert {LINEAR.symbol, INVERSE.symbol, USDC.symbol} <= liquidated
    assert refused > 0


@given(st.integers(0, 10**6), st.integers(40, 200))
@settings(deadline=None, max_examples=15, derandomize=True)
def test_any_mixed_stream_with_a_delivery_conserves_each_coin(seed: int, length: int) -> None:
    engine, commands, seen = run_stream(seed, length)
    assert seen.delivered
    assert_replays(engine, commands, len(commands) // 2)

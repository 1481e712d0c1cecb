"""`Clearing.pooled`'s lone-coin shortcut answers what its coin-by-coin walk answers (issue #14).

When every listed contract settles in one coin at par (`Clearing.lone_coin`), a cross account
whose wallet holds no other coin is never a USD pool, whatever it trades: `pooled` says so
without walking its balances, positions and orders (`Clearing.pooled_walk`). On random
streams, on a venue in one coin (BTCUSDT alone) and on one in two (BTCUSDT and the inverse
BTCUSD), with accounts that also hold BTC (some withdrawing it all again, which leaves a zero
balance behind), accounts that go isolated, orders, fills, cancels and mark moves, after every
command: for every account, `pooled` equals the walk (the model's own answer for an isolated
account or one that pools by its model). Also on the journal bench's order flow and on
realistic streams.
"""

from __future__ import annotations

import random

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.bench.realistic import realistic_stream
from perpx.core import Command, Engine, OrderType, PlaceOrder, Side
from perpx.core.account.clearing import Clearing
from perpx.core.commands import Deposit, IndexPrice, MarkPrice, SetMarginMode, Withdraw
from perpx.core.enums import MarginMode
from perpx.core.instruments import InstrumentSpec
from perpx.instruments import load_instruments
from perpx.store.loadflow import order_flow
from support.builders import amend_or_cancel_open, btcusd, btcusdt

LINEAR, INVERSE = btcusdt(), btcusd()
MID = 650_000
LOT = {LINEAR.symbol: 1, INVERSE.symbol: 65}
ACCOUNTS = (1, 2, 3, 4, 5, 6)
SECOND_COIN = (4, 5, 6)  # also deposit BTC (5 withdraws it all again)
ISOLATED = (3,)


def _check(clearing: Clearing) -> tuple[int, int]:
    """Assert the shortcut equals the walk; return (shortcut taken, accounts pooled)."""
    taken = pooled = 0
    for account in clearing.accounts.values():
        model = account.model
        if model.holds_position_margin:
            expected = False
        elif model.pools:
            expected = True
        else:
            expected = clearing.pooled_walk(account)
            balances = account.balances
            taken += bool(clearing.lone_coin) and (
                not balances or (len(balances) == 1 and clearing.lone_coin in balances))
        assert clearing.pooled(account) == expected, account.account_id
        pooled += expected
    return taken, pooled


def _command(rng: random.Random, seq: int, engine: Engine,
             specs: list[InstrumentSpec]) -> Command:
    account = rng.choice(ACCOUNTS)
    spec = rng.choice(specs)
    draw = rng.random()
    if draw < 0.6:
        market = rng.random() < 0.2
        return PlaceOrder(seq, seq, account, spec.symbol, rng.choice([Side.BUY, Side.SELL]),
                          OrderType.MARKET if market else OrderType.LIMIT,
                          rng.randint(1, 40) * LOT[spec.symbol],
                          None if market else MID + rng.randint(-40, 40))
    if draw < 0.8 and engine.open_orders:
        return amend_or_cancel_open(rng, seq, engine, LOT)
    return MarkPrice(seq, seq, spec.symbol, MID + rng.randint(-400, 400))


def _run(seed: int, length: int, specs: list[InstrumentSpec]) -> tuple[int, int]:
    rng = random.Random(seed)
    engine = Engine(specs)
    setup: list[Command] = [Deposit(0, 0, a, "USDT", 10**5 * 10**8) for a in ACCOUNTS]
    setup += [Deposit(0, 0, a, "BTC", 10**7) for a in SECOND_COIN]
    setup += [Withdraw(0, 0, 5, "BTC", 10**7)]
    setup += [SetMarginMode(0, 0, a, MarginMode.ISOLATED) for a in ISOLATED]
    for spec in specs:
        setup += [IndexPrice(0, 0, spec.symbol, MID), MarkPrice(0, 0, spec.symbol, MID)]
    taken = pooled = 0
    for seq in range(1, len(setup) + length + 1):
        draft = setup[seq - 1] if seq <= len(setup) else _command(rng, seq, engine, specs)
        engine.apply(msgspec.structs.replace(draft, seq=seq, ts_ms=1_700_000_000_000 + seq))
        more, pools = _check(engine.clearing)
        taken += more
        pooled += pools
    return taken, pooled


@given(st.integers(0, 10**6), st.integers(30, 150), st.booleans())
@settings(deadline=None, max_examples=15, derandomize=True)
def test_pooled_shortcut_equals_the_walk_after_every_command(seed: int, length: int,
                                                              one_coin: bool) -> None:
    _run(seed, length, [LINEAR] if one_coin else [LINEAR, INVERSE])


def test_the_random_streams_take_the_shortcut_and_pool_too() -> None:
    assert Engine([LINEAR]).clearing.lone_coin == "USDT"
    assert Engine([LINEAR, INVERSE]).clearing.lone_coin == ""
    taken, pooled = _run(3, 200, [LINEAR])
    assert taken > 200 and pooled > 200  # the shortcut, and the walk saying True, both seen
    taken, pooled = _run(3, 200, [LINEAR, INVERSE])
    assert taken == 0 and pooled > 200


def test_pooled_shortcut_equals_the_walk_on_the_order_flow() -> None:
    engine = Engine(load_instruments())
    for seq, command in enumerate(order_flow(1_000, 11), start=1):
        engine.apply(msgspec.structs.replace(command, seq=seq, ts_ms=1_700_000_000_000 + seq))
        _check(engine.clearing)


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**16))
def test_pooled_shortcut_equals_the_walk_on_realistic_streams(seed: int) -> None:
    stream = realistic_stream(600, seed=seed)
    engine = stream.engine()
    for command in stream.commands:
        engine.apply(command)
        _check(engine.clearing)

"""A margin budget's narrow figures are the full figures' own (issue #14).

The risk index files a cross account by its slack (margin balance + order loss − MM), read
through `Clearing.slack_terms`, which skips the IM terms the budget does not need. On random
streams (one-way and hedge-mode accounts, accounts in one coin and pooled ones holding a
second coin, a linear and an inverse perpetual, orders near the mark, fills, amends, cancels,
mark and index moves), on the journal bench's order flow and on realistic streams, after
every command: for every account and coin, `slack_terms` equals the margin balance, MM and
order loss of `figures`, and `coin_slack_terms` those of `coin_figures`, whose MM is the sum
of each position's and each held hedged pair's own.
"""

from __future__ import annotations

import random

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.bench.realistic import realistic_stream
from perpx.core import Command, Engine, OrderType, PlaceOrder, Side, calc
from perpx.core.account.accounts import Account
from perpx.core.account.positions import Position
from perpx.core.commands import Deposit, IndexPrice, MarkPrice, SwitchPositionMode
from perpx.core.enums import PositionMode
from perpx.instruments import load_instruments
from perpx.store.loadflow import order_flow
from support.builders import amend_or_cancel_open, btcusd, btcusdt

LINEAR, INVERSE = btcusdt(), btcusd()
MID = 650_000
LOT = {LINEAR.symbol: 1, INVERSE.symbol: 65}  # about 65 USD a lot
ACCOUNTS = (1, 2, 3, 4, 5, 6)
HEDGED = (3, 4)  # in hedge mode on the linear contract
POOLED = (5, 6)  # also hold BTC, and trade the inverse contract settled in it
COINS = ("USDT", "BTC")


def _check(engine: Engine) -> int:
    """Assert the narrow figures equal the full ones; return how many are not all zero."""
    clearing = engine.clearing
    live = 0
    for account in clearing.accounts.values():
        for coin in COINS:
            figures = clearing.figures(account, coin)
            narrow = clearing.slack_terms(account, coin)
            assert narrow == (figures.margin_balance_atoms, figures.mm_atoms,
                              figures.order_loss_atoms), (account.account_id, coin)
            live += any(narrow[1:])
            own = clearing.coin_figures(account, coin)
            assert clearing.coin_slack_terms(account, coin) == (
                own.margin_balance_atoms, own.mm_atoms, own.order_loss_atoms)
            by_position = _mm_by_position(engine, account, coin)
            assert by_position is None or own.mm_atoms == by_position
    return live


def _mm_by_position(engine: Engine, account: Account, coin: str) -> int | None:
    """A coin's MM summed position by position, a held hedged pair by the pair's own rule.

    Independent of how the margin model finds the pairs (it skips the search when no symbol
    has two position records). None where a held symbol has no mark yet.
    """
    clearing = engine.clearing
    held: dict[str, list[Position]] = {}
    for (symbol, _idx), position in account.positions.items():
        if position.size_lots and engine.instruments[symbol].settle_coin == coin:
            held.setdefault(symbol, []).append(position)
    mm = 0
    for symbol, positions in held.items():
        spec = engine.instruments[symbol]
        mark = clearing.mark_ticks(symbol)
        if mark is None:
            return None
        if len(positions) == 2:
            long, short = sorted(positions, key=lambda p: p.position_idx)
            pair = calc.hedge_im_mm_atoms(
                spec, long.qty_lots, long.entry_value_atoms, short.qty_lots,
                short.entry_value_atoms, mark, min(long.leverage, short.leverage),
                spec.taker_fee_rate)
            mm += pair.long_mm + pair.short_mm
            continue
        for position in positions:
            value = spec.contract.value_ceil_atoms(mark, position.qty_lots)
            mm += calc.maintenance_margin_atoms(spec, value, position.fee_to_close_atoms(spec))
    return mm


def _command(rng: random.Random, seq: int, engine: Engine) -> Command:
    """Draw one command: mostly orders within 40 ticks of the middle, so some cross the mark."""
    account = rng.choice(ACCOUNTS)
    spec = rng.choice((LINEAR, INVERSE)) if account in POOLED else LINEAR
    symbol = spec.symbol
    draw = rng.random()
    if draw < 0.55:
        market = rng.random() < 0.2
        return PlaceOrder(seq, seq, account, symbol, rng.choice([Side.BUY, Side.SELL]),
                          OrderType.MARKET if market else OrderType.LIMIT,
                          rng.randint(1, 40) * LOT[symbol],
                          None if market else MID + rng.randint(-40, 40),
                          reduce_only=account not in HEDGED and rng.random() < 0.1,
                          position_idx=rng.choice([1, 2]) if account in HEDGED else 0)
    if draw < 0.75 and engine.open_orders:
        return amend_or_cancel_open(rng, seq, engine, LOT)
    if draw < 0.9:
        return MarkPrice(seq, seq, symbol, MID + rng.randint(-400, 400))
    return IndexPrice(seq, seq, symbol, MID + rng.randint(-400, 400))


def _run(seed: int, length: int) -> int:
    rng = random.Random(seed)
    engine = Engine([LINEAR, INVERSE])
    setup: list[Command] = [Deposit(0, 0, a, "USDT", 10**5 * 10**8) for a in ACCOUNTS]
    setup += [Deposit(0, 0, a, "BTC", 10**8) for a in POOLED]
    setup += [SwitchPositionMode(0, 0, a, LINEAR.symbol, PositionMode.HEDGE) for a in HEDGED]
    for spec in (LINEAR, INVERSE):
        setup += [IndexPrice(0, 0, spec.symbol, MID), MarkPrice(0, 0, spec.symbol, MID)]
    live = 0
    for seq in range(1, len(setup) + length + 1):
        draft = setup[seq - 1] if seq <= len(setup) else _command(rng, seq, engine)
        engine.apply(msgspec.structs.replace(draft, seq=seq, ts_ms=1_700_000_000_000 + seq))
        live += _check(engine)
    return live


@given(st.integers(0, 10**6), st.integers(50, 250))
@settings(deadline=None, max_examples=15, derandomize=True)
def test_slack_terms_equal_the_figures_after_every_command(seed: int, length: int) -> None:
    _run(seed, length)


def test_the_random_streams_are_not_vacuous() -> None:
    assert _run(5, 300) > 300


def test_slack_terms_equal_the_figures_on_the_order_flow() -> None:
    engine = Engine(load_instruments())
    live = 0
    for seq, command in enumerate(order_flow(1_500, 11), start=1):
        engine.apply(msgspec.structs.replace(command, seq=seq, ts_ms=1_700_000_000_000 + seq))
        live += _check(engine)
    assert live > 1000


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**16))
def test_slack_terms_equal_the_figures_on_realistic_streams(seed: int) -> None:
    stream = realistic_stream(600, seed=seed)
    engine = stream.engine()
    for command in stream.commands:
        engine.apply(command)
        _check(engine)

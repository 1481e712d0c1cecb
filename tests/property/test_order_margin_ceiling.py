"""The order margin's ceiling bounds the exact order margin; the bounded margin check is exact.

`margin.order_margin_ceiling` stands in for `order_margin_atoms` when a cross margin check
(`CrossMargin.can_open`) finds the balance covers the order with the ceiling in its place
(through `margin.cost_ceiling_atoms`, the ceiling of any orders' cost); then the exact figure
is not computed. Held here: each ceiling is at or above the exact figure
(any side groups: leaves, notional, one-way position, leverage from 1x, taker fee rate of
either sign, linear and inverse; any orders' values and signs), and `can_open` answers
exactly ``cost <= available_atoms`` for every cost around the available balance, after every
command of random streams whose accounts hold little, so both the bound and the exact path
answer.
"""

from __future__ import annotations

import dataclasses
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.core import Engine, OrderType, PlaceOrder, Side
from perpx.core.account.accounts import Account, OpenOrderSums
from perpx.core.account.margin import (
    cost_ceiling_atoms,
    order_cost_fast_atoms,
    order_margin_atoms,
    order_margin_ceiling,
)
from perpx.core.account.margin_model import CROSS
from perpx.core.account.positions import Position
from perpx.core.commands import CancelOrder, Command, Deposit, MarkPrice, SetLeverage
from perpx.core.keys import position_key, side_key
from perpx.core.numbers import RATE_ONE
from support.builders import btcusd, btcusdt, ethusdt

USDT = 10**8

_GROUP = st.tuples(st.sampled_from([0, 1]),  # which spec
                   st.sampled_from([0, 1, 2]),  # position idx
                   st.sampled_from([Side.BUY, Side.SELL]),
                   st.integers(1, 10**6),  # leaves
                   st.integers(0, 10**18))  # notional


@settings(max_examples=400, deadline=None)
@given(st.lists(_GROUP, min_size=1, max_size=8),
       st.tuples(st.integers(-10**6, 10**6), st.integers(-10**6, 10**6)),
       st.lists(st.tuples(st.sampled_from([0, 1]), st.sampled_from([0, 1, 2]),
                          st.integers(RATE_ONE, 200 * RATE_ONE)), max_size=4),
       st.tuples(st.integers(-RATE_ONE // 100, RATE_ONE // 3),
                 st.integers(-RATE_ONE // 100, RATE_ONE // 3)),
       st.booleans())
def test_the_ceiling_is_at_or_above_the_exact_order_margin(
        groups: list[tuple[int, int, Side, int, int]], sizes: tuple[int, int],
        leverages: list[tuple[int, int, int]], fees: tuple[int, int], inverse: bool) -> None:
    base = [btcusd() if inverse else btcusdt(), ethusdt()]
    specs = [dataclasses.replace(spec, taker_fee_rate=fee)
             for spec, fee in zip(base, fees, strict=True)]
    account = Account(1, CROSS)
    for which, idx, side, leaves, notional in groups:
        key = side_key(specs[which].symbol, idx, side)
        sums = account.order_sums.get(key)
        if sums is None:
            sums = account.order_sums[key] = OpenOrderSums()
        sums.leaves_lots += leaves
        sums.notional_atoms += notional
    for spec, size in zip(specs, sizes, strict=True):
        position = Position(1, spec.symbol, 0, RATE_ONE)
        position.size_lots = size
        account.positions[position_key(spec.symbol, 0)] = position
    for which, idx, leverage in leverages:
        account.leverage[position_key(specs[which].symbol, idx)] = leverage
    notional = sum(s.notional_atoms for s in account.order_sums.values())
    held = {key[0] for key in account.order_sums}
    fee_rate = max(0, *(spec.taker_fee_rate for spec in specs if spec.symbol in held))
    exact = sum(order_margin_atoms(account, spec) for spec in specs)
    ceiling = order_margin_ceiling(account.leverage, notional, len(account.order_sums),
                                   fee_rate)
    assert ceiling >= exact, (ceiling, exact)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([1, -1]), st.integers(0, 10**22),
                          st.integers(0, 100 * RATE_ONE)), min_size=1, max_size=5),
       st.integers(RATE_ONE, 500 * RATE_ONE), st.integers(-RATE_ONE, RATE_ONE // 3))
def test_the_cost_ceiling_is_at_or_above_the_summed_costs(parts: list[tuple[int, int, int]],
                                                          leverage: int, fee_rate: int) -> None:
    # Each part at `leverage` or above it, as the groups of an account's leverage table.
    exact = sum(order_cost_fast_atoms(sign, value, leverage + above, fee_rate)
                for sign, value, above in parts)
    ceiling = cost_ceiling_atoms(sum(value for _sign, value, _above in parts), len(parts),
                                 leverage, fee_rate)
    assert ceiling >= exact, (ceiling, exact)


def test_no_ceiling_under_1x_or_past_a_third_in_fees() -> None:
    account = Account(1, CROSS)
    assert order_margin_ceiling(account.leverage, 10**12, 2, RATE_ONE // 3 + 1) == -1
    account.leverage[position_key("BTCUSDT", 0)] = RATE_ONE - 1
    assert order_margin_ceiling(account.leverage, 10**12, 2, 55_000) == -1
    assert cost_ceiling_atoms(10**12, 1, RATE_ONE - 1, 55_000) == -1


def _random_command(rng: random.Random, seq: int, engine: Engine) -> Command:
    account = rng.randint(1, 6)
    draw = rng.random()
    if draw < 0.05:
        return MarkPrice(seq, seq, "BTCUSDT", rng.randint(640_000, 660_000))
    if draw < 0.08:
        leverage = rng.choice([1, 2, 5, 10, 25]) * RATE_ONE
        return SetLeverage(seq, seq, account, "BTCUSDT", leverage, leverage)
    if draw < 0.25:
        open_orders = engine.orders_of(account, "BTCUSDT")
        if open_orders:
            return CancelOrder(seq, seq, account, "BTCUSDT", rng.choice(open_orders).order_id)
    side = rng.choice([Side.BUY, Side.SELL])
    if draw < 0.4:
        return PlaceOrder(seq, seq, account, "BTCUSDT", side, OrderType.MARKET,
                          rng.randint(1, 400))
    price = 650_000 + rng.randint(-3_000, 3_000)
    return PlaceOrder(seq, seq, account, "BTCUSDT", side, OrderType.LIMIT, rng.randint(1, 400),
                      price)


@settings(max_examples=12, deadline=None)
@given(st.integers(0, 10**6))
def test_the_bounded_check_answers_as_the_exact_balance(seed: int) -> None:
    rng = random.Random(seed)
    spec = btcusdt()
    engine = Engine([spec])
    clearing = engine.clearing
    for account in range(1, 7):
        engine.apply(Deposit(account, account, account, "USDT", rng.randint(50, 5_000) * USDT))
    for seq in range(7, 307):
        engine.apply(_random_command(rng, seq, engine))
        for account_id in range(1, 7):
            account = clearing.accounts[account_id]
            if account.model is not CROSS:
                continue
            available = clearing.available_atoms(account, "USDT")
            for cost in (available - 1, available, available + 1, 0,
                         available // 2, available * 2, rng.randint(0, 10**12)):
                # A buy at 1 tick has no order loss: `can_open` is `cost <= available`.
                assert CROSS.can_open(clearing, account, spec, Side.BUY, 1, 1, cost) == (
                    cost <= available), (seq, account_id, cost, available)

"""Random trading with conditional orders, TP/SL and trailing stops: triggers keep their word.

After every command: the engine's invariants hold (conservation, open interest, books, the
trigger index matching the waiting orders, reduce-only orders within their positions); each
trigger fires at most once, only at a price that really occurred in its reference (last,
mark or index) and met its condition; and no waiting trigger is left crossed by the current
price (none was missed). At the end, a replay from scratch and one from a mid-way snapshot
give the same state hash.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perpx.core import Command, Engine, OrderType, PlaceOrder, Side
from perpx.core.commands import (
    AmendOrder,
    CancelAllOrders,
    CancelOrder,
    Deposit,
    IndexPrice,
    MarkPrice,
    SetTradingStop,
)
from perpx.core.enums import OrderFilter, TpSlMode, TriggerBy, TriggerDirection
from perpx.core.events import (
    ConditionalOrderAccepted,
    Event,
    IndexPriceUpdated,
    MarkPriceUpdated,
    OrderTriggered,
    Trade,
)
from perpx.core.orders.triggers import EntryKind
from support.builders import btcusdt, restored_midway

SPEC = btcusdt()
MID = 650_000
ACCOUNTS = (1, 2, 3, 4, 5)
USDT = 10**8
REFS = (TriggerBy.LAST_PRICE, TriggerBy.MARK_PRICE, TriggerBy.INDEX_PRICE)


def reference(engine: Engine, by: TriggerBy) -> int | None:
    return engine.stops.reference("BTCUSDT", by)


def random_command(rng: random.Random, seq: int, engine: Engine) -> Command:
    """Draw one command around 65,000, with conditional orders and TP/SL in the mix."""
    account = rng.choice(ACCOUNTS)
    side = rng.choice([Side.BUY, Side.SELL])
    draw = rng.random()
    if draw < 0.30:
        tp = sl = None
        if rng.random() < 0.2:
            tp = MID + side.sign * rng.randint(100, 3000)
            sl = MID - side.sign * rng.randint(100, 3000)
        return PlaceOrder(seq, seq, account, "BTCUSDT", side, OrderType.LIMIT,
                          rng.randint(1, 40), MID + rng.randint(-400, 400),
                          reduce_only=rng.random() < 0.15, take_profit_ticks=tp,
                          stop_loss_ticks=sl,
                          tpsl_mode=rng.choice([TpSlMode.FULL, TpSlMode.PARTIAL]))
    if draw < 0.40:
        return PlaceOrder(seq, seq, account, "BTCUSDT", side, OrderType.MARKET,
                          rng.randint(1, 40), reduce_only=rng.random() < 0.2)
    if draw < 0.55:
        by = rng.choice(REFS)
        direction = rng.choice(list(TriggerDirection))
        base = reference(engine, by) or MID
        offset = rng.randint(1, 1500)
        trigger = base + offset if direction is TriggerDirection.RISING else base - offset
        if rng.random() < 0.05:
            trigger = base  # on the wrong side: refused
        close = rng.random() < 0.2
        limit = rng.random() < 0.4
        return PlaceOrder(seq, seq, account, "BTCUSDT", side,
                          OrderType.LIMIT if limit else OrderType.MARKET,
                          0 if close and rng.random() < 0.5 else rng.randint(1, 30),
                          trigger + rng.randint(-300, 300) if limit else None,
                          reduce_only=close or rng.random() < 0.1, close_on_trigger=close,
                          trigger_price_ticks=trigger, trigger_direction=direction,
                          trigger_by=by)
    if draw < 0.63:
        held = engine.clearing.accounts[account].position("BTCUSDT", 0)
        long = held is None or held.size_lots >= 0
        sign = 1 if long else -1
        mode = rng.choice([TpSlMode.FULL, TpSlMode.PARTIAL])
        size = rng.randint(1, max(1, held.qty_lots if held else 1))
        return SetTradingStop(
            seq, seq, account, "BTCUSDT", 0, mode,
            take_profit_ticks=(MID + sign * rng.randint(200, 3000)
                               if rng.random() < 0.6 else None),
            stop_loss_ticks=(MID - sign * rng.randint(200, 3000)
                             if rng.random() < 0.6 else None),
            tp_trigger_by=rng.choice(REFS), sl_trigger_by=rng.choice(REFS),
            trailing_stop_ticks=rng.randint(50, 1500) if rng.random() < 0.3 else None,
            active_price_ticks=(MID + sign * rng.randint(1, 800)
                                if rng.random() < 0.3 else None),
            tp_size_lots=size, sl_size_lots=size)
    waiting = sorted(engine.stops.waiting.orders)
    if draw < 0.70 and (waiting or engine.open_orders):
        order_id = rng.choice(waiting + sorted(engine.open_orders))
        owner = (engine.stops.waiting.orders.get(order_id)
                 or engine.open_orders[order_id]).account_id
        if rng.random() < 0.5:
            return CancelOrder(seq, seq, owner, "BTCUSDT", order_id)
        return AmendOrder(seq, seq, owner, "BTCUSDT", order_id,
                          trigger_price_ticks=MID + rng.randint(-1500, 1500)
                          if order_id in engine.stops.waiting.orders else None,
                          qty_lots=rng.randint(1, 40) if rng.random() < 0.3 else None)
    if draw < 0.73:
        return CancelAllOrders(seq, seq, account, "BTCUSDT", rng.choice(list(OrderFilter)))
    if draw < 0.86:
        return MarkPrice(seq, seq, "BTCUSDT", MID + rng.randint(-2500, 2500))
    if draw < 0.95:
        return IndexPrice(seq, seq, "BTCUSDT", MID + rng.randint(-2500, 2500))
    return Deposit(seq, seq, account, "USDT", rng.randint(1, 300) * USDT)


def directions(engine: Engine) -> dict[int, TriggerDirection]:
    return {i: o.trigger_direction for i, o in engine.stops.waiting.orders.items()}


def check_triggers(engine: Engine, before: dict[TriggerBy, int | None],
                   known: dict[int, TriggerDirection], events: list[Event],
                   fired: set[int]) -> None:
    seen: dict[TriggerBy, set[int | None]] = {by: {before[by]} for by in REFS}
    for event in events:
        if type(event) is Trade:
            seen[TriggerBy.LAST_PRICE].add(event.price_ticks)
        elif type(event) is MarkPriceUpdated:
            seen[TriggerBy.MARK_PRICE].add(event.price_ticks)
        elif type(event) is IndexPriceUpdated:
            seen[TriggerBy.INDEX_PRICE].add(event.price_ticks)
        elif type(event) is ConditionalOrderAccepted:
            known[event.order_id] = event.trigger_direction
        elif type(event) is OrderTriggered:
            # Fired once, at a price its reference really printed, meeting its condition.
            assert event.order_id not in fired, event
            fired.add(event.order_id)
            assert event.triggered_at_ticks in seen[event.trigger_by], event
            if known[event.order_id] is TriggerDirection.RISING:
                assert event.triggered_at_ticks >= event.trigger_price_ticks, event
            else:
                assert event.triggered_at_ticks <= event.trigger_price_ticks, event
    # None missed: no waiting entry is crossed by its reference's price now.
    for order in engine.stops.waiting.orders.values():
        assert order.order_id not in fired
        for by, direction, price, kind in order.filing():
            now = reference(engine, by)
            if now is None:
                continue
            crossed = now >= price if direction is TriggerDirection.RISING else now <= price
            assert not crossed, (order.order_id, EntryKind(kind), price, now)


def run_stream(seed: int, length: int) -> tuple[Engine, list[Command]]:
    rng = random.Random(seed)
    engine = Engine([SPEC])
    commands: list[Command] = [Deposit(seq, seq, account, "USDT", 3_000 * USDT)
                               for seq, account in enumerate(ACCOUNTS, start=1)]
    for command in commands:
        engine.apply(command)
    fired: set[int] = set()
    known: dict[int, TriggerDirection] = {}
    for seq in range(len(commands) + 1, len(commands) + 1 + length):
        cmd = random_command(rng, seq, engine)
        before = {by: reference(engine, by) for by in REFS}
        known.update(directions(engine))
        events = engine.apply(cmd)
        commands.append(cmd)
        engine.check_invariants()
        check_triggers(engine, before, known, events, fired)
    return engine, commands


@pytest.mark.parametrize("seed", range(3))
def test_random_trading_with_triggers_keeps_every_invariant_and_replays(seed: int) -> None:
    engine, commands = run_stream(seed, 1_000)
    assert engine.stops.waiting.orders or engine.last_seq  # the stream did run
    replayed = Engine([SPEC])
    for command in commands:
        replayed.apply(command)
    assert replayed.state_hash() == engine.state_hash()


@given(st.integers(0, 10**6), st.integers(20, 150), st.floats(0.0, 1.0))
def test_triggers_survive_a_snapshot_mid_stream(seed: int, length: int, where: float) -> None:
    engine, commands = run_stream(seed, length)
    restored = restored_midway([SPEC], commands, int(len(commands) * where))
    assert restored.state_hash() == engine.state_hash()

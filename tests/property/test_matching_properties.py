"""Random order streams: the engine agrees with the reference, keeps its invariants, and replays.

Properties, after every command of every stream:
- the engine's outcomes (acceptances, trades, cancels, amends, rejections) and its whole book
  equal those of the plain reference in `reference_book.py`;
- the book is never crossed, levels sum their orders, every order is reachable by id
  (`Engine.check_invariants`);
and at the end of every stream:
- for every accepted order, its quantity = filled + resting + cancelled;
- the same commands on a fresh engine, or on one restored from a mid-way snapshot, give the
  same `state_hash`.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from perpx.core import (
    AmendOrder,
    CancelAllOrders,
    CancelOrder,
    Command,
    Engine,
    Event,
    OrderAccepted,
    OrderAmended,
    OrderCancelled,
    OrderRejected,
    OrderType,
    PlaceOrder,
    Side,
    SmpType,
    TimeInForce,
    Trade,
)
from perpx.core.events import BalanceChanged, Executed, PositionChanged
from reference_book import Outcome, ReferenceExchange
from support.builders import btcusdt, funded_engine

SETTLEMENT_EVENTS = (BalanceChanged, Executed, PositionChanged)
FIRST_SEQ = 10  # seq 1..3 fund the accounts

MID = 650_000
SYMBOL = "BTCUSDT"
# A narrow band (0.002% = 13 ticks at the mid) so that clamping happens; small caps so that the
# quantity and active-order limits are exercised too.
SPEC = btcusdt(price_limit_ratio_x=2_000, price_limit_ratio_y=4_000, min_order_qty_lots=2,
               max_order_qty_lots=60, max_mkt_order_qty_lots=40, max_active_orders=8)

accounts = st.integers(1, 3)
sides = st.sampled_from([Side.BUY, Side.SELL])
offsets = st.integers(-20, 20)
order_ids = st.integers(1, 16)
links = st.sampled_from([""] * 8 + ["a", "b", "bad id"])
# Mostly valid quantities, now and then one outside [min, max] to exercise the refusals.
quantities = st.integers(2, 40) | st.integers(0, 70)

tifs = st.sampled_from([TimeInForce.GTC] * 4 + list(TimeInForce))
smps = st.sampled_from([SmpType.NONE] * 4 + list(SmpType))
limit_ops = st.tuples(st.just("limit"), accounts, sides, offsets, quantities,
                      tifs, smps, links)
market_ops = st.tuples(st.just("market"), accounts, sides, quantities, smps)
cancel_ops = st.tuples(st.just("cancel"), accounts, order_ids)
amend_ops = st.tuples(st.just("amend"), accounts, order_ids,
                      st.none() | quantities, st.none() | offsets)
cancel_all_ops = st.tuples(st.just("cancel_all"), accounts)
operations = st.lists(
    st.one_of(*[limit_ops] * 6, market_ops, cancel_ops, amend_ops, cancel_all_ops),
    min_size=1, max_size=100)


def to_command(seq: int, op: tuple[Any, ...]) -> Command:
    kind, account = op[0], op[1]
    if kind == "limit":
        _, _, side, offset, qty, tif, smp, link = op
        return PlaceOrder(seq, seq, account, SYMBOL, side, OrderType.LIMIT, qty, MID + offset,
                          time_in_force=tif, smp_type=smp, order_link_id=link)
    if kind == "market":
        _, _, side, qty, smp = op
        return PlaceOrder(seq, seq, account, SYMBOL, side, OrderType.MARKET, qty, smp_type=smp)
    if kind == "cancel":
        return CancelOrder(seq, seq, account, SYMBOL, op[2])
    if kind == "amend":
        _, _, oid, qty, offset = op
        return AmendOrder(seq, seq, account, SYMBOL, oid, qty_lots=qty,
                          price_ticks=None if offset is None else MID + offset)
    return CancelAllOrders(seq, seq, account, SYMBOL)


def run_reference(ref: ReferenceExchange, op: tuple[Any, ...]) -> list[Outcome]:
    kind, account = op[0], op[1]
    if kind == "limit":
        _, _, side, offset, qty, tif, smp, link = op
        return ref.place(account, side, OrderType.LIMIT, qty, MID + offset, tif, smp, link)
    if kind == "market":
        _, _, side, qty, smp = op
        return ref.place(account, side, OrderType.MARKET, qty, None, TimeInForce.IOC, smp, "")
    if kind == "cancel":
        return ref.cancel(account, op[2])
    if kind == "amend":
        _, _, oid, qty, offset = op
        return ref.amend(account, oid, qty, None if offset is None else MID + offset)
    return ref.cancel_all(account)


def outcomes(events: list[Event]) -> list[Outcome]:
    out: list[Outcome] = []
    for e in events:
        if isinstance(e, OrderAccepted):
            out.append(("accept", e.order_id, e.price_ticks, e.qty_lots))
        elif isinstance(e, Trade):
            out.append(("trade", e.price_ticks, e.qty_lots, e.taker_order_id, e.maker_order_id))
        elif isinstance(e, OrderCancelled):
            out.append(("cancel", e.order_id, e.leaves_lots, e.reason))
        elif isinstance(e, OrderAmended):
            out.append(("amend", e.order_id, e.price_ticks, e.qty_lots, e.leaves_lots,
                        e.kept_priority))
        elif isinstance(e, OrderRejected):
            out.append(("reject", e.reason))
        elif isinstance(e, SETTLEMENT_EVENTS):
            continue
        else:
            raise AssertionError(f"unexpected event {e!r}")
    return out


def engine_book(engine: Engine) -> list[tuple[int, int, int, int]]:
    return [(int(o.side), o.price_ticks, o.order_id, o.leaves_lots)
            for o in engine.books[SYMBOL].orders_in_priority()]


def check_quantity_accounting(events: list[Event], engine: Engine) -> None:
    qty: dict[int, int] = {}
    filled: dict[int, int] = defaultdict(int)
    cancelled: dict[int, int] = defaultdict(int)
    for e in events:
        if isinstance(e, (OrderAccepted, OrderAmended)):
            qty[e.order_id] = e.qty_lots
        elif isinstance(e, Trade):
            filled[e.taker_order_id] += e.qty_lots
            filled[e.maker_order_id] += e.qty_lots
        elif isinstance(e, OrderCancelled):
            cancelled[e.order_id] += e.leaves_lots
    for oid, total in qty.items():
        resting = engine.open_orders[oid].leaves_lots if oid in engine.open_orders else 0
        assert total == filled[oid] + resting + cancelled[oid], oid


@given(operations)
@example([("limit", 1, Side.SELL, 0, 10, TimeInForce.GTC, SmpType.NONE, ""),
          ("market", 2, Side.BUY, 20, SmpType.NONE)])
@example([("limit", 1, Side.SELL, 0, 10, TimeInForce.GTC, SmpType.NONE, ""),
          ("limit", 1, Side.BUY, 5, 10, TimeInForce.FOK, SmpType.CANCEL_TAKER, "")])
def test_engine_matches_the_reference_and_keeps_its_invariants(ops: list[Any]) -> None:
    engine = funded_engine([SPEC], range(1, 4))
    ref = ReferenceExchange(SPEC)
    all_events: list[Event] = []
    for seq, op in enumerate(ops, start=FIRST_SEQ):
        events = engine.apply(to_command(seq, op))
        engine.check_invariants()
        assert outcomes(events) == run_reference(ref, op), (seq, op)
        assert engine_book(engine) == ref.book_view(), (seq, op)
        all_events.extend(events)
    check_quantity_accounting(all_events, engine)


@given(operations, st.integers(0, 80))
def test_replay_and_snapshot_reproduce_the_state_hash(ops: list[Any], cut: int) -> None:
    commands = [to_command(seq, op) for seq, op in enumerate(ops, start=FIRST_SEQ)]
    first = funded_engine([SPEC], range(1, 4))
    for command in commands:
        first.apply(command)
    second = funded_engine([SPEC], range(1, 4))
    for command in commands[:cut]:
        second.apply(command)
    restored = Engine.from_snapshot([SPEC], second.to_snapshot())
    for command in commands[cut:]:
        restored.apply(command)
    assert restored.state_hash() == first.state_hash()
    restored.check_invariants()


def random_operation(rng: random.Random, owners: dict[int, int]) -> tuple[Any, ...]:
    """Draw one operation; cancels and amends aim mostly at open orders, by their owner."""
    draw = rng.random()
    side = rng.choice([Side.BUY, Side.SELL])
    account = rng.randint(1, 3)
    qty = rng.randint(2, 40) if rng.random() < 0.95 else rng.randint(0, 70)
    smp = SmpType.NONE if rng.random() < 0.8 else rng.choice(list(SmpType))
    if draw < 0.6:
        tif = TimeInForce.GTC if rng.random() < 0.7 else rng.choice(list(TimeInForce))
        link = "" if rng.random() < 0.9 else rng.choice(["a", "b", "bad id"])
        return ("limit", account, side, rng.randint(-20, 20), qty, tif, smp, link)
    if draw < 0.7:
        return ("market", account, side, qty, smp)
    if owners and rng.random() < 0.8:
        target = rng.choice(sorted(owners))
        account = owners[target]
    else:
        target = rng.randint(1, 2 + max(owners, default=0))
    if draw < 0.85:
        return ("cancel", account, target)
    if draw < 0.98:
        return ("amend", account, target,
                None if rng.random() < 0.5 else qty,
                None if rng.random() < 0.5 else rng.randint(-20, 20))
    return ("cancel_all", account)


@pytest.mark.parametrize("seed", range(8))
def test_long_seeded_streams_match_the_reference(seed: int) -> None:
    """Long streams reach deep books and old ids, which short hypothesis examples rarely do."""
    rng = random.Random(seed)
    engine = funded_engine([SPEC], range(1, 4))
    ref = ReferenceExchange(SPEC)
    all_events: list[Event] = []
    kinds: set[str] = set()
    for seq in range(FIRST_SEQ, FIRST_SEQ + 1_500):
        op = random_operation(rng, {i: o.account_id for i, o in engine.open_orders.items()})
        events = engine.apply(to_command(seq, op))
        engine.check_invariants()
        expected = run_reference(ref, op)
        assert outcomes(events) == expected, (seq, op)
        assert engine_book(engine) == ref.book_view(), (seq, op)
        kinds.update(str(o[0]) for o in expected)
        all_events.extend(events)
    check_quantity_accounting(all_events, engine)
    assert kinds >= {"accept", "trade", "cancel", "amend", "reject"}

"""Explicit copies of core records (issue #14, item 7): complete, and independent of the original.

`copy.deepcopy` and walking `__slots__` do not work on classes mypyc compiles, so accounts,
positions and re-queued orders copy themselves field by field. These tests catch a field the
copy forgets (the field list comes from the class, compiled or not) and a copy that shares
something mutable with its original.
"""

from __future__ import annotations

from typing import Any

from perpx.core.account.accounts import Account, OpenOrderSums
from perpx.core.account.margin_model import model_for
from perpx.core.account.positions import Position
from perpx.core.book.order import RestingOrder
from perpx.core.enums import (
    MarginMode,
    OrderStatus,
    OrderType,
    PositionMode,
    Side,
    SmpType,
    TimeInForce,
)


def fields(cls: type) -> tuple[str, ...]:
    """The instance fields of a class: its __slots__, or mypyc's list when compiled."""
    names: tuple[str, ...] = getattr(cls, "__slots__", None) or cls.__mypyc_attrs__  # type: ignore[attr-defined]
    return names


def position(size: int = 3) -> Position:
    held = Position(7, "BTCUSDT", 0, 25 * 10**8)
    caches = ("liq_cache", "trigger_cache")
    for number, name in enumerate(fields(Position), start=11):
        if name not in ("account_id", "symbol", "position_idx", "leverage", *caches):
            setattr(held, name, number)  # a distinct int in every money and size field
    held.size_lots = size
    held.liq_cache = ((1, 2, 3, 4), 5)
    held.trigger_cache = ((1, 2, 3, 4, 5), 6)
    return held


def account() -> Account:
    holder = Account(7, model_for(MarginMode.ISOLATED))
    holder.balances["USDT"] = 1_000
    holder.position_modes["BTCUSDT"] = PositionMode.HEDGE
    holder.leverage["BTCUSDT", 1] = 5 * 10**8
    holder.auto_add_margin["BTCUSDT", 1] = True
    holder.positions["BTCUSDT", 1] = position()
    sums = holder.sums("BTCUSDT", 1, Side.BUY)
    sums.leaves_lots, sums.notional_atoms = 4, 400
    holder.order_margin_cache["BTCUSDT"] = 99
    return holder


def values(record: Any, cls: type) -> dict[str, Any]:
    return {name: getattr(record, name) for name in fields(cls)}


def test_a_position_copy_has_every_field_and_is_its_own() -> None:
    original = position()
    twin = original.copy()
    assert twin is not original
    assert values(twin, Position) == values(original, Position)
    twin.size_lots += 1
    assert original.size_lots == 3


def test_an_account_copy_has_every_field_and_shares_nothing_mutable() -> None:
    original = account()
    twin = original.copy()
    for name in fields(Account):
        mine, theirs = getattr(twin, name), getattr(original, name)
        if isinstance(theirs, dict):
            assert mine is not theirs, name
            assert mine.keys() == theirs.keys(), name
        else:
            assert mine == theirs, name
    assert values(twin.positions["BTCUSDT", 1], Position) == values(
        original.positions["BTCUSDT", 1], Position)
    copied_sums = twin.order_sums["BTCUSDT", 1, Side.BUY]
    assert values(copied_sums, OpenOrderSums) == {
        "leaves_lots": 4, "notional_atoms": 400, "memo_leaves_lots": 0, "memo_notional_atoms": 0,
        "memo_opening_lots": 0, "memo_leverage": 0, "memo_margin_atoms": 0}

    twin.balances["USDT"] = 0
    twin.leverage["BTCUSDT", 1] = 1
    twin.positions["BTCUSDT", 1].size_lots = 0
    copied_sums.leaves_lots = 0
    twin.order_margin_cache.clear()
    assert original.balance("USDT") == 1_000
    assert original.leverage_for("BTCUSDT", 1) == 5 * 10**8
    assert original.positions["BTCUSDT", 1].size_lots == 3
    assert original.order_sums["BTCUSDT", 1, Side.BUY].leaves_lots == 4
    assert original.order_margin_cache == {"BTCUSDT": 99}


def test_a_requeued_order_keeps_every_field_and_leaves_the_book() -> None:
    order = RestingOrder(5, 7, "BTCUSDT", Side.SELL, OrderType.LIMIT, 1234, 10,
                         TimeInForce.GTC, True, True, 2, "link", SmpType.CANCEL_MAKER, 1_000)
    order.leaves_lots, order.filled_lots = 6, 4
    order.status = OrderStatus.PARTIALLY_FILLED
    order.updated_ts_ms = 2_000
    order.in_book = True
    twin = order.requeued()
    assert twin is not order
    assert order.in_book is False
    assert twin.in_book is False
    assert values(twin, RestingOrder) == values(order, RestingOrder)

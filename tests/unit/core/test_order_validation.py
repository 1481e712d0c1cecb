"""Every mistake in a new order is a rejection with its code, and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from perpx.bybit.retcodes import bybit_code
from perpx.core import CancelOrder, OrderRejected, OrderType, PlaceOrder, RejectCode, Side
from perpx.core.engine import CANCEL_FIELDS, PLACE_FIELDS, TRADE_FIELDS
from perpx.core.events import Trade
from support.builders import Driver, btcusdt, of_type, state_apart_from_seq

BASE: dict[str, Any] = {"account_id": 1, "symbol": "BTCUSDT", "side": Side.BUY,
                        "order_type": OrderType.LIMIT, "qty_lots": 100, "price_ticks": 500000}

CASES = [
    ({"symbol": "DOGEUSDT"}, RejectCode.UNKNOWN_SYMBOL, 10001),
    ({"qty_lots": 0}, RejectCode.INVALID_QTY, 10001),
    ({"qty_lots": -5}, RejectCode.INVALID_QTY, 10001),
    ({"qty_lots": 1_190_001}, RejectCode.QTY_ABOVE_MAX, 10001),
    ({"order_type": OrderType.MARKET, "price_ticks": None, "qty_lots": 500_001},
     RejectCode.QTY_ABOVE_MAX, 10001),
    ({"price_ticks": None}, RejectCode.INVALID_PRICE, 10001),
    ({"price_ticks": 0}, RejectCode.INVALID_PRICE, 10001),
    ({"price_ticks": 20_000_000}, RejectCode.PRICE_OUT_OF_RANGE, 110003),
    ({"qty_lots": 1, "price_ticks": 10_000}, RejectCode.NOTIONAL_BELOW_MIN, 110094),
    ({"position_idx": 1}, RejectCode.POSITION_IDX_MISMATCH, 10001),
    ({"order_link_id": "has space"}, RejectCode.INVALID_ORDER_LINK_ID, 10001),
    ({"order_link_id": "x" * 37}, RejectCode.INVALID_ORDER_LINK_ID, 10001),
    ({"order_link_id": "taken"}, RejectCode.DUPLICATE_ORDER_LINK_ID, 110072),
]
IDS = ["unknown symbol", "zero quantity", "negative quantity", "limit above max order qty",
       "market above max market qty", "limit without price", "zero price",
       "price above max price", "notional under 5 USDT", "hedge index in one-way mode",
       "link id with a space", "link id over 36 chars", "duplicate link id"]


@pytest.mark.parametrize(("change", "code", "ret_code"), CASES, ids=IDS)
def test_bad_order_is_rejected_with_its_code_and_changes_nothing(
        change: dict[str, Any], code: RejectCode, ret_code: int) -> None:
    d = Driver(btcusdt())
    d.limit(1, "sell", "60000", "0.1", order_link_id="taken")
    before = state_apart_from_seq(d.engine)
    seq, ts = d.stamp()
    events = d.apply(PlaceOrder(seq, ts, **{**BASE, **change}))
    [rejection] = events
    assert isinstance(rejection, OrderRejected)
    assert rejection.reason is code
    assert bybit_code(rejection.reason)[0] == ret_code
    assert state_apart_from_seq(d.engine) == before


def test_reduce_only_order_is_exempt_from_min_notional() -> None:
    d = Driver(btcusdt())
    d.limit(2, "buy", "50000", "0.001")
    d.limit(1, "sell", "50000", "0.001")  # account 1 is now short 0.001
    seq, ts = d.stamp()
    events = d.apply(PlaceOrder(seq, ts, **{**BASE, "qty_lots": 1, "price_ticks": 10_000,
                                            "reduce_only": True}))
    assert not of_type(events, OrderRejected)


def test_fields_are_the_order_the_engine_unpacks() -> None:
    # `Engine.apply` reads a place's or cancel's fields in one `astuple`, unpacked by place.
    assert PlaceOrder.__struct_fields__ == PLACE_FIELDS
    assert CancelOrder.__struct_fields__ == CANCEL_FIELDS
    # `Engine._sweep_traded` reads a `Trade`'s fields the same way.
    assert Trade.__struct_fields__ == TRADE_FIELDS

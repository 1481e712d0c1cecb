"""`translate.place` builds a plain order's `PlaceOrder` by position: the positions hold.

A plain order (no trigger, no TP/SL) is built with positional arguments only (cheaper than
keywords, issue #15). The first fourteen fields must be the ones passed, in that order, and
every field of the command must be what the named reading of its parameter gives, for any
mix of the optional parameters, plain or with TP/SL.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.bybit import stops, translate
from perpx.bybit.errors import ApiError
from perpx.bybit.params import Params
from perpx.core.commands import PlaceOrder
from perpx.core.enums import SmpType, TimeInForce
from perpx.instruments import load_instruments

SPECS = {s.symbol: s for s in load_instruments()}
_OPTIONAL: dict[str, st.SearchStrategy[Any]] = {
    "reduceOnly": st.sampled_from([True, False, "true", "0", 1]),
    "closeOnTrigger": st.sampled_from([True, False, "false", "1"]),
    "positionIdx": st.sampled_from([0, 1, 2, "1"]),
    "orderLinkId": st.sampled_from(["", "link-1", "x" * 36]),
    "smpType": st.sampled_from(["None", "CancelMaker", "CancelBoth"]),
    "timeInForce": st.sampled_from(["GTC", "IOC", "FOK", "PostOnly"]),
    "takeProfit": st.sampled_from(["70000", "0", ""]),
    "stopLoss": st.sampled_from(["60000", ""]),
}


def test_the_positional_fields_are_placeorders_first_fourteen() -> None:
    assert PlaceOrder.__struct_fields__[:14] == (
        "seq", "ts_ms", "account_id", "symbol", "side", "order_type", "qty_lots",
        "price_ticks", "time_in_force", "reduce_only", "close_on_trigger", "position_idx",
        "order_link_id", "smp_type")


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({}, optional=_OPTIONAL), st.sampled_from(["Limit", "Market"]))
def test_each_field_is_its_parameters_reading(optional: dict[str, Any], order_type: str) -> None:
    body = {"category": "linear", "symbol": "BTCUSDT", "side": "Sell", "orderType": order_type,
            "qty": "0.002", "price": "65000.5", **optional}
    params = Params(body)
    spec = SPECS["BTCUSDT"]
    try:
        command = translate.place(7, params, translate.category_specs(params, SPECS))
    except ApiError:
        return  # a refusal is the named readings' own (nothing was built by position)
    named = PlaceOrder(
        0, 0, 7, "BTCUSDT", command.side, translate.ORDER_TYPES[order_type],
        command.qty_lots, command.price_ticks,
        time_in_force=TimeInForce.IOC if order_type == "Market"
        else params.choice("timeInForce", translate.TIME_IN_FORCE, TimeInForce.GTC),
        reduce_only=params.flag("reduceOnly"), close_on_trigger=params.flag("closeOnTrigger"),
        position_idx=translate.position_idx(params), order_link_id=params.text("orderLinkId"),
        smp_type=params.choice("smpType", translate.SMP_TYPES, SmpType.NONE),
        **stops.place_fields(params, spec))
    assert command == named

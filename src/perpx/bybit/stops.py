"""Bybit's trigger, TP/SL and trailing-stop parameters (§5.1, §5.2, §5.4, §5.9, §6.6).

Reads the decimal strings of order/create, order/amend and position/trading-stop into the
core's command fields (through `perpx.convert` only) and the `orderFilter` of cancel-all and
the order lists. A bad value is Bybit's 10001 and nothing is submitted. Whether a trigger or a
TP/SL price makes sense against the market (110092/110093, wrong side) is the core's call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from perpx.bybit.errors import ApiError, params_error
from perpx.bybit.params import Params
from perpx.bybit.retcodes import bybit_code
from perpx.convert import ConversionError, to_lots, to_ticks
from perpx.core.commands import SetTradingStop
from perpx.core.enums import (
    OrderFilter,
    OrderStatus,
    OrderType,
    StopOrderType,
    TpSlMode,
    TriggerBy,
    TriggerDirection,
)
from perpx.core.instruments import InstrumentSpec
from perpx.store.records import OrderRecord

TRIGGER_BY = {"LastPrice": TriggerBy.LAST_PRICE, "MarkPrice": TriggerBy.MARK_PRICE,
              "IndexPrice": TriggerBy.INDEX_PRICE}
TRIGGER_DIRECTIONS = {"1": TriggerDirection.RISING, "2": TriggerDirection.FALLING}
TPSL_MODES = {"Full": TpSlMode.FULL, "Partial": TpSlMode.PARTIAL}
LEG_ORDER_TYPES = {"Market": OrderType.MARKET, "Limit": OrderType.LIMIT}
# cancel-all: absent = every kind; Bybit's `stopOrderType=Stop` narrows to conditional orders.
CANCEL_FILTERS = {"Order": OrderFilter.ORDER, "StopOrder": OrderFilter.STOP_ORDER,
                  "tpslOrder": OrderFilter.TPSL_ORDER}
_UNTRIGGERED = int(OrderStatus.UNTRIGGERED)
_STOP = int(StopOrderType.STOP)


def _price(params: Params, spec: InstrumentSpec, name: str) -> int | None:
    """Return a price parameter in ticks; None when absent, 0 for "0" (Bybit: none/remove)."""
    if name not in params:
        return None
    try:
        ticks = to_ticks(spec, params.text(name))
    except ConversionError as bad:
        code, message = bybit_code(bad.code)
        raise ApiError(code, f"{message}: {name}", reject=bad.code) from bad
    if ticks < 0:
        raise params_error(f"{name} invalid")
    return ticks


def _lots(params: Params, spec: InstrumentSpec, name: str) -> int | None:
    """Return a quantity parameter in lots; None when absent."""
    if name not in params:
        return None
    try:
        return to_lots(spec, params.text(name))
    except ConversionError as bad:
        code, message = bybit_code(bad.code)
        raise ApiError(code, f"{message}: {name}", reject=bad.code) from bad


# The prices that make an order conditional or give it a TP/SL: every other field of
# `place_fields` is read only when one of these is sent.
_PLACE_PRICES = frozenset(("triggerPrice", "takeProfit", "stopLoss"))


def place_fields(params: Params, spec: InstrumentSpec) -> dict[str, Any]:
    """Return PlaceOrder's trigger and TP/SL fields from an order/create request."""
    fields: dict[str, Any] = {}
    if _PLACE_PRICES.isdisjoint(params.data):  # a plain order (most): nothing to read
        return fields
    trigger = _price(params, spec, "triggerPrice")
    if trigger:
        fields["trigger_price_ticks"] = trigger
        fields["trigger_direction"] = params.choice("triggerDirection", TRIGGER_DIRECTIONS,
                                                    required=True)
        fields["trigger_by"] = params.choice("triggerBy", TRIGGER_BY, TriggerBy.LAST_PRICE)
    take_profit = _price(params, spec, "takeProfit")
    stop_loss = _price(params, spec, "stopLoss")
    if take_profit or stop_loss:
        fields.update(
            take_profit_ticks=take_profit or None, stop_loss_ticks=stop_loss or None,
            tp_trigger_by=params.choice("tpTriggerBy", TRIGGER_BY, TriggerBy.LAST_PRICE),
            sl_trigger_by=params.choice("slTriggerBy", TRIGGER_BY, TriggerBy.LAST_PRICE),
            tpsl_mode=params.choice("tpslMode", TPSL_MODES, TpSlMode.FULL),
            tp_order_type=params.choice("tpOrderType", LEG_ORDER_TYPES, OrderType.MARKET),
            sl_order_type=params.choice("slOrderType", LEG_ORDER_TYPES, OrderType.MARKET),
            tp_limit_price_ticks=_price(params, spec, "tpLimitPrice") or None,
            sl_limit_price_ticks=_price(params, spec, "slLimitPrice") or None)
    return fields


def amend_fields(params: Params, spec: InstrumentSpec) -> dict[str, Any]:
    """Return AmendOrder's trigger and TP/SL fields (None: unchanged; a TP/SL of 0 removes)."""
    return {
        "trigger_price_ticks": _price(params, spec, "triggerPrice"),
        "trigger_by": params.choice("triggerBy", TRIGGER_BY),
        "take_profit_ticks": _price(params, spec, "takeProfit"),
        "stop_loss_ticks": _price(params, spec, "stopLoss"),
        "tp_trigger_by": params.choice("tpTriggerBy", TRIGGER_BY),
        "sl_trigger_by": params.choice("slTriggerBy", TRIGGER_BY),
        "tp_limit_price_ticks": _price(params, spec, "tpLimitPrice"),
        "sl_limit_price_ticks": _price(params, spec, "slLimitPrice"),
    }


def trading_stop_command(account_id: int, params: Params, spec: InstrumentSpec,
                         position_idx: int) -> SetTradingStop:
    """Return the SetTradingStop of a position/trading-stop request (`translate.trading_stop`).

    ccxt omits `tpslMode` for a trailing stop alone: Full.
    """
    trailing = _price(params, spec, "trailingStop")
    active = _price(params, spec, "activePrice")
    return SetTradingStop(
        0, 0, account_id, spec.symbol, position_idx,
        tpsl_mode=params.choice("tpslMode", TPSL_MODES, TpSlMode.FULL),
        take_profit_ticks=_price(params, spec, "takeProfit"),
        stop_loss_ticks=_price(params, spec, "stopLoss"),
        tp_trigger_by=params.choice("tpTriggerBy", TRIGGER_BY, TriggerBy.LAST_PRICE),
        sl_trigger_by=params.choice("slTriggerBy", TRIGGER_BY, TriggerBy.LAST_PRICE),
        trailing_stop_ticks=trailing, active_price_ticks=active or None,
        tp_size_lots=_lots(params, spec, "tpSize"), sl_size_lots=_lots(params, spec, "slSize"),
        tp_order_type=params.choice("tpOrderType", LEG_ORDER_TYPES, OrderType.MARKET),
        sl_order_type=params.choice("slOrderType", LEG_ORDER_TYPES, OrderType.MARKET),
        tp_limit_price_ticks=_price(params, spec, "tpLimitPrice") or None,
        sl_limit_price_ticks=_price(params, spec, "slLimitPrice") or None)


def cancel_filter(params: Params) -> OrderFilter:
    """Return cancel-all's `orderFilter` (or `stopOrderType=Stop`); absent: every kind."""
    found: OrderFilter = params.choice("orderFilter", CANCEL_FILTERS, OrderFilter.ALL)
    stop_type = params.text("stopOrderType")
    if stop_type:
        if stop_type != "Stop":
            raise params_error("stopOrderType invalid")
        if found not in (OrderFilter.ALL, OrderFilter.STOP_ORDER):
            raise params_error("stopOrderType Stop contradicts orderFilter")
        found = OrderFilter.STOP_ORDER
    return found


def list_filter(params: Params) -> Callable[[OrderRecord], bool]:
    """Return the order lists' `orderFilter` as a test on records (absent: every kind).

    `Order` is what is live in the book (a fired stop included), `StopOrder` the user's
    untriggered conditional orders, `tpslOrder` untriggered TP/SL and trailing stops.
    """
    found = params.choice("orderFilter", CANCEL_FILTERS, OrderFilter.ALL)
    if found is OrderFilter.ORDER:
        return lambda o: o.status != _UNTRIGGERED and o.status != int(OrderStatus.DEACTIVATED)
    if found is OrderFilter.STOP_ORDER:
        return lambda o: o.stop_order_type == _STOP and not o.cum_lots and (
            o.status in (_UNTRIGGERED, int(OrderStatus.DEACTIVATED)))
    if found is OrderFilter.TPSL_ORDER:
        return lambda o: o.stop_order_type not in (0, _STOP) and not o.cum_lots and (
            o.status in (_UNTRIGGERED, int(OrderStatus.DEACTIVATED)))
    return lambda o: True

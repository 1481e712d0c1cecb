"""The one translator from Bybit V5 order parameters to the core's commands.

REST (order/create, amend, cancel, cancel-all, their batches and position/trading-stop),
`/v5/trade` and `perpx.Exchange` all turn wire parameters (`category`, `symbol`, `side`,
`orderType`, `qty`, `price`, `timeInForce`, `positionIdx`, `orderLinkId`, `reduceOnly`,
`closeOnTrigger`, `smpType`, `orderId`, `settleCoin`/`baseCoin`, `orderFilter`, the trigger
and TP/SL fields of `perpx.bybit.stops`) into PlaceOrder / AmendOrder / CancelOrder /
CancelAllOrders / SetTradingStop here, and the collateral requests (`coin`,
`collateralSwitch`, a batch's `request`, a repayment's `amount`) into SetCollateralSwitch /
RepayLiability, so one request means one command (and one bad field
one refusal) whichever way it came. A bad value raises
`ApiError` with Bybit's code (and the core's `reject` where there is one); nothing is
submitted. Decimal strings go through `perpx.convert` only.

It lives below the API and needs no web framework: `perpx.Exchange` imports it in-process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from perpx.bybit import stops
from perpx.bybit.errors import ApiError, params_error
from perpx.bybit.params import LISTED_CATEGORIES, CategoryView, Params
from perpx.bybit.retcodes import bybit_code
from perpx.convert import ConversionError, to_atoms, to_lots, to_ticks
from perpx.core.codes import RejectCode
from perpx.core.commands import (
    AmendOrder,
    CancelAllOrders,
    CancelOrder,
    Command,
    PlaceOrder,
    RepayLiability,
    SetCollateralSwitch,
    SetTradingStop,
)
from perpx.core.enums import OrderType, Side, SmpType, TimeInForce
from perpx.core.instruments import InstrumentSpec

SIDES = {"Buy": Side.BUY, "Sell": Side.SELL}
ORDER_TYPES = {"Limit": OrderType.LIMIT, "Market": OrderType.MARKET}
TIME_IN_FORCE = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK,
                 "PostOnly": TimeInForce.POST_ONLY, "GoodTillCancel": TimeInForce.GTC,
                 "ImmediateOrCancel": TimeInForce.IOC, "FillOrKill": TimeInForce.FOK}
SMP_TYPES = {"None": SmpType.NONE, "CancelMaker": SmpType.CANCEL_MAKER,
             "CancelTaker": SmpType.CANCEL_TAKER, "CancelBoth": SmpType.CANCEL_BOTH}
Specs = Mapping[str, InstrumentSpec]
# Members read once: in Python 3.11 a member read from its enum class goes through
# `EnumType.__getattr__` (~1k instructions a read, callgrind), and `place` runs per order.
_LIMIT = OrderType.LIMIT
_MARKET = OrderType.MARKET
_GTC = TimeInForce.GTC
_IOC = TimeInForce.IOC
_SMP_NONE = SmpType.NONE


def category_specs(params: Params, specs: Specs) -> Specs:
    """Return the instruments of the request's `category` (`linear` or `inverse`, required).

    A write names its symbol within them, so a symbol of the other category is 10001 "symbol
    invalid" (`params.in_category`). A batch checks its outer body once.
    """
    category = params.category()
    if category not in LISTED_CATEGORIES:
        raise params_error("category invalid: perpx lists linear and inverse contracts only")
    # A view, not `in_category`'s copy: every reader of it reads at once (no await between).
    return CategoryView(specs, category)


def order_id(params: Params) -> int | None:
    """Return `orderId` as the engine's integer (None when absent); ours are ASCII digits."""
    text = params.text("orderId")
    if text == "":
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise ApiError(110001, "Order does not exist", reject=RejectCode.ORDER_NOT_FOUND)
    return int(text)


def _conversion_error(bad: ConversionError) -> ApiError:
    code, message = bybit_code(bad.code)
    return ApiError(code, message, reject=bad.code)


def _convert(convert: Callable[[InstrumentSpec, str], int], spec: InstrumentSpec,
             text: str) -> int:
    try:
        return convert(spec, text)
    except ConversionError as bad:
        raise _conversion_error(bad) from bad


def _spec(params: Params, specs: Specs) -> InstrumentSpec:
    spec = params.spec(specs)
    assert spec is not None  # required=True
    return spec


def category_spec(params: Params, specs: Specs) -> InstrumentSpec:
    """Return the `symbol` of a one-symbol request, within its `category` (required)."""
    return _spec(params, category_specs(params, specs))


def position_idx(params: Params) -> int:
    """Return `positionIdx`: 0 one-way, 1 hedge buy, 2 hedge sell; absent 0 (ccxt omits it).

    Whether it matches the account's position mode is the core's call.
    """
    idx = params.integer("positionIdx", 0, low=0, high=2)
    assert idx is not None
    return idx


def place(account_id: int, params: Params, specs: Specs) -> PlaceOrder:
    """Return the PlaceOrder of an order/create request (or batch item)."""
    spec = _spec(params, specs)
    side = params.choice("side", SIDES, required=True)
    order_type = params.choice("orderType", ORDER_TYPES, required=True)
    if "trailingStop" in params:
        raise params_error("trailingStop is set on a position by /v5/position/trading-stop")
    # `_convert`'s rule inline (a frame less per amount, issue #15): a bad amount is the
    # ApiError of its ConversionError; the other refusals in between are not caught.
    try:
        qty = to_lots(spec, params.text("qty", required=True))
        price = None
        if order_type is _LIMIT:
            if "price" not in params:
                raise ApiError(10001, "params error: price is required",
                               reject=RejectCode.INVALID_PRICE)
            price = to_ticks(spec, params.text("price"))
    except ConversionError as bad:
        raise _conversion_error(bad) from bad
    tif = params.choice("timeInForce", TIME_IN_FORCE, _GTC)
    if order_type is _MARKET:
        tif = _IOC
    # Read in the order the refusals have always come in (a request with two bad parameters
    # is told of the same one).
    reduce_only = params.flag("reduceOnly")
    close_on_trigger = params.flag("closeOnTrigger")
    idx = position_idx(params)
    link = params.text("orderLinkId")
    smp_type = params.choice("smpType", SMP_TYPES, _SMP_NONE)
    fields = stops.place_fields(params, spec)
    if fields:  # a trigger or TP/SL: the rest of the fields by name
        return PlaceOrder(0, 0, account_id, spec.symbol, side, order_type, qty, price, tif,
                          reduce_only, close_on_trigger, idx, link, smp_type, **fields)
    # A plain order (most) by position only: a call with keywords costs ~3.6k instructions
    # more (issue #15). The positions are the journal's format 3, pinned by
    # tests/data/journals/format3_fields.json; `test_place_by_position.py` holds these.
    return PlaceOrder(0, 0, account_id, spec.symbol, side, order_type, qty, price, tif,
                      reduce_only, close_on_trigger, idx, link, smp_type)


def order_ref(params: Params) -> tuple[int | None, str]:
    """Return the (orderId, orderLinkId) naming an order; one is required, an id wins."""
    found = order_id(params)
    link = params.text("orderLinkId")
    if found is None and not link:
        raise params_error("orderId or orderLinkId is required")
    return found, link if found is None else ""


def amend(account_id: int, params: Params, specs: Specs) -> AmendOrder:
    """Return the AmendOrder of an order/amend request (or batch item)."""
    spec = _spec(params, specs)
    found, link = order_ref(params)
    qty = _convert(to_lots, spec, params.text("qty")) if "qty" in params else None
    price = _convert(to_ticks, spec, params.text("price")) if "price" in params else None
    return AmendOrder(0, 0, account_id, spec.symbol, found, link, qty, price,
                      **stops.amend_fields(params, spec))


def cancel(account_id: int, params: Params, specs: Specs) -> CancelOrder:
    """Return the CancelOrder of an order/cancel request (or batch item)."""
    spec = _spec(params, specs)
    found, link = order_ref(params)
    return CancelOrder(0, 0, account_id, spec.symbol, found, link)


def cancel_symbols(params: Params, specs: Specs) -> list[str]:
    """Return the symbols cancel-all names by `symbol`, `baseCoin` or `settleCoin` (one needed)."""
    spec = params.spec(specs, required=False)
    if spec is not None:
        return [spec.symbol]
    base, settle = params.text("baseCoin"), params.text("settleCoin")
    if not base and not settle:
        raise ApiError(10001, "Missing some parameters that must be filled in, symbol or "
                              "settleCoin or baseCoin")
    return [s.symbol for s in specs.values()
            if (not base or s.base_coin == base) and (not settle or s.settle_coin == settle)]


def cancel_all(account_id: int, params: Params, specs: Specs) -> list[CancelAllOrders]:
    """Return the CancelAllOrders (one a symbol) of an order/cancel-all request."""
    symbols = cancel_symbols(params, category_specs(params, specs))
    order_filter = stops.cancel_filter(params)
    return [CancelAllOrders(0, 0, account_id, symbol, order_filter) for symbol in symbols]


def trading_stop(account_id: int, params: Params, specs: Specs) -> SetTradingStop:
    """Return the SetTradingStop of a position/trading-stop request."""
    spec = category_spec(params, specs)
    return stops.trading_stop_command(account_id, params, spec, position_idx(params))


Build = Callable[[int, Params, Specs], Command]
BUILDERS: dict[str, Build] = {"order.create": place, "order.amend": amend,
                              "order.cancel": cancel}


def command(op: str, data: Mapping[str, Any], account_id: int, specs: Specs) -> Command:
    """Return the command of one order request (`op`: order.create, .amend or .cancel)."""
    build = BUILDERS.get(op)
    if build is None:
        raise ApiError(10404, f"unknown op {op[:40]}")
    params = Params(data)
    return build(account_id, params, category_specs(params, specs))


# -- collateral and liabilities (next-mechanics §4.6) ----------------------------------------

SWITCHES = {"ON": True, "OFF": False}


def _coin(value: Any, name: str = "coin") -> str:
    """Return a coin name: Bybit's are uppercase only; whether the venue knows it is the core's.

    Only the shape is checked here, so an unknown coin is refused once, by the core
    (`RejectCode.UNKNOWN_COIN`), whichever way it came.
    """
    if not isinstance(value, str) or not value or len(value) > 20 or not value.isascii() \
            or not value.isalnum() or value != value.upper():
        raise params_error(f"{name} invalid")
    return value


def _switch(item: Mapping[str, Any]) -> tuple[str, bool]:
    params = Params(item)
    coin = _coin(params.text("coin", required=True))
    return coin, params.choice("collateralSwitch", SWITCHES, required=True)


def collateral_switch(account_id: int, params: Params) -> SetCollateralSwitch:
    """Return the SetCollateralSwitch of `/v5/account/set-collateral-switch` {coin, ON/OFF}."""
    return SetCollateralSwitch(0, 0, account_id, [_switch(params.data)])


MAX_SWITCHES = 50  # a batch names each coin at most once; perpx has far fewer coins


def collateral_switch_batch(account_id: int, params: Params) -> SetCollateralSwitch:
    """Return the one SetCollateralSwitch of a `set-collateral-switch-batch` request.

    `request` is a non-empty list of {coin, collateralSwitch}; the whole batch is one
    command, so it applies entirely or not at all (a coin named twice is refused).
    """
    items = params.data.get("request")
    if not isinstance(items, list) or not items or len(items) > MAX_SWITCHES or \
            not all(isinstance(item, dict) for item in items):
        raise params_error("request must be a non-empty list of {coin, collateralSwitch}")
    switches = [_switch(item) for item in items]
    if len({coin for coin, _ in switches}) != len(switches):
        raise params_error("request names a coin twice")
    return SetCollateralSwitch(0, 0, account_id, switches)


def repay(account_id: int, params: Params, *, convert: bool,
          coin_required: bool = False, with_amount: bool = True) -> RepayLiability:
    """Return the RepayLiability of `/v5/account/repay`, `no-convert-repay` or `quick-repayment`.

    `coin` absent repays every liability (repay, quick-repayment); `amount` absent repays
    the coin's whole liability, and needs a coin (Bybit: "If coin is not passed, amount can
    not be passed"). `convert` says whether other coins may be converted to repay it.
    """
    coin = params.text("coin", required=coin_required)
    if coin:
        coin = _coin(coin)
    amount = 0
    if with_amount and "amount" in params:
        if not coin:
            raise params_error("amount needs a coin")
        try:
            amount = to_atoms(params.text("amount"))
        except ConversionError as bad:
            code, message = bybit_code(bad.code)
            raise ApiError(code, message, reject=bad.code) from bad
        if amount <= 0:
            raise ApiError(10001, "params error: amount must be positive",
                           reject=RejectCode.INVALID_AMOUNT)
    return RepayLiability(0, 0, account_id, coin, amount, convert)

"""Order entry over WebSocket (`/v5/trade`, spec §8.10): order.create, order.amend, order.cancel.

Each request body is a REST body (§5.1-§5.3), turned into a command at the edge
(`perpx.convert`) and submitted through the sequencer; the reply comes once the command is
durable, with the same retCode a REST call would get.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from perpx.api.envelope import ApiError
from perpx.api.params import Params
from perpx.api.rest import stops
from perpx.api.retcodes import bybit_code
from perpx.convert import ConversionError, to_lots, to_ticks
from perpx.core.codes import RejectCode
from perpx.core.commands import AmendOrder, CancelOrder, Command, PlaceOrder
from perpx.core.enums import OrderType, Side, TimeInForce
from perpx.core.events import ConditionalOrderAccepted, OrderAccepted, OrderRejected

if TYPE_CHECKING:
    from perpx.api.ws.server import Session

_SIDES = {"Buy": Side.BUY, "Sell": Side.SELL}
_TYPES = {"Limit": OrderType.LIMIT, "Market": OrderType.MARKET}
_TIFS = {"GTC": TimeInForce.GTC, "IOC": TimeInForce.IOC, "FOK": TimeInForce.FOK,
         "PostOnly": TimeInForce.POST_ONLY, "GoodTillCancel": TimeInForce.GTC,
         "ImmediateOrCancel": TimeInForce.IOC, "FillOrKill": TimeInForce.FOK}


class BadRequest(ValueError):
    """A request the edge refuses before it becomes a command."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise BadRequest(10001, f"params error: {key} invalid")
    return value


def _bool(value: Any) -> bool:
    return value is True or value == "true"


def _stop_fields(read: Any, body: dict[str, Any], spec: Any) -> dict[str, Any]:
    """Read trigger and TP/SL parameters exactly as the REST endpoints do."""
    try:
        fields: dict[str, Any] = read(Params(body), spec)
    except ApiError as bad:
        raise BadRequest(bad.code, bad.message) from bad
    return fields


def to_command(op: str, body: dict[str, Any], account_id: int,
               specs: dict[str, Any]) -> Command:
    """Turn one order request body into a command of `account_id`."""
    if body.get("category", "linear") != "linear":
        raise BadRequest(10404, "category not supported")
    symbol = _text(body, "symbol")
    spec = specs.get(symbol)
    if spec is None:
        raise BadRequest(10001, "params error: symbol invalid")
    link = str(body.get("orderLinkId") or "")
    order_id = body.get("orderId")
    oid: int | None = None
    if order_id not in (None, ""):
        try:
            oid = int(str(order_id))
        except ValueError as bad:
            raise BadRequest(110001, "Order does not exist") from bad
    try:
        if op == "order.create":
            side = _SIDES.get(_text(body, "side"))
            order_type = _TYPES.get(_text(body, "orderType"))
            tif = _TIFS.get(str(body.get("timeInForce") or "GTC"))
            if side is None or order_type is None or tif is None:
                raise BadRequest(10001, "params error: side, orderType or timeInForce invalid")
            price = (to_ticks(spec, _text(body, "price"))
                     if order_type is OrderType.LIMIT else None)
            return PlaceOrder(0, 0, account_id, symbol, side, order_type,
                              to_lots(spec, _text(body, "qty")), price, tif,
                              _bool(body.get("reduceOnly")), _bool(body.get("closeOnTrigger")),
                              int(body.get("positionIdx") or 0), link,
                              **_stop_fields(stops.place_fields, body, spec))
        if oid is None and not link:
            raise BadRequest(10001, "params error: orderId or orderLinkId required")
        if op == "order.amend":
            qty = to_lots(spec, _text(body, "qty")) if body.get("qty") else None
            price = to_ticks(spec, _text(body, "price")) if body.get("price") else None
            return AmendOrder(0, 0, account_id, symbol, oid, link, qty, price,
                              **_stop_fields(stops.amend_fields, body, spec))
        if op == "order.cancel":
            return CancelOrder(0, 0, account_id, symbol, oid, link)
    except ConversionError as bad:
        code, _ = bybit_code(bad.code)
        raise BadRequest(code, str(bad)) from bad
    raise BadRequest(10404, f"unknown op {op[:40]}")


async def handle_trade_op(session: Session, message: dict[str, Any]) -> None:
    """Answer one `/v5/trade` request."""
    conn = session.conn
    op = str(message.get("op"))
    req = {"reqId": str(message["reqId"])} if "reqId" in message else {}
    base = {**req, "op": op, "retExtInfo": {}, "header": {}, "connId": conn.conn_id}
    args = message.get("args")
    if conn.account_id is None:
        session.reply({**base, "retCode": 10003, "retMsg": "Request not authorized",
                       "data": {}})
        return
    if session.submit is None or not isinstance(args, list) or len(args) != 1 \
            or not isinstance(args[0], dict):
        session.reply({**base, "retCode": 10001, "retMsg": "params error", "data": {}})
        return
    body = args[0]
    try:
        command = to_command(op, body, conn.account_id, session.hub.specs)
    except BadRequest as bad:
        session.reply({**base, "retCode": bad.code, "retMsg": str(bad), "data": {}})
        return
    events = await session.submit(command)
    for event in events:
        if isinstance(event, OrderRejected) and event.account_id == conn.account_id:
            code, msg = bybit_code(event.reason)
            session.reply({**base, "retCode": code, "retMsg": event.detail or msg, "data": {}})
            return
    order_id = ""
    for event in events:
        if isinstance(event, (OrderAccepted, ConditionalOrderAccepted)) and \
                event.account_id == conn.account_id:
            order_id = str(event.order_id)
            break
    if not order_id and not isinstance(command, PlaceOrder):
        order_id = str(getattr(command, "order_id", "") or "")
    if isinstance(command, PlaceOrder) and not order_id:
        code, msg = bybit_code(RejectCode.INVALID_PARAMETER)
        session.reply({**base, "retCode": code, "retMsg": msg, "data": {}})
        return
    session.reply({**base, "retCode": 0, "retMsg": "OK",
                   "data": {"orderId": order_id, "orderLinkId": str(body.get("orderLinkId")
                                                                    or "")}})

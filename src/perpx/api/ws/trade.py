"""Order entry over WebSocket (`/v5/trade`, spec §8.10): order.create, order.amend, order.cancel.

Each request body is a REST body (§5.1-§5.3). When the command is executed, the session's key
is checked as REST checks it (`Gate.check`: revoked 10003, read-only 10005, over the key's
rate limit shared with REST 10006); the body becomes a command through the same translator
as REST (`perpx.bybit.translate`) and is submitted through the sequencer; the reply comes once
the command is durable, with the same retCode a REST call would get.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from perpx.api.permissions import Access
from perpx.api.ws.connection import Connection
from perpx.api.ws.gate import Gate
from perpx.api.ws.hub import Submit
from perpx.bybit import translate
from perpx.bybit.errors import ApiError
from perpx.bybit.params import Params
from perpx.bybit.retcodes import bybit_code
from perpx.core.codes import RejectCode
from perpx.core.commands import PlaceOrder
from perpx.core.events import (
    CommandRejected,
    ConditionalOrderAccepted,
    OrderAccepted,
    OrderRejected,
)
from perpx.core.instruments import InstrumentSpec

log = logging.getLogger("perpx.api.ws")


class TradeSession(Protocol):
    """What a `/v5/trade` request needs of its connection's session (`server.Session`).

    A protocol rather than the class, so that the endpoints import this module and not the
    other way round.
    """

    conn: Connection
    gate: Gate
    submit: Submit | None

    @property
    def specs(self) -> Mapping[str, InstrumentSpec]:
        """The instruments orders may name."""

    def reply(self, message: dict[str, Any]) -> None:
        """Queue a protocol reply."""


async def handle_trade_op(session: TradeSession, message: dict[str, Any]) -> None:
    """Answer one `/v5/trade` request."""
    conn = session.conn
    op = str(message.get("op"))
    req = {"reqId": str(message["reqId"])} if "reqId" in message else {}
    base = {**req, "op": op, "retExtInfo": {}, "header": {}, "connId": conn.conn_id}
    args = message.get("args")
    try:
        key = session.gate.check(conn, Access.WRITE)
        if session.submit is None or not isinstance(args, list) or len(args) != 1 \
                or not isinstance(args[0], dict):
            raise ApiError(10001, "params error")
        command = translate.command(op, args[0], key.account_id, session.specs)
    except ApiError as refused:
        session.reply({**base, "retCode": refused.code, "retMsg": refused.message, "data": {}})
        return
    try:
        events = await session.submit(command)
    except Exception:  # the service stopped, or a bug: answered as REST answers it
        log.exception("unexpected error on /v5/trade %s", op[:40])
        session.reply({**base, "retCode": 10016, "retMsg": "Internal system error.",
                       "data": {}})
        return
    for event in events:
        if isinstance(event, OrderRejected | CommandRejected) and \
                event.account_id == key.account_id:
            # Bybit's fixed retMsg for the code, as REST and `perpx.Exchange` answer it.
            code, msg = bybit_code(event.reason)
            session.reply({**base, "retCode": code, "retMsg": msg, "data": {}})
            return
    order_id = ""
    for event in events:
        if isinstance(event, (OrderAccepted, ConditionalOrderAccepted)) and \
                event.account_id == key.account_id:
            order_id = str(event.order_id)
            break
    if not order_id and not isinstance(command, PlaceOrder):
        order_id = str(getattr(command, "order_id", "") or "")
    if isinstance(command, PlaceOrder) and not order_id:
        code, msg = bybit_code(RejectCode.INVALID_PARAMETER)
        session.reply({**base, "retCode": code, "retMsg": msg, "data": {}})
        return
    session.reply({**base, "retCode": 0, "retMsg": "OK",
                   "data": {"orderId": order_id,
                            "orderLinkId": Params(args[0]).text("orderLinkId")}})

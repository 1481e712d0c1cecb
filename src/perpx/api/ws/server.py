"""The WebSocket endpoints: connection protocol of spec §8.1-§8.2 and auth of §1.5.

Each connection's frames are handled in order. Every reply goes through the connection's
output (`Connection.offer`), so acks, pongs and topic messages leave in the order they were
produced; under uvicorn that output is written straight to the socket's transport
(`perpx.api.protocol.TransportSink`), elsewhere through ASGI sends (`AsgiSink`). A subscribe is
acknowledged about 50 ms after it arrives (pybit registers its callback only after sending the
frame), and the topic's first snapshot follows its ack. Auth, each trade command's permission
and revocation are the `Gate`'s. No frame ends the connection: a binary frame, invalid or
too deeply nested JSON is answered with an error and the connection kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping
from typing import Any

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from perpx.api.jsondepth import MAX_DEPTH, too_deep
from perpx.api.protocol import FRAME_WRITER
from perpx.api.ws.connection import AsgiSink, Connection, Sink
from perpx.api.ws.gate import Gate, NoKeys
from perpx.api.ws.hub import StreamHub, Submit, encode
from perpx.api.ws.trade import handle_trade_op
from perpx.bybit.errors import ApiError
from perpx.bybit.params import INVERSE, LINEAR
from perpx.core.instruments import InstrumentSpec

SUBSCRIBE_DELAY_S = 0.05
PUBLIC, PRIVATE, TRADE = "public", "private", "trade"


def now_ms() -> int:
    """Wall-clock milliseconds (the auth window is checked against real time)."""
    return time.time_ns() // 1_000_000


def _int(value: Any) -> int | None:
    """Return an auth frame's `expires` (a JSON integer or digits), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        return int(value)
    return None


def _req_id(message: dict[str, Any]) -> dict[str, Any]:
    for key in ("req_id", "reqId"):
        if key in message:
            return {key: str(message[key])}
    return {}


class Session:
    """The protocol state of one connection."""

    def __init__(self, hub: StreamHub, conn: Connection, gate: Gate,
                 submit: Submit | None, category: str = "") -> None:
        self.hub = hub
        self.conn = conn
        self.gate = gate
        self.submit = submit
        self.category = category  # a public path's category: the symbols it streams

    @property
    def specs(self) -> Mapping[str, InstrumentSpec]:
        """The instruments orders may name (the hub's)."""
        return self.hub.specs

    def reply(self, message: dict[str, Any]) -> None:
        """Queue a protocol reply."""
        self.conn.offer(encode(message))

    async def handle(self, message: dict[str, Any]) -> None:
        """Answer one client frame."""
        op = message.get("op")
        conn = self.conn
        if op == "ping":
            if conn.endpoint == PUBLIC:
                self.reply({"success": True, "ret_msg": "pong", "conn_id": conn.conn_id,
                            **_req_id(message), "op": "ping"})
            else:
                self.reply({**_req_id(message), "op": "pong", "args": [str(now_ms())],
                            "conn_id": conn.conn_id})
        elif op == "auth" and conn.endpoint != PUBLIC:
            await self.auth(message)
        elif op in ("subscribe", "unsubscribe") and conn.endpoint != TRADE:
            await self.subscribe(message, op)
        elif conn.endpoint == TRADE and isinstance(op, str) and op.startswith("order."):
            await handle_trade_op(self, message)
        else:
            self.reply({"success": False, "ret_msg": f"error:unknown op {str(op)[:40]}",
                        "conn_id": conn.conn_id, **_req_id(message), "op": str(op)})

    async def auth(self, message: dict[str, Any]) -> None:
        """Check an auth frame: key, expiry (ms, in the future but not too far), signature."""
        conn = self.conn
        args = message.get("args")
        account: int | None = None
        error = "error:params error"
        code = 10001
        if conn.account_id is not None:
            error, code = "error:repeat auth", 20001
        elif isinstance(args, list) and len(args) == 3:
            key, expires, signature = args
            expires_ms = _int(expires)
            if expires_ms is not None and isinstance(key, str) and isinstance(signature, str):
                try:
                    account = (await self.gate.admit(conn, key, expires_ms, signature)).account_id
                except ApiError as refused:
                    code = refused.code
                    error = refused.message if refused.message.startswith("error:") \
                        else f"error:{refused.message}"
        if account is not None and not conn.closed:
            self.hub.attach_account(conn, account)
        if conn.endpoint == TRADE:
            ok = account is not None
            self.reply({**_req_id(message), "retCode": 0 if ok else code,
                        "retMsg": "OK" if ok else error, "op": "auth",
                        "connId": conn.conn_id})
        else:
            self.reply({"success": account is not None,
                        "ret_msg": "" if account is not None else error, "op": "auth",
                        "conn_id": conn.conn_id, **_req_id(message)})

    async def subscribe(self, message: dict[str, Any], op: str) -> None:
        """Subscribe or unsubscribe topics: all or nothing, acked after a short delay."""
        conn = self.conn
        hub = self.hub
        raw = message.get("args")
        args: list[str] = raw if isinstance(raw, list) else []
        private = conn.endpoint == PRIVATE
        category = self.category

        def ok_topic(topic: str) -> bool:
            return hub.private_topic_ok(topic) if private else \
                hub.public_topic_ok(topic, category)

        failure = ""
        if not args or not all(isinstance(a, str) for a in args):
            failure = "error:args must be a list of topics"
        elif private and conn.account_id is None:
            failure = "Request not authorized"
        else:
            bad = [topic for topic in args if not ok_topic(topic)]
            if bad:
                failure = f"error:handler not found,topic:{','.join(bad)}"
        await asyncio.sleep(SUBSCRIBE_DELAY_S)
        if conn.closed:
            return
        ack_msg = "" if private or op == "unsubscribe" else "subscribe"
        self.reply({"success": not failure, "ret_msg": failure or ack_msg,
                    "conn_id": conn.conn_id, **_req_id(message), "op": op})
        if failure:
            return
        for topic in args:
            if op == "subscribe":
                hub.add(conn, topic)
            else:
                hub.remove(conn, topic)


def _frame(message: Mapping[str, Any]) -> tuple[str, bytes | None]:
    """Return one received frame's text ("" if none) and its bytes (None for a text frame)."""
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    return (text, None) if text is not None else ("", message.get("bytes") or b"")


async def _serve(websocket: WebSocket, hub: StreamHub, endpoint: str, gate: Gate,
                 submit: Submit | None, category: str = "") -> None:
    await websocket.accept()
    conn = hub.new_connection(endpoint)
    session = Session(hub, conn, gate, submit, category)
    writer = websocket.scope.get("extensions", {}).get(FRAME_WRITER)
    sink: Sink
    asgi: AsgiSink | None = None
    if writer is not None:
        sink = writer["sink"]
    else:  # a server without a direct writer: a sending task per connection

        async def close(code: int, reason: str) -> None:
            await websocket.close(code=code, reason=reason)

        sink = asgi = AsgiSink(websocket.send_text, close)
    conn.attach(sink, hub.outbox())

    def refuse(error: str) -> None:
        session.reply({"success": False, "ret_msg": error, "conn_id": conn.conn_id, "op": ""})

    hub.sessions[endpoint] = hub.sessions.get(endpoint, 0) + 1
    try:
        while not conn.closed:
            text, binary = _frame(await websocket.receive())
            if binary is not None:
                refuse("error:binary frames are not supported, send JSON text")
                continue
            if too_deep(text):
                refuse(f"error:JSON nested deeper than {MAX_DEPTH} levels")
                continue
            try:
                message = json.loads(text)
            except ValueError:
                message = None
            if not isinstance(message, dict):
                refuse("error:invalid json")
                continue
            await session.handle(message)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        hub.sessions[endpoint] -= 1
        hub.drop(conn)
        gate.release(conn)
        if asgi is not None:
            with contextlib.suppress(Exception):
                await asgi.task


def build_routes(hub: StreamHub, gate: Gate | None = None,
                 submit: Submit | None = None) -> list[BaseRoute]:
    """Return the routes of the public, private and (with `submit`) trade endpoints.

    `gate` authenticates private and trade sessions; without one, every auth is refused.
    """
    if gate is None:
        gate = Gate(NoKeys())

    def endpoint(kind: str, category: str = "") -> Any:
        async def run(websocket: WebSocket) -> None:
            await _serve(websocket, hub, kind, gate, submit, category)

        return run

    routes: list[BaseRoute] = [
        WebSocketRoute("/v5/public/linear", endpoint(PUBLIC, LINEAR)),
        WebSocketRoute("/v5/public/inverse", endpoint(PUBLIC, INVERSE)),
        WebSocketRoute("/v5/private", endpoint(PRIVATE)),
    ]
    if submit is not None:
        routes.append(WebSocketRoute("/v5/trade", endpoint(TRADE)))
    return routes

"""The fan-out's send path: one frame for every subscriber, written to each transport.

A message is framed once (`Outgoing`) and written to each subscriber's socket at the end of
the loop's turn; a reader that stops reading is cut off past its byte bound while the others
get every frame in order; a connection that negotiated permessage-deflate is compressed on
its own; an ASGI server without uvicorn's transport gets the same frames through ASGI sends.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

from starlette.applications import Starlette
from websockets.frames import Frame, Opcode
from websockets.sync.client import connect

from api_ws.live import LiveExchange
from api_ws.test_protocol import recv
from perpx.api.limits import Limits
from perpx.api.ws.connection import OVERFLOW_CLOSE_CODE, Connection, Outgoing
from perpx.api.ws.hub import StreamHub
from perpx.api.ws.server import build_routes
from perpx.core import Engine, Side
from support.builders import btcusdt

TOPIC = "publicTrade.BTCUSDT"


class _Sink:
    """A sink that keeps what it is given and reports a buffer of `behind` bytes."""

    def __init__(self) -> None:
        self.written: list[list[bytes]] = []
        self.behind = 0
        self.closed: tuple[int | None, str] | None = None

    def write(self, frames: list[Outgoing]) -> None:
        self.written.append([frame.wire for frame in frames])

    def buffered(self) -> int:
        return self.behind

    def close(self, code: int | None, reason: str) -> None:
        self.closed = (code, reason)


def test_a_message_is_framed_once_and_a_turn_goes_out_in_one_write() -> None:
    frame = Outgoing(b'{"topic":"x"}')
    assert frame.wire == Frame(Opcode.TEXT, b'{"topic":"x"}').serialize(mask=False)
    long = Outgoing(b"y" * 70_000)  # a 64-bit length
    assert long.wire[:2] == b"\x81\x7f" and long.wire[10:] == b"y" * 70_000

    async def run() -> tuple[_Sink, _Sink]:
        first, second = _Sink(), _Sink()
        conns = [Connection("public"), Connection("public", max_buffer=100)]
        for conn, sink in zip(conns, (first, second), strict=True):
            conn.attach(sink)
        for i in range(3):
            message = Outgoing(f'{{"n":{i}}}'.encode())
            for conn in conns:
                conn.offer(message)
        second.behind = 101  # its kernel took nothing: over its bound after this write
        await asyncio.sleep(0)
        conns[0].offer(Outgoing(b'{"n":3}'))
        conns[1].offer(Outgoing(b'{"n":3}'))  # closed: dropped
        await asyncio.sleep(0)
        assert not conns[0].overflowed and conns[1].overflowed and conns[1].closed
        return first, second

    first, second = asyncio.run(run())
    wires = [Outgoing(f'{{"n":{i}}}'.encode()).wire for i in range(4)]
    assert first.written == [wires[:3], wires[3:]] and first.closed is None
    assert second.written == [wires[:3]]
    assert second.closed == (OVERFLOW_CLOSE_CODE, "send queue overflow")


def _wait(condition: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.02)


def test_a_stalled_reader_is_cut_off_while_the_others_get_every_frame_in_order() -> None:
    live = LiveExchange(max_buffer=256 << 10).start()
    try:
        live.deposit(1)
        live.mark("30000")
        # A subscriber that never reads: a small receive window, so the server's buffer grows.
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", live.port))
        stalled.sendall(b"GET /v5/public/linear HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        b"Sec-WebSocket-Version: 13\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:  # a client sends frames after the 101 only
            head += stalled.recv(1)
        assert head.startswith(b"HTTP/1.1 101")
        stalled.sendall(Frame(Opcode.TEXT, json.dumps(
            {"op": "subscribe", "args": [TOPIC]}).encode()).serialize(mask=True))
        with connect(live.url + "/v5/public/linear", max_size=None) as reader:
            reader.send(json.dumps({"op": "subscribe", "args": [TOPIC]}))
            assert recv(reader)["success"] is True
            _wait(lambda: len(live.call(lambda: live.hub.subscribers.get(TOPIC, ()))) == 2)
            padding = "x" * 32_000
            count = 400  # 12.8 MB: past what the kernel's buffers hold for the stalled one

            async def publish() -> None:
                for n in range(count):
                    live.hub._publish(TOPIC, {"topic": TOPIC, "n": n, "pad": padding})
                    if n % 4 == 3:  # a few frames a turn, as a live flow sends them
                        await asyncio.sleep(0.005)

            assert live.loop is not None
            published = asyncio.run_coroutine_threadsafe(publish(), live.loop)
            got = [json.loads(reader.recv(timeout=10))["n"] for _ in range(count)]
            published.result(10)
            assert got == list(range(count))
            # The stalled subscriber was dropped; the reader is still subscribed.
            _wait(lambda: len(live.call(lambda: live.hub.subscribers.get(TOPIC, ()))) == 1)
            reader.send(json.dumps({"op": "ping", "req_id": "after"}))
            assert recv(reader)["req_id"] == "after"
        stalled.close()
    finally:
        live.stop()


def test_a_connection_that_negotiated_deflate_is_compressed_on_its_own() -> None:
    live = LiveExchange(limits=Limits(ws_compression=True)).start()
    try:
        for account in (1, 2):
            live.deposit(account)
        live.mark("30000")
        with connect(live.url + "/v5/public/linear") as deflated, \
                connect(live.url + "/v5/public/linear", compression=None) as plain:
            assert deflated.protocol.extensions and not plain.protocol.extensions
            for ws in (deflated, plain):
                ws.send(json.dumps({"op": "subscribe", "args": [TOPIC]}))
                assert recv(ws)["success"] is True
            live.place(1, Side.SELL, "0.01", "30000")
            live.place(2, Side.BUY, "0.01", "30000")
            trades = [recv(ws) for ws in (deflated, plain)]
            assert trades[0] == trades[1] and trades[0]["data"][0]["p"] == "30000.00"
    finally:
        live.stop()


def test_an_asgi_server_without_the_transport_sends_through_asgi() -> None:
    """A bare ASGI server (no `FrameWriter` in the scope): the same replies, in order."""
    async def run() -> list[dict[str, Any]]:
        hub = StreamHub(Engine([btcusdt()]))
        app = Starlette(routes=build_routes(hub))
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        sent: list[dict[str, Any]] = []
        for message in ({"op": "ping", "req_id": "1"},
                        {"op": "subscribe", "args": ["orderbook.1.BTCUSDT"]}):
            inbox.put_nowait({"type": "websocket.receive", "text": json.dumps(message)})

        async def receive() -> dict[str, Any]:
            if not sent:
                return {"type": "websocket.connect"}
            return await inbox.get()

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if len(sent) == 4:  # accept, pong, ack, snapshot: the client leaves
                inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})

        scope = {"type": "websocket", "path": "/v5/public/linear", "headers": [],
                 "query_string": b"", "extensions": {}}
        await asyncio.wait_for(app(scope, receive, send), 10)
        return sent

    sent = asyncio.run(run())
    assert sent[0]["type"] == "websocket.accept"
    replies = [json.loads(message["text"]) for message in sent[1:]]
    assert replies[0]["ret_msg"] == "pong" and replies[1]["op"] == "subscribe"
    assert replies[2]["topic"] == "orderbook.1.BTCUSDT" and replies[2]["type"] == "snapshot"

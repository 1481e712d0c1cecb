"""perpx's own reply writer (`perpx.api.replywriter`) against uvicorn's `send`, on the wire.

The same requests go to two connections: perpx's server protocol (`perpx.api.server`'s
config: the request clock, the connection guard) with the app as it is, whose REST replies
`write_reply` writes; and stock uvicorn's `HttpToolsProtocol` with the same app behind a
plain `send` (not a cycle's), so that every reply takes uvicorn's path. The bytes written
and whether the connection was closed must be the same, over HEAD, keep-alive and
`Connection: close`, HTTP/1.0, a pipeline, a request in pieces, 100-continue, a large
reply, refusals (404, 413), a route that raises (500), a streamed (chunked) route, a bad
request (400) and a client gone before its body. The date header is the server state's,
one fixed value for both. A property test holds `write_reply` itself to uvicorn's two
`send`s on one cycle, for any status, headers, method, keep-alive and default headers.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

import perpx.api.app
from perpx.api.app import create_app
from perpx.api.keys import KeyStore
from perpx.api.limits import Limits
from perpx.api.replywriter import write_reply
from perpx.instruments import load_instruments
from perpx.service import ExchangeService
from perpx.store.journal import MemoryJournal
from support.uvicorn_connection import DATE, RecordingTransport, open_connection

NOW = 1_700_000_000_000
ORDER = (b'{"category":"linear","symbol":"BTCUSDT","side":"Buy","orderType":"Limit",'
         b'"qty":"0.001","price":"60000","timeInForce":"GTC"}')
LIMITS = Limits(max_body_bytes=4096)


async def _boom(request: Request) -> Response:
    raise RuntimeError("a route that fails")


async def _stream(request: Request) -> StreamingResponse:
    async def parts() -> AsyncIterator[bytes]:
        for part in (b"one,", b"", b"two," * 300, b"three"):
            yield part
    return StreamingResponse(parts(), media_type="text/plain")


EXTRA = [Route("/boom", _boom), Route("/stream", _stream)]


def _app(keys: KeyStore) -> tuple[Any, ExchangeService]:
    service = ExchangeService(load_instruments(), MemoryJournal(), clock=lambda: NOW,
                              maker=False)
    return create_app(service, keys, extra_routes=EXTRA, limits=LIMITS), service


def _uvicorns_path(app: Any) -> Any:
    """The app behind a plain `send`: every reply goes through uvicorn's `send`."""
    async def through(scope: Any, receive: Any, send: Any) -> None:
        async def plain(message: Any) -> None:
            await send(message)
        await app(scope, receive, plain)
    return through


def _serve(ours: bool, keys: KeyStore, chunks: list[bytes], lose: bool
           ) -> tuple[bytes, bool]:
    """Feed `chunks` to a new connection, one at a time, each answered before the next.

    `ours`: perpx's server protocol and the app as it is; else stock uvicorn's protocol and
    the app behind a plain `send`.
    """
    app, _service = _app(keys)
    loop = asyncio.new_event_loop()
    try:
        protocol, state, transport = open_connection(app if ours else _uvicorns_path(app),
                                                     LIMITS, ours, loop, {})

        async def settle(rounds: int = 5000) -> None:
            """Until the requests' tasks are done (an order waits for its journal's flush)."""
            for _ in range(rounds):
                await asyncio.sleep(0.001)
                if not state.tasks:
                    return

        for number, chunk in enumerate(chunks, 1):
            if not transport.closed:
                protocol.data_received(chunk)
            # A request in pieces waits for its next piece: a short settle between pieces.
            loop.run_until_complete(settle(5000 if number == len(chunks) else 20))
        protocol.connection_lost(None)  # the client goes (`lose`: before its answer)
        loop.run_until_complete(settle())
        loop.run_until_complete(_cancel_the_rest())  # the service's, never started
    finally:
        loop.close()
    return b"".join(transport.written), transport.closed


async def _cancel_the_rest() -> None:
    rest = asyncio.all_tasks() - {asyncio.current_task()}
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)


def _signed(key: Any, body: bytes) -> bytes:
    sign = hmac.new(key.secret.encode(), f"{NOW}{key.api_key}5000".encode() + body,
                    hashlib.sha256).hexdigest()
    return (b"x-bapi-api-key: " + key.api_key.encode() + b"\r\nx-bapi-timestamp: "
            + str(NOW).encode() + b"\r\nx-bapi-recv-window: 5000\r\nx-bapi-sign: "
            + sign.encode() + b"\r\n")


def _cases(key: Any) -> dict[str, tuple[list[bytes], bool]]:
    order = (b"POST /v5/order/create HTTP/1.1\r\nhost: x\r\ncontent-type: application/json"
             b"\r\ncontent-length: %d\r\n" % len(ORDER) + _signed(key, ORDER) + b"\r\n" + ORDER)
    closing = order.replace(b"host: x\r\n", b"host: x\r\nConnection: close\r\n")
    time = b"GET /v5/market/time HTTP/1.1\r\nhost: x\r\n\r\n"
    tickers = b"GET /v5/market/tickers?category=linear&symbol=BTCUSDT HTTP/1.1\r\n\r\n"
    expect = order.replace(b"host: x\r\n", b"host: x\r\nexpect: 100-continue\r\n")
    head_end = expect.index(b"\r\n\r\n") + 4
    return {
        "signed order, keep-alive": ([order, order], False),
        "signed order, Connection: close": ([closing, order], False),
        "HTTP/1.0": ([b"GET /v5/market/time HTTP/1.0\r\n\r\n"], False),
        "HTTP/1.0 keep-alive": ([b"GET /v5/market/time HTTP/1.0\r\n"
                                 b"Connection: keep-alive\r\n\r\n"], False),
        "HEAD": ([b"HEAD /v5/market/time HTTP/1.1\r\n\r\n", time], False),
        "404": ([b"GET /v5/no/such HTTP/1.1\r\n\r\n", time], False),
        "large reply": ([b"GET /v5/market/instruments-info?category=linear HTTP/1.1\r\n\r\n"],
                        False),
        "413 closes": ([b"POST /v5/order/create HTTP/1.1\r\ncontent-length: 5000\r\n\r\n",
                        time], False),
        "pipelined": ([time + order + tickers + time], False),
        "in pieces": ([bytes([byte]) for byte in order], False),
        "100-continue": ([expect[:head_end], expect[head_end:]], False),
        "500 from a route": ([b"GET /boom HTTP/1.1\r\n\r\n", time], False),
        "streamed route": ([b"GET /stream HTTP/1.1\r\n\r\n", time], False),
        "400": ([b"GET /v5/market/time HTTP/1.1\r\nbad header\r\n\r\n"], False),
        "gone before its body": ([order[:-10]], True),
    }


def test_the_reply_writer_answers_as_uvicorns_send_on_the_wire(
        monkeypatch: pytest.MonkeyPatch) -> None:
    keys = KeyStore(None)
    key = keys.create(demo_funds="100000", rate_limit=1000)
    written: list[bool] = []

    def spy(*args: Any) -> bool:
        done = write_reply(*args)
        written.append(done)
        return done

    monkeypatch.setattr(perpx.api.app, "write_reply", spy)
    logging.getLogger("uvicorn.error").disabled = True  # the 500 case logs its traceback
    try:
        for name, (chunks, lose) in _cases(key).items():
            ours = _serve(True, keys, chunks, lose)
            theirs = _serve(False, keys, chunks, lose)
            assert ours == theirs, name
            assert ours[0] or lose, name  # something was answered
    finally:
        logging.getLogger("uvicorn.error").disabled = False
    assert True in written and False in written  # both paths were taken


def test_the_wrong_server_or_a_plain_send_takes_uvicorns_path() -> None:
    async def send(message: Any) -> None:
        raise AssertionError("not called")

    assert write_reply(send, 200, [], b"") is False


# --- write_reply itself against uvicorn's two sends on one cycle --------------------------

_names = st.sampled_from([b"timenow", b"x-bapi-limit", b"content-type", b"x-perpx"])
_values = st.integers(0, 10**15).map(lambda n: b"%d" % n)
_defaults = st.lists(st.tuples(
    st.sampled_from([b"server", b"Server", b"x-config", b"connection", b"content-length",
                     b"bad name", b"transfer-encoding"]),
    st.sampled_from([b"uvicorn", b"close", b"0", b"chunked", b"a\x01b", b"keep-alive"])),
    max_size=3)


def _cycle(method: str, keep_alive: bool, defaults: list[tuple[bytes, bytes]]
           ) -> tuple[RequestResponseCycle, RecordingTransport, list[int]]:
    transport = RecordingTransport()
    completed: list[int] = []
    cycle = RequestResponseCycle(
        scope={"type": "http", "method": method, "http_version": "1.1",  # type: ignore[typeddict-item]
               "client": None, "path": "/", "query_string": b""},
        transport=transport, flow=FlowControl(transport),  # type: ignore[arg-type]
        logger=logging.getLogger("test"), access_logger=logging.getLogger("test.access"),
        access_log=False, default_headers=defaults, message_event=asyncio.Event(),
        expect_100_continue=False, keep_alive=keep_alive,
        on_response=lambda: completed.append(1))
    return cycle, transport, completed


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([200, 403, 404, 204, 304, 500, 599, 100, 600, 700]),
       st.lists(st.tuples(_names, _values), max_size=4), st.binary(max_size=64),
       st.sampled_from(["GET", "POST", "HEAD"]), st.booleans(), _defaults)
def test_write_reply_leaves_what_uvicorns_two_sends_leave(
        status: int, headers: list[tuple[bytes, bytes]], body: bytes, method: str,
        keep_alive: bool, defaults: list[tuple[bytes, bytes]]) -> None:
    headers = [*headers, (b"content-length", b"%d" % len(body))]
    defaults = [(b"date", DATE), *defaults]
    fast, fast_transport, fast_done = _cycle(method, keep_alive, defaults)
    slow, slow_transport, slow_done = _cycle(method, keep_alive, defaults)

    async def uvicorns() -> str:
        try:
            await slow.send({"type": "http.response.start", "status": status,
                             "headers": headers})
            await slow.send({"type": "http.response.body", "body": body})
        except (RuntimeError, KeyError) as refused:
            return type(refused).__name__
        return "sent"

    if write_reply(fast.send, status, headers, body):
        assert asyncio.run(uvicorns()) == "sent"
        assert b"".join(fast_transport.written) == b"".join(slow_transport.written)
        assert fast_transport.closed == slow_transport.closed
        assert fast_done == slow_done == [1]
        for name in ("response_started", "response_complete", "keep_alive",
                     "waiting_for_100_continue", "chunked_encoding",
                     "expected_content_length"):
            assert getattr(fast, name) == getattr(slow, name), name
        assert fast.message_event.is_set() and slow.message_event.is_set()
    else:  # nothing done: uvicorn's send still has the whole reply to write
        assert not fast_transport.written and not fast.response_started
        assert status not in range(100, 600) or any(
            name.lower() in (b"connection", b"content-length", b"transfer-encoding")
            or b" " in name or b"\x01" in value for name, value in defaults)

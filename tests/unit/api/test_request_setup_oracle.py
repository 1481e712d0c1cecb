"""perpx's own request setup (`LimitedHttpProtocol.on_headers_complete`) against uvicorn's.

perpx's HTTP protocol sets up the common request itself (a plain target split without
`httptools.parse_url`, the cycle and the task made in line) and leaves every other to
uvicorn's `on_headers_complete`. The same requests go to perpx's protocol and to stock
uvicorn's `HttpToolsProtocol`, with an app that keeps the scope it was given and the cycle
it answers on: the scopes, the cycles' state, the bytes written and the close must be the
same, for plain and unusual targets (query, empty query, percent-escapes, a fragment, an
absolute URL, `*`), HTTP/1.0, `Connection: close`, 100-continue, an upgrade that is not a
WebSocket, a pipeline, a request in pieces and bad requests; and for any target drawn from
an alphabet with the characters that matter. `_plain_target` itself is held to
`httptools.parse_url` for any target.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httptools
from hypothesis import given, settings
from hypothesis import strategies as st

from perpx.api.limits import Limits
from perpx.api.protocol import _plain_target
from support.uvicorn_connection import open_connection

LIMITS = Limits(max_body_bytes=4096)
# What a target is drawn from: the plain characters and those that make uvicorn's reading
# differ (escapes, fragments, a scheme's colon, spaces and controls the parser refuses).
_TARGET = st.text(alphabet="/aZ09-._~=&,?%#:@+; \t\x01\x7f\u00e9", max_size=24)


def _recording_app(seen: list[Any]) -> Callable[..., Any]:
    """An ASGI app that keeps each request's scope, body and cycle state, and answers it."""
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        message = await receive()
        cycle = send.__self__
        seen.append((dict(scope), message, type(cycle).__name__, cycle.keep_alive,
                     cycle.waiting_for_100_continue))
        body = b"%d %s" % (len(seen), scope["path"].encode("utf-8", "replace"))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})
    return app


def _serve(ours: bool, chunks: list[bytes]) -> tuple[list[Any], bytes, bool, int]:
    """Feed `chunks` to a new connection of perpx's protocol (`ours`) or stock uvicorn's."""
    seen: list[Any] = []
    loop = asyncio.new_event_loop()
    try:
        protocol, state, transport = open_connection(_recording_app(seen), LIMITS, ours, loop,
                                                     {"a": 1})

        async def settle() -> None:
            for _ in range(200):
                await asyncio.sleep(0)
                if not state.tasks:
                    return

        for chunk in chunks:
            if not transport.closed:
                protocol.data_received(chunk)
            loop.run_until_complete(settle())
        left = len(state.tasks)
        protocol.connection_lost(None)
        loop.run_until_complete(settle())
    finally:
        loop.close()
    return seen, b"".join(transport.written), transport.closed, left


def _request(target: bytes, version: bytes = b"1.1", extra: bytes = b"",
             body: bytes = b"") -> bytes:
    length = b"content-length: %d\r\n" % len(body) if body else b""
    return (b"POST " if body else b"GET ") + target + b" HTTP/" + version + \
        b"\r\nhost: x\r\n" + length + extra + b"\r\n" + body


def _same(chunks: list[bytes], name: str = "") -> None:
    logging.getLogger("uvicorn.error").disabled = True  # bad requests are logged
    try:
        ours, theirs = _serve(True, chunks), _serve(False, chunks)
    finally:
        logging.getLogger("uvicorn.error").disabled = False
    assert ours == theirs, name


def test_the_request_setup_gives_uvicorns_scope_and_cycle() -> None:
    order = _request(b"/v5/order/create", body=b'{"a":1}')
    cases = {
        "plain POST": [order, order],
        "query": [_request(b"/v5/market/tickers?category=linear&symbol=BTCUSDT")],
        "empty query": [_request(b"/v5/market/time?")],
        "two question marks": [_request(b"/a?b=1?c=2")],
        "double slash": [_request(b"//v5/market/time")],
        "escaped path": [_request(b"/v5/market/ti%6De?x=%20")],
        "fragment": [_request(b"/v5/market/time#top")],
        "absolute URL": [_request(b"http://x:8080/v5/market/time?a=b")],
        "asterisk": [b"OPTIONS * HTTP/1.1\r\nhost: x\r\n\r\n"],
        "HTTP/1.0": [_request(b"/v5/market/time", b"1.0")],
        "HTTP/1.0 keep-alive": [_request(b"/v5/market/time", b"1.0",
                                         b"connection: keep-alive\r\n")],
        "Connection: close": [_request(b"/v5/market/time", extra=b"connection: close\r\n")],
        "100-continue": [_request(b"/v5/order/create", extra=b"expect: 100-continue\r\n",
                                  body=b"{}")],
        "upgrade not a WebSocket": [_request(b"/v5/market/time",
                                             extra=b"connection: upgrade\r\nupgrade: h2c\r\n")],
        "pipelined": [order + _request(b"/v5/market/time?a=1") + order],
        "in pieces": [bytes([byte]) for byte in order],
        "bad request": [b"GET /a HTTP/1.1\r\nbad header\r\n\r\n"],
        "bad target": [b"GET /a b HTTP/1.1\r\n\r\n"],
    }
    for name, chunks in cases.items():
        _same(chunks, name)
    assert _serve(True, cases["plain POST"])[0][0][2] == "RequestResponseCycle"


@settings(max_examples=200, deadline=None)
@given(_TARGET, st.sampled_from([b"1.1", b"1.0"]))
def test_any_target_is_set_up_as_uvicorn_sets_it_up(target: str, version: bytes) -> None:
    _same([_request(target.encode("utf-8"), version),
           _request(b"/" + target.encode("utf-8"), version)])


@settings(max_examples=1000, deadline=None)
@given(_TARGET)
def test_a_plain_target_splits_as_parse_url_reads_it(target: str) -> None:
    for url in (target.encode("utf-8"), b"/" + target.encode("utf-8")):
        split = _plain_target(url)
        if split is None:
            continue
        parsed = httptools.parse_url(url)
        assert split == (parsed.path, parsed.query or b"")
        assert parsed.fragment is None and b"%" not in parsed.path

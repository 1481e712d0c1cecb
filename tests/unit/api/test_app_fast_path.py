"""The raw ASGI fast path answers exactly as the Starlette route it bypasses."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import Headers

from perpx.api.app import RestApp, _request_headers, create_app, read_body
from perpx.api.auth import SIGNED_HEADERS
from perpx.api.keys import KeyStore
from perpx.api.limits import BodyTooLarge
from perpx.instruments import load_instruments
from perpx.service import ExchangeService
from perpx.store.journal import MemoryJournal

NOW = 1_700_000_000_000


async def _call(app: Any, method: str, path: str, query: bytes = b"", body: bytes = b"",
                headers: list[tuple[bytes, bytes]] | None = None) -> tuple[int, list, bytes]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": query, "root_path": "", "headers": headers or [],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    sent: list[dict[str, Any]] = []
    chunks = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start, reply = sent
    return start["status"], start["headers"], reply["body"]


def _signed(key: Any, body: bytes, stamp: int = NOW) -> list[tuple[bytes, bytes]]:
    sign = hmac.new(key.secret.encode(), f"{stamp}{key.api_key}5000".encode() + body,
                    hashlib.sha256).hexdigest()
    return [(b"content-type", b"application/json"), (b"x-bapi-api-key", key.api_key.encode()),
            (b"x-bapi-timestamp", str(stamp).encode()), (b"x-bapi-recv-window", b"5000"),
            (b"x-bapi-sign", sign.encode())]


def test_fast_path_and_starlette_route_give_the_same_replies() -> None:
    keys = KeyStore(None)
    key = keys.create(demo_funds="100000", rate_limit=1000)
    reader = keys.create(demo_funds="1000", read_only=True)
    service = ExchangeService(load_instruments(), MemoryJournal(), clock=lambda: NOW,
                              maker=False)
    app = create_app(service, keys)
    other = create_app(service, keys)  # its own rate limiter, so the counts agree
    assert isinstance(app, RestApp) and isinstance(other, RestApp)
    order = (b'{"category":"linear","symbol":"BTCUSDT","side":"Buy","orderType":"Limit",'
             b'"qty":"0.001","price":"60000","timeInForce":"GTC"}')
    requests: list[tuple[str, str, bytes, bytes, list[tuple[bytes, bytes]]]] = [
        ("GET", "/v5/market/time", b"", b"", []),
        ("GET", "/v5/market/tickers", b"category=linear&symbol=BTCUSDT", b"", []),
        ("GET", "/v5/no/such/route", b"", b"", []),
        ("DELETE", "/v5/order/create", b"", b"", []),
        ("POST", "/v5/order/create", b"", b"{not json", _signed(key, b"{not json")),
        ("POST", "/v5/order/create", b"", order, _signed(key, order, NOW - 60_000)),
        ("POST", "/v5/order/create", b"", order, _signed(reader, order)),
        ("POST", "/v5/order/create", b"", order, [(b"x-bapi-api-key", b"nobody")]),
        ("GET", "/v5/account/wallet-balance", b"accountType=UNIFIED",
         b"", _signed(key, b"accountType=UNIFIED")),
    ]

    async def both() -> None:
        for method, path, query, body, headers in requests:
            fast = await _call(app, method, path, query, body, headers)
            slow = await _call(other.starlette, method, path, query, body, headers)
            assert fast == slow, (method, path)
        # An order changes state, so the two paths place one order each and must agree.
        fast = await _call(app, "POST", "/v5/order/create", body=order,
                           headers=_signed(key, order))
        slow = await _call(other.starlette, "POST", "/v5/order/create", body=order,
                           headers=_signed(key, order))
        assert fast[0] == slow[0] == 200 and fast[1] == slow[1]
        assert b'"retCode":0' in fast[2] and b'"retCode":0' in slow[2]

    asyncio.run(both())
    keys.close()


def test_a_failing_history_is_answered_10016_and_the_next_read_recovers() -> None:
    """#12 item 6: while the history database fails, reads answer 10016; nothing raises."""
    import msgspec

    from perpx.store.history import HistoryUnavailable

    service = ExchangeService(load_instruments(), MemoryJournal(), clock=lambda: NOW,
                              maker=False)
    app = create_app(service, KeyStore(None))
    query = b"category=linear&symbol=BTCUSDT"
    real_run = service.history.run
    failing = [True]

    async def run(job: Any) -> Any:
        if failing[0]:
            raise HistoryUnavailable("history writes are failing")
        return await real_run(job)

    service.history.run = run  # type: ignore[method-assign]

    async def go() -> None:
        status, _, body = await _call(app, "GET", "/v5/market/funding/history", query)
        reply = msgspec.json.decode(body)
        assert (status, reply["retCode"]) == (200, 10016)
        assert "history" in reply["retMsg"]
        failing[0] = False
        status, _, body = await _call(app, "GET", "/v5/market/funding/history", query)
        assert msgspec.json.decode(body)["retCode"] == 0

    asyncio.run(go())
    service.history.close()


_NAMES = st.sampled_from([b"x-bapi-api-key", b"x-bapi-timestamp", b"x-bapi-recv-window",
                          b"x-bapi-sign", b"x-bapi-sign-type", b"x-bapi-other",
                          b"content-length", b"content-type", b"host"])
_VALUES = st.binary(max_size=12).map(lambda raw: raw.replace(b"\r", b"").replace(b"\n", b""))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_NAMES, _VALUES), max_size=12))
def test_request_headers_read_as_starlette_reads_them(raw: list[tuple[bytes, bytes]]) -> None:
    # One pass finds what the Starlette route's `request.headers.get` finds: each signature
    # header `authenticate` reads (the first of a repeated name), and the Content-Length.
    signed, declared = _request_headers(raw)
    headers = Headers(raw=raw)
    assert signed == {name: headers[name] for name in SIGNED_HEADERS if name in headers}
    assert declared == (None if "content-length" not in headers
                        else headers["content-length"].encode("latin-1"))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=5), st.integers(0, 120))
def test_read_body_joins_its_chunks_or_refuses_over_the_cap(chunks: list[bytes],
                                                             cap: int) -> None:
    messages = [{"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
                for i, chunk in enumerate(chunks)]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    whole = b"".join(chunks)
    try:
        body = asyncio.run(read_body(receive, None, cap))
    except BodyTooLarge:
        assert len(whole) > cap
    else:
        assert body == whole and len(whole) <= cap

"""Resource limits of the live API (issue #12 item 4, issue #13 C2), on a real uvicorn server.

Each test names the finding it covers. The server runs with small limits so that the tests
are quick; raw sockets play the slow, silent or greedy clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from websockets.sync.client import connect as ws_connect

from apisupport import sign
from perpx.api.app import create_app
from perpx.api.keys import ApiKey, KeyStore
from perpx.api.limits import Limits
from perpx.api.server import ServerThread
from perpx.instruments import load_instruments
from perpx.service import ExchangeService
from perpx.store.journal import MemoryJournal

SMALL = Limits(max_body_bytes=4096, request_timeout_s=0.6, max_connections_per_address=4,
               max_connections=6, public_requests=1_000_000)


@dataclass
class Server:
    thread: ServerThread
    key: ApiKey

    @property
    def port(self) -> int:
        return self.thread.port

    def open_count(self) -> int:
        return self.thread.guard.open


@contextlib.contextmanager
def _serve(limits: Limits) -> Iterator[Server]:
    keys = KeyStore(None)
    key = keys.create(demo_funds="100000", note="limits")
    service = ExchangeService(load_instruments(), MemoryJournal(), maker=False,
                              feed_interval_s=3600)
    thread = ServerThread(create_app(service, keys, manage_service=True, limits=limits),
                          limits=limits).start()
    try:
        yield Server(thread, key)
    finally:
        thread.stop()
        keys.close()


@pytest.fixture
def server() -> Iterator[Server]:
    with _serve(SMALL) as running:
        yield running


def _connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5,
                                    source_address=(source, 0))


def _read_reply(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a reply: {data!r}")
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(lines[0].split()[1]), headers, rest[:length]


def _get_time(sock: socket.socket) -> int:
    sock.sendall(b"GET /v5/market/time HTTP/1.1\r\nHost: x\r\n\r\n")
    status, _headers, body = _read_reply(sock)
    assert json.loads(body)["retCode"] == 0
    return status


def _closed_after(sock: socket.socket, limit_s: float) -> float:
    """Return how long the server took to close `sock` (fail if still open after limit_s)."""
    began = time.monotonic()
    sock.settimeout(limit_s)
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the server kept the connection open over {limit_s} s")
    return time.monotonic() - began


def _wait(predicate: object, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.02)


# -- body size ---------------------------------------------------------------------------


def test_declared_oversize_body_is_refused_before_it_is_sent(server: Server) -> None:
    """Finding: request bodies had no size limit and were read whole before authentication."""
    sock = _connect(server.port)
    sock.sendall(b"POST /v5/order/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                 b"\r\nContent-Length: 100000000\r\n\r\n")
    status, headers, body = _read_reply(sock)  # answered without a byte of the body
    assert status == 413 and headers["connection"] == "close"
    answer = json.loads(body)
    assert answer["retCode"] == 10001 and "too large" in answer["retMsg"]
    _closed_after(sock, 2.0)


def test_chunked_body_is_refused_once_it_passes_the_cap(server: Server) -> None:
    """Finding: a chunked body with no declared length was read whole, however long."""
    sock = _connect(server.port)
    sock.sendall(b"POST /v5/order/create HTTP/1.1\r\nHost: x\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
    sent = 0
    reply = b""
    sock.settimeout(0.05)
    while sent < 200 * 1024:  # a stream that would never end: stop once answered
        try:
            sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += 1024
        try:
            reply += sock.recv(65536)
        except TimeoutError:
            continue
        if b"\r\n\r\n" in reply:
            break
    assert reply.startswith(b"HTTP/1.1 413"), reply[:80]
    assert sent < 64 * 1024  # refused soon after the 4 KiB cap, not at the end of the stream
    assert b'"retCode":10001' in reply


def test_four_huge_unauthenticated_bodies_do_not_grow_memory() -> None:
    """Finding: 4 x 100 MB unauthenticated bodies took the server to 603 MB (default cap)."""

    def rss_kb() -> int:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))

    with _serve(Limits()) as server:
        before = rss_kb()
        sent: list[int] = []

        def push() -> None:
            sock = _connect(server.port)
            sock.sendall(b"POST /v5/order/create HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Length: 100000000\r\n\r\n")
            block, total = b"x" * 65536, 0
            try:
                while total < 100_000_000:
                    sock.sendall(block)
                    total += len(block)
            except OSError:  # refused: the server closed the connection
                pass
            sent.append(total)
            sock.close()

        pushers = [threading.Thread(target=push) for _ in range(4)]
        for pusher in pushers:
            pusher.start()
        for pusher in pushers:
            pusher.join(60)
        assert len(sent) == 4 and all(total < 20_000_000 for total in sent), sent
        assert rss_kb() - before < 50_000


# -- request timeout and keep-alive ------------------------------------------------------


def test_silent_connection_is_closed_after_the_request_timeout(server: Server) -> None:
    """Finding: connections that never send a byte were never closed."""
    sock = _connect(server.port)
    _wait(lambda: server.open_count() == 1)
    took = _closed_after(sock, 5.0)
    assert 0.3 < took < 3.0
    _wait(lambda: server.open_count() == 0)


def test_slowloris_head_is_closed_after_the_request_timeout(server: Server) -> None:
    """Finding: a head sent one byte at a time held its connection for good (slowloris)."""
    sock = _connect(server.port)
    began = time.monotonic()
    closed = False
    for byte in b"GET /v5/market/time HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            closed = True
            break
        sock.settimeout(0.1)
        try:
            if sock.recv(4096) == b"":
                closed = True
                break
        except TimeoutError:
            pass
        except ConnectionResetError:
            closed = True
            break
    assert closed and time.monotonic() - began < 3.0


def test_slowloris_after_a_first_request_is_closed_too(server: Server) -> None:
    """Finding: a keep-alive connection trickling its next request's head stayed open."""
    sock = _connect(server.port)
    assert _get_time(sock) == 200
    began = time.monotonic()
    with pytest.raises(OSError):
        for byte in b"GET /v5/market/time HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
            sock.sendall(bytes([byte]))
            time.sleep(0.1)
            sock.settimeout(0.01)
            try:
                if sock.recv(4096) == b"":
                    raise ConnectionResetError
            except TimeoutError:
                pass
    assert time.monotonic() - began < 3.0


def test_idle_keep_alive_connection_outlives_client_pool_timeouts(server: Server) -> None:
    """Issue #13 C2: uvicorn's 5 s keep-alive dropped pooled connections under clients."""
    assert Limits().keep_alive_s >= 65
    assert server.thread.server.config.timeout_keep_alive == SMALL.keep_alive_s
    sock = _connect(server.port)
    assert _get_time(sock) == 200
    time.sleep(3 * SMALL.request_timeout_s)  # idle well past the request timeout
    assert _get_time(sock) == 200  # the same connection still answers
    assert server.open_count() == 1


# -- connection caps ---------------------------------------------------------------------


def test_connection_caps_refuse_new_connections_and_leave_the_others(server: Server) -> None:
    """Finding: no connection caps; descriptors ran out and side tasks failed."""
    mine = [_connect(server.port) for _ in range(4)]
    for sock in mine:
        assert _get_time(sock) == 200
    over = _connect(server.port)  # the fifth from one address
    status, _headers, body = _read_reply(over)
    assert status == 503 and json.loads(body)["retCode"] == 10018
    _closed_after(over, 2.0)
    others = [_connect(server.port, "127.0.0.2") for _ in range(2)]  # total cap 6
    for sock in others:
        assert _get_time(sock) == 200
    full = _connect(server.port, "127.0.0.3")
    status, _headers, body = _read_reply(full)
    assert status == 503 and json.loads(body)["retCode"] == 10429
    for sock in mine:  # the existing connections are untouched
        assert _get_time(sock) == 200
    assert server.open_count() == 6 and server.thread.guard.refused == 2
    for sock in [*mine, *others]:
        sock.close()
    _wait(lambda: server.open_count() == 0)  # every count released
    again = _connect(server.port)
    assert _get_time(again) == 200


def test_websocket_connections_are_counted_and_released(server: Server) -> None:
    """Finding: caps must follow a connection upgraded to WebSocket, and WS must still work."""
    url = f"ws://127.0.0.1:{server.port}/v5/public/linear"
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(ws_connect(url)) for _ in range(4)]
        _wait(lambda: server.open_count() == 4)
        refused = _connect(server.port)  # the address is at its cap while the streams are open
        assert _read_reply(refused)[0] == 503
        time.sleep(2 * SMALL.request_timeout_s)  # an upgraded connection has no request timeout
        for ws in sockets:
            ws.send(json.dumps({"op": "ping", "req_id": "p"}))
            reply = json.loads(ws.recv(timeout=5))  # Bybit's public pong: op "ping", "pong"
            assert reply["op"] == "ping" and reply["req_id"] == "p"
    _wait(lambda: server.open_count() == 0)
    assert _get_time(_connect(server.port)) == 200


def test_connection_cap_fits_the_descriptor_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Finding: connections could take every descriptor the journal and snapshots need."""
    monkeypatch.setattr(resource, "getrlimit", lambda which: (1024, 4096))
    assert Limits().connection_cap() == 1024 - 256
    assert Limits(max_connections=100).connection_cap() == 100


# -- public throttle ---------------------------------------------------------------------


def test_public_endpoints_are_throttled_per_address_and_signed_ones_are_not() -> None:
    """Finding: public endpoints had no per-IP throttle."""
    with _serve(Limits(public_requests=5, public_window_ms=60_000)) as server:
        sock = _connect(server.port)
        for _ in range(5):
            assert _get_time(sock) == 200
        sock.sendall(b"GET /v5/market/tickers?category=linear HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _headers, body = _read_reply(sock)
        assert status == 403 and json.loads(body)["retCode"] == 10018
        query = "accountType=UNIFIED"
        stamp = str(int(time.time() * 1000))
        sock.sendall(f"GET /v5/account/wallet-balance?{query} HTTP/1.1\r\nHost: x\r\n"
                     f"X-BAPI-API-KEY: {server.key.api_key}\r\nX-BAPI-TIMESTAMP: {stamp}\r\n"
                     f"X-BAPI-RECV-WINDOW: 5000\r\n"
                     f"X-BAPI-SIGN: {sign(server.key, stamp, '5000', query)}\r\n\r\n".encode())
        status, _headers, body = _read_reply(sock)
        assert status == 200 and json.loads(body)["retCode"] == 0
        other = _connect(server.port, "127.0.0.2")  # another address has its own budget
        assert _get_time(other) == 200


# -- the load run's idle connections -----------------------------------------------------


def test_bench_idle_counts_accepted_refused_and_timed_out() -> None:
    """The figures of `perpx bench api --idle`: accepted, refused by a cap, closed on time."""
    from perpx.bench.idle import run

    limits = Limits(request_timeout_s=0.5, max_connections_per_address=3, max_connections=50)
    with _serve(limits) as server:
        figures = asyncio.run(run("127.0.0.1", server.port, 6, per_address=4, hold_s=10))
    # 4 from 127.0.0.2 (one over its cap of 3), 2 from 127.0.0.3
    assert figures["accepted"] == 5 and figures["refused"] == 1
    assert figures["connect_errors"] == 0 and figures["still_open_after_hold"] == 0
    assert figures["closed_by_server"] == 5 and figures["closed_after_s_max"] < 3.0

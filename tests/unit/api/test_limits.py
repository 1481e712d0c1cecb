"""The connection guard, the public throttle and the body cap, without a server."""

from __future__ import annotations

import asyncio
from typing import Any

from perpx.api.app import create_app
from perpx.api.keys import KeyStore
from perpx.api.limits import AddressThrottle, ConnectionGuard, Limits, address_key
from perpx.instruments import load_instruments
from perpx.service import ExchangeService
from perpx.store.journal import MemoryJournal


def test_guard_counts_per_address_and_in_total_and_releases_once() -> None:
    """Finding: no connection caps per client address or in total."""
    guard = ConnectionGuard(per_address=2, total=3)
    a1, a2 = guard.acquire("10.0.0.1"), guard.acquire("10.0.0.1")
    assert guard.acquire("10.0.0.1") == "address"
    b1 = guard.acquire("10.0.0.2")
    assert guard.acquire("10.0.0.3") == "total"
    assert guard.open == 3 and guard.refused == 2
    for slot in (a1, a2, b1):
        assert not isinstance(slot, str)
        slot.release()
        slot.release()  # a second release changes nothing
    assert guard.open == 0 and guard.count("10.0.0.1") == 0
    assert not guard._by_address  # nothing remembered for closed connections


def test_ipv6_hosts_count_by_their_64() -> None:
    """One IPv6 host owns a /64: counting single addresses would let it open any number."""
    assert address_key("2001:db8:1:2::1") == address_key("2001:db8:1:2:ffff::9")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("192.0.2.7") == "192.0.2.7"
    guard = ConnectionGuard(per_address=1, total=10)
    assert not isinstance(guard.acquire("2001:db8::1"), str)
    assert guard.acquire("2001:db8::2") == "address"


def test_throttle_windows_and_bounded_memory() -> None:
    """Finding: public endpoints had no per-IP throttle; its memory must stay bounded."""
    now = [0]
    throttle = AddressThrottle(limit=3, window_ms=1000, tracked=10, clock=lambda: now[0])
    assert [throttle.allow("1.1.1.1") for _ in range(4)] == [True, True, True, False]
    assert throttle.allow("2.2.2.2")
    now[0] = 1000  # a new window
    assert throttle.allow("1.1.1.1")
    for i in range(1000):
        throttle.allow(f"10.0.{i // 256}.{i % 256}")
        assert len(throttle) <= 11
    assert len(throttle) <= 11


def test_body_cap_on_both_paths_reads_no_more_than_the_cap() -> None:
    """Finding: bodies were read whole, before authentication, however large."""
    keys = KeyStore(None)
    service = ExchangeService(load_instruments(), MemoryJournal(), maker=False)
    app = create_app(service, keys, limits=Limits(max_body_bytes=100))

    async def call(target: Any, declared: bytes | None, chunks: int) -> tuple[int, int, bytes]:
        headers = [(b"content-length", declared)] if declared is not None else []
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "POST", "scheme": "http", "path": "/v5/order/create",
                 "raw_path": b"/v5/order/create", "query_string": b"", "root_path": "",
                 "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
        received = [0]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            received[0] += 1
            return {"type": "http.request", "body": b"x" * 40,
                    "more_body": received[0] < chunks}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await target(scope, receive, send)
        return sent[0]["status"], received[0], sent[1]["body"]

    async def run() -> None:
        for target in (app, app.starlette):
            status, received, body = await call(target, b"100000000", 10**6)
            assert status == 413 and received == 0 and b'"retCode":10001' in body
            status, received, body = await call(target, None, 10**6)  # chunked, endless
            assert status == 413 and received == 3
            status, _received, body = await call(target, None, 2)  # 80 bytes: under the cap
            assert status == 200 and b'"retCode":10003' in body  # on to authentication

    asyncio.run(run())

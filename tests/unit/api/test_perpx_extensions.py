"""perpx's own routes for the web page: `/perpx/status` and `/perpx/demo/account`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from perpx.api.app import Dispatcher
from perpx.api.keys import KeyStore
from perpx.api.limits import ConnectionGuard
from perpx.api.ratelimit import RateLimiter
from perpx.instruments import load_instruments
from perpx.service import ExchangeService
from perpx.store.journal import MemoryJournal

NOW = 1_700_000_000_000


def _dispatcher(demo: bool) -> Dispatcher:
    service = ExchangeService(load_instruments(), MemoryJournal(), clock=lambda: NOW,
                              maker=False, demo=demo)
    return Dispatcher(service, KeyStore(None), RateLimiter())


def _call(dispatcher: Dispatcher, method: str, path: str) -> dict[str, Any]:
    raw = b"" if method == "GET" else b"{}"
    status, body, _ = asyncio.run(dispatcher(method, path, raw, {}))
    assert status == 200
    reply: dict[str, Any] = json.loads(body)
    return reply


def test_status_counts_without_naming_anyone() -> None:
    dispatcher = _dispatcher(demo=False)
    guard = ConnectionGuard(10, 100)
    dispatcher.server.connections = guard
    dispatcher.server.sessions["public"] = 3
    guard.acquire("10.0.0.1")
    reply = _call(dispatcher, "GET", "/perpx/status")
    assert reply["retCode"] == 0, reply
    result = reply["result"]
    assert result["seq"] == result["durableSeq"] and result["journalLag"] == "0"
    assert result["connections"] == "1" and result["wsSessions"] == {
        "public": "3", "private": "0", "trade": "0"}
    assert result["uptimeMs"].isdigit() and result["demo"] is False
    assert result["processes"] == {}  # `perpx serve` supervises no projector here
    assert "10.0.0.1" not in json.dumps(result)


def test_demo_account_in_demo_mode_only_and_paced() -> None:
    refused = _call(_dispatcher(demo=False), "POST", "/perpx/demo/account")
    assert refused["retCode"] == 10005
    dispatcher = _dispatcher(demo=True)
    made = [_call(dispatcher, "POST", "/perpx/demo/account") for _ in range(3)]
    assert [m["retCode"] for m in made] == [0, 0, 10006]  # two a second for the server
    first, second = made[0]["result"], made[1]["result"]
    assert first["accountId"] != second["accountId"]
    key = dispatcher.keys.get(first["apiKey"])
    assert key is not None and key.secret == first["apiSecret"] and key.demo_funds == "100000"
    assert _call(dispatcher, "GET", "/perpx/demo/account")["retCode"] == 10001  # POST only

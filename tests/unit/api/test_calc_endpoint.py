"""GET /perpx/calc/order: `perpx calc`'s figures over HTTP, unsigned, validated, throttled."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from typing import Any

from perpx.api.app import Dispatcher
from perpx.api.keys import KeyStore
from perpx.api.limits import Limits
from perpx.api.ratelimit import RateLimiter
from perpx.instruments import load_instruments
from perpx.service import ExchangeService
from perpx.store.journal import MemoryJournal

NOW = 1_700_000_000_000


def _dispatcher(limits: Limits | None = None) -> Dispatcher:
    service = ExchangeService(load_instruments(), MemoryJournal(), clock=lambda: NOW,
                              maker=False)
    return Dispatcher(service, KeyStore(None), RateLimiter(), limits)


def _get(dispatcher: Dispatcher, query: str) -> tuple[int, dict[str, Any]]:
    status, body, _ = asyncio.run(dispatcher("GET", "/perpx/calc/order", query.encode(), {}))
    return status, json.loads(body)


def _cli(*args: str) -> dict[str, str]:
    done = subprocess.run([sys.executable, "-m", "perpx.cli", "calc", *args, "--json"],
                          check=True, capture_output=True, text=True)
    figures: dict[str, str] = json.loads(done.stdout)
    return figures


def test_the_figures_are_perpx_calc_s() -> None:
    status, reply = _get(_dispatcher(), "symbol=BTCUSDT&side=Buy&price=60000&qty=0.1"
                                        "&leverage=10")
    assert status == 200 and reply["retCode"] == 0, reply
    result = reply["result"]
    common = ["--symbol", "BTCUSDT", "--side", "buy", "--leverage", "10", "--qty", "0.1"]
    assert result["cost"] == _cli("cost", "--price", "60000", *common)
    assert result["position"] == _cli("position", "--entry", "60000", *common)
    assert result["position"]["liquidation_price"]


def test_bad_parameters_are_bybit_rejections() -> None:
    dispatcher = _dispatcher()
    good = {"symbol": "BTCUSDT", "side": "Sell", "price": "60000", "qty": "0.1",
            "leverage": "10"}
    for name, value in [("symbol", "NOPE"), ("side", "Up"), ("price", "0"), ("price", "abc"),
                        ("price", "-1"), ("price", "nan"), ("price", "1e5"), ("price", "inf"),
                        ("qty", "0.0001"), ("qty", "0"), ("qty", "1" * 40), ("qty", "-0.1"),
                        ("leverage", "0"), ("leverage", "-5"), ("leverage", "0.5"),
                        ("leverage", "1000"), ("leverage", "x"), ("leverage", "1" * 40)]:
        query = "&".join(f"{k}={value if k == name else v}" for k, v in good.items())
        status, reply = _get(dispatcher, query)
        assert status == 200 and reply["retCode"] != 0, (name, value, reply)
        assert reply["retCode"] != 10016, (name, value, reply)
    status, reply = _get(dispatcher, "symbol=BTCUSDT&side=Buy&price=60000&qty=0.1")
    assert reply["retCode"] == 10001 and "leverage" in reply["retMsg"]


def test_it_is_throttled_per_address_like_the_market_endpoints() -> None:
    dispatcher = _dispatcher(Limits(public_requests=3))
    query = "symbol=BTCUSDT&side=Buy&price=60000&qty=0.1&leverage=10"
    statuses = [_get(dispatcher, query)[0] for _ in range(5)]
    assert statuses[:3] == [200, 200, 200] and statuses[-1] == 403

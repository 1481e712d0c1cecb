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


def test_quantity_by_value_or_cost_is_perpx_calc_qty_s() -> None:
    """Seed 000's "order by value" and "order by cost": `perpx calc qty`, then its figures."""
    dispatcher = _dispatcher()
    for symbol, price, by, amount in [("BTCUSDT", "60000", "value", "1234.5"),
                                      ("BTCUSDT", "60000", "cost", "150"),
                                      ("ETHUSDT", "3000", "cost", "77.7")]:
        status, reply = _get(dispatcher, f"symbol={symbol}&side=Buy&price={price}"
                                         f"&leverage=10&{by}={amount}")
        assert status == 200 and reply["retCode"] == 0, reply
        result = reply["result"]
        wanted = _cli("qty", "--symbol", symbol, "--price", price, f"--{by}", amount,
                      "--leverage", "10")
        assert result["qty"] == wanted["qty"] and result["by"] == by
        assert result["cost"] == _cli("cost", "--symbol", symbol, "--price", price,
                                      "--qty", wanted["qty"], "--leverage", "10")
        # never more than asked
        spent = result["cost"]["order_value" if by == "value" else "order_cost"]
        assert float(spent) <= float(amount)


def test_quantity_is_given_one_way_only() -> None:
    dispatcher = _dispatcher()
    base = "symbol=BTCUSDT&side=Buy&price=60000&leverage=10"
    for extra in ["", "&qty=0.1&value=100", "&value=100&cost=10", "&value=0", "&cost=-3",
                  "&value=1"]:  # 1 USDT buys less than the minimum quantity
        status, reply = _get(dispatcher, base + extra)
        assert status == 200 and reply["retCode"] == 10001, (extra, reply)

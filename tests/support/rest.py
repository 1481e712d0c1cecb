"""Signed REST calls straight into the ASGI app's dispatcher (no socket), for unit tests."""

from __future__ import annotations

import json
from typing import Any

from perpx.api.app import RestApp
from perpx.api.keys import ApiKey

RECV_WINDOW = "5000"


def signed_headers(key: ApiKey, payload: str, now_ms: int) -> dict[str, str]:
    """Bybit's V5 signature headers for `payload` (the query, or the JSON body) at `now_ms`."""
    sign = key.sign(f"{now_ms}{key.api_key}{RECV_WINDOW}{payload}")
    return {"x-bapi-api-key": key.api_key, "x-bapi-timestamp": str(now_ms),
            "x-bapi-recv-window": RECV_WINDOW, "x-bapi-sign": sign}


def ok_result(body: bytes) -> Any:
    """The `result` of a reply that must be a success."""
    reply = json.loads(body)
    assert reply["retCode"] == 0, reply
    return reply["result"]


async def post(app: RestApp, key: ApiKey, path: str, params: dict[str, Any],
               now_ms: int) -> Any:
    """POST a signed JSON body; return the success reply's `result`."""
    payload = json.dumps(params)
    status, body, _ = await app.dispatcher("POST", path, payload.encode(),
                                           signed_headers(key, payload, now_ms))
    assert status == 200, body
    return ok_result(body)


def btc_order(side: str, qty: str, price: str | None = None) -> dict[str, Any]:
    """A BTCUSDT order body: a GTC limit at `price`, or a market order without one."""
    order = {"category": "linear", "symbol": "BTCUSDT", "side": side, "qty": qty,
             "orderType": "Limit" if price else "Market"}
    if price:
        order.update(price=price, timeInForce="GTC")
    return order

"""Hypothesis-driven requests over every route: no 5xx, no non-JSON reply, no internal error."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote, urlencode

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

from apisupport import Live, sign
from perpx.api.app import ENDPOINTS

NAMES = ["category", "symbol", "side", "orderType", "qty", "price", "timeInForce",
         "positionIdx", "orderLinkId", "orderId", "reduceOnly", "limit", "cursor", "interval",
         "start", "end", "startTime", "endTime", "settleCoin", "baseCoin", "accountType",
         "buyLeverage", "sellLeverage", "mode", "coin", "setMarginMode", "margin",
         "autoAddMargin", "intervalTime", "execType", "orderStatus", "openOnly", "request",
         "utaDemoApplyMoney", "adjustType", "riskId", "tpSlMode", "triggerPrice", "status"]
GOOD = ["linear", "spot", "BTCUSDT", "ETHUSDT", "Buy", "Sell", "Limit", "Market", "GTC",
        "PostOnly", "0.01", "0.001", "65000", "64000.5", "1", "0", "3", "5", "USDT", "UNIFIED",
        "ISOLATED_MARGIN", "REGULAR_MARGIN", "D", "1h", "Trade", "Filled", "-1", "a2s"]
values = st.one_of(
    st.sampled_from(GOOD), st.text(max_size=12), st.integers(-10**20, 10**20),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
    st.lists(st.dictionaries(st.sampled_from(NAMES), st.sampled_from(GOOD), max_size=5),
             max_size=3))
params = st.dictionaries(st.sampled_from(NAMES), values, max_size=8)


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(endpoint=st.sampled_from(ENDPOINTS), data=params, garbage=st.booleans(),
       raw=st.binary(max_size=40))
def test_every_route_answers_json_without_internal_errors(
        live: Live, endpoint: Any, data: dict[str, Any], garbage: bool, raw: bytes) -> None:
    key = live.fuzzer
    if endpoint.method == "GET":
        query = urlencode({k: json.dumps(v) if isinstance(v, list) else v
                           for k, v in data.items() if v is not None})
        # Garbage queries are percent-escaped bytes, with the separators left as they are.
        payload = quote(raw, safe="%&=+;").encode() if garbage else query.encode()
        url = live.url + endpoint.path + "?" + payload.decode("latin-1")
        body = None
    else:
        payload = raw if garbage else json.dumps(data).encode()
        url, body = live.url + endpoint.path, payload
    timestamp = str(int(time.time() * 1000))
    digest = sign(key, timestamp, "5000", payload.decode("latin-1"))
    reply = live.http.request(endpoint.method, url, content=body, headers={
        "X-BAPI-API-KEY": key.api_key, "X-BAPI-TIMESTAMP": timestamp,
        "X-BAPI-RECV-WINDOW": "5000", "X-BAPI-SIGN": digest})
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert isinstance(answer["retCode"], int) and isinstance(answer["result"], dict)
    assert isinstance(answer["retMsg"], str) and isinstance(answer["time"], int)
    assert answer["retCode"] != 10016, (endpoint.path, data, answer)
    assert live.service.fatal is None


def test_unknown_routes_and_methods(live: Live) -> None:
    # `/` is the web page (tests/web); any other path outside `/web/` is still the API's
    for method, path in [("GET", "/x"), ("GET", "/webx"), ("DELETE", "/v5/order/create"),
                         ("GET", "/v5/x"), ("POST", "/v5/market/time")]:
        reply = httpx.request(method, live.url + path)
        assert reply.status_code in (200, 404)
        assert isinstance(reply.json()["retCode"], int)


WS_OPS = ["order.create", "order.amend", "order.cancel", "order.x", "auth", "ping",
          "subscribe", "unsubscribe", None, 7]


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(["/v5/trade", "/v5/private", "/v5/public/linear"]),
       op=st.sampled_from(WS_OPS), data=params, wrap=st.booleans())
def test_every_websocket_frame_is_answered_and_the_connection_kept(
        live: Live, path: str, op: Any, data: dict[str, Any], wrap: bool) -> None:
    """Finding: odd frames (positionIdx "x"/[1], ...) raised and dropped the connection."""
    key = live.fuzzer
    with connect(live.url.replace("http://", "ws://") + path) as ws:
        if path != "/v5/public/linear":
            expires = int(time.time() * 1000) + 10_000
            ws.send(json.dumps({"op": "auth", "args": [key.api_key, expires,
                                                       key.sign(f"GET/realtime{expires}")]}))
            ws.recv(timeout=5)
        ws.send(json.dumps({"op": op, "reqId": "f", "args": [data] if wrap else data}))
        if op != "ping":
            answer = json.loads(ws.recv(timeout=5))
            assert isinstance(answer, dict) and answer.get("retCode") != 10016, answer
        ws.send(json.dumps({"op": "ping", "req_id": "alive"}))
        while json.loads(ws.recv(timeout=5)).get("req_id") != "alive":
            pass  # a ping under test answers first
    assert live.service.fatal is None

"""Authentication, permissions, rate limits and bad input: Bybit's codes, and nothing changes.

Each test runs against the single-process server and against an API gateway in front of a
writer (`gateway_live`): the same codes, the same limits.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from apisupport import Live, sign, signed


@pytest.fixture(params=["writer", "gateway"])
def live(request: pytest.FixtureRequest, live: Live) -> Live:
    """The single-process server, or a gateway in front of a writer."""
    return live if request.param == "writer" else request.getfixturevalue("gateway_live")


ORDER = json.dumps({"category": "linear", "symbol": "BTCUSDT", "side": "Buy",
                    "orderType": "Limit", "qty": "0.01", "price": "60000"})


def test_signature_timestamp_and_key_failures_change_nothing(live: Live) -> None:
    before = live.state_hash()
    key = live.alice
    now = str(int(time.time() * 1000))
    cases = {
        10004: {"X-BAPI-SIGN": "0" * 64},
        10002: {"X-BAPI-TIMESTAMP": str(int(now) - 60_000),
                "X-BAPI-SIGN": sign(key, str(int(now) - 60_000), "5000", ORDER)},
        10003: {"X-BAPI-API-KEY": "NoSuchKey123456789"},
    }
    for code, headers in cases.items():
        reply = signed(live, key, "POST", "/v5/order/create", ORDER, **headers)
        assert reply["retCode"] == code, reply
        assert isinstance(reply["retCode"], int) and reply["result"] == {}
    future = str(int(now) + 5_000)
    reply = signed(live, key, "POST", "/v5/order/create", ORDER, **{
        "X-BAPI-TIMESTAMP": future, "X-BAPI-SIGN": sign(key, future, "5000", ORDER)})
    assert reply["retCode"] == 10002
    unsigned = httpx.post(live.url + "/v5/order/create", content=ORDER)
    assert unsigned.status_code == 200 and unsigned.json()["retCode"] == 10003
    # The signature covers the raw body: the same JSON re-spaced is another payload.
    respaced = ORDER.replace(",", ", ")
    reply = signed(live, key, "POST", "/v5/order/create", respaced,
                   **{"X-BAPI-SIGN": sign(key, now, "5000", ORDER), "X-BAPI-TIMESTAMP": now})
    assert reply["retCode"] == 10004
    assert live.state_hash() == before


def test_read_only_key_cannot_trade(live: Live) -> None:
    assert signed(live, live.reader, "GET", "/v5/account/wallet-balance",
                  "accountType=UNIFIED")["retCode"] == 0  # demo funds arrive on first use
    before = live.state_hash()
    reply = signed(live, live.reader, "POST", "/v5/order/create", ORDER)
    assert reply["retCode"] == 10005
    assert live.state_hash() == before


def test_rate_limit_headers_and_10006(live: Live) -> None:
    key = live.limited

    def ask() -> httpx.Response:
        timestamp = str(int(time.time() * 1000))
        reply = httpx.get(live.url + "/v5/account/info", headers={
            "X-BAPI-API-KEY": key.api_key, "X-BAPI-TIMESTAMP": timestamp,
            "X-BAPI-RECV-WINDOW": "5000", "X-BAPI-SIGN": sign(key, timestamp, "5000", "")})
        assert reply.headers["X-Bapi-Limit"] == "3"
        assert int(reply.headers["X-Bapi-Limit-Reset-Timestamp"]) > int(timestamp) - 1000
        return reply

    first = ask().json()["retCode"]
    # Bursts of 8 at once: windows are whole seconds, so a burst lands in at most two and
    # one of them holds more than the limit of 3 (sequential requests on a loaded machine
    # may straddle windows and never exceed it).
    codes: list[int] = []
    with ThreadPoolExecutor(8) as pool:
        for _ in range(5):
            codes += [r.json()["retCode"] for r in pool.map(lambda _: ask(), range(8))]
            if 10006 in codes:
                break
    assert first == 0 and 10006 in codes


def test_accounts_are_isolated(live: Live) -> None:
    alice, bob = live.new_key(), live.new_key()
    placed = signed(live, alice, "POST", "/v5/order/create", ORDER)
    assert placed["retCode"] == 0
    order_id = placed["result"]["orderId"]
    signed(live, bob, "GET", "/v5/account/info")  # the demo funds arrive on first use
    before = live.state_hash()
    cancel = json.dumps({"category": "linear", "symbol": "BTCUSDT", "orderId": order_id})
    assert signed(live, bob, "POST", "/v5/order/cancel", cancel)["retCode"] == 110001
    amend = json.dumps({"category": "linear", "symbol": "BTCUSDT", "orderId": order_id,
                        "qty": "0.02"})
    assert signed(live, bob, "POST", "/v5/order/amend", amend)["retCode"] == 110001
    seen = signed(live, bob, "GET", "/v5/order/realtime",
                  f"category=linear&symbol=BTCUSDT&orderId={order_id}")
    assert seen["retCode"] == 0 and seen["result"]["list"] == []
    everything = json.dumps({"category": "linear", "settleCoin": "USDT"})
    assert signed(live, bob, "POST", "/v5/order/cancel-all", everything)["result"]["list"] == []
    assert live.state_hash() == before
    mine = signed(live, alice, "GET", "/v5/order/realtime", "category=linear&settleCoin=USDT")
    assert [o["orderId"] for o in mine["result"]["list"]] == [order_id]


def test_malformed_parameters_get_10001_and_change_nothing(live: Live) -> None:
    key = live.new_key()
    signed(live, key, "GET", "/v5/account/info")  # the demo funds arrive on first use
    before = live.state_hash()
    base = json.loads(ORDER)
    bad_bodies = [
        {**base, "qty": "abc"}, {**base, "qty": "0.0101"}, {**base, "price": "1e5"},
        {**base, "symbol": "DOGEUSDT"}, {**base, "side": "Up"}, {**base, "category": "spot"},
        {**base, "positionIdx": "x"}, {**base, "orderType": None}, {**base, "qty": [1]},
        {**base, "triggerPrice": "70000"},
    ]
    for body in bad_bodies:
        reply = signed(live, key, "POST", "/v5/order/create", json.dumps(body))
        assert reply["retCode"] == 10001, (body, reply)
    for raw in ["not json", "[1, 2]", '{"category": "linear"'] :
        assert signed(live, key, "POST", "/v5/order/create", raw)["retCode"] == 10001
    reply = signed(live, key, "GET", "/v5/order/history", "category=linear&cursor=%%%")
    assert reply["retCode"] == 10001
    reply = signed(live, key, "GET", "/v5/execution/list",
                   "category=linear&startTime=1&endTime=999999999999")
    assert reply["retCode"] == 10001
    assert live.state_hash() == before


def test_public_endpoints_need_no_key_and_unknown_routes_are_10017(live: Live) -> None:
    reply = httpx.get(live.url + "/v5/market/time")
    assert reply.status_code == 200 and reply.json()["retCode"] == 0
    assert isinstance(reply.json()["time"], int)
    missing = httpx.get(live.url + "/v5/nothing/here")
    assert missing.status_code == 404 and missing.json()["retCode"] == 10017
    for category in ("spot", "inverse", "option"):
        info = httpx.get(live.url + f"/v5/market/instruments-info?category={category}").json()
        assert info["retCode"] == 0 and info["result"]["list"] == []

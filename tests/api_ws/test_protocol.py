"""Connection protocol with the `websockets` client: ping/pong, acks, auth, topics."""

from __future__ import annotations

import json
import time
from typing import Any

from websockets.sync.client import ClientConnection, connect

from api_ws.live import KEYS, LiveExchange, sign
from perpx.core import Side


def recv(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
    return message


def auth_frame(key: str = "key-alice", expires: int | None = None,
               secret: str | None = None) -> str:
    expires = expires if expires is not None else int(time.time() * 1000) + 10_000
    signature = sign(secret if secret is not None else KEYS[key][0], expires)
    return json.dumps({"op": "auth", "args": [key, expires, signature], "req_id": "a1"})


def test_public_ping_pong_echoes_req_id(live: LiveExchange) -> None:
    with connect(live.url + "/v5/public/linear") as ws:
        ws.send(json.dumps({"op": "ping", "req_id": 3}))
        reply = recv(ws)
        assert reply["success"] is True and reply["ret_msg"] == "pong"
        assert reply["op"] == "ping" and reply["req_id"] == "3" and reply["conn_id"]
        ws.send(json.dumps({"op": "ping"}))
        assert "req_id" not in recv(ws)


def test_private_ping_is_answered_with_pong_op(live: LiveExchange) -> None:
    with connect(live.url + "/v5/private") as ws:
        ws.send(json.dumps({"op": "ping", "req_id": "x"}))
        reply = recv(ws)
        assert reply["op"] == "pong" and reply["req_id"] == "x"
        assert reply["args"][0].isdigit()


def test_subscribe_ack_is_delayed_echoes_req_id_and_precedes_the_snapshot(
        live: LiveExchange) -> None:
    with connect(live.url + "/v5/public/linear") as ws:
        started = time.monotonic()
        ws.send(json.dumps({"op": "subscribe", "req_id": "r-1",
                            "args": ["orderbook.50.BTCUSDT", "tickers.BTCUSDT"],
                            "callerMethodName": "junk"}))
        ack = recv(ws)
        assert time.monotonic() - started >= 0.045
        assert ack == {"success": True, "ret_msg": "subscribe", "conn_id": ack["conn_id"],
                       "req_id": "r-1", "op": "subscribe"}
        book = recv(ws)
        assert book["topic"] == "orderbook.50.BTCUSDT" and book["type"] == "snapshot"
        ticker = recv(ws)
        assert ticker["topic"] == "tickers.BTCUSDT" and ticker["type"] == "snapshot"
        assert ticker["data"]["markPrice"] == "30000.00"
        assert "openInterestValue" in ticker["data"]


def test_invalid_topic_gets_bybit_failure_ack_and_subscribes_nothing(live: LiveExchange) -> None:
    with connect(live.url + "/v5/public/linear") as ws:
        ws.send(json.dumps({"op": "subscribe", "req_id": 11,
                            "args": ["orderbook.7.BTCUSDT", "publicTrade.BTCUSDT"]}))
        ack = recv(ws)
        assert ack["success"] is False and ack["req_id"] == "11"
        assert ack["ret_msg"] == "error:handler not found,topic:orderbook.7.BTCUSDT"
        live.place(1, Side.SELL, "0.010", "30000")
        live.place(2, Side.BUY, "0.010", "30000")
        ws.send(json.dumps({"op": "ping"}))
        assert recv(ws)["ret_msg"] == "pong"  # no trade was pushed before it


def test_unsubscribe_stops_the_topic(live: LiveExchange) -> None:
    with connect(live.url + "/v5/public/linear") as ws:
        ws.send(json.dumps({"op": "subscribe", "req_id": "s", "args": ["publicTrade.BTCUSDT"]}))
        assert recv(ws)["success"] is True
        live.place(1, Side.SELL, "0.010", "30000")
        live.place(2, Side.BUY, "0.010", "30000")
        trade = recv(ws)
        assert trade["topic"] == "publicTrade.BTCUSDT"
        row = trade["data"][0]
        assert row["S"] == "Buy" and row["v"] == "0.010" and row["p"] == "30000.00"
        assert row["BT"] is False and row["i"] and row["L"] in ("ZeroPlusTick", "PlusTick")
        ws.send(json.dumps({"op": "unsubscribe", "req_id": "s", "args": ["publicTrade.BTCUSDT"]}))
        ack = recv(ws)
        assert ack["op"] == "unsubscribe" and ack["success"] is True and ack["req_id"] == "s"
        live.place(1, Side.SELL, "0.010", "30000")
        live.place(2, Side.BUY, "0.010", "30000")
        ws.send(json.dumps({"op": "ping"}))
        assert recv(ws)["ret_msg"] == "pong"


def test_auth_success_and_failures(live: LiveExchange) -> None:
    url = live.url + "/v5/private"
    with connect(url) as ws:
        ws.send(auth_frame())
        reply = recv(ws)
        assert reply["success"] is True and reply["ret_msg"] == "" and reply["op"] == "auth"
        assert reply["conn_id"] and reply["req_id"] == "a1"
    with connect(url) as ws:
        ws.send(auth_frame(secret="wrong"))
        reply = recv(ws)
        assert reply["success"] is False
        assert reply["ret_msg"] == "error:signature verification failed"
    with connect(url) as ws:
        ws.send(auth_frame(expires=int(time.time() * 1000) - 1))
        reply = recv(ws)
        assert reply["success"] is False and "expired" in reply["ret_msg"]
    with connect(url) as ws:  # ccxt sends expires as a string
        expires = str(int(time.time() * 1000) + 10_000)
        ws.send(json.dumps({"op": "auth", "args": ["key-bob", expires,
                                                   sign("secret-bob", expires)]}))
        assert recv(ws)["success"] is True


def test_private_subscribe_needs_auth(live: LiveExchange) -> None:
    with connect(live.url + "/v5/private") as ws:
        ws.send(json.dumps({"op": "subscribe", "req_id": "p", "args": ["order"]}))
        reply = recv(ws)
        assert reply["success"] is False and reply["req_id"] == "p"
        ws.send(auth_frame())
        assert recv(ws)["success"] is True
        ws.send(json.dumps({"op": "subscribe", "req_id": "p2", "args": ["order", "wallet"]}))
        ack = recv(ws)
        assert ack == {"success": True, "ret_msg": "", "conn_id": ack["conn_id"],
                       "req_id": "p2", "op": "subscribe"}


def test_private_topics_only_carry_the_connections_account(live: LiveExchange) -> None:
    with connect(live.url + "/v5/private") as alice, connect(live.url + "/v5/private") as bob:
        alice.send(auth_frame("key-alice"))
        bob.send(auth_frame("key-bob"))
        assert recv(alice)["success"] and recv(bob)["success"]
        alice.send(json.dumps({"op": "subscribe", "args": ["order", "execution", "position",
                                                          "wallet"]}))
        bob.send(json.dumps({"op": "subscribe", "args": ["order"]}))
        assert recv(alice)["success"] and recv(bob)["success"]
        live.place(1, Side.SELL, "0.010", "30000")  # alice rests
        first = recv(alice)
        assert first["topic"] == "order"
        order = first["data"][0]
        assert order["orderStatus"] == "New" and order["category"] == "linear"
        assert order["leavesQty"] == "0.010" and "tpslMode" in order
        wallet = recv(alice)
        assert wallet["topic"] == "wallet"
        assert wallet["data"][0]["accountType"] == "UNIFIED"
        assert wallet["data"][0]["coin"][0]["totalOrderIM"] != "0"
        live.place(3, Side.BUY, "0.004", "30000")  # carol takes part of it
        topics = [recv(alice)["topic"] for _ in range(4)]
        assert topics == ["execution", "order", "position", "wallet"]
        live.place(2, Side.BUY, "0.006", "30000")  # bob takes the rest
        frames = [recv(alice) for _ in range(4)]
        by_topic = {f["topic"]: f["data"] for f in frames}
        assert by_topic["order"][0]["orderStatus"] == "Filled"
        assert by_topic["order"][0]["cumExecQty"] == "0.010"
        assert by_topic["order"][0]["avgPrice"] == "30000.00"
        execution = by_topic["execution"][0]
        assert execution["isMaker"] is True and execution["execQty"] == "0.006"
        assert execution["execType"] == "Trade" and execution["execPrice"] == "30000.00"
        position = by_topic["position"][0]
        assert position["side"] == "Sell" and position["size"] == "0.010"
        assert position["entryPrice"] == "30000.00" and position["liqPrice"]
        bob_order = recv(bob)
        assert bob_order["data"][0]["orderStatus"] == "Filled"
        assert bob_order["data"][0]["side"] == "Buy"
        bob.send(json.dumps({"op": "ping"}))
        assert recv(bob)["op"] == "pong"  # bob saw nothing of alice's


def test_kline_snapshot_then_updates_on_trades(live: LiveExchange) -> None:
    live.place(1, Side.SELL, "0.010", "30000")
    live.place(2, Side.BUY, "0.004", "30000")
    with connect(live.url + "/v5/public/linear") as ws:
        ws.send(json.dumps({"op": "subscribe", "args": ["kline.1.BTCUSDT"]}))
        assert recv(ws)["success"]
        snapshot = recv(ws)
        candle = snapshot["data"][0]
        assert snapshot["topic"] == "kline.1.BTCUSDT" and candle["interval"] == "1"
        assert candle["close"] == "30000.00" and candle["volume"] == "0.004"
        assert candle["end"] == candle["start"] + 59_999 and candle["confirm"] is False
        live.place(2, Side.BUY, "0.006", "30000")
        update = recv(ws)["data"][-1]
        assert update["volume"] == "0.010" and update["turnover"] == "300"

"""A slow reader is cut off instead of stalling the hub; order entry over /v5/trade."""

from __future__ import annotations

import asyncio
import json

from websockets.sync.client import connect

from api_ws.live import LiveExchange
from api_ws.test_protocol import auth_frame, recv
from perpx.api.ws.connection import Connection, Outgoing


def test_a_connection_too_far_behind_is_closed_and_its_queue_dropped() -> None:
    async def run() -> Connection:
        conn = Connection("public", max_buffer=30)
        for i in range(10):
            conn.offer(Outgoing(f"frame {i}".encode()))  # never blocks, whatever the reader does
        return conn

    conn = asyncio.run(run())
    assert conn.overflowed and conn.closed


def test_order_entry_over_the_trade_endpoint(live: LiveExchange) -> None:
    with connect(live.url + "/v5/trade") as ws:
        ws.send(json.dumps({"reqId": "0", "op": "order.create", "args": [{}]}))
        assert recv(ws)["retCode"] == 10003  # not authorized yet
        ws.send(auth_frame())
        reply = recv(ws)
        assert reply["retCode"] == 0 and reply["op"] == "auth" and reply["connId"]
        ws.send(json.dumps({"reqId": "1", "header": {"X-BAPI-TIMESTAMP": "1"},
                            "op": "order.create",
                            "args": [{"symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit",
                                      "price": "29000", "category": "linear", "qty": "0.01"}]}))
        created = recv(ws)
        assert created["retCode"] == 0 and created["reqId"] == "1"
        order_id = created["data"]["orderId"]
        assert live.engine.open_orders[int(order_id)].price_ticks == 290000
        ws.send(json.dumps({"reqId": "2", "op": "order.amend",
                            "args": [{"symbol": "BTCUSDT", "orderId": order_id,
                                      "price": "29100", "category": "linear"}]}))
        assert recv(ws)["retCode"] == 0
        ws.send(json.dumps({"reqId": "3", "op": "order.cancel",
                            "args": [{"symbol": "BTCUSDT", "orderId": order_id,
                                      "category": "linear"}]}))
        assert recv(ws)["retCode"] == 0
        assert int(order_id) not in live.engine.open_orders
        ws.send(json.dumps({"reqId": "4", "op": "order.cancel",
                            "args": [{"symbol": "BTCUSDT", "orderId": order_id,
                                      "category": "linear"}]}))
        refused = recv(ws)
        assert refused["retCode"] == 110001 and refused["reqId"] == "4"
        ws.send(json.dumps({"reqId": "5", "op": "order.create",
                            "args": [{"symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit",
                                      "price": "29000.05", "qty": "0.01"}]}))
        assert recv(ws)["retCode"] == 10001  # off the tick grid: refused at the edge

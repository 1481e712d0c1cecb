"""Stop orders on the private `order` stream: conditional orders placed over `/v5/trade`,
TP/SL and a trailing stop set on the position, each seen Untriggered -> Triggered -> Filled.

The hub here keeps its own order projector (no REST service), so this also pins that a
stand-alone hub projects stop orders the same way the service's shared projector does.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from websockets.sync.client import ClientConnection, connect

from api_ws.live import LiveExchange
from api_ws.test_protocol import auth_frame, recv
from perpx.convert import to_ticks
from perpx.core import Side
from perpx.core.commands import SetTradingStop


@contextlib.contextmanager
def private(live: LiveExchange, *topics: str) -> Iterator[ClientConnection]:
    with connect(live.url + "/v5/private") as ws:
        ws.send(auth_frame())
        assert recv(ws)["success"] is True
        ws.send(json.dumps({"op": "subscribe", "args": list(topics)}))
        assert recv(ws)["success"] is True
        yield ws


def order_rows(ws: ClientConnection, order_id: str, until: str) -> list[dict[str, Any]]:
    """The order's rows on the `order` topic, until one has status `until`."""
    rows: list[dict[str, Any]] = []
    while not rows or rows[-1]["orderStatus"] != until:
        message = recv(ws)
        if message.get("topic") == "order":
            rows += [r for r in message["data"] if r["orderId"] == order_id]
    return rows


def test_conditional_order_over_trade_ws_fires_on_the_mark(live: LiveExchange) -> None:
    live.place(2, Side.SELL, "1", "30010")
    with private(live, "order") as ws, connect(live.url + "/v5/trade") as trade:
        trade.send(auth_frame())
        assert recv(trade)["retCode"] == 0
        trade.send(json.dumps({"op": "order.create", "reqId": "c1", "args": [{
            "category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market",
            "qty": "0.010", "triggerPrice": "30050", "triggerDirection": 1,
            "triggerBy": "MarkPrice", "takeProfit": "31000"}]}))
        reply = recv(trade)
        assert reply["retCode"] == 0, reply
        order_id = reply["data"]["orderId"]
        trade.send(json.dumps({"op": "order.create", "reqId": "c2", "args": [{
            "category": "linear", "symbol": "BTCUSDT", "side": "Buy", "orderType": "Market",
            "qty": "0.010", "triggerPrice": "29000", "triggerDirection": 1,
            "triggerBy": "MarkPrice"}]}))
        assert recv(trade)["retCode"] == 110092
        (untriggered,) = order_rows(ws, order_id, "Untriggered")
        assert (untriggered["stopOrderType"], untriggered["triggerPrice"],
                untriggered["takeProfit"]) == ("Stop", "30050.00", "31000.00")
        live.mark("30060")
        rows = order_rows(ws, order_id, "Filled")
        assert [r["orderStatus"] for r in rows] == ["Triggered", "Filled"]
        assert rows[-1]["createType"] == "CreateByStopOrder"
        assert rows[-1]["avgPrice"] == "30010.00"


def test_trailing_stop_follows_and_fires_on_prints(live: LiveExchange) -> None:
    spec = live.engine.instruments["BTCUSDT"]
    live.place(2, Side.SELL, "0.010", "30000")
    live.place(1, Side.BUY, "0.010")  # alice long 0.01 at 30000: the last price
    with private(live, "order", "position") as ws:
        live.submit(SetTradingStop(0, 0, 1, "BTCUSDT", trailing_stop_ticks=to_ticks(
            spec, "20")))
        (trailing,) = live.engine.stops.waiting.of(1, "BTCUSDT")
        order_id = str(trailing.order_id)
        (armed,) = order_rows(ws, order_id, "Untriggered")
        assert (armed["stopOrderType"], armed["triggerPrice"]) == ("TrailingStop", "29980.00")
        # A print at 30040 moves the stop up to 30020; one at 30015 fires it.
        live.place(2, Side.SELL, "0.001", "30040")
        live.place(3, Side.BUY, "0.001", "30040")
        moved = order_rows(ws, order_id, "Untriggered")
        assert moved[-1]["triggerPrice"] == "30020.00"
        live.place(3, Side.BUY, "1", "30015")
        live.place(2, Side.SELL, "0.001", "30015")
        rows = order_rows(ws, order_id, "Filled")
        assert [r["orderStatus"] for r in rows] == ["Triggered", "Filled"]
        assert rows[-1]["createType"] == "CreateByTrailingStop"
    account = live.engine.clearing.account(1)
    assert account is not None and not account.position("BTCUSDT", 0).size_lots

"""#13 C3, C4, C5 on the public stream: a fresh exchange's ticker and kline, public trade ids."""

from __future__ import annotations

import json

from websockets.sync.client import connect

from api_ws.live import LiveExchange
from api_ws.test_protocol import recv
from perpx.core import Side
from perpx.store.records import trade_exec_id


def test_before_any_trade_the_streams_show_the_mark_as_last_price(live: LiveExchange) -> None:
    """#13 C3/C4: no trade yet, mark 30,000: the ticker's last price and the kline's current
    candle are there at once (lastPrice was "" and no kline snapshot came)."""
    with connect(live.url + "/v5/public/linear") as ws:
        ws.send(json.dumps({"op": "subscribe",
                            "args": ["tickers.BTCUSDT", "kline.1.BTCUSDT"]}))
        assert recv(ws)["success"] is True
        ticker = recv(ws)
        assert ticker["topic"] == "tickers.BTCUSDT"
        data = ticker["data"]
        assert data["lastPrice"] == data["prevPrice24h"] == data["highPrice24h"] == "30000.00"
        kline = recv(ws)
        assert kline["topic"] == "kline.1.BTCUSDT" and kline["type"] == "snapshot"
        (candle,) = kline["data"]
        assert (candle["open"], candle["high"], candle["low"], candle["close"],
                candle["volume"], candle["confirm"]) == ("30000.00",) * 4 + ("0.000", False)
        assert candle["start"] == live.hub.now_ms - live.hub.now_ms % 60_000


def test_the_public_trade_id_is_the_takers_execution_id(live: LiveExchange) -> None:
    """#13 C5: publicTrade `i` equals the execId of the taker's fill (it was the counter)."""
    with connect(live.url + "/v5/public/linear") as ws:
        ws.send(json.dumps({"op": "subscribe", "args": ["publicTrade.BTCUSDT"]}))
        assert recv(ws)["success"] is True
        live.place(1, Side.SELL, "0.010", "30000")
        events = live.place(2, Side.BUY, "0.010", "30000")
        trade_id = next(e.trade_id for e in events if type(e).__name__ == "Trade")
        (row,) = recv(ws)["data"]
        assert row["i"] == trade_exec_id(trade_id, False)

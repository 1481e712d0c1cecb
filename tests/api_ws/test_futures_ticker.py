"""`tickers.{symbol}` of a dated future: the futures fields of REST, no funding (issue #16).

next-mechanics §2.7: a future's ticker carries deliveryTime, deliveryFeeRate,
predictedDeliveryPrice (from T - 30 min), basis, basisRate and basisRateYear; §2.3: no
funding, so none of the funding fields. The perpetual's ticker beside it keeps its own.
"""

from __future__ import annotations

import json

from websockets.sync.client import connect

from api_ws.live import LiveExchange
from api_ws.test_protocol import recv
from perpx.core.commands import IndexPrice, ListInstrument
from perpx.core.events import InstrumentListed
from perpx.core.instruments import spec_record
from perpx.instruments import FUTURES_TABLE, load_instruments
from support.builders import btcusdt

FUTURE = load_instruments(FUTURES_TABLE)[0]  # BTCUSDT-25DEC26
T = FUTURE.delivery_time_ms
FUNDING = ("fundingRate", "nextFundingTime", "fundingIntervalHour", "fundingCap")


class Clock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_a_futures_ticker_streams_its_delivery_fields_and_no_funding() -> None:
    clock = Clock(T - 3_600_000)
    live = LiveExchange(specs=[btcusdt(), FUTURE], clock=clock).start()
    try:
        for k in range(3):  # three seconds of the delivery window: 61,000.0 .. 61,000.2
            clock.ms = T - 1_800_000 + 1_000 * k
            live.submit(IndexPrice(0, 0, FUTURE.symbol, 610_000 + k))
        live.submit(IndexPrice(0, 0, "BTCUSDT", 610_000))
        with connect(live.url + "/v5/public/linear") as ws:
            ws.send(json.dumps({"op": "subscribe",
                                "args": [f"tickers.{FUTURE.symbol}", "tickers.BTCUSDT"]}))
            assert recv(ws)["success"] is True
            first, second = recv(ws), recv(ws)
        tickers = {m["topic"]: m["data"] for m in (first, second)}
        future = tickers[f"tickers.{FUTURE.symbol}"]
        assert future["deliveryTime"] == str(T)
        assert future["deliveryFeeRate"] == "0.0005"
        assert future["predictedDeliveryPrice"] == "61000.10000000"  # the running mean
        assert (future["markPrice"], future["indexPrice"]) == ("61000.20", "61000.20")
        assert (future["basis"], future["basisRate"]) == ("0.00", "0")
        assert "basisRateYear" in future
        assert not [key for key in FUNDING if key in future]
        perpetual = tickers["tickers.BTCUSDT"]
        assert all(key in perpetual for key in FUNDING)
        assert "deliveryTime" not in perpetual
    finally:
        live.stop()


def test_a_contract_listed_while_serving_streams_its_ticker() -> None:
    clock = Clock(T - 3_600_000)
    live = LiveExchange(specs=[btcusdt()], clock=clock).start()
    try:
        events = live.submit(ListInstrument(0, 0, spec_record(FUTURE)))
        assert [type(e) for e in events] == [InstrumentListed]
        live.submit(IndexPrice(0, 0, FUTURE.symbol, 610_000))
        with connect(live.url + "/v5/public/linear") as ws:
            ws.send(json.dumps({"op": "subscribe", "args": [f"tickers.{FUTURE.symbol}"]}))
            assert recv(ws)["success"] is True
            ticker = recv(ws)
        assert ticker["topic"] == f"tickers.{FUTURE.symbol}"
        assert ticker["data"]["indexPrice"] == "61000.00"
        assert ticker["data"]["deliveryTime"] == str(T)
    finally:
        live.stop()

"""ccxt.pro's bybit against the live server: public and private watch_* calls (spec §3, §8)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from importlib.resources import files
from typing import Any

import ccxt.pro

from api_ws.live import LiveExchange
from perpx.core import Side

SYMBOL = "BTC/USDT:USDT"


def make_exchange(live: LiveExchange, key: str = "key-alice",
                  secret: str = "secret-alice") -> Any:
    http = "http://127.0.0.1:9"  # no REST here: markets come from the bundled table below
    exchange = ccxt.pro.bybit({
        "apiKey": key, "secret": secret,
        "urls": {"api": {"public": http, "private": http,
                         "ws": {"public": {"linear": live.url + "/v5/public/linear"},
                                "private": {"contract": live.url + "/v5/private",
                                            "spot": {"unified": live.url + "/v5/private"},
                                            "trade": live.url + "/v5/trade"}}}},
        "options": {"fetchMarkets": {"types": ["linear"]}, "enableUnifiedAccount": True,
                    "enableUnifiedMargin": False, "unifiedMarginStatus": 6,
                    "watchPositions": {"fetchPositionsSnapshot": False}},
        "has": {"fetchCurrencies": False},
    })
    table = json.loads(files("perpx.instruments").joinpath("default.json").read_text())

    async def instruments_info(params: dict[str, Any] = {}) -> dict[str, Any]:  # noqa: B006
        rows = table["instruments"] if params.get("status") != "PreLaunch" else []
        return {"retCode": 0, "retMsg": "OK", "retExtInfo": {}, "time": 0,
                "result": {"category": "linear", "list": rows, "nextPageCursor": ""}}

    exchange.publicGetV5MarketInstrumentsInfo = instruments_info
    return exchange


async def while_watching(watch: Awaitable[Any], act: Callable[[], Any]) -> Any:
    task = asyncio.ensure_future(watch)
    await asyncio.sleep(0.3)  # subscribed and acked
    await asyncio.to_thread(act)
    return await asyncio.wait_for(task, 10)


def test_ccxt_pro_public_watchers(live: LiveExchange) -> None:
    async def run() -> None:
        exchange = make_exchange(live)
        try:
            live.place(1, Side.SELL, "0.020", "30010")
            book = await exchange.watch_order_book(SYMBOL)
            assert book["asks"][0] == [30010.0, 0.02] and book["bids"] == []
            book = await while_watching(exchange.watch_order_book(SYMBOL),
                                        lambda: live.place(2, Side.BUY, "0.007", "29995"))
            assert book["bids"][0] == [29995.0, 0.007]
            trades = await while_watching(exchange.watch_trades(SYMBOL),
                                          lambda: live.place(2, Side.BUY, "0.005", "30010"))
            assert trades[-1]["side"] == "buy" and trades[-1]["price"] == 30010.0
            assert trades[-1]["amount"] == 0.005
            ticker = await exchange.watch_ticker(SYMBOL)
            assert ticker["last"] == 30010.0 and ticker["ask"] == 30010.0
            assert ticker["bid"] == 29995.0
        finally:
            await exchange.close()

    asyncio.run(run())


def test_ccxt_pro_private_watchers(live: LiveExchange) -> None:
    async def run() -> None:
        exchange = make_exchange(live)
        try:
            await exchange.load_markets()
            orders = await while_watching(exchange.watch_orders(SYMBOL),
                                          lambda: live.place(1, Side.BUY, "0.010", "29900"))
            assert orders[-1]["status"] == "open" and orders[-1]["price"] == 29900.0
            assert orders[-1]["amount"] == 0.01 and orders[-1]["side"] == "buy"
            mine = await while_watching(exchange.watch_my_trades(SYMBOL),
                                        lambda: live.place(2, Side.SELL, "0.004", "29900"))
            assert mine[-1]["side"] == "buy" and mine[-1]["amount"] == 0.004
            assert mine[-1]["takerOrMaker"] == "maker"
            assert mine[-1]["fee"]["cost"] == 0.02392  # 0.02% of 119.6
            positions = await while_watching(exchange.watch_positions([SYMBOL]),
                                             lambda: live.place(3, Side.SELL, "0.006", "29900"))
            assert positions[-1]["side"] == "long" and positions[-1]["contracts"] == 0.01
            assert positions[-1]["entryPrice"] == 29900.0
            balance = await while_watching(exchange.watch_balance(),
                                           lambda: live.place(1, Side.SELL, "0.001", "31000"))
            # ccxt reads equity: wallet 999,999.9402 after fees + uPnL 1 (0.01 from 29,900
            # to the 30,000 mark).
            assert balance["USDT"]["total"] == 1000000.9402
            assert balance["info"][0]["accountType"] == "UNIFIED"
        finally:
            await exchange.close()

    asyncio.run(run())

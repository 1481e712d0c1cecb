"""The real ccxt bybit client, unchanged but for its URLs, against a live perpx server."""

from __future__ import annotations

import asyncio
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async
import pytest

from apisupport import Live

SYMBOL = "BTC/USDT:USDT"


def config(live: Live, key: Any) -> dict[str, Any]:
    return {"apiKey": key.api_key, "secret": key.secret,
            "urls": {"api": {"public": live.url, "private": live.url}}}


def test_market_data_and_balance(live: Live) -> None:
    ex = ccxt.bybit(config(live, live.new_key()))
    markets = ex.load_markets()
    assert {"BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"} <= set(markets)
    market = markets[SYMBOL]
    assert market["contract"] and market["linear"] and market["precision"]["price"] == 0.1
    ticker = ex.fetch_ticker(SYMBOL)
    assert ticker["bid"] < ticker["ask"] and ticker["markPrice"] > 0
    book = ex.fetch_order_book(SYMBOL)
    assert book["bids"][0][0] < book["asks"][0][0]
    assert ex.fetch_balance()["USDT"] == {"free": 100000.0, "used": 0.0, "total": 100000.0,
                                          "debt": 0.0}
    funding = ex.fetch_funding_rate(SYMBOL)
    assert funding["fundingRate"] is not None and funding["fundingTimestamp"] > 0
    assert ex.fetch_time() > 0


def test_trading_round_trip(live: Live) -> None:
    ex = ccxt.bybit(config(live, live.new_key()))
    ex.load_markets()
    bid = ex.fetch_order_book(SYMBOL)["bids"][0][0]
    resting = ex.create_order(SYMBOL, "limit", "buy", 0.01, bid - 50)
    open_orders = ex.fetch_open_orders(SYMBOL)
    assert [o["id"] for o in open_orders] == [resting["id"]]
    assert open_orders[0]["status"] == "open" and open_orders[0]["price"] == bid - 50
    ex.cancel_order(resting["id"], SYMBOL)
    assert ex.fetch_open_orders(SYMBOL) == []
    cancelled = ex.fetch_order(resting["id"], SYMBOL, {"acknowledged": True})
    assert cancelled["status"] == "canceled"

    bought = ex.create_order(SYMBOL, "market", "buy", 0.02)
    filled = ex.fetch_order(bought["id"], SYMBOL, {"acknowledged": True})
    assert filled["status"] == "closed" and filled["filled"] == 0.02
    assert filled["fee"]["cost"] > 0
    trades = ex.fetch_my_trades(SYMBOL)
    assert sum(t["amount"] for t in trades) == pytest.approx(0.02)
    assert all(t["order"] == bought["id"] for t in trades)
    (position,) = ex.fetch_positions([SYMBOL])
    assert position["side"] == "long" and position["contracts"] == 0.02
    assert ex.fetch_balance()["USDT"]["used"] > 0

    closed = ex.create_order(SYMBOL, "market", "sell", 0.02, params={"reduceOnly": True})
    assert ex.fetch_order(closed["id"], SYMBOL, {"acknowledged": True})["status"] == "closed"
    assert ex.fetch_positions() == []
    history = ex.fetch_closed_orders(SYMBOL)
    assert {bought["id"], closed["id"]} <= {o["id"] for o in history}
    assert ex.fetch_positions_history([SYMBOL])[0]["info"]["orderId"] == closed["id"]


def test_account_settings(live: Live) -> None:
    ex = ccxt.bybit(config(live, live.new_key()))
    ex.load_markets()
    ex.set_margin_mode("isolated", SYMBOL)
    assert ex.fetch_margin_mode(SYMBOL)["marginMode"] == "isolated"
    ex.set_leverage(5, SYMBOL)
    assert ex.fetch_position(SYMBOL)["leverage"] == 5
    with pytest.raises(ccxt.BadRequest):  # 110043: not modified
        ex.set_leverage(5, SYMBOL)
    ex.set_position_mode(True)
    # By symbol, Bybit lists flat rows too: in hedge mode one per side.
    rows = ex.fetch_positions([SYMBOL])
    assert sorted(r["info"]["positionIdx"] for r in rows) == [1, 2]
    assert all(r["info"]["size"] == "0.000" and r["hedged"] for r in rows)
    with pytest.raises(ccxt.NoChange):  # 110025
        ex.set_position_mode(True, SYMBOL)
    ex.set_position_mode(False, SYMBOL)
    ex.set_margin_mode("cross", SYMBOL)
    assert ex.fetch_margin_mode(SYMBOL)["marginMode"] == "cross"


def test_errors_map_to_ccxt_exceptions(live: Live) -> None:
    ex = ccxt.bybit(config(live, live.poor))
    ex.load_markets()
    with pytest.raises(ccxt.InsufficientFunds):
        ex.create_order(SYMBOL, "limit", "buy", 0.01, 60000)
    with pytest.raises(ccxt.OrderNotFound):
        ex.cancel_order("999999", SYMBOL)
    bad = ccxt.bybit({**config(live, live.poor), "secret": "wrong"})
    with pytest.raises(ccxt.AuthenticationError):
        bad.fetch_balance()
    with pytest.raises(ccxt.PermissionDenied):
        reader = ccxt.bybit(config(live, live.reader))
        reader.load_markets()
        reader.create_order(SYMBOL, "limit", "buy", 0.01, 60000)


def test_async_client(live: Live) -> None:
    key = live.new_key()

    async def run() -> None:
        ex = ccxt_async.bybit(config(live, key))
        try:
            await ex.load_markets()
            ticker, book, balance = await asyncio.gather(
                ex.fetch_ticker(SYMBOL), ex.fetch_order_book(SYMBOL), ex.fetch_balance())
            assert balance["USDT"]["total"] == 100000.0 and book["asks"] and ticker["ask"]
            order = await ex.create_order(SYMBOL, "limit", "sell", 0.01, ticker["ask"] + 100)
            assert [o["id"] for o in await ex.fetch_open_orders(SYMBOL)] == [order["id"]]
            await ex.cancel_order(order["id"], SYMBOL)
            fetched = await ex.fetch_order(order["id"], SYMBOL, {"acknowledged": True})
            assert fetched["status"] == "canceled"
            bought = await ex.create_order(SYMBOL, "market", "buy", 0.01)
            assert (await ex.fetch_my_trades(SYMBOL))[0]["order"] == bought["id"]
            assert (await ex.fetch_positions([SYMBOL]))[0]["contracts"] == 0.01
            await ex.set_leverage(3, SYMBOL)
            assert (await ex.fetch_funding_rate(SYMBOL))["fundingRate"] is not None
        finally:
            await ex.close()

    asyncio.run(run())

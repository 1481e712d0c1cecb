"""pybit 5.17's WebSocket client against the live server (spec §9.1, §9.4)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pybit.unified_trading as ut
import pytest

from api_ws.live import LiveExchange
from perpx.core import Side
from support.inbox import Inbox


@pytest.fixture
def pointed(live: LiveExchange, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveExchange]:
    monkeypatch.setattr(ut, "PUBLIC_WSS", live.url + "/v5/public/{CHANNEL_TYPE}")
    monkeypatch.setattr(ut, "PRIVATE_WSS", live.url + "/v5/private")
    yield live


def test_pybit_public_orderbook_trade_and_ticker_streams(pointed: LiveExchange) -> None:
    live = pointed
    live.place(1, Side.SELL, "0.020", "30010")
    live.place(1, Side.BUY, "0.030", "29990")
    ws = ut.WebSocket(channel_type="linear", testnet=False)
    try:
        book, trades, tickers = Inbox(), Inbox(), Inbox()
        ws.orderbook_stream(50, "BTCUSDT", book)
        ws.trade_stream("BTCUSDT", trades)
        ws.ticker_stream("BTCUSDT", tickers)
        book.wait(lambda m: m["data"]["a"] == [["30010.00", "0.020"]])
        tickers.wait(lambda m: m["data"].get("ask1Price") == "30010.00")
        live.place(2, Side.BUY, "0.005", "30010")  # takes part of the ask
        live.place(3, Side.SELL, "0.010", "30005")  # a new level that does not cross...
        live.place(2, Side.SELL, "0.030", "29990")  # ...and one that takes the bid whole
        # pybit keeps a local book merged from deltas (inserts appended, unsorted) and hands
        # over the whole of it.
        merged = book.wait(lambda m: m["data"]["b"] == [] and sorted(m["data"]["a"]) ==
                           [["30005.00", "0.010"], ["30010.00", "0.015"]])
        assert merged["topic"] == "orderbook.50.BTCUSDT"
        trade = trades.wait(lambda m: any(r["S"] == "Sell" for r in m["data"]))
        assert trade["data"][0]["p"] == "29990.00" and trade["data"][0]["v"] == "0.030"
        ticker = tickers.wait(lambda m: m["data"].get("lastPrice") == "29990.00")
        assert ticker["data"]["symbol"] == "BTCUSDT" and ticker["data"]["bid1Price"] == ""
    finally:
        ws.exit()


def test_pybit_private_order_execution_position_wallet_streams(pointed: LiveExchange) -> None:
    live = pointed
    ws = ut.WebSocket(channel_type="private", api_key="key-alice", api_secret="secret-alice",
                      testnet=False)
    try:
        orders, executions, positions, wallets = Inbox(), Inbox(), Inbox(), Inbox()
        ws.order_stream(orders)
        ws.execution_stream(executions)
        ws.position_stream(positions)
        ws.wallet_stream(wallets)
        time.sleep(0.3)  # the four subscribe acks
        live.place(2, Side.SELL, "0.010", "30000")
        live.place(1, Side.BUY, "0.010")  # alice buys at market
        order = orders.wait(lambda m: m["data"][0]["orderStatus"] == "Filled")
        assert order["data"][0]["orderType"] == "Market"
        assert order["data"][0]["cumExecQty"] == "0.010"
        execution = executions.wait(lambda m: m["topic"] == "execution")
        row = execution["data"][0]
        assert row["isMaker"] is False and row["execPrice"] == "30000.00"
        assert row["feeRate"] == "0.00055" and row["execFee"] == "0.165"
        position = positions.wait(lambda m: m["data"][0]["size"] == "0.010")
        assert position["data"][0]["side"] == "Buy"
        assert position["data"][0]["entryPrice"] == "30000.00"
        wallet = wallets.wait(lambda m: m["topic"] == "wallet")
        coin = wallet["data"][0]["coin"][0]
        assert coin["coin"] == "USDT" and coin["walletBalance"] == "999999.835"
    finally:
        ws.exit()

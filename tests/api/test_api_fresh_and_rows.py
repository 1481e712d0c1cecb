"""#13 C3, C4, C5 through the real clients: a fresh server's klines and ticker, complete rows.

A server of its own (not the session's `live`): it must start fresh (no trade yet), and its
clock is moved forward to make quiet minutes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import ccxt
import httpx
import pytest

from perpx.api.app import create_app
from perpx.api.keys import KeyStore
from perpx.api.server import ServerThread
from perpx.instruments import load_instruments
from perpx.sequencer import wall_clock_ms
from perpx.service import ExchangeService
from perpx.store.history_sqlite import SqliteHistory
from perpx.store.journal import MemoryJournal

SYMBOL = "BTC/USDT:USDT"
MIN = 60_000


class Fresh:
    def __init__(self, url: str, service: ExchangeService, keys: KeyStore,
                 offset: list[int]) -> None:
        self.url, self.service, self.keys, self.offset = url, service, keys, offset

    def get(self, path: str, **params: Any) -> Any:
        reply = httpx.get(self.url + path, params=params)
        assert reply.status_code == 200 and reply.json()["retCode"] == 0, reply.text
        return reply.json()["result"]

    def client(self, **options: Any) -> ccxt.bybit:
        key = self.keys.create(demo_funds="100000", **options)
        ex = ccxt.bybit({"apiKey": key.api_key, "secret": key.secret,
                         "urls": {"api": {"public": self.url, "private": self.url}}})
        ex.load_markets()
        return ex


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fresh]:
    folder = tmp_path_factory.mktemp("fresh")
    keys = KeyStore(folder)
    offset = [0]
    service = ExchangeService(load_instruments(), MemoryJournal(),
                              history=SqliteHistory(folder / "history.db"),
                              clock=lambda: wall_clock_ms() + offset[0], feed_interval_s=3600)
    server = ServerThread(create_app(service, keys, manage_service=True)).start()
    deadline = time.monotonic() + 10
    while service.engine.books["BTCUSDT"].best_ask() is None:  # the maker quotes
        assert time.monotonic() < deadline, "the market maker never quoted"
        time.sleep(0.05)
    yield Fresh(server.url, service, keys, offset)
    server.stop()
    keys.close()


def test_a_fresh_server_has_a_last_price_and_24h_figures(fresh: Fresh) -> None:
    """#13 C4: before any trade the ticker's last price is the mark (it was "")."""
    (row,) = fresh.get("/v5/market/tickers", category="linear", symbol="SOLUSDT")["list"]
    assert row["markPrice"] and row["lastPrice"] == row["markPrice"]
    assert row["prevPrice24h"] == row["highPrice24h"] == row["lowPrice24h"] == row["lastPrice"]
    assert row["prevPrice1h"] == row["lastPrice"] and row["price24hPcnt"] == "0"
    ticker = fresh.client().fetch_ticker("SOL/USDT:USDT")
    assert ticker["last"] * 2 == float(row["lastPrice"]) * 2


def test_a_fresh_server_serves_the_current_candle(fresh: Fresh) -> None:
    """#13 C3: before any trade the kline has the current minute's candle, at the mark,
    volume 0 (the list was empty)."""
    mark = fresh.get("/v5/market/tickers", category="linear", symbol="SOLUSDT")["list"][0][
        "markPrice"]
    rows = fresh.get("/v5/market/kline", category="linear", symbol="SOLUSDT", interval="1")[
        "list"]
    now = fresh.service.now_ms()
    assert rows and int(rows[0][0]) == now - now % MIN
    assert rows[0][1:5] == [mark, mark, mark, mark] and float(rows[0][5]) == 0 == float(rows[0][6])
    ohlcv = fresh.client().fetch_ohlcv("SOL/USDT:USDT", "1d")
    assert ohlcv and ohlcv[-1][1] == float(mark) and ohlcv[-1][5] == 0


def test_complete_rows_and_quiet_minutes(fresh: Fresh) -> None:
    """#13 C5 and C3: the transaction log names the fill, the public trade id is the
    execution id, positions carry a break-even price; then minutes without trades still
    have candles, flat at the last close with volume 0."""
    ex = fresh.client()
    order = ex.create_order(SYMBOL, "market", "buy", 0.02)
    (fill,) = ex.private_get_v5_execution_list({"category": "linear",
                                                "orderId": order["id"]})["result"]["list"]
    log = ex.private_get_v5_account_transaction_log(
        {"accountType": "UNIFIED", "category": "linear"})["result"]["list"]
    (trade,) = [row for row in log if row["type"] == "TRADE"]
    assert (trade["side"], trade["qty"], trade["size"], trade["tradePrice"], trade["feeRate"],
            trade["orderId"], trade["tradeId"]) == (
        "Buy", "0.020", "0.020", fill["execPrice"], fill["feeRate"], order["id"],
        fill["execId"])
    assert trade["fee"] == fill["execFee"] and fill["feeRate"] == "0.00055"
    # The public trade id is the (taker's) execution id, as on Bybit.
    public = fresh.get("/v5/market/recent-trade", category="linear", symbol="BTCUSDT")["list"]
    assert public[0]["execId"] == fill["execId"]
    assert ex.fetch_trades(SYMBOL)[-1]["id"] == fill["execId"]
    # Break-even: (entry value + fees paid) / (qty x (1 - 0.055%)), to the tick.
    (position,) = ex.fetch_positions([SYMBOL])
    info = position["info"]
    entry_value = float(info["positionValue"]) - float(info["curRealisedPnl"])
    assert float(info["breakEvenPrice"]) == pytest.approx(entry_value / (0.02 * 0.99945),
                                                          abs=0.051)
    assert position["side"] == "long" and position["contracts"] == 0.02
    assert position["entryPrice"] == float(fill["execPrice"])
    assert position["leverage"] == 10 and position["hedged"] is False
    assert position["unrealizedPnl"] is None or isinstance(position["unrealizedPnl"], float)
    # ccxt's parse_position leaves marginMode None against Bybit too ("tradeMode was
    # deprecated"); a client reads it from the account: fetch_margin_mode.
    assert ex.fetch_margin_mode(SYMBOL)["marginMode"] == "cross"
    isolated = fresh.client()
    isolated.set_margin_mode("isolated", SYMBOL)
    assert isolated.fetch_margin_mode(SYMBOL)["marginMode"] == "isolated"
    isolated.create_order(SYMBOL, "market", "sell", 0.01)
    (short,) = isolated.fetch_positions([SYMBOL])
    assert short["side"] == "short" and short["contracts"] == 0.01
    assert short["liquidationPrice"] > short["entryPrice"]
    assert short["collateral"] and short["initialMargin"]
    assert 0 < float(short["info"]["breakEvenPrice"]) < short["entryPrice"]
    last_fill = isolated.fetch_my_trades(SYMBOL)[-1]["timestamp"]
    # Three quiet minutes later (only public calls from here: the signed ones would be
    # stale against the moved clock).
    traded_minute = last_fill - last_fill % MIN
    fresh.offset[0] += 3 * MIN
    rows = fresh.get("/v5/market/kline", category="linear", symbol="BTCUSDT", interval="1",
                     start=str(traded_minute))["list"]
    assert [int(r[0]) for r in rows][-4:] == [traded_minute + 3 * MIN, traded_minute + 2 * MIN,
                                              traded_minute + MIN, traded_minute]
    close = rows[-1][4]
    for row in rows[:-1]:
        assert row[1:5] == [close, close, close, close] and float(row[5]) == 0 == float(row[6])
    assert float(rows[-1][5]) > 0

"""ccxt, unchanged, sees a dated USDT future as Bybit's: `BTC/USDT:USDT-261225`, type future.

Its own server (the session's lists perpetuals only): the default table plus the bundled
BTCUSDT-25DEC26. ccxt builds the symbol from contractType LinearFutures and the
`yymmdd(deliveryTime)` suffix (next-mechanics §2.1, E7's rule for USDT futures).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import ccxt
import pytest

from perpx.api.app import create_app
from perpx.api.keys import KeyStore
from perpx.api.server import ServerThread
from perpx.instruments import FUTURES_TABLE, load_instruments
from perpx.service import ExchangeService
from perpx.store.history_sqlite import SqliteHistory
from perpx.store.journal import MemoryJournal

FUTURE = load_instruments(FUTURES_TABLE)[0]
SYMBOL = "BTC/USDT:USDT-261225"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, KeyStore]]:
    folder: Path = tmp_path_factory.mktemp("futures")
    keys = KeyStore(folder)
    service = ExchangeService([*load_instruments(), FUTURE], MemoryJournal(),
                              history=SqliteHistory(folder / "history.db"),
                              feed_interval_s=3600)
    server = ServerThread(create_app(service, keys, manage_service=True)).start()
    deadline = time.monotonic() + 10
    while service.engine.books["BTCUSDT"].best_ask() is None:  # the maker quotes
        assert time.monotonic() < deadline, "the market maker never quoted"
        time.sleep(0.05)
    yield server.url, keys
    server.stop()
    keys.close()


def test_load_markets_lists_the_dated_future(served: tuple[str, KeyStore]) -> None:
    url, keys = served
    key = keys.create(demo_funds="100000", note="ccxt")
    ex = ccxt.bybit({"apiKey": key.api_key, "secret": key.secret,
                     "urls": {"api": {"public": url, "private": url}}})
    markets = ex.load_markets()
    assert "BTC/USDT:USDT" in markets
    market = markets[SYMBOL]
    assert market["id"] == "BTCUSDT-25DEC26"
    assert (market["type"], market["future"], market["linear"]) == ("future", True, True)
    assert market["expiry"] == FUTURE.delivery_time_ms
    book = ex.fetch_order_book(SYMBOL)  # the maker quotes it around BTC's simulated index
    assert book["bids"] and book["bids"][0][0] > 10_000
    order = ex.create_order(SYMBOL, "limit", "buy", 0.01, book["bids"][0][0] - 100)
    assert [o["id"] for o in ex.fetch_open_orders(SYMBOL)] == [order["id"]]
    ex.cancel_order(order["id"], SYMBOL)
    assert ex.fetch_open_orders(SYMBOL) == []

"""USDC perpetuals over the API (next-mechanics §3.3): BTCPERP beside BTCUSDT on a live server.

The server lists what `perpx serve` lists (`served_instruments`: the default table and the
USDC perpetuals). ccxt's `load_markets` builds `BTC/USDC:USDC` from the instrument, trades it
and reads the USDC balance; pybit's `get_positions` shows `sessionAvgPrice` (filled for USDC,
"" for USDT). Last, the service clock is moved past a funding time: the session settlement
lands in `GET /v5/asset/settlement-record` and in the transaction log as SETTLEMENT.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import ccxt
import httpx
import pytest
from pybit.unified_trading import HTTP

from apisupport import Live, sign
from perpx.api.app import create_app
from perpx.api.keys import ApiKey, KeyStore
from perpx.api.server import ServerThread
from perpx.instruments import served_instruments
from perpx.service import ExchangeService
from perpx.store.history_sqlite import SqliteHistory
from perpx.store.journal import MemoryJournal

SYMBOL = "BTC/USDC:USDC"
HOUR_MS = 3_600_000


class Clock:
    """Wall time plus an offset a test may push forward (to reach a funding time)."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def __call__(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms


@pytest.fixture(scope="module")
def usdc_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Live, Clock]]:
    folder = tmp_path_factory.mktemp("perpx-usdc")
    keys = KeyStore(folder)
    alice = keys.create(demo_funds="100000", note="alice")
    clock = Clock()
    service = ExchangeService(served_instruments(), MemoryJournal(), clock=clock,
                              history=SqliteHistory(folder / "history.db"), feed_interval_s=3600)
    server = ServerThread(create_app(service, keys, manage_service=True)).start()
    deadline = time.monotonic() + 10
    while service.engine.books["BTCPERP"].best_ask() is None:  # the maker quotes BTCPERP too
        assert time.monotonic() < deadline, "the market maker never quoted BTCPERP"
        time.sleep(0.05)
    http = httpx.Client()
    yield Live(server.url, service, keys, alice, alice, alice, alice, alice, alice, http), clock
    http.close()
    server.stop()
    keys.close()


def call(live: Live, key: ApiKey, method: str, path: str, payload: str = "") -> Any:
    """A signed request stamped with the service's clock (which a test may have moved)."""
    timestamp = str(live.service.now_ms())
    headers = {"X-BAPI-API-KEY": key.api_key, "X-BAPI-TIMESTAMP": timestamp,
               "X-BAPI-RECV-WINDOW": "5000", "X-BAPI-SIGN": sign(key, timestamp, "5000", payload),
               "Content-Type": "application/json"}
    url = live.url + path + (f"?{payload}" if method == "GET" and payload else "")
    reply = httpx.request(method, url, headers=headers,
                          content=payload.encode() if method == "POST" else None)
    assert reply.status_code == 200, reply.text
    return reply.json()


def request(live: Live, key: ApiKey, method: str, path: str, payload: str = "") -> Any:
    """`call`, which must succeed; its result."""
    body = call(live, key, method, path, payload)
    assert body["retCode"] == 0, body
    return body["result"]


def funded(live: Live) -> ApiKey:
    """A new key with 100,000 USDT (demo funds) and 100,000 USDC (demo-apply-money)."""
    key = live.new_key()
    request(live, key, "GET", "/v5/account/wallet-balance", "accountType=UNIFIED")
    body = {"adjustType": 0, "utaDemoApplyMoney": [{"coin": "USDC", "amountStr": "100000"}]}
    request(live, key, "POST", "/v5/account/demo-apply-money", json.dumps(body))
    return key


def config(live: Live, key: ApiKey) -> dict[str, Any]:
    return {"apiKey": key.api_key, "secret": key.secret,
            "urls": {"api": {"public": live.url, "private": live.url}}}


def test_instruments_and_tickers_list_btcperp(usdc_live: tuple[Live, Clock]) -> None:
    live, _ = usdc_live
    reply = live.http.get(live.url + "/v5/market/instruments-info",
                          params={"category": "linear", "symbol": "BTCPERP"}).json()
    [item] = reply["result"]["list"]
    assert (item["displayName"], item["contractType"], item["quoteCoin"],
            item["settleCoin"]) == ("BTC-PERP", "LinearPerpetual", "USDC", "USDC")
    assert (item["priceFilter"]["tickSize"], item["lotSizeFilter"]["minOrderQty"],
            item["fundingInterval"]) == ("0.5", "0.001", 480)
    plain = live.http.get(live.url + "/v5/market/instruments-info",
                          params={"category": "linear", "symbol": "BTCUSDT"}).json()
    assert plain["result"]["list"][0]["displayName"] == ""
    ticker = live.http.get(live.url + "/v5/market/tickers",
                           params={"category": "linear", "symbol": "BTCPERP"}).json()
    [row] = ticker["result"]["list"]
    assert row["symbol"] == "BTCPERP" and float(row["markPrice"]) > 0


def test_ccxt_lists_trades_and_balances_btc_usdc(usdc_live: tuple[Live, Clock]) -> None:
    live, _ = usdc_live
    key = funded(live)
    ex = ccxt.bybit(config(live, key))
    markets = ex.load_markets()
    assert {SYMBOL, "BTC/USDT:USDT"} <= set(markets)
    market = markets[SYMBOL]
    assert (market["settle"], market["quote"], market["linear"]) == ("USDC", "USDC", True)
    assert market["precision"]["price"] == 0.5
    bought = ex.create_order(SYMBOL, "market", "buy", 0.01)
    filled = ex.fetch_order(bought["id"], SYMBOL, {"acknowledged": True})
    assert filled["status"] == "closed" and filled["filled"] == 0.01
    (position,) = ex.fetch_positions([SYMBOL])
    assert position["side"] == "long" and position["contracts"] == 0.01
    balance = ex.fetch_balance()
    assert balance["USDC"]["used"] > 0 and balance["USDT"]["total"] == 100000.0


def test_pybit_shows_the_session_average_only_for_usdc(usdc_live: tuple[Live, Clock]) -> None:
    live, _ = usdc_live
    key = funded(live)
    session = HTTP(api_key=key.api_key, api_secret=key.secret, recv_window=5000)
    session.endpoint = live.url  # type: ignore[attr-defined]
    for symbol in ("BTCPERP", "BTCUSDT"):
        placed = session.place_order(category="linear", symbol=symbol, side="Buy",
                                     orderType="Market", qty="0.01")
        assert placed["retCode"] == 0
    usdc = session.get_positions(category="linear", symbol="BTCPERP")["result"]["list"][0]
    assert usdc["sessionAvgPrice"] == usdc["avgPrice"] != ""
    usdt = session.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"][0]
    assert usdt["sessionAvgPrice"] == ""
    refused = call(live, key, "POST", "/v5/position/switch-mode",
                          json.dumps({"category": "linear", "symbol": "BTCPERP", "mode": 3}))
    assert refused["retCode"] == 110029


def test_a_session_settlement_is_in_the_settlement_record(
        usdc_live: tuple[Live, Clock]) -> None:
    """Runs last: it moves the service clock past the next funding time for good."""
    live, clock = usdc_live
    key = funded(live)
    request(live, key, "POST", "/v5/order/create", json.dumps(
        {"category": "linear", "symbol": "BTCPERP", "side": "Buy", "orderType": "Market",
         "qty": "0.02"}))
    wallet = request(live, key, "GET", "/v5/account/wallet-balance",
                     "accountType=UNIFIED&coin=USDC")
    [coin] = wallet["list"][0]["coin"]
    assert coin["coin"] == "USDC"
    now = live.service.now_ms()
    clock.offset_ms += (now // (8 * HOUR_MS) + 1) * 8 * HOUR_MS - now + 1_000
    # Any command now settles the due funding time first: funding, then the session.
    request(live, key, "POST", "/v5/position/set-leverage", json.dumps(
        {"category": "linear", "symbol": "BTCPERP", "buyLeverage": "5", "sellLeverage": "5"}))
    page = request(live, key, "GET", "/v5/asset/settlement-record",
                   "category=linear&symbol=BTCPERP")
    assert page["category"] == "linear" and page["nextPageCursor"] == ""
    [row] = page["list"]
    assert set(row) == {"symbol", "side", "size", "sessionAvgPrice", "markPrice",
                        "realisedPnl", "createdTime"}
    assert (row["symbol"], row["side"], row["size"]) == ("BTCPERP", "Buy", "0.020")
    # U5's relation: sessionAvgPrice = markPrice − realisedPnl / size for a long.
    assert Decimal(row["sessionAvgPrice"]) == Decimal(row["markPrice"]) - (
        Decimal(row["realisedPnl"]) / Decimal(row["size"]))
    log = request(live, key, "GET", "/v5/account/transaction-log",
                  "accountType=UNIFIED&category=linear&currency=USDC&type=SETTLEMENT")
    assert {line["symbol"] for line in log["list"]} == {"BTCPERP"}
    limited = request(live, key, "GET", "/v5/asset/settlement-record",
                      "category=linear&limit=1")
    assert len(limited["list"]) == 1
    too_many = call(live, key, "GET", "/v5/asset/settlement-record",
                           "category=linear&limit=51")
    assert too_many["retCode"] == 10001

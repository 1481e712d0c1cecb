"""Clients read delivery and settlement records: ccxt and pybit, unchanged, on a live server.

The server lists what `perpx serve` lists plus a USDT dated future whose delivery time is
half a minute away (named for its delivery day, as Bybit's are: BTCUSDT-{DDMMMYY}). A ccxt
key buys the future and BTCPERP; then the service clock is pushed past the next 8-hour
funding time, which is past the delivery time too, so the next command delivers the future
(then funds and settles BTCPERP's session). Afterwards:

- ccxt `fetch_settlement_history` (Bybit's /v5/market/delivery-price) gives the delivery
  price, `fetch_my_settlement_history` (/v5/asset/delivery-record) the key's delivered
  position; ccxt maps no unified method to USDC session settlements, so its implicit
  `private_get_v5_asset_settlement_record` reads /v5/asset/settlement-record;
- pybit reads the same three: `get_option_delivery_price`, `get_option_delivery_record`
  (pybit's names for /v5/market/delivery-price and /v5/asset/delivery-record) and
  `get_usdc_contract_settlement`;
- the future's position is gone and a new order on it is refused (110074).

Before that, ccxt.pro's `watch_balance` shows the USDC row of the `wallet` topic.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import ccxt
import ccxt.pro
import pybit._helpers
import pytest
from pybit.unified_trading import HTTP

from perpx.api.app import create_app
from perpx.api.keys import ApiKey, KeyStore
from perpx.api.server import ServerThread
from perpx.core.instruments import InstrumentSpec, dated_symbol
from perpx.instruments import FUTURES_TABLE, load_instruments, served_instruments
from perpx.service import ExchangeService
from perpx.store.history_sqlite import SqliteHistory
from perpx.store.journal import MemoryJournal

SESSION_MS = 8 * 3_600_000
SOON_MS = 30_000


class Clock:
    """Wall time plus an offset a test may push forward (past a delivery and a funding time)."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def __call__(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms


def near_future(now_ms: int) -> InstrumentSpec:
    """BTCUSDT-25DEC26's terms, delivering `SOON_MS` from now under its day's Bybit name."""
    bundled = load_instruments(FUTURES_TABLE)[0]
    delivery = now_ms + SOON_MS
    return dataclasses.replace(
        bundled, symbol=dated_symbol("BTC", "USDT", "USDT", delivery),
        delivery_time_ms=delivery, launch_time_ms=now_ms - SESSION_MS)


class Served:
    def __init__(self, url: str, service: ExchangeService, keys: KeyStore, clock: Clock,
                 future: InstrumentSpec) -> None:
        self.url, self.service, self.keys, self.clock, self.future = (
            url, service, keys, clock, future)

    def ccxt(self, key: ApiKey) -> ccxt.bybit:
        return ccxt.bybit({"apiKey": key.api_key, "secret": key.secret,
                           "urls": {"api": {"public": self.url, "private": self.url}}})

    def pybit(self, key: ApiKey) -> HTTP:
        session = HTTP(api_key=key.api_key, api_secret=key.secret, recv_window=5000)
        session.endpoint = self.url  # type: ignore[attr-defined]
        return session


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("perpx-settlements")
    keys = KeyStore(folder)
    clock = Clock()
    future = near_future(clock())
    service = ExchangeService([*served_instruments(), future], MemoryJournal(), clock=clock,
                              history=SqliteHistory(folder / "history.db"), feed_interval_s=3600)
    server = ServerThread(create_app(service, keys, manage_service=True)).start()
    deadline = time.monotonic() + 10
    while any(service.engine.books[symbol].best_ask() is None
              for symbol in (future.symbol, "BTCPERP")):  # the maker quotes both
        assert time.monotonic() < deadline, "the market maker never quoted"
        time.sleep(0.05)
    yield Served(server.url, service, keys, clock, future)
    server.stop()
    keys.close()


def test_the_wallet_topic_carries_the_usdc_row(served: Served) -> None:
    """ccxt.pro's `watch_balance` reads the USDC coin row of the `wallet` topic after a
    BTCPERP fill (the wallet object is the REST one: a row per settle coin held)."""
    key = served.keys.create(demo_funds="100000", note="usdc-wallet")
    ws = served.url.replace("http://", "ws://")

    async def run() -> dict[str, Any]:
        exchange = ccxt.pro.bybit({
            "apiKey": key.api_key, "secret": key.secret,
            "urls": {"api": {"public": served.url, "private": served.url,
                             "ws": {"public": {"linear": ws + "/v5/public/linear"},
                                    "private": {"contract": ws + "/v5/private",
                                                "spot": {"unified": ws + "/v5/private"},
                                                "trade": ws + "/v5/trade"}}}}})
        try:
            await exchange.load_markets()
            usdc = {"adjustType": 0,
                    "utaDemoApplyMoney": [{"coin": "USDC", "amountStr": "100000"}]}
            await exchange.private_post_v5_account_demo_apply_money(usdc)
            balance = asyncio.ensure_future(exchange.watch_balance())
            await asyncio.sleep(0.3)
            await exchange.create_order("BTC/USDC:USDC", "market", "buy", 0.01)
            wallet: dict[str, Any] = await asyncio.wait_for(balance, 10)
            return wallet
        finally:
            await exchange.close()

    wallet = asyncio.run(run())
    rows = {row["coin"]: row for row in wallet["info"][0]["coin"]}
    assert {"USDT", "USDC"} <= set(rows)
    row = rows["USDC"]
    # The fill's taker fee came out of the USDC wallet; its position margin is in USDC.
    assert Decimal(row["walletBalance"]) < 100_000
    assert Decimal(row["totalPositionIM"]) > 0
    assert Decimal(rows["USDT"]["walletBalance"]) == 100_000
    assert 0 < wallet["USDC"]["total"] < 100_000


def test_delivery_and_session_records_through_ccxt_and_pybit(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    future = served.future
    key = served.keys.create(demo_funds="100000", note="settlements")
    ex = served.ccxt(key)
    markets = ex.load_markets()
    [symbol] = [name for name, market in markets.items() if market["id"] == future.symbol]
    assert markets[symbol]["expiry"] == future.delivery_time_ms
    ex.create_order(symbol, "market", "buy", 0.01)
    (held,) = ex.fetch_positions([symbol])
    assert held["contracts"] == 0.01
    entry = Decimal(held["info"]["avgPrice"])
    usdc = {"adjustType": 0, "utaDemoApplyMoney": [{"coin": "USDC", "amountStr": "100000"}]}
    assert ex.private_post_v5_account_demo_apply_money(usdc)["retCode"] == 0
    ex.create_order("BTC/USDC:USDC", "market", "buy", 0.02)
    assert ex.fetch_settlement_history(symbol) == []  # not delivered yet

    # Past the delivery time and the next funding (session) time: the next command delivers
    # the future, then funds and settles the session.
    now = served.service.now_ms()
    assert now < future.delivery_time_ms
    served.clock.offset_ms += (now // SESSION_MS + 1) * SESSION_MS - now + 1_000
    # The clients stamp requests with their own clock: move theirs on with the service's.
    ex.options["timeDifference"] = -served.clock.offset_ms
    monkeypatch.setattr(pybit._helpers, "generate_timestamp", served.clock)
    ex.set_leverage(5, "BTC/USDC:USDC")
    assert served.service.engine.delivery.clocks[future.symbol].price_e8

    [price] = ex.fetch_settlement_history(symbol)
    assert (price["symbol"], price["timestamp"]) == (symbol, future.delivery_time_ms)
    delivery_price = Decimal(price["info"]["deliveryPrice"])
    assert delivery_price > 10_000
    [mine] = ex.fetch_my_settlement_history(symbol)
    assert (mine["symbol"], mine["timestamp"]) == (symbol, future.delivery_time_ms)
    assert Decimal(mine["info"]["deliveryPrice"]) == delivery_price
    record = mine["info"]
    assert (record["side"], record["position"], record["strike"]) == ("Buy", "0.010", "")
    assert Decimal(record["entryPrice"]) == entry
    # §2.5: P&L q(DP - EP) rounded toward the exchange, less the fee value(DP) x 0.05%
    # truncated; to the atom (8 decimals), as the record prints them.
    atom = Decimal("0.00000001")
    value = Decimal("0.01") * delivery_price
    fee = (value * Decimal("0.0005")).quantize(atom, rounding="ROUND_DOWN")
    pnl = (value - Decimal("0.01") * entry).quantize(atom, rounding="ROUND_DOWN")
    assert Decimal(record["fee"]) == fee
    assert Decimal(record["deliveryRpl"]) == pnl - fee
    # ccxt maps no unified call to USDC session settlements: its implicit method does.
    sessions = ex.private_get_v5_asset_settlement_record(
        {"category": "linear", "symbol": "BTCPERP"})
    [session] = sessions["result"]["list"]
    assert (session["symbol"], session["side"], session["size"]) == ("BTCPERP", "Buy", "0.020")

    # The future is gone: no position, and an order is refused as Bybit does (110074).
    assert not [p for p in ex.fetch_positions([symbol]) if p["contracts"]]
    with pytest.raises(ccxt.BaseError, match="110074"):
        ex.create_order(symbol, "market", "buy", 0.01)

    # pybit, for the same three records.
    session_client = served.pybit(key)
    prices = session_client.get_option_delivery_price(category="linear",
                                                      symbol=future.symbol)["result"]["list"]
    assert [(p["symbol"], Decimal(p["deliveryPrice"])) for p in prices] == [
        (future.symbol, delivery_price)]
    records = session_client.get_option_delivery_record(category="linear")["result"]["list"]
    assert records == [record]
    settled = session_client.get_usdc_contract_settlement(category="linear")["result"]["list"]
    assert settled == [session]

"""Inverse perpetuals (BTCUSD, ETHUSD) on every surface: REST and streams with `category=inverse`.

The real ccxt (sync and pro) and pybit clients, unchanged but for their URLs, trade the
inverse contract the live server lists beside the linear ones (next-mechanics §1.7): quantity
in USD contracts, values, fees, P&L and margin in BTC, the wallet's BTC row, totals in USD.
"""

from __future__ import annotations

import asyncio
import json
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

import ccxt
import ccxt.pro
import pytest
from pybit.exceptions import InvalidRequestError
from pybit.unified_trading import HTTP
from websockets.sync.client import connect

from apisupport import Live, signed
from perpx.api.keys import ApiKey

INVERSE = "BTC/USD:BTC"
SAT = Decimal("0.00000001")


def config(live: Live, key: ApiKey) -> dict[str, Any]:
    return {"apiKey": key.api_key, "secret": key.secret,
            "urls": {"api": {"public": live.url, "private": live.url}}}


def btc_key(live: Live, btc: str = "2") -> ApiKey:
    """A new key with its demo USDT, and `btc` BTC applied for through demo-apply-money."""
    key = live.new_key()
    body = json.dumps({"adjustType": 0, "utaDemoApplyMoney": [{"coin": "BTC", "amountStr": btc}]})
    assert signed(live, key, "POST", "/v5/account/demo-apply-money", body)["retCode"] == 0
    return key


def get(live: Live, path: str, **params: str) -> Any:
    reply = live.http.get(live.url + path, params=params).json()
    assert reply["retCode"] == 0, reply
    return reply["result"]


def coin_value(contracts: str, price: str) -> Decimal:
    """C / P to 8 dp, half up: what a fill of C contracts at P is worth in coin (§1.2, N1)."""
    return (Decimal(contracts) / Decimal(price)).quantize(SAT, ROUND_HALF_UP)


def test_market_endpoints_answer_inverse(live: Live) -> None:
    listed = get(live, "/v5/market/instruments-info", category="inverse")
    assert listed["category"] == "inverse"
    assert [i["symbol"] for i in listed["list"]] == ["BTCUSD", "ETHUSD"]
    btc = listed["list"][0]
    assert (btc["contractType"], btc["baseCoin"], btc["quoteCoin"], btc["settleCoin"]) == (
        "InversePerpetual", "BTC", "USD", "BTC")
    assert btc["priceFilter"]["tickSize"] == "0.10"
    assert (btc["lotSizeFilter"]["qtyStep"], btc["lotSizeFilter"]["minOrderQty"],
            btc["lotSizeFilter"]["maxOrderQty"], btc["lotSizeFilter"]["maxMktOrderQty"]) == (
        "1", "1", "25000000", "5000000")
    assert (btc["upperFundingRate"], btc["fundingInterval"]) == ("0.005", 480)
    linear = get(live, "/v5/market/instruments-info", category="linear")["list"]
    assert {i["contractType"] for i in linear} == {"LinearPerpetual"}
    assert "BTCUSD" not in {i["symbol"] for i in linear}

    tiers = get(live, "/v5/market/risk-limit", category="inverse", symbol="BTCUSD")["list"]
    assert [(t["riskLimitValue"], t["maintenanceMargin"], t["mmDeduction"]) for t in tiers] == [
        ("150", "0.005", ""), ("300", "0.01", "0.75")]  # in BTC
    (ticker,) = get(live, "/v5/market/tickers", category="inverse", symbol="BTCUSD")["list"]
    assert ticker["symbol"] == "BTCUSD" and Decimal(ticker["markPrice"]) > 0
    assert ticker["fundingCap"] == "0.005"
    # One BTC index for the venue: the demo feed walks BTCUSD with BTCUSDT's seed and tick.
    (linear_ticker,) = get(live, "/v5/market/tickers", category="linear",
                           symbol="BTCUSDT")["list"]
    assert ticker["indexPrice"] == linear_ticker["indexPrice"]
    book = get(live, "/v5/market/orderbook", category="inverse", symbol="BTCUSD")
    assert book["s"] == "BTCUSD" and book["b"] and book["a"]  # the market maker quotes it
    assert book["b"][0][1].isdigit()  # whole contracts
    for path in ("/v5/market/mark-price-kline", "/v5/market/index-price-kline"):
        candles = get(live, path, category="inverse", symbol="BTCUSD", interval="1")
        assert candles["category"] == "inverse" and candles["list"]
    assert get(live, "/v5/market/funding/history", category="inverse",
               symbol="BTCUSD")["category"] == "inverse"
    # The other categories are still an empty list.
    assert get(live, "/v5/market/tickers", category="option")["list"] == []


def test_a_symbol_of_the_other_category_is_10001(live: Live) -> None:
    key = btc_key(live)
    for category, symbol in (("inverse", "BTCUSDT"), ("linear", "BTCUSD")):
        reply = live.http.get(live.url + "/v5/market/tickers",
                              params={"category": category, "symbol": symbol}).json()
        assert reply["retCode"] == 10001, reply
        body = json.dumps({"category": category, "symbol": symbol, "side": "Buy",
                           "orderType": "Market", "qty": "1"})
        refused = signed(live, key, "POST", "/v5/order/create", body)
        assert (refused["retCode"], refused["retMsg"]) == (10001, "params error: symbol invalid")
        listed = signed(live, key, "GET", "/v5/position/list",
                        f"category={category}&symbol={symbol}")
        assert listed["retCode"] == 10001
    hedge = json.dumps({"category": "inverse", "symbol": "BTCUSD", "mode": 3})
    assert signed(live, key, "POST", "/v5/position/switch-mode", hedge)["retCode"] == 110029


def test_ccxt_trades_the_inverse_perpetual(live: Live) -> None:
    key = btc_key(live)
    ex = ccxt.bybit(config(live, key))
    markets = ex.load_markets()
    market = markets[INVERSE]
    assert market["inverse"] and not market["linear"] and market["contractSize"] == 1
    assert (market["base"], market["quote"], market["settle"]) == ("BTC", "USD", "BTC")
    assert {"BTC/USDT:USDT", "ETH/USD:ETH"} <= set(markets)
    assert ex.fetch_balance()["BTC"]["total"] == 2.0

    bought = ex.create_order(INVERSE, "market", "buy", 1000)
    filled = ex.fetch_order(bought["id"], INVERSE, {"acknowledged": True})
    assert filled["status"] == "closed" and filled["filled"] == 1000
    (position,) = ex.fetch_positions([INVERSE])
    assert position["side"] == "long" and position["contracts"] == 1000
    assert position["contractSize"] == 1
    trades = ex.fetch_my_trades(INVERSE)
    assert sum(t["amount"] for t in trades) == 1000
    assert {t["fee"]["currency"] for t in trades} == {"BTC"}
    fees = sum(Decimal(t["info"]["execFee"]) for t in trades)
    for trade in trades:  # execValue = C / execPrice in BTC
        info = trade["info"]
        assert Decimal(info["execValue"]) == coin_value(info["execQty"], info["execPrice"])
        assert info["category"] == "inverse" and info["feeCurrency"] == "BTC"
    balance = ex.fetch_balance()
    assert Decimal(str(balance["BTC"]["total"])) == Decimal(2) - fees
    assert balance["BTC"]["used"] > 0 and balance["USDT"]["total"] == 100000.0
    rates = ex.fetch_funding_rate_history(INVERSE)
    assert isinstance(rates, list)

    closed = ex.create_order(INVERSE, "market", "sell", 1000, params={"reduceOnly": True})
    assert ex.fetch_order(closed["id"], INVERSE, {"acknowledged": True})["status"] == "closed"
    assert ex.fetch_positions([INVERSE])[0]["contracts"] in (0, None)
    (pnl,) = ex.fetch_positions_history([INVERSE])
    assert pnl["info"]["orderId"] == closed["id"]


def test_rest_rows_are_in_coin_at_8_decimals(live: Live) -> None:
    key = btc_key(live)
    body = json.dumps({"category": "inverse", "symbol": "BTCUSD", "side": "Sell",
                       "orderType": "Market", "qty": "300"})
    assert signed(live, key, "POST", "/v5/order/create", body)["retCode"] == 0
    (row,) = signed(live, key, "GET", "/v5/position/list",
                    "category=inverse&symbol=BTCUSD")["result"]["list"]
    assert (row["symbol"], row["side"], row["size"]) == ("BTCUSD", "Sell", "300")
    value = Decimal(row["positionValue"])
    assert value == value.quantize(SAT) and value > 0  # the entry value in BTC, 8 dp
    # avgPrice is the harmonic mean: C / entry value (I10: 300 / 0.01092319 = 27,464.50441675).
    assert Decimal(row["avgPrice"]) == (Decimal(300) / value).quantize(
        Decimal("0.000001"), ROUND_FLOOR)
    mark = Decimal(row["markPrice"])
    exact = Decimal(300) / mark - value  # a short gains as the coin value falls
    assert Decimal(row["unrealisedPnl"]) == exact.quantize(SAT, ROUND_FLOOR)
    for name in ("positionIM", "positionMM"):
        amount = Decimal(row[name])
        assert 0 < amount < value and amount == amount.quantize(SAT)
    # A listing without a symbol: the inverse positions only (ccxt.pro's watch_positions).
    listed = signed(live, key, "GET", "/v5/position/list", "category=inverse&limit=200")
    assert [r["symbol"] for r in listed["result"]["list"]] == ["BTCUSD"]
    linear = signed(live, key, "GET", "/v5/position/list", "category=linear&settleCoin=USDT")
    assert linear["result"]["list"] == []

    (execution,) = signed(live, key, "GET", "/v5/execution/list",
                          "category=inverse")["result"]["list"]
    assert execution["execValue"] == row["positionValue"]
    assert signed(live, key, "GET", "/v5/execution/list", "category=linear")["result"][
        "list"] == []
    (order,) = signed(live, key, "GET", "/v5/order/history", "category=inverse")["result"][
        "list"]
    assert order["category"] == "inverse" and order["cumExecValue"] == row["positionValue"]
    assert order["cumFeeDetail"] == {"BTC": execution["execFee"]}

    log = signed(live, key, "GET", "/v5/account/transaction-log",
                 "category=inverse")["result"]["list"]
    assert {r["currency"] for r in log} == {"BTC"} and {r["type"] for r in log} >= {"TRADE"}
    (trade_row,) = [r for r in log if r["type"] == "TRADE"]
    assert (trade_row["symbol"], trade_row["category"], trade_row["qty"], trade_row["size"]) == (
        "BTCUSD", "inverse", "300", "-300")
    usdt_log = signed(live, key, "GET", "/v5/account/transaction-log",
                      "category=linear")["result"]["list"]
    assert {r["currency"] for r in usdt_log} <= {"USDT"}

    wallet = signed(live, key, "GET", "/v5/account/wallet-balance",
                    "accountType=UNIFIED")["result"]["list"][0]
    rows = {c["coin"]: c for c in wallet["coin"]}
    btc = rows["BTC"]
    assert Decimal(btc["walletBalance"]) == Decimal(2) - Decimal(execution["execFee"])
    assert btc["unrealisedPnl"] == row["unrealisedPnl"]
    assert btc["totalPositionIM"] == row["positionIM"]
    # Totals in USD: USDT at 1, BTC at the venue's BTCUSD index (each floored to 8 dp).
    (ticker,) = get(live, "/v5/market/tickers", category="inverse", symbol="BTCUSD")["list"]
    index = Decimal(ticker["indexPrice"])
    usd = (Decimal(btc["walletBalance"]) * index).quantize(SAT, ROUND_FLOOR)
    assert Decimal(wallet["totalWalletBalance"]) == Decimal(rows["USDT"]["walletBalance"]) + usd
    assert Decimal(btc["usdValue"]) == (Decimal(btc["equity"]) * index).quantize(SAT,
                                                                                 ROUND_FLOOR)
    only_btc = signed(live, key, "GET", "/v5/account/wallet-balance",
                      "accountType=UNIFIED&coin=BTC")["result"]["list"][0]
    assert [c["coin"] for c in only_btc["coin"]] == ["BTC"]

    (ticker,) = get(live, "/v5/market/tickers", category="inverse", symbol="BTCUSD")["list"]
    assert int(ticker["volume24h"]) >= 300  # contracts
    assert Decimal(ticker["turnover24h"]) >= Decimal(row["positionValue"])  # BTC
    assert int(ticker["openInterest"]) >= 300
    candles = get(live, "/v5/market/kline", category="inverse", symbol="BTCUSD",
                  interval="1")["list"]
    assert Decimal(candles[0][6]) <= Decimal(ticker["turnover24h"])  # turnover in BTC
    trades = get(live, "/v5/market/recent-trade", category="inverse", symbol="BTCUSD")["list"]
    assert trades and trades[0]["symbol"] == "BTCUSD"


def test_demo_money_credits_btc_within_bybits_cap(live: Live) -> None:
    key = live.new_key()
    too_much = json.dumps({"adjustType": 0,
                           "utaDemoApplyMoney": [{"coin": "BTC", "amountStr": "16"}]})
    assert signed(live, key, "POST", "/v5/account/demo-apply-money", too_much)["retCode"] == 10001
    unknown = json.dumps({"adjustType": 0,
                          "utaDemoApplyMoney": [{"coin": "XRP", "amountStr": "1"}]})
    assert signed(live, key, "POST", "/v5/account/demo-apply-money", unknown)["retCode"] == 10001
    eth = json.dumps({"adjustType": 0, "utaDemoApplyMoney": [{"coin": "ETH", "amountStr": "3"}]})
    assert signed(live, key, "POST", "/v5/account/demo-apply-money", eth)["retCode"] == 0
    wallet = signed(live, key, "GET", "/v5/account/wallet-balance",
                    "accountType=UNIFIED&coin=ETH")["result"]["list"][0]
    assert wallet["coin"][0]["walletBalance"] == "3"


def test_pybit_trades_inverse(live: Live) -> None:
    key = btc_key(live)
    session = HTTP(api_key=key.api_key, api_secret=key.secret, recv_window=5000)
    session.endpoint = live.url
    placed = session.place_order(category="inverse", symbol="BTCUSD", side="Buy",
                                 orderType="Market", qty="100", orderLinkId="pybit-inv")
    assert placed["retCode"] == 0 and placed["result"]["orderLinkId"] == "pybit-inv"
    (position,) = session.get_positions(category="inverse", symbol="BTCUSD")["result"]["list"]
    assert (position["side"], position["size"]) == ("Buy", "100")
    executions = session.get_executions(category="inverse", symbol="BTCUSD")["result"]["list"]
    assert [e["feeCurrency"] for e in executions] == ["BTC"] * len(executions)
    wallet = session.get_wallet_balance(accountType="UNIFIED", coin="BTC")["result"]["list"][0]
    assert Decimal(wallet["coin"][0]["walletBalance"]) < 2
    with pytest.raises(InvalidRequestError) as refused:
        session.place_order(category="inverse", symbol="BTCUSDT", side="Buy",
                            orderType="Market", qty="1")
    assert refused.value.status_code == 10001

    bid = Decimal(session.get_orderbook(category="inverse", symbol="BTCUSD")["result"]["b"][0][0])
    resting = session.place_order(category="inverse", symbol="BTCUSD", side="Buy",
                                  orderType="Limit", qty="50", price=str(bid - 100))
    order_id = resting["result"]["orderId"]
    session.amend_order(category="inverse", symbol="BTCUSD", orderId=order_id, qty="60",
                        price=str(bid - 120))
    (open_order,) = session.get_open_orders(category="inverse", symbol="BTCUSD")["result"][
        "list"]
    assert (open_order["qty"], open_order["price"]) == ("60", f"{bid - 120:.2f}")
    # An order's value counts against the trader: C / P in BTC, rounded up.
    assert Decimal(open_order["leavesValue"]) == (Decimal(60) / (bid - 120)).quantize(
        SAT, ROUND_CEILING)
    assert session.get_open_orders(category="linear", settleCoin="USDT")["result"][
        "list"] == []
    session.cancel_order(category="inverse", symbol="BTCUSD", orderId=order_id)
    assert session.get_open_orders(category="inverse", symbol="BTCUSD")["result"]["list"] == []
    history = session.get_order_history(category="inverse", symbol="BTCUSD")["result"]["list"]
    assert {o["orderStatus"] for o in history} == {"Filled", "Cancelled"}


def test_public_inverse_stream_serves_inverse_symbols_only(live: Live) -> None:
    url = live.url.replace("http://", "ws://") + "/v5/public/inverse"
    with connect(url) as ws:
        ws.send(json.dumps({"op": "subscribe", "args": ["tickers.BTCUSDT"]}))
        refused = json.loads(ws.recv(timeout=5))
        assert refused["success"] is False and "tickers.BTCUSDT" in refused["ret_msg"]
        ws.send(json.dumps({"op": "subscribe", "args": ["tickers.BTCUSD",
                                                        "orderbook.50.BTCUSD"]}))
        assert json.loads(ws.recv(timeout=5))["success"] is True
        topics = {json.loads(ws.recv(timeout=5))["topic"] for _ in range(2)}
        assert topics == {"tickers.BTCUSD", "orderbook.50.BTCUSD"}
    with connect(live.url.replace("http://", "ws://") + "/v5/public/linear") as ws:
        ws.send(json.dumps({"op": "subscribe", "args": ["tickers.BTCUSD"]}))
        assert json.loads(ws.recv(timeout=5))["success"] is False


def test_ccxt_pro_watches_inverse(live: Live) -> None:
    key = btc_key(live)
    ws = live.url.replace("http://", "ws://")

    async def run() -> None:
        exchange = ccxt.pro.bybit({
            **config(live, key),
            "urls": {"api": {"public": live.url, "private": live.url,
                             "ws": {"public": {"linear": ws + "/v5/public/linear",
                                               "inverse": ws + "/v5/public/inverse"},
                                    "private": {"contract": ws + "/v5/private",
                                                "spot": {"unified": ws + "/v5/private"},
                                                "trade": ws + "/v5/trade"}}}}})
        try:
            await exchange.load_markets()
            ticker = await exchange.watch_ticker(INVERSE)
            assert ticker["symbol"] == INVERSE and ticker["markPrice"] > 0
            book = await exchange.watch_order_book(INVERSE)
            assert book["bids"] and book["asks"]
            assert await exchange.watch_positions([INVERSE]) == []  # the REST snapshot
            watching = asyncio.ensure_future(exchange.watch_positions([INVERSE]))
            await asyncio.sleep(0.3)
            await exchange.create_order(INVERSE, "market", "buy", 500)
            positions = await asyncio.wait_for(watching, 10)
            assert positions[-1]["contracts"] == 500 and positions[-1]["side"] == "long"
            assert positions[-1]["info"]["category"] == "inverse"
        finally:
            await exchange.close()

    asyncio.run(run())


def test_private_streams_carry_inverse_rows(live: Live) -> None:
    key = btc_key(live)
    ws = live.url.replace("http://", "ws://")

    async def run() -> None:
        exchange = ccxt.pro.bybit({
            **config(live, key),
            "urls": {"api": {"public": live.url, "private": live.url,
                             "ws": {"public": {"inverse": ws + "/v5/public/inverse"},
                                    "private": {"contract": ws + "/v5/private",
                                                "spot": {"unified": ws + "/v5/private"},
                                                "trade": ws + "/v5/trade"}}}}})
        try:
            await exchange.load_markets()
            trades = asyncio.ensure_future(exchange.watch_my_trades(INVERSE))
            orders = asyncio.ensure_future(exchange.watch_orders(INVERSE))
            balance = asyncio.ensure_future(exchange.watch_balance())
            await asyncio.sleep(0.3)
            await exchange.create_order(INVERSE, "market", "sell", 700)
            (trade, *_) = await asyncio.wait_for(trades, 10)
            assert trade["amount"] == 700 and trade["fee"]["currency"] == "BTC"
            info = trade["info"]
            assert info["category"] == "inverse"
            assert Decimal(info["execValue"]) == coin_value(info["execQty"], info["execPrice"])
            (order, *_) = await asyncio.wait_for(orders, 10)
            assert order["info"]["category"] == "inverse" and order["amount"] == 700
            wallet = await asyncio.wait_for(balance, 10)
            assert 0 < wallet["BTC"]["total"] < 2
            rows = {row["coin"]: row for row in wallet["info"][0]["coin"]}
            assert Decimal(rows["BTC"]["totalPositionIM"]) > 0  # the short's margin, in BTC
        finally:
            await exchange.close()

    asyncio.run(run())

"""Conditional orders, TP/SL, trailing stops and close-on-trigger through the real clients.

A server of its own, without the market maker: bob's key quotes a book around 65,000, and the
tests move the mark price through a test-only route (the feed sleeps), so every trigger here
fires because the test moved a price, never by chance.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import ccxt
import pybit.unified_trading as ut
import pytest
from pybit.exceptions import InvalidRequestError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from perpx.api.app import create_app
from perpx.api.keys import ApiKey, KeyStore
from perpx.api.server import ServerThread
from perpx.convert import to_ticks
from perpx.core.commands import MarkPrice
from perpx.instruments import load_instruments
from perpx.service import ExchangeService
from perpx.store.history_sqlite import SqliteHistory
from perpx.store.journal import MemoryJournal
from support.inbox import Inbox

SYMBOL = "BTC/USDT:USDT"
MID = 65000


class Stage:
    """The server, its service and keys, and a way to move the mark price."""

    def __init__(self, url: str, service: ExchangeService, keys: KeyStore) -> None:
        self.url = url
        self.service = service
        self.keys = keys

    def key(self, funds: str = "100000") -> ApiKey:
        return self.keys.create(demo_funds=funds)

    def pybit(self, key: ApiKey) -> ut.HTTP:
        session = ut.HTTP(api_key=key.api_key, api_secret=key.secret, recv_window=5000)
        session.endpoint = self.url
        return session

    def ccxt(self, key: ApiKey) -> Any:
        ex = ccxt.bybit({"apiKey": key.api_key, "secret": key.secret,
                         "urls": {"api": {"public": self.url, "private": self.url}}})
        ex.load_markets()
        return ex

    def mark(self, price: str) -> None:
        import httpx
        assert httpx.post(f"{self.url}/test/mark", json={"price": price}).json() == {"ok": 1}


def quote(session: ut.HTTP) -> None:
    """One BTC every 10 USDT for 100 USDT each side of MID, on the caller's account."""
    session.cancel_all_orders(category="linear", symbol="BTCUSDT")
    for step in range(1, 11):
        for side, price in (("Sell", MID + 10 * step), ("Buy", MID - 10 * step)):
            session.place_order(category="linear", symbol="BTCUSDT", side=side,
                                orderType="Limit", qty="1", price=str(price))


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    folder = tmp_path_factory.mktemp("stops")
    keys = KeyStore(folder)
    service = ExchangeService(load_instruments(), MemoryJournal(), maker=False,
                              history=SqliteHistory(folder / "history.db"), feed_interval_s=3600)
    spec = service.specs["BTCUSDT"]

    async def set_mark(request: Request) -> JSONResponse:
        body = await request.json()
        await service.submit(MarkPrice(0, 0, "BTCUSDT", to_ticks(spec, body["price"])))
        return JSONResponse({"ok": 1})

    app = create_app(service, keys, manage_service=True,
                     extra_routes=[Route("/test/mark", set_mark, methods=["POST"])])
    server = ServerThread(app).start()
    stage = Stage(server.url, service, keys)
    stage.mark(str(MID))
    stage.maker = stage.pybit(stage.key("10000000"))  # type: ignore[attr-defined]
    try:
        yield stage
    finally:
        server.stop()
        keys.close()


@pytest.fixture
def book(stage: Stage) -> Stage:
    """A fresh book around MID and the mark at MID."""
    stage.mark(str(MID))
    quote(stage.maker)  # type: ignore[attr-defined]
    return stage


def open_orders(s: ut.HTTP, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = s.get_open_orders(category="linear", symbol="BTCUSDT",
                                                   **params)["result"]["list"]
    return rows


def by_id(s: ut.HTTP, order_id: str) -> dict[str, Any]:
    (row,) = s.get_open_orders(category="linear", symbol="BTCUSDT",
                               orderId=order_id)["result"]["list"]
    return row


def test_pybit_conditional_order_lifecycle(book: Stage) -> None:
    s = book.pybit(book.key())
    placed = s.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market",
                           qty="0.01", triggerPrice="65100", triggerDirection=1,
                           triggerBy="MarkPrice", orderLinkId="cond-1",
                           takeProfit="67000", stopLoss="64000")["result"]
    (row,) = open_orders(s, orderFilter="StopOrder")
    assert row["orderId"] == placed["orderId"] and row["orderLinkId"] == "cond-1"
    assert (row["orderStatus"], row["stopOrderType"], row["triggerPrice"]) == (
        "Untriggered", "Stop", "65100.00")
    assert (row["triggerDirection"], row["triggerBy"], row["takeProfit"], row["stopLoss"]) == (
        1, "MarkPrice", "67000.00", "64000.00")
    assert open_orders(s, orderFilter="Order") == []
    assert open_orders(s, orderFilter="tpslOrder") == []
    # A trigger on the wrong side of the mark is refused and nothing changes.
    for direction, code in ((1, 110092), (2, 110093)):
        with pytest.raises(InvalidRequestError) as refused:
            s.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market",
                          qty="0.01", triggerPrice="64900" if direction == 1 else "65100",
                          triggerDirection=direction, triggerBy="MarkPrice")
        assert refused.value.status_code == code
    with pytest.raises(InvalidRequestError) as refused:
        s.amend_order(category="linear", symbol="BTCUSDT", orderId=placed["orderId"],
                      triggerPrice="64000")
    assert refused.value.status_code == 110092
    s.amend_order(category="linear", symbol="BTCUSDT", orderLinkId="cond-1",
                  triggerPrice="65200")
    assert by_id(s, placed["orderId"])["triggerPrice"] == "65200.00"
    assert [r["orderId"] for r in open_orders(s)] == [placed["orderId"]]

    book.mark("65250")  # the trigger fires: a market buy into the book, its TP/SL start
    fired = by_id(s, placed["orderId"])
    assert (fired["orderStatus"], fired["createType"], fired["stopOrderType"]) == (
        "Filled", "CreateByStopOrder", "Stop")
    assert fired["cumExecQty"] == "0.010"
    (position,) = s.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert (position["side"], position["takeProfit"], position["stopLoss"]) == (
        "Buy", "67000.00", "64000.00")
    legs = open_orders(s, orderFilter="tpslOrder")
    assert sorted(r["stopOrderType"] for r in legs) == ["StopLoss", "TakeProfit"]
    assert all(r["reduceOnly"] and r["closeOnTrigger"] for r in legs)

    # Closing the position by hand takes its TP/SL with it.
    s.place_order(category="linear", symbol="BTCUSDT", side="Sell", orderType="Market",
                  qty="0.01", reduceOnly=True)
    assert open_orders(s) == []
    (position,) = s.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert (position["size"], position["takeProfit"], position["stopLoss"]) == (
        "0.000", "0", "0")
    gone = [by_id(s, r["orderId"]) for r in legs]
    assert {(g["orderStatus"], g["cancelType"]) for g in gone} == {
        ("Deactivated", "CancelByTpSlTsClear")}
    history = s.get_order_history(category="linear", symbol="BTCUSDT",
                                  orderFilter="tpslOrder")["result"]["list"]
    assert {h["orderId"] for h in history} == {r["orderId"] for r in legs}


def test_pybit_trading_stop_and_cancel_all_by_filter(book: Stage) -> None:
    s = book.pybit(book.key())
    with pytest.raises(InvalidRequestError) as refused:
        s.set_trading_stop(category="linear", symbol="BTCUSDT", takeProfit="66000",
                           positionIdx=0)
    assert refused.value.status_code == 10001  # no position
    s.place_order(category="linear", symbol="BTCUSDT", side="Sell", orderType="Market",
                  qty="0.02")
    with pytest.raises(InvalidRequestError) as refused:  # a short's TP must be below
        s.set_trading_stop(category="linear", symbol="BTCUSDT", takeProfit="66000",
                           positionIdx=0)
    assert refused.value.status_code == 10001
    assert open_orders(s) == []
    s.set_trading_stop(category="linear", symbol="BTCUSDT", takeProfit="64000",
                       stopLoss="66000", slTriggerBy="MarkPrice", tpslMode="Full",
                       positionIdx=0)
    (position,) = s.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert (position["takeProfit"], position["stopLoss"], position["slTriggerBy"]) == (
        "64000.00", "66000.00", "MarkPrice")
    s.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Limit",
                  qty="0.01", price="64000", triggerPrice="64500", triggerDirection=2)
    assert len(open_orders(s)) == 3
    stop_only = s.cancel_all_orders(category="linear", symbol="BTCUSDT",
                                    orderFilter="StopOrder")["result"]["list"]
    assert len(stop_only) == 1 and len(open_orders(s, orderFilter="tpslOrder")) == 2
    s.set_trading_stop(category="linear", symbol="BTCUSDT", stopLoss="0", positionIdx=0)
    (leg,) = open_orders(s, orderFilter="tpslOrder")
    assert leg["stopOrderType"] == "TakeProfit"
    # pybit 5.17 dropped the deprecated set_tpsl_mode; its signed request path still works.
    mode = s._submit_request(method="POST", path=f"{s.endpoint}/v5/position/set-tpsl-mode",
                             query={"category": "linear", "symbol": "BTCUSDT",
                                    "tpSlMode": "Partial"}, auth=True)
    assert mode["result"] == {"tpSlMode": "Partial"}
    # The SL on the mark fires as the mark rises to it: the short is closed at market.
    s.set_trading_stop(category="linear", symbol="BTCUSDT", stopLoss="65150",
                       slTriggerBy="MarkPrice", positionIdx=0)
    book.mark("65160")
    (position,) = s.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert position["size"] == "0.000"
    closed = s.get_order_history(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert next(c["createType"] for c in closed if c["orderStatus"] == "Filled") == (
        "CreateByStopLoss")
    assert open_orders(s) == []


def test_ccxt_trigger_tpsl_and_trailing_orders(book: Stage) -> None:
    ex = book.ccxt(book.key())
    trigger = ex.create_order(SYMBOL, "market", "buy", 0.01, None,
                              {"triggerPrice": 66000, "triggerDirection": "ascending"})
    for flag in ("trigger", "stop"):
        (found,) = ex.fetch_open_orders(SYMBOL, params={flag: True})
        assert found["id"] == trigger["id"] and found["triggerPrice"] == 66000
        assert found["status"] == "open"
    ex.cancel_order(trigger["id"], SYMBOL)
    assert ex.fetch_order(trigger["id"], SYMBOL, {"acknowledged": True})["status"] == "canceled"
    with pytest.raises(ccxt.InvalidOrder):  # 110093: a falling trigger above the price
        ex.create_order(SYMBOL, "market", "buy", 0.01, None,
                        {"triggerPrice": 66000, "triggerDirection": "descending"})

    # TP/SL attached to an order start with the position it opens.
    ex.create_order(SYMBOL, "market", "buy", 0.02, None, {
        "stopLoss": {"triggerPrice": 64000}, "takeProfit": {"triggerPrice": 66500}})
    position = ex.fetch_position(SYMBOL)
    assert (position["stopLossPrice"], position["takeProfitPrice"]) == (64000, 66500)
    # stopLossPrice alone: a reduce-only conditional order falling to 64500.
    sl = ex.create_order(SYMBOL, "market", "sell", 0.01, None, {"stopLossPrice": 64500})
    info = ex.fetch_open_orders(SYMBOL, params={"trigger": True})
    assert [o["id"] for o in info] == [sl["id"]]
    assert info[0]["info"]["reduceOnly"] and info[0]["info"]["triggerDirection"] == 2
    # stopLossPrice with takeProfitPrice: trading-stop, a Partial pair of the amount.
    ex.create_order(SYMBOL, "market", "sell", 0.01, None,
                    {"stopLossPrice": 64200, "takeProfitPrice": 66200})
    legs = ex.fetch_open_orders(SYMBOL, params={"orderFilter": "tpslOrder"})
    assert sorted(o["info"]["stopOrderType"] for o in legs) == [
        "PartialStopLoss", "PartialTakeProfit", "StopLoss", "TakeProfit"]
    ex.create_order(SYMBOL, "market", "sell", 0.02, None, {"trailingAmount": "50"})
    assert ex.fetch_position(SYMBOL)["info"]["trailingStop"] == "50.00"
    ex.cancel_all_orders(SYMBOL)
    assert ex.fetch_open_orders(SYMBOL) == []
    assert ex.fetch_position(SYMBOL)["info"]["trailingStop"] == "0"


def test_ws_order_stream_and_rest_agree_on_stops(book: Stage,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Untriggered -> Triggered -> Filled on WS; the same objects and exec ids on REST."""
    key = book.key()
    s = book.pybit(key)
    s.get_wallet_balance(accountType="UNIFIED")  # funded before the stream starts
    monkeypatch.setattr(ut, "PRIVATE_WSS", book.url.replace("http", "ws") + "/v5/private")
    ws = ut.WebSocket(channel_type="private", testnet=False, api_key=key.api_key,
                      api_secret=key.secret)
    try:
        orders, executions = Inbox(), Inbox()
        ws.order_stream(orders)
        ws.execution_stream(executions)
        time.sleep(0.3)
        placed = s.place_order(category="linear", symbol="BTCUSDT", side="Buy",
                               orderType="Market", qty="0.01", triggerPrice="65100",
                               triggerDirection=1, triggerBy="MarkPrice")["result"]
        book.mark("65150")
        rows = orders.wait_rows(lambda rows: any(r["orderStatus"] == "Filled" for r in rows))
        mine = [r for r in rows if r["orderId"] == placed["orderId"]]
        assert [r["orderStatus"] for r in mine] == ["Untriggered", "Triggered", "Filled"]
        assert mine[-1] == by_id(s, placed["orderId"])  # one order object, REST or WS
        rest_ids = {e["execId"] for e in s.get_executions(
            category="linear", symbol="BTCUSDT")["result"]["list"]}
        ws_ids = {r["execId"] for r in executions.wait_rows(lambda rows: bool(rows))}
        assert ws_ids == rest_ids and len(ws_ids) >= 1

        # A trailing stop set by trading-stop arms at the last print and fires when the
        # last price falls back by its distance.
        s.set_trading_stop(category="linear", symbol="BTCUSDT", trailingStop="15",
                           positionIdx=0)
        (trailing,) = open_orders(s, orderFilter="tpslOrder")
        assert trailing["stopOrderType"] == "TrailingStop"
        other = book.pybit(book.key())
        other.place_order(category="linear", symbol="BTCUSDT", side="Sell",
                          orderType="Market", qty="0.01")  # prints at the best bid
        rows = orders.wait_rows(lambda rows: [r["orderStatus"] for r in rows
                                         if r["orderId"] == trailing["orderId"]][-1:]
                           == ["Filled"])
        assert [r["orderStatus"] for r in rows if r["orderId"] == trailing["orderId"]] == [
            "Untriggered", "Triggered", "Filled"]
        (position,) = s.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"]
        assert (position["size"], position["trailingStop"]) == ("0.000", "0")
    finally:
        ws.exit()


def test_pybit_batches_and_close_on_trigger(book: Stage) -> None:
    s = book.pybit(book.key())
    s.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market",
                  qty="0.03")
    batch = s.place_batch_order(category="linear", request=[
        {"symbol": "BTCUSDT", "side": "Sell", "orderType": "Market", "qty": "0",
         "reduceOnly": True, "closeOnTrigger": True, "triggerPrice": "64800",
         "triggerDirection": 2, "triggerBy": "MarkPrice", "orderLinkId": "close-all"},
        {"symbol": "BTCUSDT", "side": "Sell", "orderType": "Market", "qty": "0.01",
         "triggerPrice": "65500", "triggerDirection": 2, "triggerBy": "MarkPrice"}])
    assert [row["code"] for row in batch["retExtInfo"]["list"]] == [0, 110093]
    order_id = batch["result"]["list"][0]["orderId"]
    (row,) = open_orders(s, orderFilter="StopOrder")
    assert (row["qty"], row["closeOnTrigger"], row["reduceOnly"]) == ("0.000", True, True)
    amended = s.amend_batch_order(category="linear", request=[
        {"symbol": "BTCUSDT", "orderLinkId": "close-all", "triggerPrice": "64900"}])
    assert amended["retExtInfo"]["list"][0]["code"] == 0
    assert by_id(s, order_id)["triggerPrice"] == "64900.00"
    book.mark("64850")  # the whole position is closed at market
    done = by_id(s, order_id)
    assert (done["orderStatus"], done["cumExecQty"]) == ("Filled", "0.030")
    (position,) = s.get_positions(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert position["size"] == "0.000"
    s.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Market",
                  qty="0.01", triggerPrice="65500", triggerDirection=1, orderLinkId="later")
    cancelled = s.cancel_batch_order(category="linear", request=[
        {"symbol": "BTCUSDT", "orderLinkId": "later"}])
    assert cancelled["retExtInfo"]["list"][0]["code"] == 0
    assert open_orders(s) == []

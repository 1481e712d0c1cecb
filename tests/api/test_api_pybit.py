"""The real pybit HTTP client, pointed at perpx by its `endpoint` attribute (§9.1)."""

from __future__ import annotations

import pytest
from pybit.exceptions import InvalidRequestError
from pybit.unified_trading import HTTP

from apisupport import Live


def client(live: Live, key: object) -> HTTP:
    session = HTTP(api_key=key.api_key, api_secret=key.secret, recv_window=5000)  # type: ignore[attr-defined]
    session.endpoint = live.url
    return session


def test_pybit_orders_positions_wallet(live: Live) -> None:
    s = client(live, live.new_key())
    assert s.get_server_time()["retCode"] == 0
    book = s.get_orderbook(category="linear", symbol="BTCUSDT")["result"]
    bid = float(book["b"][0][0])
    placed = s.place_order(category="linear", symbol="BTCUSDT", side="Buy", orderType="Limit",
                           qty=0.01, price=int(bid) - 20, timeInForce="GTC", positionIdx=0,
                           reduceOnly=False, orderLinkId="pybit-1")
    assert placed["retCode"] == 0 and placed["result"]["orderLinkId"] == "pybit-1"
    order_id = placed["result"]["orderId"]
    amended = s.amend_order(category="linear", symbol="BTCUSDT", orderId=order_id,
                            qty="0.02", price=str(int(bid) - 30))
    assert amended["result"]["orderId"] == order_id
    (open_order,) = s.get_open_orders(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert open_order["qty"] == "0.020" and open_order["price"] == f"{int(bid) - 30}.00"
    assert open_order["orderStatus"] == "New"
    s.cancel_order(category="linear", symbol="BTCUSDT", orderLinkId="pybit-1")
    assert s.get_open_orders(category="linear", symbol="BTCUSDT")["result"]["list"] == []
    with pytest.raises(InvalidRequestError) as refused:
        s.cancel_order(category="linear", symbol="BTCUSDT", orderId=order_id)
    assert refused.value.status_code == 110001

    s.place_order(category="linear", symbol="ETHUSDT", side="Sell", orderType="Market",
                  qty="0.5")
    (position,) = s.get_positions(category="linear", symbol="ETHUSDT")["result"]["list"]
    assert position["side"] == "Sell" and position["size"] == "0.50"
    assert 1 <= position["adlRankIndicator"] <= 5  # ranked among the symbol's shorts
    executions = s.get_executions(category="linear", symbol="ETHUSDT")["result"]["list"]
    assert sum(float(e["execQty"]) for e in executions) == pytest.approx(0.5)
    wallet = s.get_wallet_balance(accountType="UNIFIED")["result"]["list"][0]
    assert wallet["accountType"] == "UNIFIED"
    assert float(wallet["coin"][0]["walletBalance"]) < 100000  # the fee was paid
    assert float(wallet["totalInitialMargin"]) > 0
    log = s.get_transaction_log(accountType="UNIFIED", category="linear")["result"]["list"]
    assert {"TRADE", "TRANSFER_IN"} <= {row["type"] for row in log}


def test_pybit_batches_and_cancel_all(live: Live) -> None:
    s = client(live, live.new_key())
    bid = float(s.get_tickers(category="linear", symbol="BTCUSDT")["result"]["list"][0][
        "bid1Price"])
    batch = s.place_batch_order(category="linear", request=[
        {"symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": "0.01",
         "price": str(int(bid) - 100)},
        {"symbol": "BTCUSDT", "side": "Buy", "orderType": "Limit", "qty": "0.0001",
         "price": str(int(bid) - 100)}])
    codes = [row["code"] for row in batch["retExtInfo"]["list"]]
    assert codes == [0, 10001]
    assert batch["result"]["list"][0]["orderId"] and batch["result"]["list"][1]["orderId"] == ""
    cancelled = s.cancel_all_orders(category="linear", settleCoin="USDT")["result"]["list"]
    assert [row["orderId"] for row in cancelled] == [batch["result"]["list"][0]["orderId"]]
    history = s.get_order_history(category="linear", symbol="BTCUSDT")["result"]["list"]
    assert history[0]["orderStatus"] == "Cancelled"
    assert history[0]["cancelType"] == "CancelByUser"

"""A dated future through the REST API of a running service (next-mechanics §2.1, §2.7).

instruments-info shows its Bybit fields; tickers the predicted delivery price in the last
30 minutes; after delivery `/v5/asset/delivery-record`, `/v5/market/delivery-price` and the
DELIVERY transaction-log row say what happened, instruments-info lists it as Closed, and a
new order is refused with 110074.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from perpx.api.app import RestApp, create_app
from perpx.api.keys import ApiKey, KeyStore
from perpx.core.commands import IndexPrice, Tick
from perpx.instruments import FUTURES_TABLE, load_instruments
from perpx.service import ExchangeService
from support.journals import HeldJournal
from support.rest import ok_result, post, signed_headers

FUTURE = load_instruments(FUTURES_TABLE)[0]
SYMBOL = FUTURE.symbol
T = FUTURE.delivery_time_ms


class Clock:
    def __init__(self) -> None:
        self.ms = T - 3_600_000

    def __call__(self) -> int:
        return self.ms


async def _get(app: RestApp, key: ApiKey, path: str, query: str, now_ms: int) -> Any:
    status, body, _ = await app.dispatcher("GET", path, query.encode(),
                                           signed_headers(key, query, now_ms))
    assert status == 200, body
    return ok_result(body)


def _order(side: str, qty: str, price: str) -> dict[str, Any]:
    return {"category": "linear", "symbol": SYMBOL, "side": side, "qty": qty,
            "orderType": "Limit", "price": price, "timeInForce": "GTC"}


def test_a_future_is_listed_quoted_delivered_and_recorded_through_the_api() -> None:
    async def run() -> None:
        clock = Clock()
        keys = KeyStore(None)
        buyer = keys.create(demo_funds="100000", rate_limit=100_000)
        seller = keys.create(demo_funds="100000", rate_limit=100_000)
        service = ExchangeService([*load_instruments(), FUTURE], HeldJournal(), clock=clock,
                                  maker=False, feed_interval_s=3600)
        app = create_app(service, keys)
        assert isinstance(app, RestApp)

        async def get(key: ApiKey, path: str, query: str) -> Any:
            return await _get(app, key, path, query, clock.ms)

        for key in (buyer, seller):  # the first signed request funds the key
            await get(key, "/v5/account/transaction-log", "accountType=UNIFIED")
        info = await get(buyer, "/v5/market/instruments-info",
                         f"category=linear&symbol={SYMBOL}")
        [item] = info["list"]
        assert (item["contractType"], item["status"], item["deliveryTime"],
                item["deliveryFeeRate"], item["fundingInterval"]) == (
            "LinearFutures", "Trading", str(T), "0.0005", 0)
        assert "upperFundingRate" not in item
        await service.submit(IndexPrice(0, 0, SYMBOL, 600_000))
        await post(app, seller, "/v5/order/create", _order("Sell", "0.5", "60000"), clock.ms)
        await post(app, buyer, "/v5/order/create", _order("Buy", "0.5", "60000"), clock.ms)
        await post(app, buyer, "/v5/order/create", _order("Buy", "0.1", "55000"), clock.ms)
        for k in range(1_800):  # E6: 61,000.0 rising by 0.1 a second
            clock.ms = T - 1_800_000 + 1_000 * k
            await service.submit(IndexPrice(0, 0, SYMBOL, 610_000 + k))
        [ticker] = (await get(buyer, "/v5/market/tickers",
                              f"category=linear&symbol={SYMBOL}"))["list"]
        assert ticker["predictedDeliveryPrice"] == "61089.95000000"
        assert (ticker["deliveryTime"], ticker["fundingRate"]) == (str(T), "")
        assert ticker["basis"] == "0.00"  # the mark is the index: no basis sample yet
        assert (ticker["basisRate"], ticker["basisRateYear"]) == ("0", "0")

        clock.ms = T
        await service.submit(Tick(0, 0))
        query = "category=linear&expDate=25DEC26"
        [row] = (await get(buyer, "/v5/asset/delivery-record", query))["list"]
        assert row == {"deliveryTime": T, "symbol": SYMBOL, "side": "Buy", "position": "0.500",
                       "entryPrice": "60000.00", "deliveryPrice": "61089.95000000",
                       "strike": "", "fee": "15.2724875", "deliveryRpl": "529.7025125"}
        [short] = (await get(seller, "/v5/asset/delivery-record", "category=linear"))["list"]
        assert (short["side"], short["deliveryRpl"]) == ("Sell", "-560.2474875")
        assert not (await get(buyer, "/v5/asset/delivery-record",
                              "category=linear&expDate=26MAR27"))["list"]
        prices = await get(buyer, "/v5/market/delivery-price",
                           "category=linear&settleCoin=USDT")
        assert prices["list"] == [{"symbol": SYMBOL, "deliveryPrice": "61089.95000000",
                                   "deliveryTime": str(T)}]
        [line] = (await get(buyer, "/v5/account/transaction-log",
                            "accountType=UNIFIED&type=DELIVERY"))["list"]
        assert (line["symbol"], line["cashFlow"], line["fee"]) == (SYMBOL, "544.975",
                                                                   "15.2724875")
        [cancelled] = (await get(buyer, "/v5/order/history",
                                 f"category=linear&symbol={SYMBOL}&orderStatus=Cancelled"))[
            "list"]
        assert cancelled["cancelType"] == "CancelBySettle"
        assert not (await get(buyer, "/v5/market/instruments-info",
                              f"category=linear&symbol={SYMBOL}"))["list"]
        [closed] = (await get(buyer, "/v5/market/instruments-info",
                              f"category=linear&symbol={SYMBOL}&status=Closed"))["list"]
        assert closed["status"] == "Closed"
        payload = json.dumps(_order("Buy", "0.1", "61000"))
        _status, body, _ = await app.dispatcher("POST", "/v5/order/create", payload.encode(),
                                                signed_headers(buyer, payload, clock.ms))
        assert json.loads(body)["retCode"] == 110074
        await service.close()

    asyncio.run(run())

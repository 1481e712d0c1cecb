"""Closings without an order (takeover, ADL) have closed-P&L rows, and funding SETTLEMENT rows
name their position, read through the REST API of a running service.

An isolated long and a cross long are taken over at their bankruptcy prices; with no bids in
the book the fund deleverages both against the one short, which gets an ADL row for each.
Every figure is checked against the prices the API reports (bust prices from the
`BustTrade` executions), computed here by hand: linear P&L = exit value − entry value, and
Bybit's closed P&L = that − opening-fee share − closing fee − funding share.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from perpx.api.app import RestApp, create_app
from perpx.api.keys import ApiKey, KeyStore
from perpx.convert import to_ticks
from perpx.core.commands import IndexPrice, MarkPrice, SetMarginMode, Tick
from perpx.core.enums import MarginMode
from perpx.instruments import load_instruments
from perpx.service import ExchangeService
from support.journals import HeldJournal
from support.rest import btc_order, ok_result, post, signed_headers

NOW = 1_700_000_000_000
BTC = load_instruments()[0]
D = Decimal


class Clock:
    def __init__(self) -> None:
        self.ms = NOW

    def __call__(self) -> int:
        return self.ms


CLOCK = Clock()


def _headers(key: ApiKey, payload: str) -> dict[str, str]:
    return signed_headers(key, payload, CLOCK.ms)  # stamped by the service's clock


async def _get(app: RestApp, key: ApiKey, path: str, query: str) -> Any:
    status, body, _ = await app.dispatcher("GET", path, query.encode(), _headers(key, query))
    assert status == 200, body
    return ok_result(body)["list"]


async def _post(app: RestApp, key: ApiKey, path: str, params: dict[str, Any]) -> Any:
    return await post(app, key, path, params, CLOCK.ms)


def _money(value: Decimal) -> str:
    """Format USDT as the API does: exact to 8 decimals, no trailing zeros."""
    text = f"{value.quantize(D('0.00000001')):f}"
    text = text.rstrip("0").rstrip(".") if "." in text else text
    return "0" if text == "-0" else text


async def _prices(service: ExchangeService, price: str) -> None:
    ticks = to_ticks(BTC, price)
    await service.submit(IndexPrice(0, 0, "BTCUSDT", ticks))
    await service.submit(MarkPrice(0, 0, "BTCUSDT", ticks))


def test_takeover_and_adl_closings_and_funding_have_their_rows() -> None:
    async def run() -> None:
        clock = CLOCK
        clock.ms = NOW
        keys = KeyStore(None)
        isolated = keys.create(demo_funds="10000", rate_limit=100_000)
        cross = keys.create(demo_funds="10000", rate_limit=100_000)
        short = keys.create(demo_funds="1000000", rate_limit=100_000)
        service = ExchangeService(load_instruments(), HeldJournal(), clock=clock, maker=False,
                                  feed_interval_s=3600)
        app = create_app(service, keys)
        assert isinstance(app, RestApp)
        for key in (isolated, cross, short):  # the first signed request funds the key
            await _get(app, key, "/v5/account/transaction-log", "accountType=UNIFIED")
        await _prices(service, "50000")
        await service.submit(SetMarginMode(0, 0, isolated.account_id, MarginMode.ISOLATED))
        # Both longs at the default leverage, 10x.
        await _post(app, short, "/v5/order/create", btc_order("Sell", "2", "50000"))
        await _post(app, isolated, "/v5/order/create", btc_order("Buy", "1"))
        await _post(app, cross, "/v5/order/create", btc_order("Buy", "1"))

        # Funding at the next 8-hour timestamp: index = mark, so the rate is the interest
        # rate's 0.01%; the longs pay, the short receives, on 1 BTC valued at the mark.
        clock.ms = (NOW // 28_800_000 + 1) * 28_800_000
        await service.submit(Tick(0, 0))
        for key, size, paid in ((isolated, "1.000", D("5")), (cross, "1.000", D("5")),
                                (short, "-2.000", D("-10"))):
            [settlement] = await _get(app, key, "/v5/account/transaction-log",
                                      "accountType=UNIFIED&type=SETTLEMENT")
            assert settlement["side"] == ("Sell" if size.startswith("-") else "Buy")
            assert (settlement["qty"], settlement["size"]) == (size.lstrip("-"), size)
            assert settlement["tradePrice"] == "50000.00"
            assert settlement["feeRate"] == "0.0001"
            assert settlement["fee"] == _money(D(0))  # Bybit: the payment is `funding` alone
            assert settlement["funding"] == settlement["change"] == _money(-paid)
            assert settlement["cashFlow"] == _money(D(0))

        # The isolated long (margin 5,000) is taken over; the cross one (10,000 equity) holds.
        await _prices(service, "45000")
        # Then the cross long goes too.
        await _prices(service, "40000")

        entry = D("50000")
        taker = D(BTC.taker_fee_rate) / D(10**8)
        maker = D(BTC.maker_fee_rate) / D(10**8)
        rows = {}
        for name, key in (("isolated", isolated), ("cross", cross)):
            [bust] = await _get(app, key, "/v5/execution/list",
                                "category=linear&execType=BustTrade")
            [closed] = await _get(app, key, "/v5/position/closed-pnl", "category=linear")
            rows[name] = closed
            price = D(bust["execPrice"])
            exit_value = price  # 1 BTC
            # The isolated position also pays its fee to close at the bankruptcy price.
            fee = (exit_value * taker).quantize(D("0.00000001"), rounding="ROUND_UP") \
                if name == "isolated" else D(0)
            assert closed["execType"] == "BustTrade" and closed["side"] == "Sell"
            assert closed["orderType"] == "Market" and closed["fillCount"] == "1"
            assert (closed["qty"], closed["closedSize"]) == ("1.000", "1.000")
            assert closed["orderPrice"] == closed["avgExitPrice"] == bust["execPrice"]
            assert closed["avgEntryPrice"] == "50000.00"
            assert closed["cumEntryValue"] == _money(entry)
            assert closed["cumExitValue"] == _money(exit_value)
            # Bybit's closed P&L: price P&L − opening fee (the market buy's taker fee) −
            # closing fee − the funding the position paid.
            open_fee = entry * taker
            assert closed["closeFee"] == _money(fee) and closed["openFee"] == _money(open_fee)
            assert closed["closedPnl"] == _money(exit_value - entry - open_fee - fee - D(5))
            assert closed["leverage"] == "10"
            # The takeover's wallet lines moved the price P&L less the fee to close.
            lines = await _get(app, key, "/v5/account/transaction-log",
                               "accountType=UNIFIED&type=LIQUIDATION")
            assert sum(D(line["change"]) for line in lines) == exit_value - entry - fee
        assert rows["isolated"]["orderId"] != rows["cross"]["orderId"]

        # The short was deleveraged against both, at each bankruptcy price.
        adl = await _get(app, short, "/v5/position/closed-pnl", "category=linear")
        executions = await _get(app, short, "/v5/execution/list",
                                "category=linear&execType=AdlTrade")
        assert len(adl) == len(executions) == 2
        by_price = {row["avgExitPrice"]: row for row in adl}
        assert sorted(by_price) == sorted(e["execPrice"] for e in executions)
        for execution in executions:
            row = by_price[execution["execPrice"]]
            price = D(execution["execPrice"])
            assert row["execType"] == "AdlTrade" and row["side"] == "Buy"
            assert row["closedSize"] == execution["execQty"] == "1.000"
            assert row["cumEntryValue"] == _money(entry)
            assert row["cumExitValue"] == _money(price)
            # Each closes half the short: half its opening (maker) fee and of the funding
            # it received; ADL itself charges no fee.
            open_fee = 2 * entry * maker / 2
            assert row["closeFee"] == "0" and row["openFee"] == _money(open_fee)
            # A short gains as the price falls; the funding received adds to it.
            assert row["closedPnl"] == _money(entry - price - open_fee + D(5))
        lines = await _get(app, short, "/v5/account/transaction-log",
                           "accountType=UNIFIED&type=ADL")
        assert sum(D(line["change"]) for line in lines) == sum(
            entry - D(e["execPrice"]) for e in executions)
        await service.close()

    asyncio.run(run())

"""Multi-collateral accounts over the API (next-mechanics §4.6, issue #17 item 5), live.

A server with a clock the test may push forward (as the USDC test's), pybit for every call it
has (`get_tiered_collateral_ratio`, `spot_margin_trade_get_vip_margin_data`,
`get_collateral_info`, `set_collateral_coin`, `batch_set_collateral_coin`, `repay`,
`manual_no_convert_repay`, `repay_liability` = quick-repayment, `get_borrow_history`,
`get_transaction_log`) and signed requests for the refusals and for the liability endpoint.

The flow: a key with no USDT is credited 1 BTC, buys BTCUSDT (the fee takes USDT below zero:
a liability, `borrowAmount`), the clock passes hh:05 (interest: a borrow-history row and an
INTEREST transaction-log row), repayment is refused until hh:05:30, then quick-repayment
converts BTC (CURRENCY_SELL / CURRENCY_BUY rows) and the liability is gone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pybit._helpers
import pybit.unified_trading as ut
import pytest
from pybit.unified_trading import HTTP

from apisupport import Live, sign
from perpx.api.app import create_app
from perpx.api.keys import ApiKey, KeyStore
from perpx.api.server import ServerThread
from perpx.core.account.collateral import (
    HOUR_MS,
    INTEREST_OFFSET_MS,
    REPAY_BLACKOUT_FROM_MS,
    REPAY_BLACKOUT_TO_MS,
)
from perpx.instruments import served_instruments
from perpx.service import ExchangeService
from perpx.store.history_sqlite import SqliteHistory
from perpx.store.journal import MemoryJournal
from support.inbox import Inbox


class Clock:
    """Wall time plus an offset a test may push forward (to reach an hh:05)."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def __call__(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms


def _past_the_repayment_blackout() -> None:
    """Wait, if need be, until the wall clock has left this hour's repayment blackout.

    The served clock starts at the wall clock, and repayment is refused from hh:04:00 to
    hh:05:30 (`REPAY_BLACKOUT_FROM_MS`, `REPAY_BLACKOUT_TO_MS`); the tests before the interest
    test expect other answers (CI met it once: a run reaching this module at 16:04:46). The
    module runs in seconds, so one started from hh:03:00 on waits for hh:05:31 (at most two and
    a half minutes); only the interest test then enters the blackout, on purpose.
    """
    into_hour = time.time_ns() // 1_000_000 % 3_600_000
    if REPAY_BLACKOUT_FROM_MS - 60_000 <= into_hour < REPAY_BLACKOUT_TO_MS:
        time.sleep((REPAY_BLACKOUT_TO_MS - into_hour + 1_000) / 1000)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Live, Clock]]:
    _past_the_repayment_blackout()
    folder = tmp_path_factory.mktemp("perpx-collateral")
    keys = KeyStore(folder)
    alice = keys.create(demo_funds="0", note="alice")  # no USDT at all
    reader = keys.create(demo_funds="1000", read_only=True, note="reader")
    clock = Clock()
    service = ExchangeService(served_instruments(), MemoryJournal(), clock=clock,
                              history=SqliteHistory(folder / "history.db"), feed_interval_s=3600)
    server = ServerThread(create_app(service, keys, manage_service=True)).start()
    deadline = time.monotonic() + 10
    while service.engine.books["BTCUSDT"].best_ask() is None:  # the maker quotes
        assert time.monotonic() < deadline, "the market maker never quoted"
        time.sleep(0.05)
    http = httpx.Client()
    yield Live(server.url, service, keys, alice, alice, reader, alice, alice, alice, http), clock
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


def result(live: Live, key: ApiKey, method: str, path: str, payload: str = "") -> Any:
    body = call(live, key, method, path, payload)
    assert body["retCode"] == 0, body
    return body["result"]


def client(live: Live, key: ApiKey | None = None) -> HTTP:
    session = (HTTP(api_key=key.api_key, api_secret=key.secret, recv_window=5000)
               if key is not None else HTTP())
    session.endpoint = live.url  # type: ignore[attr-defined]
    return session


def ok(reply: dict[str, Any]) -> Any:
    assert reply["retCode"] == 0, reply
    return reply["result"]


def test_public_tiers_and_borrowing_terms(served: tuple[Live, Clock]) -> None:
    live, _ = served
    public = client(live)
    tiers = ok(public.get_tiered_collateral_ratio())["list"]
    assert [row["currency"] for row in tiers] == ["BTC", "ETH", "USDC", "USDT"]
    [btc] = ok(public.get_tiered_collateral_ratio(currency="BTC"))["list"]
    # perpx's defaults (§7 N6): one tier each, "" for no upper bound.
    assert btc == {"currency": "BTC", "collateralRatioList": [
        {"minQty": "0", "maxQty": "", "collateralRatio": "0.95"}]}
    data = ok(public.spot_margin_trade_get_vip_margin_data(vipLevel="No VIP",
                                                            currency="USDT"))
    [level] = data["vipCoinList"]
    assert level["vipLevel"] == "No VIP"
    assert level["list"] == [{
        "borrowable": True, "collateralRatio": "1", "currency": "USDT",
        "hourlyBorrowRate": "0.000014621596", "liquidationOrder": "21",
        "marginCollateral": True, "maxBorrowingAmount": "10000000"}]
    btc_terms = ok(public.spot_margin_trade_get_vip_margin_data(currency="BTC"))
    assert btc_terms["vipCoinList"][0]["list"][0]["liquidationOrder"] == "11"
    assert ok(public.spot_margin_trade_get_vip_margin_data(vipLevel="VIP 5")) == {
        "vipCoinList": []}
    unknown = live.http.get(live.url + "/v5/spot-margin-trade/collateral",
                            params={"currency": "DOGE"}).json()
    assert unknown["retCode"] == 10001


def test_refusals_and_permissions(served: tuple[Live, Clock]) -> None:
    live, _ = served
    key, reader = live.new_key(demo_funds="100000"), live.reader
    assert result(live, key, "GET", "/v5/account/wallet-balance", "accountType=UNIFIED")
    switch = "/v5/account/set-collateral-switch"
    for body, code in (({"coin": "USDT", "collateralSwitch": "OFF"}, 10001),
                       ({"coin": "USDC", "collateralSwitch": "OFF"}, 10001),
                       ({"coin": "DOGE", "collateralSwitch": "ON"}, 10001),
                       ({"coin": "btc", "collateralSwitch": "ON"}, 10001),
                       ({"coin": "BTC", "collateralSwitch": "MAYBE"}, 10001),
                       ({"coin": "BTC"}, 10001)):
        assert call(live, key, "POST", switch, json.dumps(body))["retCode"] == code, body
    batch = "/v5/account/set-collateral-switch-batch"
    for body in ({"request": []}, {"request": "BTC"},
                 {"request": [{"coin": "BTC", "collateralSwitch": "ON"},
                              {"coin": "BTC", "collateralSwitch": "OFF"}]},
                 {"request": [{"coin": "ETH", "collateralSwitch": "OFF"},
                              {"coin": "USDT", "collateralSwitch": "OFF"}]}):
        assert call(live, key, "POST", batch, json.dumps(body))["retCode"] == 10001, body
    account = live.service.engine.clearing.account(key.account_id)
    assert account is not None and not account.collateral_off  # all or nothing
    # Nothing owed: each repayment is refused.
    for path, body in (("/v5/account/repay", {}), ("/v5/account/quick-repayment", {}),
                       ("/v5/account/repay", {"coin": "USDT", "amount": "1"}),
                       ("/v5/account/no-convert-repay", {"coin": "USDT"})):
        refused = call(live, key, "POST", path, json.dumps(body))
        assert refused["retCode"] == 10001 and "no liability" in refused["retMsg"], path
    for path, body in (("/v5/account/no-convert-repay", {}),  # coin required
                       ("/v5/account/repay", {"amount": "1"}),  # an amount needs a coin
                       ("/v5/account/repay", {"coin": "USDT", "amount": "-1"}),
                       ("/v5/account/repay", {"coin": "USDT", "amount": "x"})):
        assert call(live, key, "POST", path, json.dumps(body))["retCode"] == 10001, body
    for path, query in (("/v5/spot-margin-trade/liability", ""),  # currency required
                        ("/v5/spot-margin-trade/liability", "currency=DOGE"),
                        ("/v5/account/collateral-info", "currency=DOGE"),
                        ("/v5/account/borrow-history", "limit=51"),
                        ("/v5/account/borrow-history", "startTime=0&endTime=2678400001"),
                        ("/v5/account/borrow-history", "cursor=bad!")):
        assert call(live, key, "GET", path, query)["retCode"] == 10001, (path, query)
    # A read-only key reads, and every POST is refused with 10005.
    assert result(live, reader, "GET", "/v5/account/collateral-info", "currency=USDT")
    for path, body in ((switch, {"coin": "BTC", "collateralSwitch": "ON"}),
                       (batch, {"request": [{"coin": "BTC", "collateralSwitch": "ON"}]}),
                       ("/v5/account/repay", {}), ("/v5/account/no-convert-repay",
                                                   {"coin": "USDT"}),
                       ("/v5/account/quick-repayment", {})):
        assert call(live, reader, "POST", path, json.dumps(body))["retCode"] == 10005, path


def test_switches_through_pybit(served: tuple[Live, Clock]) -> None:
    live, _ = served
    key = live.new_key(demo_funds="100000")
    session = client(live, key)
    assert ok(session.set_collateral_coin(coin="ETH", collateralSwitch="OFF")) == {}
    [eth] = ok(session.get_collateral_info(currency="ETH"))["list"]
    assert eth["collateralSwitch"] is False and eth["marginCollateral"] is True
    both = ok(session.batch_set_collateral_coin(request=[
        {"coin": "ETH", "collateralSwitch": "ON"}, {"coin": "BTC", "collateralSwitch": "OFF"}]))
    assert both == {"list": [{"coin": "ETH", "collateralSwitch": "ON"},
                             {"coin": "BTC", "collateralSwitch": "OFF"}]}
    rows = {row["currency"]: row for row in ok(session.get_collateral_info())["list"]}
    assert (rows["ETH"]["collateralSwitch"], rows["BTC"]["collateralSwitch"]) == (True, False)
    wallet = ok(session.get_wallet_balance(accountType="UNIFIED"))["list"][0]
    assert {row["coin"]: row["collateralSwitch"] for row in wallet["coin"]}["USDT"] is True


def next_interest_ms(now_ms: int) -> int:
    return (now_ms - INTEREST_OFFSET_MS) // HOUR_MS * HOUR_MS + HOUR_MS + INTEREST_OFFSET_MS


def test_btc_collateral_liability_interest_and_quick_repayment(
        served: tuple[Live, Clock], monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs last: it moves the service clock past the next hh:05 for good."""
    live, clock = served
    key = live.alice
    session = client(live, key)
    credit = {"adjustType": 0, "utaDemoApplyMoney": [{"coin": "BTC", "amountStr": "1"}]}
    result(live, key, "POST", "/v5/account/demo-apply-money", json.dumps(credit))
    [usdt] = ok(session.get_collateral_info(currency="USDT"))["list"]
    assert usdt["borrowAmount"] == "0" and usdt["availableToBorrow"] == "10000000"
    ok(session.place_order(category="linear", symbol="BTCUSDT", side="Buy",
                           orderType="Market", qty="0.01"))

    # USDT below zero: a liability, the same on every surface.
    wallet = ok(session.get_wallet_balance(accountType="UNIFIED"))["list"][0]
    coins = {row["coin"]: row for row in wallet["coin"]}
    assert set(coins) == {"BTC", "USDT"}
    # Every field next-mechanics §4.6 names, on the account and on each coin row.
    assert {"totalEquity", "totalWalletBalance", "totalMarginBalance", "totalAvailableBalance",
            "totalPerpUPL", "totalInitialMargin", "totalMaintenanceMargin", "accountIMRate",
            "accountMMRate", "totalInitialMarginByMp", "totalMaintenanceMarginByMp",
            "accountIMRateByMp", "accountMMRateByMp"} <= set(wallet)
    assert all({"equity", "usdValue", "walletBalance", "borrowAmount", "accruedInterest",
                "spotBorrow", "unrealisedPnl", "cumRealisedPnl", "totalOrderIM",
                "totalPositionIM", "totalPositionMM", "marginCollateral", "collateralSwitch",
                "colRes", "locked", "bonus", "spotHedgingQty"} <= set(row)
               for row in coins.values())
    owed = Decimal(coins["USDT"]["borrowAmount"])
    assert owed > 0 and owed == -(Decimal(coins["USDT"]["walletBalance"])
                                  + Decimal(coins["USDT"]["unrealisedPnl"]))
    assert Decimal(wallet["totalEquity"]) > Decimal(wallet["totalMarginBalance"])  # haircut
    [usdt] = ok(session.get_collateral_info(currency="USDT"))["list"]
    assert Decimal(usdt["borrowAmount"]) == owed
    assert Decimal(usdt["availableToBorrow"]) == 10_000_000 - owed
    assert Decimal(usdt["freeBorrowAmount"]) == owed - min(
        owed, -Decimal(coins["USDT"]["walletBalance"]))  # the unrealised part is free
    liability = result(live, key, "GET", "/v5/spot-margin-trade/liability", "currency=USDT")
    assert liability == {"currency": "USDT", "totalBorrowAmount": str(owed),
                         "fixedBorrowAmount": "0", "flexibleBorrowAmount": str(owed),
                         "spotTotalBorrow": "0", "derivativesBorrow": str(owed)}
    # BTC cannot be switched off: it is all the position's margin.
    refused = call(live, key, "POST", "/v5/account/set-collateral-switch",
                   json.dumps({"coin": "BTC", "collateralSwitch": "OFF"}))
    assert refused["retCode"] == 110007
    # Without conversion a derivatives liability has nothing to repay it: FA.
    assert ok(session.manual_no_convert_repay(coin="USDT")) == {"resultStatus": "FA"}
    assert ok(session.get_borrow_history(currency="USDT"))["list"] == []

    # The private wallet stream, opened (and authenticated) before the clock moves.
    monkeypatch.setattr(ut, "PRIVATE_WSS", live.url.replace("http://", "ws://") + "/v5/private")
    stream = ut.WebSocket(channel_type="private", api_key=key.api_key,
                          api_secret=key.secret, testnet=False)
    wallets = Inbox()
    try:
        stream.wallet_stream(wallets)
        time.sleep(0.3)  # the subscribe ack
        interest_and_repayment(live, clock, session, wallets, owed, monkeypatch)
    finally:
        stream.exit()


def usdt_row(message: dict[str, Any]) -> dict[str, Any]:
    return {row["coin"]: row for row in message["data"][0]["coin"]}["USDT"]


def interest_and_repayment(live: Live, clock: Clock, session: HTTP, wallets: Inbox,
                           owed: Decimal, monkeypatch: pytest.MonkeyPatch) -> None:
    key = live.alice
    wallet_before = ok(session.get_wallet_balance(accountType="UNIFIED", coin="USDT"))
    usdt_before = Decimal(wallet_before["list"][0]["coin"][0]["walletBalance"])
    # hh:05:01: the next command charges the hour's interest first.
    now = live.service.now_ms()
    due = next_interest_ms(now)
    clock.offset_ms += due - now + 1_000
    monkeypatch.setattr(pybit._helpers, "generate_timestamp", clock)
    ok(session.set_leverage(category="linear", symbol="BTCUSDT", buyLeverage="5",
                            sellLeverage="5"))
    history = ok(session.get_borrow_history(currency="USDT"))
    [row] = history["list"]
    assert history["nextPageCursor"] == ""
    assert set(row) == {"currency", "createdTime", "borrowCost", "hourlyBorrowRate",
                        "InterestBearingBorrowSize", "costExemption", "borrowAmount",
                        "unrealisedLoss", "freeBorrowedAmount"}
    assert row["currency"] == "USDT" and row["createdTime"] == due  # the hh:05 it is for
    assert row["hourlyBorrowRate"] == "0.000014621596"
    bearing = Decimal(row["InterestBearingBorrowSize"])
    assert bearing > 0
    cost = (bearing * Decimal("0.000014621596")).quantize(Decimal("0.00000001"),
                                                          rounding="ROUND_DOWN")
    assert Decimal(row["borrowCost"]) == cost > 0
    assert ok(session.get_borrow_history(currency="BTC"))["list"] == []
    log = ok(session.get_transaction_log(accountType="UNIFIED", type="INTEREST"))["list"]
    [interest] = log
    assert (interest["currency"], interest["type"]) == ("USDT", "INTEREST")
    assert Decimal(interest["change"]) == Decimal(interest["cashFlow"]) == -cost
    # The wallet topic was pushed with the interest in the USDT wallet. Moving the clock to
    # hh:05 crosses a funding time when the wall clock reads 23:xx, 07:xx or 15:xx: the
    # settlement booked since then is in the wallet too.
    settled = ok(session.get_transaction_log(accountType="UNIFIED", type="SETTLEMENT"))["list"]
    funding = sum((Decimal(r["change"]) for r in settled
                   if r["currency"] == "USDT" and int(r["transactionTime"]) > now), Decimal(0))
    wallets.wait(lambda m: Decimal(usdt_row(m)["walletBalance"])
                 == usdt_before - cost + funding)
    # Still inside hh:04:00–hh:05:30: repayment refused.
    closed = call(live, key, "POST", "/v5/account/quick-repayment", "{}")
    assert closed["retCode"] == 10001 and "05:30" in closed["retMsg"]

    clock.offset_ms += 30_000  # hh:05:31
    partial = ok(session.repay(coin="USDT", amount="0.01"))
    assert partial == {"resultStatus": "SU"}
    quick = ok(session.repay_liability())
    [repaid] = quick["list"]
    assert repaid["coin"] == "USDT" and Decimal(repaid["repaymentQty"]) > 0
    [usdt] = ok(session.get_collateral_info(currency="USDT"))["list"]
    assert usdt["borrowAmount"] == "0"
    # ...and with the conversion that repaid it.
    pushed = wallets.wait(lambda m: usdt_row(m)["borrowAmount"] == "0")
    assert Decimal({row["coin"]: row for row in pushed["data"][0]["coin"]}["BTC"][
        "walletBalance"]) < 1
    sells = ok(session.get_transaction_log(accountType="UNIFIED", type="CURRENCY_SELL"))
    buys = ok(session.get_transaction_log(accountType="UNIFIED", currency="USDT",
                                          type="CURRENCY_BUY"))
    assert {r["currency"] for r in sells["list"]} == {"BTC"} and len(sells["list"]) == 2
    assert {r["currency"] for r in buys["list"]} == {"USDT"} and len(buys["list"]) == 2
    assert all(Decimal(r["change"]) < 0 for r in sells["list"])
    assert all(Decimal(r["change"]) > 0 for r in buys["list"])
    wallet = ok(session.get_wallet_balance(accountType="UNIFIED", coin="BTC,USDT"))["list"][0]
    coins = {row["coin"]: row for row in wallet["coin"]}
    assert Decimal(coins["BTC"]["walletBalance"]) < 1 and coins["USDT"]["borrowAmount"] == "0"
    # The window: the last 30 days by default; one before the charge finds nothing.
    before = ok(session.get_borrow_history(startTime=due - 86_400_000, endTime=due - 1))
    assert before == {"list": [], "nextPageCursor": ""}


def test_the_same_behind_a_gateway(gateway_live: Live) -> None:
    """A gateway serves the collateral reads from its follower and sends the switch on."""
    live = gateway_live
    key = live.new_key(demo_funds="1000")
    public = live.http.get(live.url + "/v5/spot-margin-trade/collateral",
                           params={"currency": "ETH"}).json()
    assert public["result"]["list"][0]["currency"] == "ETH"
    session = client(live, key)
    assert ok(session.set_collateral_coin(coin="ETH", collateralSwitch="OFF")) == {}
    [eth] = ok(session.get_collateral_info(currency="ETH"))["list"]  # reads its own write
    assert eth["collateralSwitch"] is False
    refused = call(live, key, "POST", "/v5/account/quick-repayment", "{}")
    assert refused["retCode"] == 10001
    history = ok(session.get_borrow_history())
    assert history == {"list": [], "nextPageCursor": ""}

"""The wallet object (`wire.wallet`, REST and the `wallet` topic) with a USDT and a BTC row.

Each row in its coin; totals in USD (USDT at 1, BTC at the BTCUSDT index times the USDT rate
of 1, next-mechanics §4.1, floored to the atom). The account holds two coins, so its cross
margin is one USD pool (§4.3): the margin balance counts BTC at its 0.95 collateral ratio and
the account IM and MM rates are the pool's.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from perpx import Exchange
from perpx.api import wire
from perpx.bybit.params import category_of, in_category, request_specs

SAT = Decimal("0.00000001")


def traded() -> Exchange:
    """Account 1: 1,000 USDT idle and a 10x long of 10,000 BTCUSD at 8,000 from 2 BTC."""
    ex = Exchange(["BTCUSDT", "BTCUSD"], check_invariants=True)
    ex.deposit(1, "1000")
    for account in (1, 2):
        ex.deposit(account, "2", "BTC")
        ex.set_leverage(account, "BTCUSD", "10", "10")
    ex.index_price("BTCUSD", "8000")
    ex.index_price("BTCUSDT", "9000")  # the BTC price in USDT, with usdtRate 1 its USD price
    assert ex.place_order(2, "BTCUSD", "Sell", "Limit", qty="10000", price="8000").ret_code == 0
    assert ex.place_order(1, "BTCUSD", "Buy", "Market", qty="10000").ret_code == 0
    return ex


def test_a_coin_row_each_and_totals_in_usd_at_the_inverse_index() -> None:
    ex = traded()
    account = ex.engine.clearing.account(1)
    row = wire.wallet(ex.engine, account)
    coins = {c["coin"]: c for c in row["coin"]}
    assert set(coins) == {"BTC", "USDT"}
    btc = ex.wallet(1, "BTC")
    assert coins["BTC"]["walletBalance"] == btc.wallet_balance == "1.9993125"  # taker fee
    assert coins["BTC"]["totalPositionIM"] == btc.position_im
    index = Decimal(9000)  # BTCUSDT's index x usdtRate 1 (§4.1), not BTCUSD's 8,000
    usd = (Decimal(btc.wallet_balance) * index).quantize(SAT, ROUND_FLOOR)
    assert Decimal(row["totalWalletBalance"]) == Decimal(1000) + usd
    btc_usd = (Decimal(btc.equity) * index).quantize(SAT, ROUND_FLOOR)
    assert Decimal(coins["BTC"]["usdValue"]) == btc_usd
    assert Decimal(row["totalEquity"]) == Decimal(1000) + btc_usd
    # The margin balance: USDT in full, BTC equity at its 0.95 collateral ratio (§7 N6).
    counted = (Decimal(btc.equity) * Decimal("0.95")).quantize(SAT, ROUND_FLOOR)
    margin = Decimal(1000) + (counted * index).quantize(SAT, ROUND_FLOOR)
    assert Decimal(row["totalMarginBalance"]) == margin
    im = (Decimal(btc.position_im) * index).quantize(SAT, ROUND_CEILING)
    assert Decimal(row["totalInitialMargin"]) == im
    # Truncated to 4 decimals, as Bybit prints the rates (next-mechanics §4.3).
    assert Decimal(row["accountIMRate"]) == (im / margin).quantize(Decimal("0.0001"),
                                                                   ROUND_FLOOR)
    assert Decimal(row["accountIMRate"]) > 0


def test_an_empty_account_shows_the_zero_usdt_row() -> None:
    ex = Exchange(["BTCUSDT", "BTCUSD"])
    row = wire.wallet(ex.engine, None)
    assert [c["coin"] for c in row["coin"]] == ["USDT"]
    assert row["totalEquity"] == "0" and row["accountMMRate"] == "0"


def test_categories_name_their_symbols() -> None:
    ex = Exchange(["BTCUSDT", "BTCUSD", "ETHUSD"])
    specs = ex.engine.instruments
    assert {s: category_of(spec) for s, spec in specs.items()} == {
        "BTCUSDT": "linear", "BTCUSD": "inverse", "ETHUSD": "inverse"}
    assert set(in_category(specs, "inverse")) == {"BTCUSD", "ETHUSD"}
    assert in_category(specs, "spot") == {}
    assert request_specs(specs, "spot") is specs  # any symbol; the answer is empty anyway

"""Dated futures through `perpx calc delivery` and `perpx.Exchange` (next-mechanics §2.8).

E3 (USDT expiry, long 0.5 @ 60,000, DP 61,234.56781234) and E5 (USDC futures: no fee)
through the calculator; E6's delivery price, the settlement and the refusal after delivery
through the in-process exchange.
"""

from __future__ import annotations

import json
from decimal import Decimal
from importlib import resources

from typer.testing import CliRunner

from perpx import Exchange
from perpx.cli import app
from perpx.instruments import FUTURES_TABLE, load_instruments

runner = CliRunner()
FUTURE = load_instruments(FUTURES_TABLE)[0]
T = FUTURE.delivery_time_ms


def calc(*args: str) -> dict[str, str]:
    result = runner.invoke(app, ["calc", "delivery", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_e3_through_perpx_calc() -> None:
    figures = calc("--entry", "60000", "--qty", "0.5", "--price", "61234.56781234")
    assert figures == {"delivery_price": "61234.56781234", "position_value": "30617.28390617",
                       "delivery_pnl": "617.28390617", "delivery_fee_rate": "0.0005",
                       "delivery_fee": "15.30864195", "net": "601.97526422"}


def test_e3_short_and_e5_no_fee_through_perpx_calc() -> None:
    short = calc("--side", "sell", "--entry", "60000", "--qty", "0.5", "--price",
                 "61234.56781234")
    assert (short["delivery_pnl"], short["delivery_fee"]) == ("-617.28390617", "15.30864195")
    usdc = calc("--entry", "60000", "--qty", "0.5", "--price", "61234.56781234",
                "--delivery-fee", "0")
    assert (usdc["delivery_fee"], usdc["net"]) == ("0", "617.28390617")


def test_a_future_delivers_through_the_exchange() -> None:
    ex = Exchange(["BTCUSDT", FUTURE.symbol], start_ms=T - 3_600_000, check_invariants=True)
    for account in (1, 2):
        assert ex.deposit(account, "100000").ok
    assert ex.index_price(FUTURE.symbol, "60000").ok
    assert ex.place_order(2, FUTURE.symbol, "Sell", "Limit", qty="0.5", price="60000").ok
    assert ex.place_order(1, FUTURE.symbol, "Buy", "Limit", qty="0.5", price="60000").ok
    resting = ex.place_order(1, FUTURE.symbol, "Buy", "Limit", qty="0.1", price="55000")
    before = Decimal(ex.wallet(1).wallet_balance)
    for k in range(1_800):  # E6
        ex.at(T - 1_800_000 + 1_000 * k)
        ex.index_price(FUTURE.symbol, str(Decimal(61000) + Decimal("0.1") * k))
    assert ex.delivery_price(FUTURE.symbol) == "61089.95000000"  # running, then final
    assert ex.instrument_status(FUTURE.symbol) == "Trading"
    ex.at(T)
    ex.tick()
    assert ex.instrument_status(FUTURE.symbol) == "Closed"
    assert ex.delivery_price(FUTURE.symbol) == "61089.95000000"
    assert not ex.open_orders(1, FUTURE.symbol) and resting.order_id
    assert not [p for p in ex.positions(1) if p.symbol == FUTURE.symbol and p.size != "0"]
    pnl = Decimal("0.5") * (Decimal("61089.95") - 60000)
    fee = Decimal("15.2724875")  # 0.5 x 61,089.95 x 0.05%, exact at 8 dp
    assert Decimal(ex.wallet(1).wallet_balance) - before == pnl - fee
    refused = ex.place_order(1, FUTURE.symbol, "Buy", "Limit", qty="0.1", price="61000")
    assert (refused.ret_code, refused.ret_msg) == (110074, "This contract is not live")


def test_the_exchange_lists_a_bybit_item_and_refuses_it_twice() -> None:
    table = resources.files("perpx.instruments").joinpath(f"{FUTURES_TABLE}.json").read_text(
        "utf-8")
    item = json.loads(table)["instruments"][1]
    ex = Exchange(["BTCUSDT"], start_ms=T)
    assert ex.list_instrument(item).ok
    assert "BTCUSDT-26MAR27" in ex.instruments()
    again = ex.list_instrument(item)
    assert (again.ret_code, again.ret_msg) == (10001, "params error: duplicate instrument")
    restored = Exchange.restore(ex.snapshot(), ["BTCUSDT"])
    assert restored.state_hash() == ex.state_hash()
    assert Exchange.restore(ex.snapshot()).state_hash() == ex.state_hash()

"""The inverse worked examples (next-mechanics §1.6) as a user meets them: `perpx calc` and
`perpx.Exchange` on the bundled BTCUSD (tick 0.10 USD, 1 USD contracts, settled in BTC).

The exact figures are checked in tests/unit/core/test_inverse_contract.py; here the public
interfaces must show the same integers, rounded to BTCUSD's tick where a price is shown
(a long's liquidation price up, its bankruptcy price down, DESIGN.md). The rules of the
instrument are checked through the exchange too: one-way mode only (hedge refused with
Bybit's 110029), buy leverage equal to sell leverage, whole contracts, and a 1x short that
has neither a liquidation nor a bankruptcy price.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from perpx import Exchange
from perpx.cli import app
from perpx.convert import to_atoms

runner = CliRunner()


def calc(*args: str) -> dict[str, str]:
    """Run `perpx calc ... --symbol BTCUSD --json` and return its figures."""
    result = runner.invoke(app, ["calc", *args, "--symbol", "BTCUSD", "--json"])
    assert result.exit_code == 0, result.output
    figures: dict[str, str] = json.loads(result.output.strip().splitlines()[-1])
    return figures


# --- perpx calc -----------------------------------------------------------------------------

def test_i4_initial_margin_through_calc() -> None:
    figures = calc("cost", "--price", "8000", "--qty", "12000", "--leverage", "50")
    assert (figures["order_value"], figures["initial_margin"]) == ("1.5", "0.03")


def test_i5_order_cost_through_calc() -> None:
    """I5: 10,000 @ 6,400, 25x, 0.075%: 0.0625 + 0.00117188 + 0.00121875 = 0.06489063."""
    figures = calc("cost", "--price", "6400", "--qty", "10000", "--leverage", "25",
                   "--fee", "0.00075")
    assert figures == {"order_value": "1.5625", "initial_margin": "0.0625",
                       "fee_to_open": "0.00117188", "fee_to_close": "0.00121875",
                       "order_cost": "0.06489063"}


@pytest.mark.parametrize(("side", "formula", "liq", "bust"), [
    ("buy", "uta", "45681.90", "45454.50"),  # 45,681.818.. up; 45,454.545.. down
    ("buy", "legacy", "45662.20", "45454.50"),  # 45,662.100..
    ("sell", "uta", "55277.70", "55555.60"),  # 55,277.777.. down; 55,555.555.. up
    ("sell", "legacy", "55248.60", "55555.60"),  # 55,248.618..
])
def test_i7_i8_liquidation_and_bankruptcy_prices_through_calc(
        side: str, formula: str, liq: str, bust: str) -> None:
    """I7/I8: 60,000 USD @ 50,000, 10x, tier 1 (MMR 0.5%): PV 1.2, IM 0.12 BTC."""
    figures = calc("position", "--entry", "50000", "--qty", "60000", "--leverage", "10",
                   "--side", side, "--formula", formula)
    assert (figures["position_value"], figures["initial_margin"]) == ("1.2", "0.12")
    assert (figures["mmr"], figures["risk_tier"]) == ("0.005", "1")
    assert (figures["liquidation_price"], figures["bankruptcy_price"]) == (liq, bust)


def test_i2_i3_pnl_and_roi_through_calc() -> None:
    """I2 long 1,000 @ 5,000 at 5,500: 0.01818181 (exact 0.0181818.., floored); I3 short."""
    long = calc("position", "--entry", "5000", "--qty", "1000", "--mark", "5500",
                "--leverage", "10")
    assert long["unrealized_pnl"] == "0.01818181"
    # ROI on IM + fee to close: 0.02 + 0.2 x 1.1 x 0.055% = 0.020121.
    assert long["position_margin"] == "0.020121"
    assert long["roi"] == "0.90362357"  # floor(0.01818181 / 0.020121, 8 dp)
    short = calc("position", "--entry", "5000", "--qty", "1000", "--mark", "4500",
                 "--leverage", "10", "--side", "sell")
    assert short["unrealized_pnl"] == "0.02222222"


def test_a_round_trip_pnl_and_target_through_calc() -> None:
    """Closed P&L in BTC: 1,000 @ 5,000 out at 5,500 less taker fees on each fill's value."""
    figures = calc("pnl", "--entry", "5000", "--exit", "5500", "--qty", "1000",
                   "--leverage", "10")
    # 0.2 - round(1,000/5,500) = 0.01818182 realised (a fill's value rounds half up); the
    # fees are charged on the value rounded up: 0.2 x 0.055% and 0.18181819 x 0.055%, up.
    assert figures["pnl"] == "0.01818182"
    assert (figures["fee_to_open"], figures["fee_to_close"]) == ("0.00011", "0.00010001")
    assert figures["closed_pnl"] == "0.01797181"
    target = calc("target", "--entry", "5000", "--qty", "1000", "--roi", "0.9036",
                  "--leverage", "10")
    assert target["target_price"] == "5500.00"


def test_order_by_value_and_by_cost_through_calc() -> None:
    """Order by value: the most contracts worth at most 0.5 BTC at 8,000 (4,000)."""
    assert calc("qty", "--price", "8000", "--value", "0.5")["qty"] == "4000"
    cost = calc("cost", "--price", "8000", "--qty", "4000", "--leverage", "10")["order_cost"]
    assert calc("qty", "--price", "8000", "--cost", cost, "--leverage", "10")["qty"] == "4000"


def test_the_instrument_figures_name_its_coins() -> None:
    figures = calc("instrument", "--price", "8000")
    assert figures["contract_type"] == "InversePerpetual"
    assert figures["settle_coin"] == "BTC"
    # 0.1 BTC of impact margin at tier 1's 1% IMR: 10 BTC, 80,000 contracts at 8,000.
    assert figures["impact_margin_notional_qty"] == "80000 contracts"


# --- perpx.Exchange -----------------------------------------------------------------------

def traded(leverage: str = "10", margin: str = "cross") -> Exchange:
    """Account 1 long and account 2 short 10,000 BTCUSD at 8,000, each from 2 BTC."""
    ex = Exchange(["BTCUSDT", "BTCUSD"], check_invariants=True)
    for account in (1, 2):
        ex.deposit(account, "2", "BTC")
        if margin == "isolated":
            ex.set_margin_mode(account, "ISOLATED_MARGIN")
        ex.set_leverage(account, "BTCUSD", leverage, leverage)
    ex.index_price("BTCUSD", "8000")
    assert ex.place_order(1, "BTCUSD", "Buy", "Limit", qty="10000", price="8000").ret_code == 0
    assert ex.place_order(2, "BTCUSD", "Sell", "Market", qty="10000").ret_code == 0
    return ex


def test_a_trade_settles_in_btc_and_leaves_usdt_alone() -> None:
    """Fees in BTC on C/P (taker 0.055%: 0.0006875; maker 0.02%: 0.00025; MECH §11)."""
    ex = traded()
    assert ex.wallet(1, "BTC").wallet_balance == "1.99975"
    assert ex.wallet(2, "BTC").wallet_balance == "1.9993125"
    assert ex.wallet(1, "USDT").wallet_balance == "0"
    [long] = ex.positions(1, "BTCUSD")
    assert (long.size, long.avg_price, long.position_value) == ("10000", "8000.00", "1.25")


def test_the_order_cost_locked_by_the_exchange_is_the_calculators() -> None:
    """An isolated resting order locks IM + fee to open + fee to close at its price."""
    ex = Exchange(["BTCUSD"], check_invariants=True)
    ex.deposit(1, "1", "BTC")
    ex.set_margin_mode(1, "ISOLATED_MARGIN")
    ex.set_leverage(1, "BTCUSD", "25", "25")
    ex.index_price("BTCUSD", "6500")
    assert ex.place_order(1, "BTCUSD", "Buy", "Limit", qty="10000", price="6400").ret_code == 0
    cost = calc("cost", "--price", "6400", "--qty", "10000", "--leverage", "25")["order_cost"]
    assert to_atoms("1") - to_atoms(ex.wallet(1, "BTC").available_balance) == to_atoms(cost)


def test_the_position_shows_coin_pnl_at_the_mark() -> None:
    """Seed 004 / I2-style: mark 8,100 on 10,000 long from 8,000: +0.01543209 BTC."""
    ex = traded()
    ex.mark_price("BTCUSD", "8100")
    [long] = ex.positions(1, "BTCUSD")
    [short] = ex.positions(2, "BTCUSD")
    assert long.unrealised_pnl == "0.01543209"
    assert short.unrealised_pnl == "-0.0154321"  # the short's loss, rounded down too


def test_hedge_mode_is_refused_for_an_inverse_contract() -> None:
    """UTA 2.0: inverse contracts are one-way only; Bybit's code for it is 110029."""
    ex = Exchange(["BTCUSDT", "BTCUSD"])
    ex.deposit(1, "1", "BTC")
    ex.deposit(1, "100", "USDT")
    refused = ex.switch_position_mode(1, "BTCUSD", 3)
    assert (refused.ret_code, refused.ret_msg) == (
        110029, "Hedge mode is not supported for this symbol")
    assert ex.switch_position_mode(1, "BTCUSDT", 3).ret_code == 0  # linear still may


def test_buy_and_sell_leverage_must_be_equal() -> None:
    ex = Exchange(["BTCUSD"])
    ex.deposit(1, "1", "BTC")
    assert ex.set_leverage(1, "BTCUSD", "10", "20").ret_code == 10001
    assert ex.set_leverage(1, "BTCUSD", "20", "20").ret_code == 0


def test_quantities_are_whole_contracts() -> None:
    ex = Exchange(["BTCUSD"])
    ex.deposit(1, "1", "BTC")
    ex.index_price("BTCUSD", "8000")
    assert ex.place_order(1, "BTCUSD", "Buy", "Limit", qty="100.5",
                          price="8000").ret_msg == "Qty invalid"
    assert ex.place_order(1, "BTCUSD", "Buy", "Limit", qty="100", price="8000").ret_code == 0


def test_a_1x_short_shows_no_liquidation_or_bankruptcy_price() -> None:
    """§1.5: at 1x a short never goes bankrupt, BP = inf, shown as ""."""
    ex = traded(leverage="1", margin="isolated")
    [short] = ex.positions(2, "BTCUSD")
    assert (short.liq_price, short.bust_price) == ("", "")
    [long] = ex.positions(1, "BTCUSD")
    assert long.bust_price == "4000.00"  # 8,000 x 1/2


def test_ethusd_settles_in_eth() -> None:
    """ETHUSD (placeholder figures, docs/decisions.md): 1,000 USD at 2,000 is 0.5 ETH."""
    ex = Exchange(["ETHUSD"], check_invariants=True)
    for account in (1, 2):
        ex.deposit(account, "1", "ETH")
    ex.index_price("ETHUSD", "2000")
    ex.place_order(1, "ETHUSD", "Buy", "Limit", qty="1000", price="2000")
    ex.place_order(2, "ETHUSD", "Sell", "Market", qty="1000")
    [long] = ex.positions(1, "ETHUSD")
    assert (long.position_value, long.avg_price) == ("0.5", "2000.00")
    assert ex.wallet(1, "ETH").wallet_balance == "0.9999"  # maker 0.02% of 0.5 ETH

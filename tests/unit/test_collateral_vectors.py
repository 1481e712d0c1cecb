"""The collateral worked examples C1-C8 of next-mechanics §4.7 through the public interfaces.

`perpx calc account` (a throwaway engine: the clearing's own figures) and `perpx.Exchange`
(accounts funded, positions traded, prices moved). Each example is checked at its exact
value (a `Fraction` or `Decimal` from the spec's formula), at the integer perpx keeps, and,
where the spec prints a rounding, at the printed figure from the exact one. The open
questions §7 N1 (interest truncated), N6 (default table), N7 (the ratio applies to equity),
N8 (no borrow IM on derivatives liabilities), N9 (conversion order) and N18 (interest at
hh:05, repayment refused hh:04:00-hh:05:30) are pinned here too.
"""

from __future__ import annotations

import json
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

from typer.testing import CliRunner

from perpx import Exchange
from perpx.calculator import collateral_table
from perpx.cli import app
from perpx.convert import format_atoms
from perpx.core.account.collateral import (
    BORROW_RATE_ONE,
    HOUR_MS,
    CollateralCoin,
    CollateralTable,
    CollateralTier,
    default_collateral,
    interest_atoms,
)
from perpx.core.events import Converted, InterestCharged
from perpx.core.numbers import RATE_ONE

runner = CliRunner()
# B-CVR's illustrative BTC tiers (§4.2), as `--ratio` takes them: ratio:up-to-quantity.
BTC_TIERS = "BTC=0.98:10,0.95:20,0.90:30,0.85:40,0.80:50,0"
# C6: BTCUSDT index 60,000 and BTCUSD index 59,970 -> usdtRate 0.9995; USDCUSDT spot 1.0002.
C6_ARGS = ("--coin", "BTC=1", "--coin", "USDT=1500", "--coin", "USDC=2000",
           "--position", "BTCUSDT:2@61000", "--index", "BTCUSDT=60000",
           "--usdt-rate", "0.9995", "--usdt-price", "USDC=1.0002", "--ratio", BTC_TIERS)


def calc_account(*args: str) -> dict[str, Any]:
    """Run `perpx calc account ... --json` and return its figures."""
    result = runner.invoke(app, ["calc", "account", *args, "--json"])
    assert result.exit_code == 0, result.output
    figures: dict[str, Any] = json.loads(result.output)
    return figures


def dp(value: Fraction | Decimal, places: int, rounding: str = ROUND_HALF_UP) -> Decimal:
    """Return an exact value as the spec prints it: `places` decimals."""
    exact = Decimal(value.numerator) / Decimal(value.denominator) if isinstance(
        value, Fraction) else value
    return exact.quantize(Decimal(1).scaleb(-places), rounding)


# -- C1-C3: collateral value -----------------------------------------------------------------


def test_c1_haircut_loss_of_buying_btc_with_usdt() -> None:
    """C1 [pub, seed 001]: 20,000 USDT at $0.9996 x 99.5% become 1 BTC at $19,992 x 95%."""
    before = calc_account("--coin", "USDT=20000", "--usdt-rate", "0.9996",
                          "--ratio", "USDT=0.995")["coins"]["USDT"]
    # BTC's USD price is the BTCUSDT index times the USDT rate (§4.1): 20,000 x 0.9996.
    after = calc_account("--coin", "BTC=1", "--index", "BTCUSDT=20000", "--usdt-rate", "0.9996",
                         "--ratio", "BTC=0.95")["coins"]["BTC"]
    assert after["usd_price"] == "19992"
    assert before["collateral_value"] == "19892.04"
    assert after["collateral_value"] == "18992.4"
    loss = Decimal(before["collateral_value"]) - Decimal(after["collateral_value"])
    assert loss == Decimal("899.64")
    assert Fraction(20000) * Fraction("0.9996") * Fraction("0.995") - Fraction(19992) * Fraction(
        "0.95") == Fraction("899.64")


def test_c2_tiers_apply_slice_by_slice() -> None:
    """C2 [con on B-CVR]: 25 BTC = 10 x 0.98 + 10 x 0.95 + 5 x 0.90 = 23.80 BTC -> 1,428,000."""
    figures = calc_account("--coin", "BTC=25", "--index", "BTCUSDT=60000", "--ratio", BTC_TIERS)
    assert figures["coins"]["BTC"]["collateral_value"] == "1428000"
    assert figures["account"]["total_margin_balance"] == "1428000"
    assert figures["account"]["haircut"] == "72000"
    # Continuous at a tier edge: exactly 10 BTC count 9.8, a satoshi more adds 0.95 sat.
    table = collateral_table(ratios=[BTC_TIERS])
    btc = table.coins["BTC"]
    assert btc.collateral_atoms(10 * 10**8) == 98 * 10**7
    assert btc.collateral_atoms(10 * 10**8 + 100) == 98 * 10**7 + 95
    assert btc.collateral_atoms(60 * 10**8) == (98 + 95 + 90 + 85 + 80) * 10**7  # > 50: 0


def test_c3_bitget_tiers() -> None:
    """C3 [pub, BG-CVR]: 1 BTC + 60,000 APT -> 90,000; 11M USDT in three tiers -> 10,875,000."""
    mixed = calc_account("--coin", "BTC=1", "--index", "BTCUSDT=50000", "--ratio", "BTC=1",
                         "--coin", "APT=60000", "--usd-price", "APT=1",
                         "--ratio", "APT=0.8:50000,0")
    assert mixed["coins"]["APT"]["collateral_value"] == "40000"
    assert mixed["account"]["total_margin_balance"] == "90000"
    usdt = calc_account("--coin", "USDT=11000000",
                        "--ratio", "USDT=1:5000000,0.98:10000000,0.975")
    assert usdt["account"]["total_margin_balance"] == "10875000"


# -- C4, C5: interest (§4.4; §7 N1: truncated to the atom) ------------------------------------


def test_c4_btc_interest_truncated() -> None:
    """C4 [drv, borrow-history sample]: 1.06333265702840778 BTC x 0.000001216904 per hour."""
    exact = Decimal("1.06333265702840778") * Decimal("0.000001216904")
    assert str(exact)[:12] == "0.0000012939"
    assert dp(exact, 8, ROUND_DOWN) == Decimal("0.00000129")  # borrowCost as printed
    btc = default_collateral().coins["BTC"]
    assert btc.hourly_borrow_rate == 1_216_904 * 10**6
    # perpx carries the liability in atoms: the amount rounded up to 1.06333266 BTC.
    assert interest_atoms(btc, 106_333_266, 0) == 129
    # Through the calculator: a realised BTC liability (negative wallet) bears it all.
    figures = calc_account("--coin", "BTC=-1.06333266", "--coin", "USDT=100000",
                           "--index", "BTCUSDT=60000")
    assert figures["coins"]["BTC"]["borrow_amount"] == "1.06333266"
    assert figures["coins"]["BTC"]["free_borrow_amount"] == "0"
    assert figures["coins"]["BTC"]["interest_per_hour"] == "0.00000129"


def test_c5_usdt_interest_and_penalty() -> None:
    """C5 [con]: 500 USDT x 0.000014621596 = 0.0073108 (printed); x 1.2^3 = 0.01263306."""
    rate = Decimal("0.000014621596")
    exact = 500 * rate
    assert exact == Decimal("0.007310798")
    assert dp(exact, 7) == Decimal("0.0073108")  # as the spec prints it
    figures = calc_account("--coin", "USDT=-500")
    assert figures["coins"]["USDT"]["interest_per_hour"] == "0.00731079"  # truncated (N1)
    # Penalty above the borrowing limit: borrow x rate x utilisation^3, utilisation 1.2.
    penalty = exact * Decimal("1.728")
    assert penalty == Decimal("0.012633058944")
    assert dp(penalty, 8) == Decimal("0.01263306")  # as the spec prints it
    # perpx's limit in atoms: 416.66666667 USDT, a utilisation a hair under 1.2; truncated.
    limit = 41_666_666_667
    booked = Fraction(500 * 10**8) ** 4 * Fraction(14_621_596_000_000) / (
        Fraction(limit) ** 3 * BORROW_RATE_ONE)
    assert int(booked) == 1_263_305
    figures = calc_account("--coin", "USDT=-500", "--borrow-limit", "USDT=416.66666667")
    assert figures["coins"]["USDT"]["interest_per_hour"] == "0.01263305"


# -- C6, C7: the multi-coin account and its liquidation -------------------------------------


def c6_table() -> CollateralTable:
    """C6's venue: usdtRate 0.9995, USDC at 1.0002 USDT, BTC on B-CVR's tiers."""
    return collateral_table("0.9995", [BTC_TIERS], [], ["USDC=1.0002"])


def c6_exchange() -> Exchange:
    """Account 1 as C6 has it, built by trading: 1 BTC, 1,500 USDT, 2,000 USDC, long 2 @ 61,000.

    It deposits 1,567.10 USDT, of which the taker fee of the opening buy takes 67.10
    (2 x 61,000 x 0.055%); account 2 sells to it. Index = mark = 60,000 afterwards.
    """
    ex = Exchange(["BTCUSDT"], collateral=c6_table(), check_invariants=True)
    ex.deposit(1, "1", "BTC")
    ex.deposit(1, "1567.1")
    ex.deposit(1, "2000", "USDC")
    ex.deposit(2, "100000")
    ex.index_price("BTCUSDT", "61000")
    assert ex.place_order(2, "BTCUSDT", "Sell", "Limit", qty="2", price="61000").ok
    assert ex.place_order(1, "BTCUSDT", "Buy", "Market", qty="2").ok
    move(ex, "60000")
    return ex


def move(ex: Exchange, price: str, *, index: bool = True) -> list[object]:
    """Move BTCUSDT's index (unless `index` is False) and then its mark to `price`."""
    events: list[object] = []
    if index:
        events += ex.index_price("BTCUSDT", price).events
    events += ex.mark_price("BTCUSDT", price).events
    return events


def test_c6_through_the_calculator() -> None:
    """C6 [con]: MB 60,270.2498; IM 12,054.3598; MM 660.0598; IMR 0.2000; MMR 0.0109."""
    figures = calc_account(*C6_ARGS)
    coins, total = figures["coins"], figures["account"]
    assert coins["BTC"]["usd_price"] == "59970" and coins["USDC"]["usd_price"] == "0.9996999"
    assert coins["BTC"]["collateral_value"] == "58770.6"
    assert coins["USDT"]["equity"] == "-500" and coins["USDT"]["usd_value"] == "-499.75"
    assert coins["USDT"]["borrow_amount"] == "500"
    assert coins["USDT"]["free_borrow_amount"] == "500"  # unrealised: interest-free
    assert coins["USDT"]["position_im"] == "12060.39"  # 12,000 + fee to close 60.39
    assert coins["USDT"]["position_mm"] == "660.39"
    assert total["total_margin_balance"] == "60270.2498"
    assert total["total_equity"] == "61469.6498"
    # IM and MM in USD, exact (rounded up to the atom they need none); the spec prints 4 dp.
    assert total["total_initial_margin"] == "12054.359805"
    assert dp(Decimal(total["total_initial_margin"]), 4) == Decimal("12054.3598")
    assert total["total_maintenance_margin"] == "660.059805"
    assert dp(Decimal(total["total_maintenance_margin"]), 4) == Decimal("660.0598")
    # Rates truncated to 4 dp, as Bybit prints them (§4.3): 0.200004... and 0.010951...
    assert total["account_im_rate"] == "0.2000" and total["account_mm_rate"] == "0.0109"
    assert total["total_available_balance"] == "48215.889995"
    assert dp(Decimal(total["total_available_balance"]), 2) == Decimal("48215.89")
    # N8: the 500 USDT liability adds no IM or MM: both are the position's alone.
    assert Decimal(total["total_initial_margin"]) == Decimal("12060.39") * Decimal("0.9995")


def test_c6_through_the_exchange() -> None:
    """C6 again, with the account built by deposits and a trade: the same USD figures."""
    ex = c6_exchange()
    clearing = ex.engine.clearing
    account = clearing.account(1)
    assert account is not None and account.balances["USDT"] == 1500 * 10**8
    risk = clearing.account_risk(account)
    assert format_atoms(risk.margin_balance_atoms) == "60270.2498"
    assert format_atoms(risk.total_equity_atoms) == "61469.6498"
    assert format_atoms(risk.total_im_atoms) == "12054.359805"
    assert format_atoms(risk.mm_atoms) == "660.059805"
    assert format_atoms(risk.available_atoms) == "48215.889995"
    assert clearing.liability_atoms(account, "USDT") == 500 * 10**8
    # The fast path of the order check agrees with the pool (in USDT at 0.9995).
    assert account.model.available_atoms(clearing, account, "USDT") == (
        clearing.figures(account, "USDT").available_atoms)


def c7_exact(collateral_moves: bool) -> Fraction:
    """C7's P where MB(P) = MM(P), with usdtRate 0.9995 (§4.7)."""
    rate = Fraction("0.9995")
    # 0.9995(0.98P + 1,500 + 2(P - 61,000)) + 1,999.3998 = 0.9995(0.01P + 60.39)
    if collateral_moves:
        return (Fraction("120560.39") - Fraction("1999.3998") / rate) / Fraction("2.97")
    return (Fraction("120560.39") - Fraction("60769.9998") / rate) / Fraction("1.99")


def test_c7_liquidation_prices_through_the_calculator() -> None:
    """C7 [con]: MMR reaches 100% at ~39,919.19 with the BTC collateral falling, 30,030.15 held."""
    assert dp(c7_exact(True), 2) == Decimal("39919.19")
    assert dp(c7_exact(False), 2) == Decimal("30030.15")
    total = calc_account(*C6_ARGS)["account"]
    # The first tick (0.10) at or under the exact price: the mark that breaches.
    assert total["liq_below_BTCUSDT_index_and_mark"] == "39919.10"
    assert total["liq_below_BTCUSDT_mark_only"] == "30030.10"
    assert total["liq_above_BTCUSDT_index_and_mark"] == ""
    # The account at those marks (the later --index wins): breached at 39,919.1 only.
    at = calc_account(*C6_ARGS, "--index", "BTCUSDT=39919.1")["account"]
    assert at["liquidatable"] == "yes" and at["account_mm_rate"] == "1.0005"
    above = calc_account(*C6_ARGS, "--index", "BTCUSDT=39919.2")["account"]
    assert above["liquidatable"] == "no" and above["account_mm_rate"] == "0.9999"


def test_c7_through_the_exchange_collateral_falling() -> None:
    """The BTC-collateral account's liquidation starts at 39,919.1 (index = mark), not 39,919.2.

    Step 2 of §4.5 runs first: the USDT liability is repaid by converting BTC, then USDC, in
    liquidation order (automatic conversions).
    """
    ex = c6_exchange()
    assert not [e for e in move(ex, "39919.2") if isinstance(e, Converted)]
    converted = [e for e in move(ex, "39919.1") if isinstance(e, Converted)]
    assert [(e.sold_coin, e.bought_coin, e.automatic) for e in converted] == [
        ("BTC", "USDT", True), ("USDC", "USDT", True)]
    ex.check_invariants()


def test_c7_through_the_exchange_collateral_held() -> None:
    """With the BTC collateral held at 59,970 (the index stays), only at 30,030.1."""
    ex = c6_exchange()
    for price in ("39919.1", "30030.2"):
        assert not [e for e in move(ex, price, index=False) if isinstance(e, Converted)]
    converted = [e for e in move(ex, "30030.1", index=False) if isinstance(e, Converted)]
    assert converted and converted[0].sold_coin == "BTC"
    assert converted[0].sold_px_e8 == 59_970 * 10**8


# -- C8, N9: conversions -----------------------------------------------------------------------


def test_c8_conversion_grossed_up_by_its_cost() -> None:
    """C8 [pub, BN-MA]: -10,000 USDT with a 2.5% haircut converts 10,000/0.975 = 10,256.41 USD.

    perpx's analogue is the conversion fee (§4.5): at 2.5% the desk takes the same gross-up.
    """
    base = default_collateral()
    table = CollateralTable(tuple(base.coins.values()), base.usdt_rate_e8,
                            conversion_fee_rate=2_500_000)
    ex = Exchange(["BTCUSDT"], collateral=table, check_invariants=True)
    ex.deposit(1, "1", "BTC")
    ex.deposit(1, "60.5")  # the two taker fees: 33 + 27.5
    ex.deposit(2, "100000")
    ex.index_price("BTCUSDT", "60000")
    assert ex.place_order(2, "BTCUSDT", "Sell", "Limit", qty="1", price="60000").ok
    assert ex.place_order(1, "BTCUSDT", "Buy", "Market", qty="1").ok
    ex.index_price("BTCUSDT", "50000")
    assert ex.place_order(2, "BTCUSDT", "Buy", "Limit", qty="1", price="50000").ok
    assert ex.place_order(1, "BTCUSDT", "Sell", "Market", qty="1", reduce_only=True).ok
    account = ex.engine.clearing.account(1)
    assert account is not None and account.balances["USDT"] == -10_000 * 10**8
    result = ex.repay(1, "USDT")
    assert result.ok
    [conversion] = [e for e in result.events if isinstance(e, Converted)]
    assert not conversion.automatic
    # Enough BTC to buy the liability, rounded up to the satoshi: a hair more USDT comes back.
    over = conversion.bought_atoms - 10_000 * 10**8
    assert 0 <= over < conversion.sold_px_e8 // 10**8
    sold_usd = Fraction(conversion.sold_atoms * conversion.sold_px_e8, 10**16)
    assert dp(Fraction(10_000) / Fraction("0.975"), 2) == Decimal("10256.41")
    assert dp(sold_usd, 2) == Decimal("10256.41")
    assert sold_usd >= Fraction(10_000) / Fraction("0.975")  # rounded up: the desk never loses
    assert account.balances["USDT"] == over
    ex.check_invariants()


def test_n9_conversion_order_ascending_then_lowest_ratio() -> None:
    """N9: ETH (order 10) before BTC (11) before USDC (20); ties: the lowest ratio first."""
    base = default_collateral()
    ex = Exchange(["BTCUSDT", "ETHUSDT"], check_invariants=True)
    for coin, amount in (("BTC", "0.001"), ("ETH", "0.01"), ("USDC", "1000")):
        ex.deposit(1, amount, coin)
    ex.deposit(2, "100000")
    ex.index_price("BTCUSDT", "60000")
    ex.index_price("ETHUSDT", "3000")
    assert ex.place_order(2, "BTCUSDT", "Sell", "Limit", qty="0.1", price="60000").ok
    assert ex.place_order(1, "BTCUSDT", "Buy", "Market", qty="0.1").ok
    ex.index_price("BTCUSDT", "54000")
    assert ex.place_order(2, "BTCUSDT", "Buy", "Limit", qty="0.1", price="54000").ok
    assert ex.place_order(1, "BTCUSDT", "Sell", "Market", qty="0.1", reduce_only=True).ok
    result = ex.repay(1)
    assert [e.sold_coin for e in result.events if isinstance(e, Converted)] == [
        "ETH", "BTC", "USDC"]
    assert base.coins["ETH"].liquidation_order < base.coins["BTC"].liquidation_order
    # A tie in liquidation order: the coin with the lower first-tier ratio goes first.
    tied = CollateralTable((
        CollateralCoin("USDT", (CollateralTier(0, None, RATE_ONE),), switchable=False),
        CollateralCoin("BTC", (CollateralTier(0, None, 90_000_000),), price_symbol="BTCUSDT",
                       liquidation_order=5),
        CollateralCoin("ETH", (CollateralTier(0, None, 95_000_000),), price_symbol="ETHUSDT",
                       liquidation_order=5)))
    ex = Exchange(["BTCUSDT", "ETHUSDT"], collateral=tied, check_invariants=True)
    ex.deposit(1, "0.01", "BTC")
    ex.deposit(1, "0.2", "ETH")
    ex.deposit(2, "100000")
    ex.index_price("BTCUSDT", "60000")
    ex.index_price("ETHUSDT", "3000")
    assert ex.place_order(2, "ETHUSDT", "Sell", "Limit", qty="1", price="3000").ok
    assert ex.place_order(1, "ETHUSDT", "Buy", "Market", qty="1").ok
    ex.index_price("ETHUSDT", "2900")
    assert ex.place_order(2, "ETHUSDT", "Buy", "Limit", qty="1", price="2900").ok
    assert ex.place_order(1, "ETHUSDT", "Sell", "Market", qty="1", reduce_only=True).ok
    result = ex.repay(1)
    assert next(e.sold_coin for e in result.events if isinstance(e, Converted)) == "BTC"


# -- N6, N7: the default table, the ratio on equity ----------------------------------------------


def test_n6_default_table() -> None:
    """N6: USDT and USDC count in full, BTC and ETH at 0.95, one flat tier each (not Bybit's)."""
    table = default_collateral()
    ratios = {c: [(t.min_atoms, t.max_atoms, t.ratio) for t in terms.tiers]
              for c, terms in table.coins.items()}
    assert ratios == {"USDT": [(0, None, RATE_ONE)], "USDC": [(0, None, RATE_ONE)],
                      "BTC": [(0, None, 95_000_000)], "ETH": [(0, None, 95_000_000)]}
    assert table.usdt_rate_e8 == 10**8
    assert not table.coins["USDT"].switchable and not table.coins["USDC"].switchable


def test_n7_ratio_on_equity_with_unrealised_pnl() -> None:
    """N7: the ratio applies to wallet + uPnL when positive; a negative equity counts in full."""
    # 1 BTC and a long of 60,000 BTCUSD contracts from 60,000, marked at 50,000: uPnL
    # 60,000/60,000 - 60,000/50,000 = -0.2 BTC, equity 0.8 BTC at 0.95.
    figures = calc_account("--coin", "BTC=1", "--position", "BTCUSD:60000@60000",
                           "--index", "BTCUSD=50000", "--index", "BTCUSDT=50000")
    btc = figures["coins"]["BTC"]
    assert btc["equity"] == "0.8"
    assert btc["collateral_value"] == "38000"  # 0.8 x 0.95 x 50,000
    losing = calc_account("--coin", "BTC=0.1", "--position", "BTCUSD:60000@60000",
                          "--index", "BTCUSD=50000", "--index", "BTCUSDT=50000",
                          "--coin", "USDT=50000")
    assert losing["coins"]["BTC"]["equity"] == "-0.1"
    assert losing["coins"]["BTC"]["collateral_value"] == "-5000"  # in full, no ratio


# -- N18: interest at hh:05, repayment refused hh:04:00-hh:05:30 ---------------------------------


def test_n18_interest_at_hh05_and_the_repay_window() -> None:
    """N18: the realised part of a USDT liability bears interest, charged at hh:05 exactly."""
    start = 1_677_628_800_000  # 2023-03-01 00:00 UTC
    ex = Exchange(["BTCUSDT"], start_ms=start, check_invariants=True)
    ex.deposit(1, "1", "BTC")  # BTC only: the opening fee is a realised USDT liability
    ex.deposit(2, "100000")
    ex.index_price("BTCUSDT", "60000")
    assert ex.place_order(2, "BTCUSDT", "Sell", "Limit", qty="1", price="60000").ok
    assert ex.place_order(1, "BTCUSDT", "Buy", "Market", qty="1").ok
    clearing = ex.engine.clearing
    account = clearing.account(1)
    assert account is not None and account.balances["USDT"] == -33 * 10**8
    ex.at(start + 4 * 60_000 + 59_999)
    assert not [e for e in ex.tick().events if isinstance(e, InterestCharged)]
    refused = ex.repay(1, "USDT")
    assert not refused.ok and refused.reject is not None
    assert refused.reject.name == "REPAY_WINDOW_CLOSED"
    # The liability is the negative equity (wallet -33 plus the uPnL at the mark), all of
    # it realised, so none is interest-free; charged before the hh:05 command runs.
    borrow = clearing.liability_atoms(account, "USDT")
    assert 0 < borrow <= 33 * 10**8
    ex.at(start + 5 * 60_000)
    [charged] = [e for e in ex.tick().events if isinstance(e, InterestCharged)]
    terms = clearing.collateral.coins["USDT"]
    assert (charged.coin, charged.borrow_atoms, charged.free_atoms) == ("USDT", borrow, 0)
    assert charged.cost_atoms == interest_atoms(terms, borrow, 0)
    assert charged.cost_atoms == borrow * 14_621_596 // 10**12  # truncated (N1)
    assert account.balances["USDT"] == -33 * 10**8 - charged.cost_atoms  # more liability
    ex.at(start + 5 * 60_000 + 29_999)
    assert not ex.repay(1, "USDT").ok
    ex.at(start + 5 * 60_000 + 30_000)
    repaid = ex.repay(1, "USDT")
    assert repaid.ok and clearing.liability_atoms(account, "USDT") == 0
    ex.at(start + HOUR_MS + 5 * 60_000)
    assert not [e for e in ex.tick().events if isinstance(e, InterestCharged)]
    ex.check_invariants()


def test_calc_account_refuses_what_it_cannot_price_or_parse() -> None:
    """Bad input is a usage error (exit 2), never a traceback."""
    for args in (["--coin", "APT=1"],  # no price for a coin no index prices
                 ["--coin", "BTC=1", "--ratio", "BTC=0.9:10,0.8"],  # no index for BTC
                 ["--coin", "USDT=1", "--ratio", "USDT=0.9,0.8"],  # tiers need RATIO:UPTO
                 ["--coin", "USDT=1", "--position", "BTCUSDT:1@60000"],  # no price for it
                 ["--coin", "USDT=1", "--position", "BTCUSDT:1@60000", "--index",
                  "BTCUSDT=60000", "--leverage", "BTCUSDT=500"],
                 ["--coin", "BTC=1", "--usd-price", "BTC=60000"],  # BTC is index-priced
                 ["--coin", "USDT=1", "--usd-price", "USDT=0.999"]):  # that is --usdt-rate
        result = runner.invoke(app, ["calc", "account", *args])
        assert result.exit_code == 2, (args, result.output)

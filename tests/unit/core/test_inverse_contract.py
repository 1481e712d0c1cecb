"""Unit tests of the inverse contract maths (next-mechanics §1): the worked examples I1-I13.

Each example is checked at the exact value its formula gives (as a `Fraction`) and at the
integer perpx keeps, with the rounding perpx applies (contract.py's rule: requirements and
charges up, credits down, a fill's value half up; docs/decisions.md 2026-12-06). Where the
source prints another rounding, that figure is checked separately, from the exact value, and
the difference is said. Prices use BTCUSD's bundled scales (tick 0.10 USD, 1 USD contracts)
unless the example needs a finer or coarser tick, which is then built from the same item.
Open questions §7 N1, N2 and N16 are pinned here too.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from fractions import Fraction
from importlib import resources
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perpx.convert import format_atoms, to_atoms, to_lots, to_rate, to_ticks
from perpx.core import calc, liqprice
from perpx.core.contract import UNREACHABLE_PRICE_TICKS, ContractMaths, InverseContract
from perpx.core.enums import Side
from perpx.core.instruments import InstrumentSpec, LiquidationFormula
from perpx.core.numbers import RATE_ONE
from perpx.core.prices.funding import position_funding_atoms
from perpx.instruments import spec_from_bybit
from support.builders import btcusd

BUY, SELL = Side.BUY, Side.SELL
R = RATE_ONE
BTCUSD = btcusd()
INVERSE: ContractMaths = BTCUSD.contract  # typed as the interface: mypy checks it fits


def inverse_item() -> dict[str, Any]:
    """The bundled BTCUSD instruments-info item, to build variants of."""
    text = resources.files("perpx.instruments").joinpath("inverse.json").read_text("utf-8")
    items = {item["symbol"]: item for item in json.loads(text)["instruments"]}
    return copy.deepcopy(items["BTCUSD"])


def with_tick(tick: str, *, taker: str = "0.00055",
              ladder: list[dict[str, Any]] | None = None) -> InstrumentSpec:
    """BTCUSD with another tick size (and taker fee or ladder), as a table would list it."""
    item = inverse_item()
    item["priceFilter"] = {"minPrice": tick, "maxPrice": "1999999", "tickSize": tick}
    item["feeRates"]["takerFeeRate"] = taker
    if ladder is not None:
        item["riskLimits"] = ladder
    return spec_from_bybit(item)


def coin(atoms: int) -> str:
    return format_atoms(atoms)


def exact_atoms(value: Fraction) -> Fraction:
    """A coin amount in atoms, exact."""
    return value * 10**8


def rounded(value: Fraction, places: int, mode: str) -> Decimal:
    """Round an exact fraction to `places` decimals with a `decimal` rounding mode."""
    quotient = Decimal(value.numerator) / Decimal(value.denominator)
    return quotient.quantize(Decimal(1).scaleb(-places), rounding=mode)


def ticks(price: str, spec: InstrumentSpec = BTCUSD) -> int:
    return to_ticks(spec, price)


def lots(qty: str, spec: InstrumentSpec = BTCUSD) -> int:
    return to_lots(spec, qty)


# --- the instrument -----------------------------------------------------------------------------

def test_btcusd_is_an_inverse_perpetual_settled_in_btc_with_the_published_spec() -> None:
    """§1.1 [FIX-BYTEX]: tick 0.10, 1-contract lots, caps ±0.5%, tiers 150 / 300 BTC."""
    assert isinstance(BTCUSD.contract, InverseContract)
    assert (BTCUSD.base_coin, BTCUSD.quote_coin, BTCUSD.settle_coin) == ("BTC", "USD", "BTC")
    assert (BTCUSD.tick_size, BTCUSD.qty_step) == ("0.10", "1")
    assert BTCUSD.upper_funding_rate == to_rate("0.005") == -BTCUSD.lower_funding_rate
    tiers = [(t.limit_atoms, t.mmr, t.imr, t.mm_deduction_atoms) for t in BTCUSD.risk_tiers]
    assert tiers == [(to_atoms("150"), to_rate("0.005"), to_rate("0.01"), 0),
                     (to_atoms("300"), to_rate("0.01"), to_rate("0.015"), to_atoms("0.75"))]
    # One contract at one tick is worth k = 10**8 x 10**8 / 10**7 atoms of BTC.
    assert BTCUSD.contract.atoms_ticks_per_lot == 10**9


def test_coin_atoms_are_satoshis_so_8_dp_wire_values_are_exact() -> None:
    """§0: coin amounts go to 8 decimals on the wire; perpx's atom is 10**-8 of any coin."""
    assert to_atoms("0.01092319") == 1_092_319
    assert coin(1_092_319) == "0.01092319"


# --- I1-I3: value, average entry, P&L ------------------------------------------------------------

def test_i1_average_entry_is_the_harmonic_mean() -> None:
    """I1 [pub] B-PNL-INV: 1,000 @ 5,000 + 2,000 @ 6,000: value 0.5333.., AEP 5,625.00."""
    value = (INVERSE.entry_value_atoms(ticks("5000"), lots("1000"))
             + INVERSE.entry_value_atoms(ticks("6000"), lots("2000")))
    exact = Fraction(1000, 5000) + Fraction(2000, 6000)
    # Each fill's value rounds half up to a satoshi: 0.2 + 0.33333333.
    assert coin(value) == "0.53333333"
    # The page prints 0.53333334 (the exact sum rounded up); perpx keeps the fills' values.
    assert rounded(exact, 8, ROUND_CEILING) == Decimal("0.53333334")
    numerator, denominator = INVERSE.average_entry_fraction(value, lots("3000"))
    assert Fraction(numerator, denominator) / 10 == Fraction(3000) / (Fraction(value, 10**8))
    assert INVERSE.average_entry_display_ticks(value, lots("3000")) == ticks("5625")
    assert Fraction(3000) / exact == 5625  # the page's AEP from the exact value


def test_i2_long_upnl_is_the_exact_value_rounded_down() -> None:
    """I2 [pub] B-PNL-INV: long 1,000 @ 5,000, mark 5,500: 1,000(1/5,000 - 1/5,500) BTC.

    Exact 0.0181818..; perpx floors an unrealised P&L (seed 004 and the API, I10), so
    0.01818181. The spec's 0.01818182 is that exact value half up (§7 N1), the page's
    0.01819 its bracket rounded up first: neither is what perpx shows (docs/decisions.md).
    """
    entry = INVERSE.entry_value_atoms(ticks("5000"), lots("1000"))
    upnl = INVERSE.unrealised_pnl_atoms(BUY, entry, lots("1000"), ticks("5500"))
    exact = Fraction(1000, 5000) - Fraction(1000, 5500)
    assert upnl == int(exact_atoms(exact))  # floor of a positive value
    assert coin(upnl) == "0.01818181"
    assert rounded(exact, 8, ROUND_HALF_UP) == Decimal("0.01818182")


def test_i3_short_upnl() -> None:
    """I3 [drv]: short 1,000 @ 5,000, mark 4,500: 1,000(1/4,500 - 1/5,000) = 0.02222222."""
    entry = INVERSE.entry_value_atoms(ticks("5000"), lots("1000"))
    upnl = INVERSE.unrealised_pnl_atoms(SELL, entry, lots("1000"), ticks("4500"))
    exact = Fraction(1000, 4500) - Fraction(1000, 5000)
    assert coin(upnl) == "0.02222222" == str(rounded(exact, 8, ROUND_FLOOR))


def test_a_close_realises_the_fill_values_difference_and_is_zero_sum() -> None:
    """A reduce keeps EP; long realises ``C_x(1/EP - 1/X)`` (§1.2), the short the opposite.

    The exit value is the fill's own (half up), the same integer for both sides, so a long
    closing against a short closing at the same price realise opposite amounts exactly.
    """
    entry = INVERSE.entry_value_atoms(ticks("5000"), lots("1000"))
    long_pnl, released = INVERSE.realised_pnl_on_close_atoms(
        BUY, entry, lots("1000"), lots("400"), ticks("5500"))
    short_pnl, short_released = INVERSE.realised_pnl_on_close_atoms(
        SELL, entry, lots("1000"), lots("400"), ticks("5500"))
    assert released == short_released == to_atoms("0.08")
    exact = 400 * (Fraction(1, 5000) - Fraction(1, 5500))  # 0.00727272..
    assert coin(long_pnl) == "0.00727273"  # 0.08 - round(400/5,500) = 0.08 - 0.07272727
    assert long_pnl == -short_pnl
    assert abs(exact_atoms(exact) - long_pnl) <= Fraction(1, 2)


# --- I4, I5: initial margin and order cost ------------------------------------------------------

def test_i4_order_initial_margin() -> None:
    """I4 [pub] B-IM-INV: buy 12,000 @ 8,000, 50x: IM = 12,000/(8,000 x 50) = 0.03 BTC."""
    value = INVERSE.value_ceil_atoms(ticks("8000"), lots("12000"))
    assert coin(INVERSE.initial_margin_atoms(value, 50 * R)) == "0.03"
    assert coin(calc.initial_margin_atoms(value, 50 * R)) == "0.03"


def test_i5_order_cost_with_the_exact_bankruptcy_price() -> None:
    """I5 [pub] B-COST-INV: buy 10,000 @ 6,400, 25x, f_t 0.075%.

    IM 0.0625, fee to open 0.001171875 charged as 0.00117188 (rounded up, §7 N1), fee to
    close at the unrounded BP 6,153.846.. = 10,000/6,153.846.. x 0.075% = 0.00121875, cost
    0.06489063: the exact figures the spec names beside the page's.
    """
    spec = with_tick("0.5", taker="0.00075")
    price, qty = ticks("6400", spec), lots("10000", spec)
    contract = spec.contract
    value = contract.value_ceil_atoms(price, qty)
    assert coin(value) == "1.5625"
    assert coin(contract.initial_margin_atoms(value, 25 * R)) == "0.0625"
    assert coin(contract.fill_fee_atoms(price, qty, spec.taker_fee_rate)) == "0.00117188"
    assert coin(contract.fee_to_close_atoms(BUY, value, 25 * R, spec.taker_fee_rate)) == (
        "0.00121875")
    cost = calc.order_cost_atoms(spec, BUY, price, qty, 25 * R, spec.taker_fee_rate)
    assert coin(cost) == "0.06489063"


def test_i5_printed_figures_come_from_a_bankruptcy_price_rounded_to_the_page_tick() -> None:
    """I5's printed 0.00121872 and 0.06489060: the page rounds BP to 6,154 first (§7 N2).

    The proposed decision (round BP toward safety before the fee) is not what perpx's order
    cost does: it would charge less than the exact fee to close, against perpx's rule that a
    requirement rounds up, and the linear order cost already uses the unrounded BP
    (docs/decisions.md). The page's figure is the fee of closing at that rounded price.
    """
    spec = with_tick("0.5", taker="0.00075")
    contract = spec.contract
    price, qty = ticks("6400", spec), lots("10000", spec)
    exact_bp = Fraction(6400 * 25, 26)
    page_bp = ticks("6154", spec)
    assert page_bp == -(-exact_bp * 2 // 1)  # 6,153.846.. up to the 0.5 tick
    close_fee = contract.fill_fee_atoms(page_bp, qty, spec.taker_fee_rate)
    assert coin(close_fee) == "0.00121872"
    value = contract.value_ceil_atoms(price, qty)
    printed = (contract.initial_margin_atoms(value, 25 * R)
               + contract.fill_fee_atoms(price, qty, spec.taker_fee_rate) + close_fee)
    assert coin(printed) == "0.0648906"
    # perpx's order cost: three atoms more, the fee at the exact BP.
    assert calc.order_cost_atoms(spec, BUY, price, qty, 25 * R,
                                 spec.taker_fee_rate) - printed == 3


def test_published_inverse_fee_example() -> None:
    """MECH §11 [pub]: 10,000 BTCUSD @ 8,000: taker 0.0006875 BTC (0.055%), maker 0.00025."""
    price, qty = ticks("8000"), lots("10000")
    assert coin(INVERSE.fill_fee_atoms(price, qty, to_rate("0.00055"))) == "0.0006875"
    assert coin(INVERSE.fill_fee_atoms(price, qty, to_rate("0.0002"))) == "0.00025"


def test_order_cost_for_a_short_at_1x_has_no_fee_to_close() -> None:
    """§1.5: a 1x short never goes bankrupt (BP = inf), so ``C/BP x f = 0``."""
    value = INVERSE.value_ceil_atoms(ticks("8000"), lots("10000"))
    assert INVERSE.fee_to_close_atoms(SELL, value, R, to_rate("0.00055")) == 0
    assert INVERSE.bankruptcy_price_ticks(SELL, ticks("8000"), R) == UNREACHABLE_PRICE_TICKS


# --- I7, I8, I13: bankruptcy and liquidation prices ---------------------------------------------

I7_ENTRY, I7_QTY = "50000", "60000"


def i7_price(side: Side, formula: LiquidationFormula) -> Fraction:
    spec = BTCUSD
    entry = INVERSE.entry_value_atoms(ticks(I7_ENTRY), lots(I7_QTY))
    assert coin(entry) == "1.2"
    tier = spec.risk_tiers[0]
    chosen = dataclassed_formula(spec, formula)
    numerator, denominator = liqprice.isolated_liquidation_price_selected_fraction(
        chosen, side, entry, lots(I7_QTY), 10 * R, 0, tier.mmr, tier.mm_deduction_atoms,
        spec.taker_fee_rate)
    return Fraction(numerator, denominator) / 10  # ticks of 0.1 to USD


def dataclassed_formula(spec: InstrumentSpec, formula: LiquidationFormula) -> InstrumentSpec:
    return dataclasses.replace(spec, liq_price_formula=formula)


def test_i7_isolated_long_liquidation_and_bankruptcy_prices() -> None:
    """I7: long 60,000 USD @ 50,000, 10x, MMR 0.5%: PV 1.2, IM 0.12, MM 0.006 BTC.

    2026 form (the default, §7 N16) 60,000 x 1.005 / 1.32 = 45,681.82; 2024 form
    60,000 / 1.314 = 45,662.10; BP 50,000 x 10/11 = 45,454.55.
    """
    entry = INVERSE.entry_value_atoms(ticks(I7_ENTRY), lots(I7_QTY))
    assert coin(INVERSE.initial_margin_atoms(entry, 10 * R)) == "0.12"
    assert coin(calc.maintenance_margin_at_rate_atoms(entry, to_rate("0.005"), 0, 0)) == "0.006"
    uta = i7_price(BUY, LiquidationFormula.UTA)
    legacy = i7_price(BUY, LiquidationFormula.LEGACY)
    assert uta == Fraction(60000) * Fraction(1005, 1000) / Fraction(132, 100)
    assert legacy == Fraction(60000) / Fraction(1314, 1000)
    assert (rounded(uta, 2, ROUND_HALF_UP), rounded(legacy, 2, ROUND_HALF_UP)) == (
        Decimal("45681.82"), Decimal("45662.10"))
    bust = INVERSE.bankruptcy_price_ticks(BUY, ticks(I7_ENTRY), 10 * R)
    assert bust == ticks("45454.5")  # 45,454.5454.. rounded away from the mark
    assert rounded(Fraction(50000 * 10, 11), 2, ROUND_HALF_UP) == Decimal("45454.55")


def test_i8_isolated_short_liquidation_and_bankruptcy_prices() -> None:
    """I8: the same short: 2026 form 55,277.78, 2024 form 55,248.62, BP 55,555.56."""
    uta = i7_price(SELL, LiquidationFormula.UTA)
    legacy = i7_price(SELL, LiquidationFormula.LEGACY)
    assert uta == Fraction(60000) * Fraction(995, 1000) / Fraction(108, 100)
    assert legacy == Fraction(60000) / Fraction(1086, 1000)
    assert (rounded(uta, 2, ROUND_HALF_UP), rounded(legacy, 2, ROUND_HALF_UP)) == (
        Decimal("55277.78"), Decimal("55248.62"))
    assert INVERSE.bankruptcy_price_ticks(SELL, ticks(I7_ENTRY), 10 * R) == ticks("55555.6")


def test_n16_the_2026_form_is_the_default_and_the_2024_form_is_selectable() -> None:
    """§7 N16: MM at the LP by default; ``liqPriceFormula: legacy`` picks MM at entry."""
    assert BTCUSD.liq_price_formula is LiquidationFormula.UTA
    item = inverse_item()
    item["liqPriceFormula"] = "legacy"
    assert spec_from_bybit(item).liq_price_formula is LiquidationFormula.LEGACY


def test_n16_extra_margin_goes_inside_the_bracket_of_the_2024_form() -> None:
    """§7 N16: ``C / [PV + IM - MM + extra]``, never the dimensionally wrong ``- extra/C``."""
    entry = INVERSE.entry_value_atoms(ticks(I7_ENTRY), lots(I7_QTY))
    numerator, denominator = INVERSE.isolated_liquidation_price_legacy_fraction(
        BUY, entry, lots(I7_QTY), 10 * R, to_atoms("0.1"), to_rate("0.005"), 0)
    assert Fraction(numerator, denominator) / 10 == Fraction(60000) / Fraction(1414, 1000)


def test_the_uta_form_solves_margin_plus_upnl_equals_mm_at_the_price() -> None:
    """§1.5 [drv]: long ``M + C/EP - C/P = C/P x MMR - ded``, extra kept as published."""
    entry = INVERSE.entry_value_atoms(ticks(I7_ENTRY), lots(I7_QTY))
    extra, mmr, fee = to_atoms("0.05"), to_rate("0.005"), to_rate("0.00055")
    numerator, denominator = INVERSE.isolated_liquidation_price_fraction(
        BUY, entry, lots(I7_QTY), 10 * R, extra, mmr, 0, fee)
    price = Fraction(numerator, denominator) / 10
    value = Fraction(60000) / price
    margin = Fraction(12, 100) + Fraction(extra, 10**8) / (1 + Fraction(fee, R))
    assert margin + Fraction(12, 10) - value == value * Fraction(mmr, R)


def test_i13_published_bankruptcy_price() -> None:
    """I13 [pub] B-ADL-OLD (MECH V14): long 7,890.08 @ 50x: BP = 7,735.3725.., shown 7,735.50.

    On a fine tick the exact value shows; on the page's 0.5 tick perpx rounds a long's BP
    down (away from the mark, DESIGN.md, as for linear contracts) to 7,735.0, where the
    page rounds up to 7,735.5: the exact value lies between the two.
    """
    fine = with_tick("0.0001")
    bust = fine.contract.bankruptcy_price_ticks(BUY, ticks("7890.08", fine), 50 * R)
    assert bust == ticks("7735.3725", fine)
    exact = Fraction(789008 * 50, 51 * 100)
    assert rounded(exact, 4, ROUND_FLOOR) == Decimal("7735.3725")
    coarse = with_tick("0.5")
    assert coarse.contract.bankruptcy_price_ticks(BUY, ticks("7890", coarse), 50 * R) == (
        ticks("7735", coarse))  # 7,735.29.. down to the 0.5 tick
    assert rounded(exact * 2, 0, ROUND_CEILING) / 2 == Decimal("7735.5")  # the page's


def test_bankruptcy_price_for_margin_is_where_the_loss_uses_the_margin_up() -> None:
    """§1.5: long ``C/BP = C/EP + M``, short ``C/BP = C/EP - M`` (none once M >= C/EP)."""
    entry = INVERSE.entry_value_atoms(ticks(I7_ENTRY), lots(I7_QTY))
    margin = to_atoms("0.12")
    assert INVERSE.bankruptcy_price_for_margin_ticks(BUY, entry, lots(I7_QTY), margin) == (
        INVERSE.bankruptcy_price_ticks(BUY, ticks(I7_ENTRY), 10 * R))
    assert INVERSE.bankruptcy_price_for_margin_ticks(SELL, entry, lots(I7_QTY), entry) == (
        UNREACHABLE_PRICE_TICKS)


# --- I9: maintenance margin with coin tiers -------------------------------------------------------

XYZ_LADDER = [
    {"id": n, "riskLimitValue": str(10 * n), "maintenanceMargin": f"0.0{n}",
     "initialMargin": f"0.0{n + 1}", "isLowestRisk": int(n == 1), "maxLeverage": "10",
     "mmDeduction": ""}
    for n in range(1, 6)
]


def test_i9_maintenance_margin_with_tiers_in_coin() -> None:
    """I9 [pub/drv] B-MM-INV: tiers <= 10/20/30/40/50 XYZ at 1-5%; long 10,000 @ 400, 10x.

    PV 25, IM 2.5 XYZ; tier 3's deduction 10 x 1% + 20 x 1% = 0.30 by the recursion, so
    MM = 25 x 3% - 0.30 = 0.45 (= 10 x 1% + 10 x 2% + 5 x 3%).
    """
    spec = with_tick("0.1", ladder=XYZ_LADDER)
    value = spec.contract.value_ceil_atoms(ticks("400", spec), lots("10000", spec))
    assert coin(value) == "25"
    assert coin(spec.contract.initial_margin_atoms(value, 10 * R)) == "2.5"
    tier = calc.tier_for_position(spec, value)
    assert (tier.tier_id, coin(tier.mm_deduction_atoms)) == (3, "0.3")
    assert coin(calc.maintenance_margin_atoms(spec, value, 0)) == "0.45"


# --- I10: the API's position example --------------------------------------------------------------

def test_i10_api_position_example() -> None:
    """I10 [drv] API position.mdx: short 300, avgPrice 27,464.50441675, mark 28,224.50.

    Bybit keeps the entry value in satoshis: 300 / 0.01092319 = 27,464.50441675 (8 dp), so
    the position's value is 0.01092319, and uPnL = floor(300/28,224.5) - 0.01092319 =
    -0.00029413 (exact -0.000294126..).
    """
    entry = to_atoms("0.01092319")
    numerator, denominator = INVERSE.average_entry_fraction(entry, lots("300"))
    assert rounded(Fraction(numerator, denominator) / 10, 8, ROUND_HALF_UP) == Decimal(
        "27464.50441675")
    upnl = INVERSE.unrealised_pnl_atoms(SELL, entry, lots("300"), ticks("28224.5"))
    assert coin(upnl) == "-0.00029413"
    exact = Fraction(300) / Fraction("28224.5") - Fraction(300) / Fraction("27464.50441675")
    assert rounded(exact, 8, ROUND_FLOOR) == Decimal("-0.00029413")


# --- I11: funding in coin ---------------------------------------------------------------------

def test_i11_funding_is_paid_in_coin_on_the_value_at_the_mark() -> None:
    """I11 [con] B-FFEE: long 10,000 BTCUSD, mark 8,000, rate +0.01%: 0.000125 BTC."""
    paid = position_funding_atoms(BTCUSD, ticks("8000"), lots("10000"), to_rate("0.0001"), True)
    assert coin(paid) == "0.000125"


# --- N1: which way each coin amount rounds --------------------------------------------------------

def test_n1_charges_round_up_and_credits_down() -> None:
    """§7 N1 as perpx applies it: charges up (I5's 0.00117188), the uPnL down (seed 004)."""
    value_up = INVERSE.value_ceil_atoms(ticks("8100"), lots("10000"))
    value_down = INVERSE.value_floor_atoms(ticks("8100"), lots("10000"))
    assert value_up - value_down == 1  # 1.2345679012.. either side
    assert INVERSE.entry_value_atoms(ticks("8100"), lots("10000")) == value_down  # half up
    received = position_funding_atoms(BTCUSD, ticks("8100"), lots("10000"), 100_000, False)
    paid = position_funding_atoms(BTCUSD, ticks("8100"), lots("10000"), 100_000, True)
    assert paid - received == 1


# --- identities any contract keeps --------------------------------------------------------------

prices = st.integers(10_000, 2_000_000)  # 1,000 .. 200,000 USD
quantities = st.integers(1, 10_000_000)
leverages = st.integers(100, 10_000).map(lambda hundredths: hundredths * R // 100)


@given(st.sampled_from([BUY, SELL]), prices, prices, quantities)
def test_upnl_is_the_exact_coin_pnl_rounded_down(side: Side, entry_price: int, mark: int,
                                                 qty: int) -> None:
    entry = INVERSE.entry_value_atoms(entry_price, qty)
    upnl = INVERSE.unrealised_pnl_atoms(side, entry, qty, mark)
    exact = side.sign * (entry - Fraction(qty * 10**9, mark))
    assert upnl <= exact < upnl + 1


@given(st.sampled_from([BUY, SELL]), prices, quantities, leverages)
def test_the_position_at_its_bankruptcy_price_has_lost_its_initial_margin(
        side: Side, entry_price: int, qty: int, leverage: int) -> None:
    """§1.5 at zero margin left, within the rounding of the price to a tick."""
    entry = INVERSE.entry_value_atoms(entry_price, qty)
    margin = INVERSE.initial_margin_atoms(entry, leverage)
    bust = INVERSE.bankruptcy_price_for_margin_ticks(side, entry, qty, margin)
    if bust == UNREACHABLE_PRICE_TICKS:
        assert side is SELL and margin >= entry
        return
    # Rounded away from the mark: the loss there is at least the margin (a tick's worth).
    assert INVERSE.unrealised_pnl_atoms(side, entry, qty, bust) <= -margin + 1
    nearer = bust + (1 if side is BUY else -1)
    assert INVERSE.unrealised_pnl_atoms(side, entry, qty, nearer) >= -margin - 1


@given(st.sampled_from([BUY, SELL]), prices, st.integers(1, 10**12), leverages,
       st.integers(0, 100_000))
def test_qty_for_cost_is_the_largest_that_fits(side: Side, price: int, cost: int,
                                               leverage: int, fee: int) -> None:
    qty = INVERSE.qty_for_cost_lots(side, price, cost, leverage, fee)
    def cost_of(lots_: int) -> int:
        return INVERSE.order_cost_atoms(side, INVERSE.value_ceil_atoms(price, lots_), leverage,
                                        fee)
    assert qty == 0 or cost_of(qty) <= cost
    assert cost_of(qty + 1) > cost


@pytest.mark.parametrize("side", [BUY, SELL])
def test_break_even_price_nets_the_taker_fee(side: Side) -> None:
    """Closing at the break-even price at 0.055% leaves zero, to a tick."""
    entry = INVERSE.entry_value_atoms(ticks("8000"), lots("10000"))
    price = INVERSE.break_even_price_ticks(side, entry, lots("10000"), 0, 0)
    assert price is not None
    net = (INVERSE.unrealised_pnl_atoms(side, entry, lots("10000"), price)
           - INVERSE.fill_fee_atoms(price, lots("10000"), to_rate("0.00055")))
    assert abs(net) <= INVERSE.value_ceil_atoms(price - 1, lots("10000")) - (
        INVERSE.value_floor_atoms(price, lots("10000")))

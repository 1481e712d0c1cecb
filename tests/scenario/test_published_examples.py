"""Published and seed worked examples, checked to the last unit against perpx.core.calc.

Loads tests/data/vectors/public_vectors.json and seed_examples.json and the examples of
tests/data/spec/perp-mechanics.md (copies; tests/data/README.md names their sources). Each
row names its source: a public vector id ("V15"), a spec section ("§1.6", the figure must be
printed in that section) or a seed case ("upl_long"); the figure is checked against the
source's own text before the formula is checked against it.
Where a source displays a rounded number, the exact value and the displayed one are tested
apart. Vectors a formula cannot reproduce as specified are strict xfails with the reason.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Callable
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from perpx.convert import to_atoms, to_lots, to_rate, to_ticks
from perpx.core.calc import (
    EXPIRY_SETTLEMENT_FEE_RATE,
    average_entry_display,
    average_entry_price_ticks,
    closed_pnl_atoms,
    fee_atoms,
    fee_to_close_atoms,
    hedge_im_mm_atoms,
    initial_margin_atoms,
    maintenance_margin_at_rate_atoms,
    maintenance_margin_atoms,
    mm_deduction_ladder_atoms,
    order_cost_atoms,
    order_loss_atoms,
    position_value_atoms,
    qty_for_cost_lots,
    realized_pnl_on_close_atoms,
    roi_rate,
    tier_for_position,
    unrealized_pnl_atoms,
)
from perpx.core.enums import Side
from perpx.core.instruments import InstrumentSpec, LiquidationFormula
from perpx.core.liqprice import (
    bankruptcy_price_for_margin_ticks,
    bankruptcy_price_ticks,
    cross_liquidation_price_legacy_ticks,
    isolated_liquidation_price_fraction,
    isolated_liquidation_price_legacy_ticks,
    isolated_liquidation_price_selected_fraction,
    isolated_liquidation_price_ticks,
    round_liquidation_price,
)
from perpx.instruments import spec_from_bybit
from support.builders import TEST_DATA, btcusdt, ethusdt

REPO_ROOT = Path(__file__).resolve().parents[2]
VECTORS = TEST_DATA / "vectors"
PUBLIC: dict[str, dict[str, Any]] = {
    case["id"]: case
    for case in json.loads((VECTORS / "public_vectors.json").read_text("utf-8"))["cases"]
}
SEEDS: dict[str, dict[str, Any]] = {
    case["id"]: case
    for case in json.loads((VECTORS / "seed_examples.json").read_text("utf-8"))["cases"]
}
SPEC_TEXT = (TEST_DATA / "spec" / "perp-mechanics.md").read_text("utf-8")

BUY, SELL = Side.BUY, Side.SELL
BTC = btcusdt()  # tick 0.10, step 0.001, taker 0.055%, the real 35-tier ladder
BTC_006 = btcusdt(taker_fee_rate=to_rate("0.0006"))  # the older 0.06% pages
BTC_0075 = btcusdt(taker_fee_rate=to_rate("0.00075"))  # the oldest order-cost page
ETH = ethusdt()  # tick 0.01, step 0.01


def cent_tick_btcusdt() -> InstrumentSpec:
    """BTCUSDT re-gridded to a 0.01 tick, the precision V1 prints its liquidation price in."""
    text = resources.files("perpx.instruments").joinpath("default.json").read_text("utf-8")
    item = copy.deepcopy(json.loads(text)["instruments"][0])
    assert item["symbol"] == "BTCUSDT"
    item["priceFilter"] = {"minPrice": "0.01", "maxPrice": "1999999.99", "tickSize": "0.01"}
    return spec_from_bybit(item)


CENT = cent_tick_btcusdt()


# --- units, from the printed figures ------------------------------------------------------

def plain(figure: str) -> str:
    return figure.replace(",", "").lstrip("+")


def px(spec: InstrumentSpec, price: str) -> int:
    return to_ticks(spec, plain(price))


def lots(spec: InstrumentSpec, size: str) -> int:
    return to_lots(spec, plain(size))


def usdt(amount: str) -> int:
    return to_atoms(plain(amount))


def x(leverage: str) -> int:
    return to_rate(leverage)


def value(spec: InstrumentSpec, price: str, size: str) -> int:
    return position_value_atoms(spec, px(spec, price), lots(spec, size))


# --- sources -------------------------------------------------------------------------------

def spec_section(section: str) -> str:
    """The text of spec section "§1.6" or "§12", up to the next heading."""
    number = section.lstrip("§")
    pattern = rf"^#{{2,3}} {re.escape(number)}\.?\s.*?(?=^#)"
    found = re.search(pattern, SPEC_TEXT, re.MULTILINE | re.DOTALL)
    assert found, f"no section {section} in perp-mechanics.md"
    return found.group(0)


def check_source(source: str, figure: str) -> None:
    """The figure under test is the one the source prints."""
    if source.startswith("V"):
        assert figure in PUBLIC[source]["expected"], (source, figure, PUBLIC[source]["expected"])
    elif source.startswith("§"):
        assert figure in spec_section(source), (source, figure)
    else:
        case_id, key = source.split(".")
        assert SEEDS[case_id]["expected"][key] == figure, (source, figure)


# --- money ---------------------------------------------------------------------------------

def _v17_total() -> int:
    im_at_mark = initial_margin_atoms(value(BTC, "50,500", "0.5"), x("10"))
    return im_at_mark + fee_to_close_atoms(BTC, BUY, px(BTC, "50,000"), lots(BTC, "0.5"), x("10"),
                                           BTC.taker_fee_rate)


def _usdc_short_total() -> int:
    im_at_mark = initial_margin_atoms(value(BTC, "50,500", "0.5"), x("10"))
    return im_at_mark + fee_to_close_atoms(BTC, SELL, px(BTC, "50,000"), lots(BTC, "0.5"),
                                           x("10"), BTC.taker_fee_rate)


def _usdc_old_total(side: Side) -> int:
    im_at_entry = initial_margin_atoms(value(BTC_006, "50,000", "0.5"), x("10"))
    return im_at_entry + fee_to_close_atoms(BTC_006, side, px(BTC_006, "50,000"),
                                            lots(BTC_006, "0.5"), x("10"),
                                            BTC_006.taker_fee_rate)


def _ftc(spec: InstrumentSpec, side: Side, price: str, size: str, leverage: str) -> int:
    return fee_to_close_atoms(spec, side, px(spec, price), lots(spec, size), x(leverage),
                              spec.taker_fee_rate)


def _cost(spec: InstrumentSpec, side: Side, price: str, size: str, leverage: str) -> int:
    return order_cost_atoms(spec, side, px(spec, price), lots(spec, size), x(leverage),
                            spec.taker_fee_rate)


def _upl(side: Side, size: str, entry: str, mark: str) -> int:
    return unrealized_pnl_atoms(BTC, side, value(BTC, entry, size), lots(BTC, size), px(BTC, mark))


def _closed_short_395() -> int:
    pnl, _ = realized_pnl_on_close_atoms(BTC, SELL, value(BTC, "6,000", "0.4"), lots(BTC, "0.4"),
                                         lots(BTC, "0.4"), px(BTC, "5,000"))
    open_fee = fee_atoms(value(BTC, "6,000", "0.4"), BTC.taker_fee_rate)
    close_fee = fee_atoms(value(BTC, "5,000", "0.4"), BTC.taker_fee_rate)
    return closed_pnl_atoms(pnl, open_fee, close_fee, usdt("2.10"))


MONEY: list[tuple[str, str, Callable[[], int]]] = [
    ("V2", "21.56", lambda: _ftc(BTC, BUY, "40,000", "1", "50")),
    ("V2", "221.56", lambda: maintenance_margin_atoms(BTC, value(BTC, "40,000", "1"),
                                                      _ftc(BTC, BUY, "40,000", "1", "50"))),
    ("V3", "400", lambda: initial_margin_atoms(value(BTC, "20,000", "1"), x("50"))),
    ("V3", "100", lambda: maintenance_margin_at_rate_atoms(value(BTC, "20,000", "1"),
                                                           to_rate("0.005"), 0, 0)),
    ("V15", "5,000", lambda: initial_margin_atoms(value(BTC_006, "50,000", "1"), x("10"))),
    ("V15", "30", lambda: fee_atoms(value(BTC_006, "50,000", "1"), BTC_006.taker_fee_rate)),
    ("V15", "27", lambda: _ftc(BTC_006, BUY, "50,000", "1", "10")),
    ("V15", "5,057", lambda: _cost(BTC_006, BUY, "50,000", "1", "10")),
    ("V17", "2,525", lambda: initial_margin_atoms(value(BTC, "50,500", "0.5"), x("10"))),
    ("V17", "12.375", lambda: _ftc(BTC, BUY, "50,000", "0.5", "10")),
    ("V17", "2,537.375", _v17_total),
    ("§1.1", "15.125", lambda: _ftc(BTC, SELL, "50,000", "0.5", "10")),
    ("§1.1", "2,540.125", _usdc_short_total),
    ("§1.1", "2,500", lambda: initial_margin_atoms(value(BTC, "50,000", "0.5"), x("10"))),
    ("§1.1", "13.50", lambda: _ftc(BTC_006, BUY, "50,000", "0.5", "10")),
    ("§1.1", "2,513.50", lambda: _usdc_old_total(BUY)),
    ("§1.1", "16.50", lambda: _ftc(BTC_006, SELL, "50,000", "0.5", "10")),
    ("§1.1", "2,516.50", lambda: _usdc_old_total(SELL)),
    ("§1.2", "21.56", lambda: _ftc(BTC, BUY, "40,000", "1", "50")),
    ("§1.2", "221.56", lambda: maintenance_margin_atoms(BTC, value(BTC, "40,000", "1"),
                                                        _ftc(BTC, BUY, "40,000", "1", "50"))),
    ("§1.2", "11,680", lambda: maintenance_margin_atoms(BTC, usdt("2,300,000"), 0)),
    ("§1.6", "5,063", lambda: _cost(BTC_006, SELL, "50,000", "1", "10")),
    ("§1.6", "160", lambda: initial_margin_atoms(value(BTC_0075, "8,000", "1"), x("50"))),
    ("§1.6", "6", lambda: fee_atoms(value(BTC_0075, "8,000", "1"), BTC_0075.taker_fee_rate)),
    ("§1.6", "5.88", lambda: _ftc(BTC_0075, BUY, "8,000", "1", "50")),
    ("§1.6", "171.88", lambda: _cost(BTC_0075, BUY, "8,000", "1", "50")),
    ("V27", "1.4", lambda: initial_margin_atoms(value(BTC, "28,000", "0.005"), x("100"))),
    ("V27", "0.56", lambda: maintenance_margin_at_rate_atoms(value(BTC, "28,000", "0.005"),
                                                             to_rate("0.004"), 0, 0)),
    ("V30", "4,000", lambda: initial_margin_atoms(value(BTC, "8,000", "5"), x("10"))),
    ("§9", "4,000", lambda: initial_margin_atoms(value(BTC, "8,000", "5"), x("10"))),
    ("V39", "+5,000", lambda: _upl(BUY, "1", "50,000", "55,000")),
    ("V39", "+5,000", lambda: _upl(SELL, "1", "50,000", "45,000")),
    ("§12", "140", lambda: initial_margin_atoms(value(BTC, "7,000", "0.2"), x("10"))),
    ("§12", "0.693", lambda: _ftc(BTC, BUY, "7,000", "0.2", "10")),
    ("§12", "+100", lambda: _upl(BUY, "0.2", "7,000", "7,500")),
    ("§12", "+400", lambda: _upl(SELL, "0.4", "6,000", "5,000")),
    ("§12", "1.32", lambda: fee_atoms(value(BTC, "6,000", "0.4"), BTC.taker_fee_rate)),
    ("§12", "1.10", lambda: fee_atoms(value(BTC, "5,000", "0.4"), BTC.taker_fee_rate)),
    ("§12", "395.48", _closed_short_395),
]
MONEY_IDS = [
    "V2 the fee to close of 1 BTC long at 40,000 and 50x is 21.56",
    "V2 its UTA maintenance margin with the fee to close is 221.56",
    "V3 the IM of 1 BTC at 20,000 and 50x is 400",
    "V3 its MM at 0.5% without fee to close is 100",
    "V15 the IM of 1 BTC at 50,000 and 10x is 5,000",
    "V15 the fee to open at 0.06% is 30",
    "V15 the fee to close at the bankruptcy price 45,000 is 27",
    "V15 the long order cost is 5,057",
    "V17 the USDC position IM at mark 50,500 is 2,525",
    "V17 the long fee to close at 0.055% is 12.375",
    "V17 the long position IM with fee to close is 2,537.375",
    "§1.1 the short fee to close of the USDC example is 15.125",
    "§1.1 the short position IM with fee to close is 2,540.125",
    "§1.1 the older page's IM at entry is 2,500",
    "§1.1 the older page's long fee to close at 0.06% is 13.50",
    "§1.1 the older page's long total is 2,513.50",
    "§1.1 the older page's short fee to close at 0.06% is 16.50",
    "§1.1 the older page's short total is 2,516.50",
    "§1.2 the UTA example's fee to close is 21.56",
    "§1.2 the UTA example's maintenance margin is 221.56",
    "§1.2 BTCUSDT at value 2,300,000 sits in tier 2 and needs MM 11,680",
    "§1.6 the short order cost of 1 BTC at 50,000 and 10x at 0.06% is 5,063",
    "§1.6 the old page's IM of 1 BTC at 8,000 and 50x is 160",
    "§1.6 the old page's fee to open at 0.075% is 6",
    "§1.6 the old page's fee to close is 5.88",
    "§1.6 the old page's order cost is 171.88",
    "V27 KuCoin 5 lots of 0.001 BTC at 28,000 and 100x need IM 1.4",
    "V27 KuCoin MM at 0.4% is 0.56",
    "V30 the AMR example's IM of 5 BTC at 8,000 and 10x is 4,000",
    "§9 the AMR example's IM is 4,000",
    "V39 a long of 1 BTC from 50,000 at mark 55,000 gains 5,000",
    "V39 a short of 1 BTC from 50,000 at mark 45,000 gains 5,000",
    "§12 the ROI example's IM of 0.2 BTC at 7,000 and 10x is 140",
    "§12 its fee to close at the bankruptcy price 6,300 is 0.693",
    "§12 a long 0.2 from 7,000 at 7,500 gains 100",
    "§12 a short 0.4 from 6,000 at 5,000 gains 400",
    "§12 the open fee of 0.4 BTC at 6,000 is 1.32",
    "§12 the close fee of 0.4 BTC at 5,000 is 1.10",
    "§12 the closed P&L after fees and 2.10 funding is 395.48",
]


@pytest.mark.parametrize(("source", "figure", "compute"), MONEY, ids=MONEY_IDS)
def test_published_amount_is_reproduced_to_the_atom(
        source: str, figure: str, compute: Callable[[], int]) -> None:
    check_source(source, figure)
    assert compute() == usdt(figure)


def test_the_marginal_sum_of_the_brackets_equals_the_tier_2_maintenance_margin() -> None:
    # §1.2 [drv]: 2,000,000 x 0.5% + 300,000 x 0.56% == 2,300,000 x 0.56% - 1,200.
    marginal = (maintenance_margin_at_rate_atoms(usdt("2,000,000"), to_rate("0.005"), 0, 0)
                + maintenance_margin_at_rate_atoms(usdt("300,000"), to_rate("0.0056"), 0, 0))
    assert marginal == maintenance_margin_atoms(BTC, usdt("2,300,000"), 0) == usdt("11,680")


# --- prices --------------------------------------------------------------------------------

def _legacy(spec: InstrumentSpec, side: Side, entry: str, size: str, leverage: str, extra: str,
            mmr: str) -> int:
    return isolated_liquidation_price_legacy_ticks(
        spec, side, px(spec, entry), lots(spec, size), x(leverage), usdt(extra), to_rate(mmr), 0)


def _amr_lp(amr_rounds: int) -> int:
    # §9: each AMR adds the position's current IM, or all that is left of the balance.
    available = usdt("10,000") - initial_margin_atoms(value(BTC, "8,000", "5"), x("10"))
    extra = 0
    for _ in range(amr_rounds):
        added = min(initial_margin_atoms(value(BTC, "8,000", "5"), x("10")), available)
        extra, available = extra + added, available - added
    return isolated_liquidation_price_legacy_ticks(
        BTC, BUY, px(BTC, "8,000"), lots(BTC, "5"), x("10"), extra, to_rate("0.005"), 0)


def _old_cross(entry: str, size: str) -> int | None:
    position = value(BTC, entry, size)
    return cross_liquidation_price_legacy_ticks(
        BTC, BUY, px(BTC, entry), lots(BTC, size), usdt("2,000"),
        initial_margin_atoms(position, x("100")),
        maintenance_margin_at_rate_atoms(position, to_rate("0.005"), 0, 0))


def _avg(spec: InstrumentSpec, fills: list[tuple[str, str]]) -> int:
    entry_value = sum(value(spec, price, size) for size, price in fills)
    return average_entry_display(spec, entry_value, sum(lots(spec, size) for size, _ in fills))


def _selected(spec: InstrumentSpec, entry: str, size: str, leverage: str) -> int:
    """The liquidation price by `spec`'s own formula (§14 Q2), MMR 0.5%, no extra margin."""
    numerator, denominator = isolated_liquidation_price_selected_fraction(
        spec, BUY, value(spec, entry, size), lots(spec, size), x(leverage), 0, to_rate("0.005"),
        0, spec.taker_fee_rate)
    return round_liquidation_price(BUY, numerator, denominator)


def test_v30_the_uta_default_does_not_give_the_published_figure() -> None:
    """#13 B4: V30's 7,240 is 8,000 - (4,000 - 200)/5, the older formula; the UTA default
    gives 8,000 x 0.9 / 0.995 = 7,236.18.. (7,236.2 rounded toward the mark). Formerly a
    strict xfail; the instrument's formula now selects the one that matches."""
    check_source("V30", "7,240")
    assert BTC.liq_price_formula is LiquidationFormula.UTA
    assert _selected(BTC, "8,000", "5", "10") == px(BTC, "7,236.2")

PRICES: list[Any] = [
    ("V3", "19,700", lambda: _legacy(BTC, BUY, "20,000", "1", "50", "0", "0.005")),
    ("V4", "23,300", lambda: _legacy(BTC, SELL, "20,000", "1", "50", "3,000", "0.005")),
    ("§1.4", "19,900", lambda: _legacy(BTC, BUY, "20,000", "1", "50", "-200", "0.005")),
    ("§1.4", "9,850", lambda: _legacy(BTC, BUY, "10,000", "1", "50", "0", "0.005")),
    ("§1.4", "8,160", lambda: _legacy(BTC, SELL, "8,000", "1", "40", "0", "0.005")),
    ("V13", "58,800", lambda: bankruptcy_price_ticks(BTC, BUY, px(BTC, "60,000"), x("50"))),
    ("§1.3", "58,800", lambda: bankruptcy_price_for_margin_ticks(
        BTC, BUY, value(BTC, "60,000", "1"), lots(BTC, "1"),
        initial_margin_atoms(value(BTC, "60,000", "1"), x("50")))),
    ("V27", "28,168", lambda: _legacy(BTC, SELL, "28,000", "0.005", "100", "0", "0.004")),
    # V29 gives only the resulting LP 9,500; 10x with MMR 5% is one input that yields it
    # ((IM - MM)/q = 1,000 - 500). The moves by extra/q are those of the older formula (§1.5).
    ("V29", "8,500", lambda: _legacy(BTC, BUY, "10,000", "1", "10", "1,000", "0.05")),
    ("V29", "9,000", lambda: _legacy(BTC, BUY, "10,000", "2", "10", "1,000", "0.05")),
    ("V30", "7,240", lambda: _amr_lp(0)),
    ("V30", "6,440", lambda: _amr_lp(1)),
    ("V30", "6,040", lambda: _amr_lp(2)),
    ("§9", "7,240", lambda: _amr_lp(0)),
    ("§9", "6,440", lambda: _amr_lp(1)),
    ("§9", "6,040", lambda: _amr_lp(2)),
    ("§9", "6,040", lambda: _amr_lp(3)),
    ("V30", "7,240", lambda: _selected(dataclasses.replace(
        BTC, liq_price_formula=LiquidationFormula.LEGACY), "8,000", "5", "10")),
    ("§2.2", "17,900", lambda: _old_cross("20,000", "1")),
    ("§2.2", "8,950", lambda: _old_cross("10,000", "2")),
    ("V22", "5,375", lambda: _avg(BTC, [("0.5", "5,000"), ("0.3", "6,000")])),
    ("§12", "5,375", lambda: _avg(BTC, [("0.5", "5,000"), ("0.3", "6,000")])),
    ("V23", "56,666.7", lambda: _avg(BTC, [("1", "50,000"), ("2", "60,000")])),
    ("§12", "56,666.7", lambda: _avg(BTC, [("1", "50,000"), ("2", "60,000")])),
]
PRICE_IDS = [
    "V3 the older formula puts a 50x long from 20,000 at 19,700",
    "V4 the older formula puts a 50x short from 20,000 with 3,000 extra at 23,300",
    "§1.4 funding of 200 taken from that long's margin lifts its LP to 19,900",
    "§1.4 EP(1 - IMR + MMR) puts a 50x long from 10,000 at 9,850",
    "§1.4 EP(1 + IMR - MMR) puts a 40x short from 8,000 at 8,160",
    "V13 a 50x long from 60,000 goes bankrupt at 58,800",
    "§1.3 the general bankruptcy price with the IM as margin is also 58,800",
    "V27 KuCoin's short of 0.005 BTC from 28,000 at 100x liquidates at 28,168",
    "V29 adding 1,000 to a long liquidating at 9,500 moves it to 8,500",
    "V29 a second BTC at 10,000 shares that 1,000 and the LP becomes 9,000",
    "V30 the AMR example's long liquidates at 7,240 before any AMR",
    "V30 the first AMR adds the IM 4,000 and moves the LP to 6,440",
    "V30 the second AMR adds the last 2,000 and moves the LP to 6,040",
    "§9 before any AMR the LP is 7,240",
    "§9 after the first AMR the LP is 6,440",
    "§9 after the second AMR the LP is 6,040",
    "§9 a third AMR finds no balance and the LP stays at 6,040",
    "V30 an instrument on the older formula gives the published 7,240 (#13 B4)",
    "§2.2 the old cross rule puts a 1 BTC long from 20,000 with 2,000 available at 17,900",
    "§2.2 the Bybit original's 2 BTC from 10,000 liquidate at 8,950",
    "V22 0.5 at 5,000 and 0.3 at 6,000 average 5,375",
    "§12 0.5 at 5,000 and 0.3 at 6,000 average 5,375",
    "V23 1 BTC at 50,000 and 2 at 60,000 average 56,666.7 shown to the tick",
    "§12 the KuCoin seed's average shows as 56,666.7",
]


@pytest.mark.parametrize(("source", "figure", "compute"), PRICES, ids=PRICE_IDS)
def test_published_price_is_reproduced_to_the_tick(
        source: str, figure: str, compute: Callable[[], int]) -> None:
    check_source(source, figure)
    assert compute() == px(BTC, figure)


def _v1_fraction(spec: InstrumentSpec) -> Fraction:
    numerator, denominator = isolated_liquidation_price_fraction(
        spec, BUY, value(spec, "40,000", "1"), lots(spec, "1"), x("50"), usdt("3,000"),
        to_rate("0.005"), 0, to_rate("0.00055"))
    return Fraction(numerator, denominator) * Fraction(spec.tick_size)


def _to_places(price: Fraction, places: str, rounding: str) -> str:
    exact = Decimal(price.numerator) / Decimal(price.denominator)
    return str(exact.quantize(Decimal(places), rounding=rounding))


def test_v1_the_exact_uta_liquidation_price_is_the_published_exact_figure() -> None:
    check_source("V1", "36,380.2503437")
    # Exact: (40,000 - 800 - 3,000/0.99945) / 0.995, whatever the tick.
    assert _v1_fraction(CENT) == _v1_fraction(BTC)
    assert _to_places(_v1_fraction(CENT), "0.0000001", ROUND_HALF_UP) == "36380.2503437"


def test_v1_the_published_cent_figure_is_the_exact_price_shown_to_the_nearest_cent() -> None:
    check_source("V1", "LP 36,380.25")
    assert _to_places(_v1_fraction(CENT), "0.01", ROUND_HALF_UP) == "36380.25"


@pytest.mark.parametrize(
    ("spec", "figure"),
    [(CENT, "36380.26"), (BTC, "36380.3")],
    ids=["V1 perpx rounds the long's LP toward the mark: 36,380.26 on a 0.01 tick",
         "V1 perpx rounds the long's LP toward the mark: 36,380.3 on BTCUSDT's 0.10 tick"],
)
def test_v1_perpx_rounds_the_long_liquidation_price_up_to_its_tick(
        spec: InstrumentSpec, figure: str) -> None:
    # DESIGN rounds a liquidation price toward the mark, so a long's goes up: one cent above
    # the published display 36,380.25, which rounds to nearest.
    lp = isolated_liquidation_price_ticks(
        spec, BUY, px(spec, "40,000"), lots(spec, "1"), x("50"), usdt("3,000"), to_rate("0.005"),
        0, to_rate("0.00055"))
    assert lp == to_ticks(spec, figure)


def test_v23_the_exact_average_entry_is_170000_over_3() -> None:
    check_source("V23", "56,666.7")
    numerator, denominator = average_entry_price_ticks(
        BTC, value(BTC, "50,000", "1") + value(BTC, "60,000", "2"), lots(BTC, "3"))
    assert Fraction(numerator, denominator) * Fraction(BTC.tick_size) == Fraction(170_000, 3)


# --- quantities and rates ------------------------------------------------------------------

@pytest.mark.parametrize(
    ("source", "figure", "side", "cost"),
    [("V15", "qty-from-cost → 1", BUY, "5,057"), ("§1.6", "5,063", SELL, "5,063")],
    ids=["V15 a long order cost of 5,057 at 50,000 and 10x buys exactly 1 BTC",
         "§1.6 a short order cost of 5,063 sells exactly 1 BTC"],
)
def test_quantity_from_cost_inverts_the_order_cost(
        source: str, figure: str, side: Side, cost: str) -> None:
    check_source(source, figure)
    qty = qty_for_cost_lots(BTC_006, side, px(BTC, "50,000"), usdt(cost), x("10"),
                            BTC_006.taker_fee_rate)
    assert qty == lots(BTC, "1")


def test_section_12_roi_is_71_07_percent_shown_truncated() -> None:
    check_source("§12", "71.07%")
    margin = (initial_margin_atoms(value(BTC, "7,000", "0.2"), x("10"))
              + fee_to_close_atoms(BTC, BUY, px(BTC, "7,000"), lots(BTC, "0.2"), x("10"),
                                   BTC.taker_fee_rate))
    roi = roi_rate(_upl(BUY, "0.2", "7,000", "7,500"), margin)
    # Exact 100 / 140.693 = 0.7107674156..; floored to 10**-8.
    assert roi == to_rate("0.71076741")
    shown = Decimal(roi).scaleb(-8).quantize(Decimal("0.0001"), rounding=ROUND_DOWN)
    assert shown == Decimal("0.7107")  # 71.07%, truncated as Bybit displays it (§11)


# --- seed examples -------------------------------------------------------------------------

def test_seed_avg_entry_two_fills_shows_the_average_to_the_tick() -> None:
    case = SEEDS["avg_entry_two_fills"]
    # KuCoin's multiplier 0.001 BTC per contract is BTCUSDT's lot, so a contract is a lot.
    assert case["inputs"]["contract_multiplier"] == BTC.qty_step
    fills = case["inputs"]["fills"]
    entry_value = sum(position_value_atoms(BTC, px(BTC, f["price"]), f["contracts"])
                      for f in fills)
    qty = sum(f["contracts"] for f in fills)
    assert average_entry_display(BTC, entry_value, qty) == px(BTC,
                                                              case["expected"]["avg_entry_price"])


def test_seed_002_realized_pnl_follows_the_formula_and_its_printed_total_slips() -> None:
    case = SEEDS["realized_pnl_partial_close"]
    given, expected = case["inputs"], case["expected"]
    assert given["contract_multiplier"] == BTC.qty_step
    fee_rate = to_rate(given["fee_rate"])
    entry_value = position_value_atoms(BTC, px(BTC, given["entry"]), given["long_contracts"])

    pnl, released = realized_pnl_on_close_atoms(
        BTC, BUY, entry_value, given["long_contracts"], given["close_contracts"],
        px(BTC, given["exit"]))
    opening_fee = fee_atoms(entry_value, fee_rate)
    seed_closing_fee = fee_atoms(
        position_value_atoms(BTC, px(BTC, given["exit"]), given["long_contracts"]), fee_rate)
    formula_closing_fee = fee_atoms(
        position_value_atoms(BTC, px(BTC, given["exit"]), given["close_contracts"]), fee_rate)
    by_the_seeds_terms = closed_pnl_atoms(pnl, opening_fee, seed_closing_fee,
                                          -usdt(given["funding_received"]))

    assert pnl == usdt(expected["partial_pnl"])
    assert released == entry_value // 2
    assert opening_fee == usdt(expected["opening_fee"])
    # Spec §14 Q6: the seed's closing fee of 33 charges the whole 1 BTC at 55,000; the
    # 0.5 BTC actually closed costs 16.5.
    assert seed_closing_fee == usdt(expected["closing_fee"])
    assert formula_closing_fee == usdt("16.5")
    # Its own terms sum to 2,500 - 30 - 33 + 3 = 2,440; the seed prints 2,400, a slip.
    assert by_the_seeds_terms == usdt(expected["realized_pnl_by_the_seeds_own_terms"])
    assert by_the_seeds_terms != usdt(expected["printed_in_seed"])


@pytest.mark.parametrize("case_id", ["upl_long", "upl_short"],
                         ids=["seed 002 a long of 1 BTC from 50,000 at mark 55,000 gains 5,000",
                              "seed 002 a short of 1 BTC from 50,000 at mark 45,000 gains 5,000"])
def test_seed_unrealized_pnl(case_id: str) -> None:
    given = SEEDS[case_id]["inputs"]
    side = Side[given["side"].upper()]
    pnl = unrealized_pnl_atoms(BTC, side, value(BTC, given["entry"], given["size"]),
                               lots(BTC, given["size"]), px(BTC, given["mark"]))
    assert pnl == usdt(SEEDS[case_id]["expected"]["unrealized_pnl"])


@pytest.mark.parametrize(
    ("case_id", "spec"),
    [("long_btc_10x_up", BTC), ("long_btc_10x_down", BTC),
     ("short_eth_10x_down", ETH), ("short_eth_10x_up", ETH)],
    ids=["seed 002 a 10x long of 0.5 BTC from 20,000 with 1,000 margin gains 1,000 at 22,000",
         "seed 002 the same long loses 1,000 at 18,000",
         "seed 002 a 10x short of 5 ETH from 2,000 with 1,000 margin gains 2,000 at 1,600",
         "seed 002 the same short loses 2,000 at 2,400"],
)
def test_seed_leveraged_pnl(case_id: str, spec: InstrumentSpec) -> None:
    given = SEEDS[case_id]["inputs"]
    side = Side[given["side"].upper()]
    entry_value = value(spec, given["entry"], given["size"])
    assert initial_margin_atoms(entry_value, x(given["leverage"])) == usdt(given["margin"])
    pnl = unrealized_pnl_atoms(spec, side, entry_value, lots(spec, given["size"]),
                               px(spec, given["price"]))
    assert pnl == usdt(SEEDS[case_id]["expected"]["pnl"])


@pytest.mark.parametrize(("key", "sign"), [("pnl_up", 1), ("pnl_down", -1)],
                         ids=["seed 002 100 margin at 10x gains 100 on a 10% rise",
                              "seed 002 100 margin at 10x loses 100 on a 10% fall"])
def test_seed_leverage_10x_100_margin(key: str, sign: int) -> None:
    case = SEEDS["leverage_10x_100_margin"]
    given = case["inputs"]
    # A 1,000 position at 50,000 is 0.02 BTC; move 10% from there.
    entry = Decimal("50000")
    size = str(Decimal(case["expected"]["position_value"]) / entry)
    moved = str(entry * (1 + sign * Decimal(given["move"])))
    entry_value = value(BTC, str(entry), size)
    assert entry_value == usdt(case["expected"]["position_value"])
    assert initial_margin_atoms(entry_value, x(given["leverage"])) == usdt(given["margin"])
    pnl = unrealized_pnl_atoms(BTC, BUY, entry_value, lots(BTC, size), px(BTC, moved))
    assert pnl == usdt(case["expected"][key])


def test_seed_001_order_loss_of_a_buy_above_mark() -> None:
    case = SEEDS["order_loss_buy_above_mark"]
    mark = px(ETH, case["inputs"]["mark"])
    loss = sum(order_loss_atoms(Side[o["side"].upper()], mark, px(ETH, o["price"]),
                                lots(ETH, o["size"]), ETH)
               for o in case["inputs"]["orders"])
    assert loss == usdt(case["expected"]["order_loss"])


@pytest.mark.parametrize(
    ("case_id", "rows"),
    [("roi_add_margin", [("profit", "margin_before", "roi_before"),
                         ("profit", "margin_total", "roi_after")]),
     ("roi_hedge_sides", [("long.profit", "long.margin", "long_roi"),
                          ("short.profit", "short.margin", "short_roi")])],
    ids=["seed 000 adding 100 margin to a 100-margin position halves its 10% ROI",
         "seed 000 hedge sides each divide their profit by their own margin"],
)
def test_seed_roi(case_id: str, rows: list[tuple[str, str, str]]) -> None:
    given = dict(SEEDS[case_id]["inputs"])
    if "margin_added" in given:
        total = Decimal(given["margin_before"]) + Decimal(given["margin_added"])
        given["margin_total"] = str(total)

    def field(path: str) -> str:
        node: Any = given
        for part in path.split("."):
            node = node[part]
        return str(node)

    for profit, margin, expected in rows:
        roi = roi_rate(usdt(field(profit)), usdt(field(margin)))
        assert roi == to_rate(SEEDS[case_id]["expected"][expected])


def test_seed_000_non_vip_fee_rates() -> None:
    expected = SEEDS["fees_non_vip"]["expected"]
    assert BTC.taker_fee_rate == to_rate(expected["taker"])
    assert BTC.maker_fee_rate == to_rate(expected["maker"])
    assert to_rate(expected["expiry_settlement"]) == EXPIRY_SETTLEMENT_FEE_RATE


# --- tiers and hedge mode ------------------------------------------------------------------

def test_v19_deductions_of_the_btcusdt_ladder_follow_the_recursion() -> None:
    printed = PUBLIC["V19"]["expected"].removeprefix("ded ").split(", ")
    tiers = BTC.risk_tiers[: len(printed)]
    expected = tuple(usdt(figure) for figure in printed)
    assert mm_deduction_ladder_atoms(tiers) == expected
    assert tuple(tier.mm_deduction_atoms for tier in tiers) == expected
    assert mm_deduction_ladder_atoms(BTC.risk_tiers) == tuple(
        tier.mm_deduction_atoms for tier in BTC.risk_tiers)


@pytest.mark.parametrize(
    ("pv", "shown", "mmr"),
    [("2,000,000", "0.5%", "0.005"), ("2,600,000", "0.56%", "0.0056")],
    ids=["V21 a value of exactly 2,000,000 is still tier 1 at 0.5% (inclusive)",
         "V21 a value of exactly 2,600,000 is tier 2 at 0.56%"],
)
def test_v21_tier_lookup_is_inclusive(pv: str, shown: str, mmr: str) -> None:
    assert pv in PUBLIC["V21"]["inputs"]
    check_source("V21", shown)
    assert tier_for_position(BTC, usdt(pv)).mmr == to_rate(mmr)
    assert tier_for_position(BTC, usdt(pv) + 1).mmr > to_rate(mmr)


HEDGE_IDS = [
    "§2.3 the long's IM with the net size in the first term is 2,039.60",
    "§2.3 the long's IM with the seed's literal hedged size is 3,039.60",
    "§2.3 the long's MM is 139.60",
    "§2.3 the short's IM is the two-way fee reserve 36.30",
    "§2.3 the short's MM equals its IM, 36.30",
]


@pytest.mark.parametrize(
    ("literal", "field", "figure"),
    [(False, "long_im", "2,039.60"), (True, "long_im", "3,039.60"), (False, "long_mm", "139.60"),
     (False, "short_im", "36.30"), (False, "short_mm", "36.30")],
    ids=HEDGE_IDS,
)
def test_section_2_3_hedge_mode_margins(literal: bool, field: str, figure: str) -> None:
    check_source("§2.3", figure)
    margins = hedge_im_mm_atoms(
        BTC, lots(BTC, "1"), value(BTC, "50,000", "1"), lots(BTC, "0.6"),
        value(BTC, "50,000", "0.6"), px(BTC, "50,000"), x("10"), BTC.taker_fee_rate,
        literal_hedged_first_term=literal)
    assert getattr(margins, field) == usdt(figure)


# --- every vector is claimed ---------------------------------------------------------------

NOT_CALC = {
    "V31": "trailing stops belong to triggers",
    "V36": "funding belongs to funding",
    "haircut_loss_btc_for_usdt": "collateral haircuts belong to the account model",
    "limit_buy_price_improvement": "execution prices belong to matching",
    "limit_sell_price_improvement": "execution prices belong to matching",
    "inverse_upl_long": "calc covers linear USDT contracts only",
    "inverse_im_100x": "calc covers linear USDT contracts only",
    "interest_rate_8h": "the funding interest component belongs to funding",
}
CHECKED_HERE = {
    "V1", "V23", "V15", "V19", "V21", "avg_entry_two_fills", "realized_pnl_partial_close",
    "upl_long", "upl_short", "long_btc_10x_up", "long_btc_10x_down", "short_eth_10x_down",
    "short_eth_10x_up", "leverage_10x_100_margin", "order_loss_buy_above_mark",
    "roi_add_margin", "roi_hedge_sides", "fees_non_vip",
}


def test_every_vector_is_checked_here_or_named_as_another_modules() -> None:
    tabled = {row[0] for row in MONEY} | {
        (row.values[0] if hasattr(row, "values") else row[0]) for row in PRICES}
    claimed = CHECKED_HERE | {source for source in tabled if not source.startswith("§")}
    assert claimed | set(NOT_CALC) == set(PUBLIC) | set(SEEDS)
    assert not claimed & set(NOT_CALC)

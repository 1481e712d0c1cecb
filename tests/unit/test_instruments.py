"""The bundled instrument table, InstrumentSpec validation and risk-tier lookup."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import re
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from perpx.convert import to_atoms, to_lots, to_rate, to_ticks
from perpx.core.instruments import (
    ContractType,
    InstrumentSpec,
    LiquidationFormula,
    PriceLimitAction,
)
from perpx.core.numbers import ATOMS_PER_COIN, RATE_ONE
from perpx.instruments import (
    MmDeductionMismatch,
    UnsupportedContractType,
    load_instruments,
    spec_from_bybit,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
VECTORS_PATH = REPO_ROOT / "tests" / "data" / "vectors" / "public_vectors.json"

SPECS: dict[str, InstrumentSpec] = {spec.symbol: spec for spec in load_instruments()}
SYMBOLS = sorted(SPECS)
BTCUSDT = SPECS["BTCUSDT"]


def bundled_table() -> dict[str, Any]:
    text = resources.files("perpx.instruments").joinpath("default.json").read_text("utf-8")
    return json.loads(text)


def bybit_item(symbol: str) -> dict[str, Any]:
    """A deep copy of one bundled instruments-info item, safe to modify."""
    items = {item["symbol"]: item for item in bundled_table()["instruments"]}
    return copy.deepcopy(items[symbol])


def public_vector(vector_id: str) -> dict[str, Any]:
    cases = json.loads(VECTORS_PATH.read_text("utf-8"))["cases"]
    return next(case for case in cases if case["id"] == vector_id)


def usdt(text: str) -> int:
    """Atoms of a human amount with thousands separators, e.g. '2,000,000'."""
    return to_atoms(text.replace(",", ""))


def test_bundled_table_loads_btc_eth_and_sol_linear_perpetuals() -> None:
    # Act
    specs = load_instruments()

    # Assert
    assert [spec.symbol for spec in specs] == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    assert all(spec.contract_type is ContractType.LINEAR_PERPETUAL for spec in specs)
    assert all(spec.settle_coin == spec.quote_coin == "USDT" for spec in specs)
    assert all(spec.price_limit_action is PriceLimitAction.CLAMP for spec in specs)


@pytest.mark.parametrize(
    ("symbol", "tick_size", "qty_step", "price_scale", "qty_scale", "atoms_per_tick_lot"),
    [
        ("BTCUSDT", "0.10", "0.001", 2, 3, 10_000),
        ("ETHUSDT", "0.01", "0.01", 2, 2, 10_000),
        ("SOLUSDT", "0.010", "0.1", 3, 1, 100_000),
    ],
    ids=[
        "BTCUSDT: 0.10 x 0.001 = 0.0001 USDT = 10000 atoms per tick-lot",
        "ETHUSDT: 0.01 x 0.01 = 0.0001 USDT = 10000 atoms per tick-lot",
        "SOLUSDT: 0.010 x 0.1 = 0.001 USDT = 100000 atoms per tick-lot",
    ],
)
def test_bundled_scales(
    symbol: str,
    tick_size: str,
    qty_step: str,
    price_scale: int,
    qty_scale: int,
    atoms_per_tick_lot: int,
) -> None:
    # Arrange
    spec = SPECS[symbol]

    # Act
    scales = (spec.tick_size, spec.qty_step, spec.price_scale, spec.qty_scale)

    # Assert
    assert scales == (tick_size, qty_step, price_scale, qty_scale)
    assert spec.atoms_per_tick_lot == atoms_per_tick_lot
    assert spec.atoms_per_tick_lot == to_atoms(str(Decimal(tick_size) * Decimal(qty_step)))


def test_btcusdt_limits_match_the_bybit_item() -> None:
    # Act
    limits = (
        BTCUSDT.min_price_ticks,
        BTCUSDT.max_price_ticks,
        BTCUSDT.min_order_qty_lots,
        BTCUSDT.max_order_qty_lots,
        BTCUSDT.max_mkt_order_qty_lots,
        BTCUSDT.min_leverage,
        BTCUSDT.max_leverage,
        BTCUSDT.leverage_step,
        BTCUSDT.funding_interval_min,
        BTCUSDT.upper_funding_rate,
        BTCUSDT.lower_funding_rate,
        BTCUSDT.price_limit_ratio_x,
        BTCUSDT.price_limit_ratio_y,
    )

    # Assert
    assert limits == (
        1,
        19_999_998,
        1,
        1_190_000,
        500_000,
        RATE_ONE,
        100 * RATE_ONE,
        RATE_ONE // 100,
        480,
        375_000,
        -375_000,
        1_000_000,
        2_000_000,
    )


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_min_notional_of_5_usdt_is_500_million_atoms(symbol: str) -> None:
    # Act / Assert
    assert SPECS[symbol].min_notional_atoms == 500_000_000 == 5 * ATOMS_PER_COIN


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_seed_000_fee_rates_are_taker_0_055_pct_and_maker_0_02_pct(symbol: str) -> None:
    # Arrange
    spec = SPECS[symbol]

    # Act
    fees = (spec.taker_fee_rate, spec.maker_fee_rate)

    # Assert
    assert fees == (55_000, 20_000)


@pytest.mark.parametrize(
    ("symbol", "price", "qty", "notional"),
    [
        ("BTCUSDT", "65000.1", "0.010", "650.001"),
        ("BTCUSDT", "5000.0", "0.001", "5"),
        ("ETHUSDT", "3456.78", "1.25", "4320.975"),
        ("SOLUSDT", "145.12", "12.3", "1784.976"),
    ],
    ids=[
        "BTCUSDT 0.010 @ 65000.1 is 650.001 USDT",
        "BTCUSDT one lot at 5000 is exactly the 5 USDT minimum",
        "ETHUSDT 1.25 @ 3456.78 is 4320.975 USDT",
        "SOLUSDT 12.3 @ 145.12 is 1784.976 USDT",
    ],
)
def test_notional_atoms_is_price_times_qty_exactly(
    symbol: str, price: str, qty: str, notional: str
) -> None:
    # Arrange
    spec = SPECS[symbol]
    ticks, lots = to_ticks(spec, price), to_lots(spec, qty)

    # Act
    atoms = spec.notional_atoms(ticks, lots)

    # Assert
    assert atoms == to_atoms(notional)


@pytest.mark.parametrize(
    ("value", "tier_id", "mmr"),
    [
        ("0", 1, 500_000),
        ("2000000", 1, 500_000),
        ("2000000.00000001", 2, 560_000),
        ("2600000", 2, 560_000),
        ("2600000.00000001", 3, 630_000),
        ("1200000000", 35, 60_000_000),
    ],
    ids=[
        "no position is tier 1",
        "exactly 2,000,000 USDT is still tier 1 at MMR 0.5% (inclusive)",
        "one atom above 2,000,000 USDT is tier 2 at MMR 0.56%",
        "exactly 2,600,000 USDT is still tier 2",
        "one atom above 2,600,000 USDT is tier 3 at MMR 0.63%",
        "exactly the last cap is the last tier",
    ],
)
def test_tier_for_value_is_inclusive_at_each_cap(value: str, tier_id: int, mmr: int) -> None:
    # Act
    tier = BTCUSDT.tier_for_value(to_atoms(value))

    # Assert
    assert tier is not None
    assert (tier.tier_id, tier.mmr) == (tier_id, mmr)


def test_value_above_the_last_tier_has_no_tier() -> None:
    # Act
    tier = BTCUSDT.tier_for_value(to_atoms("1200000000.00000001"))

    # Assert
    assert tier is None


def test_public_vector_v21_tier_mmr_lookup_is_inclusive() -> None:
    # Arrange
    vector = public_vector("V21")
    values = [usdt(v) for v in re.findall(r"[\d,]+(?:\.\d+)?", vector["inputs"].split("PV")[1])]
    percents = re.findall(r"([\d.]+)%", vector["expected"])
    expected_mmrs = [to_rate(str(Decimal(p) / 100)) for p in percents]

    # Act
    mmrs = [BTCUSDT.tier_for_value(value).mmr for value in values]  # type: ignore[union-attr]

    # Assert
    assert values == [2_000_000 * ATOMS_PER_COIN, 2_600_000 * ATOMS_PER_COIN]
    assert mmrs == expected_mmrs == [500_000, 560_000]


def test_public_vector_v19_first_nine_btcusdt_deductions() -> None:
    # Arrange
    vector = public_vector("V19")
    expected = [usdt(d) for d in vector["expected"].removeprefix("ded ").split(", ")]

    # Act
    deductions = [tier.mm_deduction_atoms for tier in BTCUSDT.risk_tiers[:9]]

    # Assert
    assert len(expected) == 9
    assert deductions == expected
    assert deductions == [
        usdt(d) for d in ["0", "1200", "3020", "4300", "5820", "8460", "15460", "20500", "46000"]
    ]


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_every_deduction_follows_the_recursion_in_integers(symbol: str) -> None:
    # Arrange
    tiers = SPECS[symbol].risk_tiers

    # Act
    steps = [
        (
            tier.tier_id,
            (tier.mm_deduction_atoms - previous.mm_deduction_atoms) * RATE_ONE,
            previous.limit_atoms * (tier.mmr - previous.mmr),
        )
        for previous, tier in itertools.pairwise(tiers)
    ]

    # Assert
    assert tiers[0].mm_deduction_atoms == 0
    assert [tier.tier_id for tier in tiers] == list(range(1, len(tiers) + 1))
    assert [(tier_id, lhs) for tier_id, lhs, _ in steps] == [
        (tier_id, rhs) for tier_id, _, rhs in steps
    ]


def _broken(**changes: Any) -> dict[str, Any]:
    return changes


@pytest.mark.parametrize(
    "changes",
    [
        _broken(atoms_per_tick_lot=9_999),
        _broken(tick_atoms=BTCUSDT.tick_atoms * 2),
        _broken(tick_atoms=1, lot_base_e8=1, atoms_per_tick_lot=0),
        _broken(min_price_ticks=0),
        _broken(min_price_ticks=20, max_price_ticks=19),
        _broken(min_order_qty_lots=0),
        _broken(min_order_qty_lots=5, max_order_qty_lots=4),
        _broken(risk_tiers=()),
        _broken(risk_tiers=(BTCUSDT.risk_tiers[1], BTCUSDT.risk_tiers[0])),
        _broken(risk_tiers=(BTCUSDT.risk_tiers[0], BTCUSDT.risk_tiers[0])),
        _broken(min_leverage=RATE_ONE - 1),
        _broken(min_leverage=10 * RATE_ONE, max_leverage=5 * RATE_ONE),
    ],
    ids=[
        "atoms_per_tick_lot disagrees with tick_atoms x lot_base_e8",
        "tick_atoms doubled without the product",
        "one tick on one lot is below one atom",
        "min price of zero ticks",
        "min price above max price",
        "min qty of zero lots",
        "min qty above max qty",
        "no risk tiers",
        "risk tiers falling",
        "risk tiers repeating a cap",
        "min leverage below 1x",
        "min leverage above max leverage",
    ],
)
def test_inconsistent_spec_raises_value_error(changes: dict[str, Any]) -> None:
    # Act / Assert
    with pytest.raises(ValueError, match="BTCUSDT"):
        dataclasses.replace(BTCUSDT, **changes)


def _grid(tick: str, max_price: str) -> dict[tuple[str, str], str]:
    return {
        ("priceFilter", "tickSize"): tick,
        ("priceFilter", "minPrice"): tick,
        ("priceFilter", "maxPrice"): max_price,
    }


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        (_grid("0.000001", "1.000000"), "atoms_per_tick_lot"),
        (_grid("0.000015", "1.500000"), "atoms_per_tick_lot"),
        (_grid("0.000000001", "1.000000000"), "more than 8 decimals"),
        ({("priceFilter", "minPrice"): "0.15"}, "not a multiple"),
        (
            {("priceFilter", "minPrice"): "0.20", ("priceFilter", "maxPrice"): "0.10"},
            "price range is empty",
        ),
        ({("lotSizeFilter", "minOrderQty"): "0"}, "quantity range is empty"),
    ],
    ids=[
        "a tick of 0.000001 on a lot of 0.001 is a tenth of an atom",
        "a tick of 0.000015 on a lot of 0.001 is 1.5 atoms, not a whole number",
        "a tick finer than one atom",
        "a min price off the tick grid",
        "a max price below the min price",
        "a min qty of zero",
    ],
)
def test_spec_from_bybit_refuses_a_broken_item(
    overrides: dict[tuple[str, str], str], reason: str
) -> None:
    # Arrange
    item = bybit_item("BTCUSDT")
    for (group, field), value in overrides.items():
        item[group][field] = value

    # Act / Assert
    with pytest.raises(ValueError, match=reason):
        spec_from_bybit(item)


def test_spec_from_bybit_accepts_a_tick_lot_of_exactly_one_atom() -> None:
    # Arrange
    item = bybit_item("BTCUSDT")
    for (group, field), value in _grid("0.00001", "1.00000").items():
        item[group][field] = value

    # Act
    spec = spec_from_bybit(item)

    # Assert
    assert spec.atoms_per_tick_lot == 1


def test_custom_table_loads_from_a_file(tmp_path: Path) -> None:
    # Arrange
    item = bybit_item("BTCUSDT")
    item["symbol"] = "XBTUSDT"
    item["feeRates"] = {"takerFeeRate": "0.0006", "makerFeeRate": "-0.0001"}
    item["riskLimits"] = item["riskLimits"][:2]
    path = tmp_path / "my_contracts.json"
    path.write_text(json.dumps({"instruments": [item]}), "utf-8")

    # Act
    specs = load_instruments(path)

    # Assert
    assert [spec.symbol for spec in specs] == ["XBTUSDT"]
    assert (specs[0].taker_fee_rate, specs[0].maker_fee_rate) == (60_000, -10_000)
    assert [tier.tier_id for tier in specs[0].risk_tiers] == [1, 2]
    assert specs[0].atoms_per_tick_lot == BTCUSDT.atoms_per_tick_lot


def test_custom_table_loads_from_a_string_path(tmp_path: Path) -> None:
    # Arrange
    path = tmp_path / "copy.json"
    path.write_text(json.dumps(bundled_table()), "utf-8")

    # Act
    specs = load_instruments(str(path))

    # Assert
    assert specs == load_instruments()


# --- #13 B5: deductions by the recursion, #13 B6: only linear perpetuals load -------------

def test_stripped_deductions_are_computed_by_the_recursion() -> None:
    """#13 B5: a ladder without mmDeduction gets the published recursion's values.

    Stripping every deduction from the real BTCUSDT ladder (35 tiers, all on the recursion)
    and reloading gives back exactly the published deductions.
    """
    # Arrange
    item = bybit_item("BTCUSDT")
    for row in item["riskLimits"]:
        del row["mmDeduction"]

    # Act
    spec = spec_from_bybit(item)

    # Assert
    assert spec.risk_tiers == BTCUSDT.risk_tiers
    assert [tier.mm_deduction_atoms for tier in spec.risk_tiers[:9]] == [
        usdt(d) for d in ["0", "1200", "3020", "4300", "5820", "8460", "15460", "20500", "46000"]
    ]


def test_empty_deductions_are_computed_like_missing_ones() -> None:
    """#13 B5: Bybit's "" (tier 1's) means "not given" on any tier, and is computed."""
    # Arrange
    item = bybit_item("BTCUSDT")
    for row in item["riskLimits"]:
        row["mmDeduction"] = ""

    # Act / Assert
    assert spec_from_bybit(item).risk_tiers == BTCUSDT.risk_tiers


def test_a_deduction_off_the_recursion_is_refused() -> None:
    """#13 B5: a published deduction is checked against the recursion, not trusted blind."""
    # Arrange
    item = bybit_item("BTCUSDT")
    item["riskLimits"][2]["mmDeduction"] = "3000"  # the recursion gives 3,020

    # Act / Assert
    with pytest.raises(MmDeductionMismatch, match=r"BTCUSDT: risk tier 3 .*3000.*3020") as raised:
        spec_from_bybit(item)
    assert isinstance(raised.value, ValueError)
    assert (raised.value.symbol, raised.value.tier_id) == ("BTCUSDT", 3)


@pytest.mark.parametrize(
    "contract_type",
    ["Option", "Spot"],
    ids=["Option: a Bybit type perpx does not trade yet",
         "an unknown word"],
)
def test_unsupported_contract_types_are_refused_at_load(
        contract_type: str, tmp_path: Path) -> None:
    """#13 B6: only the contract types the core delivers load; anything else is a clear error."""
    # Arrange
    item = bybit_item("BTCUSDT")
    item["symbol"] = "BTCUSD"
    item["contractType"] = contract_type
    path = tmp_path / "inverse.json"
    path.write_text(json.dumps({"instruments": [item]}), "utf-8")

    # Act / Assert
    with pytest.raises(UnsupportedContractType, match=rf"BTCUSD: contractType '{contract_type}'"
                       ) as raised:
        load_instruments(path)
    assert isinstance(raised.value, ValueError)
    assert (raised.value.symbol, raised.value.contract_type) == ("BTCUSD", contract_type)


def test_a_linear_futures_item_loads_with_its_delivery_fields() -> None:
    """Issue #16 item 2: LinearFutures loads, with deliveryTime and deliveryFeeRate."""
    item = bybit_item("BTCUSDT")
    item.update(symbol="BTCUSDT-27MAR26", contractType="LinearFutures",
                deliveryTime="1774598400000", deliveryFeeRate="0.0005", fundingInterval=0)
    spec = spec_from_bybit(item)
    assert spec.dated and spec.delivery_time_ms == 1_774_598_400_000
    assert spec.delivery_fee_rate == 50_000
    assert spec.mark_basis_window_ms == 600_000
    del item["deliveryTime"]
    with pytest.raises(KeyError):
        spec_from_bybit(item)


def test_liq_price_formula_is_read_from_the_table() -> None:
    """#13 B4: `liqPriceFormula` selects the older formula per instrument; UTA by default."""
    # Arrange
    item = bybit_item("BTCUSDT")
    item["liqPriceFormula"] = "legacy"

    # Act / Assert
    assert BTCUSDT.liq_price_formula is LiquidationFormula.UTA
    assert spec_from_bybit(item).liq_price_formula is LiquidationFormula.LEGACY
    item["liqPriceFormula"] = "oldest"
    with pytest.raises(ValueError, match="liqPriceFormula"):
        spec_from_bybit(item)

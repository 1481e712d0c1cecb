"""Instrument tables: Bybit-shaped JSON (instruments-info items plus fees and risk limits).

`load_instruments()` reads the bundled BTCUSDT, ETHUSDT and SOLUSDT table; any file of the same
shape can be passed instead, so operators list their own contracts without touching code. A
second bundled table, "inverse", holds the inverse perpetuals BTCUSD and ETHUSD; it is kept out
of the default one so that everything run on the default table (the behaviour digest included)
is unchanged. A third, "usdc", holds the USDC perpetuals BTCPERP and ETHPERP (session
settlement), kept apart for the same reason. `bundled_instruments()` is all of them, for
looking a bundled symbol up by name.
"""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from perpx.convert import format_atoms, scaled, to_atoms, to_rate, units_of
from perpx.core.calc import mm_deduction_ladder_atoms
from perpx.core.codes import RejectCode
from perpx.core.instruments import (
    ContractType,
    InstrumentSpec,
    LiquidationFormula,
    PriceLimitAction,
    RiskLimitTier,
)
from perpx.core.numbers import ATOM_DECIMALS

# The contract types the engine trades: linear and inverse perpetuals and dated futures of
# both kinds (delivered by `perpx.core.delivery`, issue #16 item 2). Bybit's other types
# (options) are refused as "not trading yet" rather than traded silently.
_CONTRACT_TYPES = {
    "LinearPerpetual": ContractType.LINEAR_PERPETUAL,
    "InversePerpetual": ContractType.INVERSE_PERPETUAL,
    "LinearFutures": ContractType.LINEAR_FUTURES,
    "InverseFutures": ContractType.INVERSE_FUTURES,
}
CONTRACT_TYPE_WORDS = {kind: word for word, kind in _CONTRACT_TYPES.items()}
_KNOWN_UNSUPPORTED = ("Option",)
# A dated future's mark is Index x (1 + basisRate), basisRate the 10-minute moving average
# (next-mechanics §2.3, B-MARK-FUT); a perpetual's basis window stays 2.5 minutes.
_FUTURES_BASIS_WINDOW_MS = 600_000

# The bundled tables, by name: the default linear one, the inverse perpetuals, the dated
# futures (`FUTURES_TABLE`) and the USDC perpetuals.
BUNDLED_TABLES = ("default", "inverse", "futures", "usdc")
# The tables a venue lists (`served_instruments`): every perpetual. A dated future delivers once
# and is Closed for good, so the operator lists the quarter it wants (ListInstrument).
SERVED_TABLES = ("default", "inverse", "usdc")

# perpx's `liqPriceFormula` field (spec §14 Q2); absent means the current UTA formula.
_LIQ_FORMULAS = {"uta": LiquidationFormula.UTA, "legacy": LiquidationFormula.LEGACY}


class UnsupportedContractType(ValueError):
    """An instrument whose contractType the engine cannot trade (only perpetuals)."""

    def __init__(self, symbol: str, contract_type: str) -> None:
        known = "a type perpx does not trade yet" if contract_type in _KNOWN_UNSUPPORTED else (
            "not a Bybit contract type")
        super().__init__(
            f"{symbol}: contractType {contract_type!r} is {known}; "
            f"supported: {', '.join(sorted(_CONTRACT_TYPES))}")
        self.symbol = symbol
        self.contract_type = contract_type


class MmDeductionMismatch(ValueError):
    """A risk-limit tier whose published mmDeduction is off the deduction recursion."""

    def __init__(self, symbol: str, tier_id: int, given: str, expected_atoms: int) -> None:
        super().__init__(
            f"{symbol}: risk tier {tier_id} has mmDeduction {given}, but the recursion "
            f"ded_n = ded_(n-1) + limit_(n-1) x (MMR_n - MMR_(n-1)) gives "
            f"{format_atoms(expected_atoms)} (spec perp-mechanics.md §1.2)")
        self.symbol = symbol
        self.tier_id = tier_id


def _decimals(text: str) -> int:
    exponent = Decimal(text).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def spec_from_bybit(item: dict[str, Any]) -> InstrumentSpec:
    """Build an `InstrumentSpec` from one Bybit instruments-info item with perpx's extra fields."""
    contract_type = _CONTRACT_TYPES.get(item["contractType"])
    if contract_type is None:
        raise UnsupportedContractType(item["symbol"], item["contractType"])
    price_filter = item["priceFilter"]
    lot_filter = item["lotSizeFilter"]
    leverage = item["leverageFilter"]
    tick = price_filter["tickSize"]
    step = lot_filter["qtyStep"]
    bad = RejectCode.INVALID_PARAMETER
    tick_atoms = scaled(tick, ATOM_DECIMALS, bad)
    lot_base_e8 = scaled(step, 8, bad)
    tiers = risk_tiers_from_bybit(item["symbol"], item["riskLimits"])
    fees = item.get("feeRates", {})
    limits = item.get("riskParameters", {})
    adl = item.get("adlAlert", {})  # perpx's field, in Bybit's adlAlert words (§6.4)
    return InstrumentSpec(
        symbol=item["symbol"],
        contract_type=contract_type,
        base_coin=item["baseCoin"],
        quote_coin=item["quoteCoin"],
        settle_coin=item["settleCoin"],
        tick_size=tick,
        qty_step=step,
        price_scale=int(item.get("priceScale", _decimals(tick))),
        qty_scale=_decimals(step),
        tick_atoms=tick_atoms,
        lot_base_e8=lot_base_e8,
        atoms_per_tick_lot=tick_atoms * lot_base_e8 // 10**8,
        min_price_ticks=units_of(price_filter["minPrice"], tick, bad),
        max_price_ticks=units_of(price_filter["maxPrice"], tick, bad),
        min_order_qty_lots=units_of(lot_filter["minOrderQty"], step, bad),
        max_order_qty_lots=units_of(lot_filter["maxOrderQty"], step, bad),
        max_mkt_order_qty_lots=units_of(lot_filter["maxMktOrderQty"], step, bad),
        min_notional_atoms=to_atoms(lot_filter.get("minNotionalValue", "0")),
        min_leverage=to_rate(leverage["minLeverage"]),
        max_leverage=to_rate(leverage["maxLeverage"]),
        leverage_step=to_rate(leverage["leverageStep"]),
        taker_fee_rate=to_rate(fees.get("takerFeeRate", "0.00055")),
        maker_fee_rate=to_rate(fees.get("makerFeeRate", "0.0002")),
        funding_interval_min=int(item.get("fundingInterval", 480)),
        upper_funding_rate=to_rate(item.get("upperFundingRate", "0.00375")),
        lower_funding_rate=to_rate(item.get("lowerFundingRate", "-0.00375")),
        price_limit_ratio_x=to_rate(limits.get("priceLimitRatioX", "0.01")),
        price_limit_ratio_y=to_rate(limits.get("priceLimitRatioY", "0.02")),
        risk_tiers=tiers,
        price_limit_action=PriceLimitAction[item.get("priceLimitAction", "CLAMP").upper()],
        launch_time_ms=int(item.get("launchTime", "0")),
        impact_margin_base_e8=scaled(item.get("impactMarginBase", "0.1"), 8, bad),
        liq_price_formula=liquidation_formula(item.get("liqPriceFormula", "uta")),
        adl_trigger_threshold_atoms=to_atoms(str(adl.get("adlTriggerThreshold", "10000"))),
        insurance_pnl_ratio=to_rate(str(adl.get("insurancePnlRatio", "-0.3"))),
        adl_stop_ratio=to_rate(str(adl.get("adlStopRatio", "-0.25"))),
        **_dated_fields(item, contract_type),
        display_name=str(item.get("displayName", "")),
    )


def _dated_fields(item: dict[str, Any], contract_type: ContractType) -> dict[str, Any]:
    """Return a dated future's delivery fields (next-mechanics §2.1); none for a perpetual."""
    if contract_type not in (ContractType.LINEAR_FUTURES, ContractType.INVERSE_FUTURES):
        return {}
    return {
        "delivery_time_ms": int(item["deliveryTime"]),
        "delivery_fee_rate": to_rate(item.get("deliveryFeeRate") or "0.0005"),
        "close_only_before_delivery_ms": int(item.get("closeOnlyBeforeDeliverySec", 0)) * 1000,
        "mark_basis_window_ms": _FUTURES_BASIS_WINDOW_MS,
    }


def liquidation_formula(name: str) -> LiquidationFormula:
    """Return the isolated liquidation-price formula named `name` ("uta" or "legacy")."""
    found = _LIQ_FORMULAS.get(str(name).lower())
    if found is None:
        raise ValueError(f"liqPriceFormula must be one of {sorted(_LIQ_FORMULAS)}, not {name!r}")
    return found


def risk_tiers_from_bybit(symbol: str, rows: list[dict[str, Any]]) -> tuple[RiskLimitTier, ...]:
    """Build a risk-limit ladder from GET /v5/market/risk-limit rows, deductions included.

    A row without `mmDeduction` (absent or "", as Bybit sends tier 1) gets the value of the
    published recursion ``ded_1 = 0, ded_n = ded_(n-1) + limit_(n-1) x (MMR_n - MMR_(n-1))``
    (spec §1.2); a row that carries one must equal it (`MmDeductionMismatch` otherwise): MM is
    continuous across tiers only on the recursion, and the liquidation-price tier search
    relies on that (issue #13 B5).
    """
    bare = [
        RiskLimitTier(
            tier_id=int(row["id"]),
            limit_atoms=to_atoms(row["riskLimitValue"]),
            mmr=to_rate(row["maintenanceMargin"]),
            imr=to_rate(row["initialMargin"]),
            max_leverage=to_rate(row["maxLeverage"]),
            mm_deduction_atoms=0,
        )
        for row in rows
    ]
    deductions = mm_deduction_ladder_atoms(bare)
    tiers: list[RiskLimitTier] = []
    for row, tier, expected in zip(rows, bare, deductions, strict=True):
        given = row.get("mmDeduction") or ""
        if given and to_atoms(given) != expected:
            raise MmDeductionMismatch(symbol, tier.tier_id, given, expected)
        tiers.append(dataclasses.replace(tier, mm_deduction_atoms=expected))
    return tuple(tiers)


# The bundled dated USDT futures (BTCUSDT-25DEC26, BTCUSDT-26MAR27), loaded only when asked:
# `load_instruments(FUTURES_TABLE)`; the default table stays perpetuals only.
FUTURES_TABLE = "futures"


def load_instruments(path: str | Path | None = None) -> list[InstrumentSpec]:
    """Load an instrument table: a file, a bundled table's name, or the default table.

    Without a path, the bundled Bybit BTCUSDT/ETHUSDT/SOLUSDT one; "inverse" names the bundled
    inverse perpetuals (BTCUSD, ETHUSD), `FUTURES_TABLE` the dated futures and "usdc" the USDC
    perpetuals (BTCPERP, ETHPERP; `BUNDLED_TABLES`); any other path is a file of that shape.
    """
    if path is None or (isinstance(path, str) and path in BUNDLED_TABLES):
        name = "default" if path is None else path
        text = resources.files("perpx.instruments").joinpath(f"{name}.json").read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    table = json.loads(text)
    return [spec_from_bybit(item) for item in table["instruments"]]


def served_instruments() -> list[InstrumentSpec]:
    """Return what `perpx serve` lists: the perpetuals of `SERVED_TABLES`, default first.

    Every process that reads a serve journal (gateway, projector, standby, replay, audit)
    loads the same set, as a read-side checkpoint names its instruments.
    """
    return [spec for name in SERVED_TABLES for spec in load_instruments(name)]


def bundled_instruments() -> list[InstrumentSpec]:
    """Return every bundled instrument, the default table's first: what a bundled name means."""
    return [spec for name in BUNDLED_TABLES for spec in load_instruments(name)]

"""Instrument tables: Bybit-shaped JSON (instruments-info items plus fees and risk limits).

`load_instruments()` reads the bundled BTCUSDT, ETHUSDT and SOLUSDT table; any file of the same
shape can be passed instead, so operators list their own contracts without touching code.
"""

from __future__ import annotations

import json
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from perpx.convert import scaled, to_atoms, to_rate, units_of
from perpx.core.codes import RejectCode
from perpx.core.instruments import ContractType, InstrumentSpec, PriceLimitAction, RiskLimitTier
from perpx.core.numbers import ATOM_DECIMALS

_CONTRACT_TYPES = {
    "LinearPerpetual": ContractType.LINEAR_PERPETUAL,
    "LinearFutures": ContractType.LINEAR_FUTURES,
    "InversePerpetual": ContractType.INVERSE_PERPETUAL,
    "InverseFutures": ContractType.INVERSE_FUTURES,
}


def _decimals(text: str) -> int:
    exponent = Decimal(text).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def spec_from_bybit(item: dict[str, Any]) -> InstrumentSpec:
    """Build an `InstrumentSpec` from one Bybit instruments-info item with perpx's extra fields."""
    price_filter = item["priceFilter"]
    lot_filter = item["lotSizeFilter"]
    leverage = item["leverageFilter"]
    tick = price_filter["tickSize"]
    step = lot_filter["qtyStep"]
    bad = RejectCode.INVALID_PARAMETER
    tick_atoms = scaled(tick, ATOM_DECIMALS, bad)
    lot_base_e8 = scaled(step, 8, bad)
    tiers = tuple(
        RiskLimitTier(
            tier_id=int(row["id"]),
            limit_atoms=to_atoms(row["riskLimitValue"]),
            mmr=to_rate(row["maintenanceMargin"]),
            imr=to_rate(row["initialMargin"]),
            max_leverage=to_rate(row["maxLeverage"]),
            mm_deduction_atoms=to_atoms(row["mmDeduction"] or "0"),
        )
        for row in item["riskLimits"]
    )
    fees = item.get("feeRates", {})
    limits = item.get("riskParameters", {})
    return InstrumentSpec(
        symbol=item["symbol"],
        contract_type=_CONTRACT_TYPES[item["contractType"]],
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
    )


def load_instruments(path: str | Path | None = None) -> list[InstrumentSpec]:
    """Load an instrument table; without a path, the bundled Bybit BTCUSDT/ETHUSDT/SOLUSDT one."""
    if path is None:
        text = resources.files("perpx.instruments").joinpath("default.json").read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    table = json.loads(text)
    return [spec_from_bybit(item) for item in table["instruments"]]

"""Bybit's `/v5/asset/portfolio-margin` result, from the core's PM figures (next-mechanics §5.6).

The wire shapes of `perpx.api.wire`, for portfolio margin: kept in their own module so the
PM model, the route and the calculator share one rendering. `portfolio_margin_result` takes
what `perpx.core.account.portfolio` computed (`PmAccountResult`) and the account's wallet
figures (`PmWallet`, in USD) and returns the endpoint's ``result`` object:

- ``wallet {equity, cashBalance, marginBalance, availableBalance, accountIM, accountMM,
  accountMMRate, accountIMRate}``;
- ``assetPnlRange[]``, one per risk unit: ``totalPnlRanges {ALL, PERPETUAL, OPTION}``,
  ``perpPositionPnlRanges[]``, ``contingency``, ``asset {coin, assetIM, assetMM}``,
  ``maxLossPriceMove`` and the option and spot-hedge fields.

perpx trades no options and keeps spot hedging off (§7 N19), so OPTION's P&L, the option
and vega contingencies, ``maxLossIvShock`` and the spot-hedge P&L are zeros,
``optionExpiryDatePnlRanges`` is empty, ALL equals PERPETUAL (which covers perpetuals and
dated futures alike), and ``totalClosePzFee`` is "0" (§7 N14: not part of perpx's MM).
Amounts are USD with 8 decimals, as the API sample prints its P&L; ``priceScale`` is the
shock as a fraction ("-0.1", "0.0", "0.02").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from perpx.convert import format_lots, format_scaled
from perpx.core.account.portfolio import PmAccountResult, PmUnitResult
from perpx.core.numbers import ATOM_DECIMALS, RATE_DECIMALS

_ZERO = format_scaled(0, ATOM_DECIMALS, ATOM_DECIMALS)  # "0.00000000"


@dataclass(frozen=True, slots=True)
class PmWallet:
    """The account's wallet figures shown beside the PM detail, in USD atoms.

    The rates are in 10**-4 (as `perpx.api.wire.wallet` shows them: "0.0204"); the caller
    computes them with its own denominator (§5.5, §7 N10).
    """

    equity: int
    cash_balance: int
    margin_balance: int
    available_balance: int
    account_im: int
    account_mm: int
    account_im_rate: int  # 10**-4
    account_mm_rate: int  # 10**-4


def usd_text(atoms: int) -> str:
    """Show USD atoms with 8 decimals ("-972.14482880"), as the endpoint prints amounts."""
    return format_scaled(atoms, ATOM_DECIMALS, ATOM_DECIMALS)


def price_scale_text(shock: int) -> str:
    """Show a shock (10**-8) as the endpoint's priceScale: "-0.1", "0.0", "0.02"."""
    text = format_scaled(shock, RATE_DECIMALS)
    return text if "." in text else f"{text}.0"


def _ranges(shocks: tuple[int, ...], pnls: tuple[int, ...] | None) -> list[dict[str, Any]]:
    """Return ``pnlRanges[]``: one P&L per shock (None: zeros, for options and spot)."""
    return [{"priceScale": price_scale_text(shock),
             "pnls": [usd_text(pnls[k]) if pnls is not None else _ZERO]}
            for k, shock in enumerate(shocks)]


def asset_pnl_range(unit: PmUnitResult,
                    session_avg_prices: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Return one ``assetPnlRange`` item: a risk unit's grid, legs, contingencies and margins.

    A leg is listed when it holds a position or open orders. ``orderSize`` is the open
    quantity of its buy and sell orders together; ``sessionAvgPrice`` is the caller's
    (`session_avg_prices` by symbol, "0" when not given).
    """
    shocks = unit.shocks
    perp = _ranges(shocks, unit.pnls)
    positions = []
    for row in unit.legs:
        leg = row.leg
        spec = leg.spec
        if not (leg.position_lots or leg.buy_order_lots or leg.sell_order_lots):
            continue
        positions.append({
            "symbolName": spec.symbol,
            "position": format_lots(spec, leg.position_lots),
            "pnlRanges": _ranges(shocks, row.pnls),
            "sessionAvgPrice": (session_avg_prices or {}).get(spec.symbol, "0"),
            "markPrice": usd_text(leg.mark_ticks * spec.tick_atoms),
            "orderSize": format_lots(spec, leg.buy_order_lots + leg.sell_order_lots),
            "contractType": int(spec.contract_type),
            "settleCoin": spec.settle_coin,
            "symbolAlias": spec.display_name or spec.symbol,
        })
    return {
        "baseCoin": unit.base_coin,
        "totalPnlRanges": {"ALL": {"pnlRanges": perp},
                           "PERPETUAL": {"pnlRanges": _ranges(shocks, unit.pnls)},
                           "OPTION": {"pnlRanges": _ranges(shocks, None)}},
        "perpPositionPnlRanges": positions,
        "optionExpiryDatePnlRanges": [],
        "contingency": {
            "optionContingency": _ZERO,
            "futureDeltaContingency": usd_text(unit.delta_spread_contingency),
            "optionVegaContingency": _ZERO,
            "contingencyComponents": usd_text(unit.contingency),
            "usdtUsdcContingency": usd_text(unit.usdt_usdc_contingency),
            "futureContingency": usd_text(unit.future_contingency),
        },
        "asset": {"coin": unit.base_coin, "assetIM": usd_text(unit.im),
                  "assetMM": usd_text(unit.mm)},
        "maxLossPriceMove": price_scale_text(unit.max_loss_price_move),
        "maxLossIvShock": "0",
        "totalClosePzFee": "0",
        "spotHedgeInfo": {"hedgeSpotSize": "0", "walletBalance": "0", "usdIndexPrice": "0",
                          "pnlRanges": _ranges(shocks, None)},
        "maxLossIvShockList": ["0"] * len(shocks),
    }


def portfolio_margin_result(account: PmAccountResult, wallet: PmWallet,
                            base_coin: str | None = None,
                            session_avg_prices: Mapping[str, str] | None = None
                            ) -> dict[str, Any]:
    """Return the ``result`` of `GET /v5/asset/portfolio-margin` (next-mechanics §5.6).

    `base_coin` keeps only that unit (the endpoint's ``baseCoin`` parameter); without it
    every unit is listed, sorted by base coin.
    """
    return {
        "wallet": {
            "equity": usd_text(wallet.equity),
            "cashBalance": usd_text(wallet.cash_balance),
            "marginBalance": usd_text(wallet.margin_balance),
            "availableBalance": usd_text(wallet.available_balance),
            "accountIM": usd_text(wallet.account_im),
            "accountMM": usd_text(wallet.account_mm),
            "accountMMRate": format_scaled(wallet.account_mm_rate, 4),
            "accountIMRate": format_scaled(wallet.account_im_rate, 4),
        },
        "assetPnlRange": [asset_pnl_range(unit, session_avg_prices) for unit in account.units
                          if base_coin is None or unit.base_coin == base_coin],
    }

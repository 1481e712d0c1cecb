"""Bybit's wire objects for collateral and borrowing (next-mechanics §4.6).

The venue's collateral table (`perpx.core.account.collateral.CollateralTable`) as Bybit's
public `/v5/spot-margin-trade/collateral` and `/data` show it, and an account's borrowing
(`/v5/account/collateral-info`, `/v5/spot-margin-trade/liability`, `/borrow-history`) from
the clearing's figures. Amounts are coin amounts (8 decimals at most, no trailing zeros),
ratios rates of 10⁻⁸, hourly borrow rates of 10⁻¹⁸ (`BORROW_RATE_ONE`).

perpx has no spot margin: a liability is always a *derivatives* liability (a coin's equity
below zero, §4.4), so every spot part (`spotTotalBorrow`, `fixedBorrowAmount`,
`otherBorrowAmount`, `costExemption`) is "0" and `flexibleBorrowAmount`, `derivativesBorrow`
equal the whole liability.
"""

from __future__ import annotations

from typing import Any

from perpx.convert import format_atoms, format_rate, format_scaled
from perpx.core.account.accounts import Account
from perpx.core.account.clearing import Clearing
from perpx.core.account.collateral import CollateralCoin, free_borrow_atoms
from perpx.core.numbers import RATE_ONE
from perpx.store.records import BorrowRecord

VIP_LEVEL = "No VIP"  # perpx has one fee and borrowing level, Bybit's lowest
BORROW_RATE_DECIMALS = 18


def hourly_rate(rate: int) -> str:
    """Return an hourly borrow rate (10⁻¹⁸) as Bybit prints it ("0.000001216904")."""
    return format_scaled(rate, BORROW_RATE_DECIMALS)


def max_borrowing(terms: CollateralCoin) -> str:
    """Return a coin's borrowing limit; "" where the venue sets none (limit 0)."""
    return format_atoms(terms.max_borrowing_atoms) if terms.max_borrowing_atoms else ""


def borrowable(clearing: Clearing, coin: str) -> bool:
    """Tell whether a coin can be owed here: a listed contract settles in it.

    A liability is a coin's equity below zero, which only the P&L, fees and funding of the
    contracts settled in the coin (and the interest on them) can cause (§4.4).
    """
    return any(spec.settle_coin == coin for spec in clearing.instruments.values())


def table_coins(clearing: Clearing) -> list[CollateralCoin]:
    """Return the collateral coins a wallet may hold here, by name."""
    table = clearing.collateral
    return [terms for coin in clearing.coins if (terms := table.coin(coin)) is not None]


def tiers(terms: CollateralCoin) -> dict[str, Any]:
    """Return one coin of `/v5/spot-margin-trade/collateral`: its tiers verbatim (§7 N6).

    `maxQty` "" is Bybit's "no upper bound".
    """
    return {"currency": terms.coin, "collateralRatioList": [
        {"minQty": format_atoms(tier.min_atoms),
         "maxQty": "" if tier.max_atoms is None else format_atoms(tier.max_atoms),
         "collateralRatio": format_rate(tier.ratio)} for tier in terms.tiers]}


def first_ratio(terms: CollateralCoin) -> str:
    """Return the deprecated single `collateralRatio`: the first tier's (§4.2)."""
    return format_rate(terms.tiers[0].ratio) if terms.tiers else "0"


def vip_coin(clearing: Clearing, terms: CollateralCoin) -> dict[str, Any]:
    """Return one coin of `/v5/spot-margin-trade/data`'s `vipCoinList[].list`."""
    return {"borrowable": borrowable(clearing, terms.coin),
            "collateralRatio": first_ratio(terms), "currency": terms.coin,
            "hourlyBorrowRate": hourly_rate(terms.hourly_borrow_rate),
            "liquidationOrder": str(terms.liquidation_order),
            "marginCollateral": terms.margin_collateral,
            "maxBorrowingAmount": max_borrowing(terms)}


def collateral_info(clearing: Clearing, account: Account | None,
                    terms: CollateralCoin) -> dict[str, Any]:
    """Return one row of `/v5/account/collateral-info` for an account (None: never funded).

    `borrowAmount` is the coin's liability now (|min(0, equity)|), `freeBorrowAmount` the
    part of it that would bear no interest at the next hh:05 (`free_borrow_atoms`, §4.4);
    `availableToBorrow` and `borrowUsageRate` are against the coin's limit (no limit: "" and
    "0"). perpx has one account per user, so `otherBorrowAmount` is "0".
    """
    coin = terms.coin
    borrow = free = 0
    switched_on = True
    if account is not None:
        equity = clearing.equity_atoms(account, coin)
        borrow = max(0, -equity)
        free = free_borrow_atoms(terms, account.balances.get(coin, 0), equity)
        switched_on = coin not in account.collateral_off
    limit = terms.max_borrowing_atoms
    return {
        "currency": coin, "hourlyBorrowRate": hourly_rate(terms.hourly_borrow_rate),
        "maxBorrowingAmount": max_borrowing(terms),
        "freeBorrowingLimit": format_atoms(terms.free_borrowing_limit_atoms),
        "freeBorrowAmount": format_atoms(free), "borrowAmount": format_atoms(borrow),
        "otherBorrowAmount": "0",
        "availableToBorrow": format_atoms(max(0, limit - borrow)) if limit else "",
        "borrowable": borrowable(clearing, coin),
        "borrowUsageRate": format_rate(borrow * RATE_ONE // limit) if limit else "0",
        "marginCollateral": terms.margin_collateral, "collateralSwitch": switched_on,
        "collateralRatio": first_ratio(terms), "freeBorrowingAmount": "",
    }


def liability(clearing: Clearing, account: Account | None, coin: str) -> dict[str, Any]:
    """Return `/v5/spot-margin-trade/liability` for one coin: all of it derivatives'."""
    owed = clearing.liability_atoms(account, coin) if account is not None else 0
    total = format_atoms(owed)
    return {"currency": coin, "totalBorrowAmount": total, "fixedBorrowAmount": "0",
            "flexibleBorrowAmount": total, "spotTotalBorrow": "0", "derivativesBorrow": total}


def borrow_row(record: BorrowRecord) -> dict[str, Any]:
    """Return one row of `/v5/account/borrow-history` (`createdTime` a number, as Bybit's)."""
    return {
        "currency": record.coin, "createdTime": record.ts_ms,
        "borrowCost": format_atoms(record.cost_atoms),
        "hourlyBorrowRate": hourly_rate(record.hourly_rate),
        "InterestBearingBorrowSize": format_atoms(record.bearing_atoms),
        "costExemption": "0", "borrowAmount": format_atoms(record.borrow_atoms),
        "unrealisedLoss": format_atoms(record.unrealised_loss_atoms),
        "freeBorrowedAmount": format_atoms(record.free_atoms),
    }

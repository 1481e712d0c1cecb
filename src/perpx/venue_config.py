"""The operator's `[collateral]` and `[portfolio_margin]` TOML tables <-> a venue-params record.

The edge where an operator's decimal strings ("0.95", "0.000001216904") become the core's
integers (`perpx.convert`) and back, for `perpx serve --config` and `perpx venue-params`.
The result is checked by the core's own parser (`venue_params_from_record`), so a table the
core would refuse is refused here, at start, and the record is canonical (coins by name),
comparable with `Engine.current_venue_params()`.

A table replaces that half of the parameters whole; a half left out keeps the venue's::

    [collateral]
    usdt_rate = "1"                    # USD per USDT
    conversion_fee_rate = "0"

    [collateral.coins.BTC]
    tiers = [{ min_qty = "0", max_qty = "", ratio = "0.95" }]   # max_qty "": no bound
    price_symbol = "BTCUSDT"           # or fixed_price = "1" (USD) for a coin without one
    switchable = true
    margin_collateral = true
    liquidation_order = 11
    hourly_borrow_rate = "0.000001216904"
    free_borrowing_limit = "0"
    max_borrowing = "100"              # "0": no limit

    [portfolio_margin]
    default_range = { max_move = "0.15", step = "0.03" }
    risk_factor = "0.006"
    im_factor = "1.2"
    shock_base = "INDEX"               # or "MARK"
    delta_spread_rate = "0"
    usdt_usdc_rate = "0"

    [portfolio_margin.ranges]
    BTC = { max_move = "0.1", step = "0.02" }
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from perpx.convert import ConversionError, format_atoms, format_rate, format_scaled, scaled
from perpx.convert import to_atoms as _atoms
from perpx.convert import to_rate as _rate
from perpx.core.account.collateral import (
    BORROW_RATE_ONE,
    PX_ONE,
    collateral_from_record,
    collateral_record,
)
from perpx.core.account.portfolio import pm_params_from_record, pm_params_record

BORROW_RATE_DECIMALS: Final = len(str(BORROW_RATE_ONE)) - 1  # 18

_TOP_KEYS: Final = ("usdt_rate", "conversion_fee_rate", "coins")
_COIN_REQUIRED: Final = ("tiers", "switchable", "margin_collateral", "liquidation_order",
                         "hourly_borrow_rate", "free_borrowing_limit", "max_borrowing")
_COIN_OPTIONAL: Final = ("price_symbol", "fixed_price")
_PM_KEYS: Final = ("default_range", "risk_factor", "im_factor", "shock_base",
                   "delta_spread_rate", "usdt_usdc_rate", "ranges")


class VenueConfigError(ValueError):
    """A `[collateral]` or `[portfolio_margin]` table the venue cannot use, and why."""


def _keys(table: object, where: str, required: tuple[str, ...],
          optional: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise VenueConfigError(f"{where} must be a table")
    unknown = sorted(set(table) - set(required) - set(optional))
    if unknown:
        raise VenueConfigError(f"{where}: unknown key {unknown[0]!r} "
                               f"(known: {', '.join(required + optional)})")
    missing = [key for key in required if key not in table]
    if missing:
        raise VenueConfigError(f"{where}: missing {', '.join(missing)}")
    return table


def _decimal(value: object, where: str, convert: Callable[[str], int]) -> int:
    """Convert a decimal string (an integer too; a TOML float is refused: inexact)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise VenueConfigError(f"{where}: expected a decimal string such as \"0.95\", "
                               f"got {value!r}")
    try:
        return convert(value)
    except ConversionError as bad:
        raise VenueConfigError(f"{where}: {bad}") from None


def _hourly(text: str) -> int:
    return scaled(text, BORROW_RATE_DECIMALS)


def _typed(value: object, kind: type, where: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise VenueConfigError(f"{where}: expected {kind.__name__}, got {value!r}")
    return value


def collateral_from_toml(table: object, where: str = "[collateral]") -> dict[str, object]:
    """Return the `[collateral]` table as the core's canonical collateral record."""
    top = _keys(table, where, _TOP_KEYS)
    coins = top["coins"]
    if not isinstance(coins, dict) or not coins:
        raise VenueConfigError(f"{where}: coins must be tables [collateral.coins.COIN]")
    items: list[dict[str, object]] = []
    for name, raw in coins.items():
        at = f"[collateral.coins.{name}]"
        coin = _keys(raw, at, _COIN_REQUIRED, _COIN_OPTIONAL)
        tiers = coin["tiers"]
        if not isinstance(tiers, list):
            raise VenueConfigError(f"{at}: tiers must be a list of {{ min_qty, max_qty, "
                                   "ratio }}")
        rows: list[list[int | None]] = []
        for n, tier in enumerate(tiers):
            t = _keys(tier, f"{at} tier {n}", ("min_qty", "max_qty", "ratio"))
            top_qty = t["max_qty"]
            rows.append([_decimal(t["min_qty"], f"{at} tier {n} min_qty", _atoms),
                         None if top_qty == "" else
                         _decimal(top_qty, f"{at} tier {n} max_qty", _atoms),
                         _decimal(t["ratio"], f"{at} tier {n} ratio", _rate)])
        items.append({
            "coin": name, "tiers": rows,
            "priceSymbol": _typed(coin.get("price_symbol", ""), str, f"{at} price_symbol"),
            "fixedPx": _decimal(coin.get("fixed_price", "1"), f"{at} fixed_price", _atoms),
            "switchable": _typed(coin["switchable"], bool, f"{at} switchable"),
            "marginCollateral": _typed(coin["margin_collateral"], bool,
                                       f"{at} margin_collateral"),
            "liquidationOrder": _typed(coin["liquidation_order"], int,
                                       f"{at} liquidation_order"),
            "hourlyBorrowRate": _decimal(coin["hourly_borrow_rate"],
                                         f"{at} hourly_borrow_rate", _hourly),
            "freeBorrowingLimit": _decimal(coin["free_borrowing_limit"],
                                           f"{at} free_borrowing_limit", _atoms),
            "maxBorrowing": _decimal(coin["max_borrowing"], f"{at} max_borrowing", _atoms),
        })
    record = {"usdtRate": _decimal(top["usdt_rate"], f"{where} usdt_rate", _atoms),
              "conversionFeeRate": _decimal(top["conversion_fee_rate"],
                                            f"{where} conversion_fee_rate", _rate),
              "coins": items}
    try:  # the core's one parser decides what a table may be
        return collateral_record(collateral_from_record(record))
    except ValueError as bad:
        raise VenueConfigError(f"{where}: {bad}") from None


def _range(value: object, where: str) -> list[int]:
    grid = _keys(value, where, ("max_move", "step"))
    return [_decimal(grid["max_move"], f"{where} max_move", _rate),
            _decimal(grid["step"], f"{where} step", _rate)]


def pm_params_from_toml(table: object,
                        where: str = "[portfolio_margin]") -> dict[str, object]:
    """Return the `[portfolio_margin]` table as the core's canonical PM record."""
    pm = _keys(table, where, _PM_KEYS)
    ranges = pm["ranges"]
    if not isinstance(ranges, dict):
        raise VenueConfigError(f"{where}: ranges must be a table [portfolio_margin.ranges]")
    base = pm["shock_base"]
    record = {
        "ranges": [[coin, *_range(grid, f"[portfolio_margin.ranges] {coin}")]
                   for coin, grid in ranges.items()],
        "defaultRange": _range(pm["default_range"], f"{where} default_range"),
        "riskFactor": _decimal(pm["risk_factor"], f"{where} risk_factor", _rate),
        "imFactor": _decimal(pm["im_factor"], f"{where} im_factor", _rate),
        "shockBase": base.upper() if isinstance(base, str) else base,
        "deltaSpreadRate": _decimal(pm["delta_spread_rate"], f"{where} delta_spread_rate",
                                    _rate),
        "usdtUsdcRate": _decimal(pm["usdt_usdc_rate"], f"{where} usdt_usdc_rate", _rate),
    }
    try:
        return pm_params_record(pm_params_from_record(record))
    except ValueError as bad:
        raise VenueConfigError(f"{where}: {bad}") from None


# --- printing -----------------------------------------------------------------------------


def _q(text: str) -> str:
    return '"' + text + '"'


def venue_params_toml(record: dict[str, Any]) -> str:
    """Return a venue-params record as the TOML tables `perpx serve --config` reads."""
    table, pm = record["collateral"], record["portfolioMargin"]
    out = ["[collateral]",
           f"usdt_rate = {_q(format_atoms(table['usdtRate']))}  # USD per USDT",
           f"conversion_fee_rate = {_q(format_rate(table['conversionFeeRate']))}"]
    for coin in table["coins"]:
        tiers = ", ".join(
            f"{{ min_qty = {_q(format_atoms(low))}, "
            f"max_qty = {_q('' if high is None else format_atoms(high))}, "
            f"ratio = {_q(format_rate(ratio))} }}"
            for low, high, ratio in coin["tiers"])
        out += ["", f"[collateral.coins.{coin['coin']}]", f"tiers = [{tiers}]"]
        if coin["priceSymbol"]:
            out.append(f"price_symbol = {_q(coin['priceSymbol'])}")
        # USDT is worth usdt_rate; a coin priced by an index needs no fixed price.
        if (not coin["priceSymbol"] and coin["coin"] != "USDT") or coin["fixedPx"] != PX_ONE:
            out.append(f"fixed_price = {_q(format_atoms(coin['fixedPx']))}  # USD")
        out += [f"switchable = {str(coin['switchable']).lower()}",
                f"margin_collateral = {str(coin['marginCollateral']).lower()}",
                f"liquidation_order = {coin['liquidationOrder']}",
                "hourly_borrow_rate = "
                + _q(format_scaled(coin["hourlyBorrowRate"], BORROW_RATE_DECIMALS)),
                f"free_borrowing_limit = {_q(format_atoms(coin['freeBorrowingLimit']))}",
                f"max_borrowing = {_q(format_atoms(coin['maxBorrowing']))}  # 0: no limit"]

    def grid(pair: list[int]) -> str:
        return (f"{{ max_move = {_q(format_rate(pair[0]))}, "
                f"step = {_q(format_rate(pair[1]))} }}")

    out += ["", "[portfolio_margin]",
            f"default_range = {grid(pm['defaultRange'])}",
            f"risk_factor = {_q(format_rate(pm['riskFactor']))}",
            f"im_factor = {_q(format_rate(pm['imFactor']))}",
            f"shock_base = {_q(pm['shockBase'])}  # INDEX or MARK",
            f"delta_spread_rate = {_q(format_rate(pm['deltaSpreadRate']))}",
            f"usdt_usdc_rate = {_q(format_rate(pm['usdtUsdcRate']))}",
            "", "[portfolio_margin.ranges]"]
    out += [f"{coin} = {grid([max_move, step])}" for coin, max_move, step in pm["ranges"]]
    return "\n".join(out) + "\n"

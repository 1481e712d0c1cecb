"""Collateral across coins: USD prices, tiered collateral value ratios, borrowing terms.

Next-mechanics §4. A unified account's cross and portfolio margin is one pool in USD: each
coin's equity (wallet + unrealized P&L of the contracts settled in it) is valued at the
coin's USD index price, a positive equity after its *collateral value ratio* (a haircut,
tiered by quantity and applied marginally, §4.2), a negative one in full (a liability,
§4.4). This module holds the venue's collateral table and the pure arithmetic on it; the
clearing sums an account with it (`perpx.core.account.clearing.Clearing.account_risk`).

Amounts are integer atoms (10⁻⁸ of a coin); USD amounts are atoms of 10⁻⁸ USD; a USD price
is 10⁻⁸ USD per coin (``px_e8``); a collateral ratio is a rate of 10⁻⁸ (`RATE_ONE`); an
hourly borrow rate is in 10⁻¹⁸ (`BORROW_RATE_ONE`: Bybit publishes rates such as
0.000001216904 per hour). Rounding is always in the exchange's favour: collateral and
equity down, liabilities, IM and MM up (floor of a negative value is its larger size).
"""

from __future__ import annotations

from typing import Final

from perpx.core.numbers import RATE_ONE

PX_ONE: Final = 10**8  # a USD price of exactly 1 USD per coin
BORROW_RATE_ONE: Final = 10**18
HOUR_MS: Final = 3_600_000
# Interest is computed and charged at hh:05 (next-mechanics §4.4, §7 N18) and repayment is
# refused from hh:04:00 to hh:05:30, while it is being computed.
INTEREST_OFFSET_MS: Final = 300_000
REPAY_BLACKOUT_FROM_MS: Final = 240_000
REPAY_BLACKOUT_TO_MS: Final = 330_000


class CollateralTier:
    """One slice of a coin's tiered collateral value ratio: [min, max) in coin atoms."""

    __slots__ = ("max_atoms", "min_atoms", "ratio")

    def __init__(self, min_atoms: int, max_atoms: int | None, ratio: int) -> None:
        self.min_atoms = min_atoms
        self.max_atoms = max_atoms  # None: no upper bound (Bybit's maxQty "")
        self.ratio = ratio  # 10**-8


class CollateralCoin:
    """A coin's collateral and borrowing terms (next-mechanics §4.2, §4.4, §4.6).

    `price_symbol` names the USDT perpetual whose index prices the coin (§4.1), or is empty
    for a coin priced at a configured constant `fixed_px_e8` (USDT itself, USDC: §7 N17).
    """

    __slots__ = ("coin", "fixed_px_e8", "free_borrowing_limit_atoms", "hourly_borrow_rate",
                 "liquidation_order", "margin_collateral", "max_borrowing_atoms",
                 "price_symbol", "switchable", "tiers")

    def __init__(self, coin: str, tiers: tuple[CollateralTier, ...], *, price_symbol: str = "",
                 fixed_px_e8: int = PX_ONE, switchable: bool = True,
                 margin_collateral: bool = True, liquidation_order: int = 0,
                 hourly_borrow_rate: int = 0, free_borrowing_limit_atoms: int = 0,
                 max_borrowing_atoms: int = 0) -> None:
        self.coin = coin
        self.tiers = tiers
        self.price_symbol = price_symbol
        self.fixed_px_e8 = fixed_px_e8
        self.switchable = switchable  # USDT and USDC cannot be switched off (§4.2)
        self.margin_collateral = margin_collateral  # the platform's switch
        self.liquidation_order = liquidation_order  # converted in ascending order (§7 N9)
        self.hourly_borrow_rate = hourly_borrow_rate  # 10**-18 per hour
        self.free_borrowing_limit_atoms = free_borrowing_limit_atoms
        self.max_borrowing_atoms = max_borrowing_atoms  # 0: no limit

    def at_par(self) -> bool:
        """Tell whether every positive amount counts in full (one tier, ratio 1, no bound)."""
        return (len(self.tiers) == 1 and self.tiers[0].min_atoms == 0
                and self.tiers[0].max_atoms is None and self.tiers[0].ratio == RATE_ONE)

    def collateral_atoms(self, qty_atoms: int) -> int:
        """Return the part of a positive quantity that counts, slice by slice, in coin atoms.

        Tiers apply marginally (§4.2; the Bitget example C3): each slice of the quantity at
        its own tier's ratio, so the value is continuous at the tier edges. Rounded down.
        """
        counted = 0
        for tier in self.tiers:
            top = qty_atoms if tier.max_atoms is None else min(qty_atoms, tier.max_atoms)
            if top > tier.min_atoms:
                counted += (top - tier.min_atoms) * tier.ratio
        return counted // RATE_ONE


class CollateralTable:
    """The venue's collateral coins and the USDT→USD rate (next-mechanics §4.1).

    `usdt_rate_e8` is the USD value of one USDT; 1 until a USD index exists (§4.1), and then
    every USDT-settled figure is the same in USD as in USDT, so a USDT-only account is
    margined exactly as before collateral pooling. `conversion_fee_rate` is charged on a
    conversion that repays a liability (§4.5; perpx has no spot market, a conversion is an
    internal swap at the USD index prices).
    """

    __slots__ = ("coins", "conversion_fee_rate", "usdt_rate_e8")

    def __init__(self, coins: tuple[CollateralCoin, ...], usdt_rate_e8: int = PX_ONE,
                 conversion_fee_rate: int = 0) -> None:
        self.coins = {c.coin: c for c in coins}
        self.usdt_rate_e8 = usdt_rate_e8
        self.conversion_fee_rate = conversion_fee_rate

    def coin(self, coin: str) -> CollateralCoin | None:
        """Return a coin's terms, if it is a collateral coin here."""
        return self.coins.get(coin)


def _flat(ratio: int) -> tuple[CollateralTier, ...]:
    return (CollateralTier(0, None, ratio),)


def default_collateral() -> CollateralTable:
    """Return perpx's default collateral table (next-mechanics §7 N6, N9, N17, N18).

    Not Bybit's live values, which are not published in the sources read: USDT and USDC
    count in full, BTC and ETH at 0.95 (the pre-tier value of Bybit's API samples; ETH's is
    an assumption), priced by their USDT perpetuals' indices, USDC at a constant 1 USD.
    Hourly rates: BTC's and ETH's the borrow-history sample's 0.000001216904, USDT's and
    USDC's the interest-rate-history sample's 0.000014621596. The interest-free amounts,
    borrowing limits and liquidation orders are perpx's choices, labelled as such in
    docs/decisions.md; stable coins are converted last, BTC (Bybit's sample order 11) and
    ETH first.
    """
    return CollateralTable((
        CollateralCoin("USDT", _flat(RATE_ONE), switchable=False, liquidation_order=21,
                       hourly_borrow_rate=14_621_596_000_000,
                       free_borrowing_limit_atoms=100_000 * 10**8,
                       max_borrowing_atoms=10_000_000 * 10**8),
        CollateralCoin("USDC", _flat(RATE_ONE), switchable=False, liquidation_order=20,
                       hourly_borrow_rate=14_621_596_000_000,
                       free_borrowing_limit_atoms=100_000 * 10**8,
                       max_borrowing_atoms=10_000_000 * 10**8),
        CollateralCoin("BTC", _flat(95_000_000), price_symbol="BTCUSDT", liquidation_order=11,
                       hourly_borrow_rate=1_216_904_000_000,
                       max_borrowing_atoms=100 * 10**8),
        CollateralCoin("ETH", _flat(95_000_000), price_symbol="ETHUSDT", liquidation_order=10,
                       hourly_borrow_rate=1_216_904_000_000,
                       max_borrowing_atoms=2_000 * 10**8),
    ))


def usd_floor(amount_atoms: int, px_e8: int) -> int:
    """Value a coin amount in USD atoms, rounded down (a debt rounds to its larger size)."""
    return amount_atoms * px_e8 // PX_ONE


def usd_ceil(amount_atoms: int, px_e8: int) -> int:
    """Value a requirement (IM, MM) in USD atoms, rounded up."""
    return -(-amount_atoms * px_e8 // PX_ONE)


def coin_floor(usd_atoms: int, px_e8: int) -> int:
    """Express a USD amount in a coin priced at `px_e8`, rounded down."""
    return usd_atoms * PX_ONE // px_e8


def coin_ceil(usd_atoms: int, px_e8: int) -> int:
    """Express a USD requirement in a coin priced at `px_e8`, rounded up."""
    return -(-usd_atoms * PX_ONE // px_e8)


def margin_value_usd(terms: CollateralCoin | None, equity_atoms: int, px_e8: int,
                     switched_on: bool) -> int:
    """Return a coin's contribution to the margin balance in USD atoms (§4.3, `h_c`).

    A positive equity counts after the tiered collateral ratio, and only if the platform and
    the user have the coin on as collateral; a negative one (a liability) counts in full
    (§4.2: "assets with a negative balance default to a 100% collateral value ratio"). A coin
    the table does not know is not collateral.
    """
    if equity_atoms <= 0:
        return usd_floor(equity_atoms, px_e8)
    if terms is None or not terms.margin_collateral or not switched_on:
        return 0
    return usd_floor(terms.collateral_atoms(equity_atoms), px_e8)


def interest_atoms(terms: CollateralCoin, borrow_atoms: int, free_atoms: int) -> int:
    """Return one hour's interest on a liability (§4.4), truncated to the atom (§7 N1).

    ``interest = (borrow − free) × hourlyRate``; above the borrowing limit the penalty rate
    applies to the whole borrowing: ``borrow × hourlyRate × utilisation³``.
    """
    rate = terms.hourly_borrow_rate
    limit = terms.max_borrowing_atoms
    if limit and borrow_atoms > limit:
        return borrow_atoms**4 * rate // (limit**3 * BORROW_RATE_ONE)
    bearing = max(0, borrow_atoms - free_atoms)
    return bearing * rate // BORROW_RATE_ONE


def free_borrow_atoms(terms: CollateralCoin, wallet_atoms: int, equity_atoms: int) -> int:
    """Return the interest-free part of a liability (§4.4).

    ``freeBorrowAmount = min(borrowing caused by unrealised losses, freeBorrowingLimit)``:
    the liability beyond what the wallet itself owes; realised losses, fees and funding
    (a negative wallet) always pay interest. Only coins with a free limit (USDT, USDC).
    """
    borrow = max(0, -equity_atoms)
    realised = max(0, -wallet_atoms)
    return min(max(0, borrow - realised), terms.free_borrowing_limit_atoms)


def hour_mark(ts_ms: int) -> int:
    """Return the number of hh:05 interest times at or before `ts_ms` since the epoch."""
    return (ts_ms - INTEREST_OFFSET_MS) // HOUR_MS


def next_interest_ms(ts_ms: int) -> int:
    """Return the first hh:05 strictly after `ts_ms`."""
    return (hour_mark(ts_ms) + 1) * HOUR_MS + INTEREST_OFFSET_MS


def in_repay_blackout(ts_ms: int) -> bool:
    """Tell whether repayment is refused now: hh:04:00 to hh:05:30 (§4.4, §7 N18)."""
    into_hour = ts_ms % HOUR_MS
    return REPAY_BLACKOUT_FROM_MS <= into_hour < REPAY_BLACKOUT_TO_MS


# --- the table as plain data (the `SetVenueParams` command's record, issue #17) ------------
#
# One parser: an operator's TOML (`perpx.config`), a journaled command and a snapshot all
# reach the table through `collateral_from_record`. Integers in the core's units (atoms,
# 10**-8 rates and prices, 10**-18 hourly rates); a record that is not exactly that raises
# ValueError, which the engine answers as a rejection.

_COIN_KEYS: Final = ("coin", "tiers", "priceSymbol", "fixedPx", "switchable",
                     "marginCollateral", "liquidationOrder", "hourlyBorrowRate",
                     "freeBorrowingLimit", "maxBorrowing")


def collateral_record(table: CollateralTable) -> dict[str, object]:
    """Return the table as plain data (ints, strings, bools, None, lists), coins by name."""
    return {
        "usdtRate": table.usdt_rate_e8,
        "conversionFeeRate": table.conversion_fee_rate,
        "coins": [
            {"coin": c.coin,
             "tiers": [[t.min_atoms, t.max_atoms, t.ratio] for t in c.tiers],
             "priceSymbol": c.price_symbol, "fixedPx": c.fixed_px_e8,
             "switchable": c.switchable, "marginCollateral": c.margin_collateral,
             "liquidationOrder": c.liquidation_order,
             "hourlyBorrowRate": c.hourly_borrow_rate,
             "freeBorrowingLimit": c.free_borrowing_limit_atoms,
             "maxBorrowing": c.max_borrowing_atoms}
            for c in (table.coins[name] for name in sorted(table.coins))
        ],
    }


def _record_int(record: dict[str, object], key: str, where: str, low: int = 0,
               high: int | None = None) -> int:
    """Read an integer field of a plain-data record within [low, high]; ValueError if not."""
    value = record.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{where}: {key} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        top = "" if high is None else f", at most {high}"
        raise ValueError(f"{where}: {key} must be at least {low}{top}, got {value}")
    return value


def _record_bool(record: dict[str, object], key: str, where: str) -> bool:
    value = record.get(key)
    if not isinstance(value, bool):
        raise ValueError(f"{where}: {key} must be true or false, got {value!r}")
    return value


def _tiers_from_record(value: object, where: str) -> tuple[CollateralTier, ...]:
    """Tiers must tile [0, ∞): each starts where the last ended, the last is unbounded."""
    if not isinstance(value, list) or not value:
        raise ValueError(f"{where}: tiers must be a non-empty list of [min, max|None, ratio]")
    tiers: list[CollateralTier] = []
    start = 0
    for n, item in enumerate(value):
        if not isinstance(item, (list, tuple)) or len(item) != 3:
            raise ValueError(f"{where}: tier {n} must be [min, max|None, ratio]")
        row = {"min": item[0], "max": item[1], "ratio": item[2]}
        low = _record_int(row, "min", f"{where} tier {n}")
        if low != start:
            raise ValueError(f"{where}: tier {n} starts at {low}, expected {start}")
        ratio = _record_int(row, "ratio", f"{where} tier {n}", 0, RATE_ONE)
        last = n == len(value) - 1
        if item[1] is None:
            if not last:
                raise ValueError(f"{where}: only the last tier may be unbounded")
            tiers.append(CollateralTier(low, None, ratio))
            continue
        if last:
            raise ValueError(f"{where}: the last tier must be unbounded (max None)")
        high = _record_int(row, "max", f"{where} tier {n}", low + 1)
        tiers.append(CollateralTier(low, high, ratio))
        start = high
    return tuple(tiers)


def collateral_from_record(record: object) -> CollateralTable:
    """Rebuild a table from `collateral_record`'s data; ValueError if it is malformed.

    Every key is required and no other is allowed, so a record means one table only. USDT
    must be a coin (every USD price goes through its rate); a coin has a price symbol or a
    positive fixed price.
    """
    if not isinstance(record, dict) or set(record) != {"usdtRate", "conversionFeeRate",
                                                       "coins"}:
        raise ValueError("collateral: expected usdtRate, conversionFeeRate and coins")
    usdt_rate = _record_int(record, "usdtRate", "collateral", 1)
    fee = _record_int(record, "conversionFeeRate", "collateral", 0, RATE_ONE - 1)
    items = record["coins"]
    if not isinstance(items, list):
        raise ValueError("collateral: coins must be a list")
    coins: list[CollateralCoin] = []
    for item in items:
        if not isinstance(item, dict) or set(item) != set(_COIN_KEYS):
            raise ValueError(f"collateral: a coin needs exactly {', '.join(_COIN_KEYS)}")
        name = item["coin"]
        if not isinstance(name, str) or not name.isalnum() or not name.isupper():
            raise ValueError(f"collateral: coin {name!r} must be upper-case letters/digits")
        where = f"collateral {name}"
        symbol = item["priceSymbol"]
        if not isinstance(symbol, str):
            raise ValueError(f"{where}: priceSymbol must be a string ('' for a fixed price)")
        coins.append(CollateralCoin(
            name, _tiers_from_record(item["tiers"], where), price_symbol=symbol,
            fixed_px_e8=_record_int(item, "fixedPx", where, 1),
            switchable=_record_bool(item, "switchable", where),
            margin_collateral=_record_bool(item, "marginCollateral", where),
            liquidation_order=_record_int(item, "liquidationOrder", where),
            hourly_borrow_rate=_record_int(item, "hourlyBorrowRate", where),
            free_borrowing_limit_atoms=_record_int(item, "freeBorrowingLimit", where),
            max_borrowing_atoms=_record_int(item, "maxBorrowing", where)))
    names = [c.coin for c in coins]
    if len(set(names)) != len(names):
        raise ValueError("collateral: a coin is listed twice")
    if "USDT" not in names:
        raise ValueError("collateral: USDT must be a coin (USD prices go through its rate)")
    return CollateralTable(tuple(coins), usdt_rate, fee)

"""Contract specifications as integers: tick, lot and coin scales, limits, fees, risk tiers.

An `InstrumentSpec` is built from Bybit's decimal strings at the edge (`perpx.convert`) and
validates its own integer scale factors; at construction it gets the maths of its contract
type (`contract`, a `perpx.core.contract.ContractMaths`), which values any price x quantity.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from perpx.core.contract import (
    ContractMaths,
    InverseContract,
    LinearContract,
    MaintenanceEnvelope,
    OrderCostRates,
)
from perpx.core.keys import SymbolKeys, symbol_keys
from perpx.core.numbers import ATOMS_PER_COIN, RATE_ONE

# The settle coin whose linear perpetuals settle each session (next-mechanics §3.2: Bybit's
# USDC perpetuals). USDC futures would too (§7 N15), once the core has futures.
SESSION_SETTLED_COIN = "USDC"


class ContractType(IntEnum):
    """Bybit's contractType."""

    LINEAR_PERPETUAL = 1
    LINEAR_FUTURES = 2
    INVERSE_PERPETUAL = 3
    INVERSE_FUTURES = 4


class LiquidationFormula(IntEnum):
    """Which published isolated liquidation-price formula an instrument uses (spec §14 Q2).

    UTA is Bybit's current one (spec §1.4 item 1, the default); LEGACY the older USDT
    article's ``EP -/+ (IM - MM)/q -/+ extra/q`` (§1.4 item 2), kept so replays of older data
    and the older published examples match.
    """

    UTA = 1
    LEGACY = 2


class PriceLimitAction(IntEnum):
    """What happens to a limit order priced beyond the order price band."""

    CLAMP = 1  # Bybit perps: the price is moved to the band's edge (spec §10, §14 Q7)
    REJECT = 2


@dataclass(frozen=True, slots=True)
class RiskLimitTier:
    """One row of the risk-limit ladder; `limit_atoms` is the inclusive position-value cap."""

    tier_id: int
    limit_atoms: int
    mmr: int  # maintenance margin rate, 10**-8
    imr: int  # initial margin rate, 10**-8
    max_leverage: int  # 10**-8 (100x == 100 * RATE_ONE)
    mm_deduction_atoms: int


class LeverageTerms:
    """An instrument's constants at one leverage, found by an order in one place.

    The largest position value the leverage allows (`value_cap_atoms`) and the rates of an
    order's cost (`OrderCostRates`) for each sign, the side's sign times the contract's
    `value_sign` (`rates`), at the instrument's taker fee rate. Pure functions of the spec
    and the leverage, kept by the spec (`InstrumentSpec.terms_at`): an opening order reads
    them where nested dicts keyed by symbol, fee rate and leverage took a boxed int and a
    dict lookup per level (issue #14).
    """

    __slots__ = ("leverage", "minus", "plus", "value_cap_atoms")

    def __init__(self, spec: InstrumentSpec, leverage: int) -> None:
        self.leverage = leverage
        self.value_cap_atoms = spec.value_cap_atoms(leverage)
        self.plus = OrderCostRates(1, leverage, spec.taker_fee_rate)
        self.minus = OrderCostRates(-1, leverage, spec.taker_fee_rate)

    def rates(self, sign: int) -> OrderCostRates:
        """Return the cost rates of `sign` (side sign x value sign, +1 or -1)."""
        return self.plus if sign > 0 else self.minus


# The leverages a spec scans for before its dict (`InstrumentSpec.terms_at`): a symbol's
# accounts use a few leverages; a scan of a few native objects comparing an unboxed int beats
# a dict lookup, which boxes a leverage past 256 into a new int object first.
_SCANNED_LEVERAGES = 8


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """A tradable contract. Every amount is an integer in the units named by its suffix."""

    symbol: str
    contract_type: ContractType
    base_coin: str
    quote_coin: str
    settle_coin: str
    tick_size: str  # decimal string, kept for the edge
    qty_step: str  # decimal string, kept for the edge
    price_scale: int  # decimals shown for prices
    qty_scale: int  # decimals shown for quantities
    tick_atoms: int  # quote atoms per one base unit per tick
    lot_base_e8: int  # base-coin units of 10**-8 per lot
    atoms_per_tick_lot: int  # quote atoms of one tick on one lot
    min_price_ticks: int
    max_price_ticks: int
    min_order_qty_lots: int
    max_order_qty_lots: int
    max_mkt_order_qty_lots: int
    min_notional_atoms: int
    min_leverage: int  # 10**-8
    max_leverage: int  # 10**-8
    leverage_step: int  # 10**-8
    taker_fee_rate: int  # 10**-8
    maker_fee_rate: int  # 10**-8
    funding_interval_min: int
    upper_funding_rate: int  # 10**-8
    lower_funding_rate: int  # 10**-8
    price_limit_ratio_x: int  # 10**-8
    price_limit_ratio_y: int  # 10**-8
    risk_tiers: tuple[RiskLimitTier, ...]
    price_limit_action: PriceLimitAction = PriceLimitAction.CLAMP
    launch_time_ms: int = 0
    max_active_orders: int = 500
    max_conditional_orders: int = 10
    # Funding and mark price (spec §5, §6). Margin behind the impact notional, in 10**-8 of the
    # base coin: seed 001's 0.1 BTC / 1 ETH; the interest per 8 hours (0.06% - 0.03% a day /3).
    impact_margin_base_e8: int = 10_000_000
    interest_rate_8h: int = 10_000
    premium_clamp_rate: int = 50_000  # the ±0.05% clamp of I - P̄
    mark_basis_window_ms: int = 150_000  # 2.5 min moving average of the basis (§14 Q11)
    liq_price_formula: LiquidationFormula = LiquidationFormula.UTA  # spec §14 Q2
    # ADL on the insurance pool's P&L drawdown (next-mechanics §6.2; defaults §7 N12, the live
    # adlAlert sample): the pool balance above which condition 1 applies, the pnlRatio that
    # triggers it and the one above which it stops (rates in 10**-8).
    adl_trigger_threshold_atoms: int = 10_000 * 10**8
    insurance_pnl_ratio: int = -30_000_000
    adl_stop_ratio: int = -25_000_000
    # Dated futures (next-mechanics §2): the delivery time (0 for a perpetual), the delivery
    # fee rate (0.05% for USDT futures, §2.5), the window whose index samples average into
    # the delivery price (the last 30 minutes, §2.4), and the close-only window before
    # delivery (none by default, §7 N5's `closeOnlyBeforeDeliverySec`).
    delivery_time_ms: int = 0
    delivery_fee_rate: int = 0  # 10**-8
    delivery_window_ms: int = 1_800_000
    close_only_before_delivery_ms: int = 0
    display_name: str = ""  # Bybit's displayName: "BTC-PERP" for BTCPERP (§3.1), else ""
    # Derived at construction, never passed: the contract type's maths (`contract_maths_for`)
    # and its value rounded up, bound once so the hot paths call it without a lookup.
    contract: ContractMaths = field(init=False, repr=False, compare=False)
    notional_atoms: Callable[[int, int], int] = field(init=False, repr=False, compare=False)
    # Derived as well: a linear contract settled in USDC realises its uPnL into the wallet at
    # every funding time (next-mechanics §3.2, session settlement); inverse and USDC
    # contracts trade in one-way mode only (§1.1, §3.1). Fixed here so the hot paths branch
    # on a flag instead of looking anything up per fill.
    session_settled: bool = field(init=False, repr=False, compare=False)
    one_way_only: bool = field(init=False, repr=False, compare=False)
    # The ladder's maintenance lines as (mmr, deduction) int pairs (`.lines`) and their
    # envelopes, for the margin-call trigger (`ContractMaths.isolated_margin_call_trigger_
    # ticks`), which computes only the line the envelope puts highest instead of every tier.
    maintenance_envelope: MaintenanceEnvelope = field(init=False, repr=False, compare=False)
    # The symbol's canonical dict keys (`perpx.core.keys`), bound once: a hot path holding the
    # spec reads `spec.keys.position(idx)` in one attribute read, where `position_key(symbol,
    # idx)` first finds the symbol's keys by a str-keyed dict lookup (issue #14).
    keys: SymbolKeys = field(init=False, repr=False, compare=False)
    # Its `LeverageTerms` met so far (`terms_at`): the first few in a list, scanned, every one
    # by leverage. Caches of values derived from the spec alone, so shared by every engine
    # holding the spec.
    leverage_terms: list[LeverageTerms] = field(init=False, repr=False, compare=False)
    leverage_table: dict[int, LeverageTerms] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.tick_atoms * self.lot_base_e8 != self.atoms_per_tick_lot * 10**8:
            raise ValueError(
                f"{self.symbol}: tick_atoms * lot_base_e8 / 10**8 must equal atoms_per_tick_lot, "
                f"was {self.tick_atoms} * {self.lot_base_e8} vs {self.atoms_per_tick_lot}"
            )
        if self.atoms_per_tick_lot < 1:
            raise ValueError(f"{self.symbol}: one tick on one lot must be at least one atom")
        if not 0 < self.min_price_ticks <= self.max_price_ticks:
            raise ValueError(f"{self.symbol}: price range is empty")
        if not 0 < self.min_order_qty_lots <= self.max_order_qty_lots:
            raise ValueError(f"{self.symbol}: order quantity range is empty")
        if not self.risk_tiers:
            raise ValueError(f"{self.symbol}: needs at least one risk-limit tier")
        previous = 0
        for tier in self.risk_tiers:
            if tier.limit_atoms <= previous:
                raise ValueError(f"{self.symbol}: risk tiers must rise, tier {tier.tier_id}")
            previous = tier.limit_atoms
        if not RATE_ONE <= self.min_leverage <= self.max_leverage:
            raise ValueError(f"{self.symbol}: leverage range is empty")
        if not -RATE_ONE <= self.insurance_pnl_ratio <= self.adl_stop_ratio <= 0:
            raise ValueError(f"{self.symbol}: ADL ratios must satisfy "
                             "-1 <= insurancePnlRatio <= adlStopRatio <= 0")
        contract = contract_maths_for(self.symbol, self.contract_type, self.atoms_per_tick_lot,
                                      self.tick_atoms, self.lot_base_e8)
        # An inverse contract is margined, valued and settled in its base coin (§1.1): a
        # settle coin other than the base would book coin amounts in the wrong wallet.
        if contract.value_sign < 0 and self.settle_coin != self.base_coin:
            raise ValueError(f"{self.symbol}: an inverse contract settles in its base coin")
        if self.dated:
            if self.delivery_time_ms <= 0:
                raise ValueError(f"{self.symbol}: a dated future needs a deliveryTime")
            if not 0 <= self.delivery_fee_rate < RATE_ONE:
                raise ValueError(f"{self.symbol}: deliveryFeeRate must lie in [0, 1)")
            if self.delivery_window_ms <= 0 or self.close_only_before_delivery_ms < 0:
                raise ValueError(f"{self.symbol}: delivery windows must be positive")
        elif self.delivery_time_ms:
            raise ValueError(f"{self.symbol}: a perpetual has no deliveryTime")
        # A frozen dataclass sets its derived fields through object.__setattr__.
        object.__setattr__(self, "contract", contract)
        # `notional_atoms(price_ticks, qty_lots)`: the value in settle-coin atoms, rounded up
        # (the base of a requirement), for callers not yet asking `contract` directly.
        object.__setattr__(self, "notional_atoms", contract.value_ceil_atoms)
        session = (self.settle_coin == SESSION_SETTLED_COIN
                   and self.contract_type is ContractType.LINEAR_PERPETUAL)
        object.__setattr__(self, "session_settled", session)
        object.__setattr__(self, "one_way_only", session or self.contract.value_sign < 0)
        lines = tuple((tier.mmr, tier.mm_deduction_atoms) for tier in self.risk_tiers)
        object.__setattr__(self, "maintenance_envelope", MaintenanceEnvelope(lines))
        object.__setattr__(self, "keys", symbol_keys(self.symbol))
        object.__setattr__(self, "leverage_terms", [])
        object.__setattr__(self, "leverage_table", {})

    @property
    def dated(self) -> bool:
        """Tell whether this is a dated (expiry) future: delivered, never funded."""
        return self.contract_type in _DATED

    def value_cap_atoms(self, leverage: int) -> int:
        """Return the largest position value `leverage` allows: the last tier it fits."""
        cap = self.risk_tiers[0].limit_atoms
        for tier in self.risk_tiers:
            if tier.max_leverage >= leverage:
                cap = tier.limit_atoms
        return cap

    def terms_at(self, leverage: int) -> LeverageTerms:
        """Return (and keep) the `LeverageTerms` of a positive `leverage`."""
        for terms in self.leverage_terms:
            if terms.leverage == leverage:
                return terms
        found = self.leverage_table.get(leverage)
        if found is None:
            found = self.leverage_table[leverage] = LeverageTerms(self, leverage)
            if len(self.leverage_terms) < _SCANNED_LEVERAGES:
                self.leverage_terms.append(found)
        return found

    def tier_for_value(self, value_atoms: int) -> RiskLimitTier | None:
        """Return the smallest tier whose cap is at or above `value_atoms` (inclusive), if any."""
        for tier in self.risk_tiers:
            if value_atoms <= tier.limit_atoms:
                return tier
        return None


_DATED = (ContractType.LINEAR_FUTURES, ContractType.INVERSE_FUTURES)
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
# The futures month codes of inverse futures' names (next-mechanics §2.1: H Mar, M Jun, U Sep,
# Z Dec); Bybit lists quarterlies only, the other months are the exchange-standard letters.
_MONTH_CODES = "FGHJKMNQUVXZ"


def civil_date(ts_ms: int) -> tuple[int, int, int]:
    """Return the UTC (year, month, day) of a time in ms (the core reads no `datetime`).

    Howard Hinnant's days-to-civil algorithm on the proleptic Gregorian calendar, in
    integers: eras of 400 years (146,097 days) starting 0000-03-01.
    """
    days = ts_ms // 86_400_000 + 719_468  # days since 0000-03-01
    era = days // 146_097
    day_of_era = days - era * 146_097
    year_of_era = (day_of_era - day_of_era // 1_460 + day_of_era // 36_524
                   - day_of_era // 146_096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted_month = (5 * day_of_year + 2) // 153  # 0 = March
    day = day_of_year - (153 * shifted_month + 2) // 5 + 1
    month = shifted_month + 3 if shifted_month < 10 else shifted_month - 9
    year = year_of_era + era * 400 + (1 if month <= 2 else 0)
    return year, month, day


def dated_symbol(base_coin: str, quote_coin: str, settle_coin: str,
                 delivery_time_ms: int) -> str:
    """Return Bybit's API symbol of a dated future (next-mechanics §2.1).

    USDT futures are ``{BASE}USDT-{DDMMMYY}`` (BTCUSDT-27MAR26), USDC futures
    ``{BASE}-{DDMMMYY}`` (BTC-26DEC25); the date is the delivery day in UTC. Inverse futures
    (settled in their base coin) are ``{BASE}USD{M}{YY}`` (BTCUSDZ26): the month's futures
    code and the year, no day.
    """
    year, month, day = civil_date(delivery_time_ms)
    if settle_coin == base_coin:
        return f"{base_coin}{quote_coin}{_MONTH_CODES[month - 1]}{year % 100:02d}"
    suffix = f"{day:02d}{_MONTHS[month - 1]}{year % 100:02d}"
    if settle_coin == "USDC":
        return f"{base_coin}-{suffix}"
    return f"{base_coin}{quote_coin}-{suffix}"


def spec_record(spec: InstrumentSpec) -> dict[str, Any]:
    """Return `spec`'s constructor fields as plain data (ints, strings, lists).

    What a `ListInstrument` command and an engine snapshot carry; `spec_from_record` is
    its inverse.
    """
    record: dict[str, Any] = {}
    for item in dataclasses.fields(spec):
        if not item.init:
            continue
        value = getattr(spec, item.name)
        if item.name == "risk_tiers":
            value = [[t.tier_id, t.limit_atoms, t.mmr, t.imr, t.max_leverage,
                      t.mm_deduction_atoms] for t in value]
        elif isinstance(value, IntEnum):
            value = int(value)
        record[item.name] = value
    return record


_ENUM_FIELDS: dict[str, type[IntEnum]] = {
    "contract_type": ContractType,
    "price_limit_action": PriceLimitAction,
    "liq_price_formula": LiquidationFormula,
}


def spec_from_record(record: dict[str, Any]) -> InstrumentSpec:
    """Rebuild an `InstrumentSpec` from `spec_record`'s data; ValueError if it is malformed."""
    try:
        known = {item.name: item for item in dataclasses.fields(InstrumentSpec) if item.init}
        unknown = sorted(set(record) - set(known))
        if unknown:
            raise ValueError(f"unknown instrument fields {unknown}")
        values: dict[str, Any] = {}
        for name, value in record.items():
            if name == "risk_tiers":
                value = tuple(RiskLimitTier(*(int(x) for x in row)) for row in value)
            elif name in _ENUM_FIELDS:
                value = _ENUM_FIELDS[name](int(value))
            elif name in ("symbol", "base_coin", "quote_coin", "settle_coin", "tick_size",
                          "qty_step"):
                if not isinstance(value, str) or not value:
                    raise ValueError(f"{name} must be a non-empty string")
            elif name == "display_name":  # may be empty (Bybit's "" for most symbols)
                if not isinstance(value, str):
                    raise ValueError(f"{name} must be a string")
            elif type(value) is not int:
                raise ValueError(f"{name} must be an integer")
            values[name] = value
        return InstrumentSpec(**values)
    except (TypeError, KeyError) as bad:
        raise ValueError(f"malformed instrument record: {bad}") from bad


class UnsupportedContractMaths(ValueError):
    """A contract type, or a tick and lot of one, that the core has no exact maths for."""


def contract_maths_for(symbol: str, contract_type: ContractType, atoms_per_tick_lot: int,
                       tick_atoms: int = 0, lot_base_e8: int = 0) -> ContractMaths:
    """Return the maths of `contract_type` for an instrument of that tick and lot.

    Linear perpetuals and linear futures value ``P * q * a`` (`LinearContract`); futures
    differ in delivery, not in their maths. Inverse perpetuals and inverse futures value
    ``q * k / P`` in the base coin (`InverseContract`), where ``k = lot_base_e8 * 10**8 /
    tick_atoms``: the lot in quote units over the tick in quote units, in settle-coin
    atoms. It must be a whole number (BTCUSD: lot 1 USD, tick 0.1 USD, k = 10**9), else
    the spec is refused.
    """
    if contract_type in (ContractType.LINEAR_PERPETUAL, ContractType.LINEAR_FUTURES):
        return LinearContract(atoms_per_tick_lot)
    if contract_type in (ContractType.INVERSE_PERPETUAL, ContractType.INVERSE_FUTURES):
        if tick_atoms <= 0 or lot_base_e8 <= 0 or lot_base_e8 * ATOMS_PER_COIN % tick_atoms:
            raise UnsupportedContractMaths(
                f"{symbol}: an inverse lot over a tick ({lot_base_e8} / {tick_atoms} x 10**8) "
                "must be a whole number of settle-coin atoms")
        return InverseContract(lot_base_e8 * ATOMS_PER_COIN // tick_atoms)
    raise UnsupportedContractMaths(
        f"{symbol}: no contract maths for {contract_type.name} yet")

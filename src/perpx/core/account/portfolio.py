"""Portfolio margin (PM): the scenario maths of next-mechanics §5, pure and in integers.

Under PM an account's margin is not the sum of per-position requirements: its positions are
grouped into one *risk unit* per underlying (base coin: BTCUSDT, BTCPERP, BTCUSD and the BTC
dated futures all sit in the BTC unit, §5.2), each unit is revalued at every point of a
price-move grid, and the unit's maintenance margin is its worst scenario loss plus
contingency add-ons (§5.3, §5.4). This module is only that calculation. It reads no account,
order book or clock; the caller (the account's `PortfolioMargin` model, `perpx calc pm`, the
`/v5/asset/portfolio-margin` wire shape) hands it one `PmLeg` per instrument and gets back
`PmUnitResult` / `PmAccountResult` objects carrying every figure the API shows.

Units (STYLE §3): prices in ticks of each leg's instrument, quantities in lots, shocks and
rates in 10**-8 (``RATE_ONE``), and every result in **USD atoms** (10**-8 USD): a unit holds
contracts settled in USDT, USDC and the base coin, so its scenarios are summed in USD (§5.3,
"all P&L is converted to USD at px_usd(settle coin)").

The rules, per unit ``u`` and grid shock ``s`` (``-range ... +range``):

- scenario price ``X = B * (1 + s)``, ``B`` the leg's index (default) or mark (§7 N13);
- a leg's P&L in its settle coin is ``side * value_sign * (V(X) - V(B))``, ``V`` the
  contract's own value (`ContractMaths.value_fraction_atoms`, exact at a fractional price):
  linear ``side * q * B * s``, inverse ``side * C * (1/B - 1/X)``;
- converted to USD at the settle coin's USD price; a settle coin that *is* the unit's base
  coin (an inverse contract) is itself revalued at ``X``, which makes an inverse leg's P&L
  exactly ``side * C * s`` USD (§5.3, example P5);
- ``MaxLoss_u = max(0, -min_s sum_i PnL_i(s))``; ``maxLossPriceMove`` the (first) ``s``
  attaining the minimum;
- ``futureContingency = riskFactor * sum_i |notional_i at the index|`` in USD (§5.4: ``sum
  |q_i| * riskFactor * IP``; for an inverse leg the notional is ``C``);
- delta-spread and USDT-USDC contingencies: hooks, a rate times the notional that offsets
  between instruments (resp. between settle coins), 0 by default (§7 N14);
- ``MM_u = MaxLoss_u + contingencies``, from positions only;
- ``IM_u = IMfactor * max(MM(pos), MM(pos + all buy orders), MM(pos + all sell orders))``
  (Gate's rule, §5.4).

Rounding, in the exchange's favour (DESIGN.md, Numbers): each scenario P&L is exact as a
fraction and rounded toward the loss (floor); a leg's shown P&L is its own floor, while the
unit's total is the floor of the exact sum, so a perfect hedge nets to exactly 0 rather
than to a rounding residue (the total may thus differ from the sum of the shown legs by
under one atom per leg). Each contingency and the IM round up (ceil). Every default that
Bybit does not publish is labelled "not Bybit" where it is defined (§7 N14).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import IntEnum
from math import gcd
from typing import Final

from perpx.core.errors import PerpxBug, require_positive
from perpx.core.instruments import InstrumentSpec
from perpx.core.numbers import ATOMS_PER_COIN, RATE_ONE, div_ceil, div_floor

# --- parameters ---------------------------------------------------------------------------------


class ShockBase(IntEnum):
    """The price the grid shocks (next-mechanics §7 N13, ``pmShockBase``).

    INDEX, the default, is what Bybit's API sample shows (the BTCUSDT P&L at -10% implies
    the index, not the mark): with one shared base a perp and a future on the same underlying
    offset exactly. MARK shocks each contract's own mark (Dederi's method), so a perp-future
    hedge carries its basis (example P4: MaxLoss 119 at +10%).
    """

    INDEX = 1
    MARK = 2


class PmRange:
    """A symmetric price-move grid: ``-max_move, -max_move + step, ..., +max_move`` (10**-8).

    ``max_move`` must be a whole number of steps and below 100% (a price shocked to zero or
    below has no inverse value).
    """

    __slots__ = ("max_move", "step")

    def __init__(self, max_move: int, step: int) -> None:
        require_positive("PmRange", "step", step)
        if not 0 < max_move < RATE_ONE or max_move % step:
            raise ValueError(f"PmRange: max move {max_move} must lie in (0, {RATE_ONE}) and be "
                             f"a whole number of steps of {step}")
        self.max_move = max_move
        self.step = step

    def __repr__(self) -> str:
        return f"PmRange(max_move={self.max_move}, step={self.step})"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, PmRange) and self.max_move == other.max_move
                and self.step == other.step)

    def __hash__(self) -> int:
        return hash((self.max_move, self.step))

    def shocks(self) -> tuple[int, ...]:
        """Return the grid's shocks, ascending, 0 included (10**-8)."""
        count = self.max_move // self.step
        return tuple(k * self.step for k in range(-count, count + 1))


# BTC and ETH: ±10% in 2% steps, 11 points. Bybit: ±10% since 2025-01-10 (B-PM-LEARN) and the
# API sample's priceScale -0.1 ... 0.1 (next-mechanics §5.3).
BTC_ETH_RANGE: Final = PmRange(10_000_000, 2_000_000)
# Other units: ±15% in 3% steps. Not Bybit (unpublished): Coincall/Dederi's grid, §7 N14.
OTHER_RANGE: Final = PmRange(15_000_000, 3_000_000)
# Perpetual/futures contingency rate: 0.006. Not Bybit (its riskFactor is unpublished;
# the API sample implies 0.0000827): Dederi's published value, §5.4, §7 N14.
DEFAULT_RISK_FACTOR: Final = 600_000
# IM = 1.2 x MM: Bybit's API sample (assetIM / assetMM = 1.2000), §5.4, §7 N14.
DEFAULT_IM_FACTOR: Final = 120_000_000


class PmParams:
    """One venue's PM parameters (next-mechanics §5.3, §5.4, §7 N13, N14). Rates in 10**-8.

    - `ranges`: the price-move grid per base coin; `default_range` for any other coin;
    - `risk_factor`: the futures contingency rate (``futureContingency``);
    - `im_factor`: ``IM = MM x im_factor``;
    - `shock_base`: index or mark (§7 N13);
    - `delta_spread_rate`, `usdt_usdc_rate`: hooks for ``futureDeltaContingency`` and
      ``usdtUsdcContingency``, whose formulas Bybit does not publish. Not Bybit: 0 by
      default; when set, the rate applies to the USD notional that offsets between
      instruments (resp. settle coins) of the unit (`unit_margin`).
    """

    __slots__ = (
        "default_range",
        "delta_spread_rate",
        "im_factor",
        "ranges",
        "risk_factor",
        "shock_base",
        "usdt_usdc_rate",
    )

    def __init__(self, ranges: dict[str, PmRange] | None = None,
                 default_range: PmRange = OTHER_RANGE,
                 risk_factor: int = DEFAULT_RISK_FACTOR,
                 im_factor: int = DEFAULT_IM_FACTOR,
                 shock_base: ShockBase = ShockBase.INDEX,
                 delta_spread_rate: int = 0,
                 usdt_usdc_rate: int = 0) -> None:
        if risk_factor < 0 or delta_spread_rate < 0 or usdt_usdc_rate < 0:
            raise ValueError("PmParams: contingency rates cannot be negative")
        if im_factor < RATE_ONE:
            raise ValueError("PmParams: the IM factor must be at least 1 (IM >= MM)")
        self.ranges: dict[str, PmRange] = (
            {"BTC": BTC_ETH_RANGE, "ETH": BTC_ETH_RANGE} if ranges is None else dict(ranges))
        self.default_range = default_range
        self.risk_factor = risk_factor
        self.im_factor = im_factor
        self.shock_base = shock_base
        self.delta_spread_rate = delta_spread_rate
        self.usdt_usdc_rate = usdt_usdc_rate

    def __repr__(self) -> str:
        return (f"PmParams(ranges={self.ranges!r}, default_range={self.default_range!r}, "
                f"risk_factor={self.risk_factor}, im_factor={self.im_factor}, "
                f"shock_base={self.shock_base.name}, delta_spread_rate={self.delta_spread_rate}, "
                f"usdt_usdc_rate={self.usdt_usdc_rate})")

    def copy(self) -> PmParams:
        """Return an independent copy (the ranges dict is not shared)."""
        return PmParams(dict(self.ranges), self.default_range, self.risk_factor,
                        self.im_factor, self.shock_base, self.delta_spread_rate,
                        self.usdt_usdc_rate)

    def range_for(self, base_coin: str) -> PmRange:
        """Return the price-move range of a unit."""
        found = self.ranges.get(base_coin)
        return self.default_range if found is None else found

    def grid(self, base_coin: str) -> tuple[int, ...]:
        """Return a unit's shocks, ascending, in 10**-8 (BTC: -10%, -8%, ..., +10%)."""
        return self.range_for(base_coin).shocks()


# --- the parameters as plain data (the `SetVenueParams` command's record, issue #17) ------

_PM_KEYS: Final = frozenset({"ranges", "defaultRange", "riskFactor", "imFactor", "shockBase",
                             "deltaSpreadRate", "usdtUsdcRate"})


def pm_params_record(params: PmParams) -> dict[str, object]:
    """Return the parameters as plain data: ranges as [coin, maxMove, step], base by name."""
    return {
        "ranges": [[coin, r.max_move, r.step]
                   for coin, r in sorted(params.ranges.items())],
        "defaultRange": [params.default_range.max_move, params.default_range.step],
        "riskFactor": params.risk_factor,
        "imFactor": params.im_factor,
        "shockBase": params.shock_base.name,
        "deltaSpreadRate": params.delta_spread_rate,
        "usdtUsdcRate": params.usdt_usdc_rate,
    }


def _range_from(value: object, where: str) -> PmRange:
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise ValueError(f"{where}: a range is [maxMove, step] in integers of 10**-8")
    if value[1] <= 0:
        raise ValueError(f"{where}: the step must be positive")
    return PmRange(value[0], value[1])  # ValueError if not a whole grid below 100%


def _rate(record: dict[str, object], key: str) -> int:
    value = record[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"portfolio margin: {key} must be an integer, got {value!r}")
    return value


def pm_params_from_record(record: object) -> PmParams:
    """Rebuild `pm_params_record`'s data; ValueError if malformed (every key, no other)."""
    if not isinstance(record, dict) or set(record) != _PM_KEYS:
        raise ValueError(f"portfolio margin: expected exactly {', '.join(sorted(_PM_KEYS))}")
    items = record["ranges"]
    if not isinstance(items, list):
        raise ValueError("portfolio margin: ranges must be a list of [coin, maxMove, step]")
    ranges: dict[str, PmRange] = {}
    for item in items:
        if not isinstance(item, (list, tuple)) or len(item) != 3 or not isinstance(item[0], str):
            raise ValueError("portfolio margin: a range is [coin, maxMove, step]")
        if item[0] in ranges or not item[0]:
            raise ValueError(f"portfolio margin: range of {item[0]!r} is empty or repeated")
        ranges[item[0]] = _range_from(item[1:], f"portfolio margin range {item[0]}")
    base = record["shockBase"]
    if base not in ("INDEX", "MARK"):
        raise ValueError(f"portfolio margin: shockBase must be INDEX or MARK, got {base!r}")
    return PmParams(ranges, _range_from(record["defaultRange"], "portfolio margin default"),
                    _rate(record, "riskFactor"), _rate(record, "imFactor"),
                    ShockBase[str(base)], _rate(record, "deltaSpreadRate"),
                    _rate(record, "usdtUsdcRate"))


# --- inputs -------------------------------------------------------------------------------------


class PmLeg:
    """One instrument of an account under PM: its position and its open orders' quantities.

    - `position_lots`: the signed net position (long minus short in hedge mode), lots;
    - `buy_order_lots`, `sell_order_lots`: the open quantity of every buy (sell) order on the
      instrument, lots, >= 0 (they enter IM only, §5.4);
    - `index_ticks`, `mark_ticks`: the instrument's index and mark, in its own ticks (the
      shock base is one of them, `PmParams.shock_base`; the contingency uses the index);
    - `settle_usd_e8`: the USD price of the settle coin, 10**-8 USD per coin (USDT, USDC:
      about 10**8, §4.1). Not used for a leg settled in the unit's base coin (inverse), whose
      coin is revalued at the scenario price itself (§5.3, P5).
    """

    __slots__ = (
        "buy_order_lots",
        "index_ticks",
        "mark_ticks",
        "position_lots",
        "sell_order_lots",
        "settle_usd_e8",
        "spec",
    )

    def __init__(self, spec: InstrumentSpec, position_lots: int, index_ticks: int,
                 settle_usd_e8: int, mark_ticks: int = 0, buy_order_lots: int = 0,
                 sell_order_lots: int = 0) -> None:
        require_positive("PmLeg", "index_ticks", index_ticks)
        if buy_order_lots < 0 or sell_order_lots < 0:
            raise PerpxBug("PmLeg: open order quantities cannot be negative")
        if spec.settle_coin != spec.base_coin:
            require_positive("PmLeg", "settle_usd_e8", settle_usd_e8)
        self.spec = spec
        self.position_lots = position_lots
        self.buy_order_lots = buy_order_lots
        self.sell_order_lots = sell_order_lots
        self.index_ticks = index_ticks
        self.mark_ticks = mark_ticks if mark_ticks > 0 else index_ticks
        self.settle_usd_e8 = settle_usd_e8

    def __repr__(self) -> str:
        return (f"PmLeg({self.spec.symbol}, position_lots={self.position_lots}, "
                f"buy_order_lots={self.buy_order_lots}, sell_order_lots={self.sell_order_lots}, "
                f"index_ticks={self.index_ticks}, mark_ticks={self.mark_ticks}, "
                f"settle_usd_e8={self.settle_usd_e8})")

    def base_ticks(self, shock_base: ShockBase) -> int:
        """Return the price the grid shocks for this leg (§7 N13)."""
        return self.mark_ticks if shock_base is ShockBase.MARK else self.index_ticks


# --- results ------------------------------------------------------------------------------------


class PmLegResult:
    """One leg's scenario P&L, as ``perpPositionPnlRanges`` shows it (USD atoms, floored)."""

    __slots__ = ("leg", "pnls")

    def __init__(self, leg: PmLeg, pnls: tuple[int, ...]) -> None:
        self.leg = leg
        self.pnls = pnls

    def __repr__(self) -> str:
        return f"PmLegResult({self.leg.spec.symbol}, pnls={self.pnls})"


class PmUnitResult:
    """One risk unit's PM figures (next-mechanics §5.3-§5.6), every amount in USD atoms.

    - `shocks`: the grid (10**-8); `pnls`: the unit's total P&L at each (positions only,
      floor of the exact sum); `legs`: each leg's own P&L row;
    - `max_loss`, `max_loss_price_move`: ``MaxLoss`` and the shock attaining it;
    - `future_contingency`, `delta_spread_contingency`, `usdt_usdc_contingency`, and their
      sum `contingency` (``contingencyComponents``);
    - `mm` (``assetMM``, positions only) and `im` (``assetIM``);
    - `mm_with_buys`, `mm_with_sells`: MM of the positions plus every open buy (sell) order,
      the other two terms of the IM (§5.4), and the trial MM an order check compares.
    """

    __slots__ = (
        "base_coin",
        "contingency",
        "delta_spread_contingency",
        "future_contingency",
        "im",
        "legs",
        "max_loss",
        "max_loss_price_move",
        "mm",
        "mm_with_buys",
        "mm_with_sells",
        "pnls",
        "shocks",
        "usdt_usdc_contingency",
    )

    def __init__(self, base_coin: str, shocks: tuple[int, ...], pnls: tuple[int, ...],
                 legs: tuple[PmLegResult, ...], max_loss: int, max_loss_price_move: int,
                 future_contingency: int, delta_spread_contingency: int,
                 usdt_usdc_contingency: int, mm: int, im: int, mm_with_buys: int,
                 mm_with_sells: int) -> None:
        self.base_coin = base_coin
        self.shocks = shocks
        self.pnls = pnls
        self.legs = legs
        self.max_loss = max_loss
        self.max_loss_price_move = max_loss_price_move
        self.future_contingency = future_contingency
        self.delta_spread_contingency = delta_spread_contingency
        self.usdt_usdc_contingency = usdt_usdc_contingency
        self.contingency = future_contingency + delta_spread_contingency + usdt_usdc_contingency
        self.mm = mm
        self.im = im
        self.mm_with_buys = mm_with_buys
        self.mm_with_sells = mm_with_sells

    def __repr__(self) -> str:
        return (f"PmUnitResult({self.base_coin}, max_loss={self.max_loss}, "
                f"contingency={self.contingency}, mm={self.mm}, im={self.im})")


class PmAccountResult:
    """An account's PM figures: its units (sorted by base coin) and their IM and MM sums.

    `im` and `mm` are the derivatives part of the account's IM and MM in USD atoms; margin
    on borrowed assets is added by the caller as in cross mode (§5.2).
    """

    __slots__ = ("im", "mm", "units")

    def __init__(self, units: tuple[PmUnitResult, ...]) -> None:
        self.units = units
        self.im = sum(unit.im for unit in units)
        self.mm = sum(unit.mm for unit in units)

    def __repr__(self) -> str:
        return f"PmAccountResult(units={len(self.units)}, im={self.im}, mm={self.mm})"

    def unit(self, base_coin: str) -> PmUnitResult | None:
        """Return the unit of a base coin, if the account has one."""
        for unit in self.units:
            if unit.base_coin == base_coin:
                return unit
        return None


# --- exact fractions (numerator, denominator > 0), kept small by their gcd ---------------------


def _reduced(numerator: int, denominator: int) -> tuple[int, int]:
    common = gcd(numerator, denominator)
    if common > 1:
        return numerator // common, denominator // common
    return numerator, denominator


def _add(a: tuple[int, int], b: tuple[int, int]) -> tuple[int, int]:
    return _reduced(a[0] * b[1] + b[0] * a[1], a[1] * b[1])


# --- the calculation ----------------------------------------------------------------------------


def _coin_usd(leg: PmLeg, price_numerator: int, price_denominator: int) -> tuple[int, int]:
    """Return the USD atoms of one settle-coin atom when the leg's price is ``N/D`` ticks.

    A settle coin that is the unit's own base coin (inverse contracts) is worth the price
    itself: ``N/D`` ticks of `tick_atoms` USD atoms per coin, over 10**8 atoms per coin (the
    quote coin of an inverse contract is USD). Any other settle coin is worth its given
    USD price, whatever the scenario: its risk is the collateral haircut's (§7 N19).
    """
    spec = leg.spec
    if spec.settle_coin == spec.base_coin:
        return price_numerator * spec.tick_atoms, price_denominator * ATOMS_PER_COIN
    return leg.settle_usd_e8, ATOMS_PER_COIN


def _scenario_pnl(leg: PmLeg, lots: int, base_ticks: int, shock: int) -> tuple[int, int]:
    """Return the exact USD P&L of `lots` (signed) of `leg` when `base_ticks` moves by `shock`.

    ``side * value_sign * (V(X) - V(B))`` in the settle coin, ``X = B (R + s) / R``, valued in
    USD at ``X`` (`_coin_usd`). The values come from the contract's own maths.
    """
    if lots == 0:
        return 0, 1
    contract = leg.spec.contract
    quantity = abs(lots)
    x_numerator, x_denominator = base_ticks * (RATE_ONE + shock), RATE_ONE
    shocked_n, shocked_d = contract.value_fraction_atoms(quantity, x_numerator, x_denominator)
    base_n, base_d = contract.value_fraction_atoms(quantity, base_ticks, 1)
    sign = contract.value_sign * (1 if lots > 0 else -1)
    coin_n = sign * (shocked_n * base_d - base_n * shocked_d)
    usd_n, usd_d = _coin_usd(leg, x_numerator, x_denominator)
    return _reduced(coin_n * usd_n, shocked_d * base_d * usd_d)


def _notional_usd(leg: PmLeg, lots: int) -> tuple[int, int]:
    """Return the exact USD notional of ``|lots|`` at the index (inverse: ``C``), >= 0."""
    if lots == 0:
        return 0, 1
    value_n, value_d = leg.spec.contract.value_fraction_atoms(abs(lots), leg.index_ticks, 1)
    usd_n, usd_d = _coin_usd(leg, leg.index_ticks, 1)
    return _reduced(value_n * usd_n, value_d * usd_d)


def _offset(deltas: Iterable[tuple[int, int]]) -> tuple[int, int]:
    """Return the notional that offsets among signed deltas: ``(sum |d| - |sum d|) / 2``.

    0 when every delta has the same sign; the hedged notional when they differ.
    """
    gross: tuple[int, int] = (0, 1)
    net: tuple[int, int] = (0, 1)
    for delta in deltas:
        gross = _add(gross, (abs(delta[0]), delta[1]))
        net = _add(net, delta)
    return _reduced(gross[0] * net[1] - abs(net[0]) * gross[1], 2 * gross[1] * net[1])


def _rate_ceil(fraction: tuple[int, int], rate: int) -> int:
    """Return ``ceil(fraction * rate / R)``: an add-on charged, rounded up."""
    return div_ceil(fraction[0] * rate, fraction[1] * RATE_ONE)


class _Book:
    """The MM of one set of net quantities (positions, or positions plus one side's orders)."""

    __slots__ = (
        "delta_spread_contingency",
        "future_contingency",
        "leg_pnls",
        "max_loss",
        "max_loss_price_move",
        "mm",
        "pnls",
        "usdt_usdc_contingency",
    )

    def __init__(self, legs: Sequence[PmLeg], lots: Sequence[int], shocks: tuple[int, ...],
                 params: PmParams) -> None:
        leg_pnls: list[tuple[int, ...]] = []
        totals: list[tuple[int, int]] = [(0, 1)] * len(shocks)
        for leg, leg_lots in zip(legs, lots, strict=True):
            base = leg.base_ticks(params.shock_base)
            row: list[int] = []
            for k, shock in enumerate(shocks):
                exact = _scenario_pnl(leg, leg_lots, base, shock)
                totals[k] = _add(totals[k], exact)
                row.append(div_floor(exact[0], exact[1]))  # toward the loss
            leg_pnls.append(tuple(row))
        self.leg_pnls = leg_pnls
        self.pnls = tuple(div_floor(n, d) for n, d in totals)
        worst = 0
        for k in range(len(shocks)):
            if self.pnls[k] < self.pnls[worst]:
                worst = k
        self.max_loss = max(0, -self.pnls[worst])
        self.max_loss_price_move = shocks[worst]
        # Contingencies on the notional at the index (§5.4).
        gross: tuple[int, int] = (0, 1)
        deltas: list[tuple[int, int]] = []
        coin_deltas: dict[str, tuple[int, int]] = {}
        for leg, leg_lots in zip(legs, lots, strict=True):
            notional = _notional_usd(leg, leg_lots)
            gross = _add(gross, notional)
            delta = notional if leg_lots > 0 else (-notional[0], notional[1])
            deltas.append(delta)
            coin = leg.spec.settle_coin
            coin_deltas[coin] = _add(coin_deltas.get(coin, (0, 1)), delta)
        self.future_contingency = _rate_ceil(gross, params.risk_factor)
        self.delta_spread_contingency = (
            _rate_ceil(_offset(deltas), params.delta_spread_rate)
            if params.delta_spread_rate else 0)
        self.usdt_usdc_contingency = (
            _rate_ceil(_offset(coin_deltas.values()), params.usdt_usdc_rate)
            if params.usdt_usdc_rate else 0)
        self.mm = (self.max_loss + self.future_contingency + self.delta_spread_contingency
                   + self.usdt_usdc_contingency)


def unit_margin(base_coin: str, legs: Sequence[PmLeg], params: PmParams) -> PmUnitResult:
    """Return the PM figures of one risk unit (next-mechanics §5.3, §5.4).

    `legs` are the unit's instruments (each `spec.base_coin` must be `base_coin`), at most one
    leg per symbol; their order is kept in the result. MM is that of the positions; IM is
    ``ceil(IMfactor x max(MM(pos), MM(pos + buys), MM(pos + sells)) / R)``.
    """
    seen: set[str] = set()
    for leg in legs:
        if leg.spec.base_coin != base_coin:
            raise PerpxBug(f"unit_margin: {leg.spec.symbol} is not in the {base_coin} unit")
        if leg.spec.symbol in seen:
            raise PerpxBug(f"unit_margin: {leg.spec.symbol} given twice")
        seen.add(leg.spec.symbol)
    shocks = params.grid(base_coin)
    positions = _Book(legs, [leg.position_lots for leg in legs], shocks, params)
    mm_buys = positions.mm
    if any(leg.buy_order_lots for leg in legs):
        mm_buys = _Book(legs, [leg.position_lots + leg.buy_order_lots for leg in legs],
                        shocks, params).mm
    mm_sells = positions.mm
    if any(leg.sell_order_lots for leg in legs):
        mm_sells = _Book(legs, [leg.position_lots - leg.sell_order_lots for leg in legs],
                         shocks, params).mm
    im = div_ceil(max(positions.mm, mm_buys, mm_sells) * params.im_factor, RATE_ONE)
    leg_results = tuple(PmLegResult(leg, row)
                        for leg, row in zip(legs, positions.leg_pnls, strict=True))
    return PmUnitResult(base_coin, shocks, positions.pnls, leg_results, positions.max_loss,
                        positions.max_loss_price_move, positions.future_contingency,
                        positions.delta_spread_contingency, positions.usdt_usdc_contingency,
                        positions.mm, im, mm_buys, mm_sells)


def portfolio_margin(legs: Iterable[PmLeg], params: PmParams) -> PmAccountResult:
    """Return an account's PM figures: its legs grouped into units by base coin (§5.2).

    Units come out sorted by base coin, each unit's legs in the order given. Recomputing a
    single unit after a change is `unit_margin` on that unit's legs.
    """
    grouped: dict[str, list[PmLeg]] = {}
    for leg in legs:
        grouped.setdefault(leg.spec.base_coin, []).append(leg)
    return PmAccountResult(tuple(unit_margin(coin, grouped[coin], params)
                                 for coin in sorted(grouped)))

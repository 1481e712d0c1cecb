"""The trader's calculator: decimal strings in, the exchange's own figures out.

Every figure comes from `perpx.core.calc`, `perpx.core.liqprice` and the instrument's contract
maths (`spec.contract`, linear or inverse) on the instrument's integer units, so `perpx calc`
shows exactly what the engine would hold or charge. Money is in the settle coin: USDT for
the linear perpetuals, the base coin for the inverse ones (BTCUSD: quantities are USD
contracts, margins and P&L BTC). Inputs are
converted by `perpx.convert`; an off-grid price or quantity is refused, as the exchange refuses
it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from perpx.convert import (
    format_atoms,
    format_lots,
    format_rate,
    format_scaled,
    format_ticks,
    to_atoms,
    to_lots,
    to_rate,
    to_ticks,
)
from perpx.core import calc, liqprice
from perpx.core.account.accounts import DEFAULT_LEVERAGE, Account
from perpx.core.account.collateral import (
    PX_ONE,
    CollateralCoin,
    CollateralTable,
    CollateralTier,
    default_collateral,
)
from perpx.core.account.margin_model import CROSS
from perpx.core.account.portfolio import PmLeg, PmParams, ShockBase, portfolio_margin
from perpx.core.account.positions import Position, apply_fill
from perpx.core.contract import UNREACHABLE_PRICE_TICKS, settlement_fee_atoms
from perpx.core.engine import Engine
from perpx.core.enums import Side
from perpx.core.instruments import InstrumentSpec, LiquidationFormula
from perpx.core.numbers import RATE_ONE, div_floor
from perpx.core.prices.funding import impact_qty_lots
from perpx.instruments import CONTRACT_TYPE_WORDS, liquidation_formula

Figures = dict[str, str]


@dataclass(frozen=True)
class Inputs:
    """One calculation's inputs as the exchange's integers."""

    spec: InstrumentSpec
    side: Side
    leverage: int
    taker_fee_rate: int


def inputs(spec: InstrumentSpec, side: str, leverage: str, taker_fee: str | None,
           formula: str | None = None) -> Inputs:
    """Parse the inputs every calculation shares.

    `formula` ("uta" or "legacy") overrides the instrument's isolated liquidation-price
    formula (spec §14 Q2); without it the instrument's own applies.
    """
    if formula is not None:
        spec = dataclasses.replace(spec, liq_price_formula=liquidation_formula(formula))
    parsed = Side.BUY if side.lower() in ("buy", "long") else Side.SELL
    if side.lower() not in ("buy", "long", "sell", "short"):
        raise ValueError(f"side must be buy/long or sell/short, not {side!r}")
    fee = spec.taker_fee_rate if taker_fee is None else to_rate(taker_fee)
    return Inputs(spec, parsed, to_rate(leverage), fee)


def order_cost(given: Inputs, price: str, qty: str) -> Figures:
    """Return the cost of an order: IM, fee to open, fee to close and their sum (spec §1.6)."""
    spec = given.spec
    price_ticks, qty_lots = to_ticks(spec, price), to_lots(spec, qty)
    contract = spec.contract
    value = contract.value_ceil_atoms(price_ticks, qty_lots)
    im = contract.initial_margin_atoms(value, given.leverage)
    open_fee = contract.fill_fee_atoms(price_ticks, qty_lots, given.taker_fee_rate)
    close_fee = contract.fee_to_close_atoms(given.side, value, given.leverage,
                                            given.taker_fee_rate)
    return {"order_value": format_atoms(value), "initial_margin": format_atoms(im),
            "fee_to_open": format_atoms(open_fee), "fee_to_close": format_atoms(close_fee),
            "order_cost": format_atoms(im + open_fee + close_fee)}


def position(given: Inputs, entry: str, qty: str, mark: str | None = None,
             extra_margin: str = "0") -> Figures:
    """Return an isolated position's margin, liquidation and bankruptcy prices, uPnL and ROI."""
    spec, side = given.spec, given.side
    entry_ticks, qty_lots = to_ticks(spec, entry), to_lots(spec, qty)
    mark_ticks = entry_ticks if mark is None else to_ticks(spec, mark)
    extra = to_atoms(extra_margin)
    contract = spec.contract
    entry_value = contract.entry_value_atoms(entry_ticks, qty_lots)
    im = contract.initial_margin_atoms(entry_value, given.leverage)
    ftc = contract.fee_to_close_atoms(side, entry_value, given.leverage, given.taker_fee_rate)
    mark_value = contract.value_ceil_atoms(mark_ticks, qty_lots)
    tier = calc.tier_for_position(spec, mark_value)
    mm = calc.maintenance_margin_atoms(spec, mark_value, ftc)
    liq_n, liq_d = liqprice.isolated_liquidation_price_selected_fraction(
        spec, side, entry_value, qty_lots, given.leverage, extra, tier.mmr,
        tier.mm_deduction_atoms, given.taker_fee_rate)
    liq = liqprice.round_liquidation_price(side, liq_n, liq_d)
    bust = liqprice.isolated_bankruptcy_price_ticks(spec, side, entry_value, qty_lots,
                                                    im + ftc + extra, ftc)
    upnl = calc.unrealized_pnl_atoms(spec, side, entry_value, qty_lots, mark_ticks)
    legacy = spec.liq_price_formula is LiquidationFormula.LEGACY
    figures = {
        "position_value": format_atoms(mark_value), "initial_margin": format_atoms(im),
        "fee_to_close": format_atoms(ftc), "position_margin": format_atoms(im + ftc + extra),
        "position_im": format_atoms(calc.initial_margin_atoms(mark_value, given.leverage) + ftc),
        "maintenance_margin": format_atoms(mm), "risk_tier": str(tier.tier_id),
        "mmr": format_rate(tier.mmr), "mm_deduction": format_atoms(tier.mm_deduction_atoms),
        "liq_price_formula": "legacy" if legacy else "uta",
    }
    if legacy:
        # The older article's MM, at entry and without the fee to close (spec §1.4 item 2).
        figures["legacy_maintenance_margin"] = format_atoms(
            calc.maintenance_margin_at_rate_atoms(entry_value, tier.mmr, tier.mm_deduction_atoms,
                                                  0))
    return figures | {
        "liquidation_price": _shown_price(spec, liq),
        "bankruptcy_price": _shown_price(spec, bust),
        "unrealized_pnl": format_atoms(upnl),
        "roi": format_rate(calc.roi_rate(upnl, im + ftc + extra)),
    }


def _shown_price(spec: InstrumentSpec, price_ticks: int) -> str:
    """Show a price as the position endpoint does: "" for none (at or below zero).

    An inverse short at 1x has no bankruptcy or liquidation price either (next-mechanics
    §1.5, `UNREACHABLE_PRICE_TICKS`).
    """
    if 0 < price_ticks < UNREACHABLE_PRICE_TICKS:
        return format_ticks(spec, price_ticks)
    return ""


def instrument(spec: InstrumentSpec, price: str | None = None) -> Figures:
    """Return an instrument's risk figures: formula, tier 1, and the impact margin notional.

    Bybit publishes the impact margin in the base coin (seed 001: 0.1 BTC, 1 ETH of initial
    margin); the impact margin notional is what that margin buys at the tier-1 initial margin
    rate, the depth the funding premium index walks (`perpx.core.prices.funding.impact_qty_lots`,
    the engine's own). With a `price` it is also valued in the settle coin.
    """
    qty_lots = impact_qty_lots(spec, to_ticks(spec, price) if price is not None else 0)
    tier = spec.risk_tiers[0]
    figures = {
        "symbol": spec.symbol, "contract_type": CONTRACT_TYPE_WORDS[spec.contract_type],
        "liq_price_formula": spec.liq_price_formula.name.lower(),
        "tier1_risk_limit_value": format_atoms(tier.limit_atoms),
        "tier1_mmr": format_rate(tier.mmr), "tier1_imr": format_rate(tier.imr),
        "impact_margin": f"{format_scaled(spec.impact_margin_base_e8, 8)} {spec.base_coin}",
        "settle_coin": spec.settle_coin,
    }
    if qty_lots:  # an inverse quantity needs a price (`impact_qty_lots`)
        unit = spec.base_coin if spec.contract.value_sign > 0 else "contracts"
        figures["impact_margin_notional_qty"] = f"{format_lots(spec, qty_lots)} {unit}"
    if price is not None:
        value = spec.notional_atoms(to_ticks(spec, price), qty_lots)
        figures["impact_margin_notional"] = f"{format_atoms(value)} {spec.settle_coin}"
    return figures


def closed_pnl(given: Inputs, entry: str, exit_price: str, qty: str,
               funding: str = "0") -> Figures:
    """Return Bybit's closed P&L of opening at `entry` and closing at `exit_price` as a taker.

    ``closed P&L = P&L - fee to open - fee to close - funding paid`` (spec §12; #13 B3), with
    `funding` the funding the position paid while open (negative: received), as the
    closed-pnl endpoint's ``closedPnl``, ``openFee`` and ``closeFee`` report it.
    """
    spec, side = given.spec, given.side
    entry_ticks, exit_ticks = to_ticks(spec, entry), to_ticks(spec, exit_price)
    qty_lots = to_lots(spec, qty)
    funding_atoms = to_atoms(funding)
    contract = spec.contract
    entry_value = contract.entry_value_atoms(entry_ticks, qty_lots)
    pnl, _ = calc.realized_pnl_on_close_atoms(spec, side, entry_value, qty_lots, qty_lots,
                                              exit_ticks)
    open_fee = contract.fill_fee_atoms(entry_ticks, qty_lots, given.taker_fee_rate)
    close_fee = contract.fill_fee_atoms(exit_ticks, qty_lots, given.taker_fee_rate)
    net = calc.closed_pnl_atoms(pnl, open_fee, close_fee, funding_atoms)
    margin = contract.position_margin_atoms(side, entry_value, given.leverage,
                                            given.taker_fee_rate)
    return {"pnl": format_atoms(pnl), "fee_to_open": format_atoms(open_fee),
            "fee_to_close": format_atoms(close_fee), "funding": format_atoms(funding_atoms),
            "closed_pnl": format_atoms(net), "roi": format_rate(calc.roi_rate(pnl, margin))}


def delivery(given: Inputs, entry: str, qty: str, delivery_price: str,
             fee_rate: str | None = None) -> Figures:
    """Return a dated future's settlement at delivery (next-mechanics §2.5, example E3).

    ``P&L = q(DP - EP)·side`` and the delivery fee ``q·DP·deliveryFeeRate`` (truncated, §7
    N1), as `Clearing.settle_delivery` books them; DP has 8 decimals and need not be on the
    tick. `fee_rate` overrides the instrument's deliveryFeeRate (USDC futures: 0, E5).
    """
    spec, side = given.spec, given.side
    entry_value = spec.contract.entry_value_atoms(to_ticks(spec, entry), to_lots(spec, qty))
    qty_lots = to_lots(spec, qty)
    dp_e8 = to_atoms(delivery_price)  # 8 decimals, as the quote coin's atoms
    rate = spec.delivery_fee_rate if fee_rate is None else to_rate(fee_rate)
    pnl = spec.contract.settlement_pnl_atoms(side, entry_value, qty_lots, dp_e8,
                                             spec.tick_atoms)
    value_n, value_d = spec.contract.value_fraction_atoms(qty_lots, dp_e8, spec.tick_atoms)
    fee = settlement_fee_atoms(value_n, value_d, rate)
    return {"delivery_price": format_scaled(dp_e8, 8, 8),
            "position_value": format_atoms(div_floor(value_n, value_d)),
            "delivery_pnl": format_atoms(pnl), "delivery_fee_rate": format_rate(rate),
            "delivery_fee": format_atoms(fee), "net": format_atoms(pnl - fee)}


def target_price(given: Inputs, entry: str, qty: str, roi: str) -> Figures:
    """Return the exit price that yields `roi` (e.g. "0.5" for 50%) on IM + fee to close."""
    spec, side = given.spec, given.side
    entry_ticks, qty_lots = to_ticks(spec, entry), to_lots(spec, qty)
    contract = spec.contract
    entry_value = contract.entry_value_atoms(entry_ticks, qty_lots)
    margin = contract.position_margin_atoms(side, entry_value, given.leverage,
                                            given.taker_fee_rate)
    wanted_pnl = div_floor(margin * to_rate(roi), RATE_ONE)
    # A long gains as its value moves by `value_sign` (up linear, down inverse): the exit
    # value; the price at which the quantity is worth it is the contract's "average entry"
    # of that value, rounded half up.
    exit_value = entry_value + side.sign * contract.value_sign * wanted_pnl
    exit_ticks = (contract.average_entry_display_ticks(exit_value, qty_lots)
                  if exit_value > 0 else 0)
    return {"target_price": _shown_price(spec, exit_ticks),
            "pnl_at_target": format_atoms(wanted_pnl)}


def quantity(given: Inputs, price: str, value: str | None = None,
             cost: str | None = None) -> Figures:
    """Return the order quantity for a value (order by value) or a cost (order by cost)."""
    spec = given.spec
    price_ticks = to_ticks(spec, price)
    if (value is None) == (cost is None):
        raise ValueError("give exactly one of value or cost")
    if value is not None:
        # The most lots worth no more than `value` at the price (order by value).
        wanted = to_atoms(value)
        qty_lots = spec.contract.qty_for_value_lots(price_ticks, wanted)
        if spec.contract.value_ceil_atoms(price_ticks, qty_lots) > wanted:
            qty_lots -= 1
    else:
        qty_lots = calc.qty_for_cost_lots(spec, given.side, price_ticks, to_atoms(cost or "0"),
                                          given.leverage, given.taker_fee_rate)
    return {"qty": format_lots(spec, qty_lots)}


# --- portfolio margin (next-mechanics §5) ------------------------------------------------------

# USD price of a settle coin unless given (§4.1, §7 N17: USDT and USDC count as 1 USD).
_DEFAULT_USD = {"USDT": "1", "USDC": "1"}


def _pair(text: str, what: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise ValueError(f"{what} must be KEY=PRICE, not {text!r}")
    return key.strip(), value.strip()


def portfolio_legs(specs: dict[str, InstrumentSpec], positions: list[str], orders: list[str],
                   indexes: list[str], marks: list[str], usd: list[str]) -> list[PmLeg]:
    """Parse `perpx calc pm`'s inputs into the core's legs, one per instrument.

    - a position ``SYMBOL:QTY`` (signed; repeated symbols add up), e.g. ``BTCUSDT:1``;
    - an order ``SYMBOL:buy|sell:QTY`` (open quantity; they enter the IM only, §5.4);
    - an index ``COIN=PRICE`` for every instrument on that base coin, or ``SYMBOL=PRICE`` for
      one (needed when the price is off an instrument's tick);
    - a mark ``SYMBOL=PRICE`` (default: the index; used with ``--shock-base mark``);
    - a settle coin's USD price ``COIN=PRICE`` (default 1 for USDT and USDC).
    """
    lots: dict[str, list[int]] = {}  # symbol -> [position, buys, sells]

    def spec_of(symbol: str) -> InstrumentSpec:
        if symbol not in specs:
            raise ValueError(f"unknown symbol {symbol}")
        return specs[symbol]

    for text in positions:
        symbol, sep, qty = text.rpartition(":")
        spec = spec_of(symbol.strip())
        if not sep:
            raise ValueError(f"a position is SYMBOL:QTY, not {text!r}")
        qty = qty.strip()
        sign = -1 if qty.startswith("-") else 1
        row = lots.setdefault(spec.symbol, [0, 0, 0])
        row[0] += sign * to_lots(spec, qty.removeprefix("-"))
    for text in orders:
        parts = [part.strip() for part in text.split(":")]
        if len(parts) != 3 or parts[1].lower() not in ("buy", "sell"):
            raise ValueError(f"an order is SYMBOL:buy|sell:QTY, not {text!r}")
        spec = spec_of(parts[0])
        row = lots.setdefault(spec.symbol, [0, 0, 0])
        row[1 if parts[1].lower() == "buy" else 2] += to_lots(spec, parts[2])
    index_by = dict(_pair(text, "--index") for text in indexes)
    mark_by = dict(_pair(text, "--mark") for text in marks)
    usd_by = _DEFAULT_USD | dict(_pair(text, "--usd") for text in usd)
    legs = []
    for symbol, (position, buys, sells) in lots.items():
        spec = specs[symbol]
        index = index_by.get(symbol, index_by.get(spec.base_coin))
        if index is None:
            raise ValueError(f"no index for {symbol}: give --index {spec.base_coin}=PRICE")
        if spec.settle_coin == spec.base_coin:
            settle_usd = 0  # an inverse contract's coin is valued at the scenario price
        elif spec.settle_coin in usd_by:
            settle_usd = to_atoms(usd_by[spec.settle_coin])
        else:
            raise ValueError(f"no USD price for {spec.settle_coin}: give --usd "
                             f"{spec.settle_coin}=PRICE")
        mark = mark_by.get(symbol)
        legs.append(PmLeg(spec, position, to_ticks(spec, index), settle_usd,
                          mark_ticks=to_ticks(spec, mark) if mark is not None else 0,
                          buy_order_lots=buys, sell_order_lots=sells))
    return legs


def filled_positions(positions: list[str], fills: list[str]) -> list[str]:
    """Return the positions of a book after `fills` (``SYMBOL:buy|sell:QTY``) traded.

    The what-if of `perpx calc pm --fill`: each fill becomes a signed position on its symbol,
    netted with what is held there.
    """
    after = list(positions)
    for text in fills:
        parts = [part.strip() for part in text.split(":")]
        if len(parts) != 3 or parts[1].lower() not in ("buy", "sell"):
            raise ValueError(f"a fill is SYMBOL:buy|sell:QTY, not {text!r}")
        sign = "" if parts[1].lower() == "buy" else "-"
        after.append(f"{parts[0]}:{sign}{parts[2]}")
    return after


def portfolio_what_if(before: list[PmLeg], after: list[PmLeg],
                      params: PmParams) -> dict[str, dict[str, str]]:
    """Return the book's PM MM and IM before and after an order fills, and the change."""
    old, new = portfolio_margin(before, params), portfolio_margin(after, params)
    return {"before": {"mm": format_atoms(old.mm), "im": format_atoms(old.im)},
            "after": {"mm": format_atoms(new.mm), "im": format_atoms(new.im)},
            "change": {"mm": format_atoms(new.mm - old.mm), "im": format_atoms(new.im - old.im)}}


def portfolio_params(shock_base: str = "index", risk_factor: str | None = None,
                     im_factor: str | None = None) -> PmParams:
    """Return the PM parameters: perpx's defaults (§7 N14) with the ones given replaced."""
    if shock_base.lower() not in ("index", "mark"):
        raise ValueError(f"shock base must be index or mark, not {shock_base!r}")
    defaults = PmParams()
    return PmParams(shock_base=ShockBase.MARK if shock_base.lower() == "mark"
                    else ShockBase.INDEX,
                    risk_factor=defaults.risk_factor if risk_factor is None
                    else to_rate(risk_factor),
                    im_factor=defaults.im_factor if im_factor is None else to_rate(im_factor))


def portfolio(legs: list[PmLeg], params: PmParams) -> dict[str, Any]:
    """Return the PM figures of a book: per unit the grid, MaxLoss, contingencies, MM, IM.

    Amounts are USD (8 decimals); shocks are fractions ("-0.1"). ``pnl_grid`` lists, per
    shock, the unit's total and each leg's P&L; ``mm_with_buys`` / ``mm_with_sells`` are
    the MM with every open buy (sell) order filled, whose maximum sets the IM (§5.4).
    """
    result = portfolio_margin(legs, params)
    units = []
    for unit in result.units:
        grid = []
        for k, shock in enumerate(unit.shocks):
            row = {"price_move": format_rate(shock), "pnl": format_atoms(unit.pnls[k])}
            row |= {leg.leg.spec.symbol: format_atoms(leg.pnls[k]) for leg in unit.legs}
            grid.append(row)
        units.append({
            "base_coin": unit.base_coin,
            "positions": {leg.leg.spec.symbol: format_lots(leg.leg.spec, leg.leg.position_lots)
                          for leg in unit.legs},
            "pnl_grid": grid,
            "max_loss": format_atoms(unit.max_loss),
            "max_loss_price_move": format_rate(unit.max_loss_price_move),
            "future_contingency": format_atoms(unit.future_contingency),
            "delta_spread_contingency": format_atoms(unit.delta_spread_contingency),
            "usdt_usdc_contingency": format_atoms(unit.usdt_usdc_contingency),
            "contingency": format_atoms(unit.contingency),
            "mm": format_atoms(unit.mm),
            "mm_with_buys": format_atoms(unit.mm_with_buys),
            "mm_with_sells": format_atoms(unit.mm_with_sells),
            "im": format_atoms(unit.im),
        })
    return {"units": units, "mm": format_atoms(result.mm), "im": format_atoms(result.im),
            "shock_base": params.shock_base.name.lower(),
            "risk_factor": format_rate(params.risk_factor),
            "im_factor": format_rate(params.im_factor)}


# --- a multi-coin account (next-mechanics §4) ---------------------------------------------------

_CALC_ACCOUNT_ID = 1


def _ratio_tiers(text: str, coin: str) -> tuple[CollateralTier, ...]:
    """Parse ``R`` (flat) or ``R1:Q1,R2:Q2,...,Rn``: ratio R_k up to quantity Q_k in coin.

    The last ratio has no upper bound (Bybit's maxQty ""); the slices apply marginally.
    """
    tiers: list[CollateralTier] = []
    low = 0
    parts = [part.strip() for part in text.split(",")]
    for k, part in enumerate(parts):
        ratio, sep, upto = part.partition(":")
        if (not sep and k != len(parts) - 1) or (sep and not upto):
            raise ValueError(f"--ratio {coin}: tiers are RATIO:UPTO, the last may be RATIO; "
                             f"not {text!r}")
        high = to_atoms(upto) if sep else None
        if high is not None and high <= low:
            raise ValueError(f"--ratio {coin}: tier bounds must rise, not {text!r}")
        tiers.append(CollateralTier(low, high, to_rate(ratio)))
        if high is not None:
            low = high
    if tiers[-1].max_atoms is not None:
        tiers.append(CollateralTier(low, None, 0))  # above the last bound: not collateral
    return tuple(tiers)


def collateral_table(usdt_rate: str | None = None, ratios: Sequence[str] = (),
                     usd_prices: Sequence[str] = (), usdt_prices: Sequence[str] = (),
                     borrow_limits: Sequence[str] = ()) -> CollateralTable:
    """Return perpx's default collateral table (§7 N6) with the terms given replaced.

    - ``usdt_rate``: USD per USDT (§4.1; default 1);
    - a ratio ``COIN=R`` or tiered ``COIN=R1:Q1,...,Rn`` (§4.2);
    - a fixed USD price ``COIN=P``, or a USDT price ``COIN=P`` (a spot price, times the
      USDT rate, §4.1) for a coin priced by no index (USDC, or a coin the defaults do not
      know, which then becomes collateral);
    - a borrowing limit ``COIN=QTY`` (above it the penalty rate applies, §4.4).
    """
    base = default_collateral()
    rate = base.usdt_rate_e8 if usdt_rate is None else to_atoms(usdt_rate)
    if rate <= 0:
        raise ValueError("--usdt-rate must be positive")
    coins = {coin: copy_terms(terms) for coin, terms in base.coins.items()}

    def terms_of(coin: str) -> CollateralCoin:
        if coin not in coins:
            coins[coin] = CollateralCoin(coin, (CollateralTier(0, None, 0),))
        return coins[coin]

    for text in usd_prices:
        coin, price = _pair(text, "--usd-price")
        _fixed(terms_of(coin)).fixed_px_e8 = to_atoms(price)
    for text in usdt_prices:
        coin, price = _pair(text, "--usdt-price")
        _fixed(terms_of(coin)).fixed_px_e8 = to_atoms(price) * rate // PX_ONE
    for text in ratios:
        coin, tiers = _pair(text, "--ratio")
        terms_of(coin).tiers = _ratio_tiers(tiers, coin)
    for text in borrow_limits:
        coin, qty = _pair(text, "--borrow-limit")
        terms_of(coin).max_borrowing_atoms = to_atoms(qty)
    return CollateralTable(tuple(coins.values()), rate, base.conversion_fee_rate)


def copy_terms(terms: CollateralCoin) -> CollateralCoin:
    """Return an independent copy of a coin's collateral terms."""
    return CollateralCoin(terms.coin, terms.tiers, price_symbol=terms.price_symbol,
                          fixed_px_e8=terms.fixed_px_e8, switchable=terms.switchable,
                          margin_collateral=terms.margin_collateral,
                          liquidation_order=terms.liquidation_order,
                          hourly_borrow_rate=terms.hourly_borrow_rate,
                          free_borrowing_limit_atoms=terms.free_borrowing_limit_atoms,
                          max_borrowing_atoms=terms.max_borrowing_atoms)


def _fixed(terms: CollateralCoin) -> CollateralCoin:
    if terms.coin == "USDT":
        raise ValueError("USDT is worth the USDT rate: give --usdt-rate")
    if terms.price_symbol:
        raise ValueError(f"{terms.coin} is priced by {terms.price_symbol}'s index: give "
                         f"--index {terms.price_symbol}=PRICE")
    return terms


def _rate_down(fraction: tuple[int, int]) -> str:
    """Return an account rate with 4 decimals, truncated as Bybit prints it (§4.3)."""
    numerator, denominator = fraction
    if denominator <= 0:
        return "" if not numerator else "inf"
    return format_scaled(numerator * 10_000 // denominator, 4, 4)


class AccountBook:
    """A throwaway engine holding one cross account as given, to read the core's figures.

    The balances and positions are put in place as they are (a position at its entry, with
    no fee paid); the prices are set without moving anything, so a breached account is shown,
    not liquidated. Every figure is the clearing's own (`Clearing.account_risk`,
    `usd_terms`, `interest_due`, `figures`).
    """

    def __init__(self, specs: dict[str, InstrumentSpec], table: CollateralTable,
                 coins: Sequence[str], positions: Sequence[str], indexes: Sequence[str],
                 marks: Sequence[str], leverages: Sequence[str]) -> None:
        balances: dict[str, int] = {}
        for text in coins:
            coin, amount = _pair(text, "--coin")
            balances[coin] = balances.get(coin, 0) + to_atoms(amount)
        held: dict[str, tuple[int, int]] = {}  # symbol -> (signed lots, entry ticks)
        for text in positions:
            symbol, sep, rest = text.partition(":")
            qty, at, entry = rest.partition("@")
            symbol = symbol.strip()
            if not sep or not at or symbol not in specs:
                raise ValueError(f"a position is SYMBOL:QTY@ENTRY with a known symbol, not "
                                 f"{text!r}")
            if symbol in held:
                raise ValueError(f"give {symbol} once")
            spec = specs[symbol]
            qty = qty.strip()
            sign = -1 if qty.startswith("-") else 1
            held[symbol] = (sign * to_lots(spec, qty.removeprefix("-")),
                            to_ticks(spec, entry.strip()))
        index_by = dict(_pair(text, "--index") for text in indexes)
        mark_by = dict(_pair(text, "--mark") for text in marks)
        leverage_by = {k: to_rate(v) for k, v in
                       (_pair(text, "--leverage") for text in leverages)}
        wanted = set(held) | {s for s in (*index_by, *mark_by) if s in specs}
        for coin in balances:
            terms = table.coin(coin)
            if terms is not None and terms.price_symbol:
                if terms.price_symbol not in specs:
                    raise ValueError(f"{coin} is priced by {terms.price_symbol}, not listed")
                wanted.add(terms.price_symbol)
        self.specs = {s: specs[s] for s in sorted(wanted)}
        self.engine = Engine(self.specs.values(), table)
        engine = self.engine
        for symbol, spec in self.specs.items():
            index = index_by.get(symbol, index_by.get(spec.base_coin))
            mark = mark_by.get(symbol, index)
            if index is not None:
                engine.index_price[symbol] = to_ticks(spec, index)
            if mark is not None:
                engine.mark_price[symbol] = to_ticks(spec, mark)
            elif symbol in held:
                raise ValueError(f"no price for {symbol}: give --index or --mark {symbol}=PRICE")
        account = self.account = Account(_CALC_ACCOUNT_ID, CROSS)
        engine.clearing.accounts[_CALC_ACCOUNT_ID] = account
        account.balances.update(balances)
        for symbol, (lots, entry_ticks) in held.items():
            spec = self.specs[symbol]
            leverage = leverage_by.get(symbol, DEFAULT_LEVERAGE)
            if not spec.min_leverage <= leverage <= spec.max_leverage:
                raise ValueError(f"leverage of {symbol} must be in "
                                 f"[{format_rate(spec.min_leverage)}, "
                                 f"{format_rate(spec.max_leverage)}]")
            account.leverage[symbol, 0] = leverage
            position = Position(_CALC_ACCOUNT_ID, symbol, 0, leverage)
            apply_fill(position, spec, Side.BUY if lots > 0 else Side.SELL, entry_ticks,
                       abs(lots))
            account.positions[symbol, 0] = position
        for coin in engine.clearing.account_coins(account):
            if engine.clearing.usd_px(coin) <= 0:
                raise ValueError(f"no USD price for {coin}: give an --index or --usd-price")

    def figures(self) -> dict[str, Any]:
        """Return each coin's figures and the account's, in USD where the account's are."""
        clearing = self.engine.clearing
        account = self.account
        coins: dict[str, dict[str, str]] = {}
        for coin in clearing.account_coins(account):
            own, px, equity_usd, value = clearing.usd_terms(account, coin)
            due = clearing.interest_due(account, coin)
            borrow, free, _unrealised, cost = due if due is not None else (0, 0, 0, 0)
            coins[coin] = {
                "wallet_balance": format_atoms(own.wallet_atoms),
                "unrealised_pnl": format_atoms(own.upnl_atoms),
                "equity": format_atoms(own.wallet_atoms + own.upnl_atoms),
                "usd_price": format_atoms(px),
                "usd_value": format_atoms(equity_usd),
                "collateral_value": format_atoms(value),
                "collateral_switch": "OFF" if coin in account.collateral_off else "ON",
                "position_im": format_atoms(own.position_im_atoms),
                "position_mm": format_atoms(own.mm_atoms),
                "borrow_amount": format_atoms(borrow),
                "free_borrow_amount": format_atoms(free),
                "interest_per_hour": format_atoms(cost),
                "available": format_atoms(clearing.figures(account, coin).available_atoms),
            }
        risk = clearing.account_risk(account)
        totals = {
            "total_equity": format_atoms(risk.total_equity_atoms),
            "total_wallet_balance": format_atoms(risk.wallet_atoms),
            "total_perp_upl": format_atoms(risk.upnl_atoms),
            "total_margin_balance": format_atoms(risk.margin_balance_atoms),
            "haircut": format_atoms(risk.haircut_atoms),
            "total_initial_margin": format_atoms(risk.total_im_atoms),
            "total_maintenance_margin": format_atoms(risk.mm_atoms),
            "account_im_rate": _rate_down(risk.im_rate()),
            "account_mm_rate": _rate_down(risk.mm_rate()),
            "total_available_balance": format_atoms(risk.available_atoms),
            "liquidatable": "yes" if risk.breached() else "no",
        }
        for symbol in sorted({s for s, _ in account.positions}):
            spec = self.specs[symbol]
            for moving, name in ((True, "index_and_mark"), (False, "mark_only")):
                for down in (True, False):
                    found = self.liquidation_ticks(symbol, moving, down)
                    totals[f"liq_{'below' if down else 'above'}_{symbol}_{name}"] = (
                        format_ticks(spec, found) if found is not None else "")
        return {"coins": coins, "account": totals}

    def breached_at(self, symbol: str, ticks: int, move_index: bool) -> bool:
        """Tell whether the account is breached with `symbol`'s mark (and index) at `ticks`."""
        engine = self.engine
        saved = engine.mark_price.get(symbol), engine.index_price.get(symbol)
        engine.mark_price[symbol] = ticks
        if move_index:
            engine.index_price[symbol] = ticks
        try:
            return engine.clearing.account_risk(self.account).breached()
        finally:
            for prices, value in zip((engine.mark_price, engine.index_price), saved,
                                     strict=True):
                if value is None:
                    prices.pop(symbol, None)
                else:
                    prices[symbol] = value

    def liquidation_ticks(self, symbol: str, move_index: bool, down: bool) -> int | None:
        """Return the first price from the mark, down or up, at which the account breaches.

        `move_index`: the index moves with the mark, so every coin priced by `symbol` (its
        collateral) moves too (§4.7 C7); otherwise only the mark, the collateral held. Found
        by bisection on the clearing's own test (`AccountRisk.breached`), which assumes one
        crossing in that direction; up to ten times the mark; None if none.
        """
        mark = self.engine.mark_price.get(symbol)
        if mark is None:
            return None
        if self.breached_at(symbol, mark, move_index):
            return mark
        far = 1 if down else mark * 10
        if not self.breached_at(symbol, far, move_index):
            return None
        safe = mark  # not breached here; `far` is
        while abs(far - safe) > 1:
            middle = (far + safe) // 2
            if self.breached_at(symbol, middle, move_index):
                far = middle
            else:
                safe = middle
        return far

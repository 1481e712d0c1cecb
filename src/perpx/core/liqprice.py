"""Liquidation and bankruptcy prices by instrument, exact in integers.

Split from `perpx.core.calc` (which keeps values, margins, fees, entry price and P&L). The
formulas belong to the instrument's contract maths (`spec.contract`, `perpx.core.contract`);
these functions keep the signatures their callers know, and choose between the published
formulas (`spec.liq_price_formula`) and risk tiers. Units: prices in ticks, quantities in
lots, money in atoms, rates in ``RATE_ONE``. A liquidation price rounds toward the mark (long
up, short down) and a bankruptcy price away from it (long down, short up), per DESIGN.md;
formulas follow spec/perp-mechanics.md, cited by section.

A liquidation price is returned as solved, even when it is zero or negative (a long that the
mark can never liquidate); the edge applies Bybit's display rule (``liqPrice = ""`` at or
beyond the instrument's min/max price, spec §1.4).
"""

from __future__ import annotations

# The rounding rules live with the contract maths; re-exported for the callers that know them
# from here.
from perpx.core.contract import round_bankruptcy_price as round_bankruptcy_price
from perpx.core.contract import round_liquidation_price as round_liquidation_price
from perpx.core.enums import Side
from perpx.core.errors import PerpxBug
from perpx.core.instruments import InstrumentSpec, LiquidationFormula, RiskLimitTier


def bankruptcy_price_ticks(
    spec: InstrumentSpec, side: Side, entry_price_ticks: int, leverage: int
) -> int:
    """Return the isolated bankruptcy price at zero margin left.

    ``BP = EP * (L - s*R) / L`` ticks, i.e. ``EP(1 - 1/L)`` long, ``EP(1 + 1/L)`` short (spec
    §1.3, [B-BANK]). Rounded away from the mark: a long's down, a short's up (DESIGN.md; Bybit's
    old note rounds the other way, see `round_bankruptcy_price`). The tick is `spec`'s.
    """
    return spec.contract.bankruptcy_price_ticks(side, entry_price_ticks, leverage)


def bankruptcy_price_for_margin_ticks(
    spec: InstrumentSpec, side: Side, entry_value_atoms: int, qty_lots: int, margin_atoms: int
) -> int:
    """Return the bankruptcy price of a position holding `margin_atoms` of margin.

    ``BP = (EV - s * margin) / (q * a)`` ticks, the general form ``EP - s(IM + extra -
    funding paid)/q`` (spec §1.3 [drv]), used for takeover and ADL. Rounded away from the mark
    (long down, short up, DESIGN.md).
    """
    return spec.contract.bankruptcy_price_for_margin_ticks(
        side, entry_value_atoms, qty_lots, margin_atoms)


def isolated_bankruptcy_price_ticks(
    spec: InstrumentSpec, side: Side, entry_value_atoms: int, qty_lots: int,
    margin_atoms: int, fee_to_close_atoms: int,
) -> int:
    """Return the isolated bankruptcy price: where the loss uses up the margin bar the fee.

    Bybit's rule (spec §1.3, [B-BANK]; #13 B2): the loss at bankruptcy equals the initial
    margin, moved by any margin added or removed (funding taken from it included), i.e.
    ``BP = EP - s * (IM + extra - funding paid) / q``; the fee to close is reserved beside it,
    not spent on the price. `margin_atoms` is the position margin as held (IM + fee to close
    + extra) and `fee_to_close_atoms` its reserved fee to close, so with no extra margin this
    is ``EP(1 - 1/L)`` long and ``EP(1 + 1/L)`` short (60,000 at 50x long: 58,800, V13).
    Rounded away from the mark, a long's down and a short's up (`round_bankruptcy_price`):
    whoever takes the position over never gets a worse price than the exact one.
    """
    return bankruptcy_price_for_margin_ticks(
        spec, side, entry_value_atoms, qty_lots, margin_atoms - fee_to_close_atoms)


def isolated_margin_call_price_fraction(
    spec: InstrumentSpec, side: Side, entry_value_atoms: int, qty_lots: int,
    margin_atoms: int, fee_to_close_atoms: int, mmr: int, mm_deduction_atoms: int,
) -> tuple[int, int]:
    """Return the mark at which an isolated position's margin meets its MM, as a fraction.

    Solves ``margin + uPnL(P) = q*P*a*MMR - ded + FTC + 1`` for the position's actual
    `margin_atoms` (whatever funding or margin changes did to it; #13 B1):
    ``P = (EV - s(margin - FTC + ded - 1)) * R / (q*a*(R - s*MMR))`` ticks. The extra atom
    covers MM's rounding up, so at any mark where ``margin + uPnL <= MM`` (MM rounded as
    `calc.maintenance_margin_at_rate_atoms`) the mark is at or beyond this price. Exact,
    returned as (numerator, denominator > 0); round it toward the mark.
    """
    return spec.contract.isolated_margin_call_price_fraction(
        side, entry_value_atoms, qty_lots, margin_atoms, fee_to_close_atoms, mmr,
        mm_deduction_atoms)


def isolated_margin_call_trigger_ticks(
    spec: InstrumentSpec, side: Side, entry_value_atoms: int, qty_lots: int,
    margin_atoms: int, fee_to_close_atoms: int, first_ticks: int,
) -> int:
    """Return the first price the mark reaches of `first_ticks` and every tier's margin call.

    Each tier's `isolated_margin_call_price_fraction` rounded toward the mark (a long's up,
    a short's down, as `round_liquidation_price`); a long keeps the highest, a short the
    lowest. Every tier's line counts, since MM is the largest of them under the deduction
    recursion. The contract computes only the line the ladder's envelope puts highest
    (`InstrumentSpec.maintenance_envelope`), the same price as the walk over every line,
    because the risk index asks it for every position whose size, entry or margin moved.
    """
    return spec.contract.isolated_margin_call_trigger_ticks(
        side, entry_value_atoms, qty_lots, margin_atoms, fee_to_close_atoms,
        spec.maintenance_envelope, first_ticks)


def isolated_liquidation_price_fraction(
    spec: InstrumentSpec,
    side: Side,
    entry_value_atoms: int,
    qty_lots: int,
    leverage: int,
    extra_margin_atoms: int,
    mmr: int,
    mm_deduction_atoms: int,
    taker_fee_rate: int,
) -> tuple[int, int]:
    """Return the exact isolated liquidation price (current UTA formula) as a tick fraction.

    Spec §1.4 item 1, [B-LIQ-UTA], with ``EV = EP*q*a`` atoms:
    ``LP_long  = [EV - EV/L - extra/(1 - f) - ded] / [q*a*(1 - MMR)]`` and
    ``LP_short = [EV + EV/L + extra/(1 + f) + ded] / [q*a*(1 + MMR)]``, i.e. in integers
    ``N = EV(L - sR)(R - sf) - s*extra*R*L - s*ded*L(R - sf)`` over
    ``D = q*a*(R - s*MMR)*L*(R - sf) / R``. The ``extra/(1 -/+ f)`` factor is kept as
    published (§14 Q3). Exact, returned as (numerator, denominator > 0).
    """
    return spec.contract.isolated_liquidation_price_fraction(
        side, entry_value_atoms, qty_lots, leverage, extra_margin_atoms, mmr,
        mm_deduction_atoms, taker_fee_rate)


def isolated_liquidation_price_ticks(
    spec: InstrumentSpec,
    side: Side,
    entry_price_ticks: int,
    qty_lots: int,
    leverage: int,
    extra_margin_atoms: int,
    mmr: int,
    mm_deduction_atoms: int,
    taker_fee_rate: int,
) -> int:
    """Return the isolated liquidation price by the current UTA formula (the default, §14 Q2).

    The exact `isolated_liquidation_price_fraction` of ``EV = EP*q*a``, rounded toward the
    mark: a long's up, a short's down (DESIGN.md), so liquidation never comes late. A result
    at or below zero means a long the mark cannot liquidate.
    """
    contract = spec.contract
    numerator, denominator = contract.isolated_liquidation_price_fraction(
        side,
        contract.entry_value_atoms(entry_price_ticks, qty_lots),
        qty_lots,
        leverage,
        extra_margin_atoms,
        mmr,
        mm_deduction_atoms,
        taker_fee_rate,
    )
    return round_liquidation_price(side, numerator, denominator)


def isolated_liquidation_price_legacy_fraction(
    spec: InstrumentSpec,
    side: Side,
    entry_value_atoms: int,
    qty_lots: int,
    leverage: int,
    extra_margin_atoms: int,
    mmr: int,
    mm_deduction_atoms: int,
) -> tuple[int, int]:
    """Return the exact isolated liquidation price of the older USDT article as a tick fraction.

    Spec §1.4 item 2, [B-LIQ-USDT-OLD]: ``LP = EP - s(IM - MM)/q - s*extra/q`` with
    ``IM = EV/L`` and ``MM = EV*MMR - ded`` at entry, i.e. in integers
    ``N = EV(L*R - s*R*R + s*L*MMR) - s(ded + extra)*L*R`` over ``D = q*a*L*R``. No fee term.
    Exact, returned as (numerator, denominator > 0).
    """
    return spec.contract.isolated_liquidation_price_legacy_fraction(
        side, entry_value_atoms, qty_lots, leverage, extra_margin_atoms, mmr,
        mm_deduction_atoms)


def isolated_liquidation_price_legacy_ticks(
    spec: InstrumentSpec,
    side: Side,
    entry_price_ticks: int,
    qty_lots: int,
    leverage: int,
    extra_margin_atoms: int,
    mmr: int,
    mm_deduction_atoms: int,
) -> int:
    """Return the isolated liquidation price by the older USDT formula (selectable, §14 Q2).

    `isolated_liquidation_price_legacy_fraction` of ``EV = EP*q*a`` (``EP -/+ (IM - MM)/q
    -/+ extra/q``), rounded toward the mark: a long's up, a short's down (DESIGN.md). A
    negative `extra_margin_atoms` models funding taken from the margin (spec §1.4).
    """
    contract = spec.contract
    numerator, denominator = contract.isolated_liquidation_price_legacy_fraction(
        side,
        contract.entry_value_atoms(entry_price_ticks, qty_lots),
        qty_lots,
        leverage,
        extra_margin_atoms,
        mmr,
        mm_deduction_atoms,
    )
    return round_liquidation_price(side, numerator, denominator)


def isolated_liquidation_price_selected_fraction(
    spec: InstrumentSpec,
    side: Side,
    entry_value_atoms: int,
    qty_lots: int,
    leverage: int,
    extra_margin_atoms: int,
    mmr: int,
    mm_deduction_atoms: int,
    taker_fee_rate: int,
) -> tuple[int, int]:
    """Return the exact isolated liquidation price by the instrument's own formula (§14 Q2).

    `spec.liq_price_formula` picks the current UTA formula (the default,
    `isolated_liquidation_price_fraction`) or the older USDT article's
    (`isolated_liquidation_price_legacy_fraction`, which has no fee term, so
    `taker_fee_rate` is unused there). The one place the engine, `perpx calc` and the views
    choose between them.
    """
    contract = spec.contract
    if spec.liq_price_formula is LiquidationFormula.LEGACY:
        return contract.isolated_liquidation_price_legacy_fraction(
            side, entry_value_atoms, qty_lots, leverage, extra_margin_atoms, mmr,
            mm_deduction_atoms)
    return contract.isolated_liquidation_price_fraction(
        side, entry_value_atoms, qty_lots, leverage, extra_margin_atoms, mmr,
        mm_deduction_atoms, taker_fee_rate)


def isolated_liquidation_price_selected_ticks(
    spec: InstrumentSpec,
    side: Side,
    entry_value_atoms: int,
    qty_lots: int,
    leverage: int,
    extra_margin_atoms: int,
    mmr: int,
    mm_deduction_atoms: int,
) -> int:
    """Return `isolated_liquidation_price_selected_fraction` rounded toward the mark.

    At the instrument's taker fee rate. The UTA formula's rounded price comes from the
    contract (`ContractMaths.isolated_liquidation_price_rounded_ticks`, which a linear
    contract finds in machine words), the legacy one from its fraction.
    """
    contract = spec.contract
    if spec.liq_price_formula is LiquidationFormula.LEGACY:
        numerator, denominator = contract.isolated_liquidation_price_legacy_fraction(
            side, entry_value_atoms, qty_lots, leverage, extra_margin_atoms, mmr,
            mm_deduction_atoms)
        return round_liquidation_price(side, numerator, denominator)
    return contract.isolated_liquidation_price_rounded_ticks(
        side, entry_value_atoms, qty_lots, leverage, extra_margin_atoms, mmr,
        mm_deduction_atoms, spec.taker_fee_rate)


def isolated_liquidation_price_with_tier(
    spec: InstrumentSpec,
    side: Side,
    entry_value_atoms: int,
    qty_lots: int,
    leverage: int,
    extra_margin_atoms: int,
    taker_fee_rate: int,
) -> tuple[int, RiskLimitTier]:
    """Return the UTA isolated liquidation price with the tier that applies at that price.

    Spec §14 Q4: MM is evaluated with the tier of the position value at the liquidation
    price. With the deduction recursion, MM is continuous and increasing in the value, so
    exactly one tier's solution lies inside its own tier (two adjacent ones agree at a
    boundary); the search tries each tier's exact LP and keeps the first whose value
    ``q * LP * a`` falls in ``(previous limit, limit]`` (the last tier is open-ended). Rounded
    toward the mark like `isolated_liquidation_price_ticks`.
    """
    contract = spec.contract
    lower = 0
    last = len(spec.risk_tiers) - 1
    for index, tier in enumerate(spec.risk_tiers):
        numerator, denominator = contract.isolated_liquidation_price_fraction(
            side, entry_value_atoms, qty_lots, leverage, extra_margin_atoms,
            tier.mmr, tier.mm_deduction_atoms, taker_fee_rate,
        )
        # The value at the exact LP, as a fraction: compared without rounding.
        value_numerator, value_denominator = contract.value_fraction_atoms(
            qty_lots, numerator, denominator)
        above_lower = index == 0 or value_numerator > lower * value_denominator
        below_upper = (index == last
                       or value_numerator <= tier.limit_atoms * value_denominator)
        if above_lower and below_upper:
            return round_liquidation_price(side, numerator, denominator), tier
        lower = tier.limit_atoms
    raise PerpxBug(
        f"isolated_liquidation_price_with_tier: no tier of {spec.symbol} holds its own "
        f"liquidation price (entry value {entry_value_atoms}, qty {qty_lots}); "
        "are the deductions off the recursion?"
    )


def cross_liquidation_price_estimate_ticks(
    spec: InstrumentSpec,
    side: Side,
    qty_lots: int,
    mark_price_ticks: int,
    margin_balance_atoms: int,
    total_mm_atoms: int,
    mmr: int,
) -> int | None:
    """Return the UTA-consistent estimate of a cross position's liquidation price.

    Holding the other symbols' marks fixed, solve ``MB(P) = sum MM(P)`` for this mark (spec
    §2.2 [drv]): ``P = MP - s * (MB - sum MM) * R / (q * a * (R - s*MMR))`` ticks. Rounded
    toward the mark (long up, short down; spec §11 shows Bybit rounding a long's estimate up).
    None when there is no position, or when a long's MMR is at least 100% (its equity would
    then never fall faster than its MM, so no price solves).
    """
    return spec.contract.cross_liquidation_price_estimate_ticks(
        side, qty_lots, mark_price_ticks, margin_balance_atoms, total_mm_atoms, mmr)


def cross_liquidation_price_legacy_ticks(
    spec: InstrumentSpec,
    side: Side,
    entry_price_ticks: int,
    qty_lots: int,
    available_atoms: int,
    im_atoms: int,
    mm_atoms: int,
) -> int | None:
    """Return the old standard-account cross liquidation price of a single position.

    ``LP = EP - s * (available + IM - MM) / q`` (spec §2.2, [B-LIQ-USDT-OLD]), i.e.
    ``(EP*q*a - s(available + IM - MM)) / (q*a)`` ticks, rounded toward the mark (long up,
    short down). None when there is no position.
    """
    return spec.contract.cross_liquidation_price_legacy_ticks(
        side, entry_price_ticks, qty_lots, available_atoms, im_atoms, mm_atoms)

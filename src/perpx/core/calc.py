"""Values, margins, fees, entry price and P&L by instrument, for the engine, `perpx calc` and tests.

The formulas themselves belong to the instrument's contract maths (`spec.contract`, see
`perpx.core.contract`); the functions here are thin over it, keeping the signatures their
callers know. The value-only helpers (no `spec` argument) are the linear maths of a value
already in the settle coin (`contract.LINEAR_VALUE_MATHS`): callers that may meet another
contract type ask `spec.contract` instead. The liquidation and bankruptcy price functions are
in `perpx.core.liqprice`; the risk-limit tier rules (contract-independent, on values) here.

Units (STYLE §3): prices in ticks of the instrument, quantities in lots, money in atoms of
the settle coin, rates and leverage in 10**-8 (``RATE_ONE``; 10x leverage is ``10 *
RATE_ONE``). Below, ``R`` is ``RATE_ONE``, ``L`` a leverage, ``f`` a fee rate and ``s`` the
side's sign (+1 long, -1 short); where a docstring quotes the linear form, ``a`` is the
tick-lot value ``atoms_per_tick_lot`` of `perpx.core.contract.LinearContract`.

Every division rounds in the exchange's favour (DESIGN.md, Numbers): requirements (IM, MM,
fees charged, order cost) up; payouts and credits (P&L, released entry value) down; a
liquidation price toward the mark (long up, short down); a bankruptcy price away from it
(long down, short up). Formulas follow spec/perp-mechanics.md, cited by section.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, NamedTuple

from perpx.core.contract import BREAK_EVEN_MIN_FEE_RATE as BREAK_EVEN_MIN_FEE_RATE
from perpx.core.contract import (
    LINEAR_VALUE_MATHS,
    fee_for_value_atoms,
    initial_margin_for_value_atoms,
    maintenance_margin_for_value_atoms,
)
from perpx.core.enums import Side
from perpx.core.errors import require_positive
from perpx.core.instruments import InstrumentSpec, RiskLimitTier
from perpx.core.numbers import RATE_ONE, mul_div_floor

# Seed 000: delivery of expiring futures is charged 0.05% of the settled value, no VIP discount.
EXPIRY_SETTLEMENT_FEE_RATE: Final = 50_000


# --- values, margins, fees -----------------------------------------------------------------


def position_value_atoms(spec: InstrumentSpec, price_ticks: int, qty_lots: int) -> int:
    """Value `qty_lots` at `price_ticks`, rounded up (spec §0; linear: ``P*q*a``, exact)."""
    return spec.contract.value_ceil_atoms(price_ticks, qty_lots)


def initial_margin_atoms(value_atoms: int, leverage: int) -> int:
    """Return the initial margin ``ceil(PV * R / L)`` of a value at a leverage (spec §1.1).

    Rounded up because it is a requirement the account must hold; the same for every
    contract type once the value is in the settle coin.
    """
    return initial_margin_for_value_atoms(value_atoms, leverage)


def fee_atoms(value_atoms: int, fee_rate: int) -> int:
    """Return the trading fee ``ceil(value * f / R)`` on a value (spec §11).

    Rounded up, and a negative (rebate) rate rounds toward a smaller rebate.
    """
    return fee_for_value_atoms(value_atoms, fee_rate)


def fee_to_close_for_entry_value_atoms(
    side: Side, entry_value_atoms: int, leverage: int, taker_fee_rate: int
) -> int:
    """Return the estimated fee to close a linear position of a given entry value.

    `LinearContract.fee_to_close_atoms`: the taker fee on the value at the unrounded
    bankruptcy price (spec §1.1), rounded up. Linear only: callers that may meet another
    contract type ask ``spec.contract.fee_to_close_atoms``.
    """
    return LINEAR_VALUE_MATHS.fee_to_close_atoms(side, entry_value_atoms, leverage,
                                                 taker_fee_rate)


def fee_to_close_atoms(
    spec: InstrumentSpec,
    side: Side,
    entry_price_ticks: int,
    qty_lots: int,
    leverage: int,
    taker_fee_rate: int,
) -> int:
    """Return the estimated fee to close `qty_lots` entered at `entry_price_ticks`.

    ``q x BP x f_t`` with the unrounded bankruptcy price (spec §1.1, §1.6); rounded up once,
    a requirement.
    """
    contract = spec.contract
    return contract.fee_to_close_atoms(
        side, contract.entry_value_atoms(entry_price_ticks, qty_lots), leverage, taker_fee_rate)


def order_cost_atoms(
    spec: InstrumentSpec,
    side: Side,
    price_ticks: int,
    qty_lots: int,
    leverage: int,
    taker_fee_rate: int,
) -> int:
    """Return the margin an order locks: IM + fee to open + fee to close (spec §1.6, seed 000).

    Each part is a requirement rounded up on its own, because the engine books them apart;
    the cost is the sum of the rounded parts.
    """
    contract = spec.contract
    return contract.order_cost_atoms(
        side, contract.value_ceil_atoms(price_ticks, qty_lots), leverage, taker_fee_rate)


def order_cost_for_value_atoms(side: Side, value_atoms: int, leverage: int,
                               taker_fee_rate: int) -> int:
    """Return the order cost of a linear value: position margin + fee to open.

    The same sum of rounded-up parts as `order_cost_atoms`, for callers that keep values
    (open-order sums) rather than a price and a quantity. Linear only (see
    `fee_to_close_for_entry_value_atoms`).
    """
    return LINEAR_VALUE_MATHS.order_cost_atoms(side, value_atoms, leverage, taker_fee_rate)


def position_margin_atoms(side: Side, value_atoms: int, leverage: int,
                          taker_fee_rate: int) -> int:
    """Return the position margin of a linear entry value: IM + estimated fee to close.

    Seed 001 glossary "Position margin = IM + fee to close"; spec §1.1. What isolated mode
    holds for a position, valued at its entry; each part a requirement rounded up on its
    own. Linear only (see `fee_to_close_for_entry_value_atoms`).
    """
    return LINEAR_VALUE_MATHS.position_margin_atoms(side, value_atoms, leverage,
                                                    taker_fee_rate)


def qty_for_cost_lots(
    spec: InstrumentSpec,
    side: Side,
    price_ticks: int,
    cost_atoms: int,
    leverage: int,
    taker_fee_rate: int,
) -> int:
    """Return the largest quantity whose order cost fits in `cost_atoms` (spec §1.6).

    Rounded down to a lot so the order never costs more than was offered.
    """
    return spec.contract.qty_for_cost_lots(side, price_ticks, cost_atoms, leverage,
                                           taker_fee_rate)


# --- risk-limit tiers and maintenance margin -----------------------------------------------


def tier_for_position(spec: InstrumentSpec, value_atoms: int) -> RiskLimitTier:
    """Return the risk-limit tier of a position value.

    The smallest tier with ``value <= limit`` (inclusive, spec §4.2: "2,000,000 USDT or
    below"); a value beyond the last tier uses the last tier, whose rates are the strictest,
    so an oversized position is never under-margined (only reduce-only orders reach there).
    """
    tier = spec.tier_for_value(value_atoms)
    return spec.risk_tiers[-1] if tier is None else tier


def mm_deduction_ladder_atoms(tiers: Sequence[RiskLimitTier]) -> tuple[int, ...]:
    """Return each tier's MM deduction derived from the ladder's limits and rates.

    ``ded_1 = 0``, ``ded_n = ded_(n-1) + floor(limit_(n-1) * (MMR_n - MMR_(n-1)) / R)`` atoms
    (spec §1.2); rounded down, because a smaller deduction is a larger MM requirement.
    """
    deductions: list[int] = []
    previous: RiskLimitTier | None = None
    for tier in tiers:
        if previous is None:
            deductions.append(0)
        else:
            step = mul_div_floor(previous.limit_atoms, tier.mmr - previous.mmr, RATE_ONE)
            deductions.append(deductions[-1] + step)
        previous = tier
    return tuple(deductions)


def maintenance_margin_at_rate_atoms(
    value_atoms: int, mmr: int, mm_deduction_atoms: int, fee_to_close: int
) -> int:
    """Return the maintenance margin for an explicit rate and deduction.

    ``MM = ceil(PV * MMR / R) - ded + FTC`` atoms (spec §1.2, UTA); rounded up, a requirement.
    """
    return maintenance_margin_for_value_atoms(value_atoms, mmr, mm_deduction_atoms,
                                              fee_to_close)


def maintenance_margin_atoms(spec: InstrumentSpec, value_atoms: int, fee_to_close: int) -> int:
    """Return the maintenance margin of a position value, with the tier for that value.

    ``MM = ceil(PV * MMR_tier / R) - ded_tier + FTC`` atoms (spec §1.2), the tier chosen by
    `tier_for_position` (inclusive; past the last tier, the last). Rounded up, a requirement.
    """
    tier = tier_for_position(spec, value_atoms)
    return spec.contract.maintenance_margin_atoms(
        value_atoms, tier.mmr, tier.mm_deduction_atoms, fee_to_close
    )


# --- prices: entry -----------------------------------------------------------------------


def average_entry_price_ticks(
    spec: InstrumentSpec, entry_value_atoms: int, qty_lots: int
) -> tuple[int, int]:
    """Return the average entry price as an exact fraction (numerator, denominator) of ticks.

    Reduced to lowest terms with a positive denominator (linear: ``EV / (q * a)``, spec §12).
    Exact: positions keep the entry value, and only a display rounds it
    (`average_entry_display`).
    """
    return spec.contract.average_entry_fraction(entry_value_atoms, qty_lots)


def average_entry_display(spec: InstrumentSpec, entry_value_atoms: int, qty_lots: int) -> int:
    """Return the average entry price rounded half up to a tick, for display only.

    Half up as seed 002 shows (56,666.66.. -> 56,666.7). Nothing is charged or paid at this
    price, so no side is favoured.
    """
    return spec.contract.average_entry_display_ticks(entry_value_atoms, qty_lots)


# --- hedge mode (cross) --------------------------------------------------------------------


class HedgeMargins(NamedTuple):
    """IM and MM of the two sides of a hedge-mode cross position, in atoms."""

    long_im: int
    long_mm: int
    short_im: int
    short_mm: int


def hedge_im_mm_atoms(
    spec: InstrumentSpec,
    long_qty_lots: int,
    long_entry_value_atoms: int,
    short_qty_lots: int,
    short_entry_value_atoms: int,
    mark_price_ticks: int,
    leverage: int,
    taker_fee_rate: int,
    *,
    literal_hedged_first_term: bool = False,
) -> HedgeMargins:
    """Return the IM and MM of both sides of a hedge-mode cross position.

    Spec §2.3 (seed 001), with ``H = min(q_long, q_short)``, ``net = |q_long - q_short|`` and
    each side's EP the exact ``EV / q``; the side with the higher value at the mark (the larger
    size; the long on a tie) carries the net size:

    - higher side IM ``= MP*net/L + 2*EP*H*(1 - s/L)*f + EP*net*(1 - s/L)*f``;
    - higher side MM ``= (MP*net*MMR - ded) + 2*EP*H*(1 - s/L)*f + EP*net*(1 - s/L)*f``, the
      tier being that of the net value at the mark;
    - lower side IM = MM ``= 2*EP*H*(1 - s/L)*f``.

    §14 Q1: the first IM term uses the net size, as the MM does; `literal_hedged_first_term`
    uses the seed's literal "Hedged Position Size" (``MP*H/L``) instead. Each part is a
    requirement rounded up on its own, and a side with no position has zero IM and MM. The
    values and fee reserves are the contract maths' (`fee_reserve_atoms`).
    """
    require_positive("hedge_im_mm_atoms", "leverage", leverage)
    contract = spec.contract
    hedged = min(long_qty_lots, short_qty_lots)
    net = abs(long_qty_lots - short_qty_lots)
    higher = Side.BUY if long_qty_lots >= short_qty_lots else Side.SELL
    margins: dict[Side, tuple[int, int]] = {}
    for side, qty, entry_value in (
        (Side.BUY, long_qty_lots, long_entry_value_atoms),
        (Side.SELL, short_qty_lots, short_entry_value_atoms),
    ):
        if qty <= 0:
            margins[side] = (0, 0)
            continue
        reserve = contract.fee_reserve_atoms(side, entry_value, qty, hedged, 2, leverage,
                                             taker_fee_rate)
        if side is not higher:
            margins[side] = (reserve, reserve)
            continue
        net_ftc = contract.fee_reserve_atoms(side, entry_value, qty, net, 1, leverage,
                                             taker_fee_rate)
        first_lots = hedged if literal_hedged_first_term else net
        im_value = contract.value_ceil_atoms(mark_price_ticks, first_lots)
        net_value = contract.value_ceil_atoms(mark_price_ticks, net)
        tier = tier_for_position(spec, net_value)
        im = contract.initial_margin_atoms(im_value, leverage) + reserve + net_ftc
        mm = contract.maintenance_margin_atoms(
            net_value, tier.mmr, tier.mm_deduction_atoms, reserve + net_ftc
        )
        margins[side] = (im, mm)
    return HedgeMargins(*margins[Side.BUY], *margins[Side.SELL])


# --- P&L -----------------------------------------------------------------------------------


def unrealized_pnl_atoms(
    spec: InstrumentSpec, side: Side, entry_value_atoms: int, qty_lots: int, mark_price_ticks: int
) -> int:
    """Return the unrealized P&L of a position at the mark.

    Linear ``uPnL = s * (q*MP*a - EV)`` atoms (spec §0: long ``q(MP - EP)``, short
    ``q(EP - MP)``), exact because the position keeps its entry value, not an average.
    """
    return spec.contract.unrealised_pnl_atoms(side, entry_value_atoms, qty_lots,
                                              mark_price_ticks)


def break_even_price_ticks(
    spec: InstrumentSpec, side: Side, entry_value_atoms: int, qty_lots: int,
    realized_pnl_atoms: int,
) -> int | None:
    """Return the price at which closing the position at the taker fee nets zero, in ticks.

    Bybit's ``breakEvenPrice`` (spec §12, [B-API-ORDER]): ``(EP*q - realized) / (q -
    |q|*f)`` with q signed and ``f = max(taker fee, 0.055%)``; `realized` is the position's
    ``curRealisedPnl`` (fees and funding so far, negative when paid). Rounded half up to a
    tick: a displayed figure, nothing is charged at it (Bybit's published 30,033.1 for
    0.01 BTC at 30,000.1 with -0.16500055 realized is the nearest tick of 30,033.118).
    None when the position has already earned more than it could lose (no such price).
    """
    return spec.contract.break_even_price_ticks(side, entry_value_atoms, qty_lots,
                                                realized_pnl_atoms, spec.taker_fee_rate)


def realized_pnl_on_close_atoms(
    spec: InstrumentSpec,
    side: Side,
    entry_value_atoms: int,
    qty_lots: int,
    close_qty_lots: int,
    exit_price_ticks: int,
) -> tuple[int, int]:
    """Return (pnl, released entry value) of closing `close_qty_lots` of a position.

    The entry value released is ``EV * c / q`` (the average entry is unchanged by a reduce,
    spec §12), rounded in the exchange's favour, so the P&L is never overpaid; closing the
    rest releases exactly what is left (`ContractMaths.realised_pnl_on_close_atoms`).
    """
    return spec.contract.realised_pnl_on_close_atoms(
        side, entry_value_atoms, qty_lots, close_qty_lots, exit_price_ticks)


def closed_pnl_atoms(
    position_pnl_atoms: int, open_fee_atoms: int, close_fee_atoms: int, funding_paid_atoms: int
) -> int:
    """Return Bybit's closed P&L: position P&L less fees and net funding paid.

    ``closed = pnl - open fee - close fee - funding paid`` atoms (spec §12, [B-PNL]); funding
    received is a negative `funding_paid_atoms`. Exact: a sum of whole atoms.
    """
    return position_pnl_atoms - open_fee_atoms - close_fee_atoms - funding_paid_atoms


def roi_rate(pnl_atoms: int, margin_atoms: int) -> int:
    """Return the return on margin in 10**-8.

    ``ROI = floor(pnl * R / margin)`` (spec §12); Bybit's margin is ``IM + fee to close``, and
    seeds 000/004 use the margin alone: the caller picks. Floor: a displayed figure never
    flatters the position (a loss rounds to the larger loss).
    """
    require_positive("roi_rate", "margin_atoms", margin_atoms)
    return mul_div_floor(pnl_atoms, RATE_ONE, margin_atoms)


def order_loss_atoms(
    side: Side, mark_price_ticks: int, order_price_ticks: int, qty_lots: int, spec: InstrumentSpec
) -> int:
    """Return the potential loss of an open order against the mark (always <= 0).

    Linear: buy ``min(0, (MP - P) * q * a)``, sell ``min(0, (P - MP) * q * a)`` atoms (spec
    §0, seed 001); exact. It is added to the denominator of the account IM/MM rates.
    """
    return spec.contract.order_loss_atoms(side, mark_price_ticks, order_price_ticks, qty_lots)

"""Contract maths: how a contract type values, margins, charges and prices a position.

Every formula that depends on what a contract *is* lives behind `ContractMaths`: the value
of a quantity at a price, P&L, the entry value a fill adds and the average entry it implies,
fees, initial and maintenance margin, order cost, and the bankruptcy and liquidation prices.
Each `InstrumentSpec` gets its contract maths once, at construction
(`InstrumentSpec.contract`, picked by `contract_maths_for`); callers ask it and never write a
formula of their own, so an inverse contract can join by adding a class here.

Units (STYLE §3): prices in ticks of the instrument, quantities in lots, money in atoms of the
settle coin, rates and leverage in 10**-8 (``RATE_ONE``). Below, ``R`` is ``RATE_ONE``, ``L`` a
leverage, ``f`` a fee rate and ``s`` the side's sign (+1 long, -1 short). A position keeps its
*entry value* ``EV``, the sum of the values its opening fills added, never an average price.

Every division rounds in the exchange's favour (DESIGN.md, Numbers): requirements (IM, MM,
fees charged, order cost) up; payouts and credits (P&L, released entry value) down; a
liquidation price toward the mark (long up, short down); a bankruptcy price away from it
(long down, short up). Formulas follow spec/perp-mechanics.md, cited by section.

An inverse contract (spec next-mechanics §1: value ``C/P`` in the coin, P&L
``C(1/EP - 1/X)``, entry the harmonic mean) fits the same methods: its value rounds (hence
`value_floor_atoms` / `value_ceil_atoms`), its value falls as the price rises (so P&L,
order loss and the price solutions are its own), and its entry value is ``sum C_i/P_i``.
"""

from __future__ import annotations

from itertools import pairwise
from math import gcd
from typing import Final

from perpx.core.enums import Side
from perpx.core.errors import PerpxBug, require_positive
from perpx.core.numbers import (
    RATE_ONE,
    apply_rate_ceil,
    div_ceil,
    div_floor,
    gcd_positive,
    mul,
    mul_div_ceil,
    mul_div_floor,
)

_BUY: Final = Side.BUY

# --- rules shared by every contract type ----------------------------------------------------


def initial_margin_for_value_atoms(value_atoms: int, leverage: int) -> int:
    """Return the initial margin of a value at a leverage: ``ceil(V * R / L)`` (spec §1.1).

    Rounded up, a requirement. Contract-independent once the value is in the settle coin.
    """
    require_positive("initial_margin_atoms", "leverage", leverage)
    return mul_div_ceil(value_atoms, RATE_ONE, leverage)


def fee_for_value_atoms(value_atoms: int, fee_rate: int) -> int:
    """Return the fee on a value: ``ceil(V * f / R)`` (spec §11, ``execValue x rate``).

    Rounded up because the exchange charges it; a negative (rebate) rate also rounds up,
    toward a smaller rebate.
    """
    return apply_rate_ceil(value_atoms, fee_rate)


def settlement_fee_atoms(value_numerator: int, value_denominator: int, fee_rate: int) -> int:
    """Return a delivery fee, ``value(DP) x f_d``, truncated to the atom (next-mechanics §2.5).

    The value at the delivery price is exact as a fraction (the price is not on the tick).
    Truncated, not rounded up like a trading fee: the spec's decision N1 for settlement and
    delivery fees, which its worked example E3 prints (15.308641953 -> 15.30864195).
    """
    return div_floor(value_numerator * fee_rate, value_denominator * RATE_ONE)


def maintenance_margin_for_value_atoms(
    value_atoms: int, mmr: int, mm_deduction_atoms: int, fee_to_close: int
) -> int:
    """Return ``MM = ceil(V * MMR / R) - ded + FTC`` (spec §1.2, UTA).

    The rate part rounds up, a requirement; the deduction and the fee to close are already
    whole atoms.
    """
    return apply_rate_ceil(value_atoms, mmr) - mm_deduction_atoms + fee_to_close


def round_liquidation_price(side: Side, numerator: int, denominator: int) -> int:
    """Round an exact liquidation price to a tick, toward the mark.

    A long's LP (below the mark) rounds up and a short's (above it) down, so liquidation
    starts no later than the exact price, before the margin is gone (DESIGN.md).
    """
    if side is Side.BUY:
        return div_ceil(numerator, denominator)
    return div_floor(numerator, denominator)


def round_bankruptcy_price(side: Side, numerator: int, denominator: int) -> int:
    """Round an exact bankruptcy price to a tick, away from the mark.

    A long's BP rounds down and a short's up (DESIGN.md). This differs from Bybit's old
    note (spec §1.3: long up, short down, to the trader's safety); DESIGN wins: whoever takes
    the position over at BP (the insurance fund, an ADL counterparty) never gets a worse price
    than the exact one. The residue, under one tick per lot, lies beyond the trader's margin,
    so a takeover must cap the trader's loss at the margin or book it to the insurance fund.
    """
    if side is Side.BUY:
        return div_floor(numerator, denominator)
    return div_ceil(numerator, denominator)


# Bybit's floor on the fee rate of its break-even price (0.055%, the base taker rate).
BREAK_EVEN_MIN_FEE_RATE: Final = 55_000


class OrderCostRates:
    """The three rates of an order's cost for one sign, leverage and fee rate, in lowest terms.

    ``ceil(V*R/L)``, ``ceil(V*(L - s*R)*f / (L*R))`` and ``ceil(V*f/R)`` are each
    ``ceil(V*n/d)`` for a fixed fraction ``n/d``; divided by their gcd, ``n`` and ``d`` are
    small (10x: 1/10, 99/200000, 11/20000), so ``V*n`` fits a machine word where ``V*R``
    (about 10**19 for a few thousand USDT) does not, and `mul_div_ceil` takes it in i64 when
    compiled. Same fraction, same ceiling: the cost is exactly
    `perpx.core.account.margin.order_cost_fast_atoms`'s formula.
    """

    __slots__ = ("fee_den", "fee_num", "ftc_den", "ftc_num", "im_den", "im_num")

    def __init__(self, sign: int, leverage: int, fee_rate: int) -> None:
        self.im_num, self.im_den = _lowest_terms(RATE_ONE, leverage)
        self.ftc_num, self.ftc_den = _lowest_terms((leverage - sign * RATE_ONE) * fee_rate,
                                                   leverage * RATE_ONE)
        self.fee_num, self.fee_den = _lowest_terms(fee_rate, RATE_ONE)

    def cost_atoms(self, value_atoms: int) -> int:
        """Return the cost of an order worth `value_atoms`: the three parts, each rounded up."""
        return (mul_div_ceil(value_atoms, self.im_num, self.im_den)
                + mul_div_ceil(value_atoms, self.ftc_num, self.ftc_den)
                + mul_div_ceil(value_atoms, self.fee_num, self.fee_den))


def _lowest_terms(numerator: int, denominator: int) -> tuple[int, int]:
    """Return ``numerator/denominator`` (denominator > 0) divided by their gcd."""
    common = gcd(numerator, denominator)
    return numerator // common, denominator // common


# --- the interface ----------------------------------------------------------------------------


# One line of maintenance margin, ``V * mmr - deduction``, as (mmr 10**-8, deduction atoms):
# a risk-limit tier's (`InstrumentSpec.maintenance_envelope.lines`). Plain int pairs, not the
# tiers: compiled, each read of an attribute through a Protocol is a generic lookup.
MaintenanceLine = tuple[int, int]


class LineEnvelope:
    """The upper envelope of one side's maintenance lines as margin-call lines, built once.

    A linear long's margin call on a line is ``(R / (q*a)) * (x - ded) / c`` ticks with
    ``x = base`` and ``c = R - MMR``; a short's is ``-(R / (q*a)) * (x - ded) / c`` with
    ``x = -base`` and ``c = R + MMR`` (`LinearContract.isolated_margin_call_trigger_ticks`
    names ``base``). The factor ``R / (q*a)`` is positive and the same for every line, so the
    most adverse line (a long's highest price, a short's lowest) is the line highest at
    ``x`` among ``y = (x - ded) / c``, i.e. a line of their upper envelope, whatever the
    deductions (the recursion's, a published table's, equal rates); and rounding toward the
    mark is monotone, so that line's rounded price is the extreme the walk over every line
    finds. `breaks` are the integer ``x`` from which the next line of the envelope is at
    least as high (their crossing, rounded up), so `index` is a binary search instead of a
    walk over dozens of tiers for every isolated position the risk index refiles (#14).
    """

    __slots__ = ("bad_factor", "breaks", "deductions", "factors")

    breaks: tuple[int, ...]
    factors: tuple[int, ...]
    deductions: tuple[int, ...]
    bad_factor: int

    def __init__(self, lines: tuple[MaintenanceLine, ...], sign: int) -> None:
        # A line whose rate is not positive has no margin call (the linear formulas refuse
        # it): the first one met, in the ladder's order, is kept to refuse the same way.
        bad_factor = 1
        usable: list[tuple[int, int]] = []
        for mmr, deduction in lines:
            factor = RATE_ONE - sign * mmr
            if factor <= 0:
                if bad_factor > 0:
                    bad_factor = factor
                continue
            usable.append((factor, deduction))
        # Shallowest first (slope 1/c: the largest rate first); of equal slopes the highest
        # (the smallest deduction) first, so the others are dropped as never above it.
        usable.sort(key=lambda line: (-line[0], line[1]))
        hull: list[tuple[int, int]] = []
        for line in usable:
            if hull and hull[-1][0] == line[0]:
                continue
            # The last line is never strictly highest once the new one crosses it no later
            # than it crossed the one before: drop it.
            while len(hull) >= 2 and not _crosses_before(hull[-2], hull[-1], line):
                hull.pop()
            hull.append(line)
        breaks: list[int] = []
        for lower, upper in pairwise(hull):
            numerator, denominator = _crossing(lower, upper)
            breaks.append(div_ceil(numerator, denominator))
        self.breaks = tuple(breaks)
        self.factors = tuple(factor for factor, _ in hull)
        self.deductions = tuple(deduction for _, deduction in hull)
        self.bad_factor = bad_factor

    def index(self, x: int) -> int:
        """Return the position in `factors` of a line highest at `x`."""
        breaks = self.breaks
        low = 0
        high = len(breaks)
        while low < high:
            middle = (low + high) >> 1
            if breaks[middle] <= x:
                low = middle + 1
            else:
                high = middle
        return low


def _crossing(lower: tuple[int, int], upper: tuple[int, int]) -> tuple[int, int]:
    """Return the ``x`` where ``(x - d1)/c1`` meets ``(x - d2)/c2``, c1 > c2 > 0, exact.

    ``x = (d2*c1 - d1*c2) / (c1 - c2)``; beyond it the steeper line (``c2``) is higher.
    """
    (c1, d1), (c2, d2) = lower, upper
    return d2 * c1 - d1 * c2, c1 - c2


def _crosses_before(first: tuple[int, int], middle: tuple[int, int],
                    last: tuple[int, int]) -> bool:
    """Tell whether `middle` is strictly highest somewhere between `first` and `last`.

    True when `last` crosses `middle` strictly after `middle` crossed `first`.
    """
    n1, d1 = _crossing(first, middle)
    n2, d2 = _crossing(middle, last)
    return n1 * d2 < n2 * d1


class MaintenanceEnvelope:
    """A ladder's maintenance lines, whole and as the two envelopes a margin call searches.

    `minus` over the rates ``R - MMR`` (a linear long's), `plus` over ``R + MMR`` (a linear
    short's); `lines` the whole ladder, for a contract that walks it (the inverse one).
    """

    __slots__ = ("lines", "minus", "plus")

    lines: tuple[MaintenanceLine, ...]
    minus: LineEnvelope
    plus: LineEnvelope

    def __init__(self, lines: tuple[MaintenanceLine, ...]) -> None:
        self.lines = lines
        self.minus = LineEnvelope(lines, 1)
        self.plus = LineEnvelope(lines, -1)


class ContractMaths:
    """The formulas of one contract type, in integer ticks, lots and settle-coin atoms.

    A base class, not a Protocol: compiled by mypyc, a call through a base class is a
    vtable call, through a Protocol a generic Python method call, and these run on every
    fill. Each contract type subclasses it.
    """

    __slots__ = ()

    @property
    def value_sign(self) -> int:
        """+1 when a position's value rises with the price (linear), -1 when it falls (inverse).

        A long's P&L is ``value_sign * (value - EV)``; in the cash view of conservation a
        long has paid ``value_sign * EV`` out of its wallet (`Clearing.check_invariants`).
        """
        raise NotImplementedError

    # values and entry
    def value_floor_atoms(self, price_ticks: int, qty_lots: int) -> int:
        """Value `qty_lots` at `price_ticks`, rounded down (a credit's base)."""
        raise NotImplementedError

    def value_ceil_atoms(self, price_ticks: int, qty_lots: int) -> int:
        """Value `qty_lots` at `price_ticks`, rounded up (a requirement's or charge's base)."""
        raise NotImplementedError

    def entry_value_atoms(self, price_ticks: int, qty_lots: int) -> int:
        """Return what an opening fill of `qty_lots` at `price_ticks` adds to the entry value."""
        raise NotImplementedError

    def value_fraction_atoms(self, qty_lots: int, price_numerator: int,
                             price_denominator: int) -> tuple[int, int]:
        """Value `qty_lots` at an exact fractional price, as (numerator, denominator > 0)."""
        raise NotImplementedError

    def qty_for_value_lots(self, price_ticks: int, value_atoms: int) -> int:
        """Return the fewest lots whose value at `price_ticks` reaches `value_atoms`."""
        raise NotImplementedError

    def loss_limit_price_ticks(self, side: Side, qty_lots: int, price_ticks: int,
                               loss_atoms: int) -> int:
        """Return the furthest price where `side` loses at most `loss_atoms` from `price_ticks`.

        A long's limit lies below `price_ticks`, a short's above; rounded toward it.
        """
        raise NotImplementedError

    def average_entry_fraction(self, entry_value_atoms: int, qty_lots: int) -> tuple[int, int]:
        """Return the exact average entry price as (numerator, denominator > 0) in ticks."""
        raise NotImplementedError

    def average_entry_display_ticks(self, entry_value_atoms: int, qty_lots: int) -> int:
        """Return the average entry price rounded half up to a tick, for display only."""
        raise NotImplementedError

    # P&L
    def unrealised_pnl_atoms(self, side: Side, entry_value_atoms: int, qty_lots: int,
                             mark_price_ticks: int) -> int:
        """Return the unrealised P&L of a position at the mark."""
        raise NotImplementedError

    def realised_pnl_on_close_atoms(self, side: Side, entry_value_atoms: int, qty_lots: int,
                                    close_qty_lots: int, exit_price_ticks: int
                                    ) -> tuple[int, int]:
        """Return (P&L, entry value released) of closing `close_qty_lots` at the exit price."""
        raise NotImplementedError

    def order_loss_atoms(self, side: Side, mark_price_ticks: int, order_price_ticks: int,
                         qty_lots: int) -> int:
        """Return an open order's potential loss against the mark (always <= 0)."""
        raise NotImplementedError

    def settlement_pnl_atoms(self, side: Side, entry_value_atoms: int, qty_lots: int,
                             price_numerator: int, price_denominator: int) -> int:
        """Return the P&L of settling a whole position at an exact fractional price.

        A dated future's delivery (next-mechanics §2.5) settles at a price off the tick;
        rounded toward the exchange (down), the remainder being the insurance fund's.
        """
        raise NotImplementedError

    def break_even_price_ticks(self, side: Side, entry_value_atoms: int, qty_lots: int,
                               realised_pnl_atoms: int, taker_fee_rate: int) -> int | None:
        """Return the price at which closing at the taker fee nets zero (None: no such)."""
        raise NotImplementedError

    # fees
    def fill_fee_atoms(self, price_ticks: int, qty_lots: int, fee_rate: int) -> int:
        """Return the fee charged on a fill of `qty_lots` at `price_ticks`."""
        raise NotImplementedError

    def fee_to_close_atoms(self, side: Side, entry_value_atoms: int, leverage: int,
                           taker_fee_rate: int) -> int:
        """Return the estimated fee to close a position of an entry value (spec §1.1)."""
        raise NotImplementedError

    def fee_reserve_atoms(self, side: Side, entry_value_atoms: int, qty_lots: int,
                          part_lots: int, times: int, leverage: int, taker_fee_rate: int) -> int:
        """Return `times` the fee to close `part_lots` of a position (hedge mode, spec §2.3)."""
        raise NotImplementedError

    # margins
    # Once a value is in the settle coin (C/P for inverse, P*q for linear) IM and MM are the
    # same rules for every contract type, so they are defined here once.
    def initial_margin_atoms(self, value_atoms: int, leverage: int) -> int:
        """``IM = ceil(V * R / L)`` (spec §1.1; next-mechanics §1.4 ``C/(P*L)``)."""
        return initial_margin_for_value_atoms(value_atoms, leverage)

    def maintenance_margin_atoms(self, value_atoms: int, mmr: int, mm_deduction_atoms: int,
                                 fee_to_close: int) -> int:
        """``MM = ceil(V * MMR / R) - ded + FTC`` (spec §1.2; tiers in coin for inverse, I9)."""
        return maintenance_margin_for_value_atoms(value_atoms, mmr, mm_deduction_atoms,
                                                  fee_to_close)

    def position_margin_atoms(self, side: Side, value_atoms: int, leverage: int,
                              taker_fee_rate: int) -> int:
        """Return IM + estimated fee to close of an entry value."""
        raise NotImplementedError

    def order_cost_atoms(self, side: Side, value_atoms: int, leverage: int,
                         taker_fee_rate: int) -> int:
        """Return the margin an order of a value locks: IM + fee to open + fee to close."""
        raise NotImplementedError

    def qty_for_cost_lots(self, side: Side, price_ticks: int, cost_atoms: int, leverage: int,
                          taker_fee_rate: int) -> int:
        """Return the largest quantity whose order cost fits in `cost_atoms`."""
        raise NotImplementedError

    # prices
    def bankruptcy_price_ticks(self, side: Side, entry_price_ticks: int, leverage: int) -> int:
        """Return the isolated bankruptcy price at zero margin left, from an entry price."""
        raise NotImplementedError

    def bankruptcy_price_for_margin_ticks(self, side: Side, entry_value_atoms: int,
                                          qty_lots: int, margin_atoms: int) -> int:
        """Return the price at which a position holding `margin_atoms` has lost it all."""
        raise NotImplementedError

    def isolated_margin_call_price_fraction(
        self, side: Side, entry_value_atoms: int, qty_lots: int, margin_atoms: int,
        fee_to_close_atoms: int, mmr: int, mm_deduction_atoms: int,
    ) -> tuple[int, int]:
        """Return the exact mark at which an isolated margin meets its MM."""
        raise NotImplementedError

    def isolated_margin_call_trigger_ticks(
        self, side: Side, entry_value_atoms: int, qty_lots: int, margin_atoms: int,
        fee_to_close_atoms: int, envelope: MaintenanceEnvelope, first_ticks: int,
    ) -> int:
        """Return the first mark reached of `first_ticks` and every line's margin call."""
        raise NotImplementedError

    def isolated_liquidation_price_fraction(
        self, side: Side, entry_value_atoms: int, qty_lots: int, leverage: int,
        extra_margin_atoms: int, mmr: int, mm_deduction_atoms: int, taker_fee_rate: int,
    ) -> tuple[int, int]:
        """Return the exact isolated liquidation price by the current UTA formula."""
        raise NotImplementedError

    def isolated_liquidation_price_rounded_ticks(
        self, side: Side, entry_value_atoms: int, qty_lots: int, leverage: int,
        extra_margin_atoms: int, mmr: int, mm_deduction_atoms: int, taker_fee_rate: int,
    ) -> int:
        """Return `isolated_liquidation_price_fraction` rounded toward the mark.

        The same number as `round_liquidation_price` of the fraction; a contract may find
        it without building the fraction (`LinearContract`).
        """
        numerator, denominator = self.isolated_liquidation_price_fraction(
            side, entry_value_atoms, qty_lots, leverage, extra_margin_atoms, mmr,
            mm_deduction_atoms, taker_fee_rate)
        return round_liquidation_price(side, numerator, denominator)

    def isolated_liquidation_price_legacy_fraction(
        self, side: Side, entry_value_atoms: int, qty_lots: int, leverage: int,
        extra_margin_atoms: int, mmr: int, mm_deduction_atoms: int,
    ) -> tuple[int, int]:
        """Return the exact isolated liquidation price by the older USDT article's formula."""
        raise NotImplementedError

    def cross_liquidation_price_estimate_ticks(
        self, side: Side, qty_lots: int, mark_price_ticks: int, margin_balance_atoms: int,
        total_mm_atoms: int, mmr: int,
    ) -> int | None:
        """Return the UTA estimate of a cross position's liquidation price, others fixed."""
        raise NotImplementedError

    def cross_liquidation_price_legacy_ticks(
        self, side: Side, entry_price_ticks: int, qty_lots: int, available_atoms: int,
        im_atoms: int, mm_atoms: int,
    ) -> int | None:
        """Return the old standard-account cross liquidation price of one position."""
        raise NotImplementedError


# --- linear contracts ---------------------------------------------------------------------------


class LinearContract(ContractMaths):
    """USDT/USDC-margined linear contracts: value ``P * q * a`` atoms, exact.

    ``a`` is `atoms_per_tick_lot`, the settle-coin atoms of one tick on one lot. Because a
    linear value is exact, its floor and ceiling are the same; the P&L of a long is the rise
    in value (spec §0: long ``q(MP - EP)``, short ``q(EP - MP)``) and the average entry is
    the arithmetic mean ``EV / (q * a)`` (spec §12).
    """

    __slots__ = ("atoms_per_tick_lot",)

    def __init__(self, atoms_per_tick_lot: int) -> None:
        require_positive("LinearContract", "atoms_per_tick_lot", atoms_per_tick_lot)
        self.atoms_per_tick_lot = atoms_per_tick_lot

    def __repr__(self) -> str:
        return f"LinearContract(atoms_per_tick_lot={self.atoms_per_tick_lot})"

    @property
    def value_sign(self) -> int:
        """+1: a linear value rises with the price."""
        return 1

    # -- values and entry --------------------------------------------------------------------

    def value_floor_atoms(self, price_ticks: int, qty_lots: int) -> int:
        """``PV = P * q * a`` atoms, exact: no rounding is needed (spec §0, linear PV = q x P)."""
        return price_ticks * qty_lots * self.atoms_per_tick_lot

    # Exact, so rounding up changes nothing. A method rather than an alias of
    # `value_floor_atoms`: a mypyc-compiled class has no class-level aliases.
    def value_ceil_atoms(self, price_ticks: int, qty_lots: int) -> int:
        """``PV = P * q * a`` atoms, exact: the same product as `value_floor_atoms`."""
        return price_ticks * qty_lots * self.atoms_per_tick_lot

    def entry_value_atoms(self, price_ticks: int, qty_lots: int) -> int:
        """Add an opening fill's exact value ``P * q * a`` to ``EV = sum P_i q_i a``."""
        return price_ticks * qty_lots * self.atoms_per_tick_lot

    def value_fraction_atoms(self, qty_lots: int, price_numerator: int,
                             price_denominator: int) -> tuple[int, int]:
        """``q * a * N / D`` atoms, exact, as (numerator, denominator)."""
        return price_numerator * qty_lots * self.atoms_per_tick_lot, price_denominator

    def qty_for_value_lots(self, price_ticks: int, value_atoms: int) -> int:
        """``ceil(V / (P * a))`` lots: the fewest whose value reaches `value_atoms`."""
        return div_ceil(value_atoms, price_ticks * self.atoms_per_tick_lot)

    def loss_limit_price_ticks(self, side: Side, qty_lots: int, price_ticks: int,
                               loss_atoms: int) -> int:
        """``P -/+ floor(loss / (q * a))`` ticks: a long's loss ``(P - X) * q * a`` below `P`.

        Rounded toward `price_ticks` so the loss there never exceeds `loss_atoms`.
        """
        return price_ticks - side.sign * div_floor(loss_atoms, qty_lots * self.atoms_per_tick_lot)

    def average_entry_fraction(self, entry_value_atoms: int, qty_lots: int) -> tuple[int, int]:
        """``EP = EV / (q * a)`` ticks (spec §12, ``sum q_i p_i / sum q_i``), in lowest terms.

        Exact: positions keep the sum, and only a display rounds it.
        """
        require_positive("average_entry_price_ticks", "qty_lots", qty_lots)
        denominator = qty_lots * self.atoms_per_tick_lot
        common = gcd(entry_value_atoms, denominator)
        return div_floor(entry_value_atoms, common), div_floor(denominator, common)

    def average_entry_display_ticks(self, entry_value_atoms: int, qty_lots: int) -> int:
        """Round ``EV / (q*a)`` half up: ``floor((2*EV + q*a) / (2*q*a))`` ticks.

        Half up, as seed 002 shows (56,666.66.. -> 56,666.7). Nothing is charged or paid at
        this price, so no side is favoured.
        """
        numerator, denominator = self.average_entry_fraction(entry_value_atoms, qty_lots)
        return div_floor(2 * numerator + denominator, 2 * denominator)

    # -- P&L -----------------------------------------------------------------------------------

    def unrealised_pnl_atoms(self, side: Side, entry_value_atoms: int, qty_lots: int,
                             mark_price_ticks: int) -> int:
        """``uPnL = s * (q*MP*a - EV)`` atoms, exact because the position keeps ``EV``.

        Negated rather than multiplied by the sign: compiled, a product with a negative
        factor (or one of 2**30 or more) goes through heap longs.
        """
        gain = mark_price_ticks * qty_lots * self.atoms_per_tick_lot - entry_value_atoms
        return gain if side is Side.BUY else -gain

    def realised_pnl_on_close_atoms(self, side: Side, entry_value_atoms: int, qty_lots: int,
                                    close_qty_lots: int, exit_price_ticks: int
                                    ) -> tuple[int, int]:
        """Release ``EV * c / q`` (the average entry is unchanged by a reduce, spec §12).

        Rounded in the exchange's favour: up for a long, down for a short, so the P&L
        ``s * (c*XP*a - released)`` atoms is never overpaid. Closing the rest releases exactly
        what is left, so a position closed in pieces releases its whole entry value and its
        pieces' P&L sum to ``s * (exit values - EV)`` exactly; rounding only moves P&L between
        the pieces.
        """
        require_positive("realized_pnl_on_close_atoms", "qty_lots", qty_lots)
        if not 0 <= close_qty_lots <= qty_lots:
            raise PerpxBug(
                f"realized_pnl_on_close_atoms: close_qty_lots {close_qty_lots} "
                f"outside 0..{qty_lots}"
            )
        if side is Side.BUY:
            released = mul_div_ceil(entry_value_atoms, close_qty_lots, qty_lots)
            return (exit_price_ticks * close_qty_lots * self.atoms_per_tick_lot - released,
                    released)
        released = mul_div_floor(entry_value_atoms, close_qty_lots, qty_lots)
        return released - exit_price_ticks * close_qty_lots * self.atoms_per_tick_lot, released

    def settlement_pnl_atoms(self, side: Side, entry_value_atoms: int, qty_lots: int,
                             price_numerator: int, price_denominator: int) -> int:
        """``s * (q * a * N/D - EV)`` atoms, rounded down (next-mechanics §2.5, linear).

        The value at the delivery price ``N/D`` ticks is exact as a fraction; a long's P&L
        takes its floor and a short's gives up its ceiling, so neither is overpaid.
        """
        numerator, denominator = self.value_fraction_atoms(qty_lots, price_numerator,
                                                           price_denominator)
        if side is Side.BUY:
            return div_floor(numerator, denominator) - entry_value_atoms
        return entry_value_atoms - div_ceil(numerator, denominator)

    def order_loss_atoms(self, side: Side, mark_price_ticks: int, order_price_ticks: int,
                         qty_lots: int) -> int:
        """Buy ``min(0, (MP - P) * q * a)``, sell ``min(0, (P - MP) * q * a)`` atoms.

        Exact (spec §0, seed 001). A loss is negated into positive factors: compiled, a
        product with a negative factor goes through heap longs.
        """
        gap = (mark_price_ticks - order_price_ticks if side is Side.BUY
               else order_price_ticks - mark_price_ticks)
        if gap < 0 <= qty_lots:
            return -(-gap * qty_lots * self.atoms_per_tick_lot)
        return min(0, gap * qty_lots * self.atoms_per_tick_lot)

    def break_even_price_ticks(self, side: Side, entry_value_atoms: int, qty_lots: int,
                               realised_pnl_atoms: int, taker_fee_rate: int) -> int | None:
        """Bybit's ``breakEvenPrice`` (spec §12): ``(EP*q - realized) / (q - |q|*f)``.

        With q signed and ``f = max(taker fee, 0.055%)``. In integers: long ``(EV - Rz) * R /
        (q*a*(R - f))``, short ``(EV + Rz) * R / (q*a*(R + f))``, rounded half up to a tick
        (a displayed figure). None when the position has already earned more than it could
        lose.
        """
        require_positive("break_even_price_ticks", "qty_lots", qty_lots)
        rate = max(taker_fee_rate, BREAK_EVEN_MIN_FEE_RATE)
        unit = qty_lots * self.atoms_per_tick_lot
        if side is Side.BUY:
            numerator = (entry_value_atoms - realised_pnl_atoms) * RATE_ONE
            denominator = unit * (RATE_ONE - rate)
        else:
            numerator = (entry_value_atoms + realised_pnl_atoms) * RATE_ONE
            denominator = unit * (RATE_ONE + rate)
        if numerator <= 0 or denominator <= 0:
            return None
        return div_floor(2 * numerator + denominator, 2 * denominator)

    # -- fees ----------------------------------------------------------------------------------

    def fill_fee_atoms(self, price_ticks: int, qty_lots: int, fee_rate: int) -> int:
        """``ceil(P*q*a * f / R)`` atoms (spec §11), rounded up: the exchange charges it."""
        return apply_rate_ceil(price_ticks * qty_lots * self.atoms_per_tick_lot, fee_rate)

    def fee_to_close_atoms(self, side: Side, entry_value_atoms: int, leverage: int,
                           taker_fee_rate: int) -> int:
        """``FTC = ceil(EV * (L - s*R) * f / (L * R))`` atoms, rounded up.

        The taker fee on the value at the unrounded bankruptcy price ``EP(1 - s/L)``
        (spec §1.1).

        Computed as ``ceil((T + ceil(-s*T*R / L)) / R)`` with ``T = EV*f``: the same number,
        since ``ceil(ceil(x/L)/R) = ceil(x/(L*R))`` for positive ``L, R`` and
        ``T*(L - s*R)/L = T - s*T*R/L`` with ``T`` whole. Compiled, each step is a machine
        word's (`mul`, `mul_div_ceil`), where ``EV*(L - s*R)*f`` (~2**90) never is.
        """
        require_positive("fee_to_close", "leverage", leverage)
        fee_value = mul(entry_value_atoms, taker_fee_rate)
        return div_ceil(
            fee_value + mul_div_ceil(-fee_value if side is Side.BUY else fee_value, RATE_ONE,
                                     leverage),
            RATE_ONE,
        )

    def fee_reserve_atoms(self, side: Side, entry_value_atoms: int, qty_lots: int,
                          part_lots: int, times: int, leverage: int, taker_fee_rate: int) -> int:
        """``ceil(times * EV * part * (L - s*R) * f / (q * L * R))`` atoms.

        times x EP x part x (1 - s/L) x f, with EP x part = EV x part / q; rounded up.
        """
        return div_ceil(
            times * entry_value_atoms * part_lots * (leverage - side.sign * RATE_ONE)
            * taker_fee_rate,
            qty_lots * leverage * RATE_ONE,
        )

    # -- margins -------------------------------------------------------------------------------

    def position_margin_atoms(self, side: Side, value_atoms: int, leverage: int,
                              taker_fee_rate: int) -> int:
        """``ceil(V*R/L) + FTC`` atoms (seed 001 "Position margin = IM + fee to close").

        Each part a requirement rounded up on its own.
        """
        return (initial_margin_for_value_atoms(value_atoms, leverage)
                + self.fee_to_close_atoms(side, value_atoms, leverage, taker_fee_rate))

    def order_cost_atoms(self, side: Side, value_atoms: int, leverage: int,
                         taker_fee_rate: int) -> int:
        """``cost = ceil(V*R/L) + ceil(V*f/R) + FTC`` atoms (spec §1.6, seed 000).

        Each part rounded up on its own, because the engine books them apart.
        """
        return (self.position_margin_atoms(side, value_atoms, leverage, taker_fee_rate)
                + fee_for_value_atoms(value_atoms, taker_fee_rate))

    def qty_for_cost_lots(self, side: Side, price_ticks: int, cost_atoms: int, leverage: int,
                          taker_fee_rate: int) -> int:
        """``q = floor(cost * L * R / (P * a * (R*R + 2*f*L - s*f*R)))`` lots.

        The inverse of the exact cost (spec §1.6: ``Cost*L / [P(2 f L + 1 -/+ f)]``); rounded
        down to a lot so the order never costs more than was offered, then stepped down while
        the rounded-up parts of `order_cost_atoms` still exceed `cost_atoms` (a few lots).
        """
        require_positive("qty_for_cost_lots", "price_ticks", price_ticks)
        require_positive("qty_for_cost_lots", "leverage", leverage)
        if cost_atoms <= 0:
            return 0
        per_lot = price_ticks * self.atoms_per_tick_lot * (
            RATE_ONE * RATE_ONE
            + 2 * taker_fee_rate * leverage
            - side.sign * taker_fee_rate * RATE_ONE
        )
        qty = div_floor(cost_atoms * leverage * RATE_ONE, per_lot)
        while qty > 0 and self.order_cost_atoms(
                side, self.value_ceil_atoms(price_ticks, qty), leverage,
                taker_fee_rate) > cost_atoms:
            qty -= 1
        return qty

    # -- prices --------------------------------------------------------------------------------

    def bankruptcy_price_ticks(self, side: Side, entry_price_ticks: int, leverage: int) -> int:
        """``BP = EP * (L - s*R) / L`` ticks (spec §1.3, [B-BANK]).

        I.e. ``EP(1 - 1/L)`` long, ``EP(1 + 1/L)`` short; rounded away from the mark
        (`round_bankruptcy_price`).
        """
        require_positive("bankruptcy_price_ticks", "leverage", leverage)
        return round_bankruptcy_price(
            side, entry_price_ticks * (leverage - side.sign * RATE_ONE), leverage
        )

    def bankruptcy_price_for_margin_ticks(self, side: Side, entry_value_atoms: int,
                                          qty_lots: int, margin_atoms: int) -> int:
        """``BP = (EV - s * margin) / (q * a)`` ticks, rounded away from the mark.

        The general form ``EP - s(IM + extra - funding paid)/q`` (spec §1.3 [drv]).
        """
        require_positive("bankruptcy_price_for_margin_ticks", "qty_lots", qty_lots)
        return round_bankruptcy_price(
            side,
            entry_value_atoms - side.sign * margin_atoms,
            qty_lots * self.atoms_per_tick_lot,
        )

    def isolated_margin_call_price_fraction(
        self, side: Side, entry_value_atoms: int, qty_lots: int, margin_atoms: int,
        fee_to_close_atoms: int, mmr: int, mm_deduction_atoms: int,
    ) -> tuple[int, int]:
        """Solve ``margin + uPnL(P) = q*P*a*MMR - ded + FTC + 1`` for the mark (#13 B1).

        ``P = (EV - s(margin - FTC + ded - 1)) * R / (q*a*(R - s*MMR))`` ticks. The extra atom
        covers MM's rounding up, so at any mark where ``margin + uPnL <= MM`` the mark is at
        or beyond this price. Exact, as (numerator, denominator > 0).
        """
        function = "isolated_margin_call_price"
        require_positive(function, "qty_lots", qty_lots)
        s = side.sign
        mm_factor = RATE_ONE - s * mmr
        require_positive(function, "1 -/+ MMR", mm_factor)
        numerator = (entry_value_atoms
                     - s * (margin_atoms - fee_to_close_atoms + mm_deduction_atoms - 1)
                     ) * RATE_ONE
        return numerator, qty_lots * self.atoms_per_tick_lot * mm_factor

    def isolated_margin_call_trigger_ticks(
        self, side: Side, entry_value_atoms: int, qty_lots: int, margin_atoms: int,
        fee_to_close_atoms: int, envelope: MaintenanceEnvelope, first_ticks: int,
    ) -> int:
        """Return the first the mark reaches of `first_ticks` and each line's margin call.

        Each line's `isolated_margin_call_price_fraction` rounded toward the mark (a long's
        up, a short's down); a long keeps the highest, a short the lowest. Only the line of
        the envelope highest at the position is computed (`LineEnvelope`): the risk index
        asks this for every isolated position whose size, entry or margin moved, and a
        ladder has dozens of tiers; the property tests hold it equal to the walk over every
        line.

        ``floor(x*R / (q*a*m))`` is taken as ``floor(floor(x*R/m) / (q*a))`` (nested floors
        of positive divisors are the floor of the whole): compiled, ``x*R/m`` is a machine
        word's (`mul_div_floor`, ``R/m`` about one) where ``x*R`` (~2**67) never is.
        """
        function = "isolated_margin_call_price"
        require_positive(function, "qty_lots", qty_lots)
        qa = qty_lots * self.atoms_per_tick_lot
        if side is Side.BUY:
            # N = (EV - (margin - FTC + ded - 1)) * R, D = q*a*(R - MMR); ceil(N / D), the
            # highest where (base - ded) / (R - MMR) is.
            lines = envelope.minus
            if lines.bad_factor <= 0:
                require_positive(function, "1 -/+ MMR", lines.bad_factor)
            if not lines.factors:
                return first_ticks
            base = entry_value_atoms - margin_atoms + fee_to_close_atoms + 1
            at = lines.index(base)
            price = -(mul_div_floor(lines.deductions[at] - base, RATE_ONE, lines.factors[at])
                      // qa)
            return price if price > first_ticks else first_ticks
        # N = (EV + (margin - FTC + ded - 1)) * R, D = q*a*(R + MMR); floor(N / D), the lowest
        # where (base + ded) / (R + MMR) is, i.e. the highest of (-base - ded) / (R + MMR).
        lines = envelope.plus
        if lines.bad_factor <= 0:
            require_positive(function, "1 -/+ MMR", lines.bad_factor)
        if not lines.factors:
            return first_ticks
        base = entry_value_atoms + margin_atoms - fee_to_close_atoms - 1
        at = lines.index(-base)
        price = mul_div_floor(base + lines.deductions[at], RATE_ONE, lines.factors[at]) // qa
        return price if price < first_ticks else first_ticks

    def isolated_liquidation_price_fraction(
        self, side: Side, entry_value_atoms: int, qty_lots: int, leverage: int,
        extra_margin_atoms: int, mmr: int, mm_deduction_atoms: int, taker_fee_rate: int,
    ) -> tuple[int, int]:
        """Spec §1.4 item 1, [B-LIQ-UTA], with ``EV = EP*q*a`` atoms.

        ``LP_long  = [EV - EV/L - extra/(1 - f) - ded] / [q*a*(1 - MMR)]`` and
        ``LP_short = [EV + EV/L + extra/(1 + f) + ded] / [q*a*(1 + MMR)]``, i.e. in integers
        ``N = EV(L - sR)(R - sf) - s*extra*R*L - s*ded*L(R - sf)`` over
        ``D = q*a*(R - s*MMR)*L*(R - sf) / R``. The ``extra/(1 -/+ f)`` factor is kept as
        published (§14 Q3). Exact, as (numerator, denominator > 0).
        """
        function = "isolated_liquidation_price"
        require_positive(function, "qty_lots", qty_lots)
        require_positive(function, "leverage", leverage)
        s = side.sign
        fee_factor = RATE_ONE - s * taker_fee_rate
        mm_factor = RATE_ONE - s * mmr
        require_positive(function, "1 -/+ taker fee rate", fee_factor)
        require_positive(function, "1 -/+ MMR", mm_factor)
        numerator = (
            entry_value_atoms * (leverage - s * RATE_ONE) * fee_factor
            - s * extra_margin_atoms * RATE_ONE * leverage
            - s * mm_deduction_atoms * leverage * fee_factor
        ) * RATE_ONE
        denominator = qty_lots * self.atoms_per_tick_lot * mm_factor * leverage * fee_factor
        return numerator, denominator

    def isolated_liquidation_price_rounded_ticks(
        self, side: Side, entry_value_atoms: int, qty_lots: int, leverage: int,
        extra_margin_atoms: int, mmr: int, mm_deduction_atoms: int, taker_fee_rate: int,
    ) -> int:
        """`isolated_liquidation_price_fraction` rounded toward the mark, in machine words.

        Without added margin the fee factor ``R - s*f`` divides both sides of the fraction,
        so the price is ``(EV(L - sR) - s*ded*L) * R / (q*a*m*L)`` with ``m = R - s*MMR``.
        With ``(L - sR)/L = n1/d1`` (divided by ``gcd(L, R)``, which divides ``L - sR``) and
        ``R/m = n2/d2`` (by ``gcd(R, m)``) that is ``n2 * (EV*n1 - s*ded*d1) / (d1*d2*q*a)``,
        the same rational number, so the same tick after rounding; taken as nested floors
        (``floor(floor(x/a)/b) = floor(x/(ab))`` for positive a, b). For 10x at an MMR of
        0.5% a long's is ``200 * (9 EV - 10 ded) / (1990 q a)``: a machine word's products
        where the fraction's were ~10**36 (the risk index and the post-fill sweep ask this
        for every isolated position whose size, entry or margin moved). With added margin,
        or a factor that is not positive (which the fraction refuses), the fraction is
        rounded as before. The property tests hold both equal.
        """
        buy = side is _BUY
        # `side.sign` and `gcd`, compiled: a generic property read and generic calls of a
        # pure module's name; the sign by comparison and a native gcd (`gcd_positive`; its
        # arguments here are positive) are not (the risk index asks this for every isolated
        # position it files).
        s = 1 if buy else -1
        mm_factor = RATE_ONE - s * mmr
        if (extra_margin_atoms or qty_lots <= 0 or leverage <= 0 or mm_factor <= 0
                or RATE_ONE - s * taker_fee_rate <= 0):
            return super().isolated_liquidation_price_rounded_ticks(
                side, entry_value_atoms, qty_lots, leverage, extra_margin_atoms, mmr,
                mm_deduction_atoms, taker_fee_rate)
        common = gcd_positive(leverage, RATE_ONE)
        n1 = (leverage - s * RATE_ONE) // common
        d1 = leverage // common
        common = gcd_positive(RATE_ONE, mm_factor)
        n2 = RATE_ONE // common
        d2 = mm_factor // common
        # x = EV*n1 - s*ded*d1, each product by `mul` (exact; i64 where it fits).
        base = mul(entry_value_atoms, n1)
        deduction = mul(mm_deduction_atoms, d1)
        unit = qty_lots * self.atoms_per_tick_lot
        if buy:  # ceil(x*n2 / (d1*d2*q*a)) = -floor(-x*n2 / (d1*d2) / (q*a))
            return -(mul_div_floor(deduction - base, n2, d1 * d2) // unit)
        return mul_div_floor(base + deduction, n2, d1 * d2) // unit

    def isolated_liquidation_price_legacy_fraction(
        self, side: Side, entry_value_atoms: int, qty_lots: int, leverage: int,
        extra_margin_atoms: int, mmr: int, mm_deduction_atoms: int,
    ) -> tuple[int, int]:
        """Spec §1.4 item 2, [B-LIQ-USDT-OLD]: ``LP = EP - s(IM - MM)/q - s*extra/q``.

        With ``IM = EV/L`` and ``MM = EV*MMR - ded`` at entry, i.e. in integers
        ``N = EV(L*R - s*R*R + s*L*MMR) - s(ded + extra)*L*R`` over ``D = q*a*L*R``. No fee
        term. Exact, as (numerator, denominator > 0).
        """
        function = "isolated_liquidation_price_legacy"
        require_positive(function, "qty_lots", qty_lots)
        require_positive(function, "leverage", leverage)
        s = side.sign
        numerator = entry_value_atoms * (
            leverage * RATE_ONE - s * RATE_ONE * RATE_ONE + s * leverage * mmr
        ) - s * (mm_deduction_atoms + extra_margin_atoms) * leverage * RATE_ONE
        denominator = qty_lots * self.atoms_per_tick_lot * leverage * RATE_ONE
        return numerator, denominator

    def cross_liquidation_price_estimate_ticks(
        self, side: Side, qty_lots: int, mark_price_ticks: int, margin_balance_atoms: int,
        total_mm_atoms: int, mmr: int,
    ) -> int | None:
        """Solve ``MB(P) = sum MM(P)`` for this mark (spec §2.2 [drv]).

        ``P = MP - s * (MB - sum MM) * R / (q * a * (R - s*MMR))`` ticks, rounded toward the
        mark. None when there is no position, or when a long's MMR is at least 100% (no price
        solves).

        ``MP`` is whole, so rounding toward the mark (a long's up, a short's down) is
        ``MP - s * floor(x*R / (q*a*m))`` with ``x = MB - sum MM``, ``m = R - s*MMR``, taken
        as ``floor(floor(x*R/m) / (q*a))``: compiled, a machine word's (`mul_div_floor`).
        """
        if qty_lots <= 0:
            return None
        s = side.sign
        mm_factor = RATE_ONE - s * mmr
        if mm_factor <= 0:
            return None
        unit = qty_lots * self.atoms_per_tick_lot
        shift = mul_div_floor(margin_balance_atoms - total_mm_atoms, RATE_ONE, mm_factor) // unit
        return mark_price_ticks - shift if side is Side.BUY else mark_price_ticks + shift

    def cross_liquidation_price_legacy_ticks(
        self, side: Side, entry_price_ticks: int, qty_lots: int, available_atoms: int,
        im_atoms: int, mm_atoms: int,
    ) -> int | None:
        """``LP = EP - s * (available + IM - MM) / q`` (spec §2.2, [B-LIQ-USDT-OLD]).

        I.e. ``(EP*q*a - s(available + IM - MM)) / (q*a)`` ticks, rounded toward the mark.
        None when there is no position.
        """
        if qty_lots <= 0:
            return None
        unit = qty_lots * self.atoms_per_tick_lot
        numerator = entry_price_ticks * unit - side.sign * (available_atoms + im_atoms - mm_atoms)
        return round_liquidation_price(side, numerator, unit)


# The linear maths of values already in the settle coin: what the value-only helpers of
# `perpx.core.calc` (kept for callers that hold values, not prices) delegate to. The tick
# scale never enters a value-only formula, so one lot-tick atom serves.
LINEAR_VALUE_MATHS: Final = LinearContract(1)


# --- inverse contracts --------------------------------------------------------------------------

# The price returned where none exists: a short inverse position at 1x (or with margin beyond
# its entry value) has no bankruptcy or liquidation price, as ``C/BP = C/EP - M <= 0`` puts it
# at infinity (next-mechanics §1.5: "At 1x a short never goes bankrupt: BP = inf"). Far above
# any instrument's maxPrice in ticks, so a mark never reaches it and a display shows "".
UNREACHABLE_PRICE_TICKS: Final = 10**18


def round_half_up(numerator: int, denominator: int) -> int:
    """Divide rounding to the nearest integer, halves up: ``floor((2N + D) / 2D)``."""
    return div_floor(2 * numerator + denominator, 2 * denominator)


class InverseContract(ContractMaths):
    """Coin-margined inverse contracts (BTCUSD): value ``C / P`` in the base coin.

    ``k`` is `atoms_ticks_per_lot`: one lot at a price of one tick is worth ``k`` atoms of
    the settle coin, so ``q`` lots at ``P`` ticks are worth ``q*k/P`` atoms (BTCUSD: lot 1 USD,
    tick 0.1 USD, so ``k = 10**8 * 10**8 / 10**7 = 10**9``; next-mechanics §1.2 "PV = C/P").
    The value is not exact, so every use picks a rounding:

    - requirements and charges (IM, MM, fees, funding paid) start from `value_ceil_atoms`,
      credits (funding received) from `value_floor_atoms` (contract.py's rule);
    - the value a *fill* adds to or takes from a position (`entry_value_atoms`, also the exit
      value of a close) is rounded half up, next-mechanics §7 N1 ("values, P&L and estimates
      are rounded half-up to 8 dp"), and is the same integer for buyer and seller, so P&L is
      zero-sum and each coin is conserved exactly (`Clearing.check_invariants`);
    - the unrealised P&L at the mark, an estimate of a credit, rounds down:
      ``floor(s * (EV - C/MP))`` (seed 004's 0.01543209; Bybit's API -0.00029413, I10).

    The value falls as the price rises (`value_sign` -1): a long gains ``EV - C/X`` (spec §1.2
    ``C(1/EP - 1/X)``), and the average entry is the harmonic mean ``C / EV``
    (``sum C_i / sum C_i/P_i``). Prices solved from coin amounts (bankruptcy, liquidation)
    are ``C / coin amount``; where the coin amount is not positive there is no such price
    (`UNREACHABLE_PRICE_TICKS`, or None where the interface allows it). Rounding of prices
    follows contract.py's rule: liquidation toward the mark, bankruptcy away from it.
    """

    __slots__ = ("atoms_ticks_per_lot",)

    def __init__(self, atoms_ticks_per_lot: int) -> None:
        require_positive("InverseContract", "atoms_ticks_per_lot", atoms_ticks_per_lot)
        self.atoms_ticks_per_lot = atoms_ticks_per_lot

    def __repr__(self) -> str:
        return f"InverseContract(atoms_ticks_per_lot={self.atoms_ticks_per_lot})"

    @property
    def value_sign(self) -> int:
        """-1: an inverse value ``C/P`` falls as the price rises."""
        return -1

    def _qk(self, qty_lots: int) -> int:
        return qty_lots * self.atoms_ticks_per_lot

    # -- values and entry --------------------------------------------------------------------

    def value_floor_atoms(self, price_ticks: int, qty_lots: int) -> int:
        """``floor(q*k / P)`` atoms (spec §1.2, PV = C/P), a credit's base."""
        require_positive("value_floor_atoms", "price_ticks", price_ticks)
        return div_floor(self._qk(qty_lots), price_ticks)

    def value_ceil_atoms(self, price_ticks: int, qty_lots: int) -> int:
        """``ceil(q*k / P)`` atoms, a requirement's or charge's base."""
        require_positive("value_ceil_atoms", "price_ticks", price_ticks)
        return div_ceil(self._qk(qty_lots), price_ticks)

    def entry_value_atoms(self, price_ticks: int, qty_lots: int) -> int:
        """``round_half_up(q*k / P)``: a fill's coin value, the same for both sides (§7 N1)."""
        require_positive("entry_value_atoms", "price_ticks", price_ticks)
        return round_half_up(self._qk(qty_lots), price_ticks)

    def value_fraction_atoms(self, qty_lots: int, price_numerator: int,
                             price_denominator: int) -> tuple[int, int]:
        """``q*k / (N/D) = q*k*D / N`` atoms, exact, as (numerator, denominator)."""
        require_positive("value_fraction_atoms", "price numerator", price_numerator)
        return self._qk(qty_lots) * price_denominator, price_numerator

    def qty_for_value_lots(self, price_ticks: int, value_atoms: int) -> int:
        """``ceil(V * P / k)`` lots: the fewest whose value at `price_ticks` reaches V."""
        return div_ceil(value_atoms * price_ticks, self.atoms_ticks_per_lot)

    def loss_limit_price_ticks(self, side: Side, qty_lots: int, price_ticks: int,
                               loss_atoms: int) -> int:
        """Return the furthest price where `side` loses at most `loss_atoms` from `price_ticks`.

        A long loses ``qk/X - qk/P`` below P: ``X >= qk*P / (qk + loss*P)``, rounded up; a
        short loses ``qk/P - qk/X`` above P: ``X <= qk*P / (qk - loss*P)``, rounded down, and
        without bound when ``loss*P >= qk`` (the whole value at P: a short cannot lose more).
        """
        qk = self._qk(qty_lots)
        if side is Side.BUY:
            return div_ceil(qk * price_ticks, qk + loss_atoms * price_ticks)
        room = qk - loss_atoms * price_ticks
        if room <= 0:
            return UNREACHABLE_PRICE_TICKS
        return div_floor(qk * price_ticks, room)

    def average_entry_fraction(self, entry_value_atoms: int, qty_lots: int) -> tuple[int, int]:
        """``EP = q*k / EV`` ticks, the harmonic mean ``sum C_i / sum C_i/P_i`` (§1.2)."""
        require_positive("average_entry_price_ticks", "qty_lots", qty_lots)
        require_positive("average_entry_price_ticks", "entry_value_atoms", entry_value_atoms)
        numerator = self._qk(qty_lots)
        common = gcd(numerator, entry_value_atoms)
        return div_floor(numerator, common), div_floor(entry_value_atoms, common)

    def average_entry_display_ticks(self, entry_value_atoms: int, qty_lots: int) -> int:
        """``q*k / EV`` rounded half up to a tick, for display only (I1: 5,625.00)."""
        numerator, denominator = self.average_entry_fraction(entry_value_atoms, qty_lots)
        return round_half_up(numerator, denominator)

    # -- P&L -----------------------------------------------------------------------------------

    def unrealised_pnl_atoms(self, side: Side, entry_value_atoms: int, qty_lots: int,
                             mark_price_ticks: int) -> int:
        """``floor(s * (EV - q*k/MP))``: long ``C(1/EP - 1/MP)``, short the opposite (§1.2).

        Rounded down, an estimate of a credit: long ``EV - ceil(qk/MP)``, short
        ``floor(qk/MP) - EV``. Seed 004 prints 0.01543209 (10,000 at 8,000, mark 8,100) and
        Bybit's API -0.00029413 (I10), both this floor (docs/decisions.md, on §7 N1).
        """
        if side is Side.BUY:
            return entry_value_atoms - self.value_ceil_atoms(mark_price_ticks, qty_lots)
        return self.value_floor_atoms(mark_price_ticks, qty_lots) - entry_value_atoms

    def realised_pnl_on_close_atoms(self, side: Side, entry_value_atoms: int, qty_lots: int,
                                    close_qty_lots: int, exit_price_ticks: int
                                    ) -> tuple[int, int]:
        """Release ``EV * c / q`` (the entry is unchanged by a reduce) and realise the P&L.

        A long realises ``released - exit value``, a short ``exit value - released``, the
        exit value being the fill's (`entry_value_atoms`). The release rounds in the
        exchange's favour, down for a long and up for a short; closing the rest releases
        exactly what is left.
        """
        require_positive("realized_pnl_on_close_atoms", "qty_lots", qty_lots)
        if not 0 <= close_qty_lots <= qty_lots:
            raise PerpxBug(
                f"realized_pnl_on_close_atoms: close_qty_lots {close_qty_lots} "
                f"outside 0..{qty_lots}"
            )
        exit_value = self.entry_value_atoms(exit_price_ticks, close_qty_lots)
        if side is Side.BUY:
            released = mul_div_floor(entry_value_atoms, close_qty_lots, qty_lots)
            return released - exit_value, released
        released = mul_div_ceil(entry_value_atoms, close_qty_lots, qty_lots)
        return exit_value - released, released

    def settlement_pnl_atoms(self, side: Side, entry_value_atoms: int, qty_lots: int,
                             price_numerator: int, price_denominator: int) -> int:
        """``s * (EV - q*k*D/N)`` atoms, rounded down (next-mechanics §2.5, inverse form).

        The value at the delivery price ``N/D`` ticks is the exact fraction ``q*k*D/N``; a
        long gains ``EV`` less its ceiling and a short its floor less ``EV``, so neither is
        overpaid (the linear form's rule, with the value falling as the price rises).
        """
        numerator, denominator = self.value_fraction_atoms(qty_lots, price_numerator,
                                                           price_denominator)
        if side is Side.BUY:
            return entry_value_atoms - div_ceil(numerator, denominator)
        return div_floor(numerator, denominator) - entry_value_atoms

    def order_loss_atoms(self, side: Side, mark_price_ticks: int, order_price_ticks: int,
                         qty_lots: int) -> int:
        """Buy ``min(0, qk/P - qk/MP)``, sell ``min(0, qk/MP - qk/P)`` atoms.

        The uPnL of the order filled at its price, valued at the mark; the loss rounded to
        the larger (each value toward it). Only a buy above the mark or a sell below it has a
        loss, as the clearing's sums and `can_open` take it: at or past the mark the two
        rounded values could differ by an atom and show a loss that is not there.
        """
        if (order_price_ticks <= mark_price_ticks if side is Side.BUY
                else order_price_ticks >= mark_price_ticks):
            return 0
        if side is Side.BUY:
            loss = (self.value_floor_atoms(order_price_ticks, qty_lots)
                    - self.value_ceil_atoms(mark_price_ticks, qty_lots))
        else:
            loss = (self.value_floor_atoms(mark_price_ticks, qty_lots)
                    - self.value_ceil_atoms(order_price_ticks, qty_lots))
        return min(0, loss)

    def break_even_price_ticks(self, side: Side, entry_value_atoms: int, qty_lots: int,
                               realised_pnl_atoms: int, taker_fee_rate: int) -> int | None:
        """Return the price at which closing at the taker fee nets zero (Bybit's rule, in coin).

        Long: ``EV - C/X - f*C/X + Rz = 0``, so ``X = C(1 + f) / (EV + Rz)``; short:
        ``C/X - EV - f*C/X + Rz = 0``, so ``X = C(1 - f) / (EV - Rz)``, with ``f =
        max(taker fee, 0.055%)`` (spec §12). Rounded half up (a displayed figure); None when
        no positive price solves.
        """
        require_positive("break_even_price_ticks", "qty_lots", qty_lots)
        rate = max(taker_fee_rate, BREAK_EVEN_MIN_FEE_RATE)
        s = side.sign
        numerator = self._qk(qty_lots) * (RATE_ONE + s * rate)
        denominator = (entry_value_atoms + s * realised_pnl_atoms) * RATE_ONE
        if numerator <= 0 or denominator <= 0:
            return None
        return round_half_up(numerator, denominator)

    # -- fees ----------------------------------------------------------------------------------

    def fill_fee_atoms(self, price_ticks: int, qty_lots: int, fee_rate: int) -> int:
        """``ceil(ceil(q*k/P) * f / R)`` atoms (§1.3, ``C/execPrice x rate``), a charge."""
        return apply_rate_ceil(self.value_ceil_atoms(price_ticks, qty_lots), fee_rate)

    def fee_to_close_atoms(self, side: Side, entry_value_atoms: int, leverage: int,
                           taker_fee_rate: int) -> int:
        """``FTC = ceil(EV * (L + s*R) * f / (L * R))`` atoms: ``C/BP x f`` (§1.3).

        With the unrounded bankruptcy price ``EP*L/(L + s)``, ``C/BP = EV(1 + s/L)``: the
        inverse sign of perp-mechanics §1.1 ("+ for buy"). A short at 1x has none (BP = inf).
        """
        require_positive("fee_to_close", "leverage", leverage)
        return div_ceil(
            entry_value_atoms * (leverage + side.sign * RATE_ONE) * taker_fee_rate,
            leverage * RATE_ONE,
        )

    def fee_reserve_atoms(self, side: Side, entry_value_atoms: int, qty_lots: int,
                          part_lots: int, times: int, leverage: int, taker_fee_rate: int) -> int:
        """``ceil(times * EV * part * (L + s*R) * f / (q * L * R))`` atoms (hedge reserve)."""
        return div_ceil(
            times * entry_value_atoms * part_lots * (leverage + side.sign * RATE_ONE)
            * taker_fee_rate,
            qty_lots * leverage * RATE_ONE,
        )

    # -- margins -------------------------------------------------------------------------------

    def position_margin_atoms(self, side: Side, value_atoms: int, leverage: int,
                              taker_fee_rate: int) -> int:
        """``ceil(V*R/L) + FTC`` atoms (§1.4 "Position IM = C/MP/L + C/BP*f_t")."""
        return (initial_margin_for_value_atoms(value_atoms, leverage)
                + self.fee_to_close_atoms(side, value_atoms, leverage, taker_fee_rate))

    def order_cost_atoms(self, side: Side, value_atoms: int, leverage: int,
                         taker_fee_rate: int) -> int:
        """``C/(P*L) + C/P*f + C/BP(P)*f`` atoms (§1.4, B-COST-INV), parts rounded up apart.

        ``BP`` unrounded: ``C/BP = V(1 + s/L)`` (see docs/decisions.md on §7 N2).
        """
        return (self.position_margin_atoms(side, value_atoms, leverage, taker_fee_rate)
                + fee_for_value_atoms(value_atoms, taker_fee_rate))

    def qty_for_cost_lots(self, side: Side, price_ticks: int, cost_atoms: int, leverage: int,
                          taker_fee_rate: int) -> int:
        """``q = floor(cost * L * R * P / (k * (R*R + 2*f*L + s*f*R)))`` lots.

        The inverse of the exact cost ``V(1/L + f + (1 + s/L) f)`` with ``V = q*k/P``; then
        stepped down while the rounded-up parts still exceed `cost_atoms`.
        """
        require_positive("qty_for_cost_lots", "price_ticks", price_ticks)
        require_positive("qty_for_cost_lots", "leverage", leverage)
        if cost_atoms <= 0:
            return 0
        per_lot = self.atoms_ticks_per_lot * (
            RATE_ONE * RATE_ONE
            + 2 * taker_fee_rate * leverage
            + side.sign * taker_fee_rate * RATE_ONE
        )
        qty = div_floor(cost_atoms * leverage * RATE_ONE * price_ticks, per_lot)
        while qty > 0 and self.order_cost_atoms(
                side, self.value_ceil_atoms(price_ticks, qty), leverage,
                taker_fee_rate) > cost_atoms:
            qty -= 1
        return qty

    # -- prices --------------------------------------------------------------------------------

    def bankruptcy_price_ticks(self, side: Side, entry_price_ticks: int, leverage: int) -> int:
        """``BP = EP * L / (L + s*R)`` ticks: ``EP*L/(L+1)`` long, ``EP*L/(L-1)`` short.

        Spec perp-mechanics §1.3 (I13: 7,890.08 at 50x -> 7,735.3725). Rounded away from the
        mark (`round_bankruptcy_price`); a short at 1x has none (`UNREACHABLE_PRICE_TICKS`).
        """
        require_positive("bankruptcy_price_ticks", "leverage", leverage)
        denominator = leverage + side.sign * RATE_ONE
        if denominator <= 0:
            return UNREACHABLE_PRICE_TICKS
        return round_bankruptcy_price(side, entry_price_ticks * leverage, denominator)

    def bankruptcy_price_for_margin_ticks(self, side: Side, entry_value_atoms: int,
                                          qty_lots: int, margin_atoms: int) -> int:
        """``BP = q*k / (EV + s * margin)`` ticks: where the loss equals the margin (§1.5).

        Long ``C/BP = C/EP + M``, short ``C/BP = C/EP - M``; rounded away from the mark; none
        (`UNREACHABLE_PRICE_TICKS`) when a short's margin reaches its entry value.
        """
        require_positive("bankruptcy_price_for_margin_ticks", "qty_lots", qty_lots)
        coin = entry_value_atoms + side.sign * margin_atoms
        if coin <= 0:
            return UNREACHABLE_PRICE_TICKS
        return round_bankruptcy_price(side, self._qk(qty_lots), coin)

    def isolated_margin_call_price_fraction(
        self, side: Side, entry_value_atoms: int, qty_lots: int, margin_atoms: int,
        fee_to_close_atoms: int, mmr: int, mm_deduction_atoms: int,
    ) -> tuple[int, int]:
        """Solve ``margin + uPnL(P) = (qk/P)*MMR - ded + FTC + 3`` for the mark.

        ``P = q*k*(R + s*MMR) / ((EV + s(margin - FTC + ded - 3)) * R)`` ticks. The 3 atoms
        cover the roundings of the engine's figures (uPnL's, MM's value's and MM's rate
        part's, each under one atom), so at any mark where ``margin + uPnL <= MM`` the mark
        is at or beyond this price. Exact, as (numerator, denominator > 0);
        `UNREACHABLE_PRICE_TICKS` when no price solves (a short whose margin covers its whole
        value).
        """
        function = "isolated_margin_call_price"
        require_positive(function, "qty_lots", qty_lots)
        s = side.sign
        coin = entry_value_atoms + s * (margin_atoms - fee_to_close_atoms
                                        + mm_deduction_atoms - _INVERSE_CALL_SLACK)
        if coin <= 0:
            return UNREACHABLE_PRICE_TICKS, 1
        return self._qk(qty_lots) * (RATE_ONE + s * mmr), coin * RATE_ONE

    def isolated_margin_call_trigger_ticks(
        self, side: Side, entry_value_atoms: int, qty_lots: int, margin_atoms: int,
        fee_to_close_atoms: int, envelope: MaintenanceEnvelope, first_ticks: int,
    ) -> int:
        """Return the first the mark reaches of `first_ticks` and each line's margin call.

        Each line's `isolated_margin_call_price_fraction` rounded toward the mark; a long
        keeps the highest, a short the lowest. Every line is walked: no inverse ladder in
        the benchmarks has more than a few tiers, so the envelope's search (the linear
        contract's) would not pay here (docs/decisions.md, #14).
        """
        trigger = first_ticks
        for mmr, deduction in envelope.lines:
            numerator, denominator = self.isolated_margin_call_price_fraction(
                side, entry_value_atoms, qty_lots, margin_atoms, fee_to_close_atoms,
                mmr, deduction)
            price = round_liquidation_price(side, numerator, denominator)
            if (price > trigger) if side is Side.BUY else (price < trigger):
                trigger = price
        return trigger

    def isolated_liquidation_price_fraction(
        self, side: Side, entry_value_atoms: int, qty_lots: int, leverage: int,
        extra_margin_atoms: int, mmr: int, mm_deduction_atoms: int, taker_fee_rate: int,
    ) -> tuple[int, int]:
        """Return the LP by the 2026 UTA form (§1.5, B-LIQ-ISO-UTA; §7 N16), MM at the LP.

        ``LP_long = C(1+MMR) / [C/EP + C/EP/L + extra/(1+f) + ded]`` and
        ``LP_short = C(1-MMR) / [C/EP - C/EP/L - extra/(1-f) - ded]``, i.e. in integers
        ``N = q*k*(R + s*MMR)*L*(R + s*f)`` over
        ``D = [EV(L + sR)(R + sf) + s*extra*R*L + s*ded*L(R + sf)] * R``. I7: 45,681.82.
        `UNREACHABLE_PRICE_TICKS` when the short's bracket is not positive.
        """
        function = "isolated_liquidation_price"
        require_positive(function, "qty_lots", qty_lots)
        require_positive(function, "leverage", leverage)
        s = side.sign
        fee_factor = RATE_ONE + s * taker_fee_rate
        require_positive(function, "1 +/- taker fee rate", fee_factor)
        coin = (entry_value_atoms * (leverage + s * RATE_ONE) * fee_factor
                + s * extra_margin_atoms * RATE_ONE * leverage
                + s * mm_deduction_atoms * leverage * fee_factor)
        if coin <= 0:
            return UNREACHABLE_PRICE_TICKS, 1
        return (self._qk(qty_lots) * (RATE_ONE + s * mmr) * leverage * fee_factor,
                coin * RATE_ONE)

    def isolated_liquidation_price_legacy_fraction(
        self, side: Side, entry_value_atoms: int, qty_lots: int, leverage: int,
        extra_margin_atoms: int, mmr: int, mm_deduction_atoms: int,
    ) -> tuple[int, int]:
        """Return the LP by the 2024 UTA form (§1.5, B-LIQ-ISO-UTA-2024), MM at entry.

        ``LP = C / [PV + s(IM - MM + extra)]`` with ``PV = EV``, ``IM = PV/L``,
        ``MM = PV*MMR - ded`` (extra inside the bracket, §7 N16); in integers ``N = q*k*L*R``
        over ``D = EV*L*R + s(EV*R*R - EV*MMR*L + (ded + extra)*L*R)``. I7: 45,662.10.
        """
        function = "isolated_liquidation_price_legacy"
        require_positive(function, "qty_lots", qty_lots)
        require_positive(function, "leverage", leverage)
        s = side.sign
        coin = (entry_value_atoms * leverage * RATE_ONE
                + s * (entry_value_atoms * RATE_ONE * RATE_ONE - entry_value_atoms * mmr * leverage
                       + (mm_deduction_atoms + extra_margin_atoms) * leverage * RATE_ONE))
        if coin <= 0:
            return UNREACHABLE_PRICE_TICKS, 1
        return self._qk(qty_lots) * leverage * RATE_ONE, coin

    def cross_liquidation_price_estimate_ticks(
        self, side: Side, qty_lots: int, mark_price_ticks: int, margin_balance_atoms: int,
        total_mm_atoms: int, mmr: int,
    ) -> int | None:
        """Solve ``MB(P) = sum MM(P)`` for this mark, the others fixed (§1.5, MECH-§2.2).

        ``qk(R + s*MMR)/P = qk(R + s*MMR)/MP + s(MB - sum MM)R``, so
        ``P = qk(R + s*MMR)*MP / (qk(R + s*MMR) + s(MB - sum MM)*R*MP)``, rounded toward the
        mark. None without a position or when no price solves.
        """
        if qty_lots <= 0:
            return None
        s = side.sign
        weight = self._qk(qty_lots) * (RATE_ONE + s * mmr)
        denominator = weight + s * (margin_balance_atoms - total_mm_atoms) * RATE_ONE \
            * mark_price_ticks
        if weight <= 0 or denominator <= 0:
            return None
        return round_liquidation_price(side, weight * mark_price_ticks, denominator)

    def cross_liquidation_price_legacy_ticks(
        self, side: Side, entry_price_ticks: int, qty_lots: int, available_atoms: int,
        im_atoms: int, mm_atoms: int,
    ) -> int | None:
        """``C(1/EP - 1/LP) = -(available + IM - MM)`` for a long, the opposite for a short.

        The linear rule's "loss at LP = available + IM - MM" in coin (§1.5, B-LIQ-INV-OLD):
        ``LP = qk*EP / (qk + s(available + IM - MM)*EP)``, rounded toward the mark. None
        without a position or when no price solves.
        """
        if qty_lots <= 0:
            return None
        qk = self._qk(qty_lots)
        denominator = qk + side.sign * (available_atoms + im_atoms - mm_atoms) * entry_price_ticks
        if denominator <= 0:
            return None
        return round_liquidation_price(side, qk * entry_price_ticks, denominator)


# Atoms of slack in an inverse margin call (`InverseContract.isolated_margin_call_price_fraction`):
# the uPnL rounded down, MM's value rounded up (times MMR) and MM's rate part rounded up, each
# under one atom.
_INVERSE_CALL_SLACK: Final = 3

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

from collections.abc import Sequence
from math import gcd
from typing import Final, Protocol

from perpx.core.enums import Side
from perpx.core.errors import PerpxBug, require_positive
from perpx.core.numbers import (
    RATE_ONE,
    apply_rate_ceil,
    div_ceil,
    div_floor,
    mul_div_ceil,
    mul_div_floor,
)

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


# --- the interface ----------------------------------------------------------------------------


class MaintenanceLine(Protocol):
    """One line of maintenance margin, ``V * mmr - deduction``: a risk-limit tier's."""

    @property
    def mmr(self) -> int:
        """The maintenance margin rate, 10**-8."""
        ...

    @property
    def mm_deduction_atoms(self) -> int:
        """The deduction, atoms."""
        ...


class ContractMaths:
    """The formulas of one contract type, in integer ticks, lots and settle-coin atoms.

    A base class, not a Protocol: compiled by mypyc, a call through a base class is a
    vtable call, through a Protocol a generic Python method call, and these run on every
    fill. Each contract type subclasses it.
    """

    __slots__ = ()

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
    def initial_margin_atoms(self, value_atoms: int, leverage: int) -> int:
        """Return the initial margin of a value at a leverage."""
        raise NotImplementedError

    def maintenance_margin_atoms(self, value_atoms: int, mmr: int, mm_deduction_atoms: int,
                                 fee_to_close: int) -> int:
        """Return the maintenance margin of a value at a tier's rate and deduction."""
        raise NotImplementedError

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
        fee_to_close_atoms: int, lines: Sequence[MaintenanceLine], first_ticks: int,
    ) -> int:
        """Return the first mark reached of `first_ticks` and every line's margin call."""
        raise NotImplementedError

    def isolated_liquidation_price_fraction(
        self, side: Side, entry_value_atoms: int, qty_lots: int, leverage: int,
        extra_margin_atoms: int, mmr: int, mm_deduction_atoms: int, taker_fee_rate: int,
    ) -> tuple[int, int]:
        """Return the exact isolated liquidation price by the current UTA formula."""
        raise NotImplementedError

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
        """``uPnL = s * (q*MP*a - EV)`` atoms, exact because the position keeps ``EV``."""
        return side.sign * (mark_price_ticks * qty_lots * self.atoms_per_tick_lot
                            - entry_value_atoms)

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

    def order_loss_atoms(self, side: Side, mark_price_ticks: int, order_price_ticks: int,
                         qty_lots: int) -> int:
        """Buy ``min(0, (MP - P) * q * a)``, sell ``min(0, (P - MP) * q * a)`` atoms.

        Exact (spec §0, seed 001).
        """
        return min(0, side.sign * (mark_price_ticks - order_price_ticks) * qty_lots
                   * self.atoms_per_tick_lot)

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
        """
        require_positive("fee_to_close", "leverage", leverage)
        return div_ceil(
            entry_value_atoms * (leverage - side.sign * RATE_ONE) * taker_fee_rate,
            leverage * RATE_ONE,
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

    def initial_margin_atoms(self, value_atoms: int, leverage: int) -> int:
        """``IM = ceil(V * R / L)`` (spec §1.1)."""
        return initial_margin_for_value_atoms(value_atoms, leverage)

    def maintenance_margin_atoms(self, value_atoms: int, mmr: int, mm_deduction_atoms: int,
                                 fee_to_close: int) -> int:
        """``MM = ceil(V * MMR / R) - ded + FTC`` (spec §1.2)."""
        return maintenance_margin_for_value_atoms(value_atoms, mmr, mm_deduction_atoms,
                                                  fee_to_close)

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
        fee_to_close_atoms: int, lines: Sequence[MaintenanceLine], first_ticks: int,
    ) -> int:
        """Return the first the mark reaches of `first_ticks` and each line's margin call.

        Each line's `isolated_margin_call_price_fraction` rounded toward the mark (a long's
        up, a short's down); a long keeps the highest, a short the lowest. Written out with
        the terms every line shares taken out of the loop (the risk index asks this for every
        isolated position whose size, entry or margin moved, and a ladder has dozens of
        tiers); the property tests hold it equal to the per-line fraction, rounded.
        """
        function = "isolated_margin_call_price"
        require_positive(function, "qty_lots", qty_lots)
        qa = qty_lots * self.atoms_per_tick_lot
        trigger = first_ticks
        if side is Side.BUY:
            # N = (EV - (margin - FTC + ded - 1)) * R, D = q*a*(R - MMR); ceil(N / D).
            base = entry_value_atoms - margin_atoms + fee_to_close_atoms + 1
            for line in lines:
                mm_factor = RATE_ONE - line.mmr
                require_positive(function, "1 -/+ MMR", mm_factor)
                price = -((line.mm_deduction_atoms - base) * RATE_ONE // (qa * mm_factor))
                if price > trigger:
                    trigger = price
        else:
            # N = (EV + (margin - FTC + ded - 1)) * R, D = q*a*(R + MMR); floor(N / D).
            base = entry_value_atoms + margin_atoms - fee_to_close_atoms - 1
            for line in lines:
                mm_factor = RATE_ONE + line.mmr
                require_positive(function, "1 -/+ MMR", mm_factor)
                price = (base + line.mm_deduction_atoms) * RATE_ONE // (qa * mm_factor)
                if price < trigger:
                    trigger = price
        return trigger

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
        """
        if qty_lots <= 0:
            return None
        s = side.sign
        mm_factor = RATE_ONE - s * mmr
        if mm_factor <= 0:
            return None
        unit = qty_lots * self.atoms_per_tick_lot
        numerator = (
            mark_price_ticks * unit * mm_factor
            - s * (margin_balance_atoms - total_mm_atoms) * RATE_ONE
        )
        return round_liquidation_price(side, numerator, unit * mm_factor)

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

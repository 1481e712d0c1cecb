"""Margin maths every margin mode shares: order margin.

Open orders hold margin the same way in every mode (`order_margin_atoms`); how positions
count, and what is available, is each mode's rule (`perpx.core.account.margin_model`), answered in
the records of `perpx.core.account.risk_value`.
Requirements round up; the figures are exact integers in atoms.
"""

from __future__ import annotations

from typing import Any, Final

from perpx.core.account.accounts import DEFAULT_LEVERAGE, Account
from perpx.core.contract import OrderCostRates
from perpx.core.enums import Side
from perpx.core.instruments import InstrumentSpec
from perpx.core.numbers import RATE_ONE, mul_div_ceil

_BUY: Final = Side.BUY


def opposite_position_lots(account: Account, symbol: str, position_idx: int, side: Side) -> int:
    """Return how much of an order on `side` would close an existing position, not open one."""
    if position_idx != 0:
        return 0  # hedge mode: opening orders never close (closing ones are reduce-only)
    position = account.position(symbol, 0)
    if position is None:
        return 0
    size = position.size_lots
    if side is _BUY:
        return -size if size < 0 else 0
    return size if size > 0 else 0


def order_cost_fast_atoms(sign: int, value_atoms: int, leverage: int, fee_rate: int) -> int:
    """Return `calc.order_cost_for_value_atoms` in one expression, as the hot path computes it.

    The same three parts, each rounded up on its own: ``ceil(V*R/L)`` (IM),
    ``ceil(V*(L - s*R)*f / (L*R))`` (fee to close) and ``ceil(V*f/R)`` (fee to open); `sign`
    is the side's sign times the contract's `value_sign` (+1 for a linear buy or an inverse
    sell: the value at the bankruptcy price is ``V(1 - 1/L)``), and `leverage` is positive
    (settings refuse any other). Computed with the rates in lowest terms (`OrderCostRates`);
    the hot path keeps those per spec and leverage (`InstrumentSpec.terms_at`). The property
    tests check it against the layered formula.
    """
    return OrderCostRates(sign, leverage, fee_rate).cost_atoms(value_atoms)


def order_margin_atoms(account: Account, spec: InstrumentSpec) -> int:
    """Return the margin held by an account's open orders on one symbol (opening parts only).

    Kept per symbol in `account.order_margin_cache` until an order, a position or the
    leverage of the symbol moves, and per side group in its ``memo_*`` fields with the inputs
    it was computed from; the formulas are `calc.order_cost_for_value_atoms` and
    `opposite_position_lots`, written out (`order_cost_fast_atoms`, through its rates). The
    one-way position and leverage are read once per call, shared by both side groups.
    """
    symbol = spec.symbol
    cached = account.order_margin_cache.get(symbol)
    if cached is not None:
        return cached
    total = 0
    leverages = account.leverage
    keys = spec.keys
    value_sign = spec.contract.value_sign
    # The one-way position and leverage (index 0, where nearly every order is), each looked up
    # once per call and only when a group needs it, not once per side group: compiled, a dict
    # lookup by a tuple key hashes the tuple anew each time.
    size0 = 0
    size0_found = False
    leverage0 = 0
    for key, sums in account.order_sums.items():
        leaves = sums.leaves_lots
        if key[0] != symbol or not leaves:
            continue
        idx = key[1]
        sign = 1 if key[2] is _BUY else -1
        closing = 0
        if idx == 0:
            if not size0_found:
                position = account.positions.get(keys.position(0))
                size0 = 0 if position is None else position.size_lots
                size0_found = True
            # A one-way order against the position closes it first: no margin for that.
            if (size0 < 0) if sign > 0 else (size0 > 0):
                closing = size0 if size0 > 0 else -size0
        opening = leaves - closing
        if opening <= 0:
            continue
        notional = sums.notional_atoms
        if idx == 0 and leverage0:
            leverage = leverage0
        else:
            # No default in the lookup, and an int variable apart from the lookup's: compiled,
            # either way the default would be boxed anew at each call. An empty table (the
            # default leverage everywhere) is not looked up.
            found = leverages.get(keys.position(idx)) if leverages else None
            leverage = DEFAULT_LEVERAGE if found is None else found
            if idx == 0:
                leverage0 = leverage
        if (sums.memo_leaves_lots == leaves and sums.memo_notional_atoms == notional
                and sums.memo_opening_lots == opening and sums.memo_leverage == leverage):
            total += sums.memo_margin_atoms
            continue
        value = mul_div_ceil(notional, opening, leaves)
        # `rates(sign * value_sign)`, chosen by comparing signs: compiled, a product with a
        # negative factor leaves the machine word's fast path.
        terms = spec.terms_at(leverage)
        cost = (terms.plus if (sign > 0) == (value_sign > 0) else terms.minus).cost_atoms(value)
        sums.memo_leaves_lots = leaves
        sums.memo_notional_atoms = notional
        sums.memo_opening_lots = opening
        sums.memo_leverage = leverage
        sums.memo_margin_atoms = cost
        total += cost
    account.order_margin_cache[symbol] = total
    return total


def cost_ceiling_atoms(value_atoms: int, parts: int, leverage: int, fee_rate: int) -> int:
    """Return a bound at or above the cost of `parts` values worth `value_atoms` in all, or -1.

    The cost of each part is `OrderCostRates.cost_atoms` at a leverage of `leverage` or
    more and a taker fee rate of `fee_rate` or less: what an opening order or a side group of
    them costs (`order_cost_fast_atoms`). Two small divisions, no costing: what a margin
    check reads when the balance covers the orders with room to spare
    (`order_margin_ceiling`, for `CrossMargin.can_open`).

    Why it bounds: a part worth ``V`` at a leverage ``L`` costs ``ceil(V*R/L) +
    ceil(V*(L - s*R)*f/(L*R)) + ceil(V*f/R)``. With ``w = leverage // R >= 1`` (so
    ``R/L <= 1/w``) the first is at most ``ceil(V/w) <= floor(V/w) + 1``; with ``f <= 0`` the
    other two are at most 0, and with ``f > 0`` they are at most ``ceil(2*V*f/R) +
    ceil(V*f/R) <= floor(2*V*f/R) + floor(V*f/R) + 2`` (``V*f/R + V*f/L <= 2*V*f/R``). A sum
    of floors is at most the floor of the sum, so the parts cost at most
    ``floor(ΣV/w) + floor(3*ΣV*f/R) + 3*parts``, and with ``k = R // (3*f)``
    (``3*f/R <= 1/k``) at most ``ΣV // w + ΣV // k + 3*parts``. A leverage under 1x (settings
    refuse one) or a fee rate over a third gives -1: no bound.
    """
    if leverage < RATE_ONE:
        return -1
    ceiling = value_atoms // (leverage // RATE_ONE) + parts
    if fee_rate <= 0:
        return ceiling
    if 3 * fee_rate > RATE_ONE:
        return -1
    return ceiling + value_atoms // (RATE_ONE // (3 * fee_rate)) + 2 * parts


def order_margin_ceiling(leverages: dict[Any, int], notional_atoms: int, groups: int,
                         fee_rate: int) -> int:
    """Return a bound at or above `order_margin_atoms` summed over some side groups, or -1.

    The groups are `groups` side groups with leaves worth `notional_atoms` in all, on symbols
    whose taker fee rate is at most `fee_rate`, of an account whose leverage table is
    `leverages` (a group's leverage is its entry there, else `DEFAULT_LEVERAGE`): each is at
    the lowest of those or above. A group's margin is the cost (`cost_ceiling_atoms`) of its
    opening value, at most its notional (``ceil(N*opening/leaves)``, ``0 < opening <=
    leaves``).
    """
    lowest = DEFAULT_LEVERAGE
    if leverages:  # most accounts keep the default leverage: nothing to look at
        for leverage in leverages.values():
            if leverage < lowest:
                lowest = leverage
    return cost_ceiling_atoms(notional_atoms, groups, lowest, fee_rate)

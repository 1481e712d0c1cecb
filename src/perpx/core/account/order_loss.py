"""An account's opening orders on a symbol by price, so a moved mark re-sums only the losers.

An opening order loses (seed 001's order loss) only while a buy rests above the mark or a sell
below it. `OrderLossMemo` keeps, beside the summed loss, the account's opening orders with
leaves in two lists (buys, sells), each sorted by (price, order id); a moved mark re-sums the
buys from the top down to the mark and the sells from the bottom up to it: O(k) for the k
orders that lose, where a scan visits all n (issue #14: a scan per moved mark was 21% of the
journal bench's order flow). One pointer an order, ~9 bytes with the lists' spare room; the
dict of price levels tried before cost ~95.

Each order's term is its own (`order_loss_term`): an inverse contract rounds each order's
loss, so lots at one price may not be summed first. The key is unique per resting order: an
amend that queues anew takes the old record out before its twin (same id) rests.
"""

from __future__ import annotations

from typing import Final

from perpx.core.book.order import RestingOrder
from perpx.core.contract import ContractMaths, LinearContract
from perpx.core.enums import Side
from perpx.core.errors import InvariantViolation

_BUY: Final = Side.BUY
_SELL: Final = Side.SELL


def order_loss_term(contract: ContractMaths, mark: int, side: Side, price: int,
                    leaves_lots: int) -> int:
    """Return one opening order's order loss at `mark` with `leaves_lots` left: the one rule.

    Only a buy above the mark or a sell below it loses anything; the contract's own method,
    called natively (a bound method in a local is a generic Python call when compiled).
    """
    if leaves_lots and (price > mark if side is _BUY else price < mark):
        return contract.order_loss_atoms(side, mark, price, leaves_lots)
    return 0


def order_loss_change(contract: ContractMaths, mark: int, side: Side, price: int,
                      before_lots: int, after_lots: int) -> int:
    """Return how an opening order's loss at `mark` moves as its leaves go from one to another.

    ``order_loss_term(.., after) - order_loss_term(.., before)``: the general form. On a
    linear contract a losing order's term is exactly ``-(gap · q · a)`` (gap in ticks,
    `LinearContract.order_loss_atoms`), so the change is ``-(gap · Δq · a)`` in one step,
    where each term was a method call (issue #14: every resting, fill and cancel of an
    account whose order loss is kept passes here). A property test holds both to the terms'
    difference.
    """
    if isinstance(contract, LinearContract):
        if side is _BUY:
            if price <= mark:
                return 0
            gap = price - mark
        else:
            if price >= mark:
                return 0
            gap = mark - price
        # Products of non-negative factors: compiled, a negative factor leaves the machine
        # word's fast path.
        if after_lots >= before_lots:
            return -(gap * (after_lots - before_lots) * contract.atoms_per_tick_lot)
        return gap * (before_lots - after_lots) * contract.atoms_per_tick_lot
    return (order_loss_term(contract, mark, side, price, after_lots)
            - order_loss_term(contract, mark, side, price, before_lots))


def _place_of(orders: list[RestingOrder], price: int, order_id: int) -> int:
    """Return the first index in `orders` whose (price, id) is not below (`price`, `order_id`).

    Written out rather than `bisect` with a key: compiled, the fields are native reads and no
    key object is made per probe.
    """
    low = 0
    high = len(orders)
    while low < high:
        middle = (low + high) >> 1
        other = orders[middle]
        other_price = other.price_ticks
        if other_price < price or (other_price == price and other.order_id < order_id):
            low = middle + 1
        else:
            high = middle
    return low


def list_order(orders: list[RestingOrder], order: RestingOrder) -> None:
    """Put `order` in its place in `orders` (one side's, sorted by price and id)."""
    orders.insert(_place_of(orders, order.price_ticks, order.order_id), order)


def unlist_order(orders: list[RestingOrder], order: RestingOrder) -> None:
    """Take `order` (this very record) out of `orders`."""
    price = order.price_ticks
    order_id = order.order_id
    at = _place_of(orders, price, order_id)
    count = len(orders)
    while at < count:
        other = orders[at]
        if other is order:
            del orders[at]
            return
        if other.price_ticks != price or other.order_id != order_id:
            break
        at += 1
    raise InvariantViolation(f"order loss: order {order_id} is not listed at {price}")


def listed_orders(orders: list[RestingOrder]) -> tuple[list[RestingOrder], list[RestingOrder]]:
    """Return the opening orders with leaves among `orders`, as (buys, sells) in their order."""
    buys: list[RestingOrder] = []
    sells: list[RestingOrder] = []
    for order in orders:
        if order.reduce_only or not order.leaves_lots:
            continue  # a reduce-only order never loses; an order with no leaves neither
        if order.side is _BUY:
            buys.append(order)
        else:
            sells.append(order)
    buys.sort(key=_order_key)
    sells.sort(key=_order_key)
    return buys, sells


def _order_key(order: RestingOrder) -> tuple[int, int]:
    return order.price_ticks, order.order_id


def listed_loss_atoms(contract: ContractMaths, mark: int, buys: list[RestingOrder],
                      sells: list[RestingOrder]) -> int:
    """Return the order loss at `mark` of the listed orders: the buys above it, sells below.

    Visits those and one more per side; the terms are the scan's own (`order_loss_term`),
    or, on a linear contract, their sum taken at once (`linear_listed_loss_atoms`).
    """
    if isinstance(contract, LinearContract):
        return linear_listed_loss_atoms(contract.atoms_per_tick_lot, mark, buys, sells)
    loss = 0
    at = len(buys) - 1
    while at >= 0:
        order = buys[at]
        price = order.price_ticks
        if price <= mark:
            break
        loss += order_loss_term(contract, mark, _BUY, price, order.leaves_lots)
        at -= 1
    for order in sells:
        price = order.price_ticks
        if price >= mark:
            break
        loss += order_loss_term(contract, mark, _SELL, price, order.leaves_lots)
    return loss


def linear_listed_loss_atoms(atoms_per_tick_lot: int, mark: int, buys: list[RestingOrder],
                             sells: list[RestingOrder]) -> int:
    """`listed_loss_atoms` on a linear contract: ``-a · Σ gap · q`` over the losing orders.

    A linear contract's term is exactly ``-(gap · q · a)`` with the gap in ticks
    (`LinearContract.order_loss_atoms`), so the terms' sum is ``-(a · Σ gap · q)``: one
    product at the end, where each term was a method call and three products (~140
    instructions a losing order, re-summed at every moved mark; issue #14). A property test
    holds it to the sum of `order_loss_term`.
    """
    gap_lots = 0  # Σ (P − M)·q over the buys above the mark, (M − P)·q over the sells below
    at = len(buys) - 1
    while at >= 0:
        order = buys[at]
        price = order.price_ticks
        if price <= mark:
            break
        gap_lots += (price - mark) * order.leaves_lots
        at -= 1
    for order in sells:
        price = order.price_ticks
        if price >= mark:
            break
        gap_lots += (mark - price) * order.leaves_lots
    return -(gap_lots * atoms_per_tick_lot)

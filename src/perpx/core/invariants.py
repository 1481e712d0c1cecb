"""The engine's internal consistency, checked after every command by tests (and --paranoid).

Books agree with the open-order index and the per-account sums; money is conserved and open
interest balances (the clearing's own check); waiting orders agree with their trigger index;
resting reduce-only orders never exceed the positions they close; no trigger work is left
over once a command is done. A disagreement raises `InvariantViolation`: it is a bug.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perpx.core.book.order import RestingOrder
from perpx.core.enums import Side
from perpx.core.errors import InvariantViolation
from perpx.core.orders import closing

if TYPE_CHECKING:
    from perpx.core.account.clearing import Clearing
    from perpx.core.market import Market
    from perpx.core.orders.stops import Stops


def check_all(market: Market, clearing: Clearing, stops: Stops) -> None:
    """Raise `InvariantViolation` if any book or index disagrees with the others."""
    in_books: dict[int, RestingOrder] = {}
    for book in market.books.values():
        book.check_invariants()
        for order in book.orders_in_priority():
            in_books[order.order_id] = order
    if in_books.keys() != market.open_orders.keys():
        raise InvariantViolation("open-order index and books disagree")
    for order_id, order in market.open_orders.items():
        if in_books[order_id] is not order:
            raise InvariantViolation(f"order {order_id} indexed but not the one in the book")
        if order.qty_lots != order.filled_lots + order.leaves_lots:
            raise InvariantViolation(f"order {order_id}: qty != filled + leaves")
    indexed = sum(len(m) for by_symbol in market.orders_by_account.values()
                  for m in by_symbol.values())
    if indexed != len(market.open_orders):
        raise InvariantViolation("per-account order index disagrees with open orders")
    clearing.check_invariants()
    _check_order_sums(market, clearing)
    stops.waiting.check_invariants()
    _check_reduce_only(market, clearing, stops)


def _check_reduce_only(market: Market, clearing: Clearing, stops: Stops) -> None:
    """Check that resting reduce-only orders never exceed the positions they close."""
    if stops.busy():
        raise InvariantViolation("trigger work left over after a command")
    recount: dict[tuple[int, str, int, Side], list[int]] = {}
    for order in market.open_orders.values():
        if order.reduce_only:
            key = (order.account_id, order.symbol, order.position_idx, order.side)
            recount.setdefault(key, []).append(order.order_id)
    indexed = {key: sorted(found) for key, found in clearing.reduce_only_orders.items()}
    if indexed != {key: sorted(ids) for key, ids in recount.items()}:
        raise InvariantViolation("reduce-only index disagrees with the open orders")
    for (account_id, symbol, idx, side), found in clearing.reduce_only_orders.items():
        total = sum(order.leaves_lots for order in found.values())
        room = closing.closable_lots(clearing, account_id, symbol, idx, side)
        if total > room:
            raise InvariantViolation(
                f"reduce-only orders of {account_id} {symbol} {idx} {side.name} hold "
                f"{total} lots over a position of {room}")
    if set(stops.waiting.attachments) != clearing.fill_watch:
        raise InvariantViolation("fill watch disagrees with the attached TP/SL")
    for order_id in stops.waiting.attachments:
        if order_id not in market.open_orders and order_id not in stops.waiting.orders:
            raise InvariantViolation(f"TP/SL attached to order {order_id}, which is gone")


def _check_order_sums(market: Market, clearing: Clearing) -> None:
    """Recount every account's open-order sums from the resting orders themselves."""
    expected: dict[tuple[int, str, int, Side], tuple[int, int]] = {}
    for order in market.open_orders.values():
        if order.reduce_only:
            continue
        key = (order.account_id, order.symbol, order.position_idx, order.side)
        leaves, notional = expected.get(key, (0, 0))
        expected[key] = (leaves + order.leaves_lots, notional + market.instruments[
            order.symbol].contract.value_ceil_atoms(order.price_ticks, order.leaves_lots))
    actual = {
        (account.account_id, *key): (sums.leaves_lots, sums.notional_atoms)
        for account in clearing.accounts.values()
        for key, sums in account.order_sums.items()
    }
    if actual != expected:
        raise InvariantViolation(f"open-order sums {actual} != recount {expected}")


"""Closing orders: resting reduce-only orders never add up to more than their position.

Invariant (checked by `Engine.check_invariants` after every command): per account, symbol,
position index and side, the leaves of the resting reduce-only orders sum to at most the
position they can close. A reduce-only order is cut to the room left when placed
(`Clearing.check_order`); a reduce-only maker never fills beyond its position
(`matching.match` asks `reduce_room`); and when a position shrinks, the resting reduce-only
orders over it are cut or cancelled (`CancelByReduceOnly`), the farthest from the market
first, ties the newest first, so the orders most likely to fill keep their place. A
close-on-trigger order makes its own room the same way when it is sent.
"""

from __future__ import annotations

from typing import Final

from perpx.core.account.clearing import Clearing
from perpx.core.book.order import RestingOrder
from perpx.core.enums import CancelReason, Side
from perpx.core.events import Event, OrderReduced
from perpx.core.keys import position_key
from perpx.core.lifecycle import TRANSITIONS, Happening
from perpx.core.market import Market
from perpx.core.ports import OrderRunner

_SELL: Final = Side.SELL


def closable_lots(clearing: Clearing, account_id: int, symbol: str, position_idx: int,
                  side: Side) -> int:
    """Return how much an order of `side` can close: the opposite position's size, or 0."""
    account = clearing.accounts.get(account_id)
    if account is None:
        return 0
    position = account.positions.get(position_key(symbol, position_idx))
    if position is None:
        return 0
    size = position.size_lots
    return max(0, size) if side is _SELL else max(0, -size)


def reduce_room(clearing: Clearing, order: RestingOrder) -> int:
    """Return how much a reduce-only maker may fill now: what its position can still close."""
    return closable_lots(clearing, order.account_id, order.symbol, order.position_idx,
                         order.side)


def resting_reduce_only(clearing: Clearing, account_id: int, symbol: str, position_idx: int,
                        side: Side) -> list[RestingOrder]:
    """Return the resting reduce-only orders of a position's side, the ones to keep first.

    Nearest the market first: sells from the lowest price, buys from the highest; at one
    price the oldest first.
    """
    found = clearing.reduce_only_orders.get((account_id, symbol, position_idx, side))
    if not found:
        return []
    sign = 1 if side is _SELL else -1
    return sorted(found.values(), key=lambda o: (sign * o.price_ticks, o.order_id))


def fit(market: Market, clearing: Clearing, runner: OrderRunner, account_id: int, symbol: str,
        position_idx: int, side: Side, room_lots: int, reason: CancelReason, seq: int,
        ts_ms: int, events: list[Event]) -> None:
    """Cut or cancel resting reduce-only orders so their leaves total at most `room_lots`."""
    kept = 0
    for order in resting_reduce_only(clearing, account_id, symbol, position_idx, side):
        left = room_lots - kept
        if order.leaves_lots <= left:
            kept += order.leaves_lots
        elif left > 0:
            _reduce(market, order, left, reason, seq, ts_ms, events)
            kept = room_lots
        else:
            runner.cancel_order(order, reason, seq, ts_ms, events)


def fit_to_positions(market: Market, clearing: Clearing, runner: OrderRunner,
                     keys: list[tuple[int, str, int]], seq: int, ts_ms: int,
                     events: list[Event]) -> None:
    """Bring the reduce-only orders over each (account, symbol, idx) within its position."""
    for account_id, symbol, idx in keys:
        for side in (Side.BUY, Side.SELL):
            orders = clearing.reduce_only_orders.get((account_id, symbol, idx, side))
            if not orders:
                continue
            room = closable_lots(clearing, account_id, symbol, idx, side)
            if sum(o.leaves_lots for o in orders.values()) > room:
                fit(market, clearing, runner, account_id, symbol, idx, side, room,
                    CancelReason.REDUCE_ONLY, seq, ts_ms, events)


def make_room(market: Market, clearing: Clearing, runner: OrderRunner, account_id: int,
              symbol: str, position_idx: int, side: Side, qty_lots: int, seq: int, ts_ms: int,
              events: list[Event]) -> None:
    """Free room under the position for a close-on-trigger order of `qty_lots` (spec §10).

    A reduce-only close needs no margin in perpx (its fee is paid from the wallet), so what
    can stop it is the reduce-only rule: other resting reduce-only orders holding the room.
    Those are cut or cancelled, farthest from the market first.
    """
    room = max(0, closable_lots(clearing, account_id, symbol, position_idx, side) - qty_lots)
    orders = clearing.reduce_only_orders.get((account_id, symbol, position_idx, side))
    if orders and sum(o.leaves_lots for o in orders.values()) > room:
        fit(market, clearing, runner, account_id, symbol, position_idx, side, room,
            CancelReason.FOR_CLOSE_ON_TRIGGER, seq, ts_ms, events)


def _reduce(market: Market, order: RestingOrder, leaves_lots: int, reason: CancelReason,
            seq: int, ts_ms: int, events: list[Event]) -> None:
    # Cut in place: a smaller quantity keeps the order's place in its queue.
    cut = order.leaves_lots - leaves_lots
    market.books[order.symbol].side(order.side).levels[order.price_ticks].total_lots -= cut
    order.status = TRANSITIONS[order.status, Happening.AMEND]
    order.qty_lots -= cut
    order.leaves_lots = leaves_lots
    order.updated_ts_ms = ts_ms
    events.append(OrderReduced(seq, ts_ms, order.order_id, order.account_id, order.symbol,
                               order.qty_lots, leaves_lots, reason))

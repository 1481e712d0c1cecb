"""The settlement pass: a matching walk's steps become events and account changes, in order.

The matcher (`core/matching.py`) fills orders and knows nothing of accounts; this pass then
applies its steps one by one, as exchange-core releases after it matches. Per step, in walk
order: a fill's `Trade`, then its settlement (the clearing's `settle`), then the maker's exit
from the indexes if it left the book; a cancelled maker's `OrderCancelled`, then its exit. So
the event stream is the one a settle-as-you-match walk gives.

A reduce-only maker's room depends on fills earlier in the same walk, which are matched but
not yet settled: `reduce_room` reads the settled position and moves it by those fills.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from perpx.core.account.accounts import FEE_ACCOUNT_ID, Account
from perpx.core.account.clearing import Clearing
from perpx.core.book.fills import Fill, MatchStep
from perpx.core.book.order import RestingOrder
from perpx.core.enums import Side
from perpx.core.events import Event, OrderCancelled, Trade
from perpx.core.instruments import InstrumentSpec
from perpx.core.keys import position_key
from perpx.core.numbers import boxed

_BUY: Final = Side.BUY
_SELL: Final = Side.SELL
# Bound once: compiled, a name imported from a pure module (the events are msgspec Structs)
# is looked up in the module's dict at each use; a Final is not.
_TRADE: Final = Trade
_ORDER_CANCELLED: Final = OrderCancelled


def settle_steps(
    steps: list[MatchStep],
    taker: RestingOrder,
    seq: Any,
    ts_ms: Any,
    clearing: Clearing,
    close_order: Callable[[RestingOrder], None],
    events: list[Event],
) -> None:
    """Apply a walk's steps in order, appending each one's events before the next's.

    `seq` and `ts_ms` (ints) are typed Any: they only go into events, and the engine hands on
    the objects its command came with instead of having them boxed again here.
    """
    symbol = taker.symbol
    side = taker.side
    # Boxed once (by the caller, for the walk), and a fill's own numbers once for the fill,
    # into locals typed Any: compiled, an int handed to an event is boxed at each use (a new
    # object above 256), and these go to the trade and to both sides' settlement events
    # (issue #14).
    seq_obj: Any = seq
    ts_obj: Any = ts_ms
    taker_id = taker.id_obj
    taker_account_id = taker.account_obj
    # The same for every fill of the walk: looked up at its first fill, not at each
    # (issue #14). A walk of cancelled makers only looks nothing up, as before.
    spec: InstrumentSpec | None = None
    taker_account: Account | None = None
    fees: Account | None = None
    for step in steps:
        maker = step.maker
        if isinstance(step, Fill):
            if spec is None or taker_account is None or fees is None:
                spec = clearing.instruments[symbol]
                taker_account = clearing.accounts[taker_account_id]
                fees = clearing.accounts[FEE_ACCOUNT_ID]
            trade_id: Any = step.trade_id
            price: Any = step.price_ticks
            qty: Any = step.qty_lots
            maker_leaves = step.maker_leaves_lots
            # A taker or maker that this fill completes leaves nothing: the boxed zero.
            events.append(_TRADE(seq_obj, ts_obj, trade_id, symbol, price, qty, side, taker_id,
                                 taker_account_id, maker.id_obj, maker.account_obj,
                                 boxed(step.taker_leaves_lots), boxed(maker_leaves)))
            clearing.settle(spec, price, qty, trade_id, maker_leaves, taker, taker_account,
                            maker, fees, seq_obj, ts_obj, events)
            if maker_leaves == 0:
                close_order(maker)
        else:
            events.append(_ORDER_CANCELLED(seq_obj, ts_obj, maker.id_obj, maker.account_obj,
                                           symbol, step.leaves_lots, step.reason))
            close_order(maker)


def reduce_room(clearing: Clearing, maker: RestingOrder, taker: RestingOrder,
                steps: list[MatchStep]) -> int:
    """Return how much reduce-only `maker` may fill after the walk's unsettled `steps`.

    What its position can close, the position being the settled one moved by each earlier
    fill of the walk on either side that is the maker's account and position index (a fill
    moves a position by exactly its signed quantity).
    """
    account_id = maker.account_id
    idx = maker.position_idx
    account = clearing.accounts.get(account_id)
    position = None if account is None else account.positions.get(position_key(maker.symbol, idx))
    size = 0 if position is None else position.size_lots
    if steps:
        taker_counts = taker.account_id == account_id and taker.position_idx == idx
        taker_sign = 1 if taker.side is _BUY else -1
        for step in steps:
            if type(step) is not Fill:
                continue
            if taker_counts:
                size += taker_sign * step.qty_lots
            other = step.maker
            if other.account_id == account_id and other.position_idx == idx:
                size += step.qty_lots if other.side is _BUY else -step.qty_lots
    return (size if size > 0 else 0) if maker.side is _SELL else (-size if size < 0 else 0)

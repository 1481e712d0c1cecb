"""Price-time matching of one taker against the opposite side of a book.

Fills execute at the resting order's price (seed 000: a buy limit at 67,080 against an ask at
67,042 fills at 67,042). The taker's own price bounds the walk; self-match prevention follows
the taker's `smp_type`. The caller decides what becomes of the taker's remainder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from perpx.core.book.fills import Fill, MakerCancel, MatchStep
from perpx.core.book.interface import ReduceRoom
from perpx.core.book.order import RestingOrder
from perpx.core.enums import CancelReason, SmpType
from perpx.core.lifecycle import Happening, advance, after_row

_FULL_FILL: Final = Happening.FULL_FILL
_PARTIAL_FILL: Final = Happening.PARTIAL_FILL
_CANCEL: Final = Happening.CANCEL
# The lifecycle table's rows of the three happenings of a walk (`lifecycle.after_row`).
_AFTER_FULL_FILL: Final = after_row(_FULL_FILL)
_AFTER_PARTIAL_FILL: Final = after_row(_PARTIAL_FILL)
_AFTER_CANCEL: Final = after_row(_CANCEL)
_SMP_NONE: Final = SmpType.NONE
_SMP_CANCEL_MAKER: Final = SmpType.CANCEL_MAKER
_SMP_CANCEL_BOTH: Final = SmpType.CANCEL_BOTH
_SELF_MATCH: Final = CancelReason.SELF_MATCH
_REDUCE_ONLY: Final = CancelReason.REDUCE_ONLY

if TYPE_CHECKING:
    from perpx.core.book.side import BookSide


def match(
    opposite: BookSide,
    taker: RestingOrder,
    limit_price_ticks: int,
    ts_ms: int,
    next_trade_id: int,
    reduce_room: ReduceRoom | None = None,
) -> tuple[list[MatchStep], int, bool, int]:
    """Fill `taker` against `opposite`, the side it trades against, up to `limit_price_ticks`.

    Knows orders and the book only, never accounts: returns the walk's steps in order (a
    `Fill` per fill, a `MakerCancel` per maker taken out by self-match prevention or for want
    of reduce room), the next free trade id, whether self-match prevention stopped the taker,
    and the last fill's price (0 if none). Both orders are updated in place and status changes
    go through the lifecycle table (an illegal one raises InvariantViolation); the makers that
    left the book are the steps' makers with no leaves. Settling the steps is the caller's.

    A reduce-only maker fills no more than `reduce_room` says its position can still close;
    with no room left it is cancelled (`REDUCE_ONLY`), so it can never open a position.
    """
    levels = opposite.levels
    keys = opposite.keys
    # A negation for bids, not a product with the side's sign (`BookSide.key`).
    asks = opposite.sign > 0
    bound = limit_price_ticks if asks else -limit_price_ticks
    taker_account = taker.account_id
    smp = taker.smp_type
    remaining = taker.leaves_lots
    taker_filled = taker.filled_lots
    steps: list[MatchStep] = []
    stopped = False
    last_price = 0
    while remaining and levels:  # `levels` holds exactly the prices of `keys`, and tests faster
        key = keys[0]
        if key > bound:
            break
        price = key if asks else -key
        level = levels[price]
        # The level's queue is ``queue[head:]`` (`PriceLevel`): taking its front is a step.
        queue = level.queue
        head = level.head
        while remaining and head < len(queue):
            maker = queue[head]
            if not maker.in_book:
                head += 1
                continue
            if smp is not _SMP_NONE and maker.account_id == taker_account:
                if smp is _SMP_CANCEL_MAKER or smp is _SMP_CANCEL_BOTH:
                    head += 1
                    maker.in_book = False
                    level.total_lots -= maker.leaves_lots
                    level.live -= 1
                    steps.append(MakerCancel(maker, maker.leaves_lots, _SELF_MATCH))
                    maker.status = advance(_AFTER_CANCEL, maker.status, _CANCEL)
                    maker.updated_ts_ms = ts_ms
                if smp is not _SMP_CANCEL_MAKER:
                    stopped = True
                    break
                continue
            maker_leaves = maker.leaves_lots
            fill = remaining if remaining < maker_leaves else maker_leaves
            if maker.reduce_only and reduce_room is not None:
                room = reduce_room(maker, taker, steps)
                if room == 0:
                    head += 1
                    maker.in_book = False
                    level.total_lots -= maker_leaves
                    level.live -= 1
                    steps.append(MakerCancel(maker, maker_leaves, _REDUCE_ONLY))
                    maker.status = advance(_AFTER_CANCEL, maker.status, _CANCEL)
                    maker.updated_ts_ms = ts_ms
                    continue
                if room < fill:
                    fill = room
            remaining -= fill
            maker_leaves -= fill
            maker.leaves_lots = maker_leaves
            maker.filled_lots += fill
            maker.updated_ts_ms = ts_ms
            level.total_lots -= fill
            taker_filled += fill
            steps.append(Fill(maker, price, fill, next_trade_id, remaining, maker_leaves))
            next_trade_id += 1
            last_price = price
            if maker_leaves == 0:
                head += 1
                maker.in_book = False
                maker.status = advance(_AFTER_FULL_FILL, maker.status, _FULL_FILL)
                level.live -= 1
            else:
                maker.status = advance(_AFTER_PARTIAL_FILL, maker.status, _PARTIAL_FILL)
        if level.live == 0:
            del levels[price]
            del keys[0]
        elif head:
            level.move_front(head)
        if stopped:
            break
    if last_price:
        taker.leaves_lots = remaining
        taker.filled_lots = taker_filled
        taker.status = (advance(_AFTER_PARTIAL_FILL, taker.status, _PARTIAL_FILL) if remaining
                        else advance(_AFTER_FULL_FILL, taker.status, _FULL_FILL))
    return steps, next_trade_id, stopped, last_price


def fillable_lots(opposite: BookSide, order: RestingOrder) -> int:
    """Return how much of `order` could fill now against `opposite`, honouring its SMP."""
    if order.smp_type is SmpType.NONE:
        return opposite.total_lots_within(order.price_ticks, order.leaves_lots)
    sign = opposite.sign
    total = 0
    for key in opposite.keys:
        if key > order.price_ticks * sign:
            break
        for maker in opposite.levels[key * sign].orders():
            if maker.account_id == order.account_id:
                if order.smp_type is SmpType.CANCEL_MAKER:
                    continue
                return total
            total += maker.leaves_lots
            if total >= order.leaves_lots:
                return total
    return total

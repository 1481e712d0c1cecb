"""What a matching walk hands back: fills and the makers it cancelled, in walk order.

These are the matcher's whole output; they name orders, never accounts. The engine's one
settlement pass (`core/settlement.py`) turns each into its events and account changes.
"""

from __future__ import annotations

from perpx.core.book.order import RestingOrder
from perpx.core.enums import CancelReason

# Plain classes, not NamedTuples: a compiled core builds them natively (a NamedTuple's
# constructor is Python code), one per fill of every walk.


class Fill:
    """One fill of the taker against `maker`, at the maker's price; leaves are after it."""

    __slots__ = ("maker", "maker_leaves_lots", "price_ticks", "qty_lots", "taker_leaves_lots",
                 "trade_id")

    def __init__(self, maker: RestingOrder, price_ticks: int, qty_lots: int, trade_id: int,
                 taker_leaves_lots: int, maker_leaves_lots: int) -> None:
        self.maker = maker
        self.price_ticks = price_ticks
        self.qty_lots = qty_lots
        self.trade_id = trade_id
        self.taker_leaves_lots = taker_leaves_lots
        self.maker_leaves_lots = maker_leaves_lots

    def values(self) -> tuple[int, int, int, int, int]:
        """Return the fields after the maker, in constructor order."""
        return (self.price_ticks, self.qty_lots, self.trade_id, self.taker_leaves_lots,
                self.maker_leaves_lots)


class MakerCancel:
    """A maker the walk took out of the book without a fill (self-match, no reduce room)."""

    __slots__ = ("leaves_lots", "maker", "reason")

    def __init__(self, maker: RestingOrder, leaves_lots: int, reason: CancelReason) -> None:
        self.maker = maker
        self.leaves_lots = leaves_lots
        self.reason = reason

    def values(self) -> tuple[int, CancelReason]:
        """Return the fields after the maker, in constructor order."""
        return (self.leaves_lots, self.reason)


MatchStep = Fill | MakerCancel

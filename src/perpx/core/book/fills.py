"""What a matching walk hands back: fills and the makers it cancelled, in walk order.

These are the matcher's whole output; they name orders, never accounts. The engine's one
settlement pass (`core/settlement.py`) turns each into its events and account changes.
"""

from __future__ import annotations

from typing import NamedTuple

from perpx.core.book.order import RestingOrder
from perpx.core.enums import CancelReason


class Fill(NamedTuple):
    """One fill of the taker against `maker`, at the maker's price; leaves are after it."""

    maker: RestingOrder
    price_ticks: int
    qty_lots: int
    trade_id: int
    taker_leaves_lots: int
    maker_leaves_lots: int


class MakerCancel(NamedTuple):
    """A maker the walk took out of the book without a fill (self-match, no reduce room)."""

    maker: RestingOrder
    leaves_lots: int
    reason: CancelReason


MatchStep = Fill | MakerCancel

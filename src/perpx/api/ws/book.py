"""Order books as the streams publish them: top-N views of the read side's book mirrors.

A `DepthView` is what subscribers of one (symbol, depth) have been shown. Publishing diffs the
mirror's current top N (`perpx.readmodels.books.BookMirror`) against that view, so a delta
deletes only levels the view holds and re-adds every level that enters the top N; all
subscribers of a view share one delta.
"""

from __future__ import annotations

from perpx.readmodels.books import BookMirror, Level


def diff_side(old: dict[int, int], new: list[Level]) -> list[Level]:
    """Return the changes turning `old` into `new`: (price, 0) deletes, others set sizes.

    A price is deleted only if `old` holds it, so a client never sees a delete for a level it
    does not have; a level entering the top N is sent in full.
    """
    changes: list[Level] = []
    fresh = dict(new)
    for price in old:
        if price not in fresh:
            changes.append((price, 0))
    for price, qty in new:
        if old.get(price) != qty:
            changes.append((price, qty))
    return changes


class DepthView:
    """The published top-N view of one (symbol, depth), shared by its subscribers.

    `u` counts published messages of this view; `seq` is the last command folded in (the
    cross sequence, comparable across depths).
    """

    def __init__(self, symbol: str, depth: int) -> None:
        self.symbol = symbol
        self.depth = depth
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.u = 0
        self.seq = 0
        self.dirty = False
        self.last_publish = 0.0  # event-loop time of the last message

    def reset(self, mirror: BookMirror, seq: int) -> None:
        """Take the mirror's current top N as the view (a snapshot)."""
        bids, asks = mirror.top(self.depth)
        self.bids = dict(bids)
        self.asks = dict(asks)
        self.u += 1
        self.seq = max(self.seq, seq)
        self.dirty = False

    def advance(self, mirror: BookMirror, seq: int) -> tuple[list[Level], list[Level]] | None:
        """Diff the mirror's top N against the view; return (bids, asks) changes or None."""
        self.dirty = False
        bids, asks = mirror.top(self.depth)
        bid_changes = diff_side(self.bids, bids)
        ask_changes = diff_side(self.asks, asks)
        if not bid_changes and not ask_changes:
            return None
        self.bids = dict(bids)
        self.asks = dict(asks)
        self.u += 1
        self.seq = max(self.seq, seq)
        return bid_changes, ask_changes

    def levels(self) -> tuple[list[Level], list[Level]]:
        """Return the view's levels, bids descending and asks ascending."""
        return (sorted(self.bids.items(), reverse=True), sorted(self.asks.items()))

"""Waiting triggers indexed by price, so a price point touches only the triggers it crosses.

Per (symbol, reference price) two sorted lists hold the entries: rising entries (crossed when
the price is at or above their price) keyed ``(price, order id, kind)``, and falling entries
(crossed at or below it) keyed ``(-price, order id, kind)``. Every filed entry is armed: its
condition did not hold at the last price point it was checked against. So the head of each
list is the entry nearest the price before the move, and a point that gaps past several
entries crosses a prefix of each list.

Firing order (docs/decisions.md): of the entries a point crosses, the one farthest from the
new price (that is, nearest the price before the move) goes first, then by order id (the
order of creation); a rising and a falling entry at the same distance go by order id. The
caller takes one entry at a time, acts on it and asks again, since acting may file, unfile
or move entries.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

from sortedcontainers import SortedList

from perpx.core.enums import TriggerBy, TriggerDirection

_RISING: Final = TriggerDirection.RISING


class EntryKind(IntEnum):
    """What crossing an entry means for its order."""

    FIRE = 0  # send the order
    ARM = 1  # a trailing stop reached its activation price
    FOLLOW = 2  # the last price went past a trailing stop's extreme: move the stop


Key = tuple[str, TriggerBy]
Entry = tuple[int, int, int]  # (price, or -price when falling; order id; kind)


class TriggerIndex:
    """Entries of waiting orders by (symbol, reference) and direction, in firing order."""

    __slots__ = ("falling", "filed", "rising")

    def __init__(self) -> None:
        self.rising: dict[Key, SortedList] = {}
        self.falling: dict[Key, SortedList] = {}
        # What each order has filed, so it can be taken out without a search.
        self.filed: dict[int, list[tuple[Key, bool, Entry]]] = {}

    def watches(self, symbol: str, trigger_by: TriggerBy) -> bool:
        """Tell whether any entry waits on this symbol's `trigger_by` price."""
        # Asked after every walk that printed: most venues have nothing filed, and then no
        # key is built and hashed (an IntEnum in a tuple, ~850 instructions compiled).
        if not self.rising and not self.falling:
            return False
        key = (symbol, trigger_by)
        return key in self.rising or key in self.falling

    def file(self, order_id: int, symbol: str, trigger_by: TriggerBy,
             direction: TriggerDirection, price_ticks: int, kind: EntryKind) -> None:
        """File one entry of `order_id` (an order may hold several, e.g. a trailing stop)."""
        key = (symbol, trigger_by)
        rising = direction is _RISING
        entry = (price_ticks if rising else -price_ticks, order_id, int(kind))
        lists = self.rising if rising else self.falling
        found = lists.get(key)
        if found is None:
            found = lists[key] = SortedList()
        found.add(entry)
        self.filed.setdefault(order_id, []).append((key, rising, entry))

    def unfile(self, order_id: int) -> None:
        """Take every entry of `order_id` out (nothing if it has none)."""
        for key, rising, entry in self.filed.pop(order_id, ()):
            lists = self.rising if rising else self.falling
            found = lists[key]
            found.remove(entry)
            if not found:
                del lists[key]

    def next_crossed(self, symbol: str, trigger_by: TriggerBy,
                     price_ticks: int) -> tuple[int, EntryKind] | None:
        """Return (order id, kind) of the next entry a price of `price_ticks` crosses, if any.

        The next is the crossed entry farthest from `price_ticks`, then the lowest order id.
        """
        key = (symbol, trigger_by)
        best: tuple[int, int, int] | None = None  # (-distance, order id, kind)
        rising = self.rising.get(key)
        if rising:
            price, order_id, kind = rising[0]
            if price <= price_ticks:
                best = (price - price_ticks, order_id, kind)
        falling = self.falling.get(key)
        if falling:
            negated, order_id, kind = falling[0]
            if -negated >= price_ticks:
                candidate = (price_ticks + negated, order_id, kind)
                if best is None or candidate < best:
                    best = candidate
        if best is None:
            return None
        return best[1], EntryKind(best[2])

    def entries(self) -> list[tuple[str, int, bool, int, int, int]]:
        """Return every entry as plain data in a canonical order (for invariant checks)."""
        out: list[tuple[str, int, bool, int, int, int]] = []
        for rising, lists in ((True, self.rising), (False, self.falling)):
            for (symbol, trigger_by), found in lists.items():
                out.extend((symbol, int(trigger_by), rising, *entry) for entry in found)
        return sorted(out)

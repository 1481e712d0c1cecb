"""Each side's ADL queue (spec §8): Bybit's ranking, served from a heap rather than sorted whole.

A takeover's leftover is deleveraged against the opposite side's positions, best ranked
first; the queue is ranked once per command (`perpx.core.risk.takeover.deleverage`), and a
cascade consumes only its first few entries. So the ranks are all computed when the queue is
built (as before: a position's rank is the one it had then), but they are put in a binary
heap, and only the positions actually reached are taken out of it, in order: building a heap
costs about two comparisons a position, a full sort about log2(n).

The order is exactly that of the exact ranks, ties to the lower account id and then the lower
position index, as the sort this replaces (`tests/property/adl_queue_oracle.py` keeps it).
Two ranks are compared first by their floors at 2**-32 (`AdlEntry.key`, an integer that fits
a machine word for any rank below 2**30), and only on equal floors by the exact
cross-multiplication of their terms: the floor is monotone in the rank, so every comparison
answers as the exact one does.
"""

from __future__ import annotations

from typing import Final

from perpx.core.account.accounts import SYSTEM_ACCOUNT_IDS, Account
from perpx.core.account.clearing import Clearing
from perpx.core.account.positions import Position
from perpx.core.enums import Side
from perpx.core.instruments import InstrumentSpec

# The floor's scale: fine enough that equal floors are rare, coarse enough that the floor of
# a rank below 2**30 is a small integer (compiled, compared without a heap long).
_KEY_BITS: Final = 32


def adl_rank_terms(spec: InstrumentSpec, position: Position, mark: int,
                   margin: int) -> tuple[int, int]:
    """Return Bybit's ADL ranking of a position (spec §8) as (numerator, denominator > 0).

    ``PnL% = (mark value - entry value) / entry value`` (signed by side) and
    ``EffLev = mark value / (mark value - bankrupt value)`` where the bankrupt value is what
    the position is worth when its `margin` is gone; profit ranks ``PnL% × EffLev``, loss
    ``PnL% / EffLev``. Not reduced: the ranking compares them exactly without a gcd.
    """
    side = Side.BUY if position.size_lots > 0 else Side.SELL
    value = spec.contract.value_floor_atoms(mark, position.qty_lots)
    entry = position.entry_value_atoms
    profit = spec.contract.unrealised_pnl_atoms(  # PnL% = profit / entry
        side, entry, position.qty_lots, mark)
    cushion = max(1, profit + margin)  # mark value - bankrupt value; EffLev = value / cushion
    if profit > 0:
        return profit * value, entry * cushion
    return profit * cushion, entry * value


class AdlEntry:
    """One position in a queue: its exact rank, the rank's floor, and its tie-break."""

    __slots__ = ("account_id", "denominator", "idx", "key", "numerator", "position")

    def __init__(self, numerator: int, denominator: int, account_id: int, idx: int,
                 position: Position) -> None:
        self.numerator = numerator
        self.denominator = denominator  # > 0
        self.account_id = account_id
        self.idx = idx
        self.position = position
        self.key = (numerator << _KEY_BITS) // denominator  # floor(rank * 2**32)

    def precedes(self, other: AdlEntry) -> bool:
        """Tell whether this entry comes first: a higher rank, else a lower account id, idx."""
        if self.key != other.key:
            return self.key > other.key
        # Equal floors: compare exactly (both denominators are > 0).
        left = self.numerator * other.denominator
        right = other.numerator * self.denominator
        if left != right:
            return left > right
        if self.account_id != other.account_id:
            return self.account_id < other.account_id
        return self.idx < other.idx


def _sift_down(heap: list[AdlEntry], place: int) -> None:
    """Move the entry at `place` down until no child precedes it."""
    size = len(heap)
    entry = heap[place]
    child = 2 * place + 1
    while child < size:
        right = child + 1
        if right < size and heap[right].precedes(heap[child]):
            child = right
        if not heap[child].precedes(entry):
            break
        heap[place] = heap[child]
        place = child
        child = 2 * place + 1
    heap[place] = entry


class AdlQueue:
    """One side's ADL ranking, computed once per command; its head is taken out as used.

    `key` is (seq, symbol, side): the command and side the ranking belongs to.
    """

    __slots__ = ("heap", "key")

    def __init__(self, key: tuple[int, str, Side], entries: list[AdlEntry]) -> None:
        self.key = key
        self.heap = entries
        for place in range(len(entries) // 2 - 1, -1, -1):
            _sift_down(entries, place)

    def head(self) -> Position | None:
        """Return the best-ranked position left, or None when the queue is spent."""
        heap = self.heap
        return heap[0].position if heap else None

    def pop(self) -> None:
        """Drop the head: it was deleveraged whole, or can no longer be."""
        heap = self.heap
        last = heap.pop()
        if heap:
            heap[0] = last
            _sift_down(heap, 0)

    def drain(self) -> list[Position]:
        """Return every position left, best ranked first, emptying the queue."""
        out: list[Position] = []
        while self.heap:
            out.append(self.heap[0].position)
            self.pop()
        return out


def _entry(clearing: Clearing, spec: InstrumentSpec, account_id: int, account: Account,
           position: Position, idx: int, mark: int, long: bool) -> AdlEntry | None:
    """Return a position's queue entry; None if it is flat, on the other side, or fully hedged."""
    size = position.size_lots
    if not size or (size > 0) != long:
        return None
    model = account.model
    if model.fully_hedged(account, position):
        return None  # fully hedged in cross mode: never deleveraged
    margin = model.adl_margin_atoms(clearing, account, position, spec.settle_coin)
    numerator, denominator = adl_rank_terms(spec, position, mark, margin)
    if denominator <= 0:
        raise ZeroDivisionError(f"ADL rank of account {account_id} over {denominator}")
    return AdlEntry(numerator, denominator, account_id, idx, position)


def adl_entries(clearing: Clearing, spec: InstrumentSpec, side: Side,
                mark: int) -> list[AdlEntry]:
    """Return the queue entries of the users' positions on `side` of a symbol, unordered.

    In cross mode the bankrupt value uses the account's margin balance; a cross account
    holding both sides (hedge mode) offers only its unhedged part, so its fully hedged
    positions are never listed (seed 000).
    """
    out: list[AdlEntry] = []
    symbol = spec.symbol
    keys = spec.keys.positions
    long = side is Side.BUY
    for account_id, account in clearing.accounts.items():
        positions = account.positions
        held = len(positions)
        if not held or account_id in SYSTEM_ACCOUNT_IDS:
            continue
        if held <= 3:
            # Most accounts hold a position or two: reading them costs less than hashing the
            # symbol's three keys.
            for (held_symbol, idx), position in positions.items():
                if held_symbol == symbol and 0 <= idx <= 2:
                    entry = _entry(clearing, spec, account_id, account, position, idx, mark,
                                   long)
                    if entry is not None:
                        out.append(entry)
            continue
        for idx in range(3):
            found = positions.get(keys[idx])
            if found is not None:
                entry = _entry(clearing, spec, account_id, account, found, idx, mark, long)
                if entry is not None:
                    out.append(entry)
    return out

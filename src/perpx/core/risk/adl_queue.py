"""Each side's ADL queue (spec §8): Bybit's ranking, served from a heap rather than sorted whole.

A takeover's leftover is deleveraged against the opposite side's positions, best ranked
first; the queue is ranked once per command (`perpx.core.risk.takeover.deleverage`), and a
cascade consumes only its first few entries. So the ranks are all computed when the queue is
built (as before: a position's rank is the one it had then), but they are put in a binary
heap, and only the positions actually reached are taken out of it, in order: building a heap
costs about two comparisons a position, a full sort about log2(n).

The order is exactly that of the exact ranks, ties to the lower account id and then the lower
position index, as the sort this replaces (`tests/property/adl_queue_oracle.py` keeps it).
A rank is ``a·b / (c·d)`` with ``c·d > 0`` (`adl_rank_factors`). Two ranks are compared first
by a float approximation of each (four correctly rounded conversions and three correctly
rounded operations: within ``8·2**-53`` of the rank, relatively), and only when the
approximations are too close for that bound to decide (`_SLACK`, far wider) by the exact
cross-multiplication of their integers. Every comparison therefore answers as the exact one
does, and the big-integer products are computed only for near-ties.
"""

from __future__ import annotations

from typing import Final

from perpx.core.account.accounts import SYSTEM_ACCOUNT_IDS, Account
from perpx.core.account.clearing import Clearing
from perpx.core.account.positions import Position
from perpx.core.enums import Side
from perpx.core.instruments import InstrumentSpec

# The approximations of two ranks decide their order only when they differ by more than
# this share of their magnitudes; each is within 8 * 2**-53 (about 2**-50) of its rank, so
# 2**-40 leaves a factor of a thousand to spare.
_SLACK: Final = 2.0 ** -40


def adl_rank_factors(spec: InstrumentSpec, position: Position, mark: int,
                     margin: int) -> tuple[int, int, int, int]:
    """Return Bybit's ADL rank of a position (spec §8) as factors: ``a·b / (c·d)``, c·d > 0.

    ``PnL% = (mark value - entry value) / entry value`` (signed by side) and
    ``EffLev = mark value / (mark value - bankrupt value)`` where the bankrupt value is what
    the position is worth when its `margin` is gone; profit ranks ``PnL% × EffLev``, loss
    ``PnL% / EffLev``. The products are left to the caller: most comparisons need none.
    """
    side = Side.BUY if position.size_lots > 0 else Side.SELL
    qty = position.qty_lots
    value = spec.contract.value_floor_atoms(mark, qty)
    entry = position.entry_value_atoms
    profit = spec.contract.unrealised_pnl_atoms(side, entry, qty, mark)  # PnL% = profit / entry
    cushion = max(1, profit + margin)  # mark value - bankrupt value; EffLev = value / cushion
    if profit > 0:
        return profit, value, entry, cushion
    return profit, cushion, entry, value


def adl_rank_terms(spec: InstrumentSpec, position: Position, mark: int,
                   margin: int) -> tuple[int, int]:
    """Return the ADL rank (`adl_rank_factors`) as (numerator, denominator > 0), not reduced."""
    a, b, c, d = adl_rank_factors(spec, position, mark, margin)
    return a * b, c * d


class AdlEntry:
    """One position in a queue: its rank's factors, their approximation, and its tie-break."""

    __slots__ = ("account_id", "approx", "den_a", "den_b", "idx", "num_a", "num_b", "position")

    def __init__(self, num_a: int, num_b: int, den_a: int, den_b: int, account_id: int,
                 idx: int, position: Position) -> None:
        self.num_a = num_a
        self.num_b = num_b
        self.den_a = den_a
        self.den_b = den_b
        self.account_id = account_id
        self.idx = idx
        self.position = position
        self.approx: float = (float(num_a) * float(num_b)) / (float(den_a) * float(den_b))

    def precedes(self, other: AdlEntry) -> bool:
        """Tell whether this entry comes first: a higher rank, else a lower account id, idx."""
        mine = self.approx
        theirs = other.approx
        gap = mine - theirs
        slack = _SLACK * (abs(mine) + abs(theirs))
        if gap > slack:
            return True
        if gap < -slack:
            return False
        # Too close for the approximations: compare exactly (both denominators are > 0).
        left = self.num_a * self.num_b * (other.den_a * other.den_b)
        right = other.num_a * other.num_b * (self.den_a * self.den_b)
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
           position: Position, idx: int, mark: int) -> AdlEntry | None:
    """Return a position's queue entry, or None if it is fully hedged (never deleveraged)."""
    model = account.model
    if model.fully_hedged(account, position):
        return None  # fully hedged in cross mode: never deleveraged
    margin = model.adl_margin_atoms(clearing, account, position, spec.settle_coin)
    num_a, num_b, den_a, den_b = adl_rank_factors(spec, position, mark, margin)
    if not den_a or not den_b or (den_a > 0) != (den_b > 0):  # the denominator is <= 0
        raise ZeroDivisionError(f"ADL rank of account {account_id} over {den_a * den_b}")
    return AdlEntry(num_a, num_b, den_a, den_b, account_id, idx, position)


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
            for key, position in positions.items():
                size = position.size_lots
                if not size or (size > 0) != long or key[0] != symbol:
                    continue
                idx = key[1]
                if not 0 <= idx <= 2:
                    continue
                entry = _entry(clearing, spec, account_id, account, position, idx, mark)
                if entry is not None:
                    out.append(entry)
            continue
        for idx in range(3):
            found = positions.get(keys[idx])
            if found is None:
                continue
            size = found.size_lots
            if not size or (size > 0) != long:
                continue
            entry = _entry(clearing, spec, account_id, account, found, idx, mark)
            if entry is not None:
                out.append(entry)
    return out

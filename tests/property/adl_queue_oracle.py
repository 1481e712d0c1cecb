"""The ADL ranking as it was before the heap (main be07563): a full sort, kept as an oracle.

`perpx.core.risk.adl_queue` serves the queue from a heap with float-first comparisons; the
property tests check that it gives exactly this order. Copied unchanged from
`perpx.core.risk.takeover.ranked_positions` and its `_Rank` (only the rank terms come from
the one formula, `adl_queue.adl_rank_terms`, whose products are the ones it had).
"""

from __future__ import annotations

from operator import itemgetter
from typing import Final

from perpx.core.account.accounts import SYSTEM_ACCOUNT_IDS
from perpx.core.account.clearing import Clearing
from perpx.core.account.positions import Position
from perpx.core.enums import Side
from perpx.core.instruments import InstrumentSpec
from perpx.core.risk.adl_queue import adl_rank_terms


class _Rank:
    """An exact rank compared by cross-multiplication: a `Fraction` without its gcd."""

    __slots__ = ("denominator", "numerator")

    def __init__(self, numerator: int, denominator: int) -> None:
        self.numerator = numerator
        self.denominator = denominator  # > 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Rank):
            return NotImplemented
        return self.numerator * other.denominator == other.numerator * self.denominator

    def __lt__(self, other: _Rank) -> bool:
        return self.numerator * other.denominator < other.numerator * self.denominator


_RANK_SCALE: Final = 1 << 64
_rank_key = itemgetter(0, 1, 2)


def ranked_positions(clearing: Clearing, spec: InstrumentSpec, side: Side,
                     mark: int) -> list[Position]:
    """Return the users' positions on `side` of a symbol, first in the ADL queue first."""
    ranked: list[tuple[int, _Rank, int, Position]] = []
    keys = spec.keys
    coin = spec.settle_coin
    for account_id, account in clearing.accounts.items():
        if account_id in SYSTEM_ACCOUNT_IDS:
            continue
        positions = account.positions
        if not positions:
            continue
        for idx in (0, 1, 2):
            position = positions.get(keys.position(idx))
            if position is None or not position.size_lots or position.side is not side:
                continue
            model = account.model
            if model.fully_hedged(account, position):
                continue  # fully hedged in cross mode: never deleveraged
            margin = model.adl_margin_atoms(clearing, account, position, coin)
            numerator, denominator = adl_rank_terms(spec, position, mark, margin)
            if denominator <= 0:
                raise ZeroDivisionError(f"ADL rank of account {account_id} over {denominator}")
            ranked.append((numerator * _RANK_SCALE // denominator,
                           _Rank(numerator, denominator), -account_id, position))
    ranked.sort(key=_rank_key, reverse=True)
    return [entry[3] for entry in ranked]

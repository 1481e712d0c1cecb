"""Canonical dict keys: one tuple object per (symbol, position idx) and per (symbol, idx, side).

An account's positions, leverage and open-order sums are dicts keyed by such tuples. A key
built afresh at each lookup costs an allocation, and the dict, finding a stored key that is
an equal but other object, falls to a generic rich comparison of the two tuples. Handing out
one tuple per key, the same object at every insertion and lookup, lets the dict find it by
identity (issue #14: `_Py_dict_lookup` was a sixth of the compiled engine's time).

The keys stay plain tuples of the same values, so iteration orders, sorting and snapshots
see exactly what they saw. A key of an index outside 0..2 or a side that is not a `Side` is
built afresh: equal, only slower. The table holds one entry per symbol ever looked up, a few
tuples each; it is a cache of immutable values, the same for every engine of the process.

The keys are handed out typed `Any`, and held in tuples of `Any`: compiled, a fixed-length
tuple type such as ``tuple[str, int]`` is an unboxed C struct, so a canonical key passed
through it would come out as a new tuple object, built afresh for the dict again.
"""

from __future__ import annotations

from typing import Any, Final

from perpx.core.enums import Side

_BUY: Final = Side.BUY
_SELL: Final = Side.SELL


class SymbolKeys:
    """The canonical keys of one symbol: its three position indexes, on each side."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self.positions: tuple[Any, ...] = ((symbol, 0), (symbol, 1), (symbol, 2))
        self.sides: tuple[Any, ...] = tuple(
            (symbol, idx, side) for idx in range(3) for side in (_BUY, _SELL))

    def position(self, position_idx: int) -> Any:
        """Return the key (symbol, position_idx) of positions and leverage."""
        if 0 <= position_idx <= 2:
            return self.positions[position_idx]
        return self.symbol, position_idx

    def side(self, position_idx: int, side: Side) -> Any:
        """Return the key (symbol, position_idx, side) of open-order sums."""
        if 0 <= position_idx <= 2:
            if side is _BUY:
                return self.sides[2 * position_idx]
            if side is _SELL:
                return self.sides[2 * position_idx + 1]
        return self.symbol, position_idx, side


_KEYS: Final[dict[str, SymbolKeys]] = {}
# A venue lists hundreds of symbols at most; past this many the table stops growing, so no
# stream of made-up symbol names can grow it without bound. Keys built after are equal, only
# not shared (a lookup is then only slower).
MAX_SHARED_SYMBOLS: Final = 4096


def symbol_keys(symbol: str) -> SymbolKeys:
    """Return the canonical keys of `symbol`, making them at its first use."""
    keys = _KEYS.get(symbol)
    if keys is None:
        keys = SymbolKeys(symbol)
        if len(_KEYS) < MAX_SHARED_SYMBOLS:
            _KEYS[symbol] = keys
    return keys


def position_key(symbol: str, position_idx: int) -> Any:
    """Return the key (symbol, position_idx) of positions and leverage, canonical if it can."""
    return symbol_keys(symbol).position(position_idx)


def side_key(symbol: str, position_idx: int, side: Side) -> Any:
    """Return the key (symbol, position_idx, side) of open-order sums, canonical if it can."""
    return symbol_keys(symbol).side(position_idx, side)

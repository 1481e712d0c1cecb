"""What the subsystems may ask of the engine: run and cancel orders, react to a new mark.

The trigger engine and the liquidation engine send orders of the exchange's own (a fired
stop, a partial liquidation, the insurance fund's close) and cancel resting ones; pricing
moves the mark and funding moves margins, and the engine reacts (triggers, AMR, liquidation).
They are typed on these protocols, which the engine satisfies, so no subsystem imports the
engine: the engine sits on top of the core, and everything it holds sits below it.
"""

from __future__ import annotations

from typing import Protocol

from perpx.core.book.order import RestingOrder
from perpx.core.enums import CancelReason
from perpx.core.events import Event


class OrderRunner(Protocol):
    """Runs the orders the exchange itself sends, and cancels resting ones for its reasons."""

    def new_order_id(self) -> int:
        """Take the next order id."""
        ...

    def run_order(self, order: RestingOrder, seq: int, ts_ms: int, events: list[Event]) -> None:
        """Run an order the exchange itself sends (no margin check) through the book."""
        ...

    def cancel_order(self, order: RestingOrder, reason: CancelReason, seq: int, ts_ms: int,
                     events: list[Event]) -> None:
        """Cancel a resting order for the exchange's own reasons (liquidation, ADL, room)."""
        ...


class MarkReactions(Protocol):
    """What follows a new mark, or margins moved by funding at an unchanged mark."""

    def after_mark_move(self, symbol: str, seq: int, ts_ms: int, events: list[Event]) -> None:
        """React to a new mark of `symbol`: triggers, then AMR and liquidation."""
        ...

    def sweep(self, symbol: str, seq: int, ts_ms: int, events: list[Event]) -> None:
        """Replenish and liquidate what the current mark of `symbol` breaches."""
        ...

    def after_index_move(self, symbol: str, seq: int, ts_ms: int, events: list[Event]) -> None:
        """React to a new index of `symbol` that left its mark where it was.

        A USD pool's collateral and a portfolio-margin account's scenarios are valued at the
        index, so such accounts are swept on it (next-mechanics §4.1, §5.3).
        """
        ...

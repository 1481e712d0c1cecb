"""A consumer's loop: resume from the position the consumer keeps, apply batches in order.

The bus keeps no consumer state (`perpx.bus.base`). A `Projection` knows the last seq it
applied, and stores it in the same transaction as what it derives from a batch, so after a
crash, wherever it stopped, position and rows agree; `follow` subscribes from the next seq
and hands on every batch. A `GapError` ends the loop: the projection cannot go on without
the missing seqs and must be rebuilt from the journal.
"""

from __future__ import annotations

from typing import Protocol

from perpx.bus.base import EventBus
from perpx.bus.codec import EventBatch


class Projection(Protocol):
    """Something folded from the event log that remembers how far it got."""

    def position(self) -> int:
        """Return the last seq applied (0 for none), as durably stored."""
        ...

    def apply(self, batch: EventBatch) -> None:
        """Fold `batch` and store its last seq as the position, atomically."""
        ...


async def follow(bus: EventBus, projection: Projection, until: int | None = None) -> int:
    """Apply every batch after the projection's position; return the position reached.

    Runs until the bus closes or, with `until`, once that seq is applied.
    """
    position = projection.position()
    if until is not None and position >= until:
        return position
    async for batch in bus.subscribe(position + 1):
        projection.apply(batch)
        position = batch.last_seq
        if until is not None and position >= until:
            break
    return position

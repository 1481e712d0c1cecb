"""What every event bus offers, and the consumer's ordering rule shared by all of them.

A bus carries the writer's durable event batches (`perpx.bus.codec.EventBatch`) to
projections, in journal-seq order. It keeps no consumer positions: a consumer stores its own
last applied seq (beside what it projects, so both commit together) and on restart asks
``subscribe(last + 1)``. The bus then yields every batch from that seq on, in order, then
waits for new ones. A range it cannot deliver (pruned from the bus's retention, or never
published) is a `GapError`, never skipped: a projection missing a command would be silently
wrong forever, while the error sends it back to the journal to rebuild.

`publish` stores one batch and says whether it was new; it is what `BusPublisher` calls, and
it may fail (a broker down or slow): the publisher retries it with the same batch, which the
bus drops as a duplicate if the first try did land.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from perpx.bus.codec import EventBatch


class BusError(RuntimeError):
    """The bus could not do what was asked (unreachable, refused, or a corrupt message)."""


class GapError(BusError):
    """A consumer asked for seqs the bus does not hold (pruned or never published)."""

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"event gap: expected seq {expected}, the bus has {got} next "
                         f"(seqs {expected}..{got - 1} are missing: rebuild from the journal)")
        self.expected = expected
        self.got = got


class EventBus(Protocol):
    """Carry durable event batches from the writer to any number of consumers, in order."""

    async def publish(self, batch: EventBatch) -> bool:
        """Store `batch`; True if it was new, False if the bus dropped it as a duplicate."""
        ...

    async def last_seq(self) -> int:
        """Return the last journal seq the bus holds (0 when it holds none)."""
        ...

    def subscribe(self, from_seq: int) -> AsyncIterator[EventBatch]:
        """Yield the batches from `from_seq` on, trimmed to start there, in order; forever."""
        ...

    async def close(self) -> None:
        """Release connections; a subscription in progress ends."""
        ...


class InOrder:
    """A consumer's check on the batches it is handed: contiguous from its position on.

    A batch wholly at or below the position is a redelivery and is dropped; one that
    overlaps it is trimmed; one that starts past ``position + 1`` is a `GapError`.
    """

    def __init__(self, from_seq: int) -> None:
        self.position = from_seq - 1  # the last seq handed on
        self.redelivered = 0  # batches (or parts) dropped because they were already handed on

    def accept(self, batch: EventBatch) -> EventBatch | None:
        """Return the new part of `batch` (None if it has none); raise `GapError` on a gap."""
        if batch.last_seq <= self.position:
            self.redelivered += 1
            return None
        if batch.first_seq > self.position + 1:
            raise GapError(self.position + 1, batch.first_seq)
        if batch.first_seq <= self.position:
            self.redelivered += 1
            batch = batch.after(self.position)
        self.position = batch.last_seq
        return batch

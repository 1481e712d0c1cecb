"""The in-process bus: `perpx serve` without a NATS server, and the tests' reference.

Batches are kept as objects (nothing is encoded: producer and consumers share the process)
in a window of the most recent `keep_commands` seqs; a consumer that asks for older seqs gets
a `GapError` and rebuilds from the journal, as it would from a JetStream stream whose limits
dropped them. Like JetStream it drops a batch whose message id it has seen within the last
`duplicate_window` batches, and otherwise stores what it is given: ordering is checked by the
consumers (`InOrder`), so both buses behave alike under a faulty publisher.
"""

from __future__ import annotations

import asyncio
import bisect
from collections import OrderedDict
from collections.abc import AsyncIterator

from perpx.bus.base import InOrder
from perpx.bus.codec import EventBatch


class InProcessBus:
    """An `EventBus` in memory, for one process."""

    def __init__(self, keep_commands: int = 1_000_000, duplicate_window: int = 10_000) -> None:
        self.keep_commands = keep_commands
        self.duplicate_window = duplicate_window
        self._batches: list[EventBatch] = []
        self._lasts: list[int] = []  # each batch's last_seq, for bisect
        self._offset = 0  # batches pruned from the front
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._changed = asyncio.Event()
        self._closed = False
        self.duplicates = 0

    async def publish(self, batch: EventBatch) -> bool:
        """Keep `batch` unless its message id was seen lately; wake the subscribers."""
        if batch.msg_id in self._ids:
            self.duplicates += 1
            return False
        self._ids[batch.msg_id] = None
        if len(self._ids) > self.duplicate_window:
            self._ids.popitem(last=False)
        self._batches.append(batch)
        self._lasts.append(batch.last_seq)
        self._prune()
        self._changed.set()
        self._changed = asyncio.Event()
        return True

    def _prune(self) -> None:
        newest = self._lasts[-1]
        cut = bisect.bisect_left(self._lasts, newest - self.keep_commands + 1)
        if cut > len(self._lasts) // 2:  # amortised: drop in halves, not one at a time
            del self._batches[:cut]
            del self._lasts[:cut]
            self._offset += cut

    async def last_seq(self) -> int:
        """Return the last seq held."""
        return self._batches[-1].last_seq if self._batches else 0

    async def subscribe(self, from_seq: int) -> AsyncIterator[EventBatch]:
        """Yield the batches from `from_seq` on, in order; then wait for more until closed."""
        order = InOrder(from_seq)
        # Absolute index of the next batch to hand on: the first ending at or after from_seq.
        index = self._offset + bisect.bisect_left(self._lasts, from_seq)
        while not self._closed:
            local = index - self._offset
            if local < 0:  # pruned while this consumer was behind: it restarts, and fails
                local = 0
                index = self._offset
            if local >= len(self._batches):
                await self._changed.wait()
                continue
            batch = order.accept(self._batches[local])
            index += 1
            if batch is not None:
                yield batch

    async def close(self) -> None:
        """End every subscription."""
        self._closed = True
        self._changed.set()

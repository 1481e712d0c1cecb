"""The writer's side of the bus: hand on each durable command, never wait for the bus.

`BusPublisher.on_entries` is a sequencer subscriber: it appends a durable batch's entries to an
in-memory backlog and returns at once, so the writer never waits on NATS. A task on the same
event loop cuts the backlog into batches of at most `max_batch` commands (whatever has
accumulated since the last publish: one command when idle, so latency stays one round trip,
more under load, so throughput does not pay a round trip per command) and publishes them
one after another, each retried with backoff until the bus takes it. A retry carries the
same seq range, hence the same message id, so a batch that did land the first time is
dropped by the bus as a duplicate.

The backlog is bounded (`max_backlog` commands). A bus that is down or slow for longer
than that does not cost memory without bound, nor the writer its pace: the backlog is
dropped, and when the bus answers again the publisher finds it is behind the durable seq
and republishes the missing range from the journal (`EventSource`, `journal_source`). The
same path runs after a restart: the publisher asks the bus for its last seq and republishes
everything the journal holds after it before any live batch (`catch_up`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from perpx.bus.base import EventBus
from perpx.bus.codec import Durable, EventBatch
from perpx.bus.replay import EventSource
from perpx.core.commands import Command
from perpx.core.events import Event

log = logging.getLogger("perpx.bus")
T = TypeVar("T")


def _take(entries: Iterator[Durable], count: int) -> list[Durable]:
    chunk: list[Durable] = []
    for entry in entries:
        chunk.append(entry)
        if len(chunk) >= count:
            break
    return chunk


async def republish(bus: EventBus, source: EventSource, after: int, upto: int,
                    max_batch: int = 256,
                    publish: Callable[[EventBatch], Awaitable[bool]] | None = None) -> int:
    """Publish the journal's entries after `after` up to `upto`; return how many commands.

    The replay runs in a worker thread, a chunk at a time, so the event loop (and the
    writer on it) keeps going while the journal is read and re-applied.
    """
    entries = await asyncio.to_thread(source, after, upto)
    count = 0
    while True:
        chunk = await asyncio.to_thread(_take, entries, max_batch)
        if not chunk:
            return count
        batch = EventBatch.of(chunk)
        if publish is not None:
            await publish(batch)
        else:
            await bus.publish(batch)
        count += len(chunk)


async def catch_up(bus: EventBus, source: EventSource, upto: int,
                   max_batch: int = 256) -> int:
    """After a restart: republish what the journal holds past the bus's end, up to `upto`.

    The bus's end is its last message's last seq, so what the crashed writer got onto the
    bus, acknowledged or not, is not sent again. (A message of the dead writer's still in
    flight, stored after this read, would overlap: the bus drops it if its range is the
    same, and consumers trim any overlap, `InOrder`.) Returns the commands republished.
    """
    return await republish(bus, source, await bus.last_seq(), upto, max_batch)


class BusPublisher:
    """Publish every durable command's events on `bus`, in seq order, without blocking."""

    def __init__(self, bus: EventBus, source: EventSource | None = None, *,
                 max_batch: int = 256, max_backlog: int = 100_000,
                 retry_s: float = 0.05, retry_max_s: float = 2.0) -> None:
        self.bus = bus
        self.source = source
        self.max_batch = max_batch
        self.max_backlog = max_backlog
        self.retry_s = retry_s
        self.retry_max_s = retry_max_s
        self.durable_seq = 0  # the last durable command handed to the publisher
        self.published: int | None = None  # the bus's last seq, once known
        self._backlog: deque[Durable] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        # Counters for operators and tests.
        self.batches = 0
        self.commands = 0
        self.duplicates = 0
        self.retries = 0
        self.overflows = 0
        self.republished = 0
        self.unfilled = 0  # commands the bus will never get (no source to rebuild them)

    @property
    def lag(self) -> int:
        """Durable commands not yet on the bus (all of them while its end is unknown)."""
        return self.durable_seq - (self.published or 0)

    def follow(self, durable_seq: int) -> None:
        """Start from the recovered journal's end: the bus must catch up to `durable_seq`."""
        self.durable_seq = max(self.durable_seq, durable_seq)

    def on_durable(self, command: Command, events: list[Event]) -> None:
        """Queue a durable command's events (a sequencer's subscriber); never blocks."""
        self.on_entries([Durable(command.seq, command.ts_ms, events)])

    def on_entries(self, entries: list[Durable]) -> None:
        """Queue a durable batch's entries (`Sequencer.subscribe_entries`); never blocks.

        The sequencer's own entries: the msgpack of each, once made for the command's
        reply or for the bus batch, serves both (`BatchCodec.body`).
        """
        self.durable_seq = entries[-1].seq
        backlog = self._backlog
        if len(backlog) + len(entries) > self.max_backlog:
            # Memory stays bounded; the journal still has everything, and the publisher
            # republishes the dropped range from it once the bus takes messages again.
            backlog.clear()
            entries = entries[-self.max_backlog:]
            self.overflows += 1
            log.warning("bus backlog full (%d commands): dropped, will republish from the "
                        "journal", self.max_backlog)
        backlog.extend(entries)
        self._wake.set()
        if self._task is None:
            self.start()

    def start(self) -> None:
        """Start the publishing task on the running loop (again is harmless)."""
        if self._task is None or self._task.done():
            self._closing = False
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name="perpx-bus-publisher")

    async def close(self, timeout_s: float = 5.0) -> bool:
        """Publish what is queued (up to `timeout_s`), then stop; True if all went out."""
        self._closing = True
        self._wake.set()
        task = self._task
        if task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), timeout_s)
            if not task.done():
                task.cancel()
                # A client library caught mid-connect may take a moment to unwind.
                with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                    await asyncio.wait_for(task, 5.0)
        return self.published is not None and self.published >= self.durable_seq

    # -- the task ---------------------------------------------------------------------------

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        delay = self.retry_s
        while True:
            try:
                return await attempt()
            except asyncio.CancelledError:
                raise
            except Exception as failure:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    # A cancel swallowed inside the client (asyncio.wait_for in 3.11 can lose
                    # one that races a timeout): stop anyway rather than retry forever.
                    raise asyncio.CancelledError from failure
                self.retries += 1
                if self.retries == 1 or self.retries % 100 == 0:
                    log.warning("bus %s failed (retry %d in %.2fs): %r", what, self.retries,
                                delay, failure)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)

    async def _publish(self, batch: EventBatch) -> bool:
        new = await self._retrying(f"publish {batch.msg_id}",
                                   lambda: self.bus.publish(batch))
        self.batches += 1
        self.commands += len(batch.entries)
        if not new:
            self.duplicates += 1
        self.published = batch.last_seq
        return new

    async def _run(self) -> None:
        if self.published is None:
            last = await self._retrying("last_seq", lambda: self.bus.last_seq())
            self.published = last
        while True:
            published = self.published
            backlog = self._backlog
            while backlog and backlog[0].seq <= published:
                backlog.popleft()  # on the bus already (published before a restart)
            if published < self.durable_seq and (not backlog or backlog[0].seq > published + 1):
                await self._fill(published, backlog[0].seq - 1 if backlog else self.durable_seq)
                continue
            if not backlog:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            count = min(self.max_batch, len(backlog))
            await self._publish(EventBatch.of([backlog[i] for i in range(count)]))

    async def _fill(self, after: int, upto: int) -> None:
        """Republish the journal's `after+1..upto`, which the backlog does not hold."""
        if self.source is None:
            log.error("bus is missing seqs %d..%d and there is no journal to republish them "
                      "from: consumers will see a gap", after + 1, upto)
            self.unfilled += upto - after
            self.published = upto
            return
        log.info("bus: republishing seqs %d..%d from the journal", after + 1, upto)
        source = self.source

        async def publish(batch: EventBatch) -> bool:
            new = await self._publish(batch)
            self.republished += len(batch.entries)  # counted as they go: a retry resumes
            return new

        async def replay() -> int:
            # A retry (the journal could not be read) resumes after what went out.
            start = self.published if self.published is not None else after
            return await republish(self.bus, source, start, upto, self.max_batch,
                                   publish=publish)

        await self._retrying("republish", replay)

"""The event bus on NATS JetStream: one stream per venue, one message per durable batch.

Each message is one `EventBatch` (`perpx.bus.codec`) on the stream's subject, with headers

- ``Nats-Msg-Id: FIRST-LAST``: the batch's journal seq range. JetStream drops a message
  whose id it stored within the stream's duplicate window, so a publish retried after a lost
  acknowledgement, or a batch republished by a writer that restarted, is stored once;
- ``Perpx-Last-Seq``: the batch's last journal seq, so the writer finds where the stream
  ends (`last_seq`) and a consumer finds where a journal seq lies (a binary search over
  stream sequences) without decoding bodies.

A batch too big for `max_bytes` is split in two, again and again, at fixed points, so a
retry splits it the same way and its parts keep their message ids.

Consumers read through an ordered push consumer (the client re-creates it from the last
stream sequence it saw if a message is lost in flight), starting at the stream message
holding their journal seq; `InOrder` checks the journal seqs themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from perpx.bus.base import BusError, InOrder
from perpx.bus.codec import BatchCodec, EventBatch
from perpx.store.codec import CodecError

log = logging.getLogger("perpx.bus")

LAST_SEQ_HEADER = "Perpx-Last-Seq"
MSG_ID_HEADER = "Nats-Msg-Id"


async def _quiet(failure: Exception) -> None:
    # nats-py logs every failed connect attempt at ERROR by default; the publisher already
    # says, with backoff, that the bus is unreachable.
    log.debug("nats: %r", failure)


class JetStreamBus:
    """An `EventBus` on one JetStream stream (one venue), connected on first use."""

    def __init__(self, url: str = "nats://127.0.0.1:4222", stream: str = "PERPX_EVENTS",
                 subject: str | None = None, *, duplicate_window_s: float = 120.0,
                 max_bytes: int = 256 * 1024, timeout_s: float = 2.0,
                 max_age_s: float = 0.0) -> None:
        self.url = url
        self.stream = stream
        self.subject = subject if subject is not None else f"perpx.{stream.lower()}.events"
        self.duplicate_window_s = duplicate_window_s
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s
        self.max_age_s = max_age_s
        self.duplicates = 0
        self._codec = BatchCodec()
        self._nc: Any = None
        self._js: Any = None
        self._lock = asyncio.Lock()

    # -- connection -------------------------------------------------------------------------

    async def _jetstream(self) -> Any:
        """Connect (once) and make sure the stream exists; return the JetStream context."""
        if self._js is not None and not self._nc.is_closed:
            return self._js
        async with self._lock:
            if self._js is not None and not self._nc.is_closed:
                return self._js
            import nats
            from nats.js.api import StorageType, StreamConfig
            from nats.js.errors import NotFoundError

            try:
                # A few reconnects, not forever: nats-py's "forever" (-1) also makes the
                # first connect wait forever, and the publisher must see a failure to back
                # off and retry. A client that gave up is closed and replaced on next use.
                nc = await nats.connect(self.url, connect_timeout=self.timeout_s,
                                        max_reconnect_attempts=3, reconnect_time_wait=0.5,
                                        allow_reconnect=True, error_cb=_quiet)
            except Exception as failure:
                raise BusError(f"NATS at {self.url} unreachable: {failure!r}") from failure
            js = nc.jetstream(timeout=self.timeout_s)
            config = StreamConfig(name=self.stream, subjects=[self.subject],
                                  storage=StorageType.FILE,
                                  duplicate_window=self.duplicate_window_s,
                                  max_age=self.max_age_s or None, allow_direct=True)
            try:
                try:
                    await js.stream_info(self.stream)
                except NotFoundError:
                    await js.add_stream(config)
            except Exception:
                await nc.close()
                raise
            self._nc, self._js = nc, js
            return js

    async def close(self) -> None:
        """Close the connection (ends subscriptions)."""
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
        self._nc = self._js = None

    async def delete_stream(self) -> None:
        """Delete the stream and everything in it (tests and benchmarks)."""
        js = await self._jetstream()
        await js.delete_stream(self.stream)

    # -- publishing -------------------------------------------------------------------------

    def encode(self, batch: EventBatch) -> list[tuple[EventBatch, bytes]]:
        """Return `batch` as messages of at most `max_bytes`, split at fixed points."""
        body = self._codec.encode(batch)
        if len(body) <= self.max_bytes or len(batch.entries) == 1:
            return [(batch, body)]  # one command's events always travel whole
        half = len(batch.entries) // 2
        return (self.encode(EventBatch.of(batch.entries[:half]))
                + self.encode(EventBatch.of(batch.entries[half:])))

    async def publish(self, batch: EventBatch) -> bool:
        """Store `batch` (as one message, or several if too big); False if all were dupes."""
        js = await self._jetstream()
        new = False
        for part, body in self.encode(batch):
            headers = {MSG_ID_HEADER: part.msg_id, LAST_SEQ_HEADER: str(part.last_seq)}
            ack = await js.publish(self.subject, body, timeout=self.timeout_s,
                                   stream=self.stream, headers=headers)
            if ack.duplicate:
                self.duplicates += 1
            else:
                new = True
        return new

    # -- reading ----------------------------------------------------------------------------

    async def _journal_seq_at(self, stream_seq: int) -> tuple[int, int] | None:
        """Return (stream seq, last journal seq) of the first message at or after stream_seq."""
        js = await self._jetstream()
        from nats.js.errors import NotFoundError

        try:
            msg = await js.get_msg(self.stream, seq=stream_seq, subject=self.subject, next=True)
        except NotFoundError:
            return None
        headers = msg.headers or {}
        if LAST_SEQ_HEADER not in headers:
            raise BusError(f"stream {self.stream} message {msg.seq} has no {LAST_SEQ_HEADER}")
        return int(msg.seq or 0), int(headers[LAST_SEQ_HEADER])

    async def last_seq(self) -> int:
        """Return the last journal seq in the stream (from its last message's header)."""
        js = await self._jetstream()
        from nats.js.errors import NotFoundError

        try:
            msg = await js.get_last_msg(self.stream, self.subject)
        except NotFoundError:
            return 0
        headers = msg.headers or {}
        if LAST_SEQ_HEADER not in headers:
            raise BusError(f"stream {self.stream} message {msg.seq} has no {LAST_SEQ_HEADER}")
        return int(headers[LAST_SEQ_HEADER])

    async def start_of(self, from_seq: int) -> int:
        """Return the stream sequence of the first message holding journal seqs >= from_seq.

        Stream sequences and journal seqs grow together, so this is a binary search over
        the stream (a few direct gets); past the end it is the next sequence to be stored.
        """
        js = await self._jetstream()
        state = (await js.stream_info(self.stream)).state
        # The smallest s whose first message at or after it reaches from_seq (past the end:
        # the next sequence). Every s in middle..found lands on the same message.
        low, high = max(int(state.first_seq), 1), int(state.last_seq) + 1
        while low < high:
            middle = (low + high) // 2
            found = await self._journal_seq_at(middle)
            if found is None or found[1] >= from_seq:
                high = middle
            else:
                low = found[0] + 1
        return low

    async def subscribe(self, from_seq: int) -> AsyncIterator[EventBatch]:
        """Yield the batches from journal seq `from_seq` on, in order; forever."""
        from nats.js.api import ConsumerConfig, DeliverPolicy

        js = await self._jetstream()
        start = await self.start_of(from_seq)
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                                opt_start_seq=start)
        sub = await js.subscribe(self.subject, stream=self.stream, ordered_consumer=True,
                                 config=config)
        order = InOrder(from_seq)
        try:
            async for msg in sub.messages:
                try:
                    decoded = self._codec.decode(msg.data)
                except CodecError as bad:
                    raise BusError(f"stream {self.stream}: {bad}") from bad
                batch = order.accept(decoded)
                if batch is not None:
                    yield batch
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

"""Gateways' side of the command path: `await client.submit(command) -> (seq, events)`.

Both clients raise `NotSequenced` only when the command certainly did not reach a writer
(no connection could be made, no NATS responder, or the writer refused it unread), and
`OutcomeUnknown` whenever it may have: the writer closed the connection or went silent
with the command in flight, or the timeout passed. See `perpx.transport.wire` for what a
gateway may retry (a command sent with a request id may be resent with the same id).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from perpx.core.commands import Command
from perpx.core.events import Event
from perpx.transport.wire import (
    HEADER,
    LENGTH,
    OutcomeUnknown,
    Wire,
    WriterUnavailable,
    command_subject,
    frame,
)


class WriterClient(Protocol):
    """What a gateway needs of the writer."""

    async def submit(self, command: Command, request_id: bytes | None = None
                     ) -> tuple[int, list[Event]]:
        """Return the command's seq and events once it is durable.

        `request_id` is journaled with the command; resending the command with the same id
        after an `OutcomeUnknown` cannot apply it twice (`perpx.transport.wire`).
        """

    async def submit_all(self, commands: Sequence[Command], request_ids: Sequence[bytes]
                         ) -> list[tuple[int, list[Event]]]:
        """Return each command's seq and events once all are durable, applied in order.

        One request (`Wire.requests`): resending it whole with the same ids after an
        `OutcomeUnknown` applies each command once, still in order.
        """

    async def fund(self, account_id: int, demo_funds: str) -> int:
        """Have the writer credit a key's demo funds once; return a durable seq past it."""

    async def close(self) -> None:
        """Release the connection."""

    def waiting_since(self) -> float | None:
        """Return when the oldest command still unanswered was sent (monotonic), or None."""

    def abandon(self, sent_before: float) -> int:
        """Fail the commands sent before `sent_before` with `OutcomeUnknown`; return how many.

        For a gateway that learnt the leader died (or was replaced) while they were out: the
        leader will never answer them, and waiting for a transport's timeout only delays
        the caller.
        """


class _Requests:
    """The requests both transports send: encoded by `Wire`, sent by the transport's `_ask`."""

    _wire: Wire

    async def _ask(self, request: bytes) -> bytes:
        """Send `request`; return the writer's reply body."""
        raise NotImplementedError

    async def submit(self, command: Command, request_id: bytes | None = None
                     ) -> tuple[int, list[Event]]:
        """Send `command`; return its seq and events once the writer says it is durable."""
        return self._wire.reply(await self._ask(self._wire.request(command, request_id)))

    async def submit_all(self, commands: Sequence[Command], request_ids: Sequence[bytes]
                         ) -> list[tuple[int, list[Event]]]:
        """Send a batch's `commands` as one request; return each one's seq and events."""
        return self._wire.replies(await self._ask(self._wire.requests(commands, request_ids)))

    async def fund(self, account_id: int, demo_funds: str) -> int:
        """Have the writer credit a key's demo funds once; return a durable seq past it."""
        return self._wire.reply(await self._ask(Wire.fund_request(account_id, demo_funds)))[0]


class UnixWriterClient(_Requests):
    """Commands over one Unix socket connection, many in flight, matched by request id.

    A connection lost is noticed at once (the kernel closes a dead writer's socket): every
    command in flight fails with `OutcomeUnknown`, and the next `submit` connects afresh
    (`WriterUnavailable` if nothing listens).
    """

    def __init__(self, path: str | Path, timeout_s: float = 5.0) -> None:
        self.path = str(path)
        self.timeout_s = timeout_s
        self._wire = Wire()
        self._ids = itertools.count(1)
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._waiting: dict[int, asyncio.Future[bytes]] = {}
        self._connecting: asyncio.Lock | None = None

    async def _connected(self) -> asyncio.StreamWriter:
        if self._writer is not None and not self._writer.is_closing():
            return self._writer
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_unix_connection(self.path), self.timeout_s)
            except (OSError, TimeoutError) as failure:
                raise WriterUnavailable(
                    f"no writer at {self.path}: {failure!r} (the command was not sent)"
                ) from failure
            self._writer = writer
            self._reader_task = asyncio.create_task(self._read(reader, writer))
            return writer

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        why = "the writer closed the connection"
        try:
            while True:
                head = await reader.readexactly(LENGTH.size)
                (length,) = LENGTH.unpack(head)
                data = await reader.readexactly(length)
                request_id = int.from_bytes(data[: HEADER.size - LENGTH.size], "big")
                waiter = self._waiting.pop(request_id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(data[HEADER.size - LENGTH.size:])
                elif request_id == 0:  # the writer found our stream out of step
                    why = "the writer dropped the connection: " + repr(data[8:])
        except (asyncio.IncompleteReadError, ConnectionError) as lost:
            why = f"{why} ({lost!r})"
        finally:
            if self._writer is writer:
                self._writer = None
            writer.close()
            self._fail_waiting(why)

    def _fail_waiting(self, why: str) -> None:
        waiting, self._waiting = self._waiting, {}
        for waiter in waiting.values():
            if not waiter.done():
                waiter.set_exception(OutcomeUnknown(
                    f"{why} with the command in flight: it may have been journaled"))

    async def _ask(self, request: bytes) -> bytes:
        """Send `request`; return the writer's reply body."""
        writer = await self._connected()
        request_id = next(self._ids)
        waiter: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = waiter
        writer.write(frame(request_id, request))
        try:
            body = await asyncio.wait_for(waiter, self.timeout_s)
        except TimeoutError:
            self._waiting.pop(request_id, None)
            raise OutcomeUnknown(f"no answer from the writer in {self.timeout_s} s: the "
                                 "command may have been journaled") from None
        return body

    def waiting_since(self) -> float | None:
        """None: a dead writer's socket is closed by the kernel, failing its commands at once."""
        return None

    def abandon(self, sent_before: float) -> int:
        """Nothing to do (see `waiting_since`)."""
        return 0

    async def close(self) -> None:
        """Close the connection (commands in flight fail with `OutcomeUnknown`)."""
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            with contextlib.suppress(Exception):
                await self._reader_task
            self._reader_task = None


class NatsWriterClient(_Requests):
    """Commands as NATS requests on the venue's subject.

    NATS says at once when no writer is subscribed (`WriterUnavailable`), but not when one
    dies holding a request: that shows only as the timeout (`OutcomeUnknown`), unless the
    gateway sees the leader die or change in the journal first and `abandon`s them.
    """

    def __init__(self, url: str, venue: str = "PERPX", timeout_s: float = 5.0) -> None:
        self.url = url
        self.subject = command_subject(venue)
        self.timeout_s = timeout_s
        self._wire = Wire()
        self._nc: Any = None
        # Requests out: the task waiting for each reply -> when it was sent (monotonic).
        self._in_flight: dict[asyncio.Future[Any], float] = {}
        self._abandoned: set[asyncio.Future[Any]] = set()

    async def connect(self) -> None:
        """Connect to NATS (`submit` does it on first use)."""
        import nats

        if self._nc is None:
            try:
                # Bounded: nats-py keeps retrying a first connection as a reconnection.
                self._nc = await asyncio.wait_for(
                    nats.connect(self.url, connect_timeout=self.timeout_s,
                                 name="perpx-gateway"), self.timeout_s)
            except Exception as failure:  # nats-py raises several kinds for no server
                raise WriterUnavailable(f"no NATS at {self.url}: {failure!r} (the command "
                                        "was not sent)") from failure

    async def _ask(self, request: bytes) -> bytes:
        """Send `request`; return the writer's reply body."""
        from nats.errors import NoRespondersError
        from nats.errors import TimeoutError as NatsTimeout

        await self.connect()
        if not self._nc.is_connected:
            raise WriterUnavailable(f"not connected to NATS at {self.url} (the command was "
                                    "not sent)")
        waiting = asyncio.ensure_future(
            self._nc.request(self.subject, request, timeout=self.timeout_s))
        self._in_flight[waiting] = time.monotonic()
        try:
            msg = await waiting
        except asyncio.CancelledError:
            if waiting not in self._abandoned:
                raise  # our caller was cancelled
            raise OutcomeUnknown(f"the leader that held the request on {self.subject} died "
                                 "or was replaced: the command may have been journaled"
                                 ) from None
        except NoRespondersError as none:
            raise WriterUnavailable(f"no writer answers {self.subject} (the command was not "
                                    "delivered)") from none
        except (NatsTimeout, TimeoutError) as silent:
            raise OutcomeUnknown(f"no answer on {self.subject} in {self.timeout_s} s: the "
                                 "command may have been journaled") from silent
        except Exception as failure:  # the connection failed with the request out
            raise OutcomeUnknown(f"NATS failed with the command in flight ({failure!r}): it "
                                 "may have been journaled") from failure
        finally:
            self._in_flight.pop(waiting, None)
            self._abandoned.discard(waiting)
        return bytes(msg.data)

    def waiting_since(self) -> float | None:
        """Return when the oldest request still unanswered was sent (monotonic), or None."""
        return min(self._in_flight.values(), default=None)

    def abandon(self, sent_before: float) -> int:
        """Fail the requests sent before `sent_before` with `OutcomeUnknown`; return how many."""
        dropped = [task for task, sent in self._in_flight.items()
                   if sent < sent_before and not task.done()]
        for task in dropped:
            self._abandoned.add(task)
            task.cancel()
        return len(dropped)

    async def close(self) -> None:
        """Close the NATS connection."""
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
            self._nc = None

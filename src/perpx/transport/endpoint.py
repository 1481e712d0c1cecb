"""The writer's command endpoint: commands in over a Unix socket or NATS, events out once durable.

Each request is decoded and handed to `submit` (the service's: `ExchangeService.submit`),
with its request id if it carries one, in the order it arrived; the reply is written when
`submit` returns, i.e. once the command is durable, as an in-process API call is answered.
Many requests are in flight at once, on one connection or many, so one group commit carries
them all.

A batch's commands in one request (`Wire.requests`) are handed to `submit_all`
(`ExchangeService.submit_all`), which applies them in their order at once. A funding
request (a gateway meeting a new demo key) is handed to `fund` instead
(`ExchangeService.fund_for_gateway`). The endpoint takes the service as callables
(`submit`, `stopped`, `durable_seq`, `fund`), so that the transport depends on commands and
events only, never on the service or the API above it. It trusts
its callers as the API trusts itself: a gateway sends commands it has authenticated and
validated (the socket is local and its file mode is the operator's; NATS subjects are guarded
by NATS accounts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from perpx.core.commands import Command
from perpx.core.events import Event
from perpx.store.codec import CodecError
from perpx.store.journal import OutcomeNotKept
from perpx.transport.wire import (
    FAILED,
    HEADER,
    LENGTH,
    LOST,
    MAX_FRAME,
    REFUSED,
    Wire,
    command_subject,
    frame,
)

log = logging.getLogger("perpx.transport")

# submit(command, request_id): the events once durable (a known request id: its recorded ones).
Submit = Callable[[Command, bytes | None], Awaitable[list[Event]]]
# submit_all(commands, request_ids): each one's events, applied in order, once all are durable.
SubmitAll = Callable[[list[Command], list[bytes | None]], Awaitable[list[list[Event]]]]
Fund = Callable[[int, str], Awaitable[None]]


class CommandEndpoint:
    """Answer encoded commands with their seq and events, once durable, over both transports."""

    def __init__(self, submit: Submit, stopped: Callable[[], bool] | None = None, *,
                 durable_seq: Callable[[], int] = lambda: 0, fund: Fund | None = None,
                 submit_all: SubmitAll | None = None) -> None:
        """Answer with `submit`; `stopped()` refuses commands unread.

        `durable_seq`: the writer's durable seq (the reply's seq for a command without
        events); `fund`: credit a key's demo funds once (`ExchangeService.ensure_funded`);
        `submit_all`: a batch's commands (`ExchangeService.submit_all`; without it they
        are submitted one after the other).
        """
        self._submit = submit
        self._submit_all = submit_all
        self._stopped = stopped
        self._durable_seq = durable_seq
        self._fund = fund
        self._server: asyncio.AbstractServer | None = None
        self._socket_path: Path | None = None
        self._streams: set[asyncio.StreamWriter] = set()
        # Replies answered this turn of the loop, per connection, written at its end.
        self._replies: dict[asyncio.StreamWriter, list[bytes]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._nats: Any = None
        self.answered = 0
        self.refused = 0

    async def handle(self, body: bytes, wire: Wire) -> bytes:
        """Return the reply to one request body (never raises)."""
        try:
            funding = Wire.funding(body)
            many = wire.many(body) if funding is None else None
            command, request_id = (wire.command(body) if funding is None and many is None
                                   else (None, None))
        except CodecError as bad:
            self.refused += 1
            return Wire.error(REFUSED, str(bad))
        if self._stopped is not None and self._stopped():
            self.refused += 1
            return Wire.error(REFUSED, "the writer has stopped")
        if funding is not None and self._fund is None:
            self.refused += 1
            return Wire.error(REFUSED, "this writer funds no keys")
        try:
            if command is not None:
                events = await self._submit(command, request_id)
            elif many is not None:
                outcomes = await self._batch(many)
                self.answered += 1
                return wire.ok_all(outcomes, self._durable_seq())
            else:
                assert funding is not None and self._fund is not None
                await self._fund(*funding)
                events = []
        except OutcomeNotKept as lost:
            return Wire.error(LOST, str(lost))
        except Exception as failure:  # any failure past this point: the outcome is unknown
            return Wire.error(FAILED, repr(failure))
        self.answered += 1
        return wire.ok(events, self._durable_seq())

    async def _batch(self, many: list[tuple[Command, bytes | None]]) -> list[list[Event]]:
        """Submit a batch's commands in order: together, or without `submit_all` in turn."""
        if self._submit_all is not None:
            return await self._submit_all([c for c, _ in many], [r for _, r in many])
        return [await self._submit(command, rid) for command, rid in many]

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        # Tasks start in creation order, so commands reach `submit` in the order they came.
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- Unix domain socket ---------------------------------------------------------------

    async def start_unix(self, path: str | Path) -> None:
        """Listen on the Unix socket `path` (a stale socket file there is replaced)."""
        path = Path(path)
        with contextlib.suppress(FileNotFoundError):
            if path.is_socket():
                path.unlink()
        self._server = await asyncio.start_unix_server(self._connection, path=str(path))
        os.chmod(path, 0o600)  # only the writer's user (gateways run as it) may send commands
        self._socket_path = path

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        self._streams.add(writer)
        wire = Wire()
        try:
            while True:
                try:
                    head = await reader.readexactly(LENGTH.size)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                (length,) = LENGTH.unpack(head)
                if not HEADER.size - LENGTH.size <= length <= MAX_FRAME:
                    # The stream is out of step: no request id to answer, nothing to resync on.
                    self.refused += 1
                    writer.write(frame(0, Wire.error(REFUSED, f"bad frame length {length}")))
                    with contextlib.suppress(ConnectionError):
                        await writer.drain()
                    return
                try:
                    data = await reader.readexactly(length)
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                request_id = int.from_bytes(data[:8], "big")
                self._spawn(self._answer(writer, request_id, data[8:], wire))
                with contextlib.suppress(ConnectionError):
                    await writer.drain()  # back-pressure: stop reading while replies queue
        finally:
            self._streams.discard(writer)
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, request_id: int, body: bytes,
                      wire: Wire) -> None:
        reply = await self.handle(body, wire)
        if writer.is_closing():  # a gateway gone: its command still completes
            return
        # The replies of one group commit are answered in one turn of the loop: they are
        # written together, one send for the connection instead of one each (frames in the
        # order they were answered, as before).
        queued = self._replies.get(writer)
        if queued is None:
            self._replies[writer] = [frame(request_id, reply)]
            asyncio.get_running_loop().call_soon(self._send_replies, writer)
        else:
            queued.append(frame(request_id, reply))

    def _send_replies(self, writer: asyncio.StreamWriter) -> None:
        frames = self._replies.pop(writer, None)
        if frames and not writer.is_closing():
            writer.write(frames[0] if len(frames) == 1 else b"".join(frames))

    # -- NATS request/reply ---------------------------------------------------------------

    async def start_nats(self, url: str, venue: str = "PERPX") -> None:
        """Answer requests on the venue's subject (`command_subject`) at the NATS `url`."""
        import nats

        # Bounded: nats-py keeps retrying a first connection as it would a reconnection.
        self._nats = await asyncio.wait_for(
            nats.connect(url, connect_timeout=5, name="perpx-writer"), 10)
        wire = Wire()

        async def on_request(msg: Any) -> None:
            # nats-py awaits a callback before the next message: answer in a task of its own.
            self._spawn(self._respond(msg, wire))

        await self._nats.subscribe(command_subject(venue), cb=on_request)
        await self._nats.flush()  # subscribed at the server before a client is told to go

    async def _respond(self, msg: Any, wire: Wire) -> None:
        reply = await self.handle(msg.data, wire)
        if msg.reply:
            try:
                await msg.respond(reply)
            except Exception as failure:  # NATS gone: the gateway sees a timeout
                log.warning("could not answer a command over NATS: %r", failure)

    # -- stop -----------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop taking requests, answer those in hand, then close the transports."""
        if self._server is not None:
            self._server.close()
        if self._nats is not None:
            with contextlib.suppress(Exception):
                await self._nats.drain()  # no new requests; replies still go out
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in list(self._streams):
            writer.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        if self._nats is not None:
            with contextlib.suppress(Exception):
                await self._nats.close()
            self._nats = None
        if self._socket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                self._socket_path.unlink()
            self._socket_path = None

    async def abort(self) -> None:
        """Drop every connection with nothing answered, as a killed writer would (tests)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._streams):
            writer.transport.abort()
        if self._nats is not None:
            # A dead process says nothing: the replies in hand find the connection closed.
            with contextlib.suppress(Exception):
                await self._nats.close()
            self._nats = None

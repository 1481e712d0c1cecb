"""The writer's command endpoint: commands in over a Unix socket or NATS, events out once durable.

Each request is decoded and handed to `submit_entries` (the service's:
`ExchangeService.submit_entries`; without it, to `submit`, `ExchangeService.submit`), with its
request id if it carries one, in the order it arrived; the reply is written when it returns,
i.e. once the command is durable, as an in-process API call is answered. Many requests are in
flight at once, on one connection or many, so one group commit carries them all. On the Unix
socket, the commands with a request id that arrive in one read (a gateway's, many in flight
on its connection) go to `submit_entries` together, each still answered in its own frame once
durable (`_frames`): the same journal rows and answers, for one task and one future per read
instead of one each. A reply is made from the command's entry (`Wire.ok_entry`), whose
msgpack the bus publisher splices into the command's bus batch too: each command's events
are encoded once on the writer, not once for the reply and once for the bus (issue #15).

A batch's commands in one request (`Wire.requests`) are handed to `submit_entries`, which
applies them in their order at once. A funding request (a gateway meeting a new demo key)
is handed to `fund` instead (`ExchangeService.fund_for_gateway`). The endpoint takes the
service as callables (`submit`, `submit_entries`, `stopped`, `durable_seq`, `fund`), so that
the transport depends on commands, events and the bus's entries only, never on the service
or the API above it. It trusts
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

from perpx.bus.codec import Durable
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
    REQ,
    Wire,
    command_subject,
    frame,
)

# What one read of a connection asks for: many frames of ~120 bytes (a gateway's commands in
# flight), all cut and submitted together.
READ_BYTES = 1 << 18
_REQ = bytes([REQ])

log = logging.getLogger("perpx.transport")

# submit(command, request_id): the events once durable (a known request id: its recorded ones).
Submit = Callable[[Command, bytes | None], Awaitable[list[Event]]]
# submit_entries(commands, request_ids): each one's entry, applied in order, once all are
# durable (a known request id: its recorded events).
SubmitEntries = Callable[[list[Command], list[bytes | None]], Awaitable[list[Durable]]]
Fund = Callable[[int, str], Awaitable[None]]


class CommandEndpoint:
    """Answer encoded commands with their seq and events, once durable, over both transports."""

    def __init__(self, submit: Submit, stopped: Callable[[], bool] | None = None, *,
                 durable_seq: Callable[[], int] = lambda: 0, fund: Fund | None = None,
                 submit_entries: SubmitEntries | None = None) -> None:
        """Answer with `submit`; `stopped()` refuses commands unread.

        `durable_seq`: the writer's durable seq (the reply's seq for a command without
        events); `fund`: credit a key's demo funds once (`ExchangeService.ensure_funded`);
        `submit_entries`: commands in order, each answered with its entry
        (`ExchangeService.submit_entries`; without it each command is submitted alone, one
        after the other, and its reply encoded from its events).
        """
        self._submit = submit
        self._submit_entries = submit_entries
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
        if command is not None:
            return await self._one(command, request_id, wire)
        try:
            if many is not None:
                entries = await self._batch(many)
                self.answered += 1
                return wire.ok_all(entries, self._durable_seq())
            assert funding is not None and self._fund is not None
            await self._fund(*funding)
        except OutcomeNotKept as lost:
            return Wire.error(LOST, str(lost))
        except Exception as failure:  # any failure past this point: the outcome is unknown
            return Wire.error(FAILED, repr(failure))
        self.answered += 1
        return wire.ok([], self._durable_seq())

    async def _batch(self, many: list[tuple[Command, bytes | None]]) -> list[Durable]:
        """Submit a batch's commands in order: together, or without `submit_entries` in turn."""
        if self._submit_entries is not None:
            return await self._submit_entries([c for c, _ in many], [r for _, r in many])
        return [Durable.from_events(await self._submit(command, rid)) for command, rid in many]

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
        rest = b""  # the start of a frame not yet whole
        try:
            while True:
                # Whatever has arrived, not a frame at a time: the frames of one read are cut
                # here in a loop, and the commands among them go to the sequencer together.
                try:
                    chunk = await reader.read(READ_BYTES)
                except ConnectionError:
                    return
                if not chunk:
                    return  # closed: a partial frame left has no one to answer
                data = rest + chunk if rest else chunk
                cut = self._frames(writer, data, wire)
                if cut is None:
                    with contextlib.suppress(ConnectionError):
                        await writer.drain()
                    return
                rest = cut
                with contextlib.suppress(ConnectionError):
                    await writer.drain()  # back-pressure: stop reading while replies queue
        finally:
            self._streams.discard(writer)
            writer.close()

    def _frames(self, writer: asyncio.StreamWriter, data: bytes, wire: Wire) -> bytes | None:
        """Answer the whole frames in `data`; return the bytes after them (None: hang up).

        Consecutive commands with a request id (what a gateway sends) go to `submit_entries` as
        one group, in one task: a command then costs its decode, its place in the batch and
        its reply, not a task, coroutines and a future of its own (issue #14). Anything else
        (a funding or batch request, an unreadable body, a command without an id) is
        answered alone by `handle`, as before. Tasks start in creation order, so the
        commands still reach the sequencer in the order they came.
        """
        at, end = 0, len(data)
        group = self._submit_entries is not None
        frame_ids: list[int] = []
        commands: list[Command] = []
        rids: list[bytes | None] = []
        command = wire.command
        unpack = LENGTH.unpack_from
        while end - at >= LENGTH.size:
            (length,) = unpack(data, at)
            if not HEADER.size - LENGTH.size <= length <= MAX_FRAME:
                # The stream is out of step: no request id to answer, nothing to resync on.
                if commands:
                    self._spawn(self._answer_group(writer, frame_ids, commands, rids, wire))
                self.refused += 1
                writer.write(frame(0, Wire.error(REFUSED, f"bad frame length {length}")))
                return None
            start = at + LENGTH.size
            if end - start < length:
                break
            at = start + length
            request_id = int.from_bytes(data[start:start + 8], "big")
            body = data[start + 8:at]
            if group and body[:1] == _REQ:
                try:
                    one, rid = command(body)
                except CodecError:
                    pass  # `handle` refuses it, in its turn
                else:
                    frame_ids.append(request_id)
                    commands.append(one)
                    rids.append(rid)
                    continue
            if commands:  # what came before it goes first
                self._spawn(self._answer_group(writer, frame_ids, commands, rids, wire))
                frame_ids, commands, rids = [], [], []
            self._spawn(self._answer(writer, request_id, body, wire))
        if commands:
            self._spawn(self._answer_group(writer, frame_ids, commands, rids, wire))
        return data[at:] if at < end else b""

    async def _answer_group(self, writer: asyncio.StreamWriter, frame_ids: list[int],
                            commands: list[Command], rids: list[bytes | None],
                            wire: Wire) -> None:
        """Submit a group of commands read together; answer each in its own frame."""
        entries: list[Durable] | None = None
        replies: list[bytes] = []
        if self._stopped is not None and self._stopped():
            self.refused += len(commands)
            replies = [Wire.error(REFUSED, "the writer has stopped")] * len(commands)
        else:
            assert self._submit_entries is not None
            try:
                entries = await self._submit_entries(commands, rids)
            except OutcomeNotKept:
                # One of them is a resend whose outcome this writer cannot tell: answer each
                # alone, as `handle` would have. Every one carries its request id, so those
                # this call applied are answered from the sequencer's window, never applied
                # twice (each counts as a resend there).
                replies = [await self._one(one, rid, wire)
                           for one, rid in zip(commands, rids, strict=True)]
            except Exception as failure:  # any failure past this point: the outcome is unknown
                replies = [Wire.error(FAILED, repr(failure))] * len(commands)
            else:
                self.answered += len(commands)
        if writer.is_closing():  # a gateway gone: its commands still complete
            return
        if entries is not None:
            durable = self._durable_seq()
            ok = wire.ok_entry
            replies = [ok(entry, durable) for entry in entries]
        self._queue(writer, [frame(request_id, reply)
                             for request_id, reply in zip(frame_ids, replies, strict=True)])

    def _queue(self, writer: asyncio.StreamWriter, frames: list[bytes]) -> None:
        """Queue `frames` for the connection's write at the end of this turn of the loop."""
        queued = self._replies.get(writer)
        if queued is None:
            self._replies[writer] = frames
            asyncio.get_running_loop().call_soon(self._send_replies, writer)
        else:
            queued += frames

    async def _one(self, command: Command, request_id: bytes | None, wire: Wire) -> bytes:
        """Return the reply to one decoded command (`handle`'s, and a group's retry)."""
        try:
            if self._submit_entries is not None:
                (entry,) = await self._submit_entries([command], [request_id])
            else:
                entry = Durable.from_events(await self._submit(command, request_id))
        except OutcomeNotKept as lost:
            return Wire.error(LOST, str(lost))
        except Exception as failure:  # any failure past this point: the outcome is unknown
            return Wire.error(FAILED, repr(failure))
        self.answered += 1
        return wire.ok_entry(entry, self._durable_seq())

    async def _answer(self, writer: asyncio.StreamWriter, request_id: int, body: bytes,
                      wire: Wire) -> None:
        reply = await self.handle(body, wire)
        if writer.is_closing():  # a gateway gone: its command still completes
            return
        # The replies of one group commit are answered in one turn of the loop: they are
        # written together, one send for the connection instead of one each (frames in the
        # order they were answered, as before).
        self._queue(writer, [frame(request_id, reply)])

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

